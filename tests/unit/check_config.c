/* SPDX-License-Identifier: MIT */
/* Unit tests for config: config.yaml plus the env into a snapshot. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "env.h"
#include "keys.h"
#include "log.h"
#include "testutil.h"

/* tests/fixtures/config/<name>, found through $LB_TESTS_SRCDIR. */
static char *fixture_path(const char *name)
{
	const char *dir = getenv("LB_TESTS_SRCDIR");
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "%s/fixtures/config/%s", dir ? dir : "tests", name);
	return buf_steal(&b);
}

static char *tmp_file(const char *text)
{
	char *path = strdup("/tmp/lb-check-config-XXXXXX");
	int fd = mkstemp(path);
	size_t len = strlen(text);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static void drop_file(char *path)
{
	unlink(path);
	free(path);
}

/* An env from .env text (the process environment still wins). */
static struct env *env_from(const char *text)
{
	char *path = tmp_file(text);
	struct buf err;
	struct env *e;

	buf_init(&err, 0);
	e = env_load(path, 1, &err);
	ck_assert_msg(e != NULL, "env: %s", err.data ? err.data : "");
	buf_free(&err);
	drop_file(path);
	return e;
}

/* Load fixture name; expects success. */
static struct config *load_ok(const char *name, const struct env *env)
{
	char *path = fixture_path(name);
	struct buf err;
	struct config *cfg;

	buf_init(&err, 0);
	cfg = config_load(path, env, &err);
	ck_assert_msg(cfg != NULL, "%s failed: %s", path,
		      err.data ? err.data : "(no message)");
	ck_assert_uint_eq(err.len, 0);
	ck_assert_str_eq(cfg->path, path);
	buf_free(&err);
	free(path);
	return cfg;
}

/* Load fixture name; expects failure and returns the error text. */
static char *load_fail(const char *name, const struct env *env)
{
	char *path = fixture_path(name);
	struct buf err;
	struct config *cfg;

	buf_init(&err, 0);
	cfg = config_load(path, env, &err);
	ck_assert_msg(cfg == NULL, "%s loaded but should not", path);
	ck_assert_msg(err.len > 0, "%s: no error message", path);
	free(path);
	return buf_steal(&err);
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void assert_has(const char *hay, const char *needle)
{
	ck_assert_msg(strstr(hay, needle) != NULL, "'%s' not in: %s", needle,
		      hay);
}

/* Names the provider-key tests rely on must not come from outside. */
static void clear_test_env(void)
{
	unsetenv("CLOSEAI_API_KEY");
	unsetenv("OTHER_API_KEY");
	unsetenv("MIXED_API_KEY");
	unsetenv("MY_PROV_X_API_KEY");
	unsetenv("NONE_API_KEY");
	unsetenv("LBT_CFG_VAR");
	unsetenv("ACCESS_API_KEYS");
}

START_TEST(seed_loads_unchanged)
{
	struct config *cfg = load_ok("seed.yaml", NULL);
	const struct provider_cfg *p;
	const struct model_cfg *m;
	json_object *v;

	ck_assert_uint_eq(cfg->n_providers, 1);
	p = config_find_provider(cfg, "closeai", 7);
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_eq(p, &cfg->providers[0]);
	ck_assert_str_eq(p->name, "closeai");
	ck_assert_str_eq(p->adapter, "openai");
	ck_assert_str_eq(p->base_url,
			 "https://api.openai-proxy.org/v1/chat/completions");
	ck_assert(!p->requires_proxy);
	ck_assert(!p->allow_unlisted_models);
	ck_assert_ptr_null(p->proxy);
	ck_assert_ptr_null(p->api_key);
	ck_assert_int_eq(p->timeout_s, 600);
	ck_assert_ptr_nonnull(cfg->default_provider);
	ck_assert_str_eq(cfg->default_provider, "closeai");

	ck_assert_uint_eq(p->n_models, 3);
	m = config_find_model(p, "gpt-4o");
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(m->upstream_name, "gpt-4o");
	ck_assert_int_eq(m->max_tokens, 8192);
	ck_assert_int_eq(m->timeout_s, 120);
	ck_assert_ptr_null(m->params.update_params);
	ck_assert_ptr_null(m->params.add_params);
	ck_assert_ptr_null(m->params.rename_params);
	ck_assert_ptr_null(m->params.delete_params);

	m = config_find_model(p, "o3-mini");
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(m->max_tokens, 4096);
	ck_assert_int_eq(m->timeout_s, 60);
	ck_assert_ptr_nonnull(m->params.add_params);
	ck_assert(json_object_object_get_ex(m->params.add_params,
					    "reasoning_effort", &v));
	ck_assert(json_object_is_type(v, json_type_string));
	ck_assert_str_eq(json_object_get_string(v), "medium");
	ck_assert_ptr_null(m->params.update_params);

	m = config_find_model(p, "deepseek-reasoner");
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(m->max_tokens, 8192);
	ck_assert_int_eq(m->timeout_s, 180);
	ck_assert(json_object_object_get_ex(m->params.update_params,
					    "temperature", &v));
	ck_assert(json_object_is_type(v, json_type_double));
	ck_assert_double_eq_tol(json_object_get_double(v), 0.6, 1e-12);
	ck_assert(json_object_object_get_ex(m->params.rename_params,
					    "max_tokens", &v));
	ck_assert_str_eq(json_object_get_string(v), "max_reasoning_token");
	ck_assert(json_object_is_type(m->params.delete_params,
				      json_type_array));
	ck_assert_uint_eq(json_object_array_length(m->params.delete_params), 2);
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(
				 m->params.delete_params, 0)),
			 "presence_penalty");
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(
				 m->params.delete_params, 1)),
			 "frequency_penalty");
	ck_assert_ptr_null(config_find_model(p, "gpt-5"));

	ck_assert_str_eq(cfg->proxy.http, "socks5://127.0.0.1:7890");
	ck_assert_str_eq(cfg->proxy.https, "socks5://127.0.0.1:7890");
	ck_assert_ptr_null(cfg->proxy.no_proxy);

	ck_assert(cfg->logging.json);
	ck_assert_int_eq(cfg->logging.level, LOGL_INFO);
	ck_assert(cfg->logging.console);
	ck_assert_str_eq(cfg->logging.file_path, "logs/llm-bridge.log");
	ck_assert_int_eq(cfg->logging.max_size, 10485760);
	ck_assert_int_eq(cfg->logging.backup_count, 5);

	/* server defaults */
	ck_assert_str_eq(cfg->server.host, "127.0.0.1");
	ck_assert_uint_eq(cfg->server.port, 1219);
	ck_assert_uint_eq(cfg->server.max_body_bytes, 10485760);
	ck_assert_uint_eq(cfg->server.max_connections, 1024);
	ck_assert_uint_eq(cfg->server.shutdown_timeout_s, 30);
	ck_assert_uint_eq(cfg->server.n_cors_origins, 1);
	ck_assert_str_eq(cfg->server.cors_origins[0], "*");
	ck_assert(cfg->media.fetch);
	ck_assert(!cfg->media.allow_private);

	/* no ACCESS_API_KEYS: an empty store */
	ck_assert_uint_eq(cfg->n_access_keys, 0);
	ck_assert_ptr_nonnull(cfg->keys);
	ck_assert_uint_eq(keys_count(cfg->keys), 0);
	config_release(cfg);
}
END_TEST

START_TEST(shipped_config_loads)
{
	const char *top = getenv("LB_TOP_SRCDIR");
	struct buf path, err;
	struct config *cfg;
	const struct provider_cfg *p;
	const struct model_cfg *m;
	json_object *v;

	buf_init(&path, 0);
	buf_printf(&path, "%s/etc/config.yaml", top ? top : ".");
	buf_init(&err, 0);
	cfg = config_load(path.data, NULL, &err);
	ck_assert_msg(cfg != NULL, "%s", err.data ? err.data : "");
	ck_assert_uint_eq(err.len, 0);
	ck_assert_str_eq(cfg->default_provider, "openai");
	ck_assert_uint_eq(cfg->n_providers, 3);
	ck_assert_str_eq(cfg->server.host, "127.0.0.1");
	ck_assert_uint_eq(cfg->server.port, 1219);
	ck_assert_uint_eq(cfg->server.n_cors_origins, 1);
	ck_assert_str_eq(cfg->server.cors_origins[0], "*");
	/* "proxy:" with only comments under it */
	ck_assert_ptr_null(cfg->proxy.http);
	ck_assert_ptr_null(cfg->proxy.https);

	p = config_find_provider(cfg, "openai", 6);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->adapter, "openai");
	m = config_find_model(p, "o3-mini<high>");
	ck_assert_ptr_nonnull(m);
	ck_assert_str_eq(m->upstream_name, "o3-mini");
	ck_assert_int_eq(m->timeout_s, 600);
	ck_assert(json_object_object_get_ex(m->params.add_params,
					    "reasoning_effort", &v));
	ck_assert_str_eq(json_object_get_string(v), "high");
	ck_assert_ptr_null(config_find_model(p, "o3-mini"));

	p = config_find_provider(cfg, "deepseek", 8);
	ck_assert_ptr_nonnull(p);
	m = config_find_model(p, "deepseek-reasoner");
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(json_object_array_length(m->params.delete_params), 2);

	p = config_find_provider(cfg, "gemini", 6);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->adapter, "gemini");
	ck_assert_uint_eq(p->n_models, 3);
	ck_assert_ptr_null(config_find_provider(cfg, "closeai", 7));
	/* a prefix of a name is not the name */
	ck_assert_ptr_null(config_find_provider(cfg, "open", 4));
	config_release(cfg);
	buf_free(&err);
	buf_free(&path);
}
END_TEST

START_TEST(variant_models)
{
	struct config *cfg = load_ok("variant.yaml", NULL);
	const struct provider_cfg *p = config_find_provider(cfg, "closeai", 7);
	const struct model_cfg *hi, *lo, *base;
	json_object *v;

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p->timeout_s, 300);
	ck_assert_uint_eq(p->n_models, 5);
	hi = config_find_model(p, "o3-mini<high>");
	lo = config_find_model(p, "o3-mini<low>");
	base = config_find_model(p, "o3-mini");
	ck_assert_ptr_nonnull(hi);
	ck_assert_ptr_nonnull(lo);
	ck_assert_ptr_nonnull(base);
	ck_assert_ptr_ne(hi, base);
	ck_assert_str_eq(hi->upstream_name, "o3-mini");
	ck_assert_str_eq(lo->upstream_name, "o3-mini");
	ck_assert_str_eq(base->upstream_name, "o3-mini");
	ck_assert_int_eq(hi->timeout_s, 600);
	ck_assert_int_eq(lo->timeout_s, 0);
	ck_assert_int_eq(base->max_tokens, 4096);
	ck_assert(json_object_object_get_ex(lo->params.add_params,
					    "reasoning_effort", &v));
	ck_assert_str_eq(json_object_get_string(v), "low");
	/* not a variant: '<' first, or no closing '>' */
	ck_assert_str_eq(config_find_model(p, "<odd>")->upstream_name, "<odd>");
	ck_assert_str_eq(config_find_model(p, "odd<x")->upstream_name, "odd<x");
	config_release(cfg);
}
END_TEST

START_TEST(provider_keys_env_wins_and_expands)
{
	struct env *env;
	struct config *cfg;
	const struct provider_cfg *p;

	clear_test_env();
	env = env_from("CLOSEAI_API_KEY=from-env\n"
		       "LBT_CFG_VAR=expanded\n"
		       "MY_PROV_X_API_KEY=dotted\n");
	cfg = load_ok("api-keys.yaml", env);
	p = config_find_provider(cfg, "closeai", 7);
	ck_assert_str_eq(p->api_key, "from-env");
	p = config_find_provider(cfg, "other", 5);
	ck_assert_str_eq(p->api_key, "expanded");
	p = config_find_provider(cfg, "mixed", 5);
	ck_assert_str_eq(p->api_key, "pre-expanded-post");
	/* '-' and '.' become '_' in the variable name */
	p = config_find_provider(cfg, "my-prov.x", 9);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->api_key, "dotted");
	p = config_find_provider(cfg, "none", 4);
	ck_assert_ptr_null(p->api_key);
	config_release(cfg);
	env_free(env);

	/* the process environment wins over the env file, and over api_key */
	env = env_from("CLOSEAI_API_KEY=from-env\nLBT_CFG_VAR=file\n");
	setenv("CLOSEAI_API_KEY", "from-process", 1);
	setenv("LBT_CFG_VAR", "process", 1);
	cfg = load_ok("api-keys.yaml", env);
	ck_assert_str_eq(config_find_provider(cfg, "closeai", 7)->api_key,
			 "from-process");
	ck_assert_str_eq(config_find_provider(cfg, "other", 5)->api_key,
			 "process");
	config_release(cfg);
	env_free(env);
	clear_test_env();

	/* an empty <NAME>_API_KEY does not override api_key: */
	env = env_from("CLOSEAI_API_KEY=\nLBT_CFG_VAR=x\n");
	cfg = load_ok("api-keys.yaml", env);
	ck_assert_str_eq(config_find_provider(cfg, "closeai", 7)->api_key,
			 "from-file");
	config_release(cfg);
	env_free(env);
}
END_TEST

START_TEST(unset_variable_is_an_error)
{
	char *err;

	clear_test_env();
	err = load_fail("api-keys.yaml", NULL);
	assert_has(err, "LBT_CFG_VAR");
	assert_has(err, "providers.other.api_key");
	assert_has(err, "providers.mixed.api_key");
	assert_has(err, "api-keys.yaml:7:");
	assert_has(err, "api-keys.yaml:10:");
	ck_assert_int_eq(count_lines(err), 2);
	free(err);
}
END_TEST

START_TEST(access_keys_list)
{
	struct env *env;
	struct config *cfg;

	clear_test_env();
	env = env_from("ACCESS_API_KEYS=\"a, b,,c\"\n");
	cfg = load_ok("seed.yaml", env);
	ck_assert_uint_eq(cfg->n_access_keys, 3);
	ck_assert_str_eq(cfg->access_keys[0], "a");
	ck_assert_str_eq(cfg->access_keys[1], "b");
	ck_assert_str_eq(cfg->access_keys[2], "c");
	ck_assert_uint_eq(keys_count(cfg->keys), 3);
	ck_assert_ptr_nonnull(keys_lookup(cfg->keys, "a", 1));
	ck_assert_ptr_nonnull(keys_lookup(cfg->keys, "b", 1));
	ck_assert_ptr_nonnull(keys_lookup(cfg->keys, "c", 1));
	ck_assert_ptr_null(keys_lookup(cfg->keys, " b", 2));
	ck_assert_ptr_null(keys_lookup(cfg->keys, "", 0));
	ck_assert_ptr_null(keys_lookup(cfg->keys, "a, b", 4));
	config_release(cfg);
	env_free(env);
}
END_TEST

START_TEST(access_keys_json_object)
{
	struct env *env;
	struct config *cfg;

	clear_test_env();
	env = env_from("ACCESS_API_KEYS='{\"k1\":\"x\",\"k2\":\"y\"}'\n");
	cfg = load_ok("seed.yaml", env);
	ck_assert_uint_eq(cfg->n_access_keys, 2);
	ck_assert_uint_eq(keys_count(cfg->keys), 2);
	ck_assert_ptr_nonnull(keys_lookup(cfg->keys, "k1", 2));
	ck_assert_ptr_nonnull(keys_lookup(cfg->keys, "k2", 2));
	/* the member names are the keys, not the values */
	ck_assert_ptr_null(keys_lookup(cfg->keys, "x", 1));
	ck_assert_ptr_null(keys_lookup(cfg->keys, "y", 1));
	config_release(cfg);
	env_free(env);

	/* a broken JSON object is an error, not a key */
	env = env_from("ACCESS_API_KEYS='{\"k1\": '\n");
	char *err = load_fail("seed.yaml", env);
	assert_has(err, "ACCESS_API_KEYS");
	free(err);
	env_free(env);
}
END_TEST

START_TEST(yaml_syntax_error)
{
	char *err = load_fail("bad-syntax.yaml", NULL);
	char *path = fixture_path("bad-syntax.yaml");
	unsigned line = 0, col = 0;
	size_t plen = strlen(path);

	/* "path:line:col: problem" */
	ck_assert_int_eq(strncmp(err, path, plen), 0);
	ck_assert_int_eq(sscanf(err + plen, ":%u:%u:", &line, &col), 2);
	ck_assert_uint_ge(line, 3);
	ck_assert_uint_le(line, 5);
	ck_assert_uint_ge(col, 1);
	free(path);
	free(err);
}
END_TEST

START_TEST(wrong_types_all_reported)
{
	char *err = load_fail("bad-types.yaml", NULL);
	char *path = fixture_path("bad-types.yaml");
	char want[512];

	/* every problem, each naming file, line and key path */
	snprintf(want, sizeof(want), "%s:2:9: key 'server.port'", path);
	assert_has(err, want);
	snprintf(want, sizeof(want),
		 "%s:6:21: key 'providers.closeai.requires_proxy'", path);
	assert_has(err, want);
	snprintf(want, sizeof(want),
		 "%s:9:18: key 'providers.closeai.models.gpt-4o.timeout'",
		 path);
	assert_has(err, want);
	ck_assert_int_eq(count_lines(err), 3);
	free(path);
	free(err);
}
END_TEST

START_TEST(errors_appended_after_existing_text)
{
	char *path = fixture_path("bad-types.yaml");
	struct buf err;

	buf_init(&err, 0);
	buf_appends(&err, "earlier\n");
	ck_assert_ptr_null(config_load(path, NULL, &err));
	ck_assert_int_eq(strncmp(err.data, "earlier\n", 8), 0);
	ck_assert_int_eq(count_lines(err.data), 4);
	buf_free(&err);
	free(path);
}
END_TEST

START_TEST(unknown_adapter)
{
	char *err = load_fail("unknown-adapter.yaml", NULL);

	assert_has(err, "providers.claude");
	assert_has(err, "anthropic");
	assert_has(err, "unknown-adapter.yaml:3:");
	free(err);
}
END_TEST

START_TEST(missing_base_url)
{
	char *err = load_fail("no-base-url.yaml", NULL);

	assert_has(err, "key 'providers.closeai': base_url is required");
	/* gemini has a default base_url */
	ck_assert_ptr_null(strstr(err, "providers.google"));
	ck_assert_int_eq(count_lines(err), 1);
	free(err);
}
END_TEST

START_TEST(unknown_default_provider)
{
	char *err = load_fail("bad-default.yaml", NULL);

	assert_has(err, "default_provider");
	assert_has(err, "nope");
	free(err);
}
END_TEST

START_TEST(bad_base_url_scheme)
{
	char *path = tmp_file("providers:\n  p:\n    base_url: ftp://x/\n");
	struct buf err;

	buf_init(&err, 0);
	ck_assert_ptr_null(config_load(path, NULL, &err));
	assert_has(err.data, "providers.p");
	assert_has(err.data, "http://");
	buf_free(&err);
	drop_file(path);
}
END_TEST

START_TEST(duplicate_provider)
{
	char *path = tmp_file("providers:\n"
			      "  p: { base_url: \"https://a/v1\" }\n"
			      "  p: { base_url: \"https://b/v1\" }\n");
	struct buf err;

	buf_init(&err, 0);
	ck_assert_ptr_null(config_load(path, NULL, &err));
	assert_has(err.data, "providers.p");
	assert_has(err.data, "twice");
	buf_free(&err);
	drop_file(path);
}
END_TEST

START_TEST(unknown_keys_only_warn)
{
	char *logpath = tmp_file("");
	int saved = dup(2), fd = open(logpath, O_WRONLY | O_TRUNC);
	struct config *cfg;
	const struct provider_cfg *p;
	char logged[4096];
	ssize_t n;

	/* catch the warnings, which go to stderr */
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	dup2(fd, 2);
	cfg = load_ok("unknown-keys.yaml", NULL);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	fd = open(logpath, O_RDONLY);
	n = read(fd, logged, sizeof(logged) - 1);
	close(fd);
	ck_assert_int_gt(n, 0);
	logged[n] = '\0';
	assert_has(logged, "unknown-keys.yaml:2: unknown key 'frobnicate'");
	assert_has(logged, "unknown key 'server.colour'");
	assert_has(logged, "unknown key 'providers.closeai.surprise'");
	assert_has(logged, "unknown key 'providers.closeai.models.gpt-4o.wibble'");
	assert_has(logged, "unknown key 'media.shiny'");
	drop_file(logpath);

	p = config_find_provider(cfg, "closeai", 7);

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(config_find_model(p, "gpt-4o")->max_tokens, 100);
	ck_assert_ptr_null(config_find_model(p, "gpt-4o")->params.add_params);
	ck_assert_uint_eq(cfg->server.port, 1219);
	config_release(cfg);
}
END_TEST

START_TEST(empty_file_defaults)
{
	struct config *cfg = load_ok("empty.yaml", NULL);

	ck_assert_uint_eq(cfg->n_providers, 0);
	ck_assert_ptr_null(cfg->default_provider);
	ck_assert_str_eq(cfg->server.host, "127.0.0.1");
	ck_assert_uint_eq(cfg->server.port, 1219);
	ck_assert_uint_eq(cfg->server.max_body_bytes, 10485760);
	ck_assert(cfg->logging.json);
	ck_assert(cfg->logging.console);
	ck_assert_ptr_null(cfg->logging.file_path);
	ck_assert_uint_eq(keys_count(cfg->keys), 0);
	config_release(cfg);
}
END_TEST

START_TEST(top_level_not_a_mapping)
{
	char *err = load_fail("top-sequence.yaml", NULL);

	assert_has(err, "top-sequence.yaml:1:1:");
	assert_has(err, "expected a mapping");
	free(err);
}
END_TEST

START_TEST(missing_file)
{
	struct buf err;

	buf_init(&err, 0);
	ck_assert_ptr_null(config_load("/nonexistent/lb/config.yaml", NULL,
				       &err));
	assert_has(err.data, "/nonexistent/lb/config.yaml");
	assert_has(err.data, "cannot open");
	buf_free(&err);
}
END_TEST

START_TEST(all_sections)
{
	struct config *cfg = load_ok("server.yaml", NULL);
	const struct provider_cfg *a;

	ck_assert_str_eq(cfg->server.host, "::");
	ck_assert_uint_eq(cfg->server.port, 0);
	ck_assert_uint_eq(cfg->server.max_body_bytes, 1048576);
	ck_assert_uint_eq(cfg->server.max_connections, 10);
	ck_assert_uint_eq(cfg->server.shutdown_timeout_s, 5);
	ck_assert_uint_eq(cfg->server.n_cors_origins, 0);
	ck_assert_str_eq(cfg->default_provider, "b");
	a = config_find_provider(cfg, "a", 1);
	ck_assert_ptr_nonnull(a);
	ck_assert(a->requires_proxy);
	ck_assert(a->allow_unlisted_models);
	ck_assert_str_eq(a->proxy, "http://proxy.example.com:3128");
	ck_assert_int_eq(a->timeout_s, 42);
	ck_assert_uint_eq(a->n_models, 0);
	ck_assert_ptr_null(cfg->proxy.http); /* "" means unset */
	ck_assert_str_eq(cfg->proxy.https, "http://p:1");
	ck_assert_str_eq(cfg->proxy.no_proxy, "localhost,127.0.0.1");
	ck_assert(!cfg->logging.json);
	ck_assert_int_eq(cfg->logging.level, LOGL_WARNING);
	ck_assert(!cfg->logging.console);
	ck_assert_str_eq(cfg->logging.file_path, "/var/log/x.log");
	ck_assert_int_eq(cfg->logging.max_size, 65536);
	ck_assert_int_eq(cfg->logging.backup_count, 0);
	ck_assert(!cfg->media.fetch);
	ck_assert_uint_eq(cfg->media.max_bytes, 2 * 1024 * 1024);
	ck_assert_int_eq(cfg->media.timeout_s, 10);
	ck_assert(cfg->media.allow_private);
	config_release(cfg);
}
END_TEST

START_TEST(out_of_range_values)
{
	char *path = tmp_file("server:\n"
			      "  port: 65536\n"
			      "  max_body_bytes: 512\n"
			      "  max_connections: 0\n"
			      "logging:\n"
			      "  format: xml\n"
			      "  level: loud\n");
	struct buf err;

	buf_init(&err, 0);
	ck_assert_ptr_null(config_load(path, NULL, &err));
	assert_has(err.data, ":2:9: key 'server.port'");
	assert_has(err.data, ":3:19: key 'server.max_body_bytes'");
	assert_has(err.data, ":4:20: key 'server.max_connections'");
	assert_has(err.data, ":6:11: key 'logging.format'");
	assert_has(err.data, ":7:10: key 'logging.level'");
	ck_assert_int_eq(count_lines(err.data), 5);
	buf_free(&err);
	drop_file(path);
}
END_TEST

START_TEST(param_value_types)
{
	struct config *cfg = load_ok("types.yaml", NULL);
	const struct model_cfg *m =
		config_find_model(config_find_provider(cfg, "p", 1), "m");
	json_object *u, *want;

	ck_assert_ptr_nonnull(m);
	u = m->params.update_params;
	ck_assert(json_object_is_type(json_object_object_get(u, "f"),
				      json_type_double));
	ck_assert(json_object_is_type(json_object_object_get(u, "i"),
				      json_type_int));
	ck_assert(json_object_is_type(json_object_object_get(u, "s"),
				      json_type_string));
	ck_assert(json_object_is_type(json_object_object_get(u, "b"),
				      json_type_boolean));
	ck_assert(json_object_object_get_ex(u, "n", NULL));
	ck_assert_ptr_null(json_object_object_get(u, "n"));
	want = json_tokener_parse(
		"{\"f\":0.6,\"i\":42,\"neg\":-7,\"s\":\"42\",\"b\":true,"
		"\"bf\":false,\"n\":null,\"plain\":\"hello\","
		"\"list\":[1,\"two\",3.5],\"obj\":{\"a\":1,\"b\":[\"x\"]}}");
	ck_assert_msg(json_object_equal(u, want), "got %s",
		      json_object_to_json_string(u));
	json_object_put(want);
	config_release(cfg);
}
END_TEST

/*
 * Plain scalars in param_config are typed as PyYAML (YAML 1.1) types them,
 * so the original LLM Bridge's files send the same JSON upstream: TRUE and
 * yes are booleans, 0x1A and 0o17 integers, quoted values stay strings.
 */
START_TEST(param_value_types_yaml_core_schema)
{
	char *path = tmp_file("providers:\n"
			      "  p:\n"
			      "    base_url: https://x/v1\n"
			      "    models:\n"
			      "      m:\n"
			      "        param_config:\n"
			      "          update_params: { a: TRUE, b: FALSE, "
			      "c: 0x1A, d: yes, e: Off, f: 0o17, g: 1_000, "
			      "h: -0b101, i: tRUE, j: 'yes', k: 0.5 }\n");
	struct buf err;
	struct config *cfg;
	json_object *u, *want;

	buf_init(&err, 0);
	cfg = config_load(path, NULL, &err);
	drop_file(path); /* before any assertion can end the test */
	ck_assert_msg(cfg != NULL, "%s", err.data ? err.data : "");
	u = config_find_model(config_find_provider(cfg, "p", 1), "m")
		    ->params.update_params;
	want = json_tokener_parse("{\"a\":true,\"b\":false,\"c\":26,"
				  "\"d\":true,\"e\":false,\"f\":15,"
				  "\"g\":1000,\"h\":-5,\"i\":\"tRUE\","
				  "\"j\":\"yes\",\"k\":0.5}");
	ck_assert_msg(json_object_is_type(json_object_object_get(u, "c"),
					  json_type_int) &&
			      json_object_equal(u, want),
		      "got %s", json_object_to_json_string(u));
	json_object_put(want);
	config_release(cfg);
	buf_free(&err);
}
END_TEST

START_TEST(param_config_shape_errors)
{
	char *path = tmp_file("providers:\n"
			      "  p:\n"
			      "    base_url: https://x/v1\n"
			      "    models:\n"
			      "      m:\n"
			      "        param_config:\n"
			      "          update_params: [a]\n"
			      "          delete_params: { a: 1 }\n"
			      "          rename_params: { a: 1 }\n");
	struct buf err;

	buf_init(&err, 0);
	ck_assert_ptr_null(config_load(path, NULL, &err));
	assert_has(err.data, "providers.p.models.m.param_config.update_params");
	assert_has(err.data, "providers.p.models.m.param_config.delete_params");
	assert_has(err.data, "providers.p.models.m.param_config.rename_params");
	ck_assert_int_eq(count_lines(err.data), 3);
	buf_free(&err);
	drop_file(path);
}
END_TEST

START_TEST(refcounting)
{
	struct config *cfg = load_ok("seed.yaml", NULL);

	ck_assert_int_eq(cfg->refs, 1);
	ck_assert_ptr_eq(config_retain(cfg), cfg);
	ck_assert_int_eq(cfg->refs, 2);
	config_release(cfg);
	/* still alive after the first release */
	ck_assert_int_eq(cfg->refs, 1);
	ck_assert_str_eq(cfg->providers[0].name, "closeai");
	config_release(cfg); /* freed here; leaks would show in valgrind */
	config_release(NULL);
}
END_TEST

/* ---- named keys, usage, metrics, prices ---- */

START_TEST(named_keys_and_services)
{
	struct config *cfg = load_ok("named-keys.yaml", NULL);
	const struct key_def *a, *b, *c;
	const struct model_cfg *m;

	ck_assert_uint_eq(cfg->n_key_defs, 3);
	a = &cfg->key_defs[0];
	b = &cfg->key_defs[1];
	c = &cfg->key_defs[2];
	ck_assert_str_eq(a->name, "alice");
	ck_assert_uint_eq(a->digest[0], 0xba);
	ck_assert_uint_eq(a->n_models, 1);
	ck_assert_str_eq(a->models[0], "gem/*");
	ck_assert_uint_eq(a->limits.rpm, 60);
	ck_assert_uint_eq(a->limits.tpm, 100000);
	ck_assert_uint_eq(a->limits.budget_tokens, 1000000);
	ck_assert_int_eq(a->limits.period, LIMIT_PERIOD_DAY);
	ck_assert_int_eq(a->expires, 1801439999); /* 2027-01-31 23:59:59Z */
	ck_assert(a->enabled);
	ck_assert(a->admin);
	ck_assert_str_eq(b->name, "bob@example.org");
	ck_assert_uint_eq(b->digest[31], 0xae); /* upper-case hex */
	ck_assert_double_eq(b->limits.budget_cost, 5.5);
	ck_assert_int_eq(b->limits.period, LIMIT_PERIOD_MONTH);
	ck_assert_int_eq(b->expires, 1801396800); /* 2027-01-31 12:00:00Z */
	ck_assert(!b->enabled);
	ck_assert(!b->admin);
	ck_assert_str_eq(c->name, "carol"); /* from keys_file */
	ck_assert_uint_eq(c->digest[31], 1);
	ck_assert_uint_eq(keys_count(cfg->keys), 3);
	ck_assert_str_eq(cfg->usage.database,
			 "/var/lib/llm-bridge/test-usage.db");
	ck_assert(cfg->usage.database_set);
	ck_assert_uint_eq(cfg->usage.flush_interval_s, 2);
	ck_assert(cfg->metrics.enabled);
	ck_assert(cfg->metrics.require_key);
	m = config_find_model(config_find_provider(cfg, "gem", 3),
			      "gemini-2.0-flash");
	ck_assert(m->priced);
	ck_assert_double_eq(m->price_prompt, 0.1);
	ck_assert_double_eq(m->price_completion, 0.4);
	ck_assert_double_eq(m->price_cached, 0.1); /* defaults to prompt */
	m = config_find_model(config_find_provider(cfg, "gem", 3),
			      "gemini-2.5-pro");
	ck_assert_double_eq(m->price_cached, 0.31);
	config_release(cfg);
}
END_TEST

START_TEST(service_defaults)
{
	struct config *cfg = load_ok("seed.yaml", NULL);

	ck_assert_uint_eq(cfg->n_key_defs, 0);
	ck_assert_ptr_null(cfg->usage.database);
	ck_assert(!cfg->usage.database_set);
	ck_assert_uint_eq(cfg->usage.flush_interval_s, 5);
	ck_assert(cfg->metrics.enabled);
	ck_assert(!cfg->metrics.require_key);
	config_release(cfg);
}
END_TEST

START_TEST(bad_keys)
{
	char *err = load_fail("bad-keys.yaml", NULL);

	assert_has(err, "bad-keys.yaml:2:");
	assert_has(err, "key 'keys.0.name': key names hold");
	assert_has(err, "key 'keys.1.hash': expected sha256:");
	assert_has(err, "key 'keys.2': a key needs a name and a hash");
	assert_has(err, "key 'keys.3': budget: needs period");
	assert_has(err, "key 'keys.3.expires': expected a date");
	assert_has(err, "key 'keys.4.budget.period': expected day or month");
	assert_has(err, "the name 'dup' is used twice");
	/* the plain key is never echoed back */
	ck_assert_ptr_null(strstr(err, "sk-this-is-a-plain-key"));
	free(err);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("load");

	tcase_add_test(tc, seed_loads_unchanged);
	tcase_add_test(tc, shipped_config_loads);
	tcase_add_test(tc, variant_models);
	tcase_add_test(tc, provider_keys_env_wins_and_expands);
	tcase_add_test(tc, unset_variable_is_an_error);
	tcase_add_test(tc, access_keys_list);
	tcase_add_test(tc, access_keys_json_object);
	tcase_add_test(tc, yaml_syntax_error);
	tcase_add_test(tc, wrong_types_all_reported);
	tcase_add_test(tc, errors_appended_after_existing_text);
	tcase_add_test(tc, unknown_adapter);
	tcase_add_test(tc, missing_base_url);
	tcase_add_test(tc, unknown_default_provider);
	tcase_add_test(tc, bad_base_url_scheme);
	tcase_add_test(tc, duplicate_provider);
	tcase_add_test(tc, unknown_keys_only_warn);
	tcase_add_test(tc, empty_file_defaults);
	tcase_add_test(tc, top_level_not_a_mapping);
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, all_sections);
	tcase_add_test(tc, out_of_range_values);
	tcase_add_test(tc, param_value_types);
	tcase_add_test(tc, param_config_shape_errors);
	tcase_add_test(tc, refcounting);
	suite_add_tcase(s, tc);

	tc = tcase_create("keys");
	tcase_add_test(tc, named_keys_and_services);
	tcase_add_test(tc, service_defaults);
	tcase_add_test(tc, bad_keys);
	suite_add_tcase(s, tc);
	tc = tcase_create("yaml-typing");
	tcase_add_test(tc, param_value_types_yaml_core_schema);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(config_suite());
}
