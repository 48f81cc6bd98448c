/* SPDX-License-Identifier: MIT */
/*
 * fuzz_adapter_response: an adapter's parse_response and map_error, built
 * once per adapter (FUZZ_ADAPTER; fuzz_openai_response,
 * fuzz_gemini_response). Input: byte 0 picks the upstream status (a 200
 * goes to parse_response, anything else to map_error), whether a
 * Retry-After header came and whether there was a body; the rest is the
 * provider's body. A translated answer must be a chat.completion object
 * that carries the client's model; an error must be a 4xx/5xx.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

#ifndef FUZZ_ADAPTER
#error "build with -DFUZZ_ADAPTER=\"name\""
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[16] = { 200, 200, 200, 200, 400, 401, 403,
		404, 408, 413, 422, 429, 500, 502, 503, 504 };
	const struct adapter *a = adapter_find(FUZZ_ADAPTER);
	struct provider_cfg prov;
	struct adapter_call call;
	struct api_error err = { 0 };
	json_object *out = NULL, *v;
	const char *body, *s;
	long status;
	size_t len;

	if (!a)
		abort();
	if (size < 1 || size > (1u << 20))
		return 0;
	fz_call(&call, &prov, FUZZ_ADAPTER);
	status = statuses[data[0] & 15];
	body = (const char *)data + 1;
	len = size - 1;
	if (status == 200) {
		if (a->parse_response(&call, body, len, &out, &err) == 0) {
			if (!json_object_is_type(out, json_type_object) ||
			    !json_object_object_get_ex(out, "model", &v) ||
			    strcmp(json_object_get_string(v),
				   call.client_model) != 0)
				abort();
			s = json_object_to_json_string_length(out,
				JSON_C_TO_STRING_PLAIN |
				JSON_C_TO_STRING_NOSLASHESCAPE, &len);
			if (!s || strlen(s) != len)
				abort();
			json_object_put(out);
		} else {
			if (out)
				abort(); /* an error leaves *out NULL */
			fz_check_error(&err);
		}
		return 0;
	}
	if (data[0] & 0x20) {
		body = NULL;
		len = 0;
	}
	a->map_error(&call, status, body, len, (data[0] & 0x10) ? "7" : NULL,
		     &err);
	fz_check_error(&err);
	return 0;
}
