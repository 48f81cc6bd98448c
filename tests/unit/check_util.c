/* SPDX-License-Identifier: MIT */
/* Unit tests for util: the monotonic deadlines and timed waits that the
 * usage flush and the WebSocket workers' linger share, and the UTF-8
 * check that the request guard and every JSON string written share. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"
#include "util.h"

static int64_t ts_us(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000 + ts->tv_nsec / 1000;
}

/* Whole seconds, parts of a second and sums that carry into the seconds
 * all land after_us ahead, with tv_nsec a valid nanosecond count. */
START_TEST(deadline_is_after_us_ahead)
{
	static const uint64_t after[] = { 0, 1, 2000, 999999, 1000000,
					  1500000, 30000000 };

	for (size_t i = 0; i < ARRAY_SIZE(after); i++) {
		struct timespec before, deadline;
		int64_t ahead;

		clock_gettime(CLOCK_MONOTONIC, &before);
		monotonic_deadline(&deadline, after[i]);
		ck_assert_int_ge(deadline.tv_nsec, 0);
		ck_assert_int_lt(deadline.tv_nsec, 1000000000L);
		ahead = ts_us(&deadline) - ts_us(&before);
		/* the clock moves between the two readings, not by 50 ms */
		ck_assert_int_ge(ahead, (int64_t)after[i]);
		ck_assert_int_lt(ahead, (int64_t)after[i] + 50000);
	}
}
END_TEST

/* A wait on a monotonic condition variable until a monotonic deadline
 * ends at that deadline, not at once and not on the wall clock's time. */
START_TEST(timed_wait_ends_at_the_deadline)
{
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t c;
	struct timespec deadline;
	uint64_t t0 = now_us(), waited;
	int rc;

	cond_init_monotonic(&c);
	monotonic_deadline(&deadline, 20000);
	pthread_mutex_lock(&m);
	do
		rc = pthread_cond_timedwait(&c, &m, &deadline);
	while (rc == 0);
	pthread_mutex_unlock(&m);
	waited = now_us() - t0;
	ck_assert_int_eq(rc, ETIMEDOUT);
	ck_assert_uint_ge(waited, 20000);
	ck_assert_uint_lt(waited, 2000000);
	pthread_cond_destroy(&c);
}
END_TEST

/* Each first and last code point of a length, and the forms just past
 * the edges that RFC 3629 forbids. */
START_TEST(utf8_len_edges)
{
	static const struct {
		const char *s;
		size_t len;
	} cases[] = {
		{ "\xc2\x80", 2 },         { "\xdf\xbf", 2 },
		{ "\xe0\xa0\x80", 3 },     { "\xef\xbf\xbf", 3 },
		{ "\xed\x9f\xbf", 3 },     { "\xee\x80\x80", 3 },
		{ "\xf0\x90\x80\x80", 4 }, { "\xf4\x8f\xbf\xbf", 4 },
		{ "\xc1\xbf", 0 },         /* overlong */
		{ "\xe0\x9f\xbf", 0 },     /* overlong */
		{ "\xf0\x8f\xbf\xbf", 0 }, /* overlong */
		{ "\xed\xa0\x80", 0 },     /* surrogate */
		{ "\xf4\x90\x80\x80", 0 }, /* past U+10FFFF */
		{ "\xf5\x80\x80\x80", 0 },
		{ "\x80", 0 },             /* continuation */
		{ "\xc3\x28", 0 },         /* continuation missing */
		{ "\xe2\x82", 0 },         /* cut short */
		{ "a", 0 },                /* ASCII is not a sequence */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(utf8_len(cases[i].s, strlen(cases[i].s)) ==
			      cases[i].len, "case %zu", i);
	ck_assert_uint_eq(utf8_len("\xc3\xa9", 1), 0); /* n, not the NUL */
	ck_assert_uint_eq(utf8_len("", 0), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("time");
	TCase *tu = tcase_create("utf8");

	tcase_add_test(tc, deadline_is_after_us_ahead);
	tcase_add_test(tc, timed_wait_ends_at_the_deadline);
	suite_add_tcase(s, tc);
	tcase_add_test(tu, utf8_len_edges);
	suite_add_tcase(s, tu);
	return tu_run(s);
}
