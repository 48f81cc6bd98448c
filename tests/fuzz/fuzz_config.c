/* SPDX-License-Identifier: MIT */
/*
 * fuzz_config: config.yaml plus its .env, loaded through in-memory files
 * (the loaders take paths). Input: the YAML, optionally followed by a NUL
 * byte and a .env file (YAML text cannot hold a NUL, so nothing is lost);
 * the .env feeds ${VAR} expansion, <NAME>_API_KEY and ACCESS_API_KEYS. A
 * load either succeeds with no error text or fails with some; a loaded
 * snapshot is then used as requests use it: every configured model is
 * routed, its param_config applied to a request, and every access key
 * looked up.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "env.h"
#include "fuzz_common.h"
#include "keys.h"
#include "params.h"
#include "router.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_init();
	return 0;
}

static void use(const struct config *cfg)
{
	struct api_error err = { 0 };
	struct route rt;
	struct buf name;

	buf_init(&name, 0);
	for (size_t i = 0; i < cfg->n_providers; i++) {
		const struct provider_cfg *p = &cfg->providers[i];

		if (!p->name || config_find_provider(cfg, p->name,
						     strlen(p->name)) == NULL)
			abort();
		for (size_t j = 0; j < p->n_models; j++) {
			const struct model_cfg *m = &p->models[j];
			json_object *req = json_tokener_parse(
				"{\"model\":\"x\",\"messages\":[{\"role\":"
				"\"user\",\"content\":\"hi\"}],\"stream\":true,"
				"\"temperature\":0.5}");

			buf_reset(&name);
			buf_printf(&name, "%s/%s", p->name, m->name);
			if (router_resolve(cfg, name.data, &rt, &err) == 0)
				(void)router_timeout_s(&rt);
			else
				fz_check_error(&err);
			params_apply(&m->params, req);
			if (!json_object_to_json_string(req))
				abort();
			json_object_put(req);
		}
		buf_reset(&name);
		buf_printf(&name, "%s/unlisted-model<v>", p->name);
		if (router_resolve(cfg, name.data, &rt, &err) < 0)
			fz_check_error(&err);
	}
	if (router_resolve(cfg, "bare-model", &rt, &err) < 0)
		fz_check_error(&err);
	for (size_t i = 0; i < cfg->n_access_keys; i++)
		if (!keys_lookup(cfg->keys, cfg->access_keys[i],
				 strlen(cfg->access_keys[i])))
			abort(); /* a configured key that does not open */
	buf_free(&name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t ylen = nul ? (size_t)(nul - data) : size;
	char ypath[64], epath[64];
	struct buf errors;
	struct env *env;
	struct config *cfg;
	int yfd, efd;

	if (size > (1u << 20))
		return 0;
	buf_init(&errors, 0);
	if (nul) {
		efd = fz_memfile(nul + 1, size - ylen - 1, epath, sizeof(epath));
		env = env_load(epath, 1, &errors);
		close(efd);
		if (!env) {
			buf_free(&errors);
			return 0; /* fuzz_env covers a bad .env */
		}
	} else {
		env = env_new_empty();
	}
	yfd = fz_memfile(data, ylen, ypath, sizeof(ypath));
	cfg = config_load(ypath, env, &errors);
	close(yfd);
	if (cfg) {
		if (errors.len)
			abort(); /* loaded, yet complained */
		use(cfg);
		config_release(cfg);
	} else if (!errors.len) {
		abort(); /* refused without saying why */
	}
	env_free(env);
	buf_free(&errors);
	return 0;
}
