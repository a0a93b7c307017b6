/*
 * datagate: statistics endpoint (datagate_status).
 *
 * JSON by default; the Prometheus text exposition format (0.0.4) with
 * "?format=prometheus".  The counters live in the shared zone (written by
 * the log phase of every worker, kept over a reload); this handler copies
 * them under the zone lock and renders them without it.
 */


#include "ngx_http_datagate.h"
#include "dg_audit.h"
#include "dg_version.h"


#define NGX_HTTP_DATAGATE_STATUS_JSON   0
#define NGX_HTTP_DATAGATE_STATUS_PROM   1

#define NGX_HTTP_DATAGATE_MAX_LABELS    5


typedef struct {
    u_char                          kind;
    ngx_uint_t                      nlabels;
    ngx_str_t                       label[NGX_HTTP_DATAGATE_MAX_LABELS];
    uint64_t                        count;
    uint64_t                        bytes;
} ngx_http_datagate_status_entry_t;


typedef struct {
    ngx_http_datagate_status_entry_t  *entries;
    ngx_uint_t                         nentries;
    ngx_uint_t                         used;
    uint64_t                           overflow;
    uint64_t                           overflow_bytes;
    ngx_http_datagate_audit_stats_t    audit;
    size_t                             audit_chains; /* JSON, at most */
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
} ngx_http_datagate_status_t;


static ngx_int_t ngx_http_datagate_status_snapshot(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_status_t *st);
static int ngx_libc_cdecl ngx_http_datagate_status_cmp(const void *one,
    const void *two);
static size_t ngx_http_datagate_status_size(ngx_http_datagate_status_t *st,
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

    format = NGX_HTTP_DATAGATE_STATUS_JSON;

    if (ngx_http_arg(r, (u_char *) "format", 6, &arg) == NGX_OK) {
        if (arg.len == 10 && ngx_strncmp(arg.data, "prometheus", 10) == 0) {
            format = NGX_HTTP_DATAGATE_STATUS_PROM;

        } else if (!(arg.len == 4 && ngx_strncmp(arg.data, "json", 4) == 0))
        {
            return NGX_HTTP_BAD_REQUEST;
        }
    }

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (ngx_http_datagate_status_snapshot(r, dmcf, &st) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = ngx_http_datagate_status_size(&st, format);

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

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

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
    ngx_memcpy(st->audit.last, dg_audit_genesis, DG_AUDIT_HEXLEN + 1);

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
    ngx_http_datagate_audit_stats(dmcf, &st->audit);
    st->audit_chains = ngx_http_datagate_audit_chains_size(dmcf);

    /* degraded: decisions run on the zone's state or per-node budgets,
     * because Redis is down or not trusted; the count is of requests */
    st->redis_up = sh->redis_up ? 1 : 0;
    st->redis_trusted = sh->redis_untrusted ? 0 : 1;
    st->redis_degraded = dmcf->redis_enabled
                         && !(st->redis_up && st->redis_trusted);
    st->redis_degraded_total = sh->redis_degraded;
    st->redis_persistence = sh->redis_persistence;

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

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
ngx_http_datagate_status_size(ngx_http_datagate_status_t *st,
    ngx_uint_t format)
{
    size_t      size, l;
    ngx_uint_t  i, k;

    size = 16384 + st->audit_chains;    /* fixed text, totals, audit,
                                           redis */

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
                           "\"keyed\":%s,\"on_failure\":\"%s\","
                           "\"seq\":%uL,\"last_hash\":\"%s\","
                           "\"pending\":%uL,"
                           "\"write_failures\":%uL,\"failing\":%s,"
                           "\"lost\":%uL,",
                        dg_audit_alg_name((int) dmcf->audit_hash),
                        dmcf->audit_keyed ? "true" : "false",
                        dmcf->audit_serve ? "serve" : "deny",
                        st->audit.records, st->audit.last,
                        st->audit.pending, st->audit.failed,
                        st->audit.failing ? "true" : "false",
                        st->audit.lost);
        p = ngx_http_datagate_audit_chains_json(dmcf, p,
                                                p + st->audit_chains);
        *p++ = '}';
        *p++ = ',';

    } else {
        p = ngx_sprintf(p, "\"audit\":{\"enabled\":false,"
                           "\"write_failures\":%uL},", st->audit.failed);
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
        "# HELP datagate_audit_records_total Audit records written (all "
        "chains).\n"
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
        st->rate_limited, st->overflow, st->audit.records, st->audit.failed,
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
        "datagate_audit_lost_records %uL\n"
        "# HELP datagate_audit_pending_records Audit records sealed and "
        "waiting in the buffers to be written.\n"
        "# TYPE datagate_audit_pending_records gauge\n"
        "datagate_audit_pending_records %uL\n"
        "# HELP datagate_audit_chains Audit chains in the zone.\n"
        "# TYPE datagate_audit_chains gauge\n"
        "datagate_audit_chains %ui\n",
        st->audit.failing, st->audit.lost, st->audit.pending,
        st->audit.nchains);

    return p;
}
