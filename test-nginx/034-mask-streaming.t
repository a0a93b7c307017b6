# Streaming: a provider that sends its answer in small pieces, split
# everywhere (inside keys, values, escapes and UTF-8 sequences), chunked
# or with a Content-Length, slowly, with proxy_buffering on and off: the
# masked answer is whole, every field masked as in one piece, and the
# bytes the rules do not touch pass byte for byte.
# (Broken streams: 033-mask-failures.t; long responses:
# 035-mask-long-responses.t.)
# Policy: test-nginx/data/policy-glue.yaml (lib/DGMask.pm).

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest;
use DGMask;

{
    # $RECORD is bytes: 5-byte pieces split UTF-8 sequences too
    my @bytes = map { substr($RECORD, $_ * 5, 5) }
                0 .. int(length($RECORD) / 5);

    my ($p1, $pid1) = drip_server(pieces => \@bytes, delay => 0.01);
    my ($p2, $pid2) = drip_server(pieces => \@bytes, delay => 0.01,
                                  length => 1);

    my $m = start_nginx(policy => $POLICY, config => <<"END");
        location /chunked-buffered {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$p1;
        }
        location /chunked-unbuffered {
            datagate_dataset population.person;
            proxy_buffering off;
            proxy_pass http://127.0.0.1:$p1;
        }
        location /length-unbuffered {
            datagate_dataset population.person;
            proxy_buffering off;
            proxy_pass http://127.0.0.1:$p2;
        }
END

    for my $loc (qw(chunked-buffered chunked-unbuffered length-unbuffered)) {
        my $r = $m->request('GET', "/$loc", cert => 'assistance',
                            headers => [@OK]);
        is($r->status, 200, "$loc: 200");
        ok(!$r->{truncated}, "$loc: complete");
        check_record($loc, json_of($r));
        is(json_of($r)->{note}, "untouched \x{e9} text",
           "$loc: escapes pass");
        like($r->body, qr/"note":"untouched \\u00e9 text"/,
             "$loc: untouched bytes byte for byte");
    }

    $m->stop;
    unlike($m->error_log, qr/\[(alert|crit|emerg)\]/, 'drip: no alert/crit');
    stop_server($_) for $pid1, $pid2;
}

done_testing();
