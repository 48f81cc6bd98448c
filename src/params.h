/* SPDX-License-Identifier: MIT */
/*
 * params: param_config, applied to the top level of a request object exactly
 * as the original LLM Bridge does: update -> add -> rename -> delete.
 */
#ifndef LB_PARAMS_H
#define LB_PARAMS_H

#include <stdbool.h>

#include <json-c/json.h>

struct param_config {
	json_object *update_params; /* object or NULL: set key = value */
	json_object *add_params;    /* object or NULL: set only when absent */
	json_object *rename_params; /* object old -> "new" or NULL */
	json_object *delete_params; /* array of strings or NULL */
};

/* Apply pc to req (a JSON object) in place. Values are deep-copied, so
 * pc stays untouched and shareable between threads. */
void params_apply(const struct param_config *pc, json_object *req);
/* true when pc changes nothing: no params configured. */
bool params_empty(const struct param_config *pc);
/* Drop the references held by pc. */
void params_free(struct param_config *pc);

#endif
