#!/usr/bin/env bash
#
# Build and run the masking-engine benchmark (scripts/bench-mask-engine.c):
# MB/s of the streaming masker on 1 KB / 100 KB / 10 MB person-record
# documents beside memcpy of the same bytes in the same process.
#
#   scripts/bench-mask-engine.sh [SECONDS-PER-FIGURE]
#   BENCH_NOSIMD=1 scripts/bench-mask-engine.sh      the scalar code only
#                                                    (dg_mask_conf_t.nosimd)

set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT="$TOP/build/bench"
mkdir -p "$OUT"

${CC:-cc} -O2 -g -std=gnu11 -Wall -Wextra -I"$TOP/module/core" \
    -o "$OUT/bench-mask-engine" "$TOP/scripts/bench-mask-engine.c" \
    "$TOP"/module/core/dg_mask*.c -lcrypto

exec "$OUT/bench-mask-engine" "$@"
