/* SPDX-License-Identifier: MIT */
/* Unit tests for listener_classify: which front gets a new connection. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "listener.h"
#include "testutil.h"

static int classify(const char *s)
{
	return listener_classify(s, strlen(s), "/v1/ws");
}

START_TEST(websocket_upgrades)
{
	ck_assert_int_eq(classify("GET /v1/ws HTTP/1.1\r\n"), LISTENER_WS);
	ck_assert_int_eq(classify("GET /v1/ws?x=1 HTTP/1.1\r\n"), LISTENER_WS);
}
END_TEST

START_TEST(everything_else_is_http)
{
	ck_assert_int_eq(classify("POST /v1/chat/completions HTTP/1.1\r\n"),
			 LISTENER_HTTP);
	ck_assert_int_eq(classify("GET /v1/models HTTP/1.1\r\n"), LISTENER_HTTP);
	ck_assert_int_eq(classify("GET /v1/wsx HTTP/1.1\r\n"), LISTENER_HTTP);
	ck_assert_int_eq(classify("POST /v1/ws HTTP/1.1\r\n"), LISTENER_HTTP);
	ck_assert_int_eq(classify("get /v1/ws HTTP/1.1\r\n"), LISTENER_HTTP);
	ck_assert_int_eq(classify("\x16\x03\x01\x02\x00"), LISTENER_HTTP);
	ck_assert_int_eq(listener_classify("GET /v1/ws ", 11, NULL),
			 LISTENER_HTTP);
}
END_TEST

START_TEST(undecided_until_enough_bytes)
{
	/* a request line arriving a byte at a time */
	ck_assert_int_eq(classify("G"), -1);
	ck_assert_int_eq(classify("GET /v1"), -1);
	ck_assert_int_eq(classify("GET /v1/ws"), -1);
	ck_assert_int_eq(classify("GET /v2"), LISTENER_HTTP);
	ck_assert_int_eq(classify("X"), LISTENER_HTTP);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("listener");
	TCase *tc = tcase_create("classify");

	tcase_add_test(tc, websocket_upgrades);
	tcase_add_test(tc, everything_else_is_http);
	tcase_add_test(tc, undecided_until_enough_bytes);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
