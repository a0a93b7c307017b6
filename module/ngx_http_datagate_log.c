/*
 * datagate: log phase.  One hash-chained audit record per enforced
 * request, allowed or denied, and the counters of the statistics endpoint.
 *
 * One chain for all workers: the chain head (sequence number and last
 * hash) lives in the shared zone, and a record is sealed and written with
 * one write() to the O_APPEND descriptor while the zone's mutex is held,
 * so records never interleave and always link in file order.  On start
 * the head is taken from the last record of an existing file; a reload
 * keeps the zone and so the head; after "nginx -s reopen" the first record
 * of the new file links to the last one of the old file.
 *
 * A failed write is counted (datagate_audit_write_failures_total), logged
 * once when writes start failing and once when they work again, and the
 * next record written says how many were lost ("lost").  The chain does
 * not advance over a lost record, so the file stays verifiable.
 */


#include "ngx_http_datagate.h"
#include "dg_audit.h"


#define NGX_HTTP_DATAGATE_AUDIT_BUF     16384
#define NGX_HTTP_DATAGATE_URI_MAX       2048
#define NGX_HTTP_DATAGATE_HDR_MAX       256


/* what one request adds to the counters and the record */
typedef struct {
    ngx_str_t                       consumer;
    ngx_str_t                       dataset;
    ngx_str_t                       purpose;    /* a known id, "", or
                                                   "(unknown)" */
    const char                     *decision;
    const char                     *reason;
    ngx_uint_t                      cut;        /* cut mid-body */
    uint64_t                        bytes;

    ngx_uint_t                      nmasked;
    ngx_uint_t                     *mclass;     /* class index */
    uint64_t                       *mcount;
    uint64_t                        detect[DG_DETECT_MAX];
    uint64_t                        unlisted;
    uint64_t                        dropped;
} ngx_http_datagate_log_t;


static void ngx_http_datagate_log_collect(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx,
    ngx_http_datagate_log_t *lg);
static u_char *ngx_http_datagate_audit_build(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx,
    ngx_http_datagate_log_t *lg, dg_arec_t *rec);
static void ngx_http_datagate_stats_add(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_log_t *lg, ngx_uint_t *full);
static ngx_http_datagate_stat_t *ngx_http_datagate_stat_get(
    ngx_http_datagate_main_conf_t *dmcf, u_char *key, size_t len,
    ngx_uint_t *full);
static size_t ngx_http_datagate_stat_key(u_char *buf, u_char kind,
    ngx_str_t *labels, ngx_uint_t n);
static void ngx_http_datagate_log_header(ngx_http_request_t *r,
    const char *name, size_t len, ngx_str_t *value);
static ngx_int_t ngx_http_datagate_audit_write(
    ngx_http_datagate_main_conf_t *dmcf, dg_arec_t *rec,
    ngx_http_datagate_shctx_t *sh, ngx_err_t *err, ngx_uint_t *change);


static const char  *ngx_http_datagate_detect_names[DG_DETECT_MAX] = {
    "id_number", "mobile", "bank_card", "uscc"
};

/* the chain head found in the file at configuration time; it seeds the
 * shared zone when the zone is new */
static u_char      ngx_http_datagate_audit_head[DG_AUDIT_HEXLEN + 1];
static uint64_t    ngx_http_datagate_audit_head_seq;
static ngx_uint_t  ngx_http_datagate_audit_head_lf;

/* without a shared zone (never the case with a policy): this process */
static ngx_http_datagate_shctx_t  ngx_http_datagate_audit_local;


ngx_int_t
ngx_http_datagate_log_handler(ngx_http_request_t *r)
{
    u_char                         *line;
    ngx_err_t                       err;
    dg_arec_t                       rec;
    ngx_uint_t                      full, change;
    ngx_int_t                       rc;
    ngx_slab_pool_t                *shpool;
    ngx_http_datagate_ctx_t        *ctx;
    ngx_http_datagate_log_t         lg;
    ngx_http_datagate_shctx_t      *sh;
    ngx_http_datagate_main_conf_t  *dmcf;

    if (r != r->main) {
        return NGX_OK;
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);
    if (dmcf == NULL || dmcf->policy == NULL) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_datagate_module);
    if (ctx == NULL) {
        ctx = ngx_http_datagate_get_ctx(r);
    }

    if (ctx == NULL || !ctx->enforced || ctx->logged) {
        return NGX_OK;
    }

    ctx->logged = 1;

    ngx_http_datagate_log_collect(r, dmcf, ctx, &lg);

    line = NULL;

    if (dmcf->audit_file) {
        line = ngx_http_datagate_audit_build(r, dmcf, ctx, &lg, &rec);
        /* NULL: out of memory, counted as a failed write below */
    }

    sh = dmcf->sh;
    shpool = dmcf->shpool;
    full = 0;
    change = 0;
    err = 0;
    rc = NGX_OK;

    if (sh) {
        ngx_shmtx_lock(&shpool->mutex);
        ngx_http_datagate_stats_add(dmcf, &lg, &full);

    } else {
        sh = &ngx_http_datagate_audit_local;
    }

    if (dmcf->audit_file) {
        if (line) {
            rc = ngx_http_datagate_audit_write(dmcf, &rec, sh, &err,
                                               &change);

        } else {
            (void) ngx_atomic_fetch_add(&sh->audit_failed, 1);
            sh->audit_lost++;
            rc = NGX_ERROR;
        }
    }

    if (sh != &ngx_http_datagate_audit_local) {
        ngx_shmtx_unlock(&shpool->mutex);
    }

    /* tell the operator outside the lock, once per change of state */

    if (full) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "datagate: statistics are full (%ui counters or "
                      "zone memory), further keys are counted as "
                      "\"overflow\"", (ngx_uint_t) NGX_HTTP_DATAGATE_STATS_MAX);
    }

    if (change && rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, err,
                      "datagate: audit log \"%V\": write failed, audit "
                      "records are being lost (counted in "
                      "datagate_audit_write_failures_total)",
                      &dmcf->audit_file->name);

    } else if (change) {
        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "datagate: audit log \"%V\": writes work again",
                      &dmcf->audit_file->name);
    }

    if (rc != NGX_OK && line == NULL && dmcf->audit_file) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "datagate: no memory for an audit record");
    }

    return NGX_OK;
}


static void
ngx_http_datagate_log_collect(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx,
    ngx_http_datagate_log_t *lg)
{
    size_t                  n, i, k;
    uint64_t               *per;
    const dg_plan_t        *plan;
    const dg_policy_t      *p;
    const dg_mask_stats_t  *ms;

    ngx_memzero(lg, sizeof(ngx_http_datagate_log_t));

    p = dmcf->policy;

    /* denied before the access phase read them (e.g. unknown consumer):
     * the declared purpose and approval are still part of the record */

    if (ctx->purpose.len == 0) {
        ngx_http_datagate_log_header(r, "Data-Purpose", 12, &ctx->purpose);
    }

    if (ctx->approval.len == 0) {
        ngx_http_datagate_log_header(r, "Data-Approval", 13, &ctx->approval);
    }

    if (ctx->consumer) {
        lg->consumer.data = (u_char *) ctx->consumer->id.data;
        lg->consumer.len = ctx->consumer->id.len;
    }

    if (ctx->dataset) {
        lg->dataset.data = (u_char *) ctx->dataset->id.data;
        lg->dataset.len = ctx->dataset->id.len;
    }

    /* only a purpose the policy knows becomes a label: the header is
     * the client's, and counters must stay bounded */
    if (ctx->purpose.len) {
        if (dg_policy_purpose(p, (const char *) ctx->purpose.data,
                              ctx->purpose.len))
        {
            lg->purpose = ctx->purpose;

        } else {
            ngx_str_set(&lg->purpose, "(unknown)");
        }
    }

    lg->decision = ctx->allowed ? "allowed" : "denied";

    lg->reason = dg_reason_code(ngx_http_datagate_outcome(r, ctx, &lg->cut));

    if (lg->reason == NULL) {
        lg->reason = "internal";
    }

    if (r->connection->sent > (off_t) r->header_size) {
        lg->bytes = r->connection->sent - r->header_size;
    }

    /* masked values per class, detector hits, unlisted keys */

    plan = ctx->plan;

    if (ctx->mask == NULL || plan == NULL) {
        return;
    }

    ms = dg_mask_stats(ctx->mask);
    if (ms == NULL) {
        return;
    }

    for (k = 0; k < DG_DETECT_MAX; k++) {
        lg->detect[k] = ms->detect[k];
    }

    lg->unlisted = ms->unlisted;
    lg->dropped = ms->dropped;

    n = plan->nfields;

    if (plan->rules && dg_mask_rules_nfields(plan->rules) < n) {
        n = dg_mask_rules_nfields(plan->rules);
    }

    if (n == 0 || ms->field_hits == NULL || plan->classes == NULL
        || p->nclasses == 0)
    {
        return;
    }

    per = ngx_pcalloc(r->pool, p->nclasses * sizeof(uint64_t));
    lg->mclass = ngx_palloc(r->pool, p->nclasses * sizeof(ngx_uint_t));
    lg->mcount = ngx_palloc(r->pool, p->nclasses * sizeof(uint64_t));

    if (per == NULL || lg->mclass == NULL || lg->mcount == NULL) {
        lg->mclass = NULL;
        return;
    }

    /*
     * field_hits[i] counts the members field i matched, whatever its
     * action: only the values withheld (masked or dropped) count, not
     * those shown in clear (level within clearance, or revealed)
     */

    for (i = 0; i < n; i++) {
        if (plan->classes[i] >= 0
            && (size_t) plan->classes[i] < p->nclasses
            && plan->actions != NULL
            && plan->actions[i].method != DG_MASK_CLEAR)
        {
            per[plan->classes[i]] += ms->field_hits[i];
        }
    }

    for (k = 0; k < p->nclasses; k++) {
        if (per[k]) {
            lg->mclass[lg->nmasked] = k;
            lg->mcount[lg->nmasked] = per[k];
            lg->nmasked++;
        }
    }
}


static void
ngx_http_datagate_log_header(ngx_http_request_t *r, const char *name,
    size_t len, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    /* removed entries (hash 0) are skipped, as the access phase reads it */
    h = ngx_http_datagate_find_header(&r->headers_in.headers, name, len);
    if (h != NULL) {
        *value = h->value;
    }
}


/*
 * The outcome, most specific first: the gateway failed closed on the
 * provider's body (upstream_unmaskable); the gateway answered an error of
 * its own or nginx's (that error's code); the policy denied; the provider
 * failed after its header (upstream_unavailable: answered 502/504 while
 * the header was held, else the answer was cut); the answer went out but
 * was not completed (client_closed when the client went away or timed
 * out, internal_error otherwise).  An answer counts as completed when
 * nginx finished the request normally (r->request_complete): every byte
 * was handed to the connection.
 */
dg_reason_e
ngx_http_datagate_outcome(ngx_http_request_t *r, ngx_http_datagate_ctx_t *ctx,
    ngx_uint_t *cut)
{
    ngx_uint_t          body_cut, gone;
    dg_reason_e         reason;
    ngx_connection_t   *c;

    c = r->connection;

    /* the provider's header went out, its body did not go whole */
    body_cut = r->header_sent && !r->header_only && !r->request_complete
               && ctx->allowed && ctx->status == 0;

    gone = c->error || c->timedout;

    if (ctx->unmaskable) {
        reason = DG_R_UPSTREAM_UNMASKABLE;
        body_cut = ctx->cut;

    } else if (ctx->status) {
        reason = (ctx->reason == DG_R_OK) ? DG_R_INTERNAL : ctx->reason;
        body_cut = 0;

    } else if (!ctx->allowed) {
        reason = (ctx->reason == DG_R_OK) ? DG_R_INTERNAL : ctx->reason;
        body_cut = 0;

    } else if (ctx->provider_status) {
        /* cut once its header was out (nginx may call the request
         * complete: it only closes instead of sending the last chunk) */
        reason = DG_R_UPSTREAM_UNAVAILABLE;
        body_cut = ctx->cut;

    } else if (body_cut) {
        reason = gone ? DG_R_CLIENT_CLOSED : DG_R_INTERNAL;

    } else if (!r->request_complete && gone && !r->header_sent) {
        /* gone before the (held) header went out */
        reason = DG_R_CLIENT_CLOSED;

    } else {
        reason = DG_R_OK;
    }

    if (cut) {
        *cut = body_cut;
    }

    return reason;
}


/* ---- the audit record ------------------------------------------------- */

static u_char *
ngx_http_datagate_audit_build(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx,
    ngx_http_datagate_log_t *lg, dg_arec_t *rec)
{
    u_char             *buf, tbuf[40];
    size_t              len;
    ngx_tm_t            tm;
    ngx_int_t           status;
    ngx_uint_t          i;
    ngx_time_t         *tp;
    ngx_msec_int_t      ms;
    const dg_class_t   *cls;
    const dg_policy_t  *p;

    p = dmcf->policy;

    buf = ngx_pnalloc(r->pool, NGX_HTTP_DATAGATE_AUDIT_BUF);
    if (buf == NULL || dg_arec_init(rec, (char *) buf,
                                    NGX_HTTP_DATAGATE_AUDIT_BUF) != 0)
    {
        return NULL;
    }

    /* time: ISO 8601 in local time with milliseconds */

    tp = ngx_timeofday();
    ngx_gmtime(tp->sec + tp->gmtoff * 60, &tm);

    len = ngx_sprintf(tbuf, "%4d-%02d-%02dT%02d:%02d:%02d.%03M",
                      tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                      tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                      tp->msec) - tbuf;

    if (tp->gmtoff == 0) {
        tbuf[len++] = 'Z';

    } else {
        len = ngx_sprintf(tbuf + len, "%c%02i:%02i",
                          tp->gmtoff < 0 ? '-' : '+',
                          ngx_abs(tp->gmtoff / 60), ngx_abs(tp->gmtoff % 60))
              - tbuf;
    }

    dg_arec_str(rec, "time", (char *) tbuf, len);

    dg_arec_cstr(rec, "request_id", ctx->request_id[0]
                                    ? (char *) ctx->request_id : NULL);

    dg_arec_str(rec, "consumer", (char *) lg->consumer.data,
                lg->consumer.len);

    dg_arec_str(rec, "cert_serial", (char *) ctx->cert_serial.data,
                ctx->cert_serial.len);

    dg_arec_str(rec, "client", (char *) r->connection->addr_text.data,
                r->connection->addr_text.len);

    dg_arec_cstr(rec, "country", ctx->country[0]
                                 ? (char *) ctx->country : NULL);

    if (ctx->region[0]) {
        dg_arec_cstr(rec, "region", (char *) ctx->region);
    }

    dg_arec_str(rec, "dataset", (char *) lg->dataset.data, lg->dataset.len);

    if (ctx->dataset) {
        dg_arec_uint(rec, "level", ctx->dataset->level);

    } else {
        dg_arec_str(rec, "level", NULL, 0);
    }

    dg_arec_str(rec, "purpose", (char *) ctx->purpose.data,
                ngx_min(ctx->purpose.len, NGX_HTTP_DATAGATE_HDR_MAX));

    dg_arec_str(rec, "approval", (char *) ctx->approval.data,
                ngx_min(ctx->approval.len, NGX_HTTP_DATAGATE_HDR_MAX));

    dg_arec_str(rec, "method", (char *) r->method_name.data,
                r->method_name.len);

    dg_arec_str(rec, "uri", (char *) r->unparsed_uri.data,
                ngx_min(r->unparsed_uri.len, NGX_HTTP_DATAGATE_URI_MAX));

    dg_arec_cstr(rec, "decision", lg->decision);
    dg_arec_cstr(rec, "reason", lg->reason);

    if (ctx->unmaskable) {
        dg_arec_cstr(rec, "detail", ctx->unmaskable);

    } else if (ctx->provider_error) {
        dg_arec_cstr(rec, "detail", ctx->provider_error);
    }

    if (lg->cut) {
        dg_arec_bool(rec, "cut", 1);
    }

    status = r->err_status ? r->err_status : r->headers_out.status;
    if (status == 0 && r->connection->error) {
        status = 499;   /* as nginx logs a client gone before a response */
    }

    dg_arec_uint(rec, "status", status);
    dg_arec_uint(rec, "bytes", lg->bytes);

    dg_arec_obj_begin(rec, "masked");

    for (i = 0; i < lg->nmasked && lg->mclass; i++) {
        cls = &p->classes[lg->mclass[i]];
        dg_arec_uint_n(rec, cls->id.data, cls->id.len, lg->mcount[i]);
    }

    dg_arec_obj_end(rec);

    for (i = 0; i < DG_DETECT_MAX; i++) {
        if (lg->detect[i]) {
            break;
        }
    }

    if (i < DG_DETECT_MAX) {
        dg_arec_obj_begin(rec, "detected");

        for (i = 0; i < DG_DETECT_MAX; i++) {
            if (lg->detect[i]) {
                dg_arec_uint(rec, ngx_http_datagate_detect_names[i],
                             lg->detect[i]);
            }
        }

        dg_arec_obj_end(rec);
    }

    if (lg->unlisted) {
        dg_arec_uint(rec, "unlisted", lg->unlisted);
    }

    if (lg->dropped) {
        dg_arec_uint(rec, "dropped", lg->dropped);
    }

    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    dg_arec_uint(rec, "duration_ms", ms > 0 ? (uint64_t) ms : 0);

    dg_arec_str(rec, "policy", p->version_hex, 16);

    return buf;
}


/*
 * Under the zone lock: seal with the chain head, write, advance the head.
 * *change is set when writes start or stop failing.
 */
static ngx_int_t
ngx_http_datagate_audit_write(ngx_http_datagate_main_conf_t *dmcf,
    dg_arec_t *rec, ngx_http_datagate_shctx_t *sh, ngx_err_t *err,
    ngx_uint_t *change)
{
    char        hash[DG_AUDIT_HEXLEN + 1];
    u_char     *p;
    size_t      len;
    ssize_t     n;
    ngx_fd_t    fd;
    const char *line;

    if (sh->audit_last[0] == '\0') {
        /* a new zone: continue the chain found in the file */
        if (ngx_http_datagate_audit_head[0] == '\0') {
            ngx_memcpy(ngx_http_datagate_audit_head, dg_audit_genesis,
                       DG_AUDIT_HEXLEN + 1);
        }

        ngx_memcpy(sh->audit_last, ngx_http_datagate_audit_head,
                   DG_AUDIT_HEXLEN + 1);
        sh->audit_seq = (ngx_uint_t) ngx_http_datagate_audit_head_seq;
        sh->audit_need_lf = ngx_http_datagate_audit_head_lf ? 1 : 0;
    }

    if (sh->audit_lost) {
        dg_arec_uint(rec, "lost", sh->audit_lost);
    }

    if (dg_arec_seal(rec, (int) dmcf->audit_hash, sh->audit_seq + 1,
                     (char *) sh->audit_last, hash, &line, &len)
        != 0)
    {
        *err = 0;
        goto failed;
    }

    p = (u_char *) line;

    if (sh->audit_need_lf) {
        /* end the torn line left by a failed write: the record must
         * start a line of its own (DG_AREC_HEAD leaves room in front) */
        *--p = '\n';
        len++;
    }

    fd = dmcf->audit_file->fd;

    n = write(fd, p, len);

    if (n != (ssize_t) len) {
        *err = (n == -1) ? ngx_errno : NGX_ENOSPC;

        if (n > 0) {
            sh->audit_need_lf = 1;
        }

        goto failed;
    }

    ngx_memcpy(sh->audit_last, hash, DG_AUDIT_HEXLEN + 1);
    sh->audit_seq++;
    sh->audit_need_lf = 0;
    sh->audit_lost = 0;

    if (sh->audit_failing) {
        sh->audit_failing = 0;
        *change = 1;
    }

    return NGX_OK;

failed:

    (void) ngx_atomic_fetch_add(&sh->audit_failed, 1);
    sh->audit_lost++;

    if (!sh->audit_failing) {
        sh->audit_failing = 1;
        *change = 1;
    }

    return NGX_ERROR;
}


/* ---- counters --------------------------------------------------------- */

static void
ngx_http_datagate_stats_add(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_log_t *lg, ngx_uint_t *full)
{
    u_char                     key[6 * (NGX_HTTP_DATAGATE_LABEL_MAX + 1)];
    size_t                     len;
    ngx_str_t                  l[5];
    ngx_uint_t                 i;
    const dg_class_t          *cls;
    ngx_http_datagate_stat_t  *st;

    l[0] = lg->consumer;
    l[1] = lg->dataset;
    l[2] = lg->purpose;
    l[3].data = (u_char *) lg->decision;
    l[3].len = ngx_strlen(lg->decision);
    l[4].data = (u_char *) lg->reason;
    l[4].len = ngx_strlen(lg->reason);

    len = ngx_http_datagate_stat_key(key, NGX_HTTP_DATAGATE_STAT_REQUESTS,
                                     l, 5);
    st = ngx_http_datagate_stat_get(dmcf, key, len, full);

    if (st) {
        st->count++;
        st->bytes += lg->bytes;

    } else {
        dmcf->sh->stats_overflow++;
        dmcf->sh->stats_overflow_bytes += lg->bytes;
    }

    l[0] = lg->dataset;

    for (i = 0; i < lg->nmasked && lg->mclass; i++) {
        cls = &dmcf->policy->classes[lg->mclass[i]];
        l[1].data = (u_char *) cls->id.data;
        l[1].len = cls->id.len;
        len = ngx_http_datagate_stat_key(key, NGX_HTTP_DATAGATE_STAT_MASKED,
                                         l, 2);
        st = ngx_http_datagate_stat_get(dmcf, key, len, full);
        if (st) {
            st->count += lg->mcount[i];
        }
    }

    for (i = 0; i < DG_DETECT_MAX; i++) {
        if (lg->detect[i] == 0) {
            continue;
        }

        l[1].data = (u_char *) ngx_http_datagate_detect_names[i];
        l[1].len = ngx_strlen(ngx_http_datagate_detect_names[i]);
        len = ngx_http_datagate_stat_key(key, NGX_HTTP_DATAGATE_STAT_DETECT,
                                         l, 2);
        st = ngx_http_datagate_stat_get(dmcf, key, len, full);
        if (st) {
            st->count += lg->detect[i];
        }
    }

    if (lg->unlisted) {
        len = ngx_http_datagate_stat_key(key, NGX_HTTP_DATAGATE_STAT_UNLISTED,
                                         l, 1);
        st = ngx_http_datagate_stat_get(dmcf, key, len, full);
        if (st) {
            st->count += lg->unlisted;
        }
    }
}


/* the kind byte, then each label cut to LABEL_MAX and a '\0' */
static size_t
ngx_http_datagate_stat_key(u_char *buf, u_char kind, ngx_str_t *labels,
    ngx_uint_t n)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   i;

    p = buf;
    *p++ = kind;

    for (i = 0; i < n; i++) {
        len = ngx_min(labels[i].len, NGX_HTTP_DATAGATE_LABEL_MAX);
        p = ngx_cpymem(p, labels[i].data, len);
        *p++ = '\0';
    }

    return p - buf;
}


/*
 * A worker's direct-mapped cache of counter nodes: nearly every request
 * adds to the same few counters, and a hit costs a murmur hash and one
 * memcmp() against the node's own key instead of crc32 and a walk of the
 * shared tree.  Counters are never freed while their zone lives; the
 * cache is emptied when the zone changes.  Called with the zone locked.
 */
#define NGX_HTTP_DATAGATE_STAT_CACHE  64    /* a power of 2 */

static ngx_http_datagate_shctx_t  *ngx_http_datagate_stat_cache_sh;
static ngx_http_datagate_stat_t
    *ngx_http_datagate_stat_cache[NGX_HTTP_DATAGATE_STAT_CACHE];


static ngx_http_datagate_stat_t *
ngx_http_datagate_stat_get(ngx_http_datagate_main_conf_t *dmcf, u_char *key,
    size_t len, ngx_uint_t *full)
{
    uint32_t                    hash;
    ngx_str_t                   k;
    ngx_uint_t                  slot;
    ngx_str_node_t             *sn;
    ngx_http_datagate_stat_t   *st;
    ngx_http_datagate_shctx_t  *sh;

    sh = dmcf->sh;

    if (ngx_http_datagate_stat_cache_sh != sh) {
        ngx_memzero(ngx_http_datagate_stat_cache,
                    sizeof(ngx_http_datagate_stat_cache));
        ngx_http_datagate_stat_cache_sh = sh;
    }

    slot = ngx_murmur_hash2(key, len) & (NGX_HTTP_DATAGATE_STAT_CACHE - 1);
    st = ngx_http_datagate_stat_cache[slot];

    if (st && st->sn.str.len == len && ngx_memcmp(st->key, key, len) == 0) {
        return st;
    }

    k.data = key;
    k.len = len;
    hash = ngx_crc32_short(key, len);

    sn = ngx_str_rbtree_lookup(&sh->stats.rbtree, &k, hash);
    if (sn) {
        st = (ngx_http_datagate_stat_t *) sn;
        ngx_http_datagate_stat_cache[slot] = st;
        return st;
    }

    if (sh->stats_nodes >= NGX_HTTP_DATAGATE_STATS_MAX) {
        goto overflow;
    }

    st = ngx_slab_alloc_locked(dmcf->shpool,
                               offsetof(ngx_http_datagate_stat_t, key) + len);
    if (st == NULL) {
        goto overflow;
    }

    ngx_memcpy(st->key, key, len);
    st->sn.node.key = hash;
    st->sn.str.data = st->key;
    st->sn.str.len = len;
    st->count = 0;
    st->bytes = 0;

    ngx_rbtree_insert(&sh->stats.rbtree, &st->sn.node);
    ngx_queue_insert_tail(&sh->stats.queue, &st->queue);
    sh->stats_nodes++;

    ngx_http_datagate_stat_cache[slot] = st;

    return st;

overflow:

    if (!sh->stats_full) {
        sh->stats_full = 1;
        *full = 1;
    }

    return NULL;
}


/* ---- configuration ---------------------------------------------------- */

ngx_int_t
ngx_http_datagate_audit_init(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf)
{
    int        rc, fd;
    u_char    *path, last;
    uint64_t   seq;
    char       hash[DG_AUDIT_HEXLEN + 1], err[DG_ERRLEN];

    path = ngx_pnalloc(cf->pool, dmcf->audit_file->name.len + 1);
    if (path == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(path, dmcf->audit_file->name.data,
                dmcf->audit_file->name.len + 1);

    rc = dg_audit_tail((char *) path, &seq, hash, err, sizeof(err));

    ngx_memcpy(ngx_http_datagate_audit_head, hash, DG_AUDIT_HEXLEN + 1);
    ngx_http_datagate_audit_head_seq = seq;
    ngx_http_datagate_audit_head_lf = 0;

    if (rc == -1) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "datagate: audit log: %s; the chain continues from "
                      "seq %uL, \"datagate audit verify\" will show the "
                      "damage", err, seq);

        /* a torn last line must not swallow the next record */
        fd = open((char *) path, O_RDONLY);
        if (fd != -1) {
            off_t  size = lseek(fd, 0, SEEK_END);

            if (size > 0 && pread(fd, &last, 1, size - 1) == 1
                && last != '\n')
            {
                ngx_http_datagate_audit_head_lf = 1;
            }

            close(fd);
        }

    } else if (rc == 1) {
        ngx_log_error(NGX_LOG_NOTICE, cf->log, 0,
                      "datagate: audit log \"%s\" (%s): chain head seq %uL "
                      "hash %s", path,
                      dg_audit_alg_name((int) dmcf->audit_hash), seq, hash);
    }

    return NGX_OK;
}
