/* SPDX-License-Identifier: MIT */
/*
 * ws_proto: parsing and framing of /v1/ws messages; see ws_proto.h. Keeps
 * every byte of the original's framing for id-less requests, because
 * existing clients match on those exact strings.
 */
#include <string.h>
#include <time.h>

#include "buf.h"
#include "jsonguard.h"
#include "util.h"
#include "ws_proto.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define MAX_DEPTH 128

static int bad(struct api_error *err, const char *param, const char *msg)
{
	apierr_set(err, 400, "invalid_request_error", "invalid_message", param,
		   "%s", msg);
	return -1;
}

static void take_id(struct ws_msg *m, json_object *id)
{
	const char *s;
	size_t n;

	if (!id || !(json_object_is_type(id, json_type_string) ||
		     json_object_is_type(id, json_type_int)))
		return;
	s = json_object_to_json_string_length(id, JSON_FLAGS, &n);
	if (n <= WS_ID_MAX)
		memcpy(m->id, s, n + 1);
}

static int parse_chat(struct ws_msg *m, bool have_key, struct api_error *err)
{
	json_object *v;

	if (json_object_object_get_ex(m->root, "api_key", &v) && v) {
		if (!json_object_is_type(v, json_type_string))
			return bad(err, "api_key", "'api_key' must be a string");
		m->api_key = json_object_get_string(v);
		if (!*m->api_key)
			m->api_key = NULL;
	}
	if (!json_object_object_get_ex(m->root, "payload", &m->payload) ||
	    !m->payload)
		return bad(err, "payload", "Missing required fields: payload");
	if (!json_object_is_type(m->payload, json_type_object))
		return bad(err, "payload", "'payload' must be an object");
	if (!json_object_object_get_ex(m->payload, "model", &v) || !v)
		return bad(err, "payload.model",
			   "Missing required fields: payload.model");
	if (!m->api_key && !have_key)
		return bad(err, "api_key", "Missing required fields: api_key "
			   "(or authenticate the socket first)");
	m->stream = true;
	if (json_object_object_get_ex(m->payload, "stream", &v) &&
	    json_object_is_type(v, json_type_boolean))
		m->stream = json_object_get_boolean(v);
	return 0;
}

int ws_proto_parse(const char *text, size_t len, bool have_key,
		   struct ws_msg *m, struct api_error *err)
{
	struct json_tokener *tok = json_tokener_new_ex(MAX_DEPTH);
	json_object *t, *id;
	struct buf fixed;
	const char *type;

	memset(m, 0, sizeof(*m));
	if (jsonguard_check(text, len, MAX_DEPTH, err) < 0) {
		json_tokener_free(tok);
		if (!err->code)
			err->code = "invalid_message";
		return -1;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
				    JSON_TOKENER_VALIDATE_UTF8);
	buf_init(&fixed, 0);
	(void)jsonguard_unmangle(&text, &len, &fixed);
	m->root = json_tokener_parse_ex(tok, text, (int)len);
	if (m->root && json_tokener_get_parse_end(tok) != len)
		json_object_put(m->root), m->root = NULL;
	json_tokener_free(tok);
	buf_free(&fixed);
	if (!m->root)
		return bad(err, NULL, "Message is not valid JSON");
	if (!json_object_is_type(m->root, json_type_object))
		return bad(err, NULL, "Message must be a JSON object");
	if (json_object_object_get_ex(m->root, "id", &id) && id) {
		take_id(m, id);
		if (!m->id[0])
			return bad(err, "id", "'id' must be a string or an "
				   "integer of at most 128 characters");
	}
	if (!json_object_object_get_ex(m->root, "type", &t) ||
	    !json_object_is_type(t, json_type_string))
		return bad(err, "type", "Missing required fields: type");
	type = json_object_get_string(t);
	if (!strcmp(type, "chat")) {
		m->type = WS_MSG_CHAT;
		return parse_chat(m, have_key, err);
	}
	if (!strcmp(type, "auth")) {
		m->type = WS_MSG_AUTH;
		if (!json_object_object_get_ex(m->root, "api_key", &t) ||
		    !json_object_is_type(t, json_type_string))
			return bad(err, "api_key", "Missing required fields: "
				   "api_key");
		m->api_key = json_object_get_string(t);
		return 0;
	}
	if (!strcmp(type, "cancel")) {
		m->type = WS_MSG_CANCEL;
		if (!m->id[0])
			return bad(err, "id", "'cancel' needs the id of the "
				   "request to cancel");
		return 0;
	}
	if (!strcmp(type, "ping")) {
		m->type = WS_MSG_PING;
		return 0;
	}
	return bad(err, "type", "Unknown message type (chat, auth, cancel, "
		   "ping)");
}

void ws_msg_free(struct ws_msg *m)
{
	json_object_put(m->root);
	memset(m, 0, sizeof(*m));
}

char *ws_proto_request_body(const struct ws_msg *m, size_t *len)
{
	const char *s;
	json_object *v = NULL;

	/* a stream that is not a boolean stays as it is, for the pipeline
	 * to refuse with param "stream" as it does over HTTP */
	if (!json_object_object_get_ex(m->payload, "stream", &v) || !v ||
	    json_object_is_type(v, json_type_boolean))
		json_object_object_add(m->payload, "stream",
				       json_object_new_boolean(m->stream));
	s = json_object_to_json_string_length(m->payload, JSON_FLAGS, len);
	return xstrndup(s, *len);
}

static void envelope_start(struct buf *out, const char *type, const char *id)
{
	buf_printf(out, "{\"type\":\"%s\"", type);
	if (id && *id)
		buf_printf(out, ",\"id\":%s", id);
}

void ws_proto_chunk(struct buf *out, const char *id, const char *chunk,
		    size_t len)
{
	if (!id || !*id) {
		buf_appends(out, "data: ");
		buf_append(out, chunk, len);
		buf_appends(out, "\n\n");
		return;
	}
	envelope_start(out, "chunk", id);
	buf_appends(out, ",\"data\":");
	buf_append(out, chunk, len);
	buf_appends(out, "}");
}

void ws_proto_done(struct buf *out, const char *id, const char *usage_json)
{
	if (!id || !*id) {
		buf_appends(out, "data: [DONE]\n\n");
		return;
	}
	envelope_start(out, "done", id);
	buf_printf(out, ",\"usage\":%s}", usage_json ? usage_json : "null");
}

/* {"error":{...}} without the outer braces' closing, for adding fields. */
static void error_object(struct buf *out, const struct api_error *err)
{
	struct buf tmp;

	buf_init(&tmp, 0);
	apierr_to_json(err, &tmp);
	/* tmp is {"error":{...}}: copy the inner object */
	if (tmp.len > 11)
		buf_append(out, tmp.data + 9, tmp.len - 10);
	buf_free(&tmp);
}

void ws_proto_request_error(struct buf *out, const char *id,
			    const struct api_error *err, const char **second)
{
	*second = NULL;
	if (!id || !*id) {
		buf_appends(out, "data: ");
		apierr_to_json(err, out);
		buf_appends(out, "\n\n");
		*second = "data: [DONE]\n\n";
		return;
	}
	envelope_start(out, "error", id);
	buf_appends(out, ",\"error\":");
	error_object(out, err);
	buf_appends(out, "}");
}

void ws_proto_completion(struct buf *out, const char *id, const char *body,
			 size_t len)
{
	envelope_start(out, "completion", id);
	buf_appends(out, ",\"data\":");
	buf_append(out, body, len);
	buf_appends(out, "}");
}

void ws_proto_cancelled(struct buf *out, const char *id)
{
	envelope_start(out, "cancelled", id);
	buf_appends(out, "}");
}

void ws_proto_error(struct buf *out, const char *id,
		    const struct api_error *err)
{
	char ts[40];
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	envelope_start(out, "error", id);
	buf_appends(out, ",\"error\":");
	error_object(out, err);
	/* reopen the error object to add the original's timestamp */
	out->len--;
	out->data[out->len] = '\0';
	buf_printf(out, ",\"timestamp\":\"%s.%03ldZ\"}}", ts,
		   now.tv_nsec / 1000000);
}

void ws_proto_pong(struct buf *out, const char *id)
{
	envelope_start(out, "pong", id);
	buf_appends(out, "}");
}

void ws_proto_auth_ok(struct buf *out)
{
	buf_appends(out, "{\"type\":\"auth\",\"ok\":true}");
}
