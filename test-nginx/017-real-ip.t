# The network and geo rules decide from the TCP peer.  nginx's realip
# module (set_real_ip_from, real_ip_header) changes the address nginx
# shows, not the one datagate decides from; only the proxies named by
# datagate_real_ip_from may forward a client address (in
# datagate_real_ip_header, X-Forwarded-For by default), read from the
# nearest hop back, skipping trusted ones.  The audit record has the
# address the rules used (client), the TCP peer (peer) and the forwarded
# one (forwarded).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IO::Socket::SSL;
use DGTest qw(:DEFAULT $CERTS);

my $mkmmdb = "$FindBin::Bin/lib/make-mmdb.pl";

# the client connects from 127.0.0.1 (Guangxi in the test database);
# 10.1.0.0/16 is "the US", 10.45.0.0/16 Guangxi
my $POLICY = <<'YAML';
purposes: {p: {name: p}}
consumers:
  - id: lan
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
    networks: [10.45.0.0/16]
  - id: loopback
    cert: {subject: "CN=housing,O=Housing,C=CN"}
    clearance: 1
    networks: [127.0.0.0/8]
  - id: guangxi
    cert: {subject: "CN=market-supervision,O=Market Supervision,C=CN"}
    clearance: 1
    geo: {regions: [CN-GX]}
datasets:
  - {id: d, share: unconditional, level: 1}
YAML

my %CERT = (lan => 'assistance', loopback => 'housing', guangxi => 'market');

sub code {
    my ($r) = @_;
    my $j = eval { $r->json } || {};
    return $j->{error}{code} // 'ok';
}

sub gateway {
    my ($extra) = @_;
    my $n = DGTest::Nginx->new(policy => $POLICY);
    my $d = $n->dir;
    my $up = $n->upstream_port;
    system('perl', $mkmmdb, "$d/test.mmdb") == 0 or die "make-mmdb.pl\n";
    $n->{http_config} = "    datagate_audit_log $d/audit.log;\n"
        . "    datagate_geoip $d/test.mmdb;\n";
    $n->{config} = <<"EOF";
$extra
        location /person/ {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$up;
        }
EOF
    $n->start;
    return $n;
}

sub records {
    my ($n, $count) = @_;
    my $f = $n->dir . '/audit.log';
    my $until = time + DGTest::secs(5);
    my @l;
    while (time < $until) {
        @l = split /\n/, DGTest::slurp($f);
        last if @l >= $count;
        sleep 0.02;
    }
    return map { json_decode($_) } @l;
}

# run [title, consumer, headers, expected code, client, forwarded] cases
sub run_cases {
    my ($n, $what, @cases) = @_;
    my $i = () = records($n, 0);
    for my $c (@cases) {
        my ($title, $who, $h, $want, $client, $fwd) = @$c;
        my $r = $n->request('GET', '/person/1', cert => $CERT{$who},
                            headers => ['Data-Purpose: p', @$h]);
        is(code($r), $want, "$what: $title: $want") or diag($r->body);
        my @rec = records($n, ++$i);
        my $rec = $rec[-1] || {};
        is($rec->{client}, $client, "$what: $title: audit client $client");
        is($rec->{peer}, '127.0.0.1', "$what: $title: audit peer");
        is($rec->{forwarded}, $fwd, "$what: $title: audit forwarded "
           . ($fwd // 'absent'));
    }
}

# --- nginx's realip trusts everybody: datagate does not follow -------------

{
    my $n = gateway(<<'EOF');
        set_real_ip_from 0.0.0.0/0;
        real_ip_header X-Forwarded-For;
        real_ip_recursive on;
EOF
    run_cases($n, 'realip only',
        ['a forged LAN address', 'lan', ['X-Forwarded-For: 10.45.1.2'],
         'network_denied', '127.0.0.1', '10.45.1.2'],
        ['a forged foreign address, consumer on loopback', 'loopback',
         ['X-Forwarded-For: 10.1.2.3'], 'ok', '127.0.0.1', '10.1.2.3'],
        ['a forged US address, Guangxi rule', 'guangxi',
         ['X-Forwarded-For: 10.1.2.3'], 'ok', '127.0.0.1', '10.1.2.3'],
        ['no header', 'lan', [], 'network_denied', '127.0.0.1', undef],
    );

    SKIP: {
        skip 'curl without HTTP/2', 2
            unless `curl --version 2>/dev/null` =~ /HTTP2/;
        # an HTTP/2 server on its own port, same locations
        my $port = $n->port;
        my ($rc, $out) = run_cmd('curl', '-s', '-k', '--http1.1',
            '-H', 'Data-Purpose: p', '-H', 'X-Forwarded-For: 10.45.1.2',
            '--cert', "$CERTS/assistance.crt",
            '--key', "$CERTS/assistance.key",
            '-w', '\n%{http_code}', "https://127.0.0.1:$port/person/1");
        like($out, qr/"network_denied".*\n403$/s,
             'curl HTTP/1.1, forged LAN address: 403');
        my $m = DGTest::Nginx->new(policy => $POLICY);
        my $up = $m->upstream_port;
        my $h2 = DGTest::free_port();
        $m->{http_config} = <<"EOF";
    server {
        listen 127.0.0.1:$h2 ssl http2;
        ssl_certificate         $CERTS/server.crt;
        ssl_certificate_key     $CERTS/server.key;
        ssl_client_certificate  $CERTS/ca.crt;
        ssl_verify_client       on;
        set_real_ip_from 0.0.0.0/0;
        real_ip_header X-Forwarded-For;
        location /person/ {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$up;
        }
    }
EOF
        $m->start;
        ($rc, $out) = run_cmd('curl', '-s', '-k', '--http2',
            '-H', 'Data-Purpose: p', '-H', 'X-Forwarded-For: 10.45.1.2',
            '--cert', "$CERTS/assistance.crt",
            '--key', "$CERTS/assistance.key",
            '-w', '\n%{http_code} %{http_version}',
            "https://127.0.0.1:$h2/person/1");
        like($out, qr/"network_denied".*\n403 2$/s,
             'HTTP/2, forged LAN address: 403');
        $m->stop;
    }

    $n->stop;
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit');
}

# --- datagate trusts the proxy at 127.0.0.1 --------------------------------

{
    my $n = gateway(<<'EOF');
        datagate_real_ip_from 127.0.0.1;
        datagate_real_ip_from 10.45.9.0/24;
EOF
    run_cases($n, 'trusted proxy',
        ['a LAN client', 'lan', ['X-Forwarded-For: 10.45.1.2'], 'ok',
         '10.45.1.2', '10.45.1.2'],
        ['the client is the nearest untrusted hop', 'lan',
         ['X-Forwarded-For: 10.45.1.2, 10.1.2.3'], 'network_denied',
         '10.1.2.3', '10.1.2.3'],
        ['trusted hops are skipped', 'lan',
         ['X-Forwarded-For: 10.1.2.3, 10.45.1.2, 10.45.9.7'], 'ok',
         '10.45.1.2', '10.45.1.2'],
        ['the last header line is the nearest', 'lan',
         ['X-Forwarded-For: 10.45.1.2', 'X-Forwarded-For: 10.1.2.3'],
         'network_denied', '10.1.2.3', '10.1.2.3'],
        ['a hop that is not an address: the trusted peer', 'lan',
         ['X-Forwarded-For: 10.45.1.2, unknown'], 'network_denied',
         '127.0.0.1', undef],
        ['an address with a port', 'lan',
         ['X-Forwarded-For: 10.45.1.2:51000'], 'ok', '10.45.1.2',
         '10.45.1.2'],
        ['only trusted hops: the farthest', 'lan',
         ['X-Forwarded-For: 10.45.9.1, 10.45.9.2'], 'ok', '10.45.9.1',
         '10.45.9.1'],
        ['no header: the peer', 'loopback', [], 'ok', '127.0.0.1', undef],
        ['geo from the forwarded address (US)', 'guangxi',
         ['X-Forwarded-For: 10.1.2.3'], 'geo_denied', '10.1.2.3',
         '10.1.2.3'],
        ['geo from the forwarded address (Guangxi)', 'guangxi',
         ['X-Forwarded-For: 10.45.1.2'], 'ok', '10.45.1.2', '10.45.1.2'],
        ['another header is not read', 'lan',
         ['X-Real-IP: 10.45.1.2'], 'network_denied', '127.0.0.1', undef],
    );
    $n->stop;
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit');
}

# --- a trusted proxy elsewhere: the header of this peer is not believed ----

{
    my $n = gateway(<<'EOF');
        datagate_real_ip_from 192.0.2.0/24;
        datagate_real_ip_header X-Real-IP;
EOF
    run_cases($n, 'untrusted peer',
        ['X-Real-IP from an untrusted peer', 'lan',
         ['X-Real-IP: 10.45.1.2'], 'network_denied', '127.0.0.1', undef],
    );
    $n->stop;
}

{
    my $n = gateway(<<'EOF');
        datagate_real_ip_from 127.0.0.0/8;
        datagate_real_ip_header X-Real-IP;
EOF
    run_cases($n, 'X-Real-IP',
        ['X-Real-IP from a trusted peer', 'lan', ['X-Real-IP: 10.45.1.2'],
         'ok', '10.45.1.2', '10.45.1.2'],
        ['X-Forwarded-For is not read', 'lan',
         ['X-Forwarded-For: 10.45.1.2'], 'network_denied', '127.0.0.1',
         undef],
    );
    $n->stop;
}

# --- PROXY protocol: the source the trusted balancer names -----------------

{
    my $n = DGTest::Nginx->new(policy => $POLICY);
    my $up = $n->upstream_port;
    my $pp = DGTest::free_port();
    my $d = $n->dir;
    $n->{http_config} = <<"EOF";
    datagate_audit_log $d/audit.log;
    server {
        listen 127.0.0.1:$pp ssl proxy_protocol;
        ssl_certificate         $CERTS/server.crt;
        ssl_certificate_key     $CERTS/server.key;
        ssl_client_certificate  $CERTS/ca.crt;
        ssl_verify_client       on;
        location /person/ {
            datagate_dataset d;
            datagate_real_ip_from 127.0.0.1;
            datagate_real_ip_header proxy_protocol;
            proxy_pass http://127.0.0.1:$up;
        }
        location /untrusted/ {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$up/person/;
        }
    }
EOF
    $n->start;

    my $via_proxy = sub {
        my ($src, $uri) = @_;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $pp, Proto => 'tcp')
            or return "connect: $!";
        print $s "PROXY TCP4 $src 127.0.0.1 51000 443\r\n";
        IO::Socket::SSL->start_SSL($s,
            SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
            SSL_hostname => 'localhost',
            SSL_cert_file => "$CERTS/assistance.crt",
            SSL_key_file => "$CERTS/assistance.key")
            or return "tls: " . IO::Socket::SSL::errstr();
        print $s "GET $uri HTTP/1.1\r\nHost: localhost\r\n"
            . "Data-Purpose: p\r\nConnection: close\r\n\r\n";
        local $/;
        my $resp = <$s> // '';
        close $s;
        return $resp;
    };

    like($via_proxy->('10.45.1.2', '/person/1'), qr{^HTTP/1\.1 200},
         'PROXY protocol from a trusted balancer, LAN source: 200');
    like($via_proxy->('10.1.2.3', '/person/1'),
         qr{^HTTP/1\.1 403.*"network_denied"}s,
         'PROXY protocol, foreign source: 403');
    like($via_proxy->('10.45.1.2', '/untrusted/1'),
         qr{^HTTP/1\.1 403.*"network_denied"}s,
         'PROXY protocol where datagate trusts nobody: the peer decides');
    my @rec = records($n, 3);
    is($rec[0]{client}, '10.45.1.2', 'audit: client from the PROXY header');
    is($rec[0]{peer}, '127.0.0.1', 'audit: peer');
    is($rec[2]{client}, '127.0.0.1', 'audit: untrusted: the peer');
    $n->stop;
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit');
}

# --- configuration errors ---------------------------------------------------

for my $c (['10.0.0.1/8', qr/datagate: "10\.0\.0\.1\/8" has host bits/],
           ['proxy.example', qr/datagate: "proxy\.example" is not an address or CIDR/])
{
    my ($arg, $re) = @$c;
    my ($ok, $out) = nginx_t(policy => $POLICY, config => <<"EOF");
        datagate_real_ip_from $arg;
        location /person/ {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:1;
        }
EOF
    ok(!$ok, "datagate_real_ip_from $arg: nginx -t fails");
    like($out, $re, "datagate_real_ip_from $arg: says why") or diag($out);
}

done_testing();
