/* SPDX-License-Identifier: MIT */
/*
 * listener: owns the listening socket so that HTTP and WebSocket share one
 * port, as the original LLM Bridge did (ws://host:1219/v1/ws). An acceptor
 * thread accepts each connection, peeks at its request line without
 * consuming it (MSG_PEEK), and hands "GET /v1/ws" to the WebSocket front
 * and everything else to the HTTP front. The bytes stay in the socket, so
 * whichever front gets it parses the request from the start.
 */
#ifndef LB_LISTENER_H
#define LB_LISTENER_H

#include <sys/socket.h>

#include "config.h"

enum listener_kind { LISTENER_HTTP, LISTENER_WS };

/* Take ownership of fd (a connected socket). Called on the acceptor
 * thread; must not block for long. */
typedef void (*listener_hand_fn)(void *ud, enum listener_kind kind, int fd,
				 const struct sockaddr *addr, socklen_t len);

struct listener;

/* Bind and listen as cfg->server says, start the acceptor. ws_path is the
 * WebSocket path ("/v1/ws"), or NULL to send everything to HTTP. Returns
 * NULL with a logged error. */
struct listener *listener_start(const struct config *cfg, const char *ws_path,
				listener_hand_fn hand, void *ud);
unsigned listener_port(const struct listener *l);
/* Stop accepting: close the listening socket and the connections that
 * were still being classified, join the acceptor, free l. */
void listener_stop(struct listener *l);

/* Classify the first bytes of a connection: LISTENER_WS or LISTENER_HTTP
 * when decided, -1 when more bytes are needed. Exposed for unit tests. */
int listener_classify(const char *bytes, size_t len, const char *ws_path);

#endif
