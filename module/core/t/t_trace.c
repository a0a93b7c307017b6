/*
 * Unit tests: the provenance index (dg_trace.c): SipHash-2-4 against the
 * reference vectors, fingerprints, block layout, the JSON scanner.
 */

#include <stdint.h>
#include <string.h>

#include "tap.h"
#include "dg_trace.h"


#define T_MAX   64


typedef struct {
    uint64_t    fp[T_MAX];
    size_t      n;
} t_found_t;


static void
t_found(void *ctx, uint64_t fp)
{
    t_found_t  *f = ctx;

    if (f->n < T_MAX) {
        f->fp[f->n] = fp;
    }
    f->n++;
}


static const uint8_t  t_key[DG_TRACE_KEY_LEN] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
};


static void
test_siphash(void)
{
    size_t   i;
    uint8_t  in[64];

    for (i = 0; i < sizeof(in); i++) {
        in[i] = (uint8_t) i;
    }

    /* the reference implementation's vectors (key 00..0f, input 00..) */
    ok(dg_siphash(t_key, in, 0) == 0x726fdb47dd0e0e31ULL,
       "SipHash-2-4: empty input");
    ok(dg_siphash(t_key, in, 1) == 0x74f839c593dc67fdULL,
       "SipHash-2-4: 1 byte");
    ok(dg_siphash(t_key, in, 8) == 0x93f5f5799a932462ULL,
       "SipHash-2-4: 8 bytes");
    ok(dg_siphash(t_key, in, 15) == 0xa129ca6149be45e5ULL,
       "SipHash-2-4: 15 bytes");
}


static void
test_key(void)
{
    uint8_t  k1[DG_TRACE_KEY_LEN], k2[DG_TRACE_KEY_LEN];

    ok(dg_trace_key((const uint8_t *) "0123456789abcdef0123456789abcdef",
                    32, k1) == 0, "key derived");
    ok(dg_trace_key((const uint8_t *) "0123456789abcdef0123456789abcdeF",
                    32, k2) == 0, "another secret");
    ok(memcmp(k1, k2, sizeof(k1)) != 0, "another secret, another key");
    ok(dg_trace_fp(k1, (const uint8_t *) "110101", 6)
       != dg_trace_fp(k2, (const uint8_t *) "110101", 6),
       "a value's fingerprint depends on the secret");
}


static void
test_block(void)
{
    uint8_t  b[DG_TRACE_HEAD_MAX + DG_TRACE_FP_LEN];
    size_t   h;

    h = dg_trace_head(b, 0x01020304, 12, (const uint8_t *) "c-a", 3);
    is_int((long long) h, DG_TRACE_HEAD_FIXED + 3, "header: 11 + consumer");
    ok(memcmp(b, "DGT1", 4) == 0, "magic");
    ok(b[4] == 4 && b[7] == 1, "time little-endian");
    ok(b[8] == 12 && b[9] == 0, "count little-endian");
    ok(b[10] == 3 && memcmp(b + 11, "c-a", 3) == 0, "consumer");

    dg_trace_put_fp(b + h, 0x1122334455667788ULL);
    ok(b[h] == 0x88 && b[h + 7] == 0x11, "fingerprint little-endian");
    ok(dg_trace_get_fp(b + h) == 0x1122334455667788ULL, "read back");
}


static size_t
t_scan(const char *json, size_t chunk, const char *const *names,
    const size_t *lens, size_t nn, t_found_t *f)
{
    size_t            len, i, k;
    dg_trace_scan_t   s;

    memset(f, 0, sizeof(*f));
    dg_trace_scan_init(&s, t_key, names, lens, nn, t_found, f);

    len = strlen(json);
    for (i = 0; i < len; i += k) {
        k = (len - i < chunk) ? len - i : chunk;
        dg_trace_scan(&s, (const uint8_t *) json + i, k);
    }
    dg_trace_scan_end(&s);

    return f->n;
}


static uint64_t
t_fp(const char *v)
{
    return dg_trace_fp(t_key, (const uint8_t *) v, strlen(v));
}


static void
test_scan(void)
{
    size_t             chunk;
    t_found_t          f;
    static const char *names[] = { "id_card", "credit_code" };
    static const size_t lens[] = { 7, 11 };
    const char        *doc;

    doc = "{\"data\":[{\"id_card\":\"110101********1234\",\"name\":\"A\","
          "\"note\":\"id_card\"},{\"id_card\" : \"11\\u0030\", "
          "\"credit_code\":91350100,\"x\":{\"id_card\":null}},"
          "{\"id_card\":[\"x\"],\"credit_code\":\"q\\\"r\"}],"
          "\"n\":3}";

    for (chunk = 1; chunk <= 64; chunk *= 2) {
        t_scan(doc, chunk, names, lens, 2, &f);
        ok(f.n == 4, "chunk %zu: four traced values (got %zu)", chunk, f.n);
        ok(f.fp[0] == t_fp("110101********1234"),
           "chunk %zu: the masked form as sent", chunk);
        ok(f.fp[1] == t_fp("110"), "chunk %zu: a string decoded", chunk);
        ok(f.fp[2] == t_fp("91350100"), "chunk %zu: a number as written",
           chunk);
        ok(f.fp[3] == t_fp("q\"r"), "chunk %zu: an escaped quote", chunk);
    }

    /* every scalar member and array string: a leak read without names */
    t_scan("[{\"a\":\"x\",\"b\":12,\"c\":null},[\"y\"],\"z\"]", 3, NULL,
           NULL, 0, &f);
    ok(f.n == 4, "every scalar: four (got %zu)", f.n);
    ok(f.fp[0] == t_fp("x") && f.fp[1] == t_fp("12") && f.fp[2] == t_fp("y")
       && f.fp[3] == t_fp("z"), "every scalar: x 12 y z");

    t_scan("{\"id_card\":12}", 5, names, lens, 2, &f);
    ok(f.n == 1 && f.fp[0] == t_fp("12"), "a number at the very end");

    {
        char  big[1200], want[DG_TRACE_VALUE_MAX + 1];

        memset(big, 0, sizeof(big));
        memcpy(big, "{\"id_card\":\"", 12);
        memset(big + 12, 'x', 1000);
        memset(big + 12, 'a', 3);
        memcpy(big + 1012, "\"}", 2);
        memset(want, 'x', DG_TRACE_VALUE_MAX);
        memset(want, 'a', 3);
        want[DG_TRACE_VALUE_MAX] = '\0';

        for (chunk = 1; chunk <= 512; chunk *= 8) {
            t_scan(big, chunk, names, lens, 2, &f);
            ok(f.n == 1 && f.fp[0] == t_fp(want),
               "chunk %zu: a long value: its first %d bytes", chunk,
               DG_TRACE_VALUE_MAX);
        }
    }

    t_scan("{\"id_card\":\"\"}", 5, names, lens, 2, &f);
    ok(f.n == 0, "an empty value is not traced");
}


int
main(void)
{
    (void) is_str;
    diag("provenance index");

    test_siphash();
    test_key();
    test_block();
    test_scan();

    return done_testing();
}
