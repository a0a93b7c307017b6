/*
 * datagate core: streaming JSON masker (see dg_mask.h).
 * One state machine (dg_mask_run_span() and the member steps inlined in
 * it), kept in one file for that reason.
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
 * The fast member loop is in dg_mask_members.c, the safety net in
 * dg_mask_detect.c, the rule compiler in dg_mask_rules.c; what they
 * share is in dg_mask_int.h and dg_mask_scan.h.  What the masker does,
 * beyond the calls, is told in dg_mask.h.
 */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "dg_mask.h"
#include "dg_mask_int.h"
#include "dg_mask_scan.h"


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
    sz += dg_mask_rec_size(conf, max_value);

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

    /* row scoping needs to know where the records are */
    if (conf->rows != NULL && conf->rules->rec_mode == DG_MASK_REC_AUTO) {
        return NULL;
    }

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
        dg_mask_detect_method(k, &conf->detect[k], conf->hash_key,
                              conf->hash_key_len, &m->detect[k]);
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
    p += dg_mask_align(max_value + DG_MASK_SLACK);
    m->rbuf = conf->rows ? p : NULL;

    dg_mask_rec_setup(m, conf);

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

    /* the vector code the CPU runs, unless the caller wants none */
    m->isa = conf->nosimd ? 0 : conf->rules->isa;
    m->blk.isa = m->isa;

    m->out.buf = m->wbuf;
    m->out.cap = DG_MASK_WBUF;
    m->out.bytes_out = &m->stats.bytes_out;
    m->out.isa = m->isa;

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
    case DG_MASK_E_RECORD:
        return "a record larger than the mask buffer (row scoping holds "
               "one record whole)";
    case DG_MASK_E_RECORDS:
        return "the records path holds something else than an array";
    case DG_MASK_PAUSED:
        return "paused: no allowance of records";
    default:
        return "unknown mask error";
    }
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

    if (f >= 0 && m->actions[f].row) {
        /* on a rows path: read for the record's scope */
        if (dg_mask_rows_member(m, c, p) != 0) {
            return DG_MASK_E_EMIT;
        }

        if (m->actions[f].row & DG_MASK_ROW_ONLY) {
            /* no field: unselected, an object or array walked */
            m->stats.field_hits[f]++;
            f = (c == '{' || c == '[') ? DG_MASK_F_WALK : -1;
        }
    }

    if (f >= 0) {
        m->stats.field_hits[f]++;
        act = &m->actions[f];

        if (act->method == DG_MASK_DROP) {
            return dg_mask_member_drop(m);
        }

        m->vlisted = 1;

        /* in a record held and already out of scope nothing is masked:
         * its bytes go nowhere (the member loop does the same) */
        if (act->method != DG_MASK_CLEAR && !(m->rfail && m->rec_open)) {
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
    int               rc;

    if (c != '{' && c != '[') {
        return dg_mask_member_drop(m);
    }

    fr = &m->frames[m->depth - 1];
    m->vnode = fr->node >= 0 ? m->rules->nodes[fr->node].arr : -1;
    m->vlisted = 0;

    if (fr->flags & (DG_FR_RECORDS | DG_FR_RCAND | DG_FR_RONE)) {
        /* a record: counted, held (its prefix with it) or cut */
        rc = dg_mask_rec_elem(m, fr, c, p, 1);
        if (rc != 0 || m->skip) {
            return rc;
        }

        rc = dg_mask_member_emit(m, m->hlen + (size_t) (p - m->hs));
        if (rc != 0) {
            return rc;
        }

        return dg_mask_rec_value(m, p);
    }

    return dg_mask_member_emit(m, m->hlen + (size_t) (p - m->hs));
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

    } else if (m->ndet) {
        rc = dg_mask_num_det(m, q);
    }

    dg_mask_value_done(m, q);

    if (rc == 0 && m->rowsx) {
        rc = dg_mask_rec_done(m, q);
    }

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
        if (rc != 0) {
            if (rc == DG_MASK_PAUSED) {
                /* the element is decided again when fed again */
                m->state = S_VALUE;
            }
            return rc;
        }
        m->member = 0;

    } else if (!m->skip && !m->mask) {
        if (m->depth == 0) {
            m->vnode = 0;
            m->vlisted = 0;

            if ((rc = dg_mask_rec_root(m, c, p)) != 0) {
                if (rc == DG_MASK_PAUSED) {
                    m->state = S_VALUE;
                }
                return rc;
            }

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

        } else if ((rc = dg_mask_elem_start(m, c, p)) != 0) {
            if (rc == DG_MASK_PAUSED) {
                m->state = S_VALUE;
            }
            return rc;
        }
    }

    if (m->depth < m->shape_top && !m->skip && !m->mask
        && (rc = dg_mask_rec_shape(m, c)) != 0)
    {
        return rc;
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
            q = dg_mask_scan(p, end, m->isa);
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
    q = dg_mask_scan(p, lim, m->isa);

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

        } else if ((fr->flags & DG_FR_RONE) && !m->skip && !m->mask
                   && (rc = dg_mask_rec_comma(m, p)) != 0)
        {
            if (rc == DG_MASK_PAUSED) {
                m->state = S_AFTER;
            }
            return rc;
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

    q = dg_mask_scan(p, end, m->isa);
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

    q = dg_mask_scan(p, end, m->isa);
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

    if (m->rowsx && (rc = dg_mask_rec_done(m, p)) != 0) {
        return rc;
    }

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
    dg_mask_out_t  *o;

    if (m == NULL || m->rc != 0 || m->done) {
        return DG_MASK_E_STATE;
    }

    /* the last feed left the output empty (the owner's, aside while a
     * record is held) */
    o = m->rec_open ? &m->rsave : &m->out;
    o->buf = m->wbuf;
    o->cap = DG_MASK_WBUF;
    o->len = 0;
    o->emit = emit;
    o->lend = NULL;
    o->ctx = ctx;

    return dg_mask_feed_span(m, p, n, last);
}


int
dg_mask_feed_into(dg_mask_t *m, const uint8_t *p, size_t n, int last,
    dg_mask_lend_pt lend, void *ctx)
{
    dg_mask_out_t  *o;

    if (m == NULL || m->rc != 0 || m->done) {
        return DG_MASK_E_STATE;
    }

    if (lend == NULL) {
        m->rc = DG_MASK_E_EMIT;
        return DG_MASK_E_EMIT;
    }

    /* nothing lent yet: the first write asks for memory */
    o = m->rec_open ? &m->rsave : &m->out;
    o->buf = m->wbuf;
    o->cap = 0;
    o->len = 0;
    o->emit = NULL;
    o->lend = lend;
    o->ctx = ctx;

    return dg_mask_feed_span(m, p, n, last);
}


static int
dg_mask_feed_span(dg_mask_t *m, const uint8_t *p, size_t n, int last)
{
    const uint8_t  *end;
    int             rc, paused;

    if (p == NULL) {
        n = 0;
        p = (const uint8_t *) "";
    }

    end = p + n;
    m->os = m->emitting ? p : NULL;
    m->hs = p;
    m->blk.base = NULL;
    m->blk.lo = p;
    m->cap_from = p;
    paused = 0;

    rc = dg_mask_run_span(m, p, end);

    if (rc == DG_MASK_PAUSED) {
        /* no allowance for the next record: the span ends before it */
        end = m->pause;
        paused = 1;
        rc = 0;
    }

    m->taken = end - p;
    m->stats.bytes_in += end - p;

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

        if (m->cap_on) {
            dg_mask_rec_span_end(m, end);
        }
    }

    if (rc == 0 && last && !paused) {
        if (m->state == S_NUM && m->depth == 0
            && dg_mask_num_terminal(m->num))
        {
            rc = dg_mask_num_end(m, end);
            m->state = S_END;
        }
        if (rc == 0 && m->state != S_END) {
            rc = DG_MASK_E_TRUNCATED;
        }
        if (rc == 0 && m->rec_mode == DG_MASK_REC_AUTO && !m->rec_found
            && m->root == '{')
        {
            /* auto: a top-level object without an array of records is
             * one record */
            m->stats.records++;
        }
    }

    if (rc == 0) {
        rc = dg_mask_out_flush(&m->out);
    }

    if (rc == 0 && m->rec_open) {
        /* the owner's memory goes back, the record stays held */
        rc = dg_mask_out_flush(&m->rsave);
    }

    if (rc != 0) {
        if (rc == DG_MASK_E_RECORD) {
            /* the record too large to decide is not sent */
            m->stats.rows_dropped++;
        }
        m->rc = rc;
        return rc;
    }

    if (paused) {
        return DG_MASK_PAUSED;
    }

    if (last) {
        m->done = 1;
    }

    return DG_MASK_OK;
}
