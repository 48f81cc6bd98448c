/* SPDX-License-Identifier: MIT */
/*
 * http_front: libmicrohttpd in thread-per-connection mode; see http_front.h.
 *
 * A chat request is buffered (up to server.max_body_bytes), handed to the
 * pipeline, and answered either with one JSON body or with a streaming
 * response whose content reader pumps the upstream transfer and returns
 * exactly one SSE event per call, so each event leaves in its own write.
 */
#include "http_front.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "accounting.h"
#include "apierr.h"
#include "buf.h"
#include "keys.h"
#include "limiter.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "reqhead.h"
#include "util.h"

#define THREAD_STACK_SIZE ((size_t)256 * 1024)
/* The block libmicrohttpd allocates with each streamed response. Over
 * HTTP/1.1 it goes unused: chunks are written from the connection's own
 * buffer, so the block only costs memory. Over HTTP/1.0 the stream is
 * read into it, one SSE event per reader call: events are small (a few
 * hundred bytes; 2 KiB holds nearly all), larger ones go in pieces. */
#define STREAM_BLOCK_HTTP10 ((size_t)2 * 1024)
#define STREAM_BLOCK_CHUNKED ((size_t)64)
#define STREAM_WAIT_MS 500
#define IDLE_TIMEOUT_S 120

struct http_front {
	struct MHD_Daemon *mhd;
	atomic_int inflight;
	atomic_int connections;
};

enum endpoint { EP_NONE, EP_CHAT, EP_MODELS, EP_HEALTH, EP_USAGE,
		EP_METRICS };

/* Set on a connection's own thread when a handler returns MHD_NO because
 * the client is gone or was already answered: libmicrohttpd, which logs
 * every MHD_NO as an internal error on that thread right after, is then
 * logged at debug level. The request's own audit line says what
 * happened. */
static _Thread_local bool closing_on_purpose;

static enum MHD_Result close_quietly(void)
{
	closing_on_purpose = true;
	return MHD_NO;
}

/* Per-request state, from the first access-handler call to completion. */
struct http_req {
	struct http_front *front;
	struct config *cfg;        /* reference held for the whole request */
	enum endpoint ep;
	struct buf body;
	bool body_too_large;
	uint64_t t_begin;          /* ms: the head was in */
	char request_id[80];
	uint64_t t_start;           /* now_us() at the first handler call */
	char client_addr[64];
	const char *origin;        /* allowed Origin to echo, or NULL */
	bool from_page;            /* it carried Origin: a browser's fetch */
	const char *allow;         /* the Allow header of a 405, or NULL */
	/* streaming */
	struct pl_request *pl;
	struct pl_sink sink;
	struct buf out;            /* SSE frames, from out_sent on not yet
				    * handed to MHD */
	size_t out_sent;
	bool ended;
	bool client_gone;
	bool http10;               /* no chunked encoding for the stream */
};

/* ---- helpers ---- */

#define EXPOSED_HEADERS "X-Request-Id, x-llm-bridge-overhead-us, " \
	"Retry-After, x-ratelimit-limit-requests, " \
	"x-ratelimit-remaining-requests, x-ratelimit-limit-tokens, " \
	"x-ratelimit-remaining-tokens"

/* Time spent inside the gateway for this request: the pipeline's figure
 * (upstream wait left out), or since the request began for answers the
 * front gives itself. */
static unsigned long overhead_us(const struct http_req *h)
{
	return h->pl ? pipeline_overhead_us(h->pl) :
	       (unsigned long)(now_us() - h->t_start);
}

/* What every response carries, whoever answers: the front or the
 * pipeline, JSON, SSE, metrics or a CORS preflight. */
static void add_common_headers(struct http_req *h, struct MHD_Response *resp)
{
	char num[32];

	MHD_add_response_header(resp, "X-Request-Id", h->request_id);
	fmt_u64(num, overhead_us(h));
	MHD_add_response_header(resp, "x-llm-bridge-overhead-us", num);
	if (h->origin) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin",
					h->origin);
		if (strcmp(h->origin, "*") != 0)
			MHD_add_response_header(resp, "Vary", "Origin");
		/* a page's script sees only the headers named here: the SDKs
		 * read the request id, and Retry-After for their back-off */
		if (h->from_page)
			MHD_add_response_header(resp,
				"Access-Control-Expose-Headers",
				EXPOSED_HEADERS);
	}
}

/* OpenAI's x-ratelimit-* headers, for keys with rpm/tpm limits. */
static void add_limit_headers(struct http_req *h, struct MHD_Response *resp)
{
	const struct limit_status *st = h->pl ? pipeline_limit_status(h->pl) :
				       NULL;
	char num[32];

	if (!st)
		return;
	if (st->limit_requests) {
		snprintf(num, sizeof(num), "%u", (unsigned)st->limit_requests);
		MHD_add_response_header(resp, "x-ratelimit-limit-requests", num);
		snprintf(num, sizeof(num), "%u",
			 (unsigned)st->remaining_requests);
		MHD_add_response_header(resp, "x-ratelimit-remaining-requests",
					num);
	}
	if (st->limit_tokens) {
		snprintf(num, sizeof(num), "%llu",
			 (unsigned long long)st->limit_tokens);
		MHD_add_response_header(resp, "x-ratelimit-limit-tokens", num);
		snprintf(num, sizeof(num), "%llu",
			 (unsigned long long)st->remaining_tokens);
		MHD_add_response_header(resp, "x-ratelimit-remaining-tokens",
					num);
	}
}

static enum MHD_Result send_body(struct MHD_Connection *conn,
				 struct http_req *h, unsigned status,
				 const char *body, size_t len,
				 const char *retry_after)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, (void *)body,
					       MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/json");
	add_common_headers(h, resp);
	add_limit_headers(h, resp);
	if (retry_after)
		MHD_add_response_header(resp, "Retry-After", retry_after);
	if (h->allow)
		MHD_add_response_header(resp, "Allow", h->allow);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn,
				  struct http_req *h,
				  const struct api_error *err)
{
	struct buf b;
	enum MHD_Result ret;

	buf_init(&b, 0);
	apierr_to_json(err, &b);
	ret = send_body(conn, h, (unsigned)err->status, b.data, b.len,
			err->retry_after[0] ? err->retry_after : NULL);
	buf_free(&b);
	return ret;
}

static int connection_fd(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
				MHD_CONNECTION_INFO_CONNECTION_FD);

	return ci ? ci->connect_fd : -1;
}

/* An error in the middle of the body, where libmicrohttpd takes no
 * response: write it on the socket ourselves, read and drop what the
 * client still sends for up to a second (so its TCP stack does not throw
 * the answer away on a reset), and let libmicrohttpd close. Runs on the
 * connection's own thread, which nothing else writes to. */
static enum MHD_Result abort_request(struct MHD_Connection *conn,
				     struct http_req *h,
				     const struct api_error *err)
{
	int fd = connection_fd(conn);
	uint64_t until = now_ms() + 1000;
	size_t drained = 0;
	char tmp[16384];
	struct buf b, extra;

	if (fd < 0)
		return MHD_NO;
	/* the same CORS answer as any other response, or a browser cannot
	 * read the error */
	buf_init(&extra, 0);
	buf_printf(&extra, "X-Request-Id: %s\r\n", h->request_id);
	if (h->origin)
		buf_printf(&extra, "Access-Control-Allow-Origin: %s\r\n",
			   h->origin);
	buf_init(&b, 0);
	reqhead_error_response(&b, err, extra.data);
	buf_free(&extra);
	if (send(fd, b.data, b.len, MSG_NOSIGNAL) < 0 ||
	    shutdown(fd, SHUT_WR) < 0)
		until = 0;
	buf_free(&b);
	while (now_ms() < until && drained < ((size_t)1 << 20)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 100) <= 0)
			continue;
		n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
		if (n > 0)
			drained += (size_t)n;
	}
	log_info("http", "request_id=%s client=%s refused mid-body: %d %s",
		 h->request_id, h->client_addr, err->status,
		 err->code ? err->code : "-");
	return close_quietly();
}

/* The model of a GET /v1/models/{model}: the rest of the path, slashes
 * and all (provider/model), as the SDKs send it; NULL for another URL. */
static const char *model_in_url(const char *url)
{
	const char *id = NULL;

	if (strncmp(url, "/v1/models/", 11) == 0)
		id = url + 11;
	else if (strncmp(url, "/models/", 8) == 0)
		id = url + 8;
	return id && *id ? id : NULL;
}

static enum endpoint endpoint_of(const char *url)
{
	if (strcmp(url, "/v1/chat/completions") == 0 ||
	    strcmp(url, "/chat/completions") == 0)
		return EP_CHAT;
	if (strcmp(url, "/v1/models") == 0 || strcmp(url, "/models") == 0 ||
	    model_in_url(url))
		return EP_MODELS;
	if (strcmp(url, "/health") == 0)
		return EP_HEALTH;
	if (strcmp(url, "/v1/usage") == 0)
		return EP_USAGE;
	if (strcmp(url, "/metrics") == 0)
		return EP_METRICS;
	return EP_NONE;
}

/* The value to echo in Access-Control-Allow-Origin for a request whose
 * Origin header is origin (NULL: none), or NULL when CORS allows none. */
static const char *allowed_origin(const struct config *cfg,
				  const char *origin)
{
	for (size_t i = 0; i < cfg->server.n_cors_origins; i++) {
		const char *o = cfg->server.cors_origins[i];

		if (strcmp(o, "*") == 0)
			return "*";
		if (origin && strcmp(o, origin) == 0)
			return o;
	}
	return NULL;
}

static void client_address(struct MHD_Connection *conn, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn,
				MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(out, n, "-");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			  out, (socklen_t)n);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
			  &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
			  (socklen_t)n);
}

/* A client's X-Request-Id is echoed only when it is short and printable,
 * so it cannot smuggle anything into headers or log lines. */
static void request_id(struct MHD_Connection *conn, char *out, size_t n)
{
	const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						      "X-Request-Id");
	size_t len = rid ? strlen(rid) : 0;

	if (len > 0 && len < n && len <= 64) {
		bool ok = true;

		for (size_t i = 0; i < len && ok; i++)
			ok = rid[i] > 0x20 && rid[i] < 0x7f && rid[i] != '"' &&
			     rid[i] != '\\';
		if (ok) {
			memcpy(out, rid, len + 1);
			return;
		}
	}
	pipeline_make_request_id(out, n);
}

/* ---- the SSE sink: frames queue in h->out, the reader drains them ---- */

static int sink_chunk(void *ud, const char *json, size_t len)
{
	struct http_req *h = ud;

	if (h->client_gone)
		return 1;
	buf_appends(&h->out, "data: ");
	buf_append(&h->out, json, len);
	buf_appends(&h->out, "\n\n");
	return 0;
}

static void sink_end(void *ud, const struct api_error *err)
{
	struct http_req *h = ud;

	h->ended = true;
	if (!err) {
		buf_appends(&h->out, "data: [DONE]\n\n");
		return;
	}
	if (err->status == 499) {
		h->client_gone = true;
		return;
	}
	/* a failed stream ends with the error and no [DONE]: a client must
	 * never mistake a cut-short answer for a complete one */
	buf_appends(&h->out, "data: ");
	apierr_to_json(err, &h->out);
	buf_appends(&h->out, "\n\n");
}

/* The first "\n\n" in s[0..n), or NULL. A frame holds no other newline,
 * so memchr finds it at once, where memmem set up a two-way search for
 * every frame. */
static const char *frame_end(const char *s, size_t n)
{
	const char *end = s + n, *nl;

	while ((nl = memchr(s, '\n', (size_t)(end - s))) && nl + 1 < end) {
		if (nl[1] == '\n')
			return nl;
		s = nl + 1;
	}
	return NULL;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct http_req *h = cls;

	for (;;) {
		if (h->client_gone)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		/* One read from the provider can queue many frames. Moving
		 * the rest up after each one made a burst of n frames cost
		 * n * n / 2 frames of copying; the queue is emptied only
		 * once all of it is out. */
		if (h->out_sent < h->out.len) {
			const char *p = h->out.data + h->out_sent;
			size_t left = h->out.len - h->out_sent;
			const char *end = frame_end(p, left);
			size_t n = end ? (size_t)(end - p) + 2 : left;

			if (n > max)
				n = max;
			memcpy(out, p, n);
			h->out_sent += n;
			if (h->out_sent == h->out.len) {
				buf_reset(&h->out);
				h->out_sent = 0;
			}
			return (ssize_t)n;
		}
		if (h->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		pipeline_stream_pump(h->pl, STREAM_WAIT_MS);
	}
}

/* ---- endpoints ---- */

static enum MHD_Result serve_chat(struct MHD_Connection *conn,
				  struct http_req *h)
{
	struct pl_input in = {
		.cfg = h->cfg,
		.authorization = MHD_lookup_connection_value(conn,
				MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
		.body = h->body.data,
		.body_len = h->body.len,
		.front = "http",
		.request_id = h->request_id,
		.client_addr = h->client_addr,
		.client_fd = connection_fd(conn),
		.sink = &h->sink,
	};
	struct MHD_Response *resp;
	enum MHD_Result ret;

	h->sink.ud = h;
	h->sink.chunk = sink_chunk;
	h->sink.end = sink_end;
	h->pl = pipeline_new(&in);
	switch (pipeline_start(h->pl)) {
	case PL_GONE:
		return close_quietly();
	case PL_STREAM:
		break;
	default: {
		int status;
		const char *body, *retry;
		size_t len;

		pipeline_response(h->pl, &status, &body, &len, &retry);
		return send_body(conn, h, (unsigned)status, body, len, retry);
	}
	}
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN,
						 h->http10 ? STREAM_BLOCK_HTTP10 :
						 STREAM_BLOCK_CHUNKED,
						 stream_reader, h, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	add_common_headers(h, resp);
	add_limit_headers(h, resp);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The client key of a GET: 0 with *key set, or -1 with err (401). */
static int auth(struct MHD_Connection *conn, struct http_req *h,
		const struct key_entry **key, struct api_error *err)
{
	return pipeline_auth(h->cfg, MHD_lookup_connection_value(conn,
			MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION), key,
			err);
}

/* GET /v1/models, or /v1/models/{model} when url names one. */
static enum MHD_Result serve_models(struct MHD_Connection *conn,
				    struct http_req *h, const char *url)
{
	const char *model = model_in_url(url);
	const struct key_entry *key;
	struct api_error err;
	struct buf b;
	enum MHD_Result ret;
	int rc = 0;

	if (auth(conn, h, &key, &err) < 0)
		return send_error(conn, h, &err);
	buf_init(&b, 0);
	if (model)
		rc = pipeline_model_json(h->cfg, model, &b, &err);
	else
		pipeline_models_json(h->cfg, &b);
	ret = rc < 0 ? send_error(conn, h, &err) :
		       send_body(conn, h, MHD_HTTP_OK, b.data, b.len, NULL);
	buf_free(&b);
	return ret;
}

static const char *query_arg(struct MHD_Connection *conn, const char *name)
{
	const char *v = MHD_lookup_connection_value(conn,
				MHD_GET_ARGUMENT_KIND, name);

	return v && *v ? v : NULL;
}

static enum MHD_Result serve_usage(struct MHD_Connection *conn,
				   struct http_req *h)
{
	const struct key_entry *key;
	struct acct_usage_args args;
	struct api_error err;
	struct buf b;
	enum MHD_Result ret;

	if (auth(conn, h, &key, &err) < 0)
		return send_error(conn, h, &err);
	args.key = query_arg(conn, "key");
	args.model = query_arg(conn, "model");
	args.from = query_arg(conn, "from");
	args.to = query_arg(conn, "to");
	args.group_by = query_arg(conn, "group_by");
	buf_init(&b, 0);
	if (acct_usage_report(key, &args, &b, &err) < 0)
		ret = send_error(conn, h, &err);
	else
		ret = send_body(conn, h, MHD_HTTP_OK, b.data, b.len, NULL);
	buf_free(&b);
	return ret;
}

/* Prometheus text; behind an admin key when metrics.require_key. */
static enum MHD_Result serve_metrics(struct MHD_Connection *conn,
				     struct http_req *h)
{
	const struct key_entry *key;
	struct MHD_Response *resp;
	struct api_error err;
	struct buf b;
	enum MHD_Result ret;

	if (!h->cfg->metrics.enabled) {
		apierr_set(&err, 404, "invalid_request_error", "unknown_url",
			   NULL, "Metrics are disabled (metrics.enabled)");
		return send_error(conn, h, &err);
	}
	if (h->cfg->metrics.require_key) {
		if (auth(conn, h, &key, &err) < 0)
			return send_error(conn, h, &err);
		if (!key->def || !key->def->admin) {
			apierr_set(&err, 403, "invalid_request_error",
				   "admin_required", NULL, "Metrics need a key "
				   "with admin: true");
			return send_error(conn, h, &err);
		}
	}
	buf_init(&b, 0);
	metrics_render(&b);
	resp = MHD_create_response_from_buffer(b.len, b.data ? b.data : "",
					       MHD_RESPMEM_MUST_COPY);
	buf_free(&b);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type",
				"text/plain; version=0.0.4; charset=utf-8");
	add_common_headers(h, resp);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result serve_preflight(struct MHD_Connection *conn,
				       struct http_req *h)
{
	struct MHD_Response *resp;
	const char *want = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
				"Access-Control-Request-Headers");
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	add_common_headers(h, resp);
	MHD_add_response_header(resp, "Access-Control-Allow-Methods",
				"GET, POST, OPTIONS");
	MHD_add_response_header(resp, "Access-Control-Allow-Headers",
				want ? want :
				"Authorization, Content-Type, X-Request-Id");
	MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
	ret = MHD_queue_response(conn, MHD_HTTP_NO_CONTENT, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* What the kept-alive path checks of a head: the listener's limits.
 * libmicrohttpd hands over the head parsed, so its size is rebuilt as a
 * client writes it: "Name: value" lines, "?name=value&" arguments. */
struct head_size {
	size_t bytes;
	unsigned fields;
};

static enum MHD_Result add_len(void *cls, enum MHD_ValueKind kind,
			       const char *key, const char *value)
{
	struct head_size *hs = cls;
	size_t n = strlen(key) + (value ? strlen(value) : 0);

	hs->bytes += kind == MHD_GET_ARGUMENT_KIND ? n + (value ? 2 : 1)
						   : n + 4;
	hs->fields++;
	return MHD_YES;
}

static bool is_json_type(const char *ct)
{
	size_t n = strlen("application/json");

	if (!ct)
		return true; /* many clients send none */
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, "application/json", n) == 0 &&
	       (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* First call for a request: classify it and answer what can be answered
 * before the body. Returns MHD_YES to go on receiving. */
static enum MHD_Result begin_request(struct MHD_Connection *conn,
				     struct http_req *h, const char *method,
				     const char *url, bool *answered)
{
	struct api_error err;
	const char *cl;
	int64_t clen;

	*answered = true;
	{
		/* the listener checks the first request on a connection;
		 * the ones after it on a kept-alive connection come here */
		/* "METHOD url HTTP/1.1\r\n", and the blank line */
		struct head_size hs = { strlen(method) + strlen(url) + 14, 0 };

		MHD_get_connection_values(conn, MHD_HEADER_KIND |
					  MHD_GET_ARGUMENT_KIND, add_len, &hs);
		if (hs.bytes > h->cfg->server.max_header_bytes) {
			reqhead_error_too_large(&err);
			return send_error(conn, h, &err);
		}
		if (hs.fields > REQHEAD_MAX_FIELDS) {
			reqhead_error_too_many_fields(&err);
			return send_error(conn, h, &err);
		}
	}
	if (strcmp(method, "OPTIONS") == 0)
		return serve_preflight(conn, h);
	h->ep = endpoint_of(url);
	if (h->ep == EP_NONE) {
		apierr_set(&err, 404, "invalid_request_error", "unknown_url",
			   NULL, "Invalid URL (%s %.200s)", method, url);
		return send_error(conn, h, &err);
	}
	/* HEAD wherever GET goes: libmicrohttpd leaves the body out */
	if (h->ep == EP_CHAT ? strcmp(method, "POST") != 0 :
	    strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		h->allow = h->ep == EP_CHAT ? "POST, OPTIONS" :
					      "GET, HEAD, OPTIONS";
		apierr_set(&err, 405, "invalid_request_error",
			   "method_not_allowed", NULL,
			   "Method %s is not allowed on %.200s (use %s)",
			   method, url, h->ep == EP_CHAT ? "POST" : "GET");
		return send_error(conn, h, &err);
	}
	if (h->ep != EP_CHAT) {
		*answered = false;
		return MHD_YES;
	}
	if (!is_json_type(MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
			MHD_HTTP_HEADER_CONTENT_TYPE))) {
		apierr_set(&err, 415, "invalid_request_error",
			   "unsupported_media_type", NULL,
			   "Content-Type must be application/json");
		return send_error(conn, h, &err);
	}
	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && parse_i64(cl, 0, INT64_MAX, &clen) == 0 &&
	    (uint64_t)clen > h->body.max) {
		h->body_too_large = true;
		apierr_set(&err, 413, "invalid_request_error",
			   "request_too_large", NULL,
			   "The request body is larger than the %zu bytes this "
			   "gateway accepts", h->body.max);
		return send_error(conn, h, &err);
	}
	/* a body that stops coming is dropped after server.body_timeout */
	MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
				  h->cfg->server.body_timeout_s);
	*answered = false;
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct http_front *f = cls;
	struct http_req *h = *con_cls;
	struct api_error err;
	bool answered;

	if (!h) {
		const char *origin;

		h = xcalloc(1, sizeof(*h));
		h->t_start = now_us();
		h->front = f;
		h->cfg = pipeline_config_acquire();
		buf_init(&h->body, h->cfg->server.max_body_bytes);
		buf_init(&h->out, 0);
		request_id(conn, h->request_id, sizeof(h->request_id));
		client_address(conn, h->client_addr, sizeof(h->client_addr));
		origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						     "Origin");
		h->origin = allowed_origin(h->cfg, origin);
		h->from_page = origin != NULL;
		h->http10 = strcmp(version, MHD_HTTP_VERSION_1_1) != 0;
		h->t_begin = now_ms();
		*con_cls = h;
		atomic_fetch_add(&f->inflight, 1);
		enum MHD_Result r = begin_request(conn, h, method, url,
						  &answered);
		if (answered || r != MHD_YES)
			return r;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		size_t n = *upload_size;

		*upload_size = 0;
		if (buf_append(&h->body, upload, n) < 0) {
			/* a chunked body past the limit: no need to read the
			 * rest of it, which may never end */
			apierr_set(&err, 413, "invalid_request_error",
				   "request_too_large", NULL, "The request body "
				   "is larger than the %zu bytes this gateway "
				   "accepts", h->body.max);
			return abort_request(conn, h, &err);
		}
		if (now_ms() - h->t_begin >
		    (uint64_t)h->cfg->server.body_timeout_s * 1000) {
			apierr_set(&err, 408, "invalid_request_error",
				   "request_timeout", NULL, "The request body "
				   "did not arrive within %u s "
				   "(server.body_timeout)",
				   h->cfg->server.body_timeout_s);
			return abort_request(conn, h, &err);
		}
		return MHD_YES;
	}
	MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
				  (unsigned)IDLE_TIMEOUT_S);
	if (h->body_too_large) {
		apierr_set(&err, 413, "invalid_request_error",
			   "request_too_large", NULL,
			   "The request body is larger than the %zu bytes this "
			   "gateway accepts", h->body.max);
		return send_error(conn, h, &err);
	}
	switch (h->ep) {
	case EP_HEALTH:
		return send_body(conn, h, MHD_HTTP_OK, "{\"status\":\"ok\"}", 15,
				 NULL);
	case EP_MODELS:
		return serve_models(conn, h, url);
	case EP_USAGE:
		return serve_usage(conn, h);
	case EP_METRICS:
		return serve_metrics(conn, h);
	default:
		return serve_chat(conn, h);
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct http_front *f = cls;
	struct http_req *h = *con_cls;

	if (!h)
		return;
	if (h->pl) {
		if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !h->ended)
			pipeline_cancel(h->pl);
		pipeline_free(h->pl);
	}
	buf_free(&h->body);
	buf_free(&h->out);
	config_release(h->cfg);
	free(h);
	*con_cls = NULL;
	atomic_fetch_sub(&f->inflight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *conn,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct http_front *f = cls;

	atomic_fetch_add(&f->connections,
			 toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

unsigned http_front_connections(struct http_front *f)
{
	int n = f ? atomic_load(&f->connections) : 0;

	return n > 0 ? (unsigned)n : 0;
}

/* Said by libmicrohttpd whenever a handler returns MHD_NO. */
static const char mhd_no_msg[] = "Application reported internal error";

/* printf-like: fmt comes from libmicrohttpd, never from a client */
__attribute__((format(printf, 2, 0)))
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	/* TLS connections reach MHD as the plaintext end of a socketpair,
	 * where its TCP_CORK/TCP_NODELAY "push" cannot apply; the bytes
	 * still go out at once */
	if (strncmp(msg, "Failed to push the data", 23) == 0) {
		log_debug("http", "%s", msg);
		return;
	}
	if (closing_on_purpose &&
	    strncmp(msg, mhd_no_msg, sizeof(mhd_no_msg) - 1) == 0) {
		closing_on_purpose = false;
		log_debug("http", "%s", msg);
		return;
	}
	log_warn("http", "%s", msg);
}

struct http_front *http_front_start(const struct config *cfg)
{
	struct http_front *f = xcalloc(1, sizeof(*f));
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			 MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC |
			 MHD_USE_ERROR_LOG;

	atomic_init(&f->inflight, 0);
	atomic_init(&f->connections, 0);
	/* the listener enforces server.max_connections with a 503; the
	 * engine's own limit, which closes without a word, stays above it. */
	f->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, f,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
		MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)cfg->server.max_connections + 64,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		reqhead_pool_size(cfg->server.max_header_bytes),
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, f,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
		MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK_SIZE,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, f,
		MHD_OPTION_END);
	if (!f->mhd) {
		log_error("http", "cannot start the HTTP engine");
		free(f);
		return NULL;
	}
	return f;
}

void http_front_add(struct http_front *f, int fd, const struct sockaddr *addr,
		    socklen_t len)
{
	/* on failure libmicrohttpd has already closed fd */
	if (MHD_add_connection(f->mhd, fd, addr, len) != MHD_YES)
		log_warn("http", "connection refused: too many connections");
}

void http_front_stop(struct http_front *f, unsigned timeout_s)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_s * 1000u;

	if (!f)
		return;
	while (atomic_load(&f->inflight) > 0 && now_ms() < deadline)
		usleep(20000);
	if (atomic_load(&f->inflight) > 0)
		log_warn("http", "shutdown timeout: closing %d request(s) "
			 "still in flight", atomic_load(&f->inflight));
	MHD_stop_daemon(f->mhd);
	free(f);
}
