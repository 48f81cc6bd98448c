/* SPDX-License-Identifier: MIT */
/* Unit tests for sse: the incremental event-stream parser. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"
#include "testutil.h"

struct got {
	struct buf all; /* "event|data\n" per event */
	int n;
	int stop_after;
};

static int on_event(void *ud, const struct sse_event *ev)
{
	struct got *g = ud;

	ck_assert_uint_eq(strlen(ev->data), ev->data_len);
	buf_printf(&g->all, "%s|%s\n", ev->event, ev->data);
	g->n++;
	return g->stop_after && g->n >= g->stop_after;
}

/* Parse text fed in pieces of the given size; returns the event log. */
static char *parse_pieces(const char *text, size_t len, size_t piece, int *n)
{
	struct sse_parser p;
	struct got g = { .n = 0 };

	buf_init(&g.all, 0);
	sse_init(&p, 1 << 20);
	for (size_t off = 0; off < len; off += piece) {
		size_t k = len - off < piece ? len - off : piece;
		ck_assert_int_eq(sse_feed(&p, text + off, k, on_event, &g), 0);
	}
	sse_free(&p);
	*n = g.n;
	return buf_steal(&g.all);
}

static const char sample[] =
	": comment\n"
	"data: one\n\n"
	"event: update\r\ndata:two\r\ndata:  three\r\n\r\n"
	"data\rid: 7\rretry: 10\r\r"
	"data: {\"a\":1}\n"
	"\n"
	"event: empty\n\n"
	"data: last\n\n";
static const char expected[] =
	"|one\n"
	"update|two\n three\n"
	"|\n"
	"|{\"a\":1}\n"
	"|last\n";

START_TEST(parses_every_line_ending_and_field)
{
	int n;
	char *log = parse_pieces(sample, strlen(sample), strlen(sample), &n);

	ck_assert_str_eq(log, expected);
	ck_assert_int_eq(n, 5);
	free(log);
}
END_TEST

/* Any split of the bytes gives the same events, CRLF split included. */
START_TEST(same_events_for_any_split)
{
	size_t len = strlen(sample);

	for (size_t piece = 1; piece <= len; piece++) {
		int n;
		char *log = parse_pieces(sample, len, piece, &n);
		ck_assert_msg(!strcmp(log, expected), "piece %zu: %s", piece, log);
		free(log);
	}
	for (size_t cut = 1; cut < len; cut++) {
		struct sse_parser p;
		struct got g = { .n = 0 };

		buf_init(&g.all, 0);
		sse_init(&p, 1 << 20);
		sse_feed(&p, sample, cut, on_event, &g);
		sse_feed(&p, sample + cut, len - cut, on_event, &g);
		ck_assert_msg(!strcmp(g.all.data, expected), "cut %zu", cut);
		buf_free(&g.all);
		sse_free(&p);
	}
}
END_TEST

START_TEST(pending_and_limits)
{
	struct sse_parser p;
	struct got g = { .n = 0 };
	char big[300];

	buf_init(&g.all, 0);
	sse_init(&p, 256);
	ck_assert(!sse_pending(&p));
	sse_feed(&p, "data: x\n\n", 9, on_event, &g);
	ck_assert(!sse_pending(&p));
	sse_feed(&p, "data: cut sho", 13, on_event, &g);
	ck_assert(sse_pending(&p));
	sse_free(&p);

	sse_init(&p, 256);
	memset(big, 'a', sizeof(big));
	ck_assert_int_eq(sse_feed(&p, "data: ", 6, on_event, &g), 0);
	ck_assert_int_eq(sse_feed(&p, big, sizeof(big), on_event, &g), -1);
	sse_free(&p);

	/* a callback's non-zero return stops parsing */
	sse_init(&p, 256);
	g.n = 0;
	g.stop_after = 1;
	ck_assert_int_eq(sse_feed(&p, "data: a\n\ndata: b\n\n", 18, on_event, &g),
			 1);
	ck_assert_int_eq(g.n, 1);
	sse_free(&p);
	buf_free(&g.all);
}
END_TEST

START_TEST(provider_fixtures)
{
	static const struct { const char *file; int events; } f[] = {
		{ "fixtures/openai/stream.sse", 8 },
		{ "fixtures/openai/tool-call-stream.sse", 11 },
		{ "fixtures/gemini/stream.sse", 3 },
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		size_t len;
		char *text = tu_read_fixture(f[i].file, &len), *log;
		int n, n1;

		log = parse_pieces(text, len, len, &n);
		free(log);
		log = parse_pieces(text, len, 1, &n1);
		free(log);
		ck_assert_msg(n == f[i].events && n1 == n, "%s: %d/%d events",
			      f[i].file, n, n1);
		free(text);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sse");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, parses_every_line_ending_and_field);
	tcase_add_test(tc, same_events_for_any_split);
	tcase_add_test(tc, pending_and_limits);
	tcase_add_test(tc, provider_fixtures);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
