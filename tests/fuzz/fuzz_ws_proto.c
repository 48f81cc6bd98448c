/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ws_proto: the /v1/ws message parser and the framing of every
 * server message built from what it parsed. Input: byte 0 bit 0 says
 * whether the socket is already authenticated; the rest is one text
 * message. Every envelope that carries the client's id must be one JSON
 * text (the id is spliced in as JSON), and the request body handed to the
 * pipeline must be a JSON object with "stream" set.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "ws_proto.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_init();
	return 0;
}

/* out must hold one JSON object; empties it. */
static void check_json(struct buf *out)
{
	json_object *o = fz_parse_all(out->data ? out->data : "", out->len);

	if (!json_object_is_type(o, json_type_object))
		abort();
	json_object_put(o);
	buf_reset(out);
}

/* out must be "data: <one JSON text>\n\n"; empties it. */
static void check_sse(struct buf *out)
{
	json_object *o;

	if (out->len < 8 || memcmp(out->data, "data: ", 6) != 0 ||
	    memcmp(out->data + out->len - 2, "\n\n", 2) != 0)
		abort();
	if (out->len == 14 && memcmp(out->data, "data: [DONE]\n\n", 14) == 0) {
		buf_reset(out);
		return;
	}
	o = fz_parse_all(out->data + 6, out->len - 8);
	if (!o)
		abort();
	json_object_put(o);
	buf_reset(out);
}

static void check(struct buf *out, const char *id)
{
	if (*id)
		check_json(out);
	else
		check_sse(out);
}

static void server_messages(const char *id)
{
	static const char chunk[] = "{\"object\":\"chat.completion.chunk\"}";
	struct api_error err;
	struct buf out;
	const char *second;

	buf_init(&out, 0);
	apierr_set(&err, 502, "upstream_error", NULL, NULL, "x \"%s\"", id);
	ws_proto_chunk(&out, id, chunk, sizeof(chunk) - 1);
	check(&out, id);
	ws_proto_done(&out, id, NULL);
	check(&out, id);
	ws_proto_done(&out, id, "{\"total_tokens\":3}");
	check(&out, id);
	ws_proto_request_error(&out, id, &err, &second);
	check(&out, id);
	if (second && strcmp(second, "data: [DONE]\n\n") != 0)
		abort();
	ws_proto_error(&out, id, &err);
	check_json(&out);
	ws_proto_pong(&out, id);
	check_json(&out);
	if (*id) {
		ws_proto_completion(&out, id, chunk, sizeof(chunk) - 1);
		check_json(&out);
		ws_proto_cancelled(&out, id);
		check_json(&out);
	}
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_msg m;
	struct api_error err = { 0 };
	json_object *o, *v;
	char *body;
	size_t len;

	if (size < 1 || size > (1u << 20))
		return 0;
	if (ws_proto_parse((const char *)data + 1, size - 1, data[0] & 1, &m,
			   &err) < 0) {
		if (err.status != 400)
			abort();
		fz_check_error(&err);
		if (strlen(m.id) > WS_ID_MAX)
			abort();
		server_messages(m.id);
		ws_msg_free(&m);
		return 0;
	}
	if (strlen(m.id) > WS_ID_MAX)
		abort();
	switch (m.type) {
	case WS_MSG_CHAT:
		if (!m.payload || (!m.api_key && !(data[0] & 1)))
			abort();
		body = ws_proto_request_body(&m, &len);
		o = fz_parse_all(body, len);
		if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, "stream", &v) ||
		    json_object_get_boolean(v) != m.stream)
			abort();
		json_object_put(o);
		free(body);
		break;
	case WS_MSG_AUTH:
		if (!m.api_key)
			abort();
		break;
	case WS_MSG_CANCEL:
		if (!m.id[0])
			abort();
		break;
	case WS_MSG_PING:
		break;
	default:
		abort();
	}
	server_messages(m.id);
	ws_msg_free(&m);
	return 0;
}
