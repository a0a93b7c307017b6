/*
 * datagate core: the safety net's methods under a policy.  Each detect
 * kind (dg_mask_detect_kinds[]) is masked with the mask of the policy's
 * class of the kind's class id, unless that class is missing or clear;
 * then with the kind's own mask.  The gateway and datagate policy explain
 * both take the methods from here.
 */

#include <stddef.h>
#include <string.h>
#include "dg_policy.h"
#include "dg_mask.h"


void
dg_policy_detect_specs(const dg_policy_t *p, dg_mask_spec_t *detect,
    int *cls)
{
    size_t              i, len;
    unsigned            k;
    const char         *id;
    const dg_class_t   *c;

    for (k = 0; k < DG_DETECT_MAX; k++) {
        detect[k] = dg_mask_detect_kinds[k].mask;

        if (cls != NULL) {
            cls[k] = -1;
        }

        if (p == NULL) {
            continue;
        }

        id = dg_mask_detect_kinds[k].class_id;
        len = strlen(id);

        for (i = 0; i < p->nclasses; i++) {
            c = &p->classes[i];

            if (c->id.len != len || memcmp(c->id.data, id, len) != 0) {
                continue;
            }

            if (cls != NULL && cls[k] < 0) {
                cls[k] = (int) i;
            }

            if (c->mask.method != DG_MASK_CLEAR) {
                detect[k] = c->mask;

                if (cls != NULL) {
                    cls[k] = (int) i;
                }

                break;
            }
        }
    }
}
