/* SPDX-License-Identifier: MIT */
/* testutil: small helpers shared by the unit suites. */
#ifndef LB_TESTUTIL_H
#define LB_TESTUTIL_H

#include <stddef.h>

/* Read tests/<rel> (found through $LB_TESTS_SRCDIR, else "tests"). Aborts
 * the test on failure. Caller frees; *len may be NULL. */
char *tu_read_fixture(const char *rel, size_t *len);

#endif
