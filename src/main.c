/* SPDX-License-Identifier: MIT */
/*
 * main: the command line, start-up order and signals. Every signal is
 * blocked before any thread starts and taken synchronously here with
 * sigwait(), so no handler ever runs on a request thread: SIGTERM/SIGINT
 * drain and exit, SIGHUP reloads the config and keys.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "env.h"
#include "accounting.h"
#include "http_front.h"
#include "keys.h"
#include "limiter.h"
#include "memtrim.h"
#include "metrics.h"
#include "notify.h"
#include "tls.h"
#include "tlsrng.h"
#include "usage.h"
#include "tokenizer.h"
#include "listener.h"
#include "ws_front.h"
#include "log.h"
#include "pipeline.h"
#include "upstream.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

#define EXIT_CONFIG 1

struct options {
	const char *config_path;
	const char *env_path;
	bool env_required;
	bool check_only;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: llm-bridge [OPTIONS]\n"
		"       llm-bridge keygen --name NAME\n"
		"       llm-bridge tokens [--encoding o200k_base|cl100k_base | "
		"--model MODEL] < FILE\n"
		"An OpenAI-compatible gateway to LLM providers.\n\n"
		"  -c, --config FILE    configuration file (default %s)\n"
		"  -e, --env-file FILE  environment file with keys (default: "
		".env in the\n"
		"                       working directory if present, else %s)\n"
		"  -t, --check-config   validate the configuration and exit "
		"(0 = valid)\n"
		"  -V, --version        print the version and exit\n"
		"  -h, --help           print this help and exit\n",
		CONFIG_DEFAULT_PATH, CONFIG_DEFAULT_ENV_PATH);
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "env-file", required_argument, NULL, 'e' },
		{ "check-config", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->config_path = CONFIG_DEFAULT_PATH;
	while ((c = getopt_long(argc, argv, "c:e:tVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config_path = optarg;
			break;
		case 'e':
			o->env_path = optarg;
			o->env_required = true;
			break;
		case 't':
			o->check_only = true;
			break;
		case 'V':
			printf("llm-bridge %s\n", PACKAGE_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "llm-bridge: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return -1;
	}
	if (!o->env_path)
		o->env_path = access(".env", F_OK) == 0 ? ".env" :
			      CONFIG_DEFAULT_ENV_PATH;
	return 0;
}

/* Load env + config. Returns NULL after printing every problem. */
static struct config *load(const struct options *o)
{
	struct buf errors;
	struct env *env;
	struct config *cfg = NULL;

	buf_init(&errors, 0);
	env = env_load(o->env_path, o->env_required, &errors);
	if (env)
		cfg = config_load(o->config_path, env, &errors);
	if (!cfg && errors.len)
		fprintf(stderr, "%s", errors.data);
	env_free(env);
	buf_free(&errors);
	return cfg;
}

static void apply_logging(const struct config *cfg)
{
	const struct logging_cfg *l = &cfg->logging;

	log_set_level((enum log_level)l->level);
	log_set_json(l->json);
	log_set_output(l->console, l->file_path, l->max_size,
		       (int)l->backup_count);
}

/* The TLS context cfg asks for: 0 with *out NULL (plain) or set, -1 with
 * the problem logged. */
static int make_tls(const struct config *cfg, struct tls_ctx **out)
{
	struct buf err;

	*out = NULL;
	if (!cfg->server.tls_cert)
		return 0;
	buf_init(&err, 0);
	*out = tls_ctx_new(cfg->server.tls_cert, cfg->server.tls_key, &err);
	if (!*out)
		log_error("tls", "%s", err.data ? err.data : "TLS set-up failed");
	buf_free(&err);
	return *out ? 0 : -1;
}

/* New config, keys and certificates, all or nothing: requests already
 * running finish on the snapshot they hold. */
static void reload(const struct options *o, struct listener *listener)
{
	struct config *cfg;
	struct tls_ctx *tls;

	notify_reloading();
	cfg = load(o);
	if (!cfg || make_tls(cfg, &tls) < 0) {
		log_error("config", "reload of %s failed; keeping the running "
			  "configuration", o->config_path);
		config_release(cfg);
		notify_ready();
		return;
	}
	listener_set_tls(listener, tls);
	tls_ctx_release(tls);
	apply_logging(cfg);
	pipeline_set_config(cfg);
	config_release(cfg);
	log_info("config", "configuration reloaded from %s", o->config_path);
	notify_ready();
}

/*
 * Thousands of streams need thousands of descriptors: per connection the
 * client's socket, the provider's and the curl multi handle's wakeup
 * socketpair, and a WebSocket may run 32 requests at once. So the soft
 * limit goes up to the hard one; a hard limit below even four per
 * connection is reported.
 */
static void raise_fd_limit(const struct config *cfg)
{
	rlim_t need = (rlim_t)cfg->server.max_connections * 4 + 1024;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		log_warn("main", "the descriptor limit (%llu) is below what "
			 "server.max_connections (%u) needs (%llu): raise "
			 "LimitNOFILE / ulimit -Hn",
			 (unsigned long long)rl.rlim_max,
			 cfg->server.max_connections,
			 (unsigned long long)need);
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("main", "descriptor limit %llu for %u connections",
			 (unsigned long long)rl.rlim_cur,
			 cfg->server.max_connections);
}

/* The listener's verdict on a new connection: hand it to its front. */
struct fronts {
	struct http_front *http;
	struct ws_front *ws;
};

static int hand_connection(void *ud, enum listener_kind kind, int fd,
			   const struct sockaddr *addr, socklen_t len,
			   const struct reqhead *head, struct api_error *err,
			   const char **extra)
{
	struct fronts *fr = ud;

	if (kind == LISTENER_WS) {
		if (ws_front_check_upgrade(head, err, extra) < 0)
			return -1;
		ws_front_add(fr->ws, fd, addr, len);
	} else {
		http_front_add(fr->http, fd, addr, len);
	}
	return 0;
}

static unsigned front_load(void *ud)
{
	struct fronts *fr = ud;

	return http_front_connections(fr->http) +
	       ws_front_connections(fr->ws);
}

/* How long no request may run before the heap's free pages go back to
 * the system (memtrim.h): long enough that a client's next request in a
 * conversation does not wait behind a trim, short enough that a burst's
 * memory is gone by the time anyone looks. */
#define MEMTRIM_QUIET_MS 1000

/* Once quiet: the provider connections a burst left idle beyond the
 * warmest few, then the heap's free pages. */
static void quiet_trim(void)
{
	upstream_pool_trim(UPSTREAM_POOL_QUIET_KEEP, UPSTREAM_POOL_IDLE_US);
	memtrim_heap();
}

/* The process-wide services the pipeline accounts with. */
struct services {
	struct limiter *limiter;
	struct usage_store *usage;
};

/* The usage database: the configured file (failing to open it is fatal),
 * else the state directory's usage.db (systemd's $STATE_DIRECTORY, else
 * LOCALSTATEDIR/lib/llm-bridge), else memory only with a warning, so a
 * first run from a source tree works. */
static struct usage_store *open_usage(const struct config *cfg)
{
	const char *state = getenv("STATE_DIRECTORY");
	struct usage_store *u;
	struct buf path, err;

	buf_init(&err, 0);
	buf_init(&path, 0);
	if (cfg->usage.database)
		buf_appends(&path, cfg->usage.database);
	else if (state && *state && !strchr(state, ':'))
		buf_printf(&path, "%s/usage.db", state);
	else
		buf_appends(&path, LOCALSTATEDIR "/lib/llm-bridge/usage.db");
	u = usage_open(path.data, cfg->usage.flush_interval_s, &err);
	if (u) {
		log_info("usage", "usage statistics in %s", path.data);
	} else if (cfg->usage.database_set) {
		log_error("usage", "cannot open usage.database %s: %s",
			  path.data, err.data ? err.data : "?");
	} else {
		log_warn("usage", "cannot open %s (%s): usage statistics are "
			 "kept in memory only; set usage.database",
			 path.data, err.data ? err.data : "?");
		u = usage_open(NULL, cfg->usage.flush_interval_s, NULL);
	}
	buf_free(&path);
	buf_free(&err);
	return u;
}

/* Budgets count what keys spent earlier in the period, before a restart. */
static void preload_budgets(const struct config *cfg, struct services *sv)
{
	int64_t now = (int64_t)time(NULL);

	for (size_t i = 0; i < cfg->n_key_defs; i++) {
		const struct key_def *d = &cfg->key_defs[i];
		uint64_t tokens = 0;
		double cost = 0;
		int64_t from;

		if (d->limits.period == LIMIT_PERIOD_NONE)
			continue;
		from = limiter_period_start(d->limits.period, now);
		usage_key_totals(sv->usage, d->name, (time_t)from,
				 (time_t)(now + 86400), &tokens, &cost);
		if (tokens || cost > 0)
			limiter_preload(sv->limiter, d->name, d->limits.period,
					tokens, cost, now);
	}
}

static int services_start(const struct config *cfg, struct services *sv)
{
	char dirbuf[4096];
	struct buf err;
	const char *dir = tok_data_dir(dirbuf, sizeof(dirbuf));

	buf_init(&err, 0);
	if (tok_load(dir, &err) < 0) {
		/* one log line: the loader's messages are lines of their own */
		struct buf line;

		buf_init(&line, 0);
		for (size_t i = 0; i < err.len; i++) {
			if (err.data[i] != '\n')
				buf_append(&line, &err.data[i], 1);
			else if (i + 1 < err.len)
				buf_appends(&line, "; ");
		}
		log_warn("tokenizer", "token counting unavailable (%s): "
			 "estimates and local counts will be 0",
			 line.len ? line.data : dir);
		buf_free(&line);
	}
	buf_free(&err);
	metrics_init();
	sv->usage = open_usage(cfg);
	if (!sv->usage)
		return -1;
	sv->limiter = limiter_new();
	preload_budgets(cfg, sv);
	acct_set_services(sv->limiter, sv->usage);
	if (memtrim_start(MEMTRIM_QUIET_MS, quiet_trim) < 0)
		log_warn("main", "cannot start the memory trim thread: free "
			 "heap and idle provider connections stay with the "
			 "daemon after a burst");
	return 0;
}

/* After the fronts stopped: nothing records any more. */
static void services_stop(struct services *sv)
{
	memtrim_stop();
	acct_set_services(NULL, NULL);
	usage_close(sv->usage);
	limiter_free(sv->limiter);
	metrics_shutdown();
	tok_unload();
}

static int serve(const struct options *o, struct config *cfg)
{
	struct services sv = { 0 };
	struct tls_ctx *tls;
	struct fronts fr = { 0 };
	struct listener *listener = NULL;
	sigset_t set;
	int sig;
	unsigned drain;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(cfg);

	if (upstream_global_init() < 0) {
		log_error("main", "cannot initialise libcurl");
		return 1;
	}
	if (services_start(cfg, &sv) < 0) {
		upstream_global_cleanup();
		return 1;
	}
	if (make_tls(cfg, &tls) < 0) {
		services_stop(&sv);
		upstream_global_cleanup();
		return 1;
	}
	pipeline_set_config(cfg);
	fr.http = http_front_start(cfg);
	fr.ws = fr.http ? ws_front_start(cfg) : NULL;
	if (fr.ws)
		listener = listener_start(cfg, WS_PATH, hand_connection,
					  front_load, &fr, tls);
	tls_ctx_release(tls);
	if (!listener) {
		ws_front_stop(fr.ws, 0);
		http_front_stop(fr.http, 0);
		services_stop(&sv);
		upstream_global_cleanup();
		return 1;
	}
	if (cfg->n_access_keys == 0 && cfg->n_key_defs == 0)
		log_warn("main", "no client keys (ACCESS_API_KEYS or keys:) "
			 "are set: every API request will be refused with 401");
	log_info("main", "llm-bridge %s listening on %s:%u%s", PACKAGE_VERSION,
		 cfg->server.host, listener_port(listener),
		 cfg->server.tls_cert ? " (TLS)" : "");
	notify_ready();
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(o, listener);
			continue;
		}
		break;
	}
	cfg = pipeline_config_acquire();
	drain = cfg->server.shutdown_timeout_s;
	config_release(cfg);
	log_info("main", "signal %d: draining requests (up to %us)", sig, drain);
	notify_stopping();
	listener_stop(listener);
	{
		/* one drain budget shared by both fronts */
		uint64_t t0 = now_ms(), spent;

		ws_front_stop(fr.ws, drain);
		spent = (now_ms() - t0) / 1000;
		http_front_stop(fr.http, spent < drain ? drain - (unsigned)spent : 0);
	}
	pipeline_set_config(NULL);
	services_stop(&sv);
	upstream_global_cleanup();
	log_info("main", "stopped");
	return 0;
}

/* `llm-bridge keygen --name NAME`: a fresh key, and the config lines that
 * hold only its hash. The key goes to stdout once and is never stored. */
static int keygen(int argc, char **argv)
{
	const char *name = NULL;
	char key[64], hex[2 * KEYS_DIGEST_LEN + 1];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--name") && i + 1 < argc) {
			name = argv[++i];
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: llm-bridge keygen --name NAME\n");
			return 0;
		} else {
			fprintf(stderr, "llm-bridge keygen: unknown argument "
				"'%s' (try --help)\n", argv[i]);
			return 2;
		}
	}
	if (!name || !*name || strlen(name) > KEYS_NAME_MAX ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		   "0123456789-_.@") != strlen(name)) {
		fprintf(stderr, "llm-bridge keygen: --name NAME is required "
			"(letters, digits, '-', '_', '.', '@'; at most %d)\n",
			KEYS_NAME_MAX);
		return 2;
	}
	if (keys_generate(key, sizeof(key)) < 0) {
		fprintf(stderr, "llm-bridge keygen: the random generator "
			"failed\n");
		return 1;
	}
	keys_digest_hex(key, strlen(key), hex);
	printf("# The key for %s. It is shown only now: hand it over, then "
	       "forget it.\n%s\n\n# Add this to keys: in config.yaml (or its "
	       "keys_file):\n  - name: %s\n    hash: sha256:%s\n", name, key,
	       name, hex);
	memset(key, 0, sizeof(key));
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	struct config *cfg;
	int rc;

	if (argc > 1 && !strcmp(argv[1], "keygen"))
		return keygen(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "tokens"))
		return tok_cli(argc - 1, argv + 1);
	if (parse_args(argc, argv, &o) < 0)
		return 2;
	cfg = load(&o);
	if (!cfg) {
		fprintf(stderr, "llm-bridge: configuration %s is invalid\n",
			o.config_path);
		return EXIT_CONFIG;
	}
	if (o.check_only) {
		printf("llm-bridge: configuration %s OK\n", o.config_path);
		config_release(cfg);
		return 0;
	}
	apply_logging(cfg);
	tlsrng_init();
	rc = serve(&o, cfg);
	config_release(cfg);
	log_close();
	return rc;
}
