/*
 * datagate core: the hash-chained audit record (see dg_audit.h and
 * docs/audit.md): the digests and sealing.  The record's members are
 * built in dg_audit_rec.c; lines are parsed and chains checked in
 * dg_audit_verify.c.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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
}


int
dg_audit_digest_parts(dg_audit_md_t *md, int alg, const char *prev,
    const char *a, size_t alen, const char *b, size_t blen, char *out)
{
    int            rc;
    unsigned       i, mdlen;
    dg_audit_md_t  own;
    unsigned char  dg[EVP_MAX_MD_SIZE];

    if (md == NULL) {
        memset(&own, 0, sizeof(own));
        rc = dg_audit_digest_parts(&own, alg, prev, a, alen, b, blen, out);
        dg_audit_md_free(&own);
        return rc;
    }

    alg = (alg == DG_AUDIT_SM3) ? DG_AUDIT_SM3 : DG_AUDIT_SHA256;

    if (md->md[alg] == NULL) {
        md->md[alg] = EVP_MD_fetch(NULL, alg == DG_AUDIT_SM3 ? "SM3"
                                                             : "SHA256",
                                   NULL);
        if (md->md[alg] == NULL) {
            return -1;
        }
    }

    if (md->ctx == NULL) {
        md->ctx = EVP_MD_CTX_new();
        if (md->ctx == NULL) {
            return -1;
        }
    }

    if (EVP_DigestInit_ex2(md->ctx, md->md[alg], NULL) != 1
        || EVP_DigestUpdate(md->ctx, prev, DG_AUDIT_HEXLEN) != 1
        || EVP_DigestUpdate(md->ctx, a, alen) != 1
        || (blen && EVP_DigestUpdate(md->ctx, b, blen) != 1)
        || EVP_DigestFinal_ex(md->ctx, dg, &mdlen) != 1
        || mdlen != DG_AUDIT_HEXLEN / 2)
    {
        return -1;
    }

    for (i = 0; i < mdlen; i++) {
        out[2 * i] = dg_audit_hex[dg[i] >> 4];
        out[2 * i + 1] = dg_audit_hex[dg[i] & 0xf];
    }

    out[DG_AUDIT_HEXLEN] = '\0';

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
    char      head[DG_AREC_HEAD];
    char     *start, *p;
    size_t    hlen, elen, used;
    unsigned  i, listed;
    int       n;

    if (r->nested) {
        dg_arec_obj_end(r);
    }

    n = snprintf(head, sizeof(head), "{\"seq\":%" PRIu64, seq);
    hlen = (size_t) n;
    start = r->buf + DG_AREC_HEAD - hlen;
    memcpy(start, head, hlen);

    p = r->buf + r->len;

    if (r->lost) {
        p += sprintf(p, ",\"lost\":%" PRIu64, r->lost);
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

    p += sprintf(p, ",\"alg\":\"%s\",\"prev\":\"", dg_audit_alg_name(alg));
    memcpy(p, prev, DG_AUDIT_HEXLEN);
    p += DG_AUDIT_HEXLEN;
    *p++ = '"';
    *p++ = '}';

    if (dg_audit_digest_parts(md, alg, prev, start, p - start, NULL, 0,
                              hash)
        != 0)
    {
        return -1;
    }

    p--;                        /* over the closing brace */
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
