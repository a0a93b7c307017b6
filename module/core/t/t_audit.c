/*
 * Unit tests: audit record encoding, the hash chain, the verifier.
 */

#define _GNU_SOURCE

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "tap.h"
#include "dg_audit.h"


#define NREC  8

/* the digests the records are sealed with */
static dg_audit_md_t  t_md;

static char   lines[NREC + 4][1024];
static size_t lens[NREC + 4];


static void
esc(const char *in, size_t len, size_t cap, char *out, size_t *consumed)
{
    size_t  n;

    n = dg_json_escape(out, cap, (const uint8_t *) in, len, consumed);
    out[n] = '\0';
}


static void
test_escape(void)
{
    char    out[256];
    size_t  used;

    esc("plain text", 10, sizeof(out) - 1, out, &used);
    is_str(out, "plain text", "plain text passes");

    esc("a\"b\\c/d", 7, sizeof(out) - 1, out, &used);
    is_str(out, "a\\\"b\\\\c/d", "quote and backslash escaped");

    esc("\n\r\t\b\f\x01\x1f\x7f", 8, sizeof(out) - 1, out, &used);
    is_str(out, "\\n\\r\\t\\b\\f\\u0001\\u001f\x7f", "control characters");

    esc("x\0y", 3, sizeof(out) - 1, out, &used);
    is_str(out, "x\\u0000y", "NUL escaped");

    esc("张三丰 ok", strlen("张三丰 ok"), sizeof(out) - 1, out, &used);
    is_str(out, "张三丰 ok", "UTF-8 passes unchanged");

    esc("a\xff" "b", 3, sizeof(out) - 1, out, &used);
    is_str(out, "a\\ufffdb", "invalid byte -> U+FFFD");

    esc("\xc0\x80", 2, sizeof(out) - 1, out, &used);
    is_str(out, "\\ufffd\\ufffd", "overlong NUL rejected");

    esc("\xed\xa0\x80", 3, sizeof(out) - 1, out, &used);
    is_str(out, "\\ufffd\\ufffd\\ufffd", "UTF-16 surrogate rejected");

    esc("ab\xe5\xbc", 4, sizeof(out) - 1, out, &used);
    is_str(out, "ab\\ufffd\\ufffd", "truncated sequence at the end");

    esc("\xf4\x90\x80\x80", 4, sizeof(out) - 1, out, &used);
    is_str(out, "\\ufffd\\ufffd\\ufffd\\ufffd", "beyond U+10FFFF rejected");

    /* never split a character or an escape */
    esc("ab\"", 3, 3, out, &used);
    is_str(out, "ab", "escape not split at the cap");
    is_int(used, 2, "consumed stops before it");

    esc("a张", 4, 3, out, &used);
    is_str(out, "a", "UTF-8 character not split at the cap");
    is_int(used, 1, "consumed 1");

    esc("a\x01", 2, 6, out, &used);
    is_str(out, "a", "\\u00XX not split");

    is_int(dg_json_escape_len((const uint8_t *) "a\"\x01\xff张", 7),
           1 + 2 + 6 + 6 + 3, "escape_len agrees");
}


static void
test_kat(void)
{
    dg_arec_t    r;
    char         buf[1024], hash[65];
    const char  *line;
    size_t       len;

    dg_arec_init(&r, buf, sizeof(buf));
    dg_arec_seal(&r, &t_md, DG_AUDIT_SHA256, 1, dg_audit_genesis, hash, &line,
                 &len);
    /* sha256("0"*64 + '{"seq":1,"alg":"sha256","prev":"' + "0"*64 + '"}') */
    is_str(hash,
           "ae5a4b47a790a4d52974bbe32fb39f37a610c8542b97e26f9f4f8bbd07c84e1a",
           "SHA-256 chain hash of an empty record (known answer)");

    dg_arec_init(&r, buf, sizeof(buf));
    dg_arec_seal(&r, &t_md, DG_AUDIT_SM3, 1, dg_audit_genesis, hash, &line,
                 &len);
    is_str(hash,
           "d14b94e4a64896c044e43dfa9ea08b1326c536c44bb3343671ae5df2739627d6",
           "SM3 chain hash of an empty record (known answer)");

    dg_audit_digest(NULL, DG_AUDIT_SM3, dg_audit_genesis, "", 0, hash);
    ok(strlen(hash) == 64, "SM3 digest is 64 hex digits");

    /* the caller's digests, one made for the call, and the caller's again
     * after they were released: the same hash */
    {
        char  h1[65], h2[65], h3[65];

        dg_audit_digest(&t_md, DG_AUDIT_SHA256, dg_audit_genesis, "x", 1, h1);
        dg_audit_digest(NULL, DG_AUDIT_SHA256, dg_audit_genesis, "x", 1, h2);
        dg_audit_md_free(&t_md);
        ok(t_md.ctx == NULL && t_md.md[0] == NULL && t_md.md[1] == NULL,
           "digests released");
        dg_audit_digest(&t_md, DG_AUDIT_SHA256, dg_audit_genesis, "x", 1, h3);
        ok(strcmp(h1, h2) == 0 && strcmp(h1, h3) == 0 && strlen(h1) == 64,
           "the caller's digests, its own per call, and again: one hash");
    }
}


/* the hash recomputed the way docs/audit.md tells an auditor to */
static void
independent_hash(const char *line, size_t len, int sm3, char *out)
{
    const char     *h, *prev;
    char            t[2048];
    size_t          tlen;
    unsigned        i, n;
    EVP_MD_CTX     *ctx;
    unsigned char   d[64];

    h = strstr(line, ",\"hash\":\"");
    prev = strstr(line, "\"prev\":\"") + 8;
    tlen = h - line;
    memcpy(t, line, tlen);
    t[tlen++] = '}';

    ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, sm3 ? EVP_sm3() : EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, prev, 64);
    EVP_DigestUpdate(ctx, t, tlen);
    EVP_DigestFinal_ex(ctx, d, &n);
    EVP_MD_CTX_free(ctx);

    for (i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", d[i]);
    }
}


static void
make_chain(int alg)
{
    dg_arec_t    r;
    char         buf[1024], prev[65], hash[65], uri[64];
    const char  *line;
    size_t       len;
    int          i;

    memcpy(prev, dg_audit_genesis, 65);

    for (i = 0; i < NREC; i++) {
        dg_arec_init(&r, buf, sizeof(buf));
        dg_arec_cstr(&r, "time", "2024-05-01T10:00:00.000+08:00");
        dg_arec_cstr(&r, "consumer", i % 2 ? "civil-affairs" : NULL);
        snprintf(uri, sizeof(uri), "/person?id=%d&q=\"x\"", i);
        dg_arec_cstr(&r, "uri", uri);
        dg_arec_cstr(&r, "decision", i % 3 ? "allowed" : "denied");
        dg_arec_uint(&r, "status", 200);
        dg_arec_obj_begin(&r, "masked");
        dg_arec_uint(&r, "person.id_number", i);
        dg_arec_uint(&r, "person.name", 2);
        dg_arec_obj_end(&r);
        dg_arec_int(&r, "duration_ms", -1);
        dg_arec_bool(&r, "cut", 0);
        dg_arec_seal(&r, &t_md, alg, 100 + i, prev, hash, &line, &len);

        memcpy(lines[i], line, len);
        lens[i] = len - 1;          /* without LF */
        lines[i][len - 1] = '\0';
        memcpy(prev, hash, 65);
    }
}


static void
test_record(void)
{
    dg_arec_t       r;
    dg_audit_rec_t  rec;
    char            buf[1024], hash[65], other[65], err[128], big[4000];
    const char     *line;
    size_t          len;
    int             rc;

    make_chain(DG_AUDIT_SHA256);

    ok(strncmp(lines[0], "{\"seq\":100,\"time\":", 18) == 0,
       "seq is the first member");
    ok(strstr(lines[0], "\"consumer\":null") != NULL, "absent -> null");
    ok(strstr(lines[0], "\"uri\":\"/person?id=0&q=\\\"x\\\"\"") != NULL,
       "string escaped");
    ok(strstr(lines[0], "\"masked\":{\"person.id_number\":0,"
                        "\"person.name\":2}") != NULL, "nested object");
    ok(strstr(lines[0], "\"duration_ms\":-1,\"cut\":false,\"alg\":\"sha256\""
                        ",\"prev\":\"0000") != NULL, "tail members");
    diag("%s", lines[1]);

    rc = dg_audit_parse(NULL, lines[1], lens[1], &rec, err, sizeof(err));
    is_int(rc, 0, "record parses and verifies");
    is_int(rec.seq, 101, "seq read back");
    is_int(rec.alg, DG_AUDIT_SHA256, "alg read back");

    independent_hash(lines[1], lens[1], 0, other);
    is_str(other, rec.hash, "hash = SHA-256(prev || line without hash)");

    make_chain(DG_AUDIT_SM3);
    rc = dg_audit_parse(NULL, lines[2], lens[2], &rec, err, sizeof(err));
    is_int(rc, 0, "SM3 record verifies");
    is_int(rec.alg, DG_AUDIT_SM3, "alg sm3");
    independent_hash(lines[2], lens[2], 1, other);
    is_str(other, rec.hash, "hash = SM3(prev || line without hash)");

    /* edited content */
    make_chain(DG_AUDIT_SHA256);
    strcpy(buf, lines[4]);
    *strstr(buf, "allowed") = 'A';
    rc = dg_audit_parse(NULL, buf, strlen(buf), &rec, err, sizeof(err));
    is_int(rc, DG_AUDIT_E_HASH, "edited record: hash mismatch");

    /* a re-sealed record can be sealed again with another seq */
    dg_arec_init(&r, buf, sizeof(buf));
    dg_arec_cstr(&r, "k", "v");
    dg_arec_seal(&r, &t_md, DG_AUDIT_SHA256, 1, dg_audit_genesis, hash, &line,
                 &len);
    dg_arec_seal(&r, &t_md, DG_AUDIT_SHA256, 12345678901ULL, hash, other, &line,
                 &len);
    rc = dg_audit_parse(NULL, line, len - 1, &rec, err, sizeof(err));
    ok(rc == 0 && rec.seq == 12345678901ULL
       && memcmp(rec.prev, hash, 64) == 0, "re-sealed record verifies");

    /* truncation: record stays valid and says so */
    memset(big, 'x', sizeof(big));
    dg_arec_init(&r, buf, sizeof(buf));
    dg_arec_cstr(&r, "a", "short");
    dg_arec_str(&r, "uri", big, sizeof(big));
    dg_arec_cstr(&r, "after", "dropped");
    dg_arec_obj_begin(&r, "masked");
    dg_arec_uint(&r, "c", 1);
    dg_arec_obj_end(&r);
    dg_arec_lost(&r, 7);
    dg_arec_seal(&r, &t_md, DG_AUDIT_SHA256, 1, dg_audit_genesis, hash, &line,
                 &len);
    ok(len <= sizeof(buf), "truncated record fits its buffer (%zu)", len);
    ok(memmem(line, len, "x" DG_AREC_CUT_MARK "\"", 5) != NULL,
       "the cut value ends with the marker");
    ok(memmem(line, len, ",\"lost\":7,\"truncated\":[\"uri\",\"after\","
              "\"masked\"],\"alg\"", 49) != NULL,
       "lost, and truncated names what was cut or left out");
    rc = dg_audit_parse(NULL, line, len - 1, &rec, err, sizeof(err));
    is_int(rc, 0, "truncated record verifies");
    is_int(rec.lost, 7, "lost read back");
    ok(dg_arec_init(&r, buf, 100) == -1, "too small a buffer refused");

    /* malformed lines */
#define BAD(s, what)                                                         \
    rc = dg_audit_parse(NULL, s, strlen(s), &rec, err, sizeof(err));         \
    ok(rc == DG_AUDIT_E_FORMAT, "format error: %s (%s)", what, err)

    BAD("", "empty");
    BAD("hello world, this is not json at all, not even close to a record "
        "of the audit log", "garbage");
    strcpy(buf, lines[0]);
    buf[strlen(buf) - 1] = '\0';
    BAD(buf, "missing closing brace");
    strcpy(buf, lines[0]);
    strcat(buf, " ");
    BAD(buf, "trailing text");
    snprintf(buf, sizeof(buf), "{\"seq\":1,\"seq\":2,%s",
             strstr(lines[0], "\"alg\""));
    BAD(buf, "duplicate seq");
    snprintf(buf, sizeof(buf), "{\"seq\":-1,%s",
             strstr(lines[0], "\"alg\""));
    BAD(buf, "negative seq");
    snprintf(buf, sizeof(buf), "{\"seq\":1,\"alg\":\"md5\",%s",
             strstr(lines[0], "\"prev\""));
    BAD(buf, "unknown alg");
    snprintf(buf, sizeof(buf), "{\"seq\":1,%s", strstr(lines[0], "\"alg\""));
    *strstr(buf, ",\"hash\"") = '\0';
    strcat(buf, ",\"hash\":\"");
    strcat(buf, dg_audit_genesis);
    strcat(buf, "\",\"x\":1}");
    BAD(buf, "hash not last");
    snprintf(buf, sizeof(buf), "{\"seq\":1,\"x\":\"\x01\",%s",
             strstr(lines[0], "\"alg\""));
    BAD(buf, "raw control character in a string");
    snprintf(buf, sizeof(buf), "{\"seq\":1,\"x\":[1,{\"a\":[]},tru],%s",
             strstr(lines[0], "\"alg\""));
    BAD(buf, "bad literal in nested value");
    snprintf(buf, sizeof(buf), "{\"seq\":1,\"lost\":\"3\",%s",
             strstr(lines[0], "\"alg\""));
    BAD(buf, "lost is not a count");
    snprintf(buf, sizeof(buf), "{\"seq\":1,\"lost\":-3,%s",
             strstr(lines[0], "\"alg\""));
    BAD(buf, "negative lost");
}


/* ---- the bounded record ---------------------------------------------- */

/* the text of member key in a record line (between the quotes of a
 * string), or NULL when absent */
static const char *
member(const char *line, const char *key, char *out, size_t cap)
{
    char         pat[64];
    const char  *p;
    size_t       n;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(line, pat);
    if (p == NULL) {
        return NULL;
    }

    p += strlen(pat);

    if (*p != '"') {
        n = strcspn(p, ",}");

    } else {
        p++;
        for (n = 0; p[n] && p[n] != '"'; n++) {
            if (p[n] == '\\') {
                n++;
            }
        }
    }

    if (n >= cap) {
        n = cap - 1;
    }

    memcpy(out, p, n);
    out[n] = '\0';

    return out;
}


/* valid UTF-8 throughout: no sequence cut */
static int
utf8_ok(const char *s, size_t len)
{
    size_t          i, n, k;
    unsigned char   c;

    for (i = 0; i < len; i += n) {
        c = (unsigned char) s[i];
        n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;

        if (n == 0 || i + n > len) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if (((unsigned char) s[i + k] & 0xc0) != 0x80) {
                return 0;
            }
        }
    }

    return 1;
}


static size_t
seal_fields(const dg_audit_fields_t *f, char *buf, const char **line)
{
    dg_arec_t  r;
    char       hash[65];
    size_t     len;

    dg_arec_init(&r, buf, DG_AUDIT_RECORD_MAX);
    ok(dg_audit_encode(&r, f) == 0, "encoded");
    /* the largest counts the writer can add */
    dg_arec_lost(&r, UINT64_MAX);
    dg_arec_seal(&r, &t_md, DG_AUDIT_SHA256, UINT64_MAX, dg_audit_genesis, hash,
                 line, &len);

    return len;
}


static void
decision_ok(const char *line, size_t len, const char *what)
{
    dg_audit_rec_t  rec;
    char            v[64], err[128];

    ok(len <= DG_AUDIT_RECORD_MAX, "%s: %zu bytes, within %d", what, len,
       DG_AUDIT_RECORD_MAX);
    is_int(dg_audit_parse(NULL, line, len - 1, &rec, err, sizeof(err)), 0,
           "%s: verifies (%s)", what, err);
    is_str(member(line, "decision", v, sizeof(v)), "allowed",
           "%s: decision", what);
    is_str(member(line, "reason", v, sizeof(v)), "ok", "%s: reason", what);
    is_str(member(line, "status", v, sizeof(v)), "200", "%s: status", what);
    is_str(member(line, "bytes", v, sizeof(v)), "912", "%s: bytes", what);
    ok(member(line, "masked", v, sizeof(v)) != NULL
       && strncmp(v, "{\"person.id_number\":1", 21) == 0,
       "%s: masked (%s)", what, v);
    ok(memmem(line, len, ",\"policy\":\"9c1f0b7e2a6d4c11\"", 28) != NULL,
       "%s: policy, the last member", what);
}


static void
fields_init(dg_audit_fields_t *f, dg_acount_t *masked)
{
    memset(f, 0, sizeof(dg_audit_fields_t));

#define S(m, s)  f->m.data = s; f->m.len = strlen(s)

    S(time, "2024-05-11T09:30:00.123+08:00");
    S(request_id, "5f0c1e7a9b2d4c3e8f6a1b0c9d8e7f6a");
    S(consumer, "civil-affairs.assistance");
    S(cert_serial, "152E216F9B614878");
    S(client, "10.20.1.7");
    S(country, "CN");
    S(dataset, "population.person");
    S(purpose, "social-assistance");
    S(approval, "GXSJ-2024-0137");
    S(method, "GET");
    S(uri, "/population/1");
    S(policy, "9c1f0b7e2a6d4c11");

#undef S

    f->level = 3;
    f->decision = "allowed";
    f->reason = "ok";
    f->status = 200;
    f->bytes = 912;
    masked[0].name = "person.id_number";
    masked[0].len = 16;
    masked[0].count = 1;
    f->masked = masked;
    f->nmasked = 1;
    f->duration_ms = 3;
}


static void
test_bounded(void)
{
    static char         buf[DG_AUDIT_RECORD_MAX], big[8][20000];
    static char         v[DG_AUDIT_RECORD_MAX];
    static dg_acount_t  many[2000];
    static char         names[2000][40];
    dg_audit_fields_t   f;
    dg_acount_t         masked[1];
    const char         *line;
    size_t              len, i, n;
    dg_arec_t           r;
    char                hash[65];

    diag("worst case of the members %zu, head %d, tail %zu, room left %zu",
         (size_t) DG_AUDIT_FIELDS_MAX, DG_AREC_HEAD, (size_t) DG_AREC_TAIL,
         (size_t) DG_AUDIT_EXTRA_ROOM);
    ok(DG_AREC_HEAD + DG_AUDIT_FIELDS_MAX + DG_AREC_TAIL
       <= DG_AUDIT_RECORD_MAX, "the worst case fits a record");

    /* an ordinary record: nothing cut */
    fields_init(&f, masked);
    len = seal_fields(&f, buf, &line);
    decision_ok(line, len, "ordinary");
    ok(memmem(line, len, "truncated", 9) == NULL, "ordinary: nothing cut");
    ok(strncmp(line, "{\"seq\":18446744073709551615,\"time\":", 35) == 0,
       "ordinary: seq first");

    /*
     * The attack: a 2,500-byte method, 2 KB of %FF in the query, control
     * bytes in Data-Approval.  The decision is still written.
     */
    fields_init(&f, masked);
    memset(big[0], 'A', 2500);
    f.method.data = big[0];
    f.method.len = 2500;
    strcpy(big[1], "/population/1?q=");
    for (i = 0; i < 2048 / 3; i++) {
        strcat(big[1], "%FF");
    }
    f.uri.data = big[1];
    f.uri.len = strlen(big[1]);
    for (i = 0; i < 1000; i++) {
        big[2][i] = (char) (1 + i % 31);
    }
    f.approval.data = big[2];
    f.approval.len = 1000;
    len = seal_fields(&f, buf, &line);
    decision_ok(line, len, "long method, %FF query, control bytes");
    member(line, "method", v, sizeof(v));
    is_int(strlen(v), DG_AUDIT_MAX_METHOD, "method cut to its bound");
    ok(strcmp(v + strlen(v) - DG_AREC_CUT_MARK_LEN, DG_AREC_CUT_MARK) == 0,
       "method ends with the marker");
    member(line, "uri", v, sizeof(v));
    ok(strcmp(v, big[1]) == 0, "the %%FF query fits whole (%zu bytes)",
       strlen(v));
    member(line, "approval", v, sizeof(v));
    ok(strlen(v) <= DG_AUDIT_MAX_HEADER && strncmp(v, "\\u0001\\u0002", 12)
       == 0, "approval escaped and cut to its bound (%zu)", strlen(v));
    ok(strstr(line, "\"truncated\":[\"approval\",\"method\"]") != NULL,
       "truncated names approval and method");

    /* every client string at its worst: 6 bytes out per byte in */
    fields_init(&f, masked);
    for (i = 0; i < 8; i++) {
        memset(big[i], 0x01, sizeof(big[i]));
    }
    f.request_id.data = big[0];
    f.request_id.len = sizeof(big[0]);
    f.cert_serial = f.request_id;
    f.client = f.request_id;
    f.peer = f.request_id;
    f.forwarded = f.request_id;
    f.country = f.request_id;
    f.region = f.request_id;
    f.purpose.data = big[1];
    f.purpose.len = sizeof(big[1]);
    f.approval = f.purpose;
    f.method.data = big[2];
    f.method.len = sizeof(big[2]);
    f.uri.data = big[3];
    f.uri.len = sizeof(big[3]);
    f.consumer.data = big[4];
    f.consumer.len = sizeof(big[4]);
    f.dataset = f.consumer;
    f.time = f.consumer;
    f.policy = f.consumer;
    f.detail = "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
               "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01";
    f.cut = 1;
    f.unlisted = UINT64_MAX;
    f.dropped = UINT64_MAX;
    f.duration_ms = UINT64_MAX;

    /* and a policy with more classes than fit */
    for (i = 0; i < 2000; i++) {
        n = (size_t) snprintf(names[i], sizeof(names[i]),
                              "class.%04zu.\"quoted\"", i);
        many[i].name = names[i];
        many[i].len = n;
        many[i].count = UINT64_MAX;
    }
    many[0].name = "person.id_number";
    many[0].len = 16;
    many[0].count = 1;
    f.masked = many;
    f.nmasked = 2000;
    f.detected = many;
    f.ndetected = 2000;

    len = seal_fields(&f, buf, &line);
    diag("worst record: %zu bytes", len);
    ok(len <= DG_AUDIT_RECORD_MAX - DG_AUDIT_EXTRA_ROOM,
       "worst: within the computed worst case");
    is_int(dg_audit_parse(NULL, line, len - 1, &(dg_audit_rec_t) { 0 }, NULL,
                          0), 0, "worst: verifies");
    is_str(member(line, "decision", v, sizeof(v)), "allowed",
           "worst: decision");
    is_str(member(line, "status", v, sizeof(v)), "200", "worst: status");
    is_str(member(line, "bytes", v, sizeof(v)), "912", "worst: bytes");
    {
        const char  *m, *e;

        m = strstr(line, ",\"masked\":{\"person.id_number\":1,\"class.0001");
        e = m ? strchr(m, '}') : NULL;
        ok(m && e && (size_t) (e - m) - 11 <= DG_AUDIT_MAX_MASKED
           && (size_t) (e - m) - 11 > DG_AUDIT_MAX_MASKED - 64,
           "worst: masked, as many classes as fit (%zu bytes)",
           m && e ? (size_t) (e - m) - 11 : 0);
        ok(strstr(line, ",\"detected\":{") != NULL,
           "worst: detected, as many as fit");
    }
    ok(member(line, "lost", v, sizeof(v)) != NULL
       && strcmp(v, "18446744073709551615") == 0, "worst: lost");
    ok(strstr(line, "\"truncated\":[\"time\",\"request_id\",\"consumer\","
                    "\"cert_serial\",\"client\",\"peer\",\"forwarded\","
                    "\"country\",\"region\",\"dataset\",\"purpose\","
                    "\"approval\"]") != NULL,
       "worst: truncated lists the first %d names", DG_AREC_CUT_MAX);
    member(line, "uri", v, sizeof(v));
    is_int(strlen(v), DG_AUDIT_MAX_URI - DG_AREC_CUT_MARK_LEN
                      - (DG_AUDIT_MAX_URI - DG_AREC_CUT_MARK_LEN) % 6
                      + DG_AREC_CUT_MARK_LEN,
           "worst: uri holds whole escapes only");
    ok(strstr(v, "\\u0001" DG_AREC_CUT_MARK) != NULL,
       "worst: the marker follows a whole escape");

    /* UTF-8 never cut inside a character */
    fields_init(&f, masked);
    big[0][0] = '\0';
    for (i = 0; i < 2000; i++) {
        strcat(big[0], "\xe5\xbc\xa0");     /* 张 */
    }
    f.uri.data = big[0];
    f.uri.len = strlen(big[0]);
    strcpy(big[1], "x");
    for (i = 0; i < 100; i++) {
        strcat(big[1], "\xf0\x9f\x98\x80"); /* 4 bytes */
    }
    f.purpose.data = big[1];
    f.purpose.len = strlen(big[1]);
    len = seal_fields(&f, buf, &line);
    decision_ok(line, len, "UTF-8");
    member(line, "uri", v, sizeof(v));
    ok(utf8_ok(v, strlen(v)) && strstr(v, "\\ufffd") == NULL,
       "uri: valid UTF-8, no character cut (%zu bytes)", strlen(v));
    is_int(strlen(v), (DG_AUDIT_MAX_URI - DG_AREC_CUT_MARK_LEN) / 3 * 3
                      + DG_AREC_CUT_MARK_LEN, "uri: whole characters");
    member(line, "purpose", v, sizeof(v));
    ok(utf8_ok(v, strlen(v)) && strstr(v, "\\ufffd") == NULL
       && strlen(v) <= DG_AUDIT_MAX_HEADER,
       "purpose: 4-byte characters not cut (%zu bytes)", strlen(v));

    /* invalid bytes: one \ufffd each, never half of one */
    fields_init(&f, masked);
    memset(big[0], 0xff, 1000);
    f.method.data = big[0];
    f.method.len = 1000;
    len = seal_fields(&f, buf, &line);
    decision_ok(line, len, "invalid UTF-8");
    member(line, "method", v, sizeof(v));
    n = strlen(v);
    ok(n <= DG_AUDIT_MAX_METHOD && (n - DG_AREC_CUT_MARK_LEN) % 6 == 0
       && strncmp(v, "\\ufffd", 6) == 0,
       "invalid bytes: whole \\ufffd escapes, then the marker (%zu)", n);

    /* exactly at the bound: whole, no marker; one more byte: cut */
    dg_arec_init(&r, buf, sizeof(buf));
    memset(big[0], 'm', 64);
    dg_arec_str_max(&r, "a", big[0], 64, 64);
    dg_arec_str_max(&r, "b", big[0], 65, 64);
    dg_arec_str_max(&r, "c", NULL, 0, 64);
    dg_arec_seal(&r, &t_md, DG_AUDIT_SHA256, 1, dg_audit_genesis, hash, &line,
                 &len);
    member(line, "a", v, sizeof(v));
    is_int(strlen(v), 64, "at the bound: whole");
    member(line, "b", v, sizeof(v));
    ok(strlen(v) == 64 && strcmp(v + 61, DG_AREC_CUT_MARK) == 0,
       "one over: cut, marker within the bound");
    is_str(member(line, "c", v, sizeof(v)), "null", "NULL: null");
    ok(strstr(line, "\"truncated\":[\"b\"]") != NULL, "only b listed");

    /* encode wants a fresh, large enough record */
    dg_arec_init(&r, buf, sizeof(buf));
    dg_arec_cstr(&r, "x", "y");
    fields_init(&f, masked);
    ok(dg_audit_encode(&r, &f) == -1, "encode: not on a used record");
    dg_arec_init(&r, buf, 4096);
    ok(dg_audit_encode(&r, &f) == -1, "encode: not below the record size");
}


typedef struct {
    const char  *file;
    int          line;
} dg_t_order_t;


/* run the verifier over lines[order[i]], files split at split (0: one) */
static int
verify(const int *order, int n, int split, dg_audit_verify_t *v)
{
    int  i, broken;

    dg_audit_verify_init(v);
    dg_audit_verify_file(v, "a.log");
    broken = 0;

    for (i = 0; i < n; i++) {
        if (split && i == split) {
            dg_audit_verify_file(v, "b.log");
        }

        broken |= dg_audit_verify_line(v, lines[order[i]], lens[order[i]]);
    }

    return broken;
}


static void
test_verify(void)
{
    dg_audit_verify_t  v;
    dg_arec_t          r;
    char               buf[1024], hash[65];
    const char        *line;
    size_t             len;
    int                rc;

    static const int  good[] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    static const int  removed[] = { 0, 1, 3, 4, 5, 6, 7 };
    static const int  swapped[] = { 0, 1, 3, 2, 4, 5, 6, 7 };
    static const int  dup[] = { 0, 1, 1, 2, 3, 4, 5, 6, 7 };
    static const int  late[] = { 0, 1, 2, 4, 5, 6, 3, 7 };
    static const int  tail[] = { 3, 4, 5, 6, 7 };
    static const int  last_gone[] = { 0, 1, 2, 3, 4, 5, 6 };
    static const int  gap_files[] = { 0, 1, 2, 4, 5, 6, 7 };

    make_chain(DG_AUDIT_SHA256);

    rc = verify(good, 8, 0, &v);
    ok(rc == 0 && !v.broken && v.records == 8, "intact chain verifies");
    ok(v.first.seq == 100 && v.last.seq == 107, "first and last seq");
    dg_audit_verify_free(&v);

    rc = verify(good, 8, 3, &v);
    ok(rc == 0 && !v.broken, "chain across two files verifies");
    dg_audit_verify_free(&v);

    rc = verify(tail, 5, 0, &v);
    ok(rc == 0 && !v.broken, "a file starting mid-chain verifies");
    dg_audit_verify_free(&v);

    rc = verify(last_gone, 7, 0, &v);
    ok(rc == 0, "a removed last record needs the live head to be seen");
    dg_audit_verify_free(&v);

    rc = verify(removed, 7, 0, &v);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_GAP && v.bad_line == 3
       && v.found_file == NULL, "removed record: line 3, gap, not found");
    diag("%s:%llu: %s", v.bad_file, (unsigned long long) v.bad_line, v.what);
    dg_audit_verify_free(&v);

    rc = verify(swapped, 8, 0, &v);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_GAP && v.bad_line == 3
       && v.found_line == 4, "swapped records: line 3, missing one at 4");
    diag("%s:%llu: %s", v.bad_file, (unsigned long long) v.bad_line, v.what);
    dg_audit_verify_free(&v);

    rc = verify(late, 8, 0, &v);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_GAP && v.bad_line == 4
       && v.found_line == 7, "moved record: line 4, found at line 7");
    dg_audit_verify_free(&v);

    rc = verify(dup, 9, 0, &v);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_BACK && v.bad_line == 3,
       "duplicated record: line 3");
    diag("%s:%llu: %s", v.bad_file, (unsigned long long) v.bad_line, v.what);
    dg_audit_verify_free(&v);

    rc = verify(gap_files, 7, 3, &v);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_GAP && v.bad_line == 1
       && strcmp(v.bad_file, "b.log") == 0,
       "second file not linked to the first: b.log:1");
    dg_audit_verify_free(&v);

    /* edited without re-hashing */
    *strstr(lines[4], "allowed") = 'X';
    rc = verify(good, 8, 0, &v);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_EDITED && v.bad_line == 5,
       "edited record: line 5");
    diag("%s:%llu: %s", v.bad_file, (unsigned long long) v.bad_line, v.what);
    dg_audit_verify_free(&v);

    /* edited and re-hashed: the next record no longer links */
    make_chain(DG_AUDIT_SHA256);
    dg_arec_init(&r, buf, sizeof(buf));
    dg_arec_cstr(&r, "consumer", "someone-else");
    dg_arec_seal(&r, &t_md, DG_AUDIT_SHA256, 104,
                 strstr(lines[4], "\"prev\":\"") + 8, hash, &line, &len);
    memcpy(lines[4], line, len);
    lines[4][len - 1] = '\0';
    lens[4] = len - 1;
    rc = verify(good, 8, 0, &v);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_LINK && v.bad_line == 6,
       "re-hashed forgery: caught at the next record, line 6");
    diag("%s:%llu: %s", v.bad_file, (unsigned long long) v.bad_line, v.what);
    dg_audit_verify_free(&v);

    /* a forged record inserted with a proper link to the one before */
    make_chain(DG_AUDIT_SHA256);
    memcpy(lines[NREC], lines[7], sizeof(lines[0]));
    lens[NREC] = lens[7];
    dg_arec_init(&r, buf, sizeof(buf));
    dg_arec_cstr(&r, "consumer", "inserted");
    dg_arec_seal(&r, &t_md, DG_AUDIT_SHA256, 104,
                 strstr(lines[3], "\"hash\":\"") + 8, hash, &line, &len);
    memcpy(lines[NREC + 1], line, len);
    lines[NREC + 1][len - 1] = '\0';
    lens[NREC + 1] = len - 1;
    {
        static const int  ins[] = { 0, 1, 2, 3, NREC + 1, 4, 5, 6 };

        rc = verify(ins, 8, 0, &v);
        ok(rc == 1 && v.kind == DG_AUDIT_BREAK_BACK && v.bad_line == 6,
           "inserted forgery: next record goes back, line 6");
        diag("%s:%llu: %s", v.bad_file, (unsigned long long) v.bad_line,
             v.what);
        dg_audit_verify_free(&v);
    }

    /* garbage line */
    strcpy(lines[2], "{\"seq\":102,");
    lens[2] = strlen(lines[2]);
    rc = verify(good, 8, 0, &v);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_FORMAT && v.bad_line == 3,
       "broken line: line 3");
    dg_audit_verify_free(&v);
}


/* a chain whose record i says "lost": lost[i] */
static void
make_lost_chain(const uint64_t *lost)
{
    dg_arec_t    r;
    char         buf[1024], prev[65], hash[65];
    const char  *line;
    size_t       len;
    int          i;

    memcpy(prev, dg_audit_genesis, 65);

    for (i = 0; i < NREC; i++) {
        dg_arec_init(&r, buf, sizeof(buf));
        dg_arec_cstr(&r, "decision", "allowed");
        dg_arec_lost(&r, lost[i]);
        dg_arec_seal(&r, &t_md, DG_AUDIT_SHA256, 1 + i, prev, hash, &line,
                     &len);
        memcpy(lines[i], line, len);
        lens[i] = len - 1;
        lines[i][len - 1] = '\0';
        memcpy(prev, hash, 65);
    }
}


static void
test_lost(void)
{
    dg_audit_verify_t  v;
    int                rc;

    static const uint64_t  none[NREC] = { 0 };
    static const uint64_t  some[NREC] = { 0, 0, 3, 0, 0, 1, 0, 0 };
    static const int       good[] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    static const int       torn[] = { 0, 1, NREC, 2, 3, 4, 5, 6, 7 };
    static const int       torn_end[] = { 0, 1, 2, 3, 4, 5, 6, 7, NREC };
    static const int       torn_files[] = { 0, 1, NREC, 2, 3 };

    make_lost_chain(some);
    rc = verify(good, NREC, 0, &v);
    ok(rc == 0 && !v.broken && dg_audit_verify_end(&v) == 0,
       "lost records: the chain of those written holds");
    ok(v.lost == 4 && v.nlost == 2, "lost: 4 records in 2 places");
    ok(v.lost_line == 6 && v.lost_seq == 6 && v.lost_count == 1
       && v.torn_line == 0, "lost: the latest place, line 6");
    dg_audit_verify_free(&v);

    /* a torn line (a failed write) followed by the record counting it */
    strcpy(lines[NREC], "{\"seq\":3,\"decision\":\"all");
    lens[NREC] = strlen(lines[NREC]);
    rc = verify(torn, NREC + 1, 0, &v);
    ok(rc == 0 && dg_audit_verify_end(&v) == 0,
       "torn line counted by the next record: not a break");
    ok(v.nlost == 2 && v.lost == 4, "torn: losses counted");
    dg_audit_verify_free(&v);

    v.torn_line = 0;
    dg_audit_verify_init(&v);
    dg_audit_verify_file(&v, "a.log");
    dg_audit_verify_line(&v, lines[0], lens[0]);
    dg_audit_verify_line(&v, lines[1], lens[1]);
    dg_audit_verify_line(&v, lines[NREC], lens[NREC]);
    ok(v.nlost == 0 && v.torn, "torn: waits for the next line");
    dg_audit_verify_line(&v, lines[2], lens[2]);
    ok(v.nlost == 1 && v.torn_line == 3 && v.lost_line == 4,
       "torn: reported with the record after it (lines 3 and 4)");
    dg_audit_verify_free(&v);

    /* the same across a reopen: the torn line ends the old file */
    rc = verify(torn_files, 5, 3, &v);
    ok(rc == 0 && dg_audit_verify_end(&v) == 0
       && v.torn_line == 3 && strcmp(v.lost_file, "b.log") == 0,
       "torn line at the end of a file, counted in the next file");
    dg_audit_verify_free(&v);

    /* a torn line nothing counts is a break */
    make_lost_chain(none);
    strcpy(lines[NREC], "{\"se");
    lens[NREC] = strlen(lines[NREC]);
    rc = verify(torn, NREC + 1, 0, &v);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_FORMAT && v.bad_line == 3
       && v.nlost == 0, "torn line without a loss after it: break at it");
    dg_audit_verify_free(&v);

    rc = verify(torn_end, NREC + 1, 0, &v);
    ok(rc == 0 && dg_audit_verify_end(&v) == 1 && v.bad_line == 9,
       "torn last line: a break once the end is known");
    dg_audit_verify_free(&v);

    /* a record that says "lost" but does not continue the chain */
    make_lost_chain(some);
    {
        static const int  skip[] = { 0, 1, NREC, 3, 4, 5, 6, 7 };

        rc = verify(skip, NREC, 0, &v);
        ok(rc == 1 && v.bad_line == 3 && v.kind == DG_AUDIT_BREAK_FORMAT,
           "torn line before a record that does not link: break");
        dg_audit_verify_free(&v);
    }

    /* other garbage is no torn line */
    strcpy(lines[NREC], "{\"time\":1}");
    lens[NREC] = strlen(lines[NREC]);
    rc = verify(torn, NREC + 1, 0, &v);
    ok(rc == 1 && v.bad_line == 3, "other garbage before a loss: break");
    dg_audit_verify_free(&v);
}


static void
test_tail(void)
{
    FILE      *f;
    char       path[] = "/tmp/t_audit_XXXXXX";
    char       hash[65], err[256];
    uint64_t   seq;
    int        fd, rc, i;

    fd = mkstemp(path);
    close(fd);

    rc = dg_audit_tail(path, &seq, hash, err, sizeof(err));
    ok(rc == 0 && seq == 0 && strcmp(hash, dg_audit_genesis) == 0,
       "empty file: genesis");

    make_chain(DG_AUDIT_SHA256);
    f = fopen(path, "w");
    for (i = 0; i < NREC; i++) {
        fprintf(f, "%s\n", lines[i]);
    }
    fclose(f);

    rc = dg_audit_tail(path, &seq, hash, err, sizeof(err));
    ok(rc == 1 && seq == 107 && memcmp(hash, strstr(lines[7], "\"hash\":\"")
                                             + 8, 64) == 0,
       "head taken from the last record");

    f = fopen(path, "a");
    fprintf(f, "{\"seq\":108,\"ti");
    fclose(f);
    rc = dg_audit_tail(path, &seq, hash, err, sizeof(err));
    ok(rc == -1 && seq == 107, "torn last line: error, head of the last "
       "good record (%s)", err);

    f = fopen(path, "w");
    fprintf(f, "garbage\n");
    fclose(f);
    rc = dg_audit_tail(path, &seq, hash, err, sizeof(err));
    ok(rc == -1 && seq == 0, "no record: error (%s)", err);

    unlink(path);
    rc = dg_audit_tail(path, &seq, hash, err, sizeof(err));
    ok(rc == 0 && seq == 0, "missing file: genesis");
}


int
main(void)
{
    test_escape();
    test_kat();
    test_record();
    test_bounded();
    test_verify();
    test_lost();
    test_tail();

    dg_audit_md_free(&t_md);

    return done_testing();
}
