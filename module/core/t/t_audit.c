/*
 * Unit tests: audit record encoding, the hash chain, the verifier.
 */

#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "tap.h"
#include "dg_audit.h"


#define NREC  8

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
    dg_arec_seal(&r, DG_AUDIT_SHA256, 1, dg_audit_genesis, hash, &line,
                 &len);
    /* sha256("0"*64 + '{"seq":1,"alg":"sha256","prev":"' + "0"*64 + '"}') */
    is_str(hash,
           "ae5a4b47a790a4d52974bbe32fb39f37a610c8542b97e26f9f4f8bbd07c84e1a",
           "SHA-256 chain hash of an empty record (known answer)");

    dg_arec_init(&r, buf, sizeof(buf));
    dg_arec_seal(&r, DG_AUDIT_SM3, 1, dg_audit_genesis, hash, &line, &len);
    is_str(hash,
           "d14b94e4a64896c044e43dfa9ea08b1326c536c44bb3343671ae5df2739627d6",
           "SM3 chain hash of an empty record (known answer)");

    dg_audit_digest(DG_AUDIT_SM3, dg_audit_genesis, "", 0, hash);
    ok(strlen(hash) == 64, "SM3 digest is 64 hex digits");
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
        dg_arec_seal(&r, alg, 100 + i, prev, hash, &line, &len);

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

    rc = dg_audit_parse(lines[1], lens[1], &rec, err, sizeof(err));
    is_int(rc, 0, "record parses and verifies");
    is_int(rec.seq, 101, "seq read back");
    is_int(rec.alg, DG_AUDIT_SHA256, "alg read back");

    independent_hash(lines[1], lens[1], 0, other);
    is_str(other, rec.hash, "hash = SHA-256(prev || line without hash)");

    make_chain(DG_AUDIT_SM3);
    rc = dg_audit_parse(lines[2], lens[2], &rec, err, sizeof(err));
    is_int(rc, 0, "SM3 record verifies");
    is_int(rec.alg, DG_AUDIT_SM3, "alg sm3");
    independent_hash(lines[2], lens[2], 1, other);
    is_str(other, rec.hash, "hash = SM3(prev || line without hash)");

    /* edited content */
    make_chain(DG_AUDIT_SHA256);
    strcpy(buf, lines[4]);
    *strstr(buf, "allowed") = 'A';
    rc = dg_audit_parse(buf, strlen(buf), &rec, err, sizeof(err));
    is_int(rc, DG_AUDIT_E_HASH, "edited record: hash mismatch");

    /* a re-sealed record can be sealed again with another seq */
    dg_arec_init(&r, buf, sizeof(buf));
    dg_arec_cstr(&r, "k", "v");
    dg_arec_seal(&r, DG_AUDIT_SHA256, 1, dg_audit_genesis, hash, &line,
                 &len);
    dg_arec_seal(&r, DG_AUDIT_SHA256, 12345678901ULL, hash, other, &line,
                 &len);
    rc = dg_audit_parse(line, len - 1, &rec, err, sizeof(err));
    ok(rc == 0 && rec.seq == 12345678901ULL
       && memcmp(rec.prev, hash, 64) == 0, "re-sealed record verifies");

    /* truncation: record stays valid and says so */
    memset(big, 'x', sizeof(big));
    dg_arec_init(&r, buf, 600);
    dg_arec_cstr(&r, "a", "short");
    dg_arec_str(&r, "uri", big, sizeof(big));
    dg_arec_cstr(&r, "after", "dropped");
    dg_arec_obj_begin(&r, "masked");
    dg_arec_uint(&r, "c", 1);
    dg_arec_obj_end(&r);
    dg_arec_seal(&r, DG_AUDIT_SHA256, 1, dg_audit_genesis, hash, &line,
                 &len);
    ok(len <= 600, "truncated record fits its buffer (%zu)", len);
    ok(memmem(line, len, "\"truncated\":true", 16) != NULL,
       "truncated flag");
    rc = dg_audit_parse(line, len - 1, &rec, err, sizeof(err));
    is_int(rc, 0, "truncated record verifies");
    ok(dg_arec_init(&r, buf, 100) == -1, "too small a buffer refused");

    /* malformed lines */
#define BAD(s, what)                                                         \
    rc = dg_audit_parse(s, strlen(s), &rec, err, sizeof(err));               \
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
    dg_arec_seal(&r, DG_AUDIT_SHA256, 104, strstr(lines[4], "\"prev\":\"")
                 + 8, hash, &line, &len);
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
    dg_arec_seal(&r, DG_AUDIT_SHA256, 104, strstr(lines[3], "\"hash\":\"")
                 + 8, hash, &line, &len);
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
    test_verify();
    test_tail();

    return done_testing();
}
