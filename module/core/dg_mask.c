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
 *   null method); keys inside the value are scanned by detect (whatever
 *   DG_MASK_DETECT says) and otherwise pass unchanged.
 * - Allow-list (DG_MASK_UNLISTED_DROP): an unmatched member goes whole,
 *   key and value (a comma with it), unless its value is an object or
 *   array and its key is a step of a path selector at that place or a
 *   container (dg_mask_rules_compile_ex(), DG_MASK_F_WALK): that one is
 *   kept and walked.  A scalar element of an array walked goes too (with
 *   a comma); objects and arrays there are kept and walked.  Each removal
 *   is counted in dropped.  A scalar document (the whole body is "abc" or
 *   42) becomes null.  Without the flag an unmatched member with a scalar
 *   value is counted in unlisted.  None of this applies inside a listed
 *   (clear) or masked value.
 * - Dropping: when the members (elements) dropped are the first of their
 *   container, the comma before the next one kept goes, and so does the
 *   whitespace after that comma; other whitespace stays.
 * - Detect (DG_MASK_DETECT): strings (object members, array elements, a
 *   top-level string), keys and numbers that are digits alone, outside
 *   classified and listed values, are scanned for candidates (see
 *   dg_det_char(): digits in groups, country codes, full-width digits,
 *   \uXXXX escapes decoded; 18-character [0-9A-Z] runs) that validate
 *   (dg_mask_detect_groups(), dg_mask_detect_kind()); a hit is replaced
 *   by conf->detect[kind] applied to its digits (CLEAR there means the
 *   kind's default: id_card, phone, bank_card, keep(6,4)), separators
 *   kept in place when the result has one character per digit; null/drop
 *   inside a text give "***".  A number that is a hit (digits alone, or
 *   with a fraction of zeros: 13877112345.0, as spreadsheets write them)
 *   becomes a string.
 *   A key that may hold a hit is written by dg_mask_member_emit_kdet()
 *   (scanned whole: it is held anyway) instead of passed by reference.
 *   Memory stays bounded: at most DG_DET_WIN characters are kept, and
 *   DG_DET_NUMBER bytes of a number.
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
#define DG_DET_RES          256     /* a method's result on a hit */

/* window character codes besides '0'-'9', 'A'-'Z' and 'x' */
#define DG_DET_SEP          0x01    /* ' ', '-', U+3000, U+FF0D */
#define DG_DET_OTHER        0x80

#define DG_DET_FW_ZERO      0xff10  /* full-width digits U+FF10-FF19 */
#define DG_DET_FW_HYPHEN    0xff0d
#define DG_DET_IDEO_SPACE   0x3000

/* dg_det_char() flags */
#define DG_DET_REF          0x01    /* its bytes end at 'after' in the span */
#define DG_DET_END          0x02    /* the text ended: no character */


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
#define C_DC        0x20    /* may be a byte of a detect candidate: digit,
                               A-Z, ' ', '-', and the bytes of U+FF10-FF19,
                               U+FF0D and U+3000 (80-99 BC E3 EF) */
#define C_MB        0x40    /* EF, E3: may begin one of those three */
#define C_CHAIN     0x80    /* after a group, may go on with a chain: ' ',
                               '-', EF, E3 (or an escape: '\\') */

static uint8_t  dg_mask_cls[256];
static uint8_t  dg_det_ascii[128];       /* detect character codes */
static uint32_t dg_det_one;     /* bit n: n digits may be a candidate */
static uint32_t dg_det_onex;    /* bit n: n digits and an X may be one */
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
            k |= C_DU | C_DC;
        }
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
            || (c >= 'A' && c <= 'F'))
        {
            k |= C_HEX;
        }
        if (c >= '0' && c <= '9') {
            k |= C_DIGIT;
        }
        if (c == ' ' || c == '-' || (c >= 0x80 && c <= 0x99) || c == 0xbc
            || c == 0xe3 || c == 0xef)
        {
            k |= C_DC;
        }
        if (c == 0xe3 || c == 0xef) {
            k |= C_MB;
        }
        if (c == ' ' || c == '-' || c == '\\' || c == 0xe3 || c == 0xef) {
            k |= C_CHAIN;
        }
        dg_mask_cls[c] = k;

        if (c < 0x80) {
            dg_det_ascii[c] = ((c >= '0' && c <= '9')
                               || (c >= 'A' && c <= 'Z') || c == 'x')
                              ? (uint8_t) c
                              : (c == ' ' || c == '-') ? DG_DET_SEP
                                                       : DG_DET_OTHER;
        }
    }

    for (c = 1; c <= DG_DET_DIGITS; c++) {
        uint8_t  g = (uint8_t) c;

        if (dg_mask_detect_shape(&g, 1)) {
            dg_det_one |= (uint32_t) 1 << c;
        }
        g++;
        if (dg_mask_detect_shape(&g, 1) & (1u << DG_DETECT_ID_NUMBER)) {
            dg_det_onex |= (uint32_t) 1 << c;
        }
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
/* C_DC by high and by low nibble (a bit per range), and 0x0f */
static uint8_t          dg_mask_dc32[3][32] __attribute__((aligned(32)));
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

    /* C_DC: a bit per range of the same high nibble (2x: ' ' '-', 3x:
     * digits, 4x 5x: capitals, 8x 9x: 80-99, Bx: BC, Ex: E3 EF); a byte
     * is in C_DC when its high and low nibble share a bit */
    {
        unsigned  b, h, l, c;

        memset(dg_mask_dc32, 0, sizeof(dg_mask_dc32));
        memset(dg_mask_dc32[2], 0x0f, 32);

        for (c = 0; c < 256; c++) {
            if (!(dg_mask_cls[c] & C_DC)) {
                continue;
            }
            h = c >> 4;
            l = c & 0x0f;
            b = (h == 2) ? 0x01 : (h == 3) ? 0x02 : (h == 4) ? 0x04
                : (h == 5) ? 0x08 : (h == 8) ? 0x10 : (h == 9) ? 0x20
                : (h == 0xb) ? 0x40 : 0x80;
            dg_mask_dc32[0][h] |= b;
            dg_mask_dc32[0][h + 16] |= b;
            dg_mask_dc32[1][l] |= b;
            dg_mask_dc32[1][l + 16] |= b;
        }
    }
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


/* bit i: the byte at s + i may be a byte of a detect candidate (C_DC),
 * for 32 bytes: a bit per high nibble (dg_mask_dc32[0]) and per low
 * nibble (dg_mask_dc32[1]) of each byte, looked up and combined */
static inline __attribute__((target("avx2"))) uint32_t
dg_mask_dc32_avx2(const uint8_t *s)
{
    __m256i  v, lo, hi, nib;

    nib = _mm256_load_si256((const __m256i *) dg_mask_dc32[2]);
    v = _mm256_loadu_si256((const __m256i *) s);
    hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
    lo = _mm256_and_si256(v, nib);
    v = _mm256_and_si256(
        _mm256_shuffle_epi8(
            _mm256_load_si256((const __m256i *) dg_mask_dc32[0]), hi),
        _mm256_shuffle_epi8(
            _mm256_load_si256((const __m256i *) dg_mask_dc32[1]), lo));

    return ~(uint32_t) _mm256_movemask_epi8(
        _mm256_cmpeq_epi8(v, _mm256_setzero_si256()));
}


/* the first len (> 10) of the 64 bytes at s (readable) hold a run of 11
 * bytes of class C_DC */
static inline __attribute__((target("avx2"))) int
dg_mask_dc64_avx2(const uint8_t *s, size_t len)
{
    uint64_t  m;

    m = dg_mask_dc32_avx2(s) | (uint64_t) dg_mask_dc32_avx2(s + 32) << 32;

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


/* fmt: "%s %zu: ..." with the selector as "%.*s" */
static void
dg_mask_err(char *err, size_t errlen, const char *fmt, size_t i,
    const dg_mask_field_t *f, size_t nfields)
{
    if (err && errlen) {
        snprintf(err, errlen, fmt, i < nfields ? "field" : "container",
                 i < nfields ? i : i - nfields,
                 (int) (f->len > 200 ? 200 : f->len),
                 f->selector ? f->selector : "");
    }
}


dg_mask_rules_t *
dg_mask_rules_compile(const dg_mask_field_t *fields, size_t nfields,
    unsigned flags, char *err, size_t errlen)
{
    return dg_mask_rules_compile_ex(fields, nfields, NULL, 0, flags, err,
                                    errlen);
}


/*
 * Selectors i < nfields are fields (index i); the others are containers
 * (DG_MASK_F_WALK): a key-anywhere one is an entry of the key table that
 * selects no field, a path one is path-trie nodes without a field.
 */
dg_mask_rules_t *
dg_mask_rules_compile_ex(const dg_mask_field_t *fields, size_t nfields,
    const dg_mask_field_t *walk, size_t nwalk, unsigned flags, char *err,
    size_t errlen)
{
    dg_mask_rules_t        *r;
    const dg_mask_field_t  *sel;
    const uint8_t          *s, *end, *k;
    dg_mask_any_t          *a;
    size_t                  i, total, nodecap, nany, j, len, nsel;
    int32_t                 node, c, fi;
    uint32_t                h;
    int                     path;

    dg_mask_cls_init();
    dg_mask_scan_init();

    if (err && errlen) {
        err[0] = '\0';
    }

    if ((nfields && fields == NULL) || (nwalk && walk == NULL)) {
        if (err && errlen) {
            snprintf(err, errlen, "no fields");
        }
        return NULL;
    }

    nsel = nfields + nwalk;

#define dg_mask_sel(i)  ((i) < nfields ? &fields[i] : &walk[(i) - nfields])

    total = 0;
    for (i = 0; i < nsel; i++) {
        sel = dg_mask_sel(i);
        if (sel->selector == NULL || sel->len == 0 || sel->len > 65535) {
            dg_mask_err(err, errlen, "%s %zu: empty or too long "
                        "selector \"%.*s\"", i, sel, nfields);
            return NULL;
        }
        total += sel->len;
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

    for (nany = 1; nany < 2 * nsel + 2; nany <<= 1) { /* void */ }
    r->any = calloc(nany, sizeof(dg_mask_any_t));

    if (r->nodes == NULL || r->str == NULL || r->any == NULL) {
        goto nomem;
    }

    r->anymask = nany - 1;
    for (j = 0; j < nany; j++) {
        r->any[j].field = -1;
    }

    (void) dg_mask_node_new(r, nodecap);    /* root */

    for (i = 0; i < nsel; i++) {
        sel = dg_mask_sel(i);
        fi = (i < nfields) ? (int32_t) i : DG_MASK_F_WALK;
        s = (const uint8_t *) sel->selector;
        end = s + sel->len;
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
            dg_mask_err(err, errlen, "%s %zu: empty selector \"%.*s\"",
                        i, sel, nfields);
            goto failed;
        }

        if (!path) {
            len = end - s;
            h = dg_mask_hash(s, len);
            for (j = h & r->anymask; ; j = (j + 1) & r->anymask) {
                a = &r->any[j];
                if (a->field == DG_MASK_F_NONE) {
                    a->hash = h;
                    a->off = (uint32_t) r->strlen;
                    a->len = (uint32_t) len;
                    a->field = fi;
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
                    dg_mask_err(err, errlen, "%s %zu: bad \"[\" in "
                                "selector \"%.*s\"", i, sel, nfields);
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
                    dg_mask_err(err, errlen, "%s %zu: selector \"%.*s\" "
                                "ends in \"[]\" (select the array by its "
                                "key)", i, sel, nfields);
                    goto failed;
                }

            } else {
                for (k = s; k < end && *k != '.' && *k != '['; k++) {
                    if (*k == ']') {
                        dg_mask_err(err, errlen, "%s %zu: bad \"]\" in "
                                    "selector \"%.*s\"", i, sel, nfields);
                        goto failed;
                    }
                }

                if (k == s) {
                    dg_mask_err(err, errlen, "%s %zu: empty name in "
                                "selector \"%.*s\"", i, sel, nfields);
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
                    dg_mask_err(err, errlen, "%s %zu: empty name in "
                                "selector \"%.*s\"", i, sel, nfields);
                    goto failed;
                }
            }
        }

        if (r->nodes[node].field < 0 && fi >= 0) {
            r->nodes[node].field = fi;
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

#undef dg_mask_sel
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

    m->det.out = &m->out;
    m->det.detect = m->detect;
    m->det.hits = m->stats.detect;
    m->det.hash_key = m->hash_key;
    m->det.hash_key_len = m->hash_key_len;

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


/* returns 1 when the escape is complete (code unit in *ecp), 0 when more
 * bytes are needed, -1 on a bad escape */
static inline int
dg_mask_esc_step(uint8_t *esc, uint8_t *eu, uint32_t *ecp, uint8_t c)
{
    if (*esc == 1) {
        *eu = 0;
        *esc = 0;

        switch (c) {
        case '"':
        case '\\':
        case '/':
            *ecp = c;
            return 1;
        case 'b':
            *ecp = '\b';
            return 1;
        case 'f':
            *ecp = '\f';
            return 1;
        case 'n':
            *ecp = '\n';
            return 1;
        case 'r':
            *ecp = '\r';
            return 1;
        case 't':
            *ecp = '\t';
            return 1;
        case 'u':
            *eu = 1;
            *esc = 2;
            *ecp = 0;
            return 0;
        default:
            return -1;
        }
    }

    if (!(dg_mask_cls[c] & C_HEX)) {
        return -1;
    }

    *ecp = (*ecp << 4)
           | (uint32_t) (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);

    if (++*esc == 6) {
        *esc = 0;
        return 1;
    }

    return 0;
}


static int
dg_mask_esc_byte(dg_mask_t *m, uint8_t c)
{
    return dg_mask_esc_step(&m->esc, &m->eu, &m->ecp, c);
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
 * Detect: the groups g[0..ng) of a chain, the last one followed by an X
 * or x when x, end with groups of a candidate's shape.
 */
static int
dg_mask_det_shaped(uint8_t *g, unsigned ng, unsigned x)
{
    unsigned  i, k, hit;

    hit = 0;

    for (i = 0; i < ng && !hit; i++) {
        for (k = 0; k <= x && !hit; k++) {
            g[ng - 1] = (uint8_t) (g[ng - 1] + k);
            hit = dg_mask_detect_shape(g + i, ng - i) != 0;
            g[ng - 1] = (uint8_t) (g[ng - 1] - k);
        }
    }

    return hit;
}


/*
 * Detect: the ASCII run [p, q) of C_DC bytes (the string ends at e), with
 * nd digits and nu digits and capitals, holds nothing dg_det_char() could
 * take for a hit: none of its [0-9A-Z] runs of 18 has a capital, and no
 * groups of its chains (as dg_det_char() forms them) with 11 digits or
 * more have a candidate's shape.
 */
static int
dg_mask_det_run_clean(const uint8_t *p, const uint8_t *q, const uint8_t *e,
    size_t nd, size_t nu)
{
    const uint8_t  *t, *u;
    uint8_t         g[DG_DETECT_GROUPS];
    unsigned        ng, sum, upper;

    if (nu >= DG_DET_URUN) {
        for (t = p; t < q; t = u) {
            upper = 0;
            for (u = t; u < q && (dg_mask_cls[*u] & C_DU); u++) {
                upper |= !(dg_mask_cls[*u] & C_DIGIT);
            }
            if (upper && (size_t) (u - t) == DG_DET_URUN) {
                return 0;
            }
            if (u == t) {
                u++;
            }
        }
    }

    if (nd < DG_DET_SHORT) {
        return 1;
    }

    ng = 0;
    sum = 0;

    for (t = p; t < q; ) {
        if (!(dg_mask_cls[*t] & C_DIGIT)) {
            /* a capital, or a separator that does not join two groups */
            ng = 0;
            sum = 0;
            t++;
            continue;
        }

        for (u = t; u < q && (dg_mask_cls[*u] & C_DIGIT); u++) {
            /* void */
        }

        if ((size_t) (u - t) > DG_DET_DIGITS) {
            ng = 0;
            sum = 0;

        } else {
            if (ng == DG_DETECT_GROUPS) {
                sum -= g[0];
                memmove(g, g + 1, DG_DETECT_GROUPS - 1);
                ng--;
            }
            g[ng++] = (uint8_t) (u - t);
            sum += (unsigned) (u - t);

            /* every shape has 11 digits or more */
            if (sum + 1 >= DG_DET_SHORT
                && dg_mask_det_shaped(g, ng,
                                      u < e && (*u == 'X' || *u == 'x')))
            {
                return 0;
            }
        }

        if (q - u >= 2 && (*u == ' ' || *u == '-')
            && (dg_mask_cls[u[1]] & C_DIGIT))
        {
            /* one separator, then the next group of the chain */
            t = u + 1;
            continue;
        }

        ng = 0;
        sum = 0;
        t = u;
    }

    return 1;
}


/*
 * Detect: the plain string [p, e) holds nothing dg_det_char() could take
 * for a hit, so the state machine would pass it unchanged.  Every hit
 * lies in a run of 11 or more C_DC bytes (the shortest, a mobile, has 11
 * digits); such a run of digits alone is one group, others are looked at
 * closely (dg_mask_det_run_clean()); a run with a byte from 0x80 up (a
 * full-width digit or separator) is left to the state machine.
 */
static int
dg_mask_det_runs(const uint8_t *p, const uint8_t *e)
{
    const uint8_t  *q;
    size_t          n, nd, nu;
    unsigned        k, digits, hi;

    while (p < e) {
        if (!(dg_mask_cls[*p] & C_DC)) {
            p++;
            continue;
        }

        digits = C_DIGIT;
        hi = 0;
        nd = 0;
        nu = 0;
        for (q = p; q < e && ((k = dg_mask_cls[*q]) & C_DC); q++) {
            digits &= k;
            nd += (k & C_DIGIT) != 0;
            nu += (k & C_DU) != 0;
            hi |= *q;
        }

        n = (size_t) (q - p);

        if (n >= DG_DET_SHORT) {
            if (digits) {
                /* one group (an X would be in the run, an x after it) */
                if (n <= DG_DET_DIGITS
                    && ((dg_det_one >> n) & 1
                        || ((dg_det_onex >> n) & 1 && q < e && *q == 'x')))
                {
                    return 0;
                }

            } else if ((hi & 0x80)
                       || !dg_mask_det_run_clean(p, q, e, nd, nu))
            {
                return 0;
            }
        }

        p = q;
    }

    return 1;
}


static uint8_t dg_det_mb_code(const uint8_t *p);


#if (DG_MASK_X86)

/* bits of the 32 bytes at s: digits (*d), ' ' and '-' (*sp), digits and
 * capitals (*u), EF and E3 (*mb) */
static inline __attribute__((target("avx2"))) void
dg_mask_det_bits32_avx2(const uint8_t *s, uint32_t *d, uint32_t *sp,
    uint32_t *u, uint32_t *mb)
{
    __m256i  v, dg, up;

    v = _mm256_loadu_si256((const __m256i *) s);

    dg = _mm256_and_si256(_mm256_cmpgt_epi8(v, _mm256_set1_epi8('0' - 1)),
                          _mm256_cmpgt_epi8(_mm256_set1_epi8('9' + 1), v));
    up = _mm256_and_si256(_mm256_cmpgt_epi8(v, _mm256_set1_epi8('A' - 1)),
                          _mm256_cmpgt_epi8(_mm256_set1_epi8('Z' + 1), v));

    *d = (uint32_t) _mm256_movemask_epi8(dg);
    *u = (uint32_t) _mm256_movemask_epi8(_mm256_or_si256(dg, up));
    *sp = (uint32_t) _mm256_movemask_epi8(_mm256_or_si256(
              _mm256_cmpeq_epi8(v, _mm256_set1_epi8(' ')),
              _mm256_cmpeq_epi8(v, _mm256_set1_epi8('-'))));
    *mb = (uint32_t) _mm256_movemask_epi8(_mm256_or_si256(
              _mm256_cmpeq_epi8(v, _mm256_set1_epi8((char) 0xef)),
              _mm256_cmpeq_epi8(v, _mm256_set1_epi8((char) 0xe3))));
}


/*
 * Detect, a closer look at a string [s, e) in which dg_mask_dc64_avx2()
 * found a run of 11 C_DC bytes, on windows of 64 bytes 41 apart (any
 * candidate, 23 bytes at most in ASCII, lies whole in one).  Bitmaps of
 * each window: digits D, separators S, [0-9A-Z] U; G = D and the
 * separators between two digits: a candidate's digits and separators
 * are in one run of G, with 11 digits or more.  A run of G with 11
 * digits or more and no separator is one group, judged by its length
 * (an ID's X or x after it is assumed); a window with a chain of 11
 * digits or more, a run of 18 in U (a USCC) or a full-width digit or
 * separator is left to dg_mask_det_runs().  Returns 1 when clean.
 */
__attribute__((target("avx2,popcnt,bmi"), noinline))
static int
dg_mask_det_fine_avx2(const uint8_t *s, const uint8_t *e,
    const uint8_t *end)
{
    const uint8_t  *w, *b;
    uint64_t        d, sp, u, mb, g, m, r, lim;
    uint32_t        d0, d1, s0, s1, u0, u1, b0, b1;
    unsigned        i, n;

    for (w = s; ; w += 41) {
        if (end - w < 64) {
            return dg_mask_det_runs(s, e);
        }

        dg_mask_det_bits32_avx2(w, &d0, &s0, &u0, &b0);
        dg_mask_det_bits32_avx2(w + 32, &d1, &s1, &u1, &b1);

        lim = (e - w < 64) ? ((uint64_t) 1 << (e - w)) - 1 : ~(uint64_t) 0;
        d = (d0 | (uint64_t) d1 << 32) & lim;
        sp = (s0 | (uint64_t) s1 << 32) & lim;
        u = (u0 | (uint64_t) u1 << 32) & lim;
        mb = (b0 | (uint64_t) b1 << 32) & lim;

        /* a full-width digit or separator */
        while (mb) {
            b = w + __builtin_ctzll(mb);
            if (e - b >= 3 && dg_det_mb_code(b) != DG_DET_OTHER) {
                return dg_mask_det_runs(s, e);
            }
            mb &= mb - 1;
        }

        /* a run of 18 digits and capitals */
        m = u & u >> 1;
        m &= m >> 2;
        m &= m >> 4;
        m &= m >> 8;
        m &= m >> 1;
        if (m) {
            return dg_mask_det_runs(s, e);
        }

        /* runs of 11 or more in G */
        g = d | (sp & d << 1 & d >> 1);
        m = g & g >> 1;
        m &= m >> 2;
        m &= m >> 4;
        m &= m >> 3;

        while (m) {
            i = (unsigned) __builtin_ctzll(m);
            r = ~(g >> i);
            n = r ? (unsigned) __builtin_ctzll(r) : 64 - i;
            r = (n + i < 64) ? (((uint64_t) 1 << n) - 1) << i
                             : ~(uint64_t) 0 << i;

            if (__builtin_popcountll(d & r) >= DG_DET_SHORT) {
                if (sp & r) {
                    return dg_mask_det_runs(s, e);
                }
                if (n <= DG_DET_DIGITS
                    && ((dg_det_one | dg_det_onex) >> n) & 1)
                {
                    return 0;
                }
            }

            m &= ~r;
        }

        if (e - w <= 64) {
            return 1;
        }
    }
}

#endif


/*
 * The same, the common case first: on AVX2, windows of 64 bytes 53 apart,
 * each a bitmap of its C_DC bytes in which a run of 11 set bits is found
 * by shifts; any run of 11 of the string lies whole in one window.  A
 * string with such a run is looked at closer (dg_mask_det_fine_avx2()),
 * one with a window that would read past the span byte by byte.
 */
static inline __attribute__((always_inline)) int
dg_mask_det_clean(const uint8_t *s, const uint8_t *e, const uint8_t *end,
    const int avx2)
{
#if (DG_MASK_X86)
    const uint8_t  *w;

    if (avx2) {
        for (w = s; e - w >= DG_DET_SHORT && end - w >= 64; w += 53) {
            if (dg_mask_dc64_avx2(w, (size_t) (e - w))) {
                return dg_mask_det_fine_avx2(s, e, end);
            }

            if (e - w <= 64) {
                return 1;
            }
        }

        if (e - w < DG_DET_SHORT) {
            return 1;
        }
    }
#endif

    if (e - s < DG_DET_SHORT) {
        return 1;
    }

    return dg_mask_det_runs(s, e);
}


/*
 * detect: the number [q, e) (well formed) may be a hit: digits alone, as
 * many as one group of a candidate has, with no fraction or one of zeros
 * (13877112345.0).  Returns the count of its digits before any fraction,
 * or 0.
 */
static inline size_t
dg_mask_det_number(const uint8_t *q, const uint8_t *e)
{
    const uint8_t  *t;
    size_t          n;

    if (e - q < DG_DET_SHORT || e - q > DG_DET_NUMBER) {
        return 0;
    }

    for (t = q; t < e && (dg_mask_cls[*t] & C_DIGIT); t++) {
        /* void */
    }

    n = (size_t) (t - q);

    if (t < e) {
        if (*t != '.') {
            return 0;
        }
        for (t++; t < e && *t == '0'; t++) {
            /* void */
        }
        if (t < e) {
            return 0;
        }
    }

    return (n <= DG_DET_DIGITS && (dg_det_one >> n) & 1) ? n : 0;
}


/*
 * A scalar value at q that passes unchanged and ends inside this span: a
 * string without escapes (when fast == 2, detect, only one that holds no
 * candidate, dg_mask_det_clean), a well-formed number followed by a byte
 * (with detect, not one that may be a hit), or a literal.  Returns the
 * first byte after it, or NULL to leave it to the state machine.
 * Strings, the common case, are tested first.
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
        e = dg_mask_fast_number(q, end);
        if (fast == 2 && e != NULL && dg_mask_det_number(q, e) != 0) {
            return NULL;
        }
        return e;
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
static int dg_det_text(dg_mask_out_t *o, const dg_mask_spec_t *detect,
    uint64_t *hits, const uint8_t *hash_key, size_t hash_key_len,
    const uint8_t *s, size_t len, unsigned plain);


/* a member prefix parsed in one go */
typedef struct {
    const uint8_t              *k;          /* key */
    const uint8_t              *e;          /* its closing quote */
    const uint8_t              *q;          /* first byte of the value */
    int32_t                     f;          /* field selected, or -1 */
    int32_t                     kn;         /* trie node of the key */
    unsigned                    kd;         /* detect must scan the key */
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
    unsigned                comma, emitted, listed, strip, slow, kd, kdirty;
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
    e = NULL;
    q = NULL;
    f = -1;
    kn = -1;
    kd = 0;
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
        kd = 0;

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

        /*
         * With detect, a key that may hold a hit is scanned when it is
         * written (the general way), and never remembered: the memo
         * serves listed values too, where keys are not scanned.
         */
        kdirty = (m->flags & DG_MASK_DETECT)
                 && !dg_mask_det_clean(k, e, end, avx2);
        kd = kdirty && !listed;

#if (DG_MASK_X86)
        if (avx2 && !kdirty && q - k + 1 < DG_MASK_MEMO_TOK && q[-1] == ':'
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

        if (mode == DG_MM_NONE || strip || kd) {
            /* no output by reference, a leading comma to strip or a key
             * to scan: the general way */
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
        pre->e = e;
        pre->q = q;
        pre->f = f;
        pre->kn = kn;
        pre->kd = kd;
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

    /* with detect, outside listed values, a key that may hold a hit is
     * scanned when it is written */
    m->key_end = m->key_off + len;
    m->kdet = (m->flags & DG_MASK_DETECT)
              && !(m->frames[m->depth - 1].flags & DG_FR_LISTED)
              && (m->kesc || !dg_mask_det_runs(k, k + len));

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


/* bytes [a, b) of the held member prefix: hbuf, then the span from hs */
static int
dg_mask_hold_put(dg_mask_t *m, size_t a, size_t b)
{
    size_t  n;
    int     rc;

    rc = 0;

    if (a < m->hlen) {
        n = (b < m->hlen ? b : m->hlen) - a;
        rc = dg_mask_ref(m, m->hbuf + a, n);
        a += n;
    }

    if (rc == 0 && a < b) {
        rc = dg_mask_ref(m, m->hs + (a - m->hlen), b - a);
    }

    return rc;
}


/*
 * A member walked normally is kept, its value starting at p, its key to
 * be scanned by detect (m->kdet): as dg_mask_member_emit(), but the
 * prefix is written, the key masked, instead of passed by reference.
 * The key is whole in hbuf when part of the prefix is held there, else
 * in this span.
 */
static __attribute__((noinline)) int
dg_mask_member_emit_kdet(dg_mask_t *m, const uint8_t *p)
{
    dg_mask_frame_t  *fr;
    const uint8_t    *k;
    size_t            strip;
    int               rc;

    m->kdet = 0;
    fr = &m->frames[m->depth - 1];
    strip = (m->hcomma && !(fr->flags & DG_FR_EMITTED)) ? m->key_off - 1
                                                         : 0;
    fr->flags |= DG_FR_EMITTED;
    m->hold = 0;

    k = (m->hlen ? m->hbuf : m->hs) + m->key_off;

    rc = dg_mask_flush_os(m, m->hs);
    if (rc == 0) {
        rc = dg_mask_hold_put(m, strip, m->key_off);
    }
    if (rc == 0) {
        rc = dg_det_text(&m->out, m->detect, m->stats.detect, m->hash_key,
                         m->hash_key_len, k, m->key_end - m->key_off, 0);
    }
    if (rc == 0) {
        rc = dg_mask_hold_put(m, m->key_end,
                              m->hlen + (size_t) (p - m->hs));
    }

    m->hlen = 0;
    m->os = p;

    return rc;
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


/*
 * The first byte c (at p) of a member's value decides the member.  In
 * allow-list mode an unlisted member goes whole, key and value, unless
 * its value is an object or array under a key that a path goes through
 * here or that is listed as a container (DG_MASK_F_WALK): that one is
 * kept and walked.
 */
static inline __attribute__((always_inline)) int
dg_mask_decide(dg_mask_t *m, uint8_t c, const uint8_t *p)
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

        return m->kdet ? dg_mask_member_emit_kdet(m, p)
                       : dg_mask_member_emit(m, m->key_off - 1);
    }

    m->vlisted = listed;

    if (!listed) {
        if (c != '{' && c != '[') {
            if (m->flags & DG_MASK_UNLISTED_DROP) {
                return dg_mask_member_drop(m);
            }
            m->stats.unlisted++;

        } else if ((m->flags & DG_MASK_UNLISTED_DROP) && m->knode < 0
                   && f != DG_MASK_F_WALK)
        {
            return dg_mask_member_drop(m);
        }
    }

    return m->kdet ? dg_mask_member_emit_kdet(m, p)
                   : dg_mask_member_emit(m, m->key_off - 1);
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
 * detect.  The safety net reads a string (escapes decoded, the full-width
 * digits U+FF10-FF19 as digits) as characters and looks for candidates:
 * - digits in groups: a group is a maximal run of digits (bounded by
 *   anything else, letters too: "tel13812345678" holds one); groups with
 *   exactly one separator between two (a space, '-', U+3000 or U+FF0D)
 *   make a chain.  A candidate is one group, or consecutive groups of a
 *   chain in a shape of dg_mask_detect_shape() ("138 7711 2345",
 *   "450103 19900307 1242", cards in fours), with the X or x right after
 *   its last group for an ID, that validates (dg_mask_detect_groups());
 *   the 86 or 0086 before a mobile in one group stays as it is;
 * - a maximal run of [0-9A-Z] of exactly 18 characters (any kind, USCC
 *   included, dg_mask_detect_kind()); it wins over a hit inside it.
 * Of two hits that overlap, the one that starts first wins, and of two
 * that start together, the longer.  Characters from the start of the
 * earliest live candidate are kept in a window of at most DG_DET_WIN
 * characters: by reference in the span (ws) while they are plain bytes
 * of this span and output by reference is on (os), else copied (wraw).
 * A hit is replaced by its kind's method applied to its digits
 * (dg_det_emit()); everything else leaves unchanged.
 *
 * The state is dg_mask_det_t, so that the same code scans string values
 * and keys of a stream and whole texts (dg_det_text()).
 */

/* output: the pending untouched run up to p */
static inline int
dg_det_flush(dg_mask_det_t *d, const uint8_t *p)
{
    const uint8_t  *os;

    os = d->os;
    d->os = NULL;

    if (os == NULL || p <= os) {
        return 0;
    }

    return dg_mask_out_put(d->out, os, p - os);
}


static inline int
dg_det_put(dg_mask_det_t *d, const uint8_t *p, size_t n)
{
    if (n == 0) {
        return 0;
    }

    return dg_mask_out_put(d->out, p, n);
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


/* the character code of a code point read from an escape */
static uint8_t
dg_det_cp(uint32_t cp)
{
    if (cp < 0x80) {
        return dg_det_ascii[cp];
    }

    if (cp >= DG_DET_FW_ZERO && cp <= DG_DET_FW_ZERO + 9) {
        return (uint8_t) ('0' + (cp - DG_DET_FW_ZERO));
    }

    if (cp == DG_DET_FW_HYPHEN || cp == DG_DET_IDEO_SPACE) {
        return DG_DET_SEP;
    }

    return DG_DET_OTHER;
}


/* the character code of the 3 UTF-8 bytes at p (EF or E3 first) */
static uint8_t
dg_det_mb_code(const uint8_t *p)
{
    if (p[0] == 0xef && p[1] == 0xbc) {
        if (p[2] >= 0x90 && p[2] <= 0x99) {
            return (uint8_t) ('0' + (p[2] - 0x90));     /* U+FF10-FF19 */
        }
        if (p[2] == 0x8d) {
            return DG_DET_SEP;                          /* U+FF0D */
        }

    } else if (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80) {
        return DG_DET_SEP;                              /* U+3000 */
    }

    return DG_DET_OTHER;
}


/* the n (< 3) bytes at p begin a character dg_det_mb_code() reads */
static int
dg_det_mb_begins(const uint8_t *p, size_t n)
{
    if (p[0] == 0xef) {
        return n == 1 || p[1] == 0xbc;
    }

    return p[0] == 0xe3 && (n == 1 || p[1] == 0x80);
}


/* byte c goes on with the n (< 3) bytes raw of such a character */
static int
dg_det_mb_next(const uint8_t *raw, size_t n, uint8_t c)
{
    uint8_t  b[3];

    if (n == 1) {
        return c == (raw[0] == 0xef ? 0xbc : 0x80);
    }

    b[0] = raw[0];
    b[1] = raw[1];
    b[2] = c;

    return dg_det_mb_code(b) != DG_DET_OTHER;
}


/* drop the first k window characters (already written or passed) */
static void
dg_det_shift(dg_mask_det_t *d, unsigned k)
{
    unsigned  i, n, off;

    if (k == 0) {
        return;
    }

    off = d->wr[k];

    if (d->ws) {
        d->ws += off;

    } else {
        memmove(d->wraw, d->wraw + off, d->wr[d->wn] - off);
    }

    for (i = k; i < d->wn; i++) {
        d->wc[i - k] = d->wc[i];
    }

    for (i = k; i <= d->wn; i++) {
        d->wr[i - k] = (uint16_t) (d->wr[i] - off);
    }

    d->wn = (uint8_t) (d->wn - k);

    if (d->ulen) {
        if (d->u0 >= k) {
            d->u0 = (uint8_t) (d->u0 - k);

        } else {
            /* a run that overlapped a hit written: no candidate */
            d->ulen = 0;
            d->ulong = 1;
        }
    }

    for (i = 0, n = 0; i < d->ng; i++) {
        if (d->gs[i] >= k) {
            d->gs[n] = (uint8_t) (d->gs[i] - k);
            d->gl[n++] = d->gl[i];
        }
    }
    d->ng = (uint8_t) n;

    if (d->hkind >= 0) {
        d->h0 = (uint8_t) (d->h0 - k);
        d->he = (uint8_t) (d->he - k);
    }
}


/* leave the window's raw bytes in wraw (span end, or an escape begins) */
static int
dg_det_carry(dg_mask_det_t *d)
{
    int  rc;

    if (d->wn == 0 || d->ws == NULL) {
        return 0;
    }

    rc = dg_det_flush(d, d->ws);
    memcpy(d->wraw, d->ws, d->wr[d->wn]);
    d->ws = NULL;
    return rc;
}


/* the raw bytes of window character i */
static inline int
dg_det_put_char(dg_mask_det_t *d, unsigned i)
{
    return dg_det_put(d, (d->ws ? d->ws : d->wraw) + d->wr[i],
                      d->wr[i + 1] - d->wr[i]);
}


/*
 * Write the pending hit, dropping the window up to its end.  The method
 * is applied to the hit's digits (separators left out, ASCII); when its
 * result has as many characters as there are digits (id_card, phone,
 * keep, a 16-digit card), the separators are written back in their
 * places: "138-7711-2345" -> "138-****-2345".
 */
static int
dg_det_emit(dg_mask_det_t *d)
{
    dg_mask_out_t   t;
    uint8_t         dig[DG_DET_SPAN + 1], res[DG_DET_RES];
    unsigned        h0, he, i, j, n, nsep;
    int             kind, rc;

    kind = d->hkind;
    h0 = d->h0;
    he = d->he;
    d->hkind = -1;
    d->hits[kind]++;

    n = 0;
    nsep = 0;
    for (i = h0; i < he; i++) {
        if (d->wc[i] == DG_DET_SEP) {
            nsep++;
        } else {
            dig[n++] = d->wc[i];
        }
    }

    if (d->ws) {
        rc = dg_det_flush(d, d->ws + d->wr[h0]);

    } else {
        rc = dg_det_put(d, d->wraw, d->wr[h0]);
    }

    if (rc == 0 && nsep == 0) {
        rc = dg_mask_apply(d->out, &d->detect[kind], dig, n, d->hash_key,
                           d->hash_key_len, 0);

    } else if (rc == 0) {
        memset(&t, 0, sizeof(t));
        t.buf = res;
        t.cap = sizeof(res);

        rc = dg_mask_apply(&t, &d->detect[kind], dig, n, d->hash_key,
                           d->hash_key_len, 0);

        if (rc == 0 && t.len == n) {
            for (i = h0, j = 0; rc == 0 && i < he; i++) {
                rc = (d->wc[i] == DG_DET_SEP) ? dg_det_put_char(d, i)
                                              : dg_det_put(d, res + j++, 1);
            }

        } else if (rc == 0) {
            rc = dg_det_put(d, res, t.len);
        }
    }

    if (d->ws) {
        d->os = d->ws + d->wr[he];
    }

    dg_det_shift(d, he);
    return rc;
}


/*
 * The group that ends the chain so far ended before character c (or at
 * the end of the text): the candidates that end with it, the longest
 * first, against the pending hit.
 */
static int
dg_det_group_end(dg_mask_det_t *d, uint8_t c, unsigned end)
{
    uint8_t   dig[DG_DET_SPAN + 1], g[DG_DETECT_GROUPS];
    unsigned  i, j, k, n, m, x, ge, pos, skip, h0, he, sh;
    int       kind, rc;

    j = d->ng - 1;
    ge = d->gs[j] + d->gl[j];
    x = (!end && (c == 'X' || c == 'x')) ? 1 : 0;
    kind = -1;
    h0 = 0;
    he = 0;

    for (i = j + 1; i-- > 0; ) {
        if (ge + x - d->gs[i] > DG_DET_SPAN) {
            break;
        }

        n = j - i + 1;
        memcpy(g, d->gl + i, n);

        /* with the X after it first: when the groups and the X have an
         * ID's shape, an ID or nothing; else the groups alone */
        for (k = x + 1; k-- > 0; ) {
            unsigned  kinds;
            int       kd;

            g[n - 1] = (uint8_t) (d->gl[j] + k);
            kinds = dg_mask_detect_shape(g, n);

            if (k ? !(kinds & (1u << DG_DETECT_ID_NUMBER)) : kinds == 0) {
                continue;
            }

            for (pos = d->gs[i], m = 0; pos < ge; pos++) {
                if (d->wc[pos] != DG_DET_SEP) {
                    dig[m++] = d->wc[pos];
                }
            }
            if (k) {
                dig[m++] = c;
            }

            kd = dg_mask_detect_groups(dig, m, g, n, &skip);
            if (kd >= 0) {
                kind = kd;
                h0 = d->gs[i] + skip;
                he = ge + k;
            }

            break;
        }
    }

    if (kind < 0) {
        return 0;
    }

    if (d->hkind >= 0) {
        if (h0 > d->h0 && h0 < d->he) {
            /* overlaps the pending hit, which started first */
            return 0;
        }

        if (h0 > d->h0) {
            /* after it: the pending hit is final */
            sh = d->he;
            rc = dg_det_emit(d);
            if (rc != 0) {
                return rc;
            }
            h0 -= sh;
            he -= sh;
        }
    }

    d->hkind = (int8_t) kind;
    d->h0 = (uint8_t) h0;
    d->he = (uint8_t) he;

    return 0;
}


/*
 * One character c (a digit, a capital, 'x', DG_DET_SEP or DG_DET_OTHER)
 * ending at 'after'.  Its raw bytes are r[0..rl): with DG_DET_REF they
 * are the rl bytes before 'after' in the span, else a copy (an escape, a
 * character cut by a span end).  DG_DET_END: the text ended (no
 * character, nothing appended).
 */
static int
dg_det_char(dg_mask_det_t *d, uint8_t c, const uint8_t *r, size_t rl,
    const uint8_t *after, unsigned fl)
{
    unsigned  i, s, dig, up, end;
    int       kind, rc;

    end = fl & DG_DET_END;
    dig = (c >= '0' && c <= '9');
    up = dig || (c >= 'A' && c <= 'Z');

    if (d->wn == 0) {
        if (!up || end) {
            /* plain output; it ends any (long) run and any chain */
            d->ulong = 0;
            d->glong = 0;
            d->gin = 0;
            d->ng = 0;
            if (!end && !(fl & DG_DET_REF)) {
                rc = dg_det_put(d, r, rl);
                d->os = after;
                return rc;
            }
            return 0;
        }

        d->wr[0] = 0;
        d->ws = ((fl & DG_DET_REF) && d->os != NULL) ? after - rl : NULL;
        if (d->ws == NULL) {
            rc = dg_det_flush(d, (fl & DG_DET_REF) ? after - rl : after);
            if (rc != 0) {
                return rc;
            }
        }
    }

    i = d->wn;

    if (!end) {
        if (i >= DG_DET_WIN) {
            /* cannot happen (see DG_DET_WIN); never write past it */
            return DG_MASK_E_STATE;
        }

        d->wc[i] = c;
        if (d->ws) {
            d->wr[i + 1] = (uint16_t) (after - d->ws);

        } else {
            memcpy(d->wraw + d->wr[i], r, rl);
            d->wr[i + 1] = (uint16_t) (d->wr[i] + rl);
        }
        d->wn++;
    }

    /* groups and chains */
    if (dig && !end) {
        if (d->gin == 1) {
            if (!d->glong
                && (d->ng == 0 || ++d->gl[d->ng - 1] > DG_DET_DIGITS))
            {
                /* too long to be or to hold a candidate */
                d->glong = 1;
                d->ng = 0;
            }

        } else {
            if (d->gin == 0) {
                d->ng = 0;
            }
            if (d->ng == DG_DETECT_GROUPS) {
                memmove(d->gs, d->gs + 1, DG_DETECT_GROUPS - 1);
                memmove(d->gl, d->gl + 1, DG_DETECT_GROUPS - 1);
                d->ng--;
            }
            d->gs[d->ng] = (uint8_t) i;
            d->gl[d->ng] = 1;
            d->ng++;
            d->glong = 0;
            d->gin = 1;
        }

    } else {
        if (d->gin == 1 && !d->glong && d->ng) {
            rc = dg_det_group_end(d, c, end);
            if (rc != 0) {
                return rc;
            }
        }

        if (c == DG_DET_SEP && d->gin == 1 && !end) {
            d->gin = 2;

        } else {
            d->gin = 0;
            d->ng = 0;
        }
        d->glong = 0;
    }

    /* [0-9A-Z] run */
    if (up && !end) {
        if (!d->ulong) {
            if (d->ulen == 0) {
                d->u0 = (uint8_t) i;
            }
            if (++d->ulen > DG_DET_URUN) {
                d->ulong = 1;
                d->ulen = 0;
            }
        }

    } else {
        if (d->ulen == DG_DET_URUN) {
            kind = dg_mask_detect_kind(d->wc + d->u0, DG_DET_URUN);
            if (kind >= 0 && (d->hkind < 0 || d->h0 >= d->u0)) {
                d->hkind = (int8_t) kind;
                d->h0 = d->u0;
                d->he = (uint8_t) (d->u0 + DG_DET_URUN);
            }
        }
        d->ulen = 0;
        d->ulong = 0;
    }

    /* the pending hit is final once no chain can make it longer and no
     * [0-9A-Z] run that could hold it lives */
    if (d->hkind >= 0
        && (d->gin == 0 || d->wn - d->h0 > DG_DET_SPAN)
        && !(d->ulen && d->u0 <= d->h0))
    {
        rc = dg_det_emit(d);
        if (rc != 0) {
            return rc;
        }
    }

    /* keep the window from the earliest live candidate */
    while (d->ng && d->wn - d->gs[0] > DG_DET_SPAN) {
        memmove(d->gs, d->gs + 1, DG_DETECT_GROUPS - 1);
        memmove(d->gl, d->gl + 1, DG_DETECT_GROUPS - 1);
        d->ng--;
    }

    s = d->wn;
    if (d->ng && d->gs[0] < s) {
        s = d->gs[0];
    }
    if (d->ulen && d->u0 < s) {
        s = d->u0;
    }
    if (d->hkind >= 0 && d->h0 < s) {
        s = d->h0;
    }

    rc = 0;

    if (s) {
        if (d->ws == NULL) {
            rc = dg_det_put(d, d->wraw, d->wr[s]);
        }
        dg_det_shift(d, s);
    }

    if (d->wn == 0 && d->ws == NULL) {
        d->os = after;
    }

    return rc;
}


/*
 * A string (or text) scanned by detect from p: returns 1 at its closing
 * quote (*pp after it), 0 at the span end (*pp = end), or an error.  In
 * plain text (d->plain) quotes, backslashes and control bytes are
 * characters like the others, and the text ends with the span.
 */
static int
dg_det_scan(dg_mask_det_t *d, const uint8_t *p, const uint8_t *end,
    const uint8_t **pp)
{
    const uint8_t  *q, *lim;
    uint8_t         c, code;
    int             r, rc;

    while (p < end) {
        c = *p;

        if (d->esc) {
            r = dg_mask_esc_step(&d->esc, &d->eu, &d->ecp, c);
            if (r < 0) {
                return DG_MASK_E_SYNTAX;
            }
            d->raw[d->rawlen++] = c;
            p++;

            if (r == 0) {
                continue;
            }

            rc = dg_det_char(d, dg_det_cp(d->ecp), d->raw, d->rawlen, p, 0);
            if (rc != 0) {
                return rc;
            }
            continue;
        }

        if (d->mb) {
            /* a character that the last span cut */
            d->mb = 0;

            if (dg_det_mb_next(d->raw, d->rawlen, c)) {
                d->raw[d->rawlen++] = c;
                p++;

                if (d->rawlen < 3) {
                    d->mb = 1;
                    continue;
                }

                rc = dg_det_char(d, dg_det_mb_code(d->raw), d->raw, 3, p, 0);

            } else {
                /* not one detect reads: its bytes are a character */
                rc = dg_det_char(d, DG_DET_OTHER, d->raw, d->rawlen, p, 0);
            }

            if (rc != 0) {
                return rc;
            }
            continue;
        }

        if (d->wn == 0 && !(dg_mask_cls[c] & (C_DU | C_STR | C_MB))) {
            /* fast forward over what cannot start a candidate; it ends
             * any (long) run and any chain */
            d->ulong = 0;
            d->glong = 0;
            d->gin = 0;
            d->ng = 0;
            do {
                if (++p == end) {
                    goto out;
                }
            } while (!(dg_mask_cls[*p] & (C_DU | C_STR | C_MB)));
            c = *p;
        }

        if (d->wn == 0 && (dg_mask_cls[c] & C_DU)) {
            /* a run of fewer than 11 digits/capitals ended here by a
             * byte that cannot go on with a chain (no separator, no
             * full-width character, no escape) holds no hit */
            lim = (end - p > DG_DET_SHORT) ? p + DG_DET_SHORT : end;
            for (q = p + 1; q < lim && (dg_mask_cls[*q] & C_DU); q++) {
                /* void */
            }
            if (q < lim && !(dg_mask_cls[*q] & C_CHAIN)) {
                p = q;
                continue;
            }
        }

        if (c >= 0x80) {
            if (dg_mask_cls[c] & C_MB) {
                if (end - p >= 3) {
                    code = dg_det_mb_code(p);
                    if (code != DG_DET_OTHER) {
                        rc = dg_det_char(d, code, p, 3, p + 3, DG_DET_REF);
                        if (rc != 0) {
                            return rc;
                        }
                        p += 3;
                        continue;
                    }

                } else if (dg_det_mb_begins(p, end - p)) {
                    /* the span ends inside one: carried like an escape */
                    rc = d->wn ? dg_det_carry(d) : dg_det_flush(d, p);
                    if (rc != 0) {
                        return rc;
                    }
                    d->mb = 1;
                    d->rawlen = (uint8_t) (end - p);
                    memcpy(d->raw, p, end - p);
                    p = end;
                    break;
                }
            }

            rc = dg_det_char(d, DG_DET_OTHER, p, 1, p + 1, DG_DET_REF);
            if (rc != 0) {
                return rc;
            }
            p++;
            continue;
        }

        if (!(dg_mask_cls[c] & C_STR) || d->plain) {
            rc = dg_det_char(d, dg_det_ascii[c], p, 1, p + 1, DG_DET_REF);
            if (rc != 0) {
                return rc;
            }
            p++;
            continue;
        }

        if (c == '\\') {
            rc = d->wn ? dg_det_carry(d) : dg_det_flush(d, p);
            if (rc != 0) {
                return rc;
            }
            d->esc = 1;
            d->raw[0] = c;
            d->rawlen = 1;
            p++;
            continue;
        }

        if (c == '"') {
            if (d->wn) {
                rc = dg_det_char(d, 0, NULL, 0, p, DG_DET_END);
                if (rc != 0) {
                    return rc;
                }
            }
            *pp = p + 1;
            return 1;
        }

        return DG_MASK_E_SYNTAX;
    }

out:

    /* the span ends inside a candidate: keep it */
    rc = dg_det_carry(d);
    if (rc != 0) {
        return rc;
    }

    *pp = p;
    return 0;
}


/*
 * A whole text s of len bytes scanned and written to o: the contents of a
 * JSON string (a held key), or plain text.  Hits are counted in hits.
 */
static int
dg_det_text(dg_mask_out_t *o, const dg_mask_spec_t *detect, uint64_t *hits,
    const uint8_t *hash_key, size_t hash_key_len, const uint8_t *s,
    size_t len, unsigned plain)
{
    dg_mask_det_t   d;
    const uint8_t  *p, *end;
    int             rc;

    memset(&d, 0, offsetof(dg_mask_det_t, wc));
    d.out = o;
    d.os = s;
    d.detect = detect;
    d.hits = hits;
    d.hash_key = hash_key;
    d.hash_key_len = hash_key_len;
    d.plain = (uint8_t) (plain ? 1 : 0);
    dg_det_start(&d);

    end = s + len;

    rc = dg_det_scan(&d, s, end, &p);
    if (rc != 0) {
        /* 1: a closing quote inside the contents of a string */
        return rc < 0 ? rc : DG_MASK_E_SYNTAX;
    }

    if (d.esc) {
        return DG_MASK_E_SYNTAX;
    }

    if (d.mb) {
        d.mb = 0;
        rc = dg_det_char(&d, DG_DET_OTHER, d.raw, d.rawlen, end, 0);
    }

    if (rc == 0) {
        rc = dg_det_char(&d, 0, NULL, 0, end, DG_DET_END);
    }

    if (rc == 0) {
        rc = dg_det_flush(&d, end);
    }

    return rc;
}


int
dg_mask_detect_text(const dg_mask_spec_t *detect, const uint8_t *hash_key,
    size_t hash_key_len, const uint8_t *s, size_t len, unsigned flags,
    uint8_t *out, size_t outcap, uint64_t *hits)
{
    dg_mask_spec_t  spec[DG_DETECT_MAX];
    dg_mask_out_t   o;
    uint64_t        h[DG_DETECT_MAX];
    unsigned        k;
    int             rc;

    if ((s == NULL && len) || out == NULL || len > (size_t) INT32_MAX) {
        return DG_MASK_E_CONF;
    }

    dg_mask_cls_init();

    for (k = 0; k < DG_DETECT_MAX; k++) {
        if (detect != NULL) {
            spec[k] = detect[k];
        } else {
            memset(&spec[k], 0, sizeof(dg_mask_spec_t));
        }
        if (spec[k].method == DG_MASK_CLEAR
            || spec[k].method >= DG_MASK_METHOD_MAX
            || (spec[k].method == DG_MASK_HASH
                && (hash_key == NULL || hash_key_len == 0)))
        {
            dg_mask_detect_default(k, &spec[k]);
        }
        h[k] = 0;
    }

    memset(&o, 0, sizeof(o));
    o.buf = out;
    o.cap = outcap;

    rc = dg_det_text(&o, spec, h, hash_key, hash_key_len,
                     s ? s : (const uint8_t *) "", len,
                     (flags & DG_MASK_TEXT_JSON) ? 0 : 1);
    if (rc != 0) {
        return rc;
    }

    if (hits != NULL) {
        for (k = 0; k < DG_DETECT_MAX; k++) {
            hits[k] += h[k];
        }
    }

    return (int) o.len;
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


/*
 * Detect on a number that may be a hit (m->ndet): its digits stay in the
 * output run (os) from m->nfrom while they are in one span; when the
 * span ends inside it they are held in nbuf (at most DG_DET_NUMBER), and
 * written when the number is decided.
 */

/* the number is no hit: what was held is written, the rest passes */
static int
dg_mask_num_release(dg_mask_t *m)
{
    int  rc;

    rc = 0;
    m->ndet = 0;

    if (m->nheld) {
        rc = dg_mask_ref(m, m->nbuf, m->nheld);
        m->nheld = 0;
        m->os = m->nfrom;
    }

    return rc;
}


/* the span ends inside the number */
static int
dg_mask_num_hold(dg_mask_t *m, const uint8_t *end)
{
    size_t  n;
    int     rc;

    n = end - m->nfrom;

    if (m->nheld + n > DG_DET_NUMBER) {
        return dg_mask_num_release(m);
    }

    rc = dg_mask_flush_os(m, m->nfrom);
    memcpy(m->nbuf + m->nheld, m->nfrom, n);
    m->nheld = (uint8_t) (m->nheld + n);
    m->nfrom = end;

    return rc;
}


/* the number ended at q: a hit becomes a string, masked as those digits
 * in a string would be */
static int
dg_mask_num_det(dg_mask_t *m, const uint8_t *q)
{
    const uint8_t  *d;
    size_t          n;
    unsigned        skip;
    uint8_t         g;
    int             kind, rc;

    n = q - m->nfrom;

    if (m->nheld) {
        if (m->nheld + n > DG_DET_NUMBER) {
            return dg_mask_num_release(m);
        }
        memcpy(m->nbuf + m->nheld, m->nfrom, n);
        d = m->nbuf;
        n += m->nheld;

    } else {
        d = m->nfrom;
    }

    kind = -1;
    skip = 0;
    n = dg_mask_det_number(d, d + n);     /* the digits before a fraction */

    if (n) {
        g = (uint8_t) n;
        kind = dg_mask_detect_groups(d, n, &g, 1, &skip);
    }

    if (kind < 0) {
        return dg_mask_num_release(m);
    }

    m->ndet = 0;
    m->nheld = 0;
    m->stats.detect[kind]++;

    rc = dg_mask_flush_os(m, m->nfrom);
    if (rc == 0) {
        rc = dg_mask_ref(m, (const uint8_t *) "\"", 1);
    }
    if (rc == 0) {
        rc = dg_mask_ref(m, d, skip);
    }
    if (rc == 0) {
        rc = dg_mask_apply(&m->out, &m->detect[kind], d + skip, n - skip,
                           m->hash_key, m->hash_key_len, 0);
    }
    if (rc == 0) {
        rc = dg_mask_ref(m, (const uint8_t *) "\"", 1);
    }

    m->os = q;

    return rc;
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

    } else if (m->ndet) {
        rc = dg_mask_num_det(m, q);
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
        if (m->ndet) {
            m->nfrom = p;
        }
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
                              : dg_mask_decide(m, c, p);
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
            dg_det_start(&m->det);
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

        } else if (c != '-' && c != '0' && !m->skip
                   && (m->flags & DG_MASK_DETECT) && !m->vlisted)
        {
            /* detect: the number may be a hit (digits alone) */
            m->ndet = 1;
            m->nheld = 0;
            m->nfrom = p;
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
        if (m->mask) {
            /* a key inside a masked value: scanned by detect */
            dg_det_start(&m->det);
            goto s_dstr;
        }
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
            m->key_end = pre.e - p;
            m->kdet = (uint8_t) pre.kd;
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
        if (m->mask) {
            /* a key inside a masked value: scanned by detect */
            dg_det_start(&m->det);
            goto s_dstr;
        }
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

    m->det.os = m->os;
    r = dg_det_scan(&m->det, p, end, &p);
    m->os = m->det.os;
    if (r < 0) {
        return r;
    }
    if (r == 1) {
        if (m->in_key) {
            m->in_key = 0;
            goto s_colon;
        }
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

    if (p == end) {
        goto num_suspend;
    }

    if (!m->mask
        && (m->num == N_INT
            || ((m->num == N_FRAC || m->num == N_EXP) && !m->ndet)))
    {
        while (dg_mask_cls[*p] & C_DIGIT) {
            if (++p == end) {
                goto num_suspend;
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

        } else if (m->ndet) {
            rc = dg_mask_num_det(m, p);
            if (rc != 0) {
                return rc;
            }
        }
        goto done;
    }

    if (m->ndet && (nx == N_E || (nx == N_FRAC && c != '0'))) {
        /* an exponent or a fraction that is not all zeros: no hit */
        rc = dg_mask_num_release(m);
        if (rc != 0) {
            return rc;
        }
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

num_suspend:

    /* the span ends inside the number: a candidate's digits are held */
    if (m->ndet) {
        rc = dg_mask_num_hold(m, end);
        if (rc != 0) {
            return rc;
        }
    }
    m->state = S_NUM;
    return 0;

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
