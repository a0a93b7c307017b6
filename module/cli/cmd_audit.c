/*
 * datagate audit verify FILE...: check the hash chains of audit logs,
 * their MACs with a key, and the checkpoints the gateways published.
 */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "datagate.h"
#include "dg_audit.h"
#include "dg_rstate.h"


static const char  dg_audit_usage[] =
"Usage: datagate audit verify [--key FILE] [--redis HOST:PORT [--node NAME]]\n"
"                             [--checkpoints FILE] [--head HASH] [--quiet]\n"
"                             FILE...\n"
"\n"
"Check the hash chains of datagate audit logs (datagate_audit_log).\n"
"\n"
"Give the files in the order they were written, oldest first, e.g.\n"
"  datagate audit verify audit.log.2 audit.log.1 audit.log\n"
"Each worker writes its own chain (\"chain\"); the records of every chain\n"
"must follow each other with the next sequence number and the hash of\n"
"the chain's record before, across files.  A chain's first record in\n"
"these files may continue an older file that is not given, or start the\n"
"chain (seq 1) from the last record of the file at a restart.\n"
"\n"
"The first record that is edited, removed, inserted, reordered or\n"
"damaged is reported as FILE:LINE with what is wrong with it, e.g.\n"
"  audit.log:1042: chain 1765-0: record edited: seq 5120 does not match\n"
"  its hash\n"
"\n"
"Records the gateway could not write (disk full, file removed, ...) are\n"
"counted in the next record of their chain (\"lost\"); every such place\n"
"is reported, and the chains of the records written are still checked.\n"
"A line left incomplete by a write that failed part-way, followed by\n"
"the record that counts it, is reported with that place.  Lines a\n"
"gateway blanked (\"{ }\": a record cut when a worker was killed while\n"
"writing, and written again in full) are counted, not a break.\n"
"\n"
"A chain alone cannot show that records were cut from its end, nor a\n"
"chain rewritten by someone who recomputes every hash.  Against the\n"
"first, give the checkpoints the gateways published (--redis,\n"
"--checkpoints) or a head (--head); against the second, the key the\n"
"records were sealed with (--key).\n"
"\n"
"Options:\n"
"  --key FILE          the secret of datagate_audit_log key=: every\n"
"                      record's MAC must hold (forward-secure keys)\n"
"  --redis HOST:PORT   read the checkpoints (datagate:audit:NODE lists)\n"
"  --node NAME         only this node's list (default: every node)\n"
"  --checkpoints FILE  checkpoints from a file: nginx's error log (the\n"
"                      \"audit checkpoint\" lines) or JSON lines\n"
"  --head HASH         the record with this hash must be the last of its\n"
"                      chain (64 hex digits)\n"
"  -q, --quiet         print nothing when the chains hold\n"
"  -h, --help          this text\n"
"\n"
"The chain hash and the MAC are defined in docs/audit.md (SHA-256, or SM3\n"
"for logs written with hash=sm3; each record names its algorithm).\n"
"\n"
"Exit status:\n"
"  0  the chains hold and no record was lost\n"
"  1  a chain is broken (the first break is reported), records were\n"
"     lost, or cut from the end (a checkpoint or --head says so)\n"
"  2  usage error\n"
"  3  a file, the key or Redis cannot be read\n";


/* loss places printed one by one; beyond that only counted */
#define DG_AUDIT_LOST_PRINT     100

/* what a key file may hold, as datagate_secret */
#define DG_AUDIT_KEY_FILE_MAX   4096
#define DG_AUDIT_KEY_KEEP       64      /* longer: its SHA-256 */
#define DG_AUDIT_KEY_MIN        32

#define DG_AUDIT_CP_PREFIX      "datagate:audit:"
#define DG_AUDIT_REDIS_TIMEOUT  2000    /* ms */


typedef struct {
    int                         quiet;
    const char                 *head;
    char                        headbuf[DG_AUDIT_HEXLEN + 1];
    const char                 *key;
    const char                 *redis;
    const char                 *node;
    const char                 *checkpoints;
} dg_vopts_t;


static int dg_audit_verify_cmd(int argc, char **argv);
static int dg_audit_read(dg_audit_verify_t *v, const char *name,
    char *buf, size_t cap);
static void dg_audit_print_lost(dg_audit_verify_t *v);
static int dg_audit_read_key(dg_audit_verify_t *v, const char *path);
static int dg_audit_cp_line(dg_audit_verify_t *v, const char *line,
    size_t len, const char *from);
static int dg_audit_cp_file(dg_audit_verify_t *v, const char *path);
static int dg_audit_cp_redis(dg_audit_verify_t *v, const char *addr,
    const char *node);
static int dg_audit_report(dg_audit_verify_t *v, dg_vopts_t *o,
    int nfiles);


int
dg_cmd_audit(int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "audit") == 0) {
        argc--;
        argv++;
    }

    if (argc == 0) {
        fputs(dg_audit_usage, stderr);
        return DG_EXIT_USAGE;
    }

    if (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0
        || strcmp(argv[0], "help") == 0)
    {
        fputs(dg_audit_usage, stdout);
        return DG_EXIT_OK;
    }

    if (strcmp(argv[0], "verify") == 0) {
        return dg_audit_verify_cmd(argc - 1, argv + 1);
    }

    fprintf(stderr, "datagate audit: unknown command \"%s\"\n\n", argv[0]);
    fputs(dg_audit_usage, stderr);

    return DG_EXIT_USAGE;
}


/* --name VALUE or --name=VALUE; NULL: not this option */
static const char *
dg_audit_opt(const char *name, int argc, char **argv, int *i, int *bad)
{
    size_t  n;

    n = strlen(name);

    if (strncmp(argv[*i], name, n) != 0) {
        return NULL;
    }

    if (argv[*i][n] == '=') {
        return argv[*i] + n + 1;
    }

    if (argv[*i][n] != '\0') {
        return NULL;
    }

    if (*i + 1 >= argc) {
        fprintf(stderr, "datagate audit verify: %s needs a value\n", name);
        *bad = 1;
        return NULL;
    }

    return argv[++*i];
}


static int
dg_audit_verify_cmd(int argc, char **argv)
{
    int                 i, k, nfiles, rc, bad;
    char               *buf, **files;
    const char         *val;
    dg_vopts_t          o;
    dg_audit_verify_t   v;

    memset(&o, 0, sizeof(dg_vopts_t));
    nfiles = 0;
    bad = 0;

    files = calloc(argc + 1, sizeof(char *));
    if (files == NULL) {
        fprintf(stderr, "datagate audit verify: out of memory\n");
        return DG_EXIT_RUNTIME;
    }

    for (i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(dg_audit_usage, stdout);
            free(files);
            return DG_EXIT_OK;
        }

        if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
            o.quiet = 1;
            continue;
        }

        if ((val = dg_audit_opt("--head", argc, argv, &i, &bad))) {
            if (strlen(val) != DG_AUDIT_HEXLEN
                || strspn(val, "0123456789abcdefABCDEF") != DG_AUDIT_HEXLEN)
            {
                fprintf(stderr, "datagate audit verify: --head needs the 64"
                        " hex digits of a record hash\n");
                free(files);
                return DG_EXIT_USAGE;
            }

            /* any case: records write lower case */
            for (k = 0; k < DG_AUDIT_HEXLEN; k++) {
                o.headbuf[k] = (char) tolower((unsigned char) val[k]);
            }

            o.head = o.headbuf;
            continue;
        }

        if ((val = dg_audit_opt("--key", argc, argv, &i, &bad))) {
            o.key = val;
            continue;
        }

        if ((val = dg_audit_opt("--redis", argc, argv, &i, &bad))) {
            o.redis = val;
            continue;
        }

        if ((val = dg_audit_opt("--node", argc, argv, &i, &bad))) {
            o.node = val;
            continue;
        }

        if ((val = dg_audit_opt("--checkpoints", argc, argv, &i, &bad))) {
            o.checkpoints = val;
            continue;
        }

        if (bad) {
            free(files);
            return DG_EXIT_USAGE;
        }

        if (strcmp(argv[i], "--") == 0) {
            for (i++; i < argc; i++) {
                files[nfiles++] = argv[i];
            }

            break;
        }

        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "datagate audit verify: unknown option \"%s\"\n"
                    "Try \"datagate audit verify --help\".\n", argv[i]);
            free(files);
            return DG_EXIT_USAGE;
        }

        files[nfiles++] = argv[i];
    }

    if (nfiles == 0) {
        fprintf(stderr, "datagate audit verify: no file given\n"
                "Try \"datagate audit verify --help\".\n");
        free(files);
        return DG_EXIT_USAGE;
    }

    if (o.node && o.redis == NULL) {
        fprintf(stderr, "datagate audit verify: --node goes with --redis\n");
        free(files);
        return DG_EXIT_USAGE;
    }

    buf = malloc(DG_AUDIT_MAX_LINE + 2);

    if (buf == NULL || dg_audit_verify_init(&v) != 0) {
        fprintf(stderr, "datagate audit verify: out of memory\n");
        free(buf);
        free(files);
        return DG_EXIT_RUNTIME;
    }

    rc = DG_EXIT_OK;

    if (o.head) {
        dg_audit_verify_head(&v, o.head);
    }

    if ((o.key && dg_audit_read_key(&v, o.key) != 0)
        || (o.checkpoints && dg_audit_cp_file(&v, o.checkpoints) != 0)
        || (o.redis && dg_audit_cp_redis(&v, o.redis, o.node) != 0))
    {
        rc = DG_EXIT_RUNTIME;
        goto done;
    }

    for (i = 0; i < nfiles; i++) {
        rc = dg_audit_read(&v, files[i], buf, DG_AUDIT_MAX_LINE + 2);
        if (rc != DG_EXIT_OK) {
            goto done;
        }
    }

    (void) dg_audit_verify_end(&v);

    rc = dg_audit_report(&v, &o, nfiles);

done:

    dg_audit_verify_free(&v);
    free(buf);
    free(files);

    return rc;
}


/* what the files showed; the exit status */
static int
dg_audit_report(dg_audit_verify_t *v, dg_vopts_t *o, int nfiles)
{
    int                       fail;
    uint32_t                  i;
    const char               *alg;
    dg_audit_cpresult_t       cp;
    const dg_audit_vchain_t  *c, *hc;

    if (v->nlost > DG_AUDIT_LOST_PRINT) {
        printf("... and %" PRIu64 " more place(s) of lost records\n",
               v->nlost - DG_AUDIT_LOST_PRINT);
    }

    if (v->broken) {
        printf("%s:%" PRIu64 ": %s", v->bad_file, v->bad_line, v->what);

        if (v->kind == DG_AUDIT_BREAK_GAP) {
            if (v->found_file) {
                printf("; the record with seq %" PRIu64 " is at %s:%"
                       PRIu64 ": records reordered", v->want_seq,
                       v->found_file, v->found_line);

            } else {
                printf("; no record with seq %" PRIu64 " follows:"
                       " removed", v->want_seq);
            }
        }

        printf("\n");
        return DG_EXIT_FAIL;
    }

    fail = 0;

    /* --head: the record with that hash ends its chain */

    if (o->head && v->records == 0) {
        printf("no records, but a head was given\n");
        return DG_EXIT_FAIL;
    }

    if (o->head) {
        hc = (v->head_chain >= 0) ? &v->chains[v->head_chain] : NULL;

        if (hc == NULL && v->nchains == 1) {
            printf("%s:%" PRIu64 ": the last record (seq %" PRIu64 ") is not"
                   " the given head %.64s: records were removed from the"
                   " end, or a later file is missing\n", v->last_file,
                   v->last_line, v->last.seq, o->head);
            return DG_EXIT_FAIL;
        }

        if (hc == NULL) {
            printf("no record has the given head %.64s: records were removed"
                   " from the end of a chain, or a later file is missing\n",
                   o->head);
            return DG_EXIT_FAIL;
        }

        if (strncmp(hc->last.hash, o->head, DG_AUDIT_HEXLEN) != 0) {
            printf("%s:%" PRIu64 ": chain %s: the given head is not its"
                   " last record (seq %" PRIu64 ")\n", hc->last_file,
                   hc->last_line, hc->id[0] ? hc->id : "-", hc->last.seq);
            return DG_EXIT_FAIL;
        }
    }

    /* checkpoints: a chain that ends before one was cut */

    dg_audit_verify_checkpoints(v, &cp);

    if (cp.cut) {
        c = cp.cut_chain;
        printf("%s:%" PRIu64 ": chain %s ends at seq %" PRIu64 ", but a"
               " checkpoint (%s) names seq %" PRIu64 ": records were cut"
               " from the end of the chain\n", c->last_file, c->last_line,
               c->id, c->last.seq,
               cp.first_cut->from ? cp.first_cut->from : "checkpoint",
               cp.first_cut->seq);

        if (cp.cut > 1) {
            printf("... %u checkpoint(s) in all name records that are not"
                   " here\n", cp.cut);
        }

        fail = 1;
    }

    alg = dg_audit_alg_name(v->last.alg);

    if (v->lost) {
        printf("LOST: %" PRIu64 " record(s) could not be written (%" PRIu64
               " place%s); the %" PRIu64 " records written form %s: %d"
               " file%s", v->lost, v->nlost, v->nlost == 1 ? "" : "s",
               v->records, v->nchains == 1 ? "an unbroken chain"
                                           : "unbroken chains",
               nfiles, nfiles == 1 ? "" : "s");

        if (v->nchains == 1) {
            printf(", seq %" PRIu64 "..%" PRIu64, v->first.seq, v->last.seq);

        } else {
            printf(", %u chains", v->nchains);
        }

        printf(", %s\n", alg);
        printf("last:  %s:%" PRIu64 " seq %" PRIu64 " hash %s\n",
               v->last_file, v->last_line, v->last.seq, v->last.hash);
        fail = 1;

    } else if (fail) {
        /* said above */

    } else if (o->quiet) {
        return DG_EXIT_OK;

    } else if (v->records == 0) {
        printf("ok: %d file%s, no records\n", nfiles,
               nfiles == 1 ? "" : "s");

    } else if (v->nchains == 1) {
        c = &v->chains[0];
        printf("ok: %d file%s, %" PRIu64 " records, seq %" PRIu64 "..%"
               PRIu64 ", %s\n", nfiles, nfiles == 1 ? "" : "s",
               v->records, c->first.seq, c->last.seq, alg);

    } else {
        printf("ok: %d file%s, %" PRIu64 " records in %u chains, %s\n",
               nfiles, nfiles == 1 ? "" : "s", v->records, v->nchains, alg);
    }

    if (o->quiet && !fail) {
        return DG_EXIT_OK;
    }

    if (!o->quiet && v->records) {
        for (i = 0; i < v->nchains; i++) {
            c = &v->chains[i];

            if (c->id[0] || v->nchains > 1) {
                printf("chain %s: %" PRIu64 " records, seq %" PRIu64 "..%"
                       PRIu64 "\n", c->id[0] ? c->id : "-", c->records,
                       c->first.seq, c->last.seq);
            }

            printf("first: seq %" PRIu64 " prev %s", c->first.seq,
                   c->first.prev);

            if (strcmp(c->first.prev, dg_audit_genesis) == 0) {
                printf(" (start of the chain)\n");

            } else if (c->first.seq == 1 && c->from_line) {
                printf(" (starts from %s:%" PRIu64 ")\n", c->from_file,
                       c->from_line);

            } else if (c->first.seq == 1) {
                printf(" (starts from a record not in these files)\n");

            } else {
                printf(" (continues an older file)\n");
            }

            printf("last:  %s:%" PRIu64 " seq %" PRIu64 " hash %s\n",
                   c->last_file, c->last_line, c->last.seq, c->last.hash);
        }

        if (v->secret) {
            printf("keys: %" PRIu64 " MAC(s) checked with the key, every"
                   " record sealed with it\n", v->macs);
        }

        if (v->ncps) {
            printf("checkpoints: %u matched, %u older than these files,"
                   " %u of chains not in these files\n", cp.matched,
                   cp.older, cp.absent);
        }

        if (v->blanked) {
            printf("blanked: %" PRIu64 " line(s), the first at %s:%" PRIu64
                   ": records cut when a worker was killed while writing,"
                   " written again in full\n", v->blanked, v->blank_file,
                   v->blank_line);
        }
    }

    return fail ? DG_EXIT_FAIL : DG_EXIT_OK;
}


/* the secret of key=FILE, read as the gateway reads it */
static int
dg_audit_read_key(dg_audit_verify_t *v, const char *path)
{
    int       rc;
    char     *buf;
    size_t    n, len;
    uint8_t   key[DG_AUDIT_KEY_KEEP];

    buf = dg_read_file(path, DG_AUDIT_KEY_FILE_MAX, &n, 1);
    if (buf == NULL) {
        return -1;
    }

    len = dg_secret_len((const uint8_t *) buf, n);

    if (len < DG_AUDIT_KEY_MIN) {
        fprintf(stderr, "datagate audit verify: %s: a key file holds at"
                " least %d bytes\n", path, DG_AUDIT_KEY_MIN);
        OPENSSL_cleanse(buf, n);
        free(buf);
        return -1;
    }

    if (len > DG_AUDIT_KEY_KEEP) {
        /* as the gateway: a long key is its SHA-256 */
        if (EVP_Digest(buf, len, key, NULL, EVP_sha256(), NULL) != 1) {
            OPENSSL_cleanse(buf, n);
            free(buf);
            return -1;
        }

        len = SHA256_DIGEST_LENGTH;

    } else {
        memcpy(key, buf, len);
    }

    rc = dg_audit_verify_key(v, key, len);

    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(buf, n);
    free(buf);

    if (rc != 0) {
        fprintf(stderr, "datagate audit verify: out of memory\n");
    }

    return rc;
}


/* the value after name in s: skips ", :, spaces */
static const char *
dg_audit_cp_field(const char *s, size_t len, const char *name, size_t *vlen,
    const char *chars)
{
    const char  *p, *end, *v;
    size_t       n;

    n = strlen(name);
    end = s + len;

    for (p = s; p + n < end; p++) {
        if (memcmp(p, name, n) != 0 || (p > s && isalnum((unsigned char)
                                                         p[-1])))
        {
            continue;
        }

        v = p + n;

        while (v < end && (*v == '"' || *v == ':' || *v == ' ')) {
            v++;
        }

        *vlen = 0;

        while (v + *vlen < end && strchr(chars, v[*vlen]) != NULL
               && v[*vlen] != '\0')
        {
            (*vlen)++;
        }

        if (*vlen) {
            return v;
        }
    }

    return NULL;
}


/* one checkpoint: "chain X seq N hash H" (error log) or JSON */
static int
dg_audit_cp_line(dg_audit_verify_t *v, const char *line, size_t len,
    const char *from)
{
    size_t       clen, slen, hlen, i;
    uint64_t     seq;
    const char  *c, *s, *h;

    static const char  id[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
                              "vwxyz0123456789._-";

    c = dg_audit_cp_field(line, len, "chain", &clen, id);
    s = dg_audit_cp_field(line, len, "seq", &slen, "0123456789");
    h = dg_audit_cp_field(line, len, "hash", &hlen, "0123456789abcdef");

    if (c == NULL || s == NULL || h == NULL || hlen != DG_AUDIT_HEXLEN
        || clen > DG_AUDIT_CHAIN_MAX || slen > 19)
    {
        return 0;
    }

    seq = 0;

    for (i = 0; i < slen; i++) {
        seq = seq * 10 + (uint64_t) (s[i] - '0');
    }

    return dg_audit_verify_checkpoint(v, c, clen, seq, h, from) < 0 ? -1
                                                                     : 1;
}


static int
dg_audit_cp_file(dg_audit_verify_t *v, const char *path)
{
    int      n;
    FILE    *f;
    char     line[4096];

    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "datagate audit verify: %s: %s\n", path,
                strerror(errno));
        return -1;
    }

    n = 0;

    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "audit checkpoint") == NULL
            && strstr(line, "\"chain\"") == NULL)
        {
            continue;
        }

        if (dg_audit_cp_line(v, line, strlen(line), path) < 0) {
            fclose(f);
            fprintf(stderr, "datagate audit verify: out of memory\n");
            return -1;
        }

        n++;
    }

    fclose(f);

    return 0;
}


static int
dg_audit_cp_redis(dg_audit_verify_t *v, const char *addr, const char *node)
{
    int            rc;
    char           cursor[32], key[512], *from;
    size_t         i, k;
    redisReply    *r, *lr;
    redisContext  *c;

    c = dg_redis_open(addr, DG_AUDIT_REDIS_TIMEOUT);
    if (c == NULL) {
        return -1;
    }

    rc = -1;
    strcpy(cursor, "0");

    do {
        if (node) {
            r = NULL;
            snprintf(key, sizeof(key), "%s%s", DG_AUDIT_CP_PREFIX, node);

        } else {
            r = redisCommand(c, "SCAN %s MATCH %s* COUNT 100", cursor,
                             DG_AUDIT_CP_PREFIX);

            if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2
                || r->element[0]->type != REDIS_REPLY_STRING
                || r->element[1]->type != REDIS_REPLY_ARRAY)
            {
                fprintf(stderr, "datagate audit verify: redis %s: SCAN: %s\n",
                        addr, r && r->type == REDIS_REPLY_ERROR ? r->str
                                                                : c->errstr);
                freeReplyObject(r);
                goto done;
            }

            snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        }

        for (k = 0; k < (r ? r->element[1]->elements : 1); k++) {
            if (r) {
                snprintf(key, sizeof(key), "%s", r->element[1]->element[k]->str);
            }

            lr = redisCommand(c, "LRANGE %s 0 -1", key);

            if (lr == NULL || lr->type != REDIS_REPLY_ARRAY) {
                fprintf(stderr, "datagate audit verify: redis %s: LRANGE %s:"
                        " %s\n", addr, key,
                        lr && lr->type == REDIS_REPLY_ERROR ? lr->str
                        : lr ? "not a list" : c->errstr);
                freeReplyObject(lr);
                freeReplyObject(r);
                goto done;
            }

            from = malloc(strlen("redis ") + strlen(key) + 1);
            if (from == NULL) {
                freeReplyObject(lr);
                freeReplyObject(r);
                goto done;
            }

            /* kept for the messages until the process ends */
            sprintf(from, "redis %s", key);

            for (i = 0; i < lr->elements; i++) {
                if (lr->element[i]->type == REDIS_REPLY_STRING
                    && dg_audit_cp_line(v, lr->element[i]->str,
                                        lr->element[i]->len, from)
                       < 0)
                {
                    freeReplyObject(lr);
                    freeReplyObject(r);
                    goto done;
                }
            }

            freeReplyObject(lr);
        }

        freeReplyObject(r);

    } while (node == NULL && strcmp(cursor, "0") != 0);

    rc = 0;

done:

    redisFree(c);

    return rc;
}


/* feed the lines of one file; DG_EXIT_OK or DG_EXIT_RUNTIME */
static int
dg_audit_read(dg_audit_verify_t *v, const char *name, char *buf, size_t cap)
{
    int       c, toolong;
    FILE     *f;
    size_t    len;
    uint64_t  nlost;

    f = (strcmp(name, "-") == 0) ? stdin : fopen(name, "r");
    if (f == NULL) {
        fprintf(stderr, "datagate audit verify: %s: %s\n", name,
                strerror(errno));
        return DG_EXIT_RUNTIME;
    }

    dg_audit_verify_file(v, name);

    len = 0;
    toolong = 0;

    for ( ;; ) {
        c = getc_unlocked(f);

        if (c != '\n' && c != EOF) {
            if (len < cap) {
                buf[len++] = (char) c;

            } else {
                toolong = 1;
            }

            continue;
        }

        if (c == EOF && len == 0 && !toolong) {
            break;
        }

        if (c == EOF) {
            /* the last line has no LF: a torn write */
            dg_audit_verify_incomplete(v);
        }

        if (toolong || memchr(buf, '\0', len) != NULL) {
            /* NUL bytes or an endless line are never a record */
            buf[0] = '\0';
            len = 1;
        }

        nlost = v->nlost;

        dg_audit_verify_line(v, buf, len);

        if (v->nlost != nlost) {
            dg_audit_print_lost(v);
        }

        if (c == EOF) {
            break;
        }

        len = 0;
        toolong = 0;
    }

    if (ferror(f)) {
        fprintf(stderr, "datagate audit verify: %s: read error\n", name);
        if (f != stdin) {
            fclose(f);
        }
        return DG_EXIT_RUNTIME;
    }

    if (f != stdin) {
        fclose(f);
    }

    return DG_EXIT_OK;
}


/* one place where records were lost: the record that says so */
static void
dg_audit_print_lost(dg_audit_verify_t *v)
{
    if (v->nlost > DG_AUDIT_LOST_PRINT) {
        return;
    }

    if (v->torn_line) {
        printf("%s:%" PRIu64 ": incomplete line: a record whose write"
               " failed part-way (counted in the next record)\n",
               v->torn_file, v->torn_line);
    }

    printf("%s:%" PRIu64 ": %" PRIu64 " record(s) lost before this record"
           " (seq %" PRIu64 "%s%s): the gateway could not write them\n",
           v->lost_file, v->lost_line, v->lost_count, v->lost_seq,
           v->lost_chain[0] ? " of chain " : "", v->lost_chain);
}
