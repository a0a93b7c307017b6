
/*
 * datagate: records per answer (max_records) and per period
 * (record_quota), counted in records sent, not calls.
 *
 * Each comes from the grant that allowed the request when it sets one,
 * else from the dataset, for each consumer.  A quota is counted like the
 * call quota (_limit.c), in its own budgets: "records:CONSUMER|DATASET"
 * for grants, "records:dataset:CONSUMER|DATASET" for datasets; in the
 * shared zone's limits tree on one node (across reloads, and restarts
 * with datagate_state), in Redis (datagate:rquota:...) for the cluster,
 * with the per-node share of the budget while Redis is away.
 *
 * Records are taken from the quota before they are sent, a few at a
 * time: the masker (core/dg_mask_rec.c) sends records while it has an
 * allowance and pauses at the next record when it has none.  The first
 * allowance is taken at admission (the access phase: a quota already
 * used up answers 429 rate_limited, nothing reaches the provider), more
 * when the masker pauses (doubling, up to RQ_STEP_MAX at a time; with
 * Redis the answer waits for the reply, the worker does not), and what
 * was taken and not sent goes back at the end of the request.  So
 * answers running at once never send together more than the quota, and
 * one answer never holds much more than it sends.  When the quota or
 * max_records runs out the records left are removed, the answer ends at
 * a record boundary (valid JSON, its envelope kept) and says so in
 * Datagate-Records-Cut: a header when the cut is known before the
 * header goes out, else a trailer.
 */


#include "ngx_http_datagate.h"
#include "dg_gcra.h"
#include "dg_rstate.h"

#include <hiredis/hiredis.h>


#define NGX_HTTP_DATAGATE_RQ_FIRST      64      /* records taken at
                                                   admission, at most */
#define NGX_HTTP_DATAGATE_RQ_STEP_MAX   4096    /* taken at a time, at
                                                   most */
#define NGX_HTTP_DATAGATE_RQ_REPLY      10      /* DG_GCRA_LUA returns */
#define NGX_HTTP_DATAGATE_RQ_ARGS       14      /* and takes: KEYS, ARGV */
#define NGX_HTTP_DATAGATE_RQ_PREFIX     "records:"
#define NGX_HTTP_DATAGATE_RQ_KEY        (sizeof(NGX_HTTP_DATAGATE_RQ_PREFIX) \
                                         + NGX_HTTP_DATAGATE_LIMIT_KEY)


/* one request's records budget: ctx->records */
typedef struct {
    uint64_t                        max;        /* max_records, 0: none */
    uint64_t                        quota;      /* per period, 0: none */
    unsigned                        period;
    size_t                          klen;
    u_char                          key[NGX_HTTP_DATAGATE_RQ_KEY];

    uint64_t                        taken;      /* from the quota, in all */
    uint64_t                        remote;     /* of them from Redis */
    int64_t                         window;     /* they were taken in */
    uint64_t                        given;      /* allowance given to the
                                                   masker, in all */
    uint64_t                        step;       /* the next take */
    uint64_t                        got;        /* the last take */
    uint64_t                        left;       /* the quota left then */
    int64_t                         reset_ms;
    ngx_uint_t                      state;      /* RS_NONE/WAIT/DONE */
    ngx_int_t                       rc;         /* admission */

    ngx_http_datagate_filter_ctx_t *fctx;       /* paused: resume it */
    ngx_event_t                     resume;

    unsigned                        quota_last:1; /* the quota is used up */
    unsigned                        said:1;     /* Datagate-Records-Cut */
    unsigned                        ended:1;    /* given back */
} ngx_http_datagate_rq_t;


/* one EVALSHA in flight; outlives its request */
typedef struct {
    ngx_http_datagate_waiter_t      wait;       /* first */
    ngx_http_datagate_main_conf_t  *dmcf;
    ngx_http_datagate_rq_t         *rq;         /* NULL: a give-back */
    int64_t                         add_window;
    uint64_t                        add;        /* unsynced, in flight */
    uint64_t                        want;
    size_t                          klen;
    u_char                          key[NGX_HTTP_DATAGATE_RQ_KEY];
} ngx_http_datagate_rqwait_t;


static ngx_http_datagate_rq_t *ngx_http_datagate_rq(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);
static ngx_int_t ngx_http_datagate_rq_refuse(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_rq_t *rq);
static ngx_int_t ngx_http_datagate_rq_take(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_rq_t *rq,
    uint64_t want);
static void ngx_http_datagate_rq_local(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_rq_t *rq, uint64_t want, ngx_uint_t share);
static ngx_int_t ngx_http_datagate_rq_redis(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_rq_t *rq, uint64_t want, uint64_t back,
    int64_t back_window);
static void ngx_http_datagate_rq_reply(void *data, void *reply);
static void ngx_http_datagate_rq_unsynced(ngx_http_datagate_rqwait_t *w,
    ngx_uint_t answered, uint64_t added);
static void ngx_http_datagate_rq_allow(ngx_http_datagate_rq_t *rq,
    dg_mask_t *m);
static void ngx_http_datagate_rq_resume(ngx_event_t *ev);
static void ngx_http_datagate_rq_cleanup(void *data);


/* ---- the request's budget ------------------------------------------- */

static ngx_http_datagate_rq_t *
ngx_http_datagate_rq(ngx_http_request_t *r, ngx_http_datagate_ctx_t *ctx)
{
    u_char                  *p;
    ngx_pool_cleanup_t      *cln;
    const dg_grant_t        *g;
    const dg_dataset_t      *ds;
    const dg_rlimit_t       *rl;
    ngx_http_datagate_rq_t  *rq;

    if (ctx->records != NULL) {
        return ctx->records;
    }

    g = ctx->grant;
    ds = ctx->dataset;

    if (ds == NULL || ctx->consumer == NULL) {
        return NULL;
    }

    rq = ngx_pcalloc(r->pool, sizeof(ngx_http_datagate_rq_t));
    if (rq == NULL) {
        return NULL;
    }

    rq->max = (g && g->rlimit.max) ? g->rlimit.max : ds->rlimit.max;

    rl = (g && g->rlimit.quota) ? &g->rlimit : &ds->rlimit;

    if (rl->quota
        && ctx->consumer->id.len + ds->id.len + 1
           + sizeof(NGX_HTTP_DATAGATE_DS_BUDGET)
           <= NGX_HTTP_DATAGATE_LIMIT_KEY
        && dg_rs_id_ok(ctx->consumer->id.data, ctx->consumer->id.len)
        && dg_rs_id_ok(ds->id.data, ds->id.len))
    {
        rq->quota = rl->quota;
        rq->period = rl->period;

        p = ngx_cpymem(rq->key, NGX_HTTP_DATAGATE_RQ_PREFIX,
                       sizeof(NGX_HTTP_DATAGATE_RQ_PREFIX) - 1);

        if (rl != &g->rlimit || g == NULL) {
            p = ngx_cpymem(p, NGX_HTTP_DATAGATE_DS_BUDGET,
                           sizeof(NGX_HTTP_DATAGATE_DS_BUDGET) - 1);
        }

        p = ngx_cpymem(p, ctx->consumer->id.data, ctx->consumer->id.len);
        *p++ = '|';
        p = ngx_cpymem(p, ds->id.data, ds->id.len);
        rq->klen = p - rq->key;

    } else if (rl->quota) {
        /* ids too long for a budget key: checked at load, cannot be */
        return NULL;
    }

    rq->state = NGX_HTTP_DATAGATE_RS_NONE;
    rq->rc = NGX_OK;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_datagate_rq_cleanup;
    cln->data = rq;

    ctx->records = rq;

    return rq;
}


/* the request's records budget has a cap or a quota: its answer is read
 * record by record (dg_mask_conf_t one) */
ngx_uint_t
ngx_http_datagate_records_limited(ngx_http_datagate_ctx_t *ctx)
{
    const dg_grant_t    *g;
    const dg_dataset_t  *ds;

    g = ctx->grant;
    ds = ctx->dataset;

    return ds != NULL
           && (ds->rlimit.max || ds->rlimit.quota
               || (g != NULL && (g->rlimit.max || g->rlimit.quota)));
}


/*
 * The access phase, after the call limits: a record quota used up
 * answers 429 (NGX_DECLINED, the standard headers set, ctx->detail);
 * otherwise the first records are taken.  NGX_AGAIN: waiting for Redis
 * (the access handler is run again).
 */
ngx_int_t
ngx_http_datagate_records_admit(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx)
{
    uint64_t                 want;
    ngx_int_t                rc;
    ngx_http_datagate_rq_t  *rq;

    if (!ngx_http_datagate_records_limited(ctx)) {
        return NGX_OK;
    }

    rq = ngx_http_datagate_rq(r, ctx);
    if (rq == NULL) {
        return NGX_ERROR;
    }

    if (rq->state == NGX_HTTP_DATAGATE_RS_WAIT) {
        return NGX_AGAIN;
    }

    if (rq->state == NGX_HTTP_DATAGATE_RS_DONE) {
        return rq->rc;
    }

    if (rq->quota == 0) {
        rq->state = NGX_HTTP_DATAGATE_RS_DONE;
        return NGX_OK;
    }

    want = NGX_HTTP_DATAGATE_RQ_FIRST;
    if (rq->max && rq->max < want) {
        want = rq->max;
    }

    rq->step = want;

    rc = ngx_http_datagate_rq_take(r, ctx, rq, want);

    if (rc == NGX_AGAIN || rc == NGX_ERROR) {
        return rc;
    }

    /* taken now (this node's zone) */
    rq->state = NGX_HTTP_DATAGATE_RS_DONE;

    if (rq->got > 0) {
        rq->rc = NGX_OK;
        return NGX_OK;
    }


    rq->rc = ngx_http_datagate_rq_refuse(r, ctx, rq);

    return rq->rc;
}


/* the quota is used up: 429 rate_limited with the standard headers, as
 * the call quota's (NGX_DECLINED) */
static ngx_int_t
ngx_http_datagate_rq_refuse(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_rq_t *rq)
{
    u_char  *p;

    p = ngx_pnalloc(r->pool, 128);
    if (p) {
        ngx_sprintf(p, "record quota exhausted: %uL records per %s%Z",
                    rq->quota, rq->period == 60 ? "minute"
                               : rq->period == 3600 ? "hour" : "day");
        ctx->detail = (const char *) p;
    }

    ctx->reason = DG_R_RATE_LIMITED;

    if (ngx_http_datagate_limit_headers(r, rq->quota, rq->reset_ms,
                                        rq->reset_ms)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_DECLINED;
}


/*
 * Take up to want records from the quota: rq->got, rq->left.  NGX_OK
 * (taken now: this node's zone, or the node's share while Redis is
 * away), NGX_AGAIN (an EVALSHA is queued: the reply resumes the access
 * phase or the paused answer), NGX_ERROR.
 */
static ngx_int_t
ngx_http_datagate_rq_take(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_rq_t *rq, uint64_t want)
{
    ngx_int_t                       rc;
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (dmcf->redis_enabled) {
        rc = ngx_http_datagate_rq_redis(r, ctx, dmcf, rq, want, 0, 0);

        if (rc == NGX_OK) {
            rq->state = NGX_HTTP_DATAGATE_RS_WAIT;
            return NGX_AGAIN;
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        /* Redis not ready: this node's share */
        ngx_http_datagate_redis_degraded(dmcf, ctx);
    }

    if (dmcf->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_http_datagate_rq_local(dmcf, rq, want, dmcf->redis_enabled);

    return NGX_OK;
}


/* ---- one node: the shared zone -------------------------------------- */

static void
ngx_http_datagate_rq_local(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_rq_t *rq, uint64_t want, ngx_uint_t share)
{
    int64_t                     now_s, start;
    uint64_t                    quota, got;
    ngx_http_datagate_lnode_t  *node;

    now_s = ngx_time();
    start = dg_quota_window_start(now_s, rq->period);

    rq->got = 0;
    rq->left = 0;
    rq->reset_ms = (start + rq->period - now_s) * 1000;

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    node = ngx_http_datagate_limit_node(dmcf, rq->key, rq->klen,
                                        ngx_http_datagate_now_ms(), NULL);

    if (node == NULL) {
        ngx_shmtx_unlock(&dmcf->shpool->mutex);
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "datagate: zone full, cannot count a record quota");
        return;
    }

    quota = rq->quota;

    if (share) {
        /* what the cluster had used, as Redis last said, is gone */
        if (node->seen_window == start) {
            quota = node->seen < quota ? quota - node->seen : 0;
        }

        quota = quota ? dg_quota_share(quota, (unsigned) dmcf->redis.nodes)
                      : 0;
    }

    if (node->window != start) {
        node->window = start;
        node->count = 0;
    }

    node->period = rq->period;

    got = node->count < quota ? quota - node->count : 0;
    if (got > want) {
        got = want;
    }

    node->count += got;
    rq->left = quota - node->count;

    if (share && got) {
        /* to be added to the cluster's count when Redis is back */
        if (node->unsynced_window != node->window) {
            node->unsynced_window = node->window;
            node->unsynced = 0;
        }

        node->unsynced += got;
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    if (rq->taken && rq->window != start) {
        /* a new window: what was taken in the last one stays there */
        rq->taken = 0;
        rq->remote = 0;
    }

    rq->window = start;
    rq->taken += got;
    rq->got = got;
}


/* ---- the cluster: EVALSHA -------------------------------------------- */

static ngx_int_t
ngx_http_datagate_rq_redis(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_rq_t *rq, uint64_t want, uint64_t back,
    int64_t back_window)
{
    u_char                      *p;
    size_t                       lens[NGX_HTTP_DATAGATE_RQ_ARGS];
    int64_t                      start;
    uint64_t                     add;
    ngx_int_t                    rc;
    ngx_uint_t                   i;
    const char                  *args[NGX_HTTP_DATAGATE_RQ_ARGS];
    ngx_http_datagate_rqwait_t  *w;
    ngx_http_datagate_lnode_t   *node;
    u_char                       qkey[DG_RS_KEY_MAX];
    u_char                       num[8][NGX_INT64_LEN + 1];

    if (!ngx_http_datagate_redis_ready()) {
        return NGX_DECLINED;
    }

    w = ngx_http_datagate_waiter_create(want ? r : NULL, want ? ctx : NULL,
                                        sizeof(ngx_http_datagate_rqwait_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    start = dg_quota_window_start(ngx_time(), rq->period);

    /* what this node granted alone while Redis was away goes along */
    add = 0;

    if (dmcf->sh) {
        ngx_shmtx_lock(&dmcf->shpool->mutex);

        node = ngx_http_datagate_limit_node(dmcf, rq->key, rq->klen,
                                            ngx_http_datagate_now_ms(), NULL);
        if (node && node->unsynced) {
            if (node->unsynced_window == start) {
                add = node->unsynced;
            }

            node->unsynced = 0;
        }

        ngx_shmtx_unlock(&dmcf->shpool->mutex);
    }

    p = ngx_cpymem(qkey, DG_RS_RQUOTA, sizeof(DG_RS_RQUOTA) - 1);
    p = ngx_cpymem(p, rq->key + sizeof(NGX_HTTP_DATAGATE_RQ_PREFIX) - 1,
                   rq->klen - (sizeof(NGX_HTTP_DATAGATE_RQ_PREFIX) - 1));

    /* KEYS: no rate, the quota; ARGV (dg_gcra.h): the rate's three
     * unused, the quota, its period, the UTC offset, the records granted
     * alone and their window, "records", wanted, given back and their
     * window */

    args[0] = "";
    lens[0] = 0;
    args[1] = (const char *) qkey;
    lens[1] = p - qkey;

    for (i = 2; i < 5; i++) {
        args[i] = "0";
        lens[i] = 1;
    }

    args[5] = (const char *) num[0];
    lens[5] = ngx_sprintf(num[0], "%uL", rq->quota) - num[0];
    args[6] = (const char *) num[1];
    lens[6] = ngx_sprintf(num[1], "%ui", (ngx_uint_t) rq->period) - num[1];
    args[7] = (const char *) num[2];
    lens[7] = ngx_sprintf(num[2], "%d", DG_UTC_OFFSET) - num[2];
    args[8] = (const char *) num[3];
    lens[8] = ngx_sprintf(num[3], "%uL", add) - num[3];
    args[9] = (const char *) num[4];
    lens[9] = ngx_sprintf(num[4], "%L", start) - num[4];
    args[10] = "records";
    lens[10] = sizeof("records") - 1;
    args[11] = (const char *) num[5];
    lens[11] = ngx_sprintf(num[5], "%uL", want) - num[5];
    args[12] = (const char *) num[6];
    lens[12] = ngx_sprintf(num[6], "%uL", back) - num[6];
    args[13] = (const char *) num[7];
    lens[13] = ngx_sprintf(num[7], "%L", back_window) - num[7];

    w->dmcf = dmcf;
    w->rq = want ? rq : NULL;
    w->add_window = start;
    w->add = add;
    w->want = want;
    w->klen = rq->klen;
    ngx_memcpy(w->key, rq->key, rq->klen);

    rc = ngx_http_datagate_redis_eval(ngx_http_datagate_rq_reply, w, 2,
                                      NGX_HTTP_DATAGATE_RQ_ARGS, args, lens);

    if (rc != NGX_OK) {
        ngx_http_datagate_rq_unsynced(w, 0, 0);
        ngx_http_datagate_waiter_free(&w->wait);
        return rc;
    }

    return NGX_OK;
}


static void
ngx_http_datagate_rq_reply(void *data, void *reply)
{
    uint64_t                        now, got;
    ngx_uint_t                      i, ok;
    long long                       v[NGX_HTTP_DATAGATE_RQ_REPLY];
    redisReply                     *rr;
    ngx_http_request_t             *r;
    ngx_http_datagate_rq_t         *rq;
    ngx_http_datagate_ctx_t        *ctx;
    ngx_http_datagate_rqwait_t     *w;
    ngx_http_datagate_lnode_t      *node;
    ngx_http_datagate_main_conf_t  *dmcf;

    w = data;
    r = w->wait.r;
    ctx = w->wait.ctx;
    dmcf = w->dmcf;

    ngx_http_datagate_waiter_detach(&w->wait);

    rr = reply;
    ok = 0;

    if (rr && rr->type == REDIS_REPLY_ARRAY
        && rr->elements == NGX_HTTP_DATAGATE_RQ_REPLY)
    {
        ok = 1;

        for (i = 0; i < NGX_HTTP_DATAGATE_RQ_REPLY; i++) {
            if (rr->element[i]->type != REDIS_REPLY_INTEGER) {
                ok = 0;
                break;
            }

            v[i] = rr->element[i]->integer;
        }

    } else if (rr && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "datagate: redis record-quota script: %*s",
                      (size_t) rr->len, rr->str);
    }

    ngx_http_datagate_rq_unsynced(w, ok, ok && v[8] > 0 ? (uint64_t) v[8]
                                                       : 0);

    if (ok && v[6] > 0 && dmcf->sh) {
        /* the cluster's use, for the per-node share of an outage */
        now = ngx_http_datagate_now_ms();

        ngx_shmtx_lock(&dmcf->shpool->mutex);

        node = ngx_http_datagate_limit_node(dmcf, w->key, w->klen, now,
                                            NULL);
        if (node) {
            node->seen_window = v[7];
            node->seen = (uint64_t) v[6];
        }

        ngx_shmtx_unlock(&dmcf->shpool->mutex);
    }

    if (r == NULL || w->rq == NULL) {
        /* a give-back, or the request went before its reply */
        ngx_free(w);
        return;
    }

    rq = w->rq;

    if (rq->state != NGX_HTTP_DATAGATE_RS_WAIT) {
        ngx_free(w);
        return;
    }

    if (ok) {
        got = v[9] > 0 ? (uint64_t) v[9] : 0;

        if (rq->taken && rq->window != v[7]) {
            rq->taken = 0;
            rq->remote = 0;
        }

        rq->window = v[7];
        rq->taken += got;
        rq->remote += got;
        rq->got = got;
        rq->left = v[3] > 0 ? (uint64_t) v[3] : 0;
        rq->reset_ms = v[5] > 0 ? v[5] : 0;

    } else {
        /* Redis failed us: this node's share (the breaker is open now) */
        ngx_http_datagate_redis_degraded(dmcf, ctx);

        if (dmcf->sh) {
            ngx_http_datagate_rq_local(dmcf, rq, w->want, 1);

        } else {
            rq->got = 0;
        }
    }

    ngx_free(w);

    rq->state = NGX_HTTP_DATAGATE_RS_DONE;

    if (rq->fctx == NULL) {
        /* the access phase waits */
        rq->rc = rq->got ? NGX_OK : ngx_http_datagate_rq_refuse(r, ctx, rq);

        ngx_http_datagate_resume(r);
        return;
    }

    /* a paused answer: its allowance, then the body filter again */
    ngx_http_datagate_rq_allow(rq, rq->fctx->mask);
    rq->fctx->rq_wait = 0;

    rq->resume.handler = ngx_http_datagate_rq_resume;
    rq->resume.data = rq->fctx;
    rq->resume.log = r->connection->log;

    ngx_post_event(&rq->resume, &ngx_posted_events);
}


/* as the call quota's (_limit.c): what a node granted alone and sent
 * along is in the cluster's count now, or back in the node's */
static void
ngx_http_datagate_rq_unsynced(ngx_http_datagate_rqwait_t *w,
    ngx_uint_t answered, uint64_t added)
{
    ngx_http_datagate_lnode_t      *node;
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = w->dmcf;

    if (w->add == 0 || dmcf->sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    node = ngx_http_datagate_limit_node(dmcf, w->key, w->klen,
                                        ngx_http_datagate_now_ms(), NULL);

    if (node && node->window == w->add_window) {
        if (answered) {
            node->count -= node->count < added ? node->count : added;

        } else {
            if (node->unsynced_window != w->add_window) {
                node->unsynced_window = w->add_window;
                node->unsynced = 0;
            }

            node->unsynced += w->add;
        }
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    w->add = 0;
}


/* ---- the answer ------------------------------------------------------ */

/* what was taken and the cap allow, to the masker: the records it may
 * send next, last when no more will come */
static void
ngx_http_datagate_rq_allow(ngx_http_datagate_rq_t *rq, dg_mask_t *m)
{
    uint64_t    n;
    ngx_uint_t  last;

    if (m == NULL) {
        return;
    }

    if (rq->quota == 0) {
        /* max_records alone */
        dg_mask_allow(m, rq->max - rq->given, 1);
        rq->given = rq->max;
        return;
    }

    n = rq->got;
    rq->got = 0;
    last = (rq->left == 0 || n < rq->step);

    if (rq->max && rq->given + n >= rq->max) {
        n = rq->max - rq->given;
        last = 1;
    }

    rq->quota_last = last && !(rq->max && rq->given + n >= rq->max);
    rq->given += n;

    dg_mask_allow(m, n, (int) last);
}


/* the masker for the answer: records one by one, and its allowance */
void
ngx_http_datagate_records_start(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_filter_ctx_t *fctx)
{
    ngx_http_datagate_rq_t  *rq;

    rq = ngx_http_datagate_rq(r, ctx);
    if (rq == NULL || fctx->mask == NULL) {
        return;
    }

    rq->fctx = fctx;

    if (rq->quota == 0 && rq->max == 0) {
        dg_mask_allow(fctx->mask, UINT64_MAX, 1);
        return;
    }

    ngx_http_datagate_rq_allow(rq, fctx->mask);
}


/*
 * The masker paused: no allowance for its next record.  NGX_OK: more
 * was given now (this node's zone), feed on; NGX_AGAIN: asked Redis,
 * the body filter is called again when it answers (fctx->rq_wait);
 * NGX_ERROR.
 */
ngx_int_t
ngx_http_datagate_records_more(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx)
{
    uint64_t                 want;
    ngx_int_t                rc;
    ngx_http_datagate_rq_t  *rq;

    rq = fctx->ctx->records;

    if (rq == NULL || rq->quota == 0) {
        /* an allowance only ever ends with "last": cannot happen */
        return NGX_ERROR;
    }

    if (rq->state == NGX_HTTP_DATAGATE_RS_WAIT) {
        fctx->rq_wait = 1;
        return NGX_AGAIN;
    }

    want = rq->step * 2;
    if (want > NGX_HTTP_DATAGATE_RQ_STEP_MAX) {
        want = NGX_HTTP_DATAGATE_RQ_STEP_MAX;
    }
    if (rq->max && want > rq->max - rq->given) {
        want = rq->max - rq->given;
    }

    rq->step = want;

    rc = ngx_http_datagate_rq_take(r, fctx->ctx, rq, want);

    if (rc == NGX_AGAIN) {
        fctx->rq_wait = 1;
        return NGX_AGAIN;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    rq->state = NGX_HTTP_DATAGATE_RS_DONE;
    ngx_http_datagate_rq_allow(rq, fctx->mask);

    return NGX_OK;
}


static void
ngx_http_datagate_rq_resume(ngx_event_t *ev)
{
    ngx_connection_t                *c;
    ngx_http_datagate_filter_ctx_t  *fctx;

    fctx = ev->data;
    c = fctx->request->connection;

    /* as when the client can take more (_body.c, the next turn) */
    c->write->handler(c->write);
}


static void
ngx_http_datagate_rq_cleanup(void *data)
{
    ngx_http_datagate_rq_t  *rq = data;

    if (rq->resume.posted) {
        ngx_delete_posted_event(&rq->resume);
    }
}


/*
 * Datagate-Records-Cut: REASON; records=N when the masker removed
 * records for want of an allowance: a header (header != 0, the header is
 * still held) or a trailer.
 */
ngx_int_t
ngx_http_datagate_records_said(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, ngx_uint_t header)
{
    u_char                  *p;
    ngx_table_elt_t         *h;
    ngx_http_datagate_rq_t  *rq;
    const dg_mask_stats_t   *st;

    rq = fctx->ctx->records;

    if (rq == NULL || rq->said || fctx->mask == NULL) {
        return NGX_OK;
    }

    st = dg_mask_stats(fctx->mask);

    if (!st->cut) {
        return NGX_OK;
    }

    rq->said = 1;

    h = ngx_list_push(header ? &r->headers_out.headers
                             : &r->headers_out.trailers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, sizeof("record_quota; records=")
                             + NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Datagate-Records-Cut");
    h->lowcase_key = (u_char *) "datagate-records-cut";
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%s; records=%uL",
                               ngx_http_datagate_records_cut_by(fctx->ctx),
                               st->records)
                   - p;

    return NGX_OK;
}


/* what ended the records of a cut answer: "max_records" or
 * "record_quota" */
const char *
ngx_http_datagate_records_cut_by(ngx_http_datagate_ctx_t *ctx)
{
    ngx_http_datagate_rq_t  *rq;

    rq = ctx->records;

    return (rq != NULL && rq->quota_last) ? "record_quota" : "max_records";
}


/* the log phase: records taken from the quota and not sent go back */
void
ngx_http_datagate_records_end(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx)
{
    uint64_t                        sent, back, remote;
    ngx_http_datagate_rq_t         *rq;
    ngx_http_datagate_lnode_t      *node;
    ngx_http_datagate_main_conf_t  *dmcf;

    rq = ctx->records;

    if (rq == NULL || rq->ended || rq->quota == 0 || rq->taken == 0) {
        return;
    }

    rq->ended = 1;

    sent = ctx->mask ? dg_mask_stats(ctx->mask)->records : 0;
    back = rq->taken > sent ? rq->taken - sent : 0;

    if (back == 0) {
        return;
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (dg_quota_window_start(ngx_time(), rq->period) != rq->window) {
        /* the window they were taken in is over */
        return;
    }

    /* what Redis granted goes back there (lost, and so counted as
     * sent, when Redis cannot be told now); what this node granted
     * alone, to its zone */

    remote = back < rq->remote ? back : rq->remote;

    if (remote
        && ngx_http_datagate_rq_redis(r, ctx, dmcf, rq, 0, remote,
                                      rq->window)
           != NGX_OK)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "datagate: %uL records not given back to redis",
                       remote);
    }

    back -= remote;

    if (back == 0 || dmcf->sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    node = ngx_http_datagate_limit_node(dmcf, rq->key, rq->klen,
                                        ngx_http_datagate_now_ms(), NULL);

    if (node && node->window == rq->window) {
        node->count -= node->count < back ? node->count : back;

        if (node->unsynced_window == rq->window) {
            node->unsynced -= node->unsynced < back ? node->unsynced : back;
        }
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);
}
