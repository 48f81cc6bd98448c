/* SPDX-License-Identifier: MIT */
/* fuzz_common: see fuzz_common.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "log.h"

void fz_init(void)
{
	const char *lvl = getenv("FUZZ_LOG");
	int l = log_level_parse(lvl);

	log_set_level(l >= 0 ? (enum log_level)l : LOGL_ERROR);
}

int fz_memfile(const void *data, size_t n, char *path, size_t pathlen)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	const char *p = data;

	if (fd < 0) {
		perror("memfd_create");
		abort();
	}
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w <= 0) {
			perror("write");
			abort();
		}
		p += w;
		n -= (size_t)w;
	}
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

void fz_call(struct adapter_call *call, struct provider_cfg *prov,
	     const char *adapter)
{
	memset(prov, 0, sizeof(*prov));
	prov->name = (char *)"fuzz";
	prov->adapter = (char *)adapter;
	prov->base_url = (char *)"https://api.example.test/v1";
	prov->api_key = (char *)"sk-fuzz";
	memset(call, 0, sizeof(*call));
	call->provider = prov;
	call->upstream_model = "fuzz-model";
	call->client_model = "fuzz/fuzz-model";
	call->fetch = fz_fetch;
}

int fz_fetch(void *ud, const char *url, struct buf *data, char *mime,
	     size_t mimelen, struct api_error *err)
{
	(void)ud;
	if (strstr(url, "fail")) {
		apierr_bad_request(err, "messages", "cannot fetch %.100s", url);
		return -1;
	}
	buf_appends(data, url);
	if (!strstr(url, "nomime"))
		snprintf(mime, mimelen, "image/png");
	return 0;
}

int fz_emit_chunk(void *ud, json_object *chunk)
{
	struct fz_emit *e = ud;
	size_t len;
	const char *s = json_object_to_json_string_length(chunk,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
			&len);

	if (e->stop_after && e->chunks >= e->stop_after)
		abort(); /* emitted after the client went away */
	if (!s || strlen(s) != len)
		abort(); /* a chunk the pipeline could not send */
	e->bytes += len;
	e->chunks++;
	return e->stop_after && e->chunks >= e->stop_after;
}

json_object *fz_parse_all(const char *s, size_t n)
{
	json_tokener *tok = json_tokener_new_ex(1000);
	json_object *o = NULL;

	if (n <= INT32_MAX)
		o = json_tokener_parse_ex(tok, s, (int)n);
	if (o && (json_tokener_get_error(tok) != json_tokener_success ||
		  (size_t)json_tokener_get_parse_end(tok) != n)) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

void fz_check_error(const struct api_error *err)
{
	struct buf b;
	json_object *o;

	if (err->status < 400 || err->status > 599 || !err->type)
		abort(); /* an error the fronts could not report */
	buf_init(&b, 0);
	apierr_to_json(err, &b);
	o = fz_parse_all(b.data, b.len);
	if (!json_object_is_type(o, json_type_object))
		abort(); /* the client would get broken JSON */
	json_object_put(o);
	buf_free(&b);
}
