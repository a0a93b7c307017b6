/*
 * datagate core: the hash-chained audit record (see dg_audit.h and
 * docs/audit.md): the digests and sealing.  The record's members are
 * built in dg_audit_rec.c; lines are parsed and chains checked in
 * dg_audit_verify.c.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "dg_audit_int.h"


const char  dg_audit_genesis[DG_AUDIT_HEXLEN + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

const char  dg_audit_hash_member[] = ",\"hash\":\"";

const char  dg_audit_hex[] = "0123456789abcdef";


const char *
dg_audit_alg_name(int alg)
{
    return alg == DG_AUDIT_SM3 ? "sm3" : "sha256";
}


int
dg_audit_alg_parse(const char *s, size_t len)
{
    if (len == 6 && memcmp(s, "sha256", 6) == 0) {
        return DG_AUDIT_SHA256;
    }

    if (len == 3 && memcmp(s, "sm3", 3) == 0) {
        return DG_AUDIT_SM3;
    }

    return -1;
}


/* ---- digest ---------------------------------------------------------- */

void
dg_audit_md_free(dg_audit_md_t *md)
{
    int  i;

    for (i = 0; i < DG_AUDIT_ALGS; i++) {
        EVP_MD_free(md->md[i]);
        md->md[i] = NULL;
    }

    EVP_MD_CTX_free(md->ctx);
    md->ctx = NULL;
    EVP_MD_CTX_free(md->ctx2);
    md->ctx2 = NULL;
}


/* the digest and the context of alg, fetched and made at the first use */
static const EVP_MD *
dg_audit_md_get(dg_audit_md_t *md, int alg)
{
    alg = (alg == DG_AUDIT_SM3) ? DG_AUDIT_SM3 : DG_AUDIT_SHA256;

    if (md->md[alg] == NULL) {
        md->md[alg] = EVP_MD_fetch(NULL, alg == DG_AUDIT_SM3 ? "SM3"
                                                             : "SHA256",
                                   NULL);
        if (md->md[alg] == NULL) {
            return NULL;
        }
    }

    if (md->ctx == NULL) {
        md->ctx = EVP_MD_CTX_new();
        if (md->ctx == NULL) {
            return NULL;
        }
    }

    return md->md[alg];
}


static void
dg_audit_hexify(const uint8_t *d, size_t n, char *out)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        out[2 * i] = dg_audit_hex[d[i] >> 4];
        out[2 * i + 1] = dg_audit_hex[d[i] & 0xf];
    }

    out[2 * n] = '\0';
}


int
dg_audit_digest_parts(dg_audit_md_t *md, int alg, const char *prev,
    const char *a, size_t alen, const char *b, size_t blen, char *out)
{
    int            rc;
    unsigned       mdlen;
    const EVP_MD  *m;
    dg_audit_md_t  own;
    unsigned char  dg[EVP_MAX_MD_SIZE];

    if (md == NULL) {
        memset(&own, 0, sizeof(own));
        rc = dg_audit_digest_parts(&own, alg, prev, a, alen, b, blen, out);
        dg_audit_md_free(&own);
        return rc;
    }

    m = dg_audit_md_get(md, alg);

    if (m == NULL
        || EVP_DigestInit_ex2(md->ctx, m, NULL) != 1
        || EVP_DigestUpdate(md->ctx, prev, DG_AUDIT_HEXLEN) != 1
        || EVP_DigestUpdate(md->ctx, a, alen) != 1
        || (blen && EVP_DigestUpdate(md->ctx, b, blen) != 1)
        || EVP_DigestFinal_ex(md->ctx, dg, &mdlen) != 1
        || mdlen != DG_AUDIT_DIGEST_LEN)
    {
        return -1;
    }

    dg_audit_hexify(dg, mdlen, out);

    return 0;
}


int
dg_audit_digest(dg_audit_md_t *md, int alg, const char *prev, const char *t,
    size_t tlen, char *out)
{
    return dg_audit_digest_parts(md, alg, prev, t, tlen, NULL, 0, out);
}


/* ---- sealing --------------------------------------------------------- */

int
dg_arec_seal(dg_arec_t *r, dg_audit_md_t *md, int alg, uint64_t seq,
    const char *prev, char *hash, const char **line, size_t *len)
{
    dg_audit_seal_t  s;

    memset(&s, 0, sizeof(dg_audit_seal_t));
    s.seq = seq;
    s.prev = prev;

    return dg_arec_seal_ex(r, md, alg, &s, hash, NULL, line, len);
}


int
dg_arec_seal_ex(dg_arec_t *r, dg_audit_md_t *md, int alg,
    const dg_audit_seal_t *s, char *hash, char *mac, const char **line,
    size_t *len)
{
    char           head[DG_AREC_HEAD];
    char          *start, *p;
    size_t         hlen, elen, used;
    unsigned       i, listed, mdlen;
    const EVP_MD  *m;
    int            n;
    uint8_t        d0[EVP_MAX_MD_SIZE], dm[DG_AUDIT_DIGEST_LEN];

    if (r->nested) {
        dg_arec_obj_end(r);
    }

    if (s->chain_len > DG_AUDIT_CHAIN_MAX) {
        return -1;
    }

    memcpy(head, "{\"seq\":", 7);
    hlen = 7 + dg_audit_utoa(head + 7, s->seq);
    start = r->buf + DG_AREC_HEAD - hlen;
    memcpy(start, head, hlen);

    p = r->buf + r->len;

    if (r->lost) {
        memcpy(p, ",\"lost\":", 8);
        p += 8;
        p += dg_audit_utoa(p, r->lost);
    }

    if (r->truncated) {
        memcpy(p, ",\"truncated\":[", 14);
        p += 14;
        listed = 0;

        for (i = 0; i < r->ncut; i++) {
            elen = dg_json_escape_len((const uint8_t *) r->cut[i],
                                      r->cutlen[i]);
            if (elen > DG_AREC_CUT_NAME) {
                continue;       /* no member of ours has such a name */
            }

            if (listed++) {
                *p++ = ',';
            }

            *p++ = '"';
            p += dg_json_escape(p, elen, (const uint8_t *) r->cut[i],
                                r->cutlen[i], &used);
            *p++ = '"';
        }

        *p++ = ']';
    }

    if (s->chain_len) {
        memcpy(p, ",\"chain\":\"", 10);
        p += 10;
        memcpy(p, s->chain, s->chain_len);
        p += s->chain_len;
        *p++ = '"';
    }

    n = (int) strlen(dg_audit_alg_name(alg));
    memcpy(p, ",\"alg\":\"", 8);
    memcpy(p + 8, dg_audit_alg_name(alg), n);
    memcpy(p + 8 + n, "\",\"prev\":\"", 10);
    p += 8 + n + 10;
    memcpy(p, s->prev, DG_AUDIT_HEXLEN);
    p += DG_AUDIT_HEXLEN;
    *p++ = '"';

    if (s->key == NULL) {
        *p++ = '}';

        if (dg_audit_digest_parts(md, alg, s->prev, start, p - start, NULL,
                                  0, hash)
            != 0)
        {
            return -1;
        }

        p--;                    /* over the closing brace */

    } else {
        /*
         * One pass over the record: the context after P || T0 without
         * its brace is copied; one copy ends T0 (the digest the MAC is
         * over), the other goes on with the "mac" member (the hash).
         */

        m = dg_audit_md_get(md, alg);

        if (m == NULL) {
            return -1;
        }

        if (md->ctx2 == NULL) {
            md->ctx2 = EVP_MD_CTX_new();
            if (md->ctx2 == NULL) {
                return -1;
            }
        }

        if (EVP_DigestInit_ex2(md->ctx, m, NULL) != 1
            || EVP_DigestUpdate(md->ctx, s->prev, DG_AUDIT_HEXLEN) != 1
            || EVP_DigestUpdate(md->ctx, start, p - start) != 1
            || EVP_MD_CTX_copy_ex(md->ctx2, md->ctx) != 1
            || EVP_DigestUpdate(md->ctx, "}", 1) != 1
            || EVP_DigestFinal_ex(md->ctx, d0, &mdlen) != 1
            || mdlen != DG_AUDIT_DIGEST_LEN
            || dg_audit_hmac(md, alg, s->key, DG_AUDIT_KEY_LEN, d0,
                             DG_AUDIT_DIGEST_LEN, dm)
               != 0)
        {
            return -1;
        }

        used = (size_t) (p - start);

        memcpy(p, ",\"mac\":\"", 8);
        p += 8;
        dg_audit_hexify(dm, DG_AUDIT_DIGEST_LEN, p);

        if (mac) {
            memcpy(mac, p, DG_AUDIT_HEXLEN + 1);
        }

        p += DG_AUDIT_HEXLEN;
        *p++ = '"';
        *p++ = '}';

        if (EVP_DigestUpdate(md->ctx2, start + used, p - start - used) != 1
            || EVP_DigestFinal_ex(md->ctx2, d0, &mdlen) != 1
            || mdlen != DG_AUDIT_DIGEST_LEN)
        {
            return -1;
        }

        dg_audit_hexify(d0, mdlen, hash);
        dg_audit_wipe(dm, sizeof(dm));

        p--;                    /* over the closing brace */
    }

    memcpy(p, dg_audit_hash_member, DG_AUDIT_HASH_MEMBER_LEN);
    p += DG_AUDIT_HASH_MEMBER_LEN;
    memcpy(p, hash, DG_AUDIT_HEXLEN);
    p += DG_AUDIT_HEXLEN;
    *p++ = '"';
    *p++ = '}';
    *p++ = '\n';

    *line = start;
    *len = p - start;

    return 0;
}


int
dg_audit_chain_seal(dg_arec_t *r, dg_audit_md_t *md, int alg,
    const dg_audit_chain_t *c, dg_audit_chain_t *next, const char **line,
    size_t *len)
{
    char             hash[DG_AUDIT_HEXLEN + 1];
    dg_audit_seal_t  s;

    s.chain = c->id;
    s.chain_len = strlen(c->id);
    s.seq = c->seq + 1;
    s.prev = c->hash;
    s.key = c->keyed ? c->key : NULL;

    if (dg_arec_seal_ex(r, md, alg, &s, hash, NULL, line, len) != 0) {
        return -1;
    }

    if (next != c) {
        memcpy(next, c, sizeof(dg_audit_chain_t));
    }

    next->seq = c->seq + 1;
    memcpy(next->hash, hash, DG_AUDIT_HEXLEN + 1);

    if (next->keyed) {
        return dg_audit_key_advance(md, alg, next->seq, next->key,
                                    next->seg);
    }

    return 0;
}


/* ---- keys ------------------------------------------------------------ */

#define DG_AUDIT_HMAC_BLOCK     64      /* SHA-256 and SM3 */

static const char  dg_audit_root_label[] = "datagate-audit-root:";
static const char  dg_audit_chain_label[] = "datagate-audit-chain:";
static const char  dg_audit_segment_label[] = "datagate-audit-segment";


void
dg_audit_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}


/* ALG(a || b) into out (32 bytes) */
static int
dg_audit_raw(dg_audit_md_t *md, int alg, const void *a, size_t alen,
    const void *b, size_t blen, uint8_t *out)
{
    unsigned       mdlen;
    const EVP_MD  *m;

    m = dg_audit_md_get(md, alg);

    if (m == NULL
        || EVP_DigestInit_ex2(md->ctx, m, NULL) != 1
        || (alen && EVP_DigestUpdate(md->ctx, a, alen) != 1)
        || (blen && EVP_DigestUpdate(md->ctx, b, blen) != 1)
        || EVP_DigestFinal_ex(md->ctx, out, &mdlen) != 1
        || mdlen != DG_AUDIT_DIGEST_LEN)
    {
        return -1;
    }

    return 0;
}


int
dg_audit_hmac(dg_audit_md_t *md, int alg, const uint8_t *key, size_t klen,
    const void *data, size_t dlen, uint8_t out[DG_AUDIT_DIGEST_LEN])
{
    int      rc;
    size_t   i;
    uint8_t  k0[DG_AUDIT_HMAC_BLOCK], pad[DG_AUDIT_HMAC_BLOCK];
    uint8_t  inner[DG_AUDIT_DIGEST_LEN];

    memset(k0, 0, sizeof(k0));

    if (klen > DG_AUDIT_HMAC_BLOCK) {
        if (dg_audit_raw(md, alg, key, klen, NULL, 0, k0) != 0) {
            return -1;
        }

    } else {
        memcpy(k0, key, klen);
    }

    for (i = 0; i < DG_AUDIT_HMAC_BLOCK; i++) {
        pad[i] = k0[i] ^ 0x36;
    }

    rc = dg_audit_raw(md, alg, pad, sizeof(pad), data, dlen, inner);

    if (rc == 0) {
        for (i = 0; i < DG_AUDIT_HMAC_BLOCK; i++) {
            pad[i] = k0[i] ^ 0x5c;
        }

        rc = dg_audit_raw(md, alg, pad, sizeof(pad), inner, sizeof(inner),
                          out);
    }

    dg_audit_wipe(k0, sizeof(k0));
    dg_audit_wipe(pad, sizeof(pad));
    dg_audit_wipe(inner, sizeof(inner));

    return rc;
}


/* HMAC-ALG(key, label || s) */
static int
dg_audit_key_label(dg_audit_md_t *md, int alg, const uint8_t *key,
    size_t klen, const char *label, size_t llen, const char *s, size_t slen,
    uint8_t out[DG_AUDIT_KEY_LEN])
{
    int   rc;
    char  msg[64 + DG_AUDIT_CHAIN_MAX];

    if (llen + slen > sizeof(msg)) {
        return -1;
    }

    memcpy(msg, label, llen);
    memcpy(msg + llen, s, slen);

    rc = dg_audit_hmac(md, alg, key, klen, msg, llen + slen, out);

    dg_audit_wipe(msg, sizeof(msg));

    return rc;
}


int
dg_audit_key_root(dg_audit_md_t *md, int alg, const uint8_t *secret,
    size_t slen, const char *epoch, size_t elen,
    uint8_t root[DG_AUDIT_KEY_LEN])
{
    return dg_audit_key_label(md, alg, secret, slen, dg_audit_root_label,
                              sizeof(dg_audit_root_label) - 1, epoch, elen,
                              root);
}


int
dg_audit_key_next(dg_audit_md_t *md, int alg, uint8_t key[DG_AUDIT_KEY_LEN])
{
    int      rc;
    uint8_t  next[DG_AUDIT_KEY_LEN];

    rc = dg_audit_raw(md, alg, key, DG_AUDIT_KEY_LEN, NULL, 0, next);

    if (rc == 0) {
        memcpy(key, next, DG_AUDIT_KEY_LEN);
    }

    dg_audit_wipe(next, sizeof(next));

    return rc;
}


int
dg_audit_key_chain(dg_audit_md_t *md, int alg,
    const uint8_t gen[DG_AUDIT_KEY_LEN], const char *chain, size_t len,
    uint8_t key[DG_AUDIT_KEY_LEN], uint8_t seg[DG_AUDIT_KEY_LEN])
{
    /* S_0, then K_{0,0} from it and S_1 in its place */

    if (dg_audit_key_label(md, alg, gen, DG_AUDIT_KEY_LEN,
                           dg_audit_chain_label,
                           sizeof(dg_audit_chain_label) - 1, chain, len, seg)
        != 0)
    {
        return -1;
    }

    if (dg_audit_hmac(md, alg, seg, DG_AUDIT_KEY_LEN, dg_audit_segment_label,
                      sizeof(dg_audit_segment_label) - 1, key)
        != 0)
    {
        return -1;
    }

    return dg_audit_key_next(md, alg, seg);
}


int
dg_audit_key_advance(dg_audit_md_t *md, int alg, uint64_t seq,
    uint8_t key[DG_AUDIT_KEY_LEN], uint8_t seg[DG_AUDIT_KEY_LEN])
{
    if (seq % DG_AUDIT_KEY_SEGMENT != 0) {
        return dg_audit_key_next(md, alg, key);
    }

    /* the record seq + 1 begins a segment: K_{j,0} from S_j, then S_j+1 */

    if (dg_audit_hmac(md, alg, seg, DG_AUDIT_KEY_LEN, dg_audit_segment_label,
                      sizeof(dg_audit_segment_label) - 1, key)
        != 0)
    {
        return -1;
    }

    return dg_audit_key_next(md, alg, seg);
}


int
dg_audit_key_at(dg_audit_md_t *md, int alg,
    const uint8_t gen[DG_AUDIT_KEY_LEN], const char *chain, size_t len,
    uint64_t seq, uint8_t key[DG_AUDIT_KEY_LEN],
    uint8_t seg[DG_AUDIT_KEY_LEN])
{
    uint64_t  j, i, n;

    if (seq == 0
        || dg_audit_key_chain(md, alg, gen, chain, len, key, seg) != 0)
    {
        return -1;
    }

    /* seg is S_1: S_j after j - 1 more steps */

    j = (seq - 1) / DG_AUDIT_KEY_SEGMENT;
    i = (seq - 1) % DG_AUDIT_KEY_SEGMENT;

    if (j > 0) {
        for (n = 1; n < j; n++) {
            if (dg_audit_key_next(md, alg, seg) != 0) {
                return -1;
            }
        }

        if (dg_audit_hmac(md, alg, seg, DG_AUDIT_KEY_LEN,
                          dg_audit_segment_label,
                          sizeof(dg_audit_segment_label) - 1, key)
            != 0
            || dg_audit_key_next(md, alg, seg) != 0)
        {
            return -1;
        }
    }

    for (n = 0; n < i; n++) {
        if (dg_audit_key_next(md, alg, key) != 0) {
            return -1;
        }
    }

    return 0;
}


int
dg_audit_mac(dg_audit_md_t *md, int alg, const uint8_t key[DG_AUDIT_KEY_LEN],
    const char *prev, const char *t0, size_t t0len, char *out)
{
    int            rc;
    unsigned       mdlen;
    const EVP_MD  *m;
    uint8_t        d0[EVP_MAX_MD_SIZE], dm[DG_AUDIT_DIGEST_LEN];

    /* ALG(P || T0), T0 the record up to its "mac" member, and its brace */

    m = dg_audit_md_get(md, alg);

    if (m == NULL
        || EVP_DigestInit_ex2(md->ctx, m, NULL) != 1
        || EVP_DigestUpdate(md->ctx, prev, DG_AUDIT_HEXLEN) != 1
        || EVP_DigestUpdate(md->ctx, t0, t0len) != 1
        || EVP_DigestUpdate(md->ctx, "}", 1) != 1
        || EVP_DigestFinal_ex(md->ctx, d0, &mdlen) != 1
        || mdlen != DG_AUDIT_DIGEST_LEN)
    {
        return -1;
    }

    rc = dg_audit_hmac(md, alg, key, DG_AUDIT_KEY_LEN, d0,
                       DG_AUDIT_DIGEST_LEN, dm);

    if (rc == 0) {
        dg_audit_hexify(dm, sizeof(dm), out);
    }

    dg_audit_wipe(dm, sizeof(dm));

    return rc;
}


int
dg_audit_chain_valid(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || len > DG_AUDIT_CHAIN_MAX) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')
              || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '.' || s[i] == '_'
              || s[i] == '-'))
        {
            return -1;
        }
    }

    return 0;
}
