/*
 * datagate core: abuse detection per (consumer, dataset).
 *
 * Plain C, no nginx headers.  Three detectors over the requests a
 * consumer makes on a dataset, configured by the dataset's or the
 * grant's "abuse:" mapping (policy/schema.md, "Abuse detection"):
 *
 *   enumeration  more than "distinct" different record identifiers in a
 *                sliding window: a HyperLogLog per eighth of the window
 *                and their union (DG_ABUSE_BUCKETS), so the count covers
 *                the last 7/8 to 8/8 of the window;
 *   sequential   a run of more than "sequential" identifiers that step by
 *                one constant stride (1, -1, 2, ... up to
 *                DG_ABUSE_STRIDE_MAX), each step at most DG_ABUSE_SEQ_GAP
 *                after the one before; DG_ABUSE_TRACKERS runs are followed
 *                at once, so other requests in between do not hide one;
 *   volume       calls (and records) in the current hour above
 *                max(floor, factor x baseline), the baseline an EWMA of
 *                the consumer's own counts for that hour of the week.
 *
 * Identifiers are never stored: only a keyed 64-bit hash (SipHash-2-4)
 * of their normalised form (dg_abuse_ids), and for numeric ones their
 * value.  The state of one (consumer, dataset) is one flat block of
 * memory (dg_abuse_state_t, no pointers), for a shared-memory zone; the
 * same detectors in Redis are the Lua script DG_ABUSE_LUA: keep them in
 * step.
 */

#ifndef DG_ABUSE_H
#define DG_ABUSE_H

#include <stddef.h>
#include <stdint.h>
#include "dg_crypto.h"


#define DG_ABUSE_BUCKETS        8       /* sub-windows of "distinct" */
#define DG_ABUSE_HLL_MIN_P      6       /* 64 registers */
#define DG_ABUSE_HLL_MAX_P      12      /* 4096 registers */
#define DG_ABUSE_TRACKERS       4       /* sequential runs followed */
#define DG_ABUSE_STRIDE_MAX     1000    /* |step| of a sequential run */
#define DG_ABUSE_SEQ_GAP        600     /* s between two steps of a run */
#define DG_ABUSE_HOURS          168     /* hours of a week */
#define DG_ABUSE_ALPHA          0.3     /* EWMA weight of a new week */
#define DG_ABUSE_IDS_MAX        4096    /* identifiers one request names */
#define DG_ABUSE_DIGITS_MAX     18      /* digits of a numeric value */
#define DG_ABUSE_KEY_LEN        DG_SIPHASH_KEY_LEN

#define DG_ABUSE_DISTINCT_MAX   1000000
#define DG_ABUSE_SEQUENTIAL_MAX 100000
#define DG_ABUSE_WINDOW_MIN     60      /* s: "distinct: N/1m" at least */
#define DG_ABUSE_WINDOW_MAX     86400
#define DG_ABUSE_SUSPEND_MAX    (30 * 86400)
#define DG_ABUSE_SUSPEND_DEFAULT 3600
#define DG_ABUSE_FACTOR_MAX     1000.0


/* what an anomaly does */
#define DG_ABUSE_ALERT          0
#define DG_ABUSE_SUSPEND        1


/* the kinds of anomaly: bits, and their names (the "kind" label) */
#define DG_ABUSE_K_ENUMERATION  0x01
#define DG_ABUSE_K_SEQUENTIAL   0x02
#define DG_ABUSE_K_VOLUME       0x04
#define DG_ABUSE_K_RECORDS      0x08
#define DG_ABUSE_KINDS          4

extern const char *const dg_abuse_kind_names[DG_ABUSE_KINDS];

/* "enumeration", ... of one bit; NULL for anything else */
const char *dg_abuse_kind_name(unsigned bit);


/* a dataset's or grant's "abuse:" (dg_policy_abuse.c loads it) */
typedef struct {
    unsigned                    set:1;      /* the mapping is there */
    unsigned                    off:1;      /* "abuse: off" (a grant) */
    unsigned                    action:1;   /* DG_ABUSE_ALERT/_SUSPEND */
    const char                 *id_param;   /* NULL: last path segment */
    size_t                      id_param_len;
    uint32_t                    distinct;   /* 0: no enumeration check */
    uint32_t                    window;     /* s */
    uint32_t                    sequential; /* 0: no run check */
    double                      factor;     /* 0: no volume check */
    uint32_t                    floor;      /* calls per hour */
    uint32_t                    record_floor; /* records per hour */
    uint32_t                    suspend_for; /* s */
    unsigned                    hll_p;      /* log2 of the registers */
    const char                 *src_file;
    unsigned                    src_line;
} dg_abuse_conf_t;


/*
 * The registers of the enumeration sketch for a threshold: the smallest
 * power of two >= 2 x distinct, within 2^DG_ABUSE_HLL_MIN_P ..
 * 2^DG_ABUSE_HLL_MAX_P.  With m >= 2n the linear-counting estimate is
 * within about sqrt(m (e^t - t - 1)) / n (t = n / m) of n: 2.4 % at
 * n = 500, m = 1024.
 */
unsigned dg_abuse_hll_p(uint32_t distinct);

/* "distinct 500/10m, sequential 20, volume x5 (floor 1000/h), suspend
 * 1h" into buf; returns buf */
const char *dg_abuse_describe(const dg_abuse_conf_t *c, char *buf,
    size_t cap);

/* "10m", "1h", "90s" */
const char *dg_abuse_duration_str(uint32_t s, char *buf, size_t cap);

/* "10m", "1h", "90s", "2d" -> seconds; -1 when not a duration */
int64_t dg_abuse_duration_parse(const char *s, size_t len);


/* ---- identifiers ---------------------------------------------------- */

typedef struct {
    uint64_t                    hash;       /* keyed, of the normal form */
    uint64_t                    family;     /* keyed, of the non-numeric
                                               part; 0 when numeric */
    uint64_t                    value;      /* the numeric part */
    unsigned                    numeric:1;  /* value is set */
} dg_abuse_id_t;

/*
 * The identifiers a request names (policy/schema.md, "Which
 * identifiers"): with c->id_param, every value of every query parameter
 * of that name (compared after percent-decoding, in any case, also as
 * NAME[] or NAME[...]), each value split at ','; else the last non-empty
 * segment of the path (path parameters after ';' left out).  path: the
 * decoded path as nginx holds it; args: the raw query string, without
 * '?'.  When id_param is set and the query has no such parameter, the
 * path is read.  Each identifier is normalised (dg_abuse_normalise) and
 * hashed with key.  scratch: max(plen, alen) bytes.  Returns how many
 * were stored in ids (at most max); *more is set when the request names
 * more than max.
 */
size_t dg_abuse_ids(const dg_abuse_conf_t *c,
    const uint8_t key[DG_ABUSE_KEY_LEN], const char *path, size_t plen,
    const char *args, size_t alen, char *scratch, dg_abuse_id_t *ids,
    size_t max, int *more);

/*
 * The normal form of one identifier into out (len bytes):
 * percent-decoded until nothing changes (at most 3 rounds), '+' read as
 * a space in a query value, surrounding spaces removed, full-width ASCII
 * (U+FF01..U+FF5E) as ASCII, letters in lower case, and a number
 * ([+-]digits) without its '+' and leading zeros.  Returns the length
 * (0: empty, not an identifier).
 */
size_t dg_abuse_normalise(const char *s, size_t len, int query, char *out);

/* the numeric part and family of a normal form, into id */
void dg_abuse_numeric(const uint8_t key[DG_ABUSE_KEY_LEN], const char *s,
    size_t len, dg_abuse_id_t *id);

/* SipHash-2-4 */


/* ---- the state of one (consumer, dataset) --------------------------- */

typedef struct {
    uint64_t                    family;
    uint64_t                    value;
    int64_t                     stride;
    int64_t                     last;       /* s */
    uint32_t                    len;        /* ids in the run, 0: free */
    uint32_t                    pad;
} dg_abuse_run_t;

typedef struct {
    uint32_t                    size;       /* bytes of the whole block */
    uint32_t                    hll_p;      /* its shape: registers and */
    uint32_t                    window;     /* window it was made for */
    uint32_t                    zeros;      /* union registers at 0 */
    double                      sum;        /* union: sum of 2^-M */
    int64_t                     bucket[DG_ABUSE_BUCKETS]; /* number of the
                                               sub-window each holds,
                                               -1: none */

    dg_abuse_run_t              runs[DG_ABUSE_TRACKERS];

    int64_t                     hour;       /* hours since the epoch,
                                               UTC+8; 0: none yet */
    uint64_t                    calls;      /* in that hour */
    uint64_t                    records;
    uint32_t                    fired;      /* kinds fired in it */
    uint32_t                    pad;
    float                       base_calls[DG_ABUSE_HOURS];
    float                       base_records[DG_ABUSE_HOURS];
    uint8_t                     seen[DG_ABUSE_HOURS]; /* weeks folded in,
                                               at most 255 */

    /* (DG_ABUSE_BUCKETS + 1) << hll_p registers follow: one sketch per
     * sub-window, then their union */
    uint8_t                     regs[1];
} dg_abuse_state_t;

/* bytes of the state for c */
size_t dg_abuse_state_size(const dg_abuse_conf_t *c);

/* a new state for c in size bytes (dg_abuse_state_size) */
void dg_abuse_state_init(dg_abuse_state_t *s, const dg_abuse_conf_t *c);

/*
 * The state fits c: same size and sketch.  When only the window changed
 * the sketch is emptied.  Returns 1 fits, 0 not (make a new one: the
 * volume part may be carried over with dg_abuse_state_carry).
 */
int dg_abuse_state_fits(dg_abuse_state_t *s, const dg_abuse_conf_t *c);
void dg_abuse_state_carry(dg_abuse_state_t *to, const dg_abuse_state_t *from);


/* one request */
typedef struct {
    uint64_t                    calls;      /* 1, or 0 (records only) */
    uint64_t                    records;    /* records in the answer */
    double                      base_calls; /* per hour, for hours not */
    double                      base_records; /* seen yet (from quotas) */
} dg_abuse_input_t;

typedef struct {
    unsigned                    fired;      /* DG_ABUSE_K_* now */
    uint64_t                    distinct;   /* estimate in the window */
    uint32_t                    run;        /* longest run followed */
    uint64_t                    calls;      /* this hour */
    uint64_t                    records;
    double                      calls_limit; /* what they are held to */
    double                      records_limit;
    /* the figures behind each kind that fired, for the messages */
    uint64_t                    value[DG_ABUSE_KINDS];
    uint64_t                    limit[DG_ABUSE_KINDS];
} dg_abuse_result_t;

/*
 * One request at now (s since the epoch): ids (may be 0 of them), a call
 * and/or records.  A detector that fires starts afresh (its window
 * emptied, its run ended; volume fires once per hour per kind), so one
 * anomaly is reported once.  more: the request named more than
 * DG_ABUSE_IDS_MAX identifiers (enumeration fires).
 */
void dg_abuse_observe(dg_abuse_state_t *s, const dg_abuse_conf_t *c,
    int64_t now, const dg_abuse_id_t *ids, size_t nids, int more,
    const dg_abuse_input_t *in, dg_abuse_result_t *res);

/* hour of the week, 0 = Monday 00:00-01:00 UTC+8 */
unsigned dg_abuse_hour_of_week(int64_t hour);

/* the hour (since the epoch, UTC+8) of now */
int64_t dg_abuse_hour(int64_t now);


/*
 * The volume part of a state as one line of text (for datagate_state):
 *
 *   HOUR CALLS RECORDS FIRED c0,...,c167 r0,...,r167 n0,...,n167
 *
 * the baselines with up to 3 decimals.  _encode returns the length
 * written (0: cap too small); _decode fills s (whose shape stays) and
 * returns 0, or -1 when the line is malformed (s unchanged).
 */
#define DG_ABUSE_VOLUME_TEXT_MAX  (4 * 24 + 3 * DG_ABUSE_HOURS * 16)
size_t dg_abuse_volume_encode(const dg_abuse_state_t *s, char *buf,
    size_t cap);
int dg_abuse_volume_decode(dg_abuse_state_t *s, const char *p, size_t len);


/*
 * The Redis script: the same detectors, cluster-wide, in one atomic step
 * on Redis's clock.
 *
 *   KEYS[1]  the state hash, "datagate:abuse:CONSUMER|DATASET"
 *   KEYS[2]  prefix of the sketches: sub-window i is KEYS[2] ":" i and
 *            their union KEYS[2] ":u" (Redis HyperLogLogs: PFADD, PFMERGE
 *            when a sub-window is reused, PFCOUNT of the union)
 *   ARGV[1]  distinct (0: off)        ARGV[2]  window s
 *   ARGV[3]  sequential (0: off)      ARGV[4]  factor (0: off)
 *   ARGV[5]  floor per hour           ARGV[6]  record floor per hour
 *   ARGV[7]  calls (0/1)              ARGV[8]  records
 *   ARGV[9]  base calls per hour      ARGV[10] base records per hour
 *            (for hours of the week not seen yet)
 *   ARGV[11] the identifiers, ';' between them, each
 *            HASH ':' FAMILY ':' HIGH ':' LOW: hex, hex, and the numeric
 *            value split at 10^9 (decimal; FAMILY, HIGH and LOW empty for
 *            a non-numeric one)
 *   ARGV[12] 1 when the request named more than DG_ABUSE_IDS_MAX
 *   ARGV[13] UTC offset s             ARGV[14] idle expiry of the keys s
 *
 * Returns { fired bits, distinct, longest run, calls, calls limit,
 *           records, records limit, the run that fired }.  Numbers in Lua
 * are doubles: a value is kept as two parts below 10^9 so that 18 digits
 * stay exact.  The constants B, GAP, SMAX, ALPHA are DG_ABUSE_BUCKETS,
 * DG_ABUSE_SEQ_GAP, DG_ABUSE_STRIDE_MAX and DG_ABUSE_ALPHA.
 */
#define DG_ABUSE_LUA                                                         \
"local t = redis.call('TIME')\n"                                             \
"local now = tonumber(t[1])\n"                                               \
"local h = KEYS[1]\n"                                                        \
"local distinct = tonumber(ARGV[1])\n"                                       \
"local window = tonumber(ARGV[2])\n"                                         \
"local seqn = tonumber(ARGV[3])\n"                                           \
"local factor = tonumber(ARGV[4])\n"                                         \
"local floor = tonumber(ARGV[5])\n"                                          \
"local rfloor = tonumber(ARGV[6])\n"                                         \
"local ncalls = tonumber(ARGV[7])\n"                                         \
"local nrecs = tonumber(ARGV[8])\n"                                          \
"local b0c = tonumber(ARGV[9])\n"                                            \
"local b0r = tonumber(ARGV[10])\n"                                           \
"local more = tonumber(ARGV[12])\n"                                          \
"local off = tonumber(ARGV[13])\n"                                           \
"local idle = tonumber(ARGV[14])\n"                                          \
"local B, GAP, SMAX, ALPHA = 8, 600, 1000, 0.3\n"                            \
"local fired, est, best, seqv = 0, 0, 0, 0\n"                                \
"local ids = {}\n"                                                           \
"for e in string.gmatch(ARGV[11], '[^;]+') do\n"                             \
"  local a, f, hi, lo = string.match(e, '^(%x+):(%x*):(%d*):(%d*)$')\n"      \
"  if a then\n"                                                              \
"    ids[#ids + 1] = {a = a, f = f, hi = tonumber(hi), lo = tonumber(lo)}\n" \
"  end\n"                                                                    \
"end\n"                                                                      \
"local calls, recs, climit, rlimit = 0, 0, 0, 0\n"                           \
"if factor > 0 then\n"                                                       \
"  local hour = math.floor((now + off) / 3600)\n"                            \
"  local v = redis.call('HMGET', h, 'hour', 'calls', 'recs', 'vf')\n"        \
"  local ph = tonumber(v[1] or '0') or 0\n"                                  \
"  calls = tonumber(v[2] or '0') or 0\n"                                     \
"  recs = tonumber(v[3] or '0') or 0\n"                                      \
"  local vf = tonumber(v[4] or '0') or 0\n"                                  \
"  local function fold(hr, c, r)\n"                                          \
"    local s = (hr + 72) % 168\n"                                            \
"    local f = redis.call('HMGET', h, 'bc' .. s, 'br' .. s, 'n' .. s)\n"     \
"    local n = tonumber(f[3] or '0') or 0\n"                                 \
"    local a = 1\n"                                                          \
"    if n > 0 then a = math.max(ALPHA, 1 / (n + 1)) end\n"                   \
"    local bc = (tonumber(f[1] or '0') or 0) * (1 - a) + c * a\n"            \
"    local br = (tonumber(f[2] or '0') or 0) * (1 - a) + r * a\n"            \
"    if n < 255 then n = n + 1 end\n"                                        \
"    redis.call('HSET', h, 'bc' .. s, string.format('%.3f', bc),\n"          \
"               'br' .. s, string.format('%.3f', br), 'n' .. s, n)\n"        \
"  end\n"                                                                    \
"  if ph ~= hour then\n"                                                     \
"    if ph > 0 and ph < hour then\n"                                         \
"      fold(ph, calls, recs)\n"                                              \
"      for hr = ph + 1, math.min(hour - 1, ph + 168) do fold(hr, 0, 0) end\n"\
"    end\n"                                                                  \
"    calls, recs, vf = 0, 0, 0\n"                                            \
"  end\n"                                                                    \
"  calls = calls + ncalls\n"                                                 \
"  recs = recs + nrecs\n"                                                    \
"  local s = (hour + 72) % 168\n"                                            \
"  local f = redis.call('HMGET', h, 'bc' .. s, 'br' .. s, 'n' .. s)\n"       \
"  local bc, br = b0c, b0r\n"                                                \
"  if (tonumber(f[3] or '0') or 0) > 0 then\n"                               \
"    bc = tonumber(f[1] or '0') or 0\n"                                      \
"    br = tonumber(f[2] or '0') or 0\n"                                      \
"  end\n"                                                                    \
"  climit = math.max(floor, factor * bc)\n"                                  \
"  rlimit = math.max(rfloor, factor * br)\n"                                 \
"  if ncalls > 0 and calls > climit and vf % 8 < 4 then\n"                   \
"    fired = fired + 4\n"                                                    \
"    vf = vf + 4\n"                                                          \
"  end\n"                                                                    \
"  if nrecs > 0 and recs > rlimit and vf < 8 then\n"                         \
"    fired = fired + 8\n"                                                    \
"    vf = vf + 8\n"                                                          \
"  end\n"                                                                    \
"  redis.call('HSET', h, 'hour', hour, 'calls', calls, 'recs', recs,\n"      \
"             'vf', vf)\n"                                                   \
"end\n"                                                                      \
"if distinct > 0 and (#ids > 0 or more == 1) then\n"                         \
"  local width = math.max(1, math.floor(window / B))\n"                      \
"  local cb = math.floor(now / width)\n"                                     \
"  local slot = cb % B\n"                                                    \
"  local u = KEYS[2] .. ':u'\n"                                              \
"  local nums = redis.call('HMGET', h, 'b0', 'b1', 'b2', 'b3', 'b4', 'b5',\n"\
"                          'b6', 'b7')\n"                                    \
"  if tonumber(nums[slot + 1] or '-1') ~= cb then\n"                         \
"    redis.call('DEL', KEYS[2] .. ':' .. slot, u)\n"                         \
"    redis.call('HSET', h, 'b' .. slot, cb)\n"                               \
"    nums[slot + 1] = cb\n"                                                  \
"    local live = {}\n"                                                      \
"    for i = 0, B - 1 do\n"                                                  \
"      local bn = tonumber(nums[i + 1] or '-1') or -1\n"                     \
"      if i ~= slot and bn >= 0 and bn > cb - B then\n"                      \
"        live[#live + 1] = KEYS[2] .. ':' .. i\n"                            \
"      end\n"                                                                \
"    end\n"                                                                  \
"    if #live > 0 then redis.call('PFMERGE', u, unpack(live)) end\n"         \
"  end\n"                                                                    \
"  local sk = KEYS[2] .. ':' .. slot\n"                                      \
"  local batch = {}\n"                                                       \
"  for i = 1, #ids do\n"                                                     \
"    batch[#batch + 1] = ids[i].a\n"                                         \
"    if #batch == 512 or i == #ids then\n"                                   \
"      redis.call('PFADD', sk, unpack(batch))\n"                             \
"      redis.call('PFADD', u, unpack(batch))\n"                              \
"      batch = {}\n"                                                         \
"    end\n"                                                                  \
"  end\n"                                                                    \
"  redis.call('EXPIRE', sk, window + width)\n"                               \
"  redis.call('EXPIRE', u, window + width)\n"                                \
"  est = redis.call('PFCOUNT', u)\n"                                         \
"  if est > distinct or more == 1 then\n"                                    \
"    fired = fired + 1\n"                                                    \
"    for i = 0, B - 1 do\n"                                                  \
"      redis.call('DEL', KEYS[2] .. ':' .. i)\n"                             \
"      if i ~= slot then redis.call('HDEL', h, 'b' .. i) end\n"              \
"    end\n"                                                                  \
"    redis.call('DEL', u)\n"                                                 \
"  end\n"                                                                    \
"end\n"                                                                      \
"if seqn > 0 and #ids > 0 then\n"                                            \
"  local runs = {}\n"                                                        \
"  local raw = redis.call('HMGET', h, 'r0', 'r1', 'r2', 'r3')\n"             \
"  for k = 1, 4 do\n"                                                        \
"    local f, hi, lo, st, n, last = string.match(raw[k] or '',\n"            \
"        '^(%x*) (%d+) (%d+) (%-?%d+) (%d+) (%d+)$')\n"                      \
"    if f then\n"                                                            \
"      runs[k] = {f = f, hi = tonumber(hi), lo = tonumber(lo),\n"            \
"                 st = tonumber(st), n = tonumber(n), t = tonumber(last)}\n" \
"    else\n"                                                                 \
"      runs[k] = {f = '', hi = 0, lo = 0, st = 0, n = 0, t = 0}\n"           \
"    end\n"                                                                  \
"  end\n"                                                                    \
"  local function len(r)\n"                                                  \
"    if r.n > 0 and now - r.t <= GAP then return r.n end\n"                  \
"    return 0\n"                                                             \
"  end\n"                                                                    \
"  for i = 1, #ids do\n"                                                     \
"    local id = ids[i]\n"                                                    \
"    if id.hi and id.lo then\n"                                              \
"      local hit, hd = nil, 0\n"                                             \
"      for pass = 0, 1 do\n"                                                 \
"        for k = 1, 4 do\n"                                                  \
"          local r = runs[k]\n"                                              \
"          if not hit and len(r) > 0 and r.f == id.f\n"                      \
"             and math.abs(id.hi - r.hi) <= 1 then\n"                        \
"            local d = (id.hi - r.hi) * 1000000000 + (id.lo - r.lo)\n"       \
"            if pass == 0 and (d == 0 or (r.n >= 2 and d == r.st)) then\n"   \
"              hit, hd = r, d\n"                                             \
"            elseif pass == 1 and r.n == 1 and d ~= 0\n"                     \
"                   and math.abs(d) <= SMAX then\n"                          \
"              hit, hd = r, d\n"                                             \
"            end\n"                                                          \
"          end\n"                                                            \
"        end\n"                                                              \
"      end\n"                                                                \
"      if hit then\n"                                                        \
"        if hd ~= 0 then\n"                                                  \
"          if hit.n == 1 then hit.st = hd end\n"                             \
"          hit.n = hit.n + 1\n"                                              \
"          hit.hi, hit.lo = id.hi, id.lo\n"                                  \
"        end\n"                                                              \
"        hit.t = now\n"                                                      \
"        if hit.n > best then best = hit.n end\n"                            \
"        if hit.n > seqn then\n"                                             \
"          if fired % 4 < 2 then fired = fired + 2 end\n"                    \
"          if hit.n > seqv then seqv = hit.n end\n"                          \
"          hit.n, hit.st = 1, 0\n"                                           \
"        end\n"                                                              \
"      else\n"                                                               \
"        local v = 1\n"                                                      \
"        for k = 2, 4 do\n"                                                  \
"          local r, w = runs[k], runs[v]\n"                                  \
"          if len(r) < len(w) or (len(r) == len(w) and r.t < w.t) then\n"    \
"            v = k\n"                                                        \
"          end\n"                                                            \
"        end\n"                                                              \
"        runs[v] = {f = id.f, hi = id.hi, lo = id.lo, st = 0, n = 1, t = now}\n"\
"      end\n"                                                                \
"    end\n"                                                                  \
"  end\n"                                                                    \
"  for k = 1, 4 do\n"                                                        \
"    local r = runs[k]\n"                                                    \
"    redis.call('HSET', h, 'r' .. (k - 1), string.format(\n"                 \
"        '%s %d %d %d %d %d', r.f, r.hi, r.lo, r.st, r.n, r.t))\n"           \
"  end\n"                                                                    \
"end\n"                                                                      \
"redis.call('EXPIRE', h, idle)\n"                                            \
"return {fired, est, best, calls, math.floor(climit), recs,\n"               \
"        math.floor(rlimit), seqv}\n"

/* how long Redis keeps a quiet (consumer, dataset)'s state: five weeks */
#define DG_ABUSE_REDIS_IDLE     (35 * 86400)

#endif /* DG_ABUSE_H */
