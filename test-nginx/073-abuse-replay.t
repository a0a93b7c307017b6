# The false-alarm replay: scripts/traffic-replay writes a seeded model of
# ordinary traffic (clerks' desks with daily peaks, a service hall,
# nightly batch jobs) with six scrapers in it, and `datagate abuse replay`
# runs it through the detectors the gateway runs: at most 1 % of the
# ordinary consumer-hours raise an alarm, and every scraper (sequential,
# random, slow, lists, strides, noise between the steps) is flagged
# within 50 of its requests.  The same seed writes the same trace; a
# policy with thresholds too tight is caught raising false alarms.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::MD5 qw(md5_hex);
use DGTest qw(:DEFAULT $CLI $TOP);

my $dir = DGTest::base_dir() . '/replay';
my @gen = ("$TOP/scripts/traffic-replay", '--seed', 11, '--weeks', 3,
           '--desks', 8, '--batches', 2);

my ($rc, $out) = run_cmd(@gen, '--out', "$dir-a");
is($rc, 0, 'scripts/traffic-replay') or diag($out);
{
    my @small = ("$TOP/scripts/traffic-replay", '--seed', 5, '--weeks', 1,
                 '--desks', 2, '--batches', 1);
    run_cmd(@small, '--out', "$dir-b");
    run_cmd(@small, '--out', "$dir-c");
    my $t = DGTest::slurp("$dir-b/trace");
    ok(length $t > 10000 && md5_hex($t)
                            eq md5_hex(DGTest::slurp("$dir-c/trace")),
       'the same seed, the same trace');
}
($rc, $out) = run_cmd($CLI, 'policy', 'check', "$dir-a/policy.yaml");
is($rc, 0, 'its policy loads') or diag($out);

($rc, $out) = run_cmd($CLI, 'abuse', 'replay', '--policy',
                      "$dir-a/policy.yaml", '--max-false', 1, '--within', 50,
                      "$dir-a/trace");
is($rc, 0, 'the goals are met (exit 0)') or diag($out);
note($out);

my ($hours, $pct) = $out =~ /^ordinary traffic: (\d+) consumer-hours, \d+ with an alarm: ([\d.]+) %/m;
ok($hours && $hours > 2000, "ordinary traffic: $hours consumer-hours");
ok(defined $pct && $pct <= 1, "false alarms: $pct % of them (at most 1 %)");

my %flagged = $out =~ /^  scraper:(\w+): flagged at its request (\d+) /mg;
is(scalar keys %flagged, 6, 'all six scrapers are flagged');
for my $s (qw(seq rand slow list stride mixed)) {
    ok(($flagged{$s} // 1e9) <= 50,
       "scraper $s: flagged at its request " . ($flagged{$s} // 'never'));
}
like($out, qr/^  scraper:seq: flagged at its request 11 of \d+ \(sequential\)/m,
     'a sequential walk: at its 11th id (sequential: 10)');

# a policy whose distinct threshold is below what clerks do: caught
{
    my $p = DGTest::slurp("$dir-a/policy.yaml");
    $p =~ s/distinct: 45\/10m/distinct: 6\/10m/g;
    DGTest::spew("$dir-a/tight.yaml", $p);
    ($rc, $out) = run_cmd($CLI, 'abuse', 'replay', '--policy',
                          "$dir-a/tight.yaml", '--max-false', 1,
                          "$dir-a/trace");
    is($rc, 1, 'distinct: 6/10m: the goal is missed (exit 1)')
        or diag($out);
    my ($tight) = $out =~ /with an alarm: ([\d.]+) %/;
    ok(($tight // 0) > 1, "it raises alarms on " . ($tight // '?')
       . ' % of the consumer-hours');
}

# usage and bad input
($rc, $out) = run_cmd($CLI, 'abuse', 'replay', "$dir-a/trace");
is($rc, 2, 'no --policy: usage');
($rc, $out) = run_cmd($CLI, 'abuse', 'replay', '--policy',
                      "$dir-a/policy.yaml", "$dir-a/none");
is($rc, 3, 'a missing trace: exit 3');
{
    DGTest::spew("$dir-a/bad", "x y z\n1 nobody population.person /p/1\n");
    ($rc, $out) = run_cmd($CLI, 'abuse', 'replay', '--policy',
                          "$dir-a/policy.yaml", "$dir-a/bad");
    like($out, qr/0 requests \(0 labelled, 2 lines skipped\)/,
         'malformed lines and unknown consumers are skipped and counted');
}

done_testing();
