/* SPDX-License-Identifier: MIT */
/*
 * util: allocation that aborts on out-of-memory (like lighttpd's ck_malloc:
 * a gateway that cannot allocate 100 bytes cannot do anything useful), checked
 * number parsing, monotonic time and a constant-time compare.
 */
#ifndef LB_UTIL_H
#define LB_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* Copies; NULL in gives NULL out. Caller frees. */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Parse a whole decimal string into [min, max]. Returns 0 or -1. */
int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
/* n random bytes from the kernel (getrandom). Aborts if it cannot: ids
 * must be unique. Not gnutls_rnd(): GnuTLS keeps a generator per calling
 * thread until exit, and every connection here is a new thread. */
void random_bytes(void *buf, size_t n);
/* A 64-bit value this process never returned before: a counter under a
 * bijective mix keyed by random bytes drawn once. For ids, which need
 * uniqueness and no guessable sequence, without a system call per id;
 * never for secrets (keys), which take random_bytes(). Thread-safe. */
uint64_t unique_u64(void);
/* v in decimal into out (at least 21 bytes), NUL-terminated; returns the
 * length. For the hot path, where snprintf costs a few hundred
 * instructions a number. */
size_t fmt_u64(char *out, uint64_t v);
/* The value of one hex digit, or -1. */
int hex_digit(char c);
/* The value of the 4 hex digits at p (a \uXXXX escape's), or -1 when
 * fewer than 4 bytes are left (avail) or one is not a hex digit. */
long hex4(const char *p, size_t avail);

/* Monotonic clock in microseconds / milliseconds. */
uint64_t now_us(void);
uint64_t now_ms(void);
/* A condition variable whose timed waits run on the monotonic clock (a
 * wall clock step must neither stall nor hurry them), and the deadline
 * after_us from now on that clock, for pthread_cond_timedwait(). */
void cond_init_monotonic(pthread_cond_t *c);
void monotonic_deadline(struct timespec *ts, uint64_t after_us);

/* Compare n bytes without an early exit. true when equal. */
bool ct_equal(const void *a, const void *b, size_t n);

/* ASCII case-insensitive prefix test. */
bool has_prefix_ci(const char *s, const char *prefix);

/* The length (2 to 4) of the well-formed multi-byte UTF-8 sequence at p
 * (n bytes left), or 0 where none starts: an ASCII byte, which callers
 * take as it is, a stray continuation byte, an overlong form, a
 * surrogate, past U+10FFFF, or cut short (RFC 3629 section 4). */
size_t utf8_len(const void *p, size_t n);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Make the calling thread's locale the C locale object, which makes
 * json-c's per-parse locale switch free (see util.c). Cheap to repeat. */
void thread_use_c_locale(void);

#endif
