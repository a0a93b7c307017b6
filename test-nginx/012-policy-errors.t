# Configuration errors stop `nginx -t` and name what is wrong: the policy
# file, line and field; the nginx.conf line of an unknown dataset; enforced
# locations without a dataset or without a policy; the secret file.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Temp ();
use Test::More;
use DGTest;

my $POLICY = <<'END';
purposes: {p: {name: p}}
datasets:
  - {id: d, share: unconditional, level: 1}
END

# the secret file: 32+ bytes, owner-only
{
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    chmod 0755, $dir;
    DGTest::spew("$dir/short.key", 'x' x 31, 0600);
    DGTest::spew("$dir/good.key", join('', map { chr(int rand 256) } 1 .. 32),
                 0600);
    DGTest::spew("$dir/text.key", ('ab' x 32) . "\n", 0600);

    my ($ok, $out) = nginx_t(policy => $POLICY,
                             http_config => "datagate_secret $dir/short.key;");
    ok(!$ok, 'short secret: nginx -t fails');
    like($out, qr/datagate: secret "\S+short\.key" has 31 bytes, it needs at least 32/,
         'short secret: says why');

    # the mode is printed in octal (ngx_sprintf has no %o)
    DGTest::spew("$dir/shared.key", 'y' x 32, 0600);
    chmod 0640, "$dir/shared.key";
    ($ok, $out) = nginx_t(policy => $POLICY,
                          http_config => "datagate_secret $dir/shared.key;");
    ok(!$ok, 'group-readable secret: nginx -t fails');
    like($out, qr/datagate: secret "\S+shared\.key" is readable or writable by group or others \(mode 0640\): .*chmod 600/,
         'group-readable secret: the mode in octal');
    chmod 0602, "$dir/shared.key";
    ($ok, $out) = nginx_t(policy => $POLICY,
                          http_config => "datagate_secret $dir/shared.key;");
    like($out, qr/\(mode 0602\)/, 'other-writable secret: the mode in octal');

    ($ok, $out) = nginx_t(policy => $POLICY,
                          http_config => "datagate_secret $dir/good.key;");
    ok($ok, 'good secret: nginx -t passes') or diag($out);

    ($ok, $out) = nginx_t(policy => $POLICY,
                          http_config => "datagate_secret $dir/text.key;");
    ok($ok, 'hex text secret with a newline: nginx -t passes') or diag($out);

    ($ok, $out) = nginx_t(policy => $POLICY);
    ok($ok, 'no secret: nginx -t passes') or diag($out);
    like($out, qr/no "datagate_secret": using a random key/,
         'no secret: a notice says pseudonyms change');

    ($ok, $out) = nginx_t(policy => $POLICY,
                          http_config => 'datagate_cache zone=dg:1m ttl=-1;');
    ok(!$ok, 'negative ttl refused');
}

run_tests();

__DATA__

=== TEST 1: a bad policy names file, line and field
--- policy
purposes: {p: {name: p}}
consumers:
  - id: c
    cert: {subject: "CN=x"}
    clearance: 1
datasets:
  - {id: d, share: sometimes, level: 1}
--- config
        location / {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- nginx_t_fails
--- error_log
[emerg]
qr/datagate: policy not loaded: \S+policy\.yaml:7: datasets\[0\]\.share: /
qr/in \S+nginx\.conf:\d+/

=== TEST 2: a grant for an unknown consumer
--- policy
purposes: {p: {name: p}}
datasets:
  - {id: d, share: conditional, level: 1}
grants:
  - consumer: nobody
    dataset: d
    purposes: [p]
--- config
        location / {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- nginx_t_fails
--- error_log
qr/policy\.yaml:5: grants\[0\]\.consumer: unknown consumer/

=== TEST 3: a missing policy file
--- http_config
    datagate_policy $TEST_NGINX_TESTDIR/no-such-policy.yaml;
--- nginx_t_fails
--- error_log
qr/datagate: policy not loaded: .*no-such-policy\.yaml/

=== TEST 4: a dataset the policy does not know, with its nginx.conf line
--- policy
purposes: {p: {name: p}}
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        location /x {
            datagate_dataset no.such.dataset;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- nginx_t_fails
--- error_log
qr/\[emerg\].*datagate: dataset "no\.such\.dataset" is not in the policy .* in \S+\/nginx\.conf:\d+/

=== TEST 5: unknown dataset named before datagate_policy: still its own line
--- policy
purposes: {p: {name: p}}
datasets:
  - {id: d, share: unconditional, level: 1}
--- http_config
    server {
        listen 127.0.0.1:1;
        location /early {
            datagate_dataset early.unknown;
        }
    }
    datagate_policy $TEST_NGINX_POLICY;
--- nginx_t_fails
--- error_log
qr/datagate: dataset "early\.unknown" is not in the policy/
qr/nginx\.conf:\d+/

=== TEST 6: datagate on without a dataset
--- policy
purposes: {p: {name: p}}
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        datagate on;
        location /nodataset {
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- nginx_t_fails
--- error_log
qr/datagate: location "\/nodataset" is enforced .* no "datagate_dataset"/

=== TEST 7: datagate on without a policy
--- config
        location /x {
            datagate on;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- nginx_t_fails
--- error_log
qr/"datagate on" needs "datagate_policy"/

=== TEST 8: datagate_dataset without a policy
--- config
        location /x {
            datagate_dataset d;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- nginx_t_fails
--- error_log
qr/needs "datagate_policy"/

=== TEST 9: a secret readable by others is refused
--- policy
purposes: {p: {name: p}}
datasets:
  - {id: d, share: unconditional, level: 1}
--- http_config
    datagate_secret $TEST_NGINX_TESTDIR/html/person/1.json;
--- nginx_t_fails
--- error_log
qr/datagate: secret "\S+" is readable or writable by group or others .*chmod 600/

=== TEST 10: bad datagate_cache and datagate_redis parameters
--- policy
purposes: {p: {name: p}}
datasets:
  - {id: d, share: unconditional, level: 1}
--- http_config
    datagate_cache zone=dg:1m flavour=mint;
--- nginx_t_fails
--- error_log
qr/invalid parameter "flavour=mint"/

=== TEST 11: bad datagate_redis parameter
--- policy
purposes: {p: {name: p}}
datasets:
  - {id: d, share: unconditional, level: 1}
--- http_config
    datagate_redis 127.0.0.1:6379 colour=blue;
--- nginx_t_fails
--- error_log
qr/datagate: invalid redis parameter "colour=blue"/

=== TEST 12: datagate_mask_buffer too small
--- policy
purposes: {p: {name: p}}
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        location /x {
            datagate_dataset d;
            datagate_mask_buffer 16;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- nginx_t_fails
--- error_log
qr/"datagate_mask_buffer" must be at least 256 bytes/

=== TEST 13: datagate_mask_turn not a size
--- policy
purposes: {p: {name: p}}
datasets:
  - {id: d, share: unconditional, level: 1}
--- config
        location /x {
            datagate_dataset d;
            datagate_mask_turn lots;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
--- nginx_t_fails
--- error_log
qr/"datagate_mask_turn" directive invalid value in .*nginx\.conf:\d+/
