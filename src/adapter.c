/* SPDX-License-Identifier: MIT */
/*
 * adapter: the registry of provider dialects, and what all of them share:
 * the upstream request container and the upstream-status policy.
 */
#include "adapter.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "util.h"

static const struct adapter *const adapters[] = {
	&adapter_openai,
	&adapter_gemini,
};

const struct adapter *adapter_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(adapters); i++)
		if (strcmp(adapters[i]->name, name) == 0)
			return adapters[i];
	return NULL;
}

void upstream_req_free(struct upstream_req *r)
{
	free(r->url);
	for (size_t i = 0; i < r->n_headers; i++) {
		/* header lines may hold a provider key: wipe before free */
		explicit_bzero(r->headers[i], strlen(r->headers[i]));
		free(r->headers[i]);
	}
	free(r->body);
	memset(r, 0, sizeof(*r));
}

int upstream_req_add_header(struct upstream_req *r, const char *name,
			    const char *value)
{
	size_t n = strlen(name), v = strlen(value);
	char *line;

	if (r->n_headers >= UPSTREAM_MAX_HEADERS)
		return -1;
	/* "Name: value" by hand: a printf per header showed in profiles */
	line = xmalloc(n + 2 + v + 1);
	stpcpy(stpcpy(stpcpy(line, name), ": "), value);
	r->headers[r->n_headers++] = line;
	return 0;
}

void adapter_map_status(const struct adapter_call *call, long status,
			const char *message, const char *retry_after,
			struct api_error *err)
{
	const char *pname = call->provider->name;
	const char *msg = message && *message ? message : NULL;

	switch (status) {
	case 400:
	case 413:
	case 422:
		apierr_set(err, status == 413 ? 413 : 400,
			   "invalid_request_error", NULL, NULL, "%s",
			   msg ? msg : "The provider rejected the request");
		break;
	case 401:
	case 403:
		apierr_set(err, 502, "upstream_error", "upstream_auth_failed",
			   NULL,
			   "Provider '%s' refused the gateway's API key "
			   "(HTTP %ld); the gateway operator must fix the "
			   "provider key", pname, status);
		break;
	case 404:
		apierr_set(err, 404, "invalid_request_error", "model_not_found",
			   "model", "%s",
			   msg ? msg : "The provider does not know this model");
		break;
	case 408:
		apierr_set(err, 504, "upstream_error", "upstream_timeout", NULL,
			   "Provider '%s' timed out", pname);
		break;
	case 429:
		apierr_set(err, 429, "rate_limit_error", "rate_limit_exceeded",
			   NULL, "Provider '%s' is rate limiting: %s", pname,
			   msg ? msg : "too many requests");
		if (retry_after)
			snprintf(err->retry_after, sizeof(err->retry_after),
				 "%s", retry_after);
		break;
	default:
		apierr_set(err, 502, "upstream_error", "upstream_error", NULL,
			   "Provider '%s' failed (HTTP %ld)%s%s", pname, status,
			   msg ? ": " : "", msg ? msg : "");
	}
}
