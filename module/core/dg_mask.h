/*
 * datagate core: streaming JSON response-field masker.
 *
 * Plain C, no nginx headers.  A rule set (dg_mask_rules_t) is compiled once
 * per dataset/grant at policy load and is immutable afterwards; a stream
 * (dg_mask_t) is created per response in caller-provided memory and is fed
 * buffers of any size and any split.  Untouched bytes are emitted unchanged
 * (as pointers into the input where possible); only the values of selected
 * fields are rewritten.
 *
 * What it does, beyond the calls below:
 * - Selectors: "key" matches that decoded key anywhere; "a.b", "data[].x",
 *   "$.a", "[].x" match from the root ("[]" = any element).  A path ending
 *   in "[]" is refused (select the array by its key).  A path match wins
 *   over a key-anywhere match; among equal selectors the first one wins.
 * - A classified member: field_hits[i] counts members matched by field i
 *   (whatever the action).  clear: the value passes and is "listed" (no
 *   detect, no allow-list drop inside it; selectors still apply inside).
 *   drop: member removed.  Other methods: every scalar of the value is
 *   masked: strings on their decoded text, numbers on their text (result
 *   is a string), null stays null, true/false become "***" (null for the
 *   null method); keys inside the value are scanned by detect (whatever
 *   DG_MASK_DETECT says) and otherwise pass unchanged.
 * - Allow-list (DG_MASK_UNLISTED_DROP): an unmatched member goes whole,
 *   key and value (a comma with it), unless its value is an object or
 *   array and its key is a step of a path selector at that place or a
 *   container (dg_mask_rules_compile_ex(), DG_MASK_F_WALK): that one is
 *   kept and walked.  A scalar element of an array walked goes too (with
 *   a comma); objects and arrays there are kept and walked.  Each removal
 *   is counted in dropped.  A scalar document (the whole body is "abc" or
 *   42) becomes null.  Without the flag an unmatched member with a scalar
 *   value is counted in unlisted.  None of this applies inside a listed
 *   (clear) or masked value.
 * - Dropping: when the members (elements) dropped are the first of their
 *   container, the comma before the next one kept goes, and so does the
 *   whitespace after that comma; other whitespace stays.
 * - Detect (DG_MASK_DETECT): strings (object members, array elements, a
 *   top-level string), keys and numbers that are digits alone, outside
 *   classified and listed values, are scanned for candidates (see
 *   dg_det_char(): digits in groups, country codes, full-width digits,
 *   \uXXXX escapes decoded; 18-character [0-9A-Z] runs) that validate
 *   (dg_mask_detect_groups(), dg_mask_detect_kind()); a hit is replaced
 *   by conf->detect[kind] applied to its digits (CLEAR there means the
 *   kind's default: id_card, phone, bank_card, keep(6,4)), separators
 *   kept in place when the result has one character per digit; null/drop
 *   inside a text give "***".  A number that is a hit (digits alone, or
 *   with a fraction of zeros: 13877112345.0, as spreadsheets write them)
 *   becomes a string.
 *   A key that may hold a hit is written by dg_mask_member_emit_kdet()
 *   (scanned whole: it is held anyway) instead of passed by reference.
 *   Memory stays bounded: at most DG_DET_WIN characters are kept, and
 *   DG_DET_NUMBER bytes of a number.
 * - Limits: a held member prefix (separators + key) longer than max_value
 *   + 4 KiB, a key longer than max_value or a masked value (decoded)
 *   longer than max_value is DG_MASK_E_TOOBIG; nothing else is buffered.
 *   Keys inside dropped or masked values are not held and not limited.
 * - UTF-8 of masked values is validated (invalid or an unpaired surrogate
 *   escape: DG_MASK_E_UTF8); untouched strings are passed as they are.
 */

#ifndef DG_MASK_H
#define DG_MASK_H

#include <stddef.h>
#include <stdint.h>


/*
 * The masking methods.  What each writes (its name, parameters and the
 * characters it keeps) is its row of dg_mask_methods[] in
 * dg_mask_method.c, the one place it is written.
 */
typedef enum {
    DG_MASK_CLEAR = 0,          /* shown as is (listed, not masked) */
    DG_MASK_ID_CARD,
    DG_MASK_PHONE,
    DG_MASK_NAME,
    DG_MASK_BANK_CARD,
    DG_MASK_EMAIL,
    DG_MASK_ADDRESS,            /* address(a) */
    DG_MASK_KEEP,               /* keep(a,b) */
    DG_MASK_LANDLINE,
    DG_MASK_PLATE,
    DG_MASK_IPV4,
    DG_MASK_DATE_YEAR,
    DG_MASK_HASH,               /* HMAC-SHA-256 pseudonym (hex) */
    DG_MASK_REDACT,
    DG_MASK_NULL,
    DG_MASK_DROP,               /* key and value removed */
    DG_MASK_METHOD_MAX
} dg_mask_method_e;


typedef struct {
    uint8_t                     method;     /* dg_mask_method_e */
    uint8_t                     a;          /* keep(a,b), address(a) */
    uint8_t                     b;
    uint8_t                     row;        /* DG_MASK_ROW_* (an action of
                                               a field; 0 elsewhere) */
} dg_mask_spec_t;


/*
 * An action's row bits (row scoping, conf->rows): the field's key is a
 * step or the end of a rows path (dg_mask_rows_compile()), so its member
 * is read for the record's scope; ROW_ONLY: the key is no field of the
 * dataset, and its member is otherwise treated as unselected (an object
 * or array under it is kept and walked in allow-list mode).
 */
#define DG_MASK_ROW_KEY         0x01
#define DG_MASK_ROW_ONLY        0x02


/* rule-set flags */
#define DG_MASK_UNLISTED_DROP   0x01    /* allow-list: an unlisted member
                                           goes whole (an object or array
                                           under a path step or a
                                           container is walked), a scalar
                                           element too; a scalar document
                                           becomes null */
#define DG_MASK_DETECT          0x02    /* content safety net: strings,
                                           numbers and keys */


/* detect kinds (safety net), described by dg_mask_detect_kinds[] */
enum {
    DG_DETECT_ID_NUMBER = 0,    /* 18-digit resident ID, MOD 11-2 */
    DG_DETECT_MOBILE,           /* mainland mobile, 11 digits */
    DG_DETECT_BANK_CARD,        /* 16-19 digits, Luhn */
    DG_DETECT_USCC,             /* 统一社会信用代码, GB 32100 */
    DG_DETECT_MAX
};


/*
 * The detect kinds, one row each (dg_mask_kinds.c): the one place where
 * what a kind is called, the policy class whose mask it takes and its
 * default method are written.  The gateway and datagate policy explain
 * read it (dg_policy_detect_specs()); policy/schema.md shows it.
 */
typedef struct {
    const char                 *name;       /* "mobile": audit "detected",
                                               metrics */
    const char                 *what;       /* "mobile number" */
    const char                 *class_id;   /* "person.phone": a policy
                                               class of that id (its mask,
                                               when not clear) */
    dg_mask_spec_t              mask;       /* the mask without one */
    int                       (*valid)(const uint8_t *r, size_t n);
                                            /* 1: the n characters at r
                                               (digits, capitals, X or x)
                                               are one of this kind */
} dg_mask_detect_kind_t;

extern const dg_mask_detect_kind_t  dg_mask_detect_kinds[DG_DETECT_MAX];


/* return codes */
#define DG_MASK_OK               0
#define DG_MASK_E_SYNTAX        -1      /* malformed JSON */
#define DG_MASK_E_DEPTH         -2      /* nesting deeper than max_depth */
#define DG_MASK_E_TOOBIG        -3      /* value/key larger than max_value */
#define DG_MASK_E_UTF8          -4      /* invalid UTF-8 in a masked value */
#define DG_MASK_E_TRUNCATED     -5      /* last buffer ends mid-document */
#define DG_MASK_E_EMIT          -6      /* emit callback failed */
#define DG_MASK_E_STATE         -7      /* fed after an error or after last */
#define DG_MASK_E_CONF          -8      /* bad configuration (hash, no key) */
#define DG_MASK_E_RECORD        -9      /* a record held for its scope is
                                           larger than max_value */
#define DG_MASK_E_RECORDS       -10     /* the records path leads to
                                           something else than an array
                                           (row scoping, record caps) */
#define DG_MASK_PAUSED          1       /* not an error: the allowance of
                                           records is spent, more may come
                                           (dg_mask_allow()); the span was
                                           taken up to dg_mask_taken() */


/* one field selector of a rule set */
typedef struct {
    const char                 *selector;   /* "idCard" (key anywhere) or a
                                               path "data[].idCard" */
    size_t                      len;
} dg_mask_field_t;


typedef struct dg_mask_rules_s  dg_mask_rules_t;
typedef struct dg_mask_rows_s   dg_mask_rows_t;
typedef struct dg_mask_s        dg_mask_t;


/*
 * Where the records of a document are (a rule set's records,
 * dg_mask_rules_build()):
 *
 *   NULL (auto)    the elements of a top-level array; in a top-level
 *                  object, the elements of the first array, under one of
 *                  its keys, whose first element is an object; a
 *                  top-level object without one is one record
 *   "$"            the document is one record
 *   "[]", "$[]"    the elements of the top-level array
 *   "data[]", "$.result.items[]"
 *                  the elements of the array at that path of object keys
 *                  (at most DG_MASK_REC_STEPS keys)
 *
 * Every record is counted (stats.records).  Row scoping and record caps
 * decide records one by one: they need a path or "$" (not auto).
 */
#define DG_MASK_REC_STEPS       8


/* one condition of row scoping: a record is in scope when the member at
 * field (a key of the record, or a path of keys "a.b") is present and
 * every occurrence of it matches one of the values: equal, or, a value
 * ending in '*', starting with what comes before the '*' ("*" alone:
 * any value) */
typedef struct {
    const char                 *field;
    size_t                      len;
    const dg_mask_field_t      *values;
    size_t                      nvalues;
} dg_mask_row_t;

#define DG_MASK_ROWS_MAX        32      /* conditions */
#define DG_MASK_ROWS_VALUE      256     /* bytes of a value compared */
#define DG_MASK_ROWS_VALUES     4096    /* values of one condition */
#define DG_MASK_ROWS_KEY        128     /* bytes of a key of a field */
#define DG_MASK_ROWS_NODES      255     /* keys of all fields */


/* per-stream configuration */
typedef struct {
    const dg_mask_rules_t      *rules;
    const dg_mask_spec_t       *actions;    /* one per rule field */
    dg_mask_spec_t              detect[DG_DETECT_MAX]; /* methods for hits */
    size_t                      max_value;  /* datagate_mask_buffer */
    unsigned                    max_depth;  /* nesting limit */
    const uint8_t              *hash_key;   /* key for DG_MASK_HASH */
    size_t                      hash_key_len;
    unsigned                    nosimd;     /* 1: scalar code only,
                                               whatever the CPU offers
                                               (tests, benchmarks); the
                                               output is the same */
    const dg_mask_rows_t       *rows;       /* row scoping, or NULL; its
                                               keys must be fields of the
                                               rules with DG_MASK_ROW_KEY
                                               actions */
    unsigned                    one;        /* records one by one without
                                               rows (record caps: a
                                               stream that dg_mask_allow()
                                               will limit) */
} dg_mask_conf_t;


typedef struct {
    uint64_t                   *field_hits; /* [nfields] values masked */
    uint64_t                    unlisted;   /* unknown scalar keys seen */
    uint64_t                    dropped;    /* keys / elements removed */
    uint64_t                    detect[DG_DETECT_MAX];
    uint64_t                    bytes_in;
    uint64_t                    bytes_out;
    uint64_t                    records;    /* records sent */
    uint64_t                    rows_dropped; /* out of scope (or too
                                               large to decide), removed */
    uint64_t                    records_cut; /* removed: no allowance */
    unsigned                    out_of_scope:1; /* the document, one
                                               record ("$"), is out of
                                               scope: nothing was sent */
    unsigned                    cut:1;      /* records_cut, or a record
                                               was refused one */
} dg_mask_stats_t;


/* emit: return 0 on success, non-zero aborts the stream (DG_MASK_E_EMIT) */
typedef int (*dg_mask_emit_pt)(void *ctx, const uint8_t *p, size_t n);


/*
 * Direct output (dg_mask_feed_into): the owner lends the masker the memory
 * it writes to, so no output byte is copied twice.  lend(ctx, used, need,
 * &buf, &cap): the masker wrote used bytes at the start of the memory lent
 * last (0: none, or nothing written); those bytes are the owner's now and
 * that memory is no longer the masker's.  need 0: the feed is over, lend
 * nothing.  Otherwise lend *buf with *cap >= need bytes (need is at most
 * DG_MASK_LEND_NEED); the masker writes there until the next call.
 * Return 0 on success, non-zero aborts the stream (DG_MASK_E_EMIT).
 */
typedef int (*dg_mask_lend_pt)(void *ctx, size_t used, size_t need,
    uint8_t **buf, size_t *cap);

#define DG_MASK_LEND_NEED       4096


/*
 * Compile a rule set.  Returns NULL and fills err on a bad selector.
 * The rule set copies what it needs; fields may be freed afterwards.
 * dg_mask_rules_compile_ex() also takes containers: selectors (same
 * syntax) of keys whose object or array value allow-list mode keeps and
 * walks; they select no field and are not counted in nfields.
 */
dg_mask_rules_t *dg_mask_rules_compile(const dg_mask_field_t *fields,
    size_t nfields, unsigned flags, char *err, size_t errlen);
dg_mask_rules_t *dg_mask_rules_compile_ex(const dg_mask_field_t *fields,
    size_t nfields, const dg_mask_field_t *walk, size_t nwalk,
    unsigned flags, char *err, size_t errlen);

/*
 * The same with where the records are: records (len bytes) as described
 * above (DG_MASK_REC_STEPS), NULL for auto.  Returns NULL and fills err
 * on a bad selector or records path.
 */
typedef struct {
    const dg_mask_field_t      *fields;
    size_t                      nfields;
    const dg_mask_field_t      *walk;       /* containers */
    size_t                      nwalk;
    const char                 *records;    /* NULL: auto */
    size_t                      records_len;
    unsigned                    flags;
} dg_mask_rules_in_t;

dg_mask_rules_t *dg_mask_rules_build(const dg_mask_rules_in_t *in,
    char *err, size_t errlen);
/* where the rule set's records are */
#define DG_MASK_RECORDS_FOUND   0       /* auto: found in the document */
#define DG_MASK_RECORDS_ONE     1       /* "$": the document is one */
#define DG_MASK_RECORDS_PATH    2       /* "data[]", "[]", ... */

int dg_mask_rules_records(const dg_mask_rules_t *rules);

/*
 * Row scoping (dg_mask_rec.c): n conditions (all must hold) compiled;
 * NULL and err on a bad field or value (a '*' elsewhere than at the end,
 * an empty field or key, more than the DG_MASK_ROWS_* bounds).  The keys
 * on the fields' paths (dg_mask_rows_key()) must select fields of the
 * rule set used with it, whose actions carry DG_MASK_ROW_KEY.
 */
dg_mask_rows_t *dg_mask_rows_compile(const dg_mask_row_t *rows, size_t n,
    char *err, size_t errlen);
void dg_mask_rows_free(dg_mask_rows_t *rows);
/* the i-th distinct key of the fields' paths (NULL past the last) */
const char *dg_mask_rows_key(const dg_mask_rows_t *rows, size_t i,
    size_t *len, int *last);
/*
 * The fields a rule set needs for rows: flags[i] (n selectors) gets
 * DG_MASK_ROW_KEY when the key selector i ends in is a key of a rows
 * path; the keys that no key-anywhere selector names need a field of
 * their own (action DG_MASK_CLEAR, row DG_MASK_ROW_KEY |
 * DG_MASK_ROW_ONLY): written to extra (max of them), their number
 * returned.
 */
size_t dg_mask_rows_fields(const dg_mask_rows_t *rows,
    const dg_mask_field_t *sel, size_t n, uint8_t *flags,
    dg_mask_field_t *extra, size_t max);
/* a value as the gateway compares it: 1 when v (len bytes) matches one
 * of the values of condition i */
int dg_mask_rows_match(const dg_mask_rows_t *rows, size_t i,
    const uint8_t *v, size_t len);

void dg_mask_rules_free(dg_mask_rules_t *rules);
size_t dg_mask_rules_nfields(const dg_mask_rules_t *rules);

/* memory a stream needs (includes the value buffer of max_value bytes) */
size_t dg_mask_size(const dg_mask_conf_t *conf);

/* initialise a stream in mem (dg_mask_size() bytes, 16-byte aligned) */
dg_mask_t *dg_mask_init(void *mem, const dg_mask_conf_t *conf);

/*
 * Initialise again, for the next document, a stream that dg_mask_init()
 * or dg_mask_reinit() returned, in memory of at least dg_mask_size(conf)
 * bytes (the caller's to check when conf changed).  The output is the
 * same as after dg_mask_init(); with the same rules as before, the keys
 * the last documents looked up are still known, which spares the first
 * record of the next document its lookups.  Whatever the previous
 * document left (an error, a stream cut short) is forgotten.
 */
dg_mask_t *dg_mask_reinit(dg_mask_t *m, const dg_mask_conf_t *conf);

/*
 * Feed the next input span; last != 0 on the final one (may be empty).
 * Every output byte goes through emit.  Returns DG_MASK_OK or an error;
 * after an error the stream refuses further input.
 */
int dg_mask_feed(dg_mask_t *m, const uint8_t *p, size_t n, int last,
    dg_mask_emit_pt emit, void *ctx);

/*
 * dg_mask_feed writing into memory lent by lend (see dg_mask_lend_pt);
 * every output byte is handed over by a call of lend: at the end of a
 * feed, what was written since the last call goes with need 0 (no call
 * when nothing was), so between feeds the masker holds none of the
 * owner's memory.  After an error, what was written since the last call
 * is not handed over.  Feeds with emit and with lend may alternate.
 */
int dg_mask_feed_into(dg_mask_t *m, const uint8_t *p, size_t n, int last,
    dg_mask_lend_pt lend, void *ctx);

const dg_mask_stats_t *dg_mask_stats(const dg_mask_t *m);

/*
 * Record allowance: a stream with conf->one starts with none, others
 * without limit; records are sent while there is some, one taken per
 * record sent (in a stream that decides records one by one: conf->one
 * or rows).  n more
 * records may be sent; last: no more will ever come, so that past them
 * the remaining records are removed (records_cut) instead of waiting.
 * n == UINT64_MAX: no limit.  A feed that reaches a record with no
 * allowance and more to come returns DG_MASK_PAUSED: what it took of its
 * span (dg_mask_taken()) is done, the rest must be fed again after
 * dg_mask_allow().
 */
void dg_mask_allow(dg_mask_t *m, uint64_t n, int last);
uint64_t dg_mask_allowance(const dg_mask_t *m);
size_t dg_mask_taken(const dg_mask_t *m);
const char *dg_mask_strerror(int rc);

/* apply one method to one decoded value (UTF-8); used by feed and tests.
 * Writes the JSON token (quoted string, or null) to out; returns its length
 * or a negative error.  outcap >= 6 * len + 96 always suffices (a kept
 * control character is written as a 6-byte \u00XX escape); DG_MASK_DROP
 * writes nothing and returns 0. */
int dg_mask_value(const dg_mask_spec_t *spec, const uint8_t *v, size_t len,
    const uint8_t *hash_key, size_t hash_key_len, uint8_t *out,
    size_t outcap);

/*
 * The stream's safety net on one whole text (a key, or a string's
 * contents, held whole): hits (the forms detect reads in a stream, with
 * the same rules) are masked with detect[kind]
 * (NULL, or a CLEAR entry: the kind's default method), everything else
 * is copied unchanged.  flags: DG_MASK_TEXT_JSON when s is the contents
 * of a JSON string (escapes decoded to match, written back as they
 * were), else plain bytes (quotes and backslashes are characters).
 * Returns the output length (len and a copy of s when nothing hit) or a
 * negative error: DG_MASK_E_TOOBIG (outcap too small; 3 * len + 64
 * always suffices), DG_MASK_E_SYNTAX (a bad escape in JSON text),
 * DG_MASK_E_CONF.  hits (NULL: not counted) is added to per kind.
 */
#define DG_MASK_TEXT_JSON       0x01

int dg_mask_detect_text(const dg_mask_spec_t *detect,
    const uint8_t *hash_key, size_t hash_key_len, const uint8_t *s,
    size_t len, unsigned flags, uint8_t *out, size_t outcap, uint64_t *hits);

/*
 * The safety net on one text, such as a response header value
 * (dg_mask_text.c): resident IDs, mobiles, bank cards and credit codes,
 * also percent-encoded (repeatedly), as \uXXXX, %uXXXX or &#NN; escapes,
 * in full-width digits or in groups joined by spaces, '-', '+' or '.', are
 * masked in place with conf->detect[kind] (a CLEAR method, or hash without a
 * key, means the kind's default); conf->rules and actions are not used.
 * work: dg_mask_text_work(len) bytes, aligned for a pointer; out:
 * dg_mask_text_outcap(len) bytes.  Returns the number of hits, each also
 * added to hits[kind] (hits may be NULL): 0 leaves out unwritten,
 * otherwise the masked text is out[0..*outlen).  A negative DG_MASK_E_*
 * on an error (a text longer than DG_MASK_TEXT_MAX: DG_MASK_E_TOOBIG).
 */
#define DG_MASK_TEXT_MAX        (1024 * 1024)

size_t dg_mask_text_work(size_t len);
size_t dg_mask_text_outcap(size_t len);
/* 0: v cannot hold a hit (dg_mask_text() would return 0 at once) */
int dg_mask_text_candidate(const uint8_t *v, size_t len);
int dg_mask_text(const dg_mask_conf_t *conf, const uint8_t *v, size_t len,
    void *work, uint8_t *out, size_t *outlen, uint64_t *hits);

/* method name <-> spec, for the policy loader: "keep(3,4)", "address(8)";
 * dg_mask_spec_str() writes a spec as the policy would (into buf, which
 * it returns; "?" for no method) */
int dg_mask_spec_parse(const char *s, size_t len, dg_mask_spec_t *spec);
const char *dg_mask_spec_str(const dg_mask_spec_t *spec, char *buf,
    size_t len);
const char *dg_mask_method_name(unsigned method);

/* every method as the policy may write it, "clear, id_card, ...,
 * address(N), keep(A,B), ...", into buf (DG_MASK_METHODS_LEN bytes
 * suffice), which it returns */
#define DG_MASK_METHODS_LEN     256

const char *dg_mask_methods_str(char *buf, size_t len);

#endif /* DG_MASK_H */
