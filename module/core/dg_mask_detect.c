/*
 * datagate core: the masker's safety net in a stream (strings, keys,
 * numbers) and in one whole text (dg_mask_detect_text()).  Response
 * headers have a scanner of their own, dg_mask_text.c, which says why.
 *
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

#include <stddef.h>
#include <string.h>
#include "dg_mask.h"
#include "dg_mask_int.h"
#include "dg_mask_scan.h"


/* dg_det_char() flags */
#define DG_DET_REF          0x01    /* its bytes end at 'after' in the span */
#define DG_DET_END          0x02    /* the text ended: no character */


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
int
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
                    && ((DG_DET_ONE >> n) & 1
                        || ((DG_DET_ONEX >> n) & 1 && q < e && *q == 'x')))
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
int
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
                    && ((DG_DET_ONE | DG_DET_ONEX) >> n) & 1)
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
        t.isa = d->out->isa;

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
int
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
int
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

    for (k = 0; k < DG_DETECT_MAX; k++) {
        dg_mask_detect_method(k, detect ? &detect[k] : NULL, hash_key,
                              hash_key_len, &spec[k]);
        h[k] = 0;
    }

    memset(&o, 0, sizeof(o));
    o.buf = out;
    o.cap = outcap;
    o.isa = dg_mask_cpu_isa();

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


/*
 * Detect on a number that may be a hit (m->ndet): its digits stay in the
 * output run (os) from m->nfrom while they are in one span; when the
 * span ends inside it they are held in nbuf (at most DG_DET_NUMBER), and
 * written when the number is decided.
 */

/* the number is no hit: what was held is written, the rest passes */
int
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
int
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
int
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
