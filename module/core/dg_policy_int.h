/*
 * datagate core: internals shared by the files of the policy loader and
 * compiler (not a public API: dg_policy.h is).
 *
 *   dg_policy_load.c       dg_policy_load(), files; the sections levels,
 *                          detect, classes, purposes and datasets
 *   dg_policy_yaml.c       errors, suggestions, typed YAML values
 *   dg_policy_consumer.c   consumers: certificate matchers, networks, geo
 *   dg_grant.c             grants: the section, and run-time grants
 *   dg_policy_compile.c    the whole load: plans, indexes, version; free
 *   dg_policy_match.c      per-request lookups in a compiled policy
 *   dg_policy_value.c      syntax of values: methods, rate, quota, ...
 *   dg_policy_abuse.c      the "abuse:" mapping of datasets and grants
 */

#ifndef DG_POLICY_INT_H
#define DG_POLICY_INT_H

#include <stddef.h>

#include "dg_util.h"


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


/* dg_policy_yaml.c */

int dg_err(dg_load_t *L, const char *file, unsigned line, const char *path,
    const char *key, const char *fmt, ...);

/*
 * " (did you mean 'NAME'?)", the end of an error about the unknown name s
 * when a known NAME is fewer than DG_HINT_DISTANCE edits away, else "".
 * The known names: a NULL-terminated list of keys, or the ids of an array
 * of n structs of size stride with a dg_str_t id at offset off.
 */
#define DG_HINT_DISTANCE        3
#define DG_HINT_NAME_MAX        64          /* longer names: no hint */
#define DG_HINT_IDS_MAX         100000      /* ids compared, at most */
#define DG_HINT_LEN             (DG_ID_MAX + 24)
const char *dg_hint_key(char buf[DG_HINT_LEN], const char *s, size_t len,
    const char **keys);
const char *dg_hint_id(char buf[DG_HINT_LEN], const char *s, size_t len,
    const void *base, size_t n, size_t stride, size_t off);

int dg_y_null(const dg_ynode_t *n);
int dg_check_keys(dg_load_t *L, const char *file, const dg_ynode_t *map,
    const char *path, const char **allowed);
int dg_item_map(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, const char *want, const char **allowed);
int dg_expect(dg_load_t *L, const char *file, const dg_ynode_t *n,
    const char *path, const char *key, int type);
int dg_text_ok(dg_load_t *L, const char *file, const dg_ynode_t *n,
    const char *path, const char *key, size_t max);
int dg_str_set(dg_load_t *L, const dg_ynode_t *n, dg_str_t *out);
int dg_get_text(dg_load_t *L, const char *file, const dg_ynode_t *map,
    const char *path, const char *key, int required, size_t max,
    dg_str_t *out, const dg_ynode_t **vn);
int dg_id_ok(dg_load_t *L, const char *file, const dg_ynode_t *n,
    const char *path, const char *key);
int dg_uint_of(dg_load_t *L, const char *file, const dg_ynode_t *v,
    const char *path, const char *key, unsigned min, unsigned max,
    unsigned *out);
int dg_get_uint(dg_load_t *L, const char *file, const dg_ynode_t *map,
    const char *path, const char *key, int required, unsigned min,
    unsigned max, unsigned *out);
int dg_onoff(dg_load_t *L, const char *file, const dg_ynode_t *v,
    const char *path, const char *key, unsigned *out);
int dg_get_list(dg_load_t *L, const char *file, const dg_ynode_t *map,
    const char *path, const char *key, const dg_ynode_t **out);
int dg_list_strs(dg_load_t *L, const char *file, const dg_ynode_t *seq,
    const char *path, const char *key, dg_str_t **out, size_t *n);
const dg_ynode_t *dg_section(dg_load_t *L, const dg_pfile_t *f,
    const char *key, int type);
size_t dg_count(dg_load_t *L, const char *key, int type);
void *dg_section_alloc(dg_load_t *L, const char *key, int type, size_t size,
    dg_hash_t *h);
int dg_key_id(dg_load_t *L, const char *file, const dg_ynode_t *k,
    const char *section, const char *path, const dg_hash_t *h,
    const char *what, size_t file_off, size_t line_off);
int dg_item_id(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, const dg_hash_t *h, const char *what,
    size_t file_off, size_t line_off, dg_str_t *id);


/* dg_policy_load.c */

int dg_load_methods(dg_load_t *L, const dg_policy_t *p, const char *file,
    const dg_ynode_t *it, const char *path, const dg_dataset_t *ds,
    unsigned *bits);
int dg_load_limits(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, dg_limit_t *l, dg_str_t *rate_str,
    dg_str_t *quota_str);
int dg_parse_files(dg_load_t *L);
int dg_load_levels(dg_load_t *L);
int dg_load_detect(dg_load_t *L);
int dg_load_classes(dg_load_t *L);
int dg_load_purposes(dg_load_t *L);
int dg_load_datasets(dg_load_t *L);


/* dg_policy_abuse.c: "abuse:" of a dataset (grant 0) or a grant (1, which
 * may also say "abuse: off"); 0 ok (absent: a->set 0), -1 error */
int dg_load_abuse(dg_load_t *L, const char *file, const dg_ynode_t *it,
    const char *path, int grant, dg_abuse_conf_t *a);


/* dg_policy_consumer.c */

int dg_load_consumers(dg_load_t *L);


/* dg_grant.c */

int dg_load_grants(dg_load_t *L);


/* dg_policy_compile.c */

/* the whole load, from L->files with data filled in */
dg_policy_t *dg_compile(dg_load_t *L);
int dg_plan_grant(dg_load_t *L, const dg_policy_t *p, dg_grant_t *g,
    const char *path);

#endif /* DG_POLICY_INT_H */
