
/*
 * datagate: the response filter.
 *
 * Header filter, on enforced locations: a provider status below 200
 * (100, 101, 103, ..., or no status line at all) is refused with 502
 * upstream_unmaskable before anything of it goes out.  For an allowed
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
 * Body filter: feeds every input buffer (inflated first when the provider
 * compressed it) to dg_mask_feed_into(), which writes the masked bytes
 * straight into output buffers lent to it (ngx_http_datagate_lend), taken
 * from a free chain and recycled with ngx_chain_update_chains().  Input is
 * taken in slices and held while too many output buffers are busy, so
 * memory stays bounded whatever the size of the response, and held after
 * each datagate_mask_turn bytes until the next cycle of the event loop
 * (ngx_http_datagate_yield), so that a long response does not keep the
 * worker from its other connections.  A masker error, or the provider
 * failing (ngx_http_datagate_upstream_finalize tells), once the headers
 * are out cuts the connection: the client never sees a complete
 * document; while the header is held it gets the JSON error instead.
 */


#include "ngx_http_datagate.h"
#include "dg_header.h"

#include <zlib.h>


/*
 * Memory per response: the masker (twice datagate_mask_buffer + its
 * nesting stack), at most OUT_BUSY output buffers in flight plus what one
 * step of SLICE input bytes can produce, and ZBUF_SIZE + zlib's window
 * when the provider compresses.  Per worker, up to MASKERS idle maskers
 * kept for the next responses.
 */
#define NGX_HTTP_DATAGATE_SLICE       16384   /* plain input per step: a
                                                 proxy buffer in one go */
#define NGX_HTTP_DATAGATE_OUT_SIZE    16384   /* output buffer */
#define NGX_HTTP_DATAGATE_OUT_BUSY    8       /* busy buffers before
                                                 input is held */
#define NGX_HTTP_DATAGATE_ZBUF_SIZE   8192    /* inflate step */

#define NGX_HTTP_DATAGATE_IM_USED     226     /* RFC 3229: a delta of the
                                                 provider's body */

/*
 * r->buffered, and why only for turns after the provider's last buffer.
 *
 * nginx tests r->buffered only as a whole (ngx_http_finalize_request(),
 * ngx_http_writer()): "a filter still holds data, do not end the
 * request".  Each module sets and clears its own bit, so two modules on
 * one bit clear each other's hold.  The field has four bits in nginx
 * 1.22: SSI 0x01, sub 0x02, copy 0x04, and 0x08, which no stock module
 * sets in r->buffered (image_filter's NGX_HTTP_IMAGE_BUFFERED is 0x08 as
 * well, but goes into r->connection->buffered) and which third-party
 * filters take as the free one.  c->buffered is no better: it outlives
 * the request on a keep-alive connection, its low nibble stops the write
 * filter, and the postpone filter passes empty flushes down while any
 * of its bits is set.  So the filter keeps to the one free bit and
 * holds it as little as it can:
 *
 *  - before the provider's last buffer, nothing needs it: the upstream
 *    keeps the request alive and ends it only by passing that last
 *    buffer through the filter (finalize with 0) or by failing, which
 *    the filter is told of (ngx_http_datagate_upstream_finalize) and
 *    answers itself;
 *  - input held because output buffers are busy needs none either: busy
 *    buffers are held by a later filter that says so itself
 *    (c->buffered: write, gzip, SSL, HTTP/2), and ngx_http_writer()
 *    then calls this filter again;
 *  - what is left is a turn (ngx_http_datagate_yield) posted after the
 *    last buffer came in: held input that nobody else accounts for.
 *    Only then is the bit set, and only when it was clear: the filter
 *    clears only a bit it set itself (fctx->buffered), never another
 *    module's hold.
 */
#define NGX_HTTP_DATAGATE_BUFFERED    0x08


/*
 * Maskers the worker keeps between responses: the memory is reused while
 * it is still in the caches, and for the same rules the key memo too
 * (dg_mask_reinit()), so the first record of a response is not looked up
 * again.  At most MASKERS idle ones, each of one location's masker size:
 * bounded by configuration.
 */
#define NGX_HTTP_DATAGATE_MASKERS     8


typedef struct ngx_http_datagate_masker_s  ngx_http_datagate_masker_t;

struct ngx_http_datagate_masker_s {
    ngx_http_datagate_masker_t     *next;
    size_t                          size;   /* bytes for the masker */
    dg_mask_t                      *mask;   /* NULL: to initialise */
};


static ngx_http_datagate_masker_t  *ngx_http_datagate_maskers;
static ngx_uint_t                   ngx_http_datagate_nmaskers;


typedef struct {
    ngx_http_request_t             *request;
    ngx_http_datagate_ctx_t        *ctx;
    dg_mask_t                      *mask;
    size_t                          nfields;

    ngx_chain_t                    *in;         /* held input */
    ngx_buf_t                      *in_buf;     /* being fed */

    ngx_chain_t                    *out;
    ngx_chain_t                   **last_out;
    ngx_chain_t                    *free;
    ngx_chain_t                    *busy;
    ngx_buf_t                      *obuf;       /* being filled */
    ngx_uint_t                      nbufs;

    z_stream                        zstream;
    u_char                         *zbuf;

    ngx_buf_t                      *err;        /* our 502 body */

    uint64_t                        fed;        /* plain bytes fed */
    uint64_t                        turn_fed;   /* fed when this turn began */
    size_t                          turn_size;  /* datagate_mask_turn */
    ngx_event_t                     turn;       /* the next turn; posted:
                                                   input held for it */

    unsigned                        gzip:1;
    unsigned                        zstarted:1;
    unsigned                        zdone:1;
    unsigned                        error_mode:1;
    unsigned                        err_sent:1;
    unsigned                        done:1;
    unsigned                        nomem:1;
    unsigned                        failed:1;
    unsigned                        header_pending:1;
    unsigned                        flush_seen:1;
    unsigned                        last_seen:1; /* the last buffer is in */
    unsigned                        buffered:1; /* set r->buffered */
    unsigned                        hold:1;     /* the client cannot see a
                                                   cut: the whole answer
                                                   before the header */

    size_t                          hold_max;   /* datagate_hold_max */
    off_t                           out_bytes;  /* output made so far */
} ngx_http_datagate_filter_ctx_t;


static ngx_int_t ngx_http_datagate_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_datagate_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_datagate_body(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_chain_t *in);
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
static ngx_int_t ngx_http_datagate_error_body_filter(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_chain_t *in);
static ngx_int_t ngx_http_datagate_late_error(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, dg_reason_e reason,
    ngx_uint_t status, const char *detail);
static ngx_int_t ngx_http_datagate_interim(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);
static void ngx_http_datagate_upstream_finalize(ngx_http_request_t *r,
    ngx_int_t rc);
static ngx_int_t ngx_http_datagate_provider_failed(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_chain_t *in);
static ngx_uint_t ngx_http_datagate_has_body(ngx_http_request_t *r);
static ngx_uint_t ngx_http_datagate_framed(ngx_http_request_t *r);
static void ngx_http_datagate_drop_validators(ngx_http_request_t *r);
static ngx_http_datagate_filter_ctx_t *ngx_http_datagate_filter_ctx(
    ngx_http_request_t *r, ngx_http_datagate_ctx_t *ctx);
static ngx_int_t ngx_http_datagate_copy(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_buf_t *b, size_t n);
static ngx_uint_t ngx_http_datagate_is_json(ngx_str_t *type);
static ngx_int_t ngx_http_datagate_encoding(ngx_http_request_t *r,
    ngx_uint_t *gzip);
static ngx_int_t ngx_http_datagate_process(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx);
static ngx_int_t ngx_http_datagate_yield(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx);
static void ngx_http_datagate_next_turn(ngx_event_t *ev);
static void ngx_http_datagate_next_turn_cleanup(void *data);
static ngx_int_t ngx_http_datagate_feed(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_buf_t *b, ngx_uint_t *done);
static ngx_int_t ngx_http_datagate_finish(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_buf_t *b);
static int ngx_http_datagate_lend(void *data, size_t used, size_t need,
    uint8_t **buf, size_t *cap);
static dg_mask_t *ngx_http_datagate_masker_get(ngx_http_request_t *r,
    const dg_mask_conf_t *conf);
static void ngx_http_datagate_masker_put(void *data);
static ngx_int_t ngx_http_datagate_out_special(
    ngx_http_datagate_filter_ctx_t *fctx, ngx_buf_t *in);
static ngx_int_t ngx_http_datagate_append_out(
    ngx_http_datagate_filter_ctx_t *fctx, ngx_buf_t *b);
static void ngx_http_datagate_consume_buf(ngx_buf_t *b);
static void ngx_http_datagate_consume(ngx_chain_t *in);
static void ngx_http_datagate_count(ngx_http_datagate_filter_ctx_t *fctx);
static void ngx_http_datagate_fail(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, const char *why, int rc);
static void *ngx_http_datagate_zalloc(void *opaque, u_int items, u_int size);
static void ngx_http_datagate_zfree(void *opaque, void *address);


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


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


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
        return ngx_http_next_header_filter(r);
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
        return ngx_http_next_header_filter(r);
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
         * nginx 1.22's upstream takes a 1xx as the provider's final
         * answer (and a 101 as a switch to a raw tunnel past every body
         * filter): whatever the provider sends next would pass unseen
         */

        if (status < NGX_HTTP_OK) {
            return ngx_http_datagate_interim(r, ctx);
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
        return ngx_http_next_header_filter(r);
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
            return ngx_http_next_header_filter(r);
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
        return ngx_http_next_header_filter(r);
    }

    if (!ngx_http_datagate_is_json(&r->headers_out.content_type)) {

        if (r->err_status && r->headers_out.status >= NGX_HTTP_BAD_REQUEST) {
            /* nginx's own error page: no provider data in it */
            ngx_http_set_ctx(r, NULL, ngx_http_datagate_filter_module);
            return ngx_http_next_header_filter(r);
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

    if (gzip) {
        fctx->gzip = 1;

        r->headers_out.content_encoding->hash = 0;
        r->headers_out.content_encoding = NULL;
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

    return NGX_OK;
}


/* the filter's per-request state, set up */

static ngx_http_datagate_filter_ctx_t *
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
ngx_http_datagate_interim(ngx_http_request_t *r, ngx_http_datagate_ctx_t *ctx)
{
    ngx_uint_t  status;

    status = r->headers_out.status;

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
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash != 0
            && dg_header_refused((const char *) h[i].key.data, h[i].key.len)
               != NULL)
        {
            h[i].hash = 0;
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
 * serves HTML) becomes the JSON error of SPEC.md, nginx's status kept:
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

    return ngx_http_next_header_filter(r);
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
 * _access.c writes it */
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

    return ngx_http_next_header_filter(r);
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
    ngx_str_t        *v;
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    *gzip = 0;

    /* every Content-Encoding header, not only the one nginx points at */

    n = 0;
    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0
            || h[i].key.len != sizeof("Content-Encoding") - 1
            || ngx_strncasecmp(h[i].key.data, (u_char *) "Content-Encoding",
                               sizeof("Content-Encoding") - 1) != 0)
        {
            continue;
        }

        if (&h[i] != r->headers_out.content_encoding) {
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
        r->headers_out.content_encoding->hash = 0;
        r->headers_out.content_encoding = NULL;
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


/* ---- body filter ---------------------------------------------------- */

static ngx_int_t
ngx_http_datagate_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_int_t                        rc;
    ngx_http_datagate_filter_ctx_t  *fctx;

    fctx = ngx_http_get_module_ctx(r, ngx_http_datagate_filter_module);

    if (fctx == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    rc = ngx_http_datagate_body(r, fctx, in);

    /* see NGX_HTTP_DATAGATE_BUFFERED */

    if (rc != NGX_ERROR && !fctx->error_mode && !fctx->failed
        && fctx->last_seen && fctx->turn.posted)
    {
        if (!(r->buffered & NGX_HTTP_DATAGATE_BUFFERED)) {
            r->buffered |= NGX_HTTP_DATAGATE_BUFFERED;
            fctx->buffered = 1;
        }

    } else if (fctx->buffered) {
        r->buffered &= ~NGX_HTTP_DATAGATE_BUFFERED;
        fctx->buffered = 0;
    }

    return rc;
}


static ngx_int_t
ngx_http_datagate_body(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_chain_t *in)
{
    ngx_int_t     rc, flush;
    ngx_chain_t  *cl;

    if (fctx->error_mode) {
        return ngx_http_datagate_error_body_filter(r, fctx, in);
    }

    if (fctx->failed) {
        ngx_http_datagate_consume(in);
        return NGX_ERROR;
    }

    if (fctx->done) {
        /* nothing after the end of the document */
        ngx_http_datagate_consume(in);
        return ngx_http_next_body_filter(r, NULL);
    }

    if (fctx->ctx->provider_status) {
        return ngx_http_datagate_provider_failed(r, fctx, in);
    }

    if (in) {
        if (ngx_chain_add_copy(r->pool, &fctx->in, in) != NGX_OK) {
            ngx_http_datagate_fail(r, fctx, "out of memory", DG_MASK_E_EMIT);
            return NGX_ERROR;
        }

        for (cl = in; cl; cl = cl->next) {
            if (cl->buf->last_buf || cl->buf->last_in_chain) {
                fctx->last_seen = 1;
            }
        }
    }

    if (fctx->nomem) {

        /* flush busy buffers */

        if (ngx_http_next_body_filter(r, NULL) == NGX_ERROR) {
            fctx->failed = 1;
            return NGX_ERROR;
        }

        cl = NULL;

        ngx_chain_update_chains(r->pool, &fctx->free, &fctx->busy, &cl,
                                (ngx_buf_tag_t)
                                    &ngx_http_datagate_filter_module);
        fctx->nomem = 0;
        flush = 0;

    } else {
        flush = fctx->busy ? 1 : 0;
    }

    for ( ;; ) {

        rc = ngx_http_datagate_process(r, fctx);

        ngx_http_datagate_count(fctx);

        if (rc == NGX_ERROR) {

            if (fctx->header_pending) {
                /* nothing sent yet: answer 502 after all */
                return ngx_http_datagate_late_error(r, fctx,
                                                    DG_R_UPSTREAM_UNMASKABLE,
                                                    0, fctx->ctx->unmaskable);
            }

            /* logged; what was emitted so far was masked: it may go, the
             * connection is cut after it */
            if (fctx->out) {
                (void) ngx_http_next_body_filter(r, fctx->out);
                fctx->out = NULL;
            }

            r->connection->error = 1;
            return NGX_ERROR;
        }

        if (fctx->header_pending && !fctx->done
            && (fctx->hold || (!fctx->nomem && !fctx->flush_seen)))
        {
            /*
             * Nothing is sent before the end of the document, a flush
             * from the provider (proxy_buffering off) or NGX_HTTP_
             * DATAGATE_OUT_BUSY buffers of output: a small document the
             * masker refuses anywhere, or the provider cuts, gets a
             * clean 502.  A client that cannot see a cut gets nothing
             * before the end (fctx->hold, bounded by datagate_hold_max).
             */
            return fctx->turn.posted ? NGX_AGAIN : NGX_OK;
        }

        if (fctx->out == NULL && !flush) {
            return (fctx->busy || fctx->turn.posted) ? NGX_AGAIN : NGX_OK;
        }

        if (fctx->header_pending) {
            fctx->header_pending = 0;

            if (fctx->done) {
                /* the whole masked document is here: its length is known
                 * and the client gets it without chunked framing */
                r->headers_out.content_length_n = 0;

                for (cl = fctx->out; cl; cl = cl->next) {
                    r->headers_out.content_length_n += ngx_buf_size(cl->buf);
                }
            }

            rc = ngx_http_next_header_filter(r);

            if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
                fctx->failed = 1;
                return NGX_ERROR;
            }
        }

        rc = ngx_http_next_body_filter(r, fctx->out);

        if (rc == NGX_ERROR) {
            fctx->failed = 1;
            return NGX_ERROR;
        }

        ngx_chain_update_chains(r->pool, &fctx->free, &fctx->busy,
                                &fctx->out,
                                (ngx_buf_tag_t)
                                    &ngx_http_datagate_filter_module);
        fctx->last_out = &fctx->out;

        flush = 0;

        if (fctx->done) {
            return rc;
        }

        if (fctx->nomem) {
            fctx->nomem = 0;
            continue;
        }

        if (fctx->in == NULL && fctx->in_buf == NULL) {
            return rc;
        }
    }
}


static ngx_int_t
ngx_http_datagate_error_body_filter(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_chain_t *in)
{
    ngx_chain_t  out;

    /* the provider's body is read and dropped */
    ngx_http_datagate_consume(in);

    if (fctx->err_sent) {
        return ngx_http_next_body_filter(r, NULL);
    }

    fctx->err_sent = 1;

    out.buf = fctx->err;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


/*
 * The header was still held: the client gets a JSON error after all,
 * reason's status unless status says otherwise (504 for a provider that
 * timed out).  The held input and output are dropped.
 */
static ngx_int_t
ngx_http_datagate_late_error(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, dg_reason_e reason,
    ngx_uint_t status, const char *detail)
{
    ngx_int_t                 rc;
    ngx_buf_t                *b;
    ngx_chain_t               out;
    ngx_http_datagate_ctx_t  *ctx;

    ctx = fctx->ctx;

    fctx->header_pending = 0;
    fctx->failed = 0;
    fctx->out = NULL;
    fctx->last_out = &fctx->out;
    ctx->cut = 0;

    ngx_http_datagate_consume(fctx->in);
    fctx->in = NULL;

    if (fctx->in_buf) {
        ngx_http_datagate_consume_buf(fctx->in_buf);
        fctx->in_buf = NULL;
    }

    ngx_http_datagate_clean_header(r);

    b = ngx_http_datagate_error_body(r, ctx, reason, detail);
    if (b == NULL) {
        return NGX_ERROR;
    }

    if (status) {
        r->headers_out.status = status;
        ctx->status = status;
    }

    fctx->err = b;
    fctx->error_mode = 1;
    fctx->err_sent = 1;

    if (fctx->turn.posted) {
        ngx_delete_posted_event(&fctx->turn);
    }

    rc = ngx_http_next_header_filter(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


/*
 * The provider failed after its header (ctx->provider_status, set by
 * ngx_http_datagate_upstream_finalize, which answered the JSON error if
 * the header was held; nginx now sends its flush).  The header out: the
 * connection is cut (no last chunk, RST_STREAM, no TLS close_notify), so
 * that no client takes the part for the whole.
 */
static ngx_int_t
ngx_http_datagate_provider_failed(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_chain_t *in)
{
    ngx_http_datagate_ctx_t  *ctx;

    ctx = fctx->ctx;

    ngx_http_datagate_consume(in);

    if (fctx->header_pending) {
        /* answered by ngx_http_datagate_upstream_finalize() already,
         * unless the header came after it */
        return ngx_http_datagate_late_error(r, fctx,
                                            DG_R_UPSTREAM_UNAVAILABLE,
                                            ctx->provider_status,
                                            ctx->provider_error);
    }

    ngx_http_datagate_consume(fctx->in);
    fctx->in = NULL;

    if (fctx->in_buf) {
        ngx_http_datagate_consume_buf(fctx->in_buf);
        fctx->in_buf = NULL;
    }

    ctx->cut = 1;
    fctx->failed = 1;
    r->connection->error = 1;

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_datagate_process(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx)
{
    ngx_buf_t    *b;
    ngx_uint_t    busy, done;
    ngx_chain_t  *cl;

    for ( ;; ) {

        /* hold the input while the client does not take the output */

        busy = 0;

        for (cl = fctx->busy; cl; cl = cl->next) {
            busy++;
        }

        for (cl = fctx->out; cl; cl = cl->next) {
            busy++;
        }

        if (busy >= NGX_HTTP_DATAGATE_OUT_BUSY && fctx->free == NULL
            && !(fctx->hold && fctx->header_pending))
        {
            fctx->nomem = 1;
            return NGX_AGAIN;
        }

        if (fctx->hold && fctx->header_pending
            && fctx->out_bytes
               + (fctx->obuf ? fctx->obuf->last - fctx->obuf->pos : 0)
               > (off_t) fctx->hold_max)
        {
            ngx_http_datagate_fail(r, fctx,
                                   "the answer is larger than "
                                   "datagate_hold_max for a client that "
                                   "cannot see a cut connection",
                                   DG_MASK_E_EMIT);
            return NGX_ERROR;
        }

        if ((fctx->in_buf != NULL || fctx->in != NULL) && fctx->turn_size
            && fctx->fed - fctx->turn_fed >= fctx->turn_size)
        {
            /* a long response: the worker's other connections first, the
             * rest in the next turn of the event loop */
            if (ngx_http_datagate_yield(r, fctx) != NGX_OK) {
                return NGX_ERROR;
            }

            return NGX_AGAIN;
        }

        if (fctx->in_buf == NULL) {

            if (fctx->in == NULL) {
                /* all input fed: what is ready goes out now (a slow
                 * provider's bytes are not kept back) */
                if (fctx->obuf && fctx->obuf->last > fctx->obuf->pos
                    && !fctx->header_pending)
                {
                    if (ngx_http_datagate_append_out(fctx, fctx->obuf)
                        != NGX_OK)
                    {
                        return NGX_ERROR;
                    }

                    fctx->obuf = NULL;
                }

                return NGX_OK;
            }

            fctx->in_buf = fctx->in->buf;
            fctx->in = fctx->in->next;

            b = fctx->in_buf;

            if (!ngx_buf_in_memory(b) && ngx_buf_size(b) != 0) {
                ngx_http_datagate_fail(r, fctx, "body buffer not in memory",
                                       DG_MASK_E_STATE);
                return NGX_ERROR;
            }
        }

        b = fctx->in_buf;
        done = 0;

        if (ngx_http_datagate_feed(r, fctx, b, &done) != NGX_OK) {
            return NGX_ERROR;
        }

        if (!done) {
            continue;
        }

        fctx->in_buf = NULL;

        if (b->last_buf || b->last_in_chain) {
            if (ngx_http_datagate_finish(r, fctx, b) != NGX_OK) {
                return NGX_ERROR;
            }

            /* anything after the last buffer is dropped */
            ngx_http_datagate_consume(fctx->in);
            fctx->in = NULL;

            return NGX_OK;
        }

        if (b->flush) {
            if (ngx_http_datagate_out_special(fctx, b) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }
}


/*
 * datagate_mask_turn bytes masked since the last turn began: the
 * filter holds the rest of the input and asks for the next turn with an
 * event posted for the next cycle of the event loop (after the events
 * that are ready now, other connections' included), so that a long
 * response does not keep the worker from its other requests while both
 * the provider and the client keep up.  The pipe stops calling while the
 * filter holds its buffers; the event calls the request's write handler,
 * which calls the filter again.
 */
static ngx_int_t
ngx_http_datagate_yield(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx)
{
    ngx_pool_cleanup_t  *cln;

    if (fctx->turn.posted) {
        return NGX_OK;
    }

    if (fctx->turn.handler == NULL) {
        /* the first turn of the response */
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            ngx_http_datagate_fail(r, fctx, "out of memory", DG_MASK_E_EMIT);
            return NGX_ERROR;
        }

        cln->handler = ngx_http_datagate_next_turn_cleanup;
        cln->data = fctx;

        fctx->turn.handler = ngx_http_datagate_next_turn;
        fctx->turn.data = fctx;
        fctx->turn.log = r->connection->log;
    }

    ngx_post_event(&fctx->turn, &ngx_posted_next_events);

    return NGX_OK;
}


static void
ngx_http_datagate_next_turn(ngx_event_t *ev)
{
    ngx_connection_t                *c;
    ngx_http_datagate_filter_ctx_t  *fctx;

    fctx = ev->data;
    c = fctx->request->connection;

    fctx->turn_fed = fctx->fed;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "datagate: next turn at %uL bytes", fctx->fed);

    /* as when the client can take more: the upstream's pipe (or
     * ngx_http_writer once the provider is done) calls the filter */
    c->write->handler(c->write);
}


static void
ngx_http_datagate_next_turn_cleanup(void *data)
{
    ngx_http_datagate_filter_ctx_t  *fctx = data;

    if (fctx->turn.posted) {
        ngx_delete_posted_event(&fctx->turn);
    }
}


static ngx_int_t
ngx_http_datagate_feed(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_buf_t *b, ngx_uint_t *done)
{
    int      rc, zrc;
    size_t   n;

    *done = 0;

    if (!fctx->gzip) {
        n = b->last - b->pos;

        if (n == 0) {
            *done = 1;
            return NGX_OK;
        }

        if (n > NGX_HTTP_DATAGATE_SLICE) {
            n = NGX_HTTP_DATAGATE_SLICE;
        }

        if (fctx->mask == NULL) {
            /* an answer held whole, not masked */
            rc = ngx_http_datagate_copy(r, fctx, b, n);

        } else {
            rc = dg_mask_feed_into(fctx->mask, b->pos, n, 0,
                                   ngx_http_datagate_lend, fctx);
        }

        b->pos += n;
        fctx->fed += n;

        if (rc != DG_MASK_OK) {
            ngx_http_datagate_fail(r, fctx, NULL, rc);
            return NGX_ERROR;
        }

        *done = (b->pos == b->last);

        return NGX_OK;
    }

    /* compressed by the provider: inflate a step, feed it */

    if (!fctx->zstarted) {
        fctx->zbuf = ngx_palloc(r->pool, NGX_HTTP_DATAGATE_ZBUF_SIZE);
        if (fctx->zbuf == NULL) {
            ngx_http_datagate_fail(r, fctx, "out of memory", DG_MASK_E_EMIT);
            return NGX_ERROR;
        }

        fctx->zstream.zalloc = ngx_http_datagate_zalloc;
        fctx->zstream.zfree = ngx_http_datagate_zfree;
        fctx->zstream.opaque = r->pool;
        fctx->zstream.next_in = Z_NULL;
        fctx->zstream.avail_in = 0;

        /* 32: gzip or zlib ("deflate") wrapper, detected */
        if (inflateInit2(&fctx->zstream, MAX_WBITS + 32) != Z_OK) {
            ngx_http_datagate_fail(r, fctx, "inflateInit2() failed",
                                   DG_MASK_E_STATE);
            return NGX_ERROR;
        }

        fctx->zstarted = 1;
    }

    if (fctx->zdone) {
        if (b->pos != b->last) {
            ngx_http_datagate_fail(r, fctx,
                                   "data after the compressed body",
                                   DG_MASK_E_SYNTAX);
            return NGX_ERROR;
        }

        *done = 1;
        return NGX_OK;
    }

    fctx->zstream.next_in = b->pos;
    fctx->zstream.avail_in = b->last - b->pos;
    fctx->zstream.next_out = fctx->zbuf;
    fctx->zstream.avail_out = NGX_HTTP_DATAGATE_ZBUF_SIZE;

    zrc = inflate(&fctx->zstream, Z_NO_FLUSH);

    b->pos = fctx->zstream.next_in;
    n = NGX_HTTP_DATAGATE_ZBUF_SIZE - fctx->zstream.avail_out;

    if (zrc == Z_STREAM_END) {
        fctx->zdone = 1;

    } else if (zrc == Z_BUF_ERROR) {
        if (n == 0 && b->pos != b->last) {
            ngx_http_datagate_fail(r, fctx, "inflate made no progress",
                                   DG_MASK_E_SYNTAX);
            return NGX_ERROR;
        }

    } else if (zrc != Z_OK) {
        ngx_http_datagate_fail(r, fctx,
                               fctx->zstream.msg ? fctx->zstream.msg
                                                 : "inflate() failed",
                               DG_MASK_E_SYNTAX);
        return NGX_ERROR;
    }

    if (n) {
        rc = dg_mask_feed_into(fctx->mask, fctx->zbuf, n, 0,
                               ngx_http_datagate_lend, fctx);

        fctx->fed += n;

        if (rc != DG_MASK_OK) {
            ngx_http_datagate_fail(r, fctx, NULL, rc);
            return NGX_ERROR;
        }
    }

    if (fctx->zdone) {
        if (b->pos != b->last) {
            ngx_http_datagate_fail(r, fctx,
                                   "data after the compressed body",
                                   DG_MASK_E_SYNTAX);
            return NGX_ERROR;
        }

        *done = 1;
        return NGX_OK;
    }

    /* all input taken and zlib has no more output for now */
    *done = (b->pos == b->last && fctx->zstream.avail_out != 0);

    return NGX_OK;
}


/* n bytes of b into the output buffers, as they are: DG_MASK_OK or
 * DG_MASK_E_EMIT (the masker's codes, for ngx_http_datagate_fail()) */

static ngx_int_t
ngx_http_datagate_copy(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_buf_t *b, size_t n)
{
    size_t    cap, k;
    u_char   *p;
    uint8_t  *buf;

    p = b->pos;

    while (n) {
        if (ngx_http_datagate_lend(fctx, 0, 1, &buf, &cap) != 0) {
            return DG_MASK_E_EMIT;
        }

        k = ngx_min(n, cap);
        ngx_memcpy(buf, p, k);

        (void) ngx_http_datagate_lend(fctx, k, 0, &buf, &cap);

        p += k;
        n -= k;
    }

    return DG_MASK_OK;
}


static ngx_int_t
ngx_http_datagate_finish(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_buf_t *b)
{
    int  rc;

    if (fctx->gzip && fctx->zstarted && !fctx->zdone) {
        ngx_http_datagate_fail(r, fctx, "compressed body truncated",
                               DG_MASK_E_TRUNCATED);
        return NGX_ERROR;
    }

    if (fctx->gzip && !fctx->zstarted && fctx->fed == 0) {
        /* an empty compressed body */
        fctx->done = 1;
        return ngx_http_datagate_out_special(fctx, b);
    }

    if (fctx->fed > 0 && fctx->mask) {
        /* an empty body has nothing to leak and stays empty */
        rc = dg_mask_feed_into(fctx->mask, NULL, 0, 1,
                               ngx_http_datagate_lend, fctx);

        if (rc != DG_MASK_OK) {
            ngx_http_datagate_fail(r, fctx, NULL, rc);
            return NGX_ERROR;
        }
    }

    fctx->done = 1;

    return ngx_http_datagate_out_special(fctx, b);
}


/*
 * The masker writes into fctx->obuf, from obuf->last on: used bytes
 * written there since the last call are the response's now.  need != 0:
 * lend at least need bytes more, the rest of obuf when it has that much
 * room, else a fresh buffer (obuf, full or nearly, goes to the output
 * chain).  need 0: the feed is over, obuf is as the masker left it.
 */
/*
 * A masker for this response, set up for conf: an idle one of the worker
 * when one is large enough, or a new one; it goes back to the worker when
 * the request's pool is destroyed (after the log phase, which reads its
 * counters).  NULL (logged): none could be had.
 */
static dg_mask_t *
ngx_http_datagate_masker_get(ngx_http_request_t *r,
    const dg_mask_conf_t *conf)
{
    size_t                       size;
    ngx_pool_cleanup_t          *cln;
    ngx_http_datagate_masker_t  *mk;

    size = dg_mask_size(conf);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    mk = ngx_http_datagate_maskers;

    if (mk != NULL) {
        ngx_http_datagate_maskers = mk->next;
        ngx_http_datagate_nmaskers--;

        if (mk->size < size) {
            /* kept for a location with a smaller buffer */
            ngx_free(mk);
            mk = NULL;
        }
    }

    if (mk == NULL) {
        mk = ngx_alloc(sizeof(ngx_http_datagate_masker_t) + size + 15,
                       r->connection->log);
        if (mk == NULL) {
            return NULL;
        }

        mk->size = size;
        mk->mask = NULL;
    }

    cln->handler = ngx_http_datagate_masker_put;
    cln->data = mk;

    if (mk->mask != NULL) {
        mk->mask = dg_mask_reinit(mk->mask, conf);

    } else {
        mk->mask = dg_mask_init(ngx_align_ptr(mk + 1, 16), conf);
    }

    if (mk->mask == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "datagate: dg_mask_init() failed");
    }

    return mk->mask;
}


static void
ngx_http_datagate_masker_put(void *data)
{
    ngx_http_datagate_masker_t  *mk = data;

    if (ngx_http_datagate_nmaskers >= NGX_HTTP_DATAGATE_MASKERS) {
        ngx_free(mk);
        return;
    }

    mk->next = ngx_http_datagate_maskers;
    ngx_http_datagate_maskers = mk;
    ngx_http_datagate_nmaskers++;
}


static int
ngx_http_datagate_lend(void *data, size_t used, size_t need, uint8_t **buf,
    size_t *cap)
{
    ngx_http_datagate_filter_ctx_t *fctx = data;

    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = fctx->obuf;

    if (used) {
        if (b == NULL || used > (size_t) (b->end - b->last)) {
            /* not what was lent: cannot happen */
            return -1;
        }

        b->last += used;
    }

    if (need == 0) {
        return 0;
    }

    if (need > NGX_HTTP_DATAGATE_OUT_SIZE) {
        return -1;
    }

    if (b && (size_t) (b->end - b->last) >= need) {
        *buf = b->last;
        *cap = b->end - b->last;
        return 0;
    }

    if (b) {
        if (b->last > b->pos
            && ngx_http_datagate_append_out(fctx, b) != NGX_OK)
        {
            return -1;
        }

        /* an empty obuf (a fresh buffer is never too small) is dropped */
        fctx->obuf = NULL;
    }

    if (fctx->free) {
        cl = fctx->free;
        fctx->free = cl->next;
        b = cl->buf;
        ngx_free_chain(fctx->request->pool, cl);

        b->pos = b->start;
        b->last = b->start;
        b->flush = 0;
        b->last_buf = 0;
        b->last_in_chain = 0;

    } else {
        b = ngx_create_temp_buf(fctx->request->pool,
                                NGX_HTTP_DATAGATE_OUT_SIZE);
        if (b == NULL) {
            return -1;
        }

        b->tag = (ngx_buf_tag_t) &ngx_http_datagate_filter_module;
        b->recycled = 1;
        fctx->nbufs++;
    }

    if ((size_t) (b->end - b->last) < need) {
        /* a buffer of another size in the free chain: cannot happen */
        return -1;
    }

    fctx->obuf = b;

    *buf = b->last;
    *cap = b->end - b->last;

    return 0;
}


/* flush / last_buf / last_in_chain of an input buffer, on the output */

static ngx_int_t
ngx_http_datagate_out_special(ngx_http_datagate_filter_ctx_t *fctx,
    ngx_buf_t *in)
{
    ngx_buf_t  *b;

    b = fctx->obuf;

    if (b == NULL) {
        b = ngx_calloc_buf(fctx->request->pool);
        if (b == NULL) {
            return NGX_ERROR;
        }

        /* untagged: not recycled into the free chain */
    }

    fctx->obuf = NULL;

    if (in->flush) {
        fctx->flush_seen = 1;
    }

    b->flush = in->flush || in->last_buf || in->last_in_chain;
    b->last_buf = in->last_buf;
    b->last_in_chain = in->last_in_chain;

    return ngx_http_datagate_append_out(fctx, b);
}


static ngx_int_t
ngx_http_datagate_append_out(ngx_http_datagate_filter_ctx_t *fctx,
    ngx_buf_t *b)
{
    ngx_chain_t  *cl;

    cl = ngx_alloc_chain_link(fctx->request->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    *fctx->last_out = cl;
    fctx->last_out = &cl->next;

    fctx->out_bytes += ngx_buf_size(b);

    return NGX_OK;
}


static void
ngx_http_datagate_consume_buf(ngx_buf_t *b)
{
    if (ngx_buf_in_memory(b)) {
        b->pos = b->last;
    }

    if (b->in_file) {
        b->file_pos = b->file_last;
    }
}


static void
ngx_http_datagate_consume(ngx_chain_t *in)
{
    for ( /* void */ ; in; in = in->next) {
        ngx_http_datagate_consume_buf(in->buf);
    }
}


static void
ngx_http_datagate_count(ngx_http_datagate_filter_ctx_t *fctx)
{
    size_t                  i;
    uint64_t                n;
    const dg_mask_spec_t   *actions;
    const dg_mask_stats_t  *st;

    if (fctx->mask == NULL) {
        return;
    }

    st = dg_mask_stats(fctx->mask);

    if (st == NULL) {
        return;
    }

    n = 0;
    actions = fctx->ctx->plan ? fctx->ctx->plan->actions : NULL;

    /* values withheld (masked or dropped), not those shown in clear */

    if (st->field_hits && actions) {
        for (i = 0; i < fctx->nfields; i++) {
            if (actions[i].method != DG_MASK_CLEAR) {
                n += st->field_hits[i];
            }
        }
    }

    for (i = 0; i < DG_DETECT_MAX; i++) {
        n += st->detect[i];

        /* and the response headers' (_headers.c) */
        n += fctx->ctx->hdr_detect[i];
    }

    fctx->ctx->masked = n;
}


static void
ngx_http_datagate_fail(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, const char *why, int rc)
{
    ngx_http_datagate_ctx_t  *ctx;

    ctx = fctx->ctx;

    if (why == NULL) {
        why = dg_mask_strerror(rc);
        if (why == NULL) {
            why = "masking failed";
        }
    }

    fctx->failed = 1;

    ctx->mask_rc = rc;
    ctx->unmaskable = why;
    ctx->cut = fctx->header_pending ? 0 : 1;

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "datagate: upstream_unmaskable: %s after %uL bytes, "
                  "%s, consumer=%*s dataset=%*s, request_id=%s",
                  why, fctx->fed,
                  fctx->header_pending ? "answered 502" : "connection cut",
                  ctx->consumer ? ctx->consumer->id.len : 1,
                  ctx->consumer ? ctx->consumer->id.data : "-",
                  ctx->dataset ? ctx->dataset->id.len : 1,
                  ctx->dataset ? ctx->dataset->id.data : "-",
                  ctx->request_id);
}


static void *
ngx_http_datagate_zalloc(void *opaque, u_int items, u_int size)
{
    ngx_pool_t *pool = opaque;

    if (size != 0 && items > (u_int) -1 / size) {
        return Z_NULL;
    }

    return ngx_palloc(pool, (size_t) items * size);
}


static void
ngx_http_datagate_zfree(void *opaque, void *address)
{
    /* the request pool frees it */
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

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_datagate_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_datagate_body_filter;

    return NGX_OK;
}
