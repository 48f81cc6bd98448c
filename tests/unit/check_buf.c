/* SPDX-License-Identifier: MIT */
/* Unit tests for buf: the capped growable byte buffer. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "testutil.h"

START_TEST(init_allocates_nothing)
{
	struct buf b;

	buf_init(&b, 123);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.max, 123);
	buf_free(&b);
}
END_TEST

START_TEST(append_and_nul_terminated)
{
	struct buf b;

	buf_init(&b, 0);
	ck_assert_int_eq(buf_append(&b, "abc", 3), 0);
	ck_assert_int_eq(buf_appends(&b, "def"), 0);
	ck_assert_uint_eq(b.len, 6);
	ck_assert_str_eq(b.data, "abcdef");
	/* binary bytes, including NUL, are kept */
	ck_assert_int_eq(buf_append(&b, "x\0y", 3), 0);
	ck_assert_uint_eq(b.len, 9);
	ck_assert_int_eq(memcmp(b.data, "abcdefx\0y", 9), 0);
	ck_assert_int_eq(b.data[9], '\0');
	/* empty append is fine and changes nothing */
	ck_assert_int_eq(buf_append(&b, "", 0), 0);
	ck_assert_uint_eq(b.len, 9);
	buf_free(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(append_grows_large)
{
	struct buf b;
	char chunk[1000];

	memset(chunk, 'q', sizeof(chunk));
	buf_init(&b, 0);
	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(buf_append(&b, chunk, sizeof(chunk)), 0);
	ck_assert_uint_eq(b.len, 1000000);
	ck_assert_uint_ge(b.cap, b.len + 1);
	for (size_t i = 0; i < b.len; i += 997)
		ck_assert_int_eq(b.data[i], 'q');
	ck_assert_int_eq(b.data[b.len], '\0');
	buf_free(&b);
}
END_TEST

START_TEST(cap_refuses_and_leaves_unchanged)
{
	struct buf b;

	buf_init(&b, 10);
	ck_assert_int_eq(buf_appends(&b, "12345"), 0);
	ck_assert_int_eq(buf_appends(&b, "123456"), -1); /* 11 > 10 */
	ck_assert_uint_eq(b.len, 5);
	ck_assert_str_eq(b.data, "12345");
	ck_assert_int_eq(buf_appends(&b, "67890"), 0); /* exactly 10 */
	ck_assert_uint_eq(b.len, 10);
	ck_assert_str_eq(b.data, "1234567890");
	ck_assert_int_eq(buf_append(&b, "x", 1), -1);
	ck_assert_str_eq(b.data, "1234567890");
	/* an empty append at the cap is still fine */
	ck_assert_int_eq(buf_append(&b, "", 0), 0);
	ck_assert_uint_eq(b.len, 10);
	buf_free(&b);
}
END_TEST

START_TEST(printf_small_and_large)
{
	struct buf b;
	char big[1000];

	buf_init(&b, 0);
	ck_assert_int_eq(buf_printf(&b, "%d-%s", 42, "x"), 0);
	ck_assert_str_eq(b.data, "42-x");
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	/* longer than the 256-byte stack buffer: the second path */
	ck_assert_int_eq(buf_printf(&b, "[%s]", big), 0);
	ck_assert_uint_eq(b.len, 4 + 2 + 999);
	ck_assert_int_eq(b.data[4], '[');
	ck_assert_int_eq(b.data[5], 'z');
	ck_assert_int_eq(b.data[b.len - 1], ']');
	ck_assert_int_eq(b.data[b.len], '\0');
	ck_assert_uint_eq(strlen(b.data), b.len);
	buf_free(&b);
}
END_TEST

START_TEST(printf_respects_cap)
{
	struct buf b;
	char big[600];

	buf_init(&b, 20);
	ck_assert_int_eq(buf_printf(&b, "%s", "0123456789"), 0);
	ck_assert_int_eq(buf_printf(&b, "%s", "0123456789A"), -1);
	ck_assert_str_eq(b.data, "0123456789");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(buf_printf(&b, "%s", big), -1); /* large path */
	ck_assert_uint_eq(b.len, 10);
	ck_assert_str_eq(b.data, "0123456789");
	ck_assert_int_eq(buf_printf(&b, "%05d%s", 7, "abcde"), 0);
	ck_assert_str_eq(b.data, "012345678900007abcde");
	buf_free(&b);
}
END_TEST

static char *json_of(const char *s, size_t n)
{
	struct buf b;

	buf_init(&b, 0);
	ck_assert_int_eq(buf_append_json_str(&b, s, n), 0);
	return buf_steal(&b);
}

START_TEST(json_escaping)
{
	char *o;

	o = json_of("", 0);
	ck_assert_str_eq(o, "\"\"");
	free(o);
	o = json_of("plain text", 10);
	ck_assert_str_eq(o, "\"plain text\"");
	free(o);
	o = json_of("say \"hi\"", 8);
	ck_assert_str_eq(o, "\"say \\\"hi\\\"\"");
	free(o);
	o = json_of("a\\b", 3);
	ck_assert_str_eq(o, "\"a\\\\b\"");
	free(o);
	o = json_of("l1\nl2\r\tx", 8);
	ck_assert_str_eq(o, "\"l1\\nl2\\r\\tx\"");
	free(o);
	o = json_of("\x01\x1f\x08\x0c", 4);
	ck_assert_str_eq(o, "\"\\u0001\\u001f\\u0008\\u000c\"");
	free(o);
	/* an embedded NUL is escaped, and n (not strlen) decides the end */
	o = json_of("a\0b", 3);
	ck_assert_str_eq(o, "\"a\\u0000b\"");
	free(o);
	o = json_of("abcdef", 3);
	ck_assert_str_eq(o, "\"abc\"");
	free(o);
	/* DEL and '/' are not escaped */
	o = json_of("/\x7f", 2);
	ck_assert_str_eq(o, "\"/\x7f\"");
	free(o);
}
END_TEST

START_TEST(json_utf8_passes_through)
{
	const char *s = "h\xc3\xa9llo \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80";
	char *o = json_of(s, strlen(s));
	char want[64];

	strcpy(want, "\"");
	strcat(want, s);
	strcat(want, "\"");
	ck_assert_str_eq(o, want);
	free(o);
}
END_TEST

/* What is not well-formed UTF-8 comes out as U+FFFD, a byte at a time,
 * and the text around it stays as it was. */
START_TEST(json_ill_formed_utf8_replaced)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "a\xff" "b", "\"a\\ufffdb\"" },              /* never a lead */
		{ "\x80", "\"\\ufffd\"" },                    /* stray continuation */
		{ "\xc0\xaf", "\"\\ufffd\\ufffd\"" },          /* overlong '/' */
		{ "\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"" }, /* overlong, 3 bytes */
		{ "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"" }, /* a surrogate */
		{ "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" }, /* > U+10FFFF */
		{ "x\xe4\xb8", "\"x\\ufffd\\ufffd\"" },        /* cut short */
		{ "\xc3\xa9\xc3", "\"\xc3\xa9\\ufffd\"" },    /* whole, then cut */
		{ "\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"" }, /* U+10FFFF itself */
		{ "\xed\x9f\xbf", "\"\xed\x9f\xbf\"" },       /* U+D7FF */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *o = json_of(cases[i].in, strlen(cases[i].in));

		ck_assert_msg(strcmp(o, cases[i].out) == 0, "case %zu: %s",
			      i, o);
		free(o);
	}
}
END_TEST

START_TEST(json_respects_cap)
{
	struct buf b;

	buf_init(&b, 5);
	ck_assert_int_eq(buf_append_json_str(&b, "abcdefgh", 8), -1);
	ck_assert_uint_le(b.len, 5);
	buf_free(&b);
	buf_init(&b, 5);
	ck_assert_int_eq(buf_append_json_str(&b, "abc", 3), 0);
	ck_assert_str_eq(b.data, "\"abc\"");
	buf_free(&b);
}
END_TEST

START_TEST(reset_keeps_allocation)
{
	struct buf b;

	buf_init(&b, 0);
	buf_appends(&b, "hello world");
	buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_ptr_nonnull(b.data); /* allocation kept */
	ck_assert_str_eq(b.data, "");
	buf_appends(&b, "again");
	ck_assert_str_eq(b.data, "again");
	buf_free(&b);
}
END_TEST

START_TEST(steal)
{
	struct buf b;
	char *s;

	buf_init(&b, 0);
	s = buf_steal(&b);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "");
	free(s);

	buf_appends(&b, "mine");
	s = buf_steal(&b);
	ck_assert_str_eq(s, "mine");
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	free(s);

	/* usable again afterwards */
	ck_assert_int_eq(buf_appends(&b, "next"), 0);
	ck_assert_str_eq(b.data, "next");
	buf_reset(&b);
	s = buf_steal(&b); /* allocated but empty */
	ck_assert_str_eq(s, "");
	free(s);
	buf_free(&b);
}
END_TEST

START_TEST(utf8_every_length)
{
	struct buf b;

	buf_init(&b, 0);
	buf_append_utf8(&b, 0x41);
	buf_append_utf8(&b, 0xe9);
	buf_append_utf8(&b, 0x20ac);
	buf_append_utf8(&b, 0x2d800);
	ck_assert_uint_eq(b.len, 1 + 2 + 3 + 4);
	ck_assert(!memcmp(b.data, "A\xc3\xa9\xe2\x82\xac\xf0\xad\xa0\x80", b.len));
	buf_free(&b);
}
END_TEST

static Suite *buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, init_allocates_nothing);
	tcase_add_test(tc, append_and_nul_terminated);
	tcase_add_test(tc, append_grows_large);
	tcase_add_test(tc, cap_refuses_and_leaves_unchanged);
	tcase_add_test(tc, printf_small_and_large);
	tcase_add_test(tc, printf_respects_cap);
	tcase_add_test(tc, json_escaping);
	tcase_add_test(tc, json_utf8_passes_through);
	tcase_add_test(tc, json_ill_formed_utf8_replaced);
	tcase_add_test(tc, json_respects_cap);
	tcase_add_test(tc, reset_keeps_allocation);
	tcase_add_test(tc, steal);
	tcase_add_test(tc, utf8_every_length);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(buf_suite());
}
