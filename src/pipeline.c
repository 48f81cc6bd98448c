/* SPDX-License-Identifier: MIT */
/*
 * pipeline: the one request path; see pipeline.h.
 *
 * A request moves through phases on the thread that owns its client
 * connection. Upstream bytes arrive inside upstream_pump(); in a 2xx
 * stream they go through the SSE parser and the adapter straight to the
 * sink, so an event reaches the client in the same pump that read it.
 */
#include "pipeline.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "accounting.h"
#include "adapter.h"
#include "fetch.h"
#include "jsonguard.h"
#include "jsonspan.h"
#include "keys.h"
#include "log.h"
#include "memtrim.h"
#include "metrics.h"
#include "request.h"
#include "router.h"
#include "sse.h"
#include "upstream.h"
#include "util.h"

#define MAX_RESPONSE_BYTES (64u << 20)
#define MAX_ERROR_BYTES (1u << 20)
#define MAX_SSE_EVENT (16u << 20)
#define HEAD_WAIT_MS 200

struct usage {
	bool known;
	int64_t prompt, completion, total, reasoning, cached;
};

struct pl_request {
	struct config *cfg;
	struct pl_input in;
	const struct key_entry *key;
	json_object *req;
	char *client_model;
	struct route route;
	struct adapter_call call;
	struct fetch_opts fetch_opts;
	struct upstream_req ureq;
	struct upstream_call *up;
	void *astate;
	struct adapter_emit emit;
	struct sse_parser sse;
	struct buf upbody;     /* upstream body: non-stream answer or error */
	struct buf answer;     /* what a PL_RESPONSE sends */
	int status;            /* client status of a PL_RESPONSE */
	char retry_after[32];
	bool mode_known;       /* first body byte seen: stream or buffer */
	bool sse_mode;
	bool body_overflow;
	bool abort_transfer;   /* tell curl to stop (error or client gone) */
	bool stream_ended;
	bool client_gone;
	atomic_bool cancelled;
	const char *error_type; /* for the audit line; static string */
	int final_status;
	struct usage usage;
	struct acct acct;
	bool accounted;        /* usage settled, audit line written */
	bool streaming;        /* counted in the in-flight streams gauge */
	uint64_t t_start, t_first_chunk, upstream_wait_us;
};

/* ---- the shared config snapshot ---- */

static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config *config_current; /* {config_lock} */

void pipeline_set_config(struct config *cfg)
{
	struct config *old;

	if (cfg)
		config_retain(cfg);
	pthread_mutex_lock(&config_lock);
	old = config_current;
	config_current = cfg;
	pthread_mutex_unlock(&config_lock);
	config_release(old);
}

struct config *pipeline_config_acquire(void)
{
	struct config *cfg;

	pthread_mutex_lock(&config_lock);
	cfg = config_current ? config_retain(config_current) : NULL;
	pthread_mutex_unlock(&config_lock);
	return cfg;
}

void pipeline_make_request_id(char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	/* ids need to be unique, not secret: no getrandom() per request */
	uint64_t v = unique_u64();
	char id[20];
	size_t len = n > sizeof(id) ? sizeof(id) : n - 1;

	if (n == 0)
		return;
	id[0] = 'r';
	id[1] = 'e';
	id[2] = 'q';
	id[3] = '_';
	for (int i = 19; i >= 4; i--, v >>= 4)
		id[i] = hex[v & 15];
	memcpy(out, id, len);
	out[len] = '\0';
}

/* One OpenAI model object: id as given, owned by its provider. */
static void model_object(struct buf *out, const char *id, size_t id_len,
			 const char *owner, long created)
{
	buf_appends(out, "{\"id\":");
	buf_append_json_str(out, id, id_len);
	buf_printf(out, ",\"object\":\"model\",\"created\":%ld,"
		   "\"owned_by\":", created);
	buf_append_json_str(out, owner, strlen(owner));
	buf_appends(out, "}");
}

void pipeline_models_json(const struct config *cfg, struct buf *out)
{
	long created = (long)time(NULL);
	bool first = true;

	buf_appends(out, "{\"object\":\"list\",\"data\":[");
	for (size_t i = 0; i < cfg->n_providers; i++) {
		const struct provider_cfg *p = &cfg->providers[i];

		for (size_t j = 0; j < p->n_models; j++) {
			struct buf id;

			buf_init(&id, 0);
			buf_printf(&id, "%s/%s", p->name, p->models[j].name);
			if (!first)
				buf_appends(out, ",");
			model_object(out, id.data, id.len, p->name, created);
			buf_free(&id);
			first = false;
		}
	}
	buf_appends(out, "]}");
}

int pipeline_model_json(const struct config *cfg, const char *id,
			struct buf *out, struct api_error *err)
{
	struct route route;

	if (router_resolve(cfg, id, &route, err) < 0)
		return -1;
	model_object(out, id, strlen(id), route.provider->name,
		     (long)time(NULL));
	return 0;
}

/* ---- answers ---- */

/* Bodies are logged only when asked for twice: level debug and
 * logging.log_bodies. They may hold the users' data, never keys. */
static void log_body(const struct pl_request *r, const char *what,
		     const char *body, size_t len)
{
	char *copy;

	if (!r->cfg->logging.log_bodies || !log_enabled(LOGL_DEBUG))
		return;
	copy = xstrndup(body ? body : "", len);
	{
		const struct log_kv kv[] = {
			LKV_S("request_id", r->in.request_id),
			LKV_S("body", copy),
		};

		log_kv(LOGL_DEBUG, "body", what, kv, ARRAY_SIZE(kv));
	}
	free(copy);
}

static enum pl_result respond_error(struct pl_request *r,
				    const struct api_error *err)
{
	buf_reset(&r->answer);
	apierr_to_json(err, &r->answer);
	r->status = err->status;
	r->final_status = err->status;
	r->error_type = err->type;
	log_body(r, "response", r->answer.data, r->answer.len);
	snprintf(r->retry_after, sizeof(r->retry_after), "%s", err->retry_after);
	return PL_RESPONSE;
}

static void record_usage(struct pl_request *r, json_object *usage)
{
	json_object *v, *d;

	if (!usage || !json_object_is_type(usage, json_type_object))
		return;
	r->usage.known = true;
	if (json_object_object_get_ex(usage, "prompt_tokens", &v))
		r->usage.prompt = json_object_get_int64(v);
	if (json_object_object_get_ex(usage, "completion_tokens", &v))
		r->usage.completion = json_object_get_int64(v);
	if (json_object_object_get_ex(usage, "total_tokens", &v))
		r->usage.total = json_object_get_int64(v);
	if (json_object_object_get_ex(usage, "completion_tokens_details", &d) &&
	    json_object_object_get_ex(d, "reasoning_tokens", &v))
		r->usage.reasoning = json_object_get_int64(v);
	if (json_object_object_get_ex(usage, "prompt_tokens_details", &d) &&
	    json_object_object_get_ex(d, "cached_tokens", &v))
		r->usage.cached = json_object_get_int64(v);
}

/* record_usage() on the text of a usage value, in one pass over its
 * members. A count that is not a plain integer is read by json-c, the
 * way record_usage() reads it. */
static void record_usage_text(struct pl_request *r, struct jspan usage)
{
	struct jspan_iter it;
	struct jspan k, v;
	struct jspan cdet = { NULL, 0 }, pdet = { NULL, 0 };
	json_tokener *tok;
	json_object *obj;

	if (!jspan_is_object(usage))
		return;
	jspan_iter_init(&it, usage);
	while (jspan_next_member(&it, &k, &v, NULL)) {
		bool ok = true;

		if (jspan_eq(k, "prompt_tokens"))
			ok = jspan_int64(v, &r->usage.prompt);
		else if (jspan_eq(k, "completion_tokens"))
			ok = jspan_int64(v, &r->usage.completion);
		else if (jspan_eq(k, "total_tokens"))
			ok = jspan_int64(v, &r->usage.total);
		else if (jspan_eq(k, "completion_tokens_details"))
			cdet = v; /* the last one counts, as in json-c */
		else if (jspan_eq(k, "prompt_tokens_details"))
			pdet = v;
		if (!ok)
			goto slow;
	}
	if (jspan_get(cdet, "reasoning_tokens", &v) &&
	    !jspan_int64(v, &r->usage.reasoning))
		goto slow;
	if (jspan_get(pdet, "cached_tokens", &v) &&
	    !jspan_int64(v, &r->usage.cached))
		goto slow;
	r->usage.known = true;
	return;
slow:
	tok = json_tokener_new();
	obj = jsonguard_parse(tok, usage.p, usage.n);
	record_usage(r, obj);
	json_object_put(obj);
	json_tokener_free(tok);
}

static void account(struct pl_request *r);

static void end_stream(struct pl_request *r, const struct api_error *err)
{
	if (r->stream_ended)
		return;
	r->stream_ended = true;
	if (err) {
		r->error_type = err->type;
		if (err->status == 499)
			r->client_gone = true;
	}
	/* settled before the client sees the end, so its next request
	 * never meets this one's reservation */
	account(r);
	r->in.sink->end(r->in.sink->ud, err);
}

/* ---- stream plumbing: upstream bytes -> SSE -> adapter -> sink ---- */

/* A chunk, whichever way it was made, on its way to the client. */
static int send_chunk(struct pl_request *r, const char *s, size_t len)
{
	if (!r->t_first_chunk)
		r->t_first_chunk = now_us();
	log_body(r, "chunk", s, len);
	if (r->in.sink->chunk(r->in.sink->ud, s, len) != 0) {
		r->client_gone = true;
		return 1;
	}
	return 0;
}

static int emit_chunk(void *ud, json_object *chunk)
{
	struct pl_request *r = ud;
	json_object *usage = NULL, *choices = NULL;
	const char *s;
	size_t len;

	if (json_object_object_get_ex(chunk, "usage", &usage) && usage)
		record_usage(r, usage);
	acct_chunk(&r->acct, chunk);
	if (!r->call.include_usage) {
		/* the gateway asked for usage on its own behalf: keep the
		 * client's stream exactly as it would have been */
		if (json_object_object_get_ex(chunk, "choices", &choices) &&
		    json_object_is_type(choices, json_type_array) &&
		    json_object_array_length(choices) == 0 && usage)
			return 0;
		json_object_object_del(chunk, "usage");
	}
	s = json_object_to_json_string_length(chunk,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
			&len);
	return send_chunk(r, s, len);
}

/* emit_chunk() for a chunk the adapter kept as text. */
static int emit_text(void *ud, struct adapter_text *t)
{
	struct pl_request *r = ud;
	bool usage = t->usage.n > 0 && !jspan_is_null(t->usage);

	if (usage)
		record_usage_text(r, t->usage);
	acct_chunk_text(&r->acct, t->choices);
	if (!r->call.include_usage && t->usage_member.n > 0) {
		struct jspan_iter it;
		struct jspan first;

		jspan_iter_init(&it, t->choices);
		if (usage && jspan_is_array(t->choices) &&
		    !jspan_next_elem(&it, &first))
			return 0;
		t->len = jspan_cut_member(t->json, t->len, t->usage_member);
	}
	return send_chunk(r, t->json, t->len);
}

static int on_sse_event(void *ud, const struct sse_event *ev)
{
	struct pl_request *r = ud;
	struct api_error err = { 0 };
	int rc;

	rc = r->route.adapter->stream_event(r->astate, ev, &r->emit, &err);
	if (rc == ADAPTER_MORE)
		return 0;
	if (rc == ADAPTER_DONE) {
		end_stream(r, NULL);
		return 1;
	}
	r->abort_transfer = true;
	end_stream(r, &err);
	return 1;
}

/* status comes with the bytes: the first ones can arrive inside
 * upstream_begin(), before start_request() has looked at r->up. */
static int on_body(void *ud, long status, const char *p, size_t n)
{
	struct pl_request *r = ud;

	if (!r->mode_known) {
		r->mode_known = true;
		r->sse_mode = r->call.stream && status >= 200 && status < 300;
		if (r->sse_mode)
			r->final_status = 200; /* the stream's events may end it
						* before pipeline_start returns */
		if (!(status >= 200 && status < 300))
			r->upbody.max = MAX_ERROR_BYTES;
	}
	if (!r->sse_mode) {
		if (buf_append(&r->upbody, p, n) < 0) {
			r->body_overflow = true;
			return 1;
		}
		return 0;
	}
	if (r->stream_ended)
		return r->abort_transfer; /* bytes after [DONE]: drop */
	if (sse_feed(&r->sse, p, n, on_sse_event, r) < 0 && !r->stream_ended) {
		struct api_error err;

		apierr_upstream(&err, 502, "Provider '%s' sent an oversized "
				"stream event", r->route.provider->name);
		r->abort_transfer = true;
		end_stream(r, &err);
	}
	return r->abort_transfer || r->client_gone;
}

/* ---- parsing (the json-c way; checks in request.c) ---- */

static pthread_key_t tok_key;
static pthread_once_t tok_once = PTHREAD_ONCE_INIT;

static void tok_destroy(void *tok)
{
	json_tokener_free(tok);
}

static void tok_key_init(void)
{
	if (pthread_key_create(&tok_key, tok_destroy) != 0)
		abort();
}

/* The calling thread's request tokener, reset. A tokener for 128 levels
 * zeroes 4 KiB when made, which showed in the profile of every request;
 * a connection's thread keeps one for all its requests, and it goes with
 * the thread. */
static json_tokener *thread_tokener(void)
{
	json_tokener *tok;

	pthread_once(&tok_once, tok_key_init);
	tok = pthread_getspecific(tok_key);
	if (!tok) {
		tok = json_tokener_new_ex(REQUEST_MAX_DEPTH);
		if (!tok)
			abort(); /* out of memory, as xmalloc */
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
				       JSON_TOKENER_VALIDATE_UTF8);
		pthread_setspecific(tok_key, tok);
	}
	json_tokener_reset(tok);
	return tok;
}

/* The checks on the raw body both ways need: present, and nothing json-c
 * would quietly change (jsonguard). 0, or -1 with a 400 in err. */
static int guard_body(const char *body, size_t len, struct api_error *err)
{
	if (len == 0 || len > INT32_MAX) {
		apierr_bad_request(err, NULL, "The request body is empty; send "
				   "a JSON chat completion request");
		return -1;
	}
	return jsonguard_check(body, len, REQUEST_MAX_DEPTH, err);
}

/* A body that passed guard_body(), parsed: an object, or NULL with a 400
 * in err. */
static json_object *parse_body(const char *body, size_t len,
			       struct api_error *err)
{
	json_tokener *tok = thread_tokener();
	json_object *obj = NULL;
	enum json_tokener_error jerr;
	struct buf fixed;

	buf_init(&fixed, 0);
	(void)jsonguard_unmangle(&body, &len, &fixed);
	obj = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue)
		jerr = json_tokener_error_parse_eof;
	if (jerr == json_tokener_success &&
	    (size_t)json_tokener_get_parse_end(tok) != len) {
		size_t end = (size_t)json_tokener_get_parse_end(tok);

		while (end < len && (body[end] == ' ' || body[end] == '\n' ||
				     body[end] == '\r' || body[end] == '\t'))
			end++;
		if (end != len)
			jerr = json_tokener_error_parse_unexpected;
	}
	if (jerr != json_tokener_success) {
		apierr_bad_request(err, NULL, "The request body is not valid "
				   "JSON: %s", json_tokener_error_desc(jerr));
		json_object_put(obj);
		obj = NULL;
		goto out;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		apierr_bad_request(err, NULL, "The request body must be a JSON "
				   "object");
		json_object_put(obj);
		obj = NULL;
	}
out:
	buf_free(&fixed);
	return obj;
}

/* ---- the request ---- */

int pipeline_auth(const struct config *cfg, const char *s,
		  const struct key_entry **out, struct api_error *err)
{
	const struct key_def *def;
	size_t len = 0;

	*out = NULL;
	if (s) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (has_prefix_ci(s, "bearer ")) {
			s += 7;
			while (*s == ' ' || *s == '\t')
				s++;
		}
		len = strlen(s);
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
	}
	if (len == 0) {
		apierr_set(err, 401, "invalid_request_error", "invalid_api_key",
			   NULL, "Missing API key: send it as 'Authorization: "
			   "Bearer <key>'");
		return -1;
	}
	*out = keys_lookup(cfg->keys, s, len);
	if (!*out) {
		apierr_set(err, 401, "invalid_request_error", "invalid_api_key",
			   NULL, "Invalid API key");
		return -1;
	}
	def = (*out)->def;
	if (def && !def->enabled) {
		apierr_set(err, 401, "invalid_request_error", "key_disabled",
			   NULL, "This API key has been disabled");
		goto refuse;
	}
	if (def && def->expires && (int64_t)time(NULL) > def->expires) {
		apierr_set(err, 401, "invalid_request_error", "key_expired",
			   NULL, "This API key has expired");
		goto refuse;
	}
	return 0;
refuse:
	*out = NULL;
	return -1;
}

static bool get_bool(json_object *obj, const char *name)
{
	json_object *v;

	return json_object_object_get_ex(obj, name, &v) &&
	       json_object_get_boolean(v);
}

/* Cap the client's output budget at the model's max_tokens, or supply it. */
static void apply_max_tokens(json_object *req, int64_t cap)
{
	static const char *const names[] = { "max_completion_tokens",
					     "max_tokens" };
	bool seen = false;

	if (cap <= 0)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		json_object *v;

		if (!json_object_object_get_ex(req, names[i], &v) || !v)
			continue;
		seen = true;
		if (json_object_get_int64(v) > cap)
			json_object_object_add(req, names[i],
					       json_object_new_int64(cap));
	}
	if (!seen)
		json_object_object_add(req, "max_tokens",
				       json_object_new_int64(cap));
}

/* Rewrite the client's request into what goes upstream. */
static void prepare_request(struct pl_request *r)
{
	json_object *req = r->req, *opts;

	r->call.stream = get_bool(req, "stream");
	if (r->call.stream) {
		if (!json_object_object_get_ex(req, "stream_options", &opts) ||
		    !opts) {
			opts = json_object_new_object();
			json_object_object_add(req, "stream_options", opts);
		}
		r->call.include_usage = get_bool(opts, "include_usage");
		/* usage is always wanted: the gateway accounts for it */
		json_object_object_add(opts, "include_usage",
				       json_object_new_boolean(1));
	}
	json_object_object_add(req, "model",
			       json_object_new_string(r->route.upstream_model));
	if (r->route.model) {
		apply_max_tokens(req, r->route.model->max_tokens);
		params_apply(&r->route.model->params, req);
	}
}

static const char *proxy_for(const struct config *cfg,
			     const struct provider_cfg *p)
{
	if (p->proxy)
		return p->proxy;
	if (p->requires_proxy)
		return cfg->proxy.https ? cfg->proxy.https : cfg->proxy.http;
	return NULL;
}

struct pl_request *pipeline_new(const struct pl_input *in)
{
	struct pl_request *r = xcalloc(1, sizeof(*r));

	/* connection threads and WebSocket workers parse JSON from here on */
	thread_use_c_locale();
	r->in = *in;
	r->cfg = config_retain(in->cfg);
	r->t_start = now_us();
	r->emit.ud = r;
	r->emit.chunk = emit_chunk;
	r->emit.text = emit_text;
	buf_init(&r->upbody, MAX_RESPONSE_BYTES);
	buf_init(&r->answer, 0);
	sse_init(&r->sse, MAX_SSE_EVENT);
	atomic_init(&r->cancelled, false);
	acct_init(&r->acct);
	metrics_inflight(false, 1);
	memtrim_busy();
	return r;
}

/* Pump until the upstream's final headers are in or it failed. */
static enum upstream_state pump_until_headers(struct pl_request *r)
{
	enum upstream_state st = UPSTREAM_RUNNING;

	while (!upstream_headers_done(r->up) && st == UPSTREAM_RUNNING &&
	       !atomic_load(&r->cancelled)) {
		uint64_t t0 = now_us();

		st = upstream_pump(r->up, r->in.client_fd, HEAD_WAIT_MS);
		r->upstream_wait_us += now_us() - t0;
	}
	return st;
}

static enum upstream_state pump_until_end(struct pl_request *r)
{
	enum upstream_state st = UPSTREAM_RUNNING;

	while (st == UPSTREAM_RUNNING && !atomic_load(&r->cancelled)) {
		uint64_t t0 = now_us();

		st = upstream_pump(r->up, r->in.client_fd, HEAD_WAIT_MS);
		r->upstream_wait_us += now_us() - t0;
	}
	return st;
}

/* The 2xx answer as text straight into r->answer, when the adapter can
 * (see adapter.response_text); false when parse_response must do it. */
static bool adapter_text_response(struct pl_request *r)
{
	struct adapter_text t;

	if (!r->route.adapter->response_text ||
	    r->route.adapter->response_text(&r->call, r->upbody.data ?
			r->upbody.data : "", r->upbody.len, &r->answer,
			&t) != 0)
		return false;
	if (t.usage.n > 0)
		record_usage_text(r, t.usage);
	acct_response_text(&r->acct, t.choices);
	log_body(r, "response", r->answer.data, r->answer.len);
	return true;
}

static enum pl_result finish_buffered(struct pl_request *r,
				      enum upstream_state st)
{
	struct api_error err = { 0 };
	long status = upstream_status(r->up);
	json_object *resp = NULL;
	const char *s;
	size_t len;

	if (st == UPSTREAM_CLIENT_GONE || atomic_load(&r->cancelled)) {
		r->client_gone = true;
		return PL_GONE;
	}
	if (r->body_overflow) {
		apierr_upstream(&err, 502, "Provider '%s' sent a response "
				"larger than the gateway accepts",
				r->route.provider->name);
		return respond_error(r, &err);
	}
	if (st == UPSTREAM_FAILED) {
		upstream_error(r->up, r->route.provider->name, &err);
		return respond_error(r, &err);
	}
	if (status < 200 || status >= 300) {
		r->route.adapter->map_error(&r->call, status, r->upbody.data,
					    r->upbody.len,
					    upstream_retry_after(r->up), &err);
		return respond_error(r, &err);
	}
	if (adapter_text_response(r))
		goto answered;
	if (r->route.adapter->parse_response(&r->call, r->upbody.data ?
			r->upbody.data : "", r->upbody.len, &resp, &err) < 0)
		return respond_error(r, &err);
	{
		json_object *usage;

		if (json_object_object_get_ex(resp, "usage", &usage))
			record_usage(r, usage);
		acct_response(&r->acct, resp);
	}
	s = json_object_to_json_string_length(resp,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
			&len);
	buf_reset(&r->answer);
	buf_append(&r->answer, s, len);
	log_body(r, "response", s, len);
	json_object_put(resp);
answered:
	r->status = 200;
	r->final_status = 200;
	return PL_RESPONSE;
}

/* The in-flight request is now an in-flight stream. A stream that
 * ended while it started (all of it arrived at once) was accounted
 * already and stays a finished request. */
static void mark_streaming(struct pl_request *r)
{
	if (r->accounted || r->streaming)
		return;
	r->streaming = true;
	metrics_inflight(false, -1);
	metrics_inflight(true, 1);
}

/* Route client_model (which r takes) and set up the adapter call. */
static int route_request(struct pl_request *r, char *client_model,
			 struct api_error *err)
{
	r->client_model = client_model;
	if (router_resolve(r->cfg, r->client_model, &r->route, err) < 0)
		return -1;
	r->call.provider = r->route.provider;
	r->call.upstream_model = r->route.upstream_model;
	r->call.client_model = r->client_model;
	if (r->cfg->media.fetch) {
		r->fetch_opts.max_bytes = r->cfg->media.max_bytes;
		r->fetch_opts.timeout_s = (long)r->cfg->media.timeout_s;
		r->fetch_opts.allow_private = r->cfg->media.allow_private;
		r->call.fetch = fetch_media;
		r->call.fetch_ud = &r->fetch_opts;
	}
	return 0;
}

/* The request read, checked and rewritten on its text (see request.h):
 * 1 when r->ureq is ready, -1 with err set, 0 when it must go the json-c
 * way (routed already, when the text got that far). Only requests whose
 * every change is the model name and usage for a stream come here: not
 * those of a key with limits (admission counts the prompt), nor those of
 * an adapter that translates or a model with max_tokens or parameters to
 * apply. */
static int request_text(struct pl_request *r, struct api_error *err)
{
	struct request_text rt;
	struct jspan messages;
	struct buf body;

	if (acct_counts_prompt_first(r->key) ||
	    !request_text_check(r->in.body, r->in.body_len, &rt))
		return 0;
	if (route_request(r, xstrndup(rt.model.p + 1, rt.model.n - 2),
			  err) < 0)
		return -1;
	if (!r->route.adapter->build_request_text ||
	    (r->route.model && (r->route.model->max_tokens > 0 ||
				!params_empty(&r->route.model->params))))
		return 0;
	r->call.stream = rt.stream;
	r->call.include_usage = rt.include_usage;
	buf_init(&body, 0);
	request_text_rewrite(&rt, r->route.upstream_model, &body, &messages);
	if (acct_admit_text(&r->acct, r->key, &r->route, r->client_model,
			    messages, err) < 0) {
		buf_free(&body);
		return -1;
	}
	/* the accounting's messages point into the body, which r->ureq
	 * keeps until pipeline_free() */
	if (r->route.adapter->build_request_text(&r->call, body.data,
						 body.len, &r->ureq, err) < 0)
		return -1;
	return 1;
}

/* The request the json-c way: parsed, checked, edited and serialised.
 * When request_text() routed it already, its checks vouched for the same
 * model name, and the route stands. */
static int request_json(struct pl_request *r, struct api_error *err)
{
	r->req = parse_body(r->in.body, r->in.body_len, err);
	if (!r->req || request_validate(r->req, err) < 0)
		return -1;
	if (!r->client_model &&
	    route_request(r, xstrdup(json_object_get_string(
			json_object_object_get(r->req, "model"))), err) < 0)
		return -1;
	prepare_request(r);
	if (acct_admit(&r->acct, r->key, &r->route, r->client_model, r->req,
		       err) < 0)
		return -1;
	return r->route.adapter->build_request(&r->call, r->req, &r->ureq,
					       err);
}

static enum pl_result start_request(struct pl_request *r)
{
	struct api_error err = { 0 };
	struct upstream_opts opts;
	enum upstream_state st;
	long status;
	int rc;

	if (pipeline_auth(r->cfg, r->in.api_key ? r->in.api_key :
			  r->in.authorization, &r->key, &err) < 0)
		return respond_error(r, &err);
	log_body(r, "request", r->in.body, r->in.body_len);
	if (guard_body(r->in.body, r->in.body_len, &err) < 0)
		return respond_error(r, &err);
	rc = request_text(r, &err);
	if (rc == 0)
		rc = request_json(r, &err) < 0 ? -1 : 1;
	if (rc < 0)
		return respond_error(r, &err);
	if (r->call.stream)
		r->astate = r->route.adapter->stream_new(&r->call);
	opts.timeout_s = router_timeout_s(&r->route);
	opts.stream = r->call.stream;
	opts.proxy = proxy_for(r->cfg, r->route.provider);
	opts.no_proxy = r->cfg->proxy.no_proxy;
	r->up = upstream_new(&r->ureq, &opts, on_body, r);
	upstream_begin(r->up);
	st = pump_until_headers(r);
	status = upstream_status(r->up);
	if (st == UPSTREAM_RUNNING && !atomic_load(&r->cancelled) &&
	    r->call.stream && status >= 200 && status < 300) {
		r->final_status = 200;
		mark_streaming(r);
		return PL_STREAM;
	}
	if (st == UPSTREAM_RUNNING)
		st = pump_until_end(r);
	if (r->call.stream && status >= 200 && status < 300 &&
	    st != UPSTREAM_CLIENT_GONE && !atomic_load(&r->cancelled)) {
		/* the whole stream arrived at once: still a stream */
		r->final_status = 200;
		return PL_STREAM;
	}
	return finish_buffered(r, st);
}

/* Let an ended stream's transfer run to its clean end, for at most
 * budget_ms more, and then hand its handles back to the pool with the
 * connection open; a transfer cut short would close it. */
static void drain_upstream(struct pl_request *r, unsigned budget_ms)
{
	uint64_t deadline = now_us() + (uint64_t)budget_ms * 1000, now;
	int wait_ms = 0;

	for (;;) {
		if (r->abort_transfer || r->client_gone)
			return;
		if (upstream_pump(r->up, -1, wait_ms) != UPSTREAM_RUNNING)
			break;
		now = now_us();
		if (now >= deadline)
			return;
		wait_ms = (int)((deadline - now + 999) / 1000);
		if (wait_ms > 20)
			wait_ms = 20;
	}
	upstream_release(r->up);
}

enum pl_result pipeline_start(struct pl_request *r)
{
	enum pl_result res = start_request(r);

	/* a complete answer is accounted before it is sent, and its
	 * handles go back to the pool now, warm: a client's next request
	 * can arrive before this connection's thread has freed r, and must
	 * find the idle upstream connection rather than open another. A
	 * cancel from the WebSocket service thread may still wake r->up;
	 * upstream_release() is safe against that. */
	if (res == PL_RESPONSE) {
		account(r);
		upstream_release(r->up);
	} else if (res == PL_STREAM && r->stream_ended) {
		/* the whole stream came with its headers: the front sends it
		 * without asking pipeline_stream_pump() for more */
		drain_upstream(r, 20);
	}
	return res;
}

void pipeline_response(const struct pl_request *r, int *status,
		       const char **body, size_t *len,
		       const char **retry_after)
{
	*status = r->status;
	*body = r->answer.data ? r->answer.data : "";
	*len = r->answer.len;
	*retry_after = r->retry_after[0] ? r->retry_after : NULL;
}

static void finish_stream(struct pl_request *r, enum upstream_state st)
{
	struct api_error err = { 0 };
	int rc;

	if (r->stream_ended)
		return;
	switch (st) {
	case UPSTREAM_CLIENT_GONE:
		apierr_set(&err, 499, "client_closed", NULL, NULL,
			   "client closed the connection");
		end_stream(r, &err);
		break;
	case UPSTREAM_FAILED:
		upstream_error(r->up, r->route.provider->name, &err);
		end_stream(r, &err);
		break;
	case UPSTREAM_DONE:
		rc = r->route.adapter->stream_finish(r->astate, &r->emit, &err);
		end_stream(r, rc == ADAPTER_DONE ? NULL : &err);
		break;
	default:
		break;
	}
}

enum pl_result pipeline_stream_pump(struct pl_request *r, int wait_ms)
{
	enum upstream_state st;
	struct api_error err = { 0 };
	uint64_t t0;

	if (r->stream_ended)
		return PL_END;
	if (atomic_load(&r->cancelled)) {
		apierr_set(&err, 499, "client_closed", NULL, NULL,
			   "request cancelled");
		end_stream(r, &err);
		return PL_END;
	}
	t0 = now_us();
	st = upstream_pump(r->up, r->in.client_fd, wait_ms);
	r->upstream_wait_us += now_us() - t0;
	if (st != UPSTREAM_RUNNING)
		finish_stream(r, st);
	if (!r->stream_ended)
		return PL_MORE;
	/* the handles go back to the pool before the stream's last bytes
	 * reach the client, for the same reason as in pipeline_start(). The
	 * provider's end of body follows its last event at once; one that
	 * lags is waited for briefly here, then in pipeline_free() */
	drain_upstream(r, 20);
	return PL_END;
}

bool pipeline_usage_json(const struct pl_request *r, struct buf *out)
{
	if (!r->usage.known)
		return false;
	buf_printf(out, "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
		   "\"total_tokens\":%lld}", (long long)r->usage.prompt,
		   (long long)r->usage.completion, (long long)r->usage.total);
	return true;
}

void pipeline_cancel(struct pl_request *r)
{
	atomic_store(&r->cancelled, true);
	upstream_wakeup(r->up);
}

const struct limit_status *pipeline_limit_status(const struct pl_request *r)
{
	return r->acct.has_limits ? &r->acct.limits : NULL;
}

unsigned long pipeline_overhead_us(const struct pl_request *r)
{
	uint64_t total = now_us() - r->t_start;

	return total > r->upstream_wait_us ?
	       (unsigned long)(total - r->upstream_wait_us) : 0;
}

/* The one audit line of a request, written when it is over. */
static void audit(const struct pl_request *r, int status, uint64_t total_us,
		  const struct acct_tokens *rec, int64_t local_completion)
{
	uint64_t ttfb = r->t_first_chunk ? r->t_first_chunk - r->t_start :
			total_us;
	const struct log_kv kv[] = {
		LKV_S("request_id", r->in.request_id),
		LKV_S("front", r->in.front),
		LKV_S("client", r->in.client_addr),
		LKV_S("key", r->key ? keys_name(r->key) : NULL),
		LKV_S("model", r->client_model),
		LKV_S("provider", r->route.provider ? r->route.provider->name :
			NULL),
		LKV_B("stream", r->call.stream),
		LKV_I("status", status),
		LKV_I("upstream_status", r->up ? upstream_status(r->up) : 0L),
		LKV_D("latency_ms", (double)total_us / 1000.0),
		LKV_D("ttfb_ms", (double)ttfb / 1000.0),
		LKV_U("overhead_us", total_us > r->upstream_wait_us ?
			total_us - r->upstream_wait_us : 0),
		LKV_I("prompt_tokens", rec->prompt),
		LKV_I("completion_tokens", rec->completion),
		LKV_I("total_tokens", rec->prompt + rec->completion),
		LKV_I("reasoning_tokens", rec->reasoning),
		LKV_I("cached_tokens", rec->cached),
		LKV_S("usage_source", r->usage.known ? "provider" : "local"),
		LKV_I("local_prompt_tokens", r->acct.est_prompt),
		LKV_I("local_completion_tokens", local_completion),
		LKV_S("error", r->error_type),
	};

	log_kv(LOGL_INFO, "audit", "request", kv, ARRAY_SIZE(kv));
}

/* The request is over: settle and record its usage, count it in the
 * metrics, write its audit line. */
static void account(struct pl_request *r)
{
	struct acct_tokens reported = {
		r->usage.prompt, r->usage.completion, r->usage.reasoning,
		r->usage.cached,
	}, rec;
	int status = r->client_gone ? 499 : r->final_status;
	bool ok = status >= 200 && status < 300 && !r->error_type;
	uint64_t total_us = now_us() - r->t_start;
	long up_status = r->up ? upstream_status(r->up) : 0;
	struct metrics_obs o = {
		.front = r->in.front,
		.provider = r->route.provider ? r->route.provider->name : "",
		.model = r->client_model && r->route.provider ?
			 r->client_model : "",
		.status = status,
		.stream = r->call.stream,
		.duration_us = total_us,
		.upstream_us = r->upstream_wait_us,
		.overhead_us = total_us > r->upstream_wait_us ?
			       total_us - r->upstream_wait_us : 0,
	};

	if (r->accounted)
		return;
	r->accounted = true;
	/* the local counts are recorded without the provider's usage, and
	 * shown in the audit line when it is written */
	acct_finish(&r->acct, r->usage.known ? &reported : NULL,
		    up_status >= 200 && up_status < 300, ok,
		    log_enabled(LOGL_INFO), &rec);
	o.prompt_tokens = (uint64_t)rec.prompt;
	o.completion_tokens = (uint64_t)rec.completion;
	o.reasoning_tokens = (uint64_t)rec.reasoning;
	o.cached_tokens = (uint64_t)rec.cached;
	metrics_observe(&o);
	metrics_inflight(r->streaming, -1);
	memtrim_idle();
	audit(r, status, total_us, &rec, r->acct.local_completion);
}

void pipeline_free(struct pl_request *r)
{
	if (!r)
		return;
	if (r->up && r->stream_ended)
		drain_upstream(r, 100);
	account(r);
	acct_free(&r->acct);
	upstream_free(r->up);
	if (r->astate)
		r->route.adapter->stream_free(r->astate);
	upstream_req_free(&r->ureq);
	json_object_put(r->req);
	free(r->client_model);
	sse_free(&r->sse);
	buf_free(&r->upbody);
	buf_free(&r->answer);
	config_release(r->cfg);
	free(r);
}
