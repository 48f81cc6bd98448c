/* SPDX-License-Identifier: MIT */
/*
 * jsonspan: reading JSON text in place, without building json-c objects.
 *
 * The gateway's answers are the provider's answers with a field or two
 * changed (the model name, a usage member). Parsing every chunk into
 * json-c objects and serialising it again cost more CPU than everything
 * else a stream frame needs, so the OpenAI adapter checks a text with
 * jspan_check() and then edits it as text, and the accounting reads its
 * numbers and strings from spans. A text jspan_check() refuses (anything
 * unusual) goes the json-c way as before, so the two paths give the
 * client the same JSON, up to insignificant whitespace and string escapes.
 *
 * Everything here but jspan_check() assumes a text that passed it.
 */
#ifndef LB_JSONSPAN_H
#define LB_JSONSPAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"

/* Some bytes of a JSON text: one value, or an object key (without its
 * quotes). Borrowed: it lives as long as the text. */
struct jspan {
	const char *p;
	size_t n;
};

/*
 * true when s[0..n) is one JSON value, with whitespace around it allowed,
 * in the strict grammar of RFC 8259 and nested at most max_depth deep, and
 * json-c would read it back to the same values: every key free of escapes
 * (keys are then compared as bytes), no "\u0000" or lone surrogate, no
 * integer beyond int64 and no "-0" (json-c would rewrite those numbers),
 * no raw control character inside a string.
 */
bool jspan_check(const char *s, size_t n, unsigned max_depth);

/* One member of an object, as jspan_next_member() gives it. */
struct jspan_member {
	struct jspan key, val, member;
};

/* jspan_check() for an object, that also hands back its members (up to
 * max, in order; *n_members is their count) from the same pass: false
 * when the text fails the check, is not an object or has more than max
 * members. */
bool jspan_check_object(const char *s, size_t n, unsigned max_depth,
			struct jspan_member *members, size_t max,
			size_t *n_members);

/* The value of s[0..n) with surrounding whitespace dropped. */
struct jspan jspan_trim(const char *s, size_t n);

static inline bool jspan_is_object(struct jspan v)
{
	return v.n > 0 && v.p[0] == '{';
}

static inline bool jspan_is_array(struct jspan v)
{
	return v.n > 0 && v.p[0] == '[';
}

static inline bool jspan_is_string(struct jspan v)
{
	return v.n > 0 && v.p[0] == '"';
}

static inline bool jspan_is_null(struct jspan v)
{
	return v.n > 0 && v.p[0] == 'n';
}

/* Is the span exactly the bytes of lit (a key from jspan_next_member)? */
static inline bool jspan_eq(struct jspan v, const char *lit)
{
	size_t n = strlen(lit);

	return v.n == n && memcmp(v.p, lit, n) == 0;
}

/* Walks the members of an object or the elements of an array. */
struct jspan_iter {
	const char *p, *end;
};

/* Start on container (an object or an array; anything else is empty). */
void jspan_iter_init(struct jspan_iter *it, struct jspan container);
/* The next member of an object: its key (unquoted; byte-comparable, see
 * jspan_check), its value, and *member: the whole "key":value text, for
 * cutting it out. false at the end. */
bool jspan_next_member(struct jspan_iter *it, struct jspan *key,
		       struct jspan *val, struct jspan *member);
/* The next element of an array. false at the end. */
bool jspan_next_elem(struct jspan_iter *it, struct jspan *val);

/* Cut member (from jspan_next_member, pointing into text) out of the
 * object, with the comma that separated it from a neighbour. Returns the
 * new length and NUL-terminates the shorter text. Spans into text are
 * stale afterwards. */
size_t jspan_cut_member(char *text, size_t len, struct jspan member);

/* The value of obj's member key into *val. When the key repeats, the
 * last one wins, as in json-c. false, with *val { NULL, 0 }, when absent
 * or obj is no object. */
bool jspan_get(struct jspan obj, const char *key, struct jspan *val);

/* jspan_get() for n keys in one pass over obj: vals[i] is the value of
 * keys[i], the last one when it repeats, or { NULL, 0 } when absent (or
 * obj is no object). */
void jspan_get_members(struct jspan obj, const char *const *keys,
		       struct jspan *vals, size_t n);

/* An integer value (no fraction, no exponent) into *out; false for any
 * other value. */
bool jspan_int64(struct jspan v, int64_t *out);

/* Bit 1: the byte needs thought inside any JSON string ('"', '\\', a
 * control character); bit 2: it does in plain ASCII text (bit 1, or
 * above 0x7f). For jspan_skip_plain(). */
extern const unsigned char jspan_str_class[256];

/*
 * The first byte from p on that needs thought inside a JSON string, or
 * end: '"', '\\', a control character and, when ascii, anything above
 * 0x7f. Strings are most of a request's bytes, and both of its checks
 * (jsonguard, jspan_check) scan every one. Short strings (keys, ids, a
 * delta's few words) end within a byte loop's first 16 bytes; past them,
 * whole 8-byte words go by with a handful of instructions each.
 */
static inline const char *jspan_skip_plain(const char *p, const char *end,
					   bool ascii)
{
	const uint64_t ones = ~(uint64_t)0 / 255, highs = ones * 0x80;
	const unsigned char stop = ascii ? 3 : 1;
	const char *head = end - p > 16 ? p + 16 : end;

	while (p < head && !(jspan_str_class[(unsigned char)*p] & stop))
		p++;
	if (p < head)
		return p;
	while (end - p >= 8) {
		uint64_t w, quote, bslash, special;

		memcpy(&w, p, 8);
		quote = w ^ (ones * '"');
		bslash = w ^ (ones * '\\');
		/* a byte below n shows as a high bit of (w - n * ones) & ~w,
		 * and a zero byte is one below 1 */
		special = ((quote - ones) & ~quote) |
			  ((bslash - ones) & ~bslash) |
			  ((w - ones * 0x20) & ~w);
		if (ascii)
			special |= w;
		if (special & highs)
			break;
		p += 8;
	}
	while (p < end && !(jspan_str_class[(unsigned char)*p] & stop))
		p++;
	return p;
}

/* A string value's text, escapes decoded to UTF-8, appended to out. */
void jspan_string(struct jspan v, struct buf *out);
/* true when a string value needs no decoding: its text is v.p[1..n-1). */
bool jspan_string_plain(struct jspan v);

#endif
