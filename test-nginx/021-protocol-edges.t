# The protocol edges of a provider's answer, against the adversarial
# provider (lib/DGEvil.pm): interim (1xx) answers and protocol switches,
# an answer without a status line, validators and digests that would let
# a client test guesses of masked values (ETag, Content-MD5, Digest,
# Repr-Digest, Content-Digest, signatures, conditional and range requests,
# 206, 226 and unconditional 304 answers, HEAD), a provider failing in the
# middle of its body (short or lying lengths, broken or cut chunking,
# timeouts) while the header is held and after it went out, HTTP/1.0
# clients that cannot see a cut connection, and the audit record of each
# (a cut answer is never "ok", also when the client goes away mid-body).

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::SSL;
use JSON::PP ();
use Time::HiRes qw(sleep time);
use DGTest;

binmode(Test::More->builder->$_, ':utf8')
    for qw(output failure_output todo_output);

my $POLICY = <<'YAML';
levels: {1: public, 2: internal, 3: sensitive, 4: core}
detect: off
classes:
  person.id_number:  {level: 4, mask: id_card}
  person.phone:      {level: 3, mask: phone}
  person.name:       {level: 3, mask: name}
  person.address:    {level: 3, mask: address(6)}
  finance.bank_card: {level: 4, mask: bank_card}
purposes:
  social-assistance: {name: social assistance}
consumers:
  - id: civil-affairs.assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
datasets:
  - id: population.person
    share: unconditional
    level: 2
    fields:
      id_card: person.id_number
      phone: person.phone
      name: person.name
      address: person.address
      bank_card: finance.bank_card
  - id: open.echo
    share: unconditional
    level: 1
YAML

# the clear values of DGEvil's person_json()
my @CLEAR = qw(450103199003071242 13877112345 6222021234567890128);

# how many records make an answer longer than the output held before the
# header goes (8 x 16 KB)
my $MANY = 2000;

my %EVIL = (
    # interim answers before the real one
    early => <<'PL',
send_raw(head(103, 'Link: </a.css>; rel=preload', 'X-Person-Id: 450103199003071242'));
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'Content-Length: ' . length $b) . $b);
PL
    cont => <<'PL',
send_raw(head(100));
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'Content-Length: ' . length $b) . $b);
PL
    multi => <<'PL',
send_raw(head(100));
send_raw(head(103, 'Link: </a.css>; rel=preload'));
send_raw(head(103, 'Link: </b.css>; rel=preload'));
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'Content-Length: ' . length $b) . $b);
PL
    processing => <<'PL',
send_raw(head(102));
pause(0.2);
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'Content-Length: ' . length $b) . $b);
PL
    odd1xx => <<'PL',
send_raw(head(199, 'Content-Type: application/json'));
send_raw(person_json());
PL
    # a protocol switch: afterwards nginx would copy raw bytes both ways,
    # past every body filter
    upgrade => <<'PL',
send_raw(head(101, 'Upgrade: websocket', 'Connection: Upgrade'));
send_raw(person_json());
pause(0.5);
PL
    # no status line: nginx takes it for an HTTP/0.9 answer
    nostatus => <<'PL',
send_raw(person_json() . "\n");
PL

    # validators and digests of the provider's body
    validators => <<'PL',
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'ETag: "5d41402abc4b2a76b9719d911017c592"',
              'Content-MD5: XUFAKrxLKna5cZ2REBfFkg==',
              'Digest: sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=',
              'Repr-Digest: sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:',
              'Content-Digest: sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:',
              'Signature-Input: sig1=("content-digest");keyid="k"',
              'Signature: sig1=:c2lnbmF0dXJl:',
              'Accept-Ranges: bytes',
              'Last-Modified: Tue, 01 Oct 2024 08:00:00 GMT',
              'Cache-Control: private, max-age=60',
              'Content-Length: ' . length $b) . $b);
PL
    weaketag => <<'PL',
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'ETag: W/"2f-9Xn5I3Vt7yCd1ZPGJ5QbWQ"',
              'Content-Length: ' . length $b) . $b);
PL
    # what reached the provider, as JSON (no classified key in it)
    echo => <<'PL',
my %seen = map { $_ => $H{$_} } grep { $_ ne 'host' } keys %H;
my $b = JSON::PP->new->canonical->encode({ method => $METHOD, h => \%seen });
send_raw(head(200, 'Content-Type: application/json',
              'Content-Length: ' . length $b) . $b);
PL
    p304 => <<'PL',
send_raw(head(304, 'ETag: "5d41402abc4b2a76b9719d911017c592"',
              'Content-Length: 187', 'X-Hint: 450103199003071242'));
PL
    p206 => <<'PL',
my $b = substr(person_json(), 0, 40);
send_raw(head(206, 'Content-Type: application/json',
              'Content-Range: bytes 0-39/190',
              'Content-Length: ' . length $b) . $b);
PL
    p226 => <<'PL',
my $b = person_json();
send_raw(head(226, 'Content-Type: application/json', 'IM: vcdiff',
              'Content-Length: ' . length $b) . $b);
PL
    range200 => <<'PL',
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'Content-Range: bytes 0-189/190',
              'Content-Length: ' . length $b) . $b);
PL
    # HEAD: the provider's length of the clear body
    head => <<'PL',
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'ETag: "abc"', 'Content-Length: ' . length $b)
         . ($METHOD eq 'HEAD' ? '' : $b));
PL
    # a digest in the trailers of a chunked answer
    trailer => <<'PL',
send_raw(head(200, 'Content-Type: application/json',
              'Transfer-Encoding: chunked', 'Trailer: Digest'));
send_raw(chunk(person_json()));
send_raw("0\r\nDigest: sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=\r\n\r\n");
PL

    # failing in the middle of the body
    short => <<'PL',
send_raw(head(200, 'Content-Type: application/json', 'Content-Length: 1000')
         . substr(person_json(), 0, 100));
PL
    # says less than it sends: the rest is never read
    long => <<'PL',
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json', 'Content-Length: 50')
         . $b);
pause(0.2);
PL
    badchunk => <<'PL',
send_raw(head(200, 'Content-Type: application/json',
              'Transfer-Encoding: chunked'));
send_raw(chunk('{"data":[' . person_json()));
pause(0.2);
send_raw("zz\r\n" . person_json() . "\r\n");
pause(0.2);
PL
    cutchunk => <<'PL',
send_raw(head(200, 'Content-Type: application/json',
              'Transfer-Encoding: chunked'));
send_raw(chunk('{"data":[' . person_json() . ','));
PL
    stall => <<'PL',
send_raw(head(200, 'Content-Type: application/json', 'Content-Length: 1000')
         . substr(person_json(), 0, 100));
hang();
PL
    stallchunk => <<'PL',
send_raw(head(200, 'Content-Type: application/json',
              'Transfer-Encoding: chunked'));
send_raw(chunk('{"data":[' . person_json() . ','));
hang();
PL
    # long answers: the header goes out before the end
    many => <<"PL",
send_raw(head(200, 'Content-Type: application/json',
              'Transfer-Encoding: chunked'));
send_raw(chunk('{"data":['));
for my \$i (1 .. $MANY) {
    send_raw(chunk(person_json() . (\$i < $MANY ? ',' : '')));
}
send_raw(chunk(']}') . chunk(''));
PL
    manycut => <<"PL",
send_raw(head(200, 'Content-Type: application/json',
              'Transfer-Encoding: chunked'));
send_raw(chunk('{"data":['));
for my \$i (1 .. $MANY) {
    send_raw(chunk(person_json() . ','));
}
pause(0.3);
PL
    manystall => <<"PL",
send_raw(head(200, 'Content-Type: application/json',
              'Transfer-Encoding: chunked'));
send_raw(chunk('{"data":['));
for my \$i (1 .. $MANY) {
    send_raw(chunk(person_json() . ','));
}
hang();
PL
    # framing nginx refuses before the header
    clte => <<'PL',
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'Content-Length: ' . length($b), 'Transfer-Encoding: chunked')
         . chunk($b) . chunk(''));
PL
    dupcl => <<'PL',
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'Content-Length: ' . length($b), 'Content-Length: 10') . $b);
PL
    badcl => <<'PL',
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'Content-Length: -5') . $b);
PL
    # a small answer of unknown length (read until the provider closes)
    closed => <<'PL',
send_raw("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"
         . person_json());
PL
);

my $CONFIG = <<'EOF';
        proxy_read_timeout 1s;
        access_log $TEST_NGINX_TESTDIR/reasons.log reasons;

        location /p/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
        location /pu/ {
            datagate_dataset population.person;
            proxy_buffering off;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
        location /ws/ {
            datagate_dataset population.person;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
        location /o/ {
            datagate_dataset open.echo;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
        location /ows/ {
            datagate_dataset open.echo;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
        location /h/ {
            datagate_dataset population.person;
            datagate_hold_max 64k;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
        location /nc/ {
            datagate_dataset population.person;
            chunked_transfer_encoding off;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
        location /big/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
        }
        location /obig/ {
            datagate_dataset open.echo;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
        }
        location /plain/ {
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
EOF

# nginx 1.29 and later read a provider's 103 themselves and, where
# early_hints says so, send it on to the client before the final answer
my $HINTS = DGTest::nginx_version() >= 1029000;
$CONFIG .= <<'EOF' if $HINTS;
        location /ph/ {
            datagate_dataset population.person;
            early_hints 1;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
        location /plainh/ {
            early_hints 1;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
        }
EOF

# the same locations on a second server speaking HTTP/2
my $H2PORT = DGTest::free_port();
my $HTTP_CONFIG = <<"EOF";
    datagate_audit_log \$TEST_NGINX_TESTDIR/audit.log;
    log_format reasons '\$datagate_request_id \$datagate_reason';

    server {
        listen 127.0.0.1:$H2PORT ssl http2;
        ssl_certificate \$TEST_NGINX_CERTS/server.crt;
        ssl_certificate_key \$TEST_NGINX_CERTS/server.key;
        ssl_client_certificate \$TEST_NGINX_CERTS/ca.crt;
        ssl_verify_client on;
$CONFIG
    }
EOF

my $n = DGTest::Nginx->new(
    policy      => $POLICY,
    http_config => $HTTP_CONFIG,
    config      => $CONFIG,
);
$n->evil_scenarios(%EVIL);

# a big document for the client that goes away (the origin serves it)
{
    open my $fh, '>:utf8', $n->dir . '/html/big.json' or die;
    my $rec = '{"id_card":"450103199003071242","phone":"13877112345",'
        . '"name":"韦秀兰","note":"' . ('x' x 200) . '"}';
    print $fh '{"data":[' . join(',', ($rec) x 40000) . ']}';
    close $fh;
}

$n->start;

my $rid = 0;

# a request with the assistance certificate and purpose; returns the
# response and its request id
sub call {
    my ($method, $uri, %o) = @_;
    my $id = sprintf 'edge-%04d', ++$rid;
    my $r = $n->request($method, $uri, cert => 'assistance',
        headers => ['Data-Purpose: social-assistance',
                    "Datagate-Request-Id: $id", @{ $o{headers} || [] }],
        timeout => $o{timeout} || 15);
    return wantarray ? ($r, $id) : $r;
}

# the audit record of a request id (waits for the log phase)
sub record {
    my ($id) = @_;
    my $until = time + DGTest::secs(10);
    while (time < $until) {
        for my $l (split /\n/, DGTest::slurp($n->dir . '/audit.log') // '') {
            my $j = eval { JSON::PP->new->decode($l) } or next;
            return $j if ($j->{request_id} // '') eq $id;
        }
        sleep 0.1;
    }
    return {};
}

sub no_clear {
    my ($what, $raw) = @_;
    for my $v (@CLEAR) {
        unlike($raw, qr/\Q$v\E/, "$what: no clear $v");
    }
}

sub json_of {
    my ($r) = @_;
    return (eval { JSON::PP->new->decode($_[0]->body) }) || {};
}

# an HTTP/1.0 request over a raw TLS connection; the raw answer
sub http10 {
    my ($uri, @h) = @_;
    my $id = sprintf 'edge-%04d', ++$rid;
    my $raw = "GET $uri HTTP/1.0\r\nHost: localhost\r\n"
        . "Data-Purpose: social-assistance\r\n"
        . "Datagate-Request-Id: $id\r\n"
        . join('', map { "$_\r\n" } @h) . "\r\n";
    my $r = $n->request('GET', $uri, cert => 'assistance', raw => $raw,
                        timeout => 15);
    return wantarray ? ($r, $id) : $r;
}


# --- 1. interim answers ------------------------------------------------------

for my $case (qw(early cont multi processing odd1xx)) {
    for my $loc (qw(/p/ /pu/ /o/)) {
        my ($r, $id) = call('GET', "$loc$case/1");
        my $what = "1xx $case on $loc";
        is($r->status, 502, "$what: 502");
        is(json_of($r)->{error}{code}, 'upstream_unmaskable',
           "$what: upstream_unmaskable");
        is($r->header('Content-Type'), 'application/json',
           "$what: JSON error");
        no_clear($what, $r->{raw});
        unlike($r->{raw}, qr/^(Link|X-Person-Id):/mi,
               "$what: none of the provider's headers");
        my $rec = record($id);
        is($rec->{reason}, 'upstream_unmaskable', "$what: audited");
        is($rec->{status}, 502, "$what: audited status");
        like($rec->{detail} // '', qr/interim/, "$what: audited detail");
    }
}

# 101: no tunnel, on a masked and an unmasked dataset
for my $loc (qw(/ws/ /ows/)) {
    my ($r, $id) = call('GET', "${loc}upgrade/1",
        headers => ['Upgrade: websocket', 'Connection: Upgrade']);
    is($r->status, 502, "101 on $loc: 502");
    is(json_of($r)->{error}{code}, 'upstream_unmaskable',
       "101 on $loc: upstream_unmaskable");
    no_clear("101 on $loc", $r->{raw});
    is(record($id)->{reason}, 'upstream_unmaskable', "101 on $loc: audited");
}

# without a status line: no headerless raw answer
for my $loc (qw(/p/ /o/)) {
    my ($r, $id) = call('GET', "${loc}nostatus/1");
    is($r->status, 502, "no status line on $loc: 502 with a header");
    is(json_of($r)->{error}{code}, 'upstream_unmaskable',
       "no status line on $loc: upstream_unmaskable");
    no_clear("no status line on $loc", $r->{raw});
    is(record($id)->{reason}, 'upstream_unmaskable',
       "no status line on $loc: audited");
}

# an HTTP/1.0 client meets a 1xx too
{
    my ($r, $id) = http10('/p/multi/1');
    is($r->status, 502, '1xx, HTTP/1.0 client: 502');
    no_clear('1xx, HTTP/1.0 client', $r->{raw});
}

# outside datagate nginx behaves as it does: before 1.29 the 103 is the
# answer, from 1.29 on nginx reads past it to the provider's final one
is($n->request('GET', '/plain/early/1', cert => 'assistance')->status,
   $HINTS ? 200 : 103,
   'a location without datagate: nginx\'s own way with a 103');

# early_hints on: outside datagate the client gets the provider's 103 with
# its headers; on an enforced location nothing of it, and a 502
SKIP: {
    skip 'early_hints: nginx 1.29 and later', 14 unless $HINTS;
    my $r = $n->request('GET', '/plainh/early/1', cert => 'assistance');
    like($r->{raw}, qr{\AHTTP/1\.1 103 },
         'early_hints, no datagate: the client gets the 103');
    like($r->{raw}, qr/^X-Person-Id: 450103199003071242\r?$/mi,
         'early_hints, no datagate: with the provider\'s headers');
    for my $case (qw(early multi)) {
        my ($r, $id) = call('GET', "/ph/$case/1");
        my $what = "early_hints on, 1xx $case";
        unlike($r->{raw}, qr{^HTTP/1\.1 1\d\d }m,
               "$what: no interim answer goes out");
        is($r->status, 502, "$what: 502");
        is(json_of($r)->{error}{code}, 'upstream_unmaskable',
           "$what: upstream_unmaskable");
        unlike($r->{raw}, qr/^(Link|X-Person-Id):/mi,
               "$what: none of the provider's headers");
        unlike($r->{raw}, qr/450103199003071242/, "$what: no clear ID");
        is(record($id)->{reason}, 'upstream_unmaskable', "$what: audited");
    }
}


# --- 2. validators, digests, conditionals, ranges -----------------------------

{
    my ($r, $id) = call('GET', '/p/validators/1');
    is($r->status, 200, 'validators: 200');
    for my $h (qw(ETag Content-MD5 Digest Repr-Digest Content-Digest
                  Signature Signature-Input Accept-Ranges))
    {
        ok(!defined $r->header($h), "validators: no $h")
            or diag("$h: " . $r->header($h));
    }
    is($r->header('Last-Modified'), 'Tue, 01 Oct 2024 08:00:00 GMT',
       'validators: Last-Modified stays (not derived from the body)');
    is($r->header('Content-Length'), length $r->body,
       'validators: the masked body\'s length');
    is(json_of($r)->{id_card}, '450103********1242', 'validators: masked');
    no_clear('validators', $r->{raw});
    is(record($id)->{reason}, 'ok', 'validators: audited ok');

    $r = call('GET', '/p/weaketag/1');
    ok(!defined $r->header('ETag'), 'a weak ETag is dropped too');

    # an unmasked dataset: the body is the provider's, so are they
    $r = call('GET', '/o/validators/1');
    is($r->header('ETag'), '"5d41402abc4b2a76b9719d911017c592"',
       'unmasked dataset: the provider\'s ETag');
    is($r->header('Content-Length'), length $r->body,
       'unmasked dataset: the provider\'s length');
}

# conditional, range and digest request headers never reach the provider
# of a masked dataset
{
    my @cond = ('If-None-Match: "5d41402abc4b2a76b9719d911017c592"',
                'If-Match: "5d41402abc4b2a76b9719d911017c592"',
                'If-Modified-Since: Tue, 01 Oct 2024 08:00:00 GMT',
                'If-Unmodified-Since: Tue, 01 Oct 2024 08:00:00 GMT',
                'If-Range: "5d41402abc4b2a76b9719d911017c592"',
                'Range: bytes=0-10',
                'A-IM: vcdiff',
                'Want-Digest: sha-256',
                'Want-Repr-Digest: sha-256=1',
                'Want-Content-Digest: sha-256=1',
                'Accept-Encoding: gzip',
                'X-Kept: yes');
    my $r = call('GET', '/p/echo/1', headers => \@cond);
    is($r->status, 200, 'conditionals: 200, not 304 or 206');
    my $h = json_of($r)->{h} || {};
    for my $name (qw(if-none-match if-match if-modified-since
                     if-unmodified-since if-range range a-im want-digest
                     want-repr-digest want-content-digest))
    {
        ok(!exists $h->{$name}, "masked dataset: $name not forwarded");
    }
    is($h->{'accept-encoding'}, 'identity',
       'masked dataset: Accept-Encoding identity');
    is($h->{'x-kept'}, 'yes', 'masked dataset: other headers forwarded');

    $r = call('GET', '/o/echo/1', headers => \@cond);
    $h = json_of($r)->{h} || {};
    is($h->{'if-none-match'}, '"5d41402abc4b2a76b9719d911017c592"',
       'unmasked dataset: If-None-Match forwarded');
    is($h->{range}, 'bytes=0-10', 'unmasked dataset: Range forwarded');
}

# what a masked dataset cannot answer: parts, deltas, unasked-for 304s
for my $c (['p304', 'a 304 to a request without conditionals'],
           ['p206', 'a 206'], ['p226', 'a 226 IM Used'],
           ['range200', 'a 200 with Content-Range'])
{
    my ($name, $what) = @$c;
    my ($r, $id) = call('GET', "/p/$name/1",
                        headers => ['If-None-Match: "x"', 'Range: bytes=0-9']);
    is($r->status, 502, "$what: 502");
    is(json_of($r)->{error}{code}, 'upstream_unmaskable',
       "$what: upstream_unmaskable");
    ok(!defined $r->header('ETag'), "$what: no ETag");
    no_clear($what, $r->{raw});
    is(record($id)->{reason}, 'upstream_unmaskable', "$what: audited");
}
{
    my $r = call('GET', '/o/p304/1', headers => ['If-None-Match: "x"']);
    is($r->status, 304, 'unmasked dataset: the provider\'s 304 passes');
}

# HEAD: neither the provider's length nor its ETag
{
    my ($r, $id) = call('HEAD', '/p/head/1');
    is($r->status, 200, 'HEAD: 200');
    ok(!defined $r->header('Content-Length'),
       'HEAD: no Content-Length of the clear body');
    ok(!defined $r->header('ETag'), 'HEAD: no ETag');
    is($r->body, '', 'HEAD: no body');
    is(record($id)->{reason}, 'ok', 'HEAD: audited ok');
    ok(!record($id)->{cut}, 'HEAD: not cut');

    $r = call('HEAD', '/o/head/1');
    is($r->header('Content-Length'), length DGTest::Evil::person_json(),
       'HEAD, unmasked dataset: the provider\'s length');
}

# a digest in the trailers of a chunked answer never reaches the client
{
    my ($r, $id) = call('GET', '/p/trailer/1', headers => ['TE: trailers']);
    is($r->status, 200, 'trailer: 200');
    unlike($r->{raw}, qr/sha-256=|^Digest:/mi, 'trailer: no digest');
    unlike($r->{raw}, qr/^Trailer:/mi, 'trailer: none announced');
    is(json_of($r)->{id_card}, '450103********1242', 'trailer: masked');
}


# --- 10. the provider failing mid-body ---------------------------------------

# the header still held (a small answer): the error nginx gives for a
# provider that fails, in JSON.  Unbuffered (proxy_buffering off), the
# provider's first flush sends the header: the answer is cut instead.
for my $c (['short', 502, 'closed before its Content-Length'],
           ['badchunk', 502, 'a bad chunk size'],
           ['cutchunk', 502, 'chunking cut'],
           ['stall', 504, 'silent mid-body (proxy_read_timeout)'],
           ['stallchunk', 504, 'silent mid-chunks (proxy_read_timeout)'])
{
    my ($name, $status, $how) = @$c;

    my ($r, $id) = call('GET', "/p/$name/1");
    my $what = "$how, held";
    is($r->status, $status, "$what: $status");
    is(json_of($r)->{error}{code}, 'upstream_unavailable',
       "$what: upstream_unavailable");
    ok(!$r->{truncated}, "$what: a whole JSON answer");
    no_clear($what, $r->{raw});
    my $rec = record($id);
    is($rec->{reason}, 'upstream_unavailable', "$what: audited reason");
    is($rec->{status}, $status, "$what: audited status");
    ok(!$rec->{cut}, "$what: not cut (nothing of it went out)");
    like($rec->{detail} // '', qr/provider/, "$what: audited detail");

    # unbuffered, the header goes with the provider's first flush, when
    # nginx read the first part before the failure (nearly always)
    ($r, $id) = call('GET', "/pu/$name/1");
    $what = "$how, unbuffered";
    my $sent = $r->status == 200;
    ok($sent ? $r->{truncated}
             : $r->status == $status
               && (json_of($r)->{error}{code} // '') eq 'upstream_unavailable',
       "$what: cut, or the JSON error (never a whole 200)")
        or diag('status ' . $r->status);
    no_clear($what, $r->{raw});
    $rec = record($id);
    is($rec->{reason}, 'upstream_unavailable', "$what: audited reason");
    is(!!$rec->{cut}, $sent, "$what: audited as cut when the header went");
}

# framing nginx 1.22 reads its own way (chunks over a length, one of two
# lengths, a negative one): whatever it makes of it, a masked answer or
# a JSON error, never clear data
for my $c (['clte', 'Content-Length and chunked'],
           ['dupcl', 'two Content-Length'],
           ['badcl', 'a negative Content-Length'])
{
    my ($name, $what) = @$c;
    my ($r, $id) = call('GET', "/p/$name/1");
    my $j = json_of($r);
    ok($r->status == 200 && !$r->{truncated}
       && ($j->{id_card} // '') eq '450103********1242'
       || $r->status == 502 && $j->{error}{code},
       "$what: a whole masked answer or a JSON error")
        or diag('status ' . $r->status . ': ' . substr($r->body, 0, 200));
    no_clear($what, $r->{raw});
    my $rec = record($id);
    is($rec->{status}, $r->status, "$what: audited status");
    is($rec->{reason}, $r->status == 200 ? 'ok' : $j->{error}{code},
       "$what: audited reason");
}

# a Content-Length shorter than the body: the rest is never read, the cut
# document is not JSON
{
    my ($r, $id) = call('GET', '/p/long/1');
    is($r->status, 502, 'a length shorter than the body: 502');
    is(json_of($r)->{error}{code}, 'upstream_unmaskable',
       'a length shorter than the body: upstream_unmaskable');
    no_clear('a length shorter than the body', $r->{raw});
}

# the header out (a long answer): the connection is cut, and the record
# says so
for my $c (['manycut', 'closed mid-body', qr/ended before its end/],
           ['manystall', 'silent mid-body', qr/timed out/])
{
    my ($name, $how, $detail) = @$c;
    for my $loc (qw(/p/ /pu/)) {
        my ($r, $id) = call('GET', "$loc$name/1");
        my $what = "$how after the header on $loc";
        is($r->status, 200, "$what: the header had gone");
        ok($r->{truncated}, "$what: the answer is cut (no last chunk)");
        no_clear($what, $r->{raw});
        my $rec = record($id);
        is($rec->{reason}, 'upstream_unavailable', "$what: audited reason");
        ok($rec->{cut}, "$what: audited as cut");
        is($rec->{status}, 200, "$what: audited status sent");
        like($rec->{detail} // '', $detail, "$what: audited detail");
    }
}

# the same long answer, whole: ok, not cut
{
    my ($r, $id) = call('GET', '/p/many/1');
    is($r->status, 200, 'a long answer: 200');
    ok(!$r->{truncated}, 'a long answer: whole');
    is(scalar(() = $r->body =~ /450103\*{8}1242/g), $MANY,
       'a long answer: every record masked');
    my $rec = record($id);
    is($rec->{reason}, 'ok', 'a long answer: audited ok');
    ok(!$rec->{cut}, 'a long answer: not cut');
}

# an unmasked dataset: the provider's own framing is cut, and audited
{
    my ($r, $id) = call('GET', '/o/manycut/1');
    ok($r->{truncated}, 'unmasked dataset, cut mid-body: cut');
    my $rec = record($id);
    is($rec->{reason}, 'upstream_unavailable',
       'unmasked dataset, cut mid-body: audited reason');
    ok($rec->{cut}, 'unmasked dataset, cut mid-body: audited as cut');
}


# --- clients that cannot see a cut (HTTP/1.0, no chunking) ---------------------

{
    # small and whole: its length, complete
    my ($r, $id) = http10('/p/closed/1');
    is($r->status, 200, 'HTTP/1.0: 200');
    is($r->header('Content-Length'), length $r->body,
       'HTTP/1.0: the masked body\'s length');
    is(json_of($r)->{id_card}, '450103********1242', 'HTTP/1.0: masked');

    # long and whole (below datagate_hold_max): held, then with its length
    ($r, $id) = http10('/p/many/1');
    is($r->status, 200, 'HTTP/1.0, long answer: 200');
    is($r->header('Content-Length'), length $r->body,
       'HTTP/1.0, long answer: held whole, sent with its length');
    is(scalar(() = $r->body =~ /450103\*{8}1242/g), $MANY,
       'HTTP/1.0, long answer: every record');
    is(record($id)->{reason}, 'ok', 'HTTP/1.0, long answer: audited ok');

    # the provider fails late: the client gets an error, not a prefix
    for my $c (['manycut', 502], ['manystall', 504]) {
        my ($name, $status) = @{$c};
        ($r, $id) = http10("/p/$name/1");
        is($r->status, $status, "HTTP/1.0, $name: $status, not a prefix");
        is(json_of($r)->{error}{code}, 'upstream_unavailable',
           "HTTP/1.0, $name: upstream_unavailable");
        ok(!$r->{truncated}, "HTTP/1.0, $name: a whole JSON answer");
        my $rec = record($id);
        is($rec->{reason}, 'upstream_unavailable',
           "HTTP/1.0, $name: audited reason");
        ok(!$rec->{cut}, "HTTP/1.0, $name: nothing of it went out");
    }

    # unbuffered: the provider's flushes do not send the header early
    ($r, $id) = http10('/pu/many/1');
    is($r->header('Content-Length'), length $r->body,
       'HTTP/1.0, unbuffered: held whole, sent with its length');
    ($r, $id) = http10('/pu/manycut/1');
    is($r->status, 502, 'HTTP/1.0, unbuffered, cut late: 502, not a prefix');

    # longer than datagate_hold_max: refused before the header
    ($r, $id) = http10('/h/many/1');
    is($r->status, 502, 'HTTP/1.0, beyond datagate_hold_max: 502');
    like(json_of($r)->{error}{message} // '', qr/datagate_hold_max/,
         'HTTP/1.0, beyond datagate_hold_max: says why');
    is(record($id)->{reason}, 'upstream_unmaskable',
       'HTTP/1.0, beyond datagate_hold_max: audited');
    # an HTTP/1.1 client is not held
    $r = call('GET', '/h/many/1');
    is($r->status, 200, 'HTTP/1.1, beyond datagate_hold_max: streamed');
    is($r->header('Transfer-Encoding'), 'chunked',
       'HTTP/1.1, beyond datagate_hold_max: chunked');

    # chunked_transfer_encoding off: HTTP/1.1 is read to the close too
    ($r, $id) = call('GET', '/nc/manycut/1');
    is($r->status, 502, 'no chunking, cut late: 502, not a prefix');
    is(json_of($r)->{error}{code}, 'upstream_unavailable',
       'no chunking, cut late: upstream_unavailable');
    $r = call('GET', '/nc/many/1');
    is($r->header('Content-Length'), length $r->body,
       'no chunking, whole: held, with its length');

    # unmasked dataset, no length from the provider: held the same way
    ($r, $id) = http10('/o/closed/1');
    is($r->status, 200, 'HTTP/1.0, unmasked, no length: 200');
    is($r->header('Content-Length'), length $r->body,
       'HTTP/1.0, unmasked, no length: held, with its length');
    ($r, $id) = http10('/o/manycut/1');
    is($r->status, 502, 'HTTP/1.0, unmasked, cut late: 502, not a prefix');
    is(json_of($r)->{error}{code}, 'upstream_unavailable',
       'HTTP/1.0, unmasked, cut late: upstream_unavailable');
}


# --- the client going away mid-body --------------------------------------------

# a client that reads 48 KB of a long answer and closes
sub abort_after {
    my ($uri, $bytes) = @_;
    my $id = sprintf 'edge-%04d', ++$rid;
    my $s = IO::Socket::SSL->new(
        PeerAddr => '127.0.0.1', PeerPort => $n->port,
        SSL_verify_mode => SSL_VERIFY_NONE,
        SSL_cert_file => "$DGTest::CERTS/assistance.crt",
        SSL_key_file => "$DGTest::CERTS/assistance.key")
        or die "connect: $SSL_ERROR";
    print $s "GET $uri HTTP/1.1\r\nHost: localhost\r\n"
        . "Data-Purpose: social-assistance\r\n"
        . "Datagate-Request-Id: $id\r\n\r\n";
    my $got = '';
    while (length $got < $bytes) {
        my $k = sysread($s, my $buf, 16384);
        last unless $k;
        $got .= $buf;
    }
    close $s;
    return ($id, length $got);
}

for my $loc (qw(/big/ /obig/)) {
    my ($id, $got) = abort_after("${loc}big.json", 48 * 1024);
    cmp_ok($got, '>=', 48 * 1024, "client abort on $loc: read 48 KB");
    my $rec = record($id);
    is($rec->{reason}, 'client_closed', "client abort on $loc: audited reason");
    ok($rec->{cut}, "client abort on $loc: audited as cut");
    is($rec->{status}, 200, "client abort on $loc: the status that went");
    cmp_ok($rec->{bytes} // 0, '<', 10_000_000,
           "client abort on $loc: the bytes that went, not the whole");
}

# a client that goes away while the header is held (the provider is slow)
{
    my $id = sprintf 'edge-%04d', ++$rid;
    my $s = IO::Socket::SSL->new(
        PeerAddr => '127.0.0.1', PeerPort => $n->port,
        SSL_verify_mode => SSL_VERIFY_NONE,
        SSL_cert_file => "$DGTest::CERTS/assistance.crt",
        SSL_key_file => "$DGTest::CERTS/assistance.key")
        or die "connect: $SSL_ERROR";
    print $s "GET /p/stall/1 HTTP/1.1\r\nHost: localhost\r\n"
        . "Data-Purpose: social-assistance\r\n"
        . "Datagate-Request-Id: $id\r\n\r\n";
    sleep 0.3;
    close $s;
    my $rec = record($id);
    is($rec->{reason}, 'client_closed', 'client gone while held: audited');
    is($rec->{status}, 499, 'client gone while held: 499, nothing sent');
    ok(!$rec->{cut}, 'client gone while held: not cut (nothing went)');
}

# the same answer read whole: ok
{
    my ($r, $id) = call('GET', '/big/big.json', timeout => 60);
    ok(!$r->{truncated}, 'big answer read whole: complete');
    my $rec = record($id);
    is($rec->{reason}, 'ok', 'big answer read whole: audited ok');
    ok(!$rec->{cut}, 'big answer read whole: not cut');
}


# --- HTTP/2 --------------------------------------------------------------------

SKIP: {
    skip 'curl without HTTP/2', 1 unless `curl --version` =~ /HTTP2/;

    my $certs = $DGTest::CERTS;
    my $out = $n->dir . '/h2.out';
    # (curl's exit code, HTTP version and status, body, request id)
    my $h2 = sub {
        my ($uri) = @_;
        my $id = sprintf 'edge-%04d', ++$rid;
        my $w = `curl -s --max-time 30 --http2 --cacert $certs/ca.crt --cert $certs/assistance.crt --key $certs/assistance.key -H 'Data-Purpose: social-assistance' -H 'Datagate-Request-Id: $id' -o $out -w '%{http_version} %{http_code}' https://localhost:$H2PORT$uri 2>&1`;
        return ($? >> 8, $w, DGTest::slurp($out) // '', $id);
    };

    my ($rc, $w, $body, $id) = $h2->('/p/many/1');
    is($rc, 0, 'HTTP/2, a long answer: whole');
    is($w, '2 200', 'HTTP/2, a long answer: 200');
    is(scalar(() = $body =~ /450103\*{8}1242/g), $MANY,
       'HTTP/2, a long answer: every record masked');
    my $rec = record($id);
    is($rec->{reason}, 'ok', 'HTTP/2, a long answer: audited ok');
    ok(!$rec->{cut}, 'HTTP/2, a long answer: not cut');

    ($rc, $w, $body, $id) = $h2->('/p/manycut/1');
    isnt($rc, 0, 'HTTP/2, cut after the header: the stream is reset');
    $rec = record($id);
    is($rec->{reason}, 'upstream_unavailable',
       'HTTP/2, cut after the header: audited reason');
    ok($rec->{cut}, 'HTTP/2, cut after the header: audited as cut');

    ($rc, $w, $body, $id) = $h2->('/p/short/1');
    is($w, '2 502', 'HTTP/2, cut while held: 502');
    like($body, qr/"upstream_unavailable"/,
         'HTTP/2, cut while held: upstream_unavailable');

    ($rc, $w, $body, $id) = $h2->('/p/early/1');
    is($w, '2 502', 'HTTP/2, a 103 first: 502');
    unlike($body, qr/450103199003071242/, 'HTTP/2, a 103 first: no clear id');
    is(record($id)->{reason}, 'upstream_unmaskable',
       'HTTP/2, a 103 first: audited');

    ($rc, $w, $body, $id) = $h2->('/p/nostatus/1');
    is($w, '2 502', 'HTTP/2, no status line: 502');
    unlike($body, qr/450103199003071242/,
           'HTTP/2, no status line: no clear id');
}

$n->stop;

# $datagate_reason says what the audit record says
{
    my %want;
    for my $l (split /\n/, DGTest::slurp($n->dir . '/audit.log') // '') {
        my $j = eval { JSON::PP->new->decode($l) } or next;
        $want{ $j->{request_id} } = $j->{reason}
            if ($j->{request_id} // '') =~ /^edge-/;
    }
    my ($same, $all) = (0, 0);
    for my $l (split /\n/, DGTest::slurp($n->dir . '/reasons.log') // '') {
        my ($id, $reason) = split ' ', $l;
        next unless exists $want{$id};
        $all++;
        $same++ if $want{$id} eq $reason;
        diag("$id: audit $want{$id}, \$datagate_reason $reason")
            if $want{$id} ne $reason;
    }
    cmp_ok($all, '>', 50, '$datagate_reason logged');
    is($same, $all, '$datagate_reason is the audit record\'s reason');
}

if ($DGTest::VALGRIND) {
    my $v = $n->valgrind_errors;
    ok(!$v, 'valgrind clean') or diag($v);
}

my $err = $n->error_log;
unlike($err, qr/\[(alert|crit|emerg)\]/, 'no alert, crit or emerg');
like($err, qr/datagate: upstream_unmaskable: the provider sent an interim/,
     'the 1xx refusal is logged');
like($err, qr/datagate: upstream_unavailable: the provider timed out/,
     'the provider failing mid-body is logged');

# the chain holds over every outcome
{
    my ($rc, $out) = DGTest::run_cmd($DGTest::CLI, 'audit', 'verify',
                                     $n->dir . '/audit.log');
    is($rc, 0, 'audit verify: the chain holds') or diag($out);
}

done_testing();
