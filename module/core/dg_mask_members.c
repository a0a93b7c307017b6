/*
 * datagate core: the masker's fast member loop.
 *
 * Speed (see scripts/bench-mask-engine.sh): members of an object walked
 * normally go through dg_mask_members(), a tight loop that takes whole
 * members found plain in the current span: key and string ends found with
 * the span's 64-byte blocks classified once with AVX2 (a bit per '"',
 * '\\' or control byte, kept in m->blk for the span; dg_mask_str_end(),
 * 16-byte SSE2 scans on other CPUs, scalar ones with conf->nosimd), a
 * key seen before under the same path node recognised by one 32-byte
 * compare of its '"' key '"' ':' token (the key memo, AVX2 only; the key
 * that followed the last one last time is tried first, and a short loop
 * takes the members of a run of records that come in that order, masking
 * their selected plain strings itself; the memo outlives a document when
 * the stream is initialised again with dg_mask_reinit() for the same
 * rules),
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
 * (dg_mask.c), at the same byte and with the same effects, so output and
 * errors do not depend on which way a member went.  Masking methods write
 * ASCII and escape-free UTF-8 values straight into the output buffer
 * (dg_mask_apply_span(), dg_mask_apply_fast()), which with
 * dg_mask_feed_into() is memory lent by the caller.
 */

#include <stddef.h>
#include <string.h>
#include "dg_mask.h"
#include "dg_mask_int.h"
#include "dg_mask_scan.h"


/* what dg_mask_members() may take of an unselected scalar member */
#define DG_MM_NONE      0       /* nothing (no output by reference) */
#define DG_MM_PASS      1       /* passes unchanged */
#define DG_MM_DETECT    2       /* passes unless a string (detect) */
#define DG_MM_DROP      3       /* dropped (allow-list) */


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
        return dg_mask_scan(p, end, bk->isa);
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

    return dg_mask_scan(p, end, bk->isa);
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

    if (act->method == DG_MASK_CLEAR || (m->rfail && m->rec_open)) {
        /* clear, or in a record held and already out of scope: its
         * bytes go nowhere (dg_mask_decide() does the same) */
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
                                    m->hash_key, m->hash_key_len, avx2);
        } else {
            rc = dg_mask_apply_span(&m->out, act, q, v - q, end,
                                    m->hash_key, m->hash_key_len, avx2);
        }
    }
    m->os = v;

    return rc;
}


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
    unsigned                shape;
    int                     ret, rc;

    r = m->rules;
    shape = (m->shape_top != 0);
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

                    if (*v != '"' || act->method == DG_MASK_DROP
                        || act->row)
                    {
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

                if (mo->kn >= 0 && shape) {
                    /* on the records path: the state machine checks it */
                    break;
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
            if (kn >= 0 && shape) {
                /* on the records path: the state machine checks it */
                break;
            }

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

                } else if (mode != DG_MM_PASS || *q != '[' || kn >= 0
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

            if (act->row) {
                /*
                 * A key on a rows path with a plain scalar: read for the
                 * record's scope here (dg_mask_rows_take(), what
                 * dg_mask_rows_member() and the capture do), then the
                 * member goes on as it would: no field (passing, in
                 * this mode alone), or its field's.
                 */
                if ((act->row & DG_MASK_ROW_ONLY) && mode != DG_MM_PASS) {
                    break;
                }

                if ((v = dg_mask_fast_scalar(&bk, q, end, 1, avx2)) == NULL
                    || (size_t) (v - q) > maxv)
                {
                    break;
                }

                dg_mask_rows_take(m, fr, k, e - k, q, v);

                if (act->row & DG_MASK_ROW_ONLY) {
                    m->stats.field_hits[f]++;
                    unl++;
                    emitted = 1;
                    goto taken;
                }
            }

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

    taken:

        p = v;
        if (p == end || *p != ',') {
            while (p < end && (dg_mask_cls[*p] & C_WS)) {
                p++;
            }

            if (p == end || *p != ',') {
                if (mode == DG_MM_PASS && end - p >= 4 && p[0] == '}'
                    && p[1] == ',' && p[2] == '{' && p[3] == '"'
                    && (dg_mask_next_record(m, p + 1)
                        || (m->rec_one
                            && (rc = dg_mask_rec_next(m, p + 1)) != 0)))
                {
                    /* the next record of the array: the "},{" step of
                     * dg_mask_run_span() without leaving the loop (a
                     * record decided one by one: dg_mask_rec_next());
                     * the frame is the same slot, pushed anew */
                    if (rc < 0) {
                        ret = 0;
                        break;
                    }

                    rc = 0;

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


int
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
    if (m->isa & DG_MASK_ISA_AVX2) {
        if (mode == DG_MM_PASS) {
            return dg_mask_members_avx2_pass(m, fr, pp, end, pre);
        }
        return dg_mask_members_avx2(m, fr, pp, end, pre, mode);
    }
#endif

    return dg_mask_members_body(m, fr, pp, end, pre, mode, 0);
}
