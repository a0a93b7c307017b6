/*
 * libFuzzer target for the audit record parser, the chain verifier and the
 * JSON string escaper.
 *
 * fuzz: sources dg_audit*.c
 *
 * The input is split at LF into lines and fed to the verifier as two files
 * (split at the first line starting with "#"), as `datagate audit verify`
 * does with files an attacker may have written.  Each line is also escaped
 * into a record, sealed, and must then parse and verify, with the escaped
 * value reading back as valid JSON.  Each line is also every client
 * string of a whole record (dg_audit_encode): the record must verify and
 * keep its decision.  Nothing may crash or leak.
 */

#define _GNU_SOURCE             /* memmem */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#include "dg_audit.h"


static const char  dg_fuzz_decision[] = ",\"decision\":\"allowed\","
                                      "\"reason\":\"ok\",";
static const char  dg_fuzz_status[] = ",\"status\":200,\"bytes\":0,"
                                    "\"masked\":{";


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char         *p, *end, *nl, *line;
    size_t              len, n;
    dg_arec_t           r;
    dg_audit_rec_t      rec;
    dg_audit_md_t       md;
    dg_audit_verify_t   v;
    char                buf[4096], hash[DG_AUDIT_HEXLEN + 1], err[256];
    dg_astr_t           a;
    dg_acount_t         c;
    dg_audit_fields_t   f;
    static char         big[DG_AUDIT_RECORD_MAX];

    if (dg_audit_verify_init(&v) != 0) {
        return 0;
    }

    memset(&md, 0, sizeof(md));

    dg_audit_verify_file(&v, "a");

    p = (const char *) data;
    end = p + size;

    while (p < end) {
        nl = memchr(p, '\n', end - p);
        n = nl ? (size_t) (nl - p) : (size_t) (end - p);

        if (n && p[0] == '#' && v.nfile == 1) {
            dg_audit_verify_file(&v, "b");
        }

        if (nl == NULL) {
            dg_audit_verify_incomplete(&v);
        }

        dg_audit_verify_line(&v, p, n);
        (void) dg_audit_parse(&md, p, n, &rec, err, sizeof(err));

        /* any bytes as a value: the sealed record must verify */
        dg_arec_init(&r, buf, sizeof(buf));
        dg_arec_str(&r, "v", p, n);
        dg_arec_str_max(&r, "w", p, n, n % 100);
        dg_arec_obj_begin(&r, "m");
        dg_arec_uint_n(&r, p, n < 64 ? n : 64, n);
        dg_arec_obj_end(&r);
        dg_arec_lost(&r, n);

        if (dg_arec_seal(&r, &md, (int) (n & 1), n, dg_audit_genesis, hash,
                         &line, &len) == 0)
        {
            if (dg_audit_parse(&md, line, len - 1, &rec, err, sizeof(err))
                != 0
                || len > sizeof(buf) || line[len - 1] != '\n'
                || memchr(line, '\n', len - 1) != NULL)
            {
                abort();
            }
        }

        /* the line as everything a client controls */
        memset(&f, 0, sizeof(f));
        a.data = p;
        a.len = n;
        f.time = f.request_id = f.consumer = f.cert_serial = f.client = a;
        f.peer = f.forwarded = a;
        f.country = f.region = f.dataset = f.purpose = f.approval = a;
        f.method = f.uri = f.policy = a;
        f.decision = "allowed";
        f.reason = "ok";
        f.status = 200;
        c.name = p;
        c.len = n;
        c.count = n;
        f.masked = &c;
        f.nmasked = 1;

        dg_arec_init(&r, big, sizeof(big));

        if (dg_audit_encode(&r, &f) != 0
            || dg_arec_seal(&r, &md, 0, n, dg_audit_genesis, hash, &line, &len)
               != 0
            || dg_audit_parse(&md, line, len - 1, &rec, err, sizeof(err)) != 0
            || memmem(line, len, dg_fuzz_decision,
                      sizeof(dg_fuzz_decision) - 1) == NULL
            || memmem(line, len, dg_fuzz_status,
                      sizeof(dg_fuzz_status) - 1) == NULL)
        {
            abort();
        }

        p += n + (nl ? 1 : 0);
    }

    (void) dg_audit_verify_end(&v);
    dg_audit_verify_free(&v);
    dg_audit_md_free(&md);

    return 0;
}
