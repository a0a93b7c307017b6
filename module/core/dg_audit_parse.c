/*
 * datagate core: reading audit records (see dg_audit.h): one line parsed
 * and its hash checked (dg_audit_parse), and the last record of an
 * existing file (dg_audit_tail).  The chain verifier over a sequence of
 * files is dg_audit_verify.c.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* memrchr */
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "dg_audit_int.h"


#define DG_AUDIT_TAIL_READ      (DG_AUDIT_MAX_LINE + 2)
#define DG_JSON_MAX_DEPTH       32


static int dg_is_hex64(const char *p);
static int dg_audit_count(const char *s, size_t len, uint64_t *v);
static int dg_json_skip_ws(const char *s, size_t len, size_t *i);
static int dg_json_skip_string(const char *s, size_t len, size_t *i);
static int dg_json_skip_value(const char *s, size_t len, size_t *i,
    unsigned depth);


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
    int          have_chain, have_mac;
    size_t       i, ks, ke, vs, ve, tlen;
    const char  *hash;
    char         calc[DG_AUDIT_HEXLEN + 1];

    memset(rec, 0, sizeof(dg_audit_rec_t));
    have_seq = have_alg = have_prev = have_hash = have_lost = 0;
    have_chain = have_mac = 0;

    if (len < DG_AUDIT_HASH_SUFFIX + 2 || line[0] != '{') {
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

        } else if (DG_KEY_IS("chain")) {
            if (have_chain++) {
                dg_err("duplicate \"chain\"");
                return DG_AUDIT_E_FORMAT;
            }

            if (ve - vs < 2 || line[vs] != '"'
                || dg_audit_chain_valid(line + vs + 1, ve - vs - 2) != 0)
            {
                dg_err("\"chain\" is not a chain id");
                return DG_AUDIT_E_FORMAT;
            }

            rec->chain_len = ve - vs - 2;
            memcpy(rec->chain, line + vs + 1, rec->chain_len);
            rec->chain[rec->chain_len] = '\0';

        } else if (DG_KEY_IS("mac")) {
            if (have_mac++) {
                dg_err("duplicate \"mac\"");
                return DG_AUDIT_E_FORMAT;
            }

            if (ve - vs != DG_AUDIT_HEXLEN + 2
                || !dg_is_hex64(line + vs + 1))
            {
                dg_err("\"mac\" is not 64 hex digits");
                return DG_AUDIT_E_FORMAT;
            }

            memcpy(rec->mac, line + vs + 1, DG_AUDIT_HEXLEN);

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

    tlen = len - DG_AUDIT_HASH_SUFFIX;
    hash = line + tlen + DG_AUDIT_HASH_MEMBER_LEN;

    if (memcmp(line + tlen, dg_audit_hash_member, DG_AUDIT_HASH_MEMBER_LEN)
        != 0
        || memcmp(hash, rec->hash, DG_AUDIT_HEXLEN) != 0)
    {
        dg_err("\"hash\" is not the last member");
        return DG_AUDIT_E_FORMAT;
    }

    /* "mac" right before it, as we write it: T0 ends where it starts */

    if (have_mac) {
        if (tlen < DG_AUDIT_MAC_MEMBER
            || memcmp(line + tlen - DG_AUDIT_MAC_MEMBER, ",\"mac\":\"", 8)
               != 0
            || memcmp(line + tlen - DG_AUDIT_MAC_MEMBER + 8, rec->mac,
                      DG_AUDIT_HEXLEN)
               != 0)
        {
            dg_err("\"mac\" is not right before \"hash\"");
            return DG_AUDIT_E_FORMAT;
        }

        rec->t0len = tlen - DG_AUDIT_MAC_MEMBER;
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
