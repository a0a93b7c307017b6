/*
 * datagate command-line tool: incident controls and run-time grants on
 * Redis (synchronous hiredis; this is a short-lived command, not nginx).
 *
 *   datagate revoke cert SERIAL          / unrevoke cert SERIAL
 *   datagate suspend consumer ID         / unsuspend consumer ID
 *   datagate freeze dataset ID           / unfreeze dataset ID
 *   datagate freeze grant CONSUMER DATASET / unfreeze grant C D
 *   datagate grant add FILE.yaml --secret PATH [--policy PATH]
 *                (checked against the policy first: --policy, else
 *                $DATAGATE_POLICY, else DG_CLI_POLICY)
 *   datagate grant remove CONSUMER DATASET
 *   datagate grant list
 *   datagate incident list
 *   datagate redis status | redis confirm
 *
 * Options: --redis HOST:PORT | /path/to.sock (default $DATAGATE_REDIS or
 * 127.0.0.1:6379), password=..., db=N, --timeout MS, --reason TEXT.
 * Every write is PUBLISHed on datagate:events so the nodes drop their
 * cached state at once.  Key schema: docs/redis.md, core/dg_rstate.h.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pwd.h>
#include <sys/stat.h>

#include <hiredis/hiredis.h>

#include "datagate.h"
#include "dg_policy.h"
#include "dg_util.h"
#include "dg_rstate.h"


#define DG_CLI_SECRET_MAX       4096    /* as datagate_secret */
#define DG_CLI_POLICY           "/etc/datagate/policy/"  /* config/ */
#define DG_CLI_TZ_OFFSET        (8 * 3600)      /* grant dates: UTC+8 */
#define DG_CLI_FILE_MAX         (DG_RS_GRANT_MAX - 128)


typedef struct {
    const char                 *redis;
    const char                 *password;
    long                        db;
    long                        timeout;    /* ms */
    const char                 *secret;
    const char                 *policy;
    const char                 *reason;
    const char                 *args[4];
    int                         nargs;
    int                         help;
} dg_ropts_t;


static void
dg_redis_usage(FILE *f)
{
    fprintf(f,
"usage: datagate revoke cert SERIAL        | unrevoke cert SERIAL\n"
"       datagate suspend consumer ID       | unsuspend consumer ID\n"
"       datagate freeze dataset ID         | unfreeze dataset ID\n"
"       datagate freeze grant CONSUMER DATASET\n"
"       datagate unfreeze grant CONSUMER DATASET\n"
"       datagate grant add FILE.yaml --secret PATH [--policy PATH]\n"
"       datagate grant remove CONSUMER DATASET\n"
"       datagate grant list\n"
"       datagate incident list\n"
"       datagate redis status              what the gateways check of Redis\n"
"       datagate redis confirm             trust a Redis that lost its data\n"
"                                          (after the controls are back)\n"
"\n"
"options:\n"
"  --redis HOST:PORT|/unix.sock  Redis (default $DATAGATE_REDIS or\n"
"                                127.0.0.1:6379)\n"
"  password=SECRET db=N          as in the datagate_redis directive\n"
"  --timeout MS                  connect and command timeout (2000)\n"
"  --secret PATH                 key file of datagate_secret (grant add)\n"
"  --policy PATH                 the policy the gateways load: grant add\n"
"                                refuses a grant they would refuse\n"
"                                (default $DATAGATE_POLICY, else\n"
"                                " DG_CLI_POLICY ")\n"
"  --reason TEXT                 note stored with an incident control\n"
"\n"
"Every change is published on the channel datagate:events; every node\n"
"applies it within 1 second.  Exit: 0 done, 1 refused (bad grant),\n"
"2 usage, 3 Redis or file error.\n");
}


/* the options of a command, after its verb when that is still argv[0] */

static int
dg_ropts_parse(const char *verb, int argc, char **argv, dg_ropts_t *o)
{
    int    i;
    char  *end;

    if (argc > 0 && strcmp(argv[0], verb) == 0) {
        argc--;
        argv++;
    }

    memset(o, 0, sizeof(*o));
    o->redis = getenv("DATAGATE_REDIS");
    if (o->redis == NULL || o->redis[0] == '\0') {
        o->redis = "127.0.0.1:6379";
    }
    o->timeout = 2000;

    for (i = 0; i < argc; i++) {
        const char  *a = argv[i];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = 1;

        } else if (strcmp(a, "--redis") == 0 || strcmp(a, "--secret") == 0
                   || strcmp(a, "--policy") == 0
                   || strcmp(a, "--reason") == 0
                   || strcmp(a, "--timeout") == 0)
        {
            if (i + 1 >= argc) {
                fprintf(stderr, "datagate: %s needs a value\n", a);
                return -1;
            }

            if (a[2] == 'r' && a[4] == 'd') {
                o->redis = argv[++i];
            } else if (a[2] == 's') {
                o->secret = argv[++i];
            } else if (a[2] == 'p') {
                o->policy = argv[++i];
            } else if (a[2] == 'r') {
                o->reason = argv[++i];
            } else {
                errno = 0;
                o->timeout = strtol(argv[++i], &end, 10);
                if (errno || *end || o->timeout <= 0 || o->timeout > 600000)
                {
                    fprintf(stderr, "datagate: bad --timeout\n");
                    return -1;
                }
            }

        } else if (strncmp(a, "--redis=", 8) == 0) {
            o->redis = a + 8;

        } else if (strncmp(a, "--secret=", 9) == 0) {
            o->secret = a + 9;

        } else if (strncmp(a, "--policy=", 9) == 0) {
            o->policy = a + 9;

        } else if (strncmp(a, "password=", 9) == 0) {
            o->password = a + 9;

        } else if (strncmp(a, "db=", 3) == 0) {
            errno = 0;
            o->db = strtol(a + 3, &end, 10);
            if (errno || *end || a[3] == '\0' || o->db < 0 || o->db > 65535)
            {
                fprintf(stderr, "datagate: bad db=\n");
                return -1;
            }

        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "datagate: unknown option %s\n", a);
            return -1;

        } else {
            if (o->nargs == 4) {
                fprintf(stderr, "datagate: too many arguments\n");
                return -1;
            }
            o->args[o->nargs++] = a;
        }
    }

    return 0;
}


/* AUTH or SELECT of a new connection; 0 ok, -1 error printed */
static int
dg_redis_setup(redisContext *c, const dg_ropts_t *o, const char *what,
    const char *fmt, ...)
{
    va_list      ap;
    redisReply  *r;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);

    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "datagate: redis %s: %s: %s\n", o->redis, what,
                r ? r->str : c->errstr);
        freeReplyObject(r);
        return -1;
    }

    freeReplyObject(r);

    return 0;
}


static redisContext *
dg_redis_connect(const dg_ropts_t *o)
{
    long             port;
    char             host[256], *end;
    const char      *colon;
    redisContext    *c;
    struct timeval   tv;

    tv.tv_sec = o->timeout / 1000;
    tv.tv_usec = (o->timeout % 1000) * 1000;

    if (o->redis[0] == '/') {
        c = redisConnectUnixWithTimeout(o->redis, tv);

    } else {
        colon = strrchr(o->redis, ':');
        if (colon == NULL || colon == o->redis
            || (size_t) (colon - o->redis) >= sizeof(host))
        {
            fprintf(stderr, "datagate: --redis wants HOST:PORT, got \"%s\"\n",
                    o->redis);
            return NULL;
        }

        errno = 0;
        port = strtol(colon + 1, &end, 10);
        if (errno || *end || port < 1 || port > 65535) {
            fprintf(stderr, "datagate: bad port in \"%s\"\n", o->redis);
            return NULL;
        }

        memcpy(host, o->redis, colon - o->redis);
        host[colon - o->redis] = '\0';

        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
            memmove(host, host + 1, strlen(host));
            host[strlen(host) - 1] = '\0';
        }

        c = redisConnectWithTimeout(host, (int) port, tv);
    }

    if (c == NULL || c->err) {
        fprintf(stderr, "datagate: redis %s: %s\n", o->redis,
                c ? c->errstr : "out of memory");
        if (c) {
            redisFree(c);
        }
        return NULL;
    }

    if (redisSetTimeout(c, tv) != REDIS_OK) {
        fprintf(stderr, "datagate: redis %s: cannot set timeout\n", o->redis);
        redisFree(c);
        return NULL;
    }

    if (o->password
        && dg_redis_setup(c, o, "AUTH", "AUTH %s", o->password) != 0)
    {
        redisFree(c);
        return NULL;
    }

    if (o->db && dg_redis_setup(c, o, "SELECT", "SELECT %ld", o->db) != 0) {
        redisFree(c);
        return NULL;
    }

    return c;
}


/* run one command; 0 ok (reply optional), -1 error printed */
static int
dg_redis_run(redisContext *c, const char *what, redisReply **out,
    int argc, const char **argv, const size_t *lens)
{
    redisReply  *r;

    r = redisCommandArgv(c, argc, argv, lens);

    if (r == NULL) {
        fprintf(stderr, "datagate: redis: %s: %s\n", what, c->errstr);
        return -1;
    }

    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "datagate: redis: %s: %s\n", what, r->str);
        freeReplyObject(r);
        return -1;
    }

    if (out) {
        *out = r;
    } else {
        freeReplyObject(r);
    }

    return 0;
}


/* print the keys matching pattern (SCAN, not KEYS: never blocks Redis),
 * without the first skip bytes; 0 ok, -1 */
static int
dg_redis_scan(redisContext *c, const char *pattern, size_t skip, int ttl)
{
    char         cursor[32];
    size_t       i, lens[6];
    const char  *cmd[6];
    redisReply  *r, *keys, *t;

    strcpy(cursor, "0");

    do {
        cmd[0] = "SCAN";
        cmd[1] = cursor;
        cmd[2] = "MATCH";
        cmd[3] = pattern;
        cmd[4] = "COUNT";
        cmd[5] = "1000";
        for (i = 0; i < 6; i++) {
            lens[i] = strlen(cmd[i]);
        }

        if (dg_redis_run(c, "SCAN", &r, 6, cmd, lens) != 0) {
            return -1;
        }

        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
            || r->element[0]->type != REDIS_REPLY_STRING
            || r->element[0]->len >= sizeof(cursor)
            || r->element[1]->type != REDIS_REPLY_ARRAY)
        {
            fprintf(stderr, "datagate: redis: SCAN: unexpected reply\n");
            freeReplyObject(r);
            return -1;
        }

        memcpy(cursor, r->element[0]->str, r->element[0]->len);
        cursor[r->element[0]->len] = '\0';
        keys = r->element[1];

        for (i = 0; i < keys->elements; i++) {
            if (keys->element[i]->type != REDIS_REPLY_STRING
                || keys->element[i]->len < skip)
            {
                continue;
            }

            printf("%.*s", (int) (keys->element[i]->len - skip),
                   keys->element[i]->str + skip);

            /* a control that ends by itself (abuse detection's
             * suspensions): when */
            t = ttl ? redisCommand(c, "TTL %b", keys->element[i]->str,
                                   keys->element[i]->len)
                    : NULL;

            if (t != NULL && t->type == REDIS_REPLY_INTEGER
                && t->integer > 0)
            {
                printf("  (expires in %llds)", (long long) t->integer);
            }

            if (t != NULL) {
                freeReplyObject(t);
            }

            printf("\n");
        }

        freeReplyObject(r);

    } while (strcmp(cursor, "0") != 0);

    return 0;
}


static int
dg_redis_publish(redisContext *c, const char *msg)
{
    const char  *argv[3];
    size_t       lens[3];

    argv[0] = "PUBLISH";
    argv[1] = DG_RS_CHANNEL;
    argv[2] = msg;
    lens[0] = 7;
    lens[1] = sizeof(DG_RS_CHANNEL) - 1;
    lens[2] = strlen(msg);

    return dg_redis_run(c, "PUBLISH", NULL, 3, argv, lens);
}


static void
dg_note(const dg_ropts_t *o, const char *verb, char *buf, size_t cap)
{
    char            ts[32];
    time_t          now;
    struct tm       tm;
    const char     *user;
    struct passwd  *pw;

    now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);

    user = getenv("SUDO_USER");
    if (user == NULL) {
        pw = getpwuid(getuid());
        user = pw ? pw->pw_name : "?";
    }

    snprintf(buf, cap, "%s at=%s by=%s%s%s", verb, ts, user,
             o->reason ? " reason=" : "", o->reason ? o->reason : "");
}


int
dg_cmd_incident(const char *verb, int argc, char **argv)
{
    int            set, rc;
    char           key[DG_RS_KEY_MAX], msg[DG_RS_KEY_MAX + 64], note[512];
    char           serial[DG_RS_ID_MAX + 1];
    size_t         klen, lens[3];
    const char    *kind, *prefix, *a, *b, *cmd[3];
    dg_ropts_t     o;
    redisContext  *c;

    if (verb == NULL) {
        dg_redis_usage(stderr);
        return DG_EXIT_USAGE;
    }

    if (dg_ropts_parse(verb, argc, argv, &o) != 0) {
        return DG_EXIT_USAGE;
    }

    if (o.help) {
        dg_redis_usage(stdout);
        return DG_EXIT_OK;
    }

    if (strcmp(verb, "incident") == 0 || strcmp(verb, "incidents") == 0) {
        if (o.nargs > 1 || (o.nargs == 1 && strcmp(o.args[0], "list") != 0)) {
            dg_redis_usage(stderr);
            return DG_EXIT_USAGE;
        }

        c = dg_redis_connect(&o);
        if (c == NULL) {
            return DG_EXIT_RUNTIME;
        }

        rc = DG_EXIT_OK;

        {
            static const char  *pats[] = {
                DG_RS_CERT "*", DG_RS_CONSUMER "*", DG_RS_DATASET "*",
                DG_RS_GRANT_FROZEN "*"
            };
            size_t  i;

            for (i = 0; i < 4; i++) {
                if (dg_redis_scan(c, pats[i], sizeof(DG_RS_PREFIX) - 1, 1)
                    != 0)
                {
                    rc = DG_EXIT_RUNTIME;
                    break;
                }
            }
        }

        redisFree(c);
        return rc;
    }

    set = 1;
    if (strncmp(verb, "un", 2) == 0) {
        set = 0;
        verb += 2;
    }

    if (o.nargs < 2) {
        dg_redis_usage(stderr);
        return DG_EXIT_USAGE;
    }

    kind = o.args[0];
    a = o.args[1];
    b = NULL;

    if (strcmp(verb, "revoke") == 0 && strcmp(kind, "cert") == 0) {
        prefix = DG_RS_CERT;
        if (dg_serial_normalize(a, strlen(a), serial, sizeof(serial)) == 0) {
            fprintf(stderr, "datagate: \"%s\" is not a hex serial\n", a);
            return DG_EXIT_USAGE;
        }
        a = serial;

    } else if (strcmp(verb, "suspend") == 0
               && strcmp(kind, "consumer") == 0)
    {
        prefix = DG_RS_CONSUMER;

    } else if (strcmp(verb, "freeze") == 0 && strcmp(kind, "dataset") == 0) {
        prefix = DG_RS_DATASET;

    } else if (strcmp(verb, "freeze") == 0 && strcmp(kind, "grant") == 0) {
        prefix = DG_RS_GRANT_FROZEN;
        if (o.nargs != 3) {
            fprintf(stderr, "datagate: freeze grant CONSUMER DATASET\n");
            return DG_EXIT_USAGE;
        }
        b = o.args[2];

    } else {
        fprintf(stderr, "datagate: %s%s %s: unknown\n", set ? "" : "un",
                verb, kind);
        dg_redis_usage(stderr);
        return DG_EXIT_USAGE;
    }

    if (o.nargs != (b ? 3 : 2)) {
        dg_redis_usage(stderr);
        return DG_EXIT_USAGE;
    }

    klen = dg_rs_key(key, sizeof(key), prefix, a, strlen(a), b,
                     b ? strlen(b) : 0);
    if (klen == 0) {
        fprintf(stderr, "datagate: bad identifier (empty, too long, or "
                "has a space, control character or '|')\n");
        return DG_EXIT_USAGE;
    }

    c = dg_redis_connect(&o);
    if (c == NULL) {
        return DG_EXIT_RUNTIME;
    }

    if (set) {
        dg_note(&o, verb, note, sizeof(note));
        cmd[0] = "SET";
        cmd[1] = key;
        cmd[2] = note;
        lens[0] = 3;
        lens[1] = klen;
        lens[2] = strlen(note);
        rc = dg_redis_run(c, "SET", NULL, 3, cmd, lens);

    } else {
        cmd[0] = "DEL";
        cmd[1] = key;
        lens[0] = 3;
        lens[1] = klen;
        rc = dg_redis_run(c, "DEL", NULL, 2, cmd, lens);
    }

    if (rc == 0) {
        snprintf(msg, sizeof(msg), "%s%s %s %s%s%s", set ? "" : "un", verb,
                 kind, a, b ? "|" : "", b ? b : "");
        rc = dg_redis_publish(c, msg);
    }

    redisFree(c);

    if (rc != 0) {
        return DG_EXIT_RUNTIME;
    }

    printf("%s%s %s %s%s%s: done\n", set ? "" : "un", verb, kind, a,
           b ? " " : "", b ? b : "");

    return DG_EXIT_OK;
}


static char *
dg_read_file(const char *path, size_t max, size_t *len, int secret)
{
    FILE         *f;
    char         *buf;
    size_t        n;
    struct stat   st;

    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "datagate: %s: %s\n", path, strerror(errno));
        return NULL;
    }

    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "datagate: %s: not a regular file\n", path);
        fclose(f);
        return NULL;
    }

    if (secret && (st.st_mode & 077)) {
        fprintf(stderr, "datagate: warning: %s is readable by group or "
                "others\n", path);
    }

    if ((size_t) st.st_size > max) {
        fprintf(stderr, "datagate: %s: larger than %zu bytes\n", path, max);
        fclose(f);
        return NULL;
    }

    buf = malloc(max + 1);
    if (buf == NULL) {
        fprintf(stderr, "datagate: out of memory\n");
        fclose(f);
        return NULL;
    }

    n = fread(buf, 1, max + 1, f);
    fclose(f);

    if (n > max) {
        fprintf(stderr, "datagate: %s: larger than %zu bytes\n", path, max);
        free(buf);
        return NULL;
    }

    buf[n] = '\0';
    *len = n;

    return buf;
}


/* consumer and dataset of a grant given as YAML (one mapping) */
static int
dg_grant_ids(const char *path, const char *yaml, size_t len,
    char *consumer, char *dataset, size_t cap)
{
    int          rc;
    char         err[DG_ERRLEN];
    size_t       budget;
    dg_arena_t   arena;
    dg_ynode_t  *root, *c, *d;

    memset(&arena, 0, sizeof(arena));
    arena.limit = 16 * 1024 * 1024;
    budget = 100000;
    rc = -1;

    root = dg_yaml_parse(&arena, path, yaml, len, &budget, err, sizeof(err));
    if (root == NULL) {
        fprintf(stderr, "datagate: %s\n", err);
        goto cleanup;
    }

    if (root->type != DG_Y_MAP) {
        fprintf(stderr, "datagate: %s:%u: a grant is one mapping (consumer, "
                "dataset, purposes, ...)\n", path, root->line);
        goto cleanup;
    }

    c = dg_ymap_get(root, "consumer");
    d = dg_ymap_get(root, "dataset");

    if (c == NULL || c->type != DG_Y_SCALAR || d == NULL
        || d->type != DG_Y_SCALAR)
    {
        fprintf(stderr, "datagate: %s:%u: consumer and dataset are "
                "required\n", path, root->line);
        goto cleanup;
    }

    if (!dg_rs_id_ok(c->str, c->len) || !dg_rs_id_ok(d->str, d->len)
        || c->len >= cap || d->len >= cap)
    {
        fprintf(stderr, "datagate: %s: bad consumer or dataset id\n", path);
        goto cleanup;
    }

    memcpy(consumer, c->str, c->len + 1);
    memcpy(dataset, d->str, d->len + 1);
    rc = 0;

cleanup:

    dg_arena_free(&arena);

    return rc;
}


/*
 * Compile a run-time grant against the policy the gateways load, as they
 * will (dg_grant_compile: known consumer, dataset shared, known purposes,
 * methods within the dataset's, ...), and refuse one that has already
 * expired.  DG_EXIT_OK, DG_EXIT_FAIL (refused) or DG_EXIT_RUNTIME (the
 * policy does not load); the reason is printed.
 */
static int
dg_grant_check_policy(const dg_ropts_t *o, const char *file,
    const char *yaml, size_t ylen)
{
    int           rc;
    char          err[DG_ERRLEN], day[16];
    time_t        now, t;
    struct tm     tm;
    const char   *path, *env;
    dg_grant_t   *g;
    dg_policy_t  *p;

    path = o->policy;
    env = getenv("DATAGATE_POLICY");

    if (path == NULL && env != NULL && env[0] != '\0') {
        path = env;
    }

    if (path == NULL) {
        path = DG_CLI_POLICY;
    }

    p = dg_policy_load(path, err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "datagate: %s\n"
                "datagate: grant add checks a grant against the policy the "
                "gateways load: give it with --policy PATH (or "
                "$DATAGATE_POLICY; default " DG_CLI_POLICY ")\n", err);
        return DG_EXIT_RUNTIME;
    }

    rc = DG_EXIT_FAIL;

    g = dg_grant_compile(p, yaml, ylen, err, sizeof(err));
    if (g == NULL) {
        fprintf(stderr, "datagate: %s: %s\n"
                "datagate: refused: the gateways would ignore this grant "
                "(policy %s, version %.12s)\n", file, err, path,
                p->version_hex);
        goto done;
    }

    now = time(NULL);

    if (g->valid_until && now > g->valid_until) {
        t = g->valid_until + DG_CLI_TZ_OFFSET;
        gmtime_r(&t, &tm);
        strftime(day, sizeof(day), "%Y-%m-%d", &tm);
        fprintf(stderr, "datagate: %s: grant.valid.until: the grant ended "
                "with %s (UTC+8); refused: the gateways would answer "
                "grant_expired\n", file, day);
        goto done;
    }

    if (g->valid_until == 0) {
        fprintf(stderr, "datagate: warning: %s has no valid.until: whoever "
                "can write to Redis can put a copy of it back at any later "
                "time (docs/redis.md)\n", file);
    }

    rc = DG_EXIT_OK;

done:

    dg_grant_free(g);
    dg_policy_free(p);

    return rc;
}


static int
dg_grant_add(const dg_ropts_t *o)
{
    int            rc, replaced;
    char          *yaml, *secret, *val, *env;
    char           key[DG_RS_KEY_MAX], msg[DG_RS_KEY_MAX + 64];
    char           consumer[DG_RS_ID_MAX + 1], dataset[DG_RS_ID_MAX + 1];
    size_t         ylen, slen, klen, vlen, lens[4];
    uint8_t        mkey[DG_SHA256_LEN];
    const char    *cmd[4];
    redisReply    *r;
    redisContext  *c;

    if (o->nargs != 2) {
        fprintf(stderr, "datagate: grant add FILE.yaml --secret PATH "
                "[--policy PATH]\n");
        return DG_EXIT_USAGE;
    }

    env = getenv("DATAGATE_SECRET");

    if (o->secret == NULL && (env == NULL || env[0] == '\0')) {
        fprintf(stderr, "datagate: grant add needs --secret PATH (the key "
                "file of datagate_secret)\n");
        return DG_EXIT_USAGE;
    }

    rc = DG_EXIT_RUNTIME;
    yaml = NULL;
    secret = NULL;
    val = NULL;
    c = NULL;

    yaml = dg_read_file(o->args[1], DG_CLI_FILE_MAX, &ylen, 0);
    if (yaml == NULL) {
        goto cleanup;
    }

    secret = dg_read_file(o->secret ? o->secret : env, DG_CLI_SECRET_MAX,
                          &slen, 1);
    if (secret == NULL) {
        goto cleanup;
    }

    /* as the module reads datagate_secret: a text key file may end in a
     * newline; a key longer than a SHA-256 block is hashed by HMAC itself,
     * as the module does */
    slen = dg_secret_len((const uint8_t *) secret, slen);

    if (slen < 32) {
        fprintf(stderr, "datagate: %s: a key file holds at least 32 bytes\n",
                o->secret ? o->secret : env);
        goto cleanup;
    }

    if (dg_grant_ids(o->args[1], yaml, ylen, consumer, dataset,
                     sizeof(consumer)) != 0)
    {
        rc = DG_EXIT_FAIL;
        goto cleanup;
    }

    /* never store what the gateways would refuse */

    rc = dg_grant_check_policy(o, o->args[1], yaml, ylen);
    if (rc != DG_EXIT_OK) {
        goto cleanup;
    }

    rc = DG_EXIT_RUNTIME;

    klen = dg_rs_key(key, sizeof(key), DG_RS_GRANT, consumer,
                     strlen(consumer), dataset, strlen(dataset));
    if (klen == 0) {
        fprintf(stderr, "datagate: bad consumer or dataset id\n");
        rc = DG_EXIT_FAIL;
        goto cleanup;
    }

    if (dg_rs_mac_key((uint8_t *) secret, slen, mkey) != 0) {
        fprintf(stderr, "datagate: HMAC failed\n");
        goto cleanup;
    }

    val = malloc(DG_RS_GRANT_MAX);
    if (val == NULL) {
        fprintf(stderr, "datagate: out of memory\n");
        goto cleanup;
    }

    vlen = dg_rs_grant_seal(mkey, key, klen, yaml, ylen, val,
                            DG_RS_GRANT_MAX);
    if (vlen == 0) {
        fprintf(stderr, "datagate: %s: grant too large\n", o->args[1]);
        rc = DG_EXIT_FAIL;
        goto cleanup;
    }

    c = dg_redis_connect(o);
    if (c == NULL) {
        goto cleanup;
    }

    /* SET ... GET: say when an earlier run-time grant is replaced (one
     * per consumer and dataset) */
    cmd[0] = "SET";
    cmd[1] = key;
    cmd[2] = val;
    cmd[3] = "GET";
    lens[0] = 3;
    lens[1] = klen;
    lens[2] = vlen;
    lens[3] = 3;

    if (dg_redis_run(c, "SET", &r, 4, cmd, lens) != 0) {
        goto cleanup;
    }

    replaced = r->type == REDIS_REPLY_STRING;
    freeReplyObject(r);

    snprintf(msg, sizeof(msg), "grant add %s|%s", consumer, dataset);

    if (dg_redis_publish(c, msg) != 0) {
        goto cleanup;
    }

    printf("grant add %s %s: done (checked against the policy)%s\n",
           consumer, dataset,
           replaced ? "; it replaces the earlier run-time grant of the pair"
                    : "");
    rc = DG_EXIT_OK;

cleanup:

    if (c) {
        redisFree(c);
    }

    if (secret) {
        memset(secret, 0, slen);
    }

    memset(mkey, 0, sizeof(mkey));
    free(secret);
    free(yaml);
    free(val);

    return rc;
}


static int
dg_grant_remove(const dg_ropts_t *o)
{
    int            rc;
    char           key[DG_RS_KEY_MAX], msg[DG_RS_KEY_MAX + 64];
    size_t         klen, lens[2];
    const char    *cmd[2];
    redisReply    *r;
    redisContext  *c;

    if (o->nargs != 3) {
        fprintf(stderr, "datagate: grant remove CONSUMER DATASET\n");
        return DG_EXIT_USAGE;
    }

    klen = dg_rs_key(key, sizeof(key), DG_RS_GRANT, o->args[1],
                     strlen(o->args[1]), o->args[2], strlen(o->args[2]));
    if (klen == 0) {
        fprintf(stderr, "datagate: bad consumer or dataset id\n");
        return DG_EXIT_USAGE;
    }

    c = dg_redis_connect(o);
    if (c == NULL) {
        return DG_EXIT_RUNTIME;
    }

    cmd[0] = "DEL";
    cmd[1] = key;
    lens[0] = 3;
    lens[1] = klen;
    rc = DG_EXIT_RUNTIME;

    if (dg_redis_run(c, "DEL", &r, 2, cmd, lens) == 0) {
        snprintf(msg, sizeof(msg), "grant remove %s|%s", o->args[1],
                 o->args[2]);

        if (dg_redis_publish(c, msg) == 0) {
            printf("grant remove %s %s: %s\n", o->args[1], o->args[2],
                   r->type == REDIS_REPLY_INTEGER && r->integer == 0
                   ? "there was none" : "done");
            rc = DG_EXIT_OK;
        }

        freeReplyObject(r);
    }

    redisFree(c);

    return rc;
}


static int
dg_grant_list(const dg_ropts_t *o)
{
    int            rc;
    redisContext  *c;

    c = dg_redis_connect(o);
    if (c == NULL) {
        return DG_EXIT_RUNTIME;
    }

    rc = dg_redis_scan(c, DG_RS_GRANT "*", sizeof(DG_RS_GRANT) - 1, 0) == 0
         ? DG_EXIT_OK : DG_EXIT_RUNTIME;

    redisFree(c);

    return rc;
}


int
dg_cmd_grant(int argc, char **argv)
{
    dg_ropts_t  o;

    if (dg_ropts_parse("grant", argc, argv, &o) != 0) {
        return DG_EXIT_USAGE;
    }

    if (o.help) {
        dg_redis_usage(stdout);
        return DG_EXIT_OK;
    }

    if (o.nargs >= 1 && strcmp(o.args[0], "add") == 0) {
        return dg_grant_add(&o);
    }

    if (o.nargs >= 1 && strcmp(o.args[0], "remove") == 0) {
        return dg_grant_remove(&o);
    }

    if (o.nargs == 1 && strcmp(o.args[0], "list") == 0) {
        return dg_grant_list(&o);
    }

    dg_redis_usage(stderr);

    return DG_EXIT_USAGE;
}


/*
 * datagate redis status: what the gateways check (the epoch, whether
 * Redis keeps its data across a restart, the controls it holds);
 * datagate redis confirm: a new epoch, published, after Redis lost its
 * data and the controls were put back (docs/redis.md).
 */
static int
dg_redis_status(redisContext *c)
{
    int          rc, aof, replicas;
    char        *p;
    size_t       lens[3];
    const char  *cmd[3], *fsync;
    redisReply  *r, *info, *cfg;

    rc = DG_EXIT_OK;

    cmd[0] = "GET";
    cmd[1] = DG_RS_EPOCH;
    lens[0] = 3;
    lens[1] = sizeof(DG_RS_EPOCH) - 1;

    if (dg_redis_run(c, "GET", &r, 2, cmd, lens) != 0) {
        return DG_EXIT_RUNTIME;
    }

    if (r->type == REDIS_REPLY_STRING) {
        printf("epoch: %.*s\n", (int) r->len, r->str);

    } else {
        printf("epoch: none (a gateway creates it on first connect; a "
               "gateway that saw one before refuses this Redis until "
               "`datagate redis confirm`)\n");
        rc = DG_EXIT_FAIL;
    }

    freeReplyObject(r);

    cmd[0] = "INFO";
    cmd[1] = "persistence";
    lens[0] = 4;
    lens[1] = 11;

    if (dg_redis_run(c, "INFO", &info, 2, cmd, lens) != 0) {
        return DG_EXIT_RUNTIME;
    }

    aof = info->type == REDIS_REPLY_STRING
          && strstr(info->str, "aof_enabled:1") != NULL;
    freeReplyObject(info);

    cmd[1] = "replication";

    if (dg_redis_run(c, "INFO", &info, 2, cmd, lens) != 0) {
        return DG_EXIT_RUNTIME;
    }

    replicas = 0;

    if (info->type == REDIS_REPLY_STRING) {
        p = strstr(info->str, "connected_slaves:");
        if (p) {
            replicas = atoi(p + 17);
        }
    }

    freeReplyObject(info);

    fsync = "unknown (CONFIG refused)";

    cmd[0] = "CONFIG";
    cmd[1] = "GET";
    cmd[2] = "appendfsync";
    lens[0] = 6;
    lens[1] = 3;
    lens[2] = 11;

    cfg = redisCommandArgv(c, 3, cmd, lens);

    if (cfg && cfg->type == REDIS_REPLY_ARRAY && cfg->elements == 2
        && cfg->element[1]->type == REDIS_REPLY_STRING)
    {
        fsync = strcmp(cfg->element[1]->str, "always") == 0 ? "always"
                : strcmp(cfg->element[1]->str, "everysec") == 0 ? "everysec"
                : "no";
    }

    printf("aof: %s, appendfsync: %s, replicas: %d\n", aof ? "yes" : "no",
           fsync, replicas);

    if (!replicas && (!aof || strcmp(fsync, "no") == 0)) {
        printf("warning: a restart of Redis loses the incident controls and "
               "run-time grants; configure \"appendonly yes\" and "
               "\"appendfsync everysec\", or a replica\n");
        rc = DG_EXIT_FAIL;
    }

    if (cfg) {
        freeReplyObject(cfg);
    }

    return rc;
}


static int
dg_redis_confirm(redisContext *c)
{
    FILE           *f;
    size_t          i, lens[3];
    const char     *cmd[3];
    unsigned char   bytes[DG_RS_EPOCH_LEN / 2];
    char            epoch[DG_RS_EPOCH_LEN + 1];

    f = fopen("/dev/urandom", "r");
    if (f == NULL || fread(bytes, 1, sizeof(bytes), f) != sizeof(bytes)) {
        fprintf(stderr, "datagate: cannot read /dev/urandom\n");
        if (f) {
            fclose(f);
        }
        return DG_EXIT_RUNTIME;
    }

    fclose(f);

    for (i = 0; i < sizeof(bytes); i++) {
        snprintf(epoch + 2 * i, 3, "%02x", bytes[i]);
    }

    cmd[0] = "SET";
    cmd[1] = DG_RS_EPOCH;
    cmd[2] = epoch;
    lens[0] = 3;
    lens[1] = sizeof(DG_RS_EPOCH) - 1;
    lens[2] = DG_RS_EPOCH_LEN;

    if (dg_redis_run(c, "SET", NULL, 3, cmd, lens) != 0
        || dg_redis_publish(c, "epoch confirm") != 0)
    {
        return DG_EXIT_RUNTIME;
    }

    printf("epoch %s: the gateways trust this Redis's incident state "
           "again\n", epoch);

    return DG_EXIT_OK;
}


int
dg_cmd_redis(int argc, char **argv)
{
    int            rc;
    dg_ropts_t     o;
    redisContext  *c;

    if (dg_ropts_parse("redis", argc, argv, &o) != 0) {
        return DG_EXIT_USAGE;
    }

    if (o.help) {
        dg_redis_usage(stdout);
        return DG_EXIT_OK;
    }

    if (o.nargs != 1 || (strcmp(o.args[0], "status") != 0
                         && strcmp(o.args[0], "confirm") != 0))
    {
        dg_redis_usage(stderr);
        return DG_EXIT_USAGE;
    }

    c = dg_redis_connect(&o);
    if (c == NULL) {
        return DG_EXIT_RUNTIME;
    }

    rc = strcmp(o.args[0], "status") == 0 ? dg_redis_status(c)
                                          : dg_redis_confirm(c);

    redisFree(c);

    return rc;
}
