#!/usr/bin/env bash
# Runs datagate's test suite with prove: the C unit tests (build/t/t_*,
# when built) and the nginx blocks in test-nginx/*.t.  `make test` builds
# everything first and then calls this.  Exit status non-zero on failure.
#
#   scripts/run-tests.sh                             everything
#   scripts/run-tests.sh test-nginx/010-access.t     only these
#
# Environment: DG_TEST_KEEP=1 keeps each test's temp dir (nginx.conf,
# error.log) for debugging; DG_TEST_JOBS=N runs N test files at once (each
# file uses its own ports and temp dirs); PROVE_FLAGS adds prove options
# (e.g. PROVE_FLAGS=-v).
set -euo pipefail

cd "$(dirname "$0")/.."

tests=()
if [ $# -gt 0 ]; then
    tests=("$@")
else
    for t in build/t/t_*; do
        [ -f "$t" ] && [ -x "$t" ] && tests+=("$t")
    done
    for t in test-nginx/*.t; do
        [ -f "$t" ] && tests+=("$t")
    done
fi

if [ ${#tests[@]} -eq 0 ]; then
    echo "run-tests: no tests found" >&2
    exit 1
fi

# the nginx tests need the dev certificates; the harness would make them,
# but make them once here so that parallel test files do not race
bash certs/make-dev-certs.sh build/certs >/dev/null

# prove runs the C unit tests as programs and the .t files with perl
# shellcheck disable=SC2086
prove --timer -j "${DG_TEST_JOBS:-1}" ${PROVE_FLAGS:-} "${tests[@]}"
