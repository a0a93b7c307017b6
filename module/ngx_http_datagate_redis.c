
/*
 * datagate: Redis on nginx's event loop.
 *
 * hiredis 0.14's async API driven by nginx events: the hiredis socket is
 * wrapped in an ngx_connection_t from ngx_get_connection(), its hooks are
 * the adapter's (_hiredis.c).  hiredis 0.14 has no timers: connect and
 * per-command timeouts are nginx timers here.
 *
 * Two connections per worker, opened in init_process (never in the
 * master): one for commands, one SUBSCRIBEd to "datagate:events".  Every
 * message bumps the shared zone's incident_gen, so every worker of every
 * node drops its cached incident state at once.
 *
 * Circuit breaker: a connection is "ready" only after its handshake
 * (AUTH, SELECT, SCRIPT LOAD, PING) was answered within connect_timeout.
 * A command that times out, a protocol error or a closed socket tears the
 * connection down; until a reconnect (from a timer, with exponential
 * backoff) completes its handshake, ngx_http_datagate_redis_ready() is
 * false and no request waits on Redis.  The error log says so once per
 * state change.
 */


#include "ngx_http_datagate.h"
#include "dg_abuse.h"
#include "dg_gcra.h"
#include "dg_rstate.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <openssl/rand.h>
#include <openssl/sha.h>


#define NGX_HTTP_DATAGATE_RS_DOWN        0
#define NGX_HTTP_DATAGATE_RS_CONNECTING  1
#define NGX_HTTP_DATAGATE_RS_READY       2

#define NGX_HTTP_DATAGATE_BACKOFF_MIN    100
#define NGX_HTTP_DATAGATE_BACKOFF_MAX    2000
#define NGX_HTTP_DATAGATE_MAX_PENDING    4096
#define NGX_HTTP_DATAGATE_EVAL_ARGS      24
#define NGX_HTTP_DATAGATE_EPOCH_TICK     1000    /* ms */


struct ngx_http_datagate_redis_s {
    ngx_http_datagate_main_conf_t  *dmcf;
    ngx_log_t                      *log;
    ngx_http_datagate_rconn_t       cmd;
    ngx_http_datagate_rconn_t       sub;
    char                            host[NGX_SOCKADDR_STRLEN + 1];
    int                             port;
    unsigned                        unix_socket:1;
    char                            sha[NGX_HTTP_DATAGATE_SCRIPTS][41];
                                                /* of each script */
    ngx_uint_t                      pending;    /* commands in flight */
};


typedef struct {
    ngx_http_datagate_redis_handler_pt  handler;
    void                               *data;
    ngx_event_t                         timer;
    ngx_http_datagate_rconn_t          *rc;
    /* EVALSHA: a copy of the arguments, to retry as EVAL on NOSCRIPT */
    ngx_uint_t                          script;
    int                                 argc;
    const char                         *argv[NGX_HTTP_DATAGATE_EVAL_ARGS];
    size_t                              argvlen[NGX_HTTP_DATAGATE_EVAL_ARGS];
    unsigned                            done:1;
    unsigned                            eval:1;
    unsigned                            retried:1;
    u_char                              blob[1];
} ngx_http_datagate_rcmd_t;


static void ngx_http_datagate_redis_connect(ngx_http_datagate_rconn_t *rc);
static void ngx_http_datagate_redis_down(ngx_http_datagate_rconn_t *rc,
    const char *why);
static void ngx_http_datagate_redis_timer(ngx_event_t *ev);
static void ngx_http_datagate_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_datagate_redis_handshake(redisAsyncContext *ac,
    void *reply, void *privdata);
static ngx_int_t ngx_http_datagate_redis_handshake_reply(
    ngx_http_datagate_rconn_t *rc, redisAsyncContext *ac, redisReply *r,
    int type);
static void ngx_http_datagate_redis_handshake_next(
    ngx_http_datagate_rconn_t *rc);
static void ngx_http_datagate_redis_info(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_datagate_redis_fsync(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_datagate_redis_epoch_known(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_datagate_redis_epoch_unknown(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_datagate_redis_epoch(redisAsyncContext *ac,
    redisReply *r, ngx_http_datagate_rconn_t *rc, ngx_uint_t known);
static ngx_int_t ngx_http_datagate_redis_epoch_get(
    ngx_http_datagate_rconn_t *rc);
static void ngx_http_datagate_redis_message(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_datagate_redis_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_http_datagate_redis_cmd_timeout(ngx_event_t *ev);
static void ngx_http_datagate_waiter_cleanup(void *data);


/* this worker's connections; NULL without datagate_redis */
static ngx_http_datagate_redis_t  *ngx_http_datagate_rd;


/* the scripts Redis runs for the gateway, by NGX_HTTP_DATAGATE_SCRIPT_* */
static ngx_str_t  ngx_http_datagate_scripts[NGX_HTTP_DATAGATE_SCRIPTS] = {
    ngx_string(DG_GCRA_LUA),
    ngx_string(DG_ABUSE_LUA)
};


/* ---- public --------------------------------------------------------- */

ngx_int_t
ngx_http_datagate_redis_ready(void)
{
    ngx_http_datagate_redis_t  *rd;

    rd = ngx_http_datagate_rd;

    /*
     * ready, or connecting for the first time since start (not known to
     * be down: a command queued now waits at most its timeout)
     */
    return rd != NULL
           && (rd->cmd.state == NGX_HTTP_DATAGATE_RS_READY
               || (rd->cmd.state == NGX_HTTP_DATAGATE_RS_CONNECTING
                   && !rd->cmd.logged_down && !rd->cmd.was_ready))
           && rd->cmd.ac != NULL
           && !rd->cmd.freeing
           && !(rd->cmd.ac->c.flags & (REDIS_DISCONNECTING|REDIS_FREEING))
           && rd->pending < NGX_HTTP_DATAGATE_MAX_PENDING
           && !(rd->dmcf->sh && rd->dmcf->sh->redis_untrusted);
}


/*
 * The request is decided on stale or per-node state (the statistics'
 * degraded_total): counted once, whichever steps fell back.
 */
void
ngx_http_datagate_redis_degraded(ngx_http_datagate_main_conf_t *dmcf,
    ngx_http_datagate_ctx_t *ctx)
{
    if (ctx->degraded) {
        return;
    }

    ctx->degraded = 1;

    if (dmcf->sh) {
        (void) ngx_atomic_fetch_add(&dmcf->sh->redis_degraded, 1);
    }
}


static ngx_int_t
ngx_http_datagate_redis_send(ngx_http_datagate_redis_handler_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen,
    ngx_uint_t eval, ngx_uint_t script)
{
    int                          i;
    u_char                      *p;
    size_t                       size;
    ngx_http_datagate_rcmd_t    *cmd;
    ngx_http_datagate_redis_t   *rd;

    if (!ngx_http_datagate_redis_ready()) {
        return NGX_DECLINED;
    }

    rd = ngx_http_datagate_rd;

    size = sizeof(ngx_http_datagate_rcmd_t);

    if (eval) {
        if (argc > NGX_HTTP_DATAGATE_EVAL_ARGS) {
            return NGX_ERROR;
        }

        for (i = 0; i < argc; i++) {
            size += argvlen[i];
        }
    }

    cmd = ngx_calloc(size, rd->log);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->rc = &rd->cmd;

    cmd->timer.handler = ngx_http_datagate_redis_cmd_timeout;
    cmd->timer.data = cmd;
    cmd->timer.log = rd->log;

    if (eval) {
        cmd->eval = 1;
        cmd->script = script;
        cmd->argc = argc;
        p = cmd->blob;

        for (i = 0; i < argc; i++) {
            cmd->argv[i] = (const char *) p;
            cmd->argvlen[i] = argvlen[i];
            p = ngx_cpymem(p, argv[i], argvlen[i]);
        }
    }

    if (redisAsyncCommandArgv(rd->cmd.ac, ngx_http_datagate_redis_reply, cmd,
                              argc, argv, argvlen)
        != REDIS_OK)
    {
        ngx_free(cmd);
        return NGX_ERROR;
    }

    rd->pending++;
    ngx_add_timer(&cmd->timer, rd->dmcf->redis.timeout);

    return NGX_OK;
}


/*
 * size bytes whose first member is a waiter for r (r NULL: nobody waits),
 * ngx_alloc()ed: they outlive the request.  A pool cleanup clears the
 * waiter when the request goes before the reply.  NULL: no memory.
 */
void *
ngx_http_datagate_waiter_create(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx, size_t size)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_datagate_waiter_t  *w;

    w = ngx_alloc(size, r ? r->connection->log : ngx_cycle->log);
    if (w == NULL) {
        return NULL;
    }

    w->r = NULL;
    w->ctx = NULL;
    w->cln = NULL;

    if (r == NULL) {
        return w;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(w);
        return NULL;
    }

    cln->handler = ngx_http_datagate_waiter_cleanup;
    cln->data = w;

    w->r = r;
    w->ctx = ctx;
    w->cln = cln;

    return w;
}


/* the request is gone before its reply: the reply must not touch it */
static void
ngx_http_datagate_waiter_cleanup(void *data)
{
    ngx_http_datagate_waiter_t  *w = data;

    w->r = NULL;
    w->ctx = NULL;
    w->cln = NULL;
}


/* the reply is here: the request's pool must not reach the data again */
void
ngx_http_datagate_waiter_detach(ngx_http_datagate_waiter_t *w)
{
    if (w->cln) {
        w->cln->handler = NULL;
        w->cln = NULL;
    }
}


/* the command was not queued: the waiter goes */
void
ngx_http_datagate_waiter_free(ngx_http_datagate_waiter_t *w)
{
    ngx_http_datagate_waiter_detach(w);
    ngx_free(w);
}


ngx_int_t
ngx_http_datagate_redis_command(ngx_http_datagate_redis_handler_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen)
{
    return ngx_http_datagate_redis_send(handler, data, argc, argv, argvlen,
                                        0, 0);
}


ngx_int_t
ngx_http_datagate_redis_eval(ngx_http_datagate_redis_handler_pt handler,
    void *data, int nkeys, int nargs, const char **args, const size_t *lens)
{
    return ngx_http_datagate_redis_script(NGX_HTTP_DATAGATE_SCRIPT_GCRA,
                                          handler, data, nkeys, nargs, args,
                                          lens);
}


ngx_int_t
ngx_http_datagate_redis_script(ngx_uint_t script,
    ngx_http_datagate_redis_handler_pt handler, void *data, int nkeys,
    int nargs, const char **args, const size_t *lens)
{
    int          i, argc;
    u_char       nk[NGX_INT_T_LEN];
    size_t       argvlen[NGX_HTTP_DATAGATE_EVAL_ARGS];
    const char  *argv[NGX_HTTP_DATAGATE_EVAL_ARGS];

    if (ngx_http_datagate_rd == NULL
        || nargs + 3 > NGX_HTTP_DATAGATE_EVAL_ARGS
        || script >= NGX_HTTP_DATAGATE_SCRIPTS)
    {
        return NGX_ERROR;
    }

    argv[0] = "EVALSHA";
    argvlen[0] = 7;
    argv[1] = ngx_http_datagate_rd->sha[script];
    argvlen[1] = 40;
    argv[2] = (const char *) nk;
    argvlen[2] = ngx_sprintf(nk, "%d", nkeys) - nk;

    argc = 3;

    for (i = 0; i < nargs; i++) {
        argv[argc] = args[i];
        argvlen[argc++] = lens[i];
    }

    return ngx_http_datagate_redis_send(handler, data, argc, argv, argvlen,
                                        1, script);
}


ngx_int_t
ngx_http_datagate_redis_init_process(ngx_cycle_t *cycle)
{
    u_char                          digest[SHA_DIGEST_LENGTH];
    ngx_uint_t                      i, k;
    struct sockaddr                *sa;
    ngx_http_datagate_redis_t      *rd;
    ngx_http_datagate_main_conf_t  *dmcf;

    static const char  hex[] = "0123456789abcdef";

    dmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_datagate_module);

    if (dmcf == NULL || !dmcf->redis_enabled || dmcf->redis.addr == NULL) {
        return NGX_OK;
    }

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    rd = ngx_pcalloc(cycle->pool, sizeof(ngx_http_datagate_redis_t));
    if (rd == NULL) {
        return NGX_ERROR;
    }

    rd->dmcf = dmcf;
    rd->log = cycle->log;

    sa = dmcf->redis.addr->sockaddr;

    switch (sa->sa_family) {

#if (NGX_HAVE_UNIX_DOMAIN)
    case AF_UNIX:
        rd->unix_socket = 1;
        ngx_cpystrn((u_char *) rd->host,
                    (u_char *) ((struct sockaddr_un *) sa)->sun_path,
                    sizeof(rd->host));
        break;
#endif

    default:
        /* an address, never a name: hiredis would call getaddrinfo() */
        if (ngx_sock_ntop(sa, dmcf->redis.addr->socklen, (u_char *) rd->host,
                          NGX_SOCKADDR_STRLEN, 0)
            == 0)
        {
            return NGX_ERROR;
        }

        rd->port = ngx_inet_get_port(sa);
        break;
    }

    for (k = 0; k < NGX_HTTP_DATAGATE_SCRIPTS; k++) {
        SHA1(ngx_http_datagate_scripts[k].data,
             ngx_http_datagate_scripts[k].len, digest);

        for (i = 0; i < SHA_DIGEST_LENGTH; i++) {
            rd->sha[k][2 * i] = hex[digest[i] >> 4];
            rd->sha[k][2 * i + 1] = hex[digest[i] & 0xf];
        }
    }

    rd->cmd.rd = rd;
    rd->cmd.name = "command";
    rd->sub.rd = rd;
    rd->sub.name = "subscriber";
    rd->sub.sub = 1;

    rd->cmd.timer.handler = ngx_http_datagate_redis_timer;
    rd->cmd.timer.data = &rd->cmd;
    rd->cmd.timer.log = cycle->log;
    rd->cmd.timer.cancelable = 1;

    rd->sub.timer = rd->cmd.timer;
    rd->sub.timer.data = &rd->sub;

    ngx_http_datagate_rd = rd;

    ngx_http_datagate_redis_connect(&rd->cmd);
    ngx_http_datagate_redis_connect(&rd->sub);

    return NGX_OK;
}


void
ngx_http_datagate_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_datagate_redis_t  *rd;

    rd = ngx_http_datagate_rd;

    if (rd == NULL) {
        return;
    }

    /* no reconnects, no new commands from here */
    ngx_http_datagate_rd = NULL;

    rd->cmd.state = NGX_HTTP_DATAGATE_RS_DOWN;
    rd->sub.state = NGX_HTTP_DATAGATE_RS_DOWN;

    if (rd->cmd.timer.timer_set) {
        ngx_del_timer(&rd->cmd.timer);
    }

    if (rd->sub.timer.timer_set) {
        ngx_del_timer(&rd->sub.timer);
    }

    /* pending callbacks run with a NULL reply; the cleanup hook frees the
     * nginx connections, hiredis closes the sockets */

    if (rd->cmd.ac && !rd->cmd.freeing) {
        rd->cmd.freeing = 1;
        redisAsyncFree(rd->cmd.ac);
    }

    if (rd->sub.ac && !rd->sub.freeing) {
        rd->sub.freeing = 1;
        redisAsyncFree(rd->sub.ac);
    }
}


/* ---- connection lifecycle ------------------------------------------ */

static void
ngx_http_datagate_redis_connect(ngx_http_datagate_rconn_t *rc)
{
    int                             argc;
    size_t                          lens[3];
    const char                     *argv[3];
    ngx_connection_t               *c;
    redisAsyncContext              *ac;
    ngx_http_datagate_redis_t      *rd;
    ngx_http_datagate_redis_conf_t *conf;
    u_char                          db[NGX_INT_T_LEN];

    rd = rc->rd;
    conf = &rd->dmcf->redis;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (rd->unix_socket) {
        ac = redisAsyncConnectUnix(rd->host);

    } else {
        ac = redisAsyncConnect(rd->host, rd->port);
    }

    if (ac == NULL) {
        ngx_http_datagate_redis_down(rc, "out of memory");
        return;
    }

    if (ac->err) {
        ngx_http_datagate_redis_down(rc, ac->errstr);
        redisAsyncFree(ac);
        return;
    }

    rc->shadow = redisReaderCreate();
    rc->partial = 0;
    if (rc->shadow == NULL) {
        ngx_http_datagate_redis_down(rc, "out of memory");
        redisAsyncFree(ac);
        return;
    }

    c = ngx_get_connection(ac->c.fd, rd->log);
    if (c == NULL) {
        ngx_http_datagate_redis_down(rc, "no free connection");
        redisReaderFree(rc->shadow);
        rc->shadow = NULL;
        redisAsyncFree(ac);
        return;
    }

    ngx_http_datagate_redis_attach(rc, ac, c);

    c->read->log = rd->log;
    c->write->log = rd->log;
    c->log = rd->log;

    rc->freeing = 0;
    rc->state = NGX_HTTP_DATAGATE_RS_CONNECTING;
    rc->handshake = 0;

    /* after the hooks: this arms the write event that reports connect */
    redisAsyncSetConnectCallback(ac, ngx_http_datagate_redis_on_connect);

    /* the handshake, pipelined; hiredis sends it once connected */

    if (conf->password.len) {
        argv[0] = "AUTH";
        lens[0] = 4;
        argv[1] = (const char *) conf->password.data;
        lens[1] = conf->password.len;

        if (redisAsyncCommandArgv(ac, ngx_http_datagate_redis_handshake, rc,
                                  2, argv, lens)
            != REDIS_OK)
        {
            goto failed;
        }

        rc->handshake++;
    }

    if (conf->db) {
        argv[0] = "SELECT";
        lens[0] = 6;
        argv[1] = (const char *) db;
        lens[1] = ngx_sprintf(db, "%i", conf->db) - db;

        if (redisAsyncCommandArgv(ac, ngx_http_datagate_redis_handshake, rc,
                                  2, argv, lens)
            != REDIS_OK)
        {
            goto failed;
        }

        rc->handshake++;
    }

    if (rc->sub) {
        argv[0] = "SUBSCRIBE";
        lens[0] = 9;
        argv[1] = DG_RS_CHANNEL;
        lens[1] = sizeof(DG_RS_CHANNEL) - 1;
        argc = 2;

        /* one callback for the confirmation and every message */
        if (redisAsyncCommandArgv(ac, ngx_http_datagate_redis_message, rc,
                                  argc, argv, lens)
            != REDIS_OK)
        {
            goto failed;
        }

    } else {
        argv[0] = "SCRIPT";
        lens[0] = 6;
        argv[1] = "LOAD";
        lens[1] = 4;
        argv[2] = DG_GCRA_LUA;
        lens[2] = sizeof(DG_GCRA_LUA) - 1;

        if (redisAsyncCommandArgv(ac, ngx_http_datagate_redis_handshake, rc,
                                  3, argv, lens)
            != REDIS_OK)
        {
            goto failed;
        }

        rc->handshake++;

        argv[0] = "PING";
        lens[0] = 4;

        if (redisAsyncCommandArgv(ac, ngx_http_datagate_redis_handshake, rc,
                                  1, argv, lens)
            != REDIS_OK)
        {
            goto failed;
        }

        rc->handshake++;

        /* what survives a restart of Redis: AOF, a replica (warned) */

        rc->persist = 0;

        argv[0] = "INFO";
        lens[0] = 4;

        if (redisAsyncCommandArgv(ac, ngx_http_datagate_redis_info, rc,
                                  1, argv, lens)
            != REDIS_OK)
        {
            goto failed;
        }

        rc->handshake++;

        argv[0] = "CONFIG";
        lens[0] = 6;
        argv[1] = "GET";
        lens[1] = 3;
        argv[2] = "appendfsync";
        lens[2] = 11;

        if (redisAsyncCommandArgv(ac, ngx_http_datagate_redis_fsync, rc,
                                  3, argv, lens)
            != REDIS_OK)
        {
            goto failed;
        }

        rc->handshake++;

        /* whether this is the Redis that holds the controls we knew */

        if (ngx_http_datagate_redis_epoch_get(rc) != NGX_OK) {
            goto failed;
        }

        rc->handshake++;
    }

    ngx_add_timer(&rc->timer, conf->connect_timeout);

    return;

failed:

    ngx_http_datagate_redis_fail(rc, "cannot queue the handshake");
}


/* tear the connection down (may be inside a hiredis callback) */
void
ngx_http_datagate_redis_fail(ngx_http_datagate_rconn_t *rc, const char *why)
{
    ngx_http_datagate_redis_down(rc, why);

    if (rc->ac && !rc->freeing) {
        rc->freeing = 1;
        redisAsyncFree(rc->ac);     /* deferred when in a callback */
    }
}


/* the context is gone (the adapter's cleanup hook): down, or reconnect */
void
ngx_http_datagate_redis_closed(ngx_http_datagate_rconn_t *rc)
{
    if (rc->state != NGX_HTTP_DATAGATE_RS_DOWN) {
        ngx_http_datagate_redis_down(rc, "closed");

    } else if (!rc->timer.timer_set && ngx_http_datagate_rd == rc->rd
               && !(ngx_exiting || ngx_quit || ngx_terminate))
    {
        ngx_add_timer(&rc->timer, rc->backoff ? rc->backoff
                                  : NGX_HTTP_DATAGATE_BACKOFF_MIN);
    }
}


/* state change to down: log once, schedule a reconnect */
static void
ngx_http_datagate_redis_down(ngx_http_datagate_rconn_t *rc, const char *why)
{
    ngx_http_datagate_redis_t  *rd;

    rd = rc->rd;

    /*
     * once per state change: when it was up, or the first failure; loss
     * and recovery at the same level, so that whoever sees one sees the
     * other
     */
    if (rc->was_ready || !rc->logged_down) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "datagate: redis %V %s connection down: %s; "
                      "cluster state from the local cache, then "
                      "failing closed",
                      &rd->dmcf->redis.addr_text, rc->name,
                      why ? why : "closed");

        if (!rc->sub && rd->dmcf->sh) {
            rd->dmcf->sh->redis_up = 0;
        }
    }

    rc->logged_down = 1;
    rc->was_ready = 0;

    rc->state = NGX_HTTP_DATAGATE_RS_DOWN;

    if (ngx_exiting || ngx_quit || ngx_terminate
        || ngx_http_datagate_rd != rd)
    {
        if (rc->timer.timer_set) {
            ngx_del_timer(&rc->timer);
        }

        return;
    }

    if (rc->backoff == 0) {
        rc->backoff = NGX_HTTP_DATAGATE_BACKOFF_MIN;

    } else {
        rc->backoff *= 2;

        if (rc->backoff > NGX_HTTP_DATAGATE_BACKOFF_MAX) {
            rc->backoff = NGX_HTTP_DATAGATE_BACKOFF_MAX;
        }
    }

    /* reconnect from a timer, never inline */
    ngx_add_timer(&rc->timer, rc->backoff);
}


static void
ngx_http_datagate_redis_up(ngx_http_datagate_rconn_t *rc)
{
    ngx_uint_t                  level;
    ngx_http_datagate_redis_t  *rd;

    rd = rc->rd;

    if (rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }

    rc->state = NGX_HTTP_DATAGATE_RS_READY;
    rc->backoff = 0;

    if (!rc->sub) {
        ngx_add_timer(&rc->timer, NGX_HTTP_DATAGATE_EPOCH_TICK);
    }

    if (!rc->was_ready) {
        level = rc->logged_down ? NGX_LOG_ERR : NGX_LOG_INFO;

        ngx_log_error(level, rd->log, 0,
                      "datagate: redis %V %s connection %s",
                      &rd->dmcf->redis.addr_text, rc->name,
                      rc->logged_down ? "is back" : "ready");
    }

    rc->was_ready = 1;
    rc->logged_down = 0;

    if (rd->dmcf->sh) {
        if (!rc->sub) {
            rd->dmcf->sh->redis_up = 1;
        }

        /* messages may have been missed while it was down */
        (void) ngx_atomic_fetch_add(&rd->dmcf->sh->incident_gen, 1);
    }
}


static void
ngx_http_datagate_redis_timer(ngx_event_t *ev)
{
    ngx_http_datagate_rconn_t  *rc;

    rc = ev->data;

    switch (rc->state) {

    case NGX_HTTP_DATAGATE_RS_CONNECTING:
        ngx_http_datagate_redis_fail(rc, "connect timed out");
        break;

    case NGX_HTTP_DATAGATE_RS_DOWN:
        if (rc->ac == NULL) {
            ngx_http_datagate_redis_connect(rc);

        } else {
            /* the old context is still being freed: try again soon */
            ngx_add_timer(&rc->timer, NGX_HTTP_DATAGATE_BACKOFF_MIN);
        }
        break;

    case NGX_HTTP_DATAGATE_RS_READY:
        /* the command connection looks at the epoch every tick: a Redis
         * flushed without a restart is noticed within one */
        if (!rc->sub && rc->ac && !rc->freeing) {
            (void) ngx_http_datagate_redis_epoch_get(rc);
            ngx_add_timer(&rc->timer, NGX_HTTP_DATAGATE_EPOCH_TICK);
        }
        break;

    default:
        break;
    }
}


static void
ngx_http_datagate_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_datagate_rconn_t  *rc;

    rc = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this; the cleanup hook runs */
        ngx_http_datagate_redis_down(rc, ac->errstr);
    }
}


static void
ngx_http_datagate_redis_handshake(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                 *r;
    ngx_http_datagate_rconn_t  *rc;

    rc = privdata;
    r = reply;

    if (ngx_http_datagate_redis_handshake_reply(rc, ac, r, -1) != NGX_OK) {
        return;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rc->rd->log, 0,
                      "datagate: redis %V handshake: %*s",
                      &rc->rd->dmcf->redis.addr_text, (size_t) r->len,
                      r->str);
        ngx_http_datagate_redis_fail(rc, "handshake refused");
        return;
    }

    ngx_http_datagate_redis_handshake_next(rc);
}


/*
 * NGX_OK: a handshake reply of this connection to look at, of the type
 * that answers the command (or an error; -1: any type); a reply of
 * another type tears the connection down like garbage
 */
static ngx_int_t
ngx_http_datagate_redis_handshake_reply(ngx_http_datagate_rconn_t *rc,
    redisAsyncContext *ac, redisReply *r, int type)
{
    if (rc->ac != ac || rc->state != NGX_HTTP_DATAGATE_RS_CONNECTING) {
        return NGX_DECLINED;
    }

    if (r == NULL) {
        ngx_http_datagate_redis_down(rc, ac->errstr[0] ? ac->errstr
                                                       : "closed");
        return NGX_DECLINED;
    }

    if (type != -1 && r->type != type && r->type != REDIS_REPLY_ERROR) {
        ngx_http_datagate_redis_fail(rc, "unexpected handshake reply");
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* one more handshake reply is in: the connection is up after the last */
static void
ngx_http_datagate_redis_handshake_next(ngx_http_datagate_rconn_t *rc)
{
    if (--rc->handshake == 0 && !rc->sub) {
        ngx_http_datagate_redis_up(rc);
    }
}


/*
 * INFO: "aof_enabled:1" and "connected_slaves:N" (a replica holds a copy).
 * An error (INFO renamed away) leaves the persistence unknown.
 */
static void
ngx_http_datagate_redis_info(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    u_char                     *p, *end;
    redisReply                 *r;
    ngx_http_datagate_rconn_t  *rc;

    rc = privdata;
    r = reply;

    if (ngx_http_datagate_redis_handshake_reply(rc, ac, r,
                                                REDIS_REPLY_STRING)
        != NGX_OK)
    {
        return;
    }

    if (r->type == REDIS_REPLY_STRING) {
        p = (u_char *) r->str;
        end = p + r->len;

        rc->persist |= NGX_HTTP_DATAGATE_RP_KNOWN;

        if (ngx_strlcasestrn(p, end, (u_char *) "aof_enabled:1", 13 - 1)) {
            rc->persist |= NGX_HTTP_DATAGATE_RP_AOF;
        }

        p = ngx_strlcasestrn(p, end, (u_char *) "connected_slaves:", 17 - 1);

        if (p && p + 17 < end && p[17] >= '1' && p[17] <= '9') {
            rc->persist |= NGX_HTTP_DATAGATE_RP_REPLICA;
        }
    }

    ngx_http_datagate_redis_handshake_next(rc);
}


/*
 * CONFIG GET appendfsync: "no" leaves up to 30 s of writes to the OS.
 * Often renamed away in production: an error is no verdict.  The last
 * reply of the check: publish the result, warn once while it is weak.
 */
static void
ngx_http_datagate_redis_fsync(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_uint_t                      p, old;
    redisReply                     *r, *v;
    ngx_http_datagate_rconn_t      *rc;
    ngx_http_datagate_shctx_t      *sh;

    rc = privdata;
    r = reply;

    if (ngx_http_datagate_redis_handshake_reply(rc, ac, r,
                                                REDIS_REPLY_ARRAY)
        != NGX_OK)
    {
        return;
    }

    p = rc->persist;

    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2
        && r->element[1]->type == REDIS_REPLY_STRING)
    {
        v = r->element[1];

        if (v->len == 2 && ngx_strncasecmp((u_char *) v->str,
                                           (u_char *) "no", 2) == 0)
        {
            p |= NGX_HTTP_DATAGATE_RP_AOF_WEAK;
        }
    }

    sh = rc->rd->dmcf->sh;

    if (sh) {
        old = ngx_atomic_fetch_add(&sh->redis_persistence, 0);
        sh->redis_persistence = p;

        if ((p & NGX_HTTP_DATAGATE_RP_KNOWN)
            && !(p & NGX_HTTP_DATAGATE_RP_REPLICA)
            && (!(p & NGX_HTTP_DATAGATE_RP_AOF)
                || (p & NGX_HTTP_DATAGATE_RP_AOF_WEAK)))
        {
            /* once per node while it stays so (the flag is in the zone) */
            ngx_shmtx_lock(&rc->rd->dmcf->shpool->mutex);

            if (!sh->redis_volatile_logged || old != p) {
                sh->redis_volatile_logged = 1;
                ngx_shmtx_unlock(&rc->rd->dmcf->shpool->mutex);

                ngx_log_error(NGX_LOG_WARN, rc->rd->log, 0,
                              "datagate: redis %V keeps incident controls "
                              "and run-time grants %s and has no replica: "
                              "a restart of Redis can lose them; configure "
                              "\"appendonly yes\" with \"appendfsync "
                              "everysec\", or a replica (docs/redis.md)",
                              &rc->rd->dmcf->redis.addr_text,
                              (p & NGX_HTTP_DATAGATE_RP_AOF)
                              ? "in an AOF without fsync"
                              : "in memory only");

            } else {
                ngx_shmtx_unlock(&rc->rd->dmcf->shpool->mutex);
            }

        } else {
            sh->redis_volatile_logged = 0;
        }
    }

    ngx_http_datagate_redis_handshake_next(rc);
}


/* read datagate:epoch on the command connection (handshake, tick, event) */
static ngx_int_t
ngx_http_datagate_redis_epoch_get(ngx_http_datagate_rconn_t *rc)
{
    size_t       lens[2];
    const char  *argv[2];

    /*
     * MGET of the one key, not GET: GET stays the decision tier's own
     * command, so INFO commandstats tells its lookups apart from this
     * once-a-second check
     */
    argv[0] = "MGET";
    lens[0] = 4;
    argv[1] = DG_RS_EPOCH;
    lens[1] = sizeof(DG_RS_EPOCH) - 1;

    /* what the answer means depends on what the node knew when asking */
    return redisAsyncCommandArgv(rc->ac,
                                 rc->rd->dmcf->sh
                                 && rc->rd->dmcf->sh->redis_epoch[0]
                                 ? ngx_http_datagate_redis_epoch_known
                                 : ngx_http_datagate_redis_epoch_unknown,
                                 rc, 2, argv, lens)
           == REDIS_OK ? NGX_OK : NGX_ERROR;
}


/*
 * The epoch: a random value in datagate:epoch, created with the first
 * gateway's first connection and remembered by every node (the zone, and
 * datagate_state across restarts).  Redis that answers without it, to a
 * node that remembers one, has lost its data -- restarted empty, flushed,
 * or replaced -- and with it the revocations, suspensions and freezes it
 * held: its (empty) incident state is not trusted, so requests fail
 * closed as if Redis were down, until an operator has put the controls
 * back and confirmed (datagate redis confirm: a new epoch, published).
 * An epoch other than the remembered one is such a confirmation.
 */
static void
ngx_http_datagate_redis_epoch_known(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_http_datagate_redis_epoch(ac, reply, privdata, 1);
}


static void
ngx_http_datagate_redis_epoch_unknown(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_http_datagate_redis_epoch(ac, reply, privdata, 0);
}


static void
ngx_http_datagate_redis_epoch(redisAsyncContext *ac, redisReply *r,
    ngx_http_datagate_rconn_t *rc, ngx_uint_t known)
{
    size_t                          lens[4];
    ngx_uint_t                      i, handshake, create, lost, ok, back;
    const char                     *argv[4];
    ngx_http_datagate_shctx_t      *sh;
    u_char                          bytes[DG_RS_EPOCH_LEN / 2];
    u_char                          epoch[DG_RS_EPOCH_LEN];
    u_char                          old[DG_RS_EPOCH_MAX + 1];

    handshake = rc->state == NGX_HTTP_DATAGATE_RS_CONNECTING;

    if (handshake) {
        if (ngx_http_datagate_redis_handshake_reply(rc, ac, r, -1)
            != NGX_OK)
        {
            return;
        }

    } else if (r == NULL || rc->ac != ac) {
        return;
    }

    sh = rc->rd->dmcf->sh;

    /* the MGET's one element; anything else is not an answer to it */
    ok = r->type == REDIS_REPLY_ARRAY && r->elements == 1;

    if (ok) {
        r = r->element[0];
    }

    ok = ok
         && (r->type == REDIS_REPLY_NIL
             || (r->type == REDIS_REPLY_STRING && r->len > 0
                 && r->len <= DG_RS_EPOCH_MAX));

    for (i = 0; ok && r->type == REDIS_REPLY_STRING && i < r->len; i++) {
        if (r->str[i] <= ' ' || r->str[i] > '~') {
            ok = 0;
        }
    }

    if (!ok || sh == NULL) {
        if (handshake) {
            ngx_http_datagate_redis_fail(rc, "unexpected epoch reply");
        }

        return;
    }

    create = 0;
    lost = 0;
    back = 0;
    old[0] = '\0';

    ngx_shmtx_lock(&rc->rd->dmcf->shpool->mutex);

    if (r->type == REDIS_REPLY_NIL) {
        if (!known) {
            /*
             * asked while the node knew no epoch: the first here, or
             * another worker of the node created one since (then the
             * SET NX below leaves it and the GET after it reads it)
             */
            create = 1;

        } else if (!sh->redis_untrusted) {
            sh->redis_untrusted = 1;
            sh->redis_lost_logged = 0;
        }

        if (sh->redis_untrusted && !sh->redis_lost_logged) {
            sh->redis_lost_logged = 1;
            lost = 1;
            ngx_cpystrn(old, sh->redis_epoch, sizeof(old));
        }

    } else if (ngx_strlen(sh->redis_epoch) != r->len
               || ngx_memcmp(sh->redis_epoch, r->str, r->len) != 0)
    {
        ngx_cpystrn(old, sh->redis_epoch, sizeof(old));
        ngx_memcpy(sh->redis_epoch, r->str, r->len);
        sh->redis_epoch[r->len] = '\0';
        sh->redis_untrusted = 0;
        sh->redis_lost_logged = 0;

    } else if (sh->redis_untrusted) {
        /* the epoch this node remembers is back: Redis was restored */
        sh->redis_untrusted = 0;
        sh->redis_lost_logged = 0;
        back = 1;
    }

    ngx_shmtx_unlock(&rc->rd->dmcf->shpool->mutex);

    if (lost) {
        ngx_log_error(NGX_LOG_ERR, rc->rd->log, 0,
                      "datagate: redis %V has lost datagate's state (no "
                      "\"" DG_RS_EPOCH "\"; this node last saw \"%s\"): "
                      "its incident controls and run-time grants are not "
                      "trusted and requests fail closed; restore Redis "
                      "from its AOF or replica, or put the controls back "
                      "and run \"datagate redis confirm\"",
                      &rc->rd->dmcf->redis.addr_text, old);

    } else if (old[0] && r->type == REDIS_REPLY_STRING) {
        ngx_log_error(NGX_LOG_WARN, rc->rd->log, 0,
                      "datagate: redis %V epoch is now \"%*s\" (was "
                      "\"%s\"): its incident state is trusted",
                      &rc->rd->dmcf->redis.addr_text, (size_t) r->len,
                      r->str, old);

    } else if (back) {
        ngx_log_error(NGX_LOG_WARN, rc->rd->log, 0,
                      "datagate: redis %V holds the epoch \"%*s\" again "
                      "(restored): its incident state is trusted",
                      &rc->rd->dmcf->redis.addr_text, (size_t) r->len,
                      r->str);
    }

    if (create) {
        /* the first gateway here: SET NX, or learn the one that won */

        if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
            if (handshake) {
                ngx_http_datagate_redis_fail(rc, "RAND_bytes() failed");
            }

            return;
        }

        ngx_hex_dump(epoch, bytes, sizeof(bytes));

        argv[0] = "SET";
        lens[0] = 3;
        argv[1] = DG_RS_EPOCH;
        lens[1] = sizeof(DG_RS_EPOCH) - 1;
        argv[2] = (const char *) epoch;
        lens[2] = sizeof(epoch);
        argv[3] = "NX";
        lens[3] = 2;

        /* then read back whichever value won */

        if (redisAsyncCommandArgv(ac, ngx_http_datagate_redis_handshake, rc,
                                  4, argv, lens)
            != REDIS_OK
            || ngx_http_datagate_redis_epoch_get(rc) != NGX_OK)
        {
            if (handshake) {
                ngx_http_datagate_redis_fail(rc, "cannot queue the epoch");
            }

            return;
        }

        if (handshake) {
            rc->handshake += 2;
        }
    }

    if (handshake) {
        ngx_http_datagate_redis_handshake_next(rc);
    }
}


static void
ngx_http_datagate_redis_message(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    redisReply                 *r, *kind;
    ngx_http_datagate_rconn_t  *rc;

    rc = privdata;
    r = reply;

    if (r == NULL || rc->ac != ac) {
        return;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        ngx_http_datagate_redis_fail(rc, "SUBSCRIBE refused");
        return;
    }

    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3
        || r->element[0]->type != REDIS_REPLY_STRING)
    {
        ngx_http_datagate_redis_fail(rc, "unexpected reply on the channel");
        return;
    }

    kind = r->element[0];

    if (kind->len == 9 && ngx_strncasecmp((u_char *) kind->str,
                                          (u_char *) "subscribe", 9) == 0)
    {
        if (rc->state == NGX_HTTP_DATAGATE_RS_CONNECTING
            && rc->handshake == 0)
        {
            ngx_http_datagate_redis_up(rc);
        }

        return;
    }

    if (kind->len == 7 && ngx_strncasecmp((u_char *) kind->str,
                                          (u_char *) "message", 7) == 0)
    {
        if (rc->rd->dmcf->sh) {
            (void) ngx_atomic_fetch_add(&rc->rd->dmcf->sh->incident_gen, 1);
        }

        if (r->element[2]->type == REDIS_REPLY_STRING) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rc->rd->log, 0,
                           "datagate: redis event \"%*s\"",
                           (size_t) r->element[2]->len, r->element[2]->str);

            /* "unsuspend consumer ID": a suspension abuse detection
             * holds here goes too */
            ngx_http_datagate_abuse_event(rc->rd->dmcf,
                                          (u_char *) r->element[2]->str,
                                          (size_t) r->element[2]->len);

            /* "epoch confirm": look again now, not at the next tick */
            if (r->element[2]->len >= 5
                && ngx_strncmp(r->element[2]->str, "epoch", 5) == 0
                && rc->rd->cmd.state == NGX_HTTP_DATAGATE_RS_READY
                && rc->rd->cmd.ac && !rc->rd->cmd.freeing)
            {
                (void) ngx_http_datagate_redis_epoch_get(&rc->rd->cmd);
            }
        }
    }
}


/* ---- commands ------------------------------------------------------- */

static ngx_int_t
ngx_http_datagate_redis_noscript(redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR && r->len >= 8
           && ngx_strncmp(r->str, "NOSCRIPT", 8) == 0;
}


static void
ngx_http_datagate_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_http_datagate_rcmd_t   *cmd;
    ngx_http_datagate_rconn_t  *rc;

    cmd = privdata;
    rc = cmd->rc;

    if (rc->rd->pending) {
        rc->rd->pending--;
    }

    if (reply == NULL) {
        /* the context is going away: nobody may send on it any more */
        if (rc->state != NGX_HTTP_DATAGATE_RS_DOWN && rc->ac == ac) {
            ngx_http_datagate_redis_down(rc, ac->errstr[0] ? ac->errstr
                                                           : "closed");
        }
    }

    if (cmd->done) {
        ngx_free(cmd);
        return;
    }

    if (cmd->eval && !cmd->retried && ngx_http_datagate_redis_noscript(reply)
        && rc->ac == ac && rc->state == NGX_HTTP_DATAGATE_RS_READY)
    {
        /* the script cache was flushed: EVAL loads it again */
        cmd->retried = 1;
        cmd->argv[0] = "EVAL";
        cmd->argvlen[0] = 4;
        cmd->argv[1] = (const char *)
                           ngx_http_datagate_scripts[cmd->script].data;
        cmd->argvlen[1] = ngx_http_datagate_scripts[cmd->script].len;

        if (redisAsyncCommandArgv(ac, ngx_http_datagate_redis_reply, cmd,
                                  cmd->argc, cmd->argv, cmd->argvlen)
            == REDIS_OK)
        {
            rc->rd->pending++;
            return;
        }
    }

    cmd->done = 1;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    /*
     * a Redis found to have lost its state answers nothing a request may
     * use, also commands queued before the verdict came (the epoch is
     * read first on every connection, so its answer is in before theirs)
     */
    if (rc->rd->dmcf->sh && rc->rd->dmcf->sh->redis_untrusted) {
        reply = NULL;
    }

    cmd->handler(cmd->data, reply);

    ngx_free(cmd);
}


static void
ngx_http_datagate_redis_cmd_timeout(ngx_event_t *ev)
{
    ngx_http_datagate_rcmd_t   *cmd;
    ngx_http_datagate_rconn_t  *rc;

    cmd = ev->data;
    rc = cmd->rc;

    if (rc->ac && !rc->freeing) {
        /*
         * Redis is slow or gone: open the breaker rather than let the
         * next requests queue behind this one.  Freeing the context runs
         * every pending callback, this one's too, with a NULL reply.
         */
        ngx_http_datagate_redis_fail(rc, "command timed out");
        return;
    }

    /* the context is already going: answer now, free when hiredis lets
     * go of the command */
    cmd->done = 1;
    cmd->handler(cmd->data, NULL);
}
