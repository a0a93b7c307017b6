# The decision cache's second tier: decisions shared through Redis under a
# key with the policy version, each value carrying an HMAC from
# datagate_secret.  Two gateways on one redis-server: a decision computed
# on node A is in Redis with a valid MAC and serves node B; a value
# written by anyone else (forged, or copied from another key) never
# grants; a policy reload changes the key; a warm shared-memory cache
# costs no Redis I/O; Redis down: decided locally.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_hex hmac_sha256 hmac_sha256_hex);
use Time::HiRes qw(time sleep);
use DGTest qw(:DEFAULT $CLI);
use DGRedis;

my $redis = start_redis();
my $rp = $redis->port;
my $secret = shared_secret();

my $logfmt = <<'H';
    log_format dgc '$datagate_cache $datagate_reason $status';
    access_log $TEST_NGINX_TESTDIR/dgc.log dgc;
H

my @gw = map {
    gateway(redis => $rp, secret => $secret, http_config => $logfmt,
            workers => 2)
} 1 .. 2;
my ($A, $B) = @gw;

# the gateway's lines (the origin, in the same http block, logs "- -")
sub cache_log {
    my ($n) = @_;
    return [grep { !/^- - / } split /\n/, DGTest::slurp($n->dir . '/dgc.log')];
}

sub last_cache {
    my ($n) = @_;
    my $l = cache_log($n);
    return @$l ? $l->[-1] : '';
}

sub policy_version {
    my ($n) = @_;
    my $data = DGTest::slurp($n->policy_file);
    return sha256_hex("policy.yaml\0" . pack('Q>', length $data) . $data);
}

sub dkeys {
    my $ks = $redis->cmd('KEYS', 'datagate:decision:*');
    my @k = ref $ks ? sort @$ks : ();
    return @k;
}

my $mkey = do {
    my $s = DGTest::slurp($secret);
    $s =~ s/[\r\n]+\z//;
    hmac_sha256('redis-decision', $s);
};

# (ok, reason) of a value under a key, for the policy version $ver
sub verify {
    my ($key, $val, $ver) = @_;
    return (0, 'no value') unless defined $val;
    my ($body, $mac) = $val =~ /\A(DGD1 .*) ([0-9a-f]{64})\z/s
        or return (0, 'malformed');
    my $want = hmac_sha256_hex("$ver\n$key\n$body", $mkey);
    return ($want eq $mac, (split / /, $body)[1]);
}

# 1. node A decides, Redis keeps it with a valid MAC

is(get($A, 'assistance')->status, 200, 'node A: assistance allowed');
is(last_cache($A), 'miss ok 200', 'node A: decided (shared-memory miss)');

my $ver = policy_version($A);
my $akey = "datagate:decision:" . substr($ver, 0, 16)
         . ":civil-affairs.assistance|population.person|social-assistance"
         . "|1|*";
my $t0 = time;
my $aval;
poll_until(1, sub { defined($aval = $redis->cmd('GET', $akey)) });
ok(defined $aval, "the decision is in Redis under $akey")
    or diag(join ' ', dkeys());
my ($ok, $reason) = verify($akey, $aval, $ver);
ok($ok, 'its MAC verifies with the key from datagate_secret');
is($reason, 'ok', 'it says ok');
my $ttl = $redis->cmd('TTL', $akey);
ok($ttl > 0 && $ttl <= 30, "it expires with the cache ttl ($ttl s)");

# 2. node B: shared-memory miss, answered from Redis

is(get($B, 'assistance')->status, 200, 'node B: assistance allowed');
is(last_cache($B), 'redis ok 200', 'node B: the decision came from Redis');
is(get($B, 'assistance')->status, 200, 'node B again');
is(last_cache($B), 'hit ok 200', 'node B: now from shared memory');

# 3. warm caches: no Redis GET per request

sub gets {
    my $info = $redis->cmd('INFO', 'commandstats');
    return $info =~ /cmdstat_get:calls=(\d+)/ ? $1 : 0;
}
{
    my $before = gets();
    for (1 .. 10) {
        get($_, 'assistance') for @gw;
    }
    is(gets(), $before, 'warm shared-memory cache: no GET in 20 requests');
}

# 4. a forged value never grants: hrss has no grant

my $hkey = "datagate:decision:" . substr($ver, 0, 16)
         . ":hrss.portal|population.person|social-assistance|1|*";
my $forged = "DGD1 ok 0 0 5 " . (time + 600) . " " . ('0' x 64);
$redis->cmd('SET', $hkey, $forged);
{
    my $r = get($B, 'hrss');
    is($r->status, 403, 'forged "ok" in Redis: hrss still denied');
    is(code_of($r), 'purpose_not_granted', 'purpose_not_granted');
    is(last_cache($B), 'miss purpose_not_granted 403',
       'the forged value was not used');
    like($B->error_log, qr/decision "\Q$hkey\E" in redis ignored: .*MAC/,
         'logged');
    my ($v, $why);
    poll_until(1, sub {
        ($v, $why) = verify($hkey, $redis->cmd('GET', $hkey), $ver);
        $v });
    ok($v, 'overwritten with a value that verifies');
    is($why, 'purpose_not_granted', '... saying purpose_not_granted');
}

# a valid value copied to another key does not verify there
{
    my $ekey = $hkey =~ s/social-assistance/employment-service/r;
    $redis->cmd('SET', $ekey, $aval);
    my $r = $A->request(GET => '/person/1', cert => 'hrss',
                        headers => ['Data-Purpose: employment-service']);
    is($r->status, 403, 'a copied value: denied');
    is(code_of($r), 'purpose_not_granted', 'purpose_not_granted');
    is(last_cache($A), 'miss purpose_not_granted 403', 'not used');
    ok(poll_until(1, sub {
           (verify($ekey, $redis->cmd('GET', $ekey), $ver))[0] }),
       'overwritten');
}

# a value that is not a string is overwritten too, nothing breaks
{
    my $mkey2 = "datagate:decision:" . substr($ver, 0, 16)
              . ":market.supervision|enterprise.registry|social-assistance"
              . "|1|*";
    $redis->cmd('HSET', $mkey2, 'a', 'b');
    is(get($A, 'market')->status, 200, 'a hash under the key: allowed');
    ok(poll_until(1, sub {
           (verify($mkey2, eval { $redis->cmd('GET', $mkey2) }, $ver))[0] }),
       'replaced by a valid value');
}

# 5. a policy reload changes the key; the old decision is never used

{
    my $p2 = policy() =~ s/purposes: \[social-assistance\]/purposes: [employment-service]/r;
    ok($A->reload(policy => $p2), 'node A: reload, the grant for another '
                                  . 'purpose');
    my $ver2 = policy_version($A);
    isnt(substr($ver2, 0, 16), substr($ver, 0, 16), 'a new version');
    my $r = get($A, 'assistance');
    is($r->status, 403, 'node A, new policy: the old "ok" does not answer');
    is(code_of($r), 'purpose_not_granted', 'purpose_not_granted');
    my $nkey = $akey =~ s/:\Q@{[substr($ver, 0, 16)]}\E:/:@{[substr($ver2, 0, 16)]}:/r;
    my $nval;
    poll_until(1, sub { defined($nval = $redis->cmd('GET', $nkey)) });
    my ($v, $why) = verify($nkey, $nval, $ver2);
    ok($v, 'the new decision is under the new version\'s key');
    is($why, 'purpose_not_granted', '... saying purpose_not_granted');
    ($v, $why) = verify($akey, $redis->cmd('GET', $akey), $ver);
    is($why, 'ok', 'the old key is untouched');
    is(get($B, 'assistance')->status, 200, 'node B: old policy, allowed');
    ok($A->reload(policy => policy()), 'node A: back to the first policy');
    is(get($A, 'assistance')->status, 200, 'node A: allowed again');
}

# 6. Redis down: decided locally at once (incident state within stale=)

{
    get($A, 'market');                  # incident state fresh
    $redis->stop;
    my ($r, $secs) = (undef, 0);
    my $t = time;
    $r = $A->request(GET => '/enterprise/1', cert => 'market',
                     headers => ['Data-Purpose: employment-service']);
    $secs = time - $t;
    is($r->status, 200, 'Redis down: a new decision is made locally');
    ok($secs < DGTest::secs(0.5),
       sprintf('without waiting (%.3f s)', $secs));
    like(last_cache($A), qr/^miss ok 200$/, 'a miss, computed here');
    $redis = DGRedis::redis_on($rp);
}

# 7. without datagate_secret the tier is off (nodes could not verify)

{
    $redis->cmd('FLUSHALL');
    my $n = gateway(redis => $rp, http_config => $logfmt);
    is(get($n, 'assistance')->status, 200, 'no secret: allowed');
    my @k = dkeys();
    is(scalar @k, 0, 'no secret: nothing written to Redis');
    $n->stop;
    like($n->error_log, qr/decisions are not shared through redis/,
         'says so at start');
}

for my $n (@gw) {
    $n->stop;
    my $log = $n->error_log;
    unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit in the log');
    is(count_matches($log, qr/in redis ignored/), 1,
       'a bad value is logged once per worker')
        if $n == $B;
}

$redis->stop;

done_testing;
