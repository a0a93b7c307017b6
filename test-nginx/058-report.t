# `datagate report`: real calls through the gateway, then the report of
# its audit log gives exactly the counts computed here from the records
# themselves, per department, consumer, dataset and purpose; the CSV and
# JSON forms parse and agree; the HTML page renders in headless Chromium
# with no console error and no request but itself, its charts drawn
# (screenshot kept in build/test-output/).  Crafted logs: files merged by
# time whatever their order, dates, unreadable lines, members added
# later, names that would act on a terminal, a spreadsheet or a browser,
# bounded memory under a flood of names, usage errors.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use JSON::PP;
use Time::HiRes qw(sleep time);
use DGTest qw(:DEFAULT $CLI);
use DGBrowser;

binmode(Test::More->builder->$_, ':utf8') for qw(output failure_output);

my $policy = <<'YAML';
levels: {1: 公开, 2: 内部, 3: 敏感, 4: 高敏感}
classes:
  person.id_number: {level: 4, mask: id_card}
  person.name:      {level: 3, mask: name}
  person.phone:     {level: 3, mask: phone}
purposes:
  social-assistance: {name: 社会救助资格核验}
  market-regulation: {name: 市场主体监管}
consumers:
  - id: civil-affairs.assistance
    org: 自治区民政厅
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
  - id: hrss.portal
    org: 自治区人力资源和社会保障厅
    cert: {san: "DNS:hrss.gx.gov.cn"}
    clearance: 3
  - id: housing.registry
    org: 自治区住房和城乡建设厅
    cert: {subject: "CN=housing,O=Housing,C=CN"}
    clearance: 1
datasets:
  - id: population.person
    name: 人口基础信息
    share: conditional
    level: 3
    fields: {id_card: person.id_number, name: person.name, phone: person.phone}
  - id: enterprise.registration
    name: 市场主体登记信息
    share: unconditional
    level: 2
    fields: {legal_rep: person.name, phone: person.phone}
grants:
  - consumer: civil-affairs.assistance
    dataset: population.person
    purposes: [social-assistance]
    approval: GXSJ-2024-0137
    valid: {from: 2024-01-01, until: 2099-12-31}
YAML

my $tmp = tempdir('dgreport-XXXXXX', TMPDIR => 1,
                  CLEANUP => !$ENV{DG_TEST_KEEP});
my $out = "$DGTest::TOP/build/test-output";
make_path($out);

sub slurp_raw {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return '';
    local $/;
    return scalar(<$fh>) // '';
}

sub spew_raw {
    my ($f, $s) = @_;
    open my $fh, '>:raw', $f or die "$f: $!";
    print $fh $s;
    close $fh;
}

# report(ARGS...): exit code, the report (from --output), what it said
sub report {
    my (@args) = @_;
    my $file = "$tmp/report.out";
    unlink $file;
    my ($rc, $said) = run_cmd($CLI, 'report', '--output', $file, @args);
    return ($rc, slurp_raw($file), $said);
}

sub report_json {
    my ($rc, $text, $said) = report('--format', 'json', @_);
    my $j = eval { JSON::PP->new->utf8->decode($text) };
    ok($j, 'the JSON report parses') or diag("$@\n$said\n$text");
    return ($rc, $j, $said);
}

# RFC 4180: rows of cells; quoted cells with "" inside, CRLF rows
sub parse_csv {
    my ($text) = @_;
    utf8::decode($text);
    my (@rows, @row, $cell);
    my $i = 0;
    my $n = length $text;
    return undef unless $text =~ /\r\n\z/;
    while ($i < $n) {
        my $c = substr($text, $i, 1);
        if ($c eq '"') {
            $cell = '';
            $i++;
            while (1) {
                return undef if $i >= $n;
                my $d = substr($text, $i, 1);
                if ($d eq '"') {
                    if (substr($text, $i + 1, 1) eq '"') {
                        $cell .= '"';
                        $i += 2;
                        next;
                    }
                    $i++;
                    last;
                }
                $cell .= $d;
                $i++;
            }
        } else {
            my $j = $i;
            $j++ while $j < $n && substr($text, $j, 1) !~ /[,\r"]/;
            return undef if $j < $n && substr($text, $j, 1) eq '"';
            $cell = substr($text, $i, $j - $i);
            $i = $j;
        }
        push @row, $cell;
        my $sep = substr($text, $i, 1);
        if ($sep eq ',') {
            $i++;
        } elsif (substr($text, $i, 2) eq "\r\n") {
            push @rows, [@row];
            @row = ();
            $i += 2;
        } else {
            return undef;
        }
    }
    return \@rows;
}

# the CSV rows as hashes by the header's names
sub csv_hashes {
    my ($rows) = @_;
    my @head = @{ $rows->[0] };
    my @h;
    for my $r (@$rows[1 .. $#$rows]) {
        is(scalar(@$r), scalar(@head), 'a CSV row has a cell per column')
            or return ();
        my %x;
        @x{@head} = @$r;
        push @h, \%x;
    }
    return @h;
}

# --- the expected report, computed here from the records -------------------

sub expect {
    my ($lines, %o) = @_;
    my @by = @{ $o{by} };
    my (%g, %t, %days);
    my $known = $o{purposes};        # with a policy: the purposes it knows
    for my $l (@$lines) {
        my $r = JSON::PP->new->utf8->decode($l);
        my %dim = (consumer => $r->{consumer}, dataset => $r->{dataset},
                   purpose => $r->{purpose},
                   org => defined $r->{consumer}
                          ? $o{orgs}{ $r->{consumer} } // '(not in policy)'
                          : undef);
        if (defined $dim{purpose}) {
            $dim{purpose} = '(unknown)'
                if ($r->{reason} // '') eq 'purpose_unknown'
                || ($known && $r->{decision} eq 'denied'
                    && !$known->{ $dim{purpose} });
        }
        my $key = join "\0", map { $dim{$_} // "\x{1}null" } @by;
        for my $x (\%t, ($g{$key} //= { map { ($_ => $dim{$_}) } @by })) {
            $x->{calls}++;
            if ($r->{decision} eq 'allowed') {
                $x->{allowed}++;
                $x->{bytes} += $r->{bytes};
                if (exists $r->{records}) {
                    $x->{records} += $r->{records};
                    $x->{records_counted}++;
                }
                $x->{incomplete}{ $r->{reason} }++ if $r->{reason} ne 'ok';
            } else {
                $x->{denied}++;
                $x->{denials}{ $r->{reason} }++;
            }
            for my $c (keys %{ $r->{masked} || {} }) {
                $x->{masked}{$c} += $r->{masked}{$c} if $r->{masked}{$c};
            }
            $x->{first} = $r->{time} if !defined $x->{first}
                                        || $r->{time} lt $x->{first};
            $x->{last} = $r->{time} if !defined $x->{last}
                                       || $r->{time} ge $x->{last};
            $x->{min}{ substr($r->{time}, 0, 16) }++;
        }
        my $d = $days{ substr($r->{time}, 0, 10) } //= {};
        $d->{calls}++;
        $d->{ $r->{decision} }++;
    }
    for my $x (\%t, values %g) {
        $x->{$_} //= 0 for qw(calls allowed denied bytes records_counted);
        $x->{$_} //= {} for qw(denials incomplete masked);
        my ($peak) = sort { $b <=> $a } values %{ delete $x->{min} };
        $x->{peak_per_minute} = $peak;
        $x->{records} = undef unless $x->{records_counted};
    }
    return (\%t, \%g, \%days);
}

# the report's numbers of a total or group against the expected
sub same_counts {
    my ($got, $want, $name) = @_;
    for my $k (qw(calls allowed denied bytes records records_counted first
                  last peak_per_minute)) {
        is($got->{$k}, $want->{$k}, "$name: $k")
            or return 0;
    }
    for my $k (qw(denials incomplete masked)) {
        is_deeply($got->{$k}, $want->{$k}, "$name: $k") or return 0;
    }
    return 1;
}

sub group_key {
    my ($g, @by) = @_;
    return join "\0", map { $g->{$_} // "\x{1}null" } @by;
}

# --- real calls through the gateway ----------------------------------------

my $n = DGTest::Nginx->new(policy => $policy);
my $audit = $n->dir . '/audit.log';
$n->{http_config} = "datagate_audit_log $audit;";
my $up = $n->upstream_port;
$n->{config} = <<"EOF";
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$up;
        }
        location /enterprise/ {
            datagate_dataset enterprise.registration;
            proxy_pass http://127.0.0.1:$up;
        }
EOF
$n->start;

my $ok_hdr = ['Data-Purpose: social-assistance',
              'Data-Approval: GXSJ-2024-0137'];
my @calls = (
    # [cert, uri, headers, status]: what each call must get
    (['assistance', '/person/1', $ok_hdr, 200]) x 3,
    ['assistance', '/person/2', $ok_hdr, 200],
    (['assistance', '/person/1', ['Data-Purpose: social-assistance'], 403])
        x 2,                                        # approval_required
    ['assistance', '/person/1', ['Data-Purpose: market-regulation'], 403],
    ['assistance', '/person/1', ['Data-Purpose: no-such-purpose'], 403],
    ['assistance', '/person/1', [], 403],           # purpose_required
    (['hrss', '/enterprise/1', ['Data-Purpose: market-regulation'], 200])
        x 2,
    ['housing', '/enterprise/2', ['Data-Purpose: market-regulation'], 403],
    ['unknown', '/person/1',
     ['Data-Purpose: <script>alert(1)</script>&"\''], 403],
);

for my $c (@calls) {
    my ($cert, $uri, $hdr, $want) = @$c;
    my $r = $n->request('GET', $uri, cert => $cert, headers => $hdr);
    is($r->status, $want, "$cert GET $uri: $want");
}

my $until = time + DGTest::secs(10);
my @lines;
while (time < $until) {
    @lines = grep { length } split /\n/, slurp_raw($audit);
    last if @lines >= @calls;
    sleep 0.05;
}
is(scalar(@lines), scalar(@calls), 'one audit record per call');
$n->stop;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit/emerg');

my %orgs = ('civil-affairs.assistance' => '自治区民政厅',
            'hrss.portal' => '自治区人力资源和社会保障厅',
            'housing.registry' => '自治区住房和城乡建设厅');
my $policy_file = $n->dir . '/policy.yaml';

{
    my @by = qw(consumer dataset purpose);
    my ($rc, $j, $said) = report_json($audit);
    is($rc, 0, 'report of the gateway\'s log: exit 0') or diag($said);
    my ($t, $g) = expect(\@lines, by => \@by);

    is($j->{input}{records}, scalar(@calls), 'every record counted');
    is($j->{input}{unreadable}, 0, 'no unreadable line');
    is_deeply($j->{report}{by}, \@by, 'by consumer, dataset, purpose');
    same_counts($j->{total}, $t, 'total');

    # the known calls, by hand
    is($j->{total}{calls}, 13, 'total: 13 calls');
    is($j->{total}{allowed}, 6, 'total: 6 allowed');
    is($j->{total}{denied}, 7, 'total: 7 denied');
    is_deeply($j->{total}{denials},
              { approval_required => 2, purpose_not_granted => 1,
                purpose_unknown => 1, purpose_required => 1,
                level_exceeded => 1, unknown_consumer => 1 },
              'total: denials by reason');
    cmp_ok($j->{total}{masked}{'person.id_number'} // 0, '>=', 4,
           'total: id numbers masked in the 4 person answers');

    is(scalar(@{ $j->{groups} }), scalar(keys %$g), 'one row per group');
    for my $row (@{ $j->{groups} }) {
        my $k = group_key($row, @by);
        ok($g->{$k}, "group " . join('/', map { $_ // 'null' }
                                            @$row{@by}) . " expected")
            or next;
        same_counts($row, $g->{$k}, join('/', map { $_ // 'null' }
                                             @$row{@by}));
    }

    my ($a) = grep { ($_->{consumer} // '') eq 'civil-affairs.assistance'
                     && ($_->{purpose} // '') eq 'social-assistance' }
              @{ $j->{groups} };
    is($a->{calls}, 6, 'assistance, social-assistance: 6 calls');
    is($a->{allowed}, 4, '... 4 allowed');
    is_deeply($a->{denials}, { approval_required => 2 },
              '... 2 without the approval number');

    my ($u) = grep { !defined $_->{consumer} } @{ $j->{groups} };
    is($u->{purpose}, "<script>alert(1)</script>&\"'",
       'an unknown certificate: consumer null, its purpose as sent');
    my ($q) = grep { ($_->{purpose} // '') eq '(unknown)' }
              @{ $j->{groups} };
    is($q->{calls}, 1, 'a purpose the gateway refused as unknown: '
       . '"(unknown)"');
    my ($none) = grep { defined $_->{consumer} && !defined $_->{purpose} }
                 @{ $j->{groups} };
    is($none->{denials}{purpose_required}, 1, 'no purpose: purpose null');

    # the CSV form: the same numbers
    my ($crc, $csv) = report('--format', 'csv', $audit);
    is($crc, 0, 'CSV report: exit 0');
    my $rows = parse_csv($csv);
    ok($rows, 'the CSV report parses (RFC 4180)') or diag($csv);
    my @h = csv_hashes($rows || [[]]);
    my ($ct) = grep { $_->{row} eq 'total' } @h;
    is($ct->{calls}, 13, 'CSV total: calls');
    is($ct->{'denied:approval_required'}, 2, 'CSV total: a column per reason');
    is($ct->{'masked:person.id_number'}, $t->{masked}{'person.id_number'},
       'CSV total: a column per class');
    my @cg = grep { $_->{row} eq 'group' } @h;
    is(scalar(@cg), scalar(keys %$g), 'CSV: one row per group');
    for my $r (@cg) {
        my %d = map { ($_ => $r->{$_} eq '' ? undef : $r->{$_}) } @by;
        my $w = $g->{ group_key(\%d, @by) } or next;
        is($r->{calls} . '/' . $r->{allowed} . '/' . $r->{bytes},
           "$w->{calls}/$w->{allowed}/$w->{bytes}",
           "CSV row $r->{purpose}: calls/allowed/bytes");
    }
    my ($evil) = grep { $_->{purpose} =~ /script/ } @cg;
    is($evil->{purpose}, "<script>alert(1)</script>&\"'",
       'CSV: quotes doubled, read back as sent');

    # the table form
    my ($trc, $table) = report($audit);
    is($trc, 0, 'table report: exit 0');
    utf8::decode($table);
    like($table, qr/^\s+13\s+6\s+7\s/m, 'table: the total line');
    like($table, qr/civil-affairs\.assistance\s+population\.person\s+
                    social-assistance\s+6\s+4\s+2\s/x,
         'table: a group line');
}

# with the policy: departments, names, purposes the policy does not know
{
    my @by = qw(org consumer dataset purpose);
    my ($rc, $j) = report_json('--policy', $policy_file, $audit);
    is($rc, 0, 'report with --policy: exit 0');
    is_deeply($j->{report}{by}, \@by, 'by org first with a policy');
    my ($t, $g) = expect(\@lines, by => \@by, orgs => \%orgs,
                         purposes => { 'social-assistance' => 1,
                                       'market-regulation' => 1 });
    same_counts($j->{total}, $t, 'total with a policy');
    is(scalar(@{ $j->{groups} }), scalar(keys %$g), 'one row per group');
    for my $row (@{ $j->{groups} }) {
        my $w = $g->{ group_key($row, @by) };
        ok($w, 'group ' . join('/', map { $_ // 'null' } @$row{@by})
           . ' expected') or next;
        same_counts($row, $w, join('/', map { $_ // 'null' } @$row{@by}));
    }

    my %sub = map { (($_->{org} // '') => $_) } @{ $j->{subtotals} };
    is($sub{'自治区民政厅'}{calls}, 9,
       'department 自治区民政厅: 9 calls');
    is($sub{'自治区人力资源和社会保障厅'}{allowed}, 2,
       'department 自治区人力资源和社会保障厅: 2 allowed');
    is($sub{'自治区住房和城乡建设厅'}{denials}{level_exceeded}, 1,
       'department 自治区住房和城乡建设厅: 1 level_exceeded');
    my ($p) = grep { ($_->{purpose} // '') eq 'social-assistance' }
              @{ $j->{groups} };
    is($p->{purpose_name}, '社会救助资格核验', 'the purpose\'s name');
    is($p->{dataset_name}, '人口基础信息', 'the dataset\'s name');
    ok(!grep({ ($_->{purpose} // '') =~ /script/ } @{ $j->{groups} }),
       'with a policy, a purpose it does not know on a denied call is '
       . '"(unknown)"');

    my ($rc2, $j2) = report_json('--policy', $policy_file, '--by', 'org',
                                 $audit);
    is(scalar(@{ $j2->{groups} }), 4, '--by org: three departments and '
       . 'the call without a consumer');
    is_deeply($j2->{subtotals}, [], 'one dimension: no subtotals');
}

# --- the HTML page in a browser --------------------------------------------

{
    my ($rc, $html) = report('--format', 'html', '--policy', $policy_file,
                             $audit);
    is($rc, 0, 'HTML report: exit 0');
    my $page = "$tmp/report.html";
    spew_raw($page, $html);
    unlike($html, qr/<script>alert/, 'the purpose is escaped');
    unlike($html, qr/(?:src|href)\s*=|url\(|\@import/i,
           'nothing in the page points anywhere');
    like($html, qr/Content-Security-Policy" content="default-src 'none'/,
         'a CSP forbids every request');
    is(() = $html =~ /<svg /g, 3, 'three charts');

  SKIP: {
        skip DGBrowser::missing(), 8 if DGBrowser::missing();
        my $b = DGBrowser->new(width => 1280, height => 1000);
        my $shot = "$out/058-report.png";
        my $p = $b->load("file://$page", screenshot => $shot);
        is_deeply($p->{errors}, [], 'no console error')
            or diag(explain($p->{console}));
        is_deeply($p->{external}, [], 'no request but the page itself')
            or diag(explain($p->{requests}));
        is(scalar(@{ $p->{requests} }), 1, 'one request: the page');
        like($p->{title}, qr/数据共享调用报告/, 'the title');
        my $src = $p->{source};
        is(() = $src =~ /<svg /g, 3, 'the browser has the three charts');
        unlike($src, qr/<script/i, 'no script element in the DOM');
        ok(-s $shot > 20000, "a screenshot of the page: $shot");
        cmp_ok($p->{size}[1], '>', 1000, 'the whole page, not the window');
        diag("screenshot: $shot");
        $b->quit;
    }
}

# --- crafted logs -------------------------------------------------------------

sub rec {
    my (%r) = @_;
    my %d = (consumer => 'c1', dataset => 'd1', purpose => 'p1',
             decision => 'allowed', reason => 'ok', status => 200,
             bytes => 10, masked => {});
    %d = (%d, %r);
    return JSON::PP->new->canonical->encode(\%d) . "\n";
}

{
    # two nodes' logs, interleaved in time, given newest first; a third
    # file of another day
    my @a = map { rec(time => sprintf('2024-05-11T10:0%d:00.000+08:00', $_),
                      bytes => 100 + $_) } (0, 2, 4, 6);
    my @b = map { rec(time => sprintf('2024-05-11T10:0%d:30.000+08:00', $_),
                      consumer => 'c2', decision => 'denied',
                      reason => 'rate_limited', bytes => 0) } (1, 3, 5);
    push @b, map { rec(time => '2024-05-11T10:05:45.000+08:00',
                       consumer => 'c2') } 1 .. 3;
    my @c = (rec(time => '2024-05-12T23:59:59.999+08:00', records => 7,
                 masked => { 'person.name' => 2 }, chain => 3, mac => 'x'),
             rec(time => '2024-05-13T00:00:00.000+08:00', lost => 4));
    spew_raw("$tmp/a.log", join '', @a);
    spew_raw("$tmp/b.log", join '', @b);
    spew_raw("$tmp/c.log", join '', @c);

    my ($rc, $j) = report_json("$tmp/c.log", "$tmp/b.log", "$tmp/a.log");
    is($rc, 0, 'three files: exit 0');
    my ($t) = expect([map { chomp; $_ } (@a, @b, @c)],
                     by => [qw(consumer dataset purpose)]);
    same_counts($j->{total}, $t, 'three files merged');
    is($j->{total}{peak_per_minute}, 4,
       'peak: the minute 10:05 across two files (c2 x3 + c2 denied)');
    is($j->{total}{first}, '2024-05-11T10:00:00.000+08:00',
       'first: the oldest file is not the first given');
    is($j->{input}{late}, 0, 'merged in time order: no record late');
    is($j->{input}{lost}, 4, 'lost records summed');
    is($j->{total}{records}, 7, 'records summed where the record has them');
    is($j->{total}{records_counted}, 1, '... and how many calls had them');
    is_deeply([map { "$_->{date}:$_->{calls}" } @{ $j->{days} }],
              ['2024-05-11:10', '2024-05-12:1', '2024-05-13:1'],
              'calls per day');

    # dates: whole days, minutes, seconds
    ($rc, $j) = report_json('--from', '2024-05-12', "$tmp/a.log",
                            "$tmp/b.log", "$tmp/c.log");
    is($j->{total}{calls}, 2, '--from a day');
    is($j->{input}{out_of_range}, 10, '... the others outside the dates');
    ($rc, $j) = report_json('--to', '2024-05-12', "$tmp/a.log",
                            "$tmp/b.log", "$tmp/c.log");
    is($j->{total}{calls}, 11, '--to a day: the whole of that day');
    ($rc, $j) = report_json('--from', '2024-05-11T10:01',
                            '--to', '2024-05-11T10:05', "$tmp/a.log",
                            "$tmp/b.log");
    is($j->{total}{calls}, 8, '--from and --to minutes, both included');
    ($rc, $j) = report_json('--from', '2024-05-11T10:05:45',
                            '--to', '2024-05-11T10:05:45', "$tmp/b.log");
    is($j->{total}{calls}, 3, 'one second');

    # --by
    ($rc, $j) = report_json('--by', 'purpose,consumer', "$tmp/a.log",
                            "$tmp/b.log");
    is_deeply([map { "$_->{purpose}/$_->{consumer}:$_->{calls}" }
               @{ $j->{groups} }], ['p1/c1:4', 'p1/c2:6'], '--by purpose,'
              . 'consumer: groups in that order');
    is_deeply([map { "$_->{purpose}:$_->{calls}" } @{ $j->{subtotals} }],
              ['p1:10'], '... subtotals by purpose');
}

{
    # lines that are not records: counted, named, exit 1
    spew_raw("$tmp/bad.log",
             rec(time => '2024-05-11T10:00:00+08:00')
             . "not json\n"
             . rec(time => '2024-05-11T10:00:01+08:00', decision => 'maybe')
             . "\n"
             . ('{"x":"' . ('y' x 70000) . "\"}\n")
             . rec(time => '2024-05-11T10:00:02+08:00')
             . '{"time":"2024-05-11T10:00:03+08:00","decision":"allo');
    my ($rc, $j, $said) = report_json("$tmp/bad.log");
    is($rc, 1, 'unreadable lines: exit 1');
    is($j->{input}{lines}, 7, 'every line read');
    is($j->{input}{records}, 2, 'the two records counted');
    is($j->{input}{unreadable}, 5, 'the five others counted as unreadable');
    like($said, qr/bad\.log:2: not an audit record/, 'the line is named');
    like($said, qr/bad\.log:7: not an audit record/,
         'a torn last line is named');
    like($said, qr/5 of 7 lines were not audit records/, 'and counted');
}

{
    # a record of another kind than a call: counted apart, not unreadable
    spew_raw("$tmp/kinds.log",
             rec(time => '2024-05-11T10:00:00+08:00', seq => 1)
             . '{"seq":2,"event":"checkpoint","head":"ab","hash":"cd"}' . "\n"
             . rec(time => '2024-05-11T10:00:01+08:00', seq => 3));
    my ($rc, $j) = report_json("$tmp/kinds.log");
    is($rc, 0, 'a record of another kind: exit 0');
    is($j->{input}{other}, 1, '... counted as other');
    is($j->{total}{calls}, 2, '... not as a call');
}

{
    # names from the client, as the gateway writes them
    spew_raw("$tmp/names.log",
             rec(time => '2024-05-11T10:00:00+08:00',
                 purpose => "\e]0;owned\a\e[31mred\x{85}",
                 consumer => '=HYPERLINK("http://x")'));
    my ($rc, $text) = report("$tmp/names.log");
    is($rc, 0, 'escapes in names: exit 0');
    unlike($text, qr/[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]/,
           'table: no control character reaches the terminal');
    like($text, qr/\xef\xbf\xbd\]0;owned/, 'they show as U+FFFD');
    ($rc, $text) = report('--format', 'csv', "$tmp/names.log");
    like($text, qr/"'=HYPERLINK\(""http:\/\/x""\)"/,
         'CSV: a cell a spreadsheet would run starts with a quote');
    ($rc, $text) = report('--format', 'html', "$tmp/names.log");
    unlike($text, qr/[\x00-\x08\x0b-\x1f\x7f]/, 'HTML: no control character');
}

{
    # a flood of names: memory bounded, every call still counted
    my $flood = '';
    for my $i (1 .. 70000) {
        $flood .= sprintf('{"time":"2024-05-11T10:%02d:00+08:00","consumer":'
                          . '"c%d","purpose":"p%d","decision":"denied",'
                          . '"reason":"unknown_consumer"}' . "\n",
                          int($i / 1200), $i % 3, $i);
    }
    spew_raw("$tmp/flood.log", $flood);
    my ($rc, $j) = report_json('--by', 'consumer', "$tmp/flood.log");
    is($rc, 0, 'a flood of purposes: exit 0');
    is($j->{total}{calls}, 70000, 'every call counted');
    cmp_ok($j->{bounds}{names}, '>', 0, 'names beyond the bound counted');

    # by purpose: read as plain lines (JSON::PP is slow on 65536 groups)
    my $csv;
    ($rc, $csv) = report('--by', 'purpose', '--format', 'csv',
                         "$tmp/flood.log");
    my @rows = split /\r\n/, $csv;
    my ($sum, $groups, $other) = (0, 0, 0);
    for (@rows) {
        my ($row, $purpose, $calls) = split /,/;
        next unless $row eq 'group';
        $groups++;
        $sum += $calls;
        $other = $calls if $purpose eq '"(other)"';
    }
    is($sum, 70000, 'the groups still add up to the total');
    cmp_ok($other, '>', 0, 'the rest under "(other)"');
    ok($groups <= 65536, "groups bounded ($groups)");
}

# --- usage -------------------------------------------------------------------

{
    my @bad = (
        [[], qr/no audit log/, 'no file'],
        [['--format', 'pdf', "$tmp/a.log"], qr/unknown format "pdf"/,
         'an unknown format'],
        [['--by', 'org', "$tmp/a.log"], qr/--by org needs --policy/,
         '--by org without a policy'],
        [['--by', 'consumer,consumer', "$tmp/a.log"], qr/given twice/,
         'a dimension twice'],
        [['--by', 'cnosumer', "$tmp/a.log"], qr/unknown dimension/,
         'an unknown dimension'],
        [['--from', '2024-5-1', "$tmp/a.log"], qr/is not a date/,
         'a bad date'],
        [['--from', '2024-05-12', '--to', '2024-05-11', "$tmp/a.log"],
         qr/is after --to/, 'dates the wrong way round'],
        [['--frmo', '2024-05-12', "$tmp/a.log"], qr/unknown option/,
         'an unknown option'],
        [['-', '-'], qr/more than once/, 'standard input twice'],
        [["$tmp/a.log", "$tmp/b.log", "$tmp/./a.log"],
         qr/are the same file: it would be counted twice/,
         'a file given twice'],
        [['--output', "$tmp/../" . (split m{/}, $tmp)[-1] . '/a.log',
          "$tmp/a.log"], qr/--output .* is the audit log/,
         'a report written over a log'],
    );
    for my $b (@bad) {
        my ($rc, $said) = run_cmd($CLI, 'report', @{ $b->[0] });
        is($rc, 2, "usage error: $b->[2]: exit 2");
        like($said, $b->[1], "... says why");
    }

    my ($rc, $said) = run_cmd($CLI, 'report', "$tmp/no-such.log");
    is($rc, 3, 'a missing file: exit 3');
    like($said, qr/no-such\.log: No such file/, '... named');
    ok(-s "$tmp/a.log" > 100, 'the log is still there');
    ($rc, $said) = run_cmd($CLI, 'report', '--output',
                           "$tmp/no-dir/x.html", "$tmp/a.log");
    is($rc, 3, 'an output that cannot be written: exit 3');
    ($rc, $said) = run_cmd($CLI, 'report', '--policy', "$tmp/a.log",
                           "$tmp/a.log");
    is($rc, 3, 'a policy that does not load: exit 3');
    ($rc, $said) = run_cmd($CLI, 'report', '--help');
    is($rc, 0, '--help: exit 0');
    like($said, qr/--format table\|csv\|json\|html/, '--help: the forms');
    ($rc, $said) = run_cmd('/bin/sh', '-c',
                           "'$CLI' report --format json - < '$tmp/a.log'");
    like($said, qr/"calls":4,/, 'standard input');
}

done_testing();
