/* SPDX-License-Identifier: MIT */
/*
 * mock-upstream: a fake LLM provider for the test bed. It speaks OpenAI's
 * Chat Completions dialect (DeepSeek's extras included) and Gemini's
 * native generateContent / streamGenerateContent on loopback, and a test
 * picks its behaviour per
 * request with a "[mock k=v ...]" directive anywhere in the request body:
 * chunk count and pacing, error statuses, garbage, stalls, cut-off and
 * malformed streams. It records the last request and counts connections
 * and aborted transfers, so tests can assert what the gateway sent, how it
 * pooled connections and how fast it hung up.
 *
 * Usage: mock-upstream --port N [--host ADDR] [--max-connections N];
 * prints "PORT <n>". --max-connections raises libmicrohttpd's limit
 * (FD_SETSIZE - 4 by default) and the descriptor limit with it, for
 * benchmarks that hold thousands of streams.
 * Control: GET /_mock/stats (connections, requests, aborted, active,
 * streamed bytes, last_abort_ms, tag_aborted, tag_abort_ms and
 * tag_aborts (how many transfers with that tag were aborted) for the
 * last aborted request with a tag=NAME directive, last_request),
 * POST /_mock/reset.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <locale.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>

#define MAX_BODY (64u << 20)
#define STEP_MS 50

/* ---- shared counters ---- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	long connections, requests, aborted, active;
	long long streamed; /* stream body bytes handed to MHD */
	long long last_abort_ms;
	/* the last aborted request that carried a tag: a test asks for its
	 * own transfer, whatever earlier tests' transfers do meanwhile */
	char tag_aborted[32];
	long long tag_abort_ms;
	long tag_aborts;
	json_object *last_request;
} stats;

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- directives ---- */

struct directives {
	int status;
	char retry_after[16];
	char location[16];  /* location=PORT: a redirect to 127.0.0.1:PORT */
	bool html, garbage, truncate, error_event, badjson_event, keepalive,
		crlf, split, reasoning, echo, tools, reset, no_usage, blocked,
		malformed, badkey;
	int stall;        /* 0, 1 = headers, 2 = midstream */
	bool close_mid;
	int after;
	int chunks;
	int pad;          /* pad=N: each piece gets N more bytes of x */
	long latency_ms, interval_ms;
	long cached;      /* -1 = none */
	char tag[32];     /* tag=NAME: its abort is recorded by name */
};

static void parse_directives(const char *body, struct directives *d)
{
	const char *s = body ? strstr(body, "[mock") : NULL;
	char key[32], val[32];

	memset(d, 0, sizeof(*d));
	d->chunks = 3;
	d->cached = -1;
	snprintf(d->retry_after, sizeof(d->retry_after), "7");
	if (!s)
		return;
	s += 5;
	while (*s && *s != ']') {
		size_t k = 0, v = 0;

		while (*s == ' ')
			s++;
		while (*s && *s != '=' && *s != ' ' && *s != ']' && k < 31)
			key[k++] = *s++;
		key[k] = '\0';
		if (*s == '=') {
			s++;
			while (*s && *s != ' ' && *s != ']' && v < 31)
				val[v++] = *s++;
		} else {
			val[v++] = '1';
		}
		val[v] = '\0';
		if (!k)
			break;
		if (!strcmp(key, "status")) d->status = atoi(val);
		else if (!strcmp(key, "retry_after")) snprintf(d->retry_after, sizeof(d->retry_after), "%s", val);
		else if (!strcmp(key, "location")) snprintf(d->location, sizeof(d->location), "%s", val);
		else if (!strcmp(key, "error_body")) d->html = !strcmp(val, "html");
		else if (!strcmp(key, "latency_ms")) d->latency_ms = atol(val);
		else if (!strcmp(key, "chunks")) d->chunks = atoi(val);
		else if (!strcmp(key, "pad")) d->pad = atoi(val);
		else if (!strcmp(key, "interval_ms")) d->interval_ms = atol(val);
		else if (!strcmp(key, "stall")) d->stall = !strcmp(val, "headers") ? 1 : 2;
		else if (!strcmp(key, "close")) d->close_mid = true;
		else if (!strcmp(key, "after")) d->after = atoi(val);
		else if (!strcmp(key, "reset")) d->reset = true;
		else if (!strcmp(key, "garbage")) d->garbage = true;
		else if (!strcmp(key, "truncate")) d->truncate = true;
		else if (!strcmp(key, "error_event")) d->error_event = true;
		else if (!strcmp(key, "badjson_event")) d->badjson_event = true;
		else if (!strcmp(key, "keepalive")) d->keepalive = true;
		else if (!strcmp(key, "crlf")) d->crlf = true;
		else if (!strcmp(key, "split")) d->split = true;
		else if (!strcmp(key, "usage")) d->no_usage = !strcmp(val, "0");
		else if (!strcmp(key, "reasoning")) d->reasoning = true;
		else if (!strcmp(key, "echo")) d->echo = true;
		else if (!strcmp(key, "tools")) d->tools = true;
		else if (!strcmp(key, "cached")) d->cached = atol(val);
		else if (!strcmp(key, "blocked")) d->blocked = true;
		else if (!strcmp(key, "malformed")) d->malformed = true;
		else if (!strcmp(key, "badkey")) d->badkey = true;
		else if (!strcmp(key, "tag")) snprintf(d->tag, sizeof(d->tag), "%s", val);
	}
	if (d->chunks < 0)
		d->chunks = 0;
	if (d->chunks > 100000)
		d->chunks = 100000;
	if (d->pad < 0 || d->pad > 100000)
		d->pad = 0;
}

/* ---- request state ---- */

struct req {
	char *body;
	size_t len;
	bool too_big;
};

/* A streaming answer: a list of pre-rendered events, one per reader call
 * (split mode: a few bytes per call), with its pacing and faults. */
struct stream {
	struct directives d;
	int fd;
	char **events;
	size_t n, cap, next, off;
	bool stalled_forever;
	bool fail_at_end;
};

static bool client_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
	char c;

	if (fd < 0 || poll(&p, 1, 0) <= 0)
		return false;
	if (p.revents & (POLLHUP | POLLERR | POLLRDHUP))
		return true;
	return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Sleep ms in steps, returning early (true) when the client hung up. */
static bool wait_or_gone(int fd, long ms)
{
	long long end = mono_ms() + ms;

	while (mono_ms() < end) {
		if (client_gone(fd))
			return true;
		sleep_ms(STEP_MS < ms ? STEP_MS : ms);
	}
	return client_gone(fd);
}

static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

static void add_event(struct stream *st, char *text)
{
	if (st->n == st->cap) {
		st->cap = st->cap ? st->cap * 2 : 16;
		st->events = realloc(st->events, st->cap * sizeof(char *));
		if (!st->events)
			abort();
	}
	st->events[st->n++] = text;
}

static char *sse(const struct directives *d, const char *data)
{
	const char *nl = d->crlf ? "\r\n" : "\n";

	return xasprintf("%sdata: %s%s%s", d->keepalive ? (d->crlf ?
			 ": keep-alive\r\n\r\n" : ": keep-alive\n\n") : "",
			 data, nl, nl);
}

static char *chunk_json(const char *model, const char *delta,
			const char *finish)
{
	return xasprintf("{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion."
			 "chunk\",\"created\":1700000000,\"model\":\"%s\","
			 "\"choices\":[{\"index\":0,\"delta\":%s,\"logprobs\":null,"
			 "\"finish_reason\":%s}]}", model, delta, finish);
}

static char *usage_json(const struct directives *d, int completion)
{
	if (d->cached >= 0)
		return xasprintf("{\"prompt_tokens\":10,\"completion_tokens\":%d,"
				 "\"total_tokens\":%d,\"prompt_cache_hit_tokens\":%ld,"
				 "\"prompt_cache_miss_tokens\":%ld}", completion,
				 10 + completion, d->cached, 10 - d->cached);
	return xasprintf("{\"prompt_tokens\":10,\"completion_tokens\":%d,"
			 "\"total_tokens\":%d}", completion, 10 + completion);
}

/* The content pieces: "tok0 ", "tok1 "... each followed by pad=N bytes
 * of 'x', or the raw request (echo). */
static json_object *piece(const struct directives *d, const char *body, int i)
{
	char t[32];
	char *padded;
	json_object *o;
	int n;

	if (d->echo)
		return json_object_new_string(body);
	n = snprintf(t, sizeof(t), "tok%d ", i);
	if (!d->pad)
		return json_object_new_string(t);
	padded = malloc((size_t)n + (size_t)d->pad + 1);
	if (!padded)
		abort();
	memcpy(padded, t, (size_t)n);
	memset(padded + n, 'x', (size_t)d->pad);
	padded[n + d->pad] = '\0';
	o = json_object_new_string(padded);
	free(padded);
	return o;
}

static void add_chunk(struct stream *st, const char *model, json_object *delta,
		      const char *finish)
{
	char *c = chunk_json(model, json_object_to_json_string_ext(delta,
			     JSON_C_TO_STRING_PLAIN), finish);

	add_event(st, sse(&st->d, c));
	free(c);
	json_object_put(delta);
}

static void build_stream(struct stream *st, const char *model,
			 const char *body, bool include_usage)
{
	const struct directives *d = &st->d;
	int pieces = d->echo ? 1 : d->chunks;
	json_object *delta;

	delta = json_object_new_object();
	json_object_object_add(delta, "role", json_object_new_string("assistant"));
	json_object_object_add(delta, "content", json_object_new_string(""));
	add_chunk(st, model, delta, "null");
	if (d->reasoning) {
		delta = json_object_new_object();
		json_object_object_add(delta, "reasoning_content",
				       json_object_new_string("think "));
		add_chunk(st, model, delta, "null");
	}
	if (d->tools) {
		add_chunk(st, model, json_tokener_parse("{\"tool_calls\":[{\"index\":0,"
			  "\"id\":\"call_mock\",\"type\":\"function\",\"function\":"
			  "{\"name\":\"get_weather\",\"arguments\":\"\"}}]}"), "null");
		add_chunk(st, model, json_tokener_parse("{\"tool_calls\":[{\"index\":0,"
			  "\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}"), "null");
		add_chunk(st, model, json_tokener_parse("{\"tool_calls\":[{\"index\":0,"
			  "\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}"), "null");
		pieces = 3;
	}
	for (int i = 0; !d->tools && i < pieces; i++) {
		delta = json_object_new_object();
		json_object_object_add(delta, "content", piece(d, body, i));
		add_chunk(st, model, delta, "null");
		if (i == 0 && d->error_event) {
			add_event(st, sse(d, "{\"error\":{\"message\":\"mock stream "
					  "error\",\"type\":\"server_error\","
					  "\"code\":\"mock_stream\"}}"));
			return;
		}
		if (i == 0 && d->badjson_event)
			add_event(st, sse(d, "{not json"));
	}
	if (d->truncate)
		return;
	add_chunk(st, model, json_object_new_object(),
		  d->tools ? "\"tool_calls\"" : "\"stop\"");
	if (include_usage && !d->no_usage) {
		char *u = usage_json(d, pieces);
		char *c = xasprintf("{\"id\":\"chatcmpl-mock\",\"object\":"
				    "\"chat.completion.chunk\",\"created\":"
				    "1700000000,\"model\":\"%s\",\"choices\":[],"
				    "\"usage\":%s}", model, u);
		add_event(st, sse(d, c));
		free(c);
		free(u);
	}
	add_event(st, sse(d, "[DONE]"));
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct stream *st = cls;
	const char *ev;
	size_t len, n;

	(void)pos;
	if (st->off == 0) {
		/* the event about to start: faults and pacing */
		bool cut = (st->d.stall == 2 || st->d.close_mid) &&
			   (int)st->next >= st->d.after + 1;
		if (cut && st->d.close_mid)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (cut) {
			while (!wait_or_gone(st->fd, 1000))
				;
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (st->next >= st->n)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (st->next > 0 && st->d.interval_ms &&
		    wait_or_gone(st->fd, st->d.interval_ms))
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	ev = st->events[st->next];
	len = strlen(ev) - st->off;
	n = len < max ? len : max;
	if (st->d.split && n > 3)
		n = 1 + (st->next + st->off) % 3;
	memcpy(out, ev + st->off, n);
	st->off += n;
	pthread_mutex_lock(&lock);
	stats.streamed += (long long)n;
	pthread_mutex_unlock(&lock);
	if (st->off == strlen(ev)) {
		st->off = 0;
		st->next++;
	}
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream *st = cls;

	for (size_t i = 0; i < st->n; i++)
		free(st->events[i]);
	free(st->events);
	free(st);
}

/* ---- answers ---- */

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status,
				 const char *ctype, const char *body)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	MHD_add_response_header(r, "Content-Type", ctype);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c,
				  const struct directives *d)
{
	char body[256];
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (d->html)
		snprintf(body, sizeof(body), "<html><body>Bad Gateway</body></html>");
	else
		snprintf(body, sizeof(body), "{\"error\":{\"message\":\"mock error "
			 "%d\",\"type\":\"mock_error\",\"param\":null,\"code\":"
			 "\"mock_%d\"}}", d->status, d->status);
	r = MHD_create_response_from_buffer(strlen(body), body,
					    MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type",
				d->html ? "text/html" : "application/json");
	if (d->status == 429)
		MHD_add_response_header(r, "Retry-After", d->retry_after);
	if (d->location[0]) {
		char url[96];

		snprintf(url, sizeof(url), "http://127.0.0.1:%s/v1/chat/completions",
			 d->location);
		MHD_add_response_header(r, "Location", url);
	}
	ret = MHD_queue_response(c, (unsigned)d->status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_completion(struct MHD_Connection *c,
				       const struct directives *d,
				       const char *model, const char *body)
{
	struct json_object *o = json_object_new_object(), *choice, *msg,
			   *arr = json_object_new_array();
	int pieces = d->echo ? 1 : d->chunks;
	const char *text;
	enum MHD_Result ret;
	char *usage;

	msg = json_object_new_object();
	json_object_object_add(msg, "role", json_object_new_string("assistant"));
	if (d->tools) {
		json_object_object_add(msg, "content", NULL);
		json_object_object_add(msg, "tool_calls", json_tokener_parse(
			"[{\"id\":\"call_mock\",\"type\":\"function\",\"function\":"
			"{\"name\":\"get_weather\",\"arguments\":"
			"\"{\\\"city\\\":\\\"Paris\\\"}\"}}]"));
	} else {
		struct json_object *s;
		char *all = calloc(1, 1);
		size_t len = 0;

		for (int i = 0; i < pieces; i++) {
			s = piece(d, body, i);
			size_t n = strlen(json_object_get_string(s));
			all = realloc(all, len + n + 1);
			memcpy(all + len, json_object_get_string(s), n + 1);
			len += n;
			json_object_put(s);
		}
		json_object_object_add(msg, "content",
				       json_object_new_string_len(all, (int)len));
		free(all);
	}
	if (d->reasoning)
		json_object_object_add(msg, "reasoning_content",
				       json_object_new_string("think "));
	choice = json_object_new_object();
	json_object_object_add(choice, "index", json_object_new_int(0));
	json_object_object_add(choice, "message", msg);
	json_object_object_add(choice, "logprobs", NULL);
	json_object_object_add(choice, "finish_reason", json_object_new_string(
		d->tools ? "tool_calls" : "stop"));
	json_object_array_add(arr, choice);
	json_object_object_add(o, "id", json_object_new_string("chatcmpl-mock"));
	json_object_object_add(o, "object",
			       json_object_new_string("chat.completion"));
	json_object_object_add(o, "created", json_object_new_int(1700000000));
	json_object_object_add(o, "model", json_object_new_string(model));
	json_object_object_add(o, "choices", arr);
	if (!d->no_usage) {
		usage = usage_json(d, d->tools ? 3 : pieces);
		json_object_object_add(o, "usage", json_tokener_parse(usage));
		free(usage);
	}
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (d->truncate) {
		char *half = strndup(text, strlen(text) / 2);
		ret = send_text(c, 200, "application/json", half);
		free(half);
	} else {
		ret = send_text(c, 200, "application/json", text);
	}
	json_object_put(o);
	return ret;
}

static enum MHD_Result header_cb(void *cls, enum MHD_ValueKind kind, const char *k,
				   const char *v)
{
	json_object *h = cls;
	char name[128];
	size_t i;

	(void)kind;
	for (i = 0; k[i] && i < sizeof(name) - 1; i++)
		name[i] = (char)(k[i] >= 'A' && k[i] <= 'Z' ? k[i] + 32 : k[i]);
	name[i] = '\0';
	json_object_object_add(h, name, json_object_new_string(v ? v : ""));
	return MHD_YES;
}

static void record_request(struct MHD_Connection *c, const char *method,
			   const char *url, const struct req *rq)
{
	json_object *o = json_object_new_object(), *h = json_object_new_object();

	MHD_get_connection_values(c, MHD_HEADER_KIND, header_cb, h);
	json_object_object_add(o, "method", json_object_new_string(method));
	json_object_object_add(o, "path", json_object_new_string(url));
	json_object_object_add(o, "headers", h);
	json_object_object_add(o, "body", json_object_new_string_len(
		rq->body ? rq->body : "", (int)rq->len));
	pthread_mutex_lock(&lock);
	stats.requests++;
	json_object_put(stats.last_request);
	stats.last_request = o;
	pthread_mutex_unlock(&lock);
}

/* ---- the Gemini dialect ---- */

static const char *gemini_status_name(int status)
{
	switch (status) {
	case 400: return "INVALID_ARGUMENT";
	case 401: return "UNAUTHENTICATED";
	case 403: return "PERMISSION_DENIED";
	case 404: return "NOT_FOUND";
	case 429: return "RESOURCE_EXHAUSTED";
	case 503: return "UNAVAILABLE";
	default: return "INTERNAL";
	}
}

static enum MHD_Result gemini_error(struct MHD_Connection *c,
				    const struct directives *d)
{
	char body[512];
	int status = d->badkey ? 400 : d->status;
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (d->badkey)
		snprintf(body, sizeof(body), "{\"error\":{\"code\":400,\"message\":"
			 "\"API key not valid. Please pass a valid API key.\","
			 "\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":"
			 "\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":"
			 "\"API_KEY_INVALID\",\"domain\":\"googleapis.com\"}]}}");
	else
		snprintf(body, sizeof(body), "{\"error\":{\"code\":%d,\"message\":"
			 "\"mock error %d\",\"status\":\"%s\"}}", status, status,
			 gemini_status_name(status));
	r = MHD_create_response_from_buffer(strlen(body), body,
					    MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", "application/json");
	if (status == 429)
		MHD_add_response_header(r, "Retry-After", d->retry_after);
	ret = MHD_queue_response(c, (unsigned)status, r);
	MHD_destroy_response(r);
	return ret;
}

static char *gemini_usage(int completion, bool reasoning)
{
	return xasprintf("{\"promptTokenCount\":10,\"candidatesTokenCount\":%d,"
			 "%s\"totalTokenCount\":%d}", completion,
			 reasoning ? "\"thoughtsTokenCount\":5," : "",
			 10 + completion + (reasoning ? 5 : 0));
}

/* One GenerateContentResponse. parts is a JSON array text; finish is a
 * quoted reason or NULL; usage NULL for none. */
static char *gemini_response(const char *parts, const char *finish,
			     const char *usage)
{
	return xasprintf("{\"candidates\":[{\"content\":{\"role\":\"model\","
			 "\"parts\":%s}%s%s,\"index\":0}]%s%s,\"modelVersion\":"
			 "\"gemini-mock\",\"responseId\":\"mockresp\"}", parts,
			 finish ? ",\"finishReason\":" : "", finish ? finish : "",
			 usage ? ",\"usageMetadata\":" : "", usage ? usage : "");
}

static const char *gemini_call_part =
	"[{\"functionCall\":{\"name\":\"get_weather\",\"args\":"
	"{\"city\":\"Paris\"}},\"thoughtSignature\":\"c2lnbmF0dXJl\"}]";

/* The answer's text parts, one per piece; a follow-up turn that carries
 * a functionResponse gets a sentence about the weather instead. */
static char *gemini_text_part(const struct directives *d, const char *body,
			      int i)
{
	json_object *arr = json_object_new_array(), *part;
	char *out;

	part = json_object_new_object();
	if (strstr(body, "functionResponse"))
		json_object_object_add(part, "text",
				       json_object_new_string("It is sunny in Paris."));
	else
		json_object_object_add(part, "text", piece(d, body, i));
	json_object_array_add(arr, part);
	out = strdup(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
	json_object_put(arr);
	return out;
}

static int gemini_pieces(const struct directives *d, const char *body)
{
	return d->echo || strstr(body, "functionResponse") ? 1 : d->chunks;
}

static void build_gemini_stream(struct stream *st, const char *body)
{
	struct directives *d = &st->d;
	int pieces = gemini_pieces(d, body);
	char *u = gemini_usage(d->tools ? 1 : pieces, d->reasoning), *ev;

	d->crlf = true; /* Gemini frames events with CRLF */
	if (d->blocked) {
		ev = xasprintf("{\"promptFeedback\":{\"blockReason\":\"SAFETY\"},"
			       "\"usageMetadata\":%s,\"modelVersion\":"
			       "\"gemini-mock\"}", u);
		add_event(st, sse(d, ev));
		free(ev);
		free(u);
		return;
	}
	if (d->reasoning) {
		ev = gemini_response("[{\"text\":\"think \",\"thought\":true}]",
				     NULL, NULL);
		add_event(st, sse(d, ev));
		free(ev);
	}
	if (d->malformed) {
		ev = gemini_response("[]", "\"MALFORMED_FUNCTION_CALL\"", u);
		add_event(st, sse(d, ev));
		free(ev);
		free(u);
		return;
	}
	if (d->tools && !strstr(body, "functionResponse")) {
		ev = gemini_response(gemini_call_part, "\"STOP\"", u);
		add_event(st, sse(d, ev));
		free(ev);
		free(u);
		return;
	}
	for (int i = 0; i < pieces; i++) {
		char *parts = gemini_text_part(d, body, i);
		bool last = i == pieces - 1 && !d->truncate;

		ev = gemini_response(parts, last ? "\"STOP\"" : NULL,
				     last ? u : NULL);
		add_event(st, sse(d, ev));
		free(ev);
		free(parts);
		if (i == 0 && d->error_event) {
			add_event(st, sse(d, "{\"error\":{\"code\":500,\"message\":"
					  "\"mock stream error\",\"status\":"
					  "\"INTERNAL\"}}"));
			break;
		}
	}
	free(u);
}

static enum MHD_Result gemini_completion(struct MHD_Connection *c,
					 const struct directives *d,
					 const char *body)
{
	int pieces = gemini_pieces(d, body);
	char *u = gemini_usage(d->tools ? 1 : pieces, d->reasoning);
	char *out, *parts;
	enum MHD_Result ret;

	if (d->blocked) {
		out = xasprintf("{\"promptFeedback\":{\"blockReason\":\"SAFETY\"},"
				"\"usageMetadata\":%s,\"modelVersion\":"
				"\"gemini-mock\"}", u);
	} else if (d->malformed) {
		out = gemini_response("[]", "\"MALFORMED_FUNCTION_CALL\"", u);
	} else if (d->tools && !strstr(body, "functionResponse")) {
		out = gemini_response(gemini_call_part, "\"STOP\"", u);
	} else {
		/* all pieces in one text part, thought first */
		json_object *arr = json_object_new_array(), *part;
		char *all = calloc(1, 1);
		size_t len = 0;

		if (d->reasoning)
			json_object_array_add(arr, json_tokener_parse(
				"{\"text\":\"think \",\"thought\":true}"));
		for (int i = 0; i < pieces; i++) {
			char *p1 = gemini_text_part(d, body, i);
			json_object *a = json_tokener_parse(p1);
			const char *t = json_object_get_string(json_object_object_get(
				json_object_array_get_idx(a, 0), "text"));
			all = realloc(all, len + strlen(t) + 1);
			memcpy(all + len, t, strlen(t) + 1);
			len += strlen(t);
			json_object_put(a);
			free(p1);
		}
		part = json_object_new_object();
		json_object_object_add(part, "text",
				       json_object_new_string_len(all, (int)len));
		json_object_array_add(arr, part);
		parts = strdup(json_object_to_json_string_ext(arr,
				JSON_C_TO_STRING_PLAIN));
		out = gemini_response(parts, "\"STOP\"", u);
		free(parts);
		free(all);
		json_object_put(arr);
	}
	ret = send_text(c, 200, "application/json", out);
	free(out);
	free(u);
	return ret;
}

static enum MHD_Result gemini(struct MHD_Connection *c, const char *method,
			      const char *url, struct req *rq)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	bool stream = strstr(url, ":streamGenerateContent") != NULL;
	const char *body = rq->body ? rq->body : "";
	struct directives d;
	json_object *req;

	record_request(c, method, url, rq);
	parse_directives(body, &d);
	req = json_tokener_parse(body);
	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "contents", NULL)) {
		json_object_put(req);
		d.status = 400;
		return gemini_error(c, &d);
	}
	json_object_put(req);
	if (d.stall == 1) {
		while (!wait_or_gone(ci ? ci->connect_fd : -1, 1000))
			;
		return MHD_NO;
	}
	if (d.status || d.badkey)
		return gemini_error(c, &d);
	if (!stream)
		return gemini_completion(c, &d, body);
	{
		struct stream *st = calloc(1, sizeof(*st));
		struct MHD_Response *r;
		enum MHD_Result ret;

		st->d = d;
		st->fd = ci ? ci->connect_fd : -1;
		build_gemini_stream(st, body);
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
						      stream_reader, st,
						      stream_free);
		MHD_add_response_header(r, "Content-Type", "text/event-stream");
		ret = MHD_queue_response(c, 200, r);
		MHD_destroy_response(r);
		return ret;
	}
}

/* Does the request carry a tool's answer (a message of role "tool")?
 * Read from the JSON: a gateway may pass the client's text on as it is,
 * spaces and all. */
static bool has_tool_message(json_object *req)
{
	json_object *msgs, *role;

	if (!json_object_object_get_ex(req, "messages", &msgs) ||
	    !json_object_is_type(msgs, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(msgs); i++)
		if (json_object_object_get_ex(json_object_array_get_idx(msgs, i),
					      "role", &role) &&
		    json_object_is_type(role, json_type_string) &&
		    strcmp(json_object_get_string(role), "tool") == 0)
			return true;
	return false;
}

static enum MHD_Result chat(struct MHD_Connection *c, const char *method,
			    const char *url, struct req *rq)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	int fd = ci ? ci->connect_fd : -1;
	struct directives d;
	json_object *req, *v, *so;
	const char *model = "mock-model";
	bool stream = false, include_usage = false;
	enum MHD_Result ret;

	record_request(c, method, url, rq);
	parse_directives(rq->body, &d);
	req = json_tokener_parse(rq->body ? rq->body : "");
	/* the second turn of a tool conversation is answered in text */
	if (d.tools && has_tool_message(req))
		d.tools = false;
	if (!json_object_is_type(req, json_type_object)) {
		json_object_put(req);
		return send_text(c, 400, "application/json",
				 "{\"error\":{\"message\":\"mock: invalid JSON\","
				 "\"type\":\"invalid_request_error\",\"param\":null,"
				 "\"code\":null}}");
	}
	if (json_object_object_get_ex(req, "model", &v))
		model = json_object_get_string(v);
	if (json_object_object_get_ex(req, "stream", &v))
		stream = json_object_get_boolean(v);
	if (json_object_object_get_ex(req, "stream_options", &so) &&
	    json_object_object_get_ex(so, "include_usage", &v))
		include_usage = json_object_get_boolean(v);

	if (d.reset) {
		json_object_put(req);
		return MHD_NO;
	}
	if (d.stall == 1) {
		while (!wait_or_gone(fd, 1000))
			;
		json_object_put(req);
		return MHD_NO;
	}
	if (d.latency_ms && wait_or_gone(fd, d.latency_ms)) {
		json_object_put(req);
		return MHD_NO;
	}
	if (d.status) {
		ret = send_error(c, &d);
	} else if (d.garbage) {
		ret = send_text(c, 200, stream ? "text/event-stream" :
				"application/json", "this is not json {{{");
	} else if (!stream) {
		ret = send_completion(c, &d, model, rq->body);
	} else {
		struct stream *st = calloc(1, sizeof(*st));
		struct MHD_Response *r;

		st->d = d;
		st->fd = fd;
		build_stream(st, model, rq->body, include_usage);
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
						      stream_reader, st,
						      stream_free);
		MHD_add_response_header(r, "Content-Type", "text/event-stream");
		MHD_add_response_header(r, "Cache-Control", "no-cache");
		ret = MHD_queue_response(c, 200, r);
		MHD_destroy_response(r);
	}
	json_object_put(req);
	return ret;
}

static enum MHD_Result send_stats(struct MHD_Connection *c)
{
	json_object *o = json_object_new_object();
	enum MHD_Result ret;

	pthread_mutex_lock(&lock);
	json_object_object_add(o, "connections", json_object_new_int64(stats.connections));
	json_object_object_add(o, "requests", json_object_new_int64(stats.requests));
	json_object_object_add(o, "aborted", json_object_new_int64(stats.aborted));
	json_object_object_add(o, "active", json_object_new_int64(stats.active));
	json_object_object_add(o, "streamed", json_object_new_int64(stats.streamed));
	json_object_object_add(o, "last_abort_ms", json_object_new_int64(stats.last_abort_ms));
	json_object_object_add(o, "tag_aborted", json_object_new_string(stats.tag_aborted));
	json_object_object_add(o, "tag_abort_ms", json_object_new_int64(stats.tag_abort_ms));
	json_object_object_add(o, "tag_aborts", json_object_new_int64(stats.tag_aborts));
	json_object_object_add(o, "now_ms", json_object_new_int64(mono_ms()));
	json_object_object_add(o, "last_request", json_object_get(stats.last_request));
	pthread_mutex_unlock(&lock);
	ret = send_text(c, 200, "application/json",
			json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return ret;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

/* json-c switches locale around every parse; from the global locale
 * that takes glibc's process-wide locale lock for writing, twice, and
 * 256 connection threads on one CPU spent nine tenths of it spinning
 * there under the benchmark's load. From the C locale object the switch
 * costs nothing (the daemon does the same: thread_use_c_locale()). */
static void use_c_locale(void)
{
	static _Thread_local bool done;
	locale_t c_locale;

	if (done)
		return;
	done = true;
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (c_locale)
		uselocale(c_locale);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *data,
				  size_t *size, void **ctx)
{
	struct req *rq = *ctx;

	(void)cls;
	(void)version;
	use_c_locale();
	if (!rq) {
		*ctx = calloc(1, sizeof(struct req));
		return MHD_YES;
	}
	if (*size) {
		if (rq->len + *size > MAX_BODY) {
			rq->too_big = true;
		} else {
			rq->body = realloc(rq->body, rq->len + *size + 1);
			memcpy(rq->body + rq->len, data, *size);
			rq->len += *size;
			rq->body[rq->len] = '\0';
		}
		*size = 0;
		return MHD_YES;
	}
	if (!strcmp(url, "/_mock/stats"))
		return send_stats(c);
	if (!strcmp(url, "/_mock/reset")) {
		pthread_mutex_lock(&lock);
		stats.connections = stats.requests = stats.aborted = 0;
		stats.streamed = 0;
		stats.last_abort_ms = 0;
		stats.tag_aborted[0] = '\0';
		stats.tag_abort_ms = 0;
		stats.tag_aborts = 0;
		json_object_put(stats.last_request);
		stats.last_request = NULL;
		pthread_mutex_unlock(&lock);
		return send_text(c, 200, "application/json", "{\"ok\":true}");
	}
	if (!strcmp(method, "GET") && (ends_with(url, "/models")))
		return send_text(c, 200, "application/json",
				 "{\"object\":\"list\",\"data\":[{\"id\":\"mock-model\","
				 "\"object\":\"model\",\"created\":0,"
				 "\"owned_by\":\"mock\"}]}");
	if (!strcmp(method, "POST") && (strstr(url, ":generateContent") ||
					strstr(url, ":streamGenerateContent")))
		return gemini(c, method, url, rq);
	if (!strcmp(method, "POST") && ends_with(url, "/chat/completions")) {
		if (rq->too_big)
			return send_text(c, 413, "application/json",
					 "{\"error\":{\"message\":\"too big\"}}");
		return chat(c, method, url, rq);
	}
	return send_text(c, 404, "application/json",
			 "{\"error\":{\"message\":\"mock: no such endpoint\","
			 "\"type\":\"invalid_request_error\",\"param\":null,"
			 "\"code\":\"unknown_url\"}}");
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
			 enum MHD_RequestTerminationCode code)
{
	struct req *rq = *ctx;

	(void)cls;
	(void)c;
	if (code != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
		struct directives d;

		parse_directives(rq ? rq->body : NULL, &d);
		pthread_mutex_lock(&lock);
		stats.aborted++;
		stats.last_abort_ms = mono_ms();
		if (d.tag[0]) {
			if (strcmp(stats.tag_aborted, d.tag) != 0)
				stats.tag_aborts = 0;
			stats.tag_aborts++;
			memcpy(stats.tag_aborted, d.tag, sizeof(d.tag));
			stats.tag_abort_ms = stats.last_abort_ms;
		}
		pthread_mutex_unlock(&lock);
	}
	if (rq) {
		free(rq->body);
		free(rq);
	}
	*ctx = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **sock_ctx,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)cls;
	(void)sock_ctx;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		/* like a real provider's front end: without it, Nagle holds
		 * a response body behind its headers until the gateway's
		 * delayed ACK (up to 200 ms) */
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
			c, MHD_CONNECTION_INFO_CONNECTION_FD);
		int one = 1;

		if (ci)
			setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY,
				   &one, sizeof(one));
	}
	pthread_mutex_lock(&lock);
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		stats.connections++;
		stats.active++;
	} else {
		stats.active--;
	}
	pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	unsigned port = 0, max_conns = FD_SETSIZE - 4; /* MHD's default */
	struct sockaddr_storage ss = { 0 };
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
	sigset_t set;
	int sig;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = (unsigned)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--host"))
			host = argv[i + 1];
		else if (!strcmp(argv[i], "--max-connections"))
			max_conns = (unsigned)atoi(argv[i + 1]);
	}
	if (max_conns > FD_SETSIZE - 4) {
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (strchr(host, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, host, &a->sin6_addr);
		flags |= MHD_USE_IPv6;
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, host, &a->sin_addr);
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, NULL,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
			     MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
			     MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
			     MHD_OPTION_CONNECTION_TIMEOUT, 120u,
			     MHD_OPTION_CONNECTION_LIMIT, max_conns,
			     MHD_OPTION_THREAD_STACK_SIZE, (size_t)256 * 1024,
			     MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "mock-upstream: cannot listen on %s:%u\n", host,
			port);
		return 1;
	}
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	printf("PORT %u\n", info ? info->port : 0);
	fflush(stdout);
	while (sigwait(&set, &sig) != 0)
		;
	MHD_stop_daemon(d);
	json_object_put(stats.last_request);
	return 0;
}
