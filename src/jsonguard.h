/* SPDX-License-Identifier: MIT */
/*
 * jsonguard: checks on the raw text of a client's JSON that json-c does
 * not make, run before it parses. json-c quietly turns a lone UTF-16
 * surrogate into U+FFFD, saturates an integer that does not fit in 64 bits,
 * reads 1e400 as infinity (and sends "1e400" on upstream), keeps the last
 * of two equal keys, and lets raw control characters through inside
 * strings. A request that depends on any of these would reach the
 * provider as something other than what the client wrote, so each is a
 * 400 naming the problem instead.
 *
 * One pass over the bytes, no recursion: nesting deeper than max_depth is
 * refused before anything is built.
 */
#ifndef LB_JSONGUARD_H
#define LB_JSONGUARD_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "apierr.h"

struct buf;

/* 0 when the text passes; -1 with a 400 invalid_request_error in err
 * (param: the top-level field concerned, when it is a known one). The
 * text must still be parsed: only the problems above are looked for. */
int jsonguard_check(const char *text, size_t len, unsigned max_depth,
		    struct api_error *err);

/* Call before json-c parses a text (a request, or a provider's answer):
 * json-c 0.16 turns the escaped surrogate pairs of 32,768 characters
 * (code points ending in D800-DFFF, such as U+1D800 or U+2DC00) into
 * U+FFFD. When *text holds any, scratch gets a copy with each of them
 * spelled in UTF-8 (the same JSON value), *text and *len point at it, and
 * the result is true; otherwise nothing changes. scratch stays the
 * caller's to free, after the text is parsed. */
bool jsonguard_unmangle(const char **text, size_t *len, struct buf *scratch);

/* json-c's reading of text[0..len), repaired by jsonguard_unmangle()
 * first, with tok (reset here: the caller's, to keep for many parses, and
 * its depth and flags apply). NULL unless the whole text is one JSON
 * value; the caller puts what it gets. For a text already checked (a
 * span of jsonspan) or one json-c must judge (a provider's body). */
json_object *jsonguard_parse(json_tokener *tok, const char *text, size_t len);

/* The static spelling of a known Chat Completions field, or NULL. */
const char *jsonguard_field(const char *name, size_t len);

#endif
