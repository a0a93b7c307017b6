/*
 * datagate core: least data in the policy.  A dataset names where the
 * records of its answers are ("records:"); the masker counts them in
 * every answer it reads (dg_mask.h has the forms).
 */

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "dg_policy_int.h"


/* records: "$", "[]" or keys ending in "[]", checked by the masker's own
 * compiler so that the policy accepts what the masker reads */
int
dg_load_records(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, dg_dataset_t *d)
{
    int                  rc;
    char                 merr[256];
    dg_mask_rules_t     *r;
    const dg_ynode_t    *v;
    dg_mask_rules_in_t   in;

    v = dg_ymap_get(it, "records");

    if (v != NULL && v->type == DG_Y_SEQ && v->n == 0) {
        /* records: [] is YAML for an empty list: the top-level array */
        d->records.data = "[]";
        d->records.len = 2;
        return 0;
    }

    rc = dg_get_text(L, file, it, path, "records", 0, DG_TEXT_MAX,
                     &d->records, &v);
    if (rc < 0) {
        return -1;
    }

    if (rc == 0) {
        d->records.data = "";
        d->records.len = 0;
        return 0;
    }

    memset(&in, 0, sizeof(in));
    in.records = d->records.data;
    in.records_len = d->records.len;

    merr[0] = '\0';
    r = dg_mask_rules_build(&in, merr, sizeof(merr));

    if (r == NULL) {
        return dg_err(L, file, v->line, path, "records", "%s",
                      merr[0] ? merr : "bad records path");
    }

    dg_mask_rules_free(r);

    return 0;
}
