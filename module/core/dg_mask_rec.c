/*
 * datagate core: records in the masker's stream (see dg_mask.h).
 *
 * Where the records are is the rule set's (dg_mask_rules_build()); the
 * state machine (dg_mask.c) calls in here at a few places only, so that
 * a stream that does not scope or limit records pays one compare per
 * container pushed near the top of the document and one per record:
 *
 *   dg_mask_rec_push()   a container pushed at depth <= rec_top: is it
 *                        the records array (flags DG_FR_RECORDS, with
 *                        records one by one DG_FR_RONE; auto: a
 *                        candidate, DG_FR_RCAND, that its first element
 *                        decides)?
 *   dg_mask_rec_elem()   an element of such an array starts: counted;
 *                        one by one, held (rows) or cut (no allowance)
 *   dg_mask_rec_comma()  the comma before an element of a DG_FR_RONE
 *                        array: the hold starts there, so that a record
 *                        removed takes its comma with it
 *   dg_mask_rec_done()   at a value's end while a record is held or a
 *                        member captured (m->rowsx)
 *   dg_mask_rows_member() a member whose key is on a rows path (its
 *                        action has DG_MASK_ROW_KEY): its value is
 *                        captured for the record's scope
 *
 * A record held: the output sink is switched to m->rbuf (max_value
 * bytes, a fixed buffer whose overflow is DG_MASK_E_RECORD) from the
 * comma before the record to its end; the owner's sink waits in
 * m->rsave.  At the record's end it is kept (its bytes written to the
 * owner's sink, the comma stripped when no record was sent before it in
 * its array) or dropped (the bytes forgotten).  One record at most is
 * held: records do not nest (their path is a fixed one from the root).
 *
 * A captured value: its raw bytes (DG_MASK_ROWS_RAW at most) are copied
 * as the spans pass, whatever the state machine does with the value
 * (masked, dropped, passed), and compared when it ends.
 */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "dg_mask.h"
#include "dg_mask_int.h"
#include "dg_mask_scan.h"


#define DG_MASK_ROWS_DEPTH  8           /* keys of one field's path */
#define DG_MASK_ROWS_ROOT   1           /* the record's node */


typedef struct {
    uint32_t                    off;        /* key in str */
    uint16_t                    len;
    uint8_t                     child;      /* first child, 0: none */
    uint8_t                     next;       /* next sibling, 0: none */
    int16_t                     cond;       /* condition ending here, -1 */
} dg_mask_rnode_t;


typedef struct {
    uint32_t                    off;        /* in str */
    uint16_t                    len;        /* without the '*' */
    uint8_t                     prefix;     /* ended in '*' */
} dg_mask_rval_t;


struct dg_mask_rows_s {
    size_t                      nconds;
    uint32_t                    all;        /* a bit per condition */
    size_t                      nnodes;     /* [1] the root (the record) */
    dg_mask_rnode_t             nodes[DG_MASK_ROWS_NODES + 1];
    size_t                      first[DG_MASK_ROWS_MAX]; /* its values */
    size_t                      nvals[DG_MASK_ROWS_MAX];
    dg_mask_rval_t             *vals;
    uint8_t                    *str;
    size_t                      strlen;
};


static int dg_mask_rec_hold(dg_mask_t *m, const uint8_t *at);
static int dg_mask_rec_end(dg_mask_t *m, const uint8_t *p);
static int dg_mask_rec_cut(dg_mask_t *m, const uint8_t *p, int walk);
static int dg_mask_cap_end(dg_mask_t *m, const uint8_t *p);
static void dg_mask_cap_add(dg_mask_t *m, const uint8_t *a,
    const uint8_t *b);
static size_t dg_mask_rows_decode(const uint8_t *s, size_t n, uint8_t *d,
    size_t cap);


/* ---- rows: compile --------------------------------------------------- */

static void
dg_mask_rows_err(char *err, size_t errlen, const char *fmt,
    const dg_mask_row_t *row, const char *what, size_t wlen)
{
    if (err && errlen) {
        snprintf(err, errlen, fmt,
                 (int) (row->len > 200 ? 200 : row->len),
                 row->field ? row->field : "",
                 (int) (wlen > 200 ? 200 : wlen), what ? what : "");
    }
}


static int
dg_mask_rows_child(const dg_mask_rows_t *rw, unsigned node,
    const uint8_t *k, size_t len)
{
    unsigned  c;

    for (c = rw->nodes[node].child; c; c = rw->nodes[c].next) {
        if (rw->nodes[c].len == len
            && dg_mask_keyeq(rw->str + rw->nodes[c].off, k, len))
        {
            return (int) c;
        }
    }

    return 0;
}


dg_mask_rows_t *
dg_mask_rows_compile(const dg_mask_row_t *rows, size_t n, char *err,
    size_t errlen)
{
    size_t           i, j, total, nvals, depth;
    dg_mask_rows_t  *rw;
    const uint8_t   *s, *end, *k;
    const char      *v;
    dg_mask_rnode_t *nd;
    dg_mask_rval_t  *rv;
    int              c;
    unsigned         node;

    if (err && errlen) {
        err[0] = '\0';
    }

    if (n == 0 || n > DG_MASK_ROWS_MAX || rows == NULL) {
        if (err && errlen) {
            snprintf(err, errlen, "%s", n ? "more than 32 fields"
                                          : "no fields");
        }
        return NULL;
    }

    total = 0;
    nvals = 0;

    for (i = 0; i < n; i++) {
        if (rows[i].field == NULL || rows[i].len == 0
            || rows[i].nvalues == 0
            || rows[i].nvalues > DG_MASK_ROWS_VALUES
            || (rows[i].values == NULL))
        {
            dg_mask_rows_err(err, errlen, "field \"%.*s\": %.*s", &rows[i],
                             rows[i].nvalues > DG_MASK_ROWS_VALUES
                             ? "more than 4096 values" : "no values",
                             rows[i].nvalues > DG_MASK_ROWS_VALUES ? 21 : 9);
            return NULL;
        }

        total += rows[i].len;
        nvals += rows[i].nvalues;

        for (j = 0; j < rows[i].nvalues; j++) {
            total += rows[i].values[j].len;
        }
    }

    rw = calloc(1, sizeof(dg_mask_rows_t));
    if (rw == NULL) {
        goto nomem;
    }

    rw->vals = calloc(nvals, sizeof(dg_mask_rval_t));
    rw->str = malloc(total + 1);

    if (rw->vals == NULL || rw->str == NULL || total > UINT32_MAX) {
        goto nomem;
    }

    rw->nconds = n;
    rw->all = (n == 32) ? 0xffffffffu : ((1u << n) - 1);
    rw->nnodes = DG_MASK_ROWS_ROOT + 1;
    rw->nodes[DG_MASK_ROWS_ROOT].cond = -1;

    nvals = 0;

    for (i = 0; i < n; i++) {
        s = (const uint8_t *) rows[i].field;
        end = s + rows[i].len;
        node = DG_MASK_ROWS_ROOT;
        depth = 0;

        for ( ;; ) {
            for (k = s; k < end && *k != '.'; k++) { /* void */ }

            if (k == s) {
                dg_mask_rows_err(err, errlen, "field \"%.*s\": an empty "
                                 "key%.*s", &rows[i], "", 0);
                goto failed;
            }

            if ((size_t) (k - s) > DG_MASK_ROWS_KEY) {
                dg_mask_rows_err(err, errlen, "field \"%.*s\": a key longer "
                                 "than %.*s bytes", &rows[i], "128", 3);
                goto failed;
            }

            if (++depth > DG_MASK_ROWS_DEPTH) {
                dg_mask_rows_err(err, errlen, "field \"%.*s\": more than "
                                 "%.*s keys", &rows[i], "8", 1);
                goto failed;
            }

            c = dg_mask_rows_child(rw, node, s, k - s);

            if (c == 0) {
                if (rw->nnodes > DG_MASK_ROWS_NODES) {
                    dg_mask_rows_err(err, errlen, "field \"%.*s\": more "
                                     "than %.*s keys in all fields",
                                     &rows[i], "254", 3);
                    goto failed;
                }

                c = (int) rw->nnodes++;
                nd = &rw->nodes[c];
                nd->off = (uint32_t) rw->strlen;
                nd->len = (uint16_t) (k - s);
                nd->cond = -1;
                memcpy(rw->str + rw->strlen, s, k - s);
                rw->strlen += k - s;
                nd->next = rw->nodes[node].child;
                rw->nodes[node].child = (uint8_t) c;
            }

            node = (unsigned) c;

            if (k == end) {
                break;
            }

            s = k + 1;

            if (s == end) {
                dg_mask_rows_err(err, errlen, "field \"%.*s\": an empty "
                                 "key%.*s", &rows[i], "", 0);
                goto failed;
            }
        }

        if (rw->nodes[node].cond >= 0) {
            dg_mask_rows_err(err, errlen, "field \"%.*s\" is listed "
                             "twice%.*s", &rows[i], "", 0);
            goto failed;
        }

        rw->nodes[node].cond = (int16_t) i;
        rw->first[i] = nvals;
        rw->nvals[i] = rows[i].nvalues;

        for (j = 0; j < rows[i].nvalues; j++) {
            v = rows[i].values[j].selector;
            rv = &rw->vals[nvals++];

            if (v == NULL && rows[i].values[j].len) {
                goto nomem;
            }

            rv->len = (uint16_t) rows[i].values[j].len;
            rv->prefix = 0;

            if (rv->len && v[rv->len - 1] == '*') {
                rv->len--;
                rv->prefix = 1;
            }

            if (rows[i].values[j].len > DG_MASK_ROWS_VALUE
                || (rv->len && memchr(v, '*', rv->len) != NULL))
            {
                dg_mask_rows_err(err, errlen, "field \"%.*s\": value "
                                 "\"%.*s\": ", &rows[i], v,
                                 rows[i].values[j].len);
                if (err && errlen) {
                    size_t  l = strlen(err);

                    snprintf(err + l, errlen - l, "%s",
                             rows[i].values[j].len > DG_MASK_ROWS_VALUE
                             ? "longer than 256 bytes"
                             : "'*' may only end a value (a prefix)");
                }
                goto failed;
            }

            rv->off = (uint32_t) rw->strlen;
            if (rv->len) {
                memcpy(rw->str + rw->strlen, v, rv->len);
            }
            rw->strlen += rv->len;
        }
    }

    return rw;

nomem:

    if (err && errlen) {
        snprintf(err, errlen, "out of memory");
    }

failed:

    dg_mask_rows_free(rw);
    return NULL;
}


void
dg_mask_rows_free(dg_mask_rows_t *rw)
{
    if (rw == NULL) {
        return;
    }

    free(rw->vals);
    free(rw->str);
    free(rw);
}


const char *
dg_mask_rows_key(const dg_mask_rows_t *rw, size_t i, size_t *len,
    int *last)
{
    size_t                  n, j;
    const dg_mask_rnode_t  *nd, *o;

    if (rw == NULL) {
        return NULL;
    }

    /* the i-th node whose key no earlier node has */

    for (n = DG_MASK_ROWS_ROOT + 1; n < rw->nnodes; n++) {
        nd = &rw->nodes[n];

        for (j = DG_MASK_ROWS_ROOT + 1; j < n; j++) {
            o = &rw->nodes[j];
            if (o->len == nd->len
                && memcmp(rw->str + o->off, rw->str + nd->off, nd->len) == 0)
            {
                break;
            }
        }

        if (j < n) {
            continue;
        }

        if (i-- == 0) {
            /* a step (children) wherever the key is one */
            *last = 1;

            for (j = n; j < rw->nnodes; j++) {
                o = &rw->nodes[j];
                if (o->child && o->len == nd->len
                    && memcmp(rw->str + o->off, rw->str + nd->off, nd->len)
                       == 0)
                {
                    *last = 0;
                }
            }

            *len = nd->len;
            return (const char *) rw->str + nd->off;
        }
    }

    return NULL;
}


/* the key a selector ends in; 1: a key-anywhere selector (no path) */
static int
dg_mask_sel_last(const dg_mask_field_t *sel, const char **k, size_t *len)
{
    const char  *s, *end, *e;
    int          path;

    s = sel->selector;
    end = s + sel->len;
    path = 0;

    if (end - s >= 2 && s[0] == '$' && (s[1] == '.' || s[1] == '[')) {
        path = 1;
    }

    for (e = end; e > s && e[-1] != '.' && e[-1] != ']'; e--) {
        /* void */
    }

    if (e > s) {
        path = 1;
    }

    *k = e;
    *len = end - e;

    return !path;
}


size_t
dg_mask_rows_fields(const dg_mask_rows_t *rw, const dg_mask_field_t *sel,
    size_t n, uint8_t *flags, dg_mask_field_t *extra, size_t max)
{
    size_t       i, j, klen, slen, nx;
    int          last, anywhere, named;
    const char  *k, *sk;

    for (i = 0; i < n; i++) {
        flags[i] = 0;
    }

    nx = 0;

    for (j = 0; (k = dg_mask_rows_key(rw, j, &klen, &last)) != NULL; j++) {
        named = 0;

        for (i = 0; i < n; i++) {
            anywhere = dg_mask_sel_last(&sel[i], &sk, &slen);

            if (slen == klen && memcmp(sk, k, klen) == 0) {
                flags[i] = DG_MASK_ROW_KEY;
                named |= anywhere;
            }
        }

        if (!named) {
            if (nx < max) {
                extra[nx].selector = k;
                extra[nx].len = klen;
            }
            nx++;
        }
    }

    return nx;
}


int
dg_mask_rows_match(const dg_mask_rows_t *rw, size_t i, const uint8_t *v,
    size_t len)
{
    size_t                 j;
    const dg_mask_rval_t  *rv;

    if (rw == NULL || i >= rw->nconds) {
        return 0;
    }

    for (j = 0; j < rw->nvals[i]; j++) {
        rv = &rw->vals[rw->first[i] + j];

        if (rv->prefix ? (len >= rv->len
                          && dg_mask_keyeq(v, rw->str + rv->off, rv->len))
                       : (len == rv->len
                          && dg_mask_keyeq(v, rw->str + rv->off, rv->len)))
        {
            return 1;
        }
    }

    return 0;
}


/* ---- a stream -------------------------------------------------------- */

size_t
dg_mask_rec_size(const dg_mask_conf_t *conf, size_t max_value)
{
    return conf->rows ? ((max_value + 15) & ~(size_t) 15) : 0;
}


void
dg_mask_rec_setup(dg_mask_t *m, const dg_mask_conf_t *conf)
{
    const dg_mask_rules_t  *r;

    r = conf->rules;

    m->rows = conf->rows;
    m->rec_mode = (uint8_t) r->rec_mode;
    m->rec_top = r->rec_top;
    m->rec_one = (conf->rows != NULL || conf->one) ? 1 : 0;
    m->shape_top = (m->rec_one && r->rec_mode == DG_MASK_REC_PATH)
                   ? r->rec_top : 0;
    m->allow = conf->one ? 0 : UINT64_MAX;
}


void
dg_mask_allow(dg_mask_t *m, uint64_t n, int last)
{
    if (m == NULL) {
        return;
    }

    if (n == UINT64_MAX || m->allow > UINT64_MAX - 1 - n) {
        m->allow = UINT64_MAX;

    } else {
        m->allow += n;
    }

    m->allow_last = last ? 1 : 0;
}


uint64_t
dg_mask_allowance(const dg_mask_t *m)
{
    return m ? m->allow : 0;
}


size_t
dg_mask_taken(const dg_mask_t *m)
{
    return m ? m->taken : 0;
}


/* a container was pushed at depth <= rec_top (not skipped or masked) */
void
dg_mask_rec_push(dg_mask_t *m, dg_mask_frame_t *fr)
{
    const dg_mask_rules_t  *r;
    unsigned                d;

    if (fr->type != '[') {
        return;
    }

    r = m->rules;
    d = m->depth;

    switch (m->rec_mode) {

    case DG_MASK_REC_PATH:
        if (d == r->rec_top && fr->node == r->rec_path[d - 1]) {
            fr->flags |= DG_FR_RECORDS | (m->rec_one ? DG_FR_RONE : 0);
        }
        return;

    case DG_MASK_REC_AUTO:
        if (d == 1) {
            fr->flags |= DG_FR_RECORDS | (m->rec_one ? DG_FR_RONE : 0);
            m->rec_found = 1;

        } else if (d == 2 && !m->rec_found && m->frames[0].type == '{') {
            fr->flags |= DG_FR_RCAND;
        }
        return;
    }
}


/*
 * Records one by one on a path: a value at depth < shape_top on the
 * records path must be an object (a step) or, at its end, an array:
 * anything else would leave records unseen.
 */
int
dg_mask_rec_shape(dg_mask_t *m, uint8_t c)
{
    const dg_mask_rules_t  *r;
    unsigned                d;

    r = m->rules;
    d = m->depth;

    if (m->vnode != r->rec_path[d]) {
        return 0;
    }

    return c == ((d + 1 == r->rec_top) ? '[' : '{') ? 0 : DG_MASK_E_RECORDS;
}


/* the document's first byte c at p */
int
dg_mask_rec_root(dg_mask_t *m, uint8_t c, const uint8_t *p)
{
    m->root = c;

    if (m->rec_mode != DG_MASK_REC_ROOT) {
        return 0;
    }

    if (!m->rec_one) {
        m->stats.records++;
        return 0;
    }

    if (m->allow == 0) {
        if (!m->allow_last) {
            m->pause = p;
            return DG_MASK_PAUSED;
        }

        /* the one record goes, unread */
        m->trunc = 1;
        m->stats.cut = 1;
        m->stats.records_cut++;
        m->skip = 1;
        m->skip_depth = 0;

        return dg_mask_flush_os(m, p);
    }

    if (m->rows == NULL) {
        if (m->allow != UINT64_MAX) {
            m->allow--;
        }
        m->stats.records++;
        return 0;
    }

    m->rec_depth = 0;
    m->rec_emitted = 1;
    m->rseen = 0;
    m->rfail = 0;
    m->vrstep = (c == '{') ? DG_MASK_ROWS_ROOT : 0;

    if (dg_mask_rec_hold(m, p) != 0) {
        return DG_MASK_E_EMIT;
    }

    m->rec_vstart = 0;

    return 0;
}


/* the comma at p before an element of a DG_FR_RONE array (not in
 * allow-list mode, which holds the comma itself) */
int
dg_mask_rec_comma(dg_mask_t *m, const uint8_t *p)
{
    dg_mask_frame_t  *fr;

    fr = &m->frames[m->depth - 1];

    if (!m->trunc && m->allow == 0) {
        if (!m->allow_last) {
            m->pause = p;
            return DG_MASK_PAUSED;
        }

        m->trunc = 1;
    }

    if (m->trunc) {
        /* the comma goes with the records cut after it */
        return dg_mask_flush_os(m, p);
    }

    if (m->rows == NULL) {
        return 0;
    }

    m->rec_emitted = (fr->flags & DG_FR_EMITTED) ? 1 : 0;

    return dg_mask_rec_hold(m, p);
}


/*
 * An element c at p of the array fr (DG_FR_RECORDS, DG_FR_RCAND or
 * DG_FR_RONE) starts.  walk: an array walked element by element in
 * allow-list mode: only containers come here, their prefix (the comma)
 * held from m->hs and not yet written.
 */
int
dg_mask_rec_elem(dg_mask_t *m, dg_mask_frame_t *fr, uint8_t c,
    const uint8_t *p, int walk)
{
    int  rc;

    if (fr->flags & DG_FR_RCAND) {
        /* auto: the first array of objects under a key of the top-level
         * object holds the records */
        fr->flags &= ~DG_FR_RCAND;

        if (c != '{' || m->rec_found) {
            return 0;
        }

        m->rec_found = 1;
        fr->flags |= DG_FR_RECORDS | (m->rec_one ? DG_FR_RONE : 0);
    }

    if (!(fr->flags & DG_FR_RONE)) {
        m->stats.records++;
        return 0;
    }

    if (!m->rec_open && !m->trunc) {
        /* no comma before it (the first element, or allow-list mode) */
        if (m->allow == 0) {
            if (!m->allow_last) {
                m->pause = p;
                return DG_MASK_PAUSED;
            }

            m->trunc = 1;

        } else if (m->rows) {
            m->rec_emitted = (fr->flags & DG_FR_EMITTED) ? 1 : 0;

            /* allow-list mode: from the held prefix on */
            rc = dg_mask_rec_hold(m, walk ? m->hs : p);
            if (rc != 0) {
                return rc;
            }
        }
    }

    if (m->trunc) {
        return dg_mask_rec_cut(m, p, walk);
    }

    if (m->rows == NULL) {
        /* decided now: sent */
        if (m->allow != UINT64_MAX) {
            m->allow--;
        }
        m->stats.records++;
        return 0;
    }

    m->rec_depth = m->depth;
    m->rseen = 0;
    m->rfail = 0;
    m->vrstep = (c == '{') ? DG_MASK_ROWS_ROOT : 0;

    if (walk) {
        /* the value starts after the prefix, once it is written
         * (dg_mask_rec_value()) */
        return 0;
    }

    rc = dg_mask_flush_os(m, p);
    m->os = p;
    m->rec_vstart = m->out.len;

    return rc;
}


/* allow-list mode: the held prefix of the record at p is written */
int
dg_mask_rec_value(dg_mask_t *m, const uint8_t *p)
{
    int  rc;

    if (!m->rec_open || m->rec_depth != m->depth) {
        return 0;
    }

    rc = dg_mask_flush_os(m, p);
    m->os = p;
    m->rec_vstart = m->out.len;

    return rc;
}


/* no allowance for the element at p: it goes unread, with every
 * element after it */
static int
dg_mask_rec_cut(dg_mask_t *m, const uint8_t *p, int walk)
{
    int  rc;

    m->stats.records_cut++;
    m->stats.cut = 1;

    if (walk) {
        /* its held prefix goes too (dg_mask_member_drop() does the
         * rest: the caller sees skip) */
        rc = dg_mask_flush_os(m, m->hs);
        m->hold = 0;
        m->hlen = 0;

    } else {
        rc = dg_mask_flush_os(m, p);
    }

    m->skip = 1;
    m->skip_depth = m->depth;

    return rc;
}


/*
 * "},{" between two records of a DG_FR_RONE array walked normally, q
 * after the '}' (the member loop's way, as dg_mask_next_record()): the
 * record ends, the comma and the next one start, with the effects of the
 * state machine's steps.  1: taken; 0: left to the state machine (an
 * allowance that may run out, a cut, allow-list mode); or an error.
 */
int
dg_mask_rec_next(dg_mask_t *m, const uint8_t *q)
{
    dg_mask_frame_t  *fr;
    int               rc;

    if (m->depth < 2) {
        return 0;
    }

    fr = &m->frames[m->depth - 2];

    if (fr->type != '[' || !(fr->flags & DG_FR_RONE)
        || (fr->flags & DG_FR_RCAND) || m->skip || m->mask || m->hold
        || m->trunc || m->cap_on || (m->allow != UINT64_MAX && m->allow < 2)
        || ((m->flags & DG_MASK_UNLISTED_DROP)
            && !(fr->flags & DG_FR_LISTED)))
    {
        return 0;
    }

    m->depth--;
    dg_mask_value_done(m, q);

    if (m->rowsx && (rc = dg_mask_rec_done(m, q)) != 0) {
        return rc;
    }

    if ((rc = dg_mask_rec_comma(m, q)) != 0) {
        return rc;
    }

    dg_mask_elem_node(m, fr);

    if ((rc = dg_mask_rec_elem(m, fr, '{', q + 1, 0)) != 0) {
        return rc;
    }

    dg_mask_push(m, '{');
    m->esc = 0;

    return 1;
}


/* the record's bytes from at on are held */
static int
dg_mask_rec_hold(dg_mask_t *m, const uint8_t *at)
{
    int  rc;

    rc = dg_mask_flush_os(m, at);
    m->os = at;

    m->rsave = m->out;
    m->out.buf = m->rbuf;
    m->out.len = 0;
    m->out.cap = m->max_value;
    m->out.emit = NULL;
    m->out.lend = NULL;
    m->out.bytes_out = NULL;
    m->out.full = DG_MASK_E_RECORD;

    m->rec_open = 1;
    m->rowsx = 1;

    return rc;
}


/* a value ended at p (before p) while m->rowsx */
int
dg_mask_rec_done(dg_mask_t *m, const uint8_t *p)
{
    int  rc;

    if (m->cap_on && m->depth == m->cap_depth) {
        rc = dg_mask_cap_end(m, p);
        if (rc != 0) {
            return rc;
        }
    }

    if (m->rec_open && m->depth == m->rec_depth) {
        return dg_mask_rec_end(m, p);
    }

    return 0;
}


/* the held record ends before p: kept or dropped */
static int
dg_mask_rec_end(dg_mask_t *m, const uint8_t *p)
{
    size_t            n, strip;
    uint8_t          *held;
    dg_mask_frame_t  *fr;
    int               rc, keep;

    rc = dg_mask_flush_os(m, p);

    held = m->out.buf;
    n = m->out.len;

    m->out = m->rsave;
    m->rec_open = 0;
    m->rowsx = m->cap_on;

    fr = m->rec_depth ? &m->frames[m->rec_depth - 1] : NULL;

    keep = !m->trunc && m->rows != NULL && m->rseen == m->rows->all
           && m->rfail == 0;

    if (rc == 0 && keep) {
        strip = m->rec_emitted ? 0 : m->rec_vstart;
        rc = dg_mask_out_put(&m->out, held + strip, n - strip);

        if (fr) {
            fr->flags |= DG_FR_EMITTED;
        }

        m->stats.records++;

        if (m->allow != UINT64_MAX) {
            m->allow--;
        }

    } else {
        if (m->trunc) {
            m->stats.records_cut++;

        } else {
            m->stats.rows_dropped++;

            if (fr == NULL) {
                m->stats.out_of_scope = 1;
            }
        }

        if (fr && !m->rec_emitted) {
            fr->flags &= ~DG_FR_EMITTED;
        }
    }

    m->os = p;

    return rc;
}


/* ---- a member on a rows path ----------------------------------------- */

/*
 * The member being decided (its key in the hold) selects a field whose
 * action has DG_MASK_ROW_KEY, its value's first byte c at p.  Inside a
 * record, at a place on a rows path: a scalar that ends a path is
 * captured (dg_mask_cap_end() compares it); null, an object or an array
 * there fails its condition; an object on the way is walked further.
 */
int
dg_mask_rows_member(dg_mask_t *m, uint8_t c, const uint8_t *p)
{
    const dg_mask_rows_t  *rw;
    const dg_mask_frame_t *fr;
    const uint8_t         *k;
    size_t                 klen;
    int                    node;
    int16_t                ci;
    uint8_t                key[DG_MASK_ROWS_KEY + 1];

    rw = m->rows;
    fr = &m->frames[m->depth - 1];

    if (rw == NULL || fr->rstep == 0 || !m->rec_open) {
        return 0;
    }

    k = (m->hlen ? m->hbuf : m->hs) + m->key_off;
    klen = m->key_end - m->key_off;

    if (m->kesc) {
        if (klen > 12 * (DG_MASK_ROWS_KEY + 1)) {
            return 0;
        }
        klen = dg_mask_rows_decode(k, klen, key, sizeof(key));
        k = key;
    }

    if (klen > DG_MASK_ROWS_KEY) {
        return 0;
    }

    node = dg_mask_rows_child(rw, fr->rstep, k, klen);
    if (node == 0) {
        return 0;
    }

    ci = rw->nodes[node].cond;

    if (ci >= 0) {
        if (c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 't'
            || c == 'f')
        {
            m->cap_on = 1;
            m->cap_depth = m->depth;
            m->cap_ci = (uint8_t) ci;
            m->cap_from = p;
            m->craw_len = 0;
            m->craw_over = 0;
            m->rowsx = 1;

        } else {
            /* null, an object or an array: no value to match */
            m->rseen |= 1u << ci;
            m->rfail |= 1u << ci;
        }
    }

    if (c == '{' && rw->nodes[node].child) {
        m->vrstep = (uint8_t) node;
    }

    return 0;
}


/*
 * The member loop's way (dg_mask_members.c): a member whose key k (plain,
 * klen bytes) is on a rows path, its value a plain scalar [q, v) in the
 * span (a string without escapes, a number, a literal), in the object
 * fr: the same as dg_mask_rows_member() and the capture of the value.
 */
void
dg_mask_rows_take(dg_mask_t *m, const dg_mask_frame_t *fr,
    const uint8_t *k, size_t klen, const uint8_t *q, const uint8_t *v)
{
    int       node;
    int16_t   ci;
    uint32_t  bit;

    if (!m->rec_open || fr->rstep == 0 || klen > DG_MASK_ROWS_KEY) {
        return;
    }

    node = dg_mask_rows_child(m->rows, fr->rstep, k, klen);
    if (node == 0 || (ci = m->rows->nodes[node].cond) < 0) {
        return;
    }

    bit = 1u << ci;
    m->rseen |= bit;

    if (*q == '"') {
        q++;
        v--;

    } else if (*q == 'n') {
        /* null: no value to match */
        m->rfail |= bit;
        return;
    }

    if (!dg_mask_rows_match(m->rows, ci, q, v - q)) {
        m->rfail |= bit;
    }
}


/* a captured value's bytes [a, b) */
static void
dg_mask_cap_add(dg_mask_t *m, const uint8_t *a, const uint8_t *b)
{
    size_t  n, room;

    n = b - a;
    room = DG_MASK_ROWS_RAW - m->craw_len;

    if (n > room) {
        n = room;
        m->craw_over = 1;
    }

    memcpy(m->craw + m->craw_len, a, n);
    m->craw_len += (uint16_t) n;
}


/* the captured value ended before p */
static int
dg_mask_cap_end(dg_mask_t *m, const uint8_t *p)
{
    size_t    len;
    uint32_t  bit;
    uint8_t   v[DG_MASK_ROWS_VALUE + 1];

    dg_mask_cap_add(m, m->cap_from, p);
    m->cap_on = 0;
    m->rowsx = m->rec_open;

    bit = 1u << m->cap_ci;
    m->rseen |= bit;

    if (m->craw_len && m->craw[0] == '"') {
        /* the contents, decoded, up to the closing quote; a value longer
         * than any compared reads as DG_MASK_ROWS_VALUE + 1 bytes */
        len = m->craw_len - 1;
        if (!m->craw_over && len) {
            len--;
        }
        len = dg_mask_rows_decode(m->craw + 1, len, v, sizeof(v));
        if (m->craw_over && len < sizeof(v)) {
            len = sizeof(v);
        }

        if (!dg_mask_rows_match(m->rows, m->cap_ci, v, len)) {
            m->rfail |= bit;
        }

        return 0;
    }

    /* a number or true/false: its text as written */
    len = m->craw_over ? sizeof(v) : m->craw_len;
    if (len > sizeof(v)) {
        len = sizeof(v);
    }

    if (!dg_mask_rows_match(m->rows, m->cap_ci, m->craw, len)) {
        m->rfail |= bit;
    }

    return 0;
}


static int
dg_mask_rows_hex(uint8_t c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}


/*
 * JSON string contents s (n bytes, valid escapes, perhaps cut short)
 * decoded into d: at most cap bytes (stopping there), an escape cut by
 * the end left out, an unpaired surrogate as U+FFFD.  Returns the bytes
 * written.
 */
static size_t
dg_mask_rows_decode(const uint8_t *s, size_t n, uint8_t *d, size_t cap)
{
    const uint8_t  *end;
    uint32_t        c, lo;
    size_t          o, k;
    int             i;
    uint8_t         u[4];

    end = s + n;
    o = 0;

    while (s < end && o < cap) {
        if (*s != '\\') {
            d[o++] = *s++;
            continue;
        }

        if (end - s < 2) {
            break;
        }

        switch (s[1]) {
        case 'b': c = '\b'; s += 2; break;
        case 'f': c = '\f'; s += 2; break;
        case 'n': c = '\n'; s += 2; break;
        case 'r': c = '\r'; s += 2; break;
        case 't': c = '\t'; s += 2; break;
        case 'u':
            if (end - s < 6) {
                return o;
            }
            c = 0;
            for (i = 2; i < 6; i++) {
                c = (c << 4) | (uint32_t) dg_mask_rows_hex(s[i]);
            }
            s += 6;

            if (c >= 0xd800 && c <= 0xdbff && end - s >= 6 && s[0] == '\\'
                && s[1] == 'u')
            {
                lo = 0;
                for (i = 2; i < 6; i++) {
                    lo = (lo << 4) | (uint32_t) dg_mask_rows_hex(s[i]);
                }
                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                    s += 6;
                }
            }

            if (c >= 0xd800 && c <= 0xdfff) {
                c = 0xfffd;
            }
            break;
        default:
            c = s[1];
            s += 2;
        }

        if (c < 0x80) {
            u[0] = (uint8_t) c;
            k = 1;
        } else if (c < 0x800) {
            u[0] = (uint8_t) (0xc0 | (c >> 6));
            u[1] = (uint8_t) (0x80 | (c & 0x3f));
            k = 2;
        } else if (c < 0x10000) {
            u[0] = (uint8_t) (0xe0 | (c >> 12));
            u[1] = (uint8_t) (0x80 | ((c >> 6) & 0x3f));
            u[2] = (uint8_t) (0x80 | (c & 0x3f));
            k = 3;
        } else {
            u[0] = (uint8_t) (0xf0 | (c >> 18));
            u[1] = (uint8_t) (0x80 | ((c >> 12) & 0x3f));
            u[2] = (uint8_t) (0x80 | ((c >> 6) & 0x3f));
            u[3] = (uint8_t) (0x80 | (c & 0x3f));
            k = 4;
        }

        if (k > cap - o) {
            k = cap - o;
        }

        memcpy(d + o, u, k);
        o += k;
    }

    return o;
}


/* the span ends at end: a captured value's bytes are kept */
int
dg_mask_rec_span_end(dg_mask_t *m, const uint8_t *end)
{
    if (m->cap_on) {
        dg_mask_cap_add(m, m->cap_from, end);
    }

    return 0;
}
