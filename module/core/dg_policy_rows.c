/*
 * datagate core: least data in the policy.  A dataset names where the
 * records of its answers are ("records:"); the masker counts them in
 * every answer it reads (dg_mask.h has the forms).  A grant narrows the
 * records it covers ("rows:") and the query parameters its requests may
 * carry ("params:"); a grant, or a dataset for each consumer, caps the
 * records of an answer ("max_records:") and of a period
 * ("record_quota:").
 */

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_policy_int.h"
#include "dg_trace.h"


/* records: "$", "[]" or keys ending in "[]", checked by the masker's own
 * compiler so that the policy accepts what the masker reads */
int
dg_load_records(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, dg_dataset_t *d)
{
    int                  rc;
    char                 merr[256];
    dg_mask_rules_t     *r;
    const dg_ynode_t    *v;
    dg_mask_rules_in_t   in;

    v = dg_ymap_get(it, "records");

    if (v != NULL && v->type == DG_Y_SEQ && v->n == 0) {
        /* records: [] is YAML for an empty list: the top-level array */
        d->records.data = "[]";
        d->records.len = 2;
        return 0;
    }

    rc = dg_get_text(L, file, it, path, "records", 0, DG_TEXT_MAX,
                     &d->records, &v);
    if (rc < 0) {
        return -1;
    }

    if (rc == 0) {
        d->records.data = "";
        d->records.len = 0;
        return 0;
    }

    memset(&in, 0, sizeof(in));
    in.records = d->records.data;
    in.records_len = d->records.len;

    merr[0] = '\0';
    r = dg_mask_rules_build(&in, merr, sizeof(merr));

    if (r == NULL) {
        return dg_err(L, file, v->line, path, "records", "%s",
                      merr[0] ? merr : "bad records path");
    }

    dg_mask_rules_free(r);

    return 0;
}


/*
 * name: [value, ...] (or one value) for each name of the mapping under
 * key: a grant's rows or params.  Values are at most DG_MASK_ROWS_VALUE
 * bytes, a '*' only at their end (a prefix); a name is listed once.
 */
static int
dg_load_scope(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, const char *key, dg_scope_t **out, size_t *nout)
{
    size_t             n, j;
    dg_scope_t        *sc;
    const dg_ynode_t  *v, *k, *x, *seq;
    char               kpath[DG_ID_MAX + 96];

    v = dg_ymap_get(it, key);
    *out = NULL;
    *nout = 0;

    if (v == NULL) {
        return 0;
    }

    if (v->type != DG_Y_MAP || v->n == 0) {
        return dg_err(L, file, v->line, path, key,
                      "expected a mapping of %s to values, such as "
                      "{region_code: [\"4501*\", \"450203\"]}, got %s",
                      strcmp(key, "rows") == 0 ? "record fields"
                                               : "query parameters",
                      v->type == DG_Y_MAP ? "an empty one"
                                          : dg_ytype_name(v));
    }

    n = v->n / 2;

    if (n > DG_MASK_ROWS_MAX) {
        return dg_err(L, file, v->line, path, key, "more than %d names",
                      DG_MASK_ROWS_MAX);
    }

    sc = dg_arena_array(L->a, n, sizeof(dg_scope_t));
    if (sc == NULL) {
        return dg_err(L, file, v->line, path, key, "out of memory");
    }

    for (j = 0, k = v->child; k && k->next; k = k->next->next, j++) {
        snprintf(kpath, sizeof(kpath), "%s.%s", path, key);

        if (k->len == 0 || dg_text_ok(L, file, k, kpath, NULL, DG_ID_MAX)
                           != 0)
        {
            return dg_err(L, file, k->line, kpath, NULL, "an empty name");
        }

        snprintf(kpath, sizeof(kpath), "%s.%s.%.*s", path, key, DG_ID_MAX,
                 k->str);

        if (dg_str_set(L, k, &sc[j].name) != 0) {
            return dg_err(L, file, k->line, kpath, NULL, "out of memory");
        }

        x = k->next;

        if (x->type == DG_Y_SCALAR && !dg_y_null(x)) {
            /* one value */
            sc[j].values = dg_arena_array(L->a, 1, sizeof(dg_str_t));
            if (sc[j].values == NULL || dg_str_set(L, x, &sc[j].values[0])
                                        != 0)
            {
                return dg_err(L, file, x->line, kpath, NULL,
                              "out of memory");
            }
            sc[j].nvalues = 1;
            seq = NULL;

        } else if (x->type == DG_Y_SEQ && x->n > 0) {
            for (seq = x->child; seq; seq = seq->next) {
                if (dg_expect(L, file, seq, kpath, NULL, DG_Y_SCALAR) != 0) {
                    return -1;
                }
            }

            if (x->n > DG_MASK_ROWS_VALUES) {
                return dg_err(L, file, x->line, kpath, NULL,
                              "more than %d values", DG_MASK_ROWS_VALUES);
            }

            if (dg_list_strs(L, file, x, kpath, NULL, &sc[j].values,
                             &sc[j].nvalues)
                != 0)
            {
                return -1;
            }

        } else {
            return dg_err(L, file, x->line, kpath, NULL,
                          "expected a value or a list of values, such as "
                          "[\"4501*\", \"450203\"], got %s",
                          dg_y_null(x) ? "nothing" : dg_ytype_name(x));
        }

        for (x = v->child; x != k; x = x->next->next) {
            if (x->len == k->len && memcmp(x->str, k->str, k->len) == 0) {
                return dg_err(L, file, k->line, kpath, NULL,
                              "'%.64s' is listed twice", k->str);
            }
        }
    }

    *out = sc;
    *nout = n;

    return 0;
}


/* the values of sc as the masker reads them */
static dg_mask_field_t *
dg_scope_values(dg_load_t *L, const dg_scope_t *sc)
{
    size_t            i;
    dg_mask_field_t  *f;

    f = dg_arena_array(&L->tmp, sc->nvalues, sizeof(dg_mask_field_t));
    if (f == NULL) {
        return NULL;
    }

    for (i = 0; i < sc->nvalues; i++) {
        f[i].selector = sc->values[i].data;
        f[i].len = sc->values[i].len;
    }

    return f;
}


/* rows compiled for the masker, or NULL (err written) */
static dg_mask_rows_t *
dg_rows_compile(dg_load_t *L, const dg_scope_t *sc, size_t n, char *err,
    size_t errlen)
{
    size_t          i;
    dg_mask_row_t  *rw;

    rw = dg_arena_array(&L->tmp, n, sizeof(dg_mask_row_t));
    if (rw == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    for (i = 0; i < n; i++) {
        rw[i].field = sc[i].name.data;
        rw[i].len = sc[i].name.len;
        rw[i].nvalues = sc[i].nvalues;
        rw[i].values = dg_scope_values(L, &sc[i]);

        if (rw[i].values == NULL) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
    }

    return dg_mask_rows_compile(rw, n, err, errlen);
}


/* unreserved characters of RFC 3986 pass as they are */
static int
dg_scope_plain(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
           || c == '~';
}


/* s percent-encoded at p (3 * len bytes at most); a final '*' of a
 * value (keep_star) stays */
static char *
dg_scope_enc(char *p, const dg_str_t *s, int keep_star)
{
    static const char  hex[] = "0123456789ABCDEF";
    size_t             i, n;
    unsigned char      c;

    n = s->len;

    if (keep_star && n && s->data[n - 1] == '*') {
        n--;
    }

    for (i = 0; i < n; i++) {
        c = (unsigned char) s->data[i];

        if (dg_scope_plain(c)) {
            *p++ = (char) c;

        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xf];
        }
    }

    if (n < s->len) {
        *p++ = '*';
    }

    return p;
}


static int
dg_scope_cmp(const void *a, const void *b)
{
    const dg_str_t  *x = a, *y = b;
    size_t           n;
    int              rc;

    n = x->len < y->len ? x->len : y->len;
    rc = memcmp(x->data, y->data, n);

    return rc ? rc : (x->len < y->len ? -1 : x->len > y->len);
}


/*
 * The canonical form of rows (Datagate-Scope): "FIELD=V,V;FIELD=V", each
 * name and value percent-encoded (all but RFC 3986's unreserved
 * characters, a value's final '*' kept), the fields in byte order of
 * their encoded names, a field's values in byte order, each once.
 */
static int
dg_scope_canon(dg_load_t *L, const dg_scope_t *sc, size_t n, dg_str_t *out)
{
    size_t     i, j, len, k;
    char      *buf, *p;
    dg_str_t  *f, *v;

    len = 0;

    for (i = 0; i < n; i++) {
        len += 3 * sc[i].name.len + 2;

        for (j = 0; j < sc[i].nvalues; j++) {
            len += 3 * sc[i].values[j].len + 1;
        }
    }

    buf = dg_arena_alloc(L->a, len + 1);
    f = dg_arena_array(&L->tmp, n, sizeof(dg_str_t));
    if (buf == NULL || f == NULL) {
        return -1;
    }

    /* each field "NAME=V,V" into the arena, then the fields sorted */
    p = buf;

    for (i = 0; i < n; i++) {
        v = dg_arena_array(&L->tmp, sc[i].nvalues, sizeof(dg_str_t));
        f[i].data = dg_arena_alloc(&L->tmp, 3 * sc[i].name.len + 1
                                            + len);
        if (v == NULL || f[i].data == NULL) {
            return -1;
        }

        for (j = 0; j < sc[i].nvalues; j++) {
            v[j].data = dg_arena_alloc(&L->tmp,
                                       3 * sc[i].values[j].len + 1);
            if (v[j].data == NULL) {
                return -1;
            }
            v[j].len = dg_scope_enc((char *) v[j].data, &sc[i].values[j], 1)
                       - v[j].data;
        }

        qsort(v, sc[i].nvalues, sizeof(dg_str_t), dg_scope_cmp);

        p = dg_scope_enc((char *) f[i].data, &sc[i].name, 0);
        *p++ = '=';

        for (j = 0, k = 0; j < sc[i].nvalues; j++) {
            if (j && dg_scope_cmp(&v[j], &v[j - 1]) == 0) {
                continue;
            }
            if (k++) {
                *p++ = ',';
            }
            memcpy(p, v[j].data, v[j].len);
            p += v[j].len;
        }

        f[i].len = p - f[i].data;
    }

    qsort(f, n, sizeof(dg_str_t), dg_scope_cmp);

    p = buf;

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ';';
        }
        memcpy(p, f[i].data, f[i].len);
        p += f[i].len;
    }

    *p = '\0';
    out->data = buf;
    out->len = p - buf;

    return 0;
}


/* a grant's rows: read, checked against its dataset, put in canonical
 * form */
int
dg_load_grant_rows(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, dg_grant_t *g)
{
    char               merr[256];
    dg_mask_rows_t    *rw;
    const dg_ynode_t  *v;

    if (dg_load_scope(L, file, it, path, "rows", &g->rows, &g->nrows) != 0)
    {
        return -1;
    }

    g->scope.data = "";
    g->scope.len = 0;

    if (g->nrows == 0) {
        return 0;
    }

    v = dg_ymap_get(it, "rows");

    if (g->dataset->records.len == 0) {
        return dg_err(L, file, v->line, path, "rows",
                      "dataset '%s' does not name where its records are "
                      "(records: data[], or records: $ for an answer that "
                      "is one record): rows removes records, so it must "
                      "know them", g->dataset->id.data);
    }

    merr[0] = '\0';
    rw = dg_rows_compile(L, g->rows, g->nrows, merr, sizeof(merr));

    if (rw == NULL) {
        return dg_err(L, file, v->line, path, "rows", "%s",
                      merr[0] ? merr : "out of memory");
    }

    dg_mask_rows_free(rw);

    if (dg_scope_canon(L, g->rows, g->nrows, &g->scope) != 0) {
        return dg_err(L, file, v->line, path, "rows", "out of memory");
    }

    return 0;
}


/*
 * The plan of a grant with rows: its rules need a field for every key of
 * the rows paths (n selectors in mf, room for DG_MASK_ROWS_NODES more),
 * flagged in the actions (act, filled for the n first).  Returns the new
 * number of fields, or -1 (error written) when a key on the way to a
 * rows field is masked or dropped (its members would not be read).
 */
int
dg_plan_rows(dg_load_t *L, dg_grant_t *g, dg_mask_field_t *mf, size_t n,
    dg_mask_spec_t *act, const char *path)
{
    char               merr[256];
    size_t             i, j, nx, klen;
    uint8_t           *flags;
    dg_mask_rows_t    *rw;
    dg_mask_field_t   *extra;
    const char        *k;
    int                last;

    merr[0] = '\0';
    rw = dg_rows_compile(L, g->rows, g->nrows, merr, sizeof(merr));

    if (rw == NULL) {
        return dg_err(L, g->src_file.data, g->src_line, path, "rows", "%s",
                      merr[0] ? merr : "out of memory");
    }

    flags = dg_arena_alloc(&L->tmp, n ? n : 1);
    extra = dg_arena_array(&L->tmp, DG_MASK_ROWS_NODES,
                           sizeof(dg_mask_field_t));

    if (flags == NULL || extra == NULL || dg_own_rows(L, rw) != 0) {
        dg_mask_rows_free(rw);
        return dg_err(L, g->src_file.data, g->src_line, path, "rows",
                      "out of memory");
    }

    nx = dg_mask_rows_fields(rw, mf, n, flags, extra, DG_MASK_ROWS_NODES);

    for (i = 0; i < n; i++) {
        act[i].row = flags[i];

        if (!flags[i] || act[i].method == DG_MASK_CLEAR) {
            continue;
        }

        /* a step of a path masked or dropped: its members are not read */
        for (j = 0; (k = dg_mask_rows_key(rw, j, &klen, &last)) != NULL;
             j++)
        {
            if (!last && klen <= mf[i].len
                && memcmp(mf[i].selector + mf[i].len - klen, k, klen) == 0)
            {
                return dg_err(L, g->src_file.data, g->src_line, path,
                              "rows", "'%.*s' is on the way to a rows field, "
                              "but this grant %s it: its members could not "
                              "be read", (int) klen, k,
                              act[i].method == DG_MASK_DROP ? "drops"
                                                            : "masks");
            }
        }
    }

    for (i = 0; i < nx; i++) {
        mf[n + i] = extra[i];
        act[n + i].method = DG_MASK_CLEAR;
        act[n + i].row = DG_MASK_ROW_KEY | DG_MASK_ROW_ONLY;
    }

    g->plan.rows = rw;

    return (int) (n + nx);
}


/* a grant's params: names as a provider reads them, values that the
 * check could ever accept */
int
dg_load_grant_params(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, dg_grant_t *g)
{
    size_t             i, j;
    const char        *c;
    const dg_ynode_t  *v;
    const dg_str_t    *x;

    if (dg_load_scope(L, file, it, path, "params", &g->params, &g->nparams)
        != 0)
    {
        return -1;
    }

    v = dg_ymap_get(it, "params");

    for (i = 0; i < g->nparams; i++) {
        for (c = g->params[i].name.data; *c; c++) {
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
                  || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'
                  || *c == '.'))
            {
                return dg_err(L, file, v->line, path, "params",
                              "parameter name '%.64s': letters, digits, "
                              "'_', '-' and '.' only",
                              g->params[i].name.data);
            }
        }

        for (j = 0; j < g->params[i].nvalues; j++) {
            x = &g->params[i].values[j];

            if (x->len > DG_MASK_ROWS_VALUE
                || (x->len > 1 && memchr(x->data, '*', x->len - 1) != NULL))
            {
                return dg_err(L, file, v->line, path, "params",
                              "parameter '%.64s': value '%.64s': %s",
                              g->params[i].name.data, x->data,
                              x->len > DG_MASK_ROWS_VALUE
                              ? "longer than 256 bytes"
                              : "'*' may only end a value (a prefix)");
            }

            if (!dg_param_value_ok(x->data, x->len)) {
                return dg_err(L, file, v->line, path, "params",
                              "parameter '%.64s': value '%.64s' could never "
                              "match: a request's value may not hold "
                              "spaces, controls or any of , ; & = # %% * + "
                              "| \\ \" ' < > [ ] { } ` ^",
                              g->params[i].name.data, x->data);
            }
        }
    }

    return 0;
}


/* max_records and record_quota of a dataset or a grant */
int
dg_load_rlimit(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, dg_rlimit_t *rl)
{
    int                rc;
    unsigned           n;
    dg_limit_t         q;
    const dg_ynode_t  *v;

    memset(rl, 0, sizeof(dg_rlimit_t));
    rl->quota_str.data = "";

    v = dg_ymap_get(it, "max_records");
    if (v != NULL) {
        if (dg_uint_of(L, file, v, path, "max_records", 1,
                       (unsigned) DG_RECORDS_MAX, &n) != 0)
        {
            return -1;
        }
        rl->max = n;
    }

    rc = dg_get_text(L, file, it, path, "record_quota", 0, 64,
                     &rl->quota_str, &v);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        memset(&q, 0, sizeof(q));

        if (dg_limit_parse_quota(rl->quota_str.data, rl->quota_str.len, &q)
            != 0 || q.quota == 0)
        {
            return dg_err(L, file, v->line, path, "record_quota",
                          "bad record quota '%s': expected e.g. "
                          "100000/day, 5000/hour or 100/minute (records)",
                          rl->quota_str.data);
        }

        rl->quota = q.quota;
        rl->period = q.quota_period;
    }

    return 0;
}


/*
 * "trace: [id_card, credit_code]": the record fields whose values, as the
 * consumer receives them, go to the provenance index (dg_trace.h).  Each a
 * key of 1..DG_TRACE_NAME_MAX bytes, given once.
 */
int
dg_load_trace(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, dg_dataset_t *d)
{
    int                rc;
    size_t             i, j;
    const dg_ynode_t  *seq, *e;

    rc = dg_get_list(L, file, it, path, "trace", &seq);
    if (rc <= 0) {
        return rc;
    }

    if (seq->child == NULL) {
        return dg_err(L, file, seq->line, path, "trace",
                      "an empty list: name the fields that identify a "
                      "record, or leave trace out");
    }

    for (e = seq->child, i = 0; e; e = e->next, i++) {
        if (e->len == 0 || e->len > DG_TRACE_NAME_MAX) {
            return dg_err(L, file, e->line, path, "trace",
                          "bad field name '%.64s': 1 to %d bytes",
                          e->str ? e->str : "", DG_TRACE_NAME_MAX);
        }

        if (i >= DG_TRACE_FIELDS_MAX) {
            return dg_err(L, file, e->line, path, "trace",
                          "more than %d fields", DG_TRACE_FIELDS_MAX);
        }
    }

    if (dg_list_strs(L, file, seq, path, "trace", &d->trace, &d->ntrace)
        != 0)
    {
        return -1;
    }

    for (i = 0; i < d->ntrace; i++) {
        for (j = 0; j < i; j++) {
            if (d->trace[i].len == d->trace[j].len
                && memcmp(d->trace[i].data, d->trace[j].data,
                          d->trace[i].len) == 0)
            {
                return dg_err(L, file, seq->line, path, "trace",
                              "'%.*s' is named twice", (int) d->trace[i].len,
                              d->trace[i].data);
            }
        }
    }

    return 0;
}
