/* SPDX-License-Identifier: MIT */
/*
 * accounting: what a request may spend and what it did spend. Before the
 * upstream call: the key's model allow-list and its limits, by reserving
 * an estimate (prompt tokens counted locally + the output budget). While
 * a stream runs: completion tokens counted incrementally from the deltas,
 * never by holding the answer. At the end: the reservation settled
 * against the real usage (the provider's when it reported any, else the
 * local count), the usage statistics and the metrics updated.
 *
 * The limiter and usage store are process-wide and outlive config
 * snapshots; main hands them over with acct_set_services() before the
 * fronts start and takes them back after the fronts stopped.
 */
#ifndef LB_ACCOUNTING_H
#define LB_ACCOUNTING_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "apierr.h"
#include "jsonspan.h"
#include "limiter.h"
#include "tokenizer.h"

struct key_entry;
struct route;
struct limiter;
struct usage_store;

/* The default output budget reserved when neither the request nor the
 * model's config gives max_tokens. */
#define ACCT_DEFAULT_COMPLETION_TOKENS 4096

void acct_set_services(struct limiter *l, struct usage_store *u);

/* Token counts of one request. */
struct acct_tokens {
	int64_t prompt, completion, reasoning, cached;
};

struct acct {
	const struct key_entry *key;
	const struct route *route;        /* NULL before routing */
	char model[320];                  /* "provider/model" */
	const struct tok_encoding *enc;
	bool admitted;
	struct limit_ticket ticket;
	struct limit_status limits;       /* for x-ratelimit-* headers */
	bool has_limits;
	int64_t est_prompt;               /* local count of the prompt: at
					   * admission with limits, else at
					   * acct_finish() */
	json_object *prompt_msgs;         /* counted at acct_finish (a ref) */
	struct jspan prompt_text;         /* or the same as text (borrowed),
					   * parsed only if counted */
	struct tok_stream completion;     /* local count of the answer */
	int64_t local_completion;         /* final after acct_finish() */
	/* a complete answer, counted at acct_finish() only when the count
	 * is wanted: its choices as text (pointing into the caller's
	 * buffer) or parsed (a ref) */
	struct jspan answer_choices;
	json_object *answer;
};

void acct_init(struct acct *a);
/* Check the key may use route's model, then admit req against the key's
 * limits. 0, or -1 with err set: 403 model_not_allowed, or 429 with
 * Retry-After (rate_limit_exceeded or insufficient_quota). A key with
 * limits needs the prompt counted now; for any other the count waits for
 * acct_finish() (the end of a stream, not its first token), holding a reference to req's
 * messages until then. */
int acct_admit(struct acct *a, const struct key_entry *key,
	       const struct route *route, const char *client_model,
	       json_object *req, struct api_error *err);
/* true when admitting a request with key counts its prompt at once (the
 * key has limits), which needs the request parsed: acct_admit(). */
bool acct_counts_prompt_first(const struct key_entry *key);
/* acct_admit() for a request read as text, by a key for which
 * acct_counts_prompt_first() is false: messages (the request's
 * "messages" array, a checked text that must outlive a) is parsed and
 * counted at acct_finish(), and only when the count is wanted. */
int acct_admit_text(struct acct *a, const struct key_entry *key,
		    const struct route *route, const char *client_model,
		    struct jspan messages, struct api_error *err);
/* Count the generated text of one OpenAI chunk (streams): now, since a
 * stream cut short is charged by this count. */
void acct_chunk(struct acct *a, json_object *chunk);
/* Keep a complete OpenAI response for counting at acct_finish() (takes a
 * reference). */
void acct_response(struct acct *a, json_object *resp);
/* The same two from the text of the "choices" value (n == 0: absent) of
 * a chunk or response that passed jspan_check(); a response's text must
 * stay in place until acct_finish(). */
void acct_chunk_text(struct acct *a, struct jspan choices);
void acct_response_text(struct acct *a, struct jspan choices);
/*
 * The request is over: settle the reservation and record usage. reported
 * is the provider's usage or NULL; answered says the provider sent a 2xx
 * answer (without one, and without reported usage, nothing was spent);
 * ok says whether the client got a complete answer. *recorded receives
 * what was accounted: the provider's numbers when known, else the local
 * counts. The local counts (est_prompt, local_completion) are made when
 * they are recorded or want_local asks for them (the audit line shows
 * them); otherwise a prompt and a complete answer go uncounted, which
 * is most of a short request's CPU. Call once; then acct_free().
 */
void acct_finish(struct acct *a, const struct acct_tokens *reported,
		 bool answered, bool ok, bool want_local,
		 struct acct_tokens *recorded);
void acct_free(struct acct *a);

/* Query parameters of GET /v1/usage, as strings (NULL when absent). */
struct acct_usage_args {
	const char *key, *model, *from, *to, *group_by;
};

/* GET /v1/usage for a caller holding key (already authenticated): 403
 * unless it is an admin key, 400 for a bad date or group_by, 503 when
 * usage statistics are not kept. 0 with the JSON in out, or -1 with
 * err. Dates are YYYY-MM-DD (UTC; "to" inclusive) or unix seconds. */
int acct_usage_report(const struct key_entry *key,
		      const struct acct_usage_args *args, struct buf *out,
		      struct api_error *err);

#endif
