# The safety net masks each detect kind with the mask of the policy's
# class of that kind (person.id_number, person.phone, finance.bank_card,
# org.uscc), unless the class is missing or clear: then with the kind's
# own method.  The same methods serve the body (detect: on) and the
# response headers, and `datagate policy explain` shows them kind by kind.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp ();
use DGTest;

our $POLICY = <<'YAML';
classes:
  person.phone:      {level: 3, mask: "keep(2,2)"}
  finance.bank_card: {level: 4, mask: redact}
  org.uscc:          {level: 1, mask: clear}
  person.name:       {level: 3, mask: name}
purposes:
  p: {name: P}
consumers:
  - id: civil-affairs.assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
datasets:
  - id: notes.free
    share: unconditional
    level: 1
    fields: {name: person.name}
    detect: on
    headers: [X-Contact]
YAML

# --- policy explain: the table of the kinds --------------------------------

{
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    my $file = "$dir/policy.yaml";
    DGTest::spew($file, $POLICY);
    my ($rc, $out) = run_cmd($DGTest::CLI, 'policy', 'explain', $file,
                             '--consumer', 'civil-affairs.assistance',
                             '--dataset', 'notes.free', '--purpose', 'p');
    is($rc, 0, 'explain: runs') or diag($out);
    like($out, qr/safety net \(detect, response headers\), kind by kind:/,
         'explain: the safety net table');
    like($out, qr/^\s+mobile\s+mobile number\s+person\.phone\s+keep\(2,2\)\s+the class's mask, at \S+policy\.yaml:2$/m,
         'explain: mobile takes the mask of person.phone, with file and line');
    like($out, qr/^\s+bank_card\s+bank card\s+finance\.bank_card\s+redact\s+the class's mask/m,
         'explain: bank_card takes the mask of finance.bank_card');
    like($out, qr/^\s+uscc\s+.*org\.uscc\s+keep\(6,4\)\s+the kind's own \(class org\.uscc is clear, at \S+policy\.yaml:4\)$/m,
         'explain: uscc: a clear class leaves the kind its own method');
    like($out, qr/^\s+id_number\s+resident ID\s+person\.id_number\s+id_card\s+the kind's own \(no class person\.id_number\)$/m,
         'explain: id_number: no class, its own method');
}

run_tests();

__DATA__

=== TEST 1: the body: each kind masked with its class's mask, or its own
--- policy
classes:
  person.phone:      {level: 3, mask: "keep(2,2)"}
  finance.bank_card: {level: 4, mask: redact}
  org.uscc:          {level: 1, mask: clear}
  person.name:       {level: 3, mask: name}
purposes:
  p: {name: P}
consumers:
  - id: civil-affairs.assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
datasets:
  - id: notes.free
    share: unconditional
    level: 1
    fields: {name: person.name}
    detect: on
    headers: [X-Contact]
--- config
        location /notes/ {
            datagate_dataset notes.free;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
        }
--- upstream
        location = /n {
            return 200 '{"name":"韦小宝","note":"tel 13877112345, id 450103199003071242, card 6222021234567890128, org 91350100M000100Y43"}';
        }
--- request
GET /notes/n
--- cert: assistance
--- more_headers
Data-Purpose: p
--- error_code: 200
--- response_json
{"name": "韦**", "note": "tel 13*******45, id 450103********1242, card ***, org 913501********0Y43"}
--- no_error_log
[error]

=== TEST 2: a listed response header: the same methods
--- policy
classes:
  person.phone:      {level: 3, mask: "keep(2,2)"}
  finance.bank_card: {level: 4, mask: redact}
  org.uscc:          {level: 1, mask: clear}
  person.name:       {level: 3, mask: name}
purposes:
  p: {name: P}
consumers:
  - id: civil-affairs.assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
datasets:
  - id: notes.free
    share: unconditional
    level: 1
    fields: {name: person.name}
    detect: on
    headers: [X-Contact]
--- config
        location /notes/ {
            datagate_dataset notes.free;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/;
        }
--- upstream
        location = /h {
            add_header X-Contact "13877112345 / 91350100M000100Y43";
            return 200 '{"name":"x"}';
        }
--- request
GET /notes/h
--- cert: assistance
--- more_headers
Data-Purpose: p
--- error_code: 200
--- response_headers
X-Contact: 13*******45 / 913501********0Y43
--- no_error_log
[error]
