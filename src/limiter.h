/* SPDX-License-Identifier: MIT */
/*
 * limiter: per-key admission control. Requests per minute and tokens per
 * minute over a sliding 60 s window, and a token or cost budget per UTC
 * day or month. Admission reserves an estimate (prompt tokens counted
 * locally + max_tokens or a default) under the limiter's lock and settles
 * it against the real usage when the request ends, so concurrent requests
 * can never together overshoot a limit, and a finished request never
 * leaves a phantom reservation behind.
 *
 * State is keyed by key name and lives outside the config snapshot, so a
 * reload keeps counting; a key whose spec changes takes the new limits on
 * its next admission. Thread-safe: one mutex, held for O(1) work
 * (the sliding window is a ring of per-second buckets, not a log of
 * requests).
 */
#ifndef LB_LIMITER_H
#define LB_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

enum limit_period { LIMIT_PERIOD_NONE, LIMIT_PERIOD_DAY, LIMIT_PERIOD_MONTH };

/* 0 in any field means "no limit of that kind". */
struct limit_spec {
	uint32_t rpm;              /* requests per minute */
	uint64_t tpm;              /* tokens per minute */
	uint64_t budget_tokens;    /* tokens per period */
	double budget_cost;        /* cost (config currency) per period */
	enum limit_period period;  /* for the budgets; NONE = no budget */
};

enum limit_verdict {
	LIMIT_OK,
	LIMIT_RPM,    /* too many requests in the window */
	LIMIT_TPM,    /* too many tokens in the window */
	LIMIT_BUDGET  /* the period's budget is spent */
};

/* What to tell the client (x-ratelimit-* headers, Retry-After). */
struct limit_status {
	enum limit_verdict verdict;
	uint32_t limit_requests;      /* 0 = no rpm limit (omit headers) */
	uint32_t remaining_requests;
	uint64_t limit_tokens;        /* 0 = no tpm limit (omit headers) */
	uint64_t remaining_tokens;
	uint32_t retry_after_s;       /* >= 1 when verdict != LIMIT_OK */
};

/* A granted admission; settle it exactly once. Plain data, owned by the
 * caller (lives in the request). */
struct limit_ticket {
	struct limit_key *key;  /* NULL: nothing reserved (no limits) */
	uint64_t reserved_tokens;
	double reserved_cost;
	int64_t second;         /* window second the reservation went in */
	int64_t period_id;      /* budget period it was charged to */
};

struct limiter;

/* Never NULL. Free with limiter_free(). */
struct limiter *limiter_new(void);
void limiter_free(struct limiter *l);

/*
 * Admit one request for key_name under spec, reserving est_tokens and
 * est_cost. now is wall-clock seconds (UTC; tests pass their own).
 * Returns the verdict; on LIMIT_OK *t holds the reservation, otherwise
 * nothing is reserved. st (may be NULL) is always filled, with the
 * remaining counts after this admission.
 */
enum limit_verdict limiter_admit(struct limiter *l, const char *key_name,
				 const struct limit_spec *spec,
				 uint64_t est_tokens, double est_cost,
				 int64_t now, struct limit_ticket *t,
				 struct limit_status *st);

/* Replace the reservation in t by the real usage (which may be larger or
 * smaller, or 0 for a failed request) and clear t. A zeroed ticket is a
 * no-op, so settling twice is harmless. */
void limiter_settle(struct limiter *l, struct limit_ticket *t,
		    uint64_t real_tokens, double real_cost, int64_t now);

/* Charge usage already spent in the current period (from the usage
 * database at start-up) so budgets survive a restart. */
void limiter_preload(struct limiter *l, const char *key_name,
		     enum limit_period period, uint64_t tokens, double cost,
		     int64_t now);

/* Start of the period holding now (UTC), in seconds; for the usage
 * database query that feeds limiter_preload(). */
int64_t limiter_period_start(enum limit_period period, int64_t now);

#endif
