
/*
 * datagate: the status page (datagate_status, ?format=html).
 *
 * One self-contained HTML document, module/status/status.html, embedded
 * as a C string that module/config generates at build time
 * (ngx_http_datagate_status_page.h in nginx's objs/).  The page reads the
 * JSON of its own location every few seconds.  It is sent with a
 * Content-Security-Policy that allows nothing but its own inline style
 * and script (by their SHA-256, computed here once per worker from the
 * embedded text) and fetches from its own origin: no external script,
 * style, font, image or connection can run from it, whatever a label
 * holds (the script writes labels with textContent only).
 */


#include "ngx_http_datagate.h"

#include <openssl/evp.h>

#include "ngx_http_datagate_status_page.h"


#define NGX_HTTP_DATAGATE_CSP_HASH_LEN   ngx_base64_encoded_length(      \
                                             DG_SHA256_LEN)
#define NGX_HTTP_DATAGATE_Q_MAX          1000    /* q=1 in thousandths */


static ngx_int_t ngx_http_datagate_page_csp(ngx_log_t *log);
static ngx_int_t ngx_http_datagate_page_hash(ngx_log_t *log,
    const char *open, const char *close, u_char *out);
static ngx_int_t ngx_http_datagate_page_header(ngx_http_request_t *r,
    const char *name, size_t nlen, u_char *value, size_t vlen);
static ngx_uint_t ngx_http_datagate_accept_q(u_char *p, u_char *end);


/* "Content-Security-Policy" of the page, once per worker */
static u_char      ngx_http_datagate_csp[512];
static size_t      ngx_http_datagate_csp_len;


ngx_int_t
ngx_http_datagate_status_page(ngx_http_request_t *r)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ngx_http_datagate_csp_len == 0
        && ngx_http_datagate_page_csp(r->connection->log) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = sizeof(ngx_http_datagate_status_html)
                                      - 1;
    ngx_str_set(&r->headers_out.content_type, "text/html; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    if (ngx_http_datagate_page_header(r, "Content-Security-Policy", 23,
                                      ngx_http_datagate_csp,
                                      ngx_http_datagate_csp_len)
        != NGX_OK
        || ngx_http_datagate_page_header(r, "X-Content-Type-Options", 22,
                                         (u_char *) "nosniff", 7)
           != NGX_OK
        || ngx_http_datagate_page_header(r, "X-Frame-Options", 15,
                                         (u_char *) "DENY", 4)
           != NGX_OK
        || ngx_http_datagate_page_header(r, "Referrer-Policy", 15,
                                         (u_char *) "no-referrer", 11)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the page is read-only data of the module */
    b->pos = (u_char *) ngx_http_datagate_status_html;
    b->last = b->pos + sizeof(ngx_http_datagate_status_html) - 1;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * Without ?format=: the page for a client that prefers text/html to
 * application/json in its Accept header (a browser), JSON otherwise (a
 * wildcard or no Accept, curl, a monitoring agent)
 */
ngx_uint_t
ngx_http_datagate_status_wants_html(ngx_http_request_t *r)
{
    u_char           *p, *end, *range, *semi;
    size_t            len;
    ngx_uint_t        q, html, json;
    ngx_table_elt_t  *h;

    h = ngx_http_datagate_find_header(&r->headers_in.headers, "Accept",
                                      sizeof("Accept") - 1);
    if (h == NULL) {
        return 0;
    }

    html = 0;
    json = 0;

    p = h->value.data;
    end = p + h->value.len;

    while (p < end) {
        range = p;

        while (p < end && *p != ',') {
            p++;
        }

        /* "type/subtype" [";" params], spaces around */

        semi = ngx_strlchr(range, p, ';');

        while (range < p && (*range == ' ' || *range == '\t')) {
            range++;
        }

        len = (semi ? semi : p) - range;

        while (len && (range[len - 1] == ' ' || range[len - 1] == '\t')) {
            len--;
        }

        q = semi ? ngx_http_datagate_accept_q(semi, p)
                 : NGX_HTTP_DATAGATE_Q_MAX;

        if (len == sizeof("text/html") - 1
            && ngx_strncasecmp(range, (u_char *) "text/html", len) == 0)
        {
            html = ngx_max(html, q);

        } else if (len == sizeof("application/json") - 1
                   && ngx_strncasecmp(range, (u_char *) "application/json",
                                      len) == 0)
        {
            json = ngx_max(json, q);
        }

        p++;
    }

    return html > json;
}


/* the q of a media range's parameters (";q=0.8"), in thousandths */
static ngx_uint_t
ngx_http_datagate_accept_q(u_char *p, u_char *end)
{
    ngx_uint_t  q, scale;

    for ( /* void */ ; p + 2 < end; p++) {
        if ((p[0] != ';' && p[0] != ' ') || (p[1] != 'q' && p[1] != 'Q')
            || p[2] != '=')
        {
            continue;
        }

        p += 3;

        if (p < end && *p == '1') {
            return NGX_HTTP_DATAGATE_Q_MAX;
        }

        if (p >= end || *p != '0') {
            return 0;
        }

        p++;
        q = 0;

        if (p < end && *p == '.') {
            for (p++, scale = 100; p < end && scale && *p >= '0' && *p <= '9';
                 p++, scale /= 10)
            {
                q += (*p - '0') * scale;
            }
        }

        return q;
    }

    return NGX_HTTP_DATAGATE_Q_MAX;
}


static ngx_int_t
ngx_http_datagate_page_header(ngx_http_request_t *r, const char *name,
    size_t nlen, u_char *value, size_t vlen)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = nlen;
    h->value.data = value;
    h->value.len = vlen;

    return NGX_OK;
}


/* the policy: the page's own style and script by hash, JSON from itself */
static ngx_int_t
ngx_http_datagate_page_csp(ngx_log_t *log)
{
    u_char  *p, style[NGX_HTTP_DATAGATE_CSP_HASH_LEN];
    u_char   script[NGX_HTTP_DATAGATE_CSP_HASH_LEN];

    if (ngx_http_datagate_page_hash(log, "<style>", "</style>", style)
        != NGX_OK
        || ngx_http_datagate_page_hash(log, "<script>", "</script>", script)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_snprintf(ngx_http_datagate_csp, sizeof(ngx_http_datagate_csp),
                     "default-src 'none'; style-src 'sha256-%*s'; "
                     "script-src 'sha256-%*s'; connect-src 'self'; "
                     "img-src 'none'; font-src 'none'; base-uri 'none'; "
                     "form-action 'none'; frame-ancestors 'none'",
                     (size_t) NGX_HTTP_DATAGATE_CSP_HASH_LEN, style,
                     (size_t) NGX_HTTP_DATAGATE_CSP_HASH_LEN, script);

    ngx_http_datagate_csp_len = p - ngx_http_datagate_csp;

    return NGX_OK;
}


/* base64 of the SHA-256 of the text between the first open and close */
static ngx_int_t
ngx_http_datagate_page_hash(ngx_log_t *log, const char *open,
    const char *close, u_char *out)
{
    u_char     *s, *e, *end, md[DG_SHA256_LEN];
    ngx_str_t   src, dst;

    s = (u_char *) ngx_http_datagate_status_html;
    end = s + sizeof(ngx_http_datagate_status_html) - 1;

    s = ngx_strlcasestrn(s, end, (u_char *) open, ngx_strlen(open) - 1);
    if (s != NULL) {
        s += ngx_strlen(open);
        e = ngx_strlcasestrn(s, end, (u_char *) close,
                             ngx_strlen(close) - 1);
    } else {
        e = NULL;
    }

    if (s == NULL || e == NULL
        || EVP_Digest(s, e - s, md, NULL, EVP_sha256(), NULL) != 1)
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "datagate: the status page has no %s", open);
        return NGX_ERROR;
    }

    src.data = md;
    src.len = DG_SHA256_LEN;
    dst.data = out;

    ngx_encode_base64(&dst, &src);

    return NGX_OK;
}
