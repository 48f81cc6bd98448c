/* SPDX-License-Identifier: MIT */
/*
 * Upstream faults and client disconnects, one table row per fault mode of
 * the mock, each with its documented outcome (doc/errors.md): a clear
 * OpenAI-shaped error with the right status before a stream starts, and
 * after it started an error event and never a [DONE], so a failed
 * generation never looks like a success. Client disconnects at each stage
 * abort the upstream, and what was streamed is still accounted.
 */
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"
#include "keys.h"

static struct h_proc mock, daemon_;

#define ADMIN_KEY "lb-faults-admin-key-000000000000000000"

static void setup(void)
{
	char *cfg, hex[2 * KEYS_DIGEST_LEN + 1];

	h_mock_start(&mock);
	keys_digest_hex(ADMIN_KEY, strlen(ADMIN_KEY), hex);
	if (asprintf(&cfg,
		"providers:\n"
		"  mock:\n"
		"    base_url: \"http://127.0.0.1:%u/v1\"\n"
		"    models:\n"
		"      gpt-test: { timeout: 5 }\n"
		"      slow: { timeout: 1 }\n"
		"  dead:\n"
		"    base_url: \"http://127.0.0.1:%u/v1\"\n"
		"    models: { m: {} }\n"
		"keys:\n"
		"  - name: admin\n"
		"    hash: sha256:%s\n"
		"    admin: true\n",
		mock.port, h_free_port(), hex) < 0)
		abort();
	h_daemon_start(&daemon_, cfg,
		       "ACCESS_API_KEYS=" H_CLIENT_KEY "\n"
		       "MOCK_API_KEY=" H_PROVIDER_KEY "\n");
	free(cfg);
}

/* A daemon or mock that does not exit 0 (a crash, a leak under ASan or
 * valgrind) fails the run: counted for the shared fixture, asserted in
 * the per-test one. */
static int children_failed;

static void teardown_shared(void)
{
	children_failed += h_proc_stop(&daemon_) != 0;
	children_failed += h_proc_stop(&mock) != 0;
}

static void teardown(void)
{
	int d = h_proc_stop(&daemon_), m = h_proc_stop(&mock);

	ck_assert_int_eq(d, 0);
	ck_assert_int_eq(m, 0);
}

static void chat(const char *model, const char *text, bool stream,
		 struct h_resp *r)
{
	char *b;

	if (asprintf(&b, "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
		     "\"content\":\"%s\"}]%s}", model, text,
		     stream ? ",\"stream\":true" : "") < 0)
		abort();
	h_chat(daemon_.port, b, r);
	free(b);
}

/* ---- faults before the answer starts: a plain error answer ---- */

struct early_fault {
	const char *name, *model, *directive;
	long status;
	const char *code;        /* error.code, "" for any */
	const char *retry_after; /* expected Retry-After, or NULL */
};

static const struct early_fault early[] = {
	{ "connection refused", "dead/m", "hi", 502, "upstream_unreachable", NULL },
	{ "reset before headers", "mock/gpt-test", "[mock reset=1]", 502,
	  "upstream_error", NULL },
	{ "stall before headers", "mock/slow", "[mock stall=headers]", 504,
	  "upstream_timeout", NULL },
	{ "non-JSON error page", "mock/gpt-test",
	  "[mock status=502 error_body=html]", 502, "", NULL },
	{ "429 with Retry-After", "mock/gpt-test",
	  "[mock status=429 retry_after=7]", 429, "", "7" },
	{ "500", "mock/gpt-test", "[mock status=500]", 502, "", NULL },
	{ "502", "mock/gpt-test", "[mock status=502]", 502, "", NULL },
	{ "503", "mock/gpt-test", "[mock status=503]", 502, "", NULL },
};

START_TEST(early_faults)
{
	const struct early_fault *f = &early[_i / 2];
	bool stream = _i % 2;
	struct h_resp r;
	json_object *j;
	char *v;

	chat(f->model, f->directive, stream, &r);
	ck_assert_msg(r.status == f->status, "%s%s: status %ld: %s", f->name,
		      stream ? " (stream)" : "", r.status, r.body.data);
	j = h_json(&r);
	ck_assert_msg(j && h_get_str(j, "error.message") &&
		      h_get_str(j, "error.type"), "%s: not an OpenAI error: %s",
		      f->name, r.body.data);
	if (*f->code)
		ck_assert_str_eq(h_get_str(j, "error.code"), f->code);
	json_object_put(j);
	if (f->retry_after) {
		v = h_header(&r, "Retry-After");
		ck_assert_ptr_nonnull(v);
		ck_assert_str_eq(v, f->retry_after);
		free(v);
	}
	ck_assert_ptr_null(strstr(r.body.data, "[DONE]"));
	ck_assert_ptr_null(strstr(r.body.data, H_PROVIDER_KEY));
	/* error answers report the gateway's own time too */
	v = h_header(&r, "x-llm-bridge-overhead-us");
	ck_assert_ptr_nonnull(v);
	ck_assert_int_ge(atol(v), 0);
	free(v);
	h_resp_free(&r);
}
END_TEST

/* A provider key goes to its own provider's host only: a redirect
 * elsewhere is not followed (the key would travel with it), and the
 * client gets an error, not the other host's answer. */
START_TEST(redirects_are_not_followed)
{
	struct h_proc other;
	char text[64];
	struct h_resp r;

	h_mock_start(&other);
	for (int st = 0; st < 2; st++) {
		snprintf(text, sizeof(text), "[mock status=%d location=%u]",
			 st ? 302 : 307, other.port);
		chat("mock/gpt-test", text, st, &r);
		ck_assert_msg(r.status == 502, "status %ld: %s", r.status,
			      r.body.data);
		h_resp_free(&r);
	}
	/* (its connection count includes our own stats queries) */
	ck_assert_int_eq(h_mock_stat(&other, "requests"), 0);
	ck_assert_int_eq(h_proc_stop(&other), 0);
}
END_TEST

/* Answers the front gives itself (health, unknown URLs, a bad key,
 * metrics, a CORS preflight) carry the overhead header and a request id
 * as well: every response does. */
START_TEST(front_answers_carry_overhead)
{
	const char *preflight[] = { "Origin: http://app.example",
				    "Access-Control-Request-Method: POST",
				    NULL };
	const struct {
		const char *method, *path;
		const char **hdr;
	} asks[] = {
		{ "GET", "/health", NULL },
		{ "GET", "/nope", NULL },
		{ "GET", "/v1/models", NULL },
		{ "GET", "/metrics", NULL },
		{ "OPTIONS", "/v1/chat/completions", preflight },
	};
	struct h_resp r;

	for (size_t i = 0; i < sizeof(asks) / sizeof(asks[0]); i++) {
		char *v, *end;

		h_http(daemon_.port, asks[i].method, asks[i].path, asks[i].hdr,
		       NULL, 0, &r);
		ck_assert_msg(r.status > 0, "%s: no answer", asks[i].path);
		v = h_header(&r, "x-llm-bridge-overhead-us");
		ck_assert_msg(v != NULL, "%s %s: no overhead header",
			      asks[i].method, asks[i].path);
		strtoul(v, &end, 10);
		ck_assert_msg(*v && !*end, "%s: overhead %s is not a number",
			      asks[i].path, v);
		free(v);
		v = h_header(&r, "X-Request-Id");
		ck_assert_msg(v != NULL, "%s %s: no request id",
			      asks[i].method, asks[i].path);
		free(v);
		h_resp_free(&r);
	}
}
END_TEST

/* ---- faults after a stream started: an error event, never [DONE] ---- */

struct stream_fault {
	const char *name, *model, *directive;
	const char *code; /* error.code of the last event, "" for any */
	int min_pieces;   /* content chunks that got through first */
};

static const struct stream_fault midway[] = {
	{ "truncated SSE", "mock/gpt-test", "[mock chunks=5 truncate=1]", "",
	  5 },
	{ "invalid JSON in an event", "mock/gpt-test",
	  "[mock chunks=5 badjson_event=1]", "", 1 },
	{ "close mid-stream", "mock/gpt-test",
	  "[mock chunks=5 close=midstream after=2]", "", 2 },
	{ "error event", "mock/gpt-test", "[mock chunks=5 error_event=1]", "",
	  1 },
	{ "stall mid-stream", "mock/slow",
	  "[mock chunks=5 stall=midstream after=2]", "upstream_timeout", 2 },
	{ "garbage instead of events", "mock/gpt-test", "[mock garbage=body]",
	  "", 0 },
};

START_TEST(midway_faults)
{
	const struct stream_fault *f = &midway[_i];
	struct h_resp r;
	char *ev[128], *storage, *text;
	size_t n;
	json_object *j;
	int pieces = 0;

	chat(f->model, f->directive, true, &r);
	if (r.status != 200) {
		/* garbage may be refused before any event went out: then
		 * it must be a plain error answer */
		j = h_json(&r);
		ck_assert_msg(r.status == 502 && j &&
			      h_get_str(j, "error.message"), "%s: %ld %s",
			      f->name, r.status, r.body.data);
		json_object_put(j);
		h_resp_free(&r);
		return;
	}
	n = h_sse_events(&r, ev, 128, &storage);
	ck_assert_msg(n >= 1, "%s: no events", f->name);
	ck_assert_msg(strstr(r.body.data, "[DONE]") == NULL,
		      "%s: a failed stream ended with [DONE]", f->name);
	j = json_tokener_parse(ev[n - 1]);
	ck_assert_msg(j && h_get_str(j, "error.message"),
		      "%s: last event is not an error: %s", f->name, ev[n - 1]);
	if (*f->code)
		ck_assert_str_eq(h_get_str(j, "error.code"), f->code);
	json_object_put(j);
	text = h_stream_text(&r);
	for (char *p = text; (p = strstr(p, "tok")); p++)
		pieces++;
	ck_assert_msg(pieces >= f->min_pieces, "%s: %d pieces before the "
		      "error, want %d", f->name, pieces, f->min_pieces);
	free(text);
	free(storage);
	h_resp_free(&r);
}
END_TEST

/* A slow drip is not a fault: every event arrives, each on its own, and
 * the stream ends with [DONE]. */
START_TEST(slow_drip_arrives_whole)
{
	struct h_resp r;
	char *text;

	chat("mock/gpt-test", "[mock chunks=6 interval_ms=150]", true, &r);
	ck_assert_int_eq(r.status, 200);
	text = h_stream_text(&r);
	ck_assert_str_eq(text, "tok0 tok1 tok2 tok3 tok4 tok5 ");
	free(text);
	ck_assert_ptr_nonnull(strstr(r.body.data, "data: [DONE]"));
	/* the pieces were not held back and sent together */
	ck_assert_uint_ge(r.n_pieces, 6);
	ck_assert(r.piece_t[r.n_pieces - 1] - r.piece_t[0] > 600.0);
	h_resp_free(&r);
}
END_TEST

/* ---- client disconnects ---- */

static long usage_completion(void)
{
	const char *hdr[] = { "Authorization: Bearer " ADMIN_KEY, NULL };
	struct h_resp r;
	json_object *u, *row;
	long n = -1;

	h_http(daemon_.port, "GET", "/v1/usage?group_by=key", hdr, NULL, 0,
	       &r);
	ck_assert_int_eq(r.status, 200);
	u = h_json(&r);
	row = h_get(u, "data.0");
	if (row)
		n = (long)json_object_get_int64(h_get(row,
						      "completion_tokens"));
	json_object_put(u);
	h_resp_free(&r);
	return n;
}

/* The transfer tagged tag, and only it, was aborted within 1.5 s of
 * since_ms. */
static void wait_aborted(const char *tag, double since_ms)
{
	long aborts;
	double at = h_mock_wait_tag_abort(&mock, tag, 3000, &aborts);

	ck_assert_msg(at >= 0, "upstream transfer %s was not aborted", tag);
	ck_assert_int_eq(aborts, 1);
	ck_assert_msg(at - since_ms < 1500, "upstream aborted %.0f ms late",
		      at - since_ms);
}

/* A client that hangs up is no fault of the gateway's: its audit line
 * says 499, and no warning claims an internal error. */
static void no_internal_error_logged(void)
{
	char *log;

	usleep(100000); /* the connection's thread logs as it closes */
	log = h_proc_log(&daemon_);
	ck_assert_msg(!strstr(log, "internal error"), "%s", log);
	free(log);
}

START_TEST(disconnect_mid_stream_is_accounted)
{
	const char *hdr[] = { "Authorization: Bearer " ADMIN_KEY,
			      "Content-Type: application/json", NULL };
	const char *body = "{\"model\":\"mock/gpt-test\",\"stream\":true,"
		"\"messages\":[{\"role\":\"user\",\"content\":"
		"\"[mock chunks=50 interval_ms=50 tag=midstream]\"}]}";
	struct h_resp r = { 0 };

	h_abort_next(400); /* a few chunks in, the client hangs up */
	h_http(daemon_.port, "POST", "/v1/chat/completions", hdr, body,
	       strlen(body), &r);
	ck_assert(r.aborted_at_ms > 0);
	wait_aborted("midstream", r.aborted_at_ms);
	h_resp_free(&r);
	no_internal_error_logged();
	/* the provider never sent usage: the pieces that went out count */
	usleep(200000);
	ck_assert_int_gt(usage_completion(), 0);
	ck_assert_int_lt(usage_completion(), 50);
}
END_TEST

/* The client hangs up once the provider has the request (and is holding
 * its headers back): not after a fixed time a loaded machine can outrun. */
struct hangup {
	long requests_before;
	double at_ms;
};

static int hang_up_when_upstream_has_it(void *ud, curl_off_t dt,
					curl_off_t dn, curl_off_t ut,
					curl_off_t un)
{
	struct hangup *h = ud;

	if (h_mock_stat(&mock, "requests") <= h->requests_before)
		return 0;
	h->at_ms = h_now_ms();
	return 1; /* abort the transfer: the client is gone */
}

START_TEST(disconnect_before_headers)
{
	struct hangup hu = { h_mock_stat(&mock, "requests"), 0 };
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	char url[128];
	const char *body = "{\"model\":\"mock/gpt-test\",\"messages\":"
		"[{\"role\":\"user\",\"content\":"
		"\"[mock stall=headers tag=beforeheaders]\"}]}";

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/chat/completions",
		 daemon_.port);
	hl = curl_slist_append(hl, "Authorization: Bearer " H_CLIENT_KEY);
	hl = curl_slist_append(hl, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION,
			 hang_up_when_upstream_has_it);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &hu);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
	ck_assert_int_eq(curl_easy_perform(c), CURLE_ABORTED_BY_CALLBACK);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	wait_aborted("beforeheaders", hu.at_ms);
	no_internal_error_logged();
}
END_TEST

START_TEST(disconnect_during_upload)
{
	long requests = h_mock_stat(&mock, "requests");
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	const char *head = "POST /v1/chat/completions HTTP/1.1\r\n"
		"Host: x\r\nAuthorization: Bearer " H_CLIENT_KEY "\r\n"
		"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
		"{\"model\":\"mock/gpt-test\",\"messages\":[";
	struct h_resp r;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)daemon_.port);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(write(fd, head, strlen(head)), (ssize_t)strlen(head));
	usleep(100000);
	close(fd);
	usleep(200000);
	/* nothing went upstream, and the daemon serves on */
	ck_assert_int_eq(h_mock_stat(&mock, "requests"), requests);
	chat("mock/gpt-test", "hi", false, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("faults");
	TCase *tu = tcase_create("upstream"), *tc = tcase_create("client");
	SRunner *sr;
	int failed;

	tcase_add_unchecked_fixture(tu, setup, teardown_shared);
	tcase_set_timeout(tu, 60);
	tcase_add_loop_test(tu, early_faults, 0,
			    (int)(2 * sizeof(early) / sizeof(early[0])));
	tcase_add_loop_test(tu, midway_faults, 0,
			    (int)(sizeof(midway) / sizeof(midway[0])));
	tcase_add_test(tu, slow_drip_arrives_whole);
	tcase_add_test(tu, front_answers_carry_overhead);
	tcase_add_test(tu, redirects_are_not_followed);
	suite_add_tcase(s, tu);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, disconnect_mid_stream_is_accounted);
	tcase_add_test(tc, disconnect_before_headers);
	tcase_add_test(tc, disconnect_during_upload);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 && children_failed == 0 ? 0 : 1;
}
