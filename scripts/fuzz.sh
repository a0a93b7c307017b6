#!/usr/bin/env bash
#
# Build and run every libFuzzer target module/fuzz/fuzz_*.c.
#
#   scripts/fuzz.sh [SECONDS] [NAME...]        fuzz each target SECONDS (60)
#   scripts/fuzz.sh --corpus-only [NAME...]    only replay the seed corpora
#
# NAME (e.g. "mask" for fuzz_mask.c) limits the run to those targets.
#
# Targets are built with clang -fsanitize=fuzzer,address,undefined into
# build/fuzz/, linked with the core sources named on the lines
# "fuzz: sources a.c b.c" in the target (all of module/core/*.c when
# absent).  Seeds live in module/fuzz/corpus/<name>/ (name = target without
# "fuzz_"); new inputs go to build/fuzz/corpus/<name>/, crashes to
# build/fuzz/artifacts/.

set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$TOP/build/fuzz"
CC=${FUZZ_CC:-}
LIBS="-lyaml -lcrypto -lhiredis -lz -lm"

mode=fuzz
secs=60

case "${1:-}" in
    --corpus-only) mode=corpus ;;
    "") ;;
    *[!0-9]*) echo "usage: $0 [SECONDS | --corpus-only]" >&2; exit 2 ;;
    *) secs=$1 ;;
esac
[ $# -gt 0 ] && shift
only=("$@")

if [ -z "$CC" ]; then
    for c in clang clang-14 clang-15 clang-16; do
        if command -v "$c" >/dev/null 2>&1; then
            CC=$c
            break
        fi
    done
fi

if [ -z "$CC" ]; then
    echo "fuzz: clang not found" >&2
    exit 1
fi

mkdir -p "$BUILD/artifacts"

shopt -s nullglob
targets=("$TOP"/module/fuzz/fuzz_*.c)

if [ ${#targets[@]} -eq 0 ]; then
    echo "fuzz: no targets"
    exit 0
fi

fail=0

for src in "${targets[@]}"; do
    base=$(basename "$src" .c)
    name=${base#fuzz_}

    if [ ${#only[@]} -gt 0 ]; then
        want=0
        for o in "${only[@]}"; do
            [ "$o" = "$name" ] && want=1
        done
        [ $want = 1 ] || continue
    fi
    bin="$BUILD/$base"
    seeds="$TOP/module/fuzz/corpus/$name"
    work="$BUILD/corpus/$name"

    srcs=$(sed -n 's/.*fuzz: sources \(.*\)$/\1/p' "$src" | tr '\n' ' ')
    core=()
    if [ -n "$srcs" ]; then
        for s in $srcs; do
            core+=("$TOP/module/core/$s")
        done
    else
        core=("$TOP"/module/core/*.c)
    fi

    echo "== $base: build"
    "$CC" -g -O1 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I"$TOP/module/core" -I"$TOP/module/core/t" \
        -o "$bin" "$src" "${core[@]}" $LIBS

    mkdir -p "$work" "$seeds"

    if [ "$mode" = corpus ]; then
        files=("$seeds"/*)
        echo "== $base: replay ${#files[@]} seeds"
        if [ ${#files[@]} -gt 0 ]; then
            "$bin" -runs=1 "${files[@]}" >"$BUILD/$base.log" 2>&1 || {
                tail -40 "$BUILD/$base.log"
                echo "== $base: FAILED"
                fail=1
                continue
            }
        fi
        echo "== $base: ok"
        continue
    fi

    echo "== $base: fuzz ${secs}s"
    if "$bin" -max_total_time="$secs" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$BUILD/artifacts/$name-" \
        "$work" "$seeds" >"$BUILD/$base.log" 2>&1
    then
        grep -E "stat::number_of_executed_units|cov:" "$BUILD/$base.log" \
            | tail -2
        echo "== $base: ok"
    else
        tail -40 "$BUILD/$base.log"
        echo "== $base: FAILED (artifacts in $BUILD/artifacts/)"
        fail=1
    fi
done

exit $fail
