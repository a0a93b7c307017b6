/*
 * Unit tests of a grant's params against query strings
 * (module/core/dg_params.c): what passes, and every reading two
 * providers could tell apart, refused.
 */

#include <stdio.h>
#include <string.h>
#include "tap.h"
#include "dg_policy.h"


typedef struct {
    const char         *query;
    int                 body;
    int                 ok;         /* 1: allowed */
    const char         *why;        /* a part of the reason, refused */
} pcase_t;


static const pcase_t  cases[] = {
    /* allowed */
    { "region=450102", 0, 1, NULL },
    { "region=4501", 0, 1, NULL },
    { "region=450203", 0, 1, NULL },
    { "page=2&region=450102&size=10", 0, 1, NULL },
    { "region=%34%35%30%31%30%32", 0, 1, NULL },     /* read once: 450102 */
    { "reg%69on=450102", 0, 1, NULL },               /* the name, decoded */
    { "&&region=450102&", 0, 1, NULL },
    { "region=450102&status=active", 0, 1, NULL },
    { "region=450102&q=a,b;c", 0, 1, NULL },         /* ';' splits: c */
    { "region=4501ab", 0, 1, NULL },

    /* missing */
    { "", 0, 0, "\"region\" is missing" },
    { "page=1", 0, 0, "\"region\" is missing" },
    { "region", 0, 0, "out of scope" },              /* no value */
    { "region=", 0, 0, "out of scope" },

    /* out of scope */
    { "region=990000", 0, 0, "out of scope" },
    { "region=450", 0, 0, "out of scope" },
    { "region=45020", 0, 0, "out of scope" },
    { "region=4502030", 0, 0, "out of scope" },

    /* repeated, however */
    { "region=450102&region=990000", 0, 0, "more than once" },
    { "region=450102&region=450102", 0, 0, "more than once" },
    { "region=450102;region=990000", 0, 0, "more than once" },
    { "region=450102&reg%69on=990000", 0, 0, "more than once" },

    /* names a provider may take for it */
    { "Region=450102", 0, 0, "may be read as \"region\"" },
    { "region=450102&REGION=990000", 0, 0, "may be read as" },
    { "region[]=450102", 0, 0, "may be read as" },
    { "region=450102&region[]=990000", 0, 0, "may be read as" },
    { "region[0]=990000&region=450102", 0, 0, "may be read as" },
    { "region%5B%5D=990000&region=450102", 0, 0, "may be read as" },
    { "region%00=990000&region=450102", 0, 0, "may be read as" },
    { "region+=990000&region=450102", 0, 0, "may be read as" },
    { "%20region=990000&region=450102", 0, 0, "may be read as" },
    { "reg%2569on=990000&region=450102", 0, 0, "may be read as" },
    { "reg%252569on=990000&region=450102", 0, 0, "may be read as" },

    /* values a reading could split, widen or decode again */
    { "region=450102,990000", 0, 0, "syntax" },
    { "region=450102%2C990000", 0, 0, "syntax" },
    { "region=4501*", 0, 0, "syntax" },
    { "region=4501%25", 0, 0, "syntax" },
    { "region=%2534%35%30%31", 0, 0, "syntax" },
    { "region=4501%00", 0, 0, "syntax" },
    { "region=4501+", 0, 0, "syntax" },
    { "region=4501%2B1", 0, 0, "syntax" },
    { "region=4501%20", 0, 0, "syntax" },
    { "region=4501%0a", 0, 0, "syntax" },
    { "region=4501|9999", 0, 0, "syntax" },
    { "region=[\"4501\"]", 0, 0, "syntax" },
    { "region=4501%ff", 0, 0, "not UTF-8" },
    { "region=4501%4", 0, 0, "broken" },
    { "region=4501%zz", 0, 0, "broken" },
    { "reg%zzion=1&region=450102", 0, 0, "broken" },

    /* a fragment, a body */
    { "region=450102#x", 0, 0, "\"#\"" },
    { "x=1#&region=990000", 0, 0, "\"#\"" },
    { "region=450102", 1, 0, "body" },
};


int
main(void)
{
    dg_str_t     v1[2] = { { "4501*", 5 }, { "450203", 6 } };
    dg_scope_t   sc[1] = { { { "region", 6 }, v1, 2 } };
    dg_str_t     v2[1] = { { "active", 6 } };
    dg_scope_t   sc2[2] = { { { "region", 6 }, v1, 2 },
                            { { "status", 6 }, v2, 1 } };
    char         why[256];
    size_t       i;
    dg_reason_e  r;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const pcase_t  *c = &cases[i];

        why[0] = '\0';
        r = dg_params_check(sc, 1, c->query, strlen(c->query), c->body,
                            why, sizeof(why));

        if (c->ok) {
            ok(r == DG_R_OK, "\"%s\": allowed (%s)", c->query, why);

        } else {
            ok(r == DG_R_SCOPE_VIOLATION
               && (c->why == NULL || strstr(why, c->why) != NULL),
               "\"%s\": refused: %s", c->query, why);
        }
    }

    r = dg_params_check(sc2, 2, "status=active&region=4501", 25, 0, why,
                        sizeof(why));
    ok(r == DG_R_OK, "two parameters, both in scope");
    r = dg_params_check(sc2, 2, "region=4501", 11, 0, why, sizeof(why));
    ok(r == DG_R_SCOPE_VIOLATION && strstr(why, "\"status\" is missing"),
       "two parameters: one missing: %s", why);
    r = dg_params_check(sc2, 2, "region=4501&status=Active", 25, 0, why,
                        sizeof(why));
    ok(r == DG_R_SCOPE_VIOLATION && strstr(why, "\"status\" is out"),
       "values compared exactly (case too): %s", why);
    r = dg_params_check(sc, 0, "anything#at all", 15, 1, why, sizeof(why));
    is_int(r, DG_R_OK, "no params: nothing checked");
    is_str(dg_reason_code(DG_R_SCOPE_VIOLATION), "scope_violation",
           "the reason code");
    if (r != DG_R_OK) {
        diag("%s", why);
    }

    ok(dg_param_value_ok("4501*", 5) && dg_param_value_ok("a.b-c_d", 7)
       && dg_param_value_ok("南宁", strlen("南宁")),
       "bound values that can match");
    ok(!dg_param_value_ok("45*01", 5) && !dg_param_value_ok("a b", 3)
       && !dg_param_value_ok("a,b", 3) && !dg_param_value_ok("%41", 3),
       "bound values that could never match");

    return done_testing();
}
