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
 * (dg_arec_*, dg_audit_encode: dg_audit_rec.c) and seals the record under
 * the lock that guards the chain head (dg_arec_seal: dg_audit.c); the
 * verifier (dg_audit_parse, dg_audit_tail, dg_audit_verify_*:
 * dg_audit_verify.c) checks files.
 */

#ifndef DG_AUDIT_H
#define DG_AUDIT_H

#include <stddef.h>
#include <stdint.h>


#define DG_AUDIT_SHA256         0
#define DG_AUDIT_SM3            1
#define DG_AUDIT_ALGS           2

#define DG_AUDIT_HEXLEN         64      /* both digests are 32 bytes */

/* the writer's record buffer: no record line (LF included) is longer */
#define DG_AUDIT_RECORD_MAX     16384

/* what the verifier reads as one line at most */
#define DG_AUDIT_MAX_LINE       (1024 * 1024)

/*
 * A value cut to fit its bound ends with this marker (U+2026 HORIZONTAL
 * ELLIPSIS, 3 bytes of UTF-8), and the record's "truncated" member names
 * it; the name of a member left out for lack of room is listed there too.
 */
#define DG_AREC_CUT_MARK        "\xe2\x80\xa6"
#define DG_AREC_CUT_MARK_LEN    (sizeof(DG_AREC_CUT_MARK) - 1)
#define DG_AREC_CUT_MAX         12      /* names "truncated" lists */
#define DG_AREC_CUT_NAME        24      /* longest name listed */

#define DG_AREC_NUM_MAX         20      /* digits of UINT64_MAX, INT64_MIN */

/* bytes dg_arec_init() keeps in front of the fields: LF and {"seq":N */
#define DG_AREC_HEAD            32

/* bytes it keeps behind them for what dg_arec_seal() adds */
#define DG_AREC_TAIL                                                        \
    (1                                      /* } of an open object */       \
     + sizeof(",\"lost\":") - 1 + DG_AREC_NUM_MAX                            \
     + sizeof(",\"truncated\":[]") - 1                                      \
     + DG_AREC_CUT_MAX * (DG_AREC_CUT_NAME + sizeof("\"\",") - 1)           \
     + sizeof(",\"alg\":\"sha256\",\"prev\":\"\"") - 1 + DG_AUDIT_HEXLEN     \
     + sizeof(",\"hash\":\"\"}") - 1 + DG_AUDIT_HEXLEN                       \
     + 1)                                   /* LF */


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
    unsigned                    left:1;     /* that object left out */
    unsigned                    nnested;
    const char                 *obj;        /* key of the open object */
    uint64_t                    lost;       /* dg_arec_lost() */

    /* members cut or left out: "truncated":[...] */
    unsigned                    ncut;
    const char                 *cut[DG_AREC_CUT_MAX];
    size_t                      cutlen[DG_AREC_CUT_MAX];
} dg_arec_t;

/* cap must exceed DG_AREC_HEAD + DG_AREC_TAIL + 64; -1 if not */
int dg_arec_init(dg_arec_t *r, char *buf, size_t cap);


/*
 * The digests of the chain: the digest implementations and one OpenSSL
 * context, owned by whoever seals or checks records (the gateway's
 * configuration, a verifier, a caller of dg_audit_parse()).  All zeros
 * is a valid, empty one: the implementations are fetched and the context
 * made at the first digest (fetching once matters with OpenSSL 3, which
 * otherwise looks them up at every digest); dg_audit_md_free() releases
 * them.  One at a time: a context is not shared between threads.
 */
struct evp_md_st;
struct evp_md_ctx_st;

typedef struct {
    struct evp_md_st           *md[DG_AUDIT_ALGS];
    struct evp_md_ctx_st       *ctx;
} dg_audit_md_t;

void dg_audit_md_free(dg_audit_md_t *md);

/*
 * "key":"value"; val == NULL gives "key":null.  The value is JSON-escaped
 * and then bounded: at most max bytes between the quotes (max >= 8).  A
 * value longer than that, or than the room left, is cut at a character
 * boundary (never inside an escape or a UTF-8 sequence), ends with
 * DG_AREC_CUT_MARK and is named in "truncated".
 */
void dg_arec_str_max(dg_arec_t *r, const char *key, const char *val,
    size_t len, size_t max);
/* the same, bounded by the room left only */
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

/* "key":{"name":count,...}: whole members while they fit in max bytes
 * between the braces; the rest left out and "key" named in "truncated" */
typedef struct {
    const char                 *name;
    size_t                      len;
    uint64_t                    count;
} dg_acount_t;

void dg_arec_counts(dg_arec_t *r, const char *key, const dg_acount_t *c,
    size_t n, size_t max);

/* "lost":n (records that could not be written before this one), written
 * by dg_arec_seal() when n > 0; may be set again before a new seal */
void dg_arec_lost(dg_arec_t *r, uint64_t n);

/*
 * Complete the record: seq in front; "lost", and "truncated":[names] if
 * anything was cut; alg, prev and the hash behind.  prev: 64 hex digits.
 * Writes the new hash (64 hex + NUL) into hash, and sets *line / *len to
 * the whole line including its LF (inside r->buf).  Returns 0, or -1 if
 * the digest failed.  After sealing, the record may be sealed again (with
 * another seq/prev/lost) as long as no field was added.  DG_AREC_HEAD
 * leaves room for one byte in front of *line (a LF that ends a torn line).
 */
int dg_arec_seal(dg_arec_t *r, dg_audit_md_t *md, int alg, uint64_t seq,
    const char *prev, char *hash, const char **line, size_t *len);


/*
 * The members of one audit record (docs/audit.md), in the order written.
 * Every string is bounded after JSON escaping (DG_AUDIT_MAX_*, the
 * bytes between the quotes, DG_AREC_CUT_MARK included), so that the
 * worst case of all of them, DG_AUDIT_FIELDS_MAX, fits a record of
 * DG_AUDIT_RECORD_MAX with its head and tail (checked at compile time in
 * dg_audit_rec.c): whatever a client sends, "decision", "reason", "status",
 * "bytes" and "masked" are always written.
 */

typedef struct {
    const char                 *data;       /* NULL: null */
    size_t                      len;
} dg_astr_t;

typedef struct {
    dg_astr_t                   time;
    dg_astr_t                   request_id;
    dg_astr_t                   consumer;
    dg_astr_t                   cert_serial;
    dg_astr_t                   client;     /* the address the rules used */
    dg_astr_t                   peer;       /* the TCP peer */
    dg_astr_t                   forwarded;  /* absent when NULL */
    dg_astr_t                   country;    /* null when not known */
    dg_astr_t                   region;     /* absent when NULL */
    dg_astr_t                   dataset;
    int                         level;      /* < 0: null */
    dg_astr_t                   purpose;
    dg_astr_t                   approval;
    dg_astr_t                   method;
    dg_astr_t                   uri;
    const char                 *decision;
    const char                 *reason;
    const char                 *detail;     /* absent when NULL */
    int                         cut;        /* "cut":true when set */
    uint64_t                    status;
    uint64_t                    bytes;
    const dg_acount_t          *masked;
    size_t                      nmasked;
    const dg_acount_t          *detected;   /* absent when none */
    size_t                      ndetected;
    uint64_t                    unlisted;   /* absent when 0 */
    uint64_t                    dropped;    /* absent when 0 */
    uint64_t                    duration_ms;
    dg_astr_t                   policy;
} dg_audit_fields_t;

/* bytes between the quotes, after escaping, marker included */
#define DG_AUDIT_MAX_TIME       40
#define DG_AUDIT_MAX_REQUEST_ID 128
#define DG_AUDIT_MAX_ID         256     /* consumer, dataset */
#define DG_AUDIT_MAX_SERIAL     128
#define DG_AUDIT_MAX_CLIENT     128
#define DG_AUDIT_MAX_PLACE      64      /* country, region */
#define DG_AUDIT_MAX_HEADER     256     /* purpose, approval */
#define DG_AUDIT_MAX_METHOD     64
#define DG_AUDIT_MAX_URI        4096
#define DG_AUDIT_MAX_CODE       64      /* decision, reason */
#define DG_AUDIT_MAX_DETAIL     512
#define DG_AUDIT_MAX_POLICY     64
#define DG_AUDIT_MAX_MASKED     4096    /* between the braces */
#define DG_AUDIT_MAX_DETECTED   512

/* the most one member takes: ,"key":"value" / ,"key":{...} / ,"key":N */
#define DG_AREC_STR_MEMBER(key, max)    (sizeof(key) - 1 + 6 + (max))
#define DG_AREC_OBJ_MEMBER(key, max)    (sizeof(key) - 1 + 6 + (max))
#define DG_AREC_NUM_MEMBER(key)         (sizeof(key) - 1 + 4 + DG_AREC_NUM_MAX)

#define DG_AUDIT_FIELDS_MAX                                                 \
    (DG_AREC_STR_MEMBER("time", DG_AUDIT_MAX_TIME)                          \
     + DG_AREC_STR_MEMBER("request_id", DG_AUDIT_MAX_REQUEST_ID)            \
     + DG_AREC_STR_MEMBER("consumer", DG_AUDIT_MAX_ID)                      \
     + DG_AREC_STR_MEMBER("cert_serial", DG_AUDIT_MAX_SERIAL)               \
     + DG_AREC_STR_MEMBER("client", DG_AUDIT_MAX_CLIENT)                    \
     + DG_AREC_STR_MEMBER("peer", DG_AUDIT_MAX_CLIENT)                      \
     + DG_AREC_STR_MEMBER("forwarded", DG_AUDIT_MAX_CLIENT)                 \
     + DG_AREC_STR_MEMBER("country", DG_AUDIT_MAX_PLACE)                    \
     + DG_AREC_STR_MEMBER("region", DG_AUDIT_MAX_PLACE)                     \
     + DG_AREC_STR_MEMBER("dataset", DG_AUDIT_MAX_ID)                       \
     + DG_AREC_NUM_MEMBER("level")                                          \
     + DG_AREC_STR_MEMBER("purpose", DG_AUDIT_MAX_HEADER)                   \
     + DG_AREC_STR_MEMBER("approval", DG_AUDIT_MAX_HEADER)                  \
     + DG_AREC_STR_MEMBER("method", DG_AUDIT_MAX_METHOD)                    \
     + DG_AREC_STR_MEMBER("uri", DG_AUDIT_MAX_URI)                          \
     + DG_AREC_STR_MEMBER("decision", DG_AUDIT_MAX_CODE)                    \
     + DG_AREC_STR_MEMBER("reason", DG_AUDIT_MAX_CODE)                      \
     + DG_AREC_STR_MEMBER("detail", DG_AUDIT_MAX_DETAIL)                    \
     + DG_AREC_NUM_MEMBER("cut")                                            \
     + DG_AREC_NUM_MEMBER("status")                                         \
     + DG_AREC_NUM_MEMBER("bytes")                                          \
     + DG_AREC_OBJ_MEMBER("masked", DG_AUDIT_MAX_MASKED)                    \
     + DG_AREC_OBJ_MEMBER("detected", DG_AUDIT_MAX_DETECTED)                \
     + DG_AREC_NUM_MEMBER("unlisted")                                       \
     + DG_AREC_NUM_MEMBER("dropped")                                        \
     + DG_AREC_NUM_MEMBER("duration_ms")                                    \
     + DG_AREC_STR_MEMBER("policy", DG_AUDIT_MAX_POLICY))

/* room a record keeps for members the writer adds after these */
#define DG_AUDIT_EXTRA_ROOM                                                 \
    (DG_AUDIT_RECORD_MAX - DG_AREC_HEAD - DG_AUDIT_FIELDS_MAX - DG_AREC_TAIL)

/*
 * Write the members into a fresh record (nothing added since
 * dg_arec_init(), cap >= DG_AUDIT_RECORD_MAX).  Returns 0; -1 when the
 * record is not fresh or too small (nothing written).
 */
int dg_audit_encode(dg_arec_t *r, const dg_audit_fields_t *f);


/* digest of prev || t, hex into out (65 bytes); 0 ok, -1.  md: the
 * caller's digests, or NULL: made and released for this call */
int dg_audit_digest(dg_audit_md_t *md, int alg, const char *prev,
    const char *t, size_t tlen, char *out);


/* a parsed record line */
typedef struct {
    uint64_t                    seq;
    uint64_t                    lost;       /* "lost", 0 when absent */
    int                         alg;
    char                        prev[DG_AUDIT_HEXLEN + 1];
    char                        hash[DG_AUDIT_HEXLEN + 1];
} dg_audit_rec_t;

#define DG_AUDIT_E_FORMAT       -1      /* not a well-formed record */
#define DG_AUDIT_E_HASH         -2      /* hash does not match content */

/*
 * Parse and check one line (without its LF).  Fills rec (on
 * DG_AUDIT_E_HASH too: rec->hash is the stated one).  err gets a short
 * description on failure.  md: the caller's digests, or NULL: made and
 * released for this call.
 */
int dg_audit_parse(dg_audit_md_t *md, const char *line, size_t len,
    dg_audit_rec_t *rec, char *err, size_t errlen);


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

    /*
     * Records the gateway could not write: every record with "lost" > 0
     * is a place of loss.  lost and nlost add up; the others describe
     * the latest place (nlost grows by one per place found).
     */
    uint64_t                    lost;       /* records, in all */
    uint64_t                    nlost;      /* places */
    const char                 *lost_file;  /* the record saying "lost" */
    uint64_t                    lost_line;
    uint64_t                    lost_seq;
    uint64_t                    lost_count;
    const char                 *torn_file;  /* an incomplete line right */
    uint64_t                    torn_line;  /* before it; 0: none */

    /* an incomplete line (a write that failed part-way) waiting for the
     * line after it: a record that continues the chain and says "lost"
     * accounts for it, anything else makes it a break */
    unsigned                    torn:1;
    const char                 *tfile;
    uint64_t                    tline;
    char                        twhat[256];

    dg_audit_seen_t            *ring;       /* DG_AUDIT_WINDOW entries */
    uint64_t                    nring;

    dg_audit_md_t               md;         /* the digests it checks with */
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
/* after the last line of the last file: an incomplete line nothing
 * accounted for becomes the break; returns v->broken */
int dg_audit_verify_end(dg_audit_verify_t *v);

#endif /* DG_AUDIT_H */
