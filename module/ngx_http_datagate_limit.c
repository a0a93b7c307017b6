
/*
 * datagate: rate limits and quotas per (consumer, dataset).
 *
 * Rate: GCRA from "rate: 100r/s burst=50"; quota: a count per window from
 * "quota: 100000/day" (days in UTC+8).  The arithmetic is core/dg_gcra.c;
 * the same in Redis is the Lua script DG_GCRA_LUA.
 *
 * Each of rate and quota comes from the grant that allowed the request
 * when it sets one, else from the dataset: a grant's is counted in the
 * grant budget "CONSUMER|DATASET", a dataset's in the dataset budget
 * "dataset:CONSUMER|DATASET" of that consumer.  Ids hold no ':', so the
 * two kinds of budget never share a key (docs/redis.md).
 *
 *   - without datagate_redis (the embedded default): one budget per node,
 *     kept in the shared zone's limits tree like limit_req; it survives a
 *     reload (the zone is reused), and with datagate_state a restart too
 *     (_state.c: the quota windows are written to a file at exit and
 *     every interval=, and read back into a fresh zone);
 *   - with datagate_redis: one cluster budget, EVALSHA of the script (EVAL
 *     when Redis lost it), the request waiting at most the per-operation
 *     timeout; Redis time, so node clocks do not matter; counters survive
 *     nginx reloads and restarts (they live in Redis);
 *   - Redis not ready or failing: per-node limits with the budget divided
 *     by nodes= of datagate_redis (the quota less what Redis last reported
 *     as used in the window); the request counts as degraded.
 *
 * Limited: 429 rate_limited with Retry-After and RateLimit-Limit,
 * RateLimit-Remaining, RateLimit-Reset (seconds).
 */


#include "ngx_http_datagate.h"
#include "dg_gcra.h"
#include "dg_rstate.h"

#include <hiredis/hiredis.h>


#define NGX_HTTP_DATAGATE_LIMIT_REPLY   9       /* DG_GCRA_LUA returns */


/* what one request is counted against: rate and quota, each in its key */
typedef struct {
    dg_limit_t                      limit;
    size_t                          rklen;      /* 0: no rate */
    size_t                          qklen;      /* 0: no quota */
    u_char                          rkey[NGX_HTTP_DATAGATE_LIMIT_KEY];
    u_char                          qkey[NGX_HTTP_DATAGATE_LIMIT_KEY];
} ngx_http_datagate_budget_t;


/* one EVALSHA in flight; outlives its request */
typedef struct {
    ngx_http_datagate_waiter_t      wait;       /* first */
    ngx_http_datagate_main_conf_t  *dmcf;
    int64_t                         add_window;
    uint64_t                        add;        /* unsynced, in flight
                                                   (the quota's budget) */
    ngx_http_datagate_budget_t      b;
} ngx_http_datagate_lwait_t;


typedef struct {
    ngx_uint_t                      allowed;
    ngx_uint_t                      quota;      /* the quota said no */
    uint64_t                        limit;
    uint64_t                        remaining;
    int64_t                         retry_ms;
    int64_t                         reset_ms;
} ngx_http_datagate_lres_t;


static ngx_int_t ngx_http_datagate_limit_budget(
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_budget_t *b);
static size_t ngx_http_datagate_limit_key(u_char *key,
    const dg_consumer_t *c, const dg_dataset_t *ds,
    ngx_uint_t dataset_budget);
static ngx_int_t ngx_http_datagate_limit_local(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_budget_t *b,
    ngx_uint_t share, ngx_http_datagate_lres_t *res);
static ngx_int_t ngx_http_datagate_limit_redis(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_budget_t *b);
static void ngx_http_datagate_limit_reply(void *data, void *reply);
static ngx_int_t ngx_http_datagate_limit_result(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, const dg_limit_t *l,
    ngx_http_datagate_lres_t *res);
static void ngx_http_datagate_limit_unsynced(ngx_http_datagate_lwait_t *w,
    ngx_uint_t answered, uint64_t added);


ngx_int_t
ngx_http_datagate_limit(ngx_http_request_t *r, ngx_http_datagate_ctx_t *ctx)
{
    ngx_int_t                       rc;
    ngx_http_datagate_lres_t        res;
    ngx_http_datagate_budget_t      b;
    ngx_http_datagate_rstate_t     *st;
    ngx_http_datagate_main_conf_t  *dmcf;

    rc = ngx_http_datagate_limit_budget(ctx, &b);

    if (rc == NGX_DECLINED) {
        /* nothing limits this request */
        return NGX_OK;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    st = ngx_http_datagate_rstate(r, ctx);
    if (st == NULL) {
        return NGX_ERROR;
    }

    if (st->lim == NGX_HTTP_DATAGATE_RS_WAIT) {
        return NGX_AGAIN;
    }

    if (st->lim == NGX_HTTP_DATAGATE_RS_DONE && st->lim_grant == ctx->grant
        && st->lim_dataset == ctx->dataset)
    {
        return st->lim_rc;
    }

    /* first time, or an internal redirect to another grant or dataset */
    st->lim_grant = ctx->grant;
    st->lim_dataset = ctx->dataset;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (dmcf->redis_enabled) {

        rc = ngx_http_datagate_limit_redis(r, ctx, dmcf, &b);

        if (rc == NGX_OK) {
            st->lim = NGX_HTTP_DATAGATE_RS_WAIT;
            return NGX_AGAIN;
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        /* Redis not ready: this node's share of the budget */
        ngx_http_datagate_redis_degraded(dmcf, ctx);
    }

    if (ngx_http_datagate_limit_local(r, dmcf, &b, dmcf->redis_enabled, &res)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    st->lim_rc = ngx_http_datagate_limit_result(r, ctx, &b.limit, &res);
    st->lim = NGX_HTTP_DATAGATE_RS_DONE;

    return st->lim_rc;
}


/*
 * The budget of an allowed request: rate and quota each from the grant
 * that allowed it when the grant sets one, else from the dataset, each
 * counted in the key of where it came from.  NGX_DECLINED: no limit.
 */
static ngx_int_t
ngx_http_datagate_limit_budget(ngx_http_datagate_ctx_t *ctx,
    ngx_http_datagate_budget_t *b)
{
    const dg_grant_t     *g;
    const dg_dataset_t   *ds;
    const dg_consumer_t  *c;

    g = ctx->grant;
    ds = ctx->dataset;
    c = ctx->consumer;

    if (ds == NULL || c == NULL) {
        return NGX_DECLINED;
    }

    ngx_memzero(&b->limit, sizeof(dg_limit_t));
    b->rklen = 0;
    b->qklen = 0;

    if (c->id.len + ds->id.len + 1
        + sizeof(NGX_HTTP_DATAGATE_DS_BUDGET) > NGX_HTTP_DATAGATE_LIMIT_KEY
        || !dg_rs_id_ok(c->id.data, c->id.len)
        || !dg_rs_id_ok(ds->id.data, ds->id.len))
    {
        return NGX_ERROR;
    }

    if (g != NULL && g->limit.rate > 0.0) {
        b->limit.rate = g->limit.rate;
        b->limit.burst = g->limit.burst;
        b->rklen = ngx_http_datagate_limit_key(b->rkey, c, ds, 0);

    } else if (ds->limit.rate > 0.0) {
        b->limit.rate = ds->limit.rate;
        b->limit.burst = ds->limit.burst;
        b->rklen = ngx_http_datagate_limit_key(b->rkey, c, ds, 1);
    }

    if (g != NULL && g->limit.quota) {
        b->limit.quota = g->limit.quota;
        b->limit.quota_period = g->limit.quota_period;
        b->qklen = ngx_http_datagate_limit_key(b->qkey, c, ds, 0);

    } else if (ds->limit.quota) {
        b->limit.quota = ds->limit.quota;
        b->limit.quota_period = ds->limit.quota_period;
        b->qklen = ngx_http_datagate_limit_key(b->qkey, c, ds, 1);
    }

    if (b->rklen == 0 && b->qklen == 0) {
        return NGX_DECLINED;
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "datagate: budget rate \"%*s\" quota \"%*s\"",
                   b->rklen, b->rkey, b->qklen, b->qkey);

    return NGX_OK;
}


/* the grant budget's key CONSUMER|DATASET, or the dataset budget's */
static size_t
ngx_http_datagate_limit_key(u_char *key, const dg_consumer_t *c,
    const dg_dataset_t *ds, ngx_uint_t dataset_budget)
{
    u_char  *p;

    p = key;

    if (dataset_budget) {
        p = ngx_cpymem(p, NGX_HTTP_DATAGATE_DS_BUDGET,
                       sizeof(NGX_HTTP_DATAGATE_DS_BUDGET) - 1);
    }

    p = ngx_cpymem(p, c->id.data, c->id.len);
    *p++ = '|';
    p = ngx_cpymem(p, ds->id.data, ds->id.len);

    return p - key;
}


/* ---- one node: the shared zone -------------------------------------- */

static ngx_int_t
ngx_http_datagate_limit_local(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_budget_t *b,
    ngx_uint_t share, ngx_http_datagate_lres_t *res)
{
    int64_t                     now_us, now_s;
    uint64_t                    now, quota;
    ngx_uint_t                  nodes;
    ngx_time_t                 *tp;
    dg_gcra_t                   gcra;
    const dg_limit_t           *l;
    dg_gcra_result_t            gr;
    dg_quota_result_t           qr;
    ngx_http_datagate_lnode_t  *rnode, *qnode;

    ngx_memzero(res, sizeof(ngx_http_datagate_lres_t));
    res->allowed = 1;

    if (dmcf->sh == NULL) {
        /* no zone (cannot happen: the module adds a default one) */
        return NGX_ERROR;
    }

    l = &b->limit;
    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;
    now_us = (int64_t) now * 1000;
    now_s = tp->sec;

    nodes = share ? dmcf->redis.nodes : 1;

    gcra.interval = 0;

    if (l->rate > 0.0
        && dg_gcra_init_share(&gcra, l->rate, l->burst, (unsigned) nodes)
           != 0)
    {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    /* the rate's node and the quota's: one node when both come from the
     * same budget, else two, the second never evicting the first */

    rnode = NULL;
    qnode = NULL;

    if (gcra.interval) {
        rnode = ngx_http_datagate_limit_node(dmcf, b->rkey, b->rklen, now,
                                             NULL);
    }

    if (l->quota) {
        if (rnode != NULL && b->qklen == b->rklen
            && ngx_memcmp(b->qkey, b->rkey, b->rklen) == 0)
        {
            qnode = rnode;

        } else {
            qnode = ngx_http_datagate_limit_node(dmcf, b->qkey, b->qklen,
                                                 now, rnode);
        }
    }

    if ((gcra.interval && rnode == NULL) || (l->quota && qnode == NULL)) {
        ngx_shmtx_unlock(&dmcf->shpool->mutex);
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "datagate: zone full, cannot rate-limit");
        return NGX_ERROR;
    }

    /* rate first, without taking a cell, then the quota, then commit */

    if (gcra.interval && !dg_gcra_peek(&gcra, now_us, rnode->tat, &gr)) {
        ngx_shmtx_unlock(&dmcf->shpool->mutex);

        res->allowed = 0;
        res->limit = gr.limit;
        res->retry_ms = (gr.retry_after + 999) / 1000;
        res->reset_ms = (gr.reset + 999) / 1000;
        return NGX_OK;
    }

    if (l->quota) {
        quota = l->quota;

        if (share) {
            /* what the cluster had used, as Redis last said, is gone */
            if (qnode->seen_window == dg_quota_window_start(now_s,
                                                            l->quota_period))
            {
                quota = qnode->seen < quota ? quota - qnode->seen : 0;
            }

            quota = quota ? dg_quota_share(quota, (unsigned) nodes) : 0;

            if (quota == 0) {
                ngx_shmtx_unlock(&dmcf->shpool->mutex);

                res->allowed = 0;
                res->quota = 1;
                res->limit = l->quota;
                res->reset_ms = (dg_quota_window_start(now_s,
                                                       l->quota_period)
                                 + l->quota_period - now_s) * 1000;
                res->retry_ms = res->reset_ms;
                return NGX_OK;
            }
        }

        qnode->period = l->quota_period;

        if (!dg_quota_check(quota, l->quota_period, now_s, &qnode->window,
                            &qnode->count, &qr))
        {
            ngx_shmtx_unlock(&dmcf->shpool->mutex);

            res->allowed = 0;
            res->quota = 1;
            res->limit = l->quota;
            res->retry_ms = qr.reset * 1000;
            res->reset_ms = qr.reset * 1000;
            return NGX_OK;
        }

        res->limit = l->quota;
        res->remaining = qr.remaining;
        res->reset_ms = qr.reset * 1000;

        if (share) {
            /* to be added to the cluster's count when Redis is back */
            if (qnode->unsynced_window != qnode->window) {
                qnode->unsynced_window = qnode->window;
                qnode->unsynced = 0;
            }

            qnode->unsynced++;
        }
    }

    if (gcra.interval) {
        (void) dg_gcra_check(&gcra, now_us, &rnode->tat, &gr);

        res->limit = gr.limit;
        res->remaining = gr.remaining;
        res->reset_ms = (gr.reset + 999) / 1000;
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    return NGX_OK;
}


/* find or make the node of key, never evicting keep; zone locked */
ngx_http_datagate_lnode_t *
ngx_http_datagate_limit_node(ngx_http_datagate_main_conf_t *dmcf,
    u_char *key, size_t klen, uint64_t now, ngx_http_datagate_lnode_t *keep)
{
    size_t                      size;
    uint32_t                    hash;
    ngx_uint_t                  n;
    ngx_str_t                   name;
    ngx_queue_t                *q;
    ngx_http_datagate_tree_t   *t;
    ngx_http_datagate_lnode_t  *node, *old;

    t = &dmcf->sh->limits;

    name.data = key;
    name.len = klen;
    hash = ngx_crc32_short(key, klen);

    node = (ngx_http_datagate_lnode_t *)
               ngx_str_rbtree_lookup(&t->rbtree, &name, hash);

    if (node) {
        node->last = now;
        ngx_queue_remove(&node->queue);
        ngx_queue_insert_head(&t->queue, &node->queue);
        return node;
    }

    size = offsetof(ngx_http_datagate_lnode_t, data) + klen;

    node = ngx_slab_alloc_locked(dmcf->shpool, size);

    /*
     * full: forget the least recently used budgets (like limit_req); a
     * quota counter idle for a whole day is the only thing that can be
     * lost, and only when the zone is too small
     */
    for (n = 0; node == NULL && n < 16 && !ngx_queue_empty(&t->queue); n++)
    {
        q = ngx_queue_last(&t->queue);
        old = ngx_queue_data(q, ngx_http_datagate_lnode_t, queue);

        if (old == keep) {
            break;
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&t->rbtree, &old->sn.node);
        ngx_slab_free_locked(dmcf->shpool, old);

        node = ngx_slab_alloc_locked(dmcf->shpool, size);
    }

    if (node == NULL) {
        return NULL;
    }

    ngx_memzero(node, size);

    node->sn.node.key = hash;
    node->sn.str.data = node->data;
    node->sn.str.len = klen;
    node->last = now;
    node->seen_window = -1;
    ngx_memcpy(node->data, key, klen);

    ngx_rbtree_insert(&t->rbtree, &node->sn.node);
    ngx_queue_insert_head(&t->queue, &node->queue);

    return node;
}


/* ---- the cluster: EVALSHA -------------------------------------------- */

static ngx_int_t
ngx_http_datagate_limit_redis(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_budget_t *b)
{
    int                         n;
    u_char                     *p;
    size_t                      lens[10];
    int64_t                     now_s, start;
    ngx_int_t                   rc;
    dg_gcra_t                   gcra;
    const dg_limit_t           *l;
    const char                 *args[10];
    ngx_http_datagate_lwait_t  *w;
    uint64_t                    add;
    ngx_http_datagate_lnode_t  *node;
    u_char                      rkey[DG_RS_KEY_MAX];
    u_char                      qkey[DG_RS_KEY_MAX];
    u_char                      num[8][NGX_INT64_LEN + 1];

    if (!ngx_http_datagate_redis_ready()) {
        return NGX_DECLINED;
    }

    l = &b->limit;
    gcra.interval = 0;
    gcra.tolerance = 0;
    gcra.limit = 0;

    if (l->rate > 0.0 && dg_gcra_init(&gcra, l->rate, l->burst) != 0) {
        return NGX_ERROR;
    }

    w = ngx_http_datagate_waiter_create(r, ctx,
                                        sizeof(ngx_http_datagate_lwait_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    now_s = ngx_time();
    start = dg_quota_window_start(now_s, l->quota_period);

    /*
     * what this node admitted alone while Redis was away goes with this
     * call; back into the node if the call fails
     */
    add = 0;

    if (l->quota && dmcf->sh) {
        ngx_shmtx_lock(&dmcf->shpool->mutex);

        node = ngx_http_datagate_limit_node(dmcf, b->qkey, b->qklen,
                                            ngx_http_datagate_now_ms(), NULL);
        if (node && node->unsynced) {
            if (node->unsynced_window == start) {
                add = node->unsynced;
            }

            node->unsynced = 0;
        }

        ngx_shmtx_unlock(&dmcf->shpool->mutex);
    }

    /* KEYS */

    args[0] = "";
    lens[0] = 0;

    if (gcra.interval) {
        p = ngx_cpymem(rkey, DG_RS_RATE, sizeof(DG_RS_RATE) - 1);
        p = ngx_cpymem(p, b->rkey, b->rklen);
        args[0] = (const char *) rkey;
        lens[0] = p - rkey;
    }

    args[1] = "";
    lens[1] = 0;

    if (l->quota) {
        /* the script appends ":START" of the window Redis's clock is in */
        p = ngx_cpymem(qkey, DG_RS_QUOTA, sizeof(DG_RS_QUOTA) - 1);
        p = ngx_cpymem(p, b->qkey, b->qklen);
        args[1] = (const char *) qkey;
        lens[1] = p - qkey;
    }

    /* ARGV: T, tau, limit, quota, period, UTC offset, added, its window */

    args[2] = (const char *) num[0];
    lens[2] = ngx_sprintf(num[0], "%L", gcra.interval) - num[0];
    args[3] = (const char *) num[1];
    lens[3] = ngx_sprintf(num[1], "%L", gcra.tolerance) - num[1];
    args[4] = (const char *) num[2];
    lens[4] = ngx_sprintf(num[2], "%uL", gcra.limit) - num[2];
    args[5] = (const char *) num[3];
    lens[5] = ngx_sprintf(num[3], "%uL", l->quota) - num[3];
    args[6] = (const char *) num[4];
    lens[6] = ngx_sprintf(num[4], "%ui", (ngx_uint_t) l->quota_period)
              - num[4];
    args[7] = (const char *) num[5];
    lens[7] = ngx_sprintf(num[5], "%d", DG_UTC_OFFSET) - num[5];
    args[8] = (const char *) num[6];
    lens[8] = ngx_sprintf(num[6], "%uL", add) - num[6];
    args[9] = (const char *) num[7];
    lens[9] = ngx_sprintf(num[7], "%L", start) - num[7];

    n = 10;

    w->dmcf = dmcf;
    w->add_window = start;
    w->add = add;
    w->b = *b;

    rc = ngx_http_datagate_redis_eval(ngx_http_datagate_limit_reply, w, 2, n,
                                      args, lens);

    if (rc != NGX_OK) {
        ngx_http_datagate_limit_unsynced(w, 0, 0);
        ngx_http_datagate_waiter_free(&w->wait);
        return rc;
    }

    return NGX_OK;
}


static void
ngx_http_datagate_limit_reply(void *data, void *reply)
{
    uint64_t                        now;
    ngx_uint_t                      i, ok;
    long long                       v[NGX_HTTP_DATAGATE_LIMIT_REPLY];
    redisReply                     *rr;
    ngx_http_request_t             *r;
    ngx_http_datagate_ctx_t        *ctx;
    ngx_http_datagate_lres_t        res;
    ngx_http_datagate_lwait_t      *w;
    ngx_http_datagate_lnode_t      *node;
    ngx_http_datagate_rstate_t     *st;
    ngx_http_datagate_main_conf_t  *dmcf;

    w = data;
    r = w->wait.r;
    ctx = w->wait.ctx;
    dmcf = w->dmcf;

    ngx_http_datagate_waiter_detach(&w->wait);

    rr = reply;
    ok = 0;

    if (rr && rr->type == REDIS_REPLY_ARRAY
        && rr->elements == NGX_HTTP_DATAGATE_LIMIT_REPLY)
    {
        ok = 1;

        for (i = 0; i < NGX_HTTP_DATAGATE_LIMIT_REPLY; i++) {
            if (rr->element[i]->type != REDIS_REPLY_INTEGER) {
                ok = 0;
                break;
            }

            v[i] = rr->element[i]->integer;
        }

    } else if (rr && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "datagate: redis rate-limit script: %*s",
                      (size_t) rr->len, rr->str);
    }

    /* what was not added (a failed call) goes back to the node */
    ngx_http_datagate_limit_unsynced(w, ok, ok && v[8] > 0 ? (uint64_t) v[8]
                                                          : 0);

    if (ok && v[6] > 0 && w->b.qklen && dmcf->sh) {
        /* remember the cluster's quota use for the per-node fallback */
        now = ngx_http_datagate_now_ms();

        ngx_shmtx_lock(&dmcf->shpool->mutex);

        node = ngx_http_datagate_limit_node(dmcf, w->b.qkey, w->b.qklen, now,
                                            NULL);
        if (node) {
            node->seen_window = v[7];
            node->seen = (uint64_t) v[6];
        }

        ngx_shmtx_unlock(&dmcf->shpool->mutex);
    }

    if (r == NULL) {
        ngx_free(w);
        return;
    }

    st = ctx->pending;

    if (st == NULL || st->lim != NGX_HTTP_DATAGATE_RS_WAIT) {
        ngx_free(w);
        return;
    }

    if (ok) {
        ngx_memzero(&res, sizeof(ngx_http_datagate_lres_t));
        res.allowed = v[0] == 1;
        res.quota = v[1] == 1;
        res.limit = v[2] > 0 ? (uint64_t) v[2] : 0;
        res.remaining = v[3] > 0 ? (uint64_t) v[3] : 0;
        res.retry_ms = v[4] > 0 ? v[4] : 0;
        res.reset_ms = v[5] > 0 ? v[5] : 0;

        st->lim_rc = ngx_http_datagate_limit_result(r, ctx, &w->b.limit,
                                                    &res);

    } else {
        /* Redis failed us: this node's share (the breaker is open now) */
        ngx_http_datagate_redis_degraded(dmcf, ctx);

        if (ngx_http_datagate_limit_local(r, dmcf, &w->b, 1, &res) == NGX_OK)
        {
            st->lim_rc = ngx_http_datagate_limit_result(r, ctx, &w->b.limit,
                                                        &res);
        } else {
            st->lim_rc = NGX_ERROR;
        }
    }

    ngx_free(w);

    st->lim = NGX_HTTP_DATAGATE_RS_DONE;

    ngx_http_datagate_resume(r);
}


/*
 * The node's own admissions that went with a call: those Redis added are
 * in its count now (and leave this node's, so that the per-node share of
 * a later outage is not charged twice); after a failed call they go back,
 * unless their window has ended.  Those Redis did not add although it
 * answered belong to a window that has ended by its clock: dropped.
 */
static void
ngx_http_datagate_limit_unsynced(ngx_http_datagate_lwait_t *w,
    ngx_uint_t answered, uint64_t added)
{
    ngx_http_datagate_lnode_t      *node;
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = w->dmcf;

    if (w->add == 0 || dmcf->sh == NULL) {
        return;
    }

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    node = ngx_http_datagate_limit_node(dmcf, w->b.qkey, w->b.qklen,
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


/* ---- the answer --------------------------------------------------------- */

static ngx_int_t
ngx_http_datagate_limit_header(ngx_http_request_t *r, const char *name,
    size_t len, const char *lowcase, uint64_t value)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = len;
    h->lowcase_key = (u_char *) lowcase;
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%uL", value) - p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_datagate_limit_result(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, const dg_limit_t *l,
    ngx_http_datagate_lres_t *res)
{
    u_char    *p;
    uint64_t   retry, reset;

    if (res->allowed) {
        return NGX_OK;
    }

    retry = (uint64_t) (res->retry_ms + 999) / 1000;
    reset = (uint64_t) (res->reset_ms + 999) / 1000;

    if (retry == 0) {
        retry = 1;
    }

    if (reset < retry) {
        reset = retry;
    }

    if (ngx_http_datagate_limit_header(r, "Retry-After", 11, "retry-after",
                                       retry)
        != NGX_OK
        || ngx_http_datagate_limit_header(r, "RateLimit-Limit", 15,
                                          "ratelimit-limit", res->limit)
           != NGX_OK
        || ngx_http_datagate_limit_header(r, "RateLimit-Remaining", 19,
                                          "ratelimit-remaining", 0)
           != NGX_OK
        || ngx_http_datagate_limit_header(r, "RateLimit-Reset", 15,
                                          "ratelimit-reset", reset)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, 128);

    if (p) {
        if (res->quota) {
            ngx_sprintf(p, "quota exhausted: %uL requests per %s%Z",
                        l->quota,
                        l->quota_period == 60 ? "minute"
                        : l->quota_period == 3600 ? "hour" : "day");

        } else {
            ngx_sprintf(p, "rate limit exceeded: %.3f requests/s, "
                        "burst %ui%Z", l->rate, (ngx_uint_t) l->burst);
        }

        ctx->detail = (const char *) p;
    }

    ctx->reason = DG_R_RATE_LIMITED;

    return NGX_DECLINED;
}


/* ---- the statistics (_status.c) ------------------------------------- */

ngx_int_t
ngx_http_datagate_limit_budgets(ngx_http_datagate_main_conf_t *dmcf,
    ngx_pool_t *pool, ngx_uint_t max, ngx_array_t **out)
{
    u_char                           *p;
    ngx_uint_t                        n;
    ngx_queue_t                      *q;
    ngx_http_datagate_tree_t         *t;
    ngx_http_datagate_lnode_t        *node;
    ngx_http_datagate_quota_state_t  *qs;

    *out = ngx_array_create(pool, 16, sizeof(ngx_http_datagate_quota_state_t));
    if (*out == NULL) {
        return NGX_ERROR;
    }

    if (dmcf->sh == NULL) {
        return NGX_OK;
    }

    t = &dmcf->sh->limits;
    n = 0;

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    for (q = ngx_queue_head(&t->queue);
         q != ngx_queue_sentinel(&t->queue) && n < max;
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_datagate_lnode_t, queue);

        /* a rate's cell only: no quota was ever counted in it */
        if (node->count == 0 && node->seen_window < 0
            && node->unsynced == 0)
        {
            continue;
        }

        qs = ngx_array_push(*out);
        p = ngx_pnalloc(pool, node->sn.str.len);

        if (qs == NULL || p == NULL) {
            ngx_shmtx_unlock(&dmcf->shpool->mutex);
            return NGX_ERROR;
        }

        ngx_memcpy(p, node->sn.str.data, node->sn.str.len);

        qs->key.data = p;
        qs->key.len = node->sn.str.len;
        qs->window = node->window;
        qs->count = node->count;
        qs->seen_window = node->seen_window;
        qs->seen = node->seen;
        qs->unsynced_window = node->unsynced_window;
        qs->unsynced = node->unsynced;

        n++;
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    return NGX_OK;
}
