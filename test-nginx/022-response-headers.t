# The provider's response headers on enforced locations: on a dataset
# whose plan masks, only the safe set and the dataset's headers: pass,
# every other provider header is dropped and counted as unlisted, and what
# passes is scanned by the safety net (resident ID, mobile, bank card,
# credit code) in the forms headers carry them, whatever detect says.  The
# provider's X-Accel-* instructions are ignored, and an answer that asks
# for an internal redirect, or that comes from a location outside the
# dataset, is refused.  Against the adversarial provider (lib/DGEvil.pm).
# Policy: test-nginx/data/policy-headers.yaml.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Encode ();
use DGTest;

my $POLICY = DGTest::slurp("$FindBin::Bin/data/policy-headers.yaml");

my $ID    = '450103199003071242';
my $IDX   = '45010319900307104X';
my $PHONE = '13877112345';
my $CARD  = '6222021234567890128';

my @OK = ('Data-Purpose: social-assistance');

my $CONFIG = <<'END';
        location /d/ {
            datagate_dataset person.default;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
            add_header X-Operator "set by nginx.conf" always;
        }
        location /l/ {
            datagate_dataset person.listed;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
        location /a/ {
            datagate_dataset person.allowlist;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
        location /o/ {
            datagate_dataset open.plain;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
        location /t/ {
            datagate_dataset person.default;
            try_files /no-such-file @fallback;
        }
        location /e/ {
            datagate_dataset person.default;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
            proxy_intercept_errors on;
            error_page 404 = /notfound;
        }
        location = /notfound {
            internal;
            default_type application/json;
            return 404 '{"error":"no such record"}';
        }
        location /i/ {
            datagate_dataset person.default;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
            proxy_ignore_headers Expires;
        }
        location /tax/ {
            datagate_dataset tax.secret;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/taxdata/;
        }
        location /free/ {
            datagate off;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/secret/;
        }
        location /internal/ {
            internal;
            default_type application/json;
            return 200 '{"id_card":"450103199003071242"}';
        }
        location @fallback {
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT;
        }
END


# Every clear value the provider sends, in whatever form the head shows
# it: percent-encoded (repeatedly), \u and &# escapes, full-width digits,
# separators.  Returns the values found.
sub clear_values {
    my ($head) = @_;
    my $t = $head;
    for (1 .. 4) {
        $t =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    }
    $t = Encode::decode('UTF-8', $t);
    $t =~ s/\\u([0-9A-Fa-f]{4})/chr hex $1/ge;
    $t =~ s/&#x([0-9A-Fa-f]+);/chr hex $1/ge;
    $t =~ s/&#(\d+);/chr $1/ge;
    $t =~ tr/\x{ff10}-\x{ff19}\x{ff38}\x{ff58}/0-9Xx/;
    $t =~ s/[\s\-+\x{3000}\x{a0}]//g;
    return grep { index($t, $_) >= 0 } ($ID, $IDX, $PHONE, $CARD, '8613877112345');
}

sub head_of {
    my ($r) = @_;
    my $i = index($r->{raw}, "\r\n\r\n");
    return $i < 0 ? $r->{raw} : substr($r->{raw}, 0, $i);
}

# the scenario: status line, header lines, the person record as body
# (none for HEAD, 204 and 304); each line goes as its hex, so that any
# byte survives
sub scenario {
    my ($status, $lines, %o) = @_;
    my $hex = join ' ', map { unpack 'H*', $_ } @$lines;
    my $body = exists $o{body} ? "q{$o{body}}" : $o{code} // 'person_json()';
    return <<"PERL";
my \@l = map { pack 'H*', \$_ } qw($hex);
my \$b = $body;
\$b = '' if \$METHOD eq 'HEAD' || '$status' =~ /^(204|304)/;
push \@l, 'Content-Type: application/json' unless grep { /^content-type:/i } \@l;
push \@l, 'Content-Length: ' . length \$b unless '$status' =~ /^(204|304)/;
send_raw(head('$status', \@l) . \$b);
PERL
}


# --- the cases: [name, location, status, header lines, checks] ----------
#
# checks: 'status' => N, 'absent' => [names], 'is' => {name => value},
# 'like' => {name => regex}, 'method' => 'HEAD', 'masked' => 0|1 (the body
# has no clear value)

my @cases = (

    # the safe set only: the provider's other headers go
    ['x-person-id', 'd', 200, ["X-Person-Id: $ID"],
     { absent => ['X-Person-Id'] }],
    ['location', 'd', 302, ["Location: /person/1?id=$ID"],
     { status => 302, absent => ['Location'] }],
    ['content-disposition', 'd', 200,
     ["Content-Disposition: attachment; filename=\"$ID.json\""],
     { absent => ['Content-Disposition'] }],
    ['set-cookie', 'd', 200,
     ["Set-Cookie: uid=$ID; Path=/", "Set-Cookie: tel=$PHONE"],
     { absent => ['Set-Cookie'] }],
    ['link', 'd', 200, ["Link: </person/$PHONE>; rel=\"next\""],
     { absent => ['Link'] }],
    ['content-location', 'd', 200, ["Content-Location: /card/$CARD"],
     { absent => ['Content-Location'] }],
    ['refresh', 'd', 200, ["Refresh: 0; url=/p?id=$ID"],
     { absent => ['Refresh'] }],
    ['validators and digests', 'd', 200,
     ['ETag: "33a64df551425fcc55e4d42a148795d9f25f89d4"',
      'Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==',
      'Digest: sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=',
      'Repr-Digest: sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:',
      'Content-Digest: sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:'],
     { absent => ['ETag', 'Content-MD5', 'Digest', 'Repr-Digest',
                  'Content-Digest'] }],
    ['framework headers', 'd', 200,
     ['X-Powered-By: Express', 'X-Total-Count: 6', 'Server-Timing: db;dur=53',
      "X-$ID: 1"],
     { absent => ['X-Powered-By', 'X-Total-Count', 'Server-Timing',
                  "X-$ID"] }],
    ['the gateway\'s names from the provider', 'd', 200,
     ["Datagate-Request-Id: $ID", 'Datagate-Consumer: someone-else'],
     { absent => ['Datagate-Request-Id', 'Datagate-Consumer'] }],
    ['the safe set passes', 'd', 200,
     ['Cache-Control: private, max-age=60',
      'Expires: Thu, 01 Jan 2099 00:00:00 GMT',
      'Last-Modified: Sat, 11 May 2024 09:30:00 GMT',
      'Vary: Accept', 'Retry-After: 120', 'RateLimit-Remaining: 99'],
     { is => { 'Cache-Control' => 'private, max-age=60',
               'Expires' => 'Thu, 01 Jan 2099 00:00:00 GMT',
               'Last-Modified' => 'Sat, 11 May 2024 09:30:00 GMT',
               'Vary' => 'Accept', 'Retry-After' => '120',
               'RateLimit-Remaining' => '99',
               'X-Operator' => 'set by nginx.conf' } }],
    ['a safe header carrying an ID', 'd', 200,
     ["Cache-Control: private, uid=$ID", "Vary: $PHONE",
      "RateLimit-Policy: 100;w=60;id=$CARD"],
     { is => { 'Cache-Control' => 'private, uid=450103********1242',
               'Vary' => '138****2345',
               'RateLimit-Policy' => '100;w=60;id=************0128' } }],
    ['a Content-Type carrying a mobile', 'd', 200,
     ["Content-Type: application/json; profile=\"$PHONE\""],
     { is => { 'Content-Type' => 'application/json; profile="138****2345"' },
       masked => 1 }],
    ['a reason phrase carrying an ID', 'd', "200 $ID", [],
     { status => 200 }],
    ['an ID with spaces in a safe header', 'd', 200,
     ['Cache-Control: private, x=450103 19900307 1242'],
     { is => { 'Cache-Control' => 'private, x=450103********1242' } }],
    ['a 404 from the provider', 'd', 404,
     ["X-Person-Id: $ID", "Set-Cookie: uid=$ID", 'Cache-Control: no-store'],
     { status => 404, absent => ['X-Person-Id', 'Set-Cookie'],
       is => { 'Cache-Control' => 'no-store' }, masked => 1 }],
    ['a 500 from the provider', 'd', 500,
     ["X-Person-Id: $ID", "Location: /p?id=$ID"],
     { status => 500, absent => ['X-Person-Id', 'Location'], masked => 1 }],
    ['HEAD', 'd', 200, ["X-Person-Id: $ID", "Link: </p/$PHONE>"],
     { method => 'HEAD', absent => ['X-Person-Id', 'Link'] }],
    # its conditionals are not forwarded: a 304 is refused (021 has more)
    ['a 304 from the provider', 'd', 304,
     ["X-Person-Id: $ID", "Location: /p?id=$ID", 'ETag: "1"'],
     { status => 502, absent => ['X-Person-Id', 'Location', 'ETag'] }],
    ['a 204 from the provider', 'd', 204, ["X-Person-Id: $ID"],
     { status => 204, absent => ['X-Person-Id'] }],
    ['X-Accel-Charset', 'd', 200, ["X-Accel-Charset: $ID"],
     { absent => ['X-Accel-Charset'] }],
    # 15 KB at 1000 bytes/s would take 15 s
    ['X-Accel-Limit-Rate and -Buffering are ignored', 'd', 200,
     ['X-Accel-Limit-Rate: 1000', 'X-Accel-Buffering: no',
      'X-Accel-Expires: 0'],
     { absent => ['X-Accel-Limit-Rate', 'X-Accel-Buffering'], masked => 1,
       timeout => 5, whole => 1,
       code => q{'[' . join(',', map { person_json() } 1 .. 100) . ']'} }],

    # a list extends the safe set; what it lets through is scanned
    ['listed: X-Person-Id', 'l', 200,
     ["X-Person-Id: $ID", 'X-Total-Count: 6'],
     { is => { 'X-Person-Id' => '450103********1242',
               'X-Total-Count' => '6' } }],
    ['listed: Location with ?id=', 'l', 302,
     ["Location: /person/1?id=$ID&tel=$PHONE"],
     { status => 302,
       like => { Location => qr{/person/1\?id=450103\*{8}1242&tel=138\*{4}2345$} } }],
    ['listed: Location percent-encoded', 'l', 302,
     ['Location: /p?id=%34%35%30%31%30%33%31%39%39%30%30%33%30%37%31%32%34%32'],
     { status => 302, like => { Location => qr{/p\?id=450103\*{8}1242$} } }],
    ['listed: Location percent-encoded twice', 'l', 301,
     ['Location: /p?id=%2534%2535%2530103199003071242'],
     { status => 301, like => { Location => qr{/p\?id=450103\*{8}1242$} } }],
    ['listed: Content-Disposition', 'l', 200,
     ["Content-Disposition: attachment; filename=\"$PHONE.json\"; "
      . "filename*=UTF-8''%E8%BA%AB%E4%BB%BD$ID.json"],
     { is => { 'Content-Disposition' => 'attachment; '
               . 'filename="138****2345.json"; filename*=UTF-8'
               . "''%E8%BA%AB%E4%BB%BD450103********1242.json" } }],
    ['listed: two Set-Cookie', 'l', 200,
     ["Set-Cookie: uid=$ID; Path=/; HttpOnly", "Set-Cookie: card=$CARD"],
     { is => { 'Set-Cookie' => 'uid=450103********1242; Path=/; HttpOnly, '
               . 'card=************0128' } }],
    ['listed: Link', 'l', 200, ["Link: </person/$PHONE>; rel=\"next\""],
     { is => { Link => '</person/138****2345>; rel="next"' } }],
    ['listed: Content-Location', 'l', 200, ["Content-Location: /c/$CARD"],
     { is => { 'Content-Location' => '/c/************0128' } }],
    ['listed: Refresh', 'l', 200, ["Refresh: 5; url=/p?id=$IDX"],
     { is => { Refresh => '5; url=/p?id=450103********104X' } }],
    ['listed: an ID in groups', 'l', 200,
     ['X-Person-Id: 450103 19900307 1242'],
     { is => { 'X-Person-Id' => '450103********1242' } }],
    ['listed: a mobile with +86 and dashes', 'l', 200,
     ['X-Person-Id: +86 138-7711-2345'],
     { like => { 'X-Person-Id' => qr/^\+861\*+2345$/ } }],
    ['listed: full-width digits', 'l', 200,
     ["X-Person-Id: \xef\xbc\x91\xef\xbc\x93\xef\xbc\x98\xef\xbc\x97"
      . "\xef\xbc\x97\xef\xbc\x91\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93"
      . "\xef\xbc\x94\xef\xbc\x95"],
     { is => { 'X-Person-Id' => '138****2345' } }],
    ['listed: \u escapes', 'l', 200,
     ['X-Person-Id: {"tel":"\u0031\u0033\u0038\u0037\u0037\u0031\u0031'
      . '\u0032\u0033\u0034\u0035"}'],
     { is => { 'X-Person-Id' => '{"tel":"138****2345"}' } }],
    ['listed: repeated X-Person-Id', 'l', 200,
     ["X-Person-Id: $ID", "X-Person-Id: $PHONE", "X-Person-Id: 7"],
     { is => { 'X-Person-Id' => '450103********1242, 138****2345, 7' } }],
    ['listed: a 404 with listed headers', 'l', 404,
     ["X-Person-Id: $ID", "Location: /p?id=$ID"],
     { status => 404, is => { 'X-Person-Id' => '450103********1242' },
       like => { Location => qr{id=450103\*{8}1242$} }, masked => 1 }],
    ['listed: a 500 with listed headers', 'l', 500,
     ["Set-Cookie: uid=$ID"],
     { status => 500, is => { 'Set-Cookie' => 'uid=450103********1242' },
       masked => 1 }],
    ['listed: a 401 with WWW-Authenticate', 'l', 401,
     ["WWW-Authenticate: Basic realm=\"$ID\""],
     { status => 401,
       is => { 'WWW-Authenticate' => 'Basic realm="450103********1242"' } }],

    # allow-list mode without fields: its plan masks, the rule applies
    ['allow-list dataset', 'a', 200,
     ["X-Person-Id: $ID", 'Cache-Control: no-cache'],
     { absent => ['X-Person-Id'], is => { 'Cache-Control' => 'no-cache' } }],
);

my $n = DGTest::Nginx->new(policy => $POLICY, config => $CONFIG);
my $audit = $n->dir . '/audit.log';
my $h2port = DGTest::free_port();
$n->{http_config} = "datagate_audit_log $audit;\n"
    . '    log_format dg "$uri masked=$datagate_masked";' . "\n"
    . '    access_log ' . $n->dir . '/dg.log dg;' . "\n" . <<"END";
    server {
        listen 127.0.0.1:$h2port ssl http2;
        ssl_certificate \$TEST_NGINX_CERTS/server.crt;
        ssl_certificate_key \$TEST_NGINX_CERTS/server.key;
        ssl_client_certificate \$TEST_NGINX_CERTS/ca.crt;
        ssl_verify_client on;
        http2_push_preload on;
        location /d/ {
            datagate_dataset person.default;
            proxy_pass http://127.0.0.1:\$TEST_NGINX_EVIL_PORT/;
        }
        location /l/ {
            datagate_dataset person.listed;
            proxy_pass http://127.0.0.1:\$TEST_NGINX_EVIL_PORT/;
        }
    }
END

my %sc;
for my $i (0 .. $#cases) {
    my ($name, $loc, $status, $lines, $c) = @{ $cases[$i] };
    $sc{"c$i"} = scenario($status, $lines,
                          $c->{code} ? (code => $c->{code}) : ());
}
$sc{secret} = scenario(200, []);
$sc{taxdata} = scenario(200, []);
$n->evil_scenarios(%sc);
$n->start;

for my $i (0 .. $#cases) {
    my ($name, $loc, $status, $lines, $c) = @{ $cases[$i] };
    my $method = $c->{method} // 'GET';
    my $r = $n->request($method, "/$loc/c$i", cert => 'assistance',
                        headers => [@OK], timeout => $c->{timeout} // 10);
    is($r->status, $c->{status} // 200, "$name: status")
        or diag($r->{error} // '', $r->body);
    for my $h (@{ $c->{absent} // [] }) {
        ok(!defined $r->header($h), "$name: $h dropped")
            or diag("$h: " . $r->header($h));
    }
    for my $h (sort keys %{ $c->{is} // {} }) {
        is($r->header($h), $c->{is}{$h}, "$name: $h");
    }
    for my $h (sort keys %{ $c->{like} // {} }) {
        like($r->header($h) // '', $c->{like}{$h}, "$name: $h masked");
    }
    my @leak = clear_values(head_of($r));
    ok(!@leak, "$name: no clear value in the head") or diag(head_of($r));
    if ($c->{whole}) {
        ok(!$r->{truncated}, "$name: the whole answer, in time");
    }
    if ($c->{masked}) {
        ok(!clear_values($r->body) && $r->body =~ /450103\*+1242/,
           "$name: the body is masked") or diag($r->body);
    }
    like((split /\r\n/, $r->{raw})[0] // '',
         qr{^HTTP/1\.1 \d{3}( [A-Za-z ]*)?$},
         "$name: nginx's status line") if $method eq 'GET';
}

# --- HTTP/2, with server push of Link preloads -------------------------

SKIP: {
    skip 'curl without HTTP/2', 6 unless `curl --version` =~ /HTTP2/;
    $n->evil_scenarios(h2 => scenario(200,
        ["Link: </person/$PHONE>; rel=preload", "X-Person-Id: $ID",
         "Set-Cookie: uid=$ID"]));
    my $certs = $DGTest::CERTS;
    for my $loc ('d', 'l') {
        my $out = `curl -s -D - --http2 --cacert $certs/ca.crt --cert $certs/assistance.crt --key $certs/assistance.key -H 'Data-Purpose: social-assistance' https://localhost:$h2port/$loc/h2 2>&1`;
        like($out, qr{^HTTP/2 200}, "HTTP/2 ($loc): 200");
        ok(!clear_values($out), "HTTP/2 ($loc): no clear value")
            or diag($out);
        if ($loc eq 'd') {
            unlike($out, qr/^(link|x-person-id|set-cookie):/mi,
                   'HTTP/2: the provider\'s other headers dropped');
        } else {
            like($out, qr{^link: </person/138\*{4}2345>; rel=preload}mi,
                 'HTTP/2: a listed Link masked');
        }
    }
}

# --- a dataset whose plan does not mask: headers pass as sent ------------

{
    $n->evil_scenarios(plain => scenario(200, ["X-Person-Id: $ID"],
                                         body => '{"note":"open data"}'));
    my $r = $n->request('GET', '/o/plain', cert => 'assistance',
                        headers => [@OK]);
    is($r->status, 200, 'unmasked dataset: status');
    is($r->header('X-Person-Id'), $ID,
       'unmasked dataset: its headers pass as the provider sent them');
}

# --- X-Accel-Redirect: refused, the target never reached ---------------

for my $t (['/tax/1', 'a share: none dataset'],
           ['/free/x', 'a datagate off location'],
           ['/internal/x', 'an internal location'],
           ['@fallback', 'a named location'],
           ['/d/c0', 'a location of the same dataset'])
{
    my ($target, $what) = @$t;
    (my $sname = "xa$target") =~ s/[^\w]/_/g;
    $n->evil_scenarios($sname => scenario(200, ["X-Accel-Redirect: $target"],
                                          body => '{}'));
    for my $loc ('d', 'o') {
        my $before = () = $n->evil->requests;
        my $r = $n->request('GET', "/$loc/$sname", cert => 'assistance',
                            headers => [@OK]);
        is($r->status, 502, "X-Accel-Redirect to $what ($loc): 502");
        is((eval { $r->json } || {})->{error}{code}, 'upstream_unmaskable',
           "X-Accel-Redirect to $what ($loc): upstream_unmaskable");
        ok(!clear_values($r->{raw}),
           "X-Accel-Redirect to $what ($loc): nothing of the target");
        my @after = $n->evil->requests;
        is(scalar(@after) - $before, 1,
           "X-Accel-Redirect to $what ($loc): only the provider was asked")
            or diag(join '', @after[$before .. $#after]);
    }
}

{
    # the operator's proxy_ignore_headers stays, X-Accel-* is added
    my $r = $n->request('GET', '/i/xa_tax_1', cert => 'assistance',
                        headers => [@OK]);
    is($r->status, 502, 'X-Accel-Redirect with proxy_ignore_headers: 502');

    my $h = $n->request('HEAD', '/d/xa_tax_1', cert => 'assistance',
                        headers => [@OK]);
    is($h->status, 502, 'X-Accel-Redirect on HEAD: 502');
}

# --- an internal redirect out of the dataset: try_files @fallback -------

{
    $n->evil_scenarios(t => scenario(200, [], body => '{"leak":"450103199003071242"}'));
    my $r = $n->request('GET', '/t/x', cert => 'assistance',
                        headers => [@OK]);
    is($r->status, 502, 'try_files to a location outside the dataset: 502');
    is((eval { $r->json } || {})->{error}{code}, 'upstream_unmaskable',
       'try_files elsewhere: upstream_unmaskable');
    ok(!clear_values($r->{raw}), 'try_files elsewhere: nothing leaks');

    # an error page is the configuration's answer (docs/errors.md)
    $n->evil_scenarios(nf => scenario(404, [], body => '{"error":1}'));
    $r = $n->request('GET', '/e/nf', cert => 'assistance', headers => [@OK]);
    is($r->status, 404, 'error_page = to an internal location: its answer');
    is($r->body, '{"error":"no such record"}', 'error_page: its body');
}

# --- counted: audit record, statistics, $datagate_masked ---------------

{
    # three provider headers dropped, two values masked in a safe header,
    # no body (204): only the headers count
    $n->evil_scenarios(count => scenario(204,
        ["X-Person-Id: $ID", "Set-Cookie: a=$ID", 'X-Powered-By: x',
         "Cache-Control: private, a=$ID, b=$PHONE"]));
    my $r = $n->request('GET', '/d/count', cert => 'assistance',
                        headers => [@OK]);
    is($r->status, 204, 'count: 204');

    my $rec;
    for (1 .. 100) {
        ($rec) = grep { $_->{uri} eq '/d/count' }
                 map { DGTest::json_decode($_) }
                 grep { /\S/ } split /\n/, DGTest::slurp($audit);
        last if $rec;
        select undef, undef, undef, 0.05;
    }
    ok($rec, 'count: an audit record');
    is($rec->{unlisted}, 3, 'count: dropped headers are unlisted keys');
    is($rec->{dropped}, 3, 'count: and dropped');
    is_deeply($rec->{detected}, { id_number => 1, mobile => 1 },
              'count: header hits are safety-net hits');

    my $log = DGTest::slurp($n->dir . '/dg.log');
    like($log, qr{^/d/count masked=2$}m, 'count: $datagate_masked');
}

$n->stop;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'error log: clean');
like($n->error_log,
     qr/datagate: response header "X-Person-Id": 1 value\(s\) masked by the safety net, consumer=civil-affairs\.assistance dataset=person\.listed/,
     'a masked header is logged by name');
unlike($n->error_log, qr/\Q$ID\E|\Q$PHONE\E/,
       'the error log never shows a clear value');
like($n->error_log,
     qr/upstream_unmaskable: the provider asked for an internal redirect \(X-Accel-Redirect\)/,
     'X-Accel-Redirect refusal logged');

# --- statistics: dropped headers in the unlisted counter ----------------

{
    my $m = DGTest::Nginx->new(policy => $POLICY, config => $CONFIG
        . "        location = /status { datagate_status; }\n");
    $m->evil_scenarios(two => scenario(200, ['X-A: 1', 'X-B: 2']));
    $m->start;
    $m->request('GET', '/d/two', cert => 'assistance', headers => [@OK])
        for 1 .. 3;
    my $st = $m->request('GET', '/status', cert => 'assistance')->json;
    my ($u) = grep { $_->{dataset} eq 'person.default' }
              @{ $st->{unlisted} || [] };
    # the body has one unlisted key (address) per answer, the head two
    is($u && $u->{count}, 9, 'statistics: dropped headers counted as unlisted');
    $m->stop;
}

# --- policy explain ------------------------------------------------------

{
    my $file = $n->dir . '/explain.yaml';
    DGTest::spew($file, $POLICY);
    my ($rc, $out) = run_cmd($DGTest::CLI, 'policy', 'explain', $file,
                             '--consumer', 'civil-affairs.assistance',
                             '--dataset', 'person.listed',
                             '--purpose', 'social-assistance');
    is($rc, 0, 'explain: runs');
    like($out, qr/response headers: only these of the provider's pass/,
         'explain: the header rule');
    like($out, qr/safe set: Content-Type, .*Cache-Control/s,
         'explain: the safe set');
    like($out, qr/listed: +X-Total-Count, X-Person-Id, Location,/,
         'explain: the listed headers');
    ($rc, $out) = run_cmd($DGTest::CLI, 'policy', 'explain', $file,
                          '--consumer', 'civil-affairs.assistance',
                          '--dataset', 'open.plain',
                          '--purpose', 'social-assistance');
    like($out, qr/response headers: passed as the provider sends them/,
         'explain: a plan that does not mask');
}

run_tests();

__DATA__

=== TEST 1: the safe set only: the provider's other headers go, the body is masked
--- http_config
datagate_policy $TEST_NGINX_TOP/test-nginx/data/policy-headers.yaml;
--- config
    location /d/ {
        datagate_dataset person.default;
        proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
    }
--- evil
>>> leaky
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'X-Person-Id: 450103199003071242',
              'Location: /person/1?id=450103199003071242',
              'Content-Disposition: attachment; filename="13877112345.json"',
              'Set-Cookie: uid=450103199003071242; Path=/',
              'Link: </card/6222021234567890128>; rel="next"',
              'Content-Location: /person/450103199003071242',
              'Cache-Control: private, max-age=60',
              'Content-Length: ' . length $b) . $b);
--- request
GET /d/leaky
--- cert: assistance
--- more_headers
Data-Purpose: social-assistance
--- error_code: 200
--- response_headers
!X-Person-Id
!Location
!Content-Disposition
!Set-Cookie
!Link
!Content-Location
Cache-Control: private, max-age=60
--- response_head_unlike
450103199003071242
13877112345
6222021234567890128
--- response_json_subset
{"id_card": "450103********1242", "phone": "138****2345"}
--- no_error_log
[error]


=== TEST 2: a listed header carrying an ID is masked anyway
--- http_config
datagate_policy $TEST_NGINX_TOP/test-nginx/data/policy-headers.yaml;
--- config
    location /l/ {
        datagate_dataset person.listed;
        proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
    }
--- evil
>>> listed
my $b = person_json();
send_raw(head(302, 'Content-Type: application/json',
              'X-Person-Id: 450103 19900307 1242',
              'Location: /person/1?id=%34%35%30%31%30%33199003071242',
              'X-Total-Count: 6',
              'Content-Length: ' . length $b) . $b);
--- request
GET /l/listed
--- cert: assistance
--- more_headers
Data-Purpose: social-assistance
--- error_code: 302
--- response_headers
X-Person-Id: 450103********1242
X-Total-Count: 6
--- response_headers_like
Location: /person/1\?id=450103\*{8}1242$
--- response_head_unlike
450103199003071242
%34%35%30%31%30%33199003071242
450103 19900307 1242
--- error_log
response header "X-Person-Id": 1 value(s) masked by the safety net
response header "Location": 1 value(s) masked by the safety net


=== TEST 3: a 404 from the provider: its headers follow the rule too
--- http_config
datagate_policy $TEST_NGINX_TOP/test-nginx/data/policy-headers.yaml;
--- config
    location /d/ {
        datagate_dataset person.default;
        proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
    }
--- evil
>>> missing
my $b = '{"error":"no such person","id_card":"450103199003071242"}';
send_raw(head(404, 'Content-Type: application/json',
              'X-Person-Id: 450103199003071242',
              'Set-Cookie: last=13877112345',
              'Content-Length: ' . length $b) . $b);
--- request
GET /d/missing
--- cert: assistance
--- more_headers
Data-Purpose: social-assistance
--- error_code: 404
--- response_headers
!X-Person-Id
!Set-Cookie
--- response_head_unlike
450103199003071242
13877112345
--- response_json
{"error": "no such person", "id_card": "450103********1242"}


=== TEST 4: X-Accel-Redirect to a share: none dataset is refused; that provider is never asked
--- http_config
datagate_policy $TEST_NGINX_TOP/test-nginx/data/policy-headers.yaml;
datagate_audit_log $TEST_NGINX_TESTDIR/audit.log;
--- config
    location /d/ {
        datagate_dataset person.default;
        proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
    }
    location /tax/ {
        datagate_dataset tax.secret;
        proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/taxdata/;
    }
--- evil
>>> redirect
send_raw(head(200, 'X-Accel-Redirect: /tax/1', 'Content-Length: 0'));
>>> taxdata
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'Content-Length: ' . length $b) . $b);
--- request
GET /d/redirect
--- cert: assistance
--- more_headers
Data-Purpose: social-assistance
--- error_code: 502
--- response_json_subset
{"error": {"code": "upstream_unmaskable"}}
--- response_head_unlike
X-Accel
--- error_log
upstream_unmaskable: the provider asked for an internal redirect (X-Accel-Redirect)


=== TEST 5: headers: with a bad name fails nginx -t with file and line
--- policy
datasets:
  - id: d1
    share: unconditional
    level: 1
    headers: [X-Total-Count, "X Person Id"]
--- config
    location /d/ {
        datagate_dataset d1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
    }
--- nginx_t_fails
--- error_log
qr/policy\.yaml:5: datasets\[0\]\.headers: bad header name 'X Person Id'/


=== TEST 6: headers: cannot let X-Accel-* or the gateway's own names through
--- policy
datasets:
  - id: d1
    share: unconditional
    level: 1
    headers:
      - X-Accel-Redirect
--- config
    location /d/ {
        datagate_dataset d1;
        proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
    }
--- nginx_t_fails
--- error_log
qr/policy\.yaml:6: datasets\[0\]\.headers: 'X-Accel-Redirect' cannot be listed: X-Accel-\* headers are instructions to nginx/
