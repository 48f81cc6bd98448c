/* SPDX-License-Identifier: MIT */
/* Unit tests for usage: in-memory aggregation, queries and the SQLite
 * persistence (reopen, crash, WAL, failed flushes, many threads). */
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sqlite3.h>

#include "testutil.h"
#include "usage.h"
#include "util.h"

#define DAY 86400
#define D0 ((time_t)1704067200) /* 2024-01-01T00:00:00Z */

/* ---- helpers ---- */

/* One directory under $TMPDIR per test case, made and removed by an
 * unchecked fixture: that runs in the parent, so a failed test cannot
 * leave files behind. */
static char base[4096];

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	return remove(p);
}

static void base_setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(base, sizeof(base), "%s/lb-usage-XXXXXX",
		 t && *t ? t : "/tmp");
	if (!mkdtemp(base))
		abort();
}

static void base_teardown(void)
{
	nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory for one test; rm_dir removes it and its files. */
static char *mk_dir(void)
{
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "%s/t-XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(b.data));
	return buf_steal(&b);
}

static void rm_dir(char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[4096];

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		ck_assert_int_eq(unlink(p), 0);
	}
	closedir(d);
	ck_assert_int_eq(rmdir(dir), 0);
	free(dir);
}

static char *db_path(const char *dir)
{
	struct buf b;

	buf_init(&b, 0);
	buf_printf(&b, "%s/usage.db", dir);
	return buf_steal(&b);
}

static void rec(struct usage_store *u, const char *key, const char *prov,
		const char *model, time_t when, uint64_t prompt,
		uint64_t completion, double cost, bool error)
{
	struct usage_rec r = {
		.key = key, .provider = prov, .model = model, .error = error,
		.prompt_tokens = prompt, .completion_tokens = completion,
		.reasoning_tokens = completion / 2, .cached_tokens = prompt / 4,
		.cost = cost,
	};

	usage_record(u, &r, when);
}

static struct usage_store *open_ok(const char *path, unsigned interval)
{
	struct buf err;
	struct usage_store *u;

	buf_init(&err, 0);
	u = usage_open(path, interval, &err);
	ck_assert_msg(u != NULL, "usage_open: %s", err.data ? err.data : "");
	ck_assert_uint_eq(err.len, 0);
	buf_free(&err);
	return u;
}

/* Run a query that must succeed; returns the parsed "data" array's
 * parent (caller puts it). */
static json_object *query(struct usage_store *u, const char *key,
			  const char *model, time_t from, time_t to,
			  const char *group_by, json_object **data)
{
	struct usage_query q = { key, model, from, to, group_by };
	struct buf out;
	char msg[256] = "";
	json_object *root, *v;

	buf_init(&out, 0);
	ck_assert_msg(usage_query_json(u, &q, &out, msg, sizeof(msg)) == 0,
		      "query failed: %s", msg);
	root = json_tokener_parse(out.data);
	ck_assert_msg(root != NULL, "not JSON: %s", out.data);
	ck_assert(json_object_object_get_ex(root, "object", &v));
	ck_assert_str_eq(json_object_get_string(v), "list");
	ck_assert(json_object_object_get_ex(root, "data", data));
	ck_assert(json_object_is_type(*data, json_type_array));
	buf_free(&out);
	return root;
}

static const char *str_field(json_object *o, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v))
		return NULL;
	ck_assert(json_object_is_type(v, json_type_string));
	return json_object_get_string(v);
}

static int64_t int_field(json_object *o, const char *name)
{
	json_object *v;

	ck_assert_msg(json_object_object_get_ex(o, name, &v), "no %s", name);
	ck_assert(json_object_is_type(v, json_type_int));
	return json_object_get_int64(v);
}

static double cost_field(json_object *o)
{
	json_object *v;

	ck_assert(json_object_object_get_ex(o, "cost", &v));
	return json_object_get_double(v);
}

/* The element whose dimensions equal the given ones; NULL = the field
 * must be absent. Fails the test when there is no such element. */
static json_object *row_where(json_object *data, const char *key,
			      const char *prov, const char *model,
			      const char *day)
{
	const char *want[] = { key, prov, model, day };
	const char *names[] = { "key", "provider", "model", "day" };

	for (size_t i = 0; i < json_object_array_length(data); i++) {
		json_object *o = json_object_array_get_idx(data, i);
		size_t j;

		for (j = 0; j < 4; j++) {
			const char *got = str_field(o, names[j]);

			if (!want[j] != !got ||
			    (got && strcmp(got, want[j]) != 0))
				break;
		}
		if (j == 4)
			return o;
	}
	ck_abort_msg("no row %s/%s/%s/%s", key ? key : "-", prov ? prov : "-",
		     model ? model : "-", day ? day : "-");
	return NULL;
}

/* A few requests over two keys, two providers, three models, two days. */
static void fill(struct usage_store *u)
{
	rec(u, "alice", "openai", "gpt-4o", D0 + 10, 100, 20, 0.5, false);
	rec(u, "alice", "openai", "gpt-4o", D0 + 3600, 50, 10, 0.25, true);
	rec(u, "alice", "openai", "gpt-4o", D0 + DAY + 5, 8, 2, 0.125, false);
	rec(u, "alice", "gemini", "flash", D0 + 20, 1000, 0, 1.0, false);
	rec(u, "bob", "openai", "gpt-4o", D0 + DAY - 1, 4, 4, 0.0625, false);
	rec(u, "bob", "openai", "o3", D0 + DAY, 10, 30, 2.0, true);
}

static void usage_text(struct usage_store *u, const char *group_by,
		       struct buf *out)
{
	struct usage_query q = { .group_by = group_by };
	char msg[128];

	buf_init(out, 0);
	ck_assert_int_eq(usage_query_json(u, &q, out, msg, sizeof(msg)), 0);
}

/* ---- in memory ---- */

START_TEST(exact_json)
{
	struct usage_store *u = usage_open(NULL, 5, NULL);
	struct usage_rec r = {
		.key = "k", .provider = "openai", .model = "gpt",
		.prompt_tokens = 10, .completion_tokens = 5,
		.reasoning_tokens = 2, .cached_tokens = 3, .cost = 0.25,
	};
	struct buf out;

	ck_assert_ptr_nonnull(u);
	usage_text(u, NULL, &out);
	ck_assert_str_eq(out.data, "{\"object\":\"list\",\"data\":[]}");
	buf_free(&out);

	usage_record(u, &r, D0 + 10);
	usage_text(u, NULL, &out);
	ck_assert_str_eq(out.data,
		"{\"object\":\"list\",\"data\":[{\"key\":\"k\","
		"\"provider\":\"openai\",\"model\":\"gpt\","
		"\"day\":\"2024-01-01\",\"requests\":1,\"errors\":0,"
		"\"prompt_tokens\":10,\"completion_tokens\":5,"
		"\"reasoning_tokens\":2,\"cached_tokens\":3,"
		"\"total_tokens\":15,\"cost\":0.25}]}");
	buf_free(&out);

	/* only the grouped dimensions appear, in a valid object */
	usage_text(u, "model", &out);
	ck_assert_str_eq(out.data,
		"{\"object\":\"list\",\"data\":[{\"model\":\"gpt\","
		"\"requests\":1,\"errors\":0,\"prompt_tokens\":10,"
		"\"completion_tokens\":5,\"reasoning_tokens\":2,"
		"\"cached_tokens\":3,\"total_tokens\":15,\"cost\":0.25}]}");
	buf_free(&out);
	usage_close(u);
}
END_TEST

START_TEST(aggregate_full_rows)
{
	struct usage_store *u = usage_open(NULL, 5, NULL);
	json_object *data, *root = NULL, *o;

	fill(u);
	root = query(u, NULL, NULL, 0, 0, NULL, &data);
	ck_assert_uint_eq(json_object_array_length(data), 5);
	/* two records in one row */
	o = row_where(data, "alice", "openai", "gpt-4o", "2024-01-01");
	ck_assert_int_eq(int_field(o, "requests"), 2);
	ck_assert_int_eq(int_field(o, "errors"), 1);
	ck_assert_int_eq(int_field(o, "prompt_tokens"), 150);
	ck_assert_int_eq(int_field(o, "completion_tokens"), 30);
	ck_assert_int_eq(int_field(o, "reasoning_tokens"), 10 + 5);
	ck_assert_int_eq(int_field(o, "cached_tokens"), 25 + 12);
	ck_assert_int_eq(int_field(o, "total_tokens"), 180);
	ck_assert_double_eq(cost_field(o), 0.75);
	/* the last second of a day and the first of the next split */
	o = row_where(data, "bob", "openai", "gpt-4o", "2024-01-01");
	ck_assert_int_eq(int_field(o, "requests"), 1);
	o = row_where(data, "bob", "openai", "o3", "2024-01-02");
	ck_assert_int_eq(int_field(o, "errors"), 1);
	ck_assert_int_eq(int_field(o, "total_tokens"), 40);
	/* sorted by key, provider, model, day */
	o = json_object_array_get_idx(data, 0);
	ck_assert_str_eq(str_field(o, "key"), "alice");
	ck_assert_str_eq(str_field(o, "provider"), "gemini");
	o = json_object_array_get_idx(data, 4);
	ck_assert_str_eq(str_field(o, "model"), "o3");
	json_object_put(root);
	usage_close(u);
}
END_TEST

START_TEST(group_by_variants)
{
	struct usage_store *u = usage_open(NULL, 5, NULL);
	json_object *data, *root, *o;

	fill(u);
	root = query(u, NULL, NULL, 0, 0, "key", &data);
	ck_assert_uint_eq(json_object_array_length(data), 2);
	o = row_where(data, "alice", NULL, NULL, NULL);
	ck_assert_int_eq(int_field(o, "requests"), 4);
	ck_assert_int_eq(int_field(o, "prompt_tokens"), 1158);
	ck_assert_double_eq(cost_field(o), 1.875);
	o = row_where(data, "bob", NULL, NULL, NULL);
	ck_assert_int_eq(int_field(o, "requests"), 2);
	ck_assert_int_eq(int_field(o, "errors"), 1);
	json_object_put(root);

	root = query(u, NULL, NULL, 0, 0, "day", &data);
	ck_assert_uint_eq(json_object_array_length(data), 2);
	ck_assert_int_eq(int_field(row_where(data, NULL, NULL, NULL,
					     "2024-01-01"), "requests"), 4);
	ck_assert_int_eq(int_field(row_where(data, NULL, NULL, NULL,
					     "2024-01-02"), "requests"), 2);
	json_object_put(root);

	/* spaces and repeats are fine; order of the list does not matter */
	root = query(u, NULL, NULL, 0, 0, " model , provider,model", &data);
	ck_assert_uint_eq(json_object_array_length(data), 3);
	o = row_where(data, NULL, "openai", "gpt-4o", NULL);
	ck_assert_int_eq(int_field(o, "requests"), 4);
	ck_assert_int_eq(int_field(o, "total_tokens"), 198);
	ck_assert_int_eq(int_field(row_where(data, NULL, "gemini", "flash",
					     NULL), "requests"), 1);
	json_object_put(root);

	root = query(u, NULL, NULL, 0, 0, "key,day", &data);
	ck_assert_uint_eq(json_object_array_length(data), 4);
	ck_assert_int_eq(int_field(row_where(data, "alice", NULL, NULL,
					     "2024-01-01"), "requests"), 3);
	ck_assert_int_eq(int_field(row_where(data, "bob", NULL, NULL,
					     "2024-01-02"), "requests"), 1);
	json_object_put(root);
	usage_close(u);
}
END_TEST

static void bad_group(struct usage_store *u, const char *g, const char *msg)
{
	struct usage_query q = { .group_by = g };
	struct buf out;
	char err[128] = "";

	buf_init(&out, 0);
	ck_assert_int_eq(usage_query_json(u, &q, &out, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, msg) != NULL, "'%s' lacks '%s'", err, msg);
	ck_assert_uint_eq(out.len, 0); /* nothing half-written */
	buf_free(&out);
}

START_TEST(bad_group_by)
{
	struct usage_store *u = usage_open(NULL, 5, NULL);
	struct usage_query q = { .group_by = "tenant" };
	struct buf out;
	char tiny[8];

	fill(u);
	bad_group(u, "key,colour", "'colour'");
	bad_group(u, "keys", "'keys'");
	bad_group(u, "Key", "'Key'");
	bad_group(u, "", "empty group_by field");
	bad_group(u, "key,", "empty group_by field");
	bad_group(u, "key,,day", "empty group_by field");
	/* a small errmsg is truncated, not overrun; NULL errmsg is allowed */
	buf_init(&out, 0);
	ck_assert_int_eq(usage_query_json(u, &q, &out, tiny, sizeof(tiny)), -1);
	ck_assert_uint_eq(strlen(tiny), sizeof(tiny) - 1);
	ck_assert_int_eq(usage_query_json(u, &q, &out, NULL, 0), -1);
	buf_free(&out);
	usage_close(u);
}
END_TEST

START_TEST(filters)
{
	struct usage_store *u = usage_open(NULL, 5, NULL);
	json_object *data, *root;

	fill(u);
	root = query(u, "bob", NULL, 0, 0, "key", &data);
	ck_assert_uint_eq(json_object_array_length(data), 1);
	ck_assert_int_eq(int_field(row_where(data, "bob", NULL, NULL, NULL),
				   "requests"), 2);
	json_object_put(root);

	root = query(u, "nobody", NULL, 0, 0, NULL, &data);
	ck_assert_uint_eq(json_object_array_length(data), 0);
	json_object_put(root);

	/* model alone, or provider/model */
	root = query(u, NULL, "gpt-4o", 0, 0, "key", &data);
	ck_assert_int_eq(int_field(row_where(data, "alice", NULL, NULL, NULL),
				   "requests"), 3);
	ck_assert_int_eq(int_field(row_where(data, "bob", NULL, NULL, NULL),
				   "requests"), 1);
	json_object_put(root);
	root = query(u, NULL, "gemini/flash", 0, 0, "model", &data);
	ck_assert_uint_eq(json_object_array_length(data), 1);
	ck_assert_int_eq(int_field(row_where(data, NULL, NULL, "flash", NULL),
				   "prompt_tokens"), 1000);
	json_object_put(root);
	root = query(u, NULL, "openai/flash", 0, 0, NULL, &data);
	ck_assert_uint_eq(json_object_array_length(data), 0);
	json_object_put(root);
	root = query(u, NULL, "gpt", 0, 0, NULL, &data); /* no prefixes */
	ck_assert_uint_eq(json_object_array_length(data), 0);
	json_object_put(root);

	/* [from, to) by day start: from at a day start includes the day,
	 * from one second later excludes it; to is exclusive */
	root = query(u, NULL, NULL, D0 + DAY, 0, "day", &data);
	ck_assert_uint_eq(json_object_array_length(data), 1);
	row_where(data, NULL, NULL, NULL, "2024-01-02");
	json_object_put(root);
	root = query(u, NULL, NULL, D0 + 1, 0, "day", &data);
	ck_assert_uint_eq(json_object_array_length(data), 1);
	json_object_put(root);
	root = query(u, NULL, NULL, 0, D0 + DAY, "day", &data);
	ck_assert_uint_eq(json_object_array_length(data), 1);
	row_where(data, NULL, NULL, NULL, "2024-01-01");
	json_object_put(root);
	root = query(u, NULL, NULL, D0, D0 + DAY + 1, "day", &data);
	ck_assert_uint_eq(json_object_array_length(data), 2);
	json_object_put(root);

	/* all together */
	root = query(u, "alice", "openai/gpt-4o", D0 + DAY, D0 + 2 * DAY,
		     NULL, &data);
	ck_assert_uint_eq(json_object_array_length(data), 1);
	ck_assert_int_eq(int_field(row_where(data, "alice", "openai", "gpt-4o",
					     "2024-01-02"), "prompt_tokens"), 8);
	json_object_put(root);
	usage_close(u);
}
END_TEST

START_TEST(key_totals_ranges)
{
	struct usage_store *u = usage_open(NULL, 5, NULL);
	uint64_t t = 99;
	double c = 99;

	fill(u);
	usage_key_totals(u, "alice", D0, D0 + 2 * DAY, &t, &c);
	ck_assert_uint_eq(t, 120 + 60 + 10 + 1000);
	ck_assert_double_eq(c, 1.875);
	usage_key_totals(u, "alice", D0, D0 + DAY, &t, &c);
	ck_assert_uint_eq(t, 1180);
	ck_assert_double_eq(c, 1.75);
	/* a day counts when its start is in range: D0 + 1 drops day one */
	usage_key_totals(u, "alice", D0 + 1, D0 + 2 * DAY, &t, &c);
	ck_assert_uint_eq(t, 10);
	usage_key_totals(u, "alice", D0 + DAY, D0 + DAY, &t, &c);
	ck_assert_uint_eq(t, 0);
	ck_assert_double_eq(c, 0);
	usage_key_totals(u, "bob", 0, D0 + 10 * DAY, &t, &c);
	ck_assert_uint_eq(t, 8 + 40);
	ck_assert_double_eq(c, 2.0625);
	usage_key_totals(u, "carol", 0, D0 + 10 * DAY, &t, &c);
	ck_assert_uint_eq(t, 0);
	ck_assert_double_eq(c, 0);
	/* either output may be skipped */
	usage_key_totals(u, "bob", 0, D0 + 10 * DAY, NULL, &c);
	ck_assert_double_eq(c, 2.0625);
	usage_key_totals(u, "bob", 0, D0 + 10 * DAY, &t, NULL);
	ck_assert_uint_eq(t, 48);
	usage_close(u);
}
END_TEST

START_TEST(json_escaping)
{
	static const char *odd[] = {
		"quote\"d", "back\\slash", "new\nline", "tab\tand\x01\x1f",
		"</script>", "caf\xc3\xa9 \xe2\x9c\x93",
	};
	struct usage_store *u = usage_open(NULL, 5, NULL);
	json_object *data, *root;

	for (size_t i = 0; i < ARRAY_SIZE(odd); i++)
		rec(u, odd[i], "p", odd[ARRAY_SIZE(odd) - 1 - i], D0, 1, 1, 0,
		    false);
	root = query(u, NULL, NULL, 0, 0, "key,model", &data);
	ck_assert_uint_eq(json_object_array_length(data), ARRAY_SIZE(odd));
	for (size_t i = 0; i < ARRAY_SIZE(odd); i++)
		row_where(data, odd[i], NULL, odd[ARRAY_SIZE(odd) - 1 - i],
			  NULL);
	json_object_put(root);
	/* the filters take the raw names */
	root = query(u, "new\nline", NULL, 0, 0, "key", &data);
	ck_assert_uint_eq(json_object_array_length(data), 1);
	json_object_put(root);
	usage_close(u);
}
END_TEST

START_TEST(odd_records)
{
	struct usage_store *u = usage_open(NULL, 5, NULL);
	struct usage_rec r = { .key = NULL, .provider = NULL, .model = NULL,
			       .prompt_tokens = 7, .cost = NAN };
	json_object *data, *root, *o;

	usage_record(u, &r, D0);
	r.cost = INFINITY;
	usage_record(u, &r, D0);
	r.cost = 0.5;
	usage_record(u, &r, -1);  /* 1969-12-31T23:59:59Z */
	usage_record(u, &r, 0);
	usage_record(u, &r, 951825600); /* 2000-02-29T12:00:00Z */
	usage_record(NULL, &r, D0); /* ignored */
	root = query(u, NULL, NULL, 0, 0, NULL, &data);
	/* NULL names are empty strings; NaN and inf costs count as 0 so the
	 * answer stays JSON */
	o = row_where(data, "", "", "", "2024-01-01");
	ck_assert_int_eq(int_field(o, "requests"), 2);
	ck_assert_double_eq(cost_field(o), 0);
	row_where(data, "", "", "", "1969-12-31");
	row_where(data, "", "", "", "1970-01-01");
	row_where(data, "", "", "", "2000-02-29");
	json_object_put(root);
	usage_close(u);
	usage_close(NULL);
}
END_TEST

/* ---- persistence ---- */

static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void raw_exec(sqlite3 *db, const char *sql)
{
	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK,
		      "%s: %s", sql, sqlite3_errmsg(db));
}

START_TEST(reopen_same_totals)
{
	char *dir = mk_dir(), *path = db_path(dir);
	struct usage_store *u = open_ok(path, 3600);
	struct buf before, after;
	uint64_t t;
	double c;

	fill(u);
	usage_text(u, NULL, &before);
	usage_close(u); /* the final flush writes everything */

	u = open_ok(path, 3600);
	usage_text(u, NULL, &after);
	ck_assert_str_eq(after.data, before.data);
	usage_key_totals(u, "alice", D0, D0 + DAY, &t, &c);
	ck_assert_uint_eq(t, 1180);
	ck_assert_double_eq(c, 1.75);
	/* new records add to the loaded rows, and a second reopen sums both
	 * runs without counting the first one twice */
	fill(u);
	usage_close(u);
	u = open_ok(path, 3600);
	usage_key_totals(u, "alice", D0, D0 + DAY, &t, &c);
	ck_assert_uint_eq(t, 2 * 1180);
	ck_assert_double_eq(c, 3.5);
	buf_free(&before);
	buf_free(&after);
	usage_close(u);
	rm_dir(dir);
	free(path);
}
END_TEST

START_TEST(leap_day_survives_reload)
{
	char *dir = mk_dir(), *path = db_path(dir);
	struct usage_store *u = open_ok(path, 3600);
	const time_t feb29 = 1709208000; /* 2024-02-29T12:00:00Z */
	const time_t start = feb29 - 12 * 3600;
	uint64_t t;

	rec(u, "k", "p", "m", feb29, 3, 4, 0, false);
	rec(u, "k", "p", "m", -DAY, 1, 1, 0, false); /* 1969-12-31 */
	usage_close(u);
	u = open_ok(path, 3600);
	/* the stored "2024-02-29" maps back to exactly that day's start */
	usage_key_totals(u, "k", start, start + 1, &t, NULL);
	ck_assert_uint_eq(t, 7);
	usage_key_totals(u, "k", start + 1, start + DAY, &t, NULL);
	ck_assert_uint_eq(t, 0);
	usage_key_totals(u, "k", -DAY, -DAY + 1, &t, NULL);
	ck_assert_uint_eq(t, 2);
	usage_close(u);
	rm_dir(dir);
	free(path);
}
END_TEST

START_TEST(crash_keeps_flushed_part)
{
	char *dir = mk_dir(), *path = db_path(dir);
	struct usage_store *u;
	json_object *data, *root;
	int status, ready[2];
	char c0;
	pid_t pid;
	uint64_t t;
	double c;

	ck_assert_int_eq(pipe(ready), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* the child records, flushes, records more, says so and waits
		 * to be killed: no usage_close, no final flush, no cleanup */
		u = usage_open(path, 3600, NULL);
		if (!u)
			_exit(3);
		rec(u, "k", "p", "m", D0, 100, 10, 0.5, false);
		rec(u, "k", "p", "m", D0 + DAY, 1, 1, 0.25, false);
		if (usage_flush(u) != 0)
			_exit(4);
		rec(u, "k", "p", "m", D0, 1000, 1000, 8, false);
		rec(u, "k", "p", "other", D0, 1000, 1000, 8, false);
		if (write(ready[1], "!", 1) != 1)
			_exit(5);
		for (;;)
			pause();
	}
	close(ready[1]);
	/* SIGKILL from outside, as a crash or the OOM killer would: the
	 * child gets no chance to run any exit code (nor valgrind's) */
	ck_assert_msg(read(ready[0], &c0, 1) == 1, "the child failed early");
	close(ready[0]);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "child did not get to the kill (status %d)", status);

	u = open_ok(path, 3600);
	usage_key_totals(u, "k", 0, D0 + 10 * DAY, &t, &c);
	ck_assert_uint_eq(t, 112);
	ck_assert_double_eq(c, 0.75);
	root = query(u, NULL, NULL, 0, 0, NULL, &data);
	ck_assert_uint_eq(json_object_array_length(data), 2);
	ck_assert_int_eq(int_field(row_where(data, "k", "p", "m", "2024-01-01"),
				   "requests"), 1);
	json_object_put(root);
	usage_close(u);
	rm_dir(dir);
	free(path);
}
END_TEST

START_TEST(wal_and_schema)
{
	char *dir = mk_dir(), *path = db_path(dir);
	struct usage_store *u = open_ok(path, 3600);
	sqlite3 *db;
	sqlite3_stmt *st;

	rec(u, "k", "p", "m", D0, 1, 2, 0.5, true);
	ck_assert_int_eq(usage_flush(u), 0);
	ck_assert_int_eq(usage_flush(u), 0); /* nothing pending is fine */

	db = raw_open(path);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1,
					    &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	ck_assert_int_eq(raw_int(db, "PRAGMA user_version"), 1);
	/* while the store is open a WAL file exists beside the database */
	{
		char wal[4096];

		snprintf(wal, sizeof(wal), "%s-wal", path);
		ck_assert_int_eq(access(wal, F_OK), 0);
	}
	ck_assert_int_eq(raw_int(db, "SELECT requests FROM usage WHERE "
			 "key='k' AND provider='p' AND model='m' AND "
			 "day='2024-01-01'"), 1);
	ck_assert_int_eq(raw_int(db, "SELECT errors + prompt_tokens * 10 + "
			 "completion_tokens * 100 + reasoning_tokens * 1000 "
			 "FROM usage"), 1 + 10 + 200 + 1000);
	ck_assert_int_eq(raw_int(db, "SELECT cost * 1000 FROM usage"), 500);
	sqlite3_close(db);
	usage_close(u);
	rm_dir(dir);
	free(path);
}
END_TEST

START_TEST(failed_flush_keeps_deltas)
{
	char *dir = mk_dir(), *path = db_path(dir);
	struct usage_store *u = open_ok(path, 3600);
	sqlite3 *db = raw_open(path);
	uint64_t t;

	rec(u, "k", "p", "m", D0, 10, 0, 1, false);
	ck_assert_int_eq(usage_flush(u), 0);
	rec(u, "k", "p", "m", D0, 20, 0, 2, false);
	rec(u, "k2", "p", "m", D0, 40, 0, 4, false);
	/* the table vanishes under the store: the flush must fail */
	raw_exec(db, "ALTER TABLE usage RENAME TO usage_away");
	ck_assert_int_eq(usage_flush(u), -1);
	rec(u, "k", "p", "m", D0, 80, 0, 8, false);
	ck_assert_int_eq(usage_flush(u), -1);
	/* queries never depended on the database */
	usage_key_totals(u, "k", 0, D0 + DAY, &t, NULL);
	ck_assert_uint_eq(t, 110);
	raw_exec(db, "ALTER TABLE usage_away RENAME TO usage");
	ck_assert_int_eq(raw_int(db, "SELECT SUM(prompt_tokens) FROM usage"),
			 10);
	/* the retry writes the kept deltas and the newer one, once */
	ck_assert_int_eq(usage_flush(u), 0);
	ck_assert_int_eq(raw_int(db, "SELECT SUM(prompt_tokens) FROM usage"),
			 150);
	ck_assert_int_eq(raw_int(db, "SELECT SUM(requests) FROM usage"), 4);
	ck_assert_int_eq(raw_int(db, "SELECT SUM(cost) FROM usage"), 15);
	ck_assert_int_eq(usage_flush(u), 0);
	ck_assert_int_eq(raw_int(db, "SELECT SUM(requests) FROM usage"), 4);
	sqlite3_close(db);
	usage_close(u);
	rm_dir(dir);
	free(path);
}
END_TEST

#define NTHREADS 8
#define NRECS 20000

struct worker {
	struct usage_store *u;
	pthread_barrier_t *go; /* all start together, so they do contend */
	int id;
};

static void *recorder(void *arg)
{
	const struct worker *w = arg;
	static const char *keys[] = { "key0", "key1", "key2" };
	static const char *models[] = { "a", "b", "c" };

	pthread_barrier_wait(w->go);
	/* every thread walks the same 36 rows: the most contention */
	for (int i = 0; i < NRECS; i++)
		rec(w->u, keys[i % 3], "p", models[(i / 3) % 3],
		    D0 + (i / 9) % 4 * DAY, 3, 1, 0.5, i % 10 == 0);
	return NULL;
}

static void *flusher(void *arg)
{
	struct usage_store *u = arg;
	int failures = 0;

	for (int i = 0; i < 50; i++) {
		failures += usage_flush(u) != 0;
		usleep(2000);
	}
	return (void *)(intptr_t)failures;
}

START_TEST(threads_while_flushing)
{
	char *dir = mk_dir(), *path = db_path(dir);
	struct usage_store *u = open_ok(path, 1);
	pthread_t th[NTHREADS], fl;
	pthread_barrier_t go;
	struct worker w[NTHREADS];
	const uint64_t n = (uint64_t)NTHREADS * NRECS;
	sqlite3 *db;
	void *failures;
	uint64_t t;
	double c;

	pthread_barrier_init(&go, NULL, NTHREADS);
	ck_assert_int_eq(pthread_create(&fl, NULL, flusher, u), 0);
	for (int i = 0; i < NTHREADS; i++) {
		w[i].u = u;
		w[i].go = &go;
		w[i].id = i;
		ck_assert_int_eq(pthread_create(&th[i], NULL, recorder, &w[i]),
				 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_join(fl, &failures);
	pthread_barrier_destroy(&go);
	ck_assert_ptr_null(failures);
	usage_key_totals(u, NULL, 0, D0 + 10 * DAY, &t, &c);
	ck_assert_uint_eq(t, 4 * n);
	ck_assert_double_eq(c, 0.5 * (double)n); /* exact in binary */
	usage_close(u);

	db = raw_open(path);
	ck_assert_int_eq(raw_int(db, "SELECT SUM(requests) FROM usage"),
			 (int64_t)n);
	ck_assert_int_eq(raw_int(db, "SELECT SUM(errors) FROM usage"),
			 (int64_t)n / 10);
	ck_assert_int_eq(raw_int(db, "SELECT SUM(prompt_tokens) FROM usage"),
			 3 * (int64_t)n);
	ck_assert_int_eq(raw_int(db, "SELECT COUNT(*) FROM usage"),
			 3 * 3 * 4);
	sqlite3_close(db);

	u = open_ok(path, 1);
	usage_key_totals(u, "key0", 0, D0 + 10 * DAY, &t, &c);
	ck_assert_uint_eq(t, 4 * NTHREADS * ((NRECS + 2) / 3));
	usage_close(u);
	rm_dir(dir);
	free(path);
}
END_TEST

START_TEST(timer_flushes_and_close_is_prompt)
{
	char *dir = mk_dir(), *path = db_path(dir);
	struct usage_store *u = open_ok(path, 1);
	sqlite3 *db = raw_open(path);
	uint64_t t0;
	int64_t seen = 0;

	rec(u, "k", "p", "m", D0, 5, 0, 0, false);
	/* no explicit flush: the thread writes within about a second */
	for (int i = 0; i < 100 && seen == 0; i++) {
		usleep(50000);
		seen = raw_int(db, "SELECT COUNT(*) FROM usage");
	}
	ck_assert_int_eq(seen, 1);
	usage_close(u);

	/* a long interval: close must wake the thread, not wait it out */
	u = open_ok(path, 3600);
	rec(u, "k", "p", "m", D0, 5, 0, 0, false);
	t0 = now_ms();
	usage_close(u);
	ck_assert_uint_lt(now_ms() - t0, 2000);
	ck_assert_int_eq(raw_int(db, "SELECT prompt_tokens FROM usage"), 10);
	sqlite3_close(db);
	rm_dir(dir);
	free(path);
}
END_TEST

static void open_fails(const char *path, const char *needle)
{
	struct buf err;

	buf_init(&err, 0);
	ck_assert_ptr_null(usage_open(path, 5, &err));
	ck_assert_msg(err.data && strstr(err.data, needle),
		      "error '%s' lacks '%s'", err.data ? err.data : "", needle);
	buf_free(&err);
	ck_assert_ptr_null(usage_open(path, 5, NULL)); /* err may be NULL */
}

START_TEST(unopenable)
{
	char *dir = mk_dir(), *path = db_path(dir), bad[4096];
	sqlite3 *db;
	FILE *f;

	snprintf(bad, sizeof(bad), "%s/no/such/dir/usage.db", dir);
	open_fails(bad, bad);
	open_fails(dir, "usage database"); /* a directory */

	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("this is not an SQLite database, just some text to be sure "
	      "that the header check fails...........................\n", f);
	fclose(f);
	open_fails(path, "not a database");
	ck_assert_int_eq(unlink(path), 0);

	/* a file from a newer llm-bridge is refused, not guessed at */
	db = raw_open(path);
	raw_exec(db, "PRAGMA user_version = 99");
	sqlite3_close(db);
	open_fails(path, "version 99");
	rm_dir(dir);
	free(path);
}
END_TEST

static Suite *usage_suite(void)
{
	Suite *s = suite_create("usage");
	TCase *mem = tcase_create("memory");
	TCase *db = tcase_create("sqlite");

	tcase_add_test(mem, exact_json);
	tcase_add_test(mem, aggregate_full_rows);
	tcase_add_test(mem, group_by_variants);
	tcase_add_test(mem, bad_group_by);
	tcase_add_test(mem, filters);
	tcase_add_test(mem, key_totals_ranges);
	tcase_add_test(mem, json_escaping);
	tcase_add_test(mem, odd_records);
	suite_add_tcase(s, mem);

	tcase_add_unchecked_fixture(db, base_setup, base_teardown);
	tcase_add_test(db, reopen_same_totals);
	tcase_add_test(db, leap_day_survives_reload);
	tcase_add_test(db, crash_keeps_flushed_part);
	tcase_add_test(db, wal_and_schema);
	tcase_add_test(db, failed_flush_keeps_deltas);
	tcase_add_test(db, threads_while_flushing);
	tcase_add_test(db, timer_flushes_and_close_is_prompt);
	tcase_add_test(db, unopenable);
	suite_add_tcase(s, db);
	return s;
}

int main(void)
{
	return tu_run(usage_suite());
}
