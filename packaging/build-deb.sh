#!/bin/sh
# Build the llm-bridge Debian package from a `make dist` tarball:
# unpack it, copy its packaging/debian to debian/, and run
# dpkg-buildpackage -us -uc -b there. The tarball is the source, so what
# is packaged is what is released (and `make dist` proves it complete).
#
# Usage: packaging/build-deb.sh [TARBALL]
#   Without TARBALL it runs `make dist` in the tree (configured already, or
#   configured here in a scratch directory).
#   OUT=DIR puts the work and the results in DIR (default: build-deb/ at
#   the top of the tree). DEB_BUILD_OPTIONS works as usual (nocheck skips
#   the test suites, parallel=N).
# Needs: dpkg-dev, debhelper and the Build-Depends of debian/control
# (packaging/install-deps.sh installs them).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$top/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ $# -ge 1 ]; then
	tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
	if [ -f "$top/Makefile" ]; then
		make -C "$top" dist >"$out/dist.log" 2>&1 ||
			{ cat "$out/dist.log"; exit 1; }
		distdir=$top
	else
		# An unconfigured checkout: configure in a scratch directory so
		# the source tree stays clean.
		[ -x "$top/configure" ] || (cd "$top" && ./autogen.sh)
		rm -rf "$out/dist-build" && mkdir -p "$out/dist-build"
		(cd "$out/dist-build" && "$top/configure" && make dist) \
			>"$out/dist.log" 2>&1 || { cat "$out/dist.log"; exit 1; }
		distdir=$out/dist-build
	fi
	tarball=$(ls -t "$distdir"/llm-bridge-*.tar.gz | head -n 1)
fi

name=$(basename "$tarball" .tar.gz)       # llm-bridge-0.1.0
version=${name#llm-bridge-}
case $version in
'' | *[!0-9A-Za-z.+~]*) echo "build-deb: cannot read a version from $tarball" >&2; exit 1 ;;
esac

work=$out/$name
rm -rf "$work"
tar -xzf "$tarball" -C "$out"
[ -d "$work/packaging/debian" ] ||
	{ echo "build-deb: $tarball has no packaging/debian" >&2; exit 1; }
cp -a "$work/packaging/debian" "$work/debian"
# For a source build (dpkg-buildpackage -S) the orig tarball sits beside.
ln -sf "$tarball" "$out/llm-bridge_$version.orig.tar.gz"

debversion=$(cd "$work" && dpkg-parsechangelog -S Version)
if [ "${debversion%-*}" != "$version" ]; then
	echo "build-deb: packaging/debian/changelog is at $debversion but the" \
		"tarball is $version: add a changelog entry (dch -v $version-1)" >&2
	exit 1
fi

echo "build-deb: building llm-bridge $debversion in $work"
(cd "$work" && dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1 || {
	tail -n 100 "$out/build.log"
	echo "build-deb: dpkg-buildpackage failed; full log: $out/build.log" >&2
	exit 1
}
ls -1 "$out"/llm-bridge*_"$debversion"_*.deb "$out"/llm-bridge_"$debversion"_*.changes
