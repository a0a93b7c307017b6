
/*
 * datagate: who is asking, and from where.
 *
 * The consumer: the client certificate verified in the TLS handshake,
 * counted only when the request's server{} is the one whose context
 * verified it, matched against the policy's consumers (the result kept
 * with the connection, in the SSL object's ex_data).  The client address
 * the network and geo rules see: the TCP peer, or the client a trusted
 * proxy forwards (datagate_real_ip_from, datagate_real_ip_header).
 */


#include "ngx_http_datagate.h"
#include "dg_dn.h"
#include "dg_util.h"

#include <openssl/evp.h>
#include <openssl/x509v3.h>


#define NGX_HTTP_DATAGATE_MAX_SANS         32
#define NGX_HTTP_DATAGATE_SERIAL_MAX       160     /* sign + hex digits */
#define NGX_HTTP_DATAGATE_FORWARDED_MAX    64      /* hops in a header */


/* identity of a TLS connection, cached in the SSL object's ex_data */
typedef struct {
    const dg_policy_t              *policy;
    const dg_consumer_t            *consumer;   /* NULL: unknown */
    ngx_str_t                       serial;
} ngx_http_datagate_conn_id_t;


/* one hop named in a forwarding header */
typedef struct {
    u_char                         *data;
    size_t                          len;
} ngx_http_datagate_hop_t;


#if (NGX_HTTP_SSL)
static ngx_http_datagate_conn_id_t *ngx_http_datagate_cert_identity(
    ngx_http_request_t *r, ngx_http_datagate_main_conf_t *dmcf, X509 *cert);
#endif
static struct sockaddr *ngx_http_datagate_forwarded(ngx_http_request_t *r,
    ngx_http_datagate_loc_conf_t *dlcf);
static struct sockaddr *ngx_http_datagate_parse_hop(ngx_http_request_t *r,
    u_char *p, size_t len);


/* the ex_data index of the identity in SSL objects: OpenSSL's, for the
 * whole process, taken once (not a setting: it outlives reloads) */
static int  ngx_http_datagate_ssl_index = -1;


/* ---- identity ------------------------------------------------------- */

dg_reason_e
ngx_http_datagate_identify(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, ngx_http_datagate_ctx_t *ctx)
{
#if (NGX_HTTP_SSL)

    X509                         *cert;
    ngx_int_t                     rc;
    ngx_connection_t             *c;
    ngx_http_datagate_conn_id_t  *id;

    c = r->connection;

    if (c->ssl == NULL || c->ssl->connection == NULL) {
        return DG_R_CLIENT_CERT_REQUIRED;
    }

    if (ngx_http_datagate_ssl_bound(r) != NGX_OK) {
        ctx->detail = NGX_HTTP_DATAGATE_SSL_UNBOUND;

        /* the audit record names the certificate all the same */
        cert = SSL_get_peer_certificate(c->ssl->connection);
        if (cert != NULL) {
            if (ngx_http_datagate_cert_serial_str(cert, r->pool,
                                                  &ctx->cert_serial)
                != NGX_OK)
            {
                ngx_str_null(&ctx->cert_serial);
            }

            X509_free(cert);
        }

        return DG_R_CLIENT_CERT_REQUIRED;
    }

    /* optional / optional_no_ca: only a verified certificate counts */
    if (SSL_get_verify_result(c->ssl->connection) != X509_V_OK) {
        return DG_R_CLIENT_CERT_REQUIRED;
    }

    id = NULL;

    if (ngx_http_datagate_ssl_index >= 0) {
        id = SSL_get_ex_data(c->ssl->connection, ngx_http_datagate_ssl_index);
    }

    if (id == NULL || id->policy != dmcf->policy) {

        cert = SSL_get_peer_certificate(c->ssl->connection);
        if (cert == NULL) {
            return DG_R_CLIENT_CERT_REQUIRED;
        }

        id = ngx_http_datagate_cert_identity(r, dmcf, cert);

        X509_free(cert);

        if (id == NULL) {
            return DG_R_INTERNAL;
        }

    } else {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "datagate: identity of the connection reused");
    }

    ctx->cert_serial = id->serial;

    if (id->consumer == NULL) {
        return DG_R_UNKNOWN_CONSUMER;
    }

    ctx->consumer = id->consumer;

    if (ngx_http_datagate_client_addr(r, ctx) != NGX_OK) {
        /* the peer went away: where it was is unknown, fail closed */
        ctx->detail = "the client address is not known";
        return DG_R_NETWORK_DENIED;
    }

    if (!dg_consumer_network_ok(ctx->consumer, ctx->client)) {
        return DG_R_NETWORK_DENIED;
    }

    ctx->country[0] = '\0';
    ctx->region[0] = '\0';

    if (dmcf->geoip) {
        rc = ngx_http_datagate_geoip_lookup(dmcf, ctx->client, ctx->country,
                                            ctx->region, sizeof(ctx->region));
        if (rc != NGX_OK) {
            ctx->country[0] = '\0';
            ctx->region[0] = '\0';
        }
    }

    ctx->country[sizeof(ctx->country) - 1] = '\0';
    ctx->region[sizeof(ctx->region) - 1] = '\0';

    if (!dg_consumer_geo_ok(ctx->consumer,
                            ctx->country[0] ? (char *) ctx->country : NULL,
                            ctx->region[0] ? (char *) ctx->region : NULL))
    {
        return DG_R_GEO_DENIED;
    }

    return DG_R_OK;

#else

    return DG_R_CLIENT_CERT_REQUIRED;

#endif
}


#if (NGX_HTTP_SSL)

/*
 * Identity is bound to the verification that happened.  The client
 * certificate was verified in the handshake by the SSL_CTX the connection
 * has: the default server's of the address, or the one of the server the
 * client's SNI named (ngx_http_ssl_servername() switches to it with
 * SSL_set_SSL_CTX() before the certificate arrives; renegotiation is
 * refused).  nginx then picks the request's server{} again from Host
 * (HTTP/1.x) or :authority (HTTP/2) and answers 421 only when SNI was sent
 * and that server verifies client certificates.  Without SNI, or when the
 * request's server does not verify, a certificate checked against another
 * server's ssl_client_certificate, ssl_crl, ssl_verify_depth or ssl_ocsp
 * would reach this one.  So identity counts only when the request's
 * server is the one whose context verified it.
 */
ngx_int_t
ngx_http_datagate_ssl_bound(ngx_http_request_t *r)
{
    SSL_CTX                  *verified;
    ngx_str_t                 sni;
    ngx_http_ssl_srv_conf_t  *sscf;

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_ssl_module);
    verified = SSL_get_SSL_CTX(r->connection->ssl->connection);

    if (sscf != NULL && sscf->ssl.ctx != NULL && sscf->ssl.ctx == verified) {
        return NGX_OK;
    }

    /* the server name as nginx validated it, when it chose a server */
    ngx_str_null(&sni);

#ifdef SSL_CTRL_SET_TLSEXT_HOSTNAME
    if (r->http_connection->ssl_servername) {
        sni = *r->http_connection->ssl_servername;
    }
#endif

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "datagate: client certificate refused: verified for "
                  "another server{} (TLS server name \"%V\", host \"%V\")",
                  &sni, &r->headers_in.server);

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_datagate_cert_serial_str(X509 *cert, ngx_pool_t *pool,
    ngx_str_t *out)
{
    char    *hex;
    size_t   n;
    BIGNUM  *bn;
    char     buf[NGX_HTTP_DATAGATE_SERIAL_MAX];

    bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), NULL);
    if (bn == NULL) {
        return NGX_ERROR;
    }

    /* "-5A5A" for a negative serial, as OpenSSL prints it */
    hex = BN_bn2hex(bn);
    BN_free(bn);

    if (hex == NULL) {
        return NGX_ERROR;
    }

    n = dg_serial_normalize(hex, ngx_strlen(hex), buf, sizeof(buf));
    OPENSSL_free(hex);

    if (n == 0) {
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, n + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, buf, n + 1);
    out->len = n;

    return NGX_OK;
}


static ngx_http_datagate_conn_id_t *
ngx_http_datagate_cert_identity(ngx_http_request_t *r,
    ngx_http_datagate_main_conf_t *dmcf, X509 *cert)
{
    int                           i, n, len;
    char                         *tag;
    u_char                       *p;
    size_t                        slen, ilen;
    dg_str_t                      sans[NGX_HTTP_DATAGATE_MAX_SANS];
    ngx_uint_t                    nsans;
    unsigned int                  mdlen;
    dg_identity_t                 ident;
    GENERAL_NAME                 *gen;
    GENERAL_NAMES                *gens;
    const u_char                 *s;
    ngx_connection_t             *mc;
    const ASN1_OCTET_STRING      *akid;
    u_char                        md[EVP_MAX_MD_SIZE];
    char                          subject[DG_DN_MAX];
    char                          issuer[DG_DN_MAX];
    ngx_http_datagate_conn_id_t  *id;

    /* the real connection (not an HTTP/2 stream's): its pool lives as
     * long as the SSL object */
    mc = ngx_ssl_get_connection(r->connection->ssl->connection);
    if (mc == NULL) {
        mc = r->connection;
    }

    id = ngx_pcalloc(mc->pool, sizeof(ngx_http_datagate_conn_id_t));
    if (id == NULL) {
        return NULL;
    }

    ngx_memzero(&ident, sizeof(dg_identity_t));

    /* fingerprint: SHA-256 of the DER */

    mdlen = 0;

    if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1
        || mdlen != DG_SHA256_LEN)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "datagate: X509_digest() failed");
        return NULL;
    }

    ident.fingerprint = md;

    /* serial: sign and upper-case hex, no leading zeros */

    if (ngx_http_datagate_cert_serial_str(cert, mc->pool, &id->serial)
        != NGX_OK)
    {
        return NULL;
    }

    ident.serial.data = (const char *) id->serial.data;
    ident.serial.len = id->serial.len;

    /*
     * subject and issuer in the canonical form of dg_dn.h, taken from the
     * certificate itself (nginx's $ssl_client_s_dn escapes non-ASCII as
     * \XX, which a policy written in Chinese would never equal)
     */

    slen = dg_dn_from_x509(X509_get_subject_name(cert), subject,
                           sizeof(subject));
    ident.subject.data = slen ? subject : NULL;
    ident.subject.len = slen;

    ilen = dg_dn_from_x509(X509_get_issuer_name(cert), issuer,
                           sizeof(issuer));
    ident.issuer.data = ilen ? issuer : NULL;
    ident.issuer.len = ilen;

    /* the authority key identifier: OpenSSL matched it against the
     * subject key identifier of the CA that verified the certificate */

    akid = X509_get0_authority_key_id(cert);

    if (akid != NULL && ASN1_STRING_length(akid) > 0) {
        ident.issuer_key_id = ASN1_STRING_get0_data(akid);
        ident.issuer_key_id_len = ASN1_STRING_length(akid);
    }

    /* subjectAltName: URI and DNS entries */

    nsans = 0;

    gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);

    if (gens) {
        n = sk_GENERAL_NAME_num(gens);

        for (i = 0; i < n && nsans < NGX_HTTP_DATAGATE_MAX_SANS; i++) {
            gen = sk_GENERAL_NAME_value(gens, i);

            if (gen->type == GEN_URI) {
                s = ASN1_STRING_get0_data(gen->d.uniformResourceIdentifier);
                len = ASN1_STRING_length(gen->d.uniformResourceIdentifier);
                tag = "URI:";

            } else if (gen->type == GEN_DNS) {
                s = ASN1_STRING_get0_data(gen->d.dNSName);
                len = ASN1_STRING_length(gen->d.dNSName);
                tag = "DNS:";

            } else {
                continue;
            }

            if (s == NULL || len <= 0 || len > 4096) {
                continue;
            }

            p = ngx_pnalloc(r->pool, 4 + len);
            if (p == NULL) {
                GENERAL_NAMES_free(gens);
                return NULL;
            }

            ngx_memcpy(p, tag, 4);
            ngx_memcpy(p + 4, s, len);

            sans[nsans].data = (const char *) p;
            sans[nsans].len = 4 + len;
            nsans++;
        }

        GENERAL_NAMES_free(gens);
    }

    ident.sans = sans;
    ident.nsans = nsans;

    id->policy = dmcf->policy;
    id->consumer = dg_policy_match_consumer(dmcf->policy, &ident);

    if (id->consumer == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "datagate: no consumer for certificate subject=\"%s\" "
                      "issuer=\"%s\" serial=%V", slen ? subject : "",
                      ilen ? issuer : "", &id->serial);
    }

    if (ngx_http_datagate_ssl_index >= 0) {
        SSL_set_ex_data(r->connection->ssl->connection,
                        ngx_http_datagate_ssl_index, id);
    }

    return id;
}

#endif


/* ---- client address -------------------------------------------------- */

/*
 * nginx's realip module replaces c->sockaddr with an address taken from a
 * header before this phase, for every peer set_real_ip_from trusts: the
 * rules would follow a header.  datagate takes the TCP peer from the
 * socket (getpeername(): neither realip nor PROXY protocol changes it;
 * an HTTP/2 stream shares its connection's fd), and believes a forwarding
 * header only from the peers datagate_real_ip_from names.
 */
ngx_int_t
ngx_http_datagate_client_addr(ngx_http_request_t *r,
    ngx_http_datagate_ctx_t *ctx)
{
    u_char                        *text;
    size_t                         len;
    socklen_t                      plen;
    struct sockaddr               *peer, *fwd;
    ngx_connection_t              *c;
    ngx_http_datagate_loc_conf_t  *dlcf;

    if (ctx->addr_done) {
        return ctx->client ? NGX_OK : NGX_ERROR;
    }

    ctx->addr_done = 1;
    c = r->connection;

    peer = ngx_pcalloc(r->pool, sizeof(ngx_sockaddr_t));
    if (peer == NULL) {
        return NGX_ERROR;
    }

    plen = sizeof(ngx_sockaddr_t);

    if (c->fd == (ngx_socket_t) -1 || getpeername(c->fd, peer, &plen) == -1) {
        ngx_log_error(NGX_LOG_INFO, c->log, ngx_socket_errno,
                      "datagate: getpeername() failed");
        return NGX_ERROR;
    }

    text = ngx_pnalloc(r->pool, NGX_SOCKADDR_STRLEN);
    if (text == NULL) {
        return NGX_ERROR;
    }

    len = ngx_sock_ntop(peer, plen, text, NGX_SOCKADDR_STRLEN, 0);

    ctx->peer_text.data = text;
    ctx->peer_text.len = len;

    ctx->client = peer;
    ctx->client_text = ctx->peer_text;

    dlcf = ngx_http_get_module_loc_conf(r, ngx_http_datagate_module);

    fwd = NULL;

    if (dlcf->real_ip_from != NULL
        && ngx_cidr_match(peer, dlcf->real_ip_from) == NGX_OK)
    {
        fwd = ngx_http_datagate_forwarded(r, dlcf);
    }

    if (fwd != NULL) {
        text = ngx_pnalloc(r->pool, NGX_SOCKADDR_STRLEN);
        if (text == NULL) {
            return NGX_ERROR;
        }

        len = ngx_sock_ntop(fwd, sizeof(ngx_sockaddr_t), text,
                            NGX_SOCKADDR_STRLEN, 0);

        ctx->client = fwd;
        ctx->client_text.data = text;
        ctx->client_text.len = len;
        ctx->forwarded_text = ctx->client_text;

    } else if (ngx_cmp_sockaddr(c->sockaddr, c->socklen, peer, plen, 0)
               != NGX_OK)
    {
        /* nginx's real_ip named another address: recorded, not used */
        ctx->forwarded_text = c->addr_text;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "datagate: client %V, peer %V, forwarded \"%V\"",
                   &ctx->client_text, &ctx->peer_text, &ctx->forwarded_text);

    return NGX_OK;
}


/*
 * The client a trusted peer forwards: the PROXY protocol's source, or the
 * hops of datagate_real_ip_header (every line of it, comma-separated lists
 * as X-Forwarded-For writes them) read from the nearest one back, skipping
 * the addresses datagate_real_ip_from trusts: the first hop it does not
 * trust is the client.  A hop that is not an address ends the walk at the
 * last trusted one.  NULL: the peer itself.
 */
static struct sockaddr *
ngx_http_datagate_forwarded(ngx_http_request_t *r,
    ngx_http_datagate_loc_conf_t *dlcf)
{
    u_char                     *p, *end, *q;
    ngx_uint_t                  n, total;
    struct sockaddr            *sa, *last;
    ngx_table_elt_t            *h;
    ngx_http_datagate_hop_t    *hop;
    ngx_http_datagate_hiter_t   hi;
    ngx_http_datagate_hop_t     hops[NGX_HTTP_DATAGATE_FORWARDED_MAX];

    if (dlcf->real_ip_header.len == sizeof("proxy_protocol") - 1
        && ngx_strncasecmp(dlcf->real_ip_header.data,
                           (u_char *) "proxy_protocol",
                           sizeof("proxy_protocol") - 1) == 0)
    {
        if (r->connection->proxy_protocol == NULL) {
            return NULL;
        }

        return ngx_http_datagate_parse_hop(r,
                               r->connection->proxy_protocol->src_addr.data,
                               r->connection->proxy_protocol->src_addr.len);
    }

    /* the hops in header order, in a ring: when there are more than fit,
     * the nearest ones are kept */

    total = 0;
    for (h = ngx_http_datagate_header_first(&hi, &r->headers_in.headers);
         h != NULL;
         h = ngx_http_datagate_header_next(&hi))
    {
        if (h->hash == 0 || h->key.len != dlcf->real_ip_header.len
            || ngx_strncasecmp(h->key.data, dlcf->real_ip_header.data,
                               h->key.len) != 0)
        {
            continue;
        }

        p = h->value.data;
        end = p + h->value.len;

        for ( ;; ) {
            q = ngx_strlchr(p, end, ',');
            if (q == NULL) {
                q = end;
            }

            hops[total % NGX_HTTP_DATAGATE_FORWARDED_MAX].data = p;
            hops[total % NGX_HTTP_DATAGATE_FORWARDED_MAX].len = q - p;
            total++;

            if (q == end) {
                break;
            }

            p = q + 1;
        }
    }

    last = NULL;

    for (n = 0; n < total && n < NGX_HTTP_DATAGATE_FORWARDED_MAX; n++) {
        hop = &hops[(total - 1 - n) % NGX_HTTP_DATAGATE_FORWARDED_MAX];

        sa = ngx_http_datagate_parse_hop(r, hop->data, hop->len);
        if (sa == NULL) {
            break;
        }

        if (ngx_cidr_match(sa, dlcf->real_ip_from) != NGX_OK) {
            return sa;
        }

        last = sa;
    }

    return last;
}


/* "192.0.2.1", "2001:db8::1", "[2001:db8::1]:8080", "192.0.2.1:8080",
 * spaces around; NULL when it is none of these */
static struct sockaddr *
ngx_http_datagate_parse_hop(ngx_http_request_t *r, u_char *p, size_t len)
{
    u_char      *end, *q;
    ngx_addr_t   addr;

    end = p + len;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }

    if (p < end && *p == '[') {
        q = ngx_strlchr(p, end, ']');
        if (q == NULL || (q + 1 != end && q[1] != ':')) {
            return NULL;
        }

        p++;
        end = q;

    } else {
        /* one ':' is an IPv4 address with a port */
        q = ngx_strlchr(p, end, ':');
        if (q != NULL && ngx_strlchr(q + 1, end, ':') == NULL) {
            end = q;
        }
    }

    if (p == end || ngx_parse_addr(r->pool, &addr, p, end - p) != NGX_OK) {
        return NULL;
    }

    return addr.sockaddr;
}


/* ---- init ----------------------------------------------------------- */

ngx_int_t
ngx_http_datagate_identity_init(ngx_conf_t *cf)
{
#if (NGX_HTTP_SSL)

    /* no free callback: the data lives in the connection's pool, and a
     * callback into a module that a reload may unload must not exist */

    if (ngx_http_datagate_ssl_index == -1) {
        ngx_http_datagate_ssl_index = SSL_get_ex_new_index(0, NULL, NULL,
                                                           NULL, NULL);
        if (ngx_http_datagate_ssl_index == -1) {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "datagate: SSL_get_ex_new_index() failed");
            return NGX_ERROR;
        }
    }

#endif

    return NGX_OK;
}
