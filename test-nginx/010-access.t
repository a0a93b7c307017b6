# The access phase through real nginx and real mutual TLS: every reason
# code, the JSON error format, the request id, header rewriting toward the
# provider, datagate off.  Policy: test-nginx/data/policy-glue.yaml.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest;

my $POLICY = DGTest::slurp("$FindBin::Bin/data/policy-glue.yaml");

my $CONFIG = <<'END';
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location /enterprise/ {
            datagate_dataset enterprise.registration;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location /property/ {
            datagate_dataset realestate.property;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location /tax/ {
            datagate_dataset tax.secret;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location = /echo {
            datagate_dataset open.echo;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location = /person-echo {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/echo;
        }
        location /plain/ {
            datagate off;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
        }
END

my @OK = ('Data-Purpose: social-assistance',
          'Data-Approval: GXSJ-2024-0137');

sub json_of {
    my ($r) = @_;
    return (eval { $r->json }) || {};
}

# --- every reason code ----------------------------------------------------

my $n = start_nginx(policy => $POLICY, config => $CONFIG,
                    verify_client => 'optional');

my @cases = (
    # name, method, uri, cert, headers, status, code
    ['no certificate', 'GET', '/person/1', undef, [@OK],
     401, 'client_certificate_required'],
    ['unknown consumer', 'GET', '/person/1', 'unknown', [@OK],
     403, 'unknown_consumer'],
    ['network denied', 'GET', '/enterprise/1', 'market',
     ['Data-Purpose: market-regulation'], 403, 'network_denied'],
    ['dataset not shared', 'GET', '/tax/1', 'assistance', [@OK],
     403, 'dataset_not_shared'],
    ['purpose required', 'GET', '/person/1', 'assistance', [],
     403, 'purpose_required'],
    ['purpose unknown', 'GET', '/person/1', 'assistance',
     ['Data-Purpose: curiosity'], 403, 'purpose_unknown'],
    ['purpose not granted', 'GET', '/person/1', 'assistance',
     ['Data-Purpose: housing-security'], 403, 'purpose_not_granted'],
    ['grant expired', 'GET', '/person/1', 'hrss',
     ['Data-Purpose: employment-service'], 403, 'grant_expired'],
    ['approval required', 'GET', '/person/1', 'assistance',
     ['Data-Purpose: social-assistance'], 403, 'approval_required'],
    ['wrong approval', 'GET', '/person/1', 'assistance',
     ['Data-Purpose: social-assistance', 'Data-Approval: GXSJ-1999-0001'],
     403, 'approval_required'],
    ['method not granted', 'POST', '/person/1', 'assistance', [@OK],
     403, 'method_not_granted'],
    ['level exceeded', 'GET', '/enterprise/1', 'housing',
     ['Data-Purpose: housing-security'], 403, 'level_exceeded'],
    ['allowed conditional', 'GET', '/person/1', 'assistance', [@OK],
     200, undef],
    ['allowed unconditional', 'GET', '/enterprise/1', 'hrss',
     ['Data-Purpose: employment-service'], 200, undef],
    ['allowed by SAN', 'GET', '/echo', 'hrss',
     ['Data-Purpose: market-regulation'], 200, undef],
);

for my $c (@cases) {
    my ($name, $m, $uri, $cert, $h, $status, $code) = @$c;
    my $r = $n->request($m, $uri, cert => $cert, headers => $h,
                        $m eq 'POST' ? (body => '{}') : ());
    is($r->status, $status, "$name: status $status") or diag($r->body);
    if (defined $code) {
        like($r->header('Content-Type') // '', qr{^application/json},
             "$name: JSON error");
        my $j = json_of($r);
        is($j->{error}{code}, $code, "$name: code $code");
        like($j->{error}{message} // '', qr/\S/, "$name: a message");
        like($j->{error}{request_id} // '', qr/^[0-9a-f]{32}$/,
             "$name: generated request id");
    }
}

{
    my $r = $n->request('HEAD', '/person/1', cert => 'assistance',
                        headers => ['Data-Purpose: curiosity']);
    is($r->status, 403, 'HEAD denied: status');
    is($r->body, '', 'HEAD denied: no body');
}

my $log = $n->error_log;
like($log, qr/datagate: denied purpose_not_granted consumer=civil-affairs\.assistance dataset=population\.person purpose=housing-security, request_id=[0-9a-f]{32}/,
     'denial logged with consumer, dataset, purpose, request id');
like($log, qr/\[warn\].*datagate: denied client_certificate_required/,
     'certificate denial logged at warn');
like($log, qr/\[info\].*datagate: denied level_exceeded/,
     'policy denial logged at info');
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit in the error log');

# --- plain HTTP to an enforced location ------------------------------------

{
    my $r = DGTest::http_request('GET', '/person/1', port => $n->port,
                                 ssl => 0);
    # nginx itself answers 400 (plain HTTP to an HTTPS port) before us
    is($r->status, 400, 'plain HTTP to the TLS port: 400 by nginx');
}

# --- request id -----------------------------------------------------------

{
    my $r = $n->request('GET', '/person-echo', cert => 'assistance',
                        headers => [@OK,
                                    'Datagate-Request-Id: trace.42_a-B']);
    is($r->status, 200, 'echo allowed');
    my $j = json_of($r);
    is($j->{request_id}, 'trace.42_a-B', 'valid client request id passed on');

    $r = $n->request('GET', '/person/1', cert => 'assistance',
                     headers => ['Data-Purpose: curiosity',
                                 'Datagate-Request-Id: trace.42_a-B']);
    is(json_of($r)->{error}{request_id}, 'trace.42_a-B',
       'client request id in the error');

    for my $bad ('has space', 'x' x 65, 'semi;colon', "\xc3\xbc") {
        $r = $n->request('GET', '/person-echo', cert => 'assistance',
                         headers => [@OK, "Datagate-Request-Id: $bad"]);
        like(json_of($r)->{request_id} // '', qr/^[0-9a-f]{32}$/,
             "invalid request id '" . substr($bad, 0, 10)
             . "' replaced by a generated one");
    }

    my %seen;
    for (1 .. 5) {
        $r = $n->request('GET', '/person-echo', cert => 'assistance',
                         headers => [@OK]);
        $seen{json_of($r)->{request_id} // ''}++;
    }
    is(scalar(grep { /^[0-9a-f]{32}$/ } keys %seen), 5,
       'generated request ids differ');
}

# --- headers toward the provider -------------------------------------------

{
    my $r = $n->request('GET', '/person-echo', cert => 'assistance',
                        headers => [@OK,
                                    'Datagate-Consumer: root.admin',
                                    'datagate-purpose: anything',
                                    'DATAGATE-EXTRA: x',
                                    'Accept-Encoding: gzip, br',
                                    'X-Test: kept']);
    is($r->status, 200, 'spoofing attempt allowed (valid purpose)');
    my $j = json_of($r);
    is($j->{consumer}, 'civil-affairs.assistance',
       'Datagate-Consumer is the authenticated consumer');
    is($j->{purpose}, 'social-assistance',
       'Datagate-Purpose is the declared purpose');
    like($j->{request_id} // '', qr/^[0-9a-f]{32}$/,
         'Datagate-Request-Id sent');
    is($j->{approval}, 'GXSJ-2024-0137', 'Data-Approval passes');
    is($j->{x_test}, 'kept', 'other headers pass');
    is($j->{accept_encoding}, 'identity',
       'masked dataset: provider asked for an identity body');

    $r = $n->request('GET', '/echo', cert => 'hrss',
                     headers => ['Data-Purpose: market-regulation',
                                 'Accept-Encoding: gzip',
                                 'Datagate-Consumer: root.admin']);
    $j = json_of($r);
    is($j->{consumer}, 'hrss.portal', 'unmasked dataset: consumer header');
    is($j->{accept_encoding}, 'gzip',
       'unmasked dataset: Accept-Encoding untouched');
}

# --- datagate off ---------------------------------------------------------

{
    my $r = $n->request('GET', '/plain/echo', cert => 'unknown',
                        headers => ['Datagate-Consumer: root.admin']);
    is($r->status, 200, 'datagate off: no decision');
    is(json_of($r)->{consumer}, 'root.admin',
       'datagate off: headers untouched');

    $r = $n->request('GET', '/plain/person/1', cert => 'unknown');
    like($r->body, qr/450103199003071242/, 'datagate off: body untouched');
}

# --- keepalive: several requests on one connection (HTTP/1.1 and HTTP/2) --

SKIP: {
    skip 'curl without HTTP/2', 4 unless `curl --version` =~ /HTTP2/;
    my $certs = $DGTest::CERTS;
    my $port = $n->port;
    my $base = "--cacert $certs/ca.crt --cert $certs/assistance.crt "
        . "--key $certs/assistance.key -H 'Data-Purpose: social-assistance' "
        . "-H 'Data-Approval: GXSJ-2024-0137' -w ' %{http_code} %{num_connects}\\n'";
    my $out = `curl -s --http1.1 $base https://localhost:$port/person/1 https://localhost:$port/person-echo https://localhost:$port/person/2 2>&1`;
    my @codes = $out =~ / (\d{3}) (\d)\n/g;
    is("@codes", '200 1 200 0 200 0',
       'HTTP/1.1 keepalive: three requests, one connection');
    unlike($out, qr/(?<![0-9a-f])\d{17}[\dX](?![0-9a-f])/, 'HTTP/1.1 keepalive: masked');

    $out = `curl -s --http2 $base https://localhost:$port/person/1 https://localhost:$port/person/3 2>&1`;
    @codes = $out =~ / (\d{3}) (\d)\n/g;
    # the test server does not listen with http2: curl falls back to 1.1
    is("@codes", '200 1 200 0', 'curl --http2: two requests, one connection');
    unlike($out, qr/(?<![0-9a-f])\d{17}[\dX](?![0-9a-f])/, 'curl --http2: masked');
}

$n->stop;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'clean shutdown');

# --- plain HTTP server with an enforced location -----------------------

{
    my $plain = DGTest::free_port();
    my $m = start_nginx(policy => $POLICY, http_config => <<"END");
    server {
        listen 127.0.0.1:$plain;
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:\$TEST_NGINX_UPSTREAM_PORT;
        }
    }
END
    my $r = DGTest::http_request('GET', '/person/1', port => $plain,
                                 ssl => 0, headers => [@OK]);
    is($r->status, 401, 'plain HTTP server, enforced location: 401');
    is(json_of($r)->{error}{code}, 'client_certificate_required',
       'plain HTTP: client_certificate_required');
    unlike($r->body, qr/450103/, 'plain HTTP: no data');
    $m->stop;
}

# --- satisfy any cannot bypass datagate; internal redirects keep the ctx ---

$n = start_nginx(policy => $POLICY, http_config => <<'END', config => <<'END2');
    log_format dg 'dg $datagate_request_id $datagate_consumer $datagate_decision $status';
    access_log $TEST_NGINX_TESTDIR/dg.log dg;
END
        location /person/ {
            satisfy any;
            allow all;
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
            proxy_intercept_errors on;
            error_page 404 = /notfound;
        }
        location = /notfound {
            internal;
            datagate off;
            default_type application/json;
            return 404 '{"error":"no such record"}';
        }
END2

{
    my $r = $n->request('GET', '/person/1', cert => 'unknown',
                        headers => [@OK]);
    is($r->status, 403, 'satisfy any + allow all: still denied');
    is(json_of($r)->{error}{code}, 'unknown_consumer',
       'satisfy any: unknown_consumer');

    $r = $n->request('GET', '/person/99', cert => 'assistance',
                     headers => [@OK, 'Datagate-Request-Id: redirected']);
    is($r->status, 404, 'error_page after an allowed request: 404');
    is(json_of($r)->{error}, 'no such record', 'error_page body');

    $n->stop;
    my $al = DGTest::slurp($n->dir . '/dg.log');
    like($al, qr/^dg redirected civil-affairs\.assistance allowed 404$/m,
         'internal redirect: the request context survived');
}

# --- certificates nginx refuses ---------------------------------------------

$n = start_nginx(policy => $POLICY, config => $CONFIG);

# (refused by nginx before any location; JSON on a server that enforces,
# see 015-cert-errors.t)
for my $c (['foreign', 'foreign CA', 401, 'client_certificate_required'],
           ['expired', 'expired', 401, 'client_certificate_required'],
           ['revoked', 'revoked (CRL)', 403, 'cert_revoked'])
{
    my $r = $n->request('GET', '/person/1', cert => $c->[0],
                        headers => [@OK]);
    is($r->status, $c->[2], "$c->[1] certificate refused: $c->[2]")
        or diag($r->status . ' ' . $r->body);
    is(json_of($r)->{error}{code}, $c->[3], "$c->[1]: $c->[3]");
    unlike($r->body, qr/450103/, "$c->[1]: no data");
}

{
    my $r = $n->request('GET', '/person/1', headers => [@OK]);
    is($r->status, 401, 'verify on, no certificate: 401');
    is(json_of($r)->{error}{code}, 'client_certificate_required',
       'verify on, no certificate: client_certificate_required');
}

$n->stop;

done_testing();
