# Audit records that cannot be written: no data without a record.
#
# A write that fails keeps the records in the chain's buffer and is tried
# again at every flush; the gateway is failing meanwhile.  With
# on_failure=deny (the default) what the policy allows is refused with 503
# audit_unavailable (JSON, Retry-After), other denials keep their answer;
# records that find the buffer full are lost, counted, and the next record
# of the chain says how many ("lost").  Once a write succeeds the records
# that waited are written and the state ends.  With on_failure=serve
# requests are served, and a loss survives a restart (datagate_state)
# into the next record.  Either way `datagate audit verify` reports every
# loss and exits 1 while the chains of the records written still hold.
# The failures: the log path switched to /dev/full and reopened (ENOSPC on
# every write), the file removed, a full filesystem (a tiny tmpfs, as
# root) that cuts a write part-way.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
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

my @granted = (cert => 'assistance',
               headers => ['Data-Purpose: social-assistance']);

sub gateway {
    my (%o) = @_;
    my $n = DGTest::Nginx->new(policy => $policy,
                               workers => $o{workers} // 1);
    my $d = $n->dir;
    my $params = $o{params} // '';
    my $state = $o{state} ? "datagate_state $d/state;" : '';
    $n->{http_config} = "datagate_audit_log $d/audit.log $params; $state";
    my $up = $n->upstream_port;
    $n->{config} = <<"EOF";
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$up;
        }
        location = /status {
            datagate_status;
        }
EOF
    return $n;
}

sub lines_of {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return ();
    return <$fh>;
}

sub records { map { json_decode($_) } lines_of($_[0]) }

sub verify { run_cmd($CLI, 'audit', 'verify', @_) }

sub status { $_[0]->request('GET', '/status', cert => 'assistance')->json }

# nginx -s reopen, and wait until the master and every worker reopened
sub reopen {
    my ($n, $workers) = @_;
    my $count = sub { scalar(() = $n->error_log =~ /reopening logs/g) };
    my $before = $count->();
    my ($rc, $out) = $n->run_nginx('-s', 'reopen');
    is($rc, 0, 'nginx -s reopen') or diag($out);
    my $until = time + DGTest::secs(10);
    sleep 0.02 while $count->() < $before + 1 + $workers && time < $until;
    ok($count->() >= $before + 1 + $workers, 'the workers reopened');
}

# point audit.log at another file (a symlink), then reopen
sub switch_to {
    my ($n, $target, $workers) = @_;
    my $link = $n->dir . '/audit.log';
    unlink "$link.new";
    symlink($target, "$link.new") or die "symlink: $!";
    rename("$link.new", $link) or die "rename: $!";
    reopen($n, $workers // 1);
}

sub error_lines {
    my ($n, $re) = @_;
    return grep { /$re/ } split /\n/, $n->error_log;
}

sub log_clean {
    my ($n, $name) = @_;
    my @bad = error_lines($n, qr/\[(alert|crit|emerg)\]/);
    ok(!@bad, "$name: error.log has no alert, crit or emerg")
        or diag(join "\n", @bad);
}


# wait until the status says what cond wants
sub wait_status {
    my ($n, $cond) = @_;
    my $until = time + DGTest::secs(10);
    my $st;
    while (time < $until) {
        $st = status($n);
        return $st if $cond->($st);
        sleep 0.05;
    }
    return $st;
}

sub wait_lines {
    my ($f, $want) = @_;
    my $until = time + DGTest::secs(10);
    while (time < $until) {
        return 1 if scalar(my @l = lines_of($f)) >= $want;
        sleep 0.05;
    }
    return 0;
}


# --- on_failure=deny (the default): refused while failing ------------------------

SKIP: {
    skip 'no /dev/full', 1 unless -c '/dev/full';

    my $n = gateway(params => 'buffer=32k');
    my $d = $n->dir;
    my $real = "$d/real.log";
    symlink($real, "$d/audit.log") or die;
    $n->start;

    is($n->request('GET', '/person/1', @granted)->status, 200,
       'deny: served while records are written');
    ok(wait_lines($real, 1), 'deny: its record');

    switch_to($n, '/dev/full');

    my $r = $n->request('GET', '/person/1', @granted);
    is($r->status, 200, 'deny: the answer that finds the failure is out '
       . 'before its record');

    my $st = wait_status($n, sub { $_[0]{audit}{failing} });
    is($st->{audit}{failing}, JSON::PP::true, 'deny: failing once a write '
       . 'failed');

    for my $i (1 .. 3) {
        $r = $n->request('GET', '/person/2', @granted);
        is($r->status, 503, "deny: refused while failing ($i)");
        is(eval { $r->json->{error}{code} }, 'audit_unavailable',
           "deny: audit_unavailable ($i)") or diag($r->body);
    }
    like($r->header('Content-Type'), qr{^application/json},
         'deny: a JSON error');
    is($r->header('Retry-After'), '1', 'deny: Retry-After');
    like($r->json->{error}{message}, qr/audit records cannot be written/,
         'deny: the message says why');
    unlike($r->body, qr/450103|person/, 'deny: no data in the refusal');

    # another denial keeps its own answer
    $r = $n->request('GET', '/person/1', cert => 'assistance');
    is($r->status, 403, 'deny: other denials keep their answer');
    is($r->json->{error}{code}, 'purpose_required', 'deny: purpose_required');

    $st = status($n);
    is($st->{audit}{on_failure}, 'deny', 'deny: status on_failure');
    is($st->{audit}{pending}, 5, 'deny: 5 records wait in memory');
    is($st->{audit}{write_failures}, 0, 'deny: none lost yet');
    my ($req) = grep { $_->{reason} eq 'audit_unavailable' }
                @{ $st->{requests} };
    is($req && $req->{count}, 3, 'deny: refusals counted by reason');
    is($req && $req->{decision}, 'denied', 'deny: as denials');

    my @err = error_lines($n, qr/audit log .*audit records wait in memory/);
    is(scalar @err, 1, 'deny: the failure logged once') or diag(join "\n", @err);
    like($err[0] // '', qr/\[error\].*write\(\) failed.*503 audit_unavailable.*No space left on device/,
         'deny: at error level, with the cause and the consequence');

    # the buffer (32k) fills: further records are lost, and counted
    for (1 .. 40) {
        $n->request('GET', '/person/2', @granted);
    }
    $st = status($n);
    my $lost = $st->{audit}{write_failures};
    cmp_ok($lost, '>', 0, 'deny: records lost once the buffer is full');
    is($st->{audit}{lost}, $lost, 'deny: lost, not yet counted in a record');
    cmp_ok($st->{audit}{pending} + $lost, '==', 45,
           'deny: every record waits or is counted lost');
    my $p = $n->request('GET', '/status?format=prometheus',
                        cert => 'assistance')->body;
    like($p, qr/^datagate_audit_failing 1$/m, 'deny: Prometheus gauge');
    like($p, qr/^datagate_audit_lost_records $lost$/m, 'deny: lost gauge');
    like($p, qr/^datagate_requests_total\{[^}]*reason="audit_unavailable"\} 43$/m,
         'deny: Prometheus counts the reason');
    is(scalar(error_lines($n, qr/audit records wait in memory/)), 1,
       'deny: still logged once');

    # recovery: the records that waited are written, the state ends
    my $pending = $st->{audit}{pending};
    switch_to($n, $real);
    $st = wait_status($n, sub { !$_[0]{audit}{failing} });
    is($st->{audit}{failing}, JSON::PP::false, 'recovery: not failing');
    $r = $n->request('GET', '/person/3', @granted);
    is($r->status, 200, 'recovery: served again');
    like($r->body, qr/"id_card"\s*:\s*"4501\d\d\*{8}\d{4}"/, 'recovery: masked data');
    ok(wait_lines($real, 1 + $pending + 2), 'recovery: the records that waited');

    my @rec = records($real);
    is(scalar(grep { $_->{decision} } @rec), 1 + $pending + 1,
       'recovery: every record kept is in the file');
    my @with = grep { $_->{lost} } @rec;
    is(scalar @with, 1, 'recovery: one record counts the loss');
    is($with[0]{lost}, $lost, 'recovery: all of it');
    is($with[0]{kind}, 'lost', 'recovery: a record of its own, at once');
    ok(!exists $with[0]{decision}, 'recovery: it is no request\'s');
    $st = status($n);
    is($st->{audit}{lost}, 0, 'recovery: nothing left to count');
    is($st->{audit}{pending}, 0, 'recovery: nothing waits');

    @err = error_lines($n, qr/records are written again/);
    is(scalar @err, 1, 'recovery: logged once') or diag(join "\n", @err);
    like($err[0] // '', qr/\[warn\].*$lost record\(s\) were lost, counted in the record seq $with[0]{seq} of chain $with[0]{chain}/,
         'recovery: how many, and where');

    my ($rc, $out) = verify($real);
    is($rc, 1, 'verify: exit 1 when records were lost') or diag($out);
    like($out, qr/real\.log:\d+: $lost record\(s\) lost before this record \(seq $with[0]{seq} of chain \S+\)/,
         'verify: where and how many') or diag($out);
    like($out, qr/^LOST: $lost record\(s\) could not be written \(1 place\); the \d+ records written form an unbroken chain/m,
         'verify: the summary') or diag($out);
    unlike($out, qr/not an audit record|missing|edited|chain broken/,
           'verify: the chain holds');

    ($rc, $out) = verify('-q', $real);
    is($rc, 1, 'verify -q: still exit 1');
    like($out, qr/LOST: $lost/, 'verify -q: still says so');

    $n->stop;
    log_clean($n, 'deny');
}


# --- the file removed: a write to nowhere is a failure -------------------------

{
    my $n = gateway();
    my $d = $n->dir;
    $n->start;
    is($n->request('GET', '/person/1', @granted)->status, 200,
       'removed: served');
    ok(wait_lines("$d/audit.log", 1), 'removed: a record');
    unlink "$d/audit.log" or die;
    $n->request('GET', '/person/1', @granted);
    my $st = wait_status($n, sub { $_[0]{audit}{failing} });
    is($st->{audit}{failing}, JSON::PP::true, 'removed: failing');
    my $r = $n->request('GET', '/person/1', @granted);
    is($r->status, 503, 'removed: refused once the removal is seen');
    is(eval { $r->json->{error}{code} }, 'audit_unavailable',
       'removed: audit_unavailable');
    like(join('', error_lines($n, qr/audit records wait in memory/)),
         qr/the file was removed \("nginx -s reopen" creates it again\)/,
         'removed: the error says what to do');
    ok(!-e "$d/audit.log", 'removed: not written to a new file by itself');

    reopen($n, 1);
    ok(-e "$d/audit.log", 'removed: reopen creates the file');
    $st = wait_status($n, sub { !$_[0]{audit}{failing} });
    is($st->{audit}{failing}, JSON::PP::false,
       'removed: the records that waited are written to the new file');
    is($n->request('GET', '/person/1', @granted)->status, 200,
       'removed: served again');
    ok(wait_lines("$d/audit.log", 3), 'removed: the records');
    my @rec = records("$d/audit.log");
    is($rec[0]{seq}, 2, 'removed: the new file continues the chain');
    ok(!(grep { $_->{lost} } @rec), 'removed: nothing was lost');
    my ($rc, $out) = verify("$d/audit.log");
    is($rc, 0, 'removed: verify') or diag($out);
    like($out, qr/continues an older file/, 'removed: it continues the old one')
        or diag($out);
    $n->stop;
    log_clean($n, 'removed');
}


# --- on_failure=serve: served, and the loss survives a restart ------------------

SKIP: {
    skip 'no /dev/full', 1 unless -c '/dev/full';

    my $n = gateway(params => 'hash=sm3 on_failure=serve', state => 1);
    my $d = $n->dir;
    my $real = "$d/real.log";
    symlink($real, "$d/audit.log") or die;
    $n->start;
    is($n->request('GET', '/person/1', @granted)->status, 200, 'serve: served');
    ok(wait_lines($real, 1), 'serve: its record');

    switch_to($n, '/dev/full');
    for my $i (1 .. 4) {
        my $r = $n->request('GET', '/person/2', @granted);
        is($r->status, 200, "serve: served while failing ($i)");
        like($r->body, qr/"id_card"\s*:\s*"4501\d\d\*{8}\d{4}"/,
             "serve: masked as always ($i)");
    }
    my $st = wait_status($n, sub { $_[0]{audit}{failing} });
    is($st->{audit}{on_failure}, 'serve', 'serve: status on_failure');
    is($st->{audit}{failing}, JSON::PP::true, 'serve: failing');
    is($st->{audit}{pending}, 4, 'serve: 4 records wait');
    like(join('', error_lines($n, qr/audit records wait in memory/)),
         qr/served meanwhile \(on_failure=serve\)/,
         'serve: the error says requests are served');

    # a restart while records wait: they are lost at the exit, and the
    # state file keeps the count
    $n->stop;
    like($n->error_log, qr/4 record\(s\) of chain \S+ could not be written before the exit: lost/,
         'serve: the exit says so');
    my $state = DGTest::slurp("$d/state");
    my $head = (records($real))[-1];
    like($state, qr/^lost 1 $head->{hash} 4$/m,
         'serve: the state file keeps the loss and the record it follows')
        or diag($state);

    unlink "$d/audit.log";
    symlink($real, "$d/audit.log") or die;
    $n->start;
    like($n->error_log, qr/\[warn\].*4 record\(s\) lost before the restart \(after seq 1\) are counted in the next record/,
         'serve: the carried loss is logged at start');
    is($n->request('GET', '/person/3', @granted)->status, 200,
       'serve: served after the restart');
    ok(wait_lines($real, 2), 'serve: the request recorded');
    sleep 0.3;
    my @rec = records($real);
    is(scalar(grep { $_->{decision} } @rec), 2, 'serve: one more request');
    my @with = grep { $_->{lost} } @rec;
    is(scalar @with, 1, 'serve: one record counts the loss');
    is($with[0]{lost}, 4, 'serve: the loss from before the restart');
    is($with[0]{seq}, 1, 'serve: the first record of the new chain');
    is($rec[-1]{alg}, 'sm3', 'serve: hash=sm3 still applies');

    my ($rc, $out) = verify($real);
    is($rc, 1, 'serve: verify exit 1 after the restart') or diag($out);
    like($out, qr/real\.log:\d: 4 record\(s\) lost before this record \(seq 1 of chain \S+\)/,
         'serve: verify reports the loss') or diag($out);

    # counted once: another restart does not count it again
    $n->stop;
    unlike(DGTest::slurp("$d/state"), qr/^lost /m,
           'serve: nothing left to carry');
    $n->start;
    $n->request('GET', '/person/3', @granted);
    my $before = scalar(@rec);
    ok(wait_lines($real, $before + 1),
       'serve: a record after the second restart');
    sleep 0.3;
    @rec = records($real);
    is(scalar @rec, $before + 1, 'serve: one record after the second restart');
    ok(!exists $rec[-1]{lost}, 'serve: the loss is not counted twice');
    ($rc, $out) = verify($real);
    like($out, qr/^LOST: 4 record/m, 'serve: still 4 in all') or diag($out);
    $n->stop;
    log_clean($n, 'serve');
}


# --- deny: a loss survives a restart too, with datagate_state --------------------

SKIP: {
    skip 'no /dev/full', 1 unless -c '/dev/full';

    my $n = gateway(state => 1);
    my $d = $n->dir;
    my $real = "$d/real.log";
    symlink($real, "$d/audit.log") or die;
    $n->start;
    $n->request('GET', '/person/1', @granted);
    ok(wait_lines($real, 1), 'deny restart: a record');
    switch_to($n, '/dev/full');
    $n->request('GET', '/person/1', @granted) for 1 .. 3;
    $n->stop;
    unlink "$d/audit.log";
    symlink($real, "$d/audit.log") or die;
    $n->start;
    is($n->request('GET', '/person/1', @granted)->status, 200,
       'deny restart: a new run starts serving');
    ok(wait_lines($real, 2), 'deny restart: its record, or the loss');
    my @rec = records($real);
    is((grep { $_->{lost} } @rec)[0]{lost}, 3,
       'deny restart: the loss of the last run counted');
    my ($rc, $out) = verify($real);
    is($rc, 1, 'deny restart: verify exit 1');
    $n->stop;
    log_clean($n, 'deny restart');
}


# --- a full filesystem: a write cut part-way leaves no torn line -----------------

SKIP: {
    skip 'needs root to mount a small tmpfs', 1 if $> != 0;
    my $n = gateway(workers => 2, params => 'buffer=32k flush=0');
    my $d = $n->dir;
    my $mnt = "$d/small";
    mkdir $mnt or die;
    my ($mrc, $mout) = run_cmd('mount', '-t', 'tmpfs', '-o', 'size=64k',
                               'tmpfs', $mnt);
    skip "cannot mount a tmpfs here: $mout", 1 if $mrc != 0;

    my $ok = eval {
        $n->{http_config} =~ s{\S+/audit\.log}{$mnt/audit.log};
        $n->start;
        for (1 .. 3) {
            $n->request('GET', '/person/1', @granted);
        }
        # fill the rest of the filesystem: the audit file keeps only the
        # free part of its last page
        system("dd if=/dev/zero of=$mnt/filler bs=1k 2>/dev/null");
        my @st;
        for (1 .. 80) {
            push @st, $n->request('GET', '/person/' . (1 + $_ % 6),
                                  @granted)->status;
        }
        ok((grep { $_ == 503 } @st), 'full: refusals once a write failed')
            or diag("@st");
        my $s1 = status($n);
        cmp_ok($s1->{audit}{write_failures}, '>', 0,
               'full: records lost once the buffers are full');
        unlink "$mnt/filler";
        my $st = wait_status($n, sub { !$_[0]{audit}{failing} });
        is($st->{audit}{failing}, JSON::PP::false,
           'full: written again once there is room');
        push @st, $n->request('GET', '/person/1', @granted)->status;
        is($st[-1], 200, 'full: served again');
        $st = wait_status($n, sub { $_[0]{audit}{lost} == 0
                                    && $_[0]{audit}{pending} == 0 });

        my @l = lines_of("$mnt/audit.log");
        my @bad = grep { !/\n\z/ || (!/^\{ *\}\n\z/ && !/^ +\n\z/
                                     && !eval { json_decode($_); 1 }) } @l;
        ok(!@bad, 'full: every line is a whole record or a blanked one, '
           . 'no torn line') or diag(join '', @bad);
        my $lost = 0;
        $lost += $_->{lost} // 0
            for map { json_decode($_) } grep { /^\{"seq"/ } @l;
        is($lost, $st->{audit}{write_failures},
           'full: the records count every lost one');
        my ($rc, $out) = verify("$mnt/audit.log");
        is($rc, 1, 'full: verify exit 1');
        like($out, qr/^LOST: $lost record\(s\)/m, 'full: verify counts them')
            or diag($out);
        unlike($out, qr/incomplete|not an audit record/,
               'full: no torn line') or diag($out);
        like(join('', error_lines($n, qr/audit records wait in memory/)),
             qr/write\(\) (was short|failed).*No space left on device/,
             'full: logged with the cause');
        1;
    };
    my $err = $@;
    $n->stop;
    run_cmd('umount', $mnt);
    die $err unless $ok;
    log_clean($n, 'full');
}


# --- the directive ------------------------------------------------------------

{
    my $n = gateway(params => 'on_failure=serve');
    my ($rc, $out) = $n->test_conf;
    isnt($rc, 0, 'serve without datagate_state: nginx -t fails');
    like($out, qr/on_failure=serve\\?" needs \\?"datagate_state\\?".* in \S+nginx\.conf:\d+/,
         'serve without datagate_state: says why, with file and line')
        or diag($out);

    for my $bad ('on_failure=maybe', 'on_failure=deny on_failure=serve',
                 'hash=sm3 hash=sha256', 'hash=md5', 'flush=soon',
                 'flush=61s', 'flush=1s flush=2s', 'buffer=4k',
                 'buffer=1g', 'checkpoint=10ms', 'checkpoint=x',
                 'key=', 'key=/nonexistent/key')
    {
        $n = gateway(params => $bad, state => 1);
        ($rc, $out) = $n->test_conf;
        isnt($rc, 0, "\"$bad\": nginx -t fails");
        like($out, qr/(invalid|duplicate|needs|cannot open).* in \S+nginx\.conf:\d+/,
             "\"$bad\": named with file and line") or diag($out);
    }

    for my $good ('on_failure=deny', 'on_failure=serve hash=sm3',
                  'hash=sha256 on_failure=deny', '', 'flush=0',
                  'flush=50ms buffer=1m checkpoint=off',
                  'checkpoint=1s hash=sm3')
    {
        $n = gateway(params => $good, state => 1);
        ($rc, $out) = $n->test_conf;
        is($rc, 0, "\"$good\": accepted") or diag($out);
    }
}

done_testing();
