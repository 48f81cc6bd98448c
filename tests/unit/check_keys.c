/* SPDX-License-Identifier: MIT */
/* Unit tests for keys: the SHA-256 client key store. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "testutil.h"

static const struct key_entry *look(const struct keystore *ks, const char *k)
{
	return keys_lookup(ks, k, strlen(k));
}

START_TEST(hit_and_miss)
{
	char *plain[] = { "sk-alpha", "sk-beta" };
	struct keystore *ks = keys_new(plain, 2, NULL, 0);
	const struct key_entry *a, *b;

	ck_assert_uint_eq(keys_count(ks), 2);
	a = look(ks, "sk-alpha");
	b = look(ks, "sk-beta");
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_ne(a, b);
	ck_assert_str_ne(a->label, b->label);
	ck_assert_ptr_null(look(ks, "sk-gamma"));
	ck_assert_ptr_null(look(ks, ""));
	ck_assert_ptr_null(look(ks, "SK-ALPHA"));
	/* the same entry every time */
	ck_assert_ptr_eq(look(ks, "sk-alpha"), a);
	keys_free(ks);
}
END_TEST

START_TEST(prefixes_and_extensions_miss)
{
	char *plain[] = { "sk-secret-key" };
	struct keystore *ks = keys_new(plain, 1, NULL, 0);
	const char *k = "sk-secret-key";

	ck_assert_ptr_nonnull(keys_lookup(ks, k, strlen(k)));
	/* the length counts, not a NUL */
	for (size_t n = 0; n < strlen(k); n++)
		ck_assert_ptr_null(keys_lookup(ks, k, n));
	ck_assert_ptr_null(look(ks, "sk-secret-key2"));
	ck_assert_ptr_null(look(ks, "sk-secret-kez"));
	ck_assert_ptr_null(look(ks, " sk-secret-key"));
	ck_assert_ptr_null(keys_lookup(ks, "sk-secret-key\0", 14));
	keys_free(ks);
}
END_TEST

START_TEST(duplicates_merge)
{
	char *plain[] = { "k1", "k2", "k1", "k1", "k3", "k2" };
	struct keystore *ks = keys_new(plain, 6, NULL, 0);

	ck_assert_uint_eq(keys_count(ks), 3);
	ck_assert_ptr_nonnull(look(ks, "k1"));
	ck_assert_ptr_nonnull(look(ks, "k2"));
	ck_assert_ptr_nonnull(look(ks, "k3"));
	keys_free(ks);
}
END_TEST

static int is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

START_TEST(label_format)
{
	/* SHA-256("abc") = ba7816bf... */
	char *plain[] = { "abc", "another key" };
	struct keystore *ks = keys_new(plain, 2, NULL, 0);
	const struct key_entry *e = look(ks, "abc");

	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(e->label, "key-ba7816bf");
	static const unsigned char abc_digest[KEYS_DIGEST_LEN] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
		0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
		0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
		0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
	};
	ck_assert_int_eq(memcmp(e->digest, abc_digest, KEYS_DIGEST_LEN), 0);

	e = look(ks, "another key");
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(strlen(e->label), 12);
	ck_assert_int_eq(strncmp(e->label, "key-", 4), 0);
	for (int i = 4; i < 12; i++)
		ck_assert_msg(is_lower_hex(e->label[i]), "label %s", e->label);
	/* the label never contains the key */
	ck_assert_ptr_null(strstr(e->label, "another"));
	keys_free(ks);
}
END_TEST

START_TEST(empty_store)
{
	struct keystore *ks = keys_new(NULL, 0, NULL, 0);

	ck_assert_ptr_nonnull(ks);
	ck_assert_uint_eq(keys_count(ks), 0);
	ck_assert_ptr_null(look(ks, ""));
	ck_assert_ptr_null(look(ks, "anything"));
	keys_free(ks);
	ck_assert_uint_eq(keys_count(NULL), 0);
	ck_assert_ptr_null(look(NULL, "x"));
	keys_free(NULL);
}
END_TEST

START_TEST(thousand_keys)
{
	enum { N = 1000 };
	char **plain = calloc(N, sizeof(char *));
	char other[64];
	struct keystore *ks;

	for (int i = 0; i < N; i++) {
		plain[i] = malloc(40);
		snprintf(plain[i], 40, "sk-test-%04d-%08x", i, i * 2654435761u);
	}
	ks = keys_new(plain, N, NULL, 0);
	ck_assert_uint_eq(keys_count(ks), N);
	for (int i = 0; i < N; i++) {
		const struct key_entry *e = look(ks, plain[i]);
		ck_assert_msg(e != NULL, "key %d not found", i);
		/* the entry is the one for this key */
		ck_assert_ptr_eq(look(ks, plain[i]), e);
	}
	for (int i = 0; i < N; i++) {
		snprintf(other, sizeof(other), "sk-test-%04d-%08x", i + N,
			 i * 2654435761u);
		ck_assert_msg(look(ks, other) == NULL, "%s found", other);
		snprintf(other, sizeof(other), "sk-other-%d", i);
		ck_assert_ptr_null(look(ks, other));
	}
	/* the store holds digests, not the plain keys */
	for (int i = 0; i < N; i++)
		free(plain[i]);
	free(plain);
	ck_assert_ptr_null(look(ks, "sk-other-1"));
	keys_free(ks);
}
END_TEST

START_TEST(store_does_not_keep_plain_keys)
{
	char k1[] = "sk-mutable";
	char *plain[] = { k1 };
	struct keystore *ks = keys_new(plain, 1, NULL, 0);

	k1[0] = 'X'; /* change the caller's copy afterwards */
	ck_assert_ptr_nonnull(look(ks, "sk-mutable"));
	ck_assert_ptr_null(look(ks, "Xk-mutable"));
	keys_free(ks);
}
END_TEST

/* ---- named keys ---- */

static void make_def(struct key_def *d, const char *name, const char *key)
{
	char hex[2 * KEYS_DIGEST_LEN + 1];

	memset(d, 0, sizeof(*d));
	d->name = strdup(name);
	d->enabled = true;
	keys_digest_hex(key, strlen(key), hex);
	ck_assert_int_eq(keys_parse_digest(hex, d->digest), 0);
}

START_TEST(named_keys_found_by_digest)
{
	char *plain[] = { "plain-one", "shared" };
	struct key_def defs[2];
	struct keystore *ks;
	const struct key_entry *e;

	make_def(&defs[0], "alice", "alice-key");
	make_def(&defs[1], "bob", "shared"); /* also a plain key */
	ks = keys_new(plain, 2, defs, 2);
	ck_assert_uint_eq(keys_count(ks), 3);
	e = look(ks, "alice-key");
	ck_assert_ptr_nonnull(e);
	ck_assert_ptr_eq(e->def, &defs[0]);
	ck_assert_str_eq(keys_name(e), "alice");
	/* the named entry wins over the plain one with the same key */
	ck_assert_str_eq(keys_name(look(ks, "shared")), "bob");
	e = look(ks, "plain-one");
	ck_assert_ptr_null(e->def);
	ck_assert_str_eq(keys_name(e), e->label);
	ck_assert_ptr_null(look(ks, "alice"));
	keys_free(ks);
	keys_def_clear(&defs[0]);
	keys_def_clear(&defs[1]);
}
END_TEST

START_TEST(model_globs)
{
	struct key_def d;
	struct key_entry e = { .def = &d };
	struct key_entry plain = { .def = NULL };
	char *globs[] = { "gemini/*", "deepseek/deepseek-chat" };

	make_def(&d, "g", "k");
	ck_assert(keys_model_allowed(&e, "anything/at-all")); /* no list */
	d.models = globs;
	d.n_models = 2;
	ck_assert(keys_model_allowed(&e, "gemini/gemini-2.0-flash"));
	ck_assert(keys_model_allowed(&e, "deepseek/deepseek-chat"));
	ck_assert(!keys_model_allowed(&e, "deepseek/deepseek-reasoner"));
	ck_assert(!keys_model_allowed(&e, "openai/gpt-4o"));
	ck_assert(!keys_model_allowed(&e, "gemini"));
	ck_assert(keys_model_allowed(&plain, "openai/gpt-4o"));
	d.models = NULL;
	d.n_models = 0;
	keys_def_clear(&d);
}
END_TEST

START_TEST(digest_parsing)
{
	unsigned char d[KEYS_DIGEST_LEN];
	/* SHA-256("abc") */
	const char *abc = "ba7816bf8f01cfea414140de5dae2223"
			  "b00361a396177a9cb410ff61f20015ad";
	char hex[2 * KEYS_DIGEST_LEN + 1], prefixed[80];

	keys_digest_hex("abc", 3, hex);
	ck_assert_str_eq(hex, abc);
	ck_assert_int_eq(keys_parse_digest(abc, d), 0);
	ck_assert_uint_eq(d[0], 0xba);
	ck_assert_uint_eq(d[31], 0xad);
	snprintf(prefixed, sizeof(prefixed), "sha256:%s", abc);
	ck_assert_int_eq(keys_parse_digest(prefixed, d), 0);
	ck_assert_int_eq(keys_parse_digest("sha256:abc", d), -1);
	ck_assert_int_eq(keys_parse_digest("md5:ba7816bf", d), -1);
	prefixed[10] = 'g';
	ck_assert_int_eq(keys_parse_digest(prefixed, d), -1);
	ck_assert_int_eq(keys_parse_digest("", d), -1);
}
END_TEST

START_TEST(generated_keys)
{
	char a[64], b[64];

	ck_assert_int_eq(keys_generate(a, sizeof(a)), 0);
	ck_assert_int_eq(keys_generate(b, sizeof(b)), 0);
	ck_assert_uint_eq(strlen(a), 46);
	ck_assert_int_eq(strncmp(a, "lb-", 3), 0);
	ck_assert_uint_eq(strspn(a + 3, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"
				 "klmnopqrstuvwxyz0123456789"), 43);
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(keys_generate(a, 40), -1);
}
END_TEST

static Suite *keys_suite(void)
{
	Suite *s = suite_create("keys");
	TCase *tc = tcase_create("store");

	tcase_add_test(tc, hit_and_miss);
	tcase_add_test(tc, prefixes_and_extensions_miss);
	tcase_add_test(tc, duplicates_merge);
	tcase_add_test(tc, label_format);
	tcase_add_test(tc, empty_store);
	tcase_add_test(tc, thousand_keys);
	tcase_add_test(tc, store_does_not_keep_plain_keys);
	suite_add_tcase(s, tc);
	tc = tcase_create("named");
	tcase_add_test(tc, named_keys_found_by_digest);
	tcase_add_test(tc, model_globs);
	tcase_add_test(tc, digest_parsing);
	tcase_add_test(tc, generated_keys);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(keys_suite());
}
