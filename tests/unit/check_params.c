/* SPDX-License-Identifier: MIT */
/* Unit tests for params: param_config applied to a request object. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "testutil.h"

static json_object *J(const char *s)
{
	json_object *o = json_tokener_parse(s);

	ck_assert_msg(o != NULL, "bad JSON in test: %s", s);
	return o;
}

/* req equals want (as JSON values, member order ignored). */
static void assert_json(json_object *req, const char *want)
{
	json_object *w = J(want);

	ck_assert_msg(json_object_equal(req, w), "got %s, want %s",
		      json_object_to_json_string(req), want);
	json_object_put(w);
}

static void pc_from(struct param_config *pc, const char *upd, const char *add,
		    const char *ren, const char *del)
{
	memset(pc, 0, sizeof(*pc));
	pc->update_params = upd ? J(upd) : NULL;
	pc->add_params = add ? J(add) : NULL;
	pc->rename_params = ren ? J(ren) : NULL;
	pc->delete_params = del ? J(del) : NULL;
}

START_TEST(update_always_sets)
{
	struct param_config pc;
	json_object *req = J("{\"temperature\":1.0,\"model\":\"m\"}");

	pc_from(&pc, "{\"temperature\":0.6,\"top_p\":0.9}", NULL, NULL, NULL);
	params_apply(&pc, req);
	assert_json(req, "{\"temperature\":0.6,\"top_p\":0.9,\"model\":\"m\"}");
	json_object_put(req);
	params_free(&pc);
}
END_TEST

START_TEST(add_only_when_absent)
{
	struct param_config pc;
	json_object *req = J("{\"reasoning_effort\":\"low\",\"x\":null}");

	pc_from(&pc, NULL, "{\"reasoning_effort\":\"medium\",\"x\":1,"
		"\"stream_options\":{\"include_usage\":true}}", NULL, NULL);
	params_apply(&pc, req);
	/* an explicit null counts as present */
	assert_json(req, "{\"reasoning_effort\":\"low\",\"x\":null,"
		    "\"stream_options\":{\"include_usage\":true}}");
	json_object_put(req);

	req = J("{}");
	params_apply(&pc, req);
	assert_json(req, "{\"reasoning_effort\":\"medium\",\"x\":1,"
		    "\"stream_options\":{\"include_usage\":true}}");
	json_object_put(req);
	params_free(&pc);
}
END_TEST

START_TEST(rename_moves_value)
{
	struct param_config pc;
	json_object *req;

	pc_from(&pc, NULL, NULL, "{\"max_tokens\":\"max_reasoning_token\"}",
		NULL);
	req = J("{\"max_tokens\":100,\"model\":\"m\"}");
	params_apply(&pc, req);
	assert_json(req, "{\"max_reasoning_token\":100,\"model\":\"m\"}");
	json_object_put(req);

	/* an existing target is replaced */
	req = J("{\"max_tokens\":100,\"max_reasoning_token\":5}");
	params_apply(&pc, req);
	assert_json(req, "{\"max_reasoning_token\":100}");
	json_object_put(req);

	/* absent old: nothing at all, the target is left alone */
	req = J("{\"max_reasoning_token\":5}");
	params_apply(&pc, req);
	assert_json(req, "{\"max_reasoning_token\":5}");
	json_object_put(req);
	req = J("{}");
	params_apply(&pc, req);
	assert_json(req, "{}");
	json_object_put(req);
	params_free(&pc);
}
END_TEST

START_TEST(rename_to_itself_keeps_value)
{
	struct param_config pc;
	json_object *req = J("{\"a\":{\"deep\":[1,2]}}");

	pc_from(&pc, NULL, NULL, "{\"a\":\"a\"}", NULL);
	params_apply(&pc, req);
	assert_json(req, "{\"a\":{\"deep\":[1,2]}}");
	json_object_put(req);
	params_free(&pc);
}
END_TEST

START_TEST(delete_removes_listed)
{
	struct param_config pc;
	json_object *req = J("{\"presence_penalty\":0.1,\"frequency_penalty\":0,"
			     "\"keep\":1}");

	pc_from(&pc, NULL, NULL, NULL,
		"[\"presence_penalty\",\"frequency_penalty\",\"absent\"]");
	params_apply(&pc, req);
	assert_json(req, "{\"keep\":1}");
	json_object_put(req);
	params_free(&pc);
}
END_TEST

START_TEST(order_update_add_rename_delete)
{
	struct param_config pc;
	json_object *req;

	/* update runs before add: add sees the updated key as present;
	 * rename runs after update/add and sees their values; delete runs
	 * last and removes even keys that update/add/rename produced. */
	pc_from(&pc,
		"{\"a\":\"upd\",\"d\":\"upd-d\"}",
		"{\"a\":\"add\",\"b\":\"add-b\",\"c\":\"add-c\"}",
		"{\"a\":\"a2\",\"b\":\"b2\"}",
		"[\"c\",\"d\"]");
	req = J("{\"keep\":true}");
	params_apply(&pc, req);
	assert_json(req, "{\"keep\":true,\"a2\":\"upd\",\"b2\":\"add-b\"}");
	json_object_put(req);

	/* delete after rename: deleting the rename target removes it */
	params_free(&pc);
	pc_from(&pc, NULL, NULL, "{\"x\":\"y\"}", "[\"y\"]");
	req = J("{\"x\":1}");
	params_apply(&pc, req);
	assert_json(req, "{}");
	json_object_put(req);

	/* delete of the old name after rename: the moved value survives */
	params_free(&pc);
	pc_from(&pc, NULL, NULL, "{\"x\":\"y\"}", "[\"x\"]");
	req = J("{\"x\":1}");
	params_apply(&pc, req);
	assert_json(req, "{\"y\":1}");
	json_object_put(req);
	params_free(&pc);
}
END_TEST

START_TEST(seed_deepseek_reasoner)
{
	/* the original LLM Bridge's deepseek-reasoner param_config */
	struct param_config pc;
	json_object *req = J("{\"model\":\"deepseek-reasoner\",\"temperature\":1,"
			     "\"max_tokens\":500,\"presence_penalty\":0.5,"
			     "\"frequency_penalty\":0.2,\"messages\":[]}");

	pc_from(&pc, "{\"temperature\":0.6}", NULL,
		"{\"max_tokens\":\"max_reasoning_token\"}",
		"[\"presence_penalty\",\"frequency_penalty\"]");
	params_apply(&pc, req);
	assert_json(req, "{\"model\":\"deepseek-reasoner\",\"temperature\":0.6,"
		    "\"max_reasoning_token\":500,\"messages\":[]}");
	json_object_put(req);
	params_free(&pc);
}
END_TEST

START_TEST(values_are_deep_copied)
{
	struct param_config pc;
	json_object *req = J("{}"), *req2 = J("{}"), *v;

	pc_from(&pc, "{\"u\":{\"k\":[1,2]}}", "{\"a\":{\"k\":\"v\"}}", NULL,
		NULL);
	params_apply(&pc, req);
	params_apply(&pc, req2);
	/* mutate the request's copies */
	ck_assert(json_object_object_get_ex(req, "u", &v));
	ck_assert_ptr_ne(v, json_object_object_get(pc.update_params, "u"));
	json_object_array_add(json_object_object_get(v, "k"),
			      json_object_new_int(3));
	ck_assert(json_object_object_get_ex(req, "a", &v));
	json_object_object_add(v, "k", json_object_new_string("changed"));
	json_object_put(req); /* and drop the request entirely */

	assert_json(pc.update_params, "{\"u\":{\"k\":[1,2]}}");
	assert_json(pc.add_params, "{\"a\":{\"k\":\"v\"}}");
	assert_json(req2, "{\"u\":{\"k\":[1,2]},\"a\":{\"k\":\"v\"}}");
	/* pc is not referenced by the request any more */
	ck_assert_int_eq(json_object_put(req2), 1);
	params_free(&pc);
}
END_TEST

START_TEST(rename_and_delete_leave_config_untouched)
{
	struct param_config pc;
	json_object *req = J("{\"a\":1,\"b\":2}");

	pc_from(&pc, NULL, NULL, "{\"a\":\"z\"}", "[\"b\"]");
	params_apply(&pc, req);
	assert_json(req, "{\"z\":1}");
	assert_json(pc.rename_params, "{\"a\":\"z\"}");
	assert_json(pc.delete_params, "[\"b\"]");
	json_object_put(req);
	params_free(&pc);
}
END_TEST

START_TEST(null_members_are_noops)
{
	struct param_config pc = { 0 };
	json_object *req = J("{\"a\":1,\"b\":[true]}");

	params_apply(&pc, req);
	assert_json(req, "{\"a\":1,\"b\":[true]}");
	params_apply(NULL, req);
	assert_json(req, "{\"a\":1,\"b\":[true]}");
	json_object_put(req);

	/* not an object: left alone */
	pc_from(&pc, "{\"a\":1}", NULL, NULL, NULL);
	req = J("[1]");
	params_apply(&pc, req);
	assert_json(req, "[1]");
	json_object_put(req);
	params_free(&pc);
	ck_assert_ptr_null(pc.update_params);
	params_free(&pc); /* twice is harmless after the reset */
}
END_TEST

/* The pipeline sends a request on as text only when no param applies. */
START_TEST(empty_only_without_any_param)
{
	struct param_config pc = { 0 };

	ck_assert(params_empty(&pc));
	pc_from(&pc, NULL, NULL, NULL, "[\"x\"]");
	ck_assert(!params_empty(&pc));
	params_free(&pc);
	ck_assert(params_empty(&pc));
	pc_from(&pc, NULL, "{\"a\":1}", NULL, NULL);
	ck_assert(!params_empty(&pc));
	params_free(&pc);
	pc_from(&pc, NULL, NULL, "{\"a\":\"b\"}", NULL);
	ck_assert(!params_empty(&pc));
	params_free(&pc);
	pc_from(&pc, "{\"a\":1}", NULL, NULL, NULL);
	ck_assert(!params_empty(&pc));
	params_free(&pc);
}
END_TEST

static Suite *params_suite(void)
{
	Suite *s = suite_create("params");
	TCase *tc = tcase_create("apply");

	tcase_add_test(tc, update_always_sets);
	tcase_add_test(tc, add_only_when_absent);
	tcase_add_test(tc, rename_moves_value);
	tcase_add_test(tc, rename_to_itself_keeps_value);
	tcase_add_test(tc, delete_removes_listed);
	tcase_add_test(tc, order_update_add_rename_delete);
	tcase_add_test(tc, seed_deepseek_reasoner);
	tcase_add_test(tc, values_are_deep_copied);
	tcase_add_test(tc, rename_and_delete_leave_config_untouched);
	tcase_add_test(tc, null_members_are_noops);
	tcase_add_test(tc, empty_only_without_any_param);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(params_suite());
}
