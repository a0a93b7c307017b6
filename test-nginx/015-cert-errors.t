# Client certificates nginx refuses (ssl_verify_client): on a server with
# enforced locations the answer is datagate's JSON error, with a request id
# and an audit record: no certificate 401 client_certificate_required, a
# failed verification (expired, unknown CA) 401 client_certificate_required
# naming the verify error, a certificate revoked by ssl_crl 403
# cert_revoked.  A server without datagate keeps nginx's 400 page.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use DGTest qw(:DEFAULT $CERTS);

my $POLICY = <<'YAML';
levels: {1: 公开, 2: 内部, 3: 敏感, 4: 高敏感}
classes:
  person.id_number: {level: 4, mask: id_card}
purposes:
  social-assistance: {name: 社会救助资格核验}
consumers:
  - id: civil-affairs.assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
datasets:
  - id: population.person
    name: 人口基础信息
    share: conditional
    level: 3
    fields: {id_card: person.id_number}
grants:
  - consumer: civil-affairs.assistance
    dataset: population.person
    purposes: [social-assistance]
    valid: {from: 2024-01-01, until: 2099-12-31}
YAML

sub json_of {
    my ($r) = @_;
    return (eval { $r->json }) || {};
}

my $plain = DGTest::free_port();   # mutual TLS, no datagate location
my $h2 = DGTest::free_port();      # datagate, HTTP/2

my $n = DGTest::Nginx->new(policy => $POLICY);
my $up = $n->upstream_port;
my $audit = $n->dir . '/audit.log';
my $tls = <<"EOF";
        ssl_certificate         $CERTS/server.crt;
        ssl_certificate_key     $CERTS/server.key;
        ssl_client_certificate  $CERTS/ca.crt;
        ssl_verify_client       on;
        ssl_crl                 $CERTS/crl.pem;
EOF
$n->{http_config} = <<"EOF";
    datagate_audit_log $audit;

    server {
        listen 127.0.0.1:$plain ssl;
        server_name localhost;
$tls
        location /person/ {
            proxy_pass http://127.0.0.1:$up;
        }
        location /off/ {
            datagate off;
            proxy_pass http://127.0.0.1:$up/person/;
        }
    }

    server {
        listen 127.0.0.1:$h2 ssl http2;
        server_name localhost;
$tls
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$up;
        }
    }
EOF
$n->{config} = <<"EOF";
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$up;
        }
EOF
$n->start;

my @pa = ('Data-Purpose: social-assistance');

# [title, cert, status, code, message]
my @cases = (
    ['no certificate', undef, 401, 'client_certificate_required',
     qr/certificate is required: no certificate was sent/],
    ['expired', 'expired', 401, 'client_certificate_required',
     qr/certificate is required: certificate has expired/],
    ['foreign CA', 'foreign', 401, 'client_certificate_required',
     qr/certificate is required: unable to (get local issuer|verify the first) certificate/],
    ['revoked (CRL)', 'revoked', 403, 'cert_revoked',
     qr/^the client certificate has been revoked$/],
);

for my $c (@cases) {
    my ($title, $cert, $status, $code, $msg) = @$c;
    my $r = $n->request('GET', '/person/1', cert => $cert, headers => \@pa);
    is($r->status, $status, "$title: $status") or diag($r->body);
    is($r->header('Content-Type'), 'application/json', "$title: JSON");
    my $j = json_of($r);
    is($j->{error}{code}, $code, "$title: $code");
    like($j->{error}{message} // '', $msg, "$title: message");
    like($j->{error}{request_id} // '', qr/^[0-9a-f]{32}$/,
         "$title: request id");
    is($r->header('Content-Length'), length($r->body),
       "$title: Content-Length of the JSON");
    unlike($r->body, qr/<html>|450103/, "$title: no HTML, no data");
}

# the caller's request id; HEAD; any URI of the server
{
    my $r = $n->request('GET', '/person/2', cert => 'revoked',
                        headers => ['Datagate-Request-Id: cert-err-1']);
    is(json_of($r)->{error}{request_id}, 'cert-err-1',
       'the caller\'s request id');

    $r = $n->request('HEAD', '/person/1', cert => 'expired');
    is($r->status, 401, 'HEAD: 401');
    is($r->body, '', 'HEAD: no body');

    $r = $n->request('GET', '/no/such/location');
    is($r->status, 401, 'a URI no location serves: 401 too');
    is(json_of($r)->{error}{code}, 'client_certificate_required',
       'a URI no location serves: JSON');
}

# a valid certificate still works
{
    my $r = $n->request('GET', '/person/1', cert => 'assistance',
                        headers => \@pa);
    is($r->status, 200, 'valid certificate: 200');
    is(json_of($r)->{id_card}, '450103********1242', 'valid: masked');
}

# a server without datagate keeps nginx's 400 page
for my $c ([undef, 'No required SSL certificate was sent'],
           ['expired', 'The SSL certificate error'],
           ['revoked', 'The SSL certificate error'])
{
    my ($cert, $page) = @$c;
    my $what = $cert // 'no certificate';
    for my $uri ('/person/1', '/off/1') {
        my $r = DGTest::http_request('GET', $uri, port => $plain,
                                     cert => $cert);
        is($r->status, 400, "server without datagate, $what, $uri: 400");
        like($r->body, qr/\Q$page\E/, "... nginx's page");
        like($r->header('Content-Type') // '', qr{^text/html},
             '... text/html');
    }
}

# HTTP/2
SKIP: {
    skip 'curl without HTTP/2', 4 unless `curl --version` =~ /HTTP2/;
    my $base = "-s --http2 --cacert $CERTS/ca.crt -w '\\n%{http_code} "
        . "%{http_version}' --resolve localhost:$h2:127.0.0.1";
    my $out = `curl $base https://localhost:$h2/person/1 2>&1`;
    like($out, qr/"code":"client_certificate_required"/,
         'HTTP/2, no certificate: JSON');
    like($out, qr/\n401 2$/, 'HTTP/2, no certificate: 401');
    my $cmd = "curl $base --cert $CERTS/revoked.crt "
            . "--key $CERTS/revoked.key https://localhost:$h2/person/1 2>&1";
    $out = `$cmd`;
    like($out, qr/"code":"cert_revoked"/, 'HTTP/2, revoked: JSON');
    like($out, qr/\n403 2$/, 'HTTP/2, revoked: 403');
}

# audit records
my $until = time + DGTest::secs(5);
my @rec;
while (time < $until) {
    @rec = ();
    if (open my $fh, '<', $audit) {
        @rec = map { json_decode($_) } <$fh>;
    }
    last if @rec >= 10;
    sleep 0.02;
}
my @cert = grep { ($_->{reason} // '') =~ /^(client_certificate_required|cert_revoked)$/ } @rec;
cmp_ok(scalar @cert, '>=', 8, 'refused certificates are audited')
    or diag(explain(\@rec));
my ($rev) = grep { $_->{reason} eq 'cert_revoked' } @cert;
is($rev->{decision}, 'denied', 'audit: denied');
is($rev->{status}, 403, 'audit: status 403');
is($rev->{cert_serial}, cert_info('revoked')->{serial},
   'audit: the revoked certificate\'s serial');
is($rev->{uri}, '/person/1', 'audit: uri');
like($rev->{request_id}, qr/^[0-9a-f]{32}$/, 'audit: request id');
my ($none) = grep { $_->{reason} eq 'client_certificate_required' } @cert;
is($none->{status}, 401, 'audit: status 401');
ok(!grep({ ($_->{uri} // '') =~ m{^/off/} } @rec),
   'no record from the server without datagate');

$n->stop;
my $log = $n->error_log;
like($log, qr/\[warn\].*datagate: denied cert_revoked \(certificate revoked\) serial=[0-9A-F]+, request_id=/,
     'revoked: logged at warn with the serial');
like($log, qr/datagate: denied client_certificate_required \(certificate has expired\)/,
     'expired: logged');
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit, emerg');

# ssl_verify_client optional: nginx still refuses a certificate that fails
# verification; no certificate reaches the access phase (401 there)
{
    my $o = start_nginx(policy => $POLICY, verify_client => 'optional',
                        config => <<"EOF");
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:\$TEST_NGINX_UPSTREAM_PORT;
        }
EOF
    for my $c (['expired', 401, 'client_certificate_required'],
               ['revoked', 403, 'cert_revoked'],
               [undef, 401, 'client_certificate_required'])
    {
        my ($cert, $status, $code) = @$c;
        my $what = $cert // 'no certificate';
        my $r = $o->request('GET', '/person/1', cert => $cert,
                            headers => \@pa);
        is($r->status, $status, "optional, $what: $status");
        is(json_of($r)->{error}{code}, $code, "optional, $what: $code");
    }
    $o->stop;
    unlike($o->error_log, qr/\[(alert|crit|emerg)\]/,
           'optional: no alert, crit, emerg');
}

done_testing();
