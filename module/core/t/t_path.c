/*
 * Unit tests: the request paths enforced locations refuse (dg_path.c).
 */

#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "dg_path.h"


typedef struct {
    const char                 *path;
    dg_path_e                   want;
} path_case_t;


static const path_case_t  cases[] = {

    /* what clients send */
    { "/person/1", DG_PATH_OK },
    { "/person/", DG_PATH_OK },
    { "/", DG_PATH_OK },
    { "", DG_PATH_OK },
    { "//person//1", DG_PATH_OK },
    { "/enterprise/%E5%B9%BF%E8%A5%BF", DG_PATH_OK },       /* 广西 */
    { "/enterprise/\xe5\xb9\xbf\xe8\xa5\xbf", DG_PATH_OK }, /* raw UTF-8 */
    { "/person/1.json", DG_PATH_OK },
    { "/person/.hidden", DG_PATH_OK },
    { "/person/a..b", DG_PATH_OK },
    { "/person/..a", DG_PATH_OK },
    { "/person/100%25", DG_PATH_OK },           /* a literal % */
    { "/person/100%25off", DG_PATH_OK },
    { "/person/50%", DG_PATH_OK },
    { "/person/%zz", DG_PATH_OK },
    { "/person/a%20b", DG_PATH_OK },
    { "/person/%3F", DG_PATH_OK },              /* an encoded ? is data */
    { "/person/%23", DG_PATH_OK },              /* and an encoded # */
    { "/person/%e4%b8%ad", DG_PATH_OK },        /* 中, lower-case hex */

    /* dot segments nginx resolves itself, and what it leaves */
    { "/person/../tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/./1", DG_PATH_DOT_SEGMENT },
    { "/person/..", DG_PATH_DOT_SEGMENT },
    { "/person/.", DG_PATH_DOT_SEGMENT },
    { "/..", DG_PATH_DOT_SEGMENT },
    { "..", DG_PATH_DOT_SEGMENT },

    /* with parameters: what servlet containers resolve */
    { "/person/..;/tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/..;jsessionid=ABC/tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/.;x/1", DG_PATH_DOT_SEGMENT },
    { "/person/..%3B/tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/..%3b/tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/%2e%2e;x/tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/%2E%2E%3Bx/tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/.%2e;/tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/%2e./tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/%2e%2e/tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/%2e/1", DG_PATH_DOT_SEGMENT },

    /* encoded more than once */
    { "/person/%252e%252e;/tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/%252e%252e%253b/tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/%25252e%25252e/tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/%2525252e%2525252e/tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/%252525252e/tax/1", DG_PATH_TOO_ENCODED },

    /* what Windows servers drop: trailing dots and spaces */
    { "/person/.../tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/.. /tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/..%20/tax/1", DG_PATH_DOT_SEGMENT },
    { "/person/. ./tax/1", DG_PATH_DOT_SEGMENT },

    /* parameters on other segments */
    { "/person;x=1/1", DG_PATH_PARAMETERS },
    { "/person/1;jsessionid=ABC", DG_PATH_PARAMETERS },
    { "/person/1;", DG_PATH_PARAMETERS },
    { "/tax%3Bx/1", DG_PATH_PARAMETERS },
    { "/tax%253Bx/1", DG_PATH_PARAMETERS },
    { ";/person/1", DG_PATH_PARAMETERS },

    /* separators some back ends see */
    { "/person/..%2Ftax/1", DG_PATH_ENCODED_SLASH },
    { "/person/%2F..%2Ftax", DG_PATH_ENCODED_SLASH },
    { "/person%2f1", DG_PATH_ENCODED_SLASH },
    { "/person/a%252Fb", DG_PATH_ENCODED_SLASH },
    { "/person\\..\\tax\\1", DG_PATH_BACKSLASH },
    { "/person/1\\", DG_PATH_BACKSLASH },
    { "/person/..%5Ctax/1", DG_PATH_BACKSLASH },
    { "/person/..%5ctax/1", DG_PATH_BACKSLASH },
    { "/person/a%255Cb", DG_PATH_BACKSLASH },

    /* never valid */
    { "/person/%00", DG_PATH_NUL },
    { "/person/1%2500", DG_PATH_NUL },
    { "/person/%c0%ae%c0%ae/tax/1", DG_PATH_OVERLONG },
    { "/person/%c0%af", DG_PATH_OVERLONG },
    { "/person/%e0%80%ae", DG_PATH_OVERLONG },
    { "/person/%f0%80%80%ae", DG_PATH_OVERLONG },
    { "/person/1#/../../tax/1", DG_PATH_FRAGMENT },
    { "/person/..#", DG_PATH_FRAGMENT },
    { "/person/1#frag", DG_PATH_FRAGMENT },
};


static void
test_cases(void)
{
    size_t          i, len;
    dg_path_e       got;
    unsigned char  *scratch;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        len = strlen(cases[i].path);

        /* exactly len bytes: a write past them shows under ASan */
        scratch = malloc(len ? len : 1);

        got = dg_path_check((const unsigned char *) cases[i].path, len,
                            scratch);

        is_int(got, cases[i].want, "%s: %s", cases[i].path,
               dg_path_problem(cases[i].want));

        free(scratch);
    }
}


static void
test_nul_byte(void)
{
    unsigned char  scratch[16];

    /* a raw NUL (HTTP/2 :path can carry any byte nginx lets through) */
    is_int(dg_path_check((const unsigned char *) "/a\0b", 4, scratch),
           DG_PATH_NUL, "raw NUL in a segment");
}


static void
test_messages(void)
{
    int  i;

    for (i = 0; i < DG_PATH_MAX; i++) {
        ok(dg_path_problem((dg_path_e) i) != NULL
           && dg_path_problem((dg_path_e) i)[0] != '\0',
           "message for %d", i);
    }

    ok(dg_path_problem(DG_PATH_MAX) != NULL, "message out of range");
    ok(strstr(dg_path_problem(DG_PATH_DOT_SEGMENT), "dot segment") != NULL,
       "dot segment message");
}


static void
test_long(void)
{
    size_t          i, len;
    unsigned char  *p, *scratch;


    /* "%2525...252e", 64 KiB: each decoding takes off one "25"; the
     * work stops after DG_PATH_DECODE_MAX of them */
    len = 65536;
    p = malloc(len);
    scratch = malloc(len);

    p[0] = '/';
    p[1] = '%';
    for (i = 2; i + 2 < len; i += 2) {
        memcpy(p + i, "25", 2);
    }
    memcpy(p + i, "2e", 2);
    len = i + 2;

    is_int(dg_path_check(p, len, scratch), DG_PATH_TOO_ENCODED,
           "64 KiB encoded 32767 times: too encoded, bounded work");

    free(p);
    free(scratch);
}


int
main(void)
{
    (void) is_str;
    diag("request paths of enforced locations");

    test_cases();
    test_nul_byte();
    test_messages();
    test_long();

    return done_testing();
}
