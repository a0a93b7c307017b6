/*
 * Unit tests: GCRA rate limit and quota windows (dg_gcra.c).
 */

#include <stdint.h>
#include <time.h>

#include "tap.h"
#include "dg_gcra.h"


static void
test_init(void)
{
    dg_gcra_t  g;

    ok(dg_gcra_init(&g, 100.0, 50) == 0, "100r/s burst=50 accepted");
    is_int(g.interval, 10000, "T = 10 ms");
    is_int(g.tolerance, 500000, "tau = 50 * T");
    is_int(g.limit, 51, "limit = burst + 1");

    ok(dg_gcra_init(&g, 0.0, 1) == -1, "rate 0 rejected");
    ok(dg_gcra_init(&g, -5.0, 1) == -1, "negative rate rejected");
    ok(dg_gcra_init(&g, 1e9, 1) == -1, "faster than 1/us rejected");
    ok(dg_gcra_init(&g, 1.0 / 60, 0) == 0, "1r/m accepted");
    is_int(g.interval, 60000000, "1r/m: T = 60 s");

    ok(dg_gcra_init_share(&g, 100.0, 50, 2) == 0, "share over 2 nodes");
    is_int(g.interval, 20000, "share: T doubles");
    is_int(g.limit, 26, "share: burst halves");

    ok(dg_gcra_init_share(&g, 100.0, 1, 4) == 0, "share over 4 nodes");
    is_int(g.limit, 1, "share: burst 1/4 rounds down to 0 (limit 1)");

    ok(dg_gcra_init_share(&g, 10.0, 5, 0) == 0, "share n=0 taken as 1");
    is_int(g.interval, 100000, "n=0: T unchanged");
}


static void
test_burst(void)
{
    int               i, admitted;
    int64_t           now, tat;
    dg_gcra_t         g;
    dg_gcra_result_t  res;

    dg_gcra_init(&g, 100.0, 50);
    now = 1700000000LL * DG_GCRA_USEC;
    tat = 0;

    admitted = 0;
    for (i = 0; i < 100; i++) {
        if (dg_gcra_check(&g, now, &tat, &res)) {
            admitted++;
        }
    }
    is_int(admitted, 51, "idle key admits burst + 1 at once");
    ok(!res.allowed, "the 52nd is limited");
    is_int(res.remaining, 0, "remaining 0 when limited");
    is_int(res.retry_after, 10000, "retry after one interval");
    is_int(res.reset, 510000, "reset: time until the bucket is full");

    ok(!dg_gcra_check(&g, now + 9999, &tat, &res), "still limited at T-1us");
    is_int(res.retry_after, 1, "retry after 1 us");
    ok(dg_gcra_check(&g, now + 10000, &tat, &res), "admitted after T");
    is_int(res.remaining, 0, "remaining 0 right after");
    ok(!dg_gcra_check(&g, now + 10000, &tat, &res), "and only one");

    /* long idle: the bucket refills, no more */
    ok(dg_gcra_check(&g, now + 3600 * DG_GCRA_USEC, &tat, &res),
       "admitted after an hour");
    is_int(res.remaining, 50, "remaining = burst after idle");
    is_int(res.reset, 10000, "reset = one interval after one request");

    dg_gcra_init(&g, 10.0, 0);
    tat = 0;
    ok(dg_gcra_check(&g, now, &tat, &res), "burst=0: first admitted");
    is_int(res.limit, 1, "burst=0: limit 1");
    is_int(res.remaining, 0, "burst=0: remaining 0");
    ok(!dg_gcra_check(&g, now + 50000, &tat, &res), "burst=0: 2nd at T/2 "
       "limited");
    is_int(res.retry_after, 50000, "burst=0: retry after T/2");
}


static void
test_peek(void)
{
    int64_t           now, tat;
    dg_gcra_t         g;
    dg_gcra_result_t  res;

    dg_gcra_init(&g, 1.0, 0);
    now = 1000 * DG_GCRA_USEC;
    tat = 0;

    ok(dg_gcra_peek(&g, now, tat, &res), "peek admits");
    is_int(tat, 0, "peek leaves the state alone");
    ok(dg_gcra_check(&g, now, &tat, &res), "check admits");
    ok(!dg_gcra_peek(&g, now, tat, &res), "peek now limited");
}


static void
test_steady_rate(void)
{
    int               admitted;
    int64_t           now, tat, end;
    dg_gcra_t         g;
    dg_gcra_result_t  res;

    /* offered 1000 r/s for 10 s against 100r/s burst=50 */
    dg_gcra_init(&g, 100.0, 50);
    now = 5 * DG_GCRA_USEC;
    end = now + 10 * DG_GCRA_USEC;
    tat = 0;
    admitted = 0;

    for ( /* void */ ; now < end; now += 1000) {
        admitted += dg_gcra_check(&g, now, &tat, &res);
    }

    is_int(admitted, 51 + 1000 - 1, "10 s at 100r/s: burst + rate * 10 s");

    /* two nodes sharing the budget through one TAT admit the same */
    dg_gcra_init(&g, 100.0, 50);
    now = 5 * DG_GCRA_USEC;
    tat = 0;
    admitted = 0;

    for ( /* void */ ; now < end; now += 500) {
        admitted += dg_gcra_check(&g, now, &tat, &res);
    }

    is_int(admitted, 1050, "double the offered load: same admitted");
}


static void
test_quota(void)
{
    int                i, admitted;
    int64_t            window, now;
    uint64_t           count;
    dg_quota_result_t  res;

    /* 2024-03-07 15:59:59 UTC = 23:59:59 UTC+8 */
    now = 1709827199;
    is_int(dg_quota_window_start(now, 86400), 1709827199 - 86399,
           "day window starts at 00:00 UTC+8 (16:00 UTC)");
    is_int(dg_quota_window_start(now + 1, 86400), 1709827200,
           "next second is a new day in UTC+8");
    is_int(dg_quota_window_start(3599, 3600), 0, "hour window");
    is_int(dg_quota_window_start(125, 60), 120, "minute window");
    is_int(dg_quota_window_start(1709827200, 0), 1709827200,
           "period 0 taken as a day");

    window = 0;
    count = 0;
    admitted = 0;
    for (i = 0; i < 10; i++) {
        admitted += dg_quota_check(5, 86400, now - 10, &window, &count,
                                   &res);
    }
    is_int(admitted, 5, "quota 5/day admits 5");
    ok(!res.allowed, "6th refused");
    is_int(res.remaining, 0, "remaining 0");
    is_int(res.reset, 11, "reset at midnight UTC+8");
    is_int(res.limit, 5, "limit is the quota");

    ok(dg_quota_check(5, 86400, now + 1, &window, &count, &res),
       "new day admits again");
    is_int(res.remaining, 4, "remaining 4 in the new day");
    is_int(count, 1, "count restarted");

    ok(dg_quota_check(0, 86400, now, &window, &count, &res),
       "quota 0: no quota");

    is_int(dg_quota_share(100000, 2), 50000, "quota share over 2");
    is_int(dg_quota_share(10, 3), 4, "quota share rounds up");
    is_int(dg_quota_share(1, 5), 1, "quota share at least 1");
    is_int(dg_quota_share(7, 0), 7, "quota share n=0");
}


int
main(void)
{
    (void) is_str;
    diag("GCRA and quota arithmetic");

    test_init();
    test_burst();
    test_peek();
    test_steady_rate();
    test_quota();

    return done_testing();
}
