/*
 * datagate policy check | explain | catalogue
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "datagate.h"
#include "dg_policy.h"
#include "dg_catalogue.h"
#include "dg_mask.h"
#include "dg_header.h"


#define DG_TZ_OFFSET        (8 * 3600)
#define DG_EXPLAIN_WIDTH    78      /* columns of the header lists */


static void dg_print_headers(const dg_dataset_t *d, const dg_plan_t *pl);
static void dg_print_detect(const dg_policy_t *p);

static void
dg_policy_usage(FILE *out)
{
    fprintf(out,
"NAME\n"
"    datagate policy - validate a policy, explain a decision, list what a\n"
"    consumer may ask for\n"
"\n"
"SYNOPSIS\n"
"    datagate policy check PATH...\n"
"    datagate policy explain PATH --consumer ID --dataset ID [--purpose ID]\n"
"                            [--method METHOD] [--approval NUMBER]\n"
"                            [--at YYYY-MM-DD]\n"
"    datagate policy catalogue PATH --consumer ID [--at YYYY-MM-DD]\n"
"\n"
"DESCRIPTION\n"
"    PATH is a policy file, or a directory whose *.yaml and *.yml files\n"
"    are read in name order and merged (see policy/schema.md).\n"
"\n"
"    check\n"
"        Loads and compiles the policy exactly as the nginx module does at\n"
"        `nginx -t` and prints, for each PATH,\n"
"            PATH: ok (version 1a2b3c4d5e6f..., 4 consumers, 5 datasets,\n"
"            5 grants)\n"
"        or the first error on standard error as\n"
"            FILE:LINE: FIELD: message\n"
"        e.g. policy.yaml:23: grants[1].dataset: unknown dataset\n"
"        'population.persn' (did you mean 'population.person'?)\n"
"\n"
"    explain\n"
"        Evaluates one request against the policy as the gateway would\n"
"        once the client certificate has been mapped to the consumer, and\n"
"        prints the decision, its reason code (the JSON error code the\n"
"        consumer would receive) and the policy rule behind it: the\n"
"        dataset's methods, the grant that allows (or, on an unconditional\n"
"        dataset, the grant that applies and what it adds, and why the\n"
"        others do not apply); then the rate and quota that apply, whose\n"
"        they are (the grant's or the dataset's) and the budget they are\n"
"        counted in; then the masking plan field by field: JSON key,\n"
"        class, class level against the consumer's clearance, method, and\n"
"        why (masked by level, revealed by the grant, dropped by the\n"
"        grant, clear), plus the unlisted-key and detect modes.\n"
"\n"
"        Network, geo, incident controls (revoked, suspended, frozen) and\n"
"        the counters of rate limits and quotas are run-time state and\n"
"        are not evaluated here; the consumer's network and geo rules are\n"
"        listed for reference.\n"
"\n"
"    catalogue\n"
"        Prints, as JSON, what the consumer may ask for: the datasets it\n"
"        can reach, each way in (its clearance on an unconditional\n"
"        dataset, or one of its grants) with the purposes, validity\n"
"        window, whether an approval number is needed, methods, rate and\n"
"        quota, and the field plan (each field clear, masked with which\n"
"        method, or dropped).  It is the document a location with\n"
"        `datagate_catalogue;` answers that consumer, without the\n"
"        \"locations\" the gateway adds (docs/catalogue.md).  Nothing of\n"
"        other consumers is in it.\n"
"\n"
"OPTIONS (explain)\n"
"    --consumer ID      consumer id as in the policy (required)\n"
"    --dataset ID       dataset id as in `datagate_dataset` (required)\n"
"    --purpose ID       the Data-Purpose header; leave out to see\n"
"                       purpose_required\n"
"    --method METHOD    HTTP method, default GET (case-sensitive, as in\n"
"                       HTTP)\n"
"    --approval NUMBER  the Data-Approval header\n"
"    --at YYYY-MM-DD    evaluate at noon (UTC+8) of that day instead of now\n"
"    Options also take the --name=value form; catalogue takes --consumer\n"
"    and --at.\n"
"\n"
"EXIT STATUS\n"
"    check:    0 every PATH is valid, 1 some PATH is not, 2 usage error\n"
"    explain:  0 allowed, 1 denied, 2 usage error (bad option, unknown\n"
"              dataset), 3 the policy does not load\n"
"    catalogue: 0 printed, 1 no such consumer, 2 usage error, 3 the\n"
"              policy does not load\n"
"\n"
"EXAMPLES\n"
"    datagate policy check policy/sample.yaml\n"
"    datagate policy explain policy/sample.yaml \\\n"
"        --consumer civil-affairs.assistance --dataset population.person \\\n"
"        --purpose social-assistance --approval GXSJ-2024-0137\n"
"    datagate policy catalogue policy/sample.yaml \\\n"
"        --consumer civil-affairs.assistance\n");
}


static int
dg_policy_check(int argc, char **argv)
{
    int           i, rc;
    char          err[DG_ERRLEN];
    dg_policy_t  *p;

    if (argc < 1) {
        fprintf(stderr, "datagate: policy check: PATH expected "
                "(see datagate policy --help)\n");
        return DG_EXIT_USAGE;
    }

    rc = DG_EXIT_OK;

    for (i = 0; i < argc; i++) {
        p = dg_policy_load(argv[i], err, sizeof(err));
        if (p == NULL) {
            fprintf(stderr, "%s\n", err);
            rc = DG_EXIT_FAIL;
            continue;
        }

        printf("%s: ok (version %.12s\xe2\x80\xa6, %zu consumer%s, "
               "%zu dataset%s, %zu grant%s)\n", argv[i], p->version_hex,
               p->nconsumers, p->nconsumers == 1 ? "" : "s",
               p->ndatasets, p->ndatasets == 1 ? "" : "s",
               p->ngrants, p->ngrants == 1 ? "" : "s");

        dg_policy_free(p);
    }

    return rc;
}


static void
dg_date_str(time_t t, char buf[16])
{
    time_t     s;
    struct tm  tm;

    s = t + DG_TZ_OFFSET;

    if (gmtime_r(&s, &tm) == NULL) {
        snprintf(buf, 16, "?");
        return;
    }

    strftime(buf, 16, "%Y-%m-%d", &tm);
}


static void
dg_print_grant(const dg_policy_t *p, const dg_grant_t *g)
{
    size_t  i;
    char    a[16], b[16], m[256];

    printf("grant at %s:%u: %s -> %s for [", g->src_file.data, g->src_line,
           g->consumer->id.data, g->dataset->id.data);

    for (i = 0; i < g->npurposes; i++) {
        printf("%s%s", i ? ", " : "", g->purposes[i]->id.data);
    }

    printf("]\n");

    if (g->approval.len) {
        printf("             approval %s (Data-Approval)\n",
               g->approval.data);
    }

    if (g->valid_from || g->valid_until) {
        a[0] = b[0] = '\0';
        if (g->valid_from) {
            dg_date_str(g->valid_from, a);
        }
        if (g->valid_until) {
            dg_date_str(g->valid_until, b);
        }
        printf("             valid %s .. %s (days in UTC+8)\n",
               a[0] ? a : "(open)", b[0] ? b : "(open)");
    }

    printf("             methods %s%s\n",
           dg_methods_str(p, dg_grant_methods(g), m, sizeof(m)),
           g->methods ? "" : " (the dataset's)");

    if (g->nreveal) {
        printf("             reveal");
        for (i = 0; i < g->nreveal; i++) {
            printf("%s%s", i ? ", " : " ", g->reveal[i].data);
        }
        printf("\n");
    }

    if (g->ndrop) {
        printf("             drop");
        for (i = 0; i < g->ndrop; i++) {
            printf("%s%s", i ? ", " : " ", g->drop[i].data);
        }
        printf("\n");
    }

    if (g->rate_str.len || g->quota_str.len) {
        printf("             limits %s%s%s\n", g->rate_str.data,
               g->rate_str.len && g->quota_str.len ? ", " : "",
               g->quota_str.data);
    }
}


/* why a grant of the pair does not apply to the request, or NULL */
static const char *
dg_grant_skip(const dg_grant_t *g, const dg_request_t *req,
    const dg_purpose_t *pu)
{
    size_t  i;

    for (i = 0; i < g->npurposes; i++) {
        if (g->purposes[i] == pu) {
            break;
        }
    }

    if (pu == NULL || i == g->npurposes) {
        return "it does not list the purpose";
    }

    if ((g->valid_from && req->now < g->valid_from)
        || (g->valid_until && req->now > g->valid_until))
    {
        return "outside its validity window";
    }

    if (g->approval.len
        && (req->approval.data == NULL
            || req->approval.len != g->approval.len
            || memcmp(req->approval.data, g->approval.data, g->approval.len)
               != 0))
    {
        return req->approval.data ? "a different Data-Approval"
                                  : "no Data-Approval";
    }

    return NULL;
}


/* rate and quota of an allowed request: where each comes from, and the
 * budget it is counted in (as the gateway keys it, docs/redis.md) */
static void
dg_print_limits(const dg_dataset_t *ds, const dg_consumer_t *c,
    const dg_grant_t *g)
{
    int              n;
    dg_limits_t      l;
    const dg_str_t  *val;

    dg_limits_of(ds, g, &l);

    for (n = 0; n < 2; n++) {
        val = n == 0 ? &l.rate : &l.quota;

        printf("  %-10s ", n == 0 ? "rate:" : "quota:");

        if (val->len == 0) {
            printf("none (neither %s nor the dataset sets a %s)\n",
                   g != NULL ? "the grant" : "a grant",
                   n == 0 ? "rate" : "quota");
            continue;
        }

        if (n == 0 ? l.rate_grant : l.quota_grant) {
            printf("%s, the grant's; budget %s|%s (this consumer's under "
                   "its grants)\n", val->data, c->id.data, ds->id.data);
        } else {
            printf("%s, the dataset's%s; budget dataset:%s|%s (this "
                   "consumer's own)\n", val->data,
                   g != NULL ? " (the grant sets none)" : "",
                   c->id.data, ds->id.data);
        }
    }
}


/* abuse detection of an allowed request: the grant's, or the dataset's */
static void
dg_print_abuse(const dg_dataset_t *ds, const dg_grant_t *g)
{
    char                    buf[512];
    const dg_abuse_conf_t  *a;

    a = dg_abuse_for(ds, g);

    if (a == NULL) {
        printf("  %-10s none (%s)\n", "abuse:",
               g != NULL && g->abuse.off ? "the grant turns it off"
               : "neither the grant nor the dataset sets abuse");
        return;
    }

    printf("  %-10s %s, the %s's (at %s:%u); counted per consumer and "
           "dataset\n", "abuse:", dg_abuse_describe(a, buf, sizeof(buf)),
           a == &ds->abuse ? "dataset" : "grant", a->src_file, a->src_line);

    if (a->factor > 0) {
        const dg_limit_t  *l;
        double             base;

        l = (g != NULL && g->limit.quota) ? &g->limit : &ds->limit;
        base = l->quota ? (double) l->quota * 3600.0 / l->quota_period : 0;

        printf("             an hour of the week not seen yet: at most "
               "%.0f calls (the larger of the floor %u/h and %g x %.0f/h, "
               "the quota's hourly share)\n",
               base * a->factor > a->floor ? base * a->factor : a->floor,
               a->floor, a->factor, base);
    }
}


static void
dg_print_plan(const dg_policy_t *p, const dg_dataset_t *d,
    const dg_consumer_t *c, const dg_grant_t *g, const dg_plan_t *pl)
{
    char               spec[64], why[160], lv[8];
    size_t             i, kw, cw;
    dg_plan_field_t    f;
    const dg_class_t  *cl;

    for (i = 0; i < pl->nfields; i++) {
        if (pl->actions[i].method != DG_MASK_CLEAR) {
            break;
        }
    }

    printf("\nmasking plan (%zu field%s, body %s):\n", pl->nfields,
           pl->nfields == 1 ? "" : "s",
           !pl->masks ? "passes unchanged"
           : (i < pl->nfields || d->unlisted_drop || d->detect)
             ? "is rewritten"
             : "is inspected and counted, shown in clear");

    kw = 3;
    cw = 5;

    for (i = 0; i < pl->nfields; i++) {
        if (dg_plan_field(p, d, c, g, pl, i, &f) != 0) {
            continue;
        }
        if (f.key.len > kw) {
            kw = f.key.len;
        }
        if (f.cls && f.cls->id.len > cw) {
            cw = f.cls->id.len;
        }
    }

    printf("  %-*s  %-*s  %-5s  %-12s  %s\n", (int) kw, "key", (int) cw,
           "class", "level", "method", "rule");

    for (i = 0; i < pl->nfields; i++) {
        if (dg_plan_field(p, d, c, g, pl, i, &f) != 0) {
            continue;
        }

        cl = f.cls;
        dg_mask_spec_str(f.action, spec, sizeof(spec));

        switch (f.rule) {

        case DG_PF_DROPPED:
            snprintf(why, sizeof(why), "dropped by grant");
            break;

        case DG_PF_OTHER:
            snprintf(why, sizeof(why), "%s", spec);
            break;

        case DG_PF_CLASS_CLEAR:
            snprintf(why, sizeof(why),
                     "level %u > clearance %u: the class's method is clear",
                     cl->level, c->clearance);
            break;

        case DG_PF_REVEALED:
            snprintf(why, sizeof(why),
                     "level %u > clearance %u: revealed by grant",
                     cl->level, c->clearance);
            break;

        case DG_PF_MASKED:
            snprintf(why, sizeof(why),
                     "level %u > clearance %u: masked with %s",
                     cl->level, c->clearance, spec);
            break;

        default:
            snprintf(why, sizeof(why), "level %u <= clearance %u: clear",
                     cl->level, c->clearance);
            break;
        }

        if (cl != NULL) {
            snprintf(lv, sizeof(lv), "%u", cl->level);
        } else {
            snprintf(lv, sizeof(lv), "-");
        }

        printf("  %-*s  %-*s  %-5s  %-12s  %s\n", (int) kw, f.key.data,
               (int) cw, cl ? cl->id.data : "-", lv, spec, why);
    }

    if (pl->nfields == 0) {
        printf("  (the dataset lists no fields)\n");
    }

    printf("  unlisted keys: %s\n", d->unlisted_drop
           ? "drop (allow-list: every other member is removed, key and "
             "value; an object or array under a path step or a container "
             "is walked)"
           : "pass (passed through and counted per dataset)");
    if (d->ncontainers) {
        printf("  containers:");
        for (i = 0; i < d->ncontainers; i++) {
            printf("%s %s", i ? "," : "", d->containers[i].data);
        }
        printf("%s\n", d->unlisted_drop ? "" : " (no effect: unlisted "
                                                "keys pass)");
    }
    printf("  detect: %s\n", d->detect
           ? "on (strings, numbers and keys outside classified fields "
             "that hold a resident ID, mobile number, bank card or credit "
             "code are masked)"
           : "off");

    if (pl->masks) {
        dg_print_detect(p);
    }

    dg_print_headers(d, pl);
}


/*
 * The safety net's method for each detect kind (dg_mask_detect_kinds[]
 * under this policy, as the gateway takes them): the body with detect on
 * and the response headers are masked with these.
 */
static void
dg_print_detect(const dg_policy_t *p)
{
    int                           cls[DG_DETECT_MAX];
    char                          spec[64], why[256];
    unsigned                      k;
    dg_mask_spec_t                detect[DG_DETECT_MAX];
    const dg_class_t             *c;
    const dg_mask_detect_kind_t  *dk;

    dg_policy_detect_specs(p, detect, cls);

    printf("  safety net (detect, response headers), kind by kind:\n");
    printf("    %-10s  %-26s  %-17s  %-12s  %s\n", "kind", "what", "class",
           "method", "rule");

    for (k = 0; k < DG_DETECT_MAX; k++) {
        dk = &dg_mask_detect_kinds[k];
        c = cls[k] >= 0 ? &p->classes[cls[k]] : NULL;
        dg_mask_spec_str(&detect[k], spec, sizeof(spec));

        if (c == NULL) {
            snprintf(why, sizeof(why), "the kind's own (no class %s)",
                     dk->class_id);

        } else if (c->mask.method == DG_MASK_CLEAR) {
            snprintf(why, sizeof(why), "the kind's own (class %s is clear, "
                     "at %s:%u)", dk->class_id, c->src_file.data,
                     c->src_line);

        } else {
            snprintf(why, sizeof(why), "the class's mask, at %s:%u",
                     c->src_file.data, c->src_line);
        }

        printf("    %-10s  %-26s  %-17s  %-12s  %s\n", dk->name, dk->what,
               dk->class_id, spec, why);
    }
}


/* the response-header rule (dg_header.h) */
static void
dg_print_headers(const dg_dataset_t *d, const dg_plan_t *pl)
{
    size_t                  i, col;
    const dg_header_def_t  *h;

    if (!pl->masks) {
        printf("  response headers: passed as the provider sends them (the "
               "body is not masked)\n");
        return;
    }

    printf("  response headers: only these of the provider's pass, every "
           "other one is\n"
           "    dropped and counted as unlisted; what passes is scanned by "
           "the safety net\n"
           "    (resident ID, mobile, bank card, credit code), whatever "
           "detect says\n");

    printf("    safe set:");
    col = 14;

    for (h = dg_header_safe; h->name; h++) {
        if (col + strlen(h->name) + 2 > DG_EXPLAIN_WIDTH) {
            printf("\n             ");
            col = 13;
        }
        col += printf(" %s%s", h->name, h[1].name ? "," : "");
    }

    printf("\n    listed:  ");

    if (d->nheaders == 0) {
        printf(" (none: the dataset has no headers:)\n");
        return;
    }

    col = 14;

    for (i = 0; i < d->nheaders; i++) {
        if (col + d->headers[i].len + 2 > DG_EXPLAIN_WIDTH) {
            printf("\n             ");
            col = 13;
        }
        col += printf(" %s%s", d->headers[i].data,
                      i + 1 < d->nheaders ? "," : "");
    }

    printf("\n");
}


static void
dg_print_consumer(const dg_policy_t *p, const dg_consumer_t *c)
{
    size_t  i;
    char    buf[64];

    printf("  consumer:  %s%s%s%s, clearance %u (%s)\n", c->id.data,
           c->org.len ? " (" : "", c->org.data, c->org.len ? ")" : "",
           c->clearance,
           c->clearance >= 1 && c->clearance <= DG_LEVEL_MAX
           ? p->level_names[c->clearance].data : "none");

    if (c->nnetworks) {
        printf("             networks (checked at the gateway):");
        for (i = 0; i < c->nnetworks; i++) {
            unsigned  bits, k;

            inet_ntop(c->networks[i].family, c->networks[i].addr, buf,
                      sizeof(buf));
            bits = 0;
            for (k = 0; k < 16; k++) {
                bits += (unsigned) __builtin_popcount(c->networks[i].mask[k]);
            }
            printf(" %s/%u", buf, bits);
        }
        printf("\n");
    }

    if (c->ncountries || c->nregions) {
        printf("             geo (checked at the gateway):");
        for (i = 0; i < c->ncountries; i++) {
            printf(" %s", c->countries[i].data);
        }
        for (i = 0; i < c->nregions; i++) {
            printf(" %s", c->regions[i].data);
        }
        printf("\n");
    }
}


/* --at YYYY-MM-DD: noon (UTC+8) of that day; 0 ok, -1 (said why) */
static int
dg_parse_at(const char *cmd, const char *at, time_t *now)
{
    int        y, m, d;
    struct tm  tm;

    if (strlen(at) != 10 || sscanf(at, "%4d-%2d-%2d", &y, &m, &d) != 3
        || y < 1970 || m < 1 || m > 12 || d < 1 || d > 31)
    {
        fprintf(stderr, "datagate: policy %s: --at wants YYYY-MM-DD, got "
                "'%s'\n", cmd, at);
        return -1;
    }

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    tm.tm_hour = 12;
    *now = timegm(&tm);

    /* 2024-02-30 normalises to March: not a real date */
    if (gmtime_r(now, &tm) == NULL || tm.tm_mday != d || tm.tm_mon != m - 1)
    {
        fprintf(stderr, "datagate: policy %s: --at: no such date '%s'\n",
                cmd, at);
        return -1;
    }

    *now -= DG_TZ_OFFSET;

    return 0;
}


static const char *
dg_opt(int argc, char **argv, int *i, const char *name)
{
    size_t  len;

    len = strlen(name);

    if (strncmp(argv[*i], name, len) != 0) {
        return NULL;
    }

    if (argv[*i][len] == '=') {
        return argv[*i] + len + 1;
    }

    if (argv[*i][len] != '\0') {
        return NULL;
    }

    if (*i + 1 >= argc) {
        fprintf(stderr, "datagate: policy: %s needs a value\n", name);
        return "";
    }

    return argv[++*i];
}


static int
dg_policy_explain(int argc, char **argv)
{
    int                   i, rc;
    char                  err[DG_ERRLEN], a[16], b[16], mbuf[1024];
    size_t                n, k;
    const char           *path, *consumer, *dataset, *purpose, *method;
    const char           *approval, *at, *v;
    dg_policy_t          *p;
    dg_request_t          req;
    dg_decision_t         dec;
    const dg_grant_t     *gl[64];
    const dg_dataset_t   *ds;
    const dg_consumer_t  *c;

    path = consumer = dataset = purpose = approval = at = NULL;
    method = "GET";

    for (i = 0; i < argc; i++) {
        if ((v = dg_opt(argc, argv, &i, "--consumer")) != NULL) {
            consumer = v;
        } else if ((v = dg_opt(argc, argv, &i, "--dataset")) != NULL) {
            dataset = v;
        } else if ((v = dg_opt(argc, argv, &i, "--purpose")) != NULL) {
            purpose = v;
        } else if ((v = dg_opt(argc, argv, &i, "--method")) != NULL) {
            method = v;
        } else if ((v = dg_opt(argc, argv, &i, "--approval")) != NULL) {
            approval = v;
        } else if ((v = dg_opt(argc, argv, &i, "--at")) != NULL) {
            at = v;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "datagate: policy explain: unknown option '%s' "
                    "(see datagate policy --help)\n", argv[i]);
            return DG_EXIT_USAGE;
        } else if (path == NULL) {
            path = argv[i];
        } else {
            fprintf(stderr, "datagate: policy explain: one PATH only\n");
            return DG_EXIT_USAGE;
        }

        if (v != NULL && v[0] == '\0' && v != purpose && v != approval) {
            return DG_EXIT_USAGE;
        }
    }

    if (path == NULL || consumer == NULL || dataset == NULL) {
        fprintf(stderr, "datagate: policy explain: PATH, --consumer and "
                "--dataset are required (see datagate policy --help)\n");
        return DG_EXIT_USAGE;
    }

    memset(&req, 0, sizeof(req));
    req.now = time(NULL);

    if (at != NULL && dg_parse_at("explain", at, &req.now) != 0) {
        return DG_EXIT_USAGE;
    }

    p = dg_policy_load(path, err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "%s\n", err);
        return DG_EXIT_RUNTIME;
    }

    /* as the gateway: the policy's extension methods have their bits */
    req.method = dg_policy_method_bit(p, method, strlen(method));

    ds = dg_policy_dataset(p, dataset, strlen(dataset));
    if (ds == NULL) {
        fprintf(stderr, "datagate: policy explain: unknown dataset '%s'\n",
                dataset);
        dg_policy_free(p);
        return DG_EXIT_USAGE;
    }

    c = dg_policy_consumer(p, consumer, strlen(consumer));

    req.consumer = c;
    req.dataset = ds;
    if (purpose != NULL) {
        req.purpose.data = purpose;
        req.purpose.len = strlen(purpose);
    }
    if (approval != NULL) {
        req.approval.data = approval;
        req.approval.len = strlen(approval);
    }

    dg_decide(p, &req, &dec);

    dg_date_str(req.now, a);

    if (dec.reason == DG_R_OK) {
        printf("decision: allowed\n");
    } else {
        printf("decision: denied: %s (HTTP %d)\n", dg_reason_code(dec.reason),
               dg_reason_status(dec.reason));
        printf("  message:   %s\n", dg_reason_message(dec.reason));
    }

    printf("  policy:    %s (version %.12s\xe2\x80\xa6)\n", path,
           p->version_hex);
    printf("  request:   %s %s, purpose %s, approval %s, at %s (UTC+8)\n",
           method, dataset, purpose ? purpose : "(none)",
           approval ? approval : "(none)", a);

    if (c == NULL) {
        printf("  rule:      no consumer '%s' in the policy\n", consumer);
        dg_policy_free(p);
        return DG_EXIT_FAIL;
    }

    dg_print_consumer(p, c);

    printf("  dataset:   %s (%s), %s, level %u (%s), at %s:%u\n",
           ds->id.data, ds->name.data,
           ds->share == DG_SHARE_NONE ? "share: none (不予共享)"
           : ds->share == DG_SHARE_CONDITIONAL
             ? "share: conditional (有条件共享)"
             : "share: unconditional (无条件共享)",
           ds->level, p->level_names[ds->level].data, ds->src_file.data,
           ds->src_line);
    printf("             methods %s (grants may narrow them)\n",
           dg_methods_str(p, ds->methods, mbuf, sizeof(mbuf)));

    if (ds->rate_str.len || ds->quota_str.len) {
        printf("             limits %s%s%s (each consumer its own budget, "
               "unless a grant sets its own)\n", ds->rate_str.data,
               ds->rate_str.len && ds->quota_str.len ? ", " : "",
               ds->quota_str.data);
    }

    if (dec.purpose != NULL) {
        printf("  purpose:   %s (%s)\n", dec.purpose->id.data,
               dec.purpose->name.data);
    }

    printf("  rule:      ");

    switch (dec.reason) {

    case DG_R_OK:
        if (ds->share == DG_SHARE_UNCONDITIONAL) {
            printf("unconditional dataset: clearance %u >= level %u, "
                   "%s among the dataset's methods\n",
                   c->clearance, ds->level, method);

            n = dg_policy_grants(p, c, ds, gl, 64);

            if (dec.grant != NULL) {
                printf("             and this grant applies, adding its "
                       "methods, reveal, drop and limits:\n"
                       "             ");
                dg_print_grant(p, dec.grant);

            } else if (n == 0) {
                printf("             no grant adds to it\n");

            } else {
                printf("             no grant applies (a grant only adds "
                       "and never takes access away):\n");
            }

            for (k = 0; k < n && k < 64; k++) {
                if (gl[k] == dec.grant) {
                    continue;
                }
                printf("             not applied (%s): ",
                       dg_grant_skip(gl[k], &req, dec.purpose)
                       ? dg_grant_skip(gl[k], &req, dec.purpose)
                       : "another grant came first");
                dg_print_grant(p, gl[k]);
            }

        } else {
            dg_print_grant(p, dec.grant);
        }
        break;

    case DG_R_DATASET_NOT_SHARED:
        printf("the dataset has share: none; it is never served\n");
        break;

    case DG_R_PURPOSE_REQUIRED:
        printf("every request must declare a purpose (Data-Purpose "
               "header; --purpose)\n");
        break;

    case DG_R_PURPOSE_UNKNOWN:
        printf("'%s' is not one of the policy's purposes:", purpose);
        for (k = 0; k < p->npurposes; k++) {
            printf(" %s", p->purposes[k].id.data);
        }
        printf("\n");
        break;

    case DG_R_LEVEL_EXCEEDED:
        printf("unconditional dataset: clearance %u < level %u\n",
               c->clearance, ds->level);
        break;

    case DG_R_PURPOSE_NOT_GRANTED:
        n = dg_policy_grants(p, c, ds, gl, 64);
        if (n == 0) {
            printf("no grant for %s on %s\n", c->id.data, ds->id.data);
        } else {
            printf("no grant for %s on %s lists purpose %s; the grants "
                   "are:\n", c->id.data, ds->id.data, purpose);
            for (k = 0; k < n && k < 64; k++) {
                printf("             ");
                dg_print_grant(p, gl[k]);
            }
        }
        break;

    case DG_R_GRANT_EXPIRED:
        a[0] = b[0] = '\0';
        if (dec.grant->valid_from) {
            dg_date_str(dec.grant->valid_from, a);
        }
        if (dec.grant->valid_until) {
            dg_date_str(dec.grant->valid_until, b);
        }
        printf("outside the validity window %s .. %s of the ",
               a[0] ? a : "(open)", b[0] ? b : "(open)");
        dg_print_grant(p, dec.grant);
        break;

    case DG_R_APPROVAL_REQUIRED:
        printf("%s Data-Approval %s is needed by the ",
               approval ? "a different" : "missing:",
               dec.grant->approval.data);
        dg_print_grant(p, dec.grant);
        break;

    case DG_R_METHOD_NOT_GRANTED:
        if (dec.grant == NULL) {
            printf("%s is not among the methods of dataset %s (%s), at "
                   "%s:%u; grants cannot add to them\n", method,
                   ds->id.data,
                   dg_methods_str(p, ds->methods, mbuf, sizeof(mbuf)),
                   ds->src_file.data, ds->src_line);
        } else {
            printf("%s is not among the methods of the ", method);
            dg_print_grant(p, dec.grant);
        }
        break;

    default:
        printf("%s\n", dg_reason_message(dec.reason));
        break;
    }

    rc = DG_EXIT_FAIL;

    if (dec.reason == DG_R_OK) {
        if (dec.expires) {
            dg_date_str(dec.expires, b);
            printf("  expires:   end of %s (UTC+8)\n", b);
        }
        dg_print_limits(ds, c, dec.grant);
        dg_print_abuse(ds, dec.grant);
        dg_print_plan(p, ds, c, dec.grant, dec.plan);
        rc = DG_EXIT_OK;
    }

    dg_policy_free(p);

    return rc;
}


static int
dg_policy_catalogue(int argc, char **argv)
{
    int                   i;
    char                  err[DG_ERRLEN], *buf;
    size_t                len;
    const char           *path, *consumer, *at, *v;
    dg_policy_t          *p;
    const dg_consumer_t  *c;
    dg_catalogue_opts_t   o;

    path = consumer = at = NULL;

    for (i = 0; i < argc; i++) {
        if ((v = dg_opt(argc, argv, &i, "--consumer")) != NULL) {
            consumer = v;
        } else if ((v = dg_opt(argc, argv, &i, "--at")) != NULL) {
            at = v;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "datagate: policy catalogue: unknown option "
                    "'%s' (see datagate policy --help)\n", argv[i]);
            return DG_EXIT_USAGE;
        } else if (path == NULL) {
            path = argv[i];
        } else {
            fprintf(stderr, "datagate: policy catalogue: one PATH only\n");
            return DG_EXIT_USAGE;
        }

        if (v != NULL && v[0] == '\0') {
            return DG_EXIT_USAGE;
        }
    }

    if (path == NULL || consumer == NULL) {
        fprintf(stderr, "datagate: policy catalogue: PATH and --consumer "
                "are required (see datagate policy --help)\n");
        return DG_EXIT_USAGE;
    }

    memset(&o, 0, sizeof(o));
    o.now = time(NULL);

    if (at != NULL && dg_parse_at("catalogue", at, &o.now) != 0) {
        return DG_EXIT_USAGE;
    }

    p = dg_policy_load(path, err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "%s\n", err);
        return DG_EXIT_RUNTIME;
    }

    c = dg_policy_consumer(p, consumer, strlen(consumer));
    if (c == NULL) {
        fprintf(stderr, "datagate: policy catalogue: no consumer '%s' in "
                "the policy\n", consumer);
        dg_policy_free(p);
        return DG_EXIT_FAIL;
    }

    len = dg_catalogue_json(p, c, &o, NULL, 0);

    buf = malloc(len + 1);
    if (buf == NULL) {
        fprintf(stderr, "datagate: policy catalogue: out of memory\n");
        dg_policy_free(p);
        return DG_EXIT_RUNTIME;
    }

    (void) dg_catalogue_json(p, c, &o, buf, len + 1);
    fwrite(buf, 1, len, stdout);

    free(buf);
    dg_policy_free(p);

    return DG_EXIT_OK;
}


int
dg_cmd_policy(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0
        || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)
    {
        dg_policy_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? DG_EXIT_USAGE : DG_EXIT_OK;
    }

    if (argc > 2 && (strcmp(argv[2], "--help") == 0
                     || strcmp(argv[2], "-h") == 0))
    {
        dg_policy_usage(stdout);
        return DG_EXIT_OK;
    }

    if (strcmp(argv[1], "check") == 0) {
        return dg_policy_check(argc - 2, argv + 2);
    }

    if (strcmp(argv[1], "explain") == 0) {
        return dg_policy_explain(argc - 2, argv + 2);
    }

    if (strcmp(argv[1], "catalogue") == 0) {
        return dg_policy_catalogue(argc - 2, argv + 2);
    }

    fprintf(stderr, "datagate: policy: unknown subcommand '%s' "
            "(check, explain, catalogue; see datagate policy --help)\n",
            argv[1]);

    return DG_EXIT_USAGE;
}
