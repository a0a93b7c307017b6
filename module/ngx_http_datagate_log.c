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
 * A record that cannot be written (write() fails or is short, the file
 * was removed) is counted (datagate_audit_write_failures_total), the
 * zone says "failing" until a record is written again, and the next
 * record written says how many were lost ("lost").  Both changes of
 * state are logged once.  The chain does not advance over a lost record,
 * and the part of a short write is cut off the file again, so the file
 * stays verifiable.  While failing, with on_failure=deny (the default),
 * the access phase refuses what the policy allows with 503
 * audit_unavailable; the records of those refusals are write attempts
 * too, so the first one that is written ends the state.  A loss not yet
 * counted in a record is kept in the datagate_state file across a
 * restart (_state.c).
 */


#include "ngx_http_datagate.h"
#include "dg_audit.h"


/* changes of the write state, logged outside the lock */
#define NGX_HTTP_DATAGATE_AUDIT_SAME       0
#define NGX_HTTP_DATAGATE_AUDIT_FAILED     1
#define NGX_HTTP_DATAGATE_AUDIT_RECOVERED  2


/* the outcome of one write, under the lock */
typedef struct {
    ngx_uint_t                      change;     /* AUDIT_SAME, ... */
    ngx_err_t                       err;
    const char                     *why;        /* what happened */
    uint64_t                        lost;       /* counted in ... */
    uint64_t                        seq;        /* ... this record */
} ngx_http_datagate_audit_res_t;


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
    ngx_http_datagate_shctx_t *sh, ngx_http_datagate_audit_res_t *res);
static void ngx_http_datagate_audit_seed(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_shctx_t *sh);
static void ngx_http_datagate_audit_md_cleanup(void *data);
static void ngx_http_datagate_audit_untear(ngx_fd_t fd, u_char *p,
    size_t n, ngx_file_info_t *before, ngx_http_datagate_shctx_t *sh);
static void ngx_http_datagate_audit_failed(ngx_http_datagate_shctx_t *sh,
    ngx_http_datagate_audit_res_t *res);
static void ngx_http_datagate_audit_report(ngx_log_t *log,
    ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_audit_res_t *res);


/* without a shared zone (never the case with a policy): this process */
static ngx_http_datagate_shctx_t  ngx_http_datagate_audit_local;


ngx_int_t
ngx_http_datagate_log_handler(ngx_http_request_t *r)
{
    u_char                         *line;
    dg_arec_t                       rec;
    ngx_uint_t                      full;
    ngx_slab_pool_t                *shpool;
    ngx_http_datagate_ctx_t        *ctx;
    ngx_http_datagate_log_t         lg;
    ngx_http_datagate_shctx_t      *sh;
    ngx_http_datagate_main_conf_t  *dmcf;
    ngx_http_datagate_audit_res_t   res;

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
        /* NULL: out of memory, a lost record like a failed write */
    }

    sh = dmcf->sh;
    shpool = dmcf->shpool;
    full = 0;

    ngx_memzero(&res, sizeof(ngx_http_datagate_audit_res_t));

    if (sh) {
        ngx_shmtx_lock(&shpool->mutex);
        ngx_http_datagate_stats_add(dmcf, &lg, &full);

    } else {
        sh = &ngx_http_datagate_audit_local;
    }

    if (dmcf->audit_file) {
        if (line) {
            (void) ngx_http_datagate_audit_write(dmcf, &rec, sh, &res);

        } else {
            res.why = "no memory for the record";
            ngx_http_datagate_audit_failed(sh, &res);
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

    if (res.change != NGX_HTTP_DATAGATE_AUDIT_SAME) {
        ngx_http_datagate_audit_report(r->connection->log, dmcf, &res);
    }

    /* the records of the answer, for abuse detection */
    ngx_http_datagate_abuse_log(r, ctx);

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

    /*
     * The provider's response headers the header rule dropped count as
     * unlisted keys that were removed; safety-net hits in headers as
     * hits (_headers.c).
     */

    for (k = 0; k < DG_DETECT_MAX; k++) {
        lg->detect[k] = ctx->hdr_detect[k];
    }

    lg->unlisted = ctx->hdr_dropped;
    lg->dropped = ctx->hdr_dropped;

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
        lg->detect[k] += ms->detect[k];
    }

    lg->unlisted += ms->unlisted;
    lg->dropped += ms->dropped;

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
 * The outcome, most specific first: an incident control ended the
 * answer (its code); the gateway failed closed on the provider's body
 * (upstream_unmaskable); the gateway answered an error of
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

    if (ctx->cut_reason != DG_R_OK) {
        /* allowed, then ended by an incident control (_watch.c): the
         * control's code, cut once the header had gone out */
        reason = ctx->cut_reason;
        body_cut = ctx->cut;

    } else if (ctx->unmaskable) {
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
    u_char             *buf, tbuf[DG_AUDIT_MAX_TIME];
    size_t              len;
    ngx_int_t           status;
    ngx_uint_t          i;
    ngx_time_t         *tp;
    dg_acount_t        *masked, detected[DG_DETECT_MAX];
    ngx_msec_int_t      ms;
    const dg_class_t   *cls;
    const dg_policy_t  *p;
    dg_audit_fields_t   f;

    p = dmcf->policy;

    buf = ngx_pnalloc(r->pool, DG_AUDIT_RECORD_MAX);
    if (buf == NULL
        || dg_arec_init(rec, (char *) buf, DG_AUDIT_RECORD_MAX) != 0)
    {
        return NULL;
    }

    ngx_memzero(&f, sizeof(dg_audit_fields_t));

    tp = ngx_timeofday();
    len = ngx_http_datagate_audit_time(tbuf);

    f.time.data = (char *) tbuf;
    f.time.len = len;

    /*
     * Every string below is bounded by dg_audit_encode() after escaping
     * (dg_audit.h): the client's method, URI, Data-Purpose and
     * Data-Approval cannot crowd the decision out of the record.
     */

#define ngx_http_datagate_astr(dst, d, l)                                     \
    do { (dst).data = (const char *) (d); (dst).len = (l); } while (0)

    if (ctx->request_id[0]) {
        ngx_http_datagate_astr(f.request_id, ctx->request_id,
                               ngx_strlen(ctx->request_id));
    }

    ngx_http_datagate_astr(f.consumer, lg->consumer.data, lg->consumer.len);
    ngx_http_datagate_astr(f.cert_serial, ctx->cert_serial.data,
                           ctx->cert_serial.len);

    /* the address the rules used, the TCP peer, and the one a proxy or
     * nginx's real_ip named (only when there is one) */

    (void) ngx_http_datagate_client_addr(r, ctx);

    ngx_http_datagate_astr(f.client, ctx->client_text.data,
                           ctx->client_text.len);
    ngx_http_datagate_astr(f.peer, ctx->peer_text.data, ctx->peer_text.len);

    if (ctx->forwarded_text.len) {
        ngx_http_datagate_astr(f.forwarded, ctx->forwarded_text.data,
                               ctx->forwarded_text.len);
    }

    if (ctx->country[0]) {
        ngx_http_datagate_astr(f.country, ctx->country,
                               ngx_strlen(ctx->country));
    }

    if (ctx->region[0]) {
        ngx_http_datagate_astr(f.region, ctx->region,
                               ngx_strnlen(ctx->region, sizeof(ctx->region)));
    }

    ngx_http_datagate_astr(f.dataset, lg->dataset.data, lg->dataset.len);
    f.level = ctx->dataset ? (int) ctx->dataset->level : -1;

    ngx_http_datagate_astr(f.purpose, ctx->purpose.data, ctx->purpose.len);
    ngx_http_datagate_astr(f.approval, ctx->approval.data,
                           ctx->approval.len);
    ngx_http_datagate_astr(f.method, r->method_name.data,
                           r->method_name.len);
    ngx_http_datagate_astr(f.uri, r->unparsed_uri.data, r->unparsed_uri.len);

#undef ngx_http_datagate_astr

    f.decision = lg->decision;
    f.reason = lg->reason;
    f.detail = ctx->unmaskable ? ctx->unmaskable : ctx->provider_error;
    f.cut = lg->cut;

    if (f.detail == NULL && ctx->reason == DG_R_REQUEST_REJECTED) {
        /* why datagate refused the path or a header (_request.c) */
        f.detail = ctx->detail;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;
    if (status == 0 && r->connection->error) {
        status = 499;   /* as nginx logs a client gone before a response */
    }

    f.status = status;
    f.bytes = lg->bytes;

    masked = NULL;

    if (lg->nmasked && lg->mclass) {
        masked = ngx_palloc(r->pool, lg->nmasked * sizeof(dg_acount_t));
        if (masked == NULL) {
            return NULL;
        }

        for (i = 0; i < lg->nmasked; i++) {
            cls = &p->classes[lg->mclass[i]];
            masked[i].name = cls->id.data;
            masked[i].len = cls->id.len;
            masked[i].count = lg->mcount[i];
        }

        f.masked = masked;
        f.nmasked = lg->nmasked;
    }

    for (i = 0; i < DG_DETECT_MAX; i++) {
        if (lg->detect[i]) {
            detected[f.ndetected].name = dg_mask_detect_kinds[i].name;
            detected[f.ndetected].len =
                                ngx_strlen(dg_mask_detect_kinds[i].name);
            detected[f.ndetected].count = lg->detect[i];
            f.ndetected++;
        }
    }

    f.detected = detected;
    f.unlisted = lg->unlisted;
    f.dropped = lg->dropped;

    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    f.duration_ms = ms > 0 ? (uint64_t) ms : 0;

    f.policy.data = p->version_hex;
    f.policy.len = 16;

    if (dg_audit_encode(rec, &f) != 0) {
        return NULL;
    }

    return buf;
}


/* time: ISO 8601 in local time with milliseconds */
size_t
ngx_http_datagate_audit_time(u_char *buf)
{
    size_t       len;
    ngx_tm_t     tm;
    ngx_time_t  *tp;

    tp = ngx_timeofday();
    ngx_gmtime(tp->sec + tp->gmtoff * 60, &tm);

    len = ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02d.%03M",
                      tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                      tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                      tp->msec) - buf;

    if (tp->gmtoff == 0) {
        buf[len++] = 'Z';

    } else {
        len = ngx_sprintf(buf + len, "%c%02i:%02i",
                          tp->gmtoff < 0 ? '-' : '+',
                          ngx_abs(tp->gmtoff / 60), ngx_abs(tp->gmtoff % 60))
              - buf;
    }

    return len;
}


void
ngx_http_datagate_audit_event(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, dg_arec_t *rec)
{
    ngx_http_datagate_shctx_t      *sh;
    ngx_http_datagate_audit_res_t   res;

    if (dmcf->audit_file == NULL) {
        return;
    }

    ngx_memzero(&res, sizeof(ngx_http_datagate_audit_res_t));

    sh = dmcf->sh ? dmcf->sh : &ngx_http_datagate_audit_local;

    if (dmcf->sh) {
        ngx_shmtx_lock(&dmcf->shpool->mutex);
    }

    (void) ngx_http_datagate_audit_write(dmcf, rec, sh, &res);

    if (dmcf->sh) {
        ngx_shmtx_unlock(&dmcf->shpool->mutex);
    }

    if (res.change != NGX_HTTP_DATAGATE_AUDIT_SAME) {
        ngx_http_datagate_audit_report(log, dmcf, &res);
    }
}


/* a new zone: continue the chain found in the file */
static void
ngx_http_datagate_audit_seed(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_shctx_t *sh)
{
    const u_char  *head;

    head = dmcf->audit_head[0] ? dmcf->audit_head
                               : (const u_char *) dg_audit_genesis;

    ngx_memcpy(sh->audit_last, head, DG_AUDIT_HEXLEN + 1);
    sh->audit_seq = (ngx_uint_t) dmcf->audit_head_seq;

    if (dmcf->audit_head_torn) {
        /* the file ends in a torn line: a record whose write was cut
         * (a crash); unless the state file counted the loss already */
        sh->audit_need_lf = 1;
        sh->audit_torn_dev = dmcf->audit_head_dev;
        sh->audit_torn_ino = dmcf->audit_head_ino;

        if (sh->audit_lost == 0) {
            sh->audit_lost = 1;
        }
    }
}


/*
 * Under the zone lock: seal with the chain head, write, advance the head.
 * NGX_OK: written; NGX_ERROR: the record is lost (counted, res says why).
 */
static ngx_int_t
ngx_http_datagate_audit_write(ngx_http_datagate_main_conf_t *dmcf,
    dg_arec_t *rec, ngx_http_datagate_shctx_t *sh,
    ngx_http_datagate_audit_res_t *res)
{
    char              hash[DG_AUDIT_HEXLEN + 1];
    u_char           *p;
    size_t            len;
    ssize_t           n;
    ngx_fd_t          fd;
    const char       *line;
    ngx_file_info_t   fi;

    if (sh->audit_last[0] == '\0') {
        ngx_http_datagate_audit_seed(dmcf, sh);
    }

    dg_arec_lost(rec, sh->audit_lost);

    if (dg_arec_seal(rec, &dmcf->audit_md, (int) dmcf->audit_hash,
                     sh->audit_seq + 1, (char *) sh->audit_last, hash, &line,
                     &len)
        != 0)
    {
        res->why = "sealing the record failed";
        goto failed;
    }

    p = (u_char *) line;
    fd = dmcf->audit_file->fd;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        res->err = ngx_errno;
        res->why = ngx_fd_info_n " failed";
        goto failed;
    }

    if (ngx_is_file(&fi) && fi.st_nlink == 0) {
        /* removed: what is written goes nowhere anyone can read */
        res->why = "the file was removed (\"nginx -s reopen\" creates it "
                   "again)";
        goto failed;
    }

    if (sh->audit_need_lf) {
        if ((uint64_t) fi.st_dev == sh->audit_torn_dev
            && (uint64_t) fi.st_ino == sh->audit_torn_ino)
        {
            /* end the torn line: the record must start a line of its
             * own (DG_AREC_HEAD leaves room in front) */
            *--p = '\n';
            len++;

        } else {
            sh->audit_need_lf = 0;      /* another file since (reopen) */
        }
    }

    n = write(fd, p, len);

    if (n != (ssize_t) len) {
        res->err = (n == -1) ? ngx_errno : NGX_ENOSPC;
        res->why = (n > 0) ? "write() was short" : "write() failed";

        if (n > 0) {
            ngx_http_datagate_audit_untear(fd, p, (size_t) n, &fi, sh);
        }

        goto failed;
    }

    ngx_memcpy(sh->audit_last, hash, DG_AUDIT_HEXLEN + 1);
    sh->audit_seq++;
    sh->audit_need_lf = 0;

    res->lost = sh->audit_lost;
    res->seq = sh->audit_seq;
    sh->audit_lost = 0;

    if (sh->audit_failing) {
        sh->audit_failing = 0;
        res->change = NGX_HTTP_DATAGATE_AUDIT_RECOVERED;
    }

    return NGX_OK;

failed:

    ngx_http_datagate_audit_failed(sh, res);

    return NGX_ERROR;
}


/*
 * A short write left the first n bytes of a record at the end of the
 * file: cut them off again, so that the file ends with the last whole
 * record.  If that fails, the next record starts with a LF of its own
 * and "datagate audit verify" reads the torn line as the start of the
 * record that the next one counts as lost.
 */
static void
ngx_http_datagate_audit_untear(ngx_fd_t fd, u_char *p, size_t n,
    ngx_file_info_t *before, ngx_http_datagate_shctx_t *sh)
{
    ngx_file_info_t  fi;

    if (ngx_fd_info(fd, &fi) != NGX_FILE_ERROR && ngx_is_file(&fi)
        && ngx_file_size(&fi) >= (off_t) n
        && ftruncate(fd, ngx_file_size(&fi) - (off_t) n) == 0)
    {
        return;                     /* the file is as it was */
    }

    if (n == 1 && p[0] == '\n') {
        sh->audit_need_lf = 0;      /* only the LF that ended a torn line */
        return;
    }

    sh->audit_need_lf = 1;
    sh->audit_torn_dev = (uint64_t) before->st_dev;
    sh->audit_torn_ino = (uint64_t) before->st_ino;
}


/* under the zone lock: one record lost */
static void
ngx_http_datagate_audit_failed(ngx_http_datagate_shctx_t *sh,
    ngx_http_datagate_audit_res_t *res)
{
    (void) ngx_atomic_fetch_add(&sh->audit_failed, 1);
    sh->audit_lost++;

    if (!sh->audit_failing) {
        sh->audit_failing = 1;
        res->change = NGX_HTTP_DATAGATE_AUDIT_FAILED;
    }
}


static void
ngx_http_datagate_audit_report(ngx_log_t *log,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_audit_res_t *res)
{
    if (res->change == NGX_HTTP_DATAGATE_AUDIT_FAILED) {
        ngx_log_error(NGX_LOG_ERR, log, res->err,
                      "datagate: audit log \"%V\": %s, audit "
                      "records are being lost (counted in "
                      "datagate_audit_write_failures_total); %s",
                      &dmcf->audit_file->name, res->why,
                      dmcf->audit_serve
                      ? "requests are served without a record "
                        "(on_failure=serve)"
                      : "enforced requests are refused with 503 "
                        "audit_unavailable until a record is written");
        return;
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "datagate: audit log \"%V\": records are written again; "
                  "%uL record(s) were lost, counted in the record seq %uL "
                  "(\"lost\")", &dmcf->audit_file->name, res->lost,
                  res->seq);
}


ngx_int_t
ngx_http_datagate_audit_check(ngx_http_datagate_main_conf_t *dmcf)
{
    if (dmcf->audit_file == NULL || dmcf->audit_serve || dmcf->sh == NULL) {
        return NGX_OK;
    }

    return dmcf->sh->audit_failing ? NGX_DECLINED : NGX_OK;
}


uint64_t
ngx_http_datagate_audit_lost(ngx_http_datagate_main_conf_t *dmcf,
    uint64_t *seq, u_char *hash)
{
    ngx_http_datagate_shctx_t  *sh;

    sh = dmcf->sh;

    if (dmcf->audit_file == NULL || sh == NULL || sh->audit_lost == 0) {
        return 0;
    }

    if (sh->audit_last[0] == '\0') {
        ngx_http_datagate_audit_seed(dmcf, sh);
    }

    *seq = sh->audit_seq;
    ngx_memcpy(hash, sh->audit_last, DG_AUDIT_HEXLEN + 1);

    return sh->audit_lost;
}


void
ngx_http_datagate_audit_lost_restore(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, uint64_t seq, u_char *hash, uint64_t lost)
{
    if (dmcf->audit_file == NULL || dmcf->sh == NULL || lost == 0) {
        return;
    }

    if (dmcf->audit_head_seq > seq) {
        /* a record after that head was written: it said "lost" */
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "datagate: audit log \"%V\": the %uL lost record(s) "
                      "of the state file were counted by seq %uL already",
                      &dmcf->audit_file->name, lost, seq + 1);
        return;
    }

    dmcf->sh->audit_lost += lost;

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "datagate: audit log \"%V\": %uL record(s) lost before "
                  "the restart (after seq %uL%s) are counted in the next "
                  "record (\"lost\")", &dmcf->audit_file->name, lost, seq,
                  (seq == dmcf->audit_head_seq
                   && ngx_strncmp(hash, dmcf->audit_head,
                                  DG_AUDIT_HEXLEN) == 0)
                  ? "" : ", not the head of the file");
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

        l[1].data = (u_char *) dg_mask_detect_kinds[i].name;
        l[1].len = ngx_strlen(dg_mask_detect_kinds[i].name);
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


void
ngx_http_datagate_stat_add(ngx_http_datagate_main_conf_t *dmcf, u_char kind,
    ngx_str_t *labels, ngx_uint_t nlabels, uint64_t n)
{
    u_char                     key[4 * (NGX_HTTP_DATAGATE_LABEL_MAX + 1)];
    size_t                     len;
    ngx_uint_t                 full;
    ngx_http_datagate_stat_t  *st;

    if (dmcf->sh == NULL || nlabels > 3) {
        return;
    }

    full = 0;
    len = ngx_http_datagate_stat_key(key, kind, labels, nlabels);

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    st = ngx_http_datagate_stat_get(dmcf, key, len, &full);
    if (st) {
        st->count += n;
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    if (full) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "datagate: statistics are full (%ui counters or "
                      "zone memory), further keys are counted as "
                      "\"overflow\"", (ngx_uint_t) NGX_HTTP_DATAGATE_STATS_MAX);
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

static void
ngx_http_datagate_audit_md_cleanup(void *data)
{
    dg_audit_md_t  *md = data;

    dg_audit_md_free(md);
}


ngx_int_t
ngx_http_datagate_audit_init(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf)
{
    int                  rc, fd;
    u_char              *path, last;
    uint64_t             seq;
    struct stat          st;
    ngx_pool_cleanup_t  *cln;
    char                 hash[DG_AUDIT_HEXLEN + 1], err[DG_ERRLEN];

    /* the digests records are sealed with: this configuration's, made at
     * the first record, released with it */
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_datagate_audit_md_cleanup;
    cln->data = &dmcf->audit_md;

    path = ngx_pnalloc(cf->pool, dmcf->audit_file->name.len + 1);
    if (path == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(path, dmcf->audit_file->name.data,
                dmcf->audit_file->name.len + 1);

    rc = dg_audit_tail((char *) path, &seq, hash, err, sizeof(err));

    ngx_memcpy(dmcf->audit_head, hash, DG_AUDIT_HEXLEN + 1);
    dmcf->audit_head_seq = seq;
    dmcf->audit_head_torn = 0;

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
                && last != '\n' && fstat(fd, &st) == 0)
            {
                dmcf->audit_head_torn = 1;
                dmcf->audit_head_dev = (uint64_t) st.st_dev;
                dmcf->audit_head_ino = (uint64_t) st.st_ino;
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
