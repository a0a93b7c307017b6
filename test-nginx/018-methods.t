# Methods and grants on datasets: a dataset allows GET and HEAD unless its
# `methods:` says otherwise; any other method (known, extension, unknown,
# enormous) answers 403 method_not_granted and never reaches the provider.
# A grant's methods narrow its dataset's. On an unconditional dataset a
# grant only adds (methods, reveal, drop): outside its window, without its
# approval or for another purpose the request is decided by clearance, as
# if the grant did not exist. The adversarial provider logs every request
# head it receives, so "never reached" is checked there.

use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use DGTest;

my $POLICY = <<'Y';
classes:
  person.id_number: {level: 4, mask: id_card}
  person.phone:     {level: 3, mask: phone}
  person.name:      {level: 3, mask: name}
  finance.bank_card: {level: 4, mask: bank_card}
purposes:
  p: {name: P}
  q: {name: Q}
consumers:
  - id: assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
  - id: hrss
    cert: {san: "DNS:hrss.gx.gov.cn"}
    clearance: 3
  - id: market
    cert: {subject: "CN=market-supervision,O=Market Supervision,C=CN"}
    clearance: 2
datasets:
  # unconditional, the default methods
  - id: open
    share: unconditional
    level: 1
    fields: {id_card: person.id_number, phone: person.phone,
             name: person.name, bank_card: finance.bank_card}
  # unconditional, its own methods (one an extension method)
  - id: open.post
    share: unconditional
    level: 1
    fields: {id_card: person.id_number, phone: person.phone,
             name: person.name, bank_card: finance.bank_card}
    methods: [GET, HEAD, POST, PROPFIND]
  # conditional, GET and POST
  - id: cond
    share: conditional
    level: 3
    fields: {id_card: person.id_number, phone: person.phone,
             name: person.name, bank_card: finance.bank_card}
    methods: [GET, POST]
grants:
  - consumer: assistance        # narrows cond to GET
    dataset: cond
    purposes: [p]
    methods: [GET]
  - consumer: hrss              # the dataset's methods
    dataset: cond
    purposes: [p]
  - consumer: market            # adds to open.post for p
    dataset: open.post
    purposes: [p]
    methods: [GET]
    reveal: [name]
    drop: [phone]
  - consumer: hrss              # expired: takes nothing away
    dataset: open.post
    purposes: [p]
    valid: {until: 2020-12-31}
    methods: [GET]
    drop: [phone, name]
  - consumer: hrss              # with its approval only
    dataset: open.post
    purposes: [q]
    approval: A-1
    reveal: [id_card]
Y

my $CONFIG = <<'C';
        location /open/ {
            datagate_dataset open;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/rec/open/;
        }
        location /open-post/ {
            datagate_dataset open.post;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/rec/post/;
        }
        location /cond/ {
            datagate_dataset cond;
            proxy_pass http://127.0.0.1:$TEST_NGINX_EVIL_PORT/rec/cond/;
        }
C

my $n = DGTest::Nginx->new(policy => $POLICY, config => $CONFIG);
# the provider answers every method with a clear record
$n->evil_scenarios(rec => <<'P');
my $b = person_json();
send_raw(head(200, 'Content-Type: application/json',
              'Content-Length: ' . length $b) . $b);
P
$n->start;

sub code_of {
    my ($r) = @_;
    my $j = eval { $r->json };
    return ref $j eq 'HASH' && $j->{error} ? $j->{error}{code} : '';
}

# what reached the provider: "METHOD URI" per request, in order
my $seen = 0;
sub reached {
    my @r = map { /^(\S+ \S+)/ ? $1 : '?' } $n->evil->requests;
    my @new = @r[$seen .. $#r];
    $seen = @r;
    return @new;
}

sub call {
    my ($m, $uri, $cert, $purpose, %o) = @_;
    return $n->request($m, $uri, cert => $cert,
                       headers => ["Data-Purpose: $purpose",
                                   @{ $o{headers} // [] }],
                       defined $o{body} ? (body => $o{body}) : ());
}

# --- an unconditional dataset with the default methods ----------------------

my $long = 'X' x 2500;

for my $m (qw(DELETE PUT POST PATCH OPTIONS PROPFIND MKCOL BREW X-Y_Z),
           'SEARCH', $long)
{
    my $name = length $m > 20 ? 'a 2500-byte method' : $m;
    my $r = call($m, '/open/1', 'market', 'p',
                 $m =~ /^(PUT|POST|PATCH)$/ ? (body => '{"a":1}') : ());
    is($r->status, 403, "open, $name: 403");
    is(code_of($r), 'method_not_granted', "open, $name: method_not_granted");
    like($r->header('Content-Type') // '', qr{^application/json},
         "open, $name: JSON");
}
is_deeply([reached()], [], 'none of them reached the provider');

# nginx itself refuses what is not a method at all, before any location
for my $m ('get', 'Get', 'G@T') {
    my $r = call($m, '/open/1', 'market', 'p');
    ok($r->status >= 400 && $r->status < 500, "'$m': refused ("
       . $r->status . ')');
}
for my $m (qw(TRACE CONNECT)) {
    my $r = call($m, '/open/1', 'market', 'p');
    ok($r->status >= 400 && $r->status < 500, "$m: refused ("
       . $r->status . ')');
}
is_deeply([reached()], [], 'nor did these');

{
    my $r = call('GET', '/open/1', 'market', 'p');
    is($r->status, 200, 'open, GET: 200');
    like($r->body, qr/"id_card":"450103\*{8}1242"/, 'open, GET: masked');
    $r = call('HEAD', '/open/1', 'market', 'p');
    is($r->status, 200, 'open, HEAD: 200');
    is_deeply([reached()], ['GET /rec/open/1', 'HEAD /rec/open/1'],
              'GET and HEAD reached the provider');
}

# --- a dataset's own methods, an extension method -------------------------

{
    my $r = call('PROPFIND', '/open-post/1', 'assistance', 'p');
    is($r->status, 200, 'open.post, PROPFIND (listed): 200');
    like($r->body, qr/"phone":"138\*{4}2345"/, 'masked by clearance');
    $r = call('POST', '/open-post/1', 'assistance', 'q', body => '{}');
    is($r->status, 200, 'open.post, POST: 200');
    for my $m (qw(DELETE PUT MKCOL)) {
        $r = call($m, '/open-post/1', 'assistance', 'p');
        is(code_of($r), 'method_not_granted', "open.post, $m: refused");
    }
    is_deeply([reached()], ['PROPFIND /rec/post/1', 'POST /rec/post/1'],
              'only the allowed methods reached the provider');
}

# --- a conditional dataset: grants narrow -----------------------------------

{
    my $r = call('POST', '/cond/1', 'assistance', 'p', body => '{}');
    is(code_of($r), 'method_not_granted', 'cond, grant [GET]: POST refused');
    $r = call('GET', '/cond/1', 'assistance', 'p');
    is($r->status, 200, 'cond, grant [GET]: GET');
    $r = call('HEAD', '/cond/1', 'assistance', 'p');
    is($r->status, 403, 'cond, grant [GET]: HEAD refused (no body)');
    $r = call('POST', '/cond/1', 'hrss', 'p', body => '{}');
    is($r->status, 200, 'cond, grant without methods: POST (the dataset\'s)');
    $r = call('HEAD', '/cond/1', 'hrss', 'p');
    is($r->status, 403,
       'cond, grant without methods: HEAD is not the dataset\'s');
    $r = call('PUT', '/cond/1', 'hrss', 'p', body => '{}');
    is(code_of($r), 'method_not_granted', 'cond: PUT refused');
    is_deeply([reached()], ['GET /rec/cond/1', 'POST /rec/cond/1'],
              'cond: only the allowed calls reached the provider');
}

# --- grants on an unconditional dataset only add --------------------------

{
    # market, p: the grant applies: GET only, name revealed, phone dropped
    my $r = call('GET', '/open-post/1', 'market', 'p');
    is($r->status, 200, 'market p: allowed');
    my $j = eval { $r->json } || {};
    is($j->{name}, '韦秀兰', 'market p: the grant reveals name');
    ok(!exists $j->{phone}, 'market p: the grant drops phone');
    is($j->{id_card}, '450103********1242', 'market p: id_card masked');
    $r = call('POST', '/open-post/1', 'market', 'p', body => '{}');
    is(code_of($r), 'method_not_granted', 'market p: POST narrowed away');
    $r = call('PROPFIND', '/open-post/1', 'market', 'p');
    is(code_of($r), 'method_not_granted', 'market p: PROPFIND narrowed away');

    # market, q: no grant for q: by clearance, the dataset's methods
    $r = call('POST', '/open-post/1', 'market', 'q', body => '{}');
    is($r->status, 200, 'market q: POST (no grant for q)');
    $j = eval { $r->json } || {};
    is($j->{name}, '韦**', 'market q: name masked by clearance');
    is($j->{phone}, '138****2345', 'market q: phone masked, not dropped');

    # hrss, p: its grant expired in 2020: takes nothing away
    $r = call('POST', '/open-post/1', 'hrss', 'p', body => '{}');
    is($r->status, 200, 'expired grant: POST still allowed');
    $j = eval { $r->json } || {};
    is($j->{phone}, '13877112345', 'expired grant: phone by clearance 3');
    is($j->{name}, '韦秀兰', 'expired grant: name by clearance 3');

    # hrss, q: approval A-1 makes the grant apply (reveal id_card)
    $r = call('GET', '/open-post/1', 'hrss', 'q');
    is($r->status, 200, 'grant with approval, none sent: allowed anyway');
    like($r->body, qr/"id_card":"450103\*{8}1242"/,
         '... by clearance: id_card masked');
    $r = call('GET', '/open-post/1', 'hrss', 'q',
              headers => ['Data-Approval: A-2']);
    is($r->status, 200, 'a wrong approval: allowed by clearance');
    like($r->body, qr/"id_card":"450103\*{8}1242"/, '... id_card masked');
    $r = call('GET', '/open-post/1', 'hrss', 'q',
              headers => ['Data-Approval: A-1']);
    like($r->body, qr/"id_card":"450103199003071242"/,
         'with its approval the grant reveals id_card');
    like($r->body, qr/"bank_card":"\*+0128"/,
         '... and nothing else: bank_card masked');
    reached();
}

# --- method overrides a provider's framework may obey ----------------------

{
    my @over = (
        ['X-HTTP-Method-Override: DELETE', '/open/1'],
        ['X-HTTP-Method: PUT', '/open/1'],
        ['X-Method-Override: patch', '/open/1'],
        ['x-http-method-override:  delete ', '/open/1'],
        ['X-HTTP-Method-Override: GET, DELETE', '/open/1'],
        ['X-HTTP-Method-Override: GET', '/open/1?_method=DELETE'],
        [undef, '/open/1?_method=delete'],
        [undef, '/open/1?a=1&_method=PUT'],
        [undef, '/open/1?%5Fmethod=DELETE'],
        [undef, '/open/1?%5fMETHOD=DELETE'],
        [undef, '/open/1?.method=DELETE'],
        [undef, '/open/1?+method=DELETE'],
        [undef, '/open/1?[method=DELETE'],
        [undef, '/open/1?x=1;_method=DELETE'],
        [undef, '/open/1?_method=%44ELETE'],
        [undef, '/open/1?_method=' . ('A' x 500)],
        ['X-HTTP-Method-Override: ' . ('D' x 100), '/open/1'],
    );
    for my $c (@over) {
        my ($h, $uri) = @$c;
        my $what = substr(($h // '') . " $uri", 0, 60);
        my $r = call('GET', $uri, 'assistance', 'p',
                     headers => [defined $h ? $h : ()]);
        is(code_of($r), 'method_not_granted', "override refused: $what");
    }
    # market's grant narrows open.post to GET for p: no override past it
    my $r = call('GET', '/open-post/1', 'market', 'p',
                 headers => ['X-HTTP-Method-Override: POST']);
    is(code_of($r), 'method_not_granted',
       'override outside the grant\'s methods: refused');
    # a POST on open.post overridden to PROPFIND: both allowed
    $r = call('POST', '/open-post/1', 'assistance', 'p', body => '{}',
              headers => ['X-HTTP-Method-Override: PROPFIND']);
    is($r->status, 200, 'override to an allowed method: allowed');
    $r = call('GET', '/open/1?_method=GET&x=_method', 'assistance', 'p',
              headers => ['X-HTTP-Method-Override: get']);
    is($r->status, 200, 'overrides naming the request\'s own method: allowed');
    $r = call('GET', '/open/1?method=DELETE&x_method=PUT&_methods=PUT',
              'assistance', 'p', headers => ['X-HTTP-Method-Override:']);
    is($r->status, 200, 'other parameters, an empty override: allowed');
    is_deeply([reached()], ['POST /rec/post/1',
                            'GET /rec/open/1?_method=GET&x=_method',
                            'GET /rec/open/1?method=DELETE&x_method=PUT'
                            . '&_methods=PUT'],
              'no refused override reached the provider');
}

# the audit of a refused method names it, and the decision

$n->stop;
my $log = $n->error_log;
like($log, qr/datagate: denied method_not_granted consumer=market dataset=open purpose=p/,
     'the denial is logged');
unlike($log, qr/\[(alert|crit|emerg)\]/, 'no alert/crit');

# with underscores_in_headers on, a CGI-style provider reads
# X_HTTP_Method_Override as X-HTTP-Method-Override: so does the gateway
{
    my $m = start_nginx(policy => $POLICY,
                        config => "        underscores_in_headers on;\n"
                                  . $CONFIG);
    my $r = $m->request(GET => '/open/1', cert => 'market',
                        headers => ['Data-Purpose: p',
                                    'X_HTTP_Method_Override: DELETE']);
    is(code_of($r), 'method_not_granted',
       'X_HTTP_Method_Override (underscores_in_headers on): refused');
    $m->stop;
}

# --- nginx -t: bad methods with file and line ---------------------------------

for my $c (
    ['GE T', qr/policy\.yaml:7: datasets\[0\]\.methods: bad method 'GE T'/],
    ['"GET/2"', qr/policy\.yaml:7: datasets\[0\]\.methods: bad method 'GET\/2'/],
    ['GET, get', qr/policy\.yaml:7: datasets\[0\]\.methods: method GET is listed twice/],
)
{
    my ($m, $re) = @$c;
    my ($ok, $out) = nginx_t(policy => <<"Y", config => <<'C');
purposes: {p: {}}
consumers: []
datasets:
  - id: d
    share: unconditional
    level: 1
    methods: [$m]
Y
        location / { datagate_dataset d; proxy_pass http://127.0.0.1:1; }
C
    ok(!$ok, "methods: [$m]: nginx -t fails");
    like($out, $re, "methods: [$m]: file, line and field");
}

{
    my ($ok, $out) = nginx_t(policy => <<'Y', config => <<'C');
purposes: {p: {}}
consumers:
  - {id: c, cert: {subject: "CN=c"}, clearance: 1}
datasets:
  - {id: d, share: conditional, level: 1}
grants:
  - consumer: c
    dataset: d
    purposes: [p]
    methods: [GET, DELETE]
Y
        location / { datagate_dataset d; proxy_pass http://127.0.0.1:1; }
C
    ok(!$ok, 'a grant method the dataset does not allow: nginx -t fails');
    like($out, qr/policy\.yaml:10: grants\[0\]\.methods: method DELETE is not allowed on dataset 'd' \(its methods: GET, HEAD\)/,
         '... with file, line and the dataset\'s methods');
}

done_testing;
