# The status page (datagate_status, ?format=html or a client preferring
# text/html): one self-contained document that reads the JSON of its own
# location; in headless Chromium it loads with no console error and no
# request outside its origin, and shows the numbers of a known run (calls
# by department, consumer, dataset, purpose; denials by reason; masked
# fields; quotas; incident controls; audit head; Redis).  The screenshot is
# kept in build/test-output/.  The Grafana dashboard in docs/ queries only
# metrics the Prometheus output has.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use DGTest;
use DGBrowser;
use DGRedis qw(cli poll_until);

binmode(Test::More->builder->$_, ':utf8') for qw(output failure_output
                                                 todo_output);

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
    name: "企业登记 <img src=http://203.0.113.9/x.png onerror=alert(1)>"
    provider: 自治区市场监督管理局
    share: unconditional
    level: 2
    fields: {legal_rep: person.name, legal_rep_id: person.id_number,
             phone: person.phone}
grants:
  - consumer: civil-affairs.assistance
    dataset: population.person
    purposes: [social-assistance]
    valid: {from: 2024-01-01, until: 2099-12-31}
    quota: 5/day
YAML

my $out_dir = "$DGTest::TOP/build/test-output";
mkdir $out_dir;

my $n = DGTest::Nginx->new(policy => $policy, workers => 2);
my $up = $n->upstream_port;
my $mon = free_port();
my $audit = $n->dir . '/audit.log';
# the status location on a monitoring listener without client
# certificates, as an operator would put it (the browser has none)
$n->{http_config} = <<"EOF";
    datagate_audit_log $audit;
    server {
        listen 127.0.0.1:$mon;
        location = /datagate/status {
            datagate_status;
            allow 127.0.0.1;
            deny all;
        }
    }
EOF
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
        location = /status {
            datagate_status;
        }
EOF
$n->start;

my $base = "http://127.0.0.1:$mon/datagate/status";
sub mon {
    my ($q, @h) = @_;
    return DGTest::http_request('GET', "/datagate/status$q", port => $mon,
                                ssl => 0, headers => [@h]);
}

# --- a known run ------------------------------------------------------------------

my @mr = ('Data-Purpose: market-regulation');
my @pa = ('Data-Purpose: social-assistance');
my %got;
$got{$n->request('GET', '/enterprise/1', cert => 'market',
                 headers => \@mr)->status}++ for 1 .. 7;
$got{$n->request('GET', '/enterprise/2', cert => 'market')->status}++
    for 1 .. 3;
$got{$n->request('GET', '/enterprise/1', cert => 'unknown',
                 headers => \@mr)->status}++ for 1 .. 2;
$got{$n->request('GET', '/person/1', cert => 'assistance',
                 headers => \@pa)->status}++ for 1 .. 6;
is_deeply(\%got, { 200 => 12, 403 => 5, 429 => 1 },
          'the run: 12 allowed, 5 refused, 1 over its quota');

sub wait_records {
    my ($want) = @_;
    my $until = time + DGTest::secs(5);
    while (time < $until) {
        my @l = split /\n/, DGTest::slurp($audit);
        return scalar @l if @l >= $want;
        sleep 0.02;
    }
    return 0;
}
is(wait_records(18), 18, 'every call is recorded');

# --- the JSON the page reads ------------------------------------------------------

my $st = mon('?format=json')->json;
is($st->{names}{consumers}{'market.supervision'}, '自治区市场监督管理局',
   'names: the department of each consumer');
is($st->{names}{datasets}{'population.person'}, '人口基础信息',
   'names: datasets');
is($st->{names}{purposes}{'social-assistance'}, '社会救助资格核验',
   'names: purposes');
my ($q) = grep { $_->{consumer} eq 'civil-affairs.assistance' }
          @{ $st->{quotas} };
ok($q, 'quotas: the grant budget') or diag(explain($st->{quotas}));
is($q->{dataset}, 'population.person', 'quotas: its dataset');
is($q->{budget}, 'grant', 'quotas: the grant budget');
is($q->{quota}, '5/day', 'quotas: the quota as written');
is($q->{limit}, 5, 'quotas: the limit');
is($q->{period}, 86400, 'quotas: a day');
is($q->{used}, 5, 'quotas: 5 used');
is($q->{exhausted}, JSON::PP::true, 'quotas: exhausted');
is_deeply($st->{incidents}, { enabled => JSON::PP::false, controls => [] },
          'incidents: none without Redis');

# --- the page: format=html, Accept, headers, self-contained ------------------------

my $r = mon('?format=html');
is($r->status, 200, 'format=html: 200');
is($r->header('Content-Type'), 'text/html; charset=utf-8',
   'format=html: text/html');
is($r->header('Cache-Control'), 'no-store', 'format=html: not cached');
is($r->header('X-Content-Type-Options'), 'nosniff', 'format=html: nosniff');
my $csp = $r->header('Content-Security-Policy') // '';
like($csp, qr/default-src 'none'/, 'CSP: nothing by default');
like($csp, qr/script-src 'sha256-[A-Za-z0-9+\/]{43}='/,
     'CSP: the one script, by hash');
like($csp, qr/connect-src 'self'/, 'CSP: JSON from its own origin');
unlike($csp, qr/unsafe/, 'CSP: nothing unsafe');
my $page = $r->body;
cmp_ok(length $page, '<=', 200 * 1024, 'the page: at most 200 KB');
is($page, DGTest::slurp("$DGTest::TOP/module/status/status.html"),
   'the page is module/status/status.html, byte for byte');
my @ext = $page =~ m{((?:src|href)\s*=\s*["']?[^"'\s>]+|url\([^)]*\)|\@import[^;]*|\b(?:https?|ftp|wss?):/)}gi;
is_deeply(\@ext, [], 'the page references nothing outside itself')
    or diag(explain(\@ext));
is(scalar(() = $page =~ /<script\b/gi), 1, 'one inline script');
is(scalar(() = $page =~ /<style\b/gi), 1, 'one inline style');

for my $t (['text/html,application/xhtml+xml,application/xml;q=0.9,'
            . '*/*;q=0.8', 'html', 'a browser'],
           ['*/*', 'json', 'a wildcard (curl)'],
           ['application/json', 'json', 'JSON'],
           ['application/json, text/html;q=0.9', 'json', 'JSON first'],
           ['text/html;q=0.5, application/json;q=0.4', 'html',
            'html preferred by q'],
           ['text/html;q=0', 'json', 'html refused (q=0)'],
           ['TEXT/HTML', 'html', 'any case'],
           ['text/html;level=1;q=0.2,application/json;q=0.1', 'html',
            'parameters before q'],
           ['application/openmetrics-text;version=1.0.0,text/plain;'
            . 'version=0.0.4;q=0.5,*/*;q=0.1', 'json', 'a Prometheus agent'])
{
    my ($accept, $want, $what) = @$t;
    my $res = mon('', "Accept: $accept");
    my $type = $res->header('Content-Type') // '';
    is($type =~ /html/ ? 'html' : $type =~ /json/ ? 'json' : $type, $want,
       "Accept: $what -> $want");
    is($res->header('Vary'), 'Accept', "Accept: $what: Vary: Accept");
}
like(mon('?format=json', 'Accept: text/html')->header('Content-Type'),
     qr{application/json}, 'format=json wins over Accept');
is(mon('?format=html', 'Accept: application/json')->header('Content-Type'),
   'text/html; charset=utf-8', 'format=html wins over Accept');
{
    my $h = DGTest::http_request('HEAD', '/datagate/status?format=html',
                                 port => $mon, ssl => 0);
    is($h->status, 200, 'HEAD format=html: 200');
    is($h->body, '', 'HEAD format=html: no body');
}
# on the mutual-TLS server too
like($n->request('GET', '/status?format=html', cert => 'market')->body,
     qr/<title>datagate status<\/title>/, 'format=html over mutual TLS');

# --- in Chromium ---------------------------------------------------------------

SKIP: {
    skip 'chromium is not installed (scripts/install-deps.sh test)', 1
        unless DGBrowser::chromium();

    my $shot = "$out_dir/status-page.png";
    unlink $shot;
    my $tables = <<'JS';
(() => {
  const t = {};
  for (const id of ["by-department", "by-consumer", "by-dataset",
                    "by-purpose", "denials", "masked", "quotas", "limited",
                    "incidents"]) {
    t[id] = [...document.querySelectorAll("#" + id + " tr")].slice(1)
      .map(tr => [...tr.cells].map(c => c.textContent));
  }
  t.tiles = Object.fromEntries([...document.querySelectorAll(".tile")]
    .map(d => [d.dataset.key, d.querySelector("b").textContent]));
  t.audit = Object.fromEntries([...document.querySelectorAll("#audit dt")]
    .map(dt => [dt.textContent, dt.nextElementSibling.textContent]));
  t.redis = document.getElementById("redis").textContent;
  t.state = document.getElementById("state").textContent;
  return t;
})()
JS
    my $p = DGBrowser::load("$base?format=html&refresh=1",
                            wait_for => 'document.body.dataset.loaded >= 1',
                            eval => $tables, screenshot => $shot);
    is($p->{error}, undef, 'chromium: the page loads') or diag($p->{error});
    ok(!$p->{timed_out}, 'chromium: the page read its JSON');
    is_deeply($p->{console}, [], 'chromium: no console error');
    is_deeply($p->{external}, [], 'chromium: no request outside its origin');
    is_deeply([sort { $a cmp $b } keys %{ { map { $_ => 1 }
                                        @{ $p->{requests} } } }],
              ["$base?format=html&refresh=1", "$base?format=json"],
              'chromium: the page and its JSON, nothing else')
        or diag(explain($p->{requests}));
    ok(-s $shot, "chromium: screenshot $shot");
    diag("status page screenshot: $shot");
    {
        open my $fh, '<:raw', $shot;
        read $fh, my $head, 24;
        my ($w, $h) = unpack 'x16 N N', $head // '';
        is(substr($head // '', 0, 8), "\x89PNG\r\n\x1a\n", 'a PNG');
        is("${\($w // 0)}x${\($h // 0)}", '1280x1600', 'of the viewport');
    }

    my $t = $p->{value} || {};
    my %rows = map { my $k = $_; ($k => { map { ($_->[0] => $_) }
                                          @{ $t->{$k} } }) }
               grep { ref $t->{$_} eq 'ARRAY' } keys %$t;
    is($t->{tiles}{requests}, '18', 'tile: 18 requests');
    is($t->{tiles}{allowed}, '12', 'tile: 12 allowed');
    is($t->{tiles}{denied}, '6', 'tile: 6 denied');
    is($t->{tiles}{'rate limited'}, '1', 'tile: 1 rate limited');
    is($t->{tiles}{'audit records'}, '18', 'tile: 18 audit records');
    is($t->{tiles}{'audit write failures'}, '0', 'tile: no write failure');
    is_deeply($rows{'by-department'}{'自治区市场监督管理局'},
              ['自治区市场监督管理局', '10', '7', '3'],
              'by department: the market regulator 10 = 7 + 3');
    is_deeply($rows{'by-department'}{'自治区民政厅'},
              ['自治区民政厅', '6', '5', '1'],
              'by department: civil affairs 6 = 5 + 1');
    is_deeply($rows{'by-department'}{'(no consumer)'},
              ['(no consumer)', '2', '0', '2'],
              'by department: the unknown certificate');
    is_deeply($rows{'by-consumer'}{'market.supervision'},
              ['market.supervision', '10', '7', '3'], 'by consumer');
    is_deeply($rows{'by-dataset'}{'population.person'},
              ['population.person', '人口基础信息', '6', '5', '1'],
              'by dataset, with its name');
    is($rows{'by-dataset'}{'enterprise.registration'}[1],
       '企业登记 <img src=http://203.0.113.9/x.png onerror=alert(1)>',
       'a name with markup is shown as text');
    is_deeply($rows{'by-purpose'}{'market-regulation'},
              ['market-regulation', '市场主体监管', '9', '7', '2'],
              'by purpose');
    is_deeply($rows{'by-purpose'}{'(none)'}, ['(none)', '', '3', '0', '3'],
              'by purpose: none declared');
    is_deeply({ map { ($_->[0] => $_->[1]) } @{ $t->{denials} } },
              { purpose_required => '3', unknown_consumer => '2',
                rate_limited => '1' }, 'denials by reason');
    ok(($rows{masked}{'person.id_number'}[1] // 0) >= 7,
       'masked: the legal representatives\' ID numbers');
    is_deeply($rows{quotas}{'civil-affairs.assistance'},
              ['civil-affairs.assistance', 'population.person', 'grant', '5',
               '5/day', '0'], 'quota: 5 of 5/day, none left');
    is_deeply($rows{limited}{'civil-affairs.assistance'},
              ['civil-affairs.assistance', 'population.person', '1'],
              'rate limited: who');
    is($t->{audit}{records}, '18', 'audit: records');
    like($t->{audit}{'chain head'} // '', qr/^[0-9a-f]{64}$/,
         'audit: the chain head');
    is($t->{audit}{'chain head'}, $st->{audit}{last_hash},
       'audit: the head the JSON has');
    is($t->{audit}{'write failures'}, '0', 'audit: write failures');
    like($t->{redis} // '', qr/not configured/, 'redis: not configured');
    like($p->{text}, qr/\b18\b/, 'the page text has the numbers');

    # it refreshes itself: two more calls show within a few seconds
    $n->request('GET', '/enterprise/1', cert => 'market', headers => \@mr)
        for 1 .. 2;
    wait_records(20);
    $p = DGBrowser::load("$base?format=html&refresh=1",
                         wait_for => 'document.body.dataset.loaded >= 2 && '
                                     . 'document.querySelector(".tile b")'
                                     . '.textContent === "20"',
                         timeout => 15);
    ok(!$p->{timed_out}, 'the page refreshed itself: 20 requests')
        or diag($p->{text});
    is_deeply($p->{console}, [], 'refreshed: no console error');

    # where the JSON cannot be read (a static copy of the page: its
    # ?format=json is the page again), the page says so, without an error
    # (the origin sends no CSP: the browser asks for a favicon there)
    DGTest::spew($n->dir . '/html/offline.html', $page);
    DGTest::spew($n->dir . '/html/favicon.ico', '');
    $p = DGBrowser::load("http://127.0.0.1:$up/offline.html", wait_for =>
                         '/cannot read/.test(document.getElementById("state")'
                         . '.textContent)');
    ok(!$p->{timed_out}, 'no JSON: the page says it cannot read it')
        or diag($p->{text});
    is_deeply($p->{console}, [], 'no JSON: no console error')
        or diag(explain($p->{requests}));
    is_deeply($p->{external}, [], 'no JSON: nothing outside its origin');
}

# --- the Grafana dashboard queries metrics that exist --------------------------------

{
    my $dash = json_decode(DGTest::slurp("$DGTest::TOP/docs/grafana-datagate.json"));
    ok($dash && $dash->{panels} && @{ $dash->{panels} },
       'docs/grafana-datagate.json: a dashboard with panels');
    my (@exprs, @walk);
    @walk = @{ $dash->{panels} };
    while (my $panel = shift @walk) {
        push @walk, @{ $panel->{panels} || [] };
        push @exprs, map { $_->{expr} } grep { $_->{expr} }
                     @{ $panel->{targets} || [] };
    }
    for my $v (@{ $dash->{templating}{list} || [] }) {
        push @exprs, ref $v->{query} ? $v->{query}{query} // ''
                                     : $v->{query} // '';
    }
    cmp_ok(scalar @exprs, '>=', 10, 'the dashboard has queries');
    my %metrics = map { ($_ => 1) } map { /\b(datagate_[a-z_]+)\b/g } @exprs;
    my $prom = mon('?format=prometheus')->body;
    my %have = map { ($_ => 1) } $prom =~ /^# TYPE (\S+) /mg;
    my @missing = grep { !$have{$_} } sort keys %metrics;
    is_deeply(\@missing, [], 'every metric the dashboard queries is in the '
                             . 'Prometheus output')
        or diag(join "\n", @missing);
    cmp_ok(scalar keys %metrics, '>=', 10,
           'the dashboard uses the metrics: ' . join(' ', sort keys %metrics));
    ok($have{datagate_quota_used} && $have{datagate_incident_controls},
       'Prometheus: quota and incident gauges');
    like($prom, qr/^datagate_quota_used\{consumer="civil-affairs.assistance",dataset="population.person",budget="grant"\} 5$/m,
         'Prometheus: the quota used');
    like($prom, qr/^datagate_quota_limit\{consumer="civil-affairs.assistance",dataset="population.person",budget="grant"\} 5$/m,
         'Prometheus: the quota limit');
}

$n->stop;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit, emerg');

# --- with Redis: state and incident controls ------------------------------------------

{
    my $redis = start_redis();
    my $rp = $redis->port;
    my $mon2 = free_port();
    my $g = DGTest::Nginx->new(policy => $policy, http_config => <<"EOF",
    datagate_redis 127.0.0.1:$rp;
    server {
        listen 127.0.0.1:$mon2;
        location = /status {
            datagate_status;
        }
    }
EOF
                               config => <<'EOF');
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
EOF
    $g->start;
    my $get = sub {
        $g->request('GET', '/person/1', cert => 'assistance',
                    headers => \@pa);
    };
    is($get->()->status, 200, 'redis: allowed');
    my ($rc, $o) = cli($rp, qw(suspend consumer civil-affairs.assistance));
    is($rc, 0, 'redis: suspended') or diag($o);
    ok(defined poll_until(3, sub { $get->()->status == 403 }),
       'redis: refused');
    my $js = DGTest::http_request('GET', '/status?format=json', port => $mon2,
                                  ssl => 0)->json;
    is($js->{redis}{enabled}, JSON::PP::true, 'redis: enabled');
    is($js->{redis}{up}, JSON::PP::true, 'redis: up');
    my @c = grep { $_->{control} eq 'suspended_consumer' }
            @{ $js->{incidents}{controls} };
    is(scalar @c, 1, 'incidents: the suspension, once')
        or diag(explain($js->{incidents}));
    is($c[0]{id}, 'civil-affairs.assistance', 'incidents: the consumer');
    like(DGTest::http_request('GET', '/status?format=prometheus',
                              port => $mon2, ssl => 0)->body,
         qr/^datagate_incident_controls\{control="suspended_consumer"\} 1$/m,
         'Prometheus: one suspension');

    SKIP: {
        skip 'chromium is not installed', 1 unless DGBrowser::chromium();
        my $p = DGBrowser::load("http://127.0.0.1:$mon2/status?format=html",
                                wait_for => 'document.body.dataset.loaded',
                                screenshot => "$out_dir/status-redis.png");
        is_deeply($p->{console}, [], 'redis page: no console error');
        like($p->{text}, qr/suspended_consumer\s+civil-affairs\.assistance/,
             'redis page: the suspension is shown');
        like($p->{text}, qr/connection\s+up/, 'redis page: connection up');
    }

    cli($rp, qw(unsuspend consumer civil-affairs.assistance));
    $g->stop;
    unlike($g->error_log, qr/\[(alert|crit|emerg)\]/,
           'redis: no alert, crit, emerg');
    $redis->stop;
}

done_testing();
