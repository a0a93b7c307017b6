
/*
 * datagate: long answers re-check the incident controls.
 *
 * The access phase checks the incident controls (revoked certificate,
 * suspended consumer, frozen dataset or grant, run-time grant) once, but
 * an allowed answer may stream for minutes: a slow provider, a slow
 * client, a large document.  With datagate_redis every allowed request on
 * an enforced location is watched from its decision until it ends:
 *
 *   - a timer every WATCH_TICK keeps the request's incident state fresh
 *     (while the provider thinks, and for answers that stall between
 *     buffers or wait in nginx's buffers for a slow client);
 *   - when the answer's header goes out (this filter sits under the
 *     masker, so that is when the masker lets it go): a control that
 *     denies now answers its JSON error instead of the provider's answer;
 *   - on every call of the body filter: one read of the zone's
 *     incident_gen (bumped by every pub/sub message and by every change a
 *     refresh finds) and of the clock; the full check only when the
 *     generation moved or the last one is older than WATCH_FULL.
 *
 * The full check (ngx_http_datagate_incident_recheck) reads the shared
 * zone only; a state that is not fresh starts one background MGET, shared
 * by every answer and request of the same (serial, consumer, dataset), and
 * is looked at again WATCH_RETRY later.  No buffer ever waits for Redis.
 *
 * When a control denies the request after its header went out, the
 * answer ends: the connection is cut (HTTP/2: the stream, with
 * RST_STREAM; the connection's other streams are checked on their own),
 * the error log says why, and the audit record keeps "decision":"allowed"
 * (the policy's answer) with the control's reason and "cut":true.
 */


#include "ngx_http_datagate.h"


#define NGX_HTTP_DATAGATE_WATCH_TICK    200     /* ms: the timer */
#define NGX_HTTP_DATAGATE_WATCH_FULL    250     /* ms: a full check at
                                                   least this often while
                                                   the body goes out */
#define NGX_HTTP_DATAGATE_WATCH_RETRY   50      /* ms: after a check that
                                                   found no fresh state */


typedef struct {
    ngx_http_request_t             *request;
    ngx_http_datagate_ctx_t        *ctx;
    ngx_http_datagate_shctx_t      *sh;
    ngx_atomic_uint_t               gen;        /* incident_gen checked */
    ngx_msec_t                      next;       /* the next full check */
    ngx_http_datagate_recheck_t     rk;
    ngx_event_t                     timer;
    ngx_buf_t                      *err;        /* refused at the header */
    dg_reason_e                     deny;       /* found before the header */

    unsigned                        header:1;   /* the header went out */
    unsigned                        off:1;      /* not our answer */
    unsigned                        error_mode:1;
    unsigned                        err_sent:1;
    unsigned                        cut:1;
} ngx_http_datagate_watch_t;


static ngx_int_t ngx_http_datagate_watch_header_filter(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_datagate_watch_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_datagate_watch_refuse(ngx_http_request_t *r,
    ngx_http_datagate_watch_t *w, dg_reason_e reason);
static dg_reason_e ngx_http_datagate_watch_check(
    ngx_http_datagate_watch_t *w);
static void ngx_http_datagate_watch_cut(ngx_http_datagate_watch_t *w,
    dg_reason_e reason);
static void ngx_http_datagate_watch_timer(ngx_event_t *ev);
static void ngx_http_datagate_watch_cleanup(void *data);
static void ngx_http_datagate_watch_consume(ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_datagate_watch_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_datagate_watch_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_datagate_watch_body_filter;

    return NGX_OK;
}


ngx_int_t
ngx_http_datagate_watch_start(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx)
{
    ngx_pool_cleanup_t             *cln;
    ngx_http_datagate_watch_t      *w;
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (!dmcf->redis_enabled || dmcf->sh == NULL || r != r->main) {
        /* without Redis the policy file is the whole truth: nothing
         * changes at run time */
        return NGX_OK;
    }

    if (ctx->watch != NULL) {
        /* decided again after an internal redirect: another grant */
        w = ctx->watch;
        w->rk.ginit = 0;
        w->deny = DG_R_OK;
        return NGX_OK;
    }

    w = ngx_pcalloc(r->pool, sizeof(ngx_http_datagate_watch_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_datagate_watch_cleanup;
    cln->data = w;

    w->request = r;
    w->ctx = ctx;
    w->sh = dmcf->sh;
    w->gen = w->sh->incident_gen;
    w->next = ngx_current_msec + NGX_HTTP_DATAGATE_WATCH_FULL;
    w->rk.known = ngx_http_datagate_now_ms();
    w->deny = DG_R_OK;

    w->timer.handler = ngx_http_datagate_watch_timer;
    w->timer.data = w;
    w->timer.log = r->connection->log;
    w->timer.cancelable = 1;

    ngx_add_timer(&w->timer, NGX_HTTP_DATAGATE_WATCH_TICK);

    ctx->watch = w;

    return NGX_OK;
}


static ngx_int_t
ngx_http_datagate_watch_header_filter(ngx_http_request_t *r)
{
    dg_reason_e                 reason;
    ngx_http_datagate_ctx_t    *ctx;
    ngx_http_datagate_watch_t  *w;

    ctx = (r == r->main) ? ngx_http_datagate_get_ctx(r) : NULL;

    if (ctx == NULL || ctx->watch == NULL) {
        return ngx_http_next_header_filter(r);
    }

    w = ctx->watch;

    if (w->header || w->off) {
        return ngx_http_next_header_filter(r);
    }

    w->header = 1;

    if (!ctx->allowed) {
        /* an error answer of ours: nothing of the provider's in it */
        w->off = 1;

        if (w->timer.timer_set) {
            ngx_del_timer(&w->timer);
        }

        return ngx_http_next_header_filter(r);
    }

    /* what holds now: the provider may have taken long to answer, the
     * masker may have held the header */

    reason = w->deny;

    if (reason == DG_R_OK
        && (w->sh->incident_gen != w->gen
            || (ngx_msec_int_t) (ngx_current_msec - w->next) >= 0))
    {
        reason = ngx_http_datagate_watch_check(w);
    }

    if (reason != DG_R_OK) {
        return ngx_http_datagate_watch_refuse(r, w, reason);
    }

    if (r->header_only) {
        w->off = 1;

        if (w->timer.timer_set) {
            ngx_del_timer(&w->timer);
        }

    } else if (!w->timer.timer_set) {
        ngx_add_timer(&w->timer, w->rk.settled
                                 ? NGX_HTTP_DATAGATE_WATCH_TICK
                                 : NGX_HTTP_DATAGATE_WATCH_RETRY);
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_datagate_watch_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    dg_reason_e                 reason;
    ngx_chain_t                 out;
    ngx_http_datagate_ctx_t    *ctx;
    ngx_http_datagate_watch_t  *w;

    ctx = ngx_http_get_module_ctx(r, ngx_http_datagate_module);

    if (ctx == NULL || ctx->watch == NULL || r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    w = ctx->watch;

    if (w->off) {
        return ngx_http_next_body_filter(r, in);
    }

    if (w->error_mode) {
        /* the provider's body is read and dropped */
        ngx_http_datagate_watch_consume(in);

        if (w->err_sent) {
            return ngx_http_next_body_filter(r, NULL);
        }

        w->err_sent = 1;

        out.buf = w->err;
        out.next = NULL;

        return ngx_http_next_body_filter(r, &out);
    }

    if (w->cut) {
        ngx_http_datagate_watch_consume(in);
        return NGX_ERROR;
    }

    if (w->sh->incident_gen != w->gen
        || (ngx_msec_int_t) (ngx_current_msec - w->next) >= 0)
    {
        reason = ngx_http_datagate_watch_check(w);

        if (reason != DG_R_OK) {
            ngx_http_datagate_watch_cut(w, reason);
            ngx_http_datagate_watch_consume(in);
            return NGX_ERROR;
        }
    }

    return ngx_http_next_body_filter(r, in);
}


/* denied before anything was sent: the JSON error, status of the reason */
static ngx_int_t
ngx_http_datagate_watch_refuse(ngx_http_request_t *r,
    ngx_http_datagate_watch_t *w, dg_reason_e reason)
{
    ngx_buf_t                *b;
    ngx_http_datagate_ctx_t  *ctx;

    ctx = w->ctx;

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "datagate: denied %s when the provider answered "
                  "consumer=%*s dataset=%*s, request_id=%s",
                  dg_reason_code(reason),
                  ctx->consumer->id.len, ctx->consumer->id.data,
                  ctx->dataset ? ctx->dataset->id.len : 1,
                  ctx->dataset ? ctx->dataset->id.data : "-",
                  ctx->request_id);

    ctx->allowed = 0;
    ctx->reason = reason;
    ctx->mask = NULL;               /* nothing of it reaches the client */

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }

    /* the provider's headers go with its body */
    ngx_http_datagate_clean_header(r);

    b = ngx_http_datagate_error_body(r, ctx, reason, NULL);
    if (b == NULL) {
        return NGX_ERROR;
    }

    w->err = b;
    w->error_mode = 1;

    return ngx_http_next_header_filter(r);
}


static dg_reason_e
ngx_http_datagate_watch_check(ngx_http_datagate_watch_t *w)
{
    dg_reason_e  reason;

    w->gen = w->sh->incident_gen;

    reason = ngx_http_datagate_incident_recheck(w->request, w->ctx, &w->rk);

    w->next = ngx_current_msec + (w->rk.settled
                                  ? NGX_HTTP_DATAGATE_WATCH_FULL
                                  : NGX_HTTP_DATAGATE_WATCH_RETRY);

    return reason;
}


static void
ngx_http_datagate_watch_cut(ngx_http_datagate_watch_t *w, dg_reason_e reason)
{
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_http_datagate_ctx_t  *ctx;

    r = w->request;
    ctx = w->ctx;
    c = r->connection;

    w->cut = 1;
    ctx->cut = 1;
    ctx->cut_reason = reason;

    /* HTTP/1.x: the connection is closed; HTTP/2: the stream is reset */
    c->error = 1;
    r->keepalive = 0;

    ngx_log_error(NGX_LOG_WARN, c->log, 0,
                  "datagate: answer cut: %s after %O bytes, consumer=%*s "
                  "dataset=%*s, request_id=%s",
                  dg_reason_code(reason), c->sent,
                  ctx->consumer->id.len, ctx->consumer->id.data,
                  ctx->dataset ? ctx->dataset->id.len : 1,
                  ctx->dataset ? ctx->dataset->id.data : "-",
                  ctx->request_id);
}


static void
ngx_http_datagate_watch_timer(ngx_event_t *ev)
{
    dg_reason_e                 reason;
    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_upstream_t        *u;
    ngx_http_datagate_watch_t  *w;

    w = ev->data;
    r = w->request;
    c = r->connection;

    if (w->off || w->error_mode || r->count == 0) {
        /* not ours, refused at the header, or already closing (HTTP/2
         * frames still queued): nothing to end */
        return;
    }

    if (!w->cut) {
        reason = w->deny;

        if (reason == DG_R_OK
            && (w->sh->incident_gen != w->gen
                || (ngx_msec_int_t) (ngx_current_msec - w->next) >= 0))
        {
            reason = ngx_http_datagate_watch_check(w);
        }

        if (reason == DG_R_OK) {
            ngx_add_timer(ev, w->rk.settled ? NGX_HTTP_DATAGATE_WATCH_TICK
                                            : NGX_HTTP_DATAGATE_WATCH_RETRY);
            return;
        }

        if (!w->header && r->headers_out.status == 0) {
            /* the provider has not answered: its answer is refused when
             * its header comes (JSON error, the control's status) */
            w->deny = reason;
            ngx_add_timer(ev, NGX_HTTP_DATAGATE_WATCH_TICK);
            return;
        }

        ngx_http_datagate_watch_cut(w, reason);

        if (!w->header) {
            /* the provider answered (its status is set), the masker
             * still holds the header (it sends nothing before a full
             * buffer or the end): the connection is closed without an
             * answer, as nginx's 444 */
            r->headers_out.status = NGX_HTTP_CLOSE;
            w->ctx->cut = 0;
        }
    }

    /*
     * the answer stalls between buffers, waits in nginx's buffers for the
     * client, or is held by the masker (or a cut the body filter made has
     * not ended it yet): end the request now
     */

    u = r->upstream;

    if (u != NULL && u->cleanup != NULL && *u->cleanup != NULL) {
        /*
         * the provider's side first, by the upstream module's own
         * cleanup (as nginx's ending of a terminated request runs it),
         * with the request held: that cleanup finalizes the request
         * itself, which must not free it under the termination below
         */
        r->main->count++;
        (*u->cleanup)(r);
    }

    ngx_http_finalize_request(r, NGX_ERROR);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_datagate_watch_cleanup(void *data)
{
    ngx_http_datagate_watch_t  *w = data;

    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }
}


static void
ngx_http_datagate_watch_consume(ngx_chain_t *in)
{
    for ( /* void */ ; in; in = in->next) {

        if (ngx_buf_in_memory(in->buf)) {
            in->buf->pos = in->buf->last;
        }

        if (in->buf->in_file) {
            in->buf->file_pos = in->buf->file_last;
        }
    }
}
