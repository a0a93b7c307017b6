#!/usr/bin/env bash
# Install datagate's build, run and test dependencies from Debian's packages.
#   scripts/install-deps.sh          install whatever is missing
#   scripts/install-deps.sh --check  exit 1 if anything is missing
set -euo pipefail

PKGS=(
    build-essential nginx nginx-dev libssl-dev openssl libhiredis-dev
    libmaxminddb-dev libyaml-dev zlib1g-dev libpcre2-dev redis-server
    libmaxmind-db-writer-perl libio-socket-ssl-perl libtest-base-perl
    libjson-pp-perl curl clang libclang-rt-14-dev valgrind
    libnginx-mod-http-lua lua-cjson
)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing+=("$p")
done

if [ "${1:-}" = "--check" ]; then
    [ ${#missing[@]} -eq 0 ]
    exit $?
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "datagate: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"
fi

# Debian starts services on install; the tests and the demo run their own
# instances on free ports, so leave the system ones alone but quiet.
exit 0
