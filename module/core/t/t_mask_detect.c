/*
 * Unit tests of the masker's safety net (module/core/dg_mask_detect.c,
 * dg_mask_scan.h): candidates at every offset of the detect windows, the
 * forms people write numbers in, free text, and the byte-class tables.
 */

#define _GNU_SOURCE     /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "dg_mask.h"
#include "dg_mask_int.h"
#include "dg_mask_scan.h"
#include "t_mask_util.h"


/*
 * Detect passes plain strings that cannot hold a candidate in one step
 * (dg_mask_det_clean, windows of 64 bytes 53 apart): at every offset of
 * strings up to 233 bytes a mobile number is still masked, also right
 * after a capital or with 86 before it, while runs of 10 digits or of 12 pass unchanged, each
 * document whole as byte by byte.
 */
static void
test_detect_offsets(void)
{
    static const char  fill[] = "abcdefghij-ABCDEFGHI-0123456789-";
    static const char *run[5] = { "1381234567", "13812345678", "A13812345678",
                                  "138123456789", "8613812345678" };
    dg_mask_rules_t   *r;
    dg_mask_conf_t     conf;
    dg_mask_t         *m;
    tm_buf_t           whole, bytes;
    char               doc[4096], str[5][256];
    void              *mem;
    size_t             n, i, j, k, off, tail, bad, leak, miss;
    int                rc;

    r = dg_mask_rules_compile(NULL, 0, DG_MASK_DETECT, NULL, 0);
    if (!ok(r != NULL, "detect offsets: rules compile")) {
        return;
    }

    setup_conf(&conf, r, NULL, 1024, 16);
    mem = tm_alloc(dg_mask_size(&conf));
    bad = leak = miss = 0;

    for (off = 0; off <= 150; off++) {
        for (tail = 0; tail <= 70; tail += 7) {
            /* fill (runs of at most 10), '-', the run, '-', more fill */
            for (j = 0; j < 5; j++) {
                for (i = 0; i < off; i++) {
                    str[j][i] = fill[i % (sizeof(fill) - 1)];
                }
                str[j][i++] = '-';
                k = strlen(run[j]);
                memcpy(str[j] + i, run[j], k);
                i += k;
                str[j][i++] = '-';
                for (k = 0; k < tail; k++, i++) {
                    str[j][i] = fill[i % (sizeof(fill) - 1)];
                }
                str[j][i] = '\0';
            }

            n = (size_t) snprintf(doc, sizeof(doc),
                                  "[{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%s\","
                                  "\"d\":\"%s\",\"e\":\"%s\",\"f\":1},"
                                  "{\"a\":\"%s\",\"b\":\"%s\",\"c\":\"%s\","
                                  "\"d\":\"%s\",\"e\":\"%s\"}]",
                                  str[0], str[1], str[2], str[3], str[4],
                                  str[0], str[1], str[2], str[3], str[4]);

            memset(&whole, 0, sizeof(whole));
            memset(&bytes, 0, sizeof(bytes));

            m = dg_mask_init(mem, &conf);
            rc = dg_mask_feed(m, (const uint8_t *) doc, n, 1, tm_emit,
                              &whole);

            m = dg_mask_init(mem, &conf);
            for (i = 0; rc == 0 && i < n; i++) {
                rc = dg_mask_feed(m, (const uint8_t *) doc + i, 1,
                                  i == n - 1, tm_emit, &bytes);
            }

            if (rc != 0 || whole.len != bytes.len
                || memcmp(whole.p, bytes.p, whole.len) != 0)
            {
                bad++;
            }

            if (rc == 0 && (memmem(whole.p, whole.len, "13812345678-", 12)
                            || memmem(whole.p, whole.len, "8613812", 7)))
            {
                leak++;
            }

            if (rc == 0 && (memmem(whole.p, whole.len, str[0], strlen(str[0]))
                            == NULL
                            || memmem(whole.p, whole.len, str[3],
                                      strlen(str[3])) == NULL
                            || memmem(whole.p, whole.len, "-138****5678-", 13)
                               == NULL
                            || memmem(whole.p, whole.len, "A138****5678-", 13)
                               == NULL))
            {
                miss++;
            }

            free(whole.p);
            free(bytes.p);
        }
    }

    ok(bad == 0, "detect offsets: whole as byte by byte (%zu differ)", bad);
    ok(leak == 0, "detect offsets: a mobile number at every offset is "
       "masked (%zu leak)", leak);
    ok(miss == 0, "detect offsets: runs of 10 and 12 digits pass unchanged, "
       "the numbers masked where expected (%zu not)", miss);

    free(mem);
    dg_mask_rules_free(r);
}


/*
 * The forms detect reads (digits in groups, country codes, full-width
 * digits and separators, escapes, an ID's x, a USCC) at every offset of
 * a string and of a key: masked the same in both, the same as
 * dg_mask_detect_text() masks that text, and the same whole, in two
 * pieces at every cut and byte by byte (cut inside a UTF-8 character,
 * an escape, at a separator).
 */
static void
test_detect_forms(void)
{
    static const char  *form[][2] = {
        { "+86 138 7711 2345", "+86 138 **** 2345" },
        { "138-7711-2345", "138-****-2345" },
        { "\xef\xbc\x91\xef\xbc\x93\xef\xbc\x98\xef\xbc\x97\xef\xbc\x97"
          "\xef\xbc\x91\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94"
          "\xef\xbc\x95", "138****2345" },
        { "\xef\xbc\x91\xef\xbc\x93\xef\xbc\x98\xef\xbc\x8d\xef\xbc\x97"
          "\xef\xbc\x97\xef\xbc\x91\xef\xbc\x91\xef\xbc\x8d\xef\xbc\x92"
          "\xef\xbc\x93\xef\xbc\x94\xef\xbc\x95",
          "138\xef\xbc\x8d****\xef\xbc\x8d" "2345" },
        { "138\xe3\x80\x80" "7711\xe3\x80\x80" "2345",
          "138\xe3\x80\x80****\xe3\x80\x80" "2345" },
        { "450103 19900307 1242", "450103 ******** 1242" },
        { "6222 0221 0310 3456 786", "************6786" },
        { "008613877112345", "0086138****2345" },
        { "11010519491231002x", "110105********002x" },
        { "4111-1111-1111-1111", "****-****-****-1111" },
        { "91350100M000100Y43", "913501********0Y43" },
        { "\\u0031\\u0033\\u0038 7711\\u00202345", "138 ****\\u00202345" },
        { "\\uff11\\uff13\\uff18\\u30007711 2345", "138\\u3000**** 2345" }
    };
    static const char   fill[] = "ab,c \xe4\xb8\xad" "d-e/f1 g";
    dg_mask_rules_t    *r;
    dg_mask_conf_t      conf;
    dg_mask_t          *m;
    tm_buf_t            whole, bytes, two;
    char                doc[2048], str[256], want[256], txt[2048];
    void               *mem;
    size_t              n, i, j, k, off, fl, cut, bad, miss, diff;
    int                 rc, tl;

    r = dg_mask_rules_compile(NULL, 0, DG_MASK_DETECT, NULL, 0);
    if (!ok(r != NULL, "detect forms: rules compile")) {
        return;
    }

    setup_conf(&conf, r, NULL, 1024, 16);
    mem = tm_alloc(dg_mask_size(&conf));
    bad = miss = diff = 0;
    fl = sizeof(fill) - 1;

    for (j = 0; j < sizeof(form) / sizeof(form[0]); j++) {
        for (off = 0; off <= 70; off++) {
            /* fill (no candidate, and a letter before the form), the
             * form, a letter, more fill */
            for (i = 0, k = 0; i < off; i++) {
                str[k++] = fill[i % fl];
            }
            str[k++] = 'z';
            n = strlen(form[j][0]);
            memcpy(str + k, form[j][0], n);
            k += n;
            memcpy(str + k, "z,end", 6);

            for (i = 0, k = 0; i < off; i++) {
                want[k++] = fill[i % fl];
            }
            want[k++] = 'z';
            n = strlen(form[j][1]);
            memcpy(want + k, form[j][1], n);
            k += n;
            memcpy(want + k, "z,end", 6);

            n = (size_t) snprintf(doc, sizeof(doc),
                                  "[{\"v\":\"%s\",\"%s\":[\"%s\"]},\"%s\"]",
                                  str, str, str, str);

            memset(&whole, 0, sizeof(whole));
            memset(&bytes, 0, sizeof(bytes));

            m = dg_mask_init(mem, &conf);
            rc = dg_mask_feed(m, (const uint8_t *) doc, n, 1, tm_emit,
                              &whole);

            m = dg_mask_init(mem, &conf);
            for (i = 0; rc == 0 && i < n; i++) {
                rc = dg_mask_feed(m, (const uint8_t *) doc + i, 1,
                                  i == n - 1, tm_emit, &bytes);
            }

            for (cut = 1; rc == 0 && cut < n; cut += 7) {
                memset(&two, 0, sizeof(two));
                rc = tm_feed(mem, &conf, (const uint8_t *) doc, n, &cut, 1,
                             &two, NULL);
                if (rc != 0 || two.len != whole.len
                    || memcmp(two.p, whole.p, whole.len) != 0)
                {
                    bad++;
                }
                free(two.p);
            }

            if (rc != 0 || whole.len != bytes.len
                || memcmp(whole.p, bytes.p, whole.len) != 0)
            {
                bad++;
            }

            snprintf(txt, sizeof(txt),
                     "[{\"v\":\"%s\",\"%s\":[\"%s\"]},\"%s\"]",
                     want, want, want, want);
            if (rc != 0 || whole.len != strlen(txt)
                || memcmp(whole.p, txt, whole.len) != 0)
            {
                if (!miss) {
                    diag("detect forms: '%s' gave '%.*s'", str,
                         (int) whole.len, whole.p ? (char *) whole.p : "");
                }
                miss++;
            }

            tl = dg_mask_detect_text(NULL, NULL, 0, (const uint8_t *) str,
                                     strlen(str), DG_MASK_TEXT_JSON,
                                     (uint8_t *) txt, sizeof(txt), NULL);
            if (tl != (int) strlen(want) || memcmp(txt, want, tl) != 0) {
                diff++;
            }

            free(whole.p);
            free(bytes.p);
        }
    }

    ok(bad == 0, "detect forms: whole as in two pieces and byte by byte "
       "(%zu differ)", bad);
    ok(miss == 0, "detect forms: masked in values, keys and elements at "
       "every offset (%zu not)", miss);
    ok(diff == 0, "detect forms: dg_mask_detect_text() masks the same "
       "(%zu differ)", diff);

    free(mem);
    dg_mask_rules_free(r);
}


/* the safety net on one whole text, JSON or plain (header values) */
static void
test_detect_text(void)
{
    dg_mask_spec_t  spec[DG_DETECT_MAX];
    uint64_t        hits[DG_DETECT_MAX];
    uint8_t         out[256];
    const char     *in;
    int             n;

    memset(hits, 0, sizeof(hits));
    in = "id=450103199003071242; tel=\"+86 138-7711-2345\"\\x";
    n = dg_mask_detect_text(NULL, NULL, 0, (const uint8_t *) in, strlen(in),
                            0, out, sizeof(out), hits);
    ok(n > 0 && (size_t) n == strlen("id=450103********1242; "
                                     "tel=\"+86 138-****-2345\"\\x")
       && memcmp(out, "id=450103********1242; tel=\"+86 138-****-2345\"\\x",
                 n) == 0, "detect text: plain, quotes and backslash are "
       "characters");
    ok(hits[DG_DETECT_ID_NUMBER] == 1 && hits[DG_DETECT_MOBILE] == 1,
       "detect text: hits counted");

    in = "attachment; filename=\"13877112345.pdf\"";
    n = dg_mask_detect_text(NULL, NULL, 0, (const uint8_t *) in, strlen(in),
                            0, out, sizeof(out), NULL);
    ok(n > 0 && memcmp(out, "attachment; filename=\"138****2345.pdf\"", n)
       == 0, "detect text: a file name");

    in = "no hit 2024-05-11 09:30:00";
    n = dg_mask_detect_text(NULL, NULL, 0, (const uint8_t *) in, strlen(in),
                            0, out, sizeof(out), NULL);
    ok(n == (int) strlen(in) && memcmp(out, in, n) == 0,
       "detect text: nothing hit, a copy");

    n = dg_mask_detect_text(NULL, NULL, 0, (const uint8_t *) "", 0, 0, out,
                            sizeof(out), NULL);
    is_int(n, 0, "detect text: empty");

    in = "13877112345";
    n = dg_mask_detect_text(NULL, NULL, 0, (const uint8_t *) in, strlen(in),
                            0, out, 5, NULL);
    is_int(n, DG_MASK_E_TOOBIG, "detect text: output too small");

    in = "a\\u0031\\u0033877112345\\n";
    n = dg_mask_detect_text(NULL, NULL, 0, (const uint8_t *) in, strlen(in),
                            DG_MASK_TEXT_JSON, out, sizeof(out), NULL);
    ok(n > 0 && memcmp(out, "a138****2345\\n", n) == 0,
       "detect text: JSON escapes read");

    in = "a\\q";
    n = dg_mask_detect_text(NULL, NULL, 0, (const uint8_t *) in, strlen(in),
                            DG_MASK_TEXT_JSON, out, sizeof(out), NULL);
    is_int(n, DG_MASK_E_SYNTAX, "detect text: a bad escape");

    in = "a\\u00";
    n = dg_mask_detect_text(NULL, NULL, 0, (const uint8_t *) in, strlen(in),
                            DG_MASK_TEXT_JSON, out, sizeof(out), NULL);
    is_int(n, DG_MASK_E_SYNTAX, "detect text: a cut escape");

    in = "x\xef\xbc";
    n = dg_mask_detect_text(NULL, NULL, 0, (const uint8_t *) in, strlen(in),
                            0, out, sizeof(out), NULL);
    ok(n == 3 && memcmp(out, in, 3) == 0, "detect text: a cut character "
       "passes");

    memset(spec, 0, sizeof(spec));
    spec[DG_DETECT_MOBILE].method = DG_MASK_REDACT;
    in = "tel 138 7711 2345";
    n = dg_mask_detect_text(spec, NULL, 0, (const uint8_t *) in, strlen(in),
                            0, out, sizeof(out), NULL);
    ok(n > 0 && memcmp(out, "tel ***", n) == 0,
       "detect text: a method that is no mask of each digit replaces the "
       "separators too");

    spec[DG_DETECT_MOBILE].method = DG_MASK_HASH;
    n = dg_mask_detect_text(spec, NULL, 0, (const uint8_t *) in, strlen(in),
                            0, out, sizeof(out), NULL);
    ok(n > 0 && memcmp(out, "tel 138 **** 2345", n) == 0,
       "detect text: hash without a key: the default method");
}


/*
 * The compile-time tables of dg_mask_scan.h against the definitions of
 * the byte classes and of detect's character codes, and DG_DET_ONE /
 * DG_DET_ONEX against the shapes of one group.
 */
static void
test_tables(void)
{
    unsigned  c, k, want, bad, n, kinds;
    uint8_t   g;

    bad = 0;

    for (c = 0; c < 256; c++) {
        want = 0;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            want |= C_WS;
        }
        if (c < 0x20 || c == '"' || c == '\\') {
            want |= C_STR;
        }
        if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')) {
            want |= C_DU | C_DC;
        }
        if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
            || (c >= 'A' && c <= 'F'))
        {
            want |= C_HEX;
        }
        if (c >= '0' && c <= '9') {
            want |= C_DIGIT;
        }
        if (c == ' ' || c == '-' || (c >= 0x80 && c <= 0x99) || c == 0xbc
            || c == 0xe3 || c == 0xef)
        {
            want |= C_DC;
        }
        if (c == 0xe3 || c == 0xef) {
            want |= C_MB;
        }
        if (c == ' ' || c == '-' || c == '\\' || c == 0xe3 || c == 0xef) {
            want |= C_CHAIN;
        }
        if (dg_mask_cls[c] != want) {
            diag("class of byte 0x%02x: %02x, want %02x", c, dg_mask_cls[c],
                 want);
            bad++;
        }

#if (DG_MASK_X86)
        /* the nibble tables of the vector C_DC test meet for C_DC */
        k = dg_mask_dc32[0][c >> 4] & dg_mask_dc32[1][c & 0x0f];
        if ((k != 0) != ((want & C_DC) != 0)
            || dg_mask_dc32[0][(c >> 4) + 16] != dg_mask_dc32[0][c >> 4]
            || dg_mask_dc32[1][(c & 0x0f) + 16] != dg_mask_dc32[1][c & 0x0f])
        {
            diag("C_DC nibble tables wrong for byte 0x%02x", c);
            bad++;
        }
#endif

        if (c < 0x80) {
            want = ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')
                    || c == 'x') ? c
                   : (c == ' ' || c == '-') ? DG_DET_SEP : DG_DET_OTHER;
            if (dg_det_ascii[c] != want) {
                diag("detect code of byte 0x%02x: %02x, want %02x", c,
                     dg_det_ascii[c], want);
                bad++;
            }
        }
    }

    is_int(bad, 0, "byte classes and detect codes as defined");

    bad = 0;

    for (n = 1; n <= DG_DET_DIGITS; n++) {
        g = (uint8_t) n;
        kinds = dg_mask_detect_shape(&g, 1);
        if (((DG_DET_ONE >> n) & 1) != (kinds != 0)) {
            diag("DG_DET_ONE bit %u", n);
            bad++;
        }
        g = (uint8_t) (n + 1);
        kinds = dg_mask_detect_shape(&g, 1);
        if (((DG_DET_ONEX >> n) & 1)
            != ((kinds & (1u << DG_DETECT_ID_NUMBER)) != 0))
        {
            diag("DG_DET_ONEX bit %u", n);
            bad++;
        }
    }

    is_int(bad, 0, "DG_DET_ONE, DG_DET_ONEX: the shapes of one group");
}


int
main(void)
{
    test_detect_offsets();
    test_detect_forms();
    test_detect_text();
    test_tables();

    return done_testing();
}
