/* SPDX-License-Identifier: MIT */
/*
 * tlsrng: gnutls_rnd() from getrandom(2); see tlsrng.h for why.
 */
#include "tlsrng.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/random.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "log.h"

typedef int (*rnd_fn)(gnutls_rnd_level_t, void *, size_t);

static atomic_ulong calls;
/* Set when GnuTLS's own generator must answer: FIPS 140 mode, or a
 * kernel (or seccomp policy) without getrandom(). */
static atomic_bool step_aside;

/* GnuTLS's gnutls_rnd(), the definition ours hides. */
static rnd_fn gnutls_own(void)
{
	static _Atomic(rnd_fn) own;
	rnd_fn f = atomic_load(&own);

	if (!f) {
		f = (rnd_fn)dlvsym(RTLD_NEXT, "gnutls_rnd", "GNUTLS_3_4");
		if (!f)
			f = (rnd_fn)dlsym(RTLD_NEXT, "gnutls_rnd");
		atomic_store(&own, f);
	}
	return f;
}

static int forward(gnutls_rnd_level_t level, void *data, size_t len)
{
	rnd_fn f = gnutls_own();

	return f ? f(level, data, len) : GNUTLS_E_RANDOM_FAILED;
}

/*
 * Interposes on libgnutls's gnutls_rnd(): see tlsrng.h. The level does not
 * matter: nonces, session keys and long-term keys all come from the kernel,
 * which is what GnuTLS seeds its own generators from. No state, so nothing
 * is kept per thread. Runs before main() too (GnuTLS's constructor).
 */
int gnutls_rnd(gnutls_rnd_level_t level, void *data, size_t len)
{
	unsigned char *p = data;

	if (atomic_load_explicit(&step_aside, memory_order_relaxed))
		return forward(level, data, len);
	while (len > 0) {
		/* blocks only until the kernel's pool is first seeded; reads
		 * above 256 bytes may come back short or be interrupted */
		ssize_t n = getrandom(p, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == ENOSYS || errno == EPERM)) {
			atomic_store(&step_aside, true);
			return forward(level, p, len);
		}
		if (n <= 0)
			return GNUTLS_E_RANDOM_FAILED;
		p += n;
		len -= (size_t)n;
	}
	atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
	return 0;
}

unsigned long tlsrng_calls(void)
{
	return atomic_load(&calls);
}

int tlsrng_init(void)
{
	gnutls_datum_t key = { NULL, 0 };
	unsigned long before;

	if (gnutls_fips140_mode_enabled()) {
		/* the approved DRBG must answer; the per-thread growth of
		 * doc/soak.md section 3 comes back */
		atomic_store(&step_aside, true);
		log_info("tls", "FIPS 140 mode: GnuTLS keeps its own random "
			 "generator");
		return -1;
	}
	/* gnutls_key_generate() takes its bytes from gnutls_rnd(): ours
	 * only if the dynamic linker bound libgnutls's calls to us */
	before = tlsrng_calls();
	if (gnutls_key_generate(&key, 16) == 0)
		gnutls_free(key.data);
	if (atomic_load(&step_aside)) {
		log_warn("tls", "getrandom() is not available: GnuTLS keeps "
			 "its own random generator");
		return -1;
	}
	if (tlsrng_calls() == before) {
		log_warn("tls", "GnuTLS does not take its random numbers from "
			 "llm-bridge: each thread that makes a TLS handshake "
			 "keeps about 230 bytes until exit");
		return -1;
	}
	return 0;
}
