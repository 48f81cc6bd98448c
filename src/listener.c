/* SPDX-License-Identifier: MIT */
/*
 * listener: one port for HTTP and WebSocket; see listener.h.
 *
 * A new connection rarely has its request line in the socket at the moment
 * it is accepted, and a slow client must not stall every other accept, so
 * undecided connections wait in a small pending set polled together with
 * the listening socket. A connection that has not shown its first bytes
 * within CLASSIFY_TIMEOUT_MS goes to the HTTP front, whose own timeouts
 * then apply.
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

#include "log.h"
#include "util.h"

#define MAX_PENDING 4096
#define CLASSIFY_TIMEOUT_MS 10000
#define PEEK_BYTES 64

struct pending {
	int fd;
	struct sockaddr_storage addr;
	socklen_t len;
	uint64_t since_ms;
};

struct listener {
	int lfd;
	int wake[2];            /* a byte on wake[1] stops the acceptor */
	pthread_t thread;
	unsigned port;
	char *ws_path;
	listener_hand_fn hand;
	void *ud;
	struct pending *pending;   /* acceptor thread only */
	size_t n_pending;
	struct pollfd *pfds;       /* acceptor thread only */
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

/* Peek and decide: 1 handed over, 0 undecided, -1 closed. */
static int try_hand(struct listener *l, struct pending *p)
{
	char buf[PEEK_BYTES];
	ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
	int kind;

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		       errno != EINTR)) {
		close(p->fd);
		return -1;
	}
	if (n < 0)
		return 0;
	kind = listener_classify(buf, (size_t)n, l->ws_path);
	if (kind < 0 && (size_t)n < sizeof(buf))
		return 0;
	l->hand(l->ud, kind < 0 ? LISTENER_HTTP : (enum listener_kind)kind,
		p->fd, (struct sockaddr *)&p->addr, p->len);
	return 1;
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
		p->since_ms = now_ms();
		if (try_hand(l, p) == 0)
			l->n_pending++;
	}
}

/* Poll the listening socket, the wake pipe and the undecided. */
static void *acceptor(void *arg)
{
	struct listener *l = arg;

	for (;;) {
		size_t n = 0, i;
		uint64_t now;

		l->pfds[n++] = (struct pollfd){ .fd = l->wake[0], .events = POLLIN };
		l->pfds[n++] = (struct pollfd){ .fd = l->lfd, .events = POLLIN };
		for (i = 0; i < l->n_pending; i++)
			l->pfds[n++] = (struct pollfd){ .fd = l->pending[i].fd,
							.events = POLLIN };
		if (poll(l->pfds, n, l->n_pending ? 250 : -1) < 0 &&
		    errno != EINTR)
			break;
		if (l->pfds[0].revents)
			break;
		now = now_ms();
		for (i = 0; i < l->n_pending;) {
			struct pending *p = &l->pending[i];
			int r = 0;

			if (l->pfds[i + 2].revents)
				r = try_hand(l, p);
			if (r == 0 && now - p->since_ms > CLASSIFY_TIMEOUT_MS) {
				l->hand(l->ud, LISTENER_HTTP, p->fd,
					(struct sockaddr *)&p->addr, p->len);
				r = 1;
			}
			if (r != 0) {
				/* keep pfds[i + 2] aligned: move the last one */
				*p = l->pending[--l->n_pending];
				l->pfds[i + 2] = l->pfds[l->n_pending + 2];
				continue;
			}
			i++;
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
				listener_hand_fn hand, void *ud)
{
	struct listener *l = xcalloc(1, sizeof(*l));

	l->lfd = bind_socket(cfg, &l->port);
	if (l->lfd < 0)
		goto fail;
	if (pipe2(l->wake, O_CLOEXEC) < 0)
		goto fail;
	l->ws_path = xstrdup(ws_path);
	l->hand = hand;
	l->ud = ud;
	l->pending = xcalloc(MAX_PENDING, sizeof(*l->pending));
	l->pfds = xcalloc(MAX_PENDING + 2, sizeof(*l->pfds));
	if (pthread_create(&l->thread, NULL, acceptor, l) != 0)
		goto fail;
	return l;
fail:
	if (l->lfd >= 0)
		close(l->lfd);
	free(l->pending);
	free(l->pfds);
	free(l->ws_path);
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
	close(l->lfd);
	close(l->wake[0]);
	close(l->wake[1]);
	free(l->pending);
	free(l->pfds);
	free(l->ws_path);
	free(l);
}
