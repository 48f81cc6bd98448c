/* SPDX-License-Identifier: MIT */
/* Unit tests for upstream: a transfer against a small loopback server,
 * the pooled connection a released transfer leaves for the next one, a
 * status that stays readable after release, a pooled pair sent to another
 * URL, the pool after a burst (every connection kept, then trimmed to the
 * warmest, idle ones dropped), and wake-ups from another
 * thread racing a release (run under ASan and valgrind by CI). */
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"
#include "upstream.h"

/* ---- a loopback HTTP/1.1 server: keeps connections open, answers
 * each request with "ok" unless silent ---- */

#define MAX_CLIENTS 160

static struct {
	int lfd;
	unsigned port;
	pthread_t thread;
	atomic_bool stop;
	atomic_bool silent;
	atomic_int accepted;
	atomic_int requests;
	pthread_mutex_t lock;
	char last_target[64]; /* {lock} the request target last served */
} srv;

static void record_target(const char *req)
{
	const char *sp = strchr(req, ' '), *end = sp ? strchr(sp + 1, ' ') : NULL;

	pthread_mutex_lock(&srv.lock);
	snprintf(srv.last_target, sizeof(srv.last_target), "%.*s",
		 end ? (int)(end - sp - 1) : 0, end ? sp + 1 : "");
	pthread_mutex_unlock(&srv.lock);
}

static void last_target(char *out, size_t n)
{
	pthread_mutex_lock(&srv.lock);
	snprintf(out, n, "%s", srv.last_target);
	pthread_mutex_unlock(&srv.lock);
}

/* A whole request is in buf: its head and Content-Length bytes. */
static bool request_complete(const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4), *cl;
	size_t body = 0;

	if (!end)
		return false;
	cl = memmem(buf, (size_t)(end - buf), "Content-Length:", 15);
	if (cl)
		body = strtoul(cl + 15, NULL, 10);
	return len >= (size_t)(end + 4 - buf) + body;
}

static void *serve(void *arg)
{
	struct pollfd p[MAX_CLIENTS + 1];
	char buf[MAX_CLIENTS][4096];
	size_t have[MAX_CLIENTS] = { 0 };
	int n = 0;

	(void)arg;
	p[0].fd = srv.lfd;
	p[0].events = POLLIN;
	while (!atomic_load(&srv.stop)) {
		if (poll(p, (nfds_t)n + 1, 20) <= 0)
			continue;
		if ((p[0].revents & POLLIN) && n < MAX_CLIENTS) {
			int fd = accept(srv.lfd, NULL, NULL);

			if (fd >= 0) {
				p[n + 1].fd = fd;
				p[n + 1].events = POLLIN;
				p[n + 1].revents = 0; /* polled from the next round */
				have[n] = 0;
				n++;
				atomic_fetch_add(&srv.accepted, 1);
			}
		}
		for (int i = 0; i < n; i++) {
			ssize_t k;

			if (!(p[i + 1].revents & (POLLIN | POLLHUP)))
				continue;
			k = read(p[i + 1].fd, buf[i] + have[i],
				 sizeof(buf[i]) - have[i]);
			if (k <= 0) {
				/* the last client takes the slot */
				close(p[i + 1].fd);
				n--;
				p[i + 1] = p[n + 1];
				memcpy(buf[i], buf[n], have[n]);
				have[i] = have[n];
				i--;
				continue;
			}
			have[i] += (size_t)k;
			if (!request_complete(buf[i], have[i]))
				continue;
			buf[i][have[i] < sizeof(buf[i]) ? have[i]
						: sizeof(buf[i]) - 1] = '\0';
			record_target(buf[i]);
			atomic_fetch_add(&srv.requests, 1);
			have[i] = 0;
			if (!atomic_load(&srv.silent))
				(void)!write(p[i + 1].fd, "HTTP/1.1 200 OK\r\n"
					     "Content-Length: 2\r\n\r\nok", 40);
		}
	}
	for (int i = 0; i < n; i++)
		close(p[i + 1].fd);
	return NULL;
}

static void server_start(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);

	srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(srv.lfd, 0);
	ck_assert_int_eq(bind(srv.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(srv.lfd, MAX_CLIENTS), 0);
	ck_assert_int_eq(getsockname(srv.lfd, (struct sockaddr *)&sa, &len), 0);
	srv.port = ntohs(sa.sin_port);
	atomic_store(&srv.stop, false);
	atomic_store(&srv.silent, false);
	atomic_store(&srv.accepted, 0);
	atomic_store(&srv.requests, 0);
	pthread_mutex_init(&srv.lock, NULL);
	srv.last_target[0] = '\0';
	ck_assert_int_eq(pthread_create(&srv.thread, NULL, serve, NULL), 0);
}

static void setup(void)
{
	ck_assert_int_eq(upstream_global_init(), 0);
	server_start();
}

static void teardown(void)
{
	atomic_store(&srv.stop, true);
	pthread_join(srv.thread, NULL);
	close(srv.lfd);
	pthread_mutex_destroy(&srv.lock);
	upstream_global_cleanup();
}

/* ---- transfers ---- */

struct got {
	char body[64];
	size_t len;
};

static int on_body(void *ud, long status, const char *p, size_t n)
{
	struct got *g = ud;

	(void)status;
	if (g->len + n < sizeof(g->body)) {
		memcpy(g->body + g->len, p, n);
		g->len += n;
	}
	return 0;
}

/* A transfer to path on the server, or to url when path starts with no
 * slash. */
static struct upstream_call *start_to(struct upstream_req *req,
				      struct got *g, const char *path)
{
	static const struct upstream_opts opts = { .timeout_s = 5 };
	struct upstream_call *c;
	char url[128];

	memset(req, 0, sizeof(*req));
	if (path[0] == '/')
		snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", srv.port,
			 path);
	else
		snprintf(url, sizeof(url), "%s", path);
	req->url = strdup(url);
	req->body = strdup("{}");
	req->body_len = 2;
	upstream_req_add_header(req, "Content-Type", "application/json");
	memset(g, 0, sizeof(*g));
	c = upstream_new(req, &opts, on_body, g);
	upstream_begin(c);
	return c;
}

static struct upstream_call *start(struct upstream_req *req, struct got *g)
{
	return start_to(req, g, "/v1/chat/completions");
}

static enum upstream_state run(struct upstream_call *c)
{
	enum upstream_state st;

	while ((st = upstream_pump(c, -1, 100)) == UPSTREAM_RUNNING)
		;
	return st;
}

/* A transfer released as soon as it is done leaves its connection in
 * the pool for the next one, while its own call is still alive. */
START_TEST(released_transfer_leaves_its_connection)
{
	struct upstream_req r1, r2;
	struct got g1, g2;
	struct upstream_call *c1 = start(&r1, &g1), *c2;

	ck_assert_int_eq(run(c1), UPSTREAM_DONE);
	ck_assert_int_eq(upstream_status(c1), 200);
	ck_assert_int_eq((int)g1.len, 2);
	ck_assert(memcmp(g1.body, "ok", 2) == 0);
	upstream_release(c1);
	/* the released call still tells what happened */
	ck_assert_int_eq(upstream_status(c1), 200);
	ck_assert_int_eq(upstream_pump(c1, -1, 0), UPSTREAM_DONE);

	c2 = start(&r2, &g2);
	ck_assert_int_eq(run(c2), UPSTREAM_DONE);
	ck_assert_int_eq(upstream_status(c2), 200);
	ck_assert_int_eq(atomic_load(&srv.accepted), 1);
	upstream_free(c2);
	upstream_free(c1);
	upstream_req_free(&r1);
	upstream_req_free(&r2);
}
END_TEST

/* Releasing a transfer that has not finished closes its connection: a
 * half-read answer must never be handed to the next request. */
START_TEST(unfinished_transfer_is_not_pooled)
{
	struct upstream_req r1, r2;
	struct got g1, g2;
	struct upstream_call *c1, *c2;

	atomic_store(&srv.silent, true);
	c1 = start(&r1, &g1);
	ck_assert_int_eq(upstream_pump(c1, -1, 50), UPSTREAM_RUNNING);
	upstream_release(c1);
	ck_assert_int_eq(upstream_pump(c1, -1, 0), UPSTREAM_FAILED);
	upstream_free(c1);

	atomic_store(&srv.silent, false);
	c2 = start(&r2, &g2);
	ck_assert_int_eq(run(c2), UPSTREAM_DONE);
	ck_assert_int_eq(atomic_load(&srv.accepted), 2);
	upstream_free(c2);
	upstream_req_free(&r1);
	upstream_req_free(&r2);
}
END_TEST

/* A pooled pair keeps its last URL parsed; a transfer to another URL
 * must go there, not to the remembered one, and a URL libcurl refuses
 * fails that transfer alone. */
START_TEST(pooled_pair_follows_the_url)
{
	static const struct {
		const char *to;            /* a path, or a whole URL */
		enum upstream_state want;
	} steps[] = {
		{ "/a/chat", UPSTREAM_DONE }, { "/b/chat?x=1", UPSTREAM_DONE },
		{ "/b/chat?x=1", UPSTREAM_DONE }, { "/a/chat", UPSTREAM_DONE },
		{ "http://[::1", UPSTREAM_FAILED }, { "/c", UPSTREAM_DONE },
	};
	char seen[64];

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct upstream_req req;
		struct got g;
		struct upstream_call *c = start_to(&req, &g, steps[i].to);

		ck_assert_int_eq(run(c), steps[i].want);
		if (steps[i].want == UPSTREAM_DONE) {
			last_target(seen, sizeof(seen));
			ck_assert_str_eq(seen, steps[i].to);
		}
		upstream_free(c);
		upstream_req_free(&req);
	}
	/* all of it over the one connection */
	ck_assert_int_eq(atomic_load(&srv.accepted), 1);
}
END_TEST

/* upstream_new() only sets a transfer up: the caller must hold the call
 * before any callback can run, since a warm connection can bring a whole
 * short answer inside upstream_begin(). */
START_TEST(nothing_runs_before_begin)
{
	static const struct upstream_opts opts = { .timeout_s = 5 };
	struct upstream_req req;
	struct got g;
	struct upstream_call *warm = start(&req, &g), *c;

	ck_assert_int_eq(run(warm), UPSTREAM_DONE); /* a pooled connection */
	upstream_free(warm);
	memset(&g, 0, sizeof(g));
	c = upstream_new(&req, &opts, on_body, &g);
	usleep(50000);
	ck_assert_int_eq((int)g.len, 0);
	ck_assert_int_eq(atomic_load(&srv.requests), 1);
	upstream_begin(c);
	ck_assert_int_eq(run(c), UPSTREAM_DONE);
	ck_assert_int_eq((int)g.len, 2);
	ck_assert_int_eq(atomic_load(&srv.requests), 2);
	upstream_free(c);
	upstream_req_free(&req);
}
END_TEST

/* n transfers in flight at once, each to its end, then freed: every one
 * takes a pair from the pool, or a new one when the pool is empty. */
static void burst(int n)
{
	struct upstream_req *req = calloc((size_t)n, sizeof(*req));
	struct got *g = calloc((size_t)n, sizeof(*g));
	struct upstream_call **c = calloc((size_t)n, sizeof(*c));

	ck_assert(req && g && c);
	for (int i = 0; i < n; i++)
		c[i] = start(&req[i], &g[i]);
	for (int i = 0; i < n; i++) {
		ck_assert_int_eq(run(c[i]), UPSTREAM_DONE);
		ck_assert_int_eq((int)g[i].len, 2);
	}
	for (int i = 0; i < n; i++) {
		upstream_free(c[i]);
		upstream_req_free(&req[i]);
	}
	free(c);
	free(g);
	free(req);
}

/* Every connection of a burst stays warm, however many (the pool once
 * kept 128 and reopened the rest: a TLS handshake each, on a provider),
 * and the next burst of the same size opens none. */
START_TEST(burst_leaves_every_connection_warm)
{
	burst(150);
	ck_assert_int_eq(atomic_load(&srv.accepted), 150);
	ck_assert_uint_eq(upstream_pool_idle(), 150);
	burst(150);
	ck_assert_int_eq(atomic_load(&srv.accepted), 150);
	ck_assert_int_eq(atomic_load(&srv.requests), 300);
	ck_assert_uint_eq(upstream_pool_idle(), 150);
}
END_TEST

/* Trimmed, the pool keeps the pairs used last, connections open. */
START_TEST(trim_keeps_the_warmest)
{
	burst(10);
	upstream_pool_trim(4, UPSTREAM_POOL_IDLE_US);
	ck_assert_uint_eq(upstream_pool_idle(), 4);
	burst(4);
	ck_assert_int_eq(atomic_load(&srv.accepted), 10);
	burst(5);
	ck_assert_int_eq(atomic_load(&srv.accepted), 11);
	ck_assert_uint_eq(upstream_pool_idle(), 5);
}
END_TEST

/* Pairs idle longer than the limit go; the one just used stays. */
START_TEST(idle_pairs_expire)
{
	burst(3);
	usleep(30 * 1000);
	burst(1);
	ck_assert_uint_eq(upstream_pool_idle(), 3);
	upstream_pool_trim(SIZE_MAX, 20 * 1000);
	ck_assert_uint_eq(upstream_pool_idle(), 1);
	burst(1);
	ck_assert_int_eq(atomic_load(&srv.accepted), 3);
	upstream_pool_trim(0, UPSTREAM_POOL_IDLE_US);
	ck_assert_uint_eq(upstream_pool_idle(), 0);
}
END_TEST

struct waker {
	struct upstream_call *c;
	atomic_bool done;
	atomic_long wakes;
};

static void *wake_loop(void *arg)
{
	struct waker *w = arg;

	while (!atomic_load(&w->done)) {
		upstream_wakeup(w->c);
		atomic_fetch_add(&w->wakes, 1);
	}
	return NULL;
}

/* A cancel (another thread's wake-up) may come at any moment, also while
 * the owner hands the handles back: the wake-up must then find either
 * the handles or none, never freed ones. */
START_TEST(wakeups_race_release)
{
	atomic_store(&srv.silent, true);
	for (int i = 0; i < 50; i++) {
		struct upstream_req req;
		struct got g;
		struct waker w = { .c = start(&req, &g) };
		pthread_t t;

		atomic_init(&w.done, false);
		atomic_init(&w.wakes, 0);
		ck_assert_int_eq(pthread_create(&t, NULL, wake_loop, &w), 0);
		/* a pump the wake-ups cut short, then the release */
		ck_assert_int_eq(upstream_pump(w.c, -1, 1000), UPSTREAM_RUNNING);
		upstream_release(w.c);
		while (atomic_load(&w.wakes) < 10)
			usleep(100);
		atomic_store(&w.done, true);
		pthread_join(t, NULL);
		upstream_free(w.c);
		upstream_req_free(&req);
	}
}
END_TEST

static Suite *upstream_suite(void)
{
	Suite *s = suite_create("upstream");
	TCase *tc = tcase_create("upstream");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, released_transfer_leaves_its_connection);
	tcase_add_test(tc, unfinished_transfer_is_not_pooled);
	tcase_add_test(tc, pooled_pair_follows_the_url);
	tcase_add_test(tc, nothing_runs_before_begin);
	tcase_add_test(tc, burst_leaves_every_connection_warm);
	tcase_add_test(tc, trim_keeps_the_warmest);
	tcase_add_test(tc, idle_pairs_expire);
	tcase_add_test(tc, wakeups_race_release);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(upstream_suite());
}
