/*
 * datagate core: Redis key schema and the run-time grant envelope.
 */

#include <string.h>

#include <openssl/crypto.h>

#include "dg_rstate.h"


static const char  dg_rs_hex[] = "0123456789abcdef";


int
dg_rs_id_ok(const char *s, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (s == NULL || len == 0 || len > DG_RS_ID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        if (c <= 0x20 || c == 0x7f || c == '|') {
            return 0;
        }
    }

    return 1;
}


size_t
dg_rs_key(char *buf, size_t cap, const char *prefix, const char *a,
    size_t alen, const char *b, size_t blen)
{
    size_t  n, plen;

    plen = strlen(prefix);

    if (!dg_rs_id_ok(a, alen) || (b != NULL && !dg_rs_id_ok(b, blen))) {
        return 0;
    }

    n = plen + alen + (b ? 1 + blen : 0);

    if (n + 1 > cap) {
        return 0;
    }

    memcpy(buf, prefix, plen);
    memcpy(buf + plen, a, alen);

    if (b) {
        buf[plen + alen] = '|';
        memcpy(buf + plen + alen + 1, b, blen);
    }

    buf[n] = '\0';

    return n;
}


size_t
dg_secret_len(const uint8_t *buf, size_t len)
{
    size_t  i, n;

    n = len;

    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }

    for (i = 0; i < n; i++) {
        if (buf[i] < 0x20 || buf[i] > 0x7e) {
            return len;                 /* binary: every byte is key */
        }
    }

    return n;
}


int
dg_rs_mac_key(const uint8_t *secret, size_t len, uint8_t key[DG_SHA256_LEN])
{
    dg_bytes_t  msg;

    if (secret == NULL || len == 0) {
        return -1;
    }

    msg.data = "redis-mac";
    msg.len = sizeof("redis-mac") - 1;

    return dg_hmac_sha256(secret, len, &msg, 1, key);
}


static int
dg_rs_mac(const uint8_t key[DG_SHA256_LEN], const char *rkey, size_t rklen,
    const char *yaml, size_t ylen, uint8_t mac[DG_SHA256_LEN])
{
    dg_bytes_t  msg[3];

    msg[0].data = rkey;
    msg[0].len = rklen;
    msg[1].data = "\n";
    msg[1].len = 1;
    msg[2].data = yaml;
    msg[2].len = ylen;

    return dg_hmac_sha256(key, DG_SHA256_LEN, msg, 3, mac);
}


size_t
dg_rs_grant_seal(const uint8_t key[DG_SHA256_LEN], const char *rkey,
    size_t rklen, const char *yaml, size_t ylen, char *out, size_t cap)
{
    size_t   i, n;
    uint8_t  mac[DG_SHA256_LEN];

    n = sizeof(DG_RS_MAGIC) - 1 + DG_RS_MAC_HEX + 1 + ylen;

    if (n > DG_RS_GRANT_MAX || n > cap) {
        return 0;
    }

    if (dg_rs_mac(key, rkey, rklen, yaml, ylen, mac) != 0) {
        return 0;
    }

    memcpy(out, DG_RS_MAGIC, sizeof(DG_RS_MAGIC) - 1);
    out += sizeof(DG_RS_MAGIC) - 1;

    for (i = 0; i < DG_SHA256_LEN; i++) {
        *out++ = dg_rs_hex[mac[i] >> 4];
        *out++ = dg_rs_hex[mac[i] & 0xf];
    }

    *out++ = '\n';
    memcpy(out, yaml, ylen);

    return n;
}


static int
dg_rs_unhex(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


int
dg_rs_grant_open(const uint8_t key[DG_SHA256_LEN], const char *rkey,
    size_t rklen, const char *value, size_t vlen, const char **yaml,
    size_t *ylen)
{
    int         hi, lo;
    size_t      i, hlen;
    uint8_t     want[DG_SHA256_LEN], got[DG_SHA256_LEN];
    const char  *p;

    hlen = sizeof(DG_RS_MAGIC) - 1 + DG_RS_MAC_HEX + 1;

    if (value == NULL || vlen < hlen || vlen > DG_RS_GRANT_MAX
        || memcmp(value, DG_RS_MAGIC, sizeof(DG_RS_MAGIC) - 1) != 0
        || value[hlen - 1] != '\n')
    {
        return -1;
    }

    p = value + sizeof(DG_RS_MAGIC) - 1;

    for (i = 0; i < DG_SHA256_LEN; i++) {
        hi = dg_rs_unhex((unsigned char) p[2 * i]);
        lo = dg_rs_unhex((unsigned char) p[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        got[i] = (uint8_t) (hi << 4 | lo);
    }

    if (dg_rs_mac(key, rkey, rklen, value + hlen, vlen - hlen, want) != 0) {
        return -1;
    }

    if (CRYPTO_memcmp(want, got, DG_SHA256_LEN) != 0) {
        return -2;
    }

    *yaml = value + hlen;
    *ylen = vlen - hlen;

    return 0;
}
