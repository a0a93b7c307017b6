package DGRedis;

# Helpers shared by the Redis tests (040-043): a small policy, gateway
# instances wired to one redis-server, the CLI, and polling with a deadline.

use strict;
use warnings;

use Exporter qw(import);
use Test::More;
use Time::HiRes qw(sleep time);
use IO::Socket::INET;
use POSIX qw(WNOHANG);

use DGTest qw(:DEFAULT $CLI $TOP);

our @EXPORT = qw(policy gateway cli get poll_until code_of status_of slurp_new
                 count_matches fake_redis shared_secret
                 redis_on);

# consumers: assistance (granted, rate-limited by the test), hrss (no
# grant: run-time grants), market (unconditional dataset)
sub policy {
    my (%o) = @_;
    my $limits = $o{limits} // '';
    return <<"Y";
levels: {1: public, 2: internal, 3: sensitive, 4: core}
classes:
  person.id_number: {level: 4, mask: id_card}
purposes:
  social-assistance: {name: assistance}
  employment-service: {name: employment}
consumers:
  - id: civil-affairs.assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
  - id: hrss.portal
    cert: {san: "DNS:hrss.gx.gov.cn"}
    clearance: 2
  - id: market.supervision
    cert: {subject: "CN=market-supervision,O=Market Supervision,C=CN"}
    clearance: 2
datasets:
  - id: population.person
    share: conditional
    level: 3
    fields: {id_card: person.id_number}
  - id: enterprise.registry
    share: unconditional
    level: 1
grants:
  - consumer: civil-affairs.assistance
    dataset: population.person
    purposes: [social-assistance]
$limits
Y
}

# a gateway; redis => port (or undef), redis_opts => "timeout=... stale=..."
sub gateway {
    my (%o) = @_;
    my $http = $o{http_config} // '';
    # a slow nginx (valgrind, DG_TEST_SLOW: DGTest::secs) gets more than
    # the default timeouts (200 ms, 500 ms) where a test sets none: a
    # starved worker's first calls run for seconds
    if ($DGTest::SLOW != 1 && $o{redis}) {
        my $opts = $o{redis_opts} // '';
        $opts .= sprintf(' timeout=%dms', DGTest::secs(500))
            unless $opts =~ /\btimeout=/;
        $opts .= sprintf(' connect_timeout=%dms', DGTest::secs(500))
            unless $opts =~ /\bconnect_timeout=/;
        $o{redis_opts} = $opts;
    }
    if ($o{redis}) {
        $http .= "\n    datagate_redis 127.0.0.1:$o{redis}"
               . ($o{redis_opts} ? " $o{redis_opts}" : '') . ";\n";
    }
    $http .= "    datagate_secret $o{secret};\n" if $o{secret};
    my $n = DGTest::Nginx->new(
        policy      => $o{policy} // policy(limits => $o{limits}),
        workers     => $o{workers} // 1,
        http_config => $http,
        config      => <<'C');
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location /enterprise/ {
            datagate_dataset enterprise.registry;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location = /status {
            datagate off;
            datagate_status;
        }
C
    $n->start;
    # under valgrind a worker's first request runs its code for the first
    # time, slowly: the TLS handshake and HTTP parsing once, here, so that
    # a test's first call is not also the one that waits on Redis longest
    $n->request(GET => '/status', cert => 'market') if $DGTest::VALGRIND;
    return $n;
}

# one key file for a whole test (every node and the CLI use it)
my $secret;
sub shared_secret {
    return $secret if $secret;
    $secret = DGTest::base_dir() . '/shared.secret';
    open my $r, '<', '/dev/urandom' or die;
    read $r, my $key, 48;
    DGTest::spew($secret, $key, 0600);
    return $secret;
}

sub cli {
    my ($redis_port, @args) = @_;
    return run_cmd($CLI, @args, '--redis', "127.0.0.1:$redis_port");
}

my %who = (
    assistance => ['/person/1', 'social-assistance'],
    hrss       => ['/person/1', 'social-assistance'],
    market     => ['/enterprise/1', 'social-assistance'],
);

# one call as NAME (assistance, hrss, market); returns the response and
# how long it took
sub get {
    my ($n, $name, %o) = @_;
    my ($uri, $purpose) = @{ $who{$name} };
    my $t = time;
    my $r = $n->request(GET => $o{uri} // $uri, cert => $name,
                        headers => ["Data-Purpose: $purpose"],
                        timeout => $o{timeout} // 10);
    return wantarray ? ($r, time - $t) : $r;
}

# the statistics endpoint's JSON (as the market consumer)
sub status_of {
    my ($n) = @_;
    my $r = $n->request(GET => '/status', cert => 'market');
    return eval { $r->json } // {};
}

sub code_of {
    my ($r) = @_;
    my $j = eval { $r->json };
    return ref $j eq 'HASH' && $j->{error} ? $j->{error}{code} : '';
}

# call $f every 20 ms until it returns true or $secs pass (scaled for a
# slow nginx: DGTest::secs); returns the seconds it took, or undef
sub poll_until {
    my ($secs, $f) = @_;
    my $t0 = time;
    $secs = DGTest::secs($secs);
    while (time - $t0 < $secs) {
        return time - $t0 if $f->();
        sleep 0.02;
    }
    return undef;
}

# the error log from offset on
sub slurp_new {
    my ($n, $off) = @_;
    return substr($n->error_log, $off // 0);
}

sub count_matches {
    my ($s, $re) = @_;
    my $c = () = $s =~ /$re/g;
    return $c;
}

# a redis-server on a given port (to restart one where the nodes expect
# it); stops like DGTest's
# (dir => D, aof => 1: an append-only file in D, kept across restarts)
sub redis_on {
    my ($port, %o) = @_;
    my $dir = $o{dir} // DGTest::base_dir() . "/redis-$port-" . int(rand(1e6));
    mkdir $dir;
    my @aof = $o{aof} ? ('--appendonly', 'yes', '--appendfsync', 'always')
                      : ('--appendonly', 'no');
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$dir/redis.log";
        open STDERR, '>&', \*STDOUT;
        exec 'redis-server', '--port', $port, '--bind', '127.0.0.1',
            '--save', '', @aof, '--dir', $dir, '--daemonize', 'no';
        exit 127;
    }
    my $r = bless { pid => $pid, port => $port, dir => $dir },
                  'DGTest::Redis';
    for (1 .. 250) {
        my $pong = eval { $r->cmd('PING') };
        return $r if defined $pong && $pong eq 'PONG';
        delete $r->{sock};
        sleep 0.02;
    }
    die "redis-server on $port did not start\n";
}

# a TCP server that answers every connection with $reply (garbage) and
# keeps it open; returns (port, pid)
sub fake_redis {
    my ($reply) = @_;
    my $srv = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1',
                                    LocalPort => 0, ReuseAddr => 1,
                                    Proto => 'tcp')
        or die "fake redis: $!";
    my $port = $srv->sockport;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my @keep;
        local $SIG{TERM} = sub { POSIX::_exit(0) };
        while (my $c = $srv->accept) {
            $c->autoflush(1);
            sysread($c, my $buf, 4096);
            syswrite($c, $reply);
            push @keep, $c;
        }
        POSIX::_exit(0);
    }
    close $srv;
    return ($port, $pid);
}

1;
