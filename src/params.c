/* SPDX-License-Identifier: MIT */
/*
 * params: a model's param_config applied to the top level of the upstream
 * request, in the order the original LLM Bridge uses, so migrated configs
 * produce byte-for-byte the same upstream requests.
 */
#include <string.h>

#include "params.h"

static json_object *copy(json_object *v)
{
	json_object *out = NULL;

	if (json_object_deep_copy(v, &out, NULL) != 0)
		return NULL;
	return out;
}

void params_apply(const struct param_config *pc, json_object *req)
{
	if (!pc || !json_object_is_type(req, json_type_object))
		return;
	if (pc->update_params) {
		json_object_object_foreach(pc->update_params, k, v)
			json_object_object_add(req, k, copy(v));
	}
	if (pc->add_params) {
		json_object_object_foreach(pc->add_params, k, v)
			if (!json_object_object_get_ex(req, k, NULL))
				json_object_object_add(req, k, copy(v));
	}
	if (pc->rename_params) {
		json_object_object_foreach(pc->rename_params, old, nv) {
			json_object *val;
			const char *to = json_object_get_string(nv);

			if (!to || strcmp(to, old) == 0 ||
			    !json_object_object_get_ex(req, old, &val))
				continue;
			json_object_object_add(req, to, json_object_get(val));
			json_object_object_del(req, old);
		}
	}
	if (pc->delete_params) {
		size_t n = json_object_array_length(pc->delete_params);

		for (size_t i = 0; i < n; i++) {
			const char *k = json_object_get_string(
				json_object_array_get_idx(pc->delete_params, i));
			if (k)
				json_object_object_del(req, k);
		}
	}
}

bool params_empty(const struct param_config *pc)
{
	return !pc->update_params && !pc->add_params && !pc->rename_params &&
	       !pc->delete_params;
}

void params_free(struct param_config *pc)
{
	json_object_put(pc->update_params);
	json_object_put(pc->add_params);
	json_object_put(pc->rename_params);
	json_object_put(pc->delete_params);
	memset(pc, 0, sizeof(*pc));
}
