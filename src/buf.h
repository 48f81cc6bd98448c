/* SPDX-License-Identifier: MIT */
/*
 * buf: a growable byte buffer with a hard cap (in the manner of curl's dynbuf).
 * Request bodies, SSE assembly and upstream bodies all go through it, so
 * "too large" is an ordinary error (413/502), never an out-of-memory.
 * The data is always NUL-terminated when non-NULL, so it can be used as a string.
 */
#ifndef LB_BUF_H
#define LB_BUF_H

#include <stddef.h>

struct buf {
	char *data;  /* NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;  /* 0 = unlimited */
};

/* Start empty with a cap of max bytes (0 = no cap). Allocates nothing. */
void buf_init(struct buf *b, size_t max);
/* Append n bytes. Returns 0, or -1 when the result would exceed the cap
 * (the buffer is then unchanged). Aborts on out-of-memory. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_appends(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal, quotes included. Every byte that is
 * not part of well-formed UTF-8 becomes \ufffd, so the literal is valid
 * whatever s holds. */
int buf_append_json_str(struct buf *b, const char *s, size_t n);
/* Append code point cp (at most U+10FFFF, no surrogate) in UTF-8. */
void buf_append_utf8(struct buf *b, unsigned long cp);
/* Empty the buffer, keep the allocation. */
void buf_reset(struct buf *b);
/* Hand the NUL-terminated data to the caller (who frees it) and reset.
 * Never returns NULL: an empty buffer gives "". */
char *buf_steal(struct buf *b);
void buf_free(struct buf *b);

#endif
