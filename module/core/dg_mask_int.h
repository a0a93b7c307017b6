/*
 * datagate core: private parts of the JSON masker shared by dg_mask.c
 * (stream, rules) and dg_mask_method.c (methods, detect validators).
 */

#ifndef DG_MASK_INT_H
#define DG_MASK_INT_H

#include <string.h>
#include "dg_mask.h"

/* x86: the AVX2 paths of both files (used when the CPU has AVX2) */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DG_MASK_X86  1
#endif


/*
 * Output sink.  With emit set it is a coalescing write buffer that hands
 * full buffers (and long runs, by reference) to emit; with lend set, buf
 * is memory lent by the owner (cap 0: none lent yet), handed back full and
 * exchanged for more (dg_mask_out_lend); with neither it is a fixed buffer
 * (dg_mask_value) and overflowing it is DG_MASK_E_TOOBIG.  Nothing may
 * keep a pointer into buf across a flush.
 */
typedef struct {
    uint8_t                    *buf;
    size_t                      len;
    size_t                      cap;
    dg_mask_emit_pt             emit;
    dg_mask_lend_pt             lend;
    void                       *ctx;
    uint64_t                   *bytes_out;
} dg_mask_out_t;


int dg_mask_out_flush(dg_mask_out_t *o);
int dg_mask_out_lend(dg_mask_out_t *o, size_t need);
int dg_mask_out_room(dg_mask_out_t *o, size_t need);
int dg_mask_out_put_slow(dg_mask_out_t *o, const uint8_t *p, size_t n);


static inline int
dg_mask_out_put(dg_mask_out_t *o, const uint8_t *p, size_t n)
{
    if (n <= o->cap - o->len) {
        memcpy(o->buf + o->len, p, n);
        o->len += n;
        return 0;
    }

    return dg_mask_out_put_slow(o, p, n);
}


/*
 * Apply one method to a decoded UTF-8 value.  quoted: write a JSON token
 * ("..." or null); otherwise write string contents only (detect
 * replacement inside a string; null/drop become ***).
 */
int dg_mask_apply(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, const uint8_t *key, size_t keylen,
    int quoted);

/*
 * dg_mask_apply(o, spec, v, len, key, keylen, 1) for a value whose input
 * may be read up to end (end >= v + len: a stream's span, in which the
 * closing quote and the byte after the value lie), so that it is loaded
 * in whole vector blocks, without copying its tail.  Same output, errors
 * and counters.  dg_mask_span_fn[method]: the common methods on values
 * without escapes; returns 0, an error, or 1: not taken (NULL: none).
 */
typedef int (*dg_mask_span_pt)(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, const uint8_t *end);

extern dg_mask_span_pt  dg_mask_span_fn[DG_MASK_METHOD_MAX];


static inline int
dg_mask_apply_span(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, const uint8_t *end, const uint8_t *key,
    size_t keylen)
{
    dg_mask_span_pt  fn;
    int              rc;

    if (spec->method < DG_MASK_METHOD_MAX) {
        fn = dg_mask_span_fn[spec->method];
        if (fn != NULL) {
            rc = fn(o, spec, v, len, end);
            if (rc != 1) {
                return rc;
            }
        }
    }

    return dg_mask_apply(o, spec, v, len, key, keylen, 1);
}

/*
 * Tests: scan a value as the masking methods do, with the scalar scanner
 * (simd 0) or the one the CPU allows (simd 1, whatever the length).
 * Returns 0 and the code points, byte classes (1: a byte to escape,
 * 2: non-ASCII) and, when the scanner computes it, the bitmap of bytes
 * 0-63 that start a code point (0 otherwise); -1 for invalid UTF-8.
 */
int dg_mask_vscan_test(const uint8_t *v, size_t len, int simd, size_t *n,
    unsigned *cls, uint64_t *lead);

/* an 18-character run of [0-9A-Z] (digits and capitals): DG_DETECT_*
 * kind it validates as, or -1 */
int dg_mask_detect_kind(const uint8_t *run, size_t len);

/* a run of digits, or 17 digits and X/x, as one group (len >= 1): kind or
 * -1 (no USCC); a mobile after 86 or 0086 in the run counts */
int dg_mask_detect_digits(const uint8_t *run, size_t len);

/*
 * Detect candidates written in groups of digits (one separator between
 * two groups).  dg_mask_detect_shape(): the kinds (bit per DG_DETECT_*)
 * groups of these lengths (g[0..ng), ng <= DG_DETECT_GROUPS) may hold, 0
 * when none.  dg_mask_detect_groups(): the kind the n characters d (the
 * groups' digits without separators, the last one X or x for an ID)
 * validate as, or -1; *skip: leading digits that are no part of the hit
 * (the 86 or 0086 before a mobile).
 */
#define DG_DETECT_GROUPS    5

unsigned dg_mask_detect_shape(const uint8_t *g, unsigned ng);
int dg_mask_detect_groups(const uint8_t *d, size_t n, const uint8_t *g,
    unsigned ng, unsigned *skip);

/* default method for a detect kind whose configured method is CLEAR */
void dg_mask_detect_default(unsigned kind, dg_mask_spec_t *spec);

#endif /* DG_MASK_INT_H */
