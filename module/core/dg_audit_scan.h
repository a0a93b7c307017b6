/*
 * datagate core: reading the members of an audit record for reports.
 *
 * Plain C, no nginx headers.  dg_audit_scan() reads one line of an audit
 * log (docs/audit.md) as JSON and picks out the members a report counts:
 * time, consumer, dataset, purpose, decision, reason, status, bytes,
 * records, lost and masked.  Every other member is skipped, whatever it
 * holds, so records with members added later read as well.  It does not
 * check the chain (dg_audit_verify_* does): a report counts what the
 * records say.
 *
 * A line is refused (-1) when it is not one JSON object, when a member
 * it reads is of the wrong type or out of range, when one of them is
 * given twice, or when "time" or "decision" is missing: such a line is
 * counted as unreadable, never guessed at.  A well-formed object with a
 * "seq" and no "decision" is a record of another kind than a call (1).
 */

#ifndef DG_AUDIT_SCAN_H
#define DG_AUDIT_SCAN_H

#include <stddef.h>
#include <stdint.h>


/* masked classes read from one record at most (the writer's bound of
 * 4096 bytes between the braces holds fewer) */
#define DG_ASCAN_MASKED_MAX     1024

/* nesting of skipped members, at most */
#define DG_ASCAN_DEPTH_MAX      64

/* "time" as written: 2024-05-11T09:30:00.123+08:00, at most this long */
#define DG_ASCAN_TIME_MAX       40

/* the local date and minute of "time": YYYY-MM-DD, YYYY-MM-DDTHH:MM */
#define DG_ASCAN_DATE_LEN       10
#define DG_ASCAN_MINUTE_LEN     16

#define DG_ASCAN_MS_PER_MIN     60000


/* a string member: data == NULL for null or absent */
typedef struct {
    const char                 *data;
    size_t                      len;
} dg_aview_t;


typedef struct {
    dg_aview_t                  name;
    uint64_t                    count;
} dg_ascan_count_t;


typedef struct {
    dg_aview_t                  time;       /* as written */
    int64_t                     time_ms;    /* milliseconds since the
                                               epoch (UTC) */
    dg_aview_t                  consumer;
    dg_aview_t                  dataset;
    dg_aview_t                  purpose;
    dg_aview_t                  decision;
    dg_aview_t                  reason;     /* NULL when absent */
    uint64_t                    seq;
    uint64_t                    status;
    uint64_t                    bytes;
    uint64_t                    records;    /* data records returned */
    uint64_t                    lost;       /* records not written
                                               before this one */
    unsigned                    has_records:1;
    unsigned                    has_seq:1;
    unsigned                    allowed:1;  /* decision "allowed" */
    unsigned                    denied:1;   /* decision "denied" */

    dg_ascan_count_t            masked[DG_ASCAN_MASKED_MAX];
    size_t                      nmasked;
} dg_ascan_t;


/*
 * Read one line (without its LF).  Strings that hold escapes are
 * unescaped into scratch (cap bytes; a line never needs more than its
 * own length); the others point into the line.  Returns 0 for the
 * record of a call, 1 for a record of another kind (a "seq", no
 * "decision"), or -1 with *err a short reason ("not a JSON object",
 * "no \"time\"", ...).
 */
int dg_audit_scan(dg_ascan_t *r, const char *line, size_t len,
    char *scratch, size_t cap, const char **err);

/*
 * "2024-05-11T09:30:00.123+08:00" (fraction optional, 1 to 9 digits;
 * "Z" or +HH:MM / -HH:MM) -> milliseconds since the epoch.  0 or -1.
 */
int dg_audit_time_parse(const char *s, size_t len, int64_t *ms);

#endif /* DG_AUDIT_SCAN_H */
