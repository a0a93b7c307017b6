/*
 * libFuzzer target for the audit record reader of `datagate report`
 * (dg_audit_scan), which reads files an attacker may have written.
 *
 * fuzz: sources dg_audit*.c
 *
 * The input is split at LF; each line is read with a scratch buffer of
 * the line's own size (the reader's contract): what it gives back must
 * lie inside the line or the scratch buffer.  Each line is also every
 * client string of a record the gateway's writer makes (dg_audit_encode):
 * the reader must read that record, with the consumer and purpose the
 * writer was given (invalid UTF-8 as U+FFFD).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#include "dg_audit.h"
#include "dg_audit_scan.h"


#define DG_FUZZ_SHORT           40      /* never cut by the writer */


static dg_ascan_t  dg_fuzz_rec;


static void
dg_fuzz_inside(dg_aview_t v, const char *line, size_t len,
    const char *scratch, size_t cap)
{
    if (v.data == NULL) {
        return;
    }

    if ((v.data >= line && v.data + v.len <= line + len)
        || (v.data >= scratch && v.data + v.len <= scratch + cap))
    {
        return;
    }

    abort();
}


/* the bytes with every invalid UTF-8 sequence as U+FFFD, as the writer
 * escapes them; returns the length */
static size_t
dg_fuzz_utf8(const uint8_t *s, size_t len, char *out)
{
    size_t    i, n, k, o;
    uint32_t  c, min;

    o = 0;

    for (i = 0; i < len; i += n) {
        c = s[i];
        n = 1;

        if (c < 0x80) {
            out[o++] = (char) c;
            continue;
        }

        if (c >= 0xc2 && c <= 0xdf) {
            n = 2; c &= 0x1f; min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3; c &= 0x0f; min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4; c &= 0x07; min = 0x10000;
        } else {
            n = 0;
        }

        for (k = 1; n && k < n; k++) {
            if (i + k >= len || (s[i + k] & 0xc0) != 0x80) {
                n = 0;
                break;
            }
            c = (c << 6) | (s[i + k] & 0x3f);
        }

        if (n == 0 || c < min || c > 0x10ffff
            || (c >= 0xd800 && c <= 0xdfff))
        {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            n = 1;
            continue;
        }

        memcpy(out + o, s + i, n);
        o += n;
    }

    return o;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                 rc;
    char               *copy, *scratch, hash[DG_AUDIT_HEXLEN + 1];
    char                want[DG_FUZZ_SHORT * 3];
    size_t              n, i, len, wlen;
    const char         *p, *end, *nl, *err, *line;
    dg_arec_t           r;
    dg_astr_t           a;
    dg_acount_t         c;
    dg_audit_md_t       md;
    dg_audit_fields_t   f;
    static char         big[DG_AUDIT_RECORD_MAX];
    static const char   tm[] = "2024-05-11T09:30:00.123+08:00";

    memset(&md, 0, sizeof(md));

    p = (const char *) data;
    end = p + size;

    while (p <= end) {
        nl = memchr(p, '\n', end - p);
        n = nl ? (size_t) (nl - p) : (size_t) (end - p);

        /* exact-size copies: ASan sees any read past the line */
        copy = malloc(n ? n : 1);
        scratch = malloc(n ? n : 1);
        if (copy == NULL || scratch == NULL) {
            abort();
        }

        memcpy(copy, p, n);

        err = NULL;
        rc = dg_audit_scan(&dg_fuzz_rec, copy, n, scratch, n, &err);

        if (rc == 0) {
            dg_fuzz_inside(dg_fuzz_rec.time, copy, n, scratch, n);
            dg_fuzz_inside(dg_fuzz_rec.consumer, copy, n, scratch, n);
            dg_fuzz_inside(dg_fuzz_rec.dataset, copy, n, scratch, n);
            dg_fuzz_inside(dg_fuzz_rec.purpose, copy, n, scratch, n);
            dg_fuzz_inside(dg_fuzz_rec.decision, copy, n, scratch, n);
            dg_fuzz_inside(dg_fuzz_rec.reason, copy, n, scratch, n);

            for (i = 0; i < dg_fuzz_rec.nmasked; i++) {
                dg_fuzz_inside(dg_fuzz_rec.masked[i].name, copy, n, scratch,
                               n);
            }

            if (dg_fuzz_rec.time.len > DG_ASCAN_TIME_MAX
                || dg_fuzz_rec.allowed == dg_fuzz_rec.denied)
            {
                abort();
            }

        } else if ((rc == -1 && err == NULL) || (rc == 1
                                                  && !dg_fuzz_rec.has_seq))
        {
            abort();
        }

        free(copy);
        free(scratch);

        /* the line as everything a client controls, written by the
         * gateway's writer: the reader reads it back */
        memset(&f, 0, sizeof(f));
        a.data = p;
        a.len = n;
        f.time.data = tm;
        f.time.len = sizeof(tm) - 1;
        f.request_id = f.consumer = f.cert_serial = f.client = a;
        f.peer = f.forwarded = a;
        f.country = f.region = f.dataset = f.purpose = f.approval = a;
        f.method = f.uri = f.policy = a;
        f.decision = "denied";
        f.reason = "purpose_unknown";
        f.status = 403;
        c.name = p;
        c.len = n;
        c.count = n + 1;
        f.masked = &c;
        f.nmasked = 1;

        dg_arec_init(&r, big, sizeof(big));

        if (dg_audit_encode(&r, &f) != 0
            || dg_arec_seal(&r, &md, 0, n, dg_audit_genesis, hash, &line,
                            &len) != 0)
        {
            abort();
        }

        scratch = malloc(len);
        if (scratch == NULL) {
            abort();
        }

        if (dg_audit_scan(&dg_fuzz_rec, line, len - 1, scratch, len, &err)
            != 0 || !dg_fuzz_rec.denied || dg_fuzz_rec.status != 403
            || dg_fuzz_rec.time_ms != 1715391000123LL)
        {
            fprintf(stderr, "the reader refused the writer's record: %s\n",
                    err);
            abort();
        }

        if (n <= DG_FUZZ_SHORT) {
            wlen = dg_fuzz_utf8((const uint8_t *) p, n, want);

            if (dg_fuzz_rec.consumer.len != wlen
                || memcmp(dg_fuzz_rec.consumer.data, want, wlen) != 0
                || dg_fuzz_rec.purpose.len != wlen
                || memcmp(dg_fuzz_rec.purpose.data, want, wlen) != 0)
            {
                fprintf(stderr, "the reader read another consumer\n");
                abort();
            }
        }

        free(scratch);

        if (nl == NULL) {
            break;
        }

        p = nl + 1;
    }

    dg_audit_md_free(&md);

    return 0;
}
