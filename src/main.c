/* SPDX-License-Identifier: MIT */
/*
 * main: the command line, start-up order and signals. Every signal is
 * blocked before any thread starts and taken synchronously here with
 * sigwait(), so no handler ever runs on a request thread: SIGTERM/SIGINT
 * drain and exit, SIGHUP reloads the config and keys.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "env.h"
#include "http_front.h"
#include "listener.h"
#include "ws_front.h"
#include "log.h"
#include "pipeline.h"
#include "upstream.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

#define EXIT_CONFIG 1

struct options {
	const char *config_path;
	const char *env_path;
	bool env_required;
	bool check_only;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: llm-bridge [OPTIONS]\n"
		"An OpenAI-compatible gateway to LLM providers.\n\n"
		"  -c, --config FILE    configuration file (default %s)\n"
		"  -e, --env-file FILE  environment file with keys (default: "
		".env in the\n"
		"                       working directory if present, else %s)\n"
		"  -t, --check-config   validate the configuration and exit "
		"(0 = valid)\n"
		"  -V, --version        print the version and exit\n"
		"  -h, --help           print this help and exit\n",
		CONFIG_DEFAULT_PATH, CONFIG_DEFAULT_ENV_PATH);
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "env-file", required_argument, NULL, 'e' },
		{ "check-config", no_argument, NULL, 't' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->config_path = CONFIG_DEFAULT_PATH;
	while ((c = getopt_long(argc, argv, "c:e:tVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config_path = optarg;
			break;
		case 'e':
			o->env_path = optarg;
			o->env_required = true;
			break;
		case 't':
			o->check_only = true;
			break;
		case 'V':
			printf("llm-bridge %s\n", PACKAGE_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "llm-bridge: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return -1;
	}
	if (!o->env_path)
		o->env_path = access(".env", F_OK) == 0 ? ".env" :
			      CONFIG_DEFAULT_ENV_PATH;
	return 0;
}

/* Load env + config. Returns NULL after printing every problem. */
static struct config *load(const struct options *o)
{
	struct buf errors;
	struct env *env;
	struct config *cfg = NULL;

	buf_init(&errors, 0);
	env = env_load(o->env_path, o->env_required, &errors);
	if (env)
		cfg = config_load(o->config_path, env, &errors);
	if (!cfg && errors.len)
		fprintf(stderr, "%s", errors.data);
	env_free(env);
	buf_free(&errors);
	return cfg;
}

static void apply_logging(const struct config *cfg)
{
	log_set_level((enum log_level)cfg->logging.level);
	log_set_json(cfg->logging.json);
}

static void reload(const struct options *o)
{
	struct config *cfg = load(o);

	if (!cfg) {
		log_error("config", "reload of %s failed; keeping the running "
			  "configuration", o->config_path);
		return;
	}
	apply_logging(cfg);
	pipeline_set_config(cfg);
	config_release(cfg);
	log_info("config", "configuration reloaded from %s", o->config_path);
}

/* Thousands of streams need thousands of descriptors. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The listener's verdict on a new connection: hand it to its front. */
struct fronts {
	struct http_front *http;
	struct ws_front *ws;
};

static int hand_connection(void *ud, enum listener_kind kind, int fd,
			   const struct sockaddr *addr, socklen_t len,
			   const struct reqhead *head, struct api_error *err,
			   const char **extra)
{
	struct fronts *fr = ud;

	if (kind == LISTENER_WS) {
		if (ws_front_check_upgrade(head, err, extra) < 0)
			return -1;
		ws_front_add(fr->ws, fd, addr, len);
	} else {
		http_front_add(fr->http, fd, addr, len);
	}
	return 0;
}

static unsigned front_load(void *ud)
{
	struct fronts *fr = ud;

	return http_front_connections(fr->http) +
	       ws_front_connections(fr->ws);
}

static int serve(const struct options *o, struct config *cfg)
{
	struct fronts fr = { 0 };
	struct listener *listener = NULL;
	sigset_t set;
	int sig;
	unsigned drain;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();

	if (upstream_global_init() < 0) {
		log_error("main", "cannot initialise libcurl");
		return 1;
	}
	pipeline_set_config(cfg);
	fr.http = http_front_start(cfg);
	fr.ws = fr.http ? ws_front_start(cfg) : NULL;
	if (fr.ws)
		listener = listener_start(cfg, WS_PATH, hand_connection,
					  front_load, &fr);
	if (!listener) {
		ws_front_stop(fr.ws, 0);
		http_front_stop(fr.http, 0);
		upstream_global_cleanup();
		return 1;
	}
	if (cfg->n_access_keys == 0)
		log_warn("main", "no client keys (ACCESS_API_KEYS) are set: "
			 "every API request will be refused with 401");
	log_info("main", "llm-bridge %s listening on %s:%u", PACKAGE_VERSION,
		 cfg->server.host, listener_port(listener));
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(o);
			continue;
		}
		break;
	}
	cfg = pipeline_config_acquire();
	drain = cfg->server.shutdown_timeout_s;
	config_release(cfg);
	log_info("main", "signal %d: draining requests (up to %us)", sig, drain);
	listener_stop(listener);
	{
		/* one drain budget shared by both fronts */
		uint64_t t0 = now_ms(), spent;

		ws_front_stop(fr.ws, drain);
		spent = (now_ms() - t0) / 1000;
		http_front_stop(fr.http, spent < drain ? drain - (unsigned)spent : 0);
	}
	pipeline_set_config(NULL);
	upstream_global_cleanup();
	log_info("main", "stopped");
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	struct config *cfg;
	int rc;

	if (parse_args(argc, argv, &o) < 0)
		return 2;
	cfg = load(&o);
	if (!cfg) {
		fprintf(stderr, "llm-bridge: configuration %s is invalid\n",
			o.config_path);
		return EXIT_CONFIG;
	}
	if (o.check_only) {
		printf("llm-bridge: configuration %s OK\n", o.config_path);
		config_release(cfg);
		return 0;
	}
	apply_logging(cfg);
	rc = serve(&o, cfg);
	config_release(cfg);
	return rc;
}
