/* SPDX-License-Identifier: MIT */
/*
 * bench-lat: request latency at concurrency 1 over one keep-alive
 * connection (plain blocking socket, TCP_NODELAY). Sends the same POST n
 * times after a warm-up and prints, as key=value lines, the latency
 * percentiles in microseconds, how many responses were not 200, how many
 * times the server closed the connection, and the median of the
 * x-llm-bridge-overhead-us response header when the server sends one.
 * With --ws the requests go over one WebSocket to llm-bridge's /v1/ws
 * instead, each as a {"type":"chat","id":..} message whose answer is one
 * {"type":"completion"} message (anything else counts as not 200).
 *
 * Usage: bench-lat --port N [--host A] [--path P] --body-file F
 *                  [-H "Name: value"]... [-n 20000] [--warmup 1000] [--ws]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static int conn_fd = -1;
static long reconnects;

static int read_some(char *buf, size_t size)
{
	for (;;) {
		ssize_t k = read(conn_fd, buf, size);

		if (k < 0 && errno == EINTR)
			continue;
		return (int)k;
	}
}

static int write_all(const char *p, size_t len)
{
	while (len) {
		ssize_t k = write(conn_fd, p, len);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

static int one_request(const char *host, unsigned port, const char *req,
		       size_t len, struct http_parser *hp)
{
	static char buf[65536];
	static size_t have, off;

	if (conn_fd < 0) {
		conn_fd = tcp_connect(host, port, false);
		if (conn_fd < 0)
			return -1;
		reconnects++;
		have = off = 0;
	}
	if (write_all(req, len) < 0)
		goto fail;
	hp_init(hp);
	for (;;) {
		if (off < have) {
			off += hp_feed(hp, buf + off, have - off, NULL, NULL);
			if (hp->error)
				goto fail;
			if (hp->done)
				break;
		}
		int k = read_some(buf, sizeof(buf));

		if (k == 0 && hp->close && !hp->chunked) {
			hp->done = true;
			break;
		}
		if (k <= 0)
			goto fail;
		have = (size_t)k;
		off = 0;
	}
	if (hp->close) {
		close(conn_fd);
		conn_fd = -1;
	}
	return 0;
fail:
	close(conn_fd);
	conn_fd = -1;
	return -1;
}

/* ---- --ws ---- */

#define COMPLETION "{\"type\":\"completion\""

static struct ws_frames wf;
static char msg_head[32];
static size_t msg_head_len;

static void on_ws_text(void *ud, const char *p, size_t n)
{
	(void)ud;
	while (n-- && msg_head_len < sizeof(msg_head) - 1)
		msg_head[msg_head_len++] = *p++;
	msg_head[msg_head_len] = '\0';
}

/* Connects and upgrades; frames that came with the 101 are fed on. */
static int ws_connect(const char *host, unsigned port, const char *upgrade,
		      size_t upgrade_len)
{
	static char buf[4096];
	struct http_parser hp;
	size_t used = 0;
	int k = 0;

	conn_fd = tcp_connect(host, port, false);
	if (conn_fd < 0 || write_all(upgrade, upgrade_len) < 0)
		return -1;
	reconnects++;
	hp_init(&hp);
	while (!hp.done && !hp.error) {
		k = read_some(buf, sizeof(buf));
		if (k <= 0)
			return -1;
		used = hp_feed(&hp, buf, (size_t)k, NULL, NULL);
	}
	if (hp.error || hp.status != 101)
		return -1;
	wsf_init(&wf);
	wsf_feed(&wf, buf + used, (size_t)k - used, on_ws_text, NULL);
	return 0;
}

static int one_ws_request(const char *host, unsigned port,
			  const char *upgrade, size_t upgrade_len,
			  const char *chat, size_t chat_len,
			  struct http_parser *hp)
{
	static char buf[65536];
	long want;

	if (conn_fd < 0 && ws_connect(host, port, upgrade, upgrade_len) < 0)
		goto fail;
	want = wf.messages + 1;
	msg_head_len = 0;
	if (write_all(chat, chat_len) < 0)
		goto fail;
	while (wf.messages < want) {
		int k = read_some(buf, sizeof(buf));

		if (k <= 0)
			goto fail;
		wsf_feed(&wf, buf, (size_t)k, on_ws_text, NULL);
		if (wf.error || wf.closed)
			goto fail;
	}
	hp_init(hp);
	hp->status = strncmp(msg_head, COMPLETION, strlen(COMPLETION)) ? 0 :
		     200;
	if (!hp->status && getenv("BENCH_TRACE"))
		fprintf(stderr, "not a completion: %s\n", msg_head);
	return 0;
fail:
	if (conn_fd >= 0)
		close(conn_fd);
	conn_fd = -1;
	return -1;
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *path = "/v1/chat/completions";
	const char *body_file = NULL, *headers[MAX_HEADERS];
	size_t n_headers = 0, len;
	unsigned port = 0;
	long n = 20000, warmup = 1000, errors = 0, non200 = 0;
	uint64_t *lat, *ovh;
	size_t n_ovh = 0;
	char *req, *body, *chat = NULL;
	size_t chat_len = 0;
	bool ws = false;
	struct http_parser hp;
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "path", required_argument, NULL, 'P' },
		{ "body-file", required_argument, NULL, 'b' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "ws", no_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h:p:P:b:w:n:H:W", opts, NULL)) != -1) {
		switch (c) {
		case 'h': host = optarg; break;
		case 'p': port = (unsigned)atoi(optarg); break;
		case 'P': path = optarg; break;
		case 'b': body_file = optarg; break;
		case 'w': warmup = atol(optarg); break;
		case 'n': n = atol(optarg); break;
		case 'W': ws = true; break;
		case 'H':
			if (n_headers == MAX_HEADERS)
				die("too many headers");
			headers[n_headers++] = optarg;
			break;
		default:
			die("usage: bench-lat --port N --body-file F [-n N] "
			    "[--warmup N] [-H header]... [--ws]");
		}
	}
	if (!port || !body_file || n <= 0)
		die("bench-lat: --port and --body-file are required");
	body = read_file(body_file);
	if (ws) {
		if (!strcmp(path, "/v1/chat/completions"))
			path = "/v1/ws";
		req = ws_build_upgrade(host, port, path, headers, n_headers,
				       &len);
		chat = ws_build_chat(body, "bench", &chat_len);
	} else {
		req = build_request(host, port, path, headers, n_headers, body,
				    &len);
	}
#define ONE_REQUEST() (ws ? one_ws_request(host, port, req, len, chat, \
					   chat_len, &hp) : \
		       one_request(host, port, req, len, &hp))
	lat = calloc((size_t)n, sizeof(*lat));
	ovh = calloc((size_t)n, sizeof(*ovh));
	if (!lat || !ovh)
		abort();
	for (long i = 0; i < warmup; i++)
		if (ONE_REQUEST() < 0)
			errors++;
	reconnects = 0;
	for (long i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		if (ONE_REQUEST() < 0) {
			errors++;
			i--;
			if (errors > 100)
				die("bench-lat: too many failed requests");
			continue;
		}
		lat[i] = (now_ns() - t0) / 1000;
		if (hp.status != 200)
			non200++;
		if (hp.overhead[0])
			ovh[n_ovh++] = strtoull(hp.overhead, NULL, 10);
	}
	printf("n=%ld\nerrors=%ld\nnon200=%ld\nconnects=%ld\n", n, errors,
	       non200, reconnects);
	{
		uint64_t sum = 0;

		for (long i = 0; i < n; i++)
			sum += lat[i];
		printf("mean_us=%.1f\n", (double)sum / (double)n);
	}
	printf("p50_us=%llu\n", (unsigned long long)pct(lat, (size_t)n, 50));
	printf("p90_us=%llu\n", (unsigned long long)pct(lat, (size_t)n, 90));
	printf("p99_us=%llu\n", (unsigned long long)pct(lat, (size_t)n, 99));
	printf("p999_us=%llu\n", (unsigned long long)pct(lat, (size_t)n, 99.9));
	printf("max_us=%llu\n", (unsigned long long)pct(lat, (size_t)n, 100));
	if (n_ovh)
		printf("overhead_p50_us=%llu\noverhead_p99_us=%llu\n",
		       (unsigned long long)pct(ovh, n_ovh, 50),
		       (unsigned long long)pct(ovh, n_ovh, 99));
	free(lat);
	free(ovh);
	free(req);
	free(chat);
	free(body);
	return 0;
}
