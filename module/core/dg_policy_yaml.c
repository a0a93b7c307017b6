/*
 * datagate core: the policy loader's reading of the YAML tree.
 *
 * Errors as "FILE:LINE: FIELD: message" (the first one stops the load),
 * suggestions for misspelt keys and ids, typed values (text, ids, whole
 * numbers, on/off, lists) and the sections of the policy files.
 */

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <stdarg.h>

#include "dg_policy_int.h"


/* errors */

int
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


/* Levenshtein distance, bounded by the longest names we compare */

static size_t
dg_distance(const char *a, size_t la, const char *b, size_t lb)
{
    size_t  i, j, d[DG_HINT_NAME_MAX + 1], prev, cur;

    if (la > DG_HINT_NAME_MAX || lb > DG_HINT_NAME_MAX) {
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


/* cand becomes *near when it is nearer to s than *best, and not all of s
 * is changed */

static void
dg_nearer(const char *s, size_t len, const char *cand, size_t clen,
    size_t *best, const char **near)
{
    size_t  d;

    d = dg_distance(s, len, cand, clen);

    if (d < *best && d < len) {
        *best = d;
        *near = cand;
    }
}


static const char *
dg_hint(char buf[DG_HINT_LEN], const char *near)
{
    if (near == NULL) {
        return "";
    }

    snprintf(buf, DG_HINT_LEN, " (did you mean '%.*s'?)", DG_ID_MAX, near);

    return buf;
}


const char *
dg_hint_key(char buf[DG_HINT_LEN], const char *s, size_t len,
    const char **keys)
{
    size_t       best;
    const char  *near;

    near = NULL;
    best = DG_HINT_DISTANCE;

    for ( /* void */ ; *keys; keys++) {
        dg_nearer(s, len, *keys, strlen(*keys), &best, &near);
    }

    return dg_hint(buf, near);
}


const char *
dg_hint_id(char buf[DG_HINT_LEN], const char *s, size_t len,
    const void *base, size_t n, size_t stride, size_t off)
{
    size_t           i, best;
    const char      *near;
    const dg_str_t  *id;

    near = NULL;
    best = DG_HINT_DISTANCE;

    for (i = 0; i < n && i < DG_HINT_IDS_MAX; i++) {
        id = (const dg_str_t *) ((const char *) base + i * stride + off);
        if (id->data == NULL) {
            continue;
        }
        dg_nearer(s, len, id->data, id->len, &best, &near);
    }

    return dg_hint(buf, near);
}


/* node helpers */

int
dg_y_null(const dg_ynode_t *n)
{
    return n->type == DG_Y_SCALAR && n->plain
           && (n->len == 0 || strcmp(n->str, "~") == 0
               || strcmp(n->str, "null") == 0 || strcmp(n->str, "Null") == 0
               || strcmp(n->str, "NULL") == 0);
}


int
dg_check_keys(dg_load_t *L, const char *file, const dg_ynode_t *map,
    const char *path, const char **allowed)
{
    size_t       i, n;
    char         list[256], hb[DG_HINT_LEN];
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

        hint = dg_hint_key(hb, k->str, k->len, allowed);
        if (hint[0] != '\0') {
            return dg_err(L, file, k->line, path, k->str,
                          "unknown key '%.64s'%s", k->str, hint);
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

int
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


int
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


int
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


int
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
int
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


int
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


int
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


int
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


int
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

int
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


int
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


const dg_ynode_t *
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


size_t
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

void *
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
 * the key of a class or purpose entry: well formed and not defined
 * before in any file; what names the kind in the message, file_off and
 * line_off locate src_file and src_line in the kind's struct
 */

int
dg_key_id(dg_load_t *L, const char *file, const dg_ynode_t *k,
    const char *section, const char *path, const dg_hash_t *h,
    const char *what, size_t file_off, size_t line_off)
{
    const char       *o;
    const dg_str_t   *of;
    const dg_hent_t  *e;

    if (dg_id_ok(L, file, k, section, NULL) != 0) {
        return -1;
    }

    e = dg_hash_find(h, k->str, k->len);
    if (e != NULL) {
        o = e->val;
        of = (const dg_str_t *) (o + file_off);

        return dg_err(L, file, k->line, path, NULL,
                      "duplicate %s '%s' (first defined at %s:%u)", what,
                      k->str, of->data, *(const unsigned *) (o + line_off));
    }

    return 0;
}


/*
 * the id of a consumer or dataset mapping: given, well formed and not
 * defined before; what names the kind in the message, file_off and
 * line_off locate src_file and src_line in the kind's struct
 */

int
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
