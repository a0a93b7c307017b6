# GeoIP (datagate_geoip): per-consumer country and region rules from a test
# .mmdb built with libmaxmind-db-writer-perl (test-nginx/lib/make-mmdb.pl),
# 403 geo_denied, the country and region in the audit record, an address
# the database does not know is denied, a bad file fails nginx -t naming
# it, and a reload reopens the database.
#
# The clients appear from other places through a proxy datagate trusts
# (datagate_real_ip_from 127.0.0.1, the address in X-Real-IP), and once
# for real by binding the client socket to another loopback address.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::SSL;
use Time::HiRes qw(sleep time);
use DGTest qw(:DEFAULT $CERTS);

my $mkmmdb = "$FindBin::Bin/lib/make-mmdb.pl";

my $policy = <<'YAML';
levels: {1: 公开, 2: 内部, 3: 敏感, 4: 高敏感}
classes:
  person.name: {level: 3, mask: name}
purposes:
  market-regulation: {name: 市场主体监管}
consumers:
  - id: civil-affairs.assistance
    org: 自治区民政厅
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
    geo: {countries: [CN]}
  - id: hrss.portal
    org: 自治区人力资源和社会保障厅
    cert: {san: "DNS:hrss.gx.gov.cn"}
    clearance: 2
    geo: {regions: [CN-GX]}
  - id: market.supervision
    org: 自治区市场监督管理局
    cert: {subject: "CN=market-supervision,O=Market Supervision,C=CN"}
    clearance: 2
datasets:
  - id: enterprise.registration
    name: 企业登记信息
    provider: 自治区市场监督管理局
    share: unconditional
    level: 2
    fields: {legal_rep: person.name}
YAML

sub gateway {
    my (%o) = @_;
    my $geo = delete $o{geo};
    my $n = DGTest::Nginx->new(policy => $policy, %o);
    my $d = $n->dir;
    my $up = $n->upstream_port;
    my $db = "$d/test.mmdb";
    system('perl', $mkmmdb, $db) == 0 or die "make-mmdb.pl failed\n";
    $n->{http_config} = "datagate_audit_log $d/audit.log;\n"
        . (defined $geo ? $geo : "datagate_geoip $db;");
    $n->{config} = <<"EOF";
        datagate_real_ip_from 127.0.0.1;
        datagate_real_ip_header X-Real-IP;
        location /enterprise/ {
            datagate on;
            datagate_dataset enterprise.registration;
            proxy_pass http://127.0.0.1:$up;
        }
EOF
    return ($n, $db);
}

sub last_record {
    my ($n, $count) = @_;
    my $f = $n->dir . '/audit.log';
    my $until = time + 5;
    my @l;
    while (time < $until) {
        open my $fh, '<', $f or next;
        @l = <$fh>;
        last if @l >= $count;
        sleep 0.02;
    }
    return @l ? json_decode($l[-1]) : {};
}

my @mr = ('Data-Purpose: market-regulation');

my ($n, $db) = gateway();
$n->start;

# [title, cert, address, status, country, region]
my @cases = (
    ['CN consumer from Guangxi', 'assistance', '127.0.0.1', 200, 'CN',
     'CN-GX'],
    ['CN consumer from the US', 'assistance', '127.0.0.2', 403, 'US',
     'US-CA'],
    ['CN consumer from Beijing', 'assistance', '127.0.0.3', 200, 'CN',
     'CN-BJ'],
    ['CN consumer, address unknown to the database', 'assistance',
     '127.0.0.5', 403, undef, undef],
    ['CN consumer, entry without a country', 'assistance', '127.0.0.4',
     403, undef, undef],
    ['CN consumer from a private network in Guangxi', 'assistance',
     '10.45.3.4', 200, 'CN', 'CN-GX'],
    ['Guangxi consumer from Guangxi', 'hrss', '127.0.0.1', 200, 'CN',
     'CN-GX'],
    ['Guangxi consumer from Beijing', 'hrss', '127.0.0.3', 403, 'CN',
     'CN-BJ'],
    ['Guangxi consumer from the US', 'hrss', '10.1.2.3', 403, 'US', undef],
    ['consumer without a geo rule from the US', 'market', '127.0.0.2', 200,
     'US', 'US-CA'],
    ['consumer without a geo rule, unknown address', 'market', '127.0.0.9',
     200, undef, undef],
);

my $i = 0;
for my $c (@cases) {
    my ($title, $cert, $addr, $status, $country, $region) = @$c;
    my $r = $n->request('GET', '/enterprise/1', cert => $cert,
                        headers => [@mr, "X-Real-IP: $addr"]);
    is($r->status, $status, "$title: $status")
        or diag(substr($r->body, 0, 300));
    if ($status == 403) {
        my $j = eval { $r->json } // {};
        is($j->{error}{code}, 'geo_denied', "$title: geo_denied");
    }
    my $rec = last_record($n, ++$i);
    is($rec->{client}, $addr, "$title: audit client");
    is($rec->{country}, $country, "$title: audit country");
    is($rec->{region}, $region, "$title: audit region");
    is($rec->{reason}, $status == 200 ? 'ok' : 'geo_denied',
       "$title: audit reason");
}

# a real client socket bound to 127.0.0.2 ("the US")
sub request_from {
    my ($port, $local, $cert) = @_;
    my $s = IO::Socket::SSL->new(
        PeerAddr => '127.0.0.1', PeerPort => $port, LocalAddr => $local,
        SSL_verify_mode => SSL_VERIFY_PEER, SSL_ca_file => "$CERTS/ca.crt",
        SSL_hostname => 'localhost', SSL_verifycn_name => 'localhost',
        SSL_verifycn_scheme => 'http',
        SSL_cert_file => "$CERTS/$cert.crt",
        SSL_key_file => "$CERTS/$cert.key", Timeout => 10)
        or return "connect: " . IO::Socket::SSL::errstr();
    print $s "GET /enterprise/1 HTTP/1.1\r\nHost: localhost\r\n"
        . "Data-Purpose: market-regulation\r\nConnection: close\r\n\r\n";
    local $/;
    my $resp = <$s> // '';
    close $s;
    return $resp;
}

SKIP: {
    my $probe = IO::Socket::INET->new(LocalAddr => '127.0.0.2',
                                      PeerAddr => '127.0.0.1',
                                      PeerPort => $n->port, Proto => 'tcp');
    skip 'cannot bind to 127.0.0.2', 4 unless $probe;
    close $probe;
    # the probe itself reaches nginx without a TLS handshake: no record

    my $resp = request_from($n->port, '127.0.0.2', 'assistance');
    like($resp, qr{^HTTP/1\.1 403}, 'from 127.0.0.2: 403');
    like($resp, qr/"geo_denied"/, 'from 127.0.0.2: geo_denied');
    $resp = request_from($n->port, '127.0.0.2', 'market');
    like($resp, qr{^HTTP/1\.1 200}, 'from 127.0.0.2 without a rule: 200');
    my $rec = last_record($n, $i + 2);
    is($rec->{country}, 'US', 'from 127.0.0.2: country US');
    $i += 2;
}

# --- a reload reopens the database ------------------------------------------

system('perl', $mkmmdb, $db, '127.0.0.2/32=CN-GX') == 0 or die;
ok($n->reload, 'reload with a new database');
my $r = $n->request('GET', '/enterprise/1', cert => 'assistance',
                    headers => [@mr, 'X-Real-IP: 127.0.0.2']);
is($r->status, 200, 'after reload: 127.0.0.2 is in Guangxi now');
$r = $n->request('GET', '/enterprise/1', cert => 'assistance',
                 headers => [@mr, 'X-Real-IP: 127.0.0.1']);
is($r->status, 403, 'after reload: 127.0.0.1 is not in the new database');

$n->stop;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'error.log clean');

# --- configuration errors -------------------------------------------------------

{
    my ($b) = gateway(geo => 'datagate_geoip /nonexistent/GeoLite2.mmdb;');
    my ($rc, $out) = $b->test_conf;
    isnt($rc, 0, 'missing database: nginx -t fails');
    like($out, qr/\[emerg\].*datagate: cannot open GeoIP database "\/nonexistent\/GeoLite2\.mmdb"/,
         'missing database: named') or diag($out);

    my ($g, $gdb) = gateway();
    open my $fh, '>', $gdb or die;
    print $fh "not a maxmind database\n" x 10;
    close $fh;
    ($rc, $out) = $g->test_conf;
    isnt($rc, 0, 'broken database: nginx -t fails');
    like($out, qr/\[emerg\].*cannot open GeoIP database "\Q$gdb\E": /,
         'broken database: named, with the reason') or diag($out);
}

{
    # a geo rule without a database: warned, and the consumer is denied
    my ($w) = gateway(geo => '');
    $w->start;
    my $r = $w->request('GET', '/enterprise/1', cert => 'assistance',
                        headers => \@mr);
    is($r->status, 403, 'no database: a consumer with a geo rule is denied');
    is(eval { $r->json->{error}{code} }, 'geo_denied', 'no database: geo_denied');
    $r = $w->request('GET', '/enterprise/1', cert => 'market',
                     headers => \@mr);
    is($r->status, 200, 'no database: others pass');
    is(last_record($w, 2)->{country}, undef, 'no database: country null');
    $w->stop;
    like($w->error_log, qr/\[warn\].*geo rule.*no "datagate_geoip"/,
         'no database: warned at start');
}

done_testing();
