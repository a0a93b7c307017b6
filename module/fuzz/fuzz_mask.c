/*
 * libFuzzer target for the streaming JSON masker.
 *
 * fuzz: sources dg_mask*.c
 *
 * The first input byte picks the flags and limits, the rest is the
 * document.  The document is masked whole, in spans cut at pseudo-random
 * points derived from the input, and (when short) one byte at a time; all
 * runs must agree.  When masking succeeds the input must have been valid
 * JSON and the output must be valid JSON in which no value under a
 * classified key survives: "phone"/"secret.*" values are "***" or null,
 * "n" values null, "drop" keys absent, and in allow-list mode nothing
 * outside a listed (or masked) value survives: every key with a scalar
 * value is a listed one, every key with an object or array value a
 * listed one, a step of a listed path or a container, no array outside a
 * listed value holds a scalar, and a scalar document is null.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "dg_mask.h"
#include "t_mask_util.h"


static const char  *fz_sel[] = {
    "phone", "n", "drop", "data[].idCard", "name", "k", "email", "c",
    "$.a.b", "h", "items[].x.y", "addr"
};

static const dg_mask_spec_t  fz_act[] = {
    { DG_MASK_REDACT, 0, 0, 0 }, { DG_MASK_NULL, 0, 0, 0 },
    { DG_MASK_DROP, 0, 0, 0 }, { DG_MASK_ID_CARD, 0, 0, 0 },
    { DG_MASK_NAME, 0, 0, 0 }, { DG_MASK_KEEP, 2, 1, 0 },
    { DG_MASK_EMAIL, 0, 0, 0 }, { DG_MASK_CLEAR, 0, 0, 0 },
    { DG_MASK_DROP, 0, 0, 0 }, { DG_MASK_HASH, 0, 0, 0 },
    { DG_MASK_PHONE, 0, 0, 0 }, { DG_MASK_ADDRESS, 3, 0, 0 }
};

#define FZ_NSEL  (sizeof(fz_sel) / sizeof(fz_sel[0]))

/* containers: kept and walked in allow-list mode */
static const char  *fz_walk[] = { "list", "$.w.v" };

#define FZ_NWALK  (sizeof(fz_walk) / sizeof(fz_walk[0]))

/* keys an object or array may sit under in allow-list mode, anywhere
 * (paths are listed only at their place: this accepts more) */
static const char  *fz_struct[] = { "data", "a", "items", "x", "list", "w",
                                    "v" };


static dg_mask_rules_t  *fz_rules[4];


/* a JSON walker over the (valid) output checking the masking promises */

typedef struct {
    const uint8_t  *p;
    const uint8_t  *end;
    unsigned        flags;
} fz_walk_t;


enum { FZ_NONE = 0, FZ_REDACT, FZ_NULL, FZ_OTHER };


static void
fz_ws(fz_walk_t *w)
{
    while (w->p < w->end && (*w->p == ' ' || *w->p == '\t' || *w->p == '\n'
                             || *w->p == '\r'))
    {
        w->p++;
    }
}


static int
fz_hex(uint8_t c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}


/* decode a string at w->p into d (ASCII-exact; other code points as '?') */
static size_t
fz_string(fz_walk_t *w, char *d, size_t cap)
{
    size_t    n;
    uint32_t  c;
    int       i;

    n = 0;
    w->p++;

    while (*w->p != '"') {
        c = *w->p++;
        if (c == '\\') {
            c = *w->p++;
            if (c == 'u') {
                uint32_t  u = 0;

                for (i = 0; i < 4; i++) {
                    u = (u << 4) | (uint32_t) fz_hex(*w->p++);
                }
                c = u < 0x80 ? u : '?';
            } else if (c == 'n') {
                c = '\n';
            } else if (c == 't') {
                c = '\t';
            } else if (c == 'r') {
                c = '\r';
            } else if (c == 'b') {
                c = '\b';
            } else if (c == 'f') {
                c = '\f';
            }
        }
        if (n + 1 < cap) {
            d[n++] = (char) c;
        }
    }

    w->p++;
    d[n] = '\0';
    return n;
}


/* a decoded key (may hold NUL bytes) equals the C string s */
static int
fz_keyeq(const char *k, size_t klen, const char *s)
{
    return strlen(s) == klen && memcmp(k, s, klen) == 0;
}


static int
fz_key_class(const char *k, size_t klen, int *listed)
{
    size_t  i;

    *listed = 0;

    for (i = 0; i < FZ_NSEL; i++) {
        if (strpbrk(fz_sel[i], ".[$") == NULL && fz_keyeq(k, klen, fz_sel[i]))
        {
            *listed = 1;
            switch (fz_act[i].method) {
            case DG_MASK_REDACT:
                return FZ_REDACT;
            case DG_MASK_NULL:
                return FZ_NULL;
            case DG_MASK_DROP:
                fprintf(stderr, "dropped key \"%s\" survived\n", k);
                abort();
            case DG_MASK_CLEAR:
                return FZ_NONE;
            default:
                return FZ_OTHER;
            }
        }
    }

    return FZ_NONE;
}


static void fz_value(fz_walk_t *w, int cls, int in_listed);


static void
fz_scalar_check(fz_walk_t *w, int cls)
{
    char  buf[64];

    fz_ws(w);

    if (cls == FZ_NULL) {
        if (w->end - w->p < 4 || memcmp(w->p, "null", 4) != 0) {
            abort();
        }
    }

    if (cls == FZ_REDACT) {
        if (*w->p == '"') {
            fz_string(w, buf, sizeof(buf));
            if (strcmp(buf, "***") != 0) {
                abort();
            }
            return;
        }
        if (w->end - w->p < 4 || memcmp(w->p, "null", 4) != 0) {
            abort();
        }
    }

    if (*w->p == '"') {
        fz_string(w, buf, sizeof(buf));
        return;
    }

    while (w->p < w->end && *w->p != ',' && *w->p != ']' && *w->p != '}'
           && *w->p != ' ' && *w->p != '\t' && *w->p != '\n'
           && *w->p != '\r')
    {
        w->p++;
    }
}


static void
fz_value(fz_walk_t *w, int cls, int in_listed)
{
    char    key[256];
    size_t  klen, i;
    int     kc, listed, scalar, pathkey, structkey;

    fz_ws(w);

    if (*w->p == '{') {
        w->p++;
        fz_ws(w);
        if (*w->p == '}') {
            w->p++;
            return;
        }
        for ( ;; ) {
            fz_ws(w);
            klen = fz_string(w, key, sizeof(key));
            fz_ws(w);
            w->p++;             /* ':' */
            fz_ws(w);
            scalar = (*w->p != '{' && *w->p != '[');
            if (cls != FZ_NONE) {
                fz_value(w, cls, in_listed);
            } else {
                kc = fz_key_class(key, klen, &listed);
                /* paths are listed only at their place, so accept their
                 * last step anywhere (its value, masked or clear, too) */
                pathkey = fz_keyeq(key, klen, "idCard")
                          || fz_keyeq(key, klen, "b")
                          || fz_keyeq(key, klen, "y");
                structkey = 0;
                for (i = 0; i < sizeof(fz_struct) / sizeof(fz_struct[0]);
                     i++)
                {
                    structkey |= fz_keyeq(key, klen, fz_struct[i]);
                }
                if (!listed && !in_listed && !pathkey
                    && (scalar || !structkey)
                    && (w->flags & DG_MASK_UNLISTED_DROP))
                {
                    fprintf(stderr, "unlisted \"%s\" survived\n", key);
                    abort();
                }
                fz_value(w, kc, in_listed || listed || pathkey);
            }
            fz_ws(w);
            if (*w->p++ == '}') {
                return;
            }
        }
    }

    if (*w->p == '[') {
        w->p++;
        fz_ws(w);
        if (*w->p == ']') {
            w->p++;
            return;
        }
        for ( ;; ) {
            fz_ws(w);
            if (cls == FZ_NONE && !in_listed && *w->p != '{' && *w->p != '['
                && (w->flags & DG_MASK_UNLISTED_DROP))
            {
                /* allow-list mode let an unlisted array element through */
                fprintf(stderr, "unlisted array element survived\n");
                abort();
            }
            fz_value(w, cls, in_listed);
            fz_ws(w);
            if (*w->p++ == ']') {
                return;
            }
        }
    }

    fz_scalar_check(w, cls);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static void      *mem;
    static size_t     memsize;
    static size_t     cuts[1 << 16];
    static const uint8_t  key[] = "fuzz-key";
    dg_mask_field_t   f[FZ_NSEL], wk[FZ_NWALK];
    dg_mask_conf_t    conf;
    const uint8_t    *doc;
    tm_buf_t          o1, o2, o3;
    size_t            n, nc, i, sz;
    uint32_t          h;
    unsigned          mode, k;
    int               rc1, rc2, rc3;
    fz_walk_t         w;

    if (size < 1) {
        return 0;
    }

    if (fz_rules[0] == NULL) {
        for (i = 0; i < FZ_NSEL; i++) {
            f[i].selector = fz_sel[i];
            f[i].len = strlen(fz_sel[i]);
        }
        for (i = 0; i < FZ_NWALK; i++) {
            wk[i].selector = fz_walk[i];
            wk[i].len = strlen(fz_walk[i]);
        }
        for (k = 0; k < 4; k++) {
            fz_rules[k] = dg_mask_rules_compile_ex(f, FZ_NSEL, wk, FZ_NWALK,
                                                   k, NULL, 0);
            if (fz_rules[k] == NULL) {
                abort();
            }
        }
    }

    mode = data[0];
    doc = data + 1;
    n = size - 1;

    memset(&conf, 0, sizeof(conf));
    conf.rules = fz_rules[mode & 3];
    conf.actions = fz_act;
    conf.max_value = (mode & 4) ? 16 : 4096;
    conf.max_depth = (mode & 8) ? 4 : 64;
    conf.hash_key = key;
    conf.hash_key_len = sizeof(key) - 1;
    if (mode & 16) {
        conf.detect[DG_DETECT_MOBILE].method = DG_MASK_REDACT;
    }

    sz = dg_mask_size(&conf);
    if (sz > memsize) {
        free(mem);
        mem = tm_alloc(sz);
        memsize = sz;
        if (mem == NULL) {
            abort();
        }
    }

    memset(&o1, 0, sizeof(o1));
    memset(&o2, 0, sizeof(o2));
    memset(&o3, 0, sizeof(o3));

    rc1 = tm_feed(mem, &conf, doc, n, NULL, 0, &o1, NULL);

    /* the safety net on the whole input as one text: plain text never
     * fails with room enough, JSON text only on a bad escape or quote,
     * and without a hit the output is the input */
    {
        static uint8_t  *tx;
        static size_t    txcap;
        uint64_t         hits[DG_DETECT_MAX];
        int              t, json;

        if (3 * n + 64 > txcap) {
            free(tx);
            txcap = 3 * n + 64;
            tx = malloc(txcap);
            if (tx == NULL) {
                abort();
            }
        }

        for (json = 0; json <= 1; json++) {
            memset(hits, 0, sizeof(hits));
            t = dg_mask_detect_text(conf.detect, key, sizeof(key) - 1, doc,
                                    n, json ? DG_MASK_TEXT_JSON : 0, tx,
                                    txcap, hits);
            if (t < 0 && (!json || t != DG_MASK_E_SYNTAX)) {
                fprintf(stderr, "detect text failed: %d\n", t);
                abort();
            }
            if (t >= 0 && hits[0] + hits[1] + hits[2] + hits[3] == 0
                && ((size_t) t != n || (n && memcmp(tx, doc, n) != 0)))
            {
                fprintf(stderr, "detect text changed a text without hit\n");
                abort();
            }
        }
    }

    /* cut points from a hash of the input */
    h = 2166136261u;
    for (i = 0; i < size; i++) {
        h = (h ^ data[i]) * 16777619u;
    }
    nc = 0;
    for (i = 0; i < n && nc < (1 << 16); ) {
        h = h * 1103515245u + 12345u;
        i += 1 + (h >> 16) % (mode & 32 ? 3 : 17);
        if (i < n) {
            cuts[nc++] = i;
        }
    }
    /* the split run writes into memory lent in small or large pieces */
    o2.lend = (h & 0x100) ? 1 + (h >> 9) % 64 : 1 + (h >> 9) % 20000;
    o2.seed = h;
    rc2 = tm_feed(mem, &conf, doc, n, cuts, nc, &o2, NULL);

    if (rc1 != rc2) {
        fprintf(stderr, "whole rc %d, split rc %d\n", rc1, rc2);
        abort();
    }

    if (rc1 == 0 && (o1.len != o2.len
                     || (o1.len && memcmp(o1.p, o2.p, o1.len) != 0)))
    {
        fprintf(stderr, "whole and split outputs differ\n");
        abort();
    }

    if (n <= 2048) {
        nc = 0;
        for (i = 1; i < n; i++) {
            cuts[nc++] = i;
        }
        rc3 = tm_feed(mem, &conf, doc, n, cuts, nc, &o3, NULL);
        if (rc3 != rc1 || (rc1 == 0 && (o3.len != o1.len
                               || (o1.len && memcmp(o1.p, o3.p, o1.len)))))
        {
            fprintf(stderr, "byte-at-a-time differs: rc %d vs %d\n", rc3,
                    rc1);
            abort();
        }
    }

    if (rc1 == 0) {
        if (!tm_json_valid(doc, n)) {
            fprintf(stderr, "masked invalid JSON\n");
            abort();
        }
        if (!tm_json_valid(o1.p ? o1.p : (const uint8_t *) "", o1.len)) {
            fprintf(stderr, "output is not valid JSON\n");
            abort();
        }
        w.p = o1.p;
        w.end = o1.p + o1.len;
        w.flags = mode & 3;
        fz_ws(&w);
        if ((w.flags & DG_MASK_UNLISTED_DROP) && *w.p != '{' && *w.p != '['
            && (w.end - w.p < 4 || memcmp(w.p, "null", 4) != 0))
        {
            /* allow-list mode: a scalar document becomes null */
            fprintf(stderr, "unlisted scalar document survived\n");
            abort();
        }
        fz_value(&w, FZ_NONE, 0);

    } else if ((rc1 == DG_MASK_E_SYNTAX || rc1 == DG_MASK_E_TRUNCATED)
               && tm_json_valid(doc, n))
    {
        fprintf(stderr, "valid JSON refused: %d\n", rc1);
        abort();
    }

    free(o1.p);
    free(o2.p);
    free(o3.p);
    return 0;
}
