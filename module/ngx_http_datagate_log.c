/*
 * datagate: log phase.  One audit record per enforced request, allowed
 * or denied, handed to this worker's chain (_audit.c), and the counters
 * of the statistics endpoint.
 */


#include "ngx_http_datagate.h"
#include "dg_audit.h"


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
    uint64_t                        records;    /* records sent */
    uint64_t                        rows_dropped; /* out of scope */
    uint64_t                        records_cut; /* no allowance */
    ngx_uint_t                      cut_records; /* a record was cut */
    ngx_uint_t                      records_read; /* the masker read the
                                                   body */
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


/* where a request's audit record is built (_audit.c copies it out) */
static u_char  ngx_http_datagate_audit_recbuf[DG_AUDIT_RECORD_MAX];


ngx_int_t
ngx_http_datagate_log_handler(ngx_http_request_t *r)
{
    dg_arec_t                       rec;
    ngx_uint_t                      full;
    ngx_http_datagate_ctx_t        *ctx;
    ngx_http_datagate_log_t         lg;
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

    /* records taken from a record quota and not sent go back */
    ngx_http_datagate_records_end(r, ctx);

    ngx_http_datagate_log_collect(r, dmcf, ctx, &lg);

    full = 0;

    if (dmcf->sh) {
        ngx_http_datagate_stats_add(dmcf, &lg, &full);
    }

    if (full) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "datagate: statistics are full (%ui counters or "
                      "zone memory), further keys are counted as "
                      "\"overflow\"", (ngx_uint_t) NGX_HTTP_DATAGATE_STATS_MAX);
    }

    /* this worker's chain: no lock */

    if (dmcf->audit_file) {
        if (ngx_http_datagate_audit_build(r, dmcf, ctx, &lg, &rec) == NULL) {
            ngx_http_datagate_audit_lose(dmcf, r->connection->log,
                                         "no memory for the record");

        } else {
            (void) ngx_http_datagate_audit_append(dmcf, &rec,
                                                  r->connection->log);
        }
    }

    /* the records of the answer, for abuse detection (with or without an
     * audit log) */
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
    lg->records = ms->records;
    lg->records_read = 1;
    lg->rows_dropped = ms->rows_dropped;
    lg->records_cut = ms->records_cut;
    lg->cut_records = ms->cut;

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

    /* the record is sealed into the chain's buffer before the next
     * request's is built: one buffer per worker */
    buf = ngx_http_datagate_audit_recbuf;

    if (dg_arec_init(rec, (char *) buf, DG_AUDIT_RECORD_MAX) != 0) {
        return NULL;
    }

    ngx_memzero(&f, sizeof(dg_audit_fields_t));

    len = ngx_http_datagate_audit_time(tbuf);
    tp = ngx_timeofday();

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

    if (f.detail == NULL
        && (ctx->reason == DG_R_REQUEST_REJECTED
            || ctx->reason == DG_R_SCOPE_VIOLATION))
    {
        /* why datagate refused the path, a header (_request.c) or a
         * bound parameter (_access.c) */
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
    f.records = lg->records;
    f.records_read = (int) lg->records_read;
    f.rows_dropped = lg->rows_dropped;
    f.records_cut = lg->records_cut;

    if (lg->cut_records) {
        f.records_cut_by = ngx_http_datagate_records_cut_by(ctx);
    }

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
        (void) ngx_atomic_fetch_add(&st->count, 1);
        (void) ngx_atomic_fetch_add(&st->bytes, lg->bytes);

    } else {
        ngx_shmtx_lock(&dmcf->shpool->mutex);
        dmcf->sh->stats_overflow++;
        dmcf->sh->stats_overflow_bytes += lg->bytes;
        ngx_shmtx_unlock(&dmcf->shpool->mutex);
    }

    if (lg->records) {
        /* records sent, by consumer, dataset and purpose */
        len = ngx_http_datagate_stat_key(key, NGX_HTTP_DATAGATE_STAT_RECORDS,
                                         l, 3);
        st = ngx_http_datagate_stat_get(dmcf, key, len, full);
        if (st) {
            (void) ngx_atomic_fetch_add(&st->count, lg->records);
        }
    }

    if (lg->rows_dropped) {
        /* records out of the grant's rows, removed */
        len = ngx_http_datagate_stat_key(key,
                                         NGX_HTTP_DATAGATE_STAT_ROWS_DROPPED,
                                         l, 3);
        st = ngx_http_datagate_stat_get(dmcf, key, len, full);
        if (st) {
            (void) ngx_atomic_fetch_add(&st->count, lg->rows_dropped);
        }
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
            (void) ngx_atomic_fetch_add(&st->count, lg->mcount[i]);
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
            (void) ngx_atomic_fetch_add(&st->count, lg->detect[i]);
        }
    }

    if (lg->unlisted) {
        len = ngx_http_datagate_stat_key(key, NGX_HTTP_DATAGATE_STAT_UNLISTED,
                                         l, 1);
        st = ngx_http_datagate_stat_get(dmcf, key, len, full);
        if (st) {
            (void) ngx_atomic_fetch_add(&st->count, lg->unlisted);
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

    st = ngx_http_datagate_stat_get(dmcf, key, len, &full);
    if (st) {
        (void) ngx_atomic_fetch_add(&st->count, n);
    }

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
 * memcmp() against the node's own key, and no lock: a node's key never
 * changes and nodes are never freed while their zone lives, and the
 * counts are added atomically.  Only a miss walks (and may grow) the
 * shared tree, under the zone's lock.  The cache is emptied when the
 * zone changes.
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

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    sn = ngx_str_rbtree_lookup(&sh->stats.rbtree, &k, hash);
    if (sn) {
        ngx_shmtx_unlock(&dmcf->shpool->mutex);
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

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    ngx_http_datagate_stat_cache[slot] = st;

    return st;

overflow:

    if (!sh->stats_full) {
        sh->stats_full = 1;
        *full = 1;
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    return NULL;
}
