#!/bin/sh
# CI check of the llm-bridge Debian package:
#  1. build it from `make dist` output (packaging/build-deb.sh);
#  2. lintian: any error fails, warnings are shown;
#  3. contents: the binary, conffiles, unit, sysusers.d file, man pages,
#     state directory and (when the source has it) the tokenizer data:
#     one compiled image (*.tokimg) per src/tokdata/*.tiktoken, which
#     the installed `llm-bridge tokens` must then be able to use;
#  4. install it (apt-get install ./llm-bridge_*.deb, which pulls the
#     dependencies), check the user, modes and owners, validate the unit
#     and its systemd-analyze security score (2.5 or better);
#  5. run `llm-bridge --check-config --config /etc/llm-bridge/config.yaml`
#     with the installed files, as root and as the llm-bridge user, and
#     start the installed daemon as that user on a free loopback port;
#  6. purge the package and check it leaves no files behind.
# Steps 4-6 change the system: run as root (CI is a root container), or
# they go through sudo. KEEP_INSTALLED=1 skips the purge.
#
# Usage: packaging/check-deb.sh [TARBALL]   (OUT=DIR as for build-deb.sh)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$top/build-deb}
export OUT="$out"
max_exposure=2.5

fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
ok() { echo "check-deb: ok: $*"; }
if [ "$(id -u)" -eq 0 ]; then as_root=; else as_root=sudo; fi

# 1. build
"$top/packaging/build-deb.sh" "$@"
changes=$(ls -t "$out"/llm-bridge_*.changes | head -n 1)
version=$(sed -n 's/^Version: //p' "$changes")
arch=$(dpkg --print-architecture)
deb=$out/llm-bridge_${version}_$arch.deb
[ -f "$deb" ] || fail "no $deb"
src=$out/llm-bridge-${version%-*}
ok "built $(basename "$deb")"

# 2. lintian
lintian_rc=0
lintian --display-level '>=warning' --show-overrides --tag-display-limit 0 \
	--fail-on error "$changes" >"$out/lintian.txt" 2>&1 || lintian_rc=$?
sed -n '/^[EWON]: /p' "$out/lintian.txt"
[ "$lintian_rc" -eq 0 ] || { cat "$out/lintian.txt"; fail "lintian reported errors"; }
ok "lintian: $(grep -c '^E: ' "$out/lintian.txt" || :) errors," \
	"$(grep -c '^W: ' "$out/lintian.txt" || :) warnings," \
	"$(grep -c '^O: ' "$out/lintian.txt" || :) overridden (debian/llm-bridge.lintian-overrides)"

# 3. contents
dpkg-deb -c "$deb" | awk '{ print $1, $2, $6 }' >"$out/contents.txt"
has() { # has MODE-REGEX PATH-REGEX: one entry of that mode and path
	grep -Eq "^$1 [^ ]+ \\./$2\$" "$out/contents.txt" ||
		fail "package lacks $2 (mode $1)"
}
has '-rwxr-xr-x' 'usr/sbin/llm-bridge'
has '-rw-r--r--' 'etc/llm-bridge/config.yaml'
has '-rw-r-----' 'etc/llm-bridge/llm-bridge.env'
has '-rw-r--r--' '(usr/)?lib/systemd/system/llm-bridge\.service'
has '-rw-r--r--' 'usr/lib/sysusers\.d/llm-bridge\.conf'
has '-rw-r--r--' 'usr/share/man/man8/llm-bridge\.8\.gz'
has '-rw-r--r--' 'usr/share/man/man5/llm-bridge\.yaml\.5\.gz'
has 'drwxr-xr-x' 'var/lib/llm-bridge/'
tokdata=$(ls "$src"/src/tokdata/*.tiktoken 2>/dev/null || :)
for f in $tokdata; do
	has '-rw-r--r--' "usr/lib/(x86_64-linux-gnu/)?llm-bridge/tokenizer/$(basename "$f" .tiktoken)\\.tokimg"
done
[ -n "$tokdata" ] && ok "tokenizer data packaged" ||
	echo "check-deb: note: the source has no src/tokdata/*.tiktoken (nothing to check)"
dpkg-deb -f "$deb" Depends | grep -q 'systemd' || fail "Depends lacks systemd (systemd-sysusers)"
dpkg-deb -I "$deb" conffiles >"$out/conffiles.txt"
for f in /etc/llm-bridge/config.yaml /etc/llm-bridge/llm-bridge.env; do
	grep -qx "$f" "$out/conffiles.txt" || fail "$f is not a conffile"
done
ok "contents and conffiles"

# 4. install
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	--no-install-recommends "$deb" >"$out/install.log" 2>&1 ||
	{ cat "$out/install.log"; fail "apt-get install $deb"; }
dpkg-query -W -f '${Status}\n' llm-bridge | grep -q 'install ok installed' ||
	fail "llm-bridge is not installed"
getent passwd llm-bridge >/dev/null || fail "no llm-bridge user"
getent group llm-bridge >/dev/null || fail "no llm-bridge group"
[ "$(stat -c '%U:%G %a' /etc/llm-bridge/llm-bridge.env)" = "root:llm-bridge 640" ] ||
	fail "llm-bridge.env is $(stat -c '%U:%G %a' /etc/llm-bridge/llm-bridge.env), not root:llm-bridge 640"
[ "$(stat -c '%U:%G %a' /var/lib/llm-bridge)" = "llm-bridge:llm-bridge 750" ] ||
	fail "/var/lib/llm-bridge is $(stat -c '%U:%G %a' /var/lib/llm-bridge)"
unit=$(dpkg -L llm-bridge | grep '/systemd/system/llm-bridge\.service$')
systemd-analyze verify "$unit" >"$out/verify.txt" 2>&1 ||
	{ cat "$out/verify.txt"; fail "systemd-analyze verify $unit"; }
exposure=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1 |
	sed -n 's/.*Overall exposure level for llm-bridge.service: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || fail "no score from systemd-analyze security"
awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e <= m) }' ||
	fail "systemd-analyze security: exposure $exposure, above $max_exposure"
ok "installed; unit verified, exposure $exposure (at most $max_exposure)"

# 5. the installed config, with the installed key file
/usr/sbin/llm-bridge --check-config --config /etc/llm-bridge/config.yaml ||
	fail "llm-bridge --check-config --config /etc/llm-bridge/config.yaml"
$as_root setpriv --reuid=llm-bridge --regid=llm-bridge --init-groups \
	/usr/sbin/llm-bridge --check-config \
	--config /etc/llm-bridge/config.yaml \
	--env-file /etc/llm-bridge/llm-bridge.env ||
	fail "--check-config as user llm-bridge (can it read the key file?)"
ok "installed configuration valid, key file readable by llm-bridge"
if [ -n "$tokdata" ]; then
	# "Hello world" is 2 tokens in both encodings; exit 1 if no table loads
	for m in gpt-4o gpt-4; do
		n=$(printf 'Hello world' | /usr/sbin/llm-bridge tokens --model "$m") ||
			fail "llm-bridge tokens --model $m (installed tokenizer data)"
		[ "$n" = 2 ] || fail "llm-bridge tokens --model $m counted $n, not 2"
	done
	ok "installed tokenizer images load"
fi

# Start the daemon as the unit would, on a free port, and ask /health.
tmp=$(mktemp -d /tmp/check-deb-XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && $as_root kill "$pid" 2>/dev/null || :
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
sed 's/^\(  port:\).*/\1 0/' /etc/llm-bridge/config.yaml >"$tmp/config.yaml"
chmod 0755 "$tmp" && chmod 0644 "$tmp/config.yaml"
$as_root setpriv --reuid=llm-bridge --regid=llm-bridge --init-groups \
	/usr/sbin/llm-bridge --config "$tmp/config.yaml" --env-file /etc/llm-bridge/llm-bridge.env \
	2>"$tmp/daemon.log" &
pid=$!
port=
for _ in $(seq 100); do
	port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmp/daemon.log")
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/daemon.log"; fail "the installed daemon did not start"; }
health=$(curl -fsS "http://127.0.0.1:$port/health") ||
	{ cat "$tmp/daemon.log"; fail "GET /health"; }
echo "$health" | grep -q '"ok"' || fail "GET /health answered $health"
# the package depends on libwebsockets' libev plugin: the WebSocket front
# must run on it, not fall back to polling every socket
grep -q 'WebSocket event loop: libev (epoll)' "$tmp/daemon.log" ||
	{ cat "$tmp/daemon.log"; fail "the WebSocket front is not on libev's epoll loop"; }
$as_root kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" -eq 0 ] || { cat "$tmp/daemon.log"; fail "daemon exit status $rc after SIGTERM"; }
ok "installed daemon served /health as llm-bridge and drained on SIGTERM"

# 6. purge
if [ "${KEEP_INSTALLED:-0}" = 1 ]; then
	ok "kept installed (KEEP_INSTALLED=1)"
else
	$as_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq llm-bridge \
		>"$out/purge.log" 2>&1 || { cat "$out/purge.log"; fail "apt-get purge"; }
	for p in /usr/sbin/llm-bridge /etc/llm-bridge /var/lib/llm-bridge "$unit"; do
		[ ! -e "$p" ] || fail "$p left after purge"
	done
	ok "purged cleanly"
fi
echo "check-deb: all checks passed"
