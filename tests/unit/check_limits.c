/* SPDX-License-Identifier: MIT */
/* Unit tests for limits: rpm/tpm windows, budgets, settlement, threads. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limiter.h"
#include "testutil.h"

/* Fixed instants (UTC), from Python's calendar.timegm. */
#define MAR15_NOON   1710504000LL /* 2024-03-15 12:00:00, a Friday */
#define MAR15_START  1710460800LL /* 2024-03-15 00:00:00 */
#define MAR16_START  1710547200LL /* 2024-03-16 00:00:00 */
#define MAR01_START  1709251200LL /* 2024-03-01 00:00:00 */
#define FEB01_START  1706745600LL /* 2024-02-01 00:00:00 (leap year) */
#define FEB01_2023   1675209600LL /* 2023-02-01 00:00:00 */
#define MAR01_2023   1677628800LL /* 2023-03-01 00:00:00 */
#define DEC01_2023   1701388800LL /* 2023-12-01 00:00:00 */
#define DEC31_NOON   1704024000LL /* 2023-12-31 12:00:00 */
#define JAN01_2024   1704067200LL /* 2024-01-01 00:00:00 */
#define JAN31_NOON   1706702400LL /* 2024-01-31 12:00:00 */
#define APR01_START  1711929600LL /* 2024-04-01 00:00:00 */
#define MAY01_START  1714521600LL /* 2024-05-01 00:00:00 */
#define DAY 86400LL

static const int64_t T = MAR15_NOON;

static struct limit_spec spec_rpm(uint32_t rpm)
{
	struct limit_spec s = { .rpm = rpm };
	return s;
}

static struct limit_spec spec_tpm(uint64_t tpm)
{
	struct limit_spec s = { .tpm = tpm };
	return s;
}

static struct limit_spec spec_budget(uint64_t tokens, enum limit_period p)
{
	struct limit_spec s = { .budget_tokens = tokens, .period = p };
	return s;
}

/* Admit and settle at once with the estimate as the real usage. */
static enum limit_verdict use(struct limiter *l, const char *key,
			      const struct limit_spec *s, uint64_t tokens,
			      int64_t now)
{
	struct limit_ticket t;
	enum limit_verdict v = limiter_admit(l, key, s, tokens, 0, now, &t,
					     NULL);

	limiter_settle(l, &t, tokens, 0, now);
	return v;
}

/* Tokens left in key's window at now, seen through a 0-token admission
 * (which counts one request, so only use it under a tpm-only spec). */
static uint64_t tokens_left(struct limiter *l, const char *key,
			    const struct limit_spec *s, int64_t now)
{
	struct limit_ticket t;
	struct limit_status st;

	ck_assert_int_eq(limiter_admit(l, key, s, 0, 0, now, &t, &st),
			 LIMIT_OK);
	limiter_settle(l, &t, 0, 0, now);
	return st.remaining_tokens;
}

START_TEST(no_limits_reserve_nothing)
{
	struct limiter *l = limiter_new();
	struct limit_spec none = { 0 };
	struct limit_spec period_only = { .period = LIMIT_PERIOD_DAY };
	struct limit_ticket t;
	struct limit_status st;

	memset(&st, 0xff, sizeof(st));
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(limiter_admit(l, "k", &none, 1000000, 5.0, T,
					       &t, &st), LIMIT_OK);
		ck_assert_ptr_null(t.key);
		ck_assert_uint_eq(t.reserved_tokens, 0);
		ck_assert_int_eq(st.verdict, LIMIT_OK);
		ck_assert_uint_eq(st.limit_requests, 0);
		ck_assert_uint_eq(st.limit_tokens, 0);
		ck_assert_uint_eq(st.retry_after_s, 0);
		limiter_settle(l, &t, 5000000, 9.0, T);
	}
	ck_assert_int_eq(limiter_admit(l, "k", &period_only, 1, 0, T, &t, NULL),
			 LIMIT_OK);
	ck_assert_ptr_null(t.key);
	/* none of that counted: a limited spec now sees an empty window */
	struct limit_spec rpm1 = spec_rpm(1);
	ck_assert_int_eq(limiter_admit(l, "k", &rpm1, 0, 0, T, &t, &st),
			 LIMIT_OK);
	ck_assert_ptr_nonnull(t.key);
	ck_assert_uint_eq(st.remaining_requests, 0);
	limiter_settle(l, &t, 0, 0, T);
	limiter_settle(l, NULL, 0, 0, T); /* tolerated */
	limiter_free(l);
	limiter_free(NULL);
}
END_TEST

START_TEST(rpm_exact_boundary)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = spec_rpm(5);
	struct limit_ticket t;
	struct limit_status st;

	for (uint32_t i = 0; i < 5; i++) {
		ck_assert_int_eq(limiter_admit(l, "k", &s, 10, 0, T, &t, &st),
				 LIMIT_OK);
		ck_assert_uint_eq(st.limit_requests, 5);
		ck_assert_uint_eq(st.remaining_requests, 4 - i);
		ck_assert_uint_eq(st.retry_after_s, 0);
		limiter_settle(l, &t, 10, 0, T);
	}
	ck_assert_int_eq(limiter_admit(l, "k", &s, 10, 0, T, &t, &st),
			 LIMIT_RPM);
	ck_assert_int_eq(st.verdict, LIMIT_RPM);
	ck_assert_uint_eq(st.remaining_requests, 0);
	/* all five are in this second: it leaves the window in 60 s */
	ck_assert_uint_eq(st.retry_after_s, 60);
	ck_assert_ptr_null(t.key); /* nothing reserved */
	/* a refusal does not count: the next second is refused the same way */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0, T + 1, &t, &st),
			 LIMIT_RPM);
	ck_assert_uint_eq(st.retry_after_s, 59);

	/* rpm = 1: exactly one */
	s = spec_rpm(1);
	ck_assert_int_eq(use(l, "one", &s, 0, T), LIMIT_OK);
	ck_assert_int_eq(use(l, "one", &s, 0, T), LIMIT_RPM);
	limiter_free(l);
}
END_TEST

START_TEST(tpm_boundary)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = spec_tpm(100);
	struct limit_ticket t;
	struct limit_status st;

	ck_assert_int_eq(limiter_admit(l, "k", &s, 60, 0, T, &t, &st),
			 LIMIT_OK);
	ck_assert_uint_eq(st.limit_tokens, 100);
	ck_assert_uint_eq(st.remaining_tokens, 40);
	ck_assert_uint_eq(st.limit_requests, 0);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 40, 0, T, &t, &st),
			 LIMIT_OK);
	ck_assert_uint_eq(st.remaining_tokens, 0);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 1, 0, T, &t, &st),
			 LIMIT_TPM);
	ck_assert_uint_eq(st.remaining_tokens, 0);
	ck_assert_uint_eq(st.retry_after_s, 60);
	/* a request estimated at 0 tokens still fits a full window */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0, T, &t, &st),
			 LIMIT_OK);
	limiter_free(l);
}
END_TEST

START_TEST(tpm_estimate_above_limit)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = spec_tpm(100);
	struct limit_ticket t;
	struct limit_status st;

	/* empty window, but 101 can never fit in 100: refuse, a window's wait */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 101, 0, T, &t, &st),
			 LIMIT_TPM);
	ck_assert_uint_eq(st.retry_after_s, 60);
	ck_assert_uint_eq(st.remaining_tokens, 100);
	ck_assert_ptr_null(t.key);
	ck_assert_int_eq(limiter_admit(l, "k", &s, UINT64_MAX, 0, T, &t, &st),
			 LIMIT_TPM);
	ck_assert_uint_eq(st.retry_after_s, 60);
	/* and nothing was reserved by the refusals */
	ck_assert_int_eq(use(l, "k", &s, 100, T), LIMIT_OK);
	/* with a part-full window it is still a window, not the oldest second */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 150, 0, T + 30, &t, &st),
			 LIMIT_TPM);
	ck_assert_uint_eq(st.retry_after_s, 60);
	limiter_free(l);
}
END_TEST

START_TEST(sliding_expiry)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = spec_rpm(3);
	struct limit_ticket t;
	struct limit_status st;

	ck_assert_int_eq(use(l, "k", &s, 0, T), LIMIT_OK);
	ck_assert_int_eq(use(l, "k", &s, 0, T + 10), LIMIT_OK);
	ck_assert_int_eq(use(l, "k", &s, 0, T + 20), LIMIT_OK);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0, T + 30, &t, &st),
			 LIMIT_RPM);
	ck_assert_uint_eq(st.retry_after_s, 30); /* T leaves at T + 60 */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0, T + 59, &t, &st),
			 LIMIT_RPM);
	ck_assert_uint_eq(st.retry_after_s, 1);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0, T + 60, &t, &st),
			 LIMIT_OK);
	ck_assert_uint_eq(st.remaining_requests, 0); /* T+10, T+20, T+60 */
	limiter_settle(l, &t, 0, 0, T + 60);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0, T + 61, &t, &st),
			 LIMIT_RPM);
	ck_assert_uint_eq(st.retry_after_s, 9); /* T+10 leaves at T+70 */
	/* a whole idle window later everything has gone */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0, T + 200, &t, &st),
			 LIMIT_OK);
	ck_assert_uint_eq(st.remaining_requests, 2);
	limiter_free(l);
}
END_TEST

START_TEST(sliding_expiry_tokens)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = spec_tpm(100);
	struct limit_ticket t;
	struct limit_status st;

	ck_assert_int_eq(use(l, "k", &s, 30, T), LIMIT_OK);
	ck_assert_int_eq(use(l, "k", &s, 30, T + 10), LIMIT_OK);
	ck_assert_int_eq(use(l, "k", &s, 40, T + 20), LIMIT_OK);
	/* 50 more needs 50 to leave: T frees 30, T+10 brings it to 60 */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 50, 0, T + 30, &t, &st),
			 LIMIT_TPM);
	ck_assert_uint_eq(st.retry_after_s, 40);
	/* 30 more is freed by T alone */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 30, 0, T + 30, &t, &st),
			 LIMIT_TPM);
	ck_assert_uint_eq(st.retry_after_s, 30);
	ck_assert_uint_eq(tokens_left(l, "k", &s, T + 59), 0);
	ck_assert_uint_eq(tokens_left(l, "k", &s, T + 60), 30);
	ck_assert_uint_eq(tokens_left(l, "k", &s, T + 70), 60);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 50, 0, T + 70, &t, &st),
			 LIMIT_OK);
	ck_assert_uint_eq(st.remaining_tokens, 10);
	limiter_settle(l, &t, 50, 0, T + 70);
	ck_assert_uint_eq(tokens_left(l, "k", &s, T + 80), 50);
	ck_assert_uint_eq(tokens_left(l, "k", &s, T + 130), 100);
	limiter_free(l);
}
END_TEST

START_TEST(spec_change_between_admissions)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = spec_rpm(10);
	struct limit_ticket t;
	struct limit_status st;

	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(use(l, "k", &s, 0, T), LIMIT_OK);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(use(l, "k", &s, 0, T + 5), LIMIT_OK);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(use(l, "k", &s, 0, T + 10), LIMIT_OK);
	ck_assert_int_eq(use(l, "k", &s, 0, T + 20), LIMIT_RPM);

	/* lowered to 5: 6 of the 10 must leave, i.e. T and T+5 (4 + 3) */
	s.rpm = 5;
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0, T + 20, &t, &st),
			 LIMIT_RPM);
	ck_assert_uint_eq(st.limit_requests, 5);
	ck_assert_uint_eq(st.remaining_requests, 0);
	ck_assert_uint_eq(st.retry_after_s, 45);
	ck_assert_int_eq(use(l, "k", &s, 0, T + 64), LIMIT_RPM);
	ck_assert_int_eq(use(l, "k", &s, 0, T + 65), LIMIT_OK); /* 3 + 1 */

	/* raised to 20: room again at once, counted from the same window */
	s.rpm = 20;
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0, T + 65, &t, &st),
			 LIMIT_OK);
	ck_assert_uint_eq(st.remaining_requests, 20 - 5);

	/* a tpm added later sees the tokens counted all along */
	s = spec_tpm(100);
	ck_assert_int_eq(use(l, "tok", &s, 0, T), LIMIT_OK);
	s = spec_rpm(100);
	ck_assert_int_eq(use(l, "tok", &s, 70, T + 1), LIMIT_OK);
	s.tpm = 100;
	ck_assert_int_eq(limiter_admit(l, "tok", &s, 31, 0, T + 2, &t, &st),
			 LIMIT_TPM);
	ck_assert_uint_eq(st.remaining_tokens, 30);
	limiter_free(l);
}
END_TEST

START_TEST(settle_down_and_up)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = spec_tpm(100);
	struct limit_ticket t, t2;
	struct limit_status st;

	ck_assert_int_eq(limiter_admit(l, "k", &s, 50, 0, T, &t, &st),
			 LIMIT_OK);
	ck_assert_uint_eq(st.remaining_tokens, 50);
	ck_assert_uint_eq(t.reserved_tokens, 50);
	ck_assert_int_eq(t.second, T);
	limiter_settle(l, &t, 20, 0, T + 1); /* used less than estimated */
	ck_assert_uint_eq(tokens_left(l, "k", &s, T + 1), 80);

	ck_assert_int_eq(limiter_admit(l, "k", &s, 30, 0, T + 2, &t, &st),
			 LIMIT_OK);
	ck_assert_uint_eq(st.remaining_tokens, 50);
	limiter_settle(l, &t, 70, 0, T + 3); /* used more */
	ck_assert_uint_eq(tokens_left(l, "k", &s, T + 3), 10);
	ck_assert_int_eq(use(l, "k", &s, 11, T + 3), LIMIT_TPM);
	ck_assert_int_eq(use(l, "k", &s, 10, T + 3), LIMIT_OK);

	/* usage beyond the limit: refused until enough expires, then fine */
	ck_assert_int_eq(limiter_admit(l, "big", &s, 10, 0, T, &t2, &st),
			 LIMIT_OK);
	limiter_settle(l, &t2, 250, 0, T);
	ck_assert_int_eq(limiter_admit(l, "big", &s, 0, 0, T + 1, &t2, &st),
			 LIMIT_TPM);
	ck_assert_uint_eq(st.remaining_tokens, 0);
	ck_assert_uint_eq(st.retry_after_s, 59);
	ck_assert_uint_eq(tokens_left(l, "big", &s, T + 60), 100);
	limiter_free(l);
}
END_TEST

START_TEST(settle_zero_frees_reservation)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = { .rpm = 10, .tpm = 100, .budget_tokens = 150,
				.period = LIMIT_PERIOD_DAY };
	struct limit_ticket t;
	struct limit_status st;

	ck_assert_int_eq(limiter_admit(l, "k", &s, 100, 0, T, &t, &st),
			 LIMIT_OK);
	ck_assert_int_eq(use(l, "k", &s, 1, T), LIMIT_TPM);
	limiter_settle(l, &t, 0, 0, T); /* the upstream failed */
	/* tokens and budget are free again; the request itself still counted */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 100, 0, T, &t, &st),
			 LIMIT_OK);
	ck_assert_uint_eq(st.remaining_tokens, 0);
	ck_assert_uint_eq(st.remaining_requests, 10 - 2);
	limiter_settle(l, &t, 0, 0, T);
	/* budget: nothing spent, so 150 fits on a later, empty window */
	ck_assert_int_eq(use(l, "k", &s, 100, T + 60), LIMIT_OK);
	ck_assert_int_eq(use(l, "k", &s, 51, T + 120), LIMIT_BUDGET);
	ck_assert_int_eq(use(l, "k", &s, 50, T + 120), LIMIT_OK);
	limiter_free(l);
}
END_TEST

START_TEST(double_settle_is_noop)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = { .tpm = 1000, .budget_tokens = 100,
				.period = LIMIT_PERIOD_DAY };
	struct limit_ticket t, zero;

	memset(&zero, 0, sizeof(zero));
	ck_assert_int_eq(limiter_admit(l, "k", &s, 50, 0, T, &t, NULL),
			 LIMIT_OK);
	ck_assert_ptr_nonnull(t.key);
	limiter_settle(l, &t, 20, 0, T);
	ck_assert_int_eq(memcmp(&t, &zero, sizeof(t)), 0); /* cleared */
	limiter_settle(l, &t, 1000, 0, T);
	limiter_settle(l, &t, 0, 0, T);
	ck_assert_uint_eq(tokens_left(l, "k", &s, T), 980);
	/* the budget saw 20 spent, once: 80 left */
	ck_assert_int_eq(use(l, "k", &s, 81, T), LIMIT_BUDGET);
	ck_assert_int_eq(use(l, "k", &s, 80, T), LIMIT_OK);
	ck_assert_int_eq(use(l, "k", &s, 1, T), LIMIT_BUDGET);
	limiter_free(l);
}
END_TEST

START_TEST(settle_after_bucket_left_window)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = { .tpm = 100, .budget_tokens = 1000,
				.period = LIMIT_PERIOD_DAY };
	struct limit_ticket old, late;

	/* the bucket was recycled for T + 60: the old ticket must not touch it */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 50, 0, T, &old, NULL),
			 LIMIT_OK);
	ck_assert_int_eq(use(l, "k", &s, 30, T + 60), LIMIT_OK);
	limiter_settle(l, &old, 0, 0, T + 60);
	ck_assert_uint_eq(tokens_left(l, "k", &s, T + 60), 70);
	/* nor may a later, larger reservation drive it below zero */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 60, 0, T + 61, &old, NULL),
			 LIMIT_OK);
	ck_assert_int_eq(use(l, "k", &s, 10, T + 121), LIMIT_OK);
	limiter_settle(l, &old, 0, 0, T + 121);
	ck_assert_uint_eq(tokens_left(l, "k", &s, T + 121), 90);

	/* not recycled, but out of the window: nothing to adjust there, the
	 * budget still learns the real usage */
	ck_assert_int_eq(limiter_admit(l, "late", &s, 50, 0, T, &late, NULL),
			 LIMIT_OK);
	limiter_settle(l, &late, 900, 0, T + 90);
	ck_assert_uint_eq(tokens_left(l, "late", &s, T + 90), 100);
	ck_assert_int_eq(use(l, "late", &s, 100, T + 90), LIMIT_OK);
	ck_assert_int_eq(use(l, "late", &s, 1, T + 200), LIMIT_BUDGET);
	limiter_free(l);
}
END_TEST

START_TEST(period_start)
{
	ck_assert_int_eq(limiter_period_start(LIMIT_PERIOD_NONE, T), 0);
	ck_assert_int_eq(limiter_period_start(LIMIT_PERIOD_DAY, T),
			 MAR15_START);
	ck_assert_int_eq(limiter_period_start(LIMIT_PERIOD_DAY, MAR15_START),
			 MAR15_START);
	ck_assert_int_eq(limiter_period_start(LIMIT_PERIOD_DAY,
					      MAR15_START - 1),
			 MAR15_START - DAY);
	ck_assert_int_eq(limiter_period_start(LIMIT_PERIOD_DAY,
					      MAR16_START - 1), MAR15_START);
	ck_assert_int_eq(limiter_period_start(LIMIT_PERIOD_MONTH, T),
			 MAR01_START);
	ck_assert_int_eq(limiter_period_start(LIMIT_PERIOD_MONTH, MAR01_START),
			 MAR01_START);
	ck_assert_int_eq(limiter_period_start(LIMIT_PERIOD_MONTH,
					      MAR01_START - 1), FEB01_START);
	ck_assert_int_eq(limiter_period_start(LIMIT_PERIOD_MONTH,
					      MAR01_2023 - 1), FEB01_2023);
	ck_assert_int_eq(limiter_period_start(LIMIT_PERIOD_MONTH, DEC31_NOON),
			 DEC01_2023);
	ck_assert_int_eq(limiter_period_start(LIMIT_PERIOD_MONTH, JAN01_2024),
			 JAN01_2024);
	ck_assert_int_eq(limiter_period_start(LIMIT_PERIOD_DAY, 0), 0);
	ck_assert_int_eq(limiter_period_start(LIMIT_PERIOD_MONTH, 40 * DAY),
			 31 * DAY); /* 1970-02-01 */
}
END_TEST

START_TEST(budget_per_day)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = spec_budget(1000, LIMIT_PERIOD_DAY);
	struct limit_ticket t;
	struct limit_status st;

	ck_assert_int_eq(use(l, "k", &s, 600, T), LIMIT_OK);
	ck_assert_int_eq(use(l, "k", &s, 400, T + 1), LIMIT_OK); /* exactly */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 1, 0, T + 2, &t, &st),
			 LIMIT_BUDGET);
	ck_assert_uint_eq(st.retry_after_s, 12 * 3600 - 2);
	ck_assert_uint_eq(st.limit_requests, 0); /* no rpm/tpm headers */
	ck_assert_uint_eq(st.limit_tokens, 0);
	ck_assert_ptr_null(t.key);
	/* a 0-token request does not spend anything */
	ck_assert_int_eq(use(l, "k", &s, 0, T + 3), LIMIT_OK);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 1, 0, MAR16_START - 1, &t,
				       &st), LIMIT_BUDGET);
	ck_assert_uint_eq(st.retry_after_s, 1);
	/* the next day starts from zero */
	ck_assert_int_eq(use(l, "k", &s, 1000, MAR16_START), LIMIT_OK);
	ck_assert_int_eq(use(l, "k", &s, 1, MAR16_START + 5), LIMIT_BUDGET);
	/* and a request bigger than the budget waits for the next period */
	ck_assert_int_eq(limiter_admit(l, "big", &s, 1001, 0, T, &t, &st),
			 LIMIT_BUDGET);
	ck_assert_uint_eq(st.retry_after_s, 12 * 3600);
	limiter_free(l);
}
END_TEST

START_TEST(budget_counts_reservations)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = spec_budget(1000, LIMIT_PERIOD_DAY);
	struct limit_ticket a, b;

	ck_assert_int_eq(limiter_admit(l, "k", &s, 600, 0, T, &a, NULL),
			 LIMIT_OK);
	ck_assert_int_eq(a.period_id, MAR15_START);
	/* 600 in flight: 500 more could overshoot, so it waits */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 500, 0, T, &b, NULL),
			 LIMIT_BUDGET);
	limiter_settle(l, &a, 100, 0, T + 10);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 500, 0, T + 10, &b, NULL),
			 LIMIT_OK);
	ck_assert_int_eq(use(l, "k", &s, 401, T + 10), LIMIT_BUDGET);
	ck_assert_int_eq(use(l, "k", &s, 400, T + 10), LIMIT_OK);
	limiter_settle(l, &b, 500, 0, T + 10);
	ck_assert_int_eq(use(l, "k", &s, 1, T + 10), LIMIT_BUDGET);
	limiter_free(l);
}
END_TEST

/* Spend key's whole budget at start, then expect a refusal at now with
 * the given wait, and admission again at next. */
static void month_case(struct limiter *l, const char *key, int64_t start,
		       int64_t now, uint32_t wait, int64_t next)
{
	struct limit_spec s = spec_budget(100, LIMIT_PERIOD_MONTH);
	struct limit_ticket t;
	struct limit_status st;

	ck_assert_int_eq(use(l, key, &s, 100, start), LIMIT_OK);
	ck_assert_int_eq(limiter_admit(l, key, &s, 1, 0, now, &t, &st),
			 LIMIT_BUDGET);
	ck_assert_msg(st.retry_after_s == wait, "%s: retry %u, want %u", key,
		      st.retry_after_s, wait);
	ck_assert_int_eq(use(l, key, &s, 1, next - 1), LIMIT_BUDGET);
	ck_assert_int_eq(use(l, key, &s, 100, next), LIMIT_OK);
	ck_assert_int_eq(use(l, key, &s, 1, next), LIMIT_BUDGET);
}

START_TEST(budget_per_month)
{
	struct limiter *l = limiter_new();

	/* leap February: 29 days */
	month_case(l, "feb24", FEB01_START, FEB01_START, 29 * DAY, MAR01_START);
	month_case(l, "feb24-end", FEB01_START + 5, MAR01_START - 1, 1,
		   MAR01_START);
	/* common February: 28 days */
	month_case(l, "feb23", FEB01_2023, FEB01_2023, 28 * DAY, MAR01_2023);
	/* 30-day April */
	month_case(l, "apr", APR01_START, APR01_START, 30 * DAY, MAY01_START);
	/* 31-day January, from its last day */
	month_case(l, "jan", JAN01_2024, JAN31_NOON, 12 * 3600, FEB01_START);
	/* December into January of the next year */
	month_case(l, "dec", DEC01_2023, DEC31_NOON, 12 * 3600, JAN01_2024);
	limiter_free(l);
}
END_TEST

START_TEST(budget_period_switch)
{
	struct limiter *l = limiter_new();
	struct limit_spec day = spec_budget(1000, LIMIT_PERIOD_DAY);
	struct limit_spec month = spec_budget(1000, LIMIT_PERIOD_MONTH);

	/* on the 1st the day and the month began together: same spend */
	ck_assert_int_eq(use(l, "first", &day, 600, MAR01_START + 3600),
			 LIMIT_OK);
	ck_assert_int_eq(use(l, "first", &month, 401, MAR01_START + 7200),
			 LIMIT_BUDGET);
	ck_assert_int_eq(use(l, "first", &month, 400, MAR01_START + 7200),
			 LIMIT_OK);
	/* mid-month the month's spend is unknown: counting starts afresh */
	ck_assert_int_eq(use(l, "mid", &day, 600, T), LIMIT_OK);
	ck_assert_int_eq(use(l, "mid", &month, 1000, T + 60), LIMIT_OK);
	ck_assert_int_eq(use(l, "mid", &month, 1, T + 120), LIMIT_BUDGET);
	/* a clock stepping back a little stays in the current day */
	ck_assert_int_eq(use(l, "clock", &day, 1000, MAR16_START), LIMIT_OK);
	ck_assert_int_eq(use(l, "clock", &day, 1, MAR16_START - 2),
			 LIMIT_BUDGET);
	limiter_free(l);
}
END_TEST

START_TEST(cost_budget)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = { .budget_cost = 1.0,
				.period = LIMIT_PERIOD_DAY };
	struct limit_ticket a, b, c;
	struct limit_status st;

	/* binary fractions, so the sums are exact */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0.25, T, &a, NULL),
			 LIMIT_OK);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0.5, T, &b, NULL),
			 LIMIT_OK);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0.5, T, &c, &st),
			 LIMIT_BUDGET);
	ck_assert_uint_eq(st.retry_after_s, 12 * 3600);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0.25, T, &c, NULL),
			 LIMIT_OK); /* exactly 1.0 */
	limiter_settle(l, &a, 0, 0, T); /* failed: its 0.25 is free again */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0.375, T, &a, NULL),
			 LIMIT_BUDGET);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0.25, T, &a, NULL),
			 LIMIT_OK);
	/* a negative or NaN cost charges nothing, so it cannot buy room */
	limiter_settle(l, &b, 0, -4.0, T);
	limiter_settle(l, &c, 0, NAN, T);
	limiter_settle(l, &a, 0, 0.25, T);
	/* spent 0.25: 0.75 left */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0.875, T, &b, NULL),
			 LIMIT_BUDGET);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0.75, T, &b, NULL),
			 LIMIT_OK);
	limiter_settle(l, &b, 0, 0.75, T);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0.125, T, &b, NULL),
			 LIMIT_BUDGET);
	/* a token budget of 0 stays "no limit" alongside the cost budget */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 1000000, 0, MAR16_START, &b,
				       NULL), LIMIT_OK);
	limiter_free(l);
}
END_TEST

START_TEST(preload)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = { .budget_tokens = 1000, .budget_cost = 1.0,
				.period = LIMIT_PERIOD_DAY };
	struct limit_ticket t;
	struct limit_status st;

	limiter_preload(l, "k", LIMIT_PERIOD_DAY, 900, 0.75, MAR15_START + 60);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 101, 0, T, &t, &st),
			 LIMIT_BUDGET);
	ck_assert_uint_eq(st.retry_after_s, 12 * 3600);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0.5, T, &t, NULL),
			 LIMIT_BUDGET);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 100, 0.25, T, &t, NULL),
			 LIMIT_OK);
	limiter_settle(l, &t, 100, 0.25, T);
	ck_assert_int_eq(use(l, "k", &s, 1, T), LIMIT_BUDGET);
	/* preloading twice adds up */
	limiter_preload(l, "two", LIMIT_PERIOD_DAY, 500, 0, T);
	limiter_preload(l, "two", LIMIT_PERIOD_DAY, 400, 0, T);
	ck_assert_int_eq(use(l, "two", &s, 101, T), LIMIT_BUDGET);
	ck_assert_int_eq(use(l, "two", &s, 100, T), LIMIT_OK);
	/* yesterday's usage does not count today */
	limiter_preload(l, "old", LIMIT_PERIOD_DAY, 1000, 1.0, T - DAY);
	ck_assert_int_eq(use(l, "old", &s, 1000, T), LIMIT_OK);
	/* a month's usage does not weigh on a day budget mid-month */
	limiter_preload(l, "m", LIMIT_PERIOD_MONTH, 1000, 0, T);
	ck_assert_int_eq(use(l, "m", &s, 1000, T), LIMIT_OK);
	/* NONE is no period: nothing to charge */
	limiter_preload(l, "none", LIMIT_PERIOD_NONE, 1000, 1.0, T);
	ck_assert_int_eq(use(l, "none", &s, 1000, T), LIMIT_OK);
	limiter_free(l);
}
END_TEST

START_TEST(remaining_headers)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = { .rpm = 10, .tpm = 1000 };
	struct limit_ticket t[3];
	struct limit_status st;

	ck_assert_int_eq(limiter_admit(l, "k", &s, 100, 0, T, &t[0], &st),
			 LIMIT_OK);
	ck_assert_int_eq(st.verdict, LIMIT_OK);
	ck_assert_uint_eq(st.limit_requests, 10);
	ck_assert_uint_eq(st.remaining_requests, 9);
	ck_assert_uint_eq(st.limit_tokens, 1000);
	ck_assert_uint_eq(st.remaining_tokens, 900);
	ck_assert_uint_eq(st.retry_after_s, 0);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 850, 0, T + 1, &t[1], &st),
			 LIMIT_OK);
	ck_assert_uint_eq(st.remaining_requests, 8);
	ck_assert_uint_eq(st.remaining_tokens, 50);
	/* a refusal reports what is left, unchanged by it */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 51, 0, T + 2, &t[2], &st),
			 LIMIT_TPM);
	ck_assert_uint_eq(st.remaining_requests, 8);
	ck_assert_uint_eq(st.remaining_tokens, 50);
	ck_assert_uint_eq(st.retry_after_s, 58);
	/* settling changes the next admission's view */
	limiter_settle(l, &t[1], 50, 0, T + 2);
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0, T + 2, &t[2], &st),
			 LIMIT_OK);
	ck_assert_uint_eq(st.remaining_requests, 7);
	ck_assert_uint_eq(st.remaining_tokens, 850);
	/* st may be NULL */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 0, 0, T + 2, &t[2], NULL),
			 LIMIT_OK);
	/* rpm only: the token fields stay 0 (headers omitted) */
	s = spec_rpm(3);
	ck_assert_int_eq(limiter_admit(l, "r", &s, 500, 0, T, &t[0], &st),
			 LIMIT_OK);
	ck_assert_uint_eq(st.limit_tokens, 0);
	ck_assert_uint_eq(st.remaining_tokens, 0);
	ck_assert_uint_eq(st.remaining_requests, 2);
	limiter_free(l);
}
END_TEST

START_TEST(longest_wait_decides)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = { .rpm = 1, .budget_tokens = 100,
				.period = LIMIT_PERIOD_DAY };
	struct limit_ticket t;
	struct limit_status st;

	ck_assert_int_eq(use(l, "k", &s, 100, T), LIMIT_OK);
	/* both refuse; the budget's wait (to midnight) is the longer */
	ck_assert_int_eq(limiter_admit(l, "k", &s, 1, 0, T + 1, &t, &st),
			 LIMIT_BUDGET);
	ck_assert_uint_eq(st.retry_after_s, 12 * 3600 - 1);
	ck_assert_uint_eq(st.remaining_requests, 0);
	/* 30 s before midnight the window's wait is the longer */
	ck_assert_int_eq(use(l, "late", &s, 100, MAR16_START - 30), LIMIT_OK);
	ck_assert_int_eq(limiter_admit(l, "late", &s, 1, 0, MAR16_START - 30,
				       &t, &st), LIMIT_RPM);
	ck_assert_uint_eq(st.retry_after_s, 60);
	limiter_free(l);
}
END_TEST

START_TEST(many_keys)
{
	enum { N = 2000 };
	struct limiter *l = limiter_new();
	struct limit_spec s = spec_rpm(2);
	char name[32];

	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "key-%d", i);
		ck_assert_int_eq(use(l, name, &s, 0, T), LIMIT_OK);
	}
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "key-%d", i);
		ck_assert_int_eq(use(l, name, &s, 0, T), LIMIT_OK);
		ck_assert_msg(use(l, name, &s, 0, T) == LIMIT_RPM, "%s", name);
	}
	/* names that only extend another are separate keys; "" is a key */
	ck_assert_int_eq(use(l, "key-1x", &s, 0, T), LIMIT_OK);
	ck_assert_int_eq(use(l, "", &s, 0, T), LIMIT_OK);
	ck_assert_int_eq(use(l, "", &s, 0, T), LIMIT_OK);
	ck_assert_int_eq(use(l, "", &s, 0, T), LIMIT_RPM);
	/* the name is copied: the caller's buffer may change */
	strcpy(name, "key-7");
	ck_assert_int_eq(use(l, name, &s, 0, T), LIMIT_RPM);
	name[4] = '8';
	ck_assert_int_eq(use(l, name, &s, 0, T), LIMIT_RPM);
	ck_assert_int_eq(use(l, "key-7", &s, 0, T), LIMIT_RPM);
	limiter_free(l);
}
END_TEST

/* ---- concurrency ---- */

enum { THREADS = 16, PER_THREAD = 1000 };

struct worker {
	struct limiter *l;
	struct limit_spec spec;
	const char *key;
	int64_t now;
	unsigned seed;
	unsigned admitted;
	uint64_t tokens;     /* estimates of the admitted requests */
};

static void *rpm_worker(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		struct limit_ticket t;

		if (limiter_admit(w->l, w->key, &w->spec, 10, 0, w->now, &t,
				  NULL) == LIMIT_OK) {
			w->admitted++;
			limiter_settle(w->l, &t, (unsigned)i % 3 ? 10 : 0, 0,
				       w->now);
		}
	}
	return NULL;
}

static unsigned run_workers(struct worker *w, void *(*fn)(void *))
{
	pthread_t th[THREADS];
	unsigned total = 0;

	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, fn, &w[i]), 0);
	for (int i = 0; i < THREADS; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		total += w[i].admitted;
	}
	return total;
}

START_TEST(concurrent_rpm_exact)
{
	struct limiter *l = limiter_new();
	struct worker w[THREADS];

	memset(w, 0, sizeof(w));
	for (int i = 0; i < THREADS; i++) {
		w[i].l = l;
		w[i].spec = spec_rpm(5000);
		w[i].key = "shared";
		w[i].now = T;
	}
	ck_assert_uint_eq(run_workers(w, rpm_worker), 5000);
	/* the next window again admits exactly rpm, from 16000 attempts */
	for (int i = 0; i < THREADS; i++) {
		w[i].admitted = 0;
		w[i].now = T + 60;
	}
	ck_assert_uint_eq(run_workers(w, rpm_worker), 5000);
	ck_assert_int_eq(use(l, "shared", &w[0].spec, 0, T + 119), LIMIT_RPM);
	limiter_free(l);
}
END_TEST

static void *tpm_worker(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		struct limit_ticket t;
		uint64_t est = 1 + (uint64_t)rand_r(&w->seed) % 500;

		if (limiter_admit(w->l, w->key, &w->spec, est, 0, w->now, &t,
				  NULL) == LIMIT_OK) {
			w->admitted++;
			w->tokens += est;
			limiter_settle(w->l, &t, est, 0, w->now);
		}
	}
	return NULL;
}

START_TEST(concurrent_tpm_no_overshoot)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = spec_tpm(100000);
	struct worker w[THREADS];
	uint64_t sum = 0;

	memset(w, 0, sizeof(w));
	for (int i = 0; i < THREADS; i++) {
		w[i].l = l;
		w[i].spec = s;
		w[i].key = "shared";
		w[i].now = T;
		w[i].seed = 12345u + (unsigned)i;
	}
	run_workers(w, tpm_worker);
	for (int i = 0; i < THREADS; i++)
		sum += w[i].tokens;
	ck_assert_msg(sum <= 100000, "admitted %llu tokens",
		      (unsigned long long)sum);
	/* the window holds exactly what was admitted ... */
	ck_assert_uint_eq(tokens_left(l, "shared", &s, T), 100000 - sum);
	/* ... and it filled up: any refusal meant less than 500 was left */
	ck_assert_uint_lt(100000 - sum, 500);
	limiter_free(l);
}
END_TEST

static void *budget_worker(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		struct limit_ticket t;

		if (limiter_admit(w->l, w->key, &w->spec, 100, 0.125, w->now,
				  &t, NULL) == LIMIT_OK) {
			w->admitted++;
			/* settle late and small: the reservation held meanwhile */
			limiter_settle(w->l, &t, 100, 0.125, w->now + 1);
		}
	}
	return NULL;
}

START_TEST(concurrent_budget_exact)
{
	struct limiter *l = limiter_new();
	struct limit_spec s = { .budget_tokens = 100 * 700, .budget_cost = 100,
				.period = LIMIT_PERIOD_DAY };
	struct worker w[THREADS];

	memset(w, 0, sizeof(w));
	for (int i = 0; i < THREADS; i++) {
		w[i].l = l;
		w[i].spec = s;
		w[i].key = "shared";
		w[i].now = T + i;
	}
	/* tokens allow 700, cost (100 / 0.125) 800: exactly 700 */
	ck_assert_uint_eq(run_workers(w, budget_worker), 700);
	s.budget_tokens = 0; /* now cost alone: 100 more fit */
	for (int i = 0; i < THREADS; i++) {
		w[i].admitted = 0;
		w[i].spec = s;
	}
	ck_assert_uint_eq(run_workers(w, budget_worker), 100);
	limiter_free(l);
}
END_TEST

enum { KEYS = 300, PER_KEY = 4 };

static atomic_uint key_admits[KEYS];

static void *keys_worker(void *arg)
{
	struct worker *w = arg;
	char name[32];

	for (int i = 0; i < KEYS; i++) {
		int k = (i + (int)w->seed * 37) % KEYS; /* threads start apart */

		snprintf(name, sizeof(name), "tenant-%d", k);
		if (use(w->l, name, &w->spec, 1, w->now) == LIMIT_OK)
			atomic_fetch_add(&key_admits[k], 1);
	}
	return NULL;
}

START_TEST(concurrent_many_keys)
{
	struct limiter *l = limiter_new();
	struct worker w[THREADS];

	memset(w, 0, sizeof(w));
	for (int i = 0; i < KEYS; i++)
		atomic_init(&key_admits[i], 0);
	for (int i = 0; i < THREADS; i++) {
		w[i].l = l;
		w[i].spec = spec_rpm(PER_KEY);
		w[i].now = T;
		w[i].seed = (unsigned)i;
	}
	/* every thread tries every key once, while the table grows */
	run_workers(w, keys_worker);
	for (int i = 0; i < KEYS; i++)
		ck_assert_msg(atomic_load(&key_admits[i]) == PER_KEY,
			      "tenant-%d admitted %u", i,
			      atomic_load(&key_admits[i]));
	limiter_free(l);
}
END_TEST

static Suite *limits_suite(void)
{
	Suite *s = suite_create("limits");
	TCase *tc = tcase_create("window");
	TCase *tb = tcase_create("budget");
	TCase *tt = tcase_create("threads");

	tcase_add_test(tc, no_limits_reserve_nothing);
	tcase_add_test(tc, rpm_exact_boundary);
	tcase_add_test(tc, tpm_boundary);
	tcase_add_test(tc, tpm_estimate_above_limit);
	tcase_add_test(tc, sliding_expiry);
	tcase_add_test(tc, sliding_expiry_tokens);
	tcase_add_test(tc, spec_change_between_admissions);
	tcase_add_test(tc, settle_down_and_up);
	tcase_add_test(tc, settle_zero_frees_reservation);
	tcase_add_test(tc, double_settle_is_noop);
	tcase_add_test(tc, settle_after_bucket_left_window);
	tcase_add_test(tc, remaining_headers);
	tcase_add_test(tc, many_keys);
	suite_add_tcase(s, tc);

	tcase_add_test(tb, period_start);
	tcase_add_test(tb, budget_per_day);
	tcase_add_test(tb, budget_counts_reservations);
	tcase_add_test(tb, budget_per_month);
	tcase_add_test(tb, budget_period_switch);
	tcase_add_test(tb, cost_budget);
	tcase_add_test(tb, preload);
	tcase_add_test(tb, longest_wait_decides);
	suite_add_tcase(s, tb);

	tcase_add_test(tt, concurrent_rpm_exact);
	tcase_add_test(tt, concurrent_tpm_no_overshoot);
	tcase_add_test(tt, concurrent_budget_exact);
	tcase_add_test(tt, concurrent_many_keys);
	suite_add_tcase(s, tt);
	return s;
}

int main(void)
{
	return tu_run(limits_suite());
}
