# Statistics (datagate_status): counters by consumer x dataset x purpose x
# decision/reason in the shared zone, equal to the requests sent across two
# workers; masked fields per class; JSON and Prometheus text; the version
# is the one `datagate --version` prints; counters survive a reload.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep time);
use DGTest;

my $policy = <<'YAML';
levels: {1: 公开, 2: 内部, 3: 敏感, 4: 高敏感}
classes:
  person.id_number: {level: 4, mask: id_card}
  person.name:      {level: 3, mask: name}
  person.phone:     {level: 3, mask: phone}
  org.uscc:         {level: 1, mask: "keep(8,2)"}
purposes:
  social-assistance: {name: 社会救助资格核验}
  market-regulation: {name: 市场主体监管}
consumers:
  - id: civil-affairs.assistance
    org: 自治区民政厅
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
  - id: market.supervision
    org: 自治区市场监督管理局
    cert: {subject: "CN=market-supervision,O=Market Supervision,C=CN"}
    clearance: 2
datasets:
  - id: population.person
    name: 人口基础信息
    provider: 自治区公安厅
    share: conditional
    level: 3
    fields: {id_card: person.id_number, name: person.name, phone: person.phone}
  - id: enterprise.registration
    name: 企业登记信息
    provider: 自治区市场监督管理局
    share: unconditional
    level: 2
    fields: {legal_rep: person.name, legal_rep_id: person.id_number,
             phone: person.phone}
  - id: notes.free
    name: 自由备注
    provider: 测试
    share: unconditional
    level: 1
    fields: {name: person.name}
    detect: on
grants:
  - consumer: civil-affairs.assistance
    dataset: population.person
    purposes: [social-assistance]
    valid: {from: 2024-01-01, until: 2099-12-31}
    rate: 2r/s burst=1
YAML

my $n = DGTest::Nginx->new(policy => $policy, workers => 2);
my $up = $n->upstream_port;
my $audit = $n->dir . '/audit.log';
$n->{http_config} = "datagate_audit_log $audit;";
$n->{config} = <<"EOF";
        location /person/ {
            datagate on;
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$up;
        }
        location /enterprise/ {
            datagate on;
            datagate_dataset enterprise.registration;
            proxy_pass http://127.0.0.1:$up;
        }
        location /notes/ {
            datagate on;
            datagate_dataset notes.free;
            proxy_pass http://127.0.0.1:$up;
        }
        location = /status {
            datagate_status;
        }
EOF
# free text with a resident ID and a mobile number in unclassified fields
{
    my $f = $n->dir . '/html/notes/1.json';
    mkdir $n->dir . '/html/notes';
    open my $fh, '>', $f or die "$f: $!";
    print $fh '{"name":"x","note":"450103199003071242",'
            . '"contact":"13877112345","n":"12345"}';
    close $fh;
}
$n->start;

my @pa = ('Data-Purpose: social-assistance');
my @mr = ('Data-Purpose: market-regulation');

# [cert, uri, headers, times]
my @plan = (
    ['market', '/enterprise/1', \@mr, 9],               # allowed, masked
    ['market', '/enterprise/2', [], 3],                 # purpose_required
    ['market', '/enterprise/1', ['Data-Purpose: x-1'], 2],  # unknown
    ['market', '/enterprise/1', ['Data-Purpose: x-2'], 2],  # unknown
    ['unknown', '/enterprise/1', \@mr, 4],              # unknown_consumer
    ['market', '/person/1', \@mr, 2],                   # no grant
    ['market', '/notes/1', \@mr, 3],                    # detect hits
);

# several clients at once, so that both workers count
my @jobs;
for my $p (@plan) {
    push @jobs, [@$p[0 .. 2]] for 1 .. $p->[3];
}
my $clients = 4;
my @pids;
for my $c (0 .. $clients - 1) {
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        for my $i (grep { $_ % $clients == $c } 0 .. $#jobs) {
            my ($cert, $uri, $h) = @{ $jobs[$i] };
            $n->request('GET', $uri, cert => $cert, headers => $h);
        }
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
waitpid $_, 0 for @pids;

# rate limited: count the 429s we get
my ($ok, $limited) = (0, 0);
for (1 .. 6) {
    my $r = $n->request('GET', '/person/1', cert => 'assistance',
                        headers => \@pa);
    $ok++ if $r->status == 200;
    $limited++ if $r->status == 429;
}
is($ok + $limited, 6, 'granted requests: 200 or 429');

my $total = @jobs + 6;

# wait until every log phase ran (the audit log has a line per request)
my $until = time + DGTest::secs(5);
while (time < $until) {
    open my $fh, '<', $audit or last;
    my @l = <$fh>;
    last if @l >= $total;
    sleep 0.02;
}

my $res = $n->request('GET', '/status', cert => 'market');
is($res->status, 200, 'status: 200');
is($res->header('Content-Type'), 'application/json', 'status: JSON');
is($res->header('Cache-Control'), 'no-store', 'status: not cached');
my $st = $res->json;

sub req_count {
    my ($st, %l) = @_;
    my $sum = 0;
    for my $e (@{ $st->{requests} }) {
        next if grep { $e->{$_} ne $l{$_} } keys %l;
        $sum += $e->{count};
    }
    return $sum;
}

my %e = (consumer => 'market.supervision',
         dataset => 'enterprise.registration');
is(req_count($st, %e, purpose => 'market-regulation', decision => 'allowed',
             reason => 'ok'), 9, 'allowed: 9');
is(req_count($st, %e, purpose => '', decision => 'denied',
             reason => 'purpose_required'), 3, 'purpose_required: 3');
is(req_count($st, %e, purpose => '(unknown)', decision => 'denied',
             reason => 'purpose_unknown'), 4,
   'unknown purposes: one "(unknown)" label, 4');
is(req_count($st, consumer => '', reason => 'unknown_consumer'), 4,
   'unknown consumer: empty consumer label, 4');
is(req_count($st, consumer => 'market.supervision',
             dataset => 'population.person', decision => 'denied'), 2,
   'no grant: 2');
is(req_count($st, consumer => 'civil-affairs.assistance',
             reason => 'ok'), $ok, "granted: $ok allowed");
is(req_count($st, consumer => 'civil-affairs.assistance',
             reason => 'rate_limited'), $limited, "rate limited: $limited");
is($st->{totals}{requests}, $total, "totals: all $total requests");
is($st->{totals}{allowed}, 12 + $ok, 'totals: allowed');
is($st->{totals}{denied}, $total - 12 - $ok, 'totals: denied');
my %det = map { ("$_->{dataset}|$_->{kind}" => $_->{count}) }
          @{ $st->{detect} };
is_deeply(\%det, { 'notes.free|id_number' => 3, 'notes.free|mobile' => 3 },
          'detect hits per dataset x kind') or diag(explain($st->{detect}));
is($st->{totals}{rate_limited}, $limited, 'totals: rate limited');
{
    # written at the latest flush= (100ms) after they are sealed
    my $a = $st->{audit};
    my $until = time + DGTest::secs(5);
    while (time < $until && $a->{seq} < $total) {
        sleep 0.05;
        $a = $n->request('GET', '/status', cert => 'market')->json->{audit};
    }
    is($a->{seq}, $total, 'audit: one record per request');
}
is($st->{counters}{overflow_requests}, 0, 'no overflow');

# masked counts equal what the audit records say
my %masked;
my $notes;
{
    open my $fh, '<', $audit or die;
    while (<$fh>) {
        my $r = json_decode($_);
        $notes = $r if $r->{dataset} eq 'notes.free';
        $masked{"$r->{dataset}|$_"} += $r->{masked}{$_}
            for keys %{ $r->{masked} };
    }
}
my %got = map { ("$_->{dataset}|$_->{class}" => $_->{count}) }
          @{ $st->{masked} };
is_deeply(\%got, \%masked, 'masked per dataset x class = audit records')
    or diag(explain(\%got), explain(\%masked));
is_deeply($notes->{detected}, { id_number => 1, mobile => 1 },
          'audit record: detector hits per kind');
cmp_ok($notes->{unlisted} // 0, '>=', 3, 'audit record: unlisted keys');
cmp_ok($got{'enterprise.registration|person.id_number'} // 0, '>=', 9,
       'masked: the legal representative id of 9 answers');
my $bytes = 0;
$bytes += $_->{bytes} for @{ $st->{requests} };
is($st->{totals}{bytes}, $bytes, 'bytes add up');

# --- Prometheus -----------------------------------------------------------------

$res = $n->request('GET', '/status?format=prometheus', cert => 'market');
is($res->status, 200, 'prometheus: 200');
is($res->header('Content-Type'), 'text/plain; version=0.0.4',
   'prometheus: content type');
my $p = $res->body;
my @bad = grep {
    !/^# (HELP|TYPE) [a-z_]+ .+$/
    && !/^[a-z_]+(\{[a-z_]+="(?:[^"\\\n]|\\.)*"(,[a-z_]+="(?:[^"\\\n]|\\.)*")*\})? \d+$/
} split /\n/, $p;
is(scalar @bad, 0, 'prometheus: every line is valid exposition text')
    or diag(join "\n", @bad);
like($p, qr/^# TYPE datagate_requests_total counter$/m, 'TYPE line');
like($p, qr/^datagate_requests_total\{consumer="market.supervision",dataset="enterprise.registration",purpose="market-regulation",decision="allowed",reason="ok"\} 9$/m,
     'requests_total sample');
like($p, qr/^datagate_requests_total\{consumer="",dataset="enterprise.registration",purpose="market-regulation",decision="denied",reason="unknown_consumer"\} 4$/m,
     'empty label value');
like($p, qr/^datagate_masked_fields_total\{dataset="enterprise.registration",class="person.id_number"\} \d+$/m,
     'masked_fields_total sample');
like($p, qr/^datagate_response_bytes_total\{consumer="market.supervision",.*\} \d+$/m,
     'response_bytes_total');
like($p, qr/^datagate_rate_limited_total $limited$/m, 'rate_limited_total');
like($p, qr/^datagate_detect_hits_total\{dataset="notes.free",kind="id_number"\} 3$/m,
     'detect_hits_total');
like($p, qr/^datagate_unlisted_keys_total\{dataset="notes.free"\} \d+$/m,
     'unlisted_keys_total');
like($p, qr/^datagate_audit_write_failures_total 0$/m, 'audit failures');
like($p, qr/^datagate_audit_records_total $total$/m, 'audit records');
like($p, qr/^datagate_redis_up 0$/m, 'redis_up');
my $sum = 0;
$sum += $1 while $p =~ /^datagate_requests_total\{.*\} (\d+)$/mg;
is($sum, $total, 'prometheus: requests add up');

# --- one version: the module's, the command-line tool's, the header's ------------

my ($hversion) = DGTest::slurp("$DGTest::TOP/module/core/dg_version.h")
                 =~ /^#define DG_VERSION\s+"([^"]+)"$/m;
like($hversion // '', qr/^\d+\.\d+\.\d+/, 'dg_version.h: DG_VERSION');
my ($vrc, $vout) = run_cmd($DGTest::CLI, '--version');
is($vrc, 0, 'datagate --version: exit 0');
my ($cversion) = $vout =~ /\Adatagate (\S+)\n\z/;
is($cversion, $hversion, 'datagate --version: "datagate VERSION"')
    or diag($vout);
is($st->{datagate_version}, $cversion,
   'status JSON: datagate_version is what datagate --version prints');
like($st->{nginx_version} // '', qr/^\d+\.\d+\.\d+$/,
     'status JSON: nginx_version');
like($p, qr/^datagate_build_info\{version="\Q$cversion\E",nginx_version="\Q$st->{nginx_version}\E"\} 1$/m,
     'prometheus: datagate_build_info with the same versions');
like($p, qr/^# TYPE datagate_build_info gauge$/m, 'prometheus: build_info TYPE');

is($n->request('GET', '/status?format=xml', cert => 'market')->status, 400,
   'unknown format: 400');
is($n->request('POST', '/status', cert => 'market', body => 'x')->status,
   405, 'POST: 405');
is($n->request('HEAD', '/status', cert => 'market')->status, 200,
   'HEAD: 200');

# --- the counters survive a reload ------------------------------------------------

ok($n->reload, 'reload');
$n->request('GET', '/enterprise/1', cert => 'market', headers => \@mr);
$until = time + DGTest::secs(5);
my $st2;
while (time < $until) {
    $st2 = $n->request('GET', '/status', cert => 'market')->json;
    last if $st2->{totals}{requests} > $total;
    sleep 0.02;
}
is($st2->{totals}{requests}, $total + 1, 'reload: counters kept and counting');
is(req_count($st2, %e, purpose => 'market-regulation', decision => 'allowed',
             reason => 'ok'), 10, 'reload: allowed 10');
# records are written at the latest flush= (100ms) after they are sealed
$until = time + DGTest::secs(5);
while (time < $until && $st2->{audit}{seq} < $total + 1) {
    sleep 0.05;
    $st2 = $n->request('GET', '/status', cert => 'market')->json;
}
is($st2->{audit}{seq}, $total + 1, 'reload: the audit chains continue');

$n->stop;
my $log = $n->error_log;
unlike($log, qr/\[(alert|crit|emerg)\]/, 'error.log: no alert, crit, emerg')
    or diag(join "\n", grep { /\[(alert|crit|emerg)\]/ } split /\n/, $log);

my ($rc, $out) = run_cmd($DGTest::CLI, 'audit', 'verify', $audit);
is($rc, 0, 'the audit log verifies after the reload') or diag($out);

done_testing();
