#!/usr/bin/perl
# A tiny HTTP/1.1 origin for scripts/bench-mask's flat-memory check: it
# streams one large JSON document of person records, generated on the fly
# (no disk), with chunked transfer coding:
#
#   GET /stream?bytes=N  ->  {"data":[REC,REC,...],"total":K}
#
# The records are those of a document made by gen-data.pl (their array body
# is repeated); N is the approximate size (at most 16 GiB).  One connection
# at a time, "Connection: close".  Bounded: it exits after --max-conns
# connections or --lifetime seconds, whichever comes first.
#
#   perl stream-origin.pl --port P --records FILE [--max-conns 50]
#                         [--lifetime 1800]

use strict;
use warnings;
use IO::Socket::INET;
use Getopt::Long;

my ($port, $records, $max_conns, $lifetime) = (0, '', 50, 1800);
GetOptions('port=i' => \$port, 'records=s' => \$records,
           'max-conns=i' => \$max_conns, 'lifetime=i' => \$lifetime)
    or die "usage: stream-origin.pl --port P --records FILE\n";
die "stream-origin: --port and --records are required\n"
    unless $port && $records;

open my $fh, '<:raw', $records or die "$records: $!\n";
my $doc = do { local $/; <$fh> };
close $fh;

$doc =~ /^\{"data":\[(.*)\],"total":(\d+)\}\s*$/s
    or die "stream-origin: $records is not a gen-data.pl document\n";
my ($block, $per_block) = ($1, $2);
my $bl = length($block) + 1;        # with the comma before it

$SIG{ALRM} = sub { exit 0 };
$SIG{PIPE} = 'IGNORE';
alarm $lifetime;

my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
                                Listen => 16, ReuseAddr => 1, Proto => 'tcp')
    or die "stream-origin: listen 127.0.0.1:$port: $!\n";

sub out {
    my ($s, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($s, $data, length($data) - $off, $off);
        return 0 unless defined $n && $n > 0;
        $off += $n;
    }
    return 1;
}

sub chunk {
    my ($s, $data) = @_;
    return out($s, sprintf("%x\r\n", length $data) . $data . "\r\n");
}

for (1 .. $max_conns) {
    my $c = $srv->accept or next;
    my $req = '';
    while ($req !~ /\r\n\r\n/ && length($req) < 65536) {
        my $n = sysread($c, $req, 4096, length $req);
        last unless $n;
    }
    my ($path) = $req =~ m{^GET (\S+) HTTP/1\.[01]\r\n};
    my $bytes;
    if (defined $path && $path =~ m{^/stream\?bytes=(\d+)$}) {
        $bytes = $1;
    }
    if (!defined $bytes || $bytes > 16 * 1024 ** 3) {
        out($c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                . "Connection: close\r\n\r\n");
        close $c;
        next;
    }

    my $nblocks = int($bytes / $bl) || 1;
    out($c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        or next;
    my $ok = chunk($c, '{"data":[' . $block);
    # ~1 MB per write
    my $per = int(1048576 / $bl) || 1;
    my $group = ",$block" x $per;
    my $left = $nblocks - 1;
    while ($ok && $left > 0) {
        my $k = $left < $per ? $left : $per;
        $ok = chunk($c, $k == $per ? $group : ",$block" x $k);
        $left -= $k;
    }
    $ok = chunk($c, '],"total":' . ($nblocks * $per_block) . '}') if $ok;
    out($c, "0\r\n\r\n") if $ok;
    close $c;
}
