/* SPDX-License-Identifier: MIT */
/*
 * ws_front: the WebSocket front at /v1/ws. libwebsockets runs on its own
 * service thread and never blocks; each chat request runs through the
 * shared pipeline on a worker thread, whose sink pushes finished messages
 * to the connection's bounded outbox and wakes the service thread with
 * lws_cancel_service(). The service thread writes the outbox on that
 * wake-up, and from WRITEABLE whatever the socket could not take at once.
 * A full outbox blocks the worker, which stops reading from the
 * upstream: a slow reader slows the provider, it never grows our memory.
 */
#ifndef LB_WS_FRONT_H
#define LB_WS_FRONT_H

#include <sys/socket.h>

#include "apierr.h"
#include "config.h"
#include "reqhead.h"

#define WS_PATH "/v1/ws"

struct ws_front;

/* Create the libwebsockets context (no listening socket of its own) and
 * start the service thread. NULL with a logged error on failure. */
struct ws_front *ws_front_start(const struct config *cfg);
/* Hand over a connected socket whose first bytes are a GET for WS_PATH.
 * Thread-safe; takes ownership of fd. */
void ws_front_add(struct ws_front *f, int fd, const struct sockaddr *addr,
		  socklen_t len);
/* The upgrade request's head as the listener parsed it: 0 when it is a
 * WebSocket handshake this front accepts, else -1 with the error to answer
 * (400 not an upgrade or a bad key, 426 a version other than 13, 403 an
 * Origin outside server.cors_origins, 401 a wrong Authorization) and, in
 * *extra, header lines to send with it or NULL. */
int ws_front_check_upgrade(const struct reqhead *h, struct api_error *err,
			   const char **extra);
/* Open WebSocket connections, adopted or waiting to be. */
unsigned ws_front_connections(struct ws_front *f);
/* Let running requests finish for up to drain_s seconds, then close every
 * socket, stop the service thread and free f. NULL is a no-op. */
void ws_front_stop(struct ws_front *f, unsigned drain_s);

#endif
