/* SPDX-License-Identifier: MIT */
/* testutil: fixture loading and the runner for the unit suites. */
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"

char *tu_read_fixture(const char *rel, size_t *len)
{
	const char *dir = getenv("LB_TESTS_SRCDIR");
	struct buf path, data;
	char chunk[4096];
	size_t n;
	FILE *f;

	buf_init(&path, 0);
	buf_printf(&path, "%s/%s", dir ? dir : "tests", rel);
	f = fopen(path.data, "rb");
	ck_assert_msg(f != NULL, "cannot open fixture %s", path.data);
	buf_init(&data, 0);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&data, chunk, n);
	fclose(f);
	buf_free(&path);
	if (len)
		*len = data.len;
	return buf_steal(&data);
}

int tu_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
