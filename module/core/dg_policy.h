/*
 * datagate core: compiled policy and the decision function.
 *
 * Plain C, no nginx headers.  dg_policy_load() reads YAML (one file or a
 * directory of *.yaml / *.yml files, in name order), validates it strictly
 * and compiles it into one immutable structure.  Every error names the
 * file, line and field.  The content hash (SHA-256 over the files) is the
 * policy version.
 */

#ifndef DG_POLICY_H
#define DG_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/socket.h>

#include "dg_abuse.h"
#include "dg_crypto.h"
#include "dg_mask.h"


#define DG_LEVEL_MAX            4
#define DG_ERRLEN               512
#define DG_KEYID_MAX            64      /* authority key identifier, bytes */


typedef enum {
    DG_SHARE_NONE = 0,          /* 不予共享 */
    DG_SHARE_CONDITIONAL,       /* 有条件共享 */
    DG_SHARE_UNCONDITIONAL      /* 无条件共享 */
} dg_share_e;


/*
 * HTTP methods a dataset or grant may allow (bit set).  The seven known
 * methods have fixed bits; extension methods named in a policy's datasets
 * get a bit each from DG_METHOD_EXT_FIRST on, per policy (dg_policy_t
 * xmethods); any other method is DG_METHOD_OTHER, which nothing allows.
 */
#define DG_METHOD_GET           0x0001
#define DG_METHOD_HEAD          0x0002
#define DG_METHOD_POST          0x0004
#define DG_METHOD_PUT           0x0008
#define DG_METHOD_DELETE        0x0010
#define DG_METHOD_PATCH         0x0020
#define DG_METHOD_OPTIONS       0x0040
#define DG_METHOD_OTHER         0x8000
#define DG_METHOD_EXT_FIRST     0x00010000u
#define DG_METHOD_EXT_MAX       16          /* extension methods a policy
                                               may name */
#define DG_METHOD_NAME_MAX      32
#define DG_METHOD_DEFAULT       (DG_METHOD_GET | DG_METHOD_HEAD)


/* decision reasons; names are the JSON error codes (docs/reference.md) */
typedef enum {
    DG_R_OK = 0,
    DG_R_CLIENT_CERT_REQUIRED,  /* 401 */
    DG_R_UNKNOWN_CONSUMER,      /* 403 */
    DG_R_CERT_REVOKED,          /* 403 */
    DG_R_CONSUMER_SUSPENDED,    /* 403 */
    DG_R_NETWORK_DENIED,        /* 403 */
    DG_R_GEO_DENIED,            /* 403 */
    DG_R_DATASET_NOT_SHARED,    /* 403 */
    DG_R_DATASET_FROZEN,        /* 403 */
    DG_R_PURPOSE_REQUIRED,      /* 403 */
    DG_R_PURPOSE_UNKNOWN,       /* 403 */
    DG_R_PURPOSE_NOT_GRANTED,   /* 403 */
    DG_R_GRANT_EXPIRED,         /* 403 */
    DG_R_APPROVAL_REQUIRED,     /* 403 */
    DG_R_METHOD_NOT_GRANTED,    /* 403 */
    DG_R_LEVEL_EXCEEDED,        /* 403 */
    DG_R_RATE_LIMITED,          /* 429 */
    DG_R_POLICY_UNAVAILABLE,    /* 503 */
    DG_R_UPSTREAM_UNMASKABLE,   /* 502 */
    DG_R_INTERNAL,              /* 500 */
    DG_R_UPSTREAM_UNAVAILABLE,  /* 502 (also 503, 504 as nginx says) */
    DG_R_REQUEST_REJECTED,      /* 400 (nginx's own 4xx answer) */
    DG_R_AUDIT_UNAVAILABLE,     /* 503 */
    DG_R_CLIENT_CLOSED,         /* 499: never an answer; the record of an
                                   answer the client did not take whole */
    DG_R_MAX
} dg_reason_e;

const char *dg_reason_code(dg_reason_e r);      /* "purpose_not_granted" */
const char *dg_reason_message(dg_reason_e r);   /* human sentence */
int dg_reason_status(dg_reason_e r);            /* 403, 429, ... */


typedef struct {
    const char                 *data;
    size_t                      len;
} dg_str_t;


typedef struct {
    int                         family;     /* AF_INET / AF_INET6 */
    uint8_t                     addr[16];   /* network byte order */
    uint8_t                     mask[16];
} dg_cidr_t;


typedef struct {
    dg_str_t                    id;         /* "person.id_number" */
    unsigned                    level;      /* 1..4 */
    dg_mask_spec_t              mask;       /* default method */
    dg_str_t                    src_file;   /* where it is defined */
    unsigned                    src_line;
} dg_class_t;


typedef struct {
    dg_str_t                    id;
    dg_str_t                    name;
    dg_str_t                    src_file;   /* where it is defined */
    unsigned                    src_line;
} dg_purpose_t;


typedef struct {
    dg_str_t                    id;
    dg_str_t                    org;
    unsigned                    index;

    /* certificate matchers; every one that is set must match */
    dg_str_t                    subject;        /* canonical (dg_dn.h) */
    uint8_t                     fingerprint[DG_SHA256_LEN];
    unsigned                    has_fingerprint:1;
    dg_str_t                    serial;         /* sign and upper-case
                                                   hex, no leading zeros */
    dg_str_t                    san;            /* "URI:..." / "DNS:..." */
    dg_str_t                    issuer;         /* canonical (dg_dn.h) */
    uint8_t                     issuer_key_id[DG_KEYID_MAX];
    size_t                      issuer_key_id_len;  /* 0: not pinned */

    unsigned                    clearance;      /* 0..4 */
    dg_cidr_t                  *networks;       /* NULL: any address */
    size_t                      nnetworks;
    dg_str_t                   *countries;      /* ISO 3166-1 alpha-2 */
    size_t                      ncountries;
    dg_str_t                   *regions;        /* ISO 3166-2 / names */
    size_t                      nregions;
    dg_str_t                    src_file;       /* where it is defined */
    unsigned                    src_line;
} dg_consumer_t;


/* what a dataset or grant does to the response body */
typedef struct {
    const dg_mask_rules_t      *rules;      /* NULL: body passes as is */
    const dg_mask_spec_t       *actions;    /* [dg_mask_rules_nfields()] */
    const int                  *classes;    /* class index per field, -1 */
    size_t                      nfields;
    unsigned                    masks:1;    /* the body goes through the
                                               masker: some action is not
                                               CLEAR, unlisted drop, detect,
                                               or the dataset lists fields
                                               (count-only when all is
                                               clear) */
} dg_plan_t;


typedef struct {
    dg_str_t                    key;        /* selector: "id_card",
                                               "data[].idCard" */
    int                         cls;        /* index into classes */
} dg_field_t;


typedef struct {
    double                      rate;       /* requests per second, 0: none */
    unsigned                    burst;
    uint64_t                    quota;      /* per period, 0: none */
    unsigned                    quota_period; /* seconds: 60, 3600, 86400 */
} dg_limit_t;


typedef struct {
    dg_str_t                    id;
    dg_str_t                    name;
    dg_str_t                    provider;
    unsigned                    index;
    dg_share_e                  share;
    unsigned                    level;
    dg_field_t                 *fields;
    size_t                      nfields;
    dg_str_t                   *containers; /* selectors whose object or
                                               array allow-list mode walks */
    size_t                      ncontainers;
    unsigned                    unlisted_drop:1;
    unsigned                    detect:1;
    unsigned                    methods;    /* DG_METHOD_* bits allowed to
                                               anyone; default GET|HEAD */

    /* budget of each consumer whose request no grant limits ("rate",
     * "quota"); one per (consumer, dataset), apart from grant budgets */
    dg_limit_t                  limit;
    dg_str_t                    rate_str;   /* as written, or empty */
    dg_str_t                    quota_str;

    dg_str_t                   *headers;    /* "headers:": provider response
                                               headers passed besides the
                                               safe set (dg_header.h) */
    size_t                      nheaders;

    dg_abuse_conf_t             abuse;      /* "abuse:" (dg_abuse.h) */

    /* unconditional access: plan by consumer clearance 0..4 */
    dg_plan_t                   plan_by_clearance[DG_LEVEL_MAX + 1];
    dg_str_t                    src_file;   /* where it is defined */
    unsigned                    src_line;
} dg_dataset_t;


typedef struct {
    unsigned                    index;
    const dg_consumer_t        *consumer;
    const dg_dataset_t         *dataset;
    const dg_purpose_t        **purposes;
    size_t                      npurposes;
    dg_str_t                    approval;   /* empty: none needed */
    time_t                      valid_from; /* 0: no bound */
    time_t                      valid_until;/* inclusive end of that day,
                                               0: no bound */
    unsigned                    methods;    /* DG_METHOD_* bits, a subset of
                                               the dataset's; 0: the
                                               dataset's (dg_grant_methods) */
    dg_str_t                   *reveal;
    size_t                      nreveal;
    dg_str_t                   *drop;
    size_t                      ndrop;
    dg_limit_t                  limit;
    dg_abuse_conf_t             abuse;      /* "abuse:": in place of the
                                               dataset's; off: none */
    unsigned                    runtime:1;  /* issued at run time */
    dg_plan_t                   plan;       /* masking plan for this grant */
    dg_str_t                    rate_str;   /* as written, or empty */
    dg_str_t                    quota_str;
    dg_str_t                    src_file;   /* where it is defined */
    unsigned                    src_line;
} dg_grant_t;


typedef struct dg_policy_s {
    /* the policy version: SHA-256 of the content */
    uint8_t                     version[DG_SHA256_LEN];
    char                        version_hex[DG_SHA256_HEX_LEN + 1];
    dg_str_t                    level_names[DG_LEVEL_MAX + 1];

    dg_class_t                 *classes;
    size_t                      nclasses;
    dg_purpose_t               *purposes;
    size_t                      npurposes;
    dg_consumer_t              *consumers;
    size_t                      nconsumers;
    dg_dataset_t               *datasets;
    size_t                      ndatasets;
    dg_grant_t                 *grants;
    size_t                      ngrants;

    unsigned                    detect:1;       /* global default */

    /* extension methods named by datasets: xmethods[i] has the bit
     * DG_METHOD_EXT_FIRST << i */
    dg_str_t                    xmethods[DG_METHOD_EXT_MAX];
    size_t                      nxmethods;

    void                       *priv;           /* indexes, arena */
} dg_policy_t;


/* identity taken from a verified client certificate */
typedef struct {
    const uint8_t              *fingerprint;    /* DG_SHA256_LEN bytes, or
                                                   NULL */
    dg_str_t                    serial;         /* as OpenSSL prints it */
    dg_str_t                    subject;        /* canonical (dg_dn.h) */
    const dg_str_t             *sans;           /* "URI:..", "DNS:.." */
    size_t                      nsans;
    dg_str_t                    issuer;         /* canonical (dg_dn.h) */
    const uint8_t              *issuer_key_id;  /* authority key id, or
                                                   NULL */
    size_t                      issuer_key_id_len;
} dg_identity_t;


/* one request, as far as the policy is concerned */
typedef struct {
    const dg_consumer_t        *consumer;
    const dg_dataset_t         *dataset;
    dg_str_t                    purpose;        /* data == NULL: absent */
    dg_str_t                    approval;       /* data == NULL: absent */
    unsigned                    method;         /* DG_METHOD_* bits: the
                                                   request's method and any
                                                   override of it, each of
                                                   which must be allowed */
    time_t                      now;
    const dg_grant_t          **extra_grants;   /* run-time grants, or NULL */
    size_t                      nextra;
} dg_request_t;


typedef struct {
    dg_reason_e                 reason;
    const dg_purpose_t         *purpose;        /* NULL when unknown */
    const dg_grant_t           *grant;          /* the grant that allows
                                                   (conditional, or one
                                                   that applies on an
                                                   unconditional dataset);
                                                   on grant_expired,
                                                   approval_required and
                                                   method_not_granted the
                                                   grant that failed, NULL
                                                   when the dataset's
                                                   methods refused */
    const dg_plan_t            *plan;           /* when allowed */
    time_t                      expires;        /* decision valid until
                                                   (grant window end), 0 */
} dg_decision_t;


/* dg_policy_load.c, dg_policy_compile.c */

/*
 * Load and compile.  path: a file or a directory.  On error returns NULL
 * and writes "FILE:LINE: FIELD: message" into err.
 */
dg_policy_t *dg_policy_load(const char *path, char *err, size_t errlen);
/* the same from memory: one file called name (used by the fuzzer) */
dg_policy_t *dg_policy_load_buffer(const char *name, const char *data,
    size_t len, char *err, size_t errlen);
void dg_policy_free(dg_policy_t *p);


/* dg_policy_match.c */

/* lookups (hashed; NULL when absent) */
const dg_consumer_t *dg_policy_consumer(const dg_policy_t *p,
    const char *id, size_t len);
const dg_dataset_t *dg_policy_dataset(const dg_policy_t *p,
    const char *id, size_t len);
const dg_purpose_t *dg_policy_purpose(const dg_policy_t *p,
    const char *id, size_t len);

/* certificate -> consumer; NULL: unknown_consumer */
const dg_consumer_t *dg_policy_match_consumer(const dg_policy_t *p,
    const dg_identity_t *id);

/* network allow-list: 1 allowed, 0 denied */
int dg_consumer_network_ok(const dg_consumer_t *c, const struct sockaddr *sa);
/* geo rule: country/region may be NULL when unknown; 1 allowed, 0 denied */
int dg_consumer_geo_ok(const dg_consumer_t *c, const char *country,
    const char *region);

/* grants of the policy for (consumer, dataset), in policy order; returns
 * how many there are and stores up to max of them in out */
size_t dg_policy_grants(const dg_policy_t *p, const dg_consumer_t *c,
    const dg_dataset_t *d, const dg_grant_t **out, size_t max);


/* dg_decide.c */

/*
 * purpose, method, level, grants (window, approval, methods) -> decision
 * and plan.  policy/schema.md "How a request is decided" is the order.
 * Grant dates are calendar days in UTC+8 (China Standard Time): a grant
 * is valid from 00:00:00 of "from" to 23:59:59 of "until".  extra_grants
 * must have been compiled (dg_grant_compile) against this same policy.
 */
void dg_decide(const dg_policy_t *p, const dg_request_t *req,
    dg_decision_t *d);

/* the methods a grant allows: its own, or its dataset's */
unsigned dg_grant_methods(const dg_grant_t *g);


/* dg_grant.c */

/*
 * Compile a grant given as YAML text (one mapping, same schema as an
 * element of "grants:") against a loaded policy: used for run-time grants.
 * The result is freed with dg_grant_free().
 */
dg_grant_t *dg_grant_compile(const dg_policy_t *p, const char *yaml,
    size_t len, char *err, size_t errlen);
void dg_grant_free(dg_grant_t *g);


/* dg_policy_abuse.c */

/* the abuse detection of a request allowed under g (may be NULL) on ds:
 * the grant's "abuse:" when it has one, else the dataset's; NULL: none */
const dg_abuse_conf_t *dg_abuse_for(const dg_dataset_t *ds,
    const dg_grant_t *g);


/* dg_policy_value.c: the syntax of values */

/* method name -> DG_METHOD_* bit of the seven known methods, else
 * DG_METHOD_OTHER (names are case-sensitive, as in HTTP) */
unsigned dg_method_bit(const char *name, size_t len);

/* the same, with the extension methods of the policy p (may be NULL) */
unsigned dg_policy_method_bit(const dg_policy_t *p, const char *name,
    size_t len);

/* the name of one method bit (a known method's, or p's extension
 * method's; p may be NULL), its length in *len; NULL: no such method */
const char *dg_method_name(const dg_policy_t *p, unsigned bit, size_t *len);

/* "GET, HEAD, PROPFIND" of a bit set into buf; returns buf */
const char *dg_methods_str(const dg_policy_t *p, unsigned bits, char *buf,
    size_t cap);

/* parse "100r/s burst=50", "6000r/m", "100000/day" into a limit */
int dg_limit_parse_rate(const char *s, size_t len, dg_limit_t *l);
int dg_limit_parse_quota(const char *s, size_t len, dg_limit_t *l);

/* "AB:CD:.." or "abcd.." (64 hex digits) -> DG_SHA256_LEN bytes; 0 ok,
 * -1 bad */
int dg_fingerprint_parse(const char *s, size_t len,
    uint8_t out[DG_SHA256_LEN]);

/* a key identifier "AB:CD:..", "abcd..", with or without "keyid:", as
 * openssl x509 -text prints it -> bytes; the length, 0 when bad */
size_t dg_keyid_parse(const char *s, size_t len, uint8_t *out, size_t cap);


/* dg_policy_detect.c */

/*
 * The safety net's method for each detect kind under policy p (may be
 * NULL): the mask of p's class of dg_mask_detect_kinds[k].class_id unless
 * it is clear, else the kind's own mask.  cls (may be NULL) gets the
 * index of that class in p->classes, or -1 when p has none.
 */
void dg_policy_detect_specs(const dg_policy_t *p, dg_mask_spec_t *detect,
    int *cls);

#endif /* DG_POLICY_H */
