/*
 * datagate core: what the audit sources share and nothing else needs
 * (dg_audit.c, dg_audit_rec.c, dg_audit_verify.c).
 */

#ifndef DG_AUDIT_INT_H
#define DG_AUDIT_INT_H

#include "dg_audit.h"


/* lower-case hex digits, as the hashes and \u00XX escapes are written */
extern const char  dg_audit_hex[];

/* the last member of a record: ,"hash":"<64 hex>"} */
extern const char  dg_audit_hash_member[];
#define DG_AUDIT_HASH_MEMBER_LEN  (sizeof(",\"hash\":\"") - 1)

/* ,"hash":" + 64 hex + "} */
#define DG_AUDIT_HASH_SUFFIX  (DG_AUDIT_HASH_MEMBER_LEN + DG_AUDIT_HEXLEN + 2)

/* P || a || b with the caller's digests (md), or with ones of its own
 * for this call (md NULL); hex into out (65 bytes) */
int dg_audit_digest_parts(dg_audit_md_t *md, int alg, const char *prev,
    const char *a, size_t alen, const char *b, size_t blen, char *out);

#endif /* DG_AUDIT_INT_H */
