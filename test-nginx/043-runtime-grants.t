# Run-time grants: `datagate grant add FILE.yaml` writes a grant (same
# schema as the policy's) into Redis with a MAC keyed from datagate_secret;
# every node honours it without a reload, and a removal within 1 second.
# Values that do not verify (forged, another key's, another secret's) are
# ignored and logged.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest qw(:DEFAULT $CLI);
use DGRedis;

my $redis = start_redis();
my $rp = $redis->port;
my $secret = shared_secret();

my @gw = map { gateway(redis => $rp, secret => $secret, workers => 2) }
         1 .. 2;

# grant add checks every grant against the policy the gateways load:
# --policy, else $DATAGATE_POLICY (here, for every call below)
$ENV{DATAGATE_POLICY} = $gw[0]->policy_file;

my $dir = DGTest::base_dir();
DGTest::spew("$dir/hrss.yaml", <<'Y');
consumer: hrss.portal
dataset: population.person
purposes: [social-assistance]
methods: [GET]
Y

for my $n (@gw) {
    my $r = get($n, 'hrss');
    is($r->status, 403, 'before: hrss has no grant');
    is(code_of($r), 'purpose_not_granted', 'before: purpose_not_granted');
}

my ($rc, $out) = cli($rp, 'grant', 'add', "$dir/hrss.yaml",
                     '--secret', $secret);
is($rc, 0, 'grant add: exit 0') or diag($out);

for my $n (@gw) {
    my $r;
    my $t = poll_until(2, sub { ($r = get($n, 'hrss'))->status == 200 });
    ok(defined $t && $t < DGTest::secs(1),
       'node ' . $n->port . ': run-time grant honoured within 1 s')
        or diag($r->status . ' ' . $r->body);
    like($r->body, qr/"id_card":\s*"450103\*{8}1242"/,
         'the response is masked as for any grant');
}

my $v = $redis->cmd('GET', 'datagate:grant:hrss.portal|population.person');
like($v, qr/^DG1 [0-9a-f]{64}\nconsumer: hrss\.portal\n/,
     'stored as "DG1 MAC\\nYAML" (docs/redis.md)');

($rc, $out) = cli($rp, 'grant', 'list');
like($out, qr/^hrss\.portal\|population\.person$/m, 'grant list');

# a frozen run-time grant answers "frozen"
cli($rp, qw(freeze grant hrss.portal population.person));
ok(defined poll_until(1, sub { code_of(get($gw[0], 'hrss'))
                               eq 'dataset_frozen' }),
   'freeze grant applies to a run-time grant');
cli($rp, qw(unfreeze grant hrss.portal population.person));
ok(defined poll_until(1, sub { get($gw[0], 'hrss')->status == 200 }),
   'unfreeze');

# withdrawal
($rc, $out) = cli($rp, qw(grant remove hrss.portal population.person));
is($rc, 0, 'grant remove: exit 0') or diag($out);

for my $n (@gw) {
    my $t = poll_until(2, sub { get($n, 'hrss')->status == 403 });
    ok(defined $t && $t < DGTest::secs(1),
       'node ' . $n->port . ': withdrawn within 1 s');
}

# --- values that must not grant anything -----------------------------------

my $yaml = DGTest::slurp("$dir/hrss.yaml");
my $key = 'datagate:grant:hrss.portal|population.person';

my %bad = (
    'a forged MAC'       => 'DG1 ' . ('ab' x 32) . "\n" . $yaml,
    'no envelope'        => $yaml,
    'a truncated MAC'    => "DG1 abcd\n" . $yaml,
);

for my $what (sort keys %bad) {
    $redis->cmd('SET', $key, $bad{$what});
    $redis->cmd('PUBLISH', 'datagate:events', 'grant add test');
    sleep DGTest::secs(0.2);
    is(get($gw[0], 'hrss')->status, 403, "$what: ignored");
}

# a valid value moved to another key does not verify there
{
    cli($rp, 'grant', 'add', "$dir/hrss.yaml", '--secret', $secret);
    my $good = $redis->cmd('GET', $key);
    $redis->cmd('DEL', $key);
    my $mkey = 'datagate:grant:market.supervision|population.person';
    (my $moved = $good) =~ s/hrss\.portal/market.supervision/;
    $redis->cmd('SET', $mkey, $moved);
    $redis->cmd('PUBLISH', 'datagate:events', 'grant add test');
    sleep DGTest::secs(0.2);
    is(get($gw[0], 'market', uri => '/person/1')->status, 403,
       'a grant moved to another consumer is ignored');
    $redis->cmd('DEL', $mkey);
}

# signed with another key file
{
    my $other = "$dir/other.secret";
    open my $r, '<', '/dev/urandom' or die;
    read $r, my $k, 40;
    DGTest::spew($other, $k, 0600);
    cli($rp, 'grant', 'add', "$dir/hrss.yaml", '--secret', $other);
    sleep DGTest::secs(0.2);
    is(get($gw[1], 'hrss')->status, 403,
       'a grant signed with another secret is ignored');
    $redis->cmd('DEL', $key);
}

# a run-time grant carries its own limits
{
    DGTest::spew("$dir/limited.yaml", $yaml . "rate: 1r/s burst=1\n");
    cli($rp, 'grant', 'add', "$dir/limited.yaml", '--secret', $secret);
    ok(defined poll_until(1, sub { get($gw[0], 'hrss')->status == 200 }),
       'limited run-time grant in force');
    my %st;
    $st{ get($gw[0], 'hrss')->status }++ for 1 .. 4;
    ok($st{429}, 'its rate limit applies') or diag(explain \%st);
    $redis->cmd('DEL', $key);
}

# CLI checks
{
    DGTest::spew("$dir/bad.yaml", "consumer: hrss.portal\n"
                 . "dataset: no.such.dataset\npurposes: [social-assistance]\n");
    ($rc, $out) = cli($rp, 'grant', 'add', "$dir/bad.yaml", '--secret',
                      $secret, '--policy', $gw[0]->policy_file);
    is($rc, 1, 'grant add --policy: a grant the policy rejects, exit 1');
    like($out, qr/no\.such\.dataset|dataset/, 'and says why');
    is($redis->cmd('EXISTS', 'datagate:grant:hrss.portal|no.such.dataset'),
       0, 'nothing written');

    ($rc, $out) = cli($rp, 'grant', 'add', "$dir/hrss.yaml");
    is($rc, 2, 'grant add without --secret: usage error');

    DGTest::spew("$dir/short.secret", "too short\n", 0600);
    ($rc, $out) = cli($rp, 'grant', 'add', "$dir/hrss.yaml", '--secret',
                      "$dir/short.secret");
    is($rc, 3, 'a key file under 32 bytes is refused');

    ($rc, $out) = cli($rp, 'grant', 'add', "$dir/hrss.yaml", '--secret',
                      $secret, '--policy', $gw[0]->policy_file);
    is($rc, 0, 'grant add --policy: a good grant') or diag($out);
    $redis->cmd('DEL', $key);
}

# a run-time grant on an unconditional dataset only adds: here a budget
# for market on enterprise.registry (by clearance, unlimited) for one
# purpose; a freeze of the pair holds whatever purpose is declared
{
    my $other = sub {
        $gw[0]->request(GET => '/enterprise/1', cert => 'market',
                        headers => ['Data-Purpose: employment-service']);
    };
    DGTest::spew("$dir/market.yaml", <<'Y');
consumer: market.supervision
dataset: enterprise.registry
purposes: [social-assistance]
rate: 1r/m burst=1
valid: {until: 2099-12-31}
Y
    is(get($gw[0], 'market')->status, 200,
       'unconditional, no grant: allowed by clearance');
    ($rc, $out) = cli($rp, 'grant', 'add', "$dir/market.yaml", '--secret',
                      $secret);
    is($rc, 0, 'grant add on an unconditional dataset') or diag($out);
    unlike($out, qr/replaces/, 'a first grant replaces nothing');
    ok(defined poll_until(2, sub { get($gw[0], 'market')->status == 429 }),
       'its rate applies to its purpose');
    is($other->()->status, 200,
       'another purpose: by clearance, not limited by the grant');

    cli($rp, qw(freeze grant market.supervision enterprise.registry));
    ok(defined poll_until(1, sub { code_of($other->()) eq 'dataset_frozen' }),
       'freeze grant on an unconditional dataset: the pair, any purpose');
    cli($rp, qw(unfreeze grant market.supervision enterprise.registry));
    ok(defined poll_until(1, sub { $other->()->status == 200 }), 'unfreeze');

    ($rc, $out) = cli($rp, 'grant', 'add', "$dir/market.yaml", '--secret',
                      $secret);
    like($out, qr/replaces the earlier run-time grant/,
         'grant add says when it replaces one');

    ($rc, $out) = cli($rp, qw(grant remove market.supervision
                              enterprise.registry));
    is($rc, 0, 'grant remove') or diag($out);
    ok(defined poll_until(2, sub { get($gw[0], 'market')->status == 200 }),
       'removed: back to access by clearance, no grant budget');
    ($rc, $out) = cli($rp, qw(grant remove market.supervision
                              enterprise.registry));
    like($out, qr/there was none/, 'removing it again: there was none');

    # what the gateways would ignore is never written
    DGTest::spew("$dir/gone.yaml", <<'Y');
consumer: market.supervision
dataset: enterprise.registry
purposes: [social-assistance]
rate: 1r/m
valid: {until: 2020-12-31}
Y
    ($rc, $out) = cli($rp, 'grant', 'add', "$dir/gone.yaml", '--secret',
                      $secret);
    is($rc, 1, 'an expired grant: refused');
    like($out, qr/ended with 2020-12-31/, '... and says so');
    is($redis->cmd('EXISTS',
                   'datagate:grant:market.supervision|enterprise.registry'),
       0, '... nothing written');
}

for my $n (@gw) {
    $n->stop;
    my $log = $n->error_log;
    unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit');
    like($log, qr/MAC does not verify/, 'log: MAC failures named')
        if $n == $gw[0];
}

# a node without datagate_secret ignores run-time grants, and says so
{
    my $n = gateway(redis => $rp);
    cli($rp, 'grant', 'add', "$dir/hrss.yaml", '--secret', $secret);
    is(get($n, 'hrss')->status, 403, 'no datagate_secret: ignored');
    $n->stop;
    like($n->error_log, qr/run-time grants in redis are ignored/,
         'no datagate_secret: logged');
}

done_testing;
