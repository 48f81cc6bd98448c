/* SPDX-License-Identifier: MIT */
/*
 * router: a client's model name -> provider, model settings and adapter.
 * "provider/model" splits at the first '/' (the model part may hold more);
 * a name without '/' goes to default_provider; "model<variant>" selects the
 * config entry of that name while the bare model goes upstream.
 */
#ifndef LB_ROUTER_H
#define LB_ROUTER_H

#include "adapter.h"
#include "apierr.h"
#include "config.h"

struct route {
	const struct provider_cfg *provider;
	const struct model_cfg *model; /* NULL for an unlisted model that
	                                * the provider lets through */
	const struct adapter *adapter;
	char upstream_model[256];      /* bare model name sent upstream */
};

/* Resolve model against cfg. Returns 0, or -1 with err set (404
 * model_not_found, or 400 for a malformed name). The route points into
 * cfg: keep a reference to cfg while using it. */
int router_resolve(const struct config *cfg, const char *model,
		   struct route *out, struct api_error *err);

/* The upstream timeout for a route, in seconds. */
long router_timeout_s(const struct route *r);

#endif
