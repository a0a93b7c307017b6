/*
 * datagate report: the counts (report.h).
 *
 * Names are interned once (an id each); a group is keyed by its level and
 * the name ids of its dimensions; what a group counts by name (denials by
 * reason, masked values by class) are cells keyed by (group, kind, name).
 * Each table is open-addressed and grows up to its bound.
 */

#include <stdlib.h>
#include <string.h>

#include "report.h"


#define DG_RINDEX_FIRST         1024    /* slots of an index at first */
#define DG_RTEXT_FIRST          65536   /* bytes of name text at first */
#define DG_RFREE                UINT32_MAX

#define dg_rmix(h, v)           (((h) ^ (v)) * 0x9e3779b1u)


static const char  *dg_rname_fixed[DG_RNAME_FIRST] = {
    "", "(other)", "(unknown)", "(not in policy)"
};

static const char  *dg_rdim_names[DG_RDIMS] = {
    "org", "consumer", "dataset", "purpose"
};


static uint32_t dg_report_intern(dg_report_t *rp, const char *s,
    size_t len);
static uint32_t dg_report_name_add(dg_report_t *rp, const char *s,
    size_t len, uint32_t hash);
static uint32_t dg_report_org(dg_report_t *rp, uint32_t consumer);
static uint32_t dg_report_purpose(dg_report_t *rp, const dg_ascan_t *r);
static dg_rgroup_t *dg_report_group(dg_report_t *rp, uint32_t level,
    const uint32_t *key);
static uint32_t dg_report_group_hash(uint32_t level, const uint32_t *key);
static int dg_report_cell_add(dg_report_t *rp, uint32_t group,
    uint32_t kind, uint32_t name, uint64_t n);
static int dg_report_day(dg_report_t *rp, const dg_ascan_t *r);
static void dg_report_count(dg_report_t *rp, dg_rgroup_t *g,
    const dg_ascan_t *r);
static void dg_report_minute(dg_report_t *rp, dg_rgroup_t *g,
    const dg_ascan_t *r);
static int dg_report_index_grow(uint32_t **index, uint32_t *mask);
static uint32_t dg_hash_mem(const char *s, size_t len);
static int dg_report_group_cmp(const void *a, const void *b);
static int dg_report_cell_cmp(const void *a, const void *b);
static int dg_report_id_cmp(const void *a, const void *b);

static uint64_t
dg_radd(uint64_t a, uint64_t b)
{
    return (a > UINT64_MAX - b) ? UINT64_MAX : a + b;
}


/* for the qsort comparators */
static const dg_report_t  *dg_report_sorting;


int
dg_report_init(dg_report_t *rp)
{
    uint32_t  i;

    rp->text_cap = DG_RTEXT_FIRST;
    rp->text = malloc(rp->text_cap);
    rp->name_mask = DG_RINDEX_FIRST - 1;
    rp->name_index = malloc(DG_RINDEX_FIRST * sizeof(uint32_t));
    rp->names = malloc(DG_RINDEX_FIRST / 2 * sizeof(dg_rname_t));
    rp->group_mask = DG_RINDEX_FIRST - 1;
    rp->group_index = malloc(DG_RINDEX_FIRST * sizeof(uint32_t));
    rp->groups_cap = DG_RINDEX_FIRST / 2;
    rp->groups = malloc(rp->groups_cap * sizeof(dg_rgroup_t));
    rp->cell_mask = DG_RINDEX_FIRST - 1;
    rp->cell_index = malloc(DG_RINDEX_FIRST * sizeof(uint32_t));
    rp->cells_cap = DG_RINDEX_FIRST / 2;
    rp->cells = malloc(rp->cells_cap * sizeof(dg_rcell_t));
    rp->days = malloc(DG_REPORT_DAYS_MAX * sizeof(dg_rday_t));

    if (rp->text == NULL || rp->name_index == NULL || rp->names == NULL
        || rp->group_index == NULL || rp->groups == NULL
        || rp->cell_index == NULL || rp->cells == NULL || rp->days == NULL)
    {
        return -1;
    }

    memset(rp->name_index, 0xff, DG_RINDEX_FIRST * sizeof(uint32_t));
    memset(rp->group_index, 0xff, DG_RINDEX_FIRST * sizeof(uint32_t));
    memset(rp->cell_index, 0xff, DG_RINDEX_FIRST * sizeof(uint32_t));

    for (i = 0; i < DG_RNAME_FIRST; i++) {
        (void) dg_report_name_add(rp, dg_rname_fixed[i],
                                  strlen(dg_rname_fixed[i]),
                                  i == DG_RNAME_NULL ? 0
                                  : dg_hash_mem(dg_rname_fixed[i],
                                                strlen(dg_rname_fixed[i])));
    }

    return 0;
}


void
dg_report_free(dg_report_t *rp)
{
    free(rp->text);
    free(rp->names);
    free(rp->name_index);
    free(rp->groups);
    free(rp->group_index);
    free(rp->cells);
    free(rp->cell_index);
    free(rp->days);
}


const char *
dg_report_dim_name(int dim)
{
    return dg_rdim_names[dim];
}


const char *
dg_report_name_str(const dg_report_t *rp, uint32_t id, size_t *len)
{
    *len = rp->names[id].len;
    return rp->text + rp->names[id].off;
}


const char *
dg_report_title(const dg_report_t *rp, int dim, uint32_t id, size_t *len)
{
    const char          *s;
    size_t               n;
    const dg_dataset_t  *d;
    const dg_purpose_t  *p;

    if (rp->policy == NULL || id < DG_RNAME_FIRST) {
        return NULL;
    }

    s = dg_report_name_str(rp, id, &n);

    if (dim == DG_RDIM_DATASET) {
        d = dg_policy_dataset(rp->policy, s, n);
        if (d && d->name.len > 0 && (d->name.len != n
                                     || memcmp(d->name.data, s, n) != 0))
        {
            *len = d->name.len;
            return d->name.data;
        }

    } else if (dim == DG_RDIM_PURPOSE) {
        p = dg_policy_purpose(rp->policy, s, n);
        if (p && p->name.len > 0 && (p->name.len != n
                                     || memcmp(p->name.data, s, n) != 0))
        {
            *len = p->name.len;
            return p->name.data;
        }
    }

    return NULL;
}


const dg_rgroup_t *
dg_report_total(const dg_report_t *rp)
{
    return rp->ngroups ? &rp->groups[0] : NULL;
}


int
dg_report_add(dg_report_t *rp, const dg_ascan_t *r)
{
    int           i;
    size_t        j;
    uint32_t      dim[DG_RDIMS], key[DG_RDIMS], cls, levels[3], nlevels,
                  g[3];
    dg_rgroup_t  *gr;

    rp->counted++;
    rp->lost = dg_radd(rp->lost, r->lost);

    dim[DG_RDIM_CONSUMER] = dg_report_intern(rp, r->consumer.data,
                                             r->consumer.len);
    dim[DG_RDIM_DATASET] = dg_report_intern(rp, r->dataset.data,
                                            r->dataset.len);
    dim[DG_RDIM_PURPOSE] = dg_report_purpose(rp, r);
    dim[DG_RDIM_ORG] = dg_report_org(rp, dim[DG_RDIM_CONSUMER]);

    if (dg_report_day(rp, r) != 0) {
        return -1;
    }

    /* the whole, the first dimension alone (when there are more), all */
    nlevels = 0;
    levels[nlevels++] = DG_RLEVEL_TOTAL;

    if (rp->nby > 1) {
        levels[nlevels++] = DG_RLEVEL_SUB;
    }

    if (rp->nby > 0) {
        levels[nlevels++] = DG_RLEVEL_GROUP;
    }

    for (j = 0; j < nlevels; j++) {
        memset(key, 0, sizeof(key));

        if (levels[j] == DG_RLEVEL_SUB) {
            key[0] = dim[rp->by[0]];

        } else if (levels[j] == DG_RLEVEL_GROUP) {
            for (i = 0; i < rp->nby; i++) {
                key[i] = dim[rp->by[i]];
            }
        }

        /* an index: a new group may move the others */
        gr = dg_report_group(rp, levels[j], key);
        if (gr == NULL) {
            return -1;
        }

        g[j] = gr - rp->groups;
    }

    for (j = 0; j < nlevels; j++) {
        dg_report_count(rp, &rp->groups[g[j]], r);
    }

    /* the cells, after the groups: dg_report_group() may move them */
    if (r->denied || (r->reason.data != NULL
                      && !(r->reason.len == 2
                           && memcmp(r->reason.data, "ok", 2) == 0)))
    {
        cls = dg_report_intern(rp, r->reason.data, r->reason.len);

        for (j = 0; j < nlevels; j++) {
            if (dg_report_cell_add(rp, g[j],
                                   r->denied ? DG_RCELL_DENIED
                                   : DG_RCELL_INCOMPLETE, cls, 1) != 0)
            {
                return -1;
            }
        }
    }

    for (i = 0; (size_t) i < r->nmasked; i++) {
        if (r->masked[i].count == 0) {
            continue;
        }

        cls = dg_report_intern(rp, r->masked[i].name.data,
                               r->masked[i].name.len);

        for (j = 0; j < nlevels; j++) {
            if (dg_report_cell_add(rp, g[j], DG_RCELL_MASKED,
                                   cls, r->masked[i].count) != 0)
            {
                return -1;
            }
        }
    }

    return 0;
}


static void
dg_report_count(dg_report_t *rp, dg_rgroup_t *g, const dg_ascan_t *r)
{
    g->calls++;

    if (r->allowed) {
        g->allowed++;
        g->bytes = dg_radd(g->bytes, r->bytes);

        if (r->has_records) {
            g->records = dg_radd(g->records, r->records);
            g->with_records++;
        }

    } else {
        g->denied++;
    }

    if (g->calls == 1 || r->time_ms < g->first_ms) {
        g->first_ms = r->time_ms;
        memcpy(g->first, r->time.data, r->time.len);
        g->first[r->time.len] = '\0';
    }

    if (g->calls == 1 || r->time_ms >= g->last_ms) {
        g->last_ms = r->time_ms;
        memcpy(g->last, r->time.data, r->time.len);
        g->last[r->time.len] = '\0';
    }

    dg_report_minute(rp, g, r);
}


/*
 * The busiest minute: the group keeps the counts of the DG_REPORT_RING
 * latest minutes it has seen; a record of an older minute than all of
 * them (the input far out of time order) is counted as late and left
 * out of the peak.
 */
static void
dg_report_minute(dg_report_t *rp, dg_rgroup_t *g, const dg_ascan_t *r)
{
    int            i, hit, empty, oldest;
    int64_t        m;
    dg_rminute_t  *s;

    m = r->time_ms / DG_ASCAN_MS_PER_MIN;
    if (r->time_ms < 0 && r->time_ms % DG_ASCAN_MS_PER_MIN != 0) {
        m--;
    }

    hit = -1;
    empty = -1;
    oldest = -1;

    for (i = 0; i < DG_REPORT_RING; i++) {
        if (g->ring[i].count == 0) {
            if (empty < 0) {
                empty = i;
            }

            continue;
        }

        if (g->ring[i].minute == m) {
            hit = i;
            break;
        }

        if (oldest < 0 || g->ring[i].minute < g->ring[oldest].minute) {
            oldest = i;
        }
    }

    if (hit >= 0) {
        s = &g->ring[hit];

    } else {
        if (empty >= 0) {
            s = &g->ring[empty];

        } else if (g->ring[oldest].minute > m) {
            if (g->level == DG_RLEVEL_TOTAL) {
                rp->late++;
            }

            return;

        } else {
            s = &g->ring[oldest];
        }

        s->minute = m;
        s->count = 0;
    }

    s->count++;

    if (s->count > g->peak) {
        g->peak = s->count;
        g->peak_minute = m;
        memcpy(g->peak_at, r->time.data, DG_ASCAN_MINUTE_LEN);
        g->peak_at[DG_ASCAN_MINUTE_LEN] = '\0';
    }
}


/* calls per day: the record's local date as written */
static int
dg_report_day(dg_report_t *rp, const dg_ascan_t *r)
{
    int         c;
    uint32_t    lo, hi, mid;
    dg_rday_t  *d;

    lo = 0;
    hi = rp->ndays;

    while (lo < hi) {
        mid = (lo + hi) / 2;
        c = memcmp(rp->days[mid].date, r->time.data, DG_ASCAN_DATE_LEN);

        if (c == 0) {
            lo = mid;
            goto found;
        }

        if (c < 0) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    if (rp->ndays == DG_REPORT_DAYS_MAX) {
        rp->folded_days++;
        return 0;
    }

    memmove(&rp->days[lo + 1], &rp->days[lo],
            (rp->ndays - lo) * sizeof(dg_rday_t));
    rp->ndays++;

    d = &rp->days[lo];
    memset(d, 0, sizeof(dg_rday_t));
    memcpy(d->date, r->time.data, DG_ASCAN_DATE_LEN);

found:

    d = &rp->days[lo];
    d->calls++;

    if (r->allowed) {
        d->allowed++;

    } else {
        d->denied++;
    }

    return 0;
}


/* with a policy: the consumer's org */
static uint32_t
dg_report_org(dg_report_t *rp, uint32_t consumer)
{
    const char           *s;
    size_t                n;
    dg_rname_t           *e;
    const dg_consumer_t  *c;

    if (rp->policy == NULL || consumer == DG_RNAME_NULL) {
        return DG_RNAME_NULL;
    }

    if (consumer < DG_RNAME_FIRST) {
        return DG_RNAME_OTHER;
    }

    e = &rp->names[consumer];

    if (e->org == DG_RNAME_NONE) {
        s = dg_report_name_str(rp, consumer, &n);
        c = dg_policy_consumer(rp->policy, s, n);

        if (c == NULL) {
            e->org = DG_RNAME_NOPOLICY;

        } else if (c->org.len == 0) {
            e->org = DG_RNAME_NULL;

        } else {
            /* the new name may move the table: no e across the call */
            rp->names[consumer].org = dg_report_intern(rp, c->org.data,
                                                       c->org.len);
        }
    }

    return rp->names[consumer].org;
}


/*
 * The purpose as a group name.  The header is the client's: a purpose
 * the gateway refused as unknown is "(unknown)", and with a policy so
 * is any purpose the policy does not know on a denied call (a call
 * refused before its purpose was checked).  An allowed call's purpose
 * was known to the gateway when it decided.
 */
static uint32_t
dg_report_purpose(dg_report_t *rp, const dg_ascan_t *r)
{
    if (r->purpose.data == NULL) {
        return DG_RNAME_NULL;
    }

    if (r->reason.data != NULL
        && r->reason.len == sizeof("purpose_unknown") - 1
        && memcmp(r->reason.data, "purpose_unknown", r->reason.len) == 0)
    {
        return DG_RNAME_UNKNOWN;
    }

    if (rp->policy != NULL && r->denied) {
        if (dg_policy_purpose(rp->policy, r->purpose.data, r->purpose.len)
            == NULL)
        {
            return DG_RNAME_UNKNOWN;
        }
    }

    return dg_report_intern(rp, r->purpose.data, r->purpose.len);
}


static uint32_t
dg_hash_mem(const char *s, size_t len)
{
    size_t    i;
    uint32_t  h;

    h = 2166136261u;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char) s[i];
        h *= 16777619u;
    }

    return h | 1;       /* never 0: the null name's */
}


static uint32_t
dg_report_intern(dg_report_t *rp, const char *s, size_t len)
{
    uint32_t     h, i, id;
    dg_rname_t  *e;

    if (s == NULL) {
        return DG_RNAME_NULL;
    }

    h = dg_hash_mem(s, len);

    for (i = h & rp->name_mask; ; i = (i + 1) & rp->name_mask) {
        id = rp->name_index[i];

        if (id == DG_RFREE) {
            break;
        }

        e = &rp->names[id];

        if (e->hash == h && e->len == len
            && memcmp(rp->text + e->off, s, len) == 0)
        {
            return id;
        }
    }

    if (len > DG_REPORT_NAME_MAX || rp->nnames >= DG_REPORT_NAMES_MAX) {
        rp->folded_names++;
        return DG_RNAME_OTHER;
    }

    id = dg_report_name_add(rp, s, len, h);

    return (id == DG_RFREE) ? DG_RNAME_OTHER : id;
}


static uint32_t
dg_report_name_add(dg_report_t *rp, const char *s, size_t len, uint32_t h)
{
    char        *t;
    size_t       cap;
    uint32_t     i, id;
    dg_rname_t  *names;

    if (rp->text_len + len + 1 > rp->text_cap) {
        cap = rp->text_cap * 2;
        while (cap < rp->text_len + len + 1) {
            cap *= 2;
        }

        t = realloc(rp->text, cap);
        if (t == NULL) {
            return DG_RFREE;
        }

        rp->text = t;
        rp->text_cap = cap;
    }

    if ((rp->nnames + 1) * 2 > rp->name_mask + 1) {
        if (dg_report_index_grow(&rp->name_index, &rp->name_mask) != 0) {
            return DG_RFREE;
        }

        names = realloc(rp->names,
                        (rp->name_mask + 1) / 2 * sizeof(dg_rname_t));
        if (names == NULL) {
            return DG_RFREE;
        }

        rp->names = names;

        for (id = 0; id < rp->nnames; id++) {
            if (rp->names[id].hash == 0) {
                continue;
            }

            for (i = rp->names[id].hash & rp->name_mask;
                 rp->name_index[i] != DG_RFREE;
                 i = (i + 1) & rp->name_mask)
            { /* void */ }

            rp->name_index[i] = id;
        }
    }

    id = rp->nnames++;

    rp->names[id].off = rp->text_len;
    rp->names[id].len = len;
    rp->names[id].hash = h;
    rp->names[id].org = DG_RNAME_NONE;

    memcpy(rp->text + rp->text_len, s, len);
    rp->text_len += len;
    rp->text[rp->text_len++] = '\0';

    if (h != 0) {
        for (i = h & rp->name_mask; rp->name_index[i] != DG_RFREE;
             i = (i + 1) & rp->name_mask)
        { /* void */ }

        rp->name_index[i] = id;
    }

    return id;
}


static uint32_t
dg_report_group_hash(uint32_t level, const uint32_t *key)
{
    int       i;
    uint32_t  h;

    h = dg_rmix(0x811c9dc5u, level);

    for (i = 0; i < DG_RDIMS; i++) {
        h = dg_rmix(h, key[i]);
    }

    return h ^ (h >> 15);
}


static dg_rgroup_t *
dg_report_group(dg_report_t *rp, uint32_t level, const uint32_t *key)
{
    int           i, used;
    uint32_t      h, slot, id, other[DG_RDIMS];
    dg_rgroup_t  *g, *groups;

    h = dg_report_group_hash(level, key);

    for (slot = h & rp->group_mask; ; slot = (slot + 1) & rp->group_mask) {
        id = rp->group_index[slot];

        if (id == DG_RFREE) {
            break;
        }

        g = &rp->groups[id];

        if (g->level == level && memcmp(g->key, key, sizeof(g->key)) == 0) {
            return g;
        }
    }

    if (rp->ngroups >= DG_REPORT_GROUPS_MAX) {
        /* all of its dimensions "(other)", one per level, always made */
        used = (level == DG_RLEVEL_TOTAL) ? 0
               : (level == DG_RLEVEL_SUB) ? 1 : rp->nby;

        for (i = 0; i < DG_RDIMS; i++) {
            other[i] = (i < used) ? DG_RNAME_OTHER : DG_RNAME_NULL;
        }

        if (memcmp(other, key, sizeof(other)) != 0) {
            rp->folded_groups++;
            return dg_report_group(rp, level, other);
        }
    }

    if (rp->ngroups == rp->groups_cap) {
        groups = realloc(rp->groups,
                         rp->groups_cap * 2 * sizeof(dg_rgroup_t));
        if (groups == NULL) {
            return NULL;
        }

        rp->groups = groups;
        rp->groups_cap *= 2;
    }

    if ((rp->ngroups + 1) * 2 > rp->group_mask + 1) {
        if (dg_report_index_grow(&rp->group_index, &rp->group_mask)
            != 0)
        {
            return NULL;
        }

        for (id = 0; id < rp->ngroups; id++) {
            g = &rp->groups[id];

            for (slot = dg_report_group_hash(g->level, g->key)
                        & rp->group_mask;
                 rp->group_index[slot] != DG_RFREE;
                 slot = (slot + 1) & rp->group_mask)
            { /* void */ }

            rp->group_index[slot] = id;
        }

        for (slot = h & rp->group_mask; rp->group_index[slot] != DG_RFREE;
             slot = (slot + 1) & rp->group_mask)
        { /* void */ }
    }

    id = rp->ngroups++;
    rp->group_index[slot] = id;

    g = &rp->groups[id];
    memset(g, 0, sizeof(dg_rgroup_t));
    memcpy(g->key, key, sizeof(g->key));
    g->level = level;
    g->cells = DG_RFREE;

    return g;
}


static int
dg_report_cell_add(dg_report_t *rp, uint32_t group, uint32_t kind,
    uint32_t name, uint64_t n)
{
    uint32_t     h, slot, id;
    dg_rcell_t  *c, *cells;

again:

    h = dg_rmix(dg_rmix(dg_rmix(0x811c9dc5u, group), kind), name);
    h ^= h >> 15;

    for (slot = h & rp->cell_mask; ; slot = (slot + 1) & rp->cell_mask) {
        id = rp->cell_index[slot];

        if (id == DG_RFREE) {
            break;
        }

        c = &rp->cells[id];

        if (c->group == group && c->kind == kind && c->name == name) {
            c->count = dg_radd(c->count, n);
            return 0;
        }
    }

    if (rp->ncells >= DG_REPORT_CELLS_MAX && name != DG_RNAME_OTHER) {
        rp->folded_cells++;
        name = DG_RNAME_OTHER;
        goto again;
    }

    if (rp->ncells == rp->cells_cap) {
        cells = realloc(rp->cells, rp->cells_cap * 2 * sizeof(dg_rcell_t));
        if (cells == NULL) {
            return -1;
        }

        rp->cells = cells;
        rp->cells_cap *= 2;
    }

    if ((rp->ncells + 1) * 2 > rp->cell_mask + 1) {
        if (dg_report_index_grow(&rp->cell_index, &rp->cell_mask) != 0) {
            return -1;
        }

        for (id = 0; id < rp->ncells; id++) {
            c = &rp->cells[id];
            h = dg_rmix(dg_rmix(dg_rmix(0x811c9dc5u, c->group), c->kind),
                        c->name);
            h ^= h >> 15;

            for (slot = h & rp->cell_mask; rp->cell_index[slot] != DG_RFREE;
                 slot = (slot + 1) & rp->cell_mask)
            { /* void */ }

            rp->cell_index[slot] = id;
        }

        goto again;
    }

    id = rp->ncells++;
    rp->cell_index[slot] = id;

    c = &rp->cells[id];
    c->group = group;
    c->kind = kind;
    c->name = name;
    c->count = n;
    c->next = rp->groups[group].cells;
    rp->groups[group].cells = id;

    return 0;
}


/* a fresh index of twice the slots, all free */
static int
dg_report_index_grow(uint32_t **index, uint32_t *mask)
{
    size_t     slots;
    uint32_t  *ix;

    slots = ((size_t) *mask + 1) * 2;

    ix = malloc(slots * sizeof(uint32_t));
    if (ix == NULL) {
        return -1;
    }

    memset(ix, 0xff, slots * sizeof(uint32_t));

    free(*index);
    *index = ix;
    *mask = slots - 1;

    return 0;
}


uint64_t
dg_report_cell(const dg_report_t *rp, const dg_rgroup_t *g, uint32_t kind,
    uint32_t name)
{
    uint32_t  id;

    for (id = g->cells; id != DG_RFREE; id = rp->cells[id].next) {
        if (rp->cells[id].kind == kind && rp->cells[id].name == name) {
            return rp->cells[id].count;
        }
    }

    return 0;
}


static int
dg_report_name_cmp(const dg_report_t *rp, uint32_t a, uint32_t b)
{
    int     c;
    size_t  la, lb;

    if (a == b) {
        return 0;
    }

    /* null first, "(other)" last */
    if (a == DG_RNAME_NULL || b == DG_RNAME_OTHER) {
        return -1;
    }

    if (b == DG_RNAME_NULL || a == DG_RNAME_OTHER) {
        return 1;
    }

    la = rp->names[a].len;
    lb = rp->names[b].len;

    c = memcmp(rp->text + rp->names[a].off, rp->text + rp->names[b].off,
               la < lb ? la : lb);

    if (c != 0) {
        return c;
    }

    return (la < lb) ? -1 : (la > lb);
}


static int
dg_report_group_cmp(const void *a, const void *b)
{
    int                 i, c;
    const dg_rgroup_t  *ga, *gb;

    ga = *(const dg_rgroup_t **) a;
    gb = *(const dg_rgroup_t **) b;

    for (i = 0; i < DG_RDIMS; i++) {
        c = dg_report_name_cmp(dg_report_sorting, ga->key[i], gb->key[i]);
        if (c != 0) {
            return c;
        }
    }

    return 0;
}


dg_rgroup_t **
dg_report_sorted(const dg_report_t *rp, uint32_t level, uint32_t *n)
{
    uint32_t       i;
    dg_rgroup_t  **v;

    v = malloc((rp->ngroups + 1) * sizeof(dg_rgroup_t *));
    if (v == NULL) {
        return NULL;
    }

    *n = 0;

    for (i = 0; i < rp->ngroups; i++) {
        if (rp->groups[i].level == level) {
            v[(*n)++] = &rp->groups[i];
        }
    }

    dg_report_sorting = rp;
    qsort(v, *n, sizeof(dg_rgroup_t *), dg_report_group_cmp);

    return v;
}


static int
dg_report_cell_cmp(const void *a, const void *b)
{
    const dg_rcell_t  *ca, *cb;

    ca = *(const dg_rcell_t **) a;
    cb = *(const dg_rcell_t **) b;

    if (ca->count != cb->count) {
        return (ca->count > cb->count) ? -1 : 1;
    }

    return dg_report_name_cmp(dg_report_sorting, ca->name, cb->name);
}


dg_rcell_t **
dg_report_cells(const dg_report_t *rp, const dg_rgroup_t *g, uint32_t kind,
    uint32_t *n)
{
    uint32_t      id, k;
    dg_rcell_t  **v;

    k = 0;

    for (id = g->cells; id != DG_RFREE; id = rp->cells[id].next) {
        k++;
    }

    v = malloc((k + 1) * sizeof(dg_rcell_t *));
    if (v == NULL) {
        return NULL;
    }

    *n = 0;

    for (id = g->cells; id != DG_RFREE; id = rp->cells[id].next) {
        if (rp->cells[id].kind == kind) {
            v[(*n)++] = &rp->cells[id];
        }
    }

    dg_report_sorting = rp;
    qsort(v, *n, sizeof(dg_rcell_t *), dg_report_cell_cmp);

    return v;
}


static int
dg_report_id_cmp(const void *a, const void *b)
{
    return dg_report_name_cmp(dg_report_sorting, *(const uint32_t *) a,
                              *(const uint32_t *) b);
}


uint32_t *
dg_report_cell_names(const dg_report_t *rp, uint32_t level, uint32_t kind,
    uint32_t *n)
{
    uint8_t   *seen;
    uint32_t   i, *v;

    seen = calloc(rp->nnames + 1, 1);
    v = malloc((rp->nnames + 1) * sizeof(uint32_t));

    if (seen == NULL || v == NULL) {
        free(seen);
        free(v);
        return NULL;
    }

    *n = 0;

    for (i = 0; i < rp->ncells; i++) {
        if (rp->cells[i].kind == kind
            && rp->groups[rp->cells[i].group].level == level
            && !seen[rp->cells[i].name])
        {
            seen[rp->cells[i].name] = 1;
            v[(*n)++] = rp->cells[i].name;
        }
    }

    free(seen);

    dg_report_sorting = rp;
    qsort(v, *n, sizeof(uint32_t), dg_report_id_cmp);

    return v;
}
