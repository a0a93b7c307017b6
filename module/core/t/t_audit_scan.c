/*
 * Unit tests: reading audit records for reports (dg_audit_scan).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "dg_audit_scan.h"


static dg_ascan_t  rec;
static char        scratch[65536];


static int
scan(const char *line, const char **err)
{
    const char  *e;

    e = NULL;
    if (err == NULL) {
        err = &e;
    }

    return dg_audit_scan(&rec, line, strlen(line), scratch, sizeof(scratch),
                         err);
}


static int
view_is(dg_aview_t v, const char *want)
{
    if (want == NULL) {
        return v.data == NULL;
    }

    return v.data != NULL && v.len == strlen(want)
           && memcmp(v.data, want, v.len) == 0;
}


/* a view as a C string, for is_str() */
static const char *
str(dg_aview_t v)
{
    static char  buf[256];

    if (v.data == NULL) {
        return NULL;
    }

    snprintf(buf, sizeof(buf), "%.*s", (int) v.len, v.data);

    return buf;
}


static void
test_record(void)
{
    const char  *err;

    /* a record as the gateway writes it */
    is_int(scan("{\"seq\":42,\"time\":\"2024-05-11T09:30:00.123+08:00\","
                "\"request_id\":\"5f0c\",\"consumer\":\"civil-affairs."
                "assistance\",\"cert_serial\":\"15\",\"client\":\"10.0.0.1\","
                "\"peer\":\"10.0.0.1\",\"country\":\"CN\",\"region\":"
                "\"CN-GX\",\"dataset\":\"population.person\",\"level\":3,"
                "\"purpose\":\"social-assistance\",\"approval\":\"GXSJ\","
                "\"method\":\"GET\",\"uri\":\"/population/1\",\"decision\":"
                "\"allowed\",\"reason\":\"ok\",\"status\":200,\"bytes\":912,"
                "\"masked\":{\"person.id_number\":1,\"person.phone\":2},"
                "\"duration_ms\":3,\"policy\":\"9c1f\",\"alg\":\"sha256\","
                "\"prev\":\"d9fe\",\"hash\":\"6f62\"}", &err), 0,
           "a gateway record reads");
    ok(view_is(rec.consumer, "civil-affairs.assistance"), "consumer");
    is_str(str(rec.dataset), "population.person", "dataset");
    ok(view_is(rec.purpose, "social-assistance"), "purpose");
    ok(view_is(rec.reason, "ok"), "reason");
    ok(rec.allowed && !rec.denied, "allowed");
    is_int(rec.status, 200, "status");
    is_int(rec.bytes, 912, "bytes");
    ok(!rec.has_records, "no \"records\": not counted as 0");
    is_int(rec.time_ms, 1715391000123LL, "time in ms since the epoch");
    is_int(rec.nmasked, 2, "two masked classes");
    ok(view_is(rec.masked[1].name, "person.phone")
       && rec.masked[1].count == 2, "masked person.phone 2");

    /* members added later, of every JSON type, are skipped */
    is_int(scan("{\"chain\":3,\"mac\":\"ab\",\"x\":[1,-2.5e+3,true,false,"
                "null,{\"a\":[[]],\"b\":{}}],\"time\":\"2024-05-11T09:30:00Z\","
                "\"y\":{\"z\":\"q\\\"\\u00e9\"},\"decision\":\"denied\","
                "\"reason\":\"rate_limited\",\"records\":7,\"lost\":2,"
                "\"consumer\":null}", &err), 0,
           "unknown members of every type are skipped");
    ok(rec.denied && !rec.allowed, "denied");
    ok(rec.has_records && rec.records == 7, "records read when present");
    is_int(rec.lost, 2, "lost");
    ok(view_is(rec.consumer, NULL), "consumer null");
    ok(view_is(rec.purpose, NULL), "purpose absent");
    is_int(rec.time_ms, 1715419800000LL, "Z time");

    /* escapes: unescaped into the scratch buffer */
    is_int(scan("{\"time\":\"2024-05-11T09:30:00+08:00\",\"decision\":"
                "\"denied\",\"purpose\":\"\\u4e2d\\u6587\\\"x\\\\\","
                "\"consumer\":\"\\ud83d\\ude00\",\"dataset\":\"\\ud800z\"}",
                &err), 0, "escaped strings read");
    ok(view_is(rec.purpose, "\xe4\xb8\xad\xe6\x96\x87\"x\\"),
       "\\u escapes and quotes unescaped");
    ok(view_is(rec.consumer, "\xf0\x9f\x98\x80"), "a surrogate pair");
    ok(view_is(rec.dataset, "\xef\xbf\xbdz"), "a lone surrogate: U+FFFD");

    /* a record of another kind: a "seq", no "decision" */
    is_int(scan("{\"seq\":9,\"event\":\"checkpoint\",\"hash\":\"ab\"}",
                &err), 1, "a record that is not a call: 1");
    ok(rec.has_seq && rec.seq == 9, "its seq");
    is_int(scan("{\"event\":\"checkpoint\"}", &err), -1,
           "no seq, no decision: refused");

    /* whitespace is JSON's */
    is_int(scan(" { \"time\" : \"1970-01-01T00:00:00Z\" , \"decision\" :"
                " \"allowed\" } ", &err), 0, "whitespace around tokens");
    is_int(rec.time_ms, 0, "the epoch");
    is_int(scan("{\"time\":\"1969-12-31T23:59:59.5Z\",\"decision\":"
                "\"allowed\"}", &err), 0, "before the epoch");
    is_int(rec.time_ms, -500, "before the epoch: negative ms");
}


static void
test_refused(void)
{
    int          i;
    char         deep[400];
    const char  *err;

    static const char  *bad[][2] = {
        { "", "an empty line" },
        { "garbage", "not JSON" },
        { "[1]", "an array" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\"} x",
          "text after the object" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\"",
          "a torn record" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"decision\":\"denied\"}", "decision twice" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"time\":\"2024-05-12T09:30:00Z\"}", "time twice" },
        { "{\"decision\":\"allowed\"}", "no time" },
        { "{\"time\":\"2024-05-11T09:30:00Z\"}", "no decision" },
        { "{\"time\":\"2024-05-11 09:30:00Z\",\"decision\":\"allowed\"}",
          "a time with a space" },
        { "{\"time\":\"2024-13-11T09:30:00Z\",\"decision\":\"allowed\"}",
          "month 13" },
        { "{\"time\":\"2024-05-11T09:30:00+0800\",\"decision\":\"allowed\"}",
          "an offset without a colon" },
        { "{\"time\":\"2024-05-11T09:30:00.Z\",\"decision\":\"allowed\"}",
          "a fraction without digits" },
        { "{\"time\":\"2024-05-11T09:30:00\",\"decision\":\"allowed\"}",
          "a time without an offset" },
        { "{\"time\":null,\"decision\":\"allowed\"}", "time null" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"maybe\"}",
          "an unknown decision" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"bytes\":-1}", "negative bytes" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"bytes\":1.5}", "fractional bytes" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"bytes\":1e3}", "bytes with an exponent" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"bytes\":18446744073709551616}", "bytes beyond 64 bits" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"bytes\":012}", "a leading zero" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"bytes\":\"12\"}", "bytes as a string" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"masked\":[1]}", "masked not an object" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"masked\":{\"a\":\"1\"}}", "a masked count as a string" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"consumer\":\"a\tb\"}", "a raw control character" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"consumer\":\"\\x41\"}", "a bad escape" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"consumer\":\"\\u12\"}", "a short \\u escape" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"consumer\":7}", "consumer a number" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"x\":tru}", "a broken literal in a skipped member" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"x\":[1,]}", "a trailing comma in a skipped member" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\","
          "\"x\":-}", "a lone minus" },
        { "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":\"allowed\",}",
          "a trailing comma" },
    };

    for (i = 0; i < (int) (sizeof(bad) / sizeof(bad[0])); i++) {
        err = NULL;
        ok(scan(bad[i][0], &err) == -1 && err != NULL, "refused: %s (%s)",
           bad[i][1], err ? err : "no reason");
    }

    /* nesting beyond the bound */
    strcpy(deep, "{\"time\":\"2024-05-11T09:30:00Z\",\"decision\":"
                 "\"allowed\",\"x\":");
    for (i = 0; i < DG_ASCAN_DEPTH_MAX + 1; i++) {
        strcat(deep, "[");
    }
    for (i = 0; i < DG_ASCAN_DEPTH_MAX + 1; i++) {
        strcat(deep, "]");
    }
    strcat(deep, "}");
    ok(scan(deep, &err) == -1, "nested too deep");
    diag("%s", err);

    /* a NUL byte inside a line */
    {
        static const char  nul[] = "{\"time\":\"2024-05-11T09:30:00Z\","
                                   "\"decision\":\"allo\0wed\"}";

        ok(dg_audit_scan(&rec, nul, sizeof(nul) - 1, scratch,
                         sizeof(scratch), &err) == -1,
           "a NUL byte in a string is refused");
    }

    /* the scratch buffer too small for an escaped string: refused */
    {
        static const char  esc[] = "{\"time\":\"2024-05-11T09:30:00Z\","
                                   "\"decision\":\"allowed\",\"purpose\":"
                                   "\"\\u4e2d\"}";

        ok(dg_audit_scan(&rec, esc, sizeof(esc) - 1, scratch, 8, &err)
           == -1, "no room to unescape: refused, not overrun");
    }
}


/* strings of every length around the eight bytes read at once: the end,
 * an escape or a control character at every place of a word */
static void
test_lengths(void)
{
    int          k, good;
    char         line[256], val[64];
    const char  *err;

    good = 1;

    for (k = 0; k < 40; k++) {
        memset(val, 'a' + k % 26, k);
        val[k] = '\0';

        snprintf(line, sizeof(line), "{\"time\":\"2024-05-11T09:30:00Z\","
                 "\"decision\":\"allowed\",\"purpose\":\"%s\",\"x\":1}",
                 val);
        good &= (scan(line, &err) == 0 && view_is(rec.purpose, val));

        snprintf(line, sizeof(line), "{\"time\":\"2024-05-11T09:30:00Z\","
                 "\"decision\":\"allowed\",\"purpose\":\"%s\\\"b\"}",
                 val);
        good &= (scan(line, &err) == 0 && rec.purpose.len == (size_t) k + 2
                 && rec.purpose.data[k] == '"');

        snprintf(line, sizeof(line), "{\"time\":\"2024-05-11T09:30:00Z\","
                 "\"decision\":\"allowed\",\"purpose\":\"%s\x1f\"}", val);
        good &= (scan(line, &err) == -1);

        snprintf(line, sizeof(line), "{\"time\":\"2024-05-11T09:30:00Z\","
                 "\"decision\":\"allowed\",\"purpose\":\"%s", val);
        good &= (scan(line, &err) == -1);
    }

    ok(good, "strings of 0 to 39 bytes: their end, an escape, a control"
       " character and a missing end found at every place");
}


static void
test_time(void)
{
    int64_t  ms;

    ok(dg_audit_time_parse("2024-02-29T23:59:59.999-05:30", 29, &ms) == 0
       && ms == 1709270999999LL, "a negative offset, a leap day");
    ok(dg_audit_time_parse("2024-05-11T09:30:00.1+08:00", 27, &ms) == 0
       && ms == 1715391000100LL, "one digit of fraction is tenths");
    ok(dg_audit_time_parse("2024-05-11T09:30:00.123456789Z", 30, &ms) == 0
       && ms == 1715419800123LL, "nine digits of fraction");
    ok(dg_audit_time_parse("2024-05-11T09:30:00.1234567890Z", 31, &ms)
       == -1, "ten digits of fraction refused");
    ok(dg_audit_time_parse("2024-05-11T24:00:00Z", 20, &ms) == -1,
       "hour 24 refused");
}


int
main(void)
{
    test_record();
    test_refused();
    test_lengths();
    test_time();

    return done_testing();
}
