/*
 * datagate core: a grant's params (query parameters bound to values)
 * against a request's query string, read as the providers behind the
 * gateway may read it, refusing whatever two of them could read apart.
 *
 * How providers read a query (what this mirrors):
 *   - pairs split on '&'; also on ';' by some (Python before 3.9.2,
 *     servlet containers' matrix habits, PHP's arg_separator.input);
 *   - names and values percent-decoded once, '+' as a space (forms);
 *     some decode twice (a value with "%34" after one decoding);
 *   - a name repeated: the first (PHP: the last; Spring and Express: a
 *     list of all; ASP.NET: joined with ',');
 *   - names compared exactly (PHP, Java, Express) or in any case
 *     (ASP.NET); PHP reads ' ', '.' and '[' in a name as '_' and
 *     "name[...]" as an array, as does Express's qs;
 *   - a value with ',' bound to a list (Spring), with '*' or '%' as a
 *     wildcard (a LIKE query).
 * So a bound parameter must appear exactly once, under its exact name;
 * any other name that one of these readings turns into it, any value a
 * reading could split, widen or decode again, a raw '#', or a body (its
 * form fields are parameters to PHP and Spring) is refused.
 */

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "dg_policy.h"
#include "dg_util.h"


#define DG_PARAM_NAME_MAX       128         /* a bound name, bytes */
#define DG_PARAM_DECODE_MAX     4           /* decodings of a name tried */


static int
dg_param_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}


/*
 * s (n bytes) percent-decoded once, '+' as a space, into d (n bytes):
 * the length, or -1 on a broken escape.
 */
static ssize_t
dg_param_decode(const char *s, size_t n, char *d)
{
    size_t  i, o;
    int     h, l;

    for (i = 0, o = 0; i < n; i++) {
        if (s[i] == '+') {
            d[o++] = ' ';

        } else if (s[i] == '%') {
            if (n - i < 3) {
                return -1;
            }
            h = dg_param_hex((unsigned char) s[i + 1]);
            l = dg_param_hex((unsigned char) s[i + 2]);
            if (h < 0 || l < 0) {
                return -1;
            }
            d[o++] = (char) (h << 4 | l);
            i += 2;

        } else {
            d[o++] = s[i];
        }
    }

    return (ssize_t) o;
}


/*
 * A name folded as the most lenient reading takes it: decoded again
 * (while it decodes), cut at its first '[', ' ' and '.' read as '_',
 * spaces around it trimmed, in lower case, NUL and control bytes gone.
 * Two names with the same fold may be one parameter to some provider.
 */
static size_t
dg_param_fold(const char *s, size_t n, char *d, size_t cap)
{
    char           a[DG_PARAM_NAME_MAX * 3 + 1], b[sizeof(a)];
    size_t         i, o;
    ssize_t        m;
    int            t;
    unsigned char  c;

    if (n > DG_PARAM_NAME_MAX * 3) {
        n = DG_PARAM_NAME_MAX * 3;
    }

    memcpy(a, s, n);

    /* once as every provider does ('+' too), then while it decodes */
    for (t = 0; t < DG_PARAM_DECODE_MAX
                && (t == 0 || memchr(a, '%', n) != NULL);
         t++)
    {
        m = dg_param_decode(a, n, b);
        if (m < 0) {
            break;
        }
        memcpy(a, b, (size_t) m);
        n = (size_t) m;
    }

    /* the name before its first '[', without spaces around it */
    for (i = 0; i < n && a[i] != '['; i++) {
        /* void */
    }
    n = i;

    while (n > 0 && (a[n - 1] == ' ' || a[n - 1] == '\t')) {
        n--;
    }

    for (i = 0; i < n && (a[i] == ' ' || a[i] == '\t'); i++) {
        /* void */
    }

    for (o = 0; i < n && o < cap; i++) {
        c = (unsigned char) a[i];

        if (c < 0x20 || c == 0x7f) {
            continue;
        }

        if (c == ' ' || c == '.') {
            c = '_';

        } else if (c >= 'A' && c <= 'Z') {
            c |= 0x20;
        }

        d[o++] = (char) c;
    }

    return o;
}


/* a byte a reading of a value may take for syntax: a list separator, a
 * wildcard, an escape, a quote, a bracket, a control or a space */
static int
dg_param_syntax(unsigned char c)
{
    return c <= 0x20 || c == 0x7f || strchr(",;&=#%*+|\\\"'<>[]{}`^", c)
           != NULL;
}


static int
dg_param_match(const dg_scope_t *sc, const char *v, size_t len)
{
    size_t           i, n;
    const dg_str_t  *p;

    for (i = 0; i < sc->nvalues; i++) {
        p = &sc->values[i];
        n = p->len;

        if (n && p->data[n - 1] == '*') {
            if (len >= n - 1 && memcmp(v, p->data, n - 1) == 0) {
                return 1;
            }

        } else if (len == n && memcmp(v, p->data, n) == 0) {
            return 1;
        }
    }

    return 0;
}


dg_reason_e
dg_params_check(const dg_scope_t *params, size_t n, const char *query,
    size_t len, int has_body, char *why, size_t whylen)
{
    char          name[DG_PARAM_NAME_MAX * 3 + 1];
    char          fold[DG_PARAM_NAME_MAX * 3 + 1];
    char          bfold[DG_PARAM_NAME_MAX * 3 + 1];
    char          val[4096];
    const char   *p, *end, *e, *eq;
    size_t        i, j, nl, fl, bl, vl;
    ssize_t       m;
    unsigned      seen[DG_MASK_ROWS_MAX];
    const char   *value[DG_MASK_ROWS_MAX];
    size_t        vlen[DG_MASK_ROWS_MAX];

#define dg_param_why(...)                                                    \
    do {                                                                     \
        if (why && whylen) {                                                 \
            snprintf(why, whylen, __VA_ARGS__);                              \
        }                                                                    \
        return DG_R_SCOPE_VIOLATION;                                         \
    } while (0)

    if (n == 0) {
        return DG_R_OK;
    }

    if (n > DG_MASK_ROWS_MAX) {
        n = DG_MASK_ROWS_MAX;
    }

    if (has_body) {
        dg_param_why("a request body cannot be checked against the bound "
                     "parameters (form fields are parameters too)");
    }

    if (query == NULL) {
        query = "";
        len = 0;
    }

    if (memchr(query, '#', len) != NULL) {
        dg_param_why("the query has a \"#\"");
    }

    for (j = 0; j < n; j++) {
        seen[j] = 0;
        value[j] = NULL;
        vlen[j] = 0;
    }

    p = query;
    end = query + len;

    while (p < end) {
        for (e = p; e < end && *e != '&' && *e != ';'; e++) {
            /* void */
        }

        if (e == p) {
            p = e + 1;
            continue;
        }

        eq = memchr(p, '=', e - p);
        nl = (eq ? eq : e) - p;

        if (nl > DG_PARAM_NAME_MAX * 3) {
            /* longer than any bound name, even all escapes */
            p = e + 1;
            continue;
        }

        m = dg_param_decode(p, nl, name);
        if (m < 0) {
            dg_param_why("a parameter name has a broken %% escape");
        }

        fl = dg_param_fold(p, nl, fold, sizeof(fold));

        for (j = 0; j < n; j++) {
            bl = dg_param_fold(params[j].name.data, params[j].name.len,
                               bfold, sizeof(bfold));

            if ((size_t) m == params[j].name.len
                && memcmp(name, params[j].name.data, (size_t) m) == 0)
            {
                /* the parameter itself */
                if (seen[j]++) {
                    dg_param_why("the parameter \"%s\" is given more than "
                                 "once", params[j].name.data);
                }
                value[j] = eq ? eq + 1 : e;
                vlen[j] = eq ? (size_t) (e - eq - 1) : 0;

            } else if (fl == bl && memcmp(fold, bfold, fl) == 0) {
                dg_param_why("the parameter \"%.*s\" may be read as \"%s\" "
                             "by the provider", (int) (nl > 64 ? 64 : nl), p,
                             params[j].name.data);
            }
        }

        p = e + 1;
    }

    for (j = 0; j < n; j++) {
        if (!seen[j]) {
            dg_param_why("the parameter \"%s\" is missing",
                         params[j].name.data);
        }

        if (vlen[j] > sizeof(val)) {
            dg_param_why("the parameter \"%s\" is out of scope",
                         params[j].name.data);
        }

        m = dg_param_decode(value[j], vlen[j], val);
        if (m < 0) {
            dg_param_why("the parameter \"%s\" has a broken %% escape",
                         params[j].name.data);
        }

        vl = (size_t) m;

        for (i = 0; i < vl; i++) {
            if (dg_param_syntax((unsigned char) val[i])) {
                dg_param_why("the value of \"%s\" holds a character a "
                             "provider may read as syntax (a separator, a "
                             "wildcard, an escape, a space)",
                             params[j].name.data);
            }
        }

        if (dg_utf8_check((const uint8_t *) val, vl) != vl) {
            dg_param_why("the value of \"%s\" is not UTF-8",
                         params[j].name.data);
        }

        if (!dg_param_match(&params[j], val, vl)) {
            dg_param_why("the parameter \"%s\" is out of scope",
                         params[j].name.data);
        }
    }

    return DG_R_OK;

#undef dg_param_why
}


int
dg_param_value_ok(const char *v, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (dg_param_syntax((unsigned char) v[i])
            && !(v[i] == '*' && i == len - 1))
        {
            return 0;
        }
    }

    return 1;
}
