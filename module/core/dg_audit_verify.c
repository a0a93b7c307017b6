/*
 * datagate core: reading audit records (see dg_audit.h): one line parsed
 * and its hash checked (dg_audit_parse), the chain head of an existing
 * file (dg_audit_tail), and the chain verifier over a sequence of files
 * (dg_audit_verify_*).
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

#include "dg_audit_int.h"


#define DG_AUDIT_TAIL_READ      (DG_AUDIT_MAX_LINE + 2)
#define DG_JSON_MAX_DEPTH       32


static int dg_is_hex64(const char *p);
static int dg_audit_count(const char *s, size_t len, uint64_t *v);
static int dg_json_skip_ws(const char *s, size_t len, size_t *i);
static int dg_json_skip_string(const char *s, size_t len, size_t *i);
static int dg_json_skip_value(const char *s, size_t len, size_t *i,
    unsigned depth);
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

    if (memcmp(line + tlen, dg_audit_hash_member, DG_AUDIT_HASH_MEMBER_LEN) != 0
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
