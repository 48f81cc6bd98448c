/* SPDX-License-Identifier: MIT */
/*
 * ws_front: libwebsockets service thread, connections, outboxes and the
 * WebSocket sink; see ws_front.h.
 *
 * Threads: the service thread owns every struct lws and is the only one to
 * call into libwebsockets, except lws_cancel_service(), which is how the
 * acceptor (new sockets) and the workers (new messages) wake it. A
 * connection is shared between the service thread and its workers and is
 * reference-counted; its outbox, job list and closed flag are guarded by
 * its mutex. Lock order: front->lock before conn->lock, never the reverse.
 * A worker runs one chat (or a socket's queue of id-less ones), then
 * lingers briefly for the next chat of any socket before its thread ends.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ev.h>
#include <libwebsockets.h>

#include "log.h"
#include "pipeline.h"
#include "util.h"
#include "ws_front.h"
#include "ws_proto.h"

#define OUTBOX_MAX_BYTES ((size_t)1 << 20) /* per connection */
#define MAX_JOBS_PER_CONN 32
#define MAX_PENDING_FDS 1024
#define WORKER_STACK_SIZE ((size_t)256 * 1024)
/* A worker that finishes waits this long for the next chat before its
 * thread ends, and no more than this many wait. A client that sends its
 * next request as soon as an answer is in gets a running thread instead
 * of a new one (a thread's start and end are about 10 us of CPU, an
 * eighth of a short request's); waiting longer keeps idle stacks and
 * malloc caches resident, which the soak showed as RSS growth
 * (doc/performance.md). */
#define LINGER_WORKERS_MAX 8
#define LINGER_US 2000
#define PUMP_WAIT_MS 250
#define POLL_STEP_MS 20
/* Messages written to one socket in one turn at most, so that a socket
 * with a long backlog cannot hold up the others on the service thread. */
#define WRITES_PER_TURN 16

struct ws_out {
	struct ws_out *next;
	size_t len;
	unsigned char data[]; /* LWS_PRE bytes of headroom, then the text */
};

struct ws_conn;

/* A worker thread with no chat, waiting on front->lingering for one. */
struct ws_worker {
	pthread_cond_t wake;
	struct ws_job *job;        /* {front->lock}: handed over, or NULL */
	struct ws_worker *next;    /* front->lingering, {front->lock} */
};

/* One chat request on a socket. */
struct ws_job {
	struct ws_conn *conn;
	struct ws_job *next;       /* conn->jobs or conn->serial queue */
	char id[WS_ID_MAX + 1];    /* "" = original framing, run in order */
	char *api_key;             /* SECRET: wiped on free */
	char *body;
	size_t body_len;
	bool stream;
	bool cancelled;            /* {conn->lock} */
	bool client_cancel;        /* cancelled by a "cancel" message */
	bool answered;             /* the final message is queued {conn->lock} */
	struct pl_request *pl;     /* {conn->lock} while running */
};

struct ws_conn {
	atomic_int refs;
	pthread_mutex_t lock;
	pthread_cond_t space;      /* outbox drained / closed / cancelled */
	struct ws_front *front;
	struct lws *wsi;           /* service thread only */
	struct ws_conn *next_live; /* front->live, {front->lock} */
	struct ws_conn *next_ready; /* front->ready, {front->lock} */
	bool ready;                /* on front->ready, {front->lock} */
	bool gone;                 /* CLOSED came, {front->lock} */
	/* {lock}: */
	bool closed;
	struct ws_out *head, *tail;
	size_t out_bytes;
	struct ws_job *jobs;       /* running or queued, for cancel */
	size_t n_jobs;
	struct ws_job *serial_head, *serial_tail; /* id-less, waiting */
	bool serial_busy;
	/* service thread only: */
	char *api_key;             /* set by auth; SECRET */
	struct buf rx;             /* message being assembled */
	bool rx_binary, rx_oversize;
	char client_addr[64];
};

struct pss {
	struct ws_conn *conn;
};

struct ws_front {
	struct ev_loop *loop;      /* NULL: libwebsockets' own poll() loop */
	struct lws_context *ctx;
	struct lws_vhost *vhost;
	pthread_t thread;
	atomic_bool stop;
	atomic_int workers;        /* chats being worked on */
	atomic_int threads;        /* worker threads, busy or lingering */
	pthread_mutex_t lock;
	struct ws_conn *live;      /* {lock} */
	struct ws_conn *ready;     /* {lock}: sockets with text to send */
	struct ws_worker *lingering; /* {lock}: workers waiting for a chat */
	unsigned n_lingering;      /* {lock} */
	bool workers_exit;         /* {lock}: lingering workers end at once */
	int pending[MAX_PENDING_FDS]; /* {lock}: sockets to adopt */
	size_t n_pending;
	bool destroying;           /* {lock}: ctx is going away */
	/* service thread only: the ready list, taken for one wake-up */
	struct ws_conn **woken;
	size_t woken_cap;
};

/* ---- wake-ups and connection lifetime ---- */

/*
 * Put c on the list of sockets with text to send, and wake the service
 * thread if the list was empty. A wake-up already on its way serves every
 * socket on the list, so chunks from many workers at once cost one; and
 * the service thread visits the sockets on the list, not every live one
 * (libwebsockets' own loop already polls every socket on each wake-up).
 */
static void conn_ready(struct ws_conn *c)
{
	struct ws_front *f = c->front;

	pthread_mutex_lock(&f->lock);
	if (!c->ready && !c->gone) {
		bool wake = !f->ready;

		c->ready = true;
		c->next_ready = f->ready;
		f->ready = c;
		if (wake && f->ctx && !f->destroying)
			lws_cancel_service(f->ctx);
	}
	pthread_mutex_unlock(&f->lock);
}

static void conn_ref(struct ws_conn *c)
{
	atomic_fetch_add(&c->refs, 1);
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void job_free(struct ws_job *j)
{
	wipe_free(j->api_key);
	free(j->body);
	free(j);
}

static void conn_unref(struct ws_conn *c)
{
	struct ws_out *o, *next;

	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	for (o = c->head; o; o = next) {
		next = o->next;
		free(o);
	}
	wipe_free(c->api_key);
	buf_free(&c->rx);
	pthread_cond_destroy(&c->space);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* Queue text for the socket. Blocks while the outbox is full (the caller
 * is a worker, and waiting is what pauses its upstream). Returns -1 when
 * the socket closed or the job was cancelled. Thread-safe. */
static int conn_push(struct ws_conn *c, struct ws_job *j, const char *text,
		     size_t len, bool last)
{
	struct ws_out *o = xmalloc(sizeof(*o) + LWS_PRE + len);

	o->next = NULL;
	o->len = len;
	memcpy(o->data + LWS_PRE, text, len);
	pthread_mutex_lock(&c->lock);
	/* The final message of j: from here on its id is free again, so a
	 * client that reuses it as soon as the answer is in is not told the
	 * request is still running. */
	if (j && last)
		j->answered = true;
	while (!c->closed && !(j && j->cancelled) && c->head &&
	       c->out_bytes + len > OUTBOX_MAX_BYTES)
		pthread_cond_wait(&c->space, &c->lock);
	if (c->closed || (j && j->cancelled && !j->client_cancel)) {
		pthread_mutex_unlock(&c->lock);
		free(o);
		return -1;
	}
	if (c->tail)
		c->tail->next = o;
	else
		c->head = o;
	c->tail = o;
	c->out_bytes += len;
	pthread_mutex_unlock(&c->lock);
	conn_ready(c);
	return 0;
}

/* From the service thread: queue without blocking (a reply to the
 * client's own message; the client is talking, so it is reading). */
static void conn_reply(struct ws_conn *c, struct buf *b)
{
	conn_push(c, NULL, b->data ? b->data : "", b->len, false);
	buf_reset(b);
}

/* ---- the WebSocket sink (worker threads) ---- */

static bool job_client_cancelled(struct ws_job *j)
{
	bool cc;

	pthread_mutex_lock(&j->conn->lock);
	cc = j->client_cancel;
	pthread_mutex_unlock(&j->conn->lock);
	return cc;
}

static int sink_chunk(void *ud, const char *json, size_t len)
{
	struct ws_job *j = ud;
	struct buf b;
	int rc;

	buf_init(&b, 0);
	ws_proto_chunk(&b, j->id, json, len);
	rc = conn_push(j->conn, j, b.data, b.len, false);
	buf_free(&b);
	return rc;
}

static void send_request_error(struct ws_job *j, const struct api_error *err)
{
	struct buf b;
	const char *second;

	buf_init(&b, 0);
	if (job_client_cancelled(j)) {
		ws_proto_cancelled(&b, j->id);
		second = j->id[0] ? NULL : "data: [DONE]\n\n";
	} else if (j->stream) {
		ws_proto_request_error(&b, j->id, err, &second);
	} else {
		ws_proto_error(&b, j->id, err);
		second = NULL;
	}
	if (conn_push(j->conn, j, b.data, b.len, true) == 0 && second)
		conn_push(j->conn, j, second, strlen(second), false);
	buf_free(&b);
}

static void sink_end(void *ud, const struct api_error *err)
{
	struct ws_job *j = ud;
	struct buf b, usage;

	if (err) {
		send_request_error(j, err);
		return;
	}
	buf_init(&b, 0);
	buf_init(&usage, 0);
	pthread_mutex_lock(&j->conn->lock);
	bool have = j->pl && pipeline_usage_json(j->pl, &usage);
	pthread_mutex_unlock(&j->conn->lock);
	ws_proto_done(&b, j->id, have ? usage.data : NULL);
	conn_push(j->conn, j, b.data, b.len, true);
	buf_free(&b);
	buf_free(&usage);
}

/* ---- workers ---- */

static void run_job(struct ws_job *j)
{
	struct ws_conn *c = j->conn;
	struct pl_sink sink = { .ud = j, .chunk = sink_chunk, .end = sink_end };
	char request_id[32];
	struct pl_input in = { 0 };
	struct pl_request *pl;
	enum pl_result res;

	in.cfg = pipeline_config_acquire();
	if (!in.cfg)
		return;
	pipeline_make_request_id(request_id, sizeof(request_id));
	in.api_key = j->api_key;
	in.body = j->body;
	in.body_len = j->body_len;
	in.front = "ws";
	in.request_id = request_id;
	in.client_addr = c->client_addr;
	in.client_fd = -1;
	in.sink = &sink;
	pl = pipeline_new(&in);
	pthread_mutex_lock(&c->lock);
	j->pl = pl;
	if (j->cancelled || c->closed)
		pipeline_cancel(pl);
	pthread_mutex_unlock(&c->lock);

	res = pipeline_start(pl);
	if (res == PL_RESPONSE) {
		const char *body, *ra;
		size_t len;
		int status;
		struct buf b;

		pipeline_response(pl, &status, &body, &len, &ra);
		buf_init(&b, 0);
		if (status == 200 && !j->stream) {
			ws_proto_completion(&b, j->id, body, len);
			conn_push(c, j, b.data, b.len, true);
		} else {
			struct api_error err = { .status = status };
			json_object *o = json_tokener_parse(body);
			json_object *e = NULL, *v;

			/* the pipeline's answer is already an OpenAI error:
			 * carry its fields over as they are */
			json_object_object_get_ex(o, "error", &e);
			err.type = json_object_object_get_ex(e, "type", &v) ?
					   json_object_get_string(v) : NULL;
			err.code = json_object_object_get_ex(e, "code", &v) ?
					   json_object_get_string(v) : NULL;
			err.param = json_object_object_get_ex(e, "param", &v) ?
					    json_object_get_string(v) : NULL;
			snprintf(err.message, sizeof(err.message), "%s",
				 json_object_object_get_ex(e, "message", &v) ?
					 json_object_get_string(v) : "error");
			snprintf(err.retry_after, sizeof(err.retry_after),
				 "%s", ra ? ra : "");
			send_request_error(j, &err);
			json_object_put(o);
		}
		buf_free(&b);
	} else if (res == PL_STREAM) {
		while (pipeline_stream_pump(pl, PUMP_WAIT_MS) == PL_MORE)
			;
	}
	/* a cancel that landed before the answer took shape (the first
	 * chunks may already be out): the client still gets its reply */
	if (!j->answered && job_client_cancelled(j)) {
		struct api_error err;

		apierr_set(&err, 499, "client_closed", NULL, NULL,
			   "request cancelled");
		send_request_error(j, &err);
	}
	pthread_mutex_lock(&c->lock);
	j->pl = NULL;
	pthread_mutex_unlock(&c->lock);
	pipeline_free(pl);
	config_release(in.cfg);
}

static void unlink_job(struct ws_conn *c, struct ws_job *j)
{
	for (struct ws_job **p = &c->jobs; *p; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			c->n_jobs--;
			return;
		}
	}
}

/* Runs j, and the id-less requests queued behind it on its socket. */
static void run_jobs(struct ws_job *j)
{
	struct ws_conn *c = j->conn;
	struct ws_front *f = c->front;

	while (j) {
		bool serial = !j->id[0];

		run_job(j);
		pthread_mutex_lock(&c->lock);
		unlink_job(c, j);
		job_free(j);
		j = NULL;
		if (serial) {
			/* the original answers one id-less request after the
			 * other: this worker takes the next one */
			j = c->serial_head;
			if (j) {
				c->serial_head = j->next;
				if (!c->serial_head)
					c->serial_tail = NULL;
				j->next = c->jobs;
				c->jobs = j;
			} else {
				c->serial_busy = false;
			}
		}
		pthread_cond_broadcast(&c->space);
		pthread_mutex_unlock(&c->lock);
	}
	conn_unref(c);
	atomic_fetch_sub(&f->workers, 1);
}

/* Wait, as one of the lingering workers, for the next chat: NULL when
 * none came in time, when enough linger already, or when the front
 * stops. */
static struct ws_job *linger(struct ws_front *f, struct ws_worker *w)
{
	struct timespec until;
	struct ws_job *j;

	monotonic_deadline(&until, LINGER_US);
	pthread_mutex_lock(&f->lock);
	if (f->workers_exit || f->n_lingering >= LINGER_WORKERS_MAX) {
		pthread_mutex_unlock(&f->lock);
		return NULL;
	}
	w->job = NULL;
	w->next = f->lingering;
	f->lingering = w;
	f->n_lingering++;
	while (!w->job && !f->workers_exit &&
	       pthread_cond_timedwait(&w->wake, &f->lock, &until) == 0)
		;
	j = w->job;
	if (!j) { /* still listed: whoever hands over a chat unlists */
		struct ws_worker **p;

		for (p = &f->lingering; *p != w; p = &(*p)->next)
			;
		*p = w->next;
		f->n_lingering--;
	}
	pthread_mutex_unlock(&f->lock);
	return j;
}

static void *worker_main(void *arg)
{
	struct ws_job *j = arg;
	struct ws_front *f = j->conn->front;
	struct ws_worker self;

	cond_init_monotonic(&self.wake);
	do
		run_jobs(j);
	while ((j = linger(f, &self)));
	pthread_cond_destroy(&self.wake);
	atomic_fetch_sub(&f->threads, 1); /* the last touch of f */
	return NULL;
}

/* Hand j to a lingering worker, or start one for it. */
static int spawn_worker(struct ws_job *j)
{
	struct ws_front *f = j->conn->front;
	pthread_attr_t attr;
	pthread_t t;
	int rc;

	conn_ref(j->conn);
	atomic_fetch_add(&f->workers, 1);
	pthread_mutex_lock(&f->lock);
	if (f->lingering) {
		struct ws_worker *w = f->lingering;

		f->lingering = w->next;
		f->n_lingering--;
		w->job = j;
		pthread_cond_signal(&w->wake);
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	pthread_mutex_unlock(&f->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, WORKER_STACK_SIZE);
	atomic_fetch_add(&f->threads, 1);
	rc = pthread_create(&t, &attr, worker_main, j);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		atomic_fetch_sub(&f->threads, 1);
		atomic_fetch_sub(&f->workers, 1);
		conn_unref(j->conn);
		return -1;
	}
	return 0;
}

/* End the lingering workers, and wait until no worker thread is left to
 * touch the front: one that has just finished may be on its way to the
 * list. */
static void end_workers(struct ws_front *f)
{
	pthread_mutex_lock(&f->lock);
	f->workers_exit = true;
	for (struct ws_worker *w = f->lingering; w; w = w->next)
		pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&f->lock);
	while (atomic_load(&f->threads) > 0)
		usleep(1000);
}

/* ---- messages from the client (service thread) ---- */

static void reply_error(struct ws_conn *c, const char *id, int status,
			const char *type, const char *code, const char *msg)
{
	struct api_error err;
	struct buf b;

	apierr_set(&err, status, type, code, NULL, "%s", msg);
	buf_init(&b, 0);
	ws_proto_error(&b, id, &err);
	conn_reply(c, &b);
	buf_free(&b);
}

/* The running request with this id; one whose final message is queued
 * is no longer running. {c->lock} */
static struct ws_job *find_job(struct ws_conn *c, const char *id)
{
	for (struct ws_job *j = c->jobs; j; j = j->next)
		if (j->id[0] && !j->answered && !strcmp(j->id, id))
			return j;
	return NULL;
}

static void on_chat(struct ws_conn *c, struct ws_msg *m)
{
	struct ws_job *j;
	bool start = true;

	pthread_mutex_lock(&c->lock);
	if (m->id[0] && find_job(c, m->id)) {
		pthread_mutex_unlock(&c->lock);
		reply_error(c, m->id, 400, "invalid_request_error",
			    "duplicate_id", "A request with this id is still "
			    "running");
		return;
	}
	if (c->n_jobs >= MAX_JOBS_PER_CONN) {
		pthread_mutex_unlock(&c->lock);
		reply_error(c, m->id, 429, "rate_limit_error",
			    "too_many_requests", "Too many requests running "
			    "on this socket");
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->conn = c;
	memcpy(j->id, m->id, sizeof(j->id));
	j->api_key = xstrdup(m->api_key ? m->api_key : c->api_key);
	j->stream = m->stream;
	j->body = ws_proto_request_body(m, &j->body_len);
	c->n_jobs++;
	if (!j->id[0] && c->serial_busy) {
		if (c->serial_tail)
			c->serial_tail->next = j;
		else
			c->serial_head = j;
		c->serial_tail = j;
		start = false;
	} else {
		j->next = c->jobs;
		c->jobs = j;
		if (!j->id[0])
			c->serial_busy = true;
	}
	pthread_mutex_unlock(&c->lock);
	if (start && spawn_worker(j) < 0) {
		pthread_mutex_lock(&c->lock);
		unlink_job(c, j);
		if (!j->id[0])
			c->serial_busy = false;
		pthread_mutex_unlock(&c->lock);
		reply_error(c, m->id, 503, "server_error", "overloaded",
			    "Cannot start a worker for this request");
		job_free(j);
	}
}

static void on_cancel(struct ws_conn *c, const char *id)
{
	struct ws_job *j;

	pthread_mutex_lock(&c->lock);
	j = find_job(c, id);
	if (!j) {
		for (j = c->serial_head; j && strcmp(j->id, id) != 0; j = j->next)
			;
	}
	if (j && !j->cancelled) {
		j->cancelled = true;
		j->client_cancel = true;
		if (j->pl)
			pipeline_cancel(j->pl);
		pthread_cond_broadcast(&c->space);
	}
	pthread_mutex_unlock(&c->lock);
	if (!j)
		reply_error(c, id, 404, "invalid_request_error",
			    "unknown_request", "No running request has this id");
}

static void on_auth(struct ws_conn *c, const char *key)
{
	struct config *cfg = pipeline_config_acquire();
	const struct key_entry *ke;
	struct api_error err;
	struct buf b;

	buf_init(&b, 0);
	if (cfg && pipeline_auth(cfg, key, &ke, &err) == 0) {
		wipe_free(c->api_key);
		c->api_key = xstrdup(key);
		ws_proto_auth_ok(&b);
	} else {
		if (!cfg)
			apierr_set(&err, 503, "server_error", NULL, NULL,
				   "shutting down");
		ws_proto_error(&b, NULL, &err);
	}
	conn_reply(c, &b);
	buf_free(&b);
	config_release(cfg);
}

static void on_message(struct ws_conn *c)
{
	struct ws_msg m;
	struct api_error err;
	struct buf b;

	buf_init(&b, 0);
	if (c->rx_binary) {
		reply_error(c, NULL, 400, "invalid_request_error",
			    "binary_frame", "Binary messages are not "
			    "supported: send JSON text");
		return;
	}
	if (c->rx_oversize) {
		reply_error(c, NULL, 413, "invalid_request_error",
			    "message_too_large", "Message exceeds "
			    "server.max_body_bytes");
		return;
	}
	if (ws_proto_parse(c->rx.data ? c->rx.data : "", c->rx.len,
			   c->api_key != NULL, &m, &err) < 0) {
		ws_proto_error(&b, m.id, &err);
		conn_reply(c, &b);
		goto out;
	}
	switch (m.type) {
	case WS_MSG_CHAT:
		on_chat(c, &m);
		break;
	case WS_MSG_AUTH:
		on_auth(c, m.api_key);
		break;
	case WS_MSG_CANCEL:
		on_cancel(c, m.id);
		break;
	case WS_MSG_PING:
		ws_proto_pong(&b, m.id);
		conn_reply(c, &b);
		break;
	}
out:
	ws_msg_free(&m);
	buf_free(&b);
}

/* ---- libwebsockets callbacks (service thread) ---- */

static bool origin_allowed(struct lws *wsi, const struct config *cfg)
{
	char origin[256];
	int n = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);

	if (n <= 0)
		return true; /* not a browser: nothing to check */
	for (size_t i = 0; i < cfg->server.n_cors_origins; i++) {
		const char *o = cfg->server.cors_origins[i];
		if (!strcmp(o, "*") || !strcasecmp(o, origin))
			return true;
	}
	return false;
}

/* The upgrade request: right path, allowed Origin, and a valid key when
 * an Authorization header came with it. Non-zero rejects the handshake. */
static int filter_upgrade(struct lws *wsi)
{
	struct config *cfg = pipeline_config_acquire();
	char uri[64], auth[512];
	const struct key_entry *ke;
	struct api_error err;
	int rc = 0;

	if (!cfg)
		return -1;
	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
	    strcmp(uri, WS_PATH) != 0) {
		rc = -1;
	} else if (!origin_allowed(wsi, cfg)) {
		log_info("ws", "upgrade refused: Origin not in "
			 "server.cors_origins");
		rc = -1;
	} else if (lws_hdr_copy(wsi, auth, sizeof(auth),
				WSI_TOKEN_HTTP_AUTHORIZATION) > 0 &&
		   pipeline_auth(cfg, auth, &ke, &err) < 0) {
		log_info("ws", "upgrade refused: invalid API key");
		rc = -1;
	}
	explicit_bzero(auth, sizeof(auth));
	config_release(cfg);
	return rc;
}

static void on_established(struct ws_front *f, struct lws *wsi,
			   struct pss *pss)
{
	struct config *cfg = pipeline_config_acquire();
	struct ws_conn *c = xcalloc(1, sizeof(*c));
	char auth[512];

	atomic_init(&c->refs, 1);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->space, NULL);
	c->front = f;
	c->wsi = wsi;
	buf_init(&c->rx, cfg ? cfg->server.max_body_bytes : 1 << 20);
	lws_get_peer_simple(wsi, c->client_addr, sizeof(c->client_addr));
	/* filter_upgrade checked it; keep it so messages need no api_key */
	if (lws_hdr_copy(wsi, auth, sizeof(auth),
			 WSI_TOKEN_HTTP_AUTHORIZATION) > 0)
		c->api_key = xstrdup(auth);
	explicit_bzero(auth, sizeof(auth));
	config_release(cfg);
	pss->conn = c;
	pthread_mutex_lock(&f->lock);
	c->next_live = f->live;
	f->live = c;
	pthread_mutex_unlock(&f->lock);
}

static void on_closed(struct ws_front *f, struct pss *pss)
{
	struct ws_conn *c = pss->conn, **p;
	struct ws_job *q, *next;

	if (!c)
		return;
	pss->conn = NULL;
	pthread_mutex_lock(&f->lock);
	for (p = &f->live; *p; p = &(*p)->next_live) {
		if (*p == c) {
			*p = c->next_live;
			break;
		}
	}
	/* workers may hold c past this; the list must not */
	for (p = &f->ready; c->ready && *p; p = &(*p)->next_ready) {
		if (*p == c) {
			*p = c->next_ready;
			c->ready = false;
			break;
		}
	}
	c->gone = true;
	pthread_mutex_unlock(&f->lock);
	pthread_mutex_lock(&c->lock);
	c->closed = true;
	c->wsi = NULL;
	for (struct ws_job *j = c->jobs; j; j = j->next) {
		j->cancelled = true;
		if (j->pl)
			pipeline_cancel(j->pl);
	}
	q = c->serial_head;
	c->serial_head = c->serial_tail = NULL;
	pthread_cond_broadcast(&c->space);
	pthread_mutex_unlock(&c->lock);
	for (; q; q = next) {
		next = q->next;
		job_free(q);
	}
	conn_unref(c);
}

static struct ws_out *outbox_pop(struct ws_conn *c)
{
	struct ws_out *o;

	pthread_mutex_lock(&c->lock);
	o = c->head;
	if (o) {
		c->head = o->next;
		if (!c->head)
			c->tail = NULL;
		c->out_bytes -= o->len;
		pthread_cond_broadcast(&c->space);
	}
	pthread_mutex_unlock(&c->lock);
	return o;
}

/*
 * Write what c's outbox holds while the socket takes each message whole.
 * Service thread only, from WRITEABLE or straight from a wake-up: waiting
 * for WRITEABLE after every wake-up cost each message two epoll_ctl()
 * calls and a turn of the loop. libwebsockets 4.1 keeps the unsent rest
 * of a message itself, sends it before anything written after it, and
 * arms POLLOUT for it; WRITEABLE follows once it is out. Stopping there
 * leaves the rest of the stream in the outbox, whose limit is what holds
 * a worker, and so its provider, when the client reads slowly. Returns -1
 * when the socket failed.
 */
static int flush_outbox(struct lws *wsi, struct ws_conn *c)
{
	for (int i = 0; i < WRITES_PER_TURN; i++) {
		struct ws_out *o;
		int n;

		if (lws_partial_buffered(wsi))
			return 0;
		o = outbox_pop(c);
		if (!o)
			return 0;
		n = lws_write(wsi, o->data + LWS_PRE, o->len, LWS_WRITE_TEXT);
		free(o);
		if (n < 0)
			return -1;
	}
	lws_callback_on_writable(wsi);
	return 0;
}

static void on_receive(struct lws *wsi, struct ws_conn *c, const void *in,
		       size_t len)
{
	if (lws_is_first_fragment(wsi)) {
		buf_reset(&c->rx);
		c->rx_binary = lws_frame_is_binary(wsi);
		c->rx_oversize = false;
	}
	if (!c->rx_binary && !c->rx_oversize &&
	    buf_append(&c->rx, in, len) < 0) {
		c->rx_oversize = true;
		buf_reset(&c->rx);
	}
	if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
		on_message(c);
}

/* Take the sockets on the ready list, with a reference each. A worker
 * that queues more text after this finds the list empty and wakes the
 * service thread again, so nothing waits for a wake-up that was spent. */
static size_t take_ready(struct ws_front *f)
{
	size_t n = 0;

	pthread_mutex_lock(&f->lock);
	for (struct ws_conn *c = f->ready; c; c = c->next_ready) {
		if (n == f->woken_cap) {
			f->woken_cap = f->woken_cap ? 2 * f->woken_cap : 64;
			f->woken = xrealloc(f->woken,
					    f->woken_cap * sizeof(struct ws_conn *));
		}
		c->ready = false;
		conn_ref(c);
		f->woken[n++] = c;
	}
	f->ready = NULL;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* Adopt handed-over sockets and flush outboxes that workers filled. */
static void on_wake(struct ws_front *f)
{
	int fds[MAX_PENDING_FDS];
	size_t n;

	pthread_mutex_lock(&f->lock);
	n = f->n_pending;
	memcpy(fds, f->pending, n * sizeof(int));
	f->n_pending = 0;
	pthread_mutex_unlock(&f->lock);
	for (size_t i = 0; i < n; i++)
		if (!lws_adopt_socket_vhost(f->vhost, fds[i])) {
			log_warn("ws", "libwebsockets refused a connection "
				 "(out of memory or of table slots): closed");
			close(fds[i]);
		}
	n = take_ready(f);
	for (size_t i = 0; i < n; i++) {
		struct ws_conn *c = f->woken[i];

		/* CLOSED, which clears wsi, runs on this thread only */
		if (c->wsi && flush_outbox(c->wsi, c) < 0)
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK,
					LWS_TO_KILL_ASYNC);
		conn_unref(c);
	}
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	struct ws_front *f = lws_context_user(lws_get_context(wsi));
	struct pss *pss = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return filter_upgrade(wsi);
	case LWS_CALLBACK_ESTABLISHED:
		on_established(f, wsi, pss);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		if (pss && pss->conn)
			on_receive(wsi, pss->conn, in, len);
		return 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return pss && pss->conn ? flush_outbox(wsi, pss->conn) : 0;
	case LWS_CALLBACK_CLOSED:
		on_closed(f, pss);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		on_wake(f);
		if (f->loop && atomic_load(&f->stop))
			ev_break(f->loop, EVBREAK_ALL);
		return 0;
	case LWS_CALLBACK_HTTP:
		/* GET /v1/ws without an Upgrade */
		lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST,
				       "/v1/ws is a WebSocket endpoint");
		return -1;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols protocols[] = {
	/* first: used when the client names no subprotocol */
	{ "llm-bridge", callback, sizeof(struct pss), 4096, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

static void lws_log(int level, const char *line)
{
	size_t n = strlen(line);

	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (level & LLL_ERR)
		log_warn("ws", "libwebsockets: %.*s", (int)n, line);
	else
		log_debug("ws", "libwebsockets: %.*s", (int)n, line);
}

static void *service_main(void *arg)
{
	struct ws_front *f = arg;

	thread_use_c_locale(); /* WebSocket messages are parsed here */
	if (f->loop) {
		/* until a wake-up finds f->stop set */
		ev_run(f->loop, 0);
		return NULL;
	}
	while (!atomic_load(&f->stop))
		lws_service(f->ctx, 0);
	return NULL;
}

/*
 * libwebsockets 4.1's own loop poll()s every socket on each turn, and a
 * streamed chunk takes two or three turns: with hundreds of sockets open
 * that scan was the largest cost per frame. Under an epoll loop of libev
 * (libwebsockets' evlib plugin, on a loop of ours so that it leaves
 * signals alone) a turn costs what is ready, not what is open. Without
 * the plugin, or with LB_WS_EVENT_LOOP=poll, the own loop serves.
 */
static struct lws_context *create_context(struct ws_front *f,
					  struct lws_context_creation_info *info)
{
	const char *want = getenv("LB_WS_EVENT_LOOP");
	bool poll_loop = want && strcmp(want, "poll") == 0;
	struct lws_context *ctx;
	void *loops[1];

	if (want && *want && !poll_loop && strcmp(want, "libev") != 0)
		log_warn("ws", "LB_WS_EVENT_LOOP is \"poll\" or \"libev\", not "
			 "\"%s\": libev is used", want);
	if (!poll_loop) {
		f->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV |
				      EVFLAG_NOSIGMASK);
		if (!f->loop)
			log_warn("ws", "libev cannot create a loop: the "
				 "WebSocket front polls every socket");
	}
	if (f->loop) {
		loops[0] = f->loop;
		info->options |= LWS_SERVER_OPTION_LIBEV;
		info->foreign_loops = loops;
		ctx = lws_create_context(info);
		info->options &= ~(uint64_t)LWS_SERVER_OPTION_LIBEV;
		info->foreign_loops = NULL;
		if (ctx) {
			log_info("ws", "WebSocket event loop: libev (%s)",
				 ev_backend(f->loop) == EVBACKEND_EPOLL ?
				 "epoll" : "no epoll");
			return ctx;
		}
		log_warn("ws", "libwebsockets cannot run on libev (is its "
			 "plugin, libwebsockets-evlib-ev, installed?): the "
			 "WebSocket front polls every socket");
		ev_loop_destroy(f->loop);
		f->loop = NULL;
	}
	ctx = lws_create_context(info);
	if (ctx)
		log_info("ws", "WebSocket event loop: poll");
	return ctx;
}

struct ws_front *ws_front_start(const struct config *cfg)
{
	struct lws_context_creation_info info;
	struct ws_front *f = xcalloc(1, sizeof(*f));

	lws_set_log_level(LLL_ERR | (log_enabled(LOGL_DEBUG) ? LLL_WARN : 0),
			  lws_log);
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
	info.user = f;
	info.count_threads = 1;
	/* Without a limit of its own, libwebsockets sizes and zeroes two
	 * tables by the descriptor limit: 1 MB resident at systemd's
	 * LimitNOFILE=65536, 8 MB at 524288. It needs a slot per WebSocket,
	 * and the listener admits no more than max_connections; the margin
	 * (as libmicrohttpd's) covers its own pipe and sockets still closing.
	 * (Below the descriptor limit, it finds a socket's entry by a scan
	 * of the live ones instead of by index: a few hundred ns for 1,000
	 * sockets.) */
	info.fd_limit_per_thread = cfg->server.max_connections + 64;
	info.timeout_secs = 10;
	info.ka_time = 60;
	info.ka_probes = 3;
	info.ka_interval = 10;
	pthread_mutex_init(&f->lock, NULL);
	atomic_init(&f->stop, false);
	atomic_init(&f->workers, 0);
	atomic_init(&f->threads, 0);
	f->ctx = create_context(f, &info);
	if (!f->ctx) {
		log_error("ws", "cannot create the libwebsockets context");
		goto fail;
	}
	f->vhost = lws_get_vhost_by_name(f->ctx, "default");
	if (!f->vhost) {
		log_error("ws", "libwebsockets has no default vhost");
		goto fail;
	}
	if (pthread_create(&f->thread, NULL, service_main, f) != 0) {
		log_error("ws", "cannot start the WebSocket thread");
		goto fail;
	}
	return f;
fail:
	if (f->ctx)
		lws_context_destroy(f->ctx);
	if (f->loop)
		ev_loop_destroy(f->loop);
	pthread_mutex_destroy(&f->lock);
	free(f);
	return NULL;
}

static bool val_is(const struct reqhead_val *v, const char *s)
{
	return v->n == strlen(s) && memcmp(v->p, s, v->n) == 0;
}

/* RFC 6455 4.1: base64 of 16 bytes, so 22 characters and "==". */
static bool ws_key_ok(const struct reqhead_val *v)
{
	if (v->n != 24 || v->p[22] != '=' || v->p[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++) {
		char c = v->p[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '+' || c == '/'))
			return false;
	}
	return true;
}

int ws_front_check_upgrade(const struct reqhead *h, struct api_error *err,
			   const char **extra)
{
	struct config *cfg;
	const struct key_entry *ke;
	int rc = -1;

	*extra = NULL;
	if (!reqhead_has_token(&h->upgrade, "websocket") ||
	    !reqhead_has_token(&h->connection, "upgrade")) {
		apierr_set(err, 400, "invalid_request_error",
			   "websocket_upgrade_required", NULL, "%s is a "
			   "WebSocket endpoint: send a WebSocket upgrade "
			   "request", WS_PATH);
		return -1;
	}
	if (!val_is(&h->ws_version, "13")) {
		apierr_set(err, 426, "invalid_request_error",
			   "unsupported_websocket_version", NULL,
			   "Sec-WebSocket-Version must be 13");
		*extra = "Sec-WebSocket-Version: 13\r\n";
		return -1;
	}
	if (!ws_key_ok(&h->ws_key)) {
		apierr_set(err, 400, "invalid_request_error",
			   "invalid_websocket_key", NULL, "Sec-WebSocket-Key "
			   "must be 16 bytes in base64");
		return -1;
	}
	if (h->ws_protocol.n &&
	    !reqhead_has_token(&h->ws_protocol, "llm-bridge")) {
		apierr_set(err, 400, "invalid_request_error",
			   "unsupported_subprotocol", NULL, "The only "
			   "WebSocket subprotocol served is llm-bridge");
		return -1;
	}
	cfg = pipeline_config_acquire();
	if (!cfg) {
		apierr_set(err, 503, "server_error", "shutting_down", NULL,
			   "The gateway is shutting down");
		return -1;
	}
	if (h->origin.n) {
		bool ok = false;

		for (size_t i = 0; i < cfg->server.n_cors_origins && !ok; i++) {
			const char *o = cfg->server.cors_origins[i];
			ok = !strcmp(o, "*") || (strlen(o) == h->origin.n &&
				!strncasecmp(o, h->origin.p, h->origin.n));
		}
		if (!ok) {
			apierr_set(err, 403, "invalid_request_error",
				   "origin_not_allowed", NULL, "This Origin is "
				   "not in server.cors_origins");
			goto out;
		}
	}
	if (h->authorization.n) {
		char *auth = xstrndup(h->authorization.p, h->authorization.n);
		int a = pipeline_auth(cfg, auth, &ke, err);

		explicit_bzero(auth, h->authorization.n);
		free(auth);
		if (a < 0)
			goto out;
	}
	rc = 0;
out:
	config_release(cfg);
	return rc;
}

unsigned ws_front_connections(struct ws_front *f)
{
	unsigned n = 0;

	if (!f)
		return 0;
	pthread_mutex_lock(&f->lock);
	for (const struct ws_conn *c = f->live; c; c = c->next_live)
		n++;
	n += (unsigned)f->n_pending;
	pthread_mutex_unlock(&f->lock);
	return n;
}

void ws_front_add(struct ws_front *f, int fd, const struct sockaddr *addr,
		  socklen_t len)
{
	bool queued = false;

	(void)addr;
	(void)len;
	pthread_mutex_lock(&f->lock);
	if (!f->destroying && f->n_pending < MAX_PENDING_FDS) {
		f->pending[f->n_pending++] = fd;
		queued = true;
		lws_cancel_service(f->ctx);
	}
	pthread_mutex_unlock(&f->lock);
	if (!queued)
		close(fd);
}

void ws_front_stop(struct ws_front *f, unsigned drain_s)
{
	uint64_t deadline;

	if (!f)
		return;
	deadline = now_ms() + (uint64_t)drain_s * 1000;
	while (atomic_load(&f->workers) > 0 && now_ms() < deadline)
		usleep(POLL_STEP_MS * 1000);
	atomic_store(&f->stop, true);
	lws_cancel_service(f->ctx);
	pthread_join(f->thread, NULL);
	pthread_mutex_lock(&f->lock);
	f->destroying = true;
	for (size_t i = 0; i < f->n_pending; i++)
		close(f->pending[i]);
	f->n_pending = 0;
	pthread_mutex_unlock(&f->lock);
	/* closes every socket: CLOSED cancels what is still running */
	lws_context_destroy(f->ctx);
	while (atomic_load(&f->workers) > 0)
		usleep(POLL_STEP_MS * 1000);
	end_workers(f);
	if (f->loop)
		ev_loop_destroy(f->loop);
	pthread_mutex_destroy(&f->lock);
	free(f->woken);
	free(f);
}
