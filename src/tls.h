/* SPDX-License-Identifier: MIT */
/*
 * tls: HTTPS and WSS on the one port, terminated with GnuTLS before the
 * listener looks at a connection.
 *
 * Why here and not in libmicrohttpd: the listener tells HTTP from
 * WebSocket by peeking at the request line, which TLS hides, and a
 * WebSocket upgrade that libmicrohttpd accepted cannot be handed to
 * libwebsockets (libmicrohttpd answers the upgrade itself, libwebsockets
 * insists on doing the handshake). So each TLS connection gets a tunnel:
 * a thread that does the handshake and then moves bytes between the TCP
 * socket (ciphertext) and one end of a socketpair (plaintext). The other
 * end goes through the listener exactly as a plain TCP connection would,
 * so both fronts, their timeouts and limits, work unchanged.
 *
 * A context is reference-counted: SIGHUP swaps in one built from renewed
 * files while tunnels on the old one finish.
 */
#ifndef LB_TLS_H
#define LB_TLS_H

#include "buf.h"

struct tls_ctx;

/* Load a PEM certificate chain and its private key. NULL with a message
 * appended to err when either cannot be read or they do not match. */
struct tls_ctx *tls_ctx_new(const char *cert_file, const char *key_file,
			    struct buf *err);
struct tls_ctx *tls_ctx_retain(struct tls_ctx *ctx);
/* Drop a reference; the last one frees. NULL is a no-op. */
void tls_ctx_release(struct tls_ctx *ctx);

/*
 * Start a tunnel for an accepted TCP connection. Takes ownership of
 * tcp_fd. Returns the plaintext end (owned by the caller, a SOCK_STREAM
 * socket that reads what the client sent once decrypted and encrypts what
 * is written to it), or -1 (tcp_fd closed). The handshake runs on the
 * tunnel's thread; a client that fails it just sees its connection
 * closed, and the plaintext end reads EOF.
 */
int tls_tunnel_start(struct tls_ctx *ctx, int tcp_fd);

/* Tunnels still running (tests, drain). */
int tls_tunnels_active(void);

#endif
