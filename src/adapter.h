/* SPDX-License-Identifier: MIT */
/*
 * adapter: the interface every provider dialect implements. Adapters are
 * pure translations over json-c objects and bytes: they never touch curl,
 * libmicrohttpd or libwebsockets, so unit tests and fuzzers drive them
 * directly. The pipeline owns the I/O and calls these in order:
 *   build_request -> (upstream) -> parse_response | stream_* | map_error
 */
#ifndef LB_ADAPTER_H
#define LB_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "apierr.h"
#include "buf.h"
#include "config.h"
#include "jsonspan.h"
#include "sse.h"

#define UPSTREAM_MAX_HEADERS 8

/* One HTTP request to a provider, built by an adapter. All fields owned;
 * free with upstream_req_free(). Header lines are "Name: value" and may
 * hold the provider key: never log them. */
struct upstream_req {
	char *url;
	char *headers[UPSTREAM_MAX_HEADERS];
	size_t n_headers;
	char *body;
	size_t body_len;
};

void upstream_req_free(struct upstream_req *r);
/* Append a header line (copied). Returns 0 or -1 when full. */
int upstream_req_add_header(struct upstream_req *r, const char *name,
			    const char *value);

/* Fetches a remote resource (an image_url with an http(s) URL) for an
 * adapter that must inline it. Fills data (capped) and mime ("image/png");
 * returns 0, or -1 with a 400 in err. See fetch.h. */
typedef int (*adapter_fetch_fn)(void *ud, const char *url, struct buf *data,
				char *mime, size_t mimelen,
				struct api_error *err);

/* What an adapter knows about one request. Owned by the pipeline. */
struct adapter_call {
	const struct provider_cfg *provider;
	const char *upstream_model; /* bare model name sent upstream */
	const char *client_model;   /* the client's "provider/model": every
	                             * response and chunk carries this one */
	bool stream;
	bool include_usage;         /* the client asked for the usage chunk */
	adapter_fetch_fn fetch;     /* NULL: remote fetching is disabled */
	void *fetch_ud;
};

/* An OpenAI chunk or chat.completion as JSON text, for the path that
 * never builds json-c objects (see jsonspan.h). The spans point into
 * json; each has n == 0 when the member is absent. */
struct adapter_text {
	char *json;                /* the receiver may cut from it in place */
	size_t len;
	struct jspan choices;      /* the "choices" value */
	struct jspan usage;        /* the "usage" value (may be null) */
	struct jspan usage_member; /* the whole "usage": member */
};

/* Where a stream may deliver a chunk as text instead (optional: NULL
 * makes every chunk go to adapter_emit.chunk). Same return as chunk. */
typedef int (*adapter_emit_text_fn)(void *ud, struct adapter_text *t);

/* Where a stream translation delivers OpenAI chat.completion.chunk objects.
 * chunk is borrowed: the callee must not keep it. Non-zero return stops
 * the stream (the client went away). An adapter that can may hand a chunk
 * to text instead, when that is set. */
struct adapter_emit {
	void *ud;
	int (*chunk)(void *ud, json_object *chunk);
	adapter_emit_text_fn text;
};

enum {
	ADAPTER_MORE = 0,  /* keep feeding */
	ADAPTER_DONE = 1,  /* the provider finished the stream properly */
	ADAPTER_ERROR = -1 /* failed: err is filled */
};

struct adapter {
	const char *name;
	/* req is the OpenAI-shaped request after routing and param_config,
	 * with "model" already the upstream name. Fills out (owned by caller). */
	int (*build_request)(const struct adapter_call *call, json_object *req,
			     struct upstream_req *out, struct api_error *err);
	/* build_request for a request that goes upstream as the client
	 * wrote it but for the gateway's edits (optional: an adapter that
	 * translates has none). body is that JSON text, malloc'd; out takes
	 * it. Returns 0, or -1 with err set. */
	int (*build_request_text)(const struct adapter_call *call, char *body,
				  size_t len, struct upstream_req *out,
				  struct api_error *err);
	/* A 2xx non-streaming body -> an OpenAI chat.completion in *out
	 * (caller puts it). Returns 0 or ADAPTER_ERROR. */
	int (*parse_response)(const struct adapter_call *call, const char *body,
			      size_t len, json_object **out,
			      struct api_error *err);
	/* parse_response without json-c objects (optional): the answer
	 * text into out (reset first) and its parts into *t, which point
	 * into out. Returns 0, or 1 when the body needs parse_response
	 * (an error, anything jspan_check refuses, ...): out is then empty. */
	int (*response_text)(const struct adapter_call *call,
			     const char *body, size_t len, struct buf *out,
			     struct adapter_text *t);
	/* Per-stream translation state. stream_new never returns NULL. */
	void *(*stream_new)(const struct adapter_call *call);
	/* One upstream SSE event. Returns ADAPTER_MORE, ADAPTER_DONE or
	 * ADAPTER_ERROR; a non-zero emit return is passed up as ADAPTER_ERROR
	 * with err->status 499 (client gone). */
	int (*stream_event)(void *st, const struct sse_event *ev,
			    const struct adapter_emit *emit,
			    struct api_error *err);
	/* The upstream body ended. ADAPTER_DONE when the stream was complete,
	 * else ADAPTER_ERROR (cut short): never a silent success. */
	int (*stream_finish)(void *st, const struct adapter_emit *emit,
			     struct api_error *err);
	void (*stream_free)(void *st);
	/* A non-2xx upstream answer -> the client's error (see
	 * adapter_map_status for the status policy). */
	void (*map_error)(const struct adapter_call *call, long status,
			  const char *body, size_t len, const char *retry_after,
			  struct api_error *err);
};

extern const struct adapter adapter_openai;
extern const struct adapter adapter_gemini;

/* The adapter registered under name, or NULL. */
const struct adapter *adapter_find(const char *name);

/* The status policy shared by all adapters: upstream 400/404/413/422 keep
 * their meaning, 401/403 become 502 (the provider refused *our* key),
 * 408 -> 504, 429 -> 429 (Retry-After kept), anything else -> 502.
 * message is the provider's own text (may be NULL). */
void adapter_map_status(const struct adapter_call *call, long status,
			const char *message, const char *retry_after,
			struct api_error *err);

#endif
