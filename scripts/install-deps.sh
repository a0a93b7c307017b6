#!/usr/bin/env bash
# datagate's Debian packages, by what needs them.
#
#   scripts/install-deps.sh [GROUP...]          install what is missing
#   scripts/install-deps.sh --check [GROUP...]  name what is missing, exit 1
#
# GROUP: build (module, CLI, unit tests), run (the demo gateway), test (the
# nginx suite), dev (fuzzing, sanitizers, valgrind, benchmarks), deb (the
# Debian packages: make deb, make test-deb); no GROUP: all of them.  Only `make deps` and `make run` install; `make build` and
# `make test` only check, and fail naming `make deps`.
set -euo pipefail

BUILD_PKGS=(
    build-essential nginx-dev libssl-dev libhiredis-dev libmaxminddb-dev
    libyaml-dev zlib1g-dev libpcre2-dev
)
RUN_PKGS=(nginx openssl curl)
# chromium: pages are checked in a headless browser
# (test-nginx/lib/DGBrowser.pm); fonts-wqy-zenhei: their Chinese in the
# screenshots
TEST_PKGS=(
    nginx openssl curl redis-server libmaxmind-db-writer-perl
    libio-socket-ssl-perl libtest-base-perl libjson-pp-perl chromium
    fonts-wqy-zenhei
)
DEV_PKGS=(clang libclang-rt-14-dev valgrind libnginx-mod-http-lua lua-cjson)
# dh-sequence-nginx is nginx-dev's (in BUILD_PKGS)
DEB_PKGS=(debhelper dpkg-dev lintian nginx curl)

check=no
if [ "${1:-}" = "--check" ]; then
    check=yes
    shift
fi

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(build run test dev deb)

pkgs=()
for g in "${groups[@]}"; do
    case "$g" in
        build) pkgs+=("${BUILD_PKGS[@]}") ;;
        run)   pkgs+=("${BUILD_PKGS[@]}" "${RUN_PKGS[@]}") ;;
        test)  pkgs+=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
        dev)   pkgs+=("${BUILD_PKGS[@]}" "${DEV_PKGS[@]}") ;;
        deb)   pkgs+=("${BUILD_PKGS[@]}" "${DEB_PKGS[@]}") ;;
        *)     echo "usage: $0 [--check] [build|run|test|dev|deb]..." >&2
               exit 2 ;;
    esac
done

if ! command -v dpkg-query >/dev/null 2>&1; then
    # not a Debian system: the compiler and the tests say what is missing
    echo "datagate: no dpkg-query, Debian packages not checked" >&2
    [ "$check" = yes ] && exit 0
    echo "datagate: install the packages of docs/build.md by hand" >&2
    exit 1
fi

missing=()
for p in $(printf '%s\n' "${pkgs[@]}" | sort -u); do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing+=("$p")
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$check" = yes ]; then
    echo "datagate: missing Debian packages: ${missing[*]}" >&2
    echo "datagate: run \`make deps\` (as root or with sudo) to install" \
         "them, or: apt-get install ${missing[*]}" >&2
    exit 1
fi

echo "datagate: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"

# Debian starts services on install; the tests and the demo run their own
# instances on free ports, so the system ones are left alone.
exit 0
