/* SPDX-License-Identifier: MIT */
/*
 * adapters/gemini: Google's native Gemini API (models/{m}:generateContent
 * and :streamGenerateContent?alt=sse) behind the OpenAI Chat Completions
 * dialect. The request is rebuilt field by field (anything without a
 * Gemini equivalent is dropped with a debug line); answers and SSE events
 * are rebuilt as chat.completion / chat.completion.chunk objects.
 *
 * Decisions where the providers' docs leave room (the unit fixtures under
 * tests/fixtures/{mapping,gemini} pin each of them):
 *  - Reasoning. The gateway does not ask for thought summaries on its own
 *    (expose_reasoning defaults to off, as in the mapping conventions):
 *    reasoning_effort only sets the thinking budget or level. A request
 *    may carry include_reasoning: true (OpenRouter's name; an operator
 *    can add it per model with param_config) to get includeThoughts.
 *    Thought parts that arrive always become reasoning_content, never
 *    content, so they are neither lost nor mixed into the answer.
 *  - Thought signatures on functionCall parts go out as the tool call's
 *    extra_content.google.thought_signature (the shape of Google's own
 *    OpenAI endpoint) and come back from the client's next turn onto the
 *    functionCall part. Signatures on text parts are not validated by
 *    Gemini and are dropped.
 *  - Tool-call ids are always ours (call_<24 alnum>); Gemini's optional
 *    functionCall.id is not echoed, and no ids are sent upstream: Gemini
 *    pairs calls and responses by name and order.
 *  - finishReason STOP/MAX_TOKENS/safety classes map to stop (tool_calls
 *    when the candidate called a function), length and content_filter.
 *    MALFORMED_FUNCTION_CALL, OTHER, UNSPECIFIED, tool-call failures and
 *    any reason we do not know are errors (502), never a silent stop.
 *  - A prompt blocked before generation (no candidates, blockReason) is a
 *    200 with one empty choice and finish_reason content_filter.
 *  - Errors use the shared status policy (adapter_map_status); an invalid
 *    key comes as 400 with reason API_KEY_INVALID and is treated as 401.
 *  - Streams: the gateway cannot see a [DONE]; the stream is complete when
 *    every candidate that appeared carried a finishReason. The usage chunk
 *    is always emitted at the end (the pipeline drops it when the client
 *    did not ask), every other chunk carries "usage": null.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "adapter.h"
#include "buf.h"
#include "jsonguard.h"
#include "log.h"
#include "util.h"

#define LOG_GROUP "gemini"
#define DEFAULT_BASE "https://generativelanguage.googleapis.com/v1beta"
#define ID_LEN 24            /* random characters in generated ids */
#define MAX_CANDIDATES 8     /* Gemini's candidateCount maximum */
#define SCHEMA_MAX_DEPTH 32  /* nesting, $ref expansion included */
#define SCHEMA_MAX_NODES 5000

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ---- small helpers ---- */

/* Random [A-Za-z0-9] characters from the kernel (random_bytes). */
static void random_alnum(char *out, size_t n)
{
	static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[64];
	size_t i = 0, j = sizeof(rnd);

	while (i < n) {
		if (j == sizeof(rnd)) {
			random_bytes(rnd, sizeof(rnd));
			j = 0;
		}
		/* 248 = 4 * 62: reject the rest to keep the draw uniform */
		if (rnd[j] < 248)
			out[i++] = set[rnd[j] % 62];
		j++;
	}
	out[n] = '\0';
}

/* Writes prefix + ID_LEN random characters to id (size >= 16 + ID_LEN). */
static void make_id(char *id, size_t size, const char *prefix)
{
	int plen = snprintf(id, size, "%s", prefix);

	if (plen < 0 || (size_t)plen + ID_LEN >= size)
		abort(); /* prefixes are short literals: a caller bug */
	random_alnum(id + plen, ID_LEN);
}

static json_object *new_id(const char *prefix)
{
	char id[16 + ID_LEN + 1];

	make_id(id, sizeof(id), prefix);
	return json_object_new_string(id);
}

/* o[key] when o is an object holding key with a value of type t. */
static json_object *get_type(json_object *o, const char *key, json_type t)
{
	json_object *v;

	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, t))
		return NULL;
	return v;
}

static bool has_key(json_object *o, const char *key)
{
	return json_object_is_type(o, json_type_object) &&
	       json_object_object_get_ex(o, key, NULL);
}

static const char *get_str(json_object *o, const char *key)
{
	return json_object_get_string(get_type(o, key, json_type_string));
}

/* "models/gemini-x" and "gemini-x" name the same model. */
static const char *bare_model(const char *m)
{
	return strncmp(m, "models/", 7) == 0 ? m + 7 : m;
}

static bool is_number(json_object *v)
{
	return json_object_is_type(v, json_type_int) ||
	       json_object_is_type(v, json_type_double);
}

/* A token count (or error code) from the provider. Gemini's counts are
 * int32, so anything outside [0, INT32_MAX] is junk: clamping it keeps
 * the usage sums from overflowing. */
static int64_t get_count(json_object *o, const char *key)
{
	json_object *v = get_type(o, key, json_type_int);
	int64_t n = v ? json_object_get_int64(v) : 0;

	return n < 0 ? 0 : n > INT32_MAX ? INT32_MAX : n;
}

/* Parse the whole of s (any JSON value, surrounding blanks allowed).
 * NULL when s is not exactly one JSON text. */
static json_object *parse_text(const char *s, size_t n)
{
	json_tokener *tok;
	json_object *v;
	size_t end;
	struct buf fixed;

	if (n > INT32_MAX)
		return NULL;
	buf_init(&fixed, 0);
	(void)jsonguard_unmangle(&s, &n, &fixed);
	tok = json_tokener_new();
	v = json_tokener_parse_ex(tok, s, (int)n);
	end = json_tokener_get_parse_end(tok);
	if (!v && json_tokener_get_error(tok) == json_tokener_continue) {
		/* a bare scalar ends only at the terminator; the parse end then
		 * counts in that one-byte piece: all of s was used */
		v = json_tokener_parse_ex(tok, "", 1);
		end = n;
	}
	if (v && json_tokener_get_error(tok) == json_tokener_success) {
		while (end < n && strchr(" \t\r\n", s[end]))
			end++;
		if (end < n && s[end] != '\0') {
			json_object_put(v);
			v = NULL;
		}
	} else {
		json_object_put(v);
		v = NULL;
	}
	json_tokener_free(tok);
	buf_free(&fixed);
	return v;
}

static json_object *parse_object(const char *s, size_t n)
{
	json_object *v = parse_text(s, n);

	if (v && !json_object_is_type(v, json_type_object)) {
		json_object_put(v);
		return NULL;
	}
	return v;
}

static void base64_append(struct buf *out, const unsigned char *p, size_t n)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char q[4];

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		q[0] = t[(v >> 18) & 63];
		q[1] = t[(v >> 12) & 63];
		q[2] = i + 1 < n ? t[(v >> 6) & 63] : '=';
		q[3] = i + 2 < n ? t[v & 63] : '=';
		buf_append(out, q, 4);
	}
}

/* ---- request: messages ---- */

struct req_ctx {
	const struct adapter_call *call;
	struct api_error *err;
	json_object *contents;   /* Gemini turns */
	json_object *sys_parts;  /* systemInstruction parts */
	json_object *last_turn;  /* borrowed: the turn to merge into */
	json_object *call_names; /* tool_call_id -> function name */
	size_t msg;              /* index of the message being translated */
	int schema_nodes;
};

static json_object *text_part(const char *s, size_t n)
{
	json_object *p = json_object_new_object();

	json_object_object_add(p, "text", json_object_new_string_len(s, (int)n));
	return p;
}

static json_object *inline_part(const char *mime, size_t mlen,
				json_object *data)
{
	json_object *p = json_object_new_object(), *d = json_object_new_object();

	json_object_object_add(d, "mimeType",
			       json_object_new_string_len(mime, (int)mlen));
	json_object_object_add(d, "data", data);
	json_object_object_add(p, "inlineData", d);
	return p;
}

/* Gemini wants alternating user/model turns, so a turn with the role of
 * the previous one is merged into it. Takes parts; empty turns vanish
 * (Gemini rejects them). */
static void add_turn(struct req_ctx *c, const char *role, json_object *parts)
{
	json_object *turn, *old;
	size_t n = json_object_array_length(parts);

	if (n == 0) {
		json_object_put(parts);
		return;
	}
	if (c->last_turn &&
	    strcmp(get_str(c->last_turn, "role"), role) == 0) {
		old = get_type(c->last_turn, "parts", json_type_array);
		for (size_t i = 0; i < n; i++)
			json_object_array_add(old, json_object_get(
				json_object_array_get_idx(parts, i)));
		json_object_put(parts);
		return;
	}
	turn = json_object_new_object();
	json_object_object_add(turn, "role", json_object_new_string(role));
	json_object_object_add(turn, "parts", parts);
	json_object_array_add(c->contents, turn);
	c->last_turn = turn;
}

/* "data:<mime>[;param]*;base64,<data>" -> inlineData. */
static int data_url_part(struct req_ctx *c, const char *url, size_t j,
			 const char *what, json_object *out)
{
	const char *head = url + 5, *comma = strchr(head, ','), *semi;
	size_t mlen;

	if (!comma || comma - head < 7 ||
	    memcmp(comma - 7, ";base64", 7) != 0 || !comma[1]) {
		apierr_bad_request(c->err, "messages", "messages[%zu].content[%zu]"
				   ".%s: only base64 data: URLs are supported",
				   c->msg, j, what);
		return -1;
	}
	semi = memchr(head, ';', (size_t)(comma - head));
	mlen = (size_t)(semi - head);
	if (mlen == 0) {
		apierr_bad_request(c->err, "messages", "messages[%zu].content[%zu]"
				   ".%s: the data: URL names no media type",
				   c->msg, j, what);
		return -1;
	}
	json_object_array_add(out, inline_part(head, mlen,
					       json_object_new_string(comma + 1)));
	return 0;
}

/* An http(s) image the gateway must download and inline: Gemini cannot
 * be relied on to fetch arbitrary URLs itself. */
static int fetched_part(struct req_ctx *c, const char *url, size_t j,
			json_object *out)
{
	const struct adapter_call *call = c->call;
	struct buf data, b64;
	char mime[128] = "";
	int rc = -1;

	if (!call->fetch) {
		apierr_bad_request(c->err, "messages", "messages[%zu].content[%zu]"
				   ".image_url: remote image fetching is disabled "
				   "on this gateway; send the image as a base64 "
				   "data: URL", c->msg, j);
		return -1;
	}
	buf_init(&data, 0);
	buf_init(&b64, 0);
	if (call->fetch(call->fetch_ud, url, &data, mime, sizeof(mime),
			c->err) < 0)
		goto out;
	if (!mime[0]) {
		apierr_bad_request(c->err, "messages", "messages[%zu].content[%zu]"
				   ".image_url: the fetched image has no content "
				   "type", c->msg, j);
		goto out;
	}
	base64_append(&b64, (const unsigned char *)data.data, data.len);
	json_object_array_add(out, inline_part(mime, strlen(mime),
		json_object_new_string_len(b64.data ? b64.data : "",
					   (int)b64.len)));
	rc = 0;
out:
	buf_free(&data);
	buf_free(&b64);
	return rc;
}

/* Files API and YouTube URIs: Gemini reads them itself (the gateway
 * could not: they need the upstream key or are not media). */
static bool gemini_file_uri(const char *url)
{
	return has_prefix_ci(url, "https://generativelanguage.googleapis.com/") ||
	       has_prefix_ci(url, "https://www.youtube.com/") ||
	       has_prefix_ci(url, "https://youtu.be/");
}

static int image_part(struct req_ctx *c, json_object *part, size_t j,
		      json_object *out)
{
	json_object *img, *fd, *p;
	const char *url;

	img = get_type(part, "image_url", json_type_object);
	url = img ? get_str(img, "url") :
		    get_str(part, "image_url"); /* legacy: a bare string */
	if (!url || !*url) {
		apierr_bad_request(c->err, "messages", "messages[%zu].content[%zu]"
				   ".image_url.url is missing", c->msg, j);
		return -1;
	}
	if (has_prefix_ci(url, "data:"))
		return data_url_part(c, url, j, "image_url", out);
	if (gemini_file_uri(url)) {
		p = json_object_new_object();
		fd = json_object_new_object();
		json_object_object_add(fd, "fileUri", json_object_new_string(url));
		json_object_object_add(p, "fileData", fd);
		json_object_array_add(out, p);
		return 0;
	}
	if (has_prefix_ci(url, "https://") || has_prefix_ci(url, "http://"))
		return fetched_part(c, url, j, out);
	apierr_bad_request(c->err, "messages", "messages[%zu].content[%zu]"
			   ".image_url.url must be an http(s) or data: URL",
			   c->msg, j);
	return -1;
}

static int audio_part(struct req_ctx *c, json_object *part, size_t j,
		      json_object *out)
{
	json_object *a = get_type(part, "input_audio", json_type_object);
	const char *data = get_str(a, "data"), *fmt = get_str(a, "format");
	struct buf mime;

	if (!data || !*data || !fmt || !*fmt) {
		apierr_bad_request(c->err, "messages", "messages[%zu].content[%zu]"
				   ".input_audio needs data and format",
				   c->msg, j);
		return -1;
	}
	buf_init(&mime, 0);
	buf_printf(&mime, "audio/%s", fmt);
	json_object_array_add(out, inline_part(mime.data, mime.len,
					       json_object_new_string(data)));
	buf_free(&mime);
	return 0;
}

static int file_part(struct req_ctx *c, json_object *part, size_t j,
		     json_object *out)
{
	const char *data = get_str(get_type(part, "file", json_type_object),
				   "file_data");

	if (!data || !has_prefix_ci(data, "data:")) {
		apierr_bad_request(c->err, "messages", "messages[%zu].content[%zu]"
				   ".file: only file_data as a base64 data: URL "
				   "is supported by Gemini", c->msg, j);
		return -1;
	}
	return data_url_part(c, data, j, "file.file_data", out);
}

/* One element of an array content. media: user turns may carry images,
 * audio and files; system and assistant turns only text. */
static int content_item(struct req_ctx *c, json_object *part, size_t j,
			bool media, json_object *out)
{
	const char *type = get_str(part, "type"), *s;

	if (type && (strcmp(type, "text") == 0 || strcmp(type, "refusal") == 0)) {
		s = get_str(part, type);
		if (!s) {
			apierr_bad_request(c->err, "messages", "messages[%zu]."
					   "content[%zu].%s must be a string",
					   c->msg, j, type);
			return -1;
		}
		if (*s) /* Gemini rejects empty text parts */
			json_object_array_add(out, text_part(s, strlen(s)));
		return 0;
	}
	if (media && type && strcmp(type, "image_url") == 0)
		return image_part(c, part, j, out);
	if (media && type && strcmp(type, "input_audio") == 0)
		return audio_part(c, part, j, out);
	if (media && type && strcmp(type, "file") == 0)
		return file_part(c, part, j, out);
	apierr_bad_request(c->err, "messages", "messages[%zu].content[%zu]: "
			   "content type '%s' is not supported here by Gemini",
			   c->msg, j, type ? type : "(none)");
	return -1;
}

/* content (string, array of parts or null) -> Gemini parts in out. */
static int content_parts(struct req_ctx *c, json_object *content, bool media,
			 json_object *out)
{
	const char *s;

	if (!content || json_object_is_type(content, json_type_null))
		return 0;
	if (json_object_is_type(content, json_type_string)) {
		s = json_object_get_string(content);
		if (*s)
			json_object_array_add(out, text_part(s,
				(size_t)json_object_get_string_len(content)));
		return 0;
	}
	if (!json_object_is_type(content, json_type_array)) {
		apierr_bad_request(c->err, "messages", "messages[%zu].content "
				   "must be a string or an array", c->msg);
		return -1;
	}
	for (size_t j = 0; j < json_object_array_length(content); j++)
		if (content_item(c, json_object_array_get_idx(content, j), j,
				 media, out) < 0)
			return -1;
	return 0;
}

static int system_msg(struct req_ctx *c, json_object *m)
{
	json_object *content = NULL;

	json_object_object_get_ex(m, "content", &content);
	if (!c->sys_parts)
		c->sys_parts = json_object_new_array();
	return content_parts(c, content, false, c->sys_parts);
}

static int user_msg(struct req_ctx *c, json_object *m)
{
	json_object *content = NULL, *parts = json_object_new_array();

	json_object_object_get_ex(m, "content", &content);
	if (content_parts(c, content, true, parts) < 0) {
		json_object_put(parts);
		return -1;
	}
	add_turn(c, "user", parts);
	return 0;
}

/* arguments (a JSON string) -> the object Gemini wants as args. */
static json_object *call_args(struct req_ctx *c, json_object *fn, size_t k)
{
	json_object *a = get_type(fn, "arguments", json_type_string), *v;
	const char *s = a ? json_object_get_string(a) : "";
	size_t n = strlen(s);

	while (n > 0 && strchr(" \t\r\n", s[n - 1]))
		n--;
	if (n == 0) /* some clients send "" for a call without arguments */
		return json_object_new_object();
	v = parse_object(s, n);
	if (!v)
		apierr_bad_request(c->err, "messages", "messages[%zu].tool_calls"
				   "[%zu].function.arguments is not a JSON "
				   "object", c->msg, k);
	return v;
}

static int tool_call_part(struct req_ctx *c, json_object *tc, size_t k,
			  json_object *parts)
{
	json_object *fn = get_type(tc, "function", json_type_object);
	json_object *args, *fc, *p, *google;
	const char *id = get_str(tc, "id"), *name = get_str(fn, "name");
	const char *sig;

	if (!id || !name || !*name) {
		apierr_bad_request(c->err, "messages", "messages[%zu].tool_calls"
				   "[%zu] needs an id and a function name",
				   c->msg, k);
		return -1;
	}
	args = call_args(c, fn, k);
	if (!args)
		return -1;
	fc = json_object_new_object();
	json_object_object_add(fc, "name", json_object_new_string(name));
	json_object_object_add(fc, "args", args);
	p = json_object_new_object();
	json_object_object_add(p, "functionCall", fc);
	google = get_type(get_type(tc, "extra_content", json_type_object),
			  "google", json_type_object);
	sig = get_str(google, "thought_signature");
	if (sig) /* Gemini 3 rejects a call that lost its signature */
		json_object_object_add(p, "thoughtSignature",
				       json_object_new_string(sig));
	json_object_array_add(parts, p);
	json_object_object_add(c->call_names, id, json_object_new_string(name));
	return 0;
}

static int assistant_msg(struct req_ctx *c, json_object *m)
{
	json_object *content = NULL, *parts = json_object_new_array();
	json_object *calls = get_type(m, "tool_calls", json_type_array);

	json_object_object_get_ex(m, "content", &content);
	if (content_parts(c, content, false, parts) < 0)
		goto fail;
	for (size_t k = 0; calls && k < json_object_array_length(calls); k++)
		if (tool_call_part(c, json_object_array_get_idx(calls, k), k,
				   parts) < 0)
			goto fail;
	add_turn(c, "model", parts);
	return 0;
fail:
	json_object_put(parts);
	return -1;
}

/* A tool result's text: a string, or the text parts of an array. */
static void tool_text(json_object *content, struct buf *out)
{
	json_object *p;
	const char *s;

	if (json_object_is_type(content, json_type_string)) {
		buf_appends(out, json_object_get_string(content));
		return;
	}
	for (size_t j = 0; json_object_is_type(content, json_type_array) &&
	     j < json_object_array_length(content); j++) {
		p = json_object_array_get_idx(content, j);
		s = get_str(p, "text");
		if (s)
			buf_appends(out, s);
	}
}

static int tool_msg(struct req_ctx *c, json_object *m)
{
	const char *id = get_str(m, "tool_call_id");
	json_object *name = NULL, *content = NULL, *v, *resp, *fr, *p, *parts;
	struct buf text;

	if (!id || !json_object_object_get_ex(c->call_names, id, &name)) {
		apierr_bad_request(c->err, "messages", "messages[%zu].tool_call_id "
				   "'%s' does not match a tool call of an earlier "
				   "assistant message", c->msg, id ? id : "");
		return -1;
	}
	json_object_object_get_ex(m, "content", &content);
	buf_init(&text, 0);
	tool_text(content, &text);
	/* Gemini wants an object: a JSON object result goes as it is,
	 * anything else is wrapped as {"output": ...} */
	v = parse_text(text.data ? text.data : "", text.len);
	if (v && json_object_is_type(v, json_type_object)) {
		resp = v;
	} else {
		resp = json_object_new_object();
		json_object_object_add(resp, "output", v ? v :
			json_object_new_string_len(text.data ? text.data : "",
						   (int)text.len));
	}
	buf_free(&text);
	fr = json_object_new_object();
	json_object_object_add(fr, "name", json_object_get(name));
	json_object_object_add(fr, "response", resp);
	p = json_object_new_object();
	json_object_object_add(p, "functionResponse", fr);
	parts = json_object_new_array();
	json_object_array_add(parts, p);
	add_turn(c, "user", parts);
	return 0;
}

static int one_message(struct req_ctx *c, json_object *m)
{
	const char *role = get_str(m, "role");

	if (!role) {
		apierr_bad_request(c->err, "messages", "messages[%zu].role is "
				   "missing", c->msg);
		return -1;
	}
	if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0)
		return system_msg(c, m);
	if (strcmp(role, "user") == 0)
		return user_msg(c, m);
	if (strcmp(role, "assistant") == 0)
		return assistant_msg(c, m);
	if (strcmp(role, "tool") == 0)
		return tool_msg(c, m);
	apierr_bad_request(c->err, "messages", "messages[%zu].role '%s' is not "
			   "supported by Gemini", c->msg, role);
	return -1;
}

static int messages(struct req_ctx *c, json_object *req, json_object *body)
{
	json_object *msgs = get_type(req, "messages", json_type_array), *si;

	if (!msgs) {
		apierr_bad_request(c->err, "messages", "messages must be an array");
		return -1;
	}
	for (c->msg = 0; c->msg < json_object_array_length(msgs); c->msg++)
		if (one_message(c, json_object_array_get_idx(msgs, c->msg)) < 0)
			return -1;
	if (json_object_array_length(c->contents) == 0) {
		apierr_bad_request(c->err, "messages", "messages must hold at "
				   "least one non-empty user or assistant message");
		return -1;
	}
	if (c->sys_parts && json_object_array_length(c->sys_parts) > 0) {
		si = json_object_new_object();
		json_object_object_add(si, "parts",
				       json_object_get(c->sys_parts));
		json_object_object_add(body, "systemInstruction", si);
	}
	json_object_object_add(body, "contents", json_object_get(c->contents));
	return 0;
}

/* ---- request: JSON Schema -> Gemini's OpenAPI subset ---- */

struct schema_ctx {
	struct req_ctx *c;
	json_object *root;  /* for $ref lookups */
	const char *param;  /* "tools" or "response_format" */
	size_t tool;        /* index in tools */
	const char *stack[SCHEMA_MAX_DEPTH]; /* $refs being expanded */
	int nstack;
};

static json_object *clean_schema(struct schema_ctx *s, json_object *in,
				 int depth);

/* Keys Gemini's Schema message knows, copied as they are. */
static const char *const schema_plain_keys[] = {
	"description", "title", "default", "example", "nullable", "required",
	"minimum", "maximum", "minItems", "maxItems", "minLength", "maxLength",
	"pattern", "minProperties", "maxProperties", "propertyOrdering",
};

/* String formats Gemini accepts; others (email, uri, ...) get a 400. */
static const char *const schema_formats[] = {
	"enum", "date-time", "int32", "int64", "float", "double",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static int schema_fail(struct schema_ctx *s, const char *why)
{
	if (strcmp(s->param, "tools") == 0)
		apierr_bad_request(s->c->err, s->param, "tools[%zu].function."
				   "parameters: %s", s->tool, why);
	else
		apierr_bad_request(s->c->err, s->param, "response_format."
				   "json_schema.schema: %s", why);
	return -1;
}

static bool array_has_string(json_object *arr, const char *s)
{
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i);

		if (json_object_is_type(e, json_type_string) &&
		    strcmp(json_object_get_string(e), s) == 0)
			return true;
	}
	return false;
}

/* a + the names of b not already in a, as a new array */
static json_object *required_union(json_object *a, json_object *b)
{
	json_object *req = json_object_new_array(), *e;

	for (size_t i = 0; i < json_object_array_length(a); i++)
		json_object_array_add(req, json_object_get(
			json_object_array_get_idx(a, i)));
	for (size_t i = 0; i < json_object_array_length(b); i++) {
		e = json_object_array_get_idx(b, i);
		if (!json_object_is_type(e, json_type_string) ||
		    !array_has_string(req, json_object_get_string(e)))
			json_object_array_add(req, json_object_get(e));
	}
	return req;
}

/* Copy key k of src into dst unless dst has it (merging subschemas).
 * Plain keys such as required are shared with the client's request (and
 * with a $defs entry other $refs still expand): they are replaced, never
 * changed in place. */
static void merge_into(json_object *dst, json_object *src)
{
	json_object *have;

	json_object_object_foreach(src, k, v) {
		if (!json_object_object_get_ex(dst, k, &have)) {
			json_object_object_add(dst, k, json_object_get(v));
		} else if (strcmp(k, "properties") == 0 &&
			   json_object_is_type(have, json_type_object) &&
			   json_object_is_type(v, json_type_object)) {
			merge_into(have, v); /* our own object: clean_schema made it */
		} else if (strcmp(k, "required") == 0 &&
			   json_object_is_type(have, json_type_array) &&
			   json_object_is_type(v, json_type_array)) {
			json_object_object_add(dst, k, required_union(have, v));
		}
	}
}

static json_object *ref_target(struct schema_ctx *s, const char *ref,
			       const char **name)
{
	static const struct {
		const char *prefix, *key;
	} bases[] = {
		{ "#/$defs/", "$defs" },
		{ "#/definitions/", "definitions" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bases); i++) {
		size_t n = strlen(bases[i].prefix);
		json_object *defs;

		if (strncmp(ref, bases[i].prefix, n) != 0)
			continue;
		defs = get_type(s->root, bases[i].key, json_type_object);
		*name = ref + n;
		return get_type(defs, ref + n, json_type_object);
	}
	return NULL;
}

/* {"$ref": ...} (plus siblings) -> the referenced schema, inlined. */
static json_object *clean_ref(struct schema_ctx *s, json_object *in,
			      const char *ref, int depth)
{
	const char *name = NULL;
	json_object *target = ref_target(s, ref, &name), *out;

	if (!target) {
		schema_fail(s, "only local $ref to $defs or definitions can "
			    "be inlined for Gemini");
		return NULL;
	}
	for (int i = 0; i < s->nstack; i++)
		if (strcmp(s->stack[i], name) == 0) {
			schema_fail(s, "recursive $ref cannot be expressed in "
				    "Gemini's schema");
			return NULL;
		}
	s->stack[s->nstack++] = name;
	out = clean_schema(s, target, depth + 1);
	s->nstack--;
	if (!out)
		return NULL;
	json_object_object_foreach(in, k, v) {
		if (in_list(k, schema_plain_keys, ARRAY_SIZE(schema_plain_keys)))
			json_object_object_add(out, k, json_object_get(v));
	}
	return out;
}

/* "type": ["string", "null"] -> "string" + nullable; several non-null
 * types -> anyOf. */
static void schema_type(json_object *out, json_object *type, bool *nullable)
{
	json_object *kept = json_object_new_array(), *any, *one;
	const char *t;

	if (json_object_is_type(type, json_type_string)) {
		json_object_object_add(out, "type", json_object_get(type));
		json_object_put(kept);
		return;
	}
	for (size_t i = 0; json_object_is_type(type, json_type_array) &&
	     i < json_object_array_length(type); i++) {
		t = json_object_get_string(json_object_array_get_idx(type, i));
		if (t && strcmp(t, "null") == 0)
			*nullable = true;
		else if (t)
			json_object_array_add(kept, json_object_new_string(t));
	}
	if (json_object_array_length(kept) == 1) {
		json_object_object_add(out, "type", json_object_get(
			json_object_array_get_idx(kept, 0)));
	} else if (json_object_array_length(kept) > 1) {
		any = json_object_new_array();
		for (size_t i = 0; i < json_object_array_length(kept); i++) {
			one = json_object_new_object();
			json_object_object_add(one, "type", json_object_get(
				json_object_array_get_idx(kept, i)));
			json_object_array_add(any, one);
		}
		json_object_object_add(out, "anyOf", any);
	}
	json_object_put(kept);
}

static int schema_properties(struct schema_ctx *s, json_object *out,
			     json_object *props, int depth)
{
	json_object *np = json_object_new_object(), *sub;

	json_object_object_add(out, "properties", np);
	json_object_object_foreach(props, name, v) {
		if (json_object_is_type(v, json_type_boolean)) {
			/* true: anything goes; false: the property cannot be */
			if (json_object_get_boolean(v))
				json_object_object_add(np, name,
						       json_object_new_object());
			continue;
		}
		sub = clean_schema(s, v, depth + 1);
		if (!sub)
			return -1;
		json_object_object_add(np, name, sub);
	}
	return 0;
}

/* anyOf/oneOf (oneOf is stricter; anyOf is what Gemini has). A {"type":
 * "null"} branch becomes nullable; a single branch left is inlined. */
static int schema_any_of(struct schema_ctx *s, json_object *out,
			 json_object *list, int depth, bool *nullable)
{
	json_object *any = json_object_new_array(), *sub, *t;

	for (size_t i = 0; i < json_object_array_length(list); i++) {
		sub = json_object_array_get_idx(list, i);
		t = get_type(sub, "type", json_type_string);
		if (t && strcmp(json_object_get_string(t), "null") == 0) {
			*nullable = true;
			continue;
		}
		sub = clean_schema(s, sub, depth + 1);
		if (!sub) {
			json_object_put(any);
			return -1;
		}
		json_object_array_add(any, sub);
	}
	if (json_object_array_length(any) == 1)
		merge_into(out, json_object_array_get_idx(any, 0));
	else if (json_object_array_length(any) > 1)
		json_object_object_add(out, "anyOf", json_object_get(any));
	json_object_put(any);
	return 0;
}

static int schema_all_of(struct schema_ctx *s, json_object *out,
			 json_object *list, int depth)
{
	json_object *sub;

	for (size_t i = 0; i < json_object_array_length(list); i++) {
		sub = clean_schema(s, json_object_array_get_idx(list, i),
				   depth + 1);
		if (!sub)
			return -1;
		merge_into(out, sub);
		json_object_put(sub);
	}
	return 0;
}

/* enum: strings only (Gemini's enum is for STRING); null -> nullable. */
static void schema_enum(json_object *out, json_object *list, bool *nullable)
{
	json_object *keep = json_object_new_array(), *v, *type;
	bool strings = true;

	for (size_t i = 0; i < json_object_array_length(list); i++) {
		v = json_object_array_get_idx(list, i);
		if (!v)
			*nullable = true;
		else if (json_object_is_type(v, json_type_string))
			json_object_array_add(keep, json_object_get(v));
		else
			strings = false;
	}
	type = get_type(out, "type", json_type_string);
	if (strings && json_object_array_length(keep) > 0 &&
	    (!type || strcasecmp(json_object_get_string(type), "string") == 0))
		json_object_object_add(out, "enum", json_object_get(keep));
	else
		log_debug(LOG_GROUP, "schema: enum dropped (Gemini takes "
			  "string enums only)");
	json_object_put(keep);
}

/* Keys Gemini takes unchanged: the plain ones, and "format" with a value
 * it knows. */
static bool schema_copy_as_is(const char *k, json_object *v)
{
	const char *fmt;

	if (in_list(k, schema_plain_keys, ARRAY_SIZE(schema_plain_keys)))
		return true;
	if (strcmp(k, "format") != 0)
		return false;
	fmt = json_object_get_string(v);
	return fmt && json_object_is_type(v, json_type_string) &&
	       in_list(fmt, schema_formats, ARRAY_SIZE(schema_formats));
}

static int schema_key(struct schema_ctx *s, json_object *out, const char *k,
		      json_object *v, int depth, bool *nullable)
{
	json_object *e;

	if (schema_copy_as_is(k, v)) {
		json_object_object_add(out, k, json_object_get(v));
	} else if (strcmp(k, "type") == 0) {
		schema_type(out, v, nullable);
	} else if (strcmp(k, "properties") == 0 &&
		   json_object_is_type(v, json_type_object)) {
		return schema_properties(s, out, v, depth);
	} else if (strcmp(k, "items") == 0 &&
		   json_object_is_type(v, json_type_object)) {
		e = clean_schema(s, v, depth + 1);
		if (!e)
			return -1;
		json_object_object_add(out, "items", e);
	} else if ((strcmp(k, "anyOf") == 0 || strcmp(k, "oneOf") == 0) &&
		   json_object_is_type(v, json_type_array)) {
		return schema_any_of(s, out, v, depth, nullable);
	} else if (strcmp(k, "allOf") == 0 &&
		   json_object_is_type(v, json_type_array)) {
		return schema_all_of(s, out, v, depth);
	} else if (strcmp(k, "const") == 0 &&
		   json_object_is_type(v, json_type_string)) {
		e = json_object_new_array();
		json_object_array_add(e, json_object_get(v));
		json_object_object_add(out, "enum", e);
	} else if (strcmp(k, "enum") != 0) {
		/* $schema, additionalProperties, strict, $id, examples, ... */
		log_debug(LOG_GROUP, "schema: dropping '%s' (Gemini rejects it)",
			  k);
	}
	return 0;
}

static json_object *clean_schema(struct schema_ctx *s, json_object *in,
				 int depth)
{
	json_object *out, *v;
	const char *ref = get_str(in, "$ref");
	bool nullable = false;

	if (!json_object_is_type(in, json_type_object)) {
		schema_fail(s, "a schema must be a JSON object");
		return NULL;
	}
	if (depth >= SCHEMA_MAX_DEPTH || ++s->c->schema_nodes > SCHEMA_MAX_NODES) {
		schema_fail(s, "schema too deep or too large for Gemini");
		return NULL;
	}
	if (ref)
		return clean_ref(s, in, ref, depth);
	out = json_object_new_object();
	json_object_object_foreach(in, k, val) {
		if (schema_key(s, out, k, val, depth, &nullable) < 0) {
			json_object_put(out);
			return NULL;
		}
	}
	/* enum last: whether it is kept depends on the final type */
	v = get_type(in, "enum", json_type_array);
	if (v)
		schema_enum(out, v, &nullable);
	/* a kept enum (or const) holds strings; Gemini refuses an enum on
	 * anything but a STRING, an untyped schema included */
	if (get_type(out, "enum", json_type_array) && !has_key(out, "type") &&
	    !has_key(out, "anyOf"))
		json_object_object_add(out, "type", json_object_new_string("string"));
	if (nullable)
		json_object_object_add(out, "nullable",
				       json_object_new_boolean(1));
	return out;
}

static json_object *sanitize(struct req_ctx *c, json_object *schema,
			     const char *param, size_t tool)
{
	struct schema_ctx s = {
		.c = c, .root = schema, .param = param, .tool = tool,
	};

	return clean_schema(&s, schema, 0);
}

/* ---- request: tools and generation settings ---- */

static int one_tool(struct req_ctx *c, json_object *tool, size_t i,
		    json_object *decls)
{
	json_object *fn = get_type(tool, "function", json_type_object);
	json_object *decl, *params, *clean, *props;
	const char *type = get_str(tool, "type"), *name = get_str(fn, "name");

	if ((type && strcmp(type, "function") != 0) || !name || !*name) {
		apierr_bad_request(c->err, "tools", "tools[%zu]: only function "
				   "tools with a name are supported by Gemini", i);
		return -1;
	}
	decl = json_object_new_object();
	json_object_object_add(decl, "name", json_object_new_string(name));
	if (get_str(fn, "description"))
		json_object_object_add(decl, "description", json_object_get(
			json_object_object_get(fn, "description")));
	params = get_type(fn, "parameters", json_type_object);
	if (params) {
		clean = sanitize(c, params, "tools", i);
		if (!clean) {
			json_object_put(decl);
			return -1;
		}
		/* Gemini rejects an OBJECT without properties */
		props = get_type(clean, "properties", json_type_object);
		if (props && json_object_object_length(props) > 0)
			json_object_object_add(decl, "parameters", clean);
		else
			json_object_put(clean);
	}
	json_object_array_add(decls, decl);
	return 0;
}

static int tools(struct req_ctx *c, json_object *req, json_object *body)
{
	json_object *list = get_type(req, "tools", json_type_array);
	json_object *decls, *entry, *arr;

	if (!list || json_object_array_length(list) == 0)
		return 0;
	decls = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(list); i++)
		if (one_tool(c, json_object_array_get_idx(list, i), i,
			     decls) < 0) {
			json_object_put(decls);
			return -1;
		}
	/* every function in one entry: that is what Gemini documents */
	entry = json_object_new_object();
	json_object_object_add(entry, "functionDeclarations", decls);
	arr = json_object_new_array();
	json_object_array_add(arr, entry);
	json_object_object_add(body, "tools", arr);
	return 0;
}

static int tool_choice(struct req_ctx *c, json_object *req, json_object *body)
{
	json_object *tc = NULL, *cfg, *fcc, *names;
	const char *s, *mode = NULL, *name = NULL;

	if (!json_object_object_get_ex(req, "tool_choice", &tc) || !tc)
		return 0;
	s = json_object_is_type(tc, json_type_string) ?
	    json_object_get_string(tc) : NULL;
	if (s && strcmp(s, "auto") == 0)
		mode = "AUTO";
	else if (s && strcmp(s, "none") == 0)
		mode = "NONE";
	else if (s && strcmp(s, "required") == 0)
		mode = "ANY";
	else if (!s) {
		name = get_str(get_type(tc, "function", json_type_object), "name");
		mode = name ? "ANY" : NULL;
	}
	if (!mode) {
		apierr_bad_request(c->err, "tool_choice", "tool_choice must be "
				   "\"auto\", \"none\", \"required\" or a named "
				   "function");
		return -1;
	}
	fcc = json_object_new_object();
	json_object_object_add(fcc, "mode", json_object_new_string(mode));
	if (name) {
		names = json_object_new_array();
		json_object_array_add(names, json_object_new_string(name));
		json_object_object_add(fcc, "allowedFunctionNames", names);
	}
	cfg = json_object_new_object();
	json_object_object_add(cfg, "functionCallingConfig", fcc);
	json_object_object_add(body, "toolConfig", cfg);
	return 0;
}

static int stop_sequences(struct req_ctx *c, json_object *req, json_object *gc)
{
	json_object *stop = NULL, *arr;

	if (!json_object_object_get_ex(req, "stop", &stop) || !stop)
		return 0;
	if (json_object_is_type(stop, json_type_string)) {
		arr = json_object_new_array();
		json_object_array_add(arr, json_object_get(stop));
		json_object_object_add(gc, "stopSequences", arr);
		return 0;
	}
	for (size_t i = 0; json_object_is_type(stop, json_type_array) &&
	     i < json_object_array_length(stop); i++)
		if (!json_object_is_type(json_object_array_get_idx(stop, i),
					 json_type_string))
			goto bad;
	if (!json_object_is_type(stop, json_type_array))
		goto bad;
	if (json_object_array_length(stop) > 0)
		json_object_object_add(gc, "stopSequences", json_object_get(stop));
	return 0;
bad:
	apierr_bad_request(c->err, "stop", "stop must be a string or an array "
			   "of strings");
	return -1;
}

static int response_format(struct req_ctx *c, json_object *req,
			   json_object *gc)
{
	json_object *rf = get_type(req, "response_format", json_type_object);
	json_object *schema, *clean;
	const char *type = get_str(rf, "type");

	if (!rf || (type && strcmp(type, "text") == 0))
		return 0;
	if (!type || (strcmp(type, "json_object") != 0 &&
		      strcmp(type, "json_schema") != 0)) {
		apierr_bad_request(c->err, "response_format", "response_format."
				   "type must be text, json_object or "
				   "json_schema");
		return -1;
	}
	json_object_object_add(gc, "responseMimeType",
			       json_object_new_string("application/json"));
	schema = get_type(get_type(rf, "json_schema", json_type_object),
			  "schema", json_type_object);
	if (strcmp(type, "json_schema") != 0 || !schema)
		return 0;
	clean = sanitize(c, schema, "response_format", 0);
	if (!clean)
		return -1;
	json_object_object_add(gc, "responseSchema", clean);
	return 0;
}

enum thinking_kind { THINK_NONE, THINK_BUDGET, THINK_LEVEL };

/* Gemini 3 takes a level, 2.5 a token budget, 2.0 and older reject
 * thinkingConfig. Unknown names (aliases like gemini-flash-latest) get
 * a budget, which every thinking model accepts. */
static enum thinking_kind thinking_kind(const char *model)
{
	long major, minor = 0;
	char *end;

	if (strncmp(model, "gemini-", 7) != 0)
		return THINK_BUDGET;
	major = strtol(model + 7, &end, 10);
	if (end == model + 7)
		return THINK_BUDGET;
	if (*end == '.')
		minor = strtol(end + 1, NULL, 10);
	if (major >= 3)
		return THINK_LEVEL;
	if (major == 2 && minor >= 5)
		return THINK_BUDGET;
	return THINK_NONE;
}

/* Pro models cannot turn thinking off (2.5 Pro's floor is 128 tokens)
 * and Gemini 3 Pro has no minimal or medium level. */
static void thinking_value(json_object *tc, const char *model,
			   enum thinking_kind kind, const char *effort)
{
	bool pro = strstr(model, "-pro") != NULL;
	bool off = strcmp(effort, "none") == 0 || strcmp(effort, "minimal") == 0;
	int64_t budget = 0;
	const char *level = effort;

	if (kind == THINK_BUDGET) {
		if (off)
			budget = pro ? 128 : 0;
		else
			budget = strcmp(effort, "low") == 0 ? 1024 :
				 strcmp(effort, "medium") == 0 ? 8192 : 24576;
		json_object_object_add(tc, "thinkingBudget",
				       json_object_new_int64(budget));
		return;
	}
	if (off)
		level = pro ? "low" : "minimal";
	else if (strcmp(effort, "medium") == 0 &&
		 strncmp(model, "gemini-3-pro", 12) == 0)
		level = "high";
	json_object_object_add(tc, "thinkingLevel", json_object_new_string(level));
}

static int thinking(struct req_ctx *c, json_object *req, json_object *gc)
{
	static const char *const efforts[] = {
		"none", "minimal", "low", "medium", "high",
	};
	json_object *e = NULL, *tc;
	json_object *inc = get_type(req, "include_reasoning", json_type_boolean);
	bool include = inc && json_object_get_boolean(inc);
	const char *model = bare_model(c->call->upstream_model), *effort = NULL;
	enum thinking_kind kind = thinking_kind(model);

	if (json_object_object_get_ex(req, "reasoning_effort", &e) && e) {
		effort = json_object_get_string(e);
		if (!json_object_is_type(e, json_type_string) ||
		    !in_list(effort, efforts, ARRAY_SIZE(efforts))) {
			apierr_bad_request(c->err, "reasoning_effort",
					   "reasoning_effort must be none, "
					   "minimal, low, medium or high");
			return -1;
		}
	}
	if (kind == THINK_NONE && (effort || include)) {
		log_debug(LOG_GROUP, "%s does not think: reasoning settings "
			  "dropped", model);
		return 0;
	}
	tc = json_object_new_object();
	if (effort)
		thinking_value(tc, model, kind, effort);
	if (include)
		json_object_object_add(tc, "includeThoughts",
				       json_object_new_boolean(1));
	if (json_object_object_length(tc) > 0)
		json_object_object_add(gc, "thinkingConfig", tc);
	else
		json_object_put(tc);
	return 0;
}

/* OpenAI numeric settings and their generationConfig names. */
static const struct {
	const char *openai, *gemini;
} number_params[] = {
	{ "temperature", "temperature" },
	{ "top_p", "topP" },
	{ "top_k", "topK" },
	{ "n", "candidateCount" },
	{ "seed", "seed" },
	{ "presence_penalty", "presencePenalty" },
	{ "frequency_penalty", "frequencyPenalty" },
	{ "max_tokens", "maxOutputTokens" },
	{ "max_completion_tokens", "maxOutputTokens" }, /* after: it wins */
};

static int generation_config(struct req_ctx *c, json_object *req,
			     json_object *body)
{
	json_object *gc = json_object_new_object(), *v;
	const char *name;

	for (size_t i = 0; i < ARRAY_SIZE(number_params); i++) {
		name = number_params[i].openai;
		if (!json_object_object_get_ex(req, name, &v) || !v)
			continue;
		if (!is_number(v)) {
			apierr_bad_request(c->err, name, "%s must be a number",
					   name);
			goto fail;
		}
		/* the client's own value object keeps its text (0.3 stays
		 * 0.3 instead of a 17-digit double) */
		json_object_object_add(gc, number_params[i].gemini,
				       json_object_get(v));
	}
	if (stop_sequences(c, req, gc) < 0 || response_format(c, req, gc) < 0 ||
	    thinking(c, req, gc) < 0)
		goto fail;
	if (json_object_object_length(gc) > 0)
		json_object_object_add(body, "generationConfig", gc);
	else
		json_object_put(gc);
	return 0;
fail:
	json_object_put(gc);
	return -1;
}

/* Request fields this adapter reads; anything else is dropped. */
static const char *const known_fields[] = {
	"model", "messages", "stream", "stream_options", "tools",
	"tool_choice", "stop", "response_format", "reasoning_effort",
	"include_reasoning",
};

static void log_dropped(json_object *req)
{
	bool known;

	if (!log_enabled(LOGL_DEBUG))
		return;
	json_object_object_foreach(req, k, v) {
		(void)v;
		known = in_list(k, known_fields, ARRAY_SIZE(known_fields));
		for (size_t i = 0; !known && i < ARRAY_SIZE(number_params); i++)
			known = strcmp(k, number_params[i].openai) == 0;
		if (!known)
			log_debug(LOG_GROUP, "dropping request field '%s': "
				  "Gemini has no equivalent", k);
	}
}

/* ---- request: URL, headers, body ---- */

static int endpoint_url(const struct adapter_call *call,
			struct upstream_req *out, struct api_error *err)
{
	const char *base = call->provider->base_url;
	const char *model = bare_model(call->upstream_model);
	size_t n;
	struct buf b;

	/* the model lands in the URL path: no '/', '?', '#', '%' or ':' */
	if (!*model || model[strspn(model, "abcdefghijklmnopqrstuvwxyz"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_")]) {
		apierr_bad_request(err, "model", "model name '%s' is not valid "
				   "for Gemini", model);
		return -1;
	}
	if (!base || !*base)
		base = DEFAULT_BASE;
	n = strlen(base);
	while (n > 0 && base[n - 1] == '/')
		n--;
	buf_init(&b, 0);
	buf_append(&b, base, n);
	buf_printf(&b, "/models/%s:%s", model, call->stream ?
		   "streamGenerateContent?alt=sse" : "generateContent");
	out->url = buf_steal(&b);
	return 0;
}

static int build_body(struct req_ctx *c, json_object *req, json_object *body)
{
	if (messages(c, req, body) < 0 || tools(c, req, body) < 0 ||
	    tool_choice(c, req, body) < 0 || generation_config(c, req, body) < 0)
		return -1;
	log_dropped(req);
	return 0;
}

static int gemini_build_request(const struct adapter_call *call,
				json_object *req, struct upstream_req *out,
				struct api_error *err)
{
	struct req_ctx c = { .call = call, .err = err };
	const char *key = call->provider->api_key, *s;
	json_object *body = json_object_new_object();
	size_t len;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	c.contents = json_object_new_array();
	c.call_names = json_object_new_object();
	if (endpoint_url(call, out, err) < 0 || build_body(&c, req, body) < 0)
		goto out;
	/* the key goes in a header, never in the URL: URLs reach logs */
	if (key && *key)
		upstream_req_add_header(out, "x-goog-api-key", key);
	upstream_req_add_header(out, "Content-Type", "application/json");
	upstream_req_add_header(out, "Accept", call->stream ?
				"text/event-stream" : "application/json");
	s = json_object_to_json_string_length(body, JSON_FLAGS, &len);
	out->body = xstrndup(s, len);
	out->body_len = len;
	rc = 0;
out:
	if (rc < 0)
		upstream_req_free(out);
	json_object_put(body);
	json_object_put(c.contents);
	json_object_put(c.sys_parts);
	json_object_put(c.call_names);
	return rc;
}

/* ---- responses: shared pieces ---- */

static json_object *map_usage(json_object *um)
{
	int64_t prompt = get_count(um, "promptTokenCount") +
			 get_count(um, "toolUsePromptTokenCount");
	int64_t thoughts = get_count(um, "thoughtsTokenCount");
	int64_t completion = get_count(um, "candidatesTokenCount") + thoughts;
	json_object *u = json_object_new_object(), *d;

	json_object_object_add(u, "prompt_tokens", json_object_new_int64(prompt));
	json_object_object_add(u, "completion_tokens",
			       json_object_new_int64(completion));
	json_object_object_add(u, "total_tokens", json_object_new_int64(
		get_type(um, "totalTokenCount", json_type_int) ?
		get_count(um, "totalTokenCount") : prompt + completion));
	d = json_object_new_object();
	json_object_object_add(d, "cached_tokens", json_object_new_int64(
		get_count(um, "cachedContentTokenCount")));
	json_object_object_add(u, "prompt_tokens_details", d);
	d = json_object_new_object();
	json_object_object_add(d, "reasoning_tokens",
			       json_object_new_int64(thoughts));
	json_object_object_add(u, "completion_tokens_details", d);
	return u;
}

static const char *const filter_reasons[] = {
	"SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT",
	"SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
	"MODEL_ARMOR",
};

/* Gemini finishReason -> OpenAI finish_reason, or NULL for a failure.
 * There is no TOOL_CALLS: a function call ends with STOP. A missing
 * reason on a complete (non-streamed) candidate counts as STOP. */
static const char *finish_reason(const char *r, bool called)
{
	if (!r || strcmp(r, "STOP") == 0)
		return called ? "tool_calls" : "stop";
	if (strcmp(r, "MAX_TOKENS") == 0)
		return "length";
	if (in_list(r, filter_reasons, ARRAY_SIZE(filter_reasons)))
		return "content_filter";
	return NULL;
}

static void finish_failed(const struct adapter_call *call, json_object *cand,
			  const char *reason, struct api_error *err)
{
	const char *msg = get_str(cand, "finishMessage");

	apierr_set(err, 502, "upstream_error", "upstream_generation_failed",
		   NULL, "Provider '%s' failed to generate (finishReason %s)%s%s",
		   call->provider->name, reason, msg ? ": " : "",
		   msg ? msg : "");
}

/* A functionCall part -> an OpenAI tool call (index < 0: none, as in a
 * non-streamed message). */
static json_object *tool_call(json_object *part, int index)
{
	json_object *fc = get_type(part, "functionCall", json_type_object);
	json_object *tc = json_object_new_object(), *fn, *args, *x, *g;
	const char *sig = get_str(part, "thoughtSignature");
	const char *name = get_str(fc, "name");

	if (index >= 0)
		json_object_object_add(tc, "index", json_object_new_int(index));
	json_object_object_add(tc, "id", new_id("call_"));
	json_object_object_add(tc, "type", json_object_new_string("function"));
	fn = json_object_new_object();
	json_object_object_add(fn, "name", json_object_new_string(name ? name : ""));
	args = get_type(fc, "args", json_type_object);
	json_object_object_add(fn, "arguments", json_object_new_string(
		args ? json_object_to_json_string_ext(args, JSON_FLAGS) : "{}"));
	json_object_object_add(tc, "function", fn);
	if (sig) {
		g = json_object_new_object();
		json_object_object_add(g, "thought_signature",
				       json_object_new_string(sig));
		x = json_object_new_object();
		json_object_object_add(x, "google", g);
		json_object_object_add(tc, "extra_content", x);
	}
	return tc;
}

static bool is_thought(json_object *part)
{
	json_object *t = get_type(part, "thought", json_type_boolean);

	return t && json_object_get_boolean(t);
}

static json_object *candidate_parts(json_object *cand)
{
	return get_type(get_type(cand, "content", json_type_object), "parts",
			json_type_array);
}

static int candidate_index(json_object *cand, size_t pos)
{
	json_object *i = get_type(cand, "index", json_type_int);

	/* proto3 JSON leaves out a zero index */
	return i ? json_object_get_int(i) : (int)pos;
}

/* Gemini's error object (possibly wrapped in an array, as its OpenAI
 * endpoint does) -> err via the shared status policy. */
static bool has_reason(json_object *e, const char *reason)
{
	json_object *d = get_type(e, "details", json_type_array);

	for (size_t i = 0; d && i < json_object_array_length(d); i++) {
		const char *r = get_str(json_object_array_get_idx(d, i),
					"reason");

		if (r && strcmp(r, reason) == 0)
			return true;
	}
	return false;
}

/* RetryInfo.retryDelay ("17s", "1.5s") -> whole seconds, rounded up. */
static bool retry_delay(json_object *e, char *out, size_t n)
{
	json_object *d = get_type(e, "details", json_type_array);
	const char *s = NULL, *p;
	int64_t secs = 0;

	for (size_t i = 0; d && !s && i < json_object_array_length(d); i++)
		s = get_str(json_object_array_get_idx(d, i), "retryDelay");
	if (!s || *s < '0' || *s > '9')
		return false;
	for (p = s; *p >= '0' && *p <= '9' && secs < 86400; p++)
		secs = secs * 10 + (*p - '0');
	if (*p == '.' && p[1] >= '1' && p[1] <= '9')
		secs++;
	snprintf(out, n, "%lld", (long long)secs);
	return true;
}

static void map_error_obj(const struct adapter_call *call, long status,
			  json_object *obj, const char *retry_after,
			  struct api_error *err)
{
	json_object *e;
	char delay[32];

	if (json_object_is_type(obj, json_type_array))
		obj = json_object_array_get_idx(obj, 0);
	e = get_type(obj, "error", json_type_object);
	if (status == 400 && has_reason(e, "API_KEY_INVALID"))
		status = 401; /* Google says 400; it is our key refused */
	if (!retry_after && retry_delay(e, delay, sizeof(delay)))
		retry_after = delay;
	adapter_map_status(call, status, get_str(e, "message"), retry_after,
			   err);
}

/* The HTTP-like code inside an error that came with a 200 (a body or a
 * stream event): what the status would have been. */
static long error_code(json_object *obj)
{
	int64_t code = get_count(get_type(obj, "error", json_type_object),
				 "code");

	return code >= 400 && code <= 599 ? (long)code : 502;
}

static json_object *new_envelope(const char *id, int64_t created,
				 const char *object, const char *model)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "object", json_object_new_string(object));
	json_object_object_add(o, "created", json_object_new_int64(created));
	json_object_object_add(o, "model", json_object_new_string(model));
	return o;
}

/* ---- non-streaming response ---- */

static json_object *message_of(json_object *parts, bool *called)
{
	json_object *m = json_object_new_object(), *calls, *p;
	struct buf text, thought;
	const char *s;

	buf_init(&text, 0);
	buf_init(&thought, 0);
	calls = json_object_new_array();
	for (size_t i = 0; parts && i < json_object_array_length(parts); i++) {
		p = json_object_array_get_idx(parts, i);
		s = get_str(p, "text");
		if (get_type(p, "functionCall", json_type_object))
			json_object_array_add(calls, tool_call(p, -1));
		else if (s)
			buf_appends(is_thought(p) ? &thought : &text, s);
		else
			log_debug(LOG_GROUP, "dropping a non-text output part");
	}
	*called = json_object_array_length(calls) > 0;
	json_object_object_add(m, "role", json_object_new_string("assistant"));
	/* tool calls alone: content null; nothing at all: "" */
	json_object_object_add(m, "content", text.len || !*called ?
		json_object_new_string_len(text.data ? text.data : "",
					   (int)text.len) : NULL);
	if (thought.len)
		json_object_object_add(m, "reasoning_content",
			json_object_new_string_len(thought.data, (int)thought.len));
	if (*called)
		json_object_object_add(m, "tool_calls", json_object_get(calls));
	json_object_put(calls);
	buf_free(&text);
	buf_free(&thought);
	return m;
}

static json_object *new_choice(int index, json_object *msg_or_delta,
			       const char *key, const char *finish)
{
	json_object *ch = json_object_new_object();

	json_object_object_add(ch, "index", json_object_new_int(index));
	json_object_object_add(ch, key, msg_or_delta);
	json_object_object_add(ch, "finish_reason",
			       finish ? json_object_new_string(finish) : NULL);
	return ch;
}

static int add_choice(const struct adapter_call *call, json_object *cand,
		      size_t pos, json_object *choices, struct api_error *err)
{
	const char *reason = get_str(cand, "finishReason"), *fin;
	bool called;
	json_object *msg = message_of(candidate_parts(cand), &called);

	fin = finish_reason(reason, called);
	if (!fin) {
		finish_failed(call, cand, reason, err);
		json_object_put(msg);
		return -1;
	}
	json_object_array_add(choices, new_choice(candidate_index(cand, pos),
						  msg, "message", fin));
	return 0;
}

/* No candidates: a prompt blocked before generation is a content_filter
 * answer (a 200, as OpenAI does); no candidates for no reason is not. */
static int blocked_choice(const struct adapter_call *call, json_object *obj,
			  json_object *choices, struct api_error *err)
{
	const char *block = get_str(get_type(obj, "promptFeedback",
					     json_type_object), "blockReason");
	json_object *msg;

	if (!block) {
		apierr_upstream(err, 502, "Provider '%s' returned no candidates",
				call->provider->name);
		return -1;
	}
	msg = json_object_new_object();
	json_object_object_add(msg, "role", json_object_new_string("assistant"));
	json_object_object_add(msg, "content", json_object_new_string(""));
	json_object_array_add(choices, new_choice(0, msg, "message",
						  "content_filter"));
	return 0;
}

static int gemini_parse_response(const struct adapter_call *call,
				 const char *body, size_t len,
				 json_object **out, struct api_error *err)
{
	json_object *obj = parse_object(body, len), *resp = NULL, *choices;
	json_object *cands;
	char id[16 + ID_LEN];
	int rc = ADAPTER_ERROR;

	*out = NULL;
	if (!obj) {
		apierr_upstream(err, 502, "Provider '%s' returned a response "
				"that is not a JSON object", call->provider->name);
		return ADAPTER_ERROR;
	}
	if (get_type(obj, "error", json_type_object)) {
		map_error_obj(call, error_code(obj), obj, NULL, err);
		goto out;
	}
	make_id(id, sizeof(id), "chatcmpl-");
	resp = new_envelope(id, (int64_t)time(NULL), "chat.completion",
			    call->client_model);
	choices = json_object_new_array();
	json_object_object_add(resp, "choices", choices);
	cands = get_type(obj, "candidates", json_type_array);
	if (!cands || json_object_array_length(cands) == 0) {
		if (blocked_choice(call, obj, choices, err) < 0)
			goto out;
	}
	for (size_t i = 0; cands && i < json_object_array_length(cands); i++)
		if (add_choice(call, json_object_array_get_idx(cands, i), i,
			       choices, err) < 0)
			goto out;
	json_object_object_add(resp, "usage", map_usage(
		get_type(obj, "usageMetadata", json_type_object)));
	*out = resp;
	resp = NULL;
	rc = 0;
out:
	json_object_put(resp);
	json_object_put(obj);
	return rc;
}

/* ---- streaming ---- */

struct gemini_cand {
	bool seen;      /* the role chunk went out */
	bool finished;  /* a finishReason arrived */
	bool called;    /* a functionCall arrived */
	int next_tool;  /* OpenAI tool-call index, across all events */
};

struct gemini_stream {
	const struct adapter_call *call;
	char id[16 + ID_LEN];
	int64_t created;
	json_object *usage_meta; /* the last usageMetadata (cumulative) */
	struct gemini_cand cand[MAX_CANDIDATES];
};

/* A run of parts of one kind becomes one delta. */
enum run_kind { RUN_NONE, RUN_TEXT, RUN_THOUGHT, RUN_CALLS };

struct run {
	enum run_kind kind;
	struct buf text;
	json_object *calls;
};

static void *gemini_stream_new(const struct adapter_call *call)
{
	struct gemini_stream *st = xcalloc(1, sizeof(*st));

	st->call = call;
	make_id(st->id, sizeof(st->id), "chatcmpl-");
	st->created = (int64_t)time(NULL);
	return st;
}

static int client_gone(struct api_error *err)
{
	apierr_set(err, 499, "client_closed", NULL, NULL,
		   "client closed the connection");
	return ADAPTER_ERROR;
}

/* Emit one chunk; choice NULL gives the usage chunk. Takes choice. */
static int emit_chunk(struct gemini_stream *st, const struct adapter_emit *emit,
		      json_object *choice, struct api_error *err)
{
	json_object *chunk = new_envelope(st->id, st->created,
		"chat.completion.chunk", st->call->client_model);
	json_object *choices = json_object_new_array();
	int rc;

	if (choice)
		json_object_array_add(choices, choice);
	json_object_object_add(chunk, "choices", choices);
	/* usage: null everywhere but the last chunk; the pipeline strips
	 * it when the client did not ask for usage */
	json_object_object_add(chunk, "usage", choice ? NULL :
			       map_usage(st->usage_meta));
	rc = emit->chunk(emit->ud, chunk);
	json_object_put(chunk);
	return rc ? client_gone(err) : ADAPTER_MORE;
}

static int emit_delta(struct gemini_stream *st, const struct adapter_emit *emit,
		      int index, json_object *delta, const char *finish,
		      struct api_error *err)
{
	return emit_chunk(st, emit, new_choice(index, delta, "delta", finish),
			  err);
}

static int flush_run(struct gemini_stream *st, const struct adapter_emit *emit,
		     int index, struct run *r, struct api_error *err)
{
	json_object *delta;
	enum run_kind kind = r->kind;

	r->kind = RUN_NONE;
	if (kind == RUN_NONE || (kind != RUN_CALLS && r->text.len == 0))
		return ADAPTER_MORE;
	delta = json_object_new_object();
	if (kind == RUN_CALLS) {
		json_object_object_add(delta, "tool_calls", r->calls);
		r->calls = NULL;
	} else {
		json_object_object_add(delta, kind == RUN_TEXT ? "content" :
				       "reasoning_content",
				       json_object_new_string_len(r->text.data,
								  (int)r->text.len));
		buf_reset(&r->text);
	}
	return emit_delta(st, emit, index, delta, NULL, err);
}

/* Add one part to the run, flushing the run first when its kind changes. */
static int run_part(struct gemini_stream *st, const struct adapter_emit *emit,
		    int index, struct run *r, json_object *part,
		    struct api_error *err)
{
	struct gemini_cand *cs = &st->cand[index];
	const char *s = get_str(part, "text");
	enum run_kind kind;

	if (get_type(part, "functionCall", json_type_object))
		kind = RUN_CALLS;
	else if (s)
		kind = is_thought(part) ? RUN_THOUGHT : RUN_TEXT;
	else
		return ADAPTER_MORE; /* images, code: nothing to say */
	if (kind != r->kind && flush_run(st, emit, index, r, err) != ADAPTER_MORE)
		return ADAPTER_ERROR;
	r->kind = kind;
	if (kind != RUN_CALLS) {
		buf_appends(&r->text, s);
		return ADAPTER_MORE;
	}
	/* indices count across events: parallel calls in separate events
	 * must not collapse onto index 0 */
	if (!r->calls)
		r->calls = json_object_new_array();
	json_object_array_add(r->calls, tool_call(part, cs->next_tool++));
	cs->called = true;
	return ADAPTER_MORE;
}

static int stream_parts(struct gemini_stream *st, const struct adapter_emit *emit,
			int index, json_object *parts, struct api_error *err)
{
	struct run r = { .kind = RUN_NONE };
	int rc = ADAPTER_MORE;

	buf_init(&r.text, 0);
	for (size_t i = 0; parts && i < json_object_array_length(parts) &&
	     rc == ADAPTER_MORE; i++)
		rc = run_part(st, emit, index, &r, json_object_array_get_idx(
			parts, i), err);
	if (rc == ADAPTER_MORE)
		rc = flush_run(st, emit, index, &r, err);
	json_object_put(r.calls);
	buf_free(&r.text);
	return rc;
}

static int role_chunk(struct gemini_stream *st, const struct adapter_emit *emit,
		      int index, struct api_error *err)
{
	json_object *delta;

	if (st->cand[index].seen)
		return ADAPTER_MORE;
	st->cand[index].seen = true;
	delta = json_object_new_object();
	json_object_object_add(delta, "role", json_object_new_string("assistant"));
	json_object_object_add(delta, "content", json_object_new_string(""));
	return emit_delta(st, emit, index, delta, NULL, err);
}

static int stream_candidate(struct gemini_stream *st,
			    const struct adapter_emit *emit, json_object *cand,
			    size_t pos, struct api_error *err)
{
	int index = candidate_index(cand, pos);
	const char *reason = get_str(cand, "finishReason"), *fin;

	if (index < 0 || index >= MAX_CANDIDATES) {
		apierr_upstream(err, 502, "Provider '%s' sent candidate index %d",
				st->call->provider->name, index);
		return ADAPTER_ERROR;
	}
	if (role_chunk(st, emit, index, err) != ADAPTER_MORE ||
	    stream_parts(st, emit, index, candidate_parts(cand), err) !=
	    ADAPTER_MORE)
		return ADAPTER_ERROR;
	if (!reason)
		return ADAPTER_MORE;
	fin = finish_reason(reason, st->cand[index].called);
	if (!fin) {
		finish_failed(st->call, cand, reason, err);
		return ADAPTER_ERROR;
	}
	st->cand[index].finished = true;
	return emit_delta(st, emit, index, json_object_new_object(), fin, err);
}

static int stream_blocked(struct gemini_stream *st,
			  const struct adapter_emit *emit, json_object *obj,
			  struct api_error *err)
{
	json_object *pf = get_type(obj, "promptFeedback", json_type_object);

	if (!get_str(pf, "blockReason") || st->cand[0].finished)
		return ADAPTER_MORE; /* e.g. a usage-only event */
	if (role_chunk(st, emit, 0, err) != ADAPTER_MORE)
		return ADAPTER_ERROR;
	st->cand[0].finished = true;
	return emit_delta(st, emit, 0, json_object_new_object(),
			  "content_filter", err);
}

static int gemini_stream_event(void *state, const struct sse_event *ev,
			       const struct adapter_emit *emit,
			       struct api_error *err)
{
	struct gemini_stream *st = state;
	json_object *obj = parse_object(ev->data, ev->data_len), *cands, *um;
	int rc = ADAPTER_MORE;

	if (!obj) {
		apierr_upstream(err, 502, "Provider '%s' sent a stream event "
				"that is not a JSON object",
				st->call->provider->name);
		return ADAPTER_ERROR;
	}
	if (get_type(obj, "error", json_type_object)) {
		map_error_obj(st->call, error_code(obj), obj, NULL, err);
		json_object_put(obj);
		return ADAPTER_ERROR;
	}
	um = get_type(obj, "usageMetadata", json_type_object);
	if (um) { /* cumulative: the last one is the total */
		json_object_put(st->usage_meta);
		st->usage_meta = json_object_get(um);
	}
	cands = get_type(obj, "candidates", json_type_array);
	if (!cands || json_object_array_length(cands) == 0)
		rc = stream_blocked(st, emit, obj, err);
	for (size_t i = 0; cands && i < json_object_array_length(cands) &&
	     rc == ADAPTER_MORE; i++)
		rc = stream_candidate(st, emit, json_object_array_get_idx(
			cands, i), i, err);
	json_object_put(obj);
	return rc;
}

/* Gemini has no [DONE]: the body simply ends. The stream is whole when
 * every candidate that appeared was given a finishReason. */
static int gemini_stream_finish(void *state, const struct adapter_emit *emit,
				struct api_error *err)
{
	struct gemini_stream *st = state;
	bool any = false, whole = true;

	for (int i = 0; i < MAX_CANDIDATES; i++) {
		any |= st->cand[i].seen;
		if (st->cand[i].seen && !st->cand[i].finished)
			whole = false;
	}
	whole = whole && any;
	/* usage even for a cut-short stream: those tokens were spent */
	if ((whole || st->usage_meta) &&
	    emit_chunk(st, emit, NULL, err) != ADAPTER_MORE)
		return ADAPTER_ERROR;
	if (whole)
		return ADAPTER_DONE;
	apierr_upstream(err, 502, "Provider '%s' ended the stream before it "
			"was complete", st->call->provider->name);
	return ADAPTER_ERROR;
}

static void gemini_stream_free(void *state)
{
	struct gemini_stream *st = state;

	if (!st)
		return;
	json_object_put(st->usage_meta);
	free(st);
}

static void gemini_map_error(const struct adapter_call *call, long status,
			     const char *body, size_t len,
			     const char *retry_after, struct api_error *err)
{
	json_object *obj = body && len ? parse_text(body, len) : NULL;

	map_error_obj(call, status, obj, retry_after, err);
	json_object_put(obj);
}

const struct adapter adapter_gemini = {
	.name = "gemini",
	.build_request = gemini_build_request,
	.parse_response = gemini_parse_response,
	.stream_new = gemini_stream_new,
	.stream_event = gemini_stream_event,
	.stream_finish = gemini_stream_finish,
	.stream_free = gemini_stream_free,
	.map_error = gemini_map_error,
};
