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

#define DG_SIPHASH_KEY_LEN  16

#define DG_ROTL64(x, b)  (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))


/* eight bytes, little-endian */
static inline uint64_t
dg_le64(const uint8_t *p)
{
    return (uint64_t) p[0] | (uint64_t) p[1] << 8 | (uint64_t) p[2] << 16
           | (uint64_t) p[3] << 24 | (uint64_t) p[4] << 32
           | (uint64_t) p[5] << 40 | (uint64_t) p[6] << 48
           | (uint64_t) p[7] << 56;
}


/* SipHash-2-4 of data under a 16-byte key (abuse identifiers, trace
 * fingerprints) */
uint64_t dg_siphash(const uint8_t key[DG_SIPHASH_KEY_LEN], const void *data,
    size_t len);


#endif /* DG_CRYPTO_H */
