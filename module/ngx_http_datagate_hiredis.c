
/*
 * datagate: the hiredis adapter, hiredis 0.14's asynchronous context on an
 * nginx connection.
 *
 * The hiredis socket is wrapped in an ngx_connection_t from
 * ngx_get_connection() (_redis.c) and the five adapter hooks (addRead,
 * delRead, addWrite, delWrite, cleanup) map onto level-triggered
 * read/write events, so every reply is drained however much hiredis
 * reads per call.  What is read is vetted before hiredis sees it.
 */


#include "ngx_http_datagate.h"

#include <hiredis/hiredis.h>
#include <hiredis/async.h>


#define NGX_HTTP_DATAGATE_READ_SIZE      16384

/*
 * The largest reply the gateway waits for.  Its own values are small (an
 * incident note, a run-time grant of a few hundred bytes, a decision); a
 * reply growing beyond this is someone's mistake or mischief, and would
 * otherwise hold a worker's memory and the command connection until it
 * times out.  The connection is torn down instead, as for garbage.
 */
#define NGX_HTTP_DATAGATE_REPLY_MAX      (1024 * 1024)


/* exported by hiredis 0.14, not declared in its headers */
void redisProcessCallbacks(redisAsyncContext *ac);


static void ngx_http_datagate_redis_read(ngx_event_t *ev);
static void ngx_http_datagate_redis_write(ngx_event_t *ev);
static void ngx_http_datagate_redis_add_read(void *privdata);
static void ngx_http_datagate_redis_del_read(void *privdata);
static void ngx_http_datagate_redis_add_write(void *privdata);
static void ngx_http_datagate_redis_del_write(void *privdata);
static void ngx_http_datagate_redis_cleanup(void *privdata);


/* ---- the adapter: hiredis hooks on an nginx connection -------------- */

/*
 * hiredis asserts (aborts the worker) on a reply nobody asked for, and on
 * a malformed pub/sub message.  So the bytes are read here, parsed once by
 * a shadow reader to see that every complete reply is one that is due,
 * and only then handed to hiredis.  A server answering garbage costs a
 * reconnect, never a worker.
 */
static ngx_int_t
ngx_http_datagate_redis_vet(ngx_http_datagate_rconn_t *rc, const char *buf,
    size_t n)
{
    void            *reply;
    ngx_uint_t       due, ok;
    redisReply      *r;
    redisCallback   *cb;

    due = 0;

    for (cb = rc->ac->replies.head; cb; cb = cb->next) {
        due++;
    }

    if (redisReaderFeed(rc->shadow, buf, n) != REDIS_OK) {
        return NGX_ERROR;
    }

    rc->partial += n;

    for ( ;; ) {
        reply = NULL;

        if (redisReaderGetReply(rc->shadow, &reply) != REDIS_OK) {
            return NGX_ERROR;
        }

        if (reply == NULL) {
            return rc->partial > NGX_HTTP_DATAGATE_REPLY_MAX ? NGX_DECLINED
                                                             : NGX_OK;
        }

        /* what the reader holds beyond it belongs to the next reply */
        rc->partial = rc->shadow->len - rc->shadow->pos;

        r = reply;
        ok = 1;

        if (due) {
            due--;

        } else if (!rc->sub) {
            ok = 0;

        } else {
            /* a pub/sub message: ["message", channel, payload] or a
             * (un)subscribe confirmation */
            ok = r->type == REDIS_REPLY_ARRAY && r->elements >= 3
                 && r->element[0]->type == REDIS_REPLY_STRING
                 && r->element[1]->type == REDIS_REPLY_STRING;
        }

        freeReplyObject(reply);

        if (!ok) {
            return NGX_ERROR;
        }
    }
}


static void
ngx_http_datagate_redis_read(ngx_event_t *ev)
{
    ssize_t                     n;
    ngx_err_t                   err;
    ngx_connection_t           *c;
    redisAsyncContext          *ac;
    ngx_http_datagate_rconn_t  *rc;
    char                        buf[NGX_HTTP_DATAGATE_READ_SIZE];

    c = ev->data;
    rc = c->data;
    ac = rc->ac;

    if (ac == NULL || rc->conn != c || rc->freeing) {
        return;
    }

    if (!(ac->c.flags & REDIS_CONNECTED)) {
        /* hiredis completes the connect (or reports it failed) */
        redisAsyncHandleRead(ac);
        return;
    }

    /* level-triggered: one read per event, the next event reads on */

    n = recv(c->fd, buf, sizeof(buf), 0);

    if (n == 0) {
        ngx_http_datagate_redis_fail(rc, "closed by the server");
        return;
    }

    if (n == -1) {
        err = ngx_socket_errno;

        if (err == NGX_EAGAIN || err == NGX_EINTR) {
            return;
        }

        ngx_http_datagate_redis_fail(rc, strerror(err));
        return;
    }

    switch (ngx_http_datagate_redis_vet(rc, buf, n)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        ngx_http_datagate_redis_fail(rc, "reply larger than 1 MiB");
        return;

    default:
        ngx_http_datagate_redis_fail(rc, "unexpected or malformed reply");
        return;
    }

    if (redisReaderFeed(ac->c.reader, buf, n) != REDIS_OK) {
        ngx_http_datagate_redis_fail(rc, "out of memory");
        return;
    }

    /* the context may be freed inside: do not touch c afterwards */
    redisProcessCallbacks(ac);
}


static void
ngx_http_datagate_redis_write(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_datagate_rconn_t  *rc;

    c = ev->data;
    rc = c->data;

    if (rc->ac == NULL || rc->conn != c) {
        return;
    }

    redisAsyncHandleWrite(rc->ac);
}


static void
ngx_http_datagate_redis_add_read(void *privdata)
{
    ngx_http_datagate_rconn_t  *rc = privdata;

    if (rc->conn && !rc->conn->read->active) {
        if (ngx_add_event(rc->conn->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_http_datagate_redis_fail(rc, "cannot add read event");
        }
    }
}


static void
ngx_http_datagate_redis_del_read(void *privdata)
{
    ngx_http_datagate_rconn_t  *rc = privdata;

    if (rc->conn && rc->conn->read->active) {
        (void) ngx_del_event(rc->conn->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_datagate_redis_add_write(void *privdata)
{
    ngx_http_datagate_rconn_t  *rc = privdata;

    if (rc->conn && !rc->conn->write->active) {
        if (ngx_add_event(rc->conn->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_http_datagate_redis_fail(rc, "cannot add write event");
        }
    }
}


static void
ngx_http_datagate_redis_del_write(void *privdata)
{
    ngx_http_datagate_rconn_t  *rc = privdata;

    if (rc->conn && rc->conn->write->active) {
        (void) ngx_del_event(rc->conn->write, NGX_WRITE_EVENT, 0);
    }
}


/*
 * hiredis frees the context: drop our events and the nginx connection,
 * but leave the socket to hiredis, which closes it.  May be called more
 * than once.
 */
static void
ngx_http_datagate_redis_cleanup(void *privdata)
{
    ngx_connection_t           *c;
    ngx_http_datagate_rconn_t  *rc = privdata;

    c = rc->conn;

    if (c) {
        if (c->read->active) {
            (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
        }

        if (c->write->active) {
            (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }

        c->fd = (ngx_socket_t) -1;     /* stale events are skipped */
        ngx_free_connection(c);
        rc->conn = NULL;
    }

    if (rc->shadow) {
        redisReaderFree(rc->shadow);
        rc->shadow = NULL;
    }

    rc->ac = NULL;
    rc->freeing = 0;

    ngx_http_datagate_redis_closed(rc);
}


/* c carries rc's hiredis context ac: its events call hiredis, and
 * hiredis's hooks arm them */
void
ngx_http_datagate_redis_attach(ngx_http_datagate_rconn_t *rc,
    redisAsyncContext *ac, ngx_connection_t *c)
{
    c->data = rc;
    c->read->handler = ngx_http_datagate_redis_read;
    c->write->handler = ngx_http_datagate_redis_write;

    rc->ac = ac;
    rc->conn = c;

    ac->data = rc;
    ac->ev.data = rc;
    ac->ev.addRead = ngx_http_datagate_redis_add_read;
    ac->ev.delRead = ngx_http_datagate_redis_del_read;
    ac->ev.addWrite = ngx_http_datagate_redis_add_write;
    ac->ev.delWrite = ngx_http_datagate_redis_del_write;
    ac->ev.cleanup = ngx_http_datagate_redis_cleanup;
}
