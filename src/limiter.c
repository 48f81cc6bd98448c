/* SPDX-License-Identifier: MIT */
/*
 * limiter: per-key admission control; see limiter.h.
 *
 * Each key name maps (chained hash table, grown at load 1) to a struct
 * limit_key holding a ring of 60 one-second buckets and the budget
 * counters of its current period. A bucket is tagged with the second it
 * holds, so a stale bucket is recognised and recycled lazily instead of
 * being cleared by a timer. A bucket counts while
 *
 *	now - 60 < bucket.second <= now
 *
 * Key states are never freed before limiter_free(): tickets point at them,
 * and key names come from the config, so their number is bounded. The
 * lock covers a hash lookup and at most two passes over the 60 buckets;
 * the table's rare doubling is the only O(keys) step (amortised O(1)).
 *
 * Policy decisions, in one place:
 *  - A request counts against rpm when admitted, whatever its outcome;
 *    settling only moves tokens and cost.
 *  - A request whose estimate alone exceeds tpm can never be admitted; it
 *    is refused with LIMIT_TPM and retry_after 60 (a whole window: no
 *    shorter wait could help, and a longer one would be a guess).
 *  - When several limits refuse, the verdict is the one with the longest
 *    wait, so a client that honours Retry-After is not refused again for
 *    a reason it could have been told about.
 *  - A budget period is identified by its start instant. When it changes
 *    (a new day or month, or the spec switches between day and month)
 *    the spent amount starts from zero; requests admitted in the old
 *    period settle to nothing (their usage belongs to that period).
 *  - If the wall clock steps back, buckets stamped "in the future" do not
 *    count until the clock catches up; a settle never touches a bucket
 *    that has been recycled for another second.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "limiter.h"
#include "util.h"

#define WINDOW 60              /* seconds in the sliding window */
#define NO_PERIOD INT64_MIN    /* ticket/key: no budget period charged */
#define NO_SECOND INT64_MIN    /* bucket: never used */

struct bucket {
	int64_t second;        /* the second counted here */
	uint32_t requests;
	uint64_t tokens;
};

struct limit_key {
	struct limit_key *next;   /* hash chain */
	uint64_t hash;
	struct bucket ring[WINDOW];
	enum limit_period period; /* kind of the period below */
	int64_t period_start;     /* NO_PERIOD until a budget period is seen */
	uint64_t spent_tokens;    /* settled usage in this period */
	uint64_t reserved_tokens; /* estimates of requests in flight */
	double spent_cost;
	double reserved_cost;
	char name[];
};

struct limiter {
	pthread_mutex_t lock;
	struct limit_key **table; /* {lock} */
	size_t nslots;            /* power of two */
	size_t count;
};

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sub_sat(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* Costs come from callers' arithmetic: a NaN or negative one charges
 * nothing rather than poisoning or lowering the counters. */
static double clean_cost(double c)
{
	return c > 0 && isfinite(c) ? c : 0;
}

/* FNV-1a. Key names come from the config, not from clients, so a keyed
 * hash buys nothing here. */
static uint64_t hash_name(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* ---- the key table ---- */

static void table_grow(struct limiter *l)
{
	size_t n = l->nslots * 2;
	struct limit_key **t = xcalloc(n, sizeof(struct limit_key *));

	for (size_t i = 0; i < l->nslots; i++) {
		struct limit_key *k = l->table[i], *next;

		for (; k; k = next) {
			next = k->next;
			k->next = t[k->hash & (n - 1)];
			t[k->hash & (n - 1)] = k;
		}
	}
	free(l->table);
	l->table = t;
	l->nslots = n;
}

/* The state for name, created empty on first use. Caller holds l->lock. */
static struct limit_key *key_get(struct limiter *l, const char *name)
{
	uint64_t h = hash_name(name);
	size_t len = strlen(name);
	struct limit_key *k;

	for (k = l->table[h & (l->nslots - 1)]; k; k = k->next)
		if (k->hash == h && strcmp(k->name, name) == 0)
			return k;
	if (l->count >= l->nslots)
		table_grow(l);
	k = xcalloc(1, sizeof(*k) + len + 1);
	memcpy(k->name, name, len + 1);
	k->hash = h;
	k->period_start = NO_PERIOD;
	/* calloc's second 0 would count as a live bucket near the epoch */
	for (int i = 0; i < WINDOW; i++)
		k->ring[i].second = NO_SECOND;
	k->next = l->table[h & (l->nslots - 1)];
	l->table[h & (l->nslots - 1)] = k;
	l->count++;
	return k;
}

struct limiter *limiter_new(void)
{
	struct limiter *l = xcalloc(1, sizeof(*l));

	if (pthread_mutex_init(&l->lock, NULL) != 0)
		abort(); /* cannot happen with default attributes */
	l->nslots = 16;
	l->table = xcalloc(l->nslots, sizeof(struct limit_key *));
	return l;
}

void limiter_free(struct limiter *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nslots; i++) {
		struct limit_key *k = l->table[i], *next;

		for (; k; k = next) {
			next = k->next;
			free(k);
		}
	}
	free(l->table);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/* ---- the sliding window ---- */

static struct bucket *bucket_at(struct limit_key *k, int64_t second)
{
	int64_t i = second % WINDOW;

	return &k->ring[i < 0 ? i + WINDOW : i];
}

/* Written so that the NO_SECOND sentinel cannot overflow the arithmetic. */
static bool in_window(int64_t second, int64_t now)
{
	return second > now - WINDOW && second <= now;
}

static void window_sum(struct limit_key *k, int64_t now, uint64_t *requests,
		       uint64_t *tokens)
{
	*requests = 0;
	*tokens = 0;
	for (int i = 0; i < WINDOW; i++) {
		if (!in_window(k->ring[i].second, now))
			continue;
		*requests += k->ring[i].requests;
		*tokens = add_sat(*tokens, k->ring[i].tokens);
	}
}

/* Seconds until the oldest buckets, leaving the window one by one, have
 * freed at least need requests (or tokens). WINDOW if even an empty
 * window would not free enough. */
static uint32_t window_wait(struct limit_key *k, int64_t now, uint64_t need,
			    bool tokens)
{
	uint64_t freed = 0;

	for (int64_t s = now - WINDOW + 1; s <= now; s++) {
		const struct bucket *b = bucket_at(k, s);

		if (b->second != s)
			continue;
		freed = add_sat(freed, tokens ? b->tokens : b->requests);
		if (freed >= need)
			return (uint32_t)(s + WINDOW - now);
	}
	return WINDOW;
}

/* ---- budget periods ---- */

int64_t limiter_period_start(enum limit_period period, int64_t now)
{
	time_t t = (time_t)now;
	struct tm tm;

	if (period == LIMIT_PERIOD_NONE)
		return 0;
	if (!gmtime_r(&t, &tm))
		return now; /* out of range for struct tm: a period of its own */
	tm.tm_hour = 0;
	tm.tm_min = 0;
	tm.tm_sec = 0;
	if (period == LIMIT_PERIOD_MONTH)
		tm.tm_mday = 1;
	return (int64_t)timegm(&tm);
}

/* Start of the period after the one starting at start. */
static int64_t period_next(enum limit_period period, int64_t start)
{
	time_t t = (time_t)start;
	struct tm tm;

	if (period == LIMIT_PERIOD_DAY || !gmtime_r(&t, &tm))
		return start + 86400; /* UTC days have no DST; POSIX time no leap seconds */
	tm.tm_mon++; /* timegm() carries December into January */
	tm.tm_mday = 1;
	return (int64_t)timegm(&tm);
}

/*
 * Move k to the budget period holding now and return its start. A new
 * period starts from zero. A switch between day and month keeps the
 * counts only when both periods start at the same instant (then they are
 * the same figure); a clock stepping back stays in the current period.
 */
static int64_t period_roll(struct limit_key *k, enum limit_period period,
			   int64_t now)
{
	int64_t start = limiter_period_start(period, now);

	if (k->period_start != start) {
		if (k->period == period && start < k->period_start)
			return k->period_start;
		k->period_start = start;
		k->spent_tokens = 0;
		k->reserved_tokens = 0;
		k->spent_cost = 0;
		k->reserved_cost = 0;
	}
	k->period = period;
	return start;
}

/* ---- admission ---- */

static bool spec_limited(const struct limit_spec *spec)
{
	return spec->rpm || spec->tpm || spec->budget_tokens ||
	       spec->budget_cost > 0;
}

/* Record one refusal; of several, the longest wait decides the verdict. */
static void refuse(struct limit_status *st, enum limit_verdict v,
		   uint32_t wait)
{
	if (st->verdict == LIMIT_OK || wait > st->retry_after_s) {
		st->verdict = v;
		st->retry_after_s = wait;
	}
}

static void check_window(const struct limit_spec *spec, struct limit_key *k,
			 uint64_t requests, uint64_t tokens, uint64_t est,
			 int64_t now, struct limit_status *st)
{
	uint64_t want = add_sat(tokens, est);

	if (spec->rpm && requests + 1 > spec->rpm)
		refuse(st, LIMIT_RPM,
		       window_wait(k, now, requests + 1 - spec->rpm, false));
	/* est > tpm needs more than the whole window frees: waits WINDOW */
	if (spec->tpm && want > spec->tpm)
		refuse(st, LIMIT_TPM,
		       window_wait(k, now, want - spec->tpm, true));
}

/* Caller has rolled k into the period starting at start. */
static void check_budget(const struct limit_spec *spec,
			 const struct limit_key *k, int64_t start,
			 uint64_t est, double est_cost, int64_t now,
			 struct limit_status *st)
{
	uint64_t tokens = add_sat(add_sat(k->spent_tokens, k->reserved_tokens),
				  est);
	double cost = k->spent_cost + k->reserved_cost + est_cost;
	int64_t wait;

	if (!(spec->budget_tokens && tokens > spec->budget_tokens) &&
	    !(spec->budget_cost > 0 && cost > spec->budget_cost))
		return;
	wait = period_next(spec->period, start) - now;
	refuse(st, LIMIT_BUDGET,
	       wait < 1 ? 1 : wait > UINT32_MAX ? UINT32_MAX : (uint32_t)wait);
}

/* Charge an admitted request to the current second and, when start is a
 * period, to the budget; describe the charge in t. */
static void reserve(struct limit_key *k, int64_t now, uint64_t est,
		    double est_cost, int64_t start, struct limit_ticket *t)
{
	struct bucket *b = bucket_at(k, now);

	if (b->second != now) { /* recycle: it held a second out of the window */
		b->second = now;
		b->requests = 0;
		b->tokens = 0;
	}
	if (b->requests < UINT32_MAX)
		b->requests++;
	b->tokens = add_sat(b->tokens, est);
	if (start != NO_PERIOD) {
		k->reserved_tokens = add_sat(k->reserved_tokens, est);
		k->reserved_cost += est_cost;
	}
	t->key = k;
	t->reserved_tokens = est;
	t->reserved_cost = est_cost;
	t->second = now;
	t->period_id = start;
}

enum limit_verdict limiter_admit(struct limiter *l, const char *key_name,
				 const struct limit_spec *spec,
				 uint64_t est_tokens, double est_cost,
				 int64_t now, struct limit_ticket *t,
				 struct limit_status *st)
{
	struct limit_status local;
	struct limit_key *k;
	uint64_t requests, tokens;
	int64_t start = NO_PERIOD;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	memset(t, 0, sizeof(*t));
	if (!spec_limited(spec))
		return LIMIT_OK; /* nothing to count against: no state at all */
	est_cost = clean_cost(est_cost);

	pthread_mutex_lock(&l->lock);
	k = key_get(l, key_name);
	window_sum(k, now, &requests, &tokens);
	check_window(spec, k, requests, tokens, est_tokens, now, st);
	if (spec->period != LIMIT_PERIOD_NONE) {
		start = period_roll(k, spec->period, now);
		check_budget(spec, k, start, est_tokens, est_cost, now, st);
	}
	if (st->verdict == LIMIT_OK) {
		reserve(k, now, est_tokens, est_cost, start, t);
		requests++;
		tokens = add_sat(tokens, est_tokens);
	}
	pthread_mutex_unlock(&l->lock);

	st->limit_requests = spec->rpm;
	st->limit_tokens = spec->tpm;
	if (spec->rpm)
		st->remaining_requests =
			(uint32_t)sub_sat(spec->rpm, requests);
	if (spec->tpm)
		st->remaining_tokens = sub_sat(spec->tpm, tokens);
	return st->verdict;
}

void limiter_settle(struct limiter *l, struct limit_ticket *t,
		    uint64_t real_tokens, double real_cost, int64_t now)
{
	struct limit_key *k = t ? t->key : NULL;
	struct bucket *b;

	if (!k)
		return;
	real_cost = clean_cost(real_cost);

	pthread_mutex_lock(&l->lock);
	/* a bucket recycled for a later second is not ours to adjust */
	b = bucket_at(k, t->second);
	if (b->second == t->second && t->second > now - WINDOW)
		b->tokens = add_sat(sub_sat(b->tokens, t->reserved_tokens),
				    real_tokens);
	if (t->period_id != NO_PERIOD && t->period_id == k->period_start) {
		k->reserved_tokens = sub_sat(k->reserved_tokens,
					     t->reserved_tokens);
		k->spent_tokens = add_sat(k->spent_tokens, real_tokens);
		k->reserved_cost = k->reserved_cost > t->reserved_cost ?
				   k->reserved_cost - t->reserved_cost : 0;
		k->spent_cost += real_cost;
	}
	pthread_mutex_unlock(&l->lock);
	memset(t, 0, sizeof(*t));
}

void limiter_preload(struct limiter *l, const char *key_name,
		     enum limit_period period, uint64_t tokens, double cost,
		     int64_t now)
{
	struct limit_key *k;

	if (period == LIMIT_PERIOD_NONE)
		return;
	pthread_mutex_lock(&l->lock);
	k = key_get(l, key_name);
	period_roll(k, period, now);
	k->spent_tokens = add_sat(k->spent_tokens, tokens);
	k->spent_cost += clean_cost(cost);
	pthread_mutex_unlock(&l->lock);
}
