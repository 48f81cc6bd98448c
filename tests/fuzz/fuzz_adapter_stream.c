/* SPDX-License-Identifier: MIT */
/*
 * fuzz_adapter_stream: an adapter's stream translation behind the real SSE
 * parser, driven as the pipeline drives it (on_body/on_sse_event/
 * finish_stream), built once per adapter (FUZZ_ADAPTER;
 * fuzz_openai_stream, fuzz_gemini_stream). Input: byte 0 picks how the
 * body is cut into pieces (low nibble), after how many chunks the client
 * goes away (bits 4-6, 0 = never) and include_usage (bit 7); the rest is
 * the provider's SSE body. Every chunk must serialise; every failure must
 * be a 4xx/5xx (499 when the client left).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "sse.h"

#ifndef FUZZ_ADAPTER
#error "build with -DFUZZ_ADAPTER=\"name\""
#endif

struct run {
	const struct adapter *a;
	void *st;
	struct adapter_emit emit;
	struct fz_emit e;
	bool ended;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_init();
	return 0;
}

static int on_event(void *ud, const struct sse_event *ev)
{
	struct run *r = ud;
	struct api_error err = { 0 };
	int rc = r->a->stream_event(r->st, ev, &r->emit, &err);

	if (rc == ADAPTER_MORE)
		return 0;
	if (rc == ADAPTER_ERROR) {
		fz_check_error(&err);
		if (r->e.stop_after && r->e.chunks >= r->e.stop_after &&
		    err.status != 499)
			abort(); /* the client left: that must be the error */
	} else if (rc != ADAPTER_DONE) {
		abort();
	}
	r->ended = true;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct adapter *a = adapter_find(FUZZ_ADAPTER);
	struct provider_cfg prov;
	struct adapter_call call;
	struct api_error err = { 0 };
	struct sse_parser p;
	struct run r = { .a = a };
	const char *s;
	size_t n, i = 0, step = 0, piece;
	int rc;

	if (!a)
		abort();
	if (size < 1 || size > (1u << 20))
		return 0;
	fz_call(&call, &prov, FUZZ_ADAPTER);
	call.stream = true;
	call.include_usage = data[0] & 0x80;
	r.e.stop_after = (data[0] >> 4) & 7;
	r.emit.ud = &r.e;
	r.emit.chunk = fz_emit_chunk;
	piece = data[0] & 15; /* 0: all at once, else sizes 1..piece*7 */
	s = (const char *)data + 1;
	n = size - 1;
	r.st = a->stream_new(&call);
	if (!r.st)
		abort();
	sse_init(&p, 16u << 20);
	while (i < n && !r.ended) {
		size_t k = piece ? (step = step % (piece * 7) + 1) : n - i;

		if (k > n - i)
			k = n - i;
		rc = sse_feed(&p, s + i, k, on_event, &r);
		if (rc < 0 && !r.ended)
			r.ended = true; /* oversized event: the pipeline's 502 */
		i += k;
	}
	if (!r.ended) {
		rc = a->stream_finish(r.st, &r.emit, &err);
		if (rc == ADAPTER_ERROR)
			fz_check_error(&err);
		else if (rc != ADAPTER_DONE)
			abort();
	}
	a->stream_free(r.st);
	sse_free(&p);
	return 0;
}
