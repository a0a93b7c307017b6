/*
 * datagate: GeoIP (libmaxminddb).
 *
 * The database is opened at configuration time (so a reload reopens it)
 * and closed by a cleanup of the configuration pool.  A lookup gives the
 * ISO 3166-1 country code and the ISO 3166-2 code of the first
 * subdivision ("CN-GX": the country, a hyphen, the subdivision code of the
 * database), or a defined "not found": empty strings and NGX_DECLINED.
 */


#include "ngx_http_datagate.h"

#include <maxminddb.h>


static void ngx_http_datagate_geoip_cleanup(void *data);
static ngx_int_t ngx_http_datagate_geoip_string(MMDB_entry_s *entry,
    u_char *buf, size_t len, const char *const *path);


static const char *const  ngx_http_datagate_geoip_country[] = {
    "country", "iso_code", NULL
};

static const char *const  ngx_http_datagate_geoip_region[] = {
    "subdivisions", "0", "iso_code", NULL
};


ngx_int_t
ngx_http_datagate_geoip_open(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf)
{
    int                  rc;
    u_char              *path;
    MMDB_s              *mmdb;
    ngx_pool_cleanup_t  *cln;

    path = ngx_pnalloc(cf->pool, dmcf->geoip_path.len + 1);
    if (path == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(path, dmcf->geoip_path.data, dmcf->geoip_path.len + 1);

    mmdb = ngx_pcalloc(cf->pool, sizeof(MMDB_s));
    if (mmdb == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    rc = MMDB_open((char *) path, MMDB_MODE_MMAP, mmdb);

    if (rc != MMDB_SUCCESS) {
        if (rc == MMDB_IO_ERROR) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                          "datagate: cannot open GeoIP database \"%s\": %s",
                          path, MMDB_strerror(rc));

        } else {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "datagate: cannot open GeoIP database \"%s\": %s",
                          path, MMDB_strerror(rc));
        }

        return NGX_ERROR;
    }

    cln->handler = ngx_http_datagate_geoip_cleanup;
    cln->data = mmdb;

    dmcf->geoip = mmdb;

    ngx_log_error(NGX_LOG_INFO, cf->log, 0,
                  "datagate: GeoIP database \"%s\": %s, built %T",
                  path, mmdb->metadata.database_type,
                  (time_t) mmdb->metadata.build_epoch);

    return NGX_OK;
}


static void
ngx_http_datagate_geoip_cleanup(void *data)
{
    MMDB_s  *mmdb = data;

    MMDB_close(mmdb);
}


ngx_int_t
ngx_http_datagate_geoip_lookup(ngx_http_datagate_main_conf_t *dmcf,
    struct sockaddr *sa, u_char *country, u_char *region, size_t rlen)
{
    int                    mmdb_error;
    u_char                 sub[16];
    size_t                 clen;
    MMDB_s                *mmdb;
    MMDB_lookup_result_s   res;

    country[0] = '\0';

    if (region && rlen) {
        region[0] = '\0';
    }

    mmdb = dmcf->geoip;

    if (mmdb == NULL || sa == NULL
        || (sa->sa_family != AF_INET
#if (NGX_HAVE_INET6)
            && sa->sa_family != AF_INET6
#endif
           ))
    {
        return NGX_DECLINED;
    }

    /* never touches DNS: the address is numeric */
    res = MMDB_lookup_sockaddr(mmdb, sa, &mmdb_error);

    if (mmdb_error != MMDB_SUCCESS || !res.found_entry) {
        return NGX_DECLINED;
    }

    if (ngx_http_datagate_geoip_string(&res.entry, country, 3,
                                       ngx_http_datagate_geoip_country)
        != NGX_OK)
    {
        country[0] = '\0';
        return NGX_DECLINED;
    }

    clen = ngx_strlen(country);

    if (clen != 2) {
        country[0] = '\0';
        return NGX_DECLINED;
    }

    if (region == NULL || rlen == 0) {
        return NGX_OK;
    }

    /* "CN-GX": ISO 3166-2 */

    if (ngx_http_datagate_geoip_string(&res.entry, sub, sizeof(sub),
                                       ngx_http_datagate_geoip_region)
        == NGX_OK
        && sub[0] != '\0'
        && clen + 1 + ngx_strlen(sub) < rlen)
    {
        ngx_sprintf(region, "%s-%s%Z", country, sub);
    }

    return NGX_OK;
}


/*
 * A UTF-8 string at path; letters, digits and '-' only (the value goes
 * into logs and JSON unescaped).  NGX_OK with buf NUL-terminated, or
 * NGX_DECLINED.
 */
static ngx_int_t
ngx_http_datagate_geoip_string(MMDB_entry_s *entry, u_char *buf, size_t len,
    const char *const *path)
{
    int                   rc;
    size_t                i;
    u_char                c;
    MMDB_entry_data_s     data;

    rc = MMDB_aget_value(entry, &data, path);

    if (rc != MMDB_SUCCESS || !data.has_data
        || data.type != MMDB_DATA_TYPE_UTF8_STRING
        || data.data_size == 0 || data.data_size >= len)
    {
        return NGX_DECLINED;
    }

    for (i = 0; i < data.data_size; i++) {
        c = (u_char) data.utf8_string[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '-'))
        {
            return NGX_DECLINED;
        }

        buf[i] = c;
    }

    buf[data.data_size] = '\0';

    return NGX_OK;
}
