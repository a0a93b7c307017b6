/*
 * libFuzzer target for the request path rule (dg_path.c).
 *
 * fuzz: sources dg_path.c
 *
 * The input is a path.  dg_path_check() must not crash or read or write
 * outside the path and a scratch buffer of exactly its length, must give
 * the same answer twice, and when it accepts a path an independent,
 * simpler reading must agree: decoding the whole path up to
 * DG_PATH_DECODE_MAX times (not segment by segment) never yields a ';', a
 * '\', a NUL, or a segment of only dots and spaces, and a fifth decoding
 * changes nothing.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dg_path.h"


static int
hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}


/* decodes p in place; returns the new length, *changed set */
static size_t
decode(uint8_t *p, size_t n, int *changed)
{
    int     hi, lo;
    size_t  i, o;

    *changed = 0;

    for (i = 0, o = 0; i < n; i++, o++) {
        if (p[i] == '%' && i + 2 < n
            && (hi = hexval(p[i + 1])) >= 0 && (lo = hexval(p[i + 2])) >= 0)
        {
            p[o] = (uint8_t) (hi << 4 | lo);
            i += 2;
            *changed = 1;
            continue;
        }

        p[o] = p[i];
    }

    return o;
}


static void
check_form(const uint8_t *p, size_t n)
{
    size_t  i, start, dots, others;

    for (i = 0; i < n; i++) {
        if (p[i] == ';' || p[i] == '\\' || p[i] == '\0') {
            abort();
        }
    }

    start = 0;

    for (i = 0; i <= n; i++) {
        if (i < n && p[i] != '/') {
            continue;
        }

        dots = 0;
        others = 0;

        for (size_t k = start; k < i; k++) {
            if (p[k] == '.') {
                dots++;

            } else if (p[k] != ' ') {
                others++;
            }
        }

        if (dots && !others) {
            abort();
        }

        start = i + 1;
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int         round, changed;
    size_t      n;
    uint8_t    *scratch, *copy;
    dg_path_e   rc;

    scratch = malloc(size ? size : 1);
    copy = malloc(size ? size : 1);

    if (scratch == NULL || copy == NULL) {
        free(scratch);
        free(copy);
        return 0;
    }

    rc = dg_path_check(data, size, scratch);

    if (dg_path_check(data, size, scratch) != rc
        || dg_path_problem(rc) == NULL)
    {
        abort();
    }

    if (rc == DG_PATH_OK) {
        memcpy(copy, data, size);
        n = size;

        check_form(copy, n);

        for (round = 0; round < DG_PATH_DECODE_MAX; round++) {
            n = decode(copy, n, &changed);
            check_form(copy, n);
        }

        (void) decode(copy, n, &changed);

        if (changed) {
            abort();
        }
    }

    free(scratch);
    free(copy);

    return 0;
}
