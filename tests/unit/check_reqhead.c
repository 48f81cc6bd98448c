/* SPDX-License-Identifier: MIT */
/* Unit tests for reqhead: the first request head on a connection. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "reqhead.h"
#include "testutil.h"

static struct reqhead h;
static struct api_error err;

static enum reqhead_result parse(const char *s)
{
	return reqhead_parse(s, strlen(s), 1024, 1000, "/v1/ws", &h, &err);
}

static void bad(const char *s, int status, const char *code)
{
	ck_assert_msg(parse(s) == REQHEAD_BAD, "not refused: %s", s);
	ck_assert_int_eq(err.status, status);
	ck_assert_str_eq(err.code, code);
}

START_TEST(good_heads)
{
	ck_assert_int_eq(parse("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"),
			 REQHEAD_OK);
	ck_assert_str_eq(h.method, "GET");
	ck_assert(!h.ws_path);
	ck_assert_uint_eq(h.head_len, 33);
	ck_assert_int_eq(parse("\r\nPOST /v1/chat/completions HTTP/1.0\n"
			       "Content-Length: 12\nX:\n\n{}"), REQHEAD_OK);
	ck_assert(h.has_length);
	ck_assert_uint_eq(h.content_length, 12);
	ck_assert_int_eq(parse("GET /v1/ws?x=1 HTTP/1.1\r\nUpgrade: WebSocket"
			       "\r\nConnection: keep-alive, Upgrade\r\n\r\n"),
			 REQHEAD_OK);
	ck_assert(h.ws_path);
	ck_assert(reqhead_has_token(&h.upgrade, "websocket"));
	ck_assert(reqhead_has_token(&h.connection, "upgrade"));
	ck_assert(!reqhead_has_token(&h.connection, "close"));
	ck_assert_int_eq(parse("GET /v1/wsx HTTP/1.1\r\n\r\n"), REQHEAD_OK);
	ck_assert(!h.ws_path);
	ck_assert_int_eq(parse("POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked"
			       "\r\n\r\n"), REQHEAD_OK);
	ck_assert(h.chunked);
}
END_TEST

START_TEST(incomplete_heads_wait)
{
	ck_assert_int_eq(parse(""), REQHEAD_MORE);
	ck_assert_int_eq(parse("GE"), REQHEAD_MORE);
	ck_assert_int_eq(parse("GET /health HT"), REQHEAD_MORE);
	ck_assert_int_eq(parse("GET /health HTTP/1.1\r\nHost: x\r\n"),
			 REQHEAD_MORE);
}
END_TEST

START_TEST(malformed_heads)
{
	bad("\x16\x03\x01", 400, "malformed_request");
	bad("GARBAGE\r\n\r\n", 400, "malformed_request");
	bad("GET /a b HTTP/1.1\r\n\r\n", 400, "malformed_request");
	bad("GET /health HTTP/1.1\r\n folded\r\n\r\n", 400,
	    "malformed_request");
	bad("GET /health HTTP/1.1\r\nX : y\r\n\r\n", 400, "malformed_request");
	bad("GET /health HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, "malformed_request");
	bad("GET /health HTTP/2.0\r\n\r\n", 505, "http_version_not_supported");
	bad("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400,
	    "invalid_content_length");
	bad("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
	    400, "invalid_content_length");
	bad("POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413,
	    "request_too_large");
	bad("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
	    413, "request_too_large");
	bad("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400,
	    "unsupported_transfer_encoding");
	bad("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Length: 1\r\n\r\n", 400, "ambiguous_body_length");
}
END_TEST

START_TEST(size_limit)
{
	char *s = malloc(2000);

	memcpy(s, "GET / HTTP/1.1\r\nX: ", 19);
	memset(s + 19, 'a', 2000 - 20);
	s[1999] = '\0';
	bad(s, 431, "headers_too_large");
	memcpy(s + 900, "\r\n\r\n", 5);
	ck_assert_int_eq(parse(s), REQHEAD_OK);
	free(s);
}
END_TEST

/* fields are counted, not only bytes: the engine's pool holds a record
 * per field, and it is sized for REQHEAD_MAX_FIELDS of them */
static char *head_with(int args, int n)
{
	struct buf b;

	buf_init(&b, 0);
	buf_appends(&b, "GET /");
	for (int i = 0; i < args; i++)
		buf_printf(&b, "%ca%d=1", i ? '&' : '?', i);
	buf_appends(&b, " HTTP/1.1\r\n");
	for (int i = 0; i < n; i++)
		buf_printf(&b, "X%d: v\r\n", i);
	buf_appends(&b, "\r\n");
	return buf_steal(&b);
}

START_TEST(field_limit)
{
	char *s = head_with(0, REQHEAD_MAX_FIELDS);

	ck_assert_int_eq(parse(s), REQHEAD_OK);
	free(s);
	s = head_with(0, REQHEAD_MAX_FIELDS + 1);
	ck_assert_uint_lt(strlen(s), 1024);
	bad(s, 431, "headers_too_large");
	ck_assert_ptr_nonnull(strstr(err.message, "header fields"));
	free(s);
}
END_TEST

/* the engine keeps a record of each query argument as well: they count
 * with the fields, so many of them get the same clear 431 rather than a
 * connection closed when its pool runs out */
START_TEST(query_arguments_count_as_fields)
{
	static const struct {
		int args, fields;
		bool ok;
	} c[] = {
		{ REQHEAD_MAX_FIELDS, 0, true },
		{ REQHEAD_MAX_FIELDS + 1, 0, false },
		{ 60, REQHEAD_MAX_FIELDS - 60, true },
		{ 60, REQHEAD_MAX_FIELDS - 59, false },
		{ 150, 1, false },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		char *s = head_with(c[i].args, c[i].fields);

		if (c[i].ok) {
			ck_assert_int_eq(parse(s), REQHEAD_OK);
			ck_assert_uint_eq(h.query_args, (unsigned)c[i].args);
		} else {
			bad(s, 431, "headers_too_large");
			ck_assert_ptr_nonnull(strstr(err.message,
						     "query arguments"));
		}
		free(s);
	}
	/* a bare "?" or a target without one */
	ck_assert_int_eq(parse("GET /x? HTTP/1.1\r\n\r\n"), REQHEAD_OK);
	ck_assert_uint_eq(h.query_args, 1);
	ck_assert_int_eq(parse("GET /x HTTP/1.1\r\n\r\n"), REQHEAD_OK);
	ck_assert_uint_eq(h.query_args, 0);
}
END_TEST

/* libmicrohttpd copies the Cookie header into its pool besides the head:
 * a head that would not fit that way gets our 431, not the engine's HTML
 * one; a large Cookie header that fits is fine */
static char *head_with_cookie(size_t cookie_len)
{
	struct buf b;

	buf_init(&b, 0);
	buf_appends(&b, "GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; b=2, c");
	while (b.len < 44 + cookie_len)
		buf_appends(&b, "v");
	buf_appends(&b, "\r\n\r\n");
	return buf_steal(&b);
}

START_TEST(cookies_count_twice)
{
	char *s = head_with_cookie(8000);

	ck_assert_uint_eq(reqhead_pool_size(16384), 32768);
	ck_assert_uint_eq(reqhead_pool_size(1024), 16384);
	ck_assert_int_eq(reqhead_parse(s, strlen(s), 16384, 1000, NULL, &h,
				       &err), REQHEAD_OK);
	ck_assert_uint_eq(h.cookies, 3);
	ck_assert_uint_ge(h.cookie_bytes, 8000);
	free(s);
	s = head_with_cookie(15500);
	ck_assert_uint_lt(strlen(s), 16384);
	ck_assert_int_eq(reqhead_parse(s, strlen(s), 16384, 1000, NULL, &h,
				       &err), REQHEAD_BAD);
	ck_assert_int_eq(err.status, 431);
	ck_assert_str_eq(err.code, "headers_too_large");
	ck_assert_ptr_nonnull(strstr(err.message, "Cookie"));
	free(s);
	/* the same head is fine where the limit leaves room for the copy */
	s = head_with_cookie(15500);
	ck_assert_int_eq(reqhead_parse(s, strlen(s), 32768, 1000, NULL, &h,
				       &err), REQHEAD_OK);
	free(s);
}
END_TEST

START_TEST(error_response)
{
	struct buf b;

	apierr_set(&err, 426, "invalid_request_error", "x", NULL, "m");
	buf_init(&b, 0);
	reqhead_error_response(&b, &err, "A: b\r\n");
	ck_assert_ptr_nonnull(strstr(b.data, "HTTP/1.1 426 Upgrade Required\r\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "\r\nConnection: close\r\nA: b\r\n"
				     "\r\n{\"error\":{\"message\":\"m\""));
	buf_free(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("reqhead");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, good_heads);
	tcase_add_test(tc, incomplete_heads_wait);
	tcase_add_test(tc, malformed_heads);
	tcase_add_test(tc, size_limit);
	tcase_add_test(tc, field_limit);
	tcase_add_test(tc, query_arguments_count_as_fields);
	tcase_add_test(tc, cookies_count_twice);
	tcase_add_test(tc, error_response);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
