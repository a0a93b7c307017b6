/*
 * datagate core: streaming JSON response-field masker.
 *
 * Plain C, no nginx headers.  A rule set (dg_mask_rules_t) is compiled once
 * per dataset/grant at policy load and is immutable afterwards; a stream
 * (dg_mask_t) is created per response in caller-provided memory and is fed
 * buffers of any size and any split.  Untouched bytes are emitted unchanged
 * (as pointers into the input where possible); only the values of selected
 * fields are rewritten.
 */

#ifndef DG_MASK_H
#define DG_MASK_H

#include <stddef.h>
#include <stdint.h>


/* masking methods, SPEC.md "Masking" */
typedef enum {
    DG_MASK_CLEAR = 0,          /* shown as is (listed, not masked) */
    DG_MASK_ID_CARD,            /* keep first 6, last 4 */
    DG_MASK_PHONE,              /* keep first 3, last 4 */
    DG_MASK_NAME,               /* keep first character */
    DG_MASK_BANK_CARD,          /* 12 '*' then the last 4 */
    DG_MASK_EMAIL,              /* first char of local part + "***@domain" */
    DG_MASK_ADDRESS,            /* keep first a (default 6) chars + "****" */
    DG_MASK_KEEP,               /* keep first a and last b chars */
    DG_MASK_LANDLINE,           /* 0771-5551234 -> 0771-*****34 */
    DG_MASK_PLATE,              /* 桂A12345 -> 桂A1***5 */
    DG_MASK_IPV4,               /* 10.2.3.4 -> 10.*.*.* */
    DG_MASK_DATE_YEAR,          /* 1990-03-07 -> 1990 */
    DG_MASK_HASH,               /* HMAC-SHA-256 pseudonym (hex) */
    DG_MASK_REDACT,             /* "***" */
    DG_MASK_NULL,               /* null */
    DG_MASK_DROP,               /* key and value removed */
    DG_MASK_METHOD_MAX
} dg_mask_method_e;


typedef struct {
    uint8_t                     method;     /* dg_mask_method_e */
    uint8_t                     a;          /* keep(a,b), address(a) */
    uint8_t                     b;
} dg_mask_spec_t;


/* rule-set flags */
#define DG_MASK_UNLISTED_DROP   0x01    /* allow-list: an unlisted member
                                           goes whole (an object or array
                                           under a path step or a
                                           container is walked), a scalar
                                           element too; a scalar document
                                           becomes null */
#define DG_MASK_DETECT          0x02    /* content safety net: strings,
                                           numbers and keys */


/* detect kinds (safety net) */
enum {
    DG_DETECT_ID_NUMBER = 0,    /* 18-digit resident ID, MOD 11-2 */
    DG_DETECT_MOBILE,           /* mainland mobile 1[3-9]x, 11 digits */
    DG_DETECT_BANK_CARD,        /* 16-19 digits, Luhn */
    DG_DETECT_USCC,             /* 统一社会信用代码, GB 32100 */
    DG_DETECT_MAX
};


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


/* one field selector of a rule set */
typedef struct {
    const char                 *selector;   /* "idCard" (key anywhere) or a
                                               path "data[].idCard" */
    size_t                      len;
} dg_mask_field_t;


typedef struct dg_mask_rules_s  dg_mask_rules_t;
typedef struct dg_mask_s        dg_mask_t;


/* per-stream configuration */
typedef struct {
    const dg_mask_rules_t      *rules;
    const dg_mask_spec_t       *actions;    /* one per rule field */
    dg_mask_spec_t              detect[DG_DETECT_MAX]; /* methods for hits */
    size_t                      max_value;  /* datagate_mask_buffer */
    unsigned                    max_depth;  /* nesting limit */
    const uint8_t              *hash_key;   /* key for DG_MASK_HASH */
    size_t                      hash_key_len;
} dg_mask_conf_t;


typedef struct {
    uint64_t                   *field_hits; /* [nfields] values masked */
    uint64_t                    unlisted;   /* unknown scalar keys seen */
    uint64_t                    dropped;    /* keys / elements removed */
    uint64_t                    detect[DG_DETECT_MAX];
    uint64_t                    bytes_in;
    uint64_t                    bytes_out;
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

/* method name <-> spec, for the policy loader: "keep(3,4)", "address(8)" */
int dg_mask_spec_parse(const char *s, size_t len, dg_mask_spec_t *spec);
const char *dg_mask_method_name(unsigned method);

#endif /* DG_MASK_H */
