/*
 * datagate core: the response-header rule of masked datasets: the safe
 * set, the dataset's "headers:" list, header names.
 */

#include <string.h>
#include <strings.h>

#include "dg_header.h"


const dg_header_def_t  dg_header_safe[] = {

    /* describe the answer, not its data */
    { "Content-Type",           DG_HDR_SAFE },
    { "Content-Encoding",       DG_HDR_SAFE },
    { "Cache-Control",          DG_HDR_SAFE },
    { "Date",                   DG_HDR_SAFE },
    { "Expires",                DG_HDR_SAFE },
    { "Last-Modified",          DG_HDR_SAFE },
    { "Vary",                   DG_HDR_SAFE },
    { "Retry-After",            DG_HDR_SAFE },

    /* the gateway answers with these itself (rate limits) */
    { "RateLimit",              DG_HDR_GATEWAY },
    { "RateLimit-Policy",       DG_HDR_GATEWAY },
    { "RateLimit-Limit",        DG_HDR_GATEWAY },
    { "RateLimit-Remaining",    DG_HDR_GATEWAY },
    { "RateLimit-Reset",        DG_HDR_GATEWAY },

    /* nginx writes these itself (the provider's are not passed as sent) */
    { "Content-Length",         DG_HDR_NGINX },
    { "Transfer-Encoding",      DG_HDR_NGINX },
    { "Connection",             DG_HDR_NGINX },
    { "Keep-Alive",             DG_HDR_NGINX },
    { "Server",                 DG_HDR_NGINX },

    { NULL,                     DG_HDR_SAFE }
};


/* names that "headers:" may not list, and why */

typedef struct {
    const char                 *name;
    size_t                      len;
    unsigned                    prefix:1;
    const char                 *why;
} dg_header_refusal_t;


#define DG_HDR_ORACLE                                                         \
    "a validator or digest of the provider's unmasked body lets a consumer " \
    "test guesses of the masked values"

#define DG_HDR_SIGNATURE                                                      \
    "a signature (RFC 9421) over the provider's body or its digest lets a "  \
    "consumer test guesses of the masked values with the provider's key"

#define DG_HDR_RANGES                                                         \
    "byte ranges are ranges of the provider's unmasked body"

/*
 * Also what the response filter drops from every answer of a dataset
 * whose plan masks, whatever "headers:" lists (ngx_http_datagate_drop_
 * validators()): one table for both.
 */
static const dg_header_refusal_t  dg_header_refusals[] = {
    { "Datagate-", sizeof("Datagate-") - 1, 1,
      "Datagate-* headers are the gateway's own; a provider's are never "
      "passed" },
    { "X-Accel-", sizeof("X-Accel-") - 1, 1,
      "X-Accel-* headers are instructions to nginx, which enforced "
      "locations ignore; they never reach the consumer" },
    { "ETag", sizeof("ETag") - 1, 0, DG_HDR_ORACLE },
    { "Content-MD5", sizeof("Content-MD5") - 1, 0, DG_HDR_ORACLE },
    { "Digest", sizeof("Digest") - 1, 0, DG_HDR_ORACLE },
    { "Content-Digest", sizeof("Content-Digest") - 1, 0, DG_HDR_ORACLE },
    { "Repr-Digest", sizeof("Repr-Digest") - 1, 0, DG_HDR_ORACLE },
    { "Signature", sizeof("Signature") - 1, 0, DG_HDR_SIGNATURE },
    { "Signature-Input", sizeof("Signature-Input") - 1, 0,
      DG_HDR_SIGNATURE },
    { "Accept-Ranges", sizeof("Accept-Ranges") - 1, 0, DG_HDR_RANGES },
    { "Content-Range", sizeof("Content-Range") - 1, 0, DG_HDR_RANGES },
    { "Trailer", sizeof("Trailer") - 1, 0,
      "the provider's trailers never follow: nginx's proxy drops them" },
    { NULL, 0, 0, NULL }
};


int
dg_header_is_safe(const char *name, size_t len)
{
    const dg_header_def_t  *h;

    for (h = dg_header_safe; h->name; h++) {
        if (strlen(h->name) == len && strncasecmp(h->name, name, len) == 0) {
            return 1;
        }
    }

    return 0;
}


int
dg_header_listed(const dg_dataset_t *d, const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < d->nheaders; i++) {
        if (d->headers[i].len == len
            && strncasecmp(d->headers[i].data, name, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


int
dg_header_name_ok(const char *name, size_t len)
{
    size_t                 i;
    unsigned char          c;
    static const char      tchar[] = "!#$%&'*+-.^_`|~";

    if (len == 0 || len > DG_HEADER_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) name[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9'))
        {
            continue;
        }

        if (c == '\0' || strchr(tchar, c) == NULL) {
            return 0;
        }
    }

    return 1;
}


const char *
dg_header_refused(const char *name, size_t len)
{
    const dg_header_refusal_t  *r;

    for (r = dg_header_refusals; r->name; r++) {
        if ((r->prefix ? len >= r->len : len == r->len)
            && strncasecmp(r->name, name, r->len) == 0)
        {
            return r->why;
        }
    }

    return NULL;
}
