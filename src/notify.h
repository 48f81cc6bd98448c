/* SPDX-License-Identifier: MIT */
/*
 * notify: tell the service manager where the daemon is in its life
 * (systemd's Type=notify protocol, sd_notify(3)). Every call is a no-op
 * when not started by systemd ($NOTIFY_SOCKET unset), so callers never
 * check.
 */
#ifndef LB_NOTIFY_H
#define LB_NOTIFY_H

/* Listening and serving: systemd may start what comes after us. */
void notify_ready(void);
/* A SIGHUP reload begins; call notify_ready() when it is over. */
void notify_reloading(void);
/* Draining for exit. */
void notify_stopping(void);
/* A one-line status shown by systemctl status. */
void notify_status(const char *status);

#endif
