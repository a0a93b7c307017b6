# `make install` with DESTDIR and PREFIX (docs/build.md): the module, the
# CLI, its manual page, the load_module line and the docs land where the
# doc says, with their modes; nginx runs the installed module, whose status endpoint reports the
# version the installed CLI prints; `make uninstall` takes it all back.
# The built files are installed as they are (make -o): nothing is rebuilt.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use DGTest qw(:DEFAULT $TOP $MODULE $CLI);

plan skip_all => "$MODULE or $CLI not built" unless -f $MODULE && -x $CLI;
plan skip_all => 'no make' if system('make --version >/dev/null 2>&1') != 0;

my $dest = tempdir('dginstall-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dest;

sub make_in {
    my (@args) = @_;
    return run_cmd('make', '-s', '-C', $TOP, "DESTDIR=$dest",
                   "MODULE_SO=$MODULE", "CLI_BIN=$CLI",
                   '-o', $MODULE, '-o', $CLI, @args);
}

sub mode { return sprintf '%04o', (stat $_[0])[2] & 07777 }

sub files {
    my @f;
    my @dirs = ($dest);
    while (my $d = shift @dirs) {
        opendir my $dh, $d or die "$d: $!";
        for my $e (grep { !/^\.\.?$/ } readdir $dh) {
            -d "$d/$e" ? push @dirs, "$d/$e" : push @f, "$d/$e";
        }
    }
    my @rel = sort map { substr $_, length $dest } @f;
    return @rel;
}

# --- PREFIX=/usr: Debian's module path ------------------------------------

my ($rc, $out) = make_in('install', 'PREFIX=/usr');
is($rc, 0, 'make install PREFIX=/usr DESTDIR=...: exit 0') or diag($out);

my $so  = "$dest/usr/lib/nginx/modules/ngx_http_datagate_module.so";
my $bin = "$dest/usr/bin/datagate";
my $ld  = "$dest/usr/share/nginx/modules-available/mod-http-datagate.conf";
my $doc = "$dest/usr/share/doc/datagate";
my $man = "$dest/usr/share/man/man1/datagate.1";

ok(-f $so, 'module in /usr/lib/nginx/modules');
is(mode($so), '0644', 'module: 0644');
is(DGTest::slurp($so), DGTest::slurp($MODULE), 'module: the built one');
ok(-x $bin, 'CLI in /usr/bin');
is(mode($bin), '0755', 'CLI: 0755');
ok(-f $man, 'manual page in /usr/share/man/man1');
is(mode($man), '0644', 'manual page: 0644');
is(DGTest::slurp($ld),
   "load_module /usr/lib/nginx/modules/ngx_http_datagate_module.so;\n",
   'modules-available: load_module with the installed path, no DESTDIR');
is(mode($ld), '0644', 'modules-available: 0644');
for my $f (qw(README.md LICENSE docs/build.md docs/nginx.md docs/errors.md
              policy/schema.md policy/sample.yaml config/nginx.conf
              config/conf.d/datagate.conf docs/grafana-datagate.json
              certs/README.md))
{
    ok(-f "$doc/$f", "doc: $f");
}
like(DGTest::slurp("$doc/LICENSE"), qr/BSD|Redistribution and use/,
     'doc: the licence text');
is(scalar(grep { !m{^/usr/(lib/nginx/modules|bin|share/nginx|share/man/man1
                     |share/doc/datagate)/}x }
          files()), 0, 'nothing outside the documented directories')
    or diag(join "\n", files());

# the installed CLI and the installed module report one version
($rc, $out) = run_cmd($bin, '--version');
is($rc, 0, 'installed datagate --version: exit 0');
my ($version) = $out =~ /\Adatagate (\S+)\n\z/;
ok(defined $version, 'installed datagate --version: "datagate VERSION"')
    or diag($out);
like(DGTest::slurp($man), qr/^\.TH DATAGATE 1 "" "datagate \Q$version\E"/m,
     'manual page: the same version');

SKIP: {
    skip 'nginx has the module built in (DG_MODULE_STATIC)', 2
        if $DGTest::STATIC;
    local $DGTest::MODULE = $so;
    my $n = DGTest::Nginx->new(policy => <<'YAML');
levels: {1: 公开}
classes: {}
purposes: {}
consumers: []
datasets: []
grants: []
YAML
    $n->{config} = <<'EOF';
        location = /status {
            datagate_status;
        }
EOF
    ok($n->start, 'nginx starts with the installed module');
    my $st = $n->request('GET', '/status', cert => 'market')->json;
    is($st->{datagate_version}, $version,
       'status of the installed module: the installed CLI\'s version');
    $n->stop;
}

($rc, $out) = make_in('uninstall', 'PREFIX=/usr');
is($rc, 0, 'make uninstall: exit 0') or diag($out);
my @left = files();
is(scalar @left, 0, 'make uninstall: no file left') or diag(join "\n", @left);

# --- the default PREFIX, /usr/local, and a directory set apart -----------------

($rc, $out) = make_in('install', 'MODULESDIR=/opt/nginx/modules');
is($rc, 0, 'make install MODULESDIR=...: exit 0') or diag($out);
ok(-f "$dest/opt/nginx/modules/ngx_http_datagate_module.so",
   'MODULESDIR: the module there');
ok(-x "$dest/usr/local/bin/datagate", 'default PREFIX: /usr/local/bin');
ok(-f "$dest/usr/local/share/man/man1/datagate.1",
   'default PREFIX: /usr/local/share/man/man1');
is(DGTest::slurp("$dest/usr/local/share/nginx/modules-available/"
                 . "mod-http-datagate.conf"),
   "load_module /opt/nginx/modules/ngx_http_datagate_module.so;\n",
   'load_module follows MODULESDIR');

done_testing();
