/* SPDX-License-Identifier: MIT */
/*
 * upstream: one HTTP transfer to a provider, on libcurl. Each transfer has
 * its own easy handle inside its own multi handle, so the thread that owns
 * the request can pump it step by step (a streaming response is produced
 * by the connection's own thread, with no cross-thread queue). Finished
 * transfers leave their easy+multi pair, with its open connection, in a
 * pool the next transfer on any thread takes whole; DNS answers and TLS
 * sessions are shared through one CURLSH (see upstream.c).
 */
#ifndef LB_UPSTREAM_H
#define LB_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adapter.h"
#include "apierr.h"

/* Call once from main before any thread starts, and once at exit. */
int upstream_global_init(void);
void upstream_global_cleanup(void);

/* A pooled pair unused this long is freed when a pair next goes back
 * (the pool is walked for such pairs at most once a second). */
#define UPSTREAM_POOL_IDLE_US ((uint64_t)60 * 1000 * 1000)
/* The warm pairs upstream_pool_trim() keeps once the daemon is quiet. */
#define UPSTREAM_POOL_QUIET_KEEP 128

/* Free the coldest idle pairs, with their connections, until at most keep
 * are left and none has been idle longer than max_idle_us. Thread-safe. */
void upstream_pool_trim(size_t keep, uint64_t max_idle_us);
/* Idle pairs in the pool now. */
size_t upstream_pool_idle(void);

struct upstream_opts {
	long timeout_s;       /* first byte / idle gap limit; whole transfer
	                       * for non-streaming requests */
	bool stream;
	const char *proxy;    /* proxy URL or NULL for a direct connection */
	const char *no_proxy; /* hosts that bypass the proxy, or NULL */
};

/* Body bytes as they arrive, with the final response status. Return 0 to
 * go on, non-zero to abort. */
typedef int (*upstream_body_fn)(void *ud, long status, const char *p,
				size_t n);

enum upstream_state {
	UPSTREAM_RUNNING = 0,
	UPSTREAM_DONE,        /* transfer finished (any HTTP status) */
	UPSTREAM_FAILED,      /* transport failure: see upstream_error() */
	UPSTREAM_CLIENT_GONE  /* the watched client socket closed */
};

struct upstream_call;

/* A transfer of req (which must outlive the call), set up but not
 * started: nothing is sent and no callback runs before upstream_begin().
 * Never NULL; a setup failure shows up as UPSTREAM_FAILED on the first
 * pump. Free with upstream_free(). */
struct upstream_call *upstream_new(const struct upstream_req *req,
				   const struct upstream_opts *opts,
				   upstream_body_fn on_body, void *ud);
/* Start sending. Body callbacks may run inside this call already (on a
 * warm connection a whole short answer can arrive), which is why it is
 * apart from upstream_new(): the caller has the call in hand by then. */
void upstream_begin(struct upstream_call *c);
/* Drive the transfer: wait up to wait_ms for network activity (or for
 * client_fd, when >= 0, to close), then make progress. Body callbacks run
 * inside this call. */
enum upstream_state upstream_pump(struct upstream_call *c, int client_fd,
				  int wait_ms);
/* Wake a pump blocked in another thread (cancel). Thread-safe. */
void upstream_wakeup(struct upstream_call *c);
/* true once the final response headers are in; then status and
 * Retry-After (NULL if absent) are known. */
bool upstream_headers_done(const struct upstream_call *c);
long upstream_status(const struct upstream_call *c);
const char *upstream_retry_after(const struct upstream_call *c);
/* For UPSTREAM_FAILED: the client-facing error (502 or 504). */
void upstream_error(const struct upstream_call *c, const char *provider,
		    struct api_error *err);
/* Microseconds between start and the first response header byte, or 0. */
unsigned long upstream_ttfb_us(const struct upstream_call *c);
/* Abort if running and hand the handles, with their connection, back to
 * the pool; status, Retry-After and the error stay readable, the
 * transfer is over. Safe against a concurrent upstream_wakeup(). */
void upstream_release(struct upstream_call *c);
/* upstream_release(), then free. */
void upstream_free(struct upstream_call *c);

#endif
