# The provenance index (datagate_trace) and `datagate trace`: three
# consumers read overlapping records of a dataset with trace: [id_card,
# serial]; id_card is pseudonymised per consumer (mask hash), serial goes
# in clear.  A leak built from one consumer's answers (50 records,
# shuffled, as CSV with other columns, or as JSON lines with the other
# fields only) names that consumer first with every leaked value; a
# consumer that received some of the same records in clear is named
# after it with fewer (only the clear serials match); a consumer that
# received none is not named.  The index is written at the worker's exit
# and after "nginx -s reopen" goes to the new file; nginx -t refuses the
# index without datagate_secret and a bad trace list with file and line.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use List::Util qw(shuffle);
use DGTest qw(:DEFAULT $CLI);

my $policy = <<'Y';
classes:
  person.id_number: {level: 3, mask: hash}
purposes:
  social-assistance: {name: assistance}
consumers:
  - id: civil-affairs.assistance
    org: Civil Affairs
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
  - id: hrss.portal
    org: HRSS
    cert: {san: "DNS:hrss.gx.gov.cn"}
    clearance: 2
  - id: housing.office
    org: Housing
    cert: {subject: "CN=housing,O=Housing,C=CN"}
    clearance: 2
datasets:
  - id: population.person
    share: conditional
    level: 3
    fields: {id_card: person.id_number}
    trace: [id_card, serial]
grants:
  - consumer: civil-affairs.assistance
    dataset: population.person
    purposes: [social-assistance]
  - consumer: hrss.portal
    dataset: population.person
    purposes: [social-assistance]
  - consumer: housing.office
    dataset: population.person
    purposes: [social-assistance]
Y

my $dir = DGTest::base_dir();
my $secret = "$dir/trace.secret";
DGTest::spew($secret, "trace-test-secret-0123456789abcdef0123456789\n",
             0600);

sub gw {
    my (%o) = @_;
    my $n = DGTest::Nginx->new(
        policy      => $o{policy} // $policy,
        http_config => ($o{nosecret} ? '' : "datagate_secret $secret;\n")
                       . "    datagate_trace $o{index};\n",
        config      => <<'C');
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
C
    return $n;
}

sub rec {
    my ($i) = @_;
    return sprintf('{"serial":"S%05d","id_card":"45010319900101%04d",'
                   . '"name":"P%d","age":%d}', $i, $i, $i, 20 + $i % 50);
}

sub page {
    my ($n, $name, $from, $to) = @_;
    DGTest::spew($n->dir . "/html/person/$name.json",
                 '{"data":[' . join(',', map { rec($_) } $from .. $to)
                 . '],"total":' . ($to - $from + 1) . '}');
}

my %cert = (assistance => 'assistance', hrss => 'hrss',
            housing => 'housing');

sub cli {
    my ($rc, $text) = run_cmd($CLI, 'trace', @_);
    return { rc => $rc, out => $text, err => $text };
}

sub call {
    my ($n, $who, $page) = @_;
    my $r = $n->request(GET => "/person/$page.json", cert => $cert{$who},
                        headers => ['Data-Purpose: social-assistance']);
    is($r->status, 200, "$who reads $page") or diag($r->body);
    my $j = eval { $r->json } // {};
    return @{ $j->{data} // [] };
}

my $index = "$dir/trace.idx";
unlink $index, "$index.1";

my $n = gw(index => $index);
$n->start;
page($n, 'p1', 1, 30);
page($n, 'p2', 31, 60);
page($n, 'p3', 61, 90);

# assistance: 1..60; hrss: 31..60 (overlapping); housing: 61..90
my @got = (call($n, 'assistance', 'p1'), call($n, 'assistance', 'p2'));
my @hrss = call($n, 'hrss', 'p2');
call($n, 'housing', 'p3');

is(scalar @got, 60, 'assistance received 60 records');
isnt($got[0]{id_card}, '450103199001010001', 'id_card is pseudonymised');
my %hrss_id = map { $_->{serial} => $_->{id_card} } @hrss;
isnt($hrss_id{S00031}, (grep { $_->{serial} eq 'S00031' } @got)[0]{id_card},
     'another consumer, another pseudonym');

$n->stop;                                   # the worker writes at exit

my $size = -s $index // 0;
ok($size > 0, "the index was written ($size bytes)");
# 4 answers, 240 values: 8 bytes each and a block header per answer
ok($size <= 240 * 8 + 4 * (11 + 24),
   "8 bytes per identifying value and one header per answer ($size)");
is(substr(DGTest::slurp($index), 0, 4), 'DGT1', 'blocks start DGT1');

# a leak: 50 of assistance's records (both of its answers), shuffled,
# as CSV with more columns than were sent
my @leak = (shuffle(@got))[0 .. 49];
my $csv = "$dir/leak.csv";
{
    my $t = "name,id_card,age,serial,source\n";
    $t .= join(',', $_->{name}, $_->{id_card}, $_->{age}, $_->{serial},
               'forum') . "\n" for shuffle(@leak);
    DGTest::spew($csv, $t);
}
my $overlap = grep { substr($_->{serial}, 1) > 30 } @leak;

my $out = cli($csv, '--index', $index, '--secret',
                  $secret, '--policy', $n->policy_file);
is($out->{rc}, 0, 'trace: exit 0') or diag($out->{err});
my @rows = grep { /^\d+\s/ } split /\n/, $out->{out};
like($rows[0] // '', qr/^1\s+civil-affairs\.assistance\s+Civil Affairs\s+100\/100\s/,
     'the consumer whose answers leaked comes first, with all 100 values')
    or diag($out->{out});
if ($overlap) {
    like($rows[1] // '', qr/^2\s+hrss\.portal\s+HRSS\s+$overlap\/100\s/,
         "the consumer that received $overlap of the records in clear: "
         . 'second, its serials only') or diag($out->{out});
}
unlike($out->{out}, qr/housing/, 'a consumer that received none is not named');

# the same leak as JSON lines with only its id_card (pseudonyms: they name
# the consumer alone), a subset, named with --field
my $jl = "$dir/leak.jsonl";
DGTest::spew($jl, join('', map { qq({"pid":"$_->{id_card}","x":1}\n) }
                                (shuffle(@leak))[0 .. 19]));
$out = cli($jl, '--index', $index, '--key', $secret,
               '--field', 'pid');
my @r2 = grep { /^\d+\s/ } split /\n/, $out->{out};
is(scalar @r2, 1, 'pseudonyms: one consumer named') or diag($out->{out});
like($r2[0] // '', qr/^1\s+civil-affairs\.assistance\s+-\s+20\/20\s/,
     'pseudonyms: that consumer, 20 of 20');

# every value of the leak, no names: the same answer
$out = cli($jl, '--index', $index, '--secret', $secret);
like($out->{out}, qr/^1\s+civil-affairs\.assistance\s/m,
     'without field names: every value looked up, same consumer');

# another secret: nothing matches
my $other = "$dir/other.secret";
DGTest::spew($other, "another-secret-0123456789abcdef0123456789abcd\n", 0600);
$out = cli($csv, '--index', $index, '--secret', $other,
               '--policy', $n->policy_file);
is($out->{rc}, 1, 'another secret: nobody named (exit 1)');
like($out->{out}, qr/no consumer received/, 'another secret: says so');

# a record nobody received
DGTest::spew("$dir/none.csv", "serial\nS99999\nS99998\n");
$out = cli("$dir/none.csv", '--index', $index,
               '--secret', $secret, '--field', 'serial');
is($out->{rc}, 1, 'values nobody received: exit 1');

# a damaged index is an error, not a silent answer
DGTest::spew("$dir/bad.idx", "XXXX" . ("\0" x 40));
$out = cli($csv, '--index', "$dir/bad.idx", '--secret',
               $secret);
is($out->{rc}, 3, 'a damaged index: exit 3');
like($out->{err}, qr/not a trace index block at offset 0/, 'says where');

# a block cut short at the end (a crash in the middle of a write): the
# whole blocks before it are read, a warning says so
{
    my $cut = "$dir/cut.idx";
    my $whole = DGTest::slurp($index);
    DGTest::spew($cut, $whole . substr($whole, 0, 30));
    $out = cli($csv, '--index', $cut, '--secret', $secret, '--policy',
               $n->policy_file);
    is($out->{rc}, 0, 'a block cut short at the end: still read');
    like($out->{out}, qr/30 bytes at its end are not a whole block/,
         'a block cut short: a warning');
    like($out->{out}, qr/^1\s+civil-affairs\.assistance\s/m,
         'a block cut short: the same consumer first');
}

# nginx -s reopen: the worker writes to the new file after it
{
    my $n2 = gw(index => $index);
    $n2->start;
    page($n2, 'p3', 61, 90);
    rename $index, "$index.1" or die;
    my $before = -s "$index.1";
    kill 'USR1', $n2->{pid};
    sleep 1;
    call($n2, 'housing', 'p3');
    $n2->stop;
    ok(-s $index, 'after reopen: a new index file');
    is(-s "$index.1", $before, 'after reopen: the old file unchanged');
    $out = cli($csv, '--index', "$index.1", '--index',
                   $index, '--secret', $secret, '--field', 'serial');
    like($out->{out}, qr/^1\s+civil-affairs\.assistance\s/m,
         'rotated files read together');
}

# nginx -t
{
    my $bad = gw(index => "$dir/x.idx", nosecret => 1);
    my ($rc, $err) = $bad->test_conf;
    my $t = { rc => $rc, err => $err };
    isnt($t->{rc}, 0, 'datagate_trace without datagate_secret: nginx -t fails');
    like($t->{err}, qr/"datagate_trace" in \S+nginx\.conf:\d+ needs "datagate_secret"/,
         'says where and why');

    (my $p2 = $policy) =~ s/trace: \[id_card, serial\]/trace: [id_card, id_card]/;
    $bad = gw(index => "$dir/x.idx", policy => $p2);
    ($rc, $err) = $bad->test_conf;
    $t = { rc => $rc, err => $err };
    isnt($t->{rc}, 0, 'a field named twice: nginx -t fails');
    like($t->{err}, qr/policy\.yaml:\d+.*trace.*'id_card' is named twice/,
         'file, line and the field');

    ($p2 = $policy) =~ s/trace: \[id_card, serial\]/trace: []/;
    $bad = gw(index => "$dir/x.idx", policy => $p2);
    ($rc, $err) = $bad->test_conf;
    $t = { rc => $rc, err => $err };
    like($t->{err}, qr/policy\.yaml:\d+.*trace.*an empty list/,
         'an empty trace list: file, line');
}

done_testing();
