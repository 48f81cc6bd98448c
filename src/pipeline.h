/* SPDX-License-Identifier: MIT */
/*
 * pipeline: one chat request from bytes to answer, the same for every
 * front: auth -> parse and validate -> route -> param_config -> adapter ->
 * upstream -> sink. A front supplies the request bytes and a sink, and
 * learns from pipeline_start() whether the answer is a complete JSON body
 * (success or error) or a stream, which it then drives with
 * pipeline_stream_pump() from the thread that owns the client connection.
 * Nothing here knows about HTTP framing or WebSocket frames.
 */
#ifndef LB_PIPELINE_H
#define LB_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

#include "apierr.h"
#include "buf.h"
#include "config.h"

/* Where stream output goes. Called on the thread that pumps. */
struct pl_sink {
	void *ud;
	/* One OpenAI chat.completion.chunk as JSON text. Return non-zero
	 * when the client is gone (the upstream is then aborted). */
	int (*chunk)(void *ud, const char *json, size_t len);
	/* The stream is over. err NULL: it completed (send [DONE]);
	 * otherwise the error that cut it short (send it, no [DONE]). */
	void (*end)(void *ud, const struct api_error *err);
};

struct pl_input {
	struct config *cfg;        /* the caller's reference; the request
	                            * takes its own */
	const char *authorization; /* "Bearer <key>" header value, or NULL */
	const char *api_key;       /* a bare key (WebSocket), or NULL */
	const char *body;          /* request JSON (need not be NUL-ended) */
	size_t body_len;
	const char *front;         /* "http" | "ws" (for the audit line) */
	const char *request_id;
	const char *client_addr;
	int client_fd;             /* socket watched for a disconnect, or -1 */
	const struct pl_sink *sink;
};

enum pl_result {
	PL_RESPONSE, /* a complete JSON answer: pipeline_response() */
	PL_STREAM,   /* a 2xx stream began: pump it until PL_END */
	PL_GONE,     /* the client disconnected; nothing to send */
	PL_MORE,     /* stream: pump again */
	PL_END       /* stream: over, sink->end has been called */
};

struct pl_request;

/* Make a request from in (copied as needed). Never NULL. */
struct pl_request *pipeline_new(const struct pl_input *in);
/* Run until the shape of the answer is known. */
enum pl_result pipeline_start(struct pl_request *r);
/* The complete answer after PL_RESPONSE: status, JSON body (owned by r),
 * and the Retry-After value or NULL. */
void pipeline_response(const struct pl_request *r, int *status,
		       const char **body, size_t *len,
		       const char **retry_after);
/* Drive a stream: wait up to wait_ms, deliver what arrived to the sink.
 * Returns PL_MORE or PL_END. */
enum pl_result pipeline_stream_pump(struct pl_request *r, int wait_ms);
/* The usage reported so far as an OpenAI usage object appended to out;
 * false (nothing appended) when no usage is known. */
bool pipeline_usage_json(const struct pl_request *r, struct buf *out);
/* Cancel from any thread: the next pump ends the stream. */
void pipeline_cancel(struct pl_request *r);
struct limit_status;
/* The key's rate-limit state after admission (for x-ratelimit-* headers),
 * or NULL when the key has no limits or the request never got that far. */
const struct limit_status *pipeline_limit_status(const struct pl_request *r);
/* Microseconds spent inside the gateway so far, upstream wait excluded. */
unsigned long pipeline_overhead_us(const struct pl_request *r);
/* Write the audit line, release everything. NULL is a no-op. */
void pipeline_free(struct pl_request *r);

/* The shared config snapshot, swapped whole on reload. */
void pipeline_set_config(struct config *cfg); /* takes a reference */
struct config *pipeline_config_acquire(void); /* caller releases */

struct key_entry;
/* Check a client key: the Authorization header value ("Bearer <key>",
 * scheme case-insensitive) or a bare key. 0 with *out set, or -1 with a
 * 401 in err. The key itself never reaches err or the log. */
int pipeline_auth(const struct config *cfg, const char *authorization,
		  const struct key_entry **out, struct api_error *err);

/* The OpenAI model list for cfg, as JSON, into out. */
void pipeline_models_json(const struct config *cfg, struct buf *out);

/* The OpenAI model object for id, a name a chat request may give (as
 * the router resolves it), into out. 0, or -1 with err set (404
 * model_not_found, 400 for a malformed name). */
int pipeline_model_json(const struct config *cfg, const char *id,
			struct buf *out, struct api_error *err);

/* A fresh random request id "req_<16 hex>" into out (size >= 24). */
void pipeline_make_request_id(char *out, size_t n);

#endif
