/*
 * datagate core: the masker's rule compiler (dg_mask_rules_compile):
 * selectors into a path trie and a table of keys looked up anywhere
 * (dg_mask_lookup() in dg_mask_int.h reads them).
 */

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "dg_mask.h"
#include "dg_mask_int.h"
#include "dg_mask_scan.h"


/*
 * Each rule set compiled in this process has its own number: a stream's
 * key memo is kept by dg_mask_reinit() only for the rule set it was
 * filled with (freed rules compiled again may come back at the same
 * address).  The one counter of the core; it only ever grows.
 */
static uint64_t  dg_mask_rules_serial;


static int32_t
dg_mask_node_new(dg_mask_rules_t *r, size_t cap)
{
    dg_mask_node_t  *n;

    if (r->nnodes >= cap) {
        return -1;
    }

    n = &r->nodes[r->nnodes];
    n->off = 0;
    n->len = 0;
    n->child = -1;
    n->next = -1;
    n->arr = -1;
    n->field = -1;

    return (int32_t) r->nnodes++;
}


/* fmt: "%s %zu: ..." with the selector as "%.*s" */
static void
dg_mask_err(char *err, size_t errlen, const char *fmt, size_t i,
    const dg_mask_field_t *f, size_t nfields)
{
    if (err && errlen) {
        snprintf(err, errlen, fmt, i < nfields ? "field" : "container",
                 i < nfields ? i : i - nfields,
                 (int) (f->len > 200 ? 200 : f->len),
                 f->selector ? f->selector : "");
    }
}


dg_mask_rules_t *
dg_mask_rules_compile(const dg_mask_field_t *fields, size_t nfields,
    unsigned flags, char *err, size_t errlen)
{
    return dg_mask_rules_compile_ex(fields, nfields, NULL, 0, flags, err,
                                    errlen);
}


dg_mask_rules_t *
dg_mask_rules_compile_ex(const dg_mask_field_t *fields, size_t nfields,
    const dg_mask_field_t *walk, size_t nwalk, unsigned flags, char *err,
    size_t errlen)
{
    dg_mask_rules_in_t  in;

    memset(&in, 0, sizeof(in));
    in.fields = fields;
    in.nfields = nfields;
    in.walk = walk;
    in.nwalk = nwalk;
    in.flags = flags;

    return dg_mask_rules_build(&in, err, errlen);
}


int
dg_mask_rules_records(const dg_mask_rules_t *r)
{
    return r ? (int) r->rec_mode : DG_MASK_RECORDS_FOUND;
}


/*
 * The records path (see dg_mask.h): "$", or object keys ending in "[]"
 * ("[]" alone: the top-level array), "$." or "$" in front allowed.  Its
 * keys become path-trie nodes without a field (a member on the way is
 * then found by the lookup, not skipped by the member loop).  0, or -1
 * with err.
 */
static int
dg_mask_rules_path(dg_mask_rules_t *r, const char *rec, size_t len,
    size_t nodecap, char *err, size_t errlen)
{
    const uint8_t  *s, *end, *k;
    int32_t         node, c;
    uint32_t        h;
    unsigned        n;

    r->rec_mode = DG_MASK_REC_AUTO;
    r->rec_top = 2;

    if (rec == NULL) {
        return 0;
    }

    s = (const uint8_t *) rec;
    end = s + len;

    if (len == 1 && s[0] == '$') {
        r->rec_mode = DG_MASK_REC_ROOT;
        r->rec_top = 0;
        return 0;
    }

    if (end - s >= 2 && s[0] == '$' && s[1] == '.') {
        s += 2;

    } else if (end - s >= 1 && s[0] == '$') {
        s++;
    }

    if (end - s < 2 || end[-1] != ']' || end[-2] != '[') {
        goto bad;
    }

    end -= 2;
    node = 0;
    n = 0;
    r->rec_path[0] = 0;

    while (s < end) {
        for (k = s; k < end && *k != '.'; k++) {
            if (*k == '[' || *k == ']') {
                goto bad;
            }
        }

        if (k == s || ++n > DG_MASK_REC_STEPS) {
            goto bad;
        }

        c = dg_mask_node_child(r, node, s, k - s);
        if (c < 0) {
            c = dg_mask_node_new(r, nodecap);
            if (c < 0) {
                goto bad;
            }
            r->nodes[c].off = (uint32_t) r->strlen;
            r->nodes[c].len = (uint32_t) (k - s);
            memcpy(r->str + r->strlen, s, k - s);
            r->strlen += k - s;
            r->nodes[c].next = r->nodes[node].child;
            r->nodes[node].child = c;
            h = dg_mask_kfilt(s, k - s);
            if (r->kslot[h] == DG_KS_NONE) {
                r->kslot[h] = DG_KS_TRIE;
            }
        }

        node = c;
        r->rec_path[n] = node;
        s = k;

        if (s < end) {
            s++;
            if (s == end) {
                goto bad;
            }
        }
    }

    r->rec_mode = DG_MASK_REC_PATH;
    r->rec_top = n + 1;

    return 0;

bad:

    if (err && errlen) {
        snprintf(err, errlen, "records \"%.*s\": expected \"$\", \"[]\" "
                 "or object keys ending in \"[]\" (\"data[]\", "
                 "\"result.items[]\", at most %d keys)",
                 (int) (len > 200 ? 200 : len), rec, DG_MASK_REC_STEPS);
    }

    return -1;
}


/*
 * Selectors i < nfields are fields (index i); the others are containers
 * (DG_MASK_F_WALK): a key-anywhere one is an entry of the key table that
 * selects no field, a path one is path-trie nodes without a field.
 */
dg_mask_rules_t *
dg_mask_rules_build(const dg_mask_rules_in_t *in, char *err, size_t errlen)
{
    const dg_mask_field_t  *fields, *walk;
    size_t                  nfields, nwalk;
    unsigned                flags;
    dg_mask_rules_t        *r;
    const dg_mask_field_t  *sel;
    const uint8_t          *s, *end, *k;
    dg_mask_any_t          *a;
    size_t                  i, total, nodecap, nany, j, len, nsel;
    int32_t                 node, c, fi;
    uint32_t                h;
    int                     path;

    if (err && errlen) {
        err[0] = '\0';
    }

    fields = in->fields;
    nfields = in->nfields;
    walk = in->walk;
    nwalk = in->nwalk;
    flags = in->flags;

    if ((nfields && fields == NULL) || (nwalk && walk == NULL)) {
        if (err && errlen) {
            snprintf(err, errlen, "no fields");
        }
        return NULL;
    }

    nsel = nfields + nwalk;

#define dg_mask_sel(i)  ((i) < nfields ? &fields[i] : &walk[(i) - nfields])

    total = 0;
    for (i = 0; i < nsel; i++) {
        sel = dg_mask_sel(i);
        if (sel->selector == NULL || sel->len == 0 || sel->len > 65535) {
            dg_mask_err(err, errlen, "%s %zu: empty or too long "
                        "selector \"%.*s\"", i, sel, nfields);
            return NULL;
        }
        total += sel->len;
    }

    if (in->records != NULL) {
        total += in->records_len;
    }

    r = calloc(1, sizeof(dg_mask_rules_t));
    if (r == NULL) {
        goto nomem;
    }

    r->serial = __atomic_add_fetch(&dg_mask_rules_serial, 1,
                                   __ATOMIC_RELAXED);
    r->nfields = nfields;
    r->flags = flags;
    r->isa = dg_mask_cpu_isa();
    nodecap = total + 1;
    r->nodes = calloc(nodecap, sizeof(dg_mask_node_t));
    r->str = malloc(total + 1);

    for (nany = 1; nany < 2 * nsel + 2; nany <<= 1) { /* void */ }
    r->any = calloc(nany, sizeof(dg_mask_any_t));

    if (r->nodes == NULL || r->str == NULL || r->any == NULL) {
        goto nomem;
    }

    r->anymask = nany - 1;
    for (j = 0; j < nany; j++) {
        r->any[j].field = -1;
    }

    (void) dg_mask_node_new(r, nodecap);    /* root */

    for (i = 0; i < nsel; i++) {
        sel = dg_mask_sel(i);
        fi = (i < nfields) ? (int32_t) i : DG_MASK_F_WALK;
        s = (const uint8_t *) sel->selector;
        end = s + sel->len;
        path = 0;

        if (end - s >= 2 && s[0] == '$' && (s[1] == '.' || s[1] == '[')) {
            s += (s[1] == '.') ? 2 : 1;
            path = 1;
        }

        for (k = s; k < end; k++) {
            if (*k == '.' || *k == '[' || *k == ']') {
                path = 1;
            }
        }

        if (s == end) {
            dg_mask_err(err, errlen, "%s %zu: empty selector \"%.*s\"",
                        i, sel, nfields);
            goto failed;
        }

        if (!path) {
            len = end - s;
            h = dg_mask_hash(s, len);
            for (j = h & r->anymask; ; j = (j + 1) & r->anymask) {
                a = &r->any[j];
                if (a->field == DG_MASK_F_NONE) {
                    a->hash = h;
                    a->off = (uint32_t) r->strlen;
                    a->len = (uint32_t) len;
                    a->field = fi;
                    memcpy(r->str + r->strlen, s, len);
                    r->strlen += len;
                    r->anylens |= (uint64_t) 1 << (len < 63 ? len : 63);
                    h = dg_mask_kfilt(s, len);
                    if ((r->kslot[h] == DG_KS_NONE
                         || r->kslot[h] == DG_KS_TRIE)
                        && j < DG_KS_MAXANY)
                    {
                        r->kslot[h] = (uint8_t) (j + 1);

                    } else {
                        r->kslot[h] = DG_KS_MANY;
                    }
                    break;
                }
                if (a->hash == h && a->len == len
                    && memcmp(r->str + a->off, s, len) == 0)
                {
                    break;      /* duplicate: the first one wins */
                }
            }
            continue;
        }

        /* path: step ( "." name | "[]" )* where step is name or "[]" */
        node = 0;

        for ( ;; ) {
            if (*s == '[') {
                if (end - s < 2 || s[1] != ']') {
                    dg_mask_err(err, errlen, "%s %zu: bad \"[\" in "
                                "selector \"%.*s\"", i, sel, nfields);
                    goto failed;
                }
                s += 2;
                if (r->nodes[node].arr < 0) {
                    c = dg_mask_node_new(r, nodecap);
                    if (c < 0) {
                        goto nomem;
                    }
                    r->nodes[node].arr = c;
                }
                node = r->nodes[node].arr;

                if (s == end) {
                    dg_mask_err(err, errlen, "%s %zu: selector \"%.*s\" "
                                "ends in \"[]\" (select the array by its "
                                "key)", i, sel, nfields);
                    goto failed;
                }

            } else {
                for (k = s; k < end && *k != '.' && *k != '['; k++) {
                    if (*k == ']') {
                        dg_mask_err(err, errlen, "%s %zu: bad \"]\" in "
                                    "selector \"%.*s\"", i, sel, nfields);
                        goto failed;
                    }
                }

                if (k == s) {
                    dg_mask_err(err, errlen, "%s %zu: empty name in "
                                "selector \"%.*s\"", i, sel, nfields);
                    goto failed;
                }

                c = dg_mask_node_child(r, node, s, k - s);
                if (c < 0) {
                    c = dg_mask_node_new(r, nodecap);
                    if (c < 0) {
                        goto nomem;
                    }
                    r->nodes[c].off = (uint32_t) r->strlen;
                    r->nodes[c].len = (uint32_t) (k - s);
                    memcpy(r->str + r->strlen, s, k - s);
                    r->strlen += k - s;
                    r->nodes[c].next = r->nodes[node].child;
                    r->nodes[node].child = c;
                    h = dg_mask_kfilt(s, k - s);
                    if (r->kslot[h] == DG_KS_NONE) {
                        r->kslot[h] = DG_KS_TRIE;
                    }
                }
                node = c;
                s = k;

                if (s == end) {
                    break;
                }
            }

            if (*s == '.') {
                s++;
                if (s == end || *s == '.' || *s == '[') {
                    dg_mask_err(err, errlen, "%s %zu: empty name in "
                                "selector \"%.*s\"", i, sel, nfields);
                    goto failed;
                }
            }
        }

        if (r->nodes[node].field < 0 && fi >= 0) {
            r->nodes[node].field = fi;
        }
    }

    if (dg_mask_rules_path(r, in->records, in->records_len, nodecap, err,
                           errlen)
        != 0)
    {
        goto failed;
    }

    return r;

nomem:

    if (err && errlen) {
        snprintf(err, errlen, "out of memory");
    }

failed:

    dg_mask_rules_free(r);
    return NULL;

#undef dg_mask_sel
}


void
dg_mask_rules_free(dg_mask_rules_t *r)
{
    if (r == NULL) {
        return;
    }

    free(r->nodes);
    free(r->any);
    free(r->str);
    free(r);
}


size_t
dg_mask_rules_nfields(const dg_mask_rules_t *r)
{
    return r ? r->nfields : 0;
}
