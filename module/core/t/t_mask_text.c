/*
 * Unit tests of the safety net on one text (module/core/dg_mask_text.c):
 * the forms a header value carries a resident ID, mobile, bank card or
 * credit code in, and texts that must stay as they are.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "dg_mask.h"


typedef struct {
    const char         *name;
    const char         *in;
    const char         *out;        /* NULL: no hit, left as is */
    const char         *kinds;      /* "id,mobile,bank,uscc" counts */
} tcase_t;


static const tcase_t  cases[] = {

    /* plain */
    { "query id", "/person/1?id=450103199003071242",
      "/person/1?id=450103********1242", "1,0,0,0" },
    { "mobile", "tel=13877112345", "tel=138****2345", "0,1,0,0" },
    { "bank card", "card 6222021234567890128 end",
      "card ************0128 end", "0,0,1,0" },
    { "id with X", "45010319900307104X", "450103********104X", "1,0,0,0" },
    { "id with x", "k=45010319900307104x;", "k=450103********104x;",
      "1,0,0,0" },
    { "bounded by letters", "id450103199003071242abc",
      "id450103********1242abc", "1,0,0,0" },
    { "two hits", "a=13877112345;b=450103199003071242",
      "a=138****2345;b=450103********1242", "1,1,0,0" },
    { "credit code", "uscc=91450100MA5L0Q2T3T",
      "uscc=914501*******Q2T3T", "0,0,0,1" },

    /* separators */
    { "id in groups", "450103 19900307 1242", "450103********1242",
      "1,0,0,0" },
    { "mobile with dashes", "138-7711-2345", "138****2345", "0,1,0,0" },
    { "mobile +86", "+86 138 7711 2345", "+861******2345", "0,1,0,0" },
    { "mobile + as space", "q=138+7711+2345&x=1", "q=138****2345&x=1",
      "0,1,0,0" },
    { "card in fours", "6222 0212 3456 7890 128", "************0128",
      "0,0,1,0" },
    { "gap of three", "138 - 7711 - 2345", "138****2345", "0,1,0,0" },
    { "gap too long", "138    7711    2345", NULL, "0,0,0,0" },
    { "mobile with dots", "tel 138.7711.2345", "tel 138****2345",
      "0,1,0,0" },
    { "mobile after 0086", "t=008613877112345", "t=008********2345",
      "0,1,0,0" },
    { "mobile after 0086 and a space", "0086 138 7711 2345",
      "008********2345", "0,1,0,0" },
    { "a decimal is no card", "x=1715391000.123", NULL, "0,0,0,0" },

    /* encodings */
    { "percent",
      "id=%34%35%30%31%30%33%31%39%39%30%30%33%30%37%31%32%34%32",
      "id=450103********1242", "1,0,0,0" },
    { "percent twice", "%2534%2535%2530103199003071242",
      "450103********1242", "1,0,0,0" },
    { "percent thrice", "%252534501031990030712%34%32",
      "450103********1242", "1,0,0,0" },
    { "percent in a query", "/p?id%3D450103199003071242%26x%3D1",
      "/p?id%3D450103********1242%26x%3D1", "1,0,0,0" },
    { "full-width",
      "\xef\xbc\x91\xef\xbc\x93\xef\xbc\x98\xef\xbc\x97\xef\xbc\x97"
      "\xef\xbc\x91\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94"
      "\xef\xbc\x95", "138****2345", "0,1,0,0" },
    { "full-width percent-encoded",
      "n=%EF%BC%91%EF%BC%93%EF%BC%98%EF%BC%97%EF%BC%97%EF%BC%91%EF%BC%91"
      "%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95", "n=138****2345", "0,1,0,0" },
    { "ideographic space", "138\xe3\x80\x80" "7711\xe3\x80\x80" "2345",
      "138****2345", "0,1,0,0" },
    { "%u escapes", "%u0031%u0033%u0038%u0037%u0037%u0031%u0031%u0032"
      "%u0033%u0034%u0035", "138****2345", "0,1,0,0" },
    { "\\u escapes", "\\u0031\\u0033\\u0038\\u0037\\u0037\\u0031\\u0031"
      "\\u0032\\u0033\\u0034\\u0035", "138****2345", "0,1,0,0" },
    { "\\uFF11 escapes", "\\uFF11\\uFF13\\uFF18\\uFF17\\uFF17\\uFF11"
      "\\uFF11\\uFF12\\uFF13\\uFF14\\uFF15", "138****2345", "0,1,0,0" },
    { "html references", "&#49;&#51;&#56;&#x37;&#x37;&#49;&#49;&#50;&#51;"
      "&#52;&#53;", "138****2345", "0,1,0,0" },
    { "RFC 5987 file name",
      "attachment; filename*=UTF-8''%E8%BA%AB%E4%BB%BD"
      "450103199003071242.json",
      "attachment; filename*=UTF-8''%E8%BA%AB%E4%BB%BD"
      "450103********1242.json", "1,0,0,0" },
    { "cookie", "sid=abc; uid=450103199003071242; Path=/; HttpOnly",
      "sid=abc; uid=450103********1242; Path=/; HttpOnly", "1,0,0,0" },
    { "link", "</person/13877112345>; rel=\"next\"",
      "</person/138****2345>; rel=\"next\"", "0,1,0,0" },

    /* left alone */
    { "date", "Sat, 11 May 2024 09:30:00 GMT", NULL, "0,0,0,0" },
    { "max-age", "public, max-age=31536000, s-maxage=60", NULL, "0,0,0,0" },
    { "uuid", "550e8400-e29b-41d4-a716-446655440000", NULL, "0,0,0,0" },
    { "20 digits", "12345678901234567890", NULL, "0,0,0,0" },
    { "21 digits with the id in it", "145010319900307124210", NULL,
      "0,0,0,0" },
    { "timestamp", "1715391000", NULL, "0,0,0,0" },
    { "order number", "20240511093000123", NULL, "0,0,0,0" },
    { "bad id check", "450103199003071243", NULL, "0,0,0,0" },
    { "not a mobile", "12877112345", NULL, "0,0,0,0" },
    { "lower-case letters are no credit code", "91450100ma5l0q2t3t", NULL,
      "0,0,0,0" },
    { "short", "1387711234", NULL, "0,0,0,0" },
    { "bad percent", "%3%4%zz%", NULL, "0,0,0,0" },
    { "bad reference", "&#;&#x;&#99999999999;", NULL, "0,0,0,0" },

    { NULL, NULL, NULL, NULL }
};


static int
run(const dg_mask_conf_t *conf, const char *in, char *out, size_t *outlen,
    uint64_t *hits)
{
    int      rc;
    size_t   len;
    void    *work;
    uint8_t *o;

    len = strlen(in);
    work = malloc(dg_mask_text_work(len));
    o = malloc(dg_mask_text_outcap(len));

    if (work == NULL || o == NULL) {
        free(work);
        free(o);
        return -100;
    }

    rc = dg_mask_text(conf, (const uint8_t *) in, len, work, o, outlen,
                      hits);

    if (rc > 0) {
        memcpy(out, o, *outlen);
        out[*outlen] = '\0';
    }

    free(work);
    free(o);

    return rc;
}


int
main(void)
{
    int              rc;
    char             out[4096], want[64], *big;
    size_t           outlen, i;
    uint64_t         hits[DG_DETECT_MAX];
    dg_mask_conf_t   conf;
    const tcase_t   *t;
    static uint8_t   key[32] = "0123456789abcdef0123456789abcdef";

    memset(&conf, 0, sizeof(conf));
    conf.detect[DG_DETECT_ID_NUMBER].method = DG_MASK_ID_CARD;
    conf.detect[DG_DETECT_MOBILE].method = DG_MASK_PHONE;
    conf.detect[DG_DETECT_BANK_CARD].method = DG_MASK_BANK_CARD;
    conf.detect[DG_DETECT_USCC].method = DG_MASK_KEEP;
    conf.detect[DG_DETECT_USCC].a = 6;
    conf.detect[DG_DETECT_USCC].b = 5;

    diag("dg_mask_text: %zu bytes of work for a 4 KiB header",
         dg_mask_text_work(4096));

    for (t = cases; t->name; t++) {
        memset(hits, 0, sizeof(hits));
        out[0] = '\0';
        outlen = 0;

        rc = run(&conf, t->in, out, &outlen, hits);

        if (t->out == NULL) {
            is_int(rc, 0, "%s: no hit", t->name);

        } else {
            ok(rc > 0, "%s: a hit (rc %d)", t->name, rc);
            is_str(out, t->out, "%s: masked", t->name);
        }

        snprintf(want, sizeof(want), "%llu,%llu,%llu,%llu",
                 (unsigned long long) hits[0], (unsigned long long) hits[1],
                 (unsigned long long) hits[2], (unsigned long long) hits[3]);
        is_str(want, t->kinds, "%s: hits per kind", t->name);
    }

    /* methods: CLEAR falls back to the kind's default; hash uses the key */

    conf.detect[DG_DETECT_ID_NUMBER].method = DG_MASK_CLEAR;
    rc = run(&conf, "x450103199003071242", out, &outlen, NULL);
    is_str(rc > 0 ? out : "", "x450103********1242",
           "a CLEAR method masks with the default");

    conf.detect[DG_DETECT_ID_NUMBER].method = DG_MASK_HASH;
    rc = run(&conf, "x450103199003071242", out, &outlen, NULL);
    is_str(rc > 0 ? out : "", "x450103********1242",
           "hash without a key masks with the default");

    conf.hash_key = key;
    conf.hash_key_len = sizeof(key);
    rc = run(&conf, "x450103199003071242", out, &outlen, NULL);
    ok(rc == 1 && outlen == 33 && out[0] == 'x'
       && strspn(out + 1, "0123456789abcdef") == 32,
       "hash with a key: a pseudonym of 32 hex digits (%s)", out);

    conf.detect[DG_DETECT_ID_NUMBER].method = DG_MASK_DROP;
    rc = run(&conf, "x450103199003071242y", out, &outlen, NULL);
    is_str(rc > 0 ? out : "", "x***y", "drop writes ***");

    conf.detect[DG_DETECT_ID_NUMBER].method = DG_MASK_ID_CARD;

    /* many hits: the output stays within dg_mask_text_outcap() */

    big = malloc(12 * 300 + 1);
    if (big == NULL) {
        return 1;
    }

    for (i = 0; i < 300; i++) {
        memcpy(big + 12 * i, "13877112345,", 12);
    }
    big[12 * 300] = '\0';

    conf.detect[DG_DETECT_MOBILE].method = DG_MASK_HASH;
    {
        void     *work;
        uint8_t  *o;
        size_t    len;

        len = strlen(big);
        work = malloc(dg_mask_text_work(len));
        o = malloc(dg_mask_text_outcap(len));
        rc = dg_mask_text(&conf, (uint8_t *) big, len, work, o, &outlen,
                          NULL);
        is_int(rc, 300, "300 mobiles, each hashed");
        ok(outlen <= dg_mask_text_outcap(len), "within the output bound");
        free(work);
        free(o);
    }

    free(big);

    /* the quick test before the scan */

    ok(!dg_mask_text_candidate((const uint8_t *) "max-age=31536000", 16),
       "candidate: 8 digits cannot hold a hit");
    ok(dg_mask_text_candidate((const uint8_t *) "%31%33%38%37", 12),
       "candidate: escapes may");
    ok(dg_mask_text_candidate((const uint8_t *) "13877112345", 11),
       "candidate: 11 digits may");

    /* limits */

    rc = dg_mask_text(&conf, (const uint8_t *) "x", DG_MASK_TEXT_MAX + 1,
                      NULL, NULL, &outlen, NULL);
    is_int(rc, DG_MASK_E_TOOBIG, "a text over DG_MASK_TEXT_MAX is refused");

    return done_testing();
}
