# Records: a dataset names where the records of its answers are
# (records: data[], records: $, records: []), or the gateway finds them
# (the top-level array, or the first array of objects under a key of a
# top-level object; else a top-level object is one record).  Every answer
# the masker reads is counted: $datagate_records, the audit record's
# "records", datagate_records_total{consumer,dataset,purpose}, and the
# records per hour of abuse detection; a dataset that only names its
# records goes through the masker to be counted.
# Row scoping is 038-rows.t; record caps and quotas 049-record-quota.t.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use DGTest;

my $policy = <<'YAML';
classes:
  person.id_number: {level: 4, mask: id_card}
purposes:
  stats: {}
consumers:
  - id: civil-affairs.assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
datasets:
  - id: found
    share: unconditional
    level: 1
    fields: {id_card: person.id_number}
  - id: named
    share: unconditional
    level: 1
    records: result.items[]
  - id: root
    share: unconditional
    level: 1
    records: $
  - id: top
    share: unconditional
    level: 1
    records: []
  - id: plain
    share: unconditional
    level: 1
YAML

my $n = DGTest::Nginx->new(policy => $policy);
my $up = $n->upstream_port;
my $audit = $n->dir . '/audit.log';
$n->{http_config} = "datagate_audit_log $audit;\n"
    . '    log_format dg "$datagate_dataset $uri records=$datagate_records";'
    . "\n    access_log " . $n->dir . '/dg.log dg;';
$n->{config} = join('', map { <<"CONF" } qw(found named root top plain))
        location /$_/ {
            datagate_dataset $_;
            proxy_pass http://127.0.0.1:$up/fx/;
        }
CONF
    . <<'CONF';
        location = /status {
            datagate_status;
        }
CONF

my %doc = (
    'list.json' => '{"code":0,"data":[{"id_card":"450103199003071242"},'
                   . '{"id":2},{"id":3}],"total":3}',
    'tags.json' => '{"tags":["a","b"],"rows":[],"data":[{"id":1},{"id":2}],'
                   . '"more":[{"id":3}]}',
    'one.json' => '{"id":1,"id_card":"450103199003071242"}',
    'arr.json' => '[{"id":1},{"id":2},{"id":3},{"id":4}]',
    'nested.json' => '{"result":{"count":2,"items":[{"a":1},{"a":2}]},'
                     . '"items":[{"a":3}]}',
    'scalar.json' => '"just text"',
);
DGTest::spew($n->dir . "/html/fx/$_", $doc{$_}) for keys %doc;
$n->start;

my @H = ('Data-Purpose: stats');

# [dataset, file, records, what]
my @cases = (
    [ 'found', 'list.json', 3, 'found: the array of objects under "data"' ],
    [ 'found', 'tags.json', 2, 'found: the first array whose first '
      . 'element is an object' ],
    [ 'found', 'one.json', 1, 'found: a top-level object is one record' ],
    [ 'found', 'arr.json', 4, 'found: the top-level array' ],
    [ 'found', 'scalar.json', 0, 'found: a string holds none' ],
    [ 'named', 'nested.json', 2, 'named: result.items[] only' ],
    [ 'named', 'list.json', 0, 'named: a path the answer does not have' ],
    [ 'root', 'list.json', 1, 'root: the document is one record' ],
    [ 'top', 'arr.json', 4, 'top: []' ],
    [ 'top', 'list.json', 0, 'top: an object is not the top-level array' ],
);

for my $c (@cases) {
    my ($ds, $file, $want, $what) = @$c;
    my $r = $n->request('GET', "/$ds/$file", cert => 'assistance',
                        headers => [@H]);
    is($r->status, 200, "$what: 200");
    is($r->body, $ds eq 'found' && $file =~ /^(list|one)/
                 ? do { (my $x = $doc{$file})
                        =~ s/450103199003071242/450103********1242/; $x }
                 : $doc{$file},
       "$what: the body (only masked values differ)");
}

# a dataset that neither masks nor names its records is not read
my $r = $n->request('GET', '/plain/list.json', cert => 'assistance',
                    headers => [@H]);
is($r->status, 200, 'plain: 200');
is($r->header('Content-Length'), length $doc{'list.json'},
   'plain: the provider\'s body, its length kept (not read)');

# the audit records, in request order
my $until = time + DGTest::secs(5);
my @lines;
while (time < $until) {
    @lines = split /\n/, (-e $audit ? DGTest::slurp($audit) : '');
    last if @lines >= @cases + 1;
    sleep 0.05;
}
is(scalar @lines, @cases + 1, 'one audit record per request');

for my $i (0 .. $#cases) {
    my $rec = json_decode($lines[$i] // '{}');
    is($rec->{records}, $cases[$i][2],
       "audit: records of $cases[$i][3]") or diag($lines[$i]);
}
ok(!exists json_decode($lines[-1] // '{}')->{records},
   'audit: no records member for a body the masker did not read');

# statistics: records sent by consumer x dataset x purpose
$r = $n->request('GET', '/status', cert => 'assistance');
my %got = map { ("$_->{consumer}|$_->{dataset}|$_->{purpose}"
                 => $_->{count}) } @{ $r->json->{records} || [] };
is_deeply(\%got, { 'civil-affairs.assistance|found|stats' => 10,
                   'civil-affairs.assistance|named|stats' => 2,
                   'civil-affairs.assistance|root|stats' => 1,
                   'civil-affairs.assistance|top|stats' => 4 },
          'status: records per consumer, dataset and purpose')
    or diag(explain(\%got));

$r = $n->request('GET', '/status?format=prometheus', cert => 'assistance');
like($r->body, qr/^datagate_records_total\{consumer="civil-affairs\.assistance",dataset="found",purpose="stats"\} 10$/m,
     'prometheus: datagate_records_total');
like($r->body, qr/^# TYPE datagate_records_total counter$/m,
     'prometheus: a counter');

$n->stop;

my $al = DGTest::slurp($n->dir . '/dg.log');
like($al, qr{^found /found/list\.json records=3$}m,
     '$datagate_records: the count') or diag($al);
like($al, qr{^found /found/scalar\.json records=0$}m,
     '$datagate_records: 0 when none');
like($al, qr{^plain /plain/list\.json records=-$}m,
     '$datagate_records: empty when the body was not read');
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/,
       'error.log: no alert, crit, emerg');

# records: is checked at load, with its line
my ($ok, $out) = nginx_t(policy => <<'YAML', config => <<'CONF');
purposes: {p: {}}
datasets:
  - id: d
    share: unconditional
    level: 1
    records: data[].x[]
YAML
        location / {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:1;
        }
CONF
ok(!$ok, 'nginx -t: a bad records path fails');
like($out, qr/policy\.yaml:6: datasets\[0\]\.records: records "data\[\]\.x\[\]": expected/,
     'nginx -t: file, line, field and why') or diag($out);

# abuse detection's records per hour counts the records the answers sent
{
    (my $pol = $policy) =~ s/(  - id: top\n    share: unconditional\n    level: 1\n    records: \[\]\n)/$1    abuse: {volume: {factor: 5, floor: 1000\/h, record_floor: 10\/h}}\n/
        or BAIL_OUT('policy edit');
    my $m = DGTest::Nginx->new(policy => $pol, config => <<"CONF");
        location /top/ {
            datagate_dataset top;
            proxy_pass http://127.0.0.1:\$TEST_NGINX_UPSTREAM_PORT/fx/;
        }
CONF
    $m->{upstream} = <<'U';
        location = /fx/arr.json {
            default_type application/json;
            return 200 '[{"id":1},{"id":2},{"id":3},{"id":4}]';
        }
U
    $m->start;
    for my $i (1 .. 2) {
        is($m->request('GET', '/top/arr.json', cert => 'assistance',
                       headers => [@H])->status, 200, "abuse: answer $i");
    }
    unlike($m->error_log, qr/anomaly records/,
           'abuse: 8 records within record_floor 10/h');
    $m->request('GET', '/top/arr.json', cert => 'assistance',
                headers => [@H]);
    my $until = time + DGTest::secs(5);
    sleep 0.05 until $m->error_log =~ /anomaly records/ || time > $until;
    like($m->error_log, qr/\[warn\].*anomaly records: consumer "civil-affairs\.assistance" on dataset "top": 12 records this hour \(limit 10\)/,
         'abuse: the third answer of 4 records is the anomaly records')
        or diag($m->error_log);
    $m->stop;
}

done_testing();
