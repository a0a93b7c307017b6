
/*
 * datagate: the body filter.
 *
 * Set up by the header filter (_filter.c), it feeds every input buffer
 * (inflated first when the provider compressed it) to dg_mask_feed_into(),
 * which writes the masked bytes straight into output buffers lent to it
 * (ngx_http_datagate_lend), taken from a free chain and recycled with
 * ngx_chain_update_chains().  Input is taken in slices and held while too
 * many output buffers are busy, so memory stays bounded whatever the size
 * of the response, and held after each datagate_mask_turn bytes until the
 * next cycle of the event loop (ngx_http_datagate_yield), so that a long
 * response does not keep the worker from its other connections.  A masker
 * error, or the provider failing (ngx_http_datagate_upstream_finalize
 * tells), once the headers are out cuts the connection: the client never
 * sees a complete document; while the header is held it gets the JSON
 * error instead.
 */


#include "ngx_http_datagate.h"

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


static ngx_int_t ngx_http_datagate_body(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_chain_t *in);
static ngx_int_t ngx_http_datagate_error_body_filter(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_chain_t *in);
static ngx_int_t ngx_http_datagate_provider_failed(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_chain_t *in);
static ngx_int_t ngx_http_datagate_out_of_scope(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx);
static ngx_int_t ngx_http_datagate_copy(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_buf_t *b, size_t n);
static ngx_int_t ngx_http_datagate_process(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx);
static ngx_int_t ngx_http_datagate_yield(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx);
static void ngx_http_datagate_next_turn(ngx_event_t *ev);
static void ngx_http_datagate_next_turn_cleanup(void *data);
static ngx_int_t ngx_http_datagate_feed(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_buf_t *b, ngx_uint_t *done);
static ngx_int_t ngx_http_datagate_feed_more(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_buf_t *b, ngx_uint_t *done);
static ngx_int_t ngx_http_datagate_finish(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_buf_t *b);
static int ngx_http_datagate_lend(void *data, size_t used, size_t need,
    uint8_t **buf, size_t *cap);
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


/* ---- body filter ---------------------------------------------------- */

ngx_int_t
ngx_http_datagate_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_int_t                        rc;
    ngx_http_datagate_filter_ctx_t  *fctx;

    fctx = ngx_http_get_module_ctx(r, ngx_http_datagate_filter_module);

    if (fctx == NULL) {
        return ngx_http_datagate_next_body_filter(r, in);
    }

    rc = ngx_http_datagate_body(r, fctx, in);

    /* see NGX_HTTP_DATAGATE_BUFFERED */

    if (rc != NGX_ERROR && !fctx->error_mode && !fctx->failed
        && fctx->last_seen && (fctx->turn.posted || fctx->rq_wait))
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
        return ngx_http_datagate_next_body_filter(r, NULL);
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

        if (ngx_http_datagate_next_body_filter(r, NULL) == NGX_ERROR) {
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

        if (rc != NGX_ERROR && fctx->done && fctx->mask
            && dg_mask_stats(fctx->mask)->out_of_scope)
        {
            return ngx_http_datagate_out_of_scope(r, fctx);
        }

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
                (void) ngx_http_datagate_next_body_filter(r, fctx->out);
                fctx->out = NULL;
            }

            r->connection->error = 1;
            return NGX_ERROR;
        }

        if (fctx->header_pending && !fctx->done
            && (fctx->hold || fctx->whole
                || (!fctx->nomem && !fctx->flush_seen)))
        {
            /*
             * Nothing is sent before the end of the document, a flush
             * from the provider (proxy_buffering off) or NGX_HTTP_
             * DATAGATE_OUT_BUSY buffers of output: a small document the
             * masker refuses anywhere, or the provider cuts, gets a
             * clean 502.  A client that cannot see a cut gets nothing
             * before the end (fctx->hold, bounded by datagate_hold_max).
             */
            return (fctx->turn.posted || fctx->rq_wait) ? NGX_AGAIN : NGX_OK;
        }

        if (fctx->out == NULL && !flush) {
            return (fctx->busy || fctx->turn.posted || fctx->rq_wait)
                   ? NGX_AGAIN : NGX_OK;
        }

        if (fctx->header_pending) {
            fctx->header_pending = 0;

            /* records cut before the header: it says so */
            if (ngx_http_datagate_records_said(r, fctx, 1) != NGX_OK) {
                fctx->failed = 1;
                return NGX_ERROR;
            }

            if (fctx->done) {
                /* the whole masked document is here: its length is known
                 * and the client gets it without chunked framing */
                r->headers_out.content_length_n = 0;

                for (cl = fctx->out; cl; cl = cl->next) {
                    r->headers_out.content_length_n += ngx_buf_size(cl->buf);
                }
            }

            rc = ngx_http_datagate_next_header_filter(r);

            if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
                fctx->failed = 1;
                return NGX_ERROR;
            }
        }

        rc = ngx_http_datagate_next_body_filter(r, fctx->out);

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
        return ngx_http_datagate_next_body_filter(r, NULL);
    }

    fctx->err_sent = 1;

    out.buf = fctx->err;
    out.next = NULL;

    return ngx_http_datagate_next_body_filter(r, &out);
}


/*
 * The header was still held: the client gets a JSON error after all,
 * reason's status unless status says otherwise (504 for a provider that
 * timed out).  The held input and output are dropped.
 */
ngx_int_t
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

    rc = ngx_http_datagate_next_header_filter(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_datagate_next_body_filter(r, &out);
}


/*
 * The answer is one record, out of the grant's rows: 403
 * row_out_of_scope while the header is held (it is, fctx->whole); were
 * it out already, the connection is cut.
 */
static ngx_int_t
ngx_http_datagate_out_of_scope(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx)
{
    ngx_http_datagate_ctx_t  *ctx;

    ctx = fctx->ctx;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "datagate: denied row_out_of_scope (the record answered "
                  "is outside the grant's rows) consumer=%*s dataset=%*s, "
                  "request_id=%s",
                  ctx->consumer ? ctx->consumer->id.len : 1,
                  ctx->consumer ? ctx->consumer->id.data : "-",
                  ctx->dataset ? ctx->dataset->id.len : 1,
                  ctx->dataset ? ctx->dataset->id.data : "-",
                  ctx->request_id);

    if (fctx->header_pending) {
        return ngx_http_datagate_late_error(r, fctx, DG_R_ROW_OUT_OF_SCOPE,
                                            0, NULL);
    }

    fctx->failed = 1;
    ctx->unmaskable = "the record answered is outside the grant's rows";
    ctx->cut = 1;
    r->connection->error = 1;

    return NGX_ERROR;
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
    ngx_int_t     rc;
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

        rc = ngx_http_datagate_feed(r, fctx, b, &done);

        if (rc == NGX_AGAIN) {
            /* waiting for an allowance of records (_records.c) */
            return NGX_AGAIN;
        }

        if (rc != NGX_OK) {
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

            if (rc == DG_MASK_PAUSED) {
                /* no allowance for the next record: up to it */
                n = dg_mask_taken(fctx->mask);
            }
        }

        b->pos += n;
        fctx->fed += n;

        if (rc == DG_MASK_PAUSED) {
            return ngx_http_datagate_feed_more(r, fctx, b, done);
        }

        if (rc != DG_MASK_OK) {
            ngx_http_datagate_fail(r, fctx, NULL, rc);
            return NGX_ERROR;
        }

        *done = (b->pos == b->last);

        return NGX_OK;
    }

    /* inflated bytes the masker paused before: fed first */

    if (fctx->zpend) {
        rc = dg_mask_feed_into(fctx->mask, fctx->zbuf + fctx->zoff,
                               fctx->zpend, 0, ngx_http_datagate_lend,
                               fctx);

        n = (rc == DG_MASK_PAUSED) ? dg_mask_taken(fctx->mask)
                                   : fctx->zpend;
        fctx->zoff += n;
        fctx->zpend -= n;
        fctx->fed += n;

        if (rc == DG_MASK_PAUSED) {
            return ngx_http_datagate_feed_more(r, fctx, b, done);
        }

        if (rc != DG_MASK_OK) {
            ngx_http_datagate_fail(r, fctx, NULL, rc);
            return NGX_ERROR;
        }
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

        if (rc == DG_MASK_PAUSED) {
            /* the rest of the step is fed when records are allowed */
            fctx->zoff = dg_mask_taken(fctx->mask);
            fctx->zpend = n - fctx->zoff;
            fctx->fed += fctx->zoff;

            return ngx_http_datagate_feed_more(r, fctx, b, done);
        }

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


/*
 * The masker paused (no allowance for its next record): ask for more
 * records (_records.c).  Given now: the rest of the input is fed on
 * (*done 0, the caller feeds b again); asked Redis: NGX_AGAIN, the input
 * is held and the filter called again when the answer lands.
 */
static ngx_int_t
ngx_http_datagate_feed_more(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_buf_t *b, ngx_uint_t *done)
{
    ngx_int_t  rc;

    *done = 0;

    rc = ngx_http_datagate_records_more(r, fctx);

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    if (rc != NGX_OK) {
        ngx_http_datagate_fail(r, fctx, "no allowance of records",
                               DG_MASK_E_STATE);
        return NGX_ERROR;
    }

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

    /* records cut after the header went out: a trailer says so */
    if (!fctx->header_pending
        && ngx_http_datagate_records_said(r, fctx, 0) != NGX_OK)
    {
        ngx_http_datagate_fail(r, fctx, "out of memory", DG_MASK_E_EMIT);
        return NGX_ERROR;
    }

    return ngx_http_datagate_out_special(fctx, b);
}


/*
 * A masker for this response, set up for conf: an idle one of the worker
 * when one is large enough, or a new one; it goes back to the worker when
 * the request's pool is destroyed (after the log phase, which reads its
 * counters).  NULL (logged): none could be had.
 */
dg_mask_t *
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


/*
 * The masker writes into fctx->obuf, from obuf->last on: used bytes
 * written there since the last call are the response's now.  need != 0:
 * lend at least need bytes more, the rest of obuf when it has that much
 * room, else a fresh buffer (obuf, full or nearly, goes to the output
 * chain).  need 0: the feed is over, obuf is as the masker left it.
 */
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

        if (fctx->trace) {
            ngx_http_datagate_trace_out(fctx->trace, b->last, used);
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
