/*
 * datagate core: which request paths an enforced location refuses (the
 * rule is in dg_path.h).
 */

#include <string.h>

#include "dg_path.h"


static dg_path_e dg_path_segment(const unsigned char *s, size_t n,
    unsigned char *scratch);
static dg_path_e dg_path_form(const unsigned char *s, size_t n,
    int round);
static int dg_path_dots(const unsigned char *s, size_t n);
static int dg_path_overlong(const unsigned char *s, size_t n);
static int dg_path_hex(unsigned char c);
static size_t dg_path_decode(const unsigned char *s, size_t n,
    unsigned char *out, int *changed);


static const char *const  dg_path_problems[DG_PATH_MAX] = {
    "the path is acceptable",
    "the path has a dot segment (\".\" or \"..\", also encoded or with "
        "\";\" parameters)",
    "the path has a segment with \";\" parameters",
    "the path has an encoded \"/\"",
    "the path has a \"\\\" (raw or encoded)",
    "the path has an encoded NUL",
    "the path has an overlong UTF-8 form",
    "the path has a \"#\"",
    "the path is percent-encoded too many times",
};


dg_path_e
dg_path_check(const unsigned char *path, size_t len, unsigned char *scratch)
{
    size_t     i, start;
    dg_path_e  rc;

    start = 0;

    for (i = 0; i <= len; i++) {
        if (i < len && path[i] != '/') {
            continue;
        }

        rc = dg_path_segment(path + start, i - start, scratch);
        if (rc != DG_PATH_OK) {
            return rc;
        }

        start = i + 1;
    }

    return DG_PATH_OK;
}


const char *
dg_path_problem(dg_path_e e)
{
    if ((unsigned) e >= DG_PATH_MAX) {
        return "the path is not acceptable";
    }

    return dg_path_problems[e];
}


/*
 * One segment, as sent (round 0) and after each decoding: the first
 * decoding goes from s into scratch, the next ones in place (a decoded
 * form is never longer).  A dot segment is looked for through every
 * decoding, so that it is the reason given even when parameters or an
 * encoded separator show first.
 */

static dg_path_e
dg_path_segment(const unsigned char *s, size_t n, unsigned char *scratch)
{
    int                   round, changed;
    size_t                base;
    dg_path_e             problem;
    const unsigned char  *cur, *semi;

    cur = s;
    problem = DG_PATH_OK;

    for (round = 0; /* void */; round++) {

        semi = memchr(cur, ';', n);
        base = semi ? (size_t) (semi - cur) : n;

        if (dg_path_dots(cur, base)) {
            return DG_PATH_DOT_SEGMENT;
        }

        if (problem == DG_PATH_OK) {
            problem = dg_path_form(cur, n, round);
        }

        if (memchr(cur, '%', n) == NULL) {
            return problem;
        }

        if (round == DG_PATH_DECODE_MAX) {
            /* still decodable after DG_PATH_DECODE_MAX decodings */
            (void) dg_path_decode(cur, n, NULL, &changed);

            return (problem == DG_PATH_OK && changed) ? DG_PATH_TOO_ENCODED
                                                      : problem;
        }

        n = dg_path_decode(cur, n, scratch, &changed);
        cur = scratch;

        if (!changed) {
            return problem;
        }
    }
}


/* one form of a segment, but for dot segments */

static dg_path_e
dg_path_form(const unsigned char *s, size_t n, int round)
{
    if (memchr(s, '/', n)) {
        /* a separator inside a segment: decoded from "%2F" */
        return DG_PATH_ENCODED_SLASH;
    }

    if (memchr(s, '\\', n)) {
        return DG_PATH_BACKSLASH;
    }

    if (memchr(s, ';', n)) {
        return DG_PATH_PARAMETERS;
    }

    if (memchr(s, '\0', n)) {
        return DG_PATH_NUL;
    }

    if (dg_path_overlong(s, n)) {
        return DG_PATH_OVERLONG;
    }

    if (round == 0 && memchr(s, '#', n)) {
        return DG_PATH_FRAGMENT;
    }

    return DG_PATH_OK;
}


/* only dots and spaces, at least one dot */

static int
dg_path_dots(const unsigned char *s, size_t n)
{
    size_t  i, dots;

    dots = 0;

    for (i = 0; i < n; i++) {
        if (s[i] == '.') {
            dots++;

        } else if (s[i] != ' ') {
            return 0;
        }
    }

    return dots > 0;
}


/* lead bytes that can only start an overlong form of a shorter code */

static int
dg_path_overlong(const unsigned char *s, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (s[i] == 0xc0 || s[i] == 0xc1) {
            return 1;
        }

        if (i + 1 < n
            && ((s[i] == 0xe0 && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
                || (s[i] == 0xf0 && s[i + 1] >= 0x80 && s[i + 1] <= 0x8f)))
        {
            return 1;
        }
    }

    return 0;
}


static int
dg_path_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/*
 * One percent-decoding of s into out (out may be s; NULL: only tell
 * whether anything would change).  A '%' without two hex digits stays.
 */

static size_t
dg_path_decode(const unsigned char *s, size_t n, unsigned char *out,
    int *changed)
{
    int     hi, lo;
    size_t  i, o;

    *changed = 0;

    for (i = 0, o = 0; i < n; i++, o++) {

        if (s[i] == '%' && i + 2 < n) {
            hi = dg_path_hex(s[i + 1]);
            lo = dg_path_hex(s[i + 2]);

            if (hi >= 0 && lo >= 0) {
                if (out) {
                    out[o] = (unsigned char) (hi << 4 | lo);
                }

                *changed = 1;
                i += 2;
                continue;
            }
        }

        if (out) {
            out[o] = s[i];
        }
    }

    return o;
}
