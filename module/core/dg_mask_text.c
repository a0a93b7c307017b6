/*
 * datagate core: the safety net on one text, such as a response header
 * value.
 *
 * dg_mask_text() finds, in a short text, the values the safety net knows
 * (18-digit resident ID with its MOD 11-2 check, mainland mobile, bank
 * card with Luhn, 统一社会信用代码: the validators of dg_mask_kinds.c)
 * in the forms headers carry them, and masks each hit in place with its
 * kind's method.
 *
 * The text is first read through its encodings, into a view in which
 * every character remembers the raw bytes it came from:
 *   - percent-encoding (%34), again and again (%2534 is %34 is 4), also
 *     of UTF-8 (%EF%BC%94 is the full-width 4), and %uXXXX;
 *   - \uXXXX escapes and HTML character references (&#52; &#x34;);
 *   - full-width letters and digits (４, Ｘ) and the other spaces and
 *     dashes people type (U+3000, U+00A0, U+2010-U+2015, ...) as their
 *     ASCII forms.
 * In that view a candidate is a group of digits (bounded by anything
 * that is not a digit, letters included; an X or x right after 17 digits
 * is an ID's check character), or several groups joined by at most
 * DG_TEXT_GAP_MAX separators (space, tab, '-', '+', '.'), as in "138 7711
 * 2345", "+86 138-7711-2345", "138.7711.2345" or "450103 19900307 1242"
 * (a mobile also after 86 or 0086).  From each group
 * the longest run of joined groups (at most 19 digits) that validates is
 * a hit, and the search goes on after it; a group of 20 digits or more
 * holds none (as in the JSON engine).  A run of exactly 18 of [0-9A-Z]
 * with a letter in it that validates as a credit code is a hit too.
 *
 * A hit's raw bytes, from its first character's to its last's, are
 * replaced by its method's output on the hit's characters in ASCII:
 * "id=%34%35%30%31..." becomes "id=450103********1242".  The output is
 * ASCII wherever a hit was, the rest of the text is left byte for byte.
 *
 * This is not the scanner of JSON streams (dg_mask_detect.c, and
 * dg_mask_detect_text() on one whole text), though both validate with the
 * same detect kinds (dg_mask_kinds.c) and choose a hit's method the same
 * way (dg_mask_detect_method()).  They read different inputs.  The
 * stream's scanner reads JSON text cut at any byte, in a window of at most
 * DG_DET_WIN characters, in the forms data is written in (groups of the
 * shapes in use with one separator between two, JSON escapes, full-width
 * digits), and leaves separators and a country code in clear.  A header
 * value is short and whole, and carries values encoded for URLs and HTML,
 * nested, joined by up to DG_TEXT_GAP_MAX separators of any kind: it is
 * decoded first, in several passes, and a hit is replaced whole, its
 * separators and the 86 or 0086 before a mobile with it ("+86 138 7711
 * 2345" becomes "+861******2345").  One scanner for both would change
 * what one of them masks.
 */

#include <stdlib.h>
#include <string.h>
#include "dg_mask.h"
#include "dg_mask_int.h"
#include "dg_mask_scan.h"


#define DG_TEXT_ROUNDS      4       /* decoding passes (nested encodings) */
#define DG_TEXT_GAP_MAX     3       /* separators between joined groups */
#define DG_TEXT_DIGITS_MAX  19      /* the longest value (a bank card) */
#define DG_TEXT_HIT_MIN     11      /* the shortest value (a mobile) */
#define DG_TEXT_USCC_LEN    18
#define DG_TEXT_HIT_OUT     64      /* the most a method writes for a hit
                                       (hash: 32 hex digits) */
#define DG_TEXT_OTHER       0x100   /* a decoded character that is not
                                       ASCII and has no ASCII form (not
                                       a byte) */
#define DG_TEXT_CP_MAX      0x10ffff


/* one character of the decoded view */
typedef struct {
    uint32_t                    rs;     /* its raw bytes: [rs, re) */
    uint32_t                    re;
    uint32_t                    c;      /* a byte, or DG_TEXT_OTHER */
} dg_text_ch_t;


typedef struct {
    uint32_t                    s;      /* view characters [s, e) */
    uint32_t                    e;
    int                         kind;
    uint8_t                     len;    /* characters in v */
    uint8_t                     v[DG_TEXT_USCC_LEN + 2];
} dg_text_hit_t;


static size_t dg_text_decode(dg_text_ch_t *ch, size_t n, int *changed);
static int dg_text_cp_ascii(uint32_t cp);
static int dg_text_hex(uint32_t c);
static size_t dg_text_digits(const dg_text_ch_t *ch, size_t n,
    dg_text_hit_t *hits, size_t maxhits);
static size_t dg_text_group(const dg_text_ch_t *ch, size_t n, size_t from,
    size_t *gs, size_t *ge);
static int dg_text_joined(const dg_text_ch_t *ch, size_t from, size_t to);
static size_t dg_text_uscc(const dg_text_ch_t *ch, size_t n,
    dg_text_hit_t *hits, size_t maxhits);


/* hits of one list: each takes at least HIT_MIN raw bytes */
static size_t
dg_text_maxhits(size_t len)
{
    return len / DG_TEXT_HIT_MIN + 1;
}


size_t
dg_mask_text_work(size_t len)
{
    /* the view, then the digit hits and the credit-code hits */
    return (len + 1) * sizeof(dg_text_ch_t)
           + 2 * dg_text_maxhits(len) * sizeof(dg_text_hit_t);
}


size_t
dg_mask_text_outcap(size_t len)
{
    return len + (len / DG_TEXT_HIT_MIN + 1) * DG_TEXT_HIT_OUT;
}


/*
 * Every character of a hit in the decoded view comes from raw bytes that
 * start with a digit, '%', '\\', '&' or a UTF-8 lead byte: fewer than
 * HIT_MIN of those, and there is none.
 */
int
dg_mask_text_candidate(const uint8_t *v, size_t len)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < len; i++) {
        if ((v[i] >= '0' && v[i] <= '9') || v[i] == '%' || v[i] == '\\'
            || v[i] == '&' || v[i] >= 0xc0)
        {
            if (++n >= DG_TEXT_HIT_MIN) {
                return 1;
            }
        }
    }

    return 0;
}


int
dg_mask_text(const dg_mask_conf_t *conf, const uint8_t *v, size_t len,
    void *work, uint8_t *out, size_t *outlen, uint64_t *hits)
{
    int              changed, round, rc;
    size_t           i, j, n, nd, nu, nhits, maxhits, raw, last;
    dg_mask_out_t    o;
    dg_mask_spec_t   spec;
    dg_text_ch_t    *ch;
    dg_text_hit_t   *hd, *hu, *h;

    if (len > DG_MASK_TEXT_MAX) {
        return DG_MASK_E_TOOBIG;
    }

    if (!dg_mask_text_candidate(v, len)) {
        return 0;
    }

    ch = work;
    maxhits = dg_text_maxhits(len);
    hd = (dg_text_hit_t *) (ch + len + 1);
    hu = hd + maxhits;

    for (i = 0; i < len; i++) {
        ch[i].rs = (uint32_t) i;
        ch[i].re = (uint32_t) i + 1;
        ch[i].c = v[i];
    }

    n = len;

    for (round = 0; round < DG_TEXT_ROUNDS; round++) {
        n = dg_text_decode(ch, n, &changed);
        if (!changed) {
            break;
        }
    }

    nd = dg_text_digits(ch, n, hd, maxhits);
    nu = dg_text_uscc(ch, n, hu, maxhits);

    if (nd + nu == 0) {
        return 0;
    }

    /*
     * The raw text with each hit's bytes replaced.  Both lists are in
     * order; they are merged, and a hit that overlaps the one before it
     * is left out (that one covers it).
     */

    memset(&o, 0, sizeof(o));
    o.buf = out;
    o.cap = dg_mask_text_outcap(len);
    o.isa = conf->nosimd ? 0 : dg_mask_cpu_isa();

    raw = 0;
    last = 0;
    nhits = 0;
    i = 0;
    j = 0;

    while (i < nd || j < nu) {
        if (j == nu || (i < nd && hd[i].s <= hu[j].s)) {
            h = &hd[i++];

        } else {
            h = &hu[j++];
        }

        if (nhits && h->s < last) {
            continue;
        }

        rc = dg_mask_out_put(&o, v + raw, ch[h->s].rs - raw);
        if (rc != 0) {
            return rc;
        }

        dg_mask_detect_method((unsigned) h->kind, &conf->detect[h->kind],
                              conf->hash_key, conf->hash_key_len, &spec);

        rc = dg_mask_apply(&o, &spec, h->v, h->len, conf->hash_key,
                           conf->hash_key_len, 0);
        if (rc != 0) {
            return rc;
        }

        raw = ch[h->e - 1].re;
        last = h->e;
        nhits++;

        if (hits) {
            hits[h->kind]++;
        }
    }

    rc = dg_mask_out_put(&o, v + raw, len - raw);
    if (rc != 0) {
        return rc;
    }

    *outlen = o.len;

    return (int) nhits;
}


/*
 * One decoding pass over the view, in place (a decoded character is
 * never longer than what it came from).  Returns the new length.
 */
static size_t
dg_text_decode(dg_text_ch_t *ch, size_t n, int *changed)
{
    int       a;
    size_t    i, k, m, w, dig;
    uint32_t  c, cp, base;

    *changed = 0;
    w = 0;

    for (i = 0; i < n; /* void */) {
        c = ch[i].c;
        k = 0;                  /* characters taken */
        cp = 0;

        if (c == '%' && i + 5 < n
            && (ch[i + 1].c == 'u' || ch[i + 1].c == 'U'))
        {
            /* %uXXXX, as some servers write a code point */
            for (m = 0; m < 4 && dg_text_hex(ch[i + 2 + m].c) >= 0; m++) {
                cp = cp * 16 + (uint32_t) dg_text_hex(ch[i + 2 + m].c);
            }

            if (m == 4) {
                k = 6;
            }

        } else if (c == '%' && i + 2 < n
            && dg_text_hex(ch[i + 1].c) >= 0 && dg_text_hex(ch[i + 2].c) >= 0)
        {
            /* a byte, whatever it is: UTF-8 is put together below */
            cp = (uint32_t) (dg_text_hex(ch[i + 1].c) * 16
                             + dg_text_hex(ch[i + 2].c));
            k = 3;

            ch[w].rs = ch[i].rs;
            ch[w].re = ch[i + 2].re;
            ch[w].c = cp;
            w++;
            i += k;
            *changed = 1;
            continue;
        }

        if (c == '\\' && i + 5 < n
            && (ch[i + 1].c == 'u' || ch[i + 1].c == 'U'))
        {
            for (m = 0; m < 4 && dg_text_hex(ch[i + 2 + m].c) >= 0; m++) {
                cp = cp * 16 + (uint32_t) dg_text_hex(ch[i + 2 + m].c);
            }

            if (m == 4) {
                k = 6;
            }

        } else if (c == '&' && i + 3 < n && ch[i + 1].c == '#') {
            /* &#52; or &#x34; */
            m = i + 2;
            base = 10;

            if (ch[m].c == 'x' || ch[m].c == 'X') {
                base = 16;
                m++;
            }

            for (dig = 0; m < n && dig < 8; m++, dig++) {
                a = (base == 16) ? dg_text_hex(ch[m].c)
                    : (ch[m].c >= '0' && ch[m].c <= '9') ? (int) ch[m].c - '0'
                    : -1;
                if (a < 0) {
                    break;
                }
                cp = cp * base + (uint32_t) a;
            }

            if (dig > 0 && m < n && ch[m].c == ';' && cp <= DG_TEXT_CP_MAX) {
                k = m + 1 - i;
            }

        } else if (c >= 0xc0 && c <= 0xf4) {
            /* UTF-8 (raw or decoded bytes): a character with an ASCII
             * form becomes that character */
            m = (c >= 0xf0) ? 4 : (c >= 0xe0) ? 3 : 2;
            cp = c & (0x7f >> m);

            for (a = 1; (size_t) a < m; a++) {
                if (i + a >= n || ch[i + a].c > 0xff
                    || (ch[i + a].c & 0xc0) != 0x80)
                {
                    break;
                }
                cp = (cp << 6) | (ch[i + a].c & 0x3f);
            }

            if ((size_t) a == m && dg_text_cp_ascii(cp) >= 0) {
                k = m;
            }
        }

        if (k == 0) {
            ch[w++] = ch[i++];
            continue;
        }

        a = (cp < 0x80) ? (int) cp : dg_text_cp_ascii(cp);

        ch[w].rs = ch[i].rs;
        ch[w].re = ch[i + k - 1].re;
        ch[w].c = (a >= 0) ? (uint32_t) a : DG_TEXT_OTHER;
        w++;
        i += k;
        *changed = 1;
    }

    return w;
}


/* the ASCII form of a code point people use for one, or -1 */
static int
dg_text_cp_ascii(uint32_t cp)
{
    if (cp < 0x80) {
        return (int) cp;
    }

    if (cp >= 0xff10 && cp <= 0xff19) {         /* full-width digits */
        return (int) (cp - 0xff10) + '0';
    }

    if (cp >= 0xff21 && cp <= 0xff3a) {         /* full-width A-Z */
        return (int) (cp - 0xff21) + 'A';
    }

    if (cp >= 0xff41 && cp <= 0xff5a) {         /* full-width a-z */
        return (int) (cp - 0xff41) + 'a';
    }

    switch (cp) {

    case 0x00a0:    /* no-break space */
    case 0x2002:    /* en space ... */
    case 0x2003:
    case 0x2007:    /* figure space */
    case 0x2009:    /* thin space */
    case 0x202f:    /* narrow no-break space */
    case 0x3000:    /* ideographic space */
        return ' ';

    case 0x2010:    /* hyphen ... */
    case 0x2011:
    case 0x2012:
    case 0x2013:
    case 0x2014:
    case 0x2015:
    case 0x2212:    /* minus */
    case 0xfe63:    /* small hyphen-minus */
    case 0xff0d:    /* full-width hyphen-minus */
        return '-';

    case 0xff0b:    /* full-width plus */
        return '+';

    case 0xff0e:    /* full-width full stop */
    case 0x3002:    /* ideographic full stop */
        return '.';

    case 0xff05:    /* full-width percent */
        return '%';
    }

    return -1;
}


static int
dg_text_hex(uint32_t c)
{
    if (c >= '0' && c <= '9') {
        return (int) (c - '0');
    }

    if (c >= 'a' && c <= 'f') {
        return (int) (c - 'a' + 10);
    }

    if (c >= 'A' && c <= 'F') {
        return (int) (c - 'A' + 10);
    }

    return -1;
}


static int
dg_text_is_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}


static int
dg_text_is_sep(uint32_t c)
{
    return c == ' ' || c == '\t' || c == '-' || c == '+' || c == '.';
}


/* the next group of digits at or after from: 1 and [gs, ge), or 0 */
static size_t
dg_text_group(const dg_text_ch_t *ch, size_t n, size_t from, size_t *gs,
    size_t *ge)
{
    size_t  i;

    for (i = from; i < n && !dg_text_is_digit(ch[i].c); i++) {
        /* void */
    }

    if (i == n) {
        return 0;
    }

    *gs = i;

    while (i < n && dg_text_is_digit(ch[i].c)) {
        i++;
    }

    *ge = i;

    return 1;
}


/* 1: the characters [from, to) join two groups */
static int
dg_text_joined(const dg_text_ch_t *ch, size_t from, size_t to)
{
    size_t  i;

    if (to - from > DG_TEXT_GAP_MAX) {
        return 0;
    }

    for (i = from; i < to; i++) {
        if (!dg_text_is_sep(ch[i].c)) {
            return 0;
        }
    }

    return 1;
}


static size_t
dg_text_digits(const dg_text_ch_t *ch, size_t n, dg_text_hit_t *hits,
    size_t maxhits)
{
    int       kind, best_kind;
    size_t    nh, from, gs, ge, s0, e0, ns, nd, i, best_e, best_n;
    uint8_t   d[DG_TEXT_DIGITS_MAX + 1];

    nh = 0;
    from = 0;

    while (nh < maxhits && dg_text_group(ch, n, from, &s0, &e0)) {

        /* the longest run of joined groups from s0 that validates */

        best_kind = -1;
        best_e = 0;
        best_n = 0;
        nd = 0;
        gs = s0;
        ge = e0;

        for ( ;; ) {
            if (nd + (ge - gs) > DG_TEXT_DIGITS_MAX) {
                break;
            }

            for (i = gs; i < ge; i++) {
                d[nd++] = (uint8_t) ch[i].c;
            }

            if (nd == 17 && ge < n && (ch[ge].c == 'X' || ch[ge].c == 'x')) {
                d[17] = (uint8_t) ch[ge].c;
                kind = dg_mask_detect_digits(d, 18);
                if (kind >= 0) {
                    best_kind = kind;
                    best_e = ge + 1;
                    best_n = 18;
                }
                /* the X ends the run: nothing joins after it */
                break;
            }

            if (nd >= DG_TEXT_HIT_MIN) {
                /* 86 or 0086 and a mobile is a mobile here too */
                kind = dg_mask_detect_digits(d, nd);

                if (kind >= 0) {
                    best_kind = kind;
                    best_e = ge;
                    best_n = nd;
                }
            }

            ns = ge;

            if (!dg_text_group(ch, n, ns, &gs, &ge)
                || !dg_text_joined(ch, ns, gs))
            {
                break;
            }
        }

        if (best_kind < 0) {
            from = e0;
            continue;
        }

        hits[nh].s = (uint32_t) s0;
        hits[nh].e = (uint32_t) best_e;
        hits[nh].kind = best_kind;
        hits[nh].len = (uint8_t) best_n;

        /* the hit's characters: its digits (and X), separators left out */
        for (i = s0, nd = 0; i < best_e && nd < best_n; i++) {
            if (dg_text_is_digit(ch[i].c) || ch[i].c == 'X'
                || ch[i].c == 'x')
            {
                hits[nh].v[nd++] = (uint8_t) ch[i].c;
            }
        }

        nh++;
        from = best_e;
    }

    return nh;
}


static size_t
dg_text_uscc(const dg_text_ch_t *ch, size_t n, dg_text_hit_t *hits,
    size_t maxhits)
{
    int       letter;
    size_t    nh, i, s, k;
    uint32_t  c;
    uint8_t   r[DG_TEXT_USCC_LEN];

    nh = 0;
    i = 0;

    while (i < n && nh < maxhits) {
        c = ch[i].c;

        if (!(dg_text_is_digit(c) || (c >= 'A' && c <= 'Z'))) {
            i++;
            continue;
        }

        s = i;
        letter = 0;

        while (i < n && (dg_text_is_digit(ch[i].c)
                         || (ch[i].c >= 'A' && ch[i].c <= 'Z')))
        {
            letter |= !dg_text_is_digit(ch[i].c);
            i++;
        }

        if (i - s != DG_TEXT_USCC_LEN || !letter) {
            continue;
        }

        for (k = 0; k < DG_TEXT_USCC_LEN; k++) {
            r[k] = (uint8_t) ch[s + k].c;
        }

        /* a run of digits only, or an ID ending in X, is the digit
         * scan's; here only what only a credit code can be */
        if (dg_mask_detect_kind(r, DG_TEXT_USCC_LEN) != DG_DETECT_USCC) {
            continue;
        }

        hits[nh].s = (uint32_t) s;
        hits[nh].e = (uint32_t) i;
        hits[nh].kind = DG_DETECT_USCC;
        hits[nh].len = DG_TEXT_USCC_LEN;
        memcpy(hits[nh].v, r, DG_TEXT_USCC_LEN);
        nh++;
    }

    return nh;
}
