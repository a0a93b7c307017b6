/*
 * datagate core: per-request lookups in a compiled policy: consumers,
 * datasets, purposes and grants by id, the consumer of a certificate, and
 * a consumer's network and geo rules.
 */

#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>

#include "dg_policy_int.h"


/* lookups */

static const void *
dg_policy_find(const dg_policy_t *p, size_t table, const char *id,
    size_t len)
{
    const dg_hent_t  *e;

    if (p == NULL || id == NULL) {
        return NULL;
    }

    /* table: offsetof() one of the hashes of dg_policy_priv_t */
    e = dg_hash_find((const dg_hash_t *) ((const char *) p->priv + table),
                     id, len);

    return e ? e->val : NULL;
}


const dg_consumer_t *
dg_policy_consumer(const dg_policy_t *p, const char *id, size_t len)
{
    return dg_policy_find(p, offsetof(dg_policy_priv_t, consumers), id, len);
}


const dg_dataset_t *
dg_policy_dataset(const dg_policy_t *p, const char *id, size_t len)
{
    return dg_policy_find(p, offsetof(dg_policy_priv_t, datasets), id, len);
}


const dg_purpose_t *
dg_policy_purpose(const dg_policy_t *p, const char *id, size_t len)
{
    return dg_policy_find(p, offsetof(dg_policy_priv_t, purposes), id, len);
}


size_t
dg_policy_grants(const dg_policy_t *p, const dg_consumer_t *c,
    const dg_dataset_t *d, const dg_grant_t **out, size_t max)
{
    size_t                    n;
    dg_cd_key_t               key;
    const dg_hent_t          *e;
    const dg_policy_priv_t   *priv;

    if (p == NULL || c == NULL || d == NULL) {
        return 0;
    }

    priv = p->priv;
    memset(&key, 0, sizeof(key));
    key.consumer = c->index;
    key.dataset = d->index;
    n = 0;

    for (e = dg_hash_find(&priv->grants_by_cd, &key, sizeof(key));
         e;
         e = dg_hash_next(&priv->grants_by_cd, e))
    {
        if (n < max) {
            out[n] = e->val;
        }
        n++;
    }

    return n;
}


/* certificate matching */

static size_t
dg_san_normalize(const dg_str_t *s, char *buf, size_t cap)
{
    size_t  i;

    if (s->data == NULL || s->len <= 4 || s->len >= cap) {
        return 0;
    }

    if (strncasecmp(s->data, "URI:", 4) == 0) {
        memcpy(buf, "URI:", 4);
        memcpy(buf + 4, s->data + 4, s->len - 4);

    } else if (strncasecmp(s->data, "DNS:", 4) == 0) {
        memcpy(buf, "DNS:", 4);
        for (i = 4; i < s->len; i++) {
            buf[i] = (s->data[i] >= 'A' && s->data[i] <= 'Z')
                     ? (char) (s->data[i] | 0x20) : s->data[i];
        }

    } else {
        return 0;
    }

    return s->len;
}


typedef struct {
    const dg_identity_t        *id;
    const char                 *serial;
    size_t                      serial_len;
} dg_norm_id_t;


static int
dg_cert_matches(const dg_consumer_t *c, const dg_norm_id_t *n)
{
    size_t  i, len;
    char    buf[DG_SAN_MAX + 8];

    if (c->has_fingerprint
        && (n->id->fingerprint == NULL
            || memcmp(c->fingerprint, n->id->fingerprint, DG_SHA256_LEN)
               != 0))
    {
        return 0;
    }

    if (c->serial.len
        && (n->serial_len != c->serial.len
            || memcmp(n->serial, c->serial.data, c->serial.len) != 0))
    {
        return 0;
    }

    if (c->subject.len
        && (n->id->subject.data == NULL
            || n->id->subject.len != c->subject.len
            || memcmp(n->id->subject.data, c->subject.data, c->subject.len)
               != 0))
    {
        return 0;
    }

    if (c->issuer.len
        && (n->id->issuer.data == NULL
            || n->id->issuer.len != c->issuer.len
            || memcmp(n->id->issuer.data, c->issuer.data, c->issuer.len)
               != 0))
    {
        return 0;
    }

    if (c->issuer_key_id_len
        && (n->id->issuer_key_id == NULL
            || n->id->issuer_key_id_len != c->issuer_key_id_len
            || memcmp(n->id->issuer_key_id, c->issuer_key_id,
                      c->issuer_key_id_len) != 0))
    {
        return 0;
    }

    if (c->san.len) {
        if (n->id->sans == NULL) {
            return 0;
        }

        for (i = 0; i < n->id->nsans; i++) {
            len = dg_san_normalize(&n->id->sans[i], buf, sizeof(buf));
            if (len == c->san.len && memcmp(buf, c->san.data, len) == 0) {
                break;
            }
        }

        if (i == n->id->nsans) {
            return 0;
        }
    }

    return 1;
}


static void
dg_match_chain(const dg_hash_t *h, const void *key, size_t len,
    const dg_norm_id_t *n, const dg_consumer_t **best)
{
    const dg_hent_t      *e;
    const dg_consumer_t  *c;

    for (e = dg_hash_find(h, key, len); e; e = dg_hash_next(h, e)) {
        c = e->val;
        if ((*best == NULL || c->index < (*best)->index)
            && dg_cert_matches(c, n))
        {
            *best = c;
        }
    }
}


const dg_consumer_t *
dg_policy_match_consumer(const dg_policy_t *p, const dg_identity_t *id)
{
    size_t                   i, len;
    char                     serial[160], buf[DG_SAN_MAX + 8];
    dg_norm_id_t             n;
    const dg_consumer_t     *best;
    const dg_policy_priv_t  *priv;

    if (p == NULL || id == NULL) {
        return NULL;
    }

    priv = p->priv;
    best = NULL;

    n.id = id;
    n.serial = serial;
    n.serial_len = 0;

    if (id->serial.data != NULL && id->serial.len > 0) {
        n.serial_len = dg_serial_normalize(id->serial.data, id->serial.len,
                                           serial, sizeof(serial));
    }

    if (id->fingerprint != NULL) {
        dg_match_chain(&priv->by_fingerprint, id->fingerprint,
                       DG_SHA256_LEN, &n, &best);
    }

    if (n.serial_len) {
        dg_match_chain(&priv->by_serial, serial, n.serial_len, &n, &best);
    }

    if (id->subject.data != NULL && id->subject.len) {
        dg_match_chain(&priv->by_subject, id->subject.data, id->subject.len,
                       &n, &best);
    }

    for (i = 0; i < id->nsans && id->sans != NULL; i++) {
        len = dg_san_normalize(&id->sans[i], buf, sizeof(buf));
        if (len) {
            dg_match_chain(&priv->by_san, buf, len, &n, &best);
        }
    }

    return best;
}


int
dg_consumer_network_ok(const dg_consumer_t *c, const struct sockaddr *sa)
{
    size_t                      i, k, alen;
    int                         family;
    const uint8_t              *addr;
    const dg_cidr_t            *net;
    static const uint8_t        mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                               0xff, 0xff };

    if (c == NULL) {
        return 0;
    }

    if (c->nnetworks == 0) {
        return 1;
    }

    if (sa == NULL) {
        return 0;
    }

    if (sa->sa_family == AF_INET) {
        family = AF_INET;
        addr = (const uint8_t *)
               &((const struct sockaddr_in *) sa)->sin_addr.s_addr;
        alen = 4;

    } else if (sa->sa_family == AF_INET6) {
        addr = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
        if (memcmp(addr, mapped, 12) == 0) {
            family = AF_INET;
            addr += 12;
            alen = 4;
        } else {
            family = AF_INET6;
            alen = 16;
        }

    } else {
        return 0;
    }

    for (i = 0; i < c->nnetworks; i++) {
        net = &c->networks[i];
        if (net->family != family) {
            continue;
        }

        for (k = 0; k < alen; k++) {
            if ((addr[k] & net->mask[k]) != net->addr[k]) {
                break;
            }
        }

        if (k == alen) {
            return 1;
        }
    }

    return 0;
}


static int
dg_in_list(const dg_str_t *list, size_t n, const char *s)
{
    size_t  i, len;

    len = strlen(s);

    for (i = 0; i < n; i++) {
        if (list[i].len == len && strncasecmp(list[i].data, s, len) == 0) {
            return 1;
        }
    }

    return 0;
}


int
dg_consumer_geo_ok(const dg_consumer_t *c, const char *country,
    const char *region)
{
    if (c == NULL) {
        return 0;
    }

    if (c->ncountries
        && (country == NULL || !dg_in_list(c->countries, c->ncountries,
                                           country)))
    {
        return 0;
    }

    if (c->nregions
        && (region == NULL || !dg_in_list(c->regions, c->nregions, region)))
    {
        return 0;
    }

    return 1;
}
