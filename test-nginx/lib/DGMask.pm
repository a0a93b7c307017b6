package DGMask;

# What the response-masking files (030-mask-fields.t, 031-mask-encodings.t,
# 032-mask-http-versions.t, 033-mask-failures.t, 034-mask-streaming.t,
# 035-mask-long-responses.t) share: the policy they run, the request
# headers of a granted call, a record and what masking makes of it, and
# the clients and origins the harness does not have (a raw TLS connection,
# a bounded read loop, an origin that drips its answer, an HTTP/2 gateway
# server).
#
#   use DGTest;
#   use DGMask;
#   my $n = start_nginx(policy => $POLICY, config => '...');
#   my $r = $n->request('GET', '/person/1', cert => 'assistance',
#                       headers => [@OK]);
#   check_record('what', json_of($r));

use strict;
use warnings;
use utf8;
use Exporter qw(import);
use IO::Socket::INET;
use IO::Socket::SSL;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep);
use DGTest;

our @EXPORT = qw($POLICY @OK $RECORD json_of check_record tls_connect
                 read_until drip_server h2_server stop_server);

# test names and failure output may hold Chinese text
binmode(Test::More->builder->$_, ':utf8')
    for qw(output failure_output todo_output);

# population.person for the assistance certificate, realestate.property
# for housing, ... (test-nginx/data/policy-glue.yaml)
our $POLICY = DGTest::slurp("$DGTest::TOP/test-nginx/data/policy-glue.yaml");

# the purpose and approval the assistance certificate's grant asks for
our @OK = ('Data-Purpose: social-assistance',
           'Data-Approval: GXSJ-2024-0137');

# a population.person record as bytes on the wire: an escape and UTF-8 in
# it, so that splitting it anywhere cuts keys, values, escapes and
# multi-byte sequences
our $RECORD = '{"id":1,"id_card":"450103199003071242","name":"韦秀兰",'
    . '"ethnicity":"壮族","phone":"13877112345",'
    . '"note":"untouched \u00e9 text","address":"广西南宁市青秀区民族大道100号"}';
utf8::encode($RECORD);

# the response's JSON document, or {} when it is not one
sub json_of {
    my ($r) = @_;
    return (eval { $r->json }) || {};
}

# $RECORD as the assistance certificate sees it
sub check_record {
    my ($name, $j) = @_;
    is($j->{id_card}, '450103********1242', "$name: id_card masked");
    is($j->{name}, '韦秀兰', "$name: name revealed by the grant");
    ok(!exists $j->{ethnicity}, "$name: dropped key absent");
    is($j->{phone}, '138****2345', "$name: phone masked");
    is($j->{address}, '广西南宁市青****', "$name: address masked");
}

# a raw TLS connection to $port with the assistance certificate
sub tls_connect {
    my ($port) = @_;
    my $s = IO::Socket::SSL->new(
        PeerAddr => '127.0.0.1', PeerPort => $port,
        SSL_verify_mode => SSL_VERIFY_NONE,
        SSL_cert_file => "$DGTest::CERTS/assistance.crt",
        SSL_key_file => "$DGTest::CERTS/assistance.key")
        or die "connect: $SSL_ERROR";
    return $s;
}

# what $s sends until it closes, $done->(bytes so far) is true or $secs
# pass (scaled for a slow nginx: DGTest::secs); $pause seconds between
# reads (a slow reader)
sub read_until {
    my ($s, $secs, $done, $pause) = @_;
    my $raw = '';
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm DGTest::secs($secs);
        while (1) {
            my $n = sysread($s, my $buf, 65536);
            last unless $n;
            $raw .= $buf;
            last if $done && $done->($raw);
            sleep $pause if $pause;
        }
        alarm 0;
    };
    alarm 0;
    return $raw;
}

# a tiny origin that answers every request with the given pieces, one
# write per piece, $delay seconds apart (chunked unless $o{length});
# returns its port and process id (for stop_server)
sub drip_server {
    my (%o) = @_;
    my $port = DGTest::free_port();
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                    LocalPort => $port, Listen => 16,
                                    ReuseAddr => 1) or die "listen: $!";
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        $SIG{PIPE} = 'IGNORE';
        while (my $c = $srv->accept) {
            my $req = '';
            while ($req !~ /\r\n\r\n/) {
                my $n = sysread($c, my $buf, 4096);
                last unless $n;
                $req .= $buf;
            }
            my @p = @{ $o{pieces} };
            my $h = "HTTP/1.1 200 OK\r\nContent-Type: "
                . ($o{type} || 'application/json') . "\r\n"
                . ($o{headers} || '');
            if ($o{length}) {
                my $len = 0;
                $len += length for @p;
                $h .= "Content-Length: $len\r\nConnection: close\r\n\r\n";
                syswrite($c, $h);
                for (@p) { syswrite($c, $_); sleep $o{delay} if $o{delay} }
            } else {
                $h .= "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
                syswrite($c, $h);
                for (@p) {
                    next unless length;
                    syswrite($c, sprintf("%x\r\n%s\r\n", length, $_));
                    sleep $o{delay} if $o{delay};
                }
                syswrite($c, "0\r\n\r\n") unless $o{no_end};
            }
            close $c;
        }
        POSIX::_exit(0);
    }
    close $srv;
    return ($port, $pid);
}

# a second gateway server on $port speaking HTTP/2, with mutual TLS as
# the harness's own, holding the given locations (for http_config)
sub h2_server {
    my ($port, $locations) = @_;
    return <<"END";
    server {
        listen 127.0.0.1:$port ssl http2;
        ssl_certificate \$TEST_NGINX_CERTS/server.crt;
        ssl_certificate_key \$TEST_NGINX_CERTS/server.key;
        ssl_client_certificate \$TEST_NGINX_CERTS/ca.crt;
        ssl_verify_client on;
$locations    }
END
}

sub stop_server {
    my ($pid) = @_;
    kill 'KILL', $pid;
    waitpid $pid, 0;
}

1;
