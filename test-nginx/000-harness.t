# Self-test of the harness (test-nginx/lib/DGTest.pm) against plain Debian
# nginx, without the datagate module: the mutual TLS set-up the module relies
# on (dev CA, foreign CA, expiry, CRL), the origin with the demo data, and
# the harness's own checks.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest;

$ENV{DG_NO_MODULE} = 1;

# --- the harness's own pieces, without nginx ----------------------------

is(DGTest::json_match({a => 1, b => [1, 'x']}, {a => 1, b => [1, 'x']}), '',
   'json_match: equal');
like(DGTest::json_match({a => 1, b => 2}, {a => 1}), qr/unexpected key/,
     'json_match: extra key found');
is(DGTest::json_match({a => 1, b => 2}, {a => 1}, 1), '',
   'json_match: subset ignores extra keys');
like(DGTest::json_match({a => [1]}, {a => [1, 2]}), qr/1 elements/,
     'json_match: array length');
is(DGTest::json_match({id => 'r-1f'}, {id => '<ANY>'}), '',
   'json_match: <ANY>');
is(DGTest::json_match({id => 'r-1f'}, {id => 'qr/^r-[0-9a-f]+$/'}), '',
   'json_match: qr//');
like(DGTest::json_match({id => 'zz'}, {id => 'qr/^r-/'}), qr/does not match/,
     'json_match: qr// mismatch');
like(DGTest::json_match({n => 1}, {n => '1x'}), qr/expected/,
     'json_match: scalar mismatch');

my @b = DGTest::parse_blocks(<<'EOF');
=== TEST 1: one
--- error_code: 403
--- workers 2
--- cert eval
["a", "b"]
--- response_body
a

--- response_body_like chomp
^x$
--- request eval
["GET /a", "GET /b"]
EOF
is(scalar @b, 1, 'parse_blocks: one block');
is($b[0]{sec}{error_code}, '403', 'parse_blocks: inline value');
is($b[0]{sec}{workers}, '2', 'parse_blocks: "--- workers 2"');
ok($b[0]{mods}{cert}{eval} && $b[0]{sec}{cert} =~ /^\["a"/,
   'parse_blocks: "--- cert eval" stays a modifier');
is($b[0]{sec}{response_body}, "a\n", 'parse_blocks: trailing blank lines');
is($b[0]{sec}{response_body_like}, '^x$', 'parse_blocks: chomp');
ok($b[0]{mods}{request}{eval}, 'parse_blocks: eval modifier');

my $res = bless { headers => {} }, 'DGTest::Response';
DGTest::parse_response($res, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                       . "\r\n\r\n5\r\nhello\r\n3\r\nabc", 'GET');
is($res->body, 'hello', 'parse_response: chunks so far');
ok($res->{truncated}, 'parse_response: cut chunked body is truncated');
$res = bless { headers => {} }, 'DGTest::Response';
DGTest::parse_response($res, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"
                       . "\r\nhello", 'GET');
ok($res->{truncated}, 'parse_response: short Content-Length is truncated');
$res = bless { headers => {} }, 'DGTest::Response';
DGTest::parse_response($res, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                       . "\r\n\r\n2\r\nhi\r\n0\r\n\r\n", 'GET');
ok(!$res->{truncated} && $res->body eq 'hi', 'parse_response: complete');

my $ci = cert_info('assistance');
is($ci->{subject}, 'CN=assistance,O=Civil Affairs,C=CN', 'cert subject');
like($ci->{serial}, qr/^[0-9A-F]+$/, 'cert serial');
like($ci->{fingerprint}, qr/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/,
     'cert fingerprint');
like($ci->{san}, qr{URI:spiffe://gx\.gov\.cn/civil-affairs/assistance},
     'cert SAN');

# --- the Perl API: start, request, reload, nginx_t, redis -----------------

{
    my $n = start_nginx(config => <<'EOF');
        location /v {
            return 200 "v1 $ssl_client_verify\n";
        }
EOF
    my $r = request('GET', '/v', cert => 'assistance');
    is($r->status, 200, 'api: request');
    is($r->body, "v1 SUCCESS\n", 'api: body');

    ok($n->reload(config => <<'EOF'), 'api: reload');
        location /v {
            return 200 "v2\n";
        }
EOF
    is($n->request('GET', '/v', cert => 'assistance')->body, "v2\n",
       'api: new config after reload');

    ok(!$n->reload(config => 'no_such_directive;'), 'api: bad reload refused');
    is($n->request('GET', '/v', cert => 'assistance')->body, "v2\n",
       'api: old config still serving');

    # two instances at once
    my $m = start_nginx(config => 'location / { return 204; }');
    isnt($m->port, $n->port, 'api: second instance, own port');
    is($m->request('GET', '/', cert => 'hrss')->status, 204,
       'api: second instance answers');
    $m->stop;
    is($n->request('GET', '/v', cert => 'hrss')->status, 200,
       'api: first instance unaffected');
    $n->stop;
    unlike($n->error_log, qr/\[(alert|crit)\]/, 'api: error log clean');

    my ($ok, $out) = nginx_t(config => 'bogus_directive 1;');
    ok(!$ok, 'api: nginx_t fails on a bad directive');
    like($out, qr/unknown directive "bogus_directive" in \S+nginx\.conf:\d+/,
         'api: nginx_t output names file and line');

    my $redis = start_redis();
    is($redis->cmd('SET', 'dg:k', 'v'), 'OK', 'redis: SET');
    is($redis->cmd('GET', 'dg:k'), 'v', 'redis: GET');
    is_deeply($redis->cmd('KEYS', 'dg:*'), ['dg:k'], 'redis: array reply');
    $redis->stop;
}

run_tests();

__DATA__

=== TEST 1: mutual TLS: dev CA client certificate passes, origin serves data
--- config
    location /person/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        add_header X-Client-DN $ssl_client_s_dn always;
        add_header X-Client-Serial $ssl_client_serial always;
    }
--- request
GET /person/1
--- cert: assistance
--- error_code: 200
--- response_headers
Content-Type: application/json
X-Client-DN: CN=assistance,O=Civil Affairs,C=CN
X-Client-Serial: $TEST_NGINX_CERT_SERIAL_assistance
!X-Not-There
--- response_json_subset
{"id": 1, "id_card": "450103199003071242", "name": "韦秀兰",
 "household": {"relation": "户主"}, "updated_at": "<ANY>"}
--- no_error_log
[error]


=== TEST 2: the subjects of the sample consumers, as nginx prints them
--- config
    location / {
        return 200 "$ssl_client_s_dn\n";
    }
--- request eval
["GET /", "GET /", "GET /", "GET /", "GET /"]
--- cert eval
[qw(assistance hrss market housing unknown)]
--- error_code: 200
--- response_body eval
["CN=assistance,O=Civil Affairs,C=CN\n",
 "CN=hrss-portal,O=Human Resources and Social Security,C=CN\n",
 "CN=market-supervision,O=Market Supervision,C=CN\n",
 "CN=housing,O=Housing,C=CN\n",
 "CN=stranger,O=Nobody,C=CN\n"]


=== TEST 3: no client certificate: 400
--- request
GET /person/1
--- error_code: 400
--- response_body_like
No required SSL certificate was sent


=== TEST 4: certificate from a foreign CA: 400
--- request
GET /person/1
--- cert: foreign
--- error_code: 400
--- response_body_like
SSL certificate error
--- error_log
client SSL certificate verify error
--- response_body_unlike
450103199003071242


=== TEST 5: expired certificate: 400
--- request
GET /person/1
--- cert: expired
--- error_code: 400
--- error_log
qr/client SSL certificate verify error: \(10:certificate has expired\)/


=== TEST 6: revoked certificate (CRL): 400
--- request
GET /person/1
--- cert: revoked
--- error_code: 400
--- error_log
certificate revoked


=== TEST 7: verify optional: no certificate reaches the location
--- verify_client optional
--- workers 2
--- init
my @w = $DGTest::INSTANCE->children;
@w == 2 or die "expected 2 workers, found " . scalar(@w);
--- config
    location / {
        return 200 "verify=$ssl_client_verify\n";
    }
--- request
GET /
--- error_code: 200
--- response_body
verify=NONE


=== TEST 8: nginx -t failure names the file and line
--- config
    location / {
        bogus_directive on;
    }
--- nginx_t_fails
--- error_log
qr/\[emerg\] \d+#\d+: unknown directive "bogus_directive" in \S+\/conf\/nginx\.conf:\d+/
--- no_error_log
test is successful


=== TEST 9: the list endpoint, compared structurally
--- request
GET /person/
--- cert: hrss
--- error_code: 200
--- response_json eval
my $p = DGTest::json_decode(do { local (@ARGV, $/) = "$DGTest::DATA/person/index.json"; <> });
$p->{total} == 6 or die "demo data changed";
DGTest::show($p);


=== TEST 10: chunked responses are decoded; headers with regexes
--- config
    location /person/ {
        proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        sub_filter_types application/json;
        sub_filter '韦秀兰' 'W-X-L';
        sub_filter_once off;
    }
--- request
GET /person/1
--- cert: market
--- error_code: 200
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_headers_like
Content-Type: ^application/json
--- response_body_like
"name": "W-X-L"
--- response_body_unlike
韦秀兰


=== TEST 11: request headers and body reach the origin
--- request
POST /echo
--- cert: housing
--- more_headers
X-Test: hello
Data-Purpose: housing-security
--- request_body
{"q": 1}
--- error_code: 200
--- response_json_subset
{"method": "POST", "x_test": "hello", "uri": "/echo"}


=== TEST 12: gzip from the origin
--- request
GET /gz/person/2
--- cert: assistance
--- more_headers
Accept-Encoding: gzip
--- error_code: 200
--- response_headers
Content-Encoding: gzip


=== TEST 13: a missing origin file is a 404 from the origin
--- request
GET /person/999
--- cert: assistance
--- error_code: 404


=== TEST 14: user files, init code, redis commands
--- user_files
>>> extra/item.json
{"id_card": "450103199003071242"}
--- redis_cmd
SET dg:test 42
--- init
my $r = DGTest::Redis::read_reply(do {
    my $s = IO::Socket::INET->new("127.0.0.1:$TEST_NGINX_REDIS_PORT") or die;
    print $s "GET dg:test\r\n"; $s }) eq '42' or die "redis_cmd not run";
$DGTest::INSTANCE->port == $TEST_NGINX_SERVER_PORT or die "instance";
--- request
GET /extra/item
--- cert: assistance
--- error_code: 200
--- response_json
{"id_card": "qr/^450103\\d{11}[\\dX]$/"}


=== TEST 15: the adversarial provider: an interim answer, then a body (nginx takes the 103 for the answer; from 1.29 on it reads past it)
--- config
    location / {
        proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT;
    }
--- evil
>>> early
send_raw(head(103, 'Link: </x.css>; rel=preload'));
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'Content-Length: ' . length $b) . $b);
--- request
GET /early/1
--- cert: assistance
--- error_code eval
DGTest::nginx_version() >= 1029000 ? 200 : 103


=== TEST 16: the adversarial provider: a lying length is cut short
--- config
    location / {
        proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT;
    }
--- evil
>>> short
send_raw(head(200, 'Content-Type: application/json', 'Content-Length: 100')
         . '{"a":');
--- init
my $r = $DGTest::INSTANCE->request('GET', '/nothing', cert => 'assistance');
$r->status == 404 or die "unknown scenario: " . $r->status;
--- request
GET /short?x=1
--- cert: assistance
--- more_headers
X-Evil: seen
--- error_code: 200
--- truncated: 1
--- wait: 0.1


=== TEST 17: a block that is skipped
--- skip: shows that --- skip works
--- request
GET /
--- error_code: 599
