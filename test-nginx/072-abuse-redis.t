# Abuse detection cluster-wide: two gateways on one Redis count one
# consumer's identifiers together (neither node alone would see the
# enumeration or the run); action suspend writes the incident control
# with its expiry, every node refuses, "datagate unsuspend" lifts it;
# each anomaly is published on datagate:anomalies, where a SIEM
# subscribed with redis-cli receives it; with Redis down a node counts
# on its own.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use POSIX ();
use DGTest qw(:DEFAULT $CLI);
use DGRedis;

my $policy = <<'Y';
levels: {1: public, 2: internal, 3: sensitive, 4: core}
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
  - id: records.enum
    share: unconditional
    level: 1
    abuse: {id_param: id, distinct: 30/10m, action: suspend,
            suspend_for: 1h}
  - id: records.seq
    share: unconditional
    level: 1
    abuse: {sequential: 10}
  - id: records.open
    share: unconditional
    level: 1
Y

my $config = <<'C';
        location /enum {
            datagate_dataset records.enum;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/rec/;
        }
        location /seq/ {
            datagate_dataset records.seq;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/rec/;
        }
        location /open/ {
            datagate_dataset records.open;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/rec/;
        }
        location = /status {
            datagate off;
            datagate_status;
        }
C

my $upstream = <<'U';
        location /rec/ {
            default_type application/json;
            return 200 '{"ok":1}';
        }
U

my $redis = start_redis();
my $secret = shared_secret();

sub node {
    my $n = DGTest::Nginx->new(
        policy => $policy, config => $config, upstream => $upstream,
        workers => 2,
        http_config => "datagate_redis 127.0.0.1:" . $redis->port
                       . " stale=60s timeout=" . DGTest::secs(1) . "s;\n"
                       . "    datagate_secret $secret;\n"
                       . '    datagate_audit_log $TEST_NGINX_TESTDIR/audit.log;');
    $n->start;
    return $n;
}

sub call {
    my ($n, $who, $uri) = @_;
    return $n->request(GET => $uri, cert => $who,
                       headers => ['Data-Purpose: social-assistance']);
}

# a SIEM: redis-cli SUBSCRIBEd to the channel, its output in a file
my $siem = DGTest::base_dir() . '/siem.out';
my $siem_pid = fork // die "fork: $!";
if ($siem_pid == 0) {
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', $siem;
    open STDERR, '>&', \*STDOUT;
    { exec 'redis-cli', '-p', $redis->port, 'SUBSCRIBE', 'datagate:anomalies' };
    POSIX::_exit(127);
}
END { kill 'TERM', $siem_pid if $siem_pid; }

ok(poll_until(5, sub { -s $siem && DGTest::slurp($siem) =~ /subscribe/ }),
   'the SIEM is subscribed');

sub siem_messages {
    return map { DGTest::json_decode($_) }
           grep { /^\{/ } split /\n/, (-e $siem ? DGTest::slurp($siem) : '');
}

my $a = node();
my $b = node();

# --- an enumeration spread over two nodes ------------------------------------

my ($sent, $refused) = (0, 0);
while ($sent < 60 && !$refused) {
    $sent++;
    my $n = $sent % 2 ? $a : $b;
    my $r = call($n, 'assistance', '/enum?id=' . (300000 + 13 * $sent));
    $refused = $sent if $r->status == 403;
}
ok($refused >= 30 && $refused <= 45,
   "31 distinct ids, half on each node: suspended at request $refused");
is(code_of(call($_, 'assistance', '/open/1')), 'consumer_suspended',
   'every node refuses the consumer, on every dataset') for $a, $b;
is(call($a, 'hrss', '/open/1')->status, 200, 'another consumer is served');

{
    my $key = 'datagate:suspended:consumer:civil-affairs.assistance';
    my $note = $redis->cmd('GET', $key) // '';
    like($note, qr/^suspend at=\S+ by=datagate-abuse reason=enumeration on records\.enum for=1h node=/,
         'the incident control in Redis, with a note');
    my $ttl = $redis->cmd('TTL', $key);
    ok($ttl > 3000 && $ttl <= 3600, "expiring with suspend_for: TTL $ttl");
    my ($rc, $out) = cli($redis->port, 'incident', 'list');
    like($out, qr/^suspended:consumer:civil-affairs\.assistance  \(expires in \d+s\)$/m,
         "datagate incident list shows it, with its expiry");
}

ok(poll_until(5, sub {
       grep { $_->{kind} eq 'enumeration' } siem_messages() }),
   'the SIEM received the anomaly');
{
    my ($m) = grep { $_->{kind} eq 'enumeration' } siem_messages();
    is($m->{consumer}, 'civil-affairs.assistance', 'message: consumer');
    is($m->{dataset}, 'records.enum', 'message: dataset');
    is($m->{action}, 'suspend', 'message: action');
    is($m->{suspend_for}, 3600, 'message: suspend_for');
    is($m->{scope}, 'cluster', 'message: counted cluster-wide');
    is($m->{limit}, 30, 'message: limit');
    ok($m->{value} > 30, "message: value $m->{value}");
    like($m->{time} // '', qr/^\d{4}-\d\d-\d\dT/, 'message: time');
    like($m->{request_id} // '', qr/^[0-9a-f]{32}$/, 'message: request_id');
}

like($a->error_log . $b->error_log,
     qr/\[warn\].*anomaly enumeration: consumer "civil-affairs\.assistance" on dataset "records\.enum": \d+ distinct identifiers within 10m \(limit 30\), counted cluster-wide; the consumer is suspended for 1h/,
     'a [warn] line on the node whose call counted it');
is(scalar(grep { /"kind":"anomaly"/ }
          split /\n/, DGTest::slurp($a->dir . '/audit.log')
                      . DGTest::slurp($b->dir . '/audit.log')), 1,
   'one audit record for the cluster');

# --- datagate unsuspend lifts it everywhere ----------------------------------

{
    my ($rc, $out) = cli($redis->port, 'unsuspend', 'consumer',
                         'civil-affairs.assistance');
    is($rc, 0, 'datagate unsuspend consumer') or diag($out);
    ok(poll_until(5, sub {
           call($a, 'assistance', '/open/1')->status == 200
           && call($b, 'assistance', '/open/1')->status == 200 }),
       'both nodes serve it again');
    is(call($_, 'assistance', '/enum?id=' . (700000 + $_->port))->status,
       200, 'and its next ids start a new window') for $a, $b;
}

# --- a sequential run spread over two nodes: an alert ------------------------

for my $i (1 .. 11) {
    my $n = $i % 2 ? $a : $b;
    is(call($n, 'hrss', '/seq/' . (5500 + $i))->status, 200,
       "run step $i on node " . ($i % 2 ? 'A' : 'B'));
}
ok(poll_until(5, sub {
       ($a->error_log . $b->error_log) =~
           /anomaly sequential: consumer "hrss\.portal" on dataset "records\.seq": a sequential run of 11 identifiers \(limit 10\), counted cluster-wide; alert only/ }),
   'the run of 11 across both nodes is found');
ok(poll_until(5, sub {
       grep { $_->{kind} eq 'sequential' && $_->{action} eq 'alert' }
       siem_messages() }), 'and published');
is(call($a, 'hrss', '/open/1')->status, 200, 'an alert suspends nobody');
{
    my $p = $a->request(GET => '/status?format=prometheus',
                        cert => 'hrss')->body
          . $b->request(GET => '/status?format=prometheus',
                        cert => 'hrss')->body;
    like($p, qr/^datagate_anomalies_total\{consumer="hrss\.portal",dataset="records\.seq",kind="sequential"\} 1$/m,
         'counted on the node that reported it');
}

# --- Redis down: each node counts alone ---------------------------------------

$redis->stop;
ok(poll_until(5, sub { $a->error_log =~ /command connection down/ }),
   'node A knows Redis is down');
for my $i (1 .. 10) {
    is(call($a, 'hrss', '/seq/' . (8800 + $i))->status, 200, "alone: step $i");
}
call($a, 'hrss', '/seq/8811');
like($a->error_log,
     qr/anomaly sequential: consumer "hrss\.portal" on dataset "records\.seq": a sequential run of 11 identifiers \(limit 10\), counted on this node/,
     'the zone counts while Redis cannot');

$_->stop for $a, $b;
unlike($_->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit') for $a, $b;

done_testing();
