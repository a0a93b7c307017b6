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
use POSIX ();
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
    my $until = time + DGTest::secs(5);
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

# --- the database file changes under a running gateway ----------------------
#
# The database is read into a private copy at configuration time: writing
# over the file (cp: truncate, then write), truncating it to nothing or to
# half, or removing it, touches nothing the workers use.  A reload with a
# broken file is refused and the running configuration keeps its copy; a
# reload with a complete file takes it.  No worker may die (SIGBUS), and
# consumers without a geo rule never notice.

sub spew_raw {
    my ($file, $bytes) = @_;
    # in place, as cp does: the same inode, truncated, then written
    open my $fh, '+<:raw', $file or die "$file: $!\n";
    truncate $fh, 0 or die "$file: $!\n";
    print $fh $bytes;
    close $fh or die "$file: $!\n";
}

{
    my ($g, $gdb) = gateway(workers => 2);
    my $d = $g->dir;
    # A: the test map (127.0.0.1 Guangxi, 127.0.0.2 the US);
    # B: 127.0.0.2 in Guangxi, 127.0.0.1 unknown
    system('perl', $mkmmdb, "$d/a.mmdb") == 0 or die;
    system('perl', $mkmmdb, "$d/b.mmdb", '127.0.0.2/32=CN-GX') == 0 or die;
    my $A = DGTest::slurp("$d/a.mmdb");
    my $B = DGTest::slurp("$d/b.mmdb");
    $g->start;

    # [cert, address, status]: what database A answers, and B
    my %want = (
        A => [['assistance', '127.0.0.1', 200], ['assistance', '127.0.0.2', 403],
              ['hrss', '127.0.0.1', 200], ['market', '127.0.0.2', 200],
              ['market', '127.0.0.1', 200]],
        B => [['assistance', '127.0.0.1', 403], ['assistance', '127.0.0.2', 200],
              ['hrss', '127.0.0.2', 200], ['market', '127.0.0.2', 200],
              ['market', '127.0.0.1', 200]],
    );
    my $answers = sub {
        my ($title, $db) = @_;
        my @bad;
        for my $c (@{ $want{$db} }) {
            my ($cert, $addr, $status) = @$c;
            my $r = $g->request('GET', '/enterprise/1', cert => $cert,
                                headers => [@mr, "X-Real-IP: $addr"]);
            push @bad, "$cert from $addr: " . $r->status
                . ($r->{error} ? " ($r->{error})" : '')
                if $r->status != $status;
        }
        is("@bad", '', "$title: database $db answers") or diag("@bad");
    };

    $answers->('started', 'A');

    spew_raw($gdb, $B);
    $answers->('overwritten in place by B', 'A');

    spew_raw($gdb, '');
    $answers->('truncated to 0 bytes', 'A');

    spew_raw($gdb, substr($B, 0, int(length($B) / 2)));
    $answers->('truncated to half of B', 'A');

    # a broken file: the reload is refused, the running copy stays
    ok(!$g->reload, 'reload with half a database: refused');
    like($g->error_log, qr/\[emerg\].*cannot open GeoIP database "\Q$gdb\E"/,
         'reload with half a database: the error names the file');
    $answers->('after the refused reload', 'A');

    spew_raw($gdb, '');
    ok(!$g->reload, 'reload with an empty file: refused');
    $answers->('after the second refused reload', 'A');

    unlink $gdb;
    $answers->('file removed', 'A');
    ok(!$g->reload, 'reload without the file: refused');
    $answers->('after the reload without the file', 'A');

    # the documented way: write elsewhere, rename into place, reload
    DGTest::spew("$gdb.new", $B);
    rename "$gdb.new", $gdb or die;
    ok($g->reload, 'reload after mv: accepted');
    $answers->('after mv and reload', 'B');

    # cp over it (in place) while requests run: no worker dies, every
    # answer is database B's; then a reload takes A
    my $loops = 30;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $bad = 0;
        for my $i (1 .. $loops) {
            for my $c (@{ $want{B} }) {
                my ($cert, $addr, $status) = @$c;
                my $r = $g->request('GET', '/enterprise/1', cert => $cert,
                                    headers => [@mr, "X-Real-IP: $addr"]);
                $bad++ if $r->status != $status;
            }
        }
        POSIX::_exit($bad > 250 ? 250 : $bad);
    }
    my $writes = 0;
    while (waitpid($pid, POSIX::WNOHANG()) == 0) {
        my $step = $writes++ % 4;
        if ($step == 0) {
            system('cp', "$d/a.mmdb", $gdb) == 0 or die "cp: $?";
        } elsif ($step == 1) {
            spew_raw($gdb, substr($A, 0, int(length($A) / 3)));
        } elsif ($step == 2) {
            spew_raw($gdb, '');
        } else {
            spew_raw($gdb, $B . 'garbage' x 1000);
        }
        sleep 0.01;
    }
    is($? >> 8, 0, "under load, $writes writes over the file: every "
       . "answer from database B");
    cmp_ok($writes, '>', 5, 'under load: the file was rewritten while '
           . 'requests ran');

    system('cp', "$d/a.mmdb", $gdb) == 0 or die;
    ok($g->reload, 'reload after cp of A: accepted');
    $answers->('after cp and reload', 'A');

    $g->stop;
    is($g->valgrind_errors, '', 'valgrind clean (when asked)');
    my $log = $g->error_log;
    unlike($log, qr/exited on signal/, 'no worker died');
    unlike($log, qr/\[(alert|crit)\]/, 'no alert or crit');
    like($log, qr/GeoIP database "\Q$gdb\E".*read into a private copy/,
         'the load says the database was copied');
}

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

    my ($dd) = gateway(geo => 'datagate_geoip /tmp;');
    ($rc, $out) = $dd->test_conf;
    isnt($rc, 0, 'a directory: nginx -t fails');
    like($out, qr/\[emerg\].*cannot open GeoIP database "\/tmp": not a regular file/,
         'a directory: named, with the reason') or diag($out);
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
