/* SPDX-License-Identifier: MIT */
/* Unit tests for memtrim: when the heap is given back, and when not. */
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "memtrim.h"
#include "testutil.h"
#include "util.h"

/* Each test runs in its own process (Check forks), so the module's state
 * starts fresh. The trim callback records how long after the last
 * request's end each trim came. */
static atomic_uint_fast64_t min_gap_us = UINT64_MAX;

static void fake_trim(void)
{
	uint64_t gap = now_us() - memtrim_last_end_us();

	if (gap < atomic_load(&min_gap_us))
		atomic_store(&min_gap_us, gap);
}

/* A request that begins and ends at once. */
static void one_request(void)
{
	memtrim_busy();
	memtrim_idle();
}

/* Wait up to ms for at least n trims; the count seen. */
static uint64_t wait_trims(uint64_t n, unsigned ms)
{
	uint64_t deadline = now_ms() + ms;

	while (memtrim_count() < n && now_ms() < deadline)
		usleep(5000);
	return memtrim_count();
}

START_TEST(idle_daemon_never_trims)
{
	ck_assert_int_eq(memtrim_start(20, fake_trim), 0);
	usleep(200 * 1000);
	ck_assert_uint_eq(memtrim_count(), 0);
	memtrim_stop();
}
END_TEST

START_TEST(trims_once_after_quiet)
{
	uint64_t gap;

	ck_assert_int_eq(memtrim_start(50, fake_trim), 0);
	one_request();
	ck_assert_uint_eq(wait_trims(1, 5000), 1);
	gap = atomic_load(&min_gap_us);
	ck_assert_uint_ge(gap, 50 * 1000);
	/* nothing ran since: no second trim */
	usleep(300 * 1000);
	ck_assert_uint_eq(memtrim_count(), 1);
	/* the next request's end brings the next one */
	one_request();
	ck_assert_uint_eq(wait_trims(2, 5000), 2);
	memtrim_stop();
}
END_TEST

START_TEST(no_trim_while_a_request_runs)
{
	ck_assert_int_eq(memtrim_start(20, fake_trim), 0);
	/* one of two ends */
	memtrim_busy();
	one_request();
	usleep(300 * 1000);
	ck_assert_uint_eq(memtrim_count(), 0);
	memtrim_idle();
	ck_assert_uint_eq(wait_trims(1, 5000), 1);
	/* the last ends, and the next begins before the quiet period is up */
	one_request();
	memtrim_busy();
	usleep(300 * 1000);
	ck_assert_uint_eq(memtrim_count(), 1);
	memtrim_idle();
	ck_assert_uint_eq(wait_trims(2, 5000), 2);
	memtrim_stop();
}
END_TEST

/* Requests that come and go in quick succession: whatever the
 * scheduling, no trim comes sooner than the quiet period after the last
 * end before it. (The callback looks at the clock a moment after the
 * thread decided; the pauses leave it 100 ms for that moment.) */
START_TEST(every_trim_follows_a_quiet_period)
{
	uint64_t gap;

	ck_assert_int_eq(memtrim_start(100, fake_trim), 0);
	for (int i = 0; i < 200; i++) {
		memtrim_busy();
		usleep(500);
		memtrim_idle();
		usleep(i % 50 == 49 ? 200 * 1000 : 2000);
	}
	ck_assert_uint_ge(wait_trims(1, 5000), 1);
	gap = atomic_load(&min_gap_us);
	ck_assert_uint_ge(gap, 100 * 1000);
	memtrim_stop();
}
END_TEST

START_TEST(stop_with_a_trim_pending)
{
	uint64_t t0;

	ck_assert_int_eq(memtrim_start(60 * 1000, fake_trim), 0);
	one_request();
	t0 = now_ms();
	memtrim_stop();
	ck_assert_uint_lt(now_ms() - t0, 1000);
	ck_assert_uint_eq(memtrim_count(), 0);
	/* and it starts again */
	ck_assert_int_eq(memtrim_start(20, fake_trim), 0);
	one_request();
	ck_assert_uint_eq(wait_trims(1, 5000), 1);
	memtrim_stop();
}
END_TEST

START_TEST(the_real_trim_runs)
{
	/* NULL: malloc_trim(0) where the C library has it; either way the
	 * calls must be safe, and a trim must come where there is one */
	ck_assert_int_eq(memtrim_start(20, NULL), 0);
	for (int i = 0; i < 100; i++) {
		void *volatile p = malloc(64 * 1024);

		free(p);
	}
	one_request();
#ifdef HAVE_MALLOC_TRIM
	ck_assert_uint_eq(wait_trims(1, 5000), 1);
#endif
	memtrim_stop();
}
END_TEST

static Suite *memtrim_suite(void)
{
	Suite *s = suite_create("memtrim");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, idle_daemon_never_trims);
	tcase_add_test(tc, trims_once_after_quiet);
	tcase_add_test(tc, no_trim_while_a_request_runs);
	tcase_add_test(tc, every_trim_follows_a_quiet_period);
	tcase_add_test(tc, stop_with_a_trim_pending);
	tcase_add_test(tc, the_real_trim_runs);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(memtrim_suite());
}
