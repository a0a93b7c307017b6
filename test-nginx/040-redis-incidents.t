# Incident controls on Redis: revoke a certificate serial, suspend a
# consumer, freeze a dataset or a grant with the datagate CLI, and lift
# each; two gateways on one Redis both react within 1 second.  Without
# datagate_redis nothing is revoked.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest qw(:DEFAULT $CLI);
use DGRedis;

my $redis = start_redis();
my $rp = $redis->port;

my @gw = map { gateway(redis => $rp, workers => 2) } 1 .. 2;

# warm both nodes' caches for the callers below
for my $n (@gw) {
    for my $who (qw(assistance market)) {
        is(get($n, $who)->status, 200, "node " . $n->port . ": $who allowed");
    }
}

my $serial = DGTest::cert_info('assistance')->{serial};

my @cases = (
    # [set, unset, caller, expected code, a caller that stays allowed]
    [[qw(revoke cert), $serial], [qw(unrevoke cert), $serial],
     'assistance', 'cert_revoked', 'market'],
    [[qw(suspend consumer civil-affairs.assistance)],
     [qw(unsuspend consumer civil-affairs.assistance)],
     'assistance', 'consumer_suspended', 'market'],
    [[qw(freeze dataset population.person)],
     [qw(unfreeze dataset population.person)],
     'assistance', 'dataset_frozen', 'market'],
    [[qw(freeze grant civil-affairs.assistance population.person)],
     [qw(unfreeze grant civil-affairs.assistance population.person)],
     'assistance', 'dataset_frozen', 'market'],
    [[qw(freeze dataset enterprise.registry)],
     [qw(unfreeze dataset enterprise.registry)],
     'market', 'dataset_frozen', 'assistance'],
);

for my $c (@cases) {
    my ($set, $unset, $who, $code, $other) = @$c;
    my $what = "@$set";

    my ($rc, $out) = cli($rp, @$set);
    is($rc, 0, "datagate $what: exit 0") or diag($out);

    for my $n (@gw) {
        my $r;
        my $t = poll_until(2, sub {
            $r = get($n, $who);
            return $r->status == 403 && code_of($r) eq $code;
        });
        ok(defined $t && $t < DGTest::secs(1),
           "$what: node " . $n->port . " answers 403 $code within 1 s")
            or diag("after " . ($t // 'more than 2') . " s: " . $r->status
                    . " " . $r->body);
        like($r->header('Content-Type') // '', qr{application/json},
             "$what: JSON error");
        is(get($n, $other)->status, 200, "$what: $other still allowed");
    }

    ($rc, $out) = cli($rp, @$unset);
    is($rc, 0, "datagate @$unset: exit 0") or diag($out);

    for my $n (@gw) {
        my $t = poll_until(2, sub { get($n, $who)->status == 200 });
        ok(defined $t && $t < DGTest::secs(1),
           "@$unset: node " . $n->port . " allows again within 1 s");
    }
}

# a serial with leading zeros or colons names the same certificate
{
    my $odd = '00:' . join(':', $serial =~ /(..?)/g);
    my ($rc, $out) = cli($rp, 'revoke', 'cert', lc $odd);
    is($rc, 0, "revoke cert $odd") or diag($out);
    ok(defined poll_until(1, sub {
           code_of(get($gw[0], 'assistance')) eq 'cert_revoked' }),
       'serial normalized: revoked');
    cli($rp, 'unrevoke', 'cert', $serial);
    ok(defined poll_until(1, sub {
           get($gw[0], 'assistance')->status == 200 }), 'unrevoked');
}

# a negative serial, as OpenSSL prints it (-5A5A), has a key of its own
{
    (my $pol = policy()) =~ s/^datasets:/  - id: negative.app
    cert: {serial: "-5a:5a"}
    clearance: 2
datasets:/m;
    my $audit = DGTest::base_dir() . '/negative-audit.log';
    my $n = gateway(redis => $rp, policy => $pol,
                    http_config => "    datagate_audit_log $audit;\n");
    my $neg = sub {
        return $n->request(GET => '/enterprise/1', cert => 'negative',
                           headers => ['Data-Purpose: social-assistance']);
    };
    is($neg->()->status, 200, 'negative serial: allowed');

    my ($rc, $out) = cli($rp, 'revoke', 'cert', '5A5A');
    is($rc, 0, 'revoke cert 5A5A (the positive one)') or diag($out);
    ($rc, $out) = cli($rp, 'revoke', 'cert', '-5a:5a');
    is($rc, 0, 'revoke cert -5a:5a') or diag($out);
    is($redis->cmd('EXISTS', 'datagate:revoked:cert:-5A5A'), 1,
       'the key keeps the sign');
    ok(defined poll_until(5, sub { code_of($neg->()) eq 'cert_revoked' }),
       'negative serial: revoked at run time');
    is(get($n, 'assistance')->status, 200, '... nobody else is');

    cli($rp, 'unrevoke', 'cert', '-5A5A');
    ok(defined poll_until(5, sub { $neg->()->status == 200 }),
       'unrevoked: allowed again (5A5A stays revoked: another serial)');

    ($rc, $out) = cli($rp, 'revoke', 'cert', '(Negative)5a:5a');
    is($rc, 0, 'revoke cert (Negative)5a:5a, as openssl x509 -text '
       . 'writes it') or diag($out);
    ok(defined poll_until(5, sub { code_of($neg->()) eq 'cert_revoked' }),
       '... the same certificate');
    cli($rp, 'unrevoke', 'cert', '-5A5A');
    cli($rp, 'unrevoke', 'cert', '5A5A');
    $n->stop;

    my @rec = grep { ($_->{consumer} // '') eq 'negative.app' }
              map { json_decode($_) } split /\n/, DGTest::slurp($audit);
    cmp_ok(scalar @rec, '>=', 3, 'audit: the calls of the certificate');
    is(join(' ', sort keys %{{ map { ($_->{cert_serial} // 'null') => 1 }
                                @rec }}), '-5A5A',
       'audit: cert_serial -5A5A');
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'negative: clean log');
}

# the keys are where docs/redis.md says
{
    cli($rp, qw(suspend consumer hrss.portal --reason), 'incident 42');
    my $v = $redis->cmd('GET', 'datagate:suspended:consumer:hrss.portal');
    like($v // '', qr/reason=incident 42/, 'incident key holds the note');
    my ($rc, $out) = cli($rp, 'incident', 'list');
    is($rc, 0, 'incident list: exit 0');
    like($out, qr/^suspended:consumer:hrss\.portal$/m, 'incident list');
    cli($rp, qw(unsuspend consumer hrss.portal));
    is($redis->cmd('EXISTS', 'datagate:suspended:consumer:hrss.portal'), 0,
       'unsuspend deletes the key');
}

# CLI errors
{
    my ($rc, $out) = run_cmd($CLI, 'revoke', 'cert', 'XYZ', '--redis',
                             "127.0.0.1:$rp");
    is($rc, 2, 'revoke cert XYZ: usage error (not hex)');
    ($rc) = run_cmd($CLI, 'freeze', 'dataset', 'a|b', '--redis',
                    "127.0.0.1:$rp");
    is($rc, 2, "freeze dataset 'a|b': usage error");
    ($rc) = run_cmd($CLI, 'freeze', 'grant', 'only-one', '--redis',
                    "127.0.0.1:$rp");
    is($rc, 2, 'freeze grant with one id: usage error');
    ($rc, $out) = run_cmd($CLI, 'suspend', 'consumer', 'x', '--redis',
                          '127.0.0.1:' . DGTest::free_port());
    is($rc, 3, 'Redis unreachable: exit 3');
    like($out, qr/redis/i, 'says why');
    ($rc, $out) = run_cmd($CLI, 'revoke', '--help');
    is($rc, 0, 'revoke --help: exit 0');
    like($out, qr/unrevoke cert SERIAL/, '--help lists the commands');
    local $ENV{DATAGATE_REDIS} = "127.0.0.1:$rp";
    ($rc, $out) = run_cmd($CLI, 'freeze', 'dataset', 'x.y');
    is($rc, 0, 'DATAGATE_REDIS is the default address') or diag($out);
    is($redis->cmd('EXISTS', 'datagate:frozen:dataset:x.y'), 1, 'written');
}

# without datagate_redis: single node, the policy is the whole truth
{
    my $solo = gateway();
    cli($rp, qw(suspend consumer civil-affairs.assistance));
    is(get($solo, 'assistance')->status, 200,
       'without datagate_redis nothing is suspended');
    cli($rp, qw(unsuspend consumer civil-affairs.assistance));
    $solo->stop;
    unlike($solo->error_log, qr/\[(alert|crit|emerg)\]/, 'solo: clean log');
}

# password= and db=: AUTH and SELECT on every connection, node and CLI
{
    my $port = DGTest::free_port();
    my $dir = DGTest::base_dir() . '/redis-auth';
    mkdir $dir;
    my $pid = fork // die;
    if ($pid == 0) {
        open STDOUT, '>', "$dir/log";
        open STDERR, '>&', \*STDOUT;
        exec 'redis-server', '--port', $port, '--bind', '127.0.0.1',
             '--save', '', '--requirepass', 's3cret', '--dir', $dir;
        exit 127;
    }
    DGTest::wait_port($port, 5);
    my $n = gateway(redis => $port, redis_opts => 'password=s3cret db=3');
    is(get($n, 'assistance')->status, 200, 'AUTH + SELECT: allowed');
    my ($rc, $out) = cli($port, qw(suspend consumer civil-affairs.assistance
                                   password=s3cret db=3));
    is($rc, 0, 'CLI with password= db=') or diag($out);
    ok(defined poll_until(1, sub {
           code_of(get($n, 'assistance')) eq 'consumer_suspended' }),
       'AUTH + SELECT: the node reads db 3');
    ($rc) = cli($port, qw(suspend consumer x password=wrong));
    is($rc, 3, 'CLI with a wrong password: exit 3');
    $n->stop;
    # a first connect that times out (a worker starved of CPU, valgrind)
    # is retried, and is not a handshake failure
    my $log = join "\n", grep { !/down: connect timed out/ }
                         split /\n/, $n->error_log;
    unlike($log, qr/handshake|connection down/, 'no handshake failure');

    my $bad = gateway(redis => $port, redis_opts => 'password=wrong');
    is(code_of(get($bad, 'assistance')), 'policy_unavailable',
       'wrong password: fails closed');
    $bad->stop;
    like($bad->error_log, qr/handshake: .*(WRONGPASS|invalid)/i,
         'wrong password: logged');
    kill 'TERM', $pid;
    waitpid $pid, 0;
}

for my $n (@gw) {
    $n->stop;
    my $log = $n->error_log;
    unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit in the log');
    unlike($log, qr/connection down/, 'Redis stayed up');
}

done_testing;
