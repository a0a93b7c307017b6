/*
 * datagate core: the syntax of policy values that the loader, the nginx
 * glue and the command-line tool read alike: HTTP method names, rate and
 * quota, certificate fingerprints and key identifiers.
 */

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dg_policy.h"


/* the seven known methods and their fixed bits */
static const struct {
    const char                 *name;
    size_t                      len;
    unsigned                    bit;
} dg_methods[] = {
    { "GET", 3, DG_METHOD_GET },
    { "HEAD", 4, DG_METHOD_HEAD },
    { "POST", 4, DG_METHOD_POST },
    { "PUT", 3, DG_METHOD_PUT },
    { "DELETE", 6, DG_METHOD_DELETE },
    { "PATCH", 5, DG_METHOD_PATCH },
    { "OPTIONS", 7, DG_METHOD_OPTIONS },
};

#define DG_NMETHODS  (sizeof(dg_methods) / sizeof(dg_methods[0]))


unsigned
dg_method_bit(const char *name, size_t len)
{
    size_t  i;

    if (name == NULL) {
        return DG_METHOD_OTHER;
    }

    for (i = 0; i < DG_NMETHODS; i++) {
        if (dg_methods[i].len == len
            && memcmp(dg_methods[i].name, name, len) == 0)
        {
            return dg_methods[i].bit;
        }
    }

    return DG_METHOD_OTHER;
}


const char *
dg_method_name(const dg_policy_t *p, unsigned bit, size_t *len)
{
    size_t  i;

    for (i = 0; i < DG_NMETHODS; i++) {
        if (dg_methods[i].bit == bit) {
            *len = dg_methods[i].len;
            return dg_methods[i].name;
        }
    }

    for (i = 0; p != NULL && i < p->nxmethods && i < DG_METHOD_EXT_MAX; i++)
    {
        if ((DG_METHOD_EXT_FIRST << i) == bit) {
            *len = p->xmethods[i].len;
            return p->xmethods[i].data;
        }
    }

    *len = 0;

    return NULL;
}


unsigned
dg_policy_method_bit(const dg_policy_t *p, const char *name, size_t len)
{
    size_t    i;
    unsigned  bit;

    bit = dg_method_bit(name, len);

    if (bit != DG_METHOD_OTHER || p == NULL || name == NULL) {
        return bit;
    }

    for (i = 0; i < p->nxmethods && i < DG_METHOD_EXT_MAX; i++) {
        if (p->xmethods[i].len == len
            && memcmp(p->xmethods[i].data, name, len) == 0)
        {
            return DG_METHOD_EXT_FIRST << i;
        }
    }

    return DG_METHOD_OTHER;
}


const char *
dg_methods_str(const dg_policy_t *p, unsigned bits, char *buf, size_t cap)
{
    size_t       n, len;
    unsigned     bit;
    const char  *sep, *name;

    if (buf == NULL || cap == 0) {
        return "";
    }

    buf[0] = '\0';
    n = 0;
    sep = "";

    /* the known methods' bits, then the extension methods' (bit order) */

    for (bit = 1; bit != 0; bit <<= 1) {
        if (!(bits & bit) || n >= cap) {
            continue;
        }

        name = dg_method_name(p, bit, &len);
        if (name == NULL) {
            continue;
        }

        n += (size_t) snprintf(buf + n, cap - n, "%s%.*s", sep, (int) len,
                               name);
        sep = ", ";
    }

    if (n == 0) {
        snprintf(buf, cap, "(none)");
    }

    return buf;
}


/* decimal number, 1 .. 10^12; advances *pos */

static int
dg_parse_count(const char *s, size_t len, size_t *pos, uint64_t *out)
{
    size_t    i;
    uint64_t  n;

    n = 0;

    for (i = *pos; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (i - *pos >= 12) {
            return -1;
        }
        n = n * 10 + (uint64_t) (s[i] - '0');
    }

    if (i == *pos || n == 0) {
        return -1;
    }

    *pos = i;
    *out = n;

    return 0;
}


int
dg_limit_parse_rate(const char *s, size_t len, dg_limit_t *l)
{
    size_t    i;
    uint64_t  n, burst;
    double    rate;

    if (s == NULL || l == NULL) {
        return -1;
    }

    i = 0;

    if (dg_parse_count(s, len, &i, &n) != 0 || len - i < 3) {
        return -1;
    }

    if (memcmp(s + i, "r/s", 3) == 0) {
        rate = (double) n;
    } else if (memcmp(s + i, "r/m", 3) == 0) {
        rate = (double) n / 60.0;
    } else {
        return -1;
    }

    i += 3;
    burst = 0;

    if (i < len) {
        if (s[i] != ' ') {
            return -1;
        }
        while (i < len && s[i] == ' ') {
            i++;
        }
        if (len - i < 6 || memcmp(s + i, "burst=", 6) != 0) {
            return -1;
        }
        i += 6;

        /* burst=0 is allowed */
        if (i < len && s[i] == '0' && i + 1 == len) {
            i++;
        } else if (dg_parse_count(s, len, &i, &burst) != 0
                   || burst > 1000000)
        {
            return -1;
        }

        while (i < len && s[i] == ' ') {
            i++;
        }
        if (i != len) {
            return -1;
        }
    }

    l->rate = rate;
    l->burst = (unsigned) burst;

    return 0;
}


int
dg_limit_parse_quota(const char *s, size_t len, dg_limit_t *l)
{
    size_t    i;
    uint64_t  n;
    unsigned  period;

    if (s == NULL || l == NULL) {
        return -1;
    }

    i = 0;

    if (dg_parse_count(s, len, &i, &n) != 0 || i >= len || s[i] != '/') {
        return -1;
    }

    i++;

    if (len - i == 3 && memcmp(s + i, "day", 3) == 0) {
        period = 86400;
    } else if (len - i == 4 && memcmp(s + i, "hour", 4) == 0) {
        period = 3600;
    } else if (len - i == 6 && memcmp(s + i, "minute", 6) == 0) {
        period = 60;
    } else {
        return -1;
    }

    l->quota = n;
    l->quota_period = period;

    return 0;
}


static int
dg_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}


int
dg_fingerprint_parse(const char *s, size_t len, uint8_t out[DG_SHA256_LEN])
{
    size_t  i, k, step;
    int     hi, lo;

    if (s == NULL) {
        return -1;
    }

    while (len && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'
                   || s[len - 1] == '\n' || s[len - 1] == '\r'))
    {
        len--;
    }

    /* openssl x509 -fingerprint -sha256 prints "sha256 Fingerprint=" */
    if (len > 19 && strncasecmp(s, "sha256 Fingerprint=", 19) == 0) {
        s += 19;
        len -= 19;
    }

    if (len == DG_SHA256_HEX_LEN) {
        step = 2;
    } else if (len == 3 * DG_SHA256_LEN - 1) {     /* AB:CD:..:EF */
        step = 3;
    } else {
        return -1;
    }

    for (i = 0, k = 0; k < DG_SHA256_LEN; k++, i += step) {
        hi = dg_hexval(s[i]);
        lo = dg_hexval(s[i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        if (step == 3 && k < DG_SHA256_LEN - 1 && s[i + 2] != ':') {
            return -1;
        }
        out[k] = (uint8_t) (hi << 4 | lo);
    }

    return 0;
}


size_t
dg_keyid_parse(const char *s, size_t len, uint8_t *out, size_t cap)
{
    size_t  i, n;
    int     hi, lo, colons;

    if (s == NULL) {
        return 0;
    }

    while (len && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'
                   || s[len - 1] == '\n' || s[len - 1] == '\r'))
    {
        len--;
    }

    if (len > 6 && strncasecmp(s, "keyid:", 6) == 0) {
        s += 6;
        len -= 6;
    }

    /* pairs of hex digits, all separated by ':' or none */
    colons = (len > 2 && s[2] == ':');
    n = 0;

    for (i = 0; i + 1 < len; /* void */) {
        hi = dg_hexval(s[i]);
        lo = dg_hexval(s[i + 1]);
        if (hi < 0 || lo < 0 || n >= cap) {
            return 0;
        }
        out[n++] = (uint8_t) (hi << 4 | lo);
        i += 2;

        if (i == len) {
            return n;
        }

        if (colons) {
            if (s[i] != ':' || i + 1 == len) {
                return 0;
            }
            i++;
        }
    }

    return 0;
}
