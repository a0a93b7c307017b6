package DGBrowser;

# A page in headless Chromium, as a person would open it: what it wrote
# to the console, every request it made, and a screenshot of the whole
# page.  Debian's chromium and chromium-driver: chromedriver's WebDriver
# API is plain HTTP (HTTP::Tiny, JSON::PP), and its logs give the
# console ("browser") and the DevTools network events ("performance").
#
#   use DGBrowser;
#   plan skip_all => DGBrowser::missing() if DGBrowser::missing();
#   my $b = DGBrowser->new;                  # chromedriver on a free port
#   my $p = $b->load("file://$dir/report.html",
#                    screenshot => "$dir/report.png");
#   $p->{console}    # [{level => 'SEVERE', message => '...'}, ...]
#   $p->{errors}     # the console entries at level SEVERE
#   $p->{requests}   # every URL the page asked for, the page's own first
#   $p->{external}   # those that are not the page itself
#   $p->{title}, $p->{source}, $p->{screenshot} (the PNG file written)
#   $b->quit;                                # also at exit
#
# Nothing leaves the machine: every host name but localhost resolves to
# nothing and every address but loopback goes to a closed proxy port, so
# a request the page should not make fails at once, and is still listed.

use strict;
use warnings;

use Carp qw(croak);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use POSIX ();
use Time::HiRes qw(sleep time);

our $CHROMIUM     = $ENV{DG_CHROMIUM} || '/usr/bin/chromium';
our $CHROMEDRIVER = $ENV{DG_CHROMEDRIVER} || '/usr/bin/chromedriver';

my %live;

# why a browser test cannot run here, or '' when it can
sub missing {
    return "no $CHROMIUM (Debian: chromium; make deps)" unless -x $CHROMIUM;
    return "no $CHROMEDRIVER (Debian: chromium-driver; make deps)"
        unless -x $CHROMEDRIVER;
    return '';
}

sub _free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp')
        or croak "DGBrowser: cannot bind a port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub _slow { return $ENV{DG_TEST_SLOW} || 1 }

# DGBrowser->new(width => 1280, height => 900, timeout => 60)
sub new {
    my ($class, %o) = @_;
    croak 'DGBrowser: ' . missing() if missing();

    my $self = bless {
        width   => $o{width} || 1280,
        height  => $o{height} || 900,
        timeout => ($o{timeout} || 60) * _slow(),
        dir     => tempdir('dgbrowser-XXXXXX', TMPDIR => 1, CLEANUP => 1),
        port    => _free_port(),
    }, $class;

    $self->{http} = HTTP::Tiny->new(timeout => $self->{timeout});

    my $pid = fork // croak "DGBrowser: fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$self->{dir}/chromedriver.log";
        open STDERR, '>&', \*STDOUT;
        POSIX::setsid();
        { no warnings 'exec'; exec $CHROMEDRIVER, "--port=$self->{port}" }
        POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $live{$pid} = 1;

    my $until = time + $self->{timeout};
    while (time < $until) {
        my $r = $self->{http}->get("http://127.0.0.1:$self->{port}/status");
        last if $r->{success};
        sleep 0.1;
    }

    my $caps = {
        browserName => 'chrome',
        'goog:chromeOptions' => {
            binary => $CHROMIUM,
            args   => [
                '--headless=new', '--no-sandbox', '--disable-gpu',
                '--disable-dev-shm-usage', '--no-first-run',
                '--disable-background-networking', '--disable-sync',
                '--disable-component-update', '--disable-default-apps',
                '--disable-extensions', '--hide-scrollbars',
                "--user-data-dir=$self->{dir}/profile",
                "--window-size=$self->{width},$self->{height}",
                '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost',
                '--proxy-server=127.0.0.1:1',
            ],
            perfLoggingPrefs => { enableNetwork => JSON::PP::true,
                                  enablePage => JSON::PP::false },
        },
        'goog:loggingPrefs' => { browser => 'ALL', performance => 'ALL' },
    };

    my $s = $self->_call('POST', '/session',
                         { capabilities => { alwaysMatch => $caps } });
    $self->{session} = $s->{sessionId}
        or croak "DGBrowser: no session: " . encode_json($s);

    return $self;
}

# one WebDriver command: the "value" of its answer
sub _call {
    my ($self, $method, $path, $body) = @_;
    my $url = "http://127.0.0.1:$self->{port}$path";
    my $r = $self->{http}->request($method, $url, {
        headers => { 'Content-Type' => 'application/json' },
        defined $body ? (content => encode_json($body)) : (),
    });
    my $j = eval { decode_json($r->{content}) } || {};
    unless ($r->{success}) {
        my $log = '';
        if (open my $fh, '<', "$self->{dir}/chromedriver.log") {
            local $/;
            $log = <$fh> // '';
            $log = substr($log, -2000) if length $log > 2000;
        }
        croak "DGBrowser: $method $path: $r->{status} "
              . ($j->{value}{message} // $r->{content}) . "\n$log";
    }
    return $j->{value};
}

sub _sess { my ($self) = @_; return "/session/$self->{session}" }

# load(URL, screenshot => FILE): the page once loaded
sub load {
    my ($self, $url, %o) = @_;

    # what the browser's first tab or an earlier page left in the logs is
    # not this page's
    $self->_call('POST', $self->_sess . '/url', { url => 'about:blank' });
    $self->_call('POST', $self->_sess . '/se/log', { type => $_ })
        for qw(browser performance);

    $self->_call('POST', $self->_sess . '/url', { url => $url });

    my $until = time + $self->{timeout};
    while (time < $until) {
        my $st = $self->_call('POST', $self->_sess . '/execute/sync',
                              { script => 'return document.readyState',
                                args => [] });
        last if ($st // '') eq 'complete';
        sleep 0.1;
    }

    my %page = (url => $url);

    my $console = $self->_call('POST', $self->_sess . '/se/log',
                               { type => 'browser' }) || [];
    $page{console} = [ map { { level => $_->{level},
                               message => $_->{message},
                               source => $_->{source} } } @$console ];
    $page{errors} = [ grep { $_->{level} eq 'SEVERE' } @{ $page{console} } ];

    my $perf = $self->_call('POST', $self->_sess . '/se/log',
                            { type => 'performance' }) || [];
    my @req;
    for my $e (@$perf) {
        my $m = eval { decode_json($e->{message}) } or next;
        my $ev = $m->{message} || {};
        next unless ($ev->{method} // '') eq 'Network.requestWillBeSent';
        push @req, $ev->{params}{request}{url};
    }
    $page{requests} = \@req;
    (my $bare = $url) =~ s/#.*//;
    $page{external} = [ grep { my $u = $_; $u =~ s/#.*//; $u ne $bare }
                        @req ];

    $page{title} = $self->_call('GET', $self->_sess . '/title');
    $page{source} = $self->_call('GET', $self->_sess . '/source');

    if (my $file = $o{screenshot}) {
        # the whole page, not only the window
        my $m = $self->_call('POST', $self->_sess . '/goog/cdp/execute',
                             { cmd => 'Page.getLayoutMetrics', params => {} });
        my $size = $m->{cssContentSize} || $m->{contentSize};
        my $shot = $self->_call('POST', $self->_sess . '/goog/cdp/execute', {
            cmd => 'Page.captureScreenshot',
            params => {
                format => 'png', captureBeyondViewport => JSON::PP::true,
                clip => { x => 0, y => 0, scale => 1,
                          width => $size->{width},
                          height => $size->{height} },
            },
        });
        open my $fh, '>:raw', $file or croak "DGBrowser: $file: $!";
        print $fh decode_base64($shot->{data});
        close $fh;
        $page{screenshot} = $file;
        $page{size} = [ $size->{width}, $size->{height} ];
    }

    return \%page;
}

sub quit {
    my ($self) = @_;
    if ($self->{session}) {
        eval { $self->_call('DELETE', $self->_sess) };
        delete $self->{session};
    }
    if (my $pid = delete $self->{pid}) {
        kill 'TERM', -$pid;
        kill 'TERM', $pid;
        waitpid $pid, 0;
        delete $live{$pid};
    }
}

sub DESTROY {
    my ($self) = @_;
    local ($@, $!, $?);
    $self->quit;
}

END {
    for my $pid (keys %live) {
        kill 'TERM', -$pid;
        kill 'TERM', $pid;
    }
}

1;
