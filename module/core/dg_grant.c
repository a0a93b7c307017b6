/*
 * datagate core: grants, in the policy ("grants:") and issued at run time
 * (dg_grant_compile(): the same schema, checked against a loaded policy).
 */

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "dg_policy_int.h"


#define DG_GRANT_MAX_LEN        (1024 * 1024)   /* a run-time grant's YAML */
#define DG_GRANT_MAX_NODES      100000          /* ... and its nodes */


static const char *dg_grant_keys[] = {
    "consumer", "dataset", "purposes", "approval", "valid", "methods",
    "reveal", "drop", "rate", "quota", "abuse", NULL
};
static const char *dg_valid_keys[] = { "from", "until", NULL };


/* one grant mapping (policy or run time) */

static int
dg_load_grant(dg_load_t *L, const dg_policy_t *p, const char *file,
    const dg_ynode_t *it, const char *path, dg_grant_t *g)
{
    int                rc, y, m, dd;
    size_t             j;
    char               hb[DG_HINT_LEN];
    dg_str_t           s;
    const dg_hent_t   *e;
    const dg_ynode_t  *v, *seq, *x, *y2;
    dg_policy_priv_t  *priv;

    priv = p->priv;

    if (dg_item_map(L, file, it, path, "consumer, dataset, purposes",
                    dg_grant_keys)
        != 0)
    {
        return -1;
    }

    g->src_file.data = file;
    g->src_file.len = strlen(file);
    g->src_line = it->line;

    /* consumer */

    if (dg_get_text(L, file, it, path, "consumer", 1, DG_ID_MAX, &s, &v)
        < 0)
    {
        return -1;
    }

    e = dg_hash_find(&priv->consumers, s.data, s.len);
    if (e == NULL) {
        return dg_err(L, file, v->line, path, "consumer",
                      "unknown consumer '%s'%s", s.data,
                      dg_hint_id(hb, s.data, s.len, p->consumers,
                                 p->nconsumers, sizeof(dg_consumer_t),
                                 offsetof(dg_consumer_t, id)));
    }
    g->consumer = e->val;

    /* dataset */

    if (dg_get_text(L, file, it, path, "dataset", 1, DG_ID_MAX, &s, &v) < 0)
    {
        return -1;
    }

    e = dg_hash_find(&priv->datasets, s.data, s.len);
    if (e == NULL) {
        return dg_err(L, file, v->line, path, "dataset",
                      "unknown dataset '%s'%s", s.data,
                      dg_hint_id(hb, s.data, s.len, p->datasets,
                                 p->ndatasets, sizeof(dg_dataset_t),
                                 offsetof(dg_dataset_t, id)));
    }
    g->dataset = e->val;

    if (g->dataset->share == DG_SHARE_NONE) {
        return dg_err(L, file, v->line, path, "dataset",
                      "dataset '%s' has share: none (不予共享) and cannot be "
                      "granted", s.data);
    }

    if (g->dataset->share == DG_SHARE_UNCONDITIONAL
        && g->consumer->clearance < g->dataset->level)
    {
        return dg_err(L, file, v->line, path, "dataset",
                      "consumer '%s' has clearance %u, below level %u of "
                      "unconditional dataset '%s': a grant there only adds "
                      "to access by clearance, so it could never apply",
                      g->consumer->id.data, g->consumer->clearance,
                      g->dataset->level, s.data);
    }

    /* purposes */

    v = dg_ymap_get(it, "purposes");
    if (v == NULL) {
        return dg_err(L, file, it->line, path, "purposes",
                      "missing required key 'purposes'");
    }

    rc = dg_get_list(L, file, it, path, "purposes", &seq);
    if (rc < 0) {
        return -1;
    }

    g->purposes = dg_arena_array(L->a, seq->n, sizeof(dg_purpose_t *));
    if (g->purposes == NULL) {
        return dg_err(L, file, seq->line, path, "purposes", "out of memory");
    }

    for (x = seq->child; x; x = x->next) {
        e = dg_hash_find(&priv->purposes, x->str, x->len);
        if (e == NULL) {
            return dg_err(L, file, x->line, path, "purposes",
                          "unknown purpose '%.64s'%s", x->str,
                          dg_hint_id(hb, x->str, x->len, p->purposes,
                                     p->npurposes, sizeof(dg_purpose_t),
                                     offsetof(dg_purpose_t, id)));
        }

        for (j = 0; j < g->npurposes; j++) {
            if (g->purposes[j] == e->val) {
                return dg_err(L, file, x->line, path, "purposes",
                              "purpose '%.64s' is listed twice", x->str);
            }
        }

        g->purposes[g->npurposes++] = e->val;
    }

    /* approval */

    rc = dg_get_text(L, file, it, path, "approval", 0, DG_ID_MAX,
                     &g->approval, &v);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        for (j = 0; j < g->approval.len; j++) {
            if ((unsigned char) g->approval.data[j] <= 0x20
                || (unsigned char) g->approval.data[j] >= 0x7f)
            {
                return dg_err(L, file, v->line, path, "approval",
                              "approval numbers are printable ASCII without "
                              "spaces (they travel in the Data-Approval "
                              "header)");
            }
        }

    } else {
        g->approval.data = "";
        g->approval.len = 0;
    }

    /* valid */

    v = dg_ymap_get(it, "valid");
    if (v != NULL) {
        char  vpath[96];

        snprintf(vpath, sizeof(vpath), "%s.valid", path);

        if (v->type != DG_Y_MAP) {
            return dg_err(L, file, v->line, vpath, NULL,
                          "expected a mapping such as {from: 2024-01-01, "
                          "until: 2026-12-31}, got %s", dg_ytype_name(v));
        }

        if (dg_check_keys(L, file, v, vpath, dg_valid_keys) != 0) {
            return -1;
        }

        x = dg_ymap_get(v, "from");
        y2 = dg_ymap_get(v, "until");

        if (x == NULL && y2 == NULL) {
            return dg_err(L, file, v->line, vpath, NULL,
                          "give from, until or both");
        }

        if (x != NULL) {
            if (dg_expect(L, file, x, vpath, "from", DG_Y_SCALAR) != 0) {
                return -1;
            }
            if (dg_date_parse(x->str, x->len, &y, &m, &dd) != 0) {
                return dg_err(L, file, x->line, vpath, "from",
                              "bad date '%.32s': expected a real calendar "
                              "date YYYY-MM-DD", x->str);
            }
            g->valid_from = dg_date_start(y, m, dd);
        }

        if (y2 != NULL) {
            if (dg_expect(L, file, y2, vpath, "until", DG_Y_SCALAR) != 0) {
                return -1;
            }
            if (dg_date_parse(y2->str, y2->len, &y, &m, &dd) != 0) {
                return dg_err(L, file, y2->line, vpath, "until",
                              "bad date '%.32s': expected a real calendar "
                              "date YYYY-MM-DD", y2->str);
            }
            g->valid_until = dg_date_start(y, m, dd) + 86400 - 1;
        }

        if (x != NULL && y2 != NULL && g->valid_from > g->valid_until) {
            return dg_err(L, file, y2->line, vpath, "until",
                          "%s is before from %s", y2->str, x->str);
        }
    }

    /* methods: a subset of the dataset's */

    if (dg_load_methods(L, p, file, it, path, g->dataset, &g->methods) < 0) {
        return -1;
    }

    /* reveal: fields of the dataset, by name */

    rc = dg_get_list(L, file, it, path, "reveal", &seq);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        for (x = seq->child; x; x = x->next) {
            for (j = 0; j < g->dataset->nfields; j++) {
                if (g->dataset->fields[j].key.len == x->len
                    && memcmp(g->dataset->fields[j].key.data, x->str, x->len)
                       == 0)
                {
                    break;
                }
            }

            if (j == g->dataset->nfields) {
                return dg_err(L, file, x->line, path, "reveal",
                              "'%.64s' is not a field of dataset '%s'",
                              x->str, g->dataset->id.data);
            }
        }

        if (dg_list_strs(L, file, seq, path, "reveal", &g->reveal,
                         &g->nreveal) != 0)
        {
            return -1;
        }
    }

    /* drop: any keys */

    rc = dg_get_list(L, file, it, path, "drop", &seq);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        for (x = seq->child; x; x = x->next) {
            if (x->len == 0) {
                return dg_err(L, file, x->line, path, "drop",
                              "empty key");
            }

            for (j = 0; j < g->nreveal; j++) {
                if (g->reveal[j].len == x->len
                    && memcmp(g->reveal[j].data, x->str, x->len) == 0)
                {
                    return dg_err(L, file, x->line, path, "drop",
                                  "'%.64s' is both revealed and dropped",
                                  x->str);
                }
            }

            for (y2 = seq->child; y2 != x; y2 = y2->next) {
                if (y2->len == x->len && memcmp(y2->str, x->str, x->len) == 0)
                {
                    return dg_err(L, file, x->line, path, "drop",
                                  "'%.64s' is listed twice", x->str);
                }
            }
        }

        if (dg_list_strs(L, file, seq, path, "drop", &g->drop, &g->ndrop)
            != 0)
        {
            return -1;
        }
    }

    /* rate, quota */

    if (dg_load_limits(L, file, it, path, &g->limit, &g->rate_str,
                       &g->quota_str)
        != 0)
    {
        return -1;
    }

    /* abuse: in place of the dataset's for what this grant allows */

    if (dg_load_abuse(L, file, it, path, 1, &g->abuse) != 0) {
        return -1;
    }

    if (g->dataset->share == DG_SHARE_UNCONDITIONAL && g->methods == 0
        && g->nreveal == 0 && g->ndrop == 0 && g->rate_str.len == 0
        && g->quota_str.len == 0 && !g->abuse.set)
    {
        return dg_err(L, file, it->line, path, NULL,
                      "a grant on unconditional dataset '%s' adds methods, "
                      "reveal, drop, rate, quota or abuse to access by "
                      "clearance; this one sets none of them and would "
                      "have no effect", g->dataset->id.data);
    }

    return 0;
}


int
dg_load_grants(dg_load_t *L)
{
    char               path[64];
    size_t             i, k;
    dg_pfile_t        *f;
    dg_ynode_t        *it;
    dg_grant_t        *g;
    const dg_ynode_t  *sec;

    L->p->grants = dg_section_alloc(L, "grants", DG_Y_SEQ,
                                    sizeof(dg_grant_t), NULL);
    if (L->p->grants == NULL) {
        return -1;
    }

    for (i = 0; i < L->nfiles; i++) {
        f = &L->files[i];
        sec = dg_section(L, f, "grants", DG_Y_SEQ);
        if (sec == NULL) {
            continue;
        }

        for (k = 0, it = sec->child; it; it = it->next, k++) {
            snprintf(path, sizeof(path), "grants[%zu]", k);

            g = &L->p->grants[L->p->ngrants];
            g->index = (unsigned) L->p->ngrants;

            if (dg_load_grant(L, L->p, f->name, it, path, g) != 0) {
                return -1;
            }

            L->p->ngrants++;
        }
    }

    return 0;
}


/* run-time grants */

typedef struct {
    dg_grant_t                  grant;      /* first: dg_grant_free casts */
    dg_arena_t                  arena;
    dg_mask_rules_t            *rules;      /* owned, or NULL */
} dg_rgrant_t;


dg_grant_t *
dg_grant_compile(const dg_policy_t *p, const char *yaml, size_t len,
    char *err, size_t errlen)
{
    dg_load_t     L;
    dg_arena_t    arena;
    dg_rgrant_t  *rg;
    dg_ynode_t   *root;
    char          dummy[1];
    size_t        off;

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }

    err[0] = '\0';

    if (p == NULL || yaml == NULL) {
        snprintf(err, errlen, "grant: no policy or no grant");
        return NULL;
    }

    if (len > DG_GRANT_MAX_LEN) {
        snprintf(err, errlen, "grant:1: file: larger than %d MiB",
                 DG_GRANT_MAX_LEN >> 20);
        return NULL;
    }

    memset(&L, 0, sizeof(dg_load_t));
    memset(&arena, 0, sizeof(dg_arena_t));
    L.err = err;
    L.errlen = errlen;
    L.budget = DG_GRANT_MAX_NODES;
    L.p = (dg_policy_t *) p;
    L.priv = p->priv;

    rg = dg_arena_alloc(&arena, sizeof(dg_rgrant_t));
    if (rg == NULL) {
        snprintf(err, errlen, "grant: out of memory");
        return NULL;
    }

    L.a = &arena;
    L.own_rules = &rg->rules;

    off = dg_utf8_check((const uint8_t *) yaml, len);
    if (off != len) {
        snprintf(err, errlen, "grant:1: file: not valid UTF-8 (byte %zu)",
                 off);
        goto failed;
    }

    root = dg_yaml_parse(&L.tmp, "grant", yaml, len, &L.budget, err, errlen);
    if (root == NULL) {
        goto failed;
    }

    rg->grant.runtime = 1;
    rg->grant.index = (unsigned) -1;

    if (dg_load_grant(&L, p, "grant", root, "grant", &rg->grant) != 0
        || dg_plan_grant(&L, p, &rg->grant, "grant") != 0)
    {
        goto failed;
    }

    rg->grant.src_file.data = "run-time grant";
    rg->grant.src_file.len = sizeof("run-time grant") - 1;
    rg->arena = arena;
    dg_arena_free(&L.tmp);

    return &rg->grant;

failed:

    if (rg->rules != NULL) {
        dg_mask_rules_free(rg->rules);
    }
    dg_arena_free(&L.tmp);
    dg_arena_free(&arena);

    return NULL;
}


void
dg_grant_free(dg_grant_t *g)
{
    dg_arena_t    arena;
    dg_rgrant_t  *rg;

    if (g == NULL || !g->runtime) {
        return;
    }

    rg = (dg_rgrant_t *) g;

    if (rg->rules != NULL) {
        dg_mask_rules_free(rg->rules);
    }

    arena = rg->arena;
    dg_arena_free(&arena);
}
