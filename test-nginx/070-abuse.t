# Abuse detection on one node (no Redis): a sequential walk suspends the
# consumer (the request that tipped it and everything after, on every
# dataset, until suspend_for ends); an enumeration of distinct ids raises
# an alert and nothing else; identifiers are counted as the provider reads
# them (encodings, case, leading zeros, repeated and listed parameters);
# each anomaly is a [warn] line, a datagate_anomalies_total counter and an
# audit record of kind "anomaly" in an unbroken chain; the state survives
# a reload, and with datagate_state a restart (suspension included).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use DGTest qw(:DEFAULT $CLI);

sub policy {
    my (%o) = @_;
    my $seq_for = $o{seq_for} // '4s';
    return <<"Y";
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
  - id: records.seq
    share: conditional
    level: 1
    abuse: {sequential: 10, action: suspend, suspend_for: $seq_for,
            volume: {factor: 5, floor: 1000/h}}
  - id: records.enum
    share: conditional
    level: 1
    abuse: {id_param: id, distinct: 60/10m}
  - id: records.open
    share: conditional
    level: 1
  - id: records.scrape
    share: conditional
    level: 1
    abuse: {distinct: 20/10m, action: suspend, suspend_for: 1h}
grants:
  - consumer: civil-affairs.assistance
    dataset: records.seq
    purposes: [social-assistance]
  - consumer: civil-affairs.assistance
    dataset: records.enum
    purposes: [social-assistance]
  - consumer: civil-affairs.assistance
    dataset: records.open
    purposes: [social-assistance]
  - consumer: hrss.portal
    dataset: records.seq
    purposes: [social-assistance]
  - consumer: hrss.portal
    dataset: records.enum
    purposes: [social-assistance]
  - consumer: hrss.portal
    dataset: records.open
    purposes: [social-assistance]
  - consumer: civil-affairs.assistance
    dataset: records.scrape
    purposes: [social-assistance]
Y
}

my $config = <<'C';
        location /seq/ {
            datagate_dataset records.seq;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/rec/;
        }
        location /enum {
            datagate_dataset records.enum;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/rec/;
        }
        location /open/ {
            datagate_dataset records.open;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/rec/;
        }
        location /scrape/ {
            datagate_dataset records.scrape;
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

sub gateway {
    my (%o) = @_;
    my $n = DGTest::Nginx->new(policy => policy(%o), config => $config,
                               upstream => $upstream,
                               workers => $o{workers} // 2);
    $n->{http_config} = 'datagate_audit_log $TEST_NGINX_TESTDIR/audit.log;'
        . ($o{state} ? "\n    datagate_state \$TEST_NGINX_TESTDIR/dg.state;"
                     : '');
    $n->start;
    return $n;
}

sub call {
    my ($n, $who, $uri) = @_;
    return $n->request(GET => $uri, cert => $who,
                       headers => ['Data-Purpose: social-assistance']);
}

sub code_of {
    my ($r) = @_;
    my $j = eval { $r->json };
    return ref $j eq 'HASH' && $j->{error} ? $j->{error}{code} : '';
}

sub prom {
    my ($n) = @_;
    return $n->request(GET => '/status?format=prometheus',
                       cert => 'hrss')->body;
}

sub anomalies {
    my ($n) = @_;
    my @recs;
    for my $l (split /\n/, DGTest::slurp($n->dir . '/audit.log')) {
        my $j = eval { DGTest::json_decode($l) } or next;
        push @recs, $j if ($j->{kind} // '') eq 'anomaly';
    }
    return @recs;
}

# wait for a condition, with a scaled deadline
sub wait_for {
    my ($secs, $f) = @_;
    my $until = time + DGTest::secs($secs);
    while (time < $until) {
        return 1 if $f->();
        sleep 0.1;
    }
    return 0;
}

my $n = gateway();

# --- a sequential walk: suspended at the 11th -------------------------------

for my $i (1 .. 10) {
    my $r = call($n, 'assistance', "/seq/" . (41000 + $i));
    is($r->status, 200, "walk step $i: 200") or diag($r->body);
}

{
    my $r = call($n, 'assistance', '/seq/41011');
    is($r->status, 403, 'step 11: the run is longer than 10: refused');
    is(code_of($r), 'consumer_suspended', 'consumer_suspended');
}

like($n->error_log, qr/\[warn\].*datagate: anomaly sequential: consumer "civil-affairs\.assistance" on dataset "records\.seq": a sequential run of 11 identifiers \(limit 10\), counted on this node; the consumer is suspended for 4s/,
     'a [warn] line names the anomaly, the consumer and the action');

is(code_of(call($n, 'assistance', '/open/1')), 'consumer_suspended',
   'suspended on every dataset');
is(call($n, 'hrss', '/open/1')->status, 200, 'another consumer is not');
is(call($n, 'hrss', '/seq/41012')->status, 200,
   'nor is its own walk of the same ids (a run of its own)');

like(prom($n), qr/^datagate_anomalies_total\{consumer="civil-affairs\.assistance",dataset="records\.seq",kind="sequential"\} 1$/m,
     'datagate_anomalies_total counts it');

{
    my @a = anomalies($n);
    is(scalar @a, 1, 'one audit record of kind anomaly');
    is($a[0]{anomaly}, 'sequential', 'its kind of anomaly');
    is($a[0]{consumer}, 'civil-affairs.assistance', 'its consumer');
    is($a[0]{dataset}, 'records.seq', 'its dataset');
    is($a[0]{action}, 'suspend', 'its action');
    is($a[0]{suspend_for}, 4, 'for how long');
    is($a[0]{value}, 11, 'the run');
    is($a[0]{limit}, 10, 'the limit');
    is($a[0]{scope}, 'node', 'counted on this node');
    like($a[0]{request_id} // '', qr/^[0-9a-f]{32}$/, 'the request that '
         . 'tipped it');
    my ($rc, $out) = run_cmd($CLI, 'audit', 'verify', $n->dir . '/audit.log');
    is($rc, 0, 'the chain verifies with the anomaly in it') or diag($out);
}

ok(wait_for(15, sub { call($n, 'assistance', '/open/1')->status == 200 }),
   'suspend_for over: served again');
is(call($n, 'assistance', '/seq/41013')->status, 200,
   'and the walk starts afresh (no second anomaly at once)');

# --- an enumeration: an alert only --------------------------------------------

{
    my $fired = 0;
    my @ids = map { 5000 + 7 * $_ } 1 .. 25;
    for my $id (@ids) {
        # the provider reads the same record in every one of these forms
        for my $q ("id=$id", 'id=' . sprintf('%08d', $id),
                   'id=' . join('', map { sprintf '%%%02X', ord } split //, $id),
                   "ID=$id", "x=1&id=$id&id=$id", "id%5B%5D=$id",
                   "id=%EF%BC%" . join('%EF%BC%', map { sprintf '%02X', 0x90 + $_ } split //, $id))
        {
            my $r = call($n, 'hrss', "/enum?$q");
            is($r->status, 200, "/enum?$q: 200") if $q =~ /^id=\d+$/;
        }
    }
    unlike($n->error_log, qr/anomaly enumeration/,
           '25 ids in 7 spellings each: no enumeration');

    my $new = 0;
    while ($new < 80 && !$fired) {
        $new++;
        # three at a time: repeated and listed parameters count each
        my $a = 90000 + 3 * $new;
        my $r = call($n, 'hrss', "/enum?id=$a&id=" . ($a + 1) . ','
                                 . ($a + 2));
        is($r->status, 200, 'an alert does not refuse') if $new == 1;
        $fired = 1 if $n->error_log =~ /anomaly enumeration/;
    }
    ok($fired && $new >= 10 && $new <= 20,
       "fired after $new requests of 3 new ids (25 + 3 x $new distinct, "
       . 'limit 60)');
    like($n->error_log, qr/\[warn\].*anomaly enumeration: consumer "hrss\.portal" on dataset "records\.enum": \d+ distinct identifiers within 10m \(limit 60\), counted on this node; alert only/,
         'the [warn] line');
    is(call($n, 'hrss', '/open/1')->status, 200, 'not suspended');
    like(prom($n), qr/^datagate_anomalies_total\{consumer="hrss\.portal",dataset="records\.enum",kind="enumeration"\} 1$/m,
         'counted');
    my $st = $n->request(GET => '/status', cert => 'hrss')->json;
    ok((grep { $_->{kind} eq 'enumeration' && $_->{count} == 1 }
        @{ $st->{anomalies} // [] }), 'in the JSON statistics too');
}

# --- a reload keeps the state -------------------------------------------------

for my $i (1 .. 6) {
    is(call($n, 'hrss', '/seq/' . (77000 - 3 * $i))->status, 200,
       "a descending walk by 3, step $i");
}
ok($n->reload, 'reload');
for my $i (7 .. 10) {
    is(call($n, 'hrss', '/seq/' . (77000 - 3 * $i))->status, 200,
       "after the reload, step $i");
}
is(code_of(call($n, 'hrss', '/seq/' . (77000 - 33))), 'consumer_suspended',
   'step 11 after the reload: the run survived it');
# --- random identifiers: suspended within the window --------------------------

{
    my ($sent, $refused) = (0, 0);
    srand(20);
    while ($sent < 40 && !$refused) {
        $sent++;
        my $r = call($n, 'assistance',
                     '/scrape/' . (100000 + int(rand(900000))));
        $refused = $sent if $r->status == 403;
    }
    ok($refused >= 18 && $refused <= 24,
       "random ids, distinct: 20/10m: suspended at request $refused");
    is(code_of(call($n, 'assistance', '/open/1')), 'consumer_suspended',
       'and on the other datasets');
    like($n->error_log, qr/anomaly enumeration: consumer "civil-affairs\.assistance" on dataset "records\.scrape": \d+ distinct identifiers within 10m \(limit 20\), counted on this node; the consumer is suspended for 1h/,
         'the [warn] line');
}

$n->stop;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit');

# --- datagate_state: a restart keeps suspension and baselines -----------------

my $m = gateway(seq_for => '1h', state => 1, workers => 1);
is(call($m, 'assistance', '/seq/' . (900 + $_))->status, 200, "walk $_")
    for 1 .. 10;
is(code_of(call($m, 'assistance', '/seq/911')), 'consumer_suspended',
   'suspended for an hour');
$m->stop;
{
    my $st = DGTest::slurp($m->dir . '/dg.state');
    like($st, qr/^abuse-suspend civil-affairs\.assistance \d+$/m,
         'the state file holds the suspension');
    like($st, qr/^abuse civil-affairs\.assistance\|records\.seq \d+ 11 0 0 [\d.,]+ [\d.,]+ [\d,]+$/m,
         'and the hour\'s calls with the baselines');
}
$m->start;
like($m->error_log, qr/2 abuse baselines and suspensions loaded/,
     'loaded at start');
is(code_of(call($m, 'assistance', '/open/1')), 'consumer_suspended',
   'after the restart: still suspended');
is(call($m, 'hrss', '/open/1')->status, 200, 'the other consumer is not');
$m->stop;
unlike($m->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit');

# --- a policy error names file and line ---------------------------------------

{
    my $bad = policy();
    $bad =~ s/distinct: 60\/10m/distinct: 60/;
    my ($ok, $out) = nginx_t(policy => $bad, config => $config);
    ok(!$ok, 'nginx -t refuses a bad abuse mapping');
    like($out, qr/policy\.yaml:\d+: datasets\[1\]\.abuse\.distinct: bad value '60'/,
         'naming file, line and key');
}

done_testing();
