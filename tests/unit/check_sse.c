/* SPDX-License-Identifier: MIT */
/* Unit tests for sse: the incremental Server-Sent Events parser. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sse.h"
#include "testutil.h"

/* Events collected as "event|data" records separated by '\x1e', so a whole
 * run can be compared with one string compare. */
struct collect {
	struct buf out;
	int n;
	int stop_after; /* 0 = never stop; else return 7 after that many */
};

static void col_init(struct collect *c)
{
	buf_init(&c->out, 0);
	c->n = 0;
	c->stop_after = 0;
}

static int on_event(void *ud, const struct sse_event *ev)
{
	struct collect *c = ud;

	ck_assert_ptr_nonnull(ev->event);
	ck_assert_ptr_nonnull(ev->data);
	ck_assert_uint_eq(strlen(ev->data), ev->data_len);
	buf_appends(&c->out, ev->event);
	buf_append(&c->out, "|", 1);
	buf_append(&c->out, ev->data, ev->data_len);
	buf_append(&c->out, "\x1e", 1);
	c->n++;
	if (c->stop_after && c->n >= c->stop_after)
		return 7;
	return 0;
}

/* Parse s in one piece; returns the collected record string (caller frees)
 * and the event count in *n. */
static char *parse_whole(const char *s, size_t len, int *n)
{
	struct sse_parser p;
	struct collect c;

	col_init(&c);
	sse_init(&p, 1 << 20);
	ck_assert_int_eq(sse_feed(&p, s, len, on_event, &c), 0);
	sse_free(&p);
	if (n)
		*n = c.n;
	return buf_steal(&c.out);
}

static char *parse_bytewise(const char *s, size_t len)
{
	struct sse_parser p;
	struct collect c;

	col_init(&c);
	sse_init(&p, 1 << 20);
	for (size_t i = 0; i < len; i++)
		ck_assert_int_eq(sse_feed(&p, s + i, 1, on_event, &c), 0);
	sse_free(&p);
	return buf_steal(&c.out);
}

static char *parse_split(const char *s, size_t len, size_t at)
{
	struct sse_parser p;
	struct collect c;

	col_init(&c);
	sse_init(&p, 1 << 20);
	ck_assert_int_eq(sse_feed(&p, s, at, on_event, &c), 0);
	ck_assert_int_eq(sse_feed(&p, s + at, len - at, on_event, &c), 0);
	sse_free(&p);
	return buf_steal(&c.out);
}

/* Whole, byte by byte and every 2-piece split give the same events. */
static void check_all_splits(const char *s, size_t len, const char *want)
{
	char *got = parse_whole(s, len, NULL);

	ck_assert_str_eq(got, want);
	free(got);
	got = parse_bytewise(s, len);
	ck_assert_str_eq(got, want);
	free(got);
	for (size_t at = 0; at <= len; at++) {
		got = parse_split(s, len, at);
		ck_assert_msg(strcmp(got, want) == 0,
			      "split at %zu: got '%s' want '%s'", at, got, want);
		free(got);
	}
}

START_TEST(basic_events)
{
	const char *s = "data: one\n\ndata: two\n\n";

	check_all_splits(s, strlen(s), "|one\x1e|two\x1e");
}
END_TEST

START_TEST(line_endings_crlf_cr_lf)
{
	const char *crlf = "data: a\r\n\r\ndata: b\r\n\r\n";
	const char *cr = "data: a\r\rdata: b\r\r";
	const char *lf = "data: a\n\ndata: b\n\n";
	const char *mixed = "data: a\r\n\ndata: b\r\r\n";
	const char *want = "|a\x1e|b\x1e";

	check_all_splits(crlf, strlen(crlf), want);
	check_all_splits(cr, strlen(cr), want);
	check_all_splits(lf, strlen(lf), want);
	/* "\r\r\n": CR ends the data line, CR ends the event, LF is then a
	 * third (empty) line that dispatches nothing */
	check_all_splits(mixed, strlen(mixed), want);
}
END_TEST

START_TEST(crlf_split_between_pieces)
{
	struct sse_parser p;
	struct collect c;
	char *got;

	col_init(&c);
	sse_init(&p, 1024);
	ck_assert_int_eq(sse_feed(&p, "data: x\r", 8, on_event, &c), 0);
	ck_assert_int_eq(sse_feed(&p, "\n\r", 2, on_event, &c), 0);
	/* the LF after CR was swallowed, the CR ended the event */
	ck_assert_int_eq(c.n, 1);
	ck_assert_int_eq(sse_feed(&p, "\ndata: y\r", 9, on_event, &c), 0);
	ck_assert_int_eq(c.n, 1);
	ck_assert_int_eq(sse_feed(&p, "\n", 1, on_event, &c), 0);
	ck_assert_int_eq(c.n, 1);
	ck_assert_int_eq(sse_feed(&p, "\r\n", 2, on_event, &c), 0);
	ck_assert_int_eq(c.n, 2);
	got = buf_steal(&c.out);
	ck_assert_str_eq(got, "|x\x1e|y\x1e");
	free(got);
	ck_assert(!sse_pending(&p));
	sse_free(&p);
}
END_TEST

START_TEST(multiline_data_joined)
{
	const char *s = "data: line1\ndata: line2\ndata:\ndata: line4\n\n";

	check_all_splits(s, strlen(s), "|line1\nline2\n\nline4\x1e");
}
END_TEST

START_TEST(only_one_leading_space_stripped)
{
	const char *s = "data:nospace\n\ndata:  two spaces\n\n"
			"data:\ttab\n\ndata: trailing \n\n";

	check_all_splits(s, strlen(s),
			 "|nospace\x1e| two spaces\x1e|\ttab\x1e|trailing \x1e");
}
END_TEST

START_TEST(comments_ignored)
{
	const char *s = ": keep-alive\n\n:\n: comment\ndata: x\n: inner\n"
			"data: y\n\n";

	check_all_splits(s, strlen(s), "|x\ny\x1e");
}
END_TEST

START_TEST(event_field)
{
	const char *s = "event: delta\ndata: {}\n\ndata: plain\n\n"
			"event: a\nevent: b\ndata: last wins\n\n";

	/* the event name does not leak into the next event */
	check_all_splits(s, strlen(s),
			 "delta|{}\x1e|plain\x1e" "b|last wins\x1e");
}
END_TEST

START_TEST(event_without_data_not_dispatched)
{
	const char *s = "event: ping\n\nid: 5\nretry: 100\n\n"
			"data: real\n\n";

	/* and the name of the dropped event does not stick to the next */
	check_all_splits(s, strlen(s), "|real\x1e");
}
END_TEST

START_TEST(field_without_colon_and_unknown_fields)
{
	/* "data" alone is a data line with an empty value */
	const char *s = "data\n\nfoo: bar\ndata: z\n\ndatax: no\n\n";

	check_all_splits(s, strlen(s), "|\x1e|z\x1e");
}
END_TEST

START_TEST(colon_in_value_kept)
{
	const char *s = "data: {\"a\": \"b:c\"}\n\n";

	check_all_splits(s, strlen(s), "|{\"a\": \"b:c\"}\x1e");
}
END_TEST

START_TEST(max_event_exceeded)
{
	struct sse_parser p;
	struct collect c;
	char big[200];

	/* one long line */
	col_init(&c);
	sse_init(&p, 64);
	memset(big, 'x', sizeof(big));
	memcpy(big, "data: ", 6);
	ck_assert_int_eq(sse_feed(&p, big, sizeof(big), on_event, &c), -1);
	ck_assert_int_eq(c.n, 0);
	sse_free(&p);
	buf_free(&c.out);

	/* many short data lines adding up to more than the cap */
	col_init(&c);
	sse_init(&p, 64);
	int rc = 0;
	for (int i = 0; i < 20 && rc == 0; i++)
		rc = sse_feed(&p, "data: 0123456789\n", 17, on_event, &c);
	ck_assert_int_eq(rc, -1);
	ck_assert_int_eq(c.n, 0);
	sse_free(&p);
	buf_free(&c.out);

	/* within the cap is fine */
	col_init(&c);
	sse_init(&p, 64);
	ck_assert_int_eq(sse_feed(&p, "data: 0123456789\n\n", 18, on_event,
				  &c), 0);
	ck_assert_int_eq(c.n, 1);
	sse_free(&p);
	buf_free(&c.out);
}
END_TEST

START_TEST(callback_nonzero_stops)
{
	struct sse_parser p;
	struct collect c;
	const char *s = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
	char *got;

	col_init(&c);
	c.stop_after = 1;
	sse_init(&p, 1024);
	ck_assert_int_eq(sse_feed(&p, s, strlen(s), on_event, &c), 7);
	ck_assert_int_eq(c.n, 1);
	got = buf_steal(&c.out);
	ck_assert_str_eq(got, "|1\x1e");
	free(got);
	sse_free(&p);
}
END_TEST

START_TEST(pending)
{
	struct sse_parser p;
	struct collect c;

	col_init(&c);
	sse_init(&p, 1024);
	ck_assert(!sse_pending(&p));
	ck_assert_int_eq(sse_feed(&p, "data: par", 9, on_event, &c), 0);
	ck_assert(sse_pending(&p)); /* mid-line */
	ck_assert_int_eq(sse_feed(&p, "tial\n", 5, on_event, &c), 0);
	ck_assert(sse_pending(&p)); /* data, no blank line yet */
	ck_assert_int_eq(c.n, 0);
	ck_assert_int_eq(sse_feed(&p, "\n", 1, on_event, &c), 0);
	ck_assert_int_eq(c.n, 1);
	ck_assert(!sse_pending(&p));
	/* comments and data-less events leave nothing pending */
	ck_assert_int_eq(sse_feed(&p, ": hi\nevent: x\n\n", 15, on_event,
				  &c), 0);
	ck_assert(!sse_pending(&p));
	ck_assert_int_eq(c.n, 1);
	sse_free(&p);
	buf_free(&c.out);
}
END_TEST

/* The recorded OpenAI streams: every data line is one event. */
static void fixture_events(const char *rel, int want_events,
			   const char *want_last)
{
	size_t len;
	char *s = tu_read_fixture(rel, &len);
	int n;
	char *whole = parse_whole(s, len, &n);
	char *last;

	ck_assert_int_eq(n, want_events);
	/* the last record */
	whole[strlen(whole) - 1] = '\0';
	last = strrchr(whole, '\x1e');
	last = last ? last + 1 : whole;
	ck_assert_str_eq(last, want_last);
	free(whole);
	whole = parse_whole(s, len, NULL);

	char *bw = parse_bytewise(s, len);
	ck_assert_str_eq(bw, whole);
	free(bw);
	for (size_t at = 0; at <= len; at += 7) {
		char *sp = parse_split(s, len, at);
		ck_assert_str_eq(sp, whole);
		free(sp);
	}
	/* the same stream with CRLF line endings gives the same events */
	struct buf crlf;
	buf_init(&crlf, 0);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n')
			buf_append(&crlf, "\r\n", 2);
		else
			buf_append(&crlf, s + i, 1);
	}
	char *cr = parse_bytewise(crlf.data, crlf.len);
	ck_assert_str_eq(cr, whole);
	free(cr);
	buf_free(&crlf);
	free(whole);
	free(s);
}

START_TEST(openai_fixtures)
{
	fixture_events("fixtures/openai/stream.sse", 8, "|[DONE]");
	fixture_events("fixtures/openai/tool-call-stream.sse", 11, "|[DONE]");
	fixture_events("fixtures/openai/stream-error-midstream.sse", 3,
		       "|{\"error\":{\"message\":\"The server had an error while "
		       "processing your request. Sorry about that!\",\"type\":"
		       "\"server_error\",\"param\":null,\"code\":null}}");
}
END_TEST

START_TEST(fixture_cut_off_is_pending)
{
	size_t len;
	char *s = tu_read_fixture("fixtures/openai/stream.sse", &len);
	struct sse_parser p;
	struct collect c;

	/* cut the stream just before the final blank line */
	col_init(&c);
	sse_init(&p, 1 << 20);
	ck_assert_int_eq(sse_feed(&p, s, len - 1, on_event, &c), 0);
	ck_assert_int_eq(c.n, 7);
	ck_assert(sse_pending(&p));
	ck_assert_int_eq(sse_feed(&p, s + len - 1, 1, on_event, &c), 0);
	ck_assert_int_eq(c.n, 8);
	ck_assert(!sse_pending(&p));
	sse_free(&p);
	buf_free(&c.out);
	free(s);
}
END_TEST

static Suite *sse_suite(void)
{
	Suite *s = suite_create("sse");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, basic_events);
	tcase_add_test(tc, line_endings_crlf_cr_lf);
	tcase_add_test(tc, crlf_split_between_pieces);
	tcase_add_test(tc, multiline_data_joined);
	tcase_add_test(tc, only_one_leading_space_stripped);
	tcase_add_test(tc, comments_ignored);
	tcase_add_test(tc, event_field);
	tcase_add_test(tc, event_without_data_not_dispatched);
	tcase_add_test(tc, field_without_colon_and_unknown_fields);
	tcase_add_test(tc, colon_in_value_kept);
	tcase_add_test(tc, max_event_exceeded);
	tcase_add_test(tc, callback_nonzero_stops);
	tcase_add_test(tc, pending);
	tcase_add_test(tc, openai_fixtures);
	tcase_add_test(tc, fixture_cut_off_is_pending);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(sse_suite());
}
