# A grant's params bind query parameters to values: a request whose
# parameter is missing, out of scope, or could be read another way by the
# provider (repeated, another case, an array form, encoded twice, a list
# in one value, a wildcard, a NUL, a fragment, a body) answers 403
# scope_violation and never reaches the provider.  The reading rule is in
# policy/schema.md ("Parameters"); its cases one by one in
# module/core/t/t_params.c.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use DGTest;

my $policy = <<'YAML';
purposes:
  social-assistance: {}
  statistics: {}
consumers:
  - id: civil-affairs.assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
datasets:
  - id: regional
    share: conditional
    level: 2
    methods: [GET, HEAD, POST]
  - id: open
    share: unconditional
    level: 1
grants:
  - consumer: civil-affairs.assistance
    dataset: regional
    purposes: [social-assistance]
    methods: [GET, POST]
    params:
      region: ["4501*", "450203"]
      year: "2024"
  - consumer: civil-affairs.assistance
    dataset: open
    purposes: [statistics]
    params: {county: "450102"}
YAML

my $ECHO = <<'PERL';
my $b = '{"uri":"' . ($URI =~ s/(["\\])/\\$1/gr) . '"}';
send_raw(head(200, 'Content-Type: application/json',
              'Content-Length: ' . length $b) . $b);
PERL

my $n = DGTest::Nginx->new(policy => $policy, config => <<'CONF');
        location /regional/ {
            datagate_dataset regional;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT;
        }
        location /open/ {
            datagate_dataset open;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT;
        }
CONF
my $d = $n->dir;
$n->{http_config} = "datagate_audit_log $d/audit.log;\n";
$n->evil_scenarios(regional => $ECHO, open => $ECHO);
$n->start;

my @H = ('Data-Purpose: social-assistance');

# [query, allowed?, part of the reason]
my @cases = (
    [ 'region=450102&year=2024', 1 ],
    [ 'year=2024&region=450203', 1 ],
    [ 'region=%34%35%30%31%30%32&year=2024', 1 ],
    [ 'reg%69on=4501&year=2024&page=3', 1 ],
    [ 'year=2024', 0, 'the parameter \\"region\\" is missing' ],
    [ 'region=450102', 0, '\\"year\\" is missing' ],
    [ 'region=990000&year=2024', 0, '\\"region\\" is out of scope' ],
    [ 'region=450102&year=2023', 0, '\\"year\\" is out of scope' ],
    [ 'region=450102&year=2024&region=990000', 0, 'more than once' ],
    [ 'region=450102&year=2024;region=990000', 0, 'more than once' ],
    [ 'Region=990000&region=450102&year=2024', 0,
      'may be read as \\"region\\"' ],
    [ 'region[]=990000&region=450102&year=2024', 0, 'may be read as' ],
    [ 'reg%2569on=990000&region=450102&year=2024', 0, 'may be read as' ],
    [ 'region=4501,9999&year=2024', 0, 'syntax' ],
    [ 'region=4501*&year=2024', 0, 'syntax' ],
    [ 'region=4501%00&year=2024', 0, 'syntax' ],
    [ 'region=%2534501&year=2024', 0, 'syntax' ],
    [ 'region=4501%zz&year=2024', 0, 'broken' ],
);

my $id = 0;
for my $c (@cases) {
    my ($q, $allowed, $why) = @$c;
    my $rid = 'p' . ++$id;
    my $r = $n->request('GET', "/regional/x?$q", cert => 'assistance',
                        headers => [@H, "Datagate-Request-Id: $rid"]);
    if ($allowed) {
        is($r->status, 200, "$q: allowed");
        is((eval { $r->json } || {})->{uri}, "/regional/x?$q",
           "$q: the provider has the query as sent");
    } else {
        is($r->status, 403, "$q: 403");
        like($r->body, qr/"code":"scope_violation","message":".*\Q$why\E/,
             "$q: scope_violation, why") or diag($r->body);
    }
}

# the client's raw request line: a fragment nginx keeps in the query
{
    my $r = $n->request('GET', '/regional/x?region=450102&year=2024#x',
                        cert => 'assistance', headers => [@H]);
    is($r->status, 403, 'a fragment in the query: 403');
    like($r->body, qr/scope_violation.*the query has a/, 'a fragment: why');
}

# a body: its form fields are parameters to some providers
{
    my $r = $n->request('POST', '/regional/x?region=450102&year=2024',
                        cert => 'assistance', headers => [@H,
                        'Content-Type: application/x-www-form-urlencoded'],
                        body => 'region=990000');
    is($r->status, 403, 'a request body: 403');
    like($r->body, qr/scope_violation.*body/, 'a request body: why');

    $r = $n->request('POST', '/regional/x?region=450102&year=2024',
                     cert => 'assistance', headers => [@H]);
    is($r->status, 200, 'POST without a body: allowed');
}

# a rewrite: the query nginx forwards is checked too
{
    my $m = DGTest::Nginx->new(policy => $policy, config => <<'CONF');
        location /regional/ {
            datagate_dataset regional;
            set $args "region=990000&year=2024";
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT;
        }
CONF
    $m->evil_scenarios(regional => $ECHO);
    $m->start;
    my $r = $m->request('GET', '/regional/x?region=450102&year=2024',
                        cert => 'assistance', headers => [@H]);
    is($r->status, 403, 'the query nginx forwards (set $args) is checked');
    $m->stop;
}

# on an unconditional dataset a grant's params apply with the grant
{
    my $r = $n->request('GET', '/open/x?county=450103', cert => 'assistance',
                        headers => ['Data-Purpose: statistics']);
    is($r->status, 403, 'unconditional: the grant applies: checked');
    $r = $n->request('GET', '/open/x?county=450102', cert => 'assistance',
                     headers => ['Data-Purpose: statistics']);
    is($r->status, 200, 'unconditional: in scope');
}

# nothing refused reached the provider
my @seen = map { m{^GET (\S+)} ? $1 : () } $n->evil->requests;
my @bad = grep { /990000|2023|%00|%zz|%25|,|\*|\[|Region|#/ } @seen;
is_deeply(\@bad, [], 'the provider never saw a refused request')
    or diag(explain(\@bad));

# the audit record says why
my $until = time + DGTest::secs(5);
my $rec = {};
while (time < $until) {
    for my $l (split /\n/, (-e "$d/audit.log" ? DGTest::slurp("$d/audit.log")
                                                : '')) {
        my $x = json_decode($l);
        $rec = $x if ($x->{request_id} // '') eq 'p7';
    }
    last if $rec->{reason};
    sleep 0.05;
}
is($rec->{reason}, 'scope_violation', 'audit: scope_violation');
is($rec->{decision}, 'denied', 'audit: denied');
like($rec->{detail} // '', qr/"region" is out of scope/, 'audit: detail');

$n->stop;
like($n->error_log, qr/datagate: denied scope_violation/,
     'error.log: the denial at info');
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit, emerg');

# policy errors
for my $t (
    [ "params: {region: \"45*01\"}", qr/params: parameter 'region': value '45\*01': '\*' may only end a value/ ],
    [ "params: {region: \"a b\"}", qr/value 'a b' could never match/ ],
    [ "params: {\"reg ion\": x}", qr/parameter name 'reg ion': letters, digits/ ],
    [ "params: {region: []}", qr/params\.region: expected a value or a list/ ],
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
