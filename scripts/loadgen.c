/*
 * loadgen: a small HTTP/1.1 load generator for datagate's benchmarks.
 *
 * One thread, epoll, N keepalive connections, plain HTTP or TLS (OpenSSL)
 * with an optional client certificate (mutual TLS), which wrk and h2load
 * cannot present.  Responses with Content-Length, chunked transfer coding
 * or read-until-close bodies are all counted by their decoded body bytes.
 *
 *   cc -O2 -o loadgen scripts/loadgen.c -lssl -lcrypto
 *
 *   loadgen [options] URL
 *     -c N          connections (default 16)
 *     -d SECONDS    run for this long (default 5, unless -n is given)
 *     -n N          send exactly N requests, then stop
 *     -H 'K: V'     extra request header (repeatable, up to 64)
 *     -m METHOD     request method (default GET)
 *     -t SECONDS    per-request timeout (default 30)
 *     --cert FILE   client certificate (PEM, may hold the chain)
 *     --key FILE    client private key (PEM; default: the --cert file)
 *     --ca FILE     verify the server against this CA (else: no check)
 *     -D FILE       write the decoded body of the first response to FILE
 *     --drain       with -d: when the time is up, wait for the requests in
 *                   flight (up to their timeout) and count them
 *     -v            print the first response's status line and headers
 *     -q            print only the RESULT line
 *
 * Output: a human summary, then one machine-readable line
 *   RESULT reqs=.. secs=.. rps=.. mbps=.. p50_us=.. p90_us=.. p99_us=..
 *          max_us=.. errors=.. non2xx=.. reconnects=.. body_bytes=..
 * (MB = 10^6 bytes of decoded response body.)
 *
 * Exit: 0 all good; 2 some requests failed or timed out; 1 nothing worked
 * or bad usage.  Every loop is bounded by the duration or request count and
 * every request by its timeout.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>


#define LG_MAX_CONNS        4096
#define LG_MAX_HEADERS      64
#define LG_HEAD_MAX         32768       /* response header block */
#define LG_LINE_MAX         1024        /* chunk-size / trailer line */
#define LG_RBUF             (256 * 1024)
#define LG_READS_PER_EVENT  32
#define LG_RETRY_NS         50000000ull     /* after a failed connect */

/* latency histogram: exact below 1024 us, then 128 sub-buckets per power
 * of two (under 1% error), up to 2^40 us */
#define LG_HSUB             128
#define LG_HEXP_MIN         10
#define LG_HEXP_MAX         40
#define LG_HBUCKETS         (1024 + (LG_HEXP_MAX - LG_HEXP_MIN) * LG_HSUB)


typedef enum {
    ST_CLOSED = 0,
    ST_CONNECTING,
    ST_HANDSHAKE,
    ST_WRITING,
    ST_HEAD,
    ST_BODY_LEN,
    ST_BODY_EOF,
    ST_CHUNK_SIZE,
    ST_CHUNK_DATA,
    ST_CHUNK_CRLF,
    ST_TRAILER
} lg_state_e;


typedef struct {
    int                 fd;
    SSL                *ssl;
    lg_state_e          state;
    uint32_t            events;         /* registered epoll events */
    unsigned            ready:1;        /* more to read without an event */
    unsigned            close_after:1;
    unsigned            in_request:1;
    unsigned            retried:1;
    size_t              wpos;
    char                head[LG_HEAD_MAX];
    size_t              hlen;
    char                line[LG_LINE_MAX];
    size_t              llen;
    int64_t             remaining;
    int                 status;
    uint64_t            served;         /* responses on this connection */
    uint64_t            t_start;        /* ns */
    uint64_t            deadline;       /* ns */
    uint64_t            retry_at;       /* ns: no reconnect before */
    uint64_t            body;           /* body bytes of this response */
} lg_conn_t;


static struct {
    /* options */
    int                 conns;
    double              duration;
    uint64_t            nreq;
    double              timeout;
    const char         *cert;
    const char         *key;
    const char         *ca;
    const char         *dump;
    int                 verbose;
    int                 quiet;
    int                 drain;
    const char         *method;
    const char         *headers[LG_MAX_HEADERS];
    int                 nheaders;

    /* target */
    int                 tls;
    char                host[256];
    char                port[16];
    char                path[4096];
    struct sockaddr_storage addr;
    socklen_t           addrlen;
    int                 host_is_ip;

    char               *req;
    size_t              reqlen;
    SSL_CTX            *ctx;
    int                 ep;

    /* counters */
    uint64_t            issued;
    uint64_t            done;           /* completed responses */
    uint64_t            non2xx;
    uint64_t            body_bytes;
    uint64_t            err_connect;
    uint64_t            err_tls;
    uint64_t            err_io;
    uint64_t            err_parse;
    uint64_t            err_timeout;
    uint64_t            reconnects;
    uint64_t            hist[LG_HBUCKETS];
    uint64_t            max_us;

    FILE               *dumpf;
    int                 dumped;         /* first response finished */
    int                 shown;
} lg;

static lg_conn_t       *conns;
static char             rbuf[LG_RBUF];
static volatile sig_atomic_t  interrupted;


static void lg_start_request(lg_conn_t *c, uint64_t now);
static void lg_close(lg_conn_t *c);


static uint64_t
lg_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}


static void
lg_on_signal(int sig)
{
    (void) sig;
    interrupted = 1;
}


static void
lg_usage(void)
{
    fprintf(stderr,
        "usage: loadgen [-c N] [-d SEC | -n N] [-H 'K: V']... [-m METHOD]\n"
        "               [-t SEC] [--cert F] [--key F] [--ca F] [-D FILE]\n"
        "               [--drain] [-v] [-q] http[s]://HOST:PORT/PATH\n");
}


/* ---- latency histogram ------------------------------------------------ */

static void
lg_hist_add(uint64_t us)
{
    unsigned  e, sub, idx;

    if (us > lg.max_us) {
        lg.max_us = us;
    }

    if (us < 1024) {
        idx = (unsigned) us;

    } else {
        e = 63 - (unsigned) __builtin_clzll(us);
        if (e >= LG_HEXP_MAX) {
            idx = LG_HBUCKETS - 1;

        } else {
            sub = (unsigned) ((us >> (e - 7)) & (LG_HSUB - 1));
            idx = 1024 + (e - LG_HEXP_MIN) * LG_HSUB + sub;
        }
    }

    lg.hist[idx]++;
}


static uint64_t
lg_hist_value(unsigned idx)
{
    unsigned  e, sub;

    if (idx < 1024) {
        return idx;
    }

    e = LG_HEXP_MIN + (idx - 1024) / LG_HSUB;
    sub = (idx - 1024) % LG_HSUB;

    /* middle of the bucket */
    return ((uint64_t) (LG_HSUB + sub) << (e - 7))
           + ((uint64_t) 1 << (e - 8));
}


static uint64_t
lg_hist_pct(double p)
{
    uint64_t  total, want, acc;
    unsigned  i;

    total = 0;
    for (i = 0; i < LG_HBUCKETS; i++) {
        total += lg.hist[i];
    }

    if (total == 0) {
        return 0;
    }

    want = (uint64_t) (p * (double) total + 0.999999);
    if (want < 1) {
        want = 1;
    }

    acc = 0;
    for (i = 0; i < LG_HBUCKETS; i++) {
        acc += lg.hist[i];
        if (acc >= want) {
            uint64_t v = lg_hist_value(i);
            return v > lg.max_us ? lg.max_us : v;
        }
    }

    return lg.max_us;
}


/* ---- set-up ------------------------------------------------------------- */

static int
lg_parse_url(const char *url)
{
    const char  *p, *slash, *colon, *hend;
    size_t       n;

    if (strncmp(url, "https://", 8) == 0) {
        lg.tls = 1;
        p = url + 8;

    } else if (strncmp(url, "http://", 7) == 0) {
        lg.tls = 0;
        p = url + 7;

    } else {
        fprintf(stderr, "loadgen: URL must start with http:// or https://\n");
        return -1;
    }

    slash = strchr(p, '/');
    hend = slash ? slash : p + strlen(p);

    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t) (hend - p));
        if (rb == NULL) {
            fprintf(stderr, "loadgen: bad IPv6 literal\n");
            return -1;
        }
        n = (size_t) (rb - p - 1);
        if (n >= sizeof(lg.host)) {
            return -1;
        }
        memcpy(lg.host, p + 1, n);
        lg.host[n] = '\0';
        colon = (rb + 1 < hend && rb[1] == ':') ? rb + 1 : NULL;

    } else {
        colon = memchr(p, ':', (size_t) (hend - p));
        n = (size_t) ((colon ? colon : hend) - p);
        if (n == 0 || n >= sizeof(lg.host)) {
            fprintf(stderr, "loadgen: bad host in URL\n");
            return -1;
        }
        memcpy(lg.host, p, n);
        lg.host[n] = '\0';
    }

    if (colon) {
        n = (size_t) (hend - colon - 1);
        if (n == 0 || n >= sizeof(lg.port)) {
            fprintf(stderr, "loadgen: bad port in URL\n");
            return -1;
        }
        memcpy(lg.port, colon + 1, n);
        lg.port[n] = '\0';

    } else {
        strcpy(lg.port, lg.tls ? "443" : "80");
    }

    if (slash) {
        if (strlen(slash) >= sizeof(lg.path)) {
            fprintf(stderr, "loadgen: path too long\n");
            return -1;
        }
        strcpy(lg.path, slash);

    } else {
        strcpy(lg.path, "/");
    }

    return 0;
}


static int
lg_resolve(void)
{
    struct addrinfo   hints, *res;
    struct in6_addr   a6;
    struct in_addr    a4;
    int               rc;

    lg.host_is_ip = inet_pton(AF_INET, lg.host, &a4) == 1
                    || inet_pton(AF_INET6, lg.host, &a6) == 1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;

    rc = getaddrinfo(lg.host, lg.port, &hints, &res);
    if (rc != 0 || res == NULL) {
        fprintf(stderr, "loadgen: %s: %s\n", lg.host, gai_strerror(rc));
        return -1;
    }

    memcpy(&lg.addr, res->ai_addr, res->ai_addrlen);
    lg.addrlen = res->ai_addrlen;
    freeaddrinfo(res);

    return 0;
}


static int
lg_build_request(void)
{
    size_t  cap, n;
    int     i, w;
    int     has_host;

    has_host = 0;
    cap = strlen(lg.method) + strlen(lg.path) + strlen(lg.host) + 256;
    for (i = 0; i < lg.nheaders; i++) {
        cap += strlen(lg.headers[i]) + 2;
        if (strncasecmp(lg.headers[i], "host:", 5) == 0) {
            has_host = 1;
        }
    }

    lg.req = malloc(cap);
    if (lg.req == NULL) {
        return -1;
    }

    w = snprintf(lg.req, cap, "%s %s HTTP/1.1\r\n", lg.method, lg.path);
    n = (size_t) w;

    if (!has_host) {
        int v6 = strchr(lg.host, ':') != NULL;
        w = snprintf(lg.req + n, cap - n, "Host: %s%s%s:%s\r\n",
                     v6 ? "[" : "", lg.host, v6 ? "]" : "", lg.port);
        n += (size_t) w;
    }

    w = snprintf(lg.req + n, cap - n, "User-Agent: datagate-loadgen\r\n");
    n += (size_t) w;

    for (i = 0; i < lg.nheaders; i++) {
        w = snprintf(lg.req + n, cap - n, "%s\r\n", lg.headers[i]);
        n += (size_t) w;
    }

    w = snprintf(lg.req + n, cap - n, "\r\n");
    n += (size_t) w;

    if (n >= cap) {
        return -1;
    }

    lg.reqlen = n;
    return 0;
}


static int
lg_tls_init(void)
{
    lg.ctx = SSL_CTX_new(TLS_client_method());
    if (lg.ctx == NULL) {
        ERR_print_errors_fp(stderr);
        return -1;
    }

    SSL_CTX_set_min_proto_version(lg.ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(lg.ctx, SSL_MODE_ENABLE_PARTIAL_WRITE
                             | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    if (lg.cert) {
        if (SSL_CTX_use_certificate_chain_file(lg.ctx, lg.cert) != 1
            || SSL_CTX_use_PrivateKey_file(lg.ctx,
                                           lg.key ? lg.key : lg.cert,
                                           SSL_FILETYPE_PEM) != 1
            || SSL_CTX_check_private_key(lg.ctx) != 1)
        {
            fprintf(stderr, "loadgen: cannot load client certificate/key\n");
            ERR_print_errors_fp(stderr);
            return -1;
        }
    }

    if (lg.ca) {
        if (SSL_CTX_load_verify_locations(lg.ctx, lg.ca, NULL) != 1) {
            fprintf(stderr, "loadgen: cannot load CA %s\n", lg.ca);
            ERR_print_errors_fp(stderr);
            return -1;
        }
        SSL_CTX_set_verify(lg.ctx, SSL_VERIFY_PEER, NULL);

    } else {
        SSL_CTX_set_verify(lg.ctx, SSL_VERIFY_NONE, NULL);
    }

    return 0;
}


/* ---- connection plumbing ------------------------------------------------ */

static void
lg_want(lg_conn_t *c, uint32_t ev)
{
    struct epoll_event  e;

    if (c->fd < 0 || c->events == ev) {
        return;
    }

    memset(&e, 0, sizeof(e));
    e.events = ev;
    e.data.ptr = c;

    if (epoll_ctl(lg.ep, EPOLL_CTL_MOD, c->fd, &e) == 0) {
        c->events = ev;
    }
}


static int
lg_connect(lg_conn_t *c)
{
    struct epoll_event  e;
    int                 fd, one, rc;

    fd = socket(lg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0) {
        lg.err_connect++;
        return -1;
    }

    one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    rc = connect(fd, (struct sockaddr *) &lg.addr, lg.addrlen);
    if (rc < 0 && errno != EINPROGRESS) {
        close(fd);
        lg.err_connect++;
        return -1;
    }

    c->fd = fd;
    c->state = ST_CONNECTING;
    c->served = 0;
    c->ready = 0;
    c->events = EPOLLOUT;

    memset(&e, 0, sizeof(e));
    e.events = EPOLLOUT;
    e.data.ptr = c;

    if (epoll_ctl(lg.ep, EPOLL_CTL_ADD, fd, &e) < 0) {
        close(fd);
        c->fd = -1;
        c->state = ST_CLOSED;
        lg.err_connect++;
        return -1;
    }

    return 0;
}


static void
lg_close(lg_conn_t *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }

    if (c->fd >= 0) {
        epoll_ctl(lg.ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }

    c->state = ST_CLOSED;
    c->ready = 0;
    c->events = 0;
}


static int
lg_may_issue(uint64_t now, uint64_t end)
{
    if (interrupted) {
        return 0;
    }

    if (lg.nreq) {
        return lg.issued < lg.nreq;
    }

    return now < end;
}


/* a request failed: count it, drop the connection (a new one is opened by
 * the main loop when more requests are due) */
static void
lg_fail(lg_conn_t *c, uint64_t *counter)
{
    (*counter)++;

    if (counter == &lg.err_connect || counter == &lg.err_tls) {
        /* a failing connect is retried after a pause, not in a loop */
        c->retry_at = lg_now() + LG_RETRY_NS;
    }

    c->in_request = 0;
    lg_close(c);
}


/* ---- the state machine ------------------------------------------------- */

static void
lg_tls_start(lg_conn_t *c)
{
    c->ssl = SSL_new(lg.ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        lg_fail(c, &lg.err_tls);
        return;
    }

    if (!lg.host_is_ip) {
        SSL_set_tlsext_host_name(c->ssl, lg.host);
        if (lg.ca) {
            SSL_set1_host(c->ssl, lg.host);
        }

    } else if (lg.ca) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), lg.host);
    }

    SSL_set_connect_state(c->ssl);
    c->state = ST_HANDSHAKE;
}


static void
lg_response_done(lg_conn_t *c, uint64_t now)
{
    uint64_t  us;

    us = (now - c->t_start) / 1000;
    lg_hist_add(us);
    lg.done++;
    lg.body_bytes += c->body;
    if (c->status < 200 || c->status > 299) {
        lg.non2xx++;
    }

    if (lg.dumpf && !lg.dumped) {
        fclose(lg.dumpf);
        lg.dumpf = NULL;
    }
    lg.dumped = 1;

    c->served++;
    c->in_request = 0;
    c->retried = 0;
    c->state = ST_WRITING;      /* idle until the next request */

    if (c->close_after) {
        lg_close(c);
    }
}


static void
lg_body_bytes(lg_conn_t *c, const char *p, size_t n)
{
    c->body += n;

    if (lg.dumpf && !lg.dumped && n) {
        if (fwrite(p, 1, n, lg.dumpf) != n) {
            fclose(lg.dumpf);
            lg.dumpf = NULL;
        }
    }
}


/* parse the header block in c->head[0..hlen); returns 0 or -1 */
static int
lg_parse_head(lg_conn_t *c)
{
    char     *p, *end, *eol, *colon, *v;
    int64_t   clen;
    int       chunked, minor;

    end = c->head + c->hlen;

    if (c->hlen < 12 || strncmp(c->head, "HTTP/1.", 7) != 0) {
        return -1;
    }

    minor = c->head[7] - '0';
    if (c->head[8] != ' ' || c->head[9] < '1' || c->head[9] > '5') {
        return -1;
    }
    c->status = (c->head[9] - '0') * 100 + (c->head[10] - '0') * 10
                + (c->head[11] - '0');

    if (lg.verbose && !lg.shown) {
        fwrite(c->head, 1, c->hlen, stderr);
        lg.shown = 1;
    }

    clen = -1;
    chunked = 0;
    c->close_after = (minor == 0);

    p = memchr(c->head, '\n', c->hlen);
    if (p == NULL) {
        return -1;
    }
    p++;

    while (p < end) {
        eol = memchr(p, '\n', (size_t) (end - p));
        if (eol == NULL) {
            break;
        }

        colon = memchr(p, ':', (size_t) (eol - p));
        if (colon) {
            v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) {
                v++;
            }

            if ((size_t) (colon - p) == 14
                && strncasecmp(p, "content-length", 14) == 0)
            {
                char *q;
                errno = 0;
                clen = strtoll(v, &q, 10);
                if (errno || q == v || clen < 0) {
                    return -1;
                }

            } else if ((size_t) (colon - p) == 17
                       && strncasecmp(p, "transfer-encoding", 17) == 0)
            {
                if (memmem(v, (size_t) (eol - v), "chunked", 7)) {
                    chunked = 1;
                }

            } else if ((size_t) (colon - p) == 10
                       && strncasecmp(p, "connection", 10) == 0)
            {
                if (memmem(v, (size_t) (eol - v), "close", 5)) {
                    c->close_after = 1;

                } else if (memmem(v, (size_t) (eol - v), "keep-alive", 10)) {
                    c->close_after = 0;
                }
            }
        }

        p = eol + 1;
    }

    c->body = 0;

    if ((c->status >= 100 && c->status < 200) || c->status == 204
        || c->status == 304 || strcmp(lg.method, "HEAD") == 0)
    {
        c->remaining = 0;
        c->state = ST_BODY_LEN;

    } else if (chunked) {
        c->state = ST_CHUNK_SIZE;
        c->llen = 0;

    } else if (clen >= 0) {
        c->remaining = clen;
        c->state = ST_BODY_LEN;

    } else {
        c->state = ST_BODY_EOF;
        c->close_after = 1;
    }

    return 0;
}


/* feed received bytes; returns 0, 1 when the response ended, -1 on error */
static int
lg_consume(lg_conn_t *c, const char *p, size_t n, size_t *used)
{
    const char  *start, *end, *nl;
    size_t       k;

    start = p;
    end = p + n;

    while (p < end || (c->state == ST_BODY_LEN && c->remaining == 0)) {

        switch (c->state) {

        case ST_HEAD:
            /* find the end of the header block, bytes kept in c->head */
            k = (size_t) (end - p);
            if (k > LG_HEAD_MAX - c->hlen) {
                k = LG_HEAD_MAX - c->hlen;
            }
            if (k == 0) {
                return -1;      /* header block too large */
            }
            memcpy(c->head + c->hlen, p, k);
            {
                size_t  from, i;
                from = c->hlen > 3 ? c->hlen - 3 : 0;
                c->hlen += k;
                for (i = from; i + 3 < c->hlen; i++) {
                    if (c->head[i] == '\r' && c->head[i + 1] == '\n'
                        && c->head[i + 2] == '\r' && c->head[i + 3] == '\n')
                    {
                        size_t hl = i + 4;
                        p += k - (c->hlen - hl);
                        c->hlen = hl;
                        if (lg_parse_head(c) != 0) {
                            return -1;
                        }
                        goto next;
                    }
                }
            }
            p += k;
            break;

        case ST_BODY_LEN:
            k = (size_t) (end - p);
            if ((int64_t) k > c->remaining) {
                k = (size_t) c->remaining;
            }
            lg_body_bytes(c, p, k);
            p += k;
            c->remaining -= (int64_t) k;
            if (c->remaining == 0) {
                *used = (size_t) (p - start);
                return 1;
            }
            break;

        case ST_BODY_EOF:
            lg_body_bytes(c, p, (size_t) (end - p));
            p = end;
            break;

        case ST_CHUNK_SIZE:
        case ST_TRAILER:
            nl = memchr(p, '\n', (size_t) (end - p));
            k = nl ? (size_t) (nl - p) + 1 : (size_t) (end - p);
            if (c->llen + k > LG_LINE_MAX - 1) {
                return -1;
            }
            memcpy(c->line + c->llen, p, k);
            c->llen += k;
            p += k;
            if (nl == NULL) {
                break;
            }
            c->line[c->llen] = '\0';

            if (c->state == ST_TRAILER) {
                int empty = c->llen <= 2;
                c->llen = 0;
                if (empty) {
                    *used = (size_t) (p - start);
                    return 1;
                }
                break;
            }

            {
                char       *q;
                long long   sz;

                errno = 0;
                sz = strtoll(c->line, &q, 16);
                if (errno || q == c->line || sz < 0
                    || (*q != '\r' && *q != ';' && *q != ' ' && *q != '\n'))
                {
                    return -1;
                }
                c->llen = 0;
                c->remaining = sz;
                c->state = sz == 0 ? ST_TRAILER : ST_CHUNK_DATA;
            }
            break;

        case ST_CHUNK_DATA:
            k = (size_t) (end - p);
            if ((int64_t) k > c->remaining) {
                k = (size_t) c->remaining;
            }
            lg_body_bytes(c, p, k);
            p += k;
            c->remaining -= (int64_t) k;
            if (c->remaining == 0) {
                c->state = ST_CHUNK_CRLF;
                c->llen = 0;
            }
            break;

        case ST_CHUNK_CRLF:
            /* "\r\n" after the data; tolerate a bare "\n" */
            if (*p == '\n') {
                p++;
                c->state = ST_CHUNK_SIZE;
                c->llen = 0;

            } else if (*p == '\r' && c->llen == 0) {
                p++;
                c->llen = 1;

            } else {
                return -1;
            }
            break;

        default:
            return -1;
        }

    next:
        continue;
    }

    *used = (size_t) (p - start);
    return 0;
}


/* the server closed (or reset) a kept-alive connection before a byte of
 * the answer came: the usual keepalive race.  Retry the request once on a
 * new connection; returns 1 if it did. */
static int
lg_retry(lg_conn_t *c)
{
    uint64_t  t, dl;

    if (c->served == 0 || c->retried || c->hlen != 0
        || (c->state != ST_HEAD && c->state != ST_WRITING))
    {
        return 0;
    }

    t = c->t_start;
    dl = c->deadline;
    lg_close(c);
    lg.reconnects++;

    if (lg_connect(c) != 0) {
        c->in_request = 0;
        return 1;               /* counted as a connect error */
    }

    c->retried = 1;
    c->in_request = 1;
    c->t_start = t;
    c->deadline = dl;
    return 1;
}


static void
lg_io_error(lg_conn_t *c)
{
    if (!lg_retry(c)) {
        lg_fail(c, &lg.err_io);
    }
}


static void
lg_on_eof(lg_conn_t *c, uint64_t now)
{
    if (c->state == ST_BODY_EOF) {
        lg_response_done(c, now);
        lg_close(c);
        return;
    }

    lg_io_error(c);
}


static void
lg_do_read(lg_conn_t *c, uint64_t now)
{
    ssize_t  n;
    size_t   used, off;
    int      i, rc, err;

    c->ready = 0;

    for (i = 0; i < LG_READS_PER_EVENT; i++) {

        if (c->ssl) {
            ERR_clear_error();
            n = SSL_read(c->ssl, rbuf, sizeof(rbuf));
            if (n <= 0) {
                err = SSL_get_error(c->ssl, (int) n);
                if (err == SSL_ERROR_WANT_READ) {
                    lg_want(c, EPOLLIN);
                    return;
                }
                if (err == SSL_ERROR_WANT_WRITE) {
                    lg_want(c, EPOLLOUT);
                    return;
                }
                if (err == SSL_ERROR_ZERO_RETURN
                    || (err == SSL_ERROR_SYSCALL && n == 0))
                {
                    lg_on_eof(c, now);
                    return;
                }
                lg_io_error(c);
                return;
            }

        } else {
            n = read(c->fd, rbuf, sizeof(rbuf));
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    lg_want(c, EPOLLIN);
                    return;
                }
                lg_io_error(c);
                return;
            }
            if (n == 0) {
                lg_on_eof(c, now);
                return;
            }
        }

        if (!c->in_request) {
            /* bytes nobody asked for */
            lg_fail(c, &lg.err_parse);
            return;
        }

        off = 0;
        while (off < (size_t) n) {
            rc = lg_consume(c, rbuf + off, (size_t) n - off, &used);
            if (rc < 0) {
                lg_fail(c, &lg.err_parse);
                return;
            }
            off += used;
            if (rc == 1) {
                lg_response_done(c, now);
                if (off < (size_t) n) {
                    /* pipelining is not used: extra bytes are an error */
                    lg_fail(c, &lg.err_parse);
                }
                return;
            }
            if (used == 0) {
                break;
            }
        }
    }

    /* more may be buffered in OpenSSL or the socket: come back without
     * waiting for an event, after the others had their turn */
    c->ready = 1;
}


static void
lg_do_write(lg_conn_t *c)
{
    ssize_t  n;
    int      err;

    while (c->wpos < lg.reqlen) {
        if (c->ssl) {
            ERR_clear_error();
            n = SSL_write(c->ssl, lg.req + c->wpos,
                          (int) (lg.reqlen - c->wpos));
            if (n <= 0) {
                err = SSL_get_error(c->ssl, (int) n);
                if (err == SSL_ERROR_WANT_WRITE) {
                    lg_want(c, EPOLLOUT);
                    return;
                }
                if (err == SSL_ERROR_WANT_READ) {
                    lg_want(c, EPOLLIN);
                    return;
                }
                lg_io_error(c);
                return;
            }

        } else {
            n = write(c->fd, lg.req + c->wpos, lg.reqlen - c->wpos);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    lg_want(c, EPOLLOUT);
                    return;
                }
                lg_io_error(c);
                return;
            }
        }

        c->wpos += (size_t) n;
    }

    c->state = ST_HEAD;
    c->hlen = 0;
    lg_want(c, EPOLLIN);
}


static void
lg_start_request(lg_conn_t *c, uint64_t now)
{
    c->wpos = 0;
    c->hlen = 0;
    c->body = 0;
    c->in_request = 1;
    c->t_start = now;
    c->deadline = now + (uint64_t) (lg.timeout * 1e9);
    c->state = ST_WRITING;
    lg.issued++;
    lg_do_write(c);
}


static void
lg_handle(lg_conn_t *c, uint32_t ev, uint64_t now)
{
    int  rc, err, soerr;

    switch (c->state) {

    case ST_CONNECTING:
        soerr = 0;
        {
            socklen_t sl = sizeof(soerr);
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        }
        if (soerr != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
            lg_fail(c, &lg.err_connect);
            return;
        }
        if (lg.tls) {
            lg_tls_start(c);
            if (c->state != ST_HANDSHAKE) {
                return;
            }
            /* fall through to the handshake */

        } else {
            c->state = ST_WRITING;
            if (c->in_request) {
                c->wpos = 0;
                lg_do_write(c);
            }
            return;
        }
        /* fall through */

    case ST_HANDSHAKE:
        ERR_clear_error();
        rc = SSL_do_handshake(c->ssl);
        if (rc == 1) {
            c->state = ST_WRITING;
            if (c->in_request) {
                c->wpos = 0;
                lg_do_write(c);
            }
            return;
        }
        err = SSL_get_error(c->ssl, rc);
        if (err == SSL_ERROR_WANT_READ) {
            lg_want(c, EPOLLIN);
            return;
        }
        if (err == SSL_ERROR_WANT_WRITE) {
            lg_want(c, EPOLLOUT);
            return;
        }
        if (lg.err_tls == 0) {
            fprintf(stderr, "loadgen: TLS handshake failed\n");
            ERR_print_errors_fp(stderr);
        }
        lg_fail(c, &lg.err_tls);
        return;

    case ST_WRITING:
        if (c->in_request) {
            lg_do_write(c);

        } else if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            /* an idle connection the server closed (or sent junk on) */
            lg_close(c);
        }
        return;

    case ST_CLOSED:
        return;

    default:
        lg_do_read(c, now);
        return;
    }
}


/* ---- main ------------------------------------------------------------- */

static int
lg_parse_args(int argc, char **argv)
{
    int          i;
    const char  *url;

    lg.conns = 16;
    lg.duration = -1;
    lg.timeout = 30;
    lg.method = "GET";
    url = NULL;

#define NEXT()                                                              \
    do {                                                                    \
        if (++i >= argc) {                                                  \
            fprintf(stderr, "loadgen: %s needs a value\n", argv[i - 1]);    \
            return -1;                                                      \
        }                                                                   \
    } while (0)

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "-c") == 0) {
            NEXT();
            lg.conns = atoi(argv[i]);

        } else if (strcmp(a, "-d") == 0) {
            NEXT();
            lg.duration = atof(argv[i]);

        } else if (strcmp(a, "-n") == 0) {
            NEXT();
            lg.nreq = strtoull(argv[i], NULL, 10);
            if (lg.nreq == 0) {
                fprintf(stderr, "loadgen: -n must be > 0\n");
                return -1;
            }

        } else if (strcmp(a, "-H") == 0) {
            NEXT();
            if (lg.nheaders >= LG_MAX_HEADERS
                || strchr(argv[i], ':') == NULL
                || strpbrk(argv[i], "\r\n"))
            {
                fprintf(stderr, "loadgen: bad or too many -H\n");
                return -1;
            }
            lg.headers[lg.nheaders++] = argv[i];

        } else if (strcmp(a, "-m") == 0) {
            NEXT();
            lg.method = argv[i];

        } else if (strcmp(a, "-t") == 0) {
            NEXT();
            lg.timeout = atof(argv[i]);

        } else if (strcmp(a, "--cert") == 0) {
            NEXT();
            lg.cert = argv[i];

        } else if (strcmp(a, "--key") == 0) {
            NEXT();
            lg.key = argv[i];

        } else if (strcmp(a, "--ca") == 0) {
            NEXT();
            lg.ca = argv[i];

        } else if (strcmp(a, "-D") == 0) {
            NEXT();
            lg.dump = argv[i];

        } else if (strcmp(a, "-v") == 0) {
            lg.verbose = 1;

        } else if (strcmp(a, "--drain") == 0) {
            lg.drain = 1;

        } else if (strcmp(a, "-q") == 0) {
            lg.quiet = 1;

        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            lg_usage();
            exit(0);

        } else if (a[0] == '-') {
            fprintf(stderr, "loadgen: unknown option %s\n", a);
            return -1;

        } else if (url == NULL) {
            url = a;

        } else {
            fprintf(stderr, "loadgen: one URL only\n");
            return -1;
        }
    }

#undef NEXT

    if (url == NULL) {
        return -1;
    }

    if (lg.conns < 1 || lg.conns > LG_MAX_CONNS) {
        fprintf(stderr, "loadgen: -c must be 1..%d\n", LG_MAX_CONNS);
        return -1;
    }

    if (lg.timeout <= 0 || lg.timeout > 3600) {
        fprintf(stderr, "loadgen: -t must be in (0, 3600]\n");
        return -1;
    }

    if (lg.duration < 0) {
        lg.duration = lg.nreq ? 0 : 5;
    }

    if (lg.duration > 86400) {
        fprintf(stderr, "loadgen: -d too large\n");
        return -1;
    }

    if (lg.nreq && (uint64_t) lg.conns > lg.nreq) {
        lg.conns = (int) lg.nreq;
    }

    return lg_parse_url(url);
}


int
main(int argc, char **argv)
{
    struct epoll_event  evs[256];
    struct sigaction    sa;
    uint64_t            t0, now, end, hard_end, elapsed_ns, errors;
    lg_conn_t          *c;
    int                 i, n, any_ready, timeout_ms;
    double              secs;

    if (lg_parse_args(argc, argv) != 0) {
        lg_usage();
        return 1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = lg_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (lg_resolve() != 0 || lg_build_request() != 0) {
        return 1;
    }

    if (lg.tls && lg_tls_init() != 0) {
        return 1;
    }

    if (lg.dump) {
        lg.dumpf = fopen(lg.dump, "wb");
        if (lg.dumpf == NULL) {
            perror(lg.dump);
            return 1;
        }
    }

    conns = calloc((size_t) lg.conns, sizeof(lg_conn_t));
    if (conns == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }

    lg.ep = epoll_create1(EPOLL_CLOEXEC);
    if (lg.ep < 0) {
        perror("epoll_create1");
        return 1;
    }

    for (i = 0; i < lg.conns; i++) {
        conns[i].fd = -1;
    }

    t0 = lg_now();
    end = t0 + (uint64_t) (lg.duration * 1e9);

    /* with -n and no -d, stop anyway after n * timeout: a hard bound */
    if (lg.nreq && lg.duration == 0) {
        double cap = (double) lg.nreq * lg.timeout + 10;
        if (cap > 86400) {
            cap = 86400;
        }
        hard_end = t0 + (uint64_t) (cap * 1e9);

    } else {
        hard_end = end;
    }

    for ( ;; ) {
        now = lg_now();

        if (interrupted || now >= hard_end) {
            break;
        }

        if (lg.nreq && lg.done + lg.err_connect + lg.err_tls + lg.err_io
                       + lg.err_parse + lg.err_timeout >= lg.nreq
            && lg.issued >= lg.nreq)
        {
            break;
        }

        if (lg.nreq && lg.duration > 0 && now >= end) {
            break;
        }

        /* keep every connection busy: open, or start the next request */
        for (i = 0; i < lg.conns; i++) {
            c = &conns[i];

            if (c->in_request) {
                if (now > c->deadline) {
                    lg_fail(c, &lg.err_timeout);
                }
                continue;
            }

            if (!lg_may_issue(now, end)) {
                continue;
            }

            if (c->state == ST_CLOSED) {
                if (now < c->retry_at) {
                    continue;
                }
                if (c->served > 0 || lg.done > 0) {
                    lg.reconnects++;
                }
                if (lg_connect(c) != 0) {
                    lg.issued++;    /* the failed attempt counts */
                    c->retry_at = now + LG_RETRY_NS;
                    continue;
                }
                c->in_request = 1;
                c->t_start = now;
                c->deadline = now + (uint64_t) (lg.timeout * 1e9);
                lg.issued++;
                continue;
            }

            if (c->state == ST_WRITING) {
                lg_start_request(c, now);
            }
        }

        if (!lg.nreq && now >= end) {
            if (!lg.drain) {
                break;
            }
            /* --drain: let the requests in flight finish (or time out) */
            for (i = 0; i < lg.conns; i++) {
                if (conns[i].in_request) {
                    break;
                }
            }
            if (i == lg.conns) {
                break;
            }
        }

        any_ready = 0;
        for (i = 0; i < lg.conns; i++) {
            if (conns[i].ready) {
                any_ready = 1;
                break;
            }
        }

        timeout_ms = any_ready ? 0 : 20;
        n = epoll_wait(lg.ep, evs, 256, timeout_ms);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            break;
        }

        now = lg_now();

        for (i = 0; i < n; i++) {
            c = evs[i].data.ptr;
            c->ready = 0;
            lg_handle(c, evs[i].events, now);
        }

        for (i = 0; i < lg.conns; i++) {
            c = &conns[i];
            if (c->ready && c->fd >= 0) {
                lg_handle(c, 0, now);
            }
        }
    }

    now = lg_now();
    elapsed_ns = now - t0;
    if (!lg.nreq && !lg.drain && lg.duration > 0
        && elapsed_ns > (uint64_t) (lg.duration * 1e9))
    {
        /* responses finished after the deadline are not counted past it */
        elapsed_ns = (uint64_t) (lg.duration * 1e9);
    }
    secs = (double) elapsed_ns / 1e9;
    if (secs <= 0) {
        secs = 1e-9;
    }

    for (i = 0; i < lg.conns; i++) {
        if (conns[i].in_request && lg.nreq) {
            lg.err_timeout++;   /* asked for, never answered */
        }
        lg_close(&conns[i]);
    }

    if (lg.dumpf) {
        fclose(lg.dumpf);
    }

    errors = lg.err_connect + lg.err_tls + lg.err_io + lg.err_parse
             + lg.err_timeout;

    if (!lg.quiet) {
        printf("%s %s%s%s:%s%s  %d connections%s%s\n",
               lg.method, lg.tls ? "https://" : "http://",
               strchr(lg.host, ':') ? "[" : "", lg.host,
               lg.port, lg.path, lg.conns,
               lg.tls && lg.cert ? ", client certificate" : "",
               interrupted ? " (interrupted)" : "");
        printf("  requests   %llu in %.2f s = %.1f req/s\n",
               (unsigned long long) lg.done, secs, (double) lg.done / secs);
        printf("  body       %.1f MB = %.1f MB/s\n",
               (double) lg.body_bytes / 1e6,
               (double) lg.body_bytes / 1e6 / secs);
        printf("  latency    p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  "
               "max %.2f ms\n",
               lg_hist_pct(0.50) / 1000.0, lg_hist_pct(0.90) / 1000.0,
               lg_hist_pct(0.99) / 1000.0, lg.max_us / 1000.0);
        printf("  errors     %llu (connect %llu, tls %llu, io %llu, "
               "parse %llu, timeout %llu)  non-2xx %llu  reconnects %llu\n",
               (unsigned long long) errors,
               (unsigned long long) lg.err_connect,
               (unsigned long long) lg.err_tls,
               (unsigned long long) lg.err_io,
               (unsigned long long) lg.err_parse,
               (unsigned long long) lg.err_timeout,
               (unsigned long long) lg.non2xx,
               (unsigned long long) lg.reconnects);
    }

    printf("RESULT reqs=%llu secs=%.3f rps=%.1f mbps=%.2f p50_us=%llu "
           "p90_us=%llu p99_us=%llu max_us=%llu errors=%llu non2xx=%llu "
           "reconnects=%llu body_bytes=%llu\n",
           (unsigned long long) lg.done, secs, (double) lg.done / secs,
           (double) lg.body_bytes / 1e6 / secs,
           (unsigned long long) lg_hist_pct(0.50),
           (unsigned long long) lg_hist_pct(0.90),
           (unsigned long long) lg_hist_pct(0.99),
           (unsigned long long) lg.max_us,
           (unsigned long long) errors,
           (unsigned long long) lg.non2xx,
           (unsigned long long) lg.reconnects,
           (unsigned long long) lg.body_bytes);

    if (lg.ctx) {
        SSL_CTX_free(lg.ctx);
    }
    free(conns);
    free(lg.req);

    if (lg.done == 0) {
        return 1;
    }

    return errors ? 2 : 0;
}
