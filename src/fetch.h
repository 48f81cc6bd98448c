/* SPDX-License-Identifier: MIT */
/*
 * fetch: downloads a remote image for an adapter that must inline it
 * (Gemini takes images as inline data, not URLs). Bounded in size and
 * time, http(s) only, and by default refuses loopback, private and
 * link-local addresses, checked on the connected address itself so DNS
 * tricks cannot point it at the operator's own network.
 */
#ifndef LB_FETCH_H
#define LB_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include "apierr.h"
#include "buf.h"

struct fetch_opts {
	size_t max_bytes;   /* larger bodies are refused */
	long timeout_s;
	bool allow_private; /* permit loopback/private targets (tests) */
};

/* An adapter_fetch_fn: ud is a struct fetch_opts. Fills data and mime
 * (from Content-Type). 0, or -1 with a 400 in err: the URL is the
 * client's, so a bad, refused, unreachable, oversize or non-media URL is
 * the client's to fix. */
int fetch_media(void *ud, const char *url, struct buf *data, char *mime,
		size_t mimelen, struct api_error *err);

#endif
