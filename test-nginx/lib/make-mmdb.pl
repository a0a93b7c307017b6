#!/usr/bin/perl
# Builds a small GeoIP2-style .mmdb for the datagate tests with Debian's
# libmaxmind-db-writer-perl.
#
#   make-mmdb.pl OUT.mmdb [CIDR=COUNTRY[-SUBDIVISION] ...]
#
# Without mappings it writes the default test map below.  A mapping of
# "CIDR=-" inserts a record without a country (found, but no country).
#
# Real GeoIP databases leave out loopback and other reserved networks; the
# tests talk over 127.0.0.0/8, so the tree is built with
# remove_reserved_networks => 0 and maps single loopback addresses.  A test
# appears to come from another place by binding its client socket to one
# of them (IO::Socket LocalAddr) or through the realip module.

use strict;
use warnings;

use MaxMind::DB::Writer::Tree;

my %default = (
    '127.0.0.1/32' => 'CN-GX',      # Guangxi, China
    '127.0.0.2/32' => 'US-CA',      # California, United States
    '127.0.0.3/32' => 'CN-BJ',      # Beijing, China
    '127.0.0.4/32' => '-',          # in the database, no country
    '10.45.0.0/16' => 'CN-GX',
    '10.11.0.0/16' => 'CN-BJ',
    '10.1.0.0/16'  => 'US',
    # 127.0.0.5 and the rest: not in the database
);

my $out = shift @ARGV
    or die "usage: $0 OUT.mmdb [CIDR=COUNTRY[-SUBDIVISION] ...]\n";

my %map = @ARGV ? map { split /=/, $_, 2 } @ARGV : %default;

my %types = (
    country      => 'map',
    subdivisions => [ 'array', 'map' ],
    iso_code     => 'utf8_string',
    names        => 'map',
    en           => 'utf8_string',
);

my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version               => 6,
    record_size              => 24,
    database_type            => 'datagate-test-country',
    languages                => ['en'],
    description              => { en => 'datagate test GeoIP database' },
    map_key_type_callback    => sub { $types{ $_[0] } },
    remove_reserved_networks => 0,
);

for my $net (sort keys %map) {
    my $v = $map{$net};
    my %rec;
    if ($v ne '-') {
        my ($cc, $sub) = split /-/, $v, 2;
        $rec{country} = { iso_code => $cc, names => { en => $cc } };
        $rec{subdivisions} = [ { iso_code => $sub } ] if defined $sub;
    } else {
        $rec{names} = { en => 'no country' };
    }
    $tree->insert_network($net, \%rec);
}

open my $fh, '>:raw', "$out.tmp" or die "$out.tmp: $!\n";
$tree->write_tree($fh);
close $fh or die "$out.tmp: $!\n";
rename "$out.tmp", $out or die "$out: $!\n";
