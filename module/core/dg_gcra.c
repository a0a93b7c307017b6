/*
 * datagate core: rate-limit (GCRA) and quota arithmetic.  See dg_gcra.h;
 * the Lua script there does the same in Redis.
 */

#include <math.h>
#include <stdint.h>

#include "dg_gcra.h"


#define DG_QUOTA_MAX_PERIOD     (366 * 86400)


int
dg_gcra_init(dg_gcra_t *g, double rate, uint64_t burst)
{
    double  t;

    g->interval = 0;
    g->tolerance = 0;
    g->limit = 0;

    if (!(rate > 0.0) || !isfinite(rate) || rate > (double) DG_GCRA_USEC) {
        return -1;
    }

    t = (double) DG_GCRA_USEC / rate;

    if (t > 1e12) {             /* slower than one per ~11 days */
        return -1;
    }

    if (burst > 1000000000ULL) {
        burst = 1000000000ULL;
    }

    g->interval = (int64_t) llround(t);
    if (g->interval < 1) {
        g->interval = 1;
    }

    g->tolerance = (int64_t) burst * g->interval;
    g->limit = burst + 1;

    return 0;
}


int
dg_gcra_init_share(dg_gcra_t *g, double rate, uint64_t burst, unsigned n)
{
    if (n == 0) {
        n = 1;
    }

    return dg_gcra_init(g, rate / n, burst / n);
}


static int
dg_gcra_eval(const dg_gcra_t *g, int64_t now, int64_t *tat, int commit,
    dg_gcra_result_t *res)
{
    int64_t  t, newtat, allow_at;

    res->limit = g->limit;
    res->retry_after = 0;

    if (g->interval <= 0) {
        res->allowed = 1;
        res->remaining = 0;
        res->reset = 0;
        return 1;
    }

    t = *tat > now ? *tat : now;
    newtat = t + g->interval;
    allow_at = newtat - g->tolerance - g->interval;

    if (allow_at > now) {
        res->allowed = 0;
        res->remaining = 0;
        res->retry_after = allow_at - now;
        res->reset = t - now;
        return 0;
    }

    res->allowed = 1;
    res->remaining = (uint64_t) ((now - allow_at) / g->interval);
    res->reset = newtat - now;

    if (commit) {
        *tat = newtat;
    }

    return 1;
}


int
dg_gcra_check(const dg_gcra_t *g, int64_t now, int64_t *tat,
    dg_gcra_result_t *res)
{
    return dg_gcra_eval(g, now, tat, 1, res);
}


int
dg_gcra_peek(const dg_gcra_t *g, int64_t now, int64_t tat,
    dg_gcra_result_t *res)
{
    return dg_gcra_eval(g, now, &tat, 0, res);
}


int64_t
dg_quota_window_start(int64_t now, unsigned period)
{
    int64_t  local, start;

    if (period == 0 || period > DG_QUOTA_MAX_PERIOD) {
        period = 86400;
    }

    local = now + DG_UTC_OFFSET;
    start = local - (((local % period) + period) % period);

    return start - DG_UTC_OFFSET;
}


int
dg_quota_check(uint64_t quota, unsigned period, int64_t now,
    int64_t *window, uint64_t *count, dg_quota_result_t *res)
{
    int64_t  start;

    if (period == 0 || period > DG_QUOTA_MAX_PERIOD) {
        period = 86400;
    }

    start = dg_quota_window_start(now, period);

    if (*window != start) {
        *window = start;
        *count = 0;
    }

    res->limit = quota;
    res->reset = start + period - now;

    if (quota == 0) {
        res->allowed = 1;
        res->remaining = 0;
        return 1;
    }

    if (*count >= quota) {
        res->allowed = 0;
        res->remaining = 0;
        return 0;
    }

    (*count)++;

    res->allowed = 1;
    res->remaining = quota - *count;

    return 1;
}


uint64_t
dg_quota_share(uint64_t quota, unsigned n)
{
    uint64_t  q;

    if (n <= 1) {
        return quota;
    }

    q = quota / n + (quota % n != 0);

    return q ? q : 1;
}
