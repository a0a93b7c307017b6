/*
 * datagate core: private parts of the JSON masker, shared by its files:
 * dg_mask.c (state machine, feed API), dg_mask_members.c (fast member
 * loop), dg_mask_rules.c (rule compiler), dg_mask_detect.c (safety net in
 * streams), dg_mask_kinds.c (the detect kinds), dg_mask_out.c (output
 * sink), dg_mask_method.c (the methods), dg_mask_text.c (safety net in
 * headers), dg_mask_rec.c (records: counts, row scoping, allowance) and
 * dg_mask_tables.c (constant tables).  Their byte and vector
 * helpers are in dg_mask_scan.h.
 */

#ifndef DG_MASK_INT_H
#define DG_MASK_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "dg_mask.h"

/* x86: the vector code of the masker's files (run as the CPU allows,
 * DG_MASK_ISA_*); defined here only */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DG_MASK_X86  1
#endif


/* internal to the core: not exported from a shared object */
#define DG_MASK_LOCAL  __attribute__((visibility("hidden")))


/* 32 of the character a masking method hides with */
#define DG_MASK_STARS  "********************************"


/*
 * The vector code a stream or a call may run (isa in dg_mask_t,
 * dg_mask_out_t, dg_mask_blk_t): what the CPU offers
 * (dg_mask_cpu_isa() in dg_mask_scan.h), or none with conf->nosimd.
 */
#define DG_MASK_ISA_SSE2    0x01    /* 16-byte string scans (x86) */
#define DG_MASK_ISA_AVX2    0x02    /* AVX2 with POPCNT and BMI: the member
                                       loop's blocks, the detect tests,
                                       the value scanner, the methods on a
                                       span (dg_mask_apply_span()) */


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
    unsigned                    isa;        /* DG_MASK_ISA_* */
    int                         full;       /* a fixed buffer overflowing:
                                               this error, 0: TOOBIG */
} dg_mask_out_t;


int dg_mask_out_flush(dg_mask_out_t *o);
int dg_mask_out_lend(dg_mask_out_t *o, size_t need);
int dg_mask_out_room(dg_mask_out_t *o, size_t need);
int dg_mask_out_put_slow(dg_mask_out_t *o, const uint8_t *p, size_t n);

/* n '*'; string contents with JSON escaping of '"', '\\', controls
 * and 0x7f */
int dg_mask_put_stars(dg_mask_out_t *o, size_t n);
int dg_mask_put_escaped(dg_mask_out_t *o, const uint8_t *p, size_t n);


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
 * A value whose input may be read up to end (end >= v + len: a stream's
 * span, in which the closing quote and the byte after the value lie),
 * masked as dg_mask_apply(o, spec, v, len, key, keylen, 1) does, loaded in
 * whole vector blocks, without copying its tail: same output, errors and
 * counters.  The span function of a method (AVX2 code) takes the common
 * values, without escapes; it returns 0, an error, or 1: not taken.
 */
typedef int (*dg_mask_span_pt)(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, const uint8_t *end);


/*
 * The masking methods, one row each (dg_mask_methods[] in
 * dg_mask_method.c): the one place where a method's name, parameters and
 * cut are written.  The spec parser and writer, the general and the fast
 * writers of the methods and their span functions all read it.
 */
#define DG_MASK_P_NONE      0       /* "name" */
#define DG_MASK_P_A         1       /* "name" or "name(a)": a replaces the
                                       row's a (0: the row's) */
#define DG_MASK_P_AB        2       /* "name(a,b)", both required */

typedef struct {
    const char                 *name;       /* as the policy writes it */
    uint8_t                     params;     /* DG_MASK_P_* */
    uint8_t                     keep;       /* keep-like: a prefix and a
                                               suffix kept, stars between */
    uint8_t                     a;          /* kept prefix, characters */
    uint8_t                     b;          /* kept suffix, characters */
    uint8_t                     stars;      /* '*' between them; 0: one per
                                               character hidden */
    dg_mask_span_pt             span;       /* on a span (AVX2), or NULL */
} dg_mask_method_t;

extern DG_MASK_LOCAL const dg_mask_method_t
    dg_mask_methods[DG_MASK_METHOD_MAX];


/* the prefix and suffix a keep-like spec keeps: its row's, or its own */
static inline __attribute__((always_inline)) void
dg_mask_cut(const dg_mask_spec_t *spec, size_t *a, size_t *b)
{
    const dg_mask_method_t  *mt;

    mt = &dg_mask_methods[spec->method];

    *a = (mt->params == DG_MASK_P_AB
          || (mt->params == DG_MASK_P_A && spec->a != 0)) ? spec->a : mt->a;
    *b = (mt->params == DG_MASK_P_AB) ? spec->b : mt->b;
}


/* avx2: the caller runs AVX2 code (a constant in the member loop's copy
 * for AVX2, see DG_MASK_ISA_AVX2) */
static inline int
dg_mask_apply_span(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, const uint8_t *end, const uint8_t *key,
    size_t keylen, const int avx2)
{
    dg_mask_span_pt  fn;
    int              rc;

    if (avx2 && spec->method < DG_MASK_METHOD_MAX) {
        fn = dg_mask_methods[spec->method].span;
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

/*
 * The method a hit of kind is masked with: conf (NULL: none) when it is
 * one the masker can apply (not clear, a method that exists, hash only
 * with a key), else the kind's (dg_mask_detect_kinds[kind].mask).  The
 * stream, dg_mask_detect_text() and dg_mask_text() all choose so.
 */
void dg_mask_detect_method(unsigned kind, const dg_mask_spec_t *conf,
    const uint8_t *hash_key, size_t hash_key_len, dg_mask_spec_t *spec);



#define DG_MASK_SLACK       4096    /* separators around a held key */
#define DG_MASK_ROWS_RAW    (6 * DG_MASK_ROWS_VALUE + 16)
                                    /* raw bytes of a captured value: a
                                       value compared whole, each byte a
                                       \uXXXX escape, and its quotes */
#define DG_MASK_WBUF        2048    /* coalescing output buffer */
#define DG_MASK_DEF_VALUE   65536
#define DG_MASK_DEF_DEPTH   64
#define DG_MASK_MAX_DEPTH   4096


/*
 * detect (see dg_det_char()).  The window holds at most the longest
 * candidate from the start of the earliest live one (a pending hit is
 * written once the window reaches past it) plus the character read:
 * DG_DET_SPAN + 2 < DG_DET_WIN.
 */
#define DG_DET_WIN          32      /* window, characters */
#define DG_DET_WINRAW       (6 * DG_DET_WIN + 8)    /* \uXXXX is 6 */
#define DG_DET_SPAN         23      /* the longest candidate, characters:
                                       19 digits in fours */
#define DG_DET_DIGITS       19      /* the longest group of a candidate */
#define DG_DET_URUN         18      /* the [0-9A-Z] run of a USCC */
#define DG_DET_SHORT        11      /* the shortest candidate, a mobile */
#define DG_DET_NUMBER       31      /* the longest number that may be a
                                       hit: 19 digits, a fraction of 0s */

/* the lengths of the kinds, characters (dg_mask_kinds.c) */
#define DG_ID_LEN           18
#define DG_MOBILE_LEN       11
#define DG_CARD_MIN         16
#define DG_CARD_MAX         19

/*
 * Bit n: n digits alone may be a candidate (dg_mask_detect_shape() of
 * one group: a mobile, also after 86 or 0086, a resident ID, a bank
 * card); DG_DET_ONEX: n digits and an X may be one (a resident ID).
 */
#define DG_DET_ONE                                                           \
    ((1u << DG_MOBILE_LEN) | (1u << (DG_MOBILE_LEN + 2))                      \
     | (1u << (DG_MOBILE_LEN + 4)) | (1u << DG_ID_LEN)                        \
     | (((1u << (DG_CARD_MAX + 1)) - 1) & ~((1u << DG_CARD_MIN) - 1)))
#define DG_DET_ONEX         (1u << (DG_ID_LEN - 1))
#define DG_DET_RES          256     /* a method's result on a hit */

/* window character codes besides '0'-'9', 'A'-'Z' and 'x' */
#define DG_DET_SEP          0x01    /* ' ', '-', U+3000, U+FF0D */
#define DG_DET_OTHER        0x80

#define DG_DET_FW_ZERO      0xff10  /* full-width digits U+FF10-FF19 */
#define DG_DET_FW_HYPHEN    0xff0d
#define DG_DET_IDEO_SPACE   0x3000


#define DG_FR_EMITTED   0x01    /* a member of this object was emitted */
#define DG_FR_LISTED    0x02    /* inside a value listed as clear */
#define DG_FR_RECORDS   0x04    /* its elements are the records */
#define DG_FR_RCAND     0x08    /* auto: its first element says whether
                                   its elements are the records */
#define DG_FR_RONE      0x10    /* its records are decided one by one
                                   (rows, allowance): no "},{" shortcut */


typedef struct {
    int32_t                     node;       /* path trie node, -1 none */
    uint8_t                     type;       /* '{' or '[' */
    uint8_t                     flags;
    uint8_t                     rstep;      /* rows node of this object
                                               (1: the record), 0: none */
} dg_mask_frame_t;


typedef struct {
    uint32_t                    off;        /* key in rules->str */
    uint32_t                    len;
    int32_t                     child;      /* first child by key */
    int32_t                     next;       /* next sibling */
    int32_t                     arr;        /* "[]" child */
    int32_t                     field;      /* terminal: field index */
} dg_mask_node_t;


/* what a key selects besides a field index */
#define DG_MASK_F_NONE      -1      /* nothing (an empty key slot) */
#define DG_MASK_F_WALK      -2      /* a container: kept and walked in
                                       allow-list mode */

typedef struct {
    uint32_t                    hash;
    uint32_t                    off;
    uint32_t                    len;
    int32_t                     field;      /* DG_MASK_F_NONE: empty */
} dg_mask_any_t;


/* where the records are (dg_mask_rules_build()) */
#define DG_MASK_REC_AUTO    DG_MASK_RECORDS_FOUND
#define DG_MASK_REC_ROOT    DG_MASK_RECORDS_ONE     /* "$" */
#define DG_MASK_REC_PATH    DG_MASK_RECORDS_PATH    /* "[]", "data[]" */

struct dg_mask_rules_s {
    size_t                      nfields;
    unsigned                    flags;
    unsigned                    isa;        /* the CPU's DG_MASK_ISA_* */
    unsigned                    rec_mode;   /* DG_MASK_REC_* */
    unsigned                    rec_top;    /* the depth of the records
                                               array once pushed: PATH
                                               nsteps + 1, AUTO 2, ROOT 0 */
    int32_t                     rec_path[DG_MASK_REC_STEPS + 1];
                                            /* PATH: trie node of the
                                               value at depth i ([0] the
                                               root); [rec_top - 1] the
                                               records array's */
    dg_mask_node_t             *nodes;
    size_t                      nnodes;
    dg_mask_any_t              *any;
    size_t                      anymask;
    uint64_t                    anylens;    /* bit per key length < 63 */
    uint8_t                     kslot[2048]; /* by key digest: see
                                              * DG_KS_* */
    uint8_t                    *str;
    size_t                      strlen;
    uint64_t                    serial;     /* unique in the process */
};


/*
 * Key memo of the AVX2 member loop: the '"' key '"' ':' tokens of plain
 * keys it looked up, in 64 sets of two by their first 4 bytes (two ways,
 * so the two keys of a record that share a set do not evict each other
 * on every record; the next one stored in a set replaces its older
 * entry).  Records of an array repeat their keys, so after the first one
 * a member's key is recognised by one 32-byte compare, without finding its
 * end or looking it up again.  An entry holds the result of
 * dg_mask_lookup() under the frame node it was looked up under, and is
 * used only under that node.  next links an entry to the one of the key
 * that followed it last time: tried first, it spares the set lookup and
 * shortens the chain from one member to the next.  A stale link only
 * costs a failed compare.
 */
#define DG_MASK_MEMO_BITS   6
#define DG_MASK_MEMO        (1 << DG_MASK_MEMO_BITS)    /* sets */
#define DG_MASK_MEMO_TOK    32

typedef struct dg_mask_memo_s {
    uint8_t                     tok[DG_MASK_MEMO_TOK];
    uint32_t                    mask;       /* bit per token byte; 0: none */
    int32_t                     node;
    int32_t                     f;
    int32_t                     kn;
    uint32_t                    len;        /* token bytes, < 32 */
    struct dg_mask_memo_s      *next;       /* the key that followed */
} dg_mask_memo_t;

/* by the token's first 4 bytes: '"' and 3 of the key, or "k": whole */
#define dg_mask_memo_slot(w4)                                                \
    (((w4) * 0x9e3779b1u) >> (32 - DG_MASK_MEMO_BITS))


/* the safety net's state in a string or text (see dg_det_char()) */
typedef struct {
    dg_mask_out_t              *out;
    const uint8_t              *os;         /* pending untouched run */
    const dg_mask_spec_t       *detect;     /* [DG_DETECT_MAX] */
    uint64_t                   *hits;       /* [DG_DETECT_MAX] */
    const uint8_t              *hash_key;
    size_t                      hash_key_len;
    const uint8_t              *ws;         /* window: raw start in span,
                                               or NULL: raw bytes in wraw */
    uint32_t                    ecp;        /* escape being decoded */
    uint8_t                     plain;      /* a text, not a JSON string */
    uint8_t                     esc;        /* 0, 1 after '\\', 2-5 hex */
    uint8_t                     eu;
    uint8_t                     mb;         /* a UTF-8 character cut by the
                                               span end is in raw */
    uint8_t                     rawlen;
    uint8_t                     wn;         /* characters in the window */
    uint8_t                     u0;         /* [0-9A-Z] run: start, */
    uint8_t                     ulen;       /* length (0: none or long) */
    uint8_t                     ulong;
    uint8_t                     gin;        /* 1: in a group, 2: after a
                                               separator that follows one */
    uint8_t                     glong;      /* the group is too long */
    uint8_t                     ng;         /* groups of the chain kept */
    uint8_t                     gs[DG_DETECT_GROUPS];   /* their starts */
    uint8_t                     gl[DG_DETECT_GROUPS];   /* and digits */
    int8_t                      hkind;      /* pending hit: kind or -1, */
    uint8_t                     h0;         /* start, */
    uint8_t                     he;         /* end */
    uint8_t                     raw[8];     /* escape or cut character */
    uint8_t                     wc[DG_DET_WIN];
    uint16_t                    wr[DG_DET_WIN + 1]; /* raw offsets */
    uint8_t                     wraw[DG_DET_WINRAW];
} dg_mask_det_t;


/* the member loop's block of the span (see dg_mask_blk_fill_avx2) */
typedef struct {
    const uint8_t              *base;       /* 64 bytes, or NULL: none */
    const uint8_t              *lo;         /* the span start */
    uint64_t                    sp;         /* bit i: base[i] ends a run */
    unsigned                    isa;        /* the stream's DG_MASK_ISA_* */
} dg_mask_blk_t;


struct dg_mask_s {
    const dg_mask_rules_t      *rules;
    const dg_mask_spec_t       *actions;
    dg_mask_spec_t              detect[DG_DETECT_MAX];
    const uint8_t              *hash_key;
    size_t                      hash_key_len;
    size_t                      max_value;
    size_t                      holdmax;
    unsigned                    max_depth;
    unsigned                    flags;
    unsigned                    isa;        /* DG_MASK_ISA_* it may run */

    dg_mask_stats_t             stats;
    dg_mask_out_t               out;

    dg_mask_frame_t            *frames;
    uint8_t                    *hbuf;       /* held member / value */
    uint8_t                    *kbuf;       /* decoded key */

    const uint8_t              *os;         /* pending untouched run */
    const uint8_t              *hs;         /* held member prefix */
    dg_mask_blk_t               blk;        /* member loop's block */
    dg_mask_memo_t             *memo_last;  /* entry of the last member */
    uint64_t                    memo_serial; /* rules the memo is of */
    uint8_t                     memo_old[DG_MASK_MEMO]; /* way to replace */

    size_t                      hlen;       /* held bytes in hbuf */
    size_t                      key_off;    /* key offset in the hold */
    size_t                      vlen;       /* decoded value in hbuf */
    unsigned                    depth;
    unsigned                    skip_depth;
    unsigned                    mask_depth;
    int                         state;
    int                         rc;
    int32_t                     kfield;     /* matched field of the key */
    int32_t                     knode;      /* trie node of the key */
    int32_t                     vnode;      /* trie node of the value */
    uint32_t                    ecp;        /* escape being decoded */
    uint32_t                    hi;         /* pending high surrogate */
    dg_mask_spec_t              mspec;      /* method while masking */

    uint8_t                     done;
    uint8_t                     emitting;
    uint8_t                     hold;     /* a member prefix is held */
    uint8_t                     hcomma;   /* the hold starts with ',' */
    uint8_t                     member;   /* next value is a member's */
    uint8_t                     skip;     /* dropping a value */
    uint8_t                     mask;     /* masking a value */
    uint8_t                     in_key;   /* S_STR is a key */
    uint8_t                     kesc;     /* held key has escapes */
    uint8_t                     eu;       /* escape is \u */
    uint8_t                     vlisted;

    uint8_t                     esc;        /* 0, 1 after '\', 2-5 hex */
    uint8_t                     num;
    uint8_t                     lit;
    uint8_t                     litpos;

    /* detect on a number: its digits while the span ends inside it */
    uint8_t                     ndet;       /* the number may be a hit */
    uint8_t                     nheld;      /* digits in nbuf */
    const uint8_t              *nfrom;      /* its digits of this span not
                                               in nbuf start here */
    uint8_t                     nbuf[DG_DET_NUMBER + 1];

    /* detect on a held key: its contents in the hold */
    uint8_t                     kdet;       /* scan the key when written */
    size_t                      key_end;    /* its closing quote */

    dg_mask_det_t               det;        /* detect in a string */

    /* records (dg_mask_rec.c) */
    const dg_mask_rows_t       *rows;       /* row scoping, or NULL */
    unsigned                    rec_top;    /* a push at depth <= it may
                                               be the records array */
    unsigned                    shape_top;  /* values at depth < it are
                                               on the records path:
                                               checked (records one by
                                               one) */
    unsigned                    rec_depth;  /* the held record's depth */
    unsigned                    cap_depth;  /* the captured member's */
    uint64_t                    allow;      /* records that may be sent */
    size_t                      rec_vstart; /* the record's value in the
                                               hold (after a comma) */
    size_t                      taken;      /* span bytes taken (pause) */
    const uint8_t              *pause;      /* the span ends here */
    const uint8_t              *cap_from;   /* captured value: its bytes
                                               of this span start here */
    uint32_t                    rseen;      /* conditions met in the */
    uint32_t                    rfail;      /* record, and failed */
    uint8_t                     rec_mode;   /* DG_MASK_REC_* */
    uint8_t                     rec_one;    /* records one by one */
    uint8_t                     rec_found;  /* auto: the array is known */
    uint8_t                     rec_open;   /* a record is held */
    uint8_t                     rec_emitted; /* its array had a record
                                               sent before it */
    uint8_t                     rowsx;      /* done: has a record or a
                                               capture to end */
    uint8_t                     allow_last; /* no allowance will come */
    uint8_t                     trunc;      /* the records left are cut */
    uint8_t                     vrstep;     /* rows node of the object
                                               pushed next */
    uint8_t                     root;       /* the document's first byte */
    uint8_t                     cap_on;     /* a member is captured */
    uint8_t                     cap_ci;     /* for this condition */
    uint8_t                     craw_over;  /* more than craw holds */
    uint16_t                    craw_len;
    dg_mask_out_t               rsave;      /* the owner's output while a
                                               record is held */
    uint8_t                    *rbuf;       /* the record held (max_value
                                               bytes, with rows) */

    uint8_t                     wbuf[DG_MASK_WBUF];

    /* the captured value's first bytes (escapes of the longest value
     * compared, and its quotes) */
    uint8_t                     craw[DG_MASK_ROWS_RAW];

    /* not cleared whole by dg_mask_init(): 8 KB, a mask each is enough */
    dg_mask_memo_t              memo[DG_MASK_MEMO][2];
};


/*
 * An 11-bit digest of a key (len >= 1) indexes rules->kslot, which tells
 * what the selectors have with that digest: nothing (most keys, rejected
 * there), only keys of the path trie, or one key-anywhere entry (its
 * index + 1: compared directly, no hash), or more than one.
 */
#define DG_KS_NONE      0
#define DG_KS_MAXANY    253     /* 1..253: any[value - 1] */
#define DG_KS_TRIE      254
#define DG_KS_MANY      255


/* a member prefix parsed in one go */
typedef struct {
    const uint8_t              *k;          /* key */
    const uint8_t              *e;          /* its closing quote */
    const uint8_t              *q;          /* first byte of the value */
    int32_t                     f;          /* field selected, or -1 */
    int32_t                     kn;         /* trie node of the key */
    unsigned                    kd;         /* detect must scan the key */
} dg_mask_pre_t;


/* rules */

static inline uint32_t
dg_mask_hash(const uint8_t *p, size_t n)
{
    uint64_t  a, b;
    uint32_t  x, y;

    /* two overlapping loads cover keys up to 16 bytes, no overread */
    if (n >= 8) {
        memcpy(&a, p, 8);
        memcpy(&b, p + n - 8, 8);
        if (n > 16) {
            size_t  i;

            for (i = 8; i + 8 < n; i += 8) {
                uint64_t  c;

                memcpy(&c, p + i, 8);
                a = (a ^ c) * 0x9e3779b97f4a7c15ull;
            }
        }

    } else if (n >= 4) {
        memcpy(&x, p, 4);
        memcpy(&y, p + n - 4, 4);
        a = x;
        b = y;

    } else {
        a = n ? p[0] | (p[n / 2] << 8) | (p[n - 1] << 16) : 0;
        b = 0;
    }

    a = (a ^ (b * 0xc2b2ae3d27d4eb4full) ^ n) * 0x9e3779b97f4a7c15ull;
    return (uint32_t) (a >> 32);
}


static inline int
dg_mask_keyeq(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint64_t  x, y, u, v;
    uint32_t  w, z;

    if (n >= 8 && n <= 16) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        memcpy(&u, a + n - 8, 8);
        memcpy(&v, b + n - 8, 8);
        return ((x ^ y) | (u ^ v)) == 0;
    }

    if (n >= 4 && n < 8) {
        memcpy(&w, a, 4);
        memcpy(&z, b, 4);
        if (w != z) {
            return 0;
        }
        memcpy(&w, a + n - 4, 4);
        memcpy(&z, b + n - 4, 4);
        return w == z;
    }

    return memcmp(a, b, n) == 0;
}


static inline int32_t
dg_mask_node_child(const dg_mask_rules_t *r, int32_t node, const uint8_t *k,
    size_t len)
{
    int32_t  c;

    for (c = r->nodes[node].child; c >= 0; c = r->nodes[c].next) {
        if (r->nodes[c].len == len
            && dg_mask_keyeq(r->str + r->nodes[c].off, k, len))
        {
            return c;
        }
    }

    return -1;
}


static inline uint32_t
dg_mask_kfilt(const uint8_t *k, size_t len)
{
    return ((k[0] | (uint32_t) k[len - 1] << 8 | (uint32_t) len << 16)
            * 0x9e3779b1u) >> 21;
}


static inline __attribute__((always_inline)) int32_t
dg_mask_any_find(const dg_mask_rules_t *r, const uint8_t *k, size_t len)
{
    const dg_mask_any_t  *a;
    uint32_t              h;
    size_t                i;

    if (r->any == NULL
        || !(r->anylens & ((uint64_t) 1 << (len < 63 ? len : 63))))
    {
        return -1;
    }

    h = dg_mask_hash(k, len);

    for (i = h & r->anymask; ; i = (i + 1) & r->anymask) {
        a = &r->any[i];
        if (a->field == DG_MASK_F_NONE) {
            return -1;
        }
        if (a->hash == h && a->len == len
            && dg_mask_keyeq(r->str + a->off, k, len))
        {
            return a->field;
        }
    }
}


/* the field a decoded key selects (or -1) under trie node 'node'; its
 * child node (or -1) in *kn */
static inline __attribute__((always_inline)) int32_t
dg_mask_lookup(const dg_mask_rules_t *r, int32_t node, const uint8_t *k,
    size_t len, int32_t *kn)
{
    const dg_mask_any_t  *a;
    int32_t               c, f;
    unsigned              ks;

    c = -1;
    f = -1;

    if (len == 0) {
        *kn = -1;
        return -1;
    }

    ks = r->kslot[dg_mask_kfilt(k, len)];
    if (ks == DG_KS_NONE) {
        /* no selector has this key */
        *kn = -1;
        return -1;
    }

    if (node >= 0 && r->nodes[node].child >= 0) {
        c = dg_mask_node_child(r, node, k, len);
        if (c >= 0) {
            f = r->nodes[c].field;
        }
    }

    if (f < 0 && ks != DG_KS_TRIE) {
        if (ks == DG_KS_MANY) {
            f = dg_mask_any_find(r, k, len);

        } else {
            /* the one key-anywhere entry with this digest */
            a = &r->any[ks - 1];
            if (a->len == len && dg_mask_keyeq(r->str + a->off, k, len)) {
                f = a->field;
            }
        }
    }

    *kn = c;
    return f;
}


/* output helpers */

static inline int
dg_mask_ref(dg_mask_t *m, const uint8_t *p, size_t n)
{
    if (n == 0) {
        return 0;
    }

    return dg_mask_out_put(&m->out, p, n);
}


/* emit the pending untouched run up to p and stop emitting */
static inline int
dg_mask_flush_os(dg_mask_t *m, const uint8_t *p)
{
    const uint8_t  *os;

    os = m->os;
    m->os = NULL;

    if (os == NULL || p <= os) {
        return 0;
    }

    return dg_mask_out_put(&m->out, os, p - os);
}


#if (DG_MASK_X86)

/*
 * dg_mask_flush_os() for the member loop, where the run before a masked
 * value is short (the keys and values between two masked ones): up to
 * 128 bytes, with 128 readable from its start in the span and 128 of
 * room, move in four 32-byte loads and stores instead of a library call
 * whose branches depend on the length (the bytes written after the run
 * are not counted: the next write goes over them).
 */
static inline __attribute__((target("avx2"))) int
dg_mask_flush_os_avx2(dg_mask_t *m, const uint8_t *p, const uint8_t *end)
{
    const uint8_t  *os;
    uint8_t        *d;
    size_t          n;
    __m256i         a, b, c, e;

    os = m->os;

    if (os == NULL || p <= os || p - os > 128 || end - os < 128
        || m->out.cap - m->out.len < 128)
    {
        return dg_mask_flush_os(m, p);
    }

    n = p - os;
    m->os = NULL;

    d = m->out.buf + m->out.len;
    a = _mm256_loadu_si256((const __m256i *) os);
    b = _mm256_loadu_si256((const __m256i *) (os + 32));
    c = _mm256_loadu_si256((const __m256i *) (os + 64));
    e = _mm256_loadu_si256((const __m256i *) (os + 96));
    _mm256_storeu_si256((__m256i *) d, a);
    _mm256_storeu_si256((__m256i *) (d + 32), b);
    _mm256_storeu_si256((__m256i *) (d + 64), c);
    _mm256_storeu_si256((__m256i *) (d + 96), e);
    m->out.len += n;

    return 0;
}

#endif


/* the number of held bytes may grow by k at p */
static inline int
dg_mask_hold_room(dg_mask_t *m, const uint8_t *p, size_t k)
{
    if (m->hlen + (size_t) (p - m->hs) + k > m->holdmax) {
        return DG_MASK_E_TOOBIG;
    }

    return 0;
}


/* dg_mask_rec.c */
int dg_mask_rec_elem(dg_mask_t *m, dg_mask_frame_t *fr, uint8_t c,
    const uint8_t *p, int walk);
int dg_mask_rec_value(dg_mask_t *m, const uint8_t *p);
int dg_mask_rec_next(dg_mask_t *m, const uint8_t *q);
void dg_mask_rows_take(dg_mask_t *m, const dg_mask_frame_t *fr,
    const uint8_t *k, size_t klen, const uint8_t *q, const uint8_t *v);
void dg_mask_rec_push(dg_mask_t *m, dg_mask_frame_t *fr);
int dg_mask_rec_shape(dg_mask_t *m, uint8_t c);
int dg_mask_rec_root(dg_mask_t *m, uint8_t c, const uint8_t *p);
int dg_mask_rec_comma(dg_mask_t *m, const uint8_t *p);
int dg_mask_rec_done(dg_mask_t *m, const uint8_t *p);
int dg_mask_rows_member(dg_mask_t *m, uint8_t c, const uint8_t *p);
int dg_mask_rec_span_end(dg_mask_t *m, const uint8_t *end);
void dg_mask_rec_setup(dg_mask_t *m, const dg_mask_conf_t *conf);
size_t dg_mask_rec_size(const dg_mask_conf_t *conf, size_t max_value);


/* a value of the innermost array starts: its path node and listing */
static inline __attribute__((always_inline)) void
dg_mask_elem_node(dg_mask_t *m, dg_mask_frame_t *fr)
{
    m->vnode = fr->node >= 0 ? m->rules->nodes[fr->node].arr : -1;
    m->vlisted = (fr->flags & DG_FR_LISTED) ? 1 : 0;
}


/* the same, and the element c at p of a records array counted, held or
 * cut (dg_mask_rec_elem()) */
static inline __attribute__((always_inline)) int
dg_mask_elem_start(dg_mask_t *m, uint8_t c, const uint8_t *p)
{
    dg_mask_frame_t  *fr;

    fr = &m->frames[m->depth - 1];
    dg_mask_elem_node(m, fr);

    if (fr->flags & (DG_FR_RECORDS | DG_FR_RCAND | DG_FR_RONE)) {
        return dg_mask_rec_elem(m, fr, c, p, 0);
    }

    return 0;
}


/* the value that starts is the container c (the caller checked the depth
 * limit) */
static inline __attribute__((always_inline)) void
dg_mask_push(dg_mask_t *m, uint8_t c)
{
    dg_mask_frame_t  *fr;

    fr = &m->frames[m->depth++];
    fr->type = c;

    if (m->skip || m->mask) {
        fr->node = -1;
        fr->flags = 0;
        fr->rstep = 0;

    } else {
        fr->node = m->vnode;
        fr->flags = m->vlisted ? DG_FR_LISTED : 0;
        fr->rstep = m->vrstep;

        if (m->depth <= m->rec_top) {
            /* on the way to the records: is this their array? */
            dg_mask_rec_push(m, fr);
        }
    }

    m->vrstep = 0;
}


/* a value ended; q is the first byte after it */
static inline __attribute__((always_inline)) void
dg_mask_value_done(dg_mask_t *m, const uint8_t *q)
{
    if (m->skip && m->depth == m->skip_depth) {
        m->skip = 0;
    }

    if (m->mask && m->depth == m->mask_depth) {
        m->mask = 0;
    }

    if (!m->skip && m->os == NULL) {
        m->os = q;
    }
}


/*
 * "},{" between two objects of an array walked normally (not element by
 * element), at m->depth, q after the '}': the steps of s_after, done,
 * s_value, value and s_obj_first taken at once, when they do no more than
 * close the object and open the next one in the same frame slot.  Returns
 * 0 and changes nothing when the general way is needed.
 */
static inline __attribute__((always_inline)) int
dg_mask_next_record(dg_mask_t *m, const uint8_t *q)
{
    dg_mask_frame_t  *fr;

    if (m->depth < 2) {
        return 0;
    }

    fr = &m->frames[m->depth - 2];

    if (fr->type != '[' || m->skip || m->mask || m->hold
        || (fr->flags & (DG_FR_RCAND | DG_FR_RONE))
        || ((m->flags & DG_MASK_UNLISTED_DROP)
            && !(fr->flags & DG_FR_LISTED)))
    {
        return 0;
    }

    m->depth--;
    dg_mask_value_done(m, q);
    dg_mask_elem_node(m, fr);
    /* a record of the records array: counted (nothing else to do when
     * records are not decided one by one) */
    m->stats.records += (fr->flags & DG_FR_RECORDS) ? 1 : 0;
    dg_mask_push(m, '{');
    m->esc = 0;

    return 1;
}


/* a new string or text */
static inline void
dg_det_start(dg_mask_det_t *d)
{
    d->ws = NULL;
    d->esc = 0;
    d->mb = 0;
    d->rawlen = 0;
    d->wn = 0;
    d->ulen = 0;
    d->ulong = 0;
    d->gin = 0;
    d->glong = 0;
    d->ng = 0;
    d->hkind = -1;
}


/* dg_mask_members.c */
int dg_mask_members(dg_mask_t *m, dg_mask_frame_t *fr, const uint8_t **pp,
    const uint8_t *end, dg_mask_pre_t *pre);

/* dg_mask_detect.c */
int dg_mask_det_runs(const uint8_t *p, const uint8_t *e);
#if (DG_MASK_X86)
int dg_mask_det_fine_avx2(const uint8_t *s, const uint8_t *e,
    const uint8_t *end);
#endif
int dg_det_scan(dg_mask_det_t *d, const uint8_t *p, const uint8_t *end,
    const uint8_t **pp);
int dg_det_text(dg_mask_out_t *o, const dg_mask_spec_t *detect,
    uint64_t *hits, const uint8_t *hash_key, size_t hash_key_len,
    const uint8_t *s, size_t len, unsigned plain);
int dg_mask_num_release(dg_mask_t *m);
int dg_mask_num_hold(dg_mask_t *m, const uint8_t *end);
int dg_mask_num_det(dg_mask_t *m, const uint8_t *q);


#endif /* DG_MASK_INT_H */
