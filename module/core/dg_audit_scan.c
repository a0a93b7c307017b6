/*
 * datagate core: reading the members of an audit record for reports
 * (dg_audit_scan.h).  One pass over the line, no allocation: strings
 * without escapes are views into the line, the others are unescaped
 * into the caller's scratch buffer.
 */

#include <string.h>

#include "dg_audit_scan.h"


/* the members read; a bit each, to refuse one given twice */
#define DG_ASCAN_M_TIME         0x0001
#define DG_ASCAN_M_CONSUMER     0x0002
#define DG_ASCAN_M_DATASET      0x0004
#define DG_ASCAN_M_PURPOSE      0x0008
#define DG_ASCAN_M_DECISION     0x0010
#define DG_ASCAN_M_REASON       0x0020
#define DG_ASCAN_M_STATUS       0x0040
#define DG_ASCAN_M_BYTES        0x0080
#define DG_ASCAN_M_RECORDS      0x0100
#define DG_ASCAN_M_LOST         0x0200
#define DG_ASCAN_M_MASKED       0x0400
#define DG_ASCAN_M_SEQ          0x0800

#define DG_ASCAN_STR            1       /* string, or null */
#define DG_ASCAN_UINT           2
#define DG_ASCAN_OBJ            3

#define DG_UTF8_REPLACEMENT     0xfffd
#define DG_UTF16_HI_FIRST       0xd800
#define DG_UTF16_LO_FIRST       0xdc00
#define DG_UTF16_LO_LAST        0xdfff
#define DG_UTF16_BASE           0x10000

#define DG_MS_PER_SEC           1000
#define DG_SECS_PER_MIN         60
#define DG_SECS_PER_HOUR        3600
#define DG_SECS_PER_DAY         86400


typedef struct {
    const char                 *p;
    const char                 *end;
    char                       *scratch;
    size_t                      cap;
    size_t                      used;
    const char                 *err;
} dg_ascan_ctx_t;


/* one member the scanner reads: its name, type, bit and where it goes */
typedef struct {
    const char                 *name;
    size_t                      len;
    unsigned                    type;
    unsigned                    bit;
    size_t                      off;
} dg_ascan_member_t;

#define DG_ASCAN_MEMBER(n, t, b, f)                                         \
    { n, sizeof(n) - 1, t, b, offsetof(dg_ascan_t, f) }

static const dg_ascan_member_t  dg_ascan_members[] = {
    DG_ASCAN_MEMBER("seq", DG_ASCAN_UINT, DG_ASCAN_M_SEQ, seq),
    DG_ASCAN_MEMBER("time", DG_ASCAN_STR, DG_ASCAN_M_TIME, time),
    DG_ASCAN_MEMBER("consumer", DG_ASCAN_STR, DG_ASCAN_M_CONSUMER, consumer),
    DG_ASCAN_MEMBER("dataset", DG_ASCAN_STR, DG_ASCAN_M_DATASET, dataset),
    DG_ASCAN_MEMBER("purpose", DG_ASCAN_STR, DG_ASCAN_M_PURPOSE, purpose),
    DG_ASCAN_MEMBER("decision", DG_ASCAN_STR, DG_ASCAN_M_DECISION, decision),
    DG_ASCAN_MEMBER("reason", DG_ASCAN_STR, DG_ASCAN_M_REASON, reason),
    DG_ASCAN_MEMBER("status", DG_ASCAN_UINT, DG_ASCAN_M_STATUS, status),
    DG_ASCAN_MEMBER("bytes", DG_ASCAN_UINT, DG_ASCAN_M_BYTES, bytes),
    DG_ASCAN_MEMBER("records", DG_ASCAN_UINT, DG_ASCAN_M_RECORDS, records),
    DG_ASCAN_MEMBER("lost", DG_ASCAN_UINT, DG_ASCAN_M_LOST, lost),
    DG_ASCAN_MEMBER("masked", DG_ASCAN_OBJ, DG_ASCAN_M_MASKED, masked),
};

#define DG_ASCAN_NMEMBERS                                                   \
    (sizeof(dg_ascan_members) / sizeof(dg_ascan_members[0]))


static void dg_ascan_ws(dg_ascan_ctx_t *c);
static int dg_ascan_string(dg_ascan_ctx_t *c, dg_aview_t *out);
static int dg_ascan_unescape(dg_ascan_ctx_t *c, const char *q,
    dg_aview_t *out);
static int dg_ascan_hex4(const char *q, const char *end, unsigned *cp);
static size_t dg_ascan_utf8(char *dst, unsigned cp);
static int dg_ascan_uint(dg_ascan_ctx_t *c, uint64_t *v);
static int dg_ascan_skip(dg_ascan_ctx_t *c, unsigned depth);
static int dg_ascan_literal(dg_ascan_ctx_t *c, const char *lit, size_t len);
static int dg_ascan_masked(dg_ascan_ctx_t *c, dg_ascan_t *r);
static int dg_ascan_digits(const char *s, size_t n, int *v);
static int64_t dg_ascan_days(int y, int m, int d);


#define dg_ascan_fail(c, msg)   ((c)->err = (msg), -1)


int
dg_audit_scan(dg_ascan_t *r, const char *line, size_t len, char *scratch,
    size_t cap, const char **err)
{
    size_t                    i;
    unsigned                  seen;
    dg_aview_t                key, *sv;
    dg_ascan_ctx_t            c;
    const dg_ascan_member_t  *m;

    memset(r, 0, offsetof(dg_ascan_t, masked));
    r->nmasked = 0;

    c.p = line;
    c.end = line + len;
    c.scratch = scratch;
    c.cap = cap;
    c.used = 0;
    c.err = NULL;

    seen = 0;

    dg_ascan_ws(&c);

    if (c.p == c.end || *c.p != '{') {
        *err = "not a JSON object";
        return -1;
    }

    c.p++;
    dg_ascan_ws(&c);

    if (c.p < c.end && *c.p == '}') {
        c.p++;
        goto closed;
    }

    for ( ;; ) {
        if (c.p == c.end || *c.p != '"' || dg_ascan_string(&c, &key) != 0) {
            *err = c.err ? c.err : "a member name expected";
            return -1;
        }

        dg_ascan_ws(&c);

        if (c.p == c.end || *c.p != ':') {
            *err = "':' expected";
            return -1;
        }

        c.p++;
        dg_ascan_ws(&c);

        m = NULL;

        for (i = 0; i < DG_ASCAN_NMEMBERS; i++) {
            if (key.len == dg_ascan_members[i].len
                && memcmp(key.data, dg_ascan_members[i].name, key.len) == 0)
            {
                m = &dg_ascan_members[i];
                break;
            }
        }

        if (m == NULL) {
            if (dg_ascan_skip(&c, 0) != 0) {
                *err = c.err;
                return -1;
            }

        } else {
            if (seen & m->bit) {
                *err = "a member given twice";
                return -1;
            }

            seen |= m->bit;

            switch (m->type) {

            case DG_ASCAN_STR:
                sv = (dg_aview_t *) ((char *) r + m->off);

                if (c.p < c.end && *c.p == 'n') {
                    if (dg_ascan_literal(&c, "null", 4) != 0) {
                        *err = c.err;
                        return -1;
                    }

                    sv->data = NULL;
                    sv->len = 0;
                    break;
                }

                if (c.p == c.end || *c.p != '"'
                    || dg_ascan_string(&c, sv) != 0)
                {
                    *err = c.err ? c.err : "a string expected";
                    return -1;
                }

                break;

            case DG_ASCAN_UINT:
                if (dg_ascan_uint(&c, (uint64_t *) ((char *) r + m->off))
                    != 0)
                {
                    *err = c.err;
                    return -1;
                }

                if (m->bit == DG_ASCAN_M_RECORDS) {
                    r->has_records = 1;

                } else if (m->bit == DG_ASCAN_M_SEQ) {
                    r->has_seq = 1;
                }

                break;

            default: /* DG_ASCAN_OBJ */
                if (dg_ascan_masked(&c, r) != 0) {
                    *err = c.err;
                    return -1;
                }

                break;
            }
        }

        dg_ascan_ws(&c);

        if (c.p < c.end && *c.p == ',') {
            c.p++;
            dg_ascan_ws(&c);
            continue;
        }

        if (c.p < c.end && *c.p == '}') {
            c.p++;
            break;
        }

        *err = "',' or '}' expected";
        return -1;
    }

closed:

    dg_ascan_ws(&c);

    if (c.p != c.end) {
        *err = "text after the object";
        return -1;
    }

    if (!(seen & DG_ASCAN_M_DECISION) && r->has_seq) {
        return 1;
    }

    if (r->time.data == NULL) {
        *err = "no \"time\"";
        return -1;
    }

    if (r->time.len > DG_ASCAN_TIME_MAX
        || dg_audit_time_parse(r->time.data, r->time.len, &r->time_ms) != 0)
    {
        *err = "\"time\" is not a time";
        return -1;
    }

    if (r->decision.data == NULL) {
        *err = "no \"decision\"";
        return -1;
    }

    if (r->decision.len == sizeof("allowed") - 1
        && memcmp(r->decision.data, "allowed", r->decision.len) == 0)
    {
        r->allowed = 1;

    } else if (r->decision.len == sizeof("denied") - 1
               && memcmp(r->decision.data, "denied", r->decision.len) == 0)
    {
        r->denied = 1;

    } else {
        *err = "\"decision\" is neither \"allowed\" nor \"denied\"";
        return -1;
    }

    return 0;
}


static void
dg_ascan_ws(dg_ascan_ctx_t *c)
{
    while (c->p < c->end
           && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r'
               || *c->p == '\n'))
    {
        c->p++;
    }
}


/*
 * Eight bytes at a time: the bytes that are '"', '\\' or a control
 * character are flagged in one word.  The tests can also flag a byte
 * above a flagged one (a borrow), never one below it: on a little-endian
 * machine the lowest flagged byte is the first of them in the line.
 */
#define DG_SWAR_ONES            0x0101010101010101ULL
#define DG_SWAR_HIGHS           0x8080808080808080ULL
#define DG_SWAR_ZERO(v)         (((v) - DG_SWAR_ONES) & ~(v) & DG_SWAR_HIGHS)

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define DG_SWAR                 1
#endif

static uint64_t
dg_ascan_special(uint64_t v)
{
    uint64_t  quote, bslash;

    quote = v ^ (DG_SWAR_ONES * '"');
    bslash = v ^ (DG_SWAR_ONES * '\\');

    return DG_SWAR_ZERO(quote) | DG_SWAR_ZERO(bslash)
           | ((v - DG_SWAR_ONES * 0x20) & ~v & DG_SWAR_HIGHS);
}


/* c->p at the opening quote */
static int
dg_ascan_string(dg_ascan_ctx_t *c, dg_aview_t *out)
{
    uint64_t        v, m;
    const char     *q;
    unsigned char   ch;

    q = c->p + 1;

    for ( ;; ) {
#ifdef DG_SWAR
        if (c->end - q >= (ptrdiff_t) sizeof(uint64_t)) {
            memcpy(&v, q, sizeof(uint64_t));

            m = dg_ascan_special(v);
            if (m == 0) {
                q += sizeof(uint64_t);
                continue;
            }

            q += __builtin_ctzll(m) / 8;

        } else
#endif
        {
            (void) v;
            (void) m;

            while (q < c->end && (unsigned char) *q >= 0x20 && *q != '"'
                   && *q != '\\')
            {
                q++;
            }

            if (q == c->end) {
                return dg_ascan_fail(c, "a string without its end");
            }
        }

        ch = (unsigned char) *q;

        if (ch == '"') {
            out->data = c->p + 1;
            out->len = q - (c->p + 1);
            c->p = q + 1;
            return 0;
        }

        if (ch == '\\') {
            return dg_ascan_unescape(c, q, out);
        }

        return dg_ascan_fail(c, "a control character in a string");
    }
}


/* the string from c->p + 1 has an escape at q: copy it unescaped */
static int
dg_ascan_unescape(dg_ascan_ctx_t *c, const char *q, dg_aview_t *out)
{
    char           *dst, *start;
    size_t          n;
    unsigned        cp, lo;
    unsigned char   ch;

    n = q - (c->p + 1);

    /* an escape never grows: \uXXXX is 6 bytes for at most 3, a pair 12
     * for 4; the rest of the line is enough */
    if (c->cap - c->used < (size_t) (c->end - c->p)) {
        return dg_ascan_fail(c, "no room to unescape a string");
    }

    start = c->scratch + c->used;
    memcpy(start, c->p + 1, n);
    dst = start + n;

    while (q < c->end) {
        ch = (unsigned char) *q;

        if (ch == '"') {
            out->data = start;
            out->len = dst - start;
            c->used += out->len;
            c->p = q + 1;
            return 0;
        }

        if (ch < 0x20) {
            return dg_ascan_fail(c, "a control character in a string");
        }

        if (ch != '\\') {
            *dst++ = (char) ch;
            q++;
            continue;
        }

        if (q + 1 >= c->end) {
            break;
        }

        switch (q[1]) {
        case '"':  *dst++ = '"';  break;
        case '\\': *dst++ = '\\'; break;
        case '/':  *dst++ = '/';  break;
        case 'b':  *dst++ = '\b'; break;
        case 'f':  *dst++ = '\f'; break;
        case 'n':  *dst++ = '\n'; break;
        case 'r':  *dst++ = '\r'; break;
        case 't':  *dst++ = '\t'; break;

        case 'u':
            if (dg_ascan_hex4(q + 2, c->end, &cp) != 0) {
                return dg_ascan_fail(c, "a bad \\u escape");
            }

            q += 6;

            if (cp >= DG_UTF16_HI_FIRST && cp < DG_UTF16_LO_FIRST
                && q + 1 < c->end && q[0] == '\\' && q[1] == 'u'
                && dg_ascan_hex4(q + 2, c->end, &lo) == 0
                && lo >= DG_UTF16_LO_FIRST && lo <= DG_UTF16_LO_LAST)
            {
                cp = DG_UTF16_BASE + ((cp - DG_UTF16_HI_FIRST) << 10)
                     + (lo - DG_UTF16_LO_FIRST);
                q += 6;

            } else if (cp >= DG_UTF16_HI_FIRST && cp <= DG_UTF16_LO_LAST) {
                cp = DG_UTF8_REPLACEMENT;       /* a lone surrogate */
            }

            dst += dg_ascan_utf8(dst, cp);
            continue;

        default:
            return dg_ascan_fail(c, "a bad escape");
        }

        q += 2;
    }

    return dg_ascan_fail(c, "a string without its end");
}


static int
dg_ascan_hex4(const char *q, const char *end, unsigned *cp)
{
    int       i;
    unsigned  v;
    char      ch;

    if (end - q < 4) {
        return -1;
    }

    v = 0;

    for (i = 0; i < 4; i++) {
        ch = q[i];

        if (ch >= '0' && ch <= '9') {
            v = v * 16 + (ch - '0');

        } else if (ch >= 'a' && ch <= 'f') {
            v = v * 16 + (ch - 'a' + 10);

        } else if (ch >= 'A' && ch <= 'F') {
            v = v * 16 + (ch - 'A' + 10);

        } else {
            return -1;
        }
    }

    *cp = v;

    return 0;
}


static size_t
dg_ascan_utf8(char *dst, unsigned cp)
{
    if (cp < 0x80) {
        dst[0] = (char) cp;
        return 1;
    }

    if (cp < 0x800) {
        dst[0] = (char) (0xc0 | (cp >> 6));
        dst[1] = (char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        dst[0] = (char) (0xe0 | (cp >> 12));
        dst[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        dst[2] = (char) (0x80 | (cp & 0x3f));
        return 3;
    }

    dst[0] = (char) (0xf0 | (cp >> 18));
    dst[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
    dst[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
    dst[3] = (char) (0x80 | (cp & 0x3f));

    return 4;
}


/* a JSON number that is a whole number >= 0 fitting 64 bits */
static int
dg_ascan_uint(dg_ascan_ctx_t *c, uint64_t *v)
{
    uint64_t    n, d;
    const char *start;

    start = c->p;
    n = 0;

    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        d = *c->p - '0';

        if (n > (UINT64_MAX - d) / 10) {
            return dg_ascan_fail(c, "a number out of range");
        }

        n = n * 10 + d;
        c->p++;
    }

    if (c->p == start
        || (c->p - start > 1 && *start == '0')
        || (c->p < c->end
            && (*c->p == '.' || *c->p == 'e' || *c->p == 'E')))
    {
        return dg_ascan_fail(c, "a count that is not a whole number");
    }

    *v = n;

    return 0;
}


static int
dg_ascan_literal(dg_ascan_ctx_t *c, const char *lit, size_t len)
{
    if ((size_t) (c->end - c->p) < len || memcmp(c->p, lit, len) != 0) {
        return dg_ascan_fail(c, "not a JSON value");
    }

    c->p += len;

    return 0;
}


/* any JSON value, not kept */
static int
dg_ascan_skip(dg_ascan_ctx_t *c, unsigned depth)
{
    char        close;
    dg_aview_t  s;

    if (c->p == c->end) {
        return dg_ascan_fail(c, "a value expected");
    }

    switch (*c->p) {

    case '"':
        /* unescaped into scratch if it must be: room is checked there */
        return dg_ascan_string(c, &s);

    case 't':
        return dg_ascan_literal(c, "true", 4);

    case 'f':
        return dg_ascan_literal(c, "false", 5);

    case 'n':
        return dg_ascan_literal(c, "null", 4);

    case '{':
    case '[':
        if (depth >= DG_ASCAN_DEPTH_MAX) {
            return dg_ascan_fail(c, "nested too deep");
        }

        close = (*c->p == '{') ? '}' : ']';
        c->p++;
        dg_ascan_ws(c);

        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 0;
        }

        for ( ;; ) {
            if (close == '}') {
                if (c->p == c->end || *c->p != '"'
                    || dg_ascan_string(c, &s) != 0)
                {
                    return dg_ascan_fail(c, "a member name expected");
                }

                dg_ascan_ws(c);

                if (c->p == c->end || *c->p != ':') {
                    return dg_ascan_fail(c, "':' expected");
                }

                c->p++;
                dg_ascan_ws(c);
            }

            if (dg_ascan_skip(c, depth + 1) != 0) {
                return -1;
            }

            dg_ascan_ws(c);

            if (c->p < c->end && *c->p == ',') {
                c->p++;
                dg_ascan_ws(c);
                continue;
            }

            if (c->p < c->end && *c->p == close) {
                c->p++;
                return 0;
            }

            return dg_ascan_fail(c, "',' or the end of a list expected");
        }

    default:
        break;
    }

    /* a number: -?digits(.digits)?([eE][+-]?digits)? */
    if (*c->p == '-') {
        c->p++;
    }

    if (c->p == c->end || *c->p < '0' || *c->p > '9') {
        return dg_ascan_fail(c, "not a JSON value");
    }

    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        c->p++;
    }

    if (c->p < c->end && *c->p == '.') {
        c->p++;

        if (c->p == c->end || *c->p < '0' || *c->p > '9') {
            return dg_ascan_fail(c, "not a JSON number");
        }

        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            c->p++;
        }
    }

    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;

        if (c->p < c->end && (*c->p == '+' || *c->p == '-')) {
            c->p++;
        }

        if (c->p == c->end || *c->p < '0' || *c->p > '9') {
            return dg_ascan_fail(c, "not a JSON number");
        }

        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            c->p++;
        }
    }

    return 0;
}


/* "masked":{"class":count,...} */
static int
dg_ascan_masked(dg_ascan_ctx_t *c, dg_ascan_t *r)
{
    dg_ascan_count_t  *e;

    if (c->p == c->end || *c->p != '{') {
        return dg_ascan_fail(c, "\"masked\" is not an object");
    }

    c->p++;
    dg_ascan_ws(c);

    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 0;
    }

    for ( ;; ) {
        if (r->nmasked == DG_ASCAN_MASKED_MAX) {
            return dg_ascan_fail(c, "\"masked\" names too many classes");
        }

        e = &r->masked[r->nmasked++];

        if (c->p == c->end || *c->p != '"' || dg_ascan_string(c, &e->name))
        {
            return dg_ascan_fail(c, "a class name expected in \"masked\"");
        }

        dg_ascan_ws(c);

        if (c->p == c->end || *c->p != ':') {
            return dg_ascan_fail(c, "':' expected");
        }

        c->p++;
        dg_ascan_ws(c);

        if (dg_ascan_uint(c, &e->count) != 0) {
            return -1;
        }

        dg_ascan_ws(c);

        if (c->p < c->end && *c->p == ',') {
            c->p++;
            dg_ascan_ws(c);
            continue;
        }

        if (c->p < c->end && *c->p == '}') {
            c->p++;
            return 0;
        }

        return dg_ascan_fail(c, "',' or '}' expected in \"masked\"");
    }
}


int
dg_audit_time_parse(const char *s, size_t len, int64_t *ms)
{
    int      y, mo, d, h, mi, sec, oh, om, frac, sign;
    size_t   i, n;
    int64_t  t;

    /* YYYY-MM-DDTHH:MM:SS */
    if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T'
        || s[13] != ':' || s[16] != ':'
        || dg_ascan_digits(s, 4, &y) != 0
        || dg_ascan_digits(s + 5, 2, &mo) != 0
        || dg_ascan_digits(s + 8, 2, &d) != 0
        || dg_ascan_digits(s + 11, 2, &h) != 0
        || dg_ascan_digits(s + 14, 2, &mi) != 0
        || dg_ascan_digits(s + 17, 2, &sec) != 0
        || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59
        || sec > 60)
    {
        return -1;
    }

    i = 19;
    frac = 0;

    if (s[i] == '.') {
        i++;

        for (n = 0; i < len && s[i] >= '0' && s[i] <= '9'; n++, i++) {
            if (n < 3) {
                frac = frac * 10 + (s[i] - '0');
            }
        }

        if (n == 0 || n > 9) {
            return -1;
        }

        for ( ; n < 3; n++) {
            frac *= 10;
        }
    }

    if (len - i == 1 && s[i] == 'Z') {
        oh = 0;
        om = 0;
        sign = 1;

    } else if (len - i == 6 && (s[i] == '+' || s[i] == '-')
               && s[i + 3] == ':'
               && dg_ascan_digits(s + i + 1, 2, &oh) == 0
               && dg_ascan_digits(s + i + 4, 2, &om) == 0
               && oh <= 23 && om <= 59)
    {
        sign = (s[i] == '-') ? -1 : 1;

    } else {
        return -1;
    }

    t = dg_ascan_days(y, mo, d) * DG_SECS_PER_DAY
        + (int64_t) h * DG_SECS_PER_HOUR + (int64_t) mi * DG_SECS_PER_MIN
        + sec
        - sign * ((int64_t) oh * DG_SECS_PER_HOUR
                  + (int64_t) om * DG_SECS_PER_MIN);

    *ms = t * DG_MS_PER_SEC + frac;

    return 0;
}


static int
dg_ascan_digits(const char *s, size_t n, int *v)
{
    size_t  i;

    *v = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        *v = *v * 10 + (s[i] - '0');
    }

    return 0;
}


/* days since 1970-01-01 of a proleptic Gregorian date */
static int64_t
dg_ascan_days(int y, int m, int d)
{
    int64_t  era, yoe, doy, doe;

    y -= (m <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}
