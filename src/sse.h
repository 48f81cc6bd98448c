/* SPDX-License-Identifier: MIT */
/*
 * sse: an incremental Server-Sent Events parser for upstream bodies.
 * Bytes arrive in arbitrary pieces (an event may be split anywhere, even
 * inside a CRLF); each complete event is handed to a callback the moment
 * its terminating blank line is seen. Follows the WHATWG parsing rules:
 * lines end in CRLF, LF or CR; "data:" lines are joined with "\n"; one
 * optional space after the colon is dropped; lines starting with ':' are
 * comments; an event with no data lines is not dispatched.
 */
#ifndef LB_SSE_H
#define LB_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

struct sse_event {
	const char *event; /* "event:" field, "" when absent; NUL-terminated */
	const char *data;  /* joined data lines, NUL-terminated */
	size_t data_len;
};

/* Return 0 to go on, non-zero to stop feeding (returned by sse_feed). */
typedef int (*sse_event_fn)(void *ud, const struct sse_event *ev);

struct sse_parser {
	struct buf line;  /* the current, unterminated line */
	struct buf data;  /* data of the event being assembled */
	struct buf event; /* event name of the event being assembled */
	bool have_data;
	bool last_cr;     /* previous byte was CR: swallow a following LF */
	size_t max_event; /* cap on line and data size */
};

/* max_event: the largest event (and line) accepted, in bytes. */
void sse_init(struct sse_parser *p, size_t max_event);
/* Feed bytes. Calls cb for each completed event, in order. Returns 0,
 * the callback's non-zero value (parsing stops there; the rest of this
 * piece is dropped), or -1 when an event exceeds max_event. */
int sse_feed(struct sse_parser *p, const char *bytes, size_t len,
	     sse_event_fn cb, void *ud);
/* true when bytes of an incomplete event are pending (a cut-off stream). */
bool sse_pending(const struct sse_parser *p);
void sse_free(struct sse_parser *p);

#endif
