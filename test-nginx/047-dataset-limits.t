# Rate limits and quotas of datasets: `rate:` and `quota:` on a dataset
# give each consumer a budget of its own (dataset:CONSUMER|DATASET); a
# grant that applies and sets its own rate (or quota) is counted in the
# grant budget (CONSUMER|DATASET) instead, and the kind it does not set
# stays the dataset's. Unconditional datasets, with and without a grant;
# two consumers; the embedded zone and one cluster budget on Redis; the
# quota state file.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest;
use DGRedis qw(code_of cli);

# assistance and market: clearance 2; hrss: clearance 3
sub policy_of {
    my (%o) = @_;
    my $ds = $o{dataset} // '';
    my $gr = $o{grants} // '';
    return <<"Y";
classes:
  person.id_number: {level: 4, mask: id_card}
purposes:
  p: {name: P}
  q: {name: Q}
consumers:
  - id: assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
  - id: hrss
    cert: {san: "DNS:hrss.gx.gov.cn"}
    clearance: 3
  - id: market
    cert: {subject: "CN=market-supervision,O=Market Supervision,C=CN"}
    clearance: 2
datasets:
  - id: ent
    share: unconditional
    level: 1
    fields: {id_card: person.id_number}
$ds
  - id: cond
    share: conditional
    level: 3
    fields: {id_card: person.id_number}
$ds
grants:
  - consumer: hrss
    dataset: cond
    purposes: [p]
$gr
Y
}

my $CONFIG = <<'C';
        location /enterprise/ {
            datagate_dataset ent;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location /person/ {
            datagate_dataset cond;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
C

sub node {
    my (%o) = @_;
    my $http = $o{http_config} // '';
    $http .= "    datagate_redis 127.0.0.1:$o{redis};\n" if $o{redis};
    return start_nginx(policy => policy_of(%o), config => $CONFIG,
                       http_config => $http, workers => $o{workers} // 1);
}

sub call {
    my ($n, $cert, $purpose, $uri) = @_;
    return $n->request(GET => $uri // '/enterprise/1', cert => $cert,
                       headers => ["Data-Purpose: $purpose"]);
}

# statuses of $count calls, e.g. "200 200 429"
sub run {
    my ($n, $count, @who) = @_;
    return join ' ', map { call($n, @who)->status } 1 .. $count;
}

# --- a rate on an unconditional dataset, no grant: one budget each --------

{
    # 1r/m: an idle budget admits burst + 1 = 3, the next one a minute later
    my $n = node(dataset => "    rate: 1r/m burst=2\n", workers => 2);
    is(run($n, 5, 'market', 'p'), '200 200 200 429 429',
       'dataset rate: burst + 1 admitted, then 429');
    my $r = call($n, 'market', 'q');
    is($r->status, 429, 'another purpose: the same budget (the consumer\'s)');
    is(code_of($r), 'rate_limited', 'rate_limited');
    is($r->header('RateLimit-Limit'), 3, 'RateLimit-Limit: burst + 1');
    is($r->header('RateLimit-Remaining'), 0, 'RateLimit-Remaining: 0');
    like($r->header('Retry-After') // '', qr/^[1-9]\d*$/, 'Retry-After');
    like($r->json->{error}{message}, qr/rate limit exceeded: 0\.017/,
         'message names the rate');
    is(run($n, 4, 'assistance', 'p'), '200 200 200 429',
       'a second consumer has a budget of its own');
    is(run($n, 4, 'hrss', 'q'), '200 200 200 429', 'and a third');
    is(call($n, 'market', 'p', '/person/1')->status, 403,
       'cond: market has no grant (decided before any limit)');
    is(run($n, 4, 'hrss', 'p', '/person/1'), '200 200 200 429',
       'cond: a grant without a rate takes the dataset\'s');
    is(call($n, 'hrss', 'q')->status, 429,
       'hrss on ent still limited: one budget per (consumer, dataset)');
    $n->stop;
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'clean log');
}

# --- a grant on an unconditional dataset: its own budget, for its purpose --

{
    my $n = node(dataset => "    rate: 1r/m burst=1\n    quota: 5/day\n",
                 grants => <<'G');
  - consumer: market
    dataset: ent
    purposes: [p]
    rate: 1r/m burst=3
G
    is(run($n, 5, 'market', 'p'), '200 200 200 200 429',
       'grant rate for p: burst 3 + 1, in the grant budget');
    # the grant sets no quota: the dataset's 5/day counted those 4 too
    is(call($n, 'market', 'q')->status, 200,
       'no grant for q: the dataset rate, in the dataset budget');
    my $r = call($n, 'market', 'q');
    is($r->status, 429, 'the fifth admission of market used the quota up');
    like($r->json->{error}{message}, qr/quota exhausted: 5 requests per day/,
         '... the dataset\'s quota, which counted the grant\'s requests');
    is(run($n, 3, 'assistance', 'p'), '200 200 429',
       'another consumer: the dataset rate, a budget of its own');
    $n->stop;
}

# --- quotas: the grant's replaces the dataset's for its requests -----------

{
    my $n = node(dataset => "    quota: 3/day\n", grants => <<'G');
  - consumer: market
    dataset: ent
    purposes: [p]
    quota: 5/day
  - consumer: assistance
    dataset: ent
    purposes: [p]
    rate: 100r/s burst=100
G
    is(run($n, 6, 'market', 'p'), '200 200 200 200 200 429',
       'grant quota 5/day for p');
    my $r = call($n, 'market', 'p');
    like($r->json->{error}{message}, qr/quota exhausted: 5 requests per day/,
         'message names the grant\'s quota');
    is($r->header('RateLimit-Limit'), 5, 'RateLimit-Limit: the quota');
    is(run($n, 4, 'market', 'q'), '200 200 200 429',
       'for q: the dataset quota 3/day, a budget apart');
    is(run($n, 4, 'assistance', 'p'), '200 200 200 429',
       'a grant that sets only a rate: the dataset quota still counts');
    like(call($n, 'assistance', 'q')->json->{error}{message},
         qr/quota exhausted: 3 requests per day/,
         '... in the same dataset budget as its other purposes');
    is(run($n, 4, 'hrss', 'q'), '200 200 200 429',
       'a consumer without grants: its own 3');
    ok($n->reload, 'reload');
    is(call($n, 'hrss', 'q')->status, 429,
       'a dataset budget survives a reload (the zone is kept)');
    $n->stop;
}

# --- the quota state file keeps dataset budgets across a restart ----------

{
    my $dir = DGTest::base_dir();
    my $state = "$dir/dataset-quota.state";
    unlink $state;
    my %o = (dataset => "    quota: 2/day\n",
             http_config => "    datagate_state $state interval=0;\n");
    my $n = node(%o);
    is(run($n, 3, 'market', 'q'), '200 200 429', 'state: quota used up');
    $n->stop;
    like(DGTest::slurp($state), qr/^\d+ 86400 2 dataset:market\|ent$/m,
         'state file: the dataset budget line');
    $n = node(%o);
    is(call($n, 'market', 'q')->status, 429,
       'after a restart: still used up');
    is(call($n, 'assistance', 'q')->status, 200, 'another consumer: not');
    $n->stop;
}

# --- one cluster budget on Redis --------------------------------------------

{
    my $redis = start_redis();
    my $rp = $redis->port;
    my %o = (redis => $rp, dataset => "    quota: 4/day\n    rate: 1r/m burst=9\n",
             grants => <<'G');
  - consumer: market
    dataset: ent
    purposes: [p]
    quota: 2/day
G
    my @n = (node(%o), node(%o));
    my @st = map { call($n[$_ % 2], 'assistance', 'q')->status } 0 .. 5;
    is("@st", '200 200 200 200 429 429',
       'two gateways share one dataset budget per consumer');
    @st = map { call($n[$_ % 2], 'market', 'p')->status } 0 .. 2;
    is("@st", '200 200 429', 'market p: the grant quota, shared');
    @st = map { call($n[$_ % 2], 'market', 'q')->status } 0 .. 4;
    is("@st", '200 200 200 200 429', 'market q: its own dataset budget');

    my @keys = sort @{ $redis->cmd('KEYS', 'datagate:*') // [] };
    my $k = join "\n", @keys;
    like($k, qr/^datagate:quota:dataset:assistance\|ent:\d+$/m,
         'redis: dataset quota key of assistance');
    like($k, qr/^datagate:quota:dataset:market\|ent:\d+$/m,
         'redis: dataset quota key of market');
    like($k, qr/^datagate:quota:market\|ent:\d+$/m,
         'redis: grant quota key of market');
    like($k, qr/^datagate:rl:dataset:market\|ent$/m,
         'redis: the dataset rate of market (the grant sets none)');
    unlike($k, qr/^datagate:rl:market\|ent$/m, 'redis: no grant rate key');
    my ($qk) = grep { /^datagate:quota:dataset:assistance\|ent:/ } @keys;
    is($redis->cmd('GET', $qk), 4, 'redis: 4 admitted for assistance');

    $_->stop for @n;
    for (@n) {
        unlike($_->error_log, qr/\[(alert|crit|emerg)\]/, 'clean log');
    }
    $redis->stop;
}

done_testing;
