/* SPDX-License-Identifier: MIT */
/*
 * ws_proto: the /v1/ws message protocol, as pure functions over text so it
 * can be unit-tested and fuzzed without a socket.
 *
 * Client messages: {"type":"chat","api_key":..,"id":..,"payload":{..}},
 * {"type":"auth","api_key":..}, {"type":"cancel","id":..}, {"type":"ping"}.
 * Server messages about a request without an id keep the original LLM
 * Bridge's framing byte for byte (each message the SSE text of one event:
 * "data: {chunk}\n\n", "data: [DONE]\n\n", an error as "data: {"error":..}"
 * followed by "data: [DONE]"); with an id they are JSON envelopes
 * {"type":"chunk"|"done"|"error"|"completion"|"cancelled","id":..,...}.
 */
#ifndef LB_WS_PROTO_H
#define LB_WS_PROTO_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "apierr.h"
#include "buf.h"

#define WS_ID_MAX 128 /* longest client id, as JSON text */

enum ws_msg_type { WS_MSG_CHAT, WS_MSG_AUTH, WS_MSG_CANCEL, WS_MSG_PING };

struct ws_msg {
	enum ws_msg_type type;
	char id[WS_ID_MAX + 1]; /* the client's id as JSON text, "" if none */
	const char *api_key;    /* NULL if absent; points into root */
	json_object *payload;   /* chat: the OpenAI request; into root */
	bool stream;            /* chat: payload.stream, true when absent */
	json_object *root;      /* owns the above */
};

/* Parse one text message. 0 with m filled (free with ws_msg_free), or -1
 * with a 400 in err and m->id set when the message carried a usable id.
 * A chat message needs payload.model and an api_key unless have_key (the
 * socket is already authenticated). */
int ws_proto_parse(const char *text, size_t len, bool have_key,
		   struct ws_msg *m, struct api_error *err);
void ws_msg_free(struct ws_msg *m);

/* The payload as request JSON for the pipeline, with "stream" set as the
 * original does (true unless the client said false). Caller frees. */
char *ws_proto_request_body(const struct ws_msg *m, size_t *len);

/* Server messages, appended to out. id is a ws_msg id ("" = none). */
void ws_proto_chunk(struct buf *out, const char *id, const char *chunk,
		    size_t len);
/* A finished stream; usage_json may be NULL (unknown). */
void ws_proto_done(struct buf *out, const char *id, const char *usage_json);
/* A request that failed. Without an id this is two messages in the
 * original framing; *second gets the "data: [DONE]" one (NULL otherwise). */
void ws_proto_request_error(struct buf *out, const char *id,
			    const struct api_error *err, const char **second);
void ws_proto_completion(struct buf *out, const char *id, const char *body,
			 size_t len);
void ws_proto_cancelled(struct buf *out, const char *id);
/* A message-level error (bad JSON, unknown type...): the original's
 * {"error":{...,"timestamp":..}} with OpenAI's fields added. */
void ws_proto_error(struct buf *out, const char *id,
		    const struct api_error *err);
void ws_proto_pong(struct buf *out, const char *id);
void ws_proto_auth_ok(struct buf *out);

#endif
