/* SPDX-License-Identifier: MIT */
/*
 * tlsrng: GnuTLS's random numbers, from the kernel.
 *
 * Why: GnuTLS 3.7 gives every thread that calls gnutls_rnd() a generator
 * context of its own and keeps it on a global list until
 * gnutls_global_deinit(), which never runs while the library is loaded.
 * llm-bridge starts a thread per connection (TLS tunnels, libmicrohttpd,
 * WebSocket chats), and every such thread that does a TLS handshake,
 * inbound in src/tls.c or upstream inside libcurl, left about 230 bytes
 * behind for good (doc/soak.md, section 3).
 *
 * GnuTLS 3.4 removed gnutls_crypto_rnd_register(), so the generator cannot
 * be replaced through its API. But libgnutls calls gnutls_rnd() through
 * its PLT, so this executable defines gnutls_rnd() itself and the dynamic
 * linker binds every caller (GnuTLS's handshakes, libcurl) to it. It
 * answers from getrandom(2), the kernel's CSPRNG, for every level, and
 * keeps no per-thread state. In FIPS 140 mode it hands every call to
 * GnuTLS's own (approved) generator instead.
 */
#ifndef LB_TLSRNG_H
#define LB_TLSRNG_H

/*
 * Call once, early in main(). The replacement is in effect from load
 * time whatever happens here; this checks that GnuTLS really takes its
 * randomness from it (a warning in the log if not) and steps aside in
 * FIPS 140 mode. 0 when in effect, -1 when GnuTLS uses its own.
 */
int tlsrng_init(void);

/* Calls answered from getrandom() so far (tests). */
unsigned long tlsrng_calls(void);

#endif
