/*
 * datagate report: the table, CSV and JSON forms (report.h).
 *
 * Names come from audit records, and some of them (the purpose) from the
 * client: every form writes them so that they cannot act on what shows
 * them.  Invalid UTF-8 and control characters (C0, DEL, C1: terminal
 * escapes) become U+FFFD; CSV cells are quoted and a cell a spreadsheet
 * would take for a formula (= + - @ first) starts with a quote; JSON
 * strings are escaped.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dg_audit.h"
#include "dg_version.h"
#include "report.h"


#define DG_RTAB_COLS            16
#define DG_RTAB_GAP             2       /* spaces between columns */
#define DG_RNUM                 24      /* a number, formatted */
#define DG_RJSON_CHUNK          512

#define DG_UTF8_FFFD            "\xef\xbf\xbd"


/* a table for the terminal: cells kept until the widths are known */
typedef struct {
    char                      **cells;
    size_t                      ncells;
    size_t                      cap;
    int                         ncols;
    unsigned                    right;      /* bit per column */
} dg_rtab_t;


static size_t dg_report_seq(const unsigned char *s, size_t len,
    unsigned *cp);
static int dg_rtab_init(dg_rtab_t *t, int ncols, unsigned right);
static int dg_rtab_add(dg_rtab_t *t, const char *s, size_t len);
static int dg_rtab_num(dg_rtab_t *t, uint64_t v);
static void dg_rtab_print(dg_rtab_t *t, FILE *out, const char *indent);
static void dg_rtab_free(dg_rtab_t *t);
static int dg_report_dims_row(const dg_report_t *rp, dg_rtab_t *t,
    const dg_rgroup_t *g, int ndims);
static int dg_report_table_groups(const dg_report_t *rp, FILE *out,
    uint32_t level, int ndims, const char *title);
static int dg_report_table_cells(const dg_report_t *rp, FILE *out,
    uint32_t kind, const char *title, const char *what);
static void dg_report_short_time(char *dst, const char *t);
static void dg_report_csv_cell(FILE *out, const char *s, size_t len);
static void dg_report_csv_row(const dg_report_t *rp, FILE *out,
    const char *row, const dg_rgroup_t *g, int ndims, uint32_t **names,
    uint32_t *nnames);
static void dg_report_json_row(const dg_report_t *rp, FILE *out,
    const dg_rgroup_t *g, int ndims);
static void dg_report_json_cells(const dg_report_t *rp, FILE *out,
    const dg_rgroup_t *g, uint32_t kind);


int  dg_report_oom;


static const char  *dg_rcell_key[DG_RCELLS] = {
    "denied", "incomplete", "masked"
};


/* --- text that cannot act on what shows it ------------------------------ */


/* one UTF-8 sequence: its length, 0 when invalid or a control */
static size_t
dg_report_seq(const unsigned char *s, size_t len, unsigned *cp)
{
    size_t    n, i;
    unsigned  c, min;

    c = s[0];

    if (c < 0x80) {
        *cp = c;
        return (c < 0x20 || c == 0x7f) ? 0 : 1;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2; c &= 0x1f; min = 0x80;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3; c &= 0x0f; min = 0x800;

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4; c &= 0x07; min = 0x10000;

    } else {
        return 0;
    }

    if (len < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }

        c = (c << 6) | (s[i] & 0x3f);
    }

    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)
        || (c >= 0x80 && c <= 0x9f))
    {
        return 0;
    }

    *cp = c;

    return n;
}


void
dg_report_put(FILE *out, const char *s, size_t len, int mode)
{
    size_t                i, n;
    unsigned              cp;
    const unsigned char  *u;

    u = (const unsigned char *) s;

    for (i = 0; i < len; i += n) {
        n = dg_report_seq(u + i, len - i, &cp);

        if (n == 0) {
            fputs(DG_UTF8_FFFD, out);
            n = 1;
            continue;
        }

        if (mode == DG_RPUT_HTML) {
            switch (cp) {
            case '&':  fputs("&amp;", out);  continue;
            case '<':  fputs("&lt;", out);   continue;
            case '>':  fputs("&gt;", out);   continue;
            case '"':  fputs("&quot;", out); continue;
            case '\'': fputs("&#39;", out);  continue;
            }

        } else if (mode == DG_RPUT_CSV && cp == '"') {
            fputs("\"\"", out);
            continue;
        }

        fwrite(u + i, 1, n, out);
    }
}


/* columns a terminal gives the text as dg_report_put() writes it */
size_t
dg_report_width(const char *s, size_t len)
{
    size_t                i, n, w;
    unsigned              cp;
    const unsigned char  *u;

    u = (const unsigned char *) s;
    w = 0;

    for (i = 0; i < len; i += n) {
        n = dg_report_seq(u + i, len - i, &cp);

        if (n == 0) {
            n = 1;
            cp = 0xfffd;
        }

        /* East Asian wide and fullwidth characters take two columns */
        w += ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf)
              || (cp >= 0xac00 && cp <= 0xd7a3)
              || (cp >= 0xf900 && cp <= 0xfaff)
              || (cp >= 0xfe30 && cp <= 0xfe4f)
              || (cp >= 0xff00 && cp <= 0xff60)
              || (cp >= 0xffe0 && cp <= 0xffe6) || cp >= 0x20000)
             ? 2 : 1;
    }

    return w;
}


void
dg_report_json_str(FILE *out, const char *s, size_t len)
{
    char    buf[DG_RJSON_CHUNK];
    size_t  n, used;

    if (s == NULL) {
        fputs("null", out);
        return;
    }

    putc('"', out);

    while (len > 0) {
        n = dg_json_escape(buf, sizeof(buf), (const uint8_t *) s, len,
                           &used);
        fwrite(buf, 1, n, out);
        s += used;
        len -= used;
    }

    putc('"', out);
}


void
dg_report_now(char *buf, size_t cap)
{
    time_t     now;
    struct tm  tm;
    char       z[8];

    now = time(NULL);
    localtime_r(&now, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(z, sizeof(z), "%z", &tm);

    /* +0800 -> +08:00 */
    if (strlen(z) == 5 && strlen(buf) + 7 <= cap) {
        sprintf(buf + strlen(buf), "%.3s:%.2s", z, z + 3);
    }
}


/* the name of a group's dimension i as shown: null is "(none)" */
const char *
dg_report_key_str(const dg_report_t *rp, const dg_rgroup_t *g, int i,
    size_t *len)
{
    if (g->key[i] == DG_RNAME_NULL) {
        *len = sizeof("(none)") - 1;
        return "(none)";
    }

    return dg_report_name_str(rp, g->key[i], len);
}


/* --- table --------------------------------------------------------------- */


static int
dg_rtab_init(dg_rtab_t *t, int ncols, unsigned right)
{
    memset(t, 0, sizeof(dg_rtab_t));
    t->ncols = ncols;
    t->right = right;

    return 0;
}


static int
dg_rtab_add(dg_rtab_t *t, const char *s, size_t len)
{
    char   *c, **v;
    size_t  cap;

    if (t->ncells == t->cap) {
        cap = t->cap ? t->cap * 2 : 64;
        v = realloc(t->cells, cap * sizeof(char *));
        if (v == NULL) {
            return -1;
        }

        t->cells = v;
        t->cap = cap;
    }

    c = malloc(len + 1);
    if (c == NULL) {
        return -1;
    }

    memcpy(c, s, len);
    c[len] = '\0';
    t->cells[t->ncells++] = c;

    return 0;
}


static int
dg_rtab_num(dg_rtab_t *t, uint64_t v)
{
    char  buf[DG_RNUM];

    return dg_rtab_add(t, buf, snprintf(buf, sizeof(buf), "%" PRIu64, v));
}


static void
dg_rtab_print(dg_rtab_t *t, FILE *out, const char *indent)
{
    int     c;
    size_t  i, k, w, width[DG_RTAB_COLS];

    memset(width, 0, sizeof(width));

    for (i = 0; i < t->ncells; i++) {
        c = i % t->ncols;
        w = dg_report_width(t->cells[i], strlen(t->cells[i]));
        if (w > width[c]) {
            width[c] = w;
        }
    }

    for (i = 0; i < t->ncells; i++) {
        c = i % t->ncols;

        if (c == 0) {
            fputs(indent, out);
        }

        w = dg_report_width(t->cells[i], strlen(t->cells[i]));

        if (t->right & (1u << c)) {
            for (k = w; k < width[c]; k++) {
                putc(' ', out);
            }
        }

        dg_report_put(out, t->cells[i], strlen(t->cells[i]), DG_RPUT_TEXT);

        if (c == t->ncols - 1) {
            putc('\n', out);
            continue;
        }

        if (!(t->right & (1u << c))) {
            for (k = w; k < width[c]; k++) {
                putc(' ', out);
            }
        }

        for (k = 0; k < DG_RTAB_GAP; k++) {
            putc(' ', out);
        }
    }
}


static void
dg_rtab_free(dg_rtab_t *t)
{
    size_t  i;

    for (i = 0; i < t->ncells; i++) {
        free(t->cells[i]);
    }

    free(t->cells);
}


/* 2024-05-11T09:30:00.123+08:00 -> 2024-05-11 09:30:00 */
static void
dg_report_short_time(char *dst, const char *t)
{
    size_t  n;

    n = strlen(t);
    n = (n > sizeof("YYYY-MM-DDTHH:MM:SS") - 1)
        ? sizeof("YYYY-MM-DDTHH:MM:SS") - 1 : n;

    memcpy(dst, t, n);
    dst[n] = '\0';

    if (n > DG_ASCAN_DATE_LEN) {
        dst[DG_ASCAN_DATE_LEN] = ' ';
    }
}


static int
dg_report_dims_row(const dg_report_t *rp, dg_rtab_t *t,
    const dg_rgroup_t *g, int ndims)
{
    int          i;
    size_t       n;
    const char  *s;

    for (i = 0; i < ndims; i++) {
        s = dg_report_key_str(rp, g, i, &n);
        if (dg_rtab_add(t, s, n) != 0) {
            return -1;
        }
    }

    return 0;
}


int
dg_report_table(const dg_report_t *rp, FILE *out)
{
    int                 i;
    char                a[DG_ASCAN_TIME_MAX + 1], b[DG_ASCAN_TIME_MAX + 1];
    const dg_rgroup_t  *t;

    t = dg_report_total(rp);

    fprintf(out, "datagate report: %d file%s, %" PRIu64 " line%s, %" PRIu64
            " record%s counted\n", rp->nfiles, rp->nfiles == 1 ? "" : "s",
            rp->lines, rp->lines == 1 ? "" : "s", rp->counted,
            rp->counted == 1 ? "" : "s");

    if (rp->from || rp->to) {
        fprintf(out, "dates:       %s .. %s (local time of the records)\n",
                rp->from ? rp->from : "(start)", rp->to ? rp->to : "(end)");
    }

    if (t) {
        dg_report_short_time(a, t->first);
        dg_report_short_time(b, t->last);
        fprintf(out, "calls:       %s .. %s\n", a, b);
    }

    if (rp->policy) {
        fprintf(out, "policy:      ");
        dg_report_put(out, rp->policy_path, strlen(rp->policy_path),
                      DG_RPUT_TEXT);
        fprintf(out, " (version %.16s)\n", rp->policy->version_hex);
    }

    fprintf(out, "unreadable:  %" PRIu64 " line%s; outside the dates: %"
            PRIu64 "; records of other kinds than calls: %" PRIu64 "\n",
            rp->unreadable, rp->unreadable == 1 ? "" : "s",
            rp->out_of_range, rp->other);
    fprintf(out, "lost:        %" PRIu64 " record%s the gateway could not"
            " write (their calls are not counted)\n", rp->lost,
            rp->lost == 1 ? "" : "s");

    if (rp->folded_groups || rp->folded_names || rp->folded_cells
        || rp->folded_days)
    {
        fprintf(out, "bounds:      more distinct names than the report"
                " keeps: %" PRIu64 " counted under \"(other)\"\n",
                rp->folded_groups + rp->folded_names + rp->folded_cells
                + rp->folded_days);
    }

    if (rp->late) {
        fprintf(out, "order:       %" PRIu64 " record%s far out of time"
                " order: left out of the peak minute\n", rp->late,
                rp->late == 1 ? "" : "s");
    }

    if (t == NULL) {
        fprintf(out, "\nno calls\n");
        return 0;
    }

    if (dg_report_table_groups(rp, out, DG_RLEVEL_TOTAL, 0, "Total") != 0)
    {
        return -1;
    }

    if (rp->nby > 1) {
        fprintf(out, "\nBy %s\n", dg_report_dim_name(rp->by[0]));
        if (dg_report_table_groups(rp, out, DG_RLEVEL_SUB, 1, NULL) != 0) {
            return -1;
        }
    }

    if (rp->nby > 0) {
        fprintf(out, "\nBy ");
        for (i = 0; i < rp->nby; i++) {
            fprintf(out, "%s%s", i ? ", " : "", dg_report_dim_name(rp->by[i]));
        }
        fprintf(out, "\n");

        if (dg_report_table_groups(rp, out, DG_RLEVEL_GROUP, rp->nby, NULL)
            != 0)
        {
            return -1;
        }
    }

    if (dg_report_table_cells(rp, out, DG_RCELL_DENIED, "Denied calls by"
                              " reason", "reason") != 0
        || dg_report_table_cells(rp, out, DG_RCELL_INCOMPLETE, "Allowed"
                                 " calls not answered whole, by reason",
                                 "reason") != 0
        || dg_report_table_cells(rp, out, DG_RCELL_MASKED, "Values masked,"
                                 " by field class", "class") != 0)
    {
        return -1;
    }

    {
        uint32_t   d;
        dg_rtab_t  tab;

        fprintf(out, "\nCalls per day\n");
        dg_rtab_init(&tab, 4, 0xe);
        dg_rtab_add(&tab, "date", 4);
        dg_rtab_add(&tab, "calls", 5);
        dg_rtab_add(&tab, "allowed", 7);
        dg_rtab_add(&tab, "denied", 6);

        for (d = 0; d < rp->ndays; d++) {
            if (dg_rtab_add(&tab, rp->days[d].date, DG_ASCAN_DATE_LEN) != 0
                || dg_rtab_num(&tab, rp->days[d].calls) != 0
                || dg_rtab_num(&tab, rp->days[d].allowed) != 0
                || dg_rtab_num(&tab, rp->days[d].denied) != 0)
            {
                dg_rtab_free(&tab);
                return -1;
            }
        }

        dg_rtab_print(&tab, out, "  ");
        dg_rtab_free(&tab);
    }

    return 0;
}


static int
dg_report_table_groups(const dg_report_t *rp, FILE *out, uint32_t level,
    int ndims, const char *title)
{
    int            i, rc;
    char           buf[DG_RNUM * 2];
    uint32_t       n, k;
    dg_rtab_t      tab;
    dg_rgroup_t  **v;

    static const char  *head[] = {
        "calls", "allowed", "denied", "records", "bytes", "peak/min",
        "first", "last"
    };

    v = dg_report_sorted(rp, level, &n);
    if (v == NULL) {
        return -1;
    }

    if (title) {
        fprintf(out, "\n%s\n", title);
    }

    /* the numbers right-aligned */
    dg_rtab_init(&tab, ndims + 8, ((1u << 6) - 1) << ndims);

    rc = -1;

    for (i = 0; i < ndims; i++) {
        if (dg_rtab_add(&tab, dg_report_dim_name(rp->by[i]),
                        strlen(dg_report_dim_name(rp->by[i]))) != 0)
        {
            goto done;
        }
    }

    for (i = 0; i < 8; i++) {
        if (dg_rtab_add(&tab, head[i], strlen(head[i])) != 0) {
            goto done;
        }
    }

    for (k = 0; k < n; k++) {
        if (dg_report_dims_row(rp, &tab, v[k], ndims) != 0
            || dg_rtab_num(&tab, v[k]->calls) != 0
            || dg_rtab_num(&tab, v[k]->allowed) != 0
            || dg_rtab_num(&tab, v[k]->denied) != 0)
        {
            goto done;
        }

        if (v[k]->with_records == 0) {
            rc = dg_rtab_add(&tab, "-", 1);

        } else {
            rc = dg_rtab_num(&tab, v[k]->records);
        }

        if (rc != 0 || dg_rtab_num(&tab, v[k]->bytes) != 0
            || dg_rtab_num(&tab, v[k]->peak) != 0)
        {
            rc = -1;
            goto done;
        }

        dg_report_short_time(buf, v[k]->first);
        if (dg_rtab_add(&tab, buf, strlen(buf)) != 0) {
            goto done;
        }

        dg_report_short_time(buf, v[k]->last);
        if (dg_rtab_add(&tab, buf, strlen(buf)) != 0) {
            goto done;
        }
    }

    dg_rtab_print(&tab, out, "  ");
    rc = 0;

done:

    dg_rtab_free(&tab);
    free(v);

    return rc;
}


/* one row per (group, name): the total's first, then each group's */
static int
dg_report_table_cells(const dg_report_t *rp, FILE *out, uint32_t kind,
    const char *title, const char *what)
{
    int           i, rc, ndims;
    size_t        len;
    uint32_t      n, k, nc, j, level;
    const char   *s;
    dg_rtab_t     tab;
    dg_rcell_t  **c;
    dg_rgroup_t **v;

    rc = -1;
    ndims = rp->nby;
    level = (rp->nby > 0) ? DG_RLEVEL_GROUP : DG_RLEVEL_TOTAL;

    v = dg_report_sorted(rp, level, &n);
    if (v == NULL) {
        return -1;
    }

    dg_rtab_init(&tab, ndims + 2, 1u << (ndims + 1));

    for (i = 0; i < ndims; i++) {
        s = dg_report_dim_name(rp->by[i]);
        if (dg_rtab_add(&tab, s, strlen(s)) != 0) {
            goto done;
        }
    }

    if (dg_rtab_add(&tab, what, strlen(what)) != 0
        || dg_rtab_add(&tab, "count", 5) != 0)
    {
        goto done;
    }

    nc = 0;

    for (k = 0; k < n; k++) {
        c = dg_report_cells(rp, v[k], kind, &nc);
        if (c == NULL) {
            goto done;
        }

        for (j = 0; j < nc; j++) {
            s = dg_report_name_str(rp, c[j]->name, &len);
            if (c[j]->name == DG_RNAME_NULL) {
                s = "(none)";
                len = sizeof("(none)") - 1;
            }

            if (dg_report_dims_row(rp, &tab, v[k], ndims) != 0
                || dg_rtab_add(&tab, s, len) != 0
                || dg_rtab_num(&tab, c[j]->count) != 0)
            {
                free(c);
                goto done;
            }
        }

        free(c);
    }

    if (tab.ncells > (size_t) tab.ncols) {
        fprintf(out, "\n%s\n", title);
        dg_rtab_print(&tab, out, "  ");
    }

    rc = 0;

done:

    dg_rtab_free(&tab);
    free(v);

    return rc;
}


/* --- CSV ----------------------------------------------------------------- */


static void
dg_report_csv_cell(FILE *out, const char *s, size_t len)
{
    putc('"', out);

    if (len > 0 && (s[0] == '=' || s[0] == '+' || s[0] == '-'
                    || s[0] == '@'))
    {
        putc('\'', out);
    }

    dg_report_put(out, s, len, DG_RPUT_CSV);
    putc('"', out);
}


int
dg_report_csv(const dg_report_t *rp, FILE *out)
{
    int            i, k;
    size_t         len;
    uint32_t      *names[DG_RCELLS], nnames[DG_RCELLS], n, j;
    const char    *s;
    dg_rgroup_t  **v;
    char           col[DG_REPORT_NAME_MAX + 32];

    memset(names, 0, sizeof(names));

    for (k = 0; k < DG_RCELLS; k++) {
        names[k] = dg_report_cell_names(rp, DG_RLEVEL_TOTAL, k, &nnames[k]);
        if (names[k] == NULL) {
            goto failed;
        }
    }

    fputs("row", out);

    for (i = 0; i < rp->nby; i++) {
        fprintf(out, ",%s", dg_report_dim_name(rp->by[i]));

        if (rp->policy && (rp->by[i] == DG_RDIM_DATASET
                           || rp->by[i] == DG_RDIM_PURPOSE))
        {
            fprintf(out, ",%s_name", dg_report_dim_name(rp->by[i]));
        }
    }

    fputs(",calls,allowed,denied,records,records_counted,bytes,first,last,"
          "peak_per_minute,peak_minute", out);

    for (k = 0; k < DG_RCELLS; k++) {
        for (j = 0; j < nnames[k]; j++) {
            s = dg_report_name_str(rp, names[k][j], &len);
            if (names[k][j] == DG_RNAME_NULL) {
                s = "(none)";
                len = sizeof("(none)") - 1;
            }

            snprintf(col, sizeof(col), "%s:%.*s", dg_rcell_key[k],
                     (int) len, s);
            putc(',', out);
            dg_report_csv_cell(out, col, strlen(col));
        }
    }

    fputs("\r\n", out);

    if (dg_report_total(rp)) {
        dg_report_csv_row(rp, out, "total", dg_report_total(rp), 0, names,
                          nnames);
    }

    for (k = DG_RLEVEL_SUB; k <= DG_RLEVEL_GROUP; k++) {
        if ((k == DG_RLEVEL_SUB && rp->nby < 2)
            || (k == DG_RLEVEL_GROUP && rp->nby < 1))
        {
            continue;
        }

        v = dg_report_sorted(rp, k, &n);
        if (v == NULL) {
            goto failed;
        }

        for (j = 0; j < n; j++) {
            dg_report_csv_row(rp, out, k == DG_RLEVEL_SUB ? "subtotal"
                              : "group", v[j],
                              k == DG_RLEVEL_SUB ? 1 : rp->nby, names,
                              nnames);
        }

        free(v);
    }

    for (k = 0; k < DG_RCELLS; k++) {
        free(names[k]);
    }

    return 0;

failed:

    for (k = 0; k < DG_RCELLS; k++) {
        free(names[k]);
    }

    errno = ENOMEM;

    return -1;
}


static void
dg_report_csv_row(const dg_report_t *rp, FILE *out, const char *row,
    const dg_rgroup_t *g, int ndims, uint32_t **names, uint32_t *nnames)
{
    int          i, k;
    size_t       len;
    uint32_t     j;
    const char  *s;

    fputs(row, out);

    for (i = 0; i < rp->nby; i++) {
        putc(',', out);

        if (i < ndims && g->key[i] != DG_RNAME_NULL) {
            s = dg_report_name_str(rp, g->key[i], &len);
            dg_report_csv_cell(out, s, len);
        }

        if (rp->policy && (rp->by[i] == DG_RDIM_DATASET
                           || rp->by[i] == DG_RDIM_PURPOSE))
        {
            putc(',', out);

            if (i < ndims) {
                s = dg_report_title(rp, rp->by[i], g->key[i], &len);
                if (s) {
                    dg_report_csv_cell(out, s, len);
                }
            }
        }
    }

    fprintf(out, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",", g->calls,
            g->allowed, g->denied);

    if (g->with_records) {
        fprintf(out, "%" PRIu64, g->records);
    }

    fprintf(out, ",%" PRIu64 ",%" PRIu64 ",%s,%s,%" PRIu64 ",%s",
            g->with_records, g->bytes, g->first, g->last, g->peak,
            g->peak_at);

    for (k = 0; k < DG_RCELLS; k++) {
        for (j = 0; j < nnames[k]; j++) {
            fprintf(out, ",%" PRIu64,
                    dg_report_cell(rp, g, k, names[k][j]));
        }
    }

    fputs("\r\n", out);
}


/* --- JSON ---------------------------------------------------------------- */


int
dg_report_json(const dg_report_t *rp, FILE *out)
{
    int            i, k;
    char           now[64];
    uint32_t       n, j;
    dg_rgroup_t  **v;

    dg_report_now(now, sizeof(now));

    fprintf(out, "{\"report\":{\"generated\":\"%s\",\"version\":\""
            DG_VERSION "\",\"files\":[", now);

    for (i = 0; i < rp->nfiles; i++) {
        if (i) {
            putc(',', out);
        }
        dg_report_json_str(out, rp->files[i], strlen(rp->files[i]));
    }

    fputs("],\"from\":", out);
    dg_report_json_str(out, rp->from, rp->from ? strlen(rp->from) : 0);
    fputs(",\"to\":", out);
    dg_report_json_str(out, rp->to, rp->to ? strlen(rp->to) : 0);
    fputs(",\"by\":[", out);

    for (i = 0; i < rp->nby; i++) {
        fprintf(out, "%s\"%s\"", i ? "," : "", dg_report_dim_name(rp->by[i]));
    }

    fputs("],\"policy\":", out);

    if (rp->policy) {
        fputs("{\"path\":", out);
        dg_report_json_str(out, rp->policy_path, strlen(rp->policy_path));
        fprintf(out, ",\"version\":\"%s\"}", rp->policy->version_hex);

    } else {
        fputs("null", out);
    }

    fprintf(out, "},\n\"input\":{\"lines\":%" PRIu64 ",\"records\":%" PRIu64
            ",\"unreadable\":%" PRIu64 ",\"out_of_range\":%" PRIu64
            ",\"other\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"late\":%" PRIu64
            "},\n"
            "\"bounds\":{\"names\":%" PRIu64 ",\"groups\":%" PRIu64
            ",\"cells\":%" PRIu64 ",\"days\":%" PRIu64 "},\n\"total\":",
            rp->lines, rp->counted, rp->unreadable, rp->out_of_range,
            rp->other, rp->lost, rp->late, rp->folded_names, rp->folded_groups,
            rp->folded_cells, rp->folded_days);

    if (dg_report_total(rp)) {
        dg_report_json_row(rp, out, dg_report_total(rp), 0);

    } else {
        fputs("null", out);
    }

    for (k = DG_RLEVEL_SUB; k <= DG_RLEVEL_GROUP; k++) {
        fprintf(out, ",\n\"%s\":[", k == DG_RLEVEL_SUB ? "subtotals"
                                                        : "groups");

        if ((k == DG_RLEVEL_SUB && rp->nby >= 2)
            || (k == DG_RLEVEL_GROUP && rp->nby >= 1))
        {
            v = dg_report_sorted(rp, k, &n);
            if (v == NULL) {
                errno = ENOMEM;
                return -1;
            }

            for (j = 0; j < n; j++) {
                fputs(j ? ",\n " : "\n ", out);
                dg_report_json_row(rp, out, v[j],
                                   k == DG_RLEVEL_SUB ? 1 : rp->nby);
            }

            free(v);
        }

        fputs("]", out);
    }

    fputs(",\n\"days\":[", out);

    for (j = 0; j < rp->ndays; j++) {
        fprintf(out, "%s{\"date\":\"%s\",\"calls\":%" PRIu64 ",\"allowed\":%"
                PRIu64 ",\"denied\":%" PRIu64 "}", j ? ",\n " : "\n ",
                rp->days[j].date, rp->days[j].calls, rp->days[j].allowed,
                rp->days[j].denied);
    }

    fputs("]}\n", out);

    if (dg_report_oom) {
        errno = ENOMEM;
        return -1;
    }

    return 0;
}


static void
dg_report_json_row(const dg_report_t *rp, FILE *out, const dg_rgroup_t *g,
    int ndims)
{
    int          i;
    size_t       len;
    const char  *s, *name;

    putc('{', out);

    for (i = 0; i < ndims; i++) {
        name = dg_report_dim_name(rp->by[i]);
        fprintf(out, "\"%s\":", name);

        if (g->key[i] == DG_RNAME_NULL) {
            fputs("null,", out);
            continue;
        }

        s = dg_report_name_str(rp, g->key[i], &len);
        dg_report_json_str(out, s, len);
        putc(',', out);

        s = dg_report_title(rp, rp->by[i], g->key[i], &len);
        if (s) {
            fprintf(out, "\"%s_name\":", name);
            dg_report_json_str(out, s, len);
            putc(',', out);
        }
    }

    fprintf(out, "\"calls\":%" PRIu64 ",\"allowed\":%" PRIu64 ",\"denied\":%"
            PRIu64 ",\"denials\":", g->calls, g->allowed, g->denied);
    dg_report_json_cells(rp, out, g, DG_RCELL_DENIED);
    fputs(",\"incomplete\":", out);
    dg_report_json_cells(rp, out, g, DG_RCELL_INCOMPLETE);

    if (g->with_records) {
        fprintf(out, ",\"records\":%" PRIu64, g->records);

    } else {
        fputs(",\"records\":null", out);
    }

    fprintf(out, ",\"records_counted\":%" PRIu64 ",\"bytes\":%" PRIu64
            ",\"masked\":", g->with_records, g->bytes);
    dg_report_json_cells(rp, out, g, DG_RCELL_MASKED);

    fputs(",\"first\":", out);
    dg_report_json_str(out, g->first, strlen(g->first));
    fputs(",\"last\":", out);
    dg_report_json_str(out, g->last, strlen(g->last));
    fprintf(out, ",\"peak_per_minute\":%" PRIu64 ",\"peak_minute\":",
            g->peak);
    dg_report_json_str(out, g->peak_at, strlen(g->peak_at));
    putc('}', out);
}


static void
dg_report_json_cells(const dg_report_t *rp, FILE *out, const dg_rgroup_t *g,
    uint32_t kind)
{
    size_t        len;
    uint32_t      n, j;
    const char   *s;
    dg_rcell_t  **c;

    c = dg_report_cells(rp, g, kind, &n);
    if (c == NULL) {
        dg_report_oom = 1;
    }

    putc('{', out);

    for (j = 0; c && j < n; j++) {
        if (c[j]->name == DG_RNAME_NULL) {
            s = "(none)";
            len = sizeof("(none)") - 1;

        } else {
            s = dg_report_name_str(rp, c[j]->name, &len);
        }

        if (j) {
            putc(',', out);
        }

        dg_report_json_str(out, s, len);
        fprintf(out, ":%" PRIu64, c[j]->count);
    }

    putc('}', out);
    free(c);
}
