/* SPDX-License-Identifier: MIT */
/*
 * http_front: the REST and SSE front on libmicrohttpd, one thread per
 * connection. It turns HTTP into pipeline inputs and pipeline output into
 * HTTP: JSON bodies, or an SSE stream whose content reader pumps the
 * request's own upstream transfer on the connection's own thread.
 */
#ifndef LB_HTTP_FRONT_H
#define LB_HTTP_FRONT_H

#include "config.h"

struct http_front;

/* Listen as cfg->server says (port 0 = any free port). Returns NULL with
 * a logged error on failure. */
struct http_front *http_front_start(const struct config *cfg);
/* The port actually bound. */
unsigned http_front_port(const struct http_front *f);
/* Stop accepting, give in-flight requests up to timeout_s to finish,
 * then close everything and free f. */
void http_front_stop(struct http_front *f, unsigned timeout_s);

#endif
