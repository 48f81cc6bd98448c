/* SPDX-License-Identifier: MIT */
/*
 * memtrim: see memtrim.h.
 *
 * glibc's malloc keeps what a thread frees in that thread's arena for
 * reuse. After 64 concurrent requests and 256 WebSocket streams the daemon
 * held 26.7 MB, of which malloc_trim(0) gave 5.6 MB back. malloc_trim()
 * walks every arena under that arena's lock, so it runs only when the
 * daemon is quiet: nothing in flight and nothing ended for quiet_ms.
 *
 * One thread waits for that moment. It sleeps without a timeout until a
 * request ends with nothing else in flight, then until quiet_ms after the
 * last end; if requests are in flight by then, it sleeps until the last
 * of them ends. So an idle daemon never wakes up, and a busy one wakes it
 * about once per quiet_ms. The request path touches three atomics and
 * the clock, and takes the lock only when it ends the last request in
 * flight while no trim is pending.
 *
 * A request that starts and ends just as the thread decides the daemon is
 * quiet may see a trim pending and not arm another: its garbage waits
 * for the next quiet moment. Harmless, and cheaper than a lock on every
 * request.
 */
#include "memtrim.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	atomic_bool running;     /* the thread exists */
	bool stopping;           /* {lock} */
	atomic_bool armed;       /* written under lock: a trim is pending */
	atomic_int inflight;
	atomic_uint_fast64_t last_end_us;
	atomic_uint_fast64_t ends;
	atomic_uint_fast64_t trims;
	uint64_t quiet_us;
	void (*trim)(void);
} T = { .lock = PTHREAD_MUTEX_INITIALIZER };

#ifdef HAVE_MALLOC_TRIM
/* Resident set in kB, from /proc/self/statm; -1 if unreadable. */
static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = -1, size;

	if (!f)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &pages) != 2)
		pages = -1;
	fclose(f);
	return pages < 0 ? -1 : pages * (sysconf(_SC_PAGESIZE) / 1024);
}
#endif

void memtrim_heap(void)
{
#ifdef HAVE_MALLOC_TRIM
	long before = rss_kb(), after;

	malloc_trim(0);
	after = rss_kb();
	log_debug("memtrim", "quiet: gave free heap back, RSS %ld -> %ld kB",
		  before, after);
#endif
}

static void *trim_main(void *arg)
{
	uint64_t trimmed_at = 0; /* T.ends at the last trim */

	(void)arg;
	pthread_mutex_lock(&T.lock);
	while (!T.stopping) {
		uint64_t now, quiet_at, ends;
		struct timespec ts;

		if (!atomic_load(&T.armed)) {
			pthread_cond_wait(&T.wake, &T.lock);
			continue;
		}
		if (atomic_load(&T.inflight) > 0) {
			/* sleep until the last request in flight ends and
			 * arms the thread again; the second look catches one
			 * that ended before armed was cleared */
			atomic_store(&T.armed, false);
			if (atomic_load(&T.inflight) <= 0)
				atomic_store(&T.armed, true);
			continue;
		}
		now = now_us();
		quiet_at = atomic_load(&T.last_end_us) + T.quiet_us;
		if (now < quiet_at) {
			monotonic_deadline(&ts, quiet_at - now);
			pthread_cond_timedwait(&T.wake, &T.lock, &ts);
			continue;
		}
		atomic_store(&T.armed, false);
		ends = atomic_load(&T.ends);
		if (ends == trimmed_at)
			continue;
		trimmed_at = ends;
		pthread_mutex_unlock(&T.lock);
		T.trim();
		atomic_fetch_add(&T.trims, 1);
		pthread_mutex_lock(&T.lock);
	}
	pthread_mutex_unlock(&T.lock);
	return NULL;
}

int memtrim_start(unsigned quiet_ms, void (*trim)(void))
{
	if (!trim) {
#ifdef HAVE_MALLOC_TRIM
		trim = memtrim_heap;
#else
		return 0;
#endif
	}
	T.trim = trim;
	T.quiet_us = (uint64_t)quiet_ms * 1000;
	T.stopping = false;
	atomic_store(&T.armed, false);
	atomic_store(&T.trims, 0);
	cond_init_monotonic(&T.wake);
	if (pthread_create(&T.thread, NULL, trim_main, NULL) != 0) {
		pthread_cond_destroy(&T.wake);
		return -1;
	}
	atomic_store(&T.running, true);
	return 0;
}

void memtrim_stop(void)
{
	if (!atomic_load(&T.running))
		return;
	pthread_mutex_lock(&T.lock);
	T.stopping = true;
	pthread_cond_signal(&T.wake);
	pthread_mutex_unlock(&T.lock);
	pthread_join(T.thread, NULL);
	pthread_cond_destroy(&T.wake);
	atomic_store(&T.running, false);
}

void memtrim_busy(void)
{
	atomic_fetch_add(&T.inflight, 1);
}

void memtrim_idle(void)
{
	atomic_store(&T.last_end_us, now_us());
	atomic_fetch_add(&T.ends, 1);
	if (atomic_fetch_sub(&T.inflight, 1) != 1 || atomic_load(&T.armed) ||
	    !atomic_load(&T.running))
		return;
	pthread_mutex_lock(&T.lock);
	if (!atomic_load(&T.armed)) {
		atomic_store(&T.armed, true);
		pthread_cond_signal(&T.wake);
	}
	pthread_mutex_unlock(&T.lock);
}

uint64_t memtrim_count(void)
{
	return atomic_load(&T.trims);
}

uint64_t memtrim_last_end_us(void)
{
	return atomic_load(&T.last_end_us);
}
