
/*
 * datagate: what a request to an enforced location may look like.
 *
 * Its path: nginx chose the location, and so the dataset, from its own
 * normalised form of the path, while the provider normalises the form it
 * receives in its own way; a path on which the two may disagree (dot
 * segments, ";" parameters, encoded separators: dg_path.h) is refused.
 * Both forms are checked: the path as the client sent it (what proxy_pass
 * without a URI part forwards) and nginx's r->uri (what proxy_pass with a
 * URI part, or a rewrite, forwards).
 *
 * Its headers: each request header datagate reads (Data-Purpose,
 * Data-Approval, Datagate-Request-Id) must appear at most once, whatever
 * the values, and spelled with hyphens: the gateway decides on one value,
 * and the provider must not receive another one beside it (it would join
 * or pick them by its own rules; CGI-style servers read "Data_Purpose" as
 * "Data-Purpose").
 *
 * Its methods: the method it is sent with and every one it names for a
 * framework behind the gateway to take instead (X-HTTP-Method-Override,
 * "_method", ...); the decision needs all of them allowed.
 */


#include "ngx_http_datagate.h"
#include "dg_path.h"


/* "_method" in a query: the longest encoded key that can decode to it,
 * and the longest value looked at (longer: not a method, refused) */
#define NGX_HTTP_DATAGATE_OVERRIDE_KEY     (3 * (sizeof("_method") - 1) + 1)
#define NGX_HTTP_DATAGATE_OVERRIDE_VALUE   (3 * 4 * DG_METHOD_NAME_MAX)


static ngx_int_t ngx_http_datagate_check_path(ngx_http_request_t *r,
    u_char *path, size_t len, const char **detail);
static ngx_int_t ngx_http_datagate_check_headers(ngx_http_request_t *r,
    const char **detail);
static unsigned ngx_http_datagate_method_value(const dg_policy_t *p,
    u_char *v, size_t len);


/* the request headers datagate reads: once each, with hyphens */
static ngx_str_t  ngx_http_datagate_single_headers[] = {
    ngx_string("Data-Purpose"),
    ngx_string("Data-Approval"),
    ngx_string("Datagate-Request-Id"),
    ngx_null_string
};


ngx_int_t
ngx_http_datagate_request_check(ngx_http_request_t *r, const char **detail)
{
    size_t     len;
    u_char    *q;
    ngx_int_t  rc;

    *detail = NULL;

    /* as sent: the path without the query string */

    len = r->unparsed_uri.len;
    q = ngx_strlchr(r->unparsed_uri.data, r->unparsed_uri.data + len, '?');

    if (q) {
        len = q - r->unparsed_uri.data;
    }

    rc = ngx_http_datagate_check_path(r, r->unparsed_uri.data, len, detail);
    if (rc != NGX_OK) {
        return rc;
    }

    /* as nginx normalised (or a rewrite set) it */

    rc = ngx_http_datagate_check_path(r, r->uri.data, r->uri.len, detail);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_datagate_check_headers(r, detail);
}


static ngx_int_t
ngx_http_datagate_check_path(ngx_http_request_t *r, u_char *path, size_t len,
    const char **detail)
{
    u_char     *scratch;
    dg_path_e   rc;

    scratch = NULL;

    if (len && ngx_strlchr(path, path + len, '%')) {
        scratch = ngx_pnalloc(r->pool, len);
        if (scratch == NULL) {
            return NGX_ERROR;
        }
    }

    rc = dg_path_check(path, len, scratch);

    if (rc == DG_PATH_OK) {
        return NGX_OK;
    }

    *detail = dg_path_problem(rc);

    return NGX_DECLINED;
}


/*
 * How often a header of headers_in named name appears, counting names
 * that differ only in case or in '_' for '-'; *underscore is set when one
 * of them has a '_'.
 */

ngx_uint_t
ngx_http_datagate_header_count(ngx_list_t *headers, ngx_str_t *name,
    ngx_uint_t *underscore)
{
    u_char                      a, b;
    ngx_uint_t                  k, n, us;
    ngx_table_elt_t            *h;
    ngx_http_datagate_hiter_t   hi;

    n = 0;

    if (underscore) {
        *underscore = 0;
    }

    for (h = ngx_http_datagate_header_first(&hi, headers);
         h != NULL;
         h = ngx_http_datagate_header_next(&hi))
    {
        if (h->hash == 0 || h->key.len != name->len) {
            continue;
        }

        us = 0;

        for (k = 0; k < name->len; k++) {
            a = ngx_tolower(h->key.data[k]);
            b = ngx_tolower(name->data[k]);

            if (a == '_') {
                a = '-';
                us = 1;
            }

            if (a != b) {
                break;
            }
        }

        if (k < name->len) {
            continue;
        }

        n++;

        if (us && underscore) {
            *underscore = 1;
        }
    }

    return n;
}


static ngx_int_t
ngx_http_datagate_check_headers(ngx_http_request_t *r, const char **detail)
{
    u_char      *p;
    size_t       size;
    ngx_str_t   *name;
    ngx_uint_t   n, underscore;

    for (name = ngx_http_datagate_single_headers; name->len; name++) {

        n = ngx_http_datagate_header_count(&r->headers_in.headers, name,
                                           &underscore);

        if (n <= 1 && !underscore) {
            continue;
        }

        size = sizeof("the header \"\" is sent more than once") + name->len;

        p = ngx_pnalloc(r->pool, size);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (n > 1) {
            ngx_snprintf(p, size, "the header \"%V\" is sent more than "
                         "once%Z", name);

        } else {
            ngx_snprintf(p, size, "the header \"%V\" is spelled with "
                         "\"_\"%Z", name);
        }

        *detail = (const char *) p;

        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * Method overrides: frameworks behind the gateway may take the method from
 * a header (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override:
 * Rack, Express, ASP.NET, Symfony) or a "_method" parameter (Spring's
 * HiddenHttpMethodFilter, Laravel, Rack); PHP reads ".method", " method"
 * and "[method" as "_method", a CGI gateway "_" in a header name as "-".
 * The bits of every method so named (each comma-separated item, in upper
 * case as the frameworks take it); the decision needs them all allowed.
 * A "_method" in a form body is not seen: docs/nginx.md.
 */
unsigned
ngx_http_datagate_method_overrides(ngx_http_request_t *r,
    const dg_policy_t *p)
{
    u_char                     *a, *end, *k, *e, *q, c;
    size_t                      n, j, klen;
    unsigned                    bits;
    ngx_table_elt_t            *h;
    ngx_http_datagate_hiter_t   hi;
    u_char                      key[NGX_HTTP_DATAGATE_OVERRIDE_KEY];
    u_char                      val[NGX_HTTP_DATAGATE_OVERRIDE_VALUE];

    static const char  *names[] = { "x-http-method-override",
                                    "x-http-method", "x-method-override" };

    bits = 0;

    for (h = ngx_http_datagate_header_first(&hi, &r->headers_in.headers);
         h != NULL;
         h = ngx_http_datagate_header_next(&hi))
    {
        for (n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
            if (h->key.len != ngx_strlen(names[n])) {
                continue;
            }

            for (j = 0; j < h->key.len; j++) {
                c = ngx_tolower(h->key.data[j]);
                if (c != (u_char) names[n][j]
                    && !(c == '_' && names[n][j] == '-'))
                {
                    break;
                }
            }

            if (j == h->key.len) {
                bits |= ngx_http_datagate_method_value(p, h->value.data,
                                                       h->value.len);
            }
        }
    }

    /* "_method" in the query: each parameter, key and value decoded */

    a = r->args.data;
    end = a + r->args.len;

    while (a != NULL && a < end) {
        for (e = a; e < end && *e != '&' && *e != ';'; e++) {
            /* void */
        }

        for (k = a; k < e && *k != '='; k++) {
            /* void */
        }

        klen = k - a;

        if (klen >= sizeof("_method") - 1 && klen < sizeof(key)) {
            q = key;
            for (j = 0; j < klen; j++) {
                *q++ = a[j] == '+' ? ' ' : a[j];
            }

            k = key;
            q = key;
            ngx_unescape_uri(&q, &k, klen, NGX_UNESCAPE_URI);
            klen = q - key;

            for (j = 0; j < klen; j++) {
                c = ngx_tolower(key[j]);
                key[j] = (c == ' ' || c == '.' || c == '[') ? '_' : c;
            }

            if (klen == sizeof("_method") - 1
                && ngx_strncmp(key, "_method", klen) == 0)
            {
                for (k = a; k < e && *k != '='; k++) {
                    /* void */
                }

                n = k < e ? (size_t) (e - k - 1) : 0;

                if (n >= sizeof(val)) {
                    bits |= DG_METHOD_OTHER;

                } else if (n > 0) {
                    q = val;
                    for (j = 0; j < n; j++) {
                        *q++ = k[1 + j] == '+' ? ' ' : k[1 + j];
                    }

                    k = val;
                    q = val;
                    ngx_unescape_uri(&q, &k, n, NGX_UNESCAPE_URI);
                    bits |= ngx_http_datagate_method_value(p, val, q - val);
                }
            }
        }

        a = e + 1;
    }

    return bits;
}


/* "delete, PUT" -> the bits of DELETE and PUT; DG_METHOD_OTHER for a name
 * no dataset of p allows by that name */
static unsigned
ngx_http_datagate_method_value(const dg_policy_t *p, u_char *v, size_t len)
{
    u_char    *end, *s, *t;
    size_t     j;
    unsigned   bits;
    u_char     name[DG_METHOD_NAME_MAX];

    bits = 0;
    end = v + len;

    while (v < end) {
        for (s = v; s < end && *s != ','; s++) {
            /* void */
        }

        t = s;

        while (v < t && (*v == ' ' || *v == '\t')) {
            v++;
        }

        while (t > v && (t[-1] == ' ' || t[-1] == '\t')) {
            t--;
        }

        if (t - v > DG_METHOD_NAME_MAX) {
            bits |= DG_METHOD_OTHER;

        } else if (t > v) {
            for (j = 0; j < (size_t) (t - v); j++) {
                name[j] = ngx_toupper(v[j]);
            }

            bits |= dg_policy_method_bit(p, (const char *) name, t - v);
        }

        v = s + 1;
    }

    return bits;
}
