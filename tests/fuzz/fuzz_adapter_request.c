/* SPDX-License-Identifier: MIT */
/*
 * fuzz_adapter_request: an adapter's build_request, built once per adapter
 * (FUZZ_ADAPTER="openai" -> fuzz_openai_request, "gemini" ->
 * fuzz_gemini_request). Input: a client's request body. It is parsed as
 * the pipeline parses it (strict JSON, UTF-8 checked, depth 128) and must
 * be an object; nothing more is validated, because an operator's
 * param_config (update/rename/delete) can reshape any top-level field
 * after validation, so an adapter must cope with any object. Model and
 * stream are prepared as the pipeline does. The built request must carry
 * a URL and a body that is one JSON text; a refusal must be a 4xx/5xx.
 */
#include <stdio.h>
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

static json_object *parse_body(const uint8_t *data, size_t size)
{
	json_tokener *tok = json_tokener_new_ex(128);
	json_object *obj;
	size_t end;

	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
			       JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	end = (size_t)json_tokener_get_parse_end(tok);
	if (obj && json_tokener_get_error(tok) == json_tokener_success) {
		while (end < size && strchr(" \n\r\t", data[end]) && data[end])
			end++;
	}
	if (!obj || json_tokener_get_error(tok) != json_tokener_success ||
	    end != size || !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct adapter *a = adapter_find(FUZZ_ADAPTER);
	struct provider_cfg prov;
	struct adapter_call call;
	struct upstream_req out;
	struct api_error err = { 0 };
	json_object *req, *v, *check;
	char model[256] = "fuzz-model", client[300] = "fuzz/fuzz-model";

	if (!a)
		abort();
	if (size == 0 || size > (1u << 20))
		return 0;
	req = parse_body(data, size);
	if (!req)
		return 0;
	fz_call(&call, &prov, FUZZ_ADAPTER);
	/* "provider/model" -> the model part goes upstream (router.c) */
	if (json_object_object_get_ex(req, "model", &v) &&
	    json_object_is_type(v, json_type_string)) {
		const char *s = json_object_get_string(v), *slash = strchr(s, '/');
		const char *m = slash ? slash + 1 : s;

		if (*m && strlen(m) < sizeof(model)) {
			strcpy(model, m);
			snprintf(client, sizeof(client), "fuzz/%s", model);
		}
	}
	call.upstream_model = model;
	call.client_model = client;
	call.stream = json_object_object_get_ex(req, "stream", &v) &&
		      json_object_get_boolean(v);
	json_object_object_add(req, "model", json_object_new_string(model));
	if (a->build_request(&call, req, &out, &err) == 0) {
		if (!out.url || !out.body || strlen(out.body) != out.body_len)
			abort();
		check = fz_parse_all(out.body, out.body_len);
		if (!check)
			abort(); /* the provider would get broken JSON */
		json_object_put(check);
		upstream_req_free(&out);
	} else {
		fz_check_error(&err);
	}
	json_object_put(req);
	return 0;
}
