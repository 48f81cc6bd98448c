/* SPDX-License-Identifier: MIT */
/*
 * fuzz_sse: the incremental SSE parser. Input: byte 0 picks how the rest
 * is cut into pieces and the event size cap; the rest is the stream.
 * The stream is parsed twice, in one piece and in pieces, and the two
 * event sequences (and the pending state at the end) must be identical:
 * where a network cuts the bytes must never change what is dispatched.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "sse.h"

struct rec {
	struct buf out;
	unsigned n;
};

static int on_event(void *ud, const struct sse_event *ev)
{
	struct rec *r = ud;

	if (!ev->event || !ev->data || strlen(ev->data) > ev->data_len ||
	    ev->data[ev->data_len] != '\0')
		abort(); /* the adapters rely on NUL-terminated fields */
	buf_appends(&r->out, ev->event);
	buf_append(&r->out, "\0", 1);
	buf_printf(&r->out, "%zu:", ev->data_len);
	buf_append(&r->out, ev->data, ev->data_len);
	r->n++;
	return 0;
}

static int run(const char *s, size_t n, size_t cap, unsigned mode,
	       struct rec *r, bool *pending)
{
	struct sse_parser p;
	size_t i = 0, step = 1;
	int rc = 0;

	buf_init(&r->out, 0);
	r->n = 0;
	sse_init(&p, cap);
	while (i < n && rc == 0) {
		size_t k;

		if (mode == 0)
			k = n;
		else if (mode == 1)
			k = 1;
		else /* growing, then wrapping, piece sizes */
			k = step = step % ((size_t)mode * 3) + 1;
		if (k > n - i)
			k = n - i;
		rc = sse_feed(&p, s + i, k, on_event, r);
		i += k;
	}
	*pending = sse_pending(&p);
	sse_free(&p);
	return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t caps[] = { 16, 64, 1024, 16u << 20 };
	struct rec a, b;
	bool pa, pb;
	int ra, rb;
	size_t cap;
	unsigned mode;

	if (size < 1)
		return 0;
	cap = caps[data[0] & 3];
	mode = (data[0] >> 2) + 1; /* 1..64: never whole, compared to whole */
	ra = run((const char *)data + 1, size - 1, cap, 0, &a, &pa);
	rb = run((const char *)data + 1, size - 1, cap, mode, &b, &pb);
	/* the same events up to the same error; pending state only means
	 * something for a stream that was parsed to its end */
	if (ra != rb || a.n != b.n || a.out.len != b.out.len ||
	    (a.out.len && memcmp(a.out.data, b.out.data, a.out.len) != 0) ||
	    (ra == 0 && pa != pb))
		abort();
	buf_free(&a.out);
	buf_free(&b.out);
	return 0;
}
