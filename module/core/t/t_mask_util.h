/*
 * Helpers shared by the masker's unit tests and fuzz target: a strict JSON
 * validator and a feeder that collects output.
 */

#ifndef T_MASK_UTIL_H
#define T_MASK_UTIL_H

#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "dg_mask.h"


typedef struct {
    uint8_t    *p;
    size_t      len;
    size_t      cap;
    int         fail_after;     /* > 0: emit fails on that call */
    int         calls;
    size_t      lend;           /* > 0: tm_feed lends memory in pieces
                                   of 1 to lend bytes (at least need) */
    uint8_t    *chunk;          /* memory lent, its own allocation so
                                   that a write past it is seen */
    size_t      coff;           /* handed back of chunk */
    size_t      ccap;
    uint32_t    seed;
    int         bad;            /* the masker broke the lend contract */
} tm_buf_t;


static inline int
tm_append(tm_buf_t *b, const uint8_t *p, size_t n)
{
    uint8_t   *np;
    size_t     nc;

    if (n == 0) {
        return 0;
    }

    if (b->len + n + 1 > b->cap) {
        nc = (b->cap ? b->cap * 2 : 256);
        while (nc < b->len + n + 1) {
            nc *= 2;
        }
        np = realloc(b->p, nc);
        if (np == NULL) {
            return -1;
        }
        b->p = np;
        b->cap = nc;
    }

    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}


static inline int
tm_emit(void *ctx, const uint8_t *p, size_t n)
{
    tm_buf_t  *b = ctx;

    b->calls++;
    if (b->fail_after > 0 && b->calls >= b->fail_after) {
        return -1;
    }

    return tm_append(b, p, n);
}


/* dg_mask_lend_pt: the rest of the chunk when it is large enough (half
 * the time), else a fresh chunk of a pseudo-random size */
static inline int
tm_lend(void *ctx, size_t used, size_t need, uint8_t **buf, size_t *cap)
{
    tm_buf_t  *b = ctx;
    size_t     size;

    b->calls++;
    if (b->fail_after > 0 && b->calls >= b->fail_after) {
        return -1;
    }

    if (used) {
        if (b->chunk == NULL || used > b->ccap - b->coff) {
            b->bad++;
            return -1;
        }
        if (tm_append(b, b->chunk + b->coff, used) != 0) {
            return -1;
        }
        b->coff += used;
    }

    if (need == 0) {
        return 0;
    }

    if (need > DG_MASK_LEND_NEED) {
        b->bad++;
        return -1;
    }

    b->seed = b->seed * 1103515245u + 12345u;

    if (b->chunk && b->ccap - b->coff >= need && (b->seed & 0x10000)) {
        *buf = b->chunk + b->coff;
        *cap = b->ccap - b->coff;
        return 0;
    }

    free(b->chunk);

    size = 1 + (b->seed >> 17) % b->lend;
    if (size < need) {
        size = need;
    }

    b->chunk = malloc(size);
    if (b->chunk == NULL) {
        return -1;
    }
    b->coff = 0;
    b->ccap = size;

    *buf = b->chunk;
    *cap = size;
    return 0;
}


static inline void *
tm_alloc(size_t n)
{
    void  *p;

    if (posix_memalign(&p, 16, n ? n : 16) != 0) {
        return NULL;
    }
    return p;
}


/* strict JSON validator (RFC 8259 grammar, no UTF-8 check) */

typedef struct {
    const uint8_t  *p;
    const uint8_t  *end;
    int             depth;
} tm_json_t;


static inline void
tm_ws(tm_json_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t'
                             || *j->p == '\n' || *j->p == '\r'))
    {
        j->p++;
    }
}


static inline int tm_value(tm_json_t *j);


static inline int
tm_string(tm_json_t *j)
{
    int  i;

    if (j->p >= j->end || *j->p != '"') {
        return -1;
    }
    j->p++;

    while (j->p < j->end) {
        uint8_t c = *j->p++;

        if (c == '"') {
            return 0;
        }
        if (c < 0x20) {
            return -1;
        }
        if (c == '\\') {
            if (j->p >= j->end) {
                return -1;
            }
            c = *j->p++;
            if (c == 'u') {
                for (i = 0; i < 4; i++) {
                    if (j->p >= j->end || !strchr("0123456789abcdefABCDEF",
                                                  *j->p) || *j->p == 0)
                    {
                        return -1;
                    }
                    j->p++;
                }
            } else if (!strchr("\"\\/bfnrt", c) || c == 0) {
                return -1;
            }
        }
    }

    return -1;
}


static inline int
tm_digits(tm_json_t *j)
{
    const uint8_t  *s = j->p;

    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        j->p++;
    }
    return j->p > s ? 0 : -1;
}


static inline int
tm_number(tm_json_t *j)
{
    if (j->p < j->end && *j->p == '-') {
        j->p++;
    }
    if (j->p < j->end && *j->p == '0') {
        j->p++;
    } else if (tm_digits(j) != 0) {
        return -1;
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (tm_digits(j) != 0) {
            return -1;
        }
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) {
            j->p++;
        }
        if (tm_digits(j) != 0) {
            return -1;
        }
    }
    return 0;
}


static inline int
tm_lit(tm_json_t *j, const char *s)
{
    size_t  n = strlen(s);

    if ((size_t) (j->end - j->p) < n || memcmp(j->p, s, n) != 0) {
        return -1;
    }
    j->p += n;
    return 0;
}


static inline int
tm_value(tm_json_t *j)
{
    uint8_t  c;

    tm_ws(j);
    if (j->p >= j->end) {
        return -1;
    }

    c = *j->p;

    if (c == '{' || c == '[') {
        if (++j->depth > 10000) {
            return -1;
        }
        j->p++;
        tm_ws(j);
        if (j->p < j->end && *j->p == (c == '{' ? '}' : ']')) {
            j->p++;
            j->depth--;
            return 0;
        }
        for ( ;; ) {
            if (c == '{') {
                tm_ws(j);
                if (tm_string(j) != 0) {
                    return -1;
                }
                tm_ws(j);
                if (j->p >= j->end || *j->p != ':') {
                    return -1;
                }
                j->p++;
            }
            if (tm_value(j) != 0) {
                return -1;
            }
            tm_ws(j);
            if (j->p >= j->end) {
                return -1;
            }
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p == (c == '{' ? '}' : ']')) {
                j->p++;
                j->depth--;
                return 0;
            }
            return -1;
        }
    }

    if (c == '"') {
        return tm_string(j);
    }
    if (c == 't') {
        return tm_lit(j, "true");
    }
    if (c == 'f') {
        return tm_lit(j, "false");
    }
    if (c == 'n') {
        return tm_lit(j, "null");
    }
    return tm_number(j);
}


static inline int
tm_json_valid(const uint8_t *p, size_t n)
{
    tm_json_t  j;

    j.p = p;
    j.end = p + n;
    j.depth = 0;

    if (tm_value(&j) != 0) {
        return 0;
    }
    tm_ws(&j);
    return j.p == j.end;
}


/*
 * Feed doc in pieces: split at cut (two spans) when cut <= n, or one byte
 * at a time when cut == (size_t) -1, or at the offsets in cuts[] (ncuts).
 * Returns the first error or DG_MASK_OK; output in out (written into
 * memory lent by tm_lend when out->lend, by tm_emit otherwise).
 */
static inline int
tm_feed(void *mem, const dg_mask_conf_t *conf, const uint8_t *doc, size_t n,
    const size_t *cuts, size_t ncuts, tm_buf_t *out, dg_mask_stats_t *st)
{
    dg_mask_t  *m;
    size_t      i, from, to;
    int         rc;

    m = dg_mask_init(mem, conf);
    if (m == NULL) {
        return -100;
    }

    from = 0;
    rc = DG_MASK_OK;

    for (i = 0; i <= ncuts; i++) {
        to = (i < ncuts) ? cuts[i] : n;
        if (to < from) {
            to = from;
        }
        if (to > n) {
            to = n;
        }
        if (out->lend) {
            rc = dg_mask_feed_into(m, doc + from, to - from, i == ncuts,
                                   tm_lend, out);

            /* between feeds the masker holds none of the memory lent: a
             * write there is a use after free */
            free(out->chunk);
            out->chunk = NULL;
            out->coff = 0;
            out->ccap = 0;

        } else {
            rc = dg_mask_feed(m, doc + from, to - from, i == ncuts,
                              tm_emit, out);
        }
        if (rc != DG_MASK_OK) {
            break;
        }
        from = to;
    }

    if (out->bad && rc == DG_MASK_OK) {
        rc = -101;
    }

    if (st) {
        *st = *dg_mask_stats(m);
    }

    return rc;
}

/* the configuration most tests use: rules, actions, limits, a hash key */

static const uint8_t  hkey[] = "test-key";


static inline void
setup_conf(dg_mask_conf_t *conf, const dg_mask_rules_t *r,
    const dg_mask_spec_t *a, size_t max_value, unsigned max_depth)
{
    memset(conf, 0, sizeof(*conf));
    conf->rules = r;
    conf->actions = a;
    conf->max_value = max_value;
    conf->max_depth = max_depth;
    conf->hash_key = hkey;
    conf->hash_key_len = sizeof(hkey) - 1;
}


#endif /* T_MASK_UTIL_H */
