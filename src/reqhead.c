/* SPDX-License-Identifier: MIT */
/* reqhead: request head checks; see reqhead.h. RFC 9112 section numbers
 * are given where a rule comes from. */
#include "reqhead.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static enum reqhead_result bad(struct api_error *err, int status,
			       const char *code, const char *msg)
{
	apierr_set(err, status, "invalid_request_error", code, NULL, "%s", msg);
	return REQHEAD_BAD;
}

static bool name_is(const char *p, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

bool reqhead_has_token(const struct reqhead_val *v, const char *token)
{
	size_t tl = strlen(token), i = 0;

	while (i < v->n) {
		size_t s, e;

		while (i < v->n && (v->p[i] == ' ' || v->p[i] == '\t' ||
				    v->p[i] == ','))
			i++;
		s = i;
		while (i < v->n && v->p[i] != ',')
			i++;
		e = i;
		while (e > s && (v->p[e - 1] == ' ' || v->p[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v->p + s, token, tl) == 0)
			return true;
	}
	return false;
}

/* The request line (section 3): method SP target SP HTTP/1.x. */
static enum reqhead_result request_line(const char *p, size_t n,
					const char *ws_path, struct reqhead *h,
					struct api_error *err)
{
	size_t i = 0, t0, t1;
	const char *q;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= sizeof(h->method) || i >= n || p[i] != ' ')
		return bad(err, 400, "malformed_request", "Malformed request "
			   "line: expected METHOD /path HTTP/1.1");
	memcpy(h->method, p, i);
	h->method[i] = '\0';
	t0 = ++i;
	while (i < n && (unsigned char)p[i] > 0x20 &&
	       (unsigned char)p[i] < 0x7f)
		i++;
	t1 = i;
	if (t1 == t0 || i >= n || p[i] != ' ')
		return bad(err, 400, "malformed_request", "Malformed request "
			   "line: the target must be printable ASCII without "
			   "spaces");
	/* libmicrohttpd keeps a record of each query argument too */
	q = memchr(p + t0, '?', t1 - t0);
	h->query_args = q ? 1 : 0;
	for (; q && q < p + t1; q++)
		h->query_args += *q == '&';
	i++;
	if (n - i == 8 && (memcmp(p + i, "HTTP/1.1", 8) == 0 ||
			   memcmp(p + i, "HTTP/1.0", 8) == 0)) {
		size_t wl = ws_path ? strlen(ws_path) : 0;

		h->ws_path = wl && strcmp(h->method, "GET") == 0 &&
			     t1 - t0 >= wl && memcmp(p + t0, ws_path, wl) == 0 &&
			     (t1 - t0 == wl || p[t0 + wl] == '?');
		return REQHEAD_OK;
	}
	if (n - i == 8 && memcmp(p + i, "HTTP/", 5) == 0 &&
	    p[i + 5] >= '0' && p[i + 5] <= '9' && p[i + 6] == '.' &&
	    p[i + 7] >= '0' && p[i + 7] <= '9')
		return bad(err, 505, "http_version_not_supported",
			   "Only HTTP/1.1 and HTTP/1.0 are served");
	return bad(err, 400, "malformed_request", "Malformed request line: "
		   "expected METHOD /path HTTP/1.1");
}

/* A partial first line already wrong (a TLS hello, binary noise) is
 * refused at once rather than after the header timeout. */
static bool partial_line_ok(const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == n)
		return i < 16;
	if (p[i] != ' ' || i == 0 || i >= 16)
		return false;
	for (i++; i < n; i++)
		if ((unsigned char)p[i] < 0x20 && p[i] != '\r')
			return false;
	return true;
}

static enum reqhead_result content_length(const char *v, size_t n,
					  uint64_t max_body, struct reqhead *h,
					  struct api_error *err)
{
	uint64_t x = 0;
	bool huge = false;

	if (n == 0)
		return bad(err, 400, "invalid_content_length",
			   "Content-Length must be a decimal number");
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return bad(err, 400, "invalid_content_length",
				   "Content-Length must be a decimal number");
		if (x > (UINT64_MAX - 9) / 10)
			huge = true;
		else
			x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (h->has_length && (huge || x != h->content_length))
		return bad(err, 400, "invalid_content_length",
			   "Conflicting Content-Length headers");
	h->has_length = true;
	h->content_length = huge ? UINT64_MAX : x;
	if (h->content_length > max_body) {
		apierr_set(err, 413, "invalid_request_error",
			   "request_too_large", NULL, "The request body is "
			   "larger than the %llu bytes this gateway accepts",
			   (unsigned long long)max_body);
		return REQHEAD_BAD;
	}
	return REQHEAD_OK;
}

/* One header line, CR already stripped (section 5). */
static enum reqhead_result header_line(const char *p, size_t n,
				       uint64_t max_body, struct reqhead *h,
				       struct api_error *err)
{
	size_t i = 0, vs, ve;

	if (p[0] == ' ' || p[0] == '\t')
		return bad(err, 400, "malformed_request", "Folded header "
			   "lines (obs-fold) are not accepted");
	while (i < n && is_tchar((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= n || p[i] != ':')
		return bad(err, 400, "malformed_request", "Malformed header "
			   "line: expected Name: value");
	vs = i + 1;
	for (size_t k = vs; k < n; k++) {
		unsigned char c = (unsigned char)p[k];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return bad(err, 400, "malformed_request", "A header "
				   "value holds a control character");
	}
	while (vs < n && (p[vs] == ' ' || p[vs] == '\t'))
		vs++;
	ve = n;
	while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
		ve--;
	const char *v = p + vs;
	size_t vn = ve - vs;
	struct reqhead_val val = { v, vn };

	if (name_is(p, i, "Content-Length"))
		return content_length(v, vn, max_body, h, err);
	if (name_is(p, i, "Transfer-Encoding")) {
		if (h->chunked || vn != 7 || strncasecmp(v, "chunked", 7) != 0)
			return bad(err, 400, "unsupported_transfer_encoding",
				   "Only 'Transfer-Encoding: chunked' is "
				   "accepted");
		h->chunked = true;
	} else if (name_is(p, i, "Upgrade")) {
		h->upgrade = val;
	} else if (name_is(p, i, "Connection")) {
		h->connection = val;
	} else if (name_is(p, i, "Sec-WebSocket-Key")) {
		h->ws_key = val;
	} else if (name_is(p, i, "Sec-WebSocket-Version")) {
		h->ws_version = val;
	} else if (name_is(p, i, "Sec-WebSocket-Protocol")) {
		h->ws_protocol = val;
	} else if (name_is(p, i, "Origin")) {
		h->origin = val;
	} else if (name_is(p, i, "Cookie")) {
		h->cookie_bytes += vn;
		h->cookies++;
		for (size_t k = 0; k < vn; k++)
			h->cookies += v[k] == ';' || v[k] == ',';
	} else if (name_is(p, i, "Authorization")) {
		h->authorization = val;
	}
	return REQHEAD_OK;
}

/*
 * What libmicrohttpd keeps in a connection's pool for a request: the
 * head, as read; a record of about 56 bytes for each header field, query
 * argument and cookie; a copy of the Cookie header, which it splits in
 * place; and the response head. The pool holds a head of the limit with
 * 100 fields, and a Cookie header about as large as the head besides.
 */
#define POOL_RECORD 64
#define POOL_RESPONSE_ROOM 2048

size_t reqhead_pool_size(size_t max_bytes)
{
	size_t n = 2 * max_bytes;

	return n < (size_t)16 * 1024 ? (size_t)16 * 1024 : n;
}

static bool fits_pool(const struct reqhead *h, size_t max_bytes,
		      unsigned fields)
{
	size_t records = (size_t)fields + h->query_args + h->cookies;

	return h->head_len + h->cookie_bytes + 1 + POOL_RESPONSE_ROOM +
	       records * POOL_RECORD <= reqhead_pool_size(max_bytes);
}

void reqhead_error_too_large(struct api_error *err)
{
	bad(err, 431, "headers_too_large", "The request line and headers are "
	    "larger than server.max_header_bytes");
}

void reqhead_error_too_many_fields(struct api_error *err)
{
	apierr_set(err, 431, "invalid_request_error", "headers_too_large",
		   NULL, "More than %d header fields and query arguments in "
		   "the request", REQHEAD_MAX_FIELDS);
}

static enum reqhead_result too_many_fields(struct api_error *err)
{
	reqhead_error_too_many_fields(err);
	return REQHEAD_BAD;
}

enum reqhead_result reqhead_parse(const char *buf, size_t len,
				  size_t max_bytes, uint64_t max_body,
				  const char *ws_path, struct reqhead *h,
				  struct api_error *err)
{
	size_t pos = 0, lim = len < max_bytes ? len : max_bytes;
	size_t fields = 0;
	bool first = true;
	enum reqhead_result r;

	memset(h, 0, sizeof(*h));
	/* section 2.2: empty lines before the request line are ignored */
	while (pos + 1 < lim && buf[pos] == '\r' && buf[pos + 1] == '\n')
		pos += 2;
	for (;;) {
		const char *eol = memchr(buf + pos, '\n', lim - pos);
		size_t n;

		if (!eol) {
			if (first && !partial_line_ok(buf + pos, lim - pos))
				return bad(err, 400, "malformed_request",
					   "Malformed request line: expected "
					   "METHOD /path HTTP/1.1");
			if (len >= max_bytes) {
				reqhead_error_too_large(err);
				return REQHEAD_BAD;
			}
			return REQHEAD_MORE;
		}
		n = (size_t)(eol - (buf + pos));
		if (n > 0 && buf[pos + n - 1] == '\r')
			n--;
		if (memchr(buf + pos, '\r', n) || memchr(buf + pos, '\0', n))
			return bad(err, 400, "malformed_request", "A bare CR or "
				   "a NUL byte in the request head");
		if (first) {
			r = request_line(buf + pos, n, ws_path, h, err);
			if (r == REQHEAD_OK &&
			    h->query_args > REQHEAD_MAX_FIELDS)
				return too_many_fields(err);
			first = false;
		} else if (n == 0) {
			h->head_len = (size_t)(eol - buf) + 1;
			if (!fits_pool(h, max_bytes, (unsigned)fields))
				return bad(err, 431, "headers_too_large",
					   "The request head is too large "
					   "with its Cookie header, which "
					   "counts twice: raise "
					   "server.max_header_bytes");
			break;
		} else if (++fields + h->query_args > REQHEAD_MAX_FIELDS) {
			return too_many_fields(err);
		} else {
			r = header_line(buf + pos, n, max_body, h, err);
		}
		if (r != REQHEAD_OK)
			return r;
		pos = (size_t)(eol - buf) + 1;
	}
	if (h->chunked && h->has_length)
		return bad(err, 400, "ambiguous_body_length", "A request may "
			   "carry Content-Length or Transfer-Encoding, not "
			   "both");
	return REQHEAD_OK;
}

static const char *reason(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

void reqhead_error_response(struct buf *out, const struct api_error *err,
			    const char *extra_headers)
{
	struct buf body;

	buf_init(&body, 0);
	apierr_to_json(err, &body);
	buf_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		   "Content-Length: %zu\r\nConnection: close\r\n%s\r\n",
		   err->status, reason(err->status), body.len,
		   extra_headers ? extra_headers : "");
	buf_append(out, body.data, body.len);
	buf_free(&body);
}
