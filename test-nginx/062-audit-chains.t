# The audit trail's chains, keys and checkpoints (docs/audit.md).
#
# One chain per worker, each sealed and buffered without a lock: a reload
# that keeps the zone carries the chains on, one that changes it (other
# worker_processes) begins new chains from the last record of the file,
# "nginx -s reopen" splits every chain across the two files, and a worker
# killed with records in its buffer loses none of them: the worker the
# master starts in its place writes them.  With key= every record carries
# a MAC under a key that evolves: a chain rewritten with recomputed hashes
# fails `verify --key`, and the key the running process holds cannot
# re-seal an earlier record (the process holds neither the secret nor an
# earlier key).  Checkpoints (the chains' heads) go to the error log and
# to Redis; `verify --redis` and `verify --checkpoints` find records cut
# from the end.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Digest::SHA qw(sha256 sha256_hex hmac_sha256 hmac_sha256_hex);
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
                               workers => $o{workers} // 2,
                               log_level => 'notice');
    my $d = $n->dir;
    my $params = $o{params} // '';
    my $redis = $o{redis} ? "datagate_redis 127.0.0.1:$o{redis};" : '';
    $n->{http_config} = "datagate_audit_log $d/audit.log $params; $redis";
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
    return ($n, "$d/audit.log");
}

sub lines_of {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return ();
    return <$fh>;
}

sub write_lines {
    my ($f, @l) = @_;
    open my $fh, '>:raw', $f or die "$f: $!";
    print $fh @l;
    close $fh;
}

sub records { map { json_decode($_) } grep { /^\{"seq"/ } lines_of($_[0]) }

sub verify { run_cmd($CLI, 'audit', 'verify', @_) }

sub status { $_[0]->request('GET', '/status', cert => 'assistance')->json }

sub wait_records {
    my ($f, $want) = @_;
    my $until = time + DGTest::secs(10);
    while (time < $until) {
        return 1 if scalar(my @r = records($f)) >= $want;
        sleep 0.05;
    }
    return 0;
}

sub log_clean {
    my ($n, $name) = @_;
    my @bad = grep { /\[(alert|crit|emerg)\]/ } split /\n/, $n->error_log;
    ok(!@bad, "$name: error.log has no alert, crit or emerg")
        or diag(join "\n", @bad);
}

# n requests from c clients at once; the ids of the answers received
sub load {
    my ($n, $clients, $each, $during) = @_;
    my @kids;
    my $dir = $n->dir;
    for my $c (1 .. $clients) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            open my $fh, '>', "$dir/ids.$c" or POSIX::_exit(1);
            for my $i (1 .. $each) {
                my $id = "load-$$-$c-$i";
                my $r = eval {
                    $n->request('GET', '/person/' . (1 + $i % 6),
                                cert => 'assistance',
                                headers => ['Data-Purpose: social-assistance',
                                            "Datagate-Request-Id: $id"])
                };
                if ($r && $r->status == 200) {
                    print $fh "$id\n";
                }
            }
            close $fh;
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    $during->() if $during;
    waitpid $_, 0 for @kids;
    my @ids;
    for my $c (1 .. $clients) {
        push @ids, grep { length } map { chomp; $_ } lines_of("$dir/ids.$c");
    }
    return @ids;
}

# the chain's hashes again from line i on, as an intruder without the key
sub rehash_chain {
    my ($lines, $from, $chain) = @_;
    my $prev;
    for my $i ($from .. $#$lines) {
        my $l = $lines->[$i];
        next unless $l =~ /"chain":"\Q$chain\E"/;
        chomp $l;
        $l =~ s/"prev":"[0-9a-f]{64}"/"prev":"$prev"/ if defined $prev;
        $l =~ s/,"hash":"[0-9a-f]{64}"\}$// or die "no hash: $l";
        my ($p) = $l =~ /"prev":"([0-9a-f]{64})"/;
        my $h = sha256_hex($p . "$l}");
        $lines->[$i] = "$l,\"hash\":\"$h\"}\n";
        $prev = $h;
    }
}


# --- reload, reopen: the chains go on ---------------------------------------------

{
    my ($n, $f) = gateway();
    $n->start;
    load($n, 4, 5);
    ok(wait_records($f, 20), 'chains: 20 records');
    my %c1 = map { ($_->{chain} => 1) } records($f);
    cmp_ok(scalar keys %c1, '<=', 2, 'chains: at most one per worker');
    like((keys %c1)[0], qr/^\d+-\d+$/, 'chains: named EPOCH-N');

    ok($n->reload, 'chains: reload');
    load($n, 4, 5);
    ok(wait_records($f, 40), 'chains: 20 more after the reload');
    my %c2 = map { ($_->{chain} => 1) } records($f);
    cmp_ok(scalar keys %c2, '<=', 4, 'chains: the zone kept, a chain for '
           . 'each worker of the two generations at most');
    my ($e1) = (keys %c1)[0] =~ /^(\d+)-/;
    ok(!(grep { !/^$e1-/ } keys %c2), 'chains: one epoch across the reload');

    # reopen: every chain continues in the new file
    rename $f, "$f.1" or die;
    my $count = sub { scalar(() = $n->error_log =~ /reopening logs/g) };
    my $before = $count->();
    my ($orc, $oout) = $n->run_nginx('-s', 'reopen');
    is($orc, 0, 'chains: nginx -s reopen') or diag($oout);
    my $until = time + DGTest::secs(10);
    sleep 0.02 while $count->() < $before + 3 && time < $until;
    load($n, 4, 5);
    ok(wait_records($f, 20), 'chains: 20 records in the new file');

    # another worker_processes: another zone, new chains from the file's end
    my $last = (records($f))[-1];
    ok($n->reload(workers => 3), 'chains: reload with 3 workers');
    load($n, 6, 5);
    ok(wait_records($f, 50), 'chains: 30 more');
    my @r = records($f);
    my %c3 = map { ($_->{chain} => 1) } @r[20 .. $#r];
    my ($e3) = (grep { !/^$e1-/ } keys %c3)[0] =~ /^(\d+)-/;
    ok($e3 && $e3 ne $e1, 'chains: a new epoch with the new zone');
    my @born = grep { $_->{seq} == 1 && $_->{chain} =~ /^$e3-/ } @r;
    ok(@born && !(grep { $_->{prev} eq ('0' x 64) } @born),
       'chains: the new chains start from a record of the file');
    $n->stop;

    my ($rc, $out) = verify("$f.1", $f);
    is($rc, 0, 'chains: both files verify together') or diag($out);
    like($out, qr/^ok: 2 files, 90 records in \d+ chains/m,
         'chains: every record') or diag($out);
    ($rc, $out) = verify($f);
    is($rc, 0, 'chains: the new file alone verifies') or diag($out);
    like($out, qr/continues an older file/, 'chains: continuing the old one');
    ($rc, $out) = verify($f, "$f.1");
    is($rc, 1, 'chains: files in the wrong order fail') or diag($out);
    log_clean($n, 'chains');
}


# --- a worker killed with records in its buffer: none lost -----------------------

{
    my ($n, $f) = gateway(params => 'flush=2s');
    $n->start;
    my @ids = load($n, 4, 30, sub {
        sleep 1;
        my @w = $n->children;
        kill 'KILL', $w[0];
        note("killed worker $w[0]");
    });
    cmp_ok(scalar @ids, '>', 10, 'kill: requests answered around the kill');
    my $until = time + DGTest::secs(10);
    my %seen;
    while (time < $until) {
        %seen = map { ($_->{request_id} // '') => 1 } records($f);
        last unless grep { !$seen{$_} } @ids;
        sleep 0.1;
    }
    my @missing = grep { !$seen{$_} } @ids;
    is(scalar @missing, 0, 'kill: every answered request has its record')
        or diag("missing: @missing[0 .. ($#missing > 4 ? 4 : $#missing)]");
    like($n->error_log, qr/audit chain \S+ of worker \d+, which exited without finishing/,
         'kill: the chain was carried on') or diag($n->error_log);
    my ($waiting) = $n->error_log =~ /which exited without finishing, carried on: (\d+) record/;
    cmp_ok($waiting // 0, '>', 0, 'kill: the killed worker had records '
           . 'waiting in its buffer (flush=2s), and they are in the file');
    $n->stop;
    my ($rc, $out) = verify($f);
    is($rc, 0, 'kill: the chains verify, nothing lost') or diag($out);
    unlike($n->error_log, qr/\[crit\]/, 'kill: no crit');
}


# --- keys: a rewritten chain fails verify --key -----------------------------------

my ($kn, $kf) = gateway(workers => 1);
my $secret = join '', map { chr(33 + int rand 90) } 1 .. 40;
my $keyfile = $kn->dir . '/audit.key';
DGTest::spew($keyfile, "$secret\n");
chmod 0600, $keyfile;
$kn->{http_config} =~ s{audit\.log ;}{audit.log key=$keyfile;};
$kn->start;
load($kn, 1, 6);
ok(wait_records($kf, 6), 'key: records');
my @kl = lines_of($kf);
my @kr = records($kf);
like($kr[0]{mac}, qr/^[0-9a-f]{64}$/, 'key: every record has a MAC');
like($kl[0], qr/,"mac":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"\}\n\z/,
     'key: right before the hash');

my $d = $kn->dir;
my $other = "$d/other.key";
DGTest::spew($other, ('x' x 40) . "\n");
chmod 0600, $other;

my ($rc, $out) = verify('--key', $keyfile, $kf);
is($rc, 0, 'key: verify --key') or diag($out);
like($out, qr/^keys: 6 MAC\(s\) checked/m, 'key: every MAC checked');
($rc, $out) = verify($kf);
is($rc, 0, 'key: verify without the key, as a hash chain') or diag($out);
($rc, $out) = verify('--key', $other, $kf);
is($rc, 1, 'key: another key fails');
like($out, qr/:1: MAC does not match/, 'key: at the first record');

# the MAC as docs/audit.md defines it, computed here
my ($epoch, $cn) = $kr[0]{chain} =~ /^(\d+)-(\d+)$/;
my $g = hmac_sha256("datagate-audit-root:$epoch", $secret);
$g = sha256($g) for 1 .. $cn;
my $s0 = hmac_sha256("datagate-audit-chain:$kr[0]{chain}", $g);
my $k1 = hmac_sha256('datagate-audit-segment', $s0);     # K_{0,0}
sub key_of { my ($k, $seq) = @_; $k = sha256($k) for 2 .. $seq; return $k }
sub mac_of {
    my ($k, $line) = @_;
    chomp(my $l = $line);
    my ($p) = $l =~ /"prev":"([0-9a-f]{64})"/;
    (my $t0 = $l) =~ s/,"mac":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"\}$/}/;
    return hmac_sha256_hex(sha256($p . $t0), $k);
}
is(mac_of(key_of($k1, $kr[-1]{seq}), $kl[-1]), $kr[-1]{mac},
   'key: MAC = HMAC(K_{0,seq-1}, SHA-256(prev || record without mac and '
   . 'hash))');

# an intruder rewrites record 2 and recomputes every hash after it
{
    my @x = @kl;
    $x[1] =~ s/"status":200/"status":404/ or die;
    rehash_chain(\@x, 1, $kr[0]{chain});
    write_lines("$d/rewritten.log", @x);
    ($rc, $out) = verify("$d/rewritten.log");
    is($rc, 0, 'key: the rewritten chain passes without the key');
    ($rc, $out) = verify('--key', $keyfile, "$d/rewritten.log");
    is($rc, 1, 'key: and fails with it');
    like($out, qr/rewritten\.log:2: MAC does not match: seq 2 /,
         'key: at the rewritten record') or diag($out);

    # with the key the running process holds (the next record's)
    my $now = key_of($k1, $kr[-1]{seq} + 1);
    my @y = @kl;
    $y[1] =~ s/"status":200/"status":404/ or die;
    chomp(my $l = $y[1]);
    my $m = mac_of($now, $y[1]);
    $l =~ s/"mac":"[0-9a-f]{64}"/"mac":"$m"/;
    $y[1] = "$l\n";
    rehash_chain(\@y, 1, $kr[0]{chain});
    write_lines("$d/resealed.log", @y);
    ($rc, $out) = verify('--key', $keyfile, "$d/resealed.log");
    is($rc, 1, 'key: the current key cannot re-seal an earlier record');
    like($out, qr/resealed\.log:2: MAC does not match/, 'key: caught there')
        or diag($out);

    # what the processes hold: the current key, not the secret nor any
    # earlier key
    my %find = (secret => $secret, root => hmac_sha256(
                    "datagate-audit-root:$epoch", $secret),
                'chain key' => $s0, 'first key' => $k1,
                'key of the last record' => key_of($k1, $kr[-1]{seq}));
    my %found;
    my $current = 0;
    my $readable = 0;
    for my $pid ($kn->{pid}, $kn->children) {
        open my $maps, '<', "/proc/$pid/maps" or next;
        open my $mem, '<:raw', "/proc/$pid/mem" or next;
        while (my $m = <$maps>) {
            my ($a, $b, $perm) = $m =~ /^([0-9a-f]+)-([0-9a-f]+) (\S+)/;
            next unless $perm =~ /^rw/;
            my ($s, $e) = do { no warnings "portable"; (hex $a, hex $b) };
            next if $e - $s > 256 * 1024 * 1024;
            my $buf = '';
            next unless sysseek($mem, $s, 0);
            my $got = sysread($mem, $buf, $e - $s);
            next unless $got;
            $readable = 1;
            for my $what (keys %find) {
                $found{$what}++ if index($buf, $find{$what}) >= 0;
            }
            $current++ if index($buf, $now) >= 0;
        }
    }
    SKIP: {
        skip 'cannot read the memory of nginx processes here', 2
            unless $readable;
        ok($current, 'memory: the current key is there (the scan works)');
        is(join(', ', sort keys %found), '',
           'memory: no secret, root or earlier key in any nginx process');
    }
}

# a reload keeps the chains and their keys; a restart begins new chains
# with keys from the file read then
ok($kn->reload, 'key: reload');
load($kn, 1, 3);
ok(wait_records($kf, 9), 'key: records after the reload');
$kn->stop;
$kn->start;
load($kn, 1, 3);
ok(wait_records($kf, 12), 'key: records after a restart');
$kn->stop;
($rc, $out) = verify('--key', $keyfile, $kf);
is($rc, 0, 'key: the chains across a reload and a restart verify with the '
   . 'key') or diag($out);
like($out, qr/^keys: 12 MAC\(s\) checked/m, 'key: all of them');
my %ep = map { (($_->{chain} =~ /^(\d+)-/)[0] => 1) } records($kf);
is(scalar keys %ep, 2, 'key: two epochs, before and after the restart');

# a restart without the key file: nginx refuses to start, naming it
rename $keyfile, "$keyfile.away" or die;
my ($trc, $tout) = $kn->test_conf;
isnt($trc, 0, 'key: without its file the configuration fails');
like($tout, qr/cannot open audit key "\Q$keyfile\E".* in \S+nginx\.conf:\d+/,
     'key: with file and line') or diag($tout);
log_clean($kn, 'key');


# --- checkpoints: records cut from the end are found ------------------------------

{
    my $redis = start_redis();
    my ($n, $f) = gateway(redis => $redis->port,
                          params => 'checkpoint=500ms');
    $n->start;
    load($n, 4, 5);
    ok(wait_records($f, 20), 'checkpoint: 20 records');

    # wait until every chain's head is in Redis
    my %head;
    $head{$_->{chain}} = $_ for records($f);
    my ($key, @cps);
    my $until = time + DGTest::secs(10);
    while (time < $until) {
        ($key) = @{ $redis->cmd('KEYS', 'datagate:audit:*') // [] };
        @cps = $key ? map { json_decode($_) }
                          @{ $redis->cmd('LRANGE', $key, 0, -1) } : ();
        my %top;
        for (@cps) {
            $top{$_->{chain}} = $_->{seq}
                if ($top{$_->{chain}} // 0) < $_->{seq};
        }
        last unless grep { ($top{$_} // 0) < $head{$_}{seq} } keys %head;
        sleep 0.1;
    }
    ok($key, "checkpoint: a list per node ($key)");
    my ($cp) = grep { $_->{chain} eq $head{(keys %head)[0]}{chain}
                      && $_->{seq} == $head{(keys %head)[0]}{seq} } @cps;
    ok($cp, 'checkpoint: the head of a chain is in Redis');
    is($cp && $cp->{hash}, $head{(keys %head)[0]}{hash},
       'checkpoint: with its hash');
    like($n->error_log, qr/\[notice\].*datagate: audit checkpoint: chain \S+ seq \d+ hash [0-9a-f]{64}/,
         'checkpoint: and in the error log');

    my $addr = '127.0.0.1:' . $redis->port;
    my ($rc, $out) = verify('--redis', $addr, $f);
    is($rc, 0, 'checkpoint: the whole file agrees') or diag($out);
    like($out, qr/^checkpoints: [1-9]\d* matched/m, 'checkpoint: matched')
        or diag($out);

    # cut the last records of the file
    my @l = lines_of($f);
    my $dd = $n->dir;
    write_lines("$dd/cut.log", @l[0 .. $#l - 3]);
    ($rc, $out) = verify("$dd/cut.log");
    is($rc, 0, 'cut: the chains alone hold');
    ($rc, $out) = verify('--redis', $addr, "$dd/cut.log");
    is($rc, 1, 'cut: verify --redis finds it');
    like($out, qr/chain \S+ ends at seq \d+, but a checkpoint \(redis datagate:audit:\S+\) names seq \d+: records were cut from the end/,
         'cut: which chain, and where it ends') or diag($out);
    ($rc, $out) = verify('--checkpoints', $n->dir . '/error.log',
                         "$dd/cut.log");
    is($rc, 1, 'cut: verify --checkpoints error.log finds it too')
        or diag($out);

    # a record a checkpoint names, rewritten with the hashes after it
    my @x = @l;
    my ($ch) = $x[-1] =~ /"chain":"([^"]+)"/;
    my ($i) = grep { $x[$_] =~ /"chain":"\Q$ch\E"/ } 0 .. $#x;
    $x[$i] =~ s/"status":200/"status":404/ or die;
    rehash_chain(\@x, $i, $ch);
    write_lines("$dd/rewritten.log", @x);
    ($rc, $out) = verify('--redis', $addr, "$dd/rewritten.log");
    is($rc, 1, 'rewritten: the checkpoints catch it');
    like($out, qr/is not the record a checkpoint names|records were cut/,
         'rewritten: said so') or diag($out);

    $n->stop;
    log_clean($n, 'checkpoint');
}

done_testing();
