/* SPDX-License-Identifier: MIT */
/*
 * metrics: counters and histograms for GET /metrics; see metrics.h.
 *
 * A series is one label-value tuple of one family. All series sit in one
 * chained hash table keyed by (family, label values), and each family
 * also keeps its series in a list in creation order, which is the order
 * they are rendered in. Values are integers (durations in microseconds),
 * so concurrent sums are exact and the text shows no float noise.
 */
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define MAX_LABELS 4

/* A histogram bucket bound: in microseconds for counting, as text for
 * the le label (so 0.00001 does not come out as 1e-05). */
struct bound {
	uint64_t us;
	const char *le;
};

static const struct bound duration_bounds[] = {
	{ 100, "0.0001" }, { 250, "0.00025" }, { 500, "0.0005" },
	{ 1000, "0.001" }, { 2500, "0.0025" }, { 5000, "0.005" },
	{ 10000, "0.01" }, { 25000, "0.025" }, { 50000, "0.05" },
	{ 100000, "0.1" }, { 250000, "0.25" }, { 500000, "0.5" },
	{ 1000000, "1" }, { 2500000, "2.5" }, { 5000000, "5" },
	{ 10000000, "10" }, { 30000000, "30" }, { 60000000, "60" },
	{ 120000000, "120" },
};

/* The gateway's own time is tens of microseconds; finer bounds. */
static const struct bound overhead_bounds[] = {
	{ 10, "0.00001" }, { 25, "0.000025" }, { 50, "0.00005" },
	{ 100, "0.0001" }, { 250, "0.00025" }, { 500, "0.0005" },
	{ 1000, "0.001" }, { 2500, "0.0025" }, { 5000, "0.005" },
	{ 10000, "0.01" },
};

static const char *const token_kinds[] = {
	"prompt", "completion", "reasoning", "cached"
};

enum fam_id { F_REQUESTS, F_TOKENS, F_DURATION, F_UPSTREAM, F_OVERHEAD,
	      F_COUNT };

struct family {
	const char *name, *help;
	const char *labels[MAX_LABELS];
	size_t nlabels;
	const struct bound *bounds; /* histogram; NULL for a counter */
	size_t nbounds;
	size_t nvals;              /* values per series, see series_new */
};

#define HIST(b) b, ARRAY_SIZE(b), ARRAY_SIZE(b) + 3

static const struct family families[F_COUNT] = {
	[F_REQUESTS] = { "llm_bridge_requests_total",
		"Finished requests by front end, provider, model and status.",
		{ "front", "provider", "model", "status" }, 4, NULL, 0, 1 },
	[F_TOKENS] = { "llm_bridge_tokens_total",
		"Tokens by provider, model and kind (completion includes "
		"reasoning, prompt includes cached).",
		{ "provider", "model" }, 2, NULL, 0, ARRAY_SIZE(token_kinds) },
	[F_DURATION] = { "llm_bridge_request_duration_seconds",
		"Whole request time by provider.",
		{ "provider" }, 1, HIST(duration_bounds) },
	[F_UPSTREAM] = { "llm_bridge_upstream_duration_seconds",
		"Time spent waiting on the provider, routed requests only.",
		{ "provider" }, 1, HIST(duration_bounds) },
	[F_OVERHEAD] = { "llm_bridge_overhead_seconds",
		"Time spent inside the gateway (upstream wait excluded).",
		{ NULL }, 0, HIST(overhead_bounds) },
};

/* Histogram values: [0, nbounds) per-bucket counts (not cumulative),
 * [nbounds] above the last bound, then the sum in us, then the count. */
struct series {
	struct series *next;  /* hash chain */
	struct series *order; /* the family's list, creation order */
	uint32_t hash;
	enum fam_id fam;
	char *labels[MAX_LABELS];
	uint64_t vals[];
};

static struct {
	pthread_mutex_t lock;
	struct series **slots;    /* NULL until the first series */
	size_t nslots, count;
	struct series *first[F_COUNT], **tail[F_COUNT];
	int64_t inflight_requests, inflight_streams;
	time_t start;
} M = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint32_t series_hash(enum fam_id f, const char *const *lv, size_t n)
{
	uint32_t h = 2166136261u ^ (uint32_t)f;

	for (size_t i = 0; i < n; i++) {
		const char *s = lv[i];

		do { /* NUL included: ("ab","c") and ("a","bc") differ */
			h ^= (unsigned char)*s;
			h *= 16777619u;
		} while (*s++);
	}
	return h;
}

static void grow(void)
{
	size_t n = M.nslots ? M.nslots * 2 : 64;
	struct series **slots = xcalloc(n, sizeof(struct series *));

	for (size_t i = 0; i < M.nslots; i++) {
		struct series *s = M.slots[i], *next;

		for (; s; s = next) {
			next = s->next;
			s->next = slots[s->hash & (n - 1)];
			slots[s->hash & (n - 1)] = s;
		}
	}
	free(M.slots);
	M.slots = slots;
	M.nslots = n;
}

static struct series *series_new(enum fam_id f, const char *const *lv,
				 size_t n, uint32_t h)
{
	const struct family *fam = &families[f];
	struct series *s = xcalloc(1, sizeof(*s) +
				   fam->nvals * sizeof(s->vals[0]));

	s->fam = f;
	s->hash = h;
	for (size_t i = 0; i < n; i++)
		s->labels[i] = xstrdup(lv[i]);
	if (M.count >= M.nslots)
		grow();
	s->next = M.slots[h & (M.nslots - 1)];
	M.slots[h & (M.nslots - 1)] = s;
	M.count++;
	if (!M.tail[f])
		M.tail[f] = &M.first[f];
	*M.tail[f] = s;
	M.tail[f] = &s->order;
	return s;
}

/* The series of family f with the n (= its nlabels) label values lv, or
 * NULL. Call under M.lock. */
static struct series *series_find(enum fam_id f, const char *const *lv,
				  size_t n, uint32_t h)
{
	struct series *s = NULL;

	if (M.slots)
		s = M.slots[h & (M.nslots - 1)];
	for (; s; s = s->next) {
		size_t i;

		if (s->hash != h || s->fam != f)
			continue;
		for (i = 0; i < n && strcmp(s->labels[i], lv[i]) == 0; i++)
			;
		if (i == n)
			return s;
	}
	return NULL;
}

/* The series of family f with the n label values lv, created at zero if
 * new. Call under M.lock. */
static struct series *series_get(enum fam_id f, const char *const *lv,
				 size_t n)
{
	uint32_t h = series_hash(f, lv, n);
	struct series *s = series_find(f, lv, n, h);

	return s ? s : series_new(f, lv, n, h);
}

/* Like series_get, but once METRICS_MAX_SERIES exist a tuple not seen
 * yet is counted with the model label METRICS_OTHER_MODEL instead: with
 * allow_unlisted_models the clients choose the model names, and each
 * would otherwise hold series until restart. lv[model_at] is the model.
 * Call under M.lock. */
static struct series *series_get_bounded(enum fam_id f, const char **lv,
					 size_t n, size_t model_at)
{
	uint32_t h = series_hash(f, lv, n);
	struct series *s = series_find(f, lv, n, h);

	if (s)
		return s;
	if (M.count < METRICS_MAX_SERIES)
		return series_new(f, lv, n, h);
	lv[model_at] = METRICS_OTHER_MODEL;
	return series_get(f, lv, n);
}

static void hist_add(struct series *s, uint64_t us)
{
	const struct family *fam = &families[s->fam];
	size_t i;

	for (i = 0; i < fam->nbounds && us > fam->bounds[i].us; i++)
		;
	s->vals[i]++;
	s->vals[fam->nbounds + 1] += us;
	s->vals[fam->nbounds + 2]++;
}

static void free_all(void)
{
	for (size_t i = 0; i < M.nslots; i++) {
		struct series *s = M.slots[i], *next;

		for (; s; s = next) {
			next = s->next;
			for (size_t j = 0; j < MAX_LABELS; j++)
				free(s->labels[j]);
			free(s);
		}
	}
	free(M.slots);
	M.slots = NULL;
	M.nslots = M.count = 0;
	for (size_t f = 0; f < F_COUNT; f++) {
		M.first[f] = NULL;
		M.tail[f] = NULL;
	}
	M.inflight_requests = M.inflight_streams = 0;
}

void metrics_init(void)
{
	pthread_mutex_lock(&M.lock);
	free_all();
	M.start = time(NULL);
	/* a histogram without labels exists from the start, at zero */
	series_get(F_OVERHEAD, NULL, 0);
	pthread_mutex_unlock(&M.lock);
}

void metrics_shutdown(void)
{
	pthread_mutex_lock(&M.lock);
	free_all();
	pthread_mutex_unlock(&M.lock);
}

/* inflight_requests counts every request, inflight_streams the streams
 * among them. */
void metrics_inflight(bool stream, int delta)
{
	pthread_mutex_lock(&M.lock);
	M.inflight_requests += delta;
	if (stream)
		M.inflight_streams += delta;
	pthread_mutex_unlock(&M.lock);
}

static const char *nz(const char *s)
{
	return s ? s : "";
}

void metrics_observe(const struct metrics_obs *o)
{
	const char *provider = nz(o->provider), *model = nz(o->model);
	char status[16];
	const char *req[] = { nz(o->front), provider, model, status };
	const char *pm[] = { provider, model };
	struct series *s;

	snprintf(status, sizeof(status), "%d", o->status);
	pthread_mutex_lock(&M.lock);
	series_get_bounded(F_REQUESTS, req, ARRAY_SIZE(req), 2)->vals[0]++;
	if (o->prompt_tokens || o->completion_tokens || o->reasoning_tokens ||
	    o->cached_tokens) {
		s = series_get_bounded(F_TOKENS, pm, ARRAY_SIZE(pm), 1);
		s->vals[0] += o->prompt_tokens;
		s->vals[1] += o->completion_tokens;
		s->vals[2] += o->reasoning_tokens;
		s->vals[3] += o->cached_tokens;
	}
	hist_add(series_get(F_DURATION, &provider, 1), o->duration_us);
	/* an unrouted request never waited on anyone: no zero samples */
	if (*provider)
		hist_add(series_get(F_UPSTREAM, &provider, 1), o->upstream_us);
	hist_add(series_get(F_OVERHEAD, NULL, 0), o->overhead_us);
	pthread_mutex_unlock(&M.lock);
}

/* ---- exposition ---- */

/* A label value with backslash, double quote and newline escaped, the
 * three the text format requires. */
static void put_value(struct buf *b, const char *s)
{
	const char *p;

	for (p = s; *p; p++) {
		const char *esc = *p == '\\' ? "\\\\" :
				  *p == '"'  ? "\\\"" :
				  *p == '\n' ? "\\n" : NULL;

		if (!esc)
			continue;
		buf_append(b, s, (size_t)(p - s));
		buf_appends(b, esc);
		s = p + 1;
	}
	buf_appends(b, s);
}

/* name{l1="v1",...[,xname="xval"]} and a space; no braces when there
 * are no labels at all. */
static void put_series(struct buf *b, const char *name, const char *suffix,
		       const struct series *s, const char *xname,
		       const char *xval)
{
	const struct family *fam = &families[s->fam];

	buf_appends(b, name);
	buf_appends(b, suffix);
	if (fam->nlabels || xname) {
		buf_appends(b, "{");
		for (size_t i = 0; i < fam->nlabels; i++) {
			buf_printf(b, "%s%s=\"", i ? "," : "", fam->labels[i]);
			put_value(b, s->labels[i]);
			buf_appends(b, "\"");
		}
		if (xname) {
			buf_printf(b, "%s%s=\"", fam->nlabels ? "," : "",
				   xname);
			put_value(b, xval);
			buf_appends(b, "\"");
		}
		buf_appends(b, "}");
	}
	buf_appends(b, " ");
}

static void put_head(struct buf *b, const char *name, const char *help,
		     const char *type)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_counter(struct buf *b, enum fam_id f)
{
	const struct family *fam = &families[f];

	put_head(b, fam->name, fam->help, "counter");
	for (const struct series *s = M.first[f]; s; s = s->order) {
		if (fam->nvals == 1) {
			put_series(b, fam->name, "", s, NULL, NULL);
			buf_printf(b, "%" PRIu64 "\n", s->vals[0]);
			continue;
		}
		for (size_t k = 0; k < fam->nvals; k++) { /* token kinds */
			put_series(b, fam->name, "", s, "kind", token_kinds[k]);
			buf_printf(b, "%" PRIu64 "\n", s->vals[k]);
		}
	}
}

static void render_histogram(struct buf *b, enum fam_id f)
{
	const struct family *fam = &families[f];

	put_head(b, fam->name, fam->help, "histogram");
	for (const struct series *s = M.first[f]; s; s = s->order) {
		uint64_t cum = 0, sum = s->vals[fam->nbounds + 1];

		for (size_t i = 0; i < fam->nbounds; i++) {
			cum += s->vals[i];
			put_series(b, fam->name, "_bucket", s, "le",
				   fam->bounds[i].le);
			buf_printf(b, "%" PRIu64 "\n", cum);
		}
		cum += s->vals[fam->nbounds];
		put_series(b, fam->name, "_bucket", s, "le", "+Inf");
		buf_printf(b, "%" PRIu64 "\n", cum);
		/* microseconds as exact decimal seconds */
		put_series(b, fam->name, "_sum", s, NULL, NULL);
		buf_printf(b, "%" PRIu64 ".%06" PRIu64 "\n", sum / 1000000,
			   sum % 1000000);
		put_series(b, fam->name, "_count", s, NULL, NULL);
		buf_printf(b, "%" PRIu64 "\n", s->vals[fam->nbounds + 2]);
	}
}

void metrics_render(struct buf *out)
{
	pthread_mutex_lock(&M.lock);
	render_counter(out, F_REQUESTS);
	render_counter(out, F_TOKENS);
	put_head(out, "llm_bridge_inflight_requests",
		 "Requests in progress, streams included.", "gauge");
	buf_printf(out, "llm_bridge_inflight_requests %" PRId64 "\n",
		   M.inflight_requests);
	put_head(out, "llm_bridge_inflight_streams",
		 "Streaming requests in progress.", "gauge");
	buf_printf(out, "llm_bridge_inflight_streams %" PRId64 "\n",
		   M.inflight_streams);
	render_histogram(out, F_DURATION);
	render_histogram(out, F_UPSTREAM);
	render_histogram(out, F_OVERHEAD);
	put_head(out, "llm_bridge_build_info",
		 "Always 1; the version is in the label.", "gauge");
	buf_printf(out, "llm_bridge_build_info{version=\"%s\"} 1\n",
		   PACKAGE_VERSION);
	put_head(out, "llm_bridge_start_time_seconds",
		 "Start time of the process since the Unix epoch.", "gauge");
	buf_printf(out, "llm_bridge_start_time_seconds %lld\n",
		   (long long)M.start);
	pthread_mutex_unlock(&M.lock);
}
