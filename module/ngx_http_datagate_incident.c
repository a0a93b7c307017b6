
/*
 * datagate: incident controls and run-time grants.
 *
 * For a request (certificate serial, consumer, dataset) the cluster state
 * is five Redis keys (docs/redis.md): revoked serial, suspended consumer,
 * frozen dataset, frozen grant, run-time grant.  They are read with one
 * MGET and kept in the shared zone's incidents tree, one entry per
 * (serial, consumer, dataset), so most requests need no Redis I/O:
 *
 *   - fresh (read less than NGX_HTTP_DATAGATE_INCIDENT_TTL ago and of
 *     the current incident_gen): answered from the zone; from half its
 *     life on, the first request also starts one background MGET, so a
 *     steady flow of requests never finds it expired;
 *   - absent, expired, or invalidated by a pub/sub message (incident_gen
 *     moved), Redis up: the request waits for one MGET, at most the
 *     per-operation timeout (then falls back to an entry within stale=);
 *   - Redis not ready (breaker open): answered from an entry within
 *     datagate_redis stale=; without one, a control it still knows
 *     answers its 403, anything else 503 policy_unavailable, at once.
 *
 * Every node SUBSCRIBEs to datagate:events (_redis.c); a message bumps
 * incident_gen, which invalidates every entry of the zone, so a change
 * made with the datagate CLI is seen by every node within one round trip.
 * A change written without a message: an entry's age counts from the
 * moment its MGET was sent, and no request is answered from an entry older
 * than the TTL while Redis is up, so it is in force for every request
 * that starts NGX_HTTP_DATAGATE_INCIDENT_TTL after it.
 *
 * Long answers check the same entries again while their body goes out
 * (ngx_http_datagate_incident_recheck, for _watch.c), from the zone
 * alone.
 *
 * Run-time grants are verified (HMAC, core/dg_rstate.c) and compiled
 * against this worker's policy once per distinct value; a value that does
 * not verify or compile is ignored and logged once.
 *
 * Without datagate_redis nothing is revoked and there are no run-time
 * grants: the policy file is the whole truth.
 */


#include "ngx_http_datagate.h"
#include "dg_rstate.h"
#include "dg_util.h"

#include <hiredis/hiredis.h>


#define NGX_HTTP_DATAGATE_INCIDENT_TTL      500     /* ms */
#define NGX_HTTP_DATAGATE_INCIDENT_RENEW    (NGX_HTTP_DATAGATE_INCIDENT_TTL / 2)
#define NGX_HTTP_DATAGATE_INCIDENT_KEYS     5
#define NGX_HTTP_DATAGATE_CGRANT_MAX        64      /* per worker */
#define NGX_HTTP_DATAGATE_TUPLE_MAX         (3 * (DG_RS_ID_MAX + 1))

/* the dataset of a catalogue request's tuple: an id no policy can hold
 * (ids begin with a letter or digit), so its entry is its own; only the
 * certificate's and the consumer's controls are read from it */
#define NGX_HTTP_DATAGATE_NO_DATASET        "-"
#define NGX_HTTP_DATAGATE_INC_CATALOGUE                                     \
    (NGX_HTTP_DATAGATE_INC_REVOKED|NGX_HTTP_DATAGATE_INC_SUSPENDED)


/* shared zone entry; the rbtree is an ngx_str_node_t tree */
typedef struct {
    ngx_str_node_t                  sn;         /* str -> data */
    ngx_queue_t                     queue;
    uint64_t                        fetched;    /* ms, wall clock */
    uint64_t                        refreshing; /* ms: a refresh until */
    ngx_atomic_uint_t               gen;
    uint32_t                        flags;
    uint32_t                        glen;       /* grant envelope */
    u_char                          data[1];    /* tuple, envelope */
} ngx_http_datagate_inode_t;


/* one MGET in flight; outlives its request */
typedef struct {
    ngx_http_datagate_waiter_t      wait;       /* first */
    ngx_http_datagate_main_conf_t  *dmcf;
    ngx_atomic_uint_t               gen;        /* at the start */
    uint64_t                        sent;       /* ms, wall clock */
    size_t                          tlen;
    u_char                          tuple[1];
} ngx_http_datagate_ifetch_t;


/* a run-time grant compiled by this worker */
typedef struct {
    ngx_queue_t                     queue;
    dg_grant_t                     *grant;      /* NULL: does not verify */
    ngx_uint_t                      refs;
    size_t                          len;
    u_char                          env[1];     /* the value as read */
} ngx_http_datagate_cgrant_t;


/* the keys of a request */
typedef struct {
    u_char                          tuple[NGX_HTTP_DATAGATE_TUPLE_MAX];
    size_t                          tlen;
    char                            keys[NGX_HTTP_DATAGATE_INCIDENT_KEYS]
                                        [DG_RS_KEY_MAX];
    size_t                          klen[NGX_HTTP_DATAGATE_INCIDENT_KEYS];
} ngx_http_datagate_ikeys_t;


static ngx_int_t ngx_http_datagate_incident_state(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_rstate_t **stp);
static ngx_int_t ngx_http_datagate_incident_tuple(
    ngx_http_datagate_ctx_t *ctx, u_char *tuple, size_t *tlen);
static ngx_int_t ngx_http_datagate_incident_fetch(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_main_conf_t *dmcf,
    u_char *tuple, size_t tlen);
static void ngx_http_datagate_incident_reply(void *data, void *reply);
static void ngx_http_datagate_incident_store(
    ngx_http_datagate_main_conf_t *dmcf, u_char *tuple, size_t tlen,
    ngx_atomic_uint_t gen, uint64_t fetched, uint32_t flags, u_char *env,
    size_t elen);
static void ngx_http_datagate_incident_apply(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_rstate_t *st,
    uint32_t flags, u_char *env, size_t elen);
static void ngx_http_datagate_cgrant_release(void *data);
static int ngx_libc_cdecl ngx_http_datagate_control_cmp(const void *one,
    const void *two);


static ngx_queue_t  ngx_http_datagate_cgrants;
static ngx_uint_t   ngx_http_datagate_ncgrants;
static ngx_uint_t   ngx_http_datagate_nosecret_logged;


ngx_http_datagate_rstate_t *
ngx_http_datagate_rstate(ngx_http_request_t *r, ngx_http_datagate_ctx_t *ctx)
{
    if (ctx->pending == NULL) {
        ctx->pending = ngx_pcalloc(r->pool,
                                   sizeof(ngx_http_datagate_rstate_t));
    }

    return ctx->pending;
}


void
ngx_http_datagate_resume(ngx_http_request_t *r)
{
    ngx_connection_t  *c;

    c = r->connection;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_http_datagate_runtime_grants(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e *reason)
{
    ngx_int_t                    rc;
    ngx_http_datagate_rstate_t  *st;

    *reason = DG_R_OK;
    ctx->extra = NULL;
    ctx->nextra = 0;

    rc = ngx_http_datagate_incident_state(r, ctx, &st);
    if (rc != NGX_OK) {
        return rc;
    }

    /*
     * st->unavailable: the run-time grants are not known, so there are
     * none; the decision is made without them and the incident check
     * after it answers a control the zone still knows (403) or 503
     */

    if (st->extra[0]) {
        ctx->extra = st->extra;
        ctx->nextra = 1;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_datagate_incident_check(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e *reason)
{
    uint32_t                     flags;
    ngx_int_t                    rc;
    ngx_http_datagate_rstate_t  *st;

    *reason = DG_R_OK;

    rc = ngx_http_datagate_incident_state(r, ctx, &st);
    if (rc != NGX_OK) {
        return rc;
    }

    /* a known revocation or freeze wins over "unavailable"; a catalogue
     * request has no dataset to be frozen */

    flags = st->flags;

    if (ctx->catalogue) {
        flags &= NGX_HTTP_DATAGATE_INC_CATALOGUE;
    }

    if (flags & NGX_HTTP_DATAGATE_INC_REVOKED) {
        *reason = DG_R_CERT_REVOKED;

    } else if (flags & NGX_HTTP_DATAGATE_INC_SUSPENDED) {
        *reason = DG_R_CONSUMER_SUSPENDED;

    } else if (flags & NGX_HTTP_DATAGATE_INC_DS_FROZEN) {
        *reason = DG_R_DATASET_FROZEN;

    } else if ((flags & NGX_HTTP_DATAGATE_INC_GRANT_FROZEN)
               && (ctx->grant != NULL
                   || (ctx->dataset != NULL
                       && ctx->dataset->share == DG_SHARE_UNCONDITIONAL)))
    {
        /*
         * A frozen grant answers like a frozen dataset.  On an
         * unconditional dataset access does not need a grant, so the
         * freeze holds for the pair whatever grant or purpose: the
         * consumer cannot step around it by declaring another purpose
         */
        *reason = DG_R_DATASET_FROZEN;

    } else if (st->unavailable) {
        *reason = DG_R_POLICY_UNAVAILABLE;
    }

    return NGX_OK;
}


/*
 * Fill the request's state (*stp) from the zone, or start an MGET:
 * NGX_OK (st->inc DONE), NGX_AGAIN, NGX_ERROR.
 */
static ngx_int_t
ngx_http_datagate_incident_state(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_rstate_t **stp)
{
    u_char                         *env;
    size_t                          elen, tlen;
    uint32_t                        flags;
    uint64_t                        now, age;
    ngx_int_t                       ready, found, fresh, cached, refresh,
                                    nomem, rc;
    ngx_uint_t                      hash;
    ngx_str_t                       name;
    ngx_atomic_uint_t               gen;
    ngx_slab_pool_t                *shpool;
    ngx_http_datagate_inode_t      *node;
    ngx_http_datagate_rstate_t     *st;
    ngx_http_datagate_main_conf_t  *dmcf;
    u_char                          tuple[NGX_HTTP_DATAGATE_TUPLE_MAX];

    st = ngx_http_datagate_rstate(r, ctx);
    *stp = st;

    if (st == NULL) {
        return NGX_ERROR;
    }

    if (st->inc == NGX_HTTP_DATAGATE_RS_WAIT) {
        return NGX_AGAIN;
    }

    if (st->inc == NGX_HTTP_DATAGATE_RS_DONE) {
        if (st->dataset == ctx->dataset) {
            return NGX_OK;
        }

        /* an internal redirect to another dataset: ask again */
        st->inc = NGX_HTTP_DATAGATE_RS_NONE;
        st->flags = 0;
        st->unavailable = 0;
        st->stale_ok = 0;
        st->extra[0] = NULL;
    }

    st->dataset = ctx->dataset;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (!dmcf->redis_enabled || ctx->consumer == NULL
        || (ctx->dataset == NULL && !ctx->catalogue))
    {
        /* single node: the policy file is the whole truth */
        st->inc = NGX_HTTP_DATAGATE_RS_DONE;
        return NGX_OK;
    }

    if (ngx_http_datagate_incident_tuple(ctx, tuple, &tlen) != NGX_OK) {
        /* an id no key can name cannot be revoked either */
        st->inc = NGX_HTTP_DATAGATE_RS_DONE;
        return NGX_OK;
    }

    ready = ngx_http_datagate_redis_ready();
    now = ngx_http_datagate_now_ms();

    found = 0;
    fresh = 0;
    cached = 0;
    refresh = 0;
    nomem = 0;
    flags = 0;
    env = NULL;
    elen = 0;
    age = 0;

    if (dmcf->sh) {
        shpool = dmcf->shpool;
        gen = dmcf->sh->incident_gen;

        name.data = tuple;
        name.len = tlen;
        hash = ngx_crc32_short(tuple, tlen);

        ngx_shmtx_lock(&shpool->mutex);

        node = (ngx_http_datagate_inode_t *)
                   ngx_str_rbtree_lookup(&dmcf->sh->incidents.rbtree, &name,
                                         hash);

        if (node) {
            found = 1;
            age = now > node->fetched ? now - node->fetched : 0;
            fresh = age < NGX_HTTP_DATAGATE_INCIDENT_TTL && node->gen == gen;
            flags = node->flags;

            /*
             * fresh: answered from here, renewed in the background from
             * half its life on; older, or after a pub/sub message, the
             * request waits for the new state while Redis is up, and is
             * answered from here within stale= while it is down
             */
            cached = fresh || (!ready && age < dmcf->redis.stale);

            if (fresh && ready && age >= NGX_HTTP_DATAGATE_INCIDENT_RENEW
                && now >= node->refreshing)
            {
                node->refreshing = now + dmcf->redis.timeout;
                refresh = 1;
            }

            if (node->glen) {
                env = ngx_pnalloc(r->pool, node->glen);
                if (env) {
                    ngx_memcpy(env, node->data + node->sn.str.len,
                               node->glen);
                    elen = node->glen;

                } else {
                    nomem = 1;
                }
            }

            ngx_queue_remove(&node->queue);
            ngx_queue_insert_head(&dmcf->sh->incidents.queue, &node->queue);
        }

        ngx_shmtx_unlock(&shpool->mutex);

        if (nomem) {
            return NGX_ERROR;
        }
    }

    if (found) {
        st->stale_ok = age < dmcf->redis.stale;
    }

    if (cached) {

        if (!fresh && !ready) {
            ngx_http_datagate_redis_degraded(dmcf, ctx);
        }

        if (refresh) {
            (void) ngx_http_datagate_incident_fetch(NULL, NULL, dmcf,
                                                    tuple, tlen);
        }

        ngx_http_datagate_incident_apply(r, ctx, st, flags, env, elen);
        st->inc = NGX_HTTP_DATAGATE_RS_DONE;

        return NGX_OK;
    }

    if (ready) {
        if (found && st->stale_ok) {
            /* kept for the case the fetch fails */
            ngx_http_datagate_incident_apply(r, ctx, st, flags, env, elen);

        } else if (found) {
            /* too old to allow anything, still enough to refuse */
            st->flags = flags & NGX_HTTP_DATAGATE_INC_DENY;
        }

        rc = ngx_http_datagate_incident_fetch(r, ctx, dmcf, tuple, tlen);

        if (rc == NGX_OK) {
            st->inc = NGX_HTTP_DATAGATE_RS_WAIT;
            return NGX_AGAIN;
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    /* Redis cannot answer now and nothing usable is cached */

    if (found && st->stale_ok) {
        ngx_http_datagate_incident_apply(r, ctx, st, flags, env, elen);

    } else {
        /* a control it knows still refuses (incident_check) */
        st->unavailable = 1;
        st->flags = found ? (flags & NGX_HTTP_DATAGATE_INC_DENY) : 0;
    }

    ngx_http_datagate_redis_degraded(dmcf, ctx);
    st->inc = NGX_HTTP_DATAGATE_RS_DONE;

    return NGX_OK;
}


/*
 * the tuple "SERIAL\nCONSUMER\nDATASET" of a request, whose keys
 * ngx_http_datagate_tuple_keys() makes; NGX_DECLINED: no key can name it
 */
static ngx_int_t
ngx_http_datagate_incident_tuple(ngx_http_datagate_ctx_t *ctx, u_char *tuple,
    size_t *tlen)
{
    u_char               *p;
    size_t                slen;
    dg_str_t              none;
    const dg_str_t       *cid, *did;
    char                  serial[DG_RS_ID_MAX + 1];

    cid = &ctx->consumer->id;

    if (ctx->dataset != NULL) {
        did = &ctx->dataset->id;

    } else {
        none.data = NGX_HTTP_DATAGATE_NO_DATASET;
        none.len = sizeof(NGX_HTTP_DATAGATE_NO_DATASET) - 1;
        did = &none;
    }

    slen = 0;

    if (ctx->cert_serial.len) {
        slen = dg_serial_normalize((const char *) ctx->cert_serial.data,
                                   ctx->cert_serial.len, serial,
                                   sizeof(serial));
    }

    if (slen == 0) {
        ngx_memcpy(serial, "-", 2);     /* no such key is ever written */
        slen = 1;
    }

    if (!dg_rs_id_ok(cid->data, cid->len) || !dg_rs_id_ok(did->data, did->len)
        || slen + cid->len + did->len + 2 > NGX_HTTP_DATAGATE_TUPLE_MAX)
    {
        return NGX_DECLINED;
    }

    p = ngx_cpymem(tuple, serial, slen);
    *p++ = '\n';
    p = ngx_cpymem(p, cid->data, cid->len);
    *p++ = '\n';
    p = ngx_cpymem(p, did->data, did->len);
    *tlen = p - tuple;

    return NGX_OK;
}


/* the five keys from a tuple "SERIAL\nCONSUMER\nDATASET" */
static ngx_int_t
ngx_http_datagate_tuple_keys(u_char *tuple, size_t tlen,
    ngx_http_datagate_ikeys_t *k)
{
    u_char  *s, *c, *d, *end;

    end = tuple + tlen;
    s = tuple;

    c = ngx_strlchr(s, end, '\n');
    if (c == NULL) {
        return NGX_ERROR;
    }

    d = ngx_strlchr(++c, end, '\n');
    if (d == NULL) {
        return NGX_ERROR;
    }

    d++;

    k->klen[0] = dg_rs_key(k->keys[0], DG_RS_KEY_MAX, DG_RS_CERT,
                           (char *) s, c - 1 - s, NULL, 0);
    k->klen[1] = dg_rs_key(k->keys[1], DG_RS_KEY_MAX, DG_RS_CONSUMER,
                           (char *) c, d - 1 - c, NULL, 0);
    k->klen[2] = dg_rs_key(k->keys[2], DG_RS_KEY_MAX, DG_RS_DATASET,
                           (char *) d, end - d, NULL, 0);
    k->klen[3] = dg_rs_key(k->keys[3], DG_RS_KEY_MAX, DG_RS_GRANT_FROZEN,
                           (char *) c, d - 1 - c, (char *) d, end - d);
    k->klen[4] = dg_rs_key(k->keys[4], DG_RS_KEY_MAX, DG_RS_GRANT,
                           (char *) c, d - 1 - c, (char *) d, end - d);

    if (k->klen[0] == 0 || k->klen[1] == 0 || k->klen[2] == 0
        || k->klen[3] == 0 || k->klen[4] == 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * One MGET; r == NULL: a background refresh.  NGX_OK: in flight;
 * NGX_DECLINED: Redis not ready; NGX_ERROR.
 */
static ngx_int_t
ngx_http_datagate_incident_fetch(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_main_conf_t *dmcf,
    u_char *tuple, size_t tlen)
{
    ngx_int_t                    rc, i;
    size_t                       lens[NGX_HTTP_DATAGATE_INCIDENT_KEYS + 1];
    const char                  *argv[NGX_HTTP_DATAGATE_INCIDENT_KEYS + 1];
    ngx_http_datagate_ikeys_t    k;
    ngx_http_datagate_ifetch_t  *f;

    if (ngx_http_datagate_tuple_keys(tuple, tlen, &k) != NGX_OK) {
        return NGX_ERROR;
    }

    f = ngx_http_datagate_waiter_create(r, ctx,
                                        sizeof(ngx_http_datagate_ifetch_t)
                                        + tlen);
    if (f == NULL) {
        return NGX_ERROR;
    }

    f->dmcf = dmcf;
    f->gen = dmcf->sh ? dmcf->sh->incident_gen : 0;
    f->sent = ngx_http_datagate_now_ms();   /* the state is this old */
    f->tlen = tlen;
    ngx_memcpy(f->tuple, tuple, tlen);

    argv[0] = "MGET";
    lens[0] = 4;

    for (i = 0; i < NGX_HTTP_DATAGATE_INCIDENT_KEYS; i++) {
        argv[i + 1] = k.keys[i];
        lens[i + 1] = k.klen[i];
    }

    rc = ngx_http_datagate_redis_command(ngx_http_datagate_incident_reply, f,
                                         NGX_HTTP_DATAGATE_INCIDENT_KEYS + 1,
                                         argv, lens);
    if (rc != NGX_OK) {
        ngx_http_datagate_waiter_free(&f->wait);
        return rc;
    }

    return NGX_OK;
}


static void
ngx_http_datagate_incident_reply(void *data, void *reply)
{
    u_char                      *env;
    size_t                       elen;
    uint32_t                     flags;
    ngx_uint_t                   i, ok;
    redisReply                  *rr, *e;
    ngx_http_request_t          *r;
    ngx_http_datagate_ctx_t     *ctx;
    ngx_http_datagate_ifetch_t     *f;
    ngx_http_datagate_rstate_t     *st;
    ngx_http_datagate_main_conf_t  *dmcf;

    static const uint32_t  bits[NGX_HTTP_DATAGATE_INCIDENT_KEYS] = {
        NGX_HTTP_DATAGATE_INC_REVOKED,
        NGX_HTTP_DATAGATE_INC_SUSPENDED,
        NGX_HTTP_DATAGATE_INC_DS_FROZEN,
        NGX_HTTP_DATAGATE_INC_GRANT_FROZEN,
        NGX_HTTP_DATAGATE_INC_GRANT
    };

    f = data;
    r = f->wait.r;
    ctx = f->wait.ctx;

    ngx_http_datagate_waiter_detach(&f->wait);     /* f is freed below */

    rr = reply;
    ok = 0;
    flags = 0;
    env = NULL;
    elen = 0;

    if (rr && rr->type == REDIS_REPLY_ARRAY
        && rr->elements == NGX_HTTP_DATAGATE_INCIDENT_KEYS)
    {
        ok = 1;

        for (i = 0; i < NGX_HTTP_DATAGATE_INCIDENT_KEYS; i++) {
            e = rr->element[i];

            if (e->type == REDIS_REPLY_NIL) {
                continue;
            }

            if (e->type != REDIS_REPLY_STRING) {
                ok = 0;
                break;
            }

            flags |= bits[i];

            if (bits[i] == NGX_HTTP_DATAGATE_INC_GRANT) {
                env = (u_char *) e->str;
                elen = e->len;

                if (elen > DG_RS_GRANT_MAX) {
                    /* kept as present but unusable: it cannot verify */
                    elen = DG_RS_GRANT_MAX + 1;
                    env = NULL;
                }
            }
        }

    } else if (rr) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "datagate: redis: unexpected MGET reply type %d",
                      rr->type);
    }

    if (ok && env == NULL && elen) {
        /* too large: a marker that never verifies */
        env = (u_char *) "too large";
        elen = sizeof("too large") - 1;
    }

    dmcf = f->dmcf;

    if (ok) {
        ngx_http_datagate_incident_store(dmcf, f->tuple, f->tlen, f->gen,
                                         f->sent, flags, env, elen);
    }

    ngx_free(f);

    if (r == NULL) {
        return;
    }

    st = ctx->pending;

    if (st == NULL || st->inc != NGX_HTTP_DATAGATE_RS_WAIT) {
        return;
    }

    if (ok) {
        /* env points into the reply: the compiled grant keeps a copy */
        st->unavailable = 0;
        ngx_http_datagate_incident_apply(r, ctx, st, flags, env, elen);

    } else if (!st->stale_ok) {
        /* nothing within stale= to fall back on: fail closed */
        st->unavailable = 1;
        ngx_http_datagate_redis_degraded(dmcf, ctx);

    } else {
        /* the copy within stale= applied before the fetch stands */
        ngx_http_datagate_redis_degraded(dmcf, ctx);
    }

    st->inc = NGX_HTTP_DATAGATE_RS_DONE;

    ngx_http_datagate_resume(r);
}


/* put the state into the zone (a new node every time: sizes change) */
static void
ngx_http_datagate_incident_store(ngx_http_datagate_main_conf_t *dmcf,
    u_char *tuple, size_t tlen, ngx_atomic_uint_t gen, uint64_t fetched,
    uint32_t flags, u_char *env, size_t elen)
{
    size_t                      size;
    uint64_t                    now;
    ngx_uint_t                  hash, changed, n;
    ngx_str_t                   name;
    ngx_queue_t                *q;
    ngx_slab_pool_t            *shpool;
    ngx_atomic_uint_t           ngen;
    ngx_http_datagate_inode_t  *node, *old;

    if (dmcf->sh == NULL) {
        return;
    }

    shpool = dmcf->shpool;
    now = ngx_http_datagate_now_ms();

    name.data = tuple;
    name.len = tlen;
    hash = ngx_crc32_short(tuple, tlen);

    size = offsetof(ngx_http_datagate_inode_t, data) + tlen + elen;

    ngx_shmtx_lock(&shpool->mutex);

    old = (ngx_http_datagate_inode_t *)
              ngx_str_rbtree_lookup(&dmcf->sh->incidents.rbtree, &name, hash);

    changed = old == NULL
              ? (flags != 0)
              : (old->flags != flags || old->glen != elen
                 || (elen && ngx_memcmp(old->data + tlen, env, elen) != 0));

    if (old) {
        ngx_rbtree_delete(&dmcf->sh->incidents.rbtree, &old->sn.node);
        ngx_queue_remove(&old->queue);
        ngx_slab_free_locked(shpool, old);
    }

    /* drop entries nobody asked for in a long while, then make room */

    for (n = 0; n < 2 && !ngx_queue_empty(&dmcf->sh->incidents.queue); n++) {
        q = ngx_queue_last(&dmcf->sh->incidents.queue);
        old = ngx_queue_data(q, ngx_http_datagate_inode_t, queue);

        if (now - old->fetched < 60000 + 2 * dmcf->redis.stale) {
            break;
        }

        ngx_rbtree_delete(&dmcf->sh->incidents.rbtree, &old->sn.node);
        ngx_queue_remove(&old->queue);
        ngx_slab_free_locked(shpool, old);
    }

    node = ngx_slab_alloc_locked(shpool, size);

    for (n = 0; node == NULL && n < 16; n++) {
        if (ngx_queue_empty(&dmcf->sh->incidents.queue)) {
            break;
        }

        q = ngx_queue_last(&dmcf->sh->incidents.queue);
        old = ngx_queue_data(q, ngx_http_datagate_inode_t, queue);

        ngx_rbtree_delete(&dmcf->sh->incidents.rbtree, &old->sn.node);
        ngx_queue_remove(&old->queue);
        ngx_slab_free_locked(shpool, old);

        node = ngx_slab_alloc_locked(shpool, size);
    }

    if (changed) {
        /* every cached entry and decision is checked again */
        ngen = ngx_atomic_fetch_add(&dmcf->sh->incident_gen, 1) + 1;
        if (ngen == gen + 1) {
            gen = ngen;
        }
    }

    if (node == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "datagate: zone full, incident state not cached");
        return;
    }

    node->sn.node.key = hash;
    node->sn.str.data = node->data;
    node->sn.str.len = tlen;
    node->fetched = fetched;
    node->refreshing = 0;
    node->gen = gen;
    node->flags = flags;
    node->glen = (uint32_t) elen;

    ngx_memcpy(node->data, tuple, tlen);

    if (elen) {
        ngx_memcpy(node->data + tlen, env, elen);
    }

    ngx_rbtree_insert(&dmcf->sh->incidents.rbtree, &node->sn.node);
    ngx_queue_insert_head(&dmcf->sh->incidents.queue, &node->queue);

    ngx_shmtx_unlock(&shpool->mutex);
}


/* ---- run-time grants -------------------------------------------------- */

static ngx_http_datagate_cgrant_t *
ngx_http_datagate_cgrant_get(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_main_conf_t *dmcf,
    u_char *env, size_t elen)
{
    int                          rc;
    char                         err[DG_ERRLEN];
    size_t                       klen, ylen;
    uint8_t                      mkey[DG_SHA256_LEN];
    ngx_queue_t                 *q;
    const char                  *yaml;
    dg_grant_t                  *g;
    ngx_http_datagate_cgrant_t  *cg;
    char                         key[DG_RS_KEY_MAX];

    if (ngx_http_datagate_cgrants.next == NULL) {
        ngx_queue_init(&ngx_http_datagate_cgrants);
    }

    for (q = ngx_queue_head(&ngx_http_datagate_cgrants);
         q != ngx_queue_sentinel(&ngx_http_datagate_cgrants);
         q = ngx_queue_next(q))
    {
        cg = ngx_queue_data(q, ngx_http_datagate_cgrant_t, queue);

        if (cg->len == elen && ngx_memcmp(cg->env, env, elen) == 0) {
            ngx_queue_remove(q);
            ngx_queue_insert_head(&ngx_http_datagate_cgrants, q);
            return cg;
        }
    }

    /* a value not seen before: verify, compile, remember */

    cg = ngx_alloc(sizeof(ngx_http_datagate_cgrant_t) + elen,
                   r->connection->log);
    if (cg == NULL) {
        return NULL;
    }

    cg->grant = NULL;
    cg->refs = 0;
    cg->len = elen;
    ngx_memcpy(cg->env, env, elen);

    klen = dg_rs_key(key, sizeof(key), DG_RS_GRANT, ctx->consumer->id.data,
                     ctx->consumer->id.len, ctx->dataset->id.data,
                     ctx->dataset->id.len);

    if (dmcf->secret_generated || dmcf->secret_len == 0) {
        if (!ngx_http_datagate_nosecret_logged) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "datagate: run-time grants in redis are ignored: "
                          "no \"datagate_secret\" to verify them");
            ngx_http_datagate_nosecret_logged = 1;
        }

    } else if (klen == 0
               || dg_rs_mac_key(dmcf->secret, dmcf->secret_len, mkey) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "datagate: run-time grant key failed");

    } else {
        rc = dg_rs_grant_open(mkey, key, klen, (const char *) env, elen,
                              &yaml, &ylen);
        ngx_explicit_memzero(mkey, sizeof(mkey));

        if (rc != 0) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "datagate: run-time grant \"%s\" ignored: %s",
                          key, rc == -2 ? "its MAC does not verify (not "
                          "written with this datagate_secret)"
                          : "malformed value");

        } else {
            g = dg_grant_compile(dmcf->policy, yaml, ylen, err, sizeof(err));

            if (g == NULL) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "datagate: run-time grant \"%s\" ignored: %s",
                              key, err);

            } else if (g->consumer != ctx->consumer
                       || g->dataset != ctx->dataset)
            {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "datagate: run-time grant \"%s\" ignored: it "
                              "names another consumer or dataset", key);
                dg_grant_free(g);

            } else {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "datagate: run-time grant \"%s\" in force",
                              key);
                cg->grant = g;
            }
        }
    }

    ngx_queue_insert_head(&ngx_http_datagate_cgrants, &cg->queue);
    ngx_http_datagate_ncgrants++;

    /* bounded: forget the least recently used ones nobody holds */

    q = ngx_queue_last(&ngx_http_datagate_cgrants);

    while (ngx_http_datagate_ncgrants > NGX_HTTP_DATAGATE_CGRANT_MAX
           && q != ngx_queue_sentinel(&ngx_http_datagate_cgrants))
    {
        ngx_http_datagate_cgrant_t  *old;

        old = ngx_queue_data(q, ngx_http_datagate_cgrant_t, queue);
        q = ngx_queue_prev(q);

        if (old == cg || old->refs) {
            continue;
        }

        ngx_queue_remove(&old->queue);

        if (old->grant) {
            dg_grant_free(old->grant);
        }

        ngx_free(old);
        ngx_http_datagate_ncgrants--;
    }

    return cg;
}


/* pool cleanup of a request that held a compiled grant */
static void
ngx_http_datagate_cgrant_release(void *data)
{
    ngx_http_datagate_rstate_t  *st = data;
    ngx_http_datagate_cgrant_t  *cg;

    cg = st->cgrant;

    if (cg && cg->refs) {
        cg->refs--;
    }

    st->cgrant = NULL;
    st->extra[0] = NULL;
}


static void
ngx_http_datagate_incident_apply(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_rstate_t *st,
    uint32_t flags, u_char *env, size_t elen)
{
    ngx_pool_cleanup_t             *cln;
    ngx_http_datagate_cgrant_t     *cg;
    ngx_http_datagate_main_conf_t  *dmcf;

    if (ctx->catalogue) {
        /* no dataset: neither freezes nor run-time grants are its */
        flags &= NGX_HTTP_DATAGATE_INC_CATALOGUE;
    }

    st->flags = flags;
    st->extra[0] = NULL;

    /* a frozen run-time grant is still found, so that the request is
     * answered "frozen", not "not granted" */

    if (!(flags & NGX_HTTP_DATAGATE_INC_GRANT) || env == NULL || elen == 0) {
        return;
    }

    if (st->cgrant) {
        /* applied before (the copy within stale= while waiting) */
        ((ngx_http_datagate_cgrant_t *) st->cgrant)->refs--;
        st->cgrant = NULL;
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    cg = ngx_http_datagate_cgrant_get(r, ctx, dmcf, env, elen);
    if (cg == NULL || cg->grant == NULL) {
        return;
    }

    if (!st->held) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return;
        }

        cln->handler = ngx_http_datagate_cgrant_release;
        cln->data = st;
        st->held = 1;
    }

    cg->refs++;
    st->cgrant = cg;
    st->extra[0] = cg->grant;
}


/* ---- the re-check of long answers (_watch.c) -------------------------- */

static dg_reason_e ngx_http_datagate_incident_redecide(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_recheck_t *rk,
    u_char *env, size_t elen);
static ngx_uint_t ngx_http_datagate_grant_covers(const dg_grant_t *now,
    const dg_grant_t *was);


dg_reason_e
ngx_http_datagate_incident_recheck(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_recheck_t *rk)
{
    u_char                         *env;
    size_t                          tlen, elen;
    uint32_t                        flags, ghash;
    uint64_t                        now, age;
    ngx_int_t                       ready, found, fresh, refresh, depends,
                                    same;
    ngx_uint_t                      hash;
    ngx_str_t                       name;
    ngx_atomic_uint_t               gen;
    ngx_slab_pool_t                *shpool;
    ngx_http_datagate_inode_t      *node;
    ngx_http_datagate_cgrant_t     *cg;
    ngx_http_datagate_rstate_t     *st;
    ngx_http_datagate_main_conf_t  *dmcf;
    u_char                          tuple[NGX_HTTP_DATAGATE_TUPLE_MAX];

    rk->settled = 1;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (!dmcf->redis_enabled || dmcf->sh == NULL || ctx->consumer == NULL
        || ctx->dataset == NULL
        || ngx_http_datagate_incident_tuple(ctx, tuple, &tlen) != NGX_OK)
    {
        /* no run-time state, or none that a key could name */
        return DG_R_OK;
    }

    /* the run-time grant value the answer was allowed under */

    st = ctx->pending;
    depends = ctx->grant != NULL && ctx->grant->runtime;

    if (!rk->ginit) {
        rk->ginit = 1;
        cg = st ? st->cgrant : NULL;

        if (depends && cg != NULL) {
            rk->glen = (uint32_t) cg->len;
            rk->ghash = ngx_murmur_hash2(cg->env, cg->len);
        }
    }

    ready = ngx_http_datagate_redis_ready();
    now = ngx_http_datagate_now_ms();

    found = 0;
    fresh = 0;
    refresh = 0;
    same = 1;
    flags = 0;
    age = 0;
    env = NULL;
    elen = 0;

    shpool = dmcf->shpool;
    gen = dmcf->sh->incident_gen;

    name.data = tuple;
    name.len = tlen;
    hash = ngx_crc32_short(tuple, tlen);

    ngx_shmtx_lock(&shpool->mutex);

    node = (ngx_http_datagate_inode_t *)
               ngx_str_rbtree_lookup(&dmcf->sh->incidents.rbtree, &name,
                                     hash);

    if (node) {
        found = 1;
        flags = node->flags;
        age = now > node->fetched ? now - node->fetched : 0;
        fresh = age < NGX_HTTP_DATAGATE_INCIDENT_TTL && node->gen == gen;

        if (ready && (!fresh || age >= NGX_HTTP_DATAGATE_INCIDENT_RENEW)
            && now >= node->refreshing)
        {
            node->refreshing = now + dmcf->redis.timeout;
            refresh = 1;
        }

        if (depends) {
            elen = (flags & NGX_HTTP_DATAGATE_INC_GRANT) ? node->glen : 0;
            ghash = elen ? ngx_murmur_hash2(node->data + node->sn.str.len,
                                            elen)
                         : 0;

            same = elen == rk->glen && ghash == rk->ghash;

            if (!same && elen) {
                /* changed: rare, copied to decide again below */
                env = ngx_pnalloc(r->pool, elen);
                if (env) {
                    ngx_memcpy(env, node->data + node->sn.str.len, elen);
                }
            }
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (!found && ready) {
        /* not in the zone (evicted): the caller asks again soon */
        refresh = 1;
    }

    if (refresh) {
        (void) ngx_http_datagate_incident_fetch(NULL, NULL, dmcf, tuple,
                                                tlen);
    }

    /* the newest state read says so: refuse, fresh or not */

    if (flags & NGX_HTTP_DATAGATE_INC_REVOKED) {
        return DG_R_CERT_REVOKED;
    }

    if (flags & NGX_HTTP_DATAGATE_INC_SUSPENDED) {
        return DG_R_CONSUMER_SUSPENDED;
    }

    if (flags & NGX_HTTP_DATAGATE_INC_DS_FROZEN) {
        return DG_R_DATASET_FROZEN;
    }

    if ((flags & NGX_HTTP_DATAGATE_INC_GRANT_FROZEN) && ctx->grant != NULL) {
        return DG_R_DATASET_FROZEN;
    }

    if (found && !same) {
        if (elen && env == NULL) {
            return DG_R_INTERNAL;
        }

        return ngx_http_datagate_incident_redecide(r, ctx, rk, env, elen);
    }

    if (found && fresh) {
        rk->known = now;
        return DG_R_OK;
    }

    rk->settled = 0;

    if (!ready && now > rk->known && now - rk->known >= dmcf->redis.stale) {
        /* as a new request: nothing known for stale= */
        return DG_R_POLICY_UNAVAILABLE;
    }

    return DG_R_OK;
}


/*
 * The run-time grant the answer stands on was withdrawn or replaced: the
 * decision again, with the grant now in force (compiled once per value
 * by this worker, no Redis).  Denied: its reason.  Allowed under a grant
 * that shows everything this answer shows: the answer goes on, and
 * stands on the new value.  Otherwise level_exceeded: the masking plan
 * of a running answer cannot change.
 */
static dg_reason_e
ngx_http_datagate_incident_redecide(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_recheck_t *rk,
    u_char *env, size_t elen)
{
    const dg_grant_t               *extra[1];
    dg_request_t                    req;
    dg_decision_t                   d;
    ngx_http_datagate_cgrant_t     *cg;
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    ngx_memzero(&req, sizeof(dg_request_t));

    extra[0] = NULL;

    if (elen) {
        cg = ngx_http_datagate_cgrant_get(r, ctx, dmcf, env, elen);
        if (cg != NULL) {
            extra[0] = cg->grant;
        }
    }

    req.consumer = ctx->consumer;
    req.dataset = ctx->dataset;
    req.purpose.data = (const char *) ctx->purpose.data;
    req.purpose.len = ctx->purpose.len;
    req.approval.data = (const char *) ctx->approval.data;
    req.approval.len = ctx->approval.len;
    req.method = ctx->method;
    req.now = ngx_time();
    req.extra_grants = extra[0] ? extra : NULL;
    req.nextra = extra[0] ? 1 : 0;

    dg_decide(dmcf->policy, &req, &d);

    if (d.reason != DG_R_OK) {
        return d.reason;
    }

    if (!ngx_http_datagate_grant_covers(d.grant, ctx->grant)) {
        return DG_R_LEVEL_EXCEEDED;
    }

    rk->glen = (uint32_t) elen;
    rk->ghash = elen ? ngx_murmur_hash2(env, elen) : 0;

    return DG_R_OK;
}


/* everything grant "was" shows in clear, grant "now" shows too */
static ngx_uint_t
ngx_http_datagate_grant_covers(const dg_grant_t *now, const dg_grant_t *was)
{
    size_t  i, j;

    if (now == was) {
        return 1;
    }

    if (now == NULL || was == NULL) {
        return 0;
    }

    for (i = 0; i < was->nreveal; i++) {
        for (j = 0; j < now->nreveal; j++) {
            if (was->reveal[i].len == now->reveal[j].len
                && ngx_memcmp(was->reveal[i].data, now->reveal[j].data,
                              was->reveal[i].len) == 0)
            {
                break;
            }
        }

        if (j == now->nreveal) {
            return 0;
        }
    }

    for (i = 0; i < now->ndrop; i++) {
        for (j = 0; j < was->ndrop; j++) {
            if (now->drop[i].len == was->drop[j].len
                && ngx_memcmp(now->drop[i].data, was->drop[j].data,
                              now->drop[i].len) == 0)
            {
                break;
            }
        }

        if (j == was->ndrop) {
            return 0;
        }
    }

    return 1;
}


/* ---- the statistics (_status.c) ------------------------------------- */

/* the controls of the tuple "SERIAL\nCONSUMER\nDATASET" each flag names */
static const struct {
    uint32_t                        flag;
    ngx_uint_t                      first;      /* tuple parts: from */
    ngx_uint_t                      last;       /* .. to, joined by '|' */
} ngx_http_datagate_control_parts[] = {
    { NGX_HTTP_DATAGATE_INC_REVOKED,      0, 0 },
    { NGX_HTTP_DATAGATE_INC_SUSPENDED,    1, 1 },
    { NGX_HTTP_DATAGATE_INC_DS_FROZEN,    2, 2 },
    { NGX_HTTP_DATAGATE_INC_GRANT_FROZEN, 1, 2 },
    { NGX_HTTP_DATAGATE_INC_GRANT,        1, 2 },
};


ngx_int_t
ngx_http_datagate_incident_controls(ngx_http_datagate_main_conf_t *dmcf,
    ngx_pool_t *pool, ngx_uint_t max, ngx_array_t **out)
{
    u_char                       *p, *part[3], *end[3], *s, *e;
    uint64_t                      now;
    ngx_uint_t                    i, k, n, np, nods;
    ngx_queue_t                  *q;
    ngx_http_datagate_inode_t    *node;
    ngx_http_datagate_control_t  *c, *all;

    *out = ngx_array_create(pool, 16, sizeof(ngx_http_datagate_control_t));
    if (*out == NULL) {
        return NGX_ERROR;
    }

    if (dmcf->sh == NULL || !dmcf->redis_enabled) {
        return NGX_OK;
    }

    now = ngx_http_datagate_now_ms();

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    for (q = ngx_queue_head(&dmcf->sh->incidents.queue);
         q != ngx_queue_sentinel(&dmcf->sh->incidents.queue)
         && (*out)->nelts < max;
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_datagate_inode_t, queue);

        /* what a request may still be answered from (stale=) */
        if (node->flags == 0 || now - node->fetched >= dmcf->redis.stale) {
            continue;
        }

        s = node->sn.str.data;
        e = s + node->sn.str.len;

        for (np = 0; np < 3; np++) {
            part[np] = s;
            s = ngx_strlchr(s, e, '\n');
            end[np] = s ? s : e;
            if (s == NULL) {
                np++;
                break;
            }
            s++;
        }

        if (np != 3) {
            continue;
        }

        /* a catalogue's tuple names no dataset */
        nods = (size_t) (end[2] - part[2])
                   == sizeof(NGX_HTTP_DATAGATE_NO_DATASET) - 1
               && ngx_strncmp(part[2], NGX_HTTP_DATAGATE_NO_DATASET,
                              end[2] - part[2]) == 0;

        for (k = 0; k < sizeof(ngx_http_datagate_control_parts)
                        / sizeof(ngx_http_datagate_control_parts[0]); k++)
        {
            if (!(node->flags & ngx_http_datagate_control_parts[k].flag)) {
                continue;
            }

            i = ngx_http_datagate_control_parts[k].first;
            n = ngx_http_datagate_control_parts[k].last;

            if (n == 2 && nods) {
                continue;
            }

            c = ngx_array_push(*out);
            p = ngx_pnalloc(pool, end[n] - part[i]);

            if (c == NULL || p == NULL) {
                ngx_shmtx_unlock(&dmcf->shpool->mutex);
                return NGX_ERROR;
            }

            c->control = ngx_http_datagate_control_parts[k].flag;
            c->id.data = p;
            c->id.len = end[n] - part[i];
            c->fetched = node->fetched;

            ngx_memcpy(p, part[i], c->id.len);

            /* CONSUMER\nDATASET -> CONSUMER|DATASET */
            if (n != i) {
                p[end[i] - part[i]] = '|';
            }
        }
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    /* each control once: the most recent reading */

    all = (*out)->elts;
    n = (*out)->nelts;

    ngx_qsort(all, n, sizeof(ngx_http_datagate_control_t),
              ngx_http_datagate_control_cmp);

    for (i = 0, k = 0; i < n; i++) {
        if (k > 0 && all[k - 1].control == all[i].control
            && all[k - 1].id.len == all[i].id.len
            && ngx_memcmp(all[k - 1].id.data, all[i].id.data, all[i].id.len)
               == 0)
        {
            if (all[i].fetched > all[k - 1].fetched) {
                all[k - 1].fetched = all[i].fetched;
            }
            continue;
        }

        all[k++] = all[i];
    }

    (*out)->nelts = k;

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_http_datagate_control_cmp(const void *one, const void *two)
{
    const ngx_http_datagate_control_t  *a = one, *b = two;

    if (a->control != b->control) {
        return a->control < b->control ? -1 : 1;
    }

    return ngx_memn2cmp(a->id.data, b->id.data, a->id.len, b->id.len);
}
