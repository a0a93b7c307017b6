# What a request to an enforced location may look like, against the
# adversarial provider (which logs every request that reaches it):
#
# - paths the provider may resolve to another location than nginx did
#   (dot segments with ";parameters", encoded, double-encoded; parameters
#   on any segment; encoded "/" and "\"; overlong UTF-8; a raw "#") are
#   refused with 400 request_rejected, audited, and never reach the
#   provider, with proxy_pass with a URI part (nginx's normalised path is
#   forwarded) and without one (the path as sent is forwarded);
# - a header datagate reads (Data-Purpose, Data-Approval,
#   Datagate-Request-Id) sent twice, with the same value or another, in
#   any case, over HTTP/1.1 or HTTP/2, or spelled with "_", is refused the
#   same way; "Datagate_*" headers never reach the provider.
#
# Policy: test-nginx/data/policy-glue.yaml.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use DGTest;

my $POLICY = DGTest::slurp("$FindBin::Bin/data/policy-glue.yaml");

# the provider echoes what it received: the path, and every Data-Purpose,
# Data-Approval and Datagate-* line of the request head
my $ECHO = <<'PERL';
my @lines = grep { /^(data[-_]|datagate[-_])/i } split /\r\n/, $REQ;
s/(["\\])/\\$1/g for @lines;
my $b = '{"uri":"' . ($URI =~ s/(["\\])/\\$1/gr) . '","lines":['
    . join(',', map { qq("$_") } @lines) . ']}';
send_raw(head(200, 'Content-Type: application/json',
              'Content-Length: ' . length $b) . $b);
PERL

my $CONFIG = <<'END';
        datagate on;

        # proxy_pass with a URI part: nginx's normalised path is forwarded
        location /population/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/person/;
        }

        # without: the path as the client sent it is forwarded
        location /person/ {
            datagate_dataset population.person;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT;
        }

        location /tax/ {
            datagate_dataset tax.secret;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT;
        }

        # anything else: an unconditional dataset
        location / {
            datagate_dataset open.echo;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT;
        }

        # not enforced: a plain proxy, no checks
        location /plain/ {
            datagate off;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/person/;
        }
END

my @OK = ('Data-Purpose: social-assistance',
          'Data-Approval: GXSJ-2024-0137');

sub json_of {
    my ($r) = @_;
    return (eval { $r->json }) || {};
}

sub gateway {
    my (%o) = @_;
    my $n = DGTest::Nginx->new(policy => $POLICY, config => $CONFIG, %o);
    my $d = $n->dir;
    $n->{http_config} = "datagate_audit_log $d/audit.log;\n"
        . ($o{http_config} // '');
    $n->evil_scenarios(person => $ECHO, open => $ECHO, x => $ECHO,
                       tax => $ECHO);
    $n->start;
    return $n;
}

# the audit record of a request id (waits for it)
sub record_of {
    my ($n, $id) = @_;
    my $f = $n->dir . '/audit.log';
    my $until = time + DGTest::secs(5);
    while (time < $until) {
        for my $l (split /\n/, (-f $f ? DGTest::slurp($f) : '')) {
            my $rec = DGTest::json_decode($l);
            return $rec if ($rec->{request_id} // '') eq $id;
        }
        sleep 0.05;
    }
    return {};
}

my $n = gateway();
my $evil = $n->evil;

# --- paths that stay where nginx put them ------------------------------------

# [path, provider's path]
my @good = (
    ['/population/1', '/person/1'],
    ['/person/1', '/person/1'],
    ['/person/a..b', '/person/a..b'],
    ['/person/..a', '/person/..a'],
    ['/person/.hidden', '/person/.hidden'],
    ['/person/%E5%B9%BF%E8%A5%BF', '/person/%E5%B9%BF%E8%A5%BF'],
    ['/population/%E5%B9%BF%E8%A5%BF', '/person/%E5%B9%BF%E8%A5%BF'],
    ['/person/100%25', '/person/100%25'],
    ['/person/1?q=..;/x&r=%2e%2e%2f', '/person/1?q=..;/x&r=%2e%2e%2f'],
    ['/person//1', '/person//1'],
);

for my $g (@good) {
    my ($path, $want) = @$g;
    my $before = () = $evil->requests;
    my $r = $n->request('GET', $path, cert => 'assistance', headers => \@OK);
    is($r->status, 200, "$path: 200") or diag($r->body);
    is(json_of($r)->{uri}, $want, "$path: the provider got $want");
    my $after = () = $evil->requests;
    is($after, $before + 1, "$path: one request reached the provider");
}

# --- paths that could leave the location -------------------------------------

# [path, detail regex]
my $dot = qr/dot segment/;
my @bad = (
    # the servlet forms: ";" parameters on a dot segment
    ['/person/..;/tax/1', $dot],
    ['/population/..;/tax/1', $dot],
    ['/person/..;jsessionid=0A1B2C/tax/1', $dot],
    ['/population/..;jsessionid=0A1B2C/tax/1', $dot],
    ['/person/..%3B/tax/1', $dot],
    ['/population/..%3b/tax/1', $dot],
    ['/person/%2e%2e;x/tax/1', $dot],
    ['/population/%2E%2E;x/tax/1', $dot],
    ['/population/%2e%2e%3bx/tax/1', $dot],
    ['/person/.%2e;/tax/1', $dot],
    ['/person/.;/1', $dot],
    # encoded twice, three times
    ['/person/%252e%252e;/tax/1', $dot],
    ['/population/%252e%252e%253b/tax/1', $dot],
    ['/person/%25252e%25252e/tax/1', $dot],
    ['/population/%252e%252e/tax/1', $dot],
    ['/person/%25252525252e/tax/1', qr/too many times/],
    # plain dot segments: nginx resolves them, the path as sent keeps them
    ['/person/../tax/1', $dot],
    ['/tax/../person/1', $dot],
    ['/person/./1', $dot],
    ['/population/%2e%2e/tax/1', $dot],
    ['/person/%2e/1', $dot],
    # what Windows servers drop
    ['/person/.../tax/1', $dot],
    ['/person/..%20/tax/1', $dot],
    # parameters elsewhere: nginx matches "/", a servlet container /tax/1
    ['/tax;x=1/1', qr/parameters/],
    ['/person;x/1', qr/parameters/],
    ['/tax%3Bx/1', qr/parameters/],
    ['/person/1;jsessionid=0A1B2C', qr/parameters/],
    ['/population/1;v=2', qr/parameters/],
    # separators some servers see
    ['/person/..%2Ftax/1', qr/encoded "\/"/],
    ['/population/..%2ftax%2f1', qr/encoded "\/"/],
    ['/person/a%252Fb', qr/encoded "\/"/],
    ['/person/..%5Ctax%5C1', qr/"\\"/],
    ['/population/..%5ctax/1', qr/"\\"/],
    ['/person\\..\\tax\\1', qr/"\\"/],
    ['/person/1\\', qr/"\\"/],
    # never valid
    ['/person/%c0%ae%c0%ae/tax/1', qr/overlong/],
    ['/population/%c0%ae%c0%ae/tax/1', qr/overlong/],
    ['/person/1%2500', qr/NUL/],
    ['/person/1#/../../tax/1', qr/"#"/],
);

my %seen;
for my $b (@bad) {
    my ($path, $why) = @$b;
    my $before = () = $evil->requests;
    my $r = $n->request('GET', $path, cert => 'assistance', headers => \@OK);
    my $j = json_of($r);
    is($r->status, 400, "$path: 400") or diag($r->body);
    is($j->{error}{code}, 'request_rejected', "$path: request_rejected");
    like($j->{error}{message}, $why, "$path: the message says why");
    like($j->{error}{request_id} // '', qr/^[0-9a-f]{32}$/,
         "$path: request id");
    my $after = () = $evil->requests;
    is($after, $before, "$path: nothing reached the provider");
    my $rec = record_of($n, $j->{error}{request_id} // '-');
    is($rec->{uri}, $path, "$path: audited with the path as sent");
    is_deeply([@$rec{qw(decision reason status consumer)}],
              ['denied', 'request_rejected', 400,
               'civil-affairs.assistance'],
              "$path: audited as denied, request_rejected, 400");
    like($rec->{detail} // '', $why, "$path: the audit record says why");
    push @{ $seen{$path} }, $rec;
}

# audited under the dataset of the location nginx chose
is($seen{'/person/..;/tax/1'}[0]{dataset}, 'population.person',
   '..; : the dataset nginx matched (population.person)');
is($seen{'/tax;x=1/1'}[0]{dataset}, 'open.echo',
   ';x : the dataset nginx matched (the catch-all)');
is($seen{'/person/../tax/1'}[0]{dataset}, 'tax.secret',
   '..: nginx resolved it to /tax/1 (tax.secret)');

# a refused path for a consumer the policy does not know: the identity
# answer comes first
{
    my $r = $n->request('GET', '/person/..;/tax/1', cert => 'unknown',
                        headers => \@OK);
    is($r->status, 403, 'unknown consumer, bad path: 403');
    is(json_of($r)->{error}{code}, 'unknown_consumer',
       'unknown consumer, bad path: unknown_consumer');
}

# nginx's own refusals of malformed paths stay 400 and never reach it
for my $path ('/person/%00', '/person/%zz', '/../person/1') {
    my $before = () = $evil->requests;
    my $r = $n->request('GET', $path, cert => 'assistance', headers => \@OK);
    is($r->status, 400, "$path: nginx refuses it: 400");
    my $after = () = $evil->requests;
    is($after, $before, "$path: nothing reached the provider");
}

# not enforced: datagate leaves the path alone
{
    my $r = $n->request('GET', '/plain/1;x', cert => 'assistance');
    is($r->status, 200, 'datagate off: the path is not checked');
    is(json_of($r)->{uri}, '/person/1;x', 'datagate off: forwarded');
}

# --- headers datagate reads: once each -----------------------------------

my $evil_lines = sub {
    my ($r) = @_;
    return join('|', @{ json_of($r)->{lines} || [] });
};

{
    my $r = $n->request('GET', '/person/1', cert => 'assistance',
                        headers => [@OK, 'Datagate-Request-Id: trace-1']);
    is($r->status, 200, 'one of each: 200');
    my $lines = $evil_lines->($r);
    like($lines, qr/^Data-Purpose: social-assistance\|/,
         'one of each: the provider got the purpose once');
    is(() = $lines =~ /Data-Purpose:/gi, 1, 'one Data-Purpose line');
    is(() = $lines =~ /Datagate-Purpose:/gi, 1, 'one Datagate-Purpose line');
    like($lines, qr/Datagate-Request-Id: trace-1/, 'the request id reused');
}

# [title, extra or replacing headers, detail regex]
my @dups = (
    ['Data-Purpose twice, two values',
     ['Data-Purpose: social-assistance', 'Data-Purpose: housing-security',
      'Data-Approval: GXSJ-2024-0137'], qr/"Data-Purpose" is sent more/],
    ['Data-Purpose twice, the same value',
     [@OK, 'Data-Purpose: social-assistance'], qr/"Data-Purpose"/],
    ['Data-Purpose twice, other case',
     ['data-purpose: social-assistance', 'DATA-PURPOSE: social-assistance',
      'Data-Approval: GXSJ-2024-0137'], qr/"Data-Purpose"/],
    ['Data-Purpose twice, the second empty',
     [@OK, 'Data-Purpose:'], qr/"Data-Purpose"/],
    ['Data-Approval twice',
     [@OK, 'Data-Approval: GXSJ-1999-0001'], qr/"Data-Approval"/],
    ['Data-Approval twice, the same value',
     [@OK, 'Data-Approval: GXSJ-2024-0137'], qr/"Data-Approval"/],
    ['Datagate-Request-Id twice',
     [@OK, 'Datagate-Request-Id: one', 'Datagate-Request-Id: two'],
     qr/"Datagate-Request-Id"/],
    ['Datagate-Request-Id twice, the same value',
     [@OK, 'Datagate-Request-Id: one', 'datagate-request-id: one'],
     qr/"Datagate-Request-Id"/],
);

for my $c (@dups) {
    my ($title, $hs, $why) = @$c;
    my $before = () = $evil->requests;
    my $r = $n->request('GET', '/person/1', cert => 'assistance',
                        headers => $hs);
    my $j = json_of($r);
    is($r->status, 400, "$title: 400") or diag($r->body);
    is($j->{error}{code}, 'request_rejected', "$title: request_rejected");
    like($j->{error}{message}, $why, "$title: the message names the header");
    like($j->{error}{request_id} // '', qr/^[0-9a-f]{32}$/,
         "$title: a request id of the gateway's");
    my $after = () = $evil->requests;
    is($after, $before, "$title: nothing reached the provider");
    my $rec = record_of($n, $j->{error}{request_id} // '-');
    is_deeply([@$rec{qw(decision reason status)}],
              ['denied', 'request_rejected', 400], "$title: audited");
    like($rec->{detail} // '', $why, "$title: the audit record says why");
}

# one header with two values is one value: a purpose the policy lacks
{
    my $before = () = $evil->requests;
    my $r = $n->request('GET', '/person/1', cert => 'assistance',
        headers => ['Data-Purpose: social-assistance, housing-security',
                    'Data-Approval: GXSJ-2024-0137']);
    is($r->status, 403, 'a list in one Data-Purpose: 403');
    is(json_of($r)->{error}{code}, 'purpose_unknown',
       'a list in one Data-Purpose: purpose_unknown');
    my $after = () = $evil->requests;
    is($after, $before, 'a list in one Data-Purpose: not forwarded');
}

# on an unconditional dataset too (no purpose needed, still refused)
{
    my $r = $n->request('GET', '/x/1', cert => 'assistance',
        headers => ['Data-Purpose: a', 'Data-Purpose: b']);
    is($r->status, 400, 'unconditional dataset, two purposes: 400');
}

# HTTP/2: repeated fields, and the path checks
SKIP: {
    skip 'curl without HTTP/2', 10 unless `curl --version` =~ /HTTP2/;
    my $h2 = DGTest::free_port();
    my $m = DGTest::Nginx->new(policy => $POLICY, config => $CONFIG,
                               http_config => <<"END");
    server {
        listen 127.0.0.1:$h2 ssl http2;
        ssl_certificate \$TEST_NGINX_CERTS/server.crt;
        ssl_certificate_key \$TEST_NGINX_CERTS/server.key;
        ssl_client_certificate \$TEST_NGINX_CERTS/ca.crt;
        ssl_verify_client on;
$CONFIG
    }
END
    $m->evil_scenarios(person => $ECHO);
    $m->start;
    my $certs = $DGTest::CERTS;
    my $curl = sub {
        my ($path, @h) = @_;
        my $hs = join ' ', map { "-H '$_'" } @h;
        return `curl -s --http2 --path-as-is --cacert $certs/ca.crt --cert $certs/assistance.crt --key $certs/assistance.key $hs -w '\\n%{http_version} %{http_code}' 'https://localhost:$h2$path' 2>&1`;
    };
    my $out = $curl->('/person/1', @OK);
    like($out, qr/\n2 200$/, 'HTTP/2: one of each: 200');
    $out = $curl->('/person/1', @OK, 'Data-Purpose: housing-security');
    like($out, qr/\n2 400$/, 'HTTP/2: Data-Purpose twice: 400');
    like($out, qr/"request_rejected"/, 'HTTP/2: request_rejected');
    like($out, qr/\\"Data-Purpose\\" is sent more than once/,
         'HTTP/2: the message names the header');
    $out = $curl->('/person/1', @OK, 'Data-Approval: GXSJ-2024-0137');
    like($out, qr/\n2 400$/, 'HTTP/2: Data-Approval twice: 400');
    $out = $curl->('/person/..;/tax/1', @OK);
    like($out, qr/\n2 400$/, 'HTTP/2: ..; in the path: 400');
    like($out, qr/dot segment/, 'HTTP/2: dot segment');
    my @reached = grep { m{^GET /person/1 } } $m->evil->requests;
    is(scalar @reached, 1, 'HTTP/2: only the good request reached the '
       . 'provider');
    $m->stop;
    unlike($m->error_log, qr/\[(alert|crit)\]/, 'HTTP/2: no alert/crit');
    is($m->valgrind_errors, '', 'HTTP/2: valgrind clean (when asked)');
}

# underscores_in_headers on: "Data_Purpose" is refused, "Datagate_*"
# never reaches the provider
{
    my $u = gateway(config => "underscores_in_headers on;\n$CONFIG");
    my $ev = $u->evil;
    my $r = $u->request('GET', '/person/1', cert => 'assistance',
        headers => [@OK, 'Data_Purpose: housing-security']);
    is($r->status, 400, 'Data_Purpose beside Data-Purpose: 400');
    like(json_of($r)->{error}{message} // '', qr/"Data-Purpose"/,
         'Data_Purpose: named');
    $r = $u->request('GET', '/person/1', cert => 'assistance',
        headers => ['Data_Purpose: social-assistance',
                    'Data-Approval: GXSJ-2024-0137']);
    is($r->status, 400, 'Data_Purpose alone: 400');
    like(json_of($r)->{error}{message} // '', qr/spelled with "_"/,
         'Data_Purpose alone: the message says so');
    is(scalar(() = $ev->requests), 0, 'Data_Purpose: nothing reached the '
       . 'provider');
    $r = $u->request('GET', '/person/1', cert => 'assistance',
        headers => [@OK, 'Datagate_Consumer: tax.office',
                    'datagate_purpose: tax-audit']);
    is($r->status, 200, 'Datagate_* headers: 200');
    my $lines = $evil_lines->($r);
    unlike($lines, qr/datagate_/i, 'Datagate_* headers: not forwarded');
    like($lines, qr/Datagate-Consumer: civil-affairs\.assistance/,
         'Datagate_* headers: the gateway\'s own consumer header');
    $u->stop;
    unlike($u->error_log, qr/\[(alert|crit)\]/, 'underscores: no alert');
    is($u->valgrind_errors, '', 'underscores: valgrind clean (when asked)');
}

$n->stop;
is($n->valgrind_errors, '', 'valgrind clean (when asked)');
my $log = $n->error_log;
unlike($log, qr/\[(alert|crit)\]/, 'no alert/crit');
like($log, qr/datagate: denied request_rejected consumer=civil-affairs\.assistance/,
     'refusals are logged');

done_testing();
