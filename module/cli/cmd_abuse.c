/*
 * datagate command-line tool: abuse detection offline.
 *
 *   datagate abuse replay --policy PATH [--state FILE] [--secret PATH]
 *                         [--max-false PCT] [--within N] TRACE...
 *
 * Replays a trace of requests through the detectors of the policy's
 * "abuse:" mappings, exactly as one gateway runs them (core/dg_abuse.c),
 * and reports the alarms: on ordinary traffic (false alarms, per
 * consumer-hour) and on labelled traffic (how many of its requests
 * passed before the first alarm).  scripts/traffic-replay writes such
 * traces.  --state writes the volume baselines learned as a
 * datagate_state file, so that a gateway starts from them.
 */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datagate.h"
#include "dg_abuse.h"
#include "dg_policy.h"
#include "dg_rstate.h"


#define DG_REPLAY_LINE_MAX      65536
#define DG_REPLAY_LABELS_MAX  1024
#define DG_REPLAY_LABEL_MAX     64
#define DG_REPLAY_HOURS_MAX     (1u << 20)  /* consumer-hours counted */
#define DG_REPLAY_SECRET_MAX    4096
#define DG_REPLAY_LINGER        3600    /* s: a label's ids still count
                                           after its last request */


/* one (consumer, dataset) */
typedef struct dg_rpair_s  dg_rpair_t;

struct dg_rpair_s {
    dg_rpair_t                 *next;
    const dg_consumer_t        *consumer;
    const dg_dataset_t         *dataset;
    const dg_abuse_conf_t      *conf;
    double                      base_calls;
    dg_abuse_state_t           *st;
    int64_t                     hour;       /* last ordinary hour seen */
    int64_t                     alarm_hour; /* last hour with an alarm */
    int64_t                     suspended;  /* until, s */
    struct dg_rlabel_s         *label;      /* the last label seen */
    int64_t                     label_last; /* its last request, s */
};


typedef struct dg_rlabel_s {
    char                        label[DG_REPLAY_LABEL_MAX];
    const dg_rpair_t           *pair;
    uint64_t                    requests;
    uint64_t                    flagged_at; /* 0: not */
    unsigned                    kind;
} dg_rlabel_t;


typedef struct {
    const dg_policy_t          *p;
    uint8_t                     key[DG_ABUSE_KEY_LEN];
    dg_rpair_t                 *pairs;
    size_t                      npairs;
    dg_rlabel_t              *labels;
    size_t                      nlabels;

    uint64_t                    requests;
    uint64_t                    labelled;
    uint64_t                    skipped;    /* unknown ids, bad lines */
    uint64_t                    refused;    /* while suspended */
    uint64_t                    hours;      /* ordinary consumer-hours */
    uint64_t                    alarm_hours;
    uint64_t                    alarms[DG_ABUSE_KINDS];
    double                      closest[DG_ABUSE_KINDS]; /* of the limit
                                               ordinary traffic came to */
    const dg_rpair_t           *closest_pair[DG_ABUSE_KINDS];
    int64_t                     first, last;
} dg_replay_t;


static void
dg_abuse_usage(FILE *f)
{
    fprintf(f,
"usage: datagate abuse replay --policy PATH [--state FILE] [--secret PATH]\n"
"                             [--max-false PCT] [--within N] TRACE...\n"
"\n"
"Replays requests through the abuse detection of the policy (its datasets'\n"
"and grants' abuse: mappings), as one gateway counts them, and reports\n"
"the alarms.  TRACE (\"-\": standard input) has one request per line:\n"
"\n"
"    TIME CONSUMER DATASET URI [LABEL]\n"
"\n"
"TIME in Unix seconds, URI the path and query as the client sent them,\n"
"LABEL \"-\" (or none) for ordinary traffic, any other word for traffic\n"
"that should be flagged (scripts/traffic-replay writes \"scraper:NAME\").\n"
"Lines starting with # are skipped.\n"
"\n"
"  --policy PATH     the policy the gateways load\n"
"  --state FILE      write the learned volume baselines as a datagate_state\n"
"                    file (a gateway started with it begins from them)\n"
"  --secret PATH     the datagate_secret key file (hashes as the gateways\n"
"                    do; the counts are the same without it)\n"
"  --max-false PCT   exit 1 when more than PCT %% of the ordinary\n"
"                    consumer-hours raise an alarm\n"
"  --within N        exit 1 when a label's traffic is not flagged within\n"
"                    its first N requests\n"
"\n"
"Exit: 0 done (and the goals met), 1 a goal missed, 2 usage, 3 a file\n"
"or the policy cannot be read.\n");
}


static dg_rpair_t *
dg_replay_pair(dg_replay_t *rp, const dg_consumer_t *c, const dg_dataset_t *d)
{
    size_t              i, n;
    dg_rpair_t         *pr;
    const dg_grant_t   *g, *grants[64];
    const dg_limit_t   *l;

    for (pr = rp->pairs; pr; pr = pr->next) {
        if (pr->consumer == c && pr->dataset == d) {
            return pr;
        }
    }

    pr = calloc(1, sizeof(dg_rpair_t));
    if (pr == NULL) {
        return NULL;
    }

    pr->consumer = c;
    pr->dataset = d;

    /* the grant whose abuse: applies (the first that sets one), else the
     * first grant, for its quota */
    n = dg_policy_grants(rp->p, c, d, grants, 64);
    g = NULL;

    for (i = 0; i < n && i < 64; i++) {
        if (grants[i]->abuse.set) {
            g = grants[i];
            break;
        }
    }

    if (g == NULL && n > 0) {
        g = grants[0];
    }

    pr->conf = dg_abuse_for(d, g);

    l = (g != NULL && g->limit.quota) ? &g->limit : &d->limit;
    pr->base_calls = l->quota ? (double) l->quota * 3600.0 / l->quota_period
                              : 0.0;

    if (pr->conf) {
        pr->st = calloc(1, dg_abuse_state_size(pr->conf));
        if (pr->st == NULL) {
            free(pr);
            return NULL;
        }

        dg_abuse_state_init(pr->st, pr->conf);
    }

    pr->next = rp->pairs;
    rp->pairs = pr;
    rp->npairs++;

    return pr;
}


static dg_rlabel_t *
dg_replay_label(dg_replay_t *rp, const char *label, const dg_rpair_t *pr)
{
    size_t          i;
    dg_rlabel_t  *s;

    for (i = 0; i < rp->nlabels; i++) {
        if (strcmp(rp->labels[i].label, label) == 0) {
            return &rp->labels[i];
        }
    }

    if (rp->nlabels == DG_REPLAY_LABELS_MAX) {
        return NULL;
    }

    s = &rp->labels[rp->nlabels++];
    snprintf(s->label, sizeof(s->label), "%s", label);
    s->pair = pr;

    return s;
}


/* the path as nginx holds it: percent-decoded once */
static size_t
dg_replay_path(const char *s, size_t len, char *out)
{
    size_t  i, o;
    int     h, l;

    for (i = 0, o = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len
            && (h = (s[i + 1] >= 'a' ? s[i + 1] - 'a' + 10
                     : s[i + 1] >= 'A' ? s[i + 1] - 'A' + 10
                     : s[i + 1] - '0')) >= 0 && h < 16
            && (l = (s[i + 2] >= 'a' ? s[i + 2] - 'a' + 10
                     : s[i + 2] >= 'A' ? s[i + 2] - 'A' + 10
                     : s[i + 2] - '0')) >= 0 && l < 16)
        {
            out[o++] = (char) (h << 4 | l);
            i += 2;
            continue;
        }

        out[o++] = s[i];
    }

    return o;
}


/* how close ordinary traffic came to each limit (fired or not) */
static void
dg_replay_closest(dg_replay_t *rp, const dg_rpair_t *pr,
    const dg_abuse_conf_t *c, const dg_abuse_result_t *res)
{
    double  v[DG_ABUSE_KINDS];
    size_t  k;

    v[0] = c->distinct ? (double) res->distinct / c->distinct : 0;
    v[1] = c->sequential ? (double) res->run / c->sequential : 0;
    v[2] = res->calls_limit > 0 ? (double) res->calls / res->calls_limit : 0;
    v[3] = res->records_limit > 0 && res->records
           ? (double) res->records / res->records_limit : 0;

    for (k = 0; k < DG_ABUSE_KINDS; k++) {
        if (v[k] > rp->closest[k]) {
            rp->closest[k] = v[k];
            rp->closest_pair[k] = pr;
        }
    }
}


static void
dg_replay_line(dg_replay_t *rp, char *line, dg_abuse_id_t *ids,
    char *scratch, char *path)
{
    int                  more;
    char                *f[5], *q, *save;
    size_t               n, nids, plen;
    double               t;
    int64_t              now, hour;
    unsigned             k;
    dg_rpair_t          *pr;
    dg_rlabel_t       *s;
    dg_abuse_input_t     in;
    dg_abuse_result_t    res;
    const dg_dataset_t  *d;
    const dg_consumer_t *c;

    n = 0;
    for (q = strtok_r(line, " \t\r\n", &save); q && n < 5;
         q = strtok_r(NULL, " \t\r\n", &save))
    {
        f[n++] = q;
    }

    if (n < 4 || f[0][0] == '#') {
        if (n > 0 && f[0][0] != '#') {
            rp->skipped++;
        }
        return;
    }

    t = strtod(f[0], &q);
    c = dg_policy_consumer(rp->p, f[1], strlen(f[1]));
    d = dg_policy_dataset(rp->p, f[2], strlen(f[2]));

    if (*q != '\0' || !isfinite(t) || t <= 0 || c == NULL || d == NULL) {
        rp->skipped++;
        return;
    }

    now = (int64_t) t;
    pr = dg_replay_pair(rp, c, d);
    if (pr == NULL) {
        rp->skipped++;
        return;
    }

    rp->requests++;

    if (rp->first == 0 || now < rp->first) {
        rp->first = now;
    }
    if (now > rp->last) {
        rp->last = now;
    }

    s = NULL;

    if (n == 5 && strcmp(f[4], "-") != 0) {
        rp->labelled++;
        s = dg_replay_label(rp, f[4], pr);
        if (s) {
            s->requests++;
            pr->label = s;
            pr->label_last = now;
        }

    } else if (pr->label && now - pr->label_last < DG_REPLAY_LINGER) {
        /*
         * ordinary requests of a pair a label's traffic still fills the
         * windows of: what they find is that traffic's doing, not theirs
         * (the label counts its own requests only)
         */
        s = pr->label;
    }

    hour = dg_abuse_hour(now);

    /* ordinary traffic: of pairs no labelled traffic has run on (yet) */

    if (pr->label == NULL && pr->hour != hour) {
        pr->hour = hour;
        if (rp->hours < DG_REPLAY_HOURS_MAX) {
            rp->hours++;
        }
    }

    if (pr->conf == NULL) {
        return;
    }

    if (now < pr->suspended) {
        rp->refused += s == NULL;
        return;
    }

    /* the request as nginx splits it: decoded path, raw query */

    q = strchr(f[3], '?');
    plen = dg_replay_path(f[3], q ? (size_t) (q - f[3]) : strlen(f[3]),
                          path);

    nids = 0;
    more = 0;

    if (pr->conf->distinct || pr->conf->sequential) {
        nids = dg_abuse_ids(pr->conf, rp->key, path, plen, q ? q + 1 : NULL,
                            q ? strlen(q + 1) : 0, scratch, ids,
                            DG_ABUSE_IDS_MAX, &more);
    }

    memset(&in, 0, sizeof(in));
    in.calls = 1;
    in.base_calls = pr->base_calls;

    dg_abuse_observe(pr->st, pr->conf, now, ids, nids, more, &in, &res);

    if (pr->label == NULL) {
        dg_replay_closest(rp, pr, pr->conf, &res);
    }

    if (res.fired == 0) {
        return;
    }

    if (pr->conf->action == DG_ABUSE_SUSPEND) {
        pr->suspended = now + pr->conf->suspend_for;
    }

    if (s != NULL) {
        if (s->flagged_at == 0) {
            s->flagged_at = s->requests;
            s->kind = res.fired;
        }
        return;
    }

    if (pr->label != NULL) {
        return;
    }

    for (k = 0; k < DG_ABUSE_KINDS; k++) {
        if (res.fired & (1u << k)) {
            rp->alarms[k]++;
        }
    }

    if (pr->alarm_hour != hour) {
        pr->alarm_hour = hour;
        rp->alarm_hours++;
    }
}


static int
dg_replay_file(dg_replay_t *rp, const char *name)
{
    int             rc;
    FILE           *f;
    char           *line, *scratch, *path;
    dg_abuse_id_t  *ids;

    f = strcmp(name, "-") == 0 ? stdin : fopen(name, "r");
    if (f == NULL) {
        fprintf(stderr, "datagate: %s: %s\n", name, strerror(errno));
        return -1;
    }

    line = malloc(DG_REPLAY_LINE_MAX);
    scratch = malloc(DG_REPLAY_LINE_MAX);
    path = malloc(DG_REPLAY_LINE_MAX);
    ids = malloc(DG_ABUSE_IDS_MAX * sizeof(dg_abuse_id_t));
    rc = 0;

    if (line == NULL || scratch == NULL || path == NULL || ids == NULL) {
        fprintf(stderr, "datagate: out of memory\n");
        rc = -1;
        goto done;
    }

    while (fgets(line, DG_REPLAY_LINE_MAX, f) != NULL) {
        dg_replay_line(rp, line, ids, scratch, path);
    }

    if (ferror(f)) {
        fprintf(stderr, "datagate: %s: %s\n", name, strerror(errno));
        rc = -1;
    }

done:

    if (f != stdin) {
        fclose(f);
    }

    free(line);
    free(scratch);
    free(path);
    free(ids);

    return rc;
}


static int
dg_replay_state(dg_replay_t *rp, const char *file)
{
    FILE        *f;
    char        *buf;
    size_t       n;
    dg_rpair_t  *pr;

    f = fopen(file, "w");
    if (f == NULL) {
        fprintf(stderr, "datagate: %s: %s\n", file, strerror(errno));
        return -1;
    }

    buf = malloc(DG_ABUSE_VOLUME_TEXT_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        return -1;
    }

    fprintf(f, "DGQ1\n");

    for (pr = rp->pairs; pr; pr = pr->next) {
        if (pr->st == NULL || pr->st->hour == 0 || pr->conf->factor <= 0) {
            continue;
        }

        n = dg_abuse_volume_encode(pr->st, buf, DG_ABUSE_VOLUME_TEXT_MAX + 1);
        if (n) {
            fprintf(f, "abuse %s|%s %.*s\n", pr->consumer->id.data,
                    pr->dataset->id.data, (int) n, buf);
        }
    }

    free(buf);

    if (fclose(f) != 0) {
        fprintf(stderr, "datagate: %s: %s\n", file, strerror(errno));
        return -1;
    }

    return 0;
}


static void
dg_replay_kinds(unsigned bits, char *buf, size_t cap)
{
    size_t    len;
    unsigned  k;

    buf[0] = '\0';
    len = 0;

    for (k = 0; k < DG_ABUSE_KINDS; k++) {
        if ((bits & (1u << k)) && len < cap) {
            len += (size_t) snprintf(buf + len, cap - len, "%s%s",
                                     len ? ", " : "",
                                     dg_abuse_kind_names[k]);
        }
    }
}


static int
dg_abuse_replay(int argc, char **argv)
{
    int           i, rc, nfiles;
    char          err[DG_ERRLEN], kinds[128];
    char         *end;
    size_t        k;
    double        maxfalse, pct;
    long          within;
    FILE         *sf;
    uint8_t       secret[DG_REPLAY_SECRET_MAX];
    size_t        slen;
    dg_bytes_t    part;
    uint8_t       hk[DG_SHA256_LEN];
    dg_replay_t   rp;
    const char   *policy, *state, *secret_path, *files[256];
    dg_policy_t  *p;
    dg_rpair_t   *pr, *next;

    policy = NULL;
    state = NULL;
    secret_path = NULL;
    maxfalse = -1;
    within = 0;
    nfiles = 0;

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            dg_abuse_usage(stdout);
            return DG_EXIT_OK;
        }

        if ((strcmp(argv[i], "--policy") == 0 || strcmp(argv[i], "--state") == 0
             || strcmp(argv[i], "--secret") == 0
             || strcmp(argv[i], "--max-false") == 0
             || strcmp(argv[i], "--within") == 0) && i + 1 >= argc)
        {
            fprintf(stderr, "datagate: %s needs a value\n", argv[i]);
            return DG_EXIT_USAGE;
        }

        if (strcmp(argv[i], "--policy") == 0) {
            policy = argv[++i];
        } else if (strcmp(argv[i], "--state") == 0) {
            state = argv[++i];
        } else if (strcmp(argv[i], "--secret") == 0) {
            secret_path = argv[++i];
        } else if (strcmp(argv[i], "--max-false") == 0) {
            maxfalse = strtod(argv[++i], &end);
            if (*end != '\0' || maxfalse < 0) {
                fprintf(stderr, "datagate: --max-false: a percentage\n");
                return DG_EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--within") == 0) {
            within = strtol(argv[++i], &end, 10);
            if (*end != '\0' || within <= 0) {
                fprintf(stderr, "datagate: --within: a number of "
                        "requests\n");
                return DG_EXIT_USAGE;
            }
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "datagate: unknown option %s\n", argv[i]);
            dg_abuse_usage(stderr);
            return DG_EXIT_USAGE;
        } else if (nfiles < 256) {
            files[nfiles++] = argv[i];
        }
    }

    if (policy == NULL || nfiles == 0) {
        dg_abuse_usage(stderr);
        return DG_EXIT_USAGE;
    }

    p = dg_policy_load(policy, err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "datagate: %s\n", err);
        return DG_EXIT_RUNTIME;
    }

    memset(&rp, 0, sizeof(rp));
    rp.p = p;
    rp.labels = calloc(DG_REPLAY_LABELS_MAX, sizeof(dg_rlabel_t));

    if (rp.labels == NULL) {
        dg_policy_free(p);
        return DG_EXIT_RUNTIME;
    }

    /* the gateways' key of identifiers: HMAC(secret, "abuse-ids") */
    if (secret_path) {
        sf = fopen(secret_path, "rb");
        if (sf == NULL) {
            fprintf(stderr, "datagate: %s: %s\n", secret_path,
                    strerror(errno));
            dg_policy_free(p);
            free(rp.labels);
            return DG_EXIT_RUNTIME;
        }

        slen = fread(secret, 1, sizeof(secret), sf);
        fclose(sf);
        slen = dg_secret_len(secret, slen);

        part.data = "abuse-ids";
        part.len = sizeof("abuse-ids") - 1;

        if (dg_hmac_sha256(secret, slen, &part, 1, hk) == 0) {
            memcpy(rp.key, hk, DG_ABUSE_KEY_LEN);
        }
    }

    rc = DG_EXIT_OK;

    for (i = 0; i < nfiles; i++) {
        if (dg_replay_file(&rp, files[i]) != 0) {
            rc = DG_EXIT_RUNTIME;
        }
    }

    if (rc == DG_EXIT_OK && state && dg_replay_state(&rp, state) != 0) {
        rc = DG_EXIT_RUNTIME;
    }

    pct = rp.hours ? 100.0 * (double) rp.alarm_hours / (double) rp.hours
                   : 0.0;

    printf("replay: %llu requests (%llu labelled, %llu lines skipped), "
           "%.1f days, %zu consumer x dataset pairs\n",
           (unsigned long long) rp.requests,
           (unsigned long long) rp.labelled,
           (unsigned long long) rp.skipped,
           rp.last > rp.first ? (double) (rp.last - rp.first) / 86400 : 0.0,
           rp.npairs);

    printf("ordinary traffic: %llu consumer-hours, %llu with an alarm: "
           "%.3f %% (enumeration %llu, sequential %llu, volume %llu, "
           "records %llu); %llu ordinary requests refused while "
           "suspended\n",
           (unsigned long long) rp.hours,
           (unsigned long long) rp.alarm_hours, pct,
           (unsigned long long) rp.alarms[0],
           (unsigned long long) rp.alarms[1],
           (unsigned long long) rp.alarms[2],
           (unsigned long long) rp.alarms[3],
           (unsigned long long) rp.refused);

    printf("closest ordinary traffic came to each limit:\n");

    for (k = 0; k < DG_ABUSE_KINDS; k++) {
        printf("  %-12s %3.0f %%%s%s%s%s%s\n", dg_abuse_kind_names[k],
               100 * rp.closest[k], rp.closest_pair[k] ? " (" : "",
               rp.closest_pair[k] ? rp.closest_pair[k]->consumer->id.data : "",
               rp.closest_pair[k] ? " on " : "",
               rp.closest_pair[k]
               ? rp.closest_pair[k]->dataset->id.data : "",
               rp.closest_pair[k] ? ")" : "");
    }

    printf("labels: %zu\n", rp.nlabels);

    for (k = 0; k < rp.nlabels; k++) {
        dg_rlabel_t  *s = &rp.labels[k];

        if (s->flagged_at) {
            dg_replay_kinds(s->kind, kinds, sizeof(kinds));
            printf("  %s: flagged at its request %llu of %llu (%s)\n",
                   s->label, (unsigned long long) s->flagged_at,
                   (unsigned long long) s->requests, kinds);
        } else {
            printf("  %s: not flagged in its %llu requests\n", s->label,
                   (unsigned long long) s->requests);
        }

        if (within && rc == DG_EXIT_OK
            && (s->flagged_at == 0 || s->flagged_at > (uint64_t) within))
        {
            rc = DG_EXIT_FAIL;
        }
    }

    if (maxfalse >= 0 && pct > maxfalse && rc == DG_EXIT_OK) {
        rc = DG_EXIT_FAIL;
    }

    if (rc == DG_EXIT_FAIL) {
        printf("goal missed:%s%s\n",
               maxfalse >= 0 && pct > maxfalse ? " false alarms above "
                                                 "--max-false" : "",
               within ? " (or a label not flagged within --within)" : "");
    }

    for (pr = rp.pairs; pr; pr = next) {
        next = pr->next;
        free(pr->st);
        free(pr);
    }

    free(rp.labels);
    dg_policy_free(p);

    return rc;
}


int
dg_cmd_abuse(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0
        || strcmp(argv[1], "-h") == 0)
    {
        dg_abuse_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? DG_EXIT_USAGE : DG_EXIT_OK;
    }

    if (strcmp(argv[1], "replay") == 0) {
        return dg_abuse_replay(argc - 2, argv + 2);
    }

    fprintf(stderr, "datagate: abuse: unknown subcommand '%s' (replay; see "
            "datagate abuse --help)\n", argv[1]);

    return DG_EXIT_USAGE;
}
