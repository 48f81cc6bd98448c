/* SPDX-License-Identifier: MIT */
/*
 * accounting: admission, local token counts and usage records; see
 * accounting.h.
 */
#include "accounting.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "jsonguard.h"
#include "keys.h"
#include "request.h"
#include "router.h"
#include "buf.h"
#include "usage.h"
#include "util.h"

static struct limiter *limiter_g;  /* set before threads start */
static struct usage_store *usage_g;

void acct_set_services(struct limiter *l, struct usage_store *u)
{
	limiter_g = l;
	usage_g = u;
}

void acct_init(struct acct *a)
{
	memset(a, 0, sizeof(*a));
}

/* Append s to out (size bytes, *len used), cutting it short to stay
 * NUL-terminated. */
static void append_trunc(char *out, size_t size, size_t *len, const char *s)
{
	size_t n = strlen(s);

	if (n > size - 1 - *len)
		n = size - 1 - *len;
	memcpy(out + *len, s, n);
	*len += n;
	out[*len] = '\0';
}

/* "provider/model" for the allow-list, whichever way the client named it
 * (a bare model goes to the default provider). */
static void canonical_model(struct acct *a, const struct route *route,
			    const char *client_model)
{
	const char *name = route->provider->name;
	size_t n = strlen(name), len = 0;

	/* by hand, not snprintf: this runs for every request; the result
	 * is truncated to a->model as snprintf would */
	if (!(strncmp(client_model, name, n) == 0 && client_model[n] == '/')) {
		append_trunc(a->model, sizeof(a->model), &len, name);
		append_trunc(a->model, sizeof(a->model), &len, "/");
	}
	append_trunc(a->model, sizeof(a->model), &len, client_model);
}

static int64_t output_budget(json_object *req, const struct route *route)
{
	static const char *const names[] = { "max_completion_tokens",
					     "max_tokens" };
	json_object *v;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (json_object_object_get_ex(req, names[i], &v) &&
		    json_object_is_type(v, json_type_int))
			return json_object_get_int64(v);
	if (route->model && route->model->max_tokens > 0)
		return route->model->max_tokens;
	return ACCT_DEFAULT_COMPLETION_TOKENS;
}

/* Cost of t at the model's prices (per million tokens); 0 if unpriced. */
static double cost_of(const struct route *route, const struct acct_tokens *t)
{
	const struct model_cfg *m = route ? route->model : NULL;
	int64_t cached, uncached;

	if (!m || !m->priced)
		return 0;
	cached = t->cached < t->prompt ? t->cached : t->prompt;
	uncached = t->prompt - cached;
	return ((double)uncached * m->price_prompt +
		(double)cached * m->price_cached +
		(double)t->completion * m->price_completion) / 1e6;
}

static void limit_error(const struct limit_status *st, struct api_error *err)
{
	static const char *const what[] = {
		[LIMIT_RPM] = "requests per minute",
		[LIMIT_TPM] = "tokens per minute",
	};

	if (st->verdict == LIMIT_BUDGET)
		apierr_set(err, 429, "insufficient_quota", "insufficient_quota",
			   NULL, "This key has used its budget for the "
			   "period; it renews in %u s", st->retry_after_s);
	else
		apierr_set(err, 429, "requests", "rate_limit_exceeded", NULL,
			   "Rate limit reached for this key: %s; try again "
			   "in %u s", what[st->verdict], st->retry_after_s);
	snprintf(err->retry_after, sizeof(err->retry_after), "%u",
		 st->retry_after_s);
}

/* The local count of the prompt's messages into a->est_prompt (0 when
 * the model has no known encoding). */
static void count_prompt(struct acct *a, json_object *msgs)
{
	a->est_prompt = a->enc ? tok_count_messages(a->enc, msgs) : -1;
	if (a->est_prompt < 0)
		a->est_prompt = 0;
}

bool acct_counts_prompt_first(const struct key_entry *key)
{
	const struct key_def *def = key ? key->def : NULL;

	return def && limiter_g &&
	       (def->limits.rpm || def->limits.tpm ||
		def->limits.period != LIMIT_PERIOD_NONE);
}

/* What admission does whatever the request: the key's model allow-list,
 * and the encoding the local counts use. */
static int admit_model(struct acct *a, const struct key_entry *key,
		       const struct route *route, const char *client_model,
		       struct api_error *err)
{
	a->key = key;
	a->route = route;
	canonical_model(a, route, client_model);
	if (key && !keys_model_allowed(key, a->model)) {
		apierr_set(err, 403, "invalid_request_error",
			   "model_not_allowed", "model", "This key may not use "
			   "the model '%s'", a->model);
		return -1;
	}
	a->enc = tok_for_model(client_model);
	tok_stream_init(&a->completion, a->enc);
	a->has_limits = acct_counts_prompt_first(key);
	return 0;
}

int acct_admit(struct acct *a, const struct key_entry *key,
	       const struct route *route, const char *client_model,
	       json_object *req, struct api_error *err)
{
	json_object *msgs = NULL;
	struct acct_tokens est = { 0 };

	if (admit_model(a, key, route, client_model, err) < 0)
		return -1;
	json_object_object_get_ex(req, "messages", &msgs);
	if (!a->has_limits) {
		/* nothing to admit against: the prompt is counted when the
		 * request is settled: for a stream, at its end */
		a->prompt_msgs = json_object_get(msgs);
		return 0;
	}
	count_prompt(a, msgs);
	est.prompt = a->est_prompt;
	est.completion = output_budget(req, route);
	if (limiter_admit(limiter_g, key->def->name, &key->def->limits,
			  (uint64_t)(est.prompt + est.completion),
			  cost_of(route, &est), (int64_t)time(NULL), &a->ticket,
			  &a->limits) != LIMIT_OK) {
		limit_error(&a->limits, err);
		return -1;
	}
	a->admitted = true;
	return 0;
}

int acct_admit_text(struct acct *a, const struct key_entry *key,
		    const struct route *route, const char *client_model,
		    struct jspan messages, struct api_error *err)
{
	if (admit_model(a, key, route, client_model, err) < 0)
		return -1;
	a->prompt_text = messages;
	return 0;
}

/* The prompt of acct_admit_text(), parsed now that it is counted. */
static void count_prompt_text(struct acct *a)
{
	json_tokener *tok = json_tokener_new_ex(REQUEST_MAX_DEPTH);
	json_object *msgs = tok ? jsonguard_parse(tok, a->prompt_text.p,
						   a->prompt_text.n) : NULL;

	count_prompt(a, msgs);
	json_object_put(msgs);
	if (tok)
		json_tokener_free(tok);
}

static void feed_str(struct acct *a, json_object *o, const char *name)
{
	json_object *v;

	if (json_object_object_get_ex(o, name, &v) &&
	    json_object_is_type(v, json_type_string))
		tok_stream_feed(&a->completion, json_object_get_string(v),
				(size_t)json_object_get_string_len(v));
}

/* The generated text of a delta or message: content, reasoning and tool
 * call names and arguments. */
static void feed_message(struct acct *a, json_object *m)
{
	json_object *calls, *fn;

	if (!m)
		return;
	feed_str(a, m, "content");
	feed_str(a, m, "reasoning_content");
	if (!json_object_object_get_ex(m, "tool_calls", &calls) ||
	    !json_object_is_type(calls, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(calls); i++)
		if (json_object_object_get_ex(json_object_array_get_idx(calls,
					      i), "function", &fn)) {
			feed_str(a, fn, "name");
			feed_str(a, fn, "arguments");
		}
}

static void feed_choices(struct acct *a, json_object *obj, const char *part)
{
	json_object *choices, *m;

	if (!a->enc || !json_object_object_get_ex(obj, "choices", &choices) ||
	    !json_object_is_type(choices, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(choices); i++)
		if (json_object_object_get_ex(json_object_array_get_idx(choices,
					      i), part, &m))
			feed_message(a, m);
}

void acct_chunk(struct acct *a, json_object *chunk)
{
	feed_choices(a, chunk, "delta");
}

void acct_response(struct acct *a, json_object *resp)
{
	json_object_put(a->answer);
	a->answer = json_object_get(resp);
}

/* feed_str() and the rest again, reading text instead of objects; what
 * json-c would skip (a member of the wrong type, or none) is skipped the
 * same. Each object's members are found in one pass. */
static void feed_str_text(struct acct *a, struct jspan v)
{
	struct buf b;

	if (!jspan_is_string(v))
		return;
	if (jspan_string_plain(v)) {
		tok_stream_feed(&a->completion, v.p + 1, v.n - 2);
		return;
	}
	buf_init(&b, 0);
	jspan_string(v, &b);
	tok_stream_feed(&a->completion, b.data ? b.data : "", b.len);
	buf_free(&b);
}

static void feed_message_text(struct acct *a, struct jspan m)
{
	static const char *const message_keys[] = { "content",
		"reasoning_content", "tool_calls" };
	static const char *const function_keys[] = { "name", "arguments" };
	struct jspan v[3], call, fn, f[2];
	struct jspan_iter it;

	jspan_get_members(m, message_keys, v, 3);
	feed_str_text(a, v[0]);
	feed_str_text(a, v[1]);
	if (!jspan_is_array(v[2]))
		return;
	jspan_iter_init(&it, v[2]);
	while (jspan_next_elem(&it, &call))
		if (jspan_get(call, "function", &fn)) {
			jspan_get_members(fn, function_keys, f, 2);
			feed_str_text(a, f[0]);
			feed_str_text(a, f[1]);
		}
}

static void feed_choices_text(struct acct *a, struct jspan choices,
			      const char *part)
{
	struct jspan choice, m;
	struct jspan_iter it;

	if (!a->enc || !jspan_is_array(choices))
		return;
	jspan_iter_init(&it, choices);
	while (jspan_next_elem(&it, &choice))
		if (jspan_get(choice, part, &m))
			feed_message_text(a, m);
}

void acct_chunk_text(struct acct *a, struct jspan choices)
{
	feed_choices_text(a, choices, "delta");
}

void acct_response_text(struct acct *a, struct jspan choices)
{
	a->answer_choices = choices;
}

/* The local counts left for the end: the prompt of a key without
 * limits, a complete answer, and what a stream's count still holds. */
static void count_locally(struct acct *a)
{
	if (a->prompt_msgs)
		count_prompt(a, a->prompt_msgs);
	else if (a->prompt_text.n)
		count_prompt_text(a);
	if (a->answer)
		feed_choices(a, a->answer, "message");
	if (a->answer_choices.n)
		feed_choices_text(a, a->answer_choices, "message");
	a->local_completion += (int64_t)tok_stream_finish(&a->completion);
}

void acct_finish(struct acct *a, const struct acct_tokens *reported,
		 bool answered, bool ok, bool want_local,
		 struct acct_tokens *recorded)
{
	struct acct_tokens t = { 0 };
	struct usage_rec rec;

	if (!reported || want_local)
		count_locally(a);
	json_object_put(a->prompt_msgs);
	a->prompt_msgs = NULL;
	a->prompt_text.n = 0;
	json_object_put(a->answer);
	a->answer = NULL;
	a->answer_choices.n = 0;
	if (reported) {
		t = *reported;
	} else if (a->route && answered) {
		/* no usage from the provider (a cut-short stream, or one that
		 * never reports it): what was sent is what counts */
		t.prompt = a->est_prompt;
		t.completion = a->local_completion;
	}
	if (a->admitted && limiter_g)
		limiter_settle(limiter_g, &a->ticket,
			       (uint64_t)(t.prompt + t.completion),
			       cost_of(a->route, &t), (int64_t)time(NULL));
	if (usage_g && a->key && a->route) {
		memset(&rec, 0, sizeof(rec));
		rec.key = keys_name(a->key);
		rec.provider = a->route->provider->name;
		rec.model = a->model + strlen(rec.provider) + 1;
		rec.error = !ok;
		rec.prompt_tokens = (uint64_t)t.prompt;
		rec.completion_tokens = (uint64_t)t.completion;
		rec.reasoning_tokens = (uint64_t)t.reasoning;
		rec.cached_tokens = (uint64_t)t.cached;
		rec.cost = cost_of(a->route, &t);
		usage_record(usage_g, &rec, time(NULL));
	}
	if (recorded)
		*recorded = t;
}

void acct_free(struct acct *a)
{
	json_object_put(a->prompt_msgs);
	a->prompt_msgs = NULL;
	json_object_put(a->answer);
	a->answer = NULL;
	tok_stream_free(&a->completion);
}

/* "2026-11-30" (start of that UTC day; with end, the start of the next)
 * or unix seconds. 0, or -1 when s is neither. */
static int parse_when(const char *s, bool end, time_t *out)
{
	struct tm tm;
	const char *rest;
	int64_t secs;

	if (parse_i64(s, 0, INT64_MAX / 2, &secs) == 0) {
		*out = (time_t)secs;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	rest = strptime(s, "%Y-%m-%d", &tm);
	if (!rest || *rest)
		return -1;
	*out = timegm(&tm) + (end ? 86400 : 0);
	return 0;
}

int acct_usage_report(const struct key_entry *key,
		      const struct acct_usage_args *args, struct buf *out,
		      struct api_error *err)
{
	struct usage_query q = { 0 };
	char msg[256];

	if (!key || !key->def || !key->def->admin) {
		apierr_set(err, 403, "invalid_request_error", "admin_required",
			   NULL, "Usage statistics need a key with admin: "
			   "true");
		return -1;
	}
	if (!usage_g) {
		apierr_set(err, 503, "server_error", "usage_unavailable", NULL,
			   "Usage statistics are not being kept");
		return -1;
	}
	if (args->from && parse_when(args->from, false, &q.from) < 0) {
		apierr_bad_request(err, "from", "'from' must be a date "
				   "(YYYY-MM-DD) or unix seconds");
		return -1;
	}
	if (args->to && parse_when(args->to, true, &q.to) < 0) {
		apierr_bad_request(err, "to", "'to' must be a date "
				   "(YYYY-MM-DD) or unix seconds");
		return -1;
	}
	q.key = args->key;
	q.model = args->model;
	q.group_by = args->group_by;
	if (usage_query_json(usage_g, &q, out, msg, sizeof(msg)) < 0) {
		apierr_bad_request(err, "group_by", "%s", msg);
		return -1;
	}
	return 0;
}
