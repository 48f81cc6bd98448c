/* SPDX-License-Identifier: MIT */
/* Unit tests for tokenizer: counts and ids against js-tiktoken's reference
 * corpus (fixtures/tokenizer/reference.json, from make-reference.mjs),
 * streams against whole-text counts, the model table and message rule. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "testutil.h"
#include "tokenizer.h"

static const char *const encs[] = { "o200k_base", "cl100k_base" };
static json_object *ref;   /* whole reference.json; owned */
static json_object *cases; /* borrowed from ref */

static const char *data_dir(char *path, size_t size)
{
	const char *top = getenv("LB_TOP_SRCDIR");

	snprintf(path, size, "%s/src/tokdata", top ? top : "..");
	return path;
}

static void setup(void)
{
	char path[4096];
	struct buf errors;
	char *text;

	buf_init(&errors, 0);
	ck_assert_msg(tok_load(data_dir(path, sizeof(path)), &errors) == 0,
		      "tok_load: %s", errors.data ? errors.data : "?");
	buf_free(&errors);
	text = tu_read_fixture("fixtures/tokenizer/reference.json", NULL);
	ref = json_tokener_parse(text);
	free(text);
	ck_assert_ptr_nonnull(ref);
	ck_assert(json_object_object_get_ex(ref, "cases", &cases));
}

static void teardown(void)
{
	json_object_put(ref);
	ref = NULL;
	tok_unload();
}

static const char *case_text(size_t i, size_t *len)
{
	json_object *c = json_object_array_get_idx(cases, i), *t;

	ck_assert(json_object_object_get_ex(c, "text", &t));
	*len = (size_t)json_object_get_string_len(t);
	return json_object_get_string(t);
}

static json_object *case_expect(size_t i, const char *enc)
{
	json_object *c = json_object_array_get_idx(cases, i), *v;

	ck_assert(json_object_object_get_ex(c, enc, &v));
	return v;
}

static size_t case_count(size_t i, const char *enc)
{
	json_object *v;

	ck_assert(json_object_object_get_ex(case_expect(i, enc), "count", &v));
	return (size_t)json_object_get_int64(v);
}

/* Feed text in pieces of the lengths next_len() picks. */
static size_t stream_count(const struct tok_encoding *e, const char *text,
			   size_t len, size_t (*next_len)(size_t left))
{
	struct tok_stream st;
	size_t off = 0, n;

	tok_stream_init(&st, e);
	while (off < len) {
		size_t k = next_len(len - off);

		tok_stream_feed(&st, text + off, k);
		off += k;
	}
	n = tok_stream_finish(&st);
	tok_stream_free(&st);
	return n;
}

static size_t one_byte(size_t left)
{
	(void)left;
	return 1;
}

static unsigned rng = 1;

static size_t random_len(size_t left)
{
	size_t k;

	rng = rng * 1103515245u + 12345u;
	k = 1 + (rng >> 16) % 17;
	return k < left ? k : left;
}

static size_t big_len(size_t left)
{
	rng = rng * 1103515245u + 12345u;
	size_t k = 1024 + (rng >> 8) % (48 * 1024);
	return k < left ? k : left;
}

START_TEST(counts_match_reference)
{
	size_t n = json_object_array_length(cases);

	ck_assert_uint_ge(n, 300);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *text = case_text(i, &len);

		for (size_t k = 0; k < 2; k++) {
			const struct tok_encoding *e = tok_encoding(encs[k]);

			ck_assert_msg(tok_count(e, text, len) == case_count(i, encs[k]),
				      "%s case %zu \"%.60s\": %zu, expected %zu",
				      encs[k], i, text, tok_count(e, text, len),
				      case_count(i, encs[k]));
		}
	}
}
END_TEST

/* Ids, not just counts: a wrong merge order can give the right count. */
START_TEST(ids_match_reference)
{
	size_t n = json_object_array_length(cases);

	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *text = case_text(i, &len);

		for (size_t k = 0; k < 2; k++) {
			const struct tok_encoding *e = tok_encoding(encs[k]);
			json_object *want;
			size_t m, got;
			uint32_t *ids;

			ck_assert(json_object_object_get_ex(case_expect(i, encs[k]),
							    "ids", &want));
			m = json_object_array_length(want);
			ids = malloc((m + 1) * sizeof(*ids));
			got = tok_encode(e, text, len, ids, m + 1);
			ck_assert_uint_eq(got, m);
			for (size_t j = 0; j < m; j++)
				ck_assert_msg(ids[j] == (uint32_t)json_object_get_int64(
						      json_object_array_get_idx(want, j)),
					      "%s case %zu id %zu", encs[k], i, j);
			free(ids);
		}
	}
}
END_TEST

START_TEST(stream_every_byte)
{
	size_t n = json_object_array_length(cases);

	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *text = case_text(i, &len);

		for (size_t k = 0; k < 2; k++)
			ck_assert_msg(stream_count(tok_encoding(encs[k]), text, len,
						   one_byte) == case_count(i, encs[k]),
				      "%s case %zu \"%.60s\"", encs[k], i, text);
	}
}
END_TEST

START_TEST(stream_random_splits)
{
	size_t n = json_object_array_length(cases);

	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *text = case_text(i, &len);

		for (size_t k = 0; k < 2; k++)
			for (unsigned r = 1; r <= 5; r++) {
				rng = r;
				ck_assert_msg(stream_count(tok_encoding(encs[k]), text,
							   len, random_len) ==
					      case_count(i, encs[k]),
					      "%s case %zu seed %u", encs[k], i, r);
			}
	}
}
END_TEST

/* The whole corpus joined and repeated (~1 MiB): many pre-tokens cross
 * piece boundaries, and the tail is compacted over and over. */
START_TEST(stream_large_pieces)
{
	size_t n = json_object_array_length(cases);
	struct buf all;

	buf_init(&all, 0);
	while (all.len < 1024 * 1024)
		for (size_t i = 0; i < n; i++) {
			size_t len;
			const char *text = case_text(i, &len);

			buf_append(&all, text, len);
			buf_append(&all, i % 3 ? " " : "\n", 1);
		}
	for (size_t k = 0; k < 2; k++) {
		const struct tok_encoding *e = tok_encoding(encs[k]);
		size_t want = tok_count(e, all.data, all.len);

		rng = 7;
		ck_assert_uint_eq(stream_count(e, all.data, all.len, big_len), want);
		rng = 8;
		ck_assert_uint_eq(stream_count(e, all.data, all.len, random_len),
				  want);
	}
	buf_free(&all);
}
END_TEST

/* Over the tail bound only a single pre-token that long is cut; the
 * count may then differ by a token or so, never more. */
START_TEST(stream_huge_pretoken_is_bounded)
{
	size_t len = 3 * TOK_STREAM_MAX_TAIL + 17;
	char *text = malloc(len);
	const struct tok_encoding *e = tok_encoding("o200k_base");
	size_t whole, streamed;

	memset(text, 'a', len);
	whole = tok_count(e, text, len);
	rng = 3;
	streamed = stream_count(e, text, len, big_len);
	ck_assert_uint_ge(streamed + 4, whole);
	ck_assert_uint_le(streamed, whole + 4);
	free(text);
}
END_TEST

START_TEST(invalid_utf8_counts_bytes)
{
	static const char text[] = "ok \xff\xfe bad \xe6\x97 cut \xc3";
	const struct tok_encoding *e = tok_encoding("o200k_base");
	size_t len = sizeof(text) - 1, n = tok_count(e, text, len);

	ck_assert_uint_gt(n, 6);
	ck_assert_uint_eq(stream_count(e, text, len, one_byte), n);
	ck_assert_uint_eq(tok_count(e, "", 0), 0);
	ck_assert_uint_eq(tok_count(NULL, "x", 1), 0);
}
END_TEST

START_TEST(model_table)
{
	const struct tok_encoding *o200k = tok_encoding("o200k_base");
	const struct tok_encoding *cl100k = tok_encoding("cl100k_base");

	ck_assert_ptr_nonnull(o200k);
	ck_assert_ptr_nonnull(cl100k);
	ck_assert_ptr_null(tok_encoding("p50k_base"));
	ck_assert_str_eq(tok_encoding_name(cl100k), "cl100k_base");
	ck_assert_ptr_eq(tok_for_model("gpt-4o"), o200k);
	ck_assert_ptr_eq(tok_for_model("gpt-4o-mini-2024-07-18"), o200k);
	ck_assert_ptr_eq(tok_for_model("openai/gpt-4.1-nano"), o200k);
	ck_assert_ptr_eq(tok_for_model("gpt-4.5-preview"), o200k);
	ck_assert_ptr_eq(tok_for_model("gpt-5"), o200k);
	ck_assert_ptr_eq(tok_for_model("o1-preview"), o200k);
	ck_assert_ptr_eq(tok_for_model("closeai/o3-mini<high>"), o200k);
	ck_assert_ptr_eq(tok_for_model("o4-mini"), o200k);
	ck_assert_ptr_eq(tok_for_model("chatgpt-4o-latest"), o200k);
	ck_assert_ptr_eq(tok_for_model("gpt-4"), cl100k);
	ck_assert_ptr_eq(tok_for_model("gpt-4-turbo"), cl100k);
	ck_assert_ptr_eq(tok_for_model("azure/gpt-4-0613<x>"), cl100k);
	ck_assert_ptr_eq(tok_for_model("gpt-3.5-turbo"), cl100k);
	ck_assert_ptr_eq(tok_for_model("text-embedding-3-small"), cl100k);
	ck_assert_ptr_eq(tok_for_model("text-embedding-ada-002"), cl100k);
	ck_assert_ptr_eq(tok_for_model("deepseek/deepseek-chat"), o200k);
	ck_assert_ptr_eq(tok_for_model("claude-sonnet-4"), o200k);
	ck_assert_ptr_eq(tok_for_model(""), o200k);
	ck_assert_ptr_eq(tok_for_model(NULL), o200k);
}
END_TEST

START_TEST(messages_rule)
{
	json_object *sets;
	size_t n;

	ck_assert(json_object_object_get_ex(ref, "messages", &sets));
	n = json_object_array_length(sets);
	ck_assert_uint_eq(n, 2);
	for (size_t i = 0; i < n; i++) {
		json_object *set = json_object_array_get_idx(sets, i), *msgs, *want;

		ck_assert(json_object_object_get_ex(set, "messages", &msgs));
		for (size_t k = 0; k < 2; k++) {
			ck_assert(json_object_object_get_ex(set, encs[k], &want));
			ck_assert_int_eq(tok_count_messages(tok_encoding(encs[k]), msgs),
					 json_object_get_int64(want));
		}
	}
	/* The cookbook's published figures, not only our generator's. */
	json_object_object_get_ex(json_object_array_get_idx(sets, 0), "messages",
				  &sets);
	ck_assert_int_eq(tok_count_messages(tok_encoding("o200k_base"), sets), 124);
	ck_assert_int_eq(tok_count_messages(tok_encoding("cl100k_base"), sets), 129);
}
END_TEST

START_TEST(messages_bad_input)
{
	const struct tok_encoding *e = tok_encoding("o200k_base");
	json_object *o = json_tokener_parse("{\"role\":\"user\"}");
	json_object *a = json_tokener_parse("[1]");
	json_object *empty = json_tokener_parse("[]");

	ck_assert_int_eq(tok_count_messages(e, o), -1);
	ck_assert_int_eq(tok_count_messages(e, a), -1);
	ck_assert_int_eq(tok_count_messages(e, NULL), -1);
	ck_assert_int_eq(tok_count_messages(e, empty), 3);
	json_object_put(o);
	json_object_put(a);
	json_object_put(empty);
}
END_TEST

/* Runs inside the loaded fixture, so it puts things back as it found them. */
START_TEST(load_errors)
{
	char path[4096];
	struct buf errors;

	tok_unload();
	ck_assert_ptr_null(tok_encoding("o200k_base"));
	ck_assert_ptr_null(tok_for_model("gpt-4o"));
	buf_init(&errors, 0);
	ck_assert_int_eq(tok_load("/nonexistent-dir", &errors), -1);
	ck_assert_ptr_nonnull(strstr(errors.data,
				     "/nonexistent-dir/o200k_base.tokimg (or .tiktoken)"));
	ck_assert_ptr_nonnull(strstr(errors.data, "cl100k_base.tokimg (or .tiktoken)"));
	buf_free(&errors);
	ck_assert_int_eq(tok_load(data_dir(path, sizeof(path)), NULL), 0);
	ck_assert_ptr_nonnull(tok_encoding("o200k_base"));
}
END_TEST

static Suite *tokenizer_suite(void)
{
	Suite *s = suite_create("tokenizer");
	TCase *tc = tcase_create("reference");
	TCase *ts = tcase_create("stream");
	TCase *tm = tcase_create("misc");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_add_test(tc, counts_match_reference);
	tcase_add_test(tc, ids_match_reference);
	suite_add_tcase(s, tc);

	tcase_add_unchecked_fixture(ts, setup, teardown);
	tcase_set_timeout(ts, 120);
	tcase_add_test(ts, stream_every_byte);
	tcase_add_test(ts, stream_random_splits);
	tcase_add_test(ts, stream_large_pieces);
	tcase_add_test(ts, stream_huge_pretoken_is_bounded);
	suite_add_tcase(s, ts);

	tcase_add_unchecked_fixture(tm, setup, teardown);
	tcase_add_test(tm, invalid_utf8_counts_bytes);
	tcase_add_test(tm, model_table);
	tcase_add_test(tm, messages_rule);
	tcase_add_test(tm, messages_bad_input);
	tcase_add_test(tm, load_errors);
	suite_add_tcase(s, tm);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tokenizer_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
