/* SPDX-License-Identifier: MIT */
/* testutil: small helpers shared by the unit suites. */
#ifndef LB_TESTUTIL_H
#define LB_TESTUTIL_H

#include <check.h>
#include <stddef.h>

/* Read tests/<rel> (found through $LB_TESTS_SRCDIR, else "tests"). Aborts
 * the test on failure. Caller frees; *len may be NULL. */
char *tu_read_fixture(const char *rel, size_t *len);

/* Run every test of s (and free it). Returns EXIT_SUCCESS or
 * EXIT_FAILURE, for main() to return. */
int tu_run(Suite *s);

#endif
