/* SPDX-License-Identifier: MIT */
/*
 * keys: the client key store. Keys are kept only as SHA-256 digests in an
 * open-addressing table; a lookup hashes the presented key and probes the
 * table, comparing digests in constant time, so the time taken says nothing
 * about how much of a key was right, and a flood of wrong keys costs one
 * hash each.
 *
 * Two kinds of keys share the table: the plain ACCESS_API_KEYS of the
 * original LLM Bridge (no name, no limits) and named keys from the config's
 * keys: list, given by their digest only, with a model allow-list, limits,
 * an expiry, an enabled switch and an admin flag.
 */
#ifndef LB_KEYS_H
#define LB_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limiter.h"

#define KEYS_DIGEST_LEN 32
#define KEYS_NAME_MAX 64

/* A named key as the config gives it. Owned by the config snapshot. */
struct key_def {
	char *name;
	unsigned char digest[KEYS_DIGEST_LEN];
	char **models;            /* globs on "provider/model"; none = all */
	size_t n_models;
	struct limit_spec limits;
	int64_t expires;          /* unix seconds; 0 = never */
	bool enabled;
	bool admin;               /* may read /v1/usage (and /metrics) */
};

struct key_entry {
	unsigned char digest[KEYS_DIGEST_LEN];
	char label[24]; /* "key-" + first 8 hex digits of the digest: safe to log */
	const struct key_def *def; /* NULL for an ACCESS_API_KEYS key */
};

struct keystore;

/* Build a store from n plain keys (copied as digests) and n_defs named
 * keys (borrowed: defs must outlive the store). A named key whose digest
 * equals a plain key's wins. Never NULL. Free with keys_free(). */
struct keystore *keys_new(char *const *plain, size_t n,
			  const struct key_def *defs, size_t n_defs);
/* The entry for key, or NULL. Valid while the store lives. Thread-safe
 * (the store is immutable). Disabled and expired keys are found too:
 * the caller tells the client why they are refused. */
const struct key_entry *keys_lookup(const struct keystore *ks,
				    const char *key, size_t len);
size_t keys_count(const struct keystore *ks);
void keys_free(struct keystore *ks);

/* The name to log and account under: the config's name, or the label. */
const char *keys_name(const struct key_entry *e);
/* Whether e may use model ("provider/model"). */
bool keys_model_allowed(const struct key_entry *e, const char *model);

/* Parse "sha256:<64 hex>" (or the bare 64 hex digits). 0 or -1. */
int keys_parse_digest(const char *s, unsigned char out[KEYS_DIGEST_LEN]);
/* SHA-256 of key as 64 lower-case hex digits into out (size >= 65). */
void keys_digest_hex(const char *key, size_t len, char *out);
/* A fresh random key "lb-" + 43 base62 characters (about 256 bits) from
 * the GnuTLS key RNG into out (size >= 48). 0, or -1 if the RNG failed. */
int keys_generate(char *out, size_t size);
/* Free what a key_def owns (not def itself). */
void keys_def_clear(struct key_def *def);

#endif
