/*
 * datagate core: the consumer's catalogue and the field plan (TAP).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tap.h"
#include "dg_policy.h"
#include "dg_catalogue.h"


static const char  policy[] =
"levels: {1: L1, 2: L2, 3: L3, 4: L4}\n"
"classes:\n"
"  person.id_number: {level: 4, mask: id_card}\n"
"  person.name:      {level: 3, mask: name}\n"
"  person.phone:     {level: 2, mask: phone}\n"
"  note.plain:       {level: 1, mask: clear}\n"
"purposes:\n"
"  p-one:   {name: One}\n"
"  p-two:   {name: Two}\n"
"  p-three: {name: Three}\n"
"  p-secret: {name: Only for B}\n"
"consumers:\n"
"  - id: a\n"
"    org: Org A\n"
"    cert: {subject: \"CN=a\"}\n"
"    clearance: 2\n"
"  - id: b\n"
"    org: Org B\n"
"    cert: {subject: \"CN=b\"}\n"
"    clearance: 4\n"
"  - id: c\n"
"    org: Org C\n"
"    cert: {subject: \"CN=c\"}\n"
"    clearance: 0\n"
"datasets:\n"
"  - id: ds.cond\n"
"    name: Conditional\n"
"    provider: P1\n"
"    share: conditional\n"
"    level: 3\n"
"    fields: {id_card: person.id_number, name: person.name,\n"
"             phone: person.phone, note: note.plain}\n"
"    quota: 50/day\n"
"  - id: ds.open\n"
"    name: Open\n"
"    provider: P2\n"
"    share: unconditional\n"
"    level: 2\n"
"    fields: {name: person.name, phone: person.phone}\n"
"    methods: [GET, HEAD, POST]\n"
"  - id: ds.high\n"
"    name: High\n"
"    provider: P3\n"
"    share: unconditional\n"
"    level: 4\n"
"    fields: {name: person.name}\n"
"  - id: ds.none\n"
"    name: Never\n"
"    provider: P4\n"
"    share: none\n"
"    level: 1\n"
"  - id: ds.bonly\n"
"    name: B only\n"
"    provider: P5\n"
"    share: conditional\n"
"    level: 1\n"
"grants:\n"
"  - consumer: a\n"
"    dataset: ds.cond\n"
"    purposes: [p-one, p-two]\n"
"    approval: SECRET-APPROVAL-0001\n"
"    valid: {from: 2024-01-01, until: 2099-12-31}\n"
"    methods: [GET]\n"
"    reveal: [name]\n"
"    drop: [phone, extra_key]\n"
"    rate: 10r/s burst=5\n"
"  - consumer: a\n"
"    dataset: ds.cond\n"
"    purposes: [p-three]\n"
"    valid: {from: 2020-01-01, until: 2020-12-31}\n"
"  - consumer: a\n"
"    dataset: ds.open\n"
"    purposes: [p-one]\n"
"    quota: 7/hour\n"
"  - consumer: b\n"
"    dataset: ds.bonly\n"
"    purposes: [p-secret]\n"
"    approval: B-APPROVAL-0002\n"
"  - consumer: b\n"
"    dataset: ds.cond\n"
"    purposes: [p-secret]\n"
"  - consumer: c\n"
"    dataset: ds.cond\n"
"    purposes: [p-two]\n";


static dg_policy_t  *P;


static char *
catalogue(const char *consumer, time_t now)
{
    char                 *buf;
    size_t                len;
    dg_catalogue_opts_t   o;
    const dg_consumer_t  *c;

    c = dg_policy_consumer(P, consumer, strlen(consumer));
    if (c == NULL) {
        return NULL;
    }

    memset(&o, 0, sizeof(o));
    o.now = now;

    len = dg_catalogue_json(P, c, &o, NULL, 0);
    buf = malloc(len + 1);
    if (buf == NULL) {
        return NULL;
    }

    if (dg_catalogue_json(P, c, &o, buf, len + 1) != len
        || strlen(buf) != len)
    {
        free(buf);
        return NULL;
    }

    return buf;
}


static int
has(const char *doc, const char *s)
{
    return doc != NULL && strstr(doc, s) != NULL;
}


/* the JSON of one dataset of the document, up to the next one */
static const char *
dataset_of(const char *doc, const char *id, char *out, size_t cap)
{
    char         pat[128];
    const char  *s, *e;
    size_t       n;

    snprintf(pat, sizeof(pat), "{\"id\":\"%s\"", id);
    s = strstr(doc, pat);
    if (s == NULL) {
        return NULL;
    }

    e = strstr(s + 1, "{\"id\":\"ds.");
    n = e ? (size_t) (e - s) : strlen(s);
    if (n >= cap) {
        n = cap - 1;
    }

    memcpy(out, s, n);
    out[n] = '\0';

    return out;
}


static void
test_catalogue(void)
{
    char        *a, *b, *c, ds[8192];
    time_t       now;
    const char  *d;

    now = 1767225600;   /* 2026-01-01 08:00 UTC+8 */

    a = catalogue("a", now);
    ok(a != NULL, "catalogue of a");
    if (a == NULL) {
        return;
    }

    ok(has(a, "\"consumer\":{\"id\":\"a\",\"org\":\"Org A\",\"clearance\":2,"
              "\"clearance_name\":\"L2\"}"), "the consumer, its clearance");
    ok(has(a, "\"at\":\"2026-01-01T08:00:00+08:00\""), "at: UTC+8");

    /* other consumers: nothing of them */
    ok(!has(a, "\"b\""), "no other consumer's id");
    ok(!has(a, "ds.bonly"), "no dataset only another consumer reaches");
    ok(!has(a, "B-APPROVAL"), "no approval number of another consumer");
    ok(!has(a, "SECRET-APPROVAL"), "not its own approval number either");
    ok(!has(a, "ds.none"), "share: none is never listed");
    ok(!has(a, "ds.high"), "an unconditional dataset above the clearance "
                           "is not listed");

    /* purposes: those its grants name (any works where its clearance
     * reaches, but the others are not listed) */
    ok(has(a, "\"purposes\":[{\"id\":\"p-one\",\"name\":\"One\"},"
              "{\"id\":\"p-two\",\"name\":\"Two\"},{\"id\":\"p-three\","
              "\"name\":\"Three\"}]"), "its grants' purposes, with names");
    ok(!has(a, "p-secret"), "not a purpose only another consumer's grants "
                            "name");

    d = dataset_of(a, "ds.cond", ds, sizeof(ds));
    ok(d != NULL, "ds.cond listed");
    ok(has(d, "\"by\":\"grant\",\"purposes\":[\"p-one\",\"p-two\"],"
              "\"approval_required\":true,\"valid\":{\"from\":\"2024-01-01\","
              "\"until\":\"2099-12-31\"},\"in_force\":true,"
              "\"methods\":[\"GET\"]"),
       "grant: purposes, approval needed, window, in force, methods");
    ok(has(d, "\"rate\":{\"limit\":\"10r/s burst=5\",\"set_by\":\"grant\"},"
              "\"quota\":{\"limit\":\"50/day\",\"set_by\":\"dataset\"}"),
       "grant: its rate, the dataset's quota");
    ok(has(d, "{\"key\":\"id_card\",\"class\":\"person.id_number\","
              "\"level\":4,\"action\":\"masked\",\"method\":\"id_card\","
              "\"why\":\"level\"}"), "field masked by level");
    ok(has(d, "{\"key\":\"name\",\"class\":\"person.name\",\"level\":3,"
              "\"action\":\"clear\",\"why\":\"revealed\"}"),
       "field revealed by the grant");
    ok(has(d, "{\"key\":\"phone\",\"class\":\"person.phone\",\"level\":2,"
              "\"action\":\"dropped\",\"why\":\"dropped\"}"),
       "field dropped by the grant");
    ok(has(d, "{\"key\":\"note\",\"class\":\"note.plain\",\"level\":1,"
              "\"action\":\"clear\",\"why\":\"clearance\"}"),
       "field within the clearance");
    ok(has(d, "{\"key\":\"extra_key\",\"class\":null,"
              "\"action\":\"dropped\",\"why\":\"dropped\"}"),
       "a drop key that is no field of the dataset");
    ok(has(d, "\"purposes\":[\"p-three\"],\"approval_required\":false,"
              "\"valid\":{\"from\":\"2020-01-01\",\"until\":\"2020-12-31\"},"
              "\"in_force\":false"), "an expired grant: not in force");
    ok(has(d, "\"quota\":{\"limit\":\"50/day\",\"set_by\":\"dataset\"}"),
       "the dataset's quota");
    ok(!has(d, "\"by\":\"clearance\""), "conditional: no clearance access");
    ok(!has(d, "\"locations\""), "no locations without the gateway's");

    d = dataset_of(a, "ds.open", ds, sizeof(ds));
    ok(d != NULL, "ds.open listed");
    ok(has(d, "\"access\":[{\"by\":\"clearance\",\"purposes\":\"any\","
              "\"methods\":[\"GET\",\"HEAD\",\"POST\"],\"rate\":null,"
              "\"quota\":null,\"fields\":[{\"key\":\"name\",\"class\":"
              "\"person.name\",\"level\":3,\"action\":\"masked\","
              "\"method\":\"name\",\"why\":\"level\"},{\"key\":\"phone\","
              "\"class\":\"person.phone\",\"level\":2,\"action\":\"clear\","
              "\"why\":\"clearance\"}]}"),
       "unconditional: access by clearance, any purpose, its plan");
    ok(has(d, "{\"by\":\"grant\",\"purposes\":[\"p-one\"],"
              "\"approval_required\":false"),
       "unconditional: the grant that adds to it");
    ok(has(d, "\"quota\":{\"limit\":\"7/hour\",\"set_by\":\"grant\"}"),
       "unconditional: the grant's quota");

    b = catalogue("b", now);
    ok(b != NULL && !has(b, "\"a\"") && !has(b, "Org A")
       && !has(b, "SECRET-APPROVAL") && !has(b, "B-APPROVAL")
       && has(b, "ds.bonly") && has(b, "ds.high"),
       "b sees its own, nothing of a");
    ok(has(b, "\"purposes\":[{\"id\":\"p-secret\",\"name\":"
              "\"Only for B\"}]"), "b: its grants' purpose only");

    c = catalogue("c", now);
    ok(has(c, "\"purposes\":[{\"id\":\"p-two\",\"name\":\"Two\"}],"),
       "c: its grant's purpose");
    ok(!has(c, "p-secret") && !has(c, "p-one") && !has(c, "ds.open"),
       "c: nothing of what other grants name");
    ok(has(c, "\"datasets\":[{\"id\":\"ds.cond\""), "c: its dataset");
    ok(has(c, "{\"key\":\"note\",\"class\":\"note.plain\",\"level\":1,"
              "\"action\":\"clear\",\"why\":\"class_clear\"}"),
       "c (clearance 0): a field whose class is clear");

    if (tap_failed) {
        diag("%s", a);
    }

    free(a);
    free(b);
    free(c);
}


/* written snprintf-style: never past cap, a prefix, NUL-terminated */
static void
test_bounds(void)
{
    int                   bad;
    char                 *full, *buf;
    size_t                len, cap, n;
    dg_catalogue_opts_t   o;
    const dg_consumer_t  *c;
    dg_catalogue_loc_t    loc[2];

    c = dg_policy_consumer(P, "a", 1);

    memset(&o, 0, sizeof(o));
    o.now = 1767225600;
    o.with_locations = 1;
    loc[0].dataset = dg_policy_dataset(P, "ds.cond", 7);
    loc[0].path = "/cond/\"q\"";
    loc[0].len = strlen(loc[0].path);
    loc[0].match = "prefix";
    loc[1].dataset = dg_policy_dataset(P, "ds.bonly", 8);
    loc[1].path = "/bonly/";
    loc[1].len = 7;
    loc[1].match = "exact";
    o.locs = loc;
    o.nlocs = 2;

    len = dg_catalogue_json(P, c, &o, NULL, 0);
    full = malloc(len + 1);
    buf = malloc(len + 64);
    if (full == NULL || buf == NULL) {
        ok(0, "memory");
        return;
    }

    n = dg_catalogue_json(P, c, &o, full, len + 1);
    ok(n == len && strlen(full) == len, "sized, then written whole");
    ok(has(full, "\"locations\":[{\"path\":\"/cond/\\\"q\\\"\","
                 "\"match\":\"prefix\"}]"), "a location, escaped");
    ok(!has(full, "/bonly/"), "no location of a dataset it cannot reach");
    ok(full[len - 1] == '\n', "ends in a newline");

    bad = 0;

    for (cap = 1; cap <= len; cap++) {
        memset(buf, 'Z', len + 64);
        n = dg_catalogue_json(P, c, &o, buf, cap);

        if (n != len || buf[cap] != 'Z' || strlen(buf) >= cap
            || strncmp(buf, full, strlen(buf)) != 0)
        {
            bad++;
        }
    }

    ok(bad == 0, "every smaller buffer: a NUL-terminated prefix, nothing "
                 "past it (%d bad)", bad);

    free(full);
    free(buf);
}


static void
test_plan_field(void)
{
    size_t                i;
    dg_plan_field_t       f;
    const dg_grant_t     *g;
    const dg_dataset_t   *d;
    const dg_consumer_t  *c;

    c = dg_policy_consumer(P, "a", 1);
    d = dg_policy_dataset(P, "ds.cond", 7);
    g = &P->grants[0];

    ok(g->plan.nfields == d->nfields + 1, "grant plan: fields + extra drop");

    for (i = 0; i < g->plan.nfields; i++) {
        if (dg_plan_field(P, d, c, g, &g->plan, i, &f) != 0) {
            break;
        }
    }

    ok(i == g->plan.nfields, "every field described");
    ok(dg_plan_field(P, d, c, g, &g->plan, g->plan.nfields, &f) == -1,
       "past the end: -1");
    ok(dg_plan_field(P, d, c, g, &g->plan, d->nfields, &f) == 0
       && f.key.len == 9 && memcmp(f.key.data, "extra_key", 9) == 0
       && f.cls == NULL && f.rule == DG_PF_DROPPED,
       "the extra drop key");
    is_str(dg_plan_action_name(f.action), "dropped", "action name");
    is_int(dg_plan_field(P, d, c, NULL, &d->plan_by_clearance[2], 0, &f),
           0, "the clearance plan");
    is_int(f.rule, DG_PF_MASKED, "id_card above clearance 2: masked");
}


int
main(void)
{
    char  err[DG_ERRLEN];

    P = dg_policy_load_buffer("catalogue.yaml", policy, sizeof(policy) - 1,
                              err, sizeof(err));
    ok(P != NULL, "policy loads: %s", P ? "" : err);
    if (P == NULL) {
        return done_testing();
    }

    test_catalogue();
    test_bounds();
    test_plan_field();

    dg_policy_free(P);

    return done_testing();
}
