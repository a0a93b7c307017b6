# Volume against a replayed baseline: two weeks of a clerk's traffic
# (scripts/traffic-replay) replayed with `datagate abuse replay --state`
# give the baseline of every hour of the week; a gateway started with
# that datagate_state file holds the consumer to max(floor, factor x the
# baseline of this hour of the week), and alerts at the first call above
# it, once; a consumer it has no baseline of is held to its quota's
# hourly share.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX qw(floor);
use DGTest qw(:DEFAULT $CLI $TOP);

my $policy = <<'Y';
purposes:
  social-assistance: {name: assistance}
consumers:
  - id: civil-affairs.assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
  - id: hrss.portal
    cert: {san: "DNS:hrss.gx.gov.cn"}
    clearance: 2
datasets:
  - id: population.person
    share: conditional
    level: 1
    quota: 240/day
    abuse: {volume: {factor: 5, floor: 20/h}}
grants:
  - consumer: civil-affairs.assistance
    dataset: population.person
    purposes: [social-assistance]
  - consumer: hrss.portal
    dataset: population.person
    purposes: [social-assistance]
Y

# an hour that will not end during the test
{
    my $left = 3600 - (time + 8 * 3600) % 3600;
    if ($left < 300) {
        diag("waiting $left s for the next hour to begin");
        sleep $left + 2;
    }
}

my $n = DGTest::Nginx->new(
    policy => $policy, workers => 2,
    http_config => 'datagate_state $TEST_NGINX_TESTDIR/dg.state;',
    upstream => <<'U',
        location /rec/ {
            default_type application/json;
            return 200 '{"ok":1}';
        }
U
    config => <<'C');
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/rec/;
        }
        location = /status {
            datagate off;
            datagate_status;
        }
C

# two weeks of one desk, replayed into a state file; moved back in time so
# that its busiest hour of the week is this one

my $dir = $n->dir . '/replay';
my $now = time;
my $h = floor(($now + 8 * 3600) / 3600);
my $slot = ($h + 72) % 168;

my ($rc, $out) = run_cmd("$TOP/scripts/traffic-replay", '--out', $dir,
                         '--seed', 7, '--weeks', 2, '--end', $now,
                         '--desks', 1, '--batches', 0, '--no-scrapers');
is($rc, 0, 'scripts/traffic-replay') or diag($out);
DGTest::spew($n->policy_file, $policy);

sub replay {
    my ($shift) = @_;
    my @out;
    for my $l (split /\n/, DGTest::slurp("$dir/trace")) {
        next if $l =~ /^#/;
        my @f = split / /, $l;
        next unless $f[1] eq 'desk-01';
        $f[0] -= $shift * 3600;
        $f[1] = 'civil-affairs.assistance';
        push @out, join(' ', @f);
    }
    DGTest::spew("$dir/trace.$shift", join("\n", @out) . "\n");
    my ($rc, $out) = run_cmd($CLI, 'abuse', 'replay', '--policy',
                             $n->policy_file, '--state',
                             $n->dir . '/dg.state', "$dir/trace.$shift");
    is($rc, 0, "datagate abuse replay --state (moved $shift h)")
        or diag($out);
    my ($line) = DGTest::slurp($n->dir . '/dg.state')
        =~ /^abuse civil-affairs\.assistance\|population\.person (.*)$/m;
    my (undef, undef, undef, undef, $bc, undef, $seen) = split / /,
                                                            $line // '';
    return ([split /,/, $bc // ''], [split /,/, $seen // '']);
}

my ($bc, $seen) = replay(0);
is(scalar @$bc, 168, 'a baseline for each hour of the week');
my $best = 0;
$bc->[$_] > $bc->[$best] and $best = $_ for 0 .. 167;
($bc, $seen) = replay(($best - $slot) % 168);
ok($seen->[$slot] >= 1, "this hour of the week was seen ($seen->[$slot] "
   . 'weeks)');
my $limit = $bc->[$slot] * 5 > 20 ? $bc->[$slot] * 5 : 20;
ok($limit > 50, sprintf('hour of the week %d: baseline %s, limit %.3f: '
                        . 'above what the quota would give (50)', $slot,
                        $bc->[$slot], $limit));

$n->start;
like($n->error_log, qr/1 abuse baselines and suspensions loaded/,
     'the gateway starts from the replayed baselines');

sub call {
    my ($who) = @_;
    return $n->request(GET => '/person/1', cert => $who,
                       headers => ['Data-Purpose: social-assistance']);
}

my $below = (floor($limit) == $limit ? $limit : floor($limit)) - 1;
for my $i (1 .. $below) {
    my $r = call('assistance');
    is($r->status, 200, "call $i") if $i == 1 || $i == $below;
}
unlike($n->error_log, qr/anomaly volume/, "$below calls: no alert");

my $fired_at;
for my $i ($below + 1 .. $below + 3) {
    call('assistance');
    if (!$fired_at && $n->error_log =~ /anomaly volume/) {
        $fired_at = $i;
    }
}
ok($fired_at && $fired_at <= floor($limit) + 1,
   "the alert comes with call " . ($fired_at // 'none')
   . sprintf(' (limit %.3f)', $limit));
like($n->error_log, qr/\[warn\].*anomaly volume: consumer "civil-affairs\.assistance" on dataset "population\.person": \d+ calls this hour \(limit \d+\), counted on this node; alert only/,
     'the [warn] line');
call('assistance') for 1 .. 3;
is(() = $n->error_log =~ /anomaly volume/g, 1, 'once in the hour');

# a consumer without a baseline: the quota's hourly share (10/h) x 5, or
# the floor (20/h): 50
for my $i (1 .. 50) {
    call('hrss');
}
unlike($n->error_log, qr/anomaly volume: consumer "hrss\.portal"/,
       'a new consumer: 50 calls are within 5 x its quota\'s share');
call('hrss');
like($n->error_log,
     qr/anomaly volume: consumer "hrss\.portal" on dataset "population\.person": 51 calls this hour \(limit 50\)/,
     'the 51st is not');

like($n->request(GET => '/status?format=prometheus', cert => 'hrss')->body,
     qr/^datagate_anomalies_total\{consumer="civil-affairs\.assistance",dataset="population\.person",kind="volume"\} 1$/m,
     'counted');

$n->stop;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit');

done_testing();
