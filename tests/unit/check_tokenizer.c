/* SPDX-License-Identifier: MIT */
/* Unit tests for tokenizer: counts and ids against js-tiktoken's reference
 * corpus (fixtures/tokenizer/reference.json, from make-reference.mjs),
 * streams against whole-text counts, the model table and message rule;
 * the build's images against the .tiktoken text they were made from, and
 * damaged images, which must be rejected (or at least never crash). The
 * suites run on the images, as the daemon does ($LB_TOKENIZER_DIR is the
 * build tree's src/tokdata). */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "testutil.h"
#include "tokenizer.h"

static const char *const encs[] = { "o200k_base", "cl100k_base" };
static json_object *ref;   /* whole reference.json; owned */
static json_object *cases; /* borrowed from ref */

/* The images (and, in an in-tree build, the text too). */
static const char *data_dir(char *path, size_t size)
{
	const char *dir = getenv("LB_TOKENIZER_DIR");

	snprintf(path, size, "%s", dir && *dir ? dir : "../src/tokdata");
	return path;
}

/* The .tiktoken sources. */
static const char *text_dir(char *path, size_t size)
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

/* Counting shares the JIT stacks of the module among the threads that
 * count at the same moment: many threads counting every case, whole and
 * streamed, must each get the reference counts. */
#define COUNT_THREADS 8

static void *count_all_cases(void *arg)
{
	const struct tok_encoding *e = tok_encoding("o200k_base");
	size_t n = json_object_array_length(cases), *wrong = arg;

	for (size_t i = 0; i < n; i++) {
		size_t len, off = 0, want = case_count(i, "o200k_base");
		const char *text = case_text(i, &len);
		struct tok_stream st;

		if (tok_count(e, text, len) != want)
			(*wrong)++;
		tok_stream_init(&st, e);
		for (; off < len; off += 7)
			tok_stream_feed(&st, text + off,
					len - off < 7 ? len - off : 7);
		if (tok_stream_finish(&st) != want)
			(*wrong)++;
		tok_stream_free(&st);
	}
	return NULL;
}

START_TEST(counts_from_many_threads)
{
	pthread_t t[COUNT_THREADS];
	size_t wrong[COUNT_THREADS] = { 0 };

	for (int i = 0; i < COUNT_THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, count_all_cases,
						&wrong[i]), 0);
	for (int i = 0; i < COUNT_THREADS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_msg(wrong[i] == 0, "thread %d: %zu wrong counts", i,
			      wrong[i]);
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

#define ARRAY_SIZE_T(a) (sizeof(a) / sizeof((a)[0]))

/* ---- images ---- */

/* A scratch directory of tokenizer files; entries are removed by
 * scratch_free() (mapped files may go: the mapping keeps them). */
struct scratch {
	char dir[64];
	char names[4][32];
	size_t n;
};

static void scratch_init(struct scratch *sc)
{
	sc->n = 0;
	snprintf(sc->dir, sizeof(sc->dir), "/tmp/check_tokenizer.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(sc->dir));
}

static void scratch_path(struct scratch *sc, const char *name, char *path,
			 size_t size)
{
	snprintf(path, size, "%s/%s", sc->dir, name);
	ck_assert_uint_lt(sc->n, 4);
	snprintf(sc->names[sc->n++], sizeof(sc->names[0]), "%s", name);
}

/* dir/name as a link to from/name. */
static void scratch_link(struct scratch *sc, const char *from, const char *name)
{
	char src[8192], dst[8192];

	snprintf(src, sizeof(src), "%s/%s", from, name);
	ck_assert_int_eq(access(src, R_OK), 0);
	scratch_path(sc, name, dst, sizeof(dst));
	ck_assert_int_eq(symlink(src, dst), 0);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *data;
	long n;

	ck_assert_msg(f != NULL, "%s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_gt(n, 0);
	rewind(f);
	data = malloc((size_t)n);
	ck_assert_uint_eq(fread(data, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return data;
}

/* dir/name as a copy of from/name, changed by damage (may be NULL) and
 * cut to *len bytes. */
static void scratch_copy(struct scratch *sc, const char *from, const char *name,
			 void (*damage)(unsigned char *data, size_t *len))
{
	char src[8192], dst[8192];
	unsigned char *data;
	size_t len;
	FILE *f;

	snprintf(src, sizeof(src), "%s/%s", from, name);
	data = slurp(src, &len);
	if (damage)
		damage(data, &len);
	scratch_path(sc, name, dst, sizeof(dst));
	f = fopen(dst, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	free(data);
}

static void scratch_free(struct scratch *sc)
{
	char path[4096];

	for (size_t i = 0; i < sc->n; i++) {
		snprintf(path, sizeof(path), "%s/%s", sc->dir, sc->names[i]);
		unlink(path);
	}
	rmdir(sc->dir);
}

/* Back to the fixture's state: the images of the build. */
static void reload_images(void)
{
	char path[4096];

	tok_unload();
	ck_assert_int_eq(tok_load(data_dir(path, sizeof(path)), NULL), 0);
}

/* Send stderr (where the log goes) to a file, for read_stderr(). Tests
 * fork, so this does not outlive the test. */
static char stderr_path[64];

static void capture_stderr(void)
{
	int fd;

	snprintf(stderr_path, sizeof(stderr_path), "/tmp/check_tokenizer.err.XXXXXX");
	fd = mkstemp(stderr_path);
	ck_assert_int_ge(fd, 0);
	dup2(fd, 2);
	close(fd);
}

/* The log so far. Caller frees. */
static char *read_stderr(void)
{
	FILE *f;
	char *text = calloc(1, 65536);
	size_t n;

	fflush(stderr);
	f = fopen(stderr_path, "rb");
	ck_assert_ptr_nonnull(f);
	n = fread(text, 1, 65535, f);
	text[n] = '\0';
	fclose(f);
	unlink(stderr_path);
	return text;
}

/* A few texts beyond the reference corpus: long runs (the heap merge),
 * invalid bytes, every single byte. */
static void extra_texts(struct buf *all, size_t *ends, size_t *n)
{
	static const char *const fixed[] = {
		"ok \xff\xfe bad \xe6\x97 cut \xc3",
		"<|endoftext|> special tokens are plain text <|im_start|>",
		"\t\t  \n\n   trailing spaces   ",
	};
	char bytes[256];

	*n = 0;
	for (size_t i = 0; i < ARRAY_SIZE_T(fixed); i++) {
		buf_append(all, fixed[i], strlen(fixed[i]));
		ends[(*n)++] = all->len;
	}
	for (size_t i = 0; i < 256; i++)
		bytes[i] = (char)i;
	buf_append(all, bytes, sizeof(bytes));
	ends[(*n)++] = all->len;
	for (size_t i = 0; i < 3000; i++)
		buf_append(all, i % 7 ? "ab" : " ", i % 7 ? 2 : 1);
	ends[(*n)++] = all->len;
	for (size_t i = 0; i < 600; i++)
		buf_append(all, "z", 1);
	ends[(*n)++] = all->len;
}

/* Every count and id from the mapped images equals what parsing the
 * .tiktoken text gives, on the reference corpus and the extra texts. */
START_TEST(image_matches_text)
{
	size_t ncases = json_object_array_length(cases), nids;
	size_t ends[8], nextra, *want[2];
	uint32_t *ids_img, *ids_txt;
	struct scratch sc;
	char path[4096];
	struct buf extra;

	buf_init(&extra, 0);
	extra_texts(&extra, ends, &nextra);
	/* the fixture loaded the images */
	for (size_t k = 0; k < 2; k++) {
		const struct tok_encoding *e = tok_encoding(encs[k]);

		ck_assert_msg(tok_encoding_mapped(e), "%s is not mapped", encs[k]);
		want[k] = malloc((ncases + nextra) * sizeof(size_t));
		for (size_t i = 0; i < ncases; i++) {
			size_t len;
			const char *text = case_text(i, &len);

			want[k][i] = tok_count(e, text, len);
		}
		for (size_t i = 0, start = 0; i < nextra; start = ends[i++])
			want[k][ncases + i] = tok_count(e, extra.data + start,
							ends[i] - start);
	}
	ids_img = malloc(extra.len * sizeof(*ids_img));
	ids_txt = malloc(extra.len * sizeof(*ids_txt));
	nids = tok_encode(tok_encoding("o200k_base"), extra.data, extra.len,
			  ids_img, extra.len);

	scratch_init(&sc);
	scratch_link(&sc, text_dir(path, sizeof(path)), "o200k_base.tiktoken");
	scratch_link(&sc, path, "cl100k_base.tiktoken");
	tok_unload();
	ck_assert_int_eq(tok_load(sc.dir, NULL), 0);
	for (size_t k = 0; k < 2; k++) {
		const struct tok_encoding *e = tok_encoding(encs[k]);

		ck_assert_ptr_nonnull(e);
		ck_assert(!tok_encoding_mapped(e));
		for (size_t i = 0; i < ncases; i++) {
			size_t len;
			const char *text = case_text(i, &len);

			ck_assert_msg(tok_count(e, text, len) == want[k][i],
				      "%s case %zu", encs[k], i);
		}
		for (size_t i = 0, start = 0; i < nextra; start = ends[i++])
			ck_assert_msg(tok_count(e, extra.data + start,
						ends[i] - start) ==
				      want[k][ncases + i],
				      "%s extra text %zu", encs[k], i);
		free(want[k]);
	}
	ck_assert_uint_eq(tok_encode(tok_encoding("o200k_base"), extra.data,
				     extra.len, ids_txt, extra.len), nids);
	ck_assert_int_eq(memcmp(ids_img, ids_txt, nids * sizeof(*ids_img)), 0);
	scratch_free(&sc);
	free(ids_img);
	free(ids_txt);
	buf_free(&extra);
	reload_images();
}
END_TEST

/* The image passes the full check, tables checksum included. */
START_TEST(image_verifies)
{
	char dir[4096], path[4200];
	struct buf errors;

	data_dir(dir, sizeof(dir));
	for (size_t k = 0; k < 2; k++) {
		snprintf(path, sizeof(path), "%s/%s.tokimg", dir, encs[k]);
		buf_init(&errors, 0);
		ck_assert_msg(tok_image_verify(encs[k], path, &errors) == 0,
			      "%s", errors.data ? errors.data : "?");
		buf_free(&errors);
	}
	/* an image is one encoding's: cl100k's is not o200k's */
	snprintf(path, sizeof(path), "%s/cl100k_base.tokimg", dir);
	buf_init(&errors, 0);
	ck_assert_int_eq(tok_image_verify("o200k_base", path, &errors), -1);
	ck_assert_ptr_nonnull(strstr(errors.data, "another encoding"));
	buf_free(&errors);
}
END_TEST

/* Offsets into the header (struct img_header in tokenizer.c). */
#define IMG_VERSION_AT 8
#define IMG_NAME_AT 24
#define IMG_HEADER_SIZE 1176

static void bad_magic(unsigned char *d, size_t *len)
{
	(void)len;
	d[0] ^= 0x20;
}

static void bad_version(unsigned char *d, size_t *len)
{
	(void)len;
	d[IMG_VERSION_AT] += 1;
}

static void truncated(unsigned char *d, size_t *len)
{
	(void)d;
	*len -= 4096;
}

static void header_byte_flipped(unsigned char *d, size_t *len)
{
	(void)len;
	d[IMG_NAME_AT + 40] ^= 0x01; /* inside the counts */
}

static void table_byte_flipped(unsigned char *d, size_t *len)
{
	d[*len - 5] ^= 0x10; /* in the slots */
}

/* Everything after the header is noise: a checksum tok_load() skips. */
static void tables_garbage(unsigned char *d, size_t *len)
{
	uint32_t x = 12345;

	for (size_t i = IMG_HEADER_SIZE; i < *len; i++) {
		x = x * 1103515245u + 12345u;
		d[i] = (unsigned char)(x >> 16);
	}
}

/* Load a directory holding a damaged o200k image (and cl100k's good one);
 * returns tok_load()'s result, errors in errors. */
static int load_damaged(struct scratch *sc,
			void (*damage)(unsigned char *data, size_t *len),
			bool with_text, struct buf *errors)
{
	char dir[4096], tdir[4096];

	scratch_init(sc);
	data_dir(dir, sizeof(dir));
	scratch_copy(sc, dir, "o200k_base.tokimg", damage);
	scratch_link(sc, dir, "cl100k_base.tokimg");
	if (with_text)
		scratch_link(sc, text_dir(tdir, sizeof(tdir)),
			     "o200k_base.tiktoken");
	tok_unload();
	return tok_load(sc->dir, errors);
}

START_TEST(damaged_images_are_rejected)
{
	static const struct {
		void (*damage)(unsigned char *, size_t *);
		const char *why;
	} cases_[] = {
		{ bad_magic, "bad magic" },
		{ bad_version, "unsupported image version" },
		{ truncated, "truncated" },
		{ header_byte_flipped, "header checksum mismatch" },
	};

	for (size_t i = 0; i < ARRAY_SIZE_T(cases_); i++) {
		struct scratch sc;
		struct buf errors;

		buf_init(&errors, 0);
		ck_assert_int_eq(load_damaged(&sc, cases_[i].damage, false,
					      &errors), -1);
		ck_assert_ptr_null(tok_encoding("o200k_base"));
		ck_assert_msg(errors.data && strstr(errors.data, cases_[i].why),
			      "case %zu: %s", i, errors.data ? errors.data : "");
		ck_assert_ptr_nonnull(strstr(errors.data, "o200k_base.tokimg"));
		buf_free(&errors);
		scratch_free(&sc);
	}
	reload_images();
}
END_TEST

/* A damaged image next to its text: logged, and the text is used. */
START_TEST(damaged_image_falls_back_to_text)
{
	struct scratch sc;
	const struct tok_encoding *e;
	char *log;

	capture_stderr();
	ck_assert_int_eq(load_damaged(&sc, bad_magic, true, NULL), 0);
	e = tok_encoding("o200k_base");
	ck_assert_ptr_nonnull(e);
	ck_assert(!tok_encoding_mapped(e));
	ck_assert_uint_eq(tok_count(e, "Hello world, how are you?", 25), 7);
	log = read_stderr();
	ck_assert_msg(strstr(log, "o200k_base.tokimg: not a tokenizer image "
			     "(bad magic); reading") != NULL, "log: %s", log);
	free(log);
	scratch_free(&sc);
	reload_images();
}
END_TEST

/* A .tiktoken next to the image that is not the one it was made from
 * (here: one blank line longer, which the parser tolerates). */
START_TEST(stale_image_is_not_used)
{
	char dir[4096], tdir[4096], text[4200], path[4200];
	struct scratch sc;
	unsigned char *data;
	size_t len;
	FILE *f;
	char *log;

	capture_stderr();
	scratch_init(&sc);
	data_dir(dir, sizeof(dir));
	scratch_link(&sc, dir, "o200k_base.tokimg");
	scratch_link(&sc, dir, "cl100k_base.tokimg");
	snprintf(text, sizeof(text), "%s/o200k_base.tiktoken",
		 text_dir(tdir, sizeof(tdir)));
	data = slurp(text, &len);
	data = realloc(data, len + 1);
	data[len++] = '\n';
	scratch_path(&sc, "o200k_base.tiktoken", path, sizeof(path));
	f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	free(data);

	tok_unload();
	ck_assert_int_eq(tok_load(sc.dir, NULL), 0);
	ck_assert(!tok_encoding_mapped(tok_encoding("o200k_base")));
	/* cl100k has no text beside it: its image is used */
	ck_assert(tok_encoding_mapped(tok_encoding("cl100k_base")));
	log = read_stderr();
	ck_assert_msg(strstr(log, "stale") != NULL, "log: %s", log);
	free(log);
	scratch_free(&sc);
	reload_images();
}
END_TEST

/* Damage in the tables is only caught by the full check; tok_load()
 * takes such an image, and counting with it must still be safe. */
START_TEST(damaged_tables_never_crash)
{
	void (*const damage[])(unsigned char *, size_t *) = {
		table_byte_flipped, tables_garbage,
	};
	size_t n = json_object_array_length(cases);

	for (size_t d = 0; d < ARRAY_SIZE_T(damage); d++) {
		struct scratch sc;
		struct buf errors;
		char path[4200];
		const struct tok_encoding *e;

		ck_assert_int_eq(load_damaged(&sc, damage[d], false, NULL), 0);
		snprintf(path, sizeof(path), "%s/o200k_base.tokimg", sc.dir);
		buf_init(&errors, 0);
		ck_assert_int_eq(tok_image_verify("o200k_base", path, &errors), -1);
		ck_assert_ptr_nonnull(strstr(errors.data, "tables checksum mismatch"));
		buf_free(&errors);
		e = tok_encoding("o200k_base");
		ck_assert(tok_encoding_mapped(e));
		for (size_t i = 0; i < n; i++) {
			size_t len;
			const char *text = case_text(i, &len);

			/* any count will do, as long as it is bounded */
			ck_assert_uint_le(tok_count(e, text, len), len);
			ck_assert_uint_eq(stream_count(e, text, len, random_len),
					  tok_count(e, text, len));
		}
		scratch_free(&sc);
	}
	reload_images();
}
END_TEST

static Suite *tokenizer_suite(void)
{
	Suite *s = suite_create("tokenizer");
	TCase *tc = tcase_create("reference");
	TCase *ts = tcase_create("stream");
	TCase *tm = tcase_create("misc");
	TCase *ti = tcase_create("image");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_add_test(tc, counts_match_reference);
	tcase_add_test(tc, ids_match_reference);
	tcase_add_test(tc, counts_from_many_threads);
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

	tcase_add_unchecked_fixture(ti, setup, teardown);
	tcase_set_timeout(ti, 120);
	tcase_add_test(ti, image_matches_text);
	tcase_add_test(ti, image_verifies);
	tcase_add_test(ti, damaged_images_are_rejected);
	tcase_add_test(ti, damaged_image_falls_back_to_text);
	tcase_add_test(ti, stale_image_is_not_used);
	tcase_add_test(ti, damaged_tables_never_crash);
	suite_add_tcase(s, ti);
	return s;
}

int main(void)
{
	return tu_run(tokenizer_suite());
}
