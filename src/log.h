/* SPDX-License-Identifier: MIT */
/*
 * log: leveled, structured log lines to stderr (and later a rotated file).
 * Levels: debug = tracing a request; info = lifecycle and one audit line per
 * request; warning = something was ignored or degraded; error = something
 * failed and an operator should look. Each line is one write(), so lines from
 * concurrent threads never interleave. Secrets never reach this module.
 */
#ifndef LB_LOG_H
#define LB_LOG_H

#include <stdbool.h>

enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARNING, LOGL_ERROR };

/* Parse "debug"/"info"/"warning"/"warn"/"error". Returns -1 if unknown. */
int log_level_parse(const char *s);
/* Thread-safe: may be called at any time (reload). */
void log_set_level(enum log_level lvl);
void log_set_json(bool json);
bool log_enabled(enum log_level lvl);

/* group: a short subsystem tag ("http", "config", "upstream", ...). */
void log_msg(enum log_level lvl, const char *group, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_debug(g, ...) \
	do { if (log_enabled(LOGL_DEBUG)) log_msg(LOGL_DEBUG, g, __VA_ARGS__); } while (0)
#define log_info(g, ...) log_msg(LOGL_INFO, g, __VA_ARGS__)
#define log_warn(g, ...) log_msg(LOGL_WARNING, g, __VA_ARGS__)
#define log_error(g, ...) log_msg(LOGL_ERROR, g, __VA_ARGS__)

#endif
