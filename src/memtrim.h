/* SPDX-License-Identifier: MIT */
/*
 * memtrim: give the heap's free pages back to the system once no request
 * has run for a while. A burst of concurrent requests (a thread each,
 * and with it a malloc arena) leaves megabytes free but resident in the
 * arenas; an idle daemon should not hold them.
 */
#ifndef LB_MEMTRIM_H
#define LB_MEMTRIM_H

#include <stdint.h>

/* Start the thread that trims once no request is in flight and none has
 * ended for quiet_ms, calling trim then. trim NULL: memtrim_heap(), or no
 * thread at all where the C library has no malloc_trim(). Returns -1 if
 * the thread cannot start. */
int memtrim_start(unsigned quiet_ms, void (*trim)(void));
/* malloc_trim(0) (a no-op without it): for a trim function to end with. */
void memtrim_heap(void);
/* Stop and join the thread (a no-op when it was not started). */
void memtrim_stop(void);

/* A request began / ended. Thread-safe, lock-free unless the request
 * ending is the last in flight and no trim is pending yet. */
void memtrim_busy(void);
void memtrim_idle(void);

/* Trims done so far, and the monotonic time (now_us()) at which the last
 * request ended, 0 before any. */
uint64_t memtrim_count(void);
uint64_t memtrim_last_end_us(void);

#endif
