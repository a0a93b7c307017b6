/*
 * datagate core: policy loader tests (TAP).
 *
 * Run from the top of the checkout (fixtures are found relative to it, or
 * below $DG_TOP).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "tap.h"
#include "dg_policy.h"
#include "dg_header.h"
#include "dg_mask.h"


static const char  *top;


static const char *
fixture(const char *rel)
{
    static char  buf[4][2048];
    static int   n;
    char        *b;

    b = buf[n++ & 3];
    snprintf(b, sizeof(buf[0]), "%s%s", top, rel);

    return b;
}


/* load a policy from text; returns the policy or NULL, error in err */

static dg_policy_t *
load(const char *yaml, char *err)
{
    return dg_policy_load_buffer("t.yaml", yaml, strlen(yaml), err,
                                 DG_ERRLEN);
}


static void
expect_err(const char *yaml, const char *want, const char *what)
{
    char          err[DG_ERRLEN];
    dg_policy_t  *p;

    err[0] = '\0';
    p = load(yaml, err);

    if (!ok(p == NULL && strstr(err, want) != NULL, "rejects %s", what)) {
        diag("want: %s", want);
        diag("got:  %s", p ? "(loaded)" : err);
    }

    dg_policy_free(p);
}


/* the whole message, not a part of it */

static void
expect_err_is(const char *yaml, const char *want, const char *what)
{
    char          err[DG_ERRLEN];
    dg_policy_t  *p;

    err[0] = '\0';
    p = load(yaml, err);

    if (!ok(p == NULL && strcmp(err, want) == 0, "rejects %s", what)) {
        diag("want: %s", want);
        diag("got:  %s", p ? "(loaded)" : err);
    }

    dg_policy_free(p);
}


static void
expect_ok(const char *yaml, const char *what)
{
    char          err[DG_ERRLEN];
    dg_policy_t  *p;

    err[0] = '\0';
    p = load(yaml, err);

    if (!ok(p != NULL, "accepts %s", what)) {
        diag("got: %s", err);
    }

    dg_policy_free(p);
}


/* a valid base policy, lines 1..18 */

#define CLS "classes:\n"                                                    \
            "  person.id_number: {level: 4, mask: id_card}\n"               \
            "  person.name: {level: 3, mask: name}\n"
#define PUR "purposes:\n"                                                   \
            "  p1: {name: P1}\n"
#define CON "consumers:\n"                                                  \
            "  - id: c1\n"                                                  \
            "    cert: {subject: \"CN=c1,O=T,C=CN\"}\n"                     \
            "    clearance: 2\n"
#define DS  "datasets:\n"                                                   \
            "  - id: d1\n"                                                  \
            "    share: conditional\n"                                      \
            "    level: 3\n"                                                \
            "    fields: {id_card: person.id_number, name: person.name}\n"
#define GR  "grants:\n"                                                     \
            "  - consumer: c1\n"                                            \
            "    dataset: d1\n"                                             \
            "    purposes: [p1]\n"
#define BASE CLS PUR CON DS GR


static void
test_headers(void)
{
    char                 err[DG_ERRLEN];
    dg_policy_t         *p;
    const dg_dataset_t  *d;

    p = load(CLS PUR CON DS "    headers: [X-Total-Count, Link, Location]\n",
             err);
    d = p ? dg_policy_dataset(p, "d1", 2) : NULL;

    ok(d != NULL && d->nheaders == 3, "headers: three names loaded");
    ok(d != NULL && dg_header_listed(d, "x-total-count", 13)
       && dg_header_listed(d, "LOCATION", 8)
       && !dg_header_listed(d, "X-Person-Id", 11),
       "headers: listed names match in any case, others do not");
    ok(dg_header_is_safe("content-type", 12)
       && dg_header_is_safe("RateLimit-Reset", 15)
       && !dg_header_is_safe("Set-Cookie", 10)
       && !dg_header_is_safe("Location", 8)
       && !dg_header_is_safe("ETag", 4), "the safe set");
    ok(dg_header_name_ok("X-Total-Count", 13)
       && !dg_header_name_ok("", 0) && !dg_header_name_ok("a b", 3)
       && !dg_header_name_ok("a\0b", 3), "header names");

    dg_policy_free(p);

    p = load(CLS PUR CON DS, err);
    d = p ? dg_policy_dataset(p, "d1", 2) : NULL;
    ok(d != NULL && d->nheaders == 0 && d->headers == NULL,
       "no headers: none listed");
    dg_policy_free(p);
}


static void
test_sample(void)
{
    char                 err[DG_ERRLEN];
    dg_policy_t         *p;
    const dg_dataset_t  *d;
    const dg_consumer_t *c;

    p = dg_policy_load(fixture("policy/sample.yaml"), err, sizeof(err));
    if (!ok(p != NULL, "sample policy loads")) {
        diag("%s", err);
        return;
    }

    is_int(p->nconsumers, 4, "sample: 4 consumers");
    is_int(p->ndatasets, 5, "sample: 5 datasets");
    is_int(p->ngrants, 6, "sample: 6 grants");
    is_int(strlen(p->version_hex), 64, "sample: version is 64 hex digits");
    is_str(p->level_names[4].data, "高敏感", "sample: level 4 name");

    c = dg_policy_consumer(p, "civil-affairs.assistance", 24);
    ok(c != NULL && c->clearance == 2, "sample: civil-affairs clearance 2");
    ok(c != NULL && c->nnetworks == 2, "sample: civil-affairs 2 networks");
    ok(dg_policy_consumer(p, "nobody", 6) == NULL, "unknown consumer: NULL");

    d = dg_policy_dataset(p, "tax.secret", 10);
    ok(d != NULL && d->share == DG_SHARE_NONE, "sample: tax.secret none");
    d = dg_policy_dataset(p, "realestate.property", 19);
    ok(d != NULL && d->unlisted_drop, "sample: realestate unlisted drop");
    d = dg_policy_dataset(p, "population.person", 17);
    ok(d != NULL && d->detect, "sample: population detect on");
    ok(dg_policy_purpose(p, "social-assistance", 17) != NULL,
       "sample: purpose lookup");

    dg_policy_free(p);

    p = dg_policy_load(fixture("policy/examples/minimal.yaml"), err,
                       sizeof(err));
    if (!ok(p != NULL, "examples/minimal.yaml loads")) {
        diag("%s", err);
    }
    dg_policy_free(p);

    p = dg_policy_load(fixture("policy/examples/split"), err, sizeof(err));
    if (!ok(p != NULL, "examples/split/ loads")) {
        diag("%s", err);
    }
    dg_policy_free(p);
}


static void
test_validation(void)
{
    expect_ok(BASE, "the base policy");

    /* unknown keys at every level */
    expect_err("colors: 1\n" BASE, "t.yaml:1: colors: unknown key 'colors'",
               "an unknown top-level key");
    expect_err(CLS PUR CON "    nmae: x\n" DS GR,
               "t.yaml:10: consumers[0].nmae: unknown key 'nmae' "
               "(expected one of: id, org, cert", "an unknown consumer key");
    expect_err("classes:\n  a.b: {level: 1, mask: name, colour: red}\n",
               "t.yaml:2: classes.a.b.colour: unknown key",
               "an unknown class key");
    expect_err(CLS PUR "consumers:\n  - id: c1\n    cert: {subjct: x}\n"
               "    clearance: 1\n",
               "t.yaml:8: consumers[0].cert.subjct: unknown key 'subjct' "
               "(did you mean 'subject'?)", "an unknown cert key");
    expect_err(BASE "    valid: {from: 2024-01-01, till: 2024-02-01}\n",
               "t.yaml:19: grants[0].valid.till: unknown key",
               "an unknown valid key");
    expect_err(BASE "    purpose: [p1]\n",
               "grants[0].purpose: unknown key 'purpose' (did you mean "
               "'purposes'?)", "a misspelt grant key");
    expect_err(CLS PUR CON DS "    colour: red\n" GR,
               "t.yaml:15: datasets[0].colour: unknown key",
               "an unknown dataset key");

    /* types */
    expect_err(CLS PUR "consumers:\n  - id: c1\n    cert: {subject: CN=y}\n"
               "    clearance: [1]\n",
               "t.yaml:9: consumers[0].clearance: expected a single value, "
               "got a list", "a list where a number belongs");
    expect_err(CLS PUR "consumers: {id: c1}\n",
               "t.yaml:6: consumers: expected a list, got a mapping",
               "a mapping where a list belongs");
    expect_err(CLS PUR CON DS "grants:\n  - consumer: c1\n    dataset: d1\n"
               "    purposes: p1\n",
               "t.yaml:18: grants[0].purposes: expected a list",
               "a scalar where a list belongs");
    expect_err(CLS PUR CON DS GR "    methods: []\n",
               "grants[0].methods: must not be an empty list",
               "an empty list");
    expect_err("- a\n- b\n", "t.yaml:1: policy: the top level must be a "
               "mapping", "a list at the top level");

    /* missing required keys */
    expect_err(CLS PUR "consumers:\n  - cert: {subject: CN=y}\n"
               "    clearance: 1\n",
               "t.yaml:7: consumers[0].id: missing required key 'id'",
               "a consumer without id");
    expect_err(CLS PUR "consumers:\n  - id: c1\n    clearance: 1\n",
               "t.yaml:7: consumers[0].cert: missing required key 'cert'",
               "a consumer without cert");
    expect_err(CLS PUR "consumers:\n  - id: c1\n    cert: {subject: CN=y}\n",
               "consumers[0].clearance: missing required key 'clearance'",
               "a consumer without clearance");
    expect_err(CLS PUR CON "datasets:\n  - share: none\n    level: 1\n",
               "t.yaml:11: datasets[0].id: missing required key 'id'",
               "a dataset without id");
    expect_err(CLS PUR CON "datasets:\n  - id: d1\n    level: 1\n",
               "datasets[0].share: missing required key 'share'",
               "a dataset without share");
    expect_err(CLS PUR CON "datasets:\n  - id: d1\n    share: none\n",
               "datasets[0].level: missing required key 'level'",
               "a dataset without level");
    expect_err(CLS PUR CON DS "grants:\n  - dataset: d1\n"
               "    purposes: [p1]\n",
               "t.yaml:16: grants[0].consumer: missing required key",
               "a grant without consumer");
    expect_err(CLS PUR CON DS "grants:\n  - consumer: c1\n"
               "    purposes: [p1]\n",
               "grants[0].dataset: missing required key 'dataset'",
               "a grant without dataset");
    expect_err(CLS PUR CON DS "grants:\n  - consumer: c1\n    dataset: d1\n",
               "grants[0].purposes: missing required key 'purposes'",
               "a grant without purposes");
    expect_err(CLS PUR "consumers:\n  - id: c1\n    cert: {}\n"
               "    clearance: 1\n",
               "t.yaml:8: consumers[0].cert: at least one of subject",
               "a cert without matchers");
    expect_err("classes:\n  a.b: {level: 1}\n",
               "classes.a.b.mask: missing required key 'mask'",
               "a class without mask");
    expect_err("classes:\n  x: {level: 1, mask: null}\n",
               "t.yaml:2: classes.x.mask: unquoted 'null' is YAML for no "
               "value: for the null masking method write \"null\" in quotes",
               "an unquoted null mask, with a hint");
    expect_err("classes:\n  x:\n    level: 1\n    mask: ~\n",
               "t.yaml:4: classes.x.mask: unquoted '~' is YAML for no value",
               "a ~ mask, with a hint");
    expect_err("classes:\n  x: {level: 1, mask: }\n",
               "t.yaml:2: classes.x.mask: must not be empty",
               "an empty mask");
    expect_ok("classes:\n  x: {level: 1, mask: \"null\"}\n" PUR
              "datasets:\n  - {id: d1, share: none, level: 1}\n",
              "a quoted null mask");

    /* dangling references */
    expect_err(CLS PUR CON DS "grants:\n  - consumer: c2\n    dataset: d1\n"
               "    purposes: [p1]\n",
               "t.yaml:16: grants[0].consumer: unknown consumer 'c2' (did "
               "you mean 'c1'?)", "a grant to an unknown consumer");
    expect_err(CLS PUR CON
               "datasets:\n  - id: population.person\n"
               "    share: conditional\n    level: 3\n"
               "grants:\n  - consumer: c1\n    dataset: population.persn\n"
               "    purposes: [p1]\n",
               "t.yaml:16: grants[0].dataset: unknown dataset "
               "'population.persn' (did you mean 'population.person'?)",
               "a grant on an unknown dataset");
    expect_err_is(CLS PUR CON DS "grants:\n  - consumer: c1\n    dataset: d1\n"
                  "    purposes: [p1, p9]\n",
                  "t.yaml:18: grants[0].purposes: unknown purpose 'p9' (did "
                  "you mean 'p1'?)", "a grant for an unknown purpose");
    expect_err_is(CLS PUR CON DS "grants:\n  - consumer: ops.team\n"
                  "    dataset: d1\n    purposes: [p1]\n",
                  "t.yaml:16: grants[0].consumer: unknown consumer "
                  "'ops.team'", "an unknown consumer near no other");
    expect_err_is(CLS PUR CON DS "grants:\n  - consumer: c1\n"
                  "    dataset: d2\n    purposes: [p1]\n",
                  "t.yaml:17: grants[0].dataset: unknown dataset 'd2' (did "
                  "you mean 'd1'?)", "an unknown dataset near another");
    expect_err_is(CLS PUR CON DS "grants:\n  - consumer: c1\n"
                  "    dataset: d1\n    purposes: [research]\n",
                  "t.yaml:18: grants[0].purposes: unknown purpose "
                  "'research'", "an unknown purpose near no other");
    expect_err_is("classes:\n  a.b: {level: 1, mask: name, lvel: 2}\n",
                  "t.yaml:2: classes.a.b.lvel: unknown key 'lvel' (did you "
                  "mean 'level'?)", "a misspelt class key");
    expect_err_is("classes:\n  a.b: {level: 1, mask: name, colour: 2}\n",
                  "t.yaml:2: classes.a.b.colour: unknown key 'colour' "
                  "(expected one of: level, mask)", "a class key near none");
    expect_err(CLS PUR CON "datasets:\n  - id: d1\n    share: conditional\n"
               "    level: 3\n    fields: {id_card: person.id_numbr}\n",
               "t.yaml:14: datasets[0].fields.id_card: unknown class "
               "'person.id_numbr' (did you mean 'person.id_number'?)",
               "a field of an unknown class");
    expect_err(BASE "    reveal: [phone]\n",
               "t.yaml:19: grants[0].reveal: 'phone' is not a field of "
               "dataset 'd1'", "revealing a key that is not a field");

    /* values */
    expect_err(CLS PUR "consumers:\n  - id: c1\n    cert: {subject: CN=y}\n"
               "    clearance: 1\n    networks: [10.0.0.0/33]\n",
               "t.yaml:10: consumers[0].networks: bad network '10.0.0.0/33'",
               "a prefix longer than 32");
    expect_err(CLS PUR "consumers:\n  - id: c1\n    cert: {subject: CN=y}\n"
               "    clearance: 1\n    networks: [300.1.1.1]\n",
               "consumers[0].networks: bad network '300.1.1.1'",
               "a bad IPv4 address");
    expect_err(CLS PUR "consumers:\n  - id: c1\n    cert: {subject: CN=y}\n"
               "    clearance: 1\n    networks: [\"2001:db8::/129\"]\n",
               "consumers[0].networks: bad network", "a bad IPv6 prefix");
    expect_err(CLS PUR "consumers:\n  - id: c1\n    cert: {subject: CN=y}\n"
               "    clearance: 1\n    networks: [10.0.0.1/8]\n",
               "consumers[0].networks: '10.0.0.1/8' has host bits set",
               "host bits beyond the prefix");
    expect_err(CLS PUR "consumers:\n  - id: c1\n    cert: {subject: CN=y}\n"
               "    clearance: 1\n    geo: {countries: [China]}\n",
               "consumers[0].geo.countries: bad country 'China'",
               "a bad country code");
    expect_err(BASE "    valid: {from: 2024-02-30}\n",
               "t.yaml:19: grants[0].valid.from: bad date '2024-02-30'",
               "30 February");
    expect_err(BASE "    valid: {until: 2023-02-29}\n",
               "grants[0].valid.until: bad date '2023-02-29'",
               "29 February of a common year");
    expect_ok(BASE "    valid: {until: 2024-02-29}\n",
              "29 February of a leap year");
    expect_err(BASE "    valid: {from: 2024-13-01}\n",
               "grants[0].valid.from: bad date", "month 13");
    expect_err(BASE "    valid: {from: 2025-01-01, until: 2024-12-31}\n",
               "grants[0].valid.until: 2024-12-31 is before from 2025-01-01",
               "from after until");
    expect_err(CLS PUR CON "datasets:\n  - id: d1\n    share: conditional\n"
               "    level: 5\n",
               "t.yaml:13: datasets[0].level: expected a whole number from "
               "1 to 4, got '5'", "dataset level 5");
    expect_err("classes:\n  a.b: {level: 0, mask: name}\n",
               "t.yaml:2: classes.a.b.level: expected a whole number from 1",
               "class level 0");
    expect_err(CLS PUR "consumers:\n  - id: c1\n    cert: {subject: CN=y}\n"
               "    clearance: 5\n",
               "consumers[0].clearance: expected a whole number from 0 to 4",
               "clearance 5");
    expect_err("classes:\n  a.b: {level: 2, mask: scramble}\n",
               "t.yaml:2: classes.a.b.mask: unknown masking method "
               "'scramble'", "an unknown masking method");
    expect_err("classes:\n  a.b: {level: 2, mask: keep(3,4)}\n",
               "classes.a.b.mask: 'keep(3' is cut at a comma",
               "an unquoted keep(a,b) in a flow mapping");
    expect_ok("classes:\n  a.b: {level: 2, mask: \"keep(3,4)\"}\n",
              "a quoted keep(a,b)");
    expect_err(CLS PUR "consumers:\n  - id: c1\n"
               "    cert: {fingerprint_sha256: \"AB:CD\"}\n"
               "    clearance: 1\n",
               "t.yaml:8: consumers[0].cert.fingerprint_sha256: bad SHA-256 "
               "fingerprint", "a short fingerprint");
    expect_err(CLS PUR "consumers:\n  - id: c1\n"
               "    cert: {fingerprint_sha256: \""
               "zz6ee1d9c81dc8a1d0a4ab3fa9b9c0d1e3eff9bd2f0b13a6a77f22f4d3"
               "a1b2c3\"}\n    clearance: 1\n",
               "cert.fingerprint_sha256: bad SHA-256", "a non-hex fingerprint");
    expect_err(CLS PUR "consumers:\n  - id: c1\n    cert: {serial: xyz}\n"
               "    clearance: 1\n",
               "consumers[0].cert.serial: bad serial 'xyz'", "a bad serial");
    expect_err(CLS PUR "consumers:\n  - id: c1\n"
               "    cert: {san: \"IP:10.0.0.1\"}\n    clearance: 1\n",
               "consumers[0].cert.san: bad SAN 'IP:10.0.0.1'", "an IP SAN");
    expect_err(CLS PUR "consumers:\n  - id: c1\n"
               "    cert: {subject: \"/C=CN/O=x/CN=y\"}\n    clearance: 1\n",
               "consumers[0].cert.subject: '/C=CN/O=x/CN=y' is in the old",
               "an OpenSSL one-line subject");
    expect_err(CLS PUR "consumers:\n  - id: c 1\n    cert: {subject: CN=y}\n"
               "    clearance: 1\n",
               "t.yaml:7: consumers[0].id: bad id 'c 1'", "a bad id");
    expect_err(CLS PUR CON "datasets:\n  - id: d1\n    share: sometimes\n"
               "    level: 3\n",
               "t.yaml:12: datasets[0].share: expected unconditional, "
               "conditional or none", "a bad share");
    expect_err(CLS PUR CON DS "    unlisted: hide\n",
               "datasets[0].unlisted: expected pass or drop",
               "a bad unlisted");
    expect_err(CLS PUR CON DS "    detect: maybe\n",
               "datasets[0].detect: expected on or off", "a bad detect");
    expect_err(CLS PUR CON DS "    headers: [X-Total-Count, \"X Person\"]\n",
               "t.yaml:15: datasets[0].headers: bad header name 'X Person'",
               "a header name with a space");
    expect_err(CLS PUR CON DS "    headers: [\"X-Id:\"]\n",
               "datasets[0].headers: bad header name 'X-Id:'",
               "a header name with a colon");
    expect_err(CLS PUR CON DS "    headers: [\"X-\u00e9\"]\n",
               "datasets[0].headers: bad header name",
               "a header name that is not ASCII");
    expect_err(CLS PUR CON DS "    headers:\n      - X-Total-Count\n"
               "      - x-total-count\n",
               "t.yaml:17: datasets[0].headers: 'x-total-count' is listed "
               "twice", "a header listed twice, in another case");
    expect_err(CLS PUR CON DS "    headers: [X-Accel-Redirect]\n",
               "datasets[0].headers: 'X-Accel-Redirect' cannot be listed: "
               "X-Accel-* headers are instructions to nginx",
               "an X-Accel-* header");
    expect_err(CLS PUR CON DS "    headers: [datagate-request-id]\n",
               "'datagate-request-id' cannot be listed: Datagate-* headers "
               "are the gateway's own", "a Datagate-* header");
    expect_err(CLS PUR CON DS "    headers: [ETag]\n",
               "'ETag' cannot be listed: a validator or digest",
               "ETag");
    expect_err(CLS PUR CON DS "    headers: [Content-Digest]\n",
               "'Content-Digest' cannot be listed: a validator or digest",
               "Content-Digest");
    expect_err(CLS PUR CON DS "    headers: []\n",
               "datasets[0].headers: must not be an empty list",
               "an empty headers list");
    expect_err(CLS PUR CON DS "    headers: X-Total-Count\n",
               "datasets[0].headers: expected a list", "headers not a list");
    expect_err(CLS PUR CON DS "    header: [X-Total-Count]\n",
               "datasets[0].header: unknown key 'header'",
               "a misspelt headers key");
    expect_err(BASE "    methods: [GET, FETCH]\n",
               "t.yaml:19: grants[0].methods: method FETCH is not allowed on "
               "dataset 'd1' (its methods: GET, HEAD); a grant can only "
               "narrow the methods of its dataset",
               "a grant method its dataset does not allow");
    expect_err(BASE "    reveal: [name]\n    drop: [name]\n",
               "t.yaml:20: grants[0].drop: 'name' is both revealed and "
               "dropped", "revealing and dropping the same key");
    expect_err(BASE "    approval: \"GX 1\"\n",
               "grants[0].approval: approval numbers are printable ASCII",
               "an approval number with a space");

    /* duplicates */
    expect_err(CLS PUR "consumers:\n  - id: c1\n    cert: {subject: CN=y}\n"
               "    clearance: 1\n  - id: c1\n    cert: {subject: CN=z}\n"
               "    clearance: 1\n",
               "t.yaml:10: consumers[1].id: duplicate consumer 'c1' (first "
               "defined at t.yaml:7)", "a duplicate consumer id");
    expect_err(CLS PUR CON "datasets:\n  - id: d1\n    share: none\n"
               "    level: 1\n  - id: d1\n    share: none\n    level: 2\n",
               "t.yaml:14: datasets[1].id: duplicate dataset 'd1' (first "
               "defined at t.yaml:11)", "a duplicate dataset id");
    expect_err(CLS PUR "consumers:\n  - id: c1\n    cert: {subject: CN=y}\n"
               "    clearance: 1\n  - id: c2\n    cert: {subject: CN=y}\n"
               "    clearance: 2\n",
               "t.yaml:10: consumers[id=c2].cert: same certificate matchers "
               "as consumer 'c1' (t.yaml:7)", "unreachable consumer");
    expect_err("purposes:\n  p1: {}\n  p1: {}\n",
               "t.yaml:3: yaml: duplicate key 'p1' (first at line 2)",
               "a duplicate mapping key");
    expect_err("levels: {1: a}\nlevels: {2: b}\n",
               "t.yaml:2: yaml: duplicate key 'levels'",
               "a duplicate top-level key");

    /* share */
    expect_err(CLS PUR CON "datasets:\n  - id: d1\n    share: none\n"
               "    level: 4\n" GR,
               "t.yaml:16: grants[0].dataset: dataset 'd1' has share: none",
               "a grant on a share: none dataset");
    expect_err(CLS PUR CON "datasets:\n  - id: d1\n"
               "    share: unconditional\n    level: 1\n" GR,
               "t.yaml:15: grants[0]: a grant on unconditional dataset 'd1' "
               "adds methods, reveal, drop, rate, quota or abuse to access "
               "by clearance; this one sets none of them and would have no "
               "effect", "a grant on an unconditional dataset adding nothing");
    expect_err(CLS PUR CON "datasets:\n  - id: d1\n"
               "    share: unconditional\n    level: 3\n" GR
               "    rate: 1r/s\n",
               "t.yaml:16: grants[0].dataset: consumer 'c1' has clearance 2, "
               "below level 3 of unconditional dataset 'd1'",
               "a grant for a consumer below an unconditional level");
    expect_ok(CLS PUR CON "datasets:\n  - id: d1\n"
              "    share: unconditional\n    level: 1\n" GR
              "    rate: 1r/s\n",
              "a grant on an unconditional dataset that adds a rate");
    expect_ok(CLS PUR CON "datasets:\n  - id: d1\n"
              "    share: unconditional\n    level: 2\n"
              "    fields: {name: person.name}\n" GR
              "    valid: {until: 2020-01-01}\n    approval: A-1\n"
              "    methods: [HEAD]\n    reveal: [name]\n    drop: [x]\n"
              "    quota: 5/day\n",
              "a grant on an unconditional dataset with every key");

    /* dataset methods */
    expect_ok(CLS PUR CON DS "    methods: [GET, post, PROPFIND, X_Y-Z]\n"
              GR "    methods: [POST, PROPFIND]\n",
              "dataset methods, an extension method, grant methods within");
    expect_err(CLS PUR CON DS "    methods: [GET, GE T]\n",
               "t.yaml:15: datasets[0].methods: bad method 'GE T': a method "
               "name has only letters, '_' and '-'", "a method with a space");
    expect_err(CLS PUR CON DS "    methods: [\"GET/1\"]\n",
               "datasets[0].methods: bad method 'GET/1'",
               "a method with a slash");
    expect_err(CLS PUR CON DS "    methods: [M2]\n",
               "datasets[0].methods: bad method 'M2'", "a method with a digit");
    expect_err(CLS PUR CON DS "    methods: [GET, get]\n",
               "t.yaml:15: datasets[0].methods: method GET is listed twice",
               "a method listed twice (any case)");
    expect_err(CLS PUR CON DS "    methods: []\n",
               "datasets[0].methods: must not be an empty list",
               "an empty dataset method list");
    expect_err(CLS PUR CON DS "    methods: GET\n",
               "datasets[0].methods: expected a list", "methods not a list");
    expect_err(CLS PUR CON DS
               "    methods: [ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG]\n",
               "datasets[0].methods: bad method "
               "'ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG': 1 to 32 characters",
               "a method of 33 characters");
    expect_ok(CLS PUR CON DS
              "    methods: [ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF]\n",
              "a method of 32 characters");
    expect_err(CLS PUR CON DS "    methods: [GET]\n" GR
               "    methods: [HEAD]\n",
               "t.yaml:20: grants[0].methods: method HEAD is not allowed on "
               "dataset 'd1' (its methods: GET)",
               "a grant method outside a [GET] dataset");
    expect_err(CLS PUR CON DS "    methods: [A, B, C, D, E, F, G, H, I, J, "
               "K, L, M, N, O, P]\n"
               "  - id: d2\n    share: none\n    level: 1\n"
               "    methods: [A, Q]\n",
               "t.yaml:19: datasets[1].methods: method Q: a policy may name "
               "at most 16 methods besides GET",
               "a 17th extension method");
    expect_ok(CLS PUR CON DS "    methods: [A, B, C, D, E, F, G, H, I, J, "
              "K, L, M, N, O, P]\n"
              "  - id: d2\n    share: none\n    level: 1\n"
              "    methods: [A, P, GET]\n",
              "16 extension methods, shared between datasets");

    /* dataset limits */
    expect_err(CLS PUR CON DS "    rate: 5r/h\n",
               "t.yaml:15: datasets[0].rate: bad rate '5r/h'",
               "a bad dataset rate");
    expect_err(CLS PUR CON DS "    quota: 5/fortnight\n",
               "t.yaml:15: datasets[0].quota: bad quota '5/fortnight'",
               "a bad dataset quota");
    expect_err(CLS PUR CON DS "    quota: 0/day\n",
               "datasets[0].quota: bad quota '0/day'", "a zero quota");
    expect_ok(CLS PUR CON DS "    rate: 10r/m burst=3\n    quota: 1/minute\n",
              "dataset rate and quota");

    /* limits */
    expect_err(BASE "    rate: 100r/h\n",
               "t.yaml:19: grants[0].rate: bad rate '100r/h'",
               "a rate per hour");
    expect_err(BASE "    rate: 100r/s burst=\n",
               "grants[0].rate: bad rate", "a burst without a number");
    expect_err(BASE "    quota: 5/week\n",
               "t.yaml:19: grants[0].quota: bad quota '5/week'",
               "a quota per week");
    expect_ok(BASE "    rate: 6000r/m\n    quota: 100/minute\n",
              "6000r/m and 100/minute");

    /* YAML level */
    expect_err("classes:\n  a: {level: 1\n  b: 2\n", "t.yaml:3: yaml:",
               "a YAML syntax error with its line");
    expect_err("", "t.yaml:1: file: empty policy file", "an empty file");
    expect_err("# nothing but a comment\n", "empty policy file",
               "a file of comments");
    expect_err("classes: &c\n  a.b: {level: 1, mask: name}\n",
               "t.yaml:1: yaml: anchors are not allowed", "an anchor");
    expect_err("classes:\n  a.b: {level: 1, mask: name}\npurposes: *c\n",
               "yaml:", "an alias");
    expect_err("purposes:\n  p1: !!map {name: x}\n",
               "t.yaml:2: yaml: tags are not allowed", "a tag");
    expect_err("purposes:\n  p1: {name: \"\xff\xfe\"}\n",
               "t.yaml:2: file: not valid UTF-8", "invalid UTF-8");
    expect_err("purposes:\n  p1: {name: \"\xc0\xaf\"}\n",
               "not valid UTF-8", "an overlong UTF-8 sequence");
    expect_err("purposes:\n  p1: {name: \"a\\0b\"}\n",
               "t.yaml:2: yaml: NUL character", "a NUL in a value");
    expect_ok("\xef\xbb\xbf" BASE, "a UTF-8 byte order mark");
    expect_err("purposes: {}\n---\npurposes: {}\n",
               "only one YAML document per file", "two documents");
    expect_err("purposes:\n  ? [a, b]\n  : {}\n",
               "mapping keys must be plain values", "a complex key");
}


static void
test_limits(void)
{
    char          err[DG_ERRLEN], *big;
    size_t        i, n;
    dg_policy_t  *p;
    char          path[] = "/tmp/dg_t_policy_XXXXXX";
    int           fd;

    /* depth */
    n = 200;
    big = malloc(n * 2 + 32);
    strcpy(big, "purposes: ");
    for (i = 0; i < n; i++) {
        strcat(big, "[");
    }
    for (i = 0; i < n; i++) {
        strcat(big, "]");
    }
    strcat(big, "\n");
    p = load(big, err);
    ok(p == NULL && strstr(err, "nesting too deep") != NULL,
       "rejects deep nesting");
    free(big);

    /* size: a sparse file over 16 MiB */
    fd = mkstemp(path);
    if (fd >= 0) {
        ok(ftruncate(fd, 16 * 1024 * 1024 + 1) == 0, "sparse big file");
        close(fd);
        p = dg_policy_load(path, err, sizeof(err));
        ok(p == NULL && strstr(err, ":1: file: larger than 16 MiB") != NULL,
           "rejects a file over 16 MiB");
        dg_policy_free(p);
        unlink(path);
    }

    p = dg_policy_load("/nonexistent/policy.yaml", err, sizeof(err));
    ok(p == NULL && strstr(err, "/nonexistent/policy.yaml: cannot open")
       != NULL, "names a missing file");

    /* a tiny error buffer is never overrun */
    p = dg_policy_load_buffer("t.yaml", "x: 1\n", 5, err, 8);
    ok(p == NULL && strlen(err) == 7, "error truncated to the buffer");
}


static void
test_directory(void)
{
    char                 err[DG_ERRLEN];
    dg_policy_t         *p;
    const dg_dataset_t  *d;

    p = dg_policy_load(fixture("module/core/t/policies/dir"), err,
                       sizeof(err));
    if (!ok(p != NULL, "directory policy loads")) {
        diag("%s", err);
        return;
    }

    is_int(p->nclasses, 3, "directory: classes merged from two files");
    is_int(p->ngrants, 1, "directory: one grant");
    is_str(p->level_names[4].data, "核心", "directory: levels from 00-");
    d = dg_policy_dataset(p, "population.person", 17);
    ok(d != NULL && d->detect, "directory: global detect: on applies");
    ok(d != NULL && d->nfields == 3, "directory: .yml file read");
    dg_policy_free(p);

    p = dg_policy_load(fixture("module/core/t/policies/dupdir"), err,
                       sizeof(err));
    ok(p == NULL && strstr(err, "dupdir/b.yaml:3: classes.person.name: "
                                "duplicate class 'person.name' (first "
                                "defined at ") != NULL
       && strstr(err, "dupdir/a.yaml:2)") != NULL,
       "directory: a duplicate across files names both places");
    dg_policy_free(p);

    p = dg_policy_load(fixture("module/core/t/policies/duppurpose"), err,
                       sizeof(err));
    ok(p == NULL && strstr(err, "duppurpose/b.yaml:3: purposes.relief: "
                                "duplicate purpose 'relief' (first "
                                "defined at ") != NULL
       && strstr(err, "duppurpose/a.yaml:2)") != NULL,
       "directory: a purpose defined twice names both places");
    dg_policy_free(p);

    p = dg_policy_load(fixture("module/core/t"), err, sizeof(err));
    ok(p == NULL && strstr(err, "no policy files") != NULL,
       "directory without policy files is an error");
    dg_policy_free(p);
}


static void
test_version(void)
{
    char          err[DG_ERRLEN], v1[65], v2[65];
    dg_policy_t  *p;

    p = load(BASE, err);
    if (p == NULL) {
        ok(0, "version: base loads");
        return;
    }
    memcpy(v1, p->version_hex, 65);
    dg_policy_free(p);

    p = load(BASE, err);
    ok(p && strcmp(v1, p->version_hex) == 0, "same content, same version");
    dg_policy_free(p);

    p = load(BASE "# a comment\n", err);
    ok(p && strcmp(v1, p->version_hex) != 0, "changed content, new version");
    dg_policy_free(p);

    p = dg_policy_load_buffer("other.yaml", BASE, strlen(BASE), err,
                              sizeof(err));
    ok(p && strcmp(v1, p->version_hex) != 0, "file name is in the version");
    dg_policy_free(p);

    p = dg_policy_load_buffer("/some/dir/t.yaml", BASE, strlen(BASE), err,
                              sizeof(err));
    ok(p && strcmp(v1, p->version_hex) == 0,
       "the directory part is not in the version");
    if (p) {
        memcpy(v2, p->version_hex, 65);
        ok(strspn(v2, "0123456789abcdef") == 64, "version is lower hex");
    }
    dg_policy_free(p);
}


#define FP_HEX  "5e6ee1d9c81dc8a1d0a4ab3fa9b9c0d1"                          \
                "e3eff9bd2f0b13a6a77f22f4d3a1b2c3"
#define FP_COL  "5E:6E:E1:D9:C8:1D:C8:A1:D0:A4:AB:3F:A9:B9:C0:D1:E3:EF:F9:BD:" \
                "2F:0B:13:A6:A7:7F:22:F4:D3:A1:B2:C3"

static const char  *match_yaml =
    "purposes: {p: {}}\n"
    "consumers:\n"
    "  - id: by-fp\n"
    "    cert: {fingerprint_sha256: \"sha256 Fingerprint=" FP_COL "\"}\n"
    "    clearance: 1\n"
    "  - id: by-serial\n"
    "    cert: {serial: \"00:0A:bc:01\"}\n"
    "    clearance: 1\n"
    "  - id: by-subject\n"
    "    cert: {subject: \"CN=assistance,O=Civil Affairs,C=CN\"}\n"
    "    clearance: 2\n"
    "  - id: by-uri\n"
    "    cert: {san: \"URI:spiffe://gx.gov.cn/ns/App\"}\n"
    "    clearance: 1\n"
    "  - id: by-dns\n"
    "    cert: {san: \"DNS:HRSS.gx.gov.cn\"}\n"
    "    clearance: 3\n"
    "  - id: subject-and-serial\n"
    "    cert: {subject: \"CN=both,C=CN\", serial: \"1F\"}\n"
    "    clearance: 1\n"
    "  - id: first\n"
    "    cert: {subject: \"CN=dup,C=CN\"}\n"
    "    clearance: 1\n"
    "  - id: second\n"
    "    cert: {subject: \"CN=dup,C=CN\", serial: \"77\"}\n"
    "    clearance: 1\n"
    "  - id: net\n"
    "    cert: {subject: \"CN=net\"}\n"
    "    clearance: 1\n"
    "    networks: [127.0.0.0/8, 10.1.0.0/16, \"::1/128\", "
    "\"2001:db8::/32\"]\n"
    "    geo: {countries: [CN], regions: [CN-GX, CN-GD]}\n"
    "  - id: geo-country\n"
    "    cert: {subject: \"CN=geo\"}\n"
    "    clearance: 1\n"
    "    geo: {countries: [CN, HK]}\n";


static const char *
match_id(const dg_policy_t *p, const uint8_t *fp, const char *serial,
    const char *subject, const char *san1, const char *san2)
{
    dg_str_t              sans[2];
    dg_identity_t         id;
    const dg_consumer_t  *c;

    memset(&id, 0, sizeof(id));
    id.fingerprint = fp;
    if (serial) {
        id.serial.data = serial;
        id.serial.len = strlen(serial);
    }
    if (subject) {
        id.subject.data = subject;
        id.subject.len = strlen(subject);
    }
    if (san1) {
        sans[0].data = san1;
        sans[0].len = strlen(san1);
        id.nsans = 1;
    }
    if (san2) {
        sans[1].data = san2;
        sans[1].len = strlen(san2);
        id.nsans = 2;
    }
    id.sans = sans;

    c = dg_policy_match_consumer(p, &id);

    return c ? c->id.data : "(none)";
}


static void
test_matching(void)
{
    char                  err[DG_ERRLEN];
    uint8_t               fp[32], fp2[32];
    dg_policy_t          *p;
    const dg_consumer_t  *c;

    p = load(match_yaml, err);
    if (!ok(p != NULL, "matching policy loads")) {
        diag("%s", err);
        return;
    }

    ok(dg_fingerprint_parse(FP_HEX, 64, fp) == 0, "fingerprint: plain hex");
    ok(dg_fingerprint_parse(FP_COL, strlen(FP_COL), fp2) == 0
       && memcmp(fp, fp2, 32) == 0, "fingerprint: colon form, same bytes");
    ok(dg_fingerprint_parse("SHA256 Fingerprint=" FP_COL,
                            strlen(FP_COL) + 19, fp2) == 0
       && memcmp(fp, fp2, 32) == 0, "fingerprint: openssl prefix");
    ok(dg_fingerprint_parse(FP_HEX, 62, fp2) != 0, "fingerprint: short");

    is_str(match_id(p, fp, NULL, NULL, NULL, NULL), "by-fp",
           "match by fingerprint");
    fp2[0] ^= 1;
    memcpy(fp2, fp, 32);
    fp2[31] ^= 1;
    is_str(match_id(p, fp2, NULL, NULL, NULL, NULL), "(none)",
           "other fingerprint: no match");

    is_str(match_id(p, NULL, "0abc01", NULL, NULL, NULL), "by-serial",
           "match by serial, lower case without leading zero");
    is_str(match_id(p, NULL, "00:0A:BC:01", NULL, NULL, NULL), "by-serial",
           "match by serial, colons and leading zeros");
    is_str(match_id(p, NULL, "0ABC02", NULL, NULL, NULL), "(none)",
           "other serial: no match");

    is_str(match_id(p, NULL, NULL, "CN=assistance,O=Civil Affairs,C=CN",
                    NULL, NULL), "by-subject", "match by subject");
    is_str(match_id(p, NULL, NULL, "CN=Assistance,O=Civil Affairs,C=CN",
                    NULL, NULL), "(none)", "subject compare is exact");

    is_str(match_id(p, NULL, NULL, NULL, "DNS:other", "URI:spiffe://gx.gov."
                    "cn/ns/App"), "by-uri", "match by URI SAN (second SAN)");
    is_str(match_id(p, NULL, NULL, NULL, "URI:spiffe://gx.gov.cn/ns/app",
                    NULL), "(none)", "URI SAN is case-sensitive");
    is_str(match_id(p, NULL, NULL, NULL, "DNS:hrss.GX.gov.cn", NULL),
           "by-dns", "DNS SAN is case-insensitive");
    is_str(match_id(p, NULL, NULL, NULL, "DNS:hrss.gx.gov.cn.evil", NULL),
           "(none)", "DNS SAN: no suffix match");

    is_str(match_id(p, NULL, "1f", "CN=both,C=CN", NULL, NULL),
           "subject-and-serial", "two matchers, both match");
    is_str(match_id(p, NULL, "20", "CN=both,C=CN", NULL, NULL), "(none)",
           "two matchers, one differs: no match");
    is_str(match_id(p, NULL, NULL, "CN=both,C=CN", NULL, NULL), "(none)",
           "two matchers, serial absent: no match");

    is_str(match_id(p, NULL, "77", "CN=dup,C=CN", NULL, NULL), "first",
           "several match: first in policy order");
    is_str(match_id(p, NULL, NULL, NULL, NULL, NULL), "(none)",
           "empty identity: no match");

    /* networks */
    c = dg_policy_consumer(p, "net", 3);
    if (c != NULL) {
        struct sockaddr_in   s4;
        struct sockaddr_in6  s6;

        memset(&s4, 0, sizeof(s4));
        s4.sin_family = AF_INET;
        inet_pton(AF_INET, "127.0.0.1", &s4.sin_addr);
        ok(dg_consumer_network_ok(c, (struct sockaddr *) &s4), "v4 in /8");
        inet_pton(AF_INET, "10.1.255.7", &s4.sin_addr);
        ok(dg_consumer_network_ok(c, (struct sockaddr *) &s4), "v4 in /16");
        inet_pton(AF_INET, "10.2.0.1", &s4.sin_addr);
        ok(!dg_consumer_network_ok(c, (struct sockaddr *) &s4),
           "v4 outside: denied");

        memset(&s6, 0, sizeof(s6));
        s6.sin6_family = AF_INET6;
        inet_pton(AF_INET6, "::1", &s6.sin6_addr);
        ok(dg_consumer_network_ok(c, (struct sockaddr *) &s6), "v6 ::1");
        inet_pton(AF_INET6, "2001:db8:ffff::5", &s6.sin6_addr);
        ok(dg_consumer_network_ok(c, (struct sockaddr *) &s6), "v6 in /32");
        inet_pton(AF_INET6, "2001:db9::5", &s6.sin6_addr);
        ok(!dg_consumer_network_ok(c, (struct sockaddr *) &s6),
           "v6 outside: denied");
        inet_pton(AF_INET6, "::2", &s6.sin6_addr);
        ok(!dg_consumer_network_ok(c, (struct sockaddr *) &s6),
           "v6 ::2: denied");
        inet_pton(AF_INET6, "::ffff:127.0.0.9", &s6.sin6_addr);
        ok(dg_consumer_network_ok(c, (struct sockaddr *) &s6),
           "v4-mapped v6 matches the v4 network");
        inet_pton(AF_INET6, "::ffff:11.0.0.1", &s6.sin6_addr);
        ok(!dg_consumer_network_ok(c, (struct sockaddr *) &s6),
           "v4-mapped v6 outside: denied");
        ok(!dg_consumer_network_ok(c, NULL), "no address: denied");

        ok(dg_consumer_geo_ok(c, "CN", "CN-GX"), "geo: CN, CN-GX");
        ok(dg_consumer_geo_ok(c, "cn", "cn-gd"), "geo: case-insensitive");
        ok(!dg_consumer_geo_ok(c, "CN", "CN-BJ"), "geo: other region");
        ok(!dg_consumer_geo_ok(c, "US", "CN-GX"), "geo: other country");
        ok(!dg_consumer_geo_ok(c, NULL, NULL), "geo: unknown: denied");
        ok(!dg_consumer_geo_ok(c, "CN", NULL), "geo: region unknown: denied");
    }

    c = dg_policy_consumer(p, "geo-country", 11);
    ok(c && dg_consumer_geo_ok(c, "HK", NULL), "geo: countries only");
    ok(c && !dg_consumer_geo_ok(c, "TW", "x"), "geo: country not listed");

    c = dg_policy_consumer(p, "by-fp", 5);
    if (c != NULL) {
        struct sockaddr_in   s4;

        memset(&s4, 0, sizeof(s4));
        s4.sin_family = AF_INET;
        inet_pton(AF_INET, "8.8.8.8", &s4.sin_addr);
        ok(dg_consumer_network_ok(c, (struct sockaddr *) &s4),
           "no networks: any address");
        ok(dg_consumer_geo_ok(c, NULL, NULL), "no geo rule: allowed");
    }

    dg_policy_free(p);
}


static void
test_many(void)
{
    char           err[DG_ERRLEN], *y, subj[64], serial[32];
    size_t         n, cap, i;
    dg_policy_t   *p;
    const char    *got;

    cap = 4 * 1024 * 1024;
    y = malloc(cap);
    n = (size_t) snprintf(y, cap, "consumers:\n");

    for (i = 0; i < 5000; i++) {
        if (i % 2) {
            n += (size_t) snprintf(y + n, cap - n,
                                   "  - id: c%zu\n"
                                   "    cert: {subject: \"CN=c%zu,C=CN\"}\n"
                                   "    clearance: 1\n", i, i);
        } else {
            n += (size_t) snprintf(y + n, cap - n,
                                   "  - id: c%zu\n"
                                   "    cert: {serial: \"%zx\"}\n"
                                   "    clearance: 1\n", i, i + 0x1000);
        }
    }

    p = dg_policy_load_buffer("many.yaml", y, n, err, sizeof(err));
    if (!ok(p != NULL, "5000 consumers load")) {
        diag("%s", err);
        free(y);
        return;
    }

    snprintf(subj, sizeof(subj), "CN=c%d,C=CN", 4321);
    got = match_id(p, NULL, NULL, subj, NULL, NULL);
    is_str(got, "c4321", "5000 consumers: subject lookup");
    snprintf(serial, sizeof(serial), "%X", 4000 + 0x1000);
    got = match_id(p, NULL, serial, NULL, NULL, NULL);
    is_str(got, "c4000", "5000 consumers: serial lookup");
    ok(dg_policy_consumer(p, "c4999", 5) != NULL, "5000: id lookup");

    dg_policy_free(p);
    free(y);
}


static void
test_runtime_grant(void)
{
    char                 err[DG_ERRLEN];
    const char          *g1, *g2;
    dg_grant_t          *g;
    dg_policy_t         *p;

    p = load(BASE, err);
    if (p == NULL) {
        ok(0, "runtime: base loads");
        return;
    }

    g1 = "consumer: c1\ndataset: d1\npurposes: [p1]\n"
         "valid: {from: 2024-01-01, until: 2024-12-31}\n"
         "reveal: [id_card]\ndrop: [secret]\nrate: 10r/s\n";
    g = dg_grant_compile(p, g1, strlen(g1), err, sizeof(err));
    if (ok(g != NULL, "run-time grant compiles")) {
        ok(g->runtime, "runtime flag set");
        is_int(g->plan.nfields, 3, "run-time plan: 2 fields + 1 drop key");
        ok(g->plan.actions[0].method == DG_MASK_CLEAR, "revealed id_card");
        ok(g->plan.actions[2].method == DG_MASK_DROP, "dropped 'secret'");
        ok(g->limit.rate == 10.0, "rate parsed");
        dg_grant_free(g);
    } else {
        diag("%s", err);
    }

    g2 = "consumer: c1\ndataset: d1\npurposes: [p1]\nreveal: [nope]\n";
    g = dg_grant_compile(p, g2, strlen(g2), err, sizeof(err));
    ok(g == NULL && strstr(err, "grant:4: grant.reveal: 'nope' is not a "
                                "field") != NULL,
       "run-time grant errors name line and field");
    g2 = "consumer: c9\ndataset: d1\npurposes: [p1]\n";
    g = dg_grant_compile(p, g2, strlen(g2), err, sizeof(err));
    ok(g == NULL && strstr(err, "grant:1: grant.consumer: unknown consumer")
       != NULL, "run-time grant: unknown consumer");
    g = dg_grant_compile(p, "[1, 2]", 6, err, sizeof(err));
    ok(g == NULL && strstr(err, "expected a mapping") != NULL,
       "run-time grant: not a mapping");
    g = dg_grant_compile(p, "a: *x", 5, err, sizeof(err));
    ok(g == NULL, "run-time grant: YAML error");

    dg_policy_free(p);
}


static int
t_emit(void *ctx, const uint8_t *p, size_t n)
{
    char    *b = ctx;
    size_t   l = strlen(b);

    if (l + n >= 1024) {
        return -1;
    }
    memcpy(b + l, p, n);
    b[l + n] = '\0';
    return 0;
}


/* mask doc with a plan; the output in out (1 KB) */
static int
t_plan_mask(const dg_plan_t *pl, const char *doc, char *out)
{
    dg_mask_conf_t   conf;
    dg_mask_t       *m;
    void            *mem;
    int              rc;

    memset(&conf, 0, sizeof(conf));
    conf.rules = pl->rules;
    conf.actions = pl->actions;
    out[0] = '\0';

    if (posix_memalign(&mem, 16, dg_mask_size(&conf)) != 0) {
        return -1;
    }
    m = dg_mask_init(mem, &conf);
    rc = m ? dg_mask_feed(m, (const uint8_t *) doc, strlen(doc), 1, t_emit,
                          out)
           : -1;
    free(mem);
    return rc;
}


/* containers: keys whose object or array allow-list mode walks */
static void
test_containers(void)
{
    char                 err[DG_ERRLEN], out[1024];
    dg_policy_t         *p;
    const dg_dataset_t  *d;
    const char          *doc;

    err[0] = '\0';
    p = load(CLS PUR CON DS "    unlisted: drop\n"
             "    containers: [data, \"result.list\"]\n" GR
             "    drop: [x]\n", err);
    if (!ok(p != NULL, "containers: loads")) {
        diag("%s", err);
        return;
    }

    d = dg_policy_dataset(p, "d1", 2);
    ok(d != NULL && d->ncontainers == 2
       && strcmp(d->containers[1].data, "result.list") == 0,
       "containers: two, in order");

    doc = "{\"code\":0,\"data\":[{\"id_card\":\"450103199003071242\","
          "\"x\":1,\"o\":{\"name\":\"y\"}}],\"result\":{\"list\":[{\"name\":"
          "\"韦秀兰\",\"z\":2}],\"n\":1},\"list\":[{\"name\":\"z\"}]}";

    if (!ok(d != NULL && t_plan_mask(&d->plan_by_clearance[2], doc, out) == 0
            && strcmp(out, "{\"data\":[{\"id_card\":\"450103********1242\"}],"
                      "\"result\":{\"list\":[{\"name\":\"韦**\"}]}}") == 0,
            "containers: the dataset's plan walks them"))
    {
        diag("%s", out);
    }

    ok(p->ngrants == 1
       && t_plan_mask(&p->grants[0].plan, doc, out) == 0
       && strcmp(out, "{\"data\":[{\"id_card\":\"450103********1242\"}],"
                 "\"result\":{\"list\":[{\"name\":\"韦**\"}]}}") == 0,
       "containers: a grant's plan (with its own drop keys) walks them");

    dg_policy_free(p);

    expect_err(CLS PUR CON DS "    containers: [data, id_card]\n",
               "t.yaml:15: datasets[0].containers: 'id_card' is a field of "
               "the dataset", "a container that is a field");
    expect_err(CLS PUR CON DS "    containers: [data, data]\n",
               "datasets[0].containers: 'data' is listed twice",
               "a container listed twice");
    expect_err(CLS PUR CON DS "    containers: [\"data[]\"]\n",
               "datasets[0].containers: container 0: selector \"data[]\" "
               "ends in \"[]\"", "a container path ending in []");
    expect_err(CLS PUR CON DS "    containers: data\n",
               "datasets[0].containers: expected a list",
               "containers that are no list");
    expect_err(CLS PUR CON DS "    containers: []\n",
               "datasets[0].containers: must not be an empty list",
               "an empty list of containers");
    expect_err(CLS PUR CON DS "    containers: [{a: b}]\n",
               "datasets[0].containers", "a container that is a mapping");
}


int
main(void)
{
    top = tap_top();

    test_sample();
    test_headers();
    test_validation();
    test_limits();
    test_directory();
    test_version();
    test_matching();
    test_many();
    test_runtime_grant();
    test_containers();

    return done_testing();
}
