/* SPDX-License-Identifier: MIT */
/* Unit tests for the OpenAI-dialect adapter, on recorded wire fixtures. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "buf.h"
#include "sse.h"
#include "testutil.h"

static struct provider_cfg prov = {
	.name = "closeai", .adapter = "openai",
	.base_url = "https://api.example.test/v1", .api_key = "sk-test-123",
};
static struct adapter_call call = {
	.provider = &prov, .upstream_model = "gpt-4o-mini",
	.client_model = "closeai/gpt-4o-mini", .stream = true,
};

static const struct adapter *oa(void)
{
	const struct adapter *a = adapter_find("openai");

	ck_assert_ptr_nonnull(a);
	return a;
}

static const char *header(const struct upstream_req *r, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < r->n_headers; i++)
		if (strncmp(r->headers[i], name, n) == 0 &&
		    r->headers[i][n] == ':')
			return r->headers[i] + n + 2;
	return NULL;
}

static void build(const char *base, const char *key, struct upstream_req *out)
{
	struct provider_cfg p = prov;
	struct adapter_call c = call;
	struct api_error err;
	json_object *req = json_tokener_parse(
		"{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
		"\"content\":\"a/b \\u00e9\"}],\"temperature\":0.70}");

	p.base_url = (char *)base;
	p.api_key = (char *)key;
	c.provider = &p;
	ck_assert_int_eq(oa()->build_request(&c, req, out, &err), 0);
	json_object_put(req);
}

START_TEST(url_from_base_or_full_endpoint)
{
	static const char *const cases[][2] = {
		{ "https://h/v1", "https://h/v1/chat/completions" },
		{ "https://h/v1/", "https://h/v1/chat/completions" },
		{ "https://h/v1/chat/completions", "https://h/v1/chat/completions" },
		{ "https://h/v1/chat/completions/", "https://h/v1/chat/completions" },
		{ "https://api.deepseek.com", "https://api.deepseek.com/chat/completions" },
		{ "https://g/v1beta/openai", "https://g/v1beta/openai/chat/completions" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct upstream_req r;

		build(cases[i][0], "k", &r);
		ck_assert_str_eq(r.url, cases[i][1]);
		upstream_req_free(&r);
	}
}
END_TEST

START_TEST(headers_and_body)
{
	struct upstream_req r;

	build("https://h/v1", "sk-test-123", &r);
	ck_assert_str_eq(header(&r, "Authorization"), "Bearer sk-test-123");
	ck_assert_str_eq(header(&r, "Content-Type"), "application/json");
	ck_assert_str_eq(header(&r, "Accept"), "text/event-stream");
	/* no escaped slashes; numbers keep their spelling; UTF-8 stays */
	ck_assert_ptr_nonnull(strstr(r.body, "\"a/b \xc3\xa9\""));
	ck_assert_ptr_nonnull(strstr(r.body, "0.70"));
	ck_assert_uint_eq(r.body_len, strlen(r.body));
	upstream_req_free(&r);

	build("https://h/v1", NULL, &r);
	ck_assert_ptr_null(header(&r, "Authorization"));
	upstream_req_free(&r);
}
END_TEST

/* json-c 0.16 decodes this pair (U+2D800) to U+FFFD; the adapter's
 * json-c way must still hand on the character itself */
START_TEST(response_keeps_rare_pairs)
{
	static const char body[] = "{\"id\":\"x\",\"object\":"
		"\"chat.completion\",\"model\":\"m\",\"choices\":[{\"index\":0,"
		"\"message\":{\"role\":\"assistant\",\"content\":"
		"\"a\\ud876\\udc00b\"},\"finish_reason\":\"stop\"}]}";
	json_object *out = NULL, *v;
	struct api_error err;

	ck_assert_int_eq(oa()->parse_response(&call, body, sizeof(body) - 1,
					      &out, &err), 0);
	ck_assert(json_object_object_get_ex(out, "choices", &v));
	v = json_object_array_get_idx(v, 0);
	ck_assert(json_object_object_get_ex(v, "message", &v));
	ck_assert(json_object_object_get_ex(v, "content", &v));
	ck_assert_str_eq(json_object_get_string(v), "a\xf0\xad\xa0\x80" "b");
	json_object_put(out);
}
END_TEST

START_TEST(response_gets_client_model)
{
	size_t len;
	char *body = tu_read_fixture("fixtures/openai/response.json", &len);
	json_object *out = NULL, *v;
	struct api_error err;

	ck_assert_int_eq(oa()->parse_response(&call, body, len, &out, &err), 0);
	ck_assert(json_object_object_get_ex(out, "model", &v));
	ck_assert_str_eq(json_object_get_string(v), "closeai/gpt-4o-mini");
	ck_assert(json_object_object_get_ex(out, "usage", &v));
	json_object_put(out);
	free(body);
}
END_TEST

START_TEST(bad_responses_are_502)
{
	static const char *const bodies[] = {
		"not json", "[1,2]", "{\"a\":1} trailing", "",
		"{\"error\":{\"message\":\"boom\"}}",
	};
	struct api_error err;
	json_object *out;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		out = (json_object *)1;
		ck_assert_int_eq(oa()->parse_response(&call, bodies[i],
				 strlen(bodies[i]), &out, &err), ADAPTER_ERROR);
		ck_assert_ptr_null(out);
		ck_assert_int_eq(err.status, 502);
	}
	ck_assert_ptr_nonnull(strstr(err.message, "boom"));
}
END_TEST

/* Collects what a stream translation emits. */
struct collected {
	struct buf text;
	int chunks;
	int stop_after; /* emit returns non-zero after this many; 0 = never */
	int texts;      /* how many came as text */
};

static int collect(void *ud, json_object *chunk)
{
	struct collected *c = ud;
	json_object *v;

	ck_assert(json_object_object_get_ex(chunk, "model", &v));
	ck_assert_str_eq(json_object_get_string(v), "closeai/gpt-4o-mini");
	buf_appends(&c->text, json_object_to_json_string_ext(chunk,
		    JSON_C_TO_STRING_PLAIN));
	buf_appends(&c->text, "\n");
	c->chunks++;
	return c->stop_after && c->chunks >= c->stop_after;
}

/* The same for chunks kept as text: parsed back, they must be what the
 * json-c way gives. */
static int collect_text(void *ud, struct adapter_text *t)
{
	struct collected *c = ud;
	json_object *chunk = json_tokener_parse(t->json);
	int rc;

	ck_assert_ptr_nonnull(chunk);
	ck_assert_uint_eq(t->len, strlen(t->json));
	ck_assert(memchr(t->json, '\n', t->len) == NULL);
	c->texts++;
	rc = collect(ud, chunk);
	json_object_put(chunk);
	return rc;
}

struct feed {
	const struct adapter *a;
	void *st;
	struct adapter_emit emit;
	struct api_error err;
	int last;
};

static int on_event(void *ud, const struct sse_event *ev)
{
	struct feed *f = ud;

	f->last = f->a->stream_event(f->st, ev, &f->emit, &f->err);
	return f->last != ADAPTER_MORE;
}

/* Feed a fixture through the SSE parser into the adapter. */
static int run_stream_as(const char *fixture, struct collected *c,
			 struct api_error *err, bool text)
{
	size_t len;
	char *bytes = tu_read_fixture(fixture, &len);
	struct sse_parser p;
	struct feed f = { .a = oa(), .emit = { .ud = c, .chunk = collect } };
	int rc;

	if (text)
		f.emit.text = collect_text;
	f.st = f.a->stream_new(&call);
	sse_init(&p, 1 << 20);
	f.last = ADAPTER_MORE;
	sse_feed(&p, bytes, len, on_event, &f);
	rc = f.last;
	if (rc == ADAPTER_MORE)
		rc = f.a->stream_finish(f.st, &f.emit, &f.err);
	*err = f.err;
	f.a->stream_free(f.st);
	sse_free(&p);
	free(bytes);
	return rc;
}

static int run_stream(const char *fixture, struct collected *c,
		      struct api_error *err)
{
	return run_stream_as(fixture, c, err, false);
}

/* Chunks spliced as text carry the same JSON as the json-c way, and the
 * usual chunk does go the text way. */
START_TEST(stream_text_way_matches)
{
	static const char *const fixtures[] = {
		"fixtures/openai/stream.sse",
		"fixtures/openai/tool-call-stream.sse",
		"fixtures/openai/stream-error-midstream.sse",
		"fixtures/deepseek/stream.sse",
	};

	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		struct collected a = { .chunks = 0 }, b = { .chunks = 0 };
		struct api_error ea, eb;
		json_object *ja, *jb;
		char *la, *lb, *sa, *sb;

		buf_init(&a.text, 0);
		buf_init(&b.text, 0);
		ck_assert_int_eq(run_stream_as(fixtures[i], &a, &ea, false),
				 run_stream_as(fixtures[i], &b, &eb, true));
		ck_assert_int_eq(a.chunks, b.chunks);
		ck_assert_int_gt(b.texts, 0);
		/* line by line: each chunk's JSON equal */
		for (la = strtok_r(a.text.data, "\n", &sa),
		     lb = strtok_r(b.text.data, "\n", &sb); la && lb;
		     la = strtok_r(NULL, "\n", &sa),
		     lb = strtok_r(NULL, "\n", &sb)) {
			ja = json_tokener_parse(la);
			jb = json_tokener_parse(lb);
			ck_assert_msg(json_object_equal(ja, jb), "%s\n%s", la,
				      lb);
			json_object_put(ja);
			json_object_put(jb);
		}
		ck_assert_ptr_null(la);
		ck_assert_ptr_null(lb);
		buf_free(&a.text);
		buf_free(&b.text);
	}
}
END_TEST

/* Events the text way must leave to json-c: each still comes out as the
 * json-c way makes it (or fails as it does). */
START_TEST(stream_text_way_declines)
{
	static const char *const events[] = {
		/* two model members, model absent, spread over lines */
		"{\"model\":\"a\",\"model\":\"b\",\"choices\":[]}",
		"{\"choices\":[{\"delta\":{\"content\":\"x\"}}]}",
		"{\"model\":\"a\",\n\"choices\":[]}",
		/* escaped key, big integer, -0, json-c leniency */
		"{\"mod\\u0065l\":\"a\",\"model\":\"a\"}",
		"{\"model\":\"a\",\"n\":99999999999999999999}",
		"{\"model\":\"a\",\"n\":-0}",
		"{\"model\":\"a\",\"n\":[1,]}",
		/* an error, DeepSeek's cache counter */
		"{\"model\":\"a\",\"error\":{\"message\":\"m\"}}",
		"{\"model\":\"a\",\"usage\":{\"prompt_cache_hit_tokens\":3}}",
	};
	const struct adapter *a = oa();

	for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		struct collected ca = { .chunks = 0 }, cb = { .chunks = 0 };
		struct adapter_emit ea = { .ud = &ca, .chunk = collect };
		struct adapter_emit eb = { .ud = &cb, .chunk = collect,
					   .text = collect_text };
		struct sse_event ev = { .event = "", .data = events[i],
					.data_len = strlen(events[i]) };
		struct api_error err;
		void *sa = a->stream_new(&call), *sb = a->stream_new(&call);

		buf_init(&ca.text, 0);
		buf_init(&cb.text, 0);
		ck_assert_int_eq(a->stream_event(sa, &ev, &ea, &err),
				 a->stream_event(sb, &ev, &eb, &err));
		ck_assert_int_eq(cb.texts, 0);
		ck_assert_int_eq(ca.chunks, cb.chunks);
		if (ca.chunks)
			ck_assert_str_eq(ca.text.data, cb.text.data);
		a->stream_free(sa);
		a->stream_free(sb);
		buf_free(&ca.text);
		buf_free(&cb.text);
	}
}
END_TEST

/* A response as text: the same JSON as parse_response, with its usage
 * and choices found; what it cannot do, parse_response does. */
START_TEST(response_text_way)
{
	static const char *const fixtures[] = {
		"fixtures/openai/response.json",
		"fixtures/openai/tool-call-response.json",
	};
	static const char *const declined[] = {
		"not json", "[1,2]", "{\"a\":1} trailing", "",
		"{\"error\":{\"message\":\"boom\"}}",
		"{\"model\":\"m\",\"usage\":{\"prompt_cache_hit_tokens\":2}}",
	};
	struct adapter_text t;
	struct api_error err;
	struct buf out;

	buf_init(&out, 0);
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		size_t len;
		char *body = tu_read_fixture(fixtures[i], &len);
		json_object *want = NULL, *got;

		ck_assert_int_eq(oa()->parse_response(&call, body, len, &want,
						      &err), 0);
		ck_assert_int_eq(oa()->response_text(&call, body, len, &out,
						     &t), 0);
		got = json_tokener_parse(out.data);
		ck_assert(json_object_equal(want, got));
		ck_assert(t.json == out.data && t.len == out.len);
		ck_assert(jspan_is_array(t.choices));
		ck_assert(jspan_is_object(t.usage));
		ck_assert_int_eq(t.usage_member.p[0], '"');
		json_object_put(want);
		json_object_put(got);
		free(body);
	}
	for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++) {
		ck_assert_int_eq(oa()->response_text(&call, declined[i],
				 strlen(declined[i]), &out, &t), 1);
		ck_assert_uint_eq(out.len, 0);
	}
	buf_free(&out);
}
END_TEST

START_TEST(stream_passes_chunks_and_ends_on_done)
{
	struct collected c = { .chunks = 0 };
	struct api_error err;

	buf_init(&c.text, 0);
	ck_assert_int_eq(run_stream("fixtures/openai/stream.sse", &c, &err),
			 ADAPTER_DONE);
	ck_assert_int_eq(c.chunks, 7);
	ck_assert_ptr_nonnull(strstr(c.text.data, "\"content\":\"Red\""));
	ck_assert_ptr_nonnull(strstr(c.text.data, "\"total_tokens\":19"));
	ck_assert_ptr_null(strstr(c.text.data, "gpt-4o-mini-2024"));
	buf_free(&c.text);
}
END_TEST

START_TEST(stream_tool_calls_kept_whole)
{
	struct collected c = { .chunks = 0 };
	struct api_error err;

	buf_init(&c.text, 0);
	ck_assert_int_eq(run_stream("fixtures/openai/tool-call-stream.sse", &c,
				    &err), ADAPTER_DONE);
	ck_assert_ptr_nonnull(strstr(c.text.data, "\"tool_calls\""));
	ck_assert_ptr_nonnull(strstr(c.text.data, "\"arguments\""));
	buf_free(&c.text);
}
END_TEST

START_TEST(stream_error_event_is_error)
{
	struct collected c = { .chunks = 0 };
	struct api_error err;

	buf_init(&c.text, 0);
	ck_assert_int_eq(run_stream("fixtures/openai/stream-error-midstream.sse",
				    &c, &err), ADAPTER_ERROR);
	ck_assert_int_eq(c.chunks, 2);
	ck_assert_int_eq(err.status, 502);
	ck_assert_ptr_nonnull(strstr(err.message, "The server had an error"));
	buf_free(&c.text);
}
END_TEST

START_TEST(stream_without_done_is_cut_short)
{
	const struct adapter *a = oa();
	void *st = a->stream_new(&call);
	struct collected c = { .chunks = 0 };
	struct adapter_emit emit = { .ud = &c, .chunk = collect };
	struct sse_event ev = {
		.event = "",
		.data = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}",
	};
	struct api_error err;

	buf_init(&c.text, 0);
	ev.data_len = strlen(ev.data);
	ck_assert_int_eq(a->stream_event(st, &ev, &emit, &err), ADAPTER_MORE);
	ck_assert_int_eq(a->stream_finish(st, &emit, &err), ADAPTER_ERROR);
	ck_assert_int_eq(err.status, 502);
	ck_assert_ptr_nonnull(strstr(err.message, "before it was complete"));
	a->stream_free(st);
	buf_free(&c.text);
}
END_TEST

START_TEST(stream_bad_event_and_client_gone)
{
	const struct adapter *a = oa();
	void *st = a->stream_new(&call);
	struct collected c = { .chunks = 0, .stop_after = 1 };
	struct adapter_emit emit = { .ud = &c, .chunk = collect };
	struct sse_event bad = { .event = "", .data = "{not json", .data_len = 9 };
	struct sse_event ok = { .event = "", .data = "{\"choices\":[]}",
				.data_len = 14 };
	struct api_error err;

	buf_init(&c.text, 0);
	ck_assert_int_eq(a->stream_event(st, &bad, &emit, &err), ADAPTER_ERROR);
	ck_assert_int_eq(err.status, 502);
	ck_assert_int_eq(a->stream_event(st, &ok, &emit, &err), ADAPTER_ERROR);
	ck_assert_int_eq(err.status, 499);
	a->stream_free(st);
	buf_free(&c.text);
}
END_TEST

static void map(long status, const char *fixture_or_body, const char *retry,
		struct api_error *err)
{
	size_t len = 0;
	char *body = NULL;

	if (fixture_or_body && strncmp(fixture_or_body, "fixtures/", 9) == 0)
		body = tu_read_fixture(fixture_or_body, &len);
	else if (fixture_or_body)
		body = strdup(fixture_or_body), len = strlen(body);
	oa()->map_error(&call, status, body, len, retry, err);
	free(body);
}

START_TEST(error_statuses_map)
{
	struct api_error err;

	map(400, "fixtures/openai/error-400.json", NULL, &err);
	ck_assert_int_eq(err.status, 400);
	ck_assert_ptr_nonnull(strstr(err.message, "maximum context length"));
	map(401, "fixtures/openai/error-401.json", NULL, &err);
	ck_assert_int_eq(err.status, 502);
	ck_assert_str_eq(err.code, "upstream_auth_failed");
	map(403, "{}", NULL, &err);
	ck_assert_int_eq(err.status, 502);
	ck_assert_str_eq(err.code, "upstream_auth_failed");
	map(429, "fixtures/openai/error-429.json", "2", &err);
	ck_assert_int_eq(err.status, 429);
	ck_assert_str_eq(err.retry_after, "2");
	ck_assert_str_eq(err.type, "rate_limit_error");
	map(500, "fixtures/openai/error-500.json", NULL, &err);
	ck_assert_int_eq(err.status, 502);
	map(503, "<html>down</html>", NULL, &err);
	ck_assert_int_eq(err.status, 502);
	ck_assert_str_eq(err.type, "upstream_error");
	map(404, "{\"error\":{\"message\":\"no such model\"}}", NULL, &err);
	ck_assert_int_eq(err.status, 404);
	ck_assert_str_eq(err.message, "no such model");
	map(408, NULL, NULL, &err);
	ck_assert_int_eq(err.status, 504);
	map(422, "{\"detail\":\"bad field\"}", NULL, &err);
	ck_assert_int_eq(err.status, 400);
	ck_assert_str_eq(err.message, "bad field");
}
END_TEST

START_TEST(error_json_shape)
{
	struct api_error err;
	struct buf b;
	json_object *o, *e, *v;

	map(429, "{\"error\":{\"message\":\"slow \\\"down\\\"\"}}", "7", &err);
	buf_init(&b, 0);
	ck_assert_int_eq(apierr_to_json(&err, &b), 0);
	o = json_tokener_parse(b.data);
	ck_assert_ptr_nonnull(o);
	ck_assert(json_object_object_get_ex(o, "error", &e));
	ck_assert(json_object_object_get_ex(e, "message", &v));
	ck_assert_ptr_nonnull(strstr(json_object_get_string(v), "slow \"down\""));
	ck_assert(json_object_object_get_ex(e, "param", &v));
	ck_assert_ptr_null(v);
	ck_assert(json_object_object_get_ex(e, "code", &v));
	ck_assert_str_eq(json_object_get_string(v), "rate_limit_exceeded");
	json_object_put(o);
	buf_free(&b);
}
END_TEST

/* DeepSeek: keep-alive comments skipped, reasoning_content passed on,
 * cache counters mapped to prompt_tokens_details.cached_tokens. */
START_TEST(deepseek_stream_and_usage)
{
	struct collected c = { .chunks = 0 };
	struct api_error err;
	const char *body = "{\"id\":\"x\",\"object\":\"chat.completion\","
		"\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
		"\"content\":\"hi\",\"reasoning_content\":\"think\"},"
		"\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":30,"
		"\"completion_tokens\":2,\"total_tokens\":32,"
		"\"prompt_cache_hit_tokens\":24,\"prompt_cache_miss_tokens\":6}}";
	json_object *out = NULL, *v;

	buf_init(&c.text, 0);
	ck_assert_int_eq(run_stream("fixtures/deepseek/stream.sse", &c, &err),
			 ADAPTER_DONE);
	ck_assert_ptr_nonnull(strstr(c.text.data, "\"reasoning_content\":\""));
	ck_assert_ptr_nonnull(strstr(c.text.data, "\"prompt_cache_hit_tokens\""));
	buf_free(&c.text);

	ck_assert_int_eq(oa()->parse_response(&call, body, strlen(body), &out,
					      &err), 0);
	v = json_object_object_get(json_object_object_get(out, "usage"),
				   "prompt_tokens_details");
	ck_assert_int_eq(json_object_get_int(json_object_object_get(v,
			 "cached_tokens")), 24);
	v = json_object_object_get(out, "usage");
	ck_assert_int_eq(json_object_get_int(json_object_object_get(v,
			 "prompt_cache_miss_tokens")), 6);
	v = json_object_array_get_idx(json_object_object_get(out, "choices"), 0);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(
		json_object_object_get(v, "message"), "reasoning_content")), "think");
	json_object_put(out);
}
END_TEST

static Suite *adapter_suite(void)
{
	Suite *s = suite_create("adapter_openai");
	TCase *tc = tcase_create("openai");

	tcase_add_test(tc, url_from_base_or_full_endpoint);
	tcase_add_test(tc, headers_and_body);
	tcase_add_test(tc, response_gets_client_model);
	tcase_add_test(tc, response_keeps_rare_pairs);
	tcase_add_test(tc, bad_responses_are_502);
	tcase_add_test(tc, stream_passes_chunks_and_ends_on_done);
	tcase_add_test(tc, stream_tool_calls_kept_whole);
	tcase_add_test(tc, stream_text_way_matches);
	tcase_add_test(tc, stream_text_way_declines);
	tcase_add_test(tc, response_text_way);
	tcase_add_test(tc, stream_error_event_is_error);
	tcase_add_test(tc, stream_without_done_is_cut_short);
	tcase_add_test(tc, stream_bad_event_and_client_gone);
	tcase_add_test(tc, error_statuses_map);
	tcase_add_test(tc, error_json_shape);
	tcase_add_test(tc, deepseek_stream_and_usage);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(adapter_suite());
}
