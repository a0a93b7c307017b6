/*
 * datagate core: the masking methods: their table (dg_mask_methods[],
 * one row per method, the one place a method's name, parameters and cut
 * are written), the methods, and the spec parser and writer.
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
 * first to its method's span function (AVX2): one per method, whole-block
 * loads without a tail copy, Chinese text validated by a shorter check
 * than the general one, the result written with 32-byte stores.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "dg_mask.h"
#include "dg_mask_int.h"
#include "dg_mask_scan.h"


#if (DG_MASK_X86)

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


/* values shorter than a block (most ids, phones, names) cost less in
 * words than in a padded vector */
static inline int
dg_mask_vscan(const uint8_t *v, size_t len, dg_mask_vinfo_t *vi,
    unsigned isa)
{
#if (DG_MASK_X86)
    if (len >= 32 && (isa & DG_MASK_ISA_AVX2)) {
        return dg_mask_vscan_avx2(v, len, vi);
    }
#endif

    return dg_mask_vscan_scalar(v, len, vi);
}


int
dg_mask_vscan_test(const uint8_t *v, size_t len, int simd, size_t *n,
    unsigned *cls, uint64_t *lead)
{
    dg_mask_vinfo_t  vi;
    int              rc;

#if (DG_MASK_X86)
    if (simd && (dg_mask_cpu_isa() & DG_MASK_ISA_AVX2)) {
        rc = dg_mask_vscan_avx2(v, len, &vi);

    } else
#endif
    {
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
dg_mask_utf8_count(const uint8_t *p, size_t n, unsigned isa)
{
    dg_mask_vinfo_t  vi;

    if (dg_mask_vscan(p, n, &vi, isa) != 0) {
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


/* first a and last b code points kept; between them stars '*', or one
 * per hidden code point (stars 0) */
static int
dg_mask_keep(dg_mask_out_t *o, const uint8_t *v, size_t len, size_t n,
    size_t a, size_t b, size_t stars)
{
    size_t  pa, pb;
    int     rc;

    if (n < a + b + 1) {
        return dg_mask_put_stars(o, n);
    }

    pa = dg_mask_utf8_off(v, len, a);
    pb = b ? dg_mask_utf8_off(v, len, n - b) : len;

    rc = dg_mask_put_escaped(o, v, pa);
    if (rc == 0) {
        rc = dg_mask_put_stars(o, stars ? stars : n - a - b);
    }
    if (rc == 0) {
        rc = dg_mask_put_escaped(o, v + pb, len - pb);
    }

    return rc;
}


/* the first character(s) of the local part, when it has more, then
 * stars and "@domain" */
static int
dg_mask_email(dg_mask_out_t *o, const uint8_t *v, size_t len)
{
    const dg_mask_method_t  *mt;
    size_t                   at;
    int                      rc;

    mt = &dg_mask_methods[DG_MASK_EMAIL];

    for (at = len; at > 0; at--) {
        if (v[at - 1] == '@') {
            break;
        }
    }

    if (at == 0) {
        /* no '@': nothing to keep */
        return dg_mask_put_stars(o, mt->stars);
    }

    at--;

    if (dg_mask_utf8_count(v, at, o->isa) >= (long) mt->a + 1) {
        rc = dg_mask_put_escaped(o, v, dg_mask_utf8_off(v, at, mt->a));
        if (rc != 0) {
            return rc;
        }
    }

    rc = dg_mask_put_stars(o, mt->stars);
    if (rc != 0) {
        return rc;
    }

    return dg_mask_put_escaped(o, v + at, len - at);
}


/* 0771-5551234 -> 0771-*****34: the area code kept, and the number's last
 * b digits; without '-': keep(a,b) */
static int
dg_mask_landline(dg_mask_out_t *o, const uint8_t *v, size_t len, size_t n)
{
    const dg_mask_method_t  *mt;
    size_t                   dash, rn;
    int                      rc;

    mt = &dg_mask_methods[DG_MASK_LANDLINE];

    for (dash = 0; dash < len; dash++) {
        if (v[dash] == '-') {
            break;
        }
    }

    if (dash == len || dash == 0) {
        return dg_mask_keep(o, v, len, n, mt->a, mt->b, 0);
    }

    dash++;
    rc = dg_mask_put_escaped(o, v, dash);
    if (rc != 0) {
        return rc;
    }

    rn = dg_mask_utf8_count(v + dash, len - dash, o->isa);

    return dg_mask_keep(o, v + dash, len - dash, rn, 0, mt->b, 0);
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
dg_mask_hmac(dg_mask_out_t *o, const uint8_t *v, size_t len,
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
    const dg_mask_method_t  *mt;
    dg_mask_vinfo_t          vi;
    const uint8_t           *at;
    uint8_t                 *d;
    size_t                   a, b, n, pa, pb, k;
    int                      rc;

    if (spec->method >= DG_MASK_METHOD_MAX) {
        return 1;
    }

    mt = &dg_mask_methods[spec->method];

    if (!mt->keep && spec->method != DG_MASK_EMAIL) {
        return 1;
    }

    dg_mask_cut(spec, &a, &b);

    rc = dg_mask_out_room(o, len + 32);
    if (rc != 0) {
        return rc;
    }

    if (dg_mask_vscan(v, len, &vi, o->isa) != 0) {
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

        /* the row of DG_MASK_EMAIL: constants */
        k = dg_mask_methods[DG_MASK_EMAIL].stars;

        if (at == v) {
            memcpy(d, DG_MASK_STARS, k);
            d += k;

        } else {
            at--;
            pa = dg_mask_vinfo_off(&vi, v, len,
                                   dg_mask_methods[DG_MASK_EMAIL].a);
            if (at > v && pa < (size_t) (at - v)) {
                /* more characters before '@' than it keeps */
                dg_mask_cpy(d, v, pa);
                d += pa;
            }
            memcpy(d, DG_MASK_STARS, k);
            d += k;
            dg_mask_cpy(d, at, v + len - at);
            d += v + len - at;
        }

    } else if (n < a + b + 1) {
        /* too short to keep anything */
        memset(d, '*', n);
        d += n;

    } else {
        pa = dg_mask_vinfo_off(&vi, v, len, a);

        pb = dg_mask_tail_off(v, len, b, vi.cls & DG_VS_HIGH);

        dg_mask_cpy(d, v, pa);
        d += pa;
        k = mt->stars ? mt->stars : n - a - b;
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
    const dg_mask_method_t  *mt;
    long                     n;
    size_t                   a, b;
    int                      rc;

    if (spec->method != DG_MASK_CLEAR) {
        rc = dg_mask_apply_fast(o, spec, v, len, quoted);
        if (rc <= 0) {
            return rc;
        }
    }

    n = dg_mask_utf8_count(v, len, o->isa);
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

    mt = (spec->method < DG_MASK_METHOD_MAX) ? &dg_mask_methods[spec->method]
                                              : NULL;

    if (mt != NULL && mt->keep) {
        dg_mask_cut(spec, &a, &b);
        rc = dg_mask_keep(o, v, len, n, a, b, mt->stars);

    } else switch (spec->method) {

    case DG_MASK_CLEAR:
        rc = dg_mask_put_escaped(o, v, len);
        break;

    case DG_MASK_EMAIL:
        rc = dg_mask_email(o, v, len);
        break;

    case DG_MASK_LANDLINE:
        rc = dg_mask_landline(o, v, len, n);
        break;

    case DG_MASK_IPV4:
        rc = dg_mask_ipv4(o, v, len);
        break;

    case DG_MASK_DATE_YEAR:
        rc = dg_mask_date_year(o, v, len);
        break;

    case DG_MASK_HASH:
        rc = dg_mask_hmac(o, v, len, key, keylen);
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
    o.isa = dg_mask_cpu_isa();

    rc = dg_mask_apply(&o, spec, v, len, hash_key, hash_key_len, 1);
    if (rc != 0) {
        return rc;
    }

    return (int) o.len;
}


/*
 * The span functions (the span column of dg_mask_methods[]):
 * dg_mask_apply(..., 1) of a value in a stream's input span, readable up
 * to end.  With AVX2 a value of up to 96 bytes is
 * loaded in whole blocks (the bytes after it are replaced, never used)
 * and a longer one is scanned without copying its last block; the masked
 * value is written with 32-byte stores into the room asked for
 * (len + 64).  The keep-like methods, address and bank_card, on a value
 * that needs no escaping, are done as dg_mask_apply_fast() does them;
 * everything else is left to dg_mask_apply() (1).  Taken only when the
 * CPU has AVX2, POPCNT and BMI and the stream may use them
 * (DG_MASK_ISA_AVX2, see dg_mask_apply_span()).
 */


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

    if (n < a + b + 1) {
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

    k = dg_mask_methods[method].stars;

    if (k && b == 0) {
        /* a mark of stars ends it (address) */
        memcpy(d, DG_MASK_STARS, k);
        d += k;
        *d++ = '"';
        o->len = d - o->buf;
        return 0;
    }

    pb = dg_mask_tail_off(v, len, b, high);

    k = k ? k : n - a - b;
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
 * starts).  One copy per method, so that its cut (its row of
 * dg_mask_methods[]) is constants, and values of one block apart from
 * longer ones (fewer registers).
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

/* a method's copy with the cut of its row */
#define DG_MASK_SPAN_ROW(name, method)                                       \
    DG_MASK_SPAN_FN(name, method, dg_mask_methods[method].a,                  \
                    dg_mask_methods[method].b)

DG_MASK_SPAN_ROW(dg_mask_span_id_card, DG_MASK_ID_CARD)
DG_MASK_SPAN_ROW(dg_mask_span_phone, DG_MASK_PHONE)
DG_MASK_SPAN_ROW(dg_mask_span_name, DG_MASK_NAME)
DG_MASK_SPAN_ROW(dg_mask_span_plate, DG_MASK_PLATE)
DG_MASK_SPAN_ROW(dg_mask_span_bank_card, DG_MASK_BANK_CARD)
DG_MASK_SPAN_ROW(dg_mask_span_address_row, DG_MASK_ADDRESS)
DG_MASK_SPAN_FN(dg_mask_span_keep, DG_MASK_KEEP, spec->a, spec->b)
DG_MASK_SPAN_FN(dg_mask_span_address_a, DG_MASK_ADDRESS, spec->a,
                dg_mask_methods[DG_MASK_ADDRESS].b)


/* address(a): the row's cut (address, address(0), or a the same) with
 * its cut a constant */
__attribute__((target("avx2,popcnt,bmi")))
static int
dg_mask_span_address(dg_mask_out_t *o, const dg_mask_spec_t *spec,
    const uint8_t *v, size_t len, const uint8_t *end)
{
    if (spec->a == 0 || spec->a == dg_mask_methods[DG_MASK_ADDRESS].a) {
        return dg_mask_span_address_row(o, spec, v, len, end);
    }

    return dg_mask_span_address_a(o, spec, v, len, end);
}

#undef DG_MASK_SPAN_ROW
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

    if (spec->method >= DG_MASK_METHOD_MAX
        || dg_mask_methods[spec->method].span == NULL || avail < 32)
    {
        return 1;
    }

    dg_mask_cut(spec, &a, &b);

    if (need > o->cap - o->len) {
        rc = dg_mask_out_room(o, need);
        if (rc != 0) {
            return rc;
        }

        /* room now: the leaf, when it takes the value */
        if (dg_mask_span_fits(o, v, len, end)) {
            return dg_mask_methods[spec->method].span(o, spec, v, len, end);
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


#define DG_MASK_SPAN(fn)  fn

#else

/* no vector code: no value is taken on a span */
#define DG_MASK_SPAN(fn)  NULL

#endif


/*
 * The masking methods.  a, b: the characters a keep-like method keeps at
 * the start and at the end (a value of fewer than a + b + 1 characters
 * becomes all stars); stars: how many '*' stand between them (0: one per
 * character hidden).  A method with parameters takes them from the spec
 * (dg_mask_cut()).
 */
DG_MASK_LOCAL const dg_mask_method_t  dg_mask_methods[DG_MASK_METHOD_MAX] = {

    /* shown as is (listed, not masked) */
    [DG_MASK_CLEAR] = { "clear", DG_MASK_P_NONE, 0, 0, 0, 0, NULL },

    /* 450103199003071242 -> 450103********1242 */
    [DG_MASK_ID_CARD] = { "id_card", DG_MASK_P_NONE, 1, 6, 4, 0,
                          DG_MASK_SPAN(dg_mask_span_id_card) },

    /* 13877112345 -> 138****2345 */
    [DG_MASK_PHONE] = { "phone", DG_MASK_P_NONE, 1, 3, 4, 0,
                        DG_MASK_SPAN(dg_mask_span_phone) },

    /* 韦小宝 -> 韦** */
    [DG_MASK_NAME] = { "name", DG_MASK_P_NONE, 1, 1, 0, 0,
                       DG_MASK_SPAN(dg_mask_span_name) },

    /* 6222021234567890123 -> ************0123: always 12 '*', so that the
     * length of the card is not shown either */
    [DG_MASK_BANK_CARD] = { "bank_card", DG_MASK_P_NONE, 1, 0, 4, 12,
                            DG_MASK_SPAN(dg_mask_span_bank_card) },

    /* weixb@example.cn -> w***@example.cn: a characters of the local part
     * when it has more (dg_mask_email()) */
    [DG_MASK_EMAIL] = { "email", DG_MASK_P_NONE, 0, 1, 0, 3, NULL },

    /* address or address(a): the first a characters, then "****" */
    [DG_MASK_ADDRESS] = { "address", DG_MASK_P_A, 1, 6, 0, 4,
                          DG_MASK_SPAN(dg_mask_span_address) },

    /* keep(a,b): the first a and the last b characters */
    [DG_MASK_KEEP] = { "keep", DG_MASK_P_AB, 1, 0, 0, 0,
                       DG_MASK_SPAN(dg_mask_span_keep) },

    /* 0771-5551234 -> 0771-*****34; without '-': keep(a,b)
     * (dg_mask_landline()) */
    [DG_MASK_LANDLINE] = { "landline", DG_MASK_P_NONE, 0, 3, 2, 0, NULL },

    /* 桂A12345 -> 桂A1***5 */
    [DG_MASK_PLATE] = { "plate", DG_MASK_P_NONE, 1, 3, 1, 0,
                        DG_MASK_SPAN(dg_mask_span_plate) },

    /* 10.2.3.4 -> 10.*.*.* */
    [DG_MASK_IPV4] = { "ipv4", DG_MASK_P_NONE, 0, 0, 0, 0, NULL },

    /* 1990-03-07 -> 1990 */
    [DG_MASK_DATE_YEAR] = { "date_year", DG_MASK_P_NONE, 0, 0, 0, 0, NULL },

    /* HMAC-SHA-256 pseudonym, 32 hex digits (a key per consumer) */
    [DG_MASK_HASH] = { "hash", DG_MASK_P_NONE, 0, 0, 0, 0, NULL },

    /* *** */
    [DG_MASK_REDACT] = { "redact", DG_MASK_P_NONE, 0, 0, 0, 0, NULL },

    /* null (*** inside a text) */
    [DG_MASK_NULL] = { "null", DG_MASK_P_NONE, 0, 0, 0, 0, NULL },

    /* the member removed, key and value (*** inside a text) */
    [DG_MASK_DROP] = { "drop", DG_MASK_P_NONE, 0, 0, 0, 0, NULL }
};

#undef DG_MASK_SPAN


/* specs as the policy writes them: "id_card", "keep(3,4)", "address(8)" */

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
    unsigned     i, params;

    if (s == NULL || spec == NULL) {
        return -1;
    }

    end = s + len;
    paren = memchr(s, '(', len);
    nl = paren ? (size_t) (paren - s) : len;

    for (i = 0; i < DG_MASK_METHOD_MAX; i++) {
        if (strlen(dg_mask_methods[i].name) == nl
            && memcmp(dg_mask_methods[i].name, s, nl) == 0)
        {
            break;
        }
    }

    if (i == DG_MASK_METHOD_MAX) {
        return -1;
    }

    params = dg_mask_methods[i].params;

    memset(spec, 0, sizeof(*spec));
    spec->method = (uint8_t) i;

    if (paren == NULL) {
        return params == DG_MASK_P_AB ? -1 : 0;
    }

    if (params == DG_MASK_P_NONE) {
        return -1;
    }

    p = paren + 1;

    if (dg_mask_parse_uint8(&p, end, &spec->a) != 0) {
        return -1;
    }

    if (params == DG_MASK_P_AB) {
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
dg_mask_spec_str(const dg_mask_spec_t *spec, char *buf, size_t len)
{
    const dg_mask_method_t  *mt;

    if (len == 0) {
        return buf;
    }

    if (spec->method >= DG_MASK_METHOD_MAX) {
        snprintf(buf, len, "?");
        return buf;
    }

    mt = &dg_mask_methods[spec->method];

    if (mt->params == DG_MASK_P_AB) {
        snprintf(buf, len, "%s(%u,%u)", mt->name, spec->a, spec->b);

    } else if (mt->params == DG_MASK_P_A && spec->a) {
        snprintf(buf, len, "%s(%u)", mt->name, spec->a);

    } else {
        snprintf(buf, len, "%s", mt->name);
    }

    return buf;
}


const char *
dg_mask_methods_str(char *buf, size_t len)
{
    size_t                   n;
    unsigned                 i;
    const dg_mask_method_t  *mt;

    if (len == 0) {
        return buf;
    }

    buf[0] = '\0';
    n = 0;

    for (i = 0; i < DG_MASK_METHOD_MAX && n < len; i++) {
        mt = &dg_mask_methods[i];
        n += (size_t) snprintf(buf + n, len - n, "%s%s%s", i ? ", " : "",
                               mt->name,
                               mt->params == DG_MASK_P_AB ? "(A,B)"
                               : mt->params == DG_MASK_P_A ? "(N)" : "");
    }

    return buf;
}


const char *
dg_mask_method_name(unsigned method)
{
    if (method >= DG_MASK_METHOD_MAX) {
        return NULL;
    }

    return dg_mask_methods[method].name;
}
