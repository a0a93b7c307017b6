# Which answers can be masked, decided in the header filter: JSON types
# (application/json, application/problem+json with its status kept) are;
# a provider's gzip is inflated first (a file, the demo origin's gzip
# filter), and the gateway may compress the masked answer for its client;
# text/plain, an HTML error page, brotli, and a body that claims gzip but
# is not are refused with 502 upstream_unmaskable and no data; empty and
# 204 answers pass.
# Policy: test-nginx/data/policy-glue.yaml (lib/DGMask.pm).

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Compress::Gzip qw(gzip $GzipError);
use IO::Uncompress::Gunzip ();
use DGTest;
use DGMask;

my $n = DGTest::Nginx->new(policy => $POLICY, config => <<'END',
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location /gz/person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
            # the provider compresses whatever datagate asks for
            proxy_set_header Accept-Encoding gzip;
        }
        # the gateway compresses the masked answer for its client
        location /zip/person/ {
            datagate_dataset population.person;
            gzip on;
            gzip_types application/json;
            gzip_min_length 1;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/person/;
        }
        location = /text {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location /fx/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
END
    upstream => <<'END');
        location = /fx/brotli {
            default_type application/json;
            add_header Content-Encoding br;
            return 200 '{"id_card":"450103199003071242"}';
        }
        location = /fx/problem {
            default_type "application/problem+json; charset=utf-8";
            return 404 '{"title":"not found","id_card":"450103199003071242"}';
        }
        location = /fx/html-error {
            default_type text/html;
            return 500 '<html>450103199003071242</html>';
        }
        location = /fx/empty {
            default_type application/json;
            return 200 '';
        }
        location = /fx/nocontent {
            return 204;
        }
        location = /fx/gzfile {
            default_type application/json;
            add_header Content-Encoding gzip;
            alias $TEST_NGINX_HTML_DIR/record.json.gz;
        }
        location = /fx/gzbad {
            default_type application/json;
            add_header Content-Encoding gzip;
            alias $TEST_NGINX_HTML_DIR/record.json;
        }
END
DGTest::spew($n->dir . '/html/record.json', $RECORD);
{
    gzip(\$RECORD => \my $gz) or die $GzipError;
    DGTest::spew($n->dir . '/html/record.json.gz', $gz);
}
$n->start;

# --- gzip after datagate: the length set for the masked body gives way
#     to the compressed one's framing; without Accept-Encoding it stays --

{
    my $r = $n->request('GET', '/person/1', cert => 'assistance',
                        headers => [@OK]);
    my $z = $n->request('GET', '/zip/person/1', cert => 'assistance',
                        headers => [@OK, 'Accept-Encoding: gzip']);
    is($z->header('Content-Encoding'), 'gzip',
       'gzip at the gateway: compressed');
    ok(!defined $z->header('Content-Length')
       || $z->header('Content-Length') == length $z->body,
       'gzip at the gateway: no Content-Length of the plain body');
    my $plain;
    IO::Uncompress::Gunzip::gunzip(\$z->body => \$plain);
    is($plain, $r->body, 'gzip at the gateway: the masked document');

    $z = $n->request('GET', '/zip/person/1', cert => 'assistance',
                     headers => [@OK]);
    is($z->header('Content-Length'), length $z->body,
       'gzip at the gateway, not asked for: Content-Length');
    is($z->body, $r->body, 'gzip at the gateway, not asked for: same');
}

# --- gzip from the provider: inflated and masked, or refused -------------

{
    my $r = $n->request('GET', '/gz/person/1', cert => 'assistance',
                        headers => [@OK]);
    is($r->status, 200, 'gzip upstream: 200');
    ok(!defined $r->header('Content-Encoding'),
       'gzip upstream: sent inflated');
    is(json_of($r)->{id_card}, '450103********1242', 'gzip upstream: masked');

    $r = $n->request('GET', '/fx/gzfile', cert => 'assistance',
                     headers => [@OK]);
    is($r->status, 200, 'gzip file: 200');
    check_record('gzip file', json_of($r));

    $r = $n->request('GET', '/fx/gzbad', cert => 'assistance',
                     headers => [@OK]);
    is($r->status, 502, 'claims gzip, is not: 502');
    is(json_of($r)->{error}{code}, 'upstream_unmaskable',
       'claims gzip, is not: upstream_unmaskable');
    unlike($r->body, qr/450103199003071242/, 'claims gzip, is not: no data');

    $r = $n->request('GET', '/fx/brotli', cert => 'assistance',
                     headers => [@OK]);
    is($r->status, 502, 'br: 502');
    is(json_of($r)->{error}{code}, 'upstream_unmaskable',
       'br: upstream_unmaskable');
    unlike($r->body, qr/450103199003071242/, 'br: no data');
}

# --- content types: JSON is masked, anything else refused, empty passes --

{
    my $r = $n->request('GET', '/text', cert => 'assistance',
                        headers => [@OK]);
    is($r->status, 502, 'text/plain upstream: 502');
    is($r->header('Content-Type'), 'application/json',
       'text/plain upstream: JSON error');
    my $j = json_of($r);
    is($j->{error}{code}, 'upstream_unmaskable', 'upstream_unmaskable');
    like($j->{error}{request_id} // '', qr/^[0-9a-f]{32}$/,
         'with the request id');
    unlike($r->body, qr/450103199003071242/, 'text/plain: no data');

    $r = $n->request('GET', '/fx/html-error', cert => 'assistance',
                     headers => [@OK]);
    is($r->status, 502, 'provider HTML error page: 502');
    unlike($r->body, qr/450103199003071242/, 'HTML error page: no data');

    $r = $n->request('GET', '/fx/problem', cert => 'assistance',
                     headers => [@OK]);
    is($r->status, 404, 'problem+json: status kept');
    is(json_of($r)->{id_card}, '450103********1242', 'problem+json masked');

    $r = $n->request('GET', '/fx/empty', cert => 'assistance',
                     headers => [@OK]);
    is($r->status, 200, 'empty JSON body: 200');
    is($r->body, '', 'empty JSON body: empty');

    $r = $n->request('GET', '/fx/nocontent', cert => 'assistance',
                     headers => [@OK]);
    is($r->status, 204, '204 passes');
}

$n->stop;
{
    my $log = $n->error_log;
    like($log, qr/datagate: upstream_unmaskable: content type is not JSON/,
         'type refusal logged');
    unlike($log, qr/\[(alert|crit|emerg)\]/, 'encodings: no alert/crit');
}

done_testing();
