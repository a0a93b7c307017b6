/*
 * datagate core: the SHA-256 sizes and HMAC-SHA-256, for the policy
 * version, certificate fingerprints, pseudonym keys, the MAC of run-time
 * grants and of shared decisions.
 */

#ifndef DG_CRYPTO_H
#define DG_CRYPTO_H

#include <stddef.h>
#include <stdint.h>


#define DG_SHA256_LEN           32                  /* bytes of a digest */
#define DG_SHA256_HEX_LEN       (2 * DG_SHA256_LEN) /* its hex digits */


typedef struct {
    const void                 *data;
    size_t                      len;
} dg_bytes_t;


/*
 * HMAC-SHA-256 under key of the n parts, one after the other, into mac.
 * 0, or -1 when OpenSSL fails.
 */
int dg_hmac_sha256(const void *key, size_t klen, const dg_bytes_t *parts,
    size_t n, uint8_t mac[DG_SHA256_LEN]);

#endif /* DG_CRYPTO_H */
