/* SPDX-License-Identifier: MIT */
/*
 * tls: GnuTLS tunnels in front of the listener; see tls.h.
 *
 * A tunnel thread blocks in poll() on its two sockets and copies whole
 * records: what gnutls_record_recv() returns goes to the plaintext socket
 * in one write, and what the fronts write there goes out as one record,
 * so an SSE event still leaves in one TLS record and is not held back.
 */
#include "tls.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "log.h"
#include "util.h"

#define HANDSHAKE_TIMEOUT_MS 10000
#define TUNNEL_STACK_SIZE ((size_t)64 * 1024)
#define RECORD_MAX 16384

struct tls_ctx {
	atomic_int refs;
	gnutls_certificate_credentials_t creds;
	gnutls_priority_t prio;
};

struct tunnel {
	struct tls_ctx *ctx;
	int tcp;      /* ciphertext, to the client */
	int plain;    /* our end of the socketpair */
	gnutls_session_t session;
};

static atomic_int tunnels_active;

struct tls_ctx *tls_ctx_new(const char *cert_file, const char *key_file,
			    struct buf *err)
{
	struct tls_ctx *ctx = xcalloc(1, sizeof(*ctx));
	int rc;

	atomic_init(&ctx->refs, 1);
	rc = gnutls_certificate_allocate_credentials(&ctx->creds);
	if (rc == GNUTLS_E_SUCCESS)
		rc = gnutls_certificate_set_x509_key_file(ctx->creds, cert_file,
				key_file, GNUTLS_X509_FMT_PEM);
	if (rc < 0) {
		buf_printf(err, "server.tls: cannot load certificate %s with "
			   "key %s: %s\n", cert_file, key_file,
			   gnutls_strerror(rc));
		goto fail;
	}
	/* the system's policy (Debian: /etc/gnutls/config), TLS 1.2+ */
	rc = gnutls_priority_init(&ctx->prio,
				  "@SYSTEM:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
				  NULL);
	if (rc < 0)
		rc = gnutls_priority_init(&ctx->prio, "NORMAL:-VERS-ALL:"
					  "+VERS-TLS1.3:+VERS-TLS1.2", NULL);
	if (rc < 0) {
		buf_printf(err, "server.tls: priority string: %s\n",
			   gnutls_strerror(rc));
		goto fail;
	}
	return ctx;
fail:
	if (ctx->creds)
		gnutls_certificate_free_credentials(ctx->creds);
	free(ctx);
	return NULL;
}

struct tls_ctx *tls_ctx_retain(struct tls_ctx *ctx)
{
	atomic_fetch_add(&ctx->refs, 1);
	return ctx;
}

void tls_ctx_release(struct tls_ctx *ctx)
{
	if (!ctx || atomic_fetch_sub(&ctx->refs, 1) != 1)
		return;
	gnutls_priority_deinit(ctx->prio);
	gnutls_certificate_free_credentials(ctx->creds);
	free(ctx);
}

int tls_tunnels_active(void)
{
	return atomic_load(&tunnels_active);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Client -> fronts: 0 to go on, -1 when the client is done or gone. */
static int pump_in(struct tunnel *t, char *buf)
{
	ssize_t n;

	do {
		n = gnutls_record_recv(t->session, buf, RECORD_MAX);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			return 0;
		if (n <= 0) {
			/* EOF or a fatal alert: tell the front the client
			 * is done sending, let it finish answering */
			shutdown(t->plain, SHUT_WR);
			return -1;
		}
		if (write_all(t->plain, buf, (size_t)n) < 0)
			return -1;
	} while (gnutls_record_check_pending(t->session) > 0);
	return 0;
}

/* Fronts -> client: 0 to go on, -1 when the front closed or the client
 * went away. */
static int pump_out(struct tunnel *t, char *buf)
{
	ssize_t n = recv(t->plain, buf, RECORD_MAX, 0), w;
	size_t off = 0;

	if (n < 0 && errno == EINTR)
		return 0;
	if (n <= 0) {
		gnutls_bye(t->session, GNUTLS_SHUT_WR);
		return -1;
	}
	while (off < (size_t)n) {
		w = gnutls_record_send(t->session, buf + off, (size_t)n - off);
		if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED)
			continue;
		if (w < 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

static void relay(struct tunnel *t)
{
	char *buf = xmalloc(RECORD_MAX);
	bool in_open = true;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = in_open ? t->tcp : -1, .events = POLLIN },
			{ .fd = t->plain, .events = POLLIN },
		};

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR) && in_open &&
		    pump_in(t, buf) < 0)
			in_open = false;
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR) &&
		    pump_out(t, buf) < 0)
			break;
		if (p[0].revents & POLLERR)
			break;
	}
	free(buf);
}

static void *tunnel_main(void *arg)
{
	struct tunnel *t = arg;
	int rc;

	gnutls_transport_set_int(t->session, t->tcp);
	gnutls_handshake_set_timeout(t->session, HANDSHAKE_TIMEOUT_MS);
	do {
		rc = gnutls_handshake(t->session);
	} while (rc < 0 && !gnutls_error_is_fatal(rc));
	if (rc < 0)
		log_debug("tls", "handshake failed: %s", gnutls_strerror(rc));
	else
		relay(t);
	gnutls_deinit(t->session);
	close(t->tcp);
	close(t->plain);
	tls_ctx_release(t->ctx);
	free(t);
	atomic_fetch_sub(&tunnels_active, 1);
	return NULL;
}

int tls_tunnel_start(struct tls_ctx *ctx, int tcp_fd)
{
	struct tunnel *t = xcalloc(1, sizeof(*t));
	pthread_attr_t attr;
	pthread_t tid;
	int sv[2] = { -1, -1 };

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		goto fail;
	if (gnutls_init(&t->session, GNUTLS_SERVER | GNUTLS_NO_SIGNAL) < 0)
		goto fail;
	gnutls_priority_set(t->session, ctx->prio);
	gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, ctx->creds);
	gnutls_certificate_server_set_request(t->session, GNUTLS_CERT_IGNORE);
	t->ctx = tls_ctx_retain(ctx);
	t->tcp = tcp_fd;
	t->plain = sv[0];
	atomic_fetch_add(&tunnels_active, 1);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, TUNNEL_STACK_SIZE);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&tid, &attr, tunnel_main, t) != 0) {
		pthread_attr_destroy(&attr);
		atomic_fetch_sub(&tunnels_active, 1);
		tls_ctx_release(t->ctx);
		gnutls_deinit(t->session);
		goto fail;
	}
	pthread_attr_destroy(&attr);
	return sv[1];
fail:
	log_warn("tls", "cannot start a TLS tunnel: %s", strerror(errno));
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	close(tcp_fd);
	free(t);
	return -1;
}
