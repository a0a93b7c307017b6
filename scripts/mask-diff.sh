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
# MASKDIFF_NOSIMD=new (old, both) runs that build's scalar code only, so
# that the scalar paths are compared with the vector ones.
set -euo pipefail

cd "$(dirname "$0")/.."
REV=${1:-HEAD}
ITER=${2:-400000}
SEED=${3:-1}
OUT=build/mask-diff

# the engine is module/core/dg_mask*.[ch], however REV divided it
rm -rf "$OUT" && mkdir -p "$OUT/old" "$OUT/new"
for f in $(git ls-tree --name-only "$REV" module/core/ \
           | sed -n 's|^module/core/\(dg_mask[a-z_]*\.[ch]\)$|\1|p'); do
    git show "$REV:module/core/$f" > "$OUT/old/$f"
done
cp module/core/dg_mask*.[ch] "$OUT/new/"

# both libraries read the actions the harness writes with the working
# tree's header: an engine from before dg_mask_spec_t had its row byte
# gets it (it never reads it)
if ! grep -q 'uint8_t *row;' "$OUT/old/dg_mask.h"; then
    perl -0pi -e 's/(\n    uint8_t +b;\n)(\} dg_mask_spec_t;)/$1    uint8_t                     row;\n$2/' \
        "$OUT/old/dg_mask.h"
fi

for v in old new; do
    (cd "$OUT/$v" && cc -O1 -g -shared -fPIC -I. -o "../lib$v.so" \
        dg_mask*.c -lcrypto)
done

cc -O1 -g -Imodule/core -o "$OUT/diff_mask" scripts/mask-diff/diff_mask.c -ldl

# diff_mask ITERATIONS SEED CORPUS [FLAGS]; libraries: old first, new second
cd "$OUT"
for flags in 0 1 2 3 9; do
    echo "== flags $flags"
    ./diff_mask "$ITER" "$SEED" ../../module/fuzz/corpus/mask "$flags"
done
