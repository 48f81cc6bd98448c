/* SPDX-License-Identifier: MIT */
/*
 * notify: systemd's readiness protocol (sd_notify(3)); see notify.h.
 *
 * Why not libsystemd: the protocol is one datagram to the socket named by
 * $NOTIFY_SOCKET, and systemd documents it as a stable interface that
 * services may speak themselves (sd_notify(3), "Standalone
 * Implementations"). Linking libsystemd for it brought libgcrypt,
 * libgpg-error, liblzma and liblz4 into the process: about 1.2 MB
 * of resident pages, a tenth of the daemon's idle memory, for four calls.
 * The vsock: socket form (for VMs) is not spoken; a daemon in a VM is
 * notified through its own systemd, which uses a path.
 */
#include "notify.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* One datagram to $NOTIFY_SOCKET: a path, or "@name" in the abstract
 * namespace. Silent on any failure: the service manager may be gone. */
static void notify_send(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@'))
		return;
	len = strlen(path);
	if (len < 2 || len >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	(void)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
		     (const struct sockaddr *)&sa,
		     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	close(fd);
}

/* RELOADING=1 must carry the CLOCK_MONOTONIC time in microseconds so
 * systemd can tell this reload from an earlier one (systemd >= 253). */
void notify_reloading(void)
{
	struct timespec ts;
	char msg[64];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ULL +
		 (unsigned long long)ts.tv_nsec / 1000ULL);
	notify_send(msg);
}

void notify_ready(void)
{
	notify_send("READY=1");
}

void notify_stopping(void)
{
	notify_send("STOPPING=1");
}

void notify_status(const char *status)
{
	char msg[512];

	/* one line: a newline would start a second assignment */
	snprintf(msg, sizeof(msg), "STATUS=%.*s", (int)strcspn(status, "\n"),
		 status);
	notify_send(msg);
}
