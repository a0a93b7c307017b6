/*
 * datagate core: the decision function and the reasons it gives.
 *
 * dg_decide() answers, for one request, whether the consumer may read the
 * dataset for the declared purpose, and with which masking plan.  Identity,
 * network, geo, incident controls and rate limits are checked by the
 * caller (the nginx glue); everything else is here.
 */

#include <string.h>

#include "dg_util.h"


typedef struct {
    const char                 *code;
    const char                 *message;
    int                         status;
} dg_reason_info_t;


static const dg_reason_info_t  dg_reasons[DG_R_MAX] = {
    { "ok", "allowed", 200 },
    { "client_certificate_required",
      "a verified client certificate is required", 401 },
    { "unknown_consumer",
      "the client certificate does not belong to any consumer in the "
      "policy", 403 },
    { "cert_revoked", "the client certificate has been revoked", 403 },
    { "consumer_suspended", "the consumer is suspended", 403 },
    { "network_denied",
      "the consumer may not connect from this network address", 403 },
    { "geo_denied", "the consumer may not connect from this location",
      403 },
    { "dataset_not_shared", "the dataset is not shared (不予共享)", 403 },
    { "dataset_frozen", "access to the dataset is frozen", 403 },
    { "purpose_required",
      "the request must declare its purpose in the Data-Purpose header",
      403 },
    { "purpose_unknown", "the declared purpose is not known to the policy",
      403 },
    { "purpose_not_granted",
      "no grant allows this consumer to use the dataset for this purpose",
      403 },
    { "grant_expired", "the grant is not valid at this time", 403 },
    { "approval_required",
      "the grant requires its approval number in the Data-Approval header",
      403 },
    { "method_not_granted",
      "the HTTP method is not allowed on this dataset for this consumer",
      403 },
    { "level_exceeded",
      "the dataset's level is above the consumer's clearance", 403 },
    { "rate_limited", "rate limit or quota exceeded", 429 },
    { "policy_unavailable",
      "the access policy cannot be evaluated right now", 503 },
    { "upstream_unmaskable",
      "the provider's response cannot be inspected and masked", 502 },
    { "internal_error", "internal error", 500 },
    { "upstream_unavailable",
      "the provider cannot be reached or did not answer in time", 502 },
    { "request_rejected",
      "the gateway cannot process this request", 400 },
    { "audit_unavailable",
      "audit records cannot be written right now: no data is served "
      "without a record", 503 },
    { "client_closed",
      "the client closed the connection before the end of the answer",
      499 },
    { "row_out_of_scope",
      "the record answered is outside the rows this consumer's grant "
      "covers", 403 },
    { "scope_violation",
      "a request parameter is outside the scope of this consumer's grant",
      403 },
};


/* an unknown reason reads as an internal error */

static const dg_reason_info_t *
dg_reason_info(dg_reason_e r)
{
    if ((unsigned) r >= DG_R_MAX) {
        r = DG_R_INTERNAL;
    }

    return &dg_reasons[r];
}


const char *
dg_reason_code(dg_reason_e r)
{
    return dg_reason_info(r)->code;
}


const char *
dg_reason_message(dg_reason_e r)
{
    return dg_reason_info(r)->message;
}


int
dg_reason_status(dg_reason_e r)
{
    return dg_reason_info(r)->status;
}


unsigned
dg_grant_methods(const dg_grant_t *g)
{
    if (g->methods) {
        return g->methods;
    }

    return g->dataset ? g->dataset->methods : DG_METHOD_DEFAULT;
}


/* decisions */

static int
dg_grant_has_purpose(const dg_grant_t *g, const dg_purpose_t *pu)
{
    size_t  i;

    for (i = 0; i < g->npurposes; i++) {
        if (g->purposes[i] == pu) {
            return 1;
        }
    }

    return 0;
}


/* DG_R_OK, or why this grant (which lists the purpose) does not allow */

static dg_reason_e
dg_grant_check(const dg_grant_t *g, const dg_request_t *req)
{
    if ((g->valid_from && req->now < g->valid_from)
        || (g->valid_until && req->now > g->valid_until))
    {
        return DG_R_GRANT_EXPIRED;
    }

    if (g->approval.len
        && (req->approval.data == NULL
            || req->approval.len != g->approval.len
            || memcmp(req->approval.data, g->approval.data, g->approval.len)
               != 0))
    {
        return DG_R_APPROVAL_REQUIRED;
    }

    if (req->method == 0 || (req->method & ~dg_grant_methods(g))) {
        return DG_R_METHOD_NOT_GRANTED;
    }

    return DG_R_OK;
}


/* how far a failing grant got: the later the check, the more specific */

static int
dg_specificity(dg_reason_e r)
{
    switch (r) {
    case DG_R_METHOD_NOT_GRANTED:
        return 3;
    case DG_R_APPROVAL_REQUIRED:
        return 2;
    case DG_R_GRANT_EXPIRED:
        return 1;
    default:
        return 0;
    }
}


/*
 * One grant of the pair: 1 when it allows (the decision is made).  On a
 * conditional dataset a failing grant leaves its reason when it got
 * further than the others.  On an unconditional dataset (adds) a grant
 * outside its window or without its approval does not apply at all, so
 * it takes nothing away; one that applies but does not allow the method
 * narrows the dataset's methods, and says so unless another allows.
 */

static int
dg_consider(const dg_grant_t *g, const dg_request_t *req,
    const dg_purpose_t *pu, dg_decision_t *d, int *best, int adds)
{
    dg_reason_e  r;

    if (!dg_grant_has_purpose(g, pu)) {
        return 0;
    }

    r = dg_grant_check(g, req);

    if (r == DG_R_OK) {
        d->reason = DG_R_OK;
        d->grant = g;
        d->plan = &g->plan;
        d->expires = g->valid_until;
        return 1;
    }

    if (adds && r != DG_R_METHOD_NOT_GRANTED) {
        return 0;
    }

    if (dg_specificity(r) > *best) {
        *best = dg_specificity(r);
        d->reason = r;
        d->grant = g;
        d->plan = NULL;
    }

    return 0;
}


void
dg_decide(const dg_policy_t *p, const dg_request_t *req, dg_decision_t *d)
{
    int                       best, adds;
    size_t                    i;
    dg_cd_key_t               key;
    const dg_hent_t          *e;
    const dg_grant_t         *g;
    const dg_purpose_t       *pu;
    const dg_consumer_t      *c;
    const dg_dataset_t       *ds;
    const dg_policy_priv_t   *priv;

    memset(d, 0, sizeof(dg_decision_t));

    if (p == NULL || req == NULL) {
        d->reason = DG_R_POLICY_UNAVAILABLE;
        return;
    }

    c = req->consumer;
    ds = req->dataset;

    if (c == NULL) {
        d->reason = DG_R_UNKNOWN_CONSUMER;
        return;
    }

    if (ds == NULL) {
        d->reason = DG_R_INTERNAL;
        return;
    }

    if (ds->share == DG_SHARE_NONE) {
        d->reason = DG_R_DATASET_NOT_SHARED;
        return;
    }

    if (req->purpose.data == NULL || req->purpose.len == 0) {
        d->reason = DG_R_PURPOSE_REQUIRED;
        return;
    }

    pu = dg_policy_purpose(p, req->purpose.data, req->purpose.len);
    if (pu == NULL) {
        d->reason = DG_R_PURPOSE_UNKNOWN;
        return;
    }

    d->purpose = pu;

    /*
     * the dataset's methods bound everyone; grants only narrow them.
     * Every bit of the request must be allowed (its method and any
     * override of it); no list holds DG_METHOD_OTHER
     */

    if (req->method == 0 || (req->method & ~ds->methods)) {
        d->reason = DG_R_METHOD_NOT_GRANTED;
        return;
    }

    if (ds->share == DG_SHARE_UNCONDITIONAL) {
        if (c->clearance < ds->level || c->clearance > DG_LEVEL_MAX) {
            d->reason = DG_R_LEVEL_EXCEEDED;
            return;
        }

        /* allowed by clearance; a grant that applies adds to it */
        d->reason = DG_R_OK;
        d->plan = &ds->plan_by_clearance[c->clearance];
        adds = 1;

    } else {
        /* conditional: a grant for (consumer, dataset, purpose) */
        d->reason = DG_R_PURPOSE_NOT_GRANTED;
        adds = 0;
    }

    best = 0;
    priv = p->priv;

    memset(&key, 0, sizeof(key));
    key.consumer = c->index;
    key.dataset = ds->index;

    for (e = dg_hash_find(&priv->grants_by_cd, &key, sizeof(key));
         e;
         e = dg_hash_next(&priv->grants_by_cd, e))
    {
        g = e->val;
        if (g->consumer == c && g->dataset == ds
            && dg_consider(g, req, pu, d, &best, adds))
        {
            return;
        }
    }

    for (i = 0; i < req->nextra && req->extra_grants != NULL; i++) {
        g = req->extra_grants[i];
        if (g != NULL && g->consumer == c && g->dataset == ds
            && dg_consider(g, req, pu, d, &best, adds))
        {
            return;
        }
    }
}
