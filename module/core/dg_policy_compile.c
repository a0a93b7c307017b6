/*
 * datagate core: policy compiler.
 *
 * The whole load (dg_compile(): sections, masking plans, indexes and the
 * version), and freeing a compiled policy.
 */

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "dg_policy_int.h"


/* plans */

static int
dg_own_rules(dg_load_t *L, dg_mask_rules_t *r)
{
    dg_mask_rules_t  **nr;
    dg_policy_priv_t  *priv;

    if (L->own_rules != NULL) {
        *L->own_rules = r;
        return 0;
    }

    priv = L->priv;

    if (priv->nrules == priv->rules_cap) {
        nr = realloc(priv->rules, (priv->rules_cap * 2 + 8)
                                  * sizeof(dg_mask_rules_t *));
        if (nr == NULL) {
            return -1;
        }
        priv->rules = nr;
        priv->rules_cap = priv->rules_cap * 2 + 8;
    }

    priv->rules[priv->nrules++] = r;

    return 0;
}


int
dg_own_rows(dg_load_t *L, dg_mask_rows_t *rw)
{
    dg_mask_rows_t   **nr;
    dg_policy_priv_t  *priv;

    if (L->own_rules != NULL) {
        /* a run-time grant: its own */
        *L->own_rows = rw;
        return 0;
    }

    priv = L->priv;

    if (priv->nrows == priv->rows_cap) {
        nr = realloc(priv->rows, (priv->rows_cap * 2 + 8)
                                 * sizeof(dg_mask_rows_t *));
        if (nr == NULL) {
            return -1;
        }
        priv->rows = nr;
        priv->rows_cap = priv->rows_cap * 2 + 8;
    }

    priv->rows[priv->nrows++] = rw;

    return 0;
}


/* the dataset's containers as selectors for the masker (NULL: none) */
static dg_mask_field_t *
dg_plan_containers(dg_load_t *L, const dg_dataset_t *d)
{
    size_t            j;
    dg_mask_field_t  *w;

    if (d->ncontainers == 0) {
        return NULL;
    }

    w = dg_arena_array(&L->tmp, d->ncontainers, sizeof(dg_mask_field_t));
    if (w == NULL) {
        return NULL;
    }

    for (j = 0; j < d->ncontainers; j++) {
        w[j].selector = d->containers[j].data;
        w[j].len = d->containers[j].len;
    }

    return w;
}


/* the masker's rules of a plan of dataset d: its fields (n, perhaps with
 * extra keys), containers and records */
static dg_mask_rules_t *
dg_plan_rules(const dg_dataset_t *d, const dg_mask_field_t *mf, size_t n,
    const dg_mask_field_t *wk, unsigned flags, char *err, size_t errlen)
{
    dg_mask_rules_in_t  in;

    memset(&in, 0, sizeof(in));
    in.fields = mf;
    in.nfields = n;
    in.walk = wk;
    in.nwalk = d->ncontainers;
    in.flags = flags;

    if (d->records.len) {
        in.records = d->records.data;
        in.records_len = d->records.len;
    }

    return dg_mask_rules_build(&in, err, errlen);
}


/* the answers must be read to count their records: a record cap or
 * quota of the dataset, or of the grant g (may be NULL) */
static int
dg_plan_counts(const dg_dataset_t *d, const dg_grant_t *g)
{
    return d->rlimit.max || d->rlimit.quota
           || (g != NULL && (g->rlimit.max || g->rlimit.quota));
}


static unsigned
dg_plan_flags(const dg_dataset_t *d)
{
    return (d->unlisted_drop ? DG_MASK_UNLISTED_DROP : 0)
           | (d->detect ? DG_MASK_DETECT : 0);
}


static int
dg_rules_check(dg_load_t *L, const dg_mask_rules_t *r, size_t n,
    const char *file, unsigned line, const char *path)
{
    if (dg_mask_rules_nfields(r) != n) {
        return dg_err(L, file, line, path, NULL,
                      "internal error: masking rule count mismatch");
    }

    return 0;
}


static int
dg_plan_datasets(dg_load_t *L)
{
    char               path[64], merr[256];
    size_t             i, j, c;
    unsigned           flags;
    dg_plan_t         *pl;
    dg_dataset_t      *d;
    dg_mask_spec_t    *act;
    int               *cls;
    dg_mask_rules_t   *r;
    dg_mask_field_t   *mf, *wk;
    const dg_class_t  *cl;

    for (i = 0; i < L->p->ndatasets; i++) {
        d = &L->p->datasets[i];
        snprintf(path, sizeof(path), "datasets[%s].fields", d->id.data);
        flags = dg_plan_flags(d);
        r = NULL;

        if (d->nfields > 0 || flags || d->records.len
            || dg_plan_counts(d, NULL))
        {
            mf = dg_arena_array(&L->tmp, d->nfields ? d->nfields : 1,
                                sizeof(dg_mask_field_t));
            if (mf == NULL) {
                return dg_err(L, d->src_file.data, d->src_line, path, NULL,
                              "out of memory");
            }

            for (j = 0; j < d->nfields; j++) {
                mf[j].selector = d->fields[j].key.data;
                mf[j].len = d->fields[j].key.len;
            }

            wk = dg_plan_containers(L, d);
            if (d->ncontainers && wk == NULL) {
                return dg_err(L, d->src_file.data, d->src_line, path, NULL,
                              "out of memory");
            }

            merr[0] = '\0';
            r = dg_plan_rules(d, mf, d->nfields, wk, flags, merr,
                              sizeof(merr));
            if (r == NULL) {
                return dg_err(L, d->src_file.data, d->src_line, path, NULL,
                              "%s", merr[0] ? merr : "bad field selector");
            }

            if (dg_own_rules(L, r) != 0) {
                dg_mask_rules_free(r);
                return dg_err(L, d->src_file.data, d->src_line, path, NULL,
                              "out of memory");
            }

            if (dg_rules_check(L, r, d->nfields, d->src_file.data,
                               d->src_line, path) != 0)
            {
                return -1;
            }
        }

        cls = dg_arena_array(L->a, d->nfields ? d->nfields : 1, sizeof(int));
        if (cls == NULL) {
            return dg_err(L, d->src_file.data, d->src_line, path, NULL,
                          "out of memory");
        }

        for (j = 0; j < d->nfields; j++) {
            cls[j] = d->fields[j].cls;
        }

        for (c = 0; c <= DG_LEVEL_MAX; c++) {
            pl = &d->plan_by_clearance[c];
            act = dg_arena_array(L->a, d->nfields ? d->nfields : 1,
                                 sizeof(dg_mask_spec_t));
            if (act == NULL) {
                return dg_err(L, d->src_file.data, d->src_line, path, NULL,
                              "out of memory");
            }

            pl->rules = r;
            pl->actions = act;
            pl->classes = cls;
            pl->nfields = d->nfields;
            /* a dataset that lists fields always goes through the engine,
             * count-only when all is clear: unlisted keys are counted */
            pl->masks = flags != 0 || d->nfields > 0 || d->records.len
                        || dg_plan_counts(d, NULL);

            for (j = 0; j < d->nfields; j++) {
                cl = &L->p->classes[d->fields[j].cls];
                if (cl->level > c) {
                    act[j] = cl->mask;
                } else {
                    act[j].method = DG_MASK_CLEAR;
                }
                if (act[j].method != DG_MASK_CLEAR) {
                    pl->masks = 1;
                }
            }
        }
    }

    return 0;
}


int
dg_plan_grant(dg_load_t *L, const dg_policy_t *p, dg_grant_t *g,
    const char *path)
{
    char                 merr[256];
    size_t               j, k, n, nextra, cap;
    unsigned             flags;
    dg_plan_t           *pl;
    dg_mask_spec_t      *act;
    int                 *cls, rc;
    dg_mask_rules_t     *r;
    dg_mask_field_t     *mf, *wk;
    const dg_class_t    *cl;
    const dg_dataset_t  *d;
    unsigned char       *extra;

    d = g->dataset;
    pl = &g->plan;
    flags = dg_plan_flags(d);

    /* drop keys that are not fields of the dataset become extra fields */
    extra = dg_arena_alloc(&L->tmp, g->ndrop ? g->ndrop : 1);
    if (extra == NULL) {
        return dg_err(L, g->src_file.data, g->src_line, path, NULL,
                      "out of memory");
    }

    nextra = 0;

    for (k = 0; k < g->ndrop; k++) {
        extra[k] = 1;
        for (j = 0; j < d->nfields; j++) {
            if (d->fields[j].key.len == g->drop[k].len
                && memcmp(d->fields[j].key.data, g->drop[k].data,
                          g->drop[k].len) == 0)
            {
                extra[k] = 0;
                break;
            }
        }
        nextra += extra[k];
    }

    n = d->nfields + nextra;

    /* rows add a field for each key of their paths that none selects */
    cap = n + (g->nrows ? DG_MASK_ROWS_NODES : 0);

    mf = dg_arena_array(&L->tmp, cap ? cap : 1, sizeof(dg_mask_field_t));
    act = dg_arena_array(L->a, cap ? cap : 1, sizeof(dg_mask_spec_t));
    cls = dg_arena_array(L->a, cap ? cap : 1, sizeof(int));
    if (mf == NULL || act == NULL || cls == NULL) {
        return dg_err(L, g->src_file.data, g->src_line, path, NULL,
                      "out of memory");
    }

    for (j = 0; j < d->nfields; j++) {
        mf[j].selector = d->fields[j].key.data;
        mf[j].len = d->fields[j].key.len;
    }

    for (k = 0, j = d->nfields; k < g->ndrop; k++) {
        if (extra[k]) {
            mf[j].selector = g->drop[k].data;
            mf[j].len = g->drop[k].len;
            j++;
        }
    }

    pl->masks = flags != 0 || n > 0         /* see dg_plan_datasets() */
                || d->records.len || dg_plan_counts(d, g);

    for (j = 0; j < d->nfields; j++) {
        cl = &p->classes[d->fields[j].cls];
        cls[j] = d->fields[j].cls;
        act[j].method = DG_MASK_CLEAR;

        for (k = 0; k < g->ndrop; k++) {
            if (g->drop[k].len == d->fields[j].key.len
                && memcmp(g->drop[k].data, d->fields[j].key.data,
                          g->drop[k].len) == 0)
            {
                act[j].method = DG_MASK_DROP;
                break;
            }
        }

        if (act[j].method == DG_MASK_DROP) {
            pl->masks = 1;
            continue;
        }

        if (cl->level <= g->consumer->clearance) {
            continue;
        }

        for (k = 0; k < g->nreveal; k++) {
            if (g->reveal[k].len == d->fields[j].key.len
                && memcmp(g->reveal[k].data, d->fields[j].key.data,
                          g->reveal[k].len) == 0)
            {
                break;
            }
        }

        if (k == g->nreveal) {
            act[j] = cl->mask;
            if (act[j].method != DG_MASK_CLEAR) {
                pl->masks = 1;
            }
        }
    }

    for (j = d->nfields; j < n; j++) {
        cls[j] = -1;
        act[j].method = DG_MASK_DROP;
        pl->masks = 1;
    }

    if (g->nrows) {
        rc = dg_plan_rows(L, g, mf, n, act, path);
        if (rc < 0) {
            return -1;
        }

        for (j = n; j < (size_t) rc; j++) {
            cls[j] = -1;
        }

        n = (size_t) rc;
        pl->masks = 1;
    }

    r = (dg_mask_rules_t *) d->plan_by_clearance[0].rules;

    if (nextra || g->nrows || (r == NULL && pl->masks)) {
        wk = dg_plan_containers(L, d);
        if (d->ncontainers && wk == NULL) {
            return dg_err(L, g->src_file.data, g->src_line, path, NULL,
                          "out of memory");
        }

        merr[0] = '\0';
        r = dg_plan_rules(d, mf, n, wk, flags, merr, sizeof(merr));
        if (r == NULL) {
            return dg_err(L, g->src_file.data, g->src_line, path, "drop",
                          "%s", merr[0] ? merr : "bad key");
        }

        if (dg_own_rules(L, r) != 0) {
            dg_mask_rules_free(r);
            return dg_err(L, g->src_file.data, g->src_line, path, NULL,
                          "out of memory");
        }

        if (dg_rules_check(L, r, n, g->src_file.data, g->src_line, path)
            != 0)
        {
            return -1;
        }
    }

    pl->rules = r;
    pl->actions = act;
    pl->classes = cls;
    pl->nfields = n;

    return 0;
}


static int
dg_str_eq(const dg_str_t *a, const dg_str_t *b)
{
    return a->len == b->len && (a->len == 0
                                || memcmp(a->data, b->data, a->len) == 0);
}


/* a consumer with the same matchers as an earlier one could never match */

static int
dg_same_cert_check(dg_load_t *L, const dg_consumer_t *c)
{
    const dg_hash_t      *h;
    const dg_hent_t      *e;
    const dg_consumer_t  *o;
    char                  path[DG_ID_MAX + 32];

    if (c->has_fingerprint) {
        h = &L->priv->by_fingerprint;
        e = dg_hash_find(h, c->fingerprint, DG_SHA256_LEN);
    } else if (c->serial.len) {
        h = &L->priv->by_serial;
        e = dg_hash_find(h, c->serial.data, c->serial.len);
    } else if (c->subject.len) {
        h = &L->priv->by_subject;
        e = dg_hash_find(h, c->subject.data, c->subject.len);
    } else {
        h = &L->priv->by_san;
        e = dg_hash_find(h, c->san.data, c->san.len);
    }

    for ( /* void */ ; e; e = dg_hash_next(h, e)) {
        o = e->val;

        if (o->index >= c->index) {
            break;
        }

        if (o->has_fingerprint == c->has_fingerprint
            && (!c->has_fingerprint
                || memcmp(o->fingerprint, c->fingerprint, DG_SHA256_LEN)
                   == 0)
            && dg_str_eq(&o->serial, &c->serial)
            && dg_str_eq(&o->subject, &c->subject)
            && dg_str_eq(&o->san, &c->san)
            && dg_str_eq(&o->issuer, &c->issuer)
            && o->issuer_key_id_len == c->issuer_key_id_len
            && memcmp(o->issuer_key_id, c->issuer_key_id,
                      c->issuer_key_id_len) == 0)
        {
            snprintf(path, sizeof(path), "consumers[id=%s].cert",
                     c->id.data);
            return dg_err(L, c->src_file.data, c->src_line, path, NULL,
                          "same certificate matchers as consumer '%s' "
                          "(%s:%u): it could never match", o->id.data,
                          o->src_file.data, o->src_line);
        }
    }

    return 0;
}


static int
dg_index(dg_load_t *L)
{
    size_t             i, nfp, nser, nsub, nsan;
    char               path[64];
    dg_grant_t        *g;
    dg_cd_key_t       *keys;
    dg_consumer_t     *c;
    dg_policy_priv_t  *priv;
    int                rc;

    priv = L->priv;
    nfp = nser = nsub = nsan = 0;

    for (i = 0; i < L->p->nconsumers; i++) {
        c = &L->p->consumers[i];
        if (c->has_fingerprint) {
            nfp++;
        } else if (c->serial.len) {
            nser++;
        } else if (c->subject.len) {
            nsub++;
        } else {
            nsan++;
        }
    }

    if (dg_hash_init(&priv->by_fingerprint, L->a, nfp) != 0
        || dg_hash_init(&priv->by_serial, L->a, nser) != 0
        || dg_hash_init(&priv->by_subject, L->a, nsub) != 0
        || dg_hash_init(&priv->by_san, L->a, nsan) != 0
        || dg_hash_init(&priv->grants_by_cd, L->a, L->p->ngrants) != 0)
    {
        return dg_err(L, L->files[0].name, 1, "policy", NULL,
                      "out of memory");
    }

    for (i = 0; i < L->p->nconsumers; i++) {
        c = &L->p->consumers[i];

        /* each consumer is indexed by its first matcher */
        if (c->has_fingerprint) {
            rc = dg_hash_add(&priv->by_fingerprint, c->fingerprint,
                             DG_SHA256_LEN, c);
        } else if (c->serial.len) {
            rc = dg_hash_add(&priv->by_serial, c->serial.data, c->serial.len,
                             c);
        } else if (c->subject.len) {
            rc = dg_hash_add(&priv->by_subject, c->subject.data,
                             c->subject.len, c);
        } else {
            rc = dg_hash_add(&priv->by_san, c->san.data, c->san.len, c);
        }

        if (rc != 0) {
            return dg_err(L, L->files[0].name, 1, "policy", NULL,
                          "out of memory");
        }

        if (dg_same_cert_check(L, c) != 0) {
            return -1;
        }
    }

    keys = dg_arena_array(L->a, L->p->ngrants ? L->p->ngrants : 1,
                          sizeof(dg_cd_key_t));
    if (keys == NULL) {
        return dg_err(L, L->files[0].name, 1, "policy", NULL,
                      "out of memory");
    }

    for (i = 0; i < L->p->ngrants; i++) {
        g = &L->p->grants[i];
        keys[i].consumer = g->consumer->index;
        keys[i].dataset = g->dataset->index;

        if (dg_hash_add(&priv->grants_by_cd, &keys[i], sizeof(dg_cd_key_t),
                        g) != 0)
        {
            return dg_err(L, L->files[0].name, 1, "policy", NULL,
                          "out of memory");
        }

        snprintf(path, sizeof(path), "grants[%zu]", i);

        if (dg_plan_grant(L, L->p, g, path) != 0) {
            return -1;
        }
    }

    return 0;
}


static int
dg_version(dg_load_t *L)
{
    size_t         i, blen;
    uint8_t        lenbuf[8];
    uint64_t       n;
    unsigned       k, mdlen;
    EVP_MD_CTX    *md;
    dg_pfile_t    *f;
    static const char  hex[] = "0123456789abcdef";

    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return dg_err(L, L->files[0].name, 1, "policy", NULL,
                      "SHA-256 unavailable");
    }

    for (i = 0; i < L->nfiles; i++) {
        f = &L->files[i];
        blen = strlen(f->base);
        n = f->len;

        for (k = 0; k < 8; k++) {
            lenbuf[k] = (uint8_t) (n >> (56 - 8 * k));
        }

        if (EVP_DigestUpdate(md, f->base, blen + 1) != 1
            || EVP_DigestUpdate(md, lenbuf, 8) != 1
            || EVP_DigestUpdate(md, f->data, f->len) != 1)
        {
            EVP_MD_CTX_free(md);
            return dg_err(L, L->files[0].name, 1, "policy", NULL,
                          "SHA-256 failed");
        }
    }

    mdlen = DG_SHA256_LEN;
    if (EVP_DigestFinal_ex(md, L->p->version, &mdlen) != 1
        || mdlen != DG_SHA256_LEN)
    {
        EVP_MD_CTX_free(md);
        return dg_err(L, L->files[0].name, 1, "policy", NULL,
                      "SHA-256 failed");
    }

    EVP_MD_CTX_free(md);

    for (k = 0; k < DG_SHA256_LEN; k++) {
        L->p->version_hex[2 * k] = hex[L->p->version[k] >> 4];
        L->p->version_hex[2 * k + 1] = hex[L->p->version[k] & 0xf];
    }
    L->p->version_hex[DG_SHA256_HEX_LEN] = '\0';

    return 0;
}


/* the whole load, from L->files with data filled in */

dg_policy_t *
dg_compile(dg_load_t *L)
{
    dg_arena_t         arena;
    dg_policy_t       *p;
    dg_policy_priv_t  *priv;
    size_t             i;

    memset(&arena, 0, sizeof(dg_arena_t));

    priv = dg_arena_alloc(&arena, sizeof(dg_policy_priv_t));
    p = dg_arena_alloc(&arena, sizeof(dg_policy_t));
    if (priv == NULL || p == NULL) {
        dg_arena_free(&arena);
        snprintf(L->err, L->errlen, "%s: out of memory", L->files[0].name);
        return NULL;
    }

    p->priv = priv;
    L->p = p;
    L->priv = priv;
    L->a = &arena;

    /* keep the file names for src_file pointers */
    for (i = 0; i < L->nfiles; i++) {
        L->files[i].name = dg_arena_strndup(&arena, L->files[i].name,
                                            strlen(L->files[i].name));
        if (L->files[i].name == NULL) {
            snprintf(L->err, L->errlen, "%s:1: policy: out of memory",
                     L->files[0].base);
            goto failed;
        }
    }

    if (dg_parse_files(L) != 0
        || dg_load_levels(L) != 0
        || dg_load_detect(L) != 0
        || dg_load_classes(L) != 0
        || dg_load_purposes(L) != 0
        || dg_load_consumers(L) != 0
        || dg_load_datasets(L) != 0
        || dg_load_grants(L) != 0
        || dg_plan_datasets(L) != 0
        || dg_index(L) != 0
        || dg_version(L) != 0)
    {
        goto failed;
    }

    priv->arena = arena;

    return p;

failed:

    for (i = 0; i < priv->nrules; i++) {
        dg_mask_rules_free(priv->rules[i]);
    }
    free(priv->rules);
    for (i = 0; i < priv->nrows; i++) {
        dg_mask_rows_free(priv->rows[i]);
    }
    free(priv->rows);
    dg_arena_free(&arena);

    return NULL;
}


void
dg_policy_free(dg_policy_t *p)
{
    size_t             i;
    dg_arena_t         arena;
    dg_policy_priv_t  *priv;

    if (p == NULL) {
        return;
    }

    priv = p->priv;

    for (i = 0; i < priv->nrules; i++) {
        dg_mask_rules_free(priv->rules[i]);
    }

    free(priv->rules);

    for (i = 0; i < priv->nrows; i++) {
        dg_mask_rows_free(priv->rows[i]);
    }

    free(priv->rows);

    arena = priv->arena;
    dg_arena_free(&arena);
}
