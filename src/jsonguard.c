/* SPDX-License-Identifier: MIT */
/*
 * jsonguard: see jsonguard.h. A tolerant scanner: it follows strings,
 * numbers and brackets well enough to find its own problems and leaves
 * every grammar error to json-c, which reports it afterwards.
 */
#include "jsonguard.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "jsonspan.h"
#include "util.h"

/* The Chat Completions request fields a param may name. */
static const char *const known_fields[] = {
	"model", "messages", "stream", "stream_options", "max_tokens",
	"max_completion_tokens", "temperature", "top_p", "n",
	"presence_penalty", "frequency_penalty", "seed", "stop", "tools",
	"tool_choice", "response_format", "user", "logit_bias", "logprobs",
	"top_logprobs", "parallel_tool_calls", "functions", "function_call",
	"service_tier", "store", "metadata", "modalities", "audio",
	"prediction", "reasoning_effort", "web_search_options", "verbosity",
	"safety_identifier", "prompt_cache_key",
};

const char *jsonguard_field(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(known_fields); i++)
		if (strlen(known_fields[i]) == len &&
		    memcmp(known_fields[i], name, len) == 0)
			return known_fields[i];
	return NULL;
}

struct key {
	size_t off, len; /* decoded bytes in the arena */
};

struct level {
	bool is_object;
	bool expect_key;
	size_t first_key; /* index of this object's first key in keys[] */
	size_t arena_mark; /* arena length when the object opened */
};

#define STACK_LEVELS 128

struct guard {
	const char *s;
	size_t len, i;
	struct level *lv;
	unsigned depth, max_depth;
	struct key *keys;
	size_t n_keys, cap_keys;
	struct buf arena;
	const char *field; /* the top-level field being scanned, if known */
	struct api_error *err;
};

static int fail(struct guard *g, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct guard *g, const char *param, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	apierr_set(g->err, 400, "invalid_request_error", NULL, param,
		   "The request body is not valid JSON: ");
	n = strlen(g->err->message);
	va_start(ap, fmt);
	vsnprintf(g->err->message + n, sizeof(g->err->message) - n, fmt, ap);
	va_end(ap);
	return -1;
}

/* The 4 hex digits at s[i..i+4) of a text of len bytes, or -1. */
static long hex4_at(const char *s, size_t len, size_t i)
{
	return i <= len ? hex4(s + i, len - i) : -1;
}

/* A string from its opening quote; decoded into the arena when key. */
static int scan_string(struct guard *g, bool key, struct key *k)
{
	static const char esc_from[] = "\"\\/bfnrt";
	static const char esc_to[] = "\"\\/\b\f\n\r\t";

	if (key)
		k->off = g->arena.len;
	g->i++;
	while (g->i < g->len) {
		size_t run = g->i;
		unsigned char c;

		/* plain ASCII goes by in runs, a key's in one append */
		run = (size_t)(jspan_skip_plain(g->s + run, g->s + g->len,
						true) - g->s);
		if (key && run > g->i)
			buf_append(&g->arena, &g->s[g->i], run - g->i);
		g->i = run;
		if (g->i >= g->len)
			break;
		c = (unsigned char)g->s[g->i];
		if (c == '"') {
			g->i++;
			if (key)
				k->len = g->arena.len - k->off;
			return 0;
		}
		if (c < 0x20)
			return fail(g, NULL, "control character 0x%02x at "
				    "offset %zu inside a string must be escaped",
				    c, g->i);
		if (c >= 0x80) {
			size_t n = utf8_len(g->s + g->i, g->len - g->i);

			if (!n)
				return fail(g, NULL, "invalid UTF-8 at offset "
					    "%zu", g->i);
			if (key)
				buf_append(&g->arena, &g->s[g->i], n);
			g->i += n;
			continue;
		}
		if (g->i + 1 >= g->len)
			break;
		char e = g->s[g->i + 1];
		if (e != 'u') {
			const char *p = strchr(esc_from, e);
			if (key && p && e)
				buf_append(&g->arena, &esc_to[p - esc_from], 1);
			g->i += 2;
			continue;
		}
		long cp = hex4_at(g->s, g->len, g->i + 2);
		if (cp < 0) {
			g->i += 2; /* json-c reports the bad escape */
			continue;
		}
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return fail(g, NULL, "lone UTF-16 surrogate \\u%04lx at "
				    "offset %zu", cp, g->i);
		if (cp >= 0xd800 && cp <= 0xdbff) {
			long lo = g->i + 7 < g->len && g->s[g->i + 6] == '\\' &&
				  g->s[g->i + 7] == 'u' ? hex4_at(g->s, g->len, g->i + 8) : -1;
			if (lo < 0xdc00 || lo > 0xdfff)
				return fail(g, NULL, "lone UTF-16 surrogate "
					    "\\u%04lx at offset %zu", cp,
					    g->i);
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			g->i += 6;
		}
		if (key)
			buf_append_utf8(&g->arena, (unsigned long)cp);
		g->i += 6;
	}
	return 0; /* unterminated: json-c says so */
}

static bool int_fits(const char *d, size_t n, bool neg)
{
	const char *lim = neg ? "9223372036854775808" : "9223372036854775807";

	while (n > 1 && *d == '0')
		d++, n--;
	if (n != 19)
		return n < 19;
	return memcmp(d, lim, 19) <= 0;
}

/* RFC 8259 section 6. json-c also takes "1." and "-", and keeps their
 * text, which would then go upstream as invalid JSON. */
static bool number_grammar_ok(const char *s, size_t n)
{
	size_t p = 0;

	if (p < n && s[p] == '-')
		p++;
	if (p < n && s[p] == '0')
		p++;
	else if (p < n && s[p] >= '1' && s[p] <= '9')
		while (p < n && s[p] >= '0' && s[p] <= '9')
			p++;
	else
		return false;
	if (p < n && s[p] == '.') {
		size_t d = ++p;
		while (p < n && s[p] >= '0' && s[p] <= '9')
			p++;
		if (p == d)
			return false;
	}
	if (p < n && (s[p] == 'e' || s[p] == 'E')) {
		size_t d;
		p++;
		if (p < n && (s[p] == '+' || s[p] == '-'))
			p++;
		d = p;
		while (p < n && s[p] >= '0' && s[p] <= '9')
			p++;
		if (p == d)
			return false;
	}
	return p == n;
}

static int scan_number(struct guard *g)
{
	size_t start = g->i;
	bool neg = g->s[g->i] == '-', is_float = false;

	if (neg)
		g->i++;
	while (g->i < g->len && strchr("0123456789+-.eE", g->s[g->i]) &&
	       g->s[g->i]) {
		if (strchr(".eE", g->s[g->i]))
			is_float = true;
		g->i++;
	}
	size_t n = g->i - start;
	if (!number_grammar_ok(g->s + start, n))
		return fail(g, g->depth ? g->field : NULL, "malformed number "
			    "'%.*s' at offset %zu", (int)(n > 24 ? 24 : n),
			    g->s + start, start);
	if (!is_float) {
		size_t nd = n - (neg ? 1 : 0);
		if (nd > 0 && !int_fits(g->s + start + (neg ? 1 : 0), nd, neg))
			return fail(g, g->depth ? g->field : NULL,
				    "the integer at offset %zu "
				    "(%zu digits) does not fit in 64 bits",
				    start, nd);
		return 0;
	}
	char small[64], *copy = n < sizeof(small) ? small : xmalloc(n + 1);
	memcpy(copy, g->s + start, n);
	copy[n] = '\0';
	double d = strtod(copy, NULL);
	if (copy != small)
		free(copy);
	if (isinf(d))
		return fail(g, g->depth ? g->field : NULL,
			    "the number at offset %zu (%zu "
			    "characters) is too large for a double", start, n);
	return 0;
}

/* json-c takes NaN and Infinity even in strict mode, and would send
 * them on as they are: only true, false and null are words in JSON. */
static int scan_word(struct guard *g)
{
	size_t start = g->i;

	while (g->i < g->len && ((g->s[g->i] >= 'a' && g->s[g->i] <= 'z') ||
				 (g->s[g->i] >= 'A' && g->s[g->i] <= 'Z')))
		g->i++;
	size_t n = g->i - start;
	if ((n == 4 && !memcmp(g->s + start, "true", 4)) ||
	    (n == 5 && !memcmp(g->s + start, "false", 5)) ||
	    (n == 4 && !memcmp(g->s + start, "null", 4)))
		return 0;
	/* NaN and Infinity are values of the field they stand in; any
	 * other word is a syntax error of the body as a whole */
	bool value_like = g->depth && ((n == 3 && !strncasecmp(g->s + start,
				"nan", 3)) || (n == 8 && !strncasecmp(
				g->s + start, "infinity", 8)));
	return fail(g, value_like ? g->field : NULL,
		    "'%.*s' at offset %zu is not a JSON value",
		    (int)(n > 16 ? 16 : n), g->s + start, start);
}

static int cmp_keys(const void *a, const void *b, void *arena)
{
	const struct key *x = a, *y = b;
	const char *base = arena;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(base + x->off, base + y->off, x->len);
}

/* Closing an object: two equal keys in it are an error. */
static int close_object(struct guard *g, const struct level *l)
{
	size_t n = g->n_keys - l->first_key;
	struct key *k;
	int rc = 0;

	/* an empty object may come before any key array exists: no
	 * arithmetic on a NULL g->keys */
	if (n > 1 && g->arena.data) {
		k = g->keys + l->first_key;
		qsort_r(k, n, sizeof(*k), cmp_keys, g->arena.data);
		for (size_t i = 1; i < n && rc == 0; i++) {
			if (cmp_keys(&k[i - 1], &k[i], g->arena.data) != 0)
				continue;
			const char *name = g->arena.data + k[i].off;
			const char *known = g->depth == 1 ?
				jsonguard_field(name, k[i].len) : NULL;
			apierr_set(g->err, 400, "invalid_request_error",
				   "duplicate_key", known, "The request body "
				   "has the key \"%.*s\" twice in one object",
				   (int)(k[i].len > 64 ? 64 : k[i].len), name);
			rc = -1;
		}
	}
	g->n_keys = l->first_key;
	g->arena.len = l->arena_mark;
	return rc;
}

static int step(struct guard *g)
{
	char c = g->s[g->i];
	struct level *l = g->depth ? &g->lv[g->depth - 1] : NULL;

	switch (c) {
	case '\0':
		return fail(g, NULL, "NUL byte at offset %zu", g->i);
	case '{':
	case '[':
		if (g->depth >= g->max_depth)
			return fail(g, NULL, "nesting deeper than %u levels "
				    "at offset %zu", g->max_depth, g->i);
		l = &g->lv[g->depth++];
		l->is_object = c == '{';
		l->expect_key = l->is_object;
		l->first_key = g->n_keys;
		l->arena_mark = g->arena.len;
		g->i++;
		return 0;
	case '}':
	case ']':
		g->i++;
		if (!l)
			return 0;
		if (l->is_object && close_object(g, l) < 0)
			return -1;
		g->depth--;
		return 0;
	case ',':
		if (l && l->is_object)
			l->expect_key = true;
		g->i++;
		return 0;
	case '"':
		if (l && l->is_object && l->expect_key) {
			struct key k = { 0, 0 };
			if (scan_string(g, true, &k) < 0)
				return -1;
			if (g->n_keys == g->cap_keys) {
				g->cap_keys = g->cap_keys ? 2 * g->cap_keys : 16;
				g->keys = xrealloc(g->keys, g->cap_keys *
						   sizeof(*g->keys));
			}
			g->keys[g->n_keys++] = k;
			l->expect_key = false;
			if (g->depth == 1)
				g->field = g->arena.data ?
					jsonguard_field(g->arena.data + k.off,
							k.len) : NULL;
			return 0;
		}
		return scan_string(g, false, NULL);
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			return scan_number(g);
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
			return scan_word(g);
		g->i++;
		return 0;
	}
}

int jsonguard_check(const char *text, size_t len, unsigned max_depth,
		    struct api_error *err)
{
	struct guard g = { .s = text, .len = len, .max_depth = max_depth,
			   .err = err };
	/* the usual depth fits on the stack (3 KiB): a level is set when
	 * it opens, so nothing needs zeroing, and no allocation per request */
	struct level stack_lv[STACK_LEVELS];
	int rc = 0;

	g.lv = max_depth <= STACK_LEVELS ? stack_lv :
	       xmalloc((size_t)max_depth * sizeof(*g.lv));
	buf_init(&g.arena, 0);
	while (g.i < g.len && rc == 0)
		rc = step(&g);
	if (g.lv != stack_lv)
		free(g.lv);
	free(g.keys);
	buf_free(&g.arena);
	return rc;
}

/*
 * json-c 0.16 decodes an escaped surrogate pair whose code point ends in
 * D800-DFFF (U+1D800-U+1DFFF, U+2D800-U+2DFFF, ... : SignWriting, part of
 * CJK Extension F and more, 32,768 characters in all) to U+FFFD: it takes
 * the low 16 bits of the decoded character for a lone surrogate. The
 * escape at s[i] ("\\uHHHH\\uLLLL"), when it is such a pair: its code
 * point, else 0.
 */
static unsigned long mangled_pair(const char *s, size_t len, size_t i)
{
	long hi = hex4_at(s, len, i + 2), lo;
	unsigned long cp;

	if (hi < 0xd800 || hi > 0xdbff || i + 12 > len || s[i + 6] != '\\' ||
	    s[i + 7] != 'u')
		return 0;
	lo = hex4_at(s, len, i + 8);
	if (lo < 0xdc00 || lo > 0xdfff)
		return 0;
	cp = 0x10000 + ((unsigned long)(hi - 0xd800) << 10) +
	     (unsigned long)(lo - 0xdc00);
	return (cp & 0xf800) == 0xd800 ? cp : 0;
}

bool jsonguard_unmangle(const char **text, size_t *len, struct buf *scratch)
{
	const char *s = *text;
	size_t n = *len, copied = 0;
	bool found = false;

	for (size_t i = 0; i + 1 < n; i++) {
		/* every request passes here: jump from escape to escape */
		const char *bs = memchr(s + i, '\\', n - i);
		unsigned long cp;

		if (!bs)
			break;
		i = (size_t)(bs - s);
		if (i + 1 >= n)
			break;
		/* a backslash outside a string is not JSON: every one here
		 * starts an escape, and the byte after it belongs to it */
		cp = s[i + 1] == 'u' ? mangled_pair(s, n, i) : 0;
		if (!cp) {
			i++;
			continue;
		}
		if (!found)
			buf_reset(scratch);
		found = true;
		buf_append(scratch, s + copied, i - copied);
		buf_append_utf8(scratch, cp);
		i += 11;
		copied = i + 1;
	}
	if (!found)
		return false;
	buf_append(scratch, s + copied, n - copied);
	*text = scratch->data;
	*len = scratch->len;
	return true;
}

json_object *jsonguard_parse(json_tokener *tok, const char *text, size_t len)
{
	json_object *obj = NULL;
	struct buf fixed;

	if (len > INT32_MAX)
		return NULL;
	buf_init(&fixed, 0);
	(void)jsonguard_unmangle(&text, &len, &fixed);
	json_tokener_reset(tok);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (obj && (json_tokener_get_error(tok) != json_tokener_success ||
		    (size_t)json_tokener_get_parse_end(tok) != len)) {
		json_object_put(obj);
		obj = NULL;
	}
	buf_free(&fixed);
	return obj;
}
