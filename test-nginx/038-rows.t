# Row scoping: a grant's rows (field -> values, '*' a trailing prefix
# wildcard; several fields: all must match) remove the records out of
# scope while the answer streams.  The scoped field first, last, nested,
# missing, escaped (\u keys and values), twice with different values (the
# provider's attack: fail closed, out of scope), a number; masked fields
# still masked; the envelope kept; gzip answers; an answer dripped in
# pieces; a record larger than datagate_mask_buffer (502 before the
# header, a cut connection after); records not where the dataset says
# (502); a one-record answer (records: $) out of scope: 403
# row_out_of_scope; the scope sent to the provider in Datagate-Scope; the
# audit record's rows_dropped and datagate_rows_dropped_total; a long
# answer scoped with bounded memory (1 GB with DG_TEST_SLOW set, else 64
# MB).  Split at every byte: module/core/t/t_mask_rows.c.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IO::Compress::Gzip qw(gzip $GzipError);
use DGTest;
use DGMask qw(tls_connect);

binmode(Test::More->builder->$_, ':utf8')
    for qw(output failure_output todo_output);

my $policy = <<'YAML';
classes:
  person.id_number: {level: 4, mask: id_card}
purposes:
  social-assistance: {}
consumers:
  - id: civil-affairs.assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
datasets:
  - id: people
    share: conditional
    level: 3
    fields: {id_card: person.id_number}
    records: data[]
  - id: person
    share: conditional
    level: 3
    fields: {id_card: person.id_number}
    records: $
grants:
  - consumer: civil-affairs.assistance
    dataset: people
    purposes: [social-assistance]
    rows:
      region_code: ["4501*", "450203"]
      status: active
  - consumer: civil-affairs.assistance
    dataset: person
    purposes: [social-assistance]
    rows:
      "household.region_code": ["4501*"]
YAML

my @H = ('Data-Purpose: social-assistance');
my $ID = '"id_card":"450103199003071242"';
my $IDM = '"id_card":"450103********1242"';

# records in and out of scope; the expected answer keeps the in-scope ones
# byte for byte (ids masked)
my @in = (
    # the scoped fields first
    qq({"region_code":"450103","status":"active",$ID,"n":1}),
    # last
    qq({$ID,"n":2,"status":"active","region_code":"450203"}),
    # escaped key and value
    qq({"region\\u005fcode":"4501\\u00302","stat\\u0075s":"active","n":3}),
    # a number
    qq({"status":"active","region_code":450203,"n":4}),
);
my @out = (
    # another region
    qq({"region_code":"990000","status":"active",$ID,"n":5}),
    # a status out of scope
    qq({"region_code":"450103","status":"gone","n":6}),
    # missing
    qq({"status":"active","n":7}),
    # only nested: not the record's own field
    qq({"addr":{"region_code":"450103"},"status":"active","n":8}),
    # twice, with different values (either could be read)
    qq({"region_code":"450103","status":"active","region_code":"990000",)
        . qq("n":9}),
    qq({"region_code":"990000","region_code":"450103","status":"active",)
        . qq("n":10}),
    # null, an object
    qq({"region_code":null,"status":"active","n":11}),
    qq({"region_code":{"v":"450103"},"status":"active","n":12}),
    # a prefix that is not one
    qq({"region_code":"450","status":"active","n":13}),
);

# interleaved: out, in, out, out, in, ...
my @all = ($out[0], $in[0], $out[1], $out[2], $in[1], $out[3], $out[4],
           $in[2], $out[5], $out[6], $out[7], $in[3], $out[8]);
my $list = '{"code":0,"data":[' . join(',', @all) . '],"total":13}';
(my $want = '{"code":0,"data":[' . join(',', @in) . '],"total":13}')
    =~ s/\Q$ID\E/$IDM/g;

my $n = DGTest::Nginx->new(policy => $policy);
my $up = $n->upstream_port;
my $d = $n->dir;
$n->{http_config} = "datagate_audit_log $d/audit.log;\n";
$n->{config} = <<"CONF";
        location /people/ {
            datagate_dataset people;
            proxy_pass http://127.0.0.1:$up/fx/;
        }
        location /person/ {
            datagate_dataset person;
            proxy_pass http://127.0.0.1:$up/fx/;
        }
        location /evil/ {
            datagate_dataset people;
            proxy_pass http://127.0.0.1:\$TEST_NGINX_EVIL_PORT/;
        }
        location /small/ {
            datagate_dataset people;
            datagate_mask_buffer 4k;
            proxy_pass http://127.0.0.1:\$TEST_NGINX_EVIL_PORT/;
        }
        location /small1/ {
            datagate_dataset person;
            datagate_mask_buffer 4k;
            proxy_pass http://127.0.0.1:\$TEST_NGINX_EVIL_PORT/;
        }
        location = /status {
            datagate_status;
        }
CONF

DGTest::spew("$d/html/fx/list.json", $list);
DGTest::spew("$d/html/fx/pretty.json",
             "{\n  \"data\": [\n    " . join(",\n    ", @all)
             . "\n  ]\n}\n");
DGTest::spew("$d/html/fx/in.json",
             qq({"household":{"region_code":"450102"},$ID}));
DGTest::spew("$d/html/fx/out.json",
             qq({"household":{"region_code":"990102"},$ID}));
DGTest::spew("$d/html/fx/flat.json", qq({"region_code":"450102",$ID}));
DGTest::spew("$d/html/fx/empty.json", '{"code":404,"msg":"none"}');

my $gz;
gzip(\$list => \$gz) or die $GzipError;
my $big = '{"region_code":"450103","status":"active","x":"'
    . ('a' x 100_000) . '"}';
my $fill = join(',', ($in[0]) x 4000);

$n->evil_scenarios(
    # gzip whatever the request said
    gz => 'send_raw(head(200, "Content-Type: application/json", '
        . '"Content-Encoding: gzip", "Content-Length: " . length($GZ))'
        . ' . $GZ);',
    # the list in pieces of 1 to 7 bytes
    drip => 'send_raw(head(200, "Content-Type: application/json", '
        . '"Transfer-Encoding: chunked")); my $b = $LIST; my $i = 0; '
        . 'while (length $b) { my $k = 1 + $i++ % 7; '
        . 'send_raw(chunk(substr($b, 0, $k, ""))); pause(0.001) '
        . 'if $i % 50 == 0 } send_raw(chunk(""));',
    # a record larger than datagate_mask_buffer: first, or after 300 KB
    big => 'my $b = \'{"data":[\' . $BIG . \']}\'; send_raw(head(200, '
        . '"Content-Type: application/json", "Content-Length: " . length $b)'
        . ' . $b);',
    bigafter => 'send_raw(head(200, "Content-Type: application/json", '
        . '"Transfer-Encoding: chunked") . chunk(\'{"data":[\' . $FILL)); '
        . 'pause(0.3); send_raw(chunk("," . $BIG . "]}") . chunk(""));',
    # records where the dataset does not say
    shape => 'my $b = \'{"data":{"region_code":"450103",'
        . '"status":"active"}}\'; send_raw(head(200, '
        . '"Content-Type: application/json", "Content-Length: " . length $b)'
        . ' . $b);',
    # one record larger than the buffer
    bigone => 'my $b = \'{"household":{"region_code":"450102"},"x":"\' . '
        . '("b" x 10000) . \'"}\'; send_raw(head(200, '
        . '"Content-Type: application/json", "Content-Length: " . length $b)'
        . ' . $b);',
);

# the scenarios read these
{
    my %v = (gz => $gz, list => $list, big => $big, fill => $fill);
    for my $k (keys %v) {
        open my $fh, '>:raw', "$d/$k.bin" or die "$d/$k.bin: $!";
        print $fh $v{$k};
        close $fh;
    }
    for my $f (glob "$d/evil/*.pl") {
        my $code = DGTest::slurp($f);
        my $pre = join('', map {
            my $u = uc $_;
            "my \$$u = do { local \$/; open my \$f, '<:raw', '$d/$_.bin' "
            . "or die; <\$f> };\n" } grep { $code =~ /\$\U$_\E\b/ } keys %v);
        DGTest::spew($f, $pre . $code);
    }
}

$n->start;

# --- a list scoped -------------------------------------------------------

my $r = $n->request('GET', '/people/list.json', cert => 'assistance',
                    headers => [@H]);
is($r->status, 200, 'list: 200');
is($r->body, $want, 'list: the records in scope, byte for byte; the '
   . 'envelope kept') or diag($r->body);

$r = $n->request('GET', '/people/pretty.json', cert => 'assistance',
                 headers => [@H]);
is($r->status, 200, 'pretty: 200');
my $pj = eval { $r->json } || {};
is_deeply([map { $_->{n} } @{ $pj->{data} || [] }], [1, 2, 3, 4],
          'pretty: the records in scope, in order, valid JSON')
    or diag($r->body);

$r = $n->request('GET', '/people/empty.json', cert => 'assistance',
                 headers => [@H]);
is($r->body, '{"code":404,"msg":"none"}', 'no records: the answer as is');

# --- what the provider is told -------------------------------------------

$r = $n->request('GET', '/evil/gz', cert => 'assistance', headers => [@H]);
is($r->status, 200, 'gzip: 200');
is($r->body, $want, 'gzip: inflated and scoped') or diag($r->body);
ok(!defined $r->header('Content-Encoding'), 'gzip: sent plain');

my ($head) = grep { m{^GET /gz } } $n->evil->requests;
like($head // '', qr/^Datagate-Scope: region_code=4501\*,450203;status=active\r?$/m,
     'Datagate-Scope: the rows in canonical form') or diag($head);

$r = $n->request('GET', '/evil/drip', cert => 'assistance',
                 headers => [@H, 'Datagate-Scope: region_code=*'],
                 timeout => DGTest::secs(30));
is($r->status, 200, 'drip: 200');
is($r->body, $want, 'drip: the same answer from pieces of 1 to 7 bytes')
    or diag($r->body);
($head) = grep { m{^GET /drip } } $n->evil->requests;
my @scopes = ($head // '') =~ /^(Datagate-Scope:.*)$/mgi;
is(scalar @scopes, 1, 'Datagate-Scope: the client\'s is not passed');
like($scopes[0] // '', qr/status=active/, 'Datagate-Scope: the gateway\'s');

# --- fail closed ---------------------------------------------------------

$r = $n->request('GET', '/small/big', cert => 'assistance', headers => [@H]);
is($r->status, 502, 'a record larger than the buffer, first: 502');
like($r->body, qr/"code":"upstream_unmaskable".*a record larger than the mask buffer/,
     'a record larger than the buffer: why') or diag($r->body);

$r = $n->request('GET', '/small/bigafter', cert => 'assistance',
                 headers => [@H], timeout => DGTest::secs(30));
is($r->status, 200, 'a record larger than the buffer, late: the header '
   . 'was out');
ok($r->{truncated}, 'a record larger than the buffer, late: cut');
unlike($r->body, qr/aaaa/, 'a record larger than the buffer: none of it');

$r = $n->request('GET', '/evil/shape', cert => 'assistance',
                 headers => [@H]);
is($r->status, 502, 'records not where the dataset says: 502');
like($r->body, qr/records path holds something else than an array/,
     'records not where the dataset says: why');

# --- one record ----------------------------------------------------------

$r = $n->request('GET', '/person/in.json', cert => 'assistance',
                 headers => [@H]);
is($r->status, 200, 'one record in scope: 200');
is($r->body, qq({"household":{"region_code":"450102"},$IDM}),
   'one record in scope: masked, whole');

$r = $n->request('GET', '/person/out.json', cert => 'assistance',
                 headers => [@H]);
is($r->status, 403, 'one record out of scope: 403');
like($r->body, qr/^\{"error":\{"code":"row_out_of_scope","message":"[^"]+","request_id":"\w+"\}\}$/,
     'one record out of scope: the JSON error');
unlike($r->body, qr/450103|990102/, 'one record out of scope: nothing of it');
is($r->header('Content-Type'), 'application/json', 'out of scope: JSON');

$r = $n->request('GET', '/person/flat.json', cert => 'assistance',
                 headers => [@H]);
is($r->status, 403, 'one record, the field not on its path: 403');

$r = $n->request('GET', '/small1/bigone', cert => 'assistance',
                 headers => [@H]);
is($r->status, 502, 'one record larger than the buffer: 502');

# --- audit and statistics ------------------------------------------------

my $until = time + DGTest::secs(5);
my @recs;
while (time < $until) {
    @recs = map { json_decode($_) }
            split /\n/, (-e "$d/audit.log" ? DGTest::slurp("$d/audit.log")
                                              : '');
    last if @recs >= 13;
    sleep 0.05;
}
my ($lr) = grep { $_->{uri} eq '/people/list.json' } @recs;
is($lr->{records}, 4, 'audit: records sent');
is($lr->{rows_dropped}, 9, 'audit: rows_dropped');
is($lr->{reason}, 'ok', 'audit: ok');
my ($or) = grep { $_->{uri} eq '/person/out.json' } @recs;
is($or->{reason}, 'row_out_of_scope', 'audit: row_out_of_scope');
is($or->{decision}, 'allowed', 'audit: allowed by the policy, withheld');
is($or->{status}, 403, 'audit: 403');
is($or->{rows_dropped}, 1, 'audit: the record counted');
my ($br) = grep { $_->{uri} eq '/small/big' } @recs;
is($br->{reason}, 'upstream_unmaskable', 'audit: a record too large');
is($br->{rows_dropped}, 1, 'audit: a record too large is counted');

$r = $n->request('GET', '/status?format=prometheus', cert => 'assistance');
like($r->body, qr/^datagate_rows_dropped_total\{consumer="civil-affairs\.assistance",dataset="people",purpose="social-assistance"\} \d+$/m,
     'statistics: datagate_rows_dropped_total');

$n->stop;
unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert, crit, emerg');
like($n->error_log, qr/datagate: denied row_out_of_scope/,
     'error.log: the one record out of scope, at info');

# --- policy errors -------------------------------------------------------

my ($ok, $o) = nginx_t(policy => <<'YAML', config => <<'CONF');
purposes: {p: {}}
consumers:
  - id: c
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - id: d
    share: conditional
    level: 1
grants:
  - consumer: c
    dataset: d
    purposes: [p]
    rows: {region_code: "45*01"}
YAML
        location / {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:1;
        }
CONF
ok(!$ok, 'nginx -t: rows on a dataset that does not name its records');
like($o, qr/policy\.yaml:14: grants\[0\]\.rows: dataset 'd' does not name where its records are/,
     'nginx -t: file, line and why') or diag($o);

# --- a long answer, bounded memory ---------------------------------------

{
    my $bytes = $ENV{DG_TEST_SLOW} ? 1 << 30 : 64 << 20;
    my $m = DGTest::Nginx->new(policy => $policy, config => <<'CONF');
        location /evil/ {
            datagate_dataset people;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/;
            proxy_read_timeout 600s;
        }
CONF
    # records alternately in and out of scope, generated on the fly
    $m->evil_scenarios(stream => <<"PERL");
my \$in = '{"region_code":"450103","status":"active","id_card":'
    . '"450103199003071242","pad":"' . ('x' x 200) . '"}';
my \$out = '{"region_code":"990000","status":"active","id_card":'
    . '"450103199003071242","pad":"' . ('y' x 200) . '"}';
my \$block = join(',', (\$in, \$out) x 200);
send_raw(head(200, 'Content-Type: application/json',
              'Transfer-Encoding: chunked') . chunk('{"data":[' . \$block));
my \$sent = length(\$block);
my (\$bytes) = \$URI =~ m{/(\\d+)\$};
while (\$sent < \$bytes) {
    send_raw(chunk(',' . \$block));
    \$sent += length(\$block) + 1;
}
send_raw(chunk(']}') . chunk(''));
PERL
    $m->start;

    my ($w) = $m->children;
    for (1 .. 100) {
        last if $w;
        sleep 0.05;
        ($w) = $m->children;
    }
    my $hwm = sub {
        my $s = DGTest::slurp("/proc/$w/status") // '';
        return $s =~ /VmHWM:\s+(\d+)/ ? $1 : 0;
    };

    # what any answer costs once (TLS, the request, the masker, the
    # buffers) is paid by a first one of 1 MB
    my $r1 = $m->request('GET', '/evil/stream/1048576', cert => 'assistance',
                         headers => [@H], timeout => DGTest::secs(60));
    is($r1->status, 200, 'a first answer of 1 MB: 200');
    my $before = $hwm->();

    my $s = tls_connect($m->port);
    print $s "GET /evil/stream/$bytes HTTP/1.1\r\nHost: localhost\r\n"
        . "Data-Purpose: social-assistance\r\nConnection: close\r\n\r\n";
    my ($got, $ins, $outs, $tail) = (0, 0, 0, '');
    my $deadline = time + DGTest::secs(600);
    while (time < $deadline) {
        my $buf;
        my $k = sysread($s, $buf, 1 << 16);
        last unless $k;
        $got += $k;
        my $w2 = $tail . $buf;
        $ins += () = $w2 =~ /x{200}/g;
        $outs += () = $w2 =~ /y{20}/g;
        $tail = substr($w2, -250);
        $ins -= () = $tail =~ /x{200}/g;
        $outs -= () = $tail =~ /y{20}/g;
    }
    $ins += () = $tail =~ /x{200}/g;
    close $s;

    my $mb = int($bytes / (1 << 20));
    cmp_ok($ins, '>', $bytes / 600, "${mb} MB: the records in scope came "
           . "($ins)");
    is($outs, 0, "${mb} MB: none out of scope");
    like($tail, qr/\]\}\r\n0\r\n\r\n$/, "${mb} MB: the answer ended whole");
    my $grown = $hwm->() - $before;
    SKIP: {
        skip 'memory figures mean nothing under valgrind', 1
            if $DGTest::VALGRIND;
        cmp_ok($grown, '<', 2048, "${mb} MB: worker peak memory grew by "
               . "${grown}k (< 2 MiB)");
    }
    $m->stop;
    unlike($m->error_log, qr/\[(alert|crit|emerg)\]/,
           "${mb} MB: no alert, crit, emerg");
}

done_testing();
