/*
 * datagate core: private helpers of the policy compiler (not a public API).
 *
 * An arena allocator, a small chained hash table, and a YAML document tree
 * built from libyaml events with strict limits (no aliases, anchors or tags,
 * bounded depth and node count, duplicate keys rejected).
 */

#ifndef DG_UTIL_H
#define DG_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "dg_policy.h"


#define DG_POLICY_MAX_FILE      (16 * 1024 * 1024)  /* bytes per file */
#define DG_POLICY_MAX_FILES     1024
#define DG_YAML_MAX_DEPTH       32
#define DG_YAML_MAX_NODES       1000000             /* per load */
#define DG_ARENA_MAX            (512 * 1024 * 1024)


/* arena */

typedef struct dg_arena_chunk_s  dg_arena_chunk_t;

typedef struct {
    dg_arena_chunk_t           *chunks;
    size_t                      total;
    size_t                      limit;      /* 0: DG_ARENA_MAX */
} dg_arena_t;

void *dg_arena_alloc(dg_arena_t *a, size_t n);          /* zeroed */
void *dg_arena_array(dg_arena_t *a, size_t n, size_t size);
char *dg_arena_strndup(dg_arena_t *a, const char *s, size_t len);
void dg_arena_free(dg_arena_t *a);


/* hash table: fixed capacity, duplicates allowed, chained */

#define DG_HASH_NONE            UINT32_MAX

typedef struct {
    const void                 *key;
    size_t                      len;
    const void                 *val;
    uint32_t                    hash;
    uint32_t                    next;
} dg_hent_t;

typedef struct {
    uint32_t                   *buckets;
    uint32_t                    mask;
    dg_hent_t                  *ents;
    uint32_t                    n;
    uint32_t                    cap;
} dg_hash_t;

uint32_t dg_hash_bytes(const void *p, size_t len);
int dg_hash_init(dg_hash_t *h, dg_arena_t *a, size_t cap);
int dg_hash_add(dg_hash_t *h, const void *key, size_t len, const void *val);
const dg_hent_t *dg_hash_find(const dg_hash_t *h, const void *key,
    size_t len);
const dg_hent_t *dg_hash_next(const dg_hash_t *h, const dg_hent_t *e);


/* YAML tree */

#define DG_Y_SCALAR             1
#define DG_Y_SEQ                2
#define DG_Y_MAP                3

typedef struct dg_ynode_s  dg_ynode_t;

struct dg_ynode_s {
    dg_ynode_t                 *next;       /* sibling */
    dg_ynode_t                 *child;      /* first item; maps: key, value,
                                               key, value, ... */
    dg_ynode_t                 *last;
    const char                 *str;        /* scalar, NUL-terminated */
    size_t                      len;
    uint32_t                    line;       /* 1-based */
    uint32_t                    n;          /* children */
    uint8_t                     type;
    uint8_t                     plain;      /* plain (unquoted) scalar */
};

/*
 * Parse one YAML document into a tree allocated in a.  *budget is the
 * number of nodes still allowed; it is decreased.  On error returns NULL
 * and writes "NAME:LINE: yaml: message" into err.
 */
dg_ynode_t *dg_yaml_parse(dg_arena_t *a, const char *name, const char *data,
    size_t len, size_t *budget, char *err, size_t errlen);

/* value of key in a mapping node, or NULL */
dg_ynode_t *dg_ymap_get(const dg_ynode_t *map, const char *key);

const char *dg_ytype_name(const dg_ynode_t *n);

/* first invalid UTF-8 byte offset, or len when valid */
size_t dg_utf8_check(const uint8_t *p, size_t len);


/* private part of a compiled policy */

typedef struct {
    dg_arena_t                  arena;
    dg_hash_t                   consumers;
    dg_hash_t                   datasets;
    dg_hash_t                   purposes;
    dg_hash_t                   classes;
    dg_hash_t                   by_fingerprint;
    dg_hash_t                   by_serial;
    dg_hash_t                   by_subject;
    dg_hash_t                   by_san;
    dg_hash_t                   grants_by_cd;   /* (consumer, dataset) */
    dg_mask_rules_t           **rules;          /* owned rule sets */
    size_t                      nrules;
    size_t                      rules_cap;
    dg_mask_rows_t            **rows;           /* owned row scopings */
    size_t                      nrows;
    size_t                      rows_cap;
} dg_policy_priv_t;


/* key of grants_by_cd */
typedef struct {
    uint32_t                    consumer;
    uint32_t                    dataset;
} dg_cd_key_t;


/* shared by the policy loader and dg_decide.c */
int dg_date_parse(const char *s, size_t len, int *y, int *m, int *d);
time_t dg_date_start(int y, int m, int d);  /* 00:00:00 UTC+8 */
void dg_date_format(time_t t, char buf[11]);  /* YYYY-MM-DD in UTC+8 */

/*
 * a certificate serial as OpenSSL prints it ("-5A5A", "0x1f", "00:0A:bc",
 * "(Negative)5a:5a") -> sign and upper-case hex without leading zeros
 * ("-5A5A", "1F", "ABC"); the one form of a serial in the policy, Redis
 * keys, the command line and the audit record.  0: invalid
 */
#define DG_SERIAL_NEGATIVE      "(Negative)"
size_t dg_serial_normalize(const char *s, size_t len, char *out,
    size_t outcap);

#endif /* DG_UTIL_H */
