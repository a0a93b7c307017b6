/*
 * Differential check of the masking engine: two builds of module/core/dg_mask*.c
 * (a git revision and the working tree, each a shared library) fed the same
 * random documents, mutated documents and corpus files at random splits; any
 * difference in return code, output bytes or statistics is reported.
 * Built and run by scripts/mask-diff.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <dlfcn.h>
#include <dirent.h>
#include "dg_mask.h"

typedef struct {
    dg_mask_rules_t *(*compile)(const dg_mask_field_t *, size_t, unsigned, char *, size_t);
    void (*rfree)(dg_mask_rules_t *);
    size_t (*size)(const dg_mask_conf_t *);
    dg_mask_t *(*init)(void *, const dg_mask_conf_t *);
    int (*feed)(dg_mask_t *, const uint8_t *, size_t, int, dg_mask_emit_pt, void *);
    int (*feed_into)(dg_mask_t *, const uint8_t *, size_t, int,
        int (*)(void *, size_t, size_t, uint8_t **, size_t *), void *);
    const dg_mask_stats_t *(*stats)(const dg_mask_t *);
    dg_mask_t *(*reinit)(dg_mask_t *, const dg_mask_conf_t *);
} lib_t;

static lib_t L[2];

/* MASKDIFF_NOSIMD=old|new|both: that build runs its scalar code only
 * (conf.nosimd; revisions before it read DG_MASK_NOSIMD=1) */
static unsigned nosimd[2];

static void load(lib_t *l, const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); exit(2); }
    l->compile = dlsym(h, "dg_mask_rules_compile");
    l->rfree = dlsym(h, "dg_mask_rules_free");
    l->size = dlsym(h, "dg_mask_size");
    l->init = dlsym(h, "dg_mask_init");
    l->feed = dlsym(h, "dg_mask_feed");
    l->stats = dlsym(h, "dg_mask_stats");
    l->feed_into = dlsym(h, "dg_mask_feed_into");     /* NULL: none */
    l->reinit = dlsym(h, "dg_mask_reinit");           /* NULL: none */
}

/* a masker reused: fed the document before this one (same rules, so its
 * key memo is kept) and initialised again with reinit (warm_len 0: none) */
static uint8_t warm[1 << 17]; static size_t warm_len;

static uint64_t rs = 88172645463325252ull;
static uint64_t rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }
static unsigned R(unsigned n) { return n ? (unsigned) (rnd() % n) : 0; }

typedef struct { uint8_t *buf; size_t len, cap; int fail_at; } out_t;
static int emit(void *ctx, const uint8_t *p, size_t n) {
    out_t *o = ctx;
    if (o->len + n > o->cap) return -1;
    memcpy(o->buf + o->len, p, n); o->len += n; return 0;
}

/* memory lent to feed_into: its own allocation each time (an overrun is
 * seen under ASan), the rest of it lent again half the time; lend_max 0:
 * use feed and emit */
static size_t lend_max;
static uint8_t *lchunk; static size_t loff, lcap; static int lbad;
static int lend(void *ctx, size_t used, size_t need, uint8_t **buf, size_t *cap) {
    out_t *o = ctx; size_t size;
    if (used) {
        if (!lchunk || used > lcap - loff) { lbad++; return -1; }
        if (emit(o, lchunk + loff, used)) return -1;
        loff += used;
    }
    if (need == 0) return 0;
    if (lchunk && lcap - loff >= need && R(2)) { *buf = lchunk + loff; *cap = lcap - loff; return 0; }
    free(lchunk);
    size = 1 + R((unsigned) lend_max); if (size < need) size = need;
    lchunk = malloc(size); if (!lchunk) return -1;
    loff = 0; lcap = size; *buf = lchunk; *cap = size; return 0;
}

/* ---- random JSON generator ---- */
static const char *keys[] = { "phone", "n", "drop", "data", "idCard", "name", "k", "email",
    "c", "a", "b", "h", "items", "x", "y", "addr", "address", "id", "age", "tags", "bankCard",
    "gender", "score", "title", "company", "updated", "active", "", "ph\\u006fne", "na\\\"me",
    "verylongkeyname_abcdefghijklmnopqrstuvwxyz0123456789", "é", "电话", "secret", "total",
    "code", "msg", "list", "zz", "PHONE", "phon", "hone", "email2" };
#define NKEYS (sizeof(keys)/sizeof(keys[0]))

static char *G; static size_t GN, GC;
static void put(const char *s, size_t n) { if (GN + n > GC) return; memcpy(G + GN, s, n); GN += n; }
static void puts_(const char *s) { put(s, strlen(s)); }
static void ws(void) { static const char *w[] = { " ", "\n", "\t", "\r\n  ", "  " }; if (R(8) == 0) puts_(w[R(5)]); }

static void gstr(void) {
    static const char *frag[] = { "a", "abc", "13812345678", "450102199001011234", "张三", "李小明",
        "user@x.cn", "\\n", "\\\"", "\\\\", "\\u0041", "\\ud83d\\ude00", "\\u00e9", "6222021234567890123",
        "91450100MA5L0ABC1X", "x y z", "\x7f", "é", "tel13812345678", "🙂", "\\/", "@", "2024-05-11",
        "12345678901234567890123", "0771-5551234", "桂A12345", "10.2.3.4",
        "0123456789abcdefghijklmnopqrstuvwxyz0123456789",
        /* runs of digits and capitals around 11 (detect's shortest) */
        "ABCDE", "12345", "0123456789", "Q" };
    static const char *bad[] = { "\\ud800", "\xc3", "\x01", "\\x", "\\u12", "\xff", "\xed\xa0\x80" };
    unsigned n = R(5);
    put("\"", 1);
    if (R(600) == 0) puts_(bad[R(sizeof(bad)/sizeof(bad[0]))]);
    if (R(3) == 0) { puts_(frag[R(sizeof(frag)/sizeof(frag[0]))]); }
    else for (unsigned i = 0; i < n; i++) puts_(frag[R(sizeof(frag)/sizeof(frag[0]))]);
    put("\"", 1);
}
static void gnum(void) {
    static const char *nums[] = { "0", "-1", "42", "3.14", "1e5", "-0.5E-3", "13812345678", "123456789012345678",
        "2E+10", "9999999999999999999999", "0.0", "375.0", "-0", "1E-7", "6222021234567890123" };
    static const char *bad[] = { "01", "1.", "-", "1e", "1e+", "-a", ".5" };
    if (R(400) == 0) puts_(bad[R(sizeof(bad)/sizeof(bad[0]))]);
    else puts_(nums[R(sizeof(nums)/sizeof(nums[0]))]);
}
static void gval(int d);
static void gobj(int d) {
    unsigned n = R(d == 0 ? 30 : 12);
    put("{", 1); ws();
    for (unsigned i = 0; i < n; i++) {
        if (i) { ws(); put(",", 1); ws(); }
        put("\"", 1); puts_(keys[R(NKEYS)]); put("\"", 1); ws(); put(":", 1); ws();
        gval(d + 1);
    }
    ws(); put("}", 1);
}
static void garr(int d) {
    unsigned n = R(d <= 1 ? 12 : 5);
    put("[", 1); ws();
    for (unsigned i = 0; i < n; i++) { if (i) { ws(); put(",", 1); ws(); } gval(d + 1); }
    ws(); put("]", 1);
}
static void gval(int d) {
    unsigned c = R(d > 6 ? 6 : 9);
    switch (c) {
    case 0: case 1: case 2: gstr(); break;
    case 3: case 4: gnum(); break;
    case 5: puts_(R(3) == 0 ? "true" : R(2) ? "false" : "null"); break;
    case 6: case 7: gobj(d); break;
    default: garr(d); break;
    }
}

/* an array of records that repeat one key order, now and then with a key
 * left out, two swapped, or whitespace: the key memo's predictions */
static void grecs(void) {
    unsigned nk = 2 + R(10), nr = 2 + R(30), order[12];
    for (unsigned i = 0; i < nk; i++) order[i] = R(NKEYS);
    put("{\"data\":[", 9);
    for (unsigned r = 0; r < nr; r++) {
        if (r) put(",", 1);
        if (R(6) == 0) { unsigned a = R(nk), b = R(nk), t = order[a]; order[a] = order[b]; order[b] = t; }
        put("{", 1);
        int first = 1;
        for (unsigned i = 0; i < nk; i++) {
            if (R(12) == 0) continue;
            if (!first) put(",", 1);
            first = 0;
            put("\"", 1); puts_(keys[order[i]]); put("\"", 1);
            if (R(20) == 0) put(": ", 2); else put(":", 1);
            gval(R(10) == 0 ? 1 : 5);
        }
        put("}", 1);
    }
    put("]}", 2);
}

static void mutate(uint8_t *d, size_t *n, size_t cap) {
    unsigned k = R(4);
    for (unsigned i = 0; i < k && *n; i++) {
        unsigned op = R(4); size_t at = R(*n);
        static const char ch[] = "{}[]\",:\\ 0a-.eE\x01\x80\xff";
        if (op == 0) d[at] = ch[R(sizeof(ch) - 1)];
        else if (op == 1) *n = at;
        else if (op == 2 && *n < cap) { memmove(d + at + 1, d + at, *n - at); d[at] = ch[R(sizeof(ch) - 1)]; (*n)++; }
        else { memmove(d + at, d + at + 1, *n - at - 1); (*n)--; }
    }
}

/* ---- rules ---- */
static const char *sels[] = { "phone", "n", "drop", "data[].idCard", "name", "k", "email", "c", "$.a.b",
    "h", "items[].x.y", "addr", "idCard", "bankCard", "data[].address", "address", "a.b", "[].x", "$.data",
    "tags", "list[].name", "电话", "é", "secret", "x", "y", "verylongkeyname_abcdefghijklmnopqrstuvwxyz0123456789" };
#define NSELS (sizeof(sels)/sizeof(sels[0]))

static int run(lib_t *l, const dg_mask_rules_t *rules, const dg_mask_spec_t *act, size_t maxv, unsigned depth,
    const uint8_t *doc, size_t n, const size_t *cuts, size_t ncuts, out_t *o, int *rcs, dg_mask_stats_t *st,
    uint64_t *hits, size_t nf)
{
    dg_mask_conf_t conf; static uint8_t mem[1 << 22]; size_t off = 0; int rc = 0;
    memset(&conf, 0, sizeof(conf));
    conf.rules = rules; conf.actions = act; conf.max_value = maxv; conf.max_depth = depth;
    conf.hash_key = (const uint8_t *) "k3y"; conf.hash_key_len = 3;
    conf.nosimd = nosimd[l == &L[1]];
    if (l->size(&conf) > sizeof(mem)) { fprintf(stderr, "mem\n"); exit(2); }
    dg_mask_t *m = l->init(mem, &conf);
    if (!m) return -999;
    if (warm_len && l->reinit) {
        static uint8_t wb[1 << 19]; out_t wo = { wb, 0, sizeof(wb), 0 };
        l->feed(m, warm, warm_len, 1, emit, &wo);
        m = l->reinit(m, &conf);
        if (!m) return -998;
    }
    o->len = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t e = i < ncuts ? cuts[i] : n;
        if (lend_max && l->feed_into) {
            rc = l->feed_into(m, doc + off, e - off, i == ncuts, lend, o);
            free(lchunk); lchunk = NULL; loff = lcap = 0;   /* no longer the masker's */
            if (lbad) { lbad = 0; rc = -100; }
        } else {
            rc = l->feed(m, doc + off, e - off, i == ncuts, emit, o);
        }
        rcs[i] = rc;
        off = e;
        if (rc) break;
    }
    *st = *l->stats(m);
    memcpy(hits, st->field_hits, nf * sizeof(uint64_t));
    return rc;
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 100000;
    rs ^= argc > 2 ? strtoull(argv[2], NULL, 10) * 0x9e3779b97f4a7c15ull : 0;
    const char *corpus = argc > 3 ? argv[3] : NULL;
    const char *ns = getenv("MASKDIFF_NOSIMD");
    if (ns && (strcmp(ns, "old") == 0 || strcmp(ns, "both") == 0)) { nosimd[0] = 1; setenv("DG_MASK_NOSIMD", "1", 1); }
    if (ns && (strcmp(ns, "new") == 0 || strcmp(ns, "both") == 0)) nosimd[1] = 1;
    load(&L[0], "./libold.so");
    load(&L[1], "./libnew.so");
    static uint8_t docs[64][1 << 16]; size_t dlen[64]; int ndocs = 0;
    if (corpus) {
        DIR *dir = opendir(corpus); struct dirent *de;
        while (dir && (de = readdir(dir)) && ndocs < 64) {
            char p[4096]; if (de->d_name[0] == '.') continue;
            snprintf(p, sizeof(p), "%s/%s", corpus, de->d_name);
            FILE *f = fopen(p, "rb"); if (!f) continue;
            dlen[ndocs] = fread(docs[ndocs], 1, sizeof(docs[0]), f); fclose(f); ndocs++;
        }
        if (dir) closedir(dir);
    }
    static char gbuf[1 << 17]; static uint8_t ob[2][1 << 19];
    long fails = 0, ok = 0, errs = 0, ehist[64] = {0}; size_t totb = 0;
    for (long it = 0; it < iters; it++) {
        /* document */
        G = gbuf; GN = 0; GC = sizeof(gbuf);
        if (ndocs && R(4) == 0) {
            int k = R(ndocs); size_t s = R(2) && dlen[k] > 0;
            memcpy(gbuf, docs[k] + s, dlen[k] - s); GN = dlen[k] - s;
        } else if (R(3)) {
            if (R(3) == 0) grecs();
            else if (R(2)) gobj(0); else { put("{\"data\":", 8); garr(0); put("}", 1); }
        } else gval(0);
        if (R(8) == 0) mutate((uint8_t *) gbuf, &GN, GC);
        /* rules */
        dg_mask_field_t f[12]; dg_mask_spec_t a[12]; size_t nf = 1 + R(8);
        for (size_t i = 0; i < nf; i++) {
            const char *s = sels[R(NSELS)]; f[i].selector = s; f[i].len = strlen(s);
            a[i].method = (uint8_t) R(DG_MASK_METHOD_MAX); a[i].a = (uint8_t) R(5); a[i].b = (uint8_t) R(5);
            if (R(3) == 0) a[i].method = R(2) ? DG_MASK_CLEAR : DG_MASK_DROP;
        }
        unsigned flags = R(4) == 0 ? 0 : (unsigned) R(4);
        if (argc > 4) flags = (unsigned) atoi(argv[4]) == 9 ? flags : (unsigned) atoi(argv[4]);
        dg_mask_rules_t *r0 = L[0].compile(f, nf, flags, NULL, 0);
        dg_mask_rules_t *r1 = L[1].compile(f, nf, flags, NULL, 0);
        if ((r0 == NULL) != (r1 == NULL)) { printf("compile mismatch it=%ld\n", it); fails++; }
        if (!r0 || !r1) { if (r0) L[0].rfree(r0); if (r1) L[1].rfree(r1); continue; }
        size_t maxv = R(8) == 0 ? 1 + R(40) : 65536; unsigned depth = R(8) == 0 ? 1 + R(6) : 64;
        /* cuts */
        size_t cuts[64], nc = 0;
        unsigned mode = R(4);
        if (mode == 1 && GN < 300) { for (size_t i = 1; i < GN && nc < 63; i++) cuts[nc++] = i; }
        else if (mode >= 2) { size_t c = 0; while (nc < 63) { c += 1 + R(mode == 2 ? 8 : 200); if (c >= GN) break; cuts[nc++] = c; } }
        out_t o0 = { ob[0], 0, sizeof(ob[0]), 0 }, o1 = { ob[1], 0, sizeof(ob[1]), 0 };
        int rc0s[65] = {0}, rc1s[65] = {0}; dg_mask_stats_t s0, s1; uint64_t h0[12], h1[12];
        /* the new build writes into memory lent (when it can) every other time */
        lend_max = 0;
        size_t wl = warm_len; warm_len = 0;
        int rc0 = run(&L[0], r0, a, maxv, depth, (uint8_t *) gbuf, GN, cuts, nc, &o0, rc0s, &s0, h0, nf);
        warm_len = getenv("NOREUSE") || R(2) ? 0 : wl;
        lend_max = getenv("NOLEND") || R(2) ? 0 : (R(2) ? 1 + R(64) : 1 + R(20000));
        int rc1 = run(&L[1], r1, a, maxv, depth, (uint8_t *) gbuf, GN, cuts, nc, &o1, rc1s, &s1, h1, nf);
        /* after an error, how much of the output was handed to emit before
         * it is not part of the contract (the filter discards or cuts):
         * the two outputs must agree on what both emitted */
        int failed = rc0 == rc1 && rc0 < 0;
        size_t cmp = failed ? (o0.len < o1.len ? o0.len : o1.len) : o0.len;
        int bad = rc0 != rc1 || memcmp(rc0s, rc1s, sizeof(rc0s)) || (!failed && o0.len != o1.len)
            || memcmp(o0.buf, o1.buf, cmp)
            || memcmp(h0, h1, nf * 8) || s0.unlisted != s1.unlisted || s0.dropped != s1.dropped
            || memcmp(s0.detect, s1.detect, sizeof(s0.detect)) || s0.bytes_in != s1.bytes_in
            || (!failed && s0.bytes_out != s1.bytes_out);
        if (bad) {
            fails++;
            if (fails <= 5) {
                printf("MISMATCH it=%ld flags=%u rc %d/%d outlen %zu/%zu\n doc=%.*s\n", it, flags, rc0, rc1, o0.len, o1.len, (int) GN, gbuf);
                printf(" out0=%.*s\n out1=%.*s\n", (int) o0.len, o0.buf, (int) o1.len, o1.buf);
                for (size_t i = 0; i < nf; i++) printf("  sel %s m%u\n", f[i].selector, a[i].method);
            }
        }
        if (rc0) errs++; else ok++;
        totb += GN; if (rc0 < 0 && rc0 > -64) ehist[-rc0]++;
        if (getenv("SHOW") && it < 8) printf("doc[%zu] rc=%d: %.*s\n => %.*s\n", GN, rc0, (int) (GN > 300 ? 300 : GN), gbuf, (int) (o0.len > 300 ? 300 : o0.len), o0.buf);
        L[0].rfree(r0); L[1].rfree(r1);
        if (GN <= sizeof(warm)) { memcpy(warm, gbuf, GN); warm_len = GN; }
    }
    printf("iters=%ld ok=%ld err=%ld mismatches=%ld avgbytes=%zu\n", iters, ok, errs, fails, totb / (iters ? iters : 1));
    for (int i = 0; i < 64; i++) if (ehist[i]) printf(" rc -%d: %ld\n", i, ehist[i]);
    return fails != 0;
}
