/* SPDX-License-Identifier: MIT */
/* Unit tests for env: the .env file reader. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "env.h"

static char path[64];

static const char *write_env(const char *text)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/lb-env-XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

START_TEST(syntax)
{
	struct buf err;
	struct env *e;

	buf_init(&err, 0);
	e = env_load(write_env(
		"# comment\n"
		"\n"
		"PLAIN=value\n"
		"  SPACED  =  padded value  \n"
		"export EXPORTED=yes\n"
		"DQ=\"a # not a comment\\nline2 \\\"q\\\"\"\n"
		"SQ='literal \\n $x'\n"
		"COMMENTED=value # trailing comment\n"
		"HASH=a#b\n"
		"EMPTY=\n"
		"TWICE=first\n"
		"TWICE=second\n"
		"CRLF=dos\r\n"), 1, &err);
	ck_assert_msg(e != NULL, "%s", err.data);
	ck_assert_str_eq(env_get(e, "PLAIN"), "value");
	ck_assert_str_eq(env_get(e, "SPACED"), "padded value");
	ck_assert_str_eq(env_get(e, "EXPORTED"), "yes");
	ck_assert_str_eq(env_get(e, "DQ"), "a # not a comment\nline2 \"q\"");
	ck_assert_str_eq(env_get(e, "SQ"), "literal \\n $x");
	ck_assert_str_eq(env_get(e, "COMMENTED"), "value");
	ck_assert_str_eq(env_get(e, "HASH"), "a#b");
	ck_assert_str_eq(env_get(e, "EMPTY"), "");
	ck_assert_str_eq(env_get(e, "TWICE"), "second");
	ck_assert_str_eq(env_get(e, "CRLF"), "dos");
	ck_assert_ptr_null(env_get(e, "MISSING_LB_VAR"));
	env_free(e);
	unlink(path);
	buf_free(&err);
}
END_TEST

START_TEST(errors_name_file_and_line)
{
	struct buf err;
	char want[96];

	buf_init(&err, 0);
	ck_assert_ptr_null(env_load(write_env("OK=1\nno equals sign\n"
					      "1BAD=x\nQ=\"open\n"), 1, &err));
	snprintf(want, sizeof(want), "%s:2:", path);
	ck_assert_ptr_nonnull(strstr(err.data, want));
	snprintf(want, sizeof(want), "%s:3:", path);
	ck_assert_ptr_nonnull(strstr(err.data, want));
	snprintf(want, sizeof(want), "%s:4: unterminated", path);
	ck_assert_ptr_nonnull(strstr(err.data, want));
	unlink(path);
	buf_free(&err);
}
END_TEST

START_TEST(missing_file)
{
	struct buf err;
	struct env *e;

	buf_init(&err, 0);
	e = env_load("/nonexistent/lb.env", 0, &err);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(err.len, 0);
	env_free(e);
	ck_assert_ptr_null(env_load("/nonexistent/lb.env", 1, &err));
	ck_assert_ptr_nonnull(strstr(err.data, "/nonexistent/lb.env: cannot open"));
	buf_free(&err);
}
END_TEST

START_TEST(process_environment_wins)
{
	struct buf err;
	struct env *e;

	buf_init(&err, 0);
	setenv("LB_TEST_WINS", "from-process", 1);
	e = env_load(write_env("LB_TEST_WINS=from-file\nLB_ONLY_FILE=f\n"), 1,
		     &err);
	ck_assert_str_eq(env_get(e, "LB_TEST_WINS"), "from-process");
	ck_assert_str_eq(env_get(e, "LB_ONLY_FILE"), "f");
	/* the file never leaks into the process environment */
	ck_assert_ptr_null(getenv("LB_ONLY_FILE"));
	env_free(e);
	unlink(path);
	buf_free(&err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("env");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, syntax);
	tcase_add_test(tc, errors_name_file_and_line);
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, process_environment_wins);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
