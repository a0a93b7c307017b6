/*
 * datagate core: building an audit record's members (see dg_audit.h):
 * JSON string escaping, the bounded record builder (dg_arec_*) and the
 * members of a request's record (dg_audit_encode).  Sealing is in
 * dg_audit.c.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dg_audit_int.h"


static size_t dg_utf8_seq(const uint8_t *s, size_t len);
static void dg_arec_put(dg_arec_t *r, const char *s, size_t n);
static void dg_arec_cut(dg_arec_t *r, const char *key, size_t klen);
static int dg_arec_key(dg_arec_t *r, const char *key, size_t klen,
    size_t need);
static void dg_arec_astr(dg_arec_t *r, const char *key, const dg_astr_t *s,
    size_t max);


/* ---- JSON string escaping -------------------------------------------- */

/* length of the valid UTF-8 sequence at s, 0 if invalid (RFC 3629) */
static size_t
dg_utf8_seq(const uint8_t *s, size_t len)
{
    uint8_t  c;
    size_t   n, i;

    c = s[0];

    if (c < 0x80) {
        return 1;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;

    } else {
        return 0;
    }

    if (len < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }

    /* overlong, surrogates, beyond U+10FFFF */
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f)
        || (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
    {
        return 0;
    }

    return n;
}


size_t
dg_json_escape(char *dst, size_t cap, const uint8_t *s, size_t len,
    size_t *consumed)
{
    char     esc[8];
    size_t   i, o, n, k;
    uint8_t  c;

    i = 0;
    o = 0;

    while (i < len) {
        c = s[i];

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            if (o + 1 > cap) {
                break;
            }

            dst[o++] = (char) c;
            i++;
            continue;
        }

        if (c >= 0x80) {
            n = dg_utf8_seq(s + i, len - i);

            if (n > 0) {
                if (o + n > cap) {
                    break;
                }

                memcpy(dst + o, s + i, n);
                o += n;
                i += n;
                continue;
            }

            /* invalid byte: U+FFFD */
            if (o + 6 > cap) {
                break;
            }

            memcpy(dst + o, "\\ufffd", 6);
            o += 6;
            i++;
            continue;
        }

        switch (c) {
        case '"':  memcpy(esc, "\\\"", 2); k = 2; break;
        case '\\': memcpy(esc, "\\\\", 2); k = 2; break;
        case '\n': memcpy(esc, "\\n", 2); k = 2; break;
        case '\r': memcpy(esc, "\\r", 2); k = 2; break;
        case '\t': memcpy(esc, "\\t", 2); k = 2; break;
        case '\b': memcpy(esc, "\\b", 2); k = 2; break;
        case '\f': memcpy(esc, "\\f", 2); k = 2; break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = dg_audit_hex[c >> 4];
            esc[5] = dg_audit_hex[c & 0xf];
            k = 6;
            break;
        }

        if (o + k > cap) {
            break;
        }

        memcpy(dst + o, esc, k);
        o += k;
        i++;
    }

    if (consumed) {
        *consumed = i;
    }

    return o;
}


size_t
dg_json_escape_len(const uint8_t *s, size_t len)
{
    size_t   i, o, n;
    uint8_t  c;

    o = 0;

    for (i = 0; i < len; /* void */) {
        c = s[i];

        if (c >= 0x20 && c < 0x80) {
            o += (c == '"' || c == '\\') ? 2 : 1;
            i++;

        } else if (c >= 0x80) {
            n = dg_utf8_seq(s + i, len - i);
            if (n) {
                o += n;
                i += n;

            } else {
                o += 6;
                i++;
            }

        } else {
            o += (c == '\n' || c == '\r' || c == '\t' || c == '\b'
                  || c == '\f') ? 2 : 6;
            i++;
        }
    }

    return o;
}


/* ---- record builder -------------------------------------------------- */

int
dg_arec_init(dg_arec_t *r, char *buf, size_t cap)
{
    memset(r, 0, sizeof(dg_arec_t));

    if (buf == NULL || cap < DG_AREC_HEAD + DG_AREC_TAIL + 64) {
        return -1;
    }

    r->buf = buf;
    r->cap = cap;
    r->len = DG_AREC_HEAD;

    return 0;
}


static void
dg_arec_put(dg_arec_t *r, const char *s, size_t n)
{
    memcpy(r->buf + r->len, s, n);
    r->len += n;
}


/* name a member that was cut or left out in "truncated" (once) */
static void
dg_arec_cut(dg_arec_t *r, const char *key, size_t klen)
{
    unsigned  i;

    r->truncated = 1;

    if (r->nested) {
        key = r->obj;               /* the object, not its member */
        klen = strlen(key);
    }

    for (i = 0; i < r->ncut; i++) {
        if (r->cutlen[i] == klen && memcmp(r->cut[i], key, klen) == 0) {
            return;
        }
    }

    if (r->ncut < DG_AREC_CUT_MAX) {
        r->cut[r->ncut] = key;
        r->cutlen[r->ncut] = klen;
        r->ncut++;
    }
}


/*
 * Write the separator and "key": if that plus need more bytes fit before
 * the tail reserve; else name the member in "truncated" and return -1.
 */
static int
dg_arec_key(dg_arec_t *r, const char *key, size_t klen, size_t need)
{
    size_t  elen, room, used;

    if (r->left) {
        return -1;              /* a member of an object left out */
    }

    elen = dg_json_escape_len((const uint8_t *) key, klen);
    room = r->cap - DG_AREC_TAIL - r->len;

    if (elen + 4 + need > room) {
        dg_arec_cut(r, key, klen);
        return -1;
    }

    if (!r->nested || r->nnested > 0) {
        dg_arec_put(r, ",", 1);
    }

    dg_arec_put(r, "\"", 1);
    r->len += dg_json_escape(r->buf + r->len, elen, (const uint8_t *) key,
                             klen, &used);
    dg_arec_put(r, "\":", 2);

    if (r->nested) {
        r->nnested++;

    } else {
        r->nfields++;
    }

    return 0;
}


void
dg_arec_str_max(dg_arec_t *r, const char *key, const char *val, size_t len,
    size_t max)
{
    size_t  klen, room, used, n;

    klen = strlen(key);

    if (val == NULL) {
        if (dg_arec_key(r, key, klen, 4) == 0) {
            dg_arec_put(r, "null", 4);
        }

        return;
    }

    if (max < DG_AREC_CUT_MARK_LEN + 1) {
        max = DG_AREC_CUT_MARK_LEN + 1;
    }

    /* the quotes and, at least, the marker */
    if (dg_arec_key(r, key, klen, 2 + DG_AREC_CUT_MARK_LEN) != 0) {
        return;
    }

    dg_arec_put(r, "\"", 1);

    room = r->cap - DG_AREC_TAIL - r->len - 1;
    if (room > max) {
        room = max;
    }

    n = dg_json_escape(r->buf + r->len, room, (const uint8_t *) val, len,
                       &used);

    if (used < len) {
        /* cut: again, leaving room for the marker; dg_json_escape()
         * stops before an escape or a character that would not fit */
        n = dg_json_escape(r->buf + r->len, room - DG_AREC_CUT_MARK_LEN,
                           (const uint8_t *) val, len, &used);
        memcpy(r->buf + r->len + n, DG_AREC_CUT_MARK, DG_AREC_CUT_MARK_LEN);
        n += DG_AREC_CUT_MARK_LEN;
        dg_arec_cut(r, key, klen);
    }

    r->len += n;

    dg_arec_put(r, "\"", 1);
}


void
dg_arec_str(dg_arec_t *r, const char *key, const char *val, size_t len)
{
    dg_arec_str_max(r, key, val, len, (size_t) -1);
}


void
dg_arec_cstr(dg_arec_t *r, const char *key, const char *val)
{
    dg_arec_str(r, key, val, val ? strlen(val) : 0);
}


void
dg_arec_int(dg_arec_t *r, const char *key, int64_t v)
{
    char  num[DG_AREC_NUM_MAX + 4];
    int   n;

    n = snprintf(num, sizeof(num), "%" PRId64, v);

    if (dg_arec_key(r, key, strlen(key), (size_t) n) == 0) {
        dg_arec_put(r, num, (size_t) n);
    }
}


void
dg_arec_uint(dg_arec_t *r, const char *key, uint64_t v)
{
    dg_arec_uint_n(r, key, strlen(key), v);
}


void
dg_arec_uint_n(dg_arec_t *r, const char *key, size_t klen, uint64_t v)
{
    char  num[DG_AREC_NUM_MAX + 4];
    int   n;

    n = snprintf(num, sizeof(num), "%" PRIu64, v);

    if (dg_arec_key(r, key, klen, (size_t) n) == 0) {
        dg_arec_put(r, num, (size_t) n);
    }
}


void
dg_arec_bool(dg_arec_t *r, const char *key, int v)
{
    if (dg_arec_key(r, key, strlen(key), 5) == 0) {
        if (v) {
            dg_arec_put(r, "true", 4);

        } else {
            dg_arec_put(r, "false", 5);
        }
    }
}


void
dg_arec_obj_begin(dg_arec_t *r, const char *key)
{
    if (r->nested) {
        return;                 /* one level only */
    }

    /* the closing brace is in the tail reserve */
    if (dg_arec_key(r, key, strlen(key), 1) == 0) {
        dg_arec_put(r, "{", 1);

    } else {
        r->left = 1;            /* its members go nowhere */
    }

    r->nested = 1;
    r->nnested = 0;
    r->obj = key;
}


void
dg_arec_obj_end(dg_arec_t *r)
{
    if (r->nested) {
        if (!r->left) {
            dg_arec_put(r, "}", 1);
        }

        r->nested = 0;
        r->left = 0;
        r->obj = NULL;
    }
}


void
dg_arec_counts(dg_arec_t *r, const char *key, const dg_acount_t *c,
    size_t n, size_t max)
{
    char    num[DG_AREC_NUM_MAX + 4];
    size_t  i, start, need, elen;
    int     k;

    if (r->nested) {
        return;
    }

    dg_arec_obj_begin(r, key);

    if (r->left) {
        dg_arec_obj_end(r);     /* left out: no room at all */
        return;
    }

    start = r->len;

    for (i = 0; i < n; i++) {
        k = snprintf(num, sizeof(num), "%" PRIu64, c[i].count);
        elen = dg_json_escape_len((const uint8_t *) c[i].name, c[i].len);

        /* ,"name":N */
        need = (r->nnested ? 1 : 0) + elen + 3 + (size_t) k;

        if (r->len - start + need > max) {
            dg_arec_cut(r, key, strlen(key));
            continue;           /* a shorter one may still fit */
        }

        if (dg_arec_key(r, c[i].name, c[i].len, (size_t) k) == 0) {
            dg_arec_put(r, num, (size_t) k);
        }
    }

    dg_arec_obj_end(r);
}


void
dg_arec_lost(dg_arec_t *r, uint64_t n)
{
    r->lost = n;
}


/* ---- the record's members ------------------------------------------- */

/* whatever a client sends, the members fit: see dg_audit.h */
_Static_assert(DG_AREC_HEAD + DG_AUDIT_FIELDS_MAX + DG_AREC_TAIL
               <= DG_AUDIT_RECORD_MAX,
               "the worst case of the audit record's members must fit "
               "DG_AUDIT_RECORD_MAX");


static void
dg_arec_astr(dg_arec_t *r, const char *key, const dg_astr_t *s, size_t max)
{
    dg_arec_str_max(r, key, s->data, s->len, max);
}


int
dg_audit_encode(dg_arec_t *r, const dg_audit_fields_t *f)
{
    if (r->buf == NULL || r->len != DG_AREC_HEAD || r->nfields != 0
        || r->nested || r->cap < DG_AUDIT_RECORD_MAX)
    {
        return -1;
    }

    dg_arec_astr(r, "time", &f->time, DG_AUDIT_MAX_TIME);
    dg_arec_astr(r, "request_id", &f->request_id, DG_AUDIT_MAX_REQUEST_ID);
    dg_arec_astr(r, "consumer", &f->consumer, DG_AUDIT_MAX_ID);
    dg_arec_astr(r, "cert_serial", &f->cert_serial, DG_AUDIT_MAX_SERIAL);
    dg_arec_astr(r, "client", &f->client, DG_AUDIT_MAX_CLIENT);
    dg_arec_astr(r, "peer", &f->peer, DG_AUDIT_MAX_CLIENT);

    if (f->forwarded.data) {
        dg_arec_astr(r, "forwarded", &f->forwarded, DG_AUDIT_MAX_CLIENT);
    }

    dg_arec_astr(r, "country", &f->country, DG_AUDIT_MAX_PLACE);

    if (f->region.data) {
        dg_arec_astr(r, "region", &f->region, DG_AUDIT_MAX_PLACE);
    }

    dg_arec_astr(r, "dataset", &f->dataset, DG_AUDIT_MAX_ID);

    if (f->level >= 0) {
        dg_arec_uint(r, "level", (uint64_t) f->level);

    } else {
        dg_arec_str(r, "level", NULL, 0);
    }

    dg_arec_astr(r, "purpose", &f->purpose, DG_AUDIT_MAX_HEADER);
    dg_arec_astr(r, "approval", &f->approval, DG_AUDIT_MAX_HEADER);
    dg_arec_astr(r, "method", &f->method, DG_AUDIT_MAX_METHOD);
    dg_arec_astr(r, "uri", &f->uri, DG_AUDIT_MAX_URI);

    dg_arec_str_max(r, "decision", f->decision,
                    f->decision ? strlen(f->decision) : 0,
                    DG_AUDIT_MAX_CODE);
    dg_arec_str_max(r, "reason", f->reason,
                    f->reason ? strlen(f->reason) : 0, DG_AUDIT_MAX_CODE);

    if (f->detail) {
        dg_arec_str_max(r, "detail", f->detail, strlen(f->detail),
                        DG_AUDIT_MAX_DETAIL);
    }

    if (f->cut) {
        dg_arec_bool(r, "cut", 1);
    }

    dg_arec_uint(r, "status", f->status);
    dg_arec_uint(r, "bytes", f->bytes);

    dg_arec_counts(r, "masked", f->masked, f->masked ? f->nmasked : 0,
                   DG_AUDIT_MAX_MASKED);

    if (f->detected && f->ndetected) {
        dg_arec_counts(r, "detected", f->detected, f->ndetected,
                       DG_AUDIT_MAX_DETECTED);
    }

    if (f->unlisted) {
        dg_arec_uint(r, "unlisted", f->unlisted);
    }

    if (f->dropped) {
        dg_arec_uint(r, "dropped", f->dropped);
    }

    dg_arec_uint(r, "duration_ms", f->duration_ms);
    dg_arec_astr(r, "policy", &f->policy, DG_AUDIT_MAX_POLICY);

    return 0;
}
