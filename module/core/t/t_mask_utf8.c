/*
 * The value scanner of the masking methods: the vector implementation
 * (AVX2 where the CPU has it) must agree with the scalar one on validity,
 * code points, byte classes and code point starts, for every length and
 * every way a value can be malformed.  On a CPU without AVX2 both sides
 * are the scalar scanner and the known vectors still run.
 */

#include <stdlib.h>
#include <stdint.h>
#include "dg_mask.h"
#include "dg_mask_int.h"
#include "dg_mask_scan.h"
#include "tap.h"


static uint64_t  rs = 0x9e3779b97f4a7c15ull;


static uint32_t
rnd(uint32_t n)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t) (rs % n);
}


/* 1: valid UTF-8, by the definition (RFC 3629 table), byte by byte */
static int
ref_valid(const uint8_t *p, size_t n, size_t *cp)
{
    size_t  i, k, c;
    uint32_t  u;

    c = 0;

    for (i = 0; i < n; i += k) {
        if (p[i] < 0x80) {
            k = 1;
            c++;
            continue;
        }

        if (p[i] >= 0xc2 && p[i] <= 0xdf) {
            k = 2;
            u = p[i] & 0x1f;
        } else if (p[i] >= 0xe0 && p[i] <= 0xef) {
            k = 3;
            u = p[i] & 0x0f;
        } else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
            k = 4;
            u = p[i] & 0x07;
        } else {
            return 0;
        }

        if (i + k > n) {
            return 0;
        }

        for (size_t j = 1; j < k; j++) {
            if ((p[i + j] & 0xc0) != 0x80) {
                return 0;
            }
            u = (u << 6) | (p[i + j] & 0x3f);
        }

        if ((k == 3 && u < 0x800) || (k == 4 && u < 0x10000)
            || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff))
        {
            return 0;
        }

        c++;
    }

    *cp = c;
    return 1;
}


static int
check(const uint8_t *v, size_t len, const char *what)
{
    size_t    n0, n1, nr;
    unsigned  c0, c1;
    uint64_t  l0, l1, lr;
    int       r0, r1, rr, good;

    n0 = n1 = nr = 0;
    c0 = c1 = 0;
    l0 = l1 = 0;
    r0 = dg_mask_vscan_test(v, len, 0, &n0, &c0, &l0);
    r1 = dg_mask_vscan_test(v, len, 1, &n1, &c1, &l1);
    rr = ref_valid(v, len, &nr) ? 0 : -1;

    good = (r0 == rr && r1 == rr);

    if (good && rr == 0) {
        good = (n0 == nr && n1 == nr && c0 == c1);

        if (good) {
            /* the bitmaps, where computed, name the code point starts */
            lr = 0;
            for (size_t i = 0; i < len && i < 64; i++) {
                if ((v[i] & 0xc0) != 0x80) {
                    lr |= 1ull << i;
                }
            }
            good = (l0 == 0 || l0 == lr) && (l1 == 0 || l1 == lr);
        }
    }

    if (!good) {
        char  hex[3 * 200 + 1];

        for (size_t i = 0; i < len && i < 200; i++) {
            snprintf(hex + 3 * i, 4, " %02x", v[i]);
        }
        hex[3 * (len < 200 ? len : 200)] = '\0';
        diag("%s: len %zu scalar %d/%zu/%u simd %d/%zu/%u ref %d/%zu:%s",
             what, len, r0, n0, c0, r1, n1, c1, rr, nr, hex);
    }

    return good;
}


/* emit for the span test: appends to a buffer */
typedef struct {
    uint8_t   buf[4096];
    size_t    len;
} span_sink_t;


static int
span_emit(void *ctx, const uint8_t *p, size_t n)
{
    span_sink_t  *k = ctx;

    if (k->len + n > sizeof(k->buf)) {
        return -1;
    }
    memcpy(k->buf + k->len, p, n);
    k->len += n;
    return 0;
}


/*
 * dg_mask_apply_span() with the CPU's vector code against dg_mask_apply()
 * with the scalar code only, for one value: the value is copied to the
 * end of a heap block of len + slack bytes (end), so that a read past end
 * is caught under AddressSanitizer; the output buffer is either large (no
 * emit) or small, partly filled and flushed through emit.
 */
static int
span_check(const dg_mask_spec_t *spec, const uint8_t *val, size_t len,
    size_t slack, int small)
{
    static uint8_t    big[2048];
    static uint8_t    want[2048];
    static const uint8_t  key[] = "k3y";
    span_sink_t      *sink;
    dg_mask_out_t     o;
    uint8_t          *blk, *sbuf;
    size_t            pre, got_len;
    int               rw, rg, good;
    const uint8_t    *got;

    blk = malloc(len + slack ? len + slack : 1);
    sink = malloc(sizeof(*sink));
    sbuf = malloc(160);
    if (blk == NULL || sink == NULL || sbuf == NULL) {
        free(blk);
        free(sink);
        free(sbuf);
        return 0;
    }

    memcpy(blk, val, len);
    memset(blk + len, '"', slack);
    sink->len = 0;

    memset(&o, 0, sizeof(o));
    o.buf = want;
    o.cap = sizeof(want);
    rw = dg_mask_apply(&o, spec, blk, len, key, 3, 1);
    if (rw == 0) {
        rw = (int) o.len;
    }

    memset(&o, 0, sizeof(o));
    o.isa = dg_mask_cpu_isa();
    pre = 0;
    if (small) {
        /* a small buffer, partly used: the room check, the flush */
        pre = rnd(160);
        memset(sbuf, 'p', pre);
        o.buf = sbuf;
        o.cap = 160;
        o.len = pre;
        o.emit = span_emit;
        o.ctx = sink;
    } else {
        o.buf = big;
        o.cap = sizeof(big);
    }

    rg = dg_mask_apply_span(&o, spec, blk, len, blk + len + slack, key, 3,
                            (o.isa & DG_MASK_ISA_AVX2) != 0);

    if (small && rg == 0) {
        rg = dg_mask_out_flush(&o);
    }
    if (small) {
        got = sink->buf;
        got_len = sink->len;
    } else {
        got = big;
        got_len = o.len;
    }

    if (rw < 0) {
        good = (rg == rw);
    } else if (small) {
        good = (rg == 0 && got_len == pre + (size_t) rw
                && memcmp(got + pre, want, rw) == 0);
        for (size_t i = 0; good && i < pre; i++) {
            good = (got[i] == 'p');
        }
    } else {
        good = (rg == 0 && got_len == (size_t) rw
                && memcmp(got, want, rw) == 0);
    }

    if (!good) {
        diag("span: method %u a %u b %u len %zu slack %zu small %d: "
             "value %d/%zu, span %d/%zu", spec->method, spec->a, spec->b,
             len, slack, small, rw, rw > 0 ? (size_t) rw : 0, rg, got_len);
    }

    free(blk);
    free(sink);
    free(sbuf);
    return good;
}


int
main(void)
{
    static const char *bad[] = {
        "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf",
        "\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x80\x80\x80",
        "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
        "\xff", "\xfe", "\x80", "\xbf", "\xc3", "\xe4\xb8", "\xf0\x9f\x98",
        "a\x80", "\xe4\xb8\xad\x80", "\xc3\xa9\xa9", "\xf8\x88\x80\x80\x80"
    };
    static const char *good[] = {
        "", "a", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf",
        "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80",
        "\xf4\x8f\xbf\xbf", "\xe5\xb9\xbf\xe8\xa5\xbf",
        "\xf0\x9f\x99\x82", "\x7f", "\"", "\\"
    };
    static const uint8_t pool[] = {
        'a', '0', ' ', '"', '\\', 0x01, 0x1f, 0x7f, 0x80, 0x8f, 0x90, 0x9f,
        0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe4, 0xed, 0xef, 0xf0,
        0xf4, 0xf5, 0xff
    };
    static const char *chars[] = {
        "a", "Z", "9", "-", "\xc3\xa9", "\xe4\xb8\xad", "\xe5\xb9\xbf",
        "\xf0\x9f\x99\x82", "\xed\x9f\xbf", "\xee\x80\x80"
    };
    uint8_t   buf[200];
    size_t    len, i, pos, k, fails;
    int       it, all;

    all = 1;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* each malformed sequence at every offset of a 70-byte value of
         * Chinese text, so it meets every block position and boundary */
        for (pos = 0; pos + strlen(bad[i]) <= 70; pos++) {
            for (k = 0; k + 3 <= pos; k += 3) {
                memcpy(buf + k, "\xe4\xb8\xad", 3);
            }
            memset(buf + k, 'x', 70 - k);
            memcpy(buf + pos, bad[i], strlen(bad[i]));
            all &= check(buf, pos + strlen(bad[i]), "bad at end");
            all &= check(buf, 70, "bad inside");
        }
    }
    ok(all, "malformed sequences are refused at every offset");

    /* the same through masking in a span (the value scanners there), with
     * the value at the very end of what may be read and 40 bytes after */
    all = 1;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (pos = 0; pos + strlen(bad[i]) <= 70; pos++) {
            dg_mask_spec_t  sp;

            for (k = 0; k + 3 <= pos; k += 3) {
                memcpy(buf + k, "\xe4\xb8\xad", 3);
            }
            memset(buf + k, 'x', 70 - k);
            memcpy(buf + pos, bad[i], strlen(bad[i]));

            memset(&sp, 0, sizeof(sp));
            sp.method = (uint8_t) (pos % 2 ? DG_MASK_ADDRESS : DG_MASK_NAME);
            all &= span_check(&sp, buf, pos + strlen(bad[i]), 0, 0);
            all &= span_check(&sp, buf, 70, 40, 0);
            all &= span_check(&sp, buf, pos + strlen(bad[i]), 40, 0);
        }
    }
    ok(all, "and when masked in a span");

    all = 1;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        for (pos = 0; pos < 64; pos++) {
            memset(buf, 'a', pos);
            memcpy(buf + pos, good[i], strlen(good[i]));
            all &= check(buf, pos + strlen(good[i]), "good");
        }
    }
    ok(all, "boundary code points are accepted at every offset");

    /* random values: valid text with noise, lengths 0..150 */
    fails = 0;
    for (it = 0; it < 400000 && fails < 5; it++) {
        size_t  want = rnd(151);

        len = 0;
        while (len < want) {
            const char  *c = chars[rnd(sizeof(chars) / sizeof(chars[0]))];

            if (len + strlen(c) > want) {
                break;
            }
            memcpy(buf + len, c, strlen(c));
            len += strlen(c);
        }

        for (k = rnd(4) == 0 ? rnd(3) + 1 : 0; k > 0 && len > 0; k--) {
            buf[rnd(len)] = pool[rnd(sizeof(pool))];
        }

        if (!check(buf, len, "random")) {
            fails++;
        }
    }
    is_int((long long) fails, 0,
           "vector and scalar scanners agree on 400000 random values");

    /* random bytes from the interesting pool */
    fails = 0;
    for (it = 0; it < 200000 && fails < 5; it++) {
        len = rnd(80);
        for (i = 0; i < len; i++) {
            buf[i] = pool[rnd(sizeof(pool))];
        }
        if (!check(buf, len, "pool")) {
            fails++;
        }
    }
    is_int((long long) fails, 0,
           "and on 200000 values of random troublesome bytes");
    /* masking a value in a span: every method, every length up to 150,
     * valid and not, with 0..100 readable bytes after it */
    {
        static const size_t  slacks[] = { 0, 1, 2, 3, 15, 31, 32, 33, 63,
                                           64, 65, 100 };
        dg_mask_spec_t       spec;

        fails = 0;
        for (it = 0; it < 300000 && fails < 5; it++) {
            size_t  want = rnd(151), turn = rnd(100);
            int     runs = rnd(3);

            len = 0;
            while (len < want) {
                /* runs: Chinese up to turn, then ASCII (or the reverse),
                 * so that whole blocks of either are common */
                const char  *c = runs == 0
                    ? chars[rnd(sizeof(chars) / sizeof(chars[0]))]
                    : ((len < turn) == (runs == 1)) ? chars[5 + rnd(2)]
                                                    : chars[rnd(4)];

                if (len + strlen(c) > want) {
                    break;
                }
                memcpy(buf + len, c, strlen(c));
                len += strlen(c);
            }

            for (k = rnd(6) == 0 ? rnd(3) + 1 : 0; k > 0 && len > 0; k--) {
                buf[rnd(len)] = pool[rnd(sizeof(pool))];
            }

            if (rnd(6) == 0 && len > 0) {
                /* a byte taken out: a sequence cut anywhere, often at
                 * a block end before ASCII */
                pos = rnd(len);
                memmove(buf + pos, buf + pos + 1, len - pos - 1);
                len--;
            }

            memset(&spec, 0, sizeof(spec));
            spec.method = (uint8_t) (1 + rnd(DG_MASK_METHOD_MAX - 1));
            if (spec.method == DG_MASK_KEEP || spec.method == DG_MASK_ADDRESS) {
                spec.a = (uint8_t) (rnd(4) == 0 ? rnd(80) : rnd(8));
                spec.b = spec.method == DG_MASK_KEEP
                         ? (uint8_t) (rnd(4) == 0 ? rnd(80) : rnd(8)) : 0;
            }

            if (!span_check(&spec, buf, len,
                            rnd(3) ? slacks[rnd(sizeof(slacks)
                                                / sizeof(slacks[0]))]
                                   : rnd(130),
                            rnd(4) == 0))
            {
                fails++;
            }
        }
        is_int((long long) fails, 0,
               "masking in a span agrees with the scalar code on 300000 values");
    }

    is_str(dg_mask_strerror(DG_MASK_E_UTF8), "invalid UTF-8 in a masked value",
           "the error the methods return for it");

    return done_testing();
}
