/* SPDX-License-Identifier: MIT */
/*
 * log: leveled, structured log lines to stderr and/or a size-rotated file.
 * Levels: debug = tracing a request; info = lifecycle and one audit line per
 * request; warning = something was ignored or degraded; error = something
 * failed and an operator should look. Secrets never reach this module.
 *
 * Lines are JSON objects or "time level [group] msg k=v ..." text. When
 * stderr is the systemd journal ($JOURNAL_STREAM names it), console lines
 * carry no timestamp of their own and start with the syslog priority
 * ("<6>"), which journald turns into the entry's priority.
 *
 * Each line is built whole and written with one write(2) under the log
 * mutex, which also covers the file's rotation, so concurrent threads
 * never interleave, tear or lose a line across a rotation.
 */
#ifndef LB_LOG_H
#define LB_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARNING, LOGL_ERROR };

/* Parse "debug"/"info"/"warning"/"warn"/"error". Returns -1 if unknown. */
int log_level_parse(const char *s);
/* Thread-safe: may be called at any time (reload). */
void log_set_level(enum log_level lvl);
void log_set_json(bool json);
bool log_enabled(enum log_level lvl);

/*
 * Where lines go. console: stderr. path: a file (NULL = none), appended
 * to and rotated when a write would take it past max_size: path.N-1 ->
 * path.N ... path -> path.1, keeping backup_count old files (0: the file
 * is truncated instead). Returns 0, or -1 when the file cannot be opened
 * (the previous outputs then stay). Thread-safe; called on start-up and
 * reload.
 */
int log_set_output(bool console, const char *path, int64_t max_size,
		   int backup_count);
/* Close the file (at exit, for leak checkers). */
void log_close(void);

/* group: a short subsystem tag ("http", "config", "upstream", ...). */
void log_msg(enum log_level lvl, const char *group, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* One named field of a structured line. */
enum log_kv_type { LKV_STR, LKV_INT, LKV_UINT, LKV_DBL, LKV_BOOL };

struct log_kv {
	const char *key;
	enum log_kv_type type;
	union {
		const char *s; /* NULL is logged as null / "-" */
		int64_t i;
		uint64_t u;
		double d;
		bool b;
	} v;
};

#define LKV_S(k, x) { (k), LKV_STR, { .s = (x) } }
#define LKV_I(k, x) { (k), LKV_INT, { .i = (int64_t)(x) } }
#define LKV_U(k, x) { (k), LKV_UINT, { .u = (uint64_t)(x) } }
#define LKV_D(k, x) { (k), LKV_DBL, { .d = (double)(x) } }
#define LKV_B(k, x) { (k), LKV_BOOL, { .b = (x) } }

/* A line with msg and fields: JSON members, or " k=v" in text. */
void log_kv(enum log_level lvl, const char *group, const char *msg,
	    const struct log_kv *kv, size_t n);

#define log_debug(g, ...) \
	do { if (log_enabled(LOGL_DEBUG)) log_msg(LOGL_DEBUG, g, __VA_ARGS__); } while (0)
#define log_info(g, ...) log_msg(LOGL_INFO, g, __VA_ARGS__)
#define log_warn(g, ...) log_msg(LOGL_WARNING, g, __VA_ARGS__)
#define log_error(g, ...) log_msg(LOGL_ERROR, g, __VA_ARGS__)

#endif
