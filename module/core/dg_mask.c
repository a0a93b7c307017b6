/*
 * datagate core: streaming JSON masker (see dg_mask.h).
 *
 * One pass, resumable at any byte.  The stream keeps a small parse state:
 * a stack of open containers (type, path-trie node, flags), the member
 * being decided, and one buffer that holds either the raw bytes of an
 * undecided member ("," ws "key" ws ":" ws) or the decoded value being
 * masked.  Untouched input is emitted by reference: os marks the start of
 * the pending untouched run in the current span, hs the start of the held
 * member prefix.  A member is decided at the first byte of its value:
 * emitted (its prefix joins the untouched run, or is written from the hold
 * buffer when it straddled spans), masked, or dropped (prefix and value
 * vanish; a leading comma and the whitespace after it are stripped from
 * the next member emitted when nothing has been emitted before it in that
 * object).  In allow-list mode the elements of arrays are held and
 * decided the same way (from the comma to the first byte of the value).
 *
 * Errors are detected at the same input byte whatever the split, so a
 * stream gives the same result fed whole or one byte at a time.
 *
 * Speed (see scripts/bench-mask-engine.sh): members of an object walked
 * normally go through dg_mask_members(), a tight loop that takes whole
 * members found plain in the current span: key and string ends found with
 * the span's 64-byte blocks classified once with AVX2 (a bit per '"',
 * '\\' or control byte, kept in m->blk for the span; dg_mask_str_end(),
 * 16-byte SSE2 scans on other CPUs or with DG_MASK_NOSIMD=1), a key seen
 * before under the same path node recognised by one 32-byte compare of
 * its '"' key '"' ':' token (the key memo, AVX2 only; the key that
 * followed the last one last time is tried first, and a short loop takes
 * the members of a run of records that come in that order, masking their
 * selected plain strings itself; the memo outlives a document when the
 * stream is initialised again with dg_mask_reinit() for the same rules),
 * other keys looked up without copying (an 11-bit digest of length,
 * first and last byte indexes a table that rejects most unselected keys at
 * once and names the one key-anywhere entry to compare, so the hash is
 * only computed when two entries share a digest), "key":value tested
 * first, scalar values skipped, selected strings and numbers masked in
 * place from the span;
 * arrays of plain scalars under an unselected key skipped whole when
 * nothing in them can be masked, dropped or scanned (dg_mask_fast_array);
 * the untouched bytes of all those members stay one pending run (os),
 * written with one copy (four 32-byte moves when it is short, before a
 * masked value: dg_mask_flush_os_avx2); the "},{" between the records of
 * an array is taken without leaving the loop.  The loop is compiled once
 * per CPU kind (and once more for plain masking, without the tests of the
 * other modes).
 * Anything else (containers, escapes, a member cut by the span end, a
 * leading comma to strip, detect on strings) is left to the state machine
 * below, at the same byte and with the same effects, so output and errors
 * do not depend on which way a member went.  Masking methods write ASCII and
 * escape-free UTF-8 values straight into the output buffer
 * (dg_mask_apply_span(), dg_mask_apply_fast()), which with
 * dg_mask_feed_into() is memory lent by the caller.
 *
 * Semantics (beyond dg_mask.h):
 * - Selectors: "key" matches that decoded key anywhere; "a.b", "data[].x",
 *   "$.a", "[].x" match from the root ("[]" = any element).  A path ending
 *   in "[]" is refused (select the array by its key).  A path match wins
 *   over a key-anywhere match; among equal selectors the first one wins.
 * - A classified member: field_hits[i] counts members matched by field i
 *   (whatever the action).  clear: the value passes and is "listed" (no
 *   detect, no allow-list drop inside it; selectors still apply inside).
 *   drop: member removed.  Other methods: every scalar of the value is
 *   masked: strings on their decoded text, numbers on their text (result
 *   is a string), null stays null, true/false become "***" (null for the
 *   null method); keys inside the value pass unchanged.
 * - Allow-list (DG_MASK_UNLISTED_DROP): every scalar that no selector
 *   covers is removed, wherever it is: an unmatched member whose value is
 *   a scalar (key, value and a comma go), and a scalar element of an array
 *   (with a comma); each is counted in dropped.  Objects and arrays are
 *   kept and walked, so their container survives (possibly empty).  A
 *   scalar document (the whole body is "abc" or 42) becomes null.  Without
 *   the flag an unmatched member with a scalar value is counted in
 *   unlisted.  None of this applies inside a listed (clear) or masked
 *   value.
 * - Dropping: when the members (elements) dropped are the first of their
 *   container, the comma before the next one kept goes, and so does the
 *   whitespace after that comma; other whitespace stays.
 * - Detect (DG_MASK_DETECT): unclassified string values (object members,
 *   array elements, a top-level string) are scanned (\uXXXX escapes
 *   decoded) for candidates: every maximal run of digits, whatever is
 *   around it (letters too: "tel13812345678" is caught), with the X/x
 *   right after a run of 17 digits; and every maximal run of [0-9A-Z] of
 *   exactly 18 characters.  A digit candidate that validates as a resident
 *   ID (MOD 11-2), a mobile (11 digits 1[3-9]..., or 13 with a leading 86)
 *   or a Luhn bank card (16-19 digits), or an 18-character run that
 *   validates as one of those or a USCC (GB 32100), is replaced by
 *   conf->detect[kind] applied to it (CLEAR there means the kind's
 *   default: id_card, phone, bank_card, keep(6,4)); null/drop inside a
 *   string give "***".  An 18-character hit wins over a digit hit inside
 *   it.  Memory stays bounded: a run of more than 19 digits (or 18
 *   [0-9A-Z]) cannot be a hit, and at most 20 characters are held.
 * - Limits: a held member prefix (separators + key) longer than max_value
 *   + 4 KiB, a key longer than max_value or a masked value (decoded)
 *   longer than max_value is DG_MASK_E_TOOBIG; nothing else is buffered.
 *   Keys inside dropped or masked values are not held and not limited.
 * - UTF-8 of masked values is validated (invalid or an unpaired surrogate
 *   escape: DG_MASK_E_UTF8); untouched strings are passed as they are.
 */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "dg_mask.h"
#include "dg_mask_int.h"


#define DG_MASK_SLACK       4096    /* separators around a held key */
#define DG_MASK_WBUF        2048    /* coalescing output buffer */
#define DG_MASK_DEF_VALUE   65536
#define DG_MASK_DEF_DEPTH   64
#define DG_MASK_MAX_DEPTH   4096
#define DG_MASK_WIN         24      /* detect window, characters */
#define DG_MASK_WINRAW      (6 * DG_MASK_WIN + 8)


/* parser states */
enum {
    S_VALUE = 0,        /* a value expected (after ':' or ',' in array) */
    S_ARR_FIRST,        /* after '[' */
    S_OBJ_FIRST,        /* after '{' */
    S_OBJ_NEXT,         /* after ',' in an object */
    S_KEY,              /* inside a held key */
    S_COLON,            /* after a key */
    S_AFTER,            /* after a value inside a container */
    S_END,              /* top-level value complete */
    S_STR,              /* pass-through (or skipped) string */
    S_DSTR,             /* pass-through string scanned by detect */
    S_MSTR,             /* string being decoded for masking */
    S_NUM,              /* number */
    S_LIT               /* true / false / null */
};


/* number states */
enum {
    N_START = 0, N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP
};


#define DG_FR_EMITTED   0x01    /* a member of this object was emitted */
#define DG_FR_LISTED    0x02    /* inside a value listed as clear */


typedef struct {
    int32_t                     node;       /* path trie node, -1 none */
    uint8_t                     type;       /* '{' or '[' */
    uint8_t                     flags;
} dg_mask_frame_t;


typedef struct {
    uint32_t                    off;        /* key in rules->str */
    uint32_t                    len;
    int32_t                     child;      /* first child by key */
    int32_t                     next;       /* next sibling */
    int32_t                     arr;        /* "[]" child */
    int32_t                     field;      /* terminal: field index */
} dg_mask_node_t;


typedef struct {
    uint32_t                    hash;
    uint32_t                    off;
    uint32_t                    len;
    int32_t                     field;      /* -1 empty slot */
} dg_mask_any_t;


struct dg_mask_rules_s {
    size_t                      nfields;
    unsigned                    flags;
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


/* the member loop's block of the span (see dg_mask_blk_fill_avx2) */
typedef struct {
    const uint8_t              *base;       /* 64 bytes, or NULL: none */
    const uint8_t              *lo;         /* the span start */
    uint64_t                    sp;         /* bit i: base[i] ends a run */
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

    /* detect window: candidate characters not yet decided */
    const uint8_t              *ws;         /* raw start in span, or NULL:
                                               raw bytes are in wraw */
    uint8_t                     wn;         /* characters in the window */
    uint8_t                     u0;         /* [0-9A-Z] run: start, */
    uint8_t                     ulen;       /* length (0: none or long) */
    uint8_t                     ulong;
    uint8_t                     d0;         /* digit run: start, */
    uint8_t                     dlen;       /* length (0: none or long) */
    uint8_t                     dlong;
    int8_t                      hkind;      /* pending hit: kind or -1, */
    uint8_t                     h0;         /* start, */
    uint8_t                     hl;         /* length */
    uint8_t                     escrawlen;
    uint8_t                     escraw[8];
    uint8_t                     wc[DG_MASK_WIN];
    uint16_t                    wr[DG_MASK_WIN + 1]; /* raw offsets */
    uint8_t                     wraw[DG_MASK_WINRAW];

    uint8_t                     wbuf[DG_MASK_WBUF];

    /* not cleared whole by dg_mask_init(): 8 KB, a mask each is enough */
    dg_mask_memo_t              memo[DG_MASK_MEMO][2];
};


/* byte classes */
#define C_WS        0x01
#define C_STR       0x02    /* ends a plain string run: " \ or control */
#define C_DU        0x04    /* digit or A-Z: may start a candidate */
#define C_HEX       0x08
#define C_DIGIT     0x10

static uint8_t  dg_mask_cls[256];
static uint64_t dg_mask_rules_serial;    /* see dg_mask_reinit() */
static int      dg_mask_cls_ready;


static void
dg_mask_cls_init(void)
{
    int  c;

    if (dg_mask_cls_ready) {
        return;
    }

    for (c = 0; c < 256; c++) {
        uint8_t  k = 0;

        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            k |= C_WS;
        }
        if (c < 0x20 || c == '"' || c == '\\') {
            k |= C_STR;
        }
        if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')) {
            k |= C_DU;
        }
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
            || (c >= 'A' && c <= 'F'))
        {
            k |= C_HEX;
        }
        if (c >= '0' && c <= '9') {
            k |= C_DIGIT;
        }
        dg_mask_cls[c] = k;
    }

    dg_mask_cls_ready = 1;
}


/* string scanning: first '"', '\\' or control byte in [p, end) */

static const uint8_t *
dg_mask_scan_scalar(const uint8_t *p, const uint8_t *end)
{
    while (end - p >= 4) {
        if (dg_mask_cls[p[0]] & C_STR) {
            return p;
        }
        if (dg_mask_cls[p[1]] & C_STR) {
            return p + 1;
        }
        if (dg_mask_cls[p[2]] & C_STR) {
            return p + 2;
        }
        if (dg_mask_cls[p[3]] & C_STR) {
            return p + 3;
        }
        p += 4;
    }

    while (p < end && !(dg_mask_cls[*p] & C_STR)) {
        p++;
    }

    return p;
}


#if (DG_MASK_X86)

__attribute__((target("avx2")))
static const uint8_t *
dg_mask_scan_avx2(const uint8_t *p, const uint8_t *end)
{
    __m256i   q, bs, ctl, v, x;
    uint32_t  bits;

    q = _mm256_set1_epi8('"');
    bs = _mm256_set1_epi8('\\');
    ctl = _mm256_set1_epi8(0x1f);

    while (end - p >= 32) {
        v = _mm256_loadu_si256((const __m256i *) p);
        x = _mm256_or_si256(_mm256_cmpeq_epi8(v, q),
                            _mm256_cmpeq_epi8(v, bs));
        x = _mm256_or_si256(x, _mm256_cmpeq_epi8(_mm256_min_epu8(v, ctl), v));
        bits = (uint32_t) _mm256_movemask_epi8(x);
        if (bits) {
            return p + __builtin_ctz(bits);
        }
        p += 32;
    }

    return dg_mask_scan_scalar(p, end);
}


static const uint8_t *
dg_mask_scan_sse2(const uint8_t *p, const uint8_t *end)
{
    __m128i   q, bs, ctl, v, x;
    uint32_t  bits;

    q = _mm_set1_epi8('"');
    bs = _mm_set1_epi8('\\');
    ctl = _mm_set1_epi8(0x1f);

    while (end - p >= 16) {
        v = _mm_loadu_si128((const __m128i *) p);
        x = _mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, bs));
        x = _mm_or_si128(x, _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
        bits = (uint32_t) _mm_movemask_epi8(x);
        if (bits) {
            return p + __builtin_ctz(bits);
        }
        p += 16;
    }

    return dg_mask_scan_scalar(p, end);
}

#endif


typedef const uint8_t *(*dg_mask_scan_pt)(const uint8_t *p,
    const uint8_t *end);

static dg_mask_scan_pt  dg_mask_scan_long = dg_mask_scan_scalar;
static int              dg_mask_avx2;   /* the member loop's AVX2 copy */
#if (DG_MASK_X86)
/* '"', '\\' and 0x1f in every byte: loaded, not built, in each block */
static uint8_t          dg_mask_v32[3][32] __attribute__((aligned(32)));
#endif


static void
dg_mask_scan_init(void)
{
#if (DG_MASK_X86)
    const char  *e;

    e = getenv("DG_MASK_NOSIMD");
    if (e != NULL && *e == '1') {
        dg_mask_scan_long = dg_mask_scan_scalar;
        dg_mask_avx2 = 0;
        return;
    }

    __builtin_cpu_init();
    dg_mask_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;

    memset(dg_mask_v32[0], '"', 32);
    memset(dg_mask_v32[1], '\\', 32);
    memset(dg_mask_v32[2], 0x1f, 32);
    dg_mask_scan_long = dg_mask_avx2 ? dg_mask_scan_avx2 : dg_mask_scan_sse2;
#endif
}


/* short strings are the common case: one 16-byte block first */
static inline const uint8_t *
dg_mask_scan(const uint8_t *p, const uint8_t *end)
{
#if (DG_MASK_X86)
    __m128i   v, x;
    uint32_t  bits;

    if (end - p >= 16) {
        v = _mm_loadu_si128((const __m128i *) p);
        x = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                         _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
        x = _mm_or_si128(x, _mm_cmpeq_epi8(_mm_min_epu8(v,
                                               _mm_set1_epi8(0x1f)), v));
        bits = (uint32_t) _mm_movemask_epi8(x);
        if (bits) {
            return p + __builtin_ctz(bits);
        }
        p += 16;

        if (end - p >= 16) {
            v = _mm_loadu_si128((const __m128i *) p);
            x = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                             _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
            x = _mm_or_si128(x, _mm_cmpeq_epi8(_mm_min_epu8(v,
                                                   _mm_set1_epi8(0x1f)), v));
            bits = (uint32_t) _mm_movemask_epi8(x);
            if (bits) {
                return p + __builtin_ctz(bits);
            }
            p += 16;
        }

        return dg_mask_scan_long(p, end);
    }
#endif

    return dg_mask_scan_scalar(p, end);
}


/*
 * The member loop's string scanner on AVX2.  The span is cut in blocks of
 * 64 bytes from its start (the last one ends at the span end, overlapping
 * the one before it); a block carries a bit for each byte that ends a
 * plain string run ('"', '\\' or a control byte).  One block usually
 * holds the keys and short values of two or three members, so finding the
 * end of one is a shift and a count of trailing zeros instead of a vector
 * scan per string, and each byte is classified once.  The block lives in
 * the stream (m->blk) for the whole span: the member loop is entered once
 * per object.  Nothing outside the span is read: a span shorter than 64
 * bytes leaves base NULL and dg_mask_scan() answers.
 */

#if (DG_MASK_X86)

static inline __attribute__((target("avx2"))) uint64_t
dg_mask_blk64_avx2(const uint8_t *b)
{
    __m256i  q, bs, ctl, v, w, x, y;

    q = _mm256_load_si256((const __m256i *) dg_mask_v32[0]);
    bs = _mm256_load_si256((const __m256i *) dg_mask_v32[1]);
    ctl = _mm256_load_si256((const __m256i *) dg_mask_v32[2]);

    v = _mm256_loadu_si256((const __m256i *) b);
    w = _mm256_loadu_si256((const __m256i *) (b + 32));
    x = _mm256_or_si256(_mm256_cmpeq_epi8(v, q), _mm256_cmpeq_epi8(v, bs));
    x = _mm256_or_si256(x, _mm256_cmpeq_epi8(_mm256_min_epu8(v, ctl), v));
    y = _mm256_or_si256(_mm256_cmpeq_epi8(w, q), _mm256_cmpeq_epi8(w, bs));
    y = _mm256_or_si256(y, _mm256_cmpeq_epi8(_mm256_min_epu8(w, ctl), w));

    return (uint32_t) _mm256_movemask_epi8(x)
           | (uint64_t) (uint32_t) _mm256_movemask_epi8(y) << 32;
}


/* bit i: the byte at s + i is a digit or a capital (C_DU), for 32 bytes;
 * signed compares: bytes from 0x80 up are negative, never in range */
static inline __attribute__((target("avx2"))) uint32_t
dg_mask_du32_avx2(const uint8_t *s)
{
    __m256i  v;

    v = _mm256_loadu_si256((const __m256i *) s);

    return (uint32_t) _mm256_movemask_epi8(_mm256_or_si256(
        _mm256_and_si256(_mm256_cmpgt_epi8(v, _mm256_set1_epi8('0' - 1)),
                         _mm256_cmpgt_epi8(_mm256_set1_epi8('9' + 1), v)),
        _mm256_and_si256(_mm256_cmpgt_epi8(v, _mm256_set1_epi8('A' - 1)),
                         _mm256_cmpgt_epi8(_mm256_set1_epi8('Z' + 1), v))));
}


/* the first len (> 10) of the 64 bytes at s (readable) hold a run of 11
 * digits or capitals */
static inline __attribute__((target("avx2"))) int
dg_mask_du64_avx2(const uint8_t *s, size_t len)
{
    uint64_t  m;

    m = dg_mask_du32_avx2(s) | (uint64_t) dg_mask_du32_avx2(s + 32) << 32;

    if (len < 64) {
        m &= ((uint64_t) 1 << len) - 1;
    }

    /* then bit i: bytes i to i + 10 all set */
    m &= m >> 1;
    m &= m >> 2;
    m &= m >> 4;
    m &= m >> 3;

    return m != 0;
}


/* bit i: q[i] == tok[i], for the 32 bytes at q (the caller checked that
 * they are in the span) */
static inline __attribute__((target("avx2"))) uint32_t
dg_mask_memo_cmp(const uint8_t *q, const uint8_t *tok)
{
    __m256i  a, b;

    a = _mm256_loadu_si256((const __m256i *) q);
    b = _mm256_loadu_si256((const __m256i *) tok);

    return (uint32_t) _mm256_movemask_epi8(_mm256_cmpeq_epi8(a, b));
}


/* the memo entry mo holds the "key": token at q, looked up under node */
static inline __attribute__((target("avx2"))) int
dg_mask_memo_hit(const dg_mask_memo_t *mo, const uint8_t *q, int32_t node)
{
    return mo->node == node && mo->mask != 0
           && (dg_mask_memo_cmp(q, mo->tok) & mo->mask) == mo->mask
           && !(dg_mask_cls[q[mo->len]] & C_WS);
}


/* the block holds no run end at or after p: classify the next blocks
 * (p is at or after the end of the current one, or there is none) */
__attribute__((target("avx2"), noinline))
static const uint8_t *
dg_mask_blk_fill_avx2(dg_mask_blk_t *bk, const uint8_t *p,
    const uint8_t *end)
{
    const uint8_t  *b;
    uint64_t        bits;

    if (p >= end) {
        return end;
    }

    if (end - bk->lo < 64) {
        bk->base = NULL;
        return dg_mask_scan(p, end);
    }

    b = bk->lo + ((size_t) (p - bk->lo) & ~(size_t) 63);

    if (end - b >= 64) {
        bits = dg_mask_blk64_avx2(b);
        bk->base = b;
        bk->sp = bits;
        bits >>= p - b;
        if (bits) {
            return p + (unsigned) __builtin_ctzll(bits);
        }

        for (b += 64; end - b >= 64; b += 64) {
            bits = dg_mask_blk64_avx2(b);
            if (bits) {
                bk->base = b;
                bk->sp = bits;
                return b + (unsigned) __builtin_ctzll(bits);
            }
        }

        if (b == end) {
            return end;
        }

        p = b;
    }

    /* the last block ends at the span end */
    b = end - 64;
    bits = dg_mask_blk64_avx2(b);
    bk->base = b;
    bk->sp = bits;
    bits >>= p - b;

    return bits ? p + (unsigned) __builtin_ctzll(bits) : end;
}

#endif


/* first '"', '\\' or control byte in [p, end) for the member loop */
static inline __attribute__((always_inline)) const uint8_t *
dg_mask_str_end(dg_mask_blk_t *bk, const uint8_t *p, const uint8_t *end,
    const int avx2)
{
#if (DG_MASK_X86)
    const uint8_t  *b;
    uintptr_t       off;
    uint64_t        bits;

    if (avx2) {
        /* a NULL base puts every span address out of the block */
        off = (uintptr_t) p - (uintptr_t) bk->base;

        if (off < 128) {
            if (off < 64) {
                bits = bk->sp >> off;
                if (bits) {
                    return p + (unsigned) __builtin_ctzll(bits);
                }
            }

            /* none left in this block, or p in the next one: the next
             * one (the common cases, in line) */
            b = bk->base + 64;
            if (end - b < 64) {
                return dg_mask_blk_fill_avx2(bk, p > b ? p : b, end);
            }

            bits = dg_mask_blk64_avx2(b);
            bk->base = b;
            bk->sp = bits;

            if (p > b) {
                bits >>= p - b;
                b = p;
            }

            if (bits) {
                return b + (unsigned) __builtin_ctzll(bits);
            }

            p = bk->base + 64;
        }

        return dg_mask_blk_fill_avx2(bk, p, end);
    }
#endif

    return dg_mask_scan(p, end);
}


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


static int32_t
dg_mask_node_new(dg_mask_rules_t *r, size_t cap)
{
    dg_mask_node_t  *n;

    if (r->nnodes >= cap) {
        return -1;
    }

    n = &r->nodes[r->nnodes];
    n->off = 0;
    n->len = 0;
    n->child = -1;
    n->next = -1;
    n->arr = -1;
    n->field = -1;

    return (int32_t) r->nnodes++;
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
        if (a->field < 0) {
            return -1;
        }
        if (a->hash == h && a->len == len
            && dg_mask_keyeq(r->str + a->off, k, len))
        {
            return a->field;
        }
    }
}


static void
dg_mask_err(char *err, size_t errlen, const char *fmt, size_t i,
    const dg_mask_field_t *f)
{
    if (err && errlen) {
        snprintf(err, errlen, fmt, i, (int) (f->len > 200 ? 200 : f->len),
                 f->selector ? f->selector : "");
    }
}


dg_mask_rules_t *
dg_mask_rules_compile(const dg_mask_field_t *fields, size_t nfields,
    unsigned flags, char *err, size_t errlen)
{
    dg_mask_rules_t  *r;
    const uint8_t    *s, *end, *k;
    dg_mask_any_t    *a;
    size_t            i, total, nodecap, nany, j, len;
    int32_t           node, c;
    uint32_t          h;
    int               path;

    dg_mask_cls_init();
    dg_mask_scan_init();

    if (err && errlen) {
        err[0] = '\0';
    }

    if (nfields && fields == NULL) {
        if (err && errlen) {
            snprintf(err, errlen, "no fields");
        }
        return NULL;
    }

    total = 0;
    for (i = 0; i < nfields; i++) {
        if (fields[i].selector == NULL || fields[i].len == 0
            || fields[i].len > 65535)
        {
            dg_mask_err(err, errlen, "field %zu: empty or too long "
                        "selector \"%.*s\"", i, &fields[i]);
            return NULL;
        }
        total += fields[i].len;
    }

    r = calloc(1, sizeof(dg_mask_rules_t));
    if (r == NULL) {
        goto nomem;
    }

    r->serial = __atomic_add_fetch(&dg_mask_rules_serial, 1,
                                   __ATOMIC_RELAXED);
    r->nfields = nfields;
    r->flags = flags;
    nodecap = total + 1;
    r->nodes = calloc(nodecap, sizeof(dg_mask_node_t));
    r->str = malloc(total + 1);

    for (nany = 1; nany < 2 * nfields + 2; nany <<= 1) { /* void */ }
    r->any = calloc(nany, sizeof(dg_mask_any_t));

    if (r->nodes == NULL || r->str == NULL || r->any == NULL) {
        goto nomem;
    }

    r->anymask = nany - 1;
    for (j = 0; j < nany; j++) {
        r->any[j].field = -1;
    }

    (void) dg_mask_node_new(r, nodecap);    /* root */

    for (i = 0; i < nfields; i++) {
        s = (const uint8_t *) fields[i].selector;
        end = s + fields[i].len;
        path = 0;

        if (end - s >= 2 && s[0] == '$' && (s[1] == '.' || s[1] == '[')) {
            s += (s[1] == '.') ? 2 : 1;
            path = 1;
        }

        for (k = s; k < end; k++) {
            if (*k == '.' || *k == '[' || *k == ']') {
                path = 1;
            }
        }

        if (s == end) {
            dg_mask_err(err, errlen, "field %zu: empty selector \"%.*s\"",
                        i, &fields[i]);
            goto failed;
        }

        if (!path) {
            len = end - s;
            h = dg_mask_hash(s, len);
            for (j = h & r->anymask; ; j = (j + 1) & r->anymask) {
                a = &r->any[j];
                if (a->field < 0) {
                    a->hash = h;
                    a->off = (uint32_t) r->strlen;
                    a->len = (uint32_t) len;
                    a->field = (int32_t) i;
                    memcpy(r->str + r->strlen, s, len);
                    r->strlen += len;
                    r->anylens |= (uint64_t) 1 << (len < 63 ? len : 63);
                    h = dg_mask_kfilt(s, len);
                    if ((r->kslot[h] == DG_KS_NONE
                         || r->kslot[h] == DG_KS_TRIE)
                        && j < DG_KS_MAXANY)
                    {
                        r->kslot[h] = (uint8_t) (j + 1);

                    } else {
                        r->kslot[h] = DG_KS_MANY;
                    }
                    break;
                }
                if (a->hash == h && a->len == len
                    && memcmp(r->str + a->off, s, len) == 0)
                {
                    break;      /* duplicate: the first one wins */
                }
            }
            continue;
        }

        /* path: step ( "." name | "[]" )* where step is name or "[]" */
        node = 0;

        for ( ;; ) {
            if (*s == '[') {
                if (end - s < 2 || s[1] != ']') {
                    dg_mask_err(err, errlen, "field %zu: bad \"[\" in "
                                "selector \"%.*s\"", i, &fields[i]);
                    goto failed;
                }
                s += 2;
                if (r->nodes[node].arr < 0) {
                    c = dg_mask_node_new(r, nodecap);
                    if (c < 0) {
                        goto nomem;
                    }
                    r->nodes[node].arr = c;
                }
                node = r->nodes[node].arr;

                if (s == end) {
                    dg_mask_err(err, errlen, "field %zu: selector \"%.*s\" "
                                "ends in \"[]\" (select the array by its "
                                "key)", i, &fields[i]);
                    goto failed;
                }

            } else {
                for (k = s; k < end && *k != '.' && *k != '['; k++) {
                    if (*k == ']') {
                        dg_mask_err(err, errlen, "field %zu: bad \"]\" in "
                                    "selector \"%.*s\"", i, &fields[i]);
                        goto failed;
                    }
                }

                if (k == s) {
                    dg_mask_err(err, errlen, "field %zu: empty name in "
                                "selector \"%.*s\"", i, &fields[i]);
                    goto failed;
                }

                c = dg_mask_node_child(r, node, s, k - s);
                if (c < 0) {
                    c = dg_mask_node_new(r, nodecap);
                    if (c < 0) {
                        goto nomem;
                    }
                    r->nodes[c].off = (uint32_t) r->strlen;
                    r->nodes[c].len = (uint32_t) (k - s);
                    memcpy(r->str + r->strlen, s, k - s);
                    r->strlen += k - s;
                    r->nodes[c].next = r->nodes[node].child;
                    r->nodes[node].child = c;
                    h = dg_mask_kfilt(s, k - s);
                    if (r->kslot[h] == DG_KS_NONE) {
                        r->kslot[h] = DG_KS_TRIE;
                    }
                }
                node = c;
                s = k;

                if (s == end) {
                    break;
                }
            }

            if (*s == '.') {
                s++;
                if (s == end || *s == '.' || *s == '[') {
                    dg_mask_err(err, errlen, "field %zu: empty name in "
                                "selector \"%.*s\"", i, &fields[i]);
                    goto failed;
                }
            }
        }

        if (r->nodes[node].field < 0) {
            r->nodes[node].field = (int32_t) i;
        }
    }

    return r;

nomem:

    if (err && errlen) {
        snprintf(err, errlen, "out of memory");
    }

failed:

    dg_mask_rules_free(r);
    return NULL;
}


void
dg_mask_rules_free(dg_mask_rules_t *r)
{
    if (r == NULL) {
        return;
    }

    free(r->nodes);
    free(r->any);
    free(r->str);
    free(r);
}


size_t
dg_mask_rules_nfields(const dg_mask_rules_t *r)
{
    return r ? r->nfields : 0;
}


/* stream memory */

static void
dg_mask_limits(const dg_mask_conf_t *conf, size_t *max_value,
    unsigned *max_depth)
{
    *max_value = conf->max_value ? conf->max_value : DG_MASK_DEF_VALUE;
    if (*max_value > ((size_t) 1 << 30)) {
        *max_value = (size_t) 1 << 30;
    }

    *max_depth = conf->max_depth ? conf->max_depth : DG_MASK_DEF_DEPTH;
    if (*max_depth > DG_MASK_MAX_DEPTH) {
        *max_depth = DG_MASK_MAX_DEPTH;
    }
}


#define dg_mask_align(n)  (((n) + 15) & ~(size_t) 15)


size_t
dg_mask_size(const dg_mask_conf_t *conf)
{
    size_t    max_value, nf, sz;
    unsigned  max_depth;

    dg_mask_limits(conf, &max_value, &max_depth);
    nf = dg_mask_rules_nfields(conf->rules);

    sz = dg_mask_align(sizeof(dg_mask_t));
    sz += dg_mask_align(max_depth * sizeof(dg_mask_frame_t));
    sz += dg_mask_align(nf * sizeof(uint64_t));
    sz += 2 * dg_mask_align(max_value + DG_MASK_SLACK);

    return sz;
}


static dg_mask_t *dg_mask_setup(void *mem, const dg_mask_conf_t *conf,
    int keep_memo);


dg_mask_t *
dg_mask_init(void *mem, const dg_mask_conf_t *conf)
{
    return dg_mask_setup(mem, conf, 0);
}


dg_mask_t *
dg_mask_reinit(dg_mask_t *m, const dg_mask_conf_t *conf)
{
    /* the memo holds lookups in the rules it was filled with: kept for
     * the same rules (by serial, not by address: freed rules compiled
     * again may come back at the same address) */
    return dg_mask_setup(m, conf,
                         m != NULL && conf != NULL && conf->rules != NULL
                         && m->memo_serial == conf->rules->serial);
}


static dg_mask_t *
dg_mask_setup(void *mem, const dg_mask_conf_t *conf, int keep_memo)
{
    dg_mask_t  *m;
    uint8_t    *p;
    size_t      max_value, nf, i;
    unsigned    max_depth, k;

    if (mem == NULL || conf == NULL || conf->rules == NULL
        || ((uintptr_t) mem & 15))
    {
        return NULL;
    }

    nf = conf->rules->nfields;
    if (nf && conf->actions == NULL) {
        return NULL;
    }

    /* fail closed at once on a configuration that could never mask */
    for (i = 0; i < nf; i++) {
        if (conf->actions[i].method >= DG_MASK_METHOD_MAX
            || (conf->actions[i].method == DG_MASK_HASH
                && (conf->hash_key == NULL || conf->hash_key_len == 0)))
        {
            return NULL;
        }
    }

    dg_mask_cls_init();
    dg_mask_limits(conf, &max_value, &max_depth);

    m = mem;
    memset(m, 0, offsetof(dg_mask_t, wbuf));

    m->rules = conf->rules;
    m->actions = conf->actions;
    m->hash_key = conf->hash_key;
    m->hash_key_len = conf->hash_key_len;
    m->max_value = max_value;
    m->holdmax = max_value + DG_MASK_SLACK;
    m->max_depth = max_depth;
    m->flags = conf->rules->flags;

    for (k = 0; k < DG_DETECT_MAX; k++) {
        m->detect[k] = conf->detect[k];
        if (m->detect[k].method == DG_MASK_CLEAR
            || m->detect[k].method >= DG_MASK_METHOD_MAX
            || (m->detect[k].method == DG_MASK_HASH
                && (conf->hash_key == NULL || conf->hash_key_len == 0)))
        {
            dg_mask_detect_default(k, &m->detect[k]);
        }
    }

    p = (uint8_t *) m + dg_mask_align(sizeof(dg_mask_t));
    m->frames = (dg_mask_frame_t *) p;
    p += dg_mask_align(max_depth * sizeof(dg_mask_frame_t));
    m->stats.field_hits = (uint64_t *) p;
    memset(p, 0, nf * sizeof(uint64_t));
    p += dg_mask_align(nf * sizeof(uint64_t));
    m->hbuf = p;
    p += dg_mask_align(max_value + DG_MASK_SLACK);
    m->kbuf = p;

    if (!keep_memo) {
        /* node too: dg_mask_memo_hit() compares it before the mask */
        for (k = 0; k < DG_MASK_MEMO; k++) {
            m->memo[k][0].node = 0;
            m->memo[k][0].mask = 0;
            m->memo[k][0].next = NULL;
            m->memo[k][1].node = 0;
            m->memo[k][1].mask = 0;
            m->memo[k][1].next = NULL;
        }
    }

    m->memo_serial = conf->rules->serial;

    m->out.buf = m->wbuf;
    m->out.cap = DG_MASK_WBUF;
    m->out.bytes_out = &m->stats.bytes_out;

    m->state = S_VALUE;
    m->emitting = 1;
    m->kfield = -1;
    m->knode = -1;

    return m;
}


const dg_mask_stats_t *
dg_mask_stats(const dg_mask_t *m)
{
    return &m->stats;
}


const char *
dg_mask_strerror(int rc)
{
    switch (rc) {
    case DG_MASK_OK:
        return "ok";
    case DG_MASK_E_SYNTAX:
        return "malformed JSON";
    case DG_MASK_E_DEPTH:
        return "JSON nested too deep";
    case DG_MASK_E_TOOBIG:
        return "JSON key or masked value larger than the mask buffer";
    case DG_MASK_E_UTF8:
        return "invalid UTF-8 in a masked value";
    case DG_MASK_E_TRUNCATED:
        return "JSON document truncated";
    case DG_MASK_E_EMIT:
        return "output failed";
    case DG_MASK_E_STATE:
        return "mask stream already failed or finished";
    case DG_MASK_E_CONF:
        return "bad mask configuration";
    default:
        return "unknown mask error";
    }
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


/* returns 1 when the escape is complete (code unit in m->ecp), 0 when more
 * bytes are needed, -1 on a bad escape */
static int
dg_mask_esc_byte(dg_mask_t *m, uint8_t c)
{
    if (m->esc == 1) {
        m->eu = 0;
        m->esc = 0;

        switch (c) {
        case '"':
        case '\\':
        case '/':
            m->ecp = c;
            return 1;
        case 'b':
            m->ecp = '\b';
            return 1;
        case 'f':
            m->ecp = '\f';
            return 1;
        case 'n':
            m->ecp = '\n';
            return 1;
        case 'r':
            m->ecp = '\r';
            return 1;
        case 't':
            m->ecp = '\t';
            return 1;
        case 'u':
            m->eu = 1;
            m->esc = 2;
            m->ecp = 0;
            return 0;
        default:
            return -1;
        }
    }

    if (!(dg_mask_cls[c] & C_HEX)) {
        return -1;
    }

    m->ecp = (m->ecp << 4)
             | (uint32_t) (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);

    if (++m->esc == 6) {
        m->esc = 0;
        return 1;
    }

    return 0;
}


static size_t
dg_mask_utf8_put(uint8_t *d, uint32_t c)
{
    if (c < 0x80) {
        d[0] = (uint8_t) c;
        return 1;
    }

    if (c < 0x800) {
        d[0] = (uint8_t) (0xc0 | (c >> 6));
        d[1] = (uint8_t) (0x80 | (c & 0x3f));
        return 2;
    }

    if (c < 0x10000) {
        d[0] = (uint8_t) (0xe0 | (c >> 12));
        d[1] = (uint8_t) (0x80 | ((c >> 6) & 0x3f));
        d[2] = (uint8_t) (0x80 | (c & 0x3f));
        return 3;
    }

    d[0] = (uint8_t) (0xf0 | (c >> 18));
    d[1] = (uint8_t) (0x80 | ((c >> 12) & 0x3f));
    d[2] = (uint8_t) (0x80 | ((c >> 6) & 0x3f));
    d[3] = (uint8_t) (0x80 | (c & 0x3f));
    return 4;
}


static int
dg_mask_hexval(uint8_t c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}


/* decode a validated raw key; unpaired surrogates become U+FFFD */
static size_t
dg_mask_key_decode(const uint8_t *s, size_t n, uint8_t *d)
{
    const uint8_t  *end;
    uint8_t        *d0;
    uint32_t        c, lo;
    int             i;

    d0 = d;
    end = s + n;

    while (s < end) {
        if (*s != '\\') {
            *d++ = *s++;
            continue;
        }

        s++;

        switch (*s) {
        case 'b': *d++ = '\b'; s++; continue;
        case 'f': *d++ = '\f'; s++; continue;
        case 'n': *d++ = '\n'; s++; continue;
        case 'r': *d++ = '\r'; s++; continue;
        case 't': *d++ = '\t'; s++; continue;
        case 'u': break;
        default: *d++ = *s++; continue;
        }

        c = 0;
        for (i = 1; i <= 4; i++) {
            c = (c << 4) | (uint32_t) dg_mask_hexval(s[i]);
        }
        s += 5;

        if (c >= 0xd800 && c <= 0xdbff && end - s >= 6 && s[0] == '\\'
            && s[1] == 'u')
        {
            lo = 0;
            for (i = 2; i <= 5; i++) {
                lo = (lo << 4) | (uint32_t) dg_mask_hexval(s[i]);
            }
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                s += 6;
            }
        }

        if (c >= 0xd800 && c <= 0xdfff) {
            c = 0xfffd;
        }

        d += dg_mask_utf8_put(d, c);
    }

    return d - d0;
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


/*
 * A number at q (its first byte is '-' or a digit) that is well formed and
 * followed by a byte in this span.  Returns that byte, or NULL to leave
 * the number to the state machine.
 */
static inline __attribute__((always_inline)) const uint8_t *
dg_mask_fast_number(const uint8_t *q, const uint8_t *end)
{
    const uint8_t  *e, *d;

    e = q + (*q == '-');
    if (e == end) {
        return NULL;
    }
    if (*e == '0') {
        e++;
    } else {
        d = e;
        while (e < end && (dg_mask_cls[*e] & C_DIGIT)) {
            e++;
        }
        if (e == d) {
            return NULL;
        }
    }
    if (e == end) {
        return NULL;
    }
    if (*e == '.') {
        d = ++e;
        while (e < end && (dg_mask_cls[*e] & C_DIGIT)) {
            e++;
        }
        if (e == d || e == end) {
            return NULL;
        }
    }
    if (*e == 'e' || *e == 'E') {
        e++;
        if (e < end && (*e == '+' || *e == '-')) {
            e++;
        }
        d = e;
        while (e < end && (dg_mask_cls[*e] & C_DIGIT)) {
            e++;
        }
        if (e == d || e == end) {
            return NULL;
        }
    }
    return e;
}


/*
 * Detect: the plain string [s, e) holds no run of digits and capitals
 * (C_DU) that dg_mask_det_char() could take for a candidate, so the state
 * machine would pass it unchanged.  Hits come from runs of 11 or more
 * (the shortest, a mobile number, has 11); of the runs of digits alone,
 * those of 12, 14 or 15 and of 20 or more hold none (dg_mask_detect_digits
 * takes 11, 13, 16-19 and 18 with a final X, which is a capital).
 */
static int
dg_mask_det_runs(const uint8_t *p, const uint8_t *e)
{
    const uint8_t  *q;
    size_t          n;
    unsigned        digits;

    while (p < e) {
        if (!(dg_mask_cls[*p] & C_DU)) {
            p++;
            continue;
        }

        digits = 1;
        for (q = p; q < e && (dg_mask_cls[*q] & C_DU); q++) {
            digits &= (dg_mask_cls[*q] & C_DIGIT) ? 1 : 0;
        }

        n = (size_t) (q - p);
        if (n >= 11
            && !(digits && (n == 12 || n == 14 || n == 15 || n >= 20)))
        {
            return 0;
        }

        p = q;
    }

    return 1;
}


/*
 * The same, the common case first: on AVX2, windows of 64 bytes 53 apart,
 * each a bitmap of its C_DU bytes in which a run of 11 set bits is found
 * by shifts; any run of 11 of the string lies whole in one window.  Only
 * a string with such a run, or a window that would read past the span,
 * is taken byte by byte.
 */
static inline __attribute__((always_inline)) int
dg_mask_det_clean(const uint8_t *s, const uint8_t *e, const uint8_t *end,
    const int avx2)
{
#if (DG_MASK_X86)
    const uint8_t  *w;

    if (avx2) {
        for (w = s; e - w >= 11 && end - w >= 64; w += 53) {
            if (dg_mask_du64_avx2(w, (size_t) (e - w))) {
                return dg_mask_det_runs(s, e);
            }

            if (e - w <= 64) {
                return 1;
            }
        }

        if (e - w < 11) {
            return 1;
        }
    }
#endif

    return dg_mask_det_runs(s, e);
}


/*
 * A scalar value at q that passes unchanged and ends inside this span: a
 * string without escapes (when fast == 2, detect, only one that holds no
 * candidate, dg_mask_det_clean), a well-formed number followed by a byte,
 * or a literal.  Returns the first byte after it, or NULL to leave it to
 * the state machine.  Strings, the common case, are tested first.
 */
static inline __attribute__((always_inline)) const uint8_t *
dg_mask_fast_scalar(dg_mask_blk_t *bk, const uint8_t *q, const uint8_t *end,
    int fast, const int avx2)
{
    const uint8_t  *e;
    uint8_t         c;

    c = *q;

    if (c == '"') {
        e = dg_mask_str_end(bk, q + 1, end, avx2);
        if (e == end || *e != '"') {
            return NULL;
        }
        if (fast == 2 && !dg_mask_det_clean(q + 1, e, end, avx2)) {
            return NULL;
        }
        return e + 1;
    }

    if (c == '-' || (dg_mask_cls[c] & C_DIGIT)) {
        return dg_mask_fast_number(q, end);
    }

    switch (c) {
    case 't':
        return (end - q >= 4 && memcmp(q, "true", 4) == 0) ? q + 4 : NULL;

    case 'f':
        return (end - q >= 5 && memcmp(q, "false", 5) == 0) ? q + 5 : NULL;

    case 'n':
        return (end - q >= 4 && memcmp(q, "null", 4) == 0) ? q + 4 : NULL;
    }

    return NULL;
}


/*
 * An array of plain scalars at q that passes unchanged and ends inside
 * this span: what the state machine would do with it when nothing in it
 * can be selected, masked, dropped or scanned (DG_MM_PASS: a scalar
 * element has no key, a path cannot end in "[]", and the key of the array
 * selected nothing).  Returns the first byte after the ']', or NULL to
 * leave it to the state machine (a container inside, an escape, the span
 * end, anything malformed: the state machine finds the same error).  The
 * caller checked that the array fits under the depth limit.
 */
static inline __attribute__((always_inline)) const uint8_t *
dg_mask_fast_array(dg_mask_blk_t *bk, const uint8_t *q, const uint8_t *end,
    const int avx2)
{
    const uint8_t  *p;

    p = q + 1;

    while (p < end && (dg_mask_cls[*p] & C_WS)) {
        p++;
    }

    if (p == end) {
        return NULL;
    }

    if (*p == ']') {
        return p + 1;
    }

    for ( ;; ) {
        /* p is at an element */
        p = dg_mask_fast_scalar(bk, p, end, 1, avx2);
        if (p == NULL) {
            return NULL;
        }

        while (p < end && (dg_mask_cls[*p] & C_WS)) {
            p++;
        }

        if (p == end) {
            return NULL;
        }

        if (*p == ']') {
            return p + 1;
        }

        if (*p != ',') {
            return NULL;
        }

        do {
            p++;
        } while (p < end && (dg_mask_cls[*p] & C_WS));

        if (p == end) {
            return NULL;
        }
    }
}


static inline int dg_mask_next_record(dg_mask_t *m, const uint8_t *q);


/* a member prefix parsed in one go */
typedef struct {
    const uint8_t              *k;          /* key */
    const uint8_t              *q;          /* first byte of the value */
    int32_t                     f;          /* field selected, or -1 */
    int32_t                     kn;         /* trie node of the key */
} dg_mask_pre_t;


/*
 * A selected string or number at q, ending before v in this span (v - q
 * within max_value; for a number, a byte after it): counted and masked
 * into the output in place, or passed when clear.  Returns 0, 1 to leave
 * the value to the general way, or an error.
 */
static inline __attribute__((always_inline)) int
dg_mask_take_selected(dg_mask_t *m, const dg_mask_spec_t *act, int32_t f,
    const uint8_t *q, const uint8_t *v, const uint8_t *end, const int avx2)
{
    int  rc;

    m->stats.field_hits[f]++;

    if (act->method == DG_MASK_CLEAR) {
        return 0;
    }

#if (DG_MASK_X86)
    if (avx2) {
        rc = dg_mask_flush_os_avx2(m, q, end);
    } else
#endif
    rc = dg_mask_flush_os(m, q);
    if (rc == 0) {
        /* the value and the byte after it are in the span: it may be read
         * in blocks up to end */
        if (*q == '"') {
            rc = dg_mask_apply_span(&m->out, act, q + 1, v - q - 2, end,
                                    m->hash_key, m->hash_key_len);
        } else {
            rc = dg_mask_apply_span(&m->out, act, q, v - q, end,
                                    m->hash_key, m->hash_key_len);
        }
    }
    m->os = v;

    return rc;
}


/* what dg_mask_members() may take of an unselected scalar member */
#define DG_MM_NONE      0       /* nothing (no output by reference) */
#define DG_MM_PASS      1       /* passes unchanged */
#define DG_MM_DETECT    2       /* passes unless a string (detect) */
#define DG_MM_DROP      3       /* dropped (allow-list) */


/*
 * The member loop, see dg_mask_members(); one copy for AVX2 (strings
 * ended with the block of dg_mask_str_end()), one for other CPUs.
 */
static inline __attribute__((always_inline)) int
dg_mask_members_body(dg_mask_t *m, dg_mask_frame_t *fr, const uint8_t **pp,
    const uint8_t *end, dg_mask_pre_t *pre, int mode, const int avx2)
{
    const dg_mask_rules_t  *r;
    const dg_mask_spec_t   *act;
    const uint8_t          *p, *q, *k, *e, *v;
    dg_mask_blk_t           bk;
    dg_mask_memo_t         *mo, *last;
    size_t                  maxv, holdmax;
    uint64_t                unl;        /* unselected scalars passed */
    uint32_t                w4;
    int32_t                 node, f, kn;
    unsigned                comma, emitted, listed, strip, slow;
    int                     ret, rc;

    r = m->rules;
    p = *pp;
    maxv = m->max_value;
    holdmax = m->holdmax;
    node = fr->node;
    comma = m->hcomma;
    emitted = (fr->flags & DG_FR_EMITTED) ? 1 : 0;
    listed = (fr->flags & DG_FR_LISTED) ? 1 : 0;
    unl = 0;
    rc = 0;
    k = NULL;
    q = NULL;
    f = -1;
    kn = -1;
    bk = m->blk;
    last = m->memo_last;

    /* a leading comma to strip: the member is left to the general way */
    strip = comma && !emitted;

    for ( ;; ) {
#if (DG_MASK_X86)
        if (avx2 && mode == DG_MM_PASS && !strip && last != NULL) {
            /*
             * The common case in a run of records, kept short: the key
             * that followed the last one last time, selecting nothing,
             * with a plain string or number after it and no whitespace.
             * Anything else is left to the way below.
             */
            while ((mo = last->next) != NULL) {
                q = p + comma;

                if (end - q <= DG_MASK_MEMO_TOK || mo->node != node
                    || (dg_mask_memo_cmp(q, mo->tok) & mo->mask) != mo->mask)
                {
                    break;
                }

                v = q + mo->len;

                if (mo->f >= 0) {
                    /* a selected member: masked below */
                    if (dg_mask_cls[*v] & C_WS) {
                        break;
                    }

                    k = q + 1;
                    e = v - 2;
                    f = mo->f;
                    kn = mo->kn;
                    q = v;
                    last = mo;
                    act = &m->actions[f];

                    if (*v != '"' || act->method == DG_MASK_DROP) {
                        goto found;
                    }

                    /* a plain string: masked here, without leaving the
                     * loop; anything else as found below */
                    e = dg_mask_str_end(&bk, v + 1, end, 1);
                    if (e == end || *e != '"'
                        || (size_t) (e + 1 - v) > maxv)
                    {
                        e = v - 2;
                        goto found;
                    }

                    v = e + 1;
                    rc = dg_mask_take_selected(m, act, f, q, v, end, avx2);
                    emitted = 1;

                    if (rc != 0) {
                        ret = 1;
                        goto done;
                    }

                    if (v == end || *v != ',') {
                        goto taken;
                    }

                    p = v;
                    comma = 1;
                    continue;
                }

                if (*v == '"') {
                    e = dg_mask_str_end(&bk, v + 1, end, 1);
                    if (e == end || *e != '"') {
                        break;
                    }
                    v = e + 1;

                } else if (*v == '-' || (dg_mask_cls[*v] & C_DIGIT)) {
                    v = dg_mask_fast_number(v, end);
                    if (v == NULL) {
                        break;
                    }

                } else if (end - v > 5 && memcmp(v, "true", 4) == 0) {
                    v += 4;

                } else if (end - v > 5 && memcmp(v, "false", 5) == 0) {
                    v += 5;

                } else if (end - v > 5 && memcmp(v, "null", 4) == 0) {
                    v += 4;

                } else {
                    break;
                }

                last = mo;
                unl++;
                emitted = 1;

                if (v == end || *v != ',') {
                    goto taken;
                }

                p = v;
                comma = 1;
            }
        }
#endif

        /* separators: the compact case (no whitespace) tested first */
        q = p + comma;
        slow = 0;
        if (q == end || *q != '"') {
            while (q < end && (dg_mask_cls[*q] & C_WS)) {
                q++;
            }

            if (q == end || *q != '"') {
                ret = 2;
                break;
            }

            slow = 1;
        }

        k = q + 1;

#if (DG_MASK_X86)
        if (avx2 && end - q > DG_MASK_MEMO_TOK) {
            /* a key seen before: "key": compared whole, with a byte
             * after it that is not whitespace (the compact case below) */
            mo = last ? last->next : NULL;

            if (mo == NULL || !dg_mask_memo_hit(mo, q, node)) {
                /* not the key that followed the last one last time:
                 * its set */
                memcpy(&w4, q, 4);
                mo = m->memo[dg_mask_memo_slot(w4)];

                if (!dg_mask_memo_hit(mo, q, node)
                    && !dg_mask_memo_hit(++mo, q, node))
                {
                    mo = NULL;

                } else if (last) {
                    last->next = mo;
                }
            }

            if (mo) {
                last = mo;
                e = q + mo->len - 2;
                f = mo->f;
                kn = mo->kn;
                q += mo->len;

                if (slow && (size_t) (q - p) > holdmax) {
                    ret = 2;
                    break;
                }

                goto found;
            }
        }
#endif

        e = dg_mask_str_end(&bk, k, end, avx2);

        if (e == end || *e != '"' || (size_t) (e - k) > maxv) {
            ret = 2;
            break;
        }

        if (end - e > 2 && e[1] == ':' && !(dg_mask_cls[e[2]] & C_WS)) {
            /* "key":value */
            q = e + 2;

        } else {
            q = e + 1;
            while (q < end && (dg_mask_cls[*q] & C_WS)) {
                q++;
            }

            if (q == end || *q != ':') {
                ret = 2;
                break;
            }

            q++;
            while (q < end && (dg_mask_cls[*q] & C_WS)) {
                q++;
            }

            if (q == end) {
                ret = 2;
                break;
            }

            slow = 1;
        }

        /* without whitespace the prefix is within maxv + 4 < holdmax */
        if (slow && (size_t) (q - p) > holdmax) {
            ret = 2;
            break;
        }

        f = dg_mask_lookup(r, node, k, e - k, &kn);

#if (DG_MASK_X86)
        if (avx2 && q - k + 1 < DG_MASK_MEMO_TOK && q[-1] == ':'
            && q[-2] == '"' && end - (k - 1) > DG_MASK_MEMO_TOK)
        {
            /* remember a compact "key": token, bytes after it included
             * (the mask leaves them out of the compare) */
            memcpy(&w4, k - 1, 4);
            w4 = dg_mask_memo_slot(w4);
            mo = &m->memo[w4][m->memo_old[w4]];
            m->memo_old[w4] ^= 1;
            memcpy(mo->tok, k - 1, DG_MASK_MEMO_TOK);
            mo->len = (uint32_t) (q - k + 1);
            mo->mask = (1u << mo->len) - 1;
            mo->node = node;
            mo->f = f;
            mo->kn = kn;
            mo->next = NULL;
            if (last) {
                last->next = mo;
            }
            last = mo;

        } else {
            last = NULL;
        }

    found:
#endif

        /* from here on k, q, f and kn stay as they are until the member
         * is taken: *pre is written from them when one is left (ret 1) */
        ret = 1;

        if (mode == DG_MM_NONE || strip) {
            /* no output by reference, or a leading comma to strip: the
             * general way */
            break;
        }

        if (f < 0) {
            if (mode == DG_MM_DROP) {
                /* allow-list: an unlisted scalar member is dropped (the
                 * comma before it goes too; see the strip above) */
                if ((v = dg_mask_fast_scalar(&bk, q, end, 1, avx2)) == NULL) {
                    break;
                }
                rc = dg_mask_flush_os(m, p);
                m->os = v;
                m->stats.dropped++;
                if (rc != 0) {
                    break;
                }

            } else {
                v = dg_mask_fast_scalar(&bk, q, end,
                                        mode == DG_MM_DETECT ? 2 : 1, avx2);
                if (v != NULL) {
                    unl++;

                } else if (mode != DG_MM_PASS || *q != '['
                           || m->depth >= m->max_depth
                           || (v = dg_mask_fast_array(&bk, q, end, avx2))
                              == NULL)
                {
                    break;
                }

                emitted = 1;
            }

        } else {
            act = &m->actions[f];

            if (act->method == DG_MASK_DROP
                || (*q != '"' && *q != '-' && !(dg_mask_cls[*q] & C_DIGIT))
                || (v = dg_mask_fast_scalar(&bk, q, end, 1, avx2)) == NULL
                || (size_t) (v - q) > maxv)
            {
                break;
            }

            rc = dg_mask_take_selected(m, act, f, q, v, end, avx2);
            emitted = 1;

            if (rc != 0) {
                break;
            }
        }

#if (DG_MASK_X86)
    taken:
#endif

        p = v;
        if (p == end || *p != ',') {
            while (p < end && (dg_mask_cls[*p] & C_WS)) {
                p++;
            }

            if (p == end || *p != ',') {
                if (mode == DG_MM_PASS && end - p >= 4 && p[0] == '}'
                    && p[1] == ',' && p[2] == '{' && p[3] == '"'
                    && dg_mask_next_record(m, p + 1))
                {
                    /* the next record of the array: the "},{" step of
                     * dg_mask_run_span() without leaving the loop; the
                     * frame is the same slot, pushed anew */
                    p += 3;
                    node = fr->node;
                    listed = (fr->flags & DG_FR_LISTED) ? 1 : 0;
                    emitted = 0;
                    comma = 0;
                    strip = 0;
                    continue;
                }

                ret = 0;
                break;
            }
        }

        comma = 1;
        strip = !emitted;
    }

#if (DG_MASK_X86)
done:
#endif

    if (ret == 1) {
        pre->k = k;
        pre->q = q;
        pre->f = f;
        pre->kn = kn;
    }

    if (!listed) {
        m->stats.unlisted += unl;
    }
    if (emitted) {
        fr->flags |= DG_FR_EMITTED;
    }
    m->hcomma = (uint8_t) comma;
    m->blk = bk;
    m->memo_last = last;
    *pp = p;

    return rc ? rc : ret;
}


/*
 * Members of an object walked normally, from *pp at the ',' (m->hcomma)
 * or the opening quote of a member's key.  Whole members that are plain
 * and in this span are taken here, with the effects of the general way
 * (dg_mask_decide, dg_mask_member_emit, masking in place,
 * dg_mask_value_done): unselected scalars that pass unchanged, selected
 * strings and numbers (masked or clear).  Returns 0 when the last member
 * taken is followed by something else than ',' (*pp there: go on after a
 * value), 1 when the member at *pp has its prefix (separators, key, ':')
 * in this span, parsed in *pre, but is left to the general way, 2 when
 * its prefix is not whole here (hold it byte by byte), or an error.
 */
#if (DG_MASK_X86)

__attribute__((target("avx2")))
static int
dg_mask_members_avx2(dg_mask_t *m, dg_mask_frame_t *fr, const uint8_t **pp,
    const uint8_t *end, dg_mask_pre_t *pre, int mode)
{
    return dg_mask_members_body(m, fr, pp, end, pre, mode, 1);
}


/* the common mode (masking only) without the tests of the others */
__attribute__((target("avx2")))
static int
dg_mask_members_avx2_pass(dg_mask_t *m, dg_mask_frame_t *fr,
    const uint8_t **pp, const uint8_t *end, dg_mask_pre_t *pre)
{
    return dg_mask_members_body(m, fr, pp, end, pre, DG_MM_PASS, 1);
}

#endif


static int
dg_mask_members(dg_mask_t *m, dg_mask_frame_t *fr, const uint8_t **pp,
    const uint8_t *end, dg_mask_pre_t *pre)
{
    int  mode;

    /* output by reference must be on: members are passed through os */
    if (m->os == NULL) {
        mode = DG_MM_NONE;

    } else if (fr->flags & DG_FR_LISTED) {
        mode = DG_MM_PASS;

    } else if (m->flags & DG_MASK_UNLISTED_DROP) {
        mode = DG_MM_DROP;

    } else if (m->flags & DG_MASK_DETECT) {
        mode = DG_MM_DETECT;

    } else {
        mode = DG_MM_PASS;
    }

#if (DG_MASK_X86)
    if (dg_mask_avx2) {
        if (mode == DG_MM_PASS) {
            return dg_mask_members_avx2_pass(m, fr, pp, end, pre);
        }
        return dg_mask_members_avx2(m, fr, pp, end, pre, mode);
    }
#endif

    return dg_mask_members_body(m, fr, pp, end, pre, mode, 0);
}


/* the closing quote of a held key is at q */
static inline __attribute__((always_inline)) void
dg_mask_key_end(dg_mask_t *m, const uint8_t *q)
{
    const uint8_t  *k;
    size_t          len;

    if (m->hlen) {
        /* the hold straddles spans: make the key contiguous */
        memcpy(m->hbuf + m->hlen, m->hs, q - m->hs);
        m->hlen += q - m->hs;
        m->hs = q;
        m->os = q;
        k = m->hbuf + m->key_off;
        len = m->hlen - m->key_off;

    } else {
        k = m->hs + m->key_off;
        len = q - k;
    }

    if (m->kesc) {
        len = dg_mask_key_decode(k, len, m->kbuf);
        k = m->kbuf;
    }

    m->kfield = dg_mask_lookup(m->rules, m->frames[m->depth - 1].node, k,
                               len, &m->knode);
}


/*
 * A member (or an array element walked in allow-list mode) is kept: its
 * held prefix joins the output.  plen: the held bytes from the comma up to
 * the key's opening quote (or the element's first byte).  When nothing was
 * emitted before it in its container, the comma and the whitespace after
 * it are stripped, so dropping the first members leaves no blank line.
 */
static inline __attribute__((always_inline)) int
dg_mask_member_emit(dg_mask_t *m, size_t plen)
{
    dg_mask_frame_t  *fr;
    size_t            strip, s;
    int               rc;

    fr = &m->frames[m->depth - 1];
    strip = (m->hcomma && !(fr->flags & DG_FR_EMITTED)) ? plen : 0;
    fr->flags |= DG_FR_EMITTED;
    m->hold = 0;

    if (m->hlen) {
        /* the prefix straddles spans: hbuf, then this span from hs */
        s = strip < m->hlen ? strip : m->hlen;
        rc = dg_mask_flush_os(m, m->hs);
        if (rc == 0) {
            rc = dg_mask_ref(m, m->hbuf + s, m->hlen - s);
        }
        m->hlen = 0;
        m->os = m->hs + (strip - s);
        return rc;
    }

    if (strip) {
        rc = dg_mask_flush_os(m, m->hs);
        m->os = m->hs + strip;
        return rc;
    }

    return 0;
}


static int
dg_mask_member_drop(dg_mask_t *m)
{
    int  rc;

    rc = dg_mask_flush_os(m, m->hs);
    m->hold = 0;
    m->hlen = 0;
    m->skip = 1;
    m->skip_depth = m->depth;
    m->stats.dropped++;

    return rc;
}


/* the first byte c of a member's value decides the member */
static inline __attribute__((always_inline)) int
dg_mask_decide(dg_mask_t *m, uint8_t c)
{
    const dg_mask_spec_t  *act;
    dg_mask_frame_t       *fr;
    int32_t                f;
    int                    listed;

    fr = &m->frames[m->depth - 1];
    listed = (fr->flags & DG_FR_LISTED) ? 1 : 0;
    f = m->kfield;
    m->vnode = m->knode;

    if (f >= 0) {
        m->stats.field_hits[f]++;
        act = &m->actions[f];

        if (act->method == DG_MASK_DROP) {
            return dg_mask_member_drop(m);
        }

        m->vlisted = 1;

        if (act->method != DG_MASK_CLEAR) {
            m->mask = 1;
            m->mask_depth = m->depth;
            m->mspec = *act;
        }

        return dg_mask_member_emit(m, m->key_off - 1);
    }

    m->vlisted = listed;

    if (!listed && c != '{' && c != '[') {
        if (m->flags & DG_MASK_UNLISTED_DROP) {
            return dg_mask_member_drop(m);
        }
        m->stats.unlisted++;
    }

    return dg_mask_member_emit(m, m->key_off - 1);
}


/*
 * Allow-list mode, an element of an array walked normally (not listed):
 * its first byte c at p decides it.  A scalar is dropped with the comma
 * before it (held from the comma, like a member prefix); a container is
 * kept and walked.
 */
static int
dg_mask_elem_decide(dg_mask_t *m, uint8_t c, const uint8_t *p)
{
    dg_mask_frame_t  *fr;

    if (c != '{' && c != '[') {
        return dg_mask_member_drop(m);
    }

    fr = &m->frames[m->depth - 1];
    m->vnode = fr->node >= 0 ? m->rules->nodes[fr->node].arr : -1;
    m->vlisted = 0;

    return dg_mask_member_emit(m, m->hlen + (size_t) (p - m->hs));
}


/* a value of the innermost array starts: its path node and listing */
static inline __attribute__((always_inline)) void
dg_mask_elem_start(dg_mask_t *m)
{
    dg_mask_frame_t  *fr;

    fr = &m->frames[m->depth - 1];
    m->vnode = fr->node >= 0 ? m->rules->nodes[fr->node].arr : -1;
    m->vlisted = (fr->flags & DG_FR_LISTED) ? 1 : 0;
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

    } else {
        fr->node = m->vnode;
        fr->flags = m->vlisted ? DG_FR_LISTED : 0;
    }
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
    if (m->depth < 2 || m->frames[m->depth - 2].type != '['
        || m->skip || m->mask || m->hold
        || ((m->flags & DG_MASK_UNLISTED_DROP)
            && !(m->frames[m->depth - 2].flags & DG_FR_LISTED)))
    {
        return 0;
    }

    m->depth--;
    dg_mask_value_done(m, q);
    dg_mask_elem_start(m);
    dg_mask_push(m, '{');
    m->esc = 0;

    return 1;
}


static int
dg_mask_put_value(dg_mask_t *m)
{
    return dg_mask_apply(&m->out, &m->mspec, m->hbuf, m->vlen, m->hash_key,
                         m->hash_key_len, 1);
}


/* a masked string: append code point c */
static int
dg_mask_vput(dg_mask_t *m, uint32_t c)
{
    uint8_t  u[4];
    size_t   n;

    n = dg_mask_utf8_put(u, c);
    if (m->vlen + n > m->max_value) {
        return DG_MASK_E_TOOBIG;
    }

    memcpy(m->hbuf + m->vlen, u, n);
    m->vlen += n;
    return 0;
}


/* a masked string: an escape is complete */
static int
dg_mask_mstr_escaped(dg_mask_t *m)
{
    uint32_t  c;

    c = m->ecp;

    if (!m->eu) {
        if (m->hi) {
            return DG_MASK_E_UTF8;
        }
        return dg_mask_vput(m, c);
    }

    if (m->hi) {
        if (c < 0xdc00 || c > 0xdfff) {
            return DG_MASK_E_UTF8;
        }
        c = 0x10000 + ((m->hi - 0xd800) << 10) + (c - 0xdc00);
        m->hi = 0;
        return dg_mask_vput(m, c);
    }

    if (c >= 0xd800 && c <= 0xdbff) {
        m->hi = c;
        return 0;
    }

    if (c >= 0xdc00 && c <= 0xdfff) {
        return DG_MASK_E_UTF8;
    }

    return dg_mask_vput(m, c);
}


/*
 * detect.  Candidates in a string value (escapes decoded):
 * - a maximal run of digits (bounded by anything but a digit, letters
 *   included), with the X or x right after a run of 17 digits: resident
 *   ID, mobile, bank card (dg_mask_detect_digits);
 * - a maximal run of [0-9A-Z] of exactly 18 characters: any kind, USCC
 *   included (dg_mask_detect_kind); it wins over a digit hit inside it.
 * Characters from the start of the earliest live candidate are kept in a
 * window of at most 20 characters: by reference in the span (ws) while
 * they are plain bytes of this span and output by reference is on (os),
 * else copied (wraw).  A hit is replaced by its kind's method; everything
 * else leaves unchanged.
 */

/* drop the first k window characters (already written or passed) */
static void
dg_mask_win_shift(dg_mask_t *m, unsigned k)
{
    unsigned  i, off;

    if (k == 0) {
        return;
    }

    off = m->wr[k];

    if (m->ws) {
        m->ws += off;

    } else {
        memmove(m->wraw, m->wraw + off, m->wr[m->wn] - off);
    }

    for (i = k; i < m->wn; i++) {
        m->wc[i - k] = m->wc[i];
    }

    for (i = k; i <= m->wn; i++) {
        m->wr[i - k] = (uint16_t) (m->wr[i] - off);
    }

    m->wn = (uint8_t) (m->wn - k);
    m->u0 = (uint8_t) (m->u0 >= k ? m->u0 - k : 0);
    m->d0 = (uint8_t) (m->d0 >= k ? m->d0 - k : 0);
}


/* leave the window's raw bytes in wraw (span end, or an escape begins) */
static int
dg_mask_win_carry(dg_mask_t *m)
{
    int  rc;

    if (m->wn == 0 || m->ws == NULL) {
        return 0;
    }

    rc = dg_mask_flush_os(m, m->ws);
    memcpy(m->wraw, m->ws, m->wr[m->wn]);
    m->ws = NULL;
    return rc;
}


/* write the pending hit, dropping the window up to its end */
static int
dg_mask_win_hit(dg_mask_t *m)
{
    unsigned  h0, he;
    int       kind, rc;

    kind = m->hkind;
    h0 = m->h0;
    he = h0 + m->hl;
    m->hkind = -1;
    m->stats.detect[kind]++;

    if (m->ws) {
        rc = dg_mask_flush_os(m, m->ws + m->wr[h0]);
        m->os = m->ws + m->wr[he];

    } else {
        rc = dg_mask_ref(m, m->wraw, m->wr[h0]);
    }

    if (rc == 0) {
        rc = dg_mask_apply(&m->out, &m->detect[kind], m->wc + h0, m->hl,
                           m->hash_key, m->hash_key_len, 0);
    }

    dg_mask_win_shift(m, he);
    return rc;
}


/*
 * One string character c (an ASCII character or 0x80 for anything else)
 * ending at 'after'.  Its raw bytes are r[0..rl) (an escape), or with r
 * NULL the single plain byte before 'after'.  end: the string ended (no
 * character, nothing appended).
 */
static int
dg_mask_det_char(dg_mask_t *m, uint8_t c, const uint8_t *r, size_t rl,
    const uint8_t *after, int end)
{
    unsigned  i, s, cl, dig, up;
    int       kind, rc;

    dig = (c >= '0' && c <= '9');
    up = dig || (c >= 'A' && c <= 'Z');

    if (m->wn == 0) {
        if (!up || end) {
            /* plain output; it ends any (long) run */
            m->ulong = 0;
            m->dlong = 0;
            if (r != NULL) {
                rc = dg_mask_ref(m, r, rl);
                m->os = after;
                return rc;
            }
            return 0;
        }

        m->wr[0] = 0;
        m->ws = (r == NULL && m->os != NULL) ? after - 1 : NULL;
        if (m->ws == NULL) {
            rc = dg_mask_flush_os(m, r == NULL ? after - 1 : after);
            if (rc != 0) {
                return rc;
            }
        }
    }

    i = m->wn;

    if (!end) {
        m->wc[i] = c;
        if (m->ws) {
            m->wr[i + 1] = (uint16_t) (after - m->ws);

        } else {
            if (r == NULL) {
                r = after - 1;
                rl = 1;
            }
            memcpy(m->wraw + m->wr[i], r, rl);
            m->wr[i + 1] = (uint16_t) (m->wr[i] + rl);
        }
        m->wn++;
    }

    /* digit run */
    if (dig && !end) {
        if (!m->dlong) {
            if (m->dlen == 0) {
                m->d0 = (uint8_t) i;
            }
            if (++m->dlen > 19) {
                m->dlong = 1;
                m->dlen = 0;
            }
        }

    } else {
        if (m->dlen) {
            cl = m->dlen;
            if (cl == 17 && !end && (c == 'X' || c == 'x')) {
                cl = 18;
            }
            kind = dg_mask_detect_digits(m->wc + m->d0, cl);
            if (kind >= 0) {
                m->hkind = (int8_t) kind;
                m->h0 = m->d0;
                m->hl = (uint8_t) cl;
            }
            m->dlen = 0;
        }
        m->dlong = 0;
    }

    /* [0-9A-Z] run */
    if (up && !end) {
        if (!m->ulong) {
            if (m->ulen == 0) {
                m->u0 = (uint8_t) i;
            }
            if (++m->ulen > 18) {
                m->ulong = 1;
                m->ulen = 0;
            }
        }

    } else {
        if (m->ulen == 18) {
            kind = dg_mask_detect_kind(m->wc + m->u0, 18);
            if (kind >= 0) {
                m->hkind = (int8_t) kind;
                m->h0 = m->u0;
                m->hl = 18;
            }
        }
        m->ulen = 0;
        m->ulong = 0;
    }

    /* a hit is decided once no [0-9A-Z] run that could contain it lives */
    if (m->hkind >= 0 && m->ulen == 0) {
        rc = dg_mask_win_hit(m);
        if (rc != 0) {
            return rc;
        }
    }

    /* keep the window from the earliest live candidate */
    s = m->wn;
    if (m->ulen && m->u0 < s) {
        s = m->u0;
    }
    if (m->dlen && m->d0 < s) {
        s = m->d0;
    }
    if (m->hkind >= 0 && m->h0 < s) {
        s = m->h0;
    }

    rc = 0;

    if (s) {
        if (m->ws == NULL) {
            rc = dg_mask_ref(m, m->wraw, m->wr[s]);
        }
        dg_mask_win_shift(m, s);
    }

    if (m->wn == 0 && m->ws == NULL) {
        m->os = after;
    }

    return rc;
}


/* a string scanned by detect: returns 1 at its end, 0 at the span end */
static int
dg_mask_dstr(dg_mask_t *m, const uint8_t *p, const uint8_t *end,
    const uint8_t **pp)
{
    uint8_t  c, k;
    int      r, rc;

    while (p < end) {
        c = *p;

        if (m->esc) {
            r = dg_mask_esc_byte(m, c);
            if (r < 0) {
                return DG_MASK_E_SYNTAX;
            }
            m->escraw[m->escrawlen++] = c;
            p++;

            if (r == 0) {
                continue;
            }

            rc = dg_mask_det_char(m, m->ecp < 0x80 ? (uint8_t) m->ecp : 0x80,
                                  m->escraw, m->escrawlen, p, 0);
            if (rc != 0) {
                return rc;
            }
            continue;
        }

        if (m->wn == 0 && !(dg_mask_cls[c] & (C_DU | C_STR))) {
            /* fast forward over what cannot start a candidate; it ends
             * any (long) run */
            m->ulong = 0;
            m->dlong = 0;
            do {
                if (++p == end) {
                    goto out;
                }
            } while (!(dg_mask_cls[*p] & (C_DU | C_STR)));
            c = *p;
        }

        if (m->wn == 0 && (dg_mask_cls[c] & C_DU)) {
            const uint8_t  *q, *lim;

            /* a run of fewer than 11 digits/capitals ended here by a byte
             * that is not an escape holds no hit (the shortest is 11) */
            lim = (end - p > 11) ? p + 11 : end;
            for (q = p + 1; q < lim && (dg_mask_cls[*q] & C_DU); q++) {
                /* void */
            }
            if (q < lim && *q != '\\') {
                p = q;
                continue;
            }
        }

        k = dg_mask_cls[c];

        if (!(k & C_STR)) {
            rc = dg_mask_det_char(m, c < 0x80 ? c : 0x80, NULL, 0, p + 1, 0);
            if (rc != 0) {
                return rc;
            }
            p++;
            continue;
        }

        if (c == '\\') {
            rc = (m->wn != 0) ? dg_mask_win_carry(m) : dg_mask_flush_os(m, p);
            if (rc != 0) {
                return rc;
            }
            m->esc = 1;
            m->escraw[0] = c;
            m->escrawlen = 1;
            p++;
            continue;
        }

        if (c == '"') {
            rc = dg_mask_det_char(m, 0, NULL, 0, p, 1);
            if (rc != 0) {
                return rc;
            }
            *pp = p + 1;
            return 1;
        }

        return DG_MASK_E_SYNTAX;
    }

out:

    /* the span ends inside a candidate: keep it */
    rc = dg_mask_win_carry(m);
    if (rc != 0) {
        return rc;
    }

    *pp = p;
    return 0;
}


static const char  *dg_mask_lits[3] = { "true", "false", "null" };
static const uint8_t dg_mask_litlen[3] = { 4, 5, 4 };


static uint8_t
dg_mask_num_next(uint8_t s, uint8_t c)
{
    int  d;

    d = (c >= '0' && c <= '9');

    switch (s) {
    case N_START:
        return c == '-' ? N_MINUS : c == '0' ? N_ZERO : d ? N_INT : 0;
    case N_MINUS:
        return c == '0' ? N_ZERO : d ? N_INT : 0;
    case N_ZERO:
        return c == '.' ? N_DOT : (c == 'e' || c == 'E') ? N_E : 0;
    case N_INT:
        return d ? N_INT : c == '.' ? N_DOT : (c == 'e' || c == 'E') ? N_E
                                                                      : 0;
    case N_DOT:
        return d ? N_FRAC : 0;
    case N_FRAC:
        return d ? N_FRAC : (c == 'e' || c == 'E') ? N_E : 0;
    case N_E:
        return (c == '+' || c == '-') ? N_ESIGN : d ? N_EXP : 0;
    case N_ESIGN:
    case N_EXP:
        return d ? N_EXP : 0;
    }

    return 0;
}


static int
dg_mask_num_terminal(uint8_t s)
{
    return s == N_ZERO || s == N_INT || s == N_FRAC || s == N_EXP;
}


/* a number ended at q (not consumed) */
static int
dg_mask_num_end(dg_mask_t *m, const uint8_t *q)
{
    int  rc;

    if (!dg_mask_num_terminal(m->num)) {
        return DG_MASK_E_SYNTAX;
    }

    rc = 0;
    if (m->mask) {
        rc = dg_mask_put_value(m);
    }

    dg_mask_value_done(m, q);
    return rc;
}


static int
dg_mask_run_span(dg_mask_t *m, const uint8_t *p, const uint8_t *end)
{
    dg_mask_frame_t  *fr;
    const uint8_t    *q, *lim;
    size_t            room, total;
    uint8_t           c, nx;
    int               r, rc;

    switch (m->state) {
    case S_VALUE:
        goto s_value;
    case S_ARR_FIRST:
        goto s_arr_first;
    case S_OBJ_FIRST:
        goto s_obj_first;
    case S_OBJ_NEXT:
        goto s_obj_next;
    case S_KEY:
        goto s_key;
    case S_COLON:
        goto s_colon;
    case S_AFTER:
        goto s_after;
    case S_END:
        goto s_end;
    case S_STR:
        goto s_str;
    case S_DSTR:
        goto s_dstr;
    case S_MSTR:
        goto s_mstr;
    case S_NUM:
        goto s_num;
    case S_LIT:
        goto s_lit;
    default:
        return DG_MASK_E_STATE;
    }

/* allow-list mode: the elements of the innermost array (walked normally,
 * not inside a listed value) are decided one by one */
#define DG_ELEM_WALK(m)                                                      \
    (((m)->flags & DG_MASK_UNLISTED_DROP) && !(m)->skip && !(m)->mask        \
     && !((m)->frames[(m)->depth - 1].flags & DG_FR_LISTED))

#define DG_SUSPEND(s)                                                        \
    if (p == end) {                                                          \
        m->state = (s);                                                      \
        return 0;                                                            \
    }

s_value:

    DG_SUSPEND(S_VALUE);
    c = *p;

    if (dg_mask_cls[c] & C_WS) {
        if (m->hold && (rc = dg_mask_hold_room(m, p, 1)) != 0) {
            return rc;
        }
        p++;
        goto s_value;
    }

value:

    /* p is at the first byte c of a value */

    if (m->member) {
        rc = (m->member == 2) ? dg_mask_elem_decide(m, c, p)
                              : dg_mask_decide(m, c);
        m->member = 0;
        if (rc != 0) {
            return rc;
        }

    } else if (!m->skip && !m->mask) {
        if (m->depth == 0) {
            m->vnode = 0;
            m->vlisted = 0;

            if ((m->flags & DG_MASK_UNLISTED_DROP) && c != '{' && c != '[')
            {
                /* allow-list mode: a scalar document is listed by no
                 * selector; it becomes null (valid JSON, nothing shown) */
                rc = dg_mask_flush_os(m, p);
                if (rc == 0) {
                    rc = dg_mask_ref(m, (const uint8_t *) "null", 4);
                }
                if (rc != 0) {
                    return rc;
                }
                m->skip = 1;
                m->skip_depth = 0;
                m->stats.dropped++;
            }

        } else {
            dg_mask_elem_start(m);
        }
    }

    switch (c) {

    case '"':
        p++;
        m->esc = 0;
        m->in_key = 0;
        if (m->mask) {
            rc = dg_mask_flush_os(m, p - 1);
            if (rc != 0) {
                return rc;
            }

            /* whole in this span without escapes: mask it in place */
            q = dg_mask_scan(p, end);
            if (q < end && *q == '"' && (size_t) (q - p) <= m->max_value) {
                rc = dg_mask_apply(&m->out, &m->mspec, p, q - p,
                                   m->hash_key, m->hash_key_len, 1);
                if (rc != 0) {
                    return rc;
                }
                p = q + 1;
                goto done;
            }

            m->vlen = 0;
            m->hi = 0;
            goto s_mstr;
        }
        if (!m->skip && (m->flags & DG_MASK_DETECT) && !m->vlisted) {
            m->wn = 0;
            m->ulen = 0;
            m->ulong = 0;
            m->dlen = 0;
            m->dlong = 0;
            m->hkind = -1;
            m->ws = NULL;
            goto s_dstr;
        }
        goto s_str;

    case '{':
    case '[':
        if (m->depth >= m->max_depth) {
            return DG_MASK_E_DEPTH;
        }
        dg_mask_push(m, c);
        p++;
        if (c == '{') {
            goto s_obj_first;
        }
        goto s_arr_first;

    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        m->num = N_START;
        if (m->mask) {
            m->vlen = 0;
            rc = dg_mask_flush_os(m, p);
            if (rc != 0) {
                return rc;
            }
        }
        goto s_num;

    case 't':
    case 'f':
    case 'n':
        m->lit = (c == 't') ? 0 : (c == 'f') ? 1 : 2;
        m->litpos = 0;
        if (m->mask) {
            rc = dg_mask_flush_os(m, p);
            if (rc != 0) {
                return rc;
            }
        }
        goto s_lit;

    default:
        return DG_MASK_E_SYNTAX;
    }

s_arr_first:

    DG_SUSPEND(S_ARR_FIRST);
    c = *p;

    if (dg_mask_cls[c] & C_WS) {
        p++;
        goto s_arr_first;
    }

    if (c == ']') {
        m->depth--;
        p++;
        goto done;
    }

    if (DG_ELEM_WALK(m)) {
        /* allow-list: the first element is decided at once, no comma */
        m->hold = 1;
        m->hs = p;
        m->hlen = 0;
        m->hcomma = 0;
        m->member = 2;
    }

    goto value;

s_obj_first:

    DG_SUSPEND(S_OBJ_FIRST);
    c = *p;

    if (c == '"') {
        m->esc = 0;
        if (!m->skip && !m->mask) {
            m->hcomma = 0;
            goto member;
        }
        m->in_key = 1;
        p++;
        goto s_str;
    }

    if (dg_mask_cls[c] & C_WS) {
        p++;
        goto s_obj_first;
    }

    if (c == '}') {
        m->depth--;
        p++;
        goto done;
    }

    return DG_MASK_E_SYNTAX;

member:

    /*
     * p is at the ',' (hcomma) or the opening quote of a member's key in
     * an object walked normally.  When the whole prefix up to the value is
     * in this span, plain and within the limits, take it in one go;
     * otherwise hold it byte by byte.  Both ways reach the same state.
     */

    {
        dg_mask_pre_t  pre;

        r = dg_mask_members(m, &m->frames[m->depth - 1], &p, end, &pre);

        if (r < 0) {
            return r;
        }

        if (r == 0) {
            if (end - p >= 4 && p[0] == '}' && p[1] == ',' && p[2] == '{'
                && p[3] == '"' && dg_mask_next_record(m, p + 1))
            {
                p += 3;
                m->hcomma = 0;
                goto member;
            }

            goto s_after;
        }

        if (r == 1) {
            m->hold = 1;
            m->hs = p;
            m->hlen = 0;
            m->kesc = 0;
            m->esc = 0;
            m->key_off = pre.k - p;
            m->knode = pre.kn;
            m->kfield = pre.f;
            m->member = 1;
            p = pre.q;
            c = *p;
            goto value;
        }
    }

    m->hold = 1;
    m->hs = p;
    m->hlen = 0;
    m->kesc = 0;
    m->esc = 0;

    if (m->hcomma) {
        p++;
        goto s_obj_next;
    }

    m->key_off = 1;
    p++;
    goto s_key;

s_obj_next:

    DG_SUSPEND(S_OBJ_NEXT);
    c = *p;

    if (m->hold && (rc = dg_mask_hold_room(m, p, 1)) != 0) {
        return rc;
    }

    if (c == '"') {
        p++;
        m->esc = 0;
        if (m->hold) {
            m->key_off = m->hlen + (p - m->hs);
            m->kesc = 0;
            goto s_key;
        }
        m->in_key = 1;
        goto s_str;
    }

    if (dg_mask_cls[c] & C_WS) {
        p++;
        goto s_obj_next;
    }

    return DG_MASK_E_SYNTAX;

s_key:

    DG_SUSPEND(S_KEY);

    total = m->hlen + (p - m->hs);
    room = m->holdmax - total;
    if (m->max_value - (total - m->key_off) < room) {
        room = m->max_value - (total - m->key_off);
    }

    if (m->esc) {
        if (room == 0) {
            return DG_MASK_E_TOOBIG;
        }
        if (dg_mask_esc_byte(m, *p) < 0) {
            return DG_MASK_E_SYNTAX;
        }
        p++;
        goto s_key;
    }

    /* content bytes may take room; the byte after may close the key */
    lim = (size_t) (end - p) > room ? p + room + 1 : end;
    q = dg_mask_scan(p, lim);

    if (q == lim) {
        if (lim == end && (size_t) (end - p) <= room) {
            p = end;
            goto s_key;
        }
        return DG_MASK_E_TOOBIG;
    }

    c = *q;

    if ((size_t) (q - p) == room) {
        /* the byte just past the room: only a closing quote fits */
        if (c == '\\' || (c == '"' && total + room + 1 > m->holdmax)) {
            return DG_MASK_E_TOOBIG;
        }
    }

    if (c == '"') {
        dg_mask_key_end(m, q);
        p = q + 1;
        goto s_colon;
    }

    if (c == '\\') {
        m->esc = 1;
        m->kesc = 1;
        p = q + 1;
        goto s_key;
    }

    return DG_MASK_E_SYNTAX;

s_colon:

    DG_SUSPEND(S_COLON);
    c = *p;

    if (m->hold && (rc = dg_mask_hold_room(m, p, 1)) != 0) {
        return rc;
    }

    if (c == ':') {
        p++;
        m->member = m->hold;
        goto s_value;
    }

    if (dg_mask_cls[c] & C_WS) {
        p++;
        goto s_colon;
    }

    return DG_MASK_E_SYNTAX;

s_after:

    DG_SUSPEND(S_AFTER);
    c = *p;
    fr = &m->frames[m->depth - 1];

    if (c == ',') {
        if (fr->type == '{') {
            if (!m->skip && !m->mask) {
                m->hcomma = 1;
                goto member;
            }
            p++;
            goto s_obj_next;
        }
        if (DG_ELEM_WALK(m)) {
            /* allow-list: hold the comma until the element decides */
            m->hold = 1;
            m->hs = p;
            m->hlen = 0;
            m->hcomma = 1;
            m->member = 2;
        }
        p++;
        goto s_value;
    }

    if ((c == '}' && fr->type == '{') || (c == ']' && fr->type == '[')) {
        m->depth--;
        p++;
        goto done;
    }

    if (dg_mask_cls[c] & C_WS) {
        p++;
        goto s_after;
    }

    return DG_MASK_E_SYNTAX;

s_end:

    DG_SUSPEND(S_END);

    if (!(dg_mask_cls[*p] & C_WS)) {
        return DG_MASK_E_SYNTAX;
    }

    p++;
    goto s_end;

s_str:

    DG_SUSPEND(S_STR);

    if (m->esc) {
        if (dg_mask_esc_byte(m, *p) < 0) {
            return DG_MASK_E_SYNTAX;
        }
        p++;
        goto s_str;
    }

    q = dg_mask_scan(p, end);
    if (q == end) {
        p = end;
        goto s_str;
    }

    c = *q;
    p = q + 1;

    if (c == '"') {
        if (m->in_key) {
            m->in_key = 0;
            goto s_colon;
        }
        goto done;
    }

    if (c == '\\') {
        m->esc = 1;
        goto s_str;
    }

    return DG_MASK_E_SYNTAX;

s_dstr:

    r = dg_mask_dstr(m, p, end, &p);
    if (r < 0) {
        return r;
    }
    if (r == 1) {
        goto done;
    }
    m->state = S_DSTR;
    return 0;

s_mstr:

    DG_SUSPEND(S_MSTR);

    if (m->esc) {
        r = dg_mask_esc_byte(m, *p);
        if (r < 0) {
            return DG_MASK_E_SYNTAX;
        }
        p++;
        if (r == 1 && (rc = dg_mask_mstr_escaped(m)) != 0) {
            return rc;
        }
        goto s_mstr;
    }

    if (m->hi && *p != '\\') {
        return DG_MASK_E_UTF8;
    }

    q = dg_mask_scan(p, end);
    if ((size_t) (q - p) > m->max_value - m->vlen) {
        return DG_MASK_E_TOOBIG;
    }
    memcpy(m->hbuf + m->vlen, p, q - p);
    m->vlen += q - p;

    if (q == end) {
        p = end;
        goto s_mstr;
    }

    c = *q;
    p = q + 1;

    if (c == '"') {
        rc = dg_mask_put_value(m);
        if (rc != 0) {
            return rc;
        }
        goto done;
    }

    if (c == '\\') {
        m->esc = 1;
        goto s_mstr;
    }

    return DG_MASK_E_SYNTAX;

s_num:

    DG_SUSPEND(S_NUM);

    if (!m->mask
        && (m->num == N_INT || m->num == N_FRAC || m->num == N_EXP))
    {
        while (dg_mask_cls[*p] & C_DIGIT) {
            if (++p == end) {
                m->state = S_NUM;
                return 0;
            }
        }
    }

    c = *p;
    nx = dg_mask_num_next(m->num, c);

    if (nx == 0) {
        if (!dg_mask_num_terminal(m->num)) {
            return DG_MASK_E_SYNTAX;
        }
        if (m->mask) {
            rc = dg_mask_put_value(m);
            if (rc != 0) {
                return rc;
            }
        }
        goto done;
    }

    if (m->mask) {
        if (m->vlen >= m->max_value) {
            return DG_MASK_E_TOOBIG;
        }
        m->hbuf[m->vlen++] = c;
    }

    m->num = nx;
    p++;
    goto s_num;

s_lit:

    DG_SUSPEND(S_LIT);

    if (*p != (uint8_t) dg_mask_lits[m->lit][m->litpos]) {
        return DG_MASK_E_SYNTAX;
    }

    p++;
    if (++m->litpos < dg_mask_litlen[m->lit]) {
        goto s_lit;
    }

    if (m->mask) {
        if (m->lit == 2 || m->mspec.method == DG_MASK_NULL) {
            rc = dg_mask_ref(m, (const uint8_t *) "null", 4);
        } else {
            rc = dg_mask_ref(m, (const uint8_t *) "\"***\"", 5);
        }
        if (rc != 0) {
            return rc;
        }
    }

done:

    /* a value ended; p is the first byte after it */
    dg_mask_value_done(m, p);

    if (m->depth) {
        goto s_after;
    }

    goto s_end;

#undef DG_SUSPEND
#undef DG_ELEM_WALK
}


static int dg_mask_feed_span(dg_mask_t *m, const uint8_t *p, size_t n,
    int last);


int
dg_mask_feed(dg_mask_t *m, const uint8_t *p, size_t n, int last,
    dg_mask_emit_pt emit, void *ctx)
{
    if (m == NULL || m->rc != 0 || m->done) {
        return DG_MASK_E_STATE;
    }

    /* the last feed left the output empty */
    m->out.buf = m->wbuf;
    m->out.cap = DG_MASK_WBUF;
    m->out.len = 0;
    m->out.emit = emit;
    m->out.lend = NULL;
    m->out.ctx = ctx;

    return dg_mask_feed_span(m, p, n, last);
}


int
dg_mask_feed_into(dg_mask_t *m, const uint8_t *p, size_t n, int last,
    dg_mask_lend_pt lend, void *ctx)
{
    if (m == NULL || m->rc != 0 || m->done) {
        return DG_MASK_E_STATE;
    }

    if (lend == NULL) {
        m->rc = DG_MASK_E_EMIT;
        return DG_MASK_E_EMIT;
    }

    /* nothing lent yet: the first write asks for memory */
    m->out.buf = m->wbuf;
    m->out.cap = 0;
    m->out.len = 0;
    m->out.emit = NULL;
    m->out.lend = lend;
    m->out.ctx = ctx;

    return dg_mask_feed_span(m, p, n, last);
}


static int
dg_mask_feed_span(dg_mask_t *m, const uint8_t *p, size_t n, int last)
{
    const uint8_t  *end;
    int             rc;

    if (p == NULL) {
        n = 0;
        p = (const uint8_t *) "";
    }

    m->stats.bytes_in += n;

    end = p + n;
    m->os = m->emitting ? p : NULL;
    m->hs = p;
    m->blk.base = NULL;
    m->blk.lo = p;

    rc = dg_mask_run_span(m, p, end);

    if (rc == 0) {
        if (m->hold) {
            /* keep the undecided member prefix */
            rc = dg_mask_flush_os(m, m->hs);
            memcpy(m->hbuf + m->hlen, m->hs, end - m->hs);
            m->hlen += end - m->hs;
            m->emitting = 1;

        } else {
            m->emitting = (m->os != NULL);
            rc = dg_mask_flush_os(m, end);
        }
    }

    if (rc == 0 && last) {
        if (m->state == S_NUM && m->depth == 0
            && dg_mask_num_terminal(m->num))
        {
            rc = dg_mask_num_end(m, end);
            m->state = S_END;
        }
        if (rc == 0 && m->state != S_END) {
            rc = DG_MASK_E_TRUNCATED;
        }
    }

    if (rc == 0) {
        rc = dg_mask_out_flush(&m->out);
    }

    if (rc != 0) {
        m->rc = rc;
        return rc;
    }

    if (last) {
        m->done = 1;
    }

    return DG_MASK_OK;
}
