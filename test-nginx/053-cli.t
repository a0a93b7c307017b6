# `datagate audit verify`: usage, --help and exit codes (0 intact, 1 broken,
# 2 usage, 3 unreadable), against chains written here by an independent
# implementation of docs/audit.md (Digest::SHA, and openssl for SM3): no
# nginx needed.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use DGTest qw(:DEFAULT $CLI);

plan skip_all => "$CLI not built" unless -x $CLI;

my $dir = tempdir('dgcli-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub sm3_hex {
    my ($data) = @_;
    my $f = "$dir/sm3.in";
    open my $fh, '>:raw', $f or die;
    print $fh $data;
    close $fh;
    my $out = `openssl dgst -sm3 -r $f`;
    my ($h) = $out =~ /^([0-9a-f]{64})/ or die "openssl dgst -sm3: $out";
    return $h;
}

# records as docs/audit.md defines them
sub chain {
    my (%o) = @_;
    my $prev = $o{prev} // '0' x 64;
    my $seq = $o{seq} // 1;
    my $alg = $o{alg} // 'sha256';
    my @l;
    for my $i (1 .. $o{n}) {
        my $t = qq({"seq":$seq,"consumer":"c$i","uri":"/p?q=\\"$i\\"",)
              . qq("masked":{"person.name":$i},"alg":"$alg","prev":"$prev"});
        my $h = $alg eq 'sm3' ? sm3_hex($prev . $t) : sha256_hex($prev . $t);
        (my $line = $t) =~ s/\}\z/,"hash":"$h"}/;
        push @l, "$line\n";
        $prev = $h;
        $seq++;
    }
    return @l;
}

sub put {
    my ($name, @l) = @_;
    my $f = "$dir/$name";
    open my $fh, '>:raw', $f or die;
    print $fh @l;
    close $fh;
    return $f;
}

sub dg { return run_cmd($CLI, @_) }

my ($rc, $out);

# --- usage ---------------------------------------------------------------------

($rc, $out) = dg('audit', '--help');
is($rc, 0, 'audit --help: exit 0');
like($out, qr/^Usage: datagate audit verify \[--head HASH\] \[--quiet\] FILE\.\.\./m,
     'audit --help: usage line');
like($out, qr/Exit status:.*0 .*1 .*2 .*3 /s, 'audit --help: exit codes');

($rc, $out) = dg('audit', 'verify', '--help');
is($rc, 0, 'audit verify --help: exit 0');
like($out, qr/oldest first/, 'audit verify --help: explains the order');

($rc, $out) = dg('audit', 'verify', '-h');
is($rc, 0, 'audit verify -h: exit 0');

($rc, $out) = dg('audit');
is($rc, 2, 'audit without a command: exit 2');
like($out, qr/Usage:/, 'audit without a command: usage');

($rc, $out) = dg('audit', 'check');
is($rc, 2, 'unknown audit command: exit 2');
like($out, qr/unknown command "check"/, 'unknown audit command: named');

($rc, $out) = dg('audit', 'verify');
is($rc, 2, 'verify without files: exit 2');
like($out, qr/no file given/, 'verify without files: says so');

($rc, $out) = dg('audit', 'verify', '--frobnicate', 'x');
is($rc, 2, 'unknown option: exit 2');
like($out, qr/unknown option "--frobnicate"/, 'unknown option: named');

($rc, $out) = dg('audit', 'verify', '--head', 'abc', 'x');
is($rc, 2, 'bad --head: exit 2');

($rc, $out) = dg('audit', 'verify', "$dir/missing.log");
is($rc, 3, 'missing file: exit 3');
like($out, qr/missing\.log: No such file or directory/, 'missing file: named');

# --- intact chains -----------------------------------------------------------------

my @c = chain(n => 6);
my $f = put('good.log', @c);
($rc, $out) = dg('audit', 'verify', $f);
is($rc, 0, 'intact chain: exit 0') or diag($out);
like($out, qr/^ok: 1 file, 6 records, seq 1\.\.6, sha256$/m, 'summary');
like($out, qr/^first: seq 1 prev 0{64} \(start of the chain\)$/m,
     'genesis named');
my ($head) = $c[-1] =~ /"hash":"([0-9a-f]{64})"/;
like($out, qr/^last:  \S+good\.log:6 seq 6 hash $head$/m, 'last record');

($rc, $out) = dg('audit', 'verify', '--quiet', $f);
is($rc, 0, '--quiet: exit 0');
is($out, '', '--quiet: silent');

($rc, $out) = dg('audit', 'verify', '--head', uc $head, $f);
is($rc, 0, '--head (any case): exit 0') or diag($out);

($rc, $out) = dg('audit', 'verify', "--head=$head", $f);
is($rc, 0, '--head=HASH: exit 0') or diag($out);

my $a = put('a.log', @c[0 .. 2]);
my $b = put('b.log', @c[3 .. 5]);
($rc, $out) = dg('audit', 'verify', $a, $b);
is($rc, 0, 'two files in order: exit 0') or diag($out);
like($out, qr/ok: 2 files, 6 records/, 'two files: summary');
($rc, $out) = dg('audit', 'verify', $b);
is($rc, 0, 'a later file alone: exit 0');
like($out, qr/continues an older file/, 'a later file alone: says so');
($rc, $out) = dg('audit', 'verify', $b, $a);
is($rc, 1, 'two files out of order: exit 1');
like($out, qr/a\.log:1: .*seq 1 after seq 6/, 'out of order: where')
    or diag($out);
($rc, $out) = dg('audit', 'verify', $a, put('c.log', @c[4 .. 5]));
is($rc, 1, 'a file missing in between: exit 1');
like($out, qr/c\.log:1: record\(s\) missing before this line: seq 5 follows seq 3 \(\S+a\.log:3\); no record with seq 4 follows: removed/,
     'file missing: reported at the first line of the later file')
    or diag($out);

my $sm = put('sm3.log', chain(n => 3, alg => 'sm3'));
($rc, $out) = dg('audit', 'verify', $sm);
is($rc, 0, 'SM3 chain: exit 0') or diag($out);
like($out, qr/3 records, seq 1\.\.3, sm3/, 'SM3 chain: named');

my $mixed = put('mixed.log', @c[0 .. 2],
                chain(n => 2, seq => 4, alg => 'sm3',
                      prev => ($c[2] =~ /"hash":"([0-9a-f]{64})"/)[0]));
($rc, $out) = dg('audit', 'verify', $mixed);
is($rc, 0, 'a chain that switches to SM3 (reload with hash=sm3)')
    or diag($out);

($rc, $out) = dg('audit', 'verify', put('empty.log'));
is($rc, 0, 'empty file: exit 0');
like($out, qr/no records/, 'empty file: says so');

($rc, $out) = dg('audit', 'verify', '--head', $head, put('empty2.log'));
is($rc, 1, 'empty file with --head: exit 1');

# --- broken chains ------------------------------------------------------------------

my @x = @c;
$x[2] =~ s/"consumer":"c3"/"consumer":"c9"/;
($rc, $out) = dg('audit', 'verify', put('edited.log', @x));
is($rc, 1, 'edited: exit 1');
like($out, qr/^\S+edited\.log:3: record edited: seq 3 does not match its hash$/m,
     'edited: line 3');

@x = @c;
splice @x, 1, 1;
($rc, $out) = dg('audit', 'verify', put('removed.log', @x));
is($rc, 1, 'removed: exit 1');
like($out, qr/removed\.log:2: record\(s\) missing .* removed$/m,
     'removed: line 2');

@x = @c;
@x[3, 4] = @x[4, 3];
($rc, $out) = dg('audit', 'verify', put('swapped.log', @x));
is($rc, 1, 'reordered: exit 1');
like($out, qr/swapped\.log:4: .*the record with seq 4 is at \S+swapped\.log:5: records reordered$/m,
     'reordered: line 4, the missing one at 5');

@x = @c;
splice @x, 4, 0, $c[1];
($rc, $out) = dg('audit', 'verify', put('dup.log', @x));
is($rc, 1, 'inserted copy: exit 1');
like($out, qr/dup\.log:5: record inserted: a copy of seq 2 \(line 2\)/,
     'inserted copy: line 5');

@x = @c;
$x[-1] =~ s/\n\z//;
$x[-1] = substr($x[-1], 0, 40);
($rc, $out) = dg('audit', 'verify', put('torn.log', @x));
is($rc, 1, 'torn last line: exit 1');
like($out, qr/torn\.log:6: not an audit record: .*incomplete line/,
     'torn last line: line 6');

@x = @c;
$x[-1] =~ s/\n\z//;
($rc, $out) = dg('audit', 'verify', put('nolf.log', @x));
is($rc, 0, 'a complete last record without LF still verifies') or diag($out);

@x = @c;
$x[1] = "\0\0garbage\0\n";
($rc, $out) = dg('audit', 'verify', put('nul.log', @x));
is($rc, 1, 'NUL bytes: exit 1');
like($out, qr/nul\.log:2: not an audit record/, 'NUL bytes: line 2');

@x = @c;
splice @x, 2, 0, ('x' x (1024 * 1024 + 10)) . "\n";
($rc, $out) = dg('audit', 'verify', put('long.log', @x));
is($rc, 1, 'an endless line: exit 1');
like($out, qr/long\.log:3: not an audit record/, 'endless line: line 3');

@x = @c;
splice @x, 3, 0, "\n";
($rc, $out) = dg('audit', 'verify', put('blank.log', @x));
is($rc, 1, 'blank line: exit 1');
like($out, qr/blank\.log:4: empty line/, 'blank line: line 4');

# the hash member must be last and exact
@x = @c;
$x[0] =~ s/,"hash":("[0-9a-f]{64}")\}/,"hash": $1}/;
($rc, $out) = dg('audit', 'verify', put('space.log', @x));
is($rc, 1, 'reformatted record: exit 1');
like($out, qr/space\.log:1: not an audit record/, 'reformatted: line 1');

done_testing();
