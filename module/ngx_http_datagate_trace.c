
/*
 * datagate: the provenance index (datagate_trace PATH; docs/trace.md).
 *
 * An answer of a dataset with "trace:" is read as it goes out (the bytes
 * the masker lends back, ngx_http_datagate_lend): every value of a trace
 * field, as the consumer receives it, is fingerprinted
 * (core/dg_trace.c) into the request's batch; a full batch, and the
 * rest at the end of the request, go as one block into the worker's
 * buffer.  The buffer is written to the index file (opened by the cycle
 * with O_APPEND, reopened on USR1) when it cannot take the next block,
 * every NGX_HTTP_DATAGATE_TRACE_FLUSH ms, and at the worker's exit: one
 * write() of whole blocks, never a wait on the request path beyond it.
 * A write that fails or is short is logged and its blocks are counted
 * lost (the index is evidence, not a gate: answers are not refused).
 */


#include "ngx_http_datagate.h"
#include "dg_trace.h"


#define NGX_HTTP_DATAGATE_TRACE_BUF     65536   /* per worker */
#define NGX_HTTP_DATAGATE_TRACE_FLUSH   1000    /* ms */


struct ngx_http_datagate_trace_s {
    dg_trace_scan_t                 scan;
    ngx_http_datagate_main_conf_t  *dmcf;
    const dg_consumer_t            *consumer;
    size_t                          n;          /* in fp */
    uint64_t                        fp[DG_TRACE_BLOCK_MAX];
    const char                     *names[DG_TRACE_FIELDS_MAX];
    size_t                          lens[DG_TRACE_FIELDS_MAX];
};


static u_char                   *ngx_http_datagate_trace_buf;
static size_t                    ngx_http_datagate_trace_len;
static ngx_open_file_t          *ngx_http_datagate_trace_file;
static ngx_event_t               ngx_http_datagate_trace_timer;
static ngx_connection_t          ngx_http_datagate_trace_dummy;
static uint64_t                  ngx_http_datagate_trace_lost;


static void ngx_http_datagate_trace_found(void *data, uint64_t fp);
static void ngx_http_datagate_trace_commit(ngx_http_datagate_trace_t *t);
static void ngx_http_datagate_trace_cleanup(void *data);
static void ngx_http_datagate_trace_write(ngx_log_t *log);
static void ngx_http_datagate_trace_tick(ngx_event_t *ev);


/* configuration: the index needs a key every restart keeps */
ngx_int_t
ngx_http_datagate_trace_init_conf(ngx_conf_t *cf,
    ngx_http_datagate_main_conf_t *dmcf)
{
    if (dmcf->trace_file == NULL) {
        return NGX_OK;
    }

    if (dmcf->secret_generated) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "datagate: \"datagate_trace\" in %V:%ui needs "
                      "\"datagate_secret\": the index is keyed with it",
                      &dmcf->trace_conf_file, dmcf->trace_conf_line);
        return NGX_ERROR;
    }

    if (dg_trace_key(dmcf->secret, dmcf->secret_len, dmcf->trace_key) != 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "datagate: HMAC() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_datagate_trace_init_process(ngx_cycle_t *cycle,
    ngx_http_datagate_main_conf_t *dmcf)
{
    if (dmcf->trace_file == NULL) {
        return NGX_OK;
    }

    ngx_http_datagate_trace_buf = ngx_alloc(NGX_HTTP_DATAGATE_TRACE_BUF,
                                            cycle->log);
    if (ngx_http_datagate_trace_buf == NULL) {
        return NGX_ERROR;
    }

    ngx_http_datagate_trace_len = 0;
    ngx_http_datagate_trace_file = dmcf->trace_file;

    ngx_http_datagate_trace_dummy.fd = (ngx_socket_t) -1;
    ngx_http_datagate_trace_timer.handler = ngx_http_datagate_trace_tick;
    ngx_http_datagate_trace_timer.log = cycle->log;
    ngx_http_datagate_trace_timer.data = &ngx_http_datagate_trace_dummy;
    ngx_http_datagate_trace_timer.cancelable = 1;

    ngx_add_timer(&ngx_http_datagate_trace_timer,
                  NGX_HTTP_DATAGATE_TRACE_FLUSH);

    return NGX_OK;
}


void
ngx_http_datagate_trace_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_datagate_trace_buf == NULL) {
        return;
    }

    ngx_http_datagate_trace_write(cycle->log);
}


static void
ngx_http_datagate_trace_tick(ngx_event_t *ev)
{
    ngx_http_datagate_trace_write(ev->log);

    if (!ngx_exiting && !ngx_terminate && !ngx_quit) {
        ngx_add_timer(ev, NGX_HTTP_DATAGATE_TRACE_FLUSH);
    }
}


/* the worker's buffer to the file: whole blocks in one write */
static void
ngx_http_datagate_trace_write(ngx_log_t *log)
{
    ssize_t  n;

    if (ngx_http_datagate_trace_len == 0) {
        return;
    }

    n = ngx_write_fd(ngx_http_datagate_trace_file->fd,
                     ngx_http_datagate_trace_buf,
                     ngx_http_datagate_trace_len);

    if (n != (ssize_t) ngx_http_datagate_trace_len) {
        ngx_http_datagate_trace_lost += ngx_http_datagate_trace_len;

        ngx_log_error(NGX_LOG_ALERT, log, n == -1 ? ngx_errno : 0,
                      "datagate: trace index \"%V\": %z of %uz bytes "
                      "written, %uL bytes of fingerprints lost by this "
                      "worker", &ngx_http_datagate_trace_file->name, n,
                      ngx_http_datagate_trace_len,
                      ngx_http_datagate_trace_lost);
    }

    ngx_http_datagate_trace_len = 0;
}


/*
 * The answer about to be masked for fctx: traced when the index is on,
 * the dataset names trace fields and the consumer is known.
 */
ngx_int_t
ngx_http_datagate_trace_start(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, ngx_http_datagate_filter_ctx_t *fctx)
{
    size_t                          i;
    ngx_pool_cleanup_t             *cln;
    ngx_http_datagate_trace_t      *t;
    ngx_http_datagate_main_conf_t  *dmcf;

    dmcf = ngx_http_get_module_main_conf(r, ngx_http_datagate_module);

    if (dmcf->trace_file == NULL || ngx_http_datagate_trace_buf == NULL
        || ctx->dataset == NULL || ctx->dataset->ntrace == 0
        || ctx->consumer == NULL)
    {
        return NGX_OK;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    t = ngx_palloc(r->pool, sizeof(ngx_http_datagate_trace_t));
    if (cln == NULL || t == NULL) {
        return NGX_ERROR;
    }

    t->dmcf = dmcf;
    t->consumer = ctx->consumer;
    t->n = 0;

    for (i = 0; i < ctx->dataset->ntrace && i < DG_TRACE_FIELDS_MAX; i++) {
        t->names[i] = ctx->dataset->trace[i].data;
        t->lens[i] = ctx->dataset->trace[i].len;
    }

    dg_trace_scan_init(&t->scan, dmcf->trace_key, t->names, t->lens, i,
                       ngx_http_datagate_trace_found, t);

    cln->handler = ngx_http_datagate_trace_cleanup;
    cln->data = t;

    fctx->trace = t;

    return NGX_OK;
}


/* bytes of the answer as it goes to the client */
void
ngx_http_datagate_trace_out(ngx_http_datagate_trace_t *t, const u_char *p,
    size_t n)
{
    dg_trace_scan(&t->scan, p, n);
}


static void
ngx_http_datagate_trace_found(void *data, uint64_t fp)
{
    ngx_http_datagate_trace_t  *t = data;

    t->fp[t->n++] = fp;

    if (t->n == DG_TRACE_BLOCK_MAX) {
        ngx_http_datagate_trace_commit(t);
    }
}


/* the batch as a block into the worker's buffer */
static void
ngx_http_datagate_trace_commit(ngx_http_datagate_trace_t *t)
{
    size_t   i, clen, need;
    u_char  *p;

    if (t->n == 0) {
        return;
    }

    clen = t->consumer->id.len;
    if (clen > DG_TRACE_CONSUMER_MAX) {
        clen = DG_TRACE_CONSUMER_MAX;
    }

    need = DG_TRACE_HEAD_FIXED + clen + t->n * DG_TRACE_FP_LEN;

    if (NGX_HTTP_DATAGATE_TRACE_BUF - ngx_http_datagate_trace_len < need) {
        ngx_http_datagate_trace_write(ngx_cycle->log);
    }

    p = ngx_http_datagate_trace_buf + ngx_http_datagate_trace_len;
    p += dg_trace_head(p, (uint32_t) ngx_time(), (unsigned) t->n,
                       (const uint8_t *) t->consumer->id.data, clen);

    for (i = 0; i < t->n; i++) {
        dg_trace_put_fp(p, t->fp[i]);
        p += DG_TRACE_FP_LEN;
    }

    ngx_http_datagate_trace_len = p - ngx_http_datagate_trace_buf;
    t->n = 0;
}


static void
ngx_http_datagate_trace_cleanup(void *data)
{
    ngx_http_datagate_trace_t  *t = data;

    dg_trace_scan_end(&t->scan);
    ngx_http_datagate_trace_commit(t);
}


/* datagate_trace PATH; */
char *
ngx_http_datagate_trace_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_datagate_main_conf_t *dmcf = conf;

    ngx_str_t  *value, path;

    if (dmcf->trace_file) {
        return "is duplicate";
    }

    value = cf->args->elts;
    path = value[1];

    if (path.len == 0) {
        return "needs a path";
    }

    dmcf->trace_conf_file = cf->conf_file->file.name;
    dmcf->trace_conf_line = cf->conf_file->line;

    /* opened by the cycle (O_APPEND), reopened on USR1 */
    dmcf->trace_file = ngx_conf_open_file(cf->cycle, &path);
    if (dmcf->trace_file == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
