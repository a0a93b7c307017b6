/*
 * datagate core: the hash-chained audit record (see dg_audit.h and
 * docs/audit.md).
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* memrchr */
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "dg_audit.h"


#define DG_AUDIT_TAIL_READ      (DG_AUDIT_MAX_LINE + 2)
#define DG_JSON_MAX_DEPTH       32


const char  dg_audit_genesis[DG_AUDIT_HEXLEN + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static const char  dg_hex[] = "0123456789abcdef";
static const char  dg_hash_member[] = ",\"hash\":\"";

/* ,"hash":" + 64 hex + "} */
#define DG_HASH_SUFFIX  (sizeof(dg_hash_member) - 1 + DG_AUDIT_HEXLEN + 2)


static int dg_audit_digest_parts(dg_audit_md_t *md, int alg,
    const char *prev, const char *a, size_t alen, const char *b, size_t blen,
    char *out);
static size_t dg_utf8_seq(const uint8_t *s, size_t len);
static int dg_is_hex64(const char *p);
static int dg_audit_count(const char *s, size_t len, uint64_t *v);
static int dg_json_skip_ws(const char *s, size_t len, size_t *i);
static int dg_json_skip_string(const char *s, size_t len, size_t *i);
static int dg_json_skip_value(const char *s, size_t len, size_t *i,
    unsigned depth);
static void dg_arec_put(dg_arec_t *r, const char *s, size_t n);
static void dg_arec_cut(dg_arec_t *r, const char *key, size_t klen);
static int dg_arec_key(dg_arec_t *r, const char *key, size_t klen,
    size_t need);
static void dg_arec_astr(dg_arec_t *r, const char *key, const dg_astr_t *s,
    size_t max);
static void dg_verify_break(dg_audit_verify_t *v, int kind,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const dg_audit_seen_t *dg_verify_seen_hash(dg_audit_verify_t *v,
    const char *hash);
static const dg_audit_seen_t *dg_verify_seen_seq(dg_audit_verify_t *v,
    uint64_t seq);
static void dg_verify_remember(dg_audit_verify_t *v,
    const dg_audit_rec_t *rec);
static int dg_verify_torn_prefix(const char *line, size_t len);
static void dg_verify_torn_break(dg_audit_verify_t *v);


const char *
dg_audit_alg_name(int alg)
{
    return alg == DG_AUDIT_SM3 ? "sm3" : "sha256";
}


int
dg_audit_alg_parse(const char *s, size_t len)
{
    if (len == 6 && memcmp(s, "sha256", 6) == 0) {
        return DG_AUDIT_SHA256;
    }

    if (len == 3 && memcmp(s, "sm3", 3) == 0) {
        return DG_AUDIT_SM3;
    }

    return -1;
}


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
            esc[4] = dg_hex[c >> 4];
            esc[5] = dg_hex[c & 0xf];
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


int
dg_arec_seal(dg_arec_t *r, dg_audit_md_t *md, int alg, uint64_t seq,
    const char *prev, char *hash, const char **line, size_t *len)
{
    char      head[DG_AREC_HEAD];
    char     *start, *p;
    size_t    hlen, elen, used;
    unsigned  i, listed;
    int       n;

    if (r->nested) {
        dg_arec_obj_end(r);
    }

    n = snprintf(head, sizeof(head), "{\"seq\":%" PRIu64, seq);
    hlen = (size_t) n;
    start = r->buf + DG_AREC_HEAD - hlen;
    memcpy(start, head, hlen);

    p = r->buf + r->len;

    if (r->lost) {
        p += sprintf(p, ",\"lost\":%" PRIu64, r->lost);
    }

    if (r->truncated) {
        memcpy(p, ",\"truncated\":[", 14);
        p += 14;
        listed = 0;

        for (i = 0; i < r->ncut; i++) {
            elen = dg_json_escape_len((const uint8_t *) r->cut[i],
                                      r->cutlen[i]);
            if (elen > DG_AREC_CUT_NAME) {
                continue;       /* no member of ours has such a name */
            }

            if (listed++) {
                *p++ = ',';
            }

            *p++ = '"';
            p += dg_json_escape(p, elen, (const uint8_t *) r->cut[i],
                                r->cutlen[i], &used);
            *p++ = '"';
        }

        *p++ = ']';
    }

    p += sprintf(p, ",\"alg\":\"%s\",\"prev\":\"", dg_audit_alg_name(alg));
    memcpy(p, prev, DG_AUDIT_HEXLEN);
    p += DG_AUDIT_HEXLEN;
    *p++ = '"';
    *p++ = '}';

    if (dg_audit_digest_parts(md, alg, prev, start, p - start, NULL, 0,
                              hash)
        != 0)
    {
        return -1;
    }

    p--;                        /* over the closing brace */
    memcpy(p, dg_hash_member, sizeof(dg_hash_member) - 1);
    p += sizeof(dg_hash_member) - 1;
    memcpy(p, hash, DG_AUDIT_HEXLEN);
    p += DG_AUDIT_HEXLEN;
    *p++ = '"';
    *p++ = '}';
    *p++ = '\n';

    *line = start;
    *len = p - start;

    return 0;
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

    if (f->records_read) {
        dg_arec_uint(r, "records", f->records);
    }

    if (f->rows_dropped) {
        dg_arec_uint(r, "rows_dropped", f->rows_dropped);
    }

    if (f->records_cut) {
        dg_arec_uint(r, "records_cut", f->records_cut);
    }

    if (f->records_cut_by) {
        dg_arec_str_max(r, "records_cut_by", f->records_cut_by,
                        strlen(f->records_cut_by), DG_AUDIT_MAX_CODE);
    }

    dg_arec_uint(r, "duration_ms", f->duration_ms);
    dg_arec_astr(r, "policy", &f->policy, DG_AUDIT_MAX_POLICY);

    return 0;
}


/* ---- digest ---------------------------------------------------------- */

void
dg_audit_md_free(dg_audit_md_t *md)
{
    int  i;

    for (i = 0; i < DG_AUDIT_ALGS; i++) {
        EVP_MD_free(md->md[i]);
        md->md[i] = NULL;
    }

    EVP_MD_CTX_free(md->ctx);
    md->ctx = NULL;
}


/* P || a || b with the caller's digests (md), or with ones of its own
 * for this call (md NULL) */
static int
dg_audit_digest_parts(dg_audit_md_t *md, int alg, const char *prev,
    const char *a, size_t alen, const char *b, size_t blen, char *out)
{
    int            rc;
    unsigned       i, mdlen;
    dg_audit_md_t  own;
    unsigned char  dg[EVP_MAX_MD_SIZE];

    if (md == NULL) {
        memset(&own, 0, sizeof(own));
        rc = dg_audit_digest_parts(&own, alg, prev, a, alen, b, blen, out);
        dg_audit_md_free(&own);
        return rc;
    }

    alg = (alg == DG_AUDIT_SM3) ? DG_AUDIT_SM3 : DG_AUDIT_SHA256;

    if (md->md[alg] == NULL) {
        md->md[alg] = EVP_MD_fetch(NULL, alg == DG_AUDIT_SM3 ? "SM3"
                                                             : "SHA256",
                                   NULL);
        if (md->md[alg] == NULL) {
            return -1;
        }
    }

    if (md->ctx == NULL) {
        md->ctx = EVP_MD_CTX_new();
        if (md->ctx == NULL) {
            return -1;
        }
    }

    if (EVP_DigestInit_ex2(md->ctx, md->md[alg], NULL) != 1
        || EVP_DigestUpdate(md->ctx, prev, DG_AUDIT_HEXLEN) != 1
        || EVP_DigestUpdate(md->ctx, a, alen) != 1
        || (blen && EVP_DigestUpdate(md->ctx, b, blen) != 1)
        || EVP_DigestFinal_ex(md->ctx, dg, &mdlen) != 1
        || mdlen != DG_AUDIT_HEXLEN / 2)
    {
        return -1;
    }

    for (i = 0; i < mdlen; i++) {
        out[2 * i] = dg_hex[dg[i] >> 4];
        out[2 * i + 1] = dg_hex[dg[i] & 0xf];
    }

    out[DG_AUDIT_HEXLEN] = '\0';

    return 0;
}


int
dg_audit_digest(dg_audit_md_t *md, int alg, const char *prev, const char *t,
    size_t tlen, char *out)
{
    return dg_audit_digest_parts(md, alg, prev, t, tlen, NULL, 0, out);
}


/* ---- parsing a record line ------------------------------------------- */

static int
dg_is_hex64(const char *p)
{
    size_t  i;

    for (i = 0; i < DG_AUDIT_HEXLEN; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return 0;
        }
    }

    return 1;
}


static int
dg_json_skip_ws(const char *s, size_t len, size_t *i)
{
    while (*i < len && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\r'
                        || s[*i] == '\n'))
    {
        (*i)++;
    }

    return *i < len ? 0 : -1;
}


static int
dg_json_skip_string(const char *s, size_t len, size_t *i)
{
    size_t         k;
    unsigned char  c;

    if (*i >= len || s[*i] != '"') {
        return -1;
    }

    for ((*i)++; *i < len; (*i)++) {
        c = (unsigned char) s[*i];

        if (c == '"') {
            (*i)++;
            return 0;
        }

        if (c < 0x20) {
            return -1;
        }

        if (c == '\\') {
            if (++(*i) >= len) {
                return -1;
            }

            c = (unsigned char) s[*i];

            if (c == 'u') {
                for (k = 0; k < 4; k++) {
                    if (++(*i) >= len
                        || !((s[*i] >= '0' && s[*i] <= '9')
                             || (s[*i] >= 'a' && s[*i] <= 'f')
                             || (s[*i] >= 'A' && s[*i] <= 'F')))
                    {
                        return -1;
                    }
                }

            } else if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
                return -1;
            }
        }
    }

    return -1;
}


static int
dg_json_skip_value(const char *s, size_t len, size_t *i, unsigned depth)
{
    size_t  start;
    char    close;

    if (depth > DG_JSON_MAX_DEPTH || dg_json_skip_ws(s, len, i) != 0) {
        return -1;
    }

    switch (s[*i]) {

    case '"':
        return dg_json_skip_string(s, len, i);

    case '{':
    case '[':
        close = (s[*i] == '{') ? '}' : ']';
        (*i)++;

        if (dg_json_skip_ws(s, len, i) != 0) {
            return -1;
        }

        if (s[*i] == close) {
            (*i)++;
            return 0;
        }

        for ( ;; ) {
            if (close == '}') {
                if (dg_json_skip_ws(s, len, i) != 0
                    || dg_json_skip_string(s, len, i) != 0
                    || dg_json_skip_ws(s, len, i) != 0
                    || s[*i] != ':')
                {
                    return -1;
                }

                (*i)++;
            }

            if (dg_json_skip_value(s, len, i, depth + 1) != 0
                || dg_json_skip_ws(s, len, i) != 0)
            {
                return -1;
            }

            if (s[*i] == close) {
                (*i)++;
                return 0;
            }

            if (s[*i] != ',') {
                return -1;
            }

            (*i)++;
        }

    case 't':
        if (len - *i >= 4 && memcmp(s + *i, "true", 4) == 0) {
            *i += 4;
            return 0;
        }
        return -1;

    case 'f':
        if (len - *i >= 5 && memcmp(s + *i, "false", 5) == 0) {
            *i += 5;
            return 0;
        }
        return -1;

    case 'n':
        if (len - *i >= 4 && memcmp(s + *i, "null", 4) == 0) {
            *i += 4;
            return 0;
        }
        return -1;

    default:
        start = *i;

        if (s[*i] == '-') {
            (*i)++;
        }

        if (*i >= len || s[*i] < '0' || s[*i] > '9') {
            return -1;
        }

        if (s[*i] == '0') {
            (*i)++;

        } else {
            while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
                (*i)++;
            }
        }

        if (*i < len && s[*i] == '.') {
            (*i)++;
            if (*i >= len || s[*i] < '0' || s[*i] > '9') {
                return -1;
            }
            while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
                (*i)++;
            }
        }

        if (*i < len && (s[*i] == 'e' || s[*i] == 'E')) {
            (*i)++;
            if (*i < len && (s[*i] == '+' || s[*i] == '-')) {
                (*i)++;
            }
            if (*i >= len || s[*i] < '0' || s[*i] > '9') {
                return -1;
            }
            while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
                (*i)++;
            }
        }

        return *i > start ? 0 : -1;
    }
}


/* a JSON number that is a count: digits only; 0, -1 */
static int
dg_audit_count(const char *s, size_t len, uint64_t *v)
{
    size_t  i;

    *v = 0;

    if (len == 0) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9'
            || *v > (UINT64_MAX - (uint64_t) (s[i] - '0')) / 10)
        {
            return -1;
        }

        *v = *v * 10 + (uint64_t) (s[i] - '0');
    }

    return 0;
}


#define dg_err(...)                                                          \
    do { if (err && errlen) snprintf(err, errlen, __VA_ARGS__); } while (0)


int
dg_audit_parse(dg_audit_md_t *md, const char *line, size_t len,
    dg_audit_rec_t *rec, char *err, size_t errlen)
{
    int          have_seq, have_alg, have_prev, have_hash, have_lost;
    size_t       i, ks, ke, vs, ve, tlen;
    const char  *hash;
    char         calc[DG_AUDIT_HEXLEN + 1];

    memset(rec, 0, sizeof(dg_audit_rec_t));
    have_seq = have_alg = have_prev = have_hash = have_lost = 0;

    if (len < DG_HASH_SUFFIX + 2 || line[0] != '{') {
        dg_err("not a JSON object");
        return DG_AUDIT_E_FORMAT;
    }

    /* the whole line is one object; find the members we need */

    i = 1;

    for ( ;; ) {
        if (dg_json_skip_ws(line, len, &i) != 0) {
            dg_err("truncated JSON");
            return DG_AUDIT_E_FORMAT;
        }

        ks = i;

        if (dg_json_skip_string(line, len, &i) != 0) {
            dg_err("bad JSON member name at byte %zu", ks + 1);
            return DG_AUDIT_E_FORMAT;
        }

        ke = i;

        if (dg_json_skip_ws(line, len, &i) != 0 || line[i] != ':') {
            dg_err("bad JSON at byte %zu", i + 1);
            return DG_AUDIT_E_FORMAT;
        }

        i++;
        dg_json_skip_ws(line, len, &i);
        vs = i;

        if (dg_json_skip_value(line, len, &i, 1) != 0) {
            dg_err("bad JSON value at byte %zu", vs + 1);
            return DG_AUDIT_E_FORMAT;
        }

        ve = i;

#define DG_KEY_IS(k)  (ke - ks == sizeof(k) + 1                              \
                       && memcmp(line + ks + 1, k, sizeof(k) - 1) == 0)

        if (DG_KEY_IS("seq")) {
            if (have_seq++) {
                dg_err("duplicate \"seq\"");
                return DG_AUDIT_E_FORMAT;
            }

            if (dg_audit_count(line + vs, ve - vs, &rec->seq) != 0) {
                dg_err("\"seq\" is not a record number");
                return DG_AUDIT_E_FORMAT;
            }

        } else if (DG_KEY_IS("lost")) {
            if (have_lost++) {
                dg_err("duplicate \"lost\"");
                return DG_AUDIT_E_FORMAT;
            }

            if (dg_audit_count(line + vs, ve - vs, &rec->lost) != 0) {
                dg_err("\"lost\" is not a number of records");
                return DG_AUDIT_E_FORMAT;
            }

        } else if (DG_KEY_IS("alg")) {
            if (have_alg++ || ve - vs < 2
                || (rec->alg = dg_audit_alg_parse(line + vs + 1,
                                                  ve - vs - 2)) < 0)
            {
                dg_err("\"alg\" is not sha256 or sm3");
                return DG_AUDIT_E_FORMAT;
            }

        } else if (DG_KEY_IS("prev") || DG_KEY_IS("hash")) {
            if (ve - vs != DG_AUDIT_HEXLEN + 2
                || !dg_is_hex64(line + vs + 1))
            {
                dg_err("\"%.4s\" is not 64 hex digits", line + ks + 1);
                return DG_AUDIT_E_FORMAT;
            }

            if (line[ks + 1] == 'p') {
                if (have_prev++) {
                    dg_err("duplicate \"prev\"");
                    return DG_AUDIT_E_FORMAT;
                }

                memcpy(rec->prev, line + vs + 1, DG_AUDIT_HEXLEN);

            } else {
                if (have_hash++) {
                    dg_err("duplicate \"hash\"");
                    return DG_AUDIT_E_FORMAT;
                }

                memcpy(rec->hash, line + vs + 1, DG_AUDIT_HEXLEN);
            }
        }

#undef DG_KEY_IS

        if (dg_json_skip_ws(line, len, &i) != 0) {
            dg_err("truncated JSON");
            return DG_AUDIT_E_FORMAT;
        }

        if (line[i] == '}') {
            i++;
            break;
        }

        if (line[i] != ',') {
            dg_err("bad JSON at byte %zu", i + 1);
            return DG_AUDIT_E_FORMAT;
        }

        i++;
    }

    if (i != len) {
        dg_err("text after the record at byte %zu", i + 1);
        return DG_AUDIT_E_FORMAT;
    }

    if (!have_seq || !have_alg || !have_prev || !have_hash) {
        dg_err("missing \"%s\"", !have_seq ? "seq" : !have_alg ? "alg"
                                 : !have_prev ? "prev" : "hash");
        return DG_AUDIT_E_FORMAT;
    }

    /* "hash" must be the last member, written exactly as we write it */

    tlen = len - DG_HASH_SUFFIX;
    hash = line + tlen + sizeof(dg_hash_member) - 1;

    if (memcmp(line + tlen, dg_hash_member, sizeof(dg_hash_member) - 1) != 0
        || memcmp(hash, rec->hash, DG_AUDIT_HEXLEN) != 0)
    {
        dg_err("\"hash\" is not the last member");
        return DG_AUDIT_E_FORMAT;
    }

    if (dg_audit_digest_parts(md, rec->alg, rec->prev, line, tlen, "}", 1,
                              calc)
        != 0)
    {
        dg_err("%s digest failed", dg_audit_alg_name(rec->alg));
        return DG_AUDIT_E_FORMAT;
    }

    if (memcmp(calc, rec->hash, DG_AUDIT_HEXLEN) != 0) {
        dg_err("hash does not match the content");
        return DG_AUDIT_E_HASH;
    }

    return 0;
}


/* ---- chain head from an existing file -------------------------------- */

int
dg_audit_tail(const char *path, uint64_t *seq, char *hash, char *err,
    size_t errlen)
{
    int             fd, rc, damaged;
    char           *buf, *end, *p, *s;
    off_t           off;
    size_t          n;
    ssize_t         got;
    struct stat     st;
    dg_audit_md_t   md;
    dg_audit_rec_t  rec;
    char            why[128];

    *seq = 0;
    memcpy(hash, dg_audit_genesis, DG_AUDIT_HEXLEN + 1);
    memset(&md, 0, sizeof(md));

    fd = open(path, O_RDONLY);
    if (fd == -1) {
        if (errno == ENOENT) {
            return 0;
        }

        dg_err("open(\"%s\") failed: %s", path, strerror(errno));
        return -1;
    }

    buf = NULL;
    rc = -1;

    if (fstat(fd, &st) == -1) {
        dg_err("fstat(\"%s\") failed: %s", path, strerror(errno));
        goto cleanup;
    }

    if (st.st_size == 0) {
        rc = 0;
        goto cleanup;
    }

    n = (st.st_size > DG_AUDIT_TAIL_READ) ? DG_AUDIT_TAIL_READ
                                          : (size_t) st.st_size;
    off = st.st_size - (off_t) n;

    buf = malloc(n);
    if (buf == NULL) {
        dg_err("out of memory");
        goto cleanup;
    }

    for (got = 0; (size_t) got < n; /* void */) {
        ssize_t  k;

        k = pread(fd, buf + got, n - got, off + got);
        if (k <= 0) {
            dg_err("read(\"%s\") failed: %s", path,
                   k == 0 ? "file shrank" : strerror(errno));
            goto cleanup;
        }

        got += k;
    }

    /* walk complete lines from the end; remember whether the last one
     * was damaged */

    damaged = 0;
    end = buf + n;

    if (end[-1] != '\n') {
        damaged = 1;
        snprintf(why, sizeof(why), "the last line is incomplete");
        p = memrchr(buf, '\n', n);
        end = p ? p + 1 : buf;
    }

    while (end > buf) {
        /* the line is [s, end - 1) */
        p = end - 1;
        s = (p > buf) ? memrchr(buf, '\n', p - buf) : NULL;
        s = s ? s + 1 : buf;

        if (s == buf && off > 0) {
            break;              /* may not be a whole line */
        }

        if (p > s && dg_audit_parse(&md, s, p - s, &rec, why, sizeof(why))
                     == 0)
        {
            *seq = rec.seq;
            memcpy(hash, rec.hash, DG_AUDIT_HEXLEN + 1);

            if (damaged) {
                dg_err("\"%s\" ends with a damaged record", path);
                rc = -1;

            } else {
                rc = 1;
            }

            goto cleanup;
        }

        if (p == s) {
            snprintf(why, sizeof(why), "empty line");
        }

        damaged = 1;
        end = s;
    }

    dg_err("\"%s\" has no valid audit record at its end%s%s", path,
           damaged ? ": " : "", damaged ? why : "");
    rc = -1;

cleanup:

    free(buf);
    close(fd);
    dg_audit_md_free(&md);
    return rc;
}


/* ---- verifier -------------------------------------------------------- */

int
dg_audit_verify_init(dg_audit_verify_t *v)
{
    memset(v, 0, sizeof(dg_audit_verify_t));

    v->ring = calloc(DG_AUDIT_WINDOW, sizeof(dg_audit_seen_t));
    if (v->ring == NULL) {
        return -1;
    }

    return 0;
}


void
dg_audit_verify_free(dg_audit_verify_t *v)
{
    free(v->ring);
    v->ring = NULL;
    dg_audit_md_free(&v->md);
}


void
dg_audit_verify_file(dg_audit_verify_t *v, const char *name)
{
    v->file = name;
    v->nfile++;
    v->line = 0;
    v->nolf = 0;
}


void
dg_audit_verify_incomplete(dg_audit_verify_t *v)
{
    v->nolf = 1;
}


static void
dg_verify_break(dg_audit_verify_t *v, int kind, const char *fmt, ...)
{
    va_list  ap;

    v->broken = 1;
    v->kind = kind;
    v->bad_file = v->file;
    v->bad_line = v->line;

    va_start(ap, fmt);
    vsnprintf(v->what, sizeof(v->what), fmt, ap);
    va_end(ap);
}


static const dg_audit_seen_t *
dg_verify_seen_hash(dg_audit_verify_t *v, const char *hash)
{
    uint64_t  i, n;

    n = v->nring < DG_AUDIT_WINDOW ? v->nring : DG_AUDIT_WINDOW;

    for (i = 0; i < n; i++) {
        if (memcmp(v->ring[i].hash, hash, DG_AUDIT_HEXLEN) == 0) {
            return &v->ring[i];
        }
    }

    return NULL;
}


static const dg_audit_seen_t *
dg_verify_seen_seq(dg_audit_verify_t *v, uint64_t seq)
{
    uint64_t  i, n;

    n = v->nring < DG_AUDIT_WINDOW ? v->nring : DG_AUDIT_WINDOW;

    for (i = 0; i < n; i++) {
        if (v->ring[i].seq == seq && v->ring[i].line != 0) {
            return &v->ring[i];
        }
    }

    return NULL;
}


static void
dg_verify_remember(dg_audit_verify_t *v, const dg_audit_rec_t *rec)
{
    dg_audit_seen_t  *e;

    e = &v->ring[v->nring % DG_AUDIT_WINDOW];
    e->seq = rec->seq;
    e->line = v->line;
    e->file = v->nfile;
    memcpy(e->hash, rec->hash, DG_AUDIT_HEXLEN + 1);
    v->nring++;
}


/* a line that can be the start of a record whose write failed part-way */
static int
dg_verify_torn_prefix(const char *line, size_t len)
{
    static const char  start[] = "{\"seq\":";

    if (len == 0) {
        return 0;
    }

    return memcmp(line, start, len < sizeof(start) - 1
                               ? len : sizeof(start) - 1) == 0;
}


/* the incomplete line waiting for its record is a break after all */
static void
dg_verify_torn_break(dg_audit_verify_t *v)
{
    v->torn = 0;
    v->broken = 1;
    v->kind = DG_AUDIT_BREAK_FORMAT;
    v->bad_file = v->tfile;
    v->bad_line = v->tline;
    snprintf(v->what, sizeof(v->what), "%s", v->twhat);
}


int
dg_audit_verify_end(dg_audit_verify_t *v)
{
    if (v->torn && !v->broken) {
        dg_verify_torn_break(v);
    }

    return v->broken;
}


int
dg_audit_verify_line(dg_audit_verify_t *v, const char *line, size_t len)
{
    int                     rc, torn;
    dg_audit_rec_t          rec;
    const dg_audit_seen_t  *seen;
    char                    why[128];

    v->line++;

    if (v->broken) {
        /* look for the record that was missing where the chain broke */
        if (v->kind == DG_AUDIT_BREAK_GAP && v->found_file == NULL
            && dg_audit_parse(&v->md, line, len, &rec, NULL, 0) == 0
            && rec.seq == v->want_seq
            && memcmp(rec.prev, v->want_hash, DG_AUDIT_HEXLEN) == 0)
        {
            v->found_file = v->file;
            v->found_line = v->line;
        }

        return 1;
    }

    torn = v->torn;

    if (len == 0) {
        if (torn) {
            dg_verify_torn_break(v);
            return 1;
        }

        dg_verify_break(v, DG_AUDIT_BREAK_FORMAT, "empty line");
        return 1;
    }

    rc = dg_audit_parse(&v->md, line, len, &rec, why, sizeof(why));

    if (rc == DG_AUDIT_E_FORMAT) {
        if (torn) {
            dg_verify_torn_break(v);
            return 1;
        }

        if (dg_verify_torn_prefix(line, len)) {
            /* decided by the next line */
            v->torn = 1;
            v->tfile = v->file;
            v->tline = v->line;
            snprintf(v->twhat, sizeof(v->twhat),
                     "not an audit record: %s%s", why,
                     v->nolf ? " (the file ends in an incomplete line)" : "");
            return 0;
        }

        dg_verify_break(v, DG_AUDIT_BREAK_FORMAT,
                        "not an audit record: %s%s", why,
                        v->nolf ? " (the file ends in an incomplete line)"
                                : "");
        return 1;
    }

    if (torn
        && (rec.lost == 0
            || (v->have_prev
                && (rec.seq != v->last.seq + 1
                    || memcmp(rec.prev, v->last.hash, DG_AUDIT_HEXLEN)
                       != 0))))
    {
        /* only a record that continues the chain and counts the loss
         * accounts for an incomplete line before it */
        dg_verify_torn_break(v);
        return 1;
    }

    if (rc == DG_AUDIT_E_HASH) {
        dg_verify_break(v, DG_AUDIT_BREAK_EDITED,
                        "record edited: seq %" PRIu64 " does not match its"
                        " hash", rec.seq);
        return 1;
    }

    if (!v->have_prev) {
        v->first = rec;

    } else if (rec.seq != v->last.seq + 1
               || memcmp(rec.prev, v->last.hash, DG_AUDIT_HEXLEN) != 0)
    {
        v->want_seq = v->last.seq + 1;
        memcpy(v->want_hash, v->last.hash, DG_AUDIT_HEXLEN + 1);

        if (rec.seq > v->want_seq) {
            dg_verify_break(v, DG_AUDIT_BREAK_GAP,
                            "record(s) missing before this line: seq %"
                            PRIu64 " follows seq %" PRIu64 " (%s:%" PRIu64
                            ")", rec.seq, v->last.seq, v->last_file,
                            v->last_line);
            return 1;
        }

        if (rec.seq < v->want_seq) {
            seen = dg_verify_seen_seq(v, rec.seq);

            if (seen && memcmp(seen->hash, rec.hash, DG_AUDIT_HEXLEN) == 0) {
                dg_verify_break(v, DG_AUDIT_BREAK_BACK,
                                "record inserted: a copy of seq %" PRIu64
                                " (line %" PRIu64 "%s) after seq %" PRIu64,
                                rec.seq, seen->line,
                                seen->file == v->nfile ? "" : " of an"
                                " earlier file", v->last.seq);

            } else if (seen) {
                dg_verify_break(v, DG_AUDIT_BREAK_BACK,
                                "record inserted or out of order: seq %"
                                PRIu64 " after seq %" PRIu64 ", and line %"
                                PRIu64 "%s already has seq %" PRIu64,
                                rec.seq, v->last.seq, seen->line,
                                seen->file == v->nfile ? "" : " of an"
                                " earlier file", rec.seq);

            } else {
                dg_verify_break(v, DG_AUDIT_BREAK_BACK,
                                "record out of order or inserted: seq %"
                                PRIu64 " after seq %" PRIu64, rec.seq,
                                v->last.seq);
            }

            return 1;
        }

        /* seq fits, the link does not */

        seen = dg_verify_seen_hash(v, rec.prev);

        if (seen) {
            dg_verify_break(v, DG_AUDIT_BREAK_LINK,
                            "chain broken: this record links to line %"
                            PRIu64 "%s (seq %" PRIu64 "), not to the"
                            " record before it (%s:%" PRIu64 ")",
                            seen->line, seen->file == v->nfile ? ""
                            : " of an earlier file", seen->seq,
                            v->last_file, v->last_line);

        } else {
            dg_verify_break(v, DG_AUDIT_BREAK_LINK,
                            "chain broken: \"prev\" is not the hash of the"
                            " record before it (%s:%" PRIu64 "): that"
                            " record was altered and re-hashed, or this one"
                            " was forged", v->last_file, v->last_line);
        }

        return 1;
    }

    if (rec.lost) {
        v->lost += rec.lost;
        v->nlost++;
        v->lost_file = v->file;
        v->lost_line = v->line;
        v->lost_seq = rec.seq;
        v->lost_count = rec.lost;
        v->torn_file = torn ? v->tfile : NULL;
        v->torn_line = torn ? v->tline : 0;
    }

    v->torn = 0;
    v->have_prev = 1;
    v->last = rec;
    v->last_file = v->file;
    v->last_line = v->line;
    v->records++;
    dg_verify_remember(v, &rec);

    return 0;
}
