/* SPDX-License-Identifier: MIT */
/*
 * reqhead: the request line and headers of the first request on a
 * connection, checked by the listener before either front sees it.
 *
 * libmicrohttpd and libwebsockets answer malformed requests with HTML
 * bodies of their own (or by closing the socket without a word), and both
 * keep a thread or a slot busy for a client that sends its headers a byte
 * a second. The listener therefore waits for the whole head itself, in its
 * poll set, with server.header_timeout and server.max_header_bytes, and
 * answers what is wrong with it in OpenAI's error shape. Pure functions,
 * so the rules are unit-tested without a socket.
 */
#ifndef LB_REQHEAD_H
#define LB_REQHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "apierr.h"

struct reqhead_val {
	const char *p; /* into the parsed bytes; not NUL-terminated */
	size_t n;      /* 0 when absent */
};

struct reqhead {
	size_t head_len;       /* bytes through the empty line */
	char method[16];
	bool ws_path;          /* GET of the WebSocket path (query allowed) */
	bool has_length;
	uint64_t content_length;
	bool chunked;
	unsigned query_args;   /* "&"-separated parts of the target's query */
	size_t cookie_bytes;   /* values of Cookie fields */
	unsigned cookies;      /* their ","- and ";"-separated parts */
	struct reqhead_val upgrade, connection, ws_key, ws_version,
		ws_protocol, origin, authorization;
};

enum reqhead_result { REQHEAD_MORE, REQHEAD_OK, REQHEAD_BAD };

/* At most this many header fields and query arguments per request, as
 * Apache's LimitRequestFields default. libmicrohttpd keeps a record of
 * each in the connection's memory pool, and closes a connection without
 * a word when they do not fit, so a bounded count is what lets that pool
 * stay small (see http_front.c) while any head up to
 * server.max_header_bytes still fits in it. */
#define REQHEAD_MAX_FIELDS 100

/* The size of libmicrohttpd's per-connection memory pool for heads of up
 * to max_bytes (server.max_header_bytes). reqhead_parse() refuses with a
 * 431 of ours any head that would not fit it. */
size_t reqhead_pool_size(size_t max_bytes);

/* The 431s reqhead_parse() answers a head too large and one with too
 * many fields and query arguments; for the same checks of a later
 * request on a kept-alive connection, made on the engine's parse. */
void reqhead_error_too_large(struct api_error *err);
void reqhead_error_too_many_fields(struct api_error *err);

/* Parse the first len bytes of a connection. REQHEAD_MORE: the head is
 * incomplete but fine so far; REQHEAD_BAD: err holds the status (400,
 * 413, 431, 505) and the error to send. A head longer than max_bytes or
 * with more than REQHEAD_MAX_FIELDS header fields and query arguments
 * together is 431, as is one that would not fit libmicrohttpd's pool
 * with its Cookie header copied; a Content-Length above max_body is 413. */
enum reqhead_result reqhead_parse(const char *buf, size_t len,
				  size_t max_bytes, uint64_t max_body,
				  const char *ws_path, struct reqhead *h,
				  struct api_error *err);

/* Does the comma-separated list v hold token (case-insensitive)? */
bool reqhead_has_token(const struct reqhead_val *v, const char *token);

/* A whole HTTP/1.1 response carrying err as its JSON body, with
 * Connection: close and any extra header lines ("Name: value\r\n").
 * Appended to out. */
void reqhead_error_response(struct buf *out, const struct api_error *err,
			    const char *extra_headers);

#endif
