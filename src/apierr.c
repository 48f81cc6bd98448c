/* SPDX-License-Identifier: MIT */
/* apierr: OpenAI-shaped errors; see apierr.h. */
#include "apierr.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void apierr_set(struct api_error *err, int status, const char *type,
		const char *code, const char *param, const char *fmt, ...)
{
	va_list ap;

	err->status = status;
	err->type = type;
	err->code = code;
	err->param = param;
	err->retry_after[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

static int append_opt(struct buf *out, const char *name, const char *v)
{
	if (buf_printf(out, ",\"%s\":", name) < 0)
		return -1;
	if (!v)
		return buf_appends(out, "null");
	return buf_append_json_str(out, v, strlen(v));
}

int apierr_to_json(const struct api_error *err, struct buf *out)
{
	const char *type = err->type ? err->type : "server_error";

	if (buf_appends(out, "{\"error\":{\"message\":") < 0 ||
	    buf_append_json_str(out, err->message, strlen(err->message)) < 0 ||
	    append_opt(out, "type", type) < 0 ||
	    append_opt(out, "param", err->param) < 0 ||
	    append_opt(out, "code", err->code) < 0)
		return -1;
	return buf_appends(out, "}}");
}
