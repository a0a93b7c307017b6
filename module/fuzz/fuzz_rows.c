/*
 * libFuzzer target for records in the masker: row scoping and the record
 * allowance (module/core/dg_mask_rec.c).
 *
 * fuzz: sources dg_mask*.c
 *
 * The first input byte picks where the records are ("data[]" or "$"),
 * allow-list mode, a small mask buffer and an allowance of records; the
 * rest is the document.  It is masked whole, in spans cut at
 * pseudo-random points and (when short) one byte at a time; all runs
 * must agree on the result, the output and the counts.  When it
 * succeeds the input was valid JSON, the output is valid JSON, and with
 * "data[]" every record left in the top-level "data" array is in scope
 * (its "r" present, every "r" a string starting with "a" or equal to
 * "b"; not in allow-list mode, which removes "r" itself), and there are
 * no more of them than the allowance.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "dg_mask.h"
#include "t_mask_util.h"


#define FZ_NF       3


static dg_mask_rules_t  *fz_rules[4];
static dg_mask_rows_t   *fz_rows;
static dg_mask_spec_t    fz_act[FZ_NF + 2];
static size_t            fz_nact;


typedef struct {
    const uint8_t  *p;
    const uint8_t  *end;
} fz_walk_t;


static void
fz_ws(fz_walk_t *w)
{
    while (w->p < w->end && (*w->p == ' ' || *w->p == '\t' || *w->p == '\n'
                             || *w->p == '\r'))
    {
        w->p++;
    }
}


/* a string at w->p, decoded ASCII-exact (other code points '?') */
static size_t
fz_string(fz_walk_t *w, char *d, size_t cap)
{
    size_t    n;
    uint32_t  c, u;
    int       i;

    n = 0;
    w->p++;

    while (*w->p != '"') {
        c = *w->p++;
        if (c == '\\') {
            c = *w->p++;
            if (c == 'u') {
                u = 0;
                for (i = 0; i < 4; i++) {
                    c = *w->p++;
                    u = (u << 4) | (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
                }
                c = u < 0x80 ? u : '?';
            } else if (c != '"' && c != '\\' && c != '/') {
                c = '?';
            }
        }
        if (n + 1 < cap) {
            d[n++] = (char) c;
        }
    }

    w->p++;
    d[n] = '\0';
    return n;
}


/* skip a (valid) value */
static void
fz_skip(fz_walk_t *w)
{
    char  tmp[8];

    fz_ws(w);

    if (*w->p == '"') {
        fz_string(w, tmp, sizeof(tmp));
        return;
    }

    if (*w->p == '{' || *w->p == '[') {
        uint8_t  close = (*w->p == '{') ? '}' : ']';

        w->p++;
        fz_ws(w);
        if (*w->p == close) {
            w->p++;
            return;
        }
        for ( ;; ) {
            if (close == '}') {
                fz_ws(w);
                fz_string(w, tmp, sizeof(tmp));
                fz_ws(w);
                w->p++;                 /* ':' */
            }
            fz_skip(w);
            fz_ws(w);
            if (*w->p++ == close) {
                return;
            }
        }
    }

    while (w->p < w->end && *w->p != ',' && *w->p != '}' && *w->p != ']'
           && *w->p != ' ' && *w->p != '\n' && *w->p != '\t' && *w->p != '\r')
    {
        w->p++;
    }
}


/* a record of the output: an object with every "r" in scope, one at
 * least */
static int
fz_in_scope(fz_walk_t *w)
{
    char  k[64], v[64];
    int   seen, bad;

    fz_ws(w);

    if (*w->p != '{') {
        fz_skip(w);
        return 0;
    }

    w->p++;
    seen = 0;
    bad = 0;
    fz_ws(w);

    if (*w->p == '}') {
        w->p++;
        return 0;
    }

    for ( ;; ) {
        fz_ws(w);
        fz_string(w, k, sizeof(k));
        fz_ws(w);
        w->p++;
        fz_ws(w);

        if (strcmp(k, "r") == 0) {
            seen = 1;
            if (*w->p == '"') {
                fz_string(w, v, sizeof(v));
                if (!(v[0] == 'a' || strcmp(v, "b") == 0)) {
                    bad = 1;
                }
            } else {
                fz_skip(w);
                bad = 1;
            }
        } else {
            fz_skip(w);
        }

        fz_ws(w);
        if (*w->p++ == '}') {
            return seen && !bad;
        }
    }
}


/* the records of the output's top-level "data" array: all in scope;
 * returns how many, or -1 */
static long
fz_check(const uint8_t *p, size_t n, int scope)
{
    fz_walk_t  w;
    char       k[64];
    long       count;

    w.p = p;
    w.end = p + n;
    fz_ws(&w);

    if (w.p == w.end || *w.p != '{') {
        return 0;
    }

    w.p++;
    count = 0;
    fz_ws(&w);

    if (*w.p == '}') {
        return 0;
    }

    for ( ;; ) {
        fz_ws(&w);
        fz_string(&w, k, sizeof(k));
        fz_ws(&w);
        w.p++;
        fz_ws(&w);

        if (strcmp(k, "data") == 0 && *w.p == '[') {
            w.p++;
            fz_ws(&w);
            if (*w.p == ']') {
                w.p++;
            } else {
                for ( ;; ) {
                    if (!fz_in_scope(&w) && scope) {
                        return -1;
                    }
                    count++;
                    fz_ws(&w);
                    if (*w.p++ == ']') {
                        break;
                    }
                }
            }
        } else {
            fz_skip(&w);
        }

        fz_ws(&w);
        if (*w.p++ == '}') {
            return count;
        }
    }
}


static void
fz_setup(void)
{
    static dg_mask_field_t  vals[2] = { { "a*", 2 }, { "b", 1 } };
    static dg_mask_field_t  one[1] = { { "1", 1 } };
    dg_mask_row_t           rw[2] = { { "r", 1, vals, 2 },
                                      { "s", 1, one, 1 } };
    dg_mask_field_t         f[FZ_NF + 2] = { { "name", 4 }, { "x", 1 },
                                             { "data[].id", 9 } };
    dg_mask_field_t         extra[4];
    uint8_t                 flags[FZ_NF];
    dg_mask_rules_in_t      in;
    size_t                  i, nx;
    unsigned                k;

    /* "s" is required only with the second condition: one row (r) */
    fz_rows = dg_mask_rows_compile(rw, 1, NULL, 0);
    if (fz_rows == NULL) {
        abort();
    }
    (void) one;

    dg_mask_spec_parse("name", 4, &fz_act[0]);
    dg_mask_spec_parse("drop", 4, &fz_act[1]);
    dg_mask_spec_parse("redact", 6, &fz_act[2]);

    nx = dg_mask_rows_fields(fz_rows, f, FZ_NF, flags, extra, 4);
    for (i = 0; i < FZ_NF; i++) {
        fz_act[i].row = flags[i];
    }
    for (i = 0; i < nx; i++) {
        f[FZ_NF + i] = extra[i];
        memset(&fz_act[FZ_NF + i], 0, sizeof(dg_mask_spec_t));
        fz_act[FZ_NF + i].row = DG_MASK_ROW_KEY | DG_MASK_ROW_ONLY;
    }
    fz_nact = FZ_NF + nx;

    (void) tm_feed;

    for (k = 0; k < 4; k++) {
        memset(&in, 0, sizeof(in));
        in.fields = f;
        in.nfields = fz_nact;
        in.records = (k & 1) ? "$" : "data[]";
        in.records_len = strlen(in.records);
        in.flags = (k & 2) ? DG_MASK_UNLISTED_DROP : 0;
        fz_rules[k] = dg_mask_rules_build(&in, NULL, 0);
        if (fz_rules[k] == NULL) {
            abort();
        }
    }
}


static int
fz_feed(void *mem, const dg_mask_conf_t *conf, const uint8_t *doc, size_t n,
    const size_t *cuts, size_t ncuts, tm_buf_t *out, dg_mask_stats_t *st,
    long allow)
{
    dg_mask_t  *m;
    size_t      i, from, to;
    int         rc;

    m = dg_mask_init(mem, conf);
    if (m == NULL) {
        abort();
    }

    if (allow >= 0) {
        dg_mask_allow(m, (uint64_t) allow, 1);
    }

    from = 0;
    rc = DG_MASK_OK;

    for (i = 0; i <= ncuts; i++) {
        to = (i < ncuts) ? cuts[i] : n;
        if (to < from) {
            to = from;
        }
        if (out->lend) {
            rc = dg_mask_feed_into(m, doc + from, to - from, i == ncuts,
                                   tm_lend, out);
            free(out->chunk);
            out->chunk = NULL;
            out->coff = 0;
            out->ccap = 0;
        } else {
            rc = dg_mask_feed(m, doc + from, to - from, i == ncuts, tm_emit,
                              out);
        }
        if (rc != DG_MASK_OK) {
            break;
        }
        from = to;
    }

    *st = *dg_mask_stats(m);
    return rc;
}


/*
 * Two runs agree on the result: the same code, or both refused with one
 * of them a record too large to hold.  Whether the held record outgrows
 * the mask buffer before a later error of the document (malformed JSON,
 * a value too long) shows depends on where the spans end, since the
 * record's bytes are copied to the hold when a span ends; either way the
 * answer is refused and the record is not sent.
 */
static int
fz_same_rc(int a, int b)
{
    if (a == b) {
        return 1;
    }

    return a != DG_MASK_OK && b != DG_MASK_OK
           && a != DG_MASK_PAUSED && b != DG_MASK_PAUSED
           && (a == DG_MASK_E_RECORD || b == DG_MASK_E_RECORD);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static void      *mem;
    static size_t     memsize;
    static size_t     cuts[1 << 16];
    dg_mask_conf_t    conf;
    dg_mask_stats_t   s1, s2, s3;
    const uint8_t    *doc;
    tm_buf_t          o1, o2, o3;
    size_t            n, nc, i, sz;
    uint32_t          h;
    unsigned          mode;
    long              allow, kept;
    int               rc1, rc2, rc3;

    if (size < 1) {
        return 0;
    }

    if (fz_rows == NULL) {
        fz_setup();
    }

    mode = data[0];
    doc = data + 1;
    n = size - 1;

    memset(&conf, 0, sizeof(conf));
    conf.rules = fz_rules[mode & 3];
    conf.actions = fz_act;
    conf.max_value = (mode & 4) ? 32 : 4096;
    conf.max_depth = 32;
    conf.rows = fz_rows;
    conf.one = (mode & 8) ? 1 : 0;
    allow = conf.one ? (long) ((mode >> 4) & 7) : -1;

    sz = dg_mask_size(&conf);
    if (sz > memsize) {
        free(mem);
        mem = tm_alloc(sz);
        memsize = sz;
        if (mem == NULL) {
            abort();
        }
    }

    memset(&o1, 0, sizeof(o1));
    memset(&o2, 0, sizeof(o2));
    memset(&o3, 0, sizeof(o3));

    rc1 = fz_feed(mem, &conf, doc, n, NULL, 0, &o1, &s1, allow);

    h = 2166136261u;
    for (i = 0; i < size; i++) {
        h = (h ^ data[i]) * 16777619u;
    }
    nc = 0;
    for (i = 0; i < n && nc < (1 << 16); ) {
        h = h * 1103515245u + 12345u;
        i += 1 + (h >> 16) % 13;
        if (i < n) {
            cuts[nc++] = i;
        }
    }
    o2.lend = 1 + (h >> 9) % 64;
    o2.seed = h;
    rc2 = fz_feed(mem, &conf, doc, n, cuts, nc, &o2, &s2, allow);

    if (!fz_same_rc(rc1, rc2) || (rc1 == 0 && (o1.len != o2.len
                                    || (o1.len
                                        && memcmp(o1.p, o2.p, o1.len))
                                    || s1.records != s2.records
                                    || s1.rows_dropped != s2.rows_dropped
                                    || s1.records_cut != s2.records_cut)))
    {
        fprintf(stderr, "whole and split differ: rc %d %d\n", rc1, rc2);
        abort();
    }

    if (n <= 2048) {
        nc = 0;
        for (i = 1; i < n; i++) {
            cuts[nc++] = i;
        }
        rc3 = fz_feed(mem, &conf, doc, n, cuts, nc, &o3, &s3, allow);
        if (!fz_same_rc(rc3, rc1) || (rc1 == 0 && (o3.len != o1.len
                                        || (o1.len
                                            && memcmp(o1.p, o3.p, o1.len))
                                        || s3.records != s1.records)))
        {
            fprintf(stderr, "byte-at-a-time differs: rc %d vs %d\n", rc3,
                    rc1);
            abort();
        }
    }

    if (rc1 == 0) {
        if (!tm_json_valid(doc, n)) {
            fprintf(stderr, "scoped invalid JSON\n");
            abort();
        }
        if (!tm_json_valid(o1.p ? o1.p : (const uint8_t *) "", o1.len)
            && !(s1.out_of_scope || (s1.cut && (mode & 1))))
        {
            fprintf(stderr, "output is not valid JSON\n");
            abort();
        }
        if (!(mode & 1)) {
            /* allow-list mode removes "r" (no field) from the output */
            kept = fz_check(o1.p ? o1.p : (const uint8_t *) "", o1.len,
                            !(mode & 2));
            if (kept < 0) {
                fprintf(stderr, "a record out of scope was sent\n");
                abort();
            }
            if (allow >= 0 && kept > allow) {
                fprintf(stderr, "more records than allowed\n");
                abort();
            }
        }
    }

    free(o1.p);
    free(o2.p);
    free(o3.p);
    return 0;
}
