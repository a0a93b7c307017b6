/*
 * datagate core: rate-limit and quota arithmetic.
 *
 * Plain C, no nginx headers.  The same numbers are computed by the
 * shared-memory path of the module (one node) and by the Lua script that
 * Redis runs for the cluster-wide budget (DG_GCRA_LUA below): keep them
 * in step.
 *
 * Rate: GCRA (generic cell rate algorithm, the "virtual scheduling" form).
 * The only state is the theoretical arrival time TAT, in microseconds.
 *
 *     T   = 1e6 / rate              emission interval, us
 *     tau = burst * T               tolerance
 *     tat = max(TAT, now)
 *     new = tat + T
 *     if new - now > tau + T:       limited; retry after new - now - tau - T
 *     else:                         admitted; TAT = new
 *
 * An idle key admits burst + 1 requests at once, then one every T:
 * "100r/s burst=50" admits 51 back to back, then 100 per second.
 *
 * Quota: a fixed window of quota_period seconds; days (86400) start at
 * 00:00 UTC+8 (Beijing time), hours and minutes on the hour and minute.
 */

#ifndef DG_GCRA_H
#define DG_GCRA_H

#include <stdint.h>


#define DG_GCRA_USEC            1000000LL
#define DG_UTC_OFFSET           (8 * 3600)      /* UTC+8 */


typedef struct {
    int64_t                     interval;   /* T, us; 0: no rate limit */
    int64_t                     tolerance;  /* tau = burst * T, us */
    uint64_t                    limit;      /* burst + 1 */
} dg_gcra_t;


typedef struct {
    int                         allowed;
    uint64_t                    limit;      /* RateLimit-Limit */
    uint64_t                    remaining;  /* RateLimit-Remaining */
    int64_t                     retry_after;/* us until admitted, 0 */
    int64_t                     reset;      /* us until the bucket is full */
} dg_gcra_result_t;


/*
 * rate in requests per second (> 0), burst >= 0.  Returns 0, or -1 when
 * the rate is not usable (<= 0, not finite, faster than 1 per us).
 */
int dg_gcra_init(dg_gcra_t *g, double rate, uint64_t burst);

/*
 * One request at now (us, any epoch, the same for every call on a key).
 * *tat is the stored state (0 for a new key); it is updated only when the
 * request is admitted.  Returns res->allowed.
 */
int dg_gcra_check(const dg_gcra_t *g, int64_t now, int64_t *tat,
    dg_gcra_result_t *res);

/* the same check without updating *tat (a peek) */
int dg_gcra_peek(const dg_gcra_t *g, int64_t now, int64_t tat,
    dg_gcra_result_t *res);

/*
 * Divide a budget over n nodes (per-node fallback): rate / n, burst / n,
 * at least one request of burst.  n == 0 is taken as 1.
 */
int dg_gcra_init_share(dg_gcra_t *g, double rate, uint64_t burst,
    unsigned n);


/* quota window containing now (seconds since the epoch) */
int64_t dg_quota_window_start(int64_t now, unsigned period);

typedef struct {
    int                         allowed;
    uint64_t                    limit;
    uint64_t                    remaining;
    int64_t                     reset;      /* seconds to the window end */
} dg_quota_result_t;

/*
 * *count is the number of requests admitted in the window starting at
 * *window; a new window resets it.  Admits when count < quota and then
 * increments it.
 */
int dg_quota_check(uint64_t quota, unsigned period, int64_t now,
    int64_t *window, uint64_t *count, dg_quota_result_t *res);

/* per-node share of a quota: ceil(quota / n), at least 1 */
uint64_t dg_quota_share(uint64_t quota, unsigned n);


/*
 * The Redis script: rate and quota in one atomic step, server time.
 *
 *   KEYS[1]  rate key   (string: TAT in us), "" when no rate
 *   KEYS[2]  quota key prefix, "" when no quota; the window's key is
 *            KEYS[2] ":" START (a string: the count)
 *   ARGV[1]  T us        ARGV[2] tau us       ARGV[3] limit (burst + 1)
 *   ARGV[4]  quota       ARGV[5] period s     ARGV[6] UTC offset s
 *   ARGV[7]  admissions a node made alone (Redis unreachable), to add
 *   ARGV[8]  the window START they were made in (the node's clock)
 *
 * Returns { allowed (1/0), which (0 rate, 1 quota), limit, remaining,
 *           retry_after_ms, reset_ms, quota_count, window START,
 *           admissions added }.
 *
 * Record quotas (ARGV[9] "records"): KEYS[1] "", KEYS[2] the budget's
 * prefix, ARGV[4..8] as above (ARGV[7]: records a node granted alone),
 * ARGV[10] records wanted, ARGV[11] records given back (granted before
 * and not sent), ARGV[12] the window START they were granted in.  The
 * records given back leave the count, then at most the records wanted
 * and left in the quota are granted (added to the count).  Returns
 * { granted > 0 (1/0), 1, quota, left after it, ms to the window's end
 * (twice), count, window START, records added, granted }.
 *
 * Time is Redis's (TIME), for the rate and for the quota window alike,
 * so nodes with skewed clocks share one budget and one window.  A node's
 * own admissions are added when they belong to the window Redis is in
 * (an ended window's count no longer matters).  The key expires a day
 * after its window ends, so a late reader still sees it.  Numbers in Lua
 * are doubles: microseconds since the epoch (~2^51) are exact.
 */
#define DG_GCRA_LUA                                                          \
"local t = redis.call('TIME')\n"                                             \
"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                    \
"if ARGV[9] == 'records' then\n"                                             \
"  local quota = tonumber(ARGV[4])\n"                                        \
"  local period = tonumber(ARGV[5])\n"                                       \
"  if period <= 0 then period = 86400 end\n"                                 \
"  local loc = tonumber(t[1]) + tonumber(ARGV[6])\n"                         \
"  local qstart = loc - (loc % period) - tonumber(ARGV[6])\n"                \
"  local qend = qstart + period\n"                                           \
"  local qkey = KEYS[2] .. ':' .. string.format('%d', qstart)\n"            \
"  local add = tonumber(ARGV[7])\n"                                          \
"  local added = 0\n"                                                        \
"  if add > 0 and tonumber(ARGV[8]) == qstart then\n"                        \
"    redis.call('INCRBY', qkey, add)\n"                                      \
"    added = add\n"                                                          \
"  end\n"                                                                    \
"  local count = tonumber(redis.call('GET', qkey) or '0') or 0\n"            \
"  local back = tonumber(ARGV[11])\n"                                        \
"  if back > 0 and tonumber(ARGV[12]) == qstart then\n"                      \
"    if back > count then back = count end\n"                                \
"    if back > 0 then count = redis.call('DECRBY', qkey, back) end\n"        \
"  end\n"                                                                    \
"  local got = quota - count\n"                                              \
"  local want = tonumber(ARGV[10])\n"                                        \
"  if got > want then got = want end\n"                                      \
"  if got < 0 then got = 0 end\n"                                            \
"  if got > 0 then count = redis.call('INCRBY', qkey, got) end\n"            \
"  if count > 0 then redis.call('EXPIREAT', qkey, qend + 86400) end\n"       \
"  local left = quota - count\n"                                             \
"  if left < 0 then left = 0 end\n"                                          \
"  local ms = qend * 1000 - math.floor(now / 1000)\n"                        \
"  return {got > 0 and 1 or 0, 1, quota, left, ms, ms, count, qstart,\n"     \
"          added, got}\n"                                                    \
"end\n"                                                                      \
"local T = tonumber(ARGV[1])\n"                                              \
"local tau = tonumber(ARGV[2])\n"                                            \
"local limit = tonumber(ARGV[3])\n"                                          \
"local quota = tonumber(ARGV[4])\n"                                          \
"local period = tonumber(ARGV[5])\n"                                         \
"local off = tonumber(ARGV[6])\n"                                            \
"local add = tonumber(ARGV[7])\n"                                            \
"local addw = tonumber(ARGV[8])\n"                                           \
"if period <= 0 then period = 86400 end\n"                                   \
"local loc = tonumber(t[1]) + off\n"                                         \
"local qstart = loc - (loc % period) - off\n"                                \
"local qend = qstart + period\n"                                             \
"local qkey = KEYS[2] .. ':' .. string.format('%d', qstart)\n"              \
"local added = 0\n"                                                          \
"local count = 0\n"                                                          \
"if KEYS[2] ~= '' and quota > 0 and add > 0 and addw == qstart then\n"      \
"  count = redis.call('INCRBY', qkey, add)\n"                                \
"  redis.call('EXPIREAT', qkey, qend + 86400)\n"                             \
"  added = add\n"                                                            \
"end\n"                                                                      \
"local newtat = 0\n"                                                         \
"local remaining = 0\n"                                                      \
"local reset = 0\n"                                                          \
"if KEYS[1] ~= '' and T > 0 then\n"                                          \
"  local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"           \
"  if tat < now then tat = now end\n"                                        \
"  newtat = tat + T\n"                                                       \
"  local allow_at = newtat - tau - T\n"                                      \
"  if allow_at > now then\n"                                                 \
"    return {0, 0, limit, 0, math.ceil((allow_at - now) / 1000),\n"         \
"            math.ceil((tat - now) / 1000), count, qstart, added}\n"         \
"  end\n"                                                                    \
"  remaining = math.floor((now - allow_at) / T)\n"                           \
"  reset = math.ceil((newtat - now) / 1000)\n"                               \
"end\n"                                                                      \
"if KEYS[2] ~= '' and quota > 0 then\n"                                      \
"  count = tonumber(redis.call('GET', qkey) or '0') or 0\n"                  \
"  if count >= quota then\n"                                                 \
"    return {0, 1, quota, 0, qend * 1000 - math.floor(now / 1000),\n"       \
"            qend * 1000 - math.floor(now / 1000), count, qstart, added}\n" \
"  end\n"                                                                    \
"  count = redis.call('INCR', qkey)\n"                                       \
"  if count == 1 then redis.call('EXPIREAT', qkey, qend + 86400) end\n"      \
"end\n"                                                                      \
"if KEYS[1] ~= '' and T > 0 then\n"                                          \
"  redis.call('SET', KEYS[1], string.format('%d', newtat),\n"               \
"             'PX', math.ceil((newtat - now) / 1000) + 1000)\n"              \
"  return {1, 0, limit, remaining, 0, reset, count, qstart, added}\n"        \
"end\n"                                                                      \
"return {1, 1, quota, quota - count, 0,\n"                                   \
"        qend * 1000 - math.floor(now / 1000), count, qstart, added}\n"

#endif /* DG_GCRA_H */
