/* SPDX-License-Identifier: MIT */
/*
 * listener: one port for HTTP and WebSocket; see listener.h.
 *
 * A new connection rarely has its request head in the socket at the moment
 * it is accepted, and a slow client must not stall every other accept, so
 * undecided connections wait in a pending set polled together with the
 * listening socket, each with SO_RCVLOWAT just above what it has shown,
 * so poll wakes only for new bytes. A head that is not complete within
 * server.header_timeout gets 408.
 */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "pipeline.h"
#include "tls.h"
#include "util.h"

#define MAX_PENDING 4096
#define MAX_CLOSING 1024
#define LINGER_MS 2000
#define LINGER_MAX_BYTES ((size_t)1 << 20)
#define PEEK_BYTES 64

struct pending {
	int fd;
	struct sockaddr_storage addr;
	socklen_t len;
	uint64_t since_ms;
	size_t seen;   /* bytes in the socket at the last peek */
};

/* An answered connection being drained before it is closed. */
struct closing {
	int fd;
	uint64_t until_ms;
	size_t drained;
};

struct listener {
	int lfd;
	int wake[2];            /* a byte on wake[1] stops the acceptor */
	pthread_t thread;
	unsigned port;
	char *ws_path;
	listener_hand_fn hand;
	listener_load_fn load;
	void *ud;
	unsigned max_connections;
	uint64_t header_timeout_ms;
	size_t max_header_bytes;
	uint64_t max_body;      /* when no config snapshot is current */
	char *head;             /* peek buffer, max_header_bytes + 1 */
	struct pending *pending;   /* acceptor thread only */
	size_t n_pending;
	struct closing *closing;   /* acceptor thread only */
	size_t n_closing;
	struct pollfd *pfds;       /* acceptor thread only */
	pthread_mutex_t tls_lock;
	struct tls_ctx *tls;       /* {tls_lock}; NULL: plain TCP */
};

int listener_classify(const char *bytes, size_t len, const char *ws_path)
{
	char want[PEEK_BYTES];
	size_t wlen;

	if (!ws_path)
		return LISTENER_HTTP;
	wlen = (size_t)snprintf(want, sizeof(want), "GET %s", ws_path);
	if (wlen >= sizeof(want))
		return LISTENER_HTTP;
	if (len <= wlen)
		return memcmp(bytes, want, len) == 0 ? -1 : LISTENER_HTTP;
	if (memcmp(bytes, want, wlen) != 0)
		return LISTENER_HTTP;
	/* "GET /v1/ws" must end there: "GET /v1/wsx" is another path */
	return (bytes[wlen] == ' ' || bytes[wlen] == '?') ? LISTENER_WS :
	       LISTENER_HTTP;
}

/* Wake poll only when more than have bytes are queued: the head is
 * peeked, never consumed, so plain POLLIN would fire at once again. */
static void set_lowat(int fd, size_t have)
{
	int v = have + 1 > (size_t)INT32_MAX ? INT32_MAX : (int)(have + 1);

	setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &v, sizeof(v));
}

/* Answer err on fd and drain it before closing (see listener.h). */
static void refuse(struct listener *l, int fd, const struct api_error *err,
		   const char *extra)
{
	struct buf b;
	ssize_t n;

	buf_init(&b, 0);
	reqhead_error_response(&b, err, extra);
	n = send(fd, b.data, b.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	buf_free(&b);
	set_lowat(fd, 0);
	if (n < 0 || shutdown(fd, SHUT_WR) < 0 || l->n_closing >= MAX_CLOSING) {
		close(fd);
		return;
	}
	l->closing[l->n_closing++] = (struct closing){
		.fd = fd, .until_ms = now_ms() + LINGER_MS };
}

/* Read and drop; true when the connection is done with. */
static bool drain(struct closing *c)
{
	char tmp[16384];

	for (;;) {
		ssize_t n = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
			       errno != EINTR))
			return true;
		if (n < 0)
			return false;
		c->drained += (size_t)n;
		if (c->drained > LINGER_MAX_BYTES)
			return true;
	}
}

static uint64_t max_body(const struct listener *l)
{
	struct config *cfg = pipeline_config_acquire();
	uint64_t v = cfg ? cfg->server.max_body_bytes : l->max_body;

	config_release(cfg);
	return v;
}

/* Peek and decide: 1 handed over or answered, 0 undecided, -1 closed. */
static int try_hand(struct listener *l, struct pending *p)
{
	ssize_t n = recv(p->fd, l->head, l->max_header_bytes + 1,
			 MSG_PEEK | MSG_DONTWAIT);
	struct reqhead h;
	struct api_error err;
	const char *extra = NULL;
	enum listener_kind kind;

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		       errno != EINTR)) {
		close(p->fd);
		return -1;
	}
	if (n < 0)
		return 0;
	switch (reqhead_parse(l->head, (size_t)n, l->max_header_bytes,
			      max_body(l), l->ws_path, &h, &err)) {
	case REQHEAD_MORE:
		if ((size_t)n > p->seen)
			set_lowat(p->fd, (size_t)n);
		p->seen = (size_t)n;
		return 0;
	case REQHEAD_BAD:
		refuse(l, p->fd, &err, NULL);
		return 1;
	case REQHEAD_OK:
		break;
	}
	set_lowat(p->fd, 0);
	kind = h.ws_path ? LISTENER_WS : LISTENER_HTTP;
	if (l->hand(l->ud, kind, p->fd, (struct sockaddr *)&p->addr, p->len,
		    &h, &err, &extra) < 0)
		refuse(l, p->fd, &err, extra);
	return 1;
}

static unsigned total_load(const struct listener *l)
{
	return (unsigned)l->n_pending + (l->load ? l->load(l->ud) : 0);
}

/* With TLS on, swap *fd for the plaintext end of a new tunnel. */
static int tls_wrap(struct listener *l, int *fd)
{
	struct tls_ctx *ctx;

	pthread_mutex_lock(&l->tls_lock);
	ctx = l->tls ? tls_ctx_retain(l->tls) : NULL;
	pthread_mutex_unlock(&l->tls_lock);
	if (!ctx)
		return 0;
	*fd = tls_tunnel_start(ctx, *fd);
	tls_ctx_release(ctx);
	return *fd < 0 ? -1 : 0;
}

void listener_set_tls(struct listener *l, struct tls_ctx *ctx)
{
	struct tls_ctx *old;

	if (ctx)
		tls_ctx_retain(ctx);
	pthread_mutex_lock(&l->tls_lock);
	old = l->tls;
	l->tls = ctx;
	pthread_mutex_unlock(&l->tls_lock);
	tls_ctx_release(old);
}

static void accept_all(struct listener *l)
{
	while (l->n_pending < MAX_PENDING) {
		struct pending *p = &l->pending[l->n_pending];
		int one = 1;

		p->len = sizeof(p->addr);
		p->fd = accept4(l->lfd, (struct sockaddr *)&p->addr, &p->len,
				SOCK_CLOEXEC);
		if (p->fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				log_warn("http", "accept: out of file "
					 "descriptors");
			return;
		}
		setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* from here on, only the plaintext end is seen */
		if (tls_wrap(l, &p->fd) < 0)
			continue;
		p->since_ms = now_ms();
		p->seen = 0;
		if (total_load(l) >= l->max_connections) {
			struct api_error err;

			apierr_set(&err, 503, "server_error",
				   "too_many_connections", NULL,
				   "The gateway is serving server."
				   "max_connections (%u) connections; retry "
				   "shortly", l->max_connections);
			refuse(l, p->fd, &err, "Retry-After: 1\r\n");
			continue;
		}
		if (try_hand(l, p) == 0)
			l->n_pending++;
	}
}

/* The head did not arrive within server.header_timeout: 408, or a plain
 * close for a connection that never said anything. */
static void head_timeout(struct listener *l, struct pending *p)
{
	struct api_error err;

	if (p->seen == 0) {
		close(p->fd);
		return;
	}
	apierr_set(&err, 408, "invalid_request_error", "request_timeout", NULL,
		   "The request headers did not arrive within %llu s "
		   "(server.header_timeout)",
		   (unsigned long long)(l->header_timeout_ms / 1000));
	refuse(l, p->fd, &err, NULL);
}

/* Poll the listening socket, the wake pipe, the undecided and the
 * closing. */
static void *acceptor(void *arg)
{
	struct listener *l = arg;

	for (;;) {
		size_t n = 0, i, np, nc;
		uint64_t now;

		l->pfds[n++] = (struct pollfd){ .fd = l->wake[0], .events = POLLIN };
		l->pfds[n++] = (struct pollfd){ .fd = l->lfd, .events = POLLIN };
		np = l->n_pending;
		for (i = 0; i < np; i++)
			l->pfds[n++] = (struct pollfd){ .fd = l->pending[i].fd,
							.events = POLLIN | POLLRDHUP };
		nc = l->n_closing;
		for (i = 0; i < nc; i++)
			l->pfds[n++] = (struct pollfd){ .fd = l->closing[i].fd,
							.events = POLLIN };
		if (poll(l->pfds, n, np || nc ? 250 : -1) < 0 &&
		    errno != EINTR)
			break;
		if (l->pfds[0].revents)
			break;
		now = now_ms();
		/* the closing first: the pending step may add to them */
		for (i = nc; i-- > 0;) {
			struct closing *c = &l->closing[i];

			if ((l->pfds[2 + np + i].revents && drain(c)) ||
			    now >= c->until_ms) {
				close(c->fd);
				*c = l->closing[--l->n_closing];
			}
		}
		for (i = np; i-- > 0;) {
			struct pending *p = &l->pending[i];
			int r = 0;

			if (l->pfds[i + 2].revents)
				r = try_hand(l, p);
			/* the client stopped sending with its head unfinished */
			if (r == 0 && (l->pfds[i + 2].revents &
				       (POLLRDHUP | POLLHUP | POLLERR))) {
				close(p->fd);
				r = -1;
			}
			if (r == 0 && now - p->since_ms > l->header_timeout_ms) {
				head_timeout(l, p);
				r = 1;
			}
			if (r != 0)
				*p = l->pending[--l->n_pending];
		}
		if (l->pfds[1].revents)
			accept_all(l);
	}
	return NULL;
}

static int bind_socket(const struct config *cfg, unsigned *port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET6, cfg->server.host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)cfg->server.port);
		len = sizeof(*in6);
	} else {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)cfg->server.port);
		if (strcmp(cfg->server.host, "localhost") == 0)
			in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		else if (inet_pton(AF_INET, cfg->server.host,
				   &in4->sin_addr) != 1) {
			log_error("http", "server.host '%s' is not an IP "
				  "address", cfg->server.host);
			return -1;
		}
		len = sizeof(*in4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
		log_error("http", "cannot listen on %s:%u: %s",
			  cfg->server.host, cfg->server.port, strerror(errno));
		close(fd);
		return -1;
	}
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port = ntohs(ss.ss_family == AF_INET6 ? in6->sin6_port :
		      in4->sin_port);
	return fd;
}

struct listener *listener_start(const struct config *cfg, const char *ws_path,
				listener_hand_fn hand, listener_load_fn load,
				void *ud, struct tls_ctx *tls)
{
	struct listener *l = xcalloc(1, sizeof(*l));

	pthread_mutex_init(&l->tls_lock, NULL);
	l->tls = tls ? tls_ctx_retain(tls) : NULL;
	l->max_connections = cfg->server.max_connections;
	l->header_timeout_ms = (uint64_t)cfg->server.header_timeout_s * 1000;
	l->max_header_bytes = cfg->server.max_header_bytes;
	l->max_body = cfg->server.max_body_bytes;
	l->load = load;

	l->lfd = bind_socket(cfg, &l->port);
	if (l->lfd < 0)
		goto fail;
	if (pipe2(l->wake, O_CLOEXEC) < 0)
		goto fail;
	l->ws_path = xstrdup(ws_path);
	l->hand = hand;
	l->ud = ud;
	l->pending = xcalloc(MAX_PENDING, sizeof(*l->pending));
	l->closing = xcalloc(MAX_CLOSING, sizeof(*l->closing));
	l->head = xmalloc(l->max_header_bytes + 1);
	l->pfds = xcalloc(MAX_PENDING + MAX_CLOSING + 2, sizeof(*l->pfds));
	if (pthread_create(&l->thread, NULL, acceptor, l) != 0)
		goto fail;
	return l;
fail:
	if (l->lfd >= 0)
		close(l->lfd);
	free(l->pending);
	free(l->closing);
	free(l->head);
	free(l->pfds);
	free(l->ws_path);
	tls_ctx_release(l->tls);
	pthread_mutex_destroy(&l->tls_lock);
	free(l);
	return NULL;
}

unsigned listener_port(const struct listener *l)
{
	return l->port;
}

void listener_stop(struct listener *l)
{
	if (!l)
		return;
	if (write(l->wake[1], "x", 1) < 0)
		log_warn("http", "cannot wake the acceptor: %s", strerror(errno));
	pthread_join(l->thread, NULL);
	for (size_t i = 0; i < l->n_pending; i++)
		close(l->pending[i].fd);
	for (size_t i = 0; i < l->n_closing; i++)
		close(l->closing[i].fd);
	close(l->lfd);
	close(l->wake[0]);
	close(l->wake[1]);
	free(l->pending);
	free(l->closing);
	free(l->head);
	free(l->pfds);
	free(l->ws_path);
	tls_ctx_release(l->tls);
	pthread_mutex_destroy(&l->tls_lock);
	free(l);
}
