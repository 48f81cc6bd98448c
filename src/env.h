/* SPDX-License-Identifier: MIT */
/*
 * env: the .env file (KEY=VALUE lines, # comments, optional quotes and a
 * leading "export") overlaid by the process environment, which wins.
 * The process environment is never modified: setenv() is not thread-safe,
 * and a reload must be able to read a fresh file while requests run.
 */
#ifndef LB_ENV_H
#define LB_ENV_H

#include <stddef.h>

struct buf;
struct env;

/* Load path into a new env. A missing file is an error only when required
 * is non-zero (an explicit --env-file); otherwise it yields an env holding
 * only the process environment. On a syntax error returns NULL and appends
 * "path:line: message\n" lines to errors. Caller frees with env_free(). */
struct env *env_load(const char *path, int required, struct buf *errors);
/* An env with only the process environment. Never NULL. */
struct env *env_new_empty(void);
/* The value of name: the process environment first, then the file.
 * Valid until env_free(). NULL when unset. */
const char *env_get(const struct env *e, const char *name);
void env_free(struct env *e);

#endif
