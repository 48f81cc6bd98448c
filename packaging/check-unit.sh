#!/bin/sh
# Run the packaged llm-bridge under a real systemd, in its sandbox:
# build a throwaway Debian root (mmdebstrap), install the .deb in it, boot
# it with systemd-nspawn, and let a oneshot unit inside check that:
#  - llm-bridge.service is active as user llm-bridge and answers /health
#    and /v1/models (the key file is readable through the sandbox);
#  - a request to a provider on loopback gets as far as connect(2)
#    (sockets and the system call filter allow it): 502 upstream_unreachable;
#  - systemctl reload (ExecReload, SIGHUP) applies a changed config.yaml;
#  - systemctl stop drains and ends with status 0.
# No traffic leaves the machine: the root is built from the Debian mirror,
# then the container only talks to 127.0.0.1.
#
# Usage: packaging/check-unit.sh [DEB]   (default: the newest build-deb/*.deb)
# Needs root, systemd-container and mmdebstrap. OUT=DIR as for build-deb.sh.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$top/build-deb}
arch=$(dpkg --print-architecture)
deb=${1:-$(ls -t "$out"/llm-bridge_*_"$arch".deb 2>/dev/null | head -n 1)}
[ -n "$deb" ] && [ -f "$deb" ] || { echo "check-unit: no .deb (run packaging/build-deb.sh)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "check-unit: needs root" >&2; exit 1; }
fail() { echo "check-unit: FAIL: $*" >&2; exit 1; }

suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
mirror=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
root=$out/nsroot
rm -rf "$root"
echo "check-unit: building a $suite root in $root"
mmdebstrap --variant=apt --include=systemd,systemd-sysv,dbus,curl \
	--customize-hook="copy-in $deb /root" \
	--customize-hook="chroot \"\$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /root/$(basename "$deb")" \
	"$suite" "$root" ${mirror:+"$mirror"} >"$out/mmdebstrap.log" 2>&1 ||
	{ tail -n 30 "$out/mmdebstrap.log"; fail "mmdebstrap"; }

# Keys, and the test that runs once the system is up.
sed -i 's/^ACCESS_API_KEYS=.*/ACCESS_API_KEYS=check-unit-key/' "$root/etc/llm-bridge/llm-bridge.env"
cat >"$root/root/selftest.sh" <<'EOF'
#!/bin/sh
exec >/root/selftest.out 2>&1
ok() { echo "PASS: $*"; }
no() { echo "FAIL: $*"; }
auth='Authorization: Bearer check-unit-key'
for _ in $(seq 50); do curl -fs http://127.0.0.1:1219/health >/dev/null && break; sleep 0.2; done
systemctl is-active -q llm-bridge && ok "service active" || no "service not active"
[ "$(ps -o user= -p "$(systemctl show -P MainPID llm-bridge)")" = llm-bridge ] &&
	ok "runs as llm-bridge" || no "not running as llm-bridge"
curl -fsS http://127.0.0.1:1219/health | grep -q '"ok"' && ok "/health" || no "/health"
curl -fsS -H "$auth" http://127.0.0.1:1219/v1/models | grep -q '"openai/gpt-4o"' &&
	ok "/v1/models with the key from llm-bridge.env" || no "/v1/models"
# The WebSocket front: its epoll loop passes the system call filter, and
# an upgrade is answered (curl holds the socket open until -m ends it)
journalctl -q -u llm-bridge | grep -q 'WebSocket event loop: libev (epoll)' &&
	ok "WebSocket front on libev's epoll loop" || no "WebSocket front not on libev's epoll loop"
curl -si -m 2 -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
	-H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
	-H "$auth" http://127.0.0.1:1219/v1/ws | head -n 1 | grep -q ' 101 ' &&
	ok "WebSocket upgrade answered 101" || no "WebSocket upgrade not answered 101"
# A provider on loopback that refuses connections; reload to apply it.
sed -i 's/^providers:$/providers:\n  local:\n    base_url: "http:\/\/127.0.0.1:9\/v1"\n    allow_unlisted_models: true/' /etc/llm-bridge/config.yaml
llm-bridge --check-config --config /etc/llm-bridge/config.yaml || no "edited config invalid"
systemctl reload llm-bridge && ok "systemctl reload" || no "systemctl reload"
sleep 1
journalctl -q -u llm-bridge | grep -q 'configuration reloaded' && ok "reload logged" || no "no reload in the log"
body=$(curl -sS -H "$auth" -H 'Content-Type: application/json' \
	-d '{"model":"local/any","messages":[{"role":"user","content":"hi"}]}' \
	http://127.0.0.1:1219/v1/chat/completions)
echo "$body" | grep -q 'upstream_unreachable' && ok "outbound connect reached: $body" ||
	no "chat to the loopback provider: $body"
systemctl stop llm-bridge
[ "$(systemctl show -P Result llm-bridge)" = success ] &&
[ "$(systemctl show -P ExecMainStatus llm-bridge)" = 0 ] &&
	ok "stopped cleanly" || no "stop: $(systemctl show -p Result -p ExecMainStatus llm-bridge)"
echo "--- journal"
journalctl -q --no-pager -u llm-bridge | tail -n 20
echo DONE
systemctl poweroff
EOF
chmod 0755 "$root/root/selftest.sh"
cat >"$root/etc/systemd/system/check-unit.service" <<'EOF'
[Unit]
After=llm-bridge.service
[Service]
Type=oneshot
ExecStart=/root/selftest.sh
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/check-unit.service \
	"$root/etc/systemd/system/multi-user.target.wants/check-unit.service"

echo "check-unit: booting it"
timeout 300 systemd-nspawn -q --register=no --keep-unit -D "$root" -b \
	--console=pipe >"$out/nspawn.log" 2>&1 || :
[ -f "$root/root/selftest.out" ] || { tail -n 30 "$out/nspawn.log"; fail "the container did not run the test"; }
cat "$root/root/selftest.out"
grep -q '^DONE' "$root/root/selftest.out" || fail "the test did not finish"
! grep -q '^FAIL' "$root/root/selftest.out" || fail "see above"
rm -rf "$root"
echo "check-unit: all checks passed"
