/* SPDX-License-Identifier: MIT */
/* Unit tests for keys: the hashed client key store. */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"

static const struct key_entry *find(const struct keystore *ks, const char *k)
{
	return keys_lookup(ks, k, strlen(k));
}

START_TEST(lookup)
{
	char *keys[] = { "sk-alpha", "sk-beta", "sk-alpha" };
	struct keystore *ks = keys_new(keys, 3);
	const struct key_entry *e;

	ck_assert_uint_eq(keys_count(ks), 2);
	e = find(ks, "sk-alpha");
	ck_assert_ptr_nonnull(e);
	ck_assert_ptr_nonnull(find(ks, "sk-beta"));
	ck_assert_ptr_null(find(ks, "sk-alph"));
	ck_assert_ptr_null(find(ks, "sk-alphaa"));
	ck_assert_ptr_null(find(ks, ""));
	ck_assert_ptr_null(keys_lookup(ks, "sk-alpha", 7));
	/* label: "key-" and 8 lower-case hex digits, never the key */
	ck_assert_uint_eq(strlen(e->label), 12);
	ck_assert(!strncmp(e->label, "key-", 4));
	for (int i = 4; i < 12; i++)
		ck_assert(isxdigit((unsigned char)e->label[i]) &&
			  !isupper((unsigned char)e->label[i]));
	ck_assert_ptr_null(strstr(e->label, "alpha"));
	keys_free(ks);
}
END_TEST

START_TEST(empty_store)
{
	struct keystore *ks = keys_new(NULL, 0);

	ck_assert_uint_eq(keys_count(ks), 0);
	ck_assert_ptr_null(find(ks, "anything"));
	keys_free(ks);
	ck_assert_ptr_null(keys_lookup(NULL, "x", 1));
}
END_TEST

START_TEST(many_keys)
{
	enum { N = 1000 };
	char *keys[N];
	char other[32];
	struct keystore *ks;

	for (int i = 0; i < N; i++) {
		keys[i] = malloc(32);
		snprintf(keys[i], 32, "sk-key-%d", i);
	}
	ks = keys_new(keys, N);
	ck_assert_uint_eq(keys_count(ks), N);
	for (int i = 0; i < N; i++) {
		ck_assert_ptr_nonnull(find(ks, keys[i]));
		snprintf(other, sizeof(other), "sk-other-%d", i);
		ck_assert_ptr_null(find(ks, other));
	}
	keys_free(ks);
	for (int i = 0; i < N; i++)
		free(keys[i]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("keys");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, lookup);
	tcase_add_test(tc, empty_store);
	tcase_add_test(tc, many_keys);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
