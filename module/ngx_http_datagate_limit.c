
/*
 * datagate: rate limits and quotas per grant (consumer, dataset).
 *
 * Rate: GCRA from the grant's "rate: 100r/s burst=50"; quota: a count per
 * window from "quota: 100000/day" (days in UTC+8).  The arithmetic is
 * core/dg_gcra.c; the same in Redis is the Lua script DG_GCRA_LUA.
 *
 *   - without datagate_redis (the embedded default): one budget per node,
 *     kept in the shared zone's limits tree like limit_req; it survives a
 *     reload (the zone is reused), and with datagate_state a restart too
 *     (the quota windows are written to a file at exit and every
 *     interval=, and read back into a fresh zone);
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
#include "dg_audit.h"
#include "dg_gcra.h"
#include "dg_rstate.h"

#include <hiredis/hiredis.h>


#define NGX_HTTP_DATAGATE_LIMIT_KEY     (2 * DG_RS_ID_MAX + 2)
#define NGX_HTTP_DATAGATE_LIMIT_REPLY   9       /* DG_GCRA_LUA returns */


typedef struct {
    ngx_str_node_t                  sn;
    ngx_queue_t                     queue;
    int64_t                         tat;        /* us */
    int64_t                         window;     /* quota window, s */
    uint64_t                        count;      /* admitted here in it */
    uint32_t                        period;     /* of that window, s */
    int64_t                         seen_window;
    uint64_t                        seen;       /* cluster count (Redis) */
    int64_t                         unsynced_window;
    uint64_t                        unsynced;   /* admitted alone, not yet
                                                   added to Redis's count */
    uint64_t                        last;       /* ms */
    u_char                          data[1];
} ngx_http_datagate_lnode_t;


/* one EVALSHA in flight; outlives its request */
typedef struct {
    ngx_http_datagate_waiter_t      wait;       /* first */
    ngx_http_datagate_main_conf_t  *dmcf;
    int64_t                         add_window;
    uint64_t                        add;        /* unsynced, in flight */
    size_t                          klen;
    u_char                          key[1];
} ngx_http_datagate_lwait_t;


typedef struct {
    ngx_uint_t                      allowed;
    ngx_uint_t                      quota;      /* the quota said no */
    uint64_t                        limit;
    uint64_t                        remaining;
    int64_t                         retry_ms;
    int64_t                         reset_ms;
} ngx_http_datagate_lres_t;


static ngx_int_t ngx_http_datagate_limit_local(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, const dg_limit_t *l, u_char *key,
    size_t klen, ngx_uint_t share, ngx_http_datagate_lres_t *res);
static ngx_int_t ngx_http_datagate_limit_redis(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_main_conf_t *dmcf,
    const dg_limit_t *l, u_char *key, size_t klen);
static void ngx_http_datagate_limit_reply(void *data, void *reply);
static ngx_int_t ngx_http_datagate_limit_result(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, const dg_limit_t *l,
    ngx_http_datagate_lres_t *res);
static void ngx_http_datagate_limit_unsynced(ngx_http_datagate_lwait_t *w,
    ngx_uint_t answered, uint64_t added);
static ngx_http_datagate_lnode_t *ngx_http_datagate_limit_node(
    ngx_http_datagate_main_conf_t *dmcf, u_char *key, size_t klen,
    uint64_t now);


ngx_int_t
ngx_http_datagate_limit(ngx_http_request_t *r, ngx_http_datagate_ctx_t *ctx)
{
    u_char                         *p;
    size_t                          klen;
    ngx_int_t                       rc;
    const dg_limit_t               *l;
    const dg_grant_t               *g;
    ngx_http_datagate_lres_t        res;
    ngx_http_datagate_rstate_t     *st;
    ngx_http_datagate_main_conf_t  *dmcf;
    u_char                          key[NGX_HTTP_DATAGATE_LIMIT_KEY];

    g = ctx->grant;

    if (g == NULL || (!(g->limit.rate > 0.0) && g->limit.quota == 0)) {
        return NGX_OK;
    }

    st = ngx_http_datagate_rstate(r, ctx);
    if (st == NULL) {
        return NGX_ERROR;
    }

    if (st->lim == NGX_HTTP_DATAGATE_RS_WAIT) {
        return NGX_AGAIN;
    }

    if (st->lim == NGX_HTTP_DATAGATE_RS_DONE && st->lim_grant == g) {
        return st->lim_rc;
    }

    /* first time, or an internal redirect to another grant */
    st->lim_grant = g;

    l = &g->limit;

    /* one budget per (consumer, dataset) */

    if (g->consumer == NULL || g->dataset == NULL
        || g->consumer->id.len + g->dataset->id.len + 1 > sizeof(key)
        || !dg_rs_id_ok(g->consumer->id.data, g->consumer->id.len)
        || !dg_rs_id_ok(g->dataset->id.data, g->dataset->id.len))
    {
        return NGX_ERROR;
    }

    p = ngx_cpymem(key, g->consumer->id.data, g->consumer->id.len);
    *p++ = '|';
    p = ngx_cpymem(p, g->dataset->id.data, g->dataset->id.len);
    klen = p - key;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (dmcf->redis_enabled) {

        rc = ngx_http_datagate_limit_redis(r, ctx, dmcf, l, key, klen);

        if (rc == NGX_OK) {
            st->lim = NGX_HTTP_DATAGATE_RS_WAIT;
            return NGX_AGAIN;
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        /* Redis not ready: this node's share of the budget */
        ctx->degraded = 1;

        if (dmcf->sh) {
            (void) ngx_atomic_fetch_add(&dmcf->sh->redis_degraded, 1);
        }
    }

    if (ngx_http_datagate_limit_local(r, dmcf, l, key, klen,
                                      dmcf->redis_enabled, &res)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    st->lim_rc = ngx_http_datagate_limit_result(r, ctx, l, &res);
    st->lim = NGX_HTTP_DATAGATE_RS_DONE;

    return st->lim_rc;
}


/* ---- one node: the shared zone -------------------------------------- */

static ngx_int_t
ngx_http_datagate_limit_local(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, const dg_limit_t *l, u_char *key,
    size_t klen, ngx_uint_t share, ngx_http_datagate_lres_t *res)
{
    int64_t                     now_us, now_s;
    uint64_t                    now, quota;
    ngx_uint_t                  nodes;
    ngx_time_t                 *tp;
    dg_gcra_t                   gcra;
    dg_gcra_result_t            gr;
    dg_quota_result_t           qr;
    ngx_http_datagate_lnode_t  *node;

    ngx_memzero(res, sizeof(ngx_http_datagate_lres_t));
    res->allowed = 1;

    if (dmcf->sh == NULL) {
        /* no zone (cannot happen: the module adds a default one) */
        return NGX_ERROR;
    }

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

    node = ngx_http_datagate_limit_node(dmcf, key, klen, now);

    if (node == NULL) {
        ngx_shmtx_unlock(&dmcf->shpool->mutex);
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "datagate: zone full, cannot rate-limit");
        return NGX_ERROR;
    }

    /* rate first, without taking a cell, then the quota, then commit */

    if (gcra.interval && !dg_gcra_peek(&gcra, now_us, node->tat, &gr)) {
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
            if (node->seen_window == dg_quota_window_start(now_s,
                                                            l->quota_period))
            {
                quota = node->seen < quota ? quota - node->seen : 0;
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

        node->period = l->quota_period;

        if (!dg_quota_check(quota, l->quota_period, now_s, &node->window,
                            &node->count, &qr))
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
            if (node->unsynced_window != node->window) {
                node->unsynced_window = node->window;
                node->unsynced = 0;
            }

            node->unsynced++;
        }
    }

    if (gcra.interval) {
        (void) dg_gcra_check(&gcra, now_us, &node->tat, &gr);

        res->limit = gr.limit;
        res->remaining = gr.remaining;
        res->reset_ms = (gr.reset + 999) / 1000;
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    return NGX_OK;
}


/* find or make the node of key; with the zone locked */
static ngx_http_datagate_lnode_t *
ngx_http_datagate_limit_node(ngx_http_datagate_main_conf_t *dmcf,
    u_char *key, size_t klen, uint64_t now)
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
    const dg_limit_t *l, u_char *key, size_t klen)
{
    int                         n;
    u_char                     *p;
    size_t                      lens[10];
    int64_t                     now_s, start;
    ngx_int_t                   rc;
    dg_gcra_t                   gcra;
    const char                 *args[10];
    ngx_pool_cleanup_t         *cln;
    ngx_http_datagate_lwait_t  *w;
    uint64_t                    add;
    ngx_http_datagate_lnode_t  *node;
    u_char                      rkey[DG_RS_KEY_MAX];
    u_char                      qkey[DG_RS_KEY_MAX];
    u_char                      num[8][NGX_INT64_LEN + 1];

    if (!ngx_http_datagate_redis_ready()) {
        return NGX_DECLINED;
    }

    gcra.interval = 0;
    gcra.tolerance = 0;
    gcra.limit = 0;

    if (l->rate > 0.0 && dg_gcra_init(&gcra, l->rate, l->burst) != 0) {
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

        node = ngx_http_datagate_limit_node(dmcf, key, klen,
                                            ngx_http_datagate_now_ms());
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
        p = ngx_cpymem(p, key, klen);
        args[0] = (const char *) rkey;
        lens[0] = p - rkey;
    }

    args[1] = "";
    lens[1] = 0;

    if (l->quota) {
        /* the script appends ":START" of the window Redis's clock is in */
        p = ngx_cpymem(qkey, DG_RS_QUOTA, sizeof(DG_RS_QUOTA) - 1);
        p = ngx_cpymem(p, key, klen);
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

    w = ngx_alloc(sizeof(ngx_http_datagate_lwait_t) + klen,
                  r->connection->log);
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->dmcf = dmcf;
    w->add_window = start;
    w->add = add;
    w->klen = klen;
    ngx_memcpy(w->key, key, klen);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_http_datagate_limit_unsynced(w, 0, 0);
        ngx_free(w);
        return NGX_ERROR;
    }

    w->wait.r = r;
    w->wait.ctx = ctx;
    w->wait.cln = cln;
    w->dmcf = dmcf;
    w->add_window = start;
    w->add = add;
    w->klen = klen;
    ngx_memcpy(w->key, key, klen);

    rc = ngx_http_datagate_redis_eval(ngx_http_datagate_limit_reply, w, 2, n,
                                      args, lens);

    if (rc != NGX_OK) {
        ngx_http_datagate_limit_unsynced(w, 0, 0);
        ngx_free(w);
        return rc;
    }

    cln->handler = ngx_http_datagate_waiter_cleanup;
    cln->data = &w->wait;

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

    if (ok && v[6] > 0 && dmcf->sh) {
        /* remember the cluster's quota use for the per-node fallback */
        now = ngx_http_datagate_now_ms();

        ngx_shmtx_lock(&dmcf->shpool->mutex);

        node = ngx_http_datagate_limit_node(dmcf, w->key, w->klen, now);
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

    if (st == NULL || st->lim != NGX_HTTP_DATAGATE_RS_WAIT
        || ctx->grant == NULL)
    {
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

        st->lim_rc = ngx_http_datagate_limit_result(r, ctx,
                                                    &ctx->grant->limit, &res);

    } else {
        /* Redis failed us: this node's share (the breaker is open now) */
        ctx->degraded = 1;

        if (dmcf->sh) {
            (void) ngx_atomic_fetch_add(&dmcf->sh->redis_degraded, 1);
        }

        if (ngx_http_datagate_limit_local(r, dmcf, &ctx->grant->limit,
                                          w->key, w->klen, 1, &res)
            == NGX_OK)
        {
            st->lim_rc = ngx_http_datagate_limit_result(r, ctx,
                                                        &ctx->grant->limit,
                                                        &res);
        } else {
            st->lim_rc = NGX_ERROR;
        }
    }

    ngx_free(w);

    st->lim = NGX_HTTP_DATAGATE_RS_DONE;
    ctx->waiting = 0;

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

    node = ngx_http_datagate_limit_node(dmcf, w->key, w->klen,
                                        ngx_http_datagate_now_ms());

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


/* ---- datagate_state: quota counters across restarts ------------------ */

/*
 * The file, written atomically (a temporary file in the same directory,
 * fsync, rename):
 *
 *     DGQ1
 *     epoch VALUE
 *     lost SEQ HASH COUNT
 *     WINDOW_START PERIOD COUNT CONSUMER|DATASET
 *     ...
 *
 * "epoch": the Redis epoch this node last saw (_redis.c), with
 * datagate_redis.  "lost": audit records that could not be written after the record SEQ
 * (its hash HASH) and that no record has counted yet (_log.c); only when
 * there are any.  Then one line per budget with requests counted in a
 * window that has not ended.  The key is the budget's (consumer,
 * dataset), not a policy index, so the counters survive a policy change
 * as well.  Rate-limit state (GCRA) is not kept: an idle bucket is full
 * anyway after at most (burst + 1) / rate seconds.
 */

#define NGX_HTTP_DATAGATE_STATE_MAGIC    "DGQ1\n"
#define NGX_HTTP_DATAGATE_STATE_LOST     "lost "
#define NGX_HTTP_DATAGATE_STATE_EPOCH    "epoch "
#define NGX_HTTP_DATAGATE_STATE_MAX      (64 * 1024 * 1024)
#define NGX_HTTP_DATAGATE_STATE_PERIOD   (366 * 86400)


typedef struct {
    int64_t                         window;
    uint64_t                        count;
    uint32_t                        period;
    size_t                          klen;
    u_char                         *key;
} ngx_http_datagate_qsave_t;


static ngx_int_t ngx_http_datagate_state_lost(
    ngx_http_datagate_main_conf_t *dmcf, ngx_log_t *log, u_char *p,
    u_char *end);


static ngx_event_t  ngx_http_datagate_state_ev;
static ngx_uint_t   ngx_http_datagate_state_failing;


static ngx_int_t
ngx_http_datagate_state_lock(ngx_http_datagate_main_conf_t *dmcf,
    ngx_uint_t wait)
{
    ngx_uint_t  i;

    /* at exit: a lock a dead worker held is released by the master; do
     * not hang on one anyway */

    for (i = 0; i < (wait ? 1000 : 1); i++) {
        if (ngx_shmtx_trylock(&dmcf->shpool->mutex)) {
            return NGX_OK;
        }

        if (wait) {
            ngx_msleep(1);
        }
    }

    return NGX_BUSY;
}


ngx_int_t
ngx_http_datagate_state_save(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, ngx_uint_t wait)
{
    u_char                     *buf, *p, *kp;
    u_char                      lhash[DG_AUDIT_HEXLEN + 1];
    size_t                      size, keys;
    ssize_t                     n;
    int64_t                     now;
    uint64_t                    lost, lseq;
    ngx_fd_t                    fd;
    ngx_err_t                   err;
    ngx_str_t                   tmp;
    ngx_uint_t                  i, count;
    ngx_queue_t                *q;
    const char                 *what;
    ngx_http_datagate_lnode_t  *node;
    ngx_http_datagate_qsave_t  *e;
    u_char                      epoch[DG_RS_EPOCH_MAX + 1];

    if (dmcf->sh == NULL || dmcf->state_path.len == 0) {
        return NGX_OK;
    }

    now = ngx_time();
    e = NULL;
    buf = NULL;
    fd = NGX_INVALID_FILE;
    err = 0;
    what = NULL;

    tmp.len = dmcf->state_path.len + sizeof(".tmp.") - 1 + NGX_INT64_LEN;
    tmp.data = ngx_alloc(tmp.len + 1, log);
    if (tmp.data == NULL) {
        return NGX_ERROR;
    }

    *ngx_sprintf(tmp.data, "%V.tmp.%P", &dmcf->state_path, ngx_pid) = '\0';

    if (ngx_http_datagate_state_lock(dmcf, wait) != NGX_OK) {
        ngx_free(tmp.data);
        return NGX_BUSY;
    }

    /* count, copy out under the lock, write without it */

    lseq = 0;
    lost = ngx_http_datagate_audit_lost(dmcf, &lseq, lhash);

    count = 0;
    keys = 0;

    for (q = ngx_queue_head(&dmcf->sh->limits.queue);
         q != ngx_queue_sentinel(&dmcf->sh->limits.queue);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_datagate_lnode_t, queue);

        if (node->count && node->period
            && node->window + (int64_t) node->period > now)
        {
            count++;
            keys += node->sn.str.len;
        }
    }

    if (count) {
        e = ngx_alloc(count * sizeof(ngx_http_datagate_qsave_t) + keys, log);
        if (e == NULL) {
            ngx_shmtx_unlock(&dmcf->shpool->mutex);
            ngx_free(tmp.data);
            return NGX_ERROR;
        }

        kp = (u_char *) (e + count);
        i = 0;

        for (q = ngx_queue_head(&dmcf->sh->limits.queue);
             q != ngx_queue_sentinel(&dmcf->sh->limits.queue) && i < count;
             q = ngx_queue_next(q))
        {
            node = ngx_queue_data(q, ngx_http_datagate_lnode_t, queue);

            if (!(node->count && node->period
                  && node->window + (int64_t) node->period > now))
            {
                continue;
            }

            e[i].window = node->window;
            e[i].count = node->count;
            e[i].period = node->period;
            e[i].klen = node->sn.str.len;
            e[i].key = kp;
            kp = ngx_cpymem(kp, node->sn.str.data, node->sn.str.len);
            i++;
        }

        count = i;
    }

    ngx_cpystrn(epoch, dmcf->sh->redis_epoch, sizeof(epoch));

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    size = sizeof(NGX_HTTP_DATAGATE_STATE_MAGIC) - 1
           + sizeof(NGX_HTTP_DATAGATE_STATE_EPOCH) + sizeof(epoch)
           + sizeof(NGX_HTTP_DATAGATE_STATE_LOST) + 2 * NGX_INT64_LEN
           + DG_AUDIT_HEXLEN + 3
           + count * (3 * NGX_INT64_LEN + 4) + keys;

    buf = ngx_alloc(size, log);
    if (buf == NULL) {
        goto failed;
    }

    p = ngx_cpymem(buf, NGX_HTTP_DATAGATE_STATE_MAGIC,
                   sizeof(NGX_HTTP_DATAGATE_STATE_MAGIC) - 1);

    if (epoch[0]) {
        p = ngx_sprintf(p, NGX_HTTP_DATAGATE_STATE_EPOCH "%s\n", epoch);
    }

    if (lost) {
        p = ngx_sprintf(p, NGX_HTTP_DATAGATE_STATE_LOST "%uL %*s %uL\n",
                        lseq, (size_t) DG_AUDIT_HEXLEN, lhash, lost);
    }

    for (i = 0; i < count; i++) {
        p = ngx_sprintf(p, "%L %uD %uL ", e[i].window, e[i].period,
                        e[i].count);
        p = ngx_cpymem(p, e[i].key, e[i].klen);
        *p++ = '\n';
    }

    fd = ngx_open_file(tmp.data, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_OWNER_ACCESS);
    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;
        what = ngx_open_file_n;
        goto failed;
    }

    n = ngx_write_fd(fd, buf, p - buf);

    if (n != p - buf) {
        err = n == -1 ? ngx_errno : 0;
        what = ngx_write_fd_n;
        goto failed;
    }

    if (fsync(fd) == -1) {
        err = ngx_errno;
        what = "fsync()";
        goto failed;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        fd = NGX_INVALID_FILE;
        err = ngx_errno;
        what = ngx_close_file_n;
        goto failed;
    }

    fd = NGX_INVALID_FILE;

    if (ngx_rename_file(tmp.data, dmcf->state_path.data) == NGX_FILE_ERROR) {
        err = ngx_errno;
        what = ngx_rename_file_n;
        goto failed;
    }

    if (ngx_http_datagate_state_failing) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "datagate: quota state \"%V\" written again",
                      &dmcf->state_path);
        ngx_http_datagate_state_failing = 0;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "datagate: %ui quota counters written to \"%V\"",
                   count, &dmcf->state_path);

    ngx_free(buf);
    ngx_free(e);
    ngx_free(tmp.data);

    return NGX_OK;

failed:

    if (fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(fd);
    }

    if (what) {
        (void) ngx_delete_file(tmp.data);

        if (!ngx_http_datagate_state_failing) {
            ngx_log_error(NGX_LOG_ERR, log, err,
                          "datagate: cannot write the quota state \"%s\": "
                          "%s failed", tmp.data, what);
            ngx_http_datagate_state_failing = 1;
        }
    }

    if (buf) {
        ngx_free(buf);
    }

    if (e) {
        ngx_free(e);
    }

    ngx_free(tmp.data);

    return NGX_ERROR;
}


/* the rest of a "lost SEQ HASH COUNT" line; NGX_DECLINED: malformed */
static ngx_int_t
ngx_http_datagate_state_lost(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, u_char *p, u_char *end)
{
    u_char     *h, hash[DG_AUDIT_HEXLEN + 1];
    ngx_int_t   seq, lost;

    h = ngx_strlchr(p, end, ' ');
    if (h == NULL || end - h < DG_AUDIT_HEXLEN + 3
        || h[DG_AUDIT_HEXLEN + 1] != ' ')
    {
        return NGX_DECLINED;
    }

    seq = ngx_atoi(p, h - p);
    lost = ngx_atoi(h + DG_AUDIT_HEXLEN + 2, end - (h + DG_AUDIT_HEXLEN + 2));

    if (seq == NGX_ERROR || lost == NGX_ERROR) {
        return NGX_DECLINED;
    }

    for (p = h + 1; p < h + 1 + DG_AUDIT_HEXLEN; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
            return NGX_DECLINED;
        }
    }

    ngx_memcpy(hash, h + 1, DG_AUDIT_HEXLEN);
    hash[DG_AUDIT_HEXLEN] = '\0';

    ngx_http_datagate_audit_lost_restore(dmcf, log, (uint64_t) seq, hash,
                                         (uint64_t) lost);

    return NGX_OK;
}


/* one "WINDOW PERIOD COUNT KEY" line; NGX_DECLINED: malformed */
static ngx_int_t
ngx_http_datagate_state_line(u_char *p, u_char *end, int64_t *window,
    uint64_t *period, uint64_t *count, ngx_str_t *key)
{
    u_char      *s;
    uint64_t     v[3];
    ngx_uint_t   i, digits;

    for (i = 0; i < 3; i++) {
        v[i] = 0;

        for (s = p, digits = 0; p < end && *p >= '0' && *p <= '9'; p++) {
            if (++digits > 18) {
                return NGX_DECLINED;
            }

            v[i] = v[i] * 10 + (*p - '0');
        }

        if (p == s || p == end || *p != ' ') {
            return NGX_DECLINED;
        }

        p++;
    }

    key->data = p;
    key->len = end - p;

    if (key->len == 0 || key->len > NGX_HTTP_DATAGATE_LIMIT_KEY
        || ngx_strlchr(p, end, '|') == NULL
        || ngx_strlchr(p, end, ' ') != NULL)
    {
        return NGX_DECLINED;
    }

    *window = (int64_t) v[0];
    *period = v[1];
    *count = v[2];

    return NGX_OK;
}


void
ngx_http_datagate_state_load(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log)
{
    u_char                     *buf, *p, *end, *nl;
    off_t                       size;
    ssize_t                     n;
    int64_t                     now, window;
    uint64_t                    period, count;
    ngx_fd_t                    fd;
    ngx_str_t                   key;
    ngx_uint_t                  loaded, bad, old, level;
    ngx_file_info_t             fi;
    ngx_http_datagate_lnode_t  *node;

    if (dmcf->sh == NULL || dmcf->state_path.len == 0) {
        return;
    }

    fd = ngx_open_file(dmcf->state_path.data, NGX_FILE_RDONLY,
                       NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        if (ngx_errno != NGX_ENOENT) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "datagate: cannot read the quota state \"%V\"",
                          &dmcf->state_path);
        }

        return;
    }

    buf = NULL;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      ngx_fd_info_n " \"%V\" failed", &dmcf->state_path);
        goto done;
    }

    size = ngx_file_size(&fi);

    if (size > NGX_HTTP_DATAGATE_STATE_MAX) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "datagate: quota state \"%V\" is too large, ignored",
                      &dmcf->state_path);
        goto done;
    }

    buf = ngx_alloc((size_t) size + 1, log);
    if (buf == NULL) {
        goto done;
    }

    n = ngx_read_fd(fd, buf, (size_t) size);

    if (n != (ssize_t) size) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "datagate: cannot read the quota state \"%V\"",
                      &dmcf->state_path);
        goto done;
    }

    if ((size_t) size < sizeof(NGX_HTTP_DATAGATE_STATE_MAGIC) - 1
        || ngx_memcmp(buf, NGX_HTTP_DATAGATE_STATE_MAGIC,
                      sizeof(NGX_HTTP_DATAGATE_STATE_MAGIC) - 1)
           != 0)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "datagate: \"%V\" is not a datagate quota state file, "
                      "ignored", &dmcf->state_path);
        goto done;
    }

    now = ngx_time();
    loaded = 0;
    bad = 0;
    old = 0;

    p = buf + sizeof(NGX_HTTP_DATAGATE_STATE_MAGIC) - 1;
    end = buf + size;

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    for ( /* void */ ; p < end; p = nl + 1) {

        nl = ngx_strlchr(p, end, '\n');
        if (nl == NULL) {
            bad++;      /* a torn last line */
            break;
        }

        if (nl - p > (ssize_t) sizeof(NGX_HTTP_DATAGATE_STATE_LOST) - 1
            && ngx_strncmp(p, NGX_HTTP_DATAGATE_STATE_LOST,
                           sizeof(NGX_HTTP_DATAGATE_STATE_LOST) - 1) == 0)
        {
            if (ngx_http_datagate_state_lost(dmcf, log,
                    p + sizeof(NGX_HTTP_DATAGATE_STATE_LOST) - 1, nl)
                != NGX_OK)
            {
                bad++;
            }

            continue;
        }

        /* the Redis epoch this node last saw (_redis.c) */
        if (nl - p > (ssize_t) sizeof(NGX_HTTP_DATAGATE_STATE_EPOCH) - 1
            && nl - p <= (ssize_t) (sizeof(NGX_HTTP_DATAGATE_STATE_EPOCH)
                                    - 1 + DG_RS_EPOCH_MAX)
            && ngx_strncmp(p, NGX_HTTP_DATAGATE_STATE_EPOCH,
                           sizeof(NGX_HTTP_DATAGATE_STATE_EPOCH) - 1) == 0)
        {
            p += sizeof(NGX_HTTP_DATAGATE_STATE_EPOCH) - 1;
            ngx_memcpy(dmcf->sh->redis_epoch, p, nl - p);
            dmcf->sh->redis_epoch[nl - p] = '\0';
            continue;
        }

        if (ngx_http_datagate_state_line(p, nl, &window, &period, &count,
                                         &key)
            != NGX_OK
            || period == 0 || period > NGX_HTTP_DATAGATE_STATE_PERIOD
            || count == 0)
        {
            bad++;
            continue;
        }

        /* only the window we are in: a passed one starts from zero */
        if (window != dg_quota_window_start(now, (unsigned) period)) {
            old++;
            continue;
        }

        node = ngx_http_datagate_limit_node(dmcf, key.data, key.len,
                                            (uint64_t) now * 1000);
        if (node == NULL) {
            break;
        }

        if (node->window != window || node->count < count) {
            node->window = window;
            node->count = count;
            node->period = (uint32_t) period;
        }

        loaded++;
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    level = bad ? NGX_LOG_WARN : NGX_LOG_NOTICE;

    ngx_log_error(level, log, 0,
                  "datagate: quota state \"%V\": %ui counters loaded, "
                  "%ui of past windows, %ui malformed lines skipped",
                  &dmcf->state_path, loaded, old, bad);

done:

    if (buf) {
        ngx_free(buf);
    }

    (void) ngx_close_file(fd);
}


static void
ngx_http_datagate_state_timer(ngx_event_t *ev)
{
    ngx_http_datagate_main_conf_t  *dmcf = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    (void) ngx_http_datagate_state_save(dmcf, ev->log, 0);

    ngx_add_timer(ev, dmcf->state_interval);
}


ngx_int_t
ngx_http_datagate_state_init_process(ngx_cycle_t *cycle)
{
    ngx_event_t                    *ev;
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_datagate_module);

    /* one writer per node: worker 0; the master writes at exit */

    if (dmcf == NULL || dmcf->state_path.len == 0 || dmcf->sh == NULL
        || dmcf->state_interval == 0 || ngx_process != NGX_PROCESS_WORKER
        || ngx_worker != 0)
    {
        return NGX_OK;
    }

    ev = &ngx_http_datagate_state_ev;

    ngx_memzero(ev, sizeof(ngx_event_t));

    ev->handler = ngx_http_datagate_state_timer;
    ev->data = dmcf;
    ev->log = cycle->log;
    ev->cancelable = 1;

    ngx_add_timer(ev, dmcf->state_interval);

    return NGX_OK;
}
