# Redis faults: killed, paused (SIGSTOP), restarted, answering garbage.
# Requests never wait past the per-operation timeout, answer from the
# local cache while it is within stale=, then fail closed with 503
# policy_unavailable and Retry-After; the error log says so once per state
# change; everything resumes by itself when Redis is back.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use DGTest;
use DGRedis;

# all times scaled for a slow nginx (valgrind, DG_TEST_SLOW: DGTest::secs;
# poll_until scales its own)
my $STALE = 4;
my $stale = DGTest::secs($STALE);
my $opts = sprintf('timeout=%dms connect_timeout=%dms stale=%ds',
                   DGTest::secs(200), DGTest::secs(300), $stale);
# the longest a call may take without having waited on Redis: timeout +
# TLS handshake + slack on a busy machine; below $hold, the time Redis is
# kept busy (DEBUG SLEEP), so that a call waiting for it would show
my $slow = DGTest::secs(1.5);
my $hold = DGTest::secs(3);

sub fail_closed_ok {
    my ($r, $what) = @_;
    is($r->status, 503, "$what: 503");
    is(code_of($r), 'policy_unavailable', "$what: policy_unavailable");
    like($r->header('Retry-After') // '', qr/^\d+$/, "$what: Retry-After");
}

# --- killed, then restarted on the same port ------------------------------

{
    my $redis = start_redis();
    my $rp = $redis->port;
    my $n = gateway(redis => $rp, redis_opts => $opts);

    is(get($n, 'assistance')->status, 200, 'warm: allowed');
    my $t_warm = time;

    my $off = length $n->error_log;
    $redis->stop;

    my ($r, $dt) = get($n, 'assistance');
    is($r->status, 200, 'killed: cached state within stale= still serves');
    cmp_ok($dt, '<', $slow, 'killed: and does not wait');

    ($r, $dt) = get($n, 'hrss');
    fail_closed_ok($r, 'killed, nothing cached');
    cmp_ok($dt, '<', $slow, 'killed, nothing cached: answered at once');

    my $worst = 0;
    my $t = poll_until($STALE + 3, sub {
        my ($r, $dt) = get($n, 'assistance');
        $worst = $dt if $dt > $worst;
        return $r->status == 503 && code_of($r) eq 'policy_unavailable';
    });
    ok(defined $t, 'killed: fails closed once the cache is stale');
    # the warm call's own time may count towards stale=
    cmp_ok(time - $t_warm, '>=', $stale - DGTest::secs(0.5),
           "but not before stale= (${stale}s)")
        if defined $t;
    cmp_ok($worst, '<', $slow, 'no request waited on the dead Redis');

    # many requests, one log line
    get($n, 'assistance') for 1 .. 10;
    my $log = slurp_new($n, $off);
    is(count_matches($log, qr/command connection down/), 1,
       'log: "down" once, not per request or reconnect attempt');

    # restarted without its data (no AOF here): the controls it held are
    # gone, so its empty state is not trusted until an operator confirms
    $redis = redis_on($rp);
    $t = poll_until(6, sub { $n->error_log =~ /command connection is back/ });
    ok(defined $t, 'Redis restarted: the gateway reconnects by itself');
    sleep DGTest::secs(0.3);
    fail_closed_ok(scalar get($n, 'hrss'), 'restarted empty, not confirmed');
    like($n->error_log, qr/has lost datagate's state/,
         'log: Redis lost its state');
    is(count_matches($n->error_log, qr/has lost datagate's state/), 1,
       'log: said once');

    my ($rc, $out) = cli($rp, 'redis', 'confirm');
    is($rc, 0, 'datagate redis confirm') or diag($out);
    $t = poll_until(6, sub { get($n, 'assistance')->status == 200 });
    ok(defined $t, 'confirmed: resumes, no reload') or diag($n->error_log);
    is(get($n, 'hrss')->status, 403, 'and answers uncached callers again');
    is(code_of(get($n, 'hrss')), 'purpose_not_granted', '(the policy one)');
    like($n->error_log, qr/\[error\].*command connection is back/,
         'log: back, at the level of "down"');
    unlike($n->error_log, qr/\[(warn|error)\].*denied policy_unavailable/,
           'refusals are counted, not logged one by one at [warn]');

    $n->stop;
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'clean log');
    $redis->stop;
}

# --- paused (SIGSTOP), then continued ------------------------------------

{
    my $redis = start_redis();
    my $rp = $redis->port;
    my $n = gateway(redis => $rp, redis_opts => $opts, workers => 2);

    # both workers warm
    is(get($n, 'assistance')->status, 200, 'warm') for 1 .. 4;

    kill 'STOP', $redis->{pid};
    sleep 0.6;      # past the cache TTL: the next call refreshes

    my $worst = 0;
    my (%seen, $r, $dt);
    for my $who (qw(assistance assistance hrss hrss assistance market)) {
        ($r, $dt) = get($n, $who);
        $worst = $dt if $dt > $worst;
        $seen{$who}{ $r->status }++;
    }
    cmp_ok($worst, '<', $slow,
           'paused: no request waits past the timeout');
    ok(!$seen{assistance}{503}, 'paused: cached caller served')
        or diag(explain \%seen);
    is_deeply([keys %{ $seen{hrss} }], [503],
              'paused: uncached caller fails closed');
    fail_closed_ok($r, 'paused, nothing cached (market)');

    kill 'CONT', $redis->{pid};
    my $t = poll_until(6, sub { get($n, 'hrss')->status == 403 });
    ok(defined $t, 'continued: resumes by itself');

    # slow, not stopped: DEBUG SLEEP on another connection; the cached
    # entry is past its TTL (the next request waits for a refresh, at most
    # the timeout, then the breaker opens) but within stale=
    is(get($n, 'assistance')->status, 200, 'warm again') for 1 .. 4;
    sleep 0.6;
    my $pid = fork // die;
    if ($pid == 0) {
        # its own connection; _exit: no DESTROY of the parent's objects
        delete $redis->{sock};
        eval { $redis->cmd('DEBUG', 'SLEEP', $hold) };
        POSIX::_exit(0);
    }
    sleep 0.3;      # DEBUG SLEEP has begun
    $worst = 0;
    my $served = 0;
    for (1 .. 6) {
        ($r, $dt) = get($n, 'assistance');
        $worst = $dt if $dt > $worst;
        $served++ if $r->status == 200;
    }
    cmp_ok($worst, '<', $slow, 'DEBUG SLEEP: nobody waits past the timeout');
    is($served, 6, 'DEBUG SLEEP: cached caller served throughout');
    waitpid $pid, 0;

    $n->stop;
    my $log = $n->error_log;
    unlike($log, qr/\[(alert|crit|emerg)\]/, 'clean log');
    like($log, qr/command timed out|connect timed out/,
         'log: says why it went down');
    $redis->stop;
}

# --- answering garbage ------------------------------------------------------

for my $g (["HTTP/1.1 400 Bad Request\r\n\r\n", 'not RESP'],
           ["+OK\r\n+OK\r\n:1\r\n:2\r\n*1\r\n\$1\r\nx\r\n", 'extra replies'],
           ["*1\r\n\$7\r\nmessage\r\n", 'a short pub/sub message'],
           ["\$999999999999\r\n", 'a huge bulk length'])
{
    my ($bytes, $what) = @$g;
    my ($port, $pid) = fake_redis($bytes);
    my $n = gateway(redis => $port, redis_opts => $opts);

    my ($r, $dt) = get($n, 'assistance');
    fail_closed_ok($r, "garbage ($what)");
    cmp_ok($dt, '<', $slow, "garbage ($what): answered at once");
    sleep DGTest::secs(0.5);        # a few reconnects
    ($r) = get($n, 'assistance');
    is($r->status, 503, "garbage ($what): still failing closed");

    $n->stop;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    my $log = $n->error_log;
    unlike($log, qr/\[(alert|crit|emerg)\]|exited on signal/,
           "garbage ($what): no worker crashed");
    cmp_ok(count_matches($log, qr/command connection down/), '<=', 1,
           "garbage ($what): logged once");
}

# --- the statistics count what was decided without Redis ----------------

# A request answered from a cached state older than its freshness while
# Redis is down is decided on stale state: degraded_total counts it, once.
{
    my $redis = start_redis();
    my $n = gateway(redis => $redis->port,
                    redis_opts => ($ENV{DG_TEST_VALGRIND}
                                   ? 'timeout=3s connect_timeout=3s '
                                   : 'timeout=200ms connect_timeout=300ms ')
                                  . 'stale=60s');
    is(get($n, 'assistance')->status, 200, 'degraded count: warm');
    $redis->stop;
    my $t = poll_until(10, sub { !status_of($n)->{redis}{up} });
    ok(defined $t, 'degraded count: the gateway sees Redis down');
    sleep 0.5;      # past the cached state's freshness (250 ms)
    my $before = status_of($n)->{redis}{degraded_total};
    is(get($n, 'assistance')->status, 200,
       'degraded count: the stale state within stale= serves');
    is(status_of($n)->{redis}{degraded_total}, $before + 1,
       'degraded count: that request is counted, once');
    my $r = get($n, 'hrss');
    is($r->status, 503, 'degraded count: nothing cached fails closed');
    is(status_of($n)->{redis}{degraded_total}, $before + 2,
       'degraded count: so is that one');
    $n->stop;
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'clean log');
}

# --- the embedded default needs no Redis at all ---------------------------

{
    my $n = gateway();
    my ($r, $dt) = get($n, 'assistance');
    is($r->status, 200, 'no datagate_redis: served');
    $n->stop;
    unlike($n->error_log, qr/redis/i, 'no datagate_redis: no Redis talk');
}

done_testing;
