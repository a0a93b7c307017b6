/*
 * datagate core: policy loader and compiler.
 *
 * YAML (one file, or every *.yaml / *.yml of a directory in name order) ->
 * a strict tree (dg_yaml.c) -> validated, cross-referenced, compiled into
 * one arena.  The first error stops the load and is reported as
 * "FILE:LINE: FIELD: message".
 */

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/evp.h>

#include "dg_dn.h"
#include "dg_util.h"
#include "dg_header.h"


#define DG_ID_MAX               128
#define DG_TEXT_MAX             1024
#define DG_SAN_MAX              1024


typedef struct {
    const char                 *name;       /* as shown in errors */
    const char                 *base;       /* hashed into the version */
    char                       *data;
    size_t                      len;
    dg_ynode_t                 *root;
} dg_pfile_t;


typedef struct {
    char                       *err;
    size_t                      errlen;
    int                         failed;

    dg_policy_t                *p;
    dg_policy_priv_t           *priv;
    dg_arena_t                 *a;          /* result */
    dg_arena_t                  tmp;        /* trees, scratch */

    dg_pfile_t                 *files;
    size_t                      nfiles;
    size_t                      budget;

    const char                 *level_file[DG_LEVEL_MAX + 1];
    unsigned                    level_line[DG_LEVEL_MAX + 1];
    const char                 *detect_file;
    unsigned                    detect_line;

    /* run-time grant: where its own rule set goes */
    dg_mask_rules_t           **own_rules;
} dg_load_t;


static const char *dg_top_keys[] = {
    "levels", "detect", "classes", "purposes", "consumers", "datasets",
    "grants", NULL
};
static const char *dg_class_keys[] = { "level", "mask", NULL };
static const char *dg_purpose_keys[] = { "name", NULL };
static const char *dg_consumer_keys[] = {
    "id", "org", "cert", "clearance", "networks", "geo", NULL
};
static const char *dg_cert_keys[] = {
    "subject", "fingerprint_sha256", "serial", "san", "issuer",
    "issuer_key_id", NULL
};
static const char *dg_geo_keys[] = { "countries", "regions", NULL };
static const char *dg_dataset_keys[] = {
    "id", "name", "provider", "share", "level", "fields", "unlisted",
    "detect", "containers", "methods", "rate", "quota", "headers", NULL
};
static const char *dg_grant_keys[] = {
    "consumer", "dataset", "purposes", "approval", "valid", "methods",
    "reveal", "drop", "rate", "quota", NULL
};
static const char *dg_valid_keys[] = { "from", "until", NULL };

static const char *dg_default_levels[DG_LEVEL_MAX + 1] = {
    "", "公开", "内部", "敏感", "高敏感"
};


/* errors */

static int
dg_err(dg_load_t *L, const char *file, unsigned line, const char *path,
    const char *key, const char *fmt, ...)
{
    int      n;
    va_list  ap;

    if (L->failed) {
        return -1;
    }

    L->failed = 1;

    if (key != NULL && strlen(key) > 64) {
        key = "(long key)";
    }

    if (key != NULL && path != NULL && path[0] != '\0') {
        n = snprintf(L->err, L->errlen, "%s:%u: %s.%s: ", file, line, path,
                     key);
    } else {
        n = snprintf(L->err, L->errlen, "%s:%u: %s: ", file, line,
                     key ? key : (path && path[0] ? path : "policy"));
    }

    if (n < 0 || (size_t) n >= L->errlen) {
        return -1;
    }

    va_start(ap, fmt);
    vsnprintf(L->err + n, L->errlen - n, fmt, ap);
    va_end(ap);

    return -1;
}


/* Levenshtein distance, bounded by the 64-byte strings we compare */

static size_t
dg_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t  i, j, d[65], prev, cur;

    if (la > 64 || lb > 64) {
        return (size_t) -1;
    }

    for (j = 0; j <= lb; j++) {
        d[j] = j;
    }

    for (i = 1; i <= la; i++) {
        prev = d[0];
        d[0] = i;
        for (j = 1; j <= lb; j++) {
            cur = d[j];
            d[j] = prev + (a[i - 1] != b[j - 1]);
            if (d[j] > d[j - 1] + 1) {
                d[j] = d[j - 1] + 1;
            }
            if (d[j] > cur + 1) {
                d[j] = cur + 1;
            }
            prev = cur;
        }
    }

    return d[lb];
}


static const char *
dg_suggest_keys(const char *s, size_t len, const char **keys)
{
    size_t       d, best;
    const char  *found;

    found = NULL;
    best = 3;

    for ( /* void */ ; *keys; keys++) {
        d = dg_distance(s, len, *keys, strlen(*keys));
        if (d < best && d < len) {
            best = d;
            found = *keys;
        }
    }

    return found;
}


/* ids of an array of structs with a dg_str_t at offset off */

static const char *
dg_suggest_ids(const char *s, size_t len, const void *base, size_t n,
    size_t stride, size_t off)
{
    size_t           i, d, best;
    const char      *found;
    const dg_str_t  *id;

    found = NULL;
    best = 3;

    for (i = 0; i < n && i < 100000; i++) {
        id = (const dg_str_t *) ((const char *) base + i * stride + off);
        if (id->data == NULL) {
            continue;
        }
        d = dg_distance(s, len, id->data, id->len);
        if (d < best && d < len) {
            best = d;
            found = id->data;
        }
    }

    return found;
}


/* node helpers */

static int
dg_y_null(const dg_ynode_t *n)
{
    return n->type == DG_Y_SCALAR && n->plain
           && (n->len == 0 || strcmp(n->str, "~") == 0
               || strcmp(n->str, "null") == 0 || strcmp(n->str, "Null") == 0
               || strcmp(n->str, "NULL") == 0);
}


static int
dg_check_keys(dg_load_t *L, const char *file, const dg_ynode_t *map,
    const char *path, const char **allowed)
{
    size_t       i, n;
    char         list[256];
    dg_ynode_t  *k;
    const char  *hint, **a;

    for (k = map->child; k && k->next; k = k->next->next) {
        for (a = allowed; *a; a++) {
            if (strcmp(k->str, *a) == 0 && strlen(*a) == k->len) {
                break;
            }
        }

        if (*a != NULL) {
            continue;
        }

        hint = dg_suggest_keys(k->str, k->len, allowed);
        if (hint != NULL) {
            return dg_err(L, file, k->line, path, k->str,
                          "unknown key '%.64s' (did you mean '%s'?)",
                          k->str, hint);
        }

        n = 0;
        list[0] = '\0';
        for (i = 0; allowed[i] && n < sizeof(list) - 40; i++) {
            n += snprintf(list + n, sizeof(list) - n, "%s%s",
                          i ? ", " : "", allowed[i]);
        }

        return dg_err(L, file, k->line, path, k->str,
                      "unknown key '%.64s' (expected one of: %s)",
                      k->str, list);
    }

    return 0;
}


/* an entry of a list section: a mapping of known keys; want names some */

static int
dg_item_map(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, const char *want, const char **allowed)
{
    if (it->type != DG_Y_MAP) {
        return dg_err(L, file, it->line, path, NULL,
                      "expected a mapping with %s, got %s", want,
                      dg_ytype_name(it));
    }

    return dg_check_keys(L, file, it, path, allowed);
}


static int
dg_expect(dg_load_t *L, const char *file, const dg_ynode_t *n,
    const char *path, const char *key, int type)
{
    static const char  *names[] = { "", "a single value", "a list",
                                    "a mapping" };

    if (n->type == type && !(type == DG_Y_SCALAR && dg_y_null(n))) {
        return 0;
    }

    if (type == DG_Y_SCALAR && dg_y_null(n)) {
        return dg_err(L, file, n->line, path, key, "must not be empty");
    }

    return dg_err(L, file, n->line, path, key, "expected %s, got %s",
                  names[type], dg_ytype_name(n));
}


static int
dg_text_ok(dg_load_t *L, const char *file, const dg_ynode_t *n,
    const char *path, const char *key, size_t max)
{
    size_t  i;

    if (n->len > max) {
        return dg_err(L, file, n->line, path, key,
                      "too long (at most %zu bytes)", max);
    }

    for (i = 0; i < n->len; i++) {
        if ((unsigned char) n->str[i] < 0x20 || n->str[i] == 0x7f) {
            return dg_err(L, file, n->line, path, key,
                          "control characters are not allowed");
        }
    }

    return 0;
}


static int
dg_str_set(dg_load_t *L, const dg_ynode_t *n, dg_str_t *out)
{
    char  *s;

    s = dg_arena_strndup(L->a, n->str, n->len);
    if (s == NULL) {
        return -1;
    }

    out->data = s;
    out->len = n->len;

    return 0;
}


/*
 * text value of key in map: 1 set, 0 absent, -1 error
 */
static int
dg_get_text(dg_load_t *L, const char *file, const dg_ynode_t *map,
    const char *path, const char *key, int required, size_t max,
    dg_str_t *out, const dg_ynode_t **vn)
{
    dg_ynode_t  *v;

    v = dg_ymap_get(map, key);
    if (vn) {
        *vn = v;
    }

    if (v == NULL) {
        if (required) {
            return dg_err(L, file, map->line, path, key,
                          "missing required key '%s'", key);
        }
        return 0;
    }

    if (dg_expect(L, file, v, path, key, DG_Y_SCALAR) != 0
        || dg_text_ok(L, file, v, path, key, max) != 0)
    {
        return -1;
    }

    if (dg_str_set(L, v, out) != 0) {
        return dg_err(L, file, v->line, path, key, "out of memory");
    }

    return 1;
}


static int
dg_id_ok(dg_load_t *L, const char *file, const dg_ynode_t *n,
    const char *path, const char *key)
{
    size_t  i;
    char    c;

    if (dg_expect(L, file, n, path, key, DG_Y_SCALAR) != 0) {
        return -1;
    }

    if (n->len > DG_ID_MAX) {
        return dg_err(L, file, n->line, path, key,
                      "too long (at most %d bytes)", DG_ID_MAX);
    }

    for (i = 0; i < n->len; i++) {
        c = n->str[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9')
            || (i > 0 && (c == '.' || c == '_' || c == '-')))
        {
            continue;
        }

        return dg_err(L, file, n->line, path, key,
                      "bad id '%.64s': letters, digits, '.', '_' and '-' "
                      "only, starting with a letter or digit", n->str);
    }

    return 0;
}


static int
dg_uint_of(dg_load_t *L, const char *file, const dg_ynode_t *v,
    const char *path, const char *key, unsigned min, unsigned max,
    unsigned *out)
{
    size_t    i;
    unsigned  n;

    if (dg_expect(L, file, v, path, key, DG_Y_SCALAR) != 0) {
        return -1;
    }

    n = 0;

    for (i = 0; i < v->len; i++) {
        if (v->str[i] < '0' || v->str[i] > '9' || i >= 9) {
            break;
        }
        n = n * 10 + (unsigned) (v->str[i] - '0');
    }

    if (i != v->len || n < min || n > max) {
        return dg_err(L, file, v->line, path, key,
                      "expected a whole number from %u to %u, got '%.32s'",
                      min, max, v->str);
    }

    *out = n;

    return 0;
}


static int
dg_get_uint(dg_load_t *L, const char *file, const dg_ynode_t *map,
    const char *path, const char *key, int required, unsigned min,
    unsigned max, unsigned *out)
{
    dg_ynode_t  *v;

    v = dg_ymap_get(map, key);

    if (v == NULL) {
        if (required) {
            return dg_err(L, file, map->line, path, key,
                          "missing required key '%s'", key);
        }
        return 0;
    }

    return dg_uint_of(L, file, v, path, key, min, max, out) == 0 ? 1 : -1;
}


static int
dg_onoff(dg_load_t *L, const char *file, const dg_ynode_t *v,
    const char *path, const char *key, unsigned *out)
{
    static const char  *on[] = { "on", "true", "yes", "On", "True", "Yes",
                                 "ON", "TRUE", "YES", NULL };
    static const char  *off[] = { "off", "false", "no", "Off", "False", "No",
                                  "OFF", "FALSE", "NO", NULL };
    const char        **s;

    if (dg_expect(L, file, v, path, key, DG_Y_SCALAR) != 0) {
        return -1;
    }

    for (s = on; *s; s++) {
        if (strcmp(v->str, *s) == 0) {
            *out = 1;
            return 0;
        }
    }

    for (s = off; *s; s++) {
        if (strcmp(v->str, *s) == 0) {
            *out = 0;
            return 0;
        }
    }

    return dg_err(L, file, v->line, path, key,
                  "expected on or off, got '%.32s'", v->str);
}


/* a non-empty list of text values; items are checked by the caller */

static int
dg_get_list(dg_load_t *L, const char *file, const dg_ynode_t *map,
    const char *path, const char *key, const dg_ynode_t **out)
{
    dg_ynode_t  *v, *i;

    v = dg_ymap_get(map, key);
    *out = NULL;

    if (v == NULL) {
        return 0;
    }

    if (v->type != DG_Y_SEQ) {
        return dg_err(L, file, v->line, path, key,
                      "expected a list such as [a, b], got %s",
                      dg_ytype_name(v));
    }

    if (v->n == 0) {
        return dg_err(L, file, v->line, path, key,
                      "must not be an empty list (leave the key out "
                      "instead)");
    }

    for (i = v->child; i; i = i->next) {
        if (dg_expect(L, file, i, path, key, DG_Y_SCALAR) != 0
            || dg_text_ok(L, file, i, path, key, DG_TEXT_MAX) != 0)
        {
            return -1;
        }
    }

    *out = v;

    return 1;
}


static int
dg_list_strs(dg_load_t *L, const char *file, const dg_ynode_t *seq,
    const char *path, const char *key, dg_str_t **out, size_t *n)
{
    size_t       k;
    dg_str_t    *a;
    dg_ynode_t  *i;

    a = dg_arena_array(L->a, seq->n, sizeof(dg_str_t));
    if (a == NULL) {
        return dg_err(L, file, seq->line, path, key, "out of memory");
    }

    for (k = 0, i = seq->child; i; i = i->next, k++) {
        if (dg_str_set(L, i, &a[k]) != 0) {
            return dg_err(L, file, i->line, path, key, "out of memory");
        }
    }

    *out = a;
    *n = k;

    return 0;
}


/*
 * methods: [GET, HEAD, ...] -> DG_METHOD_* bits.  A name is what nginx
 * accepts as a request method: 1..DG_METHOD_NAME_MAX of A-Z, '_' and '-'
 * (lower-case letters are taken as upper case).  With ds == NULL (a
 * dataset's list), a name other than the seven known methods becomes an
 * extension method of the policy with a bit of its own; with ds (a
 * grant's list), every name must be one of the methods of ds, since a
 * grant only narrows them.  Returns 1 set, 0 absent, -1 error.
 */
static int
dg_load_methods(dg_load_t *L, const dg_policy_t *p, const char *file,
    const dg_ynode_t *it, const char *path, const dg_dataset_t *ds,
    unsigned *bits)
{
    int                rc;
    char               mb[DG_METHOD_NAME_MAX + 1], list[1024];
    size_t             j, k;
    unsigned           bit;
    const dg_ynode_t  *seq, *x;

    *bits = 0;

    rc = dg_get_list(L, file, it, path, "methods", &seq);
    if (rc <= 0) {
        return rc;
    }

    for (x = seq->child; x; x = x->next) {

        if (x->len == 0 || x->len > DG_METHOD_NAME_MAX) {
            return dg_err(L, file, x->line, path, "methods",
                          "bad method '%.40s': 1 to %d characters",
                          x->str, DG_METHOD_NAME_MAX);
        }

        for (j = 0; j < x->len; j++) {
            mb[j] = x->str[j];

            if (mb[j] >= 'a' && mb[j] <= 'z') {
                mb[j] = (char) (mb[j] - 'a' + 'A');

            } else if (!((mb[j] >= 'A' && mb[j] <= 'Z') || mb[j] == '_'
                         || mb[j] == '-'))
            {
                return dg_err(L, file, x->line, path, "methods",
                              "bad method '%.40s': a method name has only "
                              "letters, '_' and '-' (what nginx accepts in "
                              "a request)", x->str);
            }
        }

        mb[x->len] = '\0';

        bit = dg_policy_method_bit(p, mb, x->len);

        if (ds != NULL) {
            if (bit == DG_METHOD_OTHER || !(bit & ds->methods)) {
                return dg_err(L, file, x->line, path, "methods",
                              "method %s is not allowed on dataset '%s' "
                              "(its methods: %s); a grant can only narrow "
                              "the methods of its dataset",
                              mb, ds->id.data,
                              dg_methods_str(p, ds->methods, list,
                                             sizeof(list)));
            }

        } else if (bit == DG_METHOD_OTHER) {
            /* an extension method: the next bit of this policy */
            k = L->p->nxmethods;

            if (k == DG_METHOD_EXT_MAX) {
                return dg_err(L, file, x->line, path, "methods",
                              "method %s: a policy may name at most %d "
                              "methods besides GET, HEAD, POST, PUT, "
                              "DELETE, PATCH and OPTIONS", mb,
                              DG_METHOD_EXT_MAX);
            }

            L->p->xmethods[k].data = dg_arena_strndup(L->a, mb, x->len);
            if (L->p->xmethods[k].data == NULL) {
                return dg_err(L, file, x->line, path, "methods",
                              "out of memory");
            }

            L->p->xmethods[k].len = x->len;
            L->p->nxmethods++;
            bit = DG_METHOD_EXT_FIRST << k;
        }

        if (*bits & bit) {
            return dg_err(L, file, x->line, path, "methods",
                          "method %s is listed twice", mb);
        }

        *bits |= bit;
    }

    return 1;
}


/* rate: and quota: of a dataset or grant; 0 ok, -1 error */
static int
dg_load_limits(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, dg_limit_t *l, dg_str_t *rate_str, dg_str_t *quota_str)
{
    int                rc;
    const dg_ynode_t  *v;

    rc = dg_get_text(L, file, it, path, "rate", 0, 64, rate_str, &v);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0 && dg_limit_parse_rate(rate_str->data, rate_str->len, l) != 0)
    {
        return dg_err(L, file, v->line, path, "rate",
                      "bad rate '%s': expected e.g. 100r/s, 100r/s burst=50 "
                      "or 6000r/m", rate_str->data);
    }

    rc = dg_get_text(L, file, it, path, "quota", 0, 64, quota_str, &v);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0
        && dg_limit_parse_quota(quota_str->data, quota_str->len, l) != 0)
    {
        return dg_err(L, file, v->line, path, "quota",
                      "bad quota '%s': expected e.g. 100000/day, 5000/hour "
                      "or 100/minute", quota_str->data);
    }

    if (rate_str->data == NULL) {
        rate_str->data = "";
    }
    if (quota_str->data == NULL) {
        quota_str->data = "";
    }

    return 0;
}


static const dg_ynode_t *
dg_section(dg_load_t *L, const dg_pfile_t *f, const char *key, int type)
{
    dg_ynode_t  *v;

    v = dg_ymap_get(f->root, key);
    if (v == NULL || dg_y_null(v)) {
        return NULL;
    }

    if (v->type != type) {
        dg_err(L, f->name, v->line, key, NULL, "expected %s, got %s",
               type == DG_Y_MAP ? "a mapping" : "a list", dg_ytype_name(v));
        return NULL;
    }

    return v;
}


/* files */

static int
dg_read_file(dg_load_t *L, dg_pfile_t *f)
{
    int          fd;
    char        *p;
    size_t       n;
    ssize_t      r;
    struct stat  st;

    fd = open(f->name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(L->err, L->errlen, "%s: cannot open: %s", f->name,
                 strerror(errno));
        L->failed = 1;
        return -1;
    }

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(L->err, L->errlen, "%s: not a regular file", f->name);
        L->failed = 1;
        close(fd);
        return -1;
    }

    if (st.st_size > DG_POLICY_MAX_FILE) {
        close(fd);
        return dg_err(L, f->name, 1, "file", NULL,
                      "larger than %d MiB", DG_POLICY_MAX_FILE >> 20);
    }

    p = dg_arena_alloc(&L->tmp, (size_t) st.st_size + 1);
    if (p == NULL) {
        close(fd);
        return dg_err(L, f->name, 1, "file", NULL, "out of memory");
    }

    n = 0;

    while (n < (size_t) st.st_size + 1) {
        r = read(fd, p + n, (size_t) st.st_size + 1 - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            snprintf(L->err, L->errlen, "%s: read error: %s", f->name,
                     strerror(errno));
            L->failed = 1;
            close(fd);
            return -1;
        }
        if (r == 0) {
            break;
        }
        n += (size_t) r;
    }

    close(fd);

    if (n > (size_t) st.st_size) {
        return dg_err(L, f->name, 1, "file", NULL,
                      "changed while being read");
    }

    f->data = p;
    f->len = n;

    return 0;
}


static int
dg_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


static int
dg_list_dir(dg_load_t *L, const char *path)
{
    DIR            *dir;
    size_t          n, cap, len, plen, i;
    char          **names, *full;
    struct stat     st;
    struct dirent  *de;

    dir = opendir(path);
    if (dir == NULL) {
        snprintf(L->err, L->errlen, "%s: cannot open: %s", path,
                 strerror(errno));
        L->failed = 1;
        return -1;
    }

    n = 0;
    cap = 16;
    names = dg_arena_array(&L->tmp, cap, sizeof(char *));
    plen = strlen(path);
    while (plen > 1 && path[plen - 1] == '/') {
        plen--;
    }

    while (names != NULL && (de = readdir(dir)) != NULL) {
        len = strlen(de->d_name);

        if (de->d_name[0] == '.'
            || !((len > 5 && strcmp(de->d_name + len - 5, ".yaml") == 0)
                 || (len > 4 && strcmp(de->d_name + len - 4, ".yml") == 0)))
        {
            continue;
        }

        if (n == DG_POLICY_MAX_FILES) {
            closedir(dir);
            snprintf(L->err, L->errlen, "%s: more than %d policy files",
                     path, DG_POLICY_MAX_FILES);
            L->failed = 1;
            return -1;
        }

        if (n == cap) {
            char  **nn;

            nn = dg_arena_array(&L->tmp, cap * 2, sizeof(char *));
            if (nn == NULL) {
                names = NULL;
                break;
            }
            memcpy(nn, names, cap * sizeof(char *));
            names = nn;
            cap *= 2;
        }

        names[n] = dg_arena_strndup(&L->tmp, de->d_name, len);
        if (names[n] == NULL) {
            names = NULL;
            break;
        }
        n++;
    }

    closedir(dir);

    if (names == NULL) {
        return dg_err(L, path, 1, "file", NULL, "out of memory");
    }

    qsort(names, n, sizeof(char *), dg_name_cmp);

    L->files = dg_arena_array(&L->tmp, n ? n : 1, sizeof(dg_pfile_t));
    if (L->files == NULL) {
        return dg_err(L, path, 1, "file", NULL, "out of memory");
    }

    L->nfiles = 0;

    for (i = 0; i < n; i++) {
        len = strlen(names[i]);
        full = dg_arena_alloc(&L->tmp, plen + len + 2);
        if (full == NULL) {
            return dg_err(L, path, 1, "file", NULL, "out of memory");
        }
        memcpy(full, path, plen);
        full[plen] = '/';
        memcpy(full + plen + 1, names[i], len + 1);

        if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }

        L->files[L->nfiles].name = full;
        L->files[L->nfiles].base = names[i];
        L->nfiles++;
    }

    if (L->nfiles == 0) {
        snprintf(L->err, L->errlen,
                 "%s: no policy files (*.yaml, *.yml) in directory", path);
        L->failed = 1;
        return -1;
    }

    return 0;
}


static int
dg_parse_files(dg_load_t *L)
{
    size_t       i, off, line, k;
    dg_pfile_t  *f;

    for (i = 0; i < L->nfiles; i++) {
        f = &L->files[i];

        if (f->len > DG_POLICY_MAX_FILE) {
            return dg_err(L, f->name, 1, "file", NULL, "larger than %d MiB",
                          DG_POLICY_MAX_FILE >> 20);
        }

        off = dg_utf8_check((const uint8_t *) f->data, f->len);
        if (off != f->len) {
            line = 1;
            for (k = 0; k < off; k++) {
                line += f->data[k] == '\n';
            }
            return dg_err(L, f->name, (unsigned) line, "file", NULL,
                          "not valid UTF-8 (byte %zu)", off);
        }

        f->root = dg_yaml_parse(&L->tmp, f->name, f->data, f->len,
                                &L->budget, L->err, L->errlen);
        if (f->root == NULL) {
            L->failed = 1;
            return -1;
        }

        if (f->root->type != DG_Y_MAP) {
            return dg_err(L, f->name, f->root->line, "policy", NULL,
                          "the top level must be a mapping (levels, classes, "
                          "purposes, consumers, datasets, grants), got %s",
                          dg_ytype_name(f->root));
        }

        if (dg_check_keys(L, f->name, f->root, "", dg_top_keys) != 0) {
            return -1;
        }
    }

    return 0;
}


/* sections */

static int
dg_load_levels(dg_load_t *L)
{
    size_t             i;
    unsigned           lv;
    dg_ynode_t        *k;
    const dg_ynode_t  *sec;
    dg_pfile_t        *f;

    for (lv = 0; lv <= DG_LEVEL_MAX; lv++) {
        L->p->level_names[lv].data = dg_default_levels[lv];
        L->p->level_names[lv].len = strlen(dg_default_levels[lv]);
    }

    for (i = 0; i < L->nfiles; i++) {
        f = &L->files[i];

        sec = dg_section(L, f, "levels", DG_Y_MAP);
        if (L->failed) {
            return -1;
        }
        if (sec == NULL) {
            continue;
        }

        for (k = sec->child; k && k->next; k = k->next->next) {
            if (dg_uint_of(L, f->name, k, "levels", NULL, 1, DG_LEVEL_MAX,
                           &lv) != 0)
            {
                return -1;
            }

            if (L->level_file[lv] != NULL) {
                return dg_err(L, f->name, k->line, "levels", k->str,
                              "level %u is already named at %s:%u", lv,
                              L->level_file[lv], L->level_line[lv]);
            }

            if (dg_expect(L, f->name, k->next, "levels", k->str,
                          DG_Y_SCALAR) != 0
                || dg_text_ok(L, f->name, k->next, "levels", k->str,
                              DG_TEXT_MAX) != 0
                || dg_str_set(L, k->next, &L->p->level_names[lv]) != 0)
            {
                return dg_err(L, f->name, k->line, "levels", k->str,
                              "out of memory");
            }

            L->level_file[lv] = f->name;
            L->level_line[lv] = k->line;
        }
    }

    return 0;
}


static int
dg_load_detect(dg_load_t *L)
{
    size_t       i;
    unsigned     on;
    dg_ynode_t  *v;
    dg_pfile_t  *f;

    for (i = 0; i < L->nfiles; i++) {
        f = &L->files[i];

        v = dg_ymap_get(f->root, "detect");
        if (v == NULL) {
            continue;
        }

        if (L->detect_file != NULL) {
            return dg_err(L, f->name, v->line, "detect", NULL,
                          "already set at %s:%u", L->detect_file,
                          L->detect_line);
        }

        if (dg_onoff(L, f->name, v, "", "detect", &on) != 0) {
            return -1;
        }

        L->p->detect = on;
        L->detect_file = f->name;
        L->detect_line = v->line;
    }

    return 0;
}


static size_t
dg_count(dg_load_t *L, const char *key, int type)
{
    size_t             i, n;
    const dg_ynode_t  *sec;

    n = 0;

    for (i = 0; i < L->nfiles; i++) {
        sec = dg_section(L, &L->files[i], key, type);
        if (L->failed) {
            return 0;
        }
        if (sec != NULL) {
            n += type == DG_Y_MAP ? sec->n / 2 : sec->n;
        }
    }

    return n;
}


/*
 * room for the entries of a section in all files, and their id index
 * when h is given; NULL with the error set
 */

static void *
dg_section_alloc(dg_load_t *L, const char *key, int type, size_t size,
    dg_hash_t *h)
{
    size_t   n;
    void    *a;

    n = dg_count(L, key, type);
    if (L->failed) {
        return NULL;
    }

    a = dg_arena_array(L->a, n ? n : 1, size);
    if (a == NULL || (h != NULL && dg_hash_init(h, L->a, n) != 0)) {
        (void) dg_err(L, L->files[0].name, 1, key, NULL, "out of memory");
        return NULL;
    }

    return a;
}


/*
 * the id of a consumer or dataset mapping: given, well formed and not
 * defined before; what names the kind in the message, file_off and
 * line_off locate src_file and src_line in the kind's struct
 */

static int
dg_item_id(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, const dg_hash_t *h, const char *what,
    size_t file_off, size_t line_off, dg_str_t *id)
{
    const char        *o;
    const dg_str_t    *of;
    const dg_hent_t   *e;
    const dg_ynode_t  *idn;

    idn = dg_ymap_get(it, "id");
    if (idn == NULL) {
        return dg_err(L, file, it->line, path, "id",
                      "missing required key 'id'");
    }

    if (dg_id_ok(L, file, idn, path, "id") != 0) {
        return -1;
    }

    e = dg_hash_find(h, idn->str, idn->len);
    if (e != NULL) {
        o = e->val;
        of = (const dg_str_t *) (o + file_off);

        return dg_err(L, file, idn->line, path, "id",
                      "duplicate %s '%s' (first defined at %s:%u)", what,
                      idn->str, of->data, *(const unsigned *) (o + line_off));
    }

    if (dg_str_set(L, idn, id) != 0) {
        return dg_err(L, file, it->line, path, "id", "out of memory");
    }

    return 0;
}


static int
dg_load_classes(dg_load_t *L)
{
    size_t             i;
    char               path[DG_ID_MAX + 16];
    dg_class_t        *c;
    dg_ynode_t        *k, *v;
    dg_pfile_t        *f;
    const dg_hent_t   *e;
    const dg_ynode_t  *sec, *mv;

    L->p->classes = dg_section_alloc(L, "classes", DG_Y_MAP,
                                     sizeof(dg_class_t), &L->priv->classes);
    if (L->p->classes == NULL) {
        return -1;
    }

    for (i = 0; i < L->nfiles; i++) {
        f = &L->files[i];
        sec = dg_section(L, f, "classes", DG_Y_MAP);
        if (sec == NULL) {
            continue;
        }

        for (k = sec->child; k && k->next; k = k->next->next) {
            v = k->next;
            snprintf(path, sizeof(path), "classes.%.*s", DG_ID_MAX, k->str);

            if (dg_id_ok(L, f->name, k, "classes", NULL) != 0) {
                return -1;
            }

            e = dg_hash_find(&L->priv->classes, k->str, k->len);
            if (e != NULL) {
                c = (dg_class_t *) e->val;
                return dg_err(L, f->name, k->line, path, NULL,
                              "duplicate class '%s' (first defined at %s:%u)",
                              k->str, c->src_file.data, c->src_line);
            }

            if (v->type != DG_Y_MAP) {
                return dg_err(L, f->name, v->line, path, NULL,
                              "expected a mapping such as {level: 3, mask: "
                              "phone}, got %s", dg_ytype_name(v));
            }

            mv = dg_ymap_get(v, "mask");
            if (mv != NULL && mv->type == DG_Y_SCALAR
                && memchr(mv->str, '(', mv->len) != NULL
                && memchr(mv->str, ')', mv->len) == NULL)
            {
                return dg_err(L, f->name, mv->line, path, "mask",
                              "'%.64s' is cut at a comma: inside { } write "
                              "the method in quotes, e.g. mask: "
                              "\"keep(3,4)\"", mv->str);
            }

            if (dg_check_keys(L, f->name, v, path, dg_class_keys) != 0) {
                return -1;
            }

            c = &L->p->classes[L->p->nclasses];

            if (dg_str_set(L, k, &c->id) != 0) {
                return dg_err(L, f->name, k->line, path, NULL,
                              "out of memory");
            }

            c->src_file.data = f->name;
            c->src_file.len = strlen(f->name);
            c->src_line = k->line;

            if (dg_get_uint(L, f->name, v, path, "level", 1, 1, DG_LEVEL_MAX,
                            &c->level) < 0)
            {
                return -1;
            }

            mv = dg_ymap_get(v, "mask");
            if (mv == NULL) {
                return dg_err(L, f->name, v->line, path, "mask",
                              "missing required key 'mask'");
            }

            if (dg_y_null(mv) && mv->len != 0) {
                /* YAML reads a plain null or ~ as "no value" */
                return dg_err(L, f->name, mv->line, path, "mask",
                              "unquoted '%.8s' is YAML for no value: for "
                              "the null masking method write \"null\" in "
                              "quotes (mask: \"null\")", mv->str);
            }

            if (dg_expect(L, f->name, mv, path, "mask", DG_Y_SCALAR) != 0) {
                return -1;
            }

            if (dg_mask_spec_parse(mv->str, mv->len, &c->mask) != 0) {
                return dg_err(L, f->name, mv->line, path, "mask",
                              "unknown masking method '%.64s' (id_card, "
                              "phone, name, bank_card, email, address(N), "
                              "keep(A,B), landline, plate, ipv4, date_year, "
                              "hash, redact, null, drop)", mv->str);
            }

            if (dg_hash_add(&L->priv->classes, c->id.data, c->id.len, c)
                != 0)
            {
                return dg_err(L, f->name, k->line, path, NULL,
                              "out of memory");
            }

            L->p->nclasses++;
        }
    }

    return 0;
}


static int
dg_load_purposes(dg_load_t *L)
{
    size_t             i, n;
    char               path[DG_ID_MAX + 16];
    dg_ynode_t        *k, *v;
    dg_pfile_t        *f;
    dg_purpose_t      *pu;
    const dg_hent_t   *e;
    const dg_ynode_t  *sec;
    const char       **files;
    unsigned          *lines;

    n = dg_count(L, "purposes", DG_Y_MAP);
    if (L->failed) {
        return -1;
    }

    L->p->purposes = dg_arena_array(L->a, n ? n : 1, sizeof(dg_purpose_t));
    files = dg_arena_array(&L->tmp, n ? n : 1, sizeof(char *));
    lines = dg_arena_array(&L->tmp, n ? n : 1, sizeof(unsigned));

    if (L->p->purposes == NULL || files == NULL || lines == NULL
        || dg_hash_init(&L->priv->purposes, L->a, n) != 0)
    {
        return dg_err(L, L->files[0].name, 1, "purposes", NULL,
                      "out of memory");
    }

    for (i = 0; i < L->nfiles; i++) {
        f = &L->files[i];
        sec = dg_section(L, f, "purposes", DG_Y_MAP);
        if (sec == NULL) {
            continue;
        }

        for (k = sec->child; k && k->next; k = k->next->next) {
            v = k->next;
            snprintf(path, sizeof(path), "purposes.%.*s", DG_ID_MAX, k->str);

            if (dg_id_ok(L, f->name, k, "purposes", NULL) != 0) {
                return -1;
            }

            e = dg_hash_find(&L->priv->purposes, k->str, k->len);
            if (e != NULL) {
                pu = (dg_purpose_t *) e->val;
                return dg_err(L, f->name, k->line, path, NULL,
                              "duplicate purpose '%s' (first defined at "
                              "%s:%u)", k->str,
                              files[pu - L->p->purposes],
                              lines[pu - L->p->purposes]);
            }

            pu = &L->p->purposes[L->p->npurposes];
            files[L->p->npurposes] = f->name;
            lines[L->p->npurposes] = k->line;

            if (dg_str_set(L, k, &pu->id) != 0) {
                return dg_err(L, f->name, k->line, path, NULL,
                              "out of memory");
            }

            if (!dg_y_null(v)) {
                if (v->type != DG_Y_MAP) {
                    return dg_err(L, f->name, v->line, path, NULL,
                                  "expected a mapping such as {name: "
                                  "社会救助资格核验}, got %s",
                                  dg_ytype_name(v));
                }

                if (dg_check_keys(L, f->name, v, path, dg_purpose_keys) != 0
                    || dg_get_text(L, f->name, v, path, "name", 0,
                                   DG_TEXT_MAX, &pu->name, NULL) < 0)
                {
                    return -1;
                }
            }

            if (pu->name.data == NULL) {
                pu->name = pu->id;
            }

            if (dg_hash_add(&L->priv->purposes, pu->id.data, pu->id.len, pu)
                != 0)
            {
                return dg_err(L, f->name, k->line, path, NULL,
                              "out of memory");
            }

            L->p->npurposes++;
        }
    }

    return 0;
}


static int
dg_cidr_parse(const char *s, size_t len, dg_cidr_t *c)
{
    size_t    i, alen;
    unsigned  bits, max;
    char      buf[64];
    const char *slash;

    if (len == 0 || len >= sizeof(buf)) {
        return -1;
    }

    memcpy(buf, s, len);
    buf[len] = '\0';

    slash = strchr(buf, '/');
    alen = slash ? (size_t) (slash - buf) : len;
    buf[alen] = '\0';

    memset(c, 0, sizeof(dg_cidr_t));

    if (strchr(buf, ':') != NULL) {
        if (inet_pton(AF_INET6, buf, c->addr) != 1) {
            return -1;
        }
        c->family = AF_INET6;
        max = 128;

    } else {
        if (inet_pton(AF_INET, buf, c->addr) != 1) {
            return -1;
        }
        c->family = AF_INET;
        max = 32;
    }

    bits = max;

    if (slash != NULL) {
        s = slash + 1;
        if (*s == '\0' || strlen(s) > 3) {
            return -1;
        }
        bits = 0;
        for ( /* void */ ; *s; s++) {
            if (*s < '0' || *s > '9') {
                return -1;
            }
            bits = bits * 10 + (unsigned) (*s - '0');
        }
        if (bits > max) {
            return -1;
        }
    }

    for (i = 0; i < max / 8; i++) {
        if (bits >= 8) {
            c->mask[i] = 0xff;
            bits -= 8;
        } else {
            c->mask[i] = (uint8_t) (0xff << (8 - bits));
            bits = 0;
        }
    }

    for (i = 0; i < 16; i++) {
        if ((c->addr[i] & ~c->mask[i]) != 0) {
            return -2;
        }
    }

    return 0;
}


/* a distinguished name, canonical (dg_dn.h): 0 absent or set, -1 error */
static int
dg_load_dn(dg_load_t *L, const char *file, const dg_ynode_t *cm,
    const char *path, const char *key, dg_str_t *out)
{
    int                rc;
    size_t             n;
    char               err[DG_ERRLEN];
    const dg_ynode_t  *v;
    char               buf[DG_DN_MAX];
    dg_str_t           text;

    rc = dg_get_text(L, file, cm, path, key, 0, DG_TEXT_MAX, &text, &v);
    if (rc <= 0) {
        return rc;
    }

    n = dg_dn_parse(text.data, text.len, buf, sizeof(buf), err, sizeof(err));
    if (n == 0) {
        return dg_err(L, file, v->line, path, key, "%s", err);
    }

    out->data = dg_arena_strndup(L->a, buf, n);
    out->len = n;

    if (out->data == NULL) {
        return dg_err(L, file, v->line, path, key, "out of memory");
    }

    return 0;
}


static int
dg_load_cert(dg_load_t *L, const char *file, const dg_ynode_t *cm,
    const char *cpath, dg_consumer_t *c)
{
    int                any;
    char               path[80], buf[DG_SAN_MAX + 8];
    size_t             n, i;
    const dg_ynode_t  *v;

    snprintf(path, sizeof(path), "%s.cert", cpath);

    if (cm->type != DG_Y_MAP) {
        return dg_err(L, file, cm->line, path, NULL,
                      "expected a mapping such as {subject: \"CN=..,O=..,"
                      "C=CN\"}, got %s", dg_ytype_name(cm));
    }

    if (dg_check_keys(L, file, cm, path, dg_cert_keys) != 0) {
        return -1;
    }

    any = 0;

    if (dg_load_dn(L, file, cm, path, "subject", &c->subject) != 0) {
        return -1;
    }

    if (c->subject.len) {
        any = 1;
    }

    v = dg_ymap_get(cm, "fingerprint_sha256");
    if (v != NULL) {
        any = 1;
        if (dg_expect(L, file, v, path, "fingerprint_sha256", DG_Y_SCALAR)
            != 0)
        {
            return -1;
        }
        if (dg_fingerprint_parse(v->str, v->len, c->fingerprint) != 0) {
            return dg_err(L, file, v->line, path, "fingerprint_sha256",
                          "bad SHA-256 fingerprint '%.100s': expected 64 hex "
                          "digits, or AB:CD:.. as openssl x509 -fingerprint "
                          "-sha256 prints it", v->str);
        }
        c->has_fingerprint = 1;
    }

    v = dg_ymap_get(cm, "serial");
    if (v != NULL) {
        any = 1;
        if (dg_expect(L, file, v, path, "serial", DG_Y_SCALAR) != 0) {
            return -1;
        }
        n = dg_serial_normalize(v->str, v->len, buf, 128);
        if (n == 0) {
            return dg_err(L, file, v->line, path, "serial",
                          "bad serial '%.100s': expected hex digits as "
                          "OpenSSL prints them, such as 1A2B3C, 1A:2B:3C or "
                          "-5A5A", v->str);
        }
        c->serial.data = dg_arena_strndup(L->a, buf, n);
        c->serial.len = n;
        if (c->serial.data == NULL) {
            return dg_err(L, file, v->line, path, "serial", "out of memory");
        }
    }

    v = dg_ymap_get(cm, "san");
    if (v != NULL) {
        any = 1;
        if (dg_expect(L, file, v, path, "san", DG_Y_SCALAR) != 0
            || dg_text_ok(L, file, v, path, "san", DG_SAN_MAX) != 0)
        {
            return -1;
        }

        if (v->len > 4 && strncasecmp(v->str, "URI:", 4) == 0) {
            memcpy(buf, "URI:", 4);
            memcpy(buf + 4, v->str + 4, v->len - 4);

        } else if (v->len > 4 && strncasecmp(v->str, "DNS:", 4) == 0) {
            memcpy(buf, "DNS:", 4);
            for (i = 4; i < v->len; i++) {
                buf[i] = (v->str[i] >= 'A' && v->str[i] <= 'Z')
                         ? (char) (v->str[i] | 0x20) : v->str[i];
            }

        } else {
            return dg_err(L, file, v->line, path, "san",
                          "bad SAN '%.100s': expected URI:... or DNS:...",
                          v->str);
        }

        if (strchr(v->str + 4, ' ') != NULL) {
            return dg_err(L, file, v->line, path, "san",
                          "bad SAN '%.100s': spaces are not allowed", v->str);
        }

        c->san.data = dg_arena_strndup(L->a, buf, v->len);
        c->san.len = v->len;
        if (c->san.data == NULL) {
            return dg_err(L, file, v->line, path, "san", "out of memory");
        }
    }

    if (dg_load_dn(L, file, cm, path, "issuer", &c->issuer) != 0) {
        return -1;
    }

    v = dg_ymap_get(cm, "issuer_key_id");
    if (v != NULL) {
        if (dg_expect(L, file, v, path, "issuer_key_id", DG_Y_SCALAR) != 0) {
            return -1;
        }
        c->issuer_key_id_len = dg_keyid_parse(v->str, v->len,
                                              c->issuer_key_id,
                                              DG_KEYID_MAX);
        if (c->issuer_key_id_len == 0) {
            return dg_err(L, file, v->line, path, "issuer_key_id",
                          "bad key identifier '%.100s': expected hex digits "
                          "such as 8A:1F:..:C3 (openssl x509 -text, \"X509v3 "
                          "Authority Key Identifier\"), at most %d bytes",
                          v->str, DG_KEYID_MAX);
        }
    }

    if (!any) {
        return dg_err(L, file, cm->line, path, NULL,
                      "at least one of subject, fingerprint_sha256, serial, "
                      "san is required%s",
                      (c->issuer.len || c->issuer_key_id_len)
                      ? " (issuer and issuer_key_id only say which CA "
                        "signed it, not which certificate)" : "");
    }

    return 0;
}


static int
dg_load_geo(dg_load_t *L, const char *file, const dg_ynode_t *g,
    const char *cpath, dg_consumer_t *c)
{
    int                rc;
    char               path[80];
    const dg_ynode_t  *seq, *it;

    snprintf(path, sizeof(path), "%s.geo", cpath);

    if (g->type != DG_Y_MAP) {
        return dg_err(L, file, g->line, path, NULL,
                      "expected a mapping such as {countries: [CN]}, got %s",
                      dg_ytype_name(g));
    }

    if (dg_check_keys(L, file, g, path, dg_geo_keys) != 0) {
        return -1;
    }

    rc = dg_get_list(L, file, g, path, "countries", &seq);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        for (it = seq->child; it; it = it->next) {
            if (it->len != 2 || it->str[0] < 'A' || it->str[0] > 'Z'
                || it->str[1] < 'A' || it->str[1] > 'Z')
            {
                return dg_err(L, file, it->line, path, "countries",
                              "bad country '%.32s': expected an ISO 3166-1 "
                              "alpha-2 code in capitals such as CN",
                              it->str);
            }
        }

        if (dg_list_strs(L, file, seq, path, "countries", &c->countries,
                         &c->ncountries) != 0)
        {
            return -1;
        }
    }

    rc = dg_get_list(L, file, g, path, "regions", &seq);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        for (it = seq->child; it; it = it->next) {
            if (it->len == 0 || it->len > DG_ID_MAX) {
                return dg_err(L, file, it->line, path, "regions",
                              "bad region '%.32s'", it->str);
            }
        }

        if (dg_list_strs(L, file, seq, path, "regions", &c->regions,
                         &c->nregions) != 0)
        {
            return -1;
        }
    }

    if (c->ncountries == 0 && c->nregions == 0) {
        return dg_err(L, file, g->line, path, NULL,
                      "give countries, regions or both");
    }

    return 0;
}


static int
dg_load_consumers(dg_load_t *L)
{
    int                rc;
    char               path[64];
    size_t             i, k, j;
    unsigned           line;
    dg_pfile_t        *f;
    dg_ynode_t        *it;
    dg_consumer_t     *c;
    const dg_ynode_t  *sec, *v, *idn;

    L->p->consumers = dg_section_alloc(L, "consumers", DG_Y_SEQ,
                                       sizeof(dg_consumer_t),
                                       &L->priv->consumers);
    if (L->p->consumers == NULL) {
        return -1;
    }

    for (i = 0; i < L->nfiles; i++) {
        f = &L->files[i];
        sec = dg_section(L, f, "consumers", DG_Y_SEQ);
        if (sec == NULL) {
            continue;
        }

        for (k = 0, it = sec->child; it; it = it->next, k++) {
            snprintf(path, sizeof(path), "consumers[%zu]", k);
            line = it->line;

            if (dg_item_map(L, f->name, it, path, "id, cert, clearance",
                            dg_consumer_keys)
                != 0)
            {
                return -1;
            }

            c = &L->p->consumers[L->p->nconsumers];
            c->index = (unsigned) L->p->nconsumers;
            c->src_file.data = f->name;
            c->src_file.len = strlen(f->name);
            c->src_line = line;

            if (dg_item_id(L, f->name, it, path, &L->priv->consumers,
                           "consumer", offsetof(dg_consumer_t, src_file),
                           offsetof(dg_consumer_t, src_line), &c->id)
                != 0)
            {
                return -1;
            }

            if (dg_get_text(L, f->name, it, path, "org", 0, DG_TEXT_MAX,
                            &c->org, NULL) < 0)
            {
                return -1;
            }

            if (c->org.data == NULL) {
                c->org.data = "";
            }

            v = dg_ymap_get(it, "cert");
            if (v == NULL) {
                return dg_err(L, f->name, line, path, "cert",
                              "missing required key 'cert'");
            }

            if (dg_load_cert(L, f->name, v, path, c) != 0) {
                return -1;
            }

            if (dg_get_uint(L, f->name, it, path, "clearance", 1, 0,
                            DG_LEVEL_MAX, &c->clearance) < 0)
            {
                return -1;
            }

            rc = dg_get_list(L, f->name, it, path, "networks", &v);
            if (rc < 0) {
                return -1;
            }

            if (rc > 0) {
                c->networks = dg_arena_array(L->a, v->n, sizeof(dg_cidr_t));
                if (c->networks == NULL) {
                    return dg_err(L, f->name, v->line, path, "networks",
                                  "out of memory");
                }

                for (j = 0, idn = v->child; idn; idn = idn->next, j++) {
                    rc = dg_cidr_parse(idn->str, idn->len, &c->networks[j]);
                    if (rc == -2) {
                        return dg_err(L, f->name, idn->line, path, "networks",
                                      "'%.64s' has host bits set beyond "
                                      "the prefix length", idn->str);
                    }
                    if (rc != 0) {
                        return dg_err(L, f->name, idn->line, path, "networks",
                                      "bad network '%.64s': expected an "
                                      "address or CIDR such as 10.0.0.0/8 "
                                      "or 2001:db8::/32", idn->str);
                    }
                }
                c->nnetworks = j;
            }

            v = dg_ymap_get(it, "geo");
            if (v != NULL && dg_load_geo(L, f->name, v, path, c) != 0) {
                return -1;
            }

            if (dg_hash_add(&L->priv->consumers, c->id.data, c->id.len, c)
                != 0)
            {
                return dg_err(L, f->name, line, path, NULL, "out of memory");
            }

            L->p->nconsumers++;
        }
    }

    return 0;
}


/*
 * containers: selectors (like fields') of keys whose object or array is
 * kept and walked in allow-list mode although no field selects them, so
 * that records inside a wrapper ({"data": [...]}) keep their listed keys.
 */
static int
dg_load_containers(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, dg_dataset_t *d)
{
    int                rc;
    char               merr[256];
    size_t             j;
    dg_mask_rules_t   *r;
    dg_mask_field_t    w;
    const dg_ynode_t  *seq, *x, *y;

    rc = dg_get_list(L, file, it, path, "containers", &seq);
    if (rc <= 0) {
        return rc;
    }

    for (x = seq->child; x; x = x->next) {
        if (x->len == 0) {
            return dg_err(L, file, x->line, path, "containers",
                          "empty selector");
        }

        for (j = 0; j < d->nfields; j++) {
            if (d->fields[j].key.len == x->len
                && memcmp(d->fields[j].key.data, x->str, x->len) == 0)
            {
                return dg_err(L, file, x->line, path, "containers",
                              "'%.64s' is a field of the dataset (a field "
                              "whose class is shown in clear is walked "
                              "without being listed here)", x->str);
            }
        }

        for (y = seq->child; y != x; y = y->next) {
            if (y->len == x->len && memcmp(y->str, x->str, x->len) == 0) {
                return dg_err(L, file, x->line, path, "containers",
                              "'%.64s' is listed twice", x->str);
            }
        }

        /* the selector syntax, at its line */
        w.selector = x->str;
        w.len = x->len;
        merr[0] = '\0';
        r = dg_mask_rules_compile_ex(NULL, 0, &w, 1, 0, merr, sizeof(merr));
        if (r == NULL) {
            return dg_err(L, file, x->line, path, "containers", "%s",
                          merr[0] ? merr : "bad selector");
        }
        dg_mask_rules_free(r);
    }

    return dg_list_strs(L, file, seq, path, "containers", &d->containers,
                        &d->ncontainers);
}


/* "headers:": response headers of the provider passed besides the safe
 * set, by name, any case */
static int
dg_load_headers(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, dg_dataset_t *d)
{
    int                rc;
    const char        *why;
    const dg_ynode_t  *seq, *x, *y;

    rc = dg_get_list(L, file, it, path, "headers", &seq);
    if (rc <= 0) {
        return rc;
    }

    for (x = seq->child; x; x = x->next) {
        if (!dg_header_name_ok(x->str, x->len)) {
            return dg_err(L, file, x->line, path, "headers",
                          "bad header name '%.64s': expected 1 to %d "
                          "letters, digits or !#$%%&'*+-.^_`|~ (such as "
                          "X-Total-Count)", x->str, DG_HEADER_NAME_MAX);
        }

        why = dg_header_refused(x->str, x->len);
        if (why != NULL) {
            return dg_err(L, file, x->line, path, "headers",
                          "'%.64s' cannot be listed: %s", x->str, why);
        }

        for (y = seq->child; y != x; y = y->next) {
            if (y->len == x->len && strncasecmp(y->str, x->str, x->len) == 0)
            {
                return dg_err(L, file, x->line, path, "headers",
                              "'%.64s' is listed twice (names are compared "
                              "in any case)", x->str);
            }
        }
    }

    return dg_list_strs(L, file, seq, path, "headers", &d->headers,
                        &d->nheaders);
}


static int
dg_load_datasets(dg_load_t *L)
{
    int                rc;
    char               path[64];
    size_t             i, k, j;
    unsigned           line, on;
    dg_pfile_t        *f;
    dg_ynode_t        *it, *fk;
    dg_dataset_t      *d;
    const dg_hent_t   *e;
    const dg_ynode_t  *sec, *v;
    dg_str_t           s;

    L->p->datasets = dg_section_alloc(L, "datasets", DG_Y_SEQ,
                                      sizeof(dg_dataset_t),
                                      &L->priv->datasets);
    if (L->p->datasets == NULL) {
        return -1;
    }

    for (i = 0; i < L->nfiles; i++) {
        f = &L->files[i];
        sec = dg_section(L, f, "datasets", DG_Y_SEQ);
        if (sec == NULL) {
            continue;
        }

        for (k = 0, it = sec->child; it; it = it->next, k++) {
            snprintf(path, sizeof(path), "datasets[%zu]", k);
            line = it->line;

            if (dg_item_map(L, f->name, it, path, "id, share, level",
                            dg_dataset_keys)
                != 0)
            {
                return -1;
            }

            d = &L->p->datasets[L->p->ndatasets];
            d->index = (unsigned) L->p->ndatasets;
            d->src_file.data = f->name;
            d->src_file.len = strlen(f->name);
            d->src_line = line;
            d->detect = L->p->detect;

            if (dg_item_id(L, f->name, it, path, &L->priv->datasets,
                           "dataset", offsetof(dg_dataset_t, src_file),
                           offsetof(dg_dataset_t, src_line), &d->id)
                != 0)
            {
                return -1;
            }

            if (dg_get_text(L, f->name, it, path, "name", 0, DG_TEXT_MAX,
                            &d->name, NULL) < 0
                || dg_get_text(L, f->name, it, path, "provider", 0,
                               DG_TEXT_MAX, &d->provider, NULL) < 0)
            {
                return -1;
            }

            if (d->name.data == NULL) {
                d->name = d->id;
            }
            if (d->provider.data == NULL) {
                d->provider.data = "";
            }

            s.data = NULL;
            if (dg_get_text(L, f->name, it, path, "share", 1, 32, &s, &v)
                < 0)
            {
                return -1;
            }

            if (strcmp(s.data, "unconditional") == 0) {
                d->share = DG_SHARE_UNCONDITIONAL;
            } else if (strcmp(s.data, "conditional") == 0) {
                d->share = DG_SHARE_CONDITIONAL;
            } else if (strcmp(s.data, "none") == 0) {
                d->share = DG_SHARE_NONE;
            } else {
                return dg_err(L, f->name, v->line, path, "share",
                              "expected unconditional, conditional or none, "
                              "got '%s'", s.data);
            }

            if (dg_get_uint(L, f->name, it, path, "level", 1, 1,
                            DG_LEVEL_MAX, &d->level) < 0)
            {
                return -1;
            }

            v = dg_ymap_get(it, "unlisted");
            if (v != NULL) {
                if (dg_expect(L, f->name, v, path, "unlisted", DG_Y_SCALAR)
                    != 0)
                {
                    return -1;
                }
                if (strcmp(v->str, "drop") == 0) {
                    d->unlisted_drop = 1;
                } else if (strcmp(v->str, "pass") != 0) {
                    return dg_err(L, f->name, v->line, path, "unlisted",
                                  "expected pass or drop, got '%.32s'",
                                  v->str);
                }
            }

            v = dg_ymap_get(it, "detect");
            if (v != NULL) {
                if (dg_onoff(L, f->name, v, path, "detect", &on) != 0) {
                    return -1;
                }
                d->detect = on;
            }

            rc = dg_load_methods(L, L->p, f->name, it, path, NULL,
                                 &d->methods);
            if (rc < 0) {
                return -1;
            }

            if (rc == 0) {
                d->methods = DG_METHOD_DEFAULT;
            }

            if (dg_load_limits(L, f->name, it, path, &d->limit, &d->rate_str,
                               &d->quota_str)
                != 0)
            {
                return -1;
            }

            if (dg_load_headers(L, f->name, it, path, d) != 0) {
                return -1;
            }

            v = dg_ymap_get(it, "fields");
            if (v != NULL && !dg_y_null(v)) {
                if (v->type != DG_Y_MAP) {
                    return dg_err(L, f->name, v->line, path, "fields",
                                  "expected a mapping of JSON key to class, "
                                  "such as {id_card: person.id_number}, "
                                  "got %s", dg_ytype_name(v));
                }

                d->fields = dg_arena_array(L->a, v->n / 2 ? v->n / 2 : 1,
                                           sizeof(dg_field_t));
                if (d->fields == NULL) {
                    return dg_err(L, f->name, v->line, path, "fields",
                                  "out of memory");
                }

                for (j = 0, fk = v->child; fk && fk->next;
                     fk = fk->next->next, j++)
                {
                    char  fpath[DG_ID_MAX + 80];

                    snprintf(fpath, sizeof(fpath), "%s.fields", path);

                    if (fk->len == 0 || dg_text_ok(L, f->name, fk, fpath,
                                                    NULL, DG_TEXT_MAX) != 0)
                    {
                        return dg_err(L, f->name, fk->line, fpath, NULL,
                                      "empty field selector");
                    }

                    snprintf(fpath, sizeof(fpath), "%s.fields.%.*s", path,
                             DG_ID_MAX, fk->str);

                    if (dg_expect(L, f->name, fk->next, fpath, NULL,
                                  DG_Y_SCALAR) != 0)
                    {
                        return -1;
                    }

                    e = dg_hash_find(&L->priv->classes, fk->next->str,
                                     fk->next->len);
                    if (e == NULL) {
                        const char  *hint;

                        hint = dg_suggest_ids(fk->next->str, fk->next->len,
                                              L->p->classes,
                                              L->p->nclasses,
                                              sizeof(dg_class_t),
                                              offsetof(dg_class_t, id));
                        return dg_err(L, f->name, fk->next->line, fpath,
                                      NULL, "unknown class '%.64s'%s%s%s",
                                      fk->next->str,
                                      hint ? " (did you mean '" : "",
                                      hint ? hint : "", hint ? "'?)" : "");
                    }

                    if (dg_str_set(L, fk, &d->fields[j].key) != 0) {
                        return dg_err(L, f->name, fk->line, fpath, NULL,
                                      "out of memory");
                    }

                    d->fields[j].cls = (int) ((const dg_class_t *) e->val
                                              - L->p->classes);
                }

                d->nfields = j;
            }

            if (dg_load_containers(L, f->name, it, path, d) != 0) {
                return -1;
            }

            rc = dg_hash_add(&L->priv->datasets, d->id.data, d->id.len, d);
            if (rc != 0) {
                return dg_err(L, f->name, line, path, NULL, "out of memory");
            }

            L->p->ndatasets++;
        }
    }

    return 0;
}


/* one grant mapping (policy or run time) */

static int
dg_load_grant(dg_load_t *L, const dg_policy_t *p, const char *file,
    const dg_ynode_t *it, const char *path, dg_grant_t *g)
{
    int                rc, y, m, dd;
    size_t             j;
    const char        *hint;
    dg_str_t           s;
    const dg_hent_t   *e;
    const dg_ynode_t  *v, *seq, *x, *y2;
    dg_policy_priv_t  *priv;

    priv = p->priv;

    if (dg_item_map(L, file, it, path, "consumer, dataset, purposes",
                    dg_grant_keys)
        != 0)
    {
        return -1;
    }

    g->src_file.data = file;
    g->src_file.len = strlen(file);
    g->src_line = it->line;

    /* consumer */

    if (dg_get_text(L, file, it, path, "consumer", 1, DG_ID_MAX, &s, &v)
        < 0)
    {
        return -1;
    }

    e = dg_hash_find(&priv->consumers, s.data, s.len);
    if (e == NULL) {
        hint = dg_suggest_ids(s.data, s.len, p->consumers, p->nconsumers,
                              sizeof(dg_consumer_t),
                              offsetof(dg_consumer_t, id));
        return dg_err(L, file, v->line, path, "consumer",
                      "unknown consumer '%s'%s%s%s", s.data,
                      hint ? " (did you mean '" : "", hint ? hint : "",
                      hint ? "'?)" : "");
    }
    g->consumer = e->val;

    /* dataset */

    if (dg_get_text(L, file, it, path, "dataset", 1, DG_ID_MAX, &s, &v) < 0)
    {
        return -1;
    }

    e = dg_hash_find(&priv->datasets, s.data, s.len);
    if (e == NULL) {
        hint = dg_suggest_ids(s.data, s.len, p->datasets, p->ndatasets,
                              sizeof(dg_dataset_t),
                              offsetof(dg_dataset_t, id));
        return dg_err(L, file, v->line, path, "dataset",
                      "unknown dataset '%s'%s%s%s", s.data,
                      hint ? " (did you mean '" : "", hint ? hint : "",
                      hint ? "'?)" : "");
    }
    g->dataset = e->val;

    if (g->dataset->share == DG_SHARE_NONE) {
        return dg_err(L, file, v->line, path, "dataset",
                      "dataset '%s' has share: none (不予共享) and cannot be "
                      "granted", s.data);
    }

    if (g->dataset->share == DG_SHARE_UNCONDITIONAL
        && g->consumer->clearance < g->dataset->level)
    {
        return dg_err(L, file, v->line, path, "dataset",
                      "consumer '%s' has clearance %u, below level %u of "
                      "unconditional dataset '%s': a grant there only adds "
                      "to access by clearance, so it could never apply",
                      g->consumer->id.data, g->consumer->clearance,
                      g->dataset->level, s.data);
    }

    /* purposes */

    v = dg_ymap_get(it, "purposes");
    if (v == NULL) {
        return dg_err(L, file, it->line, path, "purposes",
                      "missing required key 'purposes'");
    }

    rc = dg_get_list(L, file, it, path, "purposes", &seq);
    if (rc < 0) {
        return -1;
    }

    g->purposes = dg_arena_array(L->a, seq->n, sizeof(dg_purpose_t *));
    if (g->purposes == NULL) {
        return dg_err(L, file, seq->line, path, "purposes", "out of memory");
    }

    for (x = seq->child; x; x = x->next) {
        e = dg_hash_find(&priv->purposes, x->str, x->len);
        if (e == NULL) {
            hint = dg_suggest_ids(x->str, x->len, p->purposes, p->npurposes,
                                  sizeof(dg_purpose_t),
                                  offsetof(dg_purpose_t, id));
            return dg_err(L, file, x->line, path, "purposes",
                          "unknown purpose '%.64s'%s%s%s", x->str,
                          hint ? " (did you mean '" : "", hint ? hint : "",
                          hint ? "'?)" : "");
        }

        for (j = 0; j < g->npurposes; j++) {
            if (g->purposes[j] == e->val) {
                return dg_err(L, file, x->line, path, "purposes",
                              "purpose '%.64s' is listed twice", x->str);
            }
        }

        g->purposes[g->npurposes++] = e->val;
    }

    /* approval */

    rc = dg_get_text(L, file, it, path, "approval", 0, DG_ID_MAX,
                     &g->approval, &v);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        for (j = 0; j < g->approval.len; j++) {
            if ((unsigned char) g->approval.data[j] <= 0x20
                || (unsigned char) g->approval.data[j] >= 0x7f)
            {
                return dg_err(L, file, v->line, path, "approval",
                              "approval numbers are printable ASCII without "
                              "spaces (they travel in the Data-Approval "
                              "header)");
            }
        }

    } else {
        g->approval.data = "";
        g->approval.len = 0;
    }

    /* valid */

    v = dg_ymap_get(it, "valid");
    if (v != NULL) {
        char  vpath[96];

        snprintf(vpath, sizeof(vpath), "%s.valid", path);

        if (v->type != DG_Y_MAP) {
            return dg_err(L, file, v->line, vpath, NULL,
                          "expected a mapping such as {from: 2024-01-01, "
                          "until: 2026-12-31}, got %s", dg_ytype_name(v));
        }

        if (dg_check_keys(L, file, v, vpath, dg_valid_keys) != 0) {
            return -1;
        }

        x = dg_ymap_get(v, "from");
        y2 = dg_ymap_get(v, "until");

        if (x == NULL && y2 == NULL) {
            return dg_err(L, file, v->line, vpath, NULL,
                          "give from, until or both");
        }

        if (x != NULL) {
            if (dg_expect(L, file, x, vpath, "from", DG_Y_SCALAR) != 0) {
                return -1;
            }
            if (dg_date_parse(x->str, x->len, &y, &m, &dd) != 0) {
                return dg_err(L, file, x->line, vpath, "from",
                              "bad date '%.32s': expected a real calendar "
                              "date YYYY-MM-DD", x->str);
            }
            g->valid_from = dg_date_start(y, m, dd);
        }

        if (y2 != NULL) {
            if (dg_expect(L, file, y2, vpath, "until", DG_Y_SCALAR) != 0) {
                return -1;
            }
            if (dg_date_parse(y2->str, y2->len, &y, &m, &dd) != 0) {
                return dg_err(L, file, y2->line, vpath, "until",
                              "bad date '%.32s': expected a real calendar "
                              "date YYYY-MM-DD", y2->str);
            }
            g->valid_until = dg_date_start(y, m, dd) + 86400 - 1;
        }

        if (x != NULL && y2 != NULL && g->valid_from > g->valid_until) {
            return dg_err(L, file, y2->line, vpath, "until",
                          "%s is before from %s", y2->str, x->str);
        }
    }

    /* methods: a subset of the dataset's */

    if (dg_load_methods(L, p, file, it, path, g->dataset, &g->methods) < 0) {
        return -1;
    }

    /* reveal: fields of the dataset, by name */

    rc = dg_get_list(L, file, it, path, "reveal", &seq);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        for (x = seq->child; x; x = x->next) {
            for (j = 0; j < g->dataset->nfields; j++) {
                if (g->dataset->fields[j].key.len == x->len
                    && memcmp(g->dataset->fields[j].key.data, x->str, x->len)
                       == 0)
                {
                    break;
                }
            }

            if (j == g->dataset->nfields) {
                return dg_err(L, file, x->line, path, "reveal",
                              "'%.64s' is not a field of dataset '%s'",
                              x->str, g->dataset->id.data);
            }
        }

        if (dg_list_strs(L, file, seq, path, "reveal", &g->reveal,
                         &g->nreveal) != 0)
        {
            return -1;
        }
    }

    /* drop: any keys */

    rc = dg_get_list(L, file, it, path, "drop", &seq);
    if (rc < 0) {
        return -1;
    }

    if (rc > 0) {
        for (x = seq->child; x; x = x->next) {
            if (x->len == 0) {
                return dg_err(L, file, x->line, path, "drop",
                              "empty key");
            }

            for (j = 0; j < g->nreveal; j++) {
                if (g->reveal[j].len == x->len
                    && memcmp(g->reveal[j].data, x->str, x->len) == 0)
                {
                    return dg_err(L, file, x->line, path, "drop",
                                  "'%.64s' is both revealed and dropped",
                                  x->str);
                }
            }

            for (y2 = seq->child; y2 != x; y2 = y2->next) {
                if (y2->len == x->len && memcmp(y2->str, x->str, x->len) == 0)
                {
                    return dg_err(L, file, x->line, path, "drop",
                                  "'%.64s' is listed twice", x->str);
                }
            }
        }

        if (dg_list_strs(L, file, seq, path, "drop", &g->drop, &g->ndrop)
            != 0)
        {
            return -1;
        }
    }

    /* rate, quota */

    if (dg_load_limits(L, file, it, path, &g->limit, &g->rate_str,
                       &g->quota_str)
        != 0)
    {
        return -1;
    }

    if (g->dataset->share == DG_SHARE_UNCONDITIONAL && g->methods == 0
        && g->nreveal == 0 && g->ndrop == 0 && g->rate_str.len == 0
        && g->quota_str.len == 0)
    {
        return dg_err(L, file, it->line, path, NULL,
                      "a grant on unconditional dataset '%s' adds methods, "
                      "reveal, drop, rate or quota to access by clearance; "
                      "this one sets none of them and would have no effect",
                      g->dataset->id.data);
    }

    return 0;
}


static int
dg_load_grants(dg_load_t *L)
{
    char               path[64];
    size_t             i, k;
    dg_pfile_t        *f;
    dg_ynode_t        *it;
    dg_grant_t        *g;
    const dg_ynode_t  *sec;

    L->p->grants = dg_section_alloc(L, "grants", DG_Y_SEQ,
                                    sizeof(dg_grant_t), NULL);
    if (L->p->grants == NULL) {
        return -1;
    }

    for (i = 0; i < L->nfiles; i++) {
        f = &L->files[i];
        sec = dg_section(L, f, "grants", DG_Y_SEQ);
        if (sec == NULL) {
            continue;
        }

        for (k = 0, it = sec->child; it; it = it->next, k++) {
            snprintf(path, sizeof(path), "grants[%zu]", k);

            g = &L->p->grants[L->p->ngrants];
            g->index = (unsigned) L->p->ngrants;

            if (dg_load_grant(L, L->p, f->name, it, path, g) != 0) {
                return -1;
            }

            L->p->ngrants++;
        }
    }

    return 0;
}


/* plans */

static int
dg_own_rules(dg_load_t *L, dg_mask_rules_t *r)
{
    dg_mask_rules_t  **nr;
    dg_policy_priv_t  *priv;

    if (L->own_rules != NULL) {
        *L->own_rules = r;
        return 0;
    }

    priv = L->priv;

    if (priv->nrules == priv->rules_cap) {
        nr = realloc(priv->rules, (priv->rules_cap * 2 + 8)
                                  * sizeof(dg_mask_rules_t *));
        if (nr == NULL) {
            return -1;
        }
        priv->rules = nr;
        priv->rules_cap = priv->rules_cap * 2 + 8;
    }

    priv->rules[priv->nrules++] = r;

    return 0;
}


/* the dataset's containers as selectors for the masker (NULL: none) */
static dg_mask_field_t *
dg_plan_containers(dg_load_t *L, const dg_dataset_t *d)
{
    size_t            j;
    dg_mask_field_t  *w;

    if (d->ncontainers == 0) {
        return NULL;
    }

    w = dg_arena_array(&L->tmp, d->ncontainers, sizeof(dg_mask_field_t));
    if (w == NULL) {
        return NULL;
    }

    for (j = 0; j < d->ncontainers; j++) {
        w[j].selector = d->containers[j].data;
        w[j].len = d->containers[j].len;
    }

    return w;
}


static unsigned
dg_plan_flags(const dg_dataset_t *d)
{
    return (d->unlisted_drop ? DG_MASK_UNLISTED_DROP : 0)
           | (d->detect ? DG_MASK_DETECT : 0);
}


static int
dg_rules_check(dg_load_t *L, const dg_mask_rules_t *r, size_t n,
    const char *file, unsigned line, const char *path)
{
    if (dg_mask_rules_nfields(r) != n) {
        return dg_err(L, file, line, path, NULL,
                      "internal error: masking rule count mismatch");
    }

    return 0;
}


static int
dg_plan_datasets(dg_load_t *L)
{
    char               path[64], merr[256];
    size_t             i, j, c;
    unsigned           flags;
    dg_plan_t         *pl;
    dg_dataset_t      *d;
    dg_mask_spec_t    *act;
    int               *cls;
    dg_mask_rules_t   *r;
    dg_mask_field_t   *mf, *wk;
    const dg_class_t  *cl;

    for (i = 0; i < L->p->ndatasets; i++) {
        d = &L->p->datasets[i];
        snprintf(path, sizeof(path), "datasets[%s].fields", d->id.data);
        flags = dg_plan_flags(d);
        r = NULL;

        if (d->nfields > 0 || flags) {
            mf = dg_arena_array(&L->tmp, d->nfields ? d->nfields : 1,
                                sizeof(dg_mask_field_t));
            if (mf == NULL) {
                return dg_err(L, d->src_file.data, d->src_line, path, NULL,
                              "out of memory");
            }

            for (j = 0; j < d->nfields; j++) {
                mf[j].selector = d->fields[j].key.data;
                mf[j].len = d->fields[j].key.len;
            }

            wk = dg_plan_containers(L, d);
            if (d->ncontainers && wk == NULL) {
                return dg_err(L, d->src_file.data, d->src_line, path, NULL,
                              "out of memory");
            }

            merr[0] = '\0';
            r = dg_mask_rules_compile_ex(mf, d->nfields, wk, d->ncontainers,
                                         flags, merr, sizeof(merr));
            if (r == NULL) {
                return dg_err(L, d->src_file.data, d->src_line, path, NULL,
                              "%s", merr[0] ? merr : "bad field selector");
            }

            if (dg_own_rules(L, r) != 0) {
                dg_mask_rules_free(r);
                return dg_err(L, d->src_file.data, d->src_line, path, NULL,
                              "out of memory");
            }

            if (dg_rules_check(L, r, d->nfields, d->src_file.data,
                               d->src_line, path) != 0)
            {
                return -1;
            }
        }

        cls = dg_arena_array(L->a, d->nfields ? d->nfields : 1, sizeof(int));
        if (cls == NULL) {
            return dg_err(L, d->src_file.data, d->src_line, path, NULL,
                          "out of memory");
        }

        for (j = 0; j < d->nfields; j++) {
            cls[j] = d->fields[j].cls;
        }

        for (c = 0; c <= DG_LEVEL_MAX; c++) {
            pl = &d->plan_by_clearance[c];
            act = dg_arena_array(L->a, d->nfields ? d->nfields : 1,
                                 sizeof(dg_mask_spec_t));
            if (act == NULL) {
                return dg_err(L, d->src_file.data, d->src_line, path, NULL,
                              "out of memory");
            }

            pl->rules = r;
            pl->actions = act;
            pl->classes = cls;
            pl->nfields = d->nfields;
            /* a dataset that lists fields always goes through the engine,
             * count-only when all is clear: unlisted keys are counted */
            pl->masks = flags != 0 || d->nfields > 0;

            for (j = 0; j < d->nfields; j++) {
                cl = &L->p->classes[d->fields[j].cls];
                if (cl->level > c) {
                    act[j] = cl->mask;
                } else {
                    act[j].method = DG_MASK_CLEAR;
                }
                if (act[j].method != DG_MASK_CLEAR) {
                    pl->masks = 1;
                }
            }
        }
    }

    return 0;
}


static int
dg_plan_grant(dg_load_t *L, const dg_policy_t *p, dg_grant_t *g,
    const char *path)
{
    char                 merr[256];
    size_t               j, k, n, nextra;
    unsigned             flags;
    dg_plan_t           *pl;
    dg_mask_spec_t      *act;
    int                 *cls;
    dg_mask_rules_t     *r;
    dg_mask_field_t     *mf, *wk;
    const dg_class_t    *cl;
    const dg_dataset_t  *d;
    unsigned char       *extra;

    d = g->dataset;
    pl = &g->plan;
    flags = dg_plan_flags(d);

    /* drop keys that are not fields of the dataset become extra fields */
    extra = dg_arena_alloc(&L->tmp, g->ndrop ? g->ndrop : 1);
    if (extra == NULL) {
        return dg_err(L, g->src_file.data, g->src_line, path, NULL,
                      "out of memory");
    }

    nextra = 0;

    for (k = 0; k < g->ndrop; k++) {
        extra[k] = 1;
        for (j = 0; j < d->nfields; j++) {
            if (d->fields[j].key.len == g->drop[k].len
                && memcmp(d->fields[j].key.data, g->drop[k].data,
                          g->drop[k].len) == 0)
            {
                extra[k] = 0;
                break;
            }
        }
        nextra += extra[k];
    }

    n = d->nfields + nextra;

    if (nextra == 0) {
        r = (dg_mask_rules_t *) d->plan_by_clearance[0].rules;

    } else {
        mf = dg_arena_array(&L->tmp, n, sizeof(dg_mask_field_t));
        if (mf == NULL) {
            return dg_err(L, g->src_file.data, g->src_line, path, NULL,
                          "out of memory");
        }

        for (j = 0; j < d->nfields; j++) {
            mf[j].selector = d->fields[j].key.data;
            mf[j].len = d->fields[j].key.len;
        }

        for (k = 0, j = d->nfields; k < g->ndrop; k++) {
            if (extra[k]) {
                mf[j].selector = g->drop[k].data;
                mf[j].len = g->drop[k].len;
                j++;
            }
        }

        wk = dg_plan_containers(L, d);
        if (d->ncontainers && wk == NULL) {
            return dg_err(L, g->src_file.data, g->src_line, path, NULL,
                          "out of memory");
        }

        merr[0] = '\0';
        r = dg_mask_rules_compile_ex(mf, n, wk, d->ncontainers, flags, merr,
                                     sizeof(merr));
        if (r == NULL) {
            return dg_err(L, g->src_file.data, g->src_line, path, "drop",
                          "%s", merr[0] ? merr : "bad key");
        }

        if (dg_own_rules(L, r) != 0) {
            dg_mask_rules_free(r);
            return dg_err(L, g->src_file.data, g->src_line, path, NULL,
                          "out of memory");
        }

        if (dg_rules_check(L, r, n, g->src_file.data, g->src_line, path)
            != 0)
        {
            return -1;
        }
    }

    act = dg_arena_array(L->a, n ? n : 1, sizeof(dg_mask_spec_t));
    cls = dg_arena_array(L->a, n ? n : 1, sizeof(int));
    if (act == NULL || cls == NULL) {
        return dg_err(L, g->src_file.data, g->src_line, path, NULL,
                      "out of memory");
    }

    pl->rules = r;
    pl->actions = act;
    pl->classes = cls;
    pl->nfields = n;
    pl->masks = flags != 0 || n > 0;        /* see dg_plan_datasets() */

    for (j = 0; j < d->nfields; j++) {
        cl = &p->classes[d->fields[j].cls];
        cls[j] = d->fields[j].cls;
        act[j].method = DG_MASK_CLEAR;

        for (k = 0; k < g->ndrop; k++) {
            if (g->drop[k].len == d->fields[j].key.len
                && memcmp(g->drop[k].data, d->fields[j].key.data,
                          g->drop[k].len) == 0)
            {
                act[j].method = DG_MASK_DROP;
                break;
            }
        }

        if (act[j].method == DG_MASK_DROP) {
            pl->masks = 1;
            continue;
        }

        if (cl->level <= g->consumer->clearance) {
            continue;
        }

        for (k = 0; k < g->nreveal; k++) {
            if (g->reveal[k].len == d->fields[j].key.len
                && memcmp(g->reveal[k].data, d->fields[j].key.data,
                          g->reveal[k].len) == 0)
            {
                break;
            }
        }

        if (k == g->nreveal) {
            act[j] = cl->mask;
            if (act[j].method != DG_MASK_CLEAR) {
                pl->masks = 1;
            }
        }
    }

    for (j = d->nfields; j < n; j++) {
        cls[j] = -1;
        act[j].method = DG_MASK_DROP;
        pl->masks = 1;
    }

    return 0;
}


static int
dg_str_eq(const dg_str_t *a, const dg_str_t *b)
{
    return a->len == b->len && (a->len == 0
                                || memcmp(a->data, b->data, a->len) == 0);
}


/* a consumer with the same matchers as an earlier one could never match */

static int
dg_same_cert_check(dg_load_t *L, const dg_consumer_t *c)
{
    const dg_hash_t      *h;
    const dg_hent_t      *e;
    const dg_consumer_t  *o;
    char                  path[DG_ID_MAX + 32];

    if (c->has_fingerprint) {
        h = &L->priv->by_fingerprint;
        e = dg_hash_find(h, c->fingerprint, 32);
    } else if (c->serial.len) {
        h = &L->priv->by_serial;
        e = dg_hash_find(h, c->serial.data, c->serial.len);
    } else if (c->subject.len) {
        h = &L->priv->by_subject;
        e = dg_hash_find(h, c->subject.data, c->subject.len);
    } else {
        h = &L->priv->by_san;
        e = dg_hash_find(h, c->san.data, c->san.len);
    }

    for ( /* void */ ; e; e = dg_hash_next(h, e)) {
        o = e->val;

        if (o->index >= c->index) {
            break;
        }

        if (o->has_fingerprint == c->has_fingerprint
            && (!c->has_fingerprint
                || memcmp(o->fingerprint, c->fingerprint, 32) == 0)
            && dg_str_eq(&o->serial, &c->serial)
            && dg_str_eq(&o->subject, &c->subject)
            && dg_str_eq(&o->san, &c->san)
            && dg_str_eq(&o->issuer, &c->issuer)
            && o->issuer_key_id_len == c->issuer_key_id_len
            && memcmp(o->issuer_key_id, c->issuer_key_id,
                      c->issuer_key_id_len) == 0)
        {
            snprintf(path, sizeof(path), "consumers[id=%s].cert",
                     c->id.data);
            return dg_err(L, c->src_file.data, c->src_line, path, NULL,
                          "same certificate matchers as consumer '%s' "
                          "(%s:%u): it could never match", o->id.data,
                          o->src_file.data, o->src_line);
        }
    }

    return 0;
}


static int
dg_index(dg_load_t *L)
{
    size_t             i, nfp, nser, nsub, nsan;
    char               path[64];
    dg_grant_t        *g;
    dg_cd_key_t       *keys;
    dg_consumer_t     *c;
    dg_policy_priv_t  *priv;
    int                rc;

    priv = L->priv;
    nfp = nser = nsub = nsan = 0;

    for (i = 0; i < L->p->nconsumers; i++) {
        c = &L->p->consumers[i];
        if (c->has_fingerprint) {
            nfp++;
        } else if (c->serial.len) {
            nser++;
        } else if (c->subject.len) {
            nsub++;
        } else {
            nsan++;
        }
    }

    if (dg_hash_init(&priv->by_fingerprint, L->a, nfp) != 0
        || dg_hash_init(&priv->by_serial, L->a, nser) != 0
        || dg_hash_init(&priv->by_subject, L->a, nsub) != 0
        || dg_hash_init(&priv->by_san, L->a, nsan) != 0
        || dg_hash_init(&priv->grants_by_cd, L->a, L->p->ngrants) != 0)
    {
        return dg_err(L, L->files[0].name, 1, "policy", NULL,
                      "out of memory");
    }

    for (i = 0; i < L->p->nconsumers; i++) {
        c = &L->p->consumers[i];

        /* each consumer is indexed by its first matcher */
        if (c->has_fingerprint) {
            rc = dg_hash_add(&priv->by_fingerprint, c->fingerprint, 32, c);
        } else if (c->serial.len) {
            rc = dg_hash_add(&priv->by_serial, c->serial.data, c->serial.len,
                             c);
        } else if (c->subject.len) {
            rc = dg_hash_add(&priv->by_subject, c->subject.data,
                             c->subject.len, c);
        } else {
            rc = dg_hash_add(&priv->by_san, c->san.data, c->san.len, c);
        }

        if (rc != 0) {
            return dg_err(L, L->files[0].name, 1, "policy", NULL,
                          "out of memory");
        }

        if (dg_same_cert_check(L, c) != 0) {
            return -1;
        }
    }

    keys = dg_arena_array(L->a, L->p->ngrants ? L->p->ngrants : 1,
                          sizeof(dg_cd_key_t));
    if (keys == NULL) {
        return dg_err(L, L->files[0].name, 1, "policy", NULL,
                      "out of memory");
    }

    for (i = 0; i < L->p->ngrants; i++) {
        g = &L->p->grants[i];
        keys[i].consumer = g->consumer->index;
        keys[i].dataset = g->dataset->index;

        if (dg_hash_add(&priv->grants_by_cd, &keys[i], sizeof(dg_cd_key_t),
                        g) != 0)
        {
            return dg_err(L, L->files[0].name, 1, "policy", NULL,
                          "out of memory");
        }

        snprintf(path, sizeof(path), "grants[%zu]", i);

        if (dg_plan_grant(L, L->p, g, path) != 0) {
            return -1;
        }
    }

    return 0;
}


static int
dg_version(dg_load_t *L)
{
    size_t         i, blen;
    uint8_t        lenbuf[8];
    uint64_t       n;
    unsigned       k, mdlen;
    EVP_MD_CTX    *md;
    dg_pfile_t    *f;
    static const char  hex[] = "0123456789abcdef";

    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return dg_err(L, L->files[0].name, 1, "policy", NULL,
                      "SHA-256 unavailable");
    }

    for (i = 0; i < L->nfiles; i++) {
        f = &L->files[i];
        blen = strlen(f->base);
        n = f->len;

        for (k = 0; k < 8; k++) {
            lenbuf[k] = (uint8_t) (n >> (56 - 8 * k));
        }

        if (EVP_DigestUpdate(md, f->base, blen + 1) != 1
            || EVP_DigestUpdate(md, lenbuf, 8) != 1
            || EVP_DigestUpdate(md, f->data, f->len) != 1)
        {
            EVP_MD_CTX_free(md);
            return dg_err(L, L->files[0].name, 1, "policy", NULL,
                          "SHA-256 failed");
        }
    }

    mdlen = 32;
    if (EVP_DigestFinal_ex(md, L->p->version, &mdlen) != 1 || mdlen != 32) {
        EVP_MD_CTX_free(md);
        return dg_err(L, L->files[0].name, 1, "policy", NULL,
                      "SHA-256 failed");
    }

    EVP_MD_CTX_free(md);

    for (k = 0; k < 32; k++) {
        L->p->version_hex[2 * k] = hex[L->p->version[k] >> 4];
        L->p->version_hex[2 * k + 1] = hex[L->p->version[k] & 0xf];
    }
    L->p->version_hex[64] = '\0';

    return 0;
}


/* the whole load, from L->files with data filled in */

static dg_policy_t *
dg_compile(dg_load_t *L)
{
    dg_arena_t         arena;
    dg_policy_t       *p;
    dg_policy_priv_t  *priv;
    size_t             i;

    memset(&arena, 0, sizeof(dg_arena_t));

    priv = dg_arena_alloc(&arena, sizeof(dg_policy_priv_t));
    p = dg_arena_alloc(&arena, sizeof(dg_policy_t));
    if (priv == NULL || p == NULL) {
        dg_arena_free(&arena);
        snprintf(L->err, L->errlen, "%s: out of memory", L->files[0].name);
        return NULL;
    }

    p->priv = priv;
    L->p = p;
    L->priv = priv;
    L->a = &arena;

    /* keep the file names for src_file pointers */
    for (i = 0; i < L->nfiles; i++) {
        L->files[i].name = dg_arena_strndup(&arena, L->files[i].name,
                                            strlen(L->files[i].name));
        if (L->files[i].name == NULL) {
            snprintf(L->err, L->errlen, "%s:1: policy: out of memory",
                     L->files[0].base);
            goto failed;
        }
    }

    if (dg_parse_files(L) != 0
        || dg_load_levels(L) != 0
        || dg_load_detect(L) != 0
        || dg_load_classes(L) != 0
        || dg_load_purposes(L) != 0
        || dg_load_consumers(L) != 0
        || dg_load_datasets(L) != 0
        || dg_load_grants(L) != 0
        || dg_plan_datasets(L) != 0
        || dg_index(L) != 0
        || dg_version(L) != 0)
    {
        goto failed;
    }

    priv->arena = arena;

    return p;

failed:

    for (i = 0; i < priv->nrules; i++) {
        dg_mask_rules_free(priv->rules[i]);
    }
    free(priv->rules);
    dg_arena_free(&arena);

    return NULL;
}


dg_policy_t *
dg_policy_load(const char *path, char *err, size_t errlen)
{
    size_t        i;
    dg_load_t     L;
    dg_policy_t  *p;
    struct stat   st;
    const char   *base;
    char          dummy[1];

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }

    memset(&L, 0, sizeof(dg_load_t));
    L.err = err;
    L.errlen = errlen;
    L.budget = DG_YAML_MAX_NODES;
    err[0] = '\0';

    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }

    if (S_ISDIR(st.st_mode)) {
        if (dg_list_dir(&L, path) != 0) {
            goto failed;
        }

    } else {
        L.files = dg_arena_alloc(&L.tmp, sizeof(dg_pfile_t));
        if (L.files == NULL) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto failed;
        }

        base = strrchr(path, '/');
        L.files[0].name = path;
        L.files[0].base = base ? base + 1 : path;
        L.nfiles = 1;
    }

    for (i = 0; i < L.nfiles; i++) {
        if (dg_read_file(&L, &L.files[i]) != 0) {
            goto failed;
        }
    }

    p = dg_compile(&L);
    dg_arena_free(&L.tmp);

    return p;

failed:

    dg_arena_free(&L.tmp);

    return NULL;
}


dg_policy_t *
dg_policy_load_buffer(const char *name, const char *data, size_t len,
    char *err, size_t errlen)
{
    dg_load_t     L;
    dg_policy_t  *p;
    const char   *base;
    char          dummy[1];

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }

    memset(&L, 0, sizeof(dg_load_t));
    L.err = err;
    L.errlen = errlen;
    L.budget = DG_YAML_MAX_NODES;
    err[0] = '\0';

    if (name == NULL) {
        name = "policy";
    }

    if (data == NULL) {
        data = "";
        len = 0;
    }

    L.files = dg_arena_alloc(&L.tmp, sizeof(dg_pfile_t));
    if (L.files == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }

    base = strrchr(name, '/');
    L.files[0].name = name;
    L.files[0].base = base ? base + 1 : name;
    L.files[0].data = (char *) data;
    L.files[0].len = len;
    L.nfiles = 1;

    p = dg_compile(&L);
    dg_arena_free(&L.tmp);

    return p;
}


void
dg_policy_free(dg_policy_t *p)
{
    size_t             i;
    dg_arena_t         arena;
    dg_policy_priv_t  *priv;

    if (p == NULL) {
        return;
    }

    priv = p->priv;

    for (i = 0; i < priv->nrules; i++) {
        dg_mask_rules_free(priv->rules[i]);
    }

    free(priv->rules);

    arena = priv->arena;
    dg_arena_free(&arena);
}


/* lookups */

static const void *
dg_policy_find(const dg_policy_t *p, size_t table, const char *id,
    size_t len)
{
    const dg_hent_t  *e;

    if (p == NULL || id == NULL) {
        return NULL;
    }

    /* table: offsetof() one of the hashes of dg_policy_priv_t */
    e = dg_hash_find((const dg_hash_t *) ((const char *) p->priv + table),
                     id, len);

    return e ? e->val : NULL;
}


const dg_consumer_t *
dg_policy_consumer(const dg_policy_t *p, const char *id, size_t len)
{
    return dg_policy_find(p, offsetof(dg_policy_priv_t, consumers), id, len);
}


const dg_dataset_t *
dg_policy_dataset(const dg_policy_t *p, const char *id, size_t len)
{
    return dg_policy_find(p, offsetof(dg_policy_priv_t, datasets), id, len);
}


const dg_purpose_t *
dg_policy_purpose(const dg_policy_t *p, const char *id, size_t len)
{
    return dg_policy_find(p, offsetof(dg_policy_priv_t, purposes), id, len);
}


size_t
dg_policy_grants(const dg_policy_t *p, const dg_consumer_t *c,
    const dg_dataset_t *d, const dg_grant_t **out, size_t max)
{
    size_t                    n;
    dg_cd_key_t               key;
    const dg_hent_t          *e;
    const dg_policy_priv_t   *priv;

    if (p == NULL || c == NULL || d == NULL) {
        return 0;
    }

    priv = p->priv;
    memset(&key, 0, sizeof(key));
    key.consumer = c->index;
    key.dataset = d->index;
    n = 0;

    for (e = dg_hash_find(&priv->grants_by_cd, &key, sizeof(key));
         e;
         e = dg_hash_next(&priv->grants_by_cd, e))
    {
        if (n < max) {
            out[n] = e->val;
        }
        n++;
    }

    return n;
}


/* certificate matching */

static size_t
dg_san_normalize(const dg_str_t *s, char *buf, size_t cap)
{
    size_t  i;

    if (s->data == NULL || s->len <= 4 || s->len >= cap) {
        return 0;
    }

    if (strncasecmp(s->data, "URI:", 4) == 0) {
        memcpy(buf, "URI:", 4);
        memcpy(buf + 4, s->data + 4, s->len - 4);

    } else if (strncasecmp(s->data, "DNS:", 4) == 0) {
        memcpy(buf, "DNS:", 4);
        for (i = 4; i < s->len; i++) {
            buf[i] = (s->data[i] >= 'A' && s->data[i] <= 'Z')
                     ? (char) (s->data[i] | 0x20) : s->data[i];
        }

    } else {
        return 0;
    }

    return s->len;
}


typedef struct {
    const dg_identity_t        *id;
    const char                 *serial;
    size_t                      serial_len;
} dg_norm_id_t;


static int
dg_cert_matches(const dg_consumer_t *c, const dg_norm_id_t *n)
{
    size_t  i, len;
    char    buf[DG_SAN_MAX + 8];

    if (c->has_fingerprint
        && (n->id->fingerprint == NULL
            || memcmp(c->fingerprint, n->id->fingerprint, 32) != 0))
    {
        return 0;
    }

    if (c->serial.len
        && (n->serial_len != c->serial.len
            || memcmp(n->serial, c->serial.data, c->serial.len) != 0))
    {
        return 0;
    }

    if (c->subject.len
        && (n->id->subject.data == NULL
            || n->id->subject.len != c->subject.len
            || memcmp(n->id->subject.data, c->subject.data, c->subject.len)
               != 0))
    {
        return 0;
    }

    if (c->issuer.len
        && (n->id->issuer.data == NULL
            || n->id->issuer.len != c->issuer.len
            || memcmp(n->id->issuer.data, c->issuer.data, c->issuer.len)
               != 0))
    {
        return 0;
    }

    if (c->issuer_key_id_len
        && (n->id->issuer_key_id == NULL
            || n->id->issuer_key_id_len != c->issuer_key_id_len
            || memcmp(n->id->issuer_key_id, c->issuer_key_id,
                      c->issuer_key_id_len) != 0))
    {
        return 0;
    }

    if (c->san.len) {
        if (n->id->sans == NULL) {
            return 0;
        }

        for (i = 0; i < n->id->nsans; i++) {
            len = dg_san_normalize(&n->id->sans[i], buf, sizeof(buf));
            if (len == c->san.len && memcmp(buf, c->san.data, len) == 0) {
                break;
            }
        }

        if (i == n->id->nsans) {
            return 0;
        }
    }

    return 1;
}


static void
dg_match_chain(const dg_hash_t *h, const void *key, size_t len,
    const dg_norm_id_t *n, const dg_consumer_t **best)
{
    const dg_hent_t      *e;
    const dg_consumer_t  *c;

    for (e = dg_hash_find(h, key, len); e; e = dg_hash_next(h, e)) {
        c = e->val;
        if ((*best == NULL || c->index < (*best)->index)
            && dg_cert_matches(c, n))
        {
            *best = c;
        }
    }
}


const dg_consumer_t *
dg_policy_match_consumer(const dg_policy_t *p, const dg_identity_t *id)
{
    size_t                   i, len;
    char                     serial[160], buf[DG_SAN_MAX + 8];
    dg_norm_id_t             n;
    const dg_consumer_t     *best;
    const dg_policy_priv_t  *priv;

    if (p == NULL || id == NULL) {
        return NULL;
    }

    priv = p->priv;
    best = NULL;

    n.id = id;
    n.serial = serial;
    n.serial_len = 0;

    if (id->serial.data != NULL && id->serial.len > 0) {
        n.serial_len = dg_serial_normalize(id->serial.data, id->serial.len,
                                           serial, sizeof(serial));
    }

    if (id->fingerprint != NULL) {
        dg_match_chain(&priv->by_fingerprint, id->fingerprint, 32, &n,
                       &best);
    }

    if (n.serial_len) {
        dg_match_chain(&priv->by_serial, serial, n.serial_len, &n, &best);
    }

    if (id->subject.data != NULL && id->subject.len) {
        dg_match_chain(&priv->by_subject, id->subject.data, id->subject.len,
                       &n, &best);
    }

    for (i = 0; i < id->nsans && id->sans != NULL; i++) {
        len = dg_san_normalize(&id->sans[i], buf, sizeof(buf));
        if (len) {
            dg_match_chain(&priv->by_san, buf, len, &n, &best);
        }
    }

    return best;
}


int
dg_consumer_network_ok(const dg_consumer_t *c, const struct sockaddr *sa)
{
    size_t                      i, k, alen;
    int                         family;
    const uint8_t              *addr;
    const dg_cidr_t            *net;
    static const uint8_t        mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                               0xff, 0xff };

    if (c == NULL) {
        return 0;
    }

    if (c->nnetworks == 0) {
        return 1;
    }

    if (sa == NULL) {
        return 0;
    }

    if (sa->sa_family == AF_INET) {
        family = AF_INET;
        addr = (const uint8_t *)
               &((const struct sockaddr_in *) sa)->sin_addr.s_addr;
        alen = 4;

    } else if (sa->sa_family == AF_INET6) {
        addr = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
        if (memcmp(addr, mapped, 12) == 0) {
            family = AF_INET;
            addr += 12;
            alen = 4;
        } else {
            family = AF_INET6;
            alen = 16;
        }

    } else {
        return 0;
    }

    for (i = 0; i < c->nnetworks; i++) {
        net = &c->networks[i];
        if (net->family != family) {
            continue;
        }

        for (k = 0; k < alen; k++) {
            if ((addr[k] & net->mask[k]) != net->addr[k]) {
                break;
            }
        }

        if (k == alen) {
            return 1;
        }
    }

    return 0;
}


static int
dg_in_list(const dg_str_t *list, size_t n, const char *s)
{
    size_t  i, len;

    len = strlen(s);

    for (i = 0; i < n; i++) {
        if (list[i].len == len && strncasecmp(list[i].data, s, len) == 0) {
            return 1;
        }
    }

    return 0;
}


int
dg_consumer_geo_ok(const dg_consumer_t *c, const char *country,
    const char *region)
{
    if (c == NULL) {
        return 0;
    }

    if (c->ncountries
        && (country == NULL || !dg_in_list(c->countries, c->ncountries,
                                           country)))
    {
        return 0;
    }

    if (c->nregions
        && (region == NULL || !dg_in_list(c->regions, c->nregions, region)))
    {
        return 0;
    }

    return 1;
}


/* run-time grants */

typedef struct {
    dg_grant_t                  grant;      /* first: dg_grant_free casts */
    dg_arena_t                  arena;
    dg_mask_rules_t            *rules;      /* owned, or NULL */
} dg_rgrant_t;


dg_grant_t *
dg_grant_compile(const dg_policy_t *p, const char *yaml, size_t len,
    char *err, size_t errlen)
{
    dg_load_t     L;
    dg_arena_t    arena;
    dg_rgrant_t  *rg;
    dg_ynode_t   *root;
    char          dummy[1];
    size_t        off;

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }

    err[0] = '\0';

    if (p == NULL || yaml == NULL) {
        snprintf(err, errlen, "grant: no policy or no grant");
        return NULL;
    }

    if (len > 1024 * 1024) {
        snprintf(err, errlen, "grant:1: file: larger than 1 MiB");
        return NULL;
    }

    memset(&L, 0, sizeof(dg_load_t));
    memset(&arena, 0, sizeof(dg_arena_t));
    L.err = err;
    L.errlen = errlen;
    L.budget = 100000;
    L.p = (dg_policy_t *) p;
    L.priv = p->priv;

    rg = dg_arena_alloc(&arena, sizeof(dg_rgrant_t));
    if (rg == NULL) {
        snprintf(err, errlen, "grant: out of memory");
        return NULL;
    }

    L.a = &arena;
    L.own_rules = &rg->rules;

    off = dg_utf8_check((const uint8_t *) yaml, len);
    if (off != len) {
        snprintf(err, errlen, "grant:1: file: not valid UTF-8 (byte %zu)",
                 off);
        goto failed;
    }

    root = dg_yaml_parse(&L.tmp, "grant", yaml, len, &L.budget, err, errlen);
    if (root == NULL) {
        goto failed;
    }

    rg->grant.runtime = 1;
    rg->grant.index = (unsigned) -1;

    if (dg_load_grant(&L, p, "grant", root, "grant", &rg->grant) != 0
        || dg_plan_grant(&L, p, &rg->grant, "grant") != 0)
    {
        goto failed;
    }

    rg->grant.src_file.data = "run-time grant";
    rg->grant.src_file.len = sizeof("run-time grant") - 1;
    rg->arena = arena;
    dg_arena_free(&L.tmp);

    return &rg->grant;

failed:

    if (rg->rules != NULL) {
        dg_mask_rules_free(rg->rules);
    }
    dg_arena_free(&L.tmp);
    dg_arena_free(&arena);

    return NULL;
}


void
dg_grant_free(dg_grant_t *g)
{
    dg_arena_t    arena;
    dg_rgrant_t  *rg;

    if (g == NULL || !g->runtime) {
        return;
    }

    rg = (dg_rgrant_t *) g;

    if (rg->rules != NULL) {
        dg_mask_rules_free(rg->rules);
    }

    arena = rg->arena;
    dg_arena_free(&arena);
}
