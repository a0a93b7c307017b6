/*
 * datagate core: the masker's byte classes and string scanners, static
 * inline so that each file that scans keeps them in line.
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


#endif /* DG_MASK_SCAN_H */
