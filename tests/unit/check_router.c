/* SPDX-License-Identifier: MIT */
/* Unit tests for router: model names to routes. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "testutil.h"

static struct model_cfg models_a[] = {
	{ .name = "gpt-4o", .upstream_name = "gpt-4o", .timeout_s = 120 },
	{ .name = "o3-mini<high>", .upstream_name = "o3-mini" },
	{ .name = "org/model-x", .upstream_name = "org/model-x" },
};
static struct model_cfg models_b[] = {
	{ .name = "deepseek-chat", .upstream_name = "deepseek-chat" },
};
static struct provider_cfg providers[] = {
	{ .name = "closeai", .adapter = "openai", .timeout_s = 300,
	  .models = models_a, .n_models = 3 },
	{ .name = "open", .adapter = "openai", .allow_unlisted_models = true },
	{ .name = "weird", .adapter = "nope" },
	{ .name = "deepseek", .adapter = "openai", .models = models_b,
	  .n_models = 1 },
};

/* config_find_* come from config.c; this table stands in for a loaded
 * file so the router is tested on its own. */
static struct config cfg = {
	.default_provider = "closeai",
	.providers = providers,
	.n_providers = 4,
};

START_TEST(routes_provider_slash_model)
{
	struct route r;
	struct api_error err;

	ck_assert_int_eq(router_resolve(&cfg, "closeai/gpt-4o", &r, &err), 0);
	ck_assert_str_eq(r.provider->name, "closeai");
	ck_assert_ptr_eq(r.model, &models_a[0]);
	ck_assert_str_eq(r.upstream_model, "gpt-4o");
	ck_assert_str_eq(r.adapter->name, "openai");
	ck_assert_int_eq(router_timeout_s(&r), 120);
}
END_TEST

START_TEST(splits_at_first_slash_only)
{
	struct route r;
	struct api_error err;

	ck_assert_int_eq(router_resolve(&cfg, "closeai/org/model-x", &r, &err), 0);
	ck_assert_str_eq(r.upstream_model, "org/model-x");
	ck_assert_int_eq(router_resolve(&cfg, "open/a/b/c", &r, &err), 0);
	ck_assert_ptr_null(r.model);
	ck_assert_str_eq(r.upstream_model, "a/b/c");
}
END_TEST

START_TEST(no_slash_goes_to_default_provider)
{
	struct route r;
	struct api_error err;

	ck_assert_int_eq(router_resolve(&cfg, "gpt-4o", &r, &err), 0);
	ck_assert_str_eq(r.provider->name, "closeai");
	ck_assert_int_eq(router_timeout_s(&r), 120);
}
END_TEST

START_TEST(variant_selects_entry_and_strips_suffix)
{
	struct route r;
	struct api_error err;

	ck_assert_int_eq(router_resolve(&cfg, "closeai/o3-mini<high>", &r, &err), 0);
	ck_assert_ptr_eq(r.model, &models_a[1]);
	ck_assert_str_eq(r.upstream_model, "o3-mini");
	/* provider default timeout when the model sets none */
	ck_assert_int_eq(router_timeout_s(&r), 300);
	/* the bare name is not configured: a variant is not its base */
	ck_assert_int_eq(router_resolve(&cfg, "closeai/o3-mini", &r, &err), -1);
	ck_assert_int_eq(err.status, 404);
}
END_TEST

START_TEST(unlisted_variant_is_stripped)
{
	struct route r;
	struct api_error err;

	ck_assert_int_eq(router_resolve(&cfg, "open/foo<bar>", &r, &err), 0);
	ck_assert_str_eq(r.upstream_model, "foo");
	ck_assert_int_eq(router_timeout_s(&r), 600);
}
END_TEST

START_TEST(unknown_is_model_not_found)
{
	static const char *const bad[] = {
		"nope/gpt-4o", "closeai/gpt-5", "deepseek/gpt-4o", "/gpt-4o",
		"closeai/", "unknown-model", "deepseek", "closeai/GPT-4O",
	};
	struct route r;
	struct api_error err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_int_eq(router_resolve(&cfg, bad[i], &r, &err), -1);
		ck_assert_int_eq(err.status, 404);
		ck_assert_str_eq(err.code, "model_not_found");
		ck_assert_str_eq(err.type, "invalid_request_error");
		ck_assert_ptr_nonnull(strstr(err.message, bad[i]));
	}
}
END_TEST

START_TEST(no_default_provider)
{
	struct config c2 = cfg;
	struct route r;
	struct api_error err;

	c2.default_provider = NULL;
	ck_assert_int_eq(router_resolve(&c2, "gpt-4o", &r, &err), -1);
	ck_assert_int_eq(err.status, 404);
}
END_TEST

START_TEST(unknown_adapter_is_server_error)
{
	struct provider_cfg p = { .name = "weird", .adapter = "nope",
				  .allow_unlisted_models = true };
	struct config c2 = { .providers = &p, .n_providers = 1 };
	struct route r;
	struct api_error err;

	ck_assert_int_eq(router_resolve(&c2, "weird/x", &r, &err), -1);
	ck_assert_int_eq(err.status, 500);
}
END_TEST

static Suite *router_suite(void)
{
	Suite *s = suite_create("router");
	TCase *tc = tcase_create("resolve");

	tcase_add_test(tc, routes_provider_slash_model);
	tcase_add_test(tc, splits_at_first_slash_only);
	tcase_add_test(tc, no_slash_goes_to_default_provider);
	tcase_add_test(tc, variant_selects_entry_and_strips_suffix);
	tcase_add_test(tc, unlisted_variant_is_stripped);
	tcase_add_test(tc, unknown_is_model_not_found);
	tcase_add_test(tc, no_default_provider);
	tcase_add_test(tc, unknown_adapter_is_server_error);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(router_suite());
}
