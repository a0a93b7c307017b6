
/*
 * datagate: statistics endpoint.  Placeholder.
 */


#include "ngx_http_datagate.h"


ngx_int_t
ngx_http_datagate_status_handler(ngx_http_request_t *r)
{
    return NGX_HTTP_NOT_IMPLEMENTED;
}
