/* SPDX-License-Identifier: MIT */
/*
 * tokenizer: exact token counts for OpenAI's o200k_base and cl100k_base BPE
 * encodings (what tiktoken's encode_ordinary would return, length only).
 *
 * Text is split into pre-tokens with each encoding's split regex (PCRE2,
 * JIT when available), then every pre-token is byte-pair merged by rank.
 * The rank tables come from tiktoken's plain "<base64 token> <rank>"
 * files, compiled at build time into images (NAME.tokimg, made by tokimg
 * with tok_image_write()) that tok_load() maps read-only; the text files
 * themselves still load, more slowly, where there is no image.
 *
 * Threads: tok_load() is called once at startup, before other threads use
 * the tokenizer. After that the encodings are immutable and shared; every
 * function below is safe to call from any thread (match data and merge
 * scratch are per call or per stream; the JIT's stacks are lent out one
 * per text being matched). tok_unload() frees them at exit.
 */
#ifndef LB_TOKENIZER_H
#define LB_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "buf.h"

struct tok_encoding; /* opaque; owned by the module, never freed by callers */

/* Load o200k_base from dir now and cl100k_base on first use
 * (tok_encoding(), thread-safe). Each is NAME.tokimg, mapped, or when
 * there is no usable image NAME.tiktoken, parsed (an image that exists but
 * is corrupt, stale or of another version is logged, then the text is
 * tried). Returns 0, or -1 with a message appended to errors (may be NULL)
 * when neither file is usable. An encoding that failed stays unavailable;
 * loading again after success is a no-op. Call before starting threads. */
int tok_load(const char *dir, struct buf *errors);
/* Free everything tok_load() built (for leak checkers). */
void tok_unload(void);

/* "o200k_base" or "cl100k_base"; NULL when unknown or not loaded. */
const struct tok_encoding *tok_encoding(const char *name);
const char *tok_encoding_name(const struct tok_encoding *e);
/* Whether e's tables are mapped from an image (false: parsed text). */
bool tok_encoding_mapped(const struct tok_encoding *e);

/* Compile the .tiktoken file src of encoding name into an image at out
 * (what the build's tokimg does). Returns 0, or -1 with a message
 * appended to errors (may be NULL). */
int tok_image_write(const char *name, const char *src, const char *out,
		    struct buf *errors);
/* Check the image at path as tok_load() does and also its tables'
 * checksum, which tok_load() skips because it reads every page. Returns
 * 0, or -1 with a message appended to errors (may be NULL). */
int tok_image_verify(const char *name, const char *path, struct buf *errors);

/* The encoding a model uses. A "provider/" prefix and a "<variant>" suffix
 * are stripped first. gpt-4o*, gpt-4.1*, gpt-4.5*, gpt-5*, o1*, o3*, o4*,
 * chatgpt-4o* use o200k_base; gpt-4*, gpt-3.5*, text-embedding-3*,
 * text-embedding-ada-002 use cl100k_base. Every other model (claude, gemini,
 * deepseek...) gets o200k_base as an estimate: their real tokenizers are not
 * public or not BPE-compatible. NULL only when not loaded. */
const struct tok_encoding *tok_for_model(const char *model);

/* Exact token count of text as ordinary text: special tokens such as
 * <|endoftext|> count as the plain characters they are made of. Invalid
 * UTF-8 bytes form pre-tokens of their own (each byte has a token). */
size_t tok_count(const struct tok_encoding *e, const char *text, size_t len);
/* The token ids themselves (tiktoken's encode_ordinary): stores up to max
 * ids and returns how many there are (call again with more room if that
 * is > max). Slower than tok_count; meant for tests and debugging. */
size_t tok_encode(const struct tok_encoding *e, const char *text, size_t len,
		  uint32_t *ids, size_t max);

/*
 * Incremental counting of a text that arrives in pieces. The total equals
 * tok_count() of the concatenation: only text after the last pre-token
 * that can no longer change is kept (PCRE2 hard partial matching tells
 * which matches would change if more text came). The kept tail is bounded
 * by TOK_STREAM_MAX_TAIL: a single pre-token longer than that (a run of
 * 64 KiB of letters or spaces) is cut there, which can miscount by a token
 * or two; nothing else is approximated.
 */
#define TOK_STREAM_MAX_TAIL ((size_t)64 * 1024)

struct tok_stream {
	const struct tok_encoding *enc;
	char *tail;     /* pending text not yet counted; owned */
	size_t len;
	size_t cap;
	size_t count;   /* tokens of the text already consumed */
	void *md;       /* PCRE2 match data, created on first feed; owned */
};

void tok_stream_init(struct tok_stream *st, const struct tok_encoding *e);
void tok_stream_feed(struct tok_stream *st, const char *piece, size_t len);
/* Count what is left and return the total. The stream is then empty and
 * may be fed again (starting a new text) or freed. */
size_t tok_stream_finish(struct tok_stream *st);
void tok_stream_free(struct tok_stream *st);

/*
 * Prompt tokens of a chat request by OpenAI's published rule (cookbook
 * "How to count tokens with tiktoken", gpt-4o / gpt-4 family): each message
 * costs 3, plus the tokens of each of its string values (role, content,
 * name, tool_call_id...), plus 1 when it has a name; the reply is primed
 * with 3 more. Content given as an array of parts counts its text parts;
 * image, audio and file parts add nothing (their cost depends on size and
 * detail the request does not fully carry). Tool calls count their
 * function name and arguments strings. Returns -1 when messages is not an
 * array of objects. It is an estimate for tools definitions and images,
 * exact for plain text chats.
 */
int64_t tok_count_messages(const struct tok_encoding *e, json_object *messages);

/* Where the rank tables (images or text) are: $LB_TOKENIZER_DIR, else
 * PKGLIBDIR "/tokenizer" when installed, else "tokdata" next to the
 * executable (a build tree, where the build writes the images). Returns env, a literal, or buf (size >= PATH_MAX-ish). */
const char *tok_data_dir(char *buf, size_t size);

/* `llm-bridge tokens [--encoding NAME | --model MODEL] < FILE`: print the
 * token count of stdin. Data from $LB_TOKENIZER_DIR or PKGLIBDIR
 * "/tokenizer". Returns the process exit status. */
int tok_cli(int argc, char **argv);

#endif
