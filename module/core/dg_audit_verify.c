/*
 * datagate core: the chain verifier over a sequence of files (see
 * dg_audit.h): every chain's records in order and linked, each record's
 * MAC when a key is given, and the heads published as checkpoints.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* memrchr */
#endif

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dg_audit_int.h"


#define DG_VERIFY_CHAINS_INIT   16
#define DG_VERIFY_FNV_BASIS     2166136261u
#define DG_VERIFY_FNV_PRIME     16777619u
#define DG_VERIFY_SEQ_MIX       0x9e3779b97f4a7c15ULL

/* what a key is derived for at most: the steps a chain id or a seq asks
 * of the verifier stay bounded (a forged record cannot make it loop) */
#define DG_VERIFY_KEY_CHAINS_MAX  10000000ULL          /* chains / epoch */
#define DG_VERIFY_KEY_SEQ_MAX     (1ULL << 40)         /* records */


static void dg_verify_break(dg_audit_verify_t *v, int kind,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static uint32_t dg_verify_hash(const char *s, size_t len);
static dg_audit_vchain_t *dg_verify_chain_get(dg_audit_verify_t *v,
    const char *id, size_t len, int create, uint32_t *idx);
static const dg_audit_seen_t *dg_verify_seen_hash(dg_audit_verify_t *v,
    const char *hash);
static const dg_audit_seen_t *dg_verify_seen_seq(dg_audit_verify_t *v,
    uint32_t chain, uint64_t seq);
static void dg_verify_remember(dg_audit_verify_t *v, uint32_t chain,
    const dg_audit_rec_t *rec);
static int dg_verify_torn_prefix(const char *line, size_t len);
static int dg_verify_blanked(const char *line, size_t len);
static void dg_verify_torn_break(dg_audit_verify_t *v);
static int dg_verify_mac(dg_audit_verify_t *v, dg_audit_vchain_t *c,
    const char *line, const dg_audit_rec_t *rec);
static dg_audit_checkpoint_t *dg_verify_cp_find(dg_audit_verify_t *v,
    const char *chain, size_t len, uint64_t seq);
static void dg_verify_from(dg_audit_verify_t *v, dg_audit_vchain_t *c,
    const dg_audit_rec_t *rec);


/* ---- the verifier's state -------------------------------------------- */

int
dg_audit_verify_init(dg_audit_verify_t *v)
{
    memset(v, 0, sizeof(dg_audit_verify_t));

    v->head_chain = -1;

    v->ring = calloc(DG_AUDIT_WINDOW, sizeof(dg_audit_seen_t));
    if (v->ring == NULL) {
        return -1;
    }

    return 0;
}


void
dg_audit_verify_free(dg_audit_verify_t *v)
{
    if (v->chains) {
        dg_audit_wipe(v->chains, v->chains_cap * sizeof(dg_audit_vchain_t));
    }

    if (v->secret) {
        dg_audit_wipe(v->secret, v->secret_len);
    }

    dg_audit_wipe(v->kroot, sizeof(v->kroot));
    dg_audit_wipe(v->kgen, sizeof(v->kgen));

    free(v->ring);
    free(v->chains);
    free(v->index);
    free(v->secret);
    free(v->cps);
    free(v->cpindex);

    v->ring = NULL;
    v->chains = NULL;
    v->index = NULL;
    v->secret = NULL;
    v->cps = NULL;
    v->cpindex = NULL;

    dg_audit_md_free(&v->md);
}


int
dg_audit_verify_key(dg_audit_verify_t *v, const uint8_t *secret, size_t len)
{
    if (len == 0) {
        return -1;
    }

    v->secret = malloc(len);
    if (v->secret == NULL) {
        return -1;
    }

    memcpy(v->secret, secret, len);
    v->secret_len = len;

    return 0;
}


void
dg_audit_verify_head(dg_audit_verify_t *v, const char *hash)
{
    memcpy(v->head, hash, DG_AUDIT_HEXLEN);
    v->head[DG_AUDIT_HEXLEN] = '\0';
}


void
dg_audit_verify_file(dg_audit_verify_t *v, const char *name)
{
    v->file = name;
    v->nfile++;
    v->line = 0;
    v->nolf = 0;
}


void
dg_audit_verify_incomplete(dg_audit_verify_t *v)
{
    v->nolf = 1;
}


static void
dg_verify_break(dg_audit_verify_t *v, int kind, const char *fmt, ...)
{
    va_list  ap;

    v->broken = 1;
    v->kind = kind;
    v->bad_file = v->file;
    v->bad_line = v->line;

    va_start(ap, fmt);
    vsnprintf(v->what, sizeof(v->what), fmt, ap);
    va_end(ap);
}


/* ---- chains by id ---------------------------------------------------- */

static uint32_t
dg_verify_hash(const char *s, size_t len)
{
    size_t    i;
    uint32_t  h;

    h = DG_VERIFY_FNV_BASIS;

    for (i = 0; i < len; i++) {
        h = (h ^ (uint8_t) s[i]) * DG_VERIFY_FNV_PRIME;
    }

    return h;
}


static void
dg_verify_index_put(uint32_t *index, uint32_t cap, uint32_t h, uint32_t val)
{
    uint32_t  i;

    for (i = h & (cap - 1); index[i] != 0; i = (i + 1) & (cap - 1)) {
        /* void */
    }

    index[i] = val;
}


static dg_audit_vchain_t *
dg_verify_chain_get(dg_audit_verify_t *v, const char *id, size_t len,
    int create, uint32_t *idx)
{
    uint32_t            h, i, j, cap, *index;
    dg_audit_vchain_t  *c;

    h = dg_verify_hash(id, len);

    if (v->index) {
        for (i = h & (v->index_cap - 1);
             v->index[i] != 0;
             i = (i + 1) & (v->index_cap - 1))
        {
            c = &v->chains[v->index[i] - 1];

            if (strlen(c->id) == len && memcmp(c->id, id, len) == 0) {
                if (idx) {
                    *idx = v->index[i] - 1;
                }

                return c;
            }
        }
    }

    if (!create) {
        return NULL;
    }

    if (v->nchains == v->chains_cap) {
        cap = v->chains_cap ? 2 * v->chains_cap : DG_VERIFY_CHAINS_INIT;

        c = realloc(v->chains, cap * sizeof(dg_audit_vchain_t));
        if (c == NULL) {
            return NULL;
        }

        v->chains = c;
        v->chains_cap = cap;
    }

    /* the index at most half full */

    if (2 * (v->nchains + 1) > v->index_cap) {
        cap = v->index_cap ? 2 * v->index_cap : 2 * DG_VERIFY_CHAINS_INIT;

        index = calloc(cap, sizeof(uint32_t));
        if (index == NULL) {
            return NULL;
        }

        for (j = 0; j < v->nchains; j++) {
            dg_verify_index_put(index, cap,
                                dg_verify_hash(v->chains[j].id,
                                               strlen(v->chains[j].id)),
                                j + 1);
        }

        free(v->index);
        v->index = index;
        v->index_cap = cap;
    }

    c = &v->chains[v->nchains];
    memset(c, 0, sizeof(dg_audit_vchain_t));
    memcpy(c->id, id, len);
    c->id[len] = '\0';

    dg_verify_index_put(v->index, v->index_cap, h, v->nchains + 1);

    if (idx) {
        *idx = v->nchains;
    }

    v->nchains++;

    return c;
}


const dg_audit_vchain_t *
dg_audit_verify_chain(dg_audit_verify_t *v, const char *id, size_t len)
{
    return dg_verify_chain_get(v, id, len, 0, NULL);
}


/* ---- recent records, to say what happened at a break ----------------- */

static const dg_audit_seen_t *
dg_verify_seen_hash(dg_audit_verify_t *v, const char *hash)
{
    uint64_t  i, n;

    n = v->nring < DG_AUDIT_WINDOW ? v->nring : DG_AUDIT_WINDOW;

    for (i = 0; i < n; i++) {
        if (memcmp(v->ring[i].hash, hash, DG_AUDIT_HEXLEN) == 0) {
            return &v->ring[i];
        }
    }

    return NULL;
}


static const dg_audit_seen_t *
dg_verify_seen_seq(dg_audit_verify_t *v, uint32_t chain, uint64_t seq)
{
    uint64_t  i, n;

    n = v->nring < DG_AUDIT_WINDOW ? v->nring : DG_AUDIT_WINDOW;

    for (i = 0; i < n; i++) {
        if (v->ring[i].seq == seq && v->ring[i].chain == chain
            && v->ring[i].line != 0)
        {
            return &v->ring[i];
        }
    }

    return NULL;
}


static void
dg_verify_remember(dg_audit_verify_t *v, uint32_t chain,
    const dg_audit_rec_t *rec)
{
    dg_audit_seen_t  *e;

    e = &v->ring[v->nring % DG_AUDIT_WINDOW];
    e->seq = rec->seq;
    e->line = v->line;
    e->file = v->nfile;
    e->chain = chain;
    memcpy(e->hash, rec->hash, DG_AUDIT_HEXLEN + 1);
    v->nring++;
}


/* ---- lines that are not records -------------------------------------- */

/* a line that can be the start of a record whose write failed part-way */
static int
dg_verify_torn_prefix(const char *line, size_t len)
{
    static const char  start[] = "{\"seq\":";

    if (len == 0) {
        return 0;
    }

    return memcmp(line, start, len < sizeof(start) - 1
                               ? len : sizeof(start) - 1) == 0;
}


/*
 * What a gateway writes over the part of a record that a killed worker
 * left in the file (the record itself is written again in full): "{",
 * spaces, "}", or spaces alone when the part was too short for braces.
 */
static int
dg_verify_blanked(const char *line, size_t len)
{
    size_t  i, s, e;

    if (len == 0) {
        return 0;
    }

    s = 0;
    e = len;

    if (len >= 2 && line[0] == '{' && line[len - 1] == '}') {
        s = 1;
        e = len - 1;

    } else if (line[0] != ' ') {
        return 0;
    }

    for (i = s; i < e; i++) {
        if (line[i] != ' ') {
            return 0;
        }
    }

    return 1;
}


/* the incomplete line waiting for its record is a break after all */
static void
dg_verify_torn_break(dg_audit_verify_t *v)
{
    v->torn = 0;
    v->broken = 1;
    v->kind = DG_AUDIT_BREAK_FORMAT;
    v->bad_file = v->tfile;
    v->bad_line = v->tline;
    snprintf(v->what, sizeof(v->what), "%s", v->twhat);
}


int
dg_audit_verify_end(dg_audit_verify_t *v)
{
    if (v->torn && !v->broken) {
        dg_verify_torn_break(v);
    }

    return v->broken;
}


/* ---- keys ------------------------------------------------------------ */

/*
 * The key of record rec->seq of chain c ("EPOCH-N"): the epoch's
 * generator advanced to N (kept between chains of one epoch), the chain's
 * first key, evolved seq - 1 times.  0, -1: not a keyed chain id.
 */
static int
dg_verify_chain_key(dg_audit_verify_t *v, dg_audit_vchain_t *c, int alg,
    uint64_t seq)
{
    size_t       elen, len;
    uint64_t     n;
    const char  *dash, *p;

    len = strlen(c->id);
    dash = memrchr(c->id, '-', len);

    if (dash == NULL || dash == c->id || dash + 1 == c->id + len || seq == 0
        || seq > DG_VERIFY_KEY_SEQ_MAX)
    {
        return -1;
    }

    elen = dash - c->id;
    n = 0;

    for (p = dash + 1; p < c->id + len; p++) {
        if (*p < '0' || *p > '9' || n > DG_VERIFY_KEY_CHAINS_MAX) {
            return -1;
        }

        n = n * 10 + (uint64_t) (*p - '0');
    }

    if (n > DG_VERIFY_KEY_CHAINS_MAX) {
        return -1;
    }

    if (!v->kvalid || v->kalg != alg || strlen(v->kepoch) != elen
        || memcmp(v->kepoch, c->id, elen) != 0 || n < v->kgen_n)
    {
        if (dg_audit_key_root(&v->md, alg, v->secret, v->secret_len, c->id,
                              elen, v->kroot)
            != 0)
        {
            return -1;
        }

        memcpy(v->kgen, v->kroot, DG_AUDIT_KEY_LEN);
        memcpy(v->kepoch, c->id, elen);
        v->kepoch[elen] = '\0';
        v->kalg = alg;
        v->kgen_n = 0;
        v->kvalid = 1;
    }

    for ( /* void */ ; v->kgen_n < n; v->kgen_n++) {
        if (dg_audit_key_next(&v->md, alg, v->kgen) != 0) {
            return -1;
        }
    }

    if (dg_audit_key_at(&v->md, alg, v->kgen, c->id, len, seq, c->key,
                        c->seg)
        != 0)
    {
        return -1;
    }

    c->keyed = 1;

    return 0;
}


/* 0: the record's MAC holds (and c's key moved on); 1: broken */
static int
dg_verify_mac(dg_audit_verify_t *v, dg_audit_vchain_t *c, const char *line,
    const dg_audit_rec_t *rec)
{
    char  mac[DG_AUDIT_HEXLEN + 1];

    if (rec->mac[0] == '\0') {
        dg_verify_break(v, DG_AUDIT_BREAK_MAC,
                        "record has no \"mac\": seq %" PRIu64 "%s%s was not"
                        " sealed with a key", rec->seq,
                        c->id[0] ? " of chain " : "", c->id);
        return 1;
    }

    if (!c->keyed && dg_verify_chain_key(v, c, rec->alg, rec->seq) != 0) {
        dg_verify_break(v, DG_AUDIT_BREAK_MAC,
                        "record seq %" PRIu64 ": chain \"%s\" is not one a"
                        " key seals (EPOCH-N, seq at most 2^40)", rec->seq,
                        c->id);
        return 1;
    }

    if (dg_audit_mac(&v->md, rec->alg, c->key, rec->prev, line, rec->t0len,
                     mac)
        != 0)
    {
        dg_verify_break(v, DG_AUDIT_BREAK_MAC, "%s digest failed",
                        dg_audit_alg_name(rec->alg));
        return 1;
    }

    if (memcmp(mac, rec->mac, DG_AUDIT_HEXLEN) != 0) {
        dg_verify_break(v, DG_AUDIT_BREAK_MAC,
                        "MAC does not match: seq %" PRIu64 " of chain %s was"
                        " not sealed with this key (forged, re-sealed with"
                        " a later key, or another key)", rec->seq, c->id);
        return 1;
    }

    v->macs++;

    return dg_audit_key_advance(&v->md, rec->alg, rec->seq, c->key, c->seg)
           == 0 ? 0 : 1;
}


/* ---- checkpoints ----------------------------------------------------- */

static uint32_t
dg_verify_cp_hash(const char *chain, size_t len, uint64_t seq)
{
    uint64_t  h;

    h = dg_verify_hash(chain, len) ^ (seq * DG_VERIFY_SEQ_MIX);

    return (uint32_t) (h ^ (h >> 32));
}


static dg_audit_checkpoint_t *
dg_verify_cp_find(dg_audit_verify_t *v, const char *chain, size_t len,
    uint64_t seq)
{
    uint32_t                i;
    dg_audit_checkpoint_t  *cp;

    if (v->cpindex == NULL) {
        return NULL;
    }

    for (i = dg_verify_cp_hash(chain, len, seq) & (v->cpindex_cap - 1);
         v->cpindex[i] != 0;
         i = (i + 1) & (v->cpindex_cap - 1))
    {
        cp = &v->cps[v->cpindex[i] - 1];

        if (cp->seq == seq && strlen(cp->chain) == len
            && memcmp(cp->chain, chain, len) == 0)
        {
            return cp;
        }
    }

    return NULL;
}


int
dg_audit_verify_checkpoint(dg_audit_verify_t *v, const char *chain,
    size_t len, uint64_t seq, const char *hash, const char *from)
{
    uint32_t                cap, j, *index;
    dg_audit_checkpoint_t  *cp;

    if (len > DG_AUDIT_CHAIN_MAX) {
        return -1;
    }

    if (dg_verify_cp_find(v, chain, len, seq)) {
        return 1;
    }

    if (v->ncps == v->cps_cap) {
        cap = v->cps_cap ? 2 * v->cps_cap : DG_VERIFY_CHAINS_INIT;

        cp = realloc(v->cps, cap * sizeof(dg_audit_checkpoint_t));
        if (cp == NULL) {
            return -1;
        }

        v->cps = cp;
        v->cps_cap = cap;
    }

    if (2 * (v->ncps + 1) > v->cpindex_cap) {
        cap = v->cpindex_cap ? 2 * v->cpindex_cap : 2 * DG_VERIFY_CHAINS_INIT;

        index = calloc(cap, sizeof(uint32_t));
        if (index == NULL) {
            return -1;
        }

        for (j = 0; j < v->ncps; j++) {
            dg_verify_index_put(index, cap,
                                dg_verify_cp_hash(v->cps[j].chain,
                                                  strlen(v->cps[j].chain),
                                                  v->cps[j].seq),
                                j + 1);
        }

        free(v->cpindex);
        v->cpindex = index;
        v->cpindex_cap = cap;
    }

    cp = &v->cps[v->ncps];
    memset(cp, 0, sizeof(dg_audit_checkpoint_t));
    memcpy(cp->chain, chain, len);
    cp->chain[len] = '\0';
    cp->seq = seq;
    memcpy(cp->hash, hash, DG_AUDIT_HEXLEN);
    cp->hash[DG_AUDIT_HEXLEN] = '\0';
    cp->from = from;

    dg_verify_index_put(v->cpindex, v->cpindex_cap,
                        dg_verify_cp_hash(chain, len, seq), v->ncps + 1);
    v->ncps++;

    return 0;
}


void
dg_audit_verify_checkpoints(dg_audit_verify_t *v, dg_audit_cpresult_t *res)
{
    uint32_t                 i;
    const dg_audit_vchain_t  *c;
    dg_audit_checkpoint_t    *cp;

    memset(res, 0, sizeof(dg_audit_cpresult_t));

    for (i = 0; i < v->ncps; i++) {
        cp = &v->cps[i];

        if (cp->matched) {
            res->matched++;
            continue;
        }

        c = dg_verify_chain_get(v, cp->chain, strlen(cp->chain), 0, NULL);

        if (c == NULL || c->records == 0) {
            res->absent++;

        } else if (c->last.seq < cp->seq) {
            /* the latest checkpoint of the chain is the one to report */
            if (res->cut == 0 || (res->cut_chain == c
                                  && cp->seq > res->first_cut->seq))
            {
                res->first_cut = cp;
                res->cut_chain = c;
            }

            res->cut++;

        } else {
            res->older++;
        }
    }
}


/* ---- one line -------------------------------------------------------- */

/* a chain's seq 1 that starts from another record: which one */
static void
dg_verify_from(dg_audit_verify_t *v, dg_audit_vchain_t *c,
    const dg_audit_rec_t *rec)
{
    uint32_t                i;
    const dg_audit_seen_t  *seen;

    if (rec->seq != 1 || memcmp(rec->prev, dg_audit_genesis,
                                DG_AUDIT_HEXLEN) == 0)
    {
        return;
    }

    for (i = 0; i + 1 < v->nchains; i++) {
        if (v->chains[i].records
            && memcmp(v->chains[i].last.hash, rec->prev, DG_AUDIT_HEXLEN)
               == 0)
        {
            c->from_file = v->chains[i].last_file;
            c->from_line = v->chains[i].last_line;
            return;
        }
    }

    seen = dg_verify_seen_hash(v, rec->prev);

    if (seen) {
        c->from_file = v->file;     /* the ring does not keep names */
        c->from_line = seen->line;
    }
}


int
dg_audit_verify_line(dg_audit_verify_t *v, const char *line, size_t len)
{
    int                     rc, torn, fresh;
    uint32_t                ci;
    dg_audit_rec_t          rec;
    dg_audit_vchain_t      *c;
    const dg_audit_seen_t  *seen;
    dg_audit_checkpoint_t  *cp;
    const char             *cid, *csep;
    char                    why[128];

    v->line++;

    if (v->broken) {
        /* look for the record that was missing where the chain broke */
        if (v->kind == DG_AUDIT_BREAK_GAP && v->found_file == NULL
            && dg_audit_parse(&v->md, line, len, &rec, NULL, 0) == 0
            && strcmp(rec.chain, v->want_chain) == 0
            && rec.seq == v->want_seq
            && memcmp(rec.prev, v->want_hash, DG_AUDIT_HEXLEN) == 0)
        {
            v->found_file = v->file;
            v->found_line = v->line;
        }

        return 1;
    }

    torn = v->torn;

    if (dg_verify_blanked(line, len)) {
        if (torn) {
            dg_verify_torn_break(v);
            return 1;
        }

        if (v->blanked++ == 0) {
            v->blank_file = v->file;
            v->blank_line = v->line;
        }

        return 0;
    }

    if (len == 0) {
        if (torn) {
            dg_verify_torn_break(v);
            return 1;
        }

        dg_verify_break(v, DG_AUDIT_BREAK_FORMAT, "empty line");
        return 1;
    }

    rc = dg_audit_parse(&v->md, line, len, &rec, why, sizeof(why));

    if (rc == DG_AUDIT_E_FORMAT) {
        if (torn) {
            dg_verify_torn_break(v);
            return 1;
        }

        if (dg_verify_torn_prefix(line, len)) {
            /* decided by the next line */
            v->torn = 1;
            v->tfile = v->file;
            v->tline = v->line;
            snprintf(v->twhat, sizeof(v->twhat),
                     "not an audit record: %s%s", why,
                     v->nolf ? " (the file ends in an incomplete line)" : "");
            return 0;
        }

        dg_verify_break(v, DG_AUDIT_BREAK_FORMAT,
                        "not an audit record: %s%s", why,
                        v->nolf ? " (the file ends in an incomplete line)"
                                : "");
        return 1;
    }

    /* "chain X: " in front of what is said about a record of a chain */
    cid = rec.chain;
    csep = rec.chain[0] ? ": " : "";

    c = dg_verify_chain_get(v, rec.chain, rec.chain_len, 0, &ci);
    fresh = (c == NULL || c->records == 0);

    if (torn
        && (rec.lost == 0
            || (!fresh
                && (rec.seq != c->last.seq + 1
                    || memcmp(rec.prev, c->last.hash, DG_AUDIT_HEXLEN)
                       != 0))))
    {
        /* only a record that continues its chain and counts the loss
         * accounts for an incomplete line before it */
        dg_verify_torn_break(v);
        return 1;
    }

    if (rc == DG_AUDIT_E_HASH) {
        dg_verify_break(v, DG_AUDIT_BREAK_EDITED,
                        "%s%s%srecord edited: seq %" PRIu64 " does not match"
                        " its hash", cid[0] ? "chain " : "", cid, csep,
                        rec.seq);
        return 1;
    }

    if (c == NULL) {
        c = dg_verify_chain_get(v, rec.chain, rec.chain_len, 1, &ci);
        if (c == NULL) {
            dg_verify_break(v, DG_AUDIT_BREAK_FORMAT, "out of memory");
            return 1;
        }
    }

    if (fresh) {
        c->first = rec;
        c->first_file = v->file;
        c->first_line = v->line;
        dg_verify_from(v, c, &rec);

        if (!v->have_prev) {
            v->first = rec;
        }

    } else if (rec.seq != c->last.seq + 1
               || memcmp(rec.prev, c->last.hash, DG_AUDIT_HEXLEN) != 0)
    {
        v->want_seq = c->last.seq + 1;
        memcpy(v->want_hash, c->last.hash, DG_AUDIT_HEXLEN + 1);
        memcpy(v->want_chain, c->id, sizeof(c->id));

        if (rec.seq > v->want_seq) {
            dg_verify_break(v, DG_AUDIT_BREAK_GAP,
                            "%s%s%srecord(s) missing before this line: seq %"
                            PRIu64 " follows seq %" PRIu64 " (%s:%" PRIu64
                            ")", cid[0] ? "chain " : "", cid, csep, rec.seq,
                            c->last.seq, c->last_file, c->last_line);
            return 1;
        }

        if (rec.seq < v->want_seq) {
            seen = dg_verify_seen_seq(v, ci, rec.seq);

            if (seen && memcmp(seen->hash, rec.hash, DG_AUDIT_HEXLEN) == 0) {
                dg_verify_break(v, DG_AUDIT_BREAK_BACK,
                                "%s%s%srecord inserted: a copy of seq %"
                                PRIu64 " (line %" PRIu64 "%s) after seq %"
                                PRIu64, cid[0] ? "chain " : "", cid, csep,
                                rec.seq, seen->line,
                                seen->file == v->nfile ? "" : " of an"
                                " earlier file", c->last.seq);

            } else if (seen) {
                dg_verify_break(v, DG_AUDIT_BREAK_BACK,
                                "%s%s%srecord inserted or out of order: seq %"
                                PRIu64 " after seq %" PRIu64 ", and line %"
                                PRIu64 "%s already has seq %" PRIu64,
                                cid[0] ? "chain " : "", cid, csep, rec.seq,
                                c->last.seq, seen->line,
                                seen->file == v->nfile ? "" : " of an"
                                " earlier file", rec.seq);

            } else {
                dg_verify_break(v, DG_AUDIT_BREAK_BACK,
                                "%s%s%srecord out of order or inserted: seq %"
                                PRIu64 " after seq %" PRIu64,
                                cid[0] ? "chain " : "", cid, csep, rec.seq,
                                c->last.seq);
            }

            return 1;
        }

        /* seq fits, the link does not */

        seen = dg_verify_seen_hash(v, rec.prev);

        if (seen) {
            dg_verify_break(v, DG_AUDIT_BREAK_LINK,
                            "%s%s%schain broken: this record links to line %"
                            PRIu64 "%s (seq %" PRIu64 "), not to the"
                            " record before it (%s:%" PRIu64 ")",
                            cid[0] ? "chain " : "", cid, csep, seen->line,
                            seen->file == v->nfile ? ""
                            : " of an earlier file", seen->seq,
                            c->last_file, c->last_line);

        } else {
            dg_verify_break(v, DG_AUDIT_BREAK_LINK,
                            "%s%s%schain broken: \"prev\" is not the hash of"
                            " the record before it (%s:%" PRIu64 "): that"
                            " record was altered and re-hashed, or this one"
                            " was forged", cid[0] ? "chain " : "", cid, csep,
                            c->last_file, c->last_line);
        }

        return 1;
    }

    if (v->secret && dg_verify_mac(v, c, line, &rec) != 0) {
        return 1;
    }

    cp = (v->ncps && rec.chain_len)
         ? dg_verify_cp_find(v, rec.chain, rec.chain_len, rec.seq) : NULL;

    if (cp) {
        if (memcmp(cp->hash, rec.hash, DG_AUDIT_HEXLEN) != 0) {
            dg_verify_break(v, DG_AUDIT_BREAK_CHECKPOINT,
                            "chain %s: seq %" PRIu64 " is not the record a"
                            " checkpoint names (%s: hash %.16s...): the"
                            " chain was rewritten", cid, rec.seq,
                            cp->from ? cp->from : "checkpoint", cp->hash);
            return 1;
        }

        cp->matched = 1;
    }

    if (v->head[0] && memcmp(v->head, rec.hash, DG_AUDIT_HEXLEN) == 0) {
        v->head_chain = ci;
    }

    if (rec.lost) {
        c->lost += rec.lost;
        v->lost += rec.lost;
        v->nlost++;
        v->lost_file = v->file;
        v->lost_line = v->line;
        v->lost_seq = rec.seq;
        v->lost_count = rec.lost;
        memcpy(v->lost_chain, c->id, sizeof(c->id));
        v->torn_file = torn ? v->tfile : NULL;
        v->torn_line = torn ? v->tline : 0;
    }

    v->torn = 0;
    v->have_prev = 1;
    v->last = rec;
    v->last_file = v->file;
    v->last_line = v->line;
    v->records++;

    c->last = rec;
    c->last_file = v->file;
    c->last_line = v->line;
    c->records++;

    dg_verify_remember(v, ci, &rec);

    return 0;
}
