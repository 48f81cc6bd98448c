/* SPDX-License-Identifier: MIT */
/*
 * upstream: libcurl transfers, with warm connections kept between them;
 * see upstream.h.
 *
 * Why a multi handle per transfer rather than curl_easy_perform: the
 * owning thread must be able to stop between events (to hand one SSE event
 * to the client), to watch the client's socket for a disconnect while the
 * provider is silent, and to be woken for a cancel. curl_multi_poll gives
 * all three with no extra thread.
 *
 * Why a pool of easy+multi pairs rather than a shared connection cache:
 * libcurl does not support sharing connections between threads that use
 * them at the same time (CURLSHOPT_SHARE(3)); doing it anyway corrupted
 * freed requests under load. Each multi handle keeps its own connection
 * cache, so a finished transfer's pair goes back to a free list with its
 * upstream connection still open, and the next request on any thread
 * takes it whole: no two threads ever touch one cache, the connection is
 * reused, and the handles, their buffers and the multi's wakeup
 * socketpair are not rebuilt for every request. DNS answers and TLS
 * sessions, which libcurl does support sharing, stay in the CURLSH.
 */
#include "upstream.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "log.h"
#include "util.h"

/*
 * How many idle pairs the pool keeps. While requests run, every pair
 * that ends cleanly goes back: there are never more than the transfers
 * that ran at once, and a cap below that made a steady 256 concurrent
 * requests close and reopen a thousand provider connections in five
 * seconds (with TLS, a handshake each). A pair idle for longer than
 * UPSTREAM_POOL_IDLE_US is freed when a pair next goes back (the pool is
 * walked for them at most once a second), and once the daemon is quiet
 * upstream_pool_trim() keeps the warmest UPSTREAM_POOL_QUIET_KEEP: what a
 * burst left behind does not stay.
 */

static CURLSH *share;
static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

/* A pooled transfer: its easy handle, the multi handle that keeps its
 * connection, and the parsed URL of its last transfer. Parsing the URL
 * again for every transfer cost libcurl more than all the options set;
 * with CURLOPT_CURLU, a pair that goes back to the same provider endpoint
 * (the usual case) skips it. */
struct pair {
	CURL *easy;
	CURLM *multi;
	CURLU *url;
	char *url_text;
	struct pair *next;      /* in the pool */
	uint64_t idle_since_us; /* when it went back to the pool */
};

/* Idle pairs, the one given back last at the head: taken from there, so
 * the list runs from warmest to coldest, and the cold ones are its tail. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pair *pool;       /* {pool_lock} */
static size_t pool_size;        /* {pool_lock} */
static uint64_t pool_swept_us;  /* {pool_lock} last look for idle pairs */
#define POOL_SWEEP_US ((uint64_t)1000 * 1000)

struct upstream_call {
	/* wake_lock guards pair against upstream_wakeup() from another
	 * thread while upstream_release() hands it back */
	pthread_mutex_t wake_lock;
	struct pair *pair;  /* NULL once released */
	bool added;         /* pair's easy handle is in its multi handle */
	struct curl_slist *headers;
	upstream_body_fn on_body;
	void *ud;
	bool headers_done;
	bool finished;
	bool watch_client;  /* false once the client pipelined bytes */
	CURLcode result;
	long status;
	char retry_after[32];
	char curl_error[CURL_ERROR_SIZE];
	uint64_t started_us;
	uint64_t ttfb_us;
};

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access acc,
		       void *ud)
{
	pthread_mutex_lock(&share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	pthread_mutex_unlock(&share_locks[data]);
}

/* curl_global_init() initialises libssh2 when libcurl is built with it
 * (Debian's is), and libssh2 then loads OpenSSL's whole algorithm and
 * engine tables: 1.2 MB of libcrypto pages resident for the daemon's
 * life, a tenth of its idle memory. Transfers here are
 * HTTP(S) only (CURLOPT_PROTOCOLS_STR), so SSH's crypto is never used.
 * libssh2 initialises its crypto only on its first libssh2_init() call
 * without LIBSSH2_INIT_NO_CRYPTO; making that first call ourselves, with
 * the flag, turns libcurl's call into a reference count. The symbol is
 * looked up, not linked: a libcurl without libssh2 (Fedora's uses libssh)
 * has none, and then there is nothing to skip. */
static void skip_ssh_crypto_init(void)
{
	const int no_crypto = 0x0001; /* LIBSSH2_INIT_NO_CRYPTO, libssh2.h */
	int (*ssh2_init)(int);

	*(void **)&ssh2_init = dlsym(RTLD_DEFAULT, "libssh2_init");
	if (ssh2_init)
		ssh2_init(no_crypto);
}

int upstream_global_init(void)
{
	skip_ssh_crypto_init();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -1;
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&share_locks[i], NULL);
	share = curl_share_init();
	if (!share)
		return -1;
	curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	return 0;
}

static void pair_destroy(struct pair *p)
{
	if (!p)
		return;
	if (p->easy)
		curl_easy_cleanup(p->easy);
	if (p->multi)
		curl_multi_cleanup(p->multi);
	curl_url_cleanup(p->url);
	free(p->url_text);
	free(p);
}

void upstream_global_cleanup(void)
{
	upstream_pool_trim(0, 0);
	if (share)
		curl_share_cleanup(share);
	share = NULL;
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&share_locks[i]);
	curl_global_cleanup();
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct upstream_call *c = ud;
	size_t len = size * n;

	if (!c->ttfb_us)
		c->ttfb_us = now_us() - c->started_us;
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		/* a new header block (after a 1xx, for one): start over */
		c->headers_done = false;
		c->retry_after[0] = '\0';
	} else if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
		curl_easy_getinfo(c->pair->easy, CURLINFO_RESPONSE_CODE,
				  &c->status);
		c->headers_done = c->status >= 200;
	} else if (has_prefix_ci(p, "retry-after:")) {
		size_t off = strlen("retry-after:"), end = len;

		while (off < len && (p[off] == ' ' || p[off] == '\t'))
			off++;
		while (end > off && (p[end - 1] == '\r' || p[end - 1] == '\n' ||
				     p[end - 1] == ' '))
			end--;
		if (end - off < sizeof(c->retry_after)) {
			memcpy(c->retry_after, p + off, end - off);
			c->retry_after[end - off] = '\0';
		}
	}
	return len;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
	struct upstream_call *c = ud;
	size_t len = size * n;

	if (c->on_body && c->on_body(c->ud, c->status, p, len) != 0)
		return 0; /* makes curl fail the transfer: an abort */
	return len;
}

/* The options that are the same for every transfer of a handle: set
 * when it is made, kept while it is pooled. */
static void setup_easy_once(CURL *e)
{
	curl_easy_setopt(e, CURLOPT_SHARE, share);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	/* stream events are small; the 16 KiB default is per stream held */
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 8192L);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	/* a silent provider (before headers or mid-stream) times out after
	 * timeout_s (CURLOPT_LOW_SPEED_TIME, per transfer) */
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
}

/* An idle pair (its connection possibly warm), or a new one; NULL when
 * out of memory. The caller owns it: pair_give() or pair_destroy(). */
static struct pair *pair_take(void)
{
	struct pair *p;

	pthread_mutex_lock(&pool_lock);
	p = pool;
	if (p) {
		pool = p->next;
		pool_size--;
	}
	pthread_mutex_unlock(&pool_lock);
	/* no curl_easy_reset() on a pooled pair: what every transfer sets
	 * the same stays set, and setup_easy() sets all the rest again */
	if (p)
		return p;
	p = xcalloc(1, sizeof(*p));
	p->easy = curl_easy_init();
	p->multi = curl_multi_init();
	p->url = curl_url();
	if (!p->easy || !p->multi || !p->url) {
		pair_destroy(p);
		return NULL;
	}
	setup_easy_once(p->easy);
	return p;
}

/* Cut the pool after its keep warmest pairs, or before the first that
 * has been idle longer than max_idle_us, and return the cut-off tail for
 * the caller to free outside the lock (curl_multi_cleanup() closes
 * sockets). Called with pool_lock held. */
static struct pair *pool_cut_cold(size_t keep, uint64_t max_idle_us,
				  uint64_t now)
{
	struct pair **link = &pool, *cold;
	size_t n = 0;

	while (*link && n < keep &&
	       now - (*link)->idle_since_us <= max_idle_us) {
		link = &(*link)->next;
		n++;
	}
	cold = *link;
	*link = NULL;
	pool_size = n;
	return cold;
}

static void destroy_list(struct pair *p)
{
	while (p) {
		struct pair *next = p->next;

		pair_destroy(p);
		p = next;
	}
}

/* Keep a pair whose transfer ended cleanly; free the others, and the
 * pairs the pool has not lent out for UPSTREAM_POOL_IDLE_US. */
static void pair_give(struct pair *p, bool reusable)
{
	struct pair *cold = NULL;
	uint64_t now;

	if (!p)
		return;
	if (!reusable) {
		pair_destroy(p);
		return;
	}
	now = now_us();
	p->idle_since_us = now;
	pthread_mutex_lock(&pool_lock);
	p->next = pool;
	pool = p;
	pool_size++;
	/* the walk to the cold end, at most once a second */
	if (now - pool_swept_us >= POOL_SWEEP_US) {
		pool_swept_us = now;
		cold = pool_cut_cold(SIZE_MAX, UPSTREAM_POOL_IDLE_US, now);
	}
	pthread_mutex_unlock(&pool_lock);
	destroy_list(cold);
}

void upstream_pool_trim(size_t keep, uint64_t max_idle_us)
{
	struct pair *cold;

	pthread_mutex_lock(&pool_lock);
	cold = pool_cut_cold(keep, max_idle_us, now_us());
	pthread_mutex_unlock(&pool_lock);
	destroy_list(cold);
}

size_t upstream_pool_idle(void)
{
	size_t n;

	pthread_mutex_lock(&pool_lock);
	n = pool_size;
	pthread_mutex_unlock(&pool_lock);
	return n;
}

/* Point the pair at url, parsing it only when it differs from the one
 * its last transfer went to. -1 when libcurl refuses the URL. */
static int pair_set_url(struct pair *p, const char *url)
{
	if (p->url_text && strcmp(p->url_text, url) == 0)
		return 0;
	free(p->url_text);
	p->url_text = NULL;
	if (curl_url_set(p->url, CURLUPART_URL, url, 0) != CURLUE_OK)
		return -1;
	p->url_text = xstrdup(url);
	return 0;
}

static void setup_easy(struct upstream_call *c, const struct upstream_req *req,
		       const struct upstream_opts *o)
{
	CURL *e = c->pair->easy;
	long connect_s = o->timeout_s < 10 ? o->timeout_s : 10;

	for (size_t i = 0; i < req->n_headers; i++)
		c->headers = curl_slist_append(c->headers, req->headers[i]);
	/* no "Expect: 100-continue" round trip for large prompts */
	c->headers = curl_slist_append(c->headers, "Expect:");
	/* everything that may differ from the handle's last transfer is
	 * set, to "none" where this one has none (see setup_easy_once) */
	curl_easy_setopt(e, CURLOPT_CURLU, c->pair->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)req->body_len);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->curl_error);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, connect_s > 0 ? connect_s : 1);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, o->timeout_s);
	/* a non-streaming answer must be complete within timeout_s */
	curl_easy_setopt(e, CURLOPT_TIMEOUT, o->stream ? 0L : o->timeout_s);
	/* never pick up http_proxy, no_proxy & co from the daemon's
	 * environment: with CURLOPT_NOPROXY unset, libcurl read no_proxy
	 * (and NO_PROXY) for every transfer, and a configured proxy was
	 * bypassed for the hosts it listed */
	curl_easy_setopt(e, CURLOPT_PROXY, o->proxy ? o->proxy : "");
	curl_easy_setopt(e, CURLOPT_NOPROXY, o->no_proxy ? o->no_proxy : "");
}

/* Collect a finished transfer's result. */
static void check_done(struct upstream_call *c)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(c->pair->multi, &left))) {
		if (m->msg == CURLMSG_DONE) {
			c->finished = true;
			c->result = m->data.result;
		}
	}
}

struct upstream_call *upstream_new(const struct upstream_req *req,
				   const struct upstream_opts *opts,
				   upstream_body_fn on_body, void *ud)
{
	struct upstream_call *c = xcalloc(1, sizeof(*c));

	c->on_body = on_body;
	c->ud = ud;
	c->watch_client = true;
	pthread_mutex_init(&c->wake_lock, NULL);
	c->pair = pair_take();
	if (!c->pair) {
		c->finished = true;
		c->result = CURLE_OUT_OF_MEMORY;
		return c;
	}
	if (pair_set_url(c->pair, req->url) < 0) {
		c->finished = true;
		c->result = CURLE_URL_MALFORMAT;
		return c;
	}
	setup_easy(c, req, opts);
	return c;
}

void upstream_begin(struct upstream_call *c)
{
	int running;

	c->started_us = now_us();
	if (c->finished || !c->pair)
		return;
	curl_multi_add_handle(c->pair->multi, c->pair->easy);
	c->added = true;
	curl_multi_perform(c->pair->multi, &running);
	/* on a warm connection the whole answer can arrive right here: a
	 * pump that did not know would sleep in curl_multi_poll with no
	 * socket left to wake it */
	check_done(c);
}

/* 0 when the client is still there, -1 when its socket closed. */
static int client_state(struct upstream_call *c, int fd)
{
	char byte;
	ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n > 0) {
		/* pipelined request bytes, not a close: stop watching, or
		 * every poll would return at once */
		c->watch_client = false;
		return 0;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	return -1;
}

enum upstream_state upstream_pump(struct upstream_call *c, int client_fd,
				  int wait_ms)
{
	struct curl_waitfd extra = { .fd = client_fd, .events = CURL_WAIT_POLLIN };
	unsigned nextra = (client_fd >= 0 && c->watch_client) ? 1 : 0;
	int running, numfds = 0;

	if (!c->finished && c->pair) {
		curl_multi_poll(c->pair->multi, nextra ? &extra : NULL, nextra,
				wait_ms, &numfds);
		if (nextra && (extra.revents & (CURL_WAIT_POLLIN | POLLHUP | POLLERR)) &&
		    client_state(c, client_fd) < 0)
			return UPSTREAM_CLIENT_GONE;
		curl_multi_perform(c->pair->multi, &running);
		check_done(c);
	}
	if (!c->finished)
		return c->pair ? UPSTREAM_RUNNING : UPSTREAM_FAILED;
	return c->result == CURLE_OK ? UPSTREAM_DONE : UPSTREAM_FAILED;
}

void upstream_wakeup(struct upstream_call *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->wake_lock);
	if (c->pair)
		curl_multi_wakeup(c->pair->multi);
	pthread_mutex_unlock(&c->wake_lock);
}

bool upstream_headers_done(const struct upstream_call *c)
{
	return c->headers_done;
}

long upstream_status(const struct upstream_call *c)
{
	return c->status;
}

const char *upstream_retry_after(const struct upstream_call *c)
{
	return c->retry_after[0] ? c->retry_after : NULL;
}

unsigned long upstream_ttfb_us(const struct upstream_call *c)
{
	return (unsigned long)c->ttfb_us;
}

void upstream_error(const struct upstream_call *c, const char *provider,
		    struct api_error *err)
{
	const char *detail = c->curl_error[0] ? c->curl_error :
			     curl_easy_strerror(c->result);

	switch (c->result) {
	case CURLE_OPERATION_TIMEDOUT:
		apierr_set(err, 504, "upstream_error", "upstream_timeout", NULL,
			   "Provider '%s' did not answer in time", provider);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		apierr_set(err, 502, "upstream_error", "upstream_unreachable",
			   NULL, "Cannot reach provider '%s': %s", provider,
			   detail);
		break;
	default:
		apierr_set(err, 502, "upstream_error", "upstream_error", NULL,
			   "Transfer from provider '%s' failed: %s", provider,
			   detail);
	}
}

void upstream_release(struct upstream_call *c)
{
	struct pair *p;
	bool added;

	if (!c)
		return;
	pthread_mutex_lock(&c->wake_lock);
	p = c->pair;
	added = c->added;
	c->pair = NULL;
	c->added = false;
	pthread_mutex_unlock(&c->wake_lock);
	if (!p)
		return;
	if (added)
		curl_multi_remove_handle(p->multi, p->easy);
	/* a pooled handle keeps its options: none may point into c, at the
	 * header list or at the request body */
	curl_easy_setopt(p->easy, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(p->easy, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(p->easy, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(p->easy, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, NULL);
	/* a pair whose transfer never started is as clean as it came; of
	 * the others, only a transfer that ran to its end leaves a clean
	 * connection */
	pair_give(p, !added || (c->finished && c->result == CURLE_OK));
}

void upstream_free(struct upstream_call *c)
{
	if (!c)
		return;
	upstream_release(c);
	curl_slist_free_all(c->headers);
	pthread_mutex_destroy(&c->wake_lock);
	free(c);
}
