/* SPDX-License-Identifier: MIT */
/*
 * apierr: the one error shape every client sees, OpenAI's
 * {"error":{"message","type","param","code"}} with an HTTP status.
 * Every layer fills a struct api_error; only the fronts serialise it.
 */
#ifndef LB_APIERR_H
#define LB_APIERR_H

#include "buf.h"

struct api_error {
	int status;          /* HTTP status for the client; 0 = no error */
	const char *type;    /* static string: invalid_request_error, ... */
	const char *code;    /* static string or NULL */
	const char *param;   /* static string or NULL */
	char message[512];
	char retry_after[32]; /* "" or the seconds to echo in Retry-After */
};

/* Fill err. type/code/param must be static strings (or NULL). */
void apierr_set(struct api_error *err, int status, const char *type,
		const char *code, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* Shorthands for the common classes. */
#define apierr_bad_request(e, param, ...) \
	apierr_set((e), 400, "invalid_request_error", NULL, (param), __VA_ARGS__)
#define apierr_upstream(e, status, ...) \
	apierr_set((e), (status), "upstream_error", NULL, NULL, __VA_ARGS__)

/* Append the JSON object {"error":{...}} to out. */
int apierr_to_json(const struct api_error *err, struct buf *out);

#endif
