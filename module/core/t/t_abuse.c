/*
 * Unit tests: abuse detection (dg_abuse.c, dg_policy_abuse.c): identifiers
 * as the provider reads them, the enumeration sketch, sequential runs,
 * the volume baseline, the state's text form and the policy's "abuse:".
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "dg_abuse.h"
#include "dg_policy.h"


#define T0      1767225600LL    /* 2026-01-01T00:00:00Z, a Thursday */
#define MAXIDS  64


static const uint8_t  key[DG_ABUSE_KEY_LEN] = "0123456789abcdef";


static const char *
norm(const char *s, int query)
{
    static char  out[4][512];
    static int   n;
    char        *o;
    size_t       len;

    o = out[n++ & 3];
    len = dg_abuse_normalise(s, strlen(s), query, o);
    o[len] = '\0';

    return o;
}


static size_t
ids_of(const dg_abuse_conf_t *c, const char *path, const char *args,
    dg_abuse_id_t *ids, int *more)
{
    char    scratch[8192];
    size_t  plen, alen;

    plen = path ? strlen(path) : 0;
    alen = args ? strlen(args) : 0;

    return dg_abuse_ids(c, key, path, plen, args, alen, scratch, ids,
                        MAXIDS, more);
}


static uint64_t
hash_of(const char *normal)
{
    return dg_siphash(key, normal, strlen(normal));
}


static void
one_id(const char *s, dg_abuse_id_t *id)
{
    char    b[512];
    size_t  len;

    len = dg_abuse_normalise(s, strlen(s), 0, b);
    id->hash = dg_siphash(key, b, len);
    dg_abuse_numeric(key, b, len, id);
}


static dg_abuse_state_t *
state_new(const dg_abuse_conf_t *c)
{
    dg_abuse_state_t  *s;

    s = calloc(1, dg_abuse_state_size(c));
    dg_abuse_state_init(s, c);

    return s;
}


/* one request for the id text s at now */
static unsigned
req(dg_abuse_state_t *s, const dg_abuse_conf_t *c, int64_t now,
    const char *id, dg_abuse_result_t *res)
{
    dg_abuse_id_t      x;
    dg_abuse_input_t   in;
    dg_abuse_result_t  r;

    memset(&in, 0, sizeof(in));
    in.calls = 1;

    if (res == NULL) {
        res = &r;
    }

    if (id) {
        one_id(id, &x);
    }

    dg_abuse_observe(s, c, now, &x, id ? 1 : 0, 0, &in, res);

    return res->fired;
}


static void
test_normalise(void)
{
    is_str(norm("12345", 0), "12345", "a number stays");
    is_str(norm("00042", 0), "42", "leading zeros go");
    is_str(norm("+42", 0), "42", "a plus sign goes");
    is_str(norm("-007", 0), "-7", "a minus sign stays");
    is_str(norm("000", 0), "0", "zero stays zero");
    is_str(norm("%34%32", 0), "42", "percent-encoding is decoded");
    is_str(norm("%2534%2532", 0), "42", "double percent-encoding too");
    is_str(norm("%252534", 0), "4", "and threefold");
    is_str(norm("AbC-9X", 0), "abc-9x", "letters in lower case");
    is_str(norm("\xef\xbc\x91\xef\xbc\x92", 0), "12",
           "full-width digits are read as digits");
    is_str(norm("\xef\xbc\xa1\xef\xbd\x82", 0), "ab",
           "full-width letters as letters");
    is_str(norm("  42 ", 0), "42", "spaces around go");
    is_str(norm("+42", 1), "42", "in a query '+' is a space");
    is_str(norm("a+b", 1), "a b", "inside a query value too");
    is_str(norm("a+b", 0), "a+b", "but not in a path");
    is_str(norm("%zz", 0), "%zz", "a bad escape stays");
    is_str(norm("45010219900307123X", 0), "45010219900307123x",
           "a resident ID's X in lower case");
}


static void
test_ids(void)
{
    int              more;
    size_t           n;
    dg_abuse_conf_t  c;
    dg_abuse_id_t    ids[MAXIDS];

    memset(&c, 0, sizeof(c));
    c.set = 1;
    c.distinct = 10;

    n = ids_of(&c, "/person/0042", NULL, ids, &more);
    ok(n == 1 && ids[0].hash == hash_of("42"), "the last path segment");

    n = ids_of(&c, "/person/42/", NULL, ids, &more);
    ok(n == 1 && ids[0].hash == hash_of("42"), "a trailing slash too");

    n = ids_of(&c, "/person/42;jsessionid=9", NULL, ids, &more);
    ok(n == 1 && ids[0].hash == hash_of("42"), "path parameters left out");

    n = ids_of(&c, "/person/1,2,%33", NULL, ids, &more);
    ok(n == 3 && ids[2].hash == hash_of("3"), "a list in a segment: %zu", n);

    n = ids_of(&c, "/", NULL, ids, &more);
    ok(n == 0, "no segment, no identifier");

    c.id_param = "id";
    c.id_param_len = 2;

    n = ids_of(&c, "/person", "id=42", ids, &more);
    ok(n == 1 && ids[0].hash == hash_of("42"), "the id parameter");

    n = ids_of(&c, "/person", "x=1&id=7&id=8&ID=9", ids, &more);
    ok(n == 3 && ids[0].hash == hash_of("7") && ids[2].hash == hash_of("9"),
       "every value of a repeated parameter, in any case: %zu", n);

    n = ids_of(&c, "/person", "id[]=1&id[0]=2&%69d=3", ids, &more);
    ok(n == 3, "NAME[], NAME[n] and an encoded name: %zu", n);

    n = ids_of(&c, "/person", "id=1,2%2C3;id=4", ids, &more);
    ok(n == 4 && ids[1].hash == hash_of("2") && ids[3].hash == hash_of("4"),
       "commas, encoded commas and ';' separators: %zu", n);

    n = ids_of(&c, "/person", "idx=1&xid=2", ids, &more);
    ok(n == 1 && ids[0].hash == hash_of("person"),
       "other parameters are not ids: the path is read");

    n = ids_of(&c, "/person/55", "name=x", ids, &more);
    ok(n == 1 && ids[0].hash == hash_of("55"),
       "without the parameter the path segment counts");

    n = ids_of(&c, "/person", "id=%EF%BC%91%EF%BC%92", ids, &more);
    ok(n == 1 && ids[0].hash == hash_of("12"),
       "encoded full-width digits");

    {
        char    q[4096];
        size_t  i, l;

        l = 0;
        l += (size_t) snprintf(q + l, sizeof(q) - l, "id=");
        for (i = 0; i < MAXIDS + 5; i++) {
            l += (size_t) snprintf(q + l, sizeof(q) - l, "%zu,", i);
        }

        n = ids_of(&c, "/person", q, ids, &more);
        ok(n == MAXIDS && more, "more identifiers than counted: flagged");
    }
}


static void
test_numeric(void)
{
    dg_abuse_id_t  a, b;

    one_id("11010519491231002X", &a);
    ok(a.numeric && a.family == 0 && a.value == 11010519491231002ULL,
       "a resident ID with its check character: the 17 digits");

    one_id("110105194912310021", &a);
    ok(a.numeric && a.value == 110105194912310021ULL,
       "with a wrong check character: all 18 digits");

    one_id("ORD-00123", &a);
    one_id("ord-00124", &b);
    ok(a.numeric && b.numeric && a.value == 123 && b.value == 124
       && a.family == b.family && a.family != 0,
       "a prefix: the number after it, one family");

    one_id("inv-00124", &b);
    ok(b.family != a.family, "another prefix, another family");

    one_id("abc", &a);
    ok(!a.numeric, "no digits, no number");

    one_id("abcdefghijklmnopq\xff", &a);
    ok(!a.numeric, "18 bytes that are no digits are no resident ID");

    one_id("1234567890123456789012", &a);
    ok(a.numeric && a.value == 567890123456789012ULL && a.family != 0,
       "a long number: its last 18 digits, the rest a family");
}


static void
test_enumeration(void)
{
    int                i, fired_at;
    char               b[32];
    dg_abuse_conf_t    c;
    dg_abuse_state_t  *s;
    dg_abuse_result_t  res;

    memset(&c, 0, sizeof(c));
    c.set = 1;
    c.distinct = 500;
    c.window = 600;
    c.hll_p = dg_abuse_hll_p(c.distinct);

    is_int(c.hll_p, 10, "500 distinct: 1024 registers");
    is_int(dg_abuse_hll_p(10), DG_ABUSE_HLL_MIN_P, "at least 64");
    is_int(dg_abuse_hll_p(100000), DG_ABUSE_HLL_MAX_P, "at most 4096");

    s = state_new(&c);

    fired_at = 0;
    for (i = 1; i <= 1000 && !fired_at; i++) {
        snprintf(b, sizeof(b), "r%d", i * 7919);
        if (req(s, &c, T0 + i / 10, b, &res) & DG_ABUSE_K_ENUMERATION) {
            fired_at = i;
        }
    }

    ok(fired_at >= 480 && fired_at <= 530,
       "500 distinct in the window fires at about 501: %d", fired_at);
    ok(res.value[0] > 500 && res.limit[0] == 500, "with the count: %llu",
       (unsigned long long) res.value[0]);

    /* after firing it starts afresh */
    req(s, &c, T0 + 200, "r1", &res);
    ok(res.distinct <= 2, "the window starts afresh: %llu",
       (unsigned long long) res.distinct);

    free(s);

    /* repeats are one identifier */
    s = state_new(&c);
    fired_at = 0;
    for (i = 0; i < 5000; i++) {
        snprintf(b, sizeof(b), "%d", i % 400);
        if (req(s, &c, T0 + i / 20, b, &res)) {
            fired_at = 1;
        }
    }
    ok(!fired_at && res.distinct > 370 && res.distinct < 430,
       "400 ids asked again and again do not fire: %llu",
       (unsigned long long) res.distinct);
    free(s);

    /* the window slides: 400 now and 400 others 10 minutes later */
    s = state_new(&c);
    fired_at = 0;
    for (i = 0; i < 800; i++) {
        snprintf(b, sizeof(b), "x%d", i);
        if (req(s, &c, T0 + (i < 400 ? 0 : 700), b, &res)) {
            fired_at = 1;
        }
    }
    ok(!fired_at && res.distinct < 430,
       "identifiers older than the window no longer count: %llu",
       (unsigned long long) res.distinct);

    /* but within it they add up */
    for (i = 0; i < 200; i++) {
        snprintf(b, sizeof(b), "y%d", i);
        req(s, &c, T0 + 900, b, &res);
        if (res.fired) {
            break;
        }
    }
    ok(res.fired & DG_ABUSE_K_ENUMERATION,
       "400 + 200 within one window fire after %d more", i + 1);
    free(s);

    /* one request naming too many identifiers */
    s = state_new(&c);
    {
        dg_abuse_input_t  in;
        dg_abuse_id_t     x;

        memset(&in, 0, sizeof(in));
        in.calls = 1;
        one_id("1", &x);
        dg_abuse_observe(s, &c, T0, &x, 1, 1, &in, &res);
        ok(res.fired & DG_ABUSE_K_ENUMERATION,
           "a request naming more than can be counted fires");
    }
    free(s);

    /* accuracy of the sketch at 100 .. 2000 */
    {
        int  n, bad;

        bad = 0;
        for (n = 50; n <= 1000; n += 50) {
            c.distinct = 1000000;
            c.hll_p = 10;
            s = calloc(1, dg_abuse_state_size(&c) + 65536);
            c.distinct = 500;
            dg_abuse_state_init(s, &c);
            c.distinct = 1000000;
            for (i = 0; i < n; i++) {
                snprintf(b, sizeof(b), "acc%d-%d", n, i);
                req(s, &c, T0, b, &res);
            }
            if (res.distinct < n * 0.92 || res.distinct > n * 1.08) {
                bad++;
                diag("n %d estimate %llu", n, (unsigned long long)
                     res.distinct);
            }
            free(s);
        }
        ok(bad == 0, "1024 registers count 50..1000 within 8 %%");
        c.distinct = 500;
    }
}


static void
test_sequential(void)
{
    int                i, fired_at;
    char               b[64];
    dg_abuse_conf_t    c;
    dg_abuse_state_t  *s;
    dg_abuse_result_t  res;

    memset(&c, 0, sizeof(c));
    c.set = 1;
    c.sequential = 20;

    s = state_new(&c);
    fired_at = 0;
    for (i = 1; i <= 40 && !fired_at; i++) {
        snprintf(b, sizeof(b), "%d", 1000 + i);
        if (req(s, &c, T0 + i, b, &res) & DG_ABUSE_K_SEQUENTIAL) {
            fired_at = i;
        }
    }
    is_int(fired_at, 21, "a run of 21 ascending ids fires");
    is_int((long long) res.value[1], 21, "naming its length");
    free(s);

    s = state_new(&c);
    fired_at = 0;
    for (i = 1; i <= 40 && !fired_at; i++) {
        snprintf(b, sizeof(b), "%d", 5000 - 2 * i);
        if (req(s, &c, T0 + i, b, &res) & DG_ABUSE_K_SEQUENTIAL) {
            fired_at = i;
        }
    }
    is_int(fired_at, 21, "descending by 2 too");
    free(s);

    /* resident IDs walked with their check characters */
    s = state_new(&c);
    fired_at = 0;
    for (i = 1; i <= 40 && !fired_at; i++) {
        static const int   w[17] = { 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9,
                                     10, 5, 8, 4, 2 };
        static const char  chk[] = "10X98765432";
        int                k, sum;

        snprintf(b, sizeof(b), "45010219900307%03d", i);
        for (k = 0, sum = 0; k < 17; k++) {
            sum += (b[k] - '0') * w[k];
        }
        b[17] = chk[sum % 11];
        b[18] = '\0';

        if (req(s, &c, T0 + i, b, &res) & DG_ABUSE_K_SEQUENTIAL) {
            fired_at = i;
        }
    }
    is_int(fired_at, 21, "resident IDs in sequence, check characters and "
           "all");
    free(s);

    /* noise between the steps does not hide the run */
    s = state_new(&c);
    fired_at = 0;
    for (i = 1; i <= 200 && !fired_at; i++) {
        if (i % 3) {
            snprintf(b, sizeof(b), "%d", (i * 7919) % 100003 + 200000);
        } else {
            snprintf(b, sizeof(b), "%d", 1000 + i / 3);
        }
        if (req(s, &c, T0 + i, b, &res) & DG_ABUSE_K_SEQUENTIAL) {
            fired_at = i;
        }
    }
    ok(fired_at == 63, "two random ids between the steps: still found at "
       "request %d", fired_at);
    free(s);

    /* repeats neither break nor lengthen a run */
    s = state_new(&c);
    fired_at = 0;
    for (i = 1; i <= 80 && !fired_at; i++) {
        snprintf(b, sizeof(b), "%d", 1000 + (i + 1) / 2);
        if (req(s, &c, T0 + i, b, &res) & DG_ABUSE_K_SEQUENTIAL) {
            fired_at = i;
        }
    }
    ok(fired_at == 41, "each id twice: fired at the 21st id (request %d)",
       fired_at);
    free(s);

    /* steps too far apart in time are not a run */
    s = state_new(&c);
    fired_at = 0;
    for (i = 1; i <= 40; i++) {
        snprintf(b, sizeof(b), "%d", 1000 + i);
        if (req(s, &c, T0 + (int64_t) i * (DG_ABUSE_SEQ_GAP + 1), b, &res))
        {
            fired_at = i;
        }
    }
    ok(fired_at == 0 && res.run <= 1,
       "one step every %d s is not a run", DG_ABUSE_SEQ_GAP + 1);
    free(s);

    /* other prefixes do not continue a run; random ids make none */
    s = state_new(&c);
    fired_at = 0;
    for (i = 1; i <= 40; i++) {
        snprintf(b, sizeof(b), "%s-%d", (i & 1) ? "a" : "b", 100 + i);
        if (req(s, &c, T0 + i, b, &res)) {
            fired_at = i;
        }
    }
    ok(fired_at == 0, "alternating families step by 2 each: no run of 21");
    free(s);

    s = state_new(&c);
    fired_at = 0;
    srand(7);
    for (i = 1; i <= 5000; i++) {
        snprintf(b, sizeof(b), "%d", rand() % 100000);
        if (req(s, &c, T0 + i, b, &res)) {
            fired_at = i;
        }
    }
    ok(fired_at == 0, "5000 random ids out of 100000: no run");
    free(s);

    /* a list in one request */
    s = state_new(&c);
    {
        int               more;
        size_t            n;
        char              q[512];
        dg_abuse_id_t     ids[MAXIDS];
        dg_abuse_input_t  in;

        c.id_param = "id";
        c.id_param_len = 2;
        strcpy(q, "id=");
        for (i = 1; i <= 25; i++) {
            snprintf(q + strlen(q), sizeof(q) - strlen(q), "%d,", 700 + i);
        }
        n = ids_of(&c, "/p", q, ids, &more);
        memset(&in, 0, sizeof(in));
        in.calls = 1;
        dg_abuse_observe(s, &c, T0, ids, n, more, &in, &res);
        ok(res.fired & DG_ABUSE_K_SEQUENTIAL,
           "25 sequential ids in one request fire");
        c.id_param = NULL;
    }
    free(s);
}


static void
test_volume(void)
{
    int                i, fired, week;
    int64_t            t, hour0;
    dg_abuse_conf_t    c;
    dg_abuse_state_t  *s;
    dg_abuse_input_t   in;
    dg_abuse_result_t  res;

    memset(&c, 0, sizeof(c));
    c.set = 1;
    c.factor = 5;
    c.floor = 100;
    c.record_floor = 100;

    /* hour of the week */
    is_int(dg_abuse_hour_of_week(dg_abuse_hour(T0)), 3 * 24 + 8,
           "2026-01-01T00:00Z is Thursday 08:00 UTC+8");

    s = state_new(&c);
    memset(&in, 0, sizeof(in));
    in.calls = 1;
    in.base_calls = 50;     /* from a quota of 1200/day */

    t = T0 - (T0 % 3600) + 10;
    fired = 0;
    for (i = 1; i <= 300 && !fired; i++) {
        dg_abuse_observe(s, &c, t, NULL, 0, 0, &in, &res);
        if (res.fired & DG_ABUSE_K_VOLUME) {
            fired = i;
        }
    }
    is_int(fired, 251, "a new consumer: held to 5 x its quota's hourly "
           "share (250)");
    is_int((long long) res.limit[2], 250, "the limit in the result");

    dg_abuse_observe(s, &c, t + 1, NULL, 0, 0, &in, &res);
    ok(!(res.fired & DG_ABUSE_K_VOLUME), "once per hour");
    free(s);

    /* three weeks of 20 calls an hour, then an hour of 120 */
    s = state_new(&c);
    hour0 = (T0 - (T0 % 3600));
    fired = 0;
    for (week = 0; week < 3; week++) {
        for (i = 0; i < 168; i++) {
            int  k;

            t = hour0 + ((int64_t) week * 168 + i) * 3600 + 60;
            for (k = 0; k < 20; k++) {
                dg_abuse_observe(s, &c, t + k, NULL, 0, 0, &in, &res);
                if (res.fired) {
                    fired++;
                }
            }
        }
    }
    ok(fired == 0, "steady traffic never alerts");

    t = hour0 + 3 * 168 * 3600 + 60;
    fired = 0;
    for (i = 1; i <= 200 && !fired; i++) {
        dg_abuse_observe(s, &c, t + i, NULL, 0, 0, &in, &res);
        if (res.fired & DG_ABUSE_K_VOLUME) {
            fired = i;
        }
    }
    is_int(fired, 101, "learned 20/h: held to the floor of 100");

    /* a busier hour of the week learned as such */
    c.floor = 10;
    free(s);
    s = state_new(&c);
    for (week = 0; week < 2; week++) {
        for (i = 0; i < 168; i++) {
            int  k, n;

            n = (i == 10) ? 400 : 5;
            t = hour0 + ((int64_t) week * 168 + i) * 3600 + 60;
            for (k = 0; k < n; k++) {
                dg_abuse_observe(s, &c, t + k / 10, NULL, 0, 0, &in, &res);
            }
        }
    }
    t = hour0 + (2 * 168 + 10) * 3600 + 60;
    fired = 0;
    for (i = 1; i <= 3000 && !fired; i++) {
        dg_abuse_observe(s, &c, t + i / 10, NULL, 0, 0, &in, &res);
        if (res.fired & DG_ABUSE_K_VOLUME) {
            fired = i;
        }
    }
    is_int(fired, 2001, "the hour with 400 a week: held to 2000");

    t = hour0 + (2 * 168 + 11) * 3600 + 60;
    fired = 0;
    for (i = 1; i <= 3000 && !fired; i++) {
        dg_abuse_observe(s, &c, t + i / 10, NULL, 0, 0, &in, &res);
        if (res.fired & DG_ABUSE_K_VOLUME) {
            fired = i;
        }
    }
    is_int(fired, 26, "the hour after it with 5: held to 25");

    /* records */
    memset(&in, 0, sizeof(in));
    in.records = 40;
    c.record_floor = 100;
    fired = 0;
    for (i = 1; i <= 10 && !fired; i++) {
        dg_abuse_observe(s, &c, t + 400, NULL, 0, 0, &in, &res);
        if (res.fired & DG_ABUSE_K_RECORDS) {
            fired = i;
        }
    }
    is_int(fired, 3, "records: 120 > the record floor of 100");

    /* the text form */
    {
        char               line[DG_ABUSE_VOLUME_TEXT_MAX + 1];
        size_t             n;
        dg_abuse_state_t  *s2;

        n = dg_abuse_volume_encode(s, line, sizeof(line));
        ok(n > 0, "volume encoded in %zu bytes", n);

        s2 = state_new(&c);
        ok(dg_abuse_volume_decode(s2, line, n) == 0, "and decoded");
        ok(s2->hour == s->hour && s2->calls == s->calls
           && s2->seen[10] == s->seen[10]
           && (int) s2->base_calls[10] == (int) s->base_calls[10],
           "to the same baseline");

        line[n / 2] = 'x';
        ok(dg_abuse_volume_decode(s2, line, n) == -1,
           "a damaged line is refused");
        ok(dg_abuse_volume_decode(s2, line, 10) == -1, "and a short one");
        free(s2);
    }

    free(s);
}


static void
test_state(void)
{
    dg_abuse_conf_t    a, b;
    dg_abuse_state_t  *s, *t;

    memset(&a, 0, sizeof(a));
    a.set = 1;
    a.distinct = 500;
    a.window = 600;
    a.factor = 5;

    b = a;
    b.window = 3600;

    s = state_new(&a);
    s->hour = 42;
    ok(dg_abuse_state_fits(s, &b) && s->window == 3600,
       "another window: the same shape");

    b.distinct = 5000;
    ok(!dg_abuse_state_fits(s, &b), "another size of sketch: a new state");

    t = state_new(&b);
    dg_abuse_state_carry(t, s);
    ok(t->hour == 42, "the volume part carried over");

    ok(dg_abuse_state_size(&a) < 12 * 1024,
       "500/10m costs %zu bytes", dg_abuse_state_size(&a));

    free(s);
    free(t);
}


#define PCLS "classes:\n  person.id_number: {level: 4, mask: id_card}\n"
#define PPUR "purposes:\n  p1: {name: P1}\n"
#define PCON "consumers:\n  - id: c1\n"                                   \
             "    cert: {subject: \"CN=c1,O=T,C=CN\"}\n    clearance: 2\n"
#define PDS(x) "datasets:\n  - id: d1\n    share: conditional\n    level: 3\n" \
             "    abuse: " x "\n"
#define PGR(x) "grants:\n  - consumer: c1\n    dataset: d1\n" \
             "    purposes: [p1]\n" x


static dg_policy_t *
pload(const char *yaml, char *err)
{
    return dg_policy_load_buffer("t.yaml", yaml, strlen(yaml), err,
                                 DG_ERRLEN);
}


static void
perr(const char *abuse, const char *want)
{
    char          err[DG_ERRLEN];
    dg_policy_t  *p;

    err[0] = '\0';
    p = pload(PCLS PPUR PCON PDS("%s"), err);
    dg_policy_free(p);

    {
        char  y[2048];

        snprintf(y, sizeof(y), PCLS PPUR PCON PDS("%s"), abuse);
        err[0] = '\0';
        p = pload(y, err);
    }

    if (!ok(p == NULL && strstr(err, want) != NULL, "rejects abuse: %s",
            abuse))
    {
        diag("want: %s", want);
        diag("got:  %s", p ? "(loaded)" : err);
    }

    dg_policy_free(p);
}


static void
test_policy(void)
{
    char                    err[DG_ERRLEN], d[256];
    dg_policy_t            *p;
    const dg_abuse_conf_t  *a;

    p = pload(PCLS PPUR PCON
              PDS("{id_param: id, distinct: 500/10m, sequential: 20, "
                  "volume: {factor: 5, floor: 1000/h}, action: suspend, "
                  "suspend_for: 1h}")
              PGR(""), err);
    if (!ok(p != NULL, "the full mapping loads")) {
        diag("%s", err);
        return;
    }

    a = dg_abuse_for(&p->datasets[0], &p->grants[0]);
    ok(a == &p->datasets[0].abuse && a->distinct == 500 && a->window == 600
       && a->sequential == 20 && a->factor == 5 && a->floor == 1000
       && a->record_floor == 1000 && a->action == DG_ABUSE_SUSPEND
       && a->suspend_for == 3600 && a->id_param_len == 2,
       "every key read");
    is_str(dg_abuse_describe(a, d, sizeof(d)),
           "ids from ?id= (else the last path segment), distinct 500/10m, "
           "sequential 20, volume x5 (floor 1000/h), suspend for 1h",
           "described");
    is_int(a->src_line, 13, "with its line");
    dg_policy_free(p);

    p = pload(PCLS PPUR PCON PDS("{sequential: 20}")
              PGR("    abuse: off\n"), err);
    ok(p && dg_abuse_for(&p->datasets[0], &p->grants[0]) == NULL
       && dg_abuse_for(&p->datasets[0], NULL) == &p->datasets[0].abuse,
       "a grant's abuse: off turns it off for that grant only");
    dg_policy_free(p);

    p = pload(PCLS PPUR PCON PDS("{sequential: 20}")
              PGR("    abuse: {distinct: 5000/1h}\n"), err);
    a = p ? dg_abuse_for(&p->datasets[0], &p->grants[0]) : NULL;
    ok(a && a->distinct == 5000 && a->sequential == 0,
       "a grant's mapping replaces the dataset's whole");
    dg_policy_free(p);

    p = pload(PCLS PPUR PCON
              "datasets:\n  - id: d1\n    share: unconditional\n"
              "    level: 1\n"
              PGR("    abuse: {sequential: 5}\n"), err);
    ok(p != NULL, "a grant on an unconditional dataset may add only abuse");
    dg_policy_free(p);

    perr("{distinct: 500}", "t.yaml:13: datasets[0].abuse.distinct: bad "
         "value '500'");
    perr("{distinct: 500/10x}", "abuse.distinct: bad value");
    perr("{distinct: 500/30s}", "abuse.distinct: bad value");
    perr("{distinct: 0/10m}", "abuse.distinct: bad value");
    perr("{sequential: 1}", "abuse.sequential");
    perr("{sequential: many}", "abuse.sequential");
    perr("{volume: {factor: 5}}", "abuse.volume.floor: missing required "
         "key 'floor'");
    perr("{volume: {floor: 10/h}}", "abuse.volume.factor: missing");
    perr("{volume: {factor: 1, floor: 10/h}}", "abuse.volume.factor: bad "
         "factor '1'");
    perr("{volume: {factor: 5, floor: 10/day}}", "abuse.volume.floor: bad "
         "rate");
    perr("{volume: {factor: 5, flor: 10/h}}", "unknown key 'flor' (did "
         "you mean 'floor'?)");
    perr("{distinct: 5/1m, action: block}", "abuse.action: expected alert "
         "or suspend");
    perr("{distinct: 5/1m, suspend_for: 1h}", "abuse.suspend_for: only with "
         "action: suspend");
    perr("{distinct: 5/1m, action: suspend, suspend_for: 1y}",
         "abuse.suspend_for: bad duration");
    perr("{id_param: id}", "t.yaml:13: datasets[0].abuse: no detector");
    perr("{id_param: id, volume: {factor: 2, floor: 1/h}}",
         "abuse.id_param: identifiers are read only for distinct or "
         "sequential");
    perr("{id_param: \"a b\", distinct: 5/1m}", "abuse.id_param: bad "
         "parameter name");
    perr("{distnct: 5/1m}", "unknown key 'distnct' (did you mean "
         "'distinct'?)");
    perr("[1, 2]", "datasets[0].abuse: expected a mapping");
    perr("on", "datasets[0].abuse: expected a mapping");

    {
        char  path[2048];

        snprintf(path, sizeof(path), "%spolicy/examples/abuse.yaml",
                 tap_top());
        p = dg_policy_load(path, err, sizeof(err));
        if (!ok(p != NULL, "policy/examples/abuse.yaml loads")) {
            diag("%s", err);
        }
        dg_policy_free(p);
    }
}


int
main(void)
{
    test_normalise();
    test_ids();
    test_numeric();
    test_enumeration();
    test_sequential();
    test_volume();
    test_state();
    test_policy();

    return done_testing();
}
