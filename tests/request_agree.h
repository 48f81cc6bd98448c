/* SPDX-License-Identifier: MIT */
/*
 * request_agree: the promise of the request text path (src/request.h),
 * checked on one text, for the unit suite and the fuzzer alike. When
 * request_text_check() takes a text that jsonguard let through, json-c
 * must read the same text as a request that request_validate() accepts,
 * with the same model, stream and include_usage; and the rewritten text
 * must be the json-c way's request: the new model, usage on for a
 * stream, every other member the same value, the messages span exactly
 * the "messages" array.
 */
#ifndef LB_TEST_REQUEST_AGREE_H
#define LB_TEST_REQUEST_AGREE_H

#include <stdbool.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "jsonguard.h"
#include "request.h"

static json_object *agree_parse(const char *s, size_t n)
{
	json_tokener *tok = json_tokener_new_ex(REQUEST_MAX_DEPTH);
	struct buf fixed;
	json_object *o;

	buf_init(&fixed, 0);
	(void)jsonguard_unmangle(&s, &n, &fixed);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
			       JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, s, (int)n);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	buf_free(&fixed);
	return o;
}

static bool agree_bool(json_object *o, const char *name)
{
	json_object *v;

	return json_object_object_get_ex(o, name, &v) &&
	       json_object_get_boolean(v);
}

/* NULL when the text path keeps its promise on text[0..n), else what
 * broke it. */
static const char *request_agree(const char *text, size_t n)
{
	static const char up_model[] = "up/\"model\"";
	struct api_error err = { 0 };
	struct request_text rt;
	struct jspan msgs;
	json_object *req = NULL, *out = NULL, *v, *w, *opts;
	const char *broken = NULL;
	struct buf b;

	buf_init(&b, 0);
	if (jsonguard_check(text, n, REQUEST_MAX_DEPTH, &err) < 0 ||
	    !request_text_check(text, n, &rt))
		goto out;
	req = agree_parse(text, n);
	if (!req || !json_object_is_type(req, json_type_object)) {
		broken = "taken, but json-c cannot read it as an object";
		goto out;
	}
	if (request_validate(req, &err) < 0) {
		broken = "taken, but request_validate() refuses it";
		goto out;
	}
	json_object_object_get_ex(req, "model", &v);
	if (strlen(json_object_get_string(v)) != rt.model.n - 2 ||
	    memcmp(json_object_get_string(v), rt.model.p + 1,
		   rt.model.n - 2) != 0) {
		broken = "another model than json-c's";
		goto out;
	}
	if (rt.stream != agree_bool(req, "stream")) {
		broken = "another stream flag than json-c's";
		goto out;
	}
	if (rt.stream && json_object_object_get_ex(req, "stream_options",
						   &opts) && opts &&
	    !agree_bool(opts, "include_usage")) {
		broken = "a stream without usage taken as text";
		goto out;
	}
	request_text_rewrite(&rt, up_model, &b, &msgs);
	out = agree_parse(b.data, b.len);
	if (!out) {
		broken = "the rewritten text is no JSON";
		goto out;
	}
	/* a repeated key is read differently by different parsers */
	if (jsonguard_check(b.data, b.len, REQUEST_MAX_DEPTH, &err) < 0) {
		broken = "the rewritten text fails jsonguard (a repeated key?)";
		goto out;
	}
	json_object_object_get_ex(out, "model", &v);
	if (strcmp(json_object_get_string(v), up_model) != 0) {
		broken = "the rewritten model is not the upstream one";
		goto out;
	}
	if (rt.stream && (!json_object_object_get_ex(out, "stream_options",
						     &opts) ||
			  !agree_bool(opts, "include_usage"))) {
		broken = "a rewritten stream without usage";
		goto out;
	}
	if (json_object_object_length(out) !=
	    json_object_object_length(req) + (rt.stream &&
					       !rt.stream_options ? 1 : 0)) {
		broken = "members added or lost on the way";
		goto out;
	}
	json_object_object_foreach(req, key, val) {
		if (!strcmp(key, "model") || (rt.stream &&
					      !strcmp(key, "stream_options")))
			continue;
		if (!json_object_object_get_ex(out, key, &w) ||
		    !json_object_equal(val, w)) {
			broken = "a member changed on the way";
			goto out;
		}
	}
	json_object_put(out);
	out = agree_parse(msgs.p, msgs.n);
	json_object_object_get_ex(req, "messages", &v);
	if (!out || !json_object_equal(out, v))
		broken = "the messages span is not the messages";
out:
	json_object_put(req);
	json_object_put(out);
	buf_free(&b);
	return broken;
}

#endif
