/* SPDX-License-Identifier: MIT */
/* router: model name -> route; see router.h. */
#include "router.h"

#include <string.h>

static int not_found(struct api_error *err, const char *model)
{
	apierr_set(err, 404, "invalid_request_error", "model_not_found",
		   "model",
		   "The model '%.200s' does not exist or is not served by this "
		   "gateway; GET /v1/models lists the available ones", model);
	return -1;
}

/* Copy name without a trailing "<variant>" into out. */
static int strip_variant(const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name);

	if (n > 2 && name[n - 1] == '>') {
		const char *lt = strrchr(name, '<');

		if (lt && lt != name)
			n = (size_t)(lt - name);
	}
	if (n == 0 || n >= outlen)
		return -1;
	memcpy(out, name, n);
	out[n] = '\0';
	return 0;
}

int router_resolve(const struct config *cfg, const char *model,
		   struct route *out, struct api_error *err)
{
	const char *slash = strchr(model, '/');
	const char *pname, *mname;
	size_t plen;

	memset(out, 0, sizeof(*out));
	if (slash) {
		pname = model;
		plen = (size_t)(slash - model);
		mname = slash + 1;
	} else {
		pname = cfg->default_provider;
		plen = pname ? strlen(pname) : 0;
		mname = model;
	}
	if (!pname || plen == 0 || *mname == '\0')
		return not_found(err, model);
	out->provider = config_find_provider(cfg, pname, plen);
	if (!out->provider)
		return not_found(err, model);
	out->model = config_find_model(out->provider, mname);
	if (!out->model && !out->provider->allow_unlisted_models)
		return not_found(err, model);
	out->adapter = adapter_find(out->provider->adapter);
	if (!out->adapter) {
		apierr_set(err, 500, "server_error", NULL, NULL,
			   "provider '%s' uses an unknown adapter",
			   out->provider->name);
		return -1;
	}
	if (strip_variant(out->model ? out->model->name : mname,
			  out->upstream_model,
			  sizeof(out->upstream_model)) < 0) {
		apierr_bad_request(err, "model", "The model name is too long "
				   "or empty");
		return -1;
	}
	return 0;
}

long router_timeout_s(const struct route *r)
{
	if (r->model && r->model->timeout_s > 0)
		return (long)r->model->timeout_s;
	if (r->provider->timeout_s > 0)
		return (long)r->provider->timeout_s;
	return 600;
}
