/* SPDX-License-Identifier: MIT */
/*
 * config: config.yaml (libyaml) plus the env into one immutable snapshot.
 * A snapshot is reference-counted: each request holds a reference for its
 * whole life, so a reload can swap in a new one without pulling the floor
 * from under a running stream. Nothing in a snapshot changes after load.
 *
 * The file is a superset of the original LLM Bridge's configs/config.yaml:
 * providers (adapter, base_url, api_key, requires_proxy, models with
 * max_tokens, timeout, param_config), proxy, logging; plus server and
 * default_provider. Unknown keys are accepted with a warning.
 */
#ifndef LB_CONFIG_H
#define LB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "params.h"

struct buf;
struct env;
struct keystore;
struct key_def;

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/llm-bridge/config.yaml"
#define CONFIG_DEFAULT_ENV_PATH SYSCONFDIR "/llm-bridge/llm-bridge.env"

struct model_cfg {
	char *name;          /* config key, may carry a <variant> suffix */
	char *upstream_name; /* name with the <variant> suffix removed */
	int64_t max_tokens;  /* 0 = not set */
	int64_t timeout_s;   /* 0 = use the provider's */
	struct param_config params;
	bool priced;         /* price: given; cost is counted */
	double price_prompt; /* per million tokens, in the config's currency */
	double price_completion;
	double price_cached; /* cached prompt tokens; default price_prompt */
};

struct provider_cfg {
	char *name;          /* client prefix: "closeai" in closeai/gpt-4o */
	char *adapter;       /* "openai" (default) or "gemini" */
	char *base_url;      /* as written: a base (.../v1) or full endpoint */
	char *api_key;       /* <NAME>_API_KEY from the env wins over api_key:
	                      * (with ${VAR} expanded); NULL if neither. SECRET */
	bool requires_proxy; /* use the global proxy (proxy.https, else http) */
	char *proxy;         /* provider's own proxy URL, or NULL */
	bool allow_unlisted_models;
	int64_t timeout_s;   /* default upstream timeout, default 600 */
	struct model_cfg *models;
	size_t n_models;
};

struct server_cfg {
	char *host;               /* default "127.0.0.1" */
	unsigned port;            /* default 1219; 0 = ephemeral (tests) */
	size_t max_body_bytes;    /* default 10 MiB */
	unsigned max_connections; /* default 1024 */
	unsigned shutdown_timeout_s; /* default 30 */
	unsigned header_timeout_s;   /* request line + headers; default 10 */
	unsigned body_timeout_s;     /* whole request body; default 60 */
	size_t max_header_bytes;     /* request line + headers; default 16 KiB */
	char *tls_cert;              /* tls.cert: PEM chain; NULL = plain */
	char *tls_key;               /* tls.key: PEM private key */
	char **cors_origins;      /* default {"*"} */
	size_t n_cors_origins;
};

struct proxy_cfg {
	char *http;     /* NULL when unset */
	char *https;
	char *no_proxy; /* comma-separated hosts, or NULL */
};

struct logging_cfg {
	bool json;          /* format: json (default) | text */
	int level;          /* enum log_level, default info */
	bool console;       /* default true */
	char *file_path;    /* NULL = no file */
	int64_t max_size;   /* default 10 MiB */
	int64_t backup_count; /* default 5 */
	bool log_bodies;    /* request/response bodies at debug (default off) */
};

struct media_cfg {
	bool fetch;          /* download http(s) image URLs to inline them
	                      * (default true) */
	size_t max_bytes;    /* default 20 MiB */
	int64_t timeout_s;   /* default 30 */
	bool allow_private;  /* fetch from loopback/private addresses
	                      * (default false: SSRF) */
};

struct usage_cfg {
	char *database;       /* SQLite file; NULL = default (see usage.md) */
	bool database_set;    /* given in the file: failing to open is fatal */
	unsigned flush_interval_s; /* default 5 */
};

struct metrics_cfg {
	bool enabled;         /* GET /metrics served (default true) */
	bool require_key;     /* only with an admin key (default false) */
};

struct config {
	_Atomic int refs;     /* see config_retain/release */
	char *path;
	struct server_cfg server;
	struct proxy_cfg proxy;
	struct logging_cfg logging;
	struct media_cfg media;
	struct usage_cfg usage;
	struct metrics_cfg metrics;
	char *default_provider; /* NULL: "closeai" if configured, else none */
	struct provider_cfg *providers;
	size_t n_providers;
	char **access_keys;   /* ACCESS_API_KEYS, plain; SECRET */
	size_t n_access_keys;
	struct key_def *key_defs; /* named keys (keys:, keys_file:) */
	size_t n_key_defs;
	struct keystore *keys; /* built from access_keys and key_defs */
};

/* Load path with env into a new snapshot (refs = 1). On failure returns
 * NULL and appends one "path:line:col: key 'a.b.c': reason\n" line per
 * problem to errors (all problems found, not just the first). Warnings
 * (unknown keys) go to the log. Caller drops it with config_release(). */
struct config *config_load(const char *path, const struct env *env,
			   struct buf *errors);
/* Take another reference. Thread-safe. Returns cfg. */
struct config *config_retain(struct config *cfg);
/* Drop a reference; frees on the last. Thread-safe. NULL is a no-op. */
void config_release(struct config *cfg);

const struct provider_cfg *config_find_provider(const struct config *cfg,
						const char *name, size_t len);
const struct model_cfg *config_find_model(const struct provider_cfg *p,
					  const char *name);

#endif
