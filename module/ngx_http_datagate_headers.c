
/*
 * datagate: the provider's response headers on enforced locations.
 *
 * The response-header rule of masked datasets (dg_header.h), called by
 * the header filter (_filter.c) for every answer to an allowed request
 * whose plan masks, whatever its status, method or body:
 *
 *   1. the provider's reason phrase goes (nginx writes its own);
 *   2. allow-list: a header the provider sent (an element of
 *      headers_out.headers copied from the upstream's headers) passes
 *      only when its name is in the safe set or in the dataset's
 *      "headers:"; every other one is dropped and counted like an
 *      unlisted key;
 *   3. safety net: every header that remains, the provider's or not,
 *      and the Content-Type, is scanned by dg_mask_text(); a hit is
 *      masked in place with its kind's method, whatever the dataset's
 *      "detect" says.  A value that cannot be scanned is dropped.
 *
 * nginx acts on some provider headers before any filter runs
 * (ngx_http_upstream_process_headers): X-Accel-Redirect sends the
 * request to another location, X-Accel-Charset, -Buffering, -Limit-Rate
 * and -Expires change how the answer is sent or cached.  Every enforced
 * location makes its upstream module ignore them (as proxy_ignore_headers
 * would), and an answer that asks for an internal redirect is refused:
 * ngx_http_datagate_headers_refused().
 *
 * And what every file does with a header list: find a header by name,
 * drop one with nginx's pointers to it (the walk itself is
 * ngx_http_datagate_header_first()/_next() in the header).
 */


#include "ngx_http_datagate.h"
#include "dg_header.h"


#define NGX_HTTP_DATAGATE_IGN_XA  (NGX_HTTP_UPSTREAM_IGN_XA_REDIRECT        \
                                   | NGX_HTTP_UPSTREAM_IGN_XA_EXPIRES       \
                                   | NGX_HTTP_UPSTREAM_IGN_XA_LIMIT_RATE    \
                                   | NGX_HTTP_UPSTREAM_IGN_XA_BUFFERING     \
                                   | NGX_HTTP_UPSTREAM_IGN_XA_CHARSET)


typedef struct {
    ngx_http_request_t             *request;
    ngx_http_datagate_ctx_t        *ctx;
    dg_mask_conf_t                  conf;       /* detect methods, key */
    uintptr_t                      *keys;       /* the provider's header
                                                   names, sorted */
    ngx_uint_t                      nkeys;
    u_char                         *work;       /* dg_mask_text() */
    u_char                         *out;
    size_t                          max;        /* the longest value */
    ngx_uint_t                      dropped;
    ngx_uint_t                      masked;
} ngx_http_datagate_hdr_t;


static ngx_int_t ngx_http_datagate_hdr_keys(ngx_http_datagate_hdr_t *hs);
static int ngx_libc_cdecl ngx_http_datagate_hdr_cmp(const void *a,
    const void *b);
static ngx_uint_t ngx_http_datagate_hdr_provider(ngx_http_datagate_hdr_t *hs,
    ngx_table_elt_t *h);
#if (nginx_version >= 1023000)
static void ngx_http_datagate_hdr_unlink(ngx_table_elt_t **list,
    ngx_table_elt_t *h);
#else
static void ngx_http_datagate_hdr_unlink(ngx_array_t *a, ngx_table_elt_t *h);
#endif
static ngx_int_t ngx_http_datagate_hdr_scan(ngx_http_datagate_hdr_t *hs,
    ngx_str_t *value, ngx_str_t *name);
static void ngx_http_datagate_hdr_content_type(ngx_http_request_t *r);


/* the upstream modules whose location conf starts with an
 * ngx_http_upstream_conf_t (by name: a module may not be built in) */
static const char  *ngx_http_datagate_upstream_modules[] = {
    "ngx_http_proxy_module",
    "ngx_http_fastcgi_module",
    "ngx_http_uwsgi_module",
    "ngx_http_scgi_module",
    "ngx_http_grpc_module",
    "ngx_http_memcached_module",
    NULL
};


/* ---- configuration ------------------------------------------------- */

/*
 * From the location merge of an enforced location: its confs, for
 * ngx_http_datagate_headers_init() (the upstream modules' own merge may
 * not have run yet).
 */
ngx_int_t
ngx_http_datagate_headers_location(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf)
{
    void  ***loc;

    if (dmcf->enforced_locs == NULL) {
        dmcf->enforced_locs = ngx_array_create(cf->pool, 16,
                                               sizeof(void **));
        if (dmcf->enforced_locs == NULL) {
            return NGX_ERROR;
        }
    }

    loc = ngx_array_push(dmcf->enforced_locs);
    if (loc == NULL) {
        return NGX_ERROR;
    }

    *loc = ((ngx_http_conf_ctx_t *) cf->ctx)->loc_conf;

    return NGX_OK;
}


/*
 * After every merge: the upstream modules of enforced locations ignore
 * X-Accel-* (the bits proxy_ignore_headers sets; nothing the operator set
 * is taken away).  Every upstream module keeps its ngx_http_upstream_conf_t
 * first in its location conf (proxy, fastcgi, uwsgi, scgi, grpc,
 * memcached).
 */
ngx_int_t
ngx_http_datagate_headers_init(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf)
{
    void                     ***loc;
    ngx_uint_t                  i, m, k;
    ngx_module_t               *mod;
    ngx_http_upstream_conf_t   *ucf;

    if (dmcf->enforced_locs == NULL) {
        return NGX_OK;
    }

    loc = dmcf->enforced_locs->elts;

    for (m = 0; cf->cycle->modules[m]; m++) {
        mod = cf->cycle->modules[m];

        if (mod->type != NGX_HTTP_MODULE) {
            continue;
        }

        for (k = 0; ngx_http_datagate_upstream_modules[k]; k++) {
            if (ngx_strcmp(mod->name, ngx_http_datagate_upstream_modules[k])
                == 0)
            {
                break;
            }
        }

        if (ngx_http_datagate_upstream_modules[k] == NULL) {
            continue;
        }

        for (i = 0; i < dmcf->enforced_locs->nelts; i++) {
            ucf = loc[i][mod->ctx_index];

            if (ucf != NULL) {
                ucf->ignore_headers |= NGX_HTTP_DATAGATE_IGN_XA;
            }
        }
    }

    return NGX_OK;
}


/* ---- requests ------------------------------------------------------ */

/*
 * Why an answer to an allowed enforced request must not go out at all,
 * or NULL: the provider asked for an internal redirect (X-Accel-Redirect,
 * ignored), or the answer comes from a location that does not enforce
 * the request's dataset after an internal redirect (try_files to a named
 * location, a module's redirect): its content would go out unmasked as
 * the dataset's.  Error pages (error_page, nginx's own) are the
 * configuration's answers and stay as docs/errors.md says.
 */
const char *
ngx_http_datagate_headers_refused(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_loc_conf_t *dlcf)
{
    if (r->upstream && r->upstream->headers_in.x_accel_redirect) {
        return "the provider asked for an internal redirect "
               "(X-Accel-Redirect)";
    }

    if ((dlcf->enable != 1 || dlcf->status || dlcf->dataset != ctx->dataset)
        && r->err_status == 0 && !r->error_page)
    {
        return "the answer comes from a location that does not enforce "
               "the dataset (internal redirect)";
    }

    return NULL;
}


ngx_int_t
ngx_http_datagate_response_headers(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx)
{
    ngx_uint_t                      provider;
    const u_char                   *key;
    ngx_table_elt_t                *h;
    ngx_http_datagate_hdr_t         hs;
    ngx_http_datagate_hiter_t       hi;
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    ngx_memzero(&hs, sizeof(ngx_http_datagate_hdr_t));

    hs.request = r;
    hs.ctx = ctx;

    ngx_memcpy(hs.conf.detect, dmcf->detect, sizeof(hs.conf.detect));

    key = ngx_http_datagate_pseudonym_key(dmcf, ctx->consumer);

    if (key) {
        hs.conf.hash_key = key;
        hs.conf.hash_key_len = DG_SHA256_LEN;
    }

    if (ngx_http_datagate_hdr_keys(&hs) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the provider's reason phrase: nginx writes its own */
    ngx_str_null(&r->headers_out.status_line);

    /* X-Accel-Charset, had it not been ignored */
    if (r->upstream) {
        r->headers_out.override_charset = NULL;
    }

    /* 2. allow-list; the longest value that stays */

    hs.max = r->headers_out.content_type.len;

    for (h = ngx_http_datagate_header_first(&hi, &r->headers_out.headers);
         h != NULL;
         h = ngx_http_datagate_header_next(&hi))
    {
        if (h->hash == 0) {
            continue;
        }

        provider = ngx_http_datagate_hdr_provider(&hs, h);

        if (provider
            && !dg_header_is_safe((const char *) h->key.data,
                                  h->key.len)
            && !dg_header_listed(ctx->dataset, (const char *) h->key.data,
                                 h->key.len))
        {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "datagate: provider header \"%V\" dropped, "
                           "%uz bytes", &h->key, h->value.len);

            ngx_http_datagate_header_drop(r, h);
            hs.dropped++;
            continue;
        }

        if (h->value.len > hs.max) {
            hs.max = h->value.len;
        }
    }

    /* 3. the safety net on what stays (its memory taken at the first
     * value that may hold a hit, for the longest one) */

    for (h = ngx_http_datagate_header_first(&hi, &r->headers_out.headers);
         h != NULL;
         h = ngx_http_datagate_header_next(&hi))
    {
        if (h->hash == 0) {
            continue;
        }

        switch (ngx_http_datagate_hdr_scan(&hs, &h->value, &h->key)) {

        case NGX_OK:
            break;

        case NGX_DECLINED:
            /* could not be scanned: it goes */
            ngx_http_datagate_header_drop(r, h);
            hs.dropped++;
            break;

        default:
            return NGX_ERROR;
        }
    }

    if (r->headers_out.content_type.len) {

        switch (ngx_http_datagate_hdr_scan(&hs, &r->headers_out.content_type,
                                           NULL))
        {
        case NGX_OK:
            break;

        case NGX_DECLINED:
            ngx_str_null(&r->headers_out.content_type);
            r->headers_out.content_type_len = 0;
            ngx_str_null(&r->headers_out.charset);
            hs.dropped++;
            break;

        default:
            return NGX_ERROR;
        }
    }

    ctx->hdr_dropped += hs.dropped;
    ctx->masked += hs.masked;

    return NGX_OK;
}


/* the names of the provider's headers, as the upstream module parsed
 * them: an element of headers_out copied from them shares its key */
static ngx_int_t
ngx_http_datagate_hdr_keys(ngx_http_datagate_hdr_t *hs)
{
    ngx_uint_t                  n;
    ngx_list_t                 *headers;
    ngx_list_part_t            *part;
    ngx_table_elt_t            *h;
    ngx_http_datagate_hiter_t   hi;

    if (hs->request->upstream == NULL) {
        return NGX_OK;
    }

    headers = &hs->request->upstream->headers_in.headers;
    n = 0;

    for (part = &headers->part; part; part = part->next) {
        n += part->nelts;
    }

    if (n == 0) {
        return NGX_OK;
    }

    hs->keys = ngx_palloc(hs->request->pool, n * sizeof(uintptr_t));
    if (hs->keys == NULL) {
        return NGX_ERROR;
    }

    for (h = ngx_http_datagate_header_first(&hi, headers);
         h != NULL;
         h = ngx_http_datagate_header_next(&hi))
    {
        hs->keys[hs->nkeys++] = (uintptr_t) h->key.data;
    }

    ngx_qsort(hs->keys, hs->nkeys, sizeof(uintptr_t),
              ngx_http_datagate_hdr_cmp);

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_http_datagate_hdr_cmp(const void *a, const void *b)
{
    uintptr_t  x, y;

    x = *(const uintptr_t *) a;
    y = *(const uintptr_t *) b;

    return (x > y) - (x < y);
}


static ngx_uint_t
ngx_http_datagate_hdr_provider(ngx_http_datagate_hdr_t *hs,
    ngx_table_elt_t *h)
{
    ngx_uint_t  lo, hi, mid;
    uintptr_t   k;

    k = (uintptr_t) h->key.data;
    lo = 0;
    hi = hs->nkeys;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (hs->keys[mid] == k) {
            return 1;
        }

        if (hs->keys[mid] < k) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return 0;
}


/* ---- header lists ----------------------------------------------------- */

/* a header of a request's headers_in or headers_out list by name */

ngx_table_elt_t *
ngx_http_datagate_find_header(ngx_list_t *headers, const char *name,
    size_t len)
{
    ngx_table_elt_t            *h;
    ngx_http_datagate_hiter_t   hi;

    for (h = ngx_http_datagate_header_first(&hi, headers);
         h != NULL;
         h = ngx_http_datagate_header_next(&hi))
    {
        if (h->hash == 0) {
            continue;
        }

        if (h->key.len == len
            && ngx_strncasecmp(h->key.data, (u_char *) name, len) == 0)
        {
            return h;
        }
    }

    return NULL;
}


/* a header removed, and every pointer nginx keeps to it */
void
ngx_http_datagate_header_drop(ngx_http_request_t *r, ngx_table_elt_t *h)
{
    ngx_http_headers_out_t  *ho;

    ho = &r->headers_out;

    h->hash = 0;

    if (ho->server == h) {
        ho->server = NULL;
    }

    if (ho->date == h) {
        ho->date = NULL;
    }

    if (ho->content_length == h) {
        ho->content_length = NULL;
        ho->content_length_n = -1;
    }

    if (ho->content_encoding == h) {
        ho->content_encoding = NULL;
    }

    if (ho->location == h) {
        ho->location = NULL;
    }

    if (ho->refresh == h) {
        ho->refresh = NULL;
    }

    if (ho->last_modified == h) {
        ho->last_modified = NULL;
        ho->last_modified_time = -1;
    }

    if (ho->content_range == h) {
        ho->content_range = NULL;
    }

    if (ho->accept_ranges == h) {
        ho->accept_ranges = NULL;
    }

    if (ho->expires == h) {
        ho->expires = NULL;
    }

    if (ho->etag == h) {
        ho->etag = NULL;
    }

#if (nginx_version >= 1023000)

    /* repeated headers are chained through h->next */
    ngx_http_datagate_hdr_unlink(&ho->www_authenticate, h);

#else

    if (ho->www_authenticate == h) {
        ho->www_authenticate = NULL;
    }

#endif

    /* HTTP/2 server push reads the Link headers from here */
    ngx_http_datagate_hdr_unlink(&ho->link, h);
    ngx_http_datagate_hdr_unlink(&ho->cache_control, h);
}


#if (nginx_version >= 1023000)

static void
ngx_http_datagate_hdr_unlink(ngx_table_elt_t **list, ngx_table_elt_t *h)
{
    ngx_table_elt_t  **pp;

    for (pp = list; *pp; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            return;
        }
    }
}

#else

static void
ngx_http_datagate_hdr_unlink(ngx_array_t *a, ngx_table_elt_t *h)
{
    ngx_uint_t         i, n;
    ngx_table_elt_t  **e;

    if (a->elts == NULL) {
        return;
    }

    e = a->elts;
    n = 0;

    for (i = 0; i < a->nelts; i++) {
        if (e[i] != h) {
            e[n++] = e[i];
        }
    }

    a->nelts = n;
}

#endif


/*
 * The safety net on one value (name: for the log; NULL: Content-Type).
 * NGX_OK: clean, or masked in place; NGX_DECLINED: it cannot be scanned
 * (too long, a method failed) and must go; NGX_ERROR.
 */
static ngx_int_t
ngx_http_datagate_hdr_scan(ngx_http_datagate_hdr_t *hs, ngx_str_t *value,
    ngx_str_t *name)
{
    int                       rc, k;
    size_t                    len;
    u_char                   *p;
    uint64_t                  hits[DG_DETECT_MAX], n;
    ngx_http_request_t       *r;
    ngx_http_datagate_ctx_t  *ctx;

    r = hs->request;
    ctx = hs->ctx;

    if (value->len > DG_MASK_TEXT_MAX) {
        return NGX_DECLINED;
    }

    if (!dg_mask_text_candidate(value->data, value->len)) {
        return NGX_OK;
    }

    if (hs->work == NULL) {
        len = ngx_min(hs->max, DG_MASK_TEXT_MAX);

        hs->work = ngx_palloc(r->pool, dg_mask_text_work(len));
        hs->out = ngx_pnalloc(r->pool, dg_mask_text_outcap(len));

        if (hs->work == NULL || hs->out == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_memzero(hits, sizeof(hits));

    rc = dg_mask_text(&hs->conf, value->data, value->len, hs->work, hs->out,
                      &len, hits);

    if (rc == 0) {
        return NGX_OK;
    }

    if (rc < 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "datagate: response header \"%V\" dropped: %s, "
                      "consumer=%*s dataset=%*s, request_id=%s",
                      name ? name : &(ngx_str_t) ngx_string("Content-Type"),
                      dg_mask_strerror(rc),
                      ctx->consumer->id.len, ctx->consumer->id.data,
                      ctx->dataset->id.len, ctx->dataset->id.data,
                      ctx->request_id);
        return NGX_DECLINED;
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, hs->out, len);
    p[len] = '\0';

    value->data = p;
    value->len = len;

    n = 0;

    for (k = 0; k < DG_DETECT_MAX; k++) {
        ctx->hdr_detect[k] += hits[k];
        n += hits[k];
    }

    hs->masked += n;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "datagate: response header \"%V\": %uL value(s) masked "
                  "by the safety net, consumer=%*s dataset=%*s, "
                  "request_id=%s",
                  name ? name : &(ngx_str_t) ngx_string("Content-Type"),
                  n,
                  ctx->consumer->id.len, ctx->consumer->id.data,
                  ctx->dataset->id.len, ctx->dataset->id.data,
                  ctx->request_id);

    if (name == NULL) {
        ngx_http_datagate_hdr_content_type(r);
    }

    return NGX_OK;
}


/* a masked Content-Type: its type and charset read again from it, as
 * ngx_http_upstream_copy_content_type() reads them (NUL-terminated) */
static void
ngx_http_datagate_hdr_content_type(ngx_http_request_t *r)
{
    u_char  *p, *last;

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    ngx_str_null(&r->headers_out.charset);

    for (p = r->headers_out.content_type.data; *p; p++) {

        if (*p != ';') {
            continue;
        }

        last = p;

        while (*++p == ' ') { /* void */ }

        if (*p == '\0') {
            return;
        }

        if (ngx_strncasecmp(p, (u_char *) "charset=", 8) != 0) {
            continue;
        }

        p += 8;

        r->headers_out.content_type_len = last
                                          - r->headers_out.content_type.data;

        if (*p == '"') {
            p++;
        }

        last = r->headers_out.content_type.data
               + r->headers_out.content_type.len;

        if (last > p && *(last - 1) == '"') {
            last--;
        }

        r->headers_out.charset.len = last - p;
        r->headers_out.charset.data = p;

        return;
    }
}
