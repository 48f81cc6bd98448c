/* SPDX-License-Identifier: MIT */
/*
 * tokimg: the build's tokenizer image compiler. Turns a tiktoken rank file
 * into the NAME.tokimg image that tok_load() maps at start-up, using the
 * tokenizer's own parser and layout (tok_image_write), so the image is by
 * construction what parsing the text at run time would have built.
 *
 * Usage: tokimg ENCODING SRC.tiktoken OUT.tokimg
 *        tokimg --verify ENCODING IMAGE.tokimg
 * The image is written to OUT.tmp and renamed, so an interrupted build
 * never leaves a half-written image that looks current to make.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tokenizer.h"

int main(int argc, char **argv)
{
	struct buf errors, tmp;
	int rc = EXIT_FAILURE;

	buf_init(&errors, 0);
	buf_init(&tmp, 0);
	if (argc == 4 && !strcmp(argv[1], "--verify")) {
		if (tok_image_verify(argv[2], argv[3], &errors) == 0)
			rc = EXIT_SUCCESS;
		goto out;
	}
	if (argc != 4 || argv[1][0] == '-') {
		fprintf(stderr, "usage: tokimg ENCODING SRC.tiktoken OUT.tokimg\n"
			"       tokimg --verify ENCODING IMAGE.tokimg\n");
		rc = 2;
		goto out;
	}
	buf_printf(&tmp, "%s.tmp", argv[3]);
	if (tok_image_write(argv[1], argv[2], tmp.data, &errors) < 0 ||
	    tok_image_verify(argv[1], tmp.data, &errors) < 0) {
		remove(tmp.data);
		goto out;
	}
	if (rename(tmp.data, argv[3]) != 0) {
		perror(argv[3]);
		remove(tmp.data);
		goto out;
	}
	rc = EXIT_SUCCESS;
out:
	if (errors.data)
		fprintf(stderr, "tokimg: %s", errors.data);
	buf_free(&errors);
	buf_free(&tmp);
	return rc;
}
