
/*
 * datagate: private header of the nginx glue.
 *
 * One section per file.  Each file owns its section: the structures it
 * keeps and the functions it offers to the others.  The plain-C core
 * (module/core/) knows nothing of nginx.
 */


#ifndef _NGX_HTTP_DATAGATE_H_INCLUDED_
#define _NGX_HTTP_DATAGATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "dg_abuse.h"
#include "dg_audit.h"
#include "dg_policy.h"
#include "dg_mask.h"
#include "dg_rstate.h"

#include <zlib.h>


#define NGX_HTTP_DATAGATE_REQUEST_ID_LEN   32  /* generated ids */
#define NGX_HTTP_DATAGATE_REQUEST_ID_MAX   64  /* client-sent ids */
#define NGX_HTTP_DATAGATE_SECRET_MIN       32

/* datagate_hold_max default: the largest answer held whole for a client
 * that cannot tell a cut connection from the end of the answer */
#define NGX_HTTP_DATAGATE_HOLD_MAX         (1024 * 1024)


/* ---- ngx_http_datagate_redis.c: cluster state ------------------------ */

typedef struct ngx_http_datagate_redis_s  ngx_http_datagate_redis_t;

/* what keeps Redis's data across its restart (INFO, CONFIG GET) */
#define NGX_HTTP_DATAGATE_RP_KNOWN      0x01    /* the check answered */
#define NGX_HTTP_DATAGATE_RP_AOF        0x02    /* appendonly yes */
#define NGX_HTTP_DATAGATE_RP_AOF_WEAK   0x04    /* appendfsync no */
#define NGX_HTTP_DATAGATE_RP_REPLICA    0x08    /* connected_slaves > 0 */

typedef struct {
    ngx_str_t                       addr_text;  /* "HOST:PORT" as given */
    ngx_addr_t                     *addr;       /* resolved at conf time */
    ngx_str_t                       password;
    ngx_int_t                       db;
    ngx_msec_t                      timeout;    /* per operation */
    ngx_msec_t                      connect_timeout;
    ngx_msec_t                      stale;      /* max staleness */
    ngx_uint_t                      nodes;      /* for per-node fallback */
} ngx_http_datagate_redis_conf_t;


/* ---- shared zone (datagate_cache): one slab, sections by concern ----- */

/*
 * Every tree is initialised (_module.c, init_zone) with
 * ngx_str_rbtree_insert_value: its nodes start with an ngx_str_node_t
 * (node.key = hash of the key, str = the key bytes, in the slab) and are
 * found with ngx_str_rbtree_lookup(&tree->rbtree, &key, hash).  The
 * queue is for LRU eviction; all access under shpool->mutex.
 */

typedef struct {
    ngx_rbtree_t                    rbtree;
    ngx_rbtree_node_t               sentinel;
    ngx_queue_t                     queue;      /* LRU */
} ngx_http_datagate_tree_t;


typedef struct {
    ngx_http_datagate_tree_t        cache;      /* decisions (_dcache.c) */
    ngx_http_datagate_tree_t        stats;      /* counters (_log.c) */
    ngx_http_datagate_tree_t        limits;     /* rate/quota (_limit.c) */
    ngx_http_datagate_tree_t        incidents;  /* local incident state */
    ngx_http_datagate_tree_t        abuse;      /* detectors (_abuse.c) */
    ngx_http_datagate_tree_t        abuse_susp; /* its suspensions */

    /* abuse detection (_abuse.c), under shpool lock */
    size_t                          abuse_bytes; /* its nodes take */
    ngx_atomic_t                    abuse_nsusp; /* suspensions held */
    u_char                          abuse_key[DG_ABUSE_KEY_LEN];
    unsigned                        abuse_key_set:1; /* made by the zone */
    unsigned                        abuse_full:1;    /* logged once */

    ngx_atomic_t                    incident_gen; /* bumped on any change */

    /* audit chain (_log.c): one chain for all workers, under shpool lock;
     * audit_failing is also read without it (the access phase) */
    u_char                          audit_last[DG_AUDIT_HEXLEN + 1];
    ngx_uint_t                      audit_seq;
    ngx_atomic_t                    audit_failed;
    ngx_atomic_t                    audit_failing;  /* last write failed */
    uint64_t                        audit_lost;     /* since last write */
    uint64_t                        audit_torn_dev; /* the file that ends */
    uint64_t                        audit_torn_ino; /* in a torn line */
    unsigned                        audit_need_lf:1; /* a torn line before */

    /* counters (_log.c, _status.c), under shpool lock */
    ngx_uint_t                      stats_nodes;
    uint64_t                        stats_overflow;  /* requests not keyed */
    uint64_t                        stats_overflow_bytes;
    unsigned                        stats_full:1;    /* logged once */

    /* Redis state (_redis.c) */
    ngx_atomic_t                    redis_up;
    ngx_atomic_t                    redis_degraded;  /* requests, a count */
    ngx_atomic_t                    redis_persistence; /* _RP_* bits */
    ngx_atomic_t                    redis_untrusted; /* lost its state */
    u_char                          redis_epoch[DG_RS_EPOCH_MAX + 1];
    unsigned                        redis_lost_logged:1;
    unsigned                        redis_volatile_logged:1;
} ngx_http_datagate_shctx_t;


/* ---- ngx_http_datagate_module.c: configuration ----------------------- */

typedef struct {
    ngx_str_t                       policy_path;
    dg_policy_t                    *policy;     /* this cycle's, immutable */

    ngx_shm_zone_t                 *shm_zone;
    ngx_slab_pool_t                *shpool;     /* set at zone init */
    ngx_http_datagate_shctx_t      *sh;
    time_t                          cache_ttl;

    ngx_str_t                       geoip_path;
    void                           *geoip;      /* MMDB_s *, _geoip.c */

    ngx_str_t                       audit_path;
    ngx_open_file_t                *audit_file;
    ngx_uint_t                      audit_hash; /* 0: SHA-256, 1: SM3 */
    dg_audit_md_t                   audit_md;   /* this cycle's digests */
    ngx_uint_t                      audit_serve; /* on_failure=serve */
    ngx_str_t                       audit_conf_file; /* where the */
    ngx_uint_t                      audit_conf_line; /* directive is */
    /* the chain head found in the file (_log.c, audit_init): it seeds
     * a new zone */
    u_char                          audit_head[DG_AUDIT_HEXLEN + 1];
    uint64_t                        audit_head_seq;
    uint64_t                        audit_head_dev; /* the file, when */
    uint64_t                        audit_head_ino; /* its last line */
    unsigned                        audit_head_torn:1; /* is torn */

    ngx_str_t                       secret_path;
    u_char                          secret[64];
    size_t                          secret_len;

    ngx_http_datagate_redis_conf_t  redis;
    ngx_flag_t                      redis_enabled;

    /* second tier of the decision cache (_dcache.c): decisions shared
     * through Redis, MAC key HMAC-SHA-256(secret, "redis-decision") */
    ngx_flag_t                      dcache_redis;
    u_char                          dcache_key[DG_SHA256_LEN];

    /* abuse detection (_abuse.c): the key of identifiers, from
     * datagate_secret (every node the same); without it the zone's */
    u_char                          abuse_key[DG_ABUSE_KEY_LEN];
    ngx_flag_t                      abuse_key_set;

    /* datagate_state (_state.c): quota counters across restarts */
    ngx_str_t                       state_path;
    ngx_msec_t                      state_interval;

    /* _module.c: no datagate_secret: a random key per cycle */
    ngx_flag_t                      secret_generated;
    /* per-worker cache of the pseudonym keys,
     * [nconsumers * DG_SHA256_LEN] */
    u_char                         *pseudo_keys;
    u_char                         *pseudo_done;
    /* methods for the detect hits, from the policy classes */
    dg_mask_spec_t                  detect[DG_DETECT_MAX];
    /* _headers.c: loc_conf arrays of the enforced locations (void **) */
    ngx_array_t                    *enforced_locs;
    /* _catalogue.c: the enforced locations by server and dataset */
    ngx_array_t                    *catalogue_locs;
} ngx_http_datagate_main_conf_t;


typedef struct {
    ngx_flag_t                      enable;     /* datagate on|off */
    ngx_str_t                       dataset_id;
    ngx_uint_t                      dataset_index; /* into policy */
    size_t                          mask_buffer;
    size_t                          mask_turn;  /* 0: no turns */
    size_t                          hold_max;   /* datagate_hold_max */
    ngx_uint_t                      mask_depth;
    ngx_flag_t                      status;     /* datagate_status */
    ngx_flag_t                      catalogue;  /* datagate_catalogue */
    ngx_str_t                       catalogue_file; /* where it was */
    ngx_uint_t                      catalogue_line;
    const dg_dataset_t             *dataset;    /* resolved at conf time */
    ngx_str_t                       dataset_file; /* where it was named */
    ngx_uint_t                      dataset_line;
    ngx_array_t                    *real_ip_from; /* ngx_cidr_t: trusted
                                                   proxies, NULL: none */
    ngx_str_t                       real_ip_header; /* or "proxy_protocol" */
} ngx_http_datagate_loc_conf_t;


typedef struct {
    ngx_flag_t                      enforced;   /* a location under this
                                                   server is enforced:
                                                   refused client
                                                   certificates get JSON */
} ngx_http_datagate_srv_conf_t;


/* per-request state, survives internal redirects via a pool cleanup */
typedef struct {
    const dg_consumer_t            *consumer;
    const dg_dataset_t             *dataset;
    const dg_grant_t               *grant;
    const dg_plan_t                *plan;
    ngx_str_t                       purpose;
    ngx_str_t                       approval;
    ngx_str_t                       cert_serial;
    u_char                          country[4]; /* geo (_identity.c) */
    u_char                          region[64];
    u_char                          request_id[NGX_HTTP_DATAGATE_REQUEST_ID_MAX
                                               + 1]; /* NUL-terminated */
    size_t                          request_id_len;
    dg_reason_e                     reason;
    ngx_int_t                       status;     /* our error status, 0 */

    /* masking (_filter.c, _body.c) */
    dg_mask_t                      *mask;
    uint64_t                        masked;     /* values masked */
    const char                     *unmaskable; /* why 502 / cut */

    /* the provider's answer after its header (_filter.c): the upstream's
     * finalize handler, wrapped to learn how the answer ended */
    void                          (*upstream_finalize)(ngx_http_request_t *r,
                                                       ngx_int_t rc);
    ngx_uint_t                      provider_status; /* 502/504: the
                                                   provider failed after
                                                   its header, 0: not */
    const char                     *provider_error;  /* how, for the record */

    /* response headers (_headers.c): the provider's dropped, safety-net
     * hits in what passed (also in masked) */
    uint64_t                        hdr_dropped;
    uint64_t                        hdr_detect[DG_DETECT_MAX];

    /* incident state and run-time grants (_incident.c, _redis.c) */
    const dg_grant_t              **extra;      /* run-time grants */
    size_t                          nextra;
    void                           *pending;    /* rstate_t, _incident.c */
    const char                     *detail;     /* error message detail
                                                   ("daily quota ...") */

    unsigned                        enforced:1;
    unsigned                        decided:1;
    unsigned                        allowed:1;
    unsigned                        degraded:1; /* counted (_redis.c) */
    unsigned                        logged:1;
    unsigned                        cut:1;
    unsigned                        catalogue:1; /* a catalogue request
                                                   (_catalogue.c): no
                                                   dataset */

    /* a long answer ended by an incident control (_watch.c) */
    void                           *watch;
    dg_reason_e                     cut_reason; /* DG_R_OK: none */
    unsigned                        method;     /* DG_METHOD_* bits the
                                                   decision was made for */

    ngx_uint_t                      stage;      /* where the access
                                                   handler resumes */
    ngx_uint_t                      cache;      /* NGX_HTTP_DATAGATE_CACHE_*:
                                                   the tier that decided
                                                   (_dcache.c) */

    /* client address (_identity.c: ngx_http_datagate_client_addr()) */
    struct sockaddr                *client;     /* network and geo rules */
    ngx_str_t                       client_text;
    ngx_str_t                       peer_text;  /* the TCP peer */
    ngx_str_t                       forwarded_text; /* a proxy's or
                                                   real_ip's, empty: none */
    unsigned                        addr_done:1;
} ngx_http_datagate_ctx_t;


#define NGX_HTTP_DATAGATE_CACHE_NONE     0
#define NGX_HTTP_DATAGATE_CACHE_HIT      1
#define NGX_HTTP_DATAGATE_CACHE_MISS     2
#define NGX_HTTP_DATAGATE_CACHE_BYPASS   3
#define NGX_HTTP_DATAGATE_CACHE_REDIS    4   /* from the Redis tier */


extern ngx_module_t  ngx_http_datagate_module;
extern ngx_module_t  ngx_http_datagate_filter_module;


/* ---- ngx_http_datagate_module.c: pseudonym keys ---------------------- */

/* HMAC-SHA-256(secret, "pseudonym:" + consumer id), cached per worker;
 * DG_SHA256_LEN bytes, or NULL */
const u_char *ngx_http_datagate_pseudonym_key(
    ngx_http_datagate_main_conf_t *dmcf, const dg_consumer_t *c);


/* ---- ngx_http_datagate_access.c: the access phase -------------------- */

/* ctx->stage: where the access handler resumes */
#define NGX_HTTP_DATAGATE_STAGE_START      0
#define NGX_HTTP_DATAGATE_STAGE_GRANTS     1
#define NGX_HTTP_DATAGATE_STAGE_DECIDE     2
#define NGX_HTTP_DATAGATE_STAGE_INCIDENT   3
#define NGX_HTTP_DATAGATE_STAGE_LIMIT      4
#define NGX_HTTP_DATAGATE_STAGE_DONE       5

ngx_int_t ngx_http_datagate_access_handler(ngx_http_request_t *r);
ngx_http_datagate_ctx_t *ngx_http_datagate_get_ctx(ngx_http_request_t *r);
/* the ctx of a request refused by nginx before the access phase ran on
 * an enforced location (request id, dataset, enforced) */
ngx_http_datagate_ctx_t *ngx_http_datagate_error_ctx(ngx_http_request_t *r);


/* ---- ngx_http_datagate_identity.c: who is asking, from where --------- */

/* postconfiguration: the SSL ex_data index of the connection's identity */
ngx_int_t ngx_http_datagate_identity_init(ngx_conf_t *cf);
/* the consumer of a verified client certificate (ctx->consumer,
 * cert_serial), checked against its network and geo rules: DG_R_OK or
 * the reason to refuse (ctx->detail may say more) */
dg_reason_e ngx_http_datagate_identify(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx);
/*
 * The address the network and geo rules see (ctx->client): the TCP peer,
 * or, when the peer is one of datagate_real_ip_from, the client its
 * datagate_real_ip_header names; also the texts for the audit record.
 * Computed once per request; NGX_ERROR: the peer is not known.
 */
ngx_int_t ngx_http_datagate_client_addr(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);
#if (NGX_HTTP_SSL)
/* NGX_OK when the request's server{} is the one whose TLS context verified
 * the client certificate (its SSL_CTX is the connection's) */
ngx_int_t ngx_http_datagate_ssl_bound(ngx_http_request_t *r);
#define NGX_HTTP_DATAGATE_SSL_UNBOUND                                       \
    "the TLS handshake was made for another server name; connect with "    \
    "this server's name (SNI)"
/* the serial of a certificate as dg_serial_normalize() writes it, in pool */
ngx_int_t ngx_http_datagate_cert_serial_str(X509 *cert, ngx_pool_t *pool,
    ngx_str_t *out);
#endif


/* ---- ngx_http_datagate_dcache.c: the decision and its cache ---------- */

/* dg_decide() for the request (ctx->method set), from the shared zone or
 * the Redis tier when they have it: NGX_OK (*d), NGX_AGAIN (waiting for
 * Redis, the access handler is re-entered), NGX_ERROR */
ngx_int_t ngx_http_datagate_decide(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx,
    dg_decision_t *d);


/* ---- ngx_http_datagate_error.c: errors and variables ----------------- */

/*
 * Answer reason as the JSON error (status from dg_reason_status(), headers
 * already in headers_out such as Retry-After are kept), log the denial and
 * finalize the request.  From a phase handler: return what it returns
 * (NGX_DONE after finalizing).
 */
ngx_int_t ngx_http_datagate_send_error(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e reason, const char *detail);
/* set status, Content-Type, Content-Length of the error in headers_out and
 * return its body (last_buf set); for the header filter (_filter.c) */
ngx_buf_t *ngx_http_datagate_error_body(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e reason, const char *detail);
/* preconfiguration: $datagate_consumer, $datagate_reason, ... */
ngx_int_t ngx_http_datagate_add_variables(ngx_conf_t *cf);


/* ---- ngx_http_datagate_request.c: what a request may look like ------- */

/* NGX_OK; NGX_DECLINED with *detail saying why the request is refused
 * (400 request_rejected); NGX_ERROR */
ngx_int_t ngx_http_datagate_request_check(ngx_http_request_t *r,
    const char **detail);
/* how often a header named name appears in headers, any case, '_' read as
 * '-'; *underscore (if not NULL) set when a '_' spelling is among them */
ngx_uint_t ngx_http_datagate_header_count(ngx_list_t *headers,
    ngx_str_t *name, ngx_uint_t *underscore);
/* the DG_METHOD_* bits of the methods the request names for a framework
 * behind the gateway to take instead of its own (headers, "_method") */
unsigned ngx_http_datagate_method_overrides(ngx_http_request_t *r,
    const dg_policy_t *p);


/* ---- ngx_http_datagate_filter.c: the response's header --------------- */

/* the response filter's per-request state (_filter.c, _body.c) */
typedef struct {
    ngx_http_request_t             *request;
    ngx_http_datagate_ctx_t        *ctx;
    dg_mask_t                      *mask;
    size_t                          nfields;

    ngx_chain_t                    *in;         /* held input */
    ngx_buf_t                      *in_buf;     /* being fed */

    ngx_chain_t                    *out;
    ngx_chain_t                   **last_out;
    ngx_chain_t                    *free;
    ngx_chain_t                    *busy;
    ngx_buf_t                      *obuf;       /* being filled */
    ngx_uint_t                      nbufs;

    z_stream                        zstream;
    u_char                         *zbuf;

    ngx_buf_t                      *err;        /* our 502 body */

    uint64_t                        fed;        /* plain bytes fed */
    uint64_t                        turn_fed;   /* fed when this turn began */
    size_t                          turn_size;  /* datagate_mask_turn */
    ngx_event_t                     turn;       /* the next turn; posted:
                                                   input held for it */

    unsigned                        gzip:1;
    unsigned                        zstarted:1;
    unsigned                        zdone:1;
    unsigned                        error_mode:1;
    unsigned                        err_sent:1;
    unsigned                        done:1;
    unsigned                        nomem:1;
    unsigned                        failed:1;
    unsigned                        header_pending:1;
    unsigned                        flush_seen:1;
    unsigned                        last_seen:1; /* the last buffer is in */
    unsigned                        buffered:1; /* set r->buffered */
    unsigned                        hold:1;     /* the client cannot see a
                                                   cut: the whole answer
                                                   before the header */

    size_t                          hold_max;   /* datagate_hold_max */
    off_t                           out_bytes;  /* output made so far */
} ngx_http_datagate_filter_ctx_t;

/* the filters after datagate's */
extern ngx_http_output_header_filter_pt  ngx_http_datagate_next_header_filter;
extern ngx_http_output_body_filter_pt    ngx_http_datagate_next_body_filter;

ngx_int_t ngx_http_datagate_filter_init(ngx_conf_t *cf);
/* the filter's per-request state, set up */
ngx_http_datagate_filter_ctx_t *ngx_http_datagate_filter_ctx(
    ngx_http_request_t *r, ngx_http_datagate_ctx_t *ctx);
/* drop the provider's headers before an error answer of ours */
void ngx_http_datagate_clean_header(ngx_http_request_t *r);


/* ---- ngx_http_datagate_body.c: the response's body ------------------- */

ngx_int_t ngx_http_datagate_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
/* a masker for the response, set up for conf; NULL (logged): none */
dg_mask_t *ngx_http_datagate_masker_get(ngx_http_request_t *r,
    const dg_mask_conf_t *conf);
/*
 * The header was still held: the client gets a JSON error after all,
 * reason's status unless status says otherwise (504 for a provider that
 * timed out).  The held input and output are dropped.
 */
ngx_int_t ngx_http_datagate_late_error(ngx_http_request_t *r,
    ngx_http_datagate_filter_ctx_t *fctx, dg_reason_e reason,
    ngx_uint_t status, const char *detail);


/* ---- ngx_http_datagate_watch.c: long answers re-check the controls --- */

/* installs its header and body filters (under the masker's) */
ngx_int_t ngx_http_datagate_watch_init(ngx_conf_t *cf);
/* an allowed request: watched from now until it ends (with Redis) */
ngx_int_t ngx_http_datagate_watch_start(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);


/* ---- ngx_http_datagate_headers.c: the provider's response headers ---- */

/*
 * The elements of a header list (headers_in, headers_out, an upstream's),
 * removed ones (hash 0) included, one after the other:
 *
 *     for (h = ngx_http_datagate_header_first(&hi, &r->headers_in.headers);
 *          h != NULL;
 *          h = ngx_http_datagate_header_next(&hi))
 */
typedef struct {
    ngx_list_part_t                *part;
    ngx_uint_t                      i;
} ngx_http_datagate_hiter_t;

static ngx_inline ngx_table_elt_t *
ngx_http_datagate_header_next(ngx_http_datagate_hiter_t *hi)
{
    ngx_table_elt_t  *h;

    while (hi->i >= hi->part->nelts) {
        if (hi->part->next == NULL) {
            return NULL;
        }

        hi->part = hi->part->next;
        hi->i = 0;
    }

    h = hi->part->elts;

    return &h[hi->i++];
}

static ngx_inline ngx_table_elt_t *
ngx_http_datagate_header_first(ngx_http_datagate_hiter_t *hi,
    ngx_list_t *list)
{
    hi->part = &list->part;
    hi->i = 0;

    return ngx_http_datagate_header_next(hi);
}

/* a header of a headers_in or headers_out list by name (any case; entries
 * removed with hash 0 are skipped), or NULL */
ngx_table_elt_t *ngx_http_datagate_find_header(ngx_list_t *headers,
    const char *name, size_t len);
/* a header of headers_out removed (hash 0), and every pointer nginx keeps
 * to it (r->headers_out.etag, .content_length, .link, ...) */
void ngx_http_datagate_header_drop(ngx_http_request_t *r,
    ngx_table_elt_t *h);

/* merge of an enforced location: remember its confs */
ngx_int_t ngx_http_datagate_headers_location(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf);
/* postconfiguration: the enforced locations' upstreams ignore X-Accel-* */
ngx_int_t ngx_http_datagate_headers_init(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf);
/* why an answer to an allowed enforced request must be refused, or NULL */
const char *ngx_http_datagate_headers_refused(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_loc_conf_t *dlcf);
/* the response-header rule of a plan that masks: allow-list and safety
 * net (counts in ctx->hdr_dropped, hdr_detect, masked) */
ngx_int_t ngx_http_datagate_response_headers(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);


/* ---- ngx_http_datagate_log.c: audit + counters ----------------------- */

/* counter kinds; a counter's key is the kind byte, then its label values,
 * each ending in '\0' */
#define NGX_HTTP_DATAGATE_STAT_REQUESTS  'r' /* consumer, dataset, purpose,
                                               decision, reason */
#define NGX_HTTP_DATAGATE_STAT_MASKED    'm' /* dataset, class */
#define NGX_HTTP_DATAGATE_STAT_UNLISTED  'u' /* dataset */
#define NGX_HTTP_DATAGATE_STAT_DETECT    'd' /* dataset, kind */
#define NGX_HTTP_DATAGATE_STAT_ANOMALY   'a' /* consumer, dataset, kind */

#define NGX_HTTP_DATAGATE_STATS_MAX      8192   /* counters in the zone */
#define NGX_HTTP_DATAGATE_LABEL_MAX      128    /* bytes per label value */

/* one counter in sh->stats (an ngx_str_node_t tree, LRU queue unused:
 * counters are never evicted, all of them are listed in the queue) */
typedef struct {
    ngx_str_node_t                  sn;         /* sn.str -> key */
    ngx_queue_t                     queue;
    uint64_t                        count;
    uint64_t                        bytes;
    u_char                          key[1];
} ngx_http_datagate_stat_t;

ngx_int_t ngx_http_datagate_log_handler(ngx_http_request_t *r);
/*
 * The outcome of an enforced request, as the audit record, the counters
 * and $datagate_reason give it: the reason code (DG_R_OK: allowed and
 * answered whole), and *cut (may be NULL) set when the answer was cut
 * mid-body (by the gateway failing closed, the provider failing, or the
 * client going away).
 */
dg_reason_e ngx_http_datagate_outcome(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_uint_t *cut);
ngx_int_t ngx_http_datagate_audit_init(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf);

/* a counter of the statistics grows by n (locks the zone) */
void ngx_http_datagate_stat_add(ngx_http_datagate_main_conf_t *dmcf,
    u_char kind, ngx_str_t *labels, ngx_uint_t nlabels, uint64_t n);
/* the audit record's "time" of now into buf (DG_AUDIT_MAX_TIME bytes);
 * returns its length */
size_t ngx_http_datagate_audit_time(u_char *buf);
/*
 * A record that is not a request's (an anomaly): its fields built by the
 * caller with dg_arec_*() in rec, sealed into the chain and written like
 * a request's record (locks the zone; a failure counts as a lost record).
 */
void ngx_http_datagate_audit_event(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, dg_arec_t *rec);

/* NGX_OK: go on; NGX_DECLINED: audit records cannot be written and
 * on_failure=deny: the request must be refused (503 audit_unavailable) */
ngx_int_t ngx_http_datagate_audit_check(ngx_http_datagate_main_conf_t *dmcf);

/*
 * Records lost since the last one written, and that record's seq and
 * hash (DG_AUDIT_HEXLEN + 1 bytes), for the state file (_state.c); with
 * the zone locked.  _restore puts a loss read back from the file into a
 * fresh zone, unless a record written since has counted it already.
 */
uint64_t ngx_http_datagate_audit_lost(ngx_http_datagate_main_conf_t *dmcf,
    uint64_t *seq, u_char *hash);
void ngx_http_datagate_audit_lost_restore(
    ngx_http_datagate_main_conf_t *dmcf, ngx_log_t *log, uint64_t seq,
    u_char *hash, uint64_t lost);


/* ---- ngx_http_datagate_status.c: the statistics ---------------------- */

ngx_int_t ngx_http_datagate_status_handler(ngx_http_request_t *r);


/* ---- ngx_http_datagate_status_page.c: the status page ---------------- */

/* without ?format=: 1 when the client prefers text/html to JSON */
ngx_uint_t ngx_http_datagate_status_wants_html(ngx_http_request_t *r);
/* send the page (headers set: no-store and Vary by the caller) */
ngx_int_t ngx_http_datagate_status_page(ngx_http_request_t *r);


/* ---- ngx_http_datagate_catalogue.c: what a consumer may ask for ----- */

/* datagate_catalogue; */
char *ngx_http_datagate_catalogue(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
/* merge of a location: check a catalogue location, remember an enforced
 * one for the catalogue of its server */
ngx_int_t ngx_http_datagate_catalogue_merge(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_loc_conf_t *conf);


/* ---- ngx_http_datagate_geoip.c: countries, regions ------------------- */

ngx_int_t ngx_http_datagate_geoip_open(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf);
/* country (2 letters + NUL) and region into the buffers; NGX_DECLINED if
 * the address is not in the database */
ngx_int_t ngx_http_datagate_geoip_lookup(ngx_http_datagate_main_conf_t *dmcf,
    struct sockaddr *sa, u_char *country, u_char *region, size_t rlen);


/* ---- ngx_http_datagate_redis.c: commands ----------------------------- */

ngx_int_t ngx_http_datagate_redis_init_process(ngx_cycle_t *cycle);
void ngx_http_datagate_redis_exit_process(ngx_cycle_t *cycle);

/*
 * reply: a redisReply *, or NULL on error, timeout or disconnect.  The
 * handler runs exactly once, never inside the call that queued the
 * command; the reply is freed when it returns.
 */
typedef void (*ngx_http_datagate_redis_handler_pt)(void *data, void *reply);

/* 1: connected and answering (breaker closed); 0: nobody may wait */
ngx_int_t ngx_http_datagate_redis_ready(void);
/* the request is decided on stale or per-node state: counted once */
void ngx_http_datagate_redis_degraded(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_ctx_t *ctx);

/* NGX_OK: queued; NGX_DECLINED: Redis not ready; NGX_ERROR */
ngx_int_t ngx_http_datagate_redis_command(
    ngx_http_datagate_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen);

/* EVALSHA of the rate-limit script (dg_gcra.h), EVAL on NOSCRIPT */
ngx_int_t ngx_http_datagate_redis_eval(
    ngx_http_datagate_redis_handler_pt handler, void *data, int nkeys,
    int nargs, const char **args, const size_t *lens);

/* the same for any of the gateway's scripts */
#define NGX_HTTP_DATAGATE_SCRIPT_GCRA    0   /* dg_gcra.h DG_GCRA_LUA */
#define NGX_HTTP_DATAGATE_SCRIPT_ABUSE   1   /* dg_abuse.h DG_ABUSE_LUA */
#define NGX_HTTP_DATAGATE_SCRIPTS        2
ngx_int_t ngx_http_datagate_redis_script(ngx_uint_t script,
    ngx_http_datagate_redis_handler_pt handler, void *data, int nkeys,
    int nargs, const char **args, const size_t *lens);

/*
 * A request waiting for a Redis reply: the first member of each waiting
 * command's private data, made by waiter_create (with a pool cleanup that
 * clears it when the request goes before its reply).  The reply handler
 * reads r and ctx (NULL: gone) and calls waiter_detach before it frees
 * the data; a command that was not queued gives it to waiter_free.
 */
typedef struct {
    ngx_http_request_t             *r;          /* NULL: gone / none */
    ngx_http_datagate_ctx_t        *ctx;
    ngx_pool_cleanup_t             *cln;
} ngx_http_datagate_waiter_t;

/* size bytes, a waiter first, for r (NULL: nobody waits); NULL: no memory */
void *ngx_http_datagate_waiter_create(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, size_t size);
void ngx_http_datagate_waiter_detach(ngx_http_datagate_waiter_t *w);
void ngx_http_datagate_waiter_free(ngx_http_datagate_waiter_t *w);

/* wall clock in milliseconds, the same in every worker and node */
static ngx_inline uint64_t
ngx_http_datagate_now_ms(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


/* ---- ngx_http_datagate_redis.c, _hiredis.c: a worker's connection ---- */

/* one of the two connections of a worker (commands, subscriber) */
typedef struct {
    ngx_http_datagate_redis_t      *rd;
    struct redisAsyncContext       *ac;
    ngx_connection_t               *conn;
    ngx_event_t                     timer;      /* connect / reconnect */
    ngx_msec_t                      backoff;
    ngx_uint_t                      state;
    ngx_uint_t                      handshake;  /* replies still due */
    ngx_uint_t                      persist;    /* _RP_* bits, so far */
    struct redisReader             *shadow;     /* vets what comes in */
    size_t                          partial;    /* bytes of the reply
                                                   still arriving */
    const char                     *name;
    unsigned                        sub:1;
    unsigned                        freeing:1;
    unsigned                        was_ready:1;
    unsigned                        logged_down:1;
} ngx_http_datagate_rconn_t;

/* tear the connection down (may be inside a hiredis callback) */
void ngx_http_datagate_redis_fail(ngx_http_datagate_rconn_t *rc,
    const char *why);
/* the context is gone (the adapter's cleanup hook): down, or reconnect */
void ngx_http_datagate_redis_closed(ngx_http_datagate_rconn_t *rc);
/* c carries rc's hiredis context ac: its events call hiredis, and
 * hiredis's hooks arm them (_hiredis.c) */
void ngx_http_datagate_redis_attach(ngx_http_datagate_rconn_t *rc,
    struct redisAsyncContext *ac, ngx_connection_t *c);


/* ---- ngx_http_datagate_incident.c: incident controls ----------------- */

#define NGX_HTTP_DATAGATE_INC_REVOKED       0x01
#define NGX_HTTP_DATAGATE_INC_SUSPENDED     0x02
#define NGX_HTTP_DATAGATE_INC_DS_FROZEN     0x04
#define NGX_HTTP_DATAGATE_INC_GRANT_FROZEN  0x08
#define NGX_HTTP_DATAGATE_INC_GRANT         0x10   /* run-time grant */
#define NGX_HTTP_DATAGATE_INC_DENY          0x0f   /* the controls */

#define NGX_HTTP_DATAGATE_RS_NONE           0
#define NGX_HTTP_DATAGATE_RS_WAIT           1
#define NGX_HTTP_DATAGATE_RS_DONE           2

/* per-request cluster state of _incident.c and _limit.c: ctx->pending */
typedef struct {
    const dg_dataset_t             *dataset;    /* state is for this */
    const dg_grant_t               *lim_grant;  /* limit is for this */
    const dg_dataset_t             *lim_dataset; /* grant and dataset */
    ngx_uint_t                      inc;        /* RS_NONE/WAIT/DONE */
    uint32_t                        flags;      /* INC_* */
    const dg_grant_t               *extra[1];
    void                           *cgrant;     /* compiled grant held */
    ngx_uint_t                      lim;        /* RS_NONE/WAIT/DONE */
    ngx_int_t                       lim_rc;     /* NGX_OK / NGX_DECLINED */

    /* the decision's GET from the Redis tier (_dcache.c) */
    ngx_uint_t                      dec;        /* RS_NONE/WAIT/DONE */
    time_t                          dec_expires;
    int32_t                         dec_grant;  /* index, -1 */
    int32_t                         dec_purpose; /* index, -1 */
    int8_t                          dec_plan;
    uint8_t                         dec_reason;
    unsigned                        dec_found:1; /* a verified value */
    unsigned                        dec_write:1; /* write it back */
    unsigned                        unavailable:1;
    unsigned                        stale_ok:1; /* an entry within stale */
    unsigned                        held:1;     /* cleanup registered */
} ngx_http_datagate_rstate_t;

ngx_http_datagate_rstate_t *ngx_http_datagate_rstate(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);
/* a Redis reply landed: run the phases again (the access handler asks
 * again and is answered from ctx->pending) */
void ngx_http_datagate_resume(ngx_http_request_t *r);

/*
 * Load run-time grants for (consumer, dataset) into ctx->extra/nextra
 * before dg_decide().  NGX_OK: ready; NGX_AGAIN: waiting for Redis (the
 * access handler is re-entered when the reply lands); NGX_ERROR.
 * Unavailable cluster state past its staleness: NGX_OK with
 * *reason = DG_R_POLICY_UNAVAILABLE.
 */
ngx_int_t ngx_http_datagate_runtime_grants(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e *reason);

/*
 * After dg_decide(): revoked certificate serial, suspended consumer,
 * frozen dataset, frozen grant (ctx->grant; on an unconditional dataset
 * the pair, grant or not).  Any hit overrides the
 * decision: *reason = DG_R_CERT_REVOKED etc.; none: *reason = DG_R_OK.
 * Same NGX_OK / NGX_AGAIN / NGX_ERROR contract as above.
 */
ngx_int_t ngx_http_datagate_incident_check(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, dg_reason_e *reason);

/* a control in force as this node last read it from Redis (the zone's
 * incident entries read within stale=), for the statistics */
typedef struct {
    uint32_t                        control;    /* one INC_* bit */
    ngx_str_t                       id;         /* serial, consumer,
                                                   dataset, or
                                                   CONSUMER|DATASET */
    uint64_t                        fetched;    /* ms, read then */
} ngx_http_datagate_control_t;

/* the controls (each once, sorted by control and id; at most max) into
 * *out, an array of ngx_http_datagate_control_t in pool */
ngx_int_t ngx_http_datagate_incident_controls(
    ngx_http_datagate_main_conf_t *dmcf, ngx_pool_t *pool, ngx_uint_t max,
    ngx_array_t **out);

/* what the re-check of a long answer keeps between calls (_watch.c) */
typedef struct {
    uint64_t                        known;      /* ms: state last fresh */
    uint32_t                        ghash;      /* the run-time grant */
    uint32_t                        glen;       /* value the answer
                                                   stands on, 0: none */
    unsigned                        ginit:1;
    unsigned                        settled:1;  /* out: the state was
                                                   fresh */
} ngx_http_datagate_recheck_t;

/*
 * The controls that apply to an allowed request, again, from the shared
 * zone alone: never a Redis round trip that anyone waits for (a state
 * past half its TTL, or invalidated, starts one background MGET shared
 * by every request of the tuple; rk->settled = 0 when it was not fresh:
 * look again soon).  DG_R_OK, or the reason a control now denies it:
 * cert_revoked, consumer_suspended, dataset_frozen, the run-time grant
 * it stands on withdrawn or replaced (the reason of the decision without
 * it, or level_exceeded when the new grant shows less),
 * policy_unavailable (Redis down and no fresh state for stale=).
 */
dg_reason_e ngx_http_datagate_incident_recheck(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_recheck_t *rk);


/* ---- ngx_http_datagate_limit.c: rate limits and quotas --------------- */

/* NGX_OK: admitted; NGX_DECLINED: limited (headers set, reason in ctx);
 * NGX_AGAIN: waiting for Redis, the access handler will be re-entered */
ngx_int_t ngx_http_datagate_limit(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);

/* the dataset budget's key: this, then CONSUMER|DATASET */
#define NGX_HTTP_DATAGATE_DS_BUDGET     "dataset:"
#define NGX_HTTP_DATAGATE_LIMIT_KEY                                         \
    (sizeof(NGX_HTTP_DATAGATE_DS_BUDGET) + 2 * DG_RS_ID_MAX + 2)

/* a budget's counters in the shared zone (sh->limits) */
typedef struct {
    ngx_str_node_t                  sn;
    ngx_queue_t                     queue;
    int64_t                         tat;        /* us */
    int64_t                         window;     /* quota window, s */
    uint64_t                        count;      /* admitted here in it */
    uint32_t                        period;     /* of that window, s */
    int64_t                         seen_window;
    uint64_t                        seen;       /* cluster count (Redis) */
    int64_t                         unsynced_window;
    uint64_t                        unsynced;   /* admitted alone, not yet
                                                   added to Redis's count */
    uint64_t                        last;       /* ms */
    u_char                          data[1];
} ngx_http_datagate_lnode_t;

ngx_http_datagate_lnode_t *ngx_http_datagate_limit_node(
    ngx_http_datagate_main_conf_t *dmcf, u_char *key, size_t klen,
    uint64_t now, ngx_http_datagate_lnode_t *keep);

/* a budget's quota counters as the zone has them, for the statistics */
typedef struct {
    ngx_str_t                       key;        /* the budget */
    int64_t                         window;     /* counted here */
    uint64_t                        count;
    int64_t                         seen_window; /* the cluster's, as */
    uint64_t                        seen;       /* Redis last said */
    int64_t                         unsynced_window;
    uint64_t                        unsynced;
} ngx_http_datagate_quota_state_t;

/* the budgets with a quota count (at most max) into *out, an array of
 * ngx_http_datagate_quota_state_t in pool */
ngx_int_t ngx_http_datagate_limit_budgets(
    ngx_http_datagate_main_conf_t *dmcf, ngx_pool_t *pool, ngx_uint_t max,
    ngx_array_t **out);


/* ---- ngx_http_datagate_abuse.c: abuse detection -------------------- */

/* init_main_conf: the key of identifiers (from datagate_secret) */
ngx_int_t ngx_http_datagate_abuse_conf(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf);
/* a new zone: its own key (used without datagate_secret) */
void ngx_http_datagate_abuse_zone(ngx_http_datagate_main_conf_t *dmcf);

/* the incident stage: the consumer suspended here by abuse detection
 * (DG_R_CONSUMER_SUSPENDED), else DG_R_OK */
dg_reason_e ngx_http_datagate_abuse_suspended(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);
/* an admitted request: the detectors of its dataset or grant.  NGX_OK;
 * NGX_DECLINED: it made the consumer suspended now (refuse it) */
ngx_int_t ngx_http_datagate_abuse_check(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);
/* the log phase: the records of an allowed answer */
void ngx_http_datagate_abuse_log(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx);
/* a message on datagate:events ("unsuspend consumer ID") */
void ngx_http_datagate_abuse_event(ngx_http_datagate_main_conf_t *dmcf,
    u_char *msg, size_t len);

/*
 * datagate_state (_state.c): _copy copies the volume baselines and the
 * suspensions out of the zone (locked) into memory of its own, _format
 * writes them as lines of the state file and frees that memory (NULL p:
 * only the bytes they take), _load reads one line back into a new zone
 * (locked): NGX_OK, NGX_DECLINED (not an abuse line), NGX_ERROR
 * (malformed).
 */
void *ngx_http_datagate_abuse_copy(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log);
size_t ngx_http_datagate_abuse_format(void *copy, u_char *p);
void ngx_http_datagate_abuse_free(void *copy);
ngx_int_t ngx_http_datagate_abuse_load(ngx_http_datagate_main_conf_t *dmcf,
    u_char *p, u_char *end);


/* ---- ngx_http_datagate_state.c: datagate_state ----------------------- */

/*
 * datagate_state: quota counters (and the Redis epoch, the audit records
 * lost) in a file, so that they survive a restart without Redis.  _load
 * seeds a fresh zone (init_zone, master); _save writes the file
 * atomically (exit_master, and every interval= from worker 0);
 * _init_process starts that timer.
 */
/* datagate_state PATH [interval=60s]; */
char *ngx_http_datagate_state(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_datagate_state_load(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log);
ngx_int_t ngx_http_datagate_state_save(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, ngx_uint_t wait);
ngx_int_t ngx_http_datagate_state_init_process(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_DATAGATE_H_INCLUDED_ */
