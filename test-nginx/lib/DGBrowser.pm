package DGBrowser;

# A page in headless Chromium (Debian's chromium), for the tests of the
# pages datagate serves or writes: load a URL or a file, wait until the
# page's script says it is done, and return its DOM, the console errors,
# every request it made (and which of them left its origin), a value the
# page computes, and a screenshot of the whole page.
#
#   my $p = DGBrowser::load('http://127.0.0.1:8080/status?format=html',
#                           wait_for   => 'document.body.dataset.loaded',
#                           eval       => 'document.title',
#                           screenshot => "$dir/status.png");
#   $p->{dom}          the document (outerHTML) once wait_for held; also
#                      $p->{source}
#   $p->{text}         its text (document.body.innerText)
#   $p->{title}        document.title
#   $p->{value}        what eval returned (JSON-able values)
#   $p->{console}      console errors, uncaught exceptions, error-level log
#                      entries (CSP violations, failed loads), as strings;
#                      also $p->{errors}
#   $p->{requests}     every URL the page requested, in order
#   $p->{external}     those outside the page's origin (data: and blob:
#                      URLs are inside it; file: pages may load file: only)
#   $p->{screenshot}   the PNG written (the whole page), or undef
#   $p->{size}         [width, height] of that screenshot
#   $p->{timed_out}    1 when wait_for never held within timeout
#   $p->{error}        why the browser could not be used (then nothing else)
#
# Options: wait_for (a JS expression, polled until truthy; default: the
# load event only), timeout (seconds, scaled by DGTest::secs; default 20),
# eval, screenshot (path), width and height of the viewport (1280 x 1600).
# DGBrowser::chromium() is the browser's path, or undef when it is not
# installed (scripts/install-deps.sh installs it for the tests);
# DGBrowser::missing() says why a browser test cannot run, '' when it can.
#
# The same as an object, for several pages with one set of options:
#
#   my $b = DGBrowser->new(width => 1280, height => 900);
#   my $p = $b->load("file://$dir/report.html", screenshot => $png);
#   $b->quit;
#
# Chromium talks the DevTools protocol over a pipe (--remote-debugging-
# pipe: fds 3 and 4, NUL-terminated JSON): no port, no WebSocket library.
# Host names other than the loopback address resolve to nothing, and other
# addresses go to a closed proxy port, so a page that tries the network
# fails to load it (and the request is still seen).

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Handle;
use IO::Select;
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use DGTest ();

my @CANDIDATES = qw(/usr/bin/chromium /usr/bin/chromium-browser);

sub chromium {
    return $ENV{DG_CHROMIUM} if $ENV{DG_CHROMIUM} && -x $ENV{DG_CHROMIUM};
    for my $c (@CANDIDATES) {
        return $c if -x $c;
    }
    return undef;
}

# why a browser test cannot run here, or '' when it can
sub missing {
    return chromium() ? ''
                      : 'chromium is not installed (Debian: chromium; '
                        . 'make deps)';
}

# DGBrowser->new(%options): load() takes the options given here as its
# defaults; each page gets a fresh browser
sub new {
    my ($class, %o) = @_;
    return bless { %o }, $class;
}

sub quit {
}

# the origin of a URL: scheme://host:port, or "file:"
sub origin {
    my ($url) = @_;
    return 'file:' if $url =~ /^file:/i;
    return lc($1) if $url =~ m{^([a-z][a-z0-9+.-]*://[^/?#]+)}i;
    return '';
}

sub load {
    my $self = ref $_[0] && eval { $_[0]->isa('DGBrowser') } ? shift : undef;
    my ($url, %o) = @_;

    %o = (%$self, %o) if $self;

    my $bin = chromium() or return { error => missing() };

    $url = "file://$url" if $url =~ m{^/};
    my $timeout = DGTest::secs($o{timeout} // 20);
    my $page = { url => $url, console => [], requests => [], external => [] };
    my $b = DGBrowser::Session->start($bin, $timeout, %o);
    return { error => $b } unless ref $b;

    my $ok = eval {
        $b->run($page, $url, %o);
        1;
    };
    $page->{error} = "$@" unless $ok;
    $b->stop;

    $page->{errors} = $page->{console};
    $page->{source} = $page->{dom};

    my $own = origin($url);
    for my $r (@{ $page->{requests} }) {
        next if $r =~ /^(data|blob):/i;
        push @{ $page->{external} }, $r if origin($r) ne $own;
    }

    return $page;
}


package DGBrowser::Session;

use strict;
use warnings;

use List::Util qw(max);

use File::Temp qw(tempdir);
use IO::Select;
use JSON::PP;
use MIME::Base64 qw(decode_base64);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

sub start {
    my ($class, $bin, $timeout, %o) = @_;
    my $profile = tempdir('dgbrowser-XXXXXX', TMPDIR => 1, CLEANUP => 1);

    # the pipes stay open across exec as fds 3 (commands) and 4 (answers)
    local $^F = 255;
    pipe(my $cmd_r, my $cmd_w) or return "pipe: $!";
    pipe(my $ans_r, my $ans_w) or return "pipe: $!";

    my $pid = fork;
    return "fork: $!" unless defined $pid;

    if ($pid == 0) {
        close $cmd_w;
        close $ans_r;
        my ($c, $a) = (POSIX::dup(fileno $cmd_r), POSIX::dup(fileno $ans_w));
        POSIX::dup2($c, 3);
        POSIX::dup2($a, 4);
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$profile/chromium.log";
        open STDERR, '>&', \*STDOUT;
        exec $bin, '--headless', '--no-sandbox', '--disable-gpu',
            '--remote-debugging-pipe', "--user-data-dir=$profile",
            '--no-first-run', '--no-default-browser-check',
            '--disable-extensions', '--disable-background-networking',
            '--disable-component-update', '--disable-sync',
            '--disable-default-apps', '--mute-audio', '--disable-dev-shm-usage',
            '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
            # an address written as such (http://10.1.2.3/) is not
            # resolved: it goes to a closed proxy port, never out; loopback
            # is not proxied
            '--proxy-server=127.0.0.1:1',
            'about:blank'
            or POSIX::_exit(127);
    }

    close $cmd_r;
    close $ans_w;
    $cmd_w->autoflush(1);

    return bless { pid => $pid, w => $cmd_w, r => $ans_r, buf => '',
                   id => 0, events => [], timeout => $timeout,
                   profile => $profile }, $class;
}

sub send_cmd {
    my ($self, $method, $params, $session) = @_;
    my $m = { id => ++$self->{id}, method => $method,
              params => $params // {} };
    $m->{sessionId} = $session if $session;
    print { $self->{w} } encode_json($m) . "\0"
        or die "chromium: write: $!\n";
    return $self->{id};
}

# the next message, or undef at the deadline
sub next_msg {
    my ($self, $until) = @_;
    my $sel = IO::Select->new($self->{r});
    while (1) {
        my $i = index($self->{buf}, "\0");
        if ($i >= 0) {
            my $m = substr($self->{buf}, 0, $i);
            substr($self->{buf}, 0, $i + 1) = '';
            return decode_json($m);
        }
        my $left = $until - time;
        return undef if $left <= 0;
        next unless $sel->can_read($left);
        my $n = sysread($self->{r}, $self->{buf}, 65536, length $self->{buf});
        die "chromium: it went away\n" unless $n;
    }
}

sub call {
    my ($self, $method, $params, $session) = @_;
    my $want = $self->send_cmd($method, $params, $session);
    my $until = time + $self->{timeout};
    while (1) {
        my $m = $self->next_msg($until)
            // die "chromium: no answer to $method\n";
        if (defined $m->{id} && $m->{id} == $want) {
            die "chromium: $method: " . encode_json($m->{error}) . "\n"
                if $m->{error};
            return $m->{result};
        }
        $self->note($m);
    }
}

# record what the page did (console, requests)
sub note {
    my ($self, $m) = @_;
    my $page = $self->{page} or return;
    my $e = $m->{method} // return;
    my $p = $m->{params} // {};

    if ($e eq 'Runtime.consoleAPICalled'
        && ($p->{type} eq 'error' || $p->{type} eq 'assert'))
    {
        push @{ $page->{console} }, "console.$p->{type}: "
            . join(' ', map { $_->{value} // $_->{description} // '' }
                        @{ $p->{args} || [] });
    } elsif ($e eq 'Runtime.exceptionThrown') {
        my $d = $p->{exceptionDetails} || {};
        push @{ $page->{console} }, 'exception: '
            . ($d->{exception}{description} // $d->{text} // '?');
    } elsif ($e eq 'Log.entryAdded' && ($p->{entry}{level} // '') eq 'error') {
        push @{ $page->{console} }, "log: $p->{entry}{text}";
    } elsif ($e eq 'Network.requestWillBeSent') {
        push @{ $page->{requests} }, $p->{request}{url};
    } elsif ($e eq 'Page.loadEventFired') {
        $self->{loaded} = 1;
    }
}

sub evaluate {
    my ($self, $expr) = @_;
    my $r = $self->call('Runtime.evaluate',
                        { expression => $expr, returnByValue => JSON::PP::true,
                          awaitPromise => JSON::PP::true },
                        $self->{session});
    die "chromium: evaluate: " . ($r->{exceptionDetails}{text} // '') . "\n"
        if $r->{exceptionDetails};
    return $r->{result}{value};
}

sub run {
    my ($self, $page, $url, %o) = @_;
    $self->{page} = $page;

    my $t = $self->call('Target.createTarget', { url => 'about:blank' });
    $self->{session} = $self->call('Target.attachToTarget',
                                   { targetId => $t->{targetId},
                                     flatten => JSON::PP::true })->{sessionId};
    $self->call($_, {}, $self->{session})
        for qw(Page.enable Runtime.enable Network.enable Log.enable);
    $self->call('Emulation.setDeviceMetricsOverride',
                { width => $o{width} // 1280, height => $o{height} // 1600,
                  deviceScaleFactor => 1, mobile => JSON::PP::false },
                $self->{session});
    $self->{loaded} = 0;
    $self->call('Page.navigate', { url => $url }, $self->{session});

    my $until = time + $self->{timeout};
    while (!$self->{loaded}) {
        my $m = $self->next_msg($until) // die "chromium: $url did not load\n";
        $self->note($m);
    }

    if (defined $o{wait_for}) {
        $page->{timed_out} = 1;
        while (time < $until) {
            if ($self->evaluate("!!($o{wait_for})")) {
                $page->{timed_out} = 0;
                last;
            }
            # take in what arrived meanwhile, then look again
            my $m = $self->next_msg(time + 0.1);
            $self->note($m) if $m;
        }
    }

    # whatever the page reported up to now
    while (my $m = $self->next_msg(time + 0.2)) {
        $self->note($m);
    }

    $page->{value} = $self->evaluate($o{eval}) if defined $o{eval};
    $page->{dom} = $self->evaluate('document.documentElement.outerHTML');
    $page->{text} = $self->evaluate('document.body ? document.body.innerText'
                                    . ' : ""');

    $page->{title} = $self->evaluate('document.title');

    if ($o{screenshot}) {
        # the whole page: the viewport, or more when the document is taller
        my $m = $self->call('Page.getLayoutMetrics', {}, $self->{session});
        my $c = $m->{cssContentSize} || $m->{contentSize} || {};
        my @size = (max($c->{width} // 0, $o{width} // 1280),
                    max($c->{height} // 0, $o{height} // 1600));
        my $shot = $self->call('Page.captureScreenshot',
                               { format => 'png',
                                 captureBeyondViewport => JSON::PP::true,
                                 clip => { x => 0, y => 0, scale => 1,
                                           width => $size[0],
                                           height => $size[1] } },
                               $self->{session});
        $page->{size} = \@size;
        open my $fh, '>:raw', $o{screenshot}
            or die "$o{screenshot}: $!\n";
        print $fh decode_base64($shot->{data});
        close $fh;
        $page->{screenshot} = $o{screenshot};
    }
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    eval { $self->send_cmd('Browser.close') };
    close $self->{w};
    my $until = time + DGTest::secs(5);
    while (time < $until) {
        last if waitpid($self->{pid}, WNOHANG) == $self->{pid};
        sleep 0.05;
    }
    if (kill 0, $self->{pid}) {
        kill 'KILL', $self->{pid};
        waitpid $self->{pid}, 0;
    }
    delete $self->{pid};
}

sub DESTROY {
    my ($self) = @_;
    $self->stop if $self->{pid};
}

1;
