#!/bin/sh
# Install what llm-bridge needs to build, run and test on Debian/Ubuntu.
# Usage: packaging/install-deps.sh   (as root, or through sudo)
set -eu
if [ "$(id -u)" -ne 0 ]; then
	exec sudo "$0" "$@"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
	build-essential autoconf automake libtool pkg-config ca-certificates \
	libmicrohttpd-dev libwebsockets-dev libev-dev libwebsockets-evlib-ev \
	libcurl4-gnutls-dev libjson-c-dev \
	libyaml-dev libgnutls28-dev libpcre2-dev libsqlite3-dev check \
	gnutls-bin \
	cppcheck clang-tidy valgrind
# Packaging (packaging/check-deb.sh): build and lint the .deb, check the
# unit (systemd-analyze), install it and ask the daemon for /health (curl);
# rpm builds the spec file's package (rpmbuild --nodeps on Debian);
# packaging/check-unit.sh boots the package under systemd in a throwaway
# root (mmdebstrap, systemd-nspawn).
apt-get install -y -qq --no-install-recommends \
	dpkg-dev debhelper fakeroot lintian systemd curl rpm \
	mmdebstrap systemd-container
# Fuzzing (make fuzz, doc/fuzzing.md): clang with its sanitizer and
# libFuzzer runtimes, and the standalone libFuzzer of the same version.
apt-get install -y -qq --no-install-recommends clang libclang-rt-dev
clang_major=$(clang -dumpversion | cut -d. -f1)
apt-get install -y -qq --no-install-recommends "libfuzzer-$clang_major-dev"
# Tests only: real clients drive the daemon (the official openai npm
# package, the ws package, and a page in headless Chromium) and a real
# forward proxy (tinyproxy) between the daemon and the mock provider.
apt-get install -y -qq --no-install-recommends chromium tinyproxy
# Benchmarks only (tests/bench/run, on demand, never in make check): nginx
# as the reference proxy and wrk as the load generator, about 3 MB with
# their dependencies. Debian may start its own nginx service on port 80 on
# install; the benchmark runs a private instance on a free port either way.
apt-get install -y -qq --no-install-recommends nginx-light wrk
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	apt-get install -y -qq --no-install-recommends nodejs npm
fi
