
/*
 * datagate: GeoIP (libmaxminddb).  Placeholder.
 */


#include "ngx_http_datagate.h"


ngx_int_t
ngx_http_datagate_geoip_open(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf)
{
    return NGX_OK;
}


ngx_int_t
ngx_http_datagate_geoip_lookup(ngx_http_datagate_main_conf_t *dmcf,
    struct sockaddr *sa, u_char *country, u_char *region, size_t rlen)
{
    return NGX_DECLINED;
}
