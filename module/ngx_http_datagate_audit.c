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


#include "ngx_http_datagate_audit.h"


static ngx_int_t ngx_http_datagate_audit_init_zone(ngx_shm_zone_t *zone,
    void *data);
static void ngx_http_datagate_audit_file_flush(ngx_open_file_t *file,
    ngx_log_t *log);
static void ngx_http_datagate_audit_cleanup(void *data);
static ngx_int_t ngx_http_datagate_audit_claim(
    ngx_http_datagate_main_conf_t *dmcf, ngx_log_t *log);
static void ngx_http_datagate_audit_timer(ngx_event_t *ev);
static void ngx_http_datagate_audit_tick(
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_aslot_t *s,
    ngx_log_t *log);
static void ngx_http_datagate_audit_orphans(
    ngx_http_datagate_main_conf_t *dmcf, ngx_log_t *log);
static void ngx_http_datagate_audit_cp_timer(ngx_event_t *ev);
static ngx_int_t ngx_http_datagate_audit_cp_send(
    ngx_http_datagate_aslot_t *s);
static void ngx_http_datagate_audit_cp_reply(void *data, void *reply);


ngx_http_datagate_aslot_t      *ngx_http_datagate_audit_own;
ngx_http_datagate_main_conf_t  *ngx_http_datagate_audit_conf;

static ngx_event_t              ngx_http_datagate_audit_ev;
static ngx_event_t              ngx_http_datagate_audit_cp_ev;
static ngx_msec_t               ngx_http_datagate_audit_scanned;


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

    /* the key's fingerprint: to tell a reload's key from the zone's */
    if (dmcf->audit_secret_len) {
        if (dg_audit_hmac(&dmcf->audit_md, DG_AUDIT_SHA256,
                          dmcf->audit_secret, dmcf->audit_secret_len,
                          NGX_HTTP_DATAGATE_AUDIT_KEY_ID,
                          sizeof(NGX_HTTP_DATAGATE_AUDIT_KEY_ID) - 1, id)
            != 0)
        {
            return NGX_ERROR;
        }
    }

    if (odmcf) {
        /* a reload that keeps the zone: its chains go on, with the hash
         * and the keys they began with */
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

        if (dmcf->audit_hash != sh->alg) {
            ngx_log_error(NGX_LOG_WARN, zone->shm.log, 0,
                          "datagate: audit log: a changed \"hash=\" "
                          "applies to the chains a restart begins; the "
                          "running chains keep %s",
                          dg_audit_alg_name((int) sh->alg));
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
    sh->alg = dmcf->audit_hash;

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
        if (dg_audit_key_root(&dmcf->audit_md, (int) sh->alg,
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
                                    : NGX_HTTP_DATAGATE_AUDIT_TICK);

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
        s->alg = sh->alg;

        if (sh->keyed) {
            if (dg_audit_key_chain(&dmcf->audit_md, (int) s->alg, sh->gen,
                                   s->chain.id, ngx_strlen(s->chain.id),
                                   s->chain.key, s->chain.seg)
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
                      "without finishing, carried on: %uL record(s) to "
                      "write", found->chain.id, dead,
                      found->nrec + (found->staged ? 1 : 0));
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

    if (ngx_current_msec - ngx_http_datagate_audit_scanned
        >= NGX_HTTP_DATAGATE_AUDIT_SCAN)
    {
        ngx_http_datagate_audit_scanned = ngx_current_msec;
        ngx_http_datagate_audit_orphans(dmcf, ev->log);
    }

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(ev, dmcf->audit_flush ? dmcf->audit_flush
                                        : NGX_HTTP_DATAGATE_AUDIT_TICK);
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
        dg_arec_cstr(&rec, "kind", "lost");

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
    }

    /* again at the next interval if Redis could not take it now */

    if (dmcf->redis_enabled && s->wseq > s->cp_rseq
        && ngx_http_datagate_audit_cp_send(s) == NGX_OK)
    {
        s->cp_rseq = s->wseq;
    }

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(ev, dmcf->audit_checkpoint);
}


/* RPUSH the head to the node's list, LTRIM it: queued, never waited for */
static ngx_int_t
ngx_http_datagate_audit_cp_send(ngx_http_datagate_aslot_t *s)
{
    u_char       *p, val[NGX_HTTP_DATAGATE_AUDIT_CP_MAX];
    u_char        key[NGX_HTTP_DATAGATE_AUDIT_CP_KEYLEN];
    size_t        lens[4];
    ngx_int_t     rc;
    const char   *argv[4];

    p = ngx_snprintf(key, sizeof(key), "%s%V",
                     NGX_HTTP_DATAGATE_AUDIT_CP_KEY, &ngx_cycle->hostname);
    argv[1] = (const char *) key;
    lens[1] = p - key;

    p = ngx_snprintf(val, sizeof(val),
                     "{\"chain\":\"%s\",\"seq\":%uL,\"hash\":\"%s\","
                     "\"time\":%uL}", s->chain.id, s->wseq, s->whash,
                     ngx_http_datagate_now_ms());
    argv[0] = "RPUSH";
    lens[0] = sizeof("RPUSH") - 1;
    argv[2] = (const char *) val;
    lens[2] = p - val;

    rc = ngx_http_datagate_redis_command(ngx_http_datagate_audit_cp_reply,
                                         NULL, 3, argv, lens);
    if (rc != NGX_OK) {
        return rc;
    }

    argv[0] = "LTRIM";
    lens[0] = sizeof("LTRIM") - 1;
    argv[2] = "-" ngx_value(NGX_HTTP_DATAGATE_AUDIT_CP_KEEP);
    lens[2] = ngx_strlen(argv[2]);
    argv[3] = "-1";
    lens[3] = 2;

    (void) ngx_http_datagate_redis_command(ngx_http_datagate_audit_cp_reply,
                                           NULL, 4, argv, lens);

    return NGX_OK;
}


static void
ngx_http_datagate_audit_cp_reply(void *data, void *reply)
{
    /* a checkpoint not stored is in the error log all the same */
}
