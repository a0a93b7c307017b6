
/*
 * datagate: the consumer's catalogue (datagate_catalogue).
 *
 * A location with "datagate_catalogue;" answers the calling consumer with
 * what it may ask for: the document of dg_catalogue_json() (core), built
 * from this cycle's compiled policy, with the enforced locations of the
 * same server{} that serve each dataset.  The consumer is the one of the
 * client certificate, checked as on a data location by the access phase
 * (_access.c: identity, TLS binding, network, geo, request checks, the
 * revoked-certificate and suspended-consumer controls, the audit rule);
 * nothing in the request (arguments, headers) chooses another one.  The
 * request is audited and counted with an empty dataset.
 */


#include "ngx_http_datagate.h"
#include "dg_catalogue.h"


/* an enforced location that serves a dataset, for the catalogue */
typedef struct {
    void                          **srv_conf;  /* its server's */
    ngx_http_core_loc_conf_t       *clcf;
    const dg_dataset_t             *dataset;
} ngx_http_datagate_cat_loc_t;


static ngx_int_t ngx_http_datagate_catalogue_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_datagate_catalogue_locs(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, dg_catalogue_opts_t *o);


char *
ngx_http_datagate_catalogue(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_datagate_loc_conf_t *dlcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (dlcf->catalogue) {
        return "is duplicate";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: \"datagate_catalogue\" in a location "
                           "that already has a content handler (such as "
                           "\"datagate_status\" or \"proxy_pass\")");
        return NGX_CONF_ERROR;
    }

    clcf->handler = ngx_http_datagate_catalogue_handler;

    dlcf->catalogue = 1;
    dlcf->catalogue_file = cf->conf_file->file.name;
    dlcf->catalogue_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_datagate_catalogue_merge(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_loc_conf_t *conf)
{
    ngx_str_t                     name;
    ngx_uint_t                    line;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_datagate_cat_loc_t  *loc;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->catalogue && clcf != NULL && clcf->name.len != 0
        && (dmcf->policy == NULL || conf->dataset_id.len))
    {
        /* name the line of the datagate_catalogue directive */

        name = cf->conf_file->file.name;
        line = cf->conf_file->line;

        cf->conf_file->file.name = conf->catalogue_file;
        cf->conf_file->line = conf->catalogue_line;

        if (dmcf->policy == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "datagate: \"datagate_catalogue\" needs "
                               "\"datagate_policy\" in the http block");
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "datagate: \"datagate_catalogue\" in a "
                               "location that serves dataset \"%V\": a "
                               "catalogue is a location of its own",
                               &conf->dataset_id);
        }

        cf->conf_file->file.name = name;
        cf->conf_file->line = line;

        return NGX_ERROR;
    }

    /*
     * An enforced location of a server, by name: the catalogue of that
     * server lists it under its dataset.  The confs that "if" and
     * "limit_except" make inside a location (noname), named locations
     * and the server and http levels are not locations a client names.
     */

    if (conf->enable != 1 || conf->status || conf->catalogue
        || conf->dataset == NULL || clcf == NULL || clcf->name.len == 0
        || clcf->noname || clcf->named)
    {
        return NGX_OK;
    }

    if (dmcf->catalogue_locs == NULL) {
        dmcf->catalogue_locs = ngx_array_create(cf->pool, 16,
                                       sizeof(ngx_http_datagate_cat_loc_t));
        if (dmcf->catalogue_locs == NULL) {
            return NGX_ERROR;
        }
    }

    loc = ngx_array_push(dmcf->catalogue_locs);
    if (loc == NULL) {
        return NGX_ERROR;
    }

    /* locations are merged with their server's srv_conf in cf->ctx
     * (ngx_http_merge_servers()), the r->srv_conf of their requests */
    loc->srv_conf = ((ngx_http_conf_ctx_t *) cf->ctx)->srv_conf;
    loc->clcf = clcf;
    loc->dataset = conf->dataset;

    return NGX_OK;
}


static ngx_int_t
ngx_http_datagate_catalogue_handler(ngx_http_request_t *r)
{
    u_char                         *p;
    size_t                          len;
    ngx_int_t                       rc;
    ngx_buf_t                      *b;
    ngx_chain_t                     out;
    ngx_table_elt_t                *h;
    dg_catalogue_opts_t             o;
    ngx_http_datagate_ctx_t        *ctx;
    ngx_http_datagate_main_conf_t  *dmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);
    ctx = ngx_http_datagate_get_ctx(r);

    /*
     * The access phase answered for this consumer (_access.c); anything
     * else (a subrequest, a phase that did not run) gets nothing
     */

    if (ctx == NULL || !ctx->catalogue || !ctx->allowed
        || ctx->consumer == NULL || dmcf->policy == NULL
        || r != r->main)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "datagate: catalogue without a checked consumer");
        return NGX_HTTP_FORBIDDEN;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_memzero(&o, sizeof(dg_catalogue_opts_t));
    o.now = ngx_time();

    if (ngx_http_datagate_catalogue_locs(r, dmcf, &o) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* sized, then written: the same inputs give the same bytes */

    len = dg_catalogue_json(dmcf->policy, ctx->consumer, &o, NULL, 0);

    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

    if (dg_catalogue_json(dmcf->policy, ctx->consumer, &o, (char *) p,
                          len + 1)
        != len)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "datagate: the catalogue changed its size");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = p + len;
    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* the enforced locations of the request's server{} */
static ngx_int_t
ngx_http_datagate_catalogue_locs(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, dg_catalogue_opts_t *o)
{
    ngx_uint_t                    i, n;
    dg_catalogue_loc_t           *out;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_datagate_cat_loc_t  *loc;

    o->with_locations = 1;

    if (dmcf->catalogue_locs == NULL) {
        return NGX_OK;
    }

    loc = dmcf->catalogue_locs->elts;
    n = dmcf->catalogue_locs->nelts;

    out = ngx_palloc(r->pool, n * sizeof(dg_catalogue_loc_t));
    if (out == NULL) {
        return NGX_ERROR;
    }

    o->locs = out;

    for (i = 0; i < n; i++) {
        if (loc[i].srv_conf != r->srv_conf) {
            continue;
        }

        clcf = loc[i].clcf;

        out->dataset = loc[i].dataset;
        out->path = (const char *) clcf->name.data;
        out->len = clcf->name.len;
#if (NGX_PCRE)
        out->match = clcf->regex ? "regex"
                                 : clcf->exact_match ? "exact" : "prefix";
#else
        out->match = clcf->exact_match ? "exact" : "prefix";
#endif
        out++;
        o->nlocs++;
    }

    return NGX_OK;
}
