# Policy reload: a good new policy switches atomically (and the decision
# cache, keyed by policy version, does not answer from the old one); a bad
# new policy is refused and the old one keeps serving.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest;

sub policy {
    my ($purpose) = @_;
    return <<"END";
purposes:
  p1: {name: one}
  p2: {name: two}
consumers:
  - id: c
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - {id: d, share: conditional, level: 1}
grants:
  - consumer: c
    dataset: d
    purposes: [$purpose]
END
}

my $n = start_nginx(policy => policy('p1'), http_config => <<'END',
    datagate_cache zone=dg:1m ttl=300s;
    log_format dg 'dg $datagate_request_id $datagate_cache $datagate_reason';
    access_log $TEST_NGINX_TESTDIR/dg.log dg;
END
                    config => <<'END');
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
END

sub ask {
    my ($purpose, $id) = @_;
    return $n->request('GET', '/echo', cert => 'assistance',
                       headers => ["Data-Purpose: $purpose",
                                   "Datagate-Request-Id: $id"]);
}

is(ask('p1', 'a1')->status, 200, 'policy 1: p1 allowed');
is(ask('p1', 'a2')->status, 200, 'policy 1: p1 allowed again (cached)');
is(ask('p2', 'a3')->status, 403, 'policy 1: p2 not granted');

# a bad policy: refused, the old one serves
my $bad = policy('p1') . "  - consumer: nobody\n    dataset: d\n";
is($n->reload(policy => $bad), 0, 'bad policy: reload refused');
like($n->error_log, qr/\[emerg\].*policy\.yaml:\d+: grants\[1\]\.consumer/,
     'bad policy: file, line and field logged');
is(ask('p1', 'b1')->status, 200, 'after the refused reload: p1 allowed');
is(ask('p2', 'b2')->status, 403, 'after the refused reload: p2 denied');

# a good policy: switched, no decision of the old policy answers
is($n->reload(policy => policy('p2')), 1, 'good policy: reloaded');
my $r = ask('p1', 'c1');
is($r->status, 403, 'policy 2: p1 no longer granted');
is((eval { $r->json } || {})->{error}{code}, 'purpose_not_granted',
   'policy 2: purpose_not_granted');
is(ask('p2', 'c2')->status, 200, 'policy 2: p2 allowed');

# and back, several times: the shared zone is reused, nothing leaks
for my $i (1 .. 3) {
    is($n->reload(policy => policy($i % 2 ? 'p1' : 'p2')), 1,
       "reload $i");
}
is(ask('p1', 'd1')->status, 200, 'after three reloads: p1 allowed');

$n->stop;

my $al = DGTest::slurp($n->dir . '/dg.log');
like($al, qr/^dg a2 hit ok$/m, 'second identical request: cache hit');
like($al, qr/^dg c1 miss purpose_not_granted$/m,
     'after the switch: a miss, not the old decision');
unlike($n->error_log, qr/\[(alert|crit)\]/, 'no alert/crit');

done_testing();
