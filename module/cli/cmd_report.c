/*
 * datagate report AUDIT.log...: who called what, for which purpose, how
 * often, what was denied and why, what they received and which classes
 * of values were withheld from them.
 *
 * The files are read once, as a stream, merged in the order of their
 * records' times (rotated files, the files of several nodes): a file is
 * opened when the merge reaches the time of its first record and closed
 * at its end, so that only the files whose times overlap are open at
 * once.  Memory does not grow with the size of the log (report.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "datagate.h"
#include "report.h"


#define DG_RIN_BUF              (256 * 1024)
#define DG_RIN_LINE_MAX         (64 * 1024)     /* longer: unreadable */
#define DG_REPORT_WARN_MAX      10      /* unreadable lines named */
#define DG_REPORT_OUTBUF        (64 * 1024)

#define DG_RFMT_TABLE           0
#define DG_RFMT_CSV             1
#define DG_RFMT_JSON            2
#define DG_RFMT_HTML            3

/* what dg_rin_line() found */
#define DG_RIN_EOF              0
#define DG_RIN_LINE             1
#define DG_RIN_TOOLONG          2
#define DG_RIN_ERROR            -1


static const char  dg_report_usage[] =
"NAME\n"
"    datagate report - calls, denials, records and masked values, from\n"
"    audit logs\n"
"\n"
"SYNOPSIS\n"
"    datagate report [--from DATE] [--to DATE] [--by DIMS]\n"
"                    [--policy PATH] [--format table|csv|json|html]\n"
"                    [--output FILE] AUDIT.log...\n"
"\n"
"DESCRIPTION\n"
"    Reads audit logs written by datagate_audit_log and counts, per\n"
"    department (the consumer's org), consumer, dataset and purpose:\n"
"    calls, allowed and denied calls, denials by reason, allowed calls\n"
"    not answered whole by reason, data records and bytes returned,\n"
"    values masked per field class, the first and last call and the\n"
"    busiest minute (peak calls per minute).  Also calls per day, and\n"
"    records the gateway could not write (\"lost\").\n"
"\n"
"    Give every file of the period, in any order (rotated files, the\n"
"    logs of several nodes): records are merged by time.  The files are\n"
"    read once, as a stream; memory does not depend on their size.\n"
"    A line that is not an audit record is counted as unreadable,\n"
"    named on standard error (the first ten), and the exit status is 1.\n"
"    Records of other kinds than calls (a \"seq\", no \"decision\") are\n"
"    counted apart.  The report counts what the records say;\n"
"    `datagate audit verify` checks that they were not changed.\n"
"\n"
"OPTIONS\n"
"    --from DATE, --to DATE\n"
"        Only records from / up to DATE, both included, in the local\n"
"        time the records are written in: YYYY-MM-DD (the whole day),\n"
"        YYYY-MM-DDTHH:MM or YYYY-MM-DDTHH:MM:SS.\n"
"    --by DIMS\n"
"        Comma-separated, in order: org (or department), consumer,\n"
"        dataset, purpose.  Default: org,consumer,dataset,purpose with\n"
"        --policy, consumer,dataset,purpose without.  With two or more,\n"
"        subtotals by the first are given too.\n"
"    --policy PATH\n"
"        The policy (file or directory): the consumers' org (needed for\n"
"        --by org), the names of datasets and purposes.  A purpose it\n"
"        does not know on a denied call counts as \"(unknown)\".\n"
"    --format table|csv|json|html\n"
"        table (default): for a terminal.  csv: one row per group (and\n"
"        subtotal, total), a column per reason and class.  json: one\n"
"        document.  html: one self-contained page with charts (calls per\n"
"        day, denials by reason, masked values by class), for a browser\n"
"        without network access.\n"
"    --output FILE\n"
"        Write the report to FILE instead of standard output (never one\n"
"        of the logs; a log given twice is refused too).\n"
"    -h, --help\n"
"        This text.\n"
"\n"
"    docs/audit.md, \"Reports\", describes every figure.\n"
"\n"
"EXIT STATUS\n"
"    0  report written, every line read\n"
"    1  report written, but some lines were not audit records\n"
"    2  usage error\n"
"    3  a file cannot be read or written, out of memory\n";


typedef struct {
    const char                 *name;
    int                         index;
    int                         fd;
    char                       *buf;
    size_t                      pos;
    size_t                      end;
    unsigned                    eof:1;
    unsigned                    skipping:1;     /* inside a long line */
    uint64_t                    line;
    int64_t                     start;          /* first record's time */
    int64_t                     key;            /* the current record's */
    dg_ascan_t                 *rec;
    char                       *scratch;
} dg_rin_t;


typedef struct {
    dg_report_t                *rp;
    dg_rin_t                  **heap;
    int                         nheap;
    uint64_t                    warned;
} dg_rmerge_t;


static int dg_report_args(dg_report_t *rp, int argc, char **argv,
    int *format, const char **output);
static int dg_report_by(dg_report_t *rp, const char *list);
static int dg_report_date(const char *s);
static int dg_report_files(const dg_report_t *rp, const char *output);
static int dg_report_run(dg_report_t *rp);
static int dg_rin_probe(const char *name, dg_ascan_t *rec, char *buf,
    char *scratch, int64_t *start);
static int dg_rin_open(dg_rin_t *in);
static void dg_rin_close(dg_rin_t *in);
static int dg_rin_line(dg_rin_t *in, const char **line, size_t *len);
static int dg_rin_next(dg_rmerge_t *m, dg_rin_t *in);
static int dg_rin_in_range(const dg_report_t *rp, const dg_ascan_t *r);
static void dg_heap_push(dg_rmerge_t *m, dg_rin_t *in);
static dg_rin_t *dg_heap_pop(dg_rmerge_t *m);
static int dg_rin_before(const dg_rin_t *a, const dg_rin_t *b);
static int dg_rin_start_cmp(const void *a, const void *b);


int
dg_cmd_report(int argc, char **argv)
{
    int           rc, format, werr;
    FILE         *out;
    char         *outbuf, err[DG_ERRLEN];
    const char   *output;
    dg_policy_t  *policy;
    dg_report_t   rp;

    if (argc > 0 && strcmp(argv[0], "report") == 0) {
        argc--;
        argv++;
    }

    memset(&rp, 0, sizeof(rp));

    rp.files = calloc(argc + 1, sizeof(char *));
    if (rp.files == NULL) {
        fprintf(stderr, "datagate report: out of memory\n");
        return DG_EXIT_RUNTIME;
    }

    rc = dg_report_args(&rp, argc, argv, &format, &output);
    if (rc >= 0) {
        free(rp.files);
        return rc;
    }

    policy = NULL;

    if (rp.policy_path) {
        policy = dg_policy_load(rp.policy_path, err, sizeof(err));
        if (policy == NULL) {
            fprintf(stderr, "datagate report: %s\n", err);
            free(rp.files);
            return DG_EXIT_RUNTIME;
        }

        rp.policy = policy;
    }

    out = NULL;
    outbuf = NULL;

    if (dg_report_init(&rp) != 0) {
        fprintf(stderr, "datagate report: out of memory\n");
        rc = DG_EXIT_RUNTIME;
        goto done;
    }

    rc = dg_report_run(&rp);
    if (rc != DG_EXIT_OK) {
        goto done;
    }

    if (output == NULL || strcmp(output, "-") == 0) {
        out = stdout;

    } else {
        out = fopen(output, "w");
        if (out == NULL) {
            fprintf(stderr, "datagate report: %s: %s\n", output,
                    strerror(errno));
            rc = DG_EXIT_RUNTIME;
            goto done;
        }
    }

    outbuf = malloc(DG_REPORT_OUTBUF);
    if (outbuf) {
        setvbuf(out, outbuf, _IOFBF, DG_REPORT_OUTBUF);
    }

    switch (format) {
    case DG_RFMT_CSV:  werr = dg_report_csv(&rp, out);   break;
    case DG_RFMT_JSON: werr = dg_report_json(&rp, out);  break;
    case DG_RFMT_HTML: werr = dg_report_html(&rp, out);  break;
    default:           werr = dg_report_table(&rp, out); break;
    }

    if (fflush(out) != 0 || ferror(out)) {
        werr = -1;
    }

    if (out != stdout && fclose(out) != 0) {
        werr = -1;
    }

    out = NULL;

    if (werr != 0) {
        fprintf(stderr, "datagate report: %s: %s\n",
                output ? output : "standard output",
                errno ? strerror(errno) : "cannot write the report");
        if (output && strcmp(output, "-") != 0) {
            unlink(output);
        }
        rc = DG_EXIT_RUNTIME;
        goto done;
    }

    if (rp.unreadable > 0) {
        fprintf(stderr, "datagate report: %" PRIu64 " of %" PRIu64
                " lines were not audit records (counted in the report)\n",
                rp.unreadable, rp.lines);
        rc = DG_EXIT_FAIL;
    }

done:

    if (out != NULL && out != stdout) {
        fclose(out);
    }

    if (out == stdout) {
        fflush(stdout);
    }

    free(outbuf);
    dg_report_free(&rp);
    dg_policy_free(policy);
    free(rp.files);

    return rc;
}


/* -1: go on; else the exit code */
static int
dg_report_args(dg_report_t *rp, int argc, char **argv, int *format,
    const char **output)
{
    int          i, k;
    size_t       n;
    const char  *a, *v, *by, *fmt;

    static const char  *opts[] = {
        "--from", "--to", "--by", "--format", "--output", "--policy", NULL
    };

    by = NULL;
    fmt = NULL;
    *output = NULL;

    for (i = 0; i < argc; i++) {
        a = argv[i];

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0
            || strcmp(a, "help") == 0)
        {
            fputs(dg_report_usage, stdout);
            return DG_EXIT_OK;
        }

        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) {
                rp->files[rp->nfiles++] = argv[i];
            }

            break;
        }

        if (a[0] != '-' || a[1] == '\0') {
            rp->files[rp->nfiles++] = a;
            continue;
        }

        for (k = 0; opts[k]; k++) {
            n = strlen(opts[k]);
            if (strncmp(a, opts[k], n) == 0
                && (a[n] == '\0' || a[n] == '='))
            {
                break;
            }
        }

        if (opts[k] == NULL) {
            fprintf(stderr, "datagate report: unknown option \"%s\"\n"
                    "Try \"datagate report --help\".\n", a);
            return DG_EXIT_USAGE;
        }

        n = strlen(opts[k]);

        if (a[n] == '=') {
            v = a + n + 1;

        } else if (i + 1 < argc) {
            v = argv[++i];

        } else {
            fprintf(stderr, "datagate report: %s needs a value\n", opts[k]);
            return DG_EXIT_USAGE;
        }

        switch (k) {
        case 0: rp->from = v;           break;
        case 1: rp->to = v;             break;
        case 2: by = v;                 break;
        case 3: fmt = v;                break;
        case 4: *output = v;            break;
        default: rp->policy_path = v;   break;
        }
    }

    if (rp->nfiles == 0) {
        fprintf(stderr, "datagate report: no audit log given\n"
                "Usage: datagate report [--from DATE] [--to DATE]"
                " [--by DIMS] [--policy PATH]\n"
                "       [--format table|csv|json|html] [--output FILE]"
                " AUDIT.log...\n");
        return DG_EXIT_USAGE;
    }

    k = 0;
    for (i = 0; i < rp->nfiles; i++) {
        k += (strcmp(rp->files[i], "-") == 0);
    }

    if (k > 1) {
        fprintf(stderr, "datagate report: standard input (-) given more"
                " than once\n");
        return DG_EXIT_USAGE;
    }

    if ((rp->from && dg_report_date(rp->from) != 0)
        || (rp->to && dg_report_date(rp->to) != 0))
    {
        fprintf(stderr, "datagate report: \"%s\" is not a date: YYYY-MM-DD,"
                " YYYY-MM-DDTHH:MM or YYYY-MM-DDTHH:MM:SS\n",
                (rp->from && dg_report_date(rp->from) != 0) ? rp->from
                : rp->to);
        return DG_EXIT_USAGE;
    }

    if (rp->from && rp->to && strcmp(rp->from, rp->to) > 0
        && strncmp(rp->from, rp->to, strlen(rp->to)) != 0)
    {
        fprintf(stderr, "datagate report: --from %s is after --to %s\n",
                rp->from, rp->to);
        return DG_EXIT_USAGE;
    }

    if (fmt == NULL || strcmp(fmt, "table") == 0) {
        *format = DG_RFMT_TABLE;

    } else if (strcmp(fmt, "csv") == 0) {
        *format = DG_RFMT_CSV;

    } else if (strcmp(fmt, "json") == 0) {
        *format = DG_RFMT_JSON;

    } else if (strcmp(fmt, "html") == 0) {
        *format = DG_RFMT_HTML;

    } else {
        fprintf(stderr, "datagate report: unknown format \"%s\" (expected"
                " one of: table, csv, json, html)\n", fmt);
        return DG_EXIT_USAGE;
    }

    if (dg_report_files(rp, *output) != 0) {
        return DG_EXIT_USAGE;
    }

    if (by == NULL) {
        by = rp->policy_path ? "org,consumer,dataset,purpose"
                             : "consumer,dataset,purpose";
    }

    if (dg_report_by(rp, by) != 0) {
        return DG_EXIT_USAGE;
    }

    return -1;
}


static int
dg_report_by(dg_report_t *rp, const char *list)
{
    int          d, i;
    size_t       n;
    const char  *p, *e;

    rp->nby = 0;

    for (p = list; ; p = e + 1) {
        e = strchr(p, ',');
        n = e ? (size_t) (e - p) : strlen(p);

        for (d = 0; d < DG_RDIMS; d++) {
            if (n == strlen(dg_report_dim_name(d))
                && strncmp(p, dg_report_dim_name(d), n) == 0)
            {
                break;
            }
        }

        if (d == DG_RDIMS && n == sizeof("department") - 1
            && strncmp(p, "department", n) == 0)
        {
            d = DG_RDIM_ORG;
        }

        if (d == DG_RDIMS) {
            fprintf(stderr, "datagate report: --by: unknown dimension"
                    " \"%.*s\" (expected one of: org, department, consumer,"
                    " dataset, purpose)\n", (int) n, p);
            return -1;
        }

        for (i = 0; i < rp->nby; i++) {
            if (rp->by[i] == d) {
                fprintf(stderr, "datagate report: --by: \"%.*s\" given"
                        " twice\n", (int) n, p);
                return -1;
            }
        }

        if (d == DG_RDIM_ORG && rp->policy_path == NULL) {
            fprintf(stderr, "datagate report: --by %.*s needs --policy:"
                    " a consumer's org is in the policy\n", (int) n, p);
            return -1;
        }

        rp->by[rp->nby++] = d;

        if (e == NULL) {
            break;
        }
    }

    return 0;
}


/*
 * A file given twice would be counted twice; a report written over one
 * of the logs would destroy it.  Both are refused, whatever the names.
 */
static int
dg_report_files(const dg_report_t *rp, const char *output)
{
    int           i, j;
    struct stat   o, *st;

    st = calloc(rp->nfiles, sizeof(struct stat));
    if (st == NULL) {
        return 0;               /* out of memory: found when reading */
    }

    for (i = 0; i < rp->nfiles; i++) {
        if (strcmp(rp->files[i], "-") == 0
            || stat(rp->files[i], &st[i]) != 0)
        {
            continue;           /* named when it is read */
        }

        for (j = 0; j < i; j++) {
            if (st[j].st_ino == st[i].st_ino && st[j].st_dev == st[i].st_dev
                && st[i].st_ino != 0)
            {
                fprintf(stderr, "datagate report: %s and %s are the same"
                        " file: it would be counted twice\n", rp->files[j],
                        rp->files[i]);
                free(st);
                return -1;
            }
        }

        if (output && strcmp(output, "-") != 0 && stat(output, &o) == 0
            && o.st_ino == st[i].st_ino && o.st_dev == st[i].st_dev)
        {
            fprintf(stderr, "datagate report: --output %s is the audit log"
                    " %s\n", output, rp->files[i]);
            free(st);
            return -1;
        }
    }

    free(st);

    return 0;
}


/* YYYY-MM-DD, YYYY-MM-DDTHH:MM, YYYY-MM-DDTHH:MM:SS; 0 or -1 */
static int
dg_report_date(const char *s)
{
    size_t       i, n;
    const char  *form;

    static const char  full[] = "dddd-dd-ddTdd:dd:dd";

    n = strlen(s);

    if (n != 10 && n != 16 && n != 19) {
        return -1;
    }

    form = full;

    for (i = 0; i < n; i++) {
        if (form[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != form[i]) {
            return -1;
        }
    }

    return 0;
}


static int
dg_report_run(dg_report_t *rp)
{
    int           i, rc, next;
    char         *buf, *scratch;
    dg_rin_t     *ins, *in, **order;
    dg_ascan_t   *rec;
    dg_rmerge_t   m;

    memset(&m, 0, sizeof(m));
    m.rp = rp;

    ins = calloc(rp->nfiles, sizeof(dg_rin_t));
    order = calloc(rp->nfiles, sizeof(dg_rin_t *));
    m.heap = calloc(rp->nfiles, sizeof(dg_rin_t *));
    buf = malloc(DG_RIN_BUF);
    scratch = malloc(DG_RIN_BUF);
    rec = malloc(sizeof(dg_ascan_t));

    if (ins == NULL || order == NULL || m.heap == NULL || buf == NULL
        || scratch == NULL || rec == NULL)
    {
        fprintf(stderr, "datagate report: out of memory\n");
        rc = DG_EXIT_RUNTIME;
        goto done;
    }

    /* when each file starts: its first record's time */
    for (i = 0; i < rp->nfiles; i++) {
        in = &ins[i];
        in->name = rp->files[i];
        in->index = i;
        in->fd = -1;
        in->start = INT64_MIN;
        order[i] = in;

        if (strcmp(in->name, "-") != 0
            && dg_rin_probe(in->name, rec, buf, scratch, &in->start) != 0)
        {
            rc = DG_EXIT_RUNTIME;
            goto done;
        }
    }

    free(buf);
    free(scratch);
    free(rec);
    buf = NULL;
    scratch = NULL;
    rec = NULL;

    qsort(order, rp->nfiles, sizeof(dg_rin_t *), dg_rin_start_cmp);

    next = 0;
    rc = DG_EXIT_OK;

    for ( ;; ) {
        /* open every file that starts before the earliest record held */
        while (next < rp->nfiles
               && (m.nheap == 0 || order[next]->start <= m.heap[0]->key))
        {
            in = order[next++];

            if (dg_rin_open(in) != 0) {
                rc = DG_EXIT_RUNTIME;
                goto done;
            }

            switch (dg_rin_next(&m, in)) {
            case 1:
                dg_heap_push(&m, in);
                break;
            case 0:
                dg_rin_close(in);
                break;
            default:
                rc = DG_EXIT_RUNTIME;
                goto done;
            }
        }

        if (m.nheap == 0) {
            break;
        }

        in = dg_heap_pop(&m);

        if (dg_report_add(rp, in->rec) != 0) {
            fprintf(stderr, "datagate report: out of memory\n");
            rc = DG_EXIT_RUNTIME;
            goto done;
        }

        switch (dg_rin_next(&m, in)) {
        case 1:
            dg_heap_push(&m, in);
            break;
        case 0:
            dg_rin_close(in);
            break;
        default:
            rc = DG_EXIT_RUNTIME;
            goto done;
        }
    }

    if (m.warned > DG_REPORT_WARN_MAX) {
        fprintf(stderr, "datagate report: ... and %" PRIu64 " more"
                " unreadable line(s)\n", m.warned - DG_REPORT_WARN_MAX);
    }

done:

    if (ins) {
        for (i = 0; i < rp->nfiles; i++) {
            dg_rin_close(&ins[i]);
        }
    }

    free(ins);
    free(order);
    free(m.heap);
    free(buf);
    free(scratch);
    free(rec);

    return rc;
}


/* the time of the first record in the first DG_RIN_BUF bytes of a file,
 * INT64_MIN when there is none */
static int
dg_rin_probe(const char *name, dg_ascan_t *rec, char *buf, char *scratch,
    int64_t *start)
{
    int          fd;
    char        *p, *e, *nl;
    size_t       got;
    ssize_t      n;
    const char  *err;

    fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "datagate report: %s: %s\n", name, strerror(errno));
        return -1;
    }

    got = 0;

    while (got < DG_RIN_BUF) {
        n = read(fd, buf + got, DG_RIN_BUF - got);

        if (n < 0 && errno == EINTR) {
            continue;
        }

        if (n < 0) {
            fprintf(stderr, "datagate report: %s: %s\n", name,
                    strerror(errno));
            close(fd);
            return -1;
        }

        if (n == 0) {
            break;
        }

        got += n;
    }

    close(fd);

    *start = INT64_MIN;
    e = buf + got;

    for (p = buf; p < e; p = nl + 1) {
        nl = memchr(p, '\n', e - p);
        if (nl == NULL) {
            break;
        }

        if (dg_audit_scan(rec, p, nl - p, scratch, DG_RIN_BUF, &err) == 0) {
            *start = rec->time_ms;
            break;
        }
    }

    return 0;
}


static int
dg_rin_open(dg_rin_t *in)
{
    if (strcmp(in->name, "-") == 0) {
        in->fd = STDIN_FILENO;

    } else {
        in->fd = open(in->name, O_RDONLY | O_CLOEXEC);
        if (in->fd < 0) {
            fprintf(stderr, "datagate report: %s: %s\n", in->name,
                    strerror(errno));
            return -1;
        }
    }

    in->buf = malloc(DG_RIN_BUF);
    in->scratch = malloc(DG_RIN_LINE_MAX);
    in->rec = malloc(sizeof(dg_ascan_t));

    if (in->buf == NULL || in->scratch == NULL || in->rec == NULL) {
        fprintf(stderr, "datagate report: out of memory\n");
        return -1;
    }

    in->pos = 0;
    in->end = 0;
    in->line = 0;

    return 0;
}


static void
dg_rin_close(dg_rin_t *in)
{
    if (in->fd > STDIN_FILENO) {
        close(in->fd);
    }

    in->fd = -1;

    free(in->buf);
    free(in->scratch);
    free(in->rec);

    in->buf = NULL;
    in->scratch = NULL;
    in->rec = NULL;
}


/* the next line: DG_RIN_LINE, DG_RIN_TOOLONG, DG_RIN_EOF, DG_RIN_ERROR */
static int
dg_rin_line(dg_rin_t *in, const char **line, size_t *len)
{
    char     *nl;
    ssize_t   n;

    for ( ;; ) {
        nl = memchr(in->buf + in->pos, '\n', in->end - in->pos);

        if (nl != NULL) {
            *line = in->buf + in->pos;
            *len = nl - (in->buf + in->pos);
            in->pos = nl + 1 - in->buf;

            if (in->skipping) {
                in->skipping = 0;
                return DG_RIN_TOOLONG;
            }

            if (*len > DG_RIN_LINE_MAX) {
                return DG_RIN_TOOLONG;
            }

            return DG_RIN_LINE;
        }

        if (in->eof) {
            if (in->pos == in->end) {
                return in->skipping ? (in->skipping = 0, DG_RIN_TOOLONG)
                                    : DG_RIN_EOF;
            }

            /* the last line, without its LF */
            *line = in->buf + in->pos;
            *len = in->end - in->pos;
            in->pos = in->end;

            if (in->skipping || *len > DG_RIN_LINE_MAX) {
                in->skipping = 0;
                return DG_RIN_TOOLONG;
            }

            return DG_RIN_LINE;
        }

        if (in->pos > 0) {
            memmove(in->buf, in->buf + in->pos, in->end - in->pos);
            in->end -= in->pos;
            in->pos = 0;
        }

        if (in->end == DG_RIN_BUF) {
            /* a line longer than the buffer: dropped up to its LF */
            in->skipping = 1;
            in->end = 0;
        }

        n = read(in->fd, in->buf + in->end, DG_RIN_BUF - in->end);

        if (n < 0 && errno == EINTR) {
            continue;
        }

        if (n < 0) {
            fprintf(stderr, "datagate report: %s: %s\n", in->name,
                    strerror(errno));
            return DG_RIN_ERROR;
        }

        if (n == 0) {
            in->eof = 1;
        }

        in->end += n;
    }
}


/* the next record of a file within the dates: 1, 0 at its end, -1 */
static int
dg_rin_next(dg_rmerge_t *m, dg_rin_t *in)
{
    int           rc;
    size_t        len;
    const char   *line, *err;
    dg_report_t  *rp;

    rp = m->rp;

    for ( ;; ) {
        rc = dg_rin_line(in, &line, &len);

        if (rc == DG_RIN_EOF) {
            return 0;
        }

        if (rc == DG_RIN_ERROR) {
            return -1;
        }

        in->line++;
        rp->lines++;

        if (rc == DG_RIN_TOOLONG) {
            err = "longer than any record";

        } else if (len == 0) {
            err = "an empty line";

        } else if ((rc = dg_audit_scan(in->rec, line, len, in->scratch,
                                       DG_RIN_LINE_MAX, &err)) == 1)
        {
            rp->other++;
            continue;

        } else if (rc == 0) {
            if (!dg_rin_in_range(rp, in->rec)) {
                rp->out_of_range++;
                continue;
            }

            in->key = in->rec->time_ms;
            return 1;
        }

        rp->unreadable++;

        if (m->warned++ < DG_REPORT_WARN_MAX) {
            fprintf(stderr, "datagate report: %s:%" PRIu64 ": not an audit"
                    " record: %s\n", in->name, in->line, err);
        }
    }
}


/* --from and --to, compared with the local time as the record writes it,
 * at the precision given */
static int
dg_rin_in_range(const dg_report_t *rp, const dg_ascan_t *r)
{
    size_t  n;

    if (rp->from) {
        n = strlen(rp->from);
        if (strncmp(r->time.data, rp->from, n) < 0) {
            return 0;
        }
    }

    if (rp->to) {
        n = strlen(rp->to);
        if (strncmp(r->time.data, rp->to, n) > 0) {
            return 0;
        }
    }

    return 1;
}


/* a min-heap of the open files by their current record's time, then by
 * their place on the command line */
static int
dg_rin_before(const dg_rin_t *a, const dg_rin_t *b)
{
    if (a->key != b->key) {
        return a->key < b->key;
    }

    return a->index < b->index;
}


static void
dg_heap_push(dg_rmerge_t *m, dg_rin_t *in)
{
    int        i, parent;
    dg_rin_t  *t;

    i = m->nheap++;
    m->heap[i] = in;

    while (i > 0) {
        parent = (i - 1) / 2;

        if (!dg_rin_before(m->heap[i], m->heap[parent])) {
            break;
        }

        t = m->heap[i];
        m->heap[i] = m->heap[parent];
        m->heap[parent] = t;
        i = parent;
    }
}


static dg_rin_t *
dg_heap_pop(dg_rmerge_t *m)
{
    int        i, l, r, min;
    dg_rin_t  *top, *t;

    top = m->heap[0];
    m->heap[0] = m->heap[--m->nheap];

    i = 0;

    for ( ;; ) {
        l = 2 * i + 1;
        r = l + 1;
        min = i;

        if (l < m->nheap && dg_rin_before(m->heap[l], m->heap[min])) {
            min = l;
        }

        if (r < m->nheap && dg_rin_before(m->heap[r], m->heap[min])) {
            min = r;
        }

        if (min == i) {
            break;
        }

        t = m->heap[i];
        m->heap[i] = m->heap[min];
        m->heap[min] = t;
        i = min;
    }

    return top;
}


static int
dg_rin_start_cmp(const void *a, const void *b)
{
    const dg_rin_t  *x, *y;

    x = *(const dg_rin_t **) a;
    y = *(const dg_rin_t **) b;

    if (x->start != y->start) {
        return (x->start < y->start) ? -1 : 1;
    }

    return x->index - y->index;
}
