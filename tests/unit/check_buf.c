/* SPDX-License-Identifier: MIT */
/* Unit tests for buf: the capped byte buffer. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

START_TEST(append_and_cap)
{
	struct buf b;

	buf_init(&b, 8);
	ck_assert_int_eq(buf_appends(&b, "abcd"), 0);
	ck_assert_int_eq(buf_printf(&b, "%d", 123), 0);
	ck_assert_str_eq(b.data, "abcd123");
	/* over the cap: refused, unchanged */
	ck_assert_int_eq(buf_appends(&b, "xy"), -1);
	ck_assert_str_eq(b.data, "abcd123");
	ck_assert_int_eq(buf_printf(&b, "%s", "long string"), -1);
	ck_assert_uint_eq(b.len, 7);
	ck_assert_int_eq(buf_appends(&b, "z"), 0);
	ck_assert_uint_eq(b.len, 8);
	buf_consume(&b, 3);
	ck_assert_str_eq(b.data, "d123z");
	buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(b.data, "");
	buf_free(&b);
}
END_TEST

START_TEST(json_string_escaping)
{
	struct buf b;
	const char in[] = "q\"b\\n\n\t\x01\x1f\xc3\xa9/";

	buf_init(&b, 0);
	ck_assert_int_eq(buf_append_json_str(&b, in, sizeof(in) - 1), 0);
	ck_assert_str_eq(b.data, "\"q\\\"b\\\\n\\n\\t\\u0001\\u001f\xc3\xa9/\"");
	buf_free(&b);
}
END_TEST

START_TEST(steal_and_growth)
{
	struct buf b;
	char *s;

	buf_init(&b, 0);
	s = buf_steal(&b);
	ck_assert_str_eq(s, "");
	free(s);
	for (int i = 0; i < 10000; i++)
		buf_append(&b, "0123456789", 10);
	ck_assert_uint_eq(b.len, 100000);
	ck_assert_uint_eq(strlen(b.data), 100000);
	s = buf_steal(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_ptr_null(b.data);
	free(s);
	buf_free(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, append_and_cap);
	tcase_add_test(tc, json_string_escaping);
	tcase_add_test(tc, steal_and_growth);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
