package DGTest::Evil;

# The adversarial provider: a raw-socket origin that answers each request
# with whatever a scenario script writes to the socket -- interim 1xx
# answers, any status or header, lying Content-Length, bad chunking, a body
# cut short, a slow drip, a silent hang.
#
# A scenario is Perl code in $dir/evil/NAME.pl; a request for /NAME or
# /NAME/anything (query ignored) runs it in a child process of its own with
# these in scope:
#
#   $REQ                the request head as received (text, CRLFs kept)
#   $METHOD, $URI       from the request line
#   %H                  request headers, lower-case names (repeats joined
#                       with ", ")
#   $BODY               the request body (Content-Length bodies only)
#   send_raw(BYTES)     write bytes now (croaks when the peer is gone)
#   head(STATUS, LINES...)   "HTTP/1.1 STATUS X\r\nLINE\r\n...\r\n"
#   chunk(BYTES)        one chunk of a chunked body ("" -> the last chunk)
#   pause(SECONDS)      sleep (fractions allowed)
#   hang()              wait until the peer closes (never answer)
#   person_json()       a record with a clear resident ID, mobile, bank card
#
# When the code returns the connection is closed.  Every request head is
# appended to $dir/evil-requests.log, separated by a line "----".  An
# unknown NAME answers 404 with a JSON body.

use strict;
use warnings;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our ($REQ, $METHOD, $URI, %H, $BODY, $SOCK);

sub start {
    my ($class, $dir, $port) = @_;
    my $listen = IO::Socket::INET->new(Listen => 64, LocalAddr => '127.0.0.1',
                                       LocalPort => $port, Proto => 'tcp',
                                       ReuseAddr => 1)
        or die "DGTest: evil origin cannot listen on $port: $!\n";
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);          # stop() ends the scenarios still running
        $SIG{CHLD} = sub { 1 while waitpid(-1, WNOHANG) > 0 };
        $SIG{TERM} = sub { POSIX::_exit(0) };
        $SIG{PIPE} = 'IGNORE';
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/evil.out";
        open STDERR, '>&', \*STDOUT;
        while (1) {
            my $c = $listen->accept or next;
            my $kid = fork;
            if (defined $kid && $kid == 0) {
                close $listen;
                serve($dir, $c);
                POSIX::_exit(0);
            }
            close $c;
        }
    }
    close $listen;
    return bless { pid => $pid, port => $port, dir => $dir }, $class;
}

sub port { $_[0]{port} }

# the request heads received so far, oldest first
sub requests {
    my ($self) = @_;
    my $log = DGTest::slurp("$self->{dir}/evil-requests.log");
    return grep { /\S/ } split /^----\n/m, $log;
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', -$pid;
    waitpid $pid, 0;
}

sub DESTROY { $_[0]->stop if $_[0]{pid} }

sub serve {
    my ($dir, $c) = @_;
    $SOCK = $c;
    binmode $c;
    my $buf = '';
    my $until = time + 10;
    while (index($buf, "\r\n\r\n") < 0 && time < $until) {
        my $n = sysread($c, $buf, 65536, length $buf);
        return unless $n;
    }
    my $i = index($buf, "\r\n\r\n");
    return if $i < 0;
    $REQ = substr($buf, 0, $i + 4);
    $BODY = substr($buf, $i + 4);
    ($METHOD, $URI) = $REQ =~ m{^(\S+) (\S+)};
    %H = ();
    for my $l (split /\r\n/, $REQ) {
        my ($n, $v) = $l =~ /^([^:\s]+):\s*(.*?)\s*$/ or next;
        $H{lc $n} = exists $H{lc $n} ? "$H{lc $n}, $v" : $v;
    }
    if (my $cl = $H{'content-length'}) {
        while (length $BODY < $cl) {
            sysread($c, $BODY, $cl - length $BODY, length $BODY) or last;
        }
    }
    if (open my $log, '>>', "$dir/evil-requests.log") {
        print $log $REQ, "----\n";
        close $log;
    }
    my ($name) = ($URI // '') =~ m{^/([\w.-]+)};
    my $file = defined $name ? "$dir/evil/$name.pl" : '';
    if (!-f $file) {
        my $b = qq({"error":"no scenario"}\n);
        send_raw(head(404, 'Content-Type: application/json',
                      'Content-Length: ' . length $b) . $b);
        return;
    }
    my $code = DGTest::slurp($file);
    eval "package DGTest::Evil; no strict; no warnings; $code; 1"
        or print STDERR "evil scenario $name: $@";
    close $c;
}

sub send_raw {
    my ($bytes) = @_;
    my $off = 0;
    while ($off < length $bytes) {
        my $n = syswrite($SOCK, $bytes, length($bytes) - $off, $off);
        die "peer gone: $!\n" unless defined $n;
        $off += $n;
    }
}

sub head {
    my ($status, @lines) = @_;
    return "HTTP/1.1 $status X\r\n" . join('', map { "$_\r\n" } @lines)
        . "\r\n";
}

sub chunk {
    my ($b) = @_;
    return sprintf("%x\r\n%s\r\n", length $b, $b);
}

sub pause { sleep $_[0] }

sub hang {
    1 while sysread($SOCK, my $x, 4096);
}

sub person_json {
    return '{"id_card":"450103199003071242","phone":"13877112345",'
        . '"name":"韦秀兰","bank_card":"6222021234567890128",'
        . '"address":"南宁市青秀区民族大道100号"}';
}

1;
