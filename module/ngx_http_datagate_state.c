
/*
 * datagate: datagate_state, what a node keeps across a restart, in a
 * file: the quota counters, the Redis epoch, the audit records lost.
 *
 * The file, written atomically (a temporary file in the same directory,
 * fsync, rename):
 *
 *     DGQ1
 *     epoch VALUE
 *     lost SEQ HASH COUNT
 *     WINDOW_START PERIOD COUNT CONSUMER|DATASET
 *     ...
 *
 *     abuse CONSUMER|DATASET HOUR CALLS RECORDS FIRED BASELINES...
 *     abuse-suspend CONSUMER UNTIL_MS
 *     ...
 *
 * "epoch": the Redis epoch this node last saw (_redis.c), with
 * datagate_redis.  "abuse": the volume baselines of abuse detection and
 * the suspensions this node holds alone (_abuse.c).  "lost": audit
 * records that could not be written after the record SEQ (its hash HASH)
 * and that no record has counted yet (_log.c); only when there are any.  Then one line per budget with
 * requests counted in a window that has not ended.  The key is the
 * budget's (consumer, dataset), not a policy index, so the counters
 * survive a policy change as well.  Rate-limit state (GCRA) is not kept:
 * an idle bucket is full anyway after at most (burst + 1) / rate seconds.
 */


#include "ngx_http_datagate.h"
#include "dg_audit.h"
#include "dg_gcra.h"
#include "dg_rstate.h"


#define NGX_HTTP_DATAGATE_STATE_MAGIC    "DGQ1\n"
#define NGX_HTTP_DATAGATE_STATE_LOST     "lost "
#define NGX_HTTP_DATAGATE_STATE_EPOCH    "epoch "
#define NGX_HTTP_DATAGATE_STATE_MAX      (64 * 1024 * 1024)
#define NGX_HTTP_DATAGATE_STATE_PERIOD   (366 * 86400)


typedef struct {
    int64_t                         window;
    uint64_t                        count;
    uint32_t                        period;
    size_t                          klen;
    u_char                         *key;
} ngx_http_datagate_qsave_t;


static ngx_int_t ngx_http_datagate_state_lost(
    ngx_http_datagate_main_conf_t *dmcf, ngx_log_t *log, u_char *p,
    u_char *end);


static ngx_event_t  ngx_http_datagate_state_ev;
static ngx_uint_t   ngx_http_datagate_state_failing;


static ngx_int_t
ngx_http_datagate_state_lock(ngx_http_datagate_main_conf_t *dmcf,
    ngx_uint_t wait)
{
    ngx_uint_t  i;

    /* at exit: a lock a dead worker held is released by the master; do
     * not hang on one anyway */

    for (i = 0; i < (wait ? 1000 : 1); i++) {
        if (ngx_shmtx_trylock(&dmcf->shpool->mutex)) {
            return NGX_OK;
        }

        if (wait) {
            ngx_msleep(1);
        }
    }

    return NGX_BUSY;
}


ngx_int_t
ngx_http_datagate_state_save(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, ngx_uint_t wait)
{
    u_char                     *buf, *p, *kp;
    void                       *abuse;
    u_char                      lhash[DG_AUDIT_HEXLEN + 1];
    size_t                      size, keys;
    ssize_t                     n;
    int64_t                     now;
    uint64_t                    lost, lseq;
    ngx_fd_t                    fd;
    ngx_err_t                   err;
    ngx_str_t                   tmp;
    ngx_uint_t                  i, count;
    ngx_queue_t                *q;
    const char                 *what;
    ngx_http_datagate_lnode_t  *node;
    ngx_http_datagate_qsave_t  *e;
    u_char                      epoch[DG_RS_EPOCH_MAX + 1];

    if (dmcf->sh == NULL || dmcf->state_path.len == 0) {
        return NGX_OK;
    }

    now = ngx_time();
    e = NULL;
    buf = NULL;
    abuse = NULL;
    fd = NGX_INVALID_FILE;
    err = 0;
    what = NULL;

    tmp.len = dmcf->state_path.len + sizeof(".tmp.") - 1 + NGX_INT64_LEN;
    tmp.data = ngx_alloc(tmp.len + 1, log);
    if (tmp.data == NULL) {
        return NGX_ERROR;
    }

    *ngx_sprintf(tmp.data, "%V.tmp.%P", &dmcf->state_path, ngx_pid) = '\0';

    if (ngx_http_datagate_state_lock(dmcf, wait) != NGX_OK) {
        ngx_free(tmp.data);
        return NGX_BUSY;
    }

    /* count, copy out under the lock, write without it */

    lseq = 0;
    lost = ngx_http_datagate_audit_lost(dmcf, &lseq, lhash);

    count = 0;
    keys = 0;

    for (q = ngx_queue_head(&dmcf->sh->limits.queue);
         q != ngx_queue_sentinel(&dmcf->sh->limits.queue);
         q = ngx_queue_next(q))
    {
        node = ngx_queue_data(q, ngx_http_datagate_lnode_t, queue);

        if (node->count && node->period
            && node->window + (int64_t) node->period > now)
        {
            count++;
            keys += node->sn.str.len;
        }
    }

    if (count) {
        e = ngx_alloc(count * sizeof(ngx_http_datagate_qsave_t) + keys, log);
        if (e == NULL) {
            ngx_shmtx_unlock(&dmcf->shpool->mutex);
            ngx_free(tmp.data);
            return NGX_ERROR;
        }

        kp = (u_char *) (e + count);
        i = 0;

        for (q = ngx_queue_head(&dmcf->sh->limits.queue);
             q != ngx_queue_sentinel(&dmcf->sh->limits.queue) && i < count;
             q = ngx_queue_next(q))
        {
            node = ngx_queue_data(q, ngx_http_datagate_lnode_t, queue);

            if (!(node->count && node->period
                  && node->window + (int64_t) node->period > now))
            {
                continue;
            }

            e[i].window = node->window;
            e[i].count = node->count;
            e[i].period = node->period;
            e[i].klen = node->sn.str.len;
            e[i].key = kp;
            kp = ngx_cpymem(kp, node->sn.str.data, node->sn.str.len);
            i++;
        }

        count = i;
    }

    ngx_cpystrn(epoch, dmcf->sh->redis_epoch, sizeof(epoch));

    abuse = ngx_http_datagate_abuse_copy(dmcf, log);

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    size = sizeof(NGX_HTTP_DATAGATE_STATE_MAGIC) - 1
           + sizeof(NGX_HTTP_DATAGATE_STATE_EPOCH) + sizeof(epoch)
           + sizeof(NGX_HTTP_DATAGATE_STATE_LOST) + 2 * NGX_INT64_LEN
           + DG_AUDIT_HEXLEN + 3
           + count * (3 * NGX_INT64_LEN + 4) + keys
           + ngx_http_datagate_abuse_format(abuse, NULL);

    buf = ngx_alloc(size, log);
    if (buf == NULL) {
        goto failed;
    }

    p = ngx_cpymem(buf, NGX_HTTP_DATAGATE_STATE_MAGIC,
                   sizeof(NGX_HTTP_DATAGATE_STATE_MAGIC) - 1);

    if (epoch[0]) {
        p = ngx_sprintf(p, NGX_HTTP_DATAGATE_STATE_EPOCH "%s\n", epoch);
    }

    if (lost) {
        p = ngx_sprintf(p, NGX_HTTP_DATAGATE_STATE_LOST "%uL %*s %uL\n",
                        lseq, (size_t) DG_AUDIT_HEXLEN, lhash, lost);
    }

    for (i = 0; i < count; i++) {
        p = ngx_sprintf(p, "%L %uD %uL ", e[i].window, e[i].period,
                        e[i].count);
        p = ngx_cpymem(p, e[i].key, e[i].klen);
        *p++ = '\n';
    }

    p += ngx_http_datagate_abuse_format(abuse, p);
    ngx_http_datagate_abuse_free(abuse);
    abuse = NULL;

    fd = ngx_open_file(tmp.data, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_OWNER_ACCESS);
    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;
        what = ngx_open_file_n;
        goto failed;
    }

    n = ngx_write_fd(fd, buf, p - buf);

    if (n != p - buf) {
        err = n == -1 ? ngx_errno : 0;
        what = ngx_write_fd_n;
        goto failed;
    }

    if (fsync(fd) == -1) {
        err = ngx_errno;
        what = "fsync()";
        goto failed;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        fd = NGX_INVALID_FILE;
        err = ngx_errno;
        what = ngx_close_file_n;
        goto failed;
    }

    fd = NGX_INVALID_FILE;

    if (ngx_rename_file(tmp.data, dmcf->state_path.data) == NGX_FILE_ERROR) {
        err = ngx_errno;
        what = ngx_rename_file_n;
        goto failed;
    }

    if (ngx_http_datagate_state_failing) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "datagate: quota state \"%V\" written again",
                      &dmcf->state_path);
        ngx_http_datagate_state_failing = 0;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "datagate: %ui quota counters written to \"%V\"",
                   count, &dmcf->state_path);

    ngx_free(buf);
    ngx_free(e);
    ngx_free(tmp.data);

    return NGX_OK;

failed:

    if (fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(fd);
    }

    if (what) {
        (void) ngx_delete_file(tmp.data);

        if (!ngx_http_datagate_state_failing) {
            ngx_log_error(NGX_LOG_ERR, log, err,
                          "datagate: cannot write the quota state \"%s\": "
                          "%s failed", tmp.data, what);
            ngx_http_datagate_state_failing = 1;
        }
    }

    if (buf) {
        ngx_free(buf);
    }

    if (e) {
        ngx_free(e);
    }

    ngx_http_datagate_abuse_free(abuse);
    ngx_free(tmp.data);

    return NGX_ERROR;
}


/* the rest of a "lost SEQ HASH COUNT" line; NGX_DECLINED: malformed */
static ngx_int_t
ngx_http_datagate_state_lost(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, u_char *p, u_char *end)
{
    u_char     *h, hash[DG_AUDIT_HEXLEN + 1];
    ngx_int_t   seq, lost;

    h = ngx_strlchr(p, end, ' ');
    if (h == NULL || end - h < DG_AUDIT_HEXLEN + 3
        || h[DG_AUDIT_HEXLEN + 1] != ' ')
    {
        return NGX_DECLINED;
    }

    seq = ngx_atoi(p, h - p);
    lost = ngx_atoi(h + DG_AUDIT_HEXLEN + 2, end - (h + DG_AUDIT_HEXLEN + 2));

    if (seq == NGX_ERROR || lost == NGX_ERROR) {
        return NGX_DECLINED;
    }

    for (p = h + 1; p < h + 1 + DG_AUDIT_HEXLEN; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
            return NGX_DECLINED;
        }
    }

    ngx_memcpy(hash, h + 1, DG_AUDIT_HEXLEN);
    hash[DG_AUDIT_HEXLEN] = '\0';

    ngx_http_datagate_audit_lost_restore(dmcf, log, (uint64_t) seq, hash,
                                         (uint64_t) lost);

    return NGX_OK;
}


/* one "WINDOW PERIOD COUNT KEY" line; NGX_DECLINED: malformed */
static ngx_int_t
ngx_http_datagate_state_line(u_char *p, u_char *end, int64_t *window,
    uint64_t *period, uint64_t *count, ngx_str_t *key)
{
    u_char      *s;
    uint64_t     v[3];
    ngx_uint_t   i, digits;

    for (i = 0; i < 3; i++) {
        v[i] = 0;

        for (s = p, digits = 0; p < end && *p >= '0' && *p <= '9'; p++) {
            if (++digits > 18) {
                return NGX_DECLINED;
            }

            v[i] = v[i] * 10 + (*p - '0');
        }

        if (p == s || p == end || *p != ' ') {
            return NGX_DECLINED;
        }

        p++;
    }

    key->data = p;
    key->len = end - p;

    if (key->len == 0 || key->len > NGX_HTTP_DATAGATE_LIMIT_KEY
        || ngx_strlchr(p, end, '|') == NULL
        || ngx_strlchr(p, end, ' ') != NULL)
    {
        return NGX_DECLINED;
    }

    *window = (int64_t) v[0];
    *period = v[1];
    *count = v[2];

    return NGX_OK;
}


void
ngx_http_datagate_state_load(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log)
{
    u_char                     *buf, *p, *end, *nl;
    off_t                       size;
    ssize_t                     n;
    int64_t                     now, window;
    uint64_t                    period, count;
    ngx_fd_t                    fd;
    ngx_str_t                   key;
    ngx_int_t                   rc;
    ngx_uint_t                  loaded, bad, old, level, abuse;
    ngx_file_info_t             fi;
    ngx_http_datagate_lnode_t  *node;

    if (dmcf->sh == NULL || dmcf->state_path.len == 0) {
        return;
    }

    fd = ngx_open_file(dmcf->state_path.data, NGX_FILE_RDONLY,
                       NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        if (ngx_errno != NGX_ENOENT) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "datagate: cannot read the quota state \"%V\"",
                          &dmcf->state_path);
        }

        return;
    }

    buf = NULL;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      ngx_fd_info_n " \"%V\" failed", &dmcf->state_path);
        goto done;
    }

    size = ngx_file_size(&fi);

    if (size > NGX_HTTP_DATAGATE_STATE_MAX) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "datagate: quota state \"%V\" is too large, ignored",
                      &dmcf->state_path);
        goto done;
    }

    buf = ngx_alloc((size_t) size + 1, log);
    if (buf == NULL) {
        goto done;
    }

    n = ngx_read_fd(fd, buf, (size_t) size);

    if (n != (ssize_t) size) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "datagate: cannot read the quota state \"%V\"",
                      &dmcf->state_path);
        goto done;
    }

    if ((size_t) size < sizeof(NGX_HTTP_DATAGATE_STATE_MAGIC) - 1
        || ngx_memcmp(buf, NGX_HTTP_DATAGATE_STATE_MAGIC,
                      sizeof(NGX_HTTP_DATAGATE_STATE_MAGIC) - 1)
           != 0)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "datagate: \"%V\" is not a datagate quota state file, "
                      "ignored", &dmcf->state_path);
        goto done;
    }

    now = ngx_time();
    loaded = 0;
    bad = 0;
    old = 0;
    abuse = 0;

    p = buf + sizeof(NGX_HTTP_DATAGATE_STATE_MAGIC) - 1;
    end = buf + size;

    ngx_shmtx_lock(&dmcf->shpool->mutex);

    for ( /* void */ ; p < end; p = nl + 1) {

        nl = ngx_strlchr(p, end, '\n');
        if (nl == NULL) {
            bad++;      /* a torn last line */
            break;
        }

        if (nl - p > (ssize_t) sizeof(NGX_HTTP_DATAGATE_STATE_LOST) - 1
            && ngx_strncmp(p, NGX_HTTP_DATAGATE_STATE_LOST,
                           sizeof(NGX_HTTP_DATAGATE_STATE_LOST) - 1) == 0)
        {
            if (ngx_http_datagate_state_lost(dmcf, log,
                    p + sizeof(NGX_HTTP_DATAGATE_STATE_LOST) - 1, nl)
                != NGX_OK)
            {
                bad++;
            }

            continue;
        }

        /* the Redis epoch this node last saw (_redis.c) */
        if (nl - p > (ssize_t) sizeof(NGX_HTTP_DATAGATE_STATE_EPOCH) - 1
            && nl - p <= (ssize_t) (sizeof(NGX_HTTP_DATAGATE_STATE_EPOCH)
                                    - 1 + DG_RS_EPOCH_MAX)
            && ngx_strncmp(p, NGX_HTTP_DATAGATE_STATE_EPOCH,
                           sizeof(NGX_HTTP_DATAGATE_STATE_EPOCH) - 1) == 0)
        {
            p += sizeof(NGX_HTTP_DATAGATE_STATE_EPOCH) - 1;
            ngx_memcpy(dmcf->sh->redis_epoch, p, nl - p);
            dmcf->sh->redis_epoch[nl - p] = '\0';
            continue;
        }

        /* abuse detection's baselines and suspensions (_abuse.c) */
        rc = ngx_http_datagate_abuse_load(dmcf, p, nl);

        if (rc != NGX_DECLINED) {
            if (rc == NGX_OK) {
                abuse++;
            } else {
                bad++;
            }

            continue;
        }

        if (ngx_http_datagate_state_line(p, nl, &window, &period, &count,
                                         &key)
            != NGX_OK
            || period == 0 || period > NGX_HTTP_DATAGATE_STATE_PERIOD
            || count == 0)
        {
            bad++;
            continue;
        }

        /* only the window we are in: a passed one starts from zero */
        if (window != dg_quota_window_start(now, (unsigned) period)) {
            old++;
            continue;
        }

        node = ngx_http_datagate_limit_node(dmcf, key.data, key.len,
                                            (uint64_t) now * 1000, NULL);
        if (node == NULL) {
            break;
        }

        if (node->window != window || node->count < count) {
            node->window = window;
            node->count = count;
            node->period = (uint32_t) period;
        }

        loaded++;
    }

    ngx_shmtx_unlock(&dmcf->shpool->mutex);

    level = bad ? NGX_LOG_WARN : NGX_LOG_NOTICE;

    ngx_log_error(level, log, 0,
                  "datagate: quota state \"%V\": %ui counters loaded, "
                  "%ui of past windows, %ui malformed lines skipped, "
                  "%ui abuse baselines and suspensions loaded",
                  &dmcf->state_path, loaded, old, bad, abuse);

done:

    if (buf) {
        ngx_free(buf);
    }

    (void) ngx_close_file(fd);
}


static void
ngx_http_datagate_state_timer(ngx_event_t *ev)
{
    ngx_http_datagate_main_conf_t  *dmcf = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    (void) ngx_http_datagate_state_save(dmcf, ev->log, 0);

    ngx_add_timer(ev, dmcf->state_interval);
}


ngx_int_t
ngx_http_datagate_state_init_process(ngx_cycle_t *cycle)
{
    ngx_event_t                    *ev;
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_datagate_module);

    /* one writer per node: worker 0; the master writes at exit */

    if (dmcf == NULL || dmcf->state_path.len == 0 || dmcf->sh == NULL
        || dmcf->state_interval == 0 || ngx_process != NGX_PROCESS_WORKER
        || ngx_worker != 0)
    {
        return NGX_OK;
    }

    ev = &ngx_http_datagate_state_ev;

    ngx_memzero(ev, sizeof(ngx_event_t));

    ev->handler = ngx_http_datagate_state_timer;
    ev->data = dmcf;
    ev->log = cycle->log;
    ev->cancelable = 1;

    ngx_add_timer(ev, dmcf->state_interval);

    return NGX_OK;
}


/* datagate_state PATH [interval=60s]; */
char *
ngx_http_datagate_state(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_datagate_main_conf_t *dmcf = conf;

    ngx_str_t   *value, s;
    ngx_msec_t   ms;

    if (dmcf->state_path.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "datagate: \"datagate_state\" needs a path");
        return NGX_CONF_ERROR;
    }

    dmcf->state_path = value[1];

    if (ngx_conf_full_name(cf->cycle, &dmcf->state_path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {

        if (value[2].len <= sizeof("interval=") - 1
            || ngx_strncmp(value[2].data, "interval=",
                           sizeof("interval=") - 1)
               != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "datagate: invalid parameter \"%V\"",
                               &value[2]);
            return NGX_CONF_ERROR;
        }

        s.data = value[2].data + sizeof("interval=") - 1;
        s.len = value[2].len - (sizeof("interval=") - 1);

        ms = ngx_parse_time(&s, 0);

        if (ms == (ngx_msec_t) NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "datagate: invalid interval \"%V\"",
                               &value[2]);
            return NGX_CONF_ERROR;
        }

        if (ms != 0 && ms < 1000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "datagate: \"interval=\" must be 0 (only "
                               "at exit) or at least 1s");
            return NGX_CONF_ERROR;
        }

        dmcf->state_interval = ms;
    }

    return NGX_CONF_OK;
}
