
/*
 * datagate: the access phase.
 *
 * identity (verified client certificate) -> consumer -> network / geo
 * (_identity.c) -> the request's path and headers (_request.c) ->
 * run-time grants (_incident.c) -> decision (_dcache.c) -> incident
 * controls (_incident.c, _abuse.c) -> rate limit (_limit.c) -> abuse
 * detection (_abuse.c) -> upstream request headers.
 *
 * The handler is re-entrant: every step that may wait for Redis returns
 * NGX_AGAIN and the handler resumes from ctx->stage when the phases are
 * run again.  Denials answer the JSON error (_error.c) and finalize the
 * request; the log phase (audit) still runs.
 */


#include "ngx_http_datagate.h"

#include <openssl/rand.h>


/* a check that may wait for Redis and may deny with a reason */
typedef ngx_int_t (*ngx_http_datagate_check_pt)(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e *reason);


static ngx_int_t ngx_http_datagate_stage_check(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_check_pt check);
static ngx_int_t ngx_http_datagate_catalogue_access(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx);
static void ngx_http_datagate_ctx_cleanup(void *data);
static ngx_http_datagate_ctx_t *ngx_http_datagate_create_ctx(
    ngx_http_request_t *r);
static void ngx_http_datagate_request_id(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);
static ngx_int_t ngx_http_datagate_upstream_headers(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);
static ngx_int_t ngx_http_datagate_push_header(ngx_http_request_t *r,
    ngx_list_t *list, const char *name, u_char *value, size_t len);


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

    if ((dlcf->enable != 1 || dlcf->status) && !dlcf->catalogue) {
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

        if (ctx->dataset == dlcf->dataset && ctx->allowed
            && ctx->catalogue == dlcf->catalogue)
        {
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
        ctx->catalogue = 0;
        ctx->grant = NULL;
        ctx->plan = NULL;
        ctx->reason = DG_R_OK;
    }

    ctx->enforced = 1;

    if (dlcf->catalogue) {
        return ngx_http_datagate_catalogue_access(r, dmcf, ctx);
    }

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
            return NGX_AGAIN;
        }

        if (rc != NGX_OK) {
            return ngx_http_datagate_send_error(r, ctx, DG_R_INTERNAL, NULL);
        }

        ctx->reason = d.reason;
        ctx->grant = d.grant;
        ctx->plan = d.plan;
        ctx->decided = 1;

        ctx->stage = NGX_HTTP_DATAGATE_STAGE_INCIDENT;

        /* fall through */

    case NGX_HTTP_DATAGATE_STAGE_INCIDENT:

        rc = ngx_http_datagate_stage_check(r, ctx,
                                           ngx_http_datagate_incident_check);
        if (rc != NGX_OK) {
            return rc;
        }

        /* suspended here by abuse detection (_abuse.c) */
        reason = ngx_http_datagate_abuse_suspended(r, ctx);
        if (reason != DG_R_OK) {
            return ngx_http_datagate_send_error(r, ctx, reason, NULL);
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
            return NGX_AGAIN;
        }

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

    /* admitted: abuse detection counts it, and may suspend the consumer
     * with it (_abuse.c) */

    rc = ngx_http_datagate_abuse_check(r, ctx);

    if (rc == NGX_DECLINED) {
        return ngx_http_datagate_send_error(r, ctx, DG_R_CONSUMER_SUSPENDED,
                                            NULL);
    }

    if (rc != NGX_OK) {
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
        return NGX_AGAIN;
    }

    if (rc != NGX_OK) {
        return ngx_http_datagate_send_error(r, ctx, DG_R_INTERNAL, NULL);
    }

    if (reason != DG_R_OK) {
        return ngx_http_datagate_send_error(r, ctx, reason, NULL);
    }

    return NGX_OK;
}


/*
 * A catalogue location (_catalogue.c): the consumer of the certificate,
 * checked as on a data location (identity, TLS binding, network, geo,
 * the request's path and headers, a revoked certificate or suspended
 * consumer, the audit rule), without a dataset, purpose or budget; the
 * content handler then answers its catalogue.
 */
static ngx_int_t
ngx_http_datagate_catalogue_access(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx)
{
    ngx_int_t    rc;
    dg_reason_e  reason;

    switch (ctx->stage) {

    case NGX_HTTP_DATAGATE_STAGE_START:

        ctx->catalogue = 1;
        ctx->dataset = NULL;

        reason = ngx_http_datagate_identify(r, dmcf, ctx);
        if (reason != DG_R_OK) {
            return ngx_http_datagate_send_error(r, ctx, reason, ctx->detail);
        }

        rc = ngx_http_datagate_request_check(r, &ctx->detail);

        if (rc == NGX_DECLINED) {
            return ngx_http_datagate_send_error(r, ctx,
                                                DG_R_REQUEST_REJECTED,
                                                ctx->detail);
        }

        if (rc != NGX_OK) {
            return ngx_http_datagate_send_error(r, ctx, DG_R_INTERNAL, NULL);
        }

        ctx->stage = NGX_HTTP_DATAGATE_STAGE_INCIDENT;

        /* fall through */

    case NGX_HTTP_DATAGATE_STAGE_INCIDENT:

        rc = ngx_http_datagate_stage_check(r, ctx,
                                           ngx_http_datagate_incident_check);
        if (rc != NGX_OK) {
            return rc;
        }

        if (ngx_http_datagate_audit_check(dmcf) != NGX_OK) {
            return ngx_http_datagate_send_error(r, ctx,
                                                DG_R_AUDIT_UNAVAILABLE,
                                                NULL);
        }

        break;

    default:
        return ngx_http_datagate_send_error(r, ctx, DG_R_INTERNAL, NULL);
    }

    ctx->allowed = 1;
    ctx->reason = DG_R_OK;
    ctx->stage = NGX_HTTP_DATAGATE_STAGE_DONE;

    return NGX_DECLINED;
}


/* ---- ctx ------------------------------------------------------------ */

/* nothing to free: the handler marks the cleanup that holds the ctx,
 * for ngx_http_datagate_get_ctx() to find it after an internal redirect */
static void
ngx_http_datagate_ctx_cleanup(void *data)
{
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

    ctx->reason = DG_R_OK;
    ctx->stage = NGX_HTTP_DATAGATE_STAGE_START;

    ngx_http_datagate_request_id(r, ctx);

    ngx_http_set_ctx(r, ctx, ngx_http_datagate_module);

    return ctx;
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
    ngx_str_t                  *drop;
    ngx_uint_t                  n, masks;
    ngx_list_t                  list;
    ngx_list_part_t            *part;
    ngx_table_elt_t            *h, *nh;
    ngx_http_datagate_hiter_t   hi;

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

    for (h = ngx_http_datagate_header_first(&hi, &r->headers_in.headers);
         h != NULL;
         h = ngx_http_datagate_header_next(&hi))
    {
        if (h->key.len >= sizeof("Datagate-") - 1
            && (ngx_strncasecmp(h->key.data, (u_char *) "Datagate-",
                                sizeof("Datagate-") - 1) == 0
                || ngx_strncasecmp(h->key.data, (u_char *) "Datagate_",
                                   sizeof("Datagate_") - 1) == 0))
        {
            /* "Datagate_" too: CGI-style servers read it as "Datagate-"
             * (underscores_in_headers on) */
            continue;
        }

        if (masks) {
            for (drop = ngx_http_datagate_masked_drop; drop->len; drop++) {
                if (h->key.len == drop->len
                    && ngx_strncasecmp(h->key.data, drop->data, drop->len)
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

        *nh = *h;
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


/* a header for the provider: name a string literal */
static ngx_int_t
ngx_http_datagate_push_header(ngx_http_request_t *r, ngx_list_t *list,
    const char *name, u_char *value, size_t len)
{
    size_t            nlen;
    ngx_table_elt_t  *h;

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

    nlen = ngx_strlen(name);

    h->key.data = (u_char *) name;
    h->key.len = nlen;

    h->lowcase_key = ngx_pnalloc(r->pool, nlen);
    if (h->lowcase_key == NULL) {
        return NGX_ERROR;
    }

    h->hash = ngx_hash_strlow(h->lowcase_key, h->key.data, nlen);

    return NGX_OK;
}
