/* SPDX-License-Identifier: MIT */
/*
 * keys: client keys as SHA-256 digests in an open-addressing table. The
 * table is at most half full, so a miss ends after a probe or two; the
 * digest's own bytes are the hash, which an attacker cannot steer without
 * breaking SHA-256.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "keys.h"
#include "util.h"

struct keystore {
	struct key_entry *slots;
	unsigned char *used;
	size_t nslots; /* power of two */
	size_t count;
};

static void digest(const char *key, size_t len,
		   unsigned char out[KEYS_DIGEST_LEN])
{
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, key, len, out) < 0)
		abort(); /* SHA-256 is always available in GnuTLS */
}

static size_t slot_of(const unsigned char *d, size_t mask)
{
	size_t h;

	memcpy(&h, d, sizeof(h));
	return h & mask;
}

struct keystore *keys_new(char *const *plain, size_t n)
{
	struct keystore *ks = xcalloc(1, sizeof(*ks));

	ks->nslots = 8;
	while (ks->nslots < n * 2 + 2)
		ks->nslots *= 2;
	ks->slots = xcalloc(ks->nslots, sizeof(*ks->slots));
	ks->used = xcalloc(ks->nslots, 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char d[KEYS_DIGEST_LEN];
		size_t s, mask = ks->nslots - 1;

		digest(plain[i], strlen(plain[i]), d);
		for (s = slot_of(d, mask); ks->used[s]; s = (s + 1) & mask)
			if (memcmp(ks->slots[s].digest, d, sizeof(d)) == 0)
				break;
		if (ks->used[s])
			continue; /* duplicate */
		ks->used[s] = 1;
		memcpy(ks->slots[s].digest, d, sizeof(d));
		snprintf(ks->slots[s].label, sizeof(ks->slots[s].label),
			 "key-%02x%02x%02x%02x", d[0], d[1], d[2], d[3]);
		ks->count++;
	}
	return ks;
}

const struct key_entry *keys_lookup(const struct keystore *ks,
				    const char *key, size_t len)
{
	unsigned char d[KEYS_DIGEST_LEN];
	size_t mask, s;

	if (!ks || ks->count == 0)
		return NULL;
	mask = ks->nslots - 1;
	digest(key, len, d);
	for (s = slot_of(d, mask); ks->used[s]; s = (s + 1) & mask)
		if (ct_equal(ks->slots[s].digest, d, sizeof(d)))
			return &ks->slots[s];
	return NULL;
}

size_t keys_count(const struct keystore *ks)
{
	return ks ? ks->count : 0;
}

void keys_free(struct keystore *ks)
{
	if (!ks)
		return;
	free(ks->slots);
	free(ks->used);
	free(ks);
}
