/*
 * datagate core: the masker's output sink (dg_mask_out_t in
 * dg_mask_int.h): a coalescing buffer handed to emit, memory lent by
 * the owner, or a fixed buffer.
 */

#include <stddef.h>
#include <string.h>
#include "dg_mask.h"
#include "dg_mask_int.h"
#include "dg_mask_scan.h"


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
        return o->full ? o->full : DG_MASK_E_TOOBIG;
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


int
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
int
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
