/* SPDX-License-Identifier: MIT */
/*
 * request: see request.h. Both paths read one table of field rules, so
 * the text path cannot drift from the json-c checks: a value's type on
 * the text is the json_type json-c would give it.
 */
#include "request.h"

#include <string.h>

#include "util.h"

/* Top-level members of a request the text path takes; more go the
 * json-c way. */
#define TEXT_MAX_MEMBERS 64

struct field_rule {
	const char *name;
	json_type t1, t2;
	const char *what;
};

static const struct field_rule field_rules[] = {
	{ "stream", json_type_boolean, json_type_boolean, "a boolean" },
	{ "stream_options", json_type_object, json_type_object, "an object" },
	{ "max_tokens", json_type_int, json_type_int, "an integer" },
	{ "max_completion_tokens", json_type_int, json_type_int, "an integer" },
	{ "temperature", json_type_double, json_type_double, "a number" },
	{ "top_p", json_type_double, json_type_double, "a number" },
	{ "n", json_type_int, json_type_int, "an integer" },
	{ "presence_penalty", json_type_double, json_type_double, "a number" },
	{ "frequency_penalty", json_type_double, json_type_double, "a number" },
	{ "seed", json_type_int, json_type_int, "an integer" },
	{ "stop", json_type_string, json_type_array, "a string or an array" },
	{ "tools", json_type_array, json_type_array, "an array" },
	{ "tool_choice", json_type_string, json_type_object,
	  "a string or an object" },
	{ "response_format", json_type_object, json_type_object, "an object" },
	{ "user", json_type_string, json_type_string, "a string" },
	{ "logit_bias", json_type_object, json_type_object, "an object" },
	{ "logprobs", json_type_boolean, json_type_boolean, "a boolean" },
	{ "top_logprobs", json_type_int, json_type_int, "an integer" },
	{ "parallel_tool_calls", json_type_boolean, json_type_boolean,
	  "a boolean" },
	{ "functions", json_type_array, json_type_array, "an array" },
	{ "function_call", json_type_string, json_type_object,
	  "a string or an object" },
	{ "service_tier", json_type_string, json_type_string, "a string" },
	{ "store", json_type_boolean, json_type_boolean, "a boolean" },
	{ "metadata", json_type_object, json_type_object, "an object" },
	{ "modalities", json_type_array, json_type_array, "an array" },
	{ "audio", json_type_object, json_type_object, "an object" },
	{ "prediction", json_type_object, json_type_object, "an object" },
	{ "reasoning_effort", json_type_string, json_type_string, "a string" },
	{ "web_search_options", json_type_object, json_type_object,
	  "an object" },
	{ "verbosity", json_type_string, json_type_string, "a string" },
	{ "safety_identifier", json_type_string, json_type_string,
	  "a string" },
	{ "prompt_cache_key", json_type_string, json_type_string, "a string" },
};

/* Fields of one message: each absent, null or of these types. */
static const struct field_rule message_rules[] = {
	{ "content", json_type_string, json_type_array,
	  "a string or an array of content parts" },
	{ "name", json_type_string, json_type_string, "a string" },
	{ "tool_calls", json_type_array, json_type_array, "an array" },
	{ "tool_call_id", json_type_string, json_type_string, "a string" },
	{ "reasoning_content", json_type_string, json_type_string,
	  "a string" },
};

/* Counts that must be at least 1: a 0 or negative budget would only come
 * back from the provider as a less helpful 400. */
static const char *const positive_fields[] = { "max_tokens",
	"max_completion_tokens", "n" };

/* A value of type t where want1 or want2 is expected: null is fine (as
 * absent), and an integer is a number. */
static bool type_ok(json_type t, json_type want1, json_type want2)
{
	if (t == json_type_null)
		return true;
	if (want1 == json_type_double && t == json_type_int)
		return true;
	return t == want1 || t == want2;
}

/* The index of the rule for key[0..n) in rules[0..count), or count. */
static size_t rule_index(const struct field_rule *rules, size_t count,
			 const char *key, size_t n)
{
	for (size_t i = 0; i < count; i++)
		if (n > 0 && rules[i].name[0] == key[0] &&
		    strncmp(rules[i].name, key, n) == 0 &&
		    rules[i].name[n] == '\0')
			return i;
	return count;
}

/* ---- on json-c objects ---- */

/* The first of rules[0..n) that obj breaks, or NULL. One pass over obj's
 * members (a request has a handful) instead of a hash lookup for each of
 * the rules (dozens); the rule listed first still wins. */
static const struct field_rule *broken_rule(json_object *obj,
					    const struct field_rule *rules,
					    size_t n)
{
	size_t first = n;

	json_object_object_foreach(obj, key, v) {
		size_t i = rule_index(rules, first, key, strlen(key));

		if (i < first && !type_ok(json_object_get_type(v),
					  rules[i].t1, rules[i].t2))
			first = i;
	}
	return first < n ? &rules[first] : NULL;
}

static int validate_messages(json_object *msgs, struct api_error *err)
{
	const struct field_rule *f;
	size_t n;

	if (!json_object_is_type(msgs, json_type_array)) {
		apierr_bad_request(err, "messages", "'messages' must be an "
				   "array of message objects");
		return -1;
	}
	n = json_object_array_length(msgs);
	if (n == 0) {
		apierr_bad_request(err, "messages", "'messages' must not be "
				   "empty");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(msgs, i), *role;

		if (!json_object_is_type(m, json_type_object) ||
		    !json_object_object_get_ex(m, "role", &role) ||
		    !json_object_is_type(role, json_type_string)) {
			apierr_bad_request(err, "messages", "'messages[%zu]' "
					   "must be an object with a string "
					   "'role'", i);
			return -1;
		}
		f = broken_rule(m, message_rules, ARRAY_SIZE(message_rules));
		if (f) {
			apierr_bad_request(err, "messages", "'messages[%zu].%s' "
					   "must be %s", i, f->name, f->what);
			return -1;
		}
	}
	return 0;
}

int request_validate(json_object *req, struct api_error *err)
{
	const struct field_rule *f;
	json_object *v, *u;

	if (!json_object_object_get_ex(req, "model", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    json_object_get_string_len(v) == 0) {
		apierr_bad_request(err, "model", "'model' is required and must "
				   "be a non-empty string such as "
				   "\"provider/model\"");
		return -1;
	}
	if (!json_object_object_get_ex(req, "messages", &v)) {
		apierr_bad_request(err, "messages", "'messages' is required");
		return -1;
	}
	if (validate_messages(v, err) < 0)
		return -1;
	f = broken_rule(req, field_rules, ARRAY_SIZE(field_rules));
	if (f) {
		apierr_bad_request(err, f->name, "'%s' must be %s", f->name,
				   f->what);
		return -1;
	}
	if (json_object_object_get_ex(req, "stream_options", &v) && v &&
	    json_object_object_get_ex(v, "include_usage", &u) &&
	    !type_ok(json_object_get_type(u), json_type_boolean,
		     json_type_boolean)) {
		apierr_bad_request(err, "stream_options.include_usage",
				   "'stream_options.include_usage' must be a "
				   "boolean");
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(positive_fields); i++) {
		if (json_object_object_get_ex(req, positive_fields[i], &v) &&
		    json_object_is_type(v, json_type_int) &&
		    json_object_get_int64(v) < 1) {
			apierr_bad_request(err, positive_fields[i], "'%s' must "
					   "be at least 1", positive_fields[i]);
			return -1;
		}
	}
	return 0;
}

/* ---- on the text ---- */

/* The json_type json-c gives a checked value: a number is an int unless
 * it has a fraction or an exponent (jspan_check refuses the integers
 * json-c would not keep as they are). */
static json_type span_type(struct jspan v)
{
	switch (v.p[0]) {
	case '{':
		return json_type_object;
	case '[':
		return json_type_array;
	case '"':
		return json_type_string;
	case 't':
	case 'f':
		return json_type_boolean;
	case 'n':
		return json_type_null;
	default:
		return memchr(v.p, '.', v.n) || memchr(v.p, 'e', v.n) ||
		       memchr(v.p, 'E', v.n) ? json_type_double
					     : json_type_int;
	}
}

/* false when rules[0..n) name key and val is not of its type */
static bool rule_ok(const struct field_rule *rules, size_t n,
		    struct jspan key, struct jspan val)
{
	size_t i = rule_index(rules, n, key.p, key.n);

	return i == n || type_ok(span_type(val), rules[i].t1, rules[i].t2);
}

/* true when every member of obj (an object) that rules[0..n) name is of
 * its type */
static bool text_rules_ok(struct jspan obj, const struct field_rule *rules,
			  size_t n)
{
	struct jspan_iter it;
	struct jspan key, val;

	jspan_iter_init(&it, obj);
	while (jspan_next_member(&it, &key, &val, NULL))
		if (!rule_ok(rules, n, key, val))
			return false;
	return true;
}

static bool text_messages_ok(struct jspan msgs)
{
	struct jspan_iter it;
	struct jspan m, role;
	size_t n = 0;

	if (!jspan_is_array(msgs))
		return false;
	jspan_iter_init(&it, msgs);
	while (jspan_next_elem(&it, &m)) {
		if (!jspan_is_object(m) || !jspan_get(m, "role", &role) ||
		    !jspan_is_string(role) ||
		    !text_rules_ok(m, message_rules, ARRAY_SIZE(message_rules)))
			return false;
		n++;
	}
	return n > 0;
}

/* The members the gateway reads or edits, each at most once. */
static bool text_take(struct jspan *slot, struct jspan val)
{
	if (slot->p)
		return false;
	*slot = val;
	return true;
}

bool request_text_check(const char *text, size_t len,
			struct request_text *out)
{
	struct jspan_member top[TEXT_MAX_MEMBERS];
	struct jspan stream = { NULL, 0 }, opts = { NULL, 0 }, usage;
	size_t n_top;
	int64_t i64;

	memset(out, 0, sizeof(*out));
	if (!jspan_check_object(text, len, REQUEST_MAX_DEPTH, top,
				ARRAY_SIZE(top), &n_top))
		return false;
	out->object = jspan_trim(text, len);
	for (size_t i = 0; i < n_top; i++) {
		struct jspan key = top[i].key, val = top[i].val;
		bool ok = true;

		if (jspan_eq(key, "model"))
			ok = text_take(&out->model, val);
		else if (jspan_eq(key, "messages"))
			ok = text_take(&out->messages, val);
		else if (jspan_eq(key, "stream"))
			ok = text_take(&stream, val);
		else if (jspan_eq(key, "stream_options"))
			ok = text_take(&opts, val);
		if (!ok || !rule_ok(field_rules, ARRAY_SIZE(field_rules), key,
				    val))
			return false;
		for (size_t k = 0; k < ARRAY_SIZE(positive_fields); k++)
			if (jspan_eq(key, positive_fields[k]) &&
			    jspan_int64(val, &i64) && i64 < 1)
				return false;
	}
	if (!out->model.p || !jspan_is_string(out->model) ||
	    out->model.n <= 2 || !jspan_string_plain(out->model) ||
	    !out->messages.p || !text_messages_ok(out->messages))
		return false;
	out->stream = stream.p && stream.p[0] == 't';
	/* "stream_options": null on a stream is replaced, not added to */
	if (out->stream && opts.p && !jspan_is_object(opts))
		return false;
	if (jspan_is_object(opts)) {
		out->stream_options = true;
		if (jspan_get(opts, "include_usage", &usage)) {
			if (!type_ok(span_type(usage), json_type_boolean,
				     json_type_boolean))
				return false;
			out->include_usage = usage.p[0] == 't';
		}
	}
	/* a stream whose options do not ask for usage needs them changed:
	 * the json-c way does that */
	return !out->stream || !out->stream_options || out->include_usage;
}

void request_text_rewrite(const struct request_text *rt, const char *model,
			  struct buf *out, struct jspan *messages)
{
	static const char usage_on[] = ",\"stream_options\":"
				       "{\"include_usage\":true}";
	const char *obj = rt->object.p, *end = obj + rt->object.n;
	const char *after = rt->model.p + rt->model.n;
	size_t msg_off = (size_t)(rt->messages.p - obj);

	buf_reset(out);
	buf_append(out, obj, (size_t)(rt->model.p - obj));
	buf_append_json_str(out, model, strlen(model));
	if (rt->messages.p > rt->model.p)
		msg_off = msg_off - rt->model.n +
			  (out->len - (size_t)(rt->model.p - obj));
	if (rt->stream && !rt->stream_options) {
		/* before the closing brace; the object has members */
		buf_append(out, after, (size_t)(end - 1 - after));
		buf_append(out, usage_on, sizeof(usage_on) - 1);
		buf_append(out, "}", 1);
	} else {
		buf_append(out, after, (size_t)(end - after));
	}
	messages->p = out->data + msg_off;
	messages->n = rt->messages.n;
}
