/*
 * datagate core: arena, hash table, dates and serials for the policy
 * compiler.
 */

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdio.h>
#include <time.h>

#include "dg_util.h"


#define DG_ARENA_CHUNK          (64 * 1024)
#define DG_ALIGN(n)             (((n) + 15) & ~(size_t) 15)


struct dg_arena_chunk_s {
    dg_arena_chunk_t           *next;
    size_t                      size;
    size_t                      used;
    size_t                      pad;
    /* data follows, 16-byte aligned (header is 32 bytes) */
};


void *
dg_arena_alloc(dg_arena_t *a, size_t n)
{
    size_t             size, limit;
    uint8_t           *p;
    dg_arena_chunk_t  *c;

    if (n > DG_ARENA_MAX) {
        return NULL;
    }

    n = DG_ALIGN(n == 0 ? 1 : n);
    c = a->chunks;

    if (c == NULL || c->size - c->used < n) {
        size = n > DG_ARENA_CHUNK ? n : DG_ARENA_CHUNK;
        limit = a->limit ? a->limit : DG_ARENA_MAX;

        if (a->total + size > limit) {
            return NULL;
        }

        c = malloc(sizeof(dg_arena_chunk_t) + size);
        if (c == NULL) {
            return NULL;
        }

        c->size = size;
        c->used = 0;
        a->total += size;

        if (a->chunks != NULL && size == n) {
            /* a big block: keep filling the current chunk afterwards */
            c->next = a->chunks->next;
            a->chunks->next = c;

        } else {
            c->next = a->chunks;
            a->chunks = c;
        }
    }

    p = (uint8_t *) (c + 1) + c->used;
    c->used += n;
    memset(p, 0, n);

    return p;
}


void *
dg_arena_array(dg_arena_t *a, size_t n, size_t size)
{
    if (size != 0 && n > DG_ARENA_MAX / size) {
        return NULL;
    }

    return dg_arena_alloc(a, n * size);
}


char *
dg_arena_strndup(dg_arena_t *a, const char *s, size_t len)
{
    char  *p;

    p = dg_arena_alloc(a, len + 1);
    if (p == NULL) {
        return NULL;
    }

    if (len) {
        memcpy(p, s, len);
    }
    p[len] = '\0';

    return p;
}


void
dg_arena_free(dg_arena_t *a)
{
    dg_arena_chunk_t  *c, *next;

    for (c = a->chunks; c; c = next) {
        next = c->next;
        free(c);
    }

    a->chunks = NULL;
    a->total = 0;
}


/* FNV-1a, 32 bit */

uint32_t
dg_hash_bytes(const void *p, size_t len)
{
    size_t          i;
    uint32_t        h;
    const uint8_t  *s;

    s = p;
    h = 2166136261u;

    for (i = 0; i < len; i++) {
        h ^= s[i];
        h *= 16777619u;
    }

    return h;
}


int
dg_hash_init(dg_hash_t *h, dg_arena_t *a, size_t cap)
{
    size_t  nb;

    memset(h, 0, sizeof(dg_hash_t));

    if (cap > DG_YAML_MAX_NODES * 2) {
        return -1;
    }

    nb = 8;
    while (nb < cap * 2) {
        nb <<= 1;
    }

    h->buckets = dg_arena_array(a, nb, sizeof(uint32_t));
    h->ents = dg_arena_array(a, cap ? cap : 1, sizeof(dg_hent_t));
    if (h->buckets == NULL || h->ents == NULL) {
        return -1;
    }

    memset(h->buckets, 0xff, nb * sizeof(uint32_t));
    h->mask = (uint32_t) (nb - 1);
    h->cap = (uint32_t) cap;

    return 0;
}


int
dg_hash_add(dg_hash_t *h, const void *key, size_t len, const void *val)
{
    uint32_t    hv, b, *pp;
    dg_hent_t  *e;

    if (h->n >= h->cap) {
        return -1;
    }

    hv = dg_hash_bytes(key, len);
    e = &h->ents[h->n];
    e->key = key;
    e->len = len;
    e->val = val;
    e->hash = hv;
    e->next = DG_HASH_NONE;

    /* append at the chain's end: equal keys stay in insertion order */
    b = hv & h->mask;
    pp = &h->buckets[b];
    while (*pp != DG_HASH_NONE) {
        pp = &h->ents[*pp].next;
    }
    *pp = h->n++;

    return 0;
}


static const dg_hent_t *
dg_hash_scan(const dg_hash_t *h, uint32_t i, uint32_t hv, const void *key,
    size_t len)
{
    const dg_hent_t  *e;

    while (i != DG_HASH_NONE) {
        e = &h->ents[i];
        if (e->hash == hv && e->len == len
            && (len == 0 || memcmp(e->key, key, len) == 0))
        {
            return e;
        }
        i = e->next;
    }

    return NULL;
}


const dg_hent_t *
dg_hash_find(const dg_hash_t *h, const void *key, size_t len)
{
    uint32_t  hv;

    if (h->buckets == NULL || h->n == 0) {
        return NULL;
    }

    hv = dg_hash_bytes(key, len);

    return dg_hash_scan(h, h->buckets[hv & h->mask], hv, key, len);
}


const dg_hent_t *
dg_hash_next(const dg_hash_t *h, const dg_hent_t *e)
{
    return dg_hash_scan(h, e->next, e->hash, e->key, e->len);
}


size_t
dg_utf8_check(const uint8_t *p, size_t len)
{
    size_t    i, n, k;
    uint32_t  c;

    for (i = 0; i < len; ) {
        c = p[i];

        if (c < 0x80) {
            i++;
            continue;
        }

        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            c &= 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            c &= 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            c &= 0x07;
        } else {
            return i;
        }

        if (len - i <= n) {
            return i;
        }

        for (k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return i;
            }
            c = (c << 6) | (p[i + k] & 0x3f);
        }

        if ((n == 2 && c < 0x800) || (n == 3 && c < 0x10000)
            || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        {
            return i;
        }

        i += n + 1;
    }

    return len;
}


/* dates: YYYY-MM-DD, interpreted in UTC+8 (China Standard Time) */

#define DG_TZ_OFFSET            (8 * 3600)


static int
dg_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}


int
dg_date_parse(const char *s, size_t len, int *y, int *m, int *d)
{
    static const int  mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
                                  30, 31 };
    size_t            i;
    int               dim;

    if (len != 10 || s[4] != '-' || s[7] != '-') {
        return -1;
    }

    for (i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            continue;
        }
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
    }

    *y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10
         + (s[3] - '0');
    *m = (s[5] - '0') * 10 + (s[6] - '0');
    *d = (s[8] - '0') * 10 + (s[9] - '0');

    if (*y < 1970 || *m < 1 || *m > 12 || *d < 1) {
        return -1;
    }

    dim = mdays[*m - 1] + (*m == 2 && dg_leap(*y));

    return *d > dim ? -1 : 0;
}


/* days since 1970-01-01 (Howard Hinnant's days_from_civil) */

static int64_t
dg_days_from_civil(int y, int m, int d)
{
    int64_t  era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


time_t
dg_date_start(int y, int m, int d)
{
    return (time_t) (dg_days_from_civil(y, m, d) * 86400 - DG_TZ_OFFSET);
}


void
dg_date_format(time_t t, char buf[11])
{
    time_t     s;
    struct tm  tm;
    char       tmp[64];

    s = t + DG_TZ_OFFSET;
    if (gmtime_r(&s, &tm) == NULL) {
        strcpy(buf, "0000-00-00");
        return;
    }

    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02d",
             (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100);
    memcpy(buf, tmp, 10);
    buf[10] = '\0';
}


/*
 * certificate serial, as OpenSSL prints it: an optional sign ("-", or
 * "(Negative)" as "openssl x509 -text" writes long negative serials), an
 * optional "0x", hex digits with optional ':' or spaces between ->
 * "-" for a negative serial and upper-case hex without leading zeros
 * ("0" for zero, never "-0")
 */

size_t
dg_serial_normalize(const char *s, size_t len, char *out, size_t outcap)
{
    size_t  i, n, ndigits;
    int     lead, neg;
    char    c;

    neg = 0;

    if (len >= 1 && s[0] == '-') {
        neg = 1;
        s++;
        len--;

    } else if (len >= sizeof(DG_SERIAL_NEGATIVE) - 1
               && strncasecmp(s, DG_SERIAL_NEGATIVE,
                              sizeof(DG_SERIAL_NEGATIVE) - 1) == 0)
    {
        neg = 1;
        s += sizeof(DG_SERIAL_NEGATIVE) - 1;
        len -= sizeof(DG_SERIAL_NEGATIVE) - 1;
    }

    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        len -= 2;
    }

    if (outcap < 2) {
        return 0;
    }

    n = 0;
    ndigits = 0;
    lead = 1;

    if (neg) {
        out[n++] = '-';
    }

    for (i = 0; i < len; i++) {
        c = s[i];

        if (c == ':' || c == ' ') {
            if (i == 0 || i == len - 1 || s[i - 1] == ':' || s[i - 1] == ' ')
            {
                return 0;
            }
            continue;
        }

        if (c >= 'a' && c <= 'f') {
            c = (char) (c - 'a' + 'A');

        } else if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) {
            return 0;
        }

        ndigits++;

        if (lead && c == '0') {
            continue;
        }

        lead = 0;

        if (n + 1 >= outcap) {
            return 0;
        }
        out[n++] = c;
    }

    if (ndigits == 0) {
        return 0;
    }

    if (lead) {
        /* all zeros: zero has no sign */
        n = 0;
        out[n++] = '0';
    }

    out[n] = '\0';

    return n;
}
