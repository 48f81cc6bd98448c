#!/bin/sh
# SPDX-License-Identifier: MIT
# Real clients against llm-bridge and the mock upstream, both started here
# on ephemeral loopback ports: the official openai npm SDK, the ws package
# on /v1/ws, and a page in headless Chromium. Exit 77 (skip) only when
# Node.js is absent; a failing npm install is a failure, not a skip.
set -eu

srcdir=$(cd "$(dirname "$0")" && pwd)
: "${LB_DAEMON:?}" "${LB_MOCK:?}"
command -v node >/dev/null 2>&1 || { echo "node not found: skipped"; exit 77; }

work=$(mktemp -d /tmp/lb-compat-XXXXXX)
mock_pid= daemon_pid=
cleanup() {
	rc=$?
	# a failure shows what the daemon and the mock said meanwhile
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		for f in daemon.log tls.log poll.log mock.log; do
			[ -s "$work/$f" ] && { echo "--- $f (last 40 lines)"; tail -n 40 "$work/$f"; }
		done
	fi
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || :
	[ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || :
	wait 2>/dev/null || :
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

# A writable copy: the source tree is read-only under make distcheck, and
# node_modules is cached beside the build so reruns skip the download.
cache=${LB_COMPAT_CACHE:-$PWD/compat-node_modules}
cp "$srcdir/package.json" "$srcdir/package-lock.json" "$srcdir"/*.mjs "$work/"
if [ -d "$cache/node_modules" ] && cmp -s "$cache/package-lock.json" "$srcdir/package-lock.json"; then
	cp -r "$cache/node_modules" "$work/"
else
	(cd "$work" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
	rm -rf "$cache" && mkdir -p "$cache" &&
		cp -r "$work/node_modules" "$srcdir/package-lock.json" "$cache/" || :
fi

"$LB_MOCK" --port 0 >"$work/mock.port" 2>"$work/mock.log" &
mock_pid=$!
for _ in $(seq 100); do grep -q '^PORT ' "$work/mock.port" && break; sleep 0.05; done
mport=$(sed -n 's/^PORT //p' "$work/mock.port")
[ -n "$mport" ] || { echo "mock did not start"; exit 1; }

# The browser test serves its page from this loopback port: Chromium lets
# only a loopback page open loopback sockets (local network access rules).
page_port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")

cat >"$work/config.yaml" <<EOC
server:
  host: 127.0.0.1
  port: 0
  max_body_bytes: 65536
  cors_origins: ["http://app.example", "http://127.0.0.1:$page_port"]
providers:
  mock:
    base_url: "http://127.0.0.1:$mport/v1"
    models:
      gpt-test: { max_tokens: 1000, timeout: 10 }
  gem:
    adapter: gemini
    base_url: "http://127.0.0.1:$mport/v1beta"
    models:
      gemini-2.5-flash: { timeout: 10 }
  deep:
    base_url: "http://127.0.0.1:$mport/v1"
    models:
      deepseek-chat: { timeout: 10 }
EOC
printf 'ACCESS_API_KEYS=sk-compat-client-key\nMOCK_API_KEY=sk-compat-provider\nGEM_API_KEY=sk-compat-gemini\nDEEP_API_KEY=sk-compat-deepseek\n' >"$work/env"

# start_daemon CONFIG LOG: the daemon in the background; sets started_pid
# and started_port once it listens
start_daemon() {
	"$LB_DAEMON" --config "$1" --env-file "$work/env" 2>"$2" &
	started_pid=$!
	started_port=
	for _ in $(seq 200); do
		started_port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$2")
		[ -n "$started_port" ] && return 0
		sleep 0.05
	done
	cat "$2"; echo "daemon ($1) did not start"; exit 1
}
# stop_daemon PID LOG: SIGTERM, and a clean exit (no crash, and no leak
# when built with sanitizers)
stop_daemon() {
	kill "$1"
	rc=0; wait "$1" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$2"; echo "daemon exited $rc"; exit 1; }
}

start_daemon "$work/config.yaml" "$work/daemon.log"
daemon_pid=$started_pid port=$started_port
# the WebSocket front runs on libev's epoll loop (the poll() loop is the
# fallback for a missing plugin, tested below)
grep -q 'WebSocket event loop: libev (epoll)' "$work/daemon.log" ||
	{ cat "$work/daemon.log"; echo "the WebSocket front is not on libev's epoll loop"; exit 1; }

export LB_CLIENT_KEY=sk-compat-client-key LB_MOCK_URL="http://127.0.0.1:$mport" \
	LB_PAGE_PORT=$page_port LB_DAEMON_PID=$daemon_pid
# Both base URL spellings that SDKs and chat apps are given.
for base in "http://127.0.0.1:$port/v1" "http://127.0.0.1:$port"; do
	echo "# openai SDK, base URL $base"
	(cd "$work" && LB_BASE_URL=$base timeout 600 node --test --test-reporter=spec openai.test.mjs)
done
echo "# token counts against js-tiktoken"
(cd "$work" && LB_DAEMON=$LB_DAEMON timeout 600 node --test --test-reporter=spec tokens.test.mjs)
echo "# Gemini and DeepSeek through the SDK, WebSocket, browser"
(cd "$work" && LB_BASE_URL="http://127.0.0.1:$port/v1" \
	timeout 600 node --test --test-concurrency=1 --test-reporter=spec \
		providers.test.mjs ws.test.mjs browser.test.mjs)
# HTTPS and WSS: a second daemon with a throwaway certificate, and clients
# that trust the test CA only through NODE_EXTRA_CA_CERTS
echo "# TLS: the SDK and ws trusting the test CA"
(cd "$work" && {
	printf 'cn = "llm-bridge compat CA"\nca\ncert_signing_key\nexpiration_days = 2\n' >ca.tmpl
	printf 'cn = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\nsigning_key\nencryption_key\nexpiration_days = 2\n' >srv.tmpl
	certtool --generate-privkey --key-type=ecdsa --outfile ca.key &&
	certtool --generate-self-signed --load-privkey ca.key --template ca.tmpl --outfile ca.pem &&
	certtool --generate-privkey --key-type=ecdsa --outfile srv.key &&
	certtool --generate-certificate --load-privkey srv.key --load-ca-certificate ca.pem \
		--load-ca-privkey ca.key --template srv.tmpl --outfile srv.pem
} >/dev/null 2>&1) || { echo "certtool failed"; exit 1; }
sed "s|^  port: 0|  port: 0\n  tls: { cert: $work/srv.pem, key: $work/srv.key }|" \
	"$work/config.yaml" >"$work/tls.yaml"
start_daemon "$work/tls.yaml" "$work/tls.log"
tls_pid=$started_pid
(cd "$work" && NODE_EXTRA_CA_CERTS="$work/ca.pem" LB_TLS_BASE_URL="https://127.0.0.1:$started_port/v1" \
	timeout 600 node --test --test-reporter=spec tls.test.mjs) || { kill "$tls_pid"; exit 1; }
stop_daemon "$tls_pid" "$work/tls.log"
# The WebSocket suite again on libwebsockets' own poll() loop, which
# serves where the libev plugin is missing
echo "# WebSocket on the poll() loop"
export LB_WS_EVENT_LOOP=poll
start_daemon "$work/config.yaml" "$work/poll.log"
unset LB_WS_EVENT_LOOP
poll_pid=$started_pid
grep -q 'WebSocket event loop: poll' "$work/poll.log" ||
	{ cat "$work/poll.log"; echo "LB_WS_EVENT_LOOP=poll was not followed"; exit 1; }
(cd "$work" && LB_BASE_URL="http://127.0.0.1:$started_port/v1" LB_DAEMON_PID=$poll_pid \
	timeout 600 node --test --test-reporter=spec ws.test.mjs) || { kill "$poll_pid"; exit 1; }
stop_daemon "$poll_pid" "$work/poll.log"
if grep -q 'sk-compat-' "$work/daemon.log" "$work/tls.log" "$work/poll.log"; then
	echo "a key appeared in the daemon log"; exit 1
fi
pid=$daemon_pid daemon_pid=
stop_daemon "$pid" "$work/daemon.log"
