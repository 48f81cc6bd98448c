/* SPDX-License-Identifier: MIT */
/*
 * Integration tests for running llm-bridge as a service: SIGHUP reloads
 * (good, bad, with a stream in flight), TLS (HTTPS, certificate renewal),
 * the audit line's contents and the absence of secrets, and the log file
 * with rotation under load.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static struct h_proc mock, daemon_;

#define ENV_TEXT "ACCESS_API_KEYS=" H_CLIENT_KEY "\n" \
		 "MOCK_API_KEY=" H_PROVIDER_KEY "\n"

static char *base_config(const char *extra_models, const char *extra)
{
	char *s;

	if (asprintf(&s, "providers:\n"
		     "  mock:\n"
		     "    base_url: \"http://127.0.0.1:%u/v1\"\n"
		     "    models:\n"
		     "      gpt-test: { timeout: 10 }\n%s%s",
		     mock.port, extra_models ? extra_models : "",
		     extra ? extra : "") < 0)
		abort();
	return s;
}

static void start(const char *extra_models, const char *extra)
{
	char *cfg;

	h_mock_start(&mock);
	cfg = base_config(extra_models, extra);
	h_daemon_start(&daemon_, cfg, ENV_TEXT);
	free(cfg);
}

static void stop(void)
{
	int d = h_proc_stop(&daemon_), m = h_proc_stop(&mock);

	h_use_tls(NULL);
	ck_assert_int_eq(d, 0);
	ck_assert_int_eq(m, 0);
}

/* Rewrite the daemon's config file and send SIGHUP; wait for the log to
 * report the outcome ("reloaded" or "failed"). */
static void reload_with(const char *text, const char *expect)
{
	char *path, *log;
	double deadline = h_now_ms() + 5000;
	int before = 0, now = 0;

	log = h_proc_log(&daemon_);
	for (char *p = log; (p = strstr(p, expect)); p++)
		before++;
	free(log);
	/* the harness prepends the server section for the first start */
	{
		char *full;

		if (asprintf(&full, "server:\n  host: 127.0.0.1\n  port: 0\n"
			     "  shutdown_timeout: 5\n%s", text) < 0)
			abort();
		path = h_write_file(daemon_.dir, "config.yaml", full);
		free(full);
	}
	free(path);
	ck_assert_int_eq(kill(daemon_.pid, SIGHUP), 0);
	while (h_now_ms() < deadline) {
		log = h_proc_log(&daemon_);
		now = 0;
		for (char *p = log; (p = strstr(p, expect)); p++)
			now++;
		free(log);
		if (now > before)
			return;
		usleep(20000);
	}
	ck_abort_msg("no '%s' in the log after SIGHUP", expect);
}

static bool models_list_has(const char *id)
{
	const char *hdr[] = { "Authorization: Bearer " H_CLIENT_KEY, NULL };
	struct h_resp r;
	bool found;

	h_http(daemon_.port, "GET", "/v1/models", hdr, NULL, 0, &r);
	ck_assert_int_eq(r.status, 200);
	found = strstr(r.body.data, id) != NULL;
	h_resp_free(&r);
	return found;
}

/* ---- reload ---- */

START_TEST(reload_good_and_bad)
{
	char *cfg;

	start(NULL, NULL);
	ck_assert(!models_list_has("mock/added"));
	cfg = base_config("      added: {}\n", NULL);
	reload_with(cfg, "configuration reloaded");
	free(cfg);
	ck_assert(models_list_has("mock/added"));
	/* a broken file is refused and the running config stays */
	reload_with("providers: [unclosed\n", "reload of");
	ck_assert(models_list_has("mock/added"));
	/* a file that parses but is invalid is refused too */
	reload_with("providers:\n  x:\n    base_url: ftp://nope\n",
		    "reload of");
	ck_assert(models_list_has("mock/added"));
	stop();
}
END_TEST

struct stream_job {
	unsigned port;
	const char *body;
	struct h_resp r;
};

static void *stream_thread(void *arg)
{
	struct stream_job *j = arg;

	h_chat(j->port, j->body, &j->r);
	return NULL;
}

/* A stream started before a reload finishes on the config it started
 * with, even when the reload removes its provider. */
START_TEST(reload_keeps_running_streams)
{
	struct stream_job j = {
		.body = "{\"model\":\"mock/gpt-test\",\"stream\":true,"
			"\"messages\":[{\"role\":\"user\",\"content\":"
			"\"[mock chunks=10 interval_ms=100]\"}]}",
	};
	pthread_t t;
	char *text;

	start(NULL, NULL);
	j.port = daemon_.port;
	ck_assert_int_eq(pthread_create(&t, NULL, stream_thread, &j), 0);
	usleep(300000);
	reload_with("providers:\n  other:\n    base_url: http://127.0.0.1:9/v1\n",
		    "configuration reloaded");
	pthread_join(t, NULL);
	ck_assert_int_eq(j.r.status, 200);
	text = h_stream_text(&j.r);
	ck_assert_str_eq(text, "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 "
			 "tok8 tok9 ");
	free(text);
	ck_assert_ptr_nonnull(strstr(j.r.body.data, "data: [DONE]"));
	h_resp_free(&j.r);
	/* new requests see the new config */
	ck_assert(!models_list_has("mock/gpt-test"));
	stop();
}
END_TEST

/* ---- TLS ---- */

static char *tls_extra(const char *dir, const char *name)
{
	char *s;

	if (asprintf(&s, "server:\n  host: 127.0.0.1\n  port: 0\n"
		     "  shutdown_timeout: 5\n  tls:\n    cert: %s/%s.pem\n"
		     "    key: %s/%s.key\n", dir, name, dir, name) < 0)
		abort();
	return s;
}

START_TEST(https_and_certificate_renewal)
{
	char *dir = h_tmpdir(), *server, *cfg, *full, ca[256], cmd[512];
	char pin[256];
	struct h_resp r;
	const char *hdr[] = { "Authorization: Bearer " H_CLIENT_KEY, NULL };

	h_make_certs(dir, "one");
	h_make_certs(dir, "two");
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	h_mock_start(&mock);
	server = tls_extra(dir, "one");
	cfg = base_config(NULL, NULL);
	if (asprintf(&full, "%s%s", server, cfg) < 0)
		abort();
	h_daemon_start(&daemon_, full, ENV_TEXT);
	h_use_tls(ca);
	h_chat(daemon_.port, "{\"model\":\"mock/gpt-test\",\"messages\":"
	       "[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
	ck_assert_msg(r.status == 200, "HTTPS chat: %ld", r.status);
	h_resp_free(&r);
	/* a stream over TLS arrives whole */
	h_chat(daemon_.port, "{\"model\":\"mock/gpt-test\",\"stream\":true,"
	       "\"messages\":[{\"role\":\"user\",\"content\":"
	       "\"[mock chunks=50]\"}]}", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body.data, "tok49 "));
	ck_assert_ptr_nonnull(strstr(r.body.data, "data: [DONE]"));
	h_resp_free(&r);
	/* plain HTTP on the TLS port gets nothing */
	h_use_tls(NULL);
	ck_assert_int_ne(h_http(daemon_.port, "GET", "/v1/models", hdr, NULL,
				0, &r), 0);
	h_resp_free(&r);
	/* SIGHUP picks up a renewed certificate for new connections */
	free(server);
	free(full);
	server = tls_extra(dir, "two");
	if (asprintf(&full, "%s", cfg) < 0)
		abort();
	{
		char *path, *text;

		if (asprintf(&text, "%s%s", server, cfg) < 0)
			abort();
		path = h_write_file(daemon_.dir, "config.yaml", text);
		free(text);
		free(path);
	}
	h_use_tls(ca);
	snprintf(pin, sizeof(pin), "%s/one.pub", dir);
	h_pin_key(pin);
	ck_assert_int_eq(h_http(daemon_.port, "GET", "/v1/models", hdr, NULL,
				0, &r), 0);
	h_resp_free(&r);
	ck_assert_int_eq(kill(daemon_.pid, SIGHUP), 0);
	usleep(500000);
	/* now the second key is served, and only it */
	ck_assert_int_ne(h_http(daemon_.port, "GET", "/v1/models", hdr, NULL,
				0, &r), 0);
	h_resp_free(&r);
	snprintf(pin, sizeof(pin), "%s/two.pub", dir);
	h_pin_key(pin);
	ck_assert_int_eq(h_http(daemon_.port, "GET", "/v1/models", hdr, NULL,
				0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	free(server);
	free(full);
	free(cfg);
	stop();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	free(dir);
}
END_TEST

/* ---- audit line, log file ---- */

/* The JSON audit line whose request_id is id, from the log text. */
static json_object *audit_line(const char *log, const char *id)
{
	char needle[128];
	const char *p, *start;
	json_object *o;
	char *line;

	snprintf(needle, sizeof(needle), "\"request_id\":\"%s\"", id);
	p = strstr(log, needle);
	if (!p)
		return NULL;
	start = p;
	while (start > log && start[-1] != '\n')
		start--;
	line = strndup(start, (size_t)(strchr(p, '\n') - start));
	o = json_tokener_parse(line);
	free(line);
	return o;
}

static char *read_all_logs(const char *file)
{
	struct buf b;
	char path[300];

	buf_init(&b, 0);
	for (int n = 60; n >= 0; n--) {
		char *t;

		if (n)
			snprintf(path, sizeof(path), "%s.%d", file, n);
		else
			snprintf(path, sizeof(path), "%s", file);
		t = h_read_file(path);
		if (t) {
			buf_appends(&b, t);
			free(t);
		}
	}
	return buf_steal(&b);
}

START_TEST(audit_line_and_no_secrets)
{
	char *dir = h_tmpdir(), *extra, *logs, *stderr_log, cmd[300];
	char file[256], *v;
	const char *hdr[] = { "Authorization: Bearer " H_CLIENT_KEY,
			      "X-Request-Id: my-req-1",
			      "Content-Type: application/json", NULL };
	const char *bad[] = { "Authorization: Bearer sk-WRONG-recognisable-1234",
			      NULL };
	const char *body = "{\"model\":\"mock/gpt-test\",\"messages\":"
			   "[{\"role\":\"user\",\"content\":\"hi\"}]}";
	struct h_resp r;
	json_object *a;

	snprintf(file, sizeof(file), "%s/log/llm-bridge.log", dir);
	if (asprintf(&extra, "logging:\n  format: json\n  level: info\n"
		     "  output:\n    console: true\n    file:\n"
		     "      path: %s\n      max_size: 8192\n"
		     "      backup_count: 50\n", file) < 0)
		abort();
	start(NULL, extra);
	h_http(daemon_.port, "POST", "/v1/chat/completions", hdr, body,
	       strlen(body), &r);
	ck_assert_int_eq(r.status, 200);
	v = h_header(&r, "X-Request-Id");
	ck_assert_str_eq(v, "my-req-1");
	free(v);
	h_resp_free(&r);
	h_http(daemon_.port, "GET", "/v1/models", bad, NULL, 0, &r);
	ck_assert_int_eq(r.status, 401);
	ck_assert_ptr_null(strstr(r.body.data, "WRONG"));
	h_resp_free(&r);
	/* enough traffic to rotate the 8 KiB file a few times */
	for (int i = 0; i < 40; i++) {
		h_chat(daemon_.port, "{\"model\":\"mock/gpt-test\",\"stream\":"
		       "true,\"messages\":[{\"role\":\"user\",\"content\":"
		       "\"x\"}]}", &r);
		ck_assert_int_eq(r.status, 200);
		h_resp_free(&r);
	}
	stderr_log = h_proc_log(&daemon_);
	stop();
	logs = read_all_logs(file);
	a = audit_line(logs, "my-req-1");
	ck_assert_msg(a != NULL, "no audit line for my-req-1");
	ck_assert_str_eq(h_get_str(a, "group"), "audit");
	ck_assert_str_eq(h_get_str(a, "front"), "http");
	ck_assert_str_eq(h_get_str(a, "client"), "127.0.0.1");
	ck_assert_str_eq(h_get_str(a, "model"), "mock/gpt-test");
	ck_assert_str_eq(h_get_str(a, "provider"), "mock");
	ck_assert_int_eq(strncmp(h_get_str(a, "key"), "key-", 4), 0);
	ck_assert(!json_object_get_boolean(h_get(a, "stream")));
	ck_assert_int_eq(json_object_get_int(h_get(a, "status")), 200);
	ck_assert_int_eq(json_object_get_int(h_get(a, "upstream_status")), 200);
	ck_assert(json_object_get_double(h_get(a, "latency_ms")) > 0);
	ck_assert_ptr_nonnull(h_get(a, "ttfb_ms"));
	ck_assert_ptr_nonnull(h_get(a, "overhead_us"));
	ck_assert_int_eq(json_object_get_int(h_get(a, "prompt_tokens")), 10);
	ck_assert_int_eq(json_object_get_int(h_get(a, "completion_tokens")), 3);
	ck_assert_str_eq(h_get_str(a, "usage_source"), "provider");
	ck_assert_int_gt(json_object_get_int(h_get(a, "local_prompt_tokens")), 0);
	ck_assert(json_object_is_type(h_get(a, "error"), json_type_null));
	json_object_put(a);
	/* 42 audit lines, each whole, across the rotated files */
	{
		int n = 0;

		for (char *p = logs; (p = strstr(p, "\"group\":\"audit\"")); p++)
			n++;
		ck_assert_int_eq(n, 41);
	}
	snprintf(cmd, sizeof(cmd), "%s.1", file);
	ck_assert_int_eq(access(cmd, F_OK), 0);
	/* no key anywhere: not the client's, not the provider's, not even
	 * a wrong one */
	for (int i = 0; i < 2; i++) {
		const char *t = i ? stderr_log : logs;

		ck_assert_ptr_null(strstr(t ? t : "", H_CLIENT_KEY));
		ck_assert_ptr_null(strstr(t ? t : "", H_PROVIDER_KEY));
		ck_assert_ptr_null(strstr(t ? t : "", "WRONG-recognisable"));
	}
	free(stderr_log);
	free(logs);
	free(extra);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
	free(dir);
}
END_TEST

/* ---- descriptor limit ---- */

/* The soft "Max open files" of process pid, or -1. */
static long soft_fd_limit(pid_t pid)
{
	char path[64], *text, *line;
	long soft = -1;

	snprintf(path, sizeof(path), "/proc/%ld/limits", (long)pid);
	text = h_read_file(path);
	ck_assert_ptr_nonnull(text);
	line = strstr(text, "Max open files");
	if (line)
		soft = strtol(line + strlen("Max open files"), NULL, 10);
	free(text);
	return soft;
}

/* The daemon raises its descriptor limit to the hard limit; below what
 * its connection limit needs (four per connection and 1,024 more) it
 * says so and serves anyway. Runs in its own forked process (Check's
 * default), so the lowered hard limit does not outlive the test. */
START_TEST(fd_limit_follows_max_connections)
{
	struct rlimit rl;
	rlim_t want;
	struct h_resp r = { 0 };
	char expect[96], *log;
	/* valgrind keeps a limit of its own for the program it runs: the
	 * daemon's log says what the daemon sees, /proc what the kernel
	 * enforces, which under valgrind is valgrind's */
	bool valgrind = getenv("LB_VALGRIND") && !strcmp(getenv("LB_VALGRIND"), "1");

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	want = rl.rlim_max;
	start(NULL, "server:\n  host: 127.0.0.1\n  port: 0\n"
	      "  max_connections: 50\n");
	/* (valgrind keeps a few descriptors for itself) */
	snprintf(expect, sizeof(expect), "descriptor limit %llu for 50 "
		 "connections", (unsigned long long)want);
	log = h_proc_log(&daemon_);
	ck_assert_msg(strstr(log, valgrind ? " for 50 connections" : expect),
		      "no '%s' in:\n%s", expect, log);
	ck_assert_ptr_null(strstr(log, "is below what"));
	free(log);
	if (!valgrind)
		ck_assert_int_eq(soft_fd_limit(daemon_.pid), (long)want);
	stop();

	/* a hard limit below what 1,000 connections need */
	rl.rlim_cur = rl.rlim_max = 600;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	start(NULL, "server:\n  host: 127.0.0.1\n  port: 0\n"
	      "  max_connections: 1000\n");
	log = h_proc_log(&daemon_);
	/* (valgrind keeps a few of the 600 for itself) */
	ck_assert_msg(strstr(log, valgrind ? ") is below what "
			     "server.max_connections (1000) needs (5024)" :
			     "the descriptor limit (600) is below what "
			     "server.max_connections (1000) needs (5024)"),
		      "no warning in:\n%s", log);
	free(log);
	if (!valgrind)
		ck_assert_int_eq(soft_fd_limit(daemon_.pid), 600);
	h_http(daemon_.port, "GET", "/health", NULL, NULL, 0, &r);
	ck_assert_int_eq(r.status, 200);
	h_resp_free(&r);
	stop();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ops");
	TCase *tr = tcase_create("reload"), *tt;
	SRunner *sr;
	int failed;

	tcase_set_timeout(tr, 60);
	tcase_add_test(tr, reload_good_and_bad);
	tcase_add_test(tr, reload_keeps_running_streams);
	suite_add_tcase(s, tr);
	tcase_add_test(tr, audit_line_and_no_secrets);
	tt = tcase_create("tls");
	tcase_set_timeout(tt, 60);
	tcase_add_test(tt, https_and_certificate_renewal);
	suite_add_tcase(s, tt);
	tt = tcase_create("limits");
	tcase_set_timeout(tt, 60);
	tcase_add_test(tt, fd_limit_follows_max_connections);
	suite_add_tcase(s, tt);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
