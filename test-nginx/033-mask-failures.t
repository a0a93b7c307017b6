# Fail closed: an answer that cannot be masked never reaches the client
# in clear.  Refused before anything went out (malformed JSON, a document
# broken after a first record, a value larger than datagate_mask_buffer
# that would have to be masked): a clean 502 upstream_unmaskable with no
# data; a large value that needs no masking streams through whole.  Once
# the header is out (a provider sending garbage, or closing mid-document),
# the connection is cut: what came before is masked, nothing after it
# goes, no partial ID.  Both are logged with the request id.
# (The adversarial provider's failures: 021-protocol-edges.t.)
# Policy: test-nginx/data/policy-glue.yaml (lib/DGMask.pm).

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest;
use DGMask;

# --- refused before anything went out (one buffer): still a clean 502 ---

{
    my $n = DGTest::Nginx->new(policy => $POLICY, config => <<'END');
        location = /malformed {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location /fx/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT;
        }
        location /small/ {
            datagate_dataset population.person;
            datagate_mask_buffer 256;
            proxy_pass http://127.0.0.1:$TEST_NGINX_UPSTREAM_PORT/fx/;
        }
END
    my $big_value = 'x' x 1000;
    DGTest::spew($n->dir . '/html/fx/bad-early.json',
                 '{"id_card":"450103199003071242","name":"a" "b"}');
    DGTest::spew($n->dir . '/html/fx/big-value.json',
                 qq({"id_card":"450103199003071242","address":"$big_value"}));
    DGTest::spew($n->dir . '/html/fx/big-unmasked.json',
                 qq({"id_card":"450103199003071242","note":"$big_value"}));
    DGTest::spew($n->dir . '/html/fx/mid-bad.json',
                 '{"data":[{"id_card":"450103199003071242"},{"id_card":"4501');
    $n->start;

    for my $uri ('/malformed', '/fx/mid-bad', '/fx/bad-early',
                 '/small/big-value')
    {
        my $r = $n->request('GET', $uri, cert => 'assistance',
                            headers => [@OK]);
        is($r->status, 502, "$uri: 502");
        is(json_of($r)->{error}{code}, 'upstream_unmaskable',
           "$uri: upstream_unmaskable");
        ok(!$r->{truncated}, "$uri: complete error answer");
        unlike($r->body, qr/450103199003071242|x{300}/, "$uri: no data");
    }

    my $r;

    $r = $n->request('GET', '/small/big-unmasked', cert => 'assistance',
                     headers => [@OK]);
    ok(!$r->{truncated}, 'big unmasked value streams through');
    is(json_of($r)->{note}, $big_value, 'big unmasked value intact');

    $n->stop;
    my $log = $n->error_log;
    like($log, qr/\[error\].*datagate: upstream_unmaskable: .*request_id=[0-9a-f]{32}/,
         'cut logged with the request id');
    unlike($log, qr/\[(alert|crit|emerg)\]/, 'refused: no alert/crit');
}

# --- the header is out: the connection is cut ----------------------------

{
    my ($p3, $pid3) = drip_server(
        pieces => ['{"data":[{"id_card":"450103199003071242"},',
                   '{"id_card":"45010319900307124', '2"}', ', garbage'],
        delay => 0.05);
    my ($p4, $pid4) = drip_server(
        pieces => ['{"data":[{"id_card":"450103199003071242"},',
                   '{"id_card":"450103199'],
        delay => 0.05, no_end => 1);

    my $m = start_nginx(policy => $POLICY, config => <<"END");
        location /garbage {
            datagate_dataset population.person;
            proxy_buffering off;
            proxy_pass http://127.0.0.1:$p3;
        }
        location /early-close {
            datagate_dataset population.person;
            proxy_buffering off;
            proxy_pass http://127.0.0.1:$p4;
        }
END

    my $r = $m->request('GET', '/garbage', cert => 'assistance',
                        headers => [@OK]);
    ok($r->{truncated}, 'garbage mid-stream: cut');
    like($r->body, qr/450103\*{8}1242/, 'garbage: what came before, masked');
    unlike($r->body, qr/450103199003071242|garbage/,
           'garbage: no clear data, no garbage');

    $r = $m->request('GET', '/early-close', cert => 'assistance',
                     headers => [@OK]);
    ok($r->{truncated}, 'provider closes mid-document: cut');
    unlike($r->body, qr/4501031990/, 'early close: no partial ID');

    $m->stop;
    my $log = $m->error_log;
    like($log, qr/upstream_unmaskable: .*connection cut/, 'cut logged');
    unlike($log, qr/\[(alert|crit|emerg)\]/, 'cut: no alert/crit');
    stop_server($_) for $pid3, $pid4;
}

done_testing();
