/*
 * datagate core: masking methods (SPEC.md "Masking"), the detect
 * validators (resident ID, mobile, bank card, USCC) and method names.
 *
 * All methods work on code points of a decoded, validated UTF-8 value and
 * never leak a value too short for the method: when a value has fewer
 * characters than the kept prefix + kept suffix + 1, every character
 * becomes '*'.
 *
 * Speed: a value is scanned once (dg_mask_vscan: UTF-8 validated, code
 * points counted, bytes to escape found; 32 bytes at a time with AVX2 for
 * values of 32 bytes and more, in 8-byte words below that), and the
 * keep-like methods, address, bank_card and email then write an
 * escape-free value straight into the output buffer (dg_mask_apply_fast).
 * A value in a stream's input span, which may be read past its end, goes
 * first to dg_mask_span_fn (AVX2): one function per method, whole-block
 * loads without a tail copy, Chinese text validated by a shorter check
 * than the general one, the result written with 32-byte stores.
 */

#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "dg_mask.h"
#include "dg_mask_int.h"


#define DG_MASK_STARS  "********************************"


/* 1: printable ASCII that needs no escaping in a JSON string */
static const uint8_t  dg_mask_plain[256] = {
#define P16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    P16(0), P16(0),
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,     /* 0x20: '"' */
    P16(1), P16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,     /* 0x50: '\\' */
    P16(1),
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,     /* 0x7f */
    P16(0), P16(0), P16(0), P16(0), P16(0), P16(0), P16(0), P16(0)
#undef P16
};


static const char  *dg_mask_names[DG_MASK_METHOD_MAX] = {
    "clear", "id_card", "phone", "name", "bank_card", "email", "address",
    "keep", "landline", "plate", "ipv4", "date_year", "hash", "redact",
    "null", "drop"
};


int
dg_mask_out_flush(dg_mask_out_t *o)
{
    if (o->lend) {
        return dg_mask_out_lend(o, 0);
    }

    if (o->len == 0 || o->emit == NULL) {
        return 0;
    }

    if (o->emit(o->ctx, o->buf, o->len) != 0) {
        return DG_MASK_E_EMIT;
    }

    if (o->bytes_out) {
        *o->bytes_out += o->len;
    }

    o->len = 0;
    return 0;
}


/*
 * Lent memory: hand the bytes written back to the owner and, need != 0,
 * take at least need bytes more; need 0: hold none of the owner's memory
 * (buf keeps a non-NULL value, cap 0: nothing is written there).
 */
int
dg_mask_out_lend(dg_mask_out_t *o, size_t need)
{
    uint8_t  *buf;
    size_t    cap, used;

    used = o->len;

    if (need == 0 && used == 0) {
        /* nothing written: the owner's view of its memory is current */
        o->cap = 0;
        return 0;
    }

    buf = NULL;
    cap = 0;

    if (o->lend(o->ctx, used, need, &buf, &cap) != 0) {
        o->cap = 0;
        o->len = 0;
        return DG_MASK_E_EMIT;
    }

    if (o->bytes_out) {
        *o->bytes_out += used;
    }

    o->len = 0;

    if (need == 0) {
        o->cap = 0;
        return 0;
    }

    if (buf == NULL || cap < need) {
        o->cap = 0;
        return DG_MASK_E_EMIT;
    }

    o->buf = buf;
    o->cap = cap;

    return 0;
}


/*
 * Room for need bytes more at o->buf + o->len, flushing or asking the
 * owner for memory when there is too little: 0, 1 when it cannot be had
 * (no owner, or more than a buffer or a loan holds: the caller takes the
 * general way), or DG_MASK_E_EMIT.
 */
int
dg_mask_out_room(dg_mask_out_t *o, size_t need)
{
    if (need <= o->cap - o->len) {
        return 0;
    }

    if (o->lend) {
        if (need > DG_MASK_LEND_NEED) {
            return 1;
        }

        return dg_mask_out_lend(o, need) != 0 ? DG_MASK_E_EMIT : 0;
    }

    if (o->emit == NULL || need > o->cap) {
        return 1;
    }

    return dg_mask_out_flush(o) != 0 ? DG_MASK_E_EMIT : 0;
}


int
dg_mask_out_put_slow(dg_mask_out_t *o, const uint8_t *p, size_t n)
{
    size_t  k;

    if (o->lend) {
        /* fill the memory lent, take more: every byte is copied once */
        for ( ;; ) {
            k = o->cap - o->len;

            if (k > n) {
                k = n;
            }

            if (k) {
                memcpy(o->buf + o->len, p, k);
                o->len += k;
                p += k;
                n -= k;
            }

            if (n == 0) {
                return 0;
            }

            /* any room will do: the owner packs its buffers full */
            if (dg_mask_out_lend(o, 1) != 0) {
                return DG_MASK_E_EMIT;
            }
        }
    }

    if (o->emit == NULL) {
        return DG_MASK_E_TOOBIG;
    }

    if (o->len + n <= o->cap) {
        memcpy(o->buf + o->len, p, n);
        o->len += n;
        return 0;
    }

    if (n >= o->cap / 2) {
        /* long run: hand it over by reference */
        if (dg_mask_out_flush(o) != 0) {
            return DG_MASK_E_EMIT;
        }

        if (o->emit(o->ctx, p, n) != 0) {
            return DG_MASK_E_EMIT;
        }

        if (o->bytes_out) {
            *o->bytes_out += n;
        }

        return 0;
    }

    k = o->cap - o->len;
    memcpy(o->buf + o->len, p, k);
    o->len += k;

    if (dg_mask_out_flush(o) != 0) {
        return DG_MASK_E_EMIT;
    }

    memcpy(o->buf, p + k, n - k);
    o->len = n - k;
    return 0;
}


static int
dg_mask_put_stars(dg_mask_out_t *o, size_t n)
{
    size_t  k;
    int     rc;

    while (n) {
        k = n < sizeof(DG_MASK_STARS) - 1 ? n : sizeof(DG_MASK_STARS) - 1;
        rc = dg_mask_out_put(o, (const uint8_t *) DG_MASK_STARS, k);
        if (rc != 0) {
            return rc;
        }
        n -= k;
    }

    return 0;
}


/* write string contents with JSON escaping of '"', '\\' and controls */
static int
dg_mask_put_escaped(dg_mask_out_t *o, const uint8_t *p, size_t n)
{
    static const char   hex[] = "0123456789abcdef";
    const uint8_t      *s, *end;
    uint8_t             e[6];
    size_t              el;
    int                 rc;

    s = p;
    end = p + n;

    for ( /* void */ ; p < end; p++) {
        if (dg_mask_plain[*p] || *p >= 0x80) {
            continue;
        }

        rc = dg_mask_out_put(o, s, p - s);
        if (rc != 0) {
            return rc;
        }

        e[0] = '\\';
        el = 2;

        switch (*p) {
        case '"':  e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        case '\b': e[1] = 'b'; break;
        case '\f': e[1] = 'f'; break;
        default:
            e[1] = 'u';
            e[2] = '0';
            e[3] = '0';
            e[4] = hex[*p >> 4];
            e[5] = hex[*p & 0xf];
            el = 6;
        }

        rc = dg_mask_out_put(o, e, el);
        if (rc != 0) {
            return rc;
        }

        s = p + 1;
    }

    return dg_mask_out_put(o, s, p - s);
}


static unsigned dg_mask_classify(const uint8_t *v, size_t len);


/*
 * One pass over a value about to be masked (dg_mask_vscan): its byte
 * classes (DG_VS_ESC: a byte a JSON string must escape, or 0x7f, which
 * dg_mask_put_escaped escapes too; DG_VS_HIGH: a non-ASCII byte), its
 * number of code points, and for its first 64 bytes a bitmap of the bytes
 * that start a code point, so prefixes are cut without walking the value
 * again.  Returns -1 when the value is not strict UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF, no cut sequence).
 */

#define DG_VS_ESC   1
#define DG_VS_HIGH  2

typedef struct {
    size_t                      n;      /* code points */
    uint64_t                    lead;   /* bit i: byte i starts one (i <
                                           64); 0 when not computed */
    unsigned                    cls;
} dg_mask_vinfo_t;


/*
 * Without vectors: the classes in 8-byte words; when there is a non-ASCII
 * byte, one walk validates (RFC 3629 table 3.7: E0 A0..BF, ED 80..9F,
 * F0 90..BF, F4 80..8F, other leads 80..BF), counts and marks the code
 * points.  Runs of ASCII are stepped over 8 bytes at a time.
 */
static int
dg_mask_vscan_scalar(const uint8_t *v, size_t len, dg_mask_vinfo_t *vi)
{
    uint64_t  lead, w;
    size_t    i, n;
    unsigned  c, b1;

    vi->cls = dg_mask_classify(v, len);

    if (!(vi->cls & DG_VS_HIGH)) {
        vi->n = len;
        vi->lead = 0;
        return 0;
    }

    lead = 0;
    n = 0;
    i = 0;

    while (i < len) {
        c = v[i];

        if (i < 64) {
            lead |= 1ull << i;
        }
        n++;

        if (c < 0x80) {
            i++;
            if (len - i >= 8 && i >= 64) {
                memcpy(&w, v + i, 8);
                if (!(w & 0x8080808080808080ull)) {
                    i += 8;
                    n += 8;
                }
            }
            continue;
        }

        if (c < 0xc2) {
            return -1;
        }

        b1 = (i + 1 < len) ? v[i + 1] : 0;
        if ((b1 & 0xc0) != 0x80) {
            return -1;
        }

        if (c < 0xe0) {
            i += 2;
            continue;
        }

        if (i + 2 >= len || (v[i + 2] & 0xc0) != 0x80
            || (c == 0xe0 && b1 < 0xa0) || (c == 0xed && b1 > 0x9f))
        {
            return -1;
        }

        if (c < 0xf0) {
            i += 3;
            continue;
        }

        if (c > 0xf4 || i + 3 >= len || (v[i + 3] & 0xc0) != 0x80
            || (c == 0xf0 && b1 < 0x90) || (c == 0xf4 && b1 > 0x8f))
        {
            return -1;
        }

        i += 4;
    }

    vi->n = n;
    vi->lead = lead;
    return 0;
}


#if (DG_MASK_X86)

/*
 * 32 bytes at a time (AVX2).  Validation is the lookup algorithm of Keiser and
 * Lemire ("Validating UTF-8 in less than one instruction per byte",
 * Software: Practice and Experience, 2021): three 16-entry tables, indexed
 * by the high and low nibble of the previous byte and the high nibble of
 * the current one, each give the set of errors that pair could be; an
 * error is real when all three agree.  Bit 7 of that set means "two
 * continuation bytes in a row", which is an error exactly when the byte
 * is not the 3rd or 4th of a sequence that a lead byte 2 or 3 back
 * announced.  A sequence cut by the end of the value is caught by the
 * padding of the last block or, when the value fills its last block, by
 * the check after the loop.
 */

#define DG_U8_TOO_SHORT    0x01     /* lead or ASCII, then lead or ASCII */
#define DG_U8_TOO_LONG     0x02     /* ASCII, then continuation */
#define DG_U8_OVERLONG_3   0x04     /* E0 80..9F */
#define DG_U8_TOO_LARGE    0x08     /* F4 90..BF, F5..FF 90..BF */
#define DG_U8_SURROGATE    0x10     /* ED A0..BF */
#define DG_U8_OVERLONG_2   0x20     /* C0..C1 continuation */
#define DG_U8_TOO_LARGE_80 0x40     /* F5..FF 80..8F */
#define DG_U8_OVERLONG_4   0x40     /* F0 80..8F */
#define DG_U8_TWO_CONTS    0x80     /* continuation, then continuation */
#define DG_U8_CARRY        (DG_U8_TOO_SHORT | DG_U8_TOO_LONG               \
                            | DG_U8_TWO_CONTS)

/* constants of the vector code: loaded, not built (a set1 is built in
 * three instructions); filled by dg_mask_simd_init() before any use */
enum {
    DG_K_IDX = 0,               /* 0, 1, ... 31 */
    DG_K_SP,                    /* ' ' */
    DG_K_STAR,                  /* '*' */
    DG_K_BF,                    /* 0xbf: signed, above it a byte starts a
                                   code point */
    DG_K_NIB,                   /* 0x0f */
    DG_K_E0,                    /* 0xe0 - 0x80 */
    DG_K_F0,                    /* 0xf0 - 0x80 */
    DG_K_80,                    /* 0x80 */
    DG_K_TMAX,                  /* 0xff..., 0xef, 0xdf, 0xbf: see
                                   dg_mask_u8_cut_avx2() */
    DG_K_ESC_HI,                /* see dg_mask_esc_avx2() */
    DG_K_ESC_LO,
    DG_K_T1H,                   /* see dg_mask_u8_err_avx2() */
    DG_K_T1L,
    DG_K_T2H,
    DG_K_9F,                    /* see dg_mask_u8_cjk_avx2() */
    DG_K_M113,
    DG_K_ED,
    DG_K_C0,
    DG_K_MAX
};

static uint8_t  dg_mask_k32[DG_K_MAX][32] __attribute__((aligned(32)));

#define DG_K(i)  _mm256_load_si256((const __m256i *) dg_mask_k32[i])


static void
dg_mask_k32_init(void)
{
    /* the previous byte by its high nibble */
    static const uint8_t  t1h[16] = {
        DG_U8_TOO_LONG, DG_U8_TOO_LONG, DG_U8_TOO_LONG, DG_U8_TOO_LONG,
        DG_U8_TOO_LONG, DG_U8_TOO_LONG, DG_U8_TOO_LONG, DG_U8_TOO_LONG,
        DG_U8_TWO_CONTS, DG_U8_TWO_CONTS, DG_U8_TWO_CONTS, DG_U8_TWO_CONTS,
        DG_U8_TOO_SHORT | DG_U8_OVERLONG_2,
        DG_U8_TOO_SHORT,
        DG_U8_TOO_SHORT | DG_U8_OVERLONG_3 | DG_U8_SURROGATE,
        DG_U8_TOO_SHORT | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80
            | DG_U8_OVERLONG_4
    };

    /* the previous byte by its low nibble */
    static const uint8_t  t1l[16] = {
        DG_U8_CARRY | DG_U8_OVERLONG_3 | DG_U8_OVERLONG_2 | DG_U8_OVERLONG_4,
        DG_U8_CARRY | DG_U8_OVERLONG_2,
        DG_U8_CARRY,
        DG_U8_CARRY,
        DG_U8_CARRY | DG_U8_TOO_LARGE,
        DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,
        DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,
        DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,
        DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,
        DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,
        DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,
        DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,
        DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,
        DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80 | DG_U8_SURROGATE,
        DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80,
        DG_U8_CARRY | DG_U8_TOO_LARGE | DG_U8_TOO_LARGE_80
    };

    /* this byte by its high nibble */
    static const uint8_t  t2h[16] = {
        DG_U8_TOO_SHORT, DG_U8_TOO_SHORT, DG_U8_TOO_SHORT, DG_U8_TOO_SHORT,
        DG_U8_TOO_SHORT, DG_U8_TOO_SHORT, DG_U8_TOO_SHORT, DG_U8_TOO_SHORT,
        DG_U8_TOO_LONG | DG_U8_OVERLONG_2 | DG_U8_TWO_CONTS
            | DG_U8_OVERLONG_3 | DG_U8_TOO_LARGE_80 | DG_U8_OVERLONG_4,
        DG_U8_TOO_LONG | DG_U8_OVERLONG_2 | DG_U8_TWO_CONTS
            | DG_U8_OVERLONG_3 | DG_U8_TOO_LARGE,
        DG_U8_TOO_LONG | DG_U8_OVERLONG_2 | DG_U8_TWO_CONTS
            | DG_U8_SURROGATE | DG_U8_TOO_LARGE,
        DG_U8_TOO_LONG | DG_U8_OVERLONG_2 | DG_U8_TWO_CONTS
            | DG_U8_SURROGATE | DG_U8_TOO_LARGE,
        DG_U8_TOO_SHORT, DG_U8_TOO_SHORT, DG_U8_TOO_SHORT, DG_U8_TOO_SHORT
    };

    /* the escapes (dg_mask_esc_avx2): by the high nibble 0-1 (controls)
     * 1, 2 ('"') 2, 5 ('\\') 4, 7 (0x7f) 8; by the low one 1 always,
     * and 2 2, 0xc 4, 0xf 8 */
    static const uint8_t  esc_hi[16] = { 1, 1, 2, 0, 0, 4, 0, 8 };
    static const uint8_t  esc_lo[16] = { 1, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                         5, 1, 1, 9 };

    /* the byte every other one repeats */
    static const uint8_t  fill[DG_K_MAX] = {
        [DG_K_SP] = ' ', [DG_K_STAR] = '*', [DG_K_BF] = 0xbf,
        [DG_K_NIB] = 0x0f, [DG_K_E0] = 0xe0 - 0x80, [DG_K_F0] = 0xf0 - 0x80,
        [DG_K_80] = 0x80, [DG_K_TMAX] = 0xff, [DG_K_9F] = 0x9f,
        [DG_K_M113] = (uint8_t) -113, [DG_K_ED] = 0xed, [DG_K_C0] = 0xc0
    };
    unsigned              i;

    for (i = 0; i < DG_K_MAX; i++) {
        memset(dg_mask_k32[i], fill[i], 32);
    }

    for (i = 0; i < 32; i++) {
        dg_mask_k32[DG_K_IDX][i] = (uint8_t) i;
    }

    dg_mask_k32[DG_K_TMAX][29] = 0xf0 - 1;
    dg_mask_k32[DG_K_TMAX][30] = 0xe0 - 1;
    dg_mask_k32[DG_K_TMAX][31] = 0xc0 - 1;

    /* the tables, in both lanes (pshufb looks up within a lane) */
    for (i = 0; i < 32; i += 16) {
        memcpy(dg_mask_k32[DG_K_T1H] + i, t1h, 16);
        memcpy(dg_mask_k32[DG_K_T1L] + i, t1l, 16);
        memcpy(dg_mask_k32[DG_K_T2H] + i, t2h, 16);
        memcpy(dg_mask_k32[DG_K_ESC_HI] + i, esc_hi, 16);
        memcpy(dg_mask_k32[DG_K_ESC_LO] + i, esc_lo, 16);
    }
}


/* the Keiser-Lemire errors of block in after block prev (0: none) */
static inline __attribute__((always_inline, target("avx2"))) __m256i
dg_mask_u8_err_avx2(__m256i in, __m256i prev)
{
    __m256i  t1h, t1l, t2h, nib, pp, p1, p2, p3, sc, must;

    t1h = DG_K(DG_K_T1H);
    t1l = DG_K(DG_K_T1L);
    t2h = DG_K(DG_K_T2H);
    nib = DG_K(DG_K_NIB);

    /* the 16 bytes before each lane: prev's high lane, in's low one */
    pp = _mm256_permute2x128_si256(prev, in, 0x21);
    p1 = _mm256_alignr_epi8(in, pp, 15);
    sc = _mm256_and_si256(
             _mm256_and_si256(
                 _mm256_shuffle_epi8(t1h, _mm256_and_si256(
                                      _mm256_srli_epi16(p1, 4), nib)),
                 _mm256_shuffle_epi8(t1l, _mm256_and_si256(p1, nib))),
             _mm256_shuffle_epi8(t2h, _mm256_and_si256(
                                  _mm256_srli_epi16(in, 4), nib)));

    /* 3rd byte of a 3- or 4-byte sequence, 4th of a 4-byte one */
    p2 = _mm256_alignr_epi8(in, pp, 14);
    p3 = _mm256_alignr_epi8(in, pp, 13);
    must = _mm256_or_si256(
               _mm256_subs_epu8(p2, DG_K(DG_K_E0)),
               _mm256_subs_epu8(p3, DG_K(DG_K_F0)));
    must = _mm256_and_si256(must, DG_K(DG_K_80));

    return _mm256_xor_si256(must, sc);
}


/*
 * Strict UTF-8 of the common kind, in fewer instructions than the above:
 * each byte ASCII, a continuation, or a lead E1..EF other than ED, which
 * announces two continuations and cannot start an overlong form, a
 * surrogate or anything above U+FFFF; and the continuations exactly where
 * the leads announce them.  *lead: the leads of the block before (in) and
 * of this one (out).  Returns non-zero in the bytes where that fails
 * (Chinese text passes; other text, valid or not, is left to the full
 * check).  A lead in the last 2 bytes of the last block is checked by the
 * caller (dg_mask_u8_cjk_cut()).
 */
static inline __attribute__((always_inline, target("avx2"))) __m256i
dg_mask_u8_cjk_avx2(__m256i in, __m256i *lead)
{
    __m256i  l, c, pp, e;

    /* E1..EF: in + 0x9f is 0x80..0x8e, below -113 as signed */
    l = _mm256_andnot_si256(_mm256_cmpeq_epi8(in, DG_K(DG_K_ED)),
                            _mm256_cmpgt_epi8(DG_K(DG_K_M113),
                                _mm256_add_epi8(in, DG_K(DG_K_9F))));
    /* 80..BF: below -64 as signed */
    c = _mm256_cmpgt_epi8(DG_K(DG_K_C0), in);

    /* the continuations the leads announce: 1 and 2 bytes on */
    pp = _mm256_permute2x128_si256(*lead, l, 0x21);
    e = _mm256_or_si256(_mm256_alignr_epi8(l, pp, 15),
                        _mm256_alignr_epi8(l, pp, 14));
    *lead = l;

    /* continuations not announced or missing; a non-ASCII byte that is
     * neither */
    return _mm256_or_si256(_mm256_xor_si256(c, e),
                           _mm256_xor_si256(_mm256_or_si256(c, l),
                               _mm256_cmpgt_epi8(_mm256_setzero_si256(),
                                                 in)));
}


/* the leads of dg_mask_u8_cjk_avx2() in the last 2 bytes of a block */
static inline __attribute__((always_inline, target("avx2"))) uint32_t
dg_mask_u8_cjk_cut(__m256i lead)
{
    return (uint32_t) _mm256_movemask_epi8(lead) >> 30;
}


/* non-zero where a lead byte in the last 3 of a block announces more
 * bytes than the block has left */
static inline __attribute__((always_inline, target("avx2"))) __m256i
dg_mask_u8_cut_avx2(__m256i in)
{
    return _mm256_subs_epu8(in, DG_K(DG_K_TMAX));
}


/* non-zero in each byte a JSON string must escape ('"', '\\', the
 * controls) and in 0x7f: a table for the high nibble and one for the low
 * one give the set of those bytes each could be; an escape when they
 * share one.  A non-ASCII byte gets 0 from the low table (pshufb) */
static inline __attribute__((always_inline, target("avx2"))) __m256i
dg_mask_esc_avx2(__m256i in)
{
    return _mm256_and_si256(
               _mm256_shuffle_epi8(DG_K(DG_K_ESC_HI),
                   _mm256_and_si256(_mm256_srli_epi16(in, 4),
                                    DG_K(DG_K_NIB))),
               _mm256_shuffle_epi8(DG_K(DG_K_ESC_LO), in));
}


/* bytes 0..k-1 of a block (k <= 32) */
static inline __attribute__((always_inline, target("avx2"))) __m256i
dg_mask_first_avx2(size_t k)
{
    return _mm256_cmpgt_epi8(_mm256_set1_epi8((char) k), DG_K(DG_K_IDX));
}


/*
 * avail: bytes readable from v (>= len).  A last block that is not full is
 * loaded whole when avail allows it, copied otherwise; either way its
 * bytes past the value become spaces, which are ASCII (a sequence cut
 * before them is TOO_SHORT), need no escape and are kept out of the
 * counts.
 */
__attribute__((target("avx2,popcnt")))
static int
dg_mask_vscan_avx2_avail(const uint8_t *v, size_t len, size_t avail,
    dg_mask_vinfo_t *vi)
{
    __m256i    in, prev, err, hi, escv;
    uint8_t    tail[32];
    uint64_t   lead;
    size_t     i, k, n;
    unsigned   valid, m;

    prev = _mm256_setzero_si256();
    err = _mm256_setzero_si256();
    hi = _mm256_setzero_si256();
    escv = _mm256_setzero_si256();
    lead = 0;
    n = 0;

    for (i = 0; i < len; i += 32) {
        k = len - i;

        if (k >= 32) {
            in = _mm256_loadu_si256((const __m256i *) (v + i));
            valid = 0xffffffff;

        } else {
            if (avail - i >= 32) {
                in = _mm256_loadu_si256((const __m256i *) (v + i));

            } else {
                /* never read past what the caller allows: fixed-size
                 * copies, overlapping, not a memcpy call */
                memset(tail, ' ', sizeof(tail));
                if (k >= 16) {
                    memcpy(tail, v + i, 16);
                    memcpy(tail + k - 16, v + i + k - 16, 16);
                } else if (k >= 8) {
                    memcpy(tail, v + i, 8);
                    memcpy(tail + k - 8, v + i + k - 8, 8);
                } else if (k >= 4) {
                    memcpy(tail, v + i, 4);
                    memcpy(tail + k - 4, v + i + k - 4, 4);
                } else {
                    tail[0] = v[i];
                    tail[k >> 1] = v[i + (k >> 1)];
                    tail[k - 1] = v[i + k - 1];
                }
                in = _mm256_loadu_si256((const __m256i *) tail);
            }

            in = _mm256_blendv_epi8(DG_K(DG_K_SP), in,
                                    dg_mask_first_avx2(k));
            valid = (1u << k) - 1;
        }

        escv = _mm256_or_si256(escv, dg_mask_esc_avx2(in));

        if (_mm256_movemask_epi8(in) == 0) {
            /* all ASCII: one code point per byte; the only error left is
             * a sequence the block before left unfinished */
            n += (size_t) __builtin_popcount(valid);
            if (i < 64) {
                lead |= (uint64_t) valid << i;
            }
            err = _mm256_or_si256(err, dg_mask_u8_cut_avx2(prev));
            prev = in;
            continue;
        }

        hi = _mm256_or_si256(hi, in);

        /* bytes that start a code point: all but 0x80..0xbf */
        m = (unsigned) _mm256_movemask_epi8(_mm256_cmpgt_epi8(in,
                                             DG_K(DG_K_BF))) & valid;
        n += (size_t) __builtin_popcount(m);
        if (i < 64) {
            lead |= (uint64_t) m << i;
        }

        err = _mm256_or_si256(err, dg_mask_u8_err_avx2(in, prev));
        prev = in;
    }

    /* the value fills its last block: a lead byte in the last 3 bytes
     * announcing more than is left */
    err = _mm256_or_si256(err, dg_mask_u8_cut_avx2(prev));

    if (!_mm256_testz_si256(err, err)) {
        return -1;
    }

    vi->n = n;
    vi->lead = lead;
    vi->cls = (!_mm256_testz_si256(escv, escv) ? DG_VS_ESC : 0)
              | (_mm256_movemask_epi8(hi) ? DG_VS_HIGH : 0);

    return 0;
}


__attribute__((target("avx2,popcnt")))
static int
dg_mask_vscan_avx2(const uint8_t *v, size_t len, dg_mask_vinfo_t *vi)
{
    return dg_mask_vscan_avx2_avail(v, len, len, vi);
}

#endif


static int dg_mask_vscan_resolve(const uint8_t *v, size_t len,
    dg_mask_vinfo_t *vi);

static int  (*dg_mask_vscan_long)(const uint8_t *v, size_t len,
    dg_mask_vinfo_t *vi) = dg_mask_vscan_resolve;


/* values shorter than a block (most ids, phones, names) cost less in
 * words than in a padded vector */
static inline int
dg_mask_vscan(const uint8_t *v, size_t len, dg_mask_vinfo_t *vi)
{
    if (len < 32) {
        return dg_mask_vscan_scalar(v, len, vi);
    }

    return dg_mask_vscan_long(v, len, vi);
}


#if (DG_MASK_X86)
static void dg_mask_span_init(void);
#endif


/* the first call of either picks the implementations of the value scanner
 * and of dg_mask_apply_span by CPU (DG_MASK_NOSIMD=1 forces the scalar
 * ones, as for the string scanner in dg_mask.c) */
static void
dg_mask_simd_init(void)
{
    const char  *e;

    dg_mask_vscan_long = dg_mask_vscan_scalar;
    memset(dg_mask_span_fn, 0, sizeof(dg_mask_span_fn));

#if (DG_MASK_X86)
    e = getenv("DG_MASK_NOSIMD");
    if (e == NULL || *e != '1') {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2")
            && __builtin_cpu_supports("popcnt"))
        {
            dg_mask_k32_init();
            dg_mask_vscan_long = dg_mask_vscan_avx2;

            if (__builtin_cpu_supports("bmi")) {
                dg_mask_span_init();
            }
        }
    }
#else
    (void) e;
#endif
}


static int
dg_mask_vscan_resolve(const uint8_t *v, size_t len, dg_mask_vinfo_t *vi)
{
    dg_mask_simd_init();

    return dg_mask_vscan_long(v, len, vi);
}


int
dg_mask_vscan_test(const uint8_t *v, size_t len, int simd, size_t *n,
    unsigned *cls, uint64_t *lead)
{
    dg_mask_vinfo_t  vi;
    int              rc;

    if (simd) {
        /* resolve the implementation first */
        (void) dg_mask_vscan_long(v, 0, &vi);
        rc = dg_mask_vscan_long(v, len, &vi);

    } else {
        rc = dg_mask_vscan_scalar(v, len, &vi);
    }

    if (rc == 0) {
        *n = vi.n;
        *cls = vi.cls;
        *lead = vi.lead;
    }

    return rc;
}


/* strict UTF-8: the number of code points or -1 */
static long
dg_mask_utf8_count(const uint8_t *p, size_t n)
{
    dg_mask_vinfo_t  vi;

    if (dg_mask_vscan(p, n, &vi) != 0) {
        return -1;
    }

    return (long) vi.n;
}


/* byte offset of code point k (value already validated) */
static size_t
dg_mask_utf8_off(const uint8_t *p, size_t n, size_t k)
{
    size_t  i;

    for (i = 0; i < n && k; k--) {
        i++;
        while (i < n && (p[i] & 0xc0) == 0x80) {
            i++;
        }
    }

    return i;
}


/* first a and last b code points kept, one '*' per hidden one */
static int
dg_mask_keep(dg_mask_out_t *o, const uint8_t *v, size_t len, size_t n,
    size_t a, size_t b)
{
    size_t  pa, pb;
    int     rc;

    if (n < a + b + 1) {
        return dg_mask_put_stars(o, n);
    }

    pa = dg_mask_utf8_off(v, len, a);
    pb = dg_mask_utf8_off(v, len, n - b);

    rc = dg_mask_put_escaped(o, v, pa);
    if (rc == 0) {
        rc = dg_mask_put_stars(o, n - a - b);
    }
    if (rc == 0) {
        rc = dg_mask_put_escaped(o, v + pb, len - pb);
    }

    return rc;
}


static int
dg_mask_email(dg_mask_out_t *o, const uint8_t *v, size_t len)
{
    size_t  at;
    int     rc;

    for (at = len; at > 0; at--) {
        if (v[at - 1] == '@') {
            break;
        }
    }

    if (at == 0) {
        /* no '@': nothing to keep */
        return dg_mask_out_put(o, (const uint8_t *) "***", 3);
    }

    at--;

    if (dg_mask_utf8_count(v, at) >= 2) {
        rc = dg_mask_put_escaped(o, v, dg_mask_utf8_off(v, at, 1));
        if (rc != 0) {
            return rc;
        }
    }

    rc = dg_mask_out_put(o, (const uint8_t *) "***", 3);
    if (rc != 0) {
        return rc;
    }

    return dg_mask_put_escaped(o, v + at, len - at);
}


/* 0771-5551234 -> 0771-*****34; without '-': keep(3,2) */
static int
dg_mask_landline(dg_mask_out_t *o, const uint8_t *v, size_t len, size_t n)
{
    size_t  dash, rn;
    int     rc;

    for (dash = 0; dash < len; dash++) {
        if (v[dash] == '-') {
            break;
        }
    }

    if (dash == len || dash == 0) {
        return dg_mask_keep(o, v, len, n, 3, 2);
    }

    dash++;
    rc = dg_mask_put_escaped(o, v, dash);
    if (rc != 0) {
        return rc;
    }

    rn = dg_mask_utf8_count(v + dash, len - dash);

    return dg_mask_keep(o, v + dash, len - dash, rn, 0, 2);
}


/* 10.2.3.4 -> 10.*.*.* */
static int
dg_mask_ipv4(dg_mask_out_t *o, const uint8_t *v, size_t len)
{
    size_t  i, dot;
    int     rc, seg;

    for (dot = 0; dot < len; dot++) {
        if (v[dot] == '.') {
            break;
        }
    }

    if (dot == len || dot == 0) {
        return dg_mask_out_put(o, (const uint8_t *) "***", 3);
    }

    rc = dg_mask_put_escaped(o, v, dot + 1);
    if (rc != 0) {
        return rc;
    }

    seg = 0;

    for (i = dot + 1; i <= len; i++) {
        if (i == len || v[i] == '.') {
            if (seg) {
                rc = dg_mask_out_put(o, (const uint8_t *) "*", 1);
                if (rc != 0) {
                    return rc;
                }
            }
            if (i < len) {
                rc = dg_mask_out_put(o, (const uint8_t *) ".", 1);
                if (rc != 0) {
                    return rc;
                }
            }
            seg = 0;

        } else {
            seg = 1;
        }
    }

    return 0;
}


static int
dg_mask_digits4(const uint8_t *v)
{
    return v[0] >= '0' && v[0] <= '9' && v[1] >= '0' && v[1] <= '9'
           && v[2] >= '0' && v[2] <= '9' && v[3] >= '0' && v[3] <= '9';
}


/* 1990-03-07 -> 1990; 07/03/1990 -> 1990; otherwise *** */
static int
dg_mask_date_year(dg_mask_out_t *o, const uint8_t *v, size_t len)
{
    if (len >= 4 && dg_mask_digits4(v)) {
        return dg_mask_out_put(o, v, 4);
    }

    if (len >= 4 && dg_mask_digits4(v + len - 4)) {
        return dg_mask_out_put(o, v + len - 4, 4);
    }

    return dg_mask_out_put(o, (const uint8_t *) "***", 3);
}


static int
dg_mask_hash(dg_mask_out_t *o, const uint8_t *v, size_t len,
    const uint8_t *key, size_t keylen)
{
    static const char   hex[] = "0123456789abcdef";
    unsigned char       md[EVP_MAX_MD_SIZE];
    unsigned int        mdlen, i;
    uint8_t             out[32];

    if (key == NULL || keylen == 0) {
        return DG_MASK_E_CONF;
    }

    mdlen = 0;
    if (HMAC(EVP_sha256(), key, (int) keylen, v, len, md, &mdlen) == NULL
        || mdlen < 16)
    {
        return DG_MASK_E_CONF;
    }

    for (i = 0; i < 16; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }

    return dg_mask_out_put(o, out, 32);
}


/*
 * 6222021234567890123 -> ************0123: always 12 '*' then the last 4
 * characters, so the length of the card is not shown either; a value of 4
 * characters or fewer becomes one '*' per character.
 */
static int
dg_mask_bank_card(dg_mask_out_t *o, const uint8_t *v, size_t len,
    int quoted)
{
    long    n;
    size_t  pb;
    int     rc;

    n = dg_mask_utf8_count(v, len);
    if (n < 0) {
        return DG_MASK_E_UTF8;
    }

    if (quoted) {
        rc = dg_mask_out_put(o, (const uint8_t *) "\"", 1);
        if (rc != 0) {
            return rc;
        }
    }

    if (n <= 4) {
        rc = dg_mask_put_stars(o, n);

    } else {
        pb = dg_mask_utf8_off(v, len, n - 4);
        rc = dg_mask_put_stars(o, 12);
        if (rc == 0) {
            rc = dg_mask_put_escaped(o, v + pb, len - pb);
        }
    }

    if (rc == 0 && quoted) {
        rc = dg_mask_out_put(o, (const uint8_t *) "\"", 1);
    }

    return rc;
}


/* bit 0: a byte JSON needs escaped (or 0x7f), bit 1: a non-ASCII byte */
static unsigned
dg_mask_classify(const uint8_t *v, size_t len)
{
    uint64_t  w, x, r, h;
    uint32_t  w4, x4, r4, h4;
    size_t    i;
    unsigned  c;

#if (DG_MASK_X86)

    if (len >= 16) {
        __m128i   q, bs, del, ctl, a, e, m;

        /* 16 bytes at a time, the last block overlapping the one before */
        q = _mm_set1_epi8('"');
        bs = _mm_set1_epi8('\\');
        del = _mm_set1_epi8(0x7f);
        ctl = _mm_set1_epi8(0x1f);
        e = _mm_setzero_si128();
        m = _mm_setzero_si128();

        for (i = 0; ; i += 16) {
            if (i + 16 > len) {
                i = len - 16;
            }
            a = _mm_loadu_si128((const __m128i *) (v + i));
            m = _mm_or_si128(m, a);
            e = _mm_or_si128(e, _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(a, q), _mm_cmpeq_epi8(a, bs)),
                    _mm_or_si128(_mm_cmpeq_epi8(a, del),
                                 _mm_cmpeq_epi8(_mm_min_epu8(a, ctl), a))));
            if (i + 16 >= len) {
                break;
            }
        }

        return (_mm_movemask_epi8(e) ? 1 : 0)
               | (_mm_movemask_epi8(m) ? 2 : 0);
    }

#endif

#define DG_ONES  0x0101010101010101ull
#define DG_HIGH  0x8080808080808080ull
#define DG_ONES4  0x01010101u
#define DG_HIGH4  0x80808080u

    r = 0;
    h = 0;

    if (len < 8) {
        if (len < 4) {
            c = 0;
            for (i = 0; i < len; i++) {
                if (v[i] >= 0x80) {
                    c |= 2;
                } else if (!dg_mask_plain[v[i]]) {
                    c |= 1;
                }
            }
            return c;
        }

        /* 4 to 7 bytes: two words, overlapping (exact as below) */
        memcpy(&w4, v, 4);
        h4 = w4;
        x4 = (w4 - DG_ONES4 * 0x20)
             | ((w4 ^ (DG_ONES4 * '"')) - DG_ONES4)
             | ((w4 ^ (DG_ONES4 * '\\')) - DG_ONES4)
             | ((w4 ^ (DG_ONES4 * 0x7f)) - DG_ONES4);
        r4 = x4 & ~w4;
        memcpy(&w4, v + len - 4, 4);
        h4 |= w4;
        x4 = (w4 - DG_ONES4 * 0x20)
             | ((w4 ^ (DG_ONES4 * '"')) - DG_ONES4)
             | ((w4 ^ (DG_ONES4 * '\\')) - DG_ONES4)
             | ((w4 ^ (DG_ONES4 * 0x7f)) - DG_ONES4);
        r4 |= x4 & ~w4;
        return ((r4 & DG_HIGH4) ? 1 : 0) | ((h4 & DG_HIGH4) ? 2 : 0);
    }

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, v + i, 8);
        h |= w;
        /* high bit of a byte set where the byte is < 0x20, '"', '\\' or
         * 0x7f (exact for ASCII bytes; non-ASCII ones are seen in h) */
        x = (w - DG_ONES * 0x20)
            | ((w ^ (DG_ONES * '"')) - DG_ONES)
            | ((w ^ (DG_ONES * '\\')) - DG_ONES)
            | ((w ^ (DG_ONES * 0x7f)) - DG_ONES);
        r |= x & ~w;
    }

    if (i < len) {
        /* the last bytes: one more word overlapping the previous one */
        memcpy(&w, v + len - 8, 8);
        h |= w;
        x = (w - DG_ONES * 0x20)
            | ((w ^ (DG_ONES * '"')) - DG_ONES)
            | ((w ^ (DG_ONES * '\\')) - DG_ONES)
            | ((w ^ (DG_ONES * 0x7f)) - DG_ONES);
        r |= x & ~w;
    }

    c = ((r & DG_HIGH) ? 1 : 0) | ((h & DG_HIGH) ? 2 : 0);

#undef DG_ONES
#undef DG_HIGH
#undef DG_ONES4
#undef DG_HIGH4

    return c;
}


/* n <= 32 bytes without a library call */
static inline __attribute__((always_inline)) void
dg_mask_cpy32(uint8_t *d, const uint8_t *s, size_t n)
{
    uint64_t  a, b, c, e;
    uint32_t  x, y;

    if (n >= 8) {
        if (n > 16) {
            /* two 16-byte moves, overlapping (a kept prefix of six
             * Chinese characters is 18 bytes) */
            memcpy(&a, s, 8);
            memcpy(&b, s + 8, 8);
            memcpy(&c, s + n - 16, 8);
            memcpy(&e, s + n - 8, 8);
            memcpy(d, &a, 8);
            memcpy(d + 8, &b, 8);
            memcpy(d + n - 16, &c, 8);
            memcpy(d + n - 8, &e, 8);
            return;
        }
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
        return;
    }

    if (n >= 4) {
        memcpy(&x, s, 4);
        memcpy(&y, s + n - 4, 4);
        memcpy(d, &x, 4);
        memcpy(d + n - 4, &y, 4);
        return;
    }

    while (n--) {
        *d++ = *s++;
    }
}


/* copy n bytes without a library call for short runs */
static inline void
dg_mask_cpy(uint8_t *d, const uint8_t *s, size_t n)
{
    if (n > 32) {
        memcpy(d, s, n);
        return;
    }

    dg_mask_cpy32(d, s, n);
}


/* a keep-like value of n code points too short to keep any: all stars */
static inline int
dg_mask_all_stars(unsigned method, size_t n, size_t a, size_t b)
{
    return n < a + b + 1 || (method == DG_MASK_BANK_CARD && n <= 4);
}


/* the byte offset of the last b code points of the valid UTF-8 at v
 * (high: it has a non-ASCII byte) */
static inline size_t
dg_mask_tail_off(const uint8_t *v, size_t len, size_t b, int high)
{
    size_t  pb;

    if (!high) {
        return len - b;
    }

    for (pb = len; b; b--) {
        do {
            pb--;
        } while (pb > 0 && (v[pb] & 0xc0) == 0x80);
    }

    return pb;
}


/* byte offset of code point k of a scanned value */
static inline size_t
dg_mask_vinfo_off(const dg_mask_vinfo_t *vi, const uint8_t *v, size_t len,
    size_t k)
{
    uint64_t  m;
    size_t    i;

    if (!(vi->cls & DG_VS_HIGH)) {
        return k < len ? k : len;
    }

    m = vi->lead;
    if (k < 64 && m) {
        for (i = k; i && m; i--) {
            m &= m - 1;
        }
        if (m) {
            return (size_t) __builtin_ctzll(m);
        }
    }

    return dg_mask_utf8_off(v, len, k);
}


/*
 * The common case written straight into the output buffer: keep-like
 * methods, address, bank_card and email on a value that needs no
 * escaping, after one scan of the value (dg_mask_vscan).  Returns 0
 * (done), a negative error, or 1 (not handled: take the general way).
 */
static int
dg_mask_apply_fast(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, int quoted)
{
    dg_mask_vinfo_t  vi;
    const uint8_t   *at;
    uint8_t         *d;
    size_t           a, b, n, pa, pb, k;
    int              rc;

    switch (spec->method) {
    case DG_MASK_ID_CARD:
        a = 6;
        b = 4;
        break;
    case DG_MASK_PHONE:
        a = 3;
        b = 4;
        break;
    case DG_MASK_NAME:
        a = 1;
        b = 0;
        break;
    case DG_MASK_PLATE:
        a = 3;
        b = 1;
        break;
    case DG_MASK_KEEP:
        a = spec->a;
        b = spec->b;
        break;
    case DG_MASK_BANK_CARD:
        a = 0;
        b = 4;
        break;
    case DG_MASK_ADDRESS:
        a = spec->a ? spec->a : 6;
        b = 0;
        break;
    case DG_MASK_EMAIL:
        a = 0;
        b = 0;
        break;
    default:
        return 1;
    }

    rc = dg_mask_out_room(o, len + 32);
    if (rc != 0) {
        return rc;
    }

    if (dg_mask_vscan(v, len, &vi) != 0) {
        /* the general way fails the same on every method */
        return DG_MASK_E_UTF8;
    }

    if (vi.cls & DG_VS_ESC) {
        return 1;
    }

    n = vi.n;
    d = o->buf + o->len;

    if (quoted) {
        *d++ = '"';
    }

    if (spec->method == DG_MASK_EMAIL) {
        for (at = v + len; at > v; at--) {
            if (at[-1] == '@') {
                break;
            }
        }

        if (at == v) {
            memcpy(d, "***", 3);
            d += 3;

        } else {
            at--;
            k = dg_mask_vinfo_off(&vi, v, len, 1);
            if (at > v && k < (size_t) (at - v)) {
                /* two or more characters before '@': keep the first */
                dg_mask_cpy(d, v, k);
                d += k;
            }
            memcpy(d, "***", 3);
            d += 3;
            dg_mask_cpy(d, at, v + len - at);
            d += v + len - at;
        }

    } else if (spec->method == DG_MASK_ADDRESS) {
        if (n <= a) {
            memset(d, '*', n);
            d += n;

        } else {
            pa = dg_mask_vinfo_off(&vi, v, len, a);
            dg_mask_cpy(d, v, pa);
            d += pa;
            memcpy(d, "****", 4);
            d += 4;
        }

    } else if (dg_mask_all_stars(spec->method, n, a, b)) {
        memset(d, '*', n);
        d += n;

    } else {
        pa = dg_mask_vinfo_off(&vi, v, len, a);

        pb = dg_mask_tail_off(v, len, b, vi.cls & DG_VS_HIGH);

        dg_mask_cpy(d, v, pa);
        d += pa;
        k = (spec->method == DG_MASK_BANK_CARD) ? 12 : n - a - b;
        if (k <= 16) {
            /* the room asked for above takes 16 bytes here */
            memcpy(d, DG_MASK_STARS, 16);
        } else {
            memset(d, '*', k);
        }
        d += k;
        dg_mask_cpy(d, v + pb, len - pb);
        d += len - pb;
    }

    if (quoted) {
        *d++ = '"';
    }

    o->len = d - o->buf;
    return 0;
}


int
dg_mask_apply(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, const uint8_t *key, size_t keylen,
    int quoted)
{
    long    n;
    size_t  a;
    int     rc;

    if (spec->method != DG_MASK_CLEAR) {
        rc = dg_mask_apply_fast(o, spec, v, len, quoted);
        if (rc <= 0) {
            return rc;
        }
    }

    if (spec->method == DG_MASK_BANK_CARD) {
        return dg_mask_bank_card(o, v, len, quoted);
    }

    n = dg_mask_utf8_count(v, len);
    if (n < 0) {
        return DG_MASK_E_UTF8;
    }

    if (spec->method == DG_MASK_NULL || spec->method == DG_MASK_DROP) {
        if (quoted) {
            if (spec->method == DG_MASK_DROP) {
                return 0;
            }
            return dg_mask_out_put(o, (const uint8_t *) "null", 4);
        }
        return dg_mask_out_put(o, (const uint8_t *) "***", 3);
    }

    if (quoted) {
        rc = dg_mask_out_put(o, (const uint8_t *) "\"", 1);
        if (rc != 0) {
            return rc;
        }
    }

    switch (spec->method) {

    case DG_MASK_CLEAR:
        rc = dg_mask_put_escaped(o, v, len);
        break;

    case DG_MASK_ID_CARD:
        rc = dg_mask_keep(o, v, len, n, 6, 4);
        break;

    case DG_MASK_PHONE:
        rc = dg_mask_keep(o, v, len, n, 3, 4);
        break;

    case DG_MASK_NAME:
        rc = dg_mask_keep(o, v, len, n, 1, 0);
        break;

    case DG_MASK_EMAIL:
        rc = dg_mask_email(o, v, len);
        break;

    case DG_MASK_ADDRESS:
        a = spec->a ? spec->a : 6;
        if ((size_t) n <= a) {
            rc = dg_mask_put_stars(o, n);
            break;
        }
        rc = dg_mask_put_escaped(o, v, dg_mask_utf8_off(v, len, a));
        if (rc == 0) {
            rc = dg_mask_put_stars(o, 4);
        }
        break;

    case DG_MASK_KEEP:
        rc = dg_mask_keep(o, v, len, n, spec->a, spec->b);
        break;

    case DG_MASK_LANDLINE:
        rc = dg_mask_landline(o, v, len, n);
        break;

    case DG_MASK_PLATE:
        rc = dg_mask_keep(o, v, len, n, 3, 1);
        break;

    case DG_MASK_IPV4:
        rc = dg_mask_ipv4(o, v, len);
        break;

    case DG_MASK_DATE_YEAR:
        rc = dg_mask_date_year(o, v, len);
        break;

    case DG_MASK_HASH:
        rc = dg_mask_hash(o, v, len, key, keylen);
        break;

    case DG_MASK_REDACT:
    default:
        /* unknown methods fail closed as redact */
        rc = dg_mask_out_put(o, (const uint8_t *) "***", 3);
        break;
    }

    if (rc == 0 && quoted) {
        rc = dg_mask_out_put(o, (const uint8_t *) "\"", 1);
    }

    return rc;
}


int
dg_mask_value(const dg_mask_spec_t *spec, const uint8_t *v, size_t len,
    const uint8_t *hash_key, size_t hash_key_len, uint8_t *out,
    size_t outcap)
{
    dg_mask_out_t  o;
    int            rc;

    memset(&o, 0, sizeof(o));
    o.buf = out;
    o.cap = outcap;

    rc = dg_mask_apply(&o, spec, v, len, hash_key, hash_key_len, 1);
    if (rc != 0) {
        return rc;
    }

    return (int) o.len;
}


/*
 * dg_mask_span_fn: dg_mask_apply(..., 1) of a value in a stream's input
 * span, readable up to end.  With AVX2 a value of up to 96 bytes is
 * loaded in whole blocks (the bytes after it are replaced, never used)
 * and a longer one is scanned without copying its last block; the masked
 * value is written with 32-byte stores into the room asked for
 * (len + 64).  The keep-like methods, address and bank_card, on a value
 * that needs no escaping, are done as dg_mask_apply_fast() does them;
 * everything else is left to dg_mask_apply() (1).  Without AVX2 (or with
 * DG_MASK_NOSIMD=1) the table is emptied at the first call.
 */

static int dg_mask_span_resolve(dg_mask_out_t *o,
    const dg_mask_spec_t *spec, const uint8_t *v, size_t len,
    const uint8_t *end);

dg_mask_span_pt  dg_mask_span_fn[DG_MASK_METHOD_MAX] = {
    [DG_MASK_ID_CARD] = dg_mask_span_resolve,
    [DG_MASK_PHONE] = dg_mask_span_resolve,
    [DG_MASK_NAME] = dg_mask_span_resolve,
    [DG_MASK_PLATE] = dg_mask_span_resolve,
    [DG_MASK_KEEP] = dg_mask_span_resolve,
    [DG_MASK_BANK_CARD] = dg_mask_span_resolve,
    [DG_MASK_ADDRESS] = dg_mask_span_resolve
};


/* the kept prefix (a) and suffix (b) of the methods done here; 0: none */
static inline __attribute__((always_inline)) int
dg_mask_span_ab(const dg_mask_spec_t *spec, size_t *a, size_t *b)
{
    switch (spec->method) {
    case DG_MASK_ID_CARD:
        *a = 6;
        *b = 4;
        return 1;
    case DG_MASK_PHONE:
        *a = 3;
        *b = 4;
        return 1;
    case DG_MASK_NAME:
        *a = 1;
        *b = 0;
        return 1;
    case DG_MASK_PLATE:
        *a = 3;
        *b = 1;
        return 1;
    case DG_MASK_KEEP:
        *a = spec->a;
        *b = spec->b;
        return 1;
    case DG_MASK_BANK_CARD:
        *a = 0;
        *b = 4;
        return 1;
    case DG_MASK_ADDRESS:
        *a = spec->a ? spec->a : 6;
        *b = 0;
        return 1;
    }

    return 0;
}


#if (DG_MASK_X86)

/* n '*' in 32-byte stores: up to 31 more bytes are written */
static inline __attribute__((always_inline, target("avx2"))) void
dg_mask_span_stars(uint8_t *d, size_t n)
{
    size_t  i;

    i = 0;
    do {
        _mm256_storeu_si256((__m256i *) (d + i), DG_K(DG_K_STAR));
        i += 32;
    } while (i < n);
}


static int dg_mask_apply_span_long(dg_mask_out_t *o,
    const dg_mask_spec_t *spec, const uint8_t *v, size_t len,
    const uint8_t *end);


/*
 * Write the masked value of a scanned, escape-free value (n code points;
 * lead: the code point starts of bytes 0-63; high: not all ASCII) as
 * dg_mask_apply_fast() does, with 32-byte stores: o has len + 64 bytes of
 * room and 32 bytes from v may be read.  leaf: without a library call, so
 * that the caller stays a leaf; a kept prefix or suffix longer than 32
 * bytes, or a cut past byte 63, is left to dg_mask_apply_span_long() (its
 * bytes written so far are past o->len, so nothing is done yet).
 */
static inline __attribute__((always_inline, target("avx2,bmi"))) int
dg_mask_span_put(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, const uint8_t *end, unsigned method,
    size_t a, size_t b, size_t n, uint64_t lead, int high, const int leaf)
{
    uint8_t  *d;
    uint64_t  m;
    size_t    pa, pb, k;

    d = o->buf + o->len;
    *d++ = '"';

    if (method == DG_MASK_ADDRESS ? n <= a
        : dg_mask_all_stars(method, n, a, b))
    {
        /* too short to keep anything */
        dg_mask_span_stars(d, n);
        d += n;
        *d++ = '"';
        o->len = d - o->buf;
        return 0;
    }

    /* the byte offset of code point a (dg_mask_vinfo_off) */
    if (!high) {
        pa = a;

    } else {
        m = lead;
        if (a < 64) {
            /* a constant in most copies: unrolled, one blsr each */
#pragma GCC unroll 8
            for (k = a; k; k--) {
                m &= m - 1;
            }
        }

        if (a < 64 && m) {
            pa = (size_t) __builtin_ctzll(m);

        } else if (leaf) {
            return dg_mask_apply_span_long(o, spec, v, len, end);

        } else {
            pa = dg_mask_utf8_off(v, len, a);
        }
    }

    if (pa <= 32) {
        _mm256_storeu_si256((__m256i *) d,
                            _mm256_loadu_si256((const __m256i *) v));

    } else if (leaf) {
        return dg_mask_apply_span_long(o, spec, v, len, end);

    } else {
        memcpy(d, v, pa);
    }
    d += pa;

    if (method == DG_MASK_ADDRESS) {
        memcpy(d, "****\"", 5);
        d += 5;
        o->len = d - o->buf;
        return 0;
    }

    pb = dg_mask_tail_off(v, len, b, high);

    k = (method == DG_MASK_BANK_CARD) ? 12 : n - a - b;
    dg_mask_span_stars(d, k);
    d += k;

    k = len - pb;
    if (k <= 32 && (size_t) (end - v) - pb >= 32) {
        _mm256_storeu_si256((__m256i *) d,
                            _mm256_loadu_si256((const __m256i *) (v + pb)));

    } else if (k <= 32) {
        dg_mask_cpy32(d, v + pb, k);

    } else if (leaf) {
        return dg_mask_apply_span_long(o, spec, v, len, end);

    } else {
        memcpy(d, v + pb, k);
    }
    d += k;

    *d++ = '"';
    o->len = d - o->buf;
    return 0;
}


/*
 * The common case, kept a leaf: a value of up to 96 bytes, the blocks
 * that hold it readable, room in the buffer.  Whole blocks are loaded; in
 * the last one the bytes after the value become spaces (ASCII: a sequence
 * cut by the end is TOO_SHORT; no escape; kept out of the code point
 * starts).  One copy per method, so that its cuts are constants, and
 * values of one block apart from longer ones (fewer registers).
 */

/* the value fits the leaf: its last block is readable, the room is there */
#define dg_mask_span_fits(o, v, len, end)                                    \
    ((len) - 1 < 96                                                           \
     && (size_t) ((end) - (v)) >= (((len) - 1) & ~(size_t) 31) + 32         \
     && (len) + 64 <= (o)->cap - (o)->len)


static inline __attribute__((always_inline, target("avx2,popcnt,bmi"))) int
dg_mask_span_one(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, const uint8_t *end, const unsigned method,
    size_t a, size_t b)
{
    __m256i   in, lm, esc, l3, bad;
    uint64_t  lead;

    lm = dg_mask_first_avx2(len);
    in = _mm256_blendv_epi8(DG_K(DG_K_SP),
                            _mm256_loadu_si256((const __m256i *) v), lm);
    esc = dg_mask_esc_avx2(in);

    if (_mm256_movemask_epi8(in) == 0) {
        if (!_mm256_testz_si256(esc, esc)) {
            /* the general way */
            return 1;
        }

        return dg_mask_span_put(o, spec, v, len, end, method, a, b, len, 0, 0,
                                1);
    }

    l3 = _mm256_setzero_si256();
    bad = dg_mask_u8_cjk_avx2(in, &l3);

    if (!_mm256_testz_si256(bad, bad) || dg_mask_u8_cjk_cut(l3)) {
        /* not the common kind: the full check */
        if (!_mm256_testz_si256(_mm256_or_si256(dg_mask_u8_err_avx2(in,
                                                    _mm256_setzero_si256()),
                                                dg_mask_u8_cut_avx2(in)),
                                _mm256_cmpeq_epi8(in, in)))
        {
            return DG_MASK_E_UTF8;
        }
    }

    if (!_mm256_testz_si256(esc, esc)) {
        return 1;
    }

    lead = (uint32_t) _mm256_movemask_epi8(_mm256_and_si256(lm,
                          _mm256_cmpgt_epi8(in, DG_K(DG_K_BF))));

    return dg_mask_span_put(o, spec, v, len, end, method, a, b,
                            (size_t) __builtin_popcountll(lead), lead, 1, 1);
}


/* a block of a value: accumulates the escapes and the failures of the
 * common-kind check (*cut: a sequence the block before left unfinished
 * before an ASCII block), returns its code point starts */
static inline __attribute__((always_inline, target("avx2"))) uint32_t
dg_mask_span_blk(__m256i in, __m256i *l3, __m256i *bad, uint32_t *cut,
    __m256i *esc)
{
    *esc = _mm256_or_si256(*esc, dg_mask_esc_avx2(in));

    if (_mm256_movemask_epi8(in) == 0) {
        *cut |= dg_mask_u8_cjk_cut(*l3);
        *l3 = _mm256_setzero_si256();
        return 0xffffffff;
    }

    *bad = _mm256_or_si256(*bad, dg_mask_u8_cjk_avx2(in, l3));

    return (uint32_t) _mm256_movemask_epi8(_mm256_cmpgt_epi8(in,
                                               DG_K(DG_K_BF)));
}


/* two or three blocks: the full ones, then the last; text not of the
 * common kind (dg_mask_u8_cjk_avx2) is checked the long way */
static inline __attribute__((always_inline, target("avx2,popcnt,bmi"))) int
dg_mask_span_more(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, const uint8_t *end, const unsigned method,
    size_t a, size_t b)
{
    __m256i   in, lm, l3, bad, esc;
    uint64_t  lead;
    uint32_t  m, cut;
    size_t    ib, n;

    ib = (len - 1) & ~(size_t) 31;      /* 32 or 64 */
    cut = 0;
    l3 = _mm256_setzero_si256();
    bad = _mm256_setzero_si256();
    esc = _mm256_setzero_si256();

    in = _mm256_loadu_si256((const __m256i *) v);
    m = dg_mask_span_blk(in, &l3, &bad, &cut, &esc);
    lead = m;
    n = (size_t) __builtin_popcount(m);

    if (ib == 64) {
        in = _mm256_loadu_si256((const __m256i *) (v + 32));
        m = dg_mask_span_blk(in, &l3, &bad, &cut, &esc);
        lead |= (uint64_t) m << 32;
        n += (size_t) __builtin_popcount(m);
    }

    lm = dg_mask_first_avx2(len - ib);
    in = _mm256_blendv_epi8(DG_K(DG_K_SP),
                            _mm256_loadu_si256((const __m256i *) (v + ib)),
                            lm);
    m = dg_mask_span_blk(in, &l3, &bad, &cut, &esc) & (uint32_t) (
            _mm256_movemask_epi8(lm));
    n += (size_t) __builtin_popcount(m);
    if (ib == 32) {
        lead |= (uint64_t) m << 32;
    }

    if (!_mm256_testz_si256(bad, bad) || (cut | dg_mask_u8_cjk_cut(l3))) {
        return dg_mask_apply_span_long(o, spec, v, len, end);
    }

    if (!_mm256_testz_si256(esc, esc)) {
        return 1;
    }

    /* valid: as many code points as bytes only when all are ASCII */
    return dg_mask_span_put(o, spec, v, len, end, method, a, b, n, lead,
                            n != len, 1);
}


#define DG_MASK_SPAN_FN(name, method, a, b)                                  \
    __attribute__((target("avx2,popcnt,bmi"), noinline))                      \
    static int                                                                \
    name##_more(dg_mask_out_t *o, const dg_mask_spec_t *spec,                 \
        const uint8_t *v, size_t len, const uint8_t *end)                     \
    {                                                                         \
        if (!dg_mask_span_fits(o, v, len, end)) {                             \
            return dg_mask_apply_span_long(o, spec, v, len, end);             \
        }                                                                     \
                                                                              \
        return dg_mask_span_more(o, spec, v, len, end, method, a, b);         \
    }                                                                         \
                                                                              \
    __attribute__((target("avx2,popcnt,bmi"), noinline))                      \
    static int                                                                \
    name(dg_mask_out_t *o, const dg_mask_spec_t *spec, const uint8_t *v,      \
        size_t len, const uint8_t *end)                                       \
    {                                                                         \
        /* one block, readable, room: else the checks in full */             \
        if (len - 1 < 32 && end - v >= 32                                     \
            && len + 64 <= o->cap - o->len)                                   \
        {                                                                     \
            return dg_mask_span_one(o, spec, v, len, end, method, a, b);      \
        }                                                                     \
                                                                              \
        return name##_more(o, spec, v, len, end);                             \
    }

DG_MASK_SPAN_FN(dg_mask_span_id_card, DG_MASK_ID_CARD, 6, 4)
DG_MASK_SPAN_FN(dg_mask_span_phone, DG_MASK_PHONE, 3, 4)
DG_MASK_SPAN_FN(dg_mask_span_name, DG_MASK_NAME, 1, 0)
DG_MASK_SPAN_FN(dg_mask_span_plate, DG_MASK_PLATE, 3, 1)
DG_MASK_SPAN_FN(dg_mask_span_bank_card, DG_MASK_BANK_CARD, 0, 4)
DG_MASK_SPAN_FN(dg_mask_span_keep, DG_MASK_KEEP, spec->a, spec->b)
DG_MASK_SPAN_FN(dg_mask_span_address6, DG_MASK_ADDRESS, 6, 0)
DG_MASK_SPAN_FN(dg_mask_span_address_a, DG_MASK_ADDRESS, spec->a, 0)


/* address(a): the default (6) with its cut a constant */
__attribute__((target("avx2,popcnt,bmi")))
static int
dg_mask_span_address(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, const uint8_t *end)
{
    if (spec->a == 0 || spec->a == 6) {
        return dg_mask_span_address6(o, spec, v, len, end);
    }

    return dg_mask_span_address_a(o, spec, v, len, end);
}

#undef DG_MASK_SPAN_FN


/* the rest: a longer value, little to read after it, no room left, a cut
 * past what the leaf takes */
__attribute__((target("avx2,popcnt,bmi"), noinline))
static int
dg_mask_apply_span_long(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, const uint8_t *end)
{
    dg_mask_vinfo_t  vi;
    size_t           a, b, need, avail;
    int              rc;

    avail = end - v;
    need = len + 64;

    if (!dg_mask_span_ab(spec, &a, &b) || avail < 32) {
        return 1;
    }

    if (need > o->cap - o->len) {
        rc = dg_mask_out_room(o, need);
        if (rc != 0) {
            return rc;
        }

        /* room now: the leaf, when it takes the value */
        if (dg_mask_span_fits(o, v, len, end)) {
            return dg_mask_span_fn[spec->method](o, spec, v, len, end);
        }
    }

    if (dg_mask_vscan_avx2_avail(v, len, avail, &vi) != 0) {
        return DG_MASK_E_UTF8;
    }

    if (vi.cls & DG_VS_ESC) {
        return 1;
    }

    return dg_mask_span_put(o, spec, v, len, end, spec->method, a, b, vi.n,
                            vi.lead, (vi.cls & DG_VS_HIGH) ? 1 : 0, 0);
}


static void
dg_mask_span_init(void)
{
    dg_mask_span_fn[DG_MASK_ID_CARD] = dg_mask_span_id_card;
    dg_mask_span_fn[DG_MASK_PHONE] = dg_mask_span_phone;
    dg_mask_span_fn[DG_MASK_NAME] = dg_mask_span_name;
    dg_mask_span_fn[DG_MASK_PLATE] = dg_mask_span_plate;
    dg_mask_span_fn[DG_MASK_KEEP] = dg_mask_span_keep;
    dg_mask_span_fn[DG_MASK_BANK_CARD] = dg_mask_span_bank_card;
    dg_mask_span_fn[DG_MASK_ADDRESS] = dg_mask_span_address;
}

#endif


static int
dg_mask_span_resolve(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, const uint8_t *end)
{
    dg_mask_simd_init();

    if (dg_mask_span_fn[spec->method] == NULL) {
        return 1;
    }

    return dg_mask_span_fn[spec->method](o, spec, v, len, end);
}


/*
 * detect validators.  A candidate is validated, not only measured:
 * - resident ID (GB 11643): 17 digits and a check character (MOD 11-2),
 *   a province code of the mainland, Hong Kong, Macao or Taiwan (or 9
 *   and a province digit: the foreigner's permanent residence ID) and a
 *   real birth date from 1900 on;
 * - mobile: 11 digits in a segment the operators use (dg_mask_mobile);
 * - bank card: 16 to 19 digits, Luhn, and an issuer the card schemes use
 *   (first digit 3-6 or 9, or 2221-2720);
 * - USCC (GB 32100): 18 characters: a registration authority (1-9, A, N,
 *   Y), an organisation type (1-5, 9), a division code of a province, the
 *   check character.
 * Dates, timestamps, amounts and order numbers mostly fail the province,
 * date, segment or issuer test before the check digit is even computed.
 */

#define DG_ID_LEN       18
#define DG_ID_YEAR_MIN  1900
#define DG_ID_YEAR_MAX  2099
#define DG_MOBILE_LEN   11
#define DG_CARD_MIN     16
#define DG_CARD_MAX     19


static unsigned
dg_mask_num(const uint8_t *r, size_t n)
{
    unsigned  v;
    size_t    i;

    v = 0;
    for (i = 0; i < n; i++) {
        v = v * 10 + (unsigned) (r[i] - '0');
    }

    return v;
}


/* the province codes of GB/T 2260 (and 71 Taiwan, 81 Hong Kong, 82 Macao,
 * 83 the Taiwan residence permit), as a bit per second digit */
static const uint16_t  dg_mask_provinces[10] = {
    0,                                  /* 0x */
    0x3e,                               /* 11-15 */
    0x0e,                               /* 21-23 */
    0xfe,                               /* 31-37 */
    0x7e,                               /* 41-46 */
    0x1f,                               /* 50-54 */
    0x3e,                               /* 61-65 */
    0x02,                               /* 71 */
    0x0e,                               /* 81-83 */
    0                                   /* 9x: see below */
};


static int
dg_mask_id_valid(const uint8_t *r)
{
    static const int    w[17] = { 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10,
                                  5, 8, 4, 2 };
    static const char   chk[] = "10X98765432";
    static const uint8_t mdays[13] = { 0, 31, 29, 31, 30, 31, 30, 31, 31,
                                       30, 31, 30, 31 };
    unsigned            i, s, y, mo, d;
    uint8_t             c;

    s = 0;
    for (i = 0; i < 17; i++) {
        if (r[i] < '0' || r[i] > '9') {
            return 0;
        }
        s += (r[i] - '0') * w[i];
    }

    c = r[17];
    if (c == 'x') {
        c = 'X';
    }

    if (c != (uint8_t) chk[s % 11]) {
        return 0;
    }

    if (r[0] == '9') {
        /* foreigner's permanent residence ID: 9, then a province code */
        if (r[1] < '1' || r[1] > '8') {
            return 0;
        }

    } else if (!(dg_mask_provinces[r[0] - '0'] & (1u << (r[1] - '0')))) {
        return 0;
    }

    y = dg_mask_num(r + 6, 4);
    mo = dg_mask_num(r + 10, 2);
    d = dg_mask_num(r + 12, 2);

    if (y < DG_ID_YEAR_MIN || y > DG_ID_YEAR_MAX || mo < 1 || mo > 12
        || d < 1 || d > mdays[mo])
    {
        return 0;
    }

    /* 29 February only in a leap year */
    return !(mo == 2 && d == 29
             && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
}


/* the mobile segments in use: 13x, 145-149, 150-153, 155-159, 162,
 * 165-167, 170-178, 18x, 190-193, 195-199 (a bit per third digit) */
static const uint16_t  dg_mask_segments[10] = {
    0, 0, 0,
    0x3ff,                              /* 13x */
    0x3e0,                              /* 145-149 */
    0x3ef,                              /* 150-153, 155-159 */
    0x0e4,                              /* 162, 165-167 */
    0x1ff,                              /* 170-178 */
    0x3ff,                              /* 18x */
    0x3ef                               /* 190-193, 195-199 */
};


static int
dg_mask_mobile(const uint8_t *r)
{
    size_t  i;

    if (r[0] != '1' || !(dg_mask_segments[r[1] - '0'] & (1u << (r[2] - '0'))))
    {
        return 0;
    }

    for (i = 3; i < DG_MOBILE_LEN; i++) {
        if (r[i] < '0' || r[i] > '9') {
            return 0;
        }
    }

    return 1;
}


static int
dg_mask_luhn(const uint8_t *r, size_t n)
{
    unsigned  s, d, dbl;
    size_t    i;

    s = 0;
    dbl = 0;

    for (i = n; i > 0; i--) {
        d = r[i - 1] - '0';
        if (d > 9) {
            return 0;
        }
        if (dbl) {
            d *= 2;
            if (d > 9) {
                d -= 9;
            }
        }
        s += d;
        dbl = !dbl;
    }

    return s % 10 == 0;
}


static int
dg_mask_card(const uint8_t *r, size_t n)
{
    unsigned  bin;

    if (n < DG_CARD_MIN || n > DG_CARD_MAX) {
        return 0;
    }

    switch (r[0]) {
    case '3': case '4': case '5': case '6': case '9':
        break;
    case '2':
        /* Mastercard's 2-series */
        bin = dg_mask_num(r, 4);
        if (bin < 2221 || bin > 2720) {
            return 0;
        }
        break;
    default:
        return 0;
    }

    return dg_mask_luhn(r, n);
}


static int
dg_mask_uscc_valid(const uint8_t *r)
{
    static const char   alpha[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    static const int    w[17] = { 1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25,
                                  13, 8, 24, 10, 30, 28 };
    const char         *f;
    unsigned            i, s, v[18];
    int                 c;

    if (!((r[0] >= '1' && r[0] <= '9') || r[0] == 'A' || r[0] == 'N'
          || r[0] == 'Y')
        || !((r[1] >= '1' && r[1] <= '5') || r[1] == '9')
        || r[2] < '0' || r[2] > '9' || r[3] < '0' || r[3] > '9'
        || !(dg_mask_provinces[r[2] - '0'] & (1u << (r[3] - '0'))))
    {
        return 0;
    }

    for (i = 0; i < 18; i++) {
        c = r[i];
        if (c >= 'a' && c <= 'z') {
            c -= 'a' - 'A';
        }
        f = strchr(alpha, c);
        if (f == NULL || c == 0) {
            return 0;
        }
        v[i] = (unsigned) (f - alpha);
    }

    s = 0;
    for (i = 0; i < 17; i++) {
        s += v[i] * w[i];
    }

    return (31 - s % 31) % 31 == v[17];
}


/*
 * The groups a candidate may be written in (digits apart, one separator
 * between two groups): mobile 3-4-4; resident ID 6-8-4, 6-4-4-4 and
 * 4-4-4-4-2; bank card in fours, the last group 1 to 4 long.  One group
 * (no separator) may hold any candidate, and a mobile with 86 or 0086
 * before it.
 */
typedef struct {
    uint8_t                     kinds;      /* bit per DG_DETECT_* */
    uint8_t                     ng;
    uint8_t                     g[DG_DETECT_GROUPS];
} dg_mask_shape_t;

#define DG_KIND(k)  (1u << (k))

static const dg_mask_shape_t  dg_mask_shapes[] = {
    { DG_KIND(DG_DETECT_MOBILE), 3, { 3, 4, 4 } },
    { DG_KIND(DG_DETECT_ID_NUMBER), 3, { 6, 8, 4 } },
    { DG_KIND(DG_DETECT_ID_NUMBER), 4, { 6, 4, 4, 4 } },
    { DG_KIND(DG_DETECT_BANK_CARD), 4, { 4, 4, 4, 4 } },
    { DG_KIND(DG_DETECT_BANK_CARD), 5, { 4, 4, 4, 4, 1 } },
    { DG_KIND(DG_DETECT_ID_NUMBER) | DG_KIND(DG_DETECT_BANK_CARD), 5,
      { 4, 4, 4, 4, 2 } },
    { DG_KIND(DG_DETECT_BANK_CARD), 5, { 4, 4, 4, 4, 3 } }
};

#undef DG_KIND


unsigned
dg_mask_detect_shape(const uint8_t *g, unsigned ng)
{
    const dg_mask_shape_t  *s, *end;
    unsigned                n, i;

    if (ng == 1) {
        n = g[0];
        if (n == DG_MOBILE_LEN || n == DG_MOBILE_LEN + 2
            || n == DG_MOBILE_LEN + 4)
        {
            return 1u << DG_DETECT_MOBILE;
        }
        if (n == DG_ID_LEN) {
            return (1u << DG_DETECT_ID_NUMBER) | (1u << DG_DETECT_BANK_CARD);
        }
        if (n >= DG_CARD_MIN && n <= DG_CARD_MAX) {
            return 1u << DG_DETECT_BANK_CARD;
        }
        return 0;
    }

    end = dg_mask_shapes + sizeof(dg_mask_shapes) / sizeof(dg_mask_shapes[0]);

    for (s = dg_mask_shapes; s < end; s++) {
        if (s->ng != ng) {
            continue;
        }
        for (i = 0; i < ng && s->g[i] == g[i]; i++) { /* void */ }
        if (i == ng) {
            return s->kinds;
        }
    }

    return 0;
}


int
dg_mask_detect_groups(const uint8_t *d, size_t n, const uint8_t *g,
    unsigned ng, unsigned *skip)
{
    unsigned  kinds;

    *skip = 0;
    kinds = dg_mask_detect_shape(g, ng);

    if (kinds == 0) {
        return -1;
    }

    if ((kinds & (1u << DG_DETECT_ID_NUMBER)) && n == DG_ID_LEN
        && dg_mask_id_valid(d))
    {
        return DG_DETECT_ID_NUMBER;
    }

    if (d[n - 1] < '0' || d[n - 1] > '9') {
        return -1;
    }

    if (kinds & (1u << DG_DETECT_MOBILE)) {
        if (n == DG_MOBILE_LEN + 2 && d[0] == '8' && d[1] == '6') {
            *skip = 2;

        } else if (n == DG_MOBILE_LEN + 4 && d[0] == '0' && d[1] == '0'
                   && d[2] == '8' && d[3] == '6')
        {
            *skip = 4;

        } else if (n != DG_MOBILE_LEN) {
            return -1;
        }

        if (dg_mask_mobile(d + *skip)) {
            return DG_DETECT_MOBILE;
        }

        *skip = 0;
        return -1;
    }

    if ((kinds & (1u << DG_DETECT_BANK_CARD)) && dg_mask_card(d, n)) {
        return DG_DETECT_BANK_CARD;
    }

    return -1;
}


int
dg_mask_detect_digits(const uint8_t *r, size_t n)
{
    uint8_t   g;
    unsigned  skip;

    if (n == 0 || n > DG_CARD_MAX) {
        return -1;
    }

    g = (uint8_t) n;

    return dg_mask_detect_groups(r, n, &g, 1, &skip);
}


int
dg_mask_detect_kind(const uint8_t *r, size_t n)
{
    size_t  i, digits;

    digits = 0;
    for (i = 0; i < n; i++) {
        if (r[i] >= '0' && r[i] <= '9') {
            digits++;
        }
    }

    if (n == DG_ID_LEN && dg_mask_id_valid(r)) {
        return DG_DETECT_ID_NUMBER;
    }

    if (digits == n && dg_mask_card(r, n)) {
        return DG_DETECT_BANK_CARD;
    }

    if (n == DG_ID_LEN && dg_mask_uscc_valid(r)) {
        return DG_DETECT_USCC;
    }

    return -1;
}


void
dg_mask_detect_default(unsigned kind, dg_mask_spec_t *spec)
{
    memset(spec, 0, sizeof(*spec));

    switch (kind) {
    case DG_DETECT_ID_NUMBER:
        spec->method = DG_MASK_ID_CARD;
        break;
    case DG_DETECT_MOBILE:
        spec->method = DG_MASK_PHONE;
        break;
    case DG_DETECT_BANK_CARD:
        spec->method = DG_MASK_BANK_CARD;
        break;
    default:
        spec->method = DG_MASK_KEEP;
        spec->a = 6;
        spec->b = 4;
        break;
    }
}


/* method names */

static int
dg_mask_parse_uint8(const char **pp, const char *end, uint8_t *v)
{
    const char  *p;
    unsigned     n;

    p = *pp;
    while (p < end && *p == ' ') {
        p++;
    }

    if (p == end || *p < '0' || *p > '9') {
        return -1;
    }

    n = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        n = n * 10 + (*p - '0');
        if (n > 255) {
            return -1;
        }
        p++;
    }

    while (p < end && *p == ' ') {
        p++;
    }

    *v = (uint8_t) n;
    *pp = p;
    return 0;
}


int
dg_mask_spec_parse(const char *s, size_t len, dg_mask_spec_t *spec)
{
    const char  *p, *end, *paren;
    size_t       nl;
    unsigned     i;

    if (s == NULL || spec == NULL) {
        return -1;
    }

    end = s + len;
    paren = memchr(s, '(', len);
    nl = paren ? (size_t) (paren - s) : len;

    for (i = 0; i < DG_MASK_METHOD_MAX; i++) {
        if (strlen(dg_mask_names[i]) == nl
            && memcmp(dg_mask_names[i], s, nl) == 0)
        {
            break;
        }
    }

    if (i == DG_MASK_METHOD_MAX) {
        return -1;
    }

    memset(spec, 0, sizeof(*spec));
    spec->method = (uint8_t) i;

    if (paren == NULL) {
        return i == DG_MASK_KEEP ? -1 : 0;
    }

    if (i != DG_MASK_KEEP && i != DG_MASK_ADDRESS) {
        return -1;
    }

    p = paren + 1;

    if (dg_mask_parse_uint8(&p, end, &spec->a) != 0) {
        return -1;
    }

    if (i == DG_MASK_KEEP) {
        if (p == end || *p != ',') {
            return -1;
        }
        p++;
        if (dg_mask_parse_uint8(&p, end, &spec->b) != 0) {
            return -1;
        }
    }

    if (p == end || *p != ')' || p + 1 != end) {
        return -1;
    }

    return 0;
}


const char *
dg_mask_method_name(unsigned method)
{
    if (method >= DG_MASK_METHOD_MAX) {
        return NULL;
    }

    return dg_mask_names[method];
}
