/*
 * datagate trace LEAK... --index PATH [--secret FILE] [--field NAME]...
 *                [--policy PATH] [--min N]
 *
 * Which consumers received the records of a leaked file: the file's
 * identifying values (JSON array, JSON lines, or CSV with a header row;
 * the columns named with --field, else the trace fields of the policy's
 * datasets, else every value) are fingerprinted as the gateway does
 * (core/dg_trace.c) and looked up, streaming, in the provenance index
 * (docs/trace.md).  Consumers are ranked by the leaked values they
 * received (distinct), then by how often.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include "datagate.h"
#include "dg_policy.h"
#include "dg_rstate.h"
#include "dg_trace.h"


#define DG_TR_LEAK_MAX      (256u << 20)    /* bytes of a leaked file */
#define DG_TR_SECRET_MAX    4096            /* as datagate_secret */
#define DG_TR_CHUNK         (4u << 20)      /* index read at a time */
#define DG_TR_NAMES_MAX     64              /* --field */
#define DG_TR_CONSUMERS     4096            /* hash buckets */
#define DG_TR_TIME_LEN      32


typedef struct dg_tr_consumer_s  dg_tr_consumer_t;

struct dg_tr_consumer_s {
    dg_tr_consumer_t           *next;       /* in its bucket */
    char                        id[DG_TRACE_CONSUMER_MAX + 1];
    size_t                      len;
    uint8_t                    *seen;       /* per leaked value */
    uint64_t                    distinct;
    uint64_t                    received;
    uint32_t                    first;
    uint32_t                    last;
};


typedef struct {
    uint64_t                   *fp;         /* the leak's, distinct */
    size_t                      n;
    size_t                      cap;
    uint64_t                   *slot;       /* open addressing: fp + 1 */
    uint32_t                   *slot_ix;
    size_t                      mask;

    dg_tr_consumer_t           *bucket[DG_TR_CONSUMERS];
    dg_tr_consumer_t          **all;
    size_t                      nall;
    size_t                      capall;

    uint8_t                     key[DG_TRACE_KEY_LEN];
} dg_tr_t;


static const char *dg_tr_usage_text =
"usage: datagate trace LEAK... --index PATH [--index PATH]...\n"
"                      --secret FILE [--field NAME]... [--policy PATH]\n"
"                      [--min N]\n"
"\n"
"Names the consumers that received the records of leaked files (JSON\n"
"array, JSON lines, or CSV with a header row), from the provenance index\n"
"the gateway writes (datagate_trace).\n"
"\n"
"  --index PATH    an index file (rotated files: give each)\n"
"  --secret FILE   the key file of datagate_secret (--key FILE the same)\n"
"  --field NAME    a column or member holding identifying values (more\n"
"                  than one: repeat); default: the trace fields of the\n"
"                  datasets of --policy, else every value of the leak\n"
"  --policy PATH   the policy: trace fields, and each consumer's org\n"
"  --min N         name consumers that received at least N of the leaked\n"
"                  values (default 1)\n"
"\n"
"Exit status: 0 a consumer named, 1 none, 2 usage, 3 unreadable input.\n";


static void
dg_tr_add(void *data, uint64_t fp)
{
    dg_tr_t   *t = data;
    uint64_t  *p;

    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        p = realloc(t->fp, t->cap * sizeof(uint64_t));
        if (p == NULL) {
            fprintf(stderr, "datagate: out of memory\n");
            exit(DG_EXIT_RUNTIME);
        }
        t->fp = p;
    }

    t->fp[t->n++] = fp;
}


static char *
dg_tr_read(const char *path, size_t max, size_t *len)
{
    FILE         *f;
    char         *buf;
    struct stat   st;

    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "datagate: %s: %s\n", path, strerror(errno));
        return NULL;
    }

    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)
        || (size_t) st.st_size > max)
    {
        fprintf(stderr, "datagate: %s: not a regular file of at most %zu "
                "bytes\n", path, max);
        fclose(f);
        return NULL;
    }

    buf = malloc((size_t) st.st_size + 1);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }

    *len = fread(buf, 1, (size_t) st.st_size, f);
    buf[*len] = '\0';
    fclose(f);

    return buf;
}


/* one CSV cell from *pp: unquoted into out; returns 1 at a row's end */
static int
dg_tr_csv_cell(const char **pp, const char *end, char *out, size_t cap,
    size_t *olen)
{
    const char  *p;
    size_t       o;

    p = *pp;
    o = 0;

    if (p < end && *p == '"') {
        p++;
        while (p < end) {
            if (*p == '"') {
                if (p + 1 < end && p[1] == '"') {
                    if (o < cap) {
                        out[o++] = '"';
                    }
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            if (o < cap) {
                out[o++] = *p;
            }
            p++;
        }
    }

    while (p < end && *p != ',' && *p != '\n' && *p != '\r') {
        if (o < cap) {
            out[o++] = *p;
        }
        p++;
    }

    *olen = o;

    if (p < end && *p == ',') {
        *pp = p + 1;
        return 0;
    }

    if (p < end && *p == '\r') {
        p++;
    }
    if (p < end && *p == '\n') {
        p++;
    }

    *pp = p;

    return 1;
}


static int
dg_tr_csv(dg_tr_t *t, const char *path, const char *buf, size_t len,
    const char **names, size_t nnames)
{
    const char  *p, *end;
    char         cell[DG_TRACE_VALUE_MAX + 1];
    size_t       col, olen, i, ncols;
    uint8_t      use[1024];
    int          eol, any;

    p = buf;
    end = buf + len;

    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
        p += 3;                                 /* a BOM */
    }

    memset(use, 0, sizeof(use));
    any = 0;

    for (col = 0, eol = 0; !eol && p < end; col++) {
        eol = dg_tr_csv_cell(&p, end, cell, sizeof(cell) - 1, &olen);

        if (col >= sizeof(use)) {
            continue;
        }

        if (nnames == 0) {
            use[col] = 1;
        }

        for (i = 0; i < nnames; i++) {
            if (strlen(names[i]) == olen && memcmp(names[i], cell, olen) == 0)
            {
                use[col] = 1;
            }
        }

        any |= use[col];
    }

    ncols = col;

    if (!any) {
        fprintf(stderr, "datagate: %s: no column of the header row is an "
                "identifying field (name them with --field)\n", path);
        return -1;
    }

    while (p < end) {
        for (col = 0, eol = 0; !eol && p < end; col++) {
            eol = dg_tr_csv_cell(&p, end, cell, sizeof(cell) - 1, &olen);

            if (col < ncols && col < sizeof(use) && use[col] && olen) {
                dg_tr_add(t, dg_trace_fp(t->key, (const uint8_t *) cell,
                                         olen > DG_TRACE_VALUE_MAX
                                         ? DG_TRACE_VALUE_MAX : olen));
            }
        }
    }

    return 0;
}


static int
dg_tr_leak(dg_tr_t *t, const char *path, const char **names, size_t nnames)
{
    char             *buf;
    size_t            len, i, before;
    size_t            lens[DG_TR_NAMES_MAX];
    dg_trace_scan_t   s;
    int               rc;

    buf = dg_tr_read(path, DG_TR_LEAK_MAX, &len);
    if (buf == NULL) {
        return -1;
    }

    before = t->n;

    for (i = 0; i < len && (buf[i] == ' ' || buf[i] == '\n'
                            || buf[i] == '\r' || buf[i] == '\t'); i++)
    {
        /* leading white space */
    }

    rc = 0;

    if (i < len && (buf[i] == '[' || buf[i] == '{')) {
        for (i = 0; i < nnames; i++) {
            lens[i] = strlen(names[i]);
        }

        dg_trace_scan_init(&s, t->key, nnames ? names : NULL, lens, nnames,
                           dg_tr_add, t);
        dg_trace_scan(&s, (const uint8_t *) buf, len);
        dg_trace_scan_end(&s);

    } else {
        rc = dg_tr_csv(t, path, buf, len, names, nnames);
    }

    free(buf);

    if (rc == 0 && t->n == before) {
        fprintf(stderr, "datagate: %s: no identifying value found\n", path);
    }

    return rc;
}


static int
dg_tr_cmp64(const void *a, const void *b)
{
    uint64_t  x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return x < y ? -1 : x > y;
}


/* the leak's values, distinct, in a table */
static int
dg_tr_table(dg_tr_t *t)
{
    size_t  i, j, size;

    qsort(t->fp, t->n, sizeof(uint64_t), dg_tr_cmp64);

    for (i = 0, j = 0; i < t->n; i++) {
        if (j == 0 || t->fp[j - 1] != t->fp[i]) {
            t->fp[j++] = t->fp[i];
        }
    }
    t->n = j;

    for (size = 64; size < 4 * t->n; size *= 2) {
        /* a quarter full at most */
    }

    t->slot = calloc(size, sizeof(uint64_t));
    t->slot_ix = calloc(size, sizeof(uint32_t));
    if (t->slot == NULL || t->slot_ix == NULL) {
        return -1;
    }
    t->mask = size - 1;

    for (i = 0; i < t->n; i++) {
        for (j = t->fp[i] & t->mask; t->slot[j]; j = (j + 1) & t->mask) {
            /* probe */
        }
        t->slot[j] = t->fp[i] + 1;      /* 0: empty; fp ~0 wraps: rare */
        t->slot_ix[j] = (uint32_t) i;
    }

    return 0;
}


static dg_tr_consumer_t *
dg_tr_consumer(dg_tr_t *t, const uint8_t *id, size_t len)
{
    size_t              i;
    uint32_t            h;
    dg_tr_consumer_t   *c, **a;

    for (h = 2166136261u, i = 0; i < len; i++) {
        h = (h ^ id[i]) * 16777619u;
    }
    h %= DG_TR_CONSUMERS;

    for (c = t->bucket[h]; c; c = c->next) {
        if (c->len == len && memcmp(c->id, id, len) == 0) {
            return c;
        }
    }

    c = calloc(1, sizeof(dg_tr_consumer_t));
    if (c == NULL) {
        return NULL;
    }
    c->seen = calloc(t->n ? t->n : 1, 1);
    if (c->seen == NULL) {
        free(c);
        return NULL;
    }

    memcpy(c->id, id, len);
    c->len = len;
    c->next = t->bucket[h];
    t->bucket[h] = c;

    if (t->nall == t->capall) {
        t->capall = t->capall ? 2 * t->capall : 64;
        a = realloc(t->all, t->capall * sizeof(*a));
        if (a == NULL) {
            return NULL;
        }
        t->all = a;
    }
    t->all[t->nall++] = c;

    return c;
}


/* one index file, streamed; returns blocks read or -1 */
static int
dg_tr_index(dg_tr_t *t, const char *path, uint64_t *blocks,
    uint64_t *entries)
{
    FILE              *f;
    uint8_t           *buf, *p, *end;
    size_t             have, got, n, clen, need, i, j;
    uint32_t           when;
    uint64_t           fp, off;
    dg_tr_consumer_t  *c;

    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "datagate: %s: %s\n", path, strerror(errno));
        return -1;
    }

    buf = malloc(DG_TR_CHUNK);
    if (buf == NULL) {
        fclose(f);
        return -1;
    }

    have = 0;
    off = 0;

    for ( ;; ) {
        got = fread(buf + have, 1, DG_TR_CHUNK - have, f);
        have += got;

        p = buf;
        end = buf + have;

        while (end - p >= DG_TRACE_HEAD_FIXED) {
            if (memcmp(p, DG_TRACE_MAGIC, DG_TRACE_MAGIC_LEN) != 0) {
                fprintf(stderr, "datagate: %s: not a trace index block at "
                        "offset %llu\n", path,
                        (unsigned long long) (off + (p - buf)));
                free(buf);
                fclose(f);
                return -1;
            }

            when = (uint32_t) p[4] | (uint32_t) p[5] << 8
                   | (uint32_t) p[6] << 16 | (uint32_t) p[7] << 24;
            n = (size_t) p[8] | (size_t) p[9] << 8;
            clen = p[10];
            need = DG_TRACE_HEAD_FIXED + clen + n * DG_TRACE_FP_LEN;

            if ((size_t) (end - p) < need) {
                break;
            }

            c = NULL;
            (*blocks)++;
            *entries += n;

            for (i = 0; i < n; i++) {
                fp = dg_trace_get_fp(p + DG_TRACE_HEAD_FIXED + clen
                                     + i * DG_TRACE_FP_LEN);

                for (j = fp & t->mask; t->slot[j]; j = (j + 1) & t->mask) {
                    if (t->slot[j] == fp + 1) {
                        break;
                    }
                }

                if (t->slot[j] == 0) {
                    continue;
                }

                if (c == NULL) {
                    c = dg_tr_consumer(t, p + DG_TRACE_HEAD_FIXED, clen);
                    if (c == NULL) {
                        free(buf);
                        fclose(f);
                        return -1;
                    }
                }

                if (!c->seen[t->slot_ix[j]]) {
                    c->seen[t->slot_ix[j]] = 1;
                    c->distinct++;
                }

                c->received++;

                if (c->first == 0 || when < c->first) {
                    c->first = when;
                }
                if (when > c->last) {
                    c->last = when;
                }
            }

            p += need;
        }

        off += p - buf;
        have = end - p;
        memmove(buf, p, have);

        if (got == 0) {
            break;                      /* the end: all blocks were read */
        }
    }

    free(buf);
    fclose(f);

    if (have) {
        fprintf(stderr, "datagate: warning: %s: %zu bytes at its end are "
                "not a whole block (a write cut short)\n", path, have);
    }

    return 0;
}


static int
dg_tr_rank(const void *a, const void *b)
{
    const dg_tr_consumer_t  *x = *(dg_tr_consumer_t *const *) a;
    const dg_tr_consumer_t  *y = *(dg_tr_consumer_t *const *) b;

    if (x->distinct != y->distinct) {
        return x->distinct > y->distinct ? -1 : 1;
    }
    if (x->received != y->received) {
        return x->received > y->received ? -1 : 1;
    }
    return strcmp(x->id, y->id);
}


static void
dg_tr_time(uint32_t when, char *out)
{
    time_t     t;
    struct tm  tm;

    t = (time_t) when;
    gmtime_r(&t, &tm);
    strftime(out, DG_TR_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
}


int
dg_cmd_trace(int argc, char **argv)
{
    int                 i, rc, named;
    char               *secret, *end;
    const char         *leaks[DG_TR_NAMES_MAX], *indexes[DG_TR_NAMES_MAX];
    const char         *names[DG_TR_NAMES_MAX], *key_path, *policy_path;
    const char         *org;
    char                first[DG_TR_TIME_LEN], last[DG_TR_TIME_LEN];
    char                err[1024];
    size_t              nleaks, nindexes, nnames, slen, k, d;
    unsigned long       min;
    uint64_t            blocks, entries;
    dg_tr_t            *t;
    dg_policy_t        *pol;
    clock_t             c0;

    nleaks = nindexes = nnames = 0;
    key_path = policy_path = NULL;
    min = 1;

    for (i = 1; i < argc; i++) {
        const char  *a = argv[i];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(dg_tr_usage_text, stdout);
            return DG_EXIT_OK;
        }

        if (strcmp(a, "--index") == 0 || strcmp(a, "--secret") == 0
            || strcmp(a, "--key") == 0 || strcmp(a, "--field") == 0
            || strcmp(a, "--policy") == 0 || strcmp(a, "--min") == 0)
        {
            if (i + 1 >= argc) {
                fprintf(stderr, "datagate: trace: %s needs a value\n", a);
                return DG_EXIT_USAGE;
            }

            if (strcmp(a, "--index") == 0) {
                if (nindexes == DG_TR_NAMES_MAX) {
                    goto many;
                }
                indexes[nindexes++] = argv[++i];

            } else if (strcmp(a, "--field") == 0) {
                if (nnames == DG_TR_NAMES_MAX) {
                    goto many;
                }
                names[nnames++] = argv[++i];

            } else if (strcmp(a, "--policy") == 0) {
                policy_path = argv[++i];

            } else if (strcmp(a, "--min") == 0) {
                errno = 0;
                min = strtoul(argv[++i], &end, 10);
                if (errno || *end || min == 0) {
                    fprintf(stderr, "datagate: trace: --min wants a number "
                            "of at least 1\n");
                    return DG_EXIT_USAGE;
                }

            } else {
                key_path = argv[++i];
            }

            continue;
        }

        if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "datagate: trace: unknown option '%s'\n%s", a,
                    dg_tr_usage_text);
            return DG_EXIT_USAGE;
        }

        if (nleaks == DG_TR_NAMES_MAX) {
            goto many;
        }
        leaks[nleaks++] = a;
    }

    if (nleaks == 0 || nindexes == 0 || key_path == NULL) {
        fputs(dg_tr_usage_text, stderr);
        return DG_EXIT_USAGE;
    }

    pol = NULL;

    if (policy_path) {
        pol = dg_policy_load(policy_path, err, sizeof(err));
        if (pol == NULL) {
            fprintf(stderr, "datagate: %s\n", err);
            return DG_EXIT_RUNTIME;
        }

        if (nnames == 0) {
            for (k = 0; k < pol->ndatasets; k++) {
                for (d = 0; d < pol->datasets[k].ntrace
                            && nnames < DG_TR_NAMES_MAX; d++)
                {
                    names[nnames++] = pol->datasets[k].trace[d].data;
                }
            }
        }
    }

    t = calloc(1, sizeof(dg_tr_t));
    secret = dg_tr_read(key_path, DG_TR_SECRET_MAX, &slen);
    if (t == NULL || secret == NULL) {
        return DG_EXIT_RUNTIME;
    }

    slen = dg_secret_len((const uint8_t *) secret, slen);
    if (dg_trace_key((const uint8_t *) secret, slen, t->key) != 0) {
        return DG_EXIT_RUNTIME;
    }
    memset(secret, 0, slen);
    free(secret);

    for (k = 0; k < nleaks; k++) {
        if (dg_tr_leak(t, leaks[k], names, nnames) != 0) {
            return DG_EXIT_RUNTIME;
        }
    }

    if (dg_tr_table(t) != 0) {
        fprintf(stderr, "datagate: out of memory\n");
        return DG_EXIT_RUNTIME;
    }

    c0 = clock();
    blocks = entries = 0;

    for (k = 0; k < nindexes; k++) {
        if (dg_tr_index(t, indexes[k], &blocks, &entries) != 0) {
            return DG_EXIT_RUNTIME;
        }
    }

    printf("leaked values: %zu distinct; index: %llu blocks, %llu "
           "fingerprints, %.2f s\n", t->n, (unsigned long long) blocks,
           (unsigned long long) entries,
           (double) (clock() - c0) / CLOCKS_PER_SEC);

    qsort(t->all, t->nall, sizeof(dg_tr_consumer_t *), dg_tr_rank);

    named = 0;

    for (k = 0; k < t->nall; k++) {
        dg_tr_consumer_t  *c = t->all[k];

        if (c->distinct < min) {
            continue;
        }

        if (named == 0) {
            printf("%-4s %-24s %-20s %-12s %-9s %-20s %s\n", "rank",
                   "consumer", "org", "leaked", "received", "first",
                   "last");
        }

        org = "-";
        if (pol) {
            for (d = 0; d < pol->nconsumers; d++) {
                if (pol->consumers[d].id.len == c->len
                    && memcmp(pol->consumers[d].id.data, c->id, c->len) == 0)
                {
                    org = pol->consumers[d].org.len
                          ? pol->consumers[d].org.data : "-";
                }
            }
        }

        dg_tr_time(c->first, first);
        dg_tr_time(c->last, last);

        printf("%-4d %-24s %-20s %5llu/%-6zu %-9llu %-20s %s\n", named + 1,
               c->id, org, (unsigned long long) c->distinct, t->n,
               (unsigned long long) c->received, first, last);
        named++;
    }

    if (named == 0) {
        printf("no consumer received %s%lu of these values\n",
               min > 1 ? "at least " : "", min);
    }

    rc = named ? DG_EXIT_OK : DG_EXIT_FAIL;

    if (pol) {
        dg_policy_free(pol);
    }

    return rc;

many:

    fprintf(stderr, "datagate: trace: more than %d files or fields\n",
            DG_TR_NAMES_MAX);

    return DG_EXIT_USAGE;
}
