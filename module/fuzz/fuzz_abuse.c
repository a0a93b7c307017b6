/*
 * libFuzzer target for abuse detection's reading of requests and of its
 * state lines (dg_abuse.c).
 *
 * fuzz: sources dg_abuse.c dg_gcra.c dg_crypto.c
 *
 * The input is a request: a path, a LF, a query string (no LF: a path
 * alone); and it is also read as a state line.  dg_abuse_ids() must not
 * read or write outside the path, the query, a scratch buffer of exactly
 * max(path, query) bytes and the identifiers' array, with and without
 * id_param, and give the same identifiers twice; numeric values have at
 * most 18 digits.  The identifiers go through every detector at two
 * times.  A state line dg_abuse_volume_decode() accepts encodes and
 * decodes again to the same state.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dg_abuse.h"


#define FUZZ_IDS        64
#define FUZZ_VALUE_MAX  1000000000000000000ULL


static const uint8_t  key[DG_ABUSE_KEY_LEN] = "fuzz-abuse-key16";


static void
check_ids(const dg_abuse_conf_t *c, const char *path, size_t plen,
    const char *args, size_t alen)
{
    int                more, more2;
    char              *scratch;
    size_t             n, n2, i;
    dg_abuse_id_t     *ids, *ids2;
    dg_abuse_state_t  *s;
    dg_abuse_input_t   in;
    dg_abuse_result_t  res;

    scratch = malloc((plen > alen ? plen : alen) + 1);
    ids = malloc(FUZZ_IDS * sizeof(dg_abuse_id_t));
    ids2 = malloc(FUZZ_IDS * sizeof(dg_abuse_id_t));

    if (scratch == NULL || ids == NULL || ids2 == NULL) {
        abort();
    }

    n = dg_abuse_ids(c, key, path, plen, args, alen, scratch, ids, FUZZ_IDS,
                     &more);
    n2 = dg_abuse_ids(c, key, path, plen, args, alen, scratch, ids2,
                      FUZZ_IDS, &more2);

    if (n > FUZZ_IDS || n != n2 || more != more2) {
        abort();
    }

    for (i = 0; i < n; i++) {
        if (ids[i].hash != ids2[i].hash || ids[i].numeric != ids2[i].numeric
            || (ids[i].numeric && (ids[i].value != ids2[i].value
                                   || ids[i].family != ids2[i].family
                                   || ids[i].value >= FUZZ_VALUE_MAX)))
        {
            abort();
        }
    }

    s = malloc(dg_abuse_state_size(c));
    if (s == NULL) {
        abort();
    }

    dg_abuse_state_init(s, c);
    memset(&in, 0, sizeof(in));
    in.calls = 1;
    in.base_calls = 10;

    dg_abuse_observe(s, c, 1780000000, ids, n, more, &in, &res);
    dg_abuse_observe(s, c, 1780000000 + 3600 * 200, ids, n, more, &in, &res);

    free(s);
    free(scratch);
    free(ids);
    free(ids2);
}


static void
check_state(const char *p, size_t len)
{
    char              *buf;
    size_t             n;
    dg_abuse_conf_t    c;
    dg_abuse_state_t  *a, *b;

    memset(&c, 0, sizeof(c));
    c.set = 1;
    c.factor = 5;

    a = calloc(1, dg_abuse_state_size(&c));
    b = calloc(1, dg_abuse_state_size(&c));
    buf = malloc(DG_ABUSE_VOLUME_TEXT_MAX + 1);

    if (a == NULL || b == NULL || buf == NULL) {
        abort();
    }

    dg_abuse_state_init(a, &c);
    dg_abuse_state_init(b, &c);

    if (dg_abuse_volume_decode(a, p, len) == 0) {
        n = dg_abuse_volume_encode(a, buf, DG_ABUSE_VOLUME_TEXT_MAX + 1);

        if (n == 0 || dg_abuse_volume_decode(b, buf, n) != 0
            || a->hour != b->hour || a->calls != b->calls
            || a->records != b->records || a->fired != b->fired
            || memcmp(a->seen, b->seen, sizeof(a->seen)) != 0)
        {
            abort();
        }
    }

    free(a);
    free(b);
    free(buf);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char             *path, *args;
    size_t            plen, alen;
    const uint8_t    *nl;
    dg_abuse_conf_t   c;

    nl = memchr(data, '\n', size);
    plen = nl ? (size_t) (nl - data) : size;
    alen = nl ? size - plen - 1 : 0;

    /* copies of exactly their size: a read past them is caught */
    path = malloc(plen ? plen : 1);
    args = malloc(alen ? alen : 1);

    if (path == NULL || args == NULL) {
        abort();
    }

    memcpy(path, data, plen);
    if (alen) {
        memcpy(args, nl + 1, alen);
    }

    memset(&c, 0, sizeof(c));
    c.set = 1;
    c.distinct = 50;
    c.window = 600;
    c.sequential = 5;
    c.factor = 5;
    c.floor = 1;
    c.record_floor = 1;

    check_ids(&c, path, plen, nl ? args : NULL, alen);

    c.id_param = "id";
    c.id_param_len = 2;
    check_ids(&c, path, plen, nl ? args : NULL, alen);

    check_state((const char *) data, size);

    free(path);
    free(args);

    return 0;
}
