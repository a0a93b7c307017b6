#!/usr/bin/env bash
# Differential check of the masking engine against an earlier revision:
# a speed change must not change a byte of output, an error or a counter.
#
#   scripts/mask-diff.sh [REV] [ITERATIONS] [SEED]
#
# REV (default HEAD) is built from git, the working tree beside it, both as
# shared libraries loaded by scripts/mask-diff/diff_mask.c, which feeds both
# the same inputs (random documents, mutations, module/fuzz/corpus/mask) at
# random split points under every flag combination.  Exit 0: no difference.
set -euo pipefail

cd "$(dirname "$0")/.."
REV=${1:-HEAD}
ITER=${2:-400000}
SEED=${3:-1}
OUT=build/mask-diff
SRCS="dg_mask.c dg_mask_method.c"

rm -rf "$OUT" && mkdir -p "$OUT/old" "$OUT/new"
for f in $SRCS dg_mask.h dg_mask_int.h; do
    git show "$REV:module/core/$f" > "$OUT/old/$f"
    cp "module/core/$f" "$OUT/new/$f"
done

for v in old new; do
    (cd "$OUT/$v" && cc -O1 -g -shared -fPIC -I. -o "../lib$v.so" $SRCS \
        -lcrypto)
done

cc -O1 -g -Imodule/core -o "$OUT/diff_mask" scripts/mask-diff/diff_mask.c -ldl

# diff_mask ITERATIONS SEED CORPUS [FLAGS]; libraries: old first, new second
cd "$OUT"
for flags in 0 1 2 3 9; do
    echo "== flags $flags"
    ./diff_mask "$ITER" "$SEED" ../../module/fuzz/corpus/mask "$flags"
done
