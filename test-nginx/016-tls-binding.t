# Identity is bound to the TLS verification that happened.  With several
# server{} blocks on one address and port, the client certificate is
# verified by the SSL context of the default server (no SNI) or of the
# server the SNI names, while the request's server is chosen again from
# Host (HTTP/1.1) or :authority (HTTP/2).  A certificate verified by
# another server's context (its CA, its CRL, none at all) never becomes a
# consumer: 401 client_certificate_required, over HTTP/1.1 and HTTP/2.
# A consumer's cert: may also pin the issuer (DN or authority key id) so
# two CAs trusted by one server are never confused.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest qw(:DEFAULT $CERTS $CLI);

my $POLICY = <<'YAML';
purposes: {p: {name: p}}
consumers:
  - id: civil
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
  - id: housing
    cert: {subject: "CN=housing,O=Housing,C=CN"}
    clearance: 1
  - id: revoked-app
    cert: {subject: "CN=assistance-revoked,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
YAML

my $CURL_H2 = `curl --version 2>/dev/null` =~ /HTTP2/;

sub json_of {
    my ($r) = @_;
    return (eval { $r->json }) || {};
}

sub code {
    return json_of($_[0])->{error}{code} // '';
}

sub server_tls {
    my (%o) = @_;
    my $crl = $o{crl} ? "ssl_crl $CERTS/crl.pem;" : '';
    return <<"EOF";
        ssl_certificate         $CERTS/server.crt;
        ssl_certificate_key     $CERTS/server.key;
        ssl_client_certificate  $o{ca};
        ssl_verify_client       $o{verify};
        $crl
EOF
}

# curl over HTTP/2: (status, body); connect to 127.0.0.1, the server name
# (SNI and URL host) and :authority as given
sub h2 {
    my (%o) = @_;
    my $port = $o{port};
    my $url = $o{sni} ? "https://$o{sni}:$port/person/1" :
                        "https://127.0.0.1:$port/person/1";
    my @cmd = ('curl', '-s', '-k', '--http2', '-o', '-',
               '-w', '\n%{http_code} %{http_version}',
               '-H', 'Data-Purpose: p');
    push @cmd, '--resolve', "$o{sni}:$port:127.0.0.1" if $o{sni};
    push @cmd, '-H', "Host: $o{host}" if $o{host};
    push @cmd, '--cert', "$CERTS/$o{cert}.crt", '--key', "$CERTS/$o{cert}.key"
        if $o{cert};
    push @cmd, $url;
    my ($rc, $out) = run_cmd(@cmd);
    my ($body, $status, $ver) = $out =~ /^(.*)\n(\d{3}) (\S+)$/s;
    return ($status // 0, $body // $out, $ver // '');
}

# --- a default server that trusts another CA -----------------------------

{
    my $n = DGTest::Nginx->new(policy => $POLICY);
    my $port = $n->port;
    my $up = $n->upstream_port;
    my $other = server_tls(ca => "$CERTS/foreign-ca.crt", verify => 'on');
    my $open = server_tls(ca => "$CERTS/ca.crt", verify => 'off');
    $n->{http_config} = <<"EOF";
    # the default server of the gateway's address: another CA
    server {
        listen 127.0.0.1:$port ssl http2;
        server_name other.test;
$other
        location / {
            return 200 "other\\n";
        }
    }

    # a server that does not ask for certificates, with enforced locations
    server {
        listen 127.0.0.1:$port ssl http2;
        server_name open.test;
$open
        location /person/ {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$up;
        }
    }
EOF
    $n->{config} = <<"EOF";
        location /person/ {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$up;
        }
EOF
    $n->start;

    my @p = ('Data-Purpose: p');

    # [title, cert, sni, host, status, code]
    my @cases = (
        ['foreign CA, no SNI, Host of the gateway', 'foreign', '',
         'localhost', 401, 'client_certificate_required'],
        ['foreign CA, SNI of the default, Host of the gateway', 'foreign',
         'other.test', 'localhost', 421, ''],
        ['foreign CA, SNI of the default, Host of the server without '
         . 'verification', 'foreign', 'other.test', 'open.test', 401,
         'client_certificate_required'],
        ['foreign CA, no SNI, Host of the server without verification',
         'foreign', '', 'open.test', 401, 'client_certificate_required'],
        ['dev CA, no SNI, Host of the gateway', 'assistance', '',
         'localhost', 401, 'client_certificate_required'],
        ['dev CA, SNI and Host of the gateway', 'assistance', 'localhost',
         'localhost', 200, ''],
        ['dev CA, SNI of the server without verification', 'assistance',
         'open.test', 'open.test', 401, 'client_certificate_required'],
        ['foreign CA, SNI and Host of the gateway', 'foreign', 'localhost',
         'localhost', 401, 'client_certificate_required'],
    );

    for my $c (@cases) {
        my ($title, $cert, $sni, $host, $status, $code) = @$c;
        my $r = $n->request('GET', '/person/1', cert => $cert, sni => $sni,
                            host => $host, headers => \@p);
        is($r->status, $status, "HTTP/1.1 $title: $status")
            or diag($r->body);
        is(code($r), $code, "HTTP/1.1 $title: code '$code'") if $code;
        unlike($r->body, qr/"consumer"|450103/, "HTTP/1.1 $title: no data")
            if $status != 200;
    }

    my $r = $n->request('GET', '/person/1', cert => 'foreign', sni => '',
                        host => 'localhost', headers => \@p);
    like(json_of($r)->{error}{message} // '',
         qr/another server name; connect with this server's name \(SNI\)/,
         'the message says why');

    # keep-alive: the second request on the connection is checked too
    {
        my $raw = "GET /person/1 HTTP/1.1\r\nHost: localhost\r\n"
                . "Data-Purpose: p\r\n\r\n"
                . "GET /person/1 HTTP/1.1\r\nHost: open.test\r\n"
                . "Data-Purpose: p\r\nConnection: close\r\n\r\n";
        my $k = $n->request('GET', '/', cert => 'assistance',
                            sni => 'localhost', raw => $raw);
        my @st = $k->{raw} =~ m{^HTTP/1\.1 (\d{3})}mg;
        is("@st", '200 401', 'keep-alive: the same connection, another '
           . 'server: 401');
    }

    SKIP: {
        skip 'curl without HTTP/2', 10 unless $CURL_H2;
        my ($st, $body, $ver) = h2(port => $port, cert => 'foreign',
                                   host => 'localhost');
        is($ver, '2', 'HTTP/2 is spoken');
        is($st, 401, 'HTTP/2 foreign CA, no SNI, :authority of the '
           . 'gateway: 401') or diag($body);
        like($body, qr/"code":"client_certificate_required"/, '... JSON');
        ($st, $body) = h2(port => $port, cert => 'foreign',
                          sni => 'other.test', host => 'open.test');
        is($st, 401, 'HTTP/2 foreign CA, SNI of the default, :authority of '
           . 'the server without verification: 401') or diag($body);
        ($st, $body) = h2(port => $port, cert => 'foreign',
                          sni => 'other.test', host => 'localhost');
        isnt($st, 200, 'HTTP/2 foreign CA, SNI of the default, :authority '
             . "of the gateway: not 200 ($st)");
        unlike($body, qr/"consumer"|450103/, '... no data');
        ($st, $body) = h2(port => $port, cert => 'assistance',
                          sni => 'localhost');
        is($st, 200, 'HTTP/2 dev CA, SNI of the gateway: 200')
            or diag($body);
        like($body, qr/"id_card"/, '... the data');
        ($st, $body) = h2(port => $port, cert => 'assistance',
                          host => 'localhost');
        is($st, 401, 'HTTP/2 dev CA, no SNI: 401') or diag($body);
        ($st, $body) = h2(port => $port, cert => 'assistance',
                          sni => 'localhost', host => 'open.test');
        isnt($st, 200, "HTTP/2 SNI of the gateway, :authority of another "
             . "server: not 200 ($st)");
    }

    $n->stop;
    my $log = $n->error_log;
    like($log, qr/datagate: client certificate refused: verified for another server\{\} \(TLS server name "", host "localhost"\)/,
         'the refusal is logged with the server names');
    unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit, emerg');
}

# --- a default server without the CRL ---------------------------------------

{
    my $n = DGTest::Nginx->new(policy => $POLICY);
    my $port = $n->port;
    my $up = $n->upstream_port;
    my $nocrl = server_tls(ca => "$CERTS/ca.crt", verify => 'on');
    my $audit = $n->dir . '/audit.log';
    $n->{http_config} = <<"EOF";
    datagate_audit_log $audit;

    # the default server: the same CA, no ssl_crl
    server {
        listen 127.0.0.1:$port ssl http2;
        server_name nocrl.test;
$nocrl
        location /person/ {
            datagate off;
            proxy_pass http://127.0.0.1:$up;
        }
    }
EOF
    $n->{config} = <<"EOF";
        location /person/ {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$up;
        }
EOF
    $n->start;

    my @p = ('Data-Purpose: p');
    my $r = $n->request('GET', '/person/1', cert => 'revoked', sni => '',
                        host => 'localhost', headers => \@p);
    is($r->status, 401, 'revoked, no SNI (verified without the CRL): 401')
        or diag($r->body);
    is(code($r), 'client_certificate_required', '... client_certificate_'
       . 'required');
    unlike($r->body, qr/450103/, '... no data');

    $r = $n->request('GET', '/person/1', cert => 'revoked',
                     sni => 'localhost', host => 'localhost', headers => \@p);
    is($r->status, 403, 'revoked, SNI of the server with the CRL: 403');
    is(code($r), 'cert_revoked', '... cert_revoked');

    $r = $n->request('GET', '/person/1', cert => 'housing', sni => '',
                     host => 'localhost', headers => \@p);
    is($r->status, 401, 'valid, no SNI: 401 as well');

    $r = $n->request('GET', '/person/1', cert => 'housing',
                     sni => 'localhost', host => 'localhost', headers => \@p);
    is($r->status, 200, 'valid, SNI of the gateway: 200');

    SKIP: {
        skip 'curl without HTTP/2', 2 unless $CURL_H2;
        my ($st, $body) = h2(port => $port, cert => 'revoked',
                             host => 'localhost');
        is($st, 401, 'HTTP/2 revoked, no SNI: 401') or diag($body);
        ($st, $body) = h2(port => $port, cert => 'revoked',
                          sni => 'localhost');
        is($st, 403, 'HTTP/2 revoked, SNI of the gateway: 403')
            or diag($body);
    }

    $n->stop;
    my @rec = map { json_decode($_) } split /\n/, DGTest::slurp($audit);
    my ($unbound) = grep { ($_->{cert_serial} // '') eq
                           cert_info('revoked')->{serial}
                           && $_->{status} == 401 } @rec;
    ok($unbound, 'the refusal is audited with the certificate\'s serial')
        or diag(explain(\@rec));
    is($unbound->{consumer}, undef, '... no consumer') if $unbound;
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/,
           'no alert, crit, emerg');
}

# --- two CAs in one server: the issuer pins the consumer --------------------

{
    my $akid_of = sub {
        my ($name) = @_;
        my (undef, $out) = run_cmd('openssl', 'x509', '-in',
                                   "$CERTS/$name.crt", '-noout', '-ext',
                                   'authorityKeyIdentifier');
        my ($kid) = $out =~ /((?:[0-9A-F]{2}:)+[0-9A-F]{2})/;
        return $kid;
    };
    my $dev_kid = $akid_of->('assistance');
    my $foreign_kid = $akid_of->('foreign');
    ok($dev_kid && $foreign_kid && $dev_kid ne $foreign_kid,
       'the two CAs have different key ids');

    my $policy = <<"YAML";
purposes: {p: {name: p}}
consumers:
  - id: civil
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN", issuer: "CN=datagate dev CA,O=datagate development,C=CN"}
    clearance: 1
  - id: civil-by-key
    cert: {san: "URI:spiffe://gx.gov.cn/civil-affairs/assistance", issuer_key_id: "$foreign_kid"}
    clearance: 1
  - id: civil-by-other-key
    cert: {san: "URI:spiffe://gx.gov.cn/civil-affairs/assistance", issuer_key_id: "keyid:$dev_kid"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
YAML
    my $n = DGTest::Nginx->new(policy => $policy);
    my $both = $n->dir . '/two-cas.pem';
    DGTest::spew($both, DGTest::slurp("$CERTS/ca.crt")
                        . DGTest::slurp("$CERTS/foreign-ca.crt"));
    my $port = DGTest::free_port();
    my $up = $n->upstream_port;
    my $tls = server_tls(ca => $both, verify => 'on');
    $n->{http_config} = <<"EOF";
    server {
        listen 127.0.0.1:$port ssl;
        server_name localhost;
$tls
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$up;
        }
    }
EOF
    $n->start;

    my $r = DGTest::http_request('GET', '/echo', port => $port,
                                 cert => 'assistance',
                                 headers => ['Data-Purpose: p']);
    is($r->status, 200, 'dev CA: 200');
    like($r->body, qr/"consumer":"civil"/, 'dev CA: the consumer pinned to '
         . 'its issuer DN');

    $r = DGTest::http_request('GET', '/echo', port => $port,
                              cert => 'foreign',
                              headers => ['Data-Purpose: p']);
    is($r->status, 200, 'foreign CA (same subject and SAN): 200');
    like($r->body, qr/"consumer":"civil-by-key"/,
         'foreign CA: the consumer pinned to its issuer key id, not civil');

    $n->stop;
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/,
           'no alert, crit, emerg');
}

# --- datagate policy check: the same names, the same refusals ---------------

SKIP: {
    skip "$CLI not built", 6 unless -x $CLI;
    my $dir = DGTest::base_dir();
    my $check = sub {
        my ($cert) = @_;
        my $f = "$dir/check-" . int(rand(1e9)) . '.yaml';
        DGTest::spew($f, "purposes: {p: {}}\nconsumers:\n  - id: c\n"
                         . "    cert: $cert\n    clearance: 1\n");
        return run_cmd($CLI, 'policy', 'check', $f);
    };
    my ($rc, $out) = $check->('{subject: "C = CN, O = 广西, CN = 民政厅", '
                              . 'issuer: "CN=datagate dev CA,O=datagate '
                              . 'development,C=CN"}');
    is($rc, 0, 'policy check: one-line subject and an issuer') or diag($out);
    ($rc, $out) = $check->('{issuer: "CN=datagate dev CA"}');
    isnt($rc, 0, 'policy check: an issuer alone is refused');
    like($out, qr/check-\d+\.yaml:4: consumers\[0\]\.cert: at least one of subject/,
         '... with file and line');
    ($rc, $out) = $check->('{subject: "CN=x,C=China"}');
    isnt($rc, 0, 'policy check: C=China is refused');
    like($out, qr/\.yaml:4: consumers\[0\]\.cert\.subject: C='China'/,
         '... with file and line');
    ($rc, $out) = $check->('{subject: "CN=x", issuer_key_id: "zz:yy"}');
    like($out, qr/issuer_key_id: bad key identifier/,
         'policy check: a bad issuer_key_id is refused');
}

done_testing();
