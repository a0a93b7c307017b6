package DGTest;

# Test harness for datagate: real nginx, real mutual TLS, real redis-server
# (see test-nginx/README.md).
#
# A Perl API, which most test files use:
#
#   use FindBin; use lib "$FindBin::Bin/lib"; use Test::More; use DGTest;
#   my $n = start_nginx(policy => $yaml, config => <<'END');
#       location /person/ { datagate_dataset population.person;
#           proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT; }
#   END
#   my $r = $n->request('GET', '/person/1', cert => 'assistance',
#                       headers => ['Data-Purpose: social-assistance']);
#   is($r->status, 200, '...');
#   done_testing();
#
# (also reload, nginx_t, start_redis, run_cmd, free_port, secs), and
# data-driven blocks in the Test::Nginx style for one request and its
# answer:
#
#   run_tests();
#   __DATA__
#   === TEST 1: title
#   --- config
#   location /person/ { proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT; }
#   --- request
#   GET /person/1
#   --- cert: assistance
#   --- error_code: 200

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Socket::SSL;
use JSON::PP;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use DGEvil;

our @EXPORT = qw(run_tests blocks start_nginx nginx_t request start_redis
                 free_port cert_info json_match json_decode run_cmd);
our @EXPORT_OK = qw($TOP $NGINX $MODULE $CERTS $DATA $CLI $STATIC);

our $TOP    = abs_path(dirname(abs_path(__FILE__)) . '/../..');
our $NGINX  = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
# nginx reads a relative load_module path from its prefix, a temp dir
our $MODULE = $ENV{DG_MODULE} && -e $ENV{DG_MODULE}
              ? abs_path($ENV{DG_MODULE})
              : $ENV{DG_MODULE}
                || "$TOP/build/modules/ngx_http_datagate_module.so";
our $CERTS  = $ENV{DG_CERTS} || "$TOP/build/certs";
our $DATA   = $ENV{DG_DEMO_DATA} || "$TOP/scripts/demo-data";
our $CLI    = $ENV{DG_CLI} || "$TOP/build/bin/datagate";
# DG_MODULE_STATIC=1: the nginx binary has the module built in
# (--add-module): no load_module line, no .so
our $STATIC = $ENV{DG_MODULE_STATIC};
our $KEEP   = $ENV{DG_TEST_KEEP};
# DG_TEST_VALGRIND=1: every nginx (master and workers) runs under valgrind;
# memory errors fail the block
our $VALGRIND = $ENV{DG_TEST_VALGRIND};
# every time bound and wait of the tests is multiplied by $SLOW (secs()):
# nginx under valgrind is some ten times slower; DG_TEST_SLOW=N sets it,
# e.g. 3 on a machine other jobs keep busy
our $SLOW = $ENV{DG_TEST_SLOW} || ($VALGRIND ? 10 : 1);

my $base;               # per-process temp dir, world-readable
my $instances = 0;
my %live;               # running nginx instances and redis servers
my %ports_used;
my $current;            # the instance request() talks to by default
my $file_redis;         # redis shared by the blocks of one file
our $INSTANCE;          # the block's instance, for --- init code


# --- environment ----------------------------------------------------------

# $s seconds, scaled for a slow nginx (valgrind, DG_TEST_SLOW)
sub secs {
    my ($s) = @_;
    return $s * $SLOW;
}

sub base_dir {
    return $base if $base;
    # world-readable prefix outside the checkout: CI clones under /root,
    # whose parents an unprivileged nginx worker may not read
    $base = tempdir('dgtest-XXXXXX', TMPDIR => 1, CLEANUP => !$KEEP);
    chmod 0755, $base;
    diag("DG_TEST_KEEP: test files kept in $base") if $KEEP;
    return $base;
}

sub ensure_certs {
    return if -f "$CERTS/.complete";
    my $rc = system('bash', "$TOP/certs/make-dev-certs.sh", $CERTS);
    die "DGTest: certs/make-dev-certs.sh $CERTS failed\n" if $rc != 0;
}

sub module_wanted {
    my (%o) = @_;
    return 0 if $ENV{DG_NO_MODULE} || $o{no_module};
    return 1;
}

# the line that loads the module: empty when nginx has it built in
sub load_line {
    return $STATIC ? '' : "load_module $MODULE;";
}

my $nginx_version;

# the version of the nginx the tests run, as nginx's nginx_version
# (1.29.8: 1029008), for what differs between versions
sub nginx_version {
    return $nginx_version if defined $nginx_version;
    my (undef, $out) = run_cmd($NGINX, '-v');
    my ($major, $minor, $patch) = $out =~ m{nginx/(\d+)\.(\d+)\.(\d+)}
        or die "DGTest: no version from $NGINX -v: $out\n";
    return $nginx_version = $major * 1000000 + $minor * 1000 + $patch;
}

sub free_port {
    for (1 .. 50) {
        my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                      LocalPort => 0, Proto => 'tcp',
                                      ReuseAddr => 1)
            or die "DGTest: cannot bind a port: $!\n";
        my $p = $s->sockport;
        close $s;
        next if $ports_used{$p}++;
        return $p;
    }
    die "DGTest: no free port\n";
}

my %cert_info;

# cert_info('assistance') -> {serial, fingerprint, fingerprint_hex,
#                             subject, san}
sub cert_info {
    my ($name) = @_;
    ensure_certs();
    unless (%cert_info) {
        open my $fh, '<', "$CERTS/certs.txt" or die "$CERTS/certs.txt: $!";
        while (<$fh>) {
            next if /^#/;
            chomp;
            my ($n, $serial, $fp, $subj, $san) = split /\t/;
            (my $hex = lc $fp) =~ s/://g;
            $cert_info{$n} = { serial => $serial, fingerprint => $fp,
                               fingerprint_hex => $hex, subject => $subj,
                               san => $san // '' };
        }
    }
    return $cert_info{$name};
}

sub proc_alive {
    my ($pid) = @_;
    return 0 unless $pid && kill 0, $pid;
    # a zombie (e.g. no init reaping daemonized masters) is dead
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $st = <$fh> // '';
        return 0 if $st =~ /^\d+ \(.*\) Z/;
    }
    return 1;
}

sub wait_port {
    my ($port, $secs) = @_;
    my $until = time + ($secs || secs(5));
    while (time < $until) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp',
                                      Timeout => 1);
        if ($s) { close $s; return 1 }
        sleep 0.02;
    }
    return 0;
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    local $/;
    my $s = <$fh>;
    return $s // '';
}

sub spew {
    my ($f, $s, $mode) = @_;
    make_path(dirname($f));
    open my $fh, '>', $f or die "DGTest: $f: $!\n";
    utf8::encode($s) if utf8::is_utf8($s);      # text from `use utf8` files
    print $fh $s;
    close $fh;
    chmod $mode // 0644, $f;
}

sub tail_lines {
    my ($s, $n) = @_;
    my @l = split /\n/, $s;
    @l = @l[-$n .. -1] if @l > $n;
    return join("\n", @l);
}

# bytes (a response body, a .t file) or characters (Perl strings)
sub json_decode {
    my ($s) = @_;
    my $j = JSON::PP->new->allow_nonref;
    $j->utf8 unless utf8::is_utf8($s);
    return $j->decode($s);
}


# --- nginx instances --------------------------------------------------------

package DGTest::Nginx;

use strict;
use warnings;
use File::Path qw(make_path);
use Time::HiRes qw(sleep time);

sub new {
    my ($class, %o) = @_;
    DGTest::ensure_certs();
    my $n = ++$instances;
    my $dir = DGTest::base_dir() . "/t$n";
    make_path("$dir/conf", "$dir/logs");
    chmod 0755, $dir;
    system('cp', '-r', $DATA, "$dir/html") == 0
        or die "DGTest: cannot copy $DATA\n";
    unlink "$dir/html/generate.pl";
    system('chmod', '-R', 'a+rX', "$dir/html");
    open my $r, '<', '/dev/urandom' or die;
    read $r, my $key, 32;
    DGTest::spew("$dir/datagate.secret", $key, 0600);
    my $self = bless {
        %o,
        dir           => $dir,
        port          => $o{port} || DGTest::free_port(),
        upstream_port => $o{upstream_port} || DGTest::free_port(),
    }, $class;
    $self->write_policy($o{policy}) if defined $o{policy};
    return $self;
}

sub dir           { $_[0]{dir} }
sub port          { $_[0]{port} }
sub upstream_port { $_[0]{upstream_port} }
# what nginx logged while loading the configuration at start (before it
# opens error.log, Debian's nginx logs to stderr), then error.log
sub error_log {
    my ($self) = @_;
    return ($self->{startup_log}
            // DGTest::slurp("$self->{dir}/nginx.out"))   # valgrind mode
        . DGTest::slurp("$self->{dir}/error.log");
}
sub access_log    { DGTest::slurp("$_[0]{dir}/access.log") }
sub conf_file     { "$_[0]{dir}/conf/nginx.conf" }
sub policy_file   { "$_[0]{dir}/policy.yaml" }

sub vars {
    my ($self) = @_;
    my %v = (
        SERVER_PORT   => $self->{port},
        UPSTREAM_PORT => $self->{upstream_port},
        CERTS         => $CERTS,
        MODULE        => $MODULE,
        HTML_DIR      => "$self->{dir}/html",
        TESTDIR       => $self->{dir},
        POLICY        => $self->policy_file,
        SECRET        => "$self->{dir}/datagate.secret",
        TOP           => $TOP,
        CLI           => $CLI,
    );
    $v{REDIS_PORT} = $self->{redis_port} if $self->{redis_port};
    $v{EVIL_PORT} = $self->evil_port;
    return \%v;
}

# $TEST_NGINX_NAME -> value; also $TEST_NGINX_CERT_SERIAL_assistance,
# _CERT_FP_ (colon form), _CERT_FPHEX_, _CERT_SUBJECT_
sub expand {
    my ($self, $s) = @_;
    return $s unless defined $s && !ref $s;
    my $v = $self->vars;
    $s =~ s{\$TEST_NGINX_CERT_(SERIAL|FP|FPHEX|SUBJECT)_(\w+)}{
        my $ci = DGTest::cert_info(lc $2)
            or die "DGTest: no certificate '$2' in $CERTS/certs.txt\n";
        $ci->{ { SERIAL => 'serial', FP => 'fingerprint',
                 FPHEX => 'fingerprint_hex', SUBJECT => 'subject' }->{$1} }
    }ge;
    $s =~ s{\$TEST_NGINX_(\w+)}{
        exists $v->{$1} ? $v->{$1}
        : exists $ENV{"TEST_NGINX_$1"} ? $ENV{"TEST_NGINX_$1"}
        : "\$TEST_NGINX_$1"
    }ge;
    return $s;
}

# the adversarial provider (DGEvil.pm): its port is chosen on first use, the
# origin itself starts with the instance (start) or on demand (start_evil)
sub evil_port {
    my ($self) = @_;
    return $self->{evil_port} //= DGTest::free_port();
}

# scenarios: { NAME => perl code }, written to $dir/evil/NAME.pl
sub evil_scenarios {
    my ($self, %sc) = @_;
    DGTest::spew("$self->{dir}/evil/$_.pl", $self->expand($sc{$_}))
        for keys %sc;
}

sub start_evil {
    my ($self) = @_;
    return $self->{evil} ||= DGTest::Evil->start($self->{dir},
                                                 $self->evil_port);
}

sub evil { $_[0]{evil} }

sub write_policy {
    my ($self, $yaml) = @_;
    $self->{policy} = $yaml;
    DGTest::spew($self->policy_file, $self->expand($yaml));
}

sub build_conf {
    my ($self) = @_;
    return $self->expand($self->{conf}) if defined $self->{conf};

    my $d = $self->{dir};
    my $module = DGTest::module_wanted(%$self);
    if ($module && !$STATIC && !-f $MODULE) {
        die "DGTest: $MODULE not built (run `make module`, "
            . "or set DG_NO_MODULE=1 for plain nginx)\n";
    }
    my $http_config = $self->{http_config} // '';
    my $policy_line = '';
    if (defined $self->{policy} && $module
        && $http_config !~ /\bdatagate_policy\b/)
    {
        $policy_line = "datagate_policy " . $self->policy_file . ";";
    }
    my $user = $> == 0 ? 'user root;' : '';
    my $load = $module ? DGTest::load_line() : '';
    my $workers = $self->{workers} || 1;
    my $level = $self->{log_level} || 'info';
    my $daemon = $VALGRIND ? 'off' : 'on';     # under valgrind: our child
    my $verify = $self->{verify_client} || 'on';
    my $main = $self->{main_config} // '';
    my $upstream = $self->{upstream} // '';
    my $config = $self->{config} // <<"EOF";
        location / {
            proxy_pass http://127.0.0.1:$self->{upstream_port};
        }
EOF

    my $conf = <<"EOF";
# generated by DGTest for $d
$load
$user
worker_processes $workers;
daemon $daemon;
master_process on;
pid $d/nginx.pid;
lock_file $d/nginx.lock;
error_log $d/error.log $level;
$main

events {
    worker_connections 1024;
}

http {
    access_log $d/access.log;
    client_body_temp_path $d/client_body_temp;
    proxy_temp_path $d/proxy_temp;
    fastcgi_temp_path $d/fastcgi_temp;
    uwsgi_temp_path $d/uwsgi_temp;
    scgi_temp_path $d/scgi_temp;

    types {
        application/json  json;
        text/plain        txt;
        text/html         html;
    }
    default_type application/octet-stream;

    $policy_line
$http_config

    # the origin (provider): demo data at /, "/person/1" -> person/1.json,
    # "/person/" -> person/index.json (a list)
    server {
        listen 127.0.0.1:$self->{upstream_port};
        server_name origin;
        root $d/html;
        index index.json;
        default_type application/json;

        location / {
            try_files \$uri \$uri.json \$uri/ =404;
        }

        # what the provider received from the gateway
        location = /echo {
            return 200 '{"method":"\$request_method","uri":"\$request_uri","consumer":"\$http_datagate_consumer","purpose":"\$http_datagate_purpose","request_id":"\$http_datagate_request_id","approval":"\$http_data_approval","accept_encoding":"\$http_accept_encoding","x_test":"\$http_x_test"}\n';
        }

        location = /text {
            default_type text/plain;
            return 200 "plain text 450103199003071242\n";
        }

        location = /malformed {
            return 200 '{"id_card": "450103199003071242", "name": "';
        }

        # the demo data gzip-compressed: /gz/person/1
        location /gz/ {
            gzip on;
            gzip_types application/json;
            gzip_min_length 1;
            gzip_http_version 1.0;
            gzip_proxied any;
            rewrite ^/gz(/.*)\$ \$1 break;
            try_files \$uri \$uri.json \$uri/index.json =404;
        }

$upstream
    }

    # the gateway: mutual TLS with the dev CA
    server {
        listen 127.0.0.1:$self->{port} ssl;
        server_name localhost;

        ssl_certificate         $CERTS/server.crt;
        ssl_certificate_key     $CERTS/server.key;
        ssl_client_certificate  $CERTS/ca.crt;
        ssl_verify_client       $verify;
        ssl_crl                 $CERTS/crl.pem;

$config
    }
}
EOF
    return $self->expand($conf);
}

sub run_nginx {
    my ($self, @args) = @_;
    return DGTest::run_cmd($NGINX, '-p', "$self->{dir}/",
                           '-c', $self->conf_file, @args);
}


sub write_conf {
    my ($self) = @_;
    DGTest::spew($self->conf_file, $self->build_conf);
}

# nginx -t: (exit code, output)
sub test_conf {
    my ($self) = @_;
    $self->write_conf;
    return $self->run_nginx('-t');
}

sub start {
    my ($self) = @_;
    $self->write_conf;
    $self->start_evil if $self->{evil_wanted} || -d "$self->{dir}/evil";
    unlink "$self->{dir}/nginx.pid";
    $self->{log_off} = length $self->error_log;
    return $self->start_valgrind if $VALGRIND;
    my ($rc, $out) = $self->run_nginx();
    $self->{startup_log} = $out;
    if ($rc != 0) {
        die "DGTest: nginx failed to start (exit $rc):\n$out\n"
            . "error.log tail:\n"
            . DGTest::tail_lines($self->error_log, 20) . "\n";
    }
    my $until = time + DGTest::secs(5);
    while (!-s "$self->{dir}/nginx.pid" && time < $until) {
        sleep 0.01;
    }
    my $pid = DGTest::slurp("$self->{dir}/nginx.pid");
    chomp $pid;
    $self->{pid} = $pid;
    $live{"nginx$self"} = $self;
    return $self->wait_ready(DGTest::secs(5));
}

sub wait_ready {
    my ($self, $secs) = @_;
    for my $p ($self->{port}, $self->{upstream_port}) {
        next if DGTest::wait_port($p, $secs);
        my $log = $self->error_log;
        $self->stop;
        die "DGTest: nginx does not accept connections on port $p\n"
            . "error.log tail:\n" . DGTest::tail_lines($log, 20) . "\n";
    }
    # the master listens before its workers run: wait for them too
    my $want = !defined $self->{conf} ? $self->{workers} || 1
             : $self->{conf} =~ /master_process\s+off/ ? 0 : 1;
    my $until = time + $secs;
    while ($self->children < $want && time < $until) {
        sleep 0.01;
    }
    $self->wait_redis($self->{log_off} // 0, $until);
    $current = $self;
    return $self;
}

# with datagate_redis: wait (until the time $until) for both Redis
# connections of every worker to be ready, or down for a reason other
# than a timeout (no Redis there, a refused password, garbage): a request
# sent before would fail closed, and on a loaded machine or under
# valgrind a first connect may time out and be retried.  Lines of the
# error log from offset $off on.
sub wait_redis {
    my ($self, $off, $until) = @_;
    my $conf = DGTest::slurp($self->conf_file);
    return 1 unless $conf =~ /^\s*datagate_redis\s/m;
    # "ready" is logged at info
    return 1 if $conf =~ /^error_log\s+\S+\s+(notice|warn|error|crit)/m;
    my $want = $conf =~ /^worker_processes\s+(\d+);/m ? $1 : 1;
    my $line = qr/\[\w+\] \s (\d+)\#\d+: \s datagate: \s redis \s \S+ \s
                  (command|subscriber) \s connection \s ([^\n]*)/x;
    while (1) {
        my (%settled, %kid);
        my $log = substr($self->error_log, $off);
        while ($log =~ /$line/g) {
            my ($pid, $conn, $what) = ($1, $2, $3);
            $settled{$pid}{$conn} = $what !~ /^down: \S+ timed out/;
        }
        $kid{$_} = 1 for $self->children;
        my $done = grep {
            my $c = $settled{$_};
            $kid{$_} && $c->{command} && $c->{subscriber}
        } keys %settled;
        return 1 if $done >= $want;
        return 0 if time >= $until;
        sleep 0.02;
    }
}

# nginx as our own child under valgrind (workers are forked, so valgrind
# follows them; one log per process)
sub start_valgrind {
    my ($self) = @_;
    my $d = $self->{dir};
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$d/nginx.out";
        open STDERR, '>&', \*STDOUT;
        { exec 'valgrind', '-q', "--log-file=$d/valgrind.%p.log",
            '--num-callers=30', '--leak-check=no',
            $NGINX, '-p', "$d/", '-c', $self->conf_file };
        POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $self->{child} = 1;
    $live{"nginx$self"} = $self;
    return $self->wait_ready(DGTest::secs(6));
}

# valgrind's complaints, or '' (only under DG_TEST_VALGRIND)
sub valgrind_errors {
    my ($self) = @_;
    return '' unless $VALGRIND;
    my $log = join '', map { DGTest::slurp($_) }
              glob "$self->{dir}/valgrind.*.log";
    my @err = grep { /^==\d+== (Invalid |Conditional jump|Use of uninit|Syscall param|Mismatched|Source and destination|Argument .* fishy|Process terminating)/ }
              split /\n/, $log;
    return @err ? $log : '';
}

sub children {
    my ($self) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = DGTest::slurp($stat);
        next unless $s =~ /^(\d+) \(.*\) (\S) (\d+)/;
        push @kids, $1 if $3 == $self->{pid} && $2 ne 'Z';
    }
    return @kids;
}

# reload with (optionally) new settings; 1 when the new configuration took
# over, 0 when nginx refused it (the old one keeps serving)
sub reload {
    my ($self, %o) = @_;
    @$self{keys %o} = values %o;
    $self->write_policy($o{policy}) if defined $o{policy};
    $self->write_conf;
    my $off = length $self->error_log;
    my %old = map { $_ => 1 } $self->children;
    kill 'HUP', $self->{pid} or die "DGTest: cannot signal nginx: $!\n";
    my $until = time + DGTest::secs(10);
    my $ok;
    while (time < $until) {
        my $log = substr($self->error_log, $off);
        if ($log =~ /\[emerg\]/) {
            $ok = 0;
            last;
        }
        # all old workers gone and the new ones started
        my @now = $self->children;
        if ($log =~ /start worker process/
            && @now && !grep { $old{$_} } @now)
        {
            $ok = 1;
            last;
        }
        sleep 0.02;
    }
    die "DGTest: nginx reload did not finish\n" unless defined $ok;
    $self->wait_redis($off, time + DGTest::secs(5)) if $ok;
    return $ok;
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    delete $live{"nginx$self"};
    # graceful first, so that shutdown problems reach the error log
    for my $sig ('QUIT', 'TERM', 'KILL') {
        if ($sig ne 'QUIT') {
            Test::More::diag("DGTest: nginx $pid did not stop, sending $sig");
        }
        kill $sig, $pid;
        my $until = time + DGTest::secs(5);
        while (DGTest::proc_alive($pid) && time < $until) {
            sleep 0.01;
        }
        if ($self->{child}) {
            waitpid $pid, POSIX::WNOHANG();
        }
        last unless DGTest::proc_alive($pid);
    }
    if ($self->{child}) {
        waitpid $pid, 0;
        delete $self->{child};
    }
    (delete $self->{evil})->stop if $self->{evil};
    $current = undef if $current && $current == $self;
}

sub request {
    my ($self, $method, $uri, %o) = @_;
    return DGTest::http_request($method, $uri, port => $self->{port}, %o);
}

sub DESTROY {
    my ($self) = @_;
    $self->stop if $self->{pid};
}


# --- redis ------------------------------------------------------------------

package DGTest::Redis;

use strict;
use warnings;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

sub start {
    my ($class) = @_;
    my $dir = DGTest::base_dir() . '/redis-' . (++$instances);
    mkdir $dir;
    my $port = DGTest::free_port();
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$dir/redis.log";
        open STDERR, '>&', \*STDOUT;
        { exec 'redis-server', '--port', $port, '--bind', '127.0.0.1',
            '--save', '', '--appendonly', 'no', '--dir', $dir,
            '--daemonize', 'no' };
        POSIX::_exit(127);
    }
    my $self = bless { pid => $pid, port => $port, dir => $dir }, $class;
    $live{"redis$self"} = $self;
    my $until = time + 5;
    while (time < $until) {
        my $r = eval { $self->cmd('PING') };
        return $self if defined $r && $r eq 'PONG';
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pid};
            last;
        }
        sleep 0.02;
    }
    $self->stop;
    die "DGTest: redis-server did not start:\n"
        . DGTest::slurp("$dir/redis.log") . "\n";
}

sub port { $_[0]{port} }

sub sock {
    my ($self) = @_;
    return $self->{sock} if $self->{sock} && $self->{sock}->connected;
    $self->{sock} = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                          PeerPort => $self->{port},
                                          Proto => 'tcp', Timeout => 2)
        or die "DGTest: redis connect: $!\n";
    return $self->{sock};
}

# one command, the reply decoded (errors die with the message)
sub cmd {
    my ($self, @args) = @_;
    my $s = $self->sock;
    my $req = '*' . @args . "\r\n";
    $req .= '$' . length($_) . "\r\n$_\r\n" for @args;
    print $s $req;
    return read_reply($s);
}

sub read_reply {
    my ($s) = @_;
    local $SIG{ALRM} = sub { die "DGTest: redis reply timeout\n" };
    alarm 5;
    my $line = <$s>;
    alarm 0;
    die "DGTest: redis closed the connection\n" unless defined $line;
    $line =~ s/\r\n$//;
    my ($t, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest if $t eq '+';
    return $rest + 0 if $t eq ':';
    die "DGTest: redis: $rest\n" if $t eq '-';
    if ($t eq '$') {
        return undef if $rest < 0;
        my $buf = '';
        while (length $buf < $rest + 2) {
            read($s, $buf, $rest + 2 - length $buf, length $buf) or last;
        }
        return substr($buf, 0, $rest);
    }
    if ($t eq '*') {
        return undef if $rest < 0;
        return [ map { read_reply($s) } 1 .. $rest ];
    }
    die "DGTest: bad redis reply '$line'\n";
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    delete $live{"redis$self"};
    close $self->{sock} if $self->{sock};
    kill 'TERM', $pid;
    my $until = time + 5;
    while (waitpid($pid, WNOHANG) == 0 && time < $until) {
        sleep 0.01;
    }
    kill 'KILL', $pid if DGTest::proc_alive($pid);
    waitpid $pid, 0;
}

sub DESTROY {
    my ($self) = @_;
    $self->stop if $self->{pid};
}


# --- HTTP client --------------------------------------------------------------

package DGTest::Response;

sub status  { $_[0]{status} }
sub body    { $_[0]{body} }
sub json    { DGTest::json_decode($_[0]{body}) }

# all values of a header, joined with ", "; undef when absent
sub header {
    my ($self, $name) = @_;
    my $v = $self->{headers}{lc $name} or return undef;
    return join(', ', @$v);
}


package DGTest;

# http_request(METHOD, URI, port => P, cert => NAME, headers => [...] | {...},
#              body => STR, timeout => S, ssl => 0|1, host => H,
#              sni => NAME ('' sends none; default localhost),
#              raw => STR (sent as is))
# -> DGTest::Response {status, headers => {lc => [values]}, body, raw,
#                      truncated, error}
sub http_request {
    my ($method, $uri, %o) = @_;
    ensure_certs();
    my $timeout = secs($o{timeout} || 10);
    my $ssl = exists $o{ssl} ? $o{ssl} : 1;
    my $res = bless { status => 0, headers => {}, body => '', raw => '' },
        'DGTest::Response';

    my %sslopt;
    if ($ssl) {
        %sslopt = (SSL_verify_mode => SSL_VERIFY_PEER,
                   SSL_ca_file => "$CERTS/ca.crt",
                   SSL_hostname => defined $o{sni} ? $o{sni} : 'localhost',
                   SSL_verifycn_name => 'localhost',
                   SSL_verifycn_scheme => 'http');
        if ($o{cert}) {
            my ($crt, $key) = ("$CERTS/$o{cert}.crt", "$CERTS/$o{cert}.key");
            die "DGTest: no client certificate $crt\n" unless -f $crt;
            @sslopt{qw(SSL_cert_file SSL_key_file)} = ($crt, $key);
        }
    }
    my $class = $ssl ? 'IO::Socket::SSL' : 'IO::Socket::INET';
    my $sock = $class->new(PeerAddr => '127.0.0.1', PeerPort => $o{port},
                           Proto => 'tcp', Timeout => $timeout, %sslopt);
    unless ($sock) {
        $res->{error} = "connect: "
            . ($ssl ? IO::Socket::SSL::errstr() : $!);
        return $res;
    }

    my $req = $o{raw};
    unless (defined $req) {
        my $body = $o{body};
        my @h = ("Host: " . ($o{host} || 'localhost'),
                 "Connection: close");
        my $hs = $o{headers} || [];
        if (ref $hs eq 'HASH') {
            push @h, map { "$_: $hs->{$_}" } sort keys %$hs;
        } else {
            push @h, grep { /\S/ } map { split /\n/ } @$hs;
        }
        if (defined $body
            && !grep { /^(content-length|transfer-encoding):/i } @h)
        {
            push @h, 'Content-Length: ' . length($body);
        }
        $req = "$method $uri HTTP/1.1\r\n" . join('', map { "$_\r\n" } @h)
            . "\r\n" . ($body // '');
    }

    my $raw = '';
    my $ok = eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        local $SIG{PIPE} = 'IGNORE';
        alarm $timeout;
        my $off = 0;
        while ($off < length $req) {
            my $n = syswrite($sock, $req, length($req) - $off, $off);
            die "write: $!\n" unless defined $n;
            $off += $n;
        }
        while (1) {
            my $n = sysread($sock, my $buf, 65536);
            last unless $n;     # EOF or error: a cut connection shows below
            $raw .= $buf;
        }
        alarm 0;
        1;
    };
    alarm 0;
    $res->{error} = $@ unless $ok;
    close $sock;
    $res->{raw} = $raw;
    parse_response($res, $raw, $method);
    return $res;
}

sub parse_response {
    my ($res, $raw, $method) = @_;
    my $i = index($raw, "\r\n\r\n");
    if ($i < 0) {
        $res->{truncated} = 1;
        $res->{error} //= 'no complete response header';
        return;
    }
    my @lines = split /\r\n/, substr($raw, 0, $i);
    my $rest = substr($raw, $i + 4);
    my $sl = shift @lines;
    ($res->{status}) = $sl =~ m{^HTTP/\d\.\d (\d{3})};
    $res->{status} //= 0;
    for (@lines) {
        my ($n, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        push @{ $res->{headers}{lc $n} }, $v;
    }
    my $te = $res->header('Transfer-Encoding') // '';
    my $cl = $res->header('Content-Length');
    if ($method eq 'HEAD' || $res->{status} == 204 || $res->{status} == 304) {
        $res->{body} = '';
    } elsif ($te =~ /chunked/i) {
        my $body = '';
        my $complete = 0;
        while ($rest =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $len = hex $1;
            if ($len == 0) { $complete = 1; last }
            last if length($rest) < $len + 2;
            $body .= substr($rest, 0, $len);
            $rest = substr($rest, $len + 2);
        }
        $res->{body} = $body;
        $res->{truncated} = 1 unless $complete;
    } elsif (defined $cl) {
        $res->{body} = substr($rest, 0, $cl);
        $res->{truncated} = 1 if length($rest) < $cl;
    } else {
        $res->{body} = $rest;
    }
}

# module-level API on the instance started last
sub start_nginx {
    my (%o) = @_;
    my $n = DGTest::Nginx->new(%o);
    return $n->start;
}

sub nginx_t {
    my (%o) = @_;
    my $n = DGTest::Nginx->new(%o);
    my ($rc, $out) = $n->test_conf;
    return wantarray ? ($rc == 0, $out) : $rc == 0;
}

sub request {
    my ($method, $uri, %o) = @_;
    croak "DGTest: request() without a running nginx" unless $current;
    return $current->request($method, $uri, %o);
}

sub start_redis {
    return DGTest::Redis->start;
}

# run_cmd(PROGRAM, ARGS...) -> (exit code, stdout and stderr together);
# stdin is /dev/null, e.g. run_cmd($DGTest::CLI, 'audit', 'verify', $f)
sub run_cmd {
    my (@cmd) = @_;
    my $out = base_dir() . "/cmd.$$.out";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out;
        open STDERR, '>&', \*STDOUT;
        { exec @cmd };
        POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    my $text = slurp($out);
    unlink $out;
    return ($rc, $text);
}

sub stop_all {
    for my $k (keys %live) {
        my $o = $live{$k} or next;
        eval { $o->stop };
    }
}

my $main_pid = $$;

END {
    my $rc = $?;
    stop_all() if $$ == $main_pid;      # not in a forked child
    $? = $rc;
}
$SIG{INT} = $SIG{TERM} = sub { stop_all() if $$ == $main_pid; exit 1 };


# --- JSON comparison ----------------------------------------------------------

# json_match(got, expected, subset) -> '' when equal, else where they differ.
# In expected, the string "<ANY>" matches any value and "qr/RE/" a string
# that matches RE.  subset: objects may have more keys than expected.
sub json_match {
    my ($got, $exp, $subset, $path) = @_;
    $path //= '$';
    if (!ref $exp && defined $exp && !JSON::PP::is_bool($exp)) {
        return '' if $exp eq '<ANY>';
        if ($exp =~ m{^qr/(.*)/$}s) {
            return '' if defined $got && !ref $got && $got =~ /$1/;
            return "$path: " . show($got) . " does not match $exp";
        }
    }
    if (ref $exp eq 'HASH') {
        return "$path: expected an object, got " . show($got)
            unless ref $got eq 'HASH';
        for my $k (sort keys %$exp) {
            return "$path.$k: missing" unless exists $got->{$k};
            my $d = json_match($got->{$k}, $exp->{$k}, $subset, "$path.$k");
            return $d if $d;
        }
        unless ($subset) {
            for my $k (sort keys %$got) {
                return "$path.$k: unexpected key" unless exists $exp->{$k};
            }
        }
        return '';
    }
    if (ref $exp eq 'ARRAY') {
        return "$path: expected an array, got " . show($got)
            unless ref $got eq 'ARRAY';
        return "$path: " . @$got . " elements, expected " . @$exp
            if @$got != @$exp;
        for my $i (0 .. $#$exp) {
            my $d = json_match($got->[$i], $exp->[$i], $subset, "$path\[$i]");
            return $d if $d;
        }
        return '';
    }
    if (!defined $exp) {
        return defined $got ? "$path: " . show($got) . ", expected null" : '';
    }
    if (JSON::PP::is_bool($exp)) {
        return "$path: " . show($got) . ", expected " . show($exp)
            unless JSON::PP::is_bool($got) && !!$got == !!$exp;
        return '';
    }
    return "$path: " . show($got) . ", expected " . show($exp)
        if !defined $got || ref $got || JSON::PP::is_bool($got)
           || $got ne $exp;
    return '';
}

sub show {
    my ($v) = @_;
    return JSON::PP->new->canonical->allow_nonref->allow_blessed
        ->convert_blessed->encode($v);
}


# --- blocks -------------------------------------------------------------------

# sections whose value is a single trimmed line
my %oneline = map { $_ => 1 } qw(error_code cert timeout workers
    verify_client log_level skip wait truncated no_module ONLY);

sub parse_blocks {
    my ($text) = @_;
    my (@blocks, $b, $sec);
    for my $line (split /^/, $text) {
        if ($line =~ /^===\s*(.*?)\s*$/) {
            $b = { name => $1, sec => {}, mods => {} };
            push @blocks, $b;
            $sec = undef;
            next;
        }
        next unless $b;
        if ($line =~ /^---\s+(\w+)((?:\s+[\w.-]+)*)\s*(?::\s*(.*?))?\s*$/) {
            my ($words, $inline) = ($2 // '', $3);
            $sec = $1;
            my @mods = grep { /^(eval|chomp)$/ } split ' ', $words;
            my @rest = grep { !/^(eval|chomp)$/ } split ' ', $words;
            # "--- workers 2" is "--- workers: 2" for one-line sections
            $inline //= "@rest" if @rest && $oneline{$sec};
            $b->{mods}{$sec} = { map { $_ => 1 } @mods };
            $b->{sec}{$sec} = defined $inline ? "$inline\n" : '';
            next;
        }
        $b->{sec}{$sec} .= $line if defined $sec;
    }
    for my $blk (@blocks) {
        for my $k (keys %{ $blk->{sec} }) {
            my $v = $blk->{sec}{$k};
            $v =~ s/(?:^[ \t]*\n)+\z//m;    # trailing blank lines
            $v =~ s/\n\z// if $blk->{mods}{$k}{chomp};
            if ($oneline{$k}) {
                $v =~ s/^\s+|\s+\z//g;
            }
            $blk->{sec}{$k} = $v;
        }
    }
    return @blocks;
}

sub blocks {
    my $fh = do { no strict 'refs'; \*{'main::DATA'} };
    local $/;
    my $text = <$fh> // '';
    return parse_blocks($text);
}

# a section's value after `eval` and $TEST_NGINX_ expansion
sub section {
    my ($b, $inst, $name) = @_;
    return undef unless exists $b->{sec}{$name};
    my $v = $b->{sec}{$name};
    if ($b->{mods}{$name}{eval}) {
        $v = $inst->expand($v);
        my @r = eval "package main; no strict; $v";
        die "DGTest: $b->{name}: --- $name eval: $@" if $@;
        $v = @r == 1 ? $r[0] : \@r;
        return ref $v eq 'ARRAY' ? [ map { $inst->expand($_) } @$v ] : $v;
    }
    return $inst->expand($v);
}

sub pick {
    my ($v, $i) = @_;
    return ref $v eq 'ARRAY' ? $v->[$i] : $v;
}

sub patterns {
    my ($v) = @_;
    return () unless defined $v;
    my @l = ref $v eq 'ARRAY' ? @$v : ref $v eq 'Regexp' ? ($v)
          : grep { /\S/ } split /\n/, $v;
    return map {
        ref $_ ? $_
        : m{^qr/(.*)/([a-z]*)$} ? ($2 ? qr/(?$2)$1/ : qr/$1/)
        : $_
    } @l;
}

sub match_pattern {
    my ($text, $p) = @_;
    return ref $p ? $text =~ $p : index($text, $p) >= 0;
}

sub run_tests {
    my @blocks = blocks();
    my @only = grep { exists $_->{sec}{ONLY} } @blocks;
    if (@only) {
        diag('--- ONLY: running only ' . join(', ', map { $_->{name} } @only));
        @blocks = @only;
    }
    for my $b (@blocks) {
        my $ok = eval { run_block($b); 1 };
        fail("$b->{name}: $@") unless $ok;
        $current->stop if $current;
    }
    $file_redis->stop if $file_redis;
    $file_redis = undef;
    done_testing();
}

sub run_block {
    my ($b) = @_;
    my $name = $b->{name};
    my $s = $b->{sec};

    if (exists $s->{skip}) {
        SKIP: { skip("$name: " . ($s->{skip} || 'skipped'), 1) }
        return;
    }

    my %o;
    for my $k (qw(config http_config main_config upstream workers
                  verify_client log_level))
    {
        $o{$k} = $s->{$k} if exists $s->{$k};
    }
    $o{no_module} = 1 if exists $s->{no_module};
    $o{conf} = $s->{full_config} if exists $s->{full_config};

    # a redis for the blocks that mention it, flushed between blocks
    my $wants_redis = exists $s->{redis} || exists $s->{redis_cmd}
        || grep { /TEST_NGINX_REDIS_PORT/ } values %$s;
    if ($wants_redis) {
        $file_redis ||= start_redis();
        $file_redis->cmd('FLUSHALL');
        $o{redis_port} = $file_redis->port;
    }

    my $inst = DGTest::Nginx->new(%o);
    $inst->write_policy($s->{policy}) if exists $s->{policy};

    # the adversarial provider: "--- evil" holds ">>> NAME" scenarios
    if (exists $s->{evil}) {
        my @parts = split /^>>> *(\S+)\s*\n/m, $s->{evil};
        shift @parts;
        $inst->evil_scenarios(@parts);
    }
    $inst->{evil_wanted} = 1
        if grep { /TEST_NGINX_EVIL_PORT/ } values %$s;

    if (exists $s->{user_files}) {
        my $uf = section($b, $inst, 'user_files');
        my @parts = split /^>>> *(\S+)\s*\n/m, $uf;
        shift @parts;
        while (my ($f, $c) = splice @parts, 0, 2) {
            spew("$inst->{dir}/html/$f", $c);
        }
    }

    if (exists $s->{nginx_t_fails}) {
        my ($rc, $out) = $inst->test_conf;
        isnt($rc, 0, "$name: nginx -t fails") or diag($out);
        for my $p (patterns(section($b, $inst, 'error_log'))) {
            ok(match_pattern($out, $p), "$name: nginx -t output has "
               . (ref $p ? "$p" : "'$p'")) or diag("output:\n$out");
        }
        for my $p (patterns(section($b, $inst, 'no_error_log'))) {
            ok(!match_pattern($out, $p), "$name: nginx -t output lacks "
               . (ref $p ? "$p" : "'$p'")) or diag("output:\n$out");
        }
        return;
    }

    $inst->start;

    if (exists $s->{redis_cmd}) {
        for my $line (grep { /\S/ } split /\n/,
                      section($b, $inst, 'redis_cmd'))
        {
            $file_redis->cmd(split ' ', $line);
        }
    }
    if (exists $s->{init}) {
        local $DGTest::INSTANCE = $inst;
        eval "package main; no strict; " . $inst->expand($s->{init});
        die "DGTest: $name: --- init: $@" if $@;
    }

    my $reqs = section($b, $inst, 'request');
    $reqs = [ $reqs ] unless ref $reqs eq 'ARRAY';
    my %v = map { $_ => section($b, $inst, $_) } qw(cert more_headers
        request_body error_code response_headers response_headers_like
        response_head_unlike
        response_body response_body_like response_body_unlike
        response_json response_json_subset truncated timeout sni host);

    for my $i (0 .. $#$reqs) {
        my $req = $reqs->[$i];
        next unless defined $req && $req =~ /\S/;
        my $tn = @$reqs > 1 ? "$name (request $i)" : $name;
        $req =~ s/^\s+|\s+\z//g;
        my ($method, $uri) = split ' ', $req;
        my $body = pick($v{request_body}, $i);
        my $res = $inst->request($method, $uri,
            cert    => pick($v{cert}, $i),
            headers => [ split /\n/, pick($v{more_headers}, $i) // '' ],
            defined $body ? (body => $body) : (),
            timeout => pick($v{timeout}, $i),
            sni     => pick($v{sni}, $i),
            host    => pick($v{host}, $i));
        check_response($tn, $res, { map { $_ => pick($v{$_}, $i) } keys %v });
    }

    if (exists $s->{wait}) {
        sleep $s->{wait};
    }
    $inst->stop;
    if ($VALGRIND) {
        my $v = $inst->valgrind_errors;
        ok(!$v, "$name: valgrind clean") or diag($v);
    }
    check_error_log($name, $inst->error_log,
                    section($b, $inst, 'error_log'),
                    section($b, $inst, 'no_error_log'));
}

sub check_response {
    my ($tn, $res, $e) = @_;
    if (defined $e->{error_code}) {
        is($res->{status}, $e->{error_code}, "$tn: status code")
            or diag(($res->{error} ? "error: $res->{error}\n" : '')
                    . "body: " . substr($res->{body}, 0, 500));
    }
    if (defined $e->{response_headers}) {
        for (grep { /\S/ } split /\n/, $e->{response_headers}) {
            if (/^!\s*(\S+)/) {
                ok(!defined $res->header($1), "$tn: header $1 absent")
                    or diag("$1: " . $res->header($1));
            } elsif (/^([^:]+):\s*(.*?)\s*$/) {
                is($res->header($1), $2, "$tn: header $1");
            }
        }
    }
    if (defined $e->{response_headers_like}) {
        for (grep { /\S/ } split /\n/, $e->{response_headers_like}) {
            my ($h, $re) = /^([^:]+):\s*(.*?)\s*$/ or next;
            like($res->header($h) // '', qr/$re/, "$tn: header $h like");
        }
    }
    if (defined $e->{response_head_unlike}) {
        # the status line and every header line, as sent
        my $i = index($res->{raw}, "\r\n\r\n");
        my $head = $i < 0 ? $res->{raw} : substr($res->{raw}, 0, $i);
        for my $re (grep { /\S/ } split /\n/, $e->{response_head_unlike}) {
            unlike($head, qr/$re/, "$tn: response head unlike $re");
        }
    }
    if (defined $e->{response_body}) {
        is($res->{body}, $e->{response_body}, "$tn: response body");
    }
    if (defined $e->{response_body_like}) {
        (my $re = $e->{response_body_like}) =~ s/\n\z//;
        like($res->{body}, qr/$re/s, "$tn: response body like");
    }
    if (defined $e->{response_body_unlike}) {
        (my $re = $e->{response_body_unlike}) =~ s/\n\z//;
        unlike($res->{body}, qr/$re/s, "$tn: response body unlike");
    }
    for my $k (qw(response_json response_json_subset)) {
        next unless defined $e->{$k};
        my $got = eval { json_decode($res->{body}) };
        if (!defined $got && $@) {
            fail("$tn: $k: body is not JSON: $@");
            diag('body: ' . substr($res->{body}, 0, 500));
            next;
        }
        my $exp = ref $e->{$k} ? $e->{$k} : json_decode($e->{$k});
        my $d = json_match($got, $exp, $k eq 'response_json_subset');
        ok(!$d, "$tn: $k") or diag("$d\nbody: " . substr($res->{body}, 0, 800));
    }
    if (defined $e->{truncated}) {
        is(!!$res->{truncated}, !!$e->{truncated},
           "$tn: body " . ($e->{truncated} ? '' : 'not ') . 'truncated');
    }
}

sub check_error_log {
    my ($tn, $log, $want, $unwanted) = @_;
    for my $p (patterns($want)) {
        ok(match_pattern($log, $p),
           "$tn: error.log has " . (ref $p ? "$p" : "'$p'"))
            or diag("error.log tail:\n" . tail_lines($log, 15));
    }
    for my $p ('[alert]', '[crit]', patterns($unwanted)) {
        ok(!match_pattern($log, $p),
           "$tn: error.log lacks " . (ref $p ? "$p" : "'$p'"))
            or diag(join "\n", grep { match_pattern($_, $p) }
                    split /\n/, $log);
    }
}

1;
