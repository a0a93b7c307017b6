# The hash-chained audit trail: one record per request, allowed or denied,
# with the members of docs/audit.md; the chain checked by `datagate audit
# verify`, which catches an edited, removed, inserted and reordered record
# at the right line; rotation (nginx -s reopen) links the files; a restart
# continues the chain (a torn last line counted as one lost record); SM3;
# two workers write one unbroken chain; a failing disk is counted, logged
# once and refuses what follows.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
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
  market-regulation: {name: 市场主体监管}
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
  - id: tax.secret
    name: 涉密税收数据
    provider: 税务局
    share: none
    level: 4
grants:
  - consumer: civil-affairs.assistance
    dataset: population.person
    purposes: [social-assistance]
    approval: GXSJ-2024-0137
    valid: {from: 2024-01-01, until: 2099-12-31}
    methods: [GET]
YAML

sub config {
    my ($up) = @_;
    return <<"EOF";
        location /person/ {
            datagate on;
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$up;
        }
        location /tax/ {
            datagate on;
            datagate_dataset tax.secret;
            proxy_pass http://127.0.0.1:$up;
        }
        location = /status {
            datagate_status;
        }
        location /plain/ {
            proxy_pass http://127.0.0.1:$up/person/;
        }
EOF
}

sub new_gateway {
    my (%o) = @_;
    my $hash = delete $o{hash} // '';
    my $n = DGTest::Nginx->new(policy => $policy, %o);
    my $file = $o{audit} // $n->dir . '/audit.log';
    $n->{http_config} = "datagate_audit_log $file $hash;";
    $n->{config} = config($n->upstream_port);
    return ($n, $file);
}

sub lines_of {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return ();
    my @l = <$fh>;
    return @l;
}

sub write_lines {
    my ($f, @l) = @_;
    open my $fh, '>:raw', $f or die "$f: $!";
    print $fh @l;
    close $fh;
}

sub verify {
    return run_cmd($CLI, 'audit', 'verify', @_);
}

sub wait_lines {
    my ($f, $want) = @_;
    my $until = time + DGTest::secs(5);
    while (time < $until) {
        return 1 if lines_of($f) >= $want;
        sleep 0.02;
    }
    return 0;
}

sub log_clean {
    my ($n, $name) = @_;
    my $log = $n->error_log;
    unlike($log, qr/\[(alert|crit|emerg)\]/, "$name: error.log has no "
           . "alert, crit or emerg")
        or diag(join "\n", grep { /\[(alert|crit|emerg)\]/ } split /\n/, $log);
}

my $apr = 'Data-Approval: GXSJ-2024-0137';


# --- records for allowed and denied requests --------------------------------

my ($n, $audit) = new_gateway();
$n->start;

# [title, cert, uri, headers, status, reason]
my @calls = (
    ['allowed', 'assistance', '/person/1',
     ['Data-Purpose: social-assistance', $apr,
      'Datagate-Request-Id: 0123456789abcdef0123456789abcdef'],
     200, 'ok'],
    ['no purpose', 'assistance', '/person/1', [], 403, 'purpose_required'],
    ['unknown purpose', 'assistance', '/person/2?x="y"',
     ["Data-Purpose: bogus\"\\\x01purpose", $apr], 403, 'purpose_unknown'],
    ['not granted', 'assistance', '/person/1',
     ['Data-Purpose: market-regulation'], 403, 'purpose_not_granted'],
    ['no approval', 'assistance', '/person/1',
     ['Data-Purpose: social-assistance'], 403, 'approval_required'],
    ['unknown consumer', 'unknown', '/person/1',
     ['Data-Purpose: social-assistance'], 403, 'unknown_consumer'],
    ['never shared', 'assistance', '/tax/1',
     ['Data-Purpose: social-assistance'], 403, 'dataset_not_shared'],
    ['method not granted', 'assistance', '/person/1',
     ['Data-Purpose: social-assistance', $apr], 403, 'method_not_granted',
     'DELETE'],
);

for my $c (@calls) {
    my ($title, $cert, $uri, $hdrs, $status, undef, $method) = @$c;
    my $r = $n->request($method // 'GET', $uri, cert => $cert,
                        headers => $hdrs);
    is($r->status, $status, "$title: $status")
        or diag(substr($r->body, 0, 300));
}

# not enforced: no record
$n->request('GET', '/plain/1', cert => 'assistance');
$n->request('GET', '/status', cert => 'assistance');

ok(wait_lines($audit, scalar @calls), 'a record per enforced request');
my @lines = lines_of($audit);
is(scalar @lines, scalar @calls, 'no record for other locations')
    or diag(join '', @lines);

my @rec = map { eval { json_decode($_) } } @lines;
is(scalar @rec, scalar @lines, 'every line is JSON');

for my $i (0 .. $#calls) {
    my ($title, $cert, $uri, $hdrs, $status, $reason, $method) = @{ $calls[$i] };
    my $r = $rec[$i] or next;
    is($r->{seq}, $i + 1, "$title: seq");
    is($r->{reason}, $reason, "$title: reason");
    is($r->{decision}, $reason eq 'ok' ? 'allowed' : 'denied',
       "$title: decision");
    is($r->{status}, $status, "$title: status");
    is($r->{method}, $method // 'GET', "$title: method");
    is($r->{uri}, $uri, "$title: uri");
    like($r->{time}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$/,
         "$title: ISO 8601 time with ms");
    like($r->{request_id}, qr/^[0-9A-Za-z._-]{8,}$/, "$title: request_id");
    is($r->{client}, '127.0.0.1', "$title: client");
    is($r->{dataset}, $uri =~ /tax/ ? 'tax.secret' : 'population.person',
       "$title: dataset");
    is($r->{level}, $uri =~ /tax/ ? 4 : 3, "$title: level");
    like($r->{duration_ms}, qr/^\d+$/, "$title: duration_ms");
    is($r->{alg}, 'sha256', "$title: alg");
    like($r->{hash}, qr/^[0-9a-f]{64}$/, "$title: hash");
    is($r->{prev}, $i ? $rec[$i - 1]{hash} : '0' x 64, "$title: prev links");
    ok(exists $r->{$_}, "$title: has $_")
        for qw(cert_serial country purpose approval bytes masked policy);
    like($lines[$i], qr/,"hash":"[0-9a-f]{64}"\}\n\z/, "$title: hash last");
}

my $ci = cert_info('assistance');
is($rec[0]{consumer}, 'civil-affairs.assistance', 'allowed: consumer');
is($rec[0]{cert_serial}, $ci->{serial}, 'allowed: certificate serial');
is($rec[0]{purpose}, 'social-assistance', 'allowed: purpose');
is($rec[0]{approval}, 'GXSJ-2024-0137', 'allowed: approval');
is($rec[0]{request_id}, '0123456789abcdef0123456789abcdef',
   'allowed: the caller\'s request id');
cmp_ok($rec[0]{bytes}, '>', 100, 'allowed: body bytes');
# person/1.json: id_card; name and phone, and those of its emergency_contact
is_deeply($rec[0]{masked}, { 'person.id_number' => 1, 'person.name' => 2,
                             'person.phone' => 2 },
          'allowed: masked fields per class')
    or diag($lines[0]);
is($rec[1]{purpose}, undef, 'no purpose: null');
is($rec[1]{bytes} > 0, 1, 'denied: error body bytes');
is_deeply($rec[1]{masked}, {}, 'denied: nothing masked');
is($rec[2]{purpose}, "bogus\"\\\x01purpose",
   'client purpose escaped and read back exactly');
like($lines[2], qr/"purpose":"bogus\\"\\\\\\u0001purpose"/,
     'JSON escapes in the line');
is($rec[5]{consumer}, undef, 'unknown consumer: null');
is($rec[5]{cert_serial}, cert_info('unknown')->{serial},
   'unknown consumer: its certificate serial is kept');
is($rec[6]{dataset}, 'tax.secret', 'not shared: dataset');

# the variables and the record agree on the request id
my $r = $n->request('GET', '/person/3', cert => 'assistance',
                    headers => ['Data-Purpose: social-assistance', $apr]);
ok(wait_lines($audit, @calls + 1), 'one more record');
my $last = json_decode((lines_of($audit))[-1]);
is($last->{status}, 200, 'status in the record');
my $status = $n->request('GET', '/status', cert => 'assistance')->json;
is($status->{audit}{seq}, scalar(@calls) + 1, 'status: audit seq');
is($status->{audit}{last_hash}, $last->{hash}, 'status: live head');

# --- verify -------------------------------------------------------------------

my ($rc, $out) = verify($audit);
is($rc, 0, 'verify: intact chain, exit 0') or diag($out);
like($out, qr/^ok: 1 file, 9 records, seq 1\.\.9/m, 'verify: summary');

($rc, $out) = verify('--head', $last->{hash}, $audit);
is($rc, 0, 'verify --head: the live head matches') or diag($out);

my $d = $n->dir;
@lines = lines_of($audit);

# edited: a denial turned into an allowance
my @e = @lines;
$e[3] =~ s/"decision":"denied"/"decision":"allowed"/ or die;
write_lines("$d/edited.log", @e);
($rc, $out) = verify("$d/edited.log");
is($rc, 1, 'edited: exit 1');
like($out, qr/^\Q$d\E\/edited\.log:4: chain \S+: record edited: seq 4 /m,
     'edited: line 4 reported') or diag($out);

# deleted
my @x = @lines;
splice @x, 4, 1;
write_lines("$d/deleted.log", @x);
($rc, $out) = verify("$d/deleted.log");
is($rc, 1, 'deleted: exit 1');
like($out, qr/deleted\.log:5: chain \S+: record\(s\) missing before this line: seq 6 follows seq 4.*removed/,
     'deleted: line 5 reported, removed') or diag($out);

# inserted: a copy of a record
@x = @lines;
splice @x, 2, 0, $lines[1];
write_lines("$d/inserted.log", @x);
($rc, $out) = verify("$d/inserted.log");
is($rc, 1, 'inserted: exit 1');
like($out, qr/inserted\.log:3: chain \S+: record inserted: a copy of seq 2 \(line 2\)/,
     'inserted: line 3 reported') or diag($out);

# reordered
@x = @lines;
@x[5, 6] = @x[6, 5];
write_lines("$d/reordered.log", @x);
($rc, $out) = verify("$d/reordered.log");
is($rc, 1, 'reordered: exit 1');
like($out, qr/reordered\.log:6: .*seq 7 follows seq 5.*seq 6 is at \S+reordered\.log:7: records reordered/,
     'reordered: line 6 reported, the missing record found at line 7')
    or diag($out);

# edited and re-hashed: caught at the next record
{
    @x = @lines;
    my $l = $x[2];
    chomp $l;
    $l =~ s/,"hash":"[0-9a-f]{64}"\}$// or die;
    $l =~ s/"status":403/"status":200/ or die;
    my ($prev) = $l =~ /"prev":"([0-9a-f]{64})"/;
    my $t = "$l}";
    require Digest::SHA;
    my $h = Digest::SHA::sha256_hex($prev . $t);
    $x[2] = "$l,\"hash\":\"$h\"}\n";
    write_lines("$d/rehashed.log", @x);
    ($rc, $out) = verify("$d/rehashed.log");
    is($rc, 0 + 1, 'edited and re-hashed: exit 1');
    like($out, qr/rehashed\.log:4: chain \S+: chain broken/, 'caught at line 4')
        or diag($out);

    # the same recomputation on the original proves the definition
    my $o = $lines[3];
    chomp $o;
    my ($oh) = $o =~ /,"hash":"([0-9a-f]{64})"\}$/;
    (my $ot = $o) =~ s/,"hash":"[0-9a-f]{64}"\}$/}/;
    my ($op) = $o =~ /"prev":"([0-9a-f]{64})"/;
    is(Digest::SHA::sha256_hex($op . $ot), $oh,
       'hash = SHA-256(prev || record without its hash member)');
}

# the end cut off: only the head shows it
@x = @lines;
pop @x;
write_lines("$d/cut.log", @x);
($rc, $out) = verify("$d/cut.log");
is($rc, 0, 'end cut: the chain alone holds');
($rc, $out) = verify('--head', $last->{hash}, "$d/cut.log");
is($rc, 1, 'end cut: --head catches it') or diag($out);
like($out, qr/cut\.log:8: the last record \(seq 8\) is not the given head/,
     'end cut: message');

# garbage line
@x = @lines;
$x[1] = "hello\n";
write_lines("$d/garbage.log", @x);
($rc, $out) = verify("$d/garbage.log");
is($rc, 1, 'garbage: exit 1');
like($out, qr/garbage\.log:2: not an audit record/, 'garbage: line 2');

# --- rotation ---------------------------------------------------------------

rename $audit, "$audit.1" or die;
my $reopened = sub { scalar(() = $n->error_log =~ /reopening logs/g) };
my $before = $reopened->();
my ($orc, $oout) = $n->run_nginx('-s', 'reopen');
is($orc, 0, 'nginx -s reopen') or diag($oout);
# the master, then its worker
my $until = time + DGTest::secs(5);
sleep 0.02 until $reopened->() >= $before + 2 || time > $until;
sleep 0.05 until -e $audit || time > $until;

for (1 .. 2) {
    $n->request('GET', '/person/1', cert => 'assistance',
                headers => ['Data-Purpose: social-assistance', $apr]);
}

ok(wait_lines($audit, 2), 'rotation: records in the new file');
is(scalar(lines_of("$audit.1")), 9, 'rotation: the old file is complete');
my $first = json_decode((lines_of($audit))[0]);
is($first->{seq}, 10, 'rotation: the sequence continues');
is($first->{prev}, $last->{hash},
   'rotation: the first record links to the last of the old file');
($rc, $out) = verify("$audit.1", $audit);
is($rc, 0, 'rotation: verify both files') or diag($out);
like($out, qr/ok: 2 files, 11 records/, 'rotation: summary');
($rc, $out) = verify($audit);
is($rc, 0, 'rotation: the new file alone verifies (continues an older one)');
like($out, qr/continues an older file/, 'rotation: says it continues');
($rc, $out) = verify($audit, "$audit.1");
is($rc, 1, 'rotation: files in the wrong order fail');

# --- restart: a new chain, from the last record of the file --------------------

$n->stop;
my $tail = json_decode((lines_of($audit))[-1]);
$n->start;
$n->request('GET', '/person/1', cert => 'assistance',
            headers => ['Data-Purpose: social-assistance', $apr]);
ok(wait_lines($audit, 3), 'restart: a record');
my $after = json_decode((lines_of($audit))[-1]);
isnt($after->{chain}, $tail->{chain}, 'restart: a new chain');
is($after->{seq}, 1, 'restart: its first record');
is($after->{prev}, $tail->{hash}, 'restart: links to the last record');
like($n->error_log, qr/last record seq 11 hash \Q$tail->{hash}\E/,
     'restart: the last record is logged');
($rc, $out) = verify("$audit.1", $audit);
is($rc, 0, 'restart: verify') or diag($out);
like($out, qr/^ok: 2 files, 12 records in 2 chains/m, 'restart: two chains')
    or diag($out);
like($out, qr/^first: seq 1 prev \Q$tail->{hash}\E \(starts from \S+audit\.log:2\)$/m,
     'restart: the new chain starts from the last record') or diag($out);

# a torn last line (crash mid-write) does not swallow the next record
$n->stop;
{
    open my $fh, '>>:raw', $audit or die;
    print $fh '{"seq":13,"time":"20';
    close $fh;
}
$n->start;
$n->request('GET', '/person/1', cert => 'assistance',
            headers => ['Data-Purpose: social-assistance', $apr]);
ok(wait_lines($audit, 5), 'torn line: a record after it');
@lines = lines_of($audit);
like($lines[3], qr/^\{"seq":13,"time":"20\n\z/, 'torn line ended');
like($lines[4], qr/^\{"seq":1,/, 'torn line: a new chain after it');
like($n->error_log, qr/\[warn\].*datagate: audit log: .*damaged/,
     'torn line: warned at start');
($rc, $out) = verify("$audit.1", $audit);
is($rc, 1, 'torn line: verify reports it');
like($out, qr/audit\.log:4: incomplete line: a record whose write failed/,
     'torn line: at line 4') or diag($out);
like($out, qr/audit\.log:5: 1 record\(s\) lost before this record \(seq 1 of chain \S+\)/,
     'torn line: the record after it counts one lost record') or diag($out);
is(json_decode($lines[4])->{lost}, 1, 'torn line: "lost":1');
unlike($out, qr/not an audit record/, 'torn line: the chain still holds');

$n->stop;
log_clean($n, 'sha256');


# --- a refused reload leaves the running chain alone ---------------------------

# The chain head is read from the file while the configuration is read; a
# reload refused after that point must not leave the head of the file it
# named in the master, for a worker it starts later (one that replaces a
# worker that died) to continue the wrong chain with.
{
    my ($o, $other) = new_gateway();
    $o->start;
    for (1 .. 3) {
        $o->request('GET', '/person/1', cert => 'assistance',
                    headers => ['Data-Purpose: social-assistance', $apr]);
    }
    ok(wait_lines($other, 3), 'refused reload: another chain, 3 records');
    $o->stop;

    my ($g, $f) = new_gateway();
    $g->start;
    # no record yet: the first one seeds the zone's chain
    is($g->reload(http_config => "datagate_audit_log $other;",
                  config => config($g->upstream_port)
                            . "        location /bad/ {\n"
                            . "            datagate_mask_buffer 100;\n"
                            . "        }\n"),
       0, 'refused reload: refused (after the other file was read)');
    my @w = $g->children;
    is(scalar(@w), 1, 'refused reload: one worker');
    kill 'KILL', @w;
    my $until = time + DGTest::secs(10);
    sleep 0.05 until time > $until
                     || (grep { $_ != $w[0] } $g->children);
    ok((grep { $_ != $w[0] } $g->children),
       'refused reload: the master started another worker');
    $g->request('GET', '/person/1', cert => 'assistance',
                headers => ['Data-Purpose: social-assistance', $apr]);
    ok(wait_lines($f, 1), 'refused reload: a record in the running file');
    my $rec = json_decode((lines_of($f))[0]);
    is($rec->{seq}, 1, 'refused reload: the running chain starts at 1');
    is(scalar(lines_of($other)), 3, 'refused reload: the other file alone');
    ($rc, $out) = verify($f);
    is($rc, 0, 'refused reload: verify') or diag($out);
    unlike($out, qr/continues an older file/,
           'refused reload: not linked to the other file');
    $g->stop;
    # the killed worker's exit is an [alert]
    unlike($g->error_log, qr/\[crit\]/, 'refused reload: no crit');
}


# --- SM3 ------------------------------------------------------------------------

{
    my ($s, $f) = new_gateway(hash => 'hash=sm3');
    $s->start;
    for (1 .. 3) {
        $s->request('GET', '/person/1', cert => 'assistance',
                    headers => ['Data-Purpose: social-assistance', $apr]);
    }
    ok(wait_lines($f, 3), 'sm3: records');
    my @l = map { json_decode($_) } lines_of($f);
    is($l[0]{alg}, 'sm3', 'sm3: alg');
    ($rc, $out) = verify($f);
    is($rc, 0, 'sm3: verify') or diag($out);
    like($out, qr/, sm3$/m, 'sm3: named');
    my @x = lines_of($f);
    $x[1] =~ s/"status":200/"status":201/ or die;
    write_lines("$f.bad", @x);
    ($rc, $out) = verify("$f.bad");
    is($rc, 1, 'sm3: edited record caught');
    like($out, qr/:2: chain \S+: record edited/, 'sm3: at line 2');
    $s->stop;
    log_clean($s, 'sm3');
}


# --- two workers, concurrent clients: a chain each, unbroken -------------------

{
    my ($w, $f) = new_gateway(workers => 2);
    $w->start;
    my $clients = 4;
    my $each = 15;
    my @pids;
    for my $c (1 .. $clients) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            for my $i (1 .. $each) {
                $w->request('GET', "/person/" . (1 + $i % 6),
                    cert => 'assistance',
                    headers => ['Data-Purpose: social-assistance',
                                $i % 3 ? $apr : ()]);
            }
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    waitpid $_, 0 for @pids;
    ok(wait_lines($f, $clients * $each), 'workers: every request recorded');
    my @l = lines_of($f);
    is(scalar @l, $clients * $each, 'workers: no more, no less');
    ($rc, $out) = verify($f);
    is($rc, 0, 'workers: the chains verify') or diag($out);
    my %chains = map { (json_decode($_)->{chain} => 1) } @l;
    cmp_ok(scalar keys %chains, '<=', 2, 'workers: a chain per worker');
    my $st0 = $w->request('GET', '/status', cert => 'assistance')->json;
    is(scalar @{ $st0->{audit}{chains} }, 2,
       'workers: the status lists both chains');
    my %pids = map { (json_decode($_)->{request_id} => 1) } @l;
    is(scalar keys %pids, $clients * $each, 'workers: distinct request ids');
    my $st = $w->request('GET', '/status', cert => 'assistance')->json;
    is($st->{totals}{requests}, $clients * $each, 'workers: counters agree');
    is($st->{audit}{seq}, $clients * $each, 'workers: audit seq agrees');
    $w->stop;
    log_clean($w, 'workers');
}


# --- a failing disk: kept, logged once, never silent ----------------------------
# (test-nginx/055-audit-failure.t: refusals, loss, recovery, on_failure=serve)

SKIP: {
    skip 'no /dev/full', 10 unless -c '/dev/full';
    my ($b, $f) = new_gateway(audit => '/dev/full', hash => 'flush=0');
    $b->start;
    for (1 .. 5) {
        my $res = $b->request('GET', '/person/1', cert => 'assistance',
            headers => ['Data-Purpose: social-assistance', $apr]);
        # the answer that finds the failure is out before its record
        is($res->status, 200, 'disk full: the first request is served')
            if $_ == 1;
        if ($_ == 2) {
            is($res->status, 503, 'disk full: then refused');
            is(eval { $res->json->{error}{code} }, 'audit_unavailable',
               'disk full: audit_unavailable');
        }
    }
    my $st = $b->request('GET', '/status', cert => 'assistance')->json;
    is($st->{audit}{pending}, 5, 'disk full: the records wait in memory');
    is($st->{audit}{failing}, JSON::PP::true, 'disk full: failing');
    is($st->{audit}{write_failures}, 0, 'disk full: none lost yet');
    is($st->{audit}{lost}, 0, 'disk full: nothing to count');
    my $p = $b->request('GET', '/status?format=prometheus',
                        cert => 'assistance')->body;
    like($p, qr/^datagate_audit_pending_records 5$/m,
         'disk full: Prometheus pending');
    like($p, qr/^datagate_audit_failing 1$/m, 'disk full: Prometheus gauge');
    $b->stop;
    my @err = grep { /audit log .*write\(\) failed/ }
              split /\n/, $b->error_log;
    is(scalar @err, 1, 'disk full: logged once, not per request')
        or diag(join "\n", @err);
    like($err[0] // '', qr/\[error\].*No space left on device/,
         'disk full: error level, with the cause');
    like($b->error_log, qr/5 record\(s\) of chain \S+ could not be written before the exit: lost/,
         'disk full: the exit says what was lost');
}

done_testing();
