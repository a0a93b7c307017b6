
/*
 * datagate: abuse detection per (consumer, dataset).
 *
 * The detectors are core/dg_abuse.c; this file runs them for the requests
 * of a dataset or grant with "abuse:" (policy/schema.md):
 *
 *   - every admitted request updates the state of its (consumer, dataset)
 *     in the shared zone's abuse tree (one flat dg_abuse_state_t per
 *     pair, LRU-evicted, at most a quarter of the zone), under the zone's
 *     lock; it survives reloads with the zone, and its volume baselines
 *     restarts with datagate_state (_state.c);
 *   - with datagate_redis and Redis ready, the same request also goes to
 *     the script DG_ABUSE_LUA (one EVALSHA nobody waits for): the
 *     cluster's counts decide, and the zone's are the fallback used when
 *     Redis is not ready or the call fails;
 *   - an anomaly is reported once (the detector starts afresh): a [warn]
 *     line, datagate_anomalies_total{consumer,dataset,kind}, an audit
 *     record of kind "anomaly", and with Redis a PUBLISH on
 *     datagate:anomalies;
 *   - action suspend: the consumer is suspended for suspend_for, here at
 *     once (the zone's abuse_susp tree) and, with Redis, as the incident
 *     control datagate:suspended:consumer:ID with that expiry (SET EX NX,
 *     so a suspension set by hand is never shortened) and its message on
 *     datagate:events; "datagate unsuspend consumer ID" lifts both.
 *     Without Redis the request that tipped it is refused too; with Redis
 *     the requests after the reply are.
 */


#include "ngx_http_datagate.h"
#include "dg_abuse.h"
#include "dg_gcra.h"
#include "dg_rstate.h"

#include <hiredis/hiredis.h>
#include <openssl/rand.h>


#define NGX_HTTP_DATAGATE_ABUSE_SHARE    4       /* of the zone, at most */
#define NGX_HTTP_DATAGATE_ABUSE_EVICT    32      /* nodes per allocation */
#define NGX_HTTP_DATAGATE_ABUSE_BRIDGE   1000    /* ms: the zone's record
                                                    after Redis has it */
#define NGX_HTTP_DATAGATE_ABUSE_REPLY    8       /* DG_ABUSE_LUA returns */
#define NGX_HTTP_DATAGATE_ABUSE_ARGS     16      /* KEYS and ARGV */
#define NGX_HTTP_DATAGATE_ABUSE_DETAIL   256
#define NGX_HTTP_DATAGATE_ABUSE_MSG      2048    /* a SIEM message */
#define NGX_HTTP_DATAGATE_ABUSE_ID_ARG   (2 * 16 + 2 * 10 + 4)
                                                 /* one id in ARGV[11] */
#define NGX_HTTP_DATAGATE_ABUSE_SPLIT    1000000000ULL  /* value parts */
#define NGX_HTTP_DATAGATE_ABUSE_SUSPEND  "datagate-abuse"

#define NGX_HTTP_DATAGATE_ABUSE_KEY                                         \
    (2 * DG_RS_ID_MAX + 2)               /* CONSUMER|DATASET */

/*
 * The records of an answer, for the records-per-hour detector: the
 * masker's count of the records it passed, once it keeps one in the
 * request's context; until then no answer adds records.
 */
#define ngx_http_datagate_abuse_records(ctx)   0


/* the state of one (consumer, dataset) in sh->abuse */
typedef struct {
    ngx_str_node_t                  sn;         /* str -> the key */
    ngx_queue_t                     queue;
    size_t                          size;       /* of this allocation */
    dg_abuse_state_t               *st;         /* right after it */
} ngx_http_datagate_anode_t;


/* a consumer suspended by abuse detection, in sh->abuse_susp */
typedef struct {
    ngx_str_node_t                  sn;
    ngx_queue_t                     queue;
    uint64_t                        until;      /* ms */
    uint64_t                        bridge;     /* ms: Redis holds it from
                                                   here on; 0: it does not */
    u_char                          data[1];
} ngx_http_datagate_snode_t;


/* what an anomaly report needs, with no request behind it */
typedef struct {
    u_char                          consumer[DG_RS_ID_MAX + 1];
    u_char                          dataset[DG_RS_ID_MAX + 1];
    u_char                          request_id[
                                        NGX_HTTP_DATAGATE_REQUEST_ID_MAX + 1];
    size_t                          clen;
    size_t                          dlen;
    unsigned                        fired;
    uint64_t                        value[DG_ABUSE_KINDS];
    uint64_t                        limit[DG_ABUSE_KINDS];
    uint32_t                        window;
    uint32_t                        suspend_for;
    unsigned                        action:1;
    unsigned                        cluster:1;  /* counted by Redis */
    unsigned                        more:1;     /* too many ids at once */
} ngx_http_datagate_anomaly_t;


/* one EVALSHA in flight; nobody waits for it */
typedef struct {
    ngx_http_datagate_waiter_t      wait;       /* first */
    ngx_http_datagate_main_conf_t  *dmcf;
    ngx_http_datagate_anomaly_t     a;          /* the zone's verdict */
} ngx_http_datagate_await_t;


/* a SET of the suspension in flight */
typedef struct {
    ngx_http_datagate_main_conf_t  *dmcf;
    size_t                          len;
    u_char                          id[1];
} ngx_http_datagate_aset_t;


static dg_abuse_state_t *ngx_http_datagate_abuse_node(
    ngx_http_datagate_main_conf_t *dmcf, u_char *key, size_t klen,
    const dg_abuse_conf_t *c);
static void ngx_http_datagate_abuse_redis(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, const dg_abuse_conf_t *c,
    u_char *key, size_t klen, dg_abuse_id_t *ids, size_t nids,
    const dg_abuse_input_t *in, ngx_http_datagate_anomaly_t *a);
static void ngx_http_datagate_abuse_reply(void *data, void *reply);
static void ngx_http_datagate_abuse_fire(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, ngx_http_datagate_anomaly_t *a);
static void ngx_http_datagate_abuse_suspend(
    ngx_http_datagate_main_conf_t *dmcf, ngx_log_t *log,
    ngx_http_datagate_anomaly_t *a);
static void ngx_http_datagate_abuse_set_reply(void *data, void *reply);
static void ngx_http_datagate_abuse_ignore(void *data, void *reply);
static ngx_http_datagate_snode_t *ngx_http_datagate_abuse_susp(
    ngx_http_datagate_main_conf_t *dmcf, u_char *id, size_t len,
    ngx_uint_t create);
static void ngx_http_datagate_abuse_unsusp(
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_snode_t *node);


/* ---- configuration -------------------------------------------------- */

ngx_int_t
ngx_http_datagate_abuse_conf(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf)
{
    size_t       i, n;
    dg_bytes_t   part;
    u_char       key[DG_SHA256_LEN];

    /* a key every node has: one identifier is one identifier everywhere */

    if (!dmcf->secret_generated) {
        part.data = "abuse-ids";
        part.len = sizeof("abuse-ids") - 1;

        if (dg_hmac_sha256(dmcf->secret, dmcf->secret_len, &part, 1, key)
            != 0)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "datagate: HMAC() failed");
            return NGX_ERROR;
        }

        ngx_memcpy(dmcf->abuse_key, key, DG_ABUSE_KEY_LEN);
        dmcf->abuse_key_set = 1;

        return NGX_OK;
    }

    if (!dmcf->redis_enabled) {
        return NGX_OK;
    }

    n = 0;

    for (i = 0; i < dmcf->policy->ndatasets; i++) {
        n += dmcf->policy->datasets[i].abuse.set;
    }

    for (i = 0; i < dmcf->policy->ngrants; i++) {
        n += dmcf->policy->grants[i].abuse.set;
    }

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                      "datagate: no \"datagate_secret\": abuse detection "
                      "hashes identifiers with a key of this node, so in "
                      "redis each node counts an identifier apart");
    }

    return NGX_OK;
}


void
ngx_http_datagate_abuse_zone(ngx_http_datagate_main_conf_t *dmcf)
{
    if (RAND_bytes(dmcf->sh->abuse_key, DG_ABUSE_KEY_LEN) == 1) {
        dmcf->sh->abuse_key_set = 1;
    }
}


static const u_char *
ngx_http_datagate_abuse_key(ngx_http_datagate_main_conf_t *dmcf)
{
    if (dmcf->abuse_key_set) {
        return dmcf->abuse_key;
    }

    return dmcf->sh->abuse_key_set ? dmcf->sh->abuse_key : NULL;
}


/* ---- the request ---------------------------------------------------- */

dg_reason_e
ngx_http_datagate_abuse_suspended(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx)
{
    uint64_t                        now;
    ngx_uint_t                      held;
    ngx_http_datagate_snode_t      *node;
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (dmcf->sh == NULL || ctx->consumer == NULL
        || dmcf->sh->abuse_nsusp == 0)
    {
        return DG_R_OK;
    }

    now = ngx_http_datagate_now_ms();
    held = 0;

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    node = ngx_http_datagate_abuse_susp(dmcf,
                                        (u_char *) ctx->consumer->id.data,
                                        ctx->consumer->id.len, 0);

    if (node != NULL) {
        if (now >= node->until || (node->bridge && now >= node->bridge)) {
            /* over, or Redis holds it now (the incident check) */
            ngx_http_datagate_abuse_unsusp(dmcf, node);

        } else {
            held = 1;
        }
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    return held ? DG_R_CONSUMER_SUSPENDED : DG_R_OK;
}


/* calls per hour a new consumer is held to: its quota's hourly share */
static double
ngx_http_datagate_abuse_base(ngx_http_datagate_ctx_t *ctx)
{
    const dg_limit_t  *l;

    l = (ctx->grant != NULL && ctx->grant->limit.quota)
        ? &ctx->grant->limit : &ctx->dataset->limit;

    if (l->quota == 0 || l->quota_period == 0) {
        return 0.0;
    }

    return (double) l->quota * 3600.0 / l->quota_period;
}


static size_t
ngx_http_datagate_abuse_pair(ngx_http_datagate_ctx_t *ctx, u_char *key)
{
    u_char  *p;

    if (ctx->consumer->id.len > DG_RS_ID_MAX
        || ctx->dataset->id.len > DG_RS_ID_MAX)
    {
        return 0;
    }

    p = ngx_cpymem(key, ctx->consumer->id.data, ctx->consumer->id.len);
    *p++ = '|';
    p = ngx_cpymem(p, ctx->dataset->id.data, ctx->dataset->id.len);

    return p - key;
}


static void
ngx_http_datagate_abuse_anomaly(ngx_http_datagate_ctx_t *ctx,
    const dg_abuse_conf_t *c, ngx_http_datagate_anomaly_t *a)
{
    ngx_memzero(a, sizeof(ngx_http_datagate_anomaly_t));

    a->clen = ctx->consumer->id.len;
    ngx_memcpy(a->consumer, ctx->consumer->id.data, a->clen);
    a->dlen = ctx->dataset->id.len;
    ngx_memcpy(a->dataset, ctx->dataset->id.data, a->dlen);
    ngx_cpystrn(a->request_id, ctx->request_id, sizeof(a->request_id));

    a->window = c->window;
    a->action = c->action;
    a->suspend_for = c->suspend_for;
    a->limit[0] = c->distinct;
    a->limit[1] = c->sequential;
}


/* one request (ids, a call) or one answer (records) through the
 * detectors; *suspended: it suspended the consumer here and now */
static void
ngx_http_datagate_abuse_run(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, const dg_abuse_conf_t *c,
    dg_abuse_id_t *ids, size_t nids, int more, dg_abuse_input_t *in,
    ngx_uint_t *suspended)
{
    size_t                          klen;
    ngx_uint_t                      i;
    dg_abuse_state_t               *st;
    dg_abuse_result_t               res;
    ngx_http_datagate_anomaly_t     a;
    ngx_http_datagate_main_conf_t  *dmcf;
    u_char                          key[NGX_HTTP_DATAGATE_ABUSE_KEY];

    *suspended = 0;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    klen = ngx_http_datagate_abuse_pair(ctx, key);
    if (klen == 0) {
        return;
    }

    ngx_memzero(&res, sizeof(dg_abuse_result_t));

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    st = ngx_http_datagate_abuse_node(dmcf, key, klen, c);
    if (st) {
        dg_abuse_observe(st, c, ngx_time(), ids, nids, more, in, &res);
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    ngx_http_datagate_abuse_anomaly(ctx, c, &a);
    a.fired = res.fired;
    a.more = more ? 1 : 0;

    for (i = 0; i < DG_ABUSE_KINDS; i++) {
        a.value[i] = res.value[i];
    }

    a.limit[2] = (uint64_t) res.calls_limit;
    a.limit[3] = (uint64_t) res.records_limit;

    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "datagate: abuse %*s: %uz ids, distinct %uL, run %uD, "
                   "fired %ui", klen, key, nids, res.distinct,
                   (ngx_uint_t) res.fired);

    if (dmcf->redis_enabled && ngx_http_datagate_redis_ready()) {
        /* the cluster's counts decide; the zone's if the call fails */
        ngx_http_datagate_abuse_redis(r, dmcf, c, key, klen, ids, nids, in,
                                      &a);
        return;
    }

    if (a.fired) {
        ngx_http_datagate_abuse_fire(dmcf, r->connection->log, &a);
        *suspended = a.action == DG_ABUSE_SUSPEND;
    }
}


ngx_int_t
ngx_http_datagate_abuse_check(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx)
{
    int                             more;
    char                           *scratch;
    size_t                          nids, max;
    ngx_uint_t                      suspended;
    const u_char                   *key;
    dg_abuse_id_t                  *ids;
    dg_abuse_input_t                in;
    const dg_abuse_conf_t          *c;
    ngx_http_datagate_main_conf_t  *dmcf;

    if (ctx->consumer == NULL || ctx->dataset == NULL) {
        return NGX_OK;
    }

    c = dg_abuse_for(ctx->dataset, ctx->grant);
    if (c == NULL) {
        return NGX_OK;
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (dmcf->sh == NULL) {
        return NGX_OK;
    }

    key = ngx_http_datagate_abuse_key(dmcf);

    ids = NULL;
    nids = 0;
    more = 0;

    if ((c->distinct || c->sequential) && key != NULL) {
        /* one identifier needs a byte and a separator at least */
        max = (r->uri.len + r->args.len) / 2 + 2;
        if (max > DG_ABUSE_IDS_MAX) {
            max = DG_ABUSE_IDS_MAX;
        }

        ids = ngx_palloc(r->pool, max * sizeof(dg_abuse_id_t));
        scratch = ngx_pnalloc(r->pool, ngx_max(r->uri.len, r->args.len) + 1);

        if (ids == NULL || scratch == NULL) {
            return NGX_ERROR;
        }

        nids = dg_abuse_ids(c, key, (const char *) r->uri.data, r->uri.len,
                            (const char *) r->args.data, r->args.len,
                            scratch, ids, max, &more);

        /* more than max of them cannot be: only more than IDS_MAX */
        more = more && max == DG_ABUSE_IDS_MAX;
    }

    ngx_memzero(&in, sizeof(dg_abuse_input_t));
    in.calls = 1;
    in.base_calls = ngx_http_datagate_abuse_base(ctx);

    ngx_http_datagate_abuse_run(r, ctx, c, ids, nids, more, &in, &suspended);

    return suspended ? NGX_DECLINED : NGX_OK;
}


void
ngx_http_datagate_abuse_log(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx)
{
    uint64_t                        records;
    ngx_uint_t                      suspended;
    dg_abuse_input_t                in;
    const dg_abuse_conf_t          *c;
    ngx_http_datagate_main_conf_t  *dmcf;

    if (!ctx->allowed || ctx->consumer == NULL || ctx->dataset == NULL) {
        return;
    }

    records = ngx_http_datagate_abuse_records(ctx);

    c = dg_abuse_for(ctx->dataset, ctx->grant);

    if (records == 0 || c == NULL || c->factor <= 0) {
        return;
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (dmcf->sh == NULL) {
        return;
    }

    ngx_memzero(&in, sizeof(dg_abuse_input_t));
    in.records = records;

    ngx_http_datagate_abuse_run(r, ctx, c, NULL, 0, 0, &in, &suspended);
}


/* ---- the zone ------------------------------------------------------- */

/* the state of key shaped for c, made or remade; zone locked */
static dg_abuse_state_t *
ngx_http_datagate_abuse_node(ngx_http_datagate_main_conf_t *dmcf,
    u_char *key, size_t klen, const dg_abuse_conf_t *c)
{
    size_t                      size, cap, head;
    uint32_t                    hash;
    ngx_uint_t                  n;
    ngx_str_t                   name;
    ngx_queue_t                *q;
    ngx_http_datagate_tree_t   *t;
    ngx_http_datagate_anode_t  *node, *old, *last;

    t = &dmcf->sh->abuse;

    name.data = key;
    name.len = klen;
    hash = ngx_crc32_short(key, klen);

    old = (ngx_http_datagate_anode_t *)
              ngx_str_rbtree_lookup(&t->rbtree, &name, hash);

    if (old != NULL) {
        ngx_queue_remove(&old->queue);
        ngx_queue_insert_head(&t->queue, &old->queue);

        if (dg_abuse_state_fits(old->st, c)) {
            return old->st;
        }
    }

    /* a new node: header, the state (8-aligned), the key */

    head = ngx_align(sizeof(ngx_http_datagate_anode_t), 8);
    size = head + dg_abuse_state_size(c) + klen;
    cap = dmcf->shm_zone->shm.size / NGX_HTTP_DATAGATE_ABUSE_SHARE;

    node = NULL;

    for (n = 0; n < NGX_HTTP_DATAGATE_ABUSE_EVICT; n++) {

        if (dmcf->sh->abuse_bytes + size <= cap) {
            node = ngx_slab_alloc_locked(dmcf->shpool, size);
            if (node != NULL) {
                break;
            }
        }

        /* full: the least recently used pair forgets its state */

        if (ngx_queue_empty(&t->queue)) {
            break;
        }

        q = ngx_queue_last(&t->queue);
        last = ngx_queue_data(q, ngx_http_datagate_anode_t, queue);

        if (last == old) {
            break;
        }

        if (!dmcf->sh->abuse_full) {
            dmcf->sh->abuse_full = 1;
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "datagate: abuse detection has a quarter of the "
                          "zone \"%V\" and forgets the pairs least "
                          "recently used; a larger datagate_cache zone "
                          "keeps more", &dmcf->shm_zone->shm.name);
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&t->rbtree, &last->sn.node);
        dmcf->sh->abuse_bytes -= last->size;
        ngx_slab_free_locked(dmcf->shpool, last);
    }

    if (node == NULL) {
        return old ? old->st : NULL;
    }

    ngx_memzero(node, head);

    node->size = size;
    node->st = (dg_abuse_state_t *) ((u_char *) node + head);
    dg_abuse_state_init(node->st, c);

    node->sn.node.key = hash;
    node->sn.str.data = (u_char *) node->st + node->st->size;
    node->sn.str.len = klen;
    ngx_memcpy(node->sn.str.data, key, klen);

    if (old != NULL) {
        /* another shape (a new "distinct"): the baselines stay */
        dg_abuse_state_carry(node->st, old->st);

        ngx_queue_remove(&old->queue);
        ngx_rbtree_delete(&t->rbtree, &old->sn.node);
        dmcf->sh->abuse_bytes -= old->size;
        ngx_slab_free_locked(dmcf->shpool, old);
    }

    ngx_rbtree_insert(&t->rbtree, &node->sn.node);
    ngx_queue_insert_head(&t->queue, &node->queue);
    dmcf->sh->abuse_bytes += size;

    return node->st;
}


/* a suspension node of consumer id; zone locked */
static ngx_http_datagate_snode_t *
ngx_http_datagate_abuse_susp(ngx_http_datagate_main_conf_t *dmcf, u_char *id,
    size_t len, ngx_uint_t create)
{
    uint32_t                    hash;
    ngx_str_t                   name;
    ngx_http_datagate_tree_t   *t;
    ngx_http_datagate_snode_t  *node;

    t = &dmcf->sh->abuse_susp;

    name.data = id;
    name.len = len;
    hash = ngx_crc32_short(id, len);

    node = (ngx_http_datagate_snode_t *)
               ngx_str_rbtree_lookup(&t->rbtree, &name, hash);

    if (node != NULL || !create) {
        return node;
    }

    /* never evicted: a suspension must not be forgotten for memory */
    node = ngx_slab_alloc_locked(dmcf->shpool,
                                 offsetof(ngx_http_datagate_snode_t, data)
                                 + len);
    if (node == NULL) {
        return NULL;
    }

    node->sn.node.key = hash;
    node->sn.str.data = node->data;
    node->sn.str.len = len;
    node->until = 0;
    node->bridge = 0;
    ngx_memcpy(node->data, id, len);

    ngx_rbtree_insert(&t->rbtree, &node->sn.node);
    ngx_queue_insert_head(&t->queue, &node->queue);
    (void) ngx_atomic_fetch_add(&dmcf->sh->abuse_nsusp, 1);

    return node;
}


static void
ngx_http_datagate_abuse_unsusp(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_snode_t *node)
{
    ngx_queue_remove(&node->queue);
    ngx_rbtree_delete(&dmcf->sh->abuse_susp.rbtree, &node->sn.node);
    ngx_slab_free_locked(dmcf->shpool, node);
    (void) ngx_atomic_fetch_add(&dmcf->sh->abuse_nsusp, -1);
}


/* ---- the cluster ---------------------------------------------------- */

static void
ngx_http_datagate_abuse_redis(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, const dg_abuse_conf_t *c,
    u_char *key, size_t klen, dg_abuse_id_t *ids, size_t nids,
    const dg_abuse_input_t *in, ngx_http_datagate_anomaly_t *a)
{
    u_char                     *p, *idarg, *k1, *k2;
    size_t                      lens[NGX_HTTP_DATAGATE_ABUSE_ARGS];
    ngx_uint_t                  i, j, n;
    const char                 *args[NGX_HTTP_DATAGATE_ABUSE_ARGS];
    ngx_http_datagate_await_t  *w;
    u_char                      num[NGX_HTTP_DATAGATE_ABUSE_ARGS]
                                   [NGX_INT64_LEN + 24];

    idarg = ngx_pnalloc(r->pool, nids * NGX_HTTP_DATAGATE_ABUSE_ID_ARG + 1);
    k1 = ngx_pnalloc(r->pool, sizeof(DG_RS_ABUSE_HLL) + klen);
    k2 = ngx_pnalloc(r->pool, sizeof(DG_RS_ABUSE_HLL) + klen);
    w = ngx_http_datagate_waiter_create(NULL, NULL,
                                        sizeof(ngx_http_datagate_await_t));

    if (idarg == NULL || k1 == NULL || k2 == NULL || w == NULL) {
        if (w) {
            ngx_http_datagate_waiter_free(&w->wait);
        }

        /* no memory: the zone's verdict */
        if (a->fired) {
            ngx_http_datagate_abuse_fire(dmcf, r->connection->log, a);
        }

        return;
    }

    w->dmcf = dmcf;
    w->a = *a;

    /* KEYS */

    p = ngx_cpymem(k1, DG_RS_ABUSE, sizeof(DG_RS_ABUSE) - 1);
    p = ngx_cpymem(p, key, klen);
    args[0] = (const char *) k1;
    lens[0] = p - k1;

    p = ngx_cpymem(k2, DG_RS_ABUSE_HLL, sizeof(DG_RS_ABUSE_HLL) - 1);
    p = ngx_cpymem(p, key, klen);
    args[1] = (const char *) k2;
    lens[1] = p - k2;

    /* ARGV[11]: HASH:FAMILY:HIGH:LOW;... */

    p = idarg;

    for (i = 0; i < nids; i++) {
        if (i) {
            *p++ = ';';
        }

        p = ngx_sprintf(p, "%016xL:", ids[i].hash);

        if (ids[i].numeric) {
            p = ngx_sprintf(p, "%xL:%uL:%uL", ids[i].family,
                            ids[i].value / NGX_HTTP_DATAGATE_ABUSE_SPLIT,
                            ids[i].value % NGX_HTTP_DATAGATE_ABUSE_SPLIT);
        } else {
            p = ngx_cpymem(p, "::", 2);
        }
    }

    /* ARGV */

    n = 0;
    j = 0;

#define ngx_http_datagate_abuse_arg(fmt, v)                                   \
    do {                                                                      \
        args[2 + n] = (const char *) num[j];                                  \
        lens[2 + n] = ngx_sprintf(num[j], fmt, v) - num[j];                   \
        n++;                                                                  \
        j++;                                                                  \
    } while (0)

    ngx_http_datagate_abuse_arg("%uD", c->distinct);
    ngx_http_datagate_abuse_arg("%uD", c->window);
    ngx_http_datagate_abuse_arg("%uD", c->sequential);
    ngx_http_datagate_abuse_arg("%.3f", c->factor);
    ngx_http_datagate_abuse_arg("%uD", c->floor);
    ngx_http_datagate_abuse_arg("%uD", c->record_floor);
    ngx_http_datagate_abuse_arg("%uL", in->calls);
    ngx_http_datagate_abuse_arg("%uL", in->records);
    ngx_http_datagate_abuse_arg("%.3f", in->base_calls);
    ngx_http_datagate_abuse_arg("%.3f", in->base_records);

    args[2 + n] = (const char *) idarg;
    lens[2 + n] = p - idarg;
    n++;

    ngx_http_datagate_abuse_arg("%d", a->more ? 1 : 0);
    ngx_http_datagate_abuse_arg("%d", DG_UTC_OFFSET);
    ngx_http_datagate_abuse_arg("%d", DG_ABUSE_REDIS_IDLE);

#undef ngx_http_datagate_abuse_arg

    if (ngx_http_datagate_redis_script(NGX_HTTP_DATAGATE_SCRIPT_ABUSE,
                                       ngx_http_datagate_abuse_reply, w, 2,
                                       (int) (2 + n), args, lens)
        != NGX_OK)
    {
        ngx_http_datagate_waiter_free(&w->wait);

        if (a->fired) {
            ngx_http_datagate_abuse_fire(dmcf, r->connection->log, a);
        }
    }
}


static void
ngx_http_datagate_abuse_reply(void *data, void *reply)
{
    long long                       v[NGX_HTTP_DATAGATE_ABUSE_REPLY];
    ngx_uint_t                      i, ok;
    redisReply                     *rr;
    ngx_http_datagate_await_t      *w;
    ngx_http_datagate_anomaly_t    *a;

    w = data;
    a = &w->a;
    rr = reply;
    ok = 0;

    ngx_http_datagate_waiter_detach(&w->wait);

    if (rr && rr->type == REDIS_REPLY_ARRAY
        && rr->elements == NGX_HTTP_DATAGATE_ABUSE_REPLY)
    {
        ok = 1;

        for (i = 0; i < NGX_HTTP_DATAGATE_ABUSE_REPLY; i++) {
            if (rr->element[i]->type != REDIS_REPLY_INTEGER
                || rr->element[i]->integer < 0)
            {
                ok = 0;
                break;
            }

            v[i] = rr->element[i]->integer;
        }

    } else if (rr && rr->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "datagate: redis abuse script: %*s",
                      (size_t) rr->len, rr->str);
    }

    if (ok) {
        /* the cluster's verdict: fired bits, distinct, longest run,
         * calls, their limit, records, their limit, the run that fired */
        a->fired = (unsigned) v[0] & ((1u << DG_ABUSE_KINDS) - 1);
        a->cluster = 1;
        a->value[0] = (uint64_t) v[1];
        a->value[1] = (uint64_t) v[7];
        a->value[2] = (uint64_t) v[3];
        a->limit[2] = (uint64_t) v[4];
        a->value[3] = (uint64_t) v[5];
        a->limit[3] = (uint64_t) v[6];
    }

    /* else: the zone's verdict, as it was */

    if (a->fired) {
        ngx_http_datagate_abuse_fire(w->dmcf, ngx_cycle->log, a);
    }

    ngx_free(w);
}


/* ---- the actions ---------------------------------------------------- */

static size_t
ngx_http_datagate_abuse_detail(ngx_http_datagate_anomaly_t *a, ngx_uint_t k,
    u_char *buf)
{
    u_char  d[16];

    switch (k) {

    case 0:
        if (a->more) {
            return ngx_sprintf(buf, "more than %d identifiers in one "
                               "request", DG_ABUSE_IDS_MAX) - buf;
        }

        (void) dg_abuse_duration_str(a->window, (char *) d, sizeof(d));

        return ngx_sprintf(buf, "%uL distinct identifiers within %s "
                           "(limit %uL)", a->value[0], d, a->limit[0])
               - buf;

    case 1:
        return ngx_sprintf(buf, "a sequential run of %uL identifiers "
                           "(limit %uL)", a->value[1], a->limit[1]) - buf;

    case 2:
        return ngx_sprintf(buf, "%uL calls this hour (limit %uL)",
                           a->value[2], a->limit[2]) - buf;

    default:
        return ngx_sprintf(buf, "%uL records this hour (limit %uL)",
                           a->value[3], a->limit[3]) - buf;
    }
}


static void
ngx_http_datagate_abuse_audit(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, ngx_http_datagate_anomaly_t *a, ngx_uint_t k,
    u_char *detail, size_t dlen)
{
    u_char     *buf, tbuf[DG_AUDIT_MAX_TIME];
    size_t      len;
    dg_arec_t   rec;

    if (dmcf->audit_file == NULL) {
        return;
    }

    buf = ngx_alloc(DG_AUDIT_RECORD_MAX, log);
    if (buf == NULL
        || dg_arec_init(&rec, (char *) buf, DG_AUDIT_RECORD_MAX) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "datagate: no memory for the anomaly's audit record");
        if (buf) {
            ngx_free(buf);
        }
        return;
    }

    len = ngx_http_datagate_audit_time(tbuf);

    dg_arec_str_max(&rec, "time", (char *) tbuf, len, DG_AUDIT_MAX_TIME);
    dg_arec_cstr(&rec, "kind", "anomaly");
    dg_arec_cstr(&rec, "anomaly", dg_abuse_kind_names[k]);
    dg_arec_str_max(&rec, "consumer", (char *) a->consumer, a->clen,
                    DG_AUDIT_MAX_ID);
    dg_arec_str_max(&rec, "dataset", (char *) a->dataset, a->dlen,
                    DG_AUDIT_MAX_ID);
    dg_arec_str_max(&rec, "detail", (char *) detail, dlen,
                    DG_AUDIT_MAX_DETAIL);
    dg_arec_uint(&rec, "value", a->value[k]);
    dg_arec_uint(&rec, "limit", a->limit[k]);
    dg_arec_cstr(&rec, "action",
                 a->action == DG_ABUSE_SUSPEND ? "suspend" : "alert");

    if (a->action == DG_ABUSE_SUSPEND) {
        dg_arec_uint(&rec, "suspend_for", a->suspend_for);
    }

    dg_arec_cstr(&rec, "scope", a->cluster ? "cluster" : "node");
    dg_arec_str_max(&rec, "request_id", (char *) a->request_id,
                    ngx_strlen(a->request_id), DG_AUDIT_MAX_REQUEST_ID);
    dg_arec_str_max(&rec, "node", (char *) ngx_cycle->hostname.data,
                    ngx_cycle->hostname.len, DG_AUDIT_MAX_CLIENT);
    dg_arec_str_max(&rec, "policy", dmcf->policy->version_hex, 16,
                    DG_AUDIT_MAX_POLICY);

    ngx_http_datagate_audit_event(dmcf, log, &rec);

    ngx_free(buf);
}


/* PUBLISH datagate:anomalies {...}: for a SIEM, nobody waits for it */
static void
ngx_http_datagate_abuse_publish(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_anomaly_t *a, ngx_uint_t k, u_char *detail,
    size_t dlen)
{
    u_char       *p, *end, msg[NGX_HTTP_DATAGATE_ABUSE_MSG];
    u_char        tbuf[DG_AUDIT_MAX_TIME];
    size_t        lens[3], tlen;
    const char   *argv[3];

    if (!dmcf->redis_enabled || !ngx_http_datagate_redis_ready()) {
        return;
    }

    tlen = ngx_http_datagate_audit_time(tbuf);

    p = msg;
    end = msg + sizeof(msg);

#define ngx_http_datagate_abuse_json(key, s, len)                             \
    do {                                                                      \
        p = ngx_slprintf(p, end, ",\"%s\":\"", key);                          \
        if (end - p > 2) {                                                    \
            p += dg_json_escape((char *) p, end - p - 2, (uint8_t *) (s),     \
                                len, NULL);                                   \
        }                                                                     \
        p = ngx_slprintf(p, end, "\"");                                       \
    } while (0)

    p = ngx_slprintf(p, end, "{\"time\":\"%*s\"", tlen, tbuf);
    ngx_http_datagate_abuse_json("node", ngx_cycle->hostname.data,
                                 ngx_cycle->hostname.len);
    ngx_http_datagate_abuse_json("consumer", a->consumer, a->clen);
    ngx_http_datagate_abuse_json("dataset", a->dataset, a->dlen);
    p = ngx_slprintf(p, end, ",\"kind\":\"%s\"", dg_abuse_kind_names[k]);
    ngx_http_datagate_abuse_json("detail", detail, dlen);
    p = ngx_slprintf(p, end, ",\"value\":%uL,\"limit\":%uL,\"action\":\"%s\"",
                     a->value[k], a->limit[k],
                     a->action == DG_ABUSE_SUSPEND ? "suspend" : "alert");

    if (a->action == DG_ABUSE_SUSPEND) {
        p = ngx_slprintf(p, end, ",\"suspend_for\":%uD", a->suspend_for);
    }

    p = ngx_slprintf(p, end, ",\"scope\":\"%s\"",
                     a->cluster ? "cluster" : "node");
    ngx_http_datagate_abuse_json("request_id", a->request_id,
                                 ngx_strlen(a->request_id));
    p = ngx_slprintf(p, end, ",\"policy\":\"%*s\"}", (size_t) 16,
                     dmcf->policy->version_hex);

#undef ngx_http_datagate_abuse_json

    if (p == end) {
        return;     /* cannot be: ids and the detail are bounded */
    }

    argv[0] = "PUBLISH";
    lens[0] = sizeof("PUBLISH") - 1;
    argv[1] = DG_RS_ANOMALIES;
    lens[1] = sizeof(DG_RS_ANOMALIES) - 1;
    argv[2] = (const char *) msg;
    lens[2] = p - msg;

    (void) ngx_http_datagate_redis_command(ngx_http_datagate_abuse_ignore,
                                           NULL, 3, argv, lens);
}


static void
ngx_http_datagate_abuse_fire(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, ngx_http_datagate_anomaly_t *a)
{
    size_t       dlen;
    ngx_str_t    labels[3];
    ngx_uint_t   k;
    u_char       detail[NGX_HTTP_DATAGATE_ABUSE_DETAIL];
    u_char       d[16];

    for (k = 0; k < DG_ABUSE_KINDS; k++) {

        if (!(a->fired & (1u << k))) {
            continue;
        }

        dlen = ngx_http_datagate_abuse_detail(a, k, detail);

        if (a->action == DG_ABUSE_SUSPEND) {
            (void) dg_abuse_duration_str(a->suspend_for, (char *) d,
                                         sizeof(d));
        }

        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "datagate: anomaly %s: consumer \"%*s\" on dataset "
                      "\"%*s\": %*s, counted %s; %s%s (request_id=%s)",
                      dg_abuse_kind_names[k], a->clen, a->consumer, a->dlen,
                      a->dataset, dlen, detail,
                      a->cluster ? "cluster-wide" : "on this node",
                      a->action == DG_ABUSE_SUSPEND
                      ? "the consumer is suspended for " : "alert only",
                      a->action == DG_ABUSE_SUSPEND ? (char *) d : "",
                      a->request_id);

        labels[0].data = a->consumer;
        labels[0].len = a->clen;
        labels[1].data = a->dataset;
        labels[1].len = a->dlen;
        labels[2].data = (u_char *) dg_abuse_kind_names[k];
        labels[2].len = ngx_strlen(dg_abuse_kind_names[k]);

        ngx_http_datagate_stat_add(dmcf, NGX_HTTP_DATAGATE_STAT_ANOMALY,
                                   labels, 3, 1);

        ngx_http_datagate_abuse_audit(dmcf, log, a, k, detail, dlen);
        ngx_http_datagate_abuse_publish(dmcf, a, k, detail, dlen);
    }

    if (a->action == DG_ABUSE_SUSPEND) {
        ngx_http_datagate_abuse_suspend(dmcf, log, a);
    }
}


static void
ngx_http_datagate_abuse_suspend(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, ngx_http_datagate_anomaly_t *a)
{
    u_char                     *p, note[512], ts[32];
    u_char                      d[16];
    size_t                      lens[6], klen;
    uint64_t                    until;
    ngx_tm_t                    tm;
    ngx_uint_t                  k;
    const char                 *argv[6];
    ngx_http_datagate_aset_t   *w;
    ngx_http_datagate_snode_t  *node;
    u_char                      key[DG_RS_KEY_MAX];
    u_char                      msg[DG_RS_KEY_MAX + 32];
    u_char                      ex[NGX_INT64_LEN];

    /* here, at once */

    until = ngx_http_datagate_now_ms() + (uint64_t) a->suspend_for * 1000;

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    node = ngx_http_datagate_abuse_susp(dmcf, a->consumer, a->clen, 1);

    if (node != NULL) {
        if (node->until < until) {
            node->until = until;
        }

        node->bridge = 0;
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    if (node == NULL) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "datagate: no zone memory to suspend consumer "
                      "\"%*s\" on this node", a->clen, a->consumer);
    }

    if (!dmcf->redis_enabled) {
        return;
    }

    /* the incident control, cluster-wide, expiring with it */

    klen = dg_rs_key((char *) key, sizeof(key), DG_RS_CONSUMER,
                     (const char *) a->consumer, a->clen, NULL, 0);
    if (klen == 0) {
        return;
    }

    ngx_gmtime(ngx_time(), &tm);
    ngx_sprintf(ts, "%4d-%02d-%02dT%02d:%02d:%02dZ%Z", tm.ngx_tm_year,
                tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
                tm.ngx_tm_min, tm.ngx_tm_sec);

    for (k = 0; k < DG_ABUSE_KINDS && !(a->fired & (1u << k)); k++) {
        /* void */
    }

    (void) dg_abuse_duration_str(a->suspend_for, (char *) d, sizeof(d));

    p = ngx_snprintf(note, sizeof(note), "suspend at=%s by="
                     NGX_HTTP_DATAGATE_ABUSE_SUSPEND " reason=%s on %*s "
                     "for=%s node=%V", ts,
                     k < DG_ABUSE_KINDS ? dg_abuse_kind_names[k] : "anomaly",
                     a->dlen, a->dataset, d, &ngx_cycle->hostname);

    w = ngx_alloc(sizeof(ngx_http_datagate_aset_t) + a->clen, log);
    if (w == NULL) {
        return;
    }

    w->dmcf = dmcf;
    w->len = a->clen;
    ngx_memcpy(w->id, a->consumer, a->clen);

    argv[0] = "SET";
    lens[0] = 3;
    argv[1] = (const char *) key;
    lens[1] = klen;
    argv[2] = (const char *) note;
    lens[2] = p - note;
    argv[3] = "EX";
    lens[3] = 2;
    argv[4] = (const char *) ex;
    lens[4] = ngx_sprintf(ex, "%uD", a->suspend_for) - ex;
    argv[5] = "NX";             /* never shortens one set by hand */
    lens[5] = 2;

    if (ngx_http_datagate_redis_command(ngx_http_datagate_abuse_set_reply, w,
                                        6, argv, lens)
        != NGX_OK)
    {
        /* Redis cannot take it: this node holds it for suspend_for */
        ngx_free(w);
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "datagate: redis cannot take the suspension of "
                      "consumer \"%*s\": it holds on this node only",
                      a->clen, a->consumer);
        return;
    }

    argv[0] = "PUBLISH";
    lens[0] = sizeof("PUBLISH") - 1;
    argv[1] = DG_RS_CHANNEL;
    lens[1] = sizeof(DG_RS_CHANNEL) - 1;
    argv[2] = (const char *) msg;
    lens[2] = ngx_sprintf(msg, "suspend consumer %*s", a->clen, a->consumer)
              - msg;

    (void) ngx_http_datagate_redis_command(ngx_http_datagate_abuse_ignore,
                                           NULL, 3, argv, lens);
}


static void
ngx_http_datagate_abuse_set_reply(void *data, void *reply)
{
    redisReply                 *rr;
    ngx_http_datagate_aset_t   *w;
    ngx_http_datagate_snode_t  *node;

    w = data;
    rr = reply;

    if (rr != NULL && (rr->type == REDIS_REPLY_STATUS
                       || rr->type == REDIS_REPLY_NIL))
    {
        /*
         * Redis holds it (set now, or by hand before: NX): the incident
         * check answers for it everywhere, and "datagate unsuspend"
         * lifts it; the zone's record bridges until the message is in
         */
        ngx_shmtx_lock(&w->dmcf->shpool->mutex);

        node = ngx_http_datagate_abuse_susp(w->dmcf, w->id, w->len, 0);
        if (node != NULL) {
            node->bridge = ngx_http_datagate_now_ms()
                           + NGX_HTTP_DATAGATE_ABUSE_BRIDGE;
        }

        ngx_shmtx_unlock(&w->dmcf->shpool->mutex);

    } else {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "datagate: redis did not take the suspension of "
                      "consumer \"%*s\": it holds on this node only",
                      w->len, w->id);
    }

    ngx_free(w);
}


static void
ngx_http_datagate_abuse_ignore(void *data, void *reply)
{
    if (data) {
        ngx_free(data);
    }
}


void
ngx_http_datagate_abuse_event(ngx_http_datagate_main_conf_t *dmcf,
    u_char *msg, size_t len)
{
    ngx_http_datagate_snode_t  *node;

    static const char  prefix[] = "unsuspend consumer ";

    if (dmcf->sh == NULL || dmcf->sh->abuse_nsusp == 0
        || len <= sizeof(prefix) - 1
        || ngx_strncmp(msg, prefix, sizeof(prefix) - 1) != 0)
    {
        return;
    }

    msg += sizeof(prefix) - 1;
    len -= sizeof(prefix) - 1;

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    node = ngx_http_datagate_abuse_susp(dmcf, msg, len, 0);
    if (node != NULL) {
        ngx_http_datagate_abuse_unsusp(dmcf, node);
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    if (node != NULL) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "datagate: consumer \"%*s\" unsuspended", len, msg);
    }
}


/* ---- datagate_state --------------------------------------------------- */

#define NGX_HTTP_DATAGATE_ABUSE_LINE     "abuse "
#define NGX_HTTP_DATAGATE_ABUSE_SUSP     "abuse-suspend "


/* one pair's volume part, or one suspension, copied out of the zone */
typedef struct {
    size_t                          klen;
    u_char                          key[NGX_HTTP_DATAGATE_ABUSE_KEY];
    uint64_t                        until;      /* a suspension, ms */
    ngx_uint_t                      susp;
    dg_abuse_state_t                head;       /* without registers */
} ngx_http_datagate_acopy_t;

typedef struct {
    ngx_uint_t                      n;
    ngx_http_datagate_acopy_t       e[1];
} ngx_http_datagate_acopies_t;


/* the shape a state read back from the file takes until its first
 * request gives it its own: volume only */
static const dg_abuse_conf_t  ngx_http_datagate_abuse_volume_only = {
    .set = 1
};


void *
ngx_http_datagate_abuse_copy(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log)
{
    uint64_t                      now;
    ngx_uint_t                    n;
    ngx_queue_t                  *q;
    ngx_http_datagate_anode_t    *an;
    ngx_http_datagate_snode_t    *sn;
    ngx_http_datagate_acopy_t    *e;
    ngx_http_datagate_acopies_t  *c;

    now = ngx_http_datagate_now_ms();
    n = 0;

    for (q = ngx_queue_head(&dmcf->sh->abuse.queue);
         q != ngx_queue_sentinel(&dmcf->sh->abuse.queue);
         q = ngx_queue_next(q))
    {
        n++;
    }

    for (q = ngx_queue_head(&dmcf->sh->abuse_susp.queue);
         q != ngx_queue_sentinel(&dmcf->sh->abuse_susp.queue);
         q = ngx_queue_next(q))
    {
        n++;
    }

    if (n == 0) {
        return NULL;
    }

    c = ngx_alloc(sizeof(ngx_http_datagate_acopies_t)
                  + n * sizeof(ngx_http_datagate_acopy_t), log);
    if (c == NULL) {
        return NULL;
    }

    c->n = 0;

    for (q = ngx_queue_head(&dmcf->sh->abuse.queue);
         q != ngx_queue_sentinel(&dmcf->sh->abuse.queue);
         q = ngx_queue_next(q))
    {
        an = ngx_queue_data(q, ngx_http_datagate_anode_t, queue);

        if (an->st->hour == 0 || an->sn.str.len > sizeof(e->key)) {
            continue;           /* nothing learned yet */
        }

        e = &c->e[c->n++];
        e->susp = 0;
        e->klen = an->sn.str.len;
        ngx_memcpy(e->key, an->sn.str.data, e->klen);
        ngx_memcpy(&e->head, an->st, offsetof(dg_abuse_state_t, regs));
    }

    for (q = ngx_queue_head(&dmcf->sh->abuse_susp.queue);
         q != ngx_queue_sentinel(&dmcf->sh->abuse_susp.queue);
         q = ngx_queue_next(q))
    {
        sn = ngx_queue_data(q, ngx_http_datagate_snode_t, queue);

        /* Redis keeps those it holds; over ones are over */
        if (sn->bridge || sn->until <= now || sn->sn.str.len > DG_RS_ID_MAX)
        {
            continue;
        }

        e = &c->e[c->n++];
        e->susp = 1;
        e->until = sn->until;
        e->klen = sn->sn.str.len;
        ngx_memcpy(e->key, sn->sn.str.data, e->klen);
    }

    return c;
}


size_t
ngx_http_datagate_abuse_format(void *copy, u_char *p)
{
    u_char                       *start;
    size_t                        size, n;
    ngx_uint_t                    i;
    ngx_http_datagate_acopy_t    *e;
    ngx_http_datagate_acopies_t  *c;

    c = copy;
    size = 0;
    start = p;

    for (i = 0; c && i < c->n; i++) {
        e = &c->e[i];

        if (p == NULL) {
            size += sizeof(NGX_HTTP_DATAGATE_ABUSE_SUSP) + e->klen + 1
                    + NGX_INT64_LEN + 1 + DG_ABUSE_VOLUME_TEXT_MAX;
            continue;
        }

        if (e->susp) {
            p = ngx_sprintf(p, NGX_HTTP_DATAGATE_ABUSE_SUSP "%*s %uL\n",
                            e->klen, e->key, e->until);
            continue;
        }

        n = dg_abuse_volume_encode(&e->head,
                                   (char *) p + e->klen
                                   + sizeof(NGX_HTTP_DATAGATE_ABUSE_LINE),
                                   DG_ABUSE_VOLUME_TEXT_MAX);
        if (n == 0) {
            continue;
        }

        p = ngx_sprintf(p, NGX_HTTP_DATAGATE_ABUSE_LINE "%*s ", e->klen,
                        e->key);
        p += n;
        *p++ = '\n';
    }

    return p ? (size_t) (p - start) : size;
}


void
ngx_http_datagate_abuse_free(void *copy)
{
    if (copy) {
        ngx_free(copy);
    }
}


ngx_int_t
ngx_http_datagate_abuse_load(ngx_http_datagate_main_conf_t *dmcf, u_char *p,
    u_char *end)
{
    u_char                     *sp, *bar;
    ngx_int_t                   until;
    dg_abuse_state_t           *st;
    ngx_http_datagate_snode_t  *node;

    if (end - p > (ssize_t) sizeof(NGX_HTTP_DATAGATE_ABUSE_SUSP) - 1
        && ngx_strncmp(p, NGX_HTTP_DATAGATE_ABUSE_SUSP,
                       sizeof(NGX_HTTP_DATAGATE_ABUSE_SUSP) - 1) == 0)
    {
        p += sizeof(NGX_HTTP_DATAGATE_ABUSE_SUSP) - 1;

        sp = ngx_strlchr(p, end, ' ');
        if (sp == NULL || !dg_rs_id_ok((char *) p, sp - p)) {
            return NGX_ERROR;
        }

        until = ngx_atoi(sp + 1, end - sp - 1);
        if (until == NGX_ERROR) {
            return NGX_ERROR;
        }

        if ((uint64_t) until <= ngx_http_datagate_now_ms()) {
            return NGX_OK;      /* over */
        }

        node = ngx_http_datagate_abuse_susp(dmcf, p, sp - p, 1);
        if (node == NULL) {
            return NGX_ERROR;
        }

        node->until = (uint64_t) until;

        return NGX_OK;
    }

    if (end - p <= (ssize_t) sizeof(NGX_HTTP_DATAGATE_ABUSE_LINE) - 1
        || ngx_strncmp(p, NGX_HTTP_DATAGATE_ABUSE_LINE,
                       sizeof(NGX_HTTP_DATAGATE_ABUSE_LINE) - 1) != 0)
    {
        return NGX_DECLINED;
    }

    p += sizeof(NGX_HTTP_DATAGATE_ABUSE_LINE) - 1;

    sp = ngx_strlchr(p, end, ' ');
    bar = sp ? ngx_strlchr(p, sp, '|') : NULL;

    if (bar == NULL || !dg_rs_id_ok((char *) p, bar - p)
        || !dg_rs_id_ok((char *) bar + 1, sp - bar - 1))
    {
        return NGX_ERROR;
    }

    st = ngx_http_datagate_abuse_node(dmcf, p, sp - p,
                                      &ngx_http_datagate_abuse_volume_only);
    if (st == NULL) {
        return NGX_ERROR;
    }

    if (dg_abuse_volume_decode(st, (char *) sp + 1, end - sp - 1) != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}
