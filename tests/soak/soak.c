/* SPDX-License-Identifier: MIT */
/*
 * soak: the load driver of tests/soak/run. It keeps a fixed number of
 * requests in flight against a running llm-bridge (whose provider is the
 * mock upstream) until N requests have been answered, with this mix:
 *
 *   40% streaming chats (5-20 chunks, some with include_usage)
 *   30% non-streaming chats (1-20 pieces)
 *   10% WebSocket chats: 3-6 per connection, original framing and id
 *       envelopes, streaming and not, three ways of authenticating; one
 *       connection in four is dropped in the middle of its last stream
 *   10% errors: provider 500 and 429 (streaming and not), a wrong client
 *       key, a body that is not JSON
 *   10% client disconnects: a paced stream dropped after its first chunk
 *
 * HTTP goes through one libcurl multi handle, so connections are kept
 * alive and reused as a client library would; WebSocket is a minimal
 * client over a plain socket (the upgrade by hand, masked text frames
 * out, server frames parsed). Every answer is checked (status, the shape
 * of errors, a stream ends with [DONE] and carries every piece) and a
 * wrong one counts as a mismatch, the first few described on stderr.
 *
 * Checkpoints (--checkpoint P, percent of N, repeatable): when P% have
 * been issued the driver stops issuing, lets everything in flight finish
 * (keeping its connections open), prints "CHECKPOINT <name> <done>" and,
 * with --sync, waits for a line on stdin before it goes on, so the caller
 * can sample the daemon in a quiet and repeatable state. The end of the
 * run is the checkpoint "end". Every 10 s it prints
 * "PROGRESS <done> <elapsed_s> <mismatches>". It ends with a "RESULT"
 * line and exits 1 if any answer was wrong.
 *
 * Usage: soak --port PORT --key KEY [-n N] [-c CONC] [--model M]
 *             [--mix stream=40,plain=30,ws=10,error=10,disconnect=10]
 *             [--checkpoint P ...] [--sync] [--seed S]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "../ws_client_frame.h"

#define MAX_CONC 256
#define MAX_CHECKPOINTS 8
#define MAX_REPORTED 20
#define TIMEOUT_S 60

enum kind { K_STREAM, K_PLAIN, K_WS, K_ERROR, K_DISCONNECT, K_N };
static const char *const kind_name[K_N] = { "stream", "plain", "ws",
					    "error", "disconnect" };
static int kind_share[K_N] = { 40, 30, 10, 10, 10 };

enum err_kind { E_500, E_429_STREAM, E_BADKEY, E_BADJSON, E_500_STREAM,
		E_429, E_N };

/* ---- options and totals ---- */

static unsigned port;
static const char *key;
static const char *model = "mock/gpt-test";
static long total = 1000000;
static int conc = 32;
static bool sync_mode;
static double checkpoints[MAX_CHECKPOINTS];
static int n_checkpoints;

static long issued, done, mismatches;
static long issued_kind[K_N], done_kind[K_N], bad_kind[K_N];
static long ws_connections, ws_dropped;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rnd(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static int rnd_range(int lo, int hi)
{
	return lo + (int)(rnd() % (uint64_t)(hi - lo + 1));
}

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("soak: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

/* A wrong answer: counted, and the first few described. */
static void mismatch(enum kind k, const char *what, const char *detail)
	__attribute__((nonnull(2)));

static void mismatch(enum kind k, const char *what, const char *detail)
{
	mismatches++;
	bad_kind[k]++;
	if (mismatches <= MAX_REPORTED)
		fprintf(stderr, "soak: mismatch #%ld (%s): %s%s%.300s\n",
			mismatches, kind_name[k], what, detail ? ": " : "",
			detail ? detail : "");
}

/* ---- a growable byte buffer ---- */

struct bytes {
	char *p;
	size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			die("out of memory");
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void bytes_consume(struct bytes *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
	b->p[b->len] = '\0';
}

static void bytes_free(struct bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static size_t count_str(const char *hay, const char *needle)
{
	size_t n = 0, l = strlen(needle);

	for (const char *s = hay; s && (s = strstr(s, needle)); s += l)
		n++;
	return n;
}

/* "tok0 tok1 ... tok<n-1> ": what the mock answers for chunks=n */
static char *expected_text(int n)
{
	struct bytes b = { 0 };
	char t[16];

	bytes_add(&b, "", 0);
	for (int i = 0; i < n; i++) {
		snprintf(t, sizeof(t), "tok%d ", i);
		bytes_add(&b, t, strlen(t));
	}
	return b.p;
}

static json_object *jget(json_object *o, const char *path)
{
	char copy[128], *save = NULL;

	snprintf(copy, sizeof(copy), "%s", path);
	for (char *t = strtok_r(copy, ".", &save); t && o;
	     t = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(o, json_type_array))
			o = json_object_array_get_idx(o, (size_t)atoi(t));
		else if (!json_object_object_get_ex(o, t, &o))
			o = NULL;
	}
	return o;
}

static const char *jstr(json_object *o, const char *path)
{
	json_object *v = jget(o, path);

	return v && json_object_is_type(v, json_type_string) ?
		json_object_get_string(v) : NULL;
}

/* ---- slots: one request (HTTP) or one connection (WebSocket) ---- */

enum ws_state { WS_HANDSHAKE, WS_AUTH, WS_CHAT, WS_CLOSING };

struct slot {
	bool busy;
	enum kind kind;
	double started;
	/* HTTP */
	CURL *easy;
	struct curl_slist *hdrs;
	struct bytes body, head;
	char *req;
	int sub;          /* chunks, or the error kind */
	bool usage;       /* stream_options.include_usage */
	bool aborted;     /* the disconnect: dropped after the first bytes */
	/* WebSocket */
	int fd;
	enum ws_state st;
	struct bytes rx, msg;
	int chats_left, auth_mode, chat_kind, chat_chunks, chat_seq;
	bool drop_last, msg_text;
	size_t frames;    /* messages of the current chat */
	size_t toks;      /* content pieces seen in the current chat */
	double last_io;
};

static struct slot slots[MAX_CONC];
static CURLM *multi;
static int active;

/* ---- HTTP ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct slot *s = ud;

	bytes_add(&s->body, p, size * n);
	if (s->kind == K_DISCONNECT) {
		s->aborted = true;
		return 0; /* curl closes the connection: a client gone away */
	}
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct slot *s = ud;

	bytes_add(&s->head, p, size * n);
	return size * n;
}

static void http_start(struct slot *s, enum kind k)
{
	char auth[256];
	const char *use_key = key;
	bool stream = false;

	s->kind = k;
	s->aborted = false;
	s->usage = false;
	s->easy = curl_easy_init();
	if (!s->easy)
		die("curl_easy_init");
	switch (k) {
	case K_STREAM:
		s->sub = rnd_range(5, 20);
		s->usage = rnd() % 4 == 0;
		stream = true;
		break;
	case K_PLAIN:
		s->sub = rnd_range(1, 20);
		break;
	case K_DISCONNECT:
		s->sub = 20;
		stream = true;
		break;
	case K_ERROR:
		s->sub = (int)(issued_kind[K_ERROR] % E_N);
		stream = s->sub == E_429_STREAM || s->sub == E_500_STREAM;
		if (s->sub == E_BADKEY)
			use_key = "sk-soak-not-a-client-key";
		break;
	default:
		abort();
	}
	if (k == K_ERROR && s->sub == E_BADJSON) {
		if (asprintf(&s->req, "{\"model\":\"%s\",\"messages\":[{\"role\":"
			     "\"user\",\"content\":\"soak %ld", model,
			     issued) < 0)
			abort();
	} else {
		char directive[64];

		if (k == K_ERROR && s->sub == E_BADKEY)
			snprintf(directive, sizeof(directive), "[mock chunks=2]");
		else if (k == K_ERROR)
			snprintf(directive, sizeof(directive), "[mock status=%d]",
				 s->sub == E_500 || s->sub == E_500_STREAM ?
				 500 : 429);
		else if (k == K_DISCONNECT)
			snprintf(directive, sizeof(directive),
				 "[mock chunks=20 interval_ms=5]");
		else
			snprintf(directive, sizeof(directive),
				 "[mock chunks=%d]", s->sub);
		if (asprintf(&s->req, "{\"model\":\"%s\",\"stream\":%s,%s"
			     "\"messages\":[{\"role\":\"user\",\"content\":"
			     "\"soak request %ld %s\"}]}", model,
			     stream ? "true" : "false", s->usage ?
			     "\"stream_options\":{\"include_usage\":true}," : "",
			     issued, directive) < 0)
			abort();
	}
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", use_key);
	s->hdrs = curl_slist_append(NULL, auth);
	s->hdrs = curl_slist_append(s->hdrs, "Content-Type: application/json");
	s->hdrs = curl_slist_append(s->hdrs, "Expect:");
	{
		char url[96];

		snprintf(url, sizeof(url),
			 "http://127.0.0.1:%u/v1/chat/completions", port);
		curl_easy_setopt(s->easy, CURLOPT_URL, url);
	}
	curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hdrs);
	curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->req);
	curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
	curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, (long)TIMEOUT_S);
	curl_easy_setopt(s->easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(s->easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
	if (curl_multi_add_handle(multi, s->easy) != CURLM_OK)
		die("curl_multi_add_handle");
}

static bool header_is(const struct slot *s, const char *line)
{
	const char *h = s->head.p;
	size_t l = strlen(line);

	for (; h && *h; h = strchr(h, '\n') ? strchr(h, '\n') + 1 : NULL) {
		if (!strncasecmp(h, line, l))
			return true;
	}
	return false;
}

static void check_error(struct slot *s, long status)
{
	static const struct {
		long status;
		const char *type, *code;
	} want[E_N] = {
		[E_500] = { 502, "upstream_error", "upstream_error" },
		[E_500_STREAM] = { 502, "upstream_error", "upstream_error" },
		[E_429] = { 429, "rate_limit_error", "rate_limit_exceeded" },
		[E_429_STREAM] = { 429, "rate_limit_error", "rate_limit_exceeded" },
		[E_BADKEY] = { 401, "invalid_request_error", "invalid_api_key" },
		[E_BADJSON] = { 400, "invalid_request_error", NULL },
	};
	json_object *j = json_tokener_parse(s->body.p ? s->body.p : "");
	const char *type = jstr(j, "error.type"), *code = jstr(j, "error.code");
	char why[160];

	snprintf(why, sizeof(why), "error case %d: status %ld", s->sub, status);
	if (status != want[s->sub].status)
		mismatch(K_ERROR, why, s->body.p);
	else if (!jstr(j, "error.message") || !type ||
		 strcmp(type, want[s->sub].type) != 0)
		mismatch(K_ERROR, "error shape", s->body.p);
	else if (want[s->sub].code && (!code || strcmp(code, want[s->sub].code) != 0))
		mismatch(K_ERROR, "error code", s->body.p);
	else if (status == 429 && !header_is(s, "Retry-After: 7"))
		mismatch(K_ERROR, "429 without the provider's Retry-After",
			 s->head.p);
	json_object_put(j);
}

static void http_check(struct slot *s, CURLcode rc)
{
	long status = 0;
	const char *body = s->body.p ? s->body.p : "";

	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	if (s->kind == K_DISCONNECT) {
		if (!s->aborted || rc != CURLE_WRITE_ERROR || status != 200 ||
		    strncmp(body, "data: {", 7) != 0)
			mismatch(K_DISCONNECT, curl_easy_strerror(rc), body);
		return;
	}
	if (rc != CURLE_OK) {
		mismatch(s->kind, "transfer failed", curl_easy_strerror(rc));
		return;
	}
	if (s->kind == K_ERROR) {
		check_error(s, status);
	} else if (s->kind == K_STREAM) {
		size_t len = strlen(body);
		const char *end = "data: [DONE]\n\n";

		if (status != 200 || !header_is(s, "Content-Type: text/event-stream"))
			mismatch(K_STREAM, "status or type", body);
		else if (len < strlen(end) || strcmp(body + len - strlen(end), end) != 0)
			mismatch(K_STREAM, "no [DONE] at the end", body);
		else if (strstr(body, "\"error\""))
			mismatch(K_STREAM, "error event", body);
		else if (count_str(body, "\"content\":\"tok") != (size_t)s->sub)
			mismatch(K_STREAM, "pieces missing", body);
		else if (s->usage != (strstr(body, "\"usage\":{") != NULL))
			mismatch(K_STREAM, "usage chunk", body);
	} else {
		json_object *j = json_tokener_parse(body);
		char *want = expected_text(s->sub);
		const char *got = jstr(j, "choices.0.message.content");
		json_object *ct = jget(j, "usage.completion_tokens");

		if (status != 200 || !got || strcmp(got, want) != 0 || !ct ||
		    json_object_get_int(ct) != s->sub ||
		    !jstr(j, "model") || strcmp(jstr(j, "model"), model) != 0)
			mismatch(K_PLAIN, "completion", body);
		free(want);
		json_object_put(j);
	}
}

static void http_finish(struct slot *s, CURLcode rc)
{
	http_check(s, rc);
	done++;
	done_kind[s->kind]++;
	curl_multi_remove_handle(multi, s->easy);
	curl_easy_cleanup(s->easy);
	curl_slist_free_all(s->hdrs);
	free(s->req);
	bytes_free(&s->body);
	bytes_free(&s->head);
	s->easy = NULL;
	s->hdrs = NULL;
	s->req = NULL;
	s->busy = false;
	active--;
}

/* ---- WebSocket ---- */

static bool send_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return false;
		c += k;
		n -= (size_t)k;
	}
	return true;
}

/* One masked frame, as a client must send it. */
static bool ws_send(struct slot *s, int opcode, const char *p, size_t n)
{
	uint32_t m = (uint32_t)rnd();
	unsigned char mask[4] = { (unsigned char)m, (unsigned char)(m >> 8),
				  (unsigned char)(m >> 16),
				  (unsigned char)(m >> 24) };
	unsigned char *out = malloc(n + WS_CLIENT_FRAME_HEAD_MAX);
	bool ok;

	if (!out)
		die("out of memory");
	ok = send_all(s->fd, out,
		      ws_client_frame(out, opcode, p, n, mask));
	free(out);
	return ok;
}

static void ws_end(struct slot *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	bytes_free(&s->rx);
	bytes_free(&s->msg);
	s->busy = false;
	active--;
}

/* The chats not finished on a connection that failed: all wrong (a
 * failure while closing counts once, as no chat is lost). */
static void ws_fail(struct slot *s, const char *what, const char *detail)
{
	long lost = s->st == WS_CLOSING ? 0 :
		    s->chats_left + (s->st == WS_CHAT ? 1 : 0);

	mismatch(K_WS, what, detail);
	if (lost > 1) {
		mismatches += lost - 1;
		bad_kind[K_WS] += lost - 1;
	}
	done += lost;
	done_kind[K_WS] += lost;
	ws_end(s);
}

/* Chat kinds on a socket: 0 original framing, streaming; 1 id envelopes,
 * streaming; 2 id envelopes, not streaming. */
static void ws_next_chat(struct slot *s)
{
	char body[512], idpart[40] = "", keypart[160] = "";
	bool stream;

	s->chat_kind = (int)(rnd() % 3);
	s->chat_chunks = rnd_range(3, 12);
	s->frames = 0;
	s->toks = 0;
	s->chat_seq++;
	s->chats_left--;
	if (s->chats_left == 0 && s->drop_last) {
		s->chat_kind = 0;
		s->chat_chunks = 20;
	}
	stream = s->chat_kind != 2;
	if (s->chat_kind != 0)
		snprintf(idpart, sizeof(idpart), "\"id\":\"c%d\",", s->chat_seq);
	if (s->auth_mode == 2)
		snprintf(keypart, sizeof(keypart), "\"api_key\":\"%s\",", key);
	snprintf(body, sizeof(body), "{\"type\":\"chat\",%s%s\"payload\":{"
		 "\"model\":\"%s\",\"stream\":%s,\"messages\":[{\"role\":"
		 "\"user\",\"content\":\"soak ws %d [mock chunks=%d%s]\"}]}}",
		 idpart, keypart, model, stream ? "true" : "false", s->chat_seq,
		 s->chat_chunks, s->chats_left == 0 && s->drop_last ?
		 " interval_ms=5" : "");
	s->st = WS_CHAT;
	if (!ws_send(s, 1, body, strlen(body)))
		ws_fail(s, "send failed", strerror(errno));
}

static void ws_chat_done(struct slot *s, bool ok, const char *what,
			 const char *msg)
{
	if (!ok)
		mismatch(K_WS, what, msg);
	done++;
	done_kind[K_WS]++;
	if (s->chats_left > 0) {
		ws_next_chat(s);
		return;
	}
	/* a clean close: our close frame, then theirs (or EOF) */
	s->st = WS_CLOSING;
	if (!ws_send(s, 8, "\x03\xe8", 2))
		ws_end(s);
}

static void ws_on_message(struct slot *s, const char *m, size_t len)
{
	char want[64];

	(void)len;
	if (s->st == WS_AUTH) {
		if (strcmp(m, "{\"type\":\"auth\",\"ok\":true}") != 0) {
			ws_fail(s, "auth refused", m);
			return;
		}
		ws_next_chat(s);
		return;
	}
	if (s->st != WS_CHAT) {
		ws_fail(s, "unexpected message", m);
		return;
	}
	s->frames++;
	if (s->chat_kind == 0) {
		if (!strcmp(m, "data: [DONE]\n\n")) {
			ws_chat_done(s, s->toks == (size_t)s->chat_chunks,
				     "pieces missing (original framing)", NULL);
			return;
		}
		if (strncmp(m, "data: {", 7) != 0 || strstr(m, "\"error\"")) {
			ws_fail(s, "bad frame (original framing)", m);
			return;
		}
		s->toks += count_str(m, "\"content\":\"tok");
		if (s->chats_left == 0 && s->drop_last) {
			/* the client goes away in the middle of a stream */
			done++;
			done_kind[K_WS]++;
			ws_dropped++;
			ws_end(s);
		}
		return;
	}
	snprintf(want, sizeof(want), "\"id\":\"c%d\"", s->chat_seq);
	if (!strstr(m, want)) {
		ws_fail(s, "message for another id", m);
	} else if (s->chat_kind == 1 && !strncmp(m, "{\"type\":\"chunk\"", 15)) {
		s->toks += count_str(m, "\"content\":\"tok");
	} else if (s->chat_kind == 1 && !strncmp(m, "{\"type\":\"done\"", 14)) {
		char u[64];

		snprintf(u, sizeof(u), "\"completion_tokens\":%d",
			 s->chat_chunks);
		ws_chat_done(s, s->toks == (size_t)s->chat_chunks &&
			     strstr(m, u), "stream or usage wrong (envelopes)",
			     m);
	} else if (s->chat_kind == 2 &&
		   !strncmp(m, "{\"type\":\"completion\"", 20)) {
		char *text = expected_text(s->chat_chunks);
		char *quoted;
		bool ok;

		if (asprintf(&quoted, "\"content\":\"%s\"", text) < 0)
			abort();
		ok = strstr(m, quoted) != NULL;
		free(quoted);
		free(text);
		ws_chat_done(s, ok, "completion wrong", m);
	} else {
		ws_fail(s, "unexpected message in a chat", m);
	}
}

/* Parse whole frames out of s->rx. Returns false once the slot ended. */
static bool ws_frames(struct slot *s)
{
	for (;;) {
		const unsigned char *p = (const unsigned char *)s->rx.p;
		size_t avail = s->rx.len, h = 2;
		uint64_t n;
		int op;
		bool fin, masked;

		if (avail < 2)
			return true;
		fin = p[0] & 0x80;
		op = p[0] & 0x0f;
		masked = p[1] & 0x80;
		n = p[1] & 0x7f;
		if (n == 126) {
			if (avail < 4)
				return true;
			n = (uint64_t)p[2] << 8 | p[3];
			h = 4;
		} else if (n == 127) {
			if (avail < 10)
				return true;
			n = 0;
			for (int i = 0; i < 8; i++)
				n = n << 8 | p[2 + i];
			h = 10;
		}
		if (masked) {
			ws_fail(s, "masked frame from the server", NULL);
			return false;
		}
		if (avail < h + n)
			return true;
		if (op == 0x1 || op == 0x0) {
			if (op == 0x1)
				s->msg.len = 0;
			bytes_add(&s->msg, p + h, (size_t)n);
			bytes_consume(&s->rx, h + (size_t)n);
			if (fin) {
				struct bytes m = s->msg;

				memset(&s->msg, 0, sizeof(s->msg));
				ws_on_message(s, m.p ? m.p : "", m.len);
				bytes_free(&m);
				if (!s->busy)
					return false;
			}
		} else if (op == 0x9) {
			char pl[126];
			size_t k = n < sizeof(pl) ? (size_t)n : sizeof(pl) - 1;

			memcpy(pl, p + h, k);
			bytes_consume(&s->rx, h + (size_t)n);
			if (!ws_send(s, 0xA, pl, k)) {
				ws_fail(s, "pong failed", NULL);
				return false;
			}
		} else if (op == 0x8) {
			if (s->st != WS_CLOSING) {
				ws_fail(s, "closed by the server", NULL);
				return false;
			}
			ws_end(s);
			return false;
		} else {
			bytes_consume(&s->rx, h + (size_t)n); /* pong, others */
		}
	}
}

static void ws_readable(struct slot *s)
{
	char tmp[16384];
	ssize_t k = recv(s->fd, tmp, sizeof(tmp), MSG_DONTWAIT);

	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (k <= 0) {
		if (s->st == WS_CLOSING)
			ws_end(s);
		else
			ws_fail(s, "connection lost", k < 0 ? strerror(errno) :
				"EOF");
		return;
	}
	s->last_io = now_s();
	bytes_add(&s->rx, tmp, (size_t)k);
	if (s->st == WS_HANDSHAKE) {
		char *end = strstr(s->rx.p, "\r\n\r\n");

		if (!end)
			return;
		if (strncmp(s->rx.p, "HTTP/1.1 101", 12) != 0 ||
		    !strcasestr(s->rx.p, "\r\nSec-WebSocket-Accept:")) {
			ws_fail(s, "handshake refused", s->rx.p);
			return;
		}
		bytes_consume(&s->rx, (size_t)(end + 4 - s->rx.p));
		if (s->auth_mode == 1) {
			char m[200];

			snprintf(m, sizeof(m), "{\"type\":\"auth\","
				 "\"api_key\":\"%s\"}", key);
			s->st = WS_AUTH;
			if (!ws_send(s, 1, m, strlen(m))) {
				ws_fail(s, "send failed", strerror(errno));
				return;
			}
		} else {
			ws_next_chat(s);
			if (!s->busy)
				return;
		}
	}
	ws_frames(s);
}

static void ws_start(struct slot *s, int chats)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char req[512], wskey[25], auth[200] = "";
	int one = 1;

	s->kind = K_WS;
	s->chats_left = chats;
	s->chat_seq = 0;
	s->auth_mode = (int)(ws_connections % 3);
	s->drop_last = ws_connections % 4 == 3;
	ws_connections++;
	memset(&s->rx, 0, sizeof(s->rx));
	memset(&s->msg, 0, sizeof(s->msg));
	s->st = WS_HANDSHAKE;
	s->last_io = now_s();
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		ws_fail(s, "connect", strerror(errno));
		return;
	}
	/* a 16-byte nonce, base64 */
	{
		unsigned char nonce[18] = { 0 };
		size_t o = 0;

		for (int i = 0; i < 16; i++)
			nonce[i] = (unsigned char)rnd();
		for (int i = 0; i < 18; i += 3) {
			uint32_t v = (uint32_t)nonce[i] << 16 |
				     (uint32_t)nonce[i + 1] << 8 | nonce[i + 2];
			for (int j = 3; j >= 0; j--)
				if (o < 24)
					wskey[o++] = b64[(v >> (6 * j)) & 63];
		}
		wskey[22] = wskey[23] = '=';
		wskey[24] = '\0';
	}
	if (s->auth_mode == 0)
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", key);
	snprintf(req, sizeof(req), "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
		 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
		 "%s\r\n", port, wskey, auth);
	if (!send_all(s->fd, req, strlen(req)))
		ws_fail(s, "send upgrade", strerror(errno));
}

/* ---- the loop ---- */

/* The kind furthest behind its share of the requests issued so far. */
static enum kind pick_kind(void)
{
	enum kind best = K_STREAM;
	double best_deficit = -1e18;

	int sum = 0;

	for (int k = 0; k < K_N; k++)
		sum += kind_share[k];
	for (int k = 0; k < K_N; k++) {
		double d = kind_share[k] / (double)sum * (double)(issued + 1) -
			   (double)issued_kind[k];
		if (d > best_deficit) {
			best_deficit = d;
			best = (enum kind)k;
		}
	}
	return best;
}

static void start_one(struct slot *s, long limit)
{
	enum kind k = pick_kind();

	s->busy = true;
	s->started = now_s();
	active++;
	if (k == K_WS) {
		long chats = rnd_range(3, 6);
		if (chats > limit - issued)
			chats = limit - issued;
		issued += chats;
		issued_kind[K_WS] += chats;
		ws_start(s, (int)chats);
		return;
	}
	http_start(s, k);
	issued++;
	issued_kind[k]++;
}

static void ws_timeouts(void)
{
	double t = now_s();

	for (int i = 0; i < conc; i++) {
		struct slot *s = &slots[i];
		if (s->busy && s->kind == K_WS && t - s->last_io > TIMEOUT_S)
			ws_fail(s, "no answer within the timeout", NULL);
	}
}

static void run_until(long limit, double t0, double *next_progress)
{
	struct curl_waitfd wfd[MAX_CONC];
	struct slot *wslot[MAX_CONC];

	for (;;) {
		unsigned nw = 0;
		int running, q;
		CURLMsg *m;

		for (int i = 0; i < conc && issued < limit; i++)
			if (!slots[i].busy)
				start_one(&slots[i], limit);
		if (active == 0)
			return;
		for (int i = 0; i < conc; i++) {
			if (slots[i].busy && slots[i].kind == K_WS &&
			    slots[i].fd >= 0) {
				wfd[nw].fd = slots[i].fd;
				wfd[nw].events = CURL_WAIT_POLLIN;
				wfd[nw].revents = 0;
				wslot[nw++] = &slots[i];
			}
		}
		curl_multi_poll(multi, wfd, nw, 200, NULL);
		for (unsigned i = 0; i < nw; i++)
			if (wfd[i].revents && wslot[i]->busy &&
			    wslot[i]->fd == wfd[i].fd)
				ws_readable(wslot[i]);
		curl_multi_perform(multi, &running);
		while ((m = curl_multi_info_read(multi, &q))) {
			struct slot *s = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
					  (char **)&s);
			http_finish(s, m->data.result);
		}
		ws_timeouts();
		if (now_s() >= *next_progress) {
			printf("PROGRESS %ld %.1f %ld\n", done, now_s() - t0,
			       mismatches);
			fflush(stdout);
			*next_progress += 10;
		}
	}
}

static void checkpoint(const char *name)
{
	char line[64];

	printf("CHECKPOINT %s %ld\n", name, done);
	fflush(stdout);
	if (sync_mode && !fgets(line, sizeof(line), stdin))
		die("stdin closed at checkpoint %s", name);
}

/* --mix stream=40,plain=30,ws=10,error=10,disconnect=10 (percent; the
 * kinds not named get 0) */
static void parse_mix(const char *spec)
{
	char copy[256], *save = NULL;
	int sum = 0;

	snprintf(copy, sizeof(copy), "%s", spec);
	memset(kind_share, 0, sizeof(kind_share));
	for (char *t = strtok_r(copy, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		int k;

		if (!eq)
			die("--mix: '%s' is not KIND=PERCENT", t);
		for (k = 0; k < K_N; k++)
			if ((size_t)(eq - t) == strlen(kind_name[k]) &&
			    !strncmp(t, kind_name[k], (size_t)(eq - t)))
				break;
		if (k == K_N)
			die("--mix: unknown kind in '%s'", t);
		kind_share[k] = atoi(eq + 1);
		sum += kind_share[k];
	}
	if (sum <= 0)
		die("--mix: the shares add up to nothing");
}

static void usage(void)
{
	fprintf(stderr, "usage: soak --port PORT --key KEY [-n N] [-c CONC] "
		"[--model M] [--mix KIND=PCT,...] [--checkpoint PERCENT]... [--sync]\n"
		"            [--seed S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	double t0, t_end, next_progress, paused = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--sync")) {
			sync_mode = true;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--port"))
			port = (unsigned)atoi(v);
		else if (!strcmp(a, "--key"))
			key = v;
		else if (!strcmp(a, "-n"))
			total = atol(v);
		else if (!strcmp(a, "-c"))
			conc = atoi(v);
		else if (!strcmp(a, "--model"))
			model = v;
		else if (!strcmp(a, "--seed"))
			rng_state ^= strtoull(v, NULL, 0) * 0x9e3779b97f4a7c15ull;
		else if (!strcmp(a, "--mix"))
			parse_mix(v);
		else if (!strcmp(a, "--checkpoint") &&
			 n_checkpoints < MAX_CHECKPOINTS)
			checkpoints[n_checkpoints++] = atof(v);
		else
			usage();
	}
	if (!port || !key || total < 1 || conc < 1 || conc > MAX_CONC)
		usage();
	if (!rng_state)
		rng_state = 1;
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	multi = curl_multi_init();
	/* keep one idle connection per slot, as a pooled client would */
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)conc);
	for (int i = 0; i < conc; i++)
		slots[i].fd = -1;

	t0 = now_s();
	next_progress = t0 + 10;
	for (int c = 0; c < n_checkpoints; c++) {
		long at = (long)(checkpoints[c] / 100.0 * (double)total);
		char name[32];
		double p0;

		if (at <= issued || at >= total)
			continue;
		run_until(at, t0, &next_progress);
		snprintf(name, sizeof(name), "%g%%", checkpoints[c]);
		p0 = now_s();
		checkpoint(name);
		paused += now_s() - p0;
	}
	run_until(total, t0, &next_progress);
	t_end = now_s();
	checkpoint("end");

	printf("RESULT requests=%ld mismatches=%ld seconds=%.1f rps=%.0f",
	       done, mismatches, t_end - t0 - paused,
	       (double)done / (t_end - t0 - paused));
	for (int k = 0; k < K_N; k++)
		printf(" %s=%ld/%ld", kind_name[k], done_kind[k] - bad_kind[k],
		       done_kind[k]);
	printf(" ws_connections=%ld ws_dropped=%ld\n", ws_connections,
	       ws_dropped);
	fflush(stdout);
	/* the connections close here: the daemon sees every client go */
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	return mismatches ? 1 : 0;
}
