/*
 * datagate core: policy loader.
 *
 * YAML (one file, or every *.yaml / *.yml of a directory in name order) ->
 * a strict tree (dg_yaml.c) -> validated, cross-referenced, compiled into
 * one arena (dg_policy_compile.c).  This file reads the files and loads
 * the sections levels, detect, classes, purposes and datasets; consumers
 * are dg_policy_consumer.c, grants dg_grant.c.
 */

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>

#include "dg_policy_int.h"
#include "dg_header.h"


static const char *dg_top_keys[] = {
    "levels", "detect", "classes", "purposes", "consumers", "datasets",
    "grants", NULL
};
static const char *dg_class_keys[] = { "level", "mask", NULL };
static const char *dg_purpose_keys[] = { "name", NULL };
static const char *dg_dataset_keys[] = {
    "id", "name", "provider", "share", "level", "fields", "unlisted",
    "detect", "containers", "methods", "rate", "quota", "headers", "abuse",
    NULL
};

static const char *dg_default_levels[DG_LEVEL_MAX + 1] = {
    "", "公开", "内部", "敏感", "高敏感"
};


/*
 * methods: [GET, HEAD, ...] -> DG_METHOD_* bits.  A name is what nginx
 * accepts as a request method: 1..DG_METHOD_NAME_MAX of A-Z, '_' and '-'
 * (lower-case letters are taken as upper case).  With ds == NULL (a
 * dataset's list), a name other than the seven known methods becomes an
 * extension method of the policy with a bit of its own; with ds (a
 * grant's list), every name must be one of the methods of ds, since a
 * grant only narrows them.  Returns 1 set, 0 absent, -1 error.
 */
int
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
int
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


int
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

int
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


int
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


int
dg_load_classes(dg_load_t *L)
{
    size_t             i;
    char               path[DG_ID_MAX + 16], methods[DG_MASK_METHODS_LEN];
    dg_class_t        *c;
    dg_ynode_t        *k, *v;
    dg_pfile_t        *f;
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

            if (dg_key_id(L, f->name, k, "classes", path,
                          &L->priv->classes, "class",
                          offsetof(dg_class_t, src_file),
                          offsetof(dg_class_t, src_line))
                != 0)
            {
                return -1;
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
                              "unknown masking method '%.64s' (%s)", mv->str,
                              dg_mask_methods_str(methods, sizeof(methods)));
            }

            if (c->mask.method == DG_MASK_CLEAR && c->level > 1) {
                /*
                 * a class's mask is what readers below its level get:
                 * only the lowest level may be declared public
                 */
                return dg_err(L, f->name, mv->line, path, "mask",
                              "'clear' would show level %u data to "
                              "readers below level %u: only a level 1 "
                              "class may be clear; to show such a field, "
                              "give the consumer the clearance or list it "
                              "in a grant's reveal", c->level, c->level);
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


int
dg_load_purposes(dg_load_t *L)
{
    size_t             i;
    char               path[DG_ID_MAX + 16];
    dg_ynode_t        *k, *v;
    dg_pfile_t        *f;
    dg_purpose_t      *pu;
    const dg_ynode_t  *sec;

    L->p->purposes = dg_section_alloc(L, "purposes", DG_Y_MAP,
                                      sizeof(dg_purpose_t),
                                      &L->priv->purposes);
    if (L->p->purposes == NULL) {
        return -1;
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

            if (dg_key_id(L, f->name, k, "purposes", path,
                          &L->priv->purposes, "purpose",
                          offsetof(dg_purpose_t, src_file),
                          offsetof(dg_purpose_t, src_line))
                != 0)
            {
                return -1;
            }

            pu = &L->p->purposes[L->p->npurposes];
            pu->src_file.data = f->name;
            pu->src_file.len = strlen(f->name);
            pu->src_line = k->line;

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


int
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

            if (dg_load_headers(L, f->name, it, path, d) != 0
                || dg_load_abuse(L, f->name, it, path, 0, &d->abuse) != 0)
            {
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
                        char  hb[DG_HINT_LEN];

                        return dg_err(L, f->name, fk->next->line, fpath,
                                      NULL, "unknown class '%.64s'%s",
                                      fk->next->str,
                                      dg_hint_id(hb, fk->next->str,
                                                 fk->next->len,
                                                 L->p->classes,
                                                 L->p->nclasses,
                                                 sizeof(dg_class_t),
                                                 offsetof(dg_class_t, id)));
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
