/*
 * datagate core: decision tests (TAP).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tap.h"
#include "dg_policy.h"


static dg_policy_t         *P;


/* seconds since the epoch of Y-M-D h:m:s in UTC+8 */
static time_t
cst(int y, int m, int d, int hh, int mm, int ss)
{
    struct tm  tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;

    return timegm(&tm) - 8 * 3600;
}


static void
req_init(dg_request_t *r, const char *consumer, const char *dataset,
    const char *purpose, const char *approval, unsigned method, time_t now)
{
    memset(r, 0, sizeof(*r));
    r->consumer = consumer ? dg_policy_consumer(P, consumer, strlen(consumer))
                           : NULL;
    r->dataset = dataset ? dg_policy_dataset(P, dataset, strlen(dataset))
                         : NULL;
    if (purpose) {
        r->purpose.data = purpose;
        r->purpose.len = strlen(purpose);
    }
    if (approval) {
        r->approval.data = approval;
        r->approval.len = strlen(approval);
    }
    r->method = method;
    r->now = now;
}


static dg_reason_e
decide(const char *consumer, const char *dataset, const char *purpose,
    const char *approval, unsigned method, time_t now, dg_decision_t *d)
{
    dg_request_t   r;
    dg_decision_t  tmp;

    if (d == NULL) {
        d = &tmp;
    }

    req_init(&r, consumer, dataset, purpose, approval, method, now);
    dg_decide(P, &r, d);

    return d->reason;
}


#define GET   DG_METHOD_GET
#define HEAD  DG_METHOD_HEAD
#define POST  DG_METHOD_POST

#define is_reason(got, want, what)                                          \
    is_str(dg_reason_code(got), dg_reason_code(want), what)


static void
test_reason_names(void)
{
    static const char  *names[DG_R_MAX] = {
        "ok", "client_certificate_required", "unknown_consumer",
        "cert_revoked", "consumer_suspended", "network_denied", "geo_denied",
        "dataset_not_shared", "dataset_frozen", "purpose_required",
        "purpose_unknown", "purpose_not_granted", "grant_expired",
        "approval_required", "method_not_granted", "level_exceeded",
        "rate_limited", "policy_unavailable", "upstream_unmaskable",
        "internal_error", "upstream_unavailable", "request_rejected",
        "audit_unavailable", "client_closed", "row_out_of_scope",
        "scope_violation"
    };
    int                 i, statuses_ok, msgs_ok;

    for (i = 0; i < DG_R_MAX; i++) {
        is_str(dg_reason_code((dg_reason_e) i), names[i], "reason code %d",
               i);
    }

    statuses_ok = 1;
    msgs_ok = 1;
    for (i = DG_R_UNKNOWN_CONSUMER; i <= DG_R_LEVEL_EXCEEDED; i++) {
        statuses_ok &= dg_reason_status((dg_reason_e) i) == 403;
        msgs_ok &= strlen(dg_reason_message((dg_reason_e) i)) > 10;
    }
    ok(statuses_ok, "403 for the access denials");
    ok(msgs_ok, "every denial has a message");
    is_int(dg_reason_status(DG_R_OK), 200, "ok: 200");
    is_int(dg_reason_status(DG_R_CLIENT_CERT_REQUIRED), 401, "cert: 401");
    is_int(dg_reason_status(DG_R_RATE_LIMITED), 429, "rate: 429");
    is_int(dg_reason_status(DG_R_POLICY_UNAVAILABLE), 503, "policy: 503");
    is_int(dg_reason_status(DG_R_UPSTREAM_UNMASKABLE), 502, "upstream: 502");
    is_int(dg_reason_status(DG_R_INTERNAL), 500, "internal: 500");
    is_int(dg_reason_status(DG_R_UPSTREAM_UNAVAILABLE), 502,
           "upstream unavailable: 502");
    is_int(dg_reason_status(DG_R_REQUEST_REJECTED), 400,
           "request rejected: 400");
    is_int(dg_reason_status(DG_R_AUDIT_UNAVAILABLE), 503,
           "audit unavailable: 503");
    is_int(dg_reason_status(DG_R_CLIENT_CLOSED), 499,
           "client closed: 499, as nginx logs it");
    is_int(dg_reason_status(DG_R_ROW_OUT_OF_SCOPE), 403,
           "row out of scope: 403");
    is_int(dg_reason_status(DG_R_SCOPE_VIOLATION), 403,
           "scope violation: 403");
    is_str(dg_reason_code(DG_R_MAX), "internal_error", "out of range");
    is_str(dg_reason_code((dg_reason_e) -1), "internal_error",
           "negative out of range");
}


static void
test_reasons(void)
{
    time_t         t24;
    dg_decision_t  d;

    t24 = cst(2024, 6, 1, 12, 0, 0);

    is_reason(decide(NULL, "cond", "p-a", "AP-1", GET, t24, NULL),
              DG_R_UNKNOWN_CONSUMER, "no consumer: unknown_consumer");
    is_reason(decide("c2", "none", "p-a", NULL, GET, t24, NULL),
              DG_R_DATASET_NOT_SHARED, "share none: dataset_not_shared");
    is_reason(decide("c4", "none", NULL, NULL, GET, t24, NULL),
              DG_R_DATASET_NOT_SHARED,
              "share none wins over a missing purpose");
    is_reason(decide("c2", "cond", NULL, NULL, GET, t24, NULL),
              DG_R_PURPOSE_REQUIRED, "no purpose: purpose_required");
    is_reason(decide("c2", "cond", "", NULL, GET, t24, NULL),
              DG_R_PURPOSE_REQUIRED, "empty purpose: purpose_required");
    is_reason(decide("c2", "uncond", NULL, NULL, GET, t24, NULL),
              DG_R_PURPOSE_REQUIRED, "unconditional needs a purpose too");
    is_reason(decide("c2", "cond", "p-z", NULL, GET, t24, &d),
              DG_R_PURPOSE_UNKNOWN, "unknown purpose: purpose_unknown");
    ok(d.purpose == NULL, "purpose_unknown: no purpose in the decision");
    is_reason(decide("c2", "uncond", "p-zz", NULL, GET, t24, NULL),
              DG_R_PURPOSE_UNKNOWN, "unconditional: purpose_unknown");
    is_reason(decide("c0", "cond", "p-a", NULL, GET, t24, NULL),
              DG_R_PURPOSE_NOT_GRANTED, "no grant at all");
    is_reason(decide("c4", "cond", "p-b", NULL, GET, t24, &d),
              DG_R_PURPOSE_NOT_GRANTED, "grant for another purpose");
    ok(d.purpose != NULL && strcmp(d.purpose->id.data, "p-b") == 0,
       "purpose_not_granted: the purpose is in the decision");
    is_reason(decide("c2", "cond", "p-b", NULL, GET, t24, &d),
              DG_R_GRANT_EXPIRED, "grant not yet valid: grant_expired");
    ok(d.grant == &P->grants[1], "grant_expired names the grant");
    is_reason(decide("c2", "cond", "p-a", NULL, GET,
                     cst(2025, 1, 1, 0, 0, 0), NULL),
              DG_R_GRANT_EXPIRED, "grant past its end: grant_expired");
    is_reason(decide("c2", "cond", "p-a", NULL, GET, t24, &d),
              DG_R_APPROVAL_REQUIRED, "approval missing");
    ok(d.grant == &P->grants[0] && d.plan == NULL,
       "approval_required: grant, no plan");
    is_reason(decide("c2", "cond", "p-a", "AP-2", GET, t24, NULL),
              DG_R_APPROVAL_REQUIRED, "approval different");
    is_reason(decide("c2", "cond", "p-a", "ap-1", GET, t24, NULL),
              DG_R_APPROVAL_REQUIRED, "approval compare is exact");
    is_reason(decide("c2", "cond", "p-a", "AP-1", POST, t24, NULL),
              DG_R_METHOD_NOT_GRANTED, "POST on a GET grant");
    is_reason(decide("c2", "cond", "p-a", "AP-1", HEAD, t24, NULL),
              DG_R_METHOD_NOT_GRANTED, "HEAD on a [GET] grant");
    is_reason(decide("c4", "cond", "p-a", NULL, HEAD, t24, NULL),
              DG_R_OK, "HEAD by default");
    is_reason(decide("c4", "cond", "p-a", NULL, POST, t24, &d),
              DG_R_OK, "a grant without methods: the dataset's (POST)");
    is_reason(decide("c4", "cond", "p-a", NULL, DG_METHOD_PUT, t24, &d),
              DG_R_METHOD_NOT_GRANTED, "PUT: not among the dataset's");
    ok(d.grant == NULL && d.plan == NULL,
       "refused by the dataset's methods: no grant named");
    is_reason(decide("c4", "getonly", "p-a", NULL, HEAD, t24, NULL),
              DG_R_METHOD_NOT_GRANTED, "dataset [GET]: HEAD refused");
    is_reason(decide("c4", "getonly", "p-a", NULL, GET, t24, &d),
              DG_R_OK, "dataset [GET]: GET through a grant without methods");
    ok(d.grant == &P->grants[8], "the grant");
    is_reason(decide("c4", "cond", "p-a", NULL, DG_METHOD_OTHER, t24, NULL),
              DG_R_METHOD_NOT_GRANTED, "an unknown method");
    is_reason(decide("c0", "uncond", "p-a", NULL, GET, t24, NULL),
              DG_R_LEVEL_EXCEEDED, "clearance 0 < level 2: level_exceeded");
    is_reason(decide("c2", "uncond", "p-a", NULL, GET, t24, &d),
              DG_R_OK, "clearance 2 = level 2: ok");
    ok(d.grant == NULL && d.expires == 0, "unconditional: no grant");
    is_reason(decide("c2", "cond", "p-a", "AP-1", GET, t24, &d), DG_R_OK,
              "conditional: ok with approval, GET, in time");
    ok(d.grant == &P->grants[0] && d.plan == &P->grants[0].plan,
       "ok: the grant and its plan");
    ok(d.expires == cst(2024, 12, 31, 23, 59, 59),
       "expires at the end of the until day (UTC+8)");
    is_reason(decide("c2", NULL, "p-a", NULL, GET, t24, NULL), DG_R_INTERNAL,
              "no dataset: internal_error");

    {
        dg_request_t  r;

        req_init(&r, "c2", "cond", "p-a", "AP-1", GET, t24);
        dg_decide(NULL, &r, &d);
        is_reason(d.reason, DG_R_POLICY_UNAVAILABLE,
                  "no policy: policy_unavailable");
    }

    /* several grants list the purpose: the most specific failure, or ok */
    is_reason(decide("c2", "cond", "p-c", NULL, GET, t24, &d),
              DG_R_METHOD_NOT_GRANTED,
              "expired + wrong method: method_not_granted");
    ok(d.grant == &P->grants[3], "most specific failure names its grant");
    is_reason(decide("c2", "cond", "p-c", NULL, POST, t24, &d), DG_R_OK,
              "expired + allowing: ok");
    ok(d.grant == &P->grants[3] && d.expires == 0,
       "the allowing grant, open end");
    is_reason(decide("c2", "cond", "p-c", NULL, POST,
                     cst(2020, 6, 1, 0, 0, 0), &d), DG_R_OK,
              "the earlier grant in its window");
}


static void
test_window(void)
{
    is_reason(decide("c2", "cond", "p-a", "AP-1", GET,
                     cst(2024, 1, 1, 0, 0, 0), NULL), DG_R_OK,
              "first second of from (00:00:00 UTC+8)");
    is_reason(decide("c2", "cond", "p-a", "AP-1", GET,
                     cst(2023, 12, 31, 23, 59, 59), NULL), DG_R_GRANT_EXPIRED,
              "one second before from");
    is_reason(decide("c2", "cond", "p-a", "AP-1", GET,
                     cst(2024, 12, 31, 23, 59, 59), NULL), DG_R_OK,
              "last second of until");
    is_reason(decide("c2", "cond", "p-a", "AP-1", GET,
                     cst(2025, 1, 1, 0, 0, 0), NULL), DG_R_GRANT_EXPIRED,
              "one second after until");
    ok(P->grants[0].valid_from == 1704038400,
       "from 2024-01-01 is 2023-12-31T16:00:00Z");
}


static void
test_plans(void)
{
    size_t               c;
    const dg_plan_t     *pl;
    const dg_grant_t    *g;
    const dg_dataset_t  *d;

    /* g0: c2 (clearance 2) on cond: reveal name, drop phone and secret */
    g = &P->grants[0];
    pl = &g->plan;
    is_int(pl->nfields, 4, "g0 plan: 3 fields + extra drop key");
    is_int(pl->actions[0].method, DG_MASK_ID_CARD, "g0: id_card masked");
    is_int(pl->actions[1].method, DG_MASK_CLEAR, "g0: name revealed");
    is_int(pl->actions[2].method, DG_MASK_DROP, "g0: phone dropped");
    is_int(pl->actions[3].method, DG_MASK_DROP, "g0: secret dropped");
    is_int(pl->classes[0], 0, "g0: class of id_card");
    is_int(pl->classes[3], -1, "g0: extra drop key has no class");
    ok(pl->masks, "g0 masks");
    ok(pl->rules != NULL && pl->rules != g->dataset->plan_by_clearance[0].rules,
       "g0: own rule set for the extra key");
    is_int(g->limit.burst, 50, "g0: burst");
    ok(g->limit.rate == 100.0, "g0: rate");
    is_int((long long) g->limit.quota, 100000, "g0: quota");
    is_int(g->limit.quota_period, 86400, "g0: per day");

    /* g4: c4 (clearance 4): everything clear */
    pl = &P->grants[4].plan;
    is_int(pl->nfields, 3, "g4 plan: 3 fields");
    ok(pl->actions[0].method == DG_MASK_CLEAR
       && pl->actions[1].method == DG_MASK_CLEAR
       && pl->actions[2].method == DG_MASK_CLEAR, "g4: all clear");
    ok(pl->masks, "g4: all clear, count-only (unlisted keys counted)");
    ok(pl->rules == P->grants[4].dataset->plan_by_clearance[0].rules,
       "g4: shares the dataset's rule set");

    /* g1: c2, no reveal: name masked with its class method */
    pl = &P->grants[1].plan;
    is_int(pl->actions[1].method, DG_MASK_NAME, "g1: name masked");
    is_int(pl->actions[2].method, DG_MASK_PHONE, "g1: phone masked");

    /* g5: allow-list dataset: masks although everything is clear */
    pl = &P->grants[5].plan;
    ok(pl->masks && pl->actions[0].method == DG_MASK_KEEP,
       "g5: clearance 0 masks uscc (level 1) with keep");

    /* unconditional: by clearance */
    d = dg_policy_dataset(P, "uncond", 6);
    for (c = 0; c <= DG_LEVEL_MAX; c++) {
        pl = &d->plan_by_clearance[c];
        ok(pl->nfields == 3
           && pl->actions[0].method == (c >= 1 ? DG_MASK_CLEAR : DG_MASK_KEEP)
           && pl->actions[1].method == (c >= 2 ? DG_MASK_CLEAR
                                               : DG_MASK_EMAIL)
           && pl->actions[2].method == (c >= 4 ? DG_MASK_CLEAR
                                               : DG_MASK_ID_CARD)
           && pl->masks,
           "uncond plan at clearance %zu", c);
    }
    ok(d->plan_by_clearance[0].actions[0].a == 8
       && d->plan_by_clearance[0].actions[0].b == 2, "keep(8,2) arguments");

    {
        dg_decision_t  dec;

        decide("c2", "uncond", "p-a", NULL, GET, 0, &dec);
        ok(dec.plan == &d->plan_by_clearance[2],
           "unconditional decision uses the clearance plan");
    }

    d = dg_policy_dataset(P, "plain", 5);
    ok(d->plan_by_clearance[3].rules == NULL
       && !d->plan_by_clearance[3].masks, "no fields: body passes");
    d = dg_policy_dataset(P, "det", 3);
    ok(d->plan_by_clearance[3].rules != NULL
       && d->plan_by_clearance[3].masks, "detect on: masks");
}


static void
test_extra(void)
{
    char               err[DG_ERRLEN];
    const char        *y;
    dg_grant_t        *g, *g2;
    dg_request_t       r;
    dg_decision_t      d;
    const dg_grant_t  *extra[2];
    time_t             t;

    t = cst(2024, 6, 1, 12, 0, 0);

    y = "consumer: c0\ndataset: cond\npurposes: [p-b]\n"
        "valid: {until: 2024-06-01}\nreveal: [id_card]\n";
    g = dg_grant_compile(P, y, strlen(y), err, sizeof(err));
    if (!ok(g != NULL, "run-time grant compiles")) {
        diag("%s", err);
        return;
    }

    y = "consumer: c2\ndataset: cond\npurposes: [p-b]\nmethods: [DELETE]\n";
    g2 = dg_grant_compile(P, y, strlen(y), err, sizeof(err));
    ok(g2 != NULL, "second run-time grant compiles");

    req_init(&r, "c0", "cond", "p-b", NULL, GET, t);
    dg_decide(P, &r, &d);
    is_reason(d.reason, DG_R_PURPOSE_NOT_GRANTED, "without extra grants");

    extra[0] = g2;
    extra[1] = g;
    r.extra_grants = extra;
    r.nextra = 2;
    dg_decide(P, &r, &d);
    is_reason(d.reason, DG_R_OK, "with the run-time grant: ok");
    ok(d.grant == g && d.plan == &g->plan, "the run-time grant's plan");
    ok(g->plan.actions[0].method == DG_MASK_CLEAR
       && g->plan.actions[1].method == DG_MASK_NAME, "reveal at clearance 0");

    r.now = cst(2024, 6, 2, 0, 0, 0);
    dg_decide(P, &r, &d);
    is_reason(d.reason, DG_R_GRANT_EXPIRED, "run-time grant past until");

    /* a policy grant that fails and a run-time one that fails later on */
    req_init(&r, "c2", "cond", "p-b", NULL, GET, t);
    r.extra_grants = extra;
    r.nextra = 2;
    dg_decide(P, &r, &d);
    is_reason(d.reason, DG_R_METHOD_NOT_GRANTED,
              "policy grant expired, run-time grant wrong method");
    ok(d.grant == g2, "names the run-time grant");
    r.method = DG_METHOD_DELETE;
    dg_decide(P, &r, &d);
    is_reason(d.reason, DG_R_OK, "DELETE through the run-time grant");

    dg_grant_free(g);
    dg_grant_free(g2);
}


/* methods of datasets, and grants on an unconditional dataset */

static void
test_unconditional(void)
{
    char                 buf[128];
    time_t               t24, t25;
    unsigned             propfind;
    dg_decision_t        d;
    const dg_dataset_t  *ds;
    const dg_grant_t    *g6, *g7;

    t24 = cst(2024, 6, 1, 12, 0, 0);
    t25 = cst(2025, 6, 1, 12, 0, 0);
    ds = dg_policy_dataset(P, "open", 4);
    g6 = &P->grants[6];
    g7 = &P->grants[7];
    propfind = dg_policy_method_bit(P, "PROPFIND", 8);

    /* methods */

    is_int(propfind, DG_METHOD_EXT_FIRST, "PROPFIND: the policy's first "
           "extension bit");
    is_int(dg_policy_method_bit(P, "propfind", 8), DG_METHOD_OTHER,
           "request methods are case-sensitive");
    is_int(dg_policy_method_bit(P, "MKCOL", 5), DG_METHOD_OTHER,
           "a method no dataset names: other");
    is_int(dg_policy_method_bit(NULL, "PROPFIND", 8), DG_METHOD_OTHER,
           "no policy: other");
    is_int(dg_policy_method_bit(P, "POST", 4), DG_METHOD_POST, "POST");
    is_str(dg_methods_str(P, ds->methods, buf, sizeof(buf)),
           "GET, HEAD, POST, PROPFIND", "methods of open, as text");
    is_str(dg_methods_str(P, 0, buf, sizeof(buf)), "(none)", "no methods");
    is_int(dg_policy_dataset(P, "uncond", 6)->methods, GET | HEAD,
           "default methods: GET, HEAD");

    is_reason(decide("c4", "uncond", "p-a", NULL, DG_METHOD_DELETE, t24, &d),
              DG_R_METHOD_NOT_GRANTED, "unconditional, default: DELETE");
    ok(d.grant == NULL && d.plan == NULL, "DELETE: no plan, no grant");
    is_reason(decide("c4", "uncond", "p-a", NULL, POST, t24, NULL),
              DG_R_METHOD_NOT_GRANTED, "unconditional, default: POST");
    is_reason(decide("c4", "uncond", "p-a", NULL, DG_METHOD_OTHER, t24,
                     NULL),
              DG_R_METHOD_NOT_GRANTED, "unconditional: an unknown method");
    is_reason(decide("c4", "uncond", "p-a", NULL, propfind, t24, NULL),
              DG_R_METHOD_NOT_GRANTED,
              "unconditional: another dataset's extension method");
    is_reason(decide("c4", "uncond", "p-a", NULL, HEAD, t24, NULL),
              DG_R_OK, "unconditional, default: HEAD");
    is_reason(decide("c4", "none", "p-a", NULL, DG_METHOD_DELETE, t24, NULL),
              DG_R_DATASET_NOT_SHARED, "share none first");
    is_reason(decide("c4", "uncond", NULL, NULL, DG_METHOD_DELETE, t24,
                     NULL),
              DG_R_PURPOSE_REQUIRED, "purpose before method");
    is_reason(decide("c0", "open", "p-a", NULL, propfind, t24, NULL),
              DG_R_LEVEL_EXCEEDED, "open: clearance 0 < level 2");
    is_reason(decide("c0", "open", "p-a", NULL, DG_METHOD_PUT, t24, NULL),
              DG_R_METHOD_NOT_GRANTED, "method before level");

    /* no grant applies: access by clearance, the dataset's methods */

    is_reason(decide("c2", "open", "p-b", NULL, propfind, t24, &d), DG_R_OK,
              "open: an extension method the dataset allows");
    ok(d.grant == NULL && d.plan == &ds->plan_by_clearance[2]
       && d.expires == 0, "by clearance: the clearance plan, no grant");
    is_reason(decide("c2", "open", "p-a", NULL, POST, t24, &d), DG_R_OK,
              "grant without its approval: does not apply");
    ok(d.grant == NULL && d.plan == &ds->plan_by_clearance[2],
       "... the clearance plan");
    is_reason(decide("c2", "open", "p-a", "AP-0", POST, t24, &d), DG_R_OK,
              "grant with a wrong approval: does not apply");
    ok(d.grant == NULL, "... no grant");
    is_reason(decide("c2", "open", "p-a", "AP-9", POST, t25, &d), DG_R_OK,
              "expired grant: takes nothing away");
    ok(d.grant == NULL && d.plan == &ds->plan_by_clearance[2],
       "... the clearance plan");
    is_reason(decide("c2", "open", "p-a", "AP-9", POST,
                     cst(2023, 12, 31, 23, 59, 59), &d), DG_R_OK,
              "grant not yet valid: takes nothing away");

    /* a grant that applies: its plan, its methods */

    is_reason(decide("c2", "open", "p-a", "AP-9", GET, t24, &d), DG_R_OK,
              "grant applies: GET");
    ok(d.grant == g6 && d.plan == &g6->plan, "... its plan");
    ok(d.expires == cst(2024, 12, 31, 23, 59, 59), "... until its end");
    is_reason(decide("c2", "open", "p-a", "AP-9", POST, t24, &d),
              DG_R_METHOD_NOT_GRANTED, "grant applies: its methods narrow");
    ok(d.grant == g6 && d.plan == NULL, "... named, no plan");
    is_reason(decide("c2", "open", "p-a", "AP-9", HEAD, t24, NULL),
              DG_R_METHOD_NOT_GRANTED, "grant [GET]: HEAD refused");
    is_reason(decide("c4", "open", "p-b", NULL, propfind, t24, &d), DG_R_OK,
              "a grant listing an extension method");
    ok(d.grant == g7 && d.plan == &g7->plan, "... its plan");
    is_reason(decide("c4", "open", "p-b", NULL, POST, t24, &d),
              DG_R_METHOD_NOT_GRANTED, "g7 narrows: POST refused for p-b");
    is_reason(decide("c4", "open", "p-a", NULL, POST, t24, &d), DG_R_OK,
              "... but not for another purpose");
    ok(d.grant == NULL, "... by clearance");

    /* a method and its override: both must be allowed */
    is_reason(decide("c4", "open", "p-a", NULL, GET | DG_METHOD_DELETE, t24,
                     NULL),
              DG_R_METHOD_NOT_GRANTED, "GET overridden to DELETE: refused");
    is_reason(decide("c4", "open", "p-a", NULL, GET | POST, t24, NULL),
              DG_R_OK, "GET overridden to POST: both allowed");
    is_reason(decide("c4", "open", "p-b", NULL, GET | propfind, t24, &d),
              DG_R_OK, "override within the grant's methods");
    ok(d.grant == g7, "... through the grant");
    is_reason(decide("c4", "open", "p-b", NULL, GET | POST, t24, &d),
              DG_R_METHOD_NOT_GRANTED, "override outside the grant's");
    is_reason(decide("c4", "open", "p-a", NULL, GET | DG_METHOD_OTHER, t24,
                     NULL),
              DG_R_METHOD_NOT_GRANTED, "an override nobody names");
    is_reason(decide("c4", "open", "p-a", NULL, 0, t24, NULL),
              DG_R_METHOD_NOT_GRANTED, "no method bit at all");

    /* the plan of g6: clearance 2, reveal name, drop phone */
    ok(g6->plan.nfields == 3
       && g6->plan.actions[0].method == DG_MASK_ID_CARD
       && g6->plan.actions[1].method == DG_MASK_CLEAR
       && g6->plan.actions[2].method == DG_MASK_DROP,
       "g6 plan: id masked, name revealed, phone dropped");
    ok(ds->plan_by_clearance[2].actions[1].method == DG_MASK_NAME
       && ds->plan_by_clearance[2].actions[2].method == DG_MASK_PHONE,
       "clearance plan: name and phone masked");

    /* limits */
    ok(ds->limit.rate == 10.0 && ds->limit.burst == 5
       && ds->limit.quota == 100 && ds->limit.quota_period == 86400,
       "dataset rate and quota");
    is_str(ds->rate_str.data, "10r/s burst=5", "dataset rate as written");
    ok(dg_policy_dataset(P, "uncond", 6)->limit.rate == 0.0
       && dg_policy_dataset(P, "uncond", 6)->limit.quota == 0
       && dg_policy_dataset(P, "uncond", 6)->rate_str.len == 0,
       "no dataset limits");
    ok(g6->limit.rate == 1.0 && g6->limit.quota == 0, "g6: rate only");
    ok(g7->limit.rate == 0.0 && g7->limit.quota == 5, "g7: quota only");
    is_int(dg_grant_methods(g6), GET, "g6 methods");
    is_int(dg_grant_methods(&P->grants[8]), GET,
           "a grant without methods: its dataset's");
}


static void
test_extra_unconditional(void)
{
    char               err[DG_ERRLEN];
    const char        *y;
    dg_grant_t        *g;
    dg_request_t       r;
    dg_decision_t      d;
    const dg_grant_t  *extra[1];
    time_t             t;

    t = cst(2024, 6, 1, 12, 0, 0);

    y = "consumer: c2\ndataset: open\npurposes: [p-c]\nreveal: [id_card]\n"
        "valid: {until: 2024-06-30}\n";
    g = dg_grant_compile(P, y, strlen(y), err, sizeof(err));
    if (!ok(g != NULL, "run-time grant on an unconditional dataset")) {
        diag("%s", err);
        return;
    }

    req_init(&r, "c2", "open", "p-c", NULL, POST, t);
    extra[0] = g;
    r.extra_grants = extra;
    r.nextra = 1;
    dg_decide(P, &r, &d);
    is_reason(d.reason, DG_R_OK, "run-time grant applies");
    ok(d.grant == g && g->plan.actions[0].method == DG_MASK_CLEAR,
       "its plan reveals id_card");
    r.now = cst(2024, 7, 1, 0, 0, 0);
    dg_decide(P, &r, &d);
    ok(d.reason == DG_R_OK && d.grant == NULL,
       "run-time grant past until: access by clearance");
    dg_grant_free(g);

    y = "consumer: c2\ndataset: open\npurposes: [p-c]\nmethods: [DELETE]\n";
    g = dg_grant_compile(P, y, strlen(y), err, sizeof(err));
    ok(g == NULL && strstr(err, "grant:4: grant.methods: method DELETE is "
                           "not allowed on dataset 'open' (its methods: "
                           "GET, HEAD, POST, PROPFIND)") != NULL,
       "run-time grant: a method the dataset does not allow");
    dg_grant_free(g);

    y = "consumer: c2\ndataset: open\npurposes: [p-c]\nmethods: [MKCOL]\n";
    g = dg_grant_compile(P, y, strlen(y), err, sizeof(err));
    ok(g == NULL && strstr(err, "method MKCOL is not allowed") != NULL,
       "run-time grant: an extension method no dataset names");
    dg_grant_free(g);

    y = "consumer: c0\ndataset: open\npurposes: [p-c]\nrate: 1r/s\n";
    g = dg_grant_compile(P, y, strlen(y), err, sizeof(err));
    ok(g == NULL && strstr(err, "clearance 0, below level 2") != NULL,
       "run-time grant: clearance below an unconditional dataset's level");
    dg_grant_free(g);

    y = "consumer: c2\ndataset: open\npurposes: [p-c]\n";
    g = dg_grant_compile(P, y, strlen(y), err, sizeof(err));
    ok(g == NULL && strstr(err, "would have no effect") != NULL,
       "run-time grant on an unconditional dataset that adds nothing");
    dg_grant_free(g);
}


static void
test_parsers(void)
{
    dg_limit_t  l;

    memset(&l, 0, sizeof(l));
    ok(dg_limit_parse_rate("100r/s", 6, &l) == 0 && l.rate == 100.0
       && l.burst == 0, "rate 100r/s");
    ok(dg_limit_parse_rate("6000r/m", 7, &l) == 0 && l.rate == 100.0,
       "rate 6000r/m = 100/s");
    ok(dg_limit_parse_rate("100r/s burst=50", 15, &l) == 0 && l.burst == 50,
       "rate with burst");
    ok(dg_limit_parse_rate("1r/s burst=0", 12, &l) == 0 && l.burst == 0,
       "burst=0");
    ok(dg_limit_parse_rate("0r/s", 4, &l) != 0, "0r/s rejected");
    ok(dg_limit_parse_rate("r/s", 3, &l) != 0, "no number rejected");
    ok(dg_limit_parse_rate("100 r/s", 7, &l) != 0, "space rejected");
    ok(dg_limit_parse_rate("100r/s burst=5x", 15, &l) != 0, "junk rejected");
    ok(dg_limit_parse_rate("100r/sburst=5", 13, &l) != 0, "no separator");
    ok(dg_limit_parse_rate("9999999999999r/s", 16, &l) != 0, "too large");

    memset(&l, 0, sizeof(l));
    ok(dg_limit_parse_quota("100000/day", 10, &l) == 0 && l.quota == 100000
       && l.quota_period == 86400, "quota per day");
    ok(dg_limit_parse_quota("50/hour", 7, &l) == 0 && l.quota_period == 3600,
       "quota per hour");
    ok(dg_limit_parse_quota("5/minute", 8, &l) == 0 && l.quota_period == 60,
       "quota per minute");
    ok(dg_limit_parse_quota("5/days", 6, &l) != 0, "5/days rejected");
    ok(dg_limit_parse_quota("/day", 4, &l) != 0, "no count rejected");

    is_int(dg_method_bit("GET", 3), DG_METHOD_GET, "GET bit");
    is_int(dg_method_bit("OPTIONS", 7), DG_METHOD_OPTIONS, "OPTIONS bit");
    is_int(dg_method_bit("get", 3), DG_METHOD_OTHER, "methods are "
           "case-sensitive");
    is_int(dg_method_bit("PROPFIND", 8), DG_METHOD_OTHER, "other method");
}


int
main(void)
{
    char  err[DG_ERRLEN], path[1200];

    snprintf(path, sizeof(path), "%smodule/core/t/policies/decide.yaml",
             tap_top());

    P = dg_policy_load(path, err, sizeof(err));
    if (!ok(P != NULL, "decide fixture loads")) {
        diag("%s", err);
        return done_testing();
    }

    test_reason_names();
    test_reasons();
    test_window();
    test_plans();
    test_extra();
    test_unconditional();
    test_extra_unconditional();
    test_parsers();

    dg_policy_free(P);

    return done_testing();
}
