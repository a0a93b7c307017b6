
/*
 * datagate: what the audit trail's writer (_audit.c: the directive, the
 * zone, processes, timers; _audit_write.c: adding and writing records,
 * what the statistics read) shares.  docs/audit.md, "Writing".
 */


#ifndef _NGX_HTTP_DATAGATE_AUDIT_H_INCLUDED_
#define _NGX_HTTP_DATAGATE_AUDIT_H_INCLUDED_


#include "ngx_http_datagate.h"
#include "dg_audit.h"


#define NGX_HTTP_DATAGATE_AUDIT_ZONE        "datagate_audit"
#define NGX_HTTP_DATAGATE_AUDIT_BUFFER      (64 * 1024)
#define NGX_HTTP_DATAGATE_AUDIT_BUFFER_MIN  (2 * DG_AUDIT_RECORD_MAX)
#define NGX_HTTP_DATAGATE_AUDIT_BUFFER_MAX  (16 * 1024 * 1024)
#define NGX_HTTP_DATAGATE_AUDIT_FLUSH       100     /* ms */
#define NGX_HTTP_DATAGATE_AUDIT_FLUSH_MAX   60000
#define NGX_HTTP_DATAGATE_AUDIT_CHECKPOINT  5000
#define NGX_HTTP_DATAGATE_AUDIT_TICK        100     /* ms, with flush=0 */
#define NGX_HTTP_DATAGATE_AUDIT_SCAN        1000    /* ms, orphans */

/* chains in a zone: per worker, for two generations at a reload, and
 * some to spare for a third */
#define NGX_HTTP_DATAGATE_AUDIT_PER_WORKER  2
#define NGX_HTTP_DATAGATE_AUDIT_SPARE       8

/* how far after its start a killed worker's write is looked for */
#define NGX_HTTP_DATAGATE_AUDIT_SEARCH      (16 * 1024 * 1024)

/* checkpoints: a Redis list per node, the latest kept */
#define NGX_HTTP_DATAGATE_AUDIT_CP_KEY      "datagate:audit:"
#define NGX_HTTP_DATAGATE_AUDIT_CP_KEEP     10000   /* LTRIM -KEEP -1 */
#define NGX_HTTP_DATAGATE_AUDIT_CP_MAX      256     /* one entry, JSON */
#define NGX_HTTP_DATAGATE_AUDIT_CP_KEYLEN                                   \
    (sizeof(NGX_HTTP_DATAGATE_AUDIT_CP_KEY) + NGX_MAXHOSTNAMELEN)

#define NGX_HTTP_DATAGATE_AUDIT_RECORD_START  "{\"seq\":"

/* HMAC(secret, this): the key's fingerprint, kept in the zone */
#define NGX_HTTP_DATAGATE_AUDIT_KEY_ID      "datagate-audit-key-id"


/* one chain and its buffer, in the zone */
typedef struct {
    ngx_atomic_t                    owner;      /* pid, 0: nobody */
    ngx_uint_t                      active;     /* holds a chain */
    ngx_uint_t                      alg;
    dg_audit_chain_t                chain;      /* the last sealed */

    /* a record being added, applied again if its worker died there */
    ngx_atomic_t                    staged;
    dg_audit_chain_t                stage;
    size_t                          stage_fill;
    uint64_t                        stage_nrec;

    u_char                         *buf;
    size_t                          fill;       /* sealed, not written */
    uint64_t                        nrec;       /* records in it */

    /* the write under way, for whoever has to finish it */
    size_t                          flushing;   /* bytes, 0: none */
    off_t                           size_before;
    uint64_t                        dev;
    uint64_t                        ino;
    uint64_t                        flush_seq;  /* its last record */
    u_char                          flush_hash[DG_AUDIT_HEXLEN + 1];

    uint64_t                        wseq;       /* the last written */
    u_char                          whash[DG_AUDIT_HEXLEN + 1];
    uint64_t                        cp_seq;     /* the last logged */
    uint64_t                        cp_rseq;    /* ... sent to Redis */

    uint64_t                        lost;       /* not sealed since the
                                                   last record sealed */
    uint64_t                        lost_told;  /* counted in ... */
    uint64_t                        lost_seq;   /* ... this record */
    ngx_uint_t                      failing;
} ngx_http_datagate_aslot_t;


struct ngx_http_datagate_audit_sh_s {
    ngx_uint_t                      nslots;
    size_t                          bufsize;
    ngx_uint_t                      alg;        /* of every chain */
    u_char                          epoch[NGX_INT64_LEN + 1];
    ngx_uint_t                      next_chain; /* under the mutex */
    uint8_t                         gen[DG_AUDIT_KEY_LEN]; /* G_next */
    uint8_t                         key_id[DG_AUDIT_DIGEST_LEN];
    ngx_uint_t                      keyed;
    u_char                          from[DG_AUDIT_HEXLEN + 1];

    ngx_atomic_t                    failing;    /* chains failing */
    ngx_atomic_t                    failed;     /* records lost */
    ngx_atomic_t                    carry;      /* lost, for the next
                                                   record of any chain */

    /* the last record written by any chain (the state file) */
    ngx_atomic_t                    last_lock;
    uint64_t                        last_seq;
    u_char                          last[DG_AUDIT_HEXLEN + 1];

    ngx_http_datagate_aslot_t      *slots;
};

typedef struct ngx_http_datagate_audit_sh_s  ngx_http_datagate_audit_sh_t;



/* this worker's chain, and the configuration it belongs to (_audit.c) */
extern ngx_http_datagate_aslot_t      *ngx_http_datagate_audit_own;
extern ngx_http_datagate_main_conf_t  *ngx_http_datagate_audit_conf;

/* _audit_write.c */

/* the buffer to the file: NGX_OK written (or nothing to write) */
ngx_int_t ngx_http_datagate_audit_flush(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_aslot_t *s, ngx_log_t *log);
/* a chain whose worker died: finish the record it was adding and the
 * write it was making */
void ngx_http_datagate_audit_recover(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_aslot_t *s, ngx_log_t *log);


#endif /* _NGX_HTTP_DATAGATE_AUDIT_H_INCLUDED_ */
