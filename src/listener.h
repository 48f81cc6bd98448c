/* SPDX-License-Identifier: MIT */
/*
 * listener: owns the listening socket so that HTTP and WebSocket share one
 * port, as the original LLM Bridge did (ws://host:1219/v1/ws). An acceptor
 * thread accepts each connection, peeks at its request line without
 * consuming it (MSG_PEEK), and hands "GET /v1/ws" to the WebSocket front
 * and everything else to the HTTP front. The bytes stay in the socket, so
 * whichever front gets it parses the request from the start.
 *
 * The first request's head is waited for here, in the poll set, not in a
 * front: a client that sends it a byte a second costs a pollfd, not a
 * thread, and gets 408 after server.header_timeout; a head that is too
 * large or malformed is answered 431/400/505 in OpenAI's error shape (see
 * reqhead.h). Error answers end in a lingering close: the rest of what the
 * client sends is read and dropped for up to two seconds, so the client's
 * TCP stack does not discard the answer on a reset.
 */
#ifndef LB_LISTENER_H
#define LB_LISTENER_H

#include <sys/socket.h>

#include "apierr.h"
#include "config.h"
#include "reqhead.h"

enum listener_kind { LISTENER_HTTP, LISTENER_WS };

/* Take ownership of fd (a connected socket whose request head, still
 * unread in the socket, passed reqhead_parse). Called on the acceptor
 * thread; must not block for long. Returns 0 when the front took fd, or
 * -1 with err filled (and *extra a header block or NULL): the listener
 * then answers with that error and closes fd. */
typedef int (*listener_hand_fn)(void *ud, enum listener_kind kind, int fd,
				const struct sockaddr *addr, socklen_t len,
				const struct reqhead *head,
				struct api_error *err, const char **extra);
/* How many connections the fronts hold now. */
typedef unsigned (*listener_load_fn)(void *ud);

struct listener;

/* Bind and listen as cfg->server says, start the acceptor. ws_path is the
 * WebSocket path ("/v1/ws"), or NULL to send everything to HTTP. A new
 * connection beyond server.max_connections (those the fronts hold plus
 * those still sending their head) is answered 503. Returns NULL with a
 * logged error. */
struct tls_ctx;
/* tls: serve HTTPS/WSS with it (the listener takes a reference), or NULL. */
struct listener *listener_start(const struct config *cfg, const char *ws_path,
				listener_hand_fn hand, listener_load_fn load,
				void *ud, struct tls_ctx *tls);
unsigned listener_port(const struct listener *l);
/* Serve TLS with ctx from the next accepted connection on (NULL: plain).
 * Takes its own reference. Thread-safe (SIGHUP swaps certificates). */
void listener_set_tls(struct listener *l, struct tls_ctx *ctx);
/* Stop accepting: close the listening socket and the connections that
 * were still being classified, join the acceptor, free l. */
void listener_stop(struct listener *l);

/* Classify the first bytes of a connection: LISTENER_WS or LISTENER_HTTP
 * when decided, -1 when more bytes are needed. Exposed for unit tests. */
int listener_classify(const char *bytes, size_t len, const char *ws_path);

#endif
