/*
 * datagate core: the provenance index (see docs/trace.md).
 *
 * A record's identifying values, as the consumer received them (the
 * answer's output bytes: clear, masked or pseudonymised), are each
 * fingerprinted with SipHash-2-4 under a key derived from the
 * deployment's secret, truncated to DG_TRACE_FP_LEN bytes.  An answer's
 * fingerprints are written as blocks:
 *
 *   magic   "DGT1"                 4 bytes
 *   time    unix seconds, LE       4
 *   n       fingerprints, LE       2   (1..DG_TRACE_BLOCK_MAX)
 *   clen    consumer id bytes      1
 *   consumer                       clen
 *   fp      n x 8 bytes            (SipHash-2-4 output, LE)
 *
 * The scanner (dg_trace_scan_*) reads JSON as it streams by: every
 * member whose key is one of the trace fields, at any depth, with a
 * string, number or true/false value, gives one fingerprint of the value
 * (a string decoded, a number as written).
 */

#ifndef DG_TRACE_H
#define DG_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include "dg_crypto.h"


#define DG_TRACE_MAGIC          "DGT1"
#define DG_TRACE_MAGIC_LEN      4
#define DG_TRACE_FP_LEN         8       /* bytes of a fingerprint */
#define DG_TRACE_KEY_LEN        DG_SIPHASH_KEY_LEN
#define DG_TRACE_HEAD_FIXED     11      /* magic, time, n, clen */
#define DG_TRACE_CONSUMER_MAX   255     /* clen is one byte */
#define DG_TRACE_BLOCK_MAX      256     /* fingerprints per block */
#define DG_TRACE_HEAD_MAX       (DG_TRACE_HEAD_FIXED + DG_TRACE_CONSUMER_MAX)
#define DG_TRACE_BLOCK_BYTES    (DG_TRACE_HEAD_MAX \
                                 + DG_TRACE_BLOCK_MAX * DG_TRACE_FP_LEN)
#define DG_TRACE_NAME_MAX       64      /* a trace field's key */
#define DG_TRACE_FIELDS_MAX     8       /* trace fields of a dataset */
#define DG_TRACE_VALUE_MAX      256     /* value bytes fingerprinted, at
                                           most (longer: its first bytes
                                           and its length) */
#define DG_TRACE_KEY_LABEL      "datagate-trace-v1"


/* the index key: HMAC-SHA-256(secret, DG_TRACE_KEY_LABEL), first 16 */
int dg_trace_key(const uint8_t *secret, size_t len,
    uint8_t key[DG_TRACE_KEY_LEN]);


/* a value's fingerprint (decoded bytes) */
uint64_t dg_trace_fp(const uint8_t key[DG_TRACE_KEY_LEN], const uint8_t *v,
    size_t len);


/* ---- a JSON scanner over output bytes -------------------------------- */

typedef void (*dg_trace_found_pt)(void *ctx, uint64_t fp);

typedef struct {
    const uint8_t              *key;        /* DG_TRACE_KEY_LEN */
    const char *const          *names;      /* NULL: every member and
                                               every array element that
                                               is a scalar */
    const size_t               *lens;
    size_t                      nnames;
    dg_trace_found_pt           found;
    void                       *ctx;

    unsigned                    state;
    unsigned                    esc;        /* in a string: after '\\' */
    unsigned                    want;       /* the next value is traced */
    unsigned                    over;       /* tok overflowed */
    size_t                      len;
    size_t                      keymax;     /* bytes of a key kept */
    uint8_t                     tok[DG_TRACE_VALUE_MAX + 8];
} dg_trace_scan_t;


void dg_trace_scan_init(dg_trace_scan_t *s, const uint8_t *key,
    const char *const *names, const size_t *lens, size_t nnames,
    dg_trace_found_pt found, void *ctx);
void dg_trace_scan(dg_trace_scan_t *s, const uint8_t *p, size_t n);
/* the end of the input: a number at its very end ends there */
void dg_trace_scan_end(dg_trace_scan_t *s);

/* JSON string contents (escaped) -> UTF-8, returns the length (<= len) */
size_t dg_trace_unescape(const uint8_t *in, size_t len, uint8_t *out);

/* a block's header into out (DG_TRACE_HEAD_MAX bytes), returns its
 * length; the caller appends n fingerprints with dg_trace_put_fp() */
size_t dg_trace_head(uint8_t *out, uint32_t time, unsigned n,
    const uint8_t *consumer, size_t clen);
void dg_trace_put_fp(uint8_t *out, uint64_t fp);
uint64_t dg_trace_get_fp(const uint8_t *in);

#endif /* DG_TRACE_H */
