/*
 * datagate: adding records to this worker's chain and writing its buffer
 * (docs/audit.md, "Writing", "Write failures"): the staged append that a
 * killed worker cannot leave half done, one write() per buffer, a write
 * cut short found in the file and its cut record blanked, the records of
 * a failed write kept; and what the statistics and the state file read.
 */


#include "ngx_http_datagate_audit.h"


static void ngx_http_datagate_audit_apply(ngx_http_datagate_aslot_t *s);
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
static void ngx_http_datagate_audit_fail(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_aslot_t *s, ngx_err_t err, const char *why,
    ngx_log_t *log);


static ngx_uint_t  ngx_http_datagate_audit_nochain;


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


void
ngx_http_datagate_audit_event(ngx_http_datagate_main_conf_t *dmcf,
    ngx_log_t *log, dg_arec_t *rec)
{
    if (dmcf->audit_file == NULL) {
        return;
    }

    (void) ngx_http_datagate_audit_append(dmcf, rec, log);
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
    ngx_explicit_memzero(s->stage.seg, sizeof(s->stage.seg));
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

        if (ngx_http_datagate_audit_nochain++ == 0) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "datagate: audit log \"%V\": records are lost "
                          "(counted): %s", &dmcf->audit_file->name, why);
        }

        return;
    }

    s->lost++;
    ngx_http_datagate_audit_fail(dmcf, s, 0, why, log);
}


/* ---- writing ---------------------------------------------------------- */

ngx_int_t
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


void
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


/* ---- what others ask -------------------------------------------------- */

size_t
ngx_http_datagate_audit_time(u_char *buf)
{
    u_char      *p;
    ngx_tm_t     tm;
    ngx_time_t  *tp;

    static time_t  sec = -1;
    static size_t  plen, slen;
    static u_char  prefix[sizeof("2024-05-11T09:30:00.")];
    static u_char  suffix[sizeof("+08:00")];

    /* ISO 8601 in local time with milliseconds; the date and the offset
     * change once a second at most */

    tp = ngx_timeofday();

    if (tp->sec != sec) {
        ngx_gmtime(tp->sec + tp->gmtoff * 60, &tm);

        plen = ngx_sprintf(prefix, "%4d-%02d-%02dT%02d:%02d:%02d.",
                           tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                           tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec)
               - prefix;

        if (tp->gmtoff == 0) {
            suffix[0] = 'Z';
            slen = 1;

        } else {
            slen = ngx_sprintf(suffix, "%c%02i:%02i",
                               tp->gmtoff < 0 ? '-' : '+',
                               ngx_abs(tp->gmtoff / 60),
                               ngx_abs(tp->gmtoff % 60))
                   - suffix;
        }

        sec = tp->sec;
    }

    p = ngx_cpymem(buf, prefix, plen);
    *p++ = (u_char) ('0' + tp->msec / 100);
    *p++ = (u_char) ('0' + tp->msec / 10 % 10);
    *p++ = (u_char) ('0' + tp->msec % 10);
    p = ngx_cpymem(p, suffix, slen);

    return p - buf;
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
    st->alg = dmcf->audit_hash;

    sh = dmcf->audit_sh;

    if (dmcf->audit_file == NULL || sh == NULL) {
        return;
    }

    st->alg = sh->alg;
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
