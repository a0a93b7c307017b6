# Every error answer on an enforced location is JSON (docs/errors.md): errors
# nginx answers itself (provider unreachable or timing out, a body too
# large, proxy_intercept_errors) become {"error":{"code":...}} with
# nginx's status; the provider's own error answers pass (masked when
# JSON); "datagate off" locations keep nginx's pages.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time);
use DGTest qw(:DEFAULT);
use DGRedis;

my $closed = DGTest::free_port();

# accepts connections (the kernel's backlog) and never answers
my $silent = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                   LocalPort => 0, Proto => 'tcp',
                                   ReuseAddr => 1)
    or die "listen: $!";
my $silent_port = $silent->sockport;

my $n = DGTest::Nginx->new(
    policy      => policy(),
    workers     => 1,
    http_config => <<'H',
    datagate_audit_log $TEST_NGINX_TESTDIR/audit.log;
    log_format dgr '$datagate_decision $datagate_reason $status';
H
    upstream    => <<'U',
        location = /person/err {
            default_type application/json;
            return 404 '{"error":"no such person","id_card":"450103199003071242"}';
        }
U
    config      => <<"C");
        access_log \$TEST_NGINX_TESTDIR/dgr.log dgr;

        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:\$TEST_NGINX_UPSTREAM_PORT;
        }
        location /down/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$closed;
        }
        location /slow/ {
            datagate_dataset enterprise.registry;
            proxy_read_timeout 300ms;
            proxy_pass http://127.0.0.1:$silent_port;
        }
        location /small/ {
            datagate_dataset population.person;
            client_max_body_size 10;
            proxy_pass http://127.0.0.1:\$TEST_NGINX_UPSTREAM_PORT;
        }
        location /intercept/ {
            datagate_dataset population.person;
            proxy_intercept_errors on;
            error_page 404 = \@missing;
            proxy_pass http://127.0.0.1:\$TEST_NGINX_UPSTREAM_PORT/person/;
        }
        location \@missing {
            return 404;
        }
        location /plain/ {
            datagate off;
            proxy_pass http://127.0.0.1:$closed;
        }
C
$n->start;

my @purpose = ('Data-Purpose: social-assistance');

sub err_ok {
    my ($r, $status, $code, $what) = @_;
    is($r->status, $status, "$what: $status");
    like($r->header('Content-Type') // '', qr{^application/json},
         "$what: application/json");
    my $j = eval { $r->json };
    ok(ref $j eq 'HASH' && ref $j->{error} eq 'HASH', "$what: JSON error")
        or diag($r->body);
    is($j->{error}{code}, $code, "$what: code $code");
    like($j->{error}{request_id} // '', qr/^[0-9a-zA-Z._-]+$/,
         "$what: request_id");
    ok(length($j->{error}{message} // ''), "$what: a message");
    return $j;
}

sub last_line {
    my ($file) = @_;
    my @l = grep { !/^- - / && length } split /\n/,
            DGTest::slurp($n->dir . "/$file");
    return $l[-1] // '';
}

# provider unreachable: 502 upstream_unavailable

{
    my $r = $n->request(GET => '/down/1', cert => 'assistance',
                        headers => [@purpose, 'Datagate-Request-Id: trace-502']);
    my $j = err_ok($r, 502, 'upstream_unavailable', 'connection refused');
    is($j->{error}{request_id}, 'trace-502', 'the caller\'s request id');
    unlike($r->body, qr/<html/i, 'no HTML');
    is($r->header('Content-Length'), length $r->body, 'Content-Length');
    is(last_line('dgr.log'), 'allowed upstream_unavailable 502',
       '$datagate_decision / $datagate_reason');
    # written at the latest flush= (100ms) after the log phase
    my $a = {};
    poll_until(3, sub {
        $a = DGTest::json_decode((split /\n/,
                                  DGTest::slurp($n->dir . '/audit.log'))[-1]
                                 // '{}');
        ($a->{request_id} // '') eq 'trace-502' });
    is($a->{request_id}, 'trace-502', 'audit: request id');
    is($a->{status}, 502, 'audit: status 502');
    is($a->{reason}, 'upstream_unavailable', 'audit: reason');
    is($a->{decision}, 'allowed', 'audit: the policy allowed it');

    # the same on a keep-alive connection's next request works
    my $r2 = $n->request(GET => '/person/1', cert => 'assistance',
                         headers => \@purpose);
    is($r2->status, 200, 'the next request is served');
}

# HEAD: the same status and headers, no body

{
    my $r = $n->request(HEAD => '/down/1', cert => 'assistance',
                        headers => \@purpose);
    is($r->status, 502, 'HEAD: 502');
    like($r->header('Content-Type') // '', qr{^application/json},
         'HEAD: application/json');
    is($r->body, '', 'HEAD: no body');
}

# provider times out: 504, still upstream_unavailable

{
    my $t = time;
    my $r = $n->request(GET => '/slow/1', cert => 'market',
                        headers => \@purpose);
    err_ok($r, 504, 'upstream_unavailable', 'read timeout');
    ok(time - $t < DGTest::secs(5), 'within the timeout');
}

# refused by nginx before the access phase: still JSON, still audited

{
    my $r = $n->request(POST => '/small/1', cert => 'assistance',
                        headers => \@purpose, body => 'x' x 100);
    err_ok($r, 413, 'request_rejected', 'body too large');
    # logged when nginx lets go of the connection (lingering close)
    my $a = {};
    poll_until(3, sub {
        $a = DGTest::json_decode((split /\n/,
                                  DGTest::slurp($n->dir . '/audit.log'))[-1]);
        ($a->{status} // 0) == 413 });
    is($a->{status}, 413, 'audit: 413');
    is($a->{reason}, 'request_rejected', 'audit: request_rejected');
}

# proxy_intercept_errors + error_page: nginx replaces the provider's error

{
    my $r = $n->request(GET => '/intercept/999', cert => 'assistance',
                        headers => \@purpose);
    err_ok($r, 404, 'request_rejected', 'intercepted 404');
}

# the provider's own JSON error passes, masked

{
    my $r = $n->request(GET => '/person/err', cert => 'assistance',
                        headers => \@purpose);
    is($r->status, 404, 'provider 404: passes');
    my $j = eval { $r->json } // {};
    is($j->{error}, 'no such person', 'provider\'s body');
    is($j->{id_card}, '450103********1242', 'masked');
}

# our own denials are unchanged

{
    my $r = $n->request(GET => '/down/1', cert => 'hrss',
                        headers => \@purpose);
    err_ok($r, 403, 'purpose_not_granted', 'denied before the proxy');
}

# datagate off: nginx's page

{
    my $r = $n->request(GET => '/plain/1', cert => 'assistance');
    is($r->status, 502, 'datagate off: 502');
    like($r->header('Content-Type') // '', qr{^text/html},
         'datagate off: nginx\'s HTML page');
}

$n->stop;
my $log = $n->error_log;
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit');
like($log, qr/datagate: nginx answered 502: upstream_unavailable/,
     'logged at info');

close $silent;

done_testing;
