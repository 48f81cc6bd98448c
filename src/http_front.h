/* SPDX-License-Identifier: MIT */
/*
 * http_front: the REST and SSE front on libmicrohttpd, one thread per
 * connection. It turns HTTP into pipeline inputs and pipeline output into
 * HTTP: JSON bodies, or an SSE stream whose content reader pumps the
 * request's own upstream transfer on the connection's own thread.
 */
#ifndef LB_HTTP_FRONT_H
#define LB_HTTP_FRONT_H

#include <sys/socket.h>

#include "config.h"

struct http_front;

/* Start the HTTP engine. It listens on nothing itself: the listener hands
 * it connections with http_front_add(). Returns NULL with a logged error. */
struct http_front *http_front_start(const struct config *cfg);
/* Serve a connected socket (ownership passes to the front, which closes
 * it when done or when it cannot take it). Thread-safe. */
void http_front_add(struct http_front *f, int fd, const struct sockaddr *addr,
		    socklen_t len);
/* Connections the HTTP engine holds now. */
unsigned http_front_connections(struct http_front *f);
/* Give in-flight requests up to timeout_s to finish (the listener must
 * already be stopped), then close everything and free f. */
void http_front_stop(struct http_front *f, unsigned timeout_s);

#endif
