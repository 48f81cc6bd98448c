/* SPDX-License-Identifier: MIT */
/*
 * Integration tests for the core gateway: the real daemon in front of the
 * mock upstream, both on ephemeral loopback ports, driven over HTTP with
 * libcurl. Each test states the behaviour it pins down.
 */
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct h_proc mock, daemon_;

static char *gateway_config(unsigned mport)
{
	char *s;
	unsigned dead = h_free_port();

	if (asprintf(&s,
		"server:\n"
		"  host: 127.0.0.1\n"
		"  port: 0\n"
		"  max_body_bytes: 65536\n"
		"  shutdown_timeout: 5\n"
		"default_provider: mock\n"
		"providers:\n"
		"  mock:\n"
		"    adapter: openai\n"
		"    base_url: \"http://127.0.0.1:%u/v1\"\n"
		"    models:\n"
		"      gpt-test: { max_tokens: 1000, timeout: 5 }\n"
		"      gpt-test<hot>:\n"
		"        param_config:\n"
		"          update_params: { temperature: 1.5 }\n"
		"          add_params: { seed: 7, top_p: 0.5 }\n"
		"          rename_params: { max_tokens: max_completion_tokens }\n"
		"          delete_params: [presence_penalty]\n"
		"      slow: { timeout: 1 }\n"
		"  full:\n"
		"    base_url: \"http://127.0.0.1:%u/v1/chat/completions\"\n"
		"    api_key: \"${FULL_KEY}\"\n"
		"    models:\n"
		"      m1:\n"
		"  open:\n"
		"    base_url: \"http://127.0.0.1:%u/v1\"\n"
		"    allow_unlisted_models: true\n"
		"  dead:\n"
		"    base_url: \"http://127.0.0.1:%u/v1\"\n"
		"    models: { m: {} }\n",
		mport, mport, mport, dead) < 0)
		abort();
	return s;
}

static const char *gateway_env =
	"ACCESS_API_KEYS=" H_CLIENT_KEY ",second-key\n"
	"MOCK_API_KEY=" H_PROVIDER_KEY "\n"
	"FULL_KEY=full-provider-key\n";

static void setup(void)
{
	char *cfg;

	h_mock_start(&mock);
	cfg = gateway_config(mock.port);
	h_daemon_start(&daemon_, cfg, gateway_env);
	free(cfg);
}

/* A child that did not exit 0 (a crash, or a leak under ASan) fails
 * the suite even when every test passed. */
static int children_failed;

static void teardown(void)
{
	if (h_proc_stop(&daemon_) != 0)
		children_failed++;
	if (h_proc_stop(&mock) != 0)
		children_failed++;
}

/* A chat body for model with text (which may carry [mock ...]). */
static char *chat_body(const char *model, const char *text, const char *extra)
{
	char *s;

	if (asprintf(&s, "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
		     "\"content\":\"%s\"}]%s%s}", model, text,
		     extra ? "," : "", extra ? extra : "") < 0)
		abort();
	return s;
}

static void chat(const char *model, const char *text, const char *extra,
		 struct h_resp *r)
{
	char *b = chat_body(model, text, extra);

	h_chat(daemon_.port, b, r);
	free(b);
}

/* ---- basics ---- */

/* json-c 0.16 decodes the escaped pairs of U+xD800-U+xDFFF to U+FFFD: the
 * provider must still get the client's character */
START_TEST(rare_surrogate_pairs_reach_the_provider)
{
	struct h_resp r = { 0 };
	json_object *up;

	chat("mock/gpt-test", "a\\ud876\\udc00b [mock chunks=1]", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	up = h_mock_last_body(&mock);
	ck_assert_str_eq(h_get_str(up, "messages.0.content"),
			 "a\xf0\xad\xa0\x80" "b [mock chunks=1]");
	json_object_put(up);
}
END_TEST

/* A request whose only change is the model name goes on as the client
 * wrote it (the text path, src/request.h): spacing, member order and
 * escapes kept, usage switched on for a stream; one that needs more (a
 * max_tokens cap here) is rebuilt by json-c. Either way the provider
 * gets the same request. */
/* The client's body goes through the gateway; the provider's copy of it
 * must be want, byte for byte. */
static void sent_upstream_as(const char *body, const char *want)
{
	struct h_resp r = { 0 };
	json_object *st;

	h_chat(daemon_.port, body, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	st = h_mock_stats(&mock);
	ck_assert_str_eq(h_get_str(st, "last_request.body"), want);
	json_object_put(st);
}

START_TEST(request_text_goes_on_as_written)
{
	struct h_resp r = { 0 };
	json_object *st;

	sent_upstream_as(
		"{\n  \"messages\": [ { \"role\": \"user\", \"content\": "
		"\"caf\\u00e9 [mock chunks=1]\" } ],\n  \"model\": "
		"\"open/org/m\",\n  \"temperature\": 0.50\n}",
		"{\n  \"messages\": [ { \"role\": \"user\", \"content\": "
		"\"caf\\u00e9 [mock chunks=1]\" } ],\n  \"model\": "
		"\"org/m\",\n  \"temperature\": 0.50\n}");
	/* a stream gets usage asked for, after the client's members */
	sent_upstream_as("{\"model\":\"open/m\",\"stream\":true,"
			 "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
			 "{\"model\":\"m\",\"stream\":true,\"messages\":[{"
			 "\"role\":\"user\",\"content\":\"x\"}],"
			 "\"stream_options\":{\"include_usage\":true}}");
	/* a capped model: rebuilt, the same request in json-c's spelling */
	sent_upstream_as("{ \"model\": \"mock/gpt-test\", \"messages\": "
			 "[{\"role\":\"user\",\"content\":\"x\"}] }",
			 "{\"model\":\"gpt-test\",\"messages\":[{\"role\":"
			 "\"user\",\"content\":\"x\"}],\"max_tokens\":1000}");

	/* the rare surrogate pairs json-c would mangle go on as escapes */
	chat("open/m", "a\\ud876\\udc00b [mock chunks=1]", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	st = h_mock_stats(&mock);
	ck_assert_ptr_nonnull(strstr(h_get_str(st, "last_request.body"),
				     "\"a\\ud876\\udc00b [mock chunks=1]\""));
	json_object_put(st);
}
END_TEST

START_TEST(health_and_models)
{
	const char *auth[] = { "Authorization: Bearer " H_CLIENT_KEY, NULL };
	struct h_resp r = { 0 };
	json_object *j, *data;
	bool seen_variant = false, seen_full = false;

	h_http(daemon_.port, "GET", "/health", NULL, NULL, 0, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);

	h_http(daemon_.port, "GET", "/v1/models", auth, NULL, 0, &r);
	ck_assert_int_eq(r.status, 200);
	j = h_json(&r);
	ck_assert_str_eq(h_get_str(j, "object"), "list");
	data = h_get(j, "data");
	ck_assert_int_ge(json_object_array_length(data), 4);
	for (size_t i = 0; i < json_object_array_length(data); i++) {
		json_object *m = json_object_array_get_idx(data, i);
		const char *id = h_get_str(m, "id");
		ck_assert_str_eq(h_get_str(m, "object"), "model");
		ck_assert_ptr_nonnull(h_get(m, "created"));
		ck_assert_ptr_nonnull(strchr(id, '/'));
		seen_variant |= !strcmp(id, "mock/gpt-test<hot>");
		if (!strcmp(id, "full/m1")) {
			seen_full = true;
			ck_assert_str_eq(h_get_str(m, "owned_by"), "full");
		}
	}
	ck_assert(seen_variant && seen_full);
	ck_assert_ptr_null(strstr(r.body.data, H_PROVIDER_KEY));
	ck_assert_ptr_null(strstr(r.body.data, "full-provider-key"));
	json_object_put(j);
	h_resp_free(&r);

	/* /models without the /v1 prefix, for clients given a bare base URL */
	h_http(daemon_.port, "GET", "/models", auth, NULL, 0, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
}
END_TEST

START_TEST(auth_required)
{
	const char *nokey[] = { "Content-Type: application/json", NULL };
	const char *wrong[] = { "Content-Type: application/json",
				"Authorization: Bearer sk-wrong-key-xyz", NULL };
	const char *lower[] = { "Content-Type: application/json",
				"Authorization: bearer second-key", NULL };
	const char *body = "{\"model\":\"mock/gpt-test\",\"messages\":"
			   "[{\"role\":\"user\",\"content\":\"hi\"}]}";
	struct h_resp r = { 0 };
	char *code, *type, *log;

	h_http(daemon_.port, "POST", "/v1/chat/completions", nokey, body,
	       strlen(body), &r);
	ck_assert_int_eq(r.status, 401);
	code = h_error_field(&r, "code");
	type = h_error_field(&r, "type");
	ck_assert_str_eq(code, "invalid_api_key");
	ck_assert_str_eq(type, "invalid_request_error");
	free(code);
	free(type);
	h_resp_free(&r);

	h_http(daemon_.port, "POST", "/v1/chat/completions", wrong, body,
	       strlen(body), &r);
	ck_assert_int_eq(r.status, 401);
	ck_assert_ptr_null(strstr(r.body.data, "sk-wrong-key-xyz"));
	h_resp_free(&r);

	/* the scheme name is case-insensitive; the second key works too */
	h_http(daemon_.port, "POST", "/v1/chat/completions", lower, body,
	       strlen(body), &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);

	h_http(daemon_.port, "GET", "/v1/models", nokey, NULL, 0, &r);
	ck_assert_int_eq(r.status, 401);
	h_resp_free(&r);

	log = h_proc_log(&daemon_);
	ck_assert_ptr_null(strstr(log, "sk-wrong-key-xyz"));
	ck_assert_ptr_null(strstr(log, H_CLIENT_KEY));
	ck_assert_ptr_null(strstr(log, "second-key"));
	free(log);
}
END_TEST

/* ---- non-streaming ---- */

START_TEST(completion_rewrites_model)
{
	struct h_resp r = { 0 };
	json_object *j, *up;
	char *auth;

	chat("mock/gpt-test", "hello [mock chunks=4]", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	j = h_json(&r);
	ck_assert_str_eq(h_get_str(j, "model"), "mock/gpt-test");
	ck_assert_str_eq(h_get_str(j, "choices.0.message.content"),
			 "tok0 tok1 tok2 tok3 ");
	ck_assert_int_eq(json_object_get_int(h_get(j, "usage.total_tokens")), 14);
	json_object_put(j);
	/* upstream saw the bare model and the provider's key, not the client's */
	up = h_mock_last_body(&mock);
	ck_assert_str_eq(h_get_str(up, "model"), "gpt-test");
	json_object_put(up);
	auth = h_mock_last_header(&mock, "authorization");
	ck_assert_str_eq(auth, "Bearer " H_PROVIDER_KEY);
	free(auth);
	auth = h_header(&r, "x-llm-bridge-overhead-us");
	ck_assert_ptr_nonnull(auth);
	ck_assert_int_ge(atol(auth), 0);
	free(auth);
	h_resp_free(&r);
}
END_TEST

START_TEST(base_url_full_endpoint_and_env_key)
{
	struct h_resp r = { 0 };
	json_object *st;
	char *auth;

	chat("full/m1", "hi", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	st = h_mock_stats(&mock);
	ck_assert_str_eq(h_get_str(st, "last_request.path"),
			 "/v1/chat/completions");
	json_object_put(st);
	auth = h_mock_last_header(&mock, "authorization");
	ck_assert_str_eq(auth, "Bearer full-provider-key");
	free(auth);

	chat("mock/gpt-test", "hi", NULL, &r);
	st = h_mock_stats(&mock);
	ck_assert_str_eq(h_get_str(st, "last_request.path"),
			 "/v1/chat/completions");
	json_object_put(st);
	h_resp_free(&r);
}
END_TEST

START_TEST(routing_rules)
{
	struct h_resp r = { 0 };
	json_object *up, *j;
	char *code;

	/* no provider prefix: default_provider */
	chat("gpt-test", "hi", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	j = h_json(&r);
	ck_assert_str_eq(h_get_str(j, "model"), "gpt-test");
	json_object_put(j);
	h_resp_free(&r);
	up = h_mock_last_body(&mock);
	ck_assert_str_eq(h_get_str(up, "model"), "gpt-test");
	json_object_put(up);

	/* unknown provider, unlisted model: 404 model_not_found */
	chat("nope/gpt-test", "hi", NULL, &r);
	ck_assert_int_eq(r.status, 404);
	code = h_error_field(&r, "code");
	ck_assert_str_eq(code, "model_not_found");
	free(code);
	h_resp_free(&r);
	chat("mock/not-listed", "hi", NULL, &r);
	ck_assert_int_eq(r.status, 404);
	code = h_error_field(&r, "code");
	ck_assert_str_eq(code, "model_not_found");
	free(code);
	h_resp_free(&r);

	/* allow_unlisted_models; the rest after the first '/' is the model */
	chat("open/org/some-model", "hi", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	j = h_json(&r);
	ck_assert_str_eq(h_get_str(j, "model"), "open/org/some-model");
	json_object_put(j);
	h_resp_free(&r);
	up = h_mock_last_body(&mock);
	ck_assert_str_eq(h_get_str(up, "model"), "org/some-model");
	json_object_put(up);
}
END_TEST

START_TEST(variant_and_param_config)
{
	struct h_resp r = { 0 };
	json_object *up, *j;

	chat("mock/gpt-test<hot>", "hi",
	     "\"temperature\":0.2,\"top_p\":0.9,\"max_tokens\":50,"
	     "\"presence_penalty\":1", &r);
	ck_assert_int_eq(r.status, 200);
	j = h_json(&r);
	ck_assert_str_eq(h_get_str(j, "model"), "mock/gpt-test<hot>");
	json_object_put(j);
	h_resp_free(&r);
	up = h_mock_last_body(&mock);
	ck_assert_str_eq(h_get_str(up, "model"), "gpt-test");
	/* update: always set */
	ck_assert_double_eq_tol(json_object_get_double(h_get(up, "temperature")),
				1.5, 1e-9);
	/* add: only when absent */
	ck_assert_int_eq(json_object_get_int(h_get(up, "seed")), 7);
	ck_assert_double_eq_tol(json_object_get_double(h_get(up, "top_p")),
				0.9, 1e-9);
	/* rename */
	ck_assert_ptr_null(h_get(up, "max_tokens"));
	ck_assert_int_eq(json_object_get_int(h_get(up, "max_completion_tokens")),
			 50);
	/* delete */
	ck_assert_ptr_null(h_get(up, "presence_penalty"));
	json_object_put(up);
}
END_TEST

START_TEST(max_tokens_cap_and_default)
{
	struct h_resp r = { 0 };
	json_object *up;

	chat("mock/gpt-test", "hi", "\"max_tokens\":999999", &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	up = h_mock_last_body(&mock);
	ck_assert_int_eq(json_object_get_int(h_get(up, "max_tokens")), 1000);
	json_object_put(up);

	chat("mock/gpt-test", "hi", "\"max_completion_tokens\":5000", &r);
	h_resp_free(&r);
	up = h_mock_last_body(&mock);
	ck_assert_int_eq(json_object_get_int(h_get(up, "max_completion_tokens")),
			 1000);
	json_object_put(up);

	chat("mock/gpt-test", "hi", "\"max_tokens\":10", &r);
	h_resp_free(&r);
	up = h_mock_last_body(&mock);
	ck_assert_int_eq(json_object_get_int(h_get(up, "max_tokens")), 10);
	json_object_put(up);

	chat("mock/gpt-test", "hi", NULL, &r);
	h_resp_free(&r);
	up = h_mock_last_body(&mock);
	ck_assert_int_eq(json_object_get_int(h_get(up, "max_tokens")), 1000);
	json_object_put(up);
}
END_TEST

/* ---- validation ---- */

static void expect_400(const char *body, const char *param)
{
	struct h_resp r = { 0 };
	json_object *j;

	h_chat(daemon_.port, body, &r);
	ck_assert_msg(r.status == 400, "%s: status %ld", body, r.status);
	j = h_json(&r);
	ck_assert_msg(j != NULL, "error body is JSON");
	ck_assert_str_eq(h_get_str(j, "error.type"), "invalid_request_error");
	ck_assert_ptr_nonnull(h_get_str(j, "error.message"));
	if (param)
		ck_assert_msg(h_get_str(j, "error.param") &&
			      !strcmp(h_get_str(j, "error.param"), param),
			      "%s: param %s expected in %s", body, param,
			      r.body.data);
	json_object_put(j);
	h_resp_free(&r);
}

START_TEST(validation_errors)
{
	long before = h_mock_stat(&mock, "requests");

	expect_400("{\"model\":", NULL);
	expect_400("not json", NULL);
	expect_400("[1,2]", NULL);
	expect_400("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
		   "model");
	expect_400("{\"model\":\"mock/gpt-test\"}", "messages");
	expect_400("{\"model\":42,\"messages\":[]}", "model");
	expect_400("{\"model\":\"mock/gpt-test\",\"messages\":\"hi\"}",
		   "messages");
	expect_400("{\"model\":\"mock/gpt-test\",\"messages\":[{\"role\":"
		   "\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}",
		   "temperature");
	expect_400("{\"model\":\"mock/gpt-test\",\"messages\":[{\"role\":"
		   "\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}",
		   "stream");
	expect_400("{\"model\":\"mock/gpt-test\",\"messages\":[{\"role\":"
		   "\"user\",\"content\":\"x\"}],\"max_tokens\":-5}",
		   "max_tokens");
	/* nothing invalid reached the upstream */
	ck_assert_int_eq(h_mock_stat(&mock, "requests"), before);
}
END_TEST

START_TEST(body_limit_and_http_errors)
{
	const char *hdr[] = { "Authorization: Bearer " H_CLIENT_KEY,
			      "Content-Type: application/json", NULL };
	const char *text[] = { "Authorization: Bearer " H_CLIENT_KEY,
			       "Content-Type: text/plain", NULL };
	size_t big = 70000;
	char *body = malloc(big + 1);
	struct h_resp r = { 0 };
	const struct {
		const char *method, *path, *allow;
	} wrong[] = {
		{ "GET", "/v1/chat/completions", "POST, OPTIONS" },
		{ "DELETE", "/v1/models", "GET, HEAD, OPTIONS" },
	};
	char *allow;

	memset(body, ' ', big);
	body[0] = '{';
	body[big - 1] = '}';
	body[big] = '\0';
	h_http(daemon_.port, "POST", "/v1/chat/completions", hdr, body, big,
	       &r);
	ck_assert_int_eq(r.status, 413);
	ck_assert_ptr_nonnull(strstr(r.body.data, "\"error\""));
	h_resp_free(&r);
	free(body);

	h_http(daemon_.port, "POST", "/v1/chat/completions", text, "{}", 2, &r);
	ck_assert_int_eq(r.status, 415);
	h_resp_free(&r);

	for (size_t i = 0; i < 2; i++) {
		h_http(daemon_.port, wrong[i].method, wrong[i].path, hdr, NULL,
		       0, &r);
		ck_assert_int_eq(r.status, 405);
		ck_assert_ptr_nonnull(strstr(r.body.data, "\"error\""));
		allow = h_header(&r, "Allow");
		ck_assert_str_eq(allow, wrong[i].allow);
		free(allow);
		h_resp_free(&r);
	}

	h_http(daemon_.port, "GET", "/v1/nothing-here", hdr, NULL, 0, &r);
	ck_assert_int_eq(r.status, 404);
	ck_assert_ptr_nonnull(strstr(r.body.data, "\"error\""));
	h_resp_free(&r);
}
END_TEST

START_TEST(cors_preflight)
{
	const char *hdr[] = { "Origin: http://app.example",
			      "Access-Control-Request-Method: POST",
			      "Access-Control-Request-Headers: authorization, "
			      "content-type", NULL };
	struct h_resp r = { 0 };
	char *v;

	h_http(daemon_.port, "OPTIONS", "/v1/chat/completions", hdr, NULL, 0,
	       &r);
	ck_assert_int_eq(r.status, 204);
	v = h_header(&r, "Access-Control-Allow-Origin");
	ck_assert_ptr_nonnull(v);
	free(v);
	v = h_header(&r, "Access-Control-Allow-Methods");
	ck_assert_ptr_nonnull(strstr(v, "POST"));
	free(v);
	v = h_header(&r, "Access-Control-Allow-Headers");
	ck_assert_ptr_nonnull(strcasestr(v, "authorization"));
	free(v);
	h_resp_free(&r);
}
END_TEST

/* A page's script reads only the headers a response exposes: the SDKs
 * need the request id and Retry-After, and JSON and SSE answers alike
 * must name them. */
START_TEST(cors_exposes_headers)
{
	const char *hdr[] = { "Origin: http://app.example",
			      "Authorization: Bearer " H_CLIENT_KEY,
			      "Content-Type: application/json", NULL };
	const char *stream[] = { NULL, "\"stream\":true" };

	for (int i = 0; i < 2; i++) {
		struct h_resp r = { 0 };
		char *b = chat_body("mock/gpt-test", "hi [mock chunks=2]",
				    stream[i]);
		char *v;

		h_http(daemon_.port, "POST", "/v1/chat/completions", hdr, b,
		       strlen(b), &r);
		free(b);
		ck_assert_int_eq(r.status, 200);
		v = h_header(&r, "Access-Control-Allow-Origin");
		ck_assert_ptr_nonnull(v);
		free(v);
		v = h_header(&r, "Access-Control-Expose-Headers");
		ck_assert_msg(v != NULL, "no Access-Control-Expose-Headers");
		ck_assert_ptr_nonnull(strcasestr(v, "X-Request-Id"));
		ck_assert_ptr_nonnull(strcasestr(v, "Retry-After"));
		ck_assert_ptr_nonnull(strcasestr(v, "x-ratelimit-remaining-requests"));
		free(v);
		h_resp_free(&r);
	}
}
END_TEST

/* HEAD goes wherever GET does (monitors probe /health with it): the
 * same status and headers, no body. */
START_TEST(head_like_get)
{
	const char *hdr[] = { "Authorization: Bearer " H_CLIENT_KEY, NULL };
	const char *paths[] = { "/health", "/v1/models", "/metrics" };

	for (size_t i = 0; i < 3; i++) {
		struct h_resp get = { 0 }, head = { 0 };
		char *ct_get, *ct_head, *len;

		h_http(daemon_.port, "GET", paths[i], hdr, NULL, 0, &get);
		h_http(daemon_.port, "HEAD", paths[i], hdr, NULL, 0, &head);
		ck_assert_int_eq(get.status, 200);
		ck_assert_int_eq(head.status, 200);
		ck_assert_uint_eq(head.body.len, 0);
		ct_get = h_header(&get, "Content-Type");
		ct_head = h_header(&head, "Content-Type");
		ck_assert_str_eq(ct_head, ct_get);
		len = h_header(&head, "Content-Length");
		ck_assert_ptr_nonnull(len);
		ck_assert_int_gt(atoi(len), 0);
		free(ct_get);
		free(ct_head);
		free(len);
		h_resp_free(&get);
		h_resp_free(&head);
	}
}
END_TEST

START_TEST(request_id_echo)
{
	const char *hdr[] = { "Authorization: Bearer " H_CLIENT_KEY,
			      "X-Request-Id: trace-abc-123", NULL };
	struct h_resp r = { 0 };
	char *v;

	h_http(daemon_.port, "GET", "/v1/models", hdr, NULL, 0, &r);
	v = h_header(&r, "X-Request-Id");
	ck_assert_str_eq(v, "trace-abc-123");
	free(v);
	h_resp_free(&r);
	h_http(daemon_.port, "GET", "/health", NULL, NULL, 0, &r);
	v = h_header(&r, "X-Request-Id");
	ck_assert_ptr_nonnull(v);
	ck_assert_int_gt(strlen(v), 8);
	free(v);
	h_resp_free(&r);
}
END_TEST

/* GET /v1/models/{model}, as the SDKs' models.retrieve() sends it: the
 * model's slash stays in the path. A name a chat could use is found, with
 * or without the provider; another is 404 model_not_found. */
START_TEST(model_retrieve)
{
	const char *auth[] = { "Authorization: Bearer " H_CLIENT_KEY, NULL };
	const struct {
		const char *path, *id, *owner;
	} found[] = {
		{ "/v1/models/mock/gpt-test", "mock/gpt-test", "mock" },
		{ "/models/full/m1", "full/m1", "full" },
		{ "/v1/models/mock/gpt-test<hot>", "mock/gpt-test<hot>", "mock" },
	};
	struct h_resp r = { 0 };
	json_object *j;
	char *code;

	for (size_t i = 0; i < sizeof(found) / sizeof(found[0]); i++) {
		h_http(daemon_.port, "GET", found[i].path, auth, NULL, 0, &r);
		ck_assert_msg(r.status == 200, "%s: %ld", found[i].path,
			      r.status);
		j = h_json(&r);
		ck_assert_ptr_nonnull(j);
		ck_assert_str_eq(h_get_str(j, "id"), found[i].id);
		ck_assert_str_eq(h_get_str(j, "object"), "model");
		ck_assert_str_eq(h_get_str(j, "owned_by"), found[i].owner);
		ck_assert_ptr_nonnull(h_get(j, "created"));
		json_object_put(j);
		h_resp_free(&r);
	}
	h_http(daemon_.port, "GET", "/v1/models/nope/x", auth, NULL, 0, &r);
	ck_assert_int_eq(r.status, 404);
	code = h_error_field(&r, "code");
	ck_assert_str_eq(code, "model_not_found");
	free(code);
	h_resp_free(&r);
	/* bytes of no character in the path: the error is still UTF-8 JSON */
	h_http(daemon_.port, "GET", "/v1/models/mock/%FF%C3", auth, NULL, 0,
	       &r);
	ck_assert_int_eq(r.status, 404);
	j = h_json(&r);
	ck_assert_msg(j != NULL, "not UTF-8 JSON: %s", r.body.data);
	ck_assert_ptr_nonnull(strstr(h_get_str(j, "error.message"),
				     "mock/\xef\xbf\xbd\xef\xbf\xbd"));
	json_object_put(j);
	h_resp_free(&r);
	h_http(daemon_.port, "GET", "/v1/models/mock/gpt-test", NULL, NULL, 0,
	       &r);
	ck_assert_int_eq(r.status, 401);
	h_resp_free(&r);
}
END_TEST

/* ---- streaming ---- */

START_TEST(stream_basic)
{
	struct h_resp r = { 0 };
	char *ev[64], *storage, *v, *text;
	size_t n;
	json_object *up;

	chat("mock/gpt-test", "hi [mock chunks=5]", "\"stream\":true", &r);
	ck_assert_int_eq(r.status, 200);
	v = h_header(&r, "Content-Type");
	ck_assert_ptr_nonnull(strstr(v, "text/event-stream"));
	free(v);
	v = h_header(&r, "Cache-Control");
	ck_assert_str_eq(v, "no-cache");
	free(v);
	v = h_header(&r, "X-Accel-Buffering");
	ck_assert_str_eq(v, "no");
	free(v);
	n = h_sse_events(&r, ev, 64, &storage);
	/* role chunk, 5 content chunks, finish chunk, [DONE]: no usage chunk,
	 * since the client did not ask for it */
	ck_assert_int_eq(n, 8);
	ck_assert_str_eq(ev[n - 1], "[DONE]");
	for (size_t i = 0; i + 1 < n; i++) {
		json_object *j = json_tokener_parse(ev[i]);
		ck_assert_ptr_nonnull(j);
		ck_assert_str_eq(h_get_str(j, "model"), "mock/gpt-test");
		ck_assert_ptr_null(h_get(j, "usage"));
		json_object_put(j);
	}
	free(storage);
	text = h_stream_text(&r);
	ck_assert_str_eq(text, "tok0 tok1 tok2 tok3 tok4 ");
	free(text);
	h_resp_free(&r);
	/* ... but the gateway asked upstream for usage all the same */
	up = h_mock_last_body(&mock);
	ck_assert(json_object_get_boolean(
		h_get(up, "stream_options.include_usage")));
	json_object_put(up);
}
END_TEST

START_TEST(stream_include_usage)
{
	struct h_resp r = { 0 };
	char *ev[64], *storage;
	size_t n;
	json_object *j;

	chat("mock/gpt-test", "hi [mock chunks=3]",
	     "\"stream\":true,\"stream_options\":{\"include_usage\":true}", &r);
	ck_assert_int_eq(r.status, 200);
	n = h_sse_events(&r, ev, 64, &storage);
	ck_assert_int_eq(n, 7);
	ck_assert_str_eq(ev[n - 1], "[DONE]");
	j = json_tokener_parse(ev[n - 2]);
	ck_assert_int_eq(json_object_get_int(h_get(j, "usage.completion_tokens")),
			 3);
	ck_assert_int_eq(json_object_array_length(h_get(j, "choices")), 0);
	json_object_put(j);
	free(storage);
	h_resp_free(&r);
}
END_TEST

/* Events leave as they arrive: with 150 ms between upstream events the
 * client must see them spread out, one per read, not at the end. */
START_TEST(stream_not_coalesced)
{
	struct h_resp r = { 0 };
	char *text;

	chat("mock/gpt-test", "hi [mock chunks=4 interval_ms=150]",
	     "\"stream\":true", &r);
	ck_assert_int_eq(r.status, 200);
	text = h_stream_text(&r);
	ck_assert_str_eq(text, "tok0 tok1 tok2 tok3 ");
	free(text);
	/* role + 4 content + finish + [DONE] = 7 events, each in its own
	 * read (curl hands over what one recv() returned) */
	ck_assert_int_ge(r.n_pieces, 6);
	/* the first piece came long before the last */
	ck_assert_msg(r.piece_t[r.n_pieces - 1] - r.piece_t[0] >= 500,
		      "spread %.1f ms", r.piece_t[r.n_pieces - 1] - r.piece_t[0]);
	h_resp_free(&r);
}
END_TEST

/* Upstream SSE in awkward shapes still comes out as the same events. */
START_TEST(stream_parser_robust)
{
	const char *modes[] = { "crlf=1", "split=1", "keepalive=1",
				"crlf=1 split=1 keepalive=1" };

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct h_resp r = { 0 };
		char body[128], *text, *ev[64], *storage;
		size_t n;

		snprintf(body, sizeof(body), "hi [mock chunks=3 %s]", modes[i]);
		chat("mock/gpt-test", body, "\"stream\":true", &r);
		ck_assert_int_eq(r.status, 200);
		text = h_stream_text(&r);
		ck_assert_msg(!strcmp(text, "tok0 tok1 tok2 "), "%s: %s",
			      modes[i], text);
		free(text);
		n = h_sse_events(&r, ev, 64, &storage);
		ck_assert_str_eq(ev[n - 1], "[DONE]");
		free(storage);
		h_resp_free(&r);
	}
}
END_TEST

/* ---- upstream failures ---- */

static void expect_status(const char *model, const char *directive,
			  bool stream, long status, const char *type)
{
	struct h_resp r = { 0 };
	char *t;

	chat(model, directive, stream ? "\"stream\":true" : NULL, &r);
	ck_assert_msg(r.status == status, "%s %s stream=%d: %ld %s", model,
		      directive, stream, r.status, r.body.data);
	if (type) {
		t = h_error_field(&r, "type");
		ck_assert_msg(!strcmp(t, type), "%s: type %s", directive, t);
		free(t);
	}
	/* an error is never a 200 stream */
	t = h_header(&r, "Content-Type");
	ck_assert_ptr_nonnull(strstr(t, "application/json"));
	free(t);
	h_resp_free(&r);
}

START_TEST(upstream_error_statuses)
{
	for (int s = 0; s < 2; s++) {
		struct h_resp r = { 0 };
		char *v;

		expect_status("mock/gpt-test", "[mock status=500]", s, 502, NULL);
		expect_status("mock/gpt-test", "[mock status=503]", s, 502, NULL);
		expect_status("mock/gpt-test", "[mock status=401]", s, 502, NULL);
		expect_status("mock/gpt-test", "[mock status=403]", s, 502, NULL);
		expect_status("mock/gpt-test", "[mock status=500 error_body=html]",
			      s, 502, NULL);
		expect_status("mock/gpt-test", "[mock garbage=body]", 0, 502,
			      NULL);
		expect_status("dead/m", "hi", s, 502, NULL);

		chat("mock/gpt-test", "[mock status=400]",
		     s ? "\"stream\":true" : NULL, &r);
		ck_assert_int_eq(r.status, 400);
		ck_assert_ptr_nonnull(strstr(r.body.data, "mock error 400"));
		h_resp_free(&r);

		chat("mock/gpt-test", "[mock status=429 retry_after=13]",
		     s ? "\"stream\":true" : NULL, &r);
		ck_assert_int_eq(r.status, 429);
		v = h_header(&r, "Retry-After");
		ck_assert_str_eq(v, "13");
		free(v);
		h_resp_free(&r);

		/* provider key refused: say so, and say nothing of the key */
		chat("mock/gpt-test", "[mock status=401]",
		     s ? "\"stream\":true" : NULL, &r);
		v = h_error_field(&r, "code");
		ck_assert_str_eq(v, "upstream_auth_failed");
		free(v);
		ck_assert_ptr_null(strstr(r.body.data, H_PROVIDER_KEY));
		h_resp_free(&r);
	}
}
END_TEST

START_TEST(upstream_timeout)
{
	struct h_resp r = { 0 };
	double t0 = h_now_ms();

	/* model timeout is 1 s; the mock never sends headers */
	chat("mock/slow", "[mock stall=headers]", NULL, &r);
	ck_assert_int_eq(r.status, 504);
	ck_assert_double_lt(h_now_ms() - t0, 4000);
	h_resp_free(&r);
	chat("mock/slow", "[mock stall=headers]", "\"stream\":true", &r);
	ck_assert_int_eq(r.status, 504);
	h_resp_free(&r);
}
END_TEST

/* A stream that fails after it began ends with an error event and no
 * [DONE], so no client mistakes it for a complete answer. */
START_TEST(stream_midway_failure)
{
	const char *modes[] = { "[mock chunks=5 close=midstream after=2]",
				"[mock chunks=5 error_event=1]",
				"[mock chunks=5 truncate=1]" };

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct h_resp r = { 0 };
		char *ev[64], *storage;
		size_t n;
		json_object *j;

		chat("mock/gpt-test", modes[i], "\"stream\":true", &r);
		ck_assert_int_eq(r.status, 200);
		n = h_sse_events(&r, ev, 64, &storage);
		ck_assert_int_ge(n, 2);
		ck_assert_msg(strcmp(ev[n - 1], "[DONE]") != 0, "%s", modes[i]);
		ck_assert_ptr_null(strstr(r.body.data, "[DONE]"));
		j = json_tokener_parse(ev[n - 1]);
		ck_assert_msg(h_get_str(j, "error.message") != NULL,
			      "%s: last event %s", modes[i], ev[n - 1]);
		json_object_put(j);
		free(storage);
		h_resp_free(&r);
	}
}
END_TEST

/* Stall mid-stream with a short model timeout: the idle stream is cut
 * with an error event rather than hanging forever. */
START_TEST(stream_stall_times_out)
{
	struct h_resp r = { 0 };

	chat("mock/slow", "[mock chunks=5 stall=midstream after=1]",
	     "\"stream\":true", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_null(strstr(r.body.data, "[DONE]"));
	ck_assert_ptr_nonnull(strstr(r.body.data, "\"error\""));
	h_resp_free(&r);
}
END_TEST

/* ---- connection handling ---- */

START_TEST(client_disconnect_aborts_upstream)
{
	struct h_resp r = { 0 };
	char directive[96], tag[32];
	double at;
	long aborts;

	snprintf(tag, sizeof(tag), "disc%ld", (long)getpid());
	snprintf(directive, sizeof(directive),
		 "[mock chunks=5 stall=midstream after=2 tag=%s]", tag);
	h_abort_next(1); /* hang up after the first bytes of the stream */
	chat("mock/gpt-test", directive, "\"stream\":true", &r);
	ck_assert(r.aborted_at_ms > 0);
	at = h_mock_wait_tag_abort(&mock, tag, 3000, &aborts);
	ck_assert_msg(at >= 0, "the upstream transfer was not aborted");
	ck_assert_int_eq(aborts, 1);
	/* the mock and this process share CLOCK_MONOTONIC */
	ck_assert_msg(at - r.aborted_at_ms < 1000.0,
		      "upstream aborted %.0f ms after the client left",
		      at - r.aborted_at_ms);
	h_resp_free(&r);
}
END_TEST

START_TEST(upstream_connection_reused)
{
	long before, after;

	/* warm: the pooled connection may already exist from other tests */
	for (int i = 0; i < 2; i++) {
		struct h_resp r = { 0 };
		chat("mock/gpt-test", "warm", NULL, &r);
		h_resp_free(&r);
	}
	before = h_mock_stat(&mock, "connections");
	for (int i = 0; i < 6; i++) {
		struct h_resp r = { 0 };
		chat("mock/gpt-test", "again", i % 2 ? "\"stream\":true" : NULL,
		     &r);
		ck_assert_int_eq(r.status, 200);
		h_resp_free(&r);
	}
	after = h_mock_stat(&mock, "connections");
	/* the only new connection is the one this stats query opened */
	ck_assert_int_eq(after - before, 1);
}
END_TEST

/* ---- command line ---- */

START_TEST(check_config_flag)
{
	char *dir = h_tmpdir(), *good, *bad, *out;
	const char *args_good[4] = { "--check-config", "--config", NULL, NULL };
	const char *args_bad[4] = { "--check-config", "--config", NULL, NULL };
	int rc;

	good = h_write_file(dir, "good.yaml",
			    "providers:\n  a:\n    base_url: http://127.0.0.1:9/v1\n");
	bad = h_write_file(dir, "bad.yaml",
			   "server:\n  port: 1219\nproviders:\n  a:\n"
			   "    base_url: http://127.0.0.1:9/v1\n"
			   "    models:\n      m: { timeout: soon }\n");
	args_good[2] = good;
	args_bad[2] = bad;
	rc = h_run_daemon(&out, args_good);
	ck_assert_msg(rc == 0, "%s", out);
	free(out);
	rc = h_run_daemon(&out, args_bad);
	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(out, "bad.yaml:7:") &&
		      strstr(out, "providers.a.models.m.timeout"), "%s", out);
	free(out);
	{
		const char *v[] = { "--version", NULL };
		rc = h_run_daemon(&out, v);
		ck_assert_int_eq(rc, 0);
		ck_assert_ptr_nonnull(strstr(out, "llm-bridge"));
		free(out);
	}
	unlink(good);
	unlink(bad);
	rmdir(dir);
	free(good);
	free(bad);
	free(dir);
}
END_TEST

/* SIGTERM: stop accepting, let the running stream finish, exit 0. */
START_TEST(sigterm_drains_streams)
{
	struct h_proc d;
	char *cfg = gateway_config(mock.port);
	pid_t child;
	int pfd[2];
	char res[16] = "";
	long before;

	h_daemon_start(&d, cfg, gateway_env);
	free(cfg);
	ck_assert_int_eq(pipe(pfd), 0);
	before = h_mock_stat(&mock, "requests");
	child = fork();
	if (child == 0) {
		struct h_resp r = { 0 };
		char *b = chat_body("mock/gpt-test",
				    "[mock chunks=6 interval_ms=150]",
				    "\"stream\":true");
		h_chat(d.port, b, &r);
		dprintf(pfd[1], "%s", r.body.data &&
			strstr(r.body.data, "data: [DONE]") ? "done" : "cut");
		_exit(0);
	}
	close(pfd[1]);
	/* SIGTERM once the stream is running: the mock has the request
	 * (on a loaded machine a fixed sleep may come too early) */
	{
		double deadline = h_now_ms() + 10000;

		while (h_mock_stat(&mock, "requests") == before &&
		       h_now_ms() < deadline)
			usleep(10000);
		usleep(100000);
	}
	ck_assert_int_eq(h_proc_stop(&d), 0);
	ck_assert_int_gt(read(pfd[0], res, sizeof(res) - 1), 0);
	ck_assert_str_eq(res, "done");
	waitpid(child, NULL, 0);
	close(pfd[0]);
}
END_TEST

static Suite *gateway_suite(void)
{
	Suite *s = suite_create("gateway");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, health_and_models);
	tcase_add_test(tc, auth_required);
	tcase_add_test(tc, completion_rewrites_model);
	tcase_add_test(tc, rare_surrogate_pairs_reach_the_provider);
	tcase_add_test(tc, request_text_goes_on_as_written);
	tcase_add_test(tc, base_url_full_endpoint_and_env_key);
	tcase_add_test(tc, routing_rules);
	tcase_add_test(tc, variant_and_param_config);
	tcase_add_test(tc, max_tokens_cap_and_default);
	tcase_add_test(tc, validation_errors);
	tcase_add_test(tc, body_limit_and_http_errors);
	tcase_add_test(tc, cors_preflight);
	tcase_add_test(tc, head_like_get);
	tcase_add_test(tc, model_retrieve);
	tcase_add_test(tc, cors_exposes_headers);
	tcase_add_test(tc, request_id_echo);
	tcase_add_test(tc, stream_basic);
	tcase_add_test(tc, stream_include_usage);
	tcase_add_test(tc, stream_not_coalesced);
	tcase_add_test(tc, stream_parser_robust);
	tcase_add_test(tc, upstream_error_statuses);
	tcase_add_test(tc, upstream_timeout);
	tcase_add_test(tc, stream_midway_failure);
	tcase_add_test(tc, stream_stall_times_out);
	tcase_add_test(tc, client_disconnect_aborts_upstream);
	tcase_add_test(tc, upstream_connection_reused);
	tcase_add_test(tc, check_config_flag);
	tcase_add_test(tc, sigterm_drains_streams);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(gateway_suite());
	int failed;

	signal(SIGPIPE, SIG_IGN);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr) + children_failed;
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
