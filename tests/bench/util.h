/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the benchmark clients: clocks, percentiles, request
 * building, a small HTTP/1.1 response parser (headers, Content-Length and
 * chunked bodies), the client side of WebSocket framing and /proc
 * sampling. Nothing here links the daemon.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MAX_HEADERS 16

enum { HP_HEAD, HP_BODY_LEN, HP_CHUNK_SIZE, HP_CHUNK_DATA, HP_CHUNK_CRLF,
       HP_TRAILER, HP_BODY_EOF, HP_DONE };

uint64_t now_ns(void);
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Percentile p (0..100) of v[0..n), sorting v in place; 0 when n == 0. */
uint64_t pct(uint64_t *v, size_t n, double p);

/* "POST path HTTP/1.1" with Host, Content-Type, Content-Length, the extra
 * headers and the body; malloc'd, length in *len. */
char *build_request(const char *host, unsigned port, const char *path,
		    const char *const *headers, size_t n_headers,
		    const char *body, size_t *len);

/* Reads a whole file into a NUL-terminated malloc'd string. */
char *read_file(const char *path);

int tcp_connect(const char *host, unsigned port, bool nonblock);

/* Incremental HTTP/1.1 response parser: feed bytes, it calls on_body for
 * decoded body bytes and reports when the response is complete. */
struct http_parser {
	int state;           /* enum in util.c */
	char head[8192];
	size_t head_len;
	int status;
	bool chunked;
	bool close;
	int64_t remaining;   /* body bytes left (length) or in this chunk */
	char line[64];       /* chunk-size line being read */
	size_t line_len;
	char overhead[32];   /* x-llm-bridge-overhead-us, "" if absent */
	bool done;
	bool error;
};

typedef void (*body_fn)(void *ud, const char *p, size_t n);

void hp_init(struct http_parser *hp);
/* Consumes up to n bytes; returns how many (less than n only once the
 * response is complete: the rest belongs to the next response). */
size_t hp_feed(struct http_parser *hp, const char *p, size_t n,
	       body_fn on_body, void *ud);

/* ---- WebSocket (RFC 6455), as much as the benchmark needs ---- */

/* "GET path" asking to upgrade to WebSocket, with the extra headers;
 * malloc'd, length in *len. The answer is a 101 (struct http_parser stops
 * after its head: the bytes after it are frames). */
char *ws_build_upgrade(const char *host, unsigned port, const char *path,
		       const char *const *headers, size_t n_headers,
		       size_t *len);
/* One masked text frame carrying text[0..n); malloc'd, length in *len. */
char *ws_build_text(const char *text, size_t n, size_t *len);
/* {"type":"chat","payload":BODY}, with ,"id":"ID" when id: the chat
 * message that carries an OpenAI request over llm-bridge's /v1/ws, as a
 * masked text frame; malloc'd, length in *len. */
char *ws_build_chat(const char *body, const char *id, size_t *len);

/* The server's frames, decoded incrementally. */
struct ws_frames {
	unsigned char hdr[14];
	size_t hdr_len, hdr_need;
	uint64_t remaining;  /* payload bytes left in this frame */
	int opcode;          /* of the frame being read */
	bool text;           /* the message being read is text */
	bool fin;
	long messages;       /* complete text messages so far */
	bool closed;         /* a close frame came */
	bool error;          /* masked or reserved: not a server's frame */
};

void wsf_init(struct ws_frames *w);
/* Consumes all n bytes: on_text gets the payload bytes of text messages,
 * in order (a message's end shows as messages going up); control frames
 * are skipped. */
void wsf_feed(struct ws_frames *w, const char *p, size_t n, body_fn on_text,
	      void *ud);

/* Sum of VmRSS (kB) and Threads over pids; -1 values when none readable. */
void proc_sample(const pid_t *pids, size_t n, long *rss_kb, long *threads);

/* Sum of Pss (kB, from smaps_rollup: shared pages split between the
 * processes that map them) over pids; -1 when none readable. */
long proc_pss(const pid_t *pids, size_t n);
/* Anonymous resident memory (RssAnon: heap, stacks; no file pages). */
long proc_anon(const pid_t *pids, size_t n);

#endif
