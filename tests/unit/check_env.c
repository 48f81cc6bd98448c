/* SPDX-License-Identifier: MIT */
/* Unit tests for env: the .env file overlaid by the process environment. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "env.h"
#include "testutil.h"

/* Write text to a fresh temporary file; the caller unlinks and frees. */
static char *tmp_file(const char *text)
{
	char *path = strdup("/tmp/lb-check-env-XXXXXX");
	int fd = mkstemp(path);
	size_t len = strlen(text);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

static void drop_file(char *path)
{
	unlink(path);
	free(path);
}

START_TEST(parses_the_forms)
{
	char *path = tmp_file(
		"# a comment\n"
		"LBT_KEY=VALUE\n"
		"\n"
		"   \t\n"
		"   # indented comment\n"
		"export LBT_EXPORTED=yes\n"
		"LBT_DQ=\"line1\\nline2 # not a comment\"\n"
		"LBT_SQ='literal \\n $x # too'\n"
		"LBT_UNQ=value # comment\n"
		"LBT_HASH=a#b\n"
		"LBT_SPACED  =  spaced value  \n"
		"LBT_DUP=first\n"
		"LBT_DUP=second\n"
		"LBT_EMPTY=\n"
		"LBT_ESC=\"q\\\"x\\\\y\"\n"
		"LBT_DQC=\"v\"   # trailing comment\n"
		"LBT_EQ=a=b=c\n"
		"LBT_CRLF=crlf\r\n"
		"  LBT_INDENT=ind\n"
		"LBT_LAST=no newline");
	struct buf err;
	struct env *e;

	buf_init(&err, 0);
	e = env_load(path, 1, &err);
	ck_assert_msg(e != NULL, "errors: %s", err.data ? err.data : "");
	ck_assert_uint_eq(err.len, 0);
	ck_assert_str_eq(env_get(e, "LBT_KEY"), "VALUE");
	ck_assert_str_eq(env_get(e, "LBT_EXPORTED"), "yes");
	ck_assert_ptr_null(env_get(e, "export LBT_EXPORTED"));
	ck_assert_str_eq(env_get(e, "LBT_DQ"), "line1\nline2 # not a comment");
	ck_assert_str_eq(env_get(e, "LBT_SQ"), "literal \\n $x # too");
	ck_assert_str_eq(env_get(e, "LBT_UNQ"), "value");
	ck_assert_str_eq(env_get(e, "LBT_HASH"), "a#b");
	ck_assert_str_eq(env_get(e, "LBT_SPACED"), "spaced value");
	ck_assert_str_eq(env_get(e, "LBT_DUP"), "second");
	ck_assert_str_eq(env_get(e, "LBT_EMPTY"), "");
	ck_assert_str_eq(env_get(e, "LBT_ESC"), "q\"x\\y");
	ck_assert_str_eq(env_get(e, "LBT_DQC"), "v");
	ck_assert_str_eq(env_get(e, "LBT_EQ"), "a=b=c");
	ck_assert_str_eq(env_get(e, "LBT_CRLF"), "crlf");
	ck_assert_str_eq(env_get(e, "LBT_INDENT"), "ind");
	ck_assert_str_eq(env_get(e, "LBT_LAST"), "no newline");
	ck_assert_ptr_null(env_get(e, "LBT_MISSING"));
	ck_assert_ptr_null(env_get(e, "a comment"));
	env_free(e);
	buf_free(&err);
	drop_file(path);
}
END_TEST

START_TEST(invalid_lines_report_path_and_line)
{
	char *path = tmp_file("LBT_OK=1\n"
			      "not a line\n"
			      "# fine\n"
			      "1BAD=x\n"
			      "LBT_Q=\"unterminated\n"
			      "LBT_T=\"x\" y\n"
			      "BAD-NAME=v\n"
			      "=novalue\n");
	struct buf err;
	struct env *e;
	char want[256];

	buf_init(&err, 0);
	e = env_load(path, 0, &err);
	ck_assert_ptr_null(e);
	ck_assert_ptr_nonnull(err.data);
	/* every bad line is reported, each with "path:line:" */
	static const int bad_lines[] = { 2, 4, 5, 6, 7, 8 };
	for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
		snprintf(want, sizeof(want), "%s:%d: ", path, bad_lines[i]);
		ck_assert_msg(strstr(err.data, want) != NULL,
			      "'%s' missing from: %s", want, err.data);
	}
	snprintf(want, sizeof(want), "%s:1:", path);
	ck_assert_ptr_null(strstr(err.data, want));
	snprintf(want, sizeof(want), "%s:3:", path);
	ck_assert_ptr_null(strstr(err.data, want));
	ck_assert_ptr_nonnull(strstr(err.data, "unterminated"));
	buf_free(&err);
	drop_file(path);
}
END_TEST

START_TEST(errors_are_appended)
{
	char *path = tmp_file("oops\n");
	struct buf err;

	buf_init(&err, 0);
	buf_appends(&err, "before\n");
	ck_assert_ptr_null(env_load(path, 1, &err));
	ck_assert_int_eq(strncmp(err.data, "before\n", 7), 0);
	ck_assert_ptr_nonnull(strstr(err.data + 7, ":1: "));
	buf_free(&err);
	drop_file(path);
}
END_TEST

START_TEST(missing_file_optional)
{
	struct buf err;
	struct env *e;

	buf_init(&err, 0);
	e = env_load("/nonexistent/lb-check/.env", 0, &err);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(err.len, 0);
	ck_assert_ptr_null(env_get(e, "LBT_KEY"));
	/* the process environment is still seen */
	setenv("LBT_PROC_ONLY", "p", 1);
	ck_assert_str_eq(env_get(e, "LBT_PROC_ONLY"), "p");
	unsetenv("LBT_PROC_ONLY");
	ck_assert_ptr_null(env_get(e, "LBT_PROC_ONLY"));
	env_free(e);
	buf_free(&err);
}
END_TEST

START_TEST(missing_file_required)
{
	struct buf err;

	buf_init(&err, 0);
	ck_assert_ptr_null(env_load("/nonexistent/lb-check/.env", 1, &err));
	ck_assert_ptr_nonnull(err.data);
	ck_assert_ptr_nonnull(strstr(err.data, "/nonexistent/lb-check/.env"));
	ck_assert_ptr_nonnull(strstr(err.data, "cannot open"));
	buf_free(&err);
}
END_TEST

START_TEST(process_environment_wins)
{
	char *path = tmp_file("LBT_WIN=file\nLBT_FILE_ONLY=f\n");
	struct buf err;
	struct env *e;

	buf_init(&err, 0);
	setenv("LBT_WIN", "process", 1);
	e = env_load(path, 1, &err);
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(env_get(e, "LBT_WIN"), "process");
	ck_assert_str_eq(env_get(e, "LBT_FILE_ONLY"), "f");
	unsetenv("LBT_WIN");
	ck_assert_str_eq(env_get(e, "LBT_WIN"), "file");
	/* the file never reaches the process environment */
	ck_assert_ptr_null(getenv("LBT_FILE_ONLY"));
	env_free(e);
	buf_free(&err);
	drop_file(path);
}
END_TEST

START_TEST(empty_env)
{
	struct env *e = env_new_empty();

	ck_assert_ptr_nonnull(e);
	ck_assert_ptr_null(env_get(e, "LBT_NOTHING_HERE"));
	setenv("LBT_EMPTY_ENV", "v", 1);
	ck_assert_str_eq(env_get(e, "LBT_EMPTY_ENV"), "v");
	unsetenv("LBT_EMPTY_ENV");
	env_free(e);
	env_free(NULL); /* no-op */
}
END_TEST

START_TEST(many_variables)
{
	struct buf text, err;
	char name[32], val[32];
	char *path;
	struct env *e;

	buf_init(&text, 0);
	for (int i = 0; i < 300; i++)
		buf_printf(&text, "LBT_MANY_%d=v%d\n", i, i);
	path = tmp_file(text.data);
	buf_init(&err, 0);
	e = env_load(path, 1, &err);
	ck_assert_ptr_nonnull(e);
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "LBT_MANY_%d", i);
		snprintf(val, sizeof(val), "v%d", i);
		ck_assert_str_eq(env_get(e, name), val);
	}
	env_free(e);
	buf_free(&err);
	buf_free(&text);
	drop_file(path);
}
END_TEST

static Suite *env_suite(void)
{
	Suite *s = suite_create("env");
	TCase *tc = tcase_create("load");

	tcase_add_test(tc, parses_the_forms);
	tcase_add_test(tc, invalid_lines_report_path_and_line);
	tcase_add_test(tc, errors_are_appended);
	tcase_add_test(tc, missing_file_optional);
	tcase_add_test(tc, missing_file_required);
	tcase_add_test(tc, process_environment_wins);
	tcase_add_test(tc, empty_env);
	tcase_add_test(tc, many_variables);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(env_suite());
}
