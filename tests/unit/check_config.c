/* SPDX-License-Identifier: MIT */
/* Unit tests for config: YAML + env into a snapshot, and its errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "env.h"
#include "keys.h"

static char path[64];

static const char *write_tmp(const char *text)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/lb-config-XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/* Load text with env_text as the .env; errors into err (may be NULL). */
static struct config *load_text(const char *text, const char *env_text,
				struct buf *err)
{
	struct buf tmp;
	struct env *env;
	struct config *cfg;
	char env_path[64];

	buf_init(&tmp, 0);
	write_tmp(env_text ? env_text : "");
	snprintf(env_path, sizeof(env_path), "%s", path);
	env = env_load(env_path, 1, &tmp);
	ck_assert_ptr_nonnull(env);
	unlink(env_path);
	cfg = config_load(write_tmp(text), env, err ? err : &tmp);
	unlink(path);
	env_free(env);
	buf_free(&tmp);
	return cfg;
}

static char *fixture_path(const char *rel, const char *envvar,
			  const char *fallback)
{
	const char *dir = getenv(envvar);
	char *p;

	if (asprintf(&p, "%s/%s", dir && *dir ? dir : fallback, rel) < 0)
		abort();
	return p;
}

START_TEST(seed_config_loads_unchanged)
{
	char *p = fixture_path("fixtures/config/seed.yaml", "LB_TESTS_SRCDIR",
			       ".");
	struct env *env = env_new_empty();
	struct buf err;
	struct config *cfg;
	const struct provider_cfg *pr;
	const struct model_cfg *m;
	json_object *v;

	buf_init(&err, 0);
	cfg = config_load(p, env, &err);
	ck_assert_msg(cfg != NULL, "%s", err.data);
	ck_assert_uint_eq(cfg->n_providers, 1);
	pr = config_find_provider(cfg, "closeai", 7);
	ck_assert_ptr_nonnull(pr);
	ck_assert_str_eq(pr->adapter, "openai");
	ck_assert_str_eq(cfg->default_provider, "closeai");
	ck_assert_uint_eq(pr->n_models, 3);
	m = config_find_model(pr, "gpt-4o");
	ck_assert_int_eq(m->max_tokens, 8192);
	ck_assert_int_eq(m->timeout_s, 120);
	m = config_find_model(pr, "o3-mini");
	ck_assert(json_object_object_get_ex(m->params.add_params,
					    "reasoning_effort", &v));
	ck_assert(json_object_is_type(v, json_type_string));
	m = config_find_model(pr, "deepseek-reasoner");
	ck_assert_int_eq(m->timeout_s, 180);
	ck_assert(json_object_object_get_ex(m->params.update_params,
					    "temperature", &v));
	ck_assert(json_object_is_type(v, json_type_double));
	ck_assert_double_eq_tol(json_object_get_double(v), 0.6, 1e-9);
	ck_assert_uint_eq(json_object_array_length(m->params.delete_params), 2);
	ck_assert_str_eq(cfg->proxy.https, "socks5://127.0.0.1:7890");
	ck_assert(cfg->logging.json);
	ck_assert_str_eq(cfg->logging.file_path, "logs/llm-bridge.log");
	ck_assert_str_eq(cfg->server.host, "127.0.0.1");
	ck_assert_uint_eq(cfg->server.port, 1219);
	ck_assert_uint_eq(cfg->server.max_body_bytes, 10485760);
	config_release(cfg);
	env_free(env);
	buf_free(&err);
	free(p);
}
END_TEST

START_TEST(shipped_config_loads)
{
	char *p = fixture_path("etc/config.yaml", "LB_TOP_SRCDIR", "..");
	struct env *env = env_new_empty();
	struct buf err;
	struct config *cfg;

	buf_init(&err, 0);
	cfg = config_load(p, env, &err);
	ck_assert_msg(cfg != NULL, "%s", err.data);
	ck_assert_ptr_nonnull(config_find_provider(cfg, "openai", 6));
	ck_assert_ptr_nonnull(config_find_provider(cfg, "deepseek", 8));
	ck_assert_ptr_nonnull(config_find_provider(cfg, "gemini", 6));
	config_release(cfg);
	env_free(env);
	buf_free(&err);
	free(p);
}
END_TEST

START_TEST(variants_keys_and_expansion)
{
	struct config *cfg = load_text(
		"providers:\n"
		"  closeai:\n"
		"    base_url: https://x.example/v1\n"
		"    api_key: \"${MY_VAR}-suffix\"\n"
		"    models:\n"
		"      o3-mini<high>: { timeout: 600 }\n"
		"  other:\n"
		"    base_url: https://y.example/v1\n"
		"    api_key: from-yaml\n",
		"MY_VAR=expanded\nOTHER_API_KEY=from-env\n"
		"ACCESS_API_KEYS= a, b,,c \n", NULL);
	const struct provider_cfg *p;
	const struct model_cfg *m;

	ck_assert_ptr_nonnull(cfg);
	p = config_find_provider(cfg, "closeai", 7);
	ck_assert_str_eq(p->api_key, "expanded-suffix");
	m = config_find_model(p, "o3-mini<high>");
	ck_assert_str_eq(m->upstream_name, "o3-mini");
	/* <NAME>_API_KEY beats api_key:, as in the original */
	ck_assert_str_eq(config_find_provider(cfg, "other", 5)->api_key,
			 "from-env");
	ck_assert_uint_eq(cfg->n_access_keys, 3);
	ck_assert_ptr_nonnull(keys_lookup(cfg->keys, "b", 1));
	ck_assert_ptr_null(keys_lookup(cfg->keys, " b", 2));
	config_retain(cfg);
	config_release(cfg);
	config_release(cfg);
}
END_TEST

START_TEST(access_keys_json_form)
{
	struct config *cfg = load_text("providers: {}\n",
		"ACCESS_API_KEYS={\"k1\":\"alice\",\"k2\":\"bob\"}\n", NULL);

	ck_assert_uint_eq(cfg->n_access_keys, 2);
	ck_assert_ptr_nonnull(keys_lookup(cfg->keys, "k2", 2));
	config_release(cfg);
}
END_TEST

START_TEST(every_error_reported_with_location)
{
	struct buf err;
	char want[128];

	buf_init(&err, 0);
	ck_assert_ptr_null(load_text(
		"server:\n"
		"  port: abc\n"
		"  max_body_bytes: 5XB\n"
		"default_provider: nowhere\n"
		"providers:\n"
		"  a:\n"
		"    adapter: soap\n"
		"    base_url: ftp://x\n"
		"    requires_proxy: maybe\n"
		"    api_key: ${UNSET_LB_VAR}\n"
		"    models:\n"
		"      m: { timeout: -1 }\n"
		"  b: {}\n", NULL, &err));
	snprintf(want, sizeof(want), "%s:2:9: key 'server.port'", path);
	ck_assert_msg(strstr(err.data, want) != NULL, "%s", err.data);
	ck_assert_ptr_nonnull(strstr(err.data, "key 'server.max_body_bytes'"));
	ck_assert_ptr_nonnull(strstr(err.data, "key 'providers.a.requires_proxy'"));
	ck_assert_ptr_nonnull(strstr(err.data, "key 'providers.a.models.m.timeout'"));
	ck_assert_ptr_nonnull(strstr(err.data, "adapter 'soap' is unknown"));
	ck_assert_ptr_nonnull(strstr(err.data, "base_url must start with"));
	ck_assert_ptr_nonnull(strstr(err.data, "UNSET_LB_VAR is not set"));
	ck_assert_ptr_nonnull(strstr(err.data, "base_url is required"));
	buf_reset(&err);

	/* a later file-level check still reports */
	ck_assert_ptr_null(load_text("default_provider: nowhere\n", NULL, &err));
	ck_assert_ptr_nonnull(strstr(err.data, "no provider named 'nowhere'"));
	buf_reset(&err);

	ck_assert_ptr_null(load_text("providers:\n  a: [1,\n", NULL, &err));
	snprintf(want, sizeof(want), "%s:", path);
	ck_assert_ptr_nonnull(strstr(err.data, want));
	buf_free(&err);
}
END_TEST

START_TEST(unknown_keys_warn_and_empty_file_defaults)
{
	struct config *cfg = load_text("mystery: 1\nserver: { colour: red }\n",
				       NULL, NULL);

	ck_assert_ptr_nonnull(cfg);
	config_release(cfg);
	cfg = load_text("", NULL, NULL);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_uint_eq(cfg->n_providers, 0);
	ck_assert_uint_eq(cfg->server.port, 1219);
	ck_assert_uint_eq(cfg->server.n_cors_origins, 1);
	ck_assert(cfg->media.fetch);
	ck_assert(!cfg->media.allow_private);
	config_release(cfg);
}
END_TEST

START_TEST(sizes_and_missing_file)
{
	struct config *cfg = load_text("server: { max_body_bytes: 2MiB }\n"
				       "media: { max_bytes: 512K }\n", NULL,
				       NULL);
	struct env *env = env_new_empty();
	struct buf err;

	ck_assert_uint_eq(cfg->server.max_body_bytes, 2u << 20);
	ck_assert_uint_eq(cfg->media.max_bytes, 512u << 10);
	config_release(cfg);
	buf_init(&err, 0);
	ck_assert_ptr_null(config_load("/nonexistent/lb.yaml", env, &err));
	ck_assert_ptr_nonnull(strstr(err.data, "cannot open"));
	buf_free(&err);
	env_free(env);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, seed_config_loads_unchanged);
	tcase_add_test(tc, shipped_config_loads);
	tcase_add_test(tc, variants_keys_and_expansion);
	tcase_add_test(tc, access_keys_json_form);
	tcase_add_test(tc, every_error_reported_with_location);
	tcase_add_test(tc, unknown_keys_warn_and_empty_file_defaults);
	tcase_add_test(tc, sizes_and_missing_file);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
