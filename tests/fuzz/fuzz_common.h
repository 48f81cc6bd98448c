/* SPDX-License-Identifier: MIT */
/*
 * fuzz_common: helpers shared by the libFuzzer harnesses in tests/fuzz.
 * Each harness defines LLVMFuzzerTestOneInput and links the daemon's own
 * objects (src/liblb.a), so what is fuzzed is what the daemon runs.
 */
#ifndef LB_FUZZ_COMMON_H
#define LB_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "adapter.h"
#include "buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Quiet the daemon's log (warnings for unknown keys would flood the
 * fuzzer's output); FUZZ_LOG=debug turns it back on. */
void fz_init(void);

/* An anonymous in-memory file holding data, for loaders that take a
 * path: fills path ("/proc/self/fd/N") and returns the fd to close. */
int fz_memfile(const void *data, size_t n, char *path, size_t pathlen);

/* A fixed provider and call for adapter harnesses. */
void fz_call(struct adapter_call *call, struct provider_cfg *prov,
	     const char *adapter);

/* A stand-in for fetch_media: no network. URLs containing "fail" fail
 * with a 400, "nomime" answer without a content type, the rest give the
 * URL's bytes as an image/png. */
int fz_fetch(void *ud, const char *url, struct buf *data, char *mime,
	     size_t mimelen, struct api_error *err);

/* Emit callback as the pipeline uses it: serialise the chunk. Stops
 * (client gone) after stop_after chunks when that is non-zero. */
struct fz_emit {
	unsigned chunks;
	unsigned stop_after;
	size_t bytes;
};
int fz_emit_chunk(void *ud, json_object *chunk);

/* Parse all of s as one JSON text (nesting up to 1000): NULL if it is
 * not exactly that. For checking what the daemon sends. */
json_object *fz_parse_all(const char *s, size_t n);

/* Check an api_error the way a front would use it: serialise it. */
void fz_check_error(const struct api_error *err);

#endif
