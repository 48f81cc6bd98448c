/* SPDX-License-Identifier: MIT */
/*
 * harness: the integration test bed. Starts the mock upstream and the real
 * llm-bridge daemon as child processes on ephemeral loopback ports, and
 * talks to them with libcurl, the way a client would. Every later suite
 * (WebSocket, Gemini, limits...) builds on these helpers.
 */
#ifndef LB_HARNESS_H
#define LB_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "buf.h"

struct h_proc {
	pid_t pid;
	unsigned port;
	char dir[64];      /* private temp directory (config, env, log) */
	char log_path[96]; /* the child's stderr */
};

/* Start tests/mock/mock-upstream ($LB_MOCK) on an ephemeral port. Aborts
 * the test run on failure. */
void h_mock_start(struct h_proc *m);
/* GET /_mock/stats as JSON (caller puts). */
json_object *h_mock_stats(const struct h_proc *m);
/* Integer member of the stats (e.g. "connections", "aborted"). */
long h_mock_stat(const struct h_proc *m, const char *name);
/* The last chat request the mock received: body as JSON (caller puts). */
json_object *h_mock_last_body(const struct h_proc *m);
/* A header of the last request (lower-case name); caller frees, NULL if
 * absent. */
char *h_mock_last_header(const struct h_proc *m, const char *name);
/* Wait up to timeout_ms for the mock to see the transfer whose request
 * carried "tag=<tag>" aborted; its CLOCK_MONOTONIC time in ms (as
 * h_now_ms()), or -1, and in *aborts how many transfers with that tag
 * were aborted. Tags keep one test's abort apart from the late aborts of
 * earlier tests' transfers on a shared mock. */
double h_mock_wait_tag_abort(const struct h_proc *m, const char *tag,
			     double timeout_ms, long *aborts);
void h_mock_reset(const struct h_proc *m);

/* Start $LB_DAEMON with config_yaml (a "server:" section with port 0 is
 * prepended unless the text has one) and env_text as its --env-file.
 * Waits for "listening on", or, when the config fixes server.port, for
 * that port to accept. Aborts the run on failure. */
void h_daemon_start(struct h_proc *d, const char *config_yaml,
		    const char *env_text);
/* SIGTERM and wait. Returns the exit status (or 128+signal), or 98 when
 * a value of any *KEY* variable of the daemon's env file appears in its
 * log (the secret scan every integration test gets). A clean exit
 * removes the child's directory; otherwise its log is kept and named on
 * stderr. h_http() likewise fails the run when H_CLIENT_KEY or
 * H_PROVIDER_KEY comes back in any answer. */
int h_proc_stop(struct h_proc *p);
/* A whole file, or NULL when it cannot be read. Caller frees. */
char *h_read_file(const char *path);
/* The daemon's log so far. Caller frees. */
char *h_proc_log(const struct h_proc *p);
/* Run $LB_DAEMON with args (NULL-terminated), capture stdout+stderr into
 * *output (caller frees); returns the exit status. */
int h_run_daemon(char **output, const char *const *args);
/* Write text into a new file in dir; returns the path (static per call
 * site is not safe: caller frees). */
char *h_write_file(const char *dir, const char *name, const char *text);
/* A loopback port nobody listens on now: an ephemeral one, bound and
 * let go (for a dead provider, or a child that needs a fixed port). */
unsigned h_free_port(void);
/* A fresh private temp directory; caller frees. */
char *h_tmpdir(void);

struct h_resp {
	long status;
	struct buf headers; /* raw header block, all responses */
	struct buf body;
	double total_s;
	/* Streaming: each write from curl, with its arrival time. */
	size_t n_pieces;
	double piece_t[256];
	/* the body-byte count set by h_abort_next() for this request (then
	 * the transfer is aborted by us: a client going away); 0 = read all */
	size_t abort_after;
	double aborted_at_ms; /* monotonic ms when we aborted */
};

/* Send a request to 127.0.0.1:port. headers: NULL-terminated list of
 * "Name: value" lines (NULL for none). body may be NULL. Fills r (free
 * with h_resp_free). Returns the curl code. */
/* The next h_http() call stops reading after n body bytes and hangs up.
 * A setting of its own rather than a field the caller fills in: r is
 * output only, so a caller's uninitialised h_resp cannot make a request
 * hang up at random. */
void h_abort_next(size_t n);

int h_http(unsigned port, const char *method, const char *path,
	   const char *const *headers, const char *body, size_t body_len,
	   struct h_resp *r);
/* From now on h_http() speaks HTTPS, trusting only the CA in ca_file
 * (NULL: back to plain HTTP). */
void h_use_tls(const char *ca_file);
/* Also require the server's public key to be the one in pubkey_file (PEM;
 * NULL: any key the CA vouches for). Reset by h_use_tls(). */
void h_pin_key(const char *pubkey_file);
/* Make a throwaway CA (once per dir) and a server certificate for
 * 127.0.0.1/localhost with certtool in dir: ca.pem, and prefix.pem,
 * prefix.key, prefix.pub (its public key). Aborts on failure. */
void h_make_certs(const char *dir, const char *prefix);
/* POST /v1/chat/completions with JSON and the default test key. */
int h_chat(unsigned port, const char *json, struct h_resp *r);
void h_resp_free(struct h_resp *r);
/* A response header value (case-insensitive name), or NULL. Caller frees. */
char *h_header(const struct h_resp *r, const char *name);
/* The body as JSON (caller puts); NULL if not JSON or not UTF-8. */
json_object *h_json(const struct h_resp *r);
/* error.type / error.code of an error body; "" when absent. Caller frees. */
char *h_error_field(const struct h_resp *r, const char *field);

/* The data payloads of an SSE body, in order. Returns the count; fills
 * out[i] with pointers into a copy (free *storage). */
size_t h_sse_events(const struct h_resp *r, char **out, size_t max,
		    char **storage);

/* Join the delta contents of an SSE chat stream. Caller frees. */
char *h_stream_text(const struct h_resp *r);

double h_now_ms(void);
/* Dotted path lookup in JSON: "choices.0.message.content". */
json_object *h_get(json_object *o, const char *path);
const char *h_get_str(json_object *o, const char *path);

#define H_CLIENT_KEY "sk-client-test-0123456789"
#define H_PROVIDER_KEY "sk-provider-secret-ABCDEFGHIJ"

#endif
