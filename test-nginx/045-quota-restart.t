# Quota counters survive a reload and a restart without Redis:
# datagate_state PATH writes the quota windows at master exit (and every
# interval= from worker 0) and seeds a fresh zone from it at start.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use DGTest qw(:DEFAULT);
use DGRedis;

my $quota = "    quota: 5/day\n";

sub node {
    my (%o) = @_;
    my $n = DGTest::Nginx->new(
        policy      => policy(limits => $quota),
        workers     => 2,
        http_config => $o{http_config}
                       // "    datagate_state \$TEST_NGINX_TESTDIR/quota.state;\n",
        config      => <<'C');
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
C
    $n->start;
    return $n;
}

sub fast_stop {
    my ($n) = @_;
    my $pid = $n->{pid};
    my ($rc, $out) = $n->run_nginx('-s', 'stop');
    is($rc, 0, 'nginx -s stop') or diag($out);
    my $gone = poll_until(5, sub { !DGTest::proc_alive($pid) });
    ok(defined $gone, 'the master is gone');
    $n->stop;
}

sub state_of {
    my ($n) = @_;
    return DGTest::slurp($n->dir . '/quota.state');
}

# 1. 3 of 5, graceful stop (QUIT), start: 2 more, then 429

my $n = node();
is(get($n, 'assistance')->status, 200, "request $_ of 5") for 1 .. 3;

$n->stop;
like(state_of($n), qr/^DGQ1\n\d+ 86400 3 civil-affairs\.assistance\|population\.person\n\z/,
     'QUIT: the state file holds the window and its count');

$n->start;
like($n->error_log, qr/quota state ".*quota\.state": 1 counters loaded/,
     'start: loaded');
is(get($n, 'assistance')->status, 200, 'after the restart: request 4');
is(get($n, 'assistance')->status, 200, 'request 5');
{
    my $r = get($n, 'assistance');
    is($r->status, 429, 'request 6: refused');
    is(code_of($r), 'rate_limited', 'rate_limited');
    like($r->header('Retry-After') // '', qr/^\d+$/, 'Retry-After');
    is($r->header('RateLimit-Limit'), 5, 'RateLimit-Limit: 5');
    is($r->header('RateLimit-Remaining'), 0, 'RateLimit-Remaining: 0');
}

# 2. nginx -s stop (TERM) keeps it too, also with another policy

fast_stop($n);
like(state_of($n), qr/^\d+ 86400 5 civil-affairs/m, 'TERM: written');
$n->write_policy(policy(limits => $quota) . "# another version\n");
$n->start;
is(get($n, 'assistance')->status, 429,
   'after nginx -s stop and start with a new policy version: still 429');

# 3. a reload keeps the zone

ok($n->reload, 'reload');
is(get($n, 'assistance')->status, 429, 'after a reload: still 429');
$n->stop;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit');
unlike($n->error_log, qr/cannot write the quota state/, 'no write error');

# 4. a passed window, malformed lines, another magic: ignored

{
    my $m = DGTest::Nginx->new(policy => policy(limits => $quota));
    my $file = $m->dir . '/quota.state';
    my $now = time;
    DGTest::spew($file, "DGQ1\n"
        . int($now - 3 * 86400) . " 86400 5 civil-affairs.assistance|population.person\n"
        . "garbage line\n"
        . "1 2 3\n");
    $m = node_at($m);
    is(get($m, 'assistance')->status, 200, 'a passed window counts nothing');
    like($m->error_log, qr/0 counters loaded, 1 of past windows, 2 malformed/,
         'says what it skipped');
    $m->stop;

    DGTest::spew($file, "something else\n");
    $m->start;
    is(get($m, 'assistance')->status, 200, 'not a state file: ignored');
    like($m->error_log, qr/is not a datagate quota state file/, 'said so');
    $m->stop;
    unlike($m->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit');
}

sub node_at {
    my ($m) = @_;
    $m->{workers} = 1;
    $m->{http_config} = "    datagate_state \$TEST_NGINX_TESTDIR/quota.state;\n";
    $m->{config} = <<'C';
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
C
    $m->start;
    return $m;
}

# 5. interval=: worker 0 writes it while running

{
    my $p = node(http_config => "    datagate_state "
                 . "\$TEST_NGINX_TESTDIR/quota.state interval=1s;\n");
    get($p, 'assistance') for 1 .. 2;
    ok(defined poll_until(3, sub {
           state_of($p) =~ /^\d+ 86400 2 civil-affairs/m }),
       'written within the interval while running');
    $p->stop;
}

# 6. without datagate_state: a restart starts a fresh window (documented)

{
    my $q = node(http_config => '');
    get($q, 'assistance') for 1 .. 5;
    is(get($q, 'assistance')->status, 429, 'no datagate_state: 429');
    $q->stop;
    $q->start;
    is(get($q, 'assistance')->status, 200,
       'no datagate_state: a restart forgets the count');
    $q->stop;
}

# 7. configuration errors

{
    my ($ok, $out) = nginx_t(
        policy      => policy(),
        http_config => "    datagate_state /tmp/x interval=10ms;\n");
    ok(!$ok, 'interval below 1s: nginx -t fails');
    like($out, qr/"interval=" must be 0/, 'says why');
}

done_testing;
