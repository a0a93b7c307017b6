# What is counted as masked: a value withheld from the consumer (masked with
# its class's method, or dropped by the grant) counts under its class in the
# audit record's "masked", in datagate_masked_fields_total and in
# $datagate_masked; a classified value shown in clear (its level within the
# consumer's clearance, or revealed by the grant) does not.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use DGTest;

my $policy = <<'YAML';
levels: {1: 公开, 2: 内部, 3: 敏感, 4: 高敏感}
classes:
  person.id_number: {level: 4, mask: id_card}
  person.name:      {level: 3, mask: name}
  person.phone:     {level: 3, mask: phone}
  person.address:   {level: 3, mask: address}
  low.code:         {level: 1, mask: redact}
purposes:
  social-assistance: {name: 社会救助资格核验}
consumers:
  - id: civil-affairs.assistance
    org: 自治区民政厅
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
datasets:
  - id: population.person
    name: 人口基础信息
    provider: 自治区公安厅
    share: conditional
    level: 3
    fields: {id_card: person.id_number, name: person.name,
             phone: person.phone, address: person.address,
             ethnicity: low.code, gender: low.code}
grants:
  - consumer: civil-affairs.assistance
    dataset: population.person
    purposes: [social-assistance]
    valid: {from: 2024-01-01, until: 2099-12-31}
    reveal: [name]
    drop: [address]
YAML

my $n = DGTest::Nginx->new(policy => $policy);
my $up = $n->upstream_port;
my $audit = $n->dir . '/audit.log';
$n->{http_config} = "datagate_audit_log $audit;\n"
    . '    log_format dg "$datagate_dataset masked=$datagate_masked";' . "\n"
    . '    access_log ' . $n->dir . '/dg.log dg;';
$n->{config} = <<"CONF";
        location /person/ {
            datagate on;
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$up;
        }
        location = /status {
            datagate_status;
        }
CONF
$n->start;

# person/1.json: id_card 1, phone 2 (with its emergency_contact's): masked;
# address 1: dropped by the grant; name 2: revealed; gender and ethnicity:
# level 1 within clearance 2, in clear
my $r = $n->request('GET', '/person/1', cert => 'assistance',
                    headers => ['Data-Purpose: social-assistance']);
is($r->status, 200, 'allowed: 200') or diag($r->body);
my $j = $r->json;
is($j->{id_card}, '450103********1242', 'id_card masked');
is($j->{phone}, '138****2345', 'phone masked');
ok(!exists $j->{address}, 'address dropped');
is($j->{name}, '韦秀兰', 'name revealed');
is($j->{emergency_contact}{name}, '黄丽', 'nested name revealed');
is($j->{ethnicity}, '壮族', 'level 1 within clearance: in clear');
is($j->{gender}, '女', 'level 1 within clearance: in clear');

my $until = time + DGTest::secs(5);
my @lines;
while (time < $until) {
    if (open my $fh, '<', $audit) {
        @lines = <$fh>;
    }
    last if @lines;
    sleep 0.02;
}
is(scalar @lines, 1, 'one audit record');
my $rec = json_decode($lines[0] // '{}');
is_deeply($rec->{masked}, { 'person.id_number' => 1, 'person.phone' => 2,
                            'person.address' => 1 },
          'audit: withheld values per class; clear ones not counted')
    or diag($lines[0]);

$r = $n->request('GET', '/status', cert => 'assistance');
is($r->status, 200, 'status: 200');
my %got = map { ("$_->{dataset}|$_->{class}" => $_->{count}) }
          @{ $r->json->{masked} || [] };
is_deeply(\%got, { 'population.person|person.id_number' => 1,
                   'population.person|person.phone' => 2,
                   'population.person|person.address' => 1 },
          'status: masked per dataset x class; clear ones not counted')
    or diag(explain(\%got));

$r = $n->request('GET', '/status?format=prometheus', cert => 'assistance');
my $p = $r->body;
like($p, qr/^datagate_masked_fields_total\{dataset="population.person",class="person.phone"\} 2$/m,
     'prometheus: masked phone values');
unlike($p, qr/^datagate_masked_fields_total\{.*class="(low\.code|person\.name)"\}/m,
       'prometheus: no count for values shown in clear');

$n->stop;
my $al = DGTest::slurp($n->dir . '/dg.log');
like($al, qr/^population\.person masked=4$/m,
     '$datagate_masked: the 4 values withheld, not the 4 in clear')
    or diag($al);
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/,
       'error.log: no alert, crit, emerg');

done_testing();
