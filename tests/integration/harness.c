/* SPDX-License-Identifier: MIT */
/*
 * harness: child processes (mock, daemon) and a libcurl client for the
 * integration suites. Failures here abort the whole run with a message:
 * a test bed that half-started would only produce confusing failures.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "harness: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

double h_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

char *h_tmpdir(void)
{
	char tmpl[] = "/tmp/lb-test-XXXXXX";

	if (!mkdtemp(tmpl))
		die("mkdtemp: %s", strerror(errno));
	return strdup(tmpl);
}

char *h_write_file(const char *dir, const char *name, const char *text)
{
	char *path;
	FILE *f;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		abort();
	f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		die("cannot write %s", path);
	return path;
}

static const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);
	return v && *v ? v : dflt;
}

/* fork+exec argv with stdout to out_fd (or -1: inherit) and stderr to
 * err_path (or NULL: inherit). */
static pid_t spawn(char *const *argv, int out_fd, const char *err_path)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		if (out_fd >= 0)
			dup2(out_fd, 1);
		if (err_path) {
			int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd >= 0)
				dup2(fd, 2);
		}
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

void h_mock_start(struct h_proc *m)
{
	char *argv[] = { (char *)env_or("LB_MOCK", "mock/mock-upstream"),
			 "--port", "0", NULL };
	int pfd[2];
	char line[64] = "";
	size_t n = 0;
	char *dir = h_tmpdir();

	memset(m, 0, sizeof(*m));
	snprintf(m->dir, sizeof(m->dir), "%s", dir);
	free(dir);
	snprintf(m->log_path, sizeof(m->log_path), "%s/mock.log", m->dir);
	if (pipe(pfd) < 0)
		die("pipe: %s", strerror(errno));
	m->pid = spawn(argv, pfd[1], m->log_path);
	close(pfd[1]);
	/* "PORT <n>\n" */
	while (n < sizeof(line) - 1) {
		ssize_t k = read(pfd[0], line + n, 1);
		if (k <= 0 || line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	close(pfd[0]);
	if (sscanf(line, "PORT %u", &m->port) != 1 || !m->port)
		die("mock did not report its port (got '%s')", line);
}

/* Remove a child's private directory: only after a clean exit, so a
 * failure leaves its log behind (or always, with LB_KEEP_TEST_DIRS). */
static void remove_dir(const char *dir)
{
	char cmd[128];

	if (!dir[0] || getenv("LB_KEEP_TEST_DIRS") ||
	    strncmp(dir, "/tmp/lb-test-", 13) != 0)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "harness: cannot remove %s\n", dir);
}

/* The secret scan every test gets for free: no value of a *KEY* variable
 * from the daemon's env file may appear anywhere in its log. Returns the
 * number of leaks (each named on stderr by variable, never by value). */
static int secrets_in_log(const struct h_proc *p)
{
	char path[128], *env, *log, *line, *save = NULL;
	int leaks = 0;

	snprintf(path, sizeof(path), "%s/llm-bridge.env", p->dir);
	env = h_read_file(path);
	if (!env)
		return 0; /* not a daemon (the mock, a proxy) */
	log = h_proc_log(p);
	for (line = strtok_r(env, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '='), *v, *vsave = NULL;

		if (!eq || !strstr(line, "KEY"))
			continue;
		*eq = '\0';
		/* ACCESS_API_KEYS holds a list */
		for (v = strtok_r(eq + 1, ",", &vsave); v;
		     v = strtok_r(NULL, ",", &vsave)) {
			if (strlen(v) >= 8 && strstr(log, v)) {
				fprintf(stderr, "harness: a value of %s is in "
					"the daemon log %s\n", line,
					p->log_path);
				leaks++;
			}
		}
	}
	free(log);
	free(env);
	return leaks;
}

int h_proc_stop(struct h_proc *p)
{
	int st = 0, rc;

	if (p->pid <= 0)
		return -1;
	kill(p->pid, SIGTERM);
	while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
		;
	p->pid = 0;
	rc = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
	if (rc == 0 && secrets_in_log(p))
		rc = 98;
	if (rc == 0)
		remove_dir(p->dir);
	else
		fprintf(stderr, "harness: child exited %d, log kept: %s\n", rc,
			p->log_path);
	return rc;
}

char *h_read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	struct buf b;
	char tmp[4096];
	size_t n;

	if (!f)
		return NULL;
	buf_init(&b, 0);
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		buf_append(&b, tmp, n);
	fclose(f);
	return b.data ? buf_steal(&b) : strdup("");
}

char *h_proc_log(const struct h_proc *p)
{
	char *s = h_read_file(p->log_path);

	return s ? s : strdup("");
}

static unsigned parse_listening_port(const char *log)
{
	const char *s = strstr(log, "listening on ");
	const char *colon;

	if (!s)
		return 0;
	s += strlen("listening on ");
	colon = s;
	while (*colon && *colon != ' ' && *colon != '"' && *colon != '\n')
		colon++;
	while (colon > s && colon[-1] != ':')
		colon--;
	return (unsigned)strtoul(colon, NULL, 10);
}

/* The server.port a test's config fixes ("  port: N" under "server:"),
 * or 0. */
static unsigned config_port(const char *cfg)
{
	const char *s = strstr(cfg, "server:"), *p;

	if (!s || !(p = strstr(s, "\n  port: ")))
		return 0;
	return (unsigned)strtoul(p + strlen("\n  port: "), NULL, 10);
}

static bool port_accepts(unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

void h_daemon_start(struct h_proc *d, const char *config_yaml,
		    const char *env_text)
{
	char *dir = h_tmpdir(), *cfg_text, *cfg_path, *env_path;
	const char *daemon = env_or("LB_DAEMON", "../src/llm-bridge");
	double deadline;
	unsigned fixed_port;

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "%s", dir);
	free(dir);
	snprintf(d->log_path, sizeof(d->log_path), "%s/daemon.log", d->dir);
	if (strstr(config_yaml, "server:"))
		cfg_text = strdup(config_yaml);
	else if (asprintf(&cfg_text, "server:\n  host: 127.0.0.1\n  port: 0\n"
			  "  shutdown_timeout: 5\n%s", config_yaml) < 0)
		abort();
	cfg_path = h_write_file(d->dir, "config.yaml", cfg_text);
	env_path = h_write_file(d->dir, "llm-bridge.env",
				env_text ? env_text : "");
	/* LB_VALGRIND=1: the daemon runs under memcheck, and any invalid
	 * access or definite leak makes it exit 99, which fails the test
	 * that stops it */
	char *vg[] = { "valgrind", "--quiet", "--error-exitcode=99",
		       "--leak-check=full", "--errors-for-leak-kinds=definite",
		       "--show-leak-kinds=definite", "--track-fds=no",
		       (char *)daemon, "--config", cfg_path, "--env-file",
		       env_path, NULL };
	char *plain[] = { (char *)daemon, "--config", cfg_path, "--env-file",
			  env_path, NULL };
	bool valgrind = getenv("LB_VALGRIND") && *getenv("LB_VALGRIND") == '1';

	/* the usage database goes to the test's own directory, as it goes
	 * to systemd's StateDirectory in production */
	setenv("STATE_DIRECTORY", d->dir, 1);
	if (valgrind)
		vg[0] = (char *)env_or("LB_VALGRIND_BIN", "/usr/bin/valgrind");
	d->pid = spawn(valgrind ? vg : plain, -1, d->log_path);
	fixed_port = config_port(cfg_text);
	deadline = h_now_ms() + (valgrind ? 60000 : 10000);
	while (h_now_ms() < deadline) {
		char *log = h_proc_log(d);
		int st;

		d->port = parse_listening_port(log);
		free(log);
		/* a fixed port needs no log line (a quiet logging.level) */
		if (!d->port && fixed_port && port_accepts(fixed_port))
			d->port = fixed_port;
		if (d->port)
			break;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			log = h_proc_log(d);
			fprintf(stderr, "%s\n", log);
			die("daemon exited during startup (config %s)", cfg_path);
		}
		usleep(10000);
	}
	if (!d->port)
		die("daemon did not start listening (%s)", d->log_path);
	free(cfg_text);
	free(cfg_path);
	free(env_path);
}

int h_run_daemon(char **output, const char *const *args)
{
	const char *daemon = env_or("LB_DAEMON", "../src/llm-bridge");
	char *argv[16];
	char *dir = h_tmpdir(), *out_path;
	struct h_proc p = { 0 };
	size_t i = 0;
	int fd, st = 0;
	pid_t pid;

	argv[i++] = (char *)daemon;
	for (; args && *args && i < 15; args++)
		argv[i++] = (char *)*args;
	argv[i] = NULL;
	if (asprintf(&out_path, "%s/out", dir) < 0)
		abort();
	fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	pid = spawn(argv, fd, out_path);
	close(fd);
	waitpid(pid, &st, 0);
	snprintf(p.log_path, sizeof(p.log_path), "%s", out_path);
	*output = h_proc_log(&p);
	unlink(out_path);
	rmdir(dir);
	free(out_path);
	free(dir);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- HTTP client ---- */

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct h_resp *r = ud;

	buf_append(&r->headers, p, size * n);
	return size * n;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct h_resp *r = ud;
	size_t len = size * n;

	if (r->n_pieces < sizeof(r->piece_t) / sizeof(r->piece_t[0]))
		r->piece_t[r->n_pieces] = h_now_ms();
	r->n_pieces++;
	buf_append(&r->body, p, len);
	if (r->abort_after && r->body.len >= r->abort_after) {
		r->aborted_at_ms = h_now_ms();
		return 0; /* curl aborts and closes the connection */
	}
	return len;
}

static char *tls_ca;  /* h_use_tls(): https with this CA */
static char *tls_pin; /* and, if set, this server public key */

void h_use_tls(const char *ca_file)
{
	free(tls_ca);
	tls_ca = ca_file ? strdup(ca_file) : NULL;
	free(tls_pin);
	tls_pin = NULL;
}

void h_pin_key(const char *pubkey_file)
{
	free(tls_pin);
	tls_pin = pubkey_file ? strdup(pubkey_file) : NULL;
}

static size_t abort_next;

void h_abort_next(size_t n)
{
	abort_next = n;
}

int h_http(unsigned port, const char *method, const char *path,
	   const char *const *headers, const char *body, size_t body_len,
	   struct h_resp *r)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	char url[256];
	CURLcode rc;
	memset(r, 0, sizeof(*r));
	r->abort_after = abort_next;
	abort_next = 0;
	buf_init(&r->headers, 0);
	buf_init(&r->body, 0);
	snprintf(url, sizeof(url), "%s://127.0.0.1:%u%s",
		 tls_ca ? "https" : "http", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (tls_ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, tls_ca);
	if (tls_pin)
		curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, tls_pin);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)body_len);
	}
	hl = curl_slist_append(hl, "Expect:");
	for (; headers && *headers; headers++)
		hl = curl_slist_append(hl, *headers);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	/* every answer any test gets from the daemon is scanned for the test
	 * keys (the mock's own pages report what it was sent) */
	if (strncmp(path, "/_mock/", 7) != 0 &&
	    ((r->body.data && (strstr(r->body.data, H_CLIENT_KEY) ||
			      strstr(r->body.data, H_PROVIDER_KEY))) ||
	    (r->headers.data && (strstr(r->headers.data, H_CLIENT_KEY) ||
				 strstr(r->headers.data, H_PROVIDER_KEY)))))
		die("a test key came back in an answer to %s %s", method,
		    path);
	curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r->total_s);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return (int)rc;
}

int h_chat(unsigned port, const char *json, struct h_resp *r)
{
	const char *hdr[] = { "Authorization: Bearer " H_CLIENT_KEY,
			      "Content-Type: application/json", NULL };

	return h_http(port, "POST", "/v1/chat/completions", hdr, json,
		      strlen(json), r);
}

void h_resp_free(struct h_resp *r)
{
	buf_free(&r->headers);
	buf_free(&r->body);
}

char *h_header(const struct h_resp *r, const char *name)
{
	const char *s = r->headers.data;
	size_t nlen = strlen(name);
	char *found = NULL;

	/* The last response's headers win (after a 100 Continue, say). */
	while (s && *s) {
		const char *eol = strstr(s, "\r\n");
		size_t len = eol ? (size_t)(eol - s) : strlen(s);
		if (len > nlen && s[nlen] == ':' && !strncasecmp(s, name, nlen)) {
			const char *v = s + nlen + 1;
			while (*v == ' ')
				v++;
			free(found);
			found = strndup(v, len - (size_t)(v - s));
		}
		s += len + (eol ? 2 : 0);
	}
	return found;
}

json_object *h_json(const struct h_resp *r)
{
	struct json_tokener *tok;
	json_object *j;

	if (!r->body.data)
		return NULL;
	/* JSON is UTF-8 (RFC 8259): a body that is not parses as nothing */
	tok = json_tokener_new();
	json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
	j = json_tokener_parse_ex(tok, r->body.data, (int)r->body.len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(j);
		j = NULL;
	}
	json_tokener_free(tok);
	return j;
}

json_object *h_get(json_object *o, const char *path)
{
	char *copy = strdup(path), *save = NULL;

	for (char *t = strtok_r(copy, ".", &save); t && o;
	     t = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(o, json_type_array) &&
		    isdigit((unsigned char)*t))
			o = json_object_array_get_idx(o, (size_t)atoi(t));
		else if (!json_object_object_get_ex(o, t, &o))
			o = NULL;
	}
	free(copy);
	return o;
}

const char *h_get_str(json_object *o, const char *path)
{
	json_object *v = h_get(o, path);
	return v && json_object_is_type(v, json_type_string) ?
		       json_object_get_string(v) : NULL;
}

char *h_error_field(const struct h_resp *r, const char *field)
{
	json_object *j = h_json(r);
	char path[64];
	const char *v;
	char *out;

	snprintf(path, sizeof(path), "error.%s", field);
	v = h_get_str(j, path);
	out = strdup(v ? v : "");
	json_object_put(j);
	return out;
}

size_t h_sse_events(const struct h_resp *r, char **out, size_t max,
		    char **storage)
{
	char *s = strdup(r->body.data ? r->body.data : "");
	char *save = NULL;
	size_t n = 0;

	*storage = s;
	for (char *ev = strtok_r(s, "\n", &save); ev && n < max;
	     ev = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(ev, "data: ", 6))
			out[n++] = ev + 6;
	}
	return n;
}

char *h_stream_text(const struct h_resp *r)
{
	char *ev[512], *storage;
	size_t n = h_sse_events(r, ev, 512, &storage);
	struct buf b;

	buf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		json_object *j = json_tokener_parse(ev[i]);
		const char *c = h_get_str(j, "choices.0.delta.content");
		if (c)
			buf_appends(&b, c);
		json_object_put(j);
	}
	free(storage);
	return buf_steal(&b);
}

/* ---- mock control ---- */

json_object *h_mock_stats(const struct h_proc *m)
{
	struct h_resp r = { 0 };
	json_object *j;

	h_http(m->port, "GET", "/_mock/stats", NULL, NULL, 0, &r);
	j = h_json(&r);
	h_resp_free(&r);
	if (!j)
		die("mock stats unreadable");
	return j;
}

long h_mock_stat(const struct h_proc *m, const char *name)
{
	json_object *j = h_mock_stats(m);
	long v = (long)json_object_get_int64(h_get(j, name));

	json_object_put(j);
	return v;
}

json_object *h_mock_last_body(const struct h_proc *m)
{
	json_object *j = h_mock_stats(m);
	const char *body = h_get_str(j, "last_request.body");
	json_object *out = body ? json_tokener_parse(body) : NULL;

	json_object_put(j);
	return out;
}

char *h_mock_last_header(const struct h_proc *m, const char *name)
{
	json_object *j = h_mock_stats(m);
	json_object *hdrs = h_get(j, "last_request.headers"), *v = NULL;
	char *out = NULL;

	if (hdrs && json_object_object_get_ex(hdrs, name, &v))
		out = strdup(json_object_get_string(v));
	json_object_put(j);
	return out;
}

double h_mock_wait_tag_abort(const struct h_proc *m, const char *tag,
			     double timeout_ms, long *aborts)
{
	double deadline = h_now_ms() + timeout_ms, at = -1;

	*aborts = 0;
	for (;;) {
		json_object *j = h_mock_stats(m);
		const char *seen = h_get_str(j, "tag_aborted");

		if (seen && !strcmp(seen, tag)) {
			at = (double)json_object_get_int64(h_get(j,
							"tag_abort_ms"));
			*aborts = (long)json_object_get_int64(h_get(j,
							"tag_aborts"));
		}
		json_object_put(j);
		if (at >= 0 || h_now_ms() >= deadline)
			return at;
		usleep(20000);
	}
}

void h_mock_reset(const struct h_proc *m)
{
	struct h_resp r = { 0 };

	h_http(m->port, "POST", "/_mock/reset", NULL, "", 0, &r);
	h_resp_free(&r);
}

/* certtool templates: a CA, and a server certificate it signs. */
static const char ca_template[] =
	"cn = \"llm-bridge test CA\"\nca\ncert_signing_key\n"
	"expiration_days = 2\n";
static const char server_template[] =
	"cn = \"localhost\"\ndns_name = \"localhost\"\n"
	"ip_address = \"127.0.0.1\"\nip_address = \"::1\"\n"
	"tls_www_server\nsigning_key\nencryption_key\n"
	"expiration_days = 2\n";

void h_make_certs(const char *dir, const char *prefix)
{
	char cmd[2048];
	char *t1 = h_write_file(dir, "ca.tmpl", ca_template);
	char *t2 = h_write_file(dir, "server.tmpl", server_template);

	{
		/* the CA is made once per directory, so several server
		 * certificates can share it */
		snprintf(cmd, sizeof(cmd),
			 "(cd '%s' && { [ -f ca.pem ] || { "
			 "certtool --generate-privkey --key-type=ecdsa "
			 "--outfile ca.key && certtool --generate-self-signed "
			 "--load-privkey ca.key --template ca.tmpl --outfile "
			 "ca.pem; }; } && certtool --generate-privkey "
			 "--key-type=ecdsa --outfile %s.key && certtool "
			 "--generate-certificate --load-privkey %s.key "
			 "--load-ca-certificate ca.pem --load-ca-privkey ca.key "
			 "--template server.tmpl --outfile %s.pem && certtool "
			 "--pubkey-info --load-privkey %s.key --outfile %s.pub) "
			 ">/dev/null 2>&1", dir, prefix, prefix, prefix, prefix,
			 prefix);
		if (system(cmd) != 0)
			die("certtool failed (is gnutls-bin installed?)");
	}
	free(t1);
	free(t2);
}

unsigned h_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		die("cannot find a free port: %s", strerror(errno));
	close(fd);
	return ntohs(a.sin_port);
}
