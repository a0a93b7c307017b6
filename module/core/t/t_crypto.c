/*
 * Unit tests: HMAC-SHA-256 (dg_crypto.c) against RFC 4231.
 */

#include <stdint.h>
#include <string.h>

#include "tap.h"
#include "dg_crypto.h"


static const char *
hex(const uint8_t *p, size_t n, char *out)
{
    size_t              i;
    static const char   digits[] = "0123456789abcdef";

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }

    out[2 * n] = '\0';

    return out;
}


int
main(void)
{
    char        h[DG_SHA256_HEX_LEN + 1];
    uint8_t     mac[DG_SHA256_LEN], key[131];
    dg_bytes_t  parts[4];

    is_int(DG_SHA256_LEN, 32, "SHA-256: 32 bytes");
    is_int(DG_SHA256_HEX_LEN, 64, "SHA-256: 64 hex digits");

    /* RFC 4231 test case 2 */
    parts[0].data = "what do ya want for nothing?";
    parts[0].len = strlen(parts[0].data);

    ok(dg_hmac_sha256("Jefe", 4, parts, 1, mac) == 0, "one part");
    is_str(hex(mac, DG_SHA256_LEN, h),
           "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
           "RFC 4231 case 2");

    /* the same message in parts, one of them empty */
    parts[0].data = "what do ya";
    parts[0].len = 10;
    parts[1].data = "";
    parts[1].len = 0;
    parts[2].data = " want for ";
    parts[2].len = 10;
    parts[3].data = "nothing?";
    parts[3].len = 8;

    memset(mac, 0, sizeof(mac));
    ok(dg_hmac_sha256("Jefe", 4, parts, 4, mac) == 0, "four parts");
    is_str(hex(mac, DG_SHA256_LEN, h),
           "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
           "parts: the MAC of their concatenation");

    /* RFC 4231 test case 6: a key longer than the block */
    memset(key, 0xaa, sizeof(key));
    parts[0].data = "Test Using Larger Than Block-Size Key - Hash Key First";
    parts[0].len = strlen(parts[0].data);

    ok(dg_hmac_sha256(key, sizeof(key), parts, 1, mac) == 0, "long key");
    is_str(hex(mac, DG_SHA256_LEN, h),
           "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
           "RFC 4231 case 6");

    if (!ok(dg_hmac_sha256(NULL, 4, parts, 1, mac) == -1, "no key: -1")) {
        diag("a MAC without a key");
    }
    ok(dg_hmac_sha256("Jefe", 4, NULL, 1, mac) == -1, "no parts: -1");

    return done_testing();
}
