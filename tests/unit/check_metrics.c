/* SPDX-License-Identifier: MIT */
/* Unit tests for metrics: the Prometheus text after known observations,
 * escaping, gauges, many threads and re-initialisation. */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "testutil.h"
#include "util.h"

static char *render(void)
{
	struct buf b;

	buf_init(&b, 0);
	metrics_render(&b);
	ck_assert_ptr_nonnull(b.data);
	ck_assert_uint_gt(b.len, 0);
	ck_assert_int_eq(b.data[b.len - 1], '\n');
	return buf_steal(&b);
}

/* line must be present as a whole line */
static void has(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line))) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
		p++;
	}
	ck_abort_msg("missing line: %s\n--- in ---\n%s", line, text);
}

static void lacks(const char *text, const char *part)
{
	ck_assert_msg(strstr(text, part) == NULL, "unexpected: %s", part);
}

static size_t count_of(const char *text, const char *part)
{
	size_t n = 0;

	for (const char *p = text; (p = strstr(p, part)); p += strlen(part))
		n++;
	return n;
}

/* The value of the first line starting with prefix (name{labels} ). */
static uint64_t value_of(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	const char *p = text;

	while ((p = strstr(p, prefix))) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtoull(p + n + 1, NULL, 10);
		p++;
	}
	ck_abort_msg("no series %s", prefix);
	return 0;
}

/* The number at the end of the line ending at nl. */
static uint64_t line_value(const char *line, const char *nl)
{
	const char *sp = nl;

	while (sp > line && sp[-1] != ' ')
		sp--;
	ck_assert_ptr_ne(sp, line);
	return strtoull(sp, NULL, 10);
}

/* Every histogram series in text: its buckets never decrease, and the
 * +Inf bucket equals the _count two lines below. Structure only, so it
 * holds whatever was observed. */
static void check_histograms(const char *text)
{
	uint64_t last = 0;

	for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
		const char *nl = strchr(p, '\n');
		const char *b = strstr(p, "_bucket{");
		const char *inf = strstr(p, "le=\"+Inf\"} ");
		const char *sum, *cnt;
		uint64_t v;

		if (*p == '#' || !b || b > nl) {
			last = 0; /* the next bucket starts a series */
			continue;
		}
		v = line_value(p, nl);
		ck_assert_uint_ge(v, last);
		last = v;
		if (!inf || inf > nl)
			continue;
		sum = nl + 1;
		cnt = strchr(sum, '\n') + 1;
		ck_assert_ptr_nonnull(strstr(sum, "_sum"));
		ck_assert(strstr(sum, "_sum") < cnt);
		ck_assert(strstr(cnt, "_count") < strchr(cnt, '\n'));
		ck_assert_uint_eq(line_value(cnt, strchr(cnt, '\n')), v);
	}
}

static void obs(const char *front, const char *prov, const char *model,
		int status, uint64_t dur, uint64_t up, uint64_t over,
		uint64_t prompt, uint64_t completion)
{
	struct metrics_obs o = {
		.front = front, .provider = prov, .model = model,
		.status = status, .duration_us = dur, .upstream_us = up,
		.overhead_us = over, .prompt_tokens = prompt,
		.completion_tokens = completion,
		.reasoning_tokens = completion / 2,
		.cached_tokens = prompt / 2,
	};

	metrics_observe(&o);
}

START_TEST(render_exact)
{
	char *t;

	metrics_init();
	obs("http", "openai", "gpt-4o", 200, 1500, 1000, 30, 10, 4);
	obs("http", "openai", "gpt-4o", 200, 200000, 150000, 10, 6, 2);
	obs("ws", "openai", "gpt-4o", 200, 200000000, 199000000, 5000, 0, 0);
	obs("http", "", "", 401, 50, 0, 50, 0, 0);
	t = render();

	has(t, "# HELP llm_bridge_requests_total Finished requests by front "
	       "end, provider, model and status.");
	has(t, "# TYPE llm_bridge_requests_total counter");
	has(t, "llm_bridge_requests_total{front=\"http\",provider=\"openai\","
	       "model=\"gpt-4o\",status=\"200\"} 2");
	has(t, "llm_bridge_requests_total{front=\"ws\",provider=\"openai\","
	       "model=\"gpt-4o\",status=\"200\"} 1");
	has(t, "llm_bridge_requests_total{front=\"http\",provider=\"\","
	       "model=\"\",status=\"401\"} 1");
	ck_assert_uint_eq(count_of(t, "\nllm_bridge_requests_total{"), 3);

	has(t, "# TYPE llm_bridge_tokens_total counter");
	has(t, "llm_bridge_tokens_total{provider=\"openai\",model=\"gpt-4o\","
	       "kind=\"prompt\"} 16");
	has(t, "llm_bridge_tokens_total{provider=\"openai\",model=\"gpt-4o\","
	       "kind=\"completion\"} 6");
	has(t, "llm_bridge_tokens_total{provider=\"openai\",model=\"gpt-4o\","
	       "kind=\"reasoning\"} 3");
	has(t, "llm_bridge_tokens_total{provider=\"openai\",model=\"gpt-4o\","
	       "kind=\"cached\"} 8");
	/* no tokens, no token series */
	lacks(t, "llm_bridge_tokens_total{provider=\"\"");

	has(t, "# TYPE llm_bridge_request_duration_seconds histogram");
	/* 1.5 ms, 200 ms and 200 s: le is inclusive, 200 s is only +Inf */
	has(t, "llm_bridge_request_duration_seconds_bucket{provider=\"openai\","
	       "le=\"0.001\"} 0");
	has(t, "llm_bridge_request_duration_seconds_bucket{provider=\"openai\","
	       "le=\"0.0025\"} 1");
	has(t, "llm_bridge_request_duration_seconds_bucket{provider=\"openai\","
	       "le=\"0.1\"} 1");
	has(t, "llm_bridge_request_duration_seconds_bucket{provider=\"openai\","
	       "le=\"0.25\"} 2");
	has(t, "llm_bridge_request_duration_seconds_bucket{provider=\"openai\","
	       "le=\"120\"} 2");
	has(t, "llm_bridge_request_duration_seconds_bucket{provider=\"openai\","
	       "le=\"+Inf\"} 3");
	has(t, "llm_bridge_request_duration_seconds_sum{provider=\"openai\"} "
	       "200.201500");
	has(t, "llm_bridge_request_duration_seconds_count{provider=\"openai\"} 3");
	ck_assert_uint_eq(count_of(t, "llm_bridge_request_duration_seconds_"
				      "bucket{provider=\"openai\","), 20);
	/* the unrouted request has a duration but no upstream time */
	has(t, "llm_bridge_request_duration_seconds_bucket{provider=\"\","
	       "le=\"0.0001\"} 1");
	has(t, "llm_bridge_request_duration_seconds_count{provider=\"\"} 1");
	lacks(t, "llm_bridge_upstream_duration_seconds_count{provider=\"\"}");

	has(t, "llm_bridge_upstream_duration_seconds_bucket{provider=\"openai\","
	       "le=\"0.001\"} 1"); /* exactly on the bound */
	has(t, "llm_bridge_upstream_duration_seconds_bucket{provider=\"openai\","
	       "le=\"0.00025\"} 0");
	has(t, "llm_bridge_upstream_duration_seconds_sum{provider=\"openai\"} "
	       "199.151000");
	has(t, "llm_bridge_upstream_duration_seconds_count{provider=\"openai\"} 3");

	/* overhead: no labels, fine bounds from 10 us */
	has(t, "# TYPE llm_bridge_overhead_seconds histogram");
	has(t, "llm_bridge_overhead_seconds_bucket{le=\"0.00001\"} 1");
	has(t, "llm_bridge_overhead_seconds_bucket{le=\"0.000025\"} 1");
	has(t, "llm_bridge_overhead_seconds_bucket{le=\"0.00005\"} 3");
	has(t, "llm_bridge_overhead_seconds_bucket{le=\"0.0025\"} 3");
	has(t, "llm_bridge_overhead_seconds_bucket{le=\"0.005\"} 4");
	has(t, "llm_bridge_overhead_seconds_bucket{le=\"0.01\"} 4");
	has(t, "llm_bridge_overhead_seconds_bucket{le=\"+Inf\"} 4");
	has(t, "llm_bridge_overhead_seconds_sum 0.005090");
	has(t, "llm_bridge_overhead_seconds_count 4");
	ck_assert_uint_eq(count_of(t, "llm_bridge_overhead_seconds_bucket{"),
			  11);

	has(t, "# TYPE llm_bridge_build_info gauge");
	has(t, "llm_bridge_build_info{version=\"" PACKAGE_VERSION "\"} 1");
	has(t, "# TYPE llm_bridge_start_time_seconds gauge");
	check_histograms(t);
	/* one HELP and one TYPE per family */
	ck_assert_uint_eq(count_of(t, "# TYPE "), 9);
	ck_assert_uint_eq(count_of(t, "# HELP "), 9);
	free(t);
	metrics_shutdown();
}
END_TEST

START_TEST(label_escaping)
{
	char *t;

	metrics_init();
	obs("http", "we\"ird", "a\\b\nc\"d", 200, 1, 1, 1, 1, 0);
	t = render();
	has(t, "llm_bridge_requests_total{front=\"http\",provider=\"we\\\"ird\","
	       "model=\"a\\\\b\\nc\\\"d\",status=\"200\"} 1");
	has(t, "llm_bridge_tokens_total{provider=\"we\\\"ird\","
	       "model=\"a\\\\b\\nc\\\"d\",kind=\"prompt\"} 1");
	has(t, "llm_bridge_request_duration_seconds_count{provider="
	       "\"we\\\"ird\"} 1");
	/* the raw newline never reaches the text: no line starts with "c" */
	lacks(t, "\nc\\\"d");
	lacks(t, "\nc\"d");
	free(t);
	metrics_shutdown();
}
END_TEST

START_TEST(null_strings_and_statuses)
{
	struct metrics_obs o = { .status = 502 };
	char *t;

	metrics_init();
	metrics_observe(&o); /* NULL strings are empty labels */
	o.status = 200;
	o.front = "ws";
	metrics_observe(&o);
	t = render();
	has(t, "llm_bridge_requests_total{front=\"\",provider=\"\",model=\"\","
	       "status=\"502\"} 1");
	has(t, "llm_bridge_requests_total{front=\"ws\",provider=\"\","
	       "model=\"\",status=\"200\"} 1");
	free(t);
	metrics_shutdown();
}
END_TEST

START_TEST(inflight_gauges)
{
	char *t;

	metrics_init();
	t = render();
	has(t, "llm_bridge_inflight_requests 0");
	has(t, "llm_bridge_inflight_streams 0");
	free(t);
	metrics_inflight(true, 1);
	metrics_inflight(false, 1);
	metrics_inflight(false, 1);
	t = render();
	has(t, "# TYPE llm_bridge_inflight_requests gauge");
	has(t, "llm_bridge_inflight_requests 3");
	has(t, "# TYPE llm_bridge_inflight_streams gauge");
	has(t, "llm_bridge_inflight_streams 1");
	free(t);
	metrics_inflight(true, -1);
	metrics_inflight(false, -1);
	t = render();
	has(t, "llm_bridge_inflight_requests 1");
	has(t, "llm_bridge_inflight_streams 0");
	free(t);
	metrics_shutdown();
}
END_TEST

#define NTHREADS 8
#define NOBS 5000

static void *observer(void *arg)
{
	static const char *provs[] = { "openai", "gemini", "deepseek" };
	int id = (int)(intptr_t)arg;

	for (int i = 0; i < NOBS; i++) {
		bool stream = i % 2;

		metrics_inflight(stream, 1);
		obs(id % 2 ? "ws" : "http", provs[i % 3], "m",
		    i % 5 ? 200 : 429, (uint64_t)i * 7 + 1, (uint64_t)i * 5,
		    (uint64_t)i % 100, 3, 2);
		metrics_inflight(stream, -1);
	}
	return NULL;
}

static void *scraper(void *arg)
{
	for (int i = 0; i < 50; i++)
		free(render());
	return arg;
}

START_TEST(threads)
{
	pthread_t th[NTHREADS], sc;
	uint64_t sum_dur = 0, total = 0;
	char *t, sum_line[128];

	metrics_init();
	ck_assert_int_eq(pthread_create(&sc, NULL, scraper, NULL), 0);
	for (intptr_t i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, observer,
						(void *)i), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_join(sc, NULL);

	t = render();
	check_histograms(t);
	has(t, "llm_bridge_inflight_requests 0");
	has(t, "llm_bridge_inflight_streams 0");
	total += value_of(t, "llm_bridge_request_duration_seconds_count"
			     "{provider=\"openai\"}");
	total += value_of(t, "llm_bridge_request_duration_seconds_count"
			     "{provider=\"gemini\"}");
	total += value_of(t, "llm_bridge_request_duration_seconds_count"
			     "{provider=\"deepseek\"}");
	ck_assert_uint_eq(total, NTHREADS * NOBS);
	ck_assert_uint_eq(value_of(t, "llm_bridge_overhead_seconds_count"),
			  NTHREADS * NOBS);
	/* 4 threads per front; per thread 1/5 of the requests are 429s,
	 * spread evenly over the three providers only in aggregate */
	ck_assert_uint_eq(
		value_of(t, "llm_bridge_requests_total{front=\"http\","
			    "provider=\"openai\",model=\"m\",status=\"429\"}") +
		value_of(t, "llm_bridge_requests_total{front=\"http\","
			    "provider=\"gemini\",model=\"m\",status=\"429\"}") +
		value_of(t, "llm_bridge_requests_total{front=\"http\","
			    "provider=\"deepseek\",model=\"m\",status=\"429\"}"),
		4 * NOBS / 5);
	ck_assert_uint_eq(
		value_of(t, "llm_bridge_tokens_total{provider=\"openai\","
			    "model=\"m\",kind=\"prompt\"}"),
		3 * NTHREADS * ((NOBS + 2) / 3));
	/* sums are exact integers of microseconds */
	for (int i = 0; i < NOBS; i++)
		if (i % 3 == 0)
			sum_dur += (uint64_t)i * 7 + 1;
	sum_dur *= NTHREADS;
	snprintf(sum_line, sizeof(sum_line),
		 "llm_bridge_request_duration_seconds_sum{provider=\"openai\"} "
		 "%" PRIu64 ".%06" PRIu64, sum_dur / 1000000, sum_dur % 1000000);
	has(t, sum_line);
	free(t);
	metrics_shutdown();
}
END_TEST

START_TEST(reinit)
{
	char *t;
	long long start;
	time_t before = time(NULL);

	metrics_init();
	obs("http", "openai", "x", 200, 10, 5, 5, 1, 1);
	metrics_inflight(true, 1);
	metrics_shutdown();
	metrics_shutdown(); /* twice is harmless */

	metrics_init();
	t = render();
	/* everything starts over */
	lacks(t, "llm_bridge_requests_total{");
	lacks(t, "llm_bridge_tokens_total{");
	lacks(t, "provider=\"openai\"");
	has(t, "llm_bridge_inflight_requests 0");
	has(t, "llm_bridge_inflight_streams 0");
	/* the label-less histogram exists at zero from the start */
	has(t, "llm_bridge_overhead_seconds_bucket{le=\"0.00001\"} 0");
	has(t, "llm_bridge_overhead_seconds_bucket{le=\"+Inf\"} 0");
	has(t, "llm_bridge_overhead_seconds_sum 0.000000");
	has(t, "llm_bridge_overhead_seconds_count 0");
	start = (long long)value_of(t, "llm_bridge_start_time_seconds");
	ck_assert_int_ge(start, (long long)before);
	ck_assert_int_le(start, (long long)time(NULL));
	free(t);
	obs("http", "openai", "x", 200, 10, 5, 5, 1, 1);
	t = render();
	has(t, "llm_bridge_requests_total{front=\"http\",provider=\"openai\","
	       "model=\"x\",status=\"200\"} 1");
	has(t, "llm_bridge_overhead_seconds_count 1");
	free(t);
	/* init without a shutdown between also starts over */
	metrics_init();
	t = render();
	lacks(t, "llm_bridge_requests_total{");
	has(t, "llm_bridge_overhead_seconds_count 0");
	free(t);
	metrics_shutdown();
}
END_TEST

START_TEST(many_series)
{
	char name[32], *t;

	/* enough series to grow the table several times */
	metrics_init();
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "model-%d", i);
		obs("http", "p", name, 200, 1, 1, 1, 0, 0);
		obs("http", "p", name, 200, 1, 1, 1, 0, 0);
	}
	t = render();
	ck_assert_uint_eq(count_of(t, "\nllm_bridge_requests_total{"), 1000);
	has(t, "llm_bridge_requests_total{front=\"http\",provider=\"p\","
	       "model=\"model-0\",status=\"200\"} 2");
	has(t, "llm_bridge_requests_total{front=\"http\",provider=\"p\","
	       "model=\"model-999\",status=\"200\"} 2");
	has(t, "llm_bridge_request_duration_seconds_count{provider=\"p\"} 2000");
	free(t);
	metrics_shutdown();
}
END_TEST

/* Past METRICS_MAX_SERIES, new model names (clients choose them under
 * allow_unlisted_models) are counted under "(other)": the series stop
 * growing, no request goes uncounted, and a model that has its series
 * keeps counting there. */
START_TEST(series_bounded)
{
	const int n = METRICS_MAX_SERIES; /* 2 series each: the cap at n/2 */
	char name[32], *t, *p;
	uint64_t sum = 0, requests_lines = 0;

	metrics_init();
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		obs("http", "p", name, 200, 1, 1, 1, 1, 1);
	}
	obs("http", "p", "m0", 200, 1, 1, 1, 1, 1);
	t = render();
	for (p = t; (p = strstr(p, "\nllm_bridge_requests_total{")); p++) {
		char *nl = strchr(p + 1, '\n');

		requests_lines++;
		sum += line_value(p + 1, nl);
	}
	ck_assert_uint_eq(sum, (uint64_t)n + 1);
	ck_assert_uint_lt(requests_lines, (uint64_t)n / 2 + 2);
	ck_assert_uint_gt(requests_lines, (uint64_t)n / 2 - 10);
	has(t, "llm_bridge_requests_total{front=\"http\",provider=\"p\","
	       "model=\"m0\",status=\"200\"} 2");
	ck_assert_ptr_nonnull(strstr(t, "llm_bridge_requests_total{front=\"http\","
				     "provider=\"p\",model=\"(other)\","
				     "status=\"200\"} "));
	ck_assert_ptr_null(strstr(t, "model=\"m9999\""));
	ck_assert_ptr_nonnull(strstr(t, "llm_bridge_tokens_total{provider=\"p\","
				     "model=\"(other)\""));
	free(t);
	metrics_shutdown();
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_add_test(tc, render_exact);
	tcase_add_test(tc, label_escaping);
	tcase_add_test(tc, null_strings_and_statuses);
	tcase_add_test(tc, inflight_gauges);
	tcase_add_test(tc, threads);
	tcase_add_test(tc, reinit);
	tcase_add_test(tc, many_series);
	tcase_add_test(tc, series_bounded);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(metrics_suite());
}
