/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for tlsrng: GnuTLS takes its random numbers from llm-bridge's
 * gnutls_rnd(), and so a thread that makes a TLS handshake and exits
 * leaves nothing behind (GnuTLS's own generator kept ~230 bytes per
 * thread until exit, doc/soak.md section 3).
 *
 * Each handshake runs on a thread of its own, as in the daemon: a client
 * and a server session over a socketpair, driven in turn without
 * blocking. PSK keeps the test free of certificates; the handshake is
 * still TLS 1.3 with an ECDHE key exchange.
 */
#include <check.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "testutil.h"
#include "tlsrng.h"

#define THREADS 2000
/* GnuTLS's own generator keeps ~230 bytes a thread: 460 KB here. */
#define KEPT_MAX ((size_t)THREADS * 16)

static gnutls_psk_server_credentials_t server_cred;
static gnutls_psk_client_credentials_t client_cred;
static gnutls_priority_t prio;
static const gnutls_datum_t psk = { (unsigned char *)"0123456789abcdef", 16 };

static int server_psk(gnutls_session_t s, const char *user,
		      gnutls_datum_t *key)
{
	key->data = gnutls_malloc(psk.size);
	if (!key->data)
		return -1;
	memcpy(key->data, psk.data, psk.size);
	key->size = psk.size;
	return 0;
}

static void setup(void)
{
	ck_assert_int_eq(gnutls_psk_allocate_server_credentials(&server_cred), 0);
	gnutls_psk_set_server_credentials_function(server_cred, server_psk);
	ck_assert_int_eq(gnutls_psk_allocate_client_credentials(&client_cred), 0);
	ck_assert_int_eq(gnutls_psk_set_client_credentials(client_cred, "lb",
			 &psk, GNUTLS_PSK_KEY_RAW), 0);
	ck_assert_int_eq(gnutls_priority_init(&prio, "NORMAL:-VERS-ALL:"
			 "+VERS-TLS1.3:+ECDHE-PSK:+PSK", NULL), 0);
}

static void teardown(void)
{
	gnutls_priority_deinit(prio);
	gnutls_psk_free_client_credentials(client_cred);
	gnutls_psk_free_server_credentials(server_cred);
}

static gnutls_session_t session(unsigned flags, int fd)
{
	gnutls_session_t s;

	if (gnutls_init(&s, flags | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0)
		return NULL;
	gnutls_priority_set(s, prio);
	if (flags & GNUTLS_SERVER)
		gnutls_credentials_set(s, GNUTLS_CRD_PSK, server_cred);
	else
		gnutls_credentials_set(s, GNUTLS_CRD_PSK, client_cred);
	gnutls_transport_set_int(s, fd);
	return s;
}

/* One handshake, both ends on this thread. NULL on success. */
static void *handshake(void *arg)
{
	int sv[2], crc = GNUTLS_E_AGAIN, src = GNUTLS_E_AGAIN;
	gnutls_session_t c, s;
	void *ok = NULL;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
		return "socketpair";
	c = session(GNUTLS_CLIENT, sv[0]);
	s = session(GNUTLS_SERVER, sv[1]);
	if (!c || !s)
		ok = "gnutls_init";
	while (!ok && (crc != 0 || src != 0)) {
		if (crc != 0)
			crc = gnutls_handshake(c);
		if (src != 0)
			src = gnutls_handshake(s);
		if ((crc < 0 && gnutls_error_is_fatal(crc)) ||
		    (src < 0 && gnutls_error_is_fatal(src)))
			ok = "handshake failed";
	}
	if (c)
		gnutls_deinit(c);
	if (s)
		gnutls_deinit(s);
	close(sv[0]);
	close(sv[1]);
	return ok;
}

static void handshake_on_new_thread(void)
{
	pthread_t t;
	void *err;

	ck_assert_int_eq(pthread_create(&t, NULL, handshake, NULL), 0);
	ck_assert_int_eq(pthread_join(t, &err), 0);
	ck_assert_msg(err == NULL, "%s", (const char *)err);
}

/* Under AddressSanitizer malloc is its own, and mallinfo2() sees none. */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static size_t heap_in_use(void)
{
	if (__sanitizer_get_current_allocated_bytes)
		return __sanitizer_get_current_allocated_bytes();
	return mallinfo2().uordblks;
}

START_TEST(gnutls_takes_our_random_numbers)
{
	unsigned long before;

	ck_assert_int_eq(tlsrng_init(), 0);
	before = tlsrng_calls();
	handshake_on_new_thread();
	/* client random, server random, both key shares at least */
	ck_assert_uint_ge(tlsrng_calls() - before, 4);
}
END_TEST

START_TEST(threads_that_shake_hands_keep_nothing)
{
	size_t before, after;

	/* the first ones size malloc's arenas and glibc's stack cache */
	for (int i = 0; i < 50; i++)
		handshake_on_new_thread();
	before = heap_in_use();
	for (int i = 0; i < THREADS; i++)
		handshake_on_new_thread();
	after = heap_in_use();
	ck_assert_msg(after <= before + KEPT_MAX,
		      "%d threads kept %zu bytes (%.0f a thread, limit %zu)",
		      THREADS, after - before,
		      (double)(after - before) / THREADS, KEPT_MAX);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tlsrng");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, gnutls_takes_our_random_numbers);
	tcase_add_test(tc, threads_that_shake_hands_keep_nothing);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
