/* SPDX-License-Identifier: MIT */
/*
 * Mapping suite for the native Gemini adapter, driven by the case tables
 * in tests/fixtures/mapping/ (see the "_conventions" of each file).
 * One tcase per direction:
 *   request   openai_request -> expected_gemini_request (URL, header
 *             lines, body), or the 400 the client gets instead
 *   response  a 2xx gemini_response -> expected_openai_response
 *   stream    gemini_stream events, framed as SSE and fed through the
 *             daemon's SSE parser -> expected_openai_stream
 *   error     a non-2xx gemini_response -> expected_openai_response
 *
 * Every comparison is byte-for-byte: what the adapter produced, written
 * as the daemon writes it (json-c, plain, no slash escaping; errors
 * through apierr_to_json), against the expected JSON of the fixture
 * written the same way. Key order, number spelling and every value
 * count. The fixture is re-serialised only so that it can be indented.
 *
 * The one normalisation (normalise() below) is for values the adapter
 * makes up at run time, and only at the places they belong:
 *   - the top-level "id" of a completion or chunk, when it is
 *     "chatcmpl-" + 24 alphanumerics, becomes "$$chatcmpl_id";
 *   - the top-level "created", when it is an integer between the clock
 *     read before and after the call, becomes "$$created";
 *   - choices[].message.tool_calls[].id and choices[].delta.tool_calls[].id,
 *     when "call_" + 24 alphanumerics, become "$$call_id:N", N counting
 *     distinct ids from 1 in order of appearance within the case.
 * Within one case (one stream) every chunk must carry the same id and
 * created: a second, different value is left as it is and so fails the
 * comparison. A value of the wrong shape is never replaced.
 * In expected requests "$$upstream_key" stands for the provider key this
 * suite configures (TEST_KEY): a constant, not a normalisation.
 *
 * Besides: building a request must leave the client's JSON as it was,
 * the image fetcher (stubbed by call.fetch) must be asked exactly when a
 * case names one, and a failed stream must end with its error and no
 * [DONE], as the fronts send it.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "adapter.h"
#include "buf.h"
#include "sse.h"
#include "testutil.h"

#define FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define GEMINI_ORIGIN "https://generativelanguage.googleapis.com"
#define TEST_KEY "test-upstream-key-7Qm2"
#define ID_CHARS 24 /* the adapter's ids: prefix + 24 alphanumerics */
#define MAX_CASES 256
#define MAX_CALL_IDS 32

static const char *const case_files[] = {
	"fixtures/mapping/mapping-cases.json",
	"fixtures/mapping/request-cases.json",
	"fixtures/mapping/response-cases.json",
	"fixtures/mapping/stream-cases.json",
	"fixtures/mapping/error-cases.json",
};

/* Keys a case may have: a misspelt key must not turn a check off. */
static const char *const case_keys[] = {
	"id", "tier", "title", "call", "openai_request",
	"expected_gemini_request", "gemini_response",
	"expected_openai_response", "gemini_stream", "expected_openai_stream",
};

enum part { P_REQUEST, P_RESPONSE, P_STREAM, P_ERROR, P_COUNT };

static json_object *files[sizeof(case_files) / sizeof(case_files[0])];
static json_object *cases[MAX_CASES];
static int n_cases;
static int part_case[P_COUNT][MAX_CASES];
static int n_part[P_COUNT];

/* ---- fixture access ---- */

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

static bool has(json_object *o, const char *key)
{
	return o && json_object_is_type(o, json_type_object) &&
	       json_object_object_get_ex(o, key, NULL);
}

static const char *str(json_object *o, const char *key)
{
	json_object *v = get(o, key);

	return json_object_is_type(v, json_type_string) ?
	       json_object_get_string(v) : NULL;
}

static const char *case_id(json_object *c)
{
	const char *id = str(c, "id");

	return id ? id : "(no id)";
}

static const char *ser(json_object *o)
{
	return json_object_to_json_string_ext(o, FLAGS);
}

/* Byte-for-byte; on a difference, says where and shows both in full. */
static void assert_same(json_object *c, const char *what, const char *got,
			const char *want)
{
	size_t i = 0;

	if (strcmp(got, want) == 0)
		return;
	while (got[i] && got[i] == want[i])
		i++;
	fprintf(stderr, "%s: %s differs at byte %zu\n  got:  %s\n  want: %s\n",
		case_id(c), what, i, got, want);
	ck_abort_msg("%s: %s differs at byte %zu: got ...%.120s, want ...%.120s",
		     case_id(c), what, i, got + (i > 20 ? i - 20 : 0),
		     want + (i > 20 ? i - 20 : 0));
}

/* ---- the call a case describes ---- */

static struct provider_cfg prov = {
	.name = "gemini", .adapter = "gemini", .base_url = NULL,
	.api_key = TEST_KEY,
};

struct fetch_stub {
	json_object *spec; /* call.fetch of the case: url, mime, data */
	int calls;
};

/* Stands in for the pipeline's fetcher: serves the one URL the case
 * names, anything else is a 400 as the real one gives for a bad URL. */
static int fetch_stub(void *ud, const char *url, struct buf *data,
		      char *mime, size_t mimelen, struct api_error *err)
{
	struct fetch_stub *f = ud;
	const char *want = str(f->spec, "url"), *body = str(f->spec, "data");

	f->calls++;
	if (!want || strcmp(url, want) != 0 || !body) {
		apierr_bad_request(err, "messages", "unexpected fetch of %s",
				   url);
		return -1;
	}
	buf_append(data, body, strlen(body));
	snprintf(mime, mimelen, "%s", str(f->spec, "mime") ?
		 str(f->spec, "mime") : "");
	return 0;
}

struct case_call {
	struct provider_cfg prov;
	struct adapter_call call;
	struct fetch_stub fetch;
};

/* call.{client_model,upstream_model,stream,base_url,fetch} override what
 * the case's openai_request implies. */
static void make_call(json_object *c, struct case_call *cc)
{
	json_object *req = get(c, "openai_request"), *opt = get(c, "call");
	json_object *v;
	const char *model = str(req, "model");

	memset(cc, 0, sizeof(*cc));
	cc->prov = prov;
	if (str(opt, "base_url"))
		cc->prov.base_url = (char *)str(opt, "base_url");
	cc->call.provider = &cc->prov;
	cc->call.upstream_model = str(opt, "upstream_model") ?
				  str(opt, "upstream_model") : model;
	cc->call.client_model = str(opt, "client_model") ?
				str(opt, "client_model") : model;
	v = has(opt, "stream") ? get(opt, "stream") : get(req, "stream");
	cc->call.stream = v && json_object_get_boolean(v);
	v = get(get(req, "stream_options"), "include_usage");
	cc->call.include_usage = v && json_object_get_boolean(v);
	if (has(opt, "fetch")) {
		cc->fetch.spec = get(opt, "fetch");
		cc->call.fetch = fetch_stub;
		cc->call.fetch_ud = &cc->fetch;
	}
	ck_assert_msg(cc->call.upstream_model && cc->call.client_model,
		      "%s: no model (openai_request.model or call.*_model)",
		      case_id(c));
}

static const struct adapter *gemini(void)
{
	const struct adapter *a = adapter_find("gemini");

	ck_assert_ptr_nonnull(a);
	return a;
}

/* ---- normalisation of made-up values (see the top of this file) ---- */

struct norm {
	time_t t0, t1;
	char chat_id[64];
	bool have_created;
	int64_t created;
	char call_ids[MAX_CALL_IDS][64];
	int n_call_ids;
};

static bool our_id(const char *s, const char *prefix)
{
	size_t n = strlen(prefix), i;

	if (!s || strncmp(s, prefix, n) != 0)
		return false;
	for (i = 0; s[n + i]; i++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789", s[n + i]))
			return false;
	return i == ID_CHARS;
}

static void normalise_calls(struct norm *n, json_object *calls)
{
	char label[32];

	for (size_t i = 0; json_object_is_type(calls, json_type_array) &&
	     i < json_object_array_length(calls); i++) {
		json_object *tc = json_object_array_get_idx(calls, i);
		const char *id = str(tc, "id");
		int k;

		if (!our_id(id, "call_"))
			continue;
		for (k = 0; k < n->n_call_ids; k++)
			if (strcmp(n->call_ids[k], id) == 0)
				break;
		if (k == n->n_call_ids) {
			ck_assert_int_lt(k, MAX_CALL_IDS);
			snprintf(n->call_ids[k], sizeof(n->call_ids[k]), "%s", id);
			n->n_call_ids++;
		}
		snprintf(label, sizeof(label), "$$call_id:%d", k + 1);
		json_object_object_add(tc, "id", json_object_new_string(label));
	}
}

static void normalise(struct norm *n, json_object *o)
{
	const char *id = str(o, "id");
	json_object *v = get(o, "created"), *choices = get(o, "choices");

	if (our_id(id, "chatcmpl-") &&
	    (!n->chat_id[0] || strcmp(n->chat_id, id) == 0)) {
		snprintf(n->chat_id, sizeof(n->chat_id), "%s", id);
		json_object_object_add(o, "id",
				       json_object_new_string("$$chatcmpl_id"));
	}
	if (json_object_is_type(v, json_type_int) &&
	    json_object_get_int64(v) >= (int64_t)n->t0 &&
	    json_object_get_int64(v) <= (int64_t)n->t1 &&
	    (!n->have_created || json_object_get_int64(v) == n->created)) {
		n->have_created = true;
		n->created = json_object_get_int64(v);
		json_object_object_add(o, "created",
				       json_object_new_string("$$created"));
	}
	for (size_t i = 0; json_object_is_type(choices, json_type_array) &&
	     i < json_object_array_length(choices); i++) {
		json_object *ch = json_object_array_get_idx(choices, i);

		normalise_calls(n, get(get(ch, "message"), "tool_calls"));
		normalise_calls(n, get(get(ch, "delta"), "tool_calls"));
	}
}

/* ---- shared pieces of the checks ---- */

/* The client's error, as the fronts write it. */
static void check_error(json_object *c, const char *what,
			const struct api_error *err, json_object *want)
{
	struct buf b;
	json_object *hdrs = get(want, "headers");
	const char *retry = str(hdrs, "retry-after");
	char label[96];

	ck_assert_msg(want != NULL, "%s: %s: an error (%d %s) where none was "
		      "expected", case_id(c), what, err->status, err->message);
	snprintf(label, sizeof(label), "%s status", what);
	ck_assert_msg(err->status == json_object_get_int(get(want, "status")),
		      "%s: %s: got %d, want %d (%s)", case_id(c), label,
		      err->status, json_object_get_int(get(want, "status")),
		      err->message);
	ck_assert_msg(hdrs == NULL || json_object_object_length(hdrs) ==
		      (retry ? 1 : 0), "%s: only retry-after is modelled",
		      case_id(c));
	snprintf(label, sizeof(label), "%s retry-after", what);
	assert_same(c, label, err->retry_after, retry ? retry : "");
	buf_init(&b, 0);
	ck_assert_int_eq(apierr_to_json(err, &b), 0);
	snprintf(label, sizeof(label), "%s body", what);
	assert_same(c, label, b.data, ser(get(want, "body")));
	buf_free(&b);
}

/* Upstream body bytes: "body" (a JSON value, sent compact), "body_text"
 * (sent as it is) or "body_file" (a wire sample under tests/). */
static char *upstream_body(json_object *resp, size_t *len)
{
	const char *text = str(resp, "body_text"), *file = str(resp, "body_file");
	json_object *body;
	const char *s;

	if (file)
		return tu_read_fixture(file, len);
	if (text) {
		*len = strlen(text);
		return strdup(text);
	}
	ck_assert_msg(has(resp, "body"), "gemini_response without a body");
	body = get(resp, "body");
	s = body ? ser(body) : "null";
	*len = strlen(s);
	return strdup(s);
}

/* ---- request ---- */

static void headers_of(const struct upstream_req *r, struct buf *out)
{
	for (size_t i = 0; i < r->n_headers; i++)
		buf_printf(out, "%s\n", r->headers[i]);
}

static void expected_headers(json_object *hdrs, struct buf *out)
{
	json_object_object_foreach(hdrs, name, v) {
		const char *s = json_object_get_string(v);

		buf_printf(out, "%s: %s\n", name,
			   strcmp(s, "$$upstream_key") == 0 ? TEST_KEY : s);
	}
}

START_TEST(request_case)
{
	json_object *c = cases[part_case[P_REQUEST][_i]];
	json_object *want = get(c, "expected_gemini_request");
	json_object *req = get(c, "openai_request");
	struct case_call cc;
	struct upstream_req out;
	struct api_error err;
	struct buf got_h, want_h, url;
	int rc;

	make_call(c, &cc);
	memset(&err, 0, sizeof(err));
	/* the adapter must not change the client's request */
	{
		char *before = strdup(ser(req));

		rc = gemini()->build_request(&cc.call, req, &out, &err);
		assert_same(c, "openai_request after build", ser(req), before);
		free(before);
	}
	if (!want) {
		ck_assert_msg(rc < 0, "%s: request built, want a rejection",
			      case_id(c));
		check_error(c, "rejection", &err,
			    get(c, "expected_openai_response"));
		ck_assert_ptr_null(out.url);
		ck_assert_ptr_null(out.body);
		return;
	}
	ck_assert_msg(rc == 0, "%s: build_request failed: %d %s", case_id(c),
		      err.status, err.message);
	ck_assert_str_eq(str(want, "method"), "POST");
	buf_init(&url, 0);
	if (str(want, "url"))
		buf_appends(&url, str(want, "url"));
	else
		buf_printf(&url, "%s%s", GEMINI_ORIGIN, str(want, "path"));
	assert_same(c, "url", out.url, url.data);
	buf_init(&got_h, 0);
	buf_init(&want_h, 0);
	buf_appends(&got_h, "");
	buf_appends(&want_h, "");
	headers_of(&out, &got_h);
	expected_headers(get(want, "headers"), &want_h);
	assert_same(c, "headers", got_h.data, want_h.data);
	ck_assert_uint_eq(out.body_len, strlen(out.body));
	if (str(want, "body_file")) {
		/* a wire sample: what Gemini's own docs show for this turn */
		char *text = tu_read_fixture(str(want, "body_file"), NULL);
		json_object *sample = json_tokener_parse(text);

		ck_assert_ptr_nonnull(sample);
		assert_same(c, "body", out.body, ser(sample));
		json_object_put(sample);
		free(text);
	} else {
		assert_same(c, "body", out.body, ser(get(want, "body")));
	}
	ck_assert_int_eq(cc.fetch.calls, has(get(c, "call"), "fetch") ? 1 : 0);
	buf_free(&url);
	buf_free(&got_h);
	buf_free(&want_h);
	upstream_req_free(&out);
}
END_TEST

/* ---- response and error ---- */

static void answer_case(json_object *c, bool error_part)
{
	json_object *resp = get(c, "gemini_response");
	json_object *want = get(c, "expected_openai_response");
	json_object *out = NULL;
	struct case_call cc;
	struct api_error err;
	struct norm n = { 0 };
	long status = json_object_get_int(get(resp, "status"));
	size_t len;
	char *body = upstream_body(resp, &len);
	int rc;

	make_call(c, &cc);
	memset(&err, 0, sizeof(err));
	ck_assert_msg(want != NULL, "%s: no expected_openai_response",
		      case_id(c));
	if (error_part) {
		gemini()->map_error(&cc.call, status, body, len,
				    str(get(resp, "headers"), "retry-after"),
				    &err);
		check_error(c, "error", &err, want);
		free(body);
		return;
	}
	n.t0 = time(NULL);
	rc = gemini()->parse_response(&cc.call, body, len, &out, &err);
	n.t1 = time(NULL);
	free(body);
	if (rc < 0) {
		ck_assert_ptr_null(out);
		check_error(c, "response", &err, want);
		return;
	}
	ck_assert_msg(json_object_get_int(get(want, "status")) == 200,
		      "%s: a 200 answer, want %d", case_id(c),
		      json_object_get_int(get(want, "status")));
	normalise(&n, out);
	assert_same(c, "response body", ser(out), ser(get(want, "body")));
	json_object_put(out);
}

START_TEST(response_case)
{
	answer_case(cases[part_case[P_RESPONSE][_i]], false);
}
END_TEST

START_TEST(error_case)
{
	answer_case(cases[part_case[P_ERROR][_i]], true);
}
END_TEST

/* ---- stream ---- */

struct stream_run {
	const struct adapter *a;
	void *st;
	struct adapter_emit emit;
	struct api_error err;
	int last;
	struct norm n;
	struct buf lines; /* one normalised chunk per line */
};

static int collect(void *ud, json_object *chunk)
{
	struct stream_run *r = ud;
	json_object *copy = NULL;

	/* the chunk is borrowed: normalise a copy; created is at most now */
	r->n.t1 = time(NULL);
	ck_assert_int_eq(json_object_deep_copy(chunk, &copy, NULL), 0);
	normalise(&r->n, copy);
	buf_appends(&r->lines, ser(copy));
	buf_appends(&r->lines, "\n");
	json_object_put(copy);
	return 0;
}

static int on_event(void *ud, const struct sse_event *ev)
{
	struct stream_run *r = ud;

	r->last = r->a->stream_event(r->st, ev, &r->emit, &r->err);
	return r->last != ADAPTER_MORE;
}

/* The upstream bytes: "sse_file" (a wire sample) or "events", each a
 * GenerateContentResponse (sent compact) or a string (sent as it is),
 * framed "data: ...\r\n\r\n" ("framing": "sse-crlf", the default, as
 * Gemini sends) or "data: ...\n\n" ("sse-lf"). */
static char *stream_bytes(json_object *gs, size_t *len)
{
	const char *file = str(gs, "sse_file"), *framing = str(gs, "framing");
	const char *sep = framing && strcmp(framing, "sse-lf") == 0 ? "\n\n" :
			  "\r\n\r\n";
	json_object *events = get(gs, "events");
	struct buf b;

	if (file)
		return tu_read_fixture(file, len);
	ck_assert_msg(json_object_is_type(events, json_type_array),
		      "gemini_stream needs events or sse_file");
	buf_init(&b, 0);
	buf_appends(&b, "");
	for (size_t i = 0; i < json_object_array_length(events); i++) {
		json_object *ev = json_object_array_get_idx(events, i);

		buf_appends(&b, "data: ");
		buf_appends(&b, json_object_is_type(ev, json_type_string) ?
			    json_object_get_string(ev) : ser(ev));
		buf_appends(&b, sep);
	}
	*len = b.len;
	return buf_steal(&b);
}

START_TEST(stream_case)
{
	json_object *c = cases[part_case[P_STREAM][_i]];
	json_object *gs = get(c, "gemini_stream");
	json_object *want = get(c, "expected_openai_stream");
	json_object *events = get(want, "events"), *last;
	struct case_call cc;
	struct stream_run r = { .a = gemini() };
	struct sse_parser p;
	struct buf wanted;
	size_t len, n_ev;
	char *bytes;

	make_call(c, &cc);
	ck_assert_msg(cc.call.stream, "%s: a stream case needs stream: true",
		      case_id(c));
	ck_assert_msg(json_object_is_type(events, json_type_array) &&
		      json_object_array_length(events) > 0,
		      "%s: expected_openai_stream.events is empty", case_id(c));
	bytes = stream_bytes(gs, &len);
	buf_init(&r.lines, 0);
	buf_appends(&r.lines, "");
	r.emit.ud = &r;
	r.emit.chunk = collect;
	r.last = ADAPTER_MORE;
	r.n.t0 = time(NULL);
	r.st = r.a->stream_new(&cc.call);
	sse_init(&p, 1 << 20);
	ck_assert_int_ge(sse_feed(&p, bytes, len, on_event, &r), 0);
	if (r.last == ADAPTER_MORE)
		r.last = r.a->stream_finish(r.st, &r.emit, &r.err);
	r.a->stream_free(r.st);
	sse_free(&p);
	free(bytes);

	/* how the client's stream ends: [DONE], or the error and no [DONE] */
	if (r.last == ADAPTER_DONE) {
		buf_appends(&r.lines, "[DONE]\n");
	} else {
		ck_assert_int_eq(r.last, ADAPTER_ERROR);
		ck_assert_msg(r.err.status == json_object_get_int(get(want,
			      "error_status")), "%s: stream error status %d "
			      "(%s), want %d", case_id(c), r.err.status,
			      r.err.message, json_object_get_int(get(want,
			      "error_status")));
		assert_same(c, "stream retry-after", r.err.retry_after,
			    str(want, "error_retry_after") ?
			    str(want, "error_retry_after") : "");
		apierr_to_json(&r.err, &r.lines);
		buf_appends(&r.lines, "\n");
	}
	n_ev = json_object_array_length(events);
	last = json_object_array_get_idx(events, n_ev - 1);
	ck_assert_msg(json_object_is_type(last, json_type_string) ==
		      !has(want, "error_status"), "%s: a stream ends with "
		      "\"[DONE]\" or, with error_status, an error", case_id(c));
	buf_init(&wanted, 0);
	for (size_t i = 0; i < n_ev; i++) {
		json_object *ev = json_object_array_get_idx(events, i);

		buf_appends(&wanted, json_object_is_type(ev, json_type_string) ?
			    json_object_get_string(ev) : ser(ev));
		buf_appends(&wanted, "\n");
	}
	ck_assert_int_eq(json_object_get_int(get(want, "status")), 200);
	assert_same(c, "stream", r.lines.data, wanted.data);
	buf_free(&wanted);
	buf_free(&r.lines);
}
END_TEST

/* ---- the case tables ---- */

/* Which tcases a case belongs to. Each case must land in at least one. */
static void classify(json_object *c, int idx)
{
	json_object *resp = get(c, "gemini_response");
	bool any = false;

	if (has(c, "expected_gemini_request")) {
		part_case[P_REQUEST][n_part[P_REQUEST]++] = idx;
		any = true;
	}
	if (resp) {
		int st = json_object_get_int(get(resp, "status"));
		enum part p = st >= 200 && st < 300 ? P_RESPONSE : P_ERROR;

		part_case[p][n_part[p]++] = idx;
		any = true;
	}
	if (get(c, "gemini_stream")) {
		part_case[P_STREAM][n_part[P_STREAM]++] = idx;
		any = true;
	}
	if (!any) {
		fprintf(stderr, "case %s checks nothing\n", case_id(c));
		exit(EXIT_FAILURE);
	}
}

static json_object *load(const char *rel)
{
	const char *dir = getenv("LB_TESTS_SRCDIR");
	char path[4096];
	json_object *o;

	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests", rel);
	o = json_object_from_file(path);
	if (!o || !json_object_is_type(get(o, "cases"), json_type_array)) {
		fprintf(stderr, "cannot load cases from %s: %s\n", path,
			json_util_get_last_err());
		exit(EXIT_FAILURE);
	}
	return o;
}

static void load_cases(void)
{
	for (size_t f = 0; f < sizeof(case_files) / sizeof(case_files[0]); f++) {
		json_object *list;

		files[f] = load(case_files[f]);
		list = get(files[f], "cases");
		for (size_t i = 0; i < json_object_array_length(list); i++) {
			json_object *c = json_object_array_get_idx(list, i);

			if (n_cases == MAX_CASES) {
				fprintf(stderr, "more than %d cases\n", MAX_CASES);
				exit(EXIT_FAILURE);
			}
			cases[n_cases] = c;
			classify(c, n_cases);
			n_cases++;
		}
	}
}

/* Ids unique, keys known: a typo must not silently skip a check. */
START_TEST(cases_well_formed)
{
	for (int i = 0; i < n_cases; i++) {
		ck_assert_msg(str(cases[i], "id") != NULL, "case %d has no id", i);
		for (int j = 0; j < i; j++)
			ck_assert_msg(strcmp(case_id(cases[i]),
					     case_id(cases[j])) != 0,
				      "duplicate case id %s", case_id(cases[i]));
		json_object_object_foreach(cases[i], k, v) {
			bool known = false;

			(void)v;
			for (size_t n = 0; n < sizeof(case_keys) /
			     sizeof(case_keys[0]); n++)
				known |= strcmp(k, case_keys[n]) == 0;
			ck_assert_msg(known, "%s: unknown key '%s'",
				      case_id(cases[i]), k);
		}
	}
}
END_TEST

static TCase *loop_tcase(const char *name, const TTest *t, int n)
{
	TCase *tc = tcase_create(name);

	tcase_add_loop_test(tc, t, 0, n);
	return tc;
}

static Suite *gemini_suite(void)
{
	Suite *s = suite_create("adapter_gemini");
	TCase *tc = tcase_create("cases");

	tcase_add_test(tc, cases_well_formed);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, loop_tcase("request", request_case,
				      n_part[P_REQUEST]));
	suite_add_tcase(s, loop_tcase("response", response_case,
				      n_part[P_RESPONSE]));
	suite_add_tcase(s, loop_tcase("stream", stream_case,
				      n_part[P_STREAM]));
	suite_add_tcase(s, loop_tcase("error", error_case, n_part[P_ERROR]));
	return s;
}

int main(void)
{
	int rc;

	load_cases();
	rc = tu_run(gemini_suite());
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++)
		json_object_put(files[f]);
	return rc;
}
