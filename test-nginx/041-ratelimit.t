# Rate limits and quotas per grant: the embedded default on shared memory,
# one cluster budget on Redis shared by two gateways, the per-node
# fallback when Redis is down; 429 rate_limited with Retry-After and
# RateLimit-* headers; quota counters survive reload (zone) and restart
# (Redis).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use DGTest;
use DGRedis;

# a rate of one request every $secs seconds or more (scaled for a slow
# nginx: valgrind, DG_TEST_SLOW), as "Nr/m"; the interval it gives
sub rate_every {
    my ($secs) = @_;
    my $per_min = int(60 / DGTest::secs($secs)) || 1;
    return ("${per_min}r/m", 60 / $per_min);
}

# $count calls in a row: {status => how many}, the last 429
sub burst_count {
    my ($n, $count) = @_;
    my (%st, $last429);
    for (1 .. $count) {
        my $r = get($n, 'assistance');
        $st{ $r->status }++;
        $last429 = $r if $r->status == 429;
    }
    return (\%st, $last429);
}

sub limited_ok {
    my ($r, $what, %want) = @_;
    ok($r, "$what: a 429 came") or return;
    is(code_of($r), 'rate_limited', "$what: rate_limited");
    like($r->header('Content-Type') // '', qr{application/json},
         "$what: JSON");
    like($r->header('Retry-After') // '', qr/^[1-9]\d*$/,
         "$what: Retry-After");
    is($r->header('RateLimit-Limit'), $want{limit},
       "$what: RateLimit-Limit $want{limit}");
    is($r->header('RateLimit-Remaining'), 0, "$what: RateLimit-Remaining 0");
    like($r->header('RateLimit-Reset') // '', qr/^[1-9]\d*$/,
         "$what: RateLimit-Reset");
    like($r->json->{error}{message}, $want{message}, "$what: message")
        if $want{message};
}

# --- embedded default (no Redis) -------------------------------------------

{
    # a token every 2 s: the 8 calls of the burst and the two after the
    # pause each fit well within one interval on a busy machine
    my ($rate, $every) = rate_every(2);
    my $n = gateway(limits => "    rate: $rate burst=3\n", workers => 2);
    my ($st, $r) = burst_count($n, 8);
    is($st->{200}, 4, 'embedded: burst + 1 admitted at once (both workers '
       . 'share the zone)');
    is($st->{429}, 4, 'embedded: the rest limited');
    limited_ok($r, 'embedded rate', limit => 4,
               message => qr/rate/i);
    is(get($n, 'market')->status, 200, 'other callers are not limited');

    sleep $every;
    is(get($n, 'assistance')->status, 200, 'one more after 1/rate');
    is(get($n, 'assistance')->status, 429, 'and only one');
    $n->stop;
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'clean log');
}

{
    my $n = gateway(limits => "    quota: 3/day\n");
    my ($st, $r) = burst_count($n, 5);
    is($st->{200}, 3, 'embedded quota: 3/day admits 3');
    limited_ok($r, 'embedded quota', limit => 3, message => qr/quota/i);
    cmp_ok($r->header('RateLimit-Reset'), '<=', 86400,
           'quota reset within a day');

    ok($n->reload, 'reload');
    is(get($n, 'assistance')->status, 429,
       'quota counter survives a reload (the zone is kept)');
    $n->stop;
}

# --- one cluster budget on Redis ---------------------------------------------

my $redis = start_redis();
my $rp = $redis->port;

{
    my @gw = map { gateway(redis => $rp, limits => "    quota: 4/day\n") }
             1 .. 2;
    my $ok = 0;
    for my $i (0 .. 5) {
        $ok++ if get($gw[$i % 2], 'assistance')->status == 200;
    }
    is($ok, 4, 'Redis: two nodes share one quota of 4');
    my $r = get($gw[1], 'assistance');
    limited_ok($r, 'cluster quota', limit => 4, message => qr/quota/i);

    my $keys = $redis->cmd('KEYS', 'datagate:quota:*');
    is(scalar @$keys, 1, 'one quota key in Redis');
    like($keys->[0], qr/^datagate:quota:civil-affairs\.assistance\|population\.person:\d+$/,
         'quota key as docs/redis.md says');
    my $ttl = $redis->cmd('TTL', $keys->[0]);
    cmp_ok($ttl, '>', 86400, 'quota key expires after its day (+1 day)');

    # restart: counters live in Redis
    $gw[0]->stop;
    $gw[0]->start;
    is(get($gw[0], 'assistance')->status, 429,
       'quota survives an nginx restart (Redis)');

    # the script cache flushed: EVALSHA -> NOSCRIPT -> EVAL
    $redis->cmd('SCRIPT', 'FLUSH');
    $redis->cmd('DEL', $keys->[0]);
    is(get($gw[1], 'assistance')->status, 200,
       'after SCRIPT FLUSH: EVAL loads the script again');

    $_->stop for @gw;
    for (@gw) {
        unlike($_->error_log, qr/\[(alert|crit|emerg)\]/, 'clean log');
    }
}

# two nodes together admit the configured rate (within a few percent):
# 2 r/s for 8 s, so that a busy machine still offers more than twice the
# rate and a pause of a call or two (under burst / rate) loses no token
{
    $redis->cmd('FLUSHALL');
    my ($rate, $every) = rate_every(0.5);
    my $window = DGTest::secs(8);
    my @gw = map { gateway(redis => $rp, limits => "    rate: $rate burst=5\n") }
             1 .. 2;
    get($_, 'market') for @gw;      # connections ready

    my $t0 = time;
    my ($ok, $sent) = (0, 0);
    while (time - $t0 < $window) {
        $ok++ if get($gw[$sent % 2], 'assistance')->status == 200;
        $sent++;
    }
    my $dt = time - $t0;
    my $want = $dt / $every + 6;
    diag(sprintf "cluster rate: %d of %d admitted in %.2f s (want %.1f)",
         $ok, $sent, $dt, $want);
    cmp_ok($sent, '>', 2 * $want, 'offered more than twice the rate')
        or diag('the machine is too slow for this check');
    cmp_ok(abs($ok - $want) / $want, '<', 0.1,
           'two nodes admit the cluster rate within 10%');

    # Redis down: each node falls back to rate / nodes (nodes=1 here, so
    # per node the full rate: the budget doubles, documented)
    $_->stop for @gw;
}

# per-node fallback: the budget divided by nodes=
{
    $redis->cmd('FLUSHALL');
    # a token every 2 s (every 4 s per node): each burst of 10 calls fits
    my ($rate) = rate_every(2);
    my $n = gateway(redis => $rp,
                    redis_opts => sprintf('nodes=2 timeout=%dms stale=%ds',
                                          DGTest::secs(200),
                                          DGTest::secs(30)),
                    limits => "    rate: $rate burst=3\n"
                              . "    quota: 100/day\n");
    my ($st) = burst_count($n, 10);
    is($st->{200}, 4, 'Redis up: cluster burst (3 + 1)');

    $redis->stop;
    sleep DGTest::secs(0.3);
    ($st, my $r) = burst_count($n, 10);
    is($st->{200}, 2, 'Redis down: per-node burst = (3 / 2) + 1');
    limited_ok($r, 'per-node fallback', limit => 2);
    $n->stop;
    like($n->error_log, qr/command connection down/, 'log: down');
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'clean log');
}

done_testing;
