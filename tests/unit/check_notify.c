/* SPDX-License-Identifier: MIT */
/* Unit tests for notify: the datagrams systemd receives on a path socket
 * and on an abstract one, and silence without $NOTIFY_SOCKET. */
#include <check.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"
#include "testutil.h"

static char dir[64];
static char path[128];

/* A datagram socket bound where $NOTIFY_SOCKET will point; name "@x" is
 * abstract. */
static int listen_at(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(len, sizeof(sa.sun_path));
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un,
						   sun_path) + len)), 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", name, 1), 0);
	return fd;
}

/* The next datagram, or "" if none comes within 200 ms. */
static const char *next_msg(int fd)
{
	static char msg[1024];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	msg[0] = '\0';
	if (poll(&p, 1, 200) == 1) {
		n = recv(fd, msg, sizeof(msg) - 1, 0);
		if (n >= 0)
			msg[n] = '\0';
	}
	return msg;
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_notify.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notify", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
	unsetenv("NOTIFY_SOCKET");
}

START_TEST(path_socket_gets_each_state)
{
	int fd = listen_at(path);
	struct timespec ts;
	unsigned long long before, usec;
	const char *m;

	notify_ready();
	ck_assert_str_eq(next_msg(fd), "READY=1");
	notify_stopping();
	ck_assert_str_eq(next_msg(fd), "STOPPING=1");
	notify_status("serving on 127.0.0.1:1219");
	ck_assert_str_eq(next_msg(fd), "STATUS=serving on 127.0.0.1:1219");

	clock_gettime(CLOCK_MONOTONIC, &ts);
	before = (unsigned long long)ts.tv_sec * 1000000ULL +
		 (unsigned long long)ts.tv_nsec / 1000ULL;
	notify_reloading();
	m = next_msg(fd);
	ck_assert_int_eq(sscanf(m, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec),
			 1);
	ck_assert(usec >= before);
	ck_assert(usec < before + 10000000ULL);
	close(fd);
}
END_TEST

START_TEST(abstract_socket)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "@llm-bridge-check-notify-%ld",
		 (long)getpid());
	fd = listen_at(name);
	notify_ready();
	ck_assert_str_eq(next_msg(fd), "READY=1");
	close(fd);
}
END_TEST

/* A status is one assignment: a newline in it must not start a second
 * one (say, a READY=1 smuggled in through a provider name). */
START_TEST(status_stays_one_line)
{
	int fd = listen_at(path);

	notify_status("reloading\nREADY=1");
	ck_assert_str_eq(next_msg(fd), "STATUS=reloading");
	close(fd);
}
END_TEST

/* Without systemd, or with a socket that is gone, nothing happens and
 * nothing fails. */
START_TEST(no_socket_is_silent)
{
	int fd = listen_at(path);

	unsetenv("NOTIFY_SOCKET");
	notify_ready();
	ck_assert_str_eq(next_msg(fd), "");
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	notify_ready();
	ck_assert_str_eq(next_msg(fd), "");
	close(fd);
	unlink(path);
	setenv("NOTIFY_SOCKET", path, 1);
	notify_ready();
	notify_status("still here");
}
END_TEST

static Suite *notify_suite(void)
{
	Suite *s = suite_create("notify");
	TCase *tc = tcase_create("notify");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, path_socket_gets_each_state);
	tcase_add_test(tc, abstract_socket);
	tcase_add_test(tc, status_stays_one_line);
	tcase_add_test(tc, no_socket_is_silent);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(notify_suite());
}
