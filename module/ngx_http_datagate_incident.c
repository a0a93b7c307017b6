
/*
 * datagate: incident controls and run-time grants (single node: none).
 * Placeholder until the Redis cluster state lands.
 */


#include "ngx_http_datagate.h"


ngx_int_t
ngx_http_datagate_runtime_grants(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e *reason)
{
    ctx->extra = NULL;
    ctx->nextra = 0;
    *reason = DG_R_OK;
    return NGX_OK;
}


ngx_int_t
ngx_http_datagate_incident_check(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e *reason)
{
    *reason = DG_R_OK;
    return NGX_OK;
}
