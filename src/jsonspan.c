/* SPDX-License-Identifier: MIT */
/*
 * jsonspan: see jsonspan.h. jspan_check() is a recursive descent over the
 * bytes, bounded by max_depth; the readers after it only skip values,
 * which a checked text lets them do by counting brackets outside strings.
 */
#include "jsonspan.h"

#include <string.h>

#include "util.h"

struct checker {
	const char *s, *end;
	unsigned depth, max_depth;
	struct jspan_member *top; /* the outer object's members, or NULL */
	size_t top_max, n_top;
};

static inline bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline const char *skip_ws(const char *p, const char *end)
{
	while (p < end && is_ws(*p))
		p++;
	return p;
}

/* Past the string whose opening quote is at p. */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end;) {
		const char *q = memchr(p, '"', (size_t)(end - p)), *b;

		if (!q)
			return end;
		/* an odd run of backslashes before it escapes it; the run
		 * cannot reach back past p, which follows a quote */
		for (b = q; b > p && b[-1] == '\\'; b--)
			;
		if (((q - b) & 1) == 0)
			return q + 1;
		p = q + 1;
	}
	return end;
}

/* hex4() of the escape digits at p, in a text that ends at end */
static long hex4_to(const char *p, const char *end)
{
	return p <= end ? hex4(p, (size_t)(end - p)) : -1;
}

const unsigned char jspan_str_class[256] = {
	[0 ... 0x1f] = 3, ['"'] = 3, ['\\'] = 3, [0x80 ... 0xff] = 2,
};

/* A string at c->s (on its quote). Keys must hold no escape. */
static bool check_string(struct checker *c, bool key)
{
	const char *p = c->s + 1, *end = c->end;

	while (p < end) {
		unsigned char ch;
		long u, lo;

		/* most bytes of a string need no thought */
		p = jspan_skip_plain(p, end, false);
		if (p >= end)
			break;
		ch = (unsigned char)*p;
		if (ch == '"') {
			c->s = p + 1;
			return true;
		}
		if (ch < 0x20)
			return false;
		if (ch != '\\') {
			p++;
			continue;
		}
		if (key || ++p >= end)
			return false;
		switch (*p) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n':
		case 'r': case 't':
			p++;
			continue;
		case 'u':
			break;
		default:
			return false;
		}
		u = hex4_to(p + 1, end);
		p += 5;
		if (u <= 0 || (u >= 0xdc00 && u <= 0xdfff))
			return false;
		if (u >= 0xd800 && u <= 0xdbff) {
			if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
				return false;
			lo = hex4_to(p + 2, end);
			if (lo < 0xdc00 || lo > 0xdfff)
				return false;
			p += 6;
		}
	}
	return false;
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool check_number(struct checker *c)
{
	const char *p = c->s, *end = c->end, *digits;
	bool neg = false, integer = true;

	if (*p == '-') {
		neg = true;
		p++;
	}
	digits = p;
	if (p >= end || !is_digit(*p))
		return false;
	if (*p == '0')
		p++;
	else
		while (p < end && is_digit(*p))
			p++;
	if (p < end && *p == '.') {
		integer = false;
		if (++p >= end || !is_digit(*p))
			return false;
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		integer = false;
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit(*p))
			return false;
		while (p < end && is_digit(*p))
			p++;
	}
	if (integer) {
		struct jspan v = { c->s, (size_t)(p - c->s) };
		int64_t dummy;

		if ((neg && p - digits == 1 && *digits == '0') ||
		    !jspan_int64(v, &dummy))
			return false;
	}
	c->s = p;
	return true;
}

static bool check_word(struct checker *c, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(c->end - c->s) < n || memcmp(c->s, w, n) != 0)
		return false;
	c->s += n;
	return true;
}

static bool check_value(struct checker *c);

/* An object or array at c->s (on its bracket). */
static bool check_container(struct checker *c)
{
	bool object = *c->s == '{';
	char close = object ? '}' : ']';
	bool ok = false;

	if (++c->depth > c->max_depth)
		return false;
	c->s = skip_ws(c->s + 1, c->end);
	if (c->s < c->end && *c->s == close) {
		c->s++;
		ok = true;
		goto out;
	}
	for (;;) {
		const char *key = c->s, *key_end = c->s, *val;

		if (object) {
			if (c->s >= c->end || *c->s != '"' ||
			    !check_string(c, true))
				goto out;
			key_end = c->s;
			c->s = skip_ws(c->s, c->end);
			if (c->s >= c->end || *c->s != ':')
				goto out;
			c->s = skip_ws(c->s + 1, c->end);
		}
		val = c->s;
		if (!check_value(c))
			goto out;
		if (object && c->top && c->depth == 1) {
			struct jspan_member *m = &c->top[c->n_top];

			if (c->n_top++ == c->top_max)
				goto out;
			m->key.p = key + 1;
			m->key.n = (size_t)(key_end - key - 2);
			m->val.p = val;
			m->val.n = (size_t)(c->s - val);
			m->member.p = key;
			m->member.n = (size_t)(c->s - key);
		}
		c->s = skip_ws(c->s, c->end);
		if (c->s >= c->end)
			goto out;
		if (*c->s == close) {
			c->s++;
			ok = true;
			goto out;
		}
		if (*c->s != ',')
			goto out;
		c->s = skip_ws(c->s + 1, c->end);
	}
out:
	c->depth--;
	return ok;
}

static bool check_value(struct checker *c)
{
	if (c->s >= c->end)
		return false;
	switch (*c->s) {
	case '{':
	case '[':
		return check_container(c);
	case '"':
		return check_string(c, false);
	case 't':
		return check_word(c, "true");
	case 'f':
		return check_word(c, "false");
	case 'n':
		return check_word(c, "null");
	default:
		return check_number(c);
	}
}

bool jspan_check(const char *s, size_t n, unsigned max_depth)
{
	struct checker c = { s, s + n, 0, max_depth, NULL, 0, 0 };

	c.s = skip_ws(c.s, c.end);
	if (!check_value(&c))
		return false;
	return skip_ws(c.s, c.end) == c.end;
}

bool jspan_check_object(const char *s, size_t n, unsigned max_depth,
			struct jspan_member *members, size_t max,
			size_t *n_members)
{
	struct checker c = { s, s + n, 0, max_depth, members, max, 0 };

	*n_members = 0;
	c.s = skip_ws(c.s, c.end);
	if (c.s >= c.end || *c.s != '{' || !check_value(&c) ||
	    skip_ws(c.s, c.end) != c.end)
		return false;
	*n_members = c.n_top;
	return true;
}

struct jspan jspan_trim(const char *s, size_t n)
{
	const char *end = s + n;
	struct jspan v;

	s = skip_ws(s, end);
	while (end > s && is_ws(end[-1]))
		end--;
	v.p = s;
	v.n = (size_t)(end - s);
	return v;
}

/* Past the checked value that starts at p. */
static const char *skip_value(const char *p, const char *end)
{
	unsigned depth = 0;

	do {
		switch (*p) {
		case '"':
			p = skip_string(p, end);
			continue;
		case '{':
		case '[':
			depth++;
			break;
		case '}':
		case ']':
			depth--;
			break;
		default:
			if (depth == 0) {
				/* a scalar: up to the next delimiter */
				while (p < end && *p != ',' && *p != '}' &&
				       *p != ']' && !is_ws(*p))
					p++;
				return p;
			}
		}
		p++;
	} while (depth > 0 && p < end);
	return p;
}

void jspan_iter_init(struct jspan_iter *it, struct jspan v)
{
	if (v.n >= 2 && (v.p[0] == '{' || v.p[0] == '[')) {
		it->p = v.p + 1;
		it->end = v.p + v.n - 1;
	} else {
		it->p = it->end = v.p;
	}
}

/* Move onto the next item: past whitespace and one comma. */
static bool iter_step(struct jspan_iter *it)
{
	it->p = skip_ws(it->p, it->end);
	if (it->p < it->end && *it->p == ',')
		it->p = skip_ws(it->p + 1, it->end);
	return it->p < it->end;
}

bool jspan_next_member(struct jspan_iter *it, struct jspan *key,
		       struct jspan *val, struct jspan *member)
{
	const char *start, *k;

	if (!iter_step(it))
		return false;
	start = it->p;
	k = skip_string(start, it->end);
	key->p = start + 1;
	key->n = (size_t)(k - start - 2);
	k = skip_ws(k, it->end) + 1; /* the colon */
	val->p = skip_ws(k, it->end);
	it->p = skip_value(val->p, it->end);
	val->n = (size_t)(it->p - val->p);
	if (member) {
		member->p = start;
		member->n = (size_t)(it->p - start);
	}
	return true;
}

bool jspan_next_elem(struct jspan_iter *it, struct jspan *val)
{
	if (!iter_step(it))
		return false;
	val->p = it->p;
	it->p = skip_value(it->p, it->end);
	val->n = (size_t)(it->p - val->p);
	return true;
}

size_t jspan_cut_member(char *text, size_t len, struct jspan member)
{
	size_t start = (size_t)(member.p - text), end = start + member.n;
	size_t k = end;

	while (k < len && is_ws(text[k]))
		k++;
	if (k < len && text[k] == ',') {
		end = k + 1;
	} else {
		k = start;
		while (k > 0 && is_ws(text[k - 1]))
			k--;
		if (k > 0 && text[k - 1] == ',')
			start = k - 1;
	}
	memmove(text + start, text + end, len - end);
	len -= end - start;
	text[len] = '\0'; /* inside the old text: it got shorter */
	return len;
}

void jspan_get_members(struct jspan obj, const char *const *keys,
		       struct jspan *vals, size_t n)
{
	struct jspan_iter it;
	struct jspan k, v;

	memset(vals, 0, n * sizeof(*vals));
	if (!jspan_is_object(obj))
		return;
	jspan_iter_init(&it, obj);
	while (jspan_next_member(&it, &k, &v, NULL))
		for (size_t i = 0; i < n; i++)
			if (jspan_eq(k, keys[i])) {
				vals[i] = v;
				break;
			}
}

bool jspan_get(struct jspan obj, const char *key, struct jspan *val)
{
	jspan_get_members(obj, &key, val, 1);
	return val->p != NULL;
}

bool jspan_int64(struct jspan v, int64_t *out)
{
	const char *p = v.p, *end = v.p + v.n;
	bool neg = false;
	uint64_t acc = 0, limit;

	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	if (p >= end)
		return false;
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; p < end; p++) {
		unsigned d;

		if (!is_digit(*p))
			return false;
		d = (unsigned)(*p - '0');
		if (acc > (limit - d) / 10)
			return false;
		acc = acc * 10 + d;
	}
	*out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
	return true;
}

bool jspan_string_plain(struct jspan v)
{
	return v.n >= 2 && !memchr(v.p + 1, '\\', v.n - 2);
}

void jspan_string(struct jspan v, struct buf *out)
{
	const char *p, *end, *run;

	if (!jspan_is_string(v))
		return;
	p = run = v.p + 1;
	end = v.p + v.n - 1;
	while (p < end) {
		unsigned long cp;
		char esc;

		if (*p != '\\') {
			p++;
			continue;
		}
		buf_append(out, run, (size_t)(p - run));
		esc = p[1];
		p += 2;
		switch (esc) {
		case 'b': esc = '\b'; break;
		case 'f': esc = '\f'; break;
		case 'n': esc = '\n'; break;
		case 'r': esc = '\r'; break;
		case 't': esc = '\t'; break;
		case 'u':
			cp = (unsigned long)hex4_to(p, end);
			p += 4;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				/* checked: a low surrogate follows */
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     ((unsigned long)hex4_to(p + 2, end) - 0xdc00);
				p += 6;
			}
			buf_append_utf8(out, cp);
			run = p;
			continue;
		default: /* '"', '\\', '/' stand for themselves */
			break;
		}
		buf_append(out, &esc, 1);
		run = p;
	}
	buf_append(out, run, (size_t)(p - run));
}
