/* SPDX-License-Identifier: MIT */
/*
 * bench-coldstart: time from exec of a server to the first request it
 * serves with 200. Starts CMD (stdin /dev/null, output to --log), then
 * connects to --port every 100 us and sends the POST until a 200 comes
 * back. The server is left running; its pid is printed.
 *
 * Usage: bench-coldstart --port N --body-file F [-H h]... [--log FILE]
 *        [--timeout-ms 10000] [--cpu LIST] -- CMD [ARG]...
 * --cpu pins the server (not this poller) to CPUs "1" or "0,1".
 * Prints cold_us=N and pid=N.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static int try_once(const char *host, unsigned port, const char *req,
		    size_t len)
{
	struct timeval tv = { 2, 0 };
	struct http_parser hp;
	char buf[16384];
	size_t sent = 0;
	int fd = tcp_connect(host, port, false);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (sent < len) {
		ssize_t k = write(fd, req + sent, len - sent);

		if (k <= 0)
			goto fail;
		sent += (size_t)k;
	}
	hp_init(&hp);
	while (!hp.done && !hp.error) {
		ssize_t k = read(fd, buf, sizeof(buf));

		if (k <= 0)
			break;
		hp_feed(&hp, buf, (size_t)k, NULL, NULL);
	}
	close(fd);
	return hp.status == 200 && (hp.done || hp.state == HP_BODY_EOF) ? 0 : -1;
fail:
	close(fd);
	return -1;
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *path = "/v1/chat/completions";
	const char *body_file = NULL, *log = "/dev/null", *headers[MAX_HEADERS];
	size_t n_headers = 0, len;
	unsigned port = 0;
	long timeout_ms = 10000;
	cpu_set_t cpus;
	bool pin = false;
	char *req, *body;
	uint64_t t0;
	pid_t pid;
	int c;
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "path", required_argument, NULL, 'P' },
		{ "body-file", required_argument, NULL, 'b' },
		{ "log", required_argument, NULL, 'l' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "cpu", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};

	while ((c = getopt_long(argc, argv, "+p:P:b:l:t:c:H:", opts, NULL)) != -1) {
		switch (c) {
		case 'p': port = (unsigned)atoi(optarg); break;
		case 'P': path = optarg; break;
		case 'b': body_file = optarg; break;
		case 'l': log = optarg; break;
		case 't': timeout_ms = atol(optarg); break;
		case 'c': {
			char *save = NULL, *list = strdup(optarg);

			CPU_ZERO(&cpus);
			for (char *t = strtok_r(list, ",", &save); t;
			     t = strtok_r(NULL, ",", &save))
				CPU_SET(atoi(t), &cpus);
			free(list);
			pin = true;
			break;
		}
		case 'H':
			if (n_headers == MAX_HEADERS)
				die("too many headers");
			headers[n_headers++] = optarg;
			break;
		default:
			die("usage: bench-coldstart --port N --body-file F "
			    "[--log F] -- CMD [ARG]...");
		}
	}
	if (!port || !body_file || optind >= argc)
		die("bench-coldstart: --port, --body-file and a command are "
		    "required");
	body = read_file(body_file);
	req = build_request(host, port, path, headers, n_headers, body, &len);
	t0 = now_ns();
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);
		int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		dup2(in, 0);
		dup2(out, 1);
		dup2(out, 2);
		if (pin && sched_setaffinity(0, sizeof(cpus), &cpus) < 0)
			fprintf(stderr, "sched_setaffinity: %s\n", strerror(errno));
		execvp(argv[optind], argv + optind);
		fprintf(stderr, "exec %s: %s\n", argv[optind], strerror(errno));
		_exit(127);
	}
	for (;;) {
		struct timespec ts = { 0, 100000 };
		int st;

		if (try_once(host, port, req, len) == 0)
			break;
		if (waitpid(pid, &st, WNOHANG) == pid)
			die("bench-coldstart: %s exited before serving (see %s)",
			    argv[optind], log);
		if (now_ns() - t0 > (uint64_t)timeout_ms * 1000000u) {
			kill(pid, SIGTERM);
			die("bench-coldstart: no 200 within %ld ms", timeout_ms);
		}
		nanosleep(&ts, NULL);
	}
	printf("cold_us=%llu\npid=%d\n",
	       (unsigned long long)((now_ns() - t0) / 1000), (int)pid);
	free(req);
	free(body);
	return 0;
}
