/* SPDX-License-Identifier: MIT */
/* Unit tests for params: param_config in the original's order. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"

static const char *js(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
}

START_TEST(order_update_add_rename_delete)
{
	struct param_config pc = {
		.update_params = json_tokener_parse("{\"temperature\":0.6,\"x\":1}"),
		.add_params = json_tokener_parse("{\"top_p\":0.5,\"seed\":7,"
						 "\"reasoning_effort\":\"high\"}"),
		.rename_params = json_tokener_parse("{\"max_tokens\":"
						    "\"max_completion_tokens\","
						    "\"absent\":\"other\","
						    "\"x\":\"y\"}"),
		.delete_params = json_tokener_parse("[\"presence_penalty\","
						    "\"not_there\",\"y\"]"),
	};
	json_object *req = json_tokener_parse(
		"{\"model\":\"m\",\"temperature\":1.0,\"top_p\":0.9,"
		"\"max_tokens\":50,\"max_completion_tokens\":9,"
		"\"presence_penalty\":1}");

	params_apply(&pc, req);
	/* update always; add only when absent; rename replaces the target;
	 * delete sees the renamed key (x -> y -> deleted) */
	ck_assert_str_eq(js(req), "{\"model\":\"m\",\"temperature\":0.6,"
			 "\"top_p\":0.9,\"max_completion_tokens\":50,"
			 "\"seed\":7,\"reasoning_effort\":\"high\"}");
	json_object_put(req);
	params_free(&pc);
	ck_assert_ptr_null(pc.update_params);
}
END_TEST

START_TEST(values_are_copied)
{
	struct param_config pc = {
		.update_params = json_tokener_parse("{\"stop\":[\"a\"]}"),
	};
	json_object *req = json_tokener_parse("{}"), *stop;

	params_apply(&pc, req);
	json_object_object_get_ex(req, "stop", &stop);
	json_object_array_add(stop, json_object_new_string("b"));
	ck_assert_str_eq(js(pc.update_params), "{\"stop\":[\"a\"]}");
	json_object_put(req);
	params_free(&pc);
}
END_TEST

START_TEST(empty_config_is_a_no_op)
{
	struct param_config pc = { 0 };
	json_object *req = json_tokener_parse("{\"a\":1}");

	params_apply(&pc, req);
	params_apply(NULL, req);
	ck_assert_str_eq(js(req), "{\"a\":1}");
	json_object_put(req);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("params");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, order_update_add_rename_delete);
	tcase_add_test(tc, values_are_copied);
	tcase_add_test(tc, empty_config_is_a_no_op);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
