# What a masked document looks like: each field by its class's method,
# dropped and pseudonymised keys, unlisted keys passing, lists, the
# headers of a document masked whole (its own Content-Length, no ETag, no
# Accept-Ranges), Range and HEAD; a worker reusing its maskers between two
# datasets; $datagate_masked; allow-list datasets (unlisted: drop) and a
# dataset shown in clear still walked to count its unlisted keys.
# Policy: test-nginx/data/policy-glue.yaml (lib/DGMask.pm), and one of its
# own for the allow-list.
#
# The other masking files: 023-detect-forms.t (detection),
# 024-pseudonyms.t (method hash),
# 031-mask-encodings.t (content types and encodings),
# 032-mask-http-versions.t, 033-mask-failures.t (fail closed),
# 034-mask-streaming.t (chunked and slow providers),
# 035-mask-long-responses.t (turns of the event loop, bounded memory).

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest;
use DGMask;

# --- one record, a list, Range and HEAD -----------------------------------

my $n = DGTest::Nginx->new(policy => $POLICY,
                           http_config => 'log_format dg "$datagate_consumer '
                           . '$datagate_masked $datagate_decision";'
                           . "\n    access_log \$TEST_NGINX_TESTDIR/dg.log dg;",
                           config => <<'END');
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location /fx/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location /re/ {
            datagate_dataset realestate.property;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/fx/;
        }
END
$n->start;

{
    my $r = $n->request('GET', '/person/1', cert => 'assistance',
                        headers => [@OK]);
    is($r->status, 200, 'allowed: 200');
    my $j = json_of($r);
    is($j->{id_card}, '450103********1242', 'id_card masked');
    is($j->{name}, '韦秀兰', 'name revealed by the grant');
    ok(!exists $j->{ethnicity}, 'dropped key absent');
    is($j->{phone}, '138****2345', 'phone masked');
    is($j->{gender}, '女', 'unlisted key passes');
    is($j->{household}{registered_address},
       '广西南宁市青秀区民族大道100号东盟商务区3栋1201室',
       'unlisted nested key passes');
    like($j->{household}{household_id} // '', qr/^[0-9a-f]{16,}$/,
         'household_id pseudonymised');
    is($r->header('Content-Length'), length $r->body,
       'Content-Length: the masked body\'s');
    ok(!defined $r->header('Transfer-Encoding'),
       'a whole small document is not chunked');
    ok(!defined $r->header('ETag'),
       'the provider\'s ETag does not pass (response-header rule)');
    ok(!defined $r->header('Accept-Ranges'), 'no Accept-Ranges');

    my $r2 = $n->request('GET', '/person/1', cert => 'assistance',
                         headers => [@OK]);
    is(json_of($r2)->{household}{household_id}, $j->{household}{household_id},
       'pseudonym stable for one consumer');

    $r = $n->request('GET', '/person/', cert => 'assistance',
                     headers => [@OK]);
    $j = json_of($r);
    is(scalar @{ $j->{data} || [] }, 6, 'list: six records');
    is(scalar(grep { ($_->{id_card} // '') =~ /^\d{6}\*{8}[\dX]{4}$/ }
              @{ $j->{data} || [] }), 6, 'list: every id_card masked');
    unlike($r->body, qr/(?<![0-9a-f])\d{17}[\dX](?![0-9a-f])/,
           'list: no clear ID number anywhere (a hex pseudonym may hold 18 digits in a row)');

    $r = $n->request('GET', '/person/1', cert => 'assistance',
                     headers => [@OK, 'Range: bytes=0-10']);
    is($r->status, 200, 'Range: the whole masked document');
    is(json_of($r)->{id_card}, '450103********1242', 'Range: masked');

    $r = $n->request('HEAD', '/person/1', cert => 'assistance',
                     headers => [@OK]);
    is($r->status, 200, 'HEAD: 200');
    is($r->body, '', 'HEAD: no body');
}

# --- the worker reuses its maskers from response to response (and their
#     key memo when the rules are the same): responses of two datasets
#     that select different keys of the same records, alternated on one
#     worker, stay exactly what each dataset gives, in both directions (a
#     memo answering for the other rules would show a selected key in
#     clear, or keep a key the allow-list of realestate.property drops) --

{
    my $recs = '{"data":[' . join(',', map {
        qq({"id":$_,"id_card":"45010319900307124$_","phone":"1381234567$_",)
        . qq("owner_id":"45010219800101123$_","note":"n$_"})
    } 1 .. 6) . ']}';
    DGTest::spew($n->dir . '/html/fx/recs.json', $recs);

    my (%first, $bad);
    for my $i (1 .. 6) {
        for my $k ('fx', 're') {
            my $r = $k eq 'fx'
                ? $n->request('GET', '/fx/recs.json', cert => 'assistance',
                              headers => [@OK])
                : $n->request('GET', '/re/recs.json', cert => 'housing',
                              headers => ['Data-Purpose: housing-security']);
            $first{$k} //= $r->body;
            $bad++ if $r->status != 200 || $r->body ne $first{$k};
        }
    }
    ok(!$bad, 'two datasets alternated on one worker: every response '
       . 'the same as the first of its dataset');
    unlike($first{fx}, qr/45010319900307124|13812345678/,
           'population.person: id_card and phone masked');
    like($first{fx}, qr/"owner_id":"45010219800101123/,
         'population.person: owner_id (not its field) in clear');
    unlike($first{re}, qr/45010219800101123/,
           'realestate.property: owner_id masked');
    unlike($first{re}, qr/id_card|phone|note/,
           'realestate.property (allow-list): id_card, phone and note '
           . '(not its fields) dropped');
    is(() = $first{re} =~ /"owner_id":"450102\*{8}123\d"/g, 6,
       'realestate.property: the six owner_id masked');
}

# --- variables ------------------------------------------------------------

{
    my $r = $n->request('GET', '/person/1', cert => 'assistance',
                        headers => [@OK]);
    $n->stop;
    my $al = DGTest::slurp($n->dir . '/dg.log');
    like($al, qr/^civil-affairs\.assistance [1-9]\d* allowed$/m,
         '$datagate_masked counts masked values');
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit');
}

# --- allow-list mode: nothing outside a listed key survives, an unlisted
#     member goes whole (key and value), array elements included; objects
#     and arrays under listed containers are walked; a dataset whose
#     fields are all shown is still walked (count-only) so unlisted keys
#     are counted -------------------------------------------------------

{
    my $policy = <<'YAML';
levels: {1: public, 2: internal, 3: sensitive, 4: core}
classes:
  person.name:  {level: 3, mask: name}
  person.phone: {level: 3, mask: phone}
purposes:
  housing-security: {name: housing security}
consumers:
  - id: housing.registry
    cert: {subject: "CN=housing,O=Housing,C=CN"}
    clearance: 1
  - id: hrss.portal
    cert: {san: "DNS:hrss.gx.gov.cn"}
    clearance: 4
datasets:
  - id: acceptance.allowlist
    share: unconditional
    level: 1
    fields: {name: person.name, phone: person.phone}
    containers: [tags, owner]
    unlisted: drop
  - id: acceptance.counted
    share: unconditional
    level: 1
    fields: {name: person.name, phone: person.phone}
YAML
    my $m = DGTest::Nginx->new(policy => $policy,
        http_config => 'datagate_audit_log $TEST_NGINX_TESTDIR/audit.log;',
        config => <<'END');
        location /allow/ {
            datagate_dataset acceptance.allowlist;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/fx/;
        }
        location /counted/ {
            datagate_dataset acceptance.counted;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/fx/;
        }
END
    my $acc = '{"name":"张三丰","newcol":["450102199003071238",'
        . '"13812345678"],"newobj":{"k":"leak"},"mixed":[{"x":"leak4"},'
        . '"leak5",["leak6"]]}';
    my $pretty = qq({\n  "id": 7,\n  "name": "张三丰",\n  "tags": [\n    "a",\n)
        . qq(    {"phone": "13812345678", "z": 1}\n  ],\n  "owner": {\n)
        . qq(    "x": 1,\n    "phone": 13912345678\n  }\n}\n);
    for ($acc, $pretty) { utf8::encode($_) }
    DGTest::spew($m->dir . '/html/fx/acc.json', $acc);
    DGTest::spew($m->dir . '/html/fx/pretty.json', $pretty);
    DGTest::spew($m->dir . '/html/fx/top.json', '"450102199003071238"');
    DGTest::spew($m->dir . '/html/fx/top.txt', 'plain 13812345678');
    $m->start;

    my @H = ('Data-Purpose: housing-security');
    my $r = $m->request('GET', '/allow/acc.json', cert => 'housing',
                        headers => [@H]);
    is($r->status, 200, 'allow-list arrays: 200');
    my $want = '{"name":"张**"}';
    utf8::encode($want);
    is($r->body, $want, 'allow-list: unlisted members removed whole, '
       . 'objects and arrays included');
    unlike($r->body, qr/leak|4501021990|13812345678/,
           'allow-list: nothing unlisted leaks');

    $r = $m->request('GET', '/allow/pretty.json', cert => 'housing',
                     headers => [@H]);
    $want = qq({\n  "name": "张**",\n  "tags": [\n)
        . qq(    {"phone": "138****5678"}\n  ],\n  "owner": {\n)
        . qq(    "phone": "139****5678"\n  }\n}\n);
    utf8::encode($want);
    is($r->body, $want, 'allow-list pretty: no blank line where members '
       . 'and elements were dropped');

    $r = $m->request('GET', '/allow/top.json', cert => 'housing',
                     headers => [@H]);
    is($r->status, 200, 'allow-list scalar document: 200');
    is($r->body, 'null', 'allow-list scalar document: null');

    # count-only: all fields shown in clear to clearance 4
    $r = $m->request('GET', '/counted/acc.json', cert => 'hrss',
                     headers => [@H]);
    is($r->status, 200, 'count-only: 200');
    is($r->body, $acc, 'count-only: body passes byte for byte');
    ok(!defined $r->header('ETag'),
       'count-only: the response-header rule applies');

    $r = $m->request('GET', '/counted/top.txt', cert => 'hrss',
                     headers => [@H]);
    is($r->status, 502, 'count-only: a non-JSON answer is refused');
    is(json_of($r)->{error}{code}, 'upstream_unmaskable',
       'count-only: upstream_unmaskable');

    $m->stop;

    # unlisted also counts the provider headers the response-header rule
    # dropped (ETag, Accept-Ranges, ...), which are all of "dropped" here
    my %unlisted;
    for (split /\n/, DGTest::slurp($m->dir . '/audit.log') // '') {
        my $rec = eval { DGTest::json_decode($_) } or next;
        next unless ($rec->{uri} // '') =~ /acc\.json/;
        $unlisted{$rec->{dataset}} = ($rec->{unlisted} // 0)
                                     - ($rec->{dropped} // 0);
    }
    is($unlisted{'acceptance.counted'}, 2,
       'count-only: the body went through the masker, unlisted keys '
       . 'counted in the audit record');
    unlike($m->error_log, qr/\[(alert|crit|emerg)\]/,
           'allow-list: no alert/crit');
}

done_testing();
