/* SPDX-License-Identifier: MIT */
/*
 * usage: usage statistics per key x provider/model x UTC day, kept in
 * memory under one mutex and persisted to SQLite (WAL mode) by a flush
 * thread every few seconds and on close, never on the request path. A
 * clean restart loses nothing; a crash loses at most one flush interval.
 *
 * Recording costs one hash lookup and a few additions under the mutex.
 * The flush swaps the dirty deltas out under the mutex and writes them
 * with UPSERTs in one transaction outside it.
 */
#ifndef LB_USAGE_H
#define LB_USAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"

/* One finished request. Strings are borrowed for the call. */
struct usage_rec {
	const char *key;       /* key name (never the key itself) */
	const char *provider;
	const char *model;     /* the model as the client named it */
	bool error;            /* the request failed (any non-2xx, or a
	                        * stream cut short) */
	uint64_t prompt_tokens;
	uint64_t completion_tokens;
	uint64_t reasoning_tokens;
	uint64_t cached_tokens;
	double cost;
};

struct usage_store;

/* Open (creating) the database at path and start the flush thread with
 * the given interval. path NULL: memory only (nothing persisted). Returns
 * NULL with a message in err (may be NULL) when the file cannot be opened
 * or created. Rows already in the database are loaded, so queries and
 * totals cover earlier runs. */
struct usage_store *usage_open(const char *path, unsigned flush_interval_s,
			       struct buf *err);
/* Add rec to the bucket of the UTC day holding when. Thread-safe. */
void usage_record(struct usage_store *u, const struct usage_rec *rec,
		  time_t when);
/* Write pending deltas now. 0, or -1 (logged; the deltas are kept and
 * retried on the next flush). Thread-safe. */
int usage_flush(struct usage_store *u);
/* Totals of key over [from, to) (seconds, day granularity: a day counts
 * when its start is in range). For budgets after a restart. */
void usage_key_totals(struct usage_store *u, const char *key, time_t from,
		      time_t to, uint64_t *tokens, double *cost);

/* GET /v1/usage filters. NULL / 0 = no filter. */
struct usage_query {
	const char *key;      /* exact key name */
	const char *model;    /* exact model, or provider/model */
	time_t from, to;      /* [from, to), 0 = open */
	const char *group_by; /* comma list of key,provider,model,day;
	                       * NULL = "key,provider,model,day" */
};

/* Append the JSON answer to out:
 * {"object":"list","data":[{"key":..,"provider":..,"model":..,"day":
 *  "YYYY-MM-DD","requests":..,"errors":..,"prompt_tokens":..,
 *  "completion_tokens":..,"reasoning_tokens":..,"cached_tokens":..,
 *  "total_tokens":..,"cost":..}, ...]}
 * with only the group_by fields present as dimensions. 0, or -1 with a
 * message in errmsg (size n) for a bad group_by. Thread-safe. */
int usage_query_json(struct usage_store *u, const struct usage_query *q,
		     struct buf *out, char *errmsg, size_t n);

/* Stop the flush thread, flush, close. NULL is a no-op. */
void usage_close(struct usage_store *u);

#endif
