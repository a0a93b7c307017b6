/*
 * Unit tests: several chains in one log, forward-secure keyed sealing,
 * checkpoints, and the lines a gateway blanks after a killed worker.
 */

#define _GNU_SOURCE

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "tap.h"
#include "dg_audit.h"


#define T_MAXREC   32
#define T_LINE     2048

static dg_audit_md_t  t_md;

static const uint8_t  t_secret[] = "0123456789abcdef0123456789abcdef-audit";
#define T_SECRET_LEN  (sizeof(t_secret) - 1)

static const char     t_epoch[] = "1765000000000";

/* the log being built: lines without LF */
static char    t_lines[T_MAXREC][T_LINE];
static size_t  t_lens[T_MAXREC];
static int     t_n;


/* HMAC-ALG from OpenSSL itself */
static void
openssl_hmac(int alg, const void *key, size_t klen, const void *d, size_t dlen,
    uint8_t *out)
{
    size_t        len;
    EVP_MAC      *m;
    EVP_MAC_CTX  *ctx;
    OSSL_PARAM    params[2];

    m = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    ctx = EVP_MAC_CTX_new(m);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                    (char *) (alg == DG_AUDIT_SM3 ? "SM3" : "SHA256"), 0);
    params[1] = OSSL_PARAM_construct_end();
    EVP_MAC_init(ctx, key, klen, params);
    EVP_MAC_update(ctx, d, dlen);
    EVP_MAC_final(ctx, out, &len, 32);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
}


static void
test_hmac(void)
{
    int      alg;
    uint8_t  a[32], b[32], key[100];
    size_t   i;

    for (i = 0; i < sizeof(key); i++) {
        key[i] = (uint8_t) (i * 7 + 1);
    }

    for (alg = 0; alg < DG_AUDIT_ALGS; alg++) {
        dg_audit_hmac(&t_md, alg, key, 32, "message", 7, a);
        openssl_hmac(alg, key, 32, "message", 7, b);
        ok(memcmp(a, b, 32) == 0, "%s: HMAC with a 32-byte key is "
           "OpenSSL's", dg_audit_alg_name(alg));

        dg_audit_hmac(&t_md, alg, key, sizeof(key), "", 0, a);
        openssl_hmac(alg, key, sizeof(key), "", 0, b);
        ok(memcmp(a, b, 32) == 0, "%s: HMAC with a 100-byte key is "
           "OpenSSL's", dg_audit_alg_name(alg));
    }
}


/* the writer's state of chain n of the test epoch, keyed or not */
static void
chain_new(dg_audit_chain_t *c, int alg, unsigned n, int keyed,
    const char *from)
{
    unsigned  i;
    uint8_t   gen[DG_AUDIT_KEY_LEN];

    memset(c, 0, sizeof(dg_audit_chain_t));
    snprintf(c->id, sizeof(c->id), "%s-%u", t_epoch, n);
    memcpy(c->hash, from ? from : dg_audit_genesis, DG_AUDIT_HEXLEN + 1);

    if (keyed) {
        dg_audit_key_root(&t_md, alg, t_secret, T_SECRET_LEN, t_epoch,
                          strlen(t_epoch), gen);
        for (i = 0; i < n; i++) {
            dg_audit_key_next(&t_md, alg, gen);
        }

        dg_audit_key_chain(&t_md, alg, gen, c->id, strlen(c->id), c->key,
                           c->seg);
        c->keyed = 1;
    }
}


/* one record of chain c appended to the log */
static void
append(dg_audit_chain_t *c, int alg, const char *what)
{
    dg_arec_t         r;
    char              buf[T_LINE];
    const char       *line;
    size_t            len;
    dg_audit_chain_t  next;

    dg_arec_init(&r, buf, sizeof(buf));
    dg_arec_cstr(&r, "time", "2026-12-07T10:00:00.000+08:00");
    dg_arec_cstr(&r, "uri", what);
    dg_arec_cstr(&r, "decision", "allowed");
    dg_arec_uint(&r, "status", 200);

    if (dg_audit_chain_seal(&r, &t_md, alg, c, &next, &line, &len) != 0) {
        ok(0, "seal");
        return;
    }

    memcpy(t_lines[t_n], line, len - 1);
    t_lines[t_n][len - 1] = '\0';
    t_lens[t_n] = len - 1;
    t_n++;

    memcpy(c, &next, sizeof(dg_audit_chain_t));
    dg_audit_wipe(&next, sizeof(next));
}


/* the lines (index list, -1 ends it) through a verifier */
static int
run(dg_audit_verify_t *v, const int *order, int key)
{
    int  i, broken;

    dg_audit_verify_init(v);

    if (key) {
        dg_audit_verify_key(v, t_secret, T_SECRET_LEN);
    }

    dg_audit_verify_file(v, "a.log");
    broken = 0;

    for (i = 0; order[i] >= 0; i++) {
        broken |= dg_audit_verify_line(v, t_lines[order[i]], t_lens[order[i]]);
    }

    return broken | dg_audit_verify_end(v);
}


static int   t_all[T_MAXREC + 1];

static const int *
all(void)
{
    int  i;

    for (i = 0; i < t_n; i++) {
        t_all[i] = i;
    }

    t_all[t_n] = -1;

    return t_all;
}


/* replace a member's value in line i and re-hash it and every later
 * record of its chain, as an intruder without the key would */
static void
rehash_from(int alg, int from, const char *chain)
{
    int           i;
    char          prev[65], *p, *h, t[T_LINE];
    size_t        tlen;
    unsigned      n, k;
    EVP_MD_CTX   *ctx;
    uint8_t       d[64];

    prev[0] = '\0';

    for (i = from; i < t_n; i++) {
        if (strstr(t_lines[i], chain) == NULL) {
            continue;
        }

        p = strstr(t_lines[i], "\"prev\":\"") + 8;

        if (prev[0]) {
            memcpy(p, prev, 64);
        }

        h = strstr(t_lines[i], ",\"hash\":\"");
        tlen = h - t_lines[i];
        memcpy(t, t_lines[i], tlen);
        t[tlen++] = '}';

        ctx = EVP_MD_CTX_new();
        EVP_DigestInit_ex(ctx, alg == DG_AUDIT_SM3 ? EVP_sm3() : EVP_sha256(),
                          NULL);
        EVP_DigestUpdate(ctx, p, 64);
        EVP_DigestUpdate(ctx, t, tlen);
        EVP_DigestFinal_ex(ctx, d, &n);
        EVP_MD_CTX_free(ctx);

        for (k = 0; k < n; k++) {
            sprintf(h + 9 + 2 * k, "%02x", d[k]);
        }

        h[9 + 64] = '"';
        memcpy(prev, h + 9, 64);
        prev[64] = '\0';
    }
}


/* re-seal line i's "mac" with key (the intruder's key), then re-hash */
static void
reseal(int alg, int i, const uint8_t *key, const char *chain)
{
    char   mac[65], *m, *p;

    m = strstr(t_lines[i], ",\"mac\":\"");
    p = strstr(t_lines[i], "\"prev\":\"") + 8;
    dg_audit_mac(&t_md, alg, key, p, t_lines[i], m - t_lines[i], mac);
    memcpy(m + 8, mac, 64);
    rehash_from(alg, i, chain);
}


static void
test_keyed(int alg)
{
    int                 i, rc;
    const char         *name;
    char                save[T_MAXREC][T_LINE];
    uint8_t             stolen[DG_AUDIT_KEY_LEN], gen[DG_AUDIT_KEY_LEN];
    uint8_t             seg[DG_AUDIT_KEY_LEN];
    dg_audit_chain_t    a, b;
    dg_audit_verify_t   v;
    dg_audit_rec_t      rec;

    name = dg_audit_alg_name(alg);
    t_n = 0;

    chain_new(&a, alg, 0, 1, NULL);
    chain_new(&b, alg, 1, 1, NULL);

    for (i = 0; i < 5; i++) {
        append(&a, alg, "/a");
        append(&b, alg, "/b");
    }

    rc = dg_audit_parse(&t_md, t_lines[0], t_lens[0], &rec, NULL, 0);
    ok(rc == 0 && rec.mac[0] && strcmp(rec.chain, a.id) == 0
       && rec.t0len > 0, "%s: a keyed record parses, chain and mac", name);

    rc = run(&v, all(), 1);
    ok(rc == 0 && v.macs == 10 && v.nchains == 2 && v.records == 10,
       "%s: two keyed chains interleaved verify with the key", name);
    dg_audit_verify_free(&v);

    rc = run(&v, all(), 0);
    ok(rc == 0 && v.macs == 0, "%s: and without it, as a hash chain", name);
    dg_audit_verify_free(&v);

    memcpy(save, t_lines, sizeof(save));

    /* an intruder edits record 2 of chain a and re-hashes the chain */
    {
        char  *s = strstr(t_lines[2], "\"status\":200");
        memcpy(s, "\"status\":404", 12);
    }
    rehash_from(alg, 2, a.id);

    rc = run(&v, all(), 0);
    ok(rc == 0, "%s: a rewritten chain with recomputed hashes passes "
       "without the key", name);
    dg_audit_verify_free(&v);

    rc = run(&v, all(), 1);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_MAC && v.bad_line == 3,
       "%s: and fails with it, at the edited record", name);
    diag("%s", v.what);
    dg_audit_verify_free(&v);

    /*
     * The key the writer holds now (chain a's, for its next record: what
     * an intruder finds in the running process) cannot re-seal an
     * earlier record, neither as it is nor evolved further.
     */
    memcpy(stolen, a.key, sizeof(stolen));

    for (i = 0; i < 2; i++) {
        memcpy(t_lines, save, sizeof(save));
        {
            char  *s = strstr(t_lines[2], "\"status\":200");
            memcpy(s, "\"status\":404", 12);
        }
        reseal(alg, 2, stolen, a.id);
        rc = run(&v, all(), 1);
        ok(rc == 1 && v.kind == DG_AUDIT_BREAK_MAC && v.bad_line == 3,
           "%s: the current key%s cannot re-seal an earlier record", name,
           i ? " evolved further" : "");
        dg_audit_verify_free(&v);
        dg_audit_key_next(&t_md, alg, stolen);
    }

    /* nor can the key of the chain's next segment */
    memcpy(t_lines, save, sizeof(save));
    {
        char  *s = strstr(t_lines[2], "\"status\":200");
        memcpy(s, "\"status\":404", 12);
    }
    reseal(alg, 2, a.seg, a.id);
    rc = run(&v, all(), 1);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_MAC && v.bad_line == 3,
       "%s: the next segment's key cannot re-seal an earlier record", name);
    dg_audit_verify_free(&v);

    /* nor can the generator of the next chain seal an earlier chain */
    memcpy(t_lines, save, sizeof(save));
    chain_new(&b, alg, 2, 1, NULL);         /* the writer's G_2 ... */
    dg_audit_key_root(&t_md, alg, t_secret, T_SECRET_LEN, t_epoch,
                      strlen(t_epoch), gen);
    dg_audit_key_next(&t_md, alg, gen);
    dg_audit_key_next(&t_md, alg, gen);     /* G_2 */
    dg_audit_key_chain(&t_md, alg, gen, a.id, strlen(a.id), stolen, seg);
    reseal(alg, 0, stolen, a.id);
    rc = run(&v, all(), 1);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_MAC && v.bad_line == 1,
       "%s: a later chain's generator cannot seal chain 0", name);
    dg_audit_verify_free(&v);

    /* the untouched log with another key */
    memcpy(t_lines, save, sizeof(save));
    dg_audit_verify_init(&v);
    dg_audit_verify_key(&v, (const uint8_t *) "another secret of 32 bytes....",
                        30);
    dg_audit_verify_file(&v, "a.log");
    rc = dg_audit_verify_line(&v, t_lines[0], t_lens[0]);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_MAC, "%s: another key fails",
       name);
    dg_audit_verify_free(&v);

    /* a log without MACs fails --key */
    t_n = 0;
    chain_new(&a, alg, 0, 0, NULL);
    append(&a, alg, "/a");
    rc = run(&v, all(), 1);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_MAC && strstr(v.what, "no \"mac\""),
       "%s: a record without a MAC fails with the key", name);
    dg_audit_verify_free(&v);
}


static void
test_chains(void)
{
    int                 rc;
    dg_audit_chain_t    a, b, c;
    dg_audit_verify_t   v;
    dg_audit_cpresult_t res;
    static const int    gap[] = { 0, 1, 2, 3, 5, 6, 7, -1 };
    static const int    swap_other[] = { 0, 2, 1, 3, 4, 5, 6, 7, -1 };
    static const int    swap_same[] = { 0, 1, 4, 3, 2, 5, 6, 7, -1 };
    static const int    cut[] = { 0, 1, 2, 3, 4, 5, -1 };

    t_n = 0;
    chain_new(&a, DG_AUDIT_SHA256, 0, 0, NULL);
    chain_new(&b, DG_AUDIT_SHA256, 1, 0, NULL);

    /* a: 0 2 4 6, b: 1 3 5 7 */
    append(&a, DG_AUDIT_SHA256, "/a1");
    append(&b, DG_AUDIT_SHA256, "/b1");
    append(&a, DG_AUDIT_SHA256, "/a2");
    append(&b, DG_AUDIT_SHA256, "/b2");
    append(&a, DG_AUDIT_SHA256, "/a3");
    append(&b, DG_AUDIT_SHA256, "/b3");
    append(&a, DG_AUDIT_SHA256, "/a4");
    append(&b, DG_AUDIT_SHA256, "/b4");

    rc = run(&v, all(), 0);
    ok(rc == 0 && v.nchains == 2 && v.chains[0].records == 4
       && v.chains[1].last.seq == 4, "two chains: both verify");
    dg_audit_verify_free(&v);

    rc = run(&v, gap, 0);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_GAP && v.bad_line == 6
       && strstr(v.what, "chain ") == v.what,
       "a record of one chain removed: a gap in that chain, named");
    diag("%s", v.what);
    dg_audit_verify_free(&v);

    rc = run(&v, swap_other, 0);
    ok(rc == 0, "records of two chains in another order: still holds");
    dg_audit_verify_free(&v);

    rc = run(&v, swap_same, 0);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_GAP && v.found_line == 5,
       "two records of one chain swapped: caught, the missing one found");
    dg_audit_verify_free(&v);

    /* checkpoints: the heads published while the log was written */
    dg_audit_verify_init(&v);
    dg_audit_verify_checkpoint(&v, a.id, strlen(a.id), 4, a.hash, "redis");
    dg_audit_verify_checkpoint(&v, b.id, strlen(b.id), 2,
                               strstr(t_lines[3], "\"hash\":\"") + 8,
                               "redis");
    dg_audit_verify_checkpoint(&v, "other-9", 7, 3, a.hash, "redis");
    dg_audit_verify_file(&v, "a.log");
    for (rc = 0; rc < t_n; rc++) {
        dg_audit_verify_line(&v, t_lines[rc], t_lens[rc]);
    }
    dg_audit_verify_end(&v);
    dg_audit_verify_checkpoints(&v, &res);
    ok(!v.broken && res.matched == 2 && res.absent == 1 && res.cut == 0,
       "checkpoints: matched, a chain not in the files");
    dg_audit_verify_free(&v);

    dg_audit_verify_init(&v);
    dg_audit_verify_checkpoint(&v, a.id, strlen(a.id), 4, a.hash, "redis");
    dg_audit_verify_file(&v, "a.log");
    for (rc = 0; cut[rc] >= 0; rc++) {
        dg_audit_verify_line(&v, t_lines[cut[rc]], t_lens[cut[rc]]);
    }
    dg_audit_verify_end(&v);
    dg_audit_verify_checkpoints(&v, &res);
    ok(!v.broken && res.cut == 1 && res.cut_chain
       && res.cut_chain->last.seq == 3,
       "records cut from the end: found against the checkpoint");
    dg_audit_verify_free(&v);

    dg_audit_verify_init(&v);
    dg_audit_verify_checkpoint(&v, a.id, strlen(a.id), 2, b.hash, "redis");
    dg_audit_verify_file(&v, "a.log");
    for (rc = 0; rc < t_n; rc++) {
        if (dg_audit_verify_line(&v, t_lines[rc], t_lens[rc])) {
            break;
        }
    }
    ok(v.broken && v.kind == DG_AUDIT_BREAK_CHECKPOINT && v.bad_line == 3,
       "a record that is not the one a checkpoint names: caught");
    dg_audit_verify_free(&v);

    /* a chain a restart began: seq 1 from the head of an older chain */
    chain_new(&c, DG_AUDIT_SHA256, 0, 0, b.hash);
    snprintf(c.id, sizeof(c.id), "1766000000000-0");
    append(&c, DG_AUDIT_SHA256, "/c1");
    append(&c, DG_AUDIT_SHA256, "/c2");
    rc = run(&v, all(), 0);
    ok(rc == 0 && v.nchains == 3 && v.chains[2].from_line == 8,
       "a new chain starts from the last record of the file");
    dg_audit_verify_free(&v);

    /* blanked lines are not records and not a break; an empty one is */
    t_n = 0;
    chain_new(&a, DG_AUDIT_SHA256, 0, 0, NULL);
    append(&a, DG_AUDIT_SHA256, "/a1");
    strcpy(t_lines[t_n], "{      }");
    t_lens[t_n++] = 8;
    strcpy(t_lines[t_n], " ");
    t_lens[t_n++] = 1;
    append(&a, DG_AUDIT_SHA256, "/a2");
    rc = run(&v, all(), 0);
    ok(rc == 0 && v.records == 2,
       "blanked lines: the chain holds across them");
    is_int(v.blanked, 2, "blanked lines: counted");
    is_int(v.blank_line, 2, "blanked lines: the first named");
    dg_audit_verify_free(&v);

    t_lines[1][0] = '\0';
    t_lens[1] = 0;
    rc = run(&v, all(), 0);
    ok(rc == 1 && v.kind == DG_AUDIT_BREAK_FORMAT && v.bad_line == 2,
       "an empty line is still a break");
    dg_audit_verify_free(&v);

    strcpy(t_lines[1], "{ x }");
    t_lens[1] = 5;
    rc = run(&v, all(), 0);
    ok(rc == 1 && v.bad_line == 2, "braces around more than spaces: a break");
    dg_audit_verify_free(&v);
}


static void
test_chain_state(void)
{
    dg_arec_t         r;
    char              buf[T_LINE];
    const char       *line;
    size_t            len;
    uint8_t           k2[DG_AUDIT_KEY_LEN];
    dg_audit_chain_t  a, next;

    chain_new(&a, DG_AUDIT_SHA256, 3, 1, NULL);
    memcpy(k2, a.key, sizeof(k2));
    dg_audit_key_next(&t_md, DG_AUDIT_SHA256, k2);

    dg_arec_init(&r, buf, sizeof(buf));
    dg_arec_cstr(&r, "uri", "/x");
    dg_audit_chain_seal(&r, &t_md, DG_AUDIT_SHA256, &a, &next, &line, &len);

    ok(a.seq == 0 && next.seq == 1, "sealing leaves the chain, the copy "
       "advances");
    ok(memcmp(next.key, k2, sizeof(k2)) == 0
       && memcmp(next.key, a.key, sizeof(k2)) != 0
       && memcmp(next.seg, a.seg, sizeof(k2)) == 0,
       "the next key is ALG(the key), within a segment");
    ok(strstr(line, ",\"chain\":\"1765000000000-3\",\"alg\":") != NULL
       && strstr(line, ",\"mac\":\"") + 8 + 64 + 1
          == strstr(line, ",\"hash\":\""),
       "chain before alg, mac right before hash");
    is_str(next.id, "1765000000000-3", "the chain id is kept");
    ok(dg_audit_chain_valid("a-1", 3) == 0
       && dg_audit_chain_valid("a b", 3) != 0
       && dg_audit_chain_valid("", 0) != 0
       && dg_audit_chain_valid("a\"", 2) != 0,
       "chain ids: letters, digits, . _ -");
}


/* a chain across segment boundaries: the writer's keys and the
 * verifier's, from the start and from any record */
static void
test_segments(void)
{
    int                 rc;
    uint64_t            s, seqs[] = { 1, 2, DG_AUDIT_KEY_SEGMENT,
                                      DG_AUDIT_KEY_SEGMENT + 1,
                                      DG_AUDIT_KEY_SEGMENT + 2,
                                      2 * DG_AUDIT_KEY_SEGMENT + 1 };
    unsigned            k, bad;
    uint8_t             gen[DG_AUDIT_KEY_LEN], key[DG_AUDIT_KEY_LEN];
    uint8_t             seg[DG_AUDIT_KEY_LEN];
    dg_audit_chain_t    a, keep[6];
    dg_audit_verify_t   v;

    chain_new(&a, DG_AUDIT_SHA256, 1, 1, NULL);
    dg_audit_key_root(&t_md, DG_AUDIT_SHA256, t_secret, T_SECRET_LEN,
                      t_epoch, strlen(t_epoch), gen);
    dg_audit_key_next(&t_md, DG_AUDIT_SHA256, gen);

    /* the writer's key of each record, as dg_audit_chain_seal moves it */
    bad = 0;
    k = 0;

    for (s = 1; s <= 2 * DG_AUDIT_KEY_SEGMENT + 1; s++) {
        if (k < 6 && s == seqs[k]) {
            keep[k++] = a;
        }

        a.seq = s;
        dg_audit_key_advance(&t_md, DG_AUDIT_SHA256, s, a.key, a.seg);
    }

    for (k = 0; k < 6; k++) {
        dg_audit_key_at(&t_md, DG_AUDIT_SHA256, gen, a.id, strlen(a.id),
                        seqs[k], key, seg);
        bad += memcmp(key, keep[k].key, sizeof(key)) != 0
               || memcmp(seg, keep[k].seg, sizeof(seg)) != 0;
    }

    ok(bad == 0, "segments: the key of any record, reached directly, is "
       "the writer's (%u wrong)", bad);

    /* records sealed across a boundary verify, from their start and from
     * the middle of a file */
    t_n = 0;
    chain_new(&a, DG_AUDIT_SHA256, 1, 1, NULL);
    dg_audit_key_at(&t_md, DG_AUDIT_SHA256, gen, a.id, strlen(a.id),
                    DG_AUDIT_KEY_SEGMENT - 1, a.key, a.seg);
    a.seq = DG_AUDIT_KEY_SEGMENT - 2;

    for (k = 0; k < 5; k++) {
        append(&a, DG_AUDIT_SHA256, "/seg");
    }

    rc = run(&v, all(), 1);
    ok(rc == 0 && v.macs == 5, "segments: records %u..%u verify with the "
       "key", DG_AUDIT_KEY_SEGMENT - 1, DG_AUDIT_KEY_SEGMENT + 3);
    dg_audit_verify_free(&v);

    t_all[0] = 2;
    t_all[1] = 3;
    t_all[2] = 4;
    t_all[3] = -1;
    dg_audit_verify_init(&v);
    dg_audit_verify_key(&v, t_secret, T_SECRET_LEN);
    dg_audit_verify_file(&v, "a.log");
    for (k = 0; t_all[k] >= 0; k++) {
        dg_audit_verify_line(&v, t_lines[t_all[k]], t_lens[t_all[k]]);
    }
    ok(!v.broken && v.macs == 3, "segments: a file that starts in the "
       "second segment verifies with the key");
    dg_audit_verify_free(&v);
}


int
main(void)
{
    test_hmac();
    test_keyed(DG_AUDIT_SHA256);
    test_keyed(DG_AUDIT_SM3);
    test_chains();
    test_chain_state();
    test_segments();

    dg_audit_md_free(&t_md);

    return done_testing();
}
