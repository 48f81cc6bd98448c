/* SPDX-License-Identifier: MIT */
/* Unit tests for jsonguard: what it refuses, what it lets json-c judge;
 * and for jsonspan, the other reader of raw JSON text. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "jsonguard.h"
#include "jsonspan.h"
#include "testutil.h"

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

/* ---- jsonspan ---- */

static bool span_ok(const char *s)
{
	return jspan_check(s, strlen(s), 4);
}

START_TEST(span_check)
{
	static const char *const good[] = {
		"{}", " [ ] ", "{\"a\":[1,-2,3.5,1e9,-0.0,true,false,null]}",
		"\"\\u00e9\\ud83d\\ude00\\n\\/\"", "-9223372036854775808",
		"9223372036854775807", "{\"a\" : {\"b\":[[]]}}\n",
	};
	static const char *const bad[] = {
		"", "{", "{\"a\":1,}", "[1,]", "{\"a\" 1}", "01", "1.", ".5",
		"-", "1e", "tru", "nul", "{a:1}", "'x'", "\"\\x\"",
		"\"\\u0000\"", "\"\\udc00\"", "\"\\ud800\"",
		"\"\\ud800\\u0041\"", "\"a\tb\"", "{\"\\u0061\":1}",
		"-0", "9223372036854775808", "-9223372036854775809",
		"[[[[[]]]]]", "1 2", "{} x", "NaN",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(span_ok(good[i]), "refused: %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!span_ok(bad[i]), "accepted: %s", bad[i]);
}
END_TEST

START_TEST(span_read)
{
	const char *s = "{ \"a\" : [1, {\"x\":\"]}\\\"\"}] ,\"n\":-42,"
			"\"s\":\"caf\\u00e9 \\ud83d\\ude00\\t\\\"\","
			"\"a\":\"last\"}";
	struct jspan obj = jspan_trim(s, strlen(s)), v, k, m;
	struct jspan_iter it;
	struct buf b;
	int64_t n;
	int count = 0;

	ck_assert(jspan_check(s, strlen(s), 8));
	ck_assert(jspan_get(obj, "a", &v));
	ck_assert(v.n == 6 && memcmp(v.p, "\"last\"", 6) == 0);
	ck_assert(jspan_string_plain(v));
	ck_assert(jspan_get(obj, "n", &v) && jspan_int64(v, &n));
	ck_assert_int_eq(n, -42);
	ck_assert(!jspan_get(obj, "x", &v));
	ck_assert(!jspan_get(v = (struct jspan){ "[1]", 3 }, "a", &v));
	ck_assert(jspan_get(obj, "s", &v) && !jspan_string_plain(v));
	buf_init(&b, 0);
	jspan_string(v, &b);
	ck_assert_str_eq(b.data, "caf\xc3\xa9 \xf0\x9f\x98\x80\t\"");
	buf_free(&b);
	jspan_iter_init(&it, obj);
	while (jspan_next_member(&it, &k, &v, &m))
		count++;
	ck_assert_int_eq(count, 4);
	ck_assert(!jspan_int64((struct jspan){ "1.0", 3 }, &n));
	ck_assert(!jspan_int64((struct jspan){ "\"1\"", 3 }, &n));
}
END_TEST

/* several members in one pass: what jspan_get() finds for each key */
START_TEST(span_read_members)
{
	static const char *const keys[] = { "a", "x", "n", "s" };
	const char *s = "{\"a\":1,\"n\":{\"a\":2},\"s\":\"t\",\"a\":[3]}";
	struct jspan obj = jspan_trim(s, strlen(s)), v[4], one;

	ck_assert(jspan_check(s, strlen(s), 8));
	jspan_get_members(obj, keys, v, 4);
	for (size_t i = 0; i < 4; i++) {
		if (!jspan_get(obj, keys[i], &one)) {
			ck_assert_ptr_null(v[i].p);
			ck_assert_uint_eq(v[i].n, 0);
			continue;
		}
		ck_assert_msg(v[i].p == one.p && v[i].n == one.n,
			      "key %s differs", keys[i]);
	}
	ck_assert(v[0].n == 3 && memcmp(v[0].p, "[3]", 3) == 0);
	jspan_get_members((struct jspan){ "[1]", 3 }, keys, v, 4);
	ck_assert_ptr_null(v[0].p);
}
END_TEST

START_TEST(span_check_object)
{
	const char *s = " {\"a\":[1,{\"b\":2}], \"c\" : \"x\"} ";
	struct jspan_member m[2];
	size_t n;

	ck_assert(jspan_check_object(s, strlen(s), 4, m, 2, &n));
	ck_assert_uint_eq(n, 2);
	ck_assert(m[0].key.n == 1 && m[0].key.p[0] == 'a');
	ck_assert(m[0].val.n == 11 && memcmp(m[0].val.p, "[1,{\"b\":2}]",
						    11) == 0);
	ck_assert(m[1].val.n == 3 && memcmp(m[1].val.p, "\"x\"", 3) == 0);
	ck_assert(m[1].member.n == 9 &&
		  memcmp(m[1].member.p, "\"c\" : \"x\"", 9) == 0);
	ck_assert(!jspan_check_object(s, strlen(s), 4, m, 1, &n));
	ck_assert(!jspan_check_object("[1]", 3, 4, m, 2, &n));
	ck_assert(!jspan_check_object("{\"a\":1,}", 8, 4, m, 2, &n));
	ck_assert(jspan_check_object("{}", 2, 4, m, 2, &n));
	ck_assert_uint_eq(n, 0);
}
END_TEST

static void cut(const char *in, const char *key, const char *want)
{
	char text[128];
	struct jspan obj, k, v, m;
	struct jspan_iter it;
	size_t len = strlen(in);

	memcpy(text, in, len + 1);
	obj = jspan_trim(text, len);
	jspan_iter_init(&it, obj);
	while (jspan_next_member(&it, &k, &v, &m))
		if (k.n == strlen(key) && memcmp(k.p, key, k.n) == 0)
			break;
	len = jspan_cut_member(text, len, m);
	ck_assert_str_eq(text, want);
	ck_assert_uint_eq(len, strlen(want));
}

START_TEST(span_cut)
{
	cut("{\"u\":null,\"a\":1}", "u", "{\"a\":1}");
	cut("{\"a\":1,\"u\":null,\"b\":2}", "u", "{\"a\":1,\"b\":2}");
	cut("{\"a\":1, \"u\" : null }", "u", "{\"a\":1 }");
	cut("{\"u\":{\"x\":[1,2]}}", "u", "{}");
}
END_TEST

/* ---- json-c's mangled surrogate pairs ---- */

static size_t utf8_of(unsigned long cp, char *u)
{
	u[0] = (char)(0xf0 | (cp >> 18));
	u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	u[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* What json-c makes of the JSON string text, after jsonguard_unmangle:
 * must be exactly the character cp. Every pair json-c 0.16 gets wrong,
 * and a sample of the rest, which must pass untouched. */
START_TEST(unmangle_pairs)
{
	struct buf scratch;
	unsigned long checked = 0, rewritten = 0;

	buf_init(&scratch, 0);
	for (unsigned long cp = 0x10000; cp <= 0x10ffff; cp++) {
		bool affected = (cp & 0xf800) == 0xd800;
		unsigned long v = cp - 0x10000;
		char text[32], want[4];
		const char *s = text;
		size_t n;
		json_object *o;

		if (!affected && cp % 251)
			continue;
		n = (size_t)snprintf(text, sizeof(text), "\"\\u%04lX\\u%04lx\"",
				     0xd800 | (v >> 10), 0xdc00 | (v & 0x3ff));
		ck_assert_int_eq(jsonguard_unmangle(&s, &n, &scratch), affected);
		rewritten += affected;
		o = json_tokener_parse(s);
		ck_assert_ptr_nonnull(o);
		ck_assert_int_eq(json_object_get_string_len(o),
				 (int)utf8_of(cp, want));
		ck_assert_msg(!memcmp(json_object_get_string(o), want, 4),
			      "U+%lX decoded wrongly", cp);
		json_object_put(o);
		checked++;
	}
	ck_assert_uint_eq(rewritten, 32768);
	ck_assert_uint_gt(checked, 32768 + 3000);
	buf_free(&scratch);
}
END_TEST

/* Only escapes are rewritten, the rest of the text stays byte for byte,
 * and an escaped backslash followed by "ud876" is no escape at all. */
START_TEST(unmangle_context)
{
	struct buf scratch;
	const char *in = "{\"a\":\"x\\\\ud876\\udc00\",\"b\":[\"\\ud876\\udc00y\","
			 "\"\\ud83d\\ude00\"]}";
	const char *want = "{\"a\":\"x\\\\ud876\\udc00\",\"b\":[\"\xf0\xad\xa0\x80y\","
			   "\"\\ud83d\\ude00\"]}";
	const char *s = in;
	size_t n = strlen(in);

	buf_init(&scratch, 0);
	ck_assert(jsonguard_unmangle(&s, &n, &scratch));
	ck_assert_uint_eq(n, strlen(want));
	ck_assert(!memcmp(s, want, n));
	/* nothing to do: the text itself comes back, no copy */
	s = "{\"a\":\"\\ud83d\\ude00 \\\\ud876\\udc00\"}";
	n = strlen(s);
	ck_assert(!jsonguard_unmangle(&s, &n, &scratch));
	buf_free(&scratch);
}
END_TEST

/* Whether a byte needs thought inside a string, as the byte loops after
 * jspan_skip_plain() decide. */
static bool plain_byte(unsigned char c, bool ascii)
{
	return c >= 0x20 && c != '"' && c != '\\' && (!ascii || c < 0x80);
}

/* jspan_skip_plain() finds the first byte needing thought, for every
 * byte value at every place of a plain text (in the byte loop's first 16
 * bytes and in the words after them), alone and next to other bytes,
 * above all the ones whose borrow could hide a neighbour (0x00, 0x1f,
 * 0x20, 0x21, 0x22, 0x23, 0x5c, 0x7f, 0x80, 0xff). */
static void check_skip(const unsigned char *t, size_t n, bool ascii)
{
	const char *s = (const char *)t;
	size_t at = (size_t)(jspan_skip_plain(s, s + n, ascii) - s);
	size_t first = n;

	for (size_t i = 0; i < n; i++)
		if (!plain_byte(t[i], ascii)) {
			first = i;
			break;
		}
	ck_assert_msg(at == first, "stopped at %zu of %zu, but the first byte "
		      "needing thought is at %zu (0x%02x, ascii %d)", at, n,
		      first, first < n ? t[first] : 0, ascii);
}

START_TEST(skip_plain)
{
	static const unsigned char edge[] = { 0x00, 0x01, 0x1f, 0x20, 0x21,
		0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7f, 0x80, 0x81, 0xfe, 0xff };
	unsigned char t[64];
	unsigned seed = 12345;

	for (int ascii = 0; ascii < 2; ascii++) {
		for (size_t pos = 0; pos < 48; pos++)
			for (unsigned c = 0; c < 256; c++) {
				memset(t, 'a', sizeof(t));
				t[pos] = (unsigned char)c;
				for (size_t n = pos; n <= 48; n++)
					check_skip(t, n, ascii);
			}
		for (size_t a = 16; a < 32; a++)
			for (size_t b = 16; b < 32; b++)
				for (size_t i = 0; i < sizeof(edge); i++)
					for (size_t j = 0; j < sizeof(edge); j++) {
						memset(t, 'a', sizeof(t));
						t[a] = edge[i];
						t[b] = edge[j];
						check_skip(t, 32, ascii);
						check_skip(t, 35, ascii);
					}
		for (int k = 0; k < 200000; k++) {
			size_t n = (seed = seed * 1103515245 + 12345) % 65;

			for (size_t i = 0; i < n; i++) {
				seed = seed * 1103515245 + 12345;
				/* mostly plain text, a special now and then */
				t[i] = (seed >> 16) % 16 ? (unsigned char)(0x20 +
					(seed >> 8) % 0x60) : (unsigned char)(seed >> 24);
			}
			check_skip(t, n, ascii);
		}
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jsonguard");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, valid_json_passes);
	tcase_add_test(tc, grammar_errors_are_left_to_json_c);
	tcase_add_test(tc, strings);
	tcase_add_test(tc, numbers);
	tcase_add_test(tc, duplicate_keys);
	tcase_add_test(tc, depth);
	tcase_add_test(tc, known_fields);
	suite_add_tcase(s, tc);
	tc = tcase_create("jsonspan");
	tcase_add_test(tc, span_check);
	tcase_add_test(tc, skip_plain);
	tcase_add_test(tc, span_read);
	tcase_add_test(tc, span_read_members);
	tcase_add_test(tc, span_check_object);
	tcase_add_test(tc, span_cut);
	tcase_add_test(tc, unmangle_pairs);
	tcase_add_test(tc, unmangle_context);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
