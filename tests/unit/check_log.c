/* SPDX-License-Identifier: MIT */
/* Unit tests for log: line formats, structured fields, the journal's
 * format, and the file's rotation while many threads write. */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "buf.h"
#include "log.h"
#include "testutil.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/lb-check-log-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	log_set_level(LOGL_DEBUG);
}

static void teardown(void)
{
	char cmd[128];

	log_close();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct buf b;
	char chunk[4096];
	size_t n;

	if (!f)
		return NULL;
	buf_init(&b, 0);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	return b.data ? buf_steal(&b) : strdup("");
}

/* Send stderr to a file for the rest of this (forked) test. */
static char *capture_stderr(void)
{
	char *path;
	int fd;

	if (asprintf(&path, "%s/stderr", dir) < 0)
		abort();
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	dup2(fd, 2);
	close(fd);
	return path;
}

START_TEST(text_and_json_lines)
{
	char *path = capture_stderr(), *text;
	const struct log_kv kv[] = {
		LKV_S("key", "alice"), LKV_I("status", -1), LKV_U("n", 7),
		LKV_D("ms", 1.5), LKV_B("stream", true), LKV_S("none", NULL),
		LKV_S("spaced", "a b=\"c\"\nd"),
	};
	json_object *o;
	char *nl;

	log_set_json(false);
	log_kv(LOGL_INFO, "audit", "request", kv, 7);
	log_info("g", "model %s", "x\ny"); /* client text cannot add lines */
	log_set_json(true);
	log_kv(LOGL_WARNING, "audit", "request", kv, 7);
	text = slurp(path);
	ck_assert_ptr_nonnull(strstr(text, " info [audit] request key=alice "
				     "status=-1 n=7 ms=1.500 stream=true "
				     "none=- spaced=\"a b=\\\"c\\\"\\nd\"\n"));
	ck_assert_ptr_nonnull(strstr(text, " info [g] model x?y\n"));
	/* the third line is one JSON object with typed members */
	nl = strchr(strchr(text, '\n') + 1, '\n') + 1;
	o = json_tokener_parse(nl);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(o,
			 "level")), "warning");
	ck_assert(json_object_is_type(json_object_object_get(o, "time"),
				      json_type_string));
	ck_assert_int_eq(json_object_get_int(json_object_object_get(o,
			 "status")), -1);
	ck_assert(json_object_get_boolean(json_object_object_get(o,
			 "stream")));
	ck_assert(json_object_is_type(json_object_object_get(o, "none"),
				      json_type_null));
	ck_assert_str_eq(json_object_get_string(json_object_object_get(o,
			 "spaced")), "a b=\"c\"\nd");
	json_object_put(o);
	free(text);
	free(path);
}
END_TEST

START_TEST(levels_filter)
{
	char *path = capture_stderr(), *text;

	log_set_json(false);
	log_set_level(LOGL_WARNING);
	log_info("g", "hidden");
	log_debug("g", "hidden too");
	log_warn("g", "shown");
	log_error("g", "shown too");
	text = slurp(path);
	ck_assert_ptr_null(strstr(text, "hidden"));
	ck_assert_ptr_nonnull(strstr(text, "warning [g] shown\n"));
	ck_assert_ptr_nonnull(strstr(text, "error [g] shown too\n"));
	free(text);
	free(path);
}
END_TEST

/* Under systemd, stderr is the journal: no timestamp of our own, and the
 * level as a syslog priority prefix. */
START_TEST(journal_format)
{
	char *path = capture_stderr(), *text, js[64];
	struct stat st;

	ck_assert_int_eq(fstat(2, &st), 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	log_set_json(false);
	log_info("main", "hello");
	log_error("main", "bad");
	log_debug("main", "detail");
	log_warn("main", "careful");
	text = slurp(path);
	ck_assert_str_eq(text, "<6>info [main] hello\n<3>error [main] bad\n"
			 "<7>debug [main] detail\n<4>warning [main] careful\n");
	free(text);
	free(path);
}
END_TEST

START_TEST(console_off_file_on)
{
	char *err = capture_stderr(), *file, *text;

	if (asprintf(&file, "%s/sub/llm-bridge.log", dir) < 0)
		abort();
	log_set_json(false);
	/* a missing parent directory is made, as the original did */
	ck_assert_int_eq(log_set_output(false, file, 1 << 20, 2), 0);
	log_info("g", "to the file");
	text = slurp(err);
	ck_assert_str_eq(text, "");
	free(text);
	text = slurp(file);
	ck_assert_ptr_nonnull(strstr(text, " info [g] to the file\n"));
	/* the file's lines carry their own timestamp */
	ck_assert(text[4] == '-' && text[10] == 'T');
	free(text);
	ck_assert_int_eq(log_set_output(true, "/nonexistent/dir/x/y.log", 0,
					0), -1);
	free(file);
	free(err);
}
END_TEST

#define THREADS 8
#define LINES 3000

static void *writer(void *arg)
{
	long id = (long)arg;

	for (int i = 0; i < LINES; i++)
		log_info("t", "thread=%ld line=%d padding=%s", id, i,
			 "................................................");
	return NULL;
}

/* Many threads write across many rotations: every line lands whole, in
 * exactly one file, and each thread's lines keep their order. */
START_TEST(rotation_under_load)
{
	char *file, path[256];
	pthread_t t[THREADS];
	int next[THREADS] = { 0 }, files = 0;
	long total = 0;

	if (asprintf(&file, "%s/llm-bridge.log", dir) < 0)
		abort();
	log_set_json(false);
	ck_assert_int_eq(log_set_output(false, file, 64 * 1024, 100), 0);
	for (long i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, writer,
						(void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	log_close();
	/* oldest first: .N ... .1, then the current file */
	for (int n = 100; n >= 0; n--) {
		char *text, *line, *save = NULL;
		struct stat st;

		if (n)
			snprintf(path, sizeof(path), "%s.%d", file, n);
		else
			snprintf(path, sizeof(path), "%s", file);
		if (stat(path, &st) != 0)
			continue;
		files++;
		ck_assert_int_le(st.st_size, 64 * 1024);
		text = slurp(path);
		for (line = strtok_r(text, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			long id;
			int i;
			char pad[64];

			ck_assert_msg(sscanf(strstr(line, "thread="),
					     "thread=%ld line=%d padding=%63s",
					     &id, &i, pad) == 3 &&
				      strlen(pad) == 48, "torn line: %s", line);
			ck_assert_int_eq(i, next[id]);
			next[id]++;
			total++;
		}
		free(text);
	}
	ck_assert_int_eq(total, (long)THREADS * LINES);
	ck_assert_int_gt(files, 10);
	free(file);
}
END_TEST

/* With few backups the oldest files go, and the count stays bounded. */
START_TEST(rotation_keeps_backup_count)
{
	char *file, path[256];
	struct stat st;

	if (asprintf(&file, "%s/x.log", dir) < 0)
		abort();
	ck_assert_int_eq(log_set_output(false, file, 4096, 2), 0);
	for (int i = 0; i < 500; i++)
		log_info("t", "line %d of a log that rotates often", i);
	log_close();
	snprintf(path, sizeof(path), "%s.1", file);
	ck_assert_int_eq(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s.2", file);
	ck_assert_int_eq(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s.3", file);
	ck_assert_int_ne(stat(path, &st), 0);
	free(file);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("format"), *tr = tcase_create("file");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, text_and_json_lines);
	tcase_add_test(tc, levels_filter);
	tcase_add_test(tc, journal_format);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(tr, setup, teardown);
	tcase_set_timeout(tr, 60);
	tcase_add_test(tr, console_off_file_on);
	tcase_add_test(tr, rotation_under_load);
	tcase_add_test(tr, rotation_keeps_backup_count);
	suite_add_tcase(s, tr);
	return tu_run(s);
}
