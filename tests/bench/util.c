/* SPDX-License-Identifier: MIT */
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../ws_client_frame.h"

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t pct(uint64_t *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_u64);
	/* nearest rank */
	i = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (i < 1)
		i = 1;
	if (i > n)
		i = n;
	return v[i - 1];
}

/* start (the request line and the fixed fields), the extra headers, the
 * empty line and body; malloc'd, length in *len. */
static char *assemble(const char *start, const char *const *headers,
		      size_t n_headers, const char *body, size_t *len)
{
	size_t blen = strlen(body), cap = strlen(start) + blen + 3;
	char *out;
	int k;

	for (size_t i = 0; i < n_headers; i++)
		cap += strlen(headers[i]) + 2;
	out = malloc(cap);
	if (!out)
		abort();
	k = snprintf(out, cap, "%s", start);
	for (size_t i = 0; i < n_headers; i++)
		k += snprintf(out + k, cap - (size_t)k, "%s\r\n", headers[i]);
	k += snprintf(out + k, cap - (size_t)k, "\r\n");
	memcpy(out + k, body, blen);
	*len = (size_t)k + blen;
	return out;
}

char *build_request(const char *host, unsigned port, const char *path,
		    const char *const *headers, size_t n_headers,
		    const char *body, size_t *len)
{
	char start[1024];

	snprintf(start, sizeof(start), "POST %s HTTP/1.1\r\nHost: %s:%u\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\n",
		 path, host, port, strlen(body));
	return assemble(start, headers, n_headers, body, len);
}

char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	if (!f)
		die("cannot open %s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	s = malloc((size_t)n + 1);
	if (!s || fread(s, 1, (size_t)n, f) != (size_t)n)
		die("cannot read %s", path);
	s[n] = '\0';
	fclose(f);
	return s;
}

int tcp_connect(const char *host, unsigned port, bool nonblock)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
			(nonblock ? SOCK_NONBLOCK : 0), 0);
	int one = 1;

	if (fd < 0)
		return -1;
	inet_pton(AF_INET, host, &a.sin_addr);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

void hp_init(struct http_parser *hp)
{
	memset(hp, 0, sizeof(*hp));
	hp->state = HP_HEAD;
}

static void parse_head(struct http_parser *hp)
{
	char *s = hp->head, *eol;
	bool has_len = false;

	if (sscanf(s, "HTTP/1.%*d %d", &hp->status) != 1) {
		hp->error = true;
		return;
	}
	while ((eol = strstr(s, "\r\n")) && eol != s) {
		*eol = '\0';
		if (!strncasecmp(s, "content-length:", 15)) {
			hp->remaining = strtoll(s + 15, NULL, 10);
			has_len = true;
		} else if (!strncasecmp(s, "transfer-encoding:", 18) &&
			   strcasestr(s + 18, "chunked")) {
			hp->chunked = true;
		} else if (!strncasecmp(s, "connection:", 11) &&
			   strcasestr(s + 11, "close")) {
			hp->close = true;
		} else if (!strncasecmp(s, "x-llm-bridge-overhead-us:", 25)) {
			const char *v = s + 25;

			while (*v == ' ')
				v++;
			snprintf(hp->overhead, sizeof(hp->overhead), "%s", v);
		}
		s = eol + 2;
	}
	if (hp->status == 204 || hp->status == 304 ||
	    (hp->status >= 100 && hp->status < 200))
		hp->state = HP_DONE;
	else if (hp->chunked)
		hp->state = HP_CHUNK_SIZE;
	else if (has_len)
		hp->state = hp->remaining ? HP_BODY_LEN : HP_DONE;
	else {
		hp->close = true;
		hp->state = HP_BODY_EOF;
	}
}

/* Hands on up to hp->remaining of the n bytes at p as body; moves to
 * state next once none remain. Returns the bytes consumed. */
static size_t body_bytes(struct http_parser *hp, const char *p, size_t n,
			 int next, body_fn on_body, void *ud)
{
	size_t k = n < (size_t)hp->remaining ? n : (size_t)hp->remaining;

	if (on_body)
		on_body(ud, p, k);
	hp->remaining -= (int64_t)k;
	if (!hp->remaining)
		hp->state = next;
	return k;
}

size_t hp_feed(struct http_parser *hp, const char *p, size_t n,
	       body_fn on_body, void *ud)
{
	size_t i = 0;

	while (i < n && hp->state != HP_DONE && !hp->error) {
		switch (hp->state) {
		case HP_HEAD: {
			char c = p[i++];

			if (hp->head_len + 1 >= sizeof(hp->head)) {
				hp->error = true;
				break;
			}
			hp->head[hp->head_len++] = c;
			hp->head[hp->head_len] = '\0';
			if (hp->head_len >= 4 &&
			    !memcmp(hp->head + hp->head_len - 4, "\r\n\r\n", 4))
				parse_head(hp);
			break;
		}
		case HP_BODY_LEN:
			i += body_bytes(hp, p + i, n - i, HP_DONE, on_body, ud);
			break;
		case HP_BODY_EOF:
			if (on_body)
				on_body(ud, p + i, n - i);
			i = n;
			break;
		case HP_CHUNK_SIZE:
		case HP_TRAILER: {
			char c = p[i++];

			if (c != '\n') {
				if (hp->line_len + 1 < sizeof(hp->line))
					hp->line[hp->line_len++] = c;
				break;
			}
			hp->line[hp->line_len] = '\0';
			if (hp->state == HP_TRAILER) {
				/* an empty line ends the trailers */
				if (hp->line_len <= 1)
					hp->state = HP_DONE;
				hp->line_len = 0;
				break;
			}
			hp->remaining = strtoll(hp->line, NULL, 16);
			hp->line_len = 0;
			hp->state = hp->remaining ? HP_CHUNK_DATA : HP_TRAILER;
			break;
		}
		case HP_CHUNK_DATA:
			i += body_bytes(hp, p + i, n - i, HP_CHUNK_CRLF, on_body,
					ud);
			break;
		case HP_CHUNK_CRLF:
			if (p[i++] == '\n')
				hp->state = HP_CHUNK_SIZE;
			break;
		}
	}
	hp->done = hp->state == HP_DONE;
	return i;
}

/* ---- WebSocket ---- */

char *ws_build_upgrade(const char *host, unsigned port, const char *path,
		       const char *const *headers, size_t n_headers,
		       size_t *len)
{
	char start[1024];

	snprintf(start, sizeof(start), "GET %s HTTP/1.1\r\nHost: %s:%u\r\n"
		 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		 "Sec-WebSocket-Version: 13\r\n", path, host, port);
	return assemble(start, headers, n_headers, "", len);
}

char *ws_build_text(const char *text, size_t n, size_t *len)
{
	/* a client masks every frame; the key need not be secret here */
	static const unsigned char mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	unsigned char *out = malloc(n + WS_CLIENT_FRAME_HEAD_MAX);

	if (!out)
		abort();
	*len = ws_client_frame(out, 1, text, n, mask);
	return (char *)out;
}

char *ws_build_chat(const char *body, const char *id, size_t *len)
{
	size_t blen = strlen(body), cap = blen + 128;
	char *msg = malloc(cap), *frame;
	size_t end = blen;
	int k;

	if (!msg)
		abort();
	while (end > 0 && (body[end - 1] == '\n' || body[end - 1] == ' '))
		end--;
	if (id)
		k = snprintf(msg, cap, "{\"type\":\"chat\",\"id\":\"%s\","
			     "\"payload\":%.*s}", id, (int)end, body);
	else
		k = snprintf(msg, cap, "{\"type\":\"chat\",\"payload\":%.*s}",
			     (int)end, body);
	frame = ws_build_text(msg, (size_t)k, len);
	free(msg);
	return frame;
}

void wsf_init(struct ws_frames *w)
{
	memset(w, 0, sizeof(*w));
	w->hdr_need = 2;
}

/* The header is in: where the payload length and the frame kind go. */
static void wsf_header_done(struct ws_frames *w)
{
	uint64_t n = w->hdr[1] & 0x7f;

	if (n == 126)
		n = (uint64_t)w->hdr[2] << 8 | w->hdr[3];
	else if (n == 127)
		for (int i = 2, j = 0; j < 8; i++, j++)
			n = j ? n << 8 | w->hdr[i] : w->hdr[i];
	w->remaining = n;
	w->opcode = w->hdr[0] & 0x0f;
	w->fin = w->hdr[0] & 0x80;
	if (w->opcode == 1)
		w->text = true;
	else if (w->opcode == 2)
		w->text = false;
	else if (w->opcode == 8)
		w->closed = true;
	if ((w->hdr[0] & 0x70) || (w->hdr[1] & 0x80))
		w->error = true;
}

void wsf_feed(struct ws_frames *w, const char *p, size_t n, body_fn on_text,
	      void *ud)
{
	size_t i = 0;

	while (i < n && !w->error) {
		if (w->hdr_len < w->hdr_need) {
			w->hdr[w->hdr_len++] = (unsigned char)p[i++];
			if (w->hdr_len == 2) {
				unsigned len7 = w->hdr[1] & 0x7f;

				w->hdr_need = 2 + (len7 == 126 ? 2 : 0) +
					      (len7 == 127 ? 8 : 0) +
					      (w->hdr[1] & 0x80 ? 4 : 0);
			}
			if (w->hdr_len < w->hdr_need)
				continue;
			wsf_header_done(w);
			if (w->remaining)
				continue;
		} else {
			size_t k = n - i < w->remaining ? n - i :
				   (size_t)w->remaining;
			bool data = w->opcode < 8;

			if (data && w->text && on_text)
				on_text(ud, p + i, k);
			i += k;
			w->remaining -= k;
			if (w->remaining)
				continue;
		}
		/* a frame ended */
		if (w->opcode < 8 && w->fin && w->text)
			w->messages++;
		w->hdr_len = 0;
		w->hdr_need = 2;
	}
}

void proc_sample(const pid_t *pids, size_t n, long *rss_kb, long *threads)
{
	*rss_kb = -1;
	*threads = -1;
	for (size_t i = 0; i < n; i++) {
		char path[64], line[256];
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/status", (int)pids[i]);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			long v;

			if (sscanf(line, "VmRSS: %ld", &v) == 1)
				*rss_kb = (*rss_kb < 0 ? 0 : *rss_kb) + v;
			else if (sscanf(line, "Threads: %ld", &v) == 1)
				*threads = (*threads < 0 ? 0 : *threads) + v;
		}
		fclose(f);
	}
}

/* The sum over the processes of the "Name: N kB" line of a /proc file. */
static long proc_sum(const pid_t *pids, size_t n, const char *file,
		     const char *name)
{
	size_t len = strlen(name);
	long total = -1;

	for (size_t i = 0; i < n; i++) {
		char path[64], line[256];
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pids[i], file);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (!strncmp(line, name, len) && line[len] == ':') {
				total = (total < 0 ? 0 : total) +
					atol(line + len + 1);
				break;
			}
		}
		fclose(f);
	}
	return total;
}

long proc_pss(const pid_t *pids, size_t n)
{
	return proc_sum(pids, n, "smaps_rollup", "Pss");
}

long proc_anon(const pid_t *pids, size_t n)
{
	return proc_sum(pids, n, "status", "RssAnon");
}
