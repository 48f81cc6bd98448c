/* SPDX-License-Identifier: MIT */
/*
 * log: one formatted line per call, written with a single write(2) so that
 * lines from concurrent threads never interleave; see log.h.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static atomic_int log_level = LOGL_INFO;
static atomic_bool log_json = false;

static const char *const level_names[] = { "debug", "info", "warning", "error" };

int log_level_parse(const char *s)
{
	if (!s)
		return -1;
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	if (strcasecmp(s, "warn") == 0)
		return LOGL_WARNING;
	return -1;
}

void log_set_level(enum log_level lvl)
{
	atomic_store(&log_level, (int)lvl);
}

void log_set_json(bool json)
{
	atomic_store(&log_json, json);
}

bool log_enabled(enum log_level lvl)
{
	return (int)lvl >= atomic_load(&log_level);
}

static void format_time(char *out, size_t n)
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

void log_msg(enum log_level lvl, const char *group, const char *fmt, ...)
{
	char ts[64], msg[2048];
	struct buf line;
	va_list ap;

	if (!log_enabled(lvl))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	format_time(ts, sizeof(ts));
	buf_init(&line, 0);
	if (atomic_load(&log_json)) {
		buf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"group\":",
			   ts, level_names[lvl]);
		buf_append_json_str(&line, group, strlen(group));
		buf_appends(&line, ",\"msg\":");
		buf_append_json_str(&line, msg, strlen(msg));
		buf_appends(&line, "}\n");
	} else {
		/* a client's text (a model name, say) must not start a line
		 * of its own: control characters become '?' */
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		buf_printf(&line, "%s %s [%s] %s\n", ts, level_names[lvl],
			   group, msg);
	}
	/* Short writes to stderr are not worth retrying for a log line. */
	if (write(STDERR_FILENO, line.data, line.len) < 0) {
		/* nowhere left to report it */
	}
	buf_free(&line);
}
