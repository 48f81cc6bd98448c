/* SPDX-License-Identifier: MIT */
/*
 * env: reads a .env file into a private table. The process environment is
 * consulted first on every lookup and never written, so a reload can read a
 * new file while other threads are running requests (setenv() would race
 * with every getenv() in libcurl and libc).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "env.h"
#include "util.h"

struct env_var {
	char *name;
	char *value;
};

struct env {
	struct env_var *vars;
	size_t n, cap;
};

struct env *env_new_empty(void)
{
	return xcalloc(1, sizeof(struct env));
}

void env_free(struct env *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++) {
		free(e->vars[i].name);
		free(e->vars[i].value);
	}
	free(e->vars);
	free(e);
}

static void env_set(struct env *e, char *name, char *value)
{
	/* A later line wins, as with a shell sourcing the file. */
	for (size_t i = 0; i < e->n; i++) {
		if (strcmp(e->vars[i].name, name) == 0) {
			free(e->vars[i].value);
			free(name);
			e->vars[i].value = value;
			return;
		}
	}
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 16;
		e->vars = xrealloc(e->vars, e->cap * sizeof(*e->vars));
	}
	e->vars[e->n].name = name;
	e->vars[e->n].value = value;
	e->n++;
}

const char *env_get(const struct env *e, const char *name)
{
	const char *v = getenv(name);

	if (v)
		return v;
	for (size_t i = 0; e && i < e->n; i++)
		if (strcmp(e->vars[i].name, name) == 0)
			return e->vars[i].value;
	return NULL;
}

static char *skip_space(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

static void rtrim(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
		     s[n - 1] == '\n'))
		s[--n] = '\0';
}

/* Parse the value part of a line in place. Double quotes understand \n, \",
 * \\ escapes; single quotes are literal; unquoted values end at " #".
 * Returns the value (inside line) or NULL with *why set. */
static char *parse_value(char *v, const char **why)
{
	char q = *v;

	if (q == '"' || q == '\'') {
		char *out = v, *in = v + 1;

		for (; *in && *in != q; in++) {
			if (q == '"' && *in == '\\' && in[1]) {
				in++;
				*out++ = *in == 'n' ? '\n' : *in;
			} else {
				*out++ = *in;
			}
		}
		if (*in != q) {
			*why = "unterminated quoted value";
			return NULL;
		}
		in = skip_space(in + 1);
		if (*in && *in != '#') {
			*why = "text after the closing quote";
			return NULL;
		}
		*out = '\0';
		return v;
	}
	for (char *p = v; *p; p++) {
		if (*p == '#' && (p == v || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	}
	rtrim(v);
	return v;
}

static int valid_name(const char *s, size_t n)
{
	if (n == 0 || isdigit((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return 0;
	return 1;
}

struct env *env_load(const char *path, int required, struct buf *errors)
{
	struct env *e = env_new_empty();
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	int bad = 0;

	f = fopen(path, "r");
	if (!f) {
		if (!required && errno == ENOENT)
			return e;
		buf_printf(errors, "%s: cannot open: %s\n", path,
			   strerror(errno));
		env_free(e);
		return NULL;
	}
	while (getline(&line, &cap, f) >= 0) {
		char *s = skip_space(line), *eq, *val;
		const char *why = NULL;
		size_t nlen;

		lineno++;
		rtrim(s);
		if (*s == '\0' || *s == '#')
			continue;
		if (strncmp(s, "export", 6) == 0 && (s[6] == ' ' || s[6] == '\t'))
			s = skip_space(s + 6);
		eq = strchr(s, '=');
		if (!eq) {
			buf_printf(errors, "%s:%u: expected KEY=VALUE\n", path,
				   lineno);
			bad = 1;
			continue;
		}
		nlen = (size_t)(eq - s);
		while (nlen && (s[nlen - 1] == ' ' || s[nlen - 1] == '\t'))
			nlen--;
		if (!valid_name(s, nlen)) {
			buf_printf(errors, "%s:%u: invalid variable name\n",
				   path, lineno);
			bad = 1;
			continue;
		}
		val = parse_value(skip_space(eq + 1), &why);
		if (!val) {
			buf_printf(errors, "%s:%u: %s\n", path, lineno, why);
			bad = 1;
			continue;
		}
		env_set(e, xstrndup(s, nlen), xstrdup(val));
	}
	free(line);
	fclose(f);
	if (bad) {
		env_free(e);
		return NULL;
	}
	return e;
}
