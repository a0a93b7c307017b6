/*
 * datagate core: the consumer's catalogue, and the field plan as explain
 * and the catalogue describe it.
 *
 * The document is written in one pass over the compiled policy into the
 * caller's buffer, snprintf-style, so that the nginx glue can size it
 * first and write it into request memory, and the command-line tool into
 * malloc'ed memory, from the same code.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dg_audit.h"
#include "dg_catalogue.h"
#include "dg_util.h"


#define DG_CAT_TZ_OFFSET    (8 * 3600)      /* grant days are UTC+8 */
#define DG_CAT_NUM_MAX      64              /* one formatted number */
#define DG_CAT_SPEC_MAX     64              /* "keep(12,4)" */


/* ---- the field plan ----------------------------------------------------- */

static int
dg_grant_drops_key(const dg_grant_t *g, const dg_str_t *key)
{
    size_t  i;

    for (i = 0; g != NULL && i < g->ndrop; i++) {
        if (g->drop[i].len == key->len
            && memcmp(g->drop[i].data, key->data, key->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static int
dg_dataset_has_key(const dg_dataset_t *d, const dg_str_t *key)
{
    size_t  j;

    for (j = 0; j < d->nfields; j++) {
        if (d->fields[j].key.len == key->len
            && memcmp(d->fields[j].key.data, key->data, key->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


int
dg_plan_field(const dg_policy_t *p, const dg_dataset_t *d,
    const dg_consumer_t *c, const dg_grant_t *g, const dg_plan_t *pl,
    size_t i, dg_plan_field_t *f)
{
    int                cls;
    size_t             k, n;
    const dg_class_t  *cl;

    if (pl == NULL || i >= pl->nfields || pl->actions == NULL) {
        return -1;
    }

    memset(f, 0, sizeof(dg_plan_field_t));

    /* the plan's fields: the dataset's, then the grant's drop keys that
     * are no field of it, in the grant's order (dg_plan_grant()) */

    if (i < d->nfields) {
        f->key = d->fields[i].key;

    } else {
        n = d->nfields;

        for (k = 0; g != NULL && k < g->ndrop; k++) {
            if (dg_dataset_has_key(d, &g->drop[k])) {
                continue;
            }

            if (n++ == i) {
                f->key = g->drop[k];
                break;
            }
        }

        if (f->key.data == NULL) {
            return -1;
        }
    }

    cls = pl->classes != NULL ? pl->classes[i] : -1;
    cl = cls >= 0 && (size_t) cls < p->nclasses ? &p->classes[cls] : NULL;

    f->cls = cl;
    f->action = &pl->actions[i];

    if (f->action->method == DG_MASK_DROP && dg_grant_drops_key(g, &f->key)) {
        f->rule = DG_PF_DROPPED;

    } else if (cl == NULL) {
        f->rule = DG_PF_OTHER;

    } else if (cl->level <= c->clearance) {
        f->rule = DG_PF_CLEAR;

    } else if (cl->mask.method == DG_MASK_CLEAR) {
        f->rule = DG_PF_CLASS_CLEAR;

    } else if (f->action->method == DG_MASK_CLEAR) {
        f->rule = DG_PF_REVEALED;

    } else {
        f->rule = DG_PF_MASKED;
    }

    return 0;
}


const char *
dg_plan_action_name(const dg_mask_spec_t *action)
{
    switch (action->method) {
    case DG_MASK_CLEAR:
        return "clear";
    case DG_MASK_DROP:
        return "dropped";
    default:
        return "masked";
    }
}


void
dg_limits_of(const dg_dataset_t *d, const dg_grant_t *g, dg_limits_t *l)
{
    memset(l, 0, sizeof(dg_limits_t));

    if (g != NULL && g->rate_str.len) {
        l->rate = g->rate_str;
        l->rate_grant = 1;

    } else {
        l->rate = d->rate_str;
    }

    if (g != NULL && g->quota_str.len) {
        l->quota = g->quota_str;
        l->quota_grant = 1;

    } else {
        l->quota = d->quota_str;
    }
}


/* ---- output: snprintf-style into the caller's buffer ------------------ */

typedef struct {
    char                       *buf;
    size_t                      cap;
    size_t                      len;        /* of the whole document */
    size_t                      written;    /* in buf */
    unsigned                    full:1;     /* a piece did not fit: none
                                               after it is written */
} dg_cw_t;


static void
dg_cw_mem(dg_cw_t *w, const char *s, size_t n)
{
    if (!w->full && w->len + n < w->cap) {
        memcpy(w->buf + w->len, s, n);
        w->written = w->len + n;

    } else {
        w->full = 1;
    }

    w->len += n;
}


static void
dg_cw_str(dg_cw_t *w, const char *s)
{
    dg_cw_mem(w, s, strlen(s));
}


static void
dg_cw_fmt(dg_cw_t *w, const char *fmt, ...)
{
    int      n;
    char     tmp[DG_CAT_NUM_MAX];
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);

    if (n < 0) {
        n = 0;
    }

    if ((size_t) n >= sizeof(tmp)) {
        n = sizeof(tmp) - 1;    /* numbers and short words only */
    }

    dg_cw_mem(w, tmp, (size_t) n);
}


/* a JSON string, quoted */
static void
dg_cw_json(dg_cw_t *w, const char *s, size_t n)
{
    size_t  need;

    need = dg_json_escape_len((const uint8_t *) s, n);

    dg_cw_mem(w, "\"", 1);

    if (!w->full && w->len + need < w->cap) {
        (void) dg_json_escape(w->buf + w->len, need, (const uint8_t *) s, n,
                              NULL);
        w->written = w->len + need;

    } else {
        w->full = 1;
    }

    w->len += need;

    dg_cw_mem(w, "\"", 1);
}


static void
dg_cw_jstr(dg_cw_t *w, const dg_str_t *s)
{
    dg_cw_json(w, s->data ? s->data : "", s->data ? s->len : 0);
}


/* "key": */
static void
dg_cw_key(dg_cw_t *w, int *first, const char *key)
{
    if (!*first) {
        dg_cw_mem(w, ",", 1);
    }

    *first = 0;
    dg_cw_json(w, key, strlen(key));
    dg_cw_mem(w, ":", 1);
}


static void
dg_cw_bool(dg_cw_t *w, int v)
{
    dg_cw_str(w, v ? "true" : "false");
}


/* a grant day "YYYY-MM-DD" (UTC+8), or null for an open end */
static void
dg_cw_day(dg_cw_t *w, time_t t)
{
    char  day[11];

    if (t == 0) {
        dg_cw_str(w, "null");
        return;
    }

    dg_date_format(t, day);
    dg_cw_json(w, day, strlen(day));
}


/* ---- the catalogue ------------------------------------------------------ */

static const char *
dg_share_name(dg_share_e s)
{
    switch (s) {
    case DG_SHARE_CONDITIONAL:
        return "conditional";
    case DG_SHARE_UNCONDITIONAL:
        return "unconditional";
    default:
        return "none";
    }
}


static void
dg_cat_methods(dg_cw_t *w, const dg_policy_t *p, unsigned bits)
{
    int          first;
    size_t       len;
    unsigned     bit;
    const char  *name;

    dg_cw_mem(w, "[", 1);
    first = 1;

    for (bit = 1; bit != 0; bit <<= 1) {
        if (!(bits & bit)) {
            continue;
        }

        name = dg_method_name(p, bit, &len);
        if (name == NULL) {
            continue;
        }

        if (!first) {
            dg_cw_mem(w, ",", 1);
        }

        first = 0;
        dg_cw_json(w, name, len);
    }

    dg_cw_mem(w, "]", 1);
}


static void
dg_cat_limit(dg_cw_t *w, const dg_str_t *v, unsigned by_grant)
{
    int  first;

    if (v->len == 0) {
        dg_cw_str(w, "null");
        return;
    }

    first = 1;
    dg_cw_mem(w, "{", 1);
    dg_cw_key(w, &first, "limit");
    dg_cw_jstr(w, v);
    dg_cw_key(w, &first, "set_by");
    dg_cw_str(w, by_grant ? "\"grant\"" : "\"dataset\"");
    dg_cw_mem(w, "}", 1);
}


static const char *
dg_pf_rule_name(dg_pf_rule_e r)
{
    switch (r) {
    case DG_PF_CLEAR:
        return "clearance";
    case DG_PF_CLASS_CLEAR:
        return "class_clear";
    case DG_PF_REVEALED:
        return "revealed";
    case DG_PF_MASKED:
        return "level";
    case DG_PF_DROPPED:
        return "dropped";
    default:
        return "plan";
    }
}


static void
dg_cat_fields(dg_cw_t *w, const dg_policy_t *p, const dg_dataset_t *d,
    const dg_consumer_t *c, const dg_grant_t *g, const dg_plan_t *pl)
{
    int              first, ffirst;
    char             spec[DG_CAT_SPEC_MAX];
    size_t           i;
    dg_plan_field_t  f;

    dg_cw_mem(w, "[", 1);
    first = 1;

    for (i = 0; pl != NULL && i < pl->nfields; i++) {
        if (dg_plan_field(p, d, c, g, pl, i, &f) != 0) {
            continue;
        }

        if (!first) {
            dg_cw_mem(w, ",", 1);
        }

        first = 0;
        ffirst = 1;

        dg_cw_mem(w, "{", 1);
        dg_cw_key(w, &ffirst, "key");
        dg_cw_jstr(w, &f.key);

        dg_cw_key(w, &ffirst, "class");
        if (f.cls) {
            dg_cw_jstr(w, &f.cls->id);
            dg_cw_key(w, &ffirst, "level");
            dg_cw_fmt(w, "%u", f.cls->level);

        } else {
            dg_cw_str(w, "null");
        }

        dg_cw_key(w, &ffirst, "action");
        dg_cw_str(w, "\"");
        dg_cw_str(w, dg_plan_action_name(f.action));
        dg_cw_str(w, "\"");

        if (f.action->method != DG_MASK_CLEAR
            && f.action->method != DG_MASK_DROP)
        {
            dg_mask_spec_str(f.action, spec, sizeof(spec));
            dg_cw_key(w, &ffirst, "method");
            dg_cw_json(w, spec, strlen(spec));
        }

        dg_cw_key(w, &ffirst, "why");
        dg_cw_str(w, "\"");
        dg_cw_str(w, dg_pf_rule_name(f.rule));
        dg_cw_str(w, "\"");

        dg_cw_mem(w, "}", 1);
    }

    dg_cw_mem(w, "]", 1);
}


/* one way into a dataset: its clearance (g NULL) or grant g */
static void
dg_cat_access(dg_cw_t *w, const dg_policy_t *p, const dg_dataset_t *d,
    const dg_consumer_t *c, const dg_grant_t *g, time_t now)
{
    int          first;
    size_t       i;
    dg_limits_t  l;

    first = 1;
    dg_cw_mem(w, "{", 1);

    dg_cw_key(w, &first, "by");
    dg_cw_str(w, g ? "\"grant\"" : "\"clearance\"");

    dg_cw_key(w, &first, "purposes");

    if (g == NULL) {
        /* any purpose the policy knows */
        dg_cw_str(w, "\"any\"");

    } else {
        dg_cw_mem(w, "[", 1);

        for (i = 0; i < g->npurposes; i++) {
            if (i) {
                dg_cw_mem(w, ",", 1);
            }
            dg_cw_jstr(w, &g->purposes[i]->id);
        }

        dg_cw_mem(w, "]", 1);
    }

    if (g != NULL) {
        /* whether one is needed, never the number itself */
        dg_cw_key(w, &first, "approval_required");
        dg_cw_bool(w, g->approval.len != 0);

        dg_cw_key(w, &first, "valid");
        dg_cw_str(w, "{\"from\":");
        dg_cw_day(w, g->valid_from);
        dg_cw_str(w, ",\"until\":");
        dg_cw_day(w, g->valid_until);
        dg_cw_str(w, "}");

        dg_cw_key(w, &first, "in_force");
        dg_cw_bool(w, !(g->valid_from && now < g->valid_from)
                      && !(g->valid_until && now > g->valid_until));
    }

    dg_cw_key(w, &first, "methods");
    dg_cat_methods(w, p, g ? dg_grant_methods(g) : d->methods);

    dg_limits_of(d, g, &l);

    dg_cw_key(w, &first, "rate");
    dg_cat_limit(w, &l.rate, l.rate_grant);
    dg_cw_key(w, &first, "quota");
    dg_cat_limit(w, &l.quota, l.quota_grant);

    dg_cw_key(w, &first, "fields");
    dg_cat_fields(w, p, d, c, g,
                  g ? &g->plan : &d->plan_by_clearance[c->clearance]);

    dg_cw_mem(w, "}", 1);
}


/* 1: the consumer can reach the dataset at all (some day, some purpose) */
static int
dg_cat_reaches(const dg_policy_t *p, const dg_consumer_t *c,
    const dg_dataset_t *d)
{
    switch (d->share) {
    case DG_SHARE_UNCONDITIONAL:
        return c->clearance >= d->level && c->clearance <= DG_LEVEL_MAX;
    case DG_SHARE_CONDITIONAL:
        return dg_policy_grants(p, c, d, NULL, 0) > 0;
    default:
        return 0;
    }
}


static void
dg_cat_dataset(dg_cw_t *w, const dg_policy_t *p, const dg_consumer_t *c,
    const dg_dataset_t *d, const dg_catalogue_opts_t *o)
{
    int                        first, lfirst, afirst;
    size_t                     i;
    const dg_grant_t          *g;
    const dg_catalogue_loc_t  *loc;

    first = 1;
    dg_cw_mem(w, "{", 1);

    dg_cw_key(w, &first, "id");
    dg_cw_jstr(w, &d->id);
    dg_cw_key(w, &first, "name");
    dg_cw_jstr(w, &d->name);
    dg_cw_key(w, &first, "provider");
    dg_cw_jstr(w, &d->provider);
    dg_cw_key(w, &first, "share");
    dg_cw_json(w, dg_share_name(d->share), strlen(dg_share_name(d->share)));
    dg_cw_key(w, &first, "level");
    dg_cw_fmt(w, "%u", d->level);
    dg_cw_key(w, &first, "level_name");
    dg_cw_jstr(w, &p->level_names[d->level <= DG_LEVEL_MAX ? d->level : 0]);

    if (o->with_locations) {
        dg_cw_key(w, &first, "locations");
        dg_cw_mem(w, "[", 1);
        lfirst = 1;

        for (i = 0; i < o->nlocs; i++) {
            loc = &o->locs[i];

            if (loc->dataset != d) {
                continue;
            }

            if (!lfirst) {
                dg_cw_mem(w, ",", 1);
            }

            lfirst = 0;
            dg_cw_str(w, "{\"path\":");
            dg_cw_json(w, loc->path, loc->len);
            dg_cw_str(w, ",\"match\":");
            dg_cw_json(w, loc->match, strlen(loc->match));
            dg_cw_mem(w, "}", 1);
        }

        dg_cw_mem(w, "]", 1);
    }

    dg_cw_key(w, &first, "unlisted");
    dg_cw_str(w, d->unlisted_drop ? "\"drop\"" : "\"pass\"");
    dg_cw_key(w, &first, "detect");
    dg_cw_bool(w, d->detect);

    dg_cw_key(w, &first, "access");
    dg_cw_mem(w, "[", 1);
    afirst = 1;

    if (d->share == DG_SHARE_UNCONDITIONAL) {
        dg_cat_access(w, p, d, c, NULL, o->now);
        afirst = 0;
    }

    /* the consumer's own grants on it, in policy order */

    for (i = 0; i < p->ngrants; i++) {
        g = &p->grants[i];

        if (g->consumer != c || g->dataset != d) {
            continue;
        }

        if (!afirst) {
            dg_cw_mem(w, ",", 1);
        }

        afirst = 0;
        dg_cat_access(w, p, d, c, g, o->now);
    }

    dg_cw_mem(w, "]}", 2);
}


/* 1: one of the consumer's grants on a dataset it reaches names pu */
static int
dg_cat_purpose_granted(const dg_policy_t *p, const dg_consumer_t *c,
    const dg_purpose_t *pu)
{
    size_t             i, k;
    const dg_grant_t  *g;

    for (i = 0; i < p->ngrants; i++) {
        g = &p->grants[i];

        if (g->consumer != c || !dg_cat_reaches(p, c, g->dataset)) {
            continue;
        }

        for (k = 0; k < g->npurposes; k++) {
            if (g->purposes[k] == pu) {
                return 1;
            }
        }
    }

    return 0;
}


size_t
dg_catalogue_json(const dg_policy_t *p, const dg_consumer_t *c,
    const dg_catalogue_opts_t *o, char *buf, size_t cap)
{
    int                  first, dfirst, pfirst;
    char                 at[32];
    size_t               i;
    time_t               s;
    dg_cw_t              w;
    struct tm            tm;
    const dg_dataset_t  *d;
    const dg_purpose_t  *pu;

    memset(&w, 0, sizeof(dg_cw_t));
    w.buf = buf;
    w.cap = cap;

    s = o->now + DG_CAT_TZ_OFFSET;

    if (gmtime_r(&s, &tm) == NULL
        || strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%S+08:00", &tm) == 0)
    {
        at[0] = '\0';
    }

    first = 1;
    dg_cw_mem(&w, "{", 1);

    dg_cw_key(&w, &first, "consumer");
    dg_cw_str(&w, "{\"id\":");
    dg_cw_jstr(&w, &c->id);
    dg_cw_str(&w, ",\"org\":");
    dg_cw_jstr(&w, &c->org);
    dg_cw_str(&w, ",\"clearance\":");
    dg_cw_fmt(&w, "%u", c->clearance);
    dg_cw_str(&w, ",\"clearance_name\":");
    dg_cw_jstr(&w, &p->level_names[c->clearance <= DG_LEVEL_MAX
                                   ? c->clearance : 0]);
    dg_cw_mem(&w, "}", 1);

    dg_cw_key(&w, &first, "policy_version");
    dg_cw_json(&w, p->version_hex, strlen(p->version_hex));
    dg_cw_key(&w, &first, "at");
    dg_cw_json(&w, at, strlen(at));

    /*
     * The purposes its own grants name, with their names.  Access by
     * clearance takes any purpose the policy knows ("any"); the others
     * are not listed: what another consumer was granted for is not this
     * one's to read
     */

    dg_cw_key(&w, &first, "purposes");
    dg_cw_mem(&w, "[", 1);
    pfirst = 1;

    for (i = 0; i < p->npurposes; i++) {
        pu = &p->purposes[i];

        if (!dg_cat_purpose_granted(p, c, pu)) {
            continue;
        }

        if (!pfirst) {
            dg_cw_mem(&w, ",", 1);
        }

        pfirst = 0;
        dg_cw_str(&w, "{\"id\":");
        dg_cw_jstr(&w, &pu->id);
        dg_cw_str(&w, ",\"name\":");
        dg_cw_jstr(&w, &pu->name);
        dg_cw_mem(&w, "}", 1);
    }

    dg_cw_mem(&w, "]", 1);

    dg_cw_key(&w, &first, "datasets");
    dg_cw_mem(&w, "[", 1);
    dfirst = 1;

    for (i = 0; i < p->ndatasets; i++) {
        d = &p->datasets[i];

        if (!dg_cat_reaches(p, c, d)) {
            continue;
        }

        if (!dfirst) {
            dg_cw_mem(&w, ",", 1);
        }

        dfirst = 0;
        dg_cat_dataset(&w, p, c, d, o);
    }

    dg_cw_mem(&w, "]}\n", 3);

    if (cap > 0) {
        w.buf[w.written] = '\0';
    }

    return w.len;
}
