# Consumer identity from the verified client certificate: every matcher
# kind (subject, fingerprint in both notations, serial, SAN URI and DNS),
# several matchers at once, the per-connection identity cache, and the
# datagate variables in a log_format.  Subjects compare in one canonical
# form taken from the certificate: a subject in Chinese matches however it
# is written (RFC 4514 in UTF-8, OpenSSL's one-line form, nginx's \XX
# escapes), multi-valued RDNs in any order, attribute names in any case;
# a name that can never match fails nginx -t.  Negative serials match as
# OpenSSL prints them.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use DGTest;

run_tests();

__DATA__

=== TEST 1: subject matches, another subject does not
--- policy
purposes: {p: {name: p}}
consumers:
  - id: by.subject
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- request eval
["GET /echo", "GET /echo"]
--- cert eval
["assistance", "hrss"]
--- more_headers
Data-Purpose: p
--- error_code eval
[200, 403]
--- response_body_like eval
['"consumer":"by.subject"', '"code":"unknown_consumer"']

=== TEST 2: fingerprint, colon form (openssl x509 -fingerprint -sha256)
--- policy
purposes: {p: {name: p}}
consumers:
  - id: by.fp
    cert: {fingerprint_sha256: "$TEST_NGINX_CERT_FP_market"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- request eval
["GET /echo", "GET /echo"]
--- cert eval
["market", "housing"]
--- more_headers
Data-Purpose: p
--- error_code eval
[200, 403]
--- response_body_like eval
['"consumer":"by.fp"', '"code":"unknown_consumer"']

=== TEST 3: fingerprint, plain lower-case hex
--- policy
purposes: {p: {name: p}}
consumers:
  - id: by.fphex
    cert: {fingerprint_sha256: "$TEST_NGINX_CERT_FPHEX_market"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- request eval
["GET /echo", "GET /echo"]
--- cert eval
["market", "assistance"]
--- more_headers
Data-Purpose: p
--- error_code eval
[200, 403]
--- response_body_like eval
['"consumer":"by.fphex"', '"code":"unknown_consumer"']

=== TEST 4: serial
--- policy
purposes: {p: {name: p}}
consumers:
  - id: by.serial
    cert: {serial: "$TEST_NGINX_CERT_SERIAL_housing"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- request eval
["GET /echo", "GET /echo"]
--- cert eval
["housing", "market"]
--- more_headers
Data-Purpose: p
--- error_code eval
[200, 403]
--- response_body_like eval
['"consumer":"by.serial"', '"code":"unknown_consumer"']

=== TEST 5: SAN URI and SAN DNS
--- policy
purposes: {p: {name: p}}
consumers:
  - id: by.uri
    cert: {san: "URI:spiffe://gx.gov.cn/civil-affairs/assistance"}
    clearance: 1
  - id: by.dns
    cert: {san: "DNS:hrss.gx.gov.cn"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- request eval
["GET /echo", "GET /echo", "GET /echo"]
--- cert eval
["assistance", "hrss", "market"]
--- more_headers
Data-Purpose: p
--- error_code eval
[200, 200, 403]
--- response_body_like eval
['"consumer":"by.uri"', '"consumer":"by.dns"', '"code":"unknown_consumer"']

=== TEST 6: every matcher set must match
--- policy
purposes: {p: {name: p}}
consumers:
  - id: both
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN", serial: "$TEST_NGINX_CERT_SERIAL_housing"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- request eval
["GET /echo", "GET /echo"]
--- cert eval
["assistance", "housing"]
--- more_headers
Data-Purpose: p
--- error_code eval
[403, 403]
--- error_log
datagate: no consumer for certificate subject="CN=assistance,O=Civil Affairs,C=CN"

=== TEST 7: a certificate nginx did not verify (optional_no_ca) counts as none
--- policy
purposes: {p: {name: p}}
consumers:
  - id: by.subject
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- verify_client: optional_no_ca
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- request eval
["GET /echo", "GET /echo"]
--- cert eval
["foreign", "assistance"]
--- more_headers
Data-Purpose: p
--- error_code eval
[401, 200]
--- response_body_like eval
['"code":"client_certificate_required"', '"consumer":"by.subject"']
--- error_log
datagate: denied client_certificate_required

=== TEST 8: variables in a log_format
--- policy
purposes: {p: {name: p}}
consumers:
  - id: by.subject
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- http_config
    log_format dg 'dg consumer=$datagate_consumer dataset=$datagate_dataset '
                  'purpose=$datagate_purpose decision=$datagate_decision '
                  'reason=$datagate_reason id=$datagate_request_id '
                  'masked=$datagate_masked cache=$datagate_cache';
    access_log $TEST_NGINX_TESTDIR/error.log dg;
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location = /off {
            datagate off;
            return 200 "off\n";
        }
--- request eval
["GET /echo", "GET /echo", "GET /off"]
--- more_headers eval
["Data-Purpose: p\nDatagate-Request-Id: r-1", "Data-Purpose: nope\nDatagate-Request-Id: r-2", ""]
--- cert: assistance
--- error_code eval
[200, 403, 200]
--- error_log
dg consumer=by.subject dataset=d purpose=p decision=allowed reason=ok id=r-1 masked=0 cache=miss
dg consumer=by.subject dataset=d purpose=nope decision=denied reason=purpose_unknown id=r-2 masked=0 cache=miss
dg consumer=- dataset=- purpose=- decision=- reason=- id=- masked=- cache=-

=== TEST 9: the decision cache answers the second identical request
--- policy
purposes: {p: {name: p}}
consumers:
  - id: by.subject
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- http_config
    datagate_cache zone=dg:1m ttl=30s;
    log_format dg 'dg $datagate_request_id $datagate_cache $datagate_decision';
    access_log $TEST_NGINX_TESTDIR/error.log dg;
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- request eval
["GET /echo", "GET /echo", "POST /echo", "GET /echo", "GET /echo"]
--- more_headers eval
["Data-Purpose: p\nDatagate-Request-Id: c1", "Data-Purpose: p\nDatagate-Request-Id: c2", "Data-Purpose: p\nDatagate-Request-Id: c3", "Data-Purpose: x\nDatagate-Request-Id: c4", "Data-Purpose: x\nDatagate-Request-Id: c5"]
--- request_body eval
[undef, undef, "{}", undef, undef]
--- cert: assistance
--- error_code eval
[200, 200, 200, 403, 403]
--- error_log
dg c1 miss allowed
dg c2 hit allowed
dg c3 miss allowed
dg c4 miss denied
dg c5 hit denied

=== TEST 10: a subject in Chinese, written in UTF-8 (RFC 4514)
--- policy
purposes: {p: {name: p}}
consumers:
  - id: civil.gx
    org: 广西民政厅
    cert: {subject: "CN=民政厅,O=广西,C=CN"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- request eval
["GET /echo", "GET /echo", "GET /echo"]
--- cert eval
["chinese", "assistance", "chinese"]
--- more_headers
Data-Purpose: p
--- error_code eval
[200, 403, 200]
--- response_body_like eval
['"consumer":"civil.gx"', '"code":"unknown_consumer"', '"consumer":"civil.gx"']
--- error_log
datagate: no consumer for certificate subject="CN=assistance,O=Civil Affairs,C=CN" issuer="CN=datagate dev CA,O=datagate development,C=CN"

=== TEST 11: a subject in Chinese, in OpenSSL's one-line form (least specific first)
--- policy
purposes: {p: {name: p}}
consumers:
  - id: civil.gx
    cert: {subject: "C = CN, O = 广西, CN = 民政厅"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- request eval
["GET /echo", "GET /echo"]
--- cert eval
["chinese", "multi"]
--- more_headers
Data-Purpose: p
--- error_code eval
[200, 403]
--- response_body_like eval
['"consumer":"civil.gx"', '"code":"unknown_consumer"']

=== TEST 12: a subject in Chinese, as nginx's $ssl_client_s_dn prints it (\XX escapes)
--- policy
purposes: {p: {name: p}}
consumers:
  - id: civil.gx
    cert: {subject: '$TEST_NGINX_CERT_SUBJECT_chinese'}
    clearance: 1
  - id: civil.oneline.escaped
    cert: {subject: 'subject=C = CN, O = \E5\B9\BF\E8\A5\BF, CN = \E6\B0\91\E6\94\BF\E5\8E\85', serial: "1"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- request
GET /echo
--- cert: chinese
--- more_headers
Data-Purpose: p
--- error_code: 200
--- response_body_like: "consumer":"civil.gx"

=== TEST 13: a multi-valued RDN and an e-mail address: any order inside the RDN, any case of names, spaces after commas
--- policy
purposes: {p: {name: p}}
consumers:
  - id: multi.rdns
    cert: {subject: "emailAddress=multi@gx.gov.cn,CN=multi,OU=Assistance,O=Civil Affairs,C=CN"}
    clearance: 1
  - id: multi.one
    cert: {subject: "E=multi@gx.gov.cn, ou=Assistance+cn=multi, o=Civil Affairs, c=CN"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- request eval
["GET /echo", "GET /echo"]
--- cert eval
["multi", "assistance"]
--- more_headers
Data-Purpose: p
--- error_code eval
[200, 403]
--- response_body_like eval
['"consumer":"multi.one"', '"code":"unknown_consumer"']

=== TEST 14: a negative serial, as OpenSSL prints it, sign included
--- policy
purposes: {p: {name: p}}
consumers:
  - id: negative
    cert: {serial: "-5a:5a"}
    clearance: 1
  - id: positive
    cert: {serial: "5A5A"}
    clearance: 1
datasets:
  - {id: d, share: unconditional, level: 1}
--- http_config
    log_format dg 'dg serial=$ssl_client_serial consumer=$datagate_consumer';
    access_log $TEST_NGINX_TESTDIR/error.log dg;
--- config
        location = /echo {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- request
GET /echo
--- cert: negative
--- more_headers
Data-Purpose: p
--- error_code: 200
--- response_body_like: "consumer":"negative"
--- error_log
dg serial=-5A5A consumer=negative

=== TEST 15: a subject that can never match fails nginx -t, with file and line
--- policy
purposes: {p: {name: p}}
consumers:
  - id: civil.gx
    cert: {subject: "CN=民政厅,O=广西,C=China"}
    clearance: 1
--- nginx_t_fails
--- error_log
qr/policy\.yaml:4: consumers\[0\]\.cert\.subject: C='China': a country is two capital letters/

=== TEST 16: an unknown attribute type fails nginx -t
--- policy
purposes: {p: {name: p}}
consumers:
  - id: c
    cert: {subject: "CNN=assistance,O=Civil Affairs,C=CN"}
    clearance: 1
--- nginx_t_fails
--- error_log
qr/policy\.yaml:4: consumers\[0\]\.cert\.subject: unknown attribute type 'CNN'/

=== TEST 17: escapes that decode to bytes that are not UTF-8 fail nginx -t
--- policy
purposes: {p: {name: p}}
consumers:
  - id: c
    cert: {subject: 'CN=\E6\B0,C=CN'}
    clearance: 1
--- nginx_t_fails
--- error_log
qr/policy\.yaml:4: consumers\[0\]\.cert\.subject: the value .* is not UTF-8/

=== TEST 18: the two orders mixed fail nginx -t
--- policy
purposes: {p: {name: p}}
consumers:
  - id: c
    cert: {subject: "CN=a, O = b"}
    clearance: 1
--- nginx_t_fails
--- error_log
qr/policy\.yaml:4: consumers\[0\]\.cert\.subject: .* mixes/
