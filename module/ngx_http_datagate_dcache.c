
/*
 * datagate: the decision, dg_decide() behind two cache tiers:
 *
 *   1. the shared zone (datagate_cache ttl=): a hit costs one lookup and
 *      no Redis I/O;
 *   2. with datagate_redis and datagate_secret, Redis: key
 *      datagate:decision:VER16:CONSUMER|DATASET|PURPOSE|METHOD|APPROVAL,
 *      value "DGD1 REASON GRANT PURPOSE PLAN EXPIRES MAC", the MAC an
 *      HMAC-SHA-256 over the full policy version, the key and the value
 *      (key HMAC-SHA-256(secret, "redis-decision")).  A miss, or a value
 *      that does not verify, is computed here and written back (SET EX,
 *      nobody waits for it): a value written by anyone without the secret
 *      never decides anything.  Redis unreachable or slow: computed here,
 *      the policy is local.
 *
 * A decision is a function of the policy version and the request tuple
 * alone: incident controls are checked after it, and a request that
 * involves a run-time grant bypasses both tiers, so no pub/sub event
 * leaves a cached decision wrong.  The version in both keys keeps a new
 * policy from ever seeing an old decision.
 */


#include "ngx_http_datagate.h"
#include "dg_rstate.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>


#define NGX_HTTP_DATAGATE_MAX_KEYPART      256

#define NGX_HTTP_DATAGATE_PLAN_NONE        -1
#define NGX_HTTP_DATAGATE_PLAN_GRANT       (DG_LEVEL_MAX + 1)

/* the Redis tier of the decision cache (docs/redis.md) */
#define NGX_HTTP_DATAGATE_DKEY_PREFIX      "datagate:decision:"
#define NGX_HTTP_DATAGATE_DKEY_MAX                                          \
    (sizeof(NGX_HTTP_DATAGATE_DKEY_PREFIX) + 16 + 3 * (DG_RS_ID_MAX + 1)    \
     + 8 + 33)
#define NGX_HTTP_DATAGATE_DVAL_MAGIC       "DGD1 "
#define NGX_HTTP_DATAGATE_DVAL_MAX         256


/* a decision in the shared zone; ngx_str_node_t first (see the header) */
typedef struct {
    ngx_str_node_t                  sn;
    ngx_queue_t                     queue;
    time_t                          expires;
    int32_t                         grant;      /* index, -1 */
    int32_t                         purpose;    /* index, -1 */
    int8_t                          plan;       /* clearance 0..4, GRANT */
    uint8_t                         reason;
    u_char                          data[1];    /* the key */
} ngx_http_datagate_cnode_t;


/* one GET of a decision in flight; outlives its request */
typedef struct {
    ngx_http_datagate_waiter_t      wait;       /* first */
    size_t                          klen;
    u_char                          key[1];
} ngx_http_datagate_dwait_t;


static ngx_int_t ngx_http_datagate_dec_encode(const dg_policy_t *p,
    ngx_http_datagate_ctx_t *ctx, dg_decision_t *d, int *grant,
    int *purpose, int *plan);
static ngx_int_t ngx_http_datagate_dec_decode(const dg_policy_t *p,
    ngx_http_datagate_ctx_t *ctx, int grant, int purpose, int plan,
    ngx_uint_t reason, time_t expires, dg_decision_t *d);
static size_t ngx_http_datagate_dkey(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_ctx_t *ctx, unsigned method, u_char *key);
static ngx_int_t ngx_http_datagate_dval_mac(
    ngx_http_datagate_main_conf_t *dmcf, u_char *key, size_t klen,
    u_char *body, size_t blen, u_char *mac);
static ngx_int_t ngx_http_datagate_dcache_fetch(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, u_char *key, size_t klen);
static void ngx_http_datagate_dcache_reply(void *data, void *reply);
static ngx_int_t ngx_http_datagate_dcache_open(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_rstate_t *st,
    u_char *key, size_t klen, u_char *val, size_t vlen);
static void ngx_http_datagate_dcache_write(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx,
    unsigned method, dg_decision_t *d);
static void ngx_http_datagate_dcache_written(void *data, void *reply);
static size_t ngx_http_datagate_cache_key(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_ctx_t *ctx, unsigned method, u_char *key);
static ngx_int_t ngx_http_datagate_cache_get(
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx,
    ngx_str_t *key, uint32_t hash, dg_decision_t *d);
static void ngx_http_datagate_cache_put(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_ctx_t *ctx, ngx_str_t *key, uint32_t hash,
    dg_decision_t *d);


static ngx_uint_t  ngx_http_datagate_dval_logged;


/* ---- the decision --------------------------------------------------- */

ngx_int_t
ngx_http_datagate_decide(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx,
    dg_decision_t *d)
{
    size_t                       klen, rklen;
    uint32_t                     hash;
    unsigned                     method;
    ngx_int_t                    rc;
    ngx_str_t                    key;
    dg_request_t                 req;
    ngx_http_datagate_rstate_t  *st;
    u_char                       buf[DG_SHA256_LEN + 16
                                     + 2 * (2 + NGX_HTTP_DATAGATE_MAX_KEYPART)];
    u_char                       rkey[NGX_HTTP_DATAGATE_DKEY_MAX];

    /* a method no dataset of this policy names is DG_METHOD_OTHER:
     * refused, whatever its name (the cache key holds the bits); every
     * override a provider's framework may obey must be allowed too */
    method = dg_policy_method_bit(dmcf->policy,
                                  (const char *) r->method_name.data,
                                  r->method_name.len)
             | ngx_http_datagate_method_overrides(r, dmcf->policy);

    ctx->method = method;       /* decided again with it (_incident.c) */

    ngx_memzero(&req, sizeof(dg_request_t));

    req.consumer = ctx->consumer;
    req.dataset = ctx->dataset;
    req.purpose.data = (const char *) ctx->purpose.data;
    req.purpose.len = ctx->purpose.len;
    req.approval.data = (const char *) ctx->approval.data;
    req.approval.len = ctx->approval.len;
    req.method = method;
    req.now = ngx_time();
    req.extra_grants = ctx->extra;
    req.nextra = ctx->nextra;

    klen = 0;

    if (ctx->nextra == 0 && dmcf->sh != NULL) {
        klen = ngx_http_datagate_cache_key(dmcf, ctx, method, buf);
    }

    if (klen == 0) {
        ctx->cache = NGX_HTTP_DATAGATE_CACHE_BYPASS;
        dg_decide(dmcf->policy, &req, d);
        return NGX_OK;
    }

    key.data = buf;
    key.len = klen;
    hash = ngx_murmur_hash2(buf, klen);

    st = ctx->pending;

    if (st && st->dec == NGX_HTTP_DATAGATE_RS_WAIT) {
        return NGX_AGAIN;
    }

    if (st && st->dec == NGX_HTTP_DATAGATE_RS_DONE) {

        /* back from the Redis tier */

        st->dec = NGX_HTTP_DATAGATE_RS_NONE;

        if (st->dec_found
            && ngx_http_datagate_dec_decode(dmcf->policy, ctx, st->dec_grant,
                                            st->dec_purpose, st->dec_plan,
                                            st->dec_reason, st->dec_expires,
                                            d)
               == NGX_OK)
        {
            ctx->cache = NGX_HTTP_DATAGATE_CACHE_REDIS;
            ngx_http_datagate_cache_put(dmcf, ctx, &key, hash, d);

            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "datagate: decision from redis: %s",
                           dg_reason_code(d->reason));
            return NGX_OK;
        }

        dg_decide(dmcf->policy, &req, d);
        ngx_http_datagate_cache_put(dmcf, ctx, &key, hash, d);

        if (st->dec_write || st->dec_found) {
            ngx_http_datagate_dcache_write(r, dmcf, ctx, method, d);
        }

        return NGX_OK;
    }

    if (ngx_http_datagate_cache_get(dmcf, ctx, &key, hash, d) == NGX_OK) {
        ctx->cache = NGX_HTTP_DATAGATE_CACHE_HIT;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "datagate: decision cache hit: %s",
                       dg_reason_code(d->reason));
        return NGX_OK;
    }

    ctx->cache = NGX_HTTP_DATAGATE_CACHE_MISS;

    if (dmcf->dcache_redis && dmcf->cache_ttl > 0
        && ngx_http_datagate_redis_ready())
    {
        rklen = ngx_http_datagate_dkey(dmcf, ctx, method, rkey);

        if (rklen) {
            st = ngx_http_datagate_rstate(r, ctx);
            if (st == NULL) {
                return NGX_ERROR;
            }

            rc = ngx_http_datagate_dcache_fetch(r, ctx, rkey, rklen);

            if (rc == NGX_OK) {
                st->dec = NGX_HTTP_DATAGATE_RS_WAIT;
                st->dec_found = 0;
                st->dec_write = 0;
                return NGX_AGAIN;
            }

            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }

            /* NGX_DECLINED: Redis not ready, decided here */
        }
    }

    dg_decide(dmcf->policy, &req, d);

    ngx_http_datagate_cache_put(dmcf, ctx, &key, hash, d);

    return NGX_OK;
}



/* ---- the shared zone ------------------------------------------------ */

static size_t
ngx_http_datagate_cache_key(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_ctx_t *ctx, unsigned method, u_char *key)
{
    u_char    *p;
    uint32_t   v;

    if (ctx->purpose.len > NGX_HTTP_DATAGATE_MAX_KEYPART
        || ctx->approval.len > NGX_HTTP_DATAGATE_MAX_KEYPART)
    {
        return 0;
    }

    p = ngx_cpymem(key, dmcf->policy->version, DG_SHA256_LEN);

    v = ctx->consumer->index;
    p = ngx_cpymem(p, &v, sizeof(v));
    v = ctx->dataset->index;
    p = ngx_cpymem(p, &v, sizeof(v));
    v = method;
    p = ngx_cpymem(p, &v, sizeof(v));

    /* absent and empty headers differ */
    *p++ = ctx->purpose.data ? 1 : 0;
    *p++ = (u_char) ctx->purpose.len;
    p = ngx_cpymem(p, ctx->purpose.data, ctx->purpose.len);

    *p++ = ctx->approval.data ? 1 : 0;
    *p++ = (u_char) ctx->approval.len;
    p = ngx_cpymem(p, ctx->approval.data, ctx->approval.len);

    return p - key;
}


/* a decision as indexes into this policy (what both tiers keep) */
static ngx_int_t
ngx_http_datagate_dec_encode(const dg_policy_t *p,
    ngx_http_datagate_ctx_t *ctx, dg_decision_t *d, int *grant,
    int *purpose, int *plan)
{
    ngx_uint_t  k;

    *grant = -1;

    if (d->grant) {
        if (d->grant < p->grants || d->grant >= p->grants + p->ngrants) {
            return NGX_DECLINED;
        }

        *grant = d->grant - p->grants;
    }

    *purpose = -1;

    if (d->purpose) {
        if (d->purpose < p->purposes
            || d->purpose >= p->purposes + p->npurposes)
        {
            return NGX_DECLINED;
        }

        *purpose = d->purpose - p->purposes;
    }

    *plan = NGX_HTTP_DATAGATE_PLAN_NONE;

    if (d->plan) {
        if (d->grant && d->plan == &d->grant->plan) {
            *plan = NGX_HTTP_DATAGATE_PLAN_GRANT;

        } else {
            for (k = 0; k <= DG_LEVEL_MAX; k++) {
                if (d->plan == &ctx->dataset->plan_by_clearance[k]) {
                    *plan = (int) k;
                    break;
                }
            }

            if (*plan == NGX_HTTP_DATAGATE_PLAN_NONE) {
                return NGX_DECLINED;
            }
        }
    }

    if (d->reason == DG_R_OK && *plan == NGX_HTTP_DATAGATE_PLAN_NONE) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* and back, checked against the request: NGX_OK or NGX_DECLINED */
static ngx_int_t
ngx_http_datagate_dec_decode(const dg_policy_t *p,
    ngx_http_datagate_ctx_t *ctx, int grant, int purpose, int plan,
    ngx_uint_t reason, time_t expires, dg_decision_t *d)
{
    const dg_grant_t  *g;

    if (reason >= DG_R_MAX
        || (grant >= 0 && (size_t) grant >= p->ngrants)
        || (purpose >= 0 && (size_t) purpose >= p->npurposes)
        || plan < NGX_HTTP_DATAGATE_PLAN_NONE
        || plan > NGX_HTTP_DATAGATE_PLAN_GRANT)
    {
        return NGX_DECLINED;
    }

    g = grant >= 0 ? &p->grants[grant] : NULL;

    if (g && (g->consumer != ctx->consumer || g->dataset != ctx->dataset)) {
        return NGX_DECLINED;
    }

    ngx_memzero(d, sizeof(dg_decision_t));

    d->reason = reason;
    d->grant = g;
    d->purpose = purpose >= 0 ? &p->purposes[purpose] : NULL;
    d->expires = expires;

    if (plan == NGX_HTTP_DATAGATE_PLAN_GRANT) {
        if (g == NULL) {
            return NGX_DECLINED;
        }

        d->plan = &g->plan;

    } else if (plan >= 0) {
        d->plan = &ctx->dataset->plan_by_clearance[plan];
    }

    if (reason == DG_R_OK && d->plan == NULL) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_datagate_cache_get(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_ctx_t *ctx, ngx_str_t *key, uint32_t hash,
    dg_decision_t *d)
{
    time_t                      now;
    ngx_int_t                   rc;
    ngx_str_node_t             *sn;
    ngx_http_datagate_cnode_t  *cn;

    now = ngx_time();
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    sn = ngx_str_rbtree_lookup(&dmcf->sh->cache.rbtree, key, hash);

    if (sn != NULL) {
        cn = (ngx_http_datagate_cnode_t *) sn;

        if (cn->expires > now
            && ngx_http_datagate_dec_decode(dmcf->policy, ctx, cn->grant,
                                            cn->purpose, cn->plan,
                                            cn->reason, cn->expires, d)
               == NGX_OK)
        {
            ngx_queue_remove(&cn->queue);
            ngx_queue_insert_head(&dmcf->sh->cache.queue, &cn->queue);

            rc = NGX_OK;

        } else {
            ngx_queue_remove(&cn->queue);
            ngx_rbtree_delete(&dmcf->sh->cache.rbtree, &cn->sn.node);
            ngx_slab_free_locked(dmcf->shpool, cn);
        }
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    return rc;
}


static void
ngx_http_datagate_cache_evict(ngx_http_datagate_main_conf_t *dmcf,
    ngx_uint_t force, time_t now)
{
    ngx_uint_t                  n;
    ngx_queue_t                *q;
    ngx_http_datagate_cnode_t  *cn;

    /* force == 0: at most two expired entries; else the force oldest */

    n = force ? force : 2;

    while (n--) {

        if (ngx_queue_empty(&dmcf->sh->cache.queue)) {
            return;
        }

        q = ngx_queue_last(&dmcf->sh->cache.queue);
        cn = ngx_queue_data(q, ngx_http_datagate_cnode_t, queue);

        if (!force && cn->expires > now) {
            return;
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&dmcf->sh->cache.rbtree, &cn->sn.node);
        ngx_slab_free_locked(dmcf->shpool, cn);
    }
}


static void
ngx_http_datagate_cache_put(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_ctx_t *ctx, ngx_str_t *key, uint32_t hash,
    dg_decision_t *d)
{
    int                         plan, grant, purpose;
    time_t                      now, expires;
    ngx_str_node_t             *sn;
    ngx_http_datagate_cnode_t  *cn;

    now = ngx_time();

    if (dmcf->cache_ttl <= 0) {
        return;
    }

    /* only what can be rebuilt from indexes into this policy */

    if (ngx_http_datagate_dec_encode(dmcf->policy, ctx, d, &grant, &purpose,
                                     &plan)
        != NGX_OK)
    {
        return;
    }

    expires = now + dmcf->cache_ttl;

    if (d->expires > 0 && d->expires < expires) {
        expires = d->expires;
    }

    if (expires <= now) {
        return;
    }

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    ngx_http_datagate_cache_evict(dmcf, 0, now);

    sn = ngx_str_rbtree_lookup(&dmcf->sh->cache.rbtree, key, hash);

    if (sn != NULL) {
        /* another worker was faster */
        cn = (ngx_http_datagate_cnode_t *) sn;
        ngx_queue_remove(&cn->queue);

    } else {
        cn = ngx_slab_alloc_locked(dmcf->shpool,
                                   offsetof(ngx_http_datagate_cnode_t, data)
                                   + key->len);
        if (cn == NULL) {
            ngx_http_datagate_cache_evict(dmcf, 16, now);

            cn = ngx_slab_alloc_locked(dmcf->shpool,
                                       offsetof(ngx_http_datagate_cnode_t,
                                                data)
                                       + key->len);
            if (cn == NULL) {
                ngx_shmtx_unlock(&dmcf->shpool->mutex);
                return;
            }
        }

        ngx_memcpy(cn->data, key->data, key->len);
        cn->sn.str.data = cn->data;
        cn->sn.str.len = key->len;
        cn->sn.node.key = hash;

        ngx_rbtree_insert(&dmcf->sh->cache.rbtree, &cn->sn.node);
    }

    cn->expires = expires;
    cn->grant = grant;
    cn->purpose = purpose;
    cn->plan = (int8_t) plan;
    cn->reason = (uint8_t) d->reason;

    ngx_queue_insert_head(&dmcf->sh->cache.queue, &cn->queue);

    ngx_shmtx_unlock(&dmcf->shpool->mutex);
}


/* ---- the decision cache's Redis tier ---------------------------------- */

/* a reason dg_decide() gives, the only ones the Redis tier keeps */
static ngx_uint_t
ngx_http_datagate_dec_reason_ok(ngx_uint_t reason)
{
    switch (reason) {
    case DG_R_OK:
    case DG_R_DATASET_NOT_SHARED:
    case DG_R_PURPOSE_REQUIRED:
    case DG_R_PURPOSE_UNKNOWN:
    case DG_R_PURPOSE_NOT_GRANTED:
    case DG_R_GRANT_EXPIRED:
    case DG_R_APPROVAL_REQUIRED:
    case DG_R_METHOD_NOT_GRANTED:
    case DG_R_LEVEL_EXCEEDED:
        return 1;
    default:
        return 0;
    }
}


/*
 * datagate:decision:VER16:CONSUMER|DATASET|PURPOSE|METHOD|APPROVAL, or 0
 * when the request stays local (no known purpose: cheap to decide, and
 * the key space stays bounded).  APPROVAL is "*" when no grant of the
 * pair asks for one (any value decides the same), "-" when absent, else
 * 32 hex digits of its SHA-256.  Ids cannot hold '|' (dg_rs_id_ok), so
 * the key names one tuple only.
 */
static size_t
ngx_http_datagate_dkey(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_ctx_t *ctx, unsigned method, u_char *key)
{
    u_char             *q;
    size_t              i;
    ngx_uint_t          need;
    unsigned int        mdlen;
    const dg_str_t     *cid, *did;
    const dg_grant_t   *g;
    const dg_policy_t  *p;
    u_char              md[EVP_MAX_MD_SIZE];

    p = dmcf->policy;
    cid = &ctx->consumer->id;
    did = &ctx->dataset->id;

    if (ctx->purpose.data == NULL
        || !dg_rs_id_ok((const char *) ctx->purpose.data, ctx->purpose.len)
        || !dg_rs_id_ok(cid->data, cid->len)
        || !dg_rs_id_ok(did->data, did->len)
        || dg_policy_purpose(p, (const char *) ctx->purpose.data,
                             ctx->purpose.len)
           == NULL)
    {
        return 0;
    }

    need = 0;

    for (i = 0; i < p->ngrants; i++) {
        g = &p->grants[i];

        if (g->consumer == ctx->consumer && g->dataset == ctx->dataset
            && g->approval.len)
        {
            need = 1;
            break;
        }
    }

    q = ngx_cpymem(key, NGX_HTTP_DATAGATE_DKEY_PREFIX,
                   sizeof(NGX_HTTP_DATAGATE_DKEY_PREFIX) - 1);
    q = ngx_cpymem(q, p->version_hex, 16);
    *q++ = ':';
    q = ngx_cpymem(q, cid->data, cid->len);
    *q++ = '|';
    q = ngx_cpymem(q, did->data, did->len);
    *q++ = '|';
    q = ngx_cpymem(q, ctx->purpose.data, ctx->purpose.len);
    q = ngx_sprintf(q, "|%xi|", (ngx_uint_t) method);

    if (!need) {
        *q++ = '*';

    } else if (ctx->approval.data == NULL) {
        *q++ = '-';

    } else {
        mdlen = 0;

        if (EVP_Digest(ctx->approval.data, ctx->approval.len, md, &mdlen,
                       EVP_sha256(), NULL)
            != 1
            || mdlen != DG_SHA256_LEN)
        {
            return 0;
        }

        q = ngx_hex_dump(q, md, 16);
    }

    return q - key;
}


/* hex HMAC-SHA-256(K, policy version "\n" key "\n" body) into mac[64] */
static ngx_int_t
ngx_http_datagate_dval_mac(ngx_http_datagate_main_conf_t *dmcf, u_char *key,
    size_t klen, u_char *body, size_t blen, u_char *mac)
{
    u_char       *p;
    dg_bytes_t    part;
    u_char        md[DG_SHA256_LEN];
    u_char        buf[DG_SHA256_HEX_LEN + 1 + NGX_HTTP_DATAGATE_DKEY_MAX + 1
                      + NGX_HTTP_DATAGATE_DVAL_MAX];

    if (klen > NGX_HTTP_DATAGATE_DKEY_MAX
        || blen > NGX_HTTP_DATAGATE_DVAL_MAX)
    {
        return NGX_ERROR;
    }

    p = ngx_cpymem(buf, dmcf->policy->version_hex, DG_SHA256_HEX_LEN);
    *p++ = '\n';
    p = ngx_cpymem(p, key, klen);
    *p++ = '\n';
    p = ngx_cpymem(p, body, blen);

    part.data = buf;
    part.len = p - buf;

    if (dg_hmac_sha256(dmcf->dcache_key, DG_SHA256_LEN, &part, 1, md) != 0) {
        return NGX_ERROR;
    }

    ngx_hex_dump(mac, md, DG_SHA256_LEN);

    return NGX_OK;
}


static ngx_int_t
ngx_http_datagate_dcache_fetch(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, u_char *key, size_t klen)
{
    size_t                      lens[2];
    ngx_int_t                   rc;
    const char                 *argv[2];
    ngx_http_datagate_dwait_t  *w;

    w = ngx_http_datagate_waiter_create(r, ctx,
                                        sizeof(ngx_http_datagate_dwait_t)
                                        + klen);
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->klen = klen;
    ngx_memcpy(w->key, key, klen);

    argv[0] = "GET";
    lens[0] = 3;
    argv[1] = (const char *) w->key;
    lens[1] = klen;

    rc = ngx_http_datagate_redis_command(ngx_http_datagate_dcache_reply, w,
                                         2, argv, lens);
    if (rc != NGX_OK) {
        ngx_http_datagate_waiter_free(&w->wait);
        return rc;
    }

    return NGX_OK;
}


static void
ngx_http_datagate_dcache_reply(void *data, void *reply)
{
    ngx_int_t                    rc;
    redisReply                  *rr;
    ngx_http_request_t          *r;
    ngx_http_datagate_ctx_t     *ctx;
    ngx_http_datagate_dwait_t   *w;
    ngx_http_datagate_rstate_t  *st;

    w = data;
    r = w->wait.r;
    ctx = w->wait.ctx;

    ngx_http_datagate_waiter_detach(&w->wait);     /* w is freed below */

    if (r == NULL) {
        ngx_free(w);
        return;
    }

    st = ctx->pending;

    if (st == NULL || st->dec != NGX_HTTP_DATAGATE_RS_WAIT) {
        ngx_free(w);
        return;
    }

    rr = reply;

    st->dec_found = 0;
    st->dec_write = 0;

    if (rr == NULL) {
        /* timed out or Redis went away: decided here, not written */

    } else if (rr->type == REDIS_REPLY_STRING) {

        rc = ngx_http_datagate_dcache_open(r, ctx, st, w->key, w->klen,
                                           (u_char *) rr->str, rr->len);

        if (rc == NGX_OK) {
            st->dec_found = 1;

        } else if (rc == NGX_DONE) {
            st->dec_write = 1;

        } else {
            if (!ngx_http_datagate_dval_logged) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "datagate: decision \"%*s\" in redis "
                              "ignored: malformed or its MAC does not "
                              "verify (not written with this "
                              "datagate_secret); decided again and "
                              "overwritten (logged once per worker)",
                              w->klen, w->key);
                ngx_http_datagate_dval_logged = 1;
            }

            st->dec_write = 1;
        }

    } else {
        /* nil: nobody decided it yet; anything else is overwritten */
        st->dec_write = 1;
    }

    ngx_free(w);

    st->dec = NGX_HTTP_DATAGATE_RS_DONE;

    ngx_http_datagate_resume(r);
}


/* signed decimal up to 12 digits, then ' ' or the end */
static ngx_int_t
ngx_http_datagate_dval_int(u_char **pos, u_char *end, int64_t *v)
{
    u_char     *p;
    int64_t     n;
    ngx_uint_t  neg, digits;

    p = *pos;
    neg = 0;

    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }

    n = 0;

    for (digits = 0; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == 12) {
            return NGX_ERROR;
        }

        n = n * 10 + (*p - '0');
    }

    if (digits == 0 || (p < end && *p != ' ')) {
        return NGX_ERROR;
    }

    *v = neg ? -n : n;
    *pos = p < end ? p + 1 : p;

    return NGX_OK;
}


/*
 * "DGD1 REASON GRANT PURPOSE PLAN EXPIRES MAC": NGX_OK when the MAC
 * verifies and the fields parse (st->dec_* set); NGX_DONE when it is
 * ours but expired; NGX_DECLINED.
 */
static ngx_int_t
ngx_http_datagate_dcache_open(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_rstate_t *st,
    u_char *key, size_t klen, u_char *val, size_t vlen)
{
    u_char                         *p, *end, *code;
    size_t                          blen, clen;
    int64_t                         v[4];
    ngx_uint_t                      i, reason;
    const char                     *name;
    ngx_http_datagate_main_conf_t  *dmcf;
    u_char                          mac[64];

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (vlen > NGX_HTTP_DATAGATE_DVAL_MAX + 65
        || vlen < sizeof(NGX_HTTP_DATAGATE_DVAL_MAGIC) - 1 + 65
        || ngx_memcmp(val, NGX_HTTP_DATAGATE_DVAL_MAGIC,
                      sizeof(NGX_HTTP_DATAGATE_DVAL_MAGIC) - 1)
           != 0)
    {
        return NGX_DECLINED;
    }

    blen = vlen - 65;

    if (val[blen] != ' '
        || ngx_http_datagate_dval_mac(dmcf, key, klen, val, blen, mac)
           != NGX_OK
        || CRYPTO_memcmp(mac, val + blen + 1, 64) != 0)
    {
        return NGX_DECLINED;
    }

    /* written by a gateway with our secret; still parsed strictly */

    p = val + sizeof(NGX_HTTP_DATAGATE_DVAL_MAGIC) - 1;
    end = val + blen;

    code = p;

    while (p < end && *p != ' ') {
        p++;
    }

    clen = p - code;

    if (p == end) {
        return NGX_DECLINED;
    }

    p++;

    reason = DG_R_MAX;

    for (i = 0; i < DG_R_MAX; i++) {
        name = dg_reason_code((dg_reason_e) i);

        if (ngx_strlen(name) == clen && ngx_strncmp(name, code, clen) == 0) {
            reason = i;
            break;
        }
    }

    if (!ngx_http_datagate_dec_reason_ok(reason)) {
        return NGX_DECLINED;
    }

    for (i = 0; i < 4; i++) {
        if (ngx_http_datagate_dval_int(&p, end, &v[i]) != NGX_OK) {
            return NGX_DECLINED;
        }
    }

    if (p != end
        || v[0] < -1 || v[0] > INT32_MAX
        || v[1] < -1 || v[1] > INT32_MAX
        || v[2] < NGX_HTTP_DATAGATE_PLAN_NONE
        || v[2] > NGX_HTTP_DATAGATE_PLAN_GRANT)
    {
        return NGX_DECLINED;
    }

    if (v[3] <= (int64_t) ngx_time()) {
        /* ours, but its time is up (another node's clock): a miss */
        return NGX_DONE;
    }

    st->dec_reason = (uint8_t) reason;
    st->dec_grant = (int32_t) v[0];
    st->dec_purpose = (int32_t) v[1];
    st->dec_plan = (int8_t) v[2];
    st->dec_expires = (time_t) v[3];

    (void) ctx;

    return NGX_OK;
}


/* SET key value EX ttl; nobody waits for it */
static void
ngx_http_datagate_dcache_write(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx,
    unsigned method, dg_decision_t *d)
{
    int          grant, purpose, plan;
    u_char      *p;
    size_t       klen, lens[5];
    time_t       now, expires;
    const char  *argv[5];
    u_char       key[NGX_HTTP_DATAGATE_DKEY_MAX];
    u_char       val[NGX_HTTP_DATAGATE_DVAL_MAX + 65];
    u_char       ttl[NGX_TIME_T_LEN];

    if (!dmcf->dcache_redis || dmcf->cache_ttl <= 0
        || !ngx_http_datagate_dec_reason_ok(d->reason)
        || !ngx_http_datagate_redis_ready())
    {
        return;
    }

    if (ngx_http_datagate_dec_encode(dmcf->policy, ctx, d, &grant, &purpose,
                                     &plan)
        != NGX_OK)
    {
        return;
    }

    klen = ngx_http_datagate_dkey(dmcf, ctx, method, key);
    if (klen == 0) {
        return;
    }

    if (key[klen - 1] != '*' && key[klen - 1] != '-' && d->reason != DG_R_OK)
    {
        /* a wrong approval number: only the right one is worth sharing,
         * so clients cannot fill Redis with their guesses */
        return;
    }

    now = ngx_time();
    expires = now + dmcf->cache_ttl;

    if (d->expires > 0 && d->expires < expires) {
        expires = d->expires;
    }

    if (expires <= now) {
        return;
    }

    p = ngx_snprintf(val, NGX_HTTP_DATAGATE_DVAL_MAX, "%s%s %d %d %d %T",
                     NGX_HTTP_DATAGATE_DVAL_MAGIC, dg_reason_code(d->reason),
                     grant, purpose, plan, expires);

    if (ngx_http_datagate_dval_mac(dmcf, key, klen, val, p - val, p + 1)
        != NGX_OK)
    {
        return;
    }

    *p = ' ';
    p += 65;

    argv[0] = "SET";
    lens[0] = 3;
    argv[1] = (const char *) key;
    lens[1] = klen;
    argv[2] = (const char *) val;
    lens[2] = p - val;
    argv[3] = "EX";
    lens[3] = 2;
    argv[4] = (const char *) ttl;
    lens[4] = ngx_sprintf(ttl, "%T", expires - now) - ttl;

    if (ngx_http_datagate_redis_command(ngx_http_datagate_dcache_written,
                                        NULL, 5, argv, lens)
        == NGX_OK)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "datagate: decision written to redis: %s",
                       dg_reason_code(d->reason));
    }
}


static void
ngx_http_datagate_dcache_written(void *data, void *reply)
{
    redisReply  *rr = reply;

    if (rr && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "datagate: redis: SET of a decision: %*s",
                      (size_t) rr->len, rr->str);
    }
}

