/* SPDX-License-Identifier: MIT */
/*
 * bench-streams: N concurrent SSE streams from one thread (epoll,
 * non-blocking sockets), started evenly over a ramp. The mock sends its
 * events a fixed interval apart; for every stream this records the time
 * to the first response byte (TTFB) and to the first SSE frame (TTFT),
 * and every gap between consecutive frames. A stream is stall-free when
 * it got all expected frames, ended with [DONE], and no gap exceeded
 * twice the interval. A frame that completes in the same read() as the
 * one before it was coalesced (held back and sent together).
 * With --pid (repeatable) it samples the summed VmRSS and thread count of
 * those processes every 20 ms and reports the peaks, and how many streams
 * were active (answered and not yet ended) when RSS peaked. open_peak
 * counts connections from connect() on, active_peak from the first
 * response byte on: a server slow to accept has fewer active than open.
 * With --ws each stream is a WebSocket to llm-bridge's /v1/ws instead: an
 * upgrade, then the body as a {"type":"chat"} message; every text message
 * the server sends holds one SSE event, and the stream ends with the
 * [DONE] message. BENCH_TRACE_STALLS=1 prints, for each stream that
 * stalled, when it started, its longest gap, the frame that ended it and
 * when: stalls that all end at one moment point to a pause of the whole
 * proxy, stalls spread over the run to a proxy short of CPU.
 *
 * Usage: bench-streams --port N --body-file F -c STREAMS [--frames 67]
 *        [--interval-ms 20] [--ramp-ms 1000] [--pid PID]... [-H h]...
 *        [--ws]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

enum st { S_IDLE, S_SENDING, S_READING, S_DONE, S_FAILED };

struct stream {
	int fd;
	enum st state;
	size_t sent;
	uint64_t t_start, t_first_byte, t_first_frame, t_last_frame;
	uint64_t max_gap;
	uint64_t max_gap_end;  /* when the frame that ended max_gap was read */
	int max_gap_frame;
	uint64_t read_ts;      /* when the bytes being parsed were read */
	uint64_t last_frame_read; /* read_ts of the previous frame */
	int frames;
	char prev;             /* last body byte, for the "\n\n" boundary */
	char head[16];         /* the first bytes of the frame being read */
	size_t head_len;
	bool last_was_done;
	bool error_frame;
	struct http_parser hp;
	struct ws_frames wf;   /* --ws: the frames after the 101 */
	bool upgraded;
};

static struct stream *ss;
static uint64_t *gaps;
static size_t n_gaps, gaps_cap;
static long coalesced;
static bool trace; /* BENCH_TRACE=1: the first stream's gaps to stderr */
/* BENCH_TRACE_STALLS=1: each stalled stream's worst gap, to stderr */
static bool trace_stalls;

static void on_body(void *ud, const char *p, size_t n)
{
	struct stream *s = ud;

	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (s->head_len < sizeof(s->head))
			s->head[s->head_len++] = ch;
		if (ch == '\n' && s->prev == '\n') {
			/* a frame ends here */
			if (s->frames == 0) {
				s->t_first_frame = s->read_ts;
			} else {
				uint64_t g = s->read_ts - s->t_last_frame;

				if (g > s->max_gap) {
					s->max_gap = g;
					s->max_gap_end = s->read_ts;
					s->max_gap_frame = s->frames;
				}
				if (n_gaps < gaps_cap)
					gaps[n_gaps++] = g / 1000;
				if (trace && s == ss)
					fprintf(stderr, "frame %d gap_us=%llu %.40s\n",
						s->frames, (unsigned long long)(g / 1000),
						s->head);
				if (s->read_ts == s->last_frame_read)
					coalesced++;
			}
			s->last_was_done = s->head_len >= 12 &&
					   !memcmp(s->head, "data: [DONE]", 12);
			if (s->head_len >= 14 &&
			    !memcmp(s->head, "data: {\"error\"", 14))
				s->error_frame = true;
			s->t_last_frame = s->read_ts;
			s->last_frame_read = s->read_ts;
			s->frames++;
			s->head_len = 0;
			ch = '\0';
		}
		s->prev = ch;
	}
}

/* --ws: bytes of the server's answer to the upgrade and then its frames;
 * sends the chat message once the 101 is in. false when the stream is
 * over (done or failed: s->state says which). */
static bool ws_read(struct stream *s, const char *p, size_t n,
		    const char *chat, size_t chat_len)
{
	if (!s->upgraded) {
		size_t k = hp_feed(&s->hp, p, n, NULL, NULL);

		if (s->hp.error || (s->hp.done && s->hp.status != 101)) {
			s->state = S_FAILED;
			return false;
		}
		if (!s->hp.done)
			return true;
		/* a small frame into an empty socket buffer: one send */
		if (send(s->fd, chat, chat_len, MSG_NOSIGNAL) !=
		    (ssize_t)chat_len) {
			s->state = S_FAILED;
			return false;
		}
		s->upgraded = true;
		wsf_init(&s->wf);
		p += k;
		n -= k;
	}
	wsf_feed(&s->wf, p, n, on_body, s);
	if (s->wf.error || s->wf.closed) {
		s->state = S_FAILED;
		return false;
	}
	if (s->last_was_done) {
		s->state = S_DONE;
		return false;
	}
	return true;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *path = "/v1/chat/completions";
	const char *body_file = NULL, *headers[MAX_HEADERS];
	size_t n_headers = 0, len, n_pids = 0;
	pid_t pids[64];
	unsigned port = 0;
	long n = 0, frames_expected = 67, interval_ms = 20, ramp_ms = 1000;
	long timeout_ms = 30000;
	char *req, *body, *chat = NULL;
	size_t chat_len = 0;
	bool ws = false;
	int ep, c;
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "path", required_argument, NULL, 'P' },
		{ "body-file", required_argument, NULL, 'b' },
		{ "frames", required_argument, NULL, 'f' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "ramp-ms", required_argument, NULL, 'r' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "pid", required_argument, NULL, 'k' },
		{ "ws", no_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};

	while ((c = getopt_long(argc, argv, "h:p:P:b:f:i:r:t:k:c:H:w", opts,
				NULL)) != -1) {
		switch (c) {
		case 'h': host = optarg; break;
		case 'p': port = (unsigned)atoi(optarg); break;
		case 'P': path = optarg; break;
		case 'b': body_file = optarg; break;
		case 'f': frames_expected = atol(optarg); break;
		case 'i': interval_ms = atol(optarg); break;
		case 'r': ramp_ms = atol(optarg); break;
		case 't': timeout_ms = atol(optarg); break;
		case 'c': n = atol(optarg); break;
		case 'w': ws = true; break;
		case 'k':
			if (n_pids < sizeof(pids) / sizeof(pids[0]))
				pids[n_pids++] = (pid_t)atoi(optarg);
			break;
		case 'H':
			if (n_headers == MAX_HEADERS)
				die("too many headers");
			headers[n_headers++] = optarg;
			break;
		default:
			die("usage: bench-streams --port N --body-file F -c N "
			    "[--frames N] [--interval-ms MS] [--ramp-ms MS] "
			    "[--pid PID]... [-H header]... [--ws]");
		}
	}
	if (!port || !body_file || n <= 0)
		die("bench-streams: --port, --body-file and -c are required");
	raise_nofile();
	trace = getenv("BENCH_TRACE") != NULL;
	trace_stalls = getenv("BENCH_TRACE_STALLS") != NULL;
	body = read_file(body_file);
	if (ws) {
		if (!strcmp(path, "/v1/chat/completions"))
			path = "/v1/ws";
		req = ws_build_upgrade(host, port, path, headers, n_headers,
				       &len);
		chat = ws_build_chat(body, NULL, &chat_len);
	} else {
		req = build_request(host, port, path, headers, n_headers, body,
				    &len);
	}
	ss = calloc((size_t)n, sizeof(*ss));
	gaps_cap = (size_t)n * (size_t)(frames_expected + 4);
	gaps = calloc(gaps_cap, sizeof(*gaps));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!ss || !gaps || ep < 0)
		die("bench-streams: out of memory");

	uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(ramp_ms + timeout_ms) * 1000000u;
	uint64_t next_sample = t0;
	long started = 0, finished = 0, open_now = 0, open_peak = 0;
	long active_now = 0, active_peak = 0; /* answered, not yet ended */
	long rss_peak = -1, thr_peak = -1, rss_start = -1, thr_start = -1;
	long open_at_peak = 0;
	struct epoll_event evs[256];

	if (n_pids)
		proc_sample(pids, n_pids, &rss_start, &thr_start);
	while (finished < n && now_ns() < deadline) {
		uint64_t now = now_ns();
		int wait_ms = 10, k;

		/* start the streams that are due */
		while (started < n &&
		       now >= t0 + (uint64_t)ramp_ms * 1000000u *
				       (uint64_t)started / (uint64_t)n) {
			struct stream *s = &ss[started];
			struct epoll_event ev = { .events = EPOLLOUT | EPOLLIN,
						  .data.ptr = s };

			s->t_start = now_ns();
			s->fd = tcp_connect(host, port, true);
			hp_init(&s->hp);
			if (s->fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
				s->state = S_FAILED;
				finished++;
			} else {
				s->state = S_SENDING;
				open_now++;
			}
			started++;
		}
		if (open_now > open_peak)
			open_peak = open_now;
		if (n_pids && now >= next_sample) {
			long rss, thr;

			proc_sample(pids, n_pids, &rss, &thr);
			if (rss > rss_peak) {
				rss_peak = rss;
				open_at_peak = active_now;
			}
			if (thr > thr_peak)
				thr_peak = thr;
			next_sample = now + 20000000u;
		}
		if (started < n)
			wait_ms = 1;
		k = epoll_wait(ep, evs, 256, wait_ms);
		for (int e = 0; e < k; e++) {
			struct stream *s = evs[e].data.ptr;
			bool end = false;

			if (s->state == S_SENDING) {
				ssize_t w = send(s->fd, req + s->sent, len - s->sent,
						 MSG_NOSIGNAL);

				if (w < 0 && (errno == EAGAIN || errno == EINPROGRESS ||
					      errno == ENOTCONN))
					continue;
				if (w < 0) {
					s->state = S_FAILED;
					end = true;
				} else if ((s->sent += (size_t)w) == len) {
					struct epoll_event ev = { .events = EPOLLIN,
								  .data.ptr = s };

					epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
					s->state = S_READING;
				}
			} else if (s->state == S_READING) {
				char buf[16384];

				for (;;) {
					ssize_t r = read(s->fd, buf, sizeof(buf));

					if (r < 0 && errno == EINTR)
						continue;
					if (r < 0 && errno == EAGAIN)
						break;
					if (r <= 0) {
						s->state = s->hp.state == HP_BODY_EOF ?
							   S_DONE : S_FAILED;
						end = true;
						break;
					}
					s->read_ts = now_ns();
					if (!s->t_first_byte) {
						s->t_first_byte = s->read_ts;
						if (++active_now > active_peak)
							active_peak = active_now;
					}
					if (ws) {
						if (!ws_read(s, buf, (size_t)r, chat,
							     chat_len)) {
							end = true;
							break;
						}
						continue;
					}
					hp_feed(&s->hp, buf, (size_t)r, on_body, s);
					if (s->hp.error) {
						s->state = S_FAILED;
						end = true;
						break;
					}
					if (s->hp.done) {
						s->state = S_DONE;
						end = true;
						break;
					}
				}
			}
			if (end) {
				if (s->t_first_byte)
					active_now--;
				epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
				close(s->fd);
				s->fd = -1;
				open_now--;
				finished++;
			}
		}
	}

	/* tally */
	long complete = 0, stall_free = 0, failed = 0, non200 = 0, lost = 0;
	long stalled = 0, unfinished = 0, frames_total = 0;
	uint64_t *ttfb = calloc((size_t)n, sizeof(uint64_t));
	uint64_t *ttft = calloc((size_t)n, sizeof(uint64_t));
	size_t n_ttfb = 0, n_ttft = 0;
	uint64_t limit = (uint64_t)interval_ms * 2000000u;

	for (long i = 0; i < n; i++) {
		struct stream *s = &ss[i];
		bool ok;

		if (s->state == S_SENDING || s->state == S_READING) {
			unfinished++;
			close(s->fd);
		}
		if (s->state == S_FAILED)
			failed++;
		if (s->hp.status && s->hp.status != (ws ? 101 : 200))
			non200++;
		if (s->t_first_byte)
			ttfb[n_ttfb++] = (s->t_first_byte - s->t_start) / 1000;
		if (s->t_first_frame)
			ttft[n_ttft++] = (s->t_first_frame - s->t_start) / 1000;
		frames_total += s->frames;
		ok = s->state == S_DONE && s->hp.status == (ws ? 101 : 200) &&
		     s->frames == frames_expected && s->last_was_done &&
		     !s->error_frame;
		if (!ok) {
			lost++;
			continue;
		}
		complete++;
		if (s->max_gap > limit) {
			stalled++;
			if (trace_stalls)
				fprintf(stderr, "stall: stream %ld started at %llu ms, "
					"gap of %llu ms before frame %d, ending at %llu ms\n",
					i, (unsigned long long)((s->t_start - t0) / 1000000),
					(unsigned long long)(s->max_gap / 1000000),
					s->max_gap_frame,
					(unsigned long long)((s->max_gap_end - t0) / 1000000));
		} else
			stall_free++;
	}
	printf("streams=%ld\nstall_free=%ld\ncomplete=%ld\nstalled=%ld\n"
	       "lost=%ld\nfailed=%ld\nunfinished=%ld\nnon200=%ld\n"
	       "frames=%ld\ncoalesced=%ld\nopen_peak=%ld\nactive_peak=%ld\n", n,
	       stall_free, complete, stalled, lost, failed, unfinished, non200,
	       frames_total, coalesced, open_peak, active_peak);
	printf("ttfb_p50_us=%llu\nttfb_p99_us=%llu\n",
	       (unsigned long long)pct(ttfb, n_ttfb, 50),
	       (unsigned long long)pct(ttfb, n_ttfb, 99));
	printf("ttft_p50_us=%llu\nttft_p99_us=%llu\nttft_max_us=%llu\n",
	       (unsigned long long)pct(ttft, n_ttft, 50),
	       (unsigned long long)pct(ttft, n_ttft, 99),
	       (unsigned long long)pct(ttft, n_ttft, 100));
	printf("gap_p50_us=%llu\ngap_p99_us=%llu\ngap_p999_us=%llu\n"
	       "gap_max_us=%llu\n",
	       (unsigned long long)pct(gaps, n_gaps, 50),
	       (unsigned long long)pct(gaps, n_gaps, 99),
	       (unsigned long long)pct(gaps, n_gaps, 99.9),
	       (unsigned long long)pct(gaps, n_gaps, 100));
	if (n_pids)
		printf("rss_start_kb=%ld\nthreads_start=%ld\nrss_peak_kb=%ld\n"
		       "open_at_rss_peak=%ld\nthreads_peak=%ld\n", rss_start,
		       thr_start, rss_peak, open_at_peak, thr_peak);
	free(ttfb);
	free(ttft);
	free(gaps);
	free(ss);
	free(req);
	free(chat);
	free(body);
	return 0;
}
