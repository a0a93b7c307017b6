# The safety net (detect: on) on the forms people write: digits in groups
# with spaces or dashes, country codes, full-width digits, IDs and mobiles
# as JSON numbers, and object keys; allow-list mode (unlisted: drop)
# removes an unlisted member whole, key and value, and walks only the
# containers it is told of; keys under a masked key are scanned.  The
# adversarial provider sends the forms one byte per chunk, so they reach
# the masker cut at every place (inside a UTF-8 character, at a
# separator, inside a number and a long key).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use DGTest;

run_tests();

__DATA__

=== TEST 1: digits in groups, country codes and full-width digits are masked; dates, times, amounts and order numbers are not
--- policy
purposes: {p: {name: p}}
consumers:
  - id: c
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - {id: notes, share: unconditional, level: 1, detect: on}
--- config
        location /f/ {
            datagate_dataset notes;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- user_files
>>> f/forms.json
{"a":"+86 138 7711 2345","b":"138-7711-2345","c":"+8613877112345","d":"0086 13877112345","e":"１３８７７１１２３４５","f":"１３８－７７１１－２３４５","g":"450103 19900307 1242","h":"4501-0319-9003-0712-42","i":"6222 0221 0310 3456 786","j":"身份证：４５０１０３１９９００３０７１２４２","k":"2024-05-11 09:30:00","l":"2024-05-11T09:30:00+08:00","m":"0771-5551231","n":"订单 2024051109300012","o":"1,283,456.78","p":"13 877 112 345"}
--- request
GET /f/forms.json
--- cert: assistance
--- more_headers
Data-Purpose: p
--- error_code: 200
--- response_json
{"a":"+86 138 **** 2345","b":"138-****-2345","c":"+86138****2345","d":"0086 138****2345","e":"138****2345","f":"138－****－2345","g":"450103 ******** 1242","h":"4501-03**-****-**12-42","i":"************6786","j":"身份证：450103********1242","k":"2024-05-11 09:30:00","l":"2024-05-11T09:30:00+08:00","m":"0771-5551231","n":"订单 2024051109300012","o":"1,283,456.78","p":"13 877 112 345"}
--- response_body_unlike
77112345|9003071242|03103456786|１２４２


=== TEST 2: a resident ID, a mobile and a card as JSON numbers (a fraction of zeros too) become masked strings; other numbers stay
--- policy
purposes: {p: {name: p}}
consumers:
  - id: c
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - {id: notes, share: unconditional, level: 1, detect: on}
--- config
        location /f/ {
            datagate_dataset notes;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- user_files
>>> f/numbers.json
{"id":7,"float_id":450103199003071242.0,"phone":13877112345,"id_number":450103199003071242,"card":6222022103103456786,"cc":8613877112345,"list":[13977104001,42],"amount":13877112345.5,"ms":1715391000000,"us":1715391000000000,"order":202405110930001238,"neg":-13877112345,"exp":13877112345e0}
--- request
GET /f/numbers.json
--- cert: assistance
--- more_headers
Data-Purpose: p
--- error_code: 200
--- response_body
{"id":7,"float_id":"450103********1242","phone":"138****2345","id_number":"450103********1242","card":"************6786","cc":"86138****2345","list":["139****4001",42],"amount":13877112345.5,"ms":1715391000000,"us":1715391000000000,"order":202405110930001238,"neg":-13877112345,"exp":13877112345e0}


=== TEST 3: object keys that hold an ID or a mobile are masked like values, in any form
--- policy
purposes: {p: {name: p}}
consumers:
  - id: c
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - {id: notes, share: unconditional, level: 1, detect: on}
--- config
        location /f/ {
            datagate_dataset notes;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- user_files
>>> f/keys.json
{"owners":{"450103199003071242":{},"韦秀兰 13877112345":{}},"list":[{"138 7711 2345":1},{"\u0031\u0033877112345":[2]}],"by_card":{"6222 0221 0310 3456 786":true}}
--- request
GET /f/keys.json
--- cert: assistance
--- more_headers
Data-Purpose: p
--- error_code: 200
--- response_body
{"owners":{"450103********1242":{},"韦秀兰 138****2345":{}},"list":[{"138 **** 2345":1},{"138****2345":[2]}],"by_card":{"************6786":true}}


=== TEST 4: allow-list: an unlisted member goes whole, key and value, whatever its value
--- policy
classes:
  person.name: {level: 3, mask: name}
  person.id_number: {level: 4, mask: id_card}
purposes: {p: {name: p}}
consumers:
  - id: c
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - id: strict
    share: unconditional
    level: 1
    fields: {name: person.name, id_card: person.id_number}
    unlisted: drop
    detect: on
--- config
        location /f/ {
            datagate_dataset strict;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- user_files
>>> f/owners.json
{"owners":{"450103199003071242":{},"韦秀兰 13877112345":{}}}
>>> f/wrapped.json
{"code":0,"data":[{"id_card":"450103199003071242","name":"韦秀兰"}],"total":1}
>>> f/record.json
{"id_card":"450103199003071242","name":"韦秀兰","extra":{"13877112345":"x"},"tags":["韦秀兰 13877112345"]}
--- request eval
["GET /f/owners.json", "GET /f/wrapped.json", "GET /f/record.json"]
--- cert: assistance
--- more_headers
Data-Purpose: p
--- error_code: 200
--- response_body eval
["{}\n", "{}\n", qq({"id_card":"450103********1242","name":"韦**"}\n)]


=== TEST 5: allow-list: records inside a listed container or a path keep their listed keys
--- policy
classes:
  person.name: {level: 3, mask: name}
  person.id_number: {level: 4, mask: id_card}
purposes: {p: {name: p}}
consumers:
  - id: c
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - id: wrapped
    share: unconditional
    level: 1
    fields: {name: person.name, id_card: person.id_number, "result.items[].idCard": person.id_number}
    containers: [data, owners]
    unlisted: drop
    detect: on
--- config
        location /f/ {
            datagate_dataset wrapped;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- user_files
>>> f/wrapped.json
{"code":0,"data":[{"id_card":"450103199003071242","name":"韦秀兰","x":1,"o":{"name":"黄丽"}}],"owners":{"450103199003071242":{"name":"韦秀兰"},"黄丽":[1]},"result":{"items":[{"idCard":"450102198511122316","phone":"13977104001"}],"page":1},"total":1}
--- request
GET /f/wrapped.json
--- cert: assistance
--- more_headers
Data-Purpose: p
--- error_code: 200
--- response_body
{"data":[{"id_card":"450103********1242","name":"韦**"}],"owners":{},"result":{"items":[{"idCard":"450102********2316"}]}}


=== TEST 6: keys under a masked key are scanned, detect on or off
--- policy
classes:
  person.id_number: {level: 4, mask: id_card}
purposes: {p: {name: p}}
consumers:
  - id: c
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - id: masked
    share: unconditional
    level: 1
    fields: {id_card: person.id_number}
--- config
        location /f/ {
            datagate_dataset masked;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- user_files
>>> f/map.json
{"id_card":{"450103199003071242":"current","13877112345":{"k":1}},"note":"13877112345"}
--- request
GET /f/map.json
--- cert: assistance
--- more_headers
Data-Purpose: p
--- error_code: 200
--- response_body
{"id_card":{"450103********1242":"*******","138****2345":{"k":"*"}},"note":"13877112345"}


=== TEST 7: the adversarial provider cuts the forms at every byte: inside full-width digits, at separators, in numbers and long keys
--- policy
purposes: {p: {name: p}}
consumers:
  - id: c
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - {id: notes, share: unconditional, level: 1, detect: on}
--- config
        location / {
            datagate_dataset notes;
            proxy_buffering off;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT;
        }
--- evil
>>> bytes
my $b = '{"k":"１３８－７７１１－２３４５","n":13877112345,"'
    . ('a' x 3000) . '13877112345":1,"m":"+86 138 7711 2345",'
    . '"i":"450103　19900307　1242","z":450103199003071242}';
send_raw(head(200, 'Content-Type: application/json',
              'Transfer-Encoding: chunked'));
for my $i (0 .. length($b) - 1) {
    send_raw(chunk(substr($b, $i, 1)));
    pause(0.002) if $i % 97 == 0 || $i > length($b) - 200;
}
send_raw(chunk(''));
--- request
GET /bytes
--- cert: assistance
--- more_headers
Data-Purpose: p
--- error_code: 200
--- response_body eval
'{"k":"138－****－2345","n":"138****2345","' . ('a' x 3000)
. '138****2345":1,"m":"+86 138 **** 2345","i":"450103　********　1242",'
. '"z":"450103********1242"}'
