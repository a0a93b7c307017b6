# Records per answer (max_records) and per period (record_quota), counted
# in records sent, not calls.  Past max_records, or when the quota runs
# out mid-answer, the records left are removed: the answer ends at a
# record boundary, valid JSON with its envelope, and says so in
# Datagate-Records-Cut (a header when the cut is known before the header
# goes out, else a trailer).  A quota already used up answers 429
# rate_limited with the standard headers.  One node from its zone
# (across a reload, and a restart with datagate_state); two nodes on one
# Redis share the quota within 3%, answers in turn and at once; answers
# larger than one allowance wait for more (from the zone, from Redis),
# plain or gzip.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IO::Compress::Gzip qw(gzip $GzipError);
use POSIX qw(WNOHANG);
use DGTest;
use DGMask qw(tls_connect);
use DGRedis qw(poll_until);

my $policy = <<'YAML';
classes:
  person.id_number: {level: 4, mask: id_card}
purposes:
  social-assistance: {}
  statistics: {}
consumers:
  - id: civil-affairs.assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
datasets:
  - id: capped
    share: conditional
    level: 3
    fields: {id_card: person.id_number}
    records: data[]
  - id: counted
    share: conditional
    level: 3
    fields: {id_card: person.id_number}
    records: data[]
    record_quota: QUOTA_DS/hour
grants:
  - consumer: civil-affairs.assistance
    dataset: capped
    purposes: [social-assistance]
    max_records: 5
  - consumer: civil-affairs.assistance
    dataset: capped
    purposes: [statistics]
    max_records: 1500
  - consumer: civil-affairs.assistance
    dataset: counted
    purposes: [social-assistance]
    record_quota: QUOTA/hour
    max_records: 900
  - consumer: civil-affairs.assistance
    dataset: counted
    purposes: [statistics]
YAML

# an answer of N records: /list/N (gzip: /gz/N), records {"n":i,...}
my $LIST = <<'PERL';
my ($k, $n) = $URI =~ m{^/(\w+)/(\d+)};
my $rec = sub { '{"n":' . $_[0] . ',"id_card":"450103199003071242",'
                . '"pad":"' . ('x' x 100) . '"}' };
my $b = '{"code":0,"data":[' . join(',', map { $rec->($_) } 1 .. $n)
        . '],"total":' . $n . '}';
if ($k eq 'gz') {
    require IO::Compress::Gzip;
    my $z;
    IO::Compress::Gzip::gzip(\$b => \$z);
    send_raw(head(200, 'Content-Type: application/json',
                  'Content-Encoding: gzip', 'Content-Length: ' . length $z)
             . $z);
} else {
    send_raw(head(200, 'Content-Type: application/json',
                  'Transfer-Encoding: chunked'));
    while (length $b) { send_raw(chunk(substr($b, 0, 8000, ''))) }
    send_raw(chunk(''));
}
PERL

my $CONF = <<'CONF';
        location /capped/ {
            datagate_dataset capped;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
        location /counted/ {
            datagate_dataset counted;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
CONF

sub pol {
    my ($q, $qds) = @_;
    my $p = $policy;
    $p =~ s/QUOTA_DS/$qds/;
    $p =~ s/QUOTA/$q/;
    return $p;
}

sub node {
    my (%o) = @_;
    my $n = DGTest::Nginx->new(policy => pol($o{quota} // 1000,
                                             $o{qds} // 1000),
                               config => $CONF, workers => $o{workers} // 1,
                               http_config => $o{http} // '');
    my $d = $n->dir;
    $n->{http_config} .= "\n    datagate_audit_log $d/audit.log;\n";
    $n->evil_scenarios(list => $LIST, gz => $LIST);
    $n->start;
    return $n;
}

sub ask {
    my ($n, $uri, $purpose, %o) = @_;
    return $n->request('GET', $uri, cert => 'assistance',
                       headers => ["Data-Purpose: " . ($purpose
                                   // 'social-assistance')],
                       timeout => DGTest::secs(30), %o);
}

# the records of an answer: their n, or undef when it is not JSON
sub ns {
    my ($r) = @_;
    my $j = eval { $r->json };
    return undef unless ref $j eq 'HASH' && ref $j->{data} eq 'ARRAY';
    return [map { $_->{n} } @{ $j->{data} }];
}

sub audit {
    my ($n, $count) = @_;
    my $f = $n->dir . '/audit.log';
    my @recs;
    my $until = time + DGTest::secs(5);
    while (time < $until) {
        @recs = map { json_decode($_) }
                split /\n/, (-e $f ? DGTest::slurp($f) : '');
        last if @recs >= $count;
        sleep 0.05;
    }
    return @recs;
}

# --- max_records ---------------------------------------------------------

my $n = node();

my $r = ask($n, '/capped/list/13');
is($r->status, 200, 'max_records 5 of 13: 200');
is_deeply(ns($r), [1 .. 5], 'max_records: the first 5, valid JSON');
like($r->body, qr/\],"total":13\}$/, 'max_records: the envelope kept');
is($r->header('Datagate-Records-Cut'), 'max_records; records=5',
   'max_records: a header says so (the answer was held)');
unlike($r->body, qr/450103199003071242/, 'max_records: still masked');

$r = ask($n, '/capped/list/4');
is_deeply(ns($r), [1 .. 4], 'max_records: fewer records, all of them');
ok(!defined $r->header('Datagate-Records-Cut'), 'not cut: nothing said');

# a cut after the header went out: a trailer
{
    my $s = tls_connect($n->port);
    print $s "GET /capped/list/2000 HTTP/1.1\r\nHost: localhost\r\n"
        . "Data-Purpose: statistics\r\nConnection: close\r\n\r\n";
    my $raw = '';
    my $until = time + DGTest::secs(30);
    while (time < $until) {
        my $k = sysread($s, my $buf, 1 << 16);
        last unless $k;
        $raw .= $buf;
    }
    close $s;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    like($head, qr/^Transfer-Encoding: chunked\r?$/mi,
         'max_records 1500 of 2000: chunked');
    unlike($head, qr/Datagate-Records-Cut/i, 'the header went out first');
    like($body // '', qr/\r\n0\r\nDatagate-Records-Cut: max_records; records=1500\r\n\r\n\z/,
         'a trailer says so');
    my $plain = '';
    my $rest = $body // '';
    while ($rest =~ s/^([0-9a-f]+)\r\n//i) {
        my $len = hex $1;
        last if $len == 0;
        $plain .= substr($rest, 0, $len, '');
        $rest =~ s/^\r\n//;
    }
    my $j = eval { json_decode($plain) } || {};
    is(scalar @{ $j->{data} || [] }, 1500, 'max_records: 1500 sent');
    is($j->{data}[-1]{n}, 1500, 'max_records: up to the 1500th');
}

my @a = audit($n, 3);
is($a[0]{records}, 5, 'audit: records sent');
is($a[0]{records_cut}, 8, 'audit: records cut');
is($a[0]{records_cut_by}, 'max_records', 'audit: cut by max_records');
is($a[0]{reason}, 'ok', 'audit: the answer went out whole');
ok(!exists $a[1]{records_cut}, 'audit: nothing cut, nothing said');

# --- record_quota on one node ------------------------------------------

$n->stop;
$n = node(quota => 20, qds => 10);

my @got;
for (1 .. 3) {
    $r = ask($n, '/counted/list/6');
    push @got, $r->status, scalar @{ ns($r) || [] };
}
is_deeply(\@got, [200, 6, 200, 6, 200, 6],
          'record_quota 20/hour: 3 answers of 6 (what was taken and not '
          . 'sent went back)');
$r = ask($n, '/counted/list/6');
is($r->status, 200, 'the quota runs out mid-answer: 200');
is_deeply(ns($r), [1, 2], 'the 2 records left, valid JSON');
is($r->header('Datagate-Records-Cut'), 'record_quota; records=2',
   'it says so');
$r = ask($n, '/counted/list/6');
is($r->status, 429, 'the quota used up: 429');
like($r->body, qr/"code":"rate_limited".*record quota exhausted: 20 records per hour/,
     '429: rate_limited, why');
ok($r->header('Retry-After') > 0, '429: Retry-After');
is($r->header('RateLimit-Limit'), 20, '429: RateLimit-Limit');
is($r->header('RateLimit-Remaining'), 0, '429: RateLimit-Remaining');
ok($r->header('RateLimit-Reset') >= $r->header('Retry-After'),
   '429: RateLimit-Reset');

# the dataset's quota, each consumer's: another budget
$r = ask($n, '/counted/list/8', 'statistics');
is_deeply(ns($r), [1 .. 8], 'the dataset\'s quota (10): 8 of 8');
$r = ask($n, '/counted/list/8', 'statistics');
is_deeply(ns($r), [1, 2], 'the dataset\'s quota: 2 left');

# a reload keeps the count
ok($n->reload, 'reload');
$r = ask($n, '/counted/list/6');
is($r->status, 429, 'after a reload: still used up');

$n->stop;

# an answer larger than one allowance: more taken as it goes
$n = node(quota => 1000);
$r = ask($n, '/counted/list/600');
is(scalar @{ ns($r) || [] }, 600, 'record_quota 1000: 600 of 600 (the '
   . 'allowance grew as the answer went)');
$r = ask($n, '/counted/gz/600');
is(scalar @{ ns($r) || [] }, 400, 'gzip: 400 of 600, the rest cut');
is($r->header('Datagate-Records-Cut') // '', 'record_quota; records=400',
   'gzip: said');
$r = ask($n, '/counted/list/1');
is($r->status, 429, 'then 429');
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit, emerg');
$n->stop;

# a restart with datagate_state keeps the count
{
    my $m = node(quota => 10,
                 http => "    datagate_state \$TEST_NGINX_TESTDIR/q.state;\n");
    $r = ask($m, '/counted/list/7');
    is(scalar @{ ns($r) || [] }, 7, 'state: 7 of 10');
    $m->stop;
    like(DGTest::slurp($m->dir . '/q.state'),
         qr/^\d+ 3600 7 records:civil-affairs\.assistance\|counted$/m,
         'state: the record quota\'s window and count in the file');
    $m->start;
    $r = ask($m, '/counted/list/7');
    is_deeply(ns($r), [1, 2, 3], 'state: after the restart, 3 left');
    $m->stop;
}

# --- two nodes on one Redis ----------------------------------------------

my $redis = start_redis();
my $rp = $redis->port;
my $quota = 300;
my @nodes = map {
    node(quota => $quota, workers => 2,
         http => "    datagate_redis 127.0.0.1:$rp;\n")
} 1 .. 2;

# in turn: answers of 7
my $sent = 0;
my $refused = 0;
for my $i (0 .. 60) {
    $r = ask($nodes[$i % 2], '/counted/list/7');
    if ($r->status == 429) {
        $refused++;
        last if $refused >= 2;
        next;
    }
    $sent += scalar @{ ns($r) || [] };
}
cmp_ok(abs($sent - $quota), '<=', $quota * 0.03,
       "two nodes in turn: $sent records sent of a quota of $quota");
is($refused, 2, 'then both refuse');
like($redis->cmd('KEYS', 'datagate:rquota:*')->[0] // '',
     qr/^datagate:rquota:civil-affairs\.assistance\|counted:\d+$/,
     'the cluster count in Redis');

# at once: 6 clients on both nodes, answers of 100 (a first allowance
# of 64, then more from Redis while the answer waits), into a budget of
# the next consumer's... the same one, emptied
$redis->cmd('DEL', $_) for @{ $redis->cmd('KEYS', 'datagate:rquota:*') };

# alone first: one answer of 100 takes a first allowance of 64 and more
# from Redis while it streams (at once, the first allowances of six
# answers may take the whole budget, so none need grow there)
$r = ask($nodes[0], '/counted/list/100');
my $first = $r->status == 200 ? scalar @{ ns($r) || [] } : 0;
is($first, 100, 'one answer longer than one allowance (64): all 100 '
   . 'records');

my $dir = DGTest::base_dir();
my @kids;
for my $k (0 .. 5) {
    my $pid = fork // die;
    if ($pid == 0) {
        my @each;
        for (1 .. 4) {
            my $x = ask($nodes[$k % 2], '/counted/list/100');
            push @each, scalar @{ ns($x) || [] } if $x->status == 200;
        }
        DGTest::spew("$dir/rq-$k", join(' ', @each));
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid $_, 0 for @kids;
my $together = $first;
for my $k (0 .. 5) {
    for my $c (split ' ', DGTest::slurp("$dir/rq-$k") // '') {
        $together += $c;
    }
}
cmp_ok($together, '<=', $quota, "at once: $together records, never more "
       . "than the quota");
cmp_ok($together, '>=', $quota * 0.97, 'at once: within 3% of it');
$r = ask($nodes[0], '/counted/list/1');
is($r->status, 429, 'at once: then 429');

for my $nd (@nodes) {
    $nd->stop;
    unlike($nd->error_log, qr/\[(alert|crit|emerg)\]/,
           'a node: no alert, crit, emerg');
}
$redis->stop;

# --- policy errors ---------------------------------------------------------

for my $t (
    [ 'record_quota: 10/week', qr/record_quota: bad record quota '10\/week'/ ],
    [ 'max_records: 0', qr/max_records/ ],
    [ 'max_records: many', qr/max_records/ ],
) {
    my ($ok, $out) = nginx_t(policy => <<"YAML", config => <<'CONF');
purposes: {p: {}}
consumers:
  - id: c
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - id: d
    share: conditional
    level: 1
grants:
  - consumer: c
    dataset: d
    purposes: [p]
    $t->[0]
YAML
        location / {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:1;
        }
CONF
    ok(!$ok, "nginx -t: $t->[0] fails");
    like($out, $t->[1], "nginx -t: $t->[0]: why") or diag($out);
}

done_testing();
