# The Debian packaging states no fact of its own (docs/build.md, "Debian
# packages"): debian/changelog's version is module/core/dg_version.h's,
# debian/copyright's licence is LICENSE, and the manual page that
# datagate-tools ships (scripts/make-manpage) is the tool's own help, every
# command in it.  `make test-deb` builds, installs and purges the packages
# themselves; this file needs neither nginx nor root.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest qw(:DEFAULT $TOP $CLI);

plan skip_all => "$CLI not built" unless -x $CLI;

my ($rc, $version) = run_cmd('make', '-s', '--no-print-directory', '-C',
                             $TOP, 'version');
chomp $version;
like($version, qr/^\d+\.\d+\.\d+/, "make version: $version");

# --- debian/changelog ---------------------------------------------------------

my $changelog = DGTest::slurp("$TOP/debian/changelog");
my ($source, $deb_version, $dist) =
    $changelog =~ /\A(\S+) \(([^)]+)\) (\S+);/;
is($source, 'datagate', 'debian/changelog: source datagate');
like($deb_version, qr/^\Q$version\E(?:[+~].*)?$/,
     "debian/changelog: version $deb_version is dg_version.h's $version")
    or diag('change module/core/dg_version.h and debian/changelog together');
like($changelog, qr/^ -- .+ <[^>]+>  \w{3}, \d\d \w{3} \d{4} /m,
     'debian/changelog: a trailer line');

# --- debian/copyright ---------------------------------------------------------

# the licence paragraph, as text: one leading space off, " ." an empty line
my $copyright = DGTest::slurp("$TOP/debian/copyright");
my ($para) = $copyright =~ /^License: BSD-2-clause\n((?: .*\n)+)/m;
ok(defined $para, 'debian/copyright: a BSD-2-clause licence paragraph');
$para //= '';
$para =~ s/^ \.$//mg;
$para =~ s/^ //mg;
my $license = DGTest::slurp("$TOP/LICENSE");
$license =~ s/\A(?:.*\n){3}//;         # the copyright line, the rights, blank
is($para, $license, 'debian/copyright: the licence text is LICENSE\'s');
like(DGTest::slurp("$TOP/LICENSE"), qr/^Copyright \(c\) (\d{4}) (.+)$/m,
     'LICENSE: a copyright line');
my ($year, $holder) = DGTest::slurp("$TOP/LICENSE")
    =~ /^Copyright \(c\) (\d{4}) (.+)$/m;
like($copyright, qr/^Copyright: \Q$year $holder\E$/m,
     "debian/copyright: Copyright: $year $holder, as LICENSE");

# --- the manual page ----------------------------------------------------------

($rc, my $man) = run_cmd('perl', "$TOP/scripts/make-manpage", $CLI);
is($rc, 0, 'scripts/make-manpage: exit 0');
like($man, qr/^\.TH DATAGATE 1 "" "datagate \Q$version\E"/m,
     'manual page: datagate(1), the version');
like($man, qr/^\.SH "NAME"\ndatagate \\- \S/m,
     'manual page: a whatis line "datagate \- ..."');

# roff text back to plain: what a reader sees
(my $text = $man) =~ s/\\-/-/g;
$text =~ s/\\e/\\/g;
$text =~ s/\\&//g;

# every command of `datagate --help` has its help on the page, every
# command line of it
($rc, my $main) = run_cmd($CLI, '--help');
is($rc, 0, 'datagate --help: exit 0');
my ($synopsis) = $main =~ /^SYNOPSIS\n(.*?)^\S/ms;
my %cmd = map { $_ => 1 } ($synopsis // '') =~ /\bdatagate ([a-z]+)/g;
cmp_ok(scalar(keys %cmd), '>=', 5, 'datagate --help: its commands')
    or diag($main);
my @helps = (['--help'], map { [$_, '--help'] } sort keys %cmd);
for my $h (@helps) {
    ($rc, my $out) = run_cmd($CLI, @$h);
    is($rc, 0, "datagate @$h: exit 0");
    my @lines = $out =~ /^\s*(?:usage:\s*)?(datagate [a-z][^\n]*?)\s*$/mgi;
    ok(@lines, "datagate @$h: command lines found");
    my @missing = grep { index($text, $_) < 0 } @lines;
    is("@missing", '', "manual page: every command line of datagate @$h");
}

for my $sec ('SYNOPSIS', 'DESCRIPTION', 'EXIT STATUS', 'COMMANDS') {
    like($man, qr/^\.SH "?\Q$sec\E"?$/m, "manual page: section $sec");
}

# rendered without a complaint from groff, when man is there
SKIP: {
    skip 'no man(1)', 1 if system('man --version >/dev/null 2>&1') != 0;
    my $f = DGTest::base_dir() . '/datagate.1';
    DGTest::spew($f, $man);
    my $warn = `LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z '$f' 2>&1 >/dev/null`;
    is($warn, '', 'manual page: groff has no warning');
}

done_testing();
