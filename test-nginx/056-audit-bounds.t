# Audit records keep their decision whatever a client sends.
#
# Every client-controlled string of a record (method, URI, Data-Purpose,
# Data-Approval, ...) is bounded after JSON escaping; a value over its
# bound is cut at a character boundary, ends with "…" and is named in
# "truncated".  A 2,500-byte method, kilobytes of %FF or raw 0xFF bytes in
# the query (six bytes each once escaped), control bytes in Data-Approval,
# multi-byte UTF-8 cut at the bound: "decision", "reason", "status",
# "bytes" and "masked" are always written, the line stays one JSON object
# within 16 KiB, and the chain verifies.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Encode ();
use Time::HiRes qw(sleep time);
use DGTest qw(:DEFAULT $CLI);

my $policy = <<'YAML';
levels: {1: 公开, 2: 内部, 3: 敏感, 4: 高敏感}
classes:
  person.id_number: {level: 4, mask: id_card}
  person.name:      {level: 3, mask: name}
  person.phone:     {level: 3, mask: phone}
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
    fields: {id_card: person.id_number, name: person.name, phone: person.phone}
grants:
  - consumer: civil-affairs.assistance
    dataset: population.person
    purposes: [social-assistance]
    valid: {from: 2024-01-01, until: 2099-12-31}
YAML

my $MARK = "\x{2026}";
my $RECORD_MAX = 16384;

my $n = DGTest::Nginx->new(policy => $policy);
my $audit = $n->dir . '/audit.log';
$n->{http_config} = "datagate_audit_log $audit;"
    . " large_client_header_buffers 4 32k;";
my $up = $n->upstream_port;
$n->{config} = <<"EOF";
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$up;
        }
EOF
$n->start;

sub lines_of {
    open my $fh, '<:raw', $audit or return ();
    return <$fh>;
}

my $seen = 0;

# send, then the record it left: (response, line, decoded record)
sub call {
    my ($method, $uri, @h) = @_;
    my $r = $n->request($method, $uri, cert => 'assistance',
                        headers => [@h]);
    my $until = time + DGTest::secs(5);
    my @l;
    sleep 0.02 while (@l = lines_of()) <= $seen && time < $until;
    $seen = @l;
    my $line = $l[-1] // '';
    return ($r, $line, eval { json_decode($line) });
}

sub decision_kept {
    my ($what, $line, $rec, $status, $reason) = @_;
    ok($rec, "$what: the record is one JSON object") or diag($line);
    $rec //= {};
    cmp_ok(length($line), "<=", $RECORD_MAX, "$what: within 16 KiB");
    is($rec->{decision}, $reason eq 'ok' ? 'allowed' : 'denied',
       "$what: decision");
    is($rec->{reason}, $reason, "$what: reason");
    is($rec->{status}, $status, "$what: status");
    ok(defined $rec->{bytes} && $rec->{bytes} > 0, "$what: bytes");
    is(ref $rec->{masked}, 'HASH', "$what: masked");
    like($line, qr/,"hash":"[0-9a-f]{64}"\}\n\z/, "$what: hash last, one line");
}

sub cut_ok {
    my ($what, $rec, $field, $max) = @_;
    my $v = $rec->{$field} // '';
    like($v, qr/\Q$MARK\E\z/, "$what: $field ends with the marker");
    my $bytes = length(Encode::encode_utf8(
        JSON::PP->new->allow_nonref->ascii(0)->encode($v))) - 2;
    cmp_ok($bytes, '<=', $max, "$what: $field within $max bytes escaped");
    ok((grep { $_ eq $field } @{ $rec->{truncated} // [] }),
       "$what: truncated names $field");
}

my $purpose = 'Data-Purpose: social-assistance';


# the attack of the report: an allowed call, its query full of %FF and raw
# 0xFF bytes, control bytes in Data-Approval
{
    my $q = '%FF' x 700;
    my $raw = "\xff" x 3000;
    my $ctl = join '', map { chr(1 + $_ % 8) } 1 .. 3000;
    my ($r, $line, $rec) = call('GET', "/person/1?q=$q&r=$raw", $purpose,
                                "Data-Approval: $ctl");
    is($r->status, 200, 'attack: the call is allowed');
    decision_kept('attack', $line, $rec, 200, 'ok');
    is_deeply($rec->{masked}, { 'person.id_number' => 1, 'person.name' => 2,
                                'person.phone' => 2 },
              'attack: masked counts intact');
    cut_ok('attack', $rec, 'uri', 4096);
    like($rec->{uri}, qr/^\/person\/1\?q=(%FF){700}&r=\x{fffd}+\Q$MARK\E\z/,
         'attack: the URI as sent up to the cut, invalid bytes as U+FFFD');
    cut_ok('attack', $rec, 'approval', 256);
    like($rec->{approval}, qr/^\x02\x03\x04/, 'attack: control bytes kept, escaped');
    unlike(substr($line, 0, -1), qr/[\x00-\x1f]/,
           'attack: no raw control byte in the line');
    is($rec->{purpose}, 'social-assistance', 'attack: purpose whole');
}

# a 2,500-byte method
{
    my ($r, $line, $rec) = call('A' x 2500, '/person/1', $purpose);
    ok($r->status == 403 || $r->status == 400,
       'long method: refused (' . $r->status . ')');
    decision_kept('long method', $line, $rec, $r->status,
                  $r->status == 403 ? 'method_not_granted'
                                    : 'request_rejected');
    cut_ok('long method', $rec, 'method', 64);
    like($rec->{method}, qr/^A{61}\Q$MARK\E\z/, 'long method: 61 bytes and the marker');
}

# all of it at once, and a purpose nobody knows
{
    my $ctl = "\x01" x 4000;
    my ($r, $line, $rec) = call('B' x 2500, '/person/1?' . ("\xff" x 5000),
                                "Data-Purpose: $ctl", "Data-Approval: $ctl",
                                'Datagate-Request-Id: ' . ('x' x 5000));
    ok($r->status >= 400, 'everything: refused');
    decision_kept('everything', $line, $rec, $r->status, $rec->{reason} // '');
    ok($rec->{reason} =~ /^(method_not_granted|purpose_unknown|request_rejected)$/,
       "everything: a reason ($rec->{reason})");
    cut_ok('everything', $rec, $_, $_ eq 'uri' ? 4096 : $_ eq 'method' ? 64 : 256)
        for qw(method uri purpose approval);
    like($rec->{request_id}, qr/^[0-9a-f]{32}$/,
         'everything: an invalid request id is replaced, not recorded');
}

# UTF-8 is never cut inside a character
{
    my $zh = Encode::encode_utf8('张' x 2000);      # 6000 bytes
    my $emoji = Encode::encode_utf8("x" . ("\x{1F600}" x 100));
    my ($r, $line, $rec) = call('GET', "/person/2?n=$zh", $purpose,
                                "Data-Approval: $emoji");
    is($r->status, 200, 'UTF-8: allowed');
    decision_kept('UTF-8', $line, $rec, 200, 'ok');
    cut_ok('UTF-8', $rec, 'uri', 4096);
    like($rec->{uri}, qr/^\/person\/2\?n=张+\Q$MARK\E\z/,
         'UTF-8: whole characters, then the marker');
    unlike($line, qr/\\ufffd/, 'UTF-8: no character broken into U+FFFD');
    cut_ok('UTF-8', $rec, 'approval', 256);
    like($rec->{approval}, qr/^x\x{1F600}+\Q$MARK\E\z/,
         'UTF-8: 4-byte characters whole');
}

# ordinary values are untouched
{
    my ($r, $line, $rec) = call('GET', '/person/3?page=2&q=%E5%BC%A0',
                                $purpose, Encode::encode_utf8(
                                    'Data-Approval: 桂政审〔2024〕137号'));
    is($r->status, 200, 'ordinary: allowed');
    decision_kept('ordinary', $line, $rec, 200, 'ok');
    is($rec->{uri}, '/person/3?page=2&q=%E5%BC%A0', 'ordinary: uri whole');
    is($rec->{approval}, '桂政审〔2024〕137号', 'ordinary: approval whole');
    ok(!exists $rec->{truncated}, 'ordinary: nothing truncated');
}

my ($rc, $out) = run_cmd($CLI, 'audit', 'verify', $audit);
is($rc, 0, 'the chain of all these records verifies') or diag($out);

$n->stop;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit or emerg');

done_testing();
