
/*
 * datagate: log phase (audit record, counters).  Placeholder.
 */


#include "ngx_http_datagate.h"


ngx_int_t
ngx_http_datagate_log_handler(ngx_http_request_t *r)
{
    return NGX_OK;
}


ngx_int_t
ngx_http_datagate_audit_init(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf)
{
    return NGX_OK;
}
