/*
 * datagate: the audit trail's writer (docs/audit.md, "Writing").
 *
 * One chain per worker.  Each worker seals the records of its requests
 * into its own chain (seq, prev, and with a key the MAC) and keeps them
 * in its chain's buffer; one write() of the whole buffer to the
 * O_APPEND file puts them out when the buffer is nearly full, when
 * flush= has passed, before "nginx -s reopen" and when the worker
 * exits.  No lock is taken for a record: the chain and its buffer belong
 * to one process.
 *
 * Chains and buffers live in the audit zone (shared memory), so they
 * outlive their worker: a record in a buffer is not lost when its worker
 * is killed.  The worker that takes the chain over (the one the master
 * starts in its place, or any worker's timer, for a chain nobody owns)
 * first finishes what the dead one left: a record half added is added,
 * a write() cut short is found in the file, the part of the record it
 * cut is blanked there, and the rest is written again.
 *
 * A new zone (start, or a reload that changes its size) begins new
 * chains, "EPOCH-N", whose first record links to the last record of the
 * file; a reload that keeps the zone keeps the chains, which workers of
 * the new generation carry on as the old ones leave.  With key= each
 * chain's records carry a MAC under a key that evolves with every record
 * (dg_audit_key_*): the zone holds the key of each chain's next record
 * and the generator of the next chain, never the secret.
 *
 * A write that fails keeps its records in the buffer and is tried again;
 * the chain is "failing" until a write succeeds (on_failure=deny refuses
 * allowed requests meanwhile).  A record that finds no room is lost:
 * counted, and the next record of the chain says how many ("lost").
 */


#include "ngx_http_datagate.h"
#include "dg_audit.h"


#define NGX_HTTP_DATAGATE_AUDIT_ZONE        "datagate_audit"
#define NGX_HTTP_DATAGATE_AUDIT_BUFFER      (64 * 1024)
#define NGX_HTTP_DATAGATE_AUDIT_BUFFER_MIN  (2 * DG_AUDIT_RECORD_MAX)
#define NGX_HTTP_DATAGATE_AUDIT_BUFFER_MAX  (16 * 1024 * 1024)
#define NGX_HTTP_DATAGATE_AUDIT_FLUSH       100     /* ms */
#define NGX_HTTP_DATAGATE_AUDIT_FLUSH_MAX   60000
#define NGX_HTTP_DATAGATE_AUDIT_CHECKPOINT  5000
#define NGX_HTTP_DATAGATE_AUDIT_SCAN        100     /* ms, orphans */

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

#define NGX_HTTP_DATAGATE_AUDIT_RECORD_START  "{\"seq\":"


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
    uint64_t                        cp_seq;     /* the last published */

    uint64_t                        lost;       /* not sealed since the
                                                   last record sealed */
    uint64_t                        lost_told;  /* counted in ... */
    uint64_t                        lost_seq;   /* ... this record */
    ngx_uint_t                      failing;
} ngx_http_datagate_aslot_t;


struct ngx_http_datagate_audit_sh_s {
    ngx_uint_t                      nslots;
    size_t                          bufsize;
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


static ngx_int_t ngx_http_datagate_audit_init_zone(ngx_shm_zone_t *zone,
    void *data);
static void ngx_http_datagate_audit_file_flush(ngx_open_file_t *file,
    ngx_log_t *log);
static void ngx_http_datagate_audit_cleanup(void *data);
static ngx_int_t ngx_http_datagate_audit_claim(
    ngx_http_datagate_main_conf_t *dmcf, ngx_log_t *log);
static void ngx_http_datagate_audit_apply(ngx_http_datagate_aslot_t *s);
static ngx_int_t ngx_http_datagate_audit_flush(
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_aslot_t *s,
    ngx_log_t *log);
static void ngx_http_datagate_audit_written(
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_aslot_t *s,
    ngx_log_t *log);
static void ngx_http_datagate_audit_repair(
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_aslot_t *s,
    ssize_t known, ngx_log_t *log);
static ngx_int_t ngx_http_datagate_audit_find(ngx_fd_t fd, off_t from,
    u_char *data, size_t len, off_t *at, size_t *got, ngx_log_t *log);
static ngx_int_t ngx_http_datagate_audit_blank(ngx_fd_t fd, off_t at,
    size_t n, ngx_log_t *log);
static ngx_fd_t ngx_http_datagate_audit_same(ngx_fd_t fd, int flags,
    ngx_log_t *log);
static void ngx_http_datagate_audit_recover(
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_aslot_t *s,
    ngx_log_t *log);
static void ngx_http_datagate_audit_fail(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_aslot_t *s, ngx_err_t err, const char *why,
    ngx_log_t *log);
static void ngx_http_datagate_audit_timer(ngx_event_t *ev);
static void ngx_http_datagate_audit_tick(
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_aslot_t *s,
    ngx_log_t *log);
static void ngx_http_datagate_audit_orphans(
    ngx_http_datagate_main_conf_t *dmcf, ngx_log_t *log);
static void ngx_http_datagate_audit_cp_timer(ngx_event_t *ev);
static void ngx_http_datagate_audit_cp_reply(void *data, void *reply);


/* this worker's chain and timers */
static ngx_http_datagate_aslot_t      *ngx_http_datagate_audit_own;
static ngx_http_datagate_main_conf_t  *ngx_http_datagate_audit_conf;
static ngx_event_t                     ngx_http_datagate_audit_ev;
static ngx_event_t                     ngx_http_datagate_audit_cp_ev;


/* ---- the directive ---------------------------------------------------- */

char *
ngx_http_datagate_audit_log(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_datagate_main_conf_t *dmcf = conf;

    ngx_str_t   *value, v, key;
    ngx_int_t    n;
    ngx_uint_t   i, hash, on_failure, flush, buffer, checkpoint;
    ngx_msec_t   ms;

    if (dmcf->audit_file) {
        return "is duplicate";
    }

    value = cf->args->elts;

    dmcf->audit_path = value[1];
    dmcf->audit_hash = 0;
    dmcf->audit_serve = 0;
    dmcf->audit_flush = NGX_HTTP_DATAGATE_AUDIT_FLUSH;
    dmcf->audit_buffer = NGX_HTTP_DATAGATE_AUDIT_BUFFER;
    dmcf->audit_checkpoint = NGX_HTTP_DATAGATE_AUDIT_CHECKPOINT;
    hash = 0;
    on_failure = 0;
    flush = 0;
    buffer = 0;
    checkpoint = 0;
    ngx_str_null(&key);

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "hash=sha256") == 0
            || ngx_strcmp(value[i].data, "hash=sm3") == 0)
        {
            if (hash++) {
                goto duplicate;
            }

            dmcf->audit_hash = (value[i].data[5] == 's'
                                && value[i].data[6] == 'm') ? 1 : 0;
            continue;
        }

        if (ngx_strcmp(value[i].data, "on_failure=deny") == 0
            || ngx_strcmp(value[i].data, "on_failure=serve") == 0)
        {
            if (on_failure++) {
                goto duplicate;
            }

            dmcf->audit_serve = (value[i].data[11] == 's') ? 1 : 0;
            continue;
        }

        if (ngx_strncmp(value[i].data, "flush=", 6) == 0) {
            if (flush++) {
                goto duplicate;
            }

            v.data = value[i].data + 6;
            v.len = value[i].len - 6;
            ms = ngx_parse_time(&v, 0);

            if (ms == (ngx_msec_t) NGX_ERROR
                || ms > NGX_HTTP_DATAGATE_AUDIT_FLUSH_MAX)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "datagate: invalid \"%V\" (a time, at "
                                   "most 60s; 0: every record at once)",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            dmcf->audit_flush = ms;
            continue;
        }

        if (ngx_strncmp(value[i].data, "checkpoint=", 11) == 0) {
            if (checkpoint++) {
                goto duplicate;
            }

            v.data = value[i].data + 11;
            v.len = value[i].len - 11;

            if (v.len == 3 && ngx_strncmp(v.data, "off", 3) == 0) {
                dmcf->audit_checkpoint = 0;
                continue;
            }

            ms = ngx_parse_time(&v, 0);

            if (ms == (ngx_msec_t) NGX_ERROR || ms < 100) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "datagate: invalid \"%V\" (a time of at "
                                   "least 100ms, or off)", &value[i]);
                return NGX_CONF_ERROR;
            }

            dmcf->audit_checkpoint = ms;
            continue;
        }

        if (ngx_strncmp(value[i].data, "buffer=", 7) == 0) {
            if (buffer++) {
                goto duplicate;
            }

            v.data = value[i].data + 7;
            v.len = value[i].len - 7;
            n = ngx_parse_size(&v);

            if (n == NGX_ERROR || n < NGX_HTTP_DATAGATE_AUDIT_BUFFER_MIN
                || n > NGX_HTTP_DATAGATE_AUDIT_BUFFER_MAX)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "datagate: invalid \"%V\" (a size from "
                                   "32k to 16m)", &value[i]);
                return NGX_CONF_ERROR;
            }

            dmcf->audit_buffer = (size_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            if (key.len) {
                goto duplicate;
            }

            key.data = value[i].data + 4;
            key.len = value[i].len - 4;

            if (key.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "datagate: \"key=\" needs a file");
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: invalid parameter \"%V\" (hash=sha256, "
                           "hash=sm3, key=FILE, checkpoint=TIME|off, "
                           "flush=TIME, buffer=SIZE, on_failure=deny or "
                           "on_failure=serve)", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (key.len) {
        /* the secret stays in this configuration until the zone has
         * derived its keys from it, and is wiped then (or with the
         * configuration, if it is refused) */
        dmcf->audit_key_path = key;

        if (ngx_http_datagate_read_secret(cf, &dmcf->audit_key_path,
                                          "audit key", dmcf->audit_secret,
                                          &dmcf->audit_secret_len)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }

        dmcf->audit_keyed = 1;
    }

    /* on_failure=serve needs datagate_state, which may come later */
    dmcf->audit_conf_file = cf->conf_file->file.name;
    dmcf->audit_conf_line = cf->conf_file->line;

    /* opened by the cycle, reopened on USR1 (after our flush) */
    dmcf->audit_file = ngx_conf_open_file(cf->cycle, &dmcf->audit_path);
    if (dmcf->audit_file == NULL) {
        return NGX_CONF_ERROR;
    }

    dmcf->audit_file->flush = ngx_http_datagate_audit_file_flush;
    dmcf->audit_file->data = dmcf;

    return NGX_CONF_OK;

duplicate:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "datagate: duplicate parameter \"%V\"", &value[i]);
    return NGX_CONF_ERROR;
}


/* ---- configuration: the file's last record, the zone ----------------- */

static void
ngx_http_datagate_audit_cleanup(void *data)
{
    ngx_http_datagate_main_conf_t  *dmcf = data;

    dg_audit_md_free(&dmcf->audit_md);
    ngx_explicit_memzero(dmcf->audit_secret, sizeof(dmcf->audit_secret));
    dmcf->audit_secret_len = 0;
}


ngx_int_t
ngx_http_datagate_audit_init(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf)
{
    int                  rc, fd;
    u_char              *path, last;
    size_t               size;
    uint64_t             seq;
    ngx_str_t            name;
    ngx_int_t            workers;
    ngx_uint_t           nslots;
    struct stat          st;
    ngx_core_conf_t     *ccf;
    ngx_pool_cleanup_t  *cln;
    char                 hash[DG_AUDIT_HEXLEN + 1], err[DG_ERRLEN];

    /* the digests records are sealed with, and the secret: released
     * with this configuration */
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_datagate_audit_cleanup;
    cln->data = dmcf;

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
                      "datagate: audit log: %s; new chains start from the "
                      "last good record (seq %uL), \"datagate audit "
                      "verify\" will show the damage", err, seq);

        /* a torn last line must not swallow the next record */
        fd = open((char *) path, O_RDONLY);
        if (fd != -1) {
            off_t  fsize = lseek(fd, 0, SEEK_END);

            if (fsize > 0 && pread(fd, &last, 1, fsize - 1) == 1
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
                      "datagate: audit log \"%s\": last record seq %uL "
                      "hash %s", path, seq, hash);
    }

    /*
     * The zone: a chain and a buffer for each worker of two generations
     * (a reload) and some to spare.  Its size follows worker_processes
     * and buffer=: a reload that changes either makes a new zone, and
     * new chains.
     */

    ccf = (ngx_core_conf_t *) ngx_get_conf(cf->cycle->conf_ctx,
                                           ngx_core_module);
    workers = (ccf && ccf->worker_processes != NGX_CONF_UNSET)
              ? ccf->worker_processes : ngx_ncpu;
    if (workers < 1) {
        workers = 1;
    }

    nslots = NGX_HTTP_DATAGATE_AUDIT_PER_WORKER * (ngx_uint_t) workers
             + NGX_HTTP_DATAGATE_AUDIT_SPARE;

    size = ngx_align(sizeof(ngx_http_datagate_audit_sh_t)
                     + nslots * sizeof(ngx_http_datagate_aslot_t),
                     ngx_pagesize)
           + nslots * ngx_align(dmcf->audit_buffer, ngx_pagesize)
           + 16 * ngx_pagesize;
    size += size / 32;              /* the slab's page descriptors */

    ngx_str_set(&name, NGX_HTTP_DATAGATE_AUDIT_ZONE);

    dmcf->audit_zone = ngx_shared_memory_add(cf, &name, size,
                                             &ngx_http_datagate_module);
    if (dmcf->audit_zone == NULL) {
        return NGX_ERROR;
    }

    dmcf->audit_zone->init = ngx_http_datagate_audit_init_zone;
    dmcf->audit_zone->data = dmcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_datagate_audit_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_http_datagate_main_conf_t  *odmcf = data;

    u_char                         *p, lf;
    size_t                          len;
    ssize_t                         n;
    ngx_fd_t                        fd;
    ngx_uint_t                      i, nslots;
    ngx_time_t                     *tp;
    ngx_slab_pool_t                *shpool;
    ngx_file_info_t                 fi;
    ngx_http_datagate_audit_sh_t   *sh;
    ngx_http_datagate_main_conf_t  *dmcf;
    uint8_t                         id[DG_AUDIT_DIGEST_LEN];

    dmcf = zone->data;

    if (dmcf->audit_secret_len) {
        if (dg_audit_hmac(&dmcf->audit_md, (int) dmcf->audit_hash,
                          dmcf->audit_secret, dmcf->audit_secret_len,
                          "datagate-audit-key-id", 21, id)
            != 0)
        {
            return NGX_ERROR;
        }
    }

    if (odmcf) {
        /* a reload that keeps the zone: its chains go on */
        dmcf->audit_sh = odmcf->audit_sh;
        sh = dmcf->audit_sh;

        if ((dmcf->audit_secret_len != 0) != (sh->keyed != 0)
            || (sh->keyed && ngx_memcmp(id, sh->key_id, sizeof(id)) != 0))
        {
            ngx_log_error(NGX_LOG_WARN, zone->shm.log, 0,
                          "datagate: audit log: a changed \"key=\" applies "
                          "to the chains a restart begins; the running "
                          "chains keep %s", sh->keyed ? "their keys"
                                                      : "sealing without a "
                                                        "key");
        }

        ngx_explicit_memzero(dmcf->audit_secret, sizeof(dmcf->audit_secret));
        dmcf->audit_secret_len = 0;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (zone->shm.exists) {
        dmcf->audit_sh = shpool->data;
        return NGX_OK;
    }

    nslots = (zone->shm.size - 16 * ngx_pagesize)
             / (ngx_align(dmcf->audit_buffer, ngx_pagesize)
                + sizeof(ngx_http_datagate_aslot_t) + 64);

    len = sizeof(ngx_http_datagate_audit_sh_t)
          + nslots * sizeof(ngx_http_datagate_aslot_t);

    for ( ;; ) {
        sh = ngx_slab_calloc(shpool, len);
        if (sh == NULL) {
            return NGX_ERROR;
        }

        sh->slots = (ngx_http_datagate_aslot_t *) (sh + 1);

        for (i = 0; i < nslots; i++) {
            sh->slots[i].buf = ngx_slab_alloc(shpool, dmcf->audit_buffer);
            if (sh->slots[i].buf == NULL) {
                break;
            }
        }

        if (i > 0) {
            nslots = i;
            break;
        }

        return NGX_ERROR;
    }

    sh->nslots = nslots;
    sh->bufsize = dmcf->audit_buffer;

    /* the epoch names this zone's chains: the time it was made, in ms */
    tp = ngx_timeofday();
    ngx_sprintf(sh->epoch, "%uL%Z",
                (uint64_t) tp->sec * 1000 + (uint64_t) tp->msec);

    ngx_memcpy(sh->from, dmcf->audit_head[0] ? dmcf->audit_head
                                             : (u_char *) dg_audit_genesis,
               DG_AUDIT_HEXLEN + 1);
    sh->last_seq = dmcf->audit_head_seq;
    ngx_memcpy(sh->last, sh->from, DG_AUDIT_HEXLEN + 1);

    if (dmcf->audit_secret_len) {
        if (dg_audit_key_root(&dmcf->audit_md, (int) dmcf->audit_hash,
                              dmcf->audit_secret, dmcf->audit_secret_len,
                              (char *) sh->epoch,
                              ngx_strlen(sh->epoch), sh->gen)
            != 0)
        {
            return NGX_ERROR;
        }

        ngx_memcpy(sh->key_id, id, sizeof(id));
        sh->keyed = 1;
    }

    /* from here on nothing in this process holds the secret */
    ngx_explicit_memzero(dmcf->audit_secret, sizeof(dmcf->audit_secret));
    dmcf->audit_secret_len = 0;
    ngx_explicit_memzero(id, sizeof(id));

    /* records lost before the restart (the state file), to count */
    sh->carry = dmcf->audit_carry;

    /*
     * The file ends in a torn line (a crash during a write): at the first
     * start, before any worker writes, end it, and count the record it
     * was as lost unless the state file did.  At a reload a worker may be
     * writing that line right now: it is left alone.
     */
    if (dmcf->audit_head_torn && ngx_is_init_cycle(ngx_cycle)
        && !ngx_test_config)
    {
        fd = dmcf->audit_file->fd;

        if (ngx_fd_info(fd, &fi) != NGX_FILE_ERROR
            && (uint64_t) fi.st_dev == dmcf->audit_head_dev
            && (uint64_t) fi.st_ino == dmcf->audit_head_ino)
        {
            lf = '\n';
            n = write(fd, &lf, 1);

            if (n != 1) {
                ngx_log_error(NGX_LOG_ALERT, zone->shm.log, ngx_errno,
                              "datagate: audit log \"%V\": cannot end its "
                              "torn last line", &dmcf->audit_file->name);
            }
        }

        if (sh->carry == 0) {
            sh->carry = 1;
        }
    }

    shpool->data = sh;
    dmcf->audit_sh = sh;

    len = sizeof(" in datagate zone \"\"") + zone->shm.name.len;

    p = ngx_slab_alloc(shpool, len);
    if (p != NULL) {
        ngx_sprintf(p, " in datagate zone \"%V\"%Z", &zone->shm.name);
        shpool->log_ctx = p;
    }

    return NGX_OK;
}


/* ---- processes -------------------------------------------------------- */

ngx_int_t
ngx_http_datagate_audit_init_process(ngx_cycle_t *cycle)
{
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_datagate_module);

    if (dmcf == NULL || dmcf->audit_file == NULL || dmcf->audit_sh == NULL
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return NGX_OK;
    }

    ngx_http_datagate_audit_conf = dmcf;

    if (ngx_http_datagate_audit_claim(dmcf, cycle->log) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "datagate: audit log \"%V\": no chain is free for "
                      "this worker (%ui in the zone, all held by running "
                      "processes): its records are lost and counted",
                      &dmcf->audit_file->name, dmcf->audit_sh->nslots);
    }

    /* timers that never keep a worker from exiting */
    ngx_http_datagate_audit_ev.handler = ngx_http_datagate_audit_timer;
    ngx_http_datagate_audit_ev.log = cycle->log;
    ngx_http_datagate_audit_ev.cancelable = 1;

    ngx_add_timer(&ngx_http_datagate_audit_ev,
                  dmcf->audit_flush ? dmcf->audit_flush
                                    : NGX_HTTP_DATAGATE_AUDIT_SCAN);

    if (dmcf->audit_checkpoint && ngx_http_datagate_audit_own) {
        ngx_http_datagate_audit_cp_ev.handler =
                                            ngx_http_datagate_audit_cp_timer;
        ngx_http_datagate_audit_cp_ev.log = cycle->log;
        ngx_http_datagate_audit_cp_ev.cancelable = 1;

        ngx_add_timer(&ngx_http_datagate_audit_cp_ev,
                      dmcf->audit_checkpoint);
    }

    return NGX_OK;
}


/*
 * This worker's chain: one whose worker died (finish what it left and
 * carry it on), one nobody holds (carry it on), or a new one.
 */
static ngx_int_t
ngx_http_datagate_audit_claim(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log)
{
    ngx_pid_t                       pid;
    ngx_uint_t                      i, dead;
    ngx_slab_pool_t                *shpool;
    ngx_http_datagate_aslot_t      *s, *found;
    ngx_http_datagate_audit_sh_t   *sh;

    sh = dmcf->audit_sh;
    shpool = (ngx_slab_pool_t *) dmcf->audit_zone->shm.addr;

    found = NULL;
    dead = 0;

    ngx_shmtx_lock(&shpool->mutex);

    /* the timers of other workers take chains with a CAS, not the lock */

    for (i = 0; i < sh->nslots && found == NULL; i++) {
        s = &sh->slots[i];
        pid = (ngx_pid_t) s->owner;

        if (s->active && pid != 0 && pid != ngx_pid && kill(pid, 0) == -1
            && ngx_errno == NGX_ESRCH
            && ngx_atomic_cmp_set(&s->owner, pid, ngx_pid))
        {
            found = s;
            dead = pid;
        }
    }

    for (i = 0; i < sh->nslots && found == NULL; i++) {
        s = &sh->slots[i];

        if (s->active && ngx_atomic_cmp_set(&s->owner, 0, ngx_pid)) {
            found = s;
        }
    }

    for (i = 0; i < sh->nslots && found == NULL; i++) {
        s = &sh->slots[i];

        if (s->active) {
            continue;
        }

        /* a new chain, from the last record of the file */
        ngx_memzero(&s->chain, sizeof(dg_audit_chain_t));
        ngx_snprintf((u_char *) s->chain.id, DG_AUDIT_CHAIN_MAX, "%s-%ui%Z",
                     sh->epoch, sh->next_chain);
        ngx_memcpy(s->chain.hash, sh->from, DG_AUDIT_HEXLEN + 1);
        ngx_memcpy(s->whash, sh->from, DG_AUDIT_HEXLEN + 1);
        s->alg = dmcf->audit_hash;

        if (sh->keyed) {
            if (dg_audit_key_chain(&dmcf->audit_md, (int) s->alg, sh->gen,
                                   s->chain.id, ngx_strlen(s->chain.id),
                                   s->chain.key)
                != 0
                || dg_audit_key_next(&dmcf->audit_md, (int) s->alg, sh->gen)
                   != 0)
            {
                break;
            }

            s->chain.keyed = 1;
        }

        sh->next_chain++;
        s->owner = ngx_pid;
        ngx_memory_barrier();
        s->active = 1;
        found = s;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (found == NULL) {
        return NGX_ERROR;
    }

    ngx_http_datagate_audit_own = found;

    if (dead) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "datagate: audit chain %s of worker %P, which exited "
                      "without finishing, carried on", found->chain.id,
                      dead);
        ngx_http_datagate_audit_recover(dmcf, found, log);
        (void) ngx_http_datagate_audit_flush(dmcf, found, log);
    }

    return NGX_OK;
}


void
ngx_http_datagate_audit_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_datagate_aslot_t      *s;
    ngx_http_datagate_main_conf_t  *dmcf;

    s = ngx_http_datagate_audit_own;
    dmcf = ngx_http_datagate_audit_conf;

    if (s == NULL || dmcf == NULL) {
        return;
    }

    ngx_http_datagate_audit_tick(dmcf, s, cycle->log);

    /* what could not be written waits in the zone: for the next worker
     * that takes the chain, or the master at its exit */
    ngx_http_datagate_audit_own = NULL;
    ngx_memory_barrier();
    s->owner = 0;
}


/* the master on its way out: write what the workers could not */
void
ngx_http_datagate_audit_exit_master(ngx_cycle_t *cycle)
{
    uint64_t                        lost;
    ngx_uint_t                      i;
    ngx_http_datagate_aslot_t      *s;
    ngx_http_datagate_audit_sh_t   *sh;
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_datagate_module);

    if (dmcf == NULL || dmcf->audit_file == NULL || dmcf->audit_sh == NULL) {
        return;
    }

    sh = dmcf->audit_sh;

    for (i = 0; i < sh->nslots; i++) {
        s = &sh->slots[i];

        if (!s->active || (s->fill == 0 && !s->staged && !s->flushing)) {
            continue;
        }

        ngx_http_datagate_audit_recover(dmcf, s, cycle->log);

        if (ngx_http_datagate_audit_flush(dmcf, s, cycle->log) == NGX_OK) {
            continue;
        }

        /* lost now: the state file keeps the count for the next record */
        lost = s->nrec;

        if (lost) {
            (void) ngx_atomic_fetch_add(&sh->failed, lost);
            (void) ngx_atomic_fetch_add(&sh->carry, lost);
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "datagate: audit log \"%V\": %uL record(s) of "
                          "chain %s could not be written before the exit: "
                          "lost", &dmcf->audit_file->name, lost,
                          s->chain.id);
            s->fill = 0;
            s->nrec = 0;
        }
    }
}


/* before "nginx -s reopen" reopens the file, and at a worker's exit */
static void
ngx_http_datagate_audit_file_flush(ngx_open_file_t *file, ngx_log_t *log)
{
    ngx_http_datagate_main_conf_t  *dmcf = file->data;

    if (ngx_http_datagate_audit_own == NULL
        || dmcf != ngx_http_datagate_audit_conf)
    {
        return;
    }

    (void) ngx_http_datagate_audit_flush(dmcf, ngx_http_datagate_audit_own,
                                         log);
}


/* ---- adding a record -------------------------------------------------- */

ngx_int_t
ngx_http_datagate_audit_append(ngx_http_datagate_main_conf_t *dmcf,
    dg_arec_t *rec, ngx_log_t *log)
{
    size_t                          len;
    uint64_t                        carry;
    const char                     *line;
    dg_audit_chain_t                next;
    ngx_http_datagate_aslot_t      *s;
    ngx_http_datagate_audit_sh_t   *sh;

    s = ngx_http_datagate_audit_own;
    sh = dmcf->audit_sh;

    if (s == NULL || sh == NULL || dmcf != ngx_http_datagate_audit_conf) {
        ngx_http_datagate_audit_lose(dmcf, log, "this worker has no chain");
        return NGX_ERROR;
    }

    if (s->fill + DG_AUDIT_RECORD_MAX > sh->bufsize) {
        (void) ngx_http_datagate_audit_flush(dmcf, s, log);

        if (s->fill + DG_AUDIT_RECORD_MAX > sh->bufsize) {
            ngx_http_datagate_audit_lose(dmcf, log,
                                         "records cannot be written and "
                                         "the buffer is full");
            return NGX_ERROR;
        }
    }

    /* a loss nobody has counted yet (before a restart): this record */
    do {
        carry = sh->carry;
    } while (carry
             && !ngx_atomic_cmp_set(&sh->carry, carry, 0));

    dg_arec_lost(rec, s->lost + carry);

    if (dg_audit_chain_seal(rec, &dmcf->audit_md, (int) s->alg, &s->chain,
                            &next, &line, &len)
        != 0)
    {
        (void) ngx_atomic_fetch_add(&sh->carry, carry);
        ngx_explicit_memzero(&next, sizeof(next));
        ngx_http_datagate_audit_lose(dmcf, log, "sealing the record failed");
        return NGX_ERROR;
    }

    /*
     * Into the buffer, then stage the new head and fill, then apply them:
     * a worker killed anywhere in here leaves either no record or the
     * record and its head, whoever takes the chain over finishes it.
     */

    ngx_memcpy(s->buf + s->fill, line, len);

    ngx_memcpy(&s->stage, &next, sizeof(dg_audit_chain_t));
    s->stage_fill = s->fill + len;
    s->stage_nrec = s->nrec + 1;
    ngx_memory_barrier();
    s->staged = 1;
    ngx_memory_barrier();

    if (s->lost + carry) {
        s->lost_told = s->lost + carry;
        s->lost_seq = next.seq;
    }

    s->lost = 0;
    ngx_http_datagate_audit_apply(s);
    ngx_explicit_memzero(&next, sizeof(next));

    if (dmcf->audit_flush == 0
        || s->fill + DG_AUDIT_RECORD_MAX > sh->bufsize)
    {
        (void) ngx_http_datagate_audit_flush(dmcf, s, log);
    }

    return NGX_OK;
}


/* the staged record's head and fill become the chain's (idempotent) */
static void
ngx_http_datagate_audit_apply(ngx_http_datagate_aslot_t *s)
{
    ngx_memcpy(&s->chain, &s->stage, sizeof(dg_audit_chain_t));
    s->fill = s->stage_fill;
    s->nrec = s->stage_nrec;
    ngx_memory_barrier();
    s->staged = 0;
    ngx_memory_barrier();
    ngx_explicit_memzero(s->stage.key, sizeof(s->stage.key));
}


void
ngx_http_datagate_audit_lose(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, const char *why)
{
    ngx_http_datagate_aslot_t  *s;

    if (dmcf->audit_sh == NULL) {
        return;
    }

    (void) ngx_atomic_fetch_add(&dmcf->audit_sh->failed, 1);

    s = (dmcf == ngx_http_datagate_audit_conf) ? ngx_http_datagate_audit_own
                                               : NULL;

    if (s == NULL) {
        /* no chain to count it in: the next record of any chain */
        (void) ngx_atomic_fetch_add(&dmcf->audit_sh->carry, 1);
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "datagate: audit log \"%V\": a record is lost: %s",
                      &dmcf->audit_file->name, why);
        return;
    }

    s->lost++;
    ngx_http_datagate_audit_fail(dmcf, s, 0, why, log);
}


/* ---- writing ---------------------------------------------------------- */

static ngx_int_t
ngx_http_datagate_audit_flush(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_aslot_t *s, ngx_log_t *log)
{
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_err_t         err;
    ngx_file_info_t   fi;

    if (s->staged) {
        ngx_http_datagate_audit_apply(s);
    }

    if (s->flushing) {
        ngx_http_datagate_audit_repair(dmcf, s, -1, log);
    }

    if (s->fill == 0) {
        return NGX_OK;
    }

    fd = dmcf->audit_file->fd;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_http_datagate_audit_fail(dmcf, s, ngx_errno,
                                     ngx_fd_info_n " failed", log);
        return NGX_ERROR;
    }

    if (ngx_is_file(&fi) && fi.st_nlink == 0) {
        /* removed: what is written goes nowhere anyone can read */
        ngx_http_datagate_audit_fail(dmcf, s, 0, "the file was removed "
                                     "(\"nginx -s reopen\" creates it "
                                     "again)", log);
        return NGX_ERROR;
    }

    s->size_before = ngx_is_file(&fi) ? ngx_file_size(&fi) : 0;
    s->dev = (uint64_t) fi.st_dev;
    s->ino = (uint64_t) fi.st_ino;
    s->flush_seq = s->chain.seq;
    ngx_memcpy(s->flush_hash, s->chain.hash, DG_AUDIT_HEXLEN + 1);
    ngx_memory_barrier();
    s->flushing = s->fill;
    ngx_memory_barrier();

    n = write(fd, s->buf, s->fill);
    err = ngx_errno;

    if (n == (ssize_t) s->fill) {
        ngx_http_datagate_audit_written(dmcf, s, log);
        return NGX_OK;
    }

    if (n <= 0) {
        s->flushing = 0;
        ngx_http_datagate_audit_fail(dmcf, s, n == 0 ? NGX_ENOSPC : err,
                                     "write() failed", log);
        return NGX_ERROR;
    }

    /* a short write: the whole records stay, the cut one is blanked, the
     * rest waits for the next try */
    ngx_http_datagate_audit_repair(dmcf, s, n, log);
    ngx_http_datagate_audit_fail(dmcf, s, err ? err : NGX_ENOSPC,
                                 "write() was short", log);

    return NGX_ERROR;
}


/* the whole buffer is in the file */
static void
ngx_http_datagate_audit_written(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_aslot_t *s, ngx_log_t *log)
{
    ngx_http_datagate_audit_sh_t  *sh;

    sh = dmcf->audit_sh;

    s->wseq = s->flush_seq;
    ngx_memcpy(s->whash, s->flush_hash, DG_AUDIT_HEXLEN + 1);

    if (ngx_atomic_cmp_set(&sh->last_lock, 0, ngx_pid)) {
        sh->last_seq = s->wseq;
        ngx_memcpy(sh->last, s->whash, DG_AUDIT_HEXLEN + 1);
        ngx_memory_barrier();
        sh->last_lock = 0;
    }

    s->fill = 0;
    s->nrec = 0;
    ngx_memory_barrier();
    s->flushing = 0;

    if (!s->failing) {
        return;
    }

    s->failing = 0;
    (void) ngx_atomic_fetch_add(&sh->failing, -1);

    if (s->lost) {
        /* counted by the chain's next record */
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "datagate: audit log \"%V\": records are written "
                      "again; %uL record(s) were lost, counted in the "
                      "record seq %uL of chain %s (\"lost\")",
                      &dmcf->audit_file->name, s->lost, s->chain.seq + 1,
                      s->chain.id);

    } else if (s->lost_told) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "datagate: audit log \"%V\": records are written "
                      "again; %uL record(s) were lost, counted in the "
                      "record seq %uL of chain %s (\"lost\")",
                      &dmcf->audit_file->name, s->lost_told, s->lost_seq,
                      s->chain.id);

    } else {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "datagate: audit log \"%V\": records are written "
                      "again; none was lost (chain %s)",
                      &dmcf->audit_file->name, s->chain.id);
    }

    s->lost_told = 0;
}


static void
ngx_http_datagate_audit_fail(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_aslot_t *s, ngx_err_t err, const char *why,
    ngx_log_t *log)
{
    if (s->failing) {
        return;
    }

    s->failing = 1;
    s->lost_told = 0;
    (void) ngx_atomic_fetch_add(&dmcf->audit_sh->failing, 1);

    ngx_log_error(NGX_LOG_ERR, log, err,
                  "datagate: audit log \"%V\": %s; audit records wait in "
                  "memory (buffer=) and are lost once it is full (counted "
                  "in datagate_audit_write_failures_total); %s",
                  &dmcf->audit_file->name, why,
                  dmcf->audit_serve
                  ? "requests are served meanwhile (on_failure=serve)"
                  : "enforced requests are refused with 503 "
                    "audit_unavailable until records are written");
}


/*
 * A write of s->buf[0 .. s->flushing) reached the file in part: the
 * first known bytes (a short write), or, after its worker died during
 * it, as much as is found in the file after where it began.  The whole
 * records stay there; the part of the record cut is blanked in place
 * ("{ ... }"); what follows is moved to the front of the buffer, to be
 * written again.
 */
static void
ngx_http_datagate_audit_repair(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_aslot_t *s, ssize_t known, ngx_log_t *log)
{
    u_char           *p;
    off_t             at;
    size_t            len, got, keep;
    ngx_fd_t          fd;
    ngx_uint_t        i;
    dg_audit_rec_t    rec;
    ngx_file_info_t   fi;

    len = s->flushing;
    fd = dmcf->audit_file->fd;
    got = 0;
    at = 0;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || (uint64_t) fi.st_dev != s->dev || (uint64_t) fi.st_ino != s->ino)
    {
        /* another file since (reopen): the records go to this one whole */
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "datagate: audit log \"%V\": a write of chain %s was "
                      "cut in a file since reopened: its %uL record(s) are "
                      "written again in full (\"datagate audit verify\" "
                      "may find some of them twice)",
                      &dmcf->audit_file->name, s->chain.id, s->nrec);

    } else if (ngx_http_datagate_audit_find(fd, s->size_before, s->buf, len,
                                            &at, &got, log)
               != NGX_OK)
    {
        got = 0;

    } else if (known >= 0 && got < (size_t) known) {
        /* not where the short write put it: write it all again */
        got = 0;
    }

    /* the whole records written; the part of one cut there */

    keep = 0;

    for (p = s->buf; p < s->buf + got; p++) {
        if (*p == '\n') {
            keep = p - s->buf + 1;
        }
    }

    if (got > keep) {
        if (ngx_http_datagate_audit_blank(fd, at + (off_t) keep, got - keep,
                                          log)
            == NGX_OK)
        {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "datagate: audit log \"%V\": %uz byte(s) of a "
                          "record of chain %s cut by a write that did not "
                          "finish were blanked at offset %O; the record is "
                          "written again in full", &dmcf->audit_file->name,
                          got - keep, s->chain.id, at + (off_t) keep);
        }
    }

    if (keep) {
        /* the written head: the last whole record written */
        for (p = s->buf + keep - 1; p > s->buf && p[-1] != '\n'; p--) {
            /* void */
        }

        if (dg_audit_parse(&dmcf->audit_md, (char *) p,
                           s->buf + keep - 1 - p, &rec, NULL, 0)
            == 0)
        {
            s->wseq = rec.seq;
            ngx_memcpy(s->whash, rec.hash, DG_AUDIT_HEXLEN + 1);
        }
    }

    ngx_memmove(s->buf, s->buf + keep, s->fill - keep);
    s->fill -= keep;

    s->nrec = 0;

    for (i = 0; i < s->fill; i++) {
        if (s->buf[i] == '\n') {
            s->nrec++;
        }
    }

    ngx_memory_barrier();
    s->flushing = 0;
}


/*
 * Where data[0 .. len) went in the file, at or after from: the line
 * start at which the file holds its longest prefix that ends where the
 * file ends, or where another write begins ({"seq":, or LF).  *got 0:
 * nothing of it is there.
 */
static ngx_int_t
ngx_http_datagate_audit_find(ngx_fd_t wfd, off_t from, u_char *data,
    size_t len, off_t *at, size_t *got, ngx_log_t *log)
{
    u_char           *buf, *q, *end, *e, c;
    size_t            n, m, best;
    ssize_t           r;
    ngx_fd_t          fd;
    ngx_file_info_t   fi;

    *got = 0;
    *at = from;

    if (ngx_fd_info(wfd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) <= from)
    {
        return NGX_OK;
    }

    /* the log's descriptor is write-only: the same file, to read */
    fd = ngx_http_datagate_audit_same(wfd, O_RDONLY, log);
    if (fd == NGX_INVALID_FILE) {
        return NGX_ERROR;
    }

    n = ngx_min((size_t) (ngx_file_size(&fi) - from),
                (size_t) NGX_HTTP_DATAGATE_AUDIT_SEARCH);

    buf = ngx_alloc(n, log);
    if (buf == NULL) {
        close(fd);
        return NGX_ERROR;
    }

    for (m = 0; m < n; m += r) {
        r = pread(fd, buf + m, n - m, from + (off_t) m);
        if (r <= 0) {
            break;
        }
    }

    n = m;
    end = buf + n;

    /* the first line start at or after from */
    q = buf;

    if (from > 0 && (pread(fd, &c, 1, from - 1) != 1 || c != '\n')) {
        q = ngx_strlchr(buf, end, '\n');
        q = q ? q + 1 : end;
    }

    best = 0;

    while (q < end) {
        for (m = 0; m < len && q + m < end && q[m] == data[m]; m++) {
            /* void */
        }

        if (m > best
            && (m == len || q + m == end || q[m] == '\n'
                || ((size_t) (end - q - m)
                    >= sizeof(NGX_HTTP_DATAGATE_AUDIT_RECORD_START) - 1
                    && ngx_strncmp(q + m,
                                   NGX_HTTP_DATAGATE_AUDIT_RECORD_START,
                                   sizeof(NGX_HTTP_DATAGATE_AUDIT_RECORD_START)
                                   - 1) == 0)))
        {
            best = m;
            *at = from + (q - buf);
        }

        e = ngx_strlchr(q, end, '\n');
        q = e ? e + 1 : end;
    }

    *got = best;
    ngx_free(buf);
    close(fd);

    return NGX_OK;
}


/* another descriptor of the file fd is open on (its own offset, no
 * O_APPEND) */
static ngx_fd_t
ngx_http_datagate_audit_same(ngx_fd_t fd, int flags, ngx_log_t *log)
{
    u_char    path[sizeof("/proc/self/fd/") + NGX_INT_T_LEN];
    ngx_fd_t  nfd;

    ngx_sprintf(path, "/proc/self/fd/%d%Z", fd);

    nfd = open((char *) path, flags);

    if (nfd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "datagate: audit log: open(\"%s\") failed", path);
    }

    return nfd;
}


/* n bytes at the offset at become "{ ... }\n" (" \n", "\n" when short) */
static ngx_int_t
ngx_http_datagate_audit_blank(ngx_fd_t fd, off_t at, size_t n,
    ngx_log_t *log)
{
    u_char     *b;
    ssize_t     w;
    ngx_fd_t    wfd;
    ngx_int_t   rc;

    if (n == 0) {
        return NGX_OK;
    }

    b = ngx_alloc(n, log);
    if (b == NULL) {
        return NGX_ERROR;
    }

    ngx_memset(b, ' ', n);
    b[n - 1] = '\n';

    if (n >= 3) {
        b[0] = '{';
        b[n - 2] = '}';
    }

    /* the log's descriptor appends whatever the offset: another one */
    wfd = ngx_http_datagate_audit_same(fd, O_WRONLY, log);
    rc = NGX_ERROR;

    if (wfd != -1) {
        w = pwrite(wfd, b, n, at);
        rc = (w == (ssize_t) n) ? NGX_OK : NGX_ERROR;
        close(wfd);
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "datagate: audit log: cannot blank the %uz byte(s) of "
                      "a record cut at offset %O (\"datagate audit verify\" "
                      "will show the damaged line)", n, at);
    }

    ngx_free(b);

    return rc;
}


/* a chain whose worker died: finish the record it was adding and the
 * write it was making */
static void
ngx_http_datagate_audit_recover(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_aslot_t *s, ngx_log_t *log)
{
    if (s->staged) {
        ngx_http_datagate_audit_apply(s);
    }

    if (s->flushing) {
        ngx_http_datagate_audit_repair(dmcf, s, -1, log);
    }
}


/* ---- timers ----------------------------------------------------------- */

static void
ngx_http_datagate_audit_timer(ngx_event_t *ev)
{
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_datagate_audit_conf;

    if (dmcf == NULL) {
        return;
    }

    if (ngx_http_datagate_audit_own) {
        ngx_http_datagate_audit_tick(dmcf, ngx_http_datagate_audit_own,
                                     ev->log);
    }

    ngx_http_datagate_audit_orphans(dmcf, ev->log);

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(ev, dmcf->audit_flush ? dmcf->audit_flush
                                        : NGX_HTTP_DATAGATE_AUDIT_SCAN);
}


/*
 * Write what waits; once writes work again, a loss not yet counted gets a
 * record of its own, so that the file says so without waiting for the
 * chain's next request.
 */
static void
ngx_http_datagate_audit_tick(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_aslot_t *s, ngx_log_t *log)
{
    u_char                        *buf, tbuf[DG_AUDIT_MAX_TIME];
    uint64_t                       carry;
    dg_arec_t                      rec;
    ngx_http_datagate_audit_sh_t  *sh;

    sh = dmcf->audit_sh;

    if (ngx_http_datagate_audit_flush(dmcf, s, log) != NGX_OK) {
        return;
    }

    do {
        carry = sh->carry;
    } while (carry && !ngx_atomic_cmp_set(&sh->carry, carry, 0));

    s->lost += carry;

    if (s->lost == 0) {
        return;
    }

    buf = ngx_alloc(DG_AUDIT_RECORD_MAX, log);
    if (buf == NULL) {
        return;
    }

    if (dg_arec_init(&rec, (char *) buf, DG_AUDIT_RECORD_MAX) == 0) {
        dg_arec_str(&rec, "time", (char *) tbuf,
                    ngx_http_datagate_audit_time(tbuf));
        dg_arec_cstr(&rec, "event", "lost");

        if (ngx_http_datagate_audit_append(dmcf, &rec, log) == NGX_OK) {
            (void) ngx_http_datagate_audit_flush(dmcf, s, log);
        }
    }

    ngx_free(buf);
}


/* chains with records and no live worker: write them, leave them free */
static void
ngx_http_datagate_audit_orphans(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log)
{
    ngx_pid_t                      pid;
    ngx_uint_t                     i;
    ngx_http_datagate_aslot_t     *s;
    ngx_http_datagate_audit_sh_t  *sh;

    sh = dmcf->audit_sh;

    for (i = 0; i < sh->nslots; i++) {
        s = &sh->slots[i];
        pid = (ngx_pid_t) s->owner;

        if (!s->active || s == ngx_http_datagate_audit_own) {
            continue;
        }

        if (pid == 0) {
            if (s->fill == 0 && !s->staged && !s->flushing) {
                continue;
            }

        } else if (kill(pid, 0) == 0 || ngx_errno != NGX_ESRCH) {
            continue;
        }

        if (!ngx_atomic_cmp_set(&s->owner, pid, ngx_pid)) {
            continue;
        }

        if (pid) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "datagate: audit chain %s of worker %P, which "
                          "exited without finishing: %uL record(s) to "
                          "write", s->chain.id, pid, s->nrec);
        }

        ngx_http_datagate_audit_recover(dmcf, s, log);
        (void) ngx_http_datagate_audit_flush(dmcf, s, log);

        ngx_memory_barrier();
        s->owner = 0;
    }
}


/*
 * Checkpoint: the head of this worker's chain (the last record written)
 * to the error log and, with datagate_redis, to the node's Redis list.
 */
static void
ngx_http_datagate_audit_cp_timer(ngx_event_t *ev)
{
    u_char                         *p, key[sizeof(NGX_HTTP_DATAGATE_AUDIT_CP_KEY)
                                           + 256];
    u_char                          val[NGX_HTTP_DATAGATE_AUDIT_CP_MAX];
    size_t                          lens[4];
    const char                     *argv[4];
    ngx_http_datagate_aslot_t      *s;
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_datagate_audit_conf;
    s = ngx_http_datagate_audit_own;

    if (dmcf == NULL || s == NULL) {
        return;
    }

    if (s->wseq > s->cp_seq) {
        s->cp_seq = s->wseq;

        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "datagate: audit checkpoint: chain %s seq %uL hash %s",
                      s->chain.id, s->wseq, s->whash);

        if (dmcf->redis_enabled) {
            p = ngx_snprintf(key, sizeof(key) - 1, "%s%V",
                             NGX_HTTP_DATAGATE_AUDIT_CP_KEY,
                             &ngx_cycle->hostname);
            lens[1] = p - key;

            p = ngx_snprintf(val, sizeof(val),
                             "{\"chain\":\"%s\",\"seq\":%uL,\"hash\":\"%s\","
                             "\"time\":%uL}", s->chain.id, s->wseq,
                             s->whash, ngx_http_datagate_now_ms());

            argv[0] = "RPUSH";
            lens[0] = 5;
            argv[1] = (const char *) key;
            argv[2] = (const char *) val;
            lens[2] = p - val;

            if (ngx_http_datagate_redis_command(
                    ngx_http_datagate_audit_cp_reply, NULL, 3, argv, lens)
                == NGX_OK)
            {
                argv[0] = "LTRIM";
                lens[0] = 5;
                argv[2] = "-" ngx_value(NGX_HTTP_DATAGATE_AUDIT_CP_KEEP);
                lens[2] = ngx_strlen(argv[2]);
                argv[3] = "-1";
                lens[3] = 2;

                (void) ngx_http_datagate_redis_command(
                           ngx_http_datagate_audit_cp_reply, NULL, 4, argv,
                           lens);
            }
        }
    }

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(ev, dmcf->audit_checkpoint);
}


static void
ngx_http_datagate_audit_cp_reply(void *data, void *reply)
{
    /* a checkpoint not stored is in the error log all the same */
}


/* ---- what others ask -------------------------------------------------- */

size_t
ngx_http_datagate_audit_time(u_char *buf)
{
    size_t       len;
    ngx_tm_t     tm;
    ngx_time_t  *tp;

    /* ISO 8601 in local time with milliseconds */

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


ngx_int_t
ngx_http_datagate_audit_check(ngx_http_datagate_main_conf_t *dmcf)
{
    if (dmcf->audit_file == NULL || dmcf->audit_serve
        || dmcf->audit_sh == NULL)
    {
        return NGX_OK;
    }

    return dmcf->audit_sh->failing ? NGX_DECLINED : NGX_OK;
}


void
ngx_http_datagate_audit_stats(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_audit_stats_t *st)
{
    ngx_uint_t                     i;
    ngx_http_datagate_aslot_t     *s;
    ngx_http_datagate_audit_sh_t  *sh;

    ngx_memzero(st, sizeof(ngx_http_datagate_audit_stats_t));
    ngx_memcpy(st->last, dg_audit_genesis, DG_AUDIT_HEXLEN + 1);

    sh = dmcf->audit_sh;

    if (dmcf->audit_file == NULL || sh == NULL) {
        return;
    }

    st->failed = sh->failed;
    st->failing = sh->failing ? 1 : 0;
    st->lost = sh->carry;

    for (i = 0; i < sh->nslots; i++) {
        s = &sh->slots[i];

        if (!s->active) {
            continue;
        }

        st->nchains++;
        st->records += s->wseq;
        st->pending += s->nrec;
        st->lost += s->lost;
    }

    if (!ngx_atomic_cmp_set(&sh->last_lock, 0, ngx_pid)) {
        return;
    }

    ngx_memcpy(st->last, sh->last, DG_AUDIT_HEXLEN + 1);
    ngx_memory_barrier();
    sh->last_lock = 0;
}


size_t
ngx_http_datagate_audit_chains_size(ngx_http_datagate_main_conf_t *dmcf)
{
    size_t  size;

    size = sizeof("\"chains\":[]");

    if (dmcf->audit_sh) {
        size += dmcf->audit_sh->nslots
                * (sizeof("{\"chain\":\"\",\"seq\":,\"hash\":\"\","
                          "\"pending\":,\"pid\":},")
                   + DG_AUDIT_CHAIN_MAX + 3 * NGX_INT64_LEN
                   + DG_AUDIT_HEXLEN);
    }

    return size;
}


u_char *
ngx_http_datagate_audit_chains_json(ngx_http_datagate_main_conf_t *dmcf,
    u_char *p, u_char *end)
{
    ngx_uint_t                     i, n;
    ngx_http_datagate_aslot_t     *s;
    ngx_http_datagate_audit_sh_t  *sh;

    sh = dmcf->audit_sh;

    p = ngx_slprintf(p, end, "\"chains\":[");

    for (i = 0, n = 0; sh && i < sh->nslots; i++) {
        s = &sh->slots[i];

        if (!s->active) {
            continue;
        }

        p = ngx_slprintf(p, end, "%s{\"chain\":\"%s\",\"seq\":%uL,"
                         "\"hash\":\"%s\",\"pending\":%uL,\"pid\":%P}",
                         n++ ? "," : "", s->chain.id, s->wseq, s->whash,
                         s->nrec, (ngx_pid_t) s->owner);
    }

    return ngx_slprintf(p, end, "]");
}


uint64_t
ngx_http_datagate_audit_lost(ngx_http_datagate_main_conf_t *dmcf,
    uint64_t *seq, u_char *hash)
{
    ngx_http_datagate_audit_stats_t  st;

    if (dmcf->audit_file == NULL || dmcf->audit_sh == NULL) {
        return 0;
    }

    ngx_http_datagate_audit_stats(dmcf, &st);

    *seq = dmcf->audit_sh->last_seq;
    ngx_memcpy(hash, st.last, DG_AUDIT_HEXLEN + 1);

    return st.lost;
}


void
ngx_http_datagate_audit_lost_restore(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, uint64_t seq, u_char *hash, uint64_t lost)
{
    if (dmcf->audit_file == NULL || lost == 0) {
        return;
    }

    if (ngx_strncmp(hash, dmcf->audit_head, DG_AUDIT_HEXLEN) != 0) {
        /* a record was written after that one: it counted them */
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "datagate: audit log \"%V\": the %uL lost record(s) "
                      "of the state file were counted by a later record "
                      "already", &dmcf->audit_file->name, lost);
        return;
    }

    if (dmcf->audit_sh) {
        (void) ngx_atomic_fetch_add(&dmcf->audit_sh->carry, lost);

    } else {
        dmcf->audit_carry += lost;
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "datagate: audit log \"%V\": %uL record(s) lost before "
                  "the restart (after seq %uL) are counted in the next "
                  "record (\"lost\")", &dmcf->audit_file->name, lost, seq);
}
