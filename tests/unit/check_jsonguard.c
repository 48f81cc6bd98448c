/* SPDX-License-Identifier: MIT */
/* Unit tests for jsonguard: what it refuses, what it lets json-c judge. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "jsonguard.h"

static int check(const char *s, struct api_error *err)
{
	memset(err, 0, sizeof(*err));
	return jsonguard_check(s, strlen(s), 128, err);
}

static void refused(const char *s, const char *param, const char *code)
{
	struct api_error err;

	ck_assert_msg(check(s, &err) == -1, "accepted: %s", s);
	ck_assert_int_eq(err.status, 400);
	ck_assert_str_eq(err.type, "invalid_request_error");
	if (param)
		ck_assert_msg(err.param && !strcmp(err.param, param),
			      "%s: param %s", s, err.param ? err.param : "null");
	else
		ck_assert_msg(!err.param, "%s: param %s", s, err.param);
	if (code)
		ck_assert_str_eq(err.code, code);
	else
		ck_assert_ptr_null(err.code);
}

static void passed(const char *s)
{
	struct api_error err;

	ck_assert_msg(check(s, &err) == 0, "refused: %s: %s", s, err.message);
}

START_TEST(valid_json_passes)
{
	passed("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
	       "\"h\\u00e9 \\ud83d\\ude00 \xc3\xa9 \\u0000\"}]}");
	passed("{\"a\":[1,-0,0.5,1e10,-1.5E-3,9223372036854775807,"
	       "-9223372036854775808,1e-400],\"b\":{\"a\":{\"a\":1}},"
	       "\"c\":[{\"x\":1},{\"x\":2}],\"d\":true,\"e\":false,\"f\":null}");
	passed("{\"a\":1,\"A\":2}");
}
END_TEST

START_TEST(grammar_errors_are_left_to_json_c)
{
	passed("{");
	passed("{\"a\":");
	passed("{\"a\" 1}");
	passed("{\"a\":[1,]}");
	passed("{\"unterminated");
	passed("{\"a\":\"\\q\"}");
	passed("]]]");
}
END_TEST

START_TEST(strings)
{
	refused("{\"a\":\"\\ud800\"}", NULL, NULL);
	refused("{\"a\":\"\\udc00\"}", NULL, NULL);
	refused("{\"a\":\"\\ud800\\u0041\"}", NULL, NULL);
	refused("{\"a\":\"\\udc00\\ud800\"}", NULL, NULL);
	refused("{\"a\":\"x\x01y\"}", NULL, NULL);
	refused("{\"a\":\"x\ny\"}", NULL, NULL);
	refused("{\"a\":\"\xff\"}", NULL, NULL);
	refused("{\"a\":\"\xc0\x80\"}", NULL, NULL);
	refused("{\"a\":\"\xe0\x80\xaf\"}", NULL, NULL);
	refused("{\"a\":\"\xed\xa0\x80\"}", NULL, NULL);
	refused("{\"a\":\"\xf4\x90\x80\x80\"}", NULL, NULL);
	refused("{\"a\":\"\xe2\x82\"}", NULL, NULL);
	refused("{\"k\xff\":1}", NULL, NULL);
	{
		static const char nul[] = "{\"a\":1}\0";
		struct api_error err;

		ck_assert_int_eq(jsonguard_check(nul, sizeof(nul) - 1, 128, &err),
				 -1);
	}
}
END_TEST

START_TEST(numbers)
{
	refused("{\"seed\":9223372036854775808}", "seed", NULL);
	refused("{\"seed\":-9223372036854775809}", "seed", NULL);
	refused("{\"seed\":00000000000000000000001}", "seed", NULL);
	refused("{\"temperature\":1e400}", "temperature", NULL);
	refused("{\"temperature\":-1e309}", "temperature", NULL);
	refused("{\"temperature\":NaN}", "temperature", NULL);
	refused("{\"temperature\":-Infinity}", "temperature", NULL);
	refused("{\"temperature\":1.}", "temperature", NULL);
	refused("{\"top_p\":01}", "top_p", NULL);
	refused("{\"metadata\":{\"x\":[1e999]}}", "metadata", NULL);
	refused("{\"unknown\":1e999}", NULL, NULL);
	/* a word that is not a value is a syntax error of the whole body */
	refused("{\"model\":\"m\"/*c*/}", NULL, NULL);
	refused("{\"model\":\"m\"}x", NULL, NULL);
	refused("1e999", NULL, NULL);
}
END_TEST

START_TEST(duplicate_keys)
{
	refused("{\"model\":\"a\",\"model\":\"b\"}", "model", "duplicate_key");
	refused("{\"model\":\"a\",\"m\\u006fdel\":\"b\"}", "model",
		"duplicate_key");
	refused("{\"x\":1,\"y\":2,\"x\":3}", NULL, "duplicate_key");
	refused("{\"a\":{\"b\":1,\"b\":2}}", NULL, "duplicate_key");
	refused("{\"a\":[{\"r\":1,\"r\":1}]}", NULL, "duplicate_key");
	refused("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", NULL,
		"duplicate_key");
	passed("{\"a\":{\"a\":1},\"b\":{\"a\":1}}");
	passed("{\"a\":[{\"k\":1},{\"k\":2}],\"k\":3}");
}
END_TEST

START_TEST(depth)
{
	char *s = malloc(20001);

	memset(s, '[', 10000);
	memset(s + 10000, ']', 10000);
	s[20000] = '\0';
	refused(s, NULL, NULL);
	s[129] = '\0'; /* 129 open brackets */
	refused(s, NULL, NULL);
	memset(s + 64, ']', 64);
	s[128] = '\0';
	passed(s);
	free(s);
}
END_TEST

START_TEST(known_fields)
{
	ck_assert_str_eq(jsonguard_field("seed", 4), "seed");
	ck_assert_ptr_null(jsonguard_field("see", 3));
	ck_assert_ptr_null(jsonguard_field("seedx", 5));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jsonguard");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, valid_json_passes);
	tcase_add_test(tc, grammar_errors_are_left_to_json_c);
	tcase_add_test(tc, strings);
	tcase_add_test(tc, numbers);
	tcase_add_test(tc, duplicate_keys);
	tcase_add_test(tc, depth);
	tcase_add_test(tc, known_fields);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
