/* SPDX-License-Identifier: MIT */
/*
 * metrics: process-wide counters and histograms for GET /metrics in the
 * Prometheus text exposition format (version 0.0.4). One mutex; a request
 * touches it twice (start, end), each time for O(1) work: series are found
 * in a small hash table keyed by their label values.
 */
#ifndef LB_METRICS_H
#define LB_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

/* One finished request. Strings are borrowed for the call; empty strings
 * for provider/model when the request failed before routing. */
struct metrics_obs {
	const char *front;      /* "http" | "ws" */
	const char *provider;
	const char *model;
	int status;             /* HTTP status given (or that a WS error
	                         * carried); 200 for a completed stream */
	bool stream;
	uint64_t duration_us;   /* whole request */
	uint64_t upstream_us;   /* waiting on the provider */
	uint64_t overhead_us;   /* inside the gateway (duration - upstream) */
	uint64_t prompt_tokens, completion_tokens, reasoning_tokens,
		 cached_tokens;
};

/* Past this many series, a request or token count whose label tuple is
 * new is counted under the model METRICS_OTHER_MODEL: the page and the
 * memory behind it stay bounded whatever model names clients send to a
 * provider with allow_unlisted_models. */
#define METRICS_MAX_SERIES 10000
#define METRICS_OTHER_MODEL "(other)"

/* Call once before threads start and once at exit (tests may repeat). */
void metrics_init(void);
void metrics_shutdown(void);

/* In-flight gauges: a request began / ended (stream: it is a stream). */
void metrics_inflight(bool stream, int delta);
/* Count a finished request into the counters and histograms. */
void metrics_observe(const struct metrics_obs *o);

/* Append the exposition text to out:
 *   llm_bridge_requests_total{front,provider,model,status}
 *   llm_bridge_tokens_total{provider,model,kind="prompt|completion|reasoning|cached"}
 *   llm_bridge_inflight_requests, llm_bridge_inflight_streams
 *   llm_bridge_request_duration_seconds (histogram, by provider)
 *   llm_bridge_upstream_duration_seconds (histogram, by provider)
 *   llm_bridge_overhead_seconds (histogram; gateway time, upstream excluded)
 *   llm_bridge_build_info{version}, llm_bridge_start_time_seconds
 * Label values escaped as the format requires. */
void metrics_render(struct buf *out);

#endif
