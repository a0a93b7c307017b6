/*
 * datagate: statistics endpoint (datagate_status).
 *
 * JSON by default; the Prometheus text exposition format (0.0.4) with
 * "?format=prometheus"; the status page (_status_page.c) with
 * "?format=html" or to a client that prefers text/html.  The counters
 * live in the shared zone (written by the log phase of every worker, kept
 * over a reload); this handler copies them, the quota counters (_limit.c)
 * and the incident controls the zone has read (_incident.c) under the
 * zone lock and renders them without it, with the names the policy gives
 * consumers (their department), datasets and purposes.
 */


#include "ngx_http_datagate.h"
#include "dg_audit.h"
#include "dg_gcra.h"
#include "dg_version.h"


#define NGX_HTTP_DATAGATE_STATUS_JSON   0
#define NGX_HTTP_DATAGATE_STATUS_PROM   1
#define NGX_HTTP_DATAGATE_STATUS_HTML   2

#define NGX_HTTP_DATAGATE_MAX_LABELS    5

/* quota budgets and incident controls listed, at most */
#define NGX_HTTP_DATAGATE_STATUS_QUOTAS    NGX_HTTP_DATAGATE_STATS_MAX
#define NGX_HTTP_DATAGATE_STATUS_CONTROLS  1024
/* a budget's grants looked at for its quota */
#define NGX_HTTP_DATAGATE_STATUS_GRANTS    16


typedef struct {
    u_char                          kind;
    ngx_uint_t                      nlabels;
    ngx_str_t                       label[NGX_HTTP_DATAGATE_MAX_LABELS];
    uint64_t                        count;
    uint64_t                        bytes;
} ngx_http_datagate_status_entry_t;


/* a quota budget as the statistics show it */
typedef struct {
    ngx_str_t                          consumer;
    ngx_str_t                          dataset;
    ngx_uint_t                         dataset_budget;
    const dg_str_t                    *quota;      /* as written, or NULL */
    uint64_t                           limit;      /* 0: not known */
    unsigned                           period;
    int64_t                            window;     /* its start */
    uint64_t                           used;
} ngx_http_datagate_status_quota_t;


typedef struct {
    ngx_http_datagate_status_entry_t  *entries;
    ngx_uint_t                         nentries;
    ngx_uint_t                         used;
    uint64_t                           overflow;
    uint64_t                           overflow_bytes;
    uint64_t                           audit_seq;
    uint64_t                           audit_failed;
    uint64_t                           audit_lost;
    ngx_uint_t                         audit_failing;
    u_char                             audit_last[DG_AUDIT_HEXLEN + 1];
    ngx_uint_t                         redis_up;
    ngx_uint_t                         redis_degraded;     /* a state */
    uint64_t                           redis_degraded_total;
    ngx_uint_t                         redis_trusted;
    ngx_uint_t                         redis_persistence;

    uint64_t                           total;
    uint64_t                           allowed;
    uint64_t                           denied;
    uint64_t                           rate_limited;
    uint64_t                           bytes;

    ngx_http_datagate_status_quota_t  *quotas;
    ngx_uint_t                         nquotas;
    ngx_array_t                       *controls;
    uint64_t                           now_ms;
} ngx_http_datagate_status_t;


static ngx_int_t ngx_http_datagate_status_snapshot(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_status_t *st);
static int ngx_libc_cdecl ngx_http_datagate_status_cmp(const void *one,
    const void *two);
static size_t ngx_http_datagate_status_size(
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_status_t *st,
    ngx_uint_t format);
static u_char *ngx_http_datagate_status_json(u_char *p,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_status_t *st);
static u_char *ngx_http_datagate_status_prom(u_char *p,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_status_t *st);
static u_char *ngx_http_datagate_json_str(u_char *p, ngx_str_t *s);
static const char *ngx_http_datagate_status_persistence(ngx_uint_t p);
static ngx_uint_t ngx_http_datagate_status_persistent(ngx_uint_t p);
static u_char *ngx_http_datagate_prom_labels(u_char *p,
    ngx_http_datagate_status_entry_t *e, const char **names);
static ngx_int_t ngx_http_datagate_status_quotas(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_status_t *st);
static u_char *ngx_http_datagate_status_names(u_char *p,
    ngx_http_datagate_main_conf_t *dmcf);
static u_char *ngx_http_datagate_status_state_json(u_char *p,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_status_t *st);
static u_char *ngx_http_datagate_status_state_prom(u_char *p,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_status_t *st);
static u_char *ngx_http_datagate_prom_str(u_char *p, ngx_str_t *s);
static const char *ngx_http_datagate_control_name(uint32_t control);


static const char  *ngx_http_datagate_req_labels[] = {
    "consumer", "dataset", "purpose", "decision", "reason", NULL
};

static const char  *ngx_http_datagate_mask_labels[] = {
    "dataset", "class", NULL
};

static const char  *ngx_http_datagate_detect_labels[] = {
    "dataset", "kind", NULL
};

static const char  *ngx_http_datagate_unlisted_labels[] = {
    "dataset", NULL
};

static const char  *ngx_http_datagate_anomaly_labels[] = {
    "consumer", "dataset", "kind", NULL
};


ngx_int_t
ngx_http_datagate_status_handler(ngx_http_request_t *r)
{
    u_char                         *p;
    size_t                          size;
    ngx_int_t                       rc;
    ngx_buf_t                      *b;
    ngx_str_t                       arg;
    ngx_uint_t                      format;
    ngx_chain_t                     out;
    ngx_table_elt_t                *h;
    ngx_http_datagate_status_t      st;
    ngx_http_datagate_main_conf_t  *dmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    format = NGX_HTTP_DATAGATE_STATUS_JSON;

    if (ngx_http_arg(r, (u_char *) "format", 6, &arg) == NGX_OK) {
        if (arg.len == 10 && ngx_strncmp(arg.data, "prometheus", 10) == 0) {
            format = NGX_HTTP_DATAGATE_STATUS_PROM;

        } else if (arg.len == 4 && ngx_strncmp(arg.data, "html", 4) == 0) {
            format = NGX_HTTP_DATAGATE_STATUS_HTML;

        } else if (!(arg.len == 4 && ngx_strncmp(arg.data, "json", 4) == 0))
        {
            return NGX_HTTP_BAD_REQUEST;
        }

    } else {
        /* the answer depends on Accept when no format is asked for */

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Vary");
        ngx_str_set(&h->value, "Accept");

        if (ngx_http_datagate_status_wants_html(r)) {
            format = NGX_HTTP_DATAGATE_STATUS_HTML;
        }
    }

    if (format == NGX_HTTP_DATAGATE_STATUS_HTML) {
        return ngx_http_datagate_status_page(r);
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (ngx_http_datagate_status_snapshot(r, dmcf, &st) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = ngx_http_datagate_status_size(dmcf, &st, format);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (format == NGX_HTTP_DATAGATE_STATUS_PROM) {
        p = ngx_http_datagate_status_prom(b->last, dmcf, &st);
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4");

    } else {
        p = ngx_http_datagate_status_json(b->last, dmcf, &st);
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    if ((size_t) (p - b->last) > size) {
        /* cannot happen: the size is an upper bound */
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "datagate: status output overran its buffer");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* copy the counters under the zone lock */
static ngx_int_t
ngx_http_datagate_status_snapshot(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_status_t *st)
{
    u_char                            *p, *keys, *end;
    size_t                             klen;
    ngx_uint_t                         n, i;
    ngx_queue_t                       *q;
    ngx_http_datagate_stat_t          *s;
    ngx_http_datagate_shctx_t         *sh;
    ngx_http_datagate_status_entry_t  *e;

    ngx_memzero(st, sizeof(ngx_http_datagate_status_t));
    ngx_memcpy(st->audit_last, dg_audit_genesis, DG_AUDIT_HEXLEN + 1);

    st->now_ms = ngx_http_datagate_now_ms();

    if (dmcf == NULL || dmcf->sh == NULL) {
        return NGX_OK;
    }

    sh = dmcf->sh;

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    n = 0;
    klen = 0;

    for (q = ngx_queue_head(&sh->stats.queue);
         q != ngx_queue_sentinel(&sh->stats.queue);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_datagate_stat_t, queue);
        n++;
        klen += s->sn.str.len;
    }

    st->entries = ngx_palloc(r->pool,
                             n * sizeof(ngx_http_datagate_status_entry_t) + 1);
    keys = ngx_pnalloc(r->pool, klen + 1);

    if (st->entries == NULL || keys == NULL) {
        ngx_shmtx_unlock(&dmcf->shpool->mutex);
        return NGX_ERROR;
    }

    i = 0;

    for (q = ngx_queue_head(&sh->stats.queue);
         q != ngx_queue_sentinel(&sh->stats.queue) && i < n;
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_datagate_stat_t, queue);
        e = &st->entries[i++];

        ngx_memcpy(keys, s->sn.str.data, s->sn.str.len);

        e->kind = keys[0];
        e->count = s->count;
        e->bytes = s->bytes;
        e->nlabels = 0;

        /* labels: each ends in '\0' */
        end = keys + s->sn.str.len;

        for (p = keys + 1; p < end && e->nlabels < NGX_HTTP_DATAGATE_MAX_LABELS;
             /* void */)
        {
            e->label[e->nlabels].data = p;

            while (p < end && *p != '\0') {
                p++;
            }

            e->label[e->nlabels].len = p - e->label[e->nlabels].data;
            e->nlabels++;
            p++;
        }

        keys = end;
    }

    st->nentries = i;
    st->used = sh->stats_nodes;
    st->overflow = sh->stats_overflow;
    st->overflow_bytes = sh->stats_overflow_bytes;
    st->audit_seq = sh->audit_seq;
    st->audit_failed = sh->audit_failed;
    st->audit_failing = sh->audit_failing ? 1 : 0;
    st->audit_lost = sh->audit_lost;

    if (sh->audit_last[0]) {
        ngx_memcpy(st->audit_last, sh->audit_last, DG_AUDIT_HEXLEN);
    }

    /* degraded: decisions run on the zone's state or per-node budgets,
     * because Redis is down or not trusted; the count is of requests */
    st->redis_up = sh->redis_up ? 1 : 0;
    st->redis_trusted = sh->redis_untrusted ? 0 : 1;
    st->redis_degraded = dmcf->redis_enabled
                         && !(st->redis_up && st->redis_trusted);
    st->redis_degraded_total = sh->redis_degraded;
    st->redis_persistence = sh->redis_persistence;

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    /* quota counters and the controls the zone has read, each under the
     * zone lock of its own */

    if (ngx_http_datagate_status_quotas(r, dmcf, st) != NGX_OK
        || ngx_http_datagate_incident_controls(dmcf, r->pool,
                                       NGX_HTTP_DATAGATE_STATUS_CONTROLS,
                                       &st->controls)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* a stable order: by kind, then by labels */
    ngx_qsort(st->entries, st->nentries,
              sizeof(ngx_http_datagate_status_entry_t),
              ngx_http_datagate_status_cmp);

    st->total = st->overflow;
    st->bytes = st->overflow_bytes;

    for (i = 0; i < st->nentries; i++) {
        e = &st->entries[i];

        if (e->kind != NGX_HTTP_DATAGATE_STAT_REQUESTS || e->nlabels != 5) {
            continue;
        }

        st->total += e->count;
        st->bytes += e->bytes;

        if (e->label[3].len == 7
            && ngx_strncmp(e->label[3].data, "allowed", 7) == 0)
        {
            st->allowed += e->count;

        } else {
            st->denied += e->count;
        }

        if (e->label[4].len == sizeof("rate_limited") - 1
            && ngx_strncmp(e->label[4].data, "rate_limited",
                           sizeof("rate_limited") - 1) == 0)
        {
            st->rate_limited += e->count;
        }
    }

    return NGX_OK;
}


static int ngx_libc_cdecl
ngx_http_datagate_status_cmp(const void *one, const void *two)
{
    ngx_int_t                          rc;
    ngx_uint_t                         i;
    const ngx_http_datagate_status_entry_t  *a = one, *b = two;

    if (a->kind != b->kind) {
        return (int) a->kind - (int) b->kind;
    }

    for (i = 0; i < a->nlabels && i < b->nlabels; i++) {
        rc = ngx_memn2cmp(a->label[i].data, b->label[i].data,
                          a->label[i].len, b->label[i].len);
        if (rc) {
            return rc < 0 ? -1 : 1;
        }
    }

    return (int) a->nlabels - (int) b->nlabels;
}


/* an upper bound of the output */
static size_t
ngx_http_datagate_status_size(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_status_t *st, ngx_uint_t format)
{
    size_t                        size, l;
    ngx_uint_t                    i, k;
    const dg_policy_t            *p;
    ngx_http_datagate_control_t  *c;

    size = 16384;   /* fixed text, totals, audit, redis */

    /* names: JSON \u00XX per byte at worst, punctuation */
    p = dmcf ? dmcf->policy : NULL;

    for (i = 0; p && i < p->nconsumers; i++) {
        size += 6 * (p->consumers[i].id.len + p->consumers[i].org.len) + 64;
    }

    for (i = 0; p && i < p->ndatasets; i++) {
        size += 6 * (p->datasets[i].id.len + p->datasets[i].name.len) + 8;
    }

    for (i = 0; p && i < p->npurposes; i++) {
        size += 6 * (p->purposes[i].id.len + p->purposes[i].name.len) + 8;
    }

    /* quotas: labels and numbers, twice in Prometheus text */
    for (i = 0; i < st->nquotas; i++) {
        size += 2 * 6 * (st->quotas[i].consumer.len
                         + st->quotas[i].dataset.len
                         + (st->quotas[i].quota ? st->quotas[i].quota->len
                                                : 0))
                + 512;
    }

    c = st->controls ? st->controls->elts : NULL;

    for (i = 0; c && i < st->controls->nelts; i++) {
        size += 6 * c[i].id.len + 256;
    }

    for (i = 0; i < st->nentries; i++) {
        l = 0;

        for (k = 0; k < st->entries[i].nlabels; k++) {
            /* JSON: \u00XX per byte at worst; Prometheus: two bytes */
            l += 6 * st->entries[i].label[k].len;
        }

        /* names, punctuation, two numbers; Prometheus writes a request
         * counter twice (requests and bytes) */
        size += 2 * l + 512;
    }

    return size;
}


/* what keeps Redis's data across its restart, as the check found it */
static const char *
ngx_http_datagate_status_persistence(ngx_uint_t p)
{
    if (!(p & NGX_HTTP_DATAGATE_RP_KNOWN)) {
        return "unknown";
    }

    if (p & NGX_HTTP_DATAGATE_RP_REPLICA) {
        return (p & NGX_HTTP_DATAGATE_RP_AOF) ? "aof+replica" : "replica";
    }

    if (p & NGX_HTTP_DATAGATE_RP_AOF) {
        return (p & NGX_HTTP_DATAGATE_RP_AOF_WEAK) ? "aof-nofsync" : "aof";
    }

    return "none";
}


/* 1: seen to survive a restart; 0: does not, or not known */
static ngx_uint_t
ngx_http_datagate_status_persistent(ngx_uint_t p)
{
    return (p & NGX_HTTP_DATAGATE_RP_KNOWN)
           && ((p & NGX_HTTP_DATAGATE_RP_REPLICA)
               || ((p & NGX_HTTP_DATAGATE_RP_AOF)
                   && !(p & NGX_HTTP_DATAGATE_RP_AOF_WEAK)));
}


/* ---- JSON ------------------------------------------------------------- */

static u_char *
ngx_http_datagate_json_str(u_char *p, ngx_str_t *s)
{
    *p++ = '"';
    p += dg_json_escape((char *) p, 6 * s->len, s->data, s->len, NULL);
    *p++ = '"';

    return p;
}


static u_char *
ngx_http_datagate_status_json(u_char *p, ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_status_t *st)
{
    ngx_uint_t                         i, k, first;
    const char                        **names;
    ngx_http_datagate_status_entry_t  *e;

    static struct {
        u_char        kind;
        const char   *name;
        const char  **labels;
    } groups[] = {
        { NGX_HTTP_DATAGATE_STAT_REQUESTS, "requests",
          ngx_http_datagate_req_labels },
        { NGX_HTTP_DATAGATE_STAT_MASKED, "masked",
          ngx_http_datagate_mask_labels },
        { NGX_HTTP_DATAGATE_STAT_DETECT, "detect",
          ngx_http_datagate_detect_labels },
        { NGX_HTTP_DATAGATE_STAT_UNLISTED, "unlisted",
          ngx_http_datagate_unlisted_labels },
        { NGX_HTTP_DATAGATE_STAT_ANOMALY, "anomalies",
          ngx_http_datagate_anomaly_labels },
    };

    p = ngx_sprintf(p, "{\"datagate_version\":\"%s\","
                       "\"nginx_version\":\"%s\",\"policy_version\":\"%s\","
                       "\"time\":%T,",
                    DG_VERSION, NGINX_VERSION,
                    dmcf && dmcf->policy ? dmcf->policy->version_hex : "",
                    ngx_time());

    for (k = 0; k < sizeof(groups) / sizeof(groups[0]); k++) {
        p = ngx_sprintf(p, "\"%s\":[", groups[k].name);
        first = 1;

        for (i = 0; i < st->nentries; i++) {
            e = &st->entries[i];

            if (e->kind != groups[k].kind) {
                continue;
            }

            if (!first) {
                *p++ = ',';
            }

            first = 0;
            *p++ = '{';

            for (names = groups[k].labels; *names; names++) {
                if ((ngx_uint_t) (names - groups[k].labels) >= e->nlabels) {
                    break;
                }

                p = ngx_sprintf(p, "\"%s\":", *names);
                p = ngx_http_datagate_json_str(p,
                                   &e->label[names - groups[k].labels]);
                *p++ = ',';
            }

            p = ngx_sprintf(p, "\"count\":%uL", e->count);

            if (e->kind == NGX_HTTP_DATAGATE_STAT_REQUESTS) {
                p = ngx_sprintf(p, ",\"bytes\":%uL", e->bytes);
            }

            *p++ = '}';
        }

        p = ngx_cpymem(p, "],", 2);
    }

    p = ngx_sprintf(p, "\"totals\":{\"requests\":%uL,\"allowed\":%uL,"
                       "\"denied\":%uL,\"rate_limited\":%uL,\"bytes\":%uL},",
                    st->total, st->allowed, st->denied, st->rate_limited,
                    st->bytes);

    if (dmcf && dmcf->audit_file) {
        p = ngx_sprintf(p, "\"audit\":{\"enabled\":true,\"alg\":\"%s\","
                           "\"on_failure\":\"%s\","
                           "\"seq\":%uL,\"last_hash\":\"%s\","
                           "\"write_failures\":%uL,\"failing\":%s,"
                           "\"lost\":%uL},",
                        dg_audit_alg_name((int) dmcf->audit_hash),
                        dmcf->audit_serve ? "serve" : "deny",
                        st->audit_seq, st->audit_last, st->audit_failed,
                        st->audit_failing ? "true" : "false",
                        st->audit_lost);

    } else {
        p = ngx_sprintf(p, "\"audit\":{\"enabled\":false,"
                           "\"write_failures\":%uL},", st->audit_failed);
    }

    p = ngx_sprintf(p, "\"redis\":{\"enabled\":%s,\"up\":%s,"
                       "\"degraded\":%s,\"degraded_total\":%uL,"
                       "\"trusted\":%s,\"persistence\":\"%s\"},",
                    dmcf && dmcf->redis_enabled ? "true" : "false",
                    st->redis_up ? "true" : "false",
                    st->redis_degraded ? "true" : "false",
                    st->redis_degraded_total,
                    st->redis_trusted ? "true" : "false",
                    ngx_http_datagate_status_persistence(
                        st->redis_persistence));

    p = ngx_http_datagate_status_names(p, dmcf);
    p = ngx_http_datagate_status_state_json(p, dmcf, st);

    p = ngx_sprintf(p, "\"counters\":{\"used\":%ui,\"max\":%ui,"
                       "\"overflow_requests\":%uL,\"overflow_bytes\":%uL}}\n",
                    st->used, (ngx_uint_t) NGX_HTTP_DATAGATE_STATS_MAX,
                    st->overflow, st->overflow_bytes);

    return p;
}


/* ---- Prometheus ------------------------------------------------------- */

static u_char *
ngx_http_datagate_prom_labels(u_char *p, ngx_http_datagate_status_entry_t *e,
    const char **names)
{
    u_char      *s, *end;
    ngx_uint_t   i;

    *p++ = '{';

    for (i = 0; names[i] && i < e->nlabels; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_sprintf(p, "%s=\"", names[i]);

        s = e->label[i].data;
        end = s + e->label[i].len;

        for ( /* void */ ; s < end; s++) {
            switch (*s) {
            case '\\':
                *p++ = '\\';
                *p++ = '\\';
                break;
            case '"':
                *p++ = '\\';
                *p++ = '"';
                break;
            case '\n':
                *p++ = '\\';
                *p++ = 'n';
                break;
            default:
                *p++ = *s;
            }
        }

        *p++ = '"';
    }

    *p++ = '}';

    return p;
}


static u_char *
ngx_http_datagate_status_prom(u_char *p, ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_status_t *st)
{
    ngx_uint_t                         i, k;
    ngx_http_datagate_status_entry_t  *e;

    static struct {
        u_char        kind;
        ngx_uint_t    bytes;
        const char   *name;
        const char   *help;
        const char  **labels;
    } families[] = {
        { NGX_HTTP_DATAGATE_STAT_REQUESTS, 0, "datagate_requests_total",
          "Requests by consumer, dataset, purpose, decision and reason.",
          ngx_http_datagate_req_labels },
        { NGX_HTTP_DATAGATE_STAT_REQUESTS, 1, "datagate_response_bytes_total",
          "Response body bytes sent, by consumer, dataset, purpose, "
          "decision and reason.",
          ngx_http_datagate_req_labels },
        { NGX_HTTP_DATAGATE_STAT_MASKED, 0, "datagate_masked_fields_total",
          "Values masked, by dataset and field class.",
          ngx_http_datagate_mask_labels },
        { NGX_HTTP_DATAGATE_STAT_DETECT, 0, "datagate_detect_hits_total",
          "Values in unclassified fields caught by the safety net, by "
          "dataset and kind.",
          ngx_http_datagate_detect_labels },
        { NGX_HTTP_DATAGATE_STAT_UNLISTED, 0, "datagate_unlisted_keys_total",
          "Keys the dataset does not list, seen in responses.",
          ngx_http_datagate_unlisted_labels },
        { NGX_HTTP_DATAGATE_STAT_ANOMALY, 0, "datagate_anomalies_total",
          "Anomalies abuse detection reported, by consumer, dataset and "
          "kind (enumeration, sequential, volume, records).",
          ngx_http_datagate_anomaly_labels },
    };

    p = ngx_sprintf(p,
        "# HELP datagate_build_info The datagate and nginx versions "
        "running (always 1).\n"
        "# TYPE datagate_build_info gauge\n"
        "datagate_build_info{version=\"%s\",nginx_version=\"%s\"} 1\n",
        DG_VERSION, NGINX_VERSION);

    for (k = 0; k < sizeof(families) / sizeof(families[0]); k++) {
        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s counter\n",
                        families[k].name, families[k].help,
                        families[k].name);

        for (i = 0; i < st->nentries; i++) {
            e = &st->entries[i];

            if (e->kind != families[k].kind) {
                continue;
            }

            p = ngx_sprintf(p, "%s", families[k].name);
            p = ngx_http_datagate_prom_labels(p, e, families[k].labels);
            p = ngx_sprintf(p, " %uL\n", families[k].bytes ? e->bytes
                                                           : e->count);
        }
    }

    p = ngx_sprintf(p,
        "# HELP datagate_rate_limited_total Requests refused by a rate "
        "limit or quota.\n"
        "# TYPE datagate_rate_limited_total counter\n"
        "datagate_rate_limited_total %uL\n"
        "# HELP datagate_requests_overflow_total Requests counted without "
        "labels because the statistics were full.\n"
        "# TYPE datagate_requests_overflow_total counter\n"
        "datagate_requests_overflow_total %uL\n"
        "# HELP datagate_audit_records_total Audit records written (the "
        "sequence number of the last one).\n"
        "# TYPE datagate_audit_records_total counter\n"
        "datagate_audit_records_total %uL\n"
        "# HELP datagate_audit_write_failures_total Audit records that "
        "could not be written.\n"
        "# TYPE datagate_audit_write_failures_total counter\n"
        "datagate_audit_write_failures_total %uL\n"
        "# HELP datagate_redis_enabled Whether datagate_redis is "
        "configured.\n"
        "# TYPE datagate_redis_enabled gauge\n"
        "datagate_redis_enabled %ui\n"
        "# HELP datagate_redis_up Whether the Redis connection is up.\n"
        "# TYPE datagate_redis_up gauge\n"
        "datagate_redis_up %ui\n"
        "# HELP datagate_redis_degraded Whether decisions run on stale or "
        "per-node state now (Redis down or not trusted).\n"
        "# TYPE datagate_redis_degraded gauge\n"
        "datagate_redis_degraded %ui\n"
        "# HELP datagate_redis_degraded_total Requests decided on stale or "
        "per-node state.\n"
        "# TYPE datagate_redis_degraded_total counter\n"
        "datagate_redis_degraded_total %uL\n"
        "# HELP datagate_redis_trusted Whether Redis still holds the state "
        "this node knew (0: it lost it; see datagate redis confirm).\n"
        "# TYPE datagate_redis_trusted gauge\n"
        "datagate_redis_trusted %ui\n"
        "# HELP datagate_redis_persistent Whether Redis was seen to keep "
        "its data across a restart (AOF with fsync, or a replica).\n"
        "# TYPE datagate_redis_persistent gauge\n"
        "datagate_redis_persistent %ui\n",
        st->rate_limited, st->overflow, st->audit_seq, st->audit_failed,
        (ngx_uint_t) (dmcf && dmcf->redis_enabled ? 1 : 0),
        st->redis_up, st->redis_degraded, st->redis_degraded_total,
        st->redis_trusted,
        ngx_http_datagate_status_persistent(st->redis_persistence));

    p = ngx_sprintf(p,
        "# HELP datagate_audit_failing Whether audit records cannot be "
        "written (the last write failed).\n"
        "# TYPE datagate_audit_failing gauge\n"
        "datagate_audit_failing %ui\n"
        "# HELP datagate_audit_lost_records Audit records lost that no "
        "record written has counted yet.\n"
        "# TYPE datagate_audit_lost_records gauge\n"
        "datagate_audit_lost_records %uL\n",
        st->audit_failing, st->audit_lost);

    return ngx_http_datagate_status_state_prom(p, dmcf, st);
}


/* ---- names, quotas, incident controls --------------------------------- */

/*
 * The quota budgets: the zone's counters (_limit.c) with the quota the
 * policy sets for each: the dataset's for a dataset budget, the first of
 * the pair's grants that sets one for a grant budget (a run-time grant's
 * is not known here).  What is used is counted in the current window:
 * this node's count, or the cluster's as Redis last said plus what this
 * node admitted alone since, whichever is more.
 */
static ngx_int_t
ngx_http_datagate_status_quotas(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_status_t *st)
{
    u_char                            *k, *bar, *end;
    int64_t                            now, cur;
    uint64_t                           used, cluster;
    ngx_uint_t                         i, n, g, ng;
    ngx_array_t                       *budgets;
    const dg_grant_t                  *gl[NGX_HTTP_DATAGATE_STATUS_GRANTS];
    const dg_policy_t                 *p;
    const dg_dataset_t                *ds;
    const dg_consumer_t               *c;
    ngx_http_datagate_status_quota_t  *q;
    ngx_http_datagate_quota_state_t   *b;

    if (ngx_http_datagate_limit_budgets(dmcf, r->pool,
                                        NGX_HTTP_DATAGATE_STATUS_QUOTAS,
                                        &budgets)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    b = budgets->elts;
    n = budgets->nelts;
    p = dmcf->policy;
    now = (int64_t) (st->now_ms / 1000);

    st->quotas = ngx_pcalloc(r->pool,
                           (n + 1) * sizeof(ngx_http_datagate_status_quota_t));
    if (st->quotas == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        q = &st->quotas[st->nquotas];

        k = b[i].key.data;
        end = k + b[i].key.len;

        if ((size_t) (end - k) > sizeof(NGX_HTTP_DATAGATE_DS_BUDGET) - 1
            && ngx_strncmp(k, NGX_HTTP_DATAGATE_DS_BUDGET,
                           sizeof(NGX_HTTP_DATAGATE_DS_BUDGET) - 1) == 0)
        {
            q->dataset_budget = 1;
            k += sizeof(NGX_HTTP_DATAGATE_DS_BUDGET) - 1;
        }

        bar = ngx_strlchr(k, end, '|');
        if (bar == NULL) {
            continue;
        }

        q->consumer.data = k;
        q->consumer.len = bar - k;
        q->dataset.data = bar + 1;
        q->dataset.len = end - bar - 1;

        c = p ? dg_policy_consumer(p, (const char *) q->consumer.data,
                                   q->consumer.len)
              : NULL;
        ds = p ? dg_policy_dataset(p, (const char *) q->dataset.data,
                                   q->dataset.len)
               : NULL;

        if (ds != NULL && q->dataset_budget && ds->limit.quota) {
            q->quota = &ds->quota_str;
            q->limit = ds->limit.quota;
            q->period = ds->limit.quota_period;

        } else if (ds != NULL && c != NULL && !q->dataset_budget) {
            ng = dg_policy_grants(p, c, ds, gl,
                                  NGX_HTTP_DATAGATE_STATUS_GRANTS);

            for (g = 0; g < ng && g < NGX_HTTP_DATAGATE_STATUS_GRANTS; g++) {
                if (gl[g]->limit.quota) {
                    q->quota = &gl[g]->quota_str;
                    q->limit = gl[g]->limit.quota;
                    q->period = gl[g]->limit.quota_period;
                    break;
                }
            }
        }

        /* the current window: the policy's period, else the latest seen */

        if (q->period) {
            cur = dg_quota_window_start(now, q->period);

        } else {
            cur = ngx_max(b[i].window, b[i].seen_window);
            cur = ngx_max(cur, b[i].unsynced_window);
        }

        used = b[i].window == cur ? b[i].count : 0;
        cluster = (b[i].seen_window == cur ? b[i].seen : 0)
                  + (b[i].unsynced_window == cur ? b[i].unsynced : 0);

        q->used = ngx_max(used, cluster);
        q->window = cur;

        if (q->used == 0 && q->limit == 0) {
            continue;
        }

        st->nquotas++;
    }

    return NGX_OK;
}


static const char *
ngx_http_datagate_control_name(uint32_t control)
{
    switch (control) {
    case NGX_HTTP_DATAGATE_INC_REVOKED:
        return "revoked_cert";
    case NGX_HTTP_DATAGATE_INC_SUSPENDED:
        return "suspended_consumer";
    case NGX_HTTP_DATAGATE_INC_DS_FROZEN:
        return "frozen_dataset";
    case NGX_HTTP_DATAGATE_INC_GRANT_FROZEN:
        return "frozen_grant";
    default:
        return "runtime_grant";
    }
}


/* "names": the department of each consumer, the names of datasets and
 * purposes, from this cycle's policy */
static u_char *
ngx_http_datagate_status_names(u_char *p, ngx_http_datagate_main_conf_t *dmcf)
{
    ngx_str_t           id, name;
    ngx_uint_t          i, k, n;
    const dg_policy_t  *pol;

    static const char  *groups[] = { "consumers", "datasets", "purposes" };

    pol = dmcf ? dmcf->policy : NULL;

    p = ngx_cpymem(p, "\"names\":{", sizeof("\"names\":{") - 1);

    for (k = 0; k < 3; k++) {
        p = ngx_sprintf(p, "%s\"%s\":{", k ? "," : "", groups[k]);

        n = pol == NULL ? 0
            : k == 0 ? pol->nconsumers
            : k == 1 ? pol->ndatasets : pol->npurposes;

        for (i = 0; i < n; i++) {
            if (k == 0) {
                id.data = (u_char *) pol->consumers[i].id.data;
                id.len = pol->consumers[i].id.len;
                name.data = (u_char *) pol->consumers[i].org.data;
                name.len = pol->consumers[i].org.len;

            } else if (k == 1) {
                id.data = (u_char *) pol->datasets[i].id.data;
                id.len = pol->datasets[i].id.len;
                name.data = (u_char *) pol->datasets[i].name.data;
                name.len = pol->datasets[i].name.len;

            } else {
                id.data = (u_char *) pol->purposes[i].id.data;
                id.len = pol->purposes[i].id.len;
                name.data = (u_char *) pol->purposes[i].name.data;
                name.len = pol->purposes[i].name.len;
            }

            if (i) {
                *p++ = ',';
            }

            p = ngx_http_datagate_json_str(p, &id);
            *p++ = ':';
            p = ngx_http_datagate_json_str(p, &name);
        }

        *p++ = '}';
    }

    return ngx_cpymem(p, "},", 2);
}


static u_char *
ngx_http_datagate_status_state_json(u_char *p,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_status_t *st)
{
    ngx_str_t                          qs;
    ngx_uint_t                         i;
    ngx_http_datagate_control_t       *c;
    ngx_http_datagate_status_quota_t  *q;

    p = ngx_cpymem(p, "\"quotas\":[", sizeof("\"quotas\":[") - 1);

    for (i = 0; i < st->nquotas; i++) {
        q = &st->quotas[i];

        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "{\"consumer\":", sizeof("{\"consumer\":") - 1);
        p = ngx_http_datagate_json_str(p, &q->consumer);
        p = ngx_cpymem(p, ",\"dataset\":", sizeof(",\"dataset\":") - 1);
        p = ngx_http_datagate_json_str(p, &q->dataset);
        p = ngx_sprintf(p, ",\"budget\":\"%s\",\"quota\":",
                        q->dataset_budget ? "dataset" : "grant");

        if (q->quota) {
            qs.data = (u_char *) q->quota->data;
            qs.len = q->quota->len;
            p = ngx_http_datagate_json_str(p, &qs);
            p = ngx_sprintf(p, ",\"limit\":%uL,\"period\":%ui",
                            q->limit, (ngx_uint_t) q->period);

        } else {
            p = ngx_cpymem(p, "null,\"limit\":null,\"period\":null",
                        sizeof("null,\"limit\":null,\"period\":null") - 1);
        }

        p = ngx_sprintf(p, ",\"window_start\":%L,\"used\":%uL,"
                           "\"exhausted\":%s}",
                        q->window, q->used,
                        q->limit && q->used >= q->limit ? "true" : "false");
    }

    p = ngx_sprintf(p, "],\"incidents\":{\"enabled\":%s,\"controls\":[",
                    dmcf && dmcf->redis_enabled ? "true" : "false");

    c = st->controls ? st->controls->elts : NULL;

    for (i = 0; c && i < st->controls->nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_sprintf(p, "{\"control\":\"%s\",\"id\":",
                        ngx_http_datagate_control_name(c[i].control));
        p = ngx_http_datagate_json_str(p, &c[i].id);
        p = ngx_sprintf(p, ",\"age_ms\":%uL}",
                        st->now_ms > c[i].fetched ? st->now_ms - c[i].fetched
                                                  : (uint64_t) 0);
    }

    return ngx_cpymem(p, "]},", 3);
}


/* a label value in the exposition format */
static u_char *
ngx_http_datagate_prom_str(u_char *p, ngx_str_t *s)
{
    u_char  *c, *end;

    *p++ = '"';

    for (c = s->data, end = c + s->len; c < end; c++) {
        switch (*c) {
        case '\\':
            *p++ = '\\';
            *p++ = '\\';
            break;
        case '"':
            *p++ = '\\';
            *p++ = '"';
            break;
        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;
        default:
            *p++ = *c;
        }
    }

    *p++ = '"';

    return p;
}


static u_char *
ngx_http_datagate_status_state_prom(u_char *p,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_status_t *st)
{
    ngx_str_t                          id, org;
    ngx_uint_t                         i, k, n;
    const dg_policy_t                 *pol;
    ngx_http_datagate_control_t       *c;
    ngx_http_datagate_status_quota_t  *q;

    static const uint32_t  controls[] = {
        NGX_HTTP_DATAGATE_INC_REVOKED, NGX_HTTP_DATAGATE_INC_SUSPENDED,
        NGX_HTTP_DATAGATE_INC_DS_FROZEN, NGX_HTTP_DATAGATE_INC_GRANT_FROZEN,
        NGX_HTTP_DATAGATE_INC_GRANT
    };

    static const struct {
        const char  *name;
        const char  *help;
    } families[] = {
        { "datagate_quota_used",
          "Requests counted in the current quota window, by consumer, "
          "dataset and budget (grant or dataset)." },
        { "datagate_quota_limit",
          "The quota of the budget in its window (0: not known here)." },
    };

    for (k = 0; k < sizeof(families) / sizeof(families[0]); k++) {
        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s gauge\n",
                        families[k].name, families[k].help,
                        families[k].name);

        for (i = 0; i < st->nquotas; i++) {
            q = &st->quotas[i];

            p = ngx_sprintf(p, "%s{consumer=", families[k].name);
            p = ngx_http_datagate_prom_str(p, &q->consumer);
            p = ngx_cpymem(p, ",dataset=", sizeof(",dataset=") - 1);
            p = ngx_http_datagate_prom_str(p, &q->dataset);
            p = ngx_sprintf(p, ",budget=\"%s\"} %uL\n",
                            q->dataset_budget ? "dataset" : "grant",
                            k == 0 ? q->used : q->limit);
        }
    }

    /* the department of each consumer, to join requests on */

    p = ngx_sprintf(p,
        "# HELP datagate_consumer_info The department (org) of each "
        "consumer of the policy (always 1).\n"
        "# TYPE datagate_consumer_info gauge\n");

    pol = dmcf ? dmcf->policy : NULL;

    for (i = 0; pol && i < pol->nconsumers; i++) {
        id.data = (u_char *) pol->consumers[i].id.data;
        id.len = pol->consumers[i].id.len;
        org.data = (u_char *) pol->consumers[i].org.data;
        org.len = pol->consumers[i].org.len;

        p = ngx_cpymem(p, "datagate_consumer_info{consumer=",
                       sizeof("datagate_consumer_info{consumer=") - 1);
        p = ngx_http_datagate_prom_str(p, &id);
        p = ngx_cpymem(p, ",org=", sizeof(",org=") - 1);
        p = ngx_http_datagate_prom_str(p, &org);
        p = ngx_cpymem(p, "} 1\n", sizeof("} 1\n") - 1);
    }

    p = ngx_sprintf(p,
        "# HELP datagate_incident_controls Incident controls in force as "
        "this node last read them from Redis, by kind.\n"
        "# TYPE datagate_incident_controls gauge\n");

    c = st->controls ? st->controls->elts : NULL;

    for (k = 0; k < sizeof(controls) / sizeof(controls[0]); k++) {
        n = 0;

        for (i = 0; c && i < st->controls->nelts; i++) {
            n += c[i].control == controls[k];
        }

        p = ngx_sprintf(p, "datagate_incident_controls{control=\"%s\"} %ui\n",
                        ngx_http_datagate_control_name(controls[k]), n);
    }

    return p;
}
