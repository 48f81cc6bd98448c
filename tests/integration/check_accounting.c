/* SPDX-License-Identifier: MIT */
/*
 * Integration tests for keys, limits, usage statistics and metrics: the
 * real daemon with named keys in front of the mock upstream. The mock
 * reports 10 prompt tokens and one completion token per content chunk,
 * so every number asserted here follows from the requests sent.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "keys.h"
#include "tokenizer.h"

static struct h_proc mock, daemon_;
static char *state_dir;      /* the usage database lives here */

#define ADMIN_KEY "lb-admin-key-for-tests-000000000000000"
#define RPM_KEY "lb-rpm-key-for-tests-00000000000000000"
#define TPM_KEY "lb-tpm-key-for-tests-00000000000000000"
#define BUDGET_KEY "lb-budget-key-for-tests-0000000000000"
#define SCOPED_KEY "lb-scoped-key-for-tests-0000000000000"
#define OFF_KEY "lb-off-key-for-tests-00000000000000000"
#define OLD_KEY "lb-old-key-for-tests-00000000000000000"

/* One request's reservation for the budget key: the prompt below counted
 * locally plus its max_tokens of 5. */
#define BUDGET_PROMPT "{\"role\":\"user\",\"content\":\"hi [mock chunks=1]\"}"

static int64_t budget_estimate(void)
{
	const char *dir = getenv("LB_TOKENIZER_DIR");
	json_object *msgs = json_tokener_parse("[" BUDGET_PROMPT "]");
	int64_t n;

	ck_assert_int_eq(tok_load(dir ? dir : "../src/tokdata", NULL), 0);
	n = tok_count_messages(tok_encoding("o200k_base"), msgs) + 5;
	json_object_put(msgs);
	tok_unload();
	return n;
}

/* o200k_base tokens of text, counted by the daemon's own tokenizer
 * (itself checked against js-tiktoken in the tokenizer suites). */
static int64_t o200k(const char *text)
{
	const char *dir = getenv("LB_TOKENIZER_DIR");
	int64_t n;

	ck_assert_int_eq(tok_load(dir ? dir : "../src/tokdata", NULL), 0);
	n = (int64_t)tok_count(tok_encoding("o200k_base"), text, strlen(text));
	tok_unload();
	return n;
}

static void key_yaml(struct buf *b, const char *name, const char *key,
		     const char *extra)
{
	char hex[2 * KEYS_DIGEST_LEN + 1];

	keys_digest_hex(key, strlen(key), hex);
	buf_printf(b, "  - name: %s\n    hash: sha256:%s\n%s", name, hex,
		   extra ? extra : "");
}

static char *accounting_config(void)
{
	struct buf b;
	char limit[128];

	buf_init(&b, 0);
	buf_printf(&b,
		"usage:\n  database: %s/usage.db\n  flush_interval: 1\n"
		"default_provider: mock\n"
		"providers:\n"
		"  mock:\n"
		"    base_url: \"http://127.0.0.1:%u/v1\"\n"
		"    models:\n"
		"      gpt-test:\n"
		"        max_tokens: 100\n"
		"        price: { prompt: 1000000, completion: 2000000 }\n"
		"      m2: {}\n"
		"keys:\n", state_dir, mock.port);
	key_yaml(&b, "admin", ADMIN_KEY, "    admin: true\n");
	key_yaml(&b, "rpm3", RPM_KEY, "    rpm: 3\n");
	/* two requests of about 10 + 100 tokens fit, a third does not */
	key_yaml(&b, "tpm", TPM_KEY, "    tpm: 250\n");
	/* two requests fit (each settles at 11 real tokens), a third's
	 * reservation does not */
	snprintf(limit, sizeof(limit), "    budget: { tokens: %lld, period: "
		 "day }\n", (long long)(22 + budget_estimate() - 1));
	key_yaml(&b, "budget", BUDGET_KEY, limit);
	key_yaml(&b, "scoped", SCOPED_KEY, "    models: [\"mock/gpt-*\"]\n");
	key_yaml(&b, "off", OFF_KEY, "    enabled: false\n");
	key_yaml(&b, "old", OLD_KEY, "    expires: 2020-01-31\n");
	return buf_steal(&b);
}

static const char *accounting_env =
	"ACCESS_API_KEYS=" H_CLIENT_KEY "\n"
	"MOCK_API_KEY=" H_PROVIDER_KEY "\n";

static void start_daemon(void)
{
	char *cfg = accounting_config();

	h_daemon_start(&daemon_, cfg, accounting_env);
	free(cfg);
}

static void setup(void)
{
	state_dir = h_tmpdir();
	h_mock_start(&mock);
	start_daemon();
}

/* Checked fixture (each test has its own daemon, so limits and usage
 * start from zero): a daemon or mock that does not exit 0 (a crash, or a
 * leak under ASan) fails the test here. */
static void teardown(void)
{
	char cmd[256];
	int daemon_rc = h_proc_stop(&daemon_), mock_rc = h_proc_stop(&mock);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", state_dir);
	free(state_dir);
	ck_assert_int_eq(daemon_rc, 0);
	ck_assert_int_eq(mock_rc, 0);
}

/* POST a chat request with key; body's messages hold text. */
static void chat_as(const char *key, const char *model, const char *text,
		    const char *extra, struct h_resp *r)
{
	char auth[128], *body;
	const char *headers[] = { auth, "Content-Type: application/json",
				  NULL };

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	if (asprintf(&body, "{\"model\":\"%s\",\"messages\":[{\"role\":"
		     "\"user\",\"content\":\"%s\"}]%s%s}", model, text,
		     extra ? "," : "", extra ? extra : "") < 0)
		abort();
	h_http(daemon_.port, "POST", "/v1/chat/completions", headers, body,
	       strlen(body), r);
	free(body);
}

static void get_as(const char *key, const char *path, struct h_resp *r)
{
	char auth[128] = "";
	const char *headers[] = { auth, NULL };

	if (key)
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
	h_http(daemon_.port, "GET", path, key ? headers : NULL, NULL, 0, r);
}

static void assert_error(struct h_resp *r, long status, const char *code)
{
	char *c = h_error_field(r, "code");

	ck_assert_msg(r->status == status, "status %ld, want %ld: %s",
		      r->status, status, r->body.data);
	ck_assert_str_eq(c, code);
	free(c);
}

static void assert_header(struct h_resp *r, const char *name,
			  const char *want)
{
	char *v = h_header(r, name);

	ck_assert_msg(v != NULL, "no %s header", name);
	ck_assert_str_eq(v, want);
	free(v);
}

/* ---- keys ---- */

START_TEST(allow_list_403)
{
	struct h_resp r;

	chat_as(SCOPED_KEY, "mock/m2", "hi", NULL, &r);
	assert_error(&r, 403, "model_not_allowed");
	h_resp_free(&r);
	/* a bare model name goes to the default provider: same rule */
	chat_as(SCOPED_KEY, "m2", "hi", NULL, &r);
	assert_error(&r, 403, "model_not_allowed");
	h_resp_free(&r);
	chat_as(SCOPED_KEY, "mock/gpt-test", "hi", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	ck_assert_int_eq(h_mock_stat(&mock, "requests"), 1);
}
END_TEST

START_TEST(disabled_and_expired_401)
{
	struct h_resp r;

	chat_as(OFF_KEY, "mock/gpt-test", "hi", NULL, &r);
	assert_error(&r, 401, "key_disabled");
	h_resp_free(&r);
	chat_as(OLD_KEY, "mock/gpt-test", "hi", NULL, &r);
	assert_error(&r, 401, "key_expired");
	h_resp_free(&r);
	chat_as("lb-nobody", "mock/gpt-test", "hi", NULL, &r);
	assert_error(&r, 401, "invalid_api_key");
	h_resp_free(&r);
	ck_assert_int_eq(h_mock_stat(&mock, "requests"), 0);
}
END_TEST

/* ---- limits ---- */

START_TEST(rpm_429_with_headers)
{
	struct h_resp r;
	char want[8], *ra;

	for (int i = 0; i < 3; i++) {
		chat_as(RPM_KEY, "mock/gpt-test", "hi", NULL, &r);
		ck_assert_int_eq(r.status, 200);
		assert_header(&r, "x-ratelimit-limit-requests", "3");
		snprintf(want, sizeof(want), "%d", 2 - i);
		assert_header(&r, "x-ratelimit-remaining-requests", want);
		h_resp_free(&r);
	}
	chat_as(RPM_KEY, "mock/gpt-test", "hi", "\"stream\":true", &r);
	assert_error(&r, 429, "rate_limit_exceeded");
	ra = h_header(&r, "Retry-After");
	ck_assert_ptr_nonnull(ra);
	ck_assert_int_ge(atoi(ra), 1);
	ck_assert_int_le(atoi(ra), 60);
	free(ra);
	assert_header(&r, "x-ratelimit-remaining-requests", "0");
	h_resp_free(&r);
	ck_assert_int_eq(h_mock_stat(&mock, "requests"), 3);
	/* other keys are not affected */
	chat_as(ADMIN_KEY, "mock/gpt-test", "hi", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
}
END_TEST

START_TEST(tpm_429_counts_reservations)
{
	struct h_resp r;
	char *v;

	/* each request reserves its prompt + max_tokens (the model's 100)
	 * and settles at the mock's 10 + 3 */
	chat_as(TPM_KEY, "mock/gpt-test", "hi", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	assert_header(&r, "x-ratelimit-limit-tokens", "250");
	v = h_header(&r, "x-ratelimit-remaining-tokens");
	ck_assert_ptr_nonnull(v);
	ck_assert_int_lt(atoi(v), 250 - 100);
	free(v);
	h_resp_free(&r);
	chat_as(TPM_KEY, "mock/gpt-test", "hi", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	/* settled: 2 x 13 used, so 224 are left; a model without a
	 * max_tokens cap lets the client ask for more than that */
	chat_as(TPM_KEY, "mock/m2", "hi", "\"max_tokens\":240", &r);
	ck_assert_msg(r.status == 429, "status %ld: %s", r.status,
		      r.body.data);
	assert_error(&r, 429, "rate_limit_exceeded");
	h_resp_free(&r);
	chat_as(TPM_KEY, "mock/gpt-test", "hi", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	ck_assert_int_eq(h_mock_stat(&mock, "requests"), 3);
}
END_TEST

START_TEST(budget_429_insufficient_quota)
{
	struct h_resp r;

	for (int i = 0; i < 2; i++) {
		chat_as(BUDGET_KEY, "mock/gpt-test", "hi [mock chunks=1]",
			"\"max_tokens\":5", &r);
		ck_assert_msg(r.status == 200, "request %d: %ld %s", i,
			      r.status, r.body.data);
		h_resp_free(&r);
	}
	chat_as(BUDGET_KEY, "mock/gpt-test", "hi [mock chunks=1]",
		"\"max_tokens\":5", &r);
	assert_error(&r, 429, "insufficient_quota");
	h_resp_free(&r);
	ck_assert_int_eq(h_mock_stat(&mock, "requests"), 2);
}
END_TEST

/* ---- usage ---- */

/* The row of /v1/usage data matching key and model, or NULL. */
static json_object *usage_row(json_object *u, const char *key,
			      const char *model)
{
	json_object *data = h_get(u, "data");

	for (size_t i = 0; data && i < json_object_array_length(data); i++) {
		json_object *row = json_object_array_get_idx(data, i);
		const char *k = h_get_str(row, "key");
		const char *m = h_get_str(row, "model");

		if ((!key || (k && !strcmp(k, key))) &&
		    (!model || (m && !strcmp(m, model))))
			return row;
	}
	return NULL;
}

static long row_int(json_object *row, const char *field)
{
	json_object *v = h_get(row, field);

	ck_assert_msg(v != NULL, "no %s in %s", field,
		      json_object_to_json_string(row));
	return (long)json_object_get_int64(v);
}

/* A scripted mix: by admin, a plain answer (3 chunks), a stream (2
 * chunks), an upstream 500; by the plain ACCESS key one answer. */
static void scripted_mix(void)
{
	struct h_resp r;

	chat_as(ADMIN_KEY, "mock/gpt-test", "a [mock chunks=3]", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	chat_as(ADMIN_KEY, "mock/gpt-test", "b [mock chunks=2]",
		"\"stream\":true", &r);
	ck_assert_int_eq(r.status, 200);
	/* the whole stream, not just its status: the usage asserted later
	 * depends on it */
	ck_assert_ptr_nonnull(strstr(r.body.data, "data: [DONE]"));
	h_resp_free(&r);
	chat_as(ADMIN_KEY, "mock/gpt-test", "c [mock status=500]", NULL, &r);
	ck_assert_int_eq(r.status, 502);
	h_resp_free(&r);
	chat_as(H_CLIENT_KEY, "mock/m2", "d [mock chunks=1]", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
}

static void check_mix_usage(void)
{
	struct h_resp r;
	json_object *u, *row;
	char hex[2 * KEYS_DIGEST_LEN + 1], label[16];

	get_as(ADMIN_KEY, "/v1/usage?group_by=key,model", &r);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body.data);
	u = h_json(&r);
	row = usage_row(u, "admin", "gpt-test");
	ck_assert_ptr_nonnull(row);
	ck_assert_int_eq(row_int(row, "requests"), 3);
	ck_assert_int_eq(row_int(row, "errors"), 1);
	ck_assert_int_eq(row_int(row, "prompt_tokens"), 20);
	ck_assert_int_eq(row_int(row, "completion_tokens"), 5);
	ck_assert_int_eq(row_int(row, "total_tokens"), 25);
	/* 1 per prompt token, 2 per completion token */
	ck_assert_double_eq_tol(json_object_get_double(h_get(row, "cost")),
				30.0, 1e-9);
	ck_assert_ptr_null(h_get(row, "day"));
	/* a plain ACCESS_API_KEYS key is accounted under its label */
	row = usage_row(u, NULL, "m2");
	ck_assert_ptr_nonnull(row);
	keys_digest_hex(H_CLIENT_KEY, strlen(H_CLIENT_KEY), hex);
	snprintf(label, sizeof(label), "key-%.8s", hex);
	ck_assert_str_eq(h_get_str(row, "key"), label);
	json_object_put(u);
	h_resp_free(&r);
}

START_TEST(usage_endpoint)
{
	struct h_resp r;
	json_object *u;

	scripted_mix();
	check_mix_usage();
	/* filters */
	get_as(ADMIN_KEY, "/v1/usage?model=m2&group_by=model", &r);
	ck_assert_int_eq(r.status, 200);
	u = h_json(&r);
	ck_assert_int_eq(json_object_array_length(h_get(u, "data")), 1);
	ck_assert_int_eq(row_int(usage_row(u, NULL, "m2"), "requests"), 1);
	json_object_put(u);
	h_resp_free(&r);
	get_as(ADMIN_KEY, "/v1/usage?from=2000-01-01&to=2000-01-02", &r);
	ck_assert_int_eq(r.status, 200);
	u = h_json(&r);
	ck_assert_int_eq(json_object_array_length(h_get(u, "data")), 0);
	json_object_put(u);
	h_resp_free(&r);
	/* refusals */
	get_as(ADMIN_KEY, "/v1/usage?group_by=colour", &r);
	assert_error(&r, 400, "");
	h_resp_free(&r);
	get_as(ADMIN_KEY, "/v1/usage?from=yesterday", &r);
	ck_assert_int_eq(r.status, 400);
	h_resp_free(&r);
	get_as(H_CLIENT_KEY, "/v1/usage", &r);
	assert_error(&r, 403, "admin_required");
	h_resp_free(&r);
	get_as(NULL, "/v1/usage", &r);
	ck_assert_int_eq(r.status, 401);
	h_resp_free(&r);
}
END_TEST

START_TEST(usage_survives_restart)
{
	struct h_resp r;

	scripted_mix();
	/* the budget key spends its two requests before the restart */
	for (int i = 0; i < 2; i++) {
		chat_as(BUDGET_KEY, "mock/gpt-test", "hi [mock chunks=1]",
			"\"max_tokens\":5", &r);
		ck_assert_int_eq(r.status, 200);
		h_resp_free(&r);
	}
	ck_assert_int_eq(h_proc_stop(&daemon_), 0);
	start_daemon();
	check_mix_usage();
	chat_as(BUDGET_KEY, "mock/gpt-test", "hi [mock chunks=1]",
		"\"max_tokens\":5", &r);
	assert_error(&r, 429, "insufficient_quota");
	h_resp_free(&r);
}
END_TEST

/* A provider that reports no usage: the local counts are recorded, and
 * the audit line says so. */
/* As key (named name), a request whose provider reports no usage (extra:
 * more request members, or NULL): the local counts are recorded. The
 * mock answers "tok0 ", "tok1 ", "tok2 ". */
static void answer_without_usage(const char *key, const char *name,
				 const char *extra)
{
	struct h_resp r;
	json_object *u, *row;

	chat_as(key, "mock/gpt-test", "x [mock chunks=3 usage=0]", extra, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	get_as(ADMIN_KEY, "/v1/usage?group_by=key", &r);
	u = h_json(&r);
	row = usage_row(u, name, NULL);
	ck_assert_ptr_nonnull(row);
	ck_assert_int_eq(row_int(row, "completion_tokens"),
			 o200k("tok0 tok1 tok2 "));
	ck_assert_int_gt(row_int(row, "prompt_tokens"), 5);
	json_object_put(u);
	h_resp_free(&r);
}

START_TEST(local_counts_without_upstream_usage)
{
	char *log, want[64];

	answer_without_usage(ADMIN_KEY, "admin", "\"stream\":true");
	usleep(100000);
	log = h_proc_log(&daemon_);
	/* logging.format defaults to json */
	ck_assert_ptr_nonnull(strstr(log, "\"usage_source\":\"local\""));
	snprintf(want, sizeof(want), "\"local_completion_tokens\":%lld",
		 (long long)o200k("tok0 tok1 tok2 "));
	ck_assert_ptr_nonnull(strstr(log, want));
	ck_assert_ptr_null(strstr(log, ADMIN_KEY));
	free(log);
}
END_TEST

/* field ("prompt_tokens", ...) recorded for (key name, model) so far, 0
 * when none */
static long recorded(const char *name, const char *model, const char *field)
{
	struct h_resp r;
	json_object *u, *row;
	long n;

	get_as(ADMIN_KEY, "/v1/usage?group_by=key,model", &r);
	u = h_json(&r);
	row = usage_row(u, name, model);
	n = row ? row_int(row, field) : 0;
	json_object_put(u);
	h_resp_free(&r);
	return n;
}

static long prompt_recorded(const char *name, const char *model)
{
	return recorded(name, model, "prompt_tokens");
}

/* A request sent on as its text (src/request.h: a model without
 * max_tokens, a key without limits) has its prompt counted from that
 * text when the provider reports no usage: the same count the json-c
 * way gives the same messages, escapes and all. The requests repeat to
 * give a race its chances: on a warm upstream connection a whole short
 * stream can arrive while the transfer is being started, which once
 * settled it before the pipeline held the transfer, so its upstream
 * status read 0 and 0 tokens were recorded (check_upstream pins the
 * order down: nothing runs before upstream_begin()). */
START_TEST(text_path_prompt_counted_like_json)
{
	static const char text[] = "caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" "
				   "[mock chunks=3 usage=0]";
	long before, p_json;
	struct h_resp r;

	before = prompt_recorded("admin", "gpt-test"); /* max_tokens: json-c */
	chat_as(ADMIN_KEY, "mock/gpt-test", text, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	p_json = prompt_recorded("admin", "gpt-test") - before;
	ck_assert_int_gt(p_json, 8);

	for (int i = 0; i < 12; i++) { /* the text path, streamed or not */
		before = prompt_recorded("admin", "m2");
		chat_as(ADMIN_KEY, "mock/m2", text,
			i % 3 ? "\"stream\":true" : NULL, &r);
		ck_assert_int_eq(r.status, 200);
		h_resp_free(&r);
		ck_assert_int_eq(prompt_recorded("admin", "m2") - before,
				 p_json);
	}
}
END_TEST

/* Without the provider's usage, the local count of an answer covers all
 * it generated: reasoning, and each tool call's name and arguments, not
 * only its content, read from the text of every chunk (or of the whole
 * answer) as the json-c way reads them. */
START_TEST(local_counts_cover_reasoning_and_tools)
{
	static const char *const extra[] = { NULL, "\"stream\":true" };
	int64_t want = o200k("think get_weather{\"city\":\"Paris\"}");

	for (size_t i = 0; i < 2; i++) {
		long before = recorded("admin", "m2", "completion_tokens");
		struct h_resp r;

		chat_as(ADMIN_KEY, "mock/m2", "x [mock reasoning tools usage=0]",
			extra[i], &r);
		ck_assert_int_eq(r.status, 200);
		ck_assert_ptr_nonnull(strstr(r.body.data, "get_weather"));
		h_resp_free(&r);
		ck_assert_int_eq(recorded("admin", "m2", "completion_tokens") -
				 before, want);
	}
}
END_TEST

/* A complete answer is counted locally at the end, and only when the
 * count is used: recorded when the provider reports no usage, shown in
 * the audit line when that is written. Both uses must still get it. */
START_TEST(answer_counted_when_needed)
{
	struct h_resp r;
	char *log, *cfg, want[64];
	struct buf b;

	/* audit line on (level info): the provider's usage is recorded,
	 * the local counts are shown beside it */
	chat_as(ADMIN_KEY, "mock/gpt-test", "x [mock chunks=3]", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	usleep(100000);
	log = h_proc_log(&daemon_);
	ck_assert_ptr_nonnull(strstr(log, "\"usage_source\":\"provider\""));
	snprintf(want, sizeof(want), "\"local_completion_tokens\":%lld",
		 (long long)o200k("tok0 tok1 tok2 "));
	ck_assert_msg(strstr(log, want), "no %s in:\n%s", want, log);
	ck_assert_ptr_null(strstr(log, "\"local_prompt_tokens\":0,"));
	free(log);

	/* no audit line (level warning) and no usage from the provider:
	 * the local counts are what is recorded */
	ck_assert_int_eq(h_proc_stop(&daemon_), 0);
	cfg = accounting_config();
	buf_init(&b, 0);
	/* (at level warning no "listening on" line tells the port) */
	buf_printf(&b, "server:\n  host: 127.0.0.1\n  port: %u\n"
		   "  shutdown_timeout: 5\n%slogging:\n  level: warning\n",
		   h_free_port(), cfg);
	free(cfg);
	h_daemon_start(&daemon_, b.data, accounting_env);
	buf_free(&b);
	/* (another key: the database holds the first request too) */
	answer_without_usage(SCOPED_KEY, "scoped", NULL);
}
END_TEST

/* ---- metrics ---- */

static void assert_has(const char *text, const char *needle)
{
	ck_assert_msg(strstr(text, needle) != NULL, "missing '%s' in:\n%.3000s",
		      needle, text);
}

START_TEST(metrics_page)
{
	struct h_resp r;
	char *ct;

	scripted_mix();
	get_as(NULL, "/metrics", &r);
	ck_assert_int_eq(r.status, 200);
	ct = h_header(&r, "Content-Type");
	ck_assert_ptr_nonnull(strstr(ct, "text/plain"));
	free(ct);
	assert_has(r.body.data, "# TYPE llm_bridge_requests_total counter");
	assert_has(r.body.data, "llm_bridge_requests_total{front=\"http\","
		   "provider=\"mock\",model=\"mock/gpt-test\",status=\"200\"} 2");
	assert_has(r.body.data, "llm_bridge_requests_total{front=\"http\","
		   "provider=\"mock\",model=\"mock/gpt-test\",status=\"502\"} 1");
	assert_has(r.body.data, "llm_bridge_tokens_total{provider=\"mock\","
		   "model=\"mock/gpt-test\",kind=\"prompt\"} 20");
	assert_has(r.body.data, "llm_bridge_tokens_total{provider=\"mock\","
		   "model=\"mock/gpt-test\",kind=\"completion\"} 5");
	assert_has(r.body.data, "# TYPE llm_bridge_request_duration_seconds "
		   "histogram");
	assert_has(r.body.data, "llm_bridge_overhead_seconds_count 4");
	assert_has(r.body.data, "llm_bridge_inflight_requests 0");
	assert_has(r.body.data, "llm_bridge_inflight_streams 0");
	ck_assert_ptr_null(strstr(r.body.data, ADMIN_KEY));
	ck_assert_ptr_null(strstr(r.body.data, H_PROVIDER_KEY));
	h_resp_free(&r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("accounting");
	TCase *tk = tcase_create("keys"), *tl = tcase_create("limits"),
	      *tu = tcase_create("usage"), *tm = tcase_create("metrics");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tk, setup, teardown);
	tcase_add_test(tk, allow_list_403);
	tcase_add_test(tk, disabled_and_expired_401);
	suite_add_tcase(s, tk);
	tcase_add_checked_fixture(tl, setup, teardown);
	tcase_add_test(tl, rpm_429_with_headers);
	tcase_add_test(tl, tpm_429_counts_reservations);
	tcase_add_test(tl, budget_429_insufficient_quota);
	suite_add_tcase(s, tl);
	tcase_add_checked_fixture(tu, setup, teardown);
	tcase_add_test(tu, usage_endpoint);
	tcase_add_test(tu, usage_survives_restart);
	tcase_add_test(tu, local_counts_without_upstream_usage);
	tcase_add_test(tu, text_path_prompt_counted_like_json);
	tcase_add_test(tu, local_counts_cover_reasoning_and_tools);
	tcase_add_test(tu, answer_counted_when_needed);
	suite_add_tcase(s, tu);
	tcase_add_checked_fixture(tm, setup, teardown);
	tcase_add_test(tm, metrics_page);
	suite_add_tcase(s, tm);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
