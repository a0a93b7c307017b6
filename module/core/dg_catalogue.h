/*
 * datagate core: what one consumer may ask for, from a compiled policy.
 *
 * Plain C, no nginx headers.  The catalogue (dg_catalogue_json) is the
 * consumer's own view of the policy: the datasets it can reach, each way
 * in (its clearance on an unconditional dataset, or a grant) with the
 * purposes, validity window, whether an approval number is needed,
 * methods, rate and quota, and the field plan.  Nothing of other
 * consumers, of their grants, or of approval numbers is in it.  The
 * nginx location `datagate_catalogue;` and `datagate policy catalogue`
 * both print it; `datagate policy explain` describes a plan's fields with
 * dg_plan_field() too.
 */

#ifndef DG_CATALOGUE_H
#define DG_CATALOGUE_H

#include <stddef.h>
#include <time.h>

#include "dg_policy.h"


/* why a field of a plan is shown as it is */
typedef enum {
    DG_PF_CLEAR = 0,            /* class level within the clearance */
    DG_PF_CLASS_CLEAR,          /* above it, but the class's method is
                                   clear */
    DG_PF_REVEALED,             /* above it, revealed by the grant */
    DG_PF_MASKED,               /* above it: the class's method */
    DG_PF_DROPPED,              /* dropped by the grant */
    DG_PF_OTHER                 /* no class (the action says it all) */
} dg_pf_rule_e;


typedef struct {
    dg_str_t                    key;        /* selector, as in the policy */
    const dg_class_t           *cls;        /* NULL: a grant's drop key
                                               that is no field */
    const dg_mask_spec_t       *action;
    dg_pf_rule_e                rule;
} dg_plan_field_t;


/*
 * Field i (< pl->nfields) of plan pl, the plan of dataset d for consumer c
 * under grant g (NULL: the clearance plan): its key (the dataset's fields
 * first, then the grant's drop keys that are no field), class, action and
 * rule.  0 ok, -1 out of range.
 */
int dg_plan_field(const dg_policy_t *p, const dg_dataset_t *d,
    const dg_consumer_t *c, const dg_grant_t *g, const dg_plan_t *pl,
    size_t i, dg_plan_field_t *f);

/* "clear", "masked", "dropped": what a field's action does to a value */
const char *dg_plan_action_name(const dg_mask_spec_t *action);


/* rate and quota that apply under grant g (NULL: none) on dataset d:
 * the grant's when it sets one, else the dataset's; empty: none */
typedef struct {
    dg_str_t                    rate;
    dg_str_t                    quota;
    unsigned                    rate_grant:1;   /* set by the grant */
    unsigned                    quota_grant:1;
} dg_limits_t;

void dg_limits_of(const dg_dataset_t *d, const dg_grant_t *g,
    dg_limits_t *l);


/* a location that serves a dataset (the nginx glue knows them) */
typedef struct {
    const dg_dataset_t         *dataset;
    const char                 *path;      /* the location's name */
    size_t                      len;
    const char                 *match;     /* "prefix", "exact", "regex" */
} dg_catalogue_loc_t;


typedef struct {
    time_t                      now;
    /* the gateway's locations (with_locations set), each dataset lists
     * its own; with_locations clear leaves "locations" out (the
     * command-line tool does not know them) */
    const dg_catalogue_loc_t   *locs;
    size_t                      nlocs;
    unsigned                    with_locations:1;
} dg_catalogue_opts_t;


/*
 * The catalogue of consumer c as one JSON document and a newline
 * (docs/catalogue.md), written into buf: returns the length of the whole
 * document; when that is less than cap, all of it is in buf, NUL-
 * terminated (else a prefix is: call with cap 0 to size the buffer).  The
 * same inputs give the same bytes.
 */
size_t dg_catalogue_json(const dg_policy_t *p, const dg_consumer_t *c,
    const dg_catalogue_opts_t *o, char *buf, size_t cap);

#endif /* DG_CATALOGUE_H */
