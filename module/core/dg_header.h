/*
 * datagate core: the response-header rule of masked datasets.
 *
 * Plain C, no nginx headers.  On a dataset whose masking plan sends the
 * body through the masker, a provider's response header reaches the
 * consumer only when its name is in the safe set below or in the
 * dataset's "headers:" list; what passes is scanned by the safety net
 * (dg_mask_text()).  The table is the one fact: the nginx glue applies
 * it, `datagate policy explain` and the docs show it.
 */

#ifndef DG_HEADER_H
#define DG_HEADER_H

#include <stddef.h>

#include "dg_policy.h"


#define DG_HEADER_NAME_MAX      128


/* why a header of the safe set passes */
typedef enum {
    DG_HDR_SAFE = 0,            /* carries no data of the answer */
    DG_HDR_GATEWAY,             /* a name the gateway itself answers with */
    DG_HDR_NGINX                /* framing nginx manages itself */
} dg_header_kind_e;


typedef struct {
    const char                 *name;
    dg_header_kind_e            kind;
} dg_header_def_t;


/* the safe set, ending with a NULL name */
extern const dg_header_def_t  dg_header_safe[];


/* 1: name (any case) is in the safe set */
int dg_header_is_safe(const char *name, size_t len);

/* 1: name (any case) is in the dataset's "headers:" list */
int dg_header_listed(const dg_dataset_t *d, const char *name, size_t len);

/* 1: a header name (RFC 9110 token) of 1..DG_HEADER_NAME_MAX bytes */
int dg_header_name_ok(const char *name, size_t len);

/*
 * NULL: name may be listed in "headers:"; otherwise why it may not (the
 * gateway's own Datagate-*, nginx's X-Accel-*, validators, digests,
 * signatures and ranges of the unmasked body, Trailer).  The response
 * filter drops these from every answer of a plan that masks.
 */
const char *dg_header_refused(const char *name, size_t len);

#endif /* DG_HEADER_H */
