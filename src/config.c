/* SPDX-License-Identifier: MIT */
/*
 * config: loads config.yaml with libyaml's document API and the env into
 * one immutable snapshot. The loader walks the node tree with a key path
 * ("providers.closeai.models.gpt-4o.timeout") so every error can name the
 * file, line, column and key, and it reports every problem in one go: an
 * operator fixing a config should not have to restart ten times.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yaml.h>

#include "buf.h"
#include "config.h"
#include "adapter.h"
#include "env.h"
#include "keys.h"
#include "log.h"
#include "util.h"

#define DEFAULT_MAX_BODY ((size_t)10 * 1024 * 1024)
#define DEFAULT_TIMEOUT_S 600

struct loader {
	const char *path;
	yaml_document_t doc;
	const struct env *env;
	struct buf *errors;
	int nerrors;
	char keypath[512];
	char *keys_file;      /* keys_file: as written; owned */
};

typedef void (*section_fn)(struct loader *ld, yaml_node_t *node, void *out);

static void errf(struct loader *ld, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void errf(struct loader *ld, const yaml_node_t *n, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_printf(ld->errors, "%s:%lu:%lu: key '%s': %s\n", ld->path,
		   n ? (unsigned long)n->start_mark.line + 1 : 0,
		   n ? (unsigned long)n->start_mark.column + 1 : 0,
		   ld->keypath[0] ? ld->keypath : "(top)", msg);
	ld->nerrors++;
}

/* Push ".key" onto the key path; returns the old length for pop_key(). */
static size_t push_key(struct loader *ld, const char *key)
{
	size_t old = strlen(ld->keypath);

	snprintf(ld->keypath + old, sizeof(ld->keypath) - old, "%s%s",
		 old ? "." : "", key);
	return old;
}

static void pop_key(struct loader *ld, size_t old)
{
	ld->keypath[old] = '\0';
}

static yaml_node_t *node_at(struct loader *ld, int id)
{
	return yaml_document_get_node(&ld->doc, id);
}

static bool is_null(const yaml_node_t *n)
{
	if (!n)
		return true;
	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = (const char *)n->data.scalar.value;
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") ||
	       !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value
						: NULL;
}

/* Expand ${VAR} from the env. An unset variable is an error, not "", so a
 * typo never silently sends an empty key upstream. Caller frees. */
static char *expand(struct loader *ld, const yaml_node_t *n, const char *s)
{
	struct buf out;

	buf_init(&out, 0);
	while (*s) {
		const char *start = strstr(s, "${"), *end;
		if (!start) {
			buf_appends(&out, s);
			break;
		}
		buf_append(&out, s, (size_t)(start - s));
		end = strchr(start + 2, '}');
		if (!end) {
			errf(ld, n, "unterminated ${ in value");
			break;
		}
		char name[128];
		size_t len = (size_t)(end - start - 2);
		if (len == 0 || len >= sizeof(name)) {
			errf(ld, n, "bad variable name in ${...}");
		} else {
			memcpy(name, start + 2, len);
			name[len] = '\0';
			const char *v = env_get(ld->env, name);
			if (!v)
				errf(ld, n, "environment variable %s is not set",
				     name);
			else
				buf_appends(&out, v);
		}
		s = end + 1;
	}
	return buf_steal(&out);
}

static char *get_string(struct loader *ld, yaml_node_t *n)
{
	const char *s = scalar(n);

	if (is_null(n))
		return NULL;
	if (!s) {
		errf(ld, n, "expected a string");
		return NULL;
	}
	return expand(ld, n, s);
}

static bool get_bool(struct loader *ld, yaml_node_t *n, bool dflt)
{
	const char *s = scalar(n);

	if (is_null(n))
		return dflt;
	if (s && (!strcasecmp(s, "true") || !strcasecmp(s, "yes") ||
		  !strcasecmp(s, "on")))
		return true;
	if (s && (!strcasecmp(s, "false") || !strcasecmp(s, "no") ||
		  !strcasecmp(s, "off")))
		return false;
	errf(ld, n, "expected true or false");
	return dflt;
}

static int64_t get_int(struct loader *ld, yaml_node_t *n, int64_t min,
		       int64_t max, int64_t dflt)
{
	const char *s = scalar(n);
	int64_t v;

	if (is_null(n))
		return dflt;
	if (!s || parse_i64(s, min, max, &v) < 0) {
		errf(ld, n, "expected an integer from %lld to %lld",
		     (long long)min, (long long)max);
		return dflt;
	}
	return v;
}

/* A byte size: a plain integer, or one with a K/M/G suffix (KiB, MiB,
 * GiB and KB, MB, GB all mean powers of 1024, as in nginx). */
static int64_t get_size(struct loader *ld, yaml_node_t *n, int64_t min,
			int64_t max, int64_t dflt)
{
	static const struct { const char *suffix; int shift; } units[] = {
		{ "", 0 }, { "K", 10 }, { "KB", 10 }, { "KiB", 10 },
		{ "M", 20 }, { "MB", 20 }, { "MiB", 20 },
		{ "G", 30 }, { "GB", 30 }, { "GiB", 30 },
	};
	const char *s = scalar(n);
	char num[32];
	size_t digits;
	int64_t v;

	if (is_null(n))
		return dflt;
	digits = s ? strspn(s, "0123456789") : 0;
	if (digits == 0 || digits >= sizeof(num))
		goto bad;
	memcpy(num, s, digits);
	num[digits] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(s + digits, units[i].suffix) != 0)
			continue;
		if (parse_i64(num, 0, max >> units[i].shift, &v) < 0)
			goto bad;
		v <<= units[i].shift;
		if (v < min)
			goto bad;
		return v;
	}
bad:
	errf(ld, n, "expected a size in bytes from %lld to %lld (a K, M or G "
	     "suffix may follow)", (long long)min, (long long)max);
	return dflt;
}

/* One of YAML 1.1's boolean words in its three spellings (yes, Yes, YES). */
static int yaml_bool(const char *s)
{
	static const char *const words[][2] = {
		{ "true", "false" }, { "yes", "no" }, { "on", "off" },
	};
	char lower[8];
	size_t i, n = strlen(s);

	if (n == 0 || n >= sizeof(lower))
		return -1;
	for (i = 0; i <= n; i++)
		lower[i] = (char)tolower((unsigned char)s[i]);
	/* only all-lower, Title and ALL-UPPER spellings count */
	for (i = 1; i < n; i++)
		if (isupper((unsigned char)s[i]) != isupper((unsigned char)s[1]))
			return -1;
	if (n > 1 && islower((unsigned char)s[0]) &&
	    isupper((unsigned char)s[1]))
		return -1;
	for (i = 0; i < ARRAY_SIZE(words); i++) {
		if (!strcmp(lower, words[i][0]))
			return 1;
		if (!strcmp(lower, words[i][1]))
			return 0;
	}
	return -1;
}

/* A YAML 1.1 integer (decimal, 0x hex, 0o or leading-zero octal, 0b
 * binary, '_' separators allowed) into *out; 0 if s is not one. */
static int yaml_int(const char *s, long long *out)
{
	char digits[64];
	const char *p = s;
	size_t n = 0;
	int base = 10;
	bool neg = false;
	char *end;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		base = 16, p += 2;
	else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'b'))
		base = p[1] == 'o' ? 8 : 2, p += 2;
	else if (p[0] == '0' && p[1])
		base = 8, p++;
	for (; *p; p++) {
		if (*p == '_')
			continue;
		if (n + 1 >= sizeof(digits) || !isxdigit((unsigned char)*p))
			return 0;
		digits[n++] = *p;
	}
	digits[n] = '\0';
	if (n == 0 || digits[0] == '+' || digits[0] == '-')
		return 0;
	errno = 0;
	*out = strtoll(digits, &end, base);
	if (*end || errno)
		return 0;
	if (neg)
		*out = -*out;
	return 1;
}

/* A YAML node as JSON, for param_config values: plain scalars are typed the
 * way PyYAML (YAML 1.1) types them, since the original LLM Bridge read the
 * same files with it; quoted scalars are strings. */
static json_object *to_json(struct loader *ld, yaml_node_t *n)
{
	if (!n)
		return NULL;
	switch (n->type) {
	case YAML_SCALAR_NODE: {
		const char *s = (const char *)n->data.scalar.value;
		long long ll;
		int b;
		char *end;
		if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
			return json_object_new_string(s);
		if (is_null(n))
			return NULL;
		if ((b = yaml_bool(s)) >= 0)
			return json_object_new_boolean(b);
		if (yaml_int(s, &ll))
			return json_object_new_int64(ll);
		/* strtod also takes hex floats, inf and nan: YAML does not */
		if (strpbrk(s, "xXnN") == NULL) {
			double d = strtod(s, &end);
			if (!*end && end != s && isfinite(d))
				return json_object_new_double(d);
		}
		return json_object_new_string(s);
	}
	case YAML_SEQUENCE_NODE: {
		json_object *a = json_object_new_array();
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top; it++)
			json_object_array_add(a, to_json(ld, node_at(ld, *it)));
		return a;
	}
	case YAML_MAPPING_NODE: {
		json_object *o = json_object_new_object();
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     p < n->data.mapping.pairs.top; p++) {
			const char *k = scalar(node_at(ld, p->key));
			if (!k) {
				errf(ld, n, "mapping keys must be strings");
				continue;
			}
			json_object_object_add(o, k,
					       to_json(ld, node_at(ld, p->value)));
		}
		return o;
	}
	default:
		return NULL;
	}
}

/* Walk a mapping, calling fn(ld, key, value, out) for each pair. Returns
 * false (after an error) when n is neither a mapping nor empty. */
typedef void (*pair_fn)(struct loader *ld, const char *key, yaml_node_t *v,
			void *out);

static bool each_pair(struct loader *ld, yaml_node_t *n, pair_fn fn, void *out)
{
	if (is_null(n))
		return true;
	if (n->type != YAML_MAPPING_NODE) {
		errf(ld, n, "expected a mapping");
		return false;
	}
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
	     p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = node_at(ld, p->key);
		const char *k = scalar(kn);
		if (!k) {
			errf(ld, kn, "mapping keys must be strings");
			continue;
		}
		size_t old = push_key(ld, k);
		fn(ld, k, node_at(ld, p->value), out);
		pop_key(ld, old);
	}
	return true;
}

static void unknown_key(struct loader *ld, const yaml_node_t *n)
{
	log_warn("config", "%s:%lu: unknown key '%s' ignored", ld->path,
		 (unsigned long)n->start_mark.line + 1, ld->keypath);
}

/* ---- param_config ---- */

static void param_pair(struct loader *ld, const char *k, yaml_node_t *v,
		       void *out)
{
	struct param_config *pc = out;
	json_object **slot = NULL;
	json_type want = json_type_object;

	if (!strcmp(k, "update_params"))
		slot = &pc->update_params;
	else if (!strcmp(k, "add_params"))
		slot = &pc->add_params;
	else if (!strcmp(k, "rename_params"))
		slot = &pc->rename_params;
	else if (!strcmp(k, "delete_params")) {
		slot = &pc->delete_params;
		want = json_type_array;
	}
	if (!slot) {
		unknown_key(ld, v);
		return;
	}
	if (is_null(v))
		return;
	json_object *j = to_json(ld, v);
	if (!json_object_is_type(j, want)) {
		errf(ld, v, want == json_type_array ? "expected a list of keys"
						    : "expected a mapping");
		json_object_put(j);
		return;
	}
	if (slot == &pc->rename_params || slot == &pc->delete_params) {
		bool ok = true;
		if (want == json_type_array) {
			for (size_t i = 0; i < json_object_array_length(j); i++)
				ok &= json_object_is_type(
					json_object_array_get_idx(j, i),
					json_type_string);
		} else {
			json_object_object_foreach(j, rk, rv) {
				(void)rk;
				ok &= json_object_is_type(rv, json_type_string);
			}
		}
		if (!ok) {
			errf(ld, v, "parameter names must be strings");
			json_object_put(j);
			return;
		}
	}
	json_object_put(*slot);
	*slot = j;
}

/* ---- models ---- */

static double get_double(struct loader *ld, yaml_node_t *n, double min,
			 double max, double dflt)
{
	const char *s = scalar(n);
	char *end;
	double d;

	if (is_null(n))
		return dflt;
	if (s && *s) {
		d = strtod(s, &end);
		if (!*end && isfinite(d) && d >= min && d <= max)
			return d;
	}
	errf(ld, n, "expected a number from %g to %g", min, max);
	return dflt;
}

static void price_pair(struct loader *ld, const char *k, yaml_node_t *v,
		       void *out)
{
	struct model_cfg *m = out;

	if (!strcmp(k, "prompt"))
		m->price_prompt = get_double(ld, v, 0, 1e9, 0);
	else if (!strcmp(k, "completion"))
		m->price_completion = get_double(ld, v, 0, 1e9, 0);
	else if (!strcmp(k, "cached"))
		m->price_cached = get_double(ld, v, 0, 1e9, -1);
	else
		unknown_key(ld, v);
}

static void model_pair(struct loader *ld, const char *k, yaml_node_t *v,
		       void *out)
{
	struct model_cfg *m = out;

	if (!strcmp(k, "price")) {
		m->priced = true;
		m->price_cached = -1;
		each_pair(ld, v, price_pair, m);
		if (m->price_cached < 0)
			m->price_cached = m->price_prompt;
	} else if (!strcmp(k, "max_tokens"))
		m->max_tokens = get_int(ld, v, 1, INT32_MAX, 0);
	else if (!strcmp(k, "timeout"))
		m->timeout_s = get_int(ld, v, 1, 86400, 0);
	else if (!strcmp(k, "param_config"))
		each_pair(ld, v, param_pair, &m->params);
	else
		unknown_key(ld, v);
}

static void models_pair(struct loader *ld, const char *k, yaml_node_t *v,
			void *out)
{
	struct provider_cfg *p = out;
	struct model_cfg *m;
	const char *lt;

	p->models = xrealloc(p->models, (p->n_models + 1) * sizeof(*m));
	m = &p->models[p->n_models++];
	memset(m, 0, sizeof(*m));
	m->name = xstrdup(k);
	/* "o3-mini<high>": the variant's settings, upstream name "o3-mini". */
	lt = strchr(k, '<');
	if (lt && lt > k && k[strlen(k) - 1] == '>')
		m->upstream_name = xstrndup(k, (size_t)(lt - k));
	else
		m->upstream_name = xstrdup(k);
	each_pair(ld, v, model_pair, m);
}

/* ---- providers ---- */

static void provider_pair(struct loader *ld, const char *k, yaml_node_t *v,
			  void *out)
{
	struct provider_cfg *p = out;

	if (!strcmp(k, "adapter")) {
		free(p->adapter);
		p->adapter = get_string(ld, v);
	} else if (!strcmp(k, "base_url")) {
		free(p->base_url);
		p->base_url = get_string(ld, v);
	} else if (!strcmp(k, "api_key")) {
		free(p->api_key);
		p->api_key = get_string(ld, v);
	} else if (!strcmp(k, "requires_proxy")) {
		p->requires_proxy = get_bool(ld, v, false);
	} else if (!strcmp(k, "proxy")) {
		free(p->proxy);
		p->proxy = get_string(ld, v);
	} else if (!strcmp(k, "allow_unlisted_models")) {
		p->allow_unlisted_models = get_bool(ld, v, false);
	} else if (!strcmp(k, "timeout")) {
		p->timeout_s = get_int(ld, v, 1, 86400, DEFAULT_TIMEOUT_S);
	} else if (!strcmp(k, "models")) {
		each_pair(ld, v, models_pair, p);
	} else {
		unknown_key(ld, v);
	}
}

static bool valid_provider_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' &&
		    *s != '.')
			return false;
	return true;
}

static void providers_pair(struct loader *ld, const char *k, yaml_node_t *v,
			   void *out)
{
	struct config *cfg = out;
	struct provider_cfg *p;

	if (!valid_provider_name(k)) {
		errf(ld, v, "provider names may hold letters, digits, '-', "
			    "'_' and '.' only");
		return;
	}
	cfg->providers = xrealloc(cfg->providers,
				  (cfg->n_providers + 1) * sizeof(*p));
	p = &cfg->providers[cfg->n_providers++];
	memset(p, 0, sizeof(*p));
	p->name = xstrdup(k);
	p->timeout_s = DEFAULT_TIMEOUT_S;
	each_pair(ld, v, provider_pair, p);
	if (!p->adapter)
		p->adapter = xstrdup("openai");
	if (!adapter_find(p->adapter))
		errf(ld, v, "adapter '%s' is unknown (openai or gemini)",
		     p->adapter);
	if (!p->base_url && !strcmp(p->adapter, "gemini"))
		p->base_url = xstrdup(
			"https://generativelanguage.googleapis.com/v1beta");
	if (!p->base_url)
		errf(ld, v, "base_url is required");
	else if (!has_prefix_ci(p->base_url, "http://") &&
		 !has_prefix_ci(p->base_url, "https://"))
		errf(ld, v, "base_url must start with http:// or https://");
}

/* ---- server, proxy, logging ---- */

static void cors_origins(struct loader *ld, yaml_node_t *v,
			 struct server_cfg *s)
{
	for (size_t i = 0; i < s->n_cors_origins; i++)
		free(s->cors_origins[i]);
	free(s->cors_origins);
	s->cors_origins = NULL;
	s->n_cors_origins = 0;
	if (is_null(v))
		return;
	if (v->type != YAML_SEQUENCE_NODE) {
		errf(ld, v, "expected a list of origins");
		return;
	}
	for (yaml_node_item_t *it = v->data.sequence.items.start;
	     it < v->data.sequence.items.top; it++) {
		char *o = get_string(ld, node_at(ld, *it));
		if (!o)
			continue;
		s->cors_origins = xrealloc(s->cors_origins,
					   (s->n_cors_origins + 1) * sizeof(char *));
		s->cors_origins[s->n_cors_origins++] = o;
	}
}

static void tls_pair(struct loader *ld, const char *k, yaml_node_t *v,
		     void *out)
{
	struct server_cfg *s = out;
	char **slot = !strcmp(k, "cert") ? &s->tls_cert :
		      !strcmp(k, "key") ? &s->tls_key : NULL;

	if (!slot) {
		unknown_key(ld, v);
		return;
	}
	free(*slot);
	*slot = get_string(ld, v);
}

static void server_pair(struct loader *ld, const char *k, yaml_node_t *v,
			void *out)
{
	struct server_cfg *s = out;

	if (!strcmp(k, "host")) {
		char *h = get_string(ld, v);
		if (h) {
			free(s->host);
			s->host = h;
		}
	} else if (!strcmp(k, "port")) {
		s->port = (unsigned)get_int(ld, v, 0, 65535, 1219);
	} else if (!strcmp(k, "max_body_bytes")) {
		s->max_body_bytes = (size_t)get_size(ld, v, 1024, INT32_MAX,
						     DEFAULT_MAX_BODY);
	} else if (!strcmp(k, "max_connections")) {
		s->max_connections = (unsigned)get_int(ld, v, 1, 1000000, 1024);
	} else if (!strcmp(k, "shutdown_timeout")) {
		s->shutdown_timeout_s = (unsigned)get_int(ld, v, 0, 86400, 30);
	} else if (!strcmp(k, "header_timeout")) {
		s->header_timeout_s = (unsigned)get_int(ld, v, 1, 3600, 10);
	} else if (!strcmp(k, "body_timeout")) {
		s->body_timeout_s = (unsigned)get_int(ld, v, 1, 86400, 60);
	} else if (!strcmp(k, "max_header_bytes")) {
		s->max_header_bytes = (size_t)get_size(ld, v, 1024, 65536,
						       16384);
	} else if (!strcmp(k, "tls")) {
		each_pair(ld, v, tls_pair, s);
		if (!s->tls_cert != !s->tls_key)
			errf(ld, v, "tls needs both cert and key");
	} else if (!strcmp(k, "cors_origins")) {
		cors_origins(ld, v, s);
	} else {
		unknown_key(ld, v);
	}
}

static void proxy_pair(struct loader *ld, const char *k, yaml_node_t *v,
		       void *out)
{
	struct proxy_cfg *p = out;
	char **slot = !strcmp(k, "http")	  ? &p->http :
		      !strcmp(k, "https")	  ? &p->https :
		      !strcmp(k, "no_proxy") ? &p->no_proxy : NULL;

	if (!slot) {
		unknown_key(ld, v);
		return;
	}
	free(*slot);
	*slot = get_string(ld, v);
	if (*slot && !**slot) {
		free(*slot);
		*slot = NULL;
	}
}

static void file_pair(struct loader *ld, const char *k, yaml_node_t *v,
		      void *out)
{
	struct logging_cfg *l = out;

	if (!strcmp(k, "path")) {
		free(l->file_path);
		l->file_path = get_string(ld, v);
	} else if (!strcmp(k, "max_size")) {
		l->max_size = get_size(ld, v, 4096, INT64_MAX >> 1, l->max_size);
	} else if (!strcmp(k, "backup_count")) {
		l->backup_count = get_int(ld, v, 0, 1000, l->backup_count);
	} else {
		unknown_key(ld, v);
	}
}

static void output_pair(struct loader *ld, const char *k, yaml_node_t *v,
			void *out)
{
	struct logging_cfg *l = out;

	if (!strcmp(k, "console"))
		l->console = get_bool(ld, v, true);
	else if (!strcmp(k, "file"))
		each_pair(ld, v, file_pair, l);
	else
		unknown_key(ld, v);
}

static void logging_pair(struct loader *ld, const char *k, yaml_node_t *v,
			 void *out)
{
	struct logging_cfg *l = out;
	const char *s = scalar(v);

	if (!strcmp(k, "format")) {
		if (s && !strcmp(s, "json"))
			l->json = true;
		else if (s && !strcmp(s, "text"))
			l->json = false;
		else
			errf(ld, v, "expected json or text");
	} else if (!strcmp(k, "level")) {
		int lvl = s ? log_level_parse(s) : -1;
		if (lvl < 0)
			errf(ld, v, "expected debug, info, warning or error");
		else
			l->level = lvl;
	} else if (!strcmp(k, "output")) {
		each_pair(ld, v, output_pair, l);
	} else if (!strcmp(k, "log_bodies")) {
		l->log_bodies = get_bool(ld, v, false);
	} else if (!strcmp(k, "fields")) {
		/* The original's field switches: every field is always
		 * logged here (keys never are), so they are accepted as is. */
	} else {
		unknown_key(ld, v);
	}
}

static void media_pair(struct loader *ld, const char *k, yaml_node_t *v,
		       void *out)
{
	struct media_cfg *m = out;

	if (!strcmp(k, "fetch"))
		m->fetch = get_bool(ld, v, true);
	else if (!strcmp(k, "max_bytes"))
		m->max_bytes = (size_t)get_size(ld, v, 1024, INT32_MAX,
						(int64_t)m->max_bytes);
	else if (!strcmp(k, "timeout"))
		m->timeout_s = get_int(ld, v, 1, 600, m->timeout_s);
	else if (!strcmp(k, "allow_private"))
		m->allow_private = get_bool(ld, v, false);
	else
		unknown_key(ld, v);
}

/* ---- named keys ---- */

static bool valid_key_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > KEYS_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-_.@", *s))
			return false;
	return true;
}

/* "2027-01-31" (end of that day, UTC) or "2027-01-31T12:00:00Z". */
static int64_t get_expiry(struct loader *ld, yaml_node_t *n)
{
	const char *s = scalar(n);
	struct tm tm;
	const char *end;

	if (is_null(n))
		return 0;
	memset(&tm, 0, sizeof(tm));
	if (s && (end = strptime(s, "%Y-%m-%d", &tm)) != NULL) {
		if (!*end) {
			tm.tm_hour = 23, tm.tm_min = 59, tm.tm_sec = 59;
			return (int64_t)timegm(&tm);
		}
		if ((*end == 'T' || *end == ' ') &&
		    (end = strptime(end + 1, "%H:%M:%S", &tm)) != NULL &&
		    (!strcmp(end, "Z") || !*end))
			return (int64_t)timegm(&tm);
	}
	errf(ld, n, "expected a date (2027-01-31) or a UTC time "
	     "(2027-01-31T12:00:00Z)");
	return 0;
}

static void budget_pair(struct loader *ld, const char *k, yaml_node_t *v,
			void *out)
{
	struct limit_spec *l = out;
	const char *s = scalar(v);

	if (!strcmp(k, "tokens")) {
		l->budget_tokens = (uint64_t)get_int(ld, v, 1, INT64_MAX, 0);
	} else if (!strcmp(k, "cost")) {
		l->budget_cost = get_double(ld, v, 0, 1e12, 0);
	} else if (!strcmp(k, "period")) {
		if (s && !strcmp(s, "day"))
			l->period = LIMIT_PERIOD_DAY;
		else if (s && !strcmp(s, "month"))
			l->period = LIMIT_PERIOD_MONTH;
		else
			errf(ld, v, "expected day or month");
	} else {
		unknown_key(ld, v);
	}
}

static void key_models(struct loader *ld, yaml_node_t *v, struct key_def *d)
{
	if (is_null(v))
		return;
	if (v->type != YAML_SEQUENCE_NODE) {
		errf(ld, v, "expected a list of model globs (\"gemini/*\")");
		return;
	}
	for (yaml_node_item_t *it = v->data.sequence.items.start;
	     it < v->data.sequence.items.top; it++) {
		char *g = get_string(ld, node_at(ld, *it));

		if (!g)
			continue;
		d->models = xrealloc(d->models,
				     (d->n_models + 1) * sizeof(char *));
		d->models[d->n_models++] = g;
	}
}

/* One item of keys: while it is read. */
struct key_item {
	struct key_def def;
	bool has_hash;
};

static void key_pair(struct loader *ld, const char *k, yaml_node_t *v,
		     void *out)
{
	struct key_item *it = out;
	struct key_def *d = &it->def;
	const char *s = scalar(v);

	if (!strcmp(k, "name")) {
		free(d->name);
		d->name = get_string(ld, v);
		if (d->name && !valid_key_name(d->name))
			errf(ld, v, "key names hold 1 to %d letters, digits, "
			     "'-', '_', '.' or '@'", KEYS_NAME_MAX);
	} else if (!strcmp(k, "hash")) {
		/* a plain key here would put a secret in the config */
		it->has_hash = s && keys_parse_digest(s, d->digest) == 0;
		if (!it->has_hash)
			errf(ld, v, "expected sha256:<64 hex digits> (see "
			     "llm-bridge keygen)");
	} else if (!strcmp(k, "models")) {
		key_models(ld, v, d);
	} else if (!strcmp(k, "rpm")) {
		d->limits.rpm = (uint32_t)get_int(ld, v, 1, UINT32_MAX, 0);
	} else if (!strcmp(k, "tpm")) {
		d->limits.tpm = (uint64_t)get_int(ld, v, 1, INT64_MAX, 0);
	} else if (!strcmp(k, "budget")) {
		each_pair(ld, v, budget_pair, &d->limits);
	} else if (!strcmp(k, "expires")) {
		d->expires = get_expiry(ld, v);
	} else if (!strcmp(k, "enabled")) {
		d->enabled = get_bool(ld, v, true);
	} else if (!strcmp(k, "admin")) {
		d->admin = get_bool(ld, v, false);
	} else {
		unknown_key(ld, v);
	}
}

static void keys_list(struct loader *ld, yaml_node_t *v, struct config *cfg)
{
	size_t i = 0;

	if (is_null(v))
		return;
	if (v->type != YAML_SEQUENCE_NODE) {
		errf(ld, v, "expected a list of keys (- name: ..., hash: ...)");
		return;
	}
	for (yaml_node_item_t *p = v->data.sequence.items.start;
	     p < v->data.sequence.items.top; p++, i++) {
		yaml_node_t *n = node_at(ld, *p);
		struct key_item it = { .def = { .enabled = true } };
		char idx[24];
		size_t old;

		snprintf(idx, sizeof(idx), "%zu", i);
		old = push_key(ld, idx);
		each_pair(ld, n, key_pair, &it);
		if (!it.def.name || !it.has_hash)
			errf(ld, n, "a key needs a name and a hash");
		if ((it.def.limits.budget_tokens || it.def.limits.budget_cost) &&
		    it.def.limits.period == LIMIT_PERIOD_NONE)
			errf(ld, n, "budget: needs period: day or month");
		pop_key(ld, old);
		cfg->key_defs = xrealloc(cfg->key_defs, (cfg->n_key_defs + 1) *
					 sizeof(*cfg->key_defs));
		cfg->key_defs[cfg->n_key_defs++] = it.def;
	}
}

/* ---- usage, metrics ---- */

static void usage_pair(struct loader *ld, const char *k, yaml_node_t *v,
		       void *out)
{
	struct usage_cfg *u = out;

	if (!strcmp(k, "database")) {
		free(u->database);
		u->database = get_string(ld, v);
		u->database_set = u->database != NULL;
	} else if (!strcmp(k, "flush_interval")) {
		u->flush_interval_s = (unsigned)get_int(ld, v, 1, 3600, 5);
	} else {
		unknown_key(ld, v);
	}
}

static void metrics_pair(struct loader *ld, const char *k, yaml_node_t *v,
			 void *out)
{
	struct metrics_cfg *m = out;

	if (!strcmp(k, "enabled"))
		m->enabled = get_bool(ld, v, true);
	else if (!strcmp(k, "require_key"))
		m->require_key = get_bool(ld, v, false);
	else
		unknown_key(ld, v);
}

/* The top level of a keys_file: holds keys: only. */
static void keys_file_pair(struct loader *ld, const char *k, yaml_node_t *v,
			   void *out)
{
	if (!strcmp(k, "keys"))
		keys_list(ld, v, out);
	else
		unknown_key(ld, v);
}

static void top_pair(struct loader *ld, const char *k, yaml_node_t *v,
		     void *out)
{
	struct config *cfg = out;

	if (!strcmp(k, "providers"))
		each_pair(ld, v, providers_pair, cfg);
	else if (!strcmp(k, "server"))
		each_pair(ld, v, server_pair, &cfg->server);
	else if (!strcmp(k, "proxy"))
		each_pair(ld, v, proxy_pair, &cfg->proxy);
	else if (!strcmp(k, "logging"))
		each_pair(ld, v, logging_pair, &cfg->logging);
	else if (!strcmp(k, "media"))
		each_pair(ld, v, media_pair, &cfg->media);
	else if (!strcmp(k, "usage"))
		each_pair(ld, v, usage_pair, &cfg->usage);
	else if (!strcmp(k, "metrics"))
		each_pair(ld, v, metrics_pair, &cfg->metrics);
	else if (!strcmp(k, "keys"))
		keys_list(ld, v, cfg);
	else if (!strcmp(k, "keys_file")) {
		free(ld->keys_file);
		ld->keys_file = get_string(ld, v);
	}
	else if (!strcmp(k, "default_provider")) {
		free(cfg->default_provider);
		cfg->default_provider = get_string(ld, v);
	} else
		unknown_key(ld, v);
}

/* ---- env-derived parts ---- */

/* ACCESS_API_KEYS: "k1,k2" or, as the original also accepts, a JSON
 * object whose member names are the keys. */
static void load_access_keys(struct config *cfg, const struct env *env,
			     struct buf *errors)
{
	const char *v = env_get(env, "ACCESS_API_KEYS");
	const char *s = v;

	if (!v)
		return;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '{') {
		json_object *o = json_tokener_parse(s);
		if (!json_object_is_type(o, json_type_object)) {
			buf_printf(errors, "ACCESS_API_KEYS: not a valid JSON "
					   "object\n");
			json_object_put(o);
			return;
		}
		json_object_object_foreach(o, k, val) {
			(void)val;
			if (!*k)
				continue;
			cfg->access_keys = xrealloc(cfg->access_keys,
				(cfg->n_access_keys + 1) * sizeof(char *));
			cfg->access_keys[cfg->n_access_keys++] = xstrdup(k);
		}
		json_object_put(o);
		return;
	}
	while (*s) {
		const char *e = strchr(s, ',');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		const char *a = s, *b = s + n;
		while (a < b && isspace((unsigned char)*a))
			a++;
		while (b > a && isspace((unsigned char)b[-1]))
			b--;
		if (b > a) {
			cfg->access_keys = xrealloc(cfg->access_keys,
				(cfg->n_access_keys + 1) * sizeof(char *));
			cfg->access_keys[cfg->n_access_keys++] =
				xstrndup(a, (size_t)(b - a));
		}
		s += n;
		if (*s == ',')
			s++;
	}
}

/* <NAME>_API_KEY wins over api_key:, as in the original. */
static void load_provider_keys(struct config *cfg, const struct env *env)
{
	for (size_t i = 0; i < cfg->n_providers; i++) {
		struct provider_cfg *p = &cfg->providers[i];
		char var[160];
		size_t j = 0;

		for (const char *c = p->name; *c && j < sizeof(var) - 9; c++)
			var[j++] = isalnum((unsigned char)*c) ?
					   (char)toupper((unsigned char)*c) : '_';
		memcpy(var + j, "_API_KEY", 9);
		const char *v = env_get(env, var);
		if (v && *v) {
			free(p->api_key);
			p->api_key = xstrdup(v);
		}
	}
}

static void set_defaults(struct config *cfg)
{
	cfg->server.host = xstrdup("127.0.0.1");
	cfg->server.port = 1219;
	cfg->server.max_body_bytes = DEFAULT_MAX_BODY;
	cfg->server.max_connections = 1024;
	cfg->server.shutdown_timeout_s = 30;
	cfg->server.header_timeout_s = 10;
	cfg->server.body_timeout_s = 60;
	cfg->server.max_header_bytes = 16384;
	cfg->server.cors_origins = xmalloc(sizeof(char *));
	cfg->server.cors_origins[0] = xstrdup("*");
	cfg->server.n_cors_origins = 1;
	cfg->logging.json = true;
	cfg->logging.level = LOGL_INFO;
	cfg->logging.console = true;
	cfg->logging.max_size = (int64_t)10 * 1024 * 1024;
	cfg->logging.backup_count = 5;
	cfg->media.fetch = true;
	cfg->media.max_bytes = (size_t)20 * 1024 * 1024;
	cfg->media.timeout_s = 30;
	cfg->usage.flush_interval_s = 5;
	cfg->metrics.enabled = true;
}

static void check_duplicates(struct config *cfg, struct buf *errors)
{
	for (size_t i = 0; i < cfg->n_providers; i++) {
		const struct provider_cfg *p = &cfg->providers[i];
		for (size_t j = i + 1; j < cfg->n_providers; j++)
			if (!strcmp(p->name, cfg->providers[j].name))
				buf_printf(errors, "%s: key 'providers.%s': "
					   "defined twice\n", cfg->path, p->name);
	}
	if (cfg->default_provider &&
	    !config_find_provider(cfg, cfg->default_provider,
				  strlen(cfg->default_provider)))
		buf_printf(errors, "%s: key 'default_provider': no provider "
			   "named '%s'\n", cfg->path, cfg->default_provider);
	for (size_t i = 0; i < cfg->n_key_defs; i++)
		for (size_t j = i + 1; j < cfg->n_key_defs; j++)
			if (cfg->key_defs[i].name && cfg->key_defs[j].name &&
			    !strcmp(cfg->key_defs[i].name,
				    cfg->key_defs[j].name))
				buf_printf(errors, "%s: key 'keys': the name "
					   "'%s' is used twice\n", cfg->path,
					   cfg->key_defs[i].name);
	if (!cfg->default_provider &&
	    config_find_provider(cfg, "closeai", 7))
		cfg->default_provider = xstrdup("closeai");
}

static int parse_file(struct loader *ld, struct config *cfg, pair_fn top)
{
	yaml_parser_t parser;
	FILE *f = fopen(ld->path, "rb");
	int rc = -1;

	if (!f) {
		buf_printf(ld->errors, "%s: cannot open: %s\n", ld->path,
			   strerror(errno));
		return -1;
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &ld->doc)) {
		buf_printf(ld->errors, "%s:%lu:%lu: %s%s%s\n", ld->path,
			   (unsigned long)parser.problem_mark.line + 1,
			   (unsigned long)parser.problem_mark.column + 1,
			   parser.problem ? parser.problem : "YAML error",
			   parser.context ? " " : "",
			   parser.context ? parser.context : "");
		goto out_parser;
	}
	yaml_node_t *root = yaml_document_get_root_node(&ld->doc);
	if (root)
		each_pair(ld, root, top, cfg);
	rc = ld->nerrors ? -1 : 0;
	yaml_document_delete(&ld->doc);
out_parser:
	yaml_parser_delete(&parser);
	fclose(f);
	return rc;
}

/* keys_file: a YAML file with a keys: list, relative to the config's
 * directory unless absolute, so key rotation can be a separate file
 * with its own owner and mode. */
static int parse_keys_file(struct loader *ld, struct config *cfg)
{
	struct loader sub = { .env = ld->env, .errors = ld->errors };
	struct buf path;
	const char *slash = strrchr(ld->path, '/');
	int rc;

	buf_init(&path, 0);
	if (ld->keys_file[0] != '/' && slash)
		buf_append(&path, ld->path, (size_t)(slash - ld->path) + 1);
	buf_appends(&path, ld->keys_file);
	sub.path = path.data;
	rc = parse_file(&sub, cfg, keys_file_pair);
	buf_free(&path);
	return rc;
}

struct config *config_load(const char *path, const struct env *env,
			   struct buf *errors)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	struct loader ld = { .path = path, .env = env, .errors = errors };
	size_t errlen = errors->len;
	bool bad;

	atomic_init(&cfg->refs, 1);
	cfg->path = xstrdup(path);
	set_defaults(cfg);
	/* on errors, go on checking what was read: all problems at once */
	bad = parse_file(&ld, cfg, top_pair) < 0;
	if (ld.keys_file && parse_keys_file(&ld, cfg) < 0)
		bad = true;
	load_provider_keys(cfg, env);
	load_access_keys(cfg, env, errors);
	check_duplicates(cfg, errors);
	if (bad || errors->len != errlen)
		goto fail;
	cfg->keys = keys_new(cfg->access_keys, cfg->n_access_keys,
			     cfg->key_defs, cfg->n_key_defs);
	free(ld.keys_file);
	return cfg;
fail:
	free(ld.keys_file);
	config_release(cfg);
	return NULL;
}

struct config *config_retain(struct config *cfg)
{
	atomic_fetch_add(&cfg->refs, 1);
	return cfg;
}

static void free_provider(struct provider_cfg *p)
{
	for (size_t j = 0; j < p->n_models; j++) {
		free(p->models[j].name);
		free(p->models[j].upstream_name);
		params_free(&p->models[j].params);
	}
	free(p->models);
	free(p->name);
	free(p->adapter);
	free(p->base_url);
	if (p->api_key)
		memset(p->api_key, 0, strlen(p->api_key));
	free(p->api_key);
	free(p->proxy);
}

void config_release(struct config *cfg)
{
	if (!cfg || atomic_fetch_sub(&cfg->refs, 1) != 1)
		return;
	for (size_t i = 0; i < cfg->n_providers; i++)
		free_provider(&cfg->providers[i]);
	free(cfg->providers);
	for (size_t i = 0; i < cfg->n_access_keys; i++) {
		memset(cfg->access_keys[i], 0, strlen(cfg->access_keys[i]));
		free(cfg->access_keys[i]);
	}
	free(cfg->access_keys);
	keys_free(cfg->keys);
	for (size_t i = 0; i < cfg->n_key_defs; i++)
		keys_def_clear(&cfg->key_defs[i]);
	free(cfg->key_defs);
	free(cfg->usage.database);
	for (size_t i = 0; i < cfg->server.n_cors_origins; i++)
		free(cfg->server.cors_origins[i]);
	free(cfg->server.cors_origins);
	free(cfg->server.host);
	free(cfg->server.tls_cert);
	free(cfg->server.tls_key);
	free(cfg->proxy.http);
	free(cfg->proxy.https);
	free(cfg->proxy.no_proxy);
	free(cfg->logging.file_path);
	free(cfg->default_provider);
	free(cfg->path);
	free(cfg);
}

const struct provider_cfg *config_find_provider(const struct config *cfg,
						const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->n_providers; i++) {
		const struct provider_cfg *p = &cfg->providers[i];
		if (strlen(p->name) == len && !memcmp(p->name, name, len))
			return p;
	}
	return NULL;
}

const struct model_cfg *config_find_model(const struct provider_cfg *p,
					  const char *name)
{
	for (size_t i = 0; p && i < p->n_models; i++)
		if (!strcmp(p->models[i].name, name))
			return &p->models[i];
	return NULL;
}
