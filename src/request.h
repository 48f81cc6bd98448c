/* SPDX-License-Identifier: MIT */
/*
 * request: the checks a Chat Completions request must pass before it is
 * routed, on json-c objects and on the text itself.
 *
 * Most requests need nothing from the gateway but a new model name (and,
 * for a stream, usage switched on). Parsing such a request into json-c
 * objects and serialising it again cost more CPU than anything else the
 * gateway did for it, so request_text_check() reads the text in place
 * and, when it can vouch that request_validate() would accept the same
 * request, hands back what the pipeline needs to send it on with
 * request_text_rewrite(). Whenever it cannot vouch (a check fails, or
 * anything is unusual), the request goes the json-c way, which gives the
 * client the precise error: the text path never invents an error of its
 * own, and never lets through what the json-c way refuses.
 */
#ifndef LB_REQUEST_H
#define LB_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "apierr.h"
#include "buf.h"
#include "jsonspan.h"

/* How deep a request's JSON may nest. */
#define REQUEST_MAX_DEPTH 128

/* 0 when req (a JSON object) is a request the gateway can route: a
 * non-empty string "model", a non-empty "messages" array of objects with
 * a string "role", and every known field of its expected type; -1 with a
 * 400 invalid_request_error naming the field in err. */
int request_validate(json_object *req, struct api_error *err);

/* What request_text_check() found; the spans point into the text. */
struct request_text {
	struct jspan object;    /* the whole request object */
	struct jspan model;     /* the "model" value, a string */
	struct jspan messages;  /* the "messages" value, an array */
	bool stream;            /* "stream": true */
	bool stream_options;    /* a "stream_options" object is present */
	bool include_usage;     /* "stream_options": {"include_usage": true} */
};

/* true when text[0..len) passes jspan_check() as an object and
 * request_validate() would accept it, with "model" free of escapes and,
 * when the request streams, any "stream_options" already asking for
 * usage; out is then filled. false means: take the json-c way. */
bool request_text_check(const char *text, size_t len,
			struct request_text *out);

/* The request of rt (checked on text) as it goes upstream, into out
 * (reset first): "model" becomes model, and a stream without
 * "stream_options" gets {"include_usage":true}, as the json-c way does.
 * *messages is set to the "messages" array inside out. */
void request_text_rewrite(const struct request_text *rt, const char *model,
			  struct buf *out, struct jspan *messages);

#endif
