/*
 * datagate core: HMAC-SHA-256 (OpenSSL's EVP_MAC).
 */

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "dg_crypto.h"


int
dg_hmac_sha256(const void *key, size_t klen, const dg_bytes_t *parts,
    size_t n, uint8_t mac[DG_SHA256_LEN])
{
    int            rc;
    size_t         i, len;
    EVP_MAC       *m;
    EVP_MAC_CTX   *ctx;
    OSSL_PARAM     params[2];

    if (key == NULL || (parts == NULL && n > 0)) {
        return -1;
    }

    rc = -1;
    ctx = NULL;

    m = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (m == NULL) {
        return -1;
    }

    ctx = EVP_MAC_CTX_new(m);
    if (ctx == NULL) {
        goto done;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();

    if (EVP_MAC_init(ctx, key, klen, params) != 1) {
        goto done;
    }

    for (i = 0; i < n; i++) {
        if (parts[i].len > 0
            && EVP_MAC_update(ctx, parts[i].data, parts[i].len) != 1)
        {
            goto done;
        }
    }

    len = 0;

    if (EVP_MAC_final(ctx, mac, &len, DG_SHA256_LEN) != 1
        || len != DG_SHA256_LEN)
    {
        goto done;
    }

    rc = 0;

done:

    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);

    return rc;
}


/* ---- SipHash-2-4 (Aumasson, Bernstein) ----------------------------- */

#define DG_SIPROUND                                                         \
    do {                                                                    \
        v0 += v1; v1 = DG_ROTL64(v1, 13); v1 ^= v0;                         \
        v0 = DG_ROTL64(v0, 32);                                             \
        v2 += v3; v3 = DG_ROTL64(v3, 16); v3 ^= v2;                         \
        v0 += v3; v3 = DG_ROTL64(v3, 21); v3 ^= v0;                         \
        v2 += v1; v1 = DG_ROTL64(v1, 17); v1 ^= v2;                         \
        v2 = DG_ROTL64(v2, 32);                                             \
    } while (0)


uint64_t
dg_siphash(const uint8_t key[DG_SIPHASH_KEY_LEN], const void *data,
    size_t len)
{
    size_t          i, left;
    uint64_t        k0, k1, v0, v1, v2, v3, m, b;
    const uint8_t  *p;

    p = data;
    k0 = dg_le64(key);
    k1 = dg_le64(key + 8);

    v0 = 0x736f6d6570736575ULL ^ k0;
    v1 = 0x646f72616e646f6dULL ^ k1;
    v2 = 0x6c7967656e657261ULL ^ k0;
    v3 = 0x7465646279746573ULL ^ k1;

    for (i = 0; i + 8 <= len; i += 8) {
        m = dg_le64(p + i);
        v3 ^= m;
        DG_SIPROUND;
        DG_SIPROUND;
        v0 ^= m;
    }

    b = (uint64_t) len << 56;
    left = len - i;

    while (left > 0) {
        left--;
        b |= (uint64_t) p[i + left] << (8 * left);
    }

    v3 ^= b;
    DG_SIPROUND;
    DG_SIPROUND;
    v0 ^= b;

    v2 ^= 0xff;
    DG_SIPROUND;
    DG_SIPROUND;
    DG_SIPROUND;
    DG_SIPROUND;

    return v0 ^ v1 ^ v2 ^ v3;
}
