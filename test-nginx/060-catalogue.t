# The consumer's catalogue (datagate_catalogue): the calling consumer, by
# its certificate and through the same identity and network checks as a
# data location, gets what it may ask for from the compiled policy: the
# datasets it reaches, through which locations of the server, for which
# purposes, windows, approval needed (never the number), methods, limits
# and the field plan; nothing of other consumers.  The same document as
# `datagate policy catalogue`.  With Redis, a suspended consumer and a
# revoked certificate get their 403.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use DGTest;
use DGRedis qw(cli poll_until code_of);

my $policy = <<'YAML';
levels: {1: 公开, 2: 内部, 3: 敏感, 4: 高敏感}
classes:
  person.id_number: {level: 4, mask: id_card}
  person.name:      {level: 3, mask: name}
  person.phone:     {level: 3, mask: phone}
  person.address:   {level: 3, mask: address}
purposes:
  social-assistance: {name: 社会救助资格核验}
  market-regulation: {name: 市场主体监管}
  secret-purpose:    {name: 只有人社}
consumers:
  - id: civil-affairs.assistance
    org: 自治区民政厅
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
  - id: market.supervision
    org: 自治区市场监督管理局
    cert: {subject: "CN=market-supervision,O=Market Supervision,C=CN"}
    clearance: 1
  - id: hrss.portal
    org: 自治区人社厅
    cert: {san: "DNS:hrss.gx.gov.cn"}
    clearance: 4
    networks: [10.99.0.0/16]
datasets:
  - id: population.person
    name: 人口基础信息
    provider: 自治区公安厅
    share: conditional
    level: 3
    fields: {id_card: person.id_number, name: person.name,
             phone: person.phone, address: person.address}
  - id: enterprise.registration
    name: 企业登记信息
    provider: 自治区市场监督管理局
    share: unconditional
    level: 1
    fields: {legal_rep: person.name, legal_rep_id: person.id_number}
    rate: 600r/m burst=20
  - id: social-security.insured
    name: 社保参保信息
    provider: 自治区人社厅
    share: conditional
    level: 3
    fields: {id_card: person.id_number}
  - id: tax.secret
    name: 涉税信息
    provider: 自治区税务局
    share: none
    level: 4
grants:
  - consumer: civil-affairs.assistance
    dataset: population.person
    purposes: [social-assistance]
    approval: GXSJ-2024-0137
    valid: {from: 2024-01-01, until: 2099-12-31}
    methods: [GET]
    reveal: [name]
    drop: [address]
    rate: 100r/s burst=50
    quota: 100000/day
  - consumer: civil-affairs.assistance
    dataset: social-security.insured
    purposes: [social-assistance]
    valid: {from: 2020-01-01, until: 2020-12-31}
  - consumer: hrss.portal
    dataset: social-security.insured
    purposes: [secret-purpose]
    approval: HRSS-SECRET-0099
YAML

my $n = DGTest::Nginx->new(policy => $policy, workers => 2);
my $up = $n->upstream_port;
my $plain = free_port();
my $audit = $n->dir . '/audit.log';
# a second server with enforced locations of its own: not in the
# catalogue of this one
$n->{http_config} = <<"EOF";
    datagate_audit_log $audit;
    server {
        listen 127.0.0.1:$plain;
        location /other-person/ {
            datagate on;
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$up;
        }
        location = /status {
            datagate_status;
        }
    }
EOF
$n->{config} = <<"EOF";
        datagate on;
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$up;
        }
        location = /person-one {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$up/person/1;
        }
        location ~ ^/ins(ured)?/ {
            datagate_dataset social-security.insured;
            proxy_pass http://127.0.0.1:$up;
        }
        location /enterprise/ {
            datagate_dataset enterprise.registration;
            proxy_pass http://127.0.0.1:$up;
        }
        location /plain/ {
            datagate off;
            proxy_pass http://127.0.0.1:$up;
        }
        location = /catalogue {
            datagate_catalogue;
        }
        location = /catalogue-off {
            datagate off;
            datagate_catalogue;
        }
EOF
$n->start;

sub cat_of {
    my ($cert, %o) = @_;
    return $n->request($o{method} // 'GET', $o{uri} // '/catalogue',
                       cert => $cert, headers => $o{headers} // []);
}

# --- the consumer's own catalogue -----------------------------------------------

my $r = cat_of('assistance');
is($r->status, 200, 'catalogue: 200');
is($r->header('Content-Type'), 'application/json', 'catalogue: JSON');
is($r->header('Cache-Control'), 'no-store', 'catalogue: not cached');
my $c = $r->json;
my $body = $r->body;

is($c->{consumer}{id}, 'civil-affairs.assistance', 'the calling consumer');
is($c->{consumer}{org}, '自治区民政厅', 'its organisation');
is($c->{consumer}{clearance}, 2, 'its clearance');
is_deeply($c->{purposes}, [{ id => 'social-assistance',
                             name => '社会救助资格核验' }],
          'the purposes its grants name');
like($c->{policy_version} // '', qr/^[0-9a-f]{64}$/, 'the policy version');

my %ds = map { ($_->{id} => $_) } @{ $c->{datasets} };
is_deeply([sort keys %ds],
          [qw(enterprise.registration population.person
              social-security.insured)],
          'the datasets it reaches: its grants, and what its clearance '
          . 'reaches; never share: none');

my $pp = $ds{'population.person'};
is_deeply($pp->{locations},
          [{ path => '/person/', match => 'prefix' },
           { path => '/person-one', match => 'exact' }],
          'population.person: its locations in this server, in order; '
          . 'not the other server\'s')
    or diag(explain($pp->{locations}));
is_deeply($ds{'social-security.insured'}{locations},
          [{ path => '^/ins(ured)?/', match => 'regex' }],
          'a regex location');
is(scalar @{ $pp->{access} }, 1, 'one way in: the grant');
my $g = $pp->{access}[0];
is($g->{by}, 'grant', 'by grant');
is_deeply($g->{purposes}, ['social-assistance'], 'its purposes');
is($g->{approval_required}, JSON::PP::true, 'an approval number is needed');
is_deeply($g->{valid}, { from => '2024-01-01', until => '2099-12-31' },
          'the validity window');
is($g->{in_force}, JSON::PP::true, 'in force now');
is_deeply($g->{methods}, ['GET'], 'methods');
is_deeply($g->{rate}, { limit => '100r/s burst=50', set_by => 'grant' },
          'rate');
is_deeply($g->{quota}, { limit => '100000/day', set_by => 'grant' }, 'quota');
my %f = map { ($_->{key} => $_) } @{ $g->{fields} };
is($f{id_card}{action}, 'masked', 'id_card masked');
is($f{id_card}{method}, 'id_card', '... with id_card');
is($f{name}{action}, 'clear', 'name in clear (revealed)');
is($f{name}{why}, 'revealed', '... revealed by the grant');
is($f{phone}{action}, 'masked', 'phone masked');
is($f{address}{action}, 'dropped', 'address dropped');

my $ins = $ds{'social-security.insured'}{access}[0];
is($ins->{in_force}, JSON::PP::false, 'an expired grant: not in force');

my $ent = $ds{'enterprise.registration'};
is($ent->{access}[0]{by}, 'clearance', 'unconditional: by clearance');
is($ent->{access}[0]{purposes}, 'any', '... for any purpose');
is_deeply($ent->{access}[0]{rate}, { limit => '600r/m burst=20',
                                     set_by => 'dataset' },
          '... the dataset\'s rate');

unlike($body, qr/GXSJ-2024-0137/, 'its approval number is not in it');
unlike($body, qr/HRSS-SECRET|secret-purpose|只有人社/,
       'nothing of another consumer\'s grant');
unlike($body, qr/market\.supervision|hrss\.portal|市场监督管理局\b(?!")/,
       'no other consumer');
unlike($body, qr/tax\.secret/, 'no dataset it cannot reach');
unlike($body, qr/other-person/, 'no location of another server');

# the same document as datagate policy catalogue, but for the locations
{
    my ($rc, $out) = run_cmd($DGTest::CLI, 'policy', 'catalogue',
                             $n->policy_file, '--consumer',
                             'civil-affairs.assistance');
    is($rc, 0, 'datagate policy catalogue: exit 0');
    my $cli = eval { json_decode($out) };
    ok($cli, 'datagate policy catalogue: JSON') or diag($out);
    my $gw = json_decode($body);
    delete $_->{locations} for @{ $gw->{datasets} };
    delete $gw->{at};
    delete $cli->{at};
    is_deeply($gw, $cli, 'the gateway\'s catalogue is the policy\'s, plus '
                         . 'the locations');
    ok(!grep({ exists $_->{locations} } @{ $cli->{datasets} }),
       'the command line knows no locations');

    ($rc, $out) = run_cmd($DGTest::CLI, 'policy', 'catalogue',
                          $n->policy_file, '--consumer', 'nobody');
    is($rc, 1, 'datagate policy catalogue: unknown consumer, exit 1');
    like($out, qr/no consumer 'nobody'/, '... and says so');
    ($rc, $out) = run_cmd($DGTest::CLI, 'policy', 'catalogue',
                          $n->policy_file);
    is($rc, 2, 'datagate policy catalogue: --consumer is required');
    ($rc, $out) = run_cmd($DGTest::CLI, 'policy', 'catalogue',
                          $n->policy_file, '--consumer',
                          'civil-affairs.assistance', '--at', '2020-06-01');
    my $then = json_decode($out);
    my ($old) = grep { $_->{id} eq 'social-security.insured' }
                @{ $then->{datasets} };
    is($old->{access}[0]{in_force}, JSON::PP::true,
       '--at: the grant of 2020 was in force then');
}

# another consumer sees its own
{
    my $m = cat_of('market')->json;
    is($m->{consumer}{id}, 'market.supervision', 'market: its own');
    is_deeply([map { $_->{id} } @{ $m->{datasets} }],
              ['enterprise.registration'], 'market: what it reaches');
}

# --- attacker: nothing in the request chooses the consumer -----------------------

for my $try (['?consumer=market.supervision', []],
             ['?consumer=hrss.portal&format=json', []],
             ['', ['Datagate-Consumer: hrss.portal']],
             ['', ['X-Consumer: hrss.portal',
                   'X-SSL-Client-S-DN: CN=market-supervision,O=Market '
                   . 'Supervision,C=CN']],
             ['/../catalogue', []])
{
    my ($q, $h) = @$try;
    my $res = cat_of('assistance', uri => "/catalogue$q", headers => $h);
    my $what = "catalogue$q @$h";
    if ($q =~ m{\.\.}) {
        isnt($res->status, 200, "$what: not served") ;
        next;
    }
    is($res->status, 200, "$what: 200");
    is(eval { $res->json->{consumer}{id} }, 'civil-affairs.assistance',
       "$what: still the certificate's consumer");
    unlike($res->body, qr/HRSS-SECRET|secret-purpose/,
           "$what: nothing of the other consumer");
}

# unknown certificate, no certificate, network-denied consumer, a catalogue
# location with datagate off: refused as on a data location
for my $uri ('/catalogue', '/catalogue-off') {
    my $res = cat_of('unknown', uri => $uri);
    is($res->status, 403, "$uri: unknown certificate: 403");
    is(code_of($res), 'unknown_consumer', "$uri: ... unknown_consumer");
    unlike($res->body, qr/datasets/, "$uri: ... and no catalogue");

    $res = cat_of(undef, uri => $uri);
    is($res->status, 401, "$uri: no certificate: 401");
    is(code_of($res), 'client_certificate_required',
       "$uri: ... client_certificate_required");

    $res = cat_of('hrss', uri => $uri);
    is($res->status, 403, "$uri: network-denied consumer: 403");
    is(code_of($res), 'network_denied', "$uri: ... network_denied");
    unlike($res->body, qr/HRSS-SECRET|secret-purpose|insured/,
           "$uri: ... and nothing of its grants");
}

is(cat_of('assistance', method => 'POST')->status, 405, 'POST: 405');
{
    my $res = cat_of('assistance', method => 'HEAD');
    is($res->status, 200, 'HEAD: 200');
    is($res->body, '', 'HEAD: no body');
}

# a path that only starts like the catalogue is another location
{
    my $res = cat_of('assistance', uri => '/catalogue/x');
    isnt($res->status, 200, 'a longer path: not the catalogue');
    unlike($res->body, qr/datasets/, '... and no catalogue in it');
}

# --- audited and counted, with an empty dataset ----------------------------------

{
    my $until = time + DGTest::secs(5);
    my @recs;
    while (time < $until) {
        @recs = grep { $_->{uri} =~ m{^/catalogue} }
                map { json_decode($_) } split /\n/, DGTest::slurp($audit);
        last if grep { ($_->{consumer} // '') eq '' } @recs;
        sleep 0.05;
    }
    my ($ok) = grep { $_->{decision} eq 'allowed' } @recs;
    ok($ok, 'an audit record of the catalogue call') or diag(explain(\@recs));
    is($ok->{consumer}, 'civil-affairs.assistance', '... its consumer');
    is($ok->{dataset} // '', '', '... no dataset');
    is($ok->{status}, 200, '... status 200');
    ok(grep({ $_->{reason} eq 'network_denied' } @recs),
       'the refused calls are audited too');

    my $st = DGTest::http_request('GET', '/status', port => $plain,
                                  ssl => 0)->json;
    my ($row) = grep { $_->{consumer} eq 'civil-affairs.assistance'
                       && $_->{dataset} eq '' && $_->{reason} eq 'ok' }
                @{ $st->{requests} };
    ok($row && $row->{count} >= 1, 'counted, with an empty dataset')
        or diag(explain($st->{requests}));
}

$n->stop;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit, emerg');
my ($vrc, $vout) = run_cmd($DGTest::CLI, 'audit', 'verify', $audit);
is($vrc, 0, 'the audit log verifies') or diag($vout);

# --- nginx -t -------------------------------------------------------------------

{
    my ($ok, $out) = nginx_t(policy => $policy, config => <<'EOF');
        location = /catalogue {
            datagate_dataset population.person;
            datagate_catalogue;
        }
EOF
    ok(!$ok, 'nginx -t: a catalogue that also serves a dataset fails');
    like($out, qr/"datagate_catalogue" in a location that serves dataset "population.person".* in \S+nginx.conf:\d+/,
         '... naming the directive\'s line') or diag($out);

    ($ok, $out) = nginx_t(policy => $policy, config => <<'EOF');
        location = /catalogue {
            datagate_status;
            datagate_catalogue;
        }
EOF
    ok(!$ok, 'nginx -t: catalogue and status in one location fails');
    like($out, qr/already has a content handler/, '... and says why')
        or diag($out);

    ($ok, $out) = nginx_t(config => <<'EOF');
        location = /catalogue {
            datagate_catalogue;
        }
EOF
    ok(!$ok, 'nginx -t: a catalogue without datagate_policy fails');
    like($out, qr/"datagate_catalogue" needs "datagate_policy"/,
         '... and says why') or diag($out);
}

# --- with Redis: a suspended consumer, a revoked certificate ----------------------

{
    my $redis = start_redis();
    my $rp = $redis->port;
    my $g2 = DGTest::Nginx->new(policy => $policy, http_config =>
                                "datagate_redis 127.0.0.1:$rp;", config =>
                                <<"EOF");
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$up;
        }
        location = /catalogue {
            datagate_catalogue;
        }
EOF
    $g2->start;
    my $get = sub { $g2->request('GET', '/catalogue', cert => 'assistance') };
    is($get->()->status, 200, 'redis: catalogue 200');

    my $serial = DGTest::cert_info('assistance')->{serial};
    for my $case ([[qw(suspend consumer civil-affairs.assistance)],
                   [qw(unsuspend consumer civil-affairs.assistance)],
                   'consumer_suspended'],
                  [[qw(revoke cert), $serial], [qw(unrevoke cert), $serial],
                   'cert_revoked'])
    {
        my ($set, $unset, $code) = @$case;
        my ($rc, $out) = cli($rp, @$set);
        is($rc, 0, "datagate @$set") or diag($out);
        my $res;
        my $t = poll_until(3, sub { $res = $get->(); $res->status == 403 });
        ok(defined $t, "@$set: the catalogue is refused");
        is(code_of($res), $code, "... $code");
        unlike($res->body, qr/datasets/, '... without the catalogue');
        is($g2->request('GET', '/catalogue', cert => 'market')->status, 200,
           '... another consumer still gets its own');
        ($rc, $out) = cli($rp, @$unset);
        ok(defined poll_until(3, sub { $get->()->status == 200 }),
           "@$unset: served again");
    }

    # a frozen dataset is run-time state on data requests, not a policy
    # change: the catalogue still lists it
    my ($rc) = cli($rp, qw(freeze dataset population.person));
    my $t = poll_until(3, sub {
        $g2->request('GET', '/person/1', cert => 'assistance',
                     headers => ['Data-Purpose: social-assistance',
                                 'Data-Approval: GXSJ-2024-0137'])->status
            == 403 });
    ok(defined $t, 'freeze dataset: data requests refused');
    my $res = $get->();
    is($res->status, 200, 'freeze dataset: the catalogue is served');
    like($res->body, qr/population\.person/, '... and lists the dataset');
    cli($rp, qw(unfreeze dataset population.person));

    $g2->stop;
    unlike($g2->error_log, qr/\[(alert|crit|emerg)\]/,
           'redis: no alert, crit, emerg');
    $redis->stop;
}

done_testing();
