/* SPDX-License-Identifier: MIT */
/*
 * sse: the WHATWG event-stream parsing algorithm, fed incrementally. The
 * parser keeps only the current line and the event being assembled, so
 * memory is bounded by the largest event, never by the stream.
 */
#include <string.h>

#include "sse.h"

void sse_init(struct sse_parser *p, size_t max_event)
{
	memset(p, 0, sizeof(*p));
	p->max_event = max_event;
	buf_init(&p->line, max_event);
	buf_init(&p->data, max_event);
	buf_init(&p->event, 256);
}

void sse_free(struct sse_parser *p)
{
	buf_free(&p->line);
	buf_free(&p->data);
	buf_free(&p->event);
}

bool sse_pending(const struct sse_parser *p)
{
	return p->line.len > 0 || p->have_data;
}

static int dispatch(struct sse_parser *p, sse_event_fn cb, void *ud)
{
	struct sse_event ev;
	int rc;

	if (!p->have_data) {
		buf_reset(&p->event);
		return 0;
	}
	ev.event = p->event.data ? p->event.data : "";
	ev.data = p->data.data ? p->data.data : "";
	ev.data_len = p->data.len;
	rc = cb(ud, &ev);
	buf_reset(&p->data);
	buf_reset(&p->event);
	p->have_data = false;
	return rc;
}

/* Process one complete line s[0..n) (without its terminator). */
static int process_line(struct sse_parser *p, const char *s, size_t n,
			sse_event_fn cb, void *ud)
{
	size_t flen;
	const char *colon, *val;
	size_t vlen;

	if (n == 0)
		return dispatch(p, cb, ud);
	if (s[0] == ':')
		return 0;
	colon = memchr(s, ':', n);
	flen = colon ? (size_t)(colon - s) : n;
	val = colon ? colon + 1 : s + n;
	vlen = n - (size_t)(val - s);
	if (vlen && *val == ' ') {
		val++;
		vlen--;
	}
	if (flen == 4 && memcmp(s, "data", 4) == 0) {
		if (p->have_data && buf_append(&p->data, "\n", 1) < 0)
			return -1;
		if (buf_append(&p->data, val, vlen) < 0)
			return -1;
		p->have_data = true;
	} else if (flen == 5 && memcmp(s, "event", 5) == 0) {
		buf_reset(&p->event);
		if (buf_append(&p->event, val, vlen) < 0)
			return -1;
	}
	/* id, retry and unknown fields mean nothing to a proxy: ignored. */
	return 0;
}

int sse_feed(struct sse_parser *p, const char *bytes, size_t len,
	     sse_event_fn cb, void *ud)
{
	const char *s = bytes, *end = bytes + len;

	while (s < end) {
		const char *nl, *eol;
		int rc;

		if (p->last_cr) {
			p->last_cr = false;
			if (*s == '\n') {
				s++;
				continue;
			}
		}
		/* memchr, not a byte loop: a line is a whole chunk of JSON */
		nl = memchr(s, '\n', (size_t)(end - s));
		eol = memchr(s, '\r', (size_t)((nl ? nl : end) - s));
		if (!eol)
			eol = nl;
		if (!eol) {
			/* the line continues in the next piece */
			if (buf_append(&p->line, s, (size_t)(end - s)) < 0)
				return -1;
			break;
		}
		if (p->line.len == 0) {
			/* the whole line is here: no copy */
			if ((size_t)(eol - s) > p->max_event)
				return -1;
			rc = process_line(p, s, (size_t)(eol - s), cb, ud);
		} else {
			if (buf_append(&p->line, s, (size_t)(eol - s)) < 0)
				return -1;
			rc = process_line(p, p->line.data, p->line.len, cb, ud);
			buf_reset(&p->line);
		}
		p->last_cr = *eol == '\r';
		s = eol + 1;
		if (rc)
			return rc;
	}
	return 0;
}
