
/*
 * datagate: Redis on nginx's event loop.  Placeholder until it lands.
 */


#include "ngx_http_datagate.h"


ngx_int_t
ngx_http_datagate_redis_init_process(ngx_cycle_t *cycle)
{
    return NGX_OK;
}


void
ngx_http_datagate_redis_exit_process(ngx_cycle_t *cycle)
{
}
