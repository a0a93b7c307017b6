/*
 * datagate core: the consumers section of the policy: certificate
 * matchers, networks and geo rules.
 */

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "dg_policy_int.h"
#include "dg_dn.h"


static const char *dg_consumer_keys[] = {
    "id", "org", "cert", "clearance", "networks", "geo", NULL
};
static const char *dg_cert_keys[] = {
    "subject", "fingerprint_sha256", "serial", "san", "issuer",
    "issuer_key_id", NULL
};
static const char *dg_geo_keys[] = { "countries", "regions", NULL };


static int
dg_cidr_parse(const char *s, size_t len, dg_cidr_t *c)
{
    size_t    i, alen;
    unsigned  bits, max;
    char      buf[64];
    const char *slash;

    if (len == 0 || len >= sizeof(buf)) {
        return -1;
    }

    memcpy(buf, s, len);
    buf[len] = '\0';

    slash = strchr(buf, '/');
    alen = slash ? (size_t) (slash - buf) : len;
    buf[alen] = '\0';

    memset(c, 0, sizeof(dg_cidr_t));

    if (strchr(buf, ':') != NULL) {
        if (inet_pton(AF_INET6, buf, c->addr) != 1) {
            return -1;
        }
        c->family = AF_INET6;
        max = 128;

    } else {
        if (inet_pton(AF_INET, buf, c->addr) != 1) {
            return -1;
        }
        c->family = AF_INET;
        max = 32;
    }

    bits = max;

    if (slash != NULL) {
        s = slash + 1;
        if (*s == '\0' || strlen(s) > 3) {
            return -1;
        }
        bits = 0;
        for ( /* void */ ; *s; s++) {
            if (*s < '0' || *s > '9') {
                return -1;
            }
            bits = bits * 10 + (unsigned) (*s - '0');
        }
        if (bits > max) {
            return -1;
        }
    }

    for (i = 0; i < max / 8; i++) {
        if (bits >= 8) {
            c->mask[i] = 0xff;
            bits -= 8;
        } else {
            c->mask[i] = (uint8_t) (0xff << (8 - bits));
            bits = 0;
        }
    }

    for (i = 0; i < 16; i++) {
        if ((c->addr[i] & ~c->mask[i]) != 0) {
            return -2;
        }
    }

    return 0;
}


/* a distinguished name, canonical (dg_dn.h): 0 absent or set, -1 error */
static int
dg_load_dn(dg_load_t *L, const char *file, const dg_ynode_t *cm,
    const char *path, const char *key, dg_str_t *out)
{
    int                rc;
    size_t             n;
    char               err[DG_ERRLEN];
    const dg_ynode_t  *v;
    char               buf[DG_DN_MAX];
    dg_str_t           text;

    rc = dg_get_text(L, file, cm, path, key, 0, DG_TEXT_MAX, &text, &v);
    if (rc <= 0) {
        return rc;
    }

    n = dg_dn_parse(text.data, text.len, buf, sizeof(buf), err, sizeof(err));
    if (n == 0) {
        return dg_err(L, file, v->line, path, key, "%s", err);
    }

    out->data = dg_arena_strndup(L->a, buf, n);
    out->len = n;

    if (out->data == NULL) {
        return dg_err(L, file, v->line, path, key, "out of memory");
    }

    return 0;
}


static int
dg_load_cert(dg_load_t *L, const char *file, const dg_ynode_t *cm,
    const char *cpath, dg_consumer_t *c)
{
    int                any;
    char               path[80], buf[DG_SAN_MAX + 8];
    size_t             n, i;
    const dg_ynode_t  *v;

    snprintf(path, sizeof(path), "%s.cert", cpath);

    if (cm->type != DG_Y_MAP) {
        return dg_err(L, file, cm->line, path, NULL,
                      "expected a mapping such as {subject: \"CN=..,O=..,"
                      "C=CN\"}, got %s", dg_ytype_name(cm));
    }

    if (dg_check_keys(L, file, cm, path, dg_cert_keys) != 0) {
        return -1;
    }

    any = 0;

    if (dg_load_dn(L, file, cm, path, "subject", &c->subject) != 0) {
        return -1;
    }

    if (c->subject.len) {
        any = 1;
    }

    v = dg_ymap_get(cm, "fingerprint_sha256");
    if (v != NULL) {
        any = 1;
        if (dg_expect(L, file, v, path, "fingerprint_sha256", DG_Y_SCALAR)
            != 0)
        {
            return -1;
        }
        if (dg_fingerprint_parse(v->str, v->len, c->fingerprint) != 0) {
            return dg_err(L, file, v->line, path, "fingerprint_sha256",
                          "bad SHA-256 fingerprint '%.100s': expected 64 hex "
                          "digits, or AB:CD:.. as openssl x509 -fingerprint "
                          "-sha256 prints it", v->str);
        }
        c->has_fingerprint = 1;
    }

    v = dg_ymap_get(cm, "serial");
    if (v != NULL) {
        any = 1;
        if (dg_expect(L, file, v, path, "serial", DG_Y_SCALAR) != 0) {
            return -1;
        }
        n = dg_serial_normalize(v->str, v->len, buf, 128);
        if (n == 0) {
            return dg_err(L, file, v->line, path, "serial",
                          "bad serial '%.100s': expected hex digits as "
                          "OpenSSL prints them, such as 1A2B3C, 1A:2B:3C or "
                          "-5A5A", v->str);
        }
        c->serial.data = dg_arena_strndup(L->a, buf, n);
        c->serial.len = n;
        if (c->serial.data == NULL) {
            return dg_err(L, file, v->line, path, "serial", "out of memory");
        }
    }

    v = dg_ymap_get(cm, "san");
    if (v != NULL) {
        any = 1;
        if (dg_expect(L, file, v, path, "san", DG_Y_SCALAR) != 0
            || dg_text_ok(L, file, v, path, "san", DG_SAN_MAX) != 0)
        {
            return -1;
        }

        if (v->len > 4 && strncasecmp(v->str, "URI:", 4) == 0) {
            memcpy(buf, "URI:", 4);
            memcpy(buf + 4, v->str + 4, v->len - 4);

        } else if (v->len > 4 && strncasecmp(v->str, "DNS:", 4) == 0) {
            memcpy(buf, "DNS:", 4);
            for (i = 4; i < v->len; i++) {
                buf[i] = (v->str[i] >= 'A' && v->str[i] <= 'Z')
                         ? (char) (v->str[i] | 0x20) : v->str[i];
            }

        } else {
            return dg_err(L, file, v->line, path, "san",
                          "bad SAN '%.100s': expected URI:... or DNS:...",
                          v->str);
        }

        if (strchr(v->str + 4, ' ') != NULL) {
            return dg_err(L, file, v->line, path, "san",
                          "bad SAN '%.100s': spaces are not allowed", v->str);
        }

        c->san.data = dg_arena_strndup(L->a, buf, v->len);
        c->san.len = v->len;
        if (c->san.data == NULL) {
            return dg_err(L, file, v->line, path, "san", "out of memory");
        }
    }

    if (dg_load_dn(L, file, cm, path, "issuer", &c->issuer) != 0) {
        return -1;
    }

    v = dg_ymap_get(cm, "issuer_key_id");
    if (v != NULL) {
        if (dg_expect(L, file, v, path, "issuer_key_id", DG_Y_SCALAR) != 0) {
            return -1;
        }
        c->issuer_key_id_len = dg_keyid_parse(v->str, v->len,
                                              c->issuer_key_id,
                                              DG_KEYID_MAX);
        if (c->issuer_key_id_len == 0) {
            return dg_err(L, file, v->line, path, "issuer_key_id",
                          "bad key identifier '%.100s': expected hex digits "
                          "such as 8A:1F:..:C3 (openssl x509 -text, \"X509v3 "
                          "Authority Key Identifier\"), at most %d bytes",
                          v->str, DG_KEYID_MAX);
        }
    }

    if (!any) {
        return dg_err(L, file, cm->line, path, NULL,
                      "at least one of subject, fingerprint_sha256, serial, "
                      "san is required%s",
                      (c->issuer.len || c->issuer_key_id_len)
                      ? " (issuer and issuer_key_id only say which CA "
                        "signed it, not which certificate)" : "");
    }

    return 0;
}


static int
dg_load_geo(dg_load_t *L, const char *file, const dg_ynode_t *g,
    const char *cpath, dg_consumer_t *c)
{
    int                rc;
    char               path[80];
    const dg_ynode_t  *seq, *it;

    snprintf(path, sizeof(path), "%s.geo", cpath);

    if (g->type != DG_Y_MAP) {
        return dg_err(L, file, g->line, path, NULL,
                      "expected a mapping such as {countries: [CN]}, got %s",
                      dg_ytype_name(g));
    }

    if (dg_check_keys(L, file, g, path, dg_geo_keys) != 0) {
        return -1;
    }

    rc = dg_get_list(L, file, g, path, "countries", &seq);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        for (it = seq->child; it; it = it->next) {
            if (it->len != 2 || it->str[0] < 'A' || it->str[0] > 'Z'
                || it->str[1] < 'A' || it->str[1] > 'Z')
            {
                return dg_err(L, file, it->line, path, "countries",
                              "bad country '%.32s': expected an ISO 3166-1 "
                              "alpha-2 code in capitals such as CN",
                              it->str);
            }
        }

        if (dg_list_strs(L, file, seq, path, "countries", &c->countries,
                         &c->ncountries) != 0)
        {
            return -1;
        }
    }

    rc = dg_get_list(L, file, g, path, "regions", &seq);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        for (it = seq->child; it; it = it->next) {
            if (it->len == 0 || it->len > DG_ID_MAX) {
                return dg_err(L, file, it->line, path, "regions",
                              "bad region '%.32s'", it->str);
            }
        }

        if (dg_list_strs(L, file, seq, path, "regions", &c->regions,
                         &c->nregions) != 0)
        {
            return -1;
        }
    }

    if (c->ncountries == 0 && c->nregions == 0) {
        return dg_err(L, file, g->line, path, NULL,
                      "give countries, regions or both");
    }

    return 0;
}


int
dg_load_consumers(dg_load_t *L)
{
    int                rc;
    char               path[64];
    size_t             i, k, j;
    unsigned           line;
    dg_pfile_t        *f;
    dg_ynode_t        *it;
    dg_consumer_t     *c;
    const dg_ynode_t  *sec, *v, *idn;

    L->p->consumers = dg_section_alloc(L, "consumers", DG_Y_SEQ,
                                       sizeof(dg_consumer_t),
                                       &L->priv->consumers);
    if (L->p->consumers == NULL) {
        return -1;
    }

    for (i = 0; i < L->nfiles; i++) {
        f = &L->files[i];
        sec = dg_section(L, f, "consumers", DG_Y_SEQ);
        if (sec == NULL) {
            continue;
        }

        for (k = 0, it = sec->child; it; it = it->next, k++) {
            snprintf(path, sizeof(path), "consumers[%zu]", k);
            line = it->line;

            if (dg_item_map(L, f->name, it, path, "id, cert, clearance",
                            dg_consumer_keys)
                != 0)
            {
                return -1;
            }

            c = &L->p->consumers[L->p->nconsumers];
            c->index = (unsigned) L->p->nconsumers;
            c->src_file.data = f->name;
            c->src_file.len = strlen(f->name);
            c->src_line = line;

            if (dg_item_id(L, f->name, it, path, &L->priv->consumers,
                           "consumer", offsetof(dg_consumer_t, src_file),
                           offsetof(dg_consumer_t, src_line), &c->id)
                != 0)
            {
                return -1;
            }

            if (dg_get_text(L, f->name, it, path, "org", 0, DG_TEXT_MAX,
                            &c->org, NULL) < 0)
            {
                return -1;
            }

            if (c->org.data == NULL) {
                c->org.data = "";
            }

            v = dg_ymap_get(it, "cert");
            if (v == NULL) {
                return dg_err(L, f->name, line, path, "cert",
                              "missing required key 'cert'");
            }

            if (dg_load_cert(L, f->name, v, path, c) != 0) {
                return -1;
            }

            if (dg_get_uint(L, f->name, it, path, "clearance", 1, 0,
                            DG_LEVEL_MAX, &c->clearance) < 0)
            {
                return -1;
            }

            rc = dg_get_list(L, f->name, it, path, "networks", &v);
            if (rc < 0) {
                return -1;
            }

            if (rc > 0) {
                c->networks = dg_arena_array(L->a, v->n, sizeof(dg_cidr_t));
                if (c->networks == NULL) {
                    return dg_err(L, f->name, v->line, path, "networks",
                                  "out of memory");
                }

                for (j = 0, idn = v->child; idn; idn = idn->next, j++) {
                    rc = dg_cidr_parse(idn->str, idn->len, &c->networks[j]);
                    if (rc == -2) {
                        return dg_err(L, f->name, idn->line, path, "networks",
                                      "'%.64s' has host bits set beyond "
                                      "the prefix length", idn->str);
                    }
                    if (rc != 0) {
                        return dg_err(L, f->name, idn->line, path, "networks",
                                      "bad network '%.64s': expected an "
                                      "address or CIDR such as 10.0.0.0/8 "
                                      "or 2001:db8::/32", idn->str);
                    }
                }
                c->nnetworks = j;
            }

            v = dg_ymap_get(it, "geo");
            if (v != NULL && dg_load_geo(L, f->name, v, path, c) != 0) {
                return -1;
            }

            if (dg_hash_add(&L->priv->consumers, c->id.data, c->id.len, c)
                != 0)
            {
                return dg_err(L, f->name, line, path, NULL, "out of memory");
            }

            L->p->nconsumers++;
        }
    }

    return 0;
}
