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

# --- grant add: a run-time grant the gateways would refuse is never stored -
#
# Redis is a closed port here: a grant that passes the policy check fails
# only when it is written (exit 3), one that does not is refused before
# (exit 1), so nothing is ever written.

{
    my $policy = put('grant-policy.yaml', <<'Y');
purposes:
  p: {name: P}
consumers:
  - {id: c1, cert: {subject: "CN=c1"}, clearance: 2}
  - {id: c0, cert: {subject: "CN=c0"}, clearance: 0}
datasets:
  - {id: cond, share: conditional, level: 3, fields: {name: n}}
  - {id: open, share: unconditional, level: 1, methods: [GET, HEAD, POST]}
  - {id: secret, share: none, level: 4}
classes:
  n: {level: 3, mask: name}
Y
    my $secret = put('grant.secret', 'k' x 40);
    chmod 0600, $secret;
    my $dead = DGTest::free_port();
    local $ENV{DATAGATE_POLICY};
    delete $ENV{DATAGATE_POLICY};

    my $add = sub {
        my ($yaml, @more) = @_;
        my $f = put('grant.yaml', $yaml);
        return dg('grant', 'add', $f, '--secret', $secret,
                  '--redis', "127.0.0.1:$dead", @more);
    };
    my $g = "dataset: cond\npurposes: [p]\nvalid: {until: 2099-12-31}\n";

    my @refused = (
        ['an unknown consumer', "consumer: nobody\n$g",
         qr/grant:1: grant\.consumer: unknown consumer 'nobody'/],
        ['an unknown dataset', "consumer: c1\ndataset: kond\n"
         . "purposes: [p]\n", qr/unknown dataset 'kond' \(did you mean 'cond'\?\)/],
        ['a share: none dataset', "consumer: c1\ndataset: secret\n"
         . "purposes: [p]\n", qr/share: none/],
        ['an unknown purpose', "consumer: c1\ndataset: cond\n"
         . "purposes: [p, x]\n", qr/unknown purpose 'x'/],
        ['an expired grant', "consumer: c1\n$g"
         =~ s/2099-12-31/2021-06-30/r,
         qr/grant\.valid\.until: the grant ended with 2021-06-30 \(UTC\+8\); refused: the gateways would answer grant_expired/],
        ['a method the dataset does not allow', "consumer: c1\n$g"
         . "methods: [POST]\n", qr/method POST is not allowed on dataset 'cond'/],
        ['a reveal of no field', "consumer: c1\n$g" . "reveal: [x]\n",
         qr/'x' is not a field of dataset 'cond'/],
        ['a bad date', "consumer: c1\ndataset: cond\npurposes: [p]\n"
         . "valid: {until: 2024-02-30}\n", qr/bad date '2024-02-30'/],
        ['an unknown key', "consumer: c1\n$g" . "ratee: 1r/s\n",
         qr/unknown key 'ratee'/],
        ['unconditional, clearance below the level', "consumer: c0\n"
         . "dataset: open\npurposes: [p]\nrate: 1r/s\n",
         qr/clearance 0, below level 1 of unconditional dataset 'open'/],
        ['unconditional, adding nothing', "consumer: c1\ndataset: open\n"
         . "purposes: [p]\n", qr/would have no effect/],
        ['two documents', "consumer: c1\n$g---\nconsumer: c1\n",
         qr/one YAML document/],
        ['a list', "- consumer: c1\n", qr/a grant is one mapping/],
    );

    for my $c (@refused) {
        my ($what, $yaml, $re) = @$c;
        my ($rc, $out) = $add->($yaml, '--policy', $policy);
        is($rc, 1, "grant add, $what: refused (exit 1)") or diag($out);
        like($out, $re, "grant add, $what: says why") or diag($out);
        unlike($out, qr/redis/i, "grant add, $what: Redis never asked");
    }

    my ($rc, $out) = $add->("consumer: c1\n$g", '--policy', $policy);
    is($rc, 3, 'a good grant passes the check (then Redis is closed)');
    like($out, qr/redis 127\.0\.0\.1:$dead/, '... the error is Redis\'s');

    ($rc, $out) = $add->("consumer: c1\ndataset: open\npurposes: [p]\n"
                         . "methods: [POST]\nquota: 5/day\n",
                         '--policy', $policy);
    is($rc, 3, 'a grant on an unconditional dataset passes the check');
    like($out, qr/warning: \S+ has no valid\.until/,
         '... with a warning: no valid.until');

    # the policy comes from --policy, else $DATAGATE_POLICY, else the
    # default path; without one nothing is written
    SKIP: {
        skip '/etc/datagate/policy/ exists here', 2
            if -e '/etc/datagate/policy/';
        ($rc, $out) = $add->("consumer: c1\n$g");
        is($rc, 3, 'no policy: refused (exit 3)');
        like($out, qr{/etc/datagate/policy/.*\n.*give it with --policy PATH}s,
             'no policy: names the default and how to give one');
    }
    {
        local $ENV{DATAGATE_POLICY} = $policy;
        ($rc, $out) = $add->("consumer: nobody\n$g");
        is($rc, 1, '$DATAGATE_POLICY: the grant is checked against it');
        like($out, qr/policy \Q$policy\E/, '... and the refusal names it');
    }
    ($rc, $out) = $add->("consumer: c1\n$g", '--policy', put('broken.yaml',
                                                             "datasets: 1\n"));
    is($rc, 3, 'a policy that does not load: exit 3');
    like($out, qr/broken\.yaml:1: datasets: /, '... with its error');

    ($rc, $out) = dg('grant', 'remove', 'c|1', 'cond', '--redis',
                     "127.0.0.1:$dead");
    is($rc, 2, 'grant remove: a bad id is a usage error');
}

# --- policy check: dataset methods, rate and quota -------------------------

for my $c (
    ["    rate: 10r/h\n", qr/bad\.yaml:5: datasets\[0\]\.rate: bad rate '10r\/h'/],
    ["    quota: 10/week\n", qr/bad\.yaml:5: datasets\[0\]\.quota: bad quota '10\/week'/],
    ["    methods: [GET, \"P OST\"]\n", qr/bad\.yaml:5: datasets\[0\]\.methods: bad method 'P OST'/],
    ["    methods: [GET, HEAD, GET]\n", qr/bad\.yaml:5: datasets\[0\]\.methods: method GET is listed twice/],
)
{
    my ($line, $re) = @$c;
    my $f = put('bad.yaml', "purposes: {p: {}}\ndatasets:\n"
                . "  - id: d\n    share: unconditional\n" . $line
                . "    level: 1\n");
    my ($rc, $out) = dg('policy', 'check', $f);
    is($rc, 1, "policy check: $line refused");
    like($out, $re, "policy check: file, line and field");
}

# --- policy explain: methods, grants on unconditional datasets, limits ----

{
    my $policy = put('explain.yaml', <<'Y');
classes:
  n: {level: 3, mask: name}
  ph: {level: 3, mask: phone}
  o: {level: 1, mask: clear}
purposes:
  p: {name: P}
  q: {name: Q}
consumers:
  - {id: c1, cert: {subject: "CN=c1"}, clearance: 2}
datasets:
  - id: open
    share: unconditional
    level: 1
    fields: {name: n, phone: ph, other: o}
    methods: [GET, HEAD, POST, PROPFIND]
    rate: 10r/s burst=5
    quota: 1000/day
grants:
  - consumer: c1
    dataset: open
    purposes: [p]
    approval: A-1
    methods: [GET]
    reveal: [name]
    drop: [phone]
    rate: 100r/s
Y
    my $ex = sub { dg('policy', 'explain', $policy, '--consumer', 'c1',
                      '--dataset', 'open', @_) };

    my ($rc, $out) = $ex->('--purpose', 'p', '--approval', 'A-1');
    is($rc, 0, 'explain: allowed');
    like($out, qr/methods GET, HEAD, POST, PROPFIND \(grants may narrow them\)/,
         'explain: the dataset\'s methods');
    like($out, qr/limits 10r\/s burst=5, 1000\/day \(each consumer its own budget/,
         'explain: the dataset\'s limits');
    like($out, qr/and this grant applies, adding its methods, reveal, drop and limits:\n\s+grant at \S+explain\.yaml:19/,
         'explain: the grant that applies, with file and line');
    like($out, qr/rate:\s+100r\/s, the grant's; budget c1\|open/,
         'explain: the rate is the grant\'s, in the grant budget');
    like($out, qr/quota:\s+1000\/day, the dataset's \(the grant sets none\); budget dataset:c1\|open/,
         'explain: the quota is the dataset\'s, in the dataset budget');
    like($out, qr/name\s+n\s+3\s+clear\s+level 3 > clearance 2: revealed by grant/,
         'explain: reveal by the grant');
    like($out, qr/phone\s+ph\s+3\s+drop\s+dropped by grant/,
         'explain: drop by the grant');
    like($out, qr/other\s+o\s+1\s+clear\s+level 1 <= clearance 2: clear/,
         'explain: a public (level 1) class whose method is clear');

    ($rc, $out) = $ex->('--purpose', 'p');
    is($rc, 0, 'explain: without the approval still allowed');
    like($out, qr/no grant applies \(a grant only adds and never takes access away\):\n\s+not applied \(no Data-Approval\): grant at/,
         'explain: why the grant does not apply');
    like($out, qr/rate:\s+10r\/s burst=5, the dataset's; budget dataset:c1\|open/,
         'explain: the dataset\'s rate then');

    ($rc, $out) = $ex->('--purpose', 'p', '--at', '2024-05-01',
                        '--method', 'PROPFIND', '--approval', 'A-1');
    is($rc, 1, 'explain: PROPFIND narrowed away by the grant');
    like($out, qr/method_not_granted.*PROPFIND is not among the methods of the grant at/s,
         'explain: names the grant');

    ($rc, $out) = $ex->('--purpose', 'q', '--method', 'PROPFIND');
    is($rc, 0, 'explain: an extension method of the dataset');

    ($rc, $out) = $ex->('--purpose', 'q', '--method', 'DELETE');
    is($rc, 1, 'explain: DELETE denied');
    like($out, qr/DELETE is not among the methods of dataset open \(GET, HEAD, POST, PROPFIND\), at \S+explain\.yaml:11; grants cannot add to them/,
         'explain: the dataset\'s methods, with file and line');

    ($rc, $out) = $ex->('--purpose', 'q', '--method', 'propfind');
    is($rc, 1, 'explain: methods are case-sensitive');
}

# --- a class above level 1 may not be clear -------------------------------

{
    my $policy = put('clear.yaml', <<'Y');
classes:
  o: {level: 2, mask: clear}
purposes:
  p: {name: P}
consumers:
  - {id: c1, cert: {subject: "CN=c1"}, clearance: 1}
datasets:
  - {id: d, share: unconditional, level: 1, fields: {other: o}}
Y
    my ($rc, $out) = dg('policy', 'check', $policy);
    is($rc, 1, 'policy check: a level 2 class that is clear is refused');
    like($out, qr/clear\.yaml:2: classes\.o\.mask: 'clear' would show level 2 data to readers below level 2/,
         'policy check: file, line and why');
}

done_testing();
