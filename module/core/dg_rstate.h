/*
 * datagate core: the Redis key schema and the run-time grant envelope,
 * shared by the module and the command-line tool (docs/redis.md).
 *
 * Plain C, no nginx headers, no hiredis: only strings and HMAC.
 *
 *   datagate:revoked:cert:SERIAL          revoked certificate serial
 *   datagate:suspended:consumer:ID        suspended consumer
 *   datagate:frozen:dataset:ID            frozen dataset
 *   datagate:frozen:grant:CONSUMER|DATASET   frozen grant
 *   datagate:grant:CONSUMER|DATASET       run-time grant (envelope below)
 *   datagate:rl:CONSUMER|DATASET          GCRA state (TAT, microseconds)
 *   datagate:quota:CONSUMER|DATASET:START quota count of the window
 *   datagate:rl:dataset:CONSUMER|DATASET  the same for a dataset's own
 *   datagate:quota:dataset:C|D:START      limits (each consumer's budget)
 *   datagate:abuse:CONSUMER|DATASET       abuse detection state (hash)
 *   datagate:abuse:hll:CONSUMER|DATASET:I its sketches (dg_abuse.h)
 *   channel datagate:events               "VERB KIND ARG" on every change
 *   channel datagate:anomalies            one JSON object per anomaly
 *
 * Incident keys are restrictive: their presence is the state, the value
 * is free text for people (when, who, why).  Run-time grants are
 * permissive and carry a MAC:
 *
 *   value = "DG1 " hex(mac) "\n" yaml
 *   mac   = HMAC-SHA-256(K, key "\n" yaml)
 *   K     = HMAC-SHA-256(secret, "redis-mac")
 *
 * so a value written by anyone without the secret, or moved to another
 * key, does not verify and is ignored.
 */

#ifndef DG_RSTATE_H
#define DG_RSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "dg_crypto.h"


#define DG_RS_PREFIX            "datagate:"
#define DG_RS_CHANNEL           "datagate:events"
#define DG_RS_CERT              "datagate:revoked:cert:"
#define DG_RS_CONSUMER          "datagate:suspended:consumer:"
#define DG_RS_DATASET           "datagate:frozen:dataset:"
#define DG_RS_GRANT_FROZEN      "datagate:frozen:grant:"
#define DG_RS_GRANT             "datagate:grant:"
#define DG_RS_RATE              "datagate:rl:"
#define DG_RS_QUOTA             "datagate:quota:"
#define DG_RS_ABUSE             "datagate:abuse:"
#define DG_RS_ABUSE_HLL         "datagate:abuse:hll:"
#define DG_RS_ANOMALIES         "datagate:anomalies"
#define DG_RS_EPOCH             "datagate:epoch"
#define DG_RS_EPOCH_LEN         32          /* hex digits of a new epoch */
#define DG_RS_EPOCH_MAX         64          /* longest accepted */

#define DG_RS_ID_MAX            256         /* consumer / dataset / serial */
#define DG_RS_KEY_MAX           (64 + 2 * DG_RS_ID_MAX)
#define DG_RS_GRANT_MAX         (16 * 1024) /* envelope, bytes */
#define DG_RS_MAGIC             "DG1 "
#define DG_RS_MAC_HEX           DG_SHA256_HEX_LEN


/* 1 when s is usable in a key: 1..DG_RS_ID_MAX printable, no '|', no
 * space or control character */
int dg_rs_id_ok(const char *s, size_t len);

/* prefix + a (+ "|" + b when b != NULL); returns the length or 0 when it
 * does not fit or an id is not usable */
size_t dg_rs_key(char *buf, size_t cap, const char *prefix,
    const char *a, size_t alen, const char *b, size_t blen);

/*
 * The key in a datagate_secret file: a text key file (printable ASCII)
 * may end in CR/LF, which is not part of the key; a binary key (random
 * bytes) is used whole, whatever its last byte.  Returns the key length;
 * the module and the CLI read the file the same way.
 */
size_t dg_secret_len(const uint8_t *buf, size_t len);

/* K = HMAC-SHA-256(secret, "redis-mac"); 0 ok, -1 */
int dg_rs_mac_key(const uint8_t *secret, size_t len,
    uint8_t key[DG_SHA256_LEN]);

/*
 * Build the envelope for yaml under key into out (cap bytes).  Returns
 * its length, or 0 when it does not fit DG_RS_GRANT_MAX / cap.
 */
size_t dg_rs_grant_seal(const uint8_t key[DG_SHA256_LEN], const char *rkey,
    size_t rklen, const char *yaml, size_t ylen, char *out, size_t cap);

/*
 * Check an envelope read from rkey.  On success returns 0 and points
 * *yaml / *ylen into value; -1: malformed, -2: MAC does not verify.
 */
int dg_rs_grant_open(const uint8_t key[DG_SHA256_LEN], const char *rkey,
    size_t rklen, const char *value, size_t vlen, const char **yaml,
    size_t *ylen);

#endif /* DG_RSTATE_H */
