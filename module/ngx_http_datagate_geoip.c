/*
 * datagate: GeoIP (libmaxminddb).
 *
 * The database is read at configuration time (so a reload reads it again)
 * into a private, sealed memory file, which libmaxminddb then maps; the
 * mapping is released by a cleanup of the configuration pool.  The file
 * on disk is never mapped: libmaxminddb maps what it opens, and a mapped
 * file overwritten in place ("cp new.mmdb geo.mmdb" truncates it first)
 * kills every process that touches a page past its new end (SIGBUS).  An
 * operator may therefore rewrite, truncate or remove the file at any time;
 * the running configuration keeps the copy it read, and the next reload
 * takes the new file only when it is complete and valid.
 *
 * A lookup gives the ISO 3166-1 country code and the ISO 3166-2 code of
 * the first subdivision ("CN-GX": the country, a hyphen, the subdivision
 * code of the database), or a defined "not found": empty strings and
 * NGX_DECLINED.
 */


#include "ngx_http_datagate.h"

#include <maxminddb.h>
#include <sys/mman.h>


/* how much of the file one read() copies */
#define NGX_HTTP_DATAGATE_GEOIP_CHUNK   65536

/* "/proc/self/fd/" and an int */
#define NGX_HTTP_DATAGATE_GEOIP_FDPATH  sizeof("/proc/self/fd/-2147483648")

#if (NGX_LINUX && defined MFD_CLOEXEC && defined F_ADD_SEALS)
#define NGX_HTTP_DATAGATE_GEOIP_MEMFD   1
#else
#define NGX_HTTP_DATAGATE_GEOIP_MEMFD   0
#endif


#if (NGX_HTTP_DATAGATE_GEOIP_MEMFD)
static ngx_fd_t ngx_http_datagate_geoip_copy(ngx_conf_t *cf, u_char *path,
    off_t *size);
#endif
static void ngx_http_datagate_geoip_cleanup(void *data);
static ngx_int_t ngx_http_datagate_geoip_string(MMDB_entry_s *entry,
    u_char *buf, size_t len, const char *const *path);


static const char *const  ngx_http_datagate_geoip_country[] = {
    "country", "iso_code", NULL
};

static const char *const  ngx_http_datagate_geoip_region[] = {
    "subdivisions", "0", "iso_code", NULL
};


ngx_int_t
ngx_http_datagate_geoip_open(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf)
{
    int                  rc;
    u_char              *path, *open_path;
    MMDB_s              *mmdb;
    ngx_err_t            err;
    ngx_pool_cleanup_t  *cln;
#if (NGX_HTTP_DATAGATE_GEOIP_MEMFD)
    off_t                size;
    ngx_fd_t             fd;
    u_char               fdpath[NGX_HTTP_DATAGATE_GEOIP_FDPATH];
#endif

    path = ngx_pnalloc(cf->pool, dmcf->geoip_path.len + 1);
    if (path == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(path, dmcf->geoip_path.data, dmcf->geoip_path.len + 1);

    mmdb = ngx_pcalloc(cf->pool, sizeof(MMDB_s));
    if (mmdb == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

#if (NGX_HTTP_DATAGATE_GEOIP_MEMFD)

    fd = ngx_http_datagate_geoip_copy(cf, path, &size);
    if (fd == NGX_INVALID_FILE) {
        return NGX_ERROR;
    }

    /* libmaxminddb opens a path: the memory file's own name */
    ngx_sprintf(fdpath, "/proc/self/fd/%d%Z", fd);
    open_path = fdpath;

    rc = MMDB_open((char *) open_path, MMDB_MODE_MMAP, mmdb);
    err = ngx_errno;

    /* the mapping keeps the memory file alive */
    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      "datagate: close() of the GeoIP copy failed");
    }

#else

    open_path = path;

    rc = MMDB_open((char *) open_path, MMDB_MODE_MMAP, mmdb);
    err = ngx_errno;

#endif

    if (rc != MMDB_SUCCESS) {
        ngx_log_error(NGX_LOG_EMERG, cf->log,
                      rc == MMDB_IO_ERROR ? err : 0,
                      "datagate: cannot open GeoIP database \"%s\": %s",
                      path, MMDB_strerror(rc));
        return NGX_ERROR;
    }

    cln->handler = ngx_http_datagate_geoip_cleanup;
    cln->data = mmdb;

    dmcf->geoip = mmdb;

#if (NGX_HTTP_DATAGATE_GEOIP_MEMFD)
    ngx_log_error(NGX_LOG_INFO, cf->log, 0,
                  "datagate: GeoIP database \"%s\": %s, built %T, "
                  "%O bytes, read into a private copy",
                  path, mmdb->metadata.database_type,
                  (time_t) mmdb->metadata.build_epoch, size);
#else
    ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                  "datagate: GeoIP database \"%s\": %s, built %T, mapped "
                  "directly (no memfd_create() here): replace it only "
                  "with a rename, never by writing over it",
                  path, mmdb->metadata.database_type,
                  (time_t) mmdb->metadata.build_epoch);
#endif

    return NGX_OK;
}


#if (NGX_HTTP_DATAGATE_GEOIP_MEMFD)

/*
 * Copies the file at path into a new memory file and seals it: nothing,
 * not even this process, can write, shrink or grow it any more.  The copy
 * must be the whole file as one moment saw it: a file whose size or
 * modification time changed while it was being read (a copy into place
 * still running) is refused, and the reload with it.
 */

static ngx_fd_t
ngx_http_datagate_geoip_copy(ngx_conf_t *cf, u_char *path, off_t *size)
{
    off_t            total;
    ssize_t          n, w, done;
    u_char          *buf;
    ngx_fd_t         fd, mfd;
    ngx_file_info_t  before, after;

    buf = NULL;
    mfd = NGX_INVALID_FILE;

    fd = ngx_open_file(path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "datagate: cannot open GeoIP database \"%s\": "
                      ngx_open_file_n " failed", path);
        return NGX_INVALID_FILE;
    }

    if (ngx_fd_info(fd, &before) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "datagate: cannot open GeoIP database \"%s\": "
                      ngx_fd_info_n " failed", path);
        goto failed;
    }

    if (!ngx_is_file(&before)) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "datagate: cannot open GeoIP database \"%s\": "
                      "not a regular file", path);
        goto failed;
    }

    buf = ngx_alloc(NGX_HTTP_DATAGATE_GEOIP_CHUNK, cf->log);
    if (buf == NULL) {
        goto failed;
    }

    mfd = memfd_create("datagate-geoip", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "datagate: cannot open GeoIP database \"%s\": "
                      "memfd_create() failed", path);
        goto failed;
    }

    total = 0;

    for ( ;; ) {
        n = read(fd, buf, NGX_HTTP_DATAGATE_GEOIP_CHUNK);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                continue;
            }

            ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                          "datagate: cannot open GeoIP database \"%s\": "
                          "read() failed", path);
            goto failed;
        }

        if (n == 0) {
            break;
        }

        for (done = 0; done < n; done += w) {
            w = write(mfd, buf + done, n - done);

            if (w == -1) {
                if (ngx_errno == NGX_EINTR) {
                    w = 0;
                    continue;
                }

                ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                              "datagate: cannot open GeoIP database \"%s\": "
                              "write() to its private copy failed", path);
                goto failed;
            }
        }

        total += n;
    }

    if (ngx_fd_info(fd, &after) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "datagate: cannot open GeoIP database \"%s\": "
                      ngx_fd_info_n " failed", path);
        goto failed;
    }

    if (total != ngx_file_size(&before)
        || ngx_file_size(&after) != ngx_file_size(&before)
        || ngx_file_mtime(&after) != ngx_file_mtime(&before)
        || after.st_mtim.tv_nsec != before.st_mtim.tv_nsec)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "datagate: cannot open GeoIP database \"%s\": the "
                      "file changed while it was being read (%O bytes "
                      "read, %O bytes before, %O after); write the new "
                      "database elsewhere and move it into place",
                      path, total, ngx_file_size(&before),
                      ngx_file_size(&after));
        goto failed;
    }

    if (fcntl(mfd, F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)
        == -1)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, ngx_errno,
                      "datagate: cannot open GeoIP database \"%s\": "
                      "sealing its private copy failed", path);
        goto failed;
    }

    ngx_free(buf);

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", path);
    }

    *size = total;

    return mfd;

failed:

    if (buf) {
        ngx_free(buf);
    }

    if (mfd != NGX_INVALID_FILE) {
        (void) ngx_close_file(mfd);
    }

    (void) ngx_close_file(fd);

    return NGX_INVALID_FILE;
}

#endif


static void
ngx_http_datagate_geoip_cleanup(void *data)
{
    MMDB_s  *mmdb = data;

    MMDB_close(mmdb);
}


ngx_int_t
ngx_http_datagate_geoip_lookup(ngx_http_datagate_main_conf_t *dmcf,
    struct sockaddr *sa, u_char *country, u_char *region, size_t rlen)
{
    int                    mmdb_error;
    u_char                 sub[16];
    size_t                 clen;
    MMDB_s                *mmdb;
    MMDB_lookup_result_s   res;

    country[0] = '\0';

    if (region && rlen) {
        region[0] = '\0';
    }

    mmdb = dmcf->geoip;

    if (mmdb == NULL || sa == NULL
        || (sa->sa_family != AF_INET
#if (NGX_HAVE_INET6)
            && sa->sa_family != AF_INET6
#endif
           ))
    {
        return NGX_DECLINED;
    }

    /* never touches DNS: the address is numeric */
    res = MMDB_lookup_sockaddr(mmdb, sa, &mmdb_error);

    if (mmdb_error != MMDB_SUCCESS || !res.found_entry) {
        return NGX_DECLINED;
    }

    if (ngx_http_datagate_geoip_string(&res.entry, country, 3,
                                       ngx_http_datagate_geoip_country)
        != NGX_OK)
    {
        country[0] = '\0';
        return NGX_DECLINED;
    }

    clen = ngx_strlen(country);

    if (clen != 2) {
        country[0] = '\0';
        return NGX_DECLINED;
    }

    if (region == NULL || rlen == 0) {
        return NGX_OK;
    }

    /* "CN-GX": ISO 3166-2 */

    if (ngx_http_datagate_geoip_string(&res.entry, sub, sizeof(sub),
                                       ngx_http_datagate_geoip_region)
        == NGX_OK
        && sub[0] != '\0'
        && clen + 1 + ngx_strlen(sub) < rlen)
    {
        ngx_sprintf(region, "%s-%s%Z", country, sub);
    }

    return NGX_OK;
}


/*
 * A UTF-8 string at path; letters, digits and '-' only (the value goes
 * into logs and JSON unescaped).  NGX_OK with buf NUL-terminated, or
 * NGX_DECLINED.
 */
static ngx_int_t
ngx_http_datagate_geoip_string(MMDB_entry_s *entry, u_char *buf, size_t len,
    const char *const *path)
{
    int                   rc;
    size_t                i;
    u_char                c;
    MMDB_entry_data_s     data;

    rc = MMDB_aget_value(entry, &data, path);

    if (rc != MMDB_SUCCESS || !data.has_data
        || data.type != MMDB_DATA_TYPE_UTF8_STRING
        || data.data_size == 0 || data.data_size >= len)
    {
        return NGX_DECLINED;
    }

    for (i = 0; i < data.data_size; i++) {
        c = (u_char) data.utf8_string[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '-'))
        {
            return NGX_DECLINED;
        }

        buf[i] = c;
    }

    buf[data.data_size] = '\0';

    return NGX_OK;
}
