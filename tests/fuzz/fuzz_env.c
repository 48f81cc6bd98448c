/* SPDX-License-Identifier: MIT */
/*
 * fuzz_env: the .env loader. Input: a .env file, read through an
 * in-memory file (env_load takes a path). A load succeeds with no error
 * text or fails with some; every name the file defines (as far as a
 * simple KEY= scan finds them) must then look up to a string.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_init();
	return 0;
}

static volatile size_t sink;

/* Look up every leading NAME in the text before '='. */
static void lookups(const struct env *e, const uint8_t *data, size_t size)
{
	char name[128];
	size_t i = 0;

	while (i < size) {
		size_t j = 0;
		const char *v;

		while (i < size && (data[i] == ' ' || data[i] == '\t'))
			i++;
		while (i < size && j < sizeof(name) - 1 &&
		       data[i] != '=' && data[i] != '\n' && data[i] != ' ')
			name[j++] = (char)data[i++];
		name[j] = '\0';
		if (j && i < size && data[i] == '=') {
			v = env_get(e, name);
			if (v)
				sink += strlen(v); /* must be a string */
		}
		while (i < size && data[i] != '\n')
			i++;
		i++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	struct buf errors;
	struct env *e;
	int fd;

	if (size > (1u << 20))
		return 0;
	fd = fz_memfile(data, size, path, sizeof(path));
	buf_init(&errors, 0);
	e = env_load(path, 1, &errors);
	close(fd);
	if (e) {
		if (errors.len)
			abort(); /* loaded, yet complained */
		lookups(e, data, size);
		env_free(e);
	} else if (!errors.len) {
		abort(); /* refused without saying why */
	}
	buf_free(&errors);
	return 0;
}
