# Masked answers to clients of each HTTP version: an HTTP/1.0 client,
# which cannot take chunks, gets the masked document with its length and
# keeps its connection for a second one; an HTTP/2 client gets a masked
# answer streamed from a chunked, dripping provider.  (HTTP/2 for a long
# response: 035-mask-long-responses.t.)
# Policy: test-nginx/data/policy-glue.yaml (lib/DGMask.pm).

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest;
use DGMask;

# --- HTTP/1.0: with the length known it keeps its connection for a
#     second masked response ---------------------------------------------

{
    my $n = start_nginx(policy => $POLICY, config => <<'END');
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
END
    my $s = tls_connect($n->port);
    my @got;
    for my $i (1, 2) {
        print $s "GET /person/1 HTTP/1.0\r\nConnection: keep-alive\r\n"
            . join('', map { "$_\r\n" } @OK) . "\r\n";
        # the whole response, by its Content-Length
        push @got, read_until($s, 10, sub {
            my ($len) = $_[0] =~ /\r\nContent-Length: (\d+)\r\n/i;
            return defined $len && $_[0] =~ /\r\n\r\n/
                && length($_[0]) - $+[0] >= $len;
        });
    }
    close $s;
    for my $i (0, 1) {
        my ($head, $body) = split /\r\n\r\n/, $got[$i], 2;
        $head //= '';
        like($head, qr/^HTTP\/1\.1 200/, "HTTP/1.0 request $i: 200");
        like($head, qr/\r\nConnection: keep-alive/i,
             "HTTP/1.0 request $i: kept alive");
        like($body // '', qr/450103\*{8}1242/,
             "HTTP/1.0 request $i: masked");
    }
    $n->stop;
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/,
           'HTTP/1.0: no alert/crit');
}

# --- HTTP/2: a chunked provider dripping the record 5 bytes at a time,
#     split inside keys, values, escapes and UTF-8 sequences --------------

{
    my @bytes = map { substr($RECORD, $_ * 5, 5) }
                0 .. int(length($RECORD) / 5);
    my ($p1, $pid1) = drip_server(pieces => \@bytes, delay => 0.01);

    my $h2port = DGTest::free_port();
    my $m = start_nginx(policy => $POLICY,
        http_config => h2_server($h2port, <<"H2"));
        location /chunked-unbuffered {
            datagate_dataset population.person;
            proxy_buffering off;
            proxy_pass http://127.0.0.1:$p1;
        }
H2

    SKIP: {
        my $c = DGTest::Nginx->can('port') && `curl --version` =~ /HTTP2/;
        skip 'curl without HTTP/2', 3 unless $c;
        my $certs = $DGTest::CERTS;
        my $out = `curl -s --http2 --cacert $certs/ca.crt --cert $certs/assistance.crt --key $certs/assistance.key -H 'Data-Purpose: social-assistance' -H 'Data-Approval: GXSJ-2024-0137' -w '\\n%{http_version} %{http_code}' https://localhost:$h2port/chunked-unbuffered 2>&1`;
        like($out, qr/\n2 200$/, 'HTTP/2: 200');
        like($out, qr/"id_card":"450103\*{8}1242"/, 'HTTP/2: masked');
        unlike($out, qr/450103199003071242/, 'HTTP/2: no clear data');
    }

    $m->stop;
    unlike($m->error_log, qr/\[(alert|crit|emerg)\]/,
           'HTTP/2: no alert/crit');
    stop_server($pid1);
}

done_testing();
