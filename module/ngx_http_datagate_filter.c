
/*
 * datagate: the response filter.
 *
 * Header filter, on enforced locations: a provider status below 200
 * (100, 101, 103, ..., or no status line at all) is refused with 502
 * upstream_unmaskable before anything of it goes out; so is the answer
 * after a 103 that nginx 1.29 and later read themselves, whose headers
 * the early-hints filter keeps from the client.  For an allowed
 * request whose plan masks: decides whether the response is masked (main
 * request, a body), refuses what cannot be masked (206, 226, a 304 to a
 * request whose conditionals were not forwarded, a type other than JSON,
 * an unknown encoding) with 502 upstream_unmaskable while the headers
 * are still ours, drops what describes the provider's body rather than
 * the masked one (Content-Length, ETag, digests, Accept-Ranges) and sets
 * up the core masker.  The header is held until the first masked bytes
 * go; when the whole document is masked by then, Content-Length is set
 * again, to the masked body's.  A client that cannot tell a cut
 * connection from the end of the answer (HTTP/1.0, chunked_transfer_
 * encoding off) gets the answer held whole, up to datagate_hold_max,
 * with its length (unmasked answers too, when the provider gave none).
 *
 * The body filter (_body.c) feeds the body to the masker.
 */


#include "ngx_http_datagate.h"
#include "dg_header.h"


#define NGX_HTTP_DATAGATE_IM_USED     226     /* RFC 3229: a delta of the
                                                 provider's body */
#define NGX_HTTP_DATAGATE_EARLY_HINTS 103     /* RFC 8297 */

/* nginx 1.29.0 reads a provider's 103 itself, with an early-hints filter
 * chain of its own */
#if (nginx_version >= 1029000)
#define NGX_HTTP_DATAGATE_HAVE_EARLY_HINTS  1
#endif


static ngx_int_t ngx_http_datagate_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_datagate_nginx_error(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e reason, const char *detail);
static dg_reason_e ngx_http_datagate_cert_refused(ngx_http_request_t *r,
    const char **detail);
static void ngx_http_datagate_cert_serial(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);
static ngx_int_t ngx_http_datagate_unmaskable(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_filter_ctx_t *fctx,
    const char *why);
static ngx_int_t ngx_http_datagate_refuse(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, const char *why);
static ngx_int_t ngx_http_datagate_interim(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_uint_t status);
static ngx_uint_t ngx_http_datagate_early_hints_read(ngx_http_request_t *r);
#if (NGX_HTTP_DATAGATE_HAVE_EARLY_HINTS)
static ngx_int_t ngx_http_datagate_early_hints_filter(ngx_http_request_t *r);
#endif
static void ngx_http_datagate_upstream_finalize(ngx_http_request_t *r,
    ngx_int_t rc);
static ngx_uint_t ngx_http_datagate_has_body(ngx_http_request_t *r);
static ngx_uint_t ngx_http_datagate_framed(ngx_http_request_t *r);
static void ngx_http_datagate_drop_validators(ngx_http_request_t *r);
static ngx_uint_t ngx_http_datagate_is_json(ngx_str_t *type);
static ngx_int_t ngx_http_datagate_encoding(ngx_http_request_t *r,
    ngx_uint_t *gzip);


static ngx_http_module_t  ngx_http_datagate_filter_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_datagate_filter_init,         /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_datagate_filter_module = {
    NGX_MODULE_V1,
    &ngx_http_datagate_filter_module_ctx,  /* module context */
    NULL,                                  /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};



ngx_http_output_header_filter_pt  ngx_http_datagate_next_header_filter;
ngx_http_output_body_filter_pt    ngx_http_datagate_next_body_filter;
#if (NGX_HTTP_DATAGATE_HAVE_EARLY_HINTS)
static ngx_http_output_header_filter_pt
                                  ngx_http_datagate_next_early_hints_filter;
#endif


/* ---- header filter -------------------------------------------------- */

static ngx_int_t
ngx_http_datagate_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t                       gzip, status;
    dg_mask_t                       *m;
    const char                      *detail;
    dg_reason_e                      reason;
    dg_mask_conf_t                   conf;
    const u_char                    *key;
    ngx_http_datagate_ctx_t         *ctx;
    ngx_http_datagate_loc_conf_t    *dlcf;
    ngx_http_datagate_main_conf_t   *dmcf;
    ngx_http_datagate_filter_ctx_t  *fctx;

    if (r != r->main) {
        return ngx_http_datagate_next_header_filter(r);
    }

    ctx = ngx_http_datagate_get_ctx(r);

    /* nginx's own error page on an enforced location: JSON instead */

    if (r->err_status >= NGX_HTTP_BAD_REQUEST
        && r->headers_out.status >= NGX_HTTP_BAD_REQUEST
        && (ctx == NULL || ctx->status == 0)
        && r->headers_out.content_type.len == sizeof("text/html") - 1
        && ngx_strncasecmp(r->headers_out.content_type.data,
                           (u_char *) "text/html", sizeof("text/html") - 1)
           == 0
        && ngx_http_get_module_ctx(r, ngx_http_datagate_filter_module)
           == NULL)
    {
        /* a client certificate nginx refused (its 495/496, sent as 400
         * before any location was chosen) on a server that enforces */

        if (ctx == NULL && r->err_status == NGX_HTTP_BAD_REQUEST) {
            reason = ngx_http_datagate_cert_refused(r, &detail);

            if (reason != DG_R_OK) {
                return ngx_http_datagate_nginx_error(r, NULL, reason,
                                                     detail);
            }
        }

        dlcf = ngx_http_get_module_loc_conf(r, ngx_http_datagate_module);

        if ((ctx && ctx->enforced)
            || (ctx == NULL && dlcf->enable == 1 && !dlcf->status
                && dlcf->dataset != NULL))
        {
            return ngx_http_datagate_nginx_error(r, ctx, DG_R_OK, NULL);
        }
    }

    if (ctx == NULL || !ctx->allowed || !ctx->enforced || ctx->status
        || ctx->plan == NULL
        || ngx_http_get_module_ctx(r, ngx_http_datagate_filter_module))
    {
        return ngx_http_datagate_next_header_filter(r);
    }

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_datagate_module);

    /* an internal redirect the provider asked for, or one that left the
     * dataset's location */

    detail = ngx_http_datagate_headers_refused(r, ctx, dlcf);

    if (detail != NULL) {
        return ngx_http_datagate_refuse(r, ctx, detail);
    }

    status = r->headers_out.status;

    if (dlcf->enable == 1) {

        /*
         * nginx's upstream takes a 1xx as the provider's final answer
         * (and a 101 as a switch to a raw tunnel past every body
         * filter): whatever the provider sends next would pass unseen.
         * From 1.29 on it reads a 103 itself and goes on to the next
         * answer: refused the same, whatever the nginx.
         */

        if (status < NGX_HTTP_OK) {
            return ngx_http_datagate_interim(r, ctx, status);
        }

        if (ngx_http_datagate_early_hints_read(r)) {
            return ngx_http_datagate_interim(r, ctx,
                                             NGX_HTTP_DATAGATE_EARLY_HINTS);
        }

        /* what a plan that masks cannot answer, judged on the provider's
         * own headers (before the response-header rule drops them) */

        if (ctx->plan->masks && ctx->plan->rules) {

            if (status == NGX_HTTP_PARTIAL_CONTENT
                || status == NGX_HTTP_DATAGATE_IM_USED
                || r->headers_out.content_range)
            {
                return ngx_http_datagate_refuse(r, ctx, "partial content");
            }

            if (status == NGX_HTTP_NOT_MODIFIED) {
                /* its conditionals were not forwarded: a 304 the
                 * provider sends anyway says nothing of the masked body
                 * the client holds */
                return ngx_http_datagate_refuse(r, ctx,
                                                "304 Not Modified to a "
                                                "request without "
                                                "conditionals");
            }
        }
    }

    /* the response-header rule: every answer of a plan that masks */

    if (ctx->plan->masks
        && ngx_http_datagate_response_headers(r, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (dlcf->enable != 1) {
        return ngx_http_datagate_next_header_filter(r);
    }

    /* told how the provider's answer ends (ngx_http_datagate_upstream_
     * finalize): a failure after this header is not an ordinary end */

    if (r->upstream
        && r->upstream->finalize_request
           != ngx_http_datagate_upstream_finalize)
    {
        ctx->upstream_finalize = r->upstream->finalize_request;
        r->upstream->finalize_request = ngx_http_datagate_upstream_finalize;
    }

    if (!ctx->plan->masks || ctx->plan->rules == NULL) {

        /* the provider's body as it is: its own framing, unless the
         * client could not see a cut (no length, no chunks) */

        if (!ngx_http_datagate_has_body(r)
            || r->headers_out.content_length_n >= 0
            || ngx_http_datagate_framed(r))
        {
            return ngx_http_datagate_next_header_filter(r);
        }

        fctx = ngx_http_datagate_filter_ctx(r, ctx);
        if (fctx == NULL) {
            return NGX_ERROR;
        }

        fctx->hold = 1;
        fctx->hold_max = dlcf->hold_max;
        fctx->header_pending = 1;
        fctx->turn_size = dlcf->mask_turn;

        r->filter_need_in_memory = 1;

        return NGX_OK;
    }

    fctx = ngx_http_datagate_filter_ctx(r, ctx);
    if (fctx == NULL) {
        return NGX_ERROR;
    }

    /* validators, digests and ranges describe the provider's body, and
     * would let a client test its guesses of the masked values */

    ngx_http_datagate_drop_validators(r);

    if (!ngx_http_datagate_has_body(r)) {
        /* HEAD, 204: no body, and not the provider's length either */
        ngx_http_clear_content_length(r);
        ngx_http_set_ctx(r, NULL, ngx_http_datagate_filter_module);
        return ngx_http_datagate_next_header_filter(r);
    }

    if (!ngx_http_datagate_is_json(&r->headers_out.content_type)) {

        if (r->err_status && r->headers_out.status >= NGX_HTTP_BAD_REQUEST) {
            /* nginx's own error page: no provider data in it */
            ngx_http_set_ctx(r, NULL, ngx_http_datagate_filter_module);
            return ngx_http_datagate_next_header_filter(r);
        }

        return ngx_http_datagate_unmaskable(r, ctx, fctx,
                                            "content type is not JSON");
    }

    if (ngx_http_datagate_encoding(r, &gzip) != NGX_OK) {
        return ngx_http_datagate_unmaskable(r, ctx, fctx,
                                            "unsupported content encoding");
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    ngx_memzero(&conf, sizeof(dg_mask_conf_t));

    conf.rules = ctx->plan->rules;
    conf.actions = ctx->plan->actions;
    ngx_memcpy(conf.detect, dmcf->detect, sizeof(conf.detect));
    conf.max_value = dlcf->mask_buffer;
    conf.max_depth = dlcf->mask_depth;
    conf.rows = ctx->plan->rows;
    conf.one = ngx_http_datagate_records_limited(ctx);

    key = ngx_http_datagate_pseudonym_key(dmcf, ctx->consumer);

    if (key) {
        conf.hash_key = key;
        conf.hash_key_len = DG_SHA256_LEN;
    }

    m = ngx_http_datagate_masker_get(r, &conf);
    if (m == NULL) {
        return ngx_http_datagate_unmaskable(r, ctx, fctx,
                                            "masker not available");
    }

    fctx->mask = m;
    fctx->nfields = dg_mask_rules_nfields(ctx->plan->rules);
    fctx->turn_size = dlcf->mask_turn;
    ctx->mask = m;

    if (ngx_http_datagate_trace_start(r, ctx, fctx) != NGX_OK) {
        return ngx_http_datagate_unmaskable(r, ctx, fctx, "out of memory");
    }

    if (conf.one) {
        /* max_records, record_quota: the records it may send */
        ngx_http_datagate_records_start(r, ctx, fctx);
    }

    if (gzip) {
        fctx->gzip = 1;

        ngx_http_datagate_header_drop(r, r->headers_out.content_encoding);
    }

    r->filter_need_in_memory = 1;

    ngx_http_clear_content_length(r);

    /*
     * The header goes out with the first masked bytes (as the image
     * filter does): a body the masker refuses before anything was
     * emitted still gets a clean 502 instead of a cut connection.  A
     * client that could not tell a cut from the end gets nothing before
     * the whole document.
     */

    fctx->header_pending = 1;
    fctx->hold = !ngx_http_datagate_framed(r);
    fctx->hold_max = dlcf->hold_max;

    /* an answer that is one record, scoped: decided at its end, before
     * anything of it goes (out of scope: 403 row_out_of_scope) */
    fctx->whole = conf.rows != NULL
                  && dg_mask_rules_records(conf.rules)
                     == DG_MASK_RECORDS_ONE;

    return NGX_OK;
}


/* the filter's per-request state, set up */

ngx_http_datagate_filter_ctx_t *
ngx_http_datagate_filter_ctx(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx)
{
    ngx_http_datagate_filter_ctx_t  *fctx;

    fctx = ngx_pcalloc(r->pool, sizeof(ngx_http_datagate_filter_ctx_t));
    if (fctx == NULL) {
        return NULL;
    }

    fctx->request = r;
    fctx->ctx = ctx;
    fctx->last_out = &fctx->out;

    ngx_http_set_ctx(r, fctx, ngx_http_datagate_filter_module);

    return fctx;
}


/*
 * A provider status below 200 on an enforced location (or none: nginx
 * takes an answer without a status line for an HTTP/0.9 one and would
 * pass it raw, with no header, to the client).  The provider's headers
 * are dropped, nginx's upstream is kept from switching protocols, and
 * the 502 goes the way of nginx's own upstream errors: the header
 * filter sees nginx's page and answers the JSON error, code
 * upstream_unmaskable (ctx->unmaskable), instead.
 */
static ngx_int_t
ngx_http_datagate_interim(ngx_http_request_t *r, ngx_http_datagate_ctx_t *ctx,
    ngx_uint_t status)
{
    ctx->unmaskable = status ? "the provider sent an interim (1xx) answer"
                             : "the provider's answer has no status line";

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "datagate: upstream_unmaskable: %s (status %ui), answered "
                  "502, consumer=%*s dataset=%*s, request_id=%s",
                  ctx->unmaskable, status,
                  ctx->consumer ? ctx->consumer->id.len : 1,
                  ctx->consumer ? ctx->consumer->id.data : "-",
                  ctx->dataset ? ctx->dataset->id.len : 1,
                  ctx->dataset ? ctx->dataset->id.data : "-",
                  ctx->request_id);

    ngx_http_datagate_clean_header(r);

    if (r->http_version == NGX_HTTP_VERSION_9) {
        /* the proxy module's doing: the client's own version again */
#if (NGX_HTTP_V2)
        if (r->stream) {
            r->http_version = NGX_HTTP_VERSION_20;

        } else
#endif
        if (r->http_major) {
            r->http_version = r->http_major * 1000 + r->http_minor;
        }
    }

    if (r->upstream) {
        r->upstream->upgrade = 0;
        r->upstream->keepalive = 0;
    }

    return NGX_HTTP_BAD_GATEWAY;
}


/* a 103 the provider sent before this answer, that nginx read itself */
static ngx_uint_t
ngx_http_datagate_early_hints_read(ngx_http_request_t *r)
{
#if (NGX_HTTP_DATAGATE_HAVE_EARLY_HINTS)
    return r->upstream != NULL && r->upstream->early_hints_length > 0;
#else
    return 0;
#endif
}


#if (NGX_HTTP_DATAGATE_HAVE_EARLY_HINTS)

/*
 * nginx 1.29 and later send a provider's 103 on to the client, where
 * "early_hints" says so, through a filter chain of their own that the
 * header filter never sees.  On an enforced location none of it goes
 * out: not a header of the provider's passes unchecked.  The answer that
 * follows is refused by the header filter (early_hints_length).
 */
static ngx_int_t
ngx_http_datagate_early_hints_filter(ngx_http_request_t *r)
{
    ngx_http_datagate_ctx_t       *ctx;
    ngx_http_datagate_loc_conf_t  *dlcf;

    ctx = ngx_http_datagate_get_ctx(r);
    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_datagate_module);

    if ((ctx != NULL && ctx->enforced) || dlcf->enable == 1) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "datagate: provider's early hints not sent");
        return NGX_OK;
    }

    return ngx_http_datagate_next_early_hints_filter(r);
}

#endif


/*
 * The upstream's finalize handler, wrapped, to tell a provider failing
 * after its header from the ordinary end of its answer.  rc 502 or 504:
 * it closed early, did not keep its Content-Length, timed out (buffered
 * proxying ends a read timeout with 502: the timed-out read event says
 * 504); NGX_ERROR while the client side is fine: its answer was broken
 * (an invalid chunk size); nginx logs which.  nginx goes on with a flush
 * through the body filter (502, 504) or by ending the request at once
 * (NGX_ERROR), so it is answered here: while the header is held, the
 * JSON error goes out now, as nginx's own for a failing provider (502
 * or 504 upstream_unavailable); once the header is out, the answer is
 * cut (ctx->cut; the body filter refuses the flush, nginx ends the
 * request without the last chunk).
 */
static void
ngx_http_datagate_upstream_finalize(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_uint_t                       failed, timedout;
    ngx_http_upstream_t             *u;
    ngx_http_datagate_ctx_t         *ctx;
    ngx_http_datagate_filter_ctx_t  *fctx;

    ctx = ngx_http_datagate_get_ctx(r);

    if (ctx == NULL || ctx->upstream_finalize == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "datagate: upstream finalize without its handler");
        return;
    }

    u = r->upstream;
    fctx = ngx_http_get_module_ctx(r, ngx_http_datagate_filter_module);

    if (rc == NGX_HTTP_BAD_GATEWAY || rc == NGX_HTTP_GATEWAY_TIME_OUT) {
        failed = 1;

    } else if (rc == NGX_ERROR) {
        /* not the client's doing, nor the filter's own refusal */
        failed = !r->connection->error
                 && !(u && u->pipe && u->pipe->downstream_error)
                 && ctx->unmaskable == NULL
                 && !(fctx && fctx->failed);

    } else {
        failed = 0;
    }

    if (failed && ctx->provider_status == 0 && ctx->status == 0) {

        timedout = (rc == NGX_HTTP_GATEWAY_TIME_OUT)
                   || (u && u->peer.connection
                       && u->peer.connection->read->timedout);

        ctx->provider_status = timedout ? NGX_HTTP_GATEWAY_TIME_OUT
                                        : NGX_HTTP_BAD_GATEWAY;
        ctx->provider_error = timedout
                              ? "the provider timed out in the middle of "
                                "its answer"
                              : "the provider's answer ended before its "
                                "end (connection closed, length or "
                                "chunking broken)";

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "datagate: upstream_unavailable: %s, %s, "
                      "consumer=%*s dataset=%*s, request_id=%s",
                      ctx->provider_error,
                      r->header_sent ? "connection cut" : "answered JSON",
                      ctx->consumer ? ctx->consumer->id.len : 1,
                      ctx->consumer ? ctx->consumer->id.data : "-",
                      ctx->dataset ? ctx->dataset->id.len : 1,
                      ctx->dataset ? ctx->dataset->id.data : "-",
                      ctx->request_id);

        if (r->header_sent) {
            ctx->cut = 1;

        } else if (fctx && fctx->header_pending && !fctx->error_mode) {
            (void) ngx_http_datagate_late_error(r, fctx,
                                                DG_R_UPSTREAM_UNAVAILABLE,
                                                ctx->provider_status,
                                                ctx->provider_error);
        }
    }

    ctx->upstream_finalize(r, rc);
}


/* a body may follow this header */

static ngx_uint_t
ngx_http_datagate_has_body(ngx_http_request_t *r)
{
    return !(r->header_only
             || r->method == NGX_HTTP_HEAD
             || r->headers_out.status == NGX_HTTP_NO_CONTENT
             || r->headers_out.status == NGX_HTTP_NOT_MODIFIED);
}


/*
 * The client sees where an answer of unknown length ends: HTTP/2 frames,
 * HTTP/1.1 chunks (a cut leaves out the last chunk).  HTTP/1.0, or
 * chunked_transfer_encoding off, read until the connection closes: a cut
 * looks like the end.
 */
static ngx_uint_t
ngx_http_datagate_framed(ngx_http_request_t *r)
{
    ngx_http_core_loc_conf_t  *clcf;

#if (NGX_HTTP_V2)
    if (r->stream) {
        return 1;
    }
#endif

    if (r->http_version < NGX_HTTP_VERSION_11) {
        return 0;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    return clcf->chunked_transfer_encoding ? 1 : 0;
}


/*
 * Response headers that describe the provider's body, not the masked
 * one: with them a client could test candidate bodies offline (a strong
 * ETag derived from the body, as many frameworks make it; the digests of
 * RFC 3230 and RFC 9530; an RFC 9421 signature, checked with the
 * provider's public key over a digest) or ask for byte ranges of the
 * provider's body.  Dropped from every answer of a dataset whose plan
 * masks, after the response-header rule (which drops them too unless
 * "headers:" listed them, and the policy refuses to list them): the
 * names are dg_header_refused()'s, one table for both.
 */
static void
ngx_http_datagate_drop_validators(ngx_http_request_t *r)
{
    ngx_table_elt_t            *h;
    ngx_http_datagate_hiter_t   hi;

    for (h = ngx_http_datagate_header_first(&hi, &r->headers_out.headers);
         h != NULL;
         h = ngx_http_datagate_header_next(&hi))
    {
        if (h->hash != 0
            && dg_header_refused((const char *) h->key.data, h->key.len)
               != NULL)
        {
            ngx_http_datagate_header_drop(r, h);
        }
    }

    r->headers_out.etag = NULL;
    r->headers_out.accept_ranges = NULL;
    r->headers_out.content_range = NULL;
    r->allow_ranges = 0;
}


/*
 * An error nginx answers itself on an enforced request (its special
 * response: the provider cannot be reached or timed out, a body too
 * large, an internal error, proxy_intercept_errors, an error_page that
 * serves HTML) becomes the JSON error (docs/errors.md), nginx's status kept:
 * 502/503/504 from the proxy are upstream_unavailable, 429
 * rate_limited, other 5xx internal_error, 4xx request_rejected.  An
 * error answer that the provider sent passes as the provider's answer
 * (masked when it is JSON and the plan masks).  Headers nginx set for
 * the error (Allow, WWW-Authenticate, ...) stay.  reason DG_R_OK: the
 * code follows nginx's status; otherwise (a client certificate nginx
 * refused) that reason, its status and detail replace nginx's 400.
 */
static ngx_int_t
ngx_http_datagate_nginx_error(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e reason, const char *detail)
{
    ngx_buf_t                       *b;
    ngx_uint_t                       status, keep;
    ngx_http_datagate_filter_ctx_t  *fctx;

    status = r->headers_out.status;
    keep = (reason == DG_R_OK);

    if (!keep) {
        /* a refused client certificate: the status of our reason */

    } else if (ctx && ctx->unmaskable) {
        /* the filter refused the provider's header (a 1xx) with 502 */
        reason = DG_R_UPSTREAM_UNMASKABLE;
        detail = ctx->unmaskable;

    } else if (status == NGX_HTTP_TOO_MANY_REQUESTS) {
        reason = DG_R_RATE_LIMITED;

    } else if (r->upstream
               && (status == NGX_HTTP_BAD_GATEWAY
                   || status == NGX_HTTP_SERVICE_UNAVAILABLE
                   || status == NGX_HTTP_GATEWAY_TIME_OUT))
    {
        reason = DG_R_UPSTREAM_UNAVAILABLE;

    } else if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {
        reason = DG_R_INTERNAL;

    } else {
        reason = DG_R_REQUEST_REJECTED;
    }

    if (ctx == NULL) {
        /* refused before the access phase (e.g. 413): still audited */
        ctx = ngx_http_datagate_error_ctx(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        if (!keep) {
            ngx_http_datagate_cert_serial(r, ctx);
        }
    }

    fctx = ngx_http_datagate_filter_ctx(r, ctx);
    if (fctx == NULL) {
        return NGX_ERROR;
    }

    if (keep) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "datagate: nginx answered %ui: %s consumer=%*s "
                      "dataset=%*s, request_id=%s",
                      status, dg_reason_code(reason),
                      ctx->consumer ? ctx->consumer->id.len : 1,
                      ctx->consumer ? ctx->consumer->id.data : "-",
                      ctx->dataset ? ctx->dataset->id.len : 1,
                      ctx->dataset ? ctx->dataset->id.data : "-",
                      ctx->request_id);

    } else {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "datagate: denied %s (%s) serial=%V, request_id=%s",
                      dg_reason_code(reason), detail ? detail : "-",
                      ctx->cert_serial.len
                          ? &ctx->cert_serial
                          : &(ngx_str_t) ngx_string("-"),
                      ctx->request_id);
    }

    /* the verify error names what failed; "revoked" says it already */
    b = ngx_http_datagate_error_body(r, ctx, reason,
                                     reason == DG_R_CERT_REVOKED ? NULL
                                                                 : detail);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (keep) {
        /* nginx's status stays (504 is not 502) */
        r->headers_out.status = status;
        ctx->status = status;

    } else {
        /* nginx's 400 replaced: the access log and the audit say so */
        r->err_status = r->headers_out.status;
    }

    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_etag(r);

    /* what the provider's answer left (WWW-Authenticate of an
     * intercepted 401, ...) follows the response-header rule */

    if (ctx->allowed && ctx->plan && ctx->plan->masks
        && ngx_http_datagate_response_headers(r, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    fctx->err = b;
    fctx->error_mode = 1;

    return ngx_http_datagate_next_header_filter(r);
}


/*
 * With ssl_verify_client, nginx refuses a request whose client certificate
 * is missing (NGX_HTTPS_NO_CERT) or failed verification
 * (NGX_HTTPS_CERT_ERROR: expired, unknown CA, revoked by ssl_crl, ...) in
 * ngx_http_process_request(), before any location is chosen, and sends
 * its page as a 400.  The same checks, redone here on a 400 of a server
 * that has enforced locations, tell that answer from other 400s: no
 * certificate is client_certificate_required, a revoked one cert_revoked,
 * any other verify error client_certificate_required naming the error.
 * DG_R_OK: not such a refusal, or a server without datagate.
 */
static dg_reason_e
ngx_http_datagate_cert_refused(ngx_http_request_t *r, const char **detail)
{
#if (NGX_HTTP_SSL)

    long                           rc;
    X509                          *cert;
    ngx_connection_t              *c;
    ngx_http_ssl_srv_conf_t       *sscf;
    ngx_http_datagate_srv_conf_t  *dscf;

    *detail = NULL;
    c = r->connection;

    if (c->ssl == NULL || c->ssl->connection == NULL) {
        return DG_R_OK;
    }

    dscf = ngx_http_get_module_srv_conf(r, ngx_http_datagate_module);
    sscf = ngx_http_get_module_srv_conf(r, ngx_http_ssl_module);

    if (dscf == NULL || !dscf->enforced || sscf == NULL || !sscf->verify) {
        return DG_R_OK;
    }

    rc = SSL_get_verify_result(c->ssl->connection);

    if (rc != X509_V_OK
        && (sscf->verify != 3 || !ngx_ssl_verify_error_optional(rc)))
    {
        if (rc == X509_V_ERR_CERT_REVOKED) {
            *detail = X509_verify_cert_error_string(rc);
            return DG_R_CERT_REVOKED;
        }

        /* checked against another server's CAs: say why */
        *detail = (ngx_http_datagate_ssl_bound(r) == NGX_OK)
                  ? X509_verify_cert_error_string(rc)
                  : NGX_HTTP_DATAGATE_SSL_UNBOUND;

        return DG_R_CLIENT_CERT_REQUIRED;
    }

    if (sscf->verify == 1) {
        cert = SSL_get_peer_certificate(c->ssl->connection);

        if (cert == NULL) {
            *detail = (ngx_http_datagate_ssl_bound(r) == NGX_OK)
                      ? "no certificate was sent"
                      : NGX_HTTP_DATAGATE_SSL_UNBOUND;
            return DG_R_CLIENT_CERT_REQUIRED;
        }

        X509_free(cert);
    }

#else

    *detail = NULL;

#endif

    return DG_R_OK;
}


/* the serial of a refused certificate, for the audit record, as
 * _identity.c writes it */
static void
ngx_http_datagate_cert_serial(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx)
{
#if (NGX_HTTP_SSL)

    X509  *cert;

    if (r->connection->ssl == NULL || r->connection->ssl->connection == NULL
        || ctx->cert_serial.len)
    {
        return;
    }

    cert = SSL_get_peer_certificate(r->connection->ssl->connection);
    if (cert == NULL) {
        return;
    }

    if (ngx_http_datagate_cert_serial_str(cert, r->pool, &ctx->cert_serial)
        != NGX_OK)
    {
        ngx_str_null(&ctx->cert_serial);
    }

    X509_free(cert);

#endif
}


void
ngx_http_datagate_clean_header(ngx_http_request_t *r)
{
    ngx_memzero(&r->headers_out.status,
                sizeof(ngx_http_headers_out_t)
                    - offsetof(ngx_http_headers_out_t, status));

    r->headers_out.headers.part.nelts = 0;
    r->headers_out.headers.part.next = NULL;
    r->headers_out.headers.last = &r->headers_out.headers.part;

    r->headers_out.trailers.part.nelts = 0;
    r->headers_out.trailers.part.next = NULL;
    r->headers_out.trailers.last = &r->headers_out.trailers.part;

    r->headers_out.content_length_n = -1;
    r->headers_out.last_modified_time = -1;

    r->allow_ranges = 0;
}


static ngx_int_t
ngx_http_datagate_unmaskable(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_filter_ctx_t *fctx,
    const char *why)
{
    ngx_buf_t   *b;
    ngx_uint_t   status;

    status = r->headers_out.status;

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "datagate: upstream_unmaskable: %s (status %ui, "
                  "type \"%V\") consumer=%*s dataset=%*s, request_id=%s",
                  why, status, &r->headers_out.content_type,
                  ctx->consumer ? ctx->consumer->id.len : 1,
                  ctx->consumer ? ctx->consumer->id.data : "-",
                  ctx->dataset ? ctx->dataset->id.len : 1,
                  ctx->dataset ? ctx->dataset->id.data : "-",
                  ctx->request_id);

    ctx->unmaskable = why;

    /* the provider's headers go with its body */
    ngx_http_datagate_clean_header(r);

    b = ngx_http_datagate_error_body(r, ctx, DG_R_UPSTREAM_UNMASKABLE, why);
    if (b == NULL) {
        return NGX_ERROR;
    }

    fctx->err = b;
    fctx->error_mode = 1;

    return ngx_http_datagate_next_header_filter(r);
}


/* 502 upstream_unmaskable before anything of the answer went out */
static ngx_int_t
ngx_http_datagate_refuse(ngx_http_request_t *r, ngx_http_datagate_ctx_t *ctx,
    const char *why)
{
    ngx_http_datagate_filter_ctx_t  *fctx;

    fctx = ngx_http_datagate_filter_ctx(r, ctx);
    if (fctx == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_datagate_unmaskable(r, ctx, fctx, why);
}


static ngx_uint_t
ngx_http_datagate_is_json(ngx_str_t *type)
{
    u_char  *p, *last;
    size_t   len;

    p = type->data;
    last = p + type->len;

    if (p == NULL) {
        return 0;
    }

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    len = 0;

    while (p + len < last && p[len] != ';' && p[len] != ' '
           && p[len] != '\t')
    {
        len++;
    }

    if (len == sizeof("application/json") - 1
        && ngx_strncasecmp(p, (u_char *) "application/json", len) == 0)
    {
        return 1;
    }

    /* type/subtype+json */

    if (len > sizeof("/+json") - 1
        && ngx_strncasecmp(p + len - 5, (u_char *) "+json", 5) == 0
        && ngx_strlchr(p, p + len - 5, '/') != NULL
        && p[0] != '/'
        && p[len - 6] != '/')
    {
        return 1;
    }

    return 0;
}


static ngx_int_t
ngx_http_datagate_encoding(ngx_http_request_t *r, ngx_uint_t *gzip)
{
    ngx_str_t                  *v;
    ngx_uint_t                  n;
    ngx_table_elt_t            *h;
    ngx_http_datagate_hiter_t   hi;

    *gzip = 0;

    /* every Content-Encoding header, not only the one nginx points at */

    n = 0;
    for (h = ngx_http_datagate_header_first(&hi, &r->headers_out.headers);
         h != NULL;
         h = ngx_http_datagate_header_next(&hi))
    {
        if (h->hash == 0
            || h->key.len != sizeof("Content-Encoding") - 1
            || ngx_strncasecmp(h->key.data, (u_char *) "Content-Encoding",
                               sizeof("Content-Encoding") - 1) != 0)
        {
            continue;
        }

        if (h != r->headers_out.content_encoding) {
            /* more than one */
            return NGX_DECLINED;
        }

        n++;
    }

    if (r->headers_out.content_encoding == NULL
        || r->headers_out.content_encoding->value.len == 0)
    {
        return NGX_OK;
    }

    if (n == 0) {
        /* pointer to an element not in the list: be safe */
        return NGX_DECLINED;
    }

    v = &r->headers_out.content_encoding->value;

    if (v->len == sizeof("identity") - 1
        && ngx_strncasecmp(v->data, (u_char *) "identity", v->len) == 0)
    {
        ngx_http_datagate_header_drop(r, r->headers_out.content_encoding);
        return NGX_OK;
    }

    if ((v->len == sizeof("gzip") - 1
         && ngx_strncasecmp(v->data, (u_char *) "gzip", v->len) == 0)
        || (v->len == sizeof("x-gzip") - 1
            && ngx_strncasecmp(v->data, (u_char *) "x-gzip", v->len) == 0)
        || (v->len == sizeof("deflate") - 1
            && ngx_strncasecmp(v->data, (u_char *) "deflate", v->len) == 0))
    {
        *gzip = 1;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* ---- init ----------------------------------------------------------- */

ngx_int_t
ngx_http_datagate_filter_init(ngx_conf_t *cf)
{
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_datagate_module);

    if (dmcf == NULL || dmcf->policy == NULL) {
        return NGX_OK;
    }

    /* the re-check of long answers (_watch.c) sees what the masker lets
     * out, when it lets it out */
    if (ngx_http_datagate_watch_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_datagate_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_datagate_header_filter;

    ngx_http_datagate_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_datagate_body_filter;

#if (NGX_HTTP_DATAGATE_HAVE_EARLY_HINTS)
    ngx_http_datagate_next_early_hints_filter =
                                            ngx_http_top_early_hints_filter;
    ngx_http_top_early_hints_filter = ngx_http_datagate_early_hints_filter;
#endif

    return NGX_OK;
}
