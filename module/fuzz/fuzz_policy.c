/*
 * libFuzzer target for the policy loader and the decision function.
 *
 * Linked with the whole core (the loader reaches most of it).
 *
 * The input is loaded as a policy file (dg_policy_load_buffer).  When it
 * loads, every consumer is matched back from its own certificate matchers
 * and a bounded number of (consumer, dataset, purpose) decisions is taken;
 * plans must be consistent.  The input is also compiled as a run-time
 * grant against a fixed policy.  Nothing may crash or leak, and a rejected
 * input must leave an error message "NAME:LINE: FIELD: message".
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#include "dg_policy.h"


static const char  fz_base[] =
    "classes:\n"
    "  id: {level: 4, mask: id_card}\n"
    "  name: {level: 3, mask: name}\n"
    "purposes: {p: {}, q: {name: Q}}\n"
    "consumers:\n"
    "  - id: c\n"
    "    cert: {subject: \"CN=c\"}\n"
    "    clearance: 2\n"
    "datasets:\n"
    "  - id: d\n"
    "    share: conditional\n"
    "    level: 3\n"
    "    fields: {id_card: id, name: name}\n"
    "  - id: u\n"
    "    share: unconditional\n"
    "    level: 1\n"
    "    fields: {name: name}\n";

static dg_policy_t  *fz_policy;


static void
fz_check_plan(const dg_plan_t *pl)
{
    size_t  i;

    if (pl == NULL) {
        return;
    }

    for (i = 0; i < pl->nfields; i++) {
        if (pl->actions[i].method >= DG_MASK_METHOD_MAX) {
            abort();
        }
    }

    if (pl->nfields && pl->rules == NULL) {
        abort();
    }
}


/* the methods tried in turn: known, combined with an override, an
 * extension bit, one nobody names */
static const unsigned  fz_methods[] = {
    DG_METHOD_GET, DG_METHOD_POST, DG_METHOD_HEAD, DG_METHOD_EXT_FIRST,
    DG_METHOD_GET | DG_METHOD_DELETE, DG_METHOD_OTHER
};


static void
fz_exercise(const dg_policy_t *p)
{
    size_t               i, j, k, n;
    dg_request_t         r;
    dg_decision_t        d;
    dg_identity_t        id;
    const dg_consumer_t  *c, *m;

    n = 0;

    for (i = 0; i < p->nconsumers && i < 32; i++) {
        c = &p->consumers[i];

        memset(&id, 0, sizeof(id));
        id.fingerprint = c->has_fingerprint ? c->fingerprint : NULL;
        id.serial = c->serial;
        id.subject = c->subject;
        id.sans = &c->san;
        id.nsans = c->san.len ? 1 : 0;
        id.issuer = c->issuer;
        id.issuer_key_id = c->issuer_key_id_len ? c->issuer_key_id : NULL;
        id.issuer_key_id_len = c->issuer_key_id_len;

        /* the consumer or an earlier one with the same matchers */
        m = dg_policy_match_consumer(p, &id);
        if (m == NULL || m->index > c->index) {
            abort();
        }

        if (dg_policy_consumer(p, c->id.data, c->id.len) != c) {
            abort();
        }

        (void) dg_consumer_geo_ok(c, "CN", NULL);

        for (j = 0; j < p->ndatasets && j < 16; j++) {
            for (k = 0; k <= p->npurposes && k < 8; k++) {
                memset(&r, 0, sizeof(r));
                r.consumer = c;
                r.dataset = &p->datasets[j];
                if (k < p->npurposes) {
                    r.purpose.data = p->purposes[k].id.data;
                    r.purpose.len = p->purposes[k].id.len;
                }
                r.method = fz_methods[n % (sizeof(fz_methods)
                                           / sizeof(fz_methods[0]))];
                r.now = 1700000000 + (time_t) (n * 86400 * 30);
                dg_decide(p, &r, &d);

                if ((d.reason == DG_R_OK) != (d.plan != NULL)) {
                    abort();
                }

                /* nothing allows a method its dataset (or the grant that
                 * allowed) does not list */
                if (d.reason == DG_R_OK
                    && ((r.method & ~r.dataset->methods)
                        || (d.grant && (r.method
                                        & ~dg_grant_methods(d.grant)))))
                {
                    abort();
                }
                fz_check_plan(d.plan);
                (void) dg_reason_code(d.reason);
                n++;
            }
        }
    }

    for (j = 0; j < p->ndatasets; j++) {
        for (k = 0; k <= DG_LEVEL_MAX; k++) {
            fz_check_plan(&p->datasets[j].plan_by_clearance[k]);
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char          err[DG_ERRLEN];
    dg_grant_t   *g;
    dg_policy_t  *p;

    if (fz_policy == NULL) {
        fz_policy = dg_policy_load_buffer("base.yaml", fz_base,
                                          sizeof(fz_base) - 1, err,
                                          sizeof(err));
        if (fz_policy == NULL) {
            fprintf(stderr, "base policy: %s\n", err);
            abort();
        }
    }

    err[0] = '\0';
    p = dg_policy_load_buffer("fuzz.yaml", (const char *) data, size, err,
                              sizeof(err));

    if (p != NULL) {
        fz_exercise(p);
        dg_policy_free(p);

    } else if (strncmp(err, "fuzz.yaml:", 10) != 0) {
        fprintf(stderr, "error without location: %s\n", err);
        abort();
    }

    g = dg_grant_compile(fz_policy, (const char *) data, size, err,
                         sizeof(err));
    if (g != NULL) {
        fz_check_plan(&g->plan);
        dg_grant_free(g);
    }

    return 0;
}
