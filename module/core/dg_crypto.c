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
