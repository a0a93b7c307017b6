/*
 * Unit tests: the Redis key schema and the run-time grant envelope
 * (dg_rstate.c).
 */

#include <stdint.h>
#include <string.h>

#include "tap.h"
#include "dg_rstate.h"


int
main(void)
{
    int          rc;
    char         key[DG_RS_KEY_MAX], env[DG_RS_GRANT_MAX], big[300];
    size_t       klen, n, ylen;
    uint8_t      k1[32], k2[32];
    const char  *yaml, *g;

    (void) is_int;
    diag("Redis key schema and grant envelope");

    ok(dg_rs_id_ok("civil-affairs.assistance", 24), "plain id ok");
    ok(!dg_rs_id_ok("a|b", 3), "'|' refused");
    ok(!dg_rs_id_ok("a b", 3), "space refused");
    ok(!dg_rs_id_ok("a\nb", 3), "newline refused");
    ok(!dg_rs_id_ok("", 0), "empty refused");
    memset(big, 'x', sizeof(big));
    ok(!dg_rs_id_ok(big, sizeof(big)), "too long refused");

    klen = dg_rs_key(key, sizeof(key), DG_RS_GRANT, "c.x", 3, "d.y", 3);
    is_str(key, "datagate:grant:c.x|d.y", "grant key");
    ok(klen == strlen(key), "key length");
    dg_rs_key(key, sizeof(key), DG_RS_CERT, "1A2B", 4, NULL, 0);
    is_str(key, "datagate:revoked:cert:1A2B", "cert key");
    ok(dg_rs_key(key, sizeof(key), DG_RS_CERT, "a|b", 3, NULL, 0) == 0,
       "bad id: no key");
    ok(dg_rs_key(key, 10, DG_RS_CERT, "abc", 3, NULL, 0) == 0,
       "does not fit: no key");

    ok(dg_rs_mac_key((const uint8_t *) "0123456789abcdef0123456789abcdef",
                     32, k1) == 0, "mac key 1");
    ok(dg_rs_mac_key((const uint8_t *) "0123456789abcdef0123456789abcdeF",
                     32, k2) == 0, "mac key 2");
    ok(memcmp(k1, k2, 32) != 0, "different secrets, different keys");

    g = "consumer: c.x\ndataset: d.y\npurposes: [p]\n";
    klen = dg_rs_key(key, sizeof(key), DG_RS_GRANT, "c.x", 3, "d.y", 3);
    n = dg_rs_grant_seal(k1, key, klen, g, strlen(g), env, sizeof(env));
    ok(n == 4 + 64 + 1 + strlen(g), "sealed length");
    ok(memcmp(env, "DG1 ", 4) == 0 && env[68] == '\n', "envelope form");
    env[n] = '\0';
    is_str(env, "DG1 e669be714d409185f0c7f851361918b62cdfa9fff323f090221a681e5e"
           "1ece68\nconsumer: c.x\ndataset: d.y\npurposes: [p]\n",
           "envelope: HMAC-SHA-256(HMAC-SHA-256(secret, \"redis-mac\"), "
           "key \"\\n\" yaml)");

    rc = dg_rs_grant_open(k1, key, klen, env, n, &yaml, &ylen);
    ok(rc == 0, "opens with the right key");
    ok(ylen == strlen(g) && memcmp(yaml, g, ylen) == 0, "yaml back");

    ok(dg_rs_grant_open(k2, key, klen, env, n, &yaml, &ylen) == -2,
       "another secret: MAC does not verify");
    ok(dg_rs_grant_open(k1, "datagate:grant:c.x|d.z", klen, env, n, &yaml,
                        &ylen) == -2, "another key: MAC does not verify");
    env[n - 2] ^= 1;
    ok(dg_rs_grant_open(k1, key, klen, env, n, &yaml, &ylen) == -2,
       "edited yaml: MAC does not verify");
    env[n - 2] ^= 1;
    env[10] = 'z';
    ok(dg_rs_grant_open(k1, key, klen, env, n, &yaml, &ylen) == -1,
       "non-hex MAC: malformed");
    ok(dg_rs_grant_open(k1, key, klen, g, strlen(g), &yaml, &ylen) == -1,
       "no envelope: malformed");
    ok(dg_rs_grant_open(k1, key, klen, env, 20, &yaml, &ylen) == -1,
       "short: malformed");
    ok(dg_rs_grant_seal(k1, key, klen, g, DG_RS_GRANT_MAX, env,
                        sizeof(env)) == 0, "too large: not sealed");

    /* datagate_secret: text keys lose their line end, binary keys don't */
    {
        uint8_t  bin[33];
        size_t   i;

        for (i = 0; i < 32; i++) {
            bin[i] = (uint8_t) (0x80 + i);
        }
        bin[31] = '\n';
        is_int(dg_secret_len(bin, 32), 32,
               "binary key ending in LF is used whole");
        bin[31] = '\r';
        is_int(dg_secret_len(bin, 32), 32,
               "binary key ending in CR is used whole");
        is_int(dg_secret_len((const uint8_t *)
                             "0123456789abcdef0123456789abcdef\n", 33),
               32, "text key: trailing newline is not key");
        is_int(dg_secret_len((const uint8_t *)
                             "0123456789abcdef0123456789abcdef\r\n", 34),
               32, "text key: trailing CRLF is not key");
        is_int(dg_secret_len((const uint8_t *) "", 0), 0, "empty file");
    }

    return done_testing();
}
