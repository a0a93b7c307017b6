
/*
 * datagate: rate limits and quotas.  Placeholder until it lands.
 */


#include "ngx_http_datagate.h"


ngx_int_t
ngx_http_datagate_limit(ngx_http_request_t *r, ngx_http_datagate_ctx_t *ctx)
{
    return NGX_OK;
}
