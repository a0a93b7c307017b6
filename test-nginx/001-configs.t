# The shipped configurations work: config/nginx.conf (the network team's
# example) passes `nginx -t` with the module and the sample policy, and the
# demo (config/demo.nginx.conf.template + policy/sample.yaml + demo data)
# answers the calls scripts/run-demo.sh shows the way it says.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest qw(:DEFAULT $TOP $MODULE $CERTS);

my $policy = "$TOP/policy/sample.yaml";
my $root = $> == 0 ? 'user root;' : '';

# --- config/nginx.conf -------------------------------------------------------

{
    my $n = DGTest::Nginx->new;
    my $d = $n->dir;
    my $c = DGTest::slurp("$TOP/config/nginx.conf");
    my $up = $n->upstream_port;
    my %subst = (
        'load_module /usr/lib/nginx/modules/ngx_http_datagate_module.so;'
                                           => DGTest::load_line(),
        'user www-data;'                   => $root,
        '/run/nginx.pid'                   => "$d/nginx.pid",
        '/var/log/nginx/'                  => "$d/",
        '/var/log/datagate/'               => "$d/",
        '/etc/datagate/policy/'            => $policy,
        '/etc/datagate/datagate.secret'    => "$d/datagate.secret",
        '/etc/datagate/pki/gateway.crt'    => "$CERTS/server.crt",
        '/etc/datagate/pki/gateway.key'    => "$CERTS/server.key",
        '/etc/datagate/pki/platform-ca.pem' => "$CERTS/ca.crt",
        '/etc/datagate/pki/platform.crl.pem' => "$CERTS/crl.pem",
        'listen 443 ssl'                   => 'listen 127.0.0.1:' . $n->port
                                              . ' ssl',
        'listen 10.10.0.5:9145'            => "listen 127.0.0.1:$up",
    );
    for my $k (sort { length $b <=> length $a } keys %subst) {
        my $cnt = $c =~ s/\Q$k\E/$subst{$k}/g;
        ok($cnt, "config/nginx.conf: has '$k'");
    }
    (my $directives = $c) =~ s/#.*//g;
    unlike($directives, qr{/etc/datagate|/var/log/datagate},
           'all paths replaced');
    $n->{conf} = $c;
    my ($rc, $out) = $n->test_conf;
    is($rc, 0, 'config/nginx.conf passes nginx -t') or diag($out);
    unlike($out, qr/\[(alert|crit|emerg)\]/, 'nginx -t output clean');
}

# --- config/conf.d/datagate.conf --------------------------------------------
# the snippet datagate-tools ships for Debian's conf.d: inside http {}, the
# module loaded elsewhere; it serves a masked answer from the demo data

{
    my $n = DGTest::Nginx->new;
    my $d = $n->dir;
    my $c = DGTest::slurp("$TOP/config/conf.d/datagate.conf");
    my ($gw, $up) = ($n->port, $n->upstream_port);
    my $st = DGTest::free_port();
    my %subst = (
        '/etc/datagate/policy/'             => $policy,
        '/etc/datagate/datagate.secret'     => "$d/datagate.secret",
        '/etc/datagate/pki/gateway.crt'     => "$CERTS/server.crt",
        '/etc/datagate/pki/gateway.key'     => "$CERTS/server.key",
        '/etc/datagate/pki/platform-ca.pem' => "$CERTS/ca.crt",
        '/etc/datagate/pki/platform.crl.pem' => "$CERTS/crl.pem",
        '/var/log/nginx/datagate-audit.log' => "$d/audit.log",
        'listen 443 ssl'                    => "listen 127.0.0.1:$gw ssl",
        'server 10.20.1.10:8080'            => "server 127.0.0.1:$up",
        'listen 127.0.0.1:9145'             => "listen 127.0.0.1:$st",
    );
    for my $k (sort { length $b <=> length $a } keys %subst) {
        my $cnt = $c =~ s/\Q$k\E/$subst{$k}/g;
        ok($cnt, "conf.d/datagate.conf: has '$k'");
    }
    (my $directives = $c) =~ s/#.*//g;
    unlike($directives, qr{/etc/datagate|load_module},
           'conf.d/datagate.conf: all paths replaced, loads nothing');
    my $load = DGTest::load_line();
    $n->{conf} = <<"EOF";
$load
$root
pid $d/nginx.pid;
error_log $d/error.log info;

events {
}

http {
    access_log $d/access.log;
    client_body_temp_path $d/client_body_temp;
    proxy_temp_path $d/proxy_temp;
    fastcgi_temp_path $d/fastcgi_temp;
    uwsgi_temp_path $d/uwsgi_temp;
    scgi_temp_path $d/scgi_temp;

$c

    server {
        listen 127.0.0.1:$up;
        root $d/html;
        default_type application/json;

        location / {
            try_files \$uri \$uri.json \$uri/ =404;
        }
    }
}
EOF
    my ($rc, $out) = $n->test_conf;
    is($rc, 0, 'conf.d/datagate.conf passes nginx -t') or diag($out);
    $n->start;
    my $r = $n->request('GET', '/population/1', cert => 'assistance',
                        headers => ['Data-Purpose: social-assistance',
                                    'Data-Approval: GXSJ-2024-0137']);
    is($r->status, 200, 'conf.d/datagate.conf: a granted call: 200')
        or diag(substr($r->body, 0, 300));
    my $j = eval { $r->json } || {};
    is($j->{id_card}, '450103********1242',
       'conf.d/datagate.conf: id_card masked');
    $n->stop;
    unlike($n->error_log, qr/\[(alert|crit|emerg)\]/,
           'conf.d/datagate.conf: no alert/crit');
}

# --- the demo ------------------------------------------------------------------

my $n = DGTest::Nginx->new;
my $d = $n->dir;
mkdir "$d/tmp";
my $c = DGTest::slurp("$TOP/config/demo.nginx.conf.template");
$c =~ s/\@PREFIX\@\/provider/$d\/html/g;
$c =~ s/^load_module \@MODULE\@;$/DGTest::load_line()/me
    or die 'demo config: no load_module line';
my %subst = (MODULE => $MODULE, PREFIX => $d, CERTS => $CERTS,
             POLICY => $policy, GATEWAY_PORT => $n->port,
             PROVIDER_PORT => $n->upstream_port, USER => $root);
$c =~ s/\@(\w+)\@/exists $subst{$1} ? $subst{$1} : die "no \@$1\@"/ge;
# another virtual host on the provider's port: a client's Host must never
# choose it (the gateway sends the upstream's name)
my $up = $n->upstream_port;
my $vhost = <<"END";
    server {
        listen 127.0.0.1:$up;
        server_name other.provider.test;
        location / {
            default_type application/json;
            return 200 '{"vhost":"other"}';
        }
    }
END
$c =~ s/\}\s*\z/$vhost}\n/ or die "demo config: no closing brace";
$n->{conf} = $c;
$n->start;

my $apr = 'Data-Approval: GXSJ-2024-0137';

# [title, cert, path, [headers], status, error code or JSON subset]
my @calls = (
    ['allowed, masked', 'assistance', '/population/1',
     ['Data-Purpose: social-assistance', $apr], 200,
     {id => 1, name => '韦秀兰', id_card => '450103********1242',
      phone => '138****2345'}],
    ['list, masked', 'hrss', '/social-security/',
     ['Data-Purpose: employment-service'], 200,
     {total => 4, data => [{bank_card => 'qr/^\*+6786$/', name => '韦秀兰',
                            id_card => '450103********1242'}, {}, {}, {}]}],
    ['unconditional', 'market', '/enterprise/1',
     ['Data-Purpose: market-regulation'], 200,
     {uscc => '91450100MA5K8X3R0M', legal_rep => '韦**',
      legal_rep_id => '450103********1242', phone => '138****2345'}],
    ['allow-list dataset', 'housing', '/realestate/1',
     ['Data-Purpose: housing-security'], 200, {}],
    ['no purpose', 'assistance', '/population/1', [], 403,
     'purpose_required'],
    ['no approval', 'assistance', '/population/1',
     ['Data-Purpose: social-assistance'], 403, 'approval_required'],
    ['purpose not granted', 'assistance', '/population/1',
     ['Data-Purpose: market-regulation', $apr], 403, 'purpose_not_granted'],
    ['grant expired', 'hrss', '/population/1',
     ['Data-Purpose: employment-service'], 403, 'grant_expired'],
    ['level exceeded', 'housing', '/enterprise/1',
     ['Data-Purpose: housing-security'], 403, 'level_exceeded'],
    ['unknown consumer', 'unknown', '/population/1',
     ['Data-Purpose: social-assistance'], 403, 'unknown_consumer'],
    ['never shared', 'assistance', '/tax/1',
     ['Data-Purpose: social-assistance'], 403, 'dataset_not_shared'],
    ['foreign CA', 'foreign', '/population/1',
     ['Data-Purpose: social-assistance'], 401, 'client_certificate_required'],
);

for my $t (@calls) {
    my ($title, $cert, $path, $hdrs, $status, $want) = @$t;
    my $r = $n->request('GET', $path, cert => $cert, headers => $hdrs);
    is($r->status, $status, "demo: $title: $status")
        or diag(substr($r->body, 0, 300));
    next unless defined $want;
    my $j = eval { $r->json };
    ok($j, "demo: $title: JSON body") or next;
    if (ref $want) {
        my $diff = json_match($j, $want, 1);
        ok(!$diff, "demo: $title: body") or diag($diff);
    } else {
        is($j->{error}{code}, $want, "demo: $title: $want");
    }
}

my $r = $n->request('GET', '/population/1', cert => 'assistance',
                    headers => ['Data-Purpose: social-assistance', $apr]);
my $j = eval { $r->json } || {};
ok(!exists $j->{ethnicity}, 'demo: the grant drops ethnicity');
unlike($r->body, qr/13877112345|450103199003071242/,
       'demo: no clear phone or ID number');

for my $host ('other.provider.test', 'other.provider.test:8081') {
    $r = $n->request('GET', '/population/1', cert => 'assistance',
                     host => $host,
                     headers => ['Data-Purpose: social-assistance', $apr]);
    is($r->status, 200, "demo: Host: $host: 200");
    unlike($r->body, qr/"vhost"/,
           "demo: Host: $host does not choose the provider's virtual host");
    like($r->body, qr/"id_card":\s*"450103\*{8}1242"/,
         "demo: Host: $host: the provider's data, masked");
}

$r = $n->request('GET', '/realestate/1', cert => 'housing',
                 headers => ['Data-Purpose: housing-security']);
unlike($r->body, qr/"usage"|"co_owners"\s*:\s*\[\s*\{\s*"name"/,
       'demo: allow-list drops unlisted keys');

$r = $n->request('GET', '/datagate/catalogue', cert => 'assistance');
is($r->status, 200, 'demo: the catalogue');
is(eval { $r->json->{consumer}{id} }, 'civil-affairs.assistance',
   'demo: the catalogue of the calling consumer');
is($n->request('GET', '/datagate/catalogue', cert => 'unknown')->status, 403,
   'demo: no catalogue for an unknown certificate');

$r = $n->request('GET', '/datagate/status', cert => 'assistance');
is($r->status, 200, 'demo: status endpoint');
like($r->body, qr/population\.person/, 'demo: status counts the dataset');

$n->stop;
my $log = $n->error_log;
unlike($log, qr/\[(alert|crit)\]/, 'demo: error log has no alert/crit');
ok(-s "$d/audit.log", 'demo: audit log written');

done_testing();
