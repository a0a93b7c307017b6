#!/usr/bin/env bash
# Runs the C unit tests and the fuzz corpora under AddressSanitizer and
# UndefinedBehaviorSanitizer (a separate build in build/asan/), then, with
# --valgrind, the nginx suite with every nginx under valgrind.
#
#   scripts/asan.sh               unit tests + corpora, ASan/UBSan
#   scripts/asan.sh --valgrind    also test-nginx/*.t under valgrind (slow)
set -euo pipefail

cd "$(dirname "$0")/.."

make -s BUILD="$PWD/build/asan" \
    CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined" \
    core unit
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

prove --timer build/asan/t/t_*

if [ "${1:-}" = "--valgrind" ]; then
    make -s module
    DG_TEST_VALGRIND=1 prove --timer test-nginx/*.t
fi
