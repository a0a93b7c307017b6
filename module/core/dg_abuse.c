/*
 * datagate core: abuse detection (dg_abuse.h): identifiers, the three
 * detectors, the state's text form.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_abuse.h"
#include "dg_gcra.h"


#define DG_ABUSE_SECS_PER_HOUR  3600
#define DG_ABUSE_WEEK_SHIFT     72      /* hours from Thursday 1970-01-01
                                           to the Monday hour slot 0 */
#define DG_ABUSE_DECODE_ROUNDS  3       /* percent-decoding, at most */
#define DG_ABUSE_SEEN_MAX       255
#define DG_ABUSE_RID_LEN        18      /* resident ID (GB 11643) */
#define DG_ABUSE_HLL_ALPHA      0.7213  /* alpha_m, m >= 128 */
#define DG_ABUSE_HLL_LINEAR     2.5     /* linear counting below 2.5 m */


const char *const dg_abuse_kind_names[DG_ABUSE_KINDS] = {
    "enumeration", "sequential", "volume", "records"
};


const char *
dg_abuse_kind_name(unsigned bit)
{
    unsigned  i;

    for (i = 0; i < DG_ABUSE_KINDS; i++) {
        if (bit == (1u << i)) {
            return dg_abuse_kind_names[i];
        }
    }

    return NULL;
}


/* ---- durations ----------------------------------------------------- */

int64_t
dg_abuse_duration_parse(const char *s, size_t len)
{
    size_t    i;
    int64_t   v, unit;

    if (len < 2) {
        return -1;
    }

    switch (s[len - 1]) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default:  return -1;
    }

    v = 0;

    for (i = 0; i < len - 1; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 9) {
            return -1;
        }

        v = v * 10 + (s[i] - '0');
    }

    return v * unit;
}


const char *
dg_abuse_duration_str(uint32_t s, char *buf, size_t cap)
{
    if (s && s % 86400 == 0) {
        snprintf(buf, cap, "%ud", s / 86400);
    } else if (s && s % 3600 == 0) {
        snprintf(buf, cap, "%uh", s / 3600);
    } else if (s && s % 60 == 0) {
        snprintf(buf, cap, "%um", s / 60);
    } else {
        snprintf(buf, cap, "%us", s);
    }

    return buf;
}


const char *
dg_abuse_describe(const dg_abuse_conf_t *c, char *buf, size_t cap)
{
    int     n;
    char    d[16];
    size_t  len;

    if (cap == 0) {
        return buf;
    }

    buf[0] = '\0';

    if (!c->set || c->off) {
        snprintf(buf, cap, "off");
        return buf;
    }

    len = 0;

#define dg_abuse_add(...)                                                   \
    do {                                                                    \
        n = snprintf(buf + len, cap - len, __VA_ARGS__);                    \
        if (n < 0 || (size_t) n >= cap - len) {                             \
            return buf;                                                     \
        }                                                                   \
        len += (size_t) n;                                                  \
    } while (0)

    if (c->id_param) {
        dg_abuse_add("ids from ?%.*s= (else the last path segment)",
                     (int) c->id_param_len, c->id_param);
    } else {
        dg_abuse_add("ids from the last path segment");
    }

    if (c->distinct) {
        dg_abuse_add(", distinct %u/%s", c->distinct,
                     dg_abuse_duration_str(c->window, d, sizeof(d)));
    }

    if (c->sequential) {
        dg_abuse_add(", sequential %u", c->sequential);
    }

    if (c->factor > 0) {
        dg_abuse_add(", volume x%g (floor %u/h", c->factor, c->floor);

        if (c->record_floor != c->floor) {
            dg_abuse_add(", records %u/h", c->record_floor);
        }

        dg_abuse_add(")");
    }

    if (c->action == DG_ABUSE_SUSPEND) {
        dg_abuse_add(", suspend for %s",
                     dg_abuse_duration_str(c->suspend_for, d, sizeof(d)));
    } else {
        dg_abuse_add(", alert");
    }

#undef dg_abuse_add

    return buf;
}


/* ---- identifiers --------------------------------------------------- */

static int
dg_abuse_hex(int c)
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


/* one round of percent-decoding in place; returns the new length */
static size_t
dg_abuse_unescape(char *s, size_t len, int plus, int *changed)
{
    int     h, l;
    size_t  i, o;

    for (i = 0, o = 0; i < len; i++) {

        if (s[i] == '%' && i + 2 < len
            && (h = dg_abuse_hex((unsigned char) s[i + 1])) >= 0
            && (l = dg_abuse_hex((unsigned char) s[i + 2])) >= 0)
        {
            s[o++] = (char) (h << 4 | l);
            i += 2;
            *changed = 1;
            continue;
        }

        if (plus && s[i] == '+') {
            s[o++] = ' ';
            *changed = 1;
            continue;
        }

        s[o++] = s[i];
    }

    return o;
}


/* full-width ASCII (U+FF01..U+FF5E) and the ideographic space as ASCII,
 * in place; returns the new length */
static size_t
dg_abuse_halfwidth(char *s, size_t len)
{
    size_t          i, o;
    unsigned        cp;
    const uint8_t  *u;

    u = (const uint8_t *) s;

    for (i = 0, o = 0; i < len; i++) {

        if (i + 2 < len && u[i] == 0xef && (u[i + 1] == 0xbc
                                            || u[i + 1] == 0xbd)
            && (u[i + 2] & 0xc0) == 0x80)
        {
            cp = ((u[i] & 0x0f) << 12) | ((u[i + 1] & 0x3f) << 6)
                 | (u[i + 2] & 0x3f);

            if (cp >= 0xff01 && cp <= 0xff5e) {
                s[o++] = (char) (cp - 0xfee0);
                i += 2;
                continue;
            }
        }

        if (i + 2 < len && u[i] == 0xe3 && u[i + 1] == 0x80
            && u[i + 2] == 0x80)
        {
            s[o++] = ' ';
            i += 2;
            continue;
        }

        s[o++] = s[i];
    }

    return o;
}


/* decoded, half-width: what every piece of a value starts from */
static size_t
dg_abuse_decode(char *s, size_t len, int query)
{
    int       changed;
    unsigned  round;

    for (round = 0; round < DG_ABUSE_DECODE_ROUNDS; round++) {
        changed = 0;
        len = dg_abuse_unescape(s, len, query && round == 0, &changed);

        if (!changed) {
            break;
        }
    }

    return dg_abuse_halfwidth(s, len);
}


/* one piece: trimmed, lower case, a number without '+' and leading
 * zeros; in place, returns the new length */
static size_t
dg_abuse_finish(char *s, size_t len)
{
    size_t  i, b, e, o, d;
    int     num;

    b = 0;
    e = len;

    while (b < e && (s[b] == ' ' || s[b] == '\t')) {
        b++;
    }

    while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) {
        e--;
    }

    o = 0;

    for (i = b; i < e; i++) {
        s[o++] = (s[i] >= 'A' && s[i] <= 'Z') ? (char) (s[i] | 0x20) : s[i];
    }

    len = o;

    /* [+-]digits */
    d = (len > 0 && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
    num = len > d;

    for (i = d; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            num = 0;
            break;
        }
    }

    if (!num) {
        return len;
    }

    i = d;

    while (i + 1 < len && s[i] == '0') {
        i++;
    }

    if (s[0] == '-' && !(len - i == 1 && s[i] == '0')) {
        o = 1;
    } else {
        o = 0;
    }

    memmove(s + o, s + i, len - i);

    return o + len - i;
}


size_t
dg_abuse_normalise(const char *s, size_t len, int query, char *out)
{
    memcpy(out, s, len);

    len = dg_abuse_decode(out, len, query);

    return dg_abuse_finish(out, len);
}


/* GB 11643 check character of 17 digits: MOD 11-2 */
static int
dg_abuse_rid_check(const char *s)
{
    static const int   w[17] = { 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10,
                                 5, 8, 4, 2 };
    static const char  chk[] = "10x98765432";
    unsigned           i, sum;

    for (i = 0, sum = 0; i < 17; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        sum += (unsigned) (s[i] - '0') * (unsigned) w[i];
    }

    return chk[sum % 11];
}


void
dg_abuse_numeric(const uint8_t key[DG_ABUSE_KEY_LEN], const char *s,
    size_t len, dg_abuse_id_t *id)
{
    int       c;
    size_t    b, e, i;
    uint64_t  v, h1, h2;

    id->numeric = 0;
    id->family = 0;
    id->value = 0;

    /* a resident ID with a right check character: its 17 digits count */
    c = len == DG_ABUSE_RID_LEN ? dg_abuse_rid_check(s) : -1;

    if (c >= 0 && c == (unsigned char) s[DG_ABUSE_RID_LEN - 1]) {
        e = DG_ABUSE_RID_LEN - 1;
        b = 0;

    } else {
        /* the last run of digits, at most DG_ABUSE_DIGITS_MAX of it */
        e = len;

        while (e > 0 && (s[e - 1] < '0' || s[e - 1] > '9')) {
            e--;
        }

        if (e == 0) {
            return;
        }

        b = e;

        while (b > 0 && s[b - 1] >= '0' && s[b - 1] <= '9'
               && e - b < DG_ABUSE_DIGITS_MAX)
        {
            b--;
        }
    }

    for (i = b, v = 0; i < e; i++) {
        v = v * 10 + (uint64_t) (s[i] - '0');
    }

    id->numeric = 1;
    id->value = v;

    if (b == 0 && e == len) {
        return;                 /* all digits: family 0 */
    }

    if (e == DG_ABUSE_RID_LEN - 1 && b == 0 && len == DG_ABUSE_RID_LEN) {
        return;                 /* a resident ID */
    }

    /* the family: what is before the number and what is after it */
    h1 = dg_siphash(key, s, b);
    h2 = dg_siphash(key, s + e, len - e);

    id->family = (h1 ^ DG_ROTL64(h2, 29)) | 1;
}


static void
dg_abuse_piece(const dg_abuse_conf_t *c, const uint8_t *key, char *s,
    size_t len, dg_abuse_id_t *ids, size_t max, size_t *n, int *more)
{
    size_t   b, i;

    (void) c;

    /* split at ',' (a list of identifiers in one value) */
    for (b = 0, i = 0; i <= len; i++) {

        if (i < len && s[i] != ',') {
            continue;
        }

        if (i > b) {
            size_t  l = dg_abuse_finish(s + b, i - b);

            if (l > 0) {
                if (*n >= max) {
                    *more = 1;
                    return;
                }

                ids[*n].hash = dg_siphash(key, s + b, l);
                dg_abuse_numeric(key, s + b, l, &ids[*n]);
                (*n)++;
            }
        }

        b = i + 1;
    }
}


/* is the raw query name (decoded in scratch) the id parameter? */
static int
dg_abuse_param_is(const dg_abuse_conf_t *c, char *s, size_t len)
{
    size_t  i;

    len = dg_abuse_decode(s, len, 1);

    /* NAME[] and NAME[...] as PHP and Rails read them */
    for (i = 0; i < len; i++) {
        if (s[i] == '[') {
            len = i;
            break;
        }
    }

    len = dg_abuse_finish(s, len);

    if (len != c->id_param_len) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        char  a = c->id_param[i];

        if (a >= 'A' && a <= 'Z') {
            a |= 0x20;
        }

        if (s[i] != a) {
            return 0;
        }
    }

    return 1;
}


size_t
dg_abuse_ids(const dg_abuse_conf_t *c, const uint8_t key[DG_ABUSE_KEY_LEN],
    const char *path, size_t plen, const char *args, size_t alen,
    char *scratch, dg_abuse_id_t *ids, size_t max, int *more)
{
    size_t  n, b, e, i, eq, len;

    n = 0;
    *more = 0;

    if (c->id_param && args != NULL && alen > 0) {

        for (b = 0, i = 0; i <= alen; i++) {

            if (i < alen && args[i] != '&' && args[i] != ';') {
                continue;
            }

            e = i;

            for (eq = b; eq < e && args[eq] != '='; eq++) {
                /* void */
            }

            if (eq < e) {
                memcpy(scratch, args + b, eq - b);

                if (dg_abuse_param_is(c, scratch, eq - b)) {
                    len = e - eq - 1;
                    memcpy(scratch, args + eq + 1, len);
                    len = dg_abuse_decode(scratch, len, 1);
                    dg_abuse_piece(c, key, scratch, len, ids, max, &n, more);

                    if (*more) {
                        return n;
                    }
                }
            }

            b = i + 1;
        }

        if (n > 0) {
            return n;
        }
    }

    /* the last non-empty path segment */

    if (path == NULL) {
        return n;
    }

    e = plen;

    while (e > 0 && path[e - 1] == '/') {
        e--;
    }

    b = e;

    while (b > 0 && path[b - 1] != '/') {
        b--;
    }

    /* path parameters: "/person/123;jsessionid=..." */
    for (i = b; i < e; i++) {
        if (path[i] == ';') {
            e = i;
            break;
        }
    }

    if (e == b) {
        return n;
    }

    len = e - b;
    memcpy(scratch, path + b, len);
    len = dg_abuse_decode(scratch, len, 0);
    dg_abuse_piece(c, key, scratch, len, ids, max, &n, more);

    return n;
}


/* ---- the enumeration sketch ---------------------------------------- */

unsigned
dg_abuse_hll_p(uint32_t distinct)
{
    unsigned  p;

    if (distinct == 0) {
        return 0;
    }

    for (p = DG_ABUSE_HLL_MIN_P;
         p < DG_ABUSE_HLL_MAX_P && (1ULL << p) < 2ULL * distinct;
         p++)
    {
        /* void */
    }

    return p;
}


static uint8_t *
dg_abuse_regs(dg_abuse_state_t *s, unsigned i)
{
    return s->regs + ((size_t) i << s->hll_p);
}


/* the union of the live sub-windows again, and its zeros and sum */
static void
dg_abuse_union(dg_abuse_state_t *s, int64_t cb)
{
    size_t    j, m;
    uint8_t  *u, *r;
    unsigned  i;

    m = (size_t) 1 << s->hll_p;
    u = dg_abuse_regs(s, DG_ABUSE_BUCKETS);

    memset(u, 0, m);

    for (i = 0; i < DG_ABUSE_BUCKETS; i++) {
        if (s->bucket[i] < 0 || s->bucket[i] <= cb - DG_ABUSE_BUCKETS) {
            continue;
        }

        r = dg_abuse_regs(s, i);

        for (j = 0; j < m; j++) {
            if (r[j] > u[j]) {
                u[j] = r[j];
            }
        }
    }

    s->zeros = 0;
    s->sum = 0.0;

    for (j = 0; j < m; j++) {
        s->zeros += u[j] == 0;
        s->sum += ldexp(1.0, -(int) u[j]);
    }
}


static void
dg_abuse_sketch_clear(dg_abuse_state_t *s)
{
    unsigned  i;

    if (s->hll_p == 0) {
        return;
    }

    memset(s->regs, 0, (size_t) (DG_ABUSE_BUCKETS + 1) << s->hll_p);

    for (i = 0; i < DG_ABUSE_BUCKETS; i++) {
        s->bucket[i] = -1;
    }

    s->zeros = 1u << s->hll_p;
    s->sum = (double) (1u << s->hll_p);
}


static void
dg_abuse_sketch_add(dg_abuse_state_t *s, unsigned slot, uint64_t h)
{
    size_t    j;
    uint8_t  *r, *u, rank, max;
    uint64_t  w;

    j = (size_t) (h >> (64 - s->hll_p));
    w = h << s->hll_p;
    max = (uint8_t) (64 - s->hll_p + 1);
    rank = w ? (uint8_t) (__builtin_clzll(w) + 1) : max;

    if (rank > max) {
        rank = max;
    }

    r = dg_abuse_regs(s, slot);
    u = dg_abuse_regs(s, DG_ABUSE_BUCKETS);

    if (rank > r[j]) {
        r[j] = rank;
    }

    if (rank > u[j]) {
        s->sum += ldexp(1.0, -(int) rank) - ldexp(1.0, -(int) u[j]);
        s->zeros -= u[j] == 0;
        u[j] = rank;
    }
}


static uint64_t
dg_abuse_estimate(const dg_abuse_state_t *s)
{
    double  m, e, alpha;

    m = (double) (1u << s->hll_p);
    alpha = s->hll_p <= DG_ABUSE_HLL_MIN_P ? 0.709
                                           : DG_ABUSE_HLL_ALPHA
                                             / (1.0 + 1.079 / m);
    e = alpha * m * m / s->sum;

    if (e <= DG_ABUSE_HLL_LINEAR * m && s->zeros > 0) {
        e = m * log(m / (double) s->zeros);
    }

    return (uint64_t) (e + 0.5);
}


/* ---- the state ----------------------------------------------------- */

size_t
dg_abuse_state_size(const dg_abuse_conf_t *c)
{
    size_t    size;
    unsigned  p;

    p = c->distinct ? dg_abuse_hll_p(c->distinct) : 0;

    size = offsetof(dg_abuse_state_t, regs);

    if (p) {
        size += (size_t) (DG_ABUSE_BUCKETS + 1) << p;
    }

    return (size + 7) & ~(size_t) 7;
}


void
dg_abuse_state_init(dg_abuse_state_t *s, const dg_abuse_conf_t *c)
{
    size_t  size;

    size = dg_abuse_state_size(c);

    memset(s, 0, size);

    s->size = (uint32_t) size;
    s->hll_p = c->distinct ? dg_abuse_hll_p(c->distinct) : 0;
    s->window = c->window;

    dg_abuse_sketch_clear(s);
}


int
dg_abuse_state_fits(dg_abuse_state_t *s, const dg_abuse_conf_t *c)
{
    unsigned  p;

    p = c->distinct ? dg_abuse_hll_p(c->distinct) : 0;

    if (s->size != dg_abuse_state_size(c) || s->hll_p != p) {
        return 0;
    }

    if (s->window != c->window) {
        s->window = c->window;
        dg_abuse_sketch_clear(s);
    }

    return 1;
}


void
dg_abuse_state_carry(dg_abuse_state_t *to, const dg_abuse_state_t *from)
{
    memcpy(to->runs, from->runs, sizeof(to->runs));

    to->hour = from->hour;
    to->calls = from->calls;
    to->records = from->records;
    to->fired = from->fired;
    memcpy(to->base_calls, from->base_calls, sizeof(to->base_calls));
    memcpy(to->base_records, from->base_records, sizeof(to->base_records));
    memcpy(to->seen, from->seen, sizeof(to->seen));
}


int64_t
dg_abuse_hour(int64_t now)
{
    return (now + DG_UTC_OFFSET) / DG_ABUSE_SECS_PER_HOUR;
}


unsigned
dg_abuse_hour_of_week(int64_t hour)
{
    return (unsigned) ((hour + DG_ABUSE_WEEK_SHIFT) % DG_ABUSE_HOURS);
}


/* one finished hour into its hour of the week */
static void
dg_abuse_fold(dg_abuse_state_t *s, int64_t hour, uint64_t calls,
    uint64_t records)
{
    double    a;
    unsigned  w, n;

    w = dg_abuse_hour_of_week(hour);
    n = s->seen[w];

    /* the first weeks average, then an EWMA: the quota's guess is gone
     * after one week */
    a = n == 0 ? 1.0 : 1.0 / (n + 1);
    if (a < DG_ABUSE_ALPHA) {
        a = DG_ABUSE_ALPHA;
    }

    s->base_calls[w] = (float) (s->base_calls[w] * (1.0 - a) + calls * a);
    s->base_records[w] = (float) (s->base_records[w] * (1.0 - a)
                                  + records * a);

    if (n < DG_ABUSE_SEEN_MAX) {
        s->seen[w] = (uint8_t) (n + 1);
    }
}


static void
dg_abuse_volume(dg_abuse_state_t *s, const dg_abuse_conf_t *c, int64_t now,
    const dg_abuse_input_t *in, dg_abuse_result_t *res)
{
    double    bc, br;
    int64_t   hour, h, last;
    unsigned  w;

    hour = dg_abuse_hour(now);

    if (s->hour != hour) {
        if (s->hour > 0 && s->hour < hour) {
            dg_abuse_fold(s, s->hour, s->calls, s->records);

            last = hour - 1;
            if (last > s->hour + DG_ABUSE_HOURS) {
                last = s->hour + DG_ABUSE_HOURS;
            }

            for (h = s->hour + 1; h <= last; h++) {
                dg_abuse_fold(s, h, 0, 0);
            }
        }

        s->hour = hour;
        s->calls = 0;
        s->records = 0;
        s->fired = 0;
    }

    s->calls += in->calls;
    s->records += in->records;

    w = dg_abuse_hour_of_week(hour);

    if (s->seen[w]) {
        bc = s->base_calls[w];
        br = s->base_records[w];
    } else {
        bc = in->base_calls;
        br = in->base_records;
    }

    res->calls = s->calls;
    res->records = s->records;
    res->calls_limit = fmax((double) c->floor, c->factor * bc);
    res->records_limit = fmax((double) c->record_floor, c->factor * br);

    if (in->calls && (double) s->calls > res->calls_limit
        && !(s->fired & DG_ABUSE_K_VOLUME))
    {
        s->fired |= DG_ABUSE_K_VOLUME;
        res->fired |= DG_ABUSE_K_VOLUME;
        res->value[2] = s->calls;
        res->limit[2] = (uint64_t) res->calls_limit;
    }

    if (in->records && (double) s->records > res->records_limit
        && !(s->fired & DG_ABUSE_K_RECORDS))
    {
        s->fired |= DG_ABUSE_K_RECORDS;
        res->fired |= DG_ABUSE_K_RECORDS;
        res->value[3] = s->records;
        res->limit[3] = (uint64_t) res->records_limit;
    }
}


static void
dg_abuse_enumeration(dg_abuse_state_t *s, const dg_abuse_conf_t *c,
    int64_t now, const dg_abuse_id_t *ids, size_t nids, int more,
    dg_abuse_result_t *res)
{
    size_t    i;
    int64_t   width, cb;
    unsigned  slot;

    width = s->window / DG_ABUSE_BUCKETS;
    if (width <= 0) {
        width = 1;
    }

    cb = now / width;
    slot = (unsigned) (cb % DG_ABUSE_BUCKETS);

    if (s->bucket[slot] != cb) {
        memset(dg_abuse_regs(s, slot), 0, (size_t) 1 << s->hll_p);
        s->bucket[slot] = cb;
        dg_abuse_union(s, cb);
    }

    for (i = 0; i < nids; i++) {
        dg_abuse_sketch_add(s, slot, ids[i].hash);
    }

    res->distinct = dg_abuse_estimate(s);

    if (res->distinct > c->distinct || more) {
        res->fired |= DG_ABUSE_K_ENUMERATION;
        res->value[0] = res->distinct;
        res->limit[0] = c->distinct;

        dg_abuse_sketch_clear(s);
        s->bucket[slot] = cb;
    }
}


static void
dg_abuse_sequential(dg_abuse_state_t *s, const dg_abuse_conf_t *c,
    int64_t now, const dg_abuse_id_t *ids, size_t nids,
    dg_abuse_result_t *res)
{
    size_t           i;
    int64_t          d;
    unsigned         k, pass, v, lk, lv;
    dg_abuse_run_t  *r, *hit;

    for (i = 0; i < nids; i++) {

        if (!ids[i].numeric) {
            continue;
        }

        hit = NULL;

        /* a run this id continues (or repeats), before a new pair */

        for (pass = 0; pass < 2 && hit == NULL; pass++) {
            for (k = 0; k < DG_ABUSE_TRACKERS; k++) {
                r = &s->runs[k];

                if (r->len == 0 || r->family != ids[i].family
                    || now - r->last > DG_ABUSE_SEQ_GAP)
                {
                    continue;
                }

                d = (int64_t) (ids[i].value - r->value);

                if (pass == 0 && (d == 0 || (r->len >= 2 && d == r->stride)))
                {
                    hit = r;
                    break;
                }

                if (pass == 1 && r->len == 1 && d >= -DG_ABUSE_STRIDE_MAX
                    && d <= DG_ABUSE_STRIDE_MAX && d != 0)
                {
                    hit = r;
                    break;
                }
            }
        }

        if (hit != NULL) {
            d = (int64_t) (ids[i].value - hit->value);

            if (d != 0) {
                if (hit->len == 1) {
                    hit->stride = d;
                }

                hit->len++;
                hit->value = ids[i].value;
            }

            hit->last = now;

            if (hit->len > res->run) {
                res->run = hit->len;
            }

            if (hit->len > c->sequential) {
                res->fired |= DG_ABUSE_K_SEQUENTIAL;
                if (hit->len > res->value[1]) {
                    res->value[1] = hit->len;
                }
                res->limit[1] = c->sequential;

                /* a new run starts here */
                hit->len = 1;
                hit->stride = 0;
            }

            continue;
        }

        /* a new run in the place of the shortest (then oldest) one */

        v = 0;

        for (k = 0; k < DG_ABUSE_TRACKERS; k++) {
            r = &s->runs[k];
            lk = (r->len && now - r->last <= DG_ABUSE_SEQ_GAP) ? r->len : 0;
            lv = (s->runs[v].len && now - s->runs[v].last <= DG_ABUSE_SEQ_GAP)
                 ? s->runs[v].len : 0;

            if (lk < lv || (lk == lv && r->last < s->runs[v].last)) {
                v = k;
            }
        }

        r = &s->runs[v];
        r->family = ids[i].family;
        r->value = ids[i].value;
        r->stride = 0;
        r->len = 1;
        r->last = now;
    }
}


void
dg_abuse_observe(dg_abuse_state_t *s, const dg_abuse_conf_t *c, int64_t now,
    const dg_abuse_id_t *ids, size_t nids, int more,
    const dg_abuse_input_t *in, dg_abuse_result_t *res)
{
    memset(res, 0, sizeof(dg_abuse_result_t));

    if (c->factor > 0) {
        dg_abuse_volume(s, c, now, in, res);
    }

    if (c->distinct && s->hll_p && (nids || more)) {
        dg_abuse_enumeration(s, c, now, ids, nids, more, res);
    }

    if (c->sequential && nids) {
        dg_abuse_sequential(s, c, now, ids, nids, res);
    }
}


/* ---- the volume part as text --------------------------------------- */

size_t
dg_abuse_volume_encode(const dg_abuse_state_t *s, char *buf, size_t cap)
{
    int       n;
    size_t    len;
    unsigned  i, part;

    n = snprintf(buf, cap, "%lld %llu %llu %u", (long long) s->hour,
                 (unsigned long long) s->calls,
                 (unsigned long long) s->records, s->fired);
    if (n < 0 || (size_t) n >= cap) {
        return 0;
    }

    len = (size_t) n;

    for (part = 0; part < 3; part++) {
        for (i = 0; i < DG_ABUSE_HOURS; i++) {
            if (part == 2) {
                n = snprintf(buf + len, cap - len, "%c%u", i ? ',' : ' ',
                             s->seen[i]);
            } else {
                n = snprintf(buf + len, cap - len, "%c%.3f", i ? ',' : ' ',
                             part ? s->base_records[i] : s->base_calls[i]);
            }

            if (n < 0 || (size_t) n >= cap - len) {
                return 0;
            }

            len += (size_t) n;
        }
    }

    return len;
}


int
dg_abuse_volume_decode(dg_abuse_state_t *s, const char *p, size_t len)
{
    char                *q, *end;
    char                 line[DG_ABUSE_VOLUME_TEXT_MAX + 1];
    double               d;
    unsigned             i, part;
    long long            hour;
    unsigned long long   calls, records, fired, n;
    float                bc[DG_ABUSE_HOURS], br[DG_ABUSE_HOURS];
    uint8_t              seen[DG_ABUSE_HOURS];

    if (len == 0 || len > DG_ABUSE_VOLUME_TEXT_MAX) {
        return -1;
    }

    memcpy(line, p, len);
    line[len] = '\0';

    q = line;

#define dg_abuse_num(v, conv)                                               \
    do {                                                                    \
        if (*q < '0' || *q > '9') {                                         \
            return -1;                                                      \
        }                                                                   \
        v = conv(q, &end, 10);                                              \
        if (end == q) {                                                     \
            return -1;                                                      \
        }                                                                   \
        q = end;                                                            \
    } while (0)

    dg_abuse_num(hour, strtoll);
    if (*q++ != ' ') {
        return -1;
    }
    dg_abuse_num(calls, strtoull);
    if (*q++ != ' ') {
        return -1;
    }
    dg_abuse_num(records, strtoull);
    if (*q++ != ' ') {
        return -1;
    }
    dg_abuse_num(fired, strtoull);

    for (part = 0; part < 3; part++) {
        for (i = 0; i < DG_ABUSE_HOURS; i++) {
            if (*q++ != (i ? ',' : ' ')) {
                return -1;
            }

            if (part == 2) {
                dg_abuse_num(n, strtoull);
                if (n > DG_ABUSE_SEEN_MAX) {
                    return -1;
                }
                seen[i] = (uint8_t) n;
                continue;
            }

            if (*q < '0' || *q > '9') {
                return -1;
            }

            d = strtod(q, &end);
            if (end == q || !isfinite(d) || d < 0 || d > 1e15) {
                return -1;
            }

            q = end;

            if (part) {
                br[i] = (float) d;
            } else {
                bc[i] = (float) d;
            }
        }
    }

#undef dg_abuse_num

    if (*q != '\0' || hour < 0 || fired > 0xff) {
        return -1;
    }

    s->hour = hour;
    s->calls = calls;
    s->records = records;
    s->fired = (uint32_t) fired;
    memcpy(s->base_calls, bc, sizeof(bc));
    memcpy(s->base_records, br, sizeof(br));
    memcpy(s->seen, seen, sizeof(seen));

    return 0;
}
