# The documentation names what the code has, and only that: every nginx
# directive and variable (from the module's command and variable tables),
# every reason code with its HTTP status and every masking method (from
# the core, through its public functions), every policy key (from the
# policy loader's own "expected one of" answers), every command of the
# `datagate` tool and every statistics metric appears in docs/; each
# row of the tables in docs/reference.md names something that exists;
# and no document sends the reader outside the repository.  No nginx
# needed.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use DGTest qw($TOP $CLI);

my $dir = tempdir('dgdocs-XXXXXX', TMPDIR => 1, CLEANUP => 1);

sub slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or die "$f: $!";
    local $/;
    return scalar <$fh>;
}

my @docs = sort glob "$TOP/docs/*.md";
my %doc = map { $_ => slurp($_) } @docs;
my $all = join "\n", values %doc;
my $ref = slurp("$TOP/docs/reference.md");

# the rows of one "## TITLE" table of docs/reference.md: first cells
sub ref_rows {
    my ($title) = @_;
    my ($sec) = $ref =~ /^## \Q$title\E\n(.*?)(?=^## |\z)/ms
        or die "docs/reference.md has no section \"$title\"";
    my @rows;
    for my $l (split /\n/, $sec) {
        next unless $l =~ /^\| (.*?) \| (.*?) \|/;
        my ($first, $second) = ($1, $2);
        next if $first =~ /^-+$/ || $l =~ /^\|---/;
        push @rows, [$first, $second];
    }
    return @rows;
}

# names in backticks in a cell: `a`, `b (x)` -> a, b
sub ticked {
    my ($cell) = @_;
    return $cell =~ /`([^`]+)`/g;
}

# --- directives and variables, from the module's tables --------------------

my (%directive, %variable);

for my $f (glob "$TOP/module/*.c") {
    my $src = slurp($f);
    while ($src =~ /ngx_command_t\s+\w+\[\]\s*=\s*\{(.*?)ngx_null_command/gs) {
        my $t = $1;
        $directive{$1} = 1 while $t =~ /ngx_string\("([^"]+)"\)/g;
    }
    while ($src =~ /ngx_http_variable_t\s+\w+\[\]\s*=\s*\{(.*?)
                    ngx_http_null_variable/gsx)
    {
        my $t = $1;
        $variable{$1} = 1 while $t =~ /ngx_string\("([^"]+)"\)/g;
    }
}

cmp_ok(scalar(keys %directive), '>=', 10, 'directives read from the module')
    or diag('no ngx_command_t table found in module/*.c');
cmp_ok(scalar(keys %variable), '>=', 5, 'variables read from the module');

my %dir_row;
for my $r (ref_rows('nginx directives')) {
    my ($name) = $r->[0] =~ /^`(\w+)/ or next;
    $dir_row{$name} = $r->[1];
}

for my $d (sort keys %directive) {
    ok(exists $dir_row{$d},
       "directive $d has a row in docs/reference.md");
}
for my $d (sort keys %dir_row) {
    ok($directive{$d}, "docs/reference.md: directive $d exists in the code");
}

my %var_row = map { ($_->[0] =~ /^`\$(\w+)`/) ? ($1 => 1) : () }
              ref_rows('nginx variables');
for my $v (sort keys %variable) {
    ok($var_row{$v}, "variable \$$v has a row in docs/reference.md");
}
for my $v (sort keys %var_row) {
    ok($variable{$v}, "docs/reference.md: variable \$$v exists in the code");
}

# --- reason codes and masking methods, from the core ------------------------

my $lib = "$TOP/build/libdgcore.a";

SKIP: {
    skip "$lib not built", 1 unless -f $lib;

    my $c = "$dir/names.c";
    open my $fh, '>', $c or die;
    print $fh <<'C';
#include <stdio.h>
#include "dg_policy.h"
#include "dg_mask.h"

int
main(void)
{
    unsigned     i;
    const char  *m;

    for (i = 0; i < DG_R_MAX; i++) {
        printf("reason %s %d\n", dg_reason_code(i), dg_reason_status(i));
    }

    for (i = 0; i < 256; i++) {
        m = dg_mask_method_name(i);
        if (m == NULL) {
            break;
        }
        printf("method %s\n", m);
    }

    return 0;
}
C
    close $fh;

    my $cc = $ENV{CC} || 'cc';
    my $out = `$cc -std=gnu99 -I$TOP/module/core -o $dir/names $c $lib \\
               -lyaml -lcrypto -lhiredis -lz -lm 2>&1`;
    is($?, 0, 'a program listing the core\'s reason codes and methods builds')
        or diag($out);
    my $names = `$dir/names`;

    my (%status, %method);
    for (split /\n/, $names) {
        $status{$1} = $2 if /^reason (\S+) (\d+)$/;
        $method{$1} = 1 if /^method (\S+)$/;
    }
    delete $status{ok};

    cmp_ok(scalar(keys %status), '>=', 20, 'reason codes read from the core');
    cmp_ok(scalar(keys %method), '>=', 10,
           'masking methods read from the core');

    my %reason_row;
    for my $r (ref_rows('Reason codes')) {
        my ($code) = $r->[0] =~ /^`(\w+)`$/ or next;
        my ($st) = $r->[1] =~ /^(\d+)/;
        $reason_row{$code} = $st;
    }
    for my $code (sort keys %status) {
        is($reason_row{$code}, $status{$code},
           "reason $code is in docs/reference.md with status $status{$code}");
    }
    for my $code (sort keys %reason_row) {
        ok(exists $status{$code},
           "docs/reference.md: reason code $code exists in the core");
    }

    my %method_row;
    for my $r (ref_rows('Masking methods')) {
        $method_row{ (/^(\w+)/)[0] } = 1 for ticked($r->[0]);
    }
    for my $m (sort keys %method) {
        ok($method_row{$m}, "masking method $m has a row in docs/reference.md");
    }
    for my $m (sort keys %method_row) {
        ok($method{$m}, "docs/reference.md: masking method $m exists");
    }
}

# --- policy keys, as the policy loader names them ---------------------------

SKIP: {
    skip "$CLI not built", 1 unless -x $CLI;

    my $ids = 'purposes: {p: {}}
consumers: [{id: c, cert: {subject: "CN=x"}, clearance: 1}]
datasets: [{id: d, share: conditional, level: 1}]
';
    # where an unknown key goes, and the path the reference writes
    my @sections = (
        ['',                   "zzzz: 1\n"],
        ['classes.ID.',        "classes: {a: {level: 1, zzzz: 1}}\n"],
        ['purposes.ID.',       "purposes: {p: {zzzz: 1}}\n"],
        ['consumers[].',       "consumers: [{id: c, zzzz: 1}]\n"],
        ['consumers[].cert.',  "consumers: [{id: c, cert: {zzzz: 1}}]\n"],
        ['consumers[].geo.',   "consumers: [{id: c, cert: {subject: \"CN=x\"},"
                               . " clearance: 1, geo: {zzzz: 1}}]\n"],
        ['datasets[].',        "datasets: [{id: d, zzzz: 1}]\n"],
        ['grants[].',          "grants: [{zzzz: 1}]\n"],
        ['grants[].valid.',    $ids . "grants: [{consumer: c, dataset: d,"
                               . " purposes: [p], valid: {zzzz: 1}}]\n"],
        ['datasets[].abuse.',  "datasets: [{id: d, share: conditional,"
                               . " level: 1, abuse: {zzzz: 1}}]\n"],
        ['datasets[].abuse.volume.',
                               "datasets: [{id: d, share: conditional,"
                               . " level: 1, abuse: {volume: {zzzz: 1}}}]\n"],
        ['grants[].abuse.',    $ids . "grants: [{consumer: c, dataset: d,"
                               . " purposes: [p], abuse: {zzzz: 1}}]\n"],
        ['grants[].abuse.volume.',
                               $ids . "grants: [{consumer: c, dataset: d,"
                               . " purposes: [p], abuse: {volume:"
                               . " {zzzz: 1}}}]\n"],
    );

    my %key_row = map { ($_ => 1) } map { ticked($_->[0]) }
                  ref_rows('Policy keys');
    my %known;
    my $schema = slurp("$TOP/policy/schema.md");

    for my $s (@sections) {
        my ($prefix, $yaml) = @$s;
        my $f = "$dir/keys.yaml";
        open my $fh, '>', $f or die;
        print $fh $yaml;
        close $fh;
        my $out = `$CLI policy check $f 2>&1`;
        my ($list) = $out =~ /unknown key 'zzzz' \(expected one of: ([^)]*)\)/;
        ok(defined $list, "the loader names the keys of "
           . ($prefix eq '' ? 'the top level' : $prefix))
            or do { diag($out); next };
        for my $k (split /,\s*/, $list) {
            my $path = $prefix . $k;
            $known{$path} = 1;
            ok($key_row{$path}, "policy key $path has a row in "
               . "docs/reference.md");
            like($schema, qr/`\Q$k\E`/, "policy key $k is in policy/schema.md");
        }
    }

    for my $path (sort keys %key_row) {
        ok($known{$path}, "docs/reference.md: policy key $path exists");
    }
}

# --- the datagate commands ---------------------------------------------------

SKIP: {
    skip "$CLI not built", 1 unless -x $CLI;

    # the synopsis of --help and the usage block of the Redis commands
    my $main = `$CLI --help 2>&1`;
    my $redis = `$CLI grant --help 2>&1`;
    my ($syn) = $main =~ /^SYNOPSIS\n(.*?)^\S/ms;
    my ($use) = $redis =~ /^(usage:.*?)\n\n/ms;
    my $text = ($syn // '') . ($use // '');

    my %cmd;
    $cmd{"$1 $2"} = 1 while $text =~ /datagate ([a-z]+) ([a-z]+)/g;
    $cmd{"$1 $2"} = 1 while $text =~ /\|\s*(un[a-z]+) ([a-z]+)/g;
    $cmd{"$1 $2"} = 1 while $text =~ /datagate ([a-z]+) [a-z]+ \| ([a-z]+)/g;
    # a command of one word, options next: "datagate report [--from ..."
    $cmd{$1} = 1 while $text =~ /datagate ([a-z]+) \[/g;

    cmp_ok(scalar(keys %cmd), '>=', 10, 'commands read from datagate --help');
    for my $c (sort keys %cmd) {
        like($ref, qr/`datagate \Q$c\E\b/,
             "command datagate $c is in docs/reference.md");
    }
}

# --- statistics metrics ------------------------------------------------------

my %metric;
for my $f (glob "$TOP/module/*status*.c") {
    my $src = slurp($f);
    $metric{$1} = 1
        while $src =~ /"(?:# HELP )?(datagate_[a-z0-9_]+)[" {]/g;
}
delete $metric{$_} for keys %directive;
cmp_ok(scalar(keys %metric), '>=', 10, 'metrics read from the status code');
for my $m (sort keys %metric) {
    like($all, qr/`\Q$m\E`/, "metric $m is in docs/");
}

# --- nothing outside the repository ----------------------------------------

my @files = (@docs, map { "$TOP/$_" } qw(README.md policy/schema.md
             certs/README.md test-nginx/README.md config/nginx.conf
             config/conf.d/datagate.conf config/demo.nginx.conf.template
             third_party/nginx/README.md));
for my $f (@files) {
    next unless -f $f;
    my $text = slurp($f);
    (my $name = $f) =~ s{^\Q$TOP\E/}{};
    my @out;
    for my $re (qr/\bSPEC(?:\.md)?\b/, qr/shared folder/i, qr/\bteam's\b/i,
                qr/\bissue \d/i, qr/\bsessions?\b(?! cache| timeout)/i,
                qr/PERFORMANCE\.md|ARCHITECTURE\.md|STYLE\.md/)
    {
        push @out, $1 while $text =~ /(.{0,30}$re.{0,30})/g;
    }
    is_deeply(\@out, [], "$name refers to nothing outside the repository");
}

# every docs/…, policy/…, scripts/… path a document names exists
for my $f (@files) {
    my $text = slurp($f);
    (my $name = $f) =~ s{^\Q$TOP\E/}{};
    my %miss;
    while ($text =~ m{(?<![\w/.])((?:docs|policy|certs|config|scripts
                                   |test-nginx|module)/[\w./-]*\w)}gx)
    {
        my $p = $1;
        next if $p =~ /[*]/;
        $miss{$p} = 1 unless -e "$TOP/$p" || glob("$TOP/$p*");
    }
    is_deeply([sort keys %miss], [], "$name names only paths that exist");
}

done_testing();
