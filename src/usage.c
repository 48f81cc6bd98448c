/* SPDX-License-Identifier: MIT */
/*
 * usage: per key x provider x model x UTC day counters; see usage.h.
 *
 * Every row lives in a chained hash table under u->lock and holds two sets
 * of counters: the total (what queries answer) and the delta not yet in
 * the database. A dirty row is also on a singly linked dirty list, so a
 * flush touches only what changed. Rows are never freed before
 * usage_close(), which lets the flush and the queries keep row pointers
 * (and read the immutable name strings) after dropping the lock.
 *
 * Lock order: flush_lock (one flush at a time on the connection), then
 * lock. Nothing slow ever runs under lock.
 */
#include "usage.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "util.h"

#define SCHEMA_VERSION 1 /* PRAGMA user_version of the schema below */
#define STR_(x) #x
#define STR(x) STR_(x)
#define BUSY_TIMEOUT_MS 5000
#define SECS_PER_DAY 86400

/* What one row counts; also the unit a flush moves around. */
struct ucount {
	uint64_t requests, errors;
	uint64_t prompt, completion, reasoning, cached;
	double cost;
};

struct urow {
	struct urow *next;       /* hash chain */
	struct urow *next_dirty; /* dirty list, valid while dirty */
	char *key, *provider, *model; /* immutable once inserted */
	int64_t day;             /* days since 1970-01-01 */
	uint32_t hash;
	bool dirty;
	struct ucount total;     /* everything, flushed or not */
	struct ucount delta;     /* not yet in the database */
};

struct usage_store {
	pthread_mutex_t lock;    /* rows, dirty list, stopping */
	pthread_cond_t wake;     /* usage_close -> flush thread */
	pthread_mutex_t flush_lock;
	struct urow **slots;
	size_t nslots;           /* power of two */
	size_t nrows;
	struct urow *dirty;
	bool stopping;
	bool have_thread;
	pthread_t thread;
	unsigned interval_s;
	sqlite3 *db;             /* NULL: memory only */
	sqlite3_stmt *upsert;
};

/* A delta taken out of a row by a flush, put back if the write fails. */
struct pending {
	struct urow *row;
	struct ucount d;
};

static const char schema_v1[] =
	"CREATE TABLE IF NOT EXISTS usage ("
	" key TEXT NOT NULL,"
	" provider TEXT NOT NULL,"
	" model TEXT NOT NULL,"
	" day TEXT NOT NULL,"                /* YYYY-MM-DD, UTC */
	" requests INTEGER NOT NULL DEFAULT 0,"
	" errors INTEGER NOT NULL DEFAULT 0,"
	" prompt_tokens INTEGER NOT NULL DEFAULT 0,"
	" completion_tokens INTEGER NOT NULL DEFAULT 0,"
	" reasoning_tokens INTEGER NOT NULL DEFAULT 0,"
	" cached_tokens INTEGER NOT NULL DEFAULT 0,"
	" cost REAL NOT NULL DEFAULT 0,"
	" PRIMARY KEY (key, provider, model, day)"
	") WITHOUT ROWID;";

static const char upsert_sql[] =
	"INSERT INTO usage (key, provider, model, day, requests, errors,"
	" prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens,"
	" cost) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
	" ON CONFLICT (key, provider, model, day) DO UPDATE SET"
	" requests = requests + excluded.requests,"
	" errors = errors + excluded.errors,"
	" prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
	" completion_tokens = completion_tokens + excluded.completion_tokens,"
	" reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens,"
	" cached_tokens = cached_tokens + excluded.cached_tokens,"
	" cost = cost + excluded.cost";

/* ---- days ---- */

static int64_t day_of(time_t t)
{
	int64_t s = (int64_t)t;

	/* floor, not truncation: the second before 1970 is day -1 */
	if (s >= 0)
		return s / SECS_PER_DAY;
	return -((-s + SECS_PER_DAY - 1) / SECS_PER_DAY);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), so no timegm() and no TZ games are needed. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void format_day(int64_t day, char out[16])
{
	time_t t = (time_t)(day * SECS_PER_DAY);
	struct tm tm;

	if (!gmtime_r(&t, &tm)) {
		snprintf(out, 16, "0000-00-00");
		return;
	}
	snprintf(out, 16, "%04d-%02d-%02d", (tm.tm_year + 1900) % 10000,
		 (tm.tm_mon + 1) % 100, tm.tm_mday % 100);
}

/* "YYYY-MM-DD" -> day number. -1 when malformed. */
static int parse_day(const char *s, int64_t *day)
{
	unsigned y, m, d;
	int end = 0;

	if (!s || sscanf(s, "%4u-%2u-%2u%n", &y, &m, &d, &end) != 3 ||
	    s[end] != '\0' || m < 1 || m > 12 || d < 1 || d > 31)
		return -1;
	*day = days_from_civil((int64_t)y, m, d);
	return 0;
}

/* ---- the table ---- */

static uint32_t fnv1a(uint32_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 16777619u;
	}
	return h;
}

static uint32_t row_hash(const char *key, const char *provider,
			 const char *model, int64_t day)
{
	uint32_t h = 2166136261u;

	/* the NULs are hashed too, so ("ab","c") and ("a","bc") differ */
	h = fnv1a(h, key, strlen(key) + 1);
	h = fnv1a(h, provider, strlen(provider) + 1);
	h = fnv1a(h, model, strlen(model) + 1);
	return fnv1a(h, &day, sizeof(day));
}

static void grow(struct usage_store *u)
{
	size_t n = u->nslots * 2;
	struct urow **slots = xcalloc(n, sizeof(struct urow *));

	for (size_t i = 0; i < u->nslots; i++) {
		struct urow *r = u->slots[i], *next;

		for (; r; r = next) {
			next = r->next;
			r->next = slots[r->hash & (n - 1)];
			slots[r->hash & (n - 1)] = r;
		}
	}
	free(u->slots);
	u->slots = slots;
	u->nslots = n;
}

/* The row for the four names, created empty if new. Call under lock. */
static struct urow *row_get(struct usage_store *u, const char *key,
			    const char *provider, const char *model,
			    int64_t day)
{
	uint32_t h = row_hash(key, provider, model, day);
	struct urow *r;

	for (r = u->slots[h & (u->nslots - 1)]; r; r = r->next)
		if (r->hash == h && r->day == day && strcmp(r->key, key) == 0 &&
		    strcmp(r->provider, provider) == 0 &&
		    strcmp(r->model, model) == 0)
			return r;
	if (u->nrows >= u->nslots)
		grow(u);
	r = xcalloc(1, sizeof(*r));
	r->key = xstrdup(key);
	r->provider = xstrdup(provider);
	r->model = xstrdup(model);
	r->day = day;
	r->hash = h;
	r->next = u->slots[h & (u->nslots - 1)];
	u->slots[h & (u->nslots - 1)] = r;
	u->nrows++;
	return r;
}

static void count_add(struct ucount *to, const struct ucount *c)
{
	to->requests += c->requests;
	to->errors += c->errors;
	to->prompt += c->prompt;
	to->completion += c->completion;
	to->reasoning += c->reasoning;
	to->cached += c->cached;
	to->cost += c->cost;
}

static void mark_dirty(struct usage_store *u, struct urow *r)
{
	if (r->dirty)
		return;
	r->dirty = true;
	r->next_dirty = u->dirty;
	u->dirty = r;
}

static void free_rows(struct usage_store *u)
{
	for (size_t i = 0; i < u->nslots; i++) {
		struct urow *r = u->slots[i], *next;

		for (; r; r = next) {
			next = r->next;
			free(r->key);
			free(r->provider);
			free(r->model);
			free(r);
		}
	}
	free(u->slots);
	u->slots = NULL;
}

static const char *nz(const char *s)
{
	return s ? s : "";
}

void usage_record(struct usage_store *u, const struct usage_rec *rec,
		  time_t when)
{
	struct ucount c = {
		.requests = 1,
		.errors = rec->error ? 1 : 0,
		.prompt = rec->prompt_tokens,
		.completion = rec->completion_tokens,
		.reasoning = rec->reasoning_tokens,
		.cached = rec->cached_tokens,
		/* one NaN would poison the sums for good */
		.cost = isfinite(rec->cost) ? rec->cost : 0.0,
	};
	struct urow *r;

	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	r = row_get(u, nz(rec->key), nz(rec->provider), nz(rec->model),
		    day_of(when));
	count_add(&r->total, &c);
	if (u->db) {
		count_add(&r->delta, &c);
		mark_dirty(u, r);
	}
	pthread_mutex_unlock(&u->lock);
}

/* ---- the database ---- */

static int db_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	log_error("usage", "sqlite: %s: %s", sql, msg ? msg : "?");
	sqlite3_free(msg);
	return -1;
}

/* A one-value PRAGMA query, as an integer. -1 on error. */
static int pragma_int(sqlite3 *db, const char *sql, int *out)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	if (sqlite3_step(st) != SQLITE_ROW)
		goto out;
	*out = sqlite3_column_int(st, 0);
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

/* Bring the schema to SCHEMA_VERSION. A later migration adds a case
 * below the last one; the cases fall through so an old file walks every
 * step. A file from a newer llm-bridge is refused rather than guessed at. */
static int migrate(sqlite3 *db, struct buf *err)
{
	int v;

	if (pragma_int(db, "PRAGMA user_version", &v) < 0)
		goto fail;
	if (v > SCHEMA_VERSION) {
		if (err)
			buf_printf(err, "usage database schema version %d is "
				   "newer than this llm-bridge knows (%d)",
				   v, SCHEMA_VERSION);
		return -1;
	}
	if (v == SCHEMA_VERSION)
		return 0;
	if (db_exec(db, "BEGIN IMMEDIATE") < 0)
		goto fail;
	switch (v) {
	case 0:
		if (db_exec(db, schema_v1) < 0)
			goto rollback;
		/* fall through */
	default:
		break;
	}
	if (db_exec(db, "PRAGMA user_version = " STR(SCHEMA_VERSION)) < 0 ||
	    db_exec(db, "COMMIT") < 0)
		goto rollback;
	return 0;
rollback:
	db_exec(db, "ROLLBACK");
fail:
	if (err)
		buf_printf(err, "usage database schema: %s",
			   sqlite3_errmsg(db));
	return -1;
}

/* WAL: readers never block the writer and a commit is one append;
 * synchronous=NORMAL is durable across process crashes (all we promise;
 * a power cut may lose the last commits, not corrupt the file). */
static int set_wal(sqlite3 *db, struct buf *err)
{
	sqlite3_stmt *st = NULL;
	const char *mode = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st,
			       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		mode = (const char *)sqlite3_column_text(st, 0);
	if (!mode) {
		if (err)
			buf_printf(err, "usage database: %s",
				   sqlite3_errmsg(db));
		goto out;
	}
	if (strcmp(mode, "wal") != 0) {
		if (err)
			buf_printf(err, "usage database: cannot use WAL mode "
				   "(journal_mode stays %s)", mode);
		goto out;
	}
	rc = db_exec(db, "PRAGMA synchronous=NORMAL");
	if (rc < 0 && err)
		buf_printf(err, "usage database: %s", sqlite3_errmsg(db));
out:
	sqlite3_finalize(st);
	return rc;
}

static const char *col_str(sqlite3_stmt *st, int i)
{
	return nz((const char *)sqlite3_column_text(st, i));
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);

	return v > 0 ? (uint64_t)v : 0;
}

/* Read every stored row into memory as totals (nothing dirty). */
static int load_rows(struct usage_store *u, struct buf *err)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, s;

	if (sqlite3_prepare_v2(u->db,
			       "SELECT key, provider, model, day, requests,"
			       " errors, prompt_tokens, completion_tokens,"
			       " reasoning_tokens, cached_tokens, cost"
			       " FROM usage", -1, &st, NULL) != SQLITE_OK)
		goto out;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *day = (const char *)sqlite3_column_text(st, 3);
		struct ucount c;
		int64_t d;

		if (parse_day(day, &d) < 0) {
			log_warn("usage", "ignoring a stored row with day '%s'",
				 day ? day : "");
			continue;
		}
		c.requests = col_u64(st, 4);
		c.errors = col_u64(st, 5);
		c.prompt = col_u64(st, 6);
		c.completion = col_u64(st, 7);
		c.reasoning = col_u64(st, 8);
		c.cached = col_u64(st, 9);
		c.cost = sqlite3_column_double(st, 10);
		count_add(&row_get(u, col_str(st, 0), col_str(st, 1),
				   col_str(st, 2), d)->total, &c);
	}
	if (s == SQLITE_DONE)
		rc = 0;
out:
	if (rc < 0 && err)
		buf_printf(err, "usage database: %s", sqlite3_errmsg(u->db));
	sqlite3_finalize(st);
	return rc;
}

static int db_open(struct usage_store *u, const char *path, struct buf *err)
{
	int rc = sqlite3_open_v2(path, &u->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				 SQLITE_OPEN_FULLMUTEX, NULL);

	if (rc != SQLITE_OK) {
		if (err)
			buf_printf(err, "usage database %s: %s", path,
				   u->db ? sqlite3_errmsg(u->db)
					 : sqlite3_errstr(rc));
		return -1;
	}
	sqlite3_busy_timeout(u->db, BUSY_TIMEOUT_MS);
	if (set_wal(u->db, err) < 0 || migrate(u->db, err) < 0 ||
	    load_rows(u, err) < 0)
		return -1;
	if (sqlite3_prepare_v3(u->db, upsert_sql, -1,
			       SQLITE_PREPARE_PERSISTENT, &u->upsert,
			       NULL) != SQLITE_OK) {
		if (err)
			buf_printf(err, "usage database: %s",
				   sqlite3_errmsg(u->db));
		return -1;
	}
	return 0;
}

/* ---- flushing ---- */

/* Move every dirty delta out of the rows. Caller frees *out. */
static size_t take_deltas(struct usage_store *u, struct pending **out)
{
	struct pending *p = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&u->lock);
	for (struct urow *r = u->dirty; r; r = r->next_dirty) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			p = xrealloc(p, cap * sizeof(*p));
		}
		p[n].row = r;
		p[n].d = r->delta;
		n++;
		memset(&r->delta, 0, sizeof(r->delta));
		r->dirty = false;
	}
	u->dirty = NULL;
	pthread_mutex_unlock(&u->lock);
	*out = p;
	return n;
}

/* A write failed: add the deltas back so the next flush retries them
 * (together with whatever was recorded meanwhile). */
static void give_back(struct usage_store *u, const struct pending *p,
		      size_t n)
{
	pthread_mutex_lock(&u->lock);
	for (size_t i = 0; i < n; i++) {
		count_add(&p[i].row->delta, &p[i].d);
		mark_dirty(u, p[i].row);
	}
	pthread_mutex_unlock(&u->lock);
}

static int bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	/* SQLite integers are signed 64-bit; no token count gets near 2^63 */
	if (v > INT64_MAX)
		v = INT64_MAX;
	return sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static int write_one(struct usage_store *u, const struct pending *p)
{
	sqlite3_stmt *st = u->upsert;
	const struct urow *r = p->row;
	char day[16];
	int rc;

	format_day(r->day, day);
	sqlite3_reset(st);
	if (sqlite3_bind_text(st, 1, r->key, -1, SQLITE_STATIC) ||
	    sqlite3_bind_text(st, 2, r->provider, -1, SQLITE_STATIC) ||
	    sqlite3_bind_text(st, 3, r->model, -1, SQLITE_STATIC) ||
	    sqlite3_bind_text(st, 4, day, -1, SQLITE_TRANSIENT) ||
	    bind_u64(st, 5, p->d.requests) || bind_u64(st, 6, p->d.errors) ||
	    bind_u64(st, 7, p->d.prompt) || bind_u64(st, 8, p->d.completion) ||
	    bind_u64(st, 9, p->d.reasoning) || bind_u64(st, 10, p->d.cached) ||
	    sqlite3_bind_double(st, 11, p->d.cost))
		return -1;
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* All deltas in one transaction: a crash leaves all or none of them. */
static int write_deltas(struct usage_store *u, const struct pending *p,
			size_t n)
{
	if (db_exec(u->db, "BEGIN IMMEDIATE") < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (write_one(u, &p[i]) < 0) {
			log_error("usage", "flush: %s", sqlite3_errmsg(u->db));
			goto rollback;
		}
	}
	if (db_exec(u->db, "COMMIT") < 0)
		goto rollback;
	return 0;
rollback:
	sqlite3_clear_bindings(u->upsert);
	/* after a failed COMMIT SQLite may already have rolled back */
	if (!sqlite3_get_autocommit(u->db))
		db_exec(u->db, "ROLLBACK");
	return -1;
}

int usage_flush(struct usage_store *u)
{
	struct pending *p = NULL;
	size_t n;
	int rc = 0;

	if (!u || !u->db)
		return 0;
	pthread_mutex_lock(&u->flush_lock);
	n = take_deltas(u, &p);
	if (n == 0)
		goto out;
	rc = write_deltas(u, p, n);
	if (rc < 0) {
		log_error("usage", "flush of %zu rows failed; kept for retry",
			  n);
		give_back(u, p, n);
		goto out;
	}
	sqlite3_clear_bindings(u->upsert); /* drop the borrowed names */
	log_debug("usage", "flushed %zu rows", n);
out:
	pthread_mutex_unlock(&u->flush_lock);
	free(p);
	return rc;
}

/* Sleep interval_s on a monotonic clock (a wall clock step must not
 * stall or hurry the flush), flush, repeat until usage_close signals. */
static void *flush_main(void *arg)
{
	struct usage_store *u = arg;
	struct timespec deadline;

	pthread_mutex_lock(&u->lock);
	while (!u->stopping) {
		monotonic_deadline(&deadline,
				   (uint64_t)u->interval_s * 1000000u);
		while (!u->stopping &&
		       pthread_cond_timedwait(&u->wake, &u->lock,
					      &deadline) != ETIMEDOUT)
			;
		if (u->stopping)
			break;
		pthread_mutex_unlock(&u->lock);
		usage_flush(u); /* a failure is logged and retried next time */
		pthread_mutex_lock(&u->lock);
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

/* Free everything; the flush thread, if any, must be stopped. */
static void store_free(struct usage_store *u)
{
	sqlite3_finalize(u->upsert); /* NULL is a no-op */
	if (u->db)
		sqlite3_close(u->db);
	free_rows(u);
	pthread_cond_destroy(&u->wake);
	pthread_mutex_destroy(&u->flush_lock);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

struct usage_store *usage_open(const char *path, unsigned flush_interval_s,
			       struct buf *err)
{
	struct usage_store *u = xcalloc(1, sizeof(*u));
	int rc;

	pthread_mutex_init(&u->lock, NULL);
	pthread_mutex_init(&u->flush_lock, NULL);
	cond_init_monotonic(&u->wake);
	u->nslots = 64;
	u->slots = xcalloc(u->nslots, sizeof(struct urow *));
	/* 0 would spin; once a second is the tightest useful interval */
	u->interval_s = flush_interval_s ? flush_interval_s : 1;
	if (!path)
		return u; /* memory only: no database, no thread */
	if (db_open(u, path, err) < 0)
		goto fail;
	rc = pthread_create(&u->thread, NULL, flush_main, u);
	if (rc != 0) {
		if (err)
			buf_printf(err, "usage flush thread: %s", strerror(rc));
		goto fail;
	}
	u->have_thread = true;
	return u;
fail:
	store_free(u);
	return NULL;
}

void usage_close(struct usage_store *u)
{
	if (!u)
		return;
	if (u->have_thread) {
		pthread_mutex_lock(&u->lock);
		u->stopping = true;
		pthread_cond_signal(&u->wake);
		pthread_mutex_unlock(&u->lock);
		pthread_join(u->thread, NULL);
	}
	if (usage_flush(u) < 0)
		log_error("usage", "closing with unsaved usage (see above)");
	store_free(u);
}

/* ---- queries, all from memory ---- */

enum { G_KEY = 1, G_PROVIDER = 2, G_MODEL = 4, G_DAY = 8 };
static const char *const dim_names[] = { "key", "provider", "model", "day" };

/* "key, model" -> G_KEY | G_MODEL. -1 with a message naming the field. */
static int parse_group_by(const char *s, unsigned *mask, char *errmsg,
			  size_t n)
{
	*mask = 0;
	if (!s) {
		*mask = G_KEY | G_PROVIDER | G_MODEL | G_DAY;
		return 0;
	}
	for (;;) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s), i;

		while (len && *s == ' ') {
			s++;
			len--;
		}
		while (len && s[len - 1] == ' ')
			len--;
		for (i = 0; i < ARRAY_SIZE(dim_names); i++)
			if (strlen(dim_names[i]) == len &&
			    memcmp(s, dim_names[i], len) == 0)
				break;
		if (i == ARRAY_SIZE(dim_names)) {
			if (errmsg && n)
				snprintf(errmsg, n, len ?
					 "unknown group_by field '%.*s' "
					 "(use key, provider, model, day)" :
					 "empty group_by field%.*s "
					 "(use key, provider, model, day)",
					 (int)(len > 64 ? 64 : len), s);
			return -1;
		}
		*mask |= 1u << i;
		if (!end)
			return 0;
		s = end + 1;
	}
}

/* q->model names the model alone or as provider/model. */
static bool model_matches(const struct urow *r, const char *m)
{
	size_t plen = strlen(r->provider);

	if (strcmp(r->model, m) == 0)
		return true;
	return strncmp(m, r->provider, plen) == 0 && m[plen] == '/' &&
	       strcmp(m + plen + 1, r->model) == 0;
}

/* A day counts when its start lies in [from, to); 0 = open. */
static bool day_in(int64_t day, time_t from, time_t to)
{
	int64_t start = day * SECS_PER_DAY;

	return (!from || start >= (int64_t)from) &&
	       (!to || start < (int64_t)to);
}

static bool row_matches(const struct urow *r, const struct usage_query *q)
{
	if (q->key && strcmp(r->key, q->key) != 0)
		return false;
	if (q->model && !model_matches(r, q->model))
		return false;
	return day_in(r->day, q->from, q->to);
}

/* A matching row with its counts copied under the lock. */
struct qrow {
	const struct urow *row;
	struct ucount c;
	unsigned mask;
};

static int qrow_cmp(const void *pa, const void *pb)
{
	const struct qrow *a = pa, *b = pb;
	int c;

	if ((a->mask & G_KEY) && (c = strcmp(a->row->key, b->row->key)))
		return c;
	if ((a->mask & G_PROVIDER) &&
	    (c = strcmp(a->row->provider, b->row->provider)))
		return c;
	if ((a->mask & G_MODEL) &&
	    (c = strcmp(a->row->model, b->row->model)))
		return c;
	if ((a->mask & G_DAY) && a->row->day != b->row->day)
		return a->row->day < b->row->day ? -1 : 1;
	return 0;
}

/* The matching rows, counts copied, so the lock is dropped before any
 * sorting or printing. Caller frees. */
static size_t gather(struct usage_store *u, const struct usage_query *q,
		     unsigned mask, struct qrow **out)
{
	struct qrow *v = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&u->lock);
	for (size_t i = 0; i < u->nslots; i++) {
		for (const struct urow *r = u->slots[i]; r; r = r->next) {
			if (!row_matches(r, q))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				v = xrealloc(v, cap * sizeof(*v));
			}
			v[n].row = r;
			v[n].c = r->total;
			v[n].mask = mask;
			n++;
		}
	}
	pthread_mutex_unlock(&u->lock);
	*out = v;
	return n;
}

static int emit_group(struct buf *out, const struct qrow *g,
		      const struct ucount *c, bool first)
{
	const struct urow *r = g->row;
	char day[16];
	int bad = 0;

	bad |= buf_appends(out, first ? "{" : ",{");
	if (g->mask & G_KEY) {
		bad |= buf_appends(out, "\"key\":");
		bad |= buf_append_json_str(out, r->key, strlen(r->key));
		bad |= buf_appends(out, ",");
	}
	if (g->mask & G_PROVIDER) {
		bad |= buf_appends(out, "\"provider\":");
		bad |= buf_append_json_str(out, r->provider,
					   strlen(r->provider));
		bad |= buf_appends(out, ",");
	}
	if (g->mask & G_MODEL) {
		bad |= buf_appends(out, "\"model\":");
		bad |= buf_append_json_str(out, r->model, strlen(r->model));
		bad |= buf_appends(out, ",");
	}
	if (g->mask & G_DAY) {
		format_day(r->day, day);
		bad |= buf_printf(out, "\"day\":\"%s\",", day);
	}
	/* %.15g: exact to the last cent of a trillion, no 0.1+0.2 noise */
	bad |= buf_printf(out, "\"requests\":%" PRIu64 ",\"errors\":%" PRIu64
			  ",\"prompt_tokens\":%" PRIu64
			  ",\"completion_tokens\":%" PRIu64
			  ",\"reasoning_tokens\":%" PRIu64
			  ",\"cached_tokens\":%" PRIu64
			  ",\"total_tokens\":%" PRIu64 ",\"cost\":%.15g}",
			  c->requests, c->errors, c->prompt, c->completion,
			  c->reasoning, c->cached, c->prompt + c->completion,
			  c->cost);
	return bad ? -1 : 0;
}

int usage_query_json(struct usage_store *u, const struct usage_query *q,
		     struct buf *out, char *errmsg, size_t n)
{
	static const struct usage_query all;
	struct qrow *v = NULL;
	unsigned mask;
	size_t nv, i, j;
	int rc = -1;

	if (!q)
		q = &all;
	if (parse_group_by(q->group_by, &mask, errmsg, n) < 0)
		return -1;
	nv = u ? gather(u, q, mask, &v) : 0;
	if (nv)
		qsort(v, nv, sizeof(*v), qrow_cmp);
	if (buf_appends(out, "{\"object\":\"list\",\"data\":[") < 0)
		goto too_large;
	/* sorted, so each group is a run of equal neighbours */
	for (i = 0; i < nv; i = j) {
		struct ucount sum = v[i].c;

		for (j = i + 1; j < nv && qrow_cmp(&v[i], &v[j]) == 0; j++)
			count_add(&sum, &v[j].c);
		if (emit_group(out, &v[i], &sum, i == 0) < 0)
			goto too_large;
	}
	if (buf_appends(out, "]}") < 0)
		goto too_large;
	rc = 0;
	goto out;
too_large:
	if (errmsg && n)
		snprintf(errmsg, n, "usage answer too large");
out:
	free(v);
	return rc;
}

/* key NULL adds up every key. A scan of all rows: meant for seeding
 * budgets at startup, not for every request. */
void usage_key_totals(struct usage_store *u, const char *key, time_t from,
		      time_t to, uint64_t *tokens, double *cost)
{
	const struct urow *r;
	uint64_t t = 0;
	double c = 0;

	if (u) {
		pthread_mutex_lock(&u->lock);
		for (size_t i = 0; i < u->nslots; i++) {
			for (r = u->slots[i]; r; r = r->next) {
				int64_t start = r->day * SECS_PER_DAY;

				if ((key && strcmp(r->key, key) != 0) ||
				    start < (int64_t)from ||
				    start >= (int64_t)to)
					continue;
				t += r->total.prompt + r->total.completion;
				c += r->total.cost;
			}
		}
		pthread_mutex_unlock(&u->lock);
	}
	if (tokens)
		*tokens = t;
	if (cost)
		*cost = c;
}
