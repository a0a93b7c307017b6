/*
 * libFuzzer target for the distinguished-name parser (dg_dn_parse), the
 * names of the policy's cert: subject and issuer.
 *
 * fuzz: sources dg_dn.c dg_util.c
 *
 * The input is parsed as a name a person wrote.  When it parses, its
 * canonical form is NUL-terminated, fits DG_DN_MAX and parses again to
 * itself (one name, one form); when it does not, an error message is set.
 * Nothing may crash or leak.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#include "dg_dn.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t  n, m;
    char    out[DG_DN_MAX], again[DG_DN_MAX], err[512];

    err[0] = '\0';

    n = dg_dn_parse((const char *) data, size, out, sizeof(out), err,
                    sizeof(err));

    if (n == 0) {
        if (err[0] == '\0') {
            abort();
        }
        return 0;
    }

    if (n >= sizeof(out) || out[n] != '\0' || strlen(out) != n) {
        abort();
    }

    m = dg_dn_parse(out, n, again, sizeof(again), err, sizeof(err));

    if (m != n || memcmp(out, again, n) != 0) {
        fprintf(stderr, "not stable: '%s' -> '%s' (%s)\n", out,
                m ? again : "", m ? "" : err);
        abort();
    }

    return 0;
}
