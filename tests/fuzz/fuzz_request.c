/* SPDX-License-Identifier: MIT */
/*
 * fuzz_request: the request text path against the json-c checks. Input:
 * a client's request body. Whatever request_text_check() takes must be
 * what json-c reads and request_validate() accepts, rewritten without a
 * member lost or changed (tests/request_agree.h); a broken promise
 * aborts, with what broke it on stderr.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "../request_agree.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *broken;

	if (size > (1u << 20))
		return 0;
	broken = request_agree((const char *)data, size);
	if (broken) {
		fprintf(stderr, "request text path: %s\n", broken);
		abort();
	}
	return 0;
}
