/*
 * datagate core: the "abuse:" mapping of a dataset or a grant (abuse
 * detection, dg_abuse.h; policy/schema.md, "Abuse detection").
 *
 *   abuse: {id_param: id, distinct: 500/10m, sequential: 20,
 *           volume: {factor: 5, floor: 1000/h}, action: suspend,
 *           suspend_for: 1h}
 *
 * A grant's mapping replaces its dataset's for the requests the grant
 * allows; a grant's "abuse: off" turns detection off for them.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_policy_int.h"


#define DG_ABUSE_PARAM_MAX      128


static const char *dg_abuse_keys[] = {
    "id_param", "distinct", "sequential", "volume", "action", "suspend_for",
    NULL
};
static const char *dg_abuse_volume_keys[] = {
    "factor", "floor", "record_floor", NULL
};


/* "N/h" or "N/hour": a count per hour */
static int
dg_abuse_per_hour(dg_load_t *L, const char *file, const dg_ynode_t *v,
    const char *path, const char *key, uint32_t *out)
{
    char        *end;
    const char  *slash;
    unsigned long n;

    if (dg_expect(L, file, v, path, key, DG_Y_SCALAR) != 0) {
        return -1;
    }

    slash = strchr(v->str, '/');

    if (slash == NULL || v->str[0] < '0' || v->str[0] > '9'
        || (strcmp(slash, "/h") != 0 && strcmp(slash, "/hour") != 0))
    {
        return dg_err(L, file, v->line, path, key,
                      "bad rate '%.32s': expected calls per hour such as "
                      "1000/h", v->str);
    }

    n = strtoul(v->str, &end, 10);

    if (end != slash || n > DG_ABUSE_DISTINCT_MAX * 100UL) {
        return dg_err(L, file, v->line, path, key,
                      "bad rate '%.32s': expected calls per hour such as "
                      "1000/h", v->str);
    }

    *out = (uint32_t) n;

    return 0;
}


static int
dg_abuse_volume_load(dg_load_t *L, const char *file, const dg_ynode_t *v,
    const char *path, dg_abuse_conf_t *a)
{
    char               vpath[128];
    char              *end;
    double             f;
    const dg_ynode_t  *x;

    snprintf(vpath, sizeof(vpath), "%s.volume", path);

    if (v->type != DG_Y_MAP) {
        return dg_err(L, file, v->line, vpath, NULL,
                      "expected a mapping such as {factor: 5, floor: "
                      "1000/h}, got %s", dg_ytype_name(v));
    }

    if (dg_check_keys(L, file, v, vpath, dg_abuse_volume_keys) != 0) {
        return -1;
    }

    x = dg_ymap_get(v, "factor");
    if (x == NULL) {
        return dg_err(L, file, v->line, vpath, "factor",
                      "missing required key 'factor' (how many times the "
                      "consumer's own baseline for the hour alerts, e.g. "
                      "5)");
    }

    if (dg_expect(L, file, x, vpath, "factor", DG_Y_SCALAR) != 0) {
        return -1;
    }

    f = strtod(x->str, &end);

    if (end == x->str || *end != '\0' || !isfinite(f) || f <= 1.0
        || f > DG_ABUSE_FACTOR_MAX)
    {
        return dg_err(L, file, x->line, vpath, "factor",
                      "bad factor '%.32s': a number above 1 and at most "
                      "%g", x->str, DG_ABUSE_FACTOR_MAX);
    }

    a->factor = f;

    x = dg_ymap_get(v, "floor");
    if (x == NULL) {
        return dg_err(L, file, v->line, vpath, "floor",
                      "missing required key 'floor' (the fewest calls per "
                      "hour that may alert, e.g. 1000/h)");
    }

    if (dg_abuse_per_hour(L, file, x, vpath, "floor", &a->floor) != 0) {
        return -1;
    }

    a->record_floor = a->floor;

    x = dg_ymap_get(v, "record_floor");
    if (x != NULL
        && dg_abuse_per_hour(L, file, x, vpath, "record_floor",
                             &a->record_floor) != 0)
    {
        return -1;
    }

    return 0;
}


int
dg_load_abuse(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, int grant, dg_abuse_conf_t *a)
{
    char               apath[96];
    char              *end;
    int64_t            d;
    size_t             i;
    unsigned           on;
    const char        *slash;
    unsigned long      n;
    const dg_ynode_t  *v, *x;
    dg_str_t           s;

    memset(a, 0, sizeof(dg_abuse_conf_t));

    v = dg_ymap_get(it, "abuse");
    if (v == NULL) {
        return 0;
    }

    snprintf(apath, sizeof(apath), "%s.abuse", path);

    a->src_file = file;
    a->src_line = v->line;

    if (v->type == DG_Y_SCALAR) {
        if (dg_onoff(L, file, v, path, "abuse", &on) != 0) {
            return -1;
        }

        if (on) {
            return dg_err(L, file, v->line, path, "abuse",
                          "expected a mapping such as {distinct: 500/10m, "
                          "sequential: 20}%s", grant ? ", or off" : "");
        }

        /* off: on a grant, the dataset's detection does not apply */
        a->set = 1;
        a->off = 1;

        return 0;
    }

    if (v->type != DG_Y_MAP) {
        return dg_err(L, file, v->line, path, "abuse",
                      "expected a mapping such as {distinct: 500/10m, "
                      "sequential: 20}, got %s", dg_ytype_name(v));
    }

    if (dg_check_keys(L, file, v, apath, dg_abuse_keys) != 0) {
        return -1;
    }

    a->set = 1;
    a->action = DG_ABUSE_ALERT;

    /* id_param: the query parameter holding the record identifier */

    if (dg_get_text(L, file, v, apath, "id_param", 0, DG_ABUSE_PARAM_MAX, &s,
                    &x) < 0)
    {
        return -1;
    }

    if (x != NULL) {
        if (s.len == 0) {
            return dg_err(L, file, x->line, apath, "id_param",
                          "empty parameter name");
        }

        for (i = 0; i < s.len; i++) {
            unsigned char  c = (unsigned char) s.data[i];

            if (c <= 0x20 || c >= 0x7f || strchr("&=;#?%+[]", c) != NULL) {
                return dg_err(L, file, x->line, apath, "id_param",
                              "bad parameter name '%.64s': printable ASCII "
                              "without spaces and without & = ; # ? %% + [ ]",
                              s.data);
            }
        }

        a->id_param = s.data;
        a->id_param_len = s.len;
    }

    /* distinct: N/DURATION */

    x = dg_ymap_get(v, "distinct");
    if (x != NULL) {
        if (dg_expect(L, file, x, apath, "distinct", DG_Y_SCALAR) != 0) {
            return -1;
        }

        slash = strchr(x->str, '/');
        n = 0;
        d = -1;
        end = NULL;

        if (slash != NULL && x->str[0] >= '0' && x->str[0] <= '9') {
            n = strtoul(x->str, &end, 10);
            d = dg_abuse_duration_parse(slash + 1, strlen(slash + 1));
        }

        if (slash == NULL || end != slash || n == 0
            || n > DG_ABUSE_DISTINCT_MAX || d < DG_ABUSE_WINDOW_MIN
            || d > DG_ABUSE_WINDOW_MAX)
        {
            return dg_err(L, file, x->line, apath, "distinct",
                          "bad value '%.32s': expected identifiers per "
                          "window such as 500/10m (1 to %u, a window of "
                          "1m to 1d in s, m, h or d)", x->str,
                          DG_ABUSE_DISTINCT_MAX);
        }

        a->distinct = (uint32_t) n;
        a->window = (uint32_t) d;
        a->hll_p = dg_abuse_hll_p(a->distinct);
    }

    /* sequential: N */

    if (dg_get_uint(L, file, v, apath, "sequential", 0, 2,
                    DG_ABUSE_SEQUENTIAL_MAX, &on) < 0)
    {
        return -1;
    }

    if (dg_ymap_get(v, "sequential") != NULL) {
        a->sequential = on;
    }

    /* volume: {factor, floor, record_floor} */

    x = dg_ymap_get(v, "volume");
    if (x != NULL && dg_abuse_volume_load(L, file, x, apath, a) != 0) {
        return -1;
    }

    if (a->distinct == 0 && a->sequential == 0 && a->factor == 0) {
        return dg_err(L, file, v->line, path, "abuse",
                      "no detector: give distinct, sequential or volume");
    }

    if (a->id_param && a->distinct == 0 && a->sequential == 0) {
        return dg_err(L, file, v->line, apath, "id_param",
                      "identifiers are read only for distinct or "
                      "sequential, and neither is set");
    }

    /* action, suspend_for */

    x = dg_ymap_get(v, "action");
    if (x != NULL) {
        if (dg_expect(L, file, x, apath, "action", DG_Y_SCALAR) != 0) {
            return -1;
        }

        if (strcmp(x->str, "suspend") == 0) {
            a->action = DG_ABUSE_SUSPEND;
        } else if (strcmp(x->str, "alert") != 0) {
            return dg_err(L, file, x->line, apath, "action",
                          "expected alert or suspend, got '%.32s'", x->str);
        }
    }

    a->suspend_for = DG_ABUSE_SUSPEND_DEFAULT;

    x = dg_ymap_get(v, "suspend_for");
    if (x != NULL) {
        if (dg_expect(L, file, x, apath, "suspend_for", DG_Y_SCALAR) != 0) {
            return -1;
        }

        if (a->action != DG_ABUSE_SUSPEND) {
            return dg_err(L, file, x->line, apath, "suspend_for",
                          "only with action: suspend");
        }

        d = dg_abuse_duration_parse(x->str, x->len);

        if (d < 1 || d > DG_ABUSE_SUSPEND_MAX) {
            return dg_err(L, file, x->line, apath, "suspend_for",
                          "bad duration '%.32s': 1s to 30d, in s, m, h or "
                          "d (e.g. 1h)", x->str);
        }

        a->suspend_for = (uint32_t) d;
    }

    return 0;
}


const dg_abuse_conf_t *
dg_abuse_for(const dg_dataset_t *ds, const dg_grant_t *g)
{
    const dg_abuse_conf_t  *a;

    if (ds == NULL) {
        return NULL;
    }

    a = (g != NULL && g->abuse.set) ? &g->abuse : &ds->abuse;

    return (a->set && !a->off) ? a : NULL;
}
