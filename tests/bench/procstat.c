/* SPDX-License-Identifier: MIT */
/*
 * bench-procstat: resident memory and thread count of a set of processes,
 * summed, from /proc/PID/status. One sample, or with --duration-ms the
 * peaks of samples taken every --interval-ms.
 *
 * Usage: bench-procstat [--duration-ms MS] [--interval-ms MS] PID...
 * Prints rss_kb=N, threads=N, pss_kb=N (proportional set size at the
 * last sample: shared library pages split between the processes) and
 * anon_kb=N (anonymous memory at the last sample: heap and stacks, none
 * of the file pages that RSS counts).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

int main(int argc, char **argv)
{
	long duration = 0, interval = 100, rss_max = -1, thr_max = -1;
	pid_t pids[64];
	size_t n = 0;
	uint64_t end;
	int c;
	static const struct option opts[] = {
		{ "duration-ms", required_argument, NULL, 'd' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};

	while ((c = getopt_long(argc, argv, "d:i:", opts, NULL)) != -1) {
		if (c == 'd')
			duration = atol(optarg);
		else if (c == 'i')
			interval = atol(optarg);
		else
			die("usage: bench-procstat [--duration-ms MS] "
			    "[--interval-ms MS] PID...");
	}
	for (; optind < argc && n < 64; optind++)
		pids[n++] = (pid_t)atoi(argv[optind]);
	if (!n)
		die("bench-procstat: no PID given");
	end = now_ns() + (uint64_t)duration * 1000000u;
	do {
		long rss, thr;
		struct timespec ts = { interval / 1000,
				       (interval % 1000) * 1000000L };

		proc_sample(pids, n, &rss, &thr);
		if (rss > rss_max)
			rss_max = rss;
		if (thr > thr_max)
			thr_max = thr;
		if (now_ns() >= end)
			break;
		nanosleep(&ts, NULL);
	} while (1);
	printf("rss_kb=%ld\nthreads=%ld\npss_kb=%ld\nanon_kb=%ld\n", rss_max,
	       thr_max, proc_pss(pids, n), proc_anon(pids, n));
	return rss_max < 0;
}
