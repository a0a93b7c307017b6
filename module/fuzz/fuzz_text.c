/*
 * libFuzzer target for the safety net on one text (dg_mask_text.c), as
 * the gateway runs it on response header values.
 *
 * fuzz: sources dg_mask*.c
 *
 * The input is the header value.  It is masked with the default methods
 * and with every kind pseudonymised (hash); each run must stay within
 * dg_mask_text_outcap() and hold at most one hit per 11 input bytes, a
 * run without hits must leave the output untouched, the output of a run
 * with the default methods must not be longer than the input (they never
 * write more than the characters of a hit), and dg_mask_text_candidate()
 * must never say "no" about a text with a hit.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "dg_mask.h"


#define FZ_HIT_MIN  11


static void
fz_fail(const char *what)
{
    fprintf(stderr, "fuzz_text: %s\n", what);
    abort();
}


static void
fz_run(const dg_mask_conf_t *conf, const uint8_t *data, size_t size,
    int shorter)
{
    int        rc;
    void      *work;
    size_t     cap, outlen;
    uint8_t   *out;
    uint64_t   hits[DG_DETECT_MAX];

    work = malloc(dg_mask_text_work(size));
    cap = dg_mask_text_outcap(size);
    out = malloc(cap + 1);

    if (work == NULL || out == NULL) {
        fz_fail("out of memory");
    }

    memset(out, 0xa5, cap + 1);
    memset(hits, 0, sizeof(hits));
    outlen = 0;

    rc = dg_mask_text(conf, data, size, work, out, &outlen, hits);

    if (rc < 0) {
        fz_fail("an error on a text within DG_MASK_TEXT_MAX");
    }

    if ((size_t) rc > size / FZ_HIT_MIN + 1) {
        fz_fail("more hits than the text can hold");
    }

    if (hits[0] + hits[1] + hits[2] + hits[3] != (uint64_t) rc) {
        fz_fail("hits per kind do not add up");
    }

    if (rc == 0) {
        if (out[0] != 0xa5 || outlen != 0) {
            fz_fail("no hit, yet output written");
        }

    } else {
        if (outlen > cap || out[cap] != 0xa5) {
            fz_fail("output beyond dg_mask_text_outcap()");
        }

        if (shorter && outlen > size) {
            fz_fail("the default methods made the text longer");
        }

        if (!dg_mask_text_candidate(data, size)) {
            fz_fail("a hit in a text that is no candidate");
        }
    }

    free(work);
    free(out);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned         k;
    dg_mask_conf_t   conf;
    static uint8_t   key[32] = "fuzz-text-pseudonym-key-32-bytes";

    if (size > 64 * 1024) {
        return 0;
    }

    /* the default methods (CLEAR means the kind's default) */
    memset(&conf, 0, sizeof(conf));
    fz_run(&conf, data, size, 1);

    /* every kind pseudonymised */
    for (k = 0; k < DG_DETECT_MAX; k++) {
        conf.detect[k].method = DG_MASK_HASH;
    }

    conf.hash_key = key;
    conf.hash_key_len = sizeof(key);
    fz_run(&conf, data, size, 0);

    return 0;
}
