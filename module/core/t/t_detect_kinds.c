/*
 * Unit tests of the detect kinds (module/core/dg_mask_kinds.c): the table
 * every user of a kind reads, its validators, and the methods a policy
 * gives the kinds (dg_policy_detect_specs()).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "dg_mask.h"
#include "dg_policy.h"


/* one value of each kind, and one that is none */
static const char  *good[DG_DETECT_MAX] = {
    "450103199003071242",       /* resident ID */
    "13877112345",              /* mobile */
    "6222021234567890128",      /* bank card (Luhn) */
    "91350100M000100Y43"        /* USCC */
};

static const char  *bad[DG_DETECT_MAX] = {
    "450103199003071243",       /* check character off */
    "14477112345",              /* segment 144 not in use */
    "6222021234567890127",      /* Luhn off */
    "91350100M000100Y44"        /* check character off */
};


static void
test_table(void)
{
    char            sbuf[32];
    unsigned        k, j;
    const uint8_t  *v;
    int             hit;

    is_str(dg_mask_detect_kinds[DG_DETECT_ID_NUMBER].name, "id_number",
           "id_number: its name");
    is_str(dg_mask_detect_kinds[DG_DETECT_MOBILE].class_id, "person.phone",
           "mobile: its class");
    is_str(dg_mask_spec_str(&dg_mask_detect_kinds[DG_DETECT_USCC].mask,
                            sbuf, sizeof(sbuf)), "keep(6,4)",
           "uscc: its own mask");
    is_str(dg_mask_spec_str(&dg_mask_detect_kinds[DG_DETECT_BANK_CARD].mask,
                            sbuf, sizeof(sbuf)), "bank_card",
           "bank_card: its own mask");

    for (k = 0; k < DG_DETECT_MAX; k++) {
        ok(dg_mask_detect_kinds[k].name != NULL
           && dg_mask_detect_kinds[k].what != NULL
           && dg_mask_detect_kinds[k].class_id != NULL
           && dg_mask_detect_kinds[k].mask.method != DG_MASK_CLEAR
           && dg_mask_detect_kinds[k].mask.method < DG_MASK_METHOD_MAX
           && dg_mask_detect_kinds[k].valid != NULL,
           "%s: a full row", dg_mask_detect_kinds[k].name);

        /* each validator takes its own kind's value, and no other */
        for (j = 0; j < DG_DETECT_MAX; j++) {
            v = (const uint8_t *) good[j];
            hit = dg_mask_detect_kinds[k].valid(v, strlen(good[j]));

            ok(hit == (j == k), "%s validator on %s: %d",
               dg_mask_detect_kinds[k].name, good[j], hit);
        }

        /* a check character off, a segment not in use: none */
        ok(!dg_mask_detect_kinds[k].valid((const uint8_t *) bad[k],
                                          strlen(bad[k])),
           "%s validator refuses %s", dg_mask_detect_kinds[k].name, bad[k]);
    }
}


/* what a stream masks with: dg_mask_detect_text() with no methods given
 * uses each kind's own mask */
static void
test_defaults(void)
{
    uint8_t  out[256];
    int      n;

    n = dg_mask_detect_text(NULL, NULL, 0,
                            (const uint8_t *) "org 91350100M000100Y43", 22, 0,
                            out, sizeof(out), NULL);
    ok(n > 0 && (size_t) n == strlen("org 913501********0Y43")
       && memcmp(out, "org 913501********0Y43", n) == 0,
       "a credit code in a text: keep(6,4), the kind's own mask");
}


#define T_POLICY                                                            \
    "classes:\n"                                                            \
    "  person.phone: {level: 3, mask: \"keep(2,2)\"}\n"                     \
    "  org.uscc: {level: 1, mask: clear}\n"                                 \
    "  finance.bank_card: {level: 4, mask: redact}\n"                       \
    "  person.name: {level: 3, mask: name}\n"                               \
    "purposes:\n"                                                           \
    "  p1: {name: P1}\n"                                                    \
    "consumers:\n"                                                          \
    "  - id: c1\n"                                                          \
    "    cert: {subject: \"CN=c1,O=T,C=CN\"}\n"                             \
    "    clearance: 2\n"                                                    \
    "datasets:\n"                                                           \
    "  - id: d1\n"                                                          \
    "    share: unconditional\n"                                            \
    "    level: 1\n"                                                        \
    "    detect: on\n"


static void
test_policy(void)
{
    int              cls[DG_DETECT_MAX];
    char             err[DG_ERRLEN], sbuf[32];
    dg_policy_t     *p;
    dg_mask_spec_t   d[DG_DETECT_MAX];

    p = dg_policy_load_buffer("t.yaml", T_POLICY, strlen(T_POLICY), err,
                              sizeof(err));
    if (!ok(p != NULL, "policy loads")) {
        diag("%s", err);
        return;
    }

    dg_policy_detect_specs(p, d, cls);

    is_str(dg_mask_spec_str(&d[DG_DETECT_MOBILE], sbuf, sizeof(sbuf)),
           "keep(2,2)", "mobile: the mask of class person.phone");
    ok(cls[DG_DETECT_MOBILE] >= 0
       && strcmp(p->classes[cls[DG_DETECT_MOBILE]].id.data, "person.phone")
          == 0, "mobile: the class named");
    is_str(dg_mask_spec_str(&d[DG_DETECT_BANK_CARD], sbuf, sizeof(sbuf)),
           "redact", "bank_card: the mask of class finance.bank_card");
    is_str(dg_mask_spec_str(&d[DG_DETECT_USCC], sbuf, sizeof(sbuf)),
           "keep(6,4)", "uscc: class org.uscc is clear: the kind's own");
    ok(cls[DG_DETECT_USCC] >= 0, "uscc: the clear class named");
    is_str(dg_mask_spec_str(&d[DG_DETECT_ID_NUMBER], sbuf, sizeof(sbuf)),
           "id_card", "id_number: no class: the kind's own");
    is_int(cls[DG_DETECT_ID_NUMBER], -1, "id_number: no class named");

    dg_policy_free(p);

    /* no policy: every kind its own, cls may be NULL */
    dg_policy_detect_specs(NULL, d, NULL);
    ok(memcmp(&d[DG_DETECT_USCC], &dg_mask_detect_kinds[DG_DETECT_USCC].mask,
              sizeof(dg_mask_spec_t)) == 0
       && d[DG_DETECT_MOBILE].method == DG_MASK_PHONE,
       "no policy: the kinds' own masks");
}


int
main(void)
{
    test_table();
    test_defaults();
    test_policy();

    return done_testing();
}
