#!/usr/bin/env bash
# Build llm-bridge for libFuzzer and run the harnesses: `make fuzz` in a
# private copy of the source tree, so the checkout itself may stay
# configured for a normal build (a VPATH build refuses a source tree that
# is configured in place). The copy lives in build-fuzz/tree (ignored by
# git) and is refreshed, not rebuilt, on the next run.
# Usage: tests/fuzz/run.sh [make arguments, e.g. FUZZ_SECONDS=120
#        FUZZ_TARGETS="sse env"]
# Needs clang with libFuzzer (packaging/install-deps.sh installs it).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
dest=${FUZZ_BUILD_DIR:-$top/build-fuzz}/tree
mkdir -p "$dest"
cd "$top"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# tracked and new (not ignored) files, with their times kept so that
	# make only rebuilds what changed
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf - | tar -C "$dest" -xf -
else
	tar --exclude=./build-fuzz -cf - . | tar -C "$dest" -xf -
fi
cd "$dest"
if [ ! -f config.status ]; then
	./autogen.sh
	CC=${CC:-clang} ./configure --enable-fuzzing
fi
exec make -j"$(nproc 2>/dev/null || echo 2)" fuzz "$@"
