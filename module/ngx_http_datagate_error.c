
/*
 * datagate: the JSON error answer (docs/errors.md) and the $datagate_*
 * variables.
 */


#include "ngx_http_datagate.h"


enum {
    NGX_HTTP_DATAGATE_VAR_CONSUMER = 0,
    NGX_HTTP_DATAGATE_VAR_DATASET,
    NGX_HTTP_DATAGATE_VAR_PURPOSE,
    NGX_HTTP_DATAGATE_VAR_DECISION,
    NGX_HTTP_DATAGATE_VAR_REASON,
    NGX_HTTP_DATAGATE_VAR_REQUEST_ID,
    NGX_HTTP_DATAGATE_VAR_MASKED,
    NGX_HTTP_DATAGATE_VAR_CACHE,
    NGX_HTTP_DATAGATE_VAR_RECORDS
};


static ngx_int_t ngx_http_datagate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


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

    { ngx_string("datagate_records"), NULL, ngx_http_datagate_variable,
      NGX_HTTP_DATAGATE_VAR_RECORDS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};



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

    if (r->headers_out.content_length) {
        ngx_http_datagate_header_drop(r, r->headers_out.content_length);
    }

    r->headers_out.content_length_n = b->last - b->pos;

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

    case NGX_HTTP_DATAGATE_VAR_RECORDS:
        /* records sent, when the masker read the body */
        if (ctx->mask == NULL) {
            break;
        }

        p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->len = ngx_sprintf(p, "%uL", dg_mask_stats(ctx->mask)->records)
                 - p;
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

