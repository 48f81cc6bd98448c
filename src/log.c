/* SPDX-License-Identifier: MIT */
/*
 * log: one formatted line per call, written with a single write(2) under
 * the output mutex; see log.h.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

static atomic_int log_level = LOGL_INFO;
static atomic_bool log_json = false;

static const char *const level_names[] = { "debug", "info", "warning", "error" };
/* syslog priorities: LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR */
static const int level_prio[] = { 7, 6, 4, 3 };

/* Outputs. {out_lock} */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	bool console;
	int fd;                /* the log file, or -1 */
	char *path;
	int64_t size;          /* bytes in the file now */
	int64_t max_size;
	int backups;
} out = { .console = true, .fd = -1 };
static atomic_bool has_file; /* out.fd >= 0, readable without the lock */

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

/* systemd sets JOURNAL_STREAM=<dev>:<inode> of the stream it connected to
 * stdout/stderr; if stderr still is that stream, journald is listening. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

/* Open for appending; a missing parent directory is made (one level, as
 * the original LLM Bridge made its logs/ directory). */
static int open_log(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	char dir[4096];
	char *slash;

	if (fd >= 0 || errno != ENOENT)
		return fd;
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return -1;
	*slash = '\0';
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return -1;
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int log_set_output(bool console, const char *path, int64_t max_size,
		   int backup_count)
{
	int fd = -1;
	struct stat st;

	if (path) {
		fd = open_log(path);
		if (fd < 0) {
			log_error("log", "cannot open log file %s: %s", path,
				  strerror(errno));
			return -1;
		}
	}
	pthread_mutex_lock(&out_lock);
	if (out.fd >= 0)
		close(out.fd);
	free(out.path);
	out.console = console;
	out.fd = fd;
	out.path = path ? strdup(path) : NULL;
	out.size = fd >= 0 && fstat(fd, &st) == 0 ? (int64_t)st.st_size : 0;
	out.max_size = max_size;
	out.backups = backup_count;
	atomic_store(&has_file, fd >= 0);
	pthread_mutex_unlock(&out_lock);
	return 0;
}

void log_close(void)
{
	pthread_mutex_lock(&out_lock);
	if (out.fd >= 0)
		close(out.fd);
	out.fd = -1;
	atomic_store(&has_file, false);
	free(out.path);
	out.path = NULL;
	out.console = true;
	pthread_mutex_unlock(&out_lock);
}

/* Shift path.N-1 -> path.N, ..., path -> path.1, and start a new file.
 * {out_lock} held: no line is written meanwhile, so none is lost or torn
 * and each lands whole in exactly one file. */
static void rotate(void)
{
	char from[4096], to[4096];
	int fd;

	if (out.backups > 0) {
		for (int i = out.backups - 1; i >= 1; i--) {
			snprintf(from, sizeof(from), "%s.%d", out.path, i);
			snprintf(to, sizeof(to), "%s.%d", out.path, i + 1);
			rename(from, to); /* a missing one is fine */
		}
		snprintf(to, sizeof(to), "%s.1", out.path);
		rename(out.path, to);
		fd = open(out.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			  0640);
	} else {
		fd = open(out.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			  0640);
	}
	if (fd < 0)
		return; /* keep writing to the old (renamed) file */
	close(out.fd);
	out.fd = fd;
	out.size = 0;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere left to report it */
		p += w;
		n -= (size_t)w;
	}
}

static void format_time(char *o, size_t n)
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(o, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));
}

static void kv_json(struct buf *b, const struct log_kv *kv)
{
	buf_appends(b, ",");
	buf_append_json_str(b, kv->key, strlen(kv->key));
	buf_appends(b, ":");
	switch (kv->type) {
	case LKV_STR:
		if (kv->v.s)
			buf_append_json_str(b, kv->v.s, strlen(kv->v.s));
		else
			buf_appends(b, "null");
		break;
	case LKV_INT:
		buf_printf(b, "%lld", (long long)kv->v.i);
		break;
	case LKV_UINT:
		buf_printf(b, "%llu", (unsigned long long)kv->v.u);
		break;
	case LKV_DBL:
		buf_printf(b, isfinite(kv->v.d) ? "%.3f" : "null", kv->v.d);
		break;
	case LKV_BOOL:
		buf_appends(b, kv->v.b ? "true" : "false");
		break;
	}
}

/* Text values that would break "k=v" parsing are quoted as JSON. */
static void kv_text(struct buf *b, const struct log_kv *kv)
{
	const char *s = kv->v.s;

	buf_printf(b, " %s=", kv->key);
	switch (kv->type) {
	case LKV_STR:
		if (!s || !*s)
			buf_appends(b, "-");
		else if (strpbrk(s, " \"=\n\r\t\\"))
			buf_append_json_str(b, s, strlen(s));
		else
			buf_appends(b, s);
		break;
	case LKV_INT:
		buf_printf(b, "%lld", (long long)kv->v.i);
		break;
	case LKV_UINT:
		buf_printf(b, "%llu", (unsigned long long)kv->v.u);
		break;
	case LKV_DBL:
		buf_printf(b, "%.3f", kv->v.d);
		break;
	case LKV_BOOL:
		buf_appends(b, kv->v.b ? "true" : "false");
		break;
	}
}

/* A client's text (a model name, say) must not start a text line of its
 * own: control characters become '?'. */
static void append_plain(struct buf *b, const char *s)
{
	size_t start = b->len;

	buf_appends(b, s);
	for (size_t i = start; i < b->len; i++)
		if ((unsigned char)b->data[i] < 0x20 || b->data[i] == 0x7f)
			b->data[i] = '?';
}

/* Build the line (with or without its own timestamp) into b. */
static void format_line(struct buf *b, bool stamp, enum log_level lvl,
			const char *group, const char *msg,
			const struct log_kv *kv, size_t n)
{
	char ts[64];

	format_time(ts, sizeof(ts));
	if (atomic_load(&log_json)) {
		buf_appends(b, "{");
		if (stamp)
			buf_printf(b, "\"time\":\"%s\",", ts);
		buf_printf(b, "\"level\":\"%s\",\"group\":", level_names[lvl]);
		buf_append_json_str(b, group, strlen(group));
		buf_appends(b, ",\"msg\":");
		buf_append_json_str(b, msg, strlen(msg));
		for (size_t i = 0; i < n; i++)
			kv_json(b, &kv[i]);
		buf_appends(b, "}\n");
	} else {
		if (stamp)
			buf_printf(b, "%s ", ts);
		buf_printf(b, "%s [%s] ", level_names[lvl], group);
		append_plain(b, msg);
		for (size_t i = 0; i < n; i++)
			kv_text(b, &kv[i]);
		buf_appends(b, "\n");
	}
}

static bool journal_mode(void)
{
	static atomic_int journal = -1; /* -1 not yet known */
	int j = atomic_load(&journal);

	if (j < 0) {
		j = stderr_is_journal();
		atomic_store(&journal, j);
	}
	return j;
}

/* Lines are formatted outside the lock; the lock covers only the writes
 * and the rotation between them. */
static void emit(enum log_level lvl, const char *group, const char *msg,
		 const struct log_kv *kv, size_t n)
{
	struct buf line, console;
	bool journal = journal_mode();

	buf_init(&line, 0);
	buf_init(&console, 0);
	if (journal)
		buf_printf(&console, "<%d>", level_prio[lvl]);
	format_line(&console, !journal, lvl, group, msg, kv, n);
	if (atomic_load(&has_file))
		format_line(&line, true, lvl, group, msg, kv, n);
	pthread_mutex_lock(&out_lock);
	if (out.console)
		write_all(STDERR_FILENO, console.data, console.len);
	if (out.fd >= 0 && line.len) {
		if (out.max_size > 0 && out.size > 0 &&
		    out.size + (int64_t)line.len > out.max_size)
			rotate();
		write_all(out.fd, line.data, line.len);
		out.size += (int64_t)line.len;
	}
	pthread_mutex_unlock(&out_lock);
	buf_free(&line);
	buf_free(&console);
}

void log_msg(enum log_level lvl, const char *group, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (!log_enabled(lvl))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	emit(lvl, group, msg, NULL, 0);
}

void log_kv(enum log_level lvl, const char *group, const char *msg,
	    const struct log_kv *kv, size_t n)
{
	if (log_enabled(lvl))
		emit(lvl, group, msg, kv, n);
}
