/*
 * datagate core: the provenance index's fingerprints, blocks and the
 * JSON scanner that finds the identifying values (see dg_trace.h and
 * docs/trace.md).
 */

#include <string.h>

#include "dg_crypto.h"
#include "dg_trace.h"


#define DG_TRACE_S_OUT      0       /* between tokens */
#define DG_TRACE_S_STR      1       /* in a string */
#define DG_TRACE_S_AFTER    2       /* after a string: ':' makes it a key */
#define DG_TRACE_S_NUM      3       /* in a number, true or false */

#define DG_TRACE_WANT       1       /* the next value is traced */
#define DG_TRACE_VAL        2       /* the string is that value */


int
dg_trace_key(const uint8_t *secret, size_t len,
    uint8_t key[DG_TRACE_KEY_LEN])
{
    uint8_t     mac[DG_SHA256_LEN];
    dg_bytes_t  part;

    part.data = DG_TRACE_KEY_LABEL;
    part.len = sizeof(DG_TRACE_KEY_LABEL) - 1;

    if (dg_hmac_sha256(secret, len, &part, 1, mac) != 0) {
        return -1;
    }

    memcpy(key, mac, DG_TRACE_KEY_LEN);
    memset(mac, 0, sizeof(mac));

    return 0;
}


uint64_t
dg_trace_fp(const uint8_t key[DG_TRACE_KEY_LEN], const uint8_t *v,
    size_t len)
{
    return dg_siphash(key, v, len);
}


/* ---- blocks ----------------------------------------------------------- */

size_t
dg_trace_head(uint8_t *out, uint32_t time, unsigned n,
    const uint8_t *consumer, size_t clen)
{
    if (clen > DG_TRACE_CONSUMER_MAX) {
        clen = DG_TRACE_CONSUMER_MAX;
    }

    memcpy(out, DG_TRACE_MAGIC, DG_TRACE_MAGIC_LEN);
    out[4] = (uint8_t) time;
    out[5] = (uint8_t) (time >> 8);
    out[6] = (uint8_t) (time >> 16);
    out[7] = (uint8_t) (time >> 24);
    out[8] = (uint8_t) n;
    out[9] = (uint8_t) (n >> 8);
    out[10] = (uint8_t) clen;
    memcpy(out + DG_TRACE_HEAD_FIXED, consumer, clen);

    return DG_TRACE_HEAD_FIXED + clen;
}


void
dg_trace_put_fp(uint8_t *out, uint64_t fp)
{
    int  i;

    for (i = 0; i < DG_TRACE_FP_LEN; i++) {
        out[i] = (uint8_t) (fp >> (8 * i));
    }
}


uint64_t
dg_trace_get_fp(const uint8_t *in)
{
    return dg_le64(in);
}


/* ---- the scanner ------------------------------------------------------ */

static int
dg_trace_hex(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20;
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}


size_t
dg_trace_unescape(const uint8_t *in, size_t len, uint8_t *out)
{
    size_t    i, o;
    uint32_t  u, lo;
    int       h, k;

    for (i = 0, o = 0; i < len; i++) {
        if (in[i] != '\\' || i + 1 >= len) {
            out[o++] = in[i];
            continue;
        }

        i++;

        switch (in[i]) {
        case 'b': out[o++] = '\b'; continue;
        case 'f': out[o++] = '\f'; continue;
        case 'n': out[o++] = '\n'; continue;
        case 'r': out[o++] = '\r'; continue;
        case 't': out[o++] = '\t'; continue;
        case 'u': break;
        default: out[o++] = in[i]; continue;
        }

        if (i + 4 >= len) {
            out[o++] = 'u';
            continue;
        }

        for (u = 0, k = 1; k <= 4; k++) {
            h = dg_trace_hex(in[i + k]);
            if (h < 0) {
                break;
            }
            u = u << 4 | (uint32_t) h;
        }

        if (k <= 4) {
            out[o++] = 'u';
            continue;
        }

        i += 4;

        if (u >= 0xd800 && u < 0xdc00 && i + 6 < len && in[i + 1] == '\\'
            && in[i + 2] == 'u')
        {
            for (lo = 0, k = 3; k <= 6; k++) {
                h = dg_trace_hex(in[i + k]);
                if (h < 0) {
                    break;
                }
                lo = lo << 4 | (uint32_t) h;
            }

            if (k > 6 && lo >= 0xdc00 && lo < 0xe000) {
                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }
        }

        /* UTF-8 of u: never longer than the 6 bytes it was written in */
        if (u < 0x80) {
            out[o++] = (uint8_t) u;
        } else if (u < 0x800) {
            out[o++] = (uint8_t) (0xc0 | u >> 6);
            out[o++] = (uint8_t) (0x80 | (u & 0x3f));
        } else if (u < 0x10000) {
            out[o++] = (uint8_t) (0xe0 | u >> 12);
            out[o++] = (uint8_t) (0x80 | ((u >> 6) & 0x3f));
            out[o++] = (uint8_t) (0x80 | (u & 0x3f));
        } else {
            out[o++] = (uint8_t) (0xf0 | u >> 18);
            out[o++] = (uint8_t) (0x80 | ((u >> 12) & 0x3f));
            out[o++] = (uint8_t) (0x80 | ((u >> 6) & 0x3f));
            out[o++] = (uint8_t) (0x80 | (u & 0x3f));
        }
    }

    return o;
}


void
dg_trace_scan_init(dg_trace_scan_t *s, const uint8_t *key,
    const char *const *names, const size_t *lens, size_t nnames,
    dg_trace_found_pt found, void *ctx)
{
    size_t  i, max;

    memset(s, 0, sizeof(*s));
    s->key = key;
    s->names = names;
    s->lens = lens;
    s->nnames = nnames;
    s->found = found;
    s->ctx = ctx;

    /* escaped, a name may take 6 bytes a byte */
    s->keymax = sizeof(s->tok);

    if (names) {
        for (i = 0, max = 0; i < nnames; i++) {
            max = lens[i] > max ? lens[i] : max;
        }
        if (6 * max + 1 < s->keymax) {
            s->keymax = 6 * max + 1;
        }
    }
}


static void
dg_trace_tok(dg_trace_scan_t *s, uint8_t c)
{
    if (s->len < sizeof(s->tok)) {
        s->tok[s->len++] = c;
    } else {
        s->over = 1;
    }
}


/* the token collected is a value: its fingerprint (string: escaped) */
static void
dg_trace_emit(dg_trace_scan_t *s, int string)
{
    size_t   len;
    uint8_t  v[sizeof(s->tok)];

    if (string) {
        len = dg_trace_unescape(s->tok, s->len, v);
    } else {
        memcpy(v, s->tok, s->len);
        len = s->len;
    }

    if (len > DG_TRACE_VALUE_MAX) {
        len = DG_TRACE_VALUE_MAX;
    }

    if (len == 0) {
        return;
    }

    s->found(s->ctx, dg_trace_fp(s->key, v, len));
}


/* the string collected was a key: is its value traced? */
static unsigned
dg_trace_is_name(dg_trace_scan_t *s)
{
    size_t   i, len;
    uint8_t  k[sizeof(s->tok)];

    if (s->names == NULL) {
        return 1;
    }

    if (s->over) {
        return 0;
    }

    len = dg_trace_unescape(s->tok, s->len, k);

    for (i = 0; i < s->nnames; i++) {
        if (s->lens[i] == len && memcmp(s->names[i], k, len) == 0) {
            return 1;
        }
    }

    return 0;
}


void
dg_trace_scan(dg_trace_scan_t *s, const uint8_t *p, size_t n)
{
    size_t          room;
    uint8_t         c;
    const uint8_t  *end, *q, *e;

    end = p + n;

    while (p < end) {
        c = *p;

        switch (s->state) {

        case DG_TRACE_S_STR:
            if (s->esc) {
                s->esc = 0;
                dg_trace_tok(s, c);
                p++;
                continue;
            }

            /* the common bytes of a string: to the next quote or escape
             * (two memchr(), vectorised by the C library) */
            q = memchr(p, '"', end - p);
            if (q == NULL) {
                q = end;
            }
            e = memchr(p, '\\', q - p);
            if (e) {
                q = e;
            }

            /* a key longer than every name is kept no further */
            room = (s->want & DG_TRACE_VAL) ? sizeof(s->tok) : s->keymax;
            room = (s->len < room) ? room - s->len : 0;

            if ((size_t) (q - p) <= room) {
                memcpy(s->tok + s->len, p, q - p);
                s->len += q - p;

            } else {
                /* a long value: its first bytes count */
                memcpy(s->tok + s->len, p, room);
                s->len += room;
                s->over = 1;
            }

            p = q;
            if (p == end) {
                return;
            }

            if (*p == '\\') {
                s->esc = 1;
                dg_trace_tok(s, '\\');
                p++;
                continue;
            }

            p++;                                /* the closing quote */

            if (s->want & DG_TRACE_VAL) {
                dg_trace_emit(s, 1);
                s->want = 0;
                s->state = DG_TRACE_S_OUT;

            } else {
                s->state = DG_TRACE_S_AFTER;
            }
            continue;

        case DG_TRACE_S_AFTER:
            if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
                p++;
                continue;
            }

            if (c == ':') {
                s->want = dg_trace_is_name(s) ? DG_TRACE_WANT : 0;
                s->state = DG_TRACE_S_OUT;
                p++;
                continue;
            }

            /* an array element: traced only when every scalar is */
            if (s->names == NULL) {
                dg_trace_emit(s, 1);
            }

            s->want = 0;
            s->state = DG_TRACE_S_OUT;
            continue;                           /* c again, outside */

        case DG_TRACE_S_NUM:
            if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.'
                || c == 'e' || c == 'E' || (c >= 'a' && c <= 'z'))
            {
                dg_trace_tok(s, c);
                p++;
                continue;
            }

            dg_trace_emit(s, 0);
            s->want = 0;
            s->state = DG_TRACE_S_OUT;
            continue;

        default:                                /* DG_TRACE_S_OUT */
            if (s->want == 0) {
                /* nothing but a string's start matters here */
                q = memchr(p, '"', end - p);
                if (q == NULL) {
                    return;
                }
                p = q;
                c = '"';
            }

            if (c == '"') {
                s->state = DG_TRACE_S_STR;
                s->want = s->want ? DG_TRACE_VAL : 0;
                s->len = 0;
                s->over = 0;
                s->esc = 0;
                p++;
                continue;
            }

            if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
                p++;
                continue;
            }

            if ((c >= '0' && c <= '9') || c == '-' || c == 't' || c == 'f') {
                s->state = DG_TRACE_S_NUM;
                s->len = 0;
                s->over = 0;
                continue;                       /* collected there */
            }

            /* null, an object, an array: not traced */
            s->want = 0;
            p++;
            continue;
        }
    }
}


void
dg_trace_scan_end(dg_trace_scan_t *s)
{
    if (s->state == DG_TRACE_S_NUM) {
        dg_trace_emit(s, 0);
    } else if (s->state == DG_TRACE_S_AFTER && s->names == NULL) {
        dg_trace_emit(s, 1);
    }

    s->state = DG_TRACE_S_OUT;
    s->want = 0;
}
