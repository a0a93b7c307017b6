/*
 * datagate core: the hash-chained audit record.
 *
 * Plain C, no nginx headers.  One record is one line of JSON:
 *
 *   {"seq":N,<fields>,"alg":"sha256","prev":"<P>","hash":"<H>"}\n
 *
 * Let T be the line without its LF and without the member ,"hash":"<H>"
 * (so T ends in ,"prev":"<P>"} and is itself a JSON object).  Then
 *
 *   H = lower-case hex of ALG( P || T )
 *
 * over the bytes as written, P the 64 hex digits of the previous record's
 * hash (64 zeros for the first record of a chain).  docs/audit.md has the
 * full definition.  The writer builds the fields outside any lock
 * (dg_arec_*) and seals the record under the lock that guards the chain
 * head (dg_arec_seal); the verifier (dg_audit_parse, dg_audit_verify_*)
 * checks files.
 */

#ifndef DG_AUDIT_H
#define DG_AUDIT_H

#include <stddef.h>
#include <stdint.h>


#define DG_AUDIT_SHA256         0
#define DG_AUDIT_SM3            1

#define DG_AUDIT_HEXLEN         64      /* both digests are 32 bytes */

/* bytes dg_arec_init() keeps in front of and behind the fields */
#define DG_AREC_HEAD            32
#define DG_AREC_TAIL            192

#define DG_AUDIT_MAX_LINE       (1024 * 1024)


/* the 64 zeros a new chain starts from */
extern const char dg_audit_genesis[DG_AUDIT_HEXLEN + 1];

const char *dg_audit_alg_name(int alg);                /* "sha256" */
int dg_audit_alg_parse(const char *s, size_t len);     /* -1: unknown */


/*
 * JSON string escaping (the text between the quotes).  Valid UTF-8 passes
 * as is; '"', '\\' and control characters are escaped; a byte that is not
 * part of valid UTF-8 becomes \ufffd.  Writes at most cap bytes and never
 * splits an escape or a character; *consumed (may be NULL) tells how much
 * input went out.  Returns the number of bytes written.
 */
size_t dg_json_escape(char *dst, size_t cap, const uint8_t *s, size_t len,
    size_t *consumed);

/* bytes dg_json_escape() needs for the whole input */
size_t dg_json_escape_len(const uint8_t *s, size_t len);


/* record builder over caller memory */
typedef struct {
    char                       *buf;
    size_t                      cap;
    size_t                      len;        /* DG_AREC_HEAD + fields */
    unsigned                    nfields;
    unsigned                    truncated:1;
    unsigned                    nested:1;   /* inside dg_arec_obj_begin */
    unsigned                    nnested;
} dg_arec_t;

/* cap must exceed DG_AREC_HEAD + DG_AREC_TAIL + 64; -1 if not */
int dg_arec_init(dg_arec_t *r, char *buf, size_t cap);

/* "key":"value"; val == NULL gives "key":null.  A value that does not fit
 * is cut at a character boundary and the record is marked truncated. */
void dg_arec_str(dg_arec_t *r, const char *key, const char *val,
    size_t len);
void dg_arec_cstr(dg_arec_t *r, const char *key, const char *val);
void dg_arec_int(dg_arec_t *r, const char *key, int64_t v);
void dg_arec_uint(dg_arec_t *r, const char *key, uint64_t v);
/* the same with a key that is not NUL-terminated */
void dg_arec_uint_n(dg_arec_t *r, const char *key, size_t klen,
    uint64_t v);
void dg_arec_bool(dg_arec_t *r, const char *key, int v);

/* "key":{ ... } with dg_arec_uint()/dg_arec_str() members in between */
void dg_arec_obj_begin(dg_arec_t *r, const char *key);
void dg_arec_obj_end(dg_arec_t *r);

/*
 * Complete the record: seq in front, "truncated":true if anything was cut,
 * alg, prev and the hash behind.  prev: 64 hex digits.  Writes the new hash
 * (64 hex + NUL) into hash, and sets *line / *len to the whole line
 * including its LF (inside r->buf).  Returns 0, or -1 if the digest
 * failed.  After sealing, the record may be sealed again (with another
 * seq/prev) as long as no field was added.
 */
int dg_arec_seal(dg_arec_t *r, int alg, uint64_t seq, const char *prev,
    char *hash, const char **line, size_t *len);


/* digest of prev || t, hex into out (65 bytes); 0 ok, -1 */
int dg_audit_digest(int alg, const char *prev, const char *t, size_t tlen,
    char *out);


/* a parsed record line */
typedef struct {
    uint64_t                    seq;
    int                         alg;
    char                        prev[DG_AUDIT_HEXLEN + 1];
    char                        hash[DG_AUDIT_HEXLEN + 1];
} dg_audit_rec_t;

#define DG_AUDIT_E_FORMAT       -1      /* not a well-formed record */
#define DG_AUDIT_E_HASH         -2      /* hash does not match content */

/*
 * Parse and check one line (without its LF).  Fills rec (on
 * DG_AUDIT_E_HASH too: rec->hash is the stated one).  err gets a short
 * description on failure.
 */
int dg_audit_parse(const char *line, size_t len, dg_audit_rec_t *rec,
    char *err, size_t errlen);


/*
 * Chain head from an existing log: the last well-formed record of the file.
 * Returns 1 found (seq, hash set), 0 no record (missing or empty file),
 * -1 the file exists but its tail is not a record (err says why; seq and
 * hash then hold the last good record found in the tail, if any, else
 * seq 0 and the genesis hash).
 */
int dg_audit_tail(const char *path, uint64_t *seq, char *hash, char *err,
    size_t errlen);


/*
 * Verifier over a sequence of files.  Feed every line of every file in
 * order; dg_audit_verify_file() starts a new file.  The first record of
 * the first file may link to anything (a chain continued from an older
 * file); every other record must carry seq + 1 and the hash of the record
 * before it, across files.
 */

#define DG_AUDIT_WINDOW         4096    /* recent hashes kept to diagnose */

typedef struct {
    uint64_t                    seq;
    uint64_t                    line;
    uint32_t                    file;
    char                        hash[DG_AUDIT_HEXLEN + 1];
} dg_audit_seen_t;

typedef struct {
    const char                 *file;       /* current file name */
    uint32_t                    nfile;      /* files begun */
    uint64_t                    line;       /* in the current file */
    uint64_t                    records;    /* in all files */
    int                         have_prev;
    dg_audit_rec_t              last;       /* last good record */
    const char                 *last_file;
    uint64_t                    last_line;
    dg_audit_rec_t              first;
    unsigned                    nolf:1;     /* next line is an
                                               unterminated tail */

    /* the first break: where, what, and the seq that was expected */
    int                         broken;
    const char                 *bad_file;
    uint64_t                    bad_line;
    uint64_t                    want_seq;
    char                        want_hash[DG_AUDIT_HEXLEN + 1];
    char                        what[512];
    int                         kind;       /* DG_AUDIT_BREAK_* */
    const char                 *found_file; /* missing record seen later */
    uint64_t                    found_line;

    dg_audit_seen_t            *ring;       /* DG_AUDIT_WINDOW entries */
    uint64_t                    nring;
} dg_audit_verify_t;

#define DG_AUDIT_BREAK_NONE     0
#define DG_AUDIT_BREAK_FORMAT   1       /* garbage / incomplete line */
#define DG_AUDIT_BREAK_EDITED   2       /* hash does not match content */
#define DG_AUDIT_BREAK_GAP      3       /* records missing (removed or
                                           moved later) */
#define DG_AUDIT_BREAK_BACK     4       /* seq goes back: inserted or
                                           moved here from later */
#define DG_AUDIT_BREAK_LINK     5       /* seq fits, prev does not */

int dg_audit_verify_init(dg_audit_verify_t *v);
void dg_audit_verify_free(dg_audit_verify_t *v);
void dg_audit_verify_file(dg_audit_verify_t *v, const char *name);
/* returns 0 while the chain holds, 1 once broken (later lines are only
 * scanned for the missing record) */
int dg_audit_verify_line(dg_audit_verify_t *v, const char *line,
    size_t len);
/* the next line is the end of a file that lacks its final LF */
void dg_audit_verify_incomplete(dg_audit_verify_t *v);

#endif /* DG_AUDIT_H */
