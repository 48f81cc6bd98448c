/* SPDX-License-Identifier: MIT */
/* Unit tests for ws_proto: the /v1/ws message protocol. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "ws_proto.h"

static int parse(const char *s, bool have_key, struct ws_msg *m,
		 struct api_error *err)
{
	return ws_proto_parse(s, strlen(s), have_key, m, err);
}

START_TEST(seed_chat_message)
{
	/* the original's README example, verbatim */
	const char *s = "{\"type\":\"chat\",\"api_key\":\"your-access-key\","
			"\"payload\":{\"model\":\"closeai/gpt-4o-mini\","
			"\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}}";
	struct ws_msg m;
	struct api_error err;
	char *body;
	size_t len;

	ck_assert_int_eq(parse(s, false, &m, &err), 0);
	ck_assert_int_eq(m.type, WS_MSG_CHAT);
	ck_assert_str_eq(m.api_key, "your-access-key");
	ck_assert_str_eq(m.id, "");
	ck_assert(m.stream); /* forced, as the original does */
	body = ws_proto_request_body(&m, &len);
	ck_assert_ptr_nonnull(strstr(body, "\"stream\":true"));
	ck_assert_ptr_nonnull(strstr(body, "\"model\":\"closeai/gpt-4o-mini\""));
	ck_assert_uint_eq(strlen(body), len);
	free(body);
	ws_msg_free(&m);
}
END_TEST

START_TEST(chat_with_id_and_stream_false)
{
	struct ws_msg m;
	struct api_error err;

	ck_assert_int_eq(parse("{\"type\":\"chat\",\"id\":\"r1\",\"payload\":"
			       "{\"model\":\"a/b\",\"stream\":false}}", true,
			       &m, &err), 0);
	ck_assert_str_eq(m.id, "\"r1\"");
	ck_assert(!m.stream);
	ck_assert_ptr_null(m.api_key);
	ws_msg_free(&m);
	ck_assert_int_eq(parse("{\"type\":\"chat\",\"id\":42,\"payload\":"
			       "{\"model\":\"a/b\"}}", true, &m, &err), 0);
	ck_assert_str_eq(m.id, "42");
	ws_msg_free(&m);
}
END_TEST

static void expect_bad(const char *s, bool have_key, const char *param,
		       const char *id)
{
	struct ws_msg m;
	struct api_error err;

	ck_assert_msg(parse(s, have_key, &m, &err) == -1, "%s accepted", s);
	ck_assert_int_eq(err.status, 400);
	ck_assert_str_eq(err.type, "invalid_request_error");
	if (param)
		ck_assert_msg(err.param && !strcmp(err.param, param),
			      "%s: param %s", s, err.param ? err.param : "-");
	ck_assert_str_eq(m.id, id);
	ws_msg_free(&m);
}

START_TEST(bad_messages)
{
	expect_bad("", false, NULL, "");
	expect_bad("not json", false, NULL, "");
	expect_bad("{\"type\":\"chat\"", false, NULL, "");
	expect_bad("{\"type\":\"chat\"} trailing", false, NULL, "");
	expect_bad("[1]", false, NULL, "");
	expect_bad("\"chat\"", false, NULL, "");
	expect_bad("{}", false, "type", "");
	expect_bad("{\"type\":5}", false, "type", "");
	expect_bad("{\"type\":\"dance\",\"id\":\"x\"}", false, "type", "\"x\"");
	expect_bad("{\"type\":\"chat\",\"api_key\":\"k\"}", false, "payload", "");
	expect_bad("{\"type\":\"chat\",\"api_key\":\"k\",\"payload\":[]}",
		   false, "payload", "");
	expect_bad("{\"type\":\"chat\",\"api_key\":\"k\",\"payload\":{}}",
		   false, "payload.model", "");
	expect_bad("{\"type\":\"chat\",\"payload\":{\"model\":\"a/b\"}}",
		   false, "api_key", "");
	expect_bad("{\"type\":\"chat\",\"api_key\":7,\"payload\":"
		   "{\"model\":\"a/b\"}}", false, "api_key", "");
	expect_bad("{\"type\":\"cancel\"}", false, "id", "");
	expect_bad("{\"type\":\"auth\"}", false, "api_key", "");
	expect_bad("{\"type\":\"ping\",\"id\":{\"a\":1}}", false, "id", "");
	expect_bad("{\"type\":\"chat\",\"id\":\"a\",\"payload\":{\"model\":"
		   "\"\xff\"}}", true, NULL, "");
}
END_TEST

START_TEST(deep_nesting_rejected)
{
	char *s = malloc(20010);
	size_t n = 0;
	struct ws_msg m;
	struct api_error err;

	for (int i = 0; i < 10000; i++)
		s[n++] = '[';
	for (int i = 0; i < 10000; i++)
		s[n++] = ']';
	s[n] = '\0';
	ck_assert_int_eq(parse(s, true, &m, &err), -1);
	ws_msg_free(&m);
	free(s);
}
END_TEST

START_TEST(seed_framing)
{
	struct buf b;
	struct api_error err;
	const char *second;

	buf_init(&b, 0);
	ws_proto_chunk(&b, "", "{\"a\":1}", 7);
	ck_assert_str_eq(b.data, "data: {\"a\":1}\n\n");
	buf_reset(&b);
	ws_proto_done(&b, "", "{\"total_tokens\":3}");
	ck_assert_str_eq(b.data, "data: [DONE]\n\n");
	buf_reset(&b);
	apierr_set(&err, 502, "upstream_error", NULL, NULL, "boom");
	ws_proto_request_error(&b, "", &err, &second);
	ck_assert_str_eq(b.data, "data: {\"error\":{\"message\":\"boom\","
			 "\"type\":\"upstream_error\",\"param\":null,"
			 "\"code\":null}}\n\n");
	ck_assert_str_eq(second, "data: [DONE]\n\n");
	buf_free(&b);
}
END_TEST

START_TEST(envelopes)
{
	struct buf b;
	struct api_error err;
	const char *second;
	json_object *j;

	buf_init(&b, 0);
	ws_proto_chunk(&b, "\"r1\"", "{\"a\":1}", 7);
	ck_assert_str_eq(b.data, "{\"type\":\"chunk\",\"id\":\"r1\","
			 "\"data\":{\"a\":1}}");
	buf_reset(&b);
	ws_proto_done(&b, "7", NULL);
	ck_assert_str_eq(b.data, "{\"type\":\"done\",\"id\":7,\"usage\":null}");
	buf_reset(&b);
	apierr_set(&err, 429, "rate_limit_error", "x", NULL, "slow");
	ws_proto_request_error(&b, "\"q\"", &err, &second);
	ck_assert_ptr_null(second);
	j = json_tokener_parse(b.data);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(j, "type")),
			 "error");
	json_object_put(j);
	buf_reset(&b);
	ws_proto_completion(&b, "", "{\"x\":2}", 7);
	ck_assert_str_eq(b.data, "{\"type\":\"completion\",\"data\":{\"x\":2}}");
	buf_reset(&b);
	ws_proto_pong(&b, "\"p\"");
	ck_assert_str_eq(b.data, "{\"type\":\"pong\",\"id\":\"p\"}");
	buf_reset(&b);
	ws_proto_cancelled(&b, "\"c\"");
	ck_assert_str_eq(b.data, "{\"type\":\"cancelled\",\"id\":\"c\"}");
	buf_free(&b);
}
END_TEST

START_TEST(message_error_has_seed_fields)
{
	struct buf b;
	struct api_error err;
	json_object *j, *e, *v;

	buf_init(&b, 0);
	apierr_set(&err, 400, "invalid_request_error", "invalid_message", NULL,
		   "Message is not valid JSON");
	ws_proto_error(&b, "", &err);
	j = json_tokener_parse(b.data);
	ck_assert_ptr_nonnull(j);
	ck_assert(json_object_object_get_ex(j, "error", &e));
	ck_assert(json_object_object_get_ex(e, "message", &v));
	ck_assert_str_eq(json_object_get_string(v), "Message is not valid JSON");
	ck_assert(json_object_object_get_ex(e, "timestamp", &v));
	ck_assert_int_eq(strlen(json_object_get_string(v)), 24);
	ck_assert(json_object_object_get_ex(e, "code", &v));
	ck_assert(json_object_object_get_ex(e, "param", &v));
	json_object_put(j);
	buf_free(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ws_proto");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, seed_chat_message);
	tcase_add_test(tc, chat_with_id_and_stream_false);
	tcase_add_test(tc, bad_messages);
	tcase_add_test(tc, deep_nesting_rejected);
	tcase_add_test(tc, seed_framing);
	tcase_add_test(tc, envelopes);
	tcase_add_test(tc, message_error_has_seed_fields);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
