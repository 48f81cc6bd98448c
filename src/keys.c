/* SPDX-License-Identifier: MIT */
/*
 * keys: client keys as SHA-256 digests in an open-addressing table. The
 * table is at most half full, so a miss ends after a probe or two; the
 * digest's own bytes are the hash, which an attacker cannot steer without
 * breaking SHA-256.
 */
#include <fnmatch.h>
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

/* The slot for digest d: its own if present, else the free one to use. */
static struct key_entry *slot_for(struct keystore *ks, const unsigned char *d)
{
	size_t s, mask = ks->nslots - 1;

	for (s = slot_of(d, mask); ks->used[s]; s = (s + 1) & mask)
		if (memcmp(ks->slots[s].digest, d, KEYS_DIGEST_LEN) == 0)
			break;
	if (!ks->used[s]) {
		ks->used[s] = 1;
		memcpy(ks->slots[s].digest, d, KEYS_DIGEST_LEN);
		snprintf(ks->slots[s].label, sizeof(ks->slots[s].label),
			 "key-%02x%02x%02x%02x", d[0], d[1], d[2], d[3]);
		ks->count++;
	}
	return &ks->slots[s];
}

struct keystore *keys_new(char *const *plain, size_t n,
			  const struct key_def *defs, size_t n_defs)
{
	struct keystore *ks = xcalloc(1, sizeof(*ks));

	ks->nslots = 8;
	while (ks->nslots < (n + n_defs) * 2 + 2)
		ks->nslots *= 2;
	ks->slots = xcalloc(ks->nslots, sizeof(*ks->slots));
	ks->used = xcalloc(ks->nslots, 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char d[KEYS_DIGEST_LEN];

		digest(plain[i], strlen(plain[i]), d);
		slot_for(ks, d);
	}
	for (size_t i = 0; i < n_defs; i++)
		slot_for(ks, defs[i].digest)->def = &defs[i];
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

const char *keys_name(const struct key_entry *e)
{
	return e->def ? e->def->name : e->label;
}

bool keys_model_allowed(const struct key_entry *e, const char *model)
{
	if (!e->def || e->def->n_models == 0)
		return true;
	for (size_t i = 0; i < e->def->n_models; i++)
		if (fnmatch(e->def->models[i], model, 0) == 0)
			return true;
	return false;
}

int keys_parse_digest(const char *s, unsigned char out[KEYS_DIGEST_LEN])
{
	if (strncmp(s, "sha256:", 7) == 0)
		s += 7;
	if (strlen(s) != (size_t)2 * KEYS_DIGEST_LEN)
		return -1;
	for (size_t i = 0; i < KEYS_DIGEST_LEN; i++) {
		int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

void keys_digest_hex(const char *key, size_t len, char *out)
{
	unsigned char d[KEYS_DIGEST_LEN];

	digest(key, len, d);
	for (size_t i = 0; i < KEYS_DIGEST_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

int keys_generate(char *out, size_t size)
{
	static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[128];
	size_t i = 3, j = 0;

	if (size < 48)
		return -1;
	if (gnutls_rnd(GNUTLS_RND_KEY, rnd, sizeof(rnd)) < 0)
		return -1;
	memcpy(out, "lb-", 3);
	/* 43 draws of 62 (5.95 bits each) carry 256 bits; bytes >= 248 are
	 * skipped so every character is equally likely. 128 bytes run out
	 * with probability far below 2^-100. */
	while (i < 46 && j < sizeof(rnd)) {
		if (rnd[j] < 248)
			out[i++] = set[rnd[j] % 62];
		j++;
	}
	out[i] = '\0';
	memset(rnd, 0, sizeof(rnd));
	return i == 46 ? 0 : -1;
}

void keys_def_clear(struct key_def *def)
{
	free(def->name);
	for (size_t i = 0; i < def->n_models; i++)
		free(def->models[i]);
	free(def->models);
	memset(def, 0, sizeof(*def));
}
