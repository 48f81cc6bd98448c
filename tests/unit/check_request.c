/* SPDX-License-Identifier: MIT */
/* Unit tests for request: the checks on json-c objects, and the text
 * path that must agree with them (request_agree.h): the requests it
 * takes, the ones it leaves to json-c, its rewrite, and thousands of
 * mutated requests on which it must never promise more than json-c. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../request_agree.h"
#include "testutil.h"

static const char *const taken[] = {
	"{\"model\":\"mock/m\",\"messages\":[{\"role\":\"user\","
	"\"content\":\"hi\"}]}",
	/* pretty-printed, as the openai SDK sends it */
	"{\n  \"model\": \"deep/deepseek-chat\",\n  \"messages\": [\n    {\n"
	"      \"role\": \"user\",\n      \"content\": \"hi\"\n    }\n  ]\n}\n",
	/* messages before the model, escapes in the content */
	"{\"messages\":[{\"role\":\"system\",\"content\":\"be \\\"brief\\\" "
	"\\u00e9\\ud83d\\ude00\"},{\"role\":\"user\",\"content\":[{\"type\":"
	"\"text\",\"text\":\"x\"}]}],\"model\":\"a/b\",\"temperature\":0.5,"
	"\"top_p\":1,\"max_tokens\":20,\"n\":1,\"stop\":[\"x\"],\"user\":null}",
	/* a stream: usage gets switched on */
	"{\"model\":\"a/b\",\"stream\":true,\"messages\":[{\"role\":\"user\","
	"\"content\":\"hi\"}]}",
	"{\"model\":\"a/b\",\"stream\":true,\"stream_options\":"
	"{\"include_usage\":true},\"messages\":[{\"role\":\"user\","
	"\"content\":\"hi\"}]}",
	/* stream_options that a non-stream passes on as they are */
	"{\"model\":\"a/b\",\"stream\":false,\"stream_options\":"
	"{\"include_usage\":false},\"messages\":[{\"role\":\"user\","
	"\"content\":\"hi\"}]}",
	/* a tool conversation */
	"{\"model\":\"a/b\",\"messages\":[{\"role\":\"user\",\"content\":\"w?\"},"
	"{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":"
	"\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
	"\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c1\","
	"\"content\":\"ok\"}],\"tools\":[{\"type\":\"function\",\"function\":"
	"{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}}],"
	"\"tool_choice\":\"auto\",\"unknown_field\":{\"kept\":[1,2.5,-3e2]}}",
};

/* Requests the text path leaves to json-c, and json-c's verdict: 0 for
 * a request it accepts, else the param of its 400. */
static const struct {
	const char *text;
	const char *param; /* NULL: request_validate() accepts it */
} left[] = {
	/* a stream whose options do not ask for usage: they are edited */
	{ "{\"model\":\"a/b\",\"stream\":true,\"stream_options\":{},"
	  "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL },
	{ "{\"model\":\"a/b\",\"stream\":true,\"stream_options\":"
	  "{\"include_usage\":false},\"messages\":[{\"role\":\"user\","
	  "\"content\":\"x\"}]}", NULL },
	/* a stream's null stream_options: replaced, not added to */
	{ "{\"model\":\"a/b\",\"stream\":true,\"stream_options\":null,"
	  "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL },
	/* a model name with an escape */
	{ "{\"model\":\"a\\/b\",\"messages\":[{\"role\":\"user\","
	  "\"content\":\"x\"}]}", NULL },
	/* refused requests: json-c gives the precise error */
	{ "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model" },
	{ "{\"model\":\"\",\"messages\":[{\"role\":\"user\"}]}", "model" },
	{ "{\"model\":7,\"messages\":[{\"role\":\"user\"}]}", "model" },
	{ "{\"model\":\"a/b\"}", "messages" },
	{ "{\"model\":\"a/b\",\"messages\":[]}", "messages" },
	{ "{\"model\":\"a/b\",\"messages\":{}}", "messages" },
	{ "{\"model\":\"a/b\",\"messages\":[{\"content\":\"x\"}]}", "messages" },
	{ "{\"model\":\"a/b\",\"messages\":[{\"role\":1}]}", "messages" },
	{ "{\"model\":\"a/b\",\"messages\":[{\"role\":\"user\","
	  "\"content\":5}]}", "messages" },
	{ "{\"model\":\"a/b\",\"messages\":[{\"role\":\"user\"}],"
	  "\"max_tokens\":1.5}", "max_tokens" },
	{ "{\"model\":\"a/b\",\"messages\":[{\"role\":\"user\"}],"
	  "\"max_tokens\":0}", "max_tokens" },
	{ "{\"model\":\"a/b\",\"messages\":[{\"role\":\"user\"}],"
	  "\"n\":-1}", "n" },
	{ "{\"model\":\"a/b\",\"messages\":[{\"role\":\"user\"}],"
	  "\"temperature\":\"hot\"}", "temperature" },
	{ "{\"model\":\"a/b\",\"messages\":[{\"role\":\"user\"}],"
	  "\"stream\":\"yes\"}", "stream" },
	{ "{\"model\":\"a/b\",\"messages\":[{\"role\":\"user\"}],"
	  "\"stream_options\":{\"include_usage\":1}}",
	  "stream_options.include_usage" },
};

static json_object *parse(const char *s)
{
	json_object *o = agree_parse(s, strlen(s));

	ck_assert_msg(o != NULL, "bad JSON in test: %s", s);
	return o;
}

START_TEST(requests_taken_as_text)
{
	const char *s = taken[_i], *broken;
	struct request_text rt;

	ck_assert_msg(request_text_check(s, strlen(s), &rt), "left: %s", s);
	broken = request_agree(s, strlen(s));
	ck_assert_msg(!broken, "%s: %s", broken, s);
}
END_TEST

START_TEST(requests_left_to_json_c)
{
	const char *s = left[_i].text;
	struct api_error err = { 0 };
	struct request_text rt;
	json_object *req = parse(s);
	int rc = request_validate(req, &err);

	ck_assert_msg(!request_text_check(s, strlen(s), &rt), "taken: %s", s);
	if (!left[_i].param) {
		ck_assert_msg(rc == 0, "json-c refused %s: %s", s, err.message);
	} else {
		ck_assert_msg(rc == -1, "json-c accepted %s", s);
		ck_assert_int_eq(err.status, 400);
		ck_assert_str_eq(err.param, left[_i].param);
	}
	json_object_put(req);
}
END_TEST

START_TEST(rewrite_swaps_model_and_asks_for_usage)
{
	static const char s[] = "{ \"stream\" : true, \"model\" : \"c/m\" , "
		"\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}] }";
	static const char want_msgs[] = "[{\"role\":\"user\",\"content\":\"hi\"}]";
	struct request_text rt;
	struct jspan msgs;
	struct buf b;

	buf_init(&b, 0);
	ck_assert(request_text_check(s, strlen(s), &rt));
	ck_assert(rt.stream);
	ck_assert(!rt.stream_options);
	ck_assert(!rt.include_usage);
	request_text_rewrite(&rt, "m\"1", &b, &msgs);
	ck_assert_str_eq(b.data, "{ \"stream\" : true, \"model\" : \"m\\\"1\" , "
		"\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}] "
		",\"stream_options\":{\"include_usage\":true}}");
	ck_assert_uint_eq(msgs.n, strlen(want_msgs));
	ck_assert(memcmp(msgs.p, want_msgs, msgs.n) == 0);
	buf_free(&b);
}
END_TEST

/* A small deterministic generator, so a failure can be replayed. */
static unsigned long rng_state = 88172645463325252UL;

static unsigned long rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* One random edit of b: a byte changed, dropped, or a JSON token put in. */
static void mutate(struct buf *b)
{
	static const char *const tokens[] = { "\"", "{", "}", "[", "]", ",",
		":", "null", "true", "false", "0", "-1", "1.5", "1e3",
		"\"model\":\"x/y\"", "\"stream\":true", "\"n\":0",
		"\"role\"", "\"content\"", "\"messages\"", "\\u0000", "\\",
		"\"stream_options\":{\"include_usage\":false}", " " };
	size_t at = b->len ? rng() % b->len : 0;
	struct buf out;

	buf_init(&out, 0);
	buf_append(&out, b->data, at);
	switch (rng() % 3) {
	case 0: {
		char c = (char)(rng() % 128);

		buf_append(&out, &c, 1);
		at++;
		break;
	}
	case 1:
		at++;
		break;
	default: {
		const char *t = tokens[rng() % (sizeof(tokens) /
						sizeof(tokens[0]))];

		buf_append(&out, t, strlen(t));
	}
	}
	if (at < b->len)
		buf_append(&out, b->data + at, b->len - at);
	buf_reset(b);
	if (out.len)
		buf_append(b, out.data, out.len);
	buf_free(&out);
}

START_TEST(mutated_requests_never_promise_more)
{
	size_t n_taken = 0, n_all = 0;
	struct buf b;

	buf_init(&b, 0);
	for (int round = 0; round < 3000; round++) {
		const char *seed = taken[rng() % (sizeof(taken) /
						  sizeof(taken[0]))];

		buf_reset(&b);
		buf_appends(&b, seed);
		for (int k = 0; k < 6; k++) {
			struct request_text rt;
			const char *broken;

			mutate(&b);
			if (!b.len)
				break;
			broken = request_agree(b.data, b.len);
			ck_assert_msg(!broken, "%s: %.*s", broken, (int)b.len,
				      b.data);
			n_all++;
			n_taken += request_text_check(b.data, b.len, &rt);
		}
	}
	/* the corpus must exercise both paths, or it proves nothing */
	ck_assert_uint_gt(n_taken, n_all / 20);
	ck_assert_uint_lt(n_taken, n_all);
	buf_free(&b);
}
END_TEST

static Suite *request_suite(void)
{
	Suite *s = suite_create("request");
	TCase *tc = tcase_create("text");

	tcase_add_loop_test(tc, requests_taken_as_text, 0,
			    sizeof(taken) / sizeof(taken[0]));
	tcase_add_loop_test(tc, requests_left_to_json_c, 0,
			    sizeof(left) / sizeof(left[0]));
	tcase_add_test(tc, rewrite_swaps_model_and_asks_for_usage);
	tcase_add_test(tc, mutated_requests_never_promise_more);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(request_suite());
}
