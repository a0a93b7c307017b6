/*
 * datagate core: the masker's byte and vector helpers: byte classes,
 * string scanners, the scalar value scanner, the vector checks of UTF-8
 * and escapes.  Static inline, so that each file that scans keeps them in
 * line; the choice between vector and scalar code is the caller's (isa,
 * DG_MASK_ISA_*).
 */

#ifndef DG_MASK_SCAN_H
#define DG_MASK_SCAN_H

#include "dg_mask_int.h"


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


/* n copies of byte c (initialisers of the vector tables) */
#define DG_MASK_X4(c)       c, c, c, c
#define DG_MASK_X8(c)       DG_MASK_X4(c), DG_MASK_X4(c)
#define DG_MASK_X16(c)      DG_MASK_X8(c), DG_MASK_X8(c)
#define DG_MASK_X32(c)      DG_MASK_X16(c), DG_MASK_X16(c)
/* a 16-byte table in both 128-bit lanes (pshufb looks up within a lane) */
#define DG_MASK_LANES(...)  __VA_ARGS__, __VA_ARGS__


/*
 * Tables built by the compiler (dg_mask_tables.c): nothing is set up at
 * run time.  They are defined in a file of their own so that the code
 * that reads them loads their vectors rather than building them.
 */

/* the class of each byte (C_*) */
extern DG_MASK_LOCAL const uint8_t  dg_mask_cls[256];

/* the detect character code of an ASCII byte (see dg_det_char()):
 * digits, capitals and 'x' are themselves, ' ' and '-' separators */
extern DG_MASK_LOCAL const uint8_t  dg_det_ascii[128];

/* 1: printable ASCII that needs no escaping in a JSON string */
extern DG_MASK_LOCAL const uint8_t  dg_mask_plain[256];

#if (DG_MASK_X86)

/* '"', '\\' and 0x1f in every byte: loaded, not built, in each block */
extern DG_MASK_LOCAL const uint8_t  dg_mask_v32[3][32];

/* C_DC by high nibble, by low nibble, and 0x0f (dg_mask_dc32_avx2()) */
extern DG_MASK_LOCAL const uint8_t  dg_mask_dc32[3][32];

/* the errors of the UTF-8 check (dg_mask_u8_err_avx2(), after Keiser
 * and Lemire) */
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

/* constants of the value scanner: loaded, not built (a set1 is built in
 * three instructions) */
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

extern DG_MASK_LOCAL const uint8_t  dg_mask_k32[DG_K_MAX][32];

#define DG_K(i)  _mm256_load_si256((const __m256i *) dg_mask_k32[i])

#endif


/* the vector code the CPU runs (DG_MASK_ISA_*); 0 off x86 */
static inline unsigned
dg_mask_cpu_isa(void)
{
#if (DG_MASK_X86)
    unsigned  isa;

    __builtin_cpu_init();

    isa = DG_MASK_ISA_SSE2;

    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")
        && __builtin_cpu_supports("bmi"))
    {
        isa |= DG_MASK_ISA_AVX2;
    }

    return isa;
#else
    return 0;
#endif
}


/* string scanning: first '"', '\\' or control byte in [p, end) */

static inline const uint8_t *
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

/* the long scans, out of line: most strings end in the first 32 bytes */

__attribute__((target("avx2"), unused))
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


__attribute__((unused))
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


/* strings past 32 bytes, with the vector code isa allows */
__attribute__((noinline, unused))
static const uint8_t *
dg_mask_scan_long(const uint8_t *p, const uint8_t *end, unsigned isa)
{
#if (DG_MASK_X86)
    if (isa & DG_MASK_ISA_AVX2) {
        return dg_mask_scan_avx2(p, end);
    }

    if (isa & DG_MASK_ISA_SSE2) {
        return dg_mask_scan_sse2(p, end);
    }
#endif

    return dg_mask_scan_scalar(p, end);
}


/*
 * First '"', '\\' or control byte in [p, end).  Short strings are the
 * common case: one or two 16-byte blocks in line first (SSE2 is part of
 * every x86-64 CPU); a longer string goes on with the vector code isa
 * allows (DG_MASK_ISA_*).
 */
static inline __attribute__((always_inline)) const uint8_t *
dg_mask_scan(const uint8_t *p, const uint8_t *end, unsigned isa)
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

        return dg_mask_scan_long(p, end, isa);
    }
#endif

    return dg_mask_scan_scalar(p, end);
}


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


#endif


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

    return (n <= DG_DET_DIGITS && (DG_DET_ONE >> n) & 1) ? n : 0;
}


/* bit 0: a byte JSON needs escaped (or 0x7f), bit 1: a non-ASCII byte */
static inline unsigned
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
static inline int
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

#endif


#endif /* DG_MASK_SCAN_H */
