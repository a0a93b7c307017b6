
/*
 * datagate: the access phase.
 *
 * identity (verified client certificate) -> consumer -> network / geo ->
 * the request's path and headers (_request.c) -> run-time grants ->
 * decision (shared-memory cache in front of dg_decide) -> incident
 * controls -> rate limit -> upstream request headers.
 *
 * The handler is re-entrant: every step that may wait for Redis returns
 * NGX_AGAIN and the handler resumes from ctx->stage when the phases are
 * run again.  Denials answer the JSON error of SPEC.md and finalize the
 * request; the log phase (audit) still runs.
 */


#include "ngx_http_datagate.h"
#include "dg_dn.h"
#include "dg_rstate.h"
#include "dg_util.h"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>


#define NGX_HTTP_DATAGATE_STAGE_START      0
#define NGX_HTTP_DATAGATE_STAGE_GRANTS     1
#define NGX_HTTP_DATAGATE_STAGE_DECIDE     2
#define NGX_HTTP_DATAGATE_STAGE_INCIDENT   3
#define NGX_HTTP_DATAGATE_STAGE_LIMIT      4
#define NGX_HTTP_DATAGATE_STAGE_DONE       5

#define NGX_HTTP_DATAGATE_MAX_SANS         32
#define NGX_HTTP_DATAGATE_MAX_KEYPART      256
#define NGX_HTTP_DATAGATE_SERIAL_MAX       160     /* sign + hex digits */
#define NGX_HTTP_DATAGATE_FORWARDED_MAX    64      /* hops in a header */

/* "_method" in a query: the longest encoded key that can decode to it,
 * and the longest value looked at (longer: not a method, refused) */
#define NGX_HTTP_DATAGATE_OVERRIDE_KEY     (3 * (sizeof("_method") - 1) + 1)
#define NGX_HTTP_DATAGATE_OVERRIDE_VALUE   (3 * 4 * DG_METHOD_NAME_MAX)

#define NGX_HTTP_DATAGATE_PLAN_NONE        -1
#define NGX_HTTP_DATAGATE_PLAN_GRANT       (DG_LEVEL_MAX + 1)

/* the Redis tier of the decision cache (docs/redis.md) */
#define NGX_HTTP_DATAGATE_DKEY_PREFIX      "datagate:decision:"
#define NGX_HTTP_DATAGATE_DKEY_MAX                                          \
    (sizeof(NGX_HTTP_DATAGATE_DKEY_PREFIX) + 16 + 3 * (DG_RS_ID_MAX + 1)    \
     + 8 + 33)
#define NGX_HTTP_DATAGATE_DVAL_MAGIC       "DGD1 "
#define NGX_HTTP_DATAGATE_DVAL_MAX         256


/* identity of a TLS connection, cached in the SSL object's ex_data */
typedef struct {
    const dg_policy_t              *policy;
    const dg_consumer_t            *consumer;   /* NULL: unknown */
    ngx_str_t                       serial;
} ngx_http_datagate_conn_id_t;


/* one hop named in a forwarding header */
typedef struct {
    u_char                         *data;
    size_t                          len;
} ngx_http_datagate_hop_t;


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


/* a check that may wait for Redis and may deny with a reason */
typedef ngx_int_t (*ngx_http_datagate_check_pt)(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e *reason);


enum {
    NGX_HTTP_DATAGATE_VAR_CONSUMER = 0,
    NGX_HTTP_DATAGATE_VAR_DATASET,
    NGX_HTTP_DATAGATE_VAR_PURPOSE,
    NGX_HTTP_DATAGATE_VAR_DECISION,
    NGX_HTTP_DATAGATE_VAR_REASON,
    NGX_HTTP_DATAGATE_VAR_REQUEST_ID,
    NGX_HTTP_DATAGATE_VAR_MASKED,
    NGX_HTTP_DATAGATE_VAR_CACHE
};


static ngx_int_t ngx_http_datagate_stage_check(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_check_pt check);
static void ngx_http_datagate_ctx_cleanup(void *data);
static ngx_http_datagate_ctx_t *ngx_http_datagate_create_ctx(
    ngx_http_request_t *r);
static void ngx_http_datagate_request_id(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);
static dg_reason_e ngx_http_datagate_identify(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx);
#if (NGX_HTTP_SSL)
static ngx_http_datagate_conn_id_t *ngx_http_datagate_cert_identity(
    ngx_http_request_t *r, ngx_http_datagate_main_conf_t *dmcf, X509 *cert);
#endif
static struct sockaddr *ngx_http_datagate_forwarded(ngx_http_request_t *r,
    ngx_http_datagate_loc_conf_t *dlcf);
static struct sockaddr *ngx_http_datagate_parse_hop(ngx_http_request_t *r,
    u_char *p, size_t len);
static ngx_int_t ngx_http_datagate_decide(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx,
    dg_decision_t *d);
static unsigned ngx_http_datagate_method_overrides(ngx_http_request_t *r,
    const dg_policy_t *p);
static unsigned ngx_http_datagate_method_value(const dg_policy_t *p,
    u_char *v, size_t len);
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
static ngx_int_t ngx_http_datagate_upstream_headers(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);
static ngx_int_t ngx_http_datagate_push_header(ngx_http_request_t *r,
    ngx_list_t *list, const char *name, u_char *value, size_t len);
static ngx_int_t ngx_http_datagate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static int  ngx_http_datagate_ssl_index = -1;


static ngx_http_variable_t  ngx_http_datagate_vars[] = {

    { ngx_string("datagate_consumer"), NULL, ngx_http_datagate_variable,
      NGX_HTTP_DATAGATE_VAR_CONSUMER, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("datagate_dataset"), NULL, ngx_http_datagate_variable,
      NGX_HTTP_DATAGATE_VAR_DATASET, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("datagate_purpose"), NULL, ngx_http_datagate_variable,
      NGX_HTTP_DATAGATE_VAR_PURPOSE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("datagate_decision"), NULL, ngx_http_datagate_variable,
      NGX_HTTP_DATAGATE_VAR_DECISION, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("datagate_reason"), NULL, ngx_http_datagate_variable,
      NGX_HTTP_DATAGATE_VAR_REASON, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("datagate_request_id"), NULL, ngx_http_datagate_variable,
      NGX_HTTP_DATAGATE_VAR_REQUEST_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("datagate_masked"), NULL, ngx_http_datagate_variable,
      NGX_HTTP_DATAGATE_VAR_MASKED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("datagate_cache"), NULL, ngx_http_datagate_variable,
      NGX_HTTP_DATAGATE_VAR_CACHE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* ---- the handler ---------------------------------------------------- */

ngx_int_t
ngx_http_datagate_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    dg_reason_e                     reason;
    dg_decision_t                   d;
    ngx_table_elt_t                *h;
    ngx_http_datagate_ctx_t        *ctx;
    ngx_http_datagate_loc_conf_t   *dlcf;
    ngx_http_datagate_main_conf_t  *dmcf;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_datagate_module);

    if (dlcf->enable != 1 || dlcf->status) {
        return NGX_DECLINED;
    }

    if (r != r->main) {
        /* the response of a subrequest ends up in another response:
         * datagate answers main requests only, fail closed */
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "datagate: denied subrequest \"%V\" to an enforced "
                      "location", &r->uri);
        return NGX_HTTP_FORBIDDEN;
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    ctx = ngx_http_datagate_get_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_http_datagate_create_ctx(r);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ctx->stage == NGX_HTTP_DATAGATE_STAGE_DONE) {

        if (ctx->dataset == dlcf->dataset && ctx->allowed) {
            /* an internal redirect within the same dataset */
            ctx->enforced = 1;
            return NGX_DECLINED;
        }

        /* another dataset after an internal redirect: decide again */
        if (ctx->pending) {
            ((ngx_http_datagate_rstate_t *) ctx->pending)->dec =
                                                  NGX_HTTP_DATAGATE_RS_NONE;
        }

        ctx->stage = NGX_HTTP_DATAGATE_STAGE_START;
        ctx->decided = 0;
        ctx->allowed = 0;
        ctx->grant = NULL;
        ctx->plan = NULL;
        ctx->reason = DG_R_OK;
    }

    ctx->enforced = 1;

    switch (ctx->stage) {

    case NGX_HTTP_DATAGATE_STAGE_START:

        ctx->dataset = dlcf->dataset;

        reason = ngx_http_datagate_identify(r, dmcf, ctx);
        if (reason != DG_R_OK) {
            return ngx_http_datagate_send_error(r, ctx, reason, ctx->detail);
        }

        /* a path the provider may read as another location's, a header
         * datagate reads sent twice (_request.c) */

        rc = ngx_http_datagate_request_check(r, &ctx->detail);

        if (rc == NGX_DECLINED) {
            return ngx_http_datagate_send_error(r, ctx,
                                                DG_R_REQUEST_REJECTED,
                                                ctx->detail);
        }

        if (rc != NGX_OK) {
            return ngx_http_datagate_send_error(r, ctx, DG_R_INTERNAL, NULL);
        }

        if (ctx->dataset == NULL) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "datagate: enforced location without a dataset");
            return ngx_http_datagate_send_error(r, ctx, DG_R_INTERNAL, NULL);
        }

        h = ngx_http_datagate_find_header(&r->headers_in.headers,
                                          "Data-Purpose",
                                          sizeof("Data-Purpose") - 1);
        if (h) {
            ctx->purpose = h->value;
        }

        h = ngx_http_datagate_find_header(&r->headers_in.headers,
                                          "Data-Approval",
                                          sizeof("Data-Approval") - 1);
        if (h) {
            ctx->approval = h->value;
        }

        ctx->stage = NGX_HTTP_DATAGATE_STAGE_GRANTS;

        /* fall through */

    case NGX_HTTP_DATAGATE_STAGE_GRANTS:

        rc = ngx_http_datagate_stage_check(r, ctx,
                                           ngx_http_datagate_runtime_grants);
        if (rc != NGX_OK) {
            return rc;
        }

        ctx->stage = NGX_HTTP_DATAGATE_STAGE_DECIDE;

        /* fall through */

    case NGX_HTTP_DATAGATE_STAGE_DECIDE:

        rc = ngx_http_datagate_decide(r, dmcf, ctx, &d);

        if (rc == NGX_AGAIN) {
            ctx->waiting = 1;
            return NGX_AGAIN;
        }

        ctx->waiting = 0;

        if (rc != NGX_OK) {
            return ngx_http_datagate_send_error(r, ctx, DG_R_INTERNAL, NULL);
        }

        ctx->reason = d.reason;
        ctx->grant = d.grant;
        ctx->plan = d.plan;
        ctx->purpose_def = d.purpose;
        ctx->expires = d.expires;
        ctx->decided = 1;

        ctx->stage = NGX_HTTP_DATAGATE_STAGE_INCIDENT;

        /* fall through */

    case NGX_HTTP_DATAGATE_STAGE_INCIDENT:

        rc = ngx_http_datagate_stage_check(r, ctx,
                                           ngx_http_datagate_incident_check);
        if (rc != NGX_OK) {
            return rc;
        }

        if (ctx->reason != DG_R_OK) {
            return ngx_http_datagate_send_error(r, ctx, ctx->reason, NULL);
        }

        if (ctx->plan == NULL) {
            /* allowed without a plan: the core broke its promise */
            ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                          "datagate: allowed decision without a plan");
            return ngx_http_datagate_send_error(r, ctx, DG_R_INTERNAL, NULL);
        }

        /* no data without a record: while audit records cannot be
         * written (on_failure=deny), what the policy allows is refused;
         * before the limit, so that the refusal costs no budget */
        if (ngx_http_datagate_audit_check(dmcf) != NGX_OK) {
            return ngx_http_datagate_send_error(r, ctx,
                                                DG_R_AUDIT_UNAVAILABLE,
                                                NULL);
        }

        ctx->stage = NGX_HTTP_DATAGATE_STAGE_LIMIT;

        /* fall through */

    case NGX_HTTP_DATAGATE_STAGE_LIMIT:

        rc = ngx_http_datagate_limit(r, ctx);

        if (rc == NGX_AGAIN) {
            ctx->waiting = 1;
            return NGX_AGAIN;
        }

        ctx->waiting = 0;

        if (rc == NGX_DECLINED) {
            reason = ctx->reason != DG_R_OK ? ctx->reason
                                            : DG_R_RATE_LIMITED;
            return ngx_http_datagate_send_error(r, ctx, reason, ctx->detail);
        }

        if (rc != NGX_OK) {
            return ngx_http_datagate_send_error(r, ctx, DG_R_INTERNAL, NULL);
        }

        break;

    default:
        return ngx_http_datagate_send_error(r, ctx, DG_R_INTERNAL, NULL);
    }

    /* allowed */

    if (ngx_http_datagate_upstream_headers(r, ctx) != NGX_OK) {
        return ngx_http_datagate_send_error(r, ctx, DG_R_INTERNAL, NULL);
    }

    ctx->allowed = 1;
    ctx->reason = DG_R_OK;
    ctx->stage = NGX_HTTP_DATAGATE_STAGE_DONE;

    /* the incident controls are checked again until the answer ends */
    if (ngx_http_datagate_watch_start(r, ctx) != NGX_OK) {
        return ngx_http_datagate_send_error(r, ctx, DG_R_INTERNAL, NULL);
    }

    /* the arguments are evaluated only with --with-debug and debug on */
    ngx_log_debug5(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "datagate: allowed consumer=%*s purpose=%V method:%ui "
                   "masks:%ui",
                   ctx->consumer->id.len, ctx->consumer->id.data,
                   &ctx->purpose,
                   (ngx_uint_t) dg_policy_method_bit(dmcf->policy,
                                    (const char *) r->method_name.data,
                                    r->method_name.len),
                   (ngx_uint_t) ctx->plan->masks);

    return NGX_DECLINED;
}


/*
 * NGX_OK: the check passed; otherwise what the handler returns: NGX_AGAIN
 * while the check waits, or the result of the denial it answered
 */

static ngx_int_t
ngx_http_datagate_stage_check(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_check_pt check)
{
    ngx_int_t    rc;
    dg_reason_e  reason;

    reason = DG_R_OK;

    rc = check(r, ctx, &reason);

    if (rc == NGX_AGAIN) {
        ctx->waiting = 1;
        return NGX_AGAIN;
    }

    ctx->waiting = 0;

    if (rc != NGX_OK) {
        return ngx_http_datagate_send_error(r, ctx, DG_R_INTERNAL, NULL);
    }

    if (reason != DG_R_OK) {
        return ngx_http_datagate_send_error(r, ctx, reason, NULL);
    }

    return NGX_OK;
}


/* ---- ctx ------------------------------------------------------------ */

static void
ngx_http_datagate_ctx_cleanup(void *data)
{
    ngx_http_datagate_ctx_t  *ctx = data;

    /* the request is going away: nothing may reach it any more */
    ctx->request = NULL;
}


ngx_http_datagate_ctx_t *
ngx_http_datagate_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_datagate_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_datagate_module);

    if (ctx != NULL || !r->internal) {
        return ctx;
    }

    /* an internal redirect cleared r->ctx: find it again (ModSecurity) */

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_datagate_ctx_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_datagate_module);
            return ctx;
        }
    }

    return NULL;
}


ngx_http_datagate_ctx_t *
ngx_http_datagate_error_ctx(ngx_http_request_t *r)
{
    ngx_http_datagate_ctx_t       *ctx;
    ngx_http_datagate_loc_conf_t  *dlcf;

    ctx = ngx_http_datagate_get_ctx(r);

    if (ctx == NULL) {
        ctx = ngx_http_datagate_create_ctx(r);
        if (ctx == NULL) {
            return NULL;
        }
    }

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_datagate_module);

    if (ctx->dataset == NULL) {
        ctx->dataset = dlcf->dataset;
    }

    ctx->enforced = 1;

    return ctx;
}


static ngx_http_datagate_ctx_t *
ngx_http_datagate_create_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_datagate_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_datagate_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_datagate_ctx_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->start = ngx_current_msec;
    ctx->reason = DG_R_OK;
    ctx->stage = NGX_HTTP_DATAGATE_STAGE_START;

    ngx_http_datagate_request_id(r, ctx);

    ngx_http_set_ctx(r, ctx, ngx_http_datagate_module);

    return ctx;
}


/* a header of a request's headers_in or headers_out list by name */

ngx_table_elt_t *
ngx_http_datagate_find_header(ngx_list_t *headers, const char *name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &headers->part;
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

        if (h[i].hash == 0) {
            continue;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }

    return NULL;
}


/* random bytes for generated request ids, drawn in bulk */
static u_char      ngx_http_datagate_rnd[64 * NGX_HTTP_DATAGATE_REQUEST_ID_LEN
                                         / 2];
static size_t      ngx_http_datagate_rnd_pos;
static ngx_pid_t   ngx_http_datagate_rnd_pid;


static void
ngx_http_datagate_request_id(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx)
{
    u_char            c, rnd[NGX_HTTP_DATAGATE_REQUEST_ID_LEN / 2];
    ngx_str_t         name = ngx_string("Datagate-Request-Id");
    ngx_uint_t        i, underscore;
    ngx_table_elt_t  *h;

    h = ngx_http_datagate_find_header(&r->headers_in.headers,
                                      (char *) name.data, name.len);

    /* sent twice (refused, _request.c): neither is the request's id */
    if (h
        && (ngx_http_datagate_header_count(&r->headers_in.headers, &name,
                                           &underscore)
            != 1
            || underscore))
    {
        h = NULL;
    }

    if (h && h->value.len >= 1
        && h->value.len <= NGX_HTTP_DATAGATE_REQUEST_ID_MAX)
    {
        for (i = 0; i < h->value.len; i++) {
            c = h->value.data[i];

            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || (c >= '0' && c <= '9')
                  || c == '.' || c == '_' || c == '-'))
            {
                break;
            }
        }

        if (i == h->value.len) {
            ngx_memcpy(ctx->request_id, h->value.data, h->value.len);
            ctx->request_id[h->value.len] = '\0';
            ctx->request_id_len = h->value.len;
            return;
        }
    }

    /*
     * RAND_bytes() costs several microseconds a call (DRBG locks, a
     * getpid()); the bytes of 64 ids are drawn at once, again in every
     * new process (ngx_pid changes at fork).
     */

    if (ngx_http_datagate_rnd_pid != ngx_pid
        || ngx_http_datagate_rnd_pos + sizeof(rnd)
           > sizeof(ngx_http_datagate_rnd))
    {
        if (RAND_bytes(ngx_http_datagate_rnd, sizeof(ngx_http_datagate_rnd))
            == 1)
        {
            ngx_http_datagate_rnd_pid = ngx_pid;
            ngx_http_datagate_rnd_pos = 0;

        } else {
            ngx_http_datagate_rnd_pid = 0;
        }
    }

    if (ngx_http_datagate_rnd_pid == ngx_pid) {
        ngx_memcpy(rnd, ngx_http_datagate_rnd + ngx_http_datagate_rnd_pos,
                   sizeof(rnd));
        ngx_http_datagate_rnd_pos += sizeof(rnd);

    } else {
        /* not expected; still unique enough for a trace id */
        for (i = 0; i < sizeof(rnd); i++) {
            rnd[i] = (u_char) ngx_random();
        }
    }

    ngx_hex_dump(ctx->request_id, rnd, sizeof(rnd));
    ctx->request_id[NGX_HTTP_DATAGATE_REQUEST_ID_LEN] = '\0';
    ctx->request_id_len = NGX_HTTP_DATAGATE_REQUEST_ID_LEN;
}


/* ---- identity ------------------------------------------------------- */

static dg_reason_e
ngx_http_datagate_identify(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx)
{
#if (NGX_HTTP_SSL)

    X509                         *cert;
    ngx_int_t                     rc;
    ngx_connection_t             *c;
    ngx_http_datagate_conn_id_t  *id;

    c = r->connection;

    if (c->ssl == NULL || c->ssl->connection == NULL) {
        return DG_R_CLIENT_CERT_REQUIRED;
    }

    if (ngx_http_datagate_ssl_bound(r) != NGX_OK) {
        ctx->detail = NGX_HTTP_DATAGATE_SSL_UNBOUND;

        /* the audit record names the certificate all the same */
        cert = SSL_get_peer_certificate(c->ssl->connection);
        if (cert != NULL) {
            if (ngx_http_datagate_cert_serial_str(cert, r->pool,
                                                  &ctx->cert_serial)
                != NGX_OK)
            {
                ngx_str_null(&ctx->cert_serial);
            }

            X509_free(cert);
        }

        return DG_R_CLIENT_CERT_REQUIRED;
    }

    /* optional / optional_no_ca: only a verified certificate counts */
    if (SSL_get_verify_result(c->ssl->connection) != X509_V_OK) {
        return DG_R_CLIENT_CERT_REQUIRED;
    }

    id = NULL;

    if (ngx_http_datagate_ssl_index >= 0) {
        id = SSL_get_ex_data(c->ssl->connection, ngx_http_datagate_ssl_index);
    }

    if (id == NULL || id->policy != dmcf->policy) {

        cert = SSL_get_peer_certificate(c->ssl->connection);
        if (cert == NULL) {
            return DG_R_CLIENT_CERT_REQUIRED;
        }

        id = ngx_http_datagate_cert_identity(r, dmcf, cert);

        X509_free(cert);

        if (id == NULL) {
            return DG_R_INTERNAL;
        }

    } else {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "datagate: identity of the connection reused");
    }

    ctx->cert_serial = id->serial;

    if (id->consumer == NULL) {
        return DG_R_UNKNOWN_CONSUMER;
    }

    ctx->consumer = id->consumer;

    if (ngx_http_datagate_client_addr(r, ctx) != NGX_OK) {
        /* the peer went away: where it was is unknown, fail closed */
        ctx->detail = "the client address is not known";
        return DG_R_NETWORK_DENIED;
    }

    if (!dg_consumer_network_ok(ctx->consumer, ctx->client)) {
        return DG_R_NETWORK_DENIED;
    }

    ctx->country[0] = '\0';
    ctx->region[0] = '\0';

    if (dmcf->geoip) {
        rc = ngx_http_datagate_geoip_lookup(dmcf, ctx->client, ctx->country,
                                            ctx->region, sizeof(ctx->region));
        if (rc != NGX_OK) {
            ctx->country[0] = '\0';
            ctx->region[0] = '\0';
        }
    }

    ctx->country[sizeof(ctx->country) - 1] = '\0';
    ctx->region[sizeof(ctx->region) - 1] = '\0';

    if (!dg_consumer_geo_ok(ctx->consumer,
                            ctx->country[0] ? (char *) ctx->country : NULL,
                            ctx->region[0] ? (char *) ctx->region : NULL))
    {
        return DG_R_GEO_DENIED;
    }

    return DG_R_OK;

#else

    return DG_R_CLIENT_CERT_REQUIRED;

#endif
}


#if (NGX_HTTP_SSL)

/*
 * Identity is bound to the verification that happened.  The client
 * certificate was verified in the handshake by the SSL_CTX the connection
 * has: the default server's of the address, or the one of the server the
 * client's SNI named (ngx_http_ssl_servername() switches to it with
 * SSL_set_SSL_CTX() before the certificate arrives; renegotiation is
 * refused).  nginx then picks the request's server{} again from Host
 * (HTTP/1.x) or :authority (HTTP/2) and answers 421 only when SNI was sent
 * and that server verifies client certificates.  Without SNI, or when the
 * request's server does not verify, a certificate checked against another
 * server's ssl_client_certificate, ssl_crl, ssl_verify_depth or ssl_ocsp
 * would reach this one.  So identity counts only when the request's
 * server is the one whose context verified it.
 */
ngx_int_t
ngx_http_datagate_ssl_bound(ngx_http_request_t *r)
{
    SSL_CTX                  *verified;
    ngx_str_t                 sni;
    ngx_http_ssl_srv_conf_t  *sscf;

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_ssl_module);
    verified = SSL_get_SSL_CTX(r->connection->ssl->connection);

    if (sscf != NULL && sscf->ssl.ctx != NULL && sscf->ssl.ctx == verified) {
        return NGX_OK;
    }

    /* the server name as nginx validated it, when it chose a server */
    ngx_str_null(&sni);

#ifdef SSL_CTRL_SET_TLSEXT_HOSTNAME
    if (r->http_connection->ssl_servername) {
        sni = *r->http_connection->ssl_servername;
    }
#endif

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "datagate: client certificate refused: verified for "
                  "another server{} (TLS server name \"%V\", host \"%V\")",
                  &sni, &r->headers_in.server);

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_datagate_cert_serial_str(X509 *cert, ngx_pool_t *pool,
    ngx_str_t *out)
{
    char    *hex;
    size_t   n;
    BIGNUM  *bn;
    char     buf[NGX_HTTP_DATAGATE_SERIAL_MAX];

    bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), NULL);
    if (bn == NULL) {
        return NGX_ERROR;
    }

    /* "-5A5A" for a negative serial, as OpenSSL prints it */
    hex = BN_bn2hex(bn);
    BN_free(bn);

    if (hex == NULL) {
        return NGX_ERROR;
    }

    n = dg_serial_normalize(hex, ngx_strlen(hex), buf, sizeof(buf));
    OPENSSL_free(hex);

    if (n == 0) {
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, n + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, buf, n + 1);
    out->len = n;

    return NGX_OK;
}


static ngx_http_datagate_conn_id_t *
ngx_http_datagate_cert_identity(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, X509 *cert)
{
    int                           i, n, len;
    char                         *tag;
    u_char                       *p;
    size_t                        slen, ilen;
    dg_str_t                      sans[NGX_HTTP_DATAGATE_MAX_SANS];
    ngx_uint_t                    nsans;
    unsigned int                  mdlen;
    dg_identity_t                 ident;
    GENERAL_NAME                 *gen;
    GENERAL_NAMES                *gens;
    const u_char                 *s;
    ngx_connection_t             *mc;
    const ASN1_OCTET_STRING      *akid;
    u_char                        md[EVP_MAX_MD_SIZE];
    char                          subject[DG_DN_MAX];
    char                          issuer[DG_DN_MAX];
    ngx_http_datagate_conn_id_t  *id;

    /* the real connection (not an HTTP/2 stream's): its pool lives as
     * long as the SSL object */
    mc = ngx_ssl_get_connection(r->connection->ssl->connection);
    if (mc == NULL) {
        mc = r->connection;
    }

    id = ngx_pcalloc(mc->pool, sizeof(ngx_http_datagate_conn_id_t));
    if (id == NULL) {
        return NULL;
    }

    ngx_memzero(&ident, sizeof(dg_identity_t));

    /* fingerprint: SHA-256 of the DER */

    mdlen = 0;

    if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1
        || mdlen != DG_SHA256_LEN)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "datagate: X509_digest() failed");
        return NULL;
    }

    ident.fingerprint = md;

    /* serial: sign and upper-case hex, no leading zeros */

    if (ngx_http_datagate_cert_serial_str(cert, mc->pool, &id->serial)
        != NGX_OK)
    {
        return NULL;
    }

    ident.serial.data = (const char *) id->serial.data;
    ident.serial.len = id->serial.len;

    /*
     * subject and issuer in the canonical form of dg_dn.h, taken from the
     * certificate itself (nginx's $ssl_client_s_dn escapes non-ASCII as
     * \XX, which a policy written in Chinese would never equal)
     */

    slen = dg_dn_from_x509(X509_get_subject_name(cert), subject,
                           sizeof(subject));
    ident.subject.data = slen ? subject : NULL;
    ident.subject.len = slen;

    ilen = dg_dn_from_x509(X509_get_issuer_name(cert), issuer,
                           sizeof(issuer));
    ident.issuer.data = ilen ? issuer : NULL;
    ident.issuer.len = ilen;

    /* the authority key identifier: OpenSSL matched it against the
     * subject key identifier of the CA that verified the certificate */

    akid = X509_get0_authority_key_id(cert);

    if (akid != NULL && ASN1_STRING_length(akid) > 0) {
        ident.issuer_key_id = ASN1_STRING_get0_data(akid);
        ident.issuer_key_id_len = ASN1_STRING_length(akid);
    }

    /* subjectAltName: URI and DNS entries */

    nsans = 0;

    gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);

    if (gens) {
        n = sk_GENERAL_NAME_num(gens);

        for (i = 0; i < n && nsans < NGX_HTTP_DATAGATE_MAX_SANS; i++) {
            gen = sk_GENERAL_NAME_value(gens, i);

            if (gen->type == GEN_URI) {
                s = ASN1_STRING_get0_data(gen->d.uniformResourceIdentifier);
                len = ASN1_STRING_length(gen->d.uniformResourceIdentifier);
                tag = "URI:";

            } else if (gen->type == GEN_DNS) {
                s = ASN1_STRING_get0_data(gen->d.dNSName);
                len = ASN1_STRING_length(gen->d.dNSName);
                tag = "DNS:";

            } else {
                continue;
            }

            if (s == NULL || len <= 0 || len > 4096) {
                continue;
            }

            p = ngx_pnalloc(r->pool, 4 + len);
            if (p == NULL) {
                GENERAL_NAMES_free(gens);
                return NULL;
            }

            ngx_memcpy(p, tag, 4);
            ngx_memcpy(p + 4, s, len);

            sans[nsans].data = (const char *) p;
            sans[nsans].len = 4 + len;
            nsans++;
        }

        GENERAL_NAMES_free(gens);
    }

    ident.sans = sans;
    ident.nsans = nsans;

    id->policy = dmcf->policy;
    id->consumer = dg_policy_match_consumer(dmcf->policy, &ident);

    if (id->consumer == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "datagate: no consumer for certificate subject=\"%s\" "
                      "issuer=\"%s\" serial=%V", slen ? subject : "",
                      ilen ? issuer : "", &id->serial);
    }

    if (ngx_http_datagate_ssl_index >= 0) {
        SSL_set_ex_data(r->connection->ssl->connection,
                        ngx_http_datagate_ssl_index, id);
    }

    return id;
}

#endif


/* ---- client address -------------------------------------------------- */

/*
 * nginx's realip module replaces c->sockaddr with an address taken from a
 * header before this phase, for every peer set_real_ip_from trusts: the
 * rules would follow a header.  datagate takes the TCP peer from the
 * socket (getpeername(): neither realip nor PROXY protocol changes it;
 * an HTTP/2 stream shares its connection's fd), and believes a forwarding
 * header only from the peers datagate_real_ip_from names.
 */
ngx_int_t
ngx_http_datagate_client_addr(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx)
{
    u_char                        *text;
    size_t                         len;
    socklen_t                      plen;
    struct sockaddr               *peer, *fwd;
    ngx_connection_t              *c;
    ngx_http_datagate_loc_conf_t  *dlcf;

    if (ctx->addr_done) {
        return ctx->client ? NGX_OK : NGX_ERROR;
    }

    ctx->addr_done = 1;
    c = r->connection;

    peer = ngx_pcalloc(r->pool, sizeof(ngx_sockaddr_t));
    if (peer == NULL) {
        return NGX_ERROR;
    }

    plen = sizeof(ngx_sockaddr_t);

    if (c->fd == (ngx_socket_t) -1 || getpeername(c->fd, peer, &plen) == -1) {
        ngx_log_error(NGX_LOG_INFO, c->log, ngx_socket_errno,
                      "datagate: getpeername() failed");
        return NGX_ERROR;
    }

    text = ngx_pnalloc(r->pool, NGX_SOCKADDR_STRLEN);
    if (text == NULL) {
        return NGX_ERROR;
    }

    len = ngx_sock_ntop(peer, plen, text, NGX_SOCKADDR_STRLEN, 0);

    ctx->peer_text.data = text;
    ctx->peer_text.len = len;

    ctx->client = peer;
    ctx->client_text = ctx->peer_text;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_datagate_module);

    fwd = NULL;

    if (dlcf->real_ip_from != NULL
        && ngx_cidr_match(peer, dlcf->real_ip_from) == NGX_OK)
    {
        fwd = ngx_http_datagate_forwarded(r, dlcf);
    }

    if (fwd != NULL) {
        text = ngx_pnalloc(r->pool, NGX_SOCKADDR_STRLEN);
        if (text == NULL) {
            return NGX_ERROR;
        }

        len = ngx_sock_ntop(fwd, sizeof(ngx_sockaddr_t), text,
                            NGX_SOCKADDR_STRLEN, 0);

        ctx->client = fwd;
        ctx->client_text.data = text;
        ctx->client_text.len = len;
        ctx->forwarded_text = ctx->client_text;

    } else if (ngx_cmp_sockaddr(c->sockaddr, c->socklen, peer, plen, 0)
               != NGX_OK)
    {
        /* nginx's real_ip named another address: recorded, not used */
        ctx->forwarded_text = c->addr_text;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "datagate: client %V, peer %V, forwarded \"%V\"",
                   &ctx->client_text, &ctx->peer_text, &ctx->forwarded_text);

    return NGX_OK;
}


/*
 * The client a trusted peer forwards: the PROXY protocol's source, or the
 * hops of datagate_real_ip_header (every line of it, comma-separated lists
 * as X-Forwarded-For writes them) read from the nearest one back, skipping
 * the addresses datagate_real_ip_from trusts: the first hop it does not
 * trust is the client.  A hop that is not an address ends the walk at the
 * last trusted one.  NULL: the peer itself.
 */
static struct sockaddr *
ngx_http_datagate_forwarded(ngx_http_request_t *r,
    ngx_http_datagate_loc_conf_t *dlcf)
{
    u_char                   *p, *end, *q;
    ngx_uint_t                i, n, total;
    struct sockaddr          *sa, *last;
    ngx_list_part_t          *part;
    ngx_table_elt_t          *h;
    ngx_http_datagate_hop_t  *hop;
    ngx_http_datagate_hop_t   hops[NGX_HTTP_DATAGATE_FORWARDED_MAX];

    if (dlcf->real_ip_header.len == sizeof("proxy_protocol") - 1
        && ngx_strncasecmp(dlcf->real_ip_header.data,
                           (u_char *) "proxy_protocol",
                           sizeof("proxy_protocol") - 1) == 0)
    {
        if (r->connection->proxy_protocol == NULL) {
            return NULL;
        }

        return ngx_http_datagate_parse_hop(r,
                               r->connection->proxy_protocol->src_addr.data,
                               r->connection->proxy_protocol->src_addr.len);
    }

    /* the hops in header order, in a ring: when there are more than fit,
     * the nearest ones are kept */

    total = 0;
    part = &r->headers_in.headers.part;
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

        if (h[i].hash == 0 || h[i].key.len != dlcf->real_ip_header.len
            || ngx_strncasecmp(h[i].key.data, dlcf->real_ip_header.data,
                               h[i].key.len) != 0)
        {
            continue;
        }

        p = h[i].value.data;
        end = p + h[i].value.len;

        for ( ;; ) {
            q = ngx_strlchr(p, end, ',');
            if (q == NULL) {
                q = end;
            }

            hops[total % NGX_HTTP_DATAGATE_FORWARDED_MAX].data = p;
            hops[total % NGX_HTTP_DATAGATE_FORWARDED_MAX].len = q - p;
            total++;

            if (q == end) {
                break;
            }

            p = q + 1;
        }
    }

    last = NULL;

    for (n = 0; n < total && n < NGX_HTTP_DATAGATE_FORWARDED_MAX; n++) {
        hop = &hops[(total - 1 - n) % NGX_HTTP_DATAGATE_FORWARDED_MAX];

        sa = ngx_http_datagate_parse_hop(r, hop->data, hop->len);
        if (sa == NULL) {
            break;
        }

        if (ngx_cidr_match(sa, dlcf->real_ip_from) != NGX_OK) {
            return sa;
        }

        last = sa;
    }

    return last;
}


/* "192.0.2.1", "2001:db8::1", "[2001:db8::1]:8080", "192.0.2.1:8080",
 * spaces around; NULL when it is none of these */
static struct sockaddr *
ngx_http_datagate_parse_hop(ngx_http_request_t *r, u_char *p, size_t len)
{
    u_char      *end, *q;
    ngx_addr_t   addr;

    end = p + len;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }

    if (p < end && *p == '[') {
        q = ngx_strlchr(p, end, ']');
        if (q == NULL || (q + 1 != end && q[1] != ':')) {
            return NULL;
        }

        p++;
        end = q;

    } else {
        /* one ':' is an IPv4 address with a port */
        q = ngx_strlchr(p, end, ':');
        if (q != NULL && ngx_strlchr(q + 1, end, ':') == NULL) {
            end = q;
        }
    }

    if (p == end || ngx_parse_addr(r->pool, &addr, p, end - p) != NGX_OK) {
        return NULL;
    }

    return addr.sockaddr;
}


/* ---- decision and its cache ------------------------------------------ */

/*
 * Two tiers in front of dg_decide():
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

/* one GET of a decision in flight; outlives its request */
typedef struct {
    ngx_http_datagate_waiter_t      wait;       /* first */
    size_t                          klen;
    u_char                          key[1];
} ngx_http_datagate_dwait_t;


static ngx_uint_t  ngx_http_datagate_dval_logged;


static ngx_int_t
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


/*
 * Method overrides: frameworks behind the gateway may take the method from
 * a header (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override:
 * Rack, Express, ASP.NET, Symfony) or a "_method" parameter (Spring's
 * HiddenHttpMethodFilter, Laravel, Rack); PHP reads ".method", " method"
 * and "[method" as "_method", a CGI gateway "_" in a header name as "-".
 * The bits of every method so named (each comma-separated item, in upper
 * case as the frameworks take it); the decision needs them all allowed.
 * A "_method" in a form body is not seen: docs/nginx.md.
 */
static unsigned
ngx_http_datagate_method_overrides(ngx_http_request_t *r,
    const dg_policy_t *p)
{
    u_char            *a, *end, *k, *e, *q, c;
    size_t             n, j, klen;
    unsigned           bits;
    ngx_uint_t         i;
    ngx_list_part_t   *part;
    ngx_table_elt_t   *h;
    u_char             key[NGX_HTTP_DATAGATE_OVERRIDE_KEY];
    u_char             val[NGX_HTTP_DATAGATE_OVERRIDE_VALUE];

    static const char  *names[] = { "x-http-method-override",
                                    "x-http-method", "x-method-override" };

    bits = 0;

    part = &r->headers_in.headers.part;
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

        for (n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
            if (h[i].key.len != ngx_strlen(names[n])) {
                continue;
            }

            for (j = 0; j < h[i].key.len; j++) {
                c = ngx_tolower(h[i].key.data[j]);
                if (c != (u_char) names[n][j]
                    && !(c == '_' && names[n][j] == '-'))
                {
                    break;
                }
            }

            if (j == h[i].key.len) {
                bits |= ngx_http_datagate_method_value(p, h[i].value.data,
                                                       h[i].value.len);
            }
        }
    }

    /* "_method" in the query: each parameter, key and value decoded */

    a = r->args.data;
    end = a + r->args.len;

    while (a != NULL && a < end) {
        for (e = a; e < end && *e != '&' && *e != ';'; e++) {
            /* void */
        }

        for (k = a; k < e && *k != '='; k++) {
            /* void */
        }

        klen = k - a;

        if (klen >= sizeof("_method") - 1 && klen < sizeof(key)) {
            q = key;
            for (j = 0; j < klen; j++) {
                *q++ = a[j] == '+' ? ' ' : a[j];
            }

            k = key;
            q = key;
            ngx_unescape_uri(&q, &k, klen, NGX_UNESCAPE_URI);
            klen = q - key;

            for (j = 0; j < klen; j++) {
                c = ngx_tolower(key[j]);
                key[j] = (c == ' ' || c == '.' || c == '[') ? '_' : c;
            }

            if (klen == sizeof("_method") - 1
                && ngx_strncmp(key, "_method", klen) == 0)
            {
                for (k = a; k < e && *k != '='; k++) {
                    /* void */
                }

                n = k < e ? (size_t) (e - k - 1) : 0;

                if (n >= sizeof(val)) {
                    bits |= DG_METHOD_OTHER;

                } else if (n > 0) {
                    q = val;
                    for (j = 0; j < n; j++) {
                        *q++ = k[1 + j] == '+' ? ' ' : k[1 + j];
                    }

                    k = val;
                    q = val;
                    ngx_unescape_uri(&q, &k, n, NGX_UNESCAPE_URI);
                    bits |= ngx_http_datagate_method_value(p, val, q - val);
                }
            }
        }

        a = e + 1;
    }

    return bits;
}


/* "delete, PUT" -> the bits of DELETE and PUT; DG_METHOD_OTHER for a name
 * no dataset of p allows by that name */
static unsigned
ngx_http_datagate_method_value(const dg_policy_t *p, u_char *v, size_t len)
{
    u_char    *end, *s, *t;
    size_t     j;
    unsigned   bits;
    u_char     name[DG_METHOD_NAME_MAX];

    bits = 0;
    end = v + len;

    while (v < end) {
        for (s = v; s < end && *s != ','; s++) {
            /* void */
        }

        t = s;

        while (v < t && (*v == ' ' || *v == '\t')) {
            v++;
        }

        while (t > v && (t[-1] == ' ' || t[-1] == '\t')) {
            t--;
        }

        if (t - v > DG_METHOD_NAME_MAX) {
            bits |= DG_METHOD_OTHER;

        } else if (t > v) {
            for (j = 0; j < (size_t) (t - v); j++) {
                name[j] = ngx_toupper(v[j]);
            }

            bits |= dg_policy_method_bit(p, (const char *) name, t - v);
        }

        v = s + 1;
    }

    return bits;
}


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
    ngx_pool_cleanup_t         *cln;
    ngx_http_datagate_dwait_t  *w;

    w = ngx_alloc(sizeof(ngx_http_datagate_dwait_t) + klen,
                  r->connection->log);
    if (w == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(w);
        return NGX_ERROR;
    }

    w->wait.r = r;
    w->wait.ctx = ctx;
    w->wait.cln = cln;
    w->klen = klen;
    ngx_memcpy(w->key, key, klen);

    argv[0] = "GET";
    lens[0] = 3;
    argv[1] = (const char *) w->key;
    lens[1] = klen;

    rc = ngx_http_datagate_redis_command(ngx_http_datagate_dcache_reply, w,
                                         2, argv, lens);
    if (rc != NGX_OK) {
        ngx_free(w);
        return rc;
    }

    cln->handler = ngx_http_datagate_waiter_cleanup;
    cln->data = &w->wait;

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
    ctx->waiting = 0;

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


/* ---- the request to the provider ------------------------------------ */

/*
 * Request headers never forwarded for a dataset whose plan rewrites the
 * body (plan->masks).  The masked body must arrive whole and plain:
 * Accept-Encoding (replaced by "identity"), Range, If-Range, A-IM (RFC
 * 3229 deltas).  And the provider must not answer by comparing the
 * client's guess with the unmasked body: the conditionals
 * (If-None-Match, If-Match, If-Modified-Since, If-Unmodified-Since)
 * would turn its validators into an online oracle, and Want-*Digest
 * asks for the digests that the header filter drops anyway.
 */
static ngx_str_t  ngx_http_datagate_masked_drop[] = {
    ngx_string("Accept-Encoding"),
    ngx_string("Range"),
    ngx_string("If-Range"),
    ngx_string("A-IM"),
    ngx_string("If-None-Match"),
    ngx_string("If-Match"),
    ngx_string("If-Modified-Since"),
    ngx_string("If-Unmodified-Since"),
    ngx_string("Want-Digest"),
    ngx_string("Want-Repr-Digest"),
    ngx_string("Want-Content-Digest"),
    ngx_null_string
};


static ngx_int_t
ngx_http_datagate_upstream_headers(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx)
{
    ngx_str_t        *drop;
    ngx_uint_t        i, n, masks;
    ngx_list_t        list;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    masks = ctx->plan->masks;

    n = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        n += part->nelts;
    }

    if (ngx_list_init(&list, r->pool, n + 5, sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * Rebuild the list: the proxy module forwards every element of
     * headers_in.headers.  The old elements stay in the pool, so the
     * pointers in headers_in (host, user_agent, ...) stay valid.
     */

    part = &r->headers_in.headers.part;
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

        if (h[i].key.len >= sizeof("Datagate-") - 1
            && (ngx_strncasecmp(h[i].key.data, (u_char *) "Datagate-",
                                sizeof("Datagate-") - 1) == 0
                || ngx_strncasecmp(h[i].key.data, (u_char *) "Datagate_",
                                   sizeof("Datagate_") - 1) == 0))
        {
            /* "Datagate_" too: CGI-style servers read it as "Datagate-"
             * (underscores_in_headers on) */
            continue;
        }

        if (masks) {
            for (drop = ngx_http_datagate_masked_drop; drop->len; drop++) {
                if (h[i].key.len == drop->len
                    && ngx_strncasecmp(h[i].key.data, drop->data, drop->len)
                       == 0)
                {
                    break;
                }
            }

            if (drop->len) {
                continue;
            }
        }

        nh = ngx_list_push(&list);
        if (nh == NULL) {
            return NGX_ERROR;
        }

        *nh = h[i];
    }

    if (masks) {
        /*
         * nginx's own filters read these too: not_modified (a 304 of
         * nginx's own when the answer is cacheable) and range; they
         * answer about the provider's body, not the masked one
         */
        r->headers_in.if_modified_since = NULL;
        r->headers_in.if_unmodified_since = NULL;
        r->headers_in.if_match = NULL;
        r->headers_in.if_none_match = NULL;
        r->headers_in.range = NULL;
        r->headers_in.if_range = NULL;
    }

    if (ngx_http_datagate_push_header(r, &list, "Datagate-Consumer",
                                      (u_char *) ctx->consumer->id.data,
                                      ctx->consumer->id.len)
        != NGX_OK
        || ngx_http_datagate_push_header(r, &list, "Datagate-Purpose",
                                         ctx->purpose.data, ctx->purpose.len)
           != NGX_OK
        || ngx_http_datagate_push_header(r, &list, "Datagate-Request-Id",
                                         ctx->request_id,
                                         ctx->request_id_len)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (masks
        && ngx_http_datagate_push_header(r, &list, "Accept-Encoding",
                                         (u_char *) "identity",
                                         sizeof("identity") - 1)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->headers_in.headers = list;

    return NGX_OK;
}


/* the names ngx_http_datagate_push_header() was called with */
typedef struct {
    const char                      *name;
    size_t                           len;
    ngx_uint_t                       hash;
    u_char                           low[32];
} ngx_http_datagate_hdr_name_t;

static ngx_http_datagate_hdr_name_t  ngx_http_datagate_hdr_names[8];


static ngx_int_t
ngx_http_datagate_push_header(ngx_http_request_t *r, ngx_list_t *list,
    const char *name, u_char *value, size_t len)
{
    size_t                           nlen;
    ngx_uint_t                       i;
    ngx_table_elt_t                 *h;
    ngx_http_datagate_hdr_name_t    *known;

    /* name is a string literal: its lower case and hash are worked out
     * once */

    known = ngx_http_datagate_hdr_names;

    for (i = 0; i < 8 && known[i].name != NULL; i++) {
        if (known[i].name == name) {
            break;
        }
    }

    if (i < 8 && known[i].name == NULL) {
        nlen = ngx_strlen(name);

        if (nlen <= sizeof(known[i].low)) {
            known[i].hash = ngx_hash_strlow(known[i].low, (u_char *) name,
                                            nlen);
            known[i].len = nlen;
            known[i].name = name;
        }
    }

    h = ngx_list_push(list);
    if (h == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(h, sizeof(ngx_table_elt_t));

    h->value.data = ngx_pnalloc(r->pool, len + 1);
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(h->value.data, value, len);
    h->value.data[len] = '\0';
    h->value.len = len;

    h->key.data = (u_char *) name;

    if (i < 8 && known[i].name == name) {
        h->key.len = known[i].len;
        h->lowcase_key = known[i].low;
        h->hash = known[i].hash;
        return NGX_OK;
    }

    nlen = ngx_strlen(name);
    h->key.len = nlen;

    h->lowcase_key = ngx_pnalloc(r->pool, nlen);
    if (h->lowcase_key == NULL) {
        return NGX_ERROR;
    }

    h->hash = ngx_hash_strlow(h->lowcase_key, h->key.data, nlen);

    return NGX_OK;
}


/* ---- errors --------------------------------------------------------- */

ngx_buf_t *
ngx_http_datagate_error_body(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e reason, const char *detail)
{
    size_t        len, mlen, dlen, rlen;
    u_char       *p;
    ngx_buf_t    *b;
    const char   *code, *msg;

    if (reason >= DG_R_MAX || reason == DG_R_OK) {
        reason = DG_R_INTERNAL;
    }

    code = dg_reason_code(reason);
    msg = dg_reason_message(reason);

    if (code == NULL) {
        code = "internal";
    }

    if (msg == NULL) {
        msg = "";
    }

    mlen = ngx_strlen(msg);
    dlen = detail ? ngx_strlen(detail) : 0;

    if (dlen > 512) {
        dlen = 512;
    }

    rlen = ctx ? ctx->request_id_len : 0;

    len = sizeof("{\"error\":{\"code\":\"\",\"message\":\"\","
                 "\"request_id\":\"\"}}\n") - 1
          + ngx_strlen(code)
          + mlen + ngx_escape_json(NULL, (u_char *) msg, mlen)
          + (dlen ? 2 + dlen + ngx_escape_json(NULL, (u_char *) detail, dlen)
                  : 0)
          + rlen;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    p = b->last;

    p = ngx_cpymem(p, "{\"error\":{\"code\":\"",
                   sizeof("{\"error\":{\"code\":\"") - 1);
    p = ngx_cpymem(p, code, ngx_strlen(code));
    p = ngx_cpymem(p, "\",\"message\":\"", sizeof("\",\"message\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, (u_char *) msg, mlen);

    if (dlen) {
        *p++ = ':';
        *p++ = ' ';
        p = (u_char *) ngx_escape_json(p, (u_char *) detail, dlen);
    }

    p = ngx_cpymem(p, "\",\"request_id\":\"",
                   sizeof("\",\"request_id\":\"") - 1);

    if (rlen) {
        p = ngx_cpymem(p, ctx->request_id, rlen);
    }

    p = ngx_cpymem(p, "\"}}\n", sizeof("\"}}\n") - 1);

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = dg_reason_status(reason);

    if (r->headers_out.status < 400 || r->headers_out.status > 599) {
        r->headers_out.status = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;
    r->headers_out.content_length_n = b->last - b->pos;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    if (ctx) {
        ctx->status = r->headers_out.status;
        ctx->reason = reason;
    }

    return b;
}


static ngx_int_t
ngx_http_datagate_retry_after(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    if (ngx_http_datagate_find_header(&r->headers_out.headers, "Retry-After",
                                      sizeof("Retry-After") - 1)
        != NULL)
    {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    ngx_str_set(&h->value, "1");
    h->lowcase_key = (u_char *) "retry-after";

    return NGX_OK;
}


ngx_int_t
ngx_http_datagate_send_error(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e reason, const char *detail)
{
    ngx_int_t     rc;
    ngx_uint_t    level;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    switch (reason) {
    case DG_R_CLIENT_CERT_REQUIRED:
    case DG_R_UNKNOWN_CONSUMER:
    case DG_R_CERT_REVOKED:
    case DG_R_CONSUMER_SUSPENDED:
    case DG_R_DATASET_FROZEN:
        level = NGX_LOG_WARN;
        break;
    case DG_R_POLICY_UNAVAILABLE:
        /* the outage itself is logged once, by _redis.c; each refusal is
         * counted in the statistics */
        level = NGX_LOG_INFO;
        break;
    case DG_R_INTERNAL:
        level = NGX_LOG_ERR;
        break;
    default:
        level = NGX_LOG_INFO;
    }

    if (ctx) {
        ctx->decided = 1;
        ctx->allowed = 0;
        ctx->stage = NGX_HTTP_DATAGATE_STAGE_DONE;
    }

    ngx_log_error(level, r->connection->log, 0,
                  "datagate: denied %s consumer=%*s dataset=%*s "
                  "purpose=%V, request_id=%s",
                  dg_reason_code(reason),
                  (ctx && ctx->consumer) ? ctx->consumer->id.len : 1,
                  (ctx && ctx->consumer) ? ctx->consumer->id.data : "-",
                  (ctx && ctx->dataset) ? ctx->dataset->id.len : 1,
                  (ctx && ctx->dataset) ? ctx->dataset->id.data : "-",
                  (ctx && ctx->purpose.len) ? &ctx->purpose
                                            : &(ngx_str_t) ngx_string("-"),
                  ctx ? (char *) ctx->request_id : "-");

    if (r->header_sent) {
        return NGX_ERROR;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    b = ngx_http_datagate_error_body(r, ctx, reason, detail);
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return NGX_DONE;
    }

    if (r->headers_out.status == NGX_HTTP_SERVICE_UNAVAILABLE
        || r->headers_out.status == NGX_HTTP_TOO_MANY_REQUESTS)
    {
        if (ngx_http_datagate_retry_after(r) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return NGX_DONE;
        }
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_output_filter(r, &out);

    ngx_http_finalize_request(r, rc);

    return NGX_DONE;
}


/* ---- variables ------------------------------------------------------ */

ngx_int_t
ngx_http_datagate_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_datagate_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_datagate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    const char               *s;
    ngx_http_datagate_ctx_t  *ctx;

    ctx = ngx_http_datagate_get_ctx(r->main);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = NULL;
    p = NULL;
    v->len = 0;

    switch (data) {

    case NGX_HTTP_DATAGATE_VAR_CONSUMER:
        if (ctx->consumer) {
            p = (u_char *) ctx->consumer->id.data;
            v->len = ctx->consumer->id.len;
        }
        break;

    case NGX_HTTP_DATAGATE_VAR_DATASET:
        if (ctx->dataset) {
            p = (u_char *) ctx->dataset->id.data;
            v->len = ctx->dataset->id.len;
        }
        break;

    case NGX_HTTP_DATAGATE_VAR_PURPOSE:
        p = ctx->purpose.data;
        v->len = ctx->purpose.len;
        break;

    case NGX_HTTP_DATAGATE_VAR_DECISION:
        if (ctx->decided || ctx->status) {
            s = ctx->allowed ? "allowed" : "denied";
        }
        break;

    case NGX_HTTP_DATAGATE_VAR_REASON:
        if (ctx->decided || ctx->status) {
            /* as the audit record says it */
            s = dg_reason_code(ngx_http_datagate_outcome(r->main, ctx, NULL));
        }
        break;

    case NGX_HTTP_DATAGATE_VAR_REQUEST_ID:
        p = ctx->request_id;
        v->len = ctx->request_id_len;
        break;

    case NGX_HTTP_DATAGATE_VAR_MASKED:
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->len = ngx_sprintf(p, "%uL", ctx->masked) - p;
        break;

    case NGX_HTTP_DATAGATE_VAR_CACHE:
        switch (ctx->cache) {
        case NGX_HTTP_DATAGATE_CACHE_HIT:
            s = "hit";
            break;
        case NGX_HTTP_DATAGATE_CACHE_MISS:
            s = "miss";
            break;
        case NGX_HTTP_DATAGATE_CACHE_BYPASS:
            s = "bypass";
            break;
        case NGX_HTTP_DATAGATE_CACHE_REDIS:
            s = "redis";
            break;
        }
        break;
    }

    if (s) {
        p = (u_char *) s;
        v->len = ngx_strlen(s);
    }

    if (p == NULL || v->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


/* ---- init ----------------------------------------------------------- */

ngx_int_t
ngx_http_datagate_access_init(ngx_conf_t *cf)
{
#if (NGX_HTTP_SSL)

    /* no free callback: the data lives in the connection's pool, and a
     * callback into a module that a reload may unload must not exist */

    if (ngx_http_datagate_ssl_index == -1) {
        ngx_http_datagate_ssl_index = SSL_get_ex_new_index(0, NULL, NULL,
                                                           NULL, NULL);
        if (ngx_http_datagate_ssl_index == -1) {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "datagate: SSL_get_ex_new_index() failed");
            return NGX_ERROR;
        }
    }

#endif

    return NGX_OK;
}
