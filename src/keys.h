/* SPDX-License-Identifier: MIT */
/*
 * keys: the client key store. Keys are kept only as SHA-256 digests in an
 * open-addressing table; a lookup hashes the presented key and probes the
 * table, comparing digests in constant time, so the time taken says nothing
 * about how much of a key was right, and a flood of wrong keys costs one
 * hash each.
 */
#ifndef LB_KEYS_H
#define LB_KEYS_H

#include <stddef.h>

#define KEYS_DIGEST_LEN 32

struct key_entry {
	unsigned char digest[KEYS_DIGEST_LEN];
	char label[24]; /* "key-" + first 8 hex digits of the digest: safe to log */
};

struct keystore;

/* Build a store from n plain keys (copied as digests; duplicates merge).
 * Never NULL. Free with keys_free(). */
struct keystore *keys_new(char *const *plain, size_t n);
/* The entry for key, or NULL. Valid while the store lives. Thread-safe
 * (the store is immutable). */
const struct key_entry *keys_lookup(const struct keystore *ks,
				    const char *key, size_t len);
size_t keys_count(const struct keystore *ks);
void keys_free(struct keystore *ks);

#endif
