#!/usr/bin/perl
# Regenerates the demo provider's JSON files in this directory (fictitious
# Guangxi-style records; the identifiers carry valid check digits so that
# datagate's detectors recognise them).  Deterministic: the committed files
# are its output.
#
#   perl scripts/demo-data/generate.pl [OUTDIR]
#
# Layout (the origin serves OUTDIR at /, "/person/1" -> person/1.json,
# "/person/" -> person/index.json):
#   person/N.json        population.person       one record
#   person/index.json    population.person       {"data":[...],"total":N}
#   insured/N.json       social-security.insured (and index.json, a list)
#   enterprise/N.json    enterprise.registration (and index.json)
#   property/N.json      realestate.property     (and index.json)
#   tax/1.json           tax.secret (share: none)

use strict;
use warnings;
use utf8;
use File::Basename qw(dirname);
use File::Path qw(make_path);

my $out = shift // dirname(__FILE__);

# --- check digits -----------------------------------------------------------

# GB 11643: ISO 7064 MOD 11-2 over the first 17 digits
sub id_card {
    my ($first17) = @_;
    my @w = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2);
    my $s = 0;
    $s += substr($first17, $_, 1) * $w[$_] for 0 .. 16;
    return $first17 . substr('10X98765432', $s % 11, 1);
}

# Luhn over the number without its check digit
sub luhn {
    my ($body) = @_;
    my ($s, $dbl) = (0, 1);
    for my $d (reverse split //, $body) {
        my $v = $d * ($dbl ? 2 : 1);
        $s += $v > 9 ? $v - 9 : $v;
        $dbl = !$dbl;
    }
    return $body . ((10 - $s % 10) % 10);
}

# GB 32100 统一社会信用代码: check character over the first 17
sub uscc {
    my ($first17) = @_;
    my $cs = '0123456789ABCDEFGHJKLMNPQRTUWXY';
    my @w = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28);
    my $s = 0;
    $s += index($cs, substr($first17, $_, 1)) * $w[$_] for 0 .. 16;
    my $c = 31 - $s % 31;
    $c = 0 if $c == 31;
    return $first17 . substr($cs, $c, 1);
}

# --- a tiny ordered JSON writer (objects are [k => v, ...] array refs) -----

sub obj { return bless [@_], 'OBJ' }

sub js {
    my ($v, $ind) = @_;
    $ind //= '';
    my $in2 = "$ind  ";
    if (ref $v eq 'OBJ') {
        my @p = @$v;
        my @parts;
        while (@p) {
            my ($k, $x) = splice @p, 0, 2;
            push @parts, $in2 . str($k) . ': ' . js($x, $in2);
        }
        return "{\n" . join(",\n", @parts) . "\n$ind}";
    }
    if (ref $v eq 'ARRAY') {
        return '[]' unless @$v;
        return "[\n" . join(",\n", map { $in2 . js($_, $in2) } @$v)
            . "\n$ind]";
    }
    if (ref $v eq 'SCALAR') {               # \1, \0, \undef-ish literals
        return $$v;
    }
    return 'null' unless defined $v;
    return $v if $v =~ /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/ && !ref $v
        && $v !~ /^0[0-9]/ && length($v) < 12;
    return str($v);
}

sub str {
    my ($s) = @_;
    $s =~ s/(["\\])/\\$1/g;
    $s =~ s/\n/\\n/g;
    return qq("$s");
}

sub write_json {
    my ($path, $v) = @_;
    make_path(dirname("$out/$path"));
    open my $fh, '>:encoding(UTF-8)', "$out/$path" or die "$path: $!";
    print $fh js($v), "\n";
    close $fh;
}

# numbers that must stay strings are passed through S()
sub S { my $s = shift; return bless \$s, 'STR' }
{
    no warnings 'redefine';
    my $orig = \&js;
    *js = sub {
        my ($v, $ind) = @_;
        return str($$v) if ref $v eq 'STR';
        return $orig->($v, $ind);
    };
}

# --- people -----------------------------------------------------------------

my @people = (
    # area    birth       seq  name      gender eth   phone
    ['450103', '19900307', '123', '韦秀兰', '女', '壮族', '13877112345',
     '广西南宁市青秀区民族大道100号东盟商务区3栋1201室', '城镇'],
    ['450102', '19851112', '231', '黄志强', '男', '汉族', '18977081234',
     '广西南宁市兴宁区朝阳路28号5单元302室', '城镇'],
    ['450107', '19780521', '442', '覃美玲', '女', '壮族', '15977165432',
     '广西南宁市西乡塘区大学东路188号广西大学教工宿舍8栋', '城镇'],
    ['450202', '20010830', '015', '陆家豪', '男', '汉族', '17777283456',
     '广西柳州市城中区文昌路16号', '城镇'],
    ['450302', '19650214', '368', '蒙桂英', '女', '瑶族', '13507731122',
     '广西桂林市秀峰区中山中路45号', '农村'],
    ['451022', '19920919', '577', '李春生', '男', '苗族', '19977669876',
     '广西百色市田东县平马镇东宁路9号', '农村'],
);

my @persons;
my $n = 0;
for my $p (@people) {
    my ($area, $birth, $seq, $name, $g, $eth, $phone, $addr, $htype) = @$p;
    $n++;
    # the 17th digit is odd for men, even for women
    my $s3 = substr($seq, 0, 2) . (($g eq '男') ? '1' : '2');
    $s3 = substr($seq, 0, 2) . (($g eq '男') ? '3' : '4') if $n % 2;
    my $idc = id_card("$area$birth$s3");
    my $bd = substr($birth, 0, 4) . '-' . substr($birth, 4, 2) . '-'
        . substr($birth, 6, 2);
    my $head = $n % 3 ? $name : '韦国富';
    my $rec = obj(
        id          => $n,
        id_card     => S($idc),
        name        => $name,
        gender      => $g,
        ethnicity   => $eth,
        birth_date  => $bd,
        phone       => S($phone),
        landline    => S('0771-555' . sprintf('%04d', 1230 + $n)),
        email       => 'user' . $n . '@gx.gov.cn',
        address     => $addr,
        household   => obj(
            household_id  => S(sprintf('4501%08d', 20190000 + $n * 37)),
            type          => $htype . '家庭户',
            head_name     => $head,
            relation      => $head eq $name ? '户主' : '子女',
            registered_address => $addr,
        ),
        emergency_contact => obj(
            name  => '黄丽',
            phone => S('1397710' . sprintf('%04d', 4000 + $n)),
        ),
        marital_status => ($n % 2 ? '已婚' : '未婚'),
        updated_at  => '2024-05-1' . ($n % 10) . 'T09:30:00+08:00',
    );
    push @persons, $rec;
    write_json("person/$n.json", $rec);
}
write_json('person/index.json', obj(data => \@persons, total => scalar @persons,
                               page => 1, page_size => 20));

# --- social security --------------------------------------------------------

my @insured;
for my $i (0 .. 3) {
    my $p = $persons[$i];
    my %h = @$p;
    my $rec = obj(
        id             => $i + 1,
        id_card        => $h{id_card},
        name           => $h{name},
        social_security_no => $h{id_card},
        bank_card      => S(luhn('622202210310' . sprintf('%06d', 345678 + $i))),
        bank           => '中国工商银行南宁民族支行',
        insured_status => ($i == 3 ? '暂停缴费' : '参保缴费'),
        insurance_types => ['企业职工基本养老保险', '失业保险', '工伤保险'],
        payment_base   => \sprintf('%.2f', 4500 + 730.5 * $i),
        employer       => '广西北部湾数字科技有限公司',
        first_insured  => '2012-0' . ($i + 3) . '-01',
        phone          => $h{phone},
    );
    push @insured, $rec;
    write_json('insured/' . ($i + 1) . '.json', $rec);
}
write_json('insured/index.json', obj(data => \@insured, total => scalar @insured));

# --- enterprises ------------------------------------------------------------

my @ents = (
    ['91450100', 'MA5K8X3R', '广西北部湾数字科技有限公司', 0,
     '广西南宁市良庆区五象大道401号', '1000万元人民币', '2016-08-19'],
    ['91450200', '75123456', '柳州市宏达机械制造有限公司', 1,
     '广西柳州市柳北区跃进路33号', '500万元人民币', '2003-04-02'],
    ['92450300', 'MA5L2T0B', '桂林市秀峰区阿英米粉店', 4,
     '广西桂林市秀峰区解放西路12号', '5万元人民币', '2019-11-25'],
);
my @enterprises;
$n = 0;
for my $e (@ents) {
    my ($pre, $org, $name, $pi, $addr, $cap, $est) = @$e;
    $n++;
    my %rep = @{ $persons[$pi] };
    my $rec = obj(
        id                 => $n,
        uscc               => S(uscc("$pre$org" . '0' x (17 - length "$pre$org"))),
        name               => $name,
        legal_rep          => $rep{name},
        legal_rep_id       => $rep{id_card},
        phone              => $rep{phone},
        address            => $addr,
        registered_capital => $cap,
        established        => $est,
        status             => '存续',
        business_scope     => '软件开发；信息技术咨询服务；数据处理和存储支持服务',
        registration_authority => '南宁市行政审批局',
    );
    push @enterprises, $rec;
    write_json("enterprise/$n.json", $rec);
}
write_json('enterprise/index.json',
           obj(data => \@enterprises, total => scalar @enterprises));

# --- real estate ------------------------------------------------------------

my @props;
for my $i (0 .. 2) {
    my %o = @{ $persons[$i] };
    my $rec = obj(
        id         => $i + 1,
        cert_no    => '桂(2021)南宁市不动产权第' . sprintf('%07d', 123456 + $i * 777)
                      . '号',
        owner      => $o{name},
        owner_id   => $o{id_card},
        co_owners  => ($i == 0 ? [obj(name => '黄志强',
                                      id_card => ${ +{ @{ $persons[1] } }->{id_card} })]
                               : []),
        address    => '广西南宁市青秀区凤岭北路' . (6 + $i) . '号东方明珠花园'
                      . ($i + 2) . '栋' . (1001 + $i * 101) . '号房',
        area       => \sprintf('%.2f', 89.56 + $i * 23.7),
        usage      => '住宅',
        right_type => '国有建设用地使用权/房屋所有权',
        registered => '2021-0' . ($i + 4) . '-15',
        mortgage   => ($i == 1 ? \'true' : \'false'),
    );
    push @props, $rec;
    write_json('property/' . ($i + 1) . '.json', $rec);
}
write_json('property/index.json', obj(data => \@props, total => scalar @props));

# --- a dataset that is never shared ------------------------------------------

my %e1 = @{ $enterprises[0] };
write_json('tax/1.json', obj(
    taxpayer_id => $e1{uscc},
    name        => $e1{name},
    tax_paid_2023 => \'1283456.78',
    audit_note  => '重点税源企业',
));

print "demo data written to $out\n";
