/*
 * datagate report: what the report files share.
 *
 *   cmd_report.c   options, the input files merged in time order
 *   report_agg.c   the counts: names, groups, per-group cells, days
 *   report_out.c   the table, CSV and JSON forms
 *   report_html.c  the HTML form with its SVG charts
 *
 * Memory is bounded whatever the log holds: every table has a fixed
 * most (DG_REPORT_*_MAX); what would go beyond it is counted under
 * "(other)" and the report says how much was.
 */

#ifndef DG_REPORT_H
#define DG_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "dg_audit_scan.h"
#include "dg_policy.h"


/* the dimensions a report groups by (--by) */
#define DG_RDIM_ORG             0
#define DG_RDIM_CONSUMER        1
#define DG_RDIM_DATASET         2
#define DG_RDIM_PURPOSE         3
#define DG_RDIMS                4

/* group levels: the whole, the first --by dimension alone, all of them */
#define DG_RLEVEL_TOTAL         0
#define DG_RLEVEL_SUB           1
#define DG_RLEVEL_GROUP         2

/* what a cell counts per group */
#define DG_RCELL_DENIED         0       /* denied calls by reason */
#define DG_RCELL_INCOMPLETE     1       /* allowed calls not answered
                                           whole, by reason */
#define DG_RCELL_MASKED         2       /* values masked, by class */
#define DG_RCELLS               3

/* bounds */
#define DG_REPORT_NAMES_MAX     65536   /* distinct names */
#define DG_REPORT_NAME_MAX      1024    /* bytes of one name */
#define DG_REPORT_GROUPS_MAX    65536   /* groups of all levels */
#define DG_REPORT_CELLS_MAX     524288
#define DG_REPORT_DAYS_MAX      4000    /* about eleven years */
#define DG_REPORT_RING          8       /* minutes kept per group to find
                                           the peak minute */

/* name ids with a fixed meaning */
#define DG_RNAME_NULL           0       /* null or absent */
#define DG_RNAME_OTHER          1       /* "(other)": beyond a bound */
#define DG_RNAME_UNKNOWN        2       /* "(unknown)": a purpose the
                                           gateway did not know */
#define DG_RNAME_NOPOLICY       3       /* "(not in policy)": the org of a
                                           consumer the policy lacks */
#define DG_RNAME_FIRST          4

#define DG_RNAME_NONE           UINT32_MAX


typedef struct {
    uint32_t                    off;        /* in dg_report_t text */
    uint32_t                    len;
    uint32_t                    hash;
    uint32_t                    org;        /* consumer -> org name id;
                                               DG_RNAME_NONE: not yet
                                               looked up */
} dg_rname_t;


typedef struct {
    int64_t                     minute;     /* since the epoch */
    uint64_t                    count;
} dg_rminute_t;


typedef struct {
    uint32_t                    key[DG_RDIMS];  /* name ids */
    uint32_t                    level;
    uint32_t                    cells;      /* first cell, DG_RNAME_NONE */

    uint64_t                    calls;
    uint64_t                    allowed;
    uint64_t                    denied;
    uint64_t                    bytes;      /* of allowed calls */
    uint64_t                    records;    /* of allowed calls */
    uint64_t                    with_records;   /* calls whose record
                                                   says "records" */
    int64_t                     first_ms;
    int64_t                     last_ms;
    char                        first[DG_ASCAN_TIME_MAX + 1];
    char                        last[DG_ASCAN_TIME_MAX + 1];

    uint64_t                    peak;       /* calls in its busiest minute */
    int64_t                     peak_minute;
    char                        peak_at[DG_ASCAN_MINUTE_LEN + 1];
    dg_rminute_t                ring[DG_REPORT_RING];
} dg_rgroup_t;


typedef struct {
    uint32_t                    group;
    uint32_t                    name;
    uint32_t                    kind;
    uint32_t                    next;       /* of the same group */
    uint64_t                    count;
} dg_rcell_t;


typedef struct {
    char                        date[DG_ASCAN_DATE_LEN + 1];
    uint64_t                    calls;
    uint64_t                    allowed;
    uint64_t                    denied;
} dg_rday_t;


typedef struct {
    /* options */
    int                         by[DG_RDIMS];
    int                         nby;
    const dg_policy_t          *policy;
    const char                 *policy_path;
    const char                 *from;       /* as given, or NULL */
    const char                 *to;

    /* the input */
    const char                **files;
    int                         nfiles;
    uint64_t                    lines;
    uint64_t                    counted;
    uint64_t                    unreadable;
    uint64_t                    other;      /* records that are not calls */
    uint64_t                    out_of_range;
    uint64_t                    lost;       /* sum of "lost" */
    uint64_t                    late;       /* too far out of time order
                                               for the peak minute */

    /* what went beyond a bound */
    uint64_t                    folded_names;
    uint64_t                    folded_groups;
    uint64_t                    folded_cells;
    uint64_t                    folded_days;

    /* names: text, entries, open-addressed index */
    char                       *text;
    size_t                      text_len;
    size_t                      text_cap;
    dg_rname_t                 *names;
    uint32_t                    nnames;
    uint32_t                   *name_index;
    uint32_t                    name_mask;

    dg_rgroup_t                *groups;
    uint32_t                    ngroups;
    uint32_t                    groups_cap;
    uint32_t                   *group_index;
    uint32_t                    group_mask;

    dg_rcell_t                 *cells;
    uint32_t                    ncells;
    uint32_t                    cells_cap;
    uint32_t                   *cell_index;
    uint32_t                    cell_mask;

    dg_rday_t                  *days;       /* sorted by date */
    uint32_t                    ndays;
} dg_report_t;


/* report_agg.c */
int dg_report_init(dg_report_t *rp);
void dg_report_free(dg_report_t *rp);
/* count one record; -1: out of memory */
int dg_report_add(dg_report_t *rp, const dg_ascan_t *r);
const char *dg_report_name_str(const dg_report_t *rp, uint32_t id,
    size_t *len);
const char *dg_report_dim_name(int dim);
/* the policy's name of a dataset or purpose, or NULL */
const char *dg_report_title(const dg_report_t *rp, int dim, uint32_t id,
    size_t *len);
/* groups of one level, sorted by their names; caller frees */
dg_rgroup_t **dg_report_sorted(const dg_report_t *rp, uint32_t level,
    uint32_t *n);
/* cells of one kind of a group, sorted by count (most first), then
 * name; caller frees */
dg_rcell_t **dg_report_cells(const dg_report_t *rp, const dg_rgroup_t *g,
    uint32_t kind, uint32_t *n);
/* the names of one cell kind over all groups of a level, sorted */
uint32_t *dg_report_cell_names(const dg_report_t *rp, uint32_t level,
    uint32_t kind, uint32_t *n);
uint64_t dg_report_cell(const dg_report_t *rp, const dg_rgroup_t *g,
    uint32_t kind, uint32_t name);
const dg_rgroup_t *dg_report_total(const dg_report_t *rp);

/* report_out.c */

/* how dg_report_put() writes text: as is, HTML-escaped, inside a quoted
 * CSV cell; always with invalid UTF-8 and control characters as U+FFFD */
#define DG_RPUT_TEXT            0
#define DG_RPUT_HTML            1
#define DG_RPUT_CSV             2

void dg_report_put(FILE *out, const char *s, size_t len, int mode);
/* terminal columns of what dg_report_put() writes */
size_t dg_report_width(const char *s, size_t len);
/* a group's i-th name as shown ("(none)" for null) */
const char *dg_report_key_str(const dg_report_t *rp, const dg_rgroup_t *g,
    int i, size_t *len);
/* set when a form could not be written whole for lack of memory */
extern int dg_report_oom;
int dg_report_table(const dg_report_t *rp, FILE *out);
int dg_report_csv(const dg_report_t *rp, FILE *out);
int dg_report_json(const dg_report_t *rp, FILE *out);
void dg_report_json_str(FILE *out, const char *s, size_t len);
/* the generation time, local, ISO 8601 */
void dg_report_now(char *buf, size_t cap);

/* report_html.c */
int dg_report_html(const dg_report_t *rp, FILE *out);

#endif /* DG_REPORT_H */
