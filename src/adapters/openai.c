/* SPDX-License-Identifier: MIT */
/*
 * adapters/openai: the OpenAI Chat Completions dialect, spoken by OpenAI,
 * DeepSeek, CloseAI and every OpenAI-compatible service. Requests pass
 * through as they are; responses and chunks only get the client's model
 * name back. The stream is complete only when the provider says [DONE].
 *
 * That model name is spliced into the provider's text when the text
 * allows it (see jsonspan.h): a chunk is then never parsed into json-c
 * objects nor serialised again. Anything unusual takes the json-c way.
 */
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "buf.h"
#include "jsonguard.h"
#include "util.h"

#define CHAT_PATH "/chat/completions"
/* deeper texts take the json-c way, which allows 32; so do objects with
 * more members than a chunk or an answer has */
#define TEXT_MAX_DEPTH 16
#define TEXT_MAX_MEMBERS 32

struct openai_stream {
	const struct adapter_call *call;
	json_tokener *tok;     /* NULL until a chunk needs json-c */
	struct buf model_json; /* the client's model as a JSON string */
	struct buf text;       /* the chunk being emitted as text */
	bool done;
};

/* The seed wrote full endpoint URLs; newer configs give a base. */
static char *endpoint_url(const char *base)
{
	size_t n = strlen(base), plen = strlen(CHAT_PATH);
	struct buf b;

	while (n > 0 && base[n - 1] == '/')
		n--;
	buf_init(&b, 0);
	buf_append(&b, base, n);
	if (n < plen || memcmp(base + n - plen, CHAT_PATH, plen) != 0)
		buf_appends(&b, CHAT_PATH);
	return buf_steal(&b);
}

/* Everything of the upstream request but its body. */
static void request_head(const struct adapter_call *call,
			 struct upstream_req *out)
{
	const char *key = call->provider->api_key;
	struct buf auth;

	memset(out, 0, sizeof(*out));
	out->url = endpoint_url(call->provider->base_url);
	if (key && *key) {
		buf_init(&auth, 0);
		buf_appends(&auth, "Bearer ");
		buf_appends(&auth, key);
		upstream_req_add_header(out, "Authorization", auth.data);
		explicit_bzero(auth.data, auth.len);
		buf_free(&auth);
	}
	upstream_req_add_header(out, "Content-Type", "application/json");
	upstream_req_add_header(out, "Accept", call->stream ?
				"text/event-stream" : "application/json");
}

static int openai_build_request(const struct adapter_call *call,
				json_object *req, struct upstream_req *out,
				struct api_error *err)
{
	const char *body;
	size_t len;

	request_head(call, out);
	body = json_object_to_json_string_length(req,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
			&len);
	out->body = xstrndup(body, len);
	out->body_len = len;
	return 0;
}

/* The request is already in the provider's dialect: send it as it is. */
static int openai_build_request_text(const struct adapter_call *call,
				     char *body, size_t len,
				     struct upstream_req *out,
				     struct api_error *err)
{
	request_head(call, out);
	out->body = body;
	out->body_len = len;
	return 0;
}

/* The provider's own words from an OpenAI-style error body, or NULL.
 * Returned string lives as long as obj. */
static const char *error_message(json_object *obj)
{
	json_object *e, *m;

	if (!obj || !json_object_is_type(obj, json_type_object))
		return NULL;
	if (json_object_object_get_ex(obj, "error", &e)) {
		if (json_object_is_type(e, json_type_string))
			return json_object_get_string(e);
		if (json_object_object_get_ex(e, "message", &m) &&
		    json_object_is_type(m, json_type_string))
			return json_object_get_string(m);
	}
	if (json_object_object_get_ex(obj, "message", &m) &&
	    json_object_is_type(m, json_type_string))
		return json_object_get_string(m);
	if (json_object_object_get_ex(obj, "detail", &m) &&
	    json_object_is_type(m, json_type_string))
		return json_object_get_string(m);
	return NULL;
}

static json_object *parse_object(json_tokener *tok, const char *s, size_t n)
{
	json_object *obj = jsonguard_parse(tok, s, n);

	if (obj && !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		obj = NULL;
	}
	return obj;
}

/* Set the client's model name, and give DeepSeek's cache counters
 * (prompt_cache_hit_tokens) the standard place clients read them from,
 * prompt_tokens_details.cached_tokens. DeepSeek's own fields stay. */
static void normalize(json_object *obj, const char *model)
{
	json_object *usage, *hit, *details;

	json_object_object_add(obj, "model", json_object_new_string(model));
	if (!json_object_object_get_ex(obj, "usage", &usage) ||
	    !json_object_is_type(usage, json_type_object) ||
	    !json_object_object_get_ex(usage, "prompt_cache_hit_tokens", &hit) ||
	    !json_object_is_type(hit, json_type_int))
		return;
	if (!json_object_object_get_ex(usage, "prompt_tokens_details",
				       &details) ||
	    !json_object_is_type(details, json_type_object)) {
		details = json_object_new_object();
		json_object_object_add(usage, "prompt_tokens_details", details);
	}
	if (!json_object_object_get_ex(details, "cached_tokens", NULL))
		json_object_object_add(details, "cached_tokens",
				       json_object_new_int64(
					       json_object_get_int64(hit)));
}

/* Move a span of the text at from into the same bytes of out, where the
 * model value (at model, n bytes) was replaced by one of model_len. */
static struct jspan relocate(struct jspan v, const char *from,
			     struct jspan model, size_t model_len,
			     const struct buf *out)
{
	size_t off;

	if (!v.p)
		return v;
	off = (size_t)(v.p - from);
	if (v.p > model.p)
		off = off - model.n + model_len;
	v.p = out->data + off;
	return v;
}

/*
 * What normalize() does, on the text: the provider's object with the
 * client's model name (model_json, a JSON string) in place of its own.
 * Only for a text jspan_check() passes, with one "model", "choices" and
 * "usage" each at most, no "error", and nothing else for normalize() to
 * change. 0 with out and *t filled; 1 when the json-c way must do it.
 */
static int splice_model(const char *s, size_t n, const char *model_json,
			size_t model_len, struct buf *out,
			struct adapter_text *t)
{
	struct jspan_member top[TEXT_MAX_MEMBERS];
	struct jspan obj, model = { NULL, 0 }, hit;
	size_t n_top;
	int64_t i64;

	if (n > INT32_MAX || !jspan_check_object(s, n, TEXT_MAX_DEPTH, top,
						 ARRAY_SIZE(top), &n_top))
		return 1;
	obj = jspan_trim(s, n);
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < n_top; i++) {
		struct jspan key = top[i].key, val = top[i].val;

		if (jspan_eq(key, "error")) {
			return 1;
		} else if (jspan_eq(key, "model")) {
			if (model.p)
				return 1;
			model = val;
		} else if (jspan_eq(key, "choices")) {
			if (t->choices.p)
				return 1;
			t->choices = val;
		} else if (jspan_eq(key, "usage")) {
			if (t->usage.p)
				return 1;
			t->usage = val;
			t->usage_member = top[i].member;
		}
	}
	if (!model.p)
		return 1;
	if (jspan_is_object(t->usage) &&
	    jspan_get(t->usage, "prompt_cache_hit_tokens", &hit) &&
	    jspan_int64(hit, &i64))
		return 1; /* normalize() has cached_tokens to add */
	buf_reset(out);
	buf_append(out, obj.p, (size_t)(model.p - obj.p));
	buf_append(out, model_json, model_len);
	buf_append(out, model.p + model.n,
		   (size_t)(obj.p + obj.n - (model.p + model.n)));
	t->json = out->data;
	t->len = out->len;
	t->choices = relocate(t->choices, obj.p, model, model_len, out);
	t->usage = relocate(t->usage, obj.p, model, model_len, out);
	t->usage_member = relocate(t->usage_member, obj.p, model, model_len,
				   out);
	return 0;
}

static int openai_response_text(const struct adapter_call *call,
				 const char *body, size_t len, struct buf *out,
				 struct adapter_text *t)
{
	struct buf model;
	int rc;

	buf_init(&model, 0);
	buf_append_json_str(&model, call->client_model,
			    strlen(call->client_model));
	rc = splice_model(body, len, model.data, model.len, out, t);
	buf_free(&model);
	if (rc)
		buf_reset(out);
	return rc;
}

static int openai_parse_response(const struct adapter_call *call,
				 const char *body, size_t len,
				 json_object **out, struct api_error *err)
{
	json_tokener *tok = json_tokener_new();
	json_object *obj = NULL;
	const char *msg;
	int rc = ADAPTER_ERROR;

	*out = NULL;
	if (len > INT32_MAX)
		goto bad;
	obj = parse_object(tok, body, len);
	if (!obj)
		goto bad;
	if (json_object_object_get_ex(obj, "error", NULL)) {
		msg = error_message(obj);
		apierr_upstream(err, 502, "Provider '%s' returned an error: %s",
				call->provider->name, msg ? msg : "unknown");
		goto out;
	}
	normalize(obj, call->client_model);
	*out = obj;
	obj = NULL;
	rc = 0;
	goto out;
bad:
	apierr_upstream(err, 502, "Provider '%s' returned a response that is "
			"not a JSON object", call->provider->name);
out:
	json_object_put(obj);
	json_tokener_free(tok);
	return rc;
}

static void *openai_stream_new(const struct adapter_call *call)
{
	struct openai_stream *st = xcalloc(1, sizeof(*st));

	st->call = call;
	buf_init(&st->model_json, 0);
	buf_append_json_str(&st->model_json, call->client_model,
			    strlen(call->client_model));
	buf_init(&st->text, 0);
	return st;
}

static int openai_stream_event(void *state, const struct sse_event *ev,
			       const struct adapter_emit *emit,
			       struct api_error *err)
{
	struct openai_stream *st = state;
	const char *pname = st->call->provider->name;
	struct adapter_text text;
	json_object *chunk;
	const char *msg;
	int rc;

	if (st->done)
		return ADAPTER_DONE;
	if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
		st->done = true;
		return ADAPTER_DONE;
	}
	/* the common case, as text: one line (a chunk goes out as one
	 * "data:" line) that needs only its model name changed */
	if (emit->text && !memchr(ev->data, '\n', ev->data_len) &&
	    !memchr(ev->data, '\r', ev->data_len) &&
	    splice_model(ev->data, ev->data_len, st->model_json.data,
			 st->model_json.len, &st->text, &text) == 0) {
		rc = emit->text(emit->ud, &text);
		goto emitted;
	}
	if (!st->tok)
		st->tok = json_tokener_new(); /* made when first needed */
	chunk = ev->data_len <= INT32_MAX ?
		parse_object(st->tok, ev->data, ev->data_len) : NULL;
	if (!chunk) {
		apierr_upstream(err, 502, "Provider '%s' sent a stream event "
				"that is not a JSON object", pname);
		return ADAPTER_ERROR;
	}
	if (json_object_object_get_ex(chunk, "error", NULL)) {
		msg = error_message(chunk);
		apierr_upstream(err, 502, "Provider '%s' failed mid-stream: %s",
				pname, msg ? msg : "unknown error");
		json_object_put(chunk);
		return ADAPTER_ERROR;
	}
	normalize(chunk, st->call->client_model);
	rc = emit->chunk(emit->ud, chunk);
	json_object_put(chunk);
emitted:
	if (rc) {
		apierr_set(err, 499, "client_closed", NULL, NULL,
			   "client closed the connection");
		return ADAPTER_ERROR;
	}
	return ADAPTER_MORE;
}

static int openai_stream_finish(void *state, const struct adapter_emit *emit,
				struct api_error *err)
{
	struct openai_stream *st = state;

	if (st->done)
		return ADAPTER_DONE;
	apierr_upstream(err, 502, "Provider '%s' ended the stream before it "
			"was complete", st->call->provider->name);
	return ADAPTER_ERROR;
}

static void openai_stream_free(void *state)
{
	struct openai_stream *st = state;

	if (!st)
		return;
	if (st->tok)
		json_tokener_free(st->tok);
	buf_free(&st->model_json);
	buf_free(&st->text);
	free(st);
}

static void openai_map_error(const struct adapter_call *call, long status,
			     const char *body, size_t len,
			     const char *retry_after, struct api_error *err)
{
	json_object *obj = NULL;
	json_tokener *tok;

	if (body && len > 0 && len <= INT32_MAX) {
		tok = json_tokener_new();
		obj = parse_object(tok, body, len);
		json_tokener_free(tok);
	}
	adapter_map_status(call, status, error_message(obj), retry_after, err);
	json_object_put(obj);
}

const struct adapter adapter_openai = {
	.name = "openai",
	.build_request = openai_build_request,
	.build_request_text = openai_build_request_text,
	.parse_response = openai_parse_response,
	.response_text = openai_response_text,
	.stream_new = openai_stream_new,
	.stream_event = openai_stream_event,
	.stream_finish = openai_stream_finish,
	.stream_free = openai_stream_free,
	.map_error = openai_map_error,
};
