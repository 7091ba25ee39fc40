#!/usr/bin/env bash
# scripts/deps.sh -- install the Debian packages redwork needs, if missing.
#
# Called by `make deps` (and so by every `make test` and `make demo`): when
# everything is installed it exits 0 at once and prints nothing. Otherwise it
# installs what is missing with apt-get, as root or through sudo; without
# either it prints the command to run and exits 1.
#
# Node.js and npm (for examples/node and tests/node) count as present when
# `node` and `npm` are on PATH, however they were installed (Debian, NodeSource,
# nvm); only if one is not are Debian's `nodejs` / `npm` installed.
set -eu

PACKAGES="build-essential pkg-config libhiredis-dev libcjson-dev libinih-dev
libcriterion-dev redis-server python3-redis clang valgrind
libssl-dev openssl libmicrohttpd-dev prometheus tmux gnuplot-nox groff-base
debhelper dpkg-dev fakeroot lintian"

# The fuzzers need clang's runtime (libFuzzer, the sanitizers), packaged
# per clang version: libclang-rt-14-dev on bookworm, -19- on trixie, ...
# The version is clang's own when it is installed, else the one Debian's
# clang package depends on.
clang_major=$(clang -dumpversion 2>/dev/null | cut -d. -f1)
if [ -z "$clang_major" ] && command -v apt-cache >/dev/null 2>&1; then
    clang_major=$(apt-cache depends clang 2>/dev/null |
                  sed -n 's/.*Depends: clang-\([0-9][0-9]*\)$/\1/p' | head -1)
fi
[ -n "$clang_major" ] && PACKAGES="$PACKAGES libclang-rt-$clang_major-dev"

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps.sh: dpkg-query not found: not a Debian system; install by hand:" >&2
    echo "  $PACKAGES nodejs npm" | tr "\n" " " >&2; echo >&2
    exit 1
fi

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *" installed") ;;
        *) missing="$missing $p" ;;
    esac
done
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
missing=${missing# }

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "deps.sh: missing Debian packages: $missing" >&2
    echo "deps.sh: not root and no sudo; run as root:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing" >&2
    exit 1
fi

echo "deps.sh: installing missing Debian packages: $missing"
$SUDO apt-get update
# shellcheck disable=SC2086 # $missing is a word list
$SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends $missing
