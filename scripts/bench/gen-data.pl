#!/usr/bin/perl
# Benchmark documents for scripts/bench-mask: arrays of fictitious
# Guangxi-style person records, compact JSON, wrapped as
#   {"data":[{...},{...}],"total":N}
# grown record by record until the document reaches the target size.
# Resident ID numbers carry valid GB 11643 check digits and agree with the
# birth date and gender, so that detectors and maskers see realistic input.
# Deterministic (fixed seed, reset per document): a size always gives the
# same bytes, and smaller documents are prefixes of larger ones' records.
#
#   perl scripts/bench/gen-data.pl OUTDIR [LABEL=BYTES ...]
#   default: 1k=1024 10k=10240 100k=102400 1m=1048576
#   writes OUTDIR/person-LABEL.json

use strict;
use warnings;
use utf8;
use File::Path qw(make_path);

my $out = shift or die "usage: gen-data.pl OUTDIR [LABEL=BYTES ...]\n";
my @sizes = @ARGV ? @ARGV
                  : ('1k=1024', '10k=10240', '100k=102400', '1m=1048576');

make_path($out);

# deterministic PRNG (LCG, 31 bits)
my $seed = 20241107;
sub rnd {
    my ($n) = @_;
    $seed = ($seed * 1103515245 + 12345) % 2147483648;
    return int(($seed / 2147483648) * $n);
}
sub pick { return $_[rnd(scalar @_)] }

sub id_card {
    my ($first17) = @_;
    my @w = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2);
    my $s = 0;
    $s += substr($first17, $_, 1) * $w[$_] for 0 .. 16;
    return $first17 . substr('10X98765432', $s % 11, 1);
}

# area code => address prefix
my @areas = (
    ['450102', '广西壮族自治区南宁市兴宁区', ['朝阳路', '民生路', '解放路', '兴宁路']],
    ['450103', '广西壮族自治区南宁市青秀区', ['民族大道', '东葛路', '竹溪大道', '金湖路']],
    ['450105', '广西壮族自治区南宁市江南区', ['星光大道', '白沙大道', '亭洪路', '五一路']],
    ['450107', '广西壮族自治区南宁市西乡塘区', ['大学东路', '明秀西路', '北湖路', '科园大道']],
    ['450202', '广西壮族自治区柳州市城中区', ['文昌路', '三中路', '五一路', '龙城路']],
    ['450302', '广西壮族自治区桂林市秀峰区', ['中山中路', '解放西路', '翠竹路', '丽君路']],
    ['450405', '广西壮族自治区梧州市长洲区', ['新兴二路', '西江四路', '蝶山一路', '大学路']],
    ['450502', '广西壮族自治区北海市海城区', ['北部湾中路', '四川路', '长青路', '贵州路']],
    ['451002', '广西壮族自治区百色市右江区', ['向阳路', '中山二路', '城东大道', '龙景街']],
    ['450802', '广西壮族自治区贵港市港北区', ['中山路', '金港大道', '港北二路', '荷城路']],
);
my @surnames = qw(韦 黄 李 陆 覃 蒙 莫 梁 农 蓝 罗 谢 唐 廖 杨 陈 周 吴 潘 钟);
my @given_m = qw(志强 建华 伟 明 海军 德荣 国庆 春生 家豪 文 俊杰 永福 光辉 勇);
my @given_f = qw(秀兰 丽 美玲 春燕 桂芳 海燕 婷 晓梅 玉珍 小红 金凤 雪 慧 月英);
my @ethnic = (('壮族') x 6, ('汉族') x 5, '瑶族', '苗族', '侗族', '仫佬族', '毛南族');
my @relation = ('户主', '配偶', '子', '女', '父亲', '母亲', '孙子', '孙女');

sub record {
    my ($id) = @_;
    my $a = pick(@areas);
    my ($year, $mon, $day) = (1940 + rnd(70), 1 + rnd(12), 1 + rnd(28));
    my $male = rnd(2);
    my $seq = sprintf('%02d%d', rnd(100), rnd(5) * 2 + ($male ? 1 : 0));
    my $birth = sprintf('%04d%02d%02d', $year, $mon, $day);
    my $idc = id_card($a->[0] . $birth . $seq);
    my $name = pick(@surnames) . ($male ? pick(@given_m) : pick(@given_f));
    my $phone = pick(qw(138 139 135 136 150 151 177 180 181 189 199))
                . sprintf('%08d', rnd(100000000));
    my $addr = $a->[1] . pick(@{ $a->[2] }) . (1 + rnd(300)) . '号'
               . (1 + rnd(20)) . '栋' . (1 + rnd(6)) . '单元'
               . (1 + rnd(30)) . sprintf('%02d', 1 + rnd(4)) . '室';
    my $hh = $a->[0] . sprintf('%06d', rnd(1000000));
    return '{"id":' . $id
        . ',"id_card":"' . $idc . '"'
        . ',"name":"' . $name . '"'
        . ',"gender":"' . ($male ? '男' : '女') . '"'
        . ',"ethnicity":"' . pick(@ethnic) . '"'
        . ',"birth_date":"' . sprintf('%04d-%02d-%02d', $year, $mon, $day) . '"'
        . ',"phone":"' . $phone . '"'
        . ',"address":"' . $addr . '"'
        . ',"household_id":"' . $hh . '"'
        . ',"relation":"' . pick(@relation) . '"'
        . ',"verified":' . (rnd(10) ? 'true' : 'false')
        . ',"subsidy":' . (rnd(3) ? sprintf('%d.%02d', rnd(2000), rnd(100)) : 'null')
        . '}';
}

for my $spec (@sizes) {
    my ($label, $bytes) = split /=/, $spec, 2;
    die "bad size spec $spec\n" unless defined $bytes && $bytes =~ /^\d+$/;

    $seed = 20241107;                   # every document starts alike
    my @recs;
    my $len = length('{"data":[],"total":}') + 1;
    my $id = 1;
    # bounded: at most one record per 100 bytes of target
    # stop before the record that would pass the target (at least one)
    while ($id <= $bytes / 100 + 1) {
        my $r = record($id);
        utf8::encode($r);
        last if @recs && $len + length($r) + 2 > $bytes;
        push @recs, $r;
        $len += length($r) + 2;         # comma, a digit of total
        $id++;
    }
    my $doc = '{"data":[' . join(',', @recs) . '],"total":' . scalar(@recs)
              . '}';
    my $f = "$out/person-$label.json";
    open my $fh, '>:raw', "$f.tmp" or die "$f: $!\n";
    print $fh $doc;
    close $fh or die "$f: $!\n";
    rename "$f.tmp", $f or die "$f: $!\n";
    printf "  %-28s %9d bytes, %6d records\n", "person-$label.json",
        length($doc), scalar(@recs);
}
