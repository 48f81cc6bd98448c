/* SPDX-License-Identifier: MIT */
/*
 * Integration tests for upstream proxies: a real proxy (Debian's
 * tinyproxy) on loopback between the daemon and the mock. The mock sees
 * tinyproxy's Via header only when the request really went through it.
 */
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define PROXY_USER "lbuser"
#define PROXY_PASS "s3cr3t-proxy-pass"

static struct h_proc mock, daemon_, proxy;

/* tinyproxy in the foreground with BasicAuth, on a free loopback port. */
static void proxy_start(struct h_proc *p)
{
	char *dir = h_tmpdir(), *conf, *path;
	const char *bin = getenv("LB_TINYPROXY") ? getenv("LB_TINYPROXY") :
			  "/usr/bin/tinyproxy";

	memset(p, 0, sizeof(*p));
	snprintf(p->dir, sizeof(p->dir), "%s", dir);
	snprintf(p->log_path, sizeof(p->log_path), "%s/proxy.log", dir);
	p->port = h_free_port();
	if (asprintf(&conf, "Port %u\nListen 127.0.0.1\nTimeout 30\n"
		     "MaxClients 20\nLogLevel Info\nBasicAuth %s %s\n"
		     "DisableViaHeader No\nViaProxyName \"lbtestproxy\"\n",
		     p->port, PROXY_USER, PROXY_PASS) < 0)
		abort();
	path = h_write_file(dir, "tinyproxy.conf", conf);
	p->pid = fork();
	if (p->pid == 0) {
		freopen(p->log_path, "w", stderr);
		freopen(p->log_path, "a", stdout);
		execl(bin, bin, "-d", "-c", path, (char *)NULL);
		_exit(127);
	}
	/* wait until it accepts connections */
	for (int i = 0; i < 200; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons((uint16_t)p->port) };
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
			close(fd);
			break;
		}
		close(fd);
		usleep(20000);
	}
	free(conf);
	free(path);
	free(dir);
}

static void setup(void)
{
	char *cfg;

	h_mock_start(&mock);
	proxy_start(&proxy);
	if (asprintf(&cfg,
		"proxy:\n"
		"  http: \"http://%s:%s@127.0.0.1:%u\"\n"
		"  https: \"http://%s:%s@127.0.0.1:%u\"\n"
		"providers:\n"
		"  own:\n"
		"    base_url: \"http://127.0.0.1:%u/v1\"\n"
		"    proxy: \"http://%s:%s@127.0.0.1:%u\"\n"
		"    models: { m: {} }\n"
		"  global:\n"
		"    base_url: \"http://127.0.0.1:%u/v1\"\n"
		"    requires_proxy: true\n"
		"    models: { m: {} }\n"
		"  direct:\n"
		"    base_url: \"http://127.0.0.1:%u/v1\"\n"
		"    models: { m: {} }\n"
		"  badauth:\n"
		"    base_url: \"http://127.0.0.1:%u/v1\"\n"
		"    proxy: \"http://%s:wrong-pass@127.0.0.1:%u\"\n"
		"    models: { m: {} }\n",
		PROXY_USER, PROXY_PASS, proxy.port,
		PROXY_USER, PROXY_PASS, proxy.port,
		mock.port, PROXY_USER, PROXY_PASS, proxy.port,
		mock.port, mock.port,
		mock.port, PROXY_USER, proxy.port) < 0)
		abort();
	/* an environment that would send every request the wrong way, had
	 * libcurl been let to read it: the configuration is the only
	 * source */
	setenv("http_proxy", "http://127.0.0.1:9", 1);
	setenv("ALL_PROXY", "http://127.0.0.1:9", 1);
	setenv("no_proxy", "127.0.0.1,localhost", 1);
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	h_daemon_start(&daemon_, cfg, "ACCESS_API_KEYS=" H_CLIENT_KEY "\n");
	unsetenv("http_proxy");
	unsetenv("ALL_PROXY");
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	free(cfg);
}

/* A child that did not exit 0 (a crash, or a leak under ASan) fails
 * the suite even when every test passed. */
static int children_failed;

static void teardown(void)
{
	if (h_proc_stop(&daemon_) != 0)
		children_failed++;
	if (h_proc_stop(&proxy) != 0)
		children_failed++;
	if (h_proc_stop(&mock) != 0)
		children_failed++;
}

static char *via_of(const char *model, bool stream, long *status)
{
	char body[256];
	struct h_resp r = { 0 };

	h_mock_reset(&mock);
	snprintf(body, sizeof(body), "{\"model\":\"%s\",\"stream\":%s,"
		 "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
		 model, stream ? "true" : "false");
	h_chat(daemon_.port, body, &r);
	*status = r.status;
	if (stream && r.status == 200)
		ck_assert_ptr_nonnull(strstr(r.body.data, "data: [DONE]"));
	h_resp_free(&r);
	return h_mock_last_header(&mock, "via");
}

START_TEST(provider_proxy_used)
{
	for (int s = 0; s < 2; s++) {
		long status;
		char *via = via_of("own/m", s, &status);

		ck_assert_int_eq(status, 200);
		ck_assert_msg(via && strstr(via, "lbtestproxy"), "via: %s",
			      via ? via : "(none)");
		free(via);
	}
}
END_TEST

START_TEST(requires_proxy_uses_global_proxy)
{
	long status;
	char *via = via_of("global/m", true, &status);

	ck_assert_int_eq(status, 200);
	ck_assert_msg(via && strstr(via, "lbtestproxy"), "via: %s",
		      via ? via : "(none)");
	free(via);
}
END_TEST

START_TEST(no_proxy_by_default)
{
	long status;
	char *via = via_of("direct/m", false, &status);

	ck_assert_int_eq(status, 200);
	ck_assert_ptr_null(via);
}
END_TEST

/* A proxy that refuses our credentials is the gateway's problem (502),
 * and its password never shows up anywhere. */
START_TEST(proxy_auth_failure_and_no_password_leak)
{
	struct h_resp r = { 0 };
	char *log;

	h_chat(daemon_.port, "{\"model\":\"badauth/m\",\"messages\":"
	       "[{\"role\":\"user\",\"content\":\"hi\"}]}", &r);
	ck_assert_int_eq(r.status, 502);
	ck_assert_ptr_null(strstr(r.body.data, "wrong-pass"));
	ck_assert_ptr_null(strstr(r.body.data, PROXY_PASS));
	h_resp_free(&r);
	log = h_proc_log(&daemon_);
	ck_assert_ptr_null(strstr(log, PROXY_PASS));
	ck_assert_ptr_null(strstr(log, "wrong-pass"));
	free(log);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("proxy");
	TCase *tc = tcase_create("tinyproxy");
	SRunner *sr;
	int failed;

	if (access(getenv("LB_TINYPROXY") ? getenv("LB_TINYPROXY") :
		   "/usr/bin/tinyproxy", X_OK) != 0) {
		printf("tinyproxy not installed: skipped\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, provider_proxy_used);
	tcase_add_test(tc, requires_proxy_uses_global_proxy);
	tcase_add_test(tc, no_proxy_by_default);
	tcase_add_test(tc, proxy_auth_failure_and_no_password_leak);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr) + children_failed;
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
