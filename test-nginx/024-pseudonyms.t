# Pseudonyms (masking method hash) against an independent computation:
# the first 16 bytes, in hex, of HMAC-SHA-256 of the value under the
# consumer's key HMAC-SHA-256(secret, "pseudonym:" + consumer id).  A text
# key file's line end is not part of the secret; a secret longer than 64
# bytes is used as its SHA-256, as HMAC itself would.  The same value has
# another pseudonym for another consumer.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(hmac_sha256 hmac_sha256_hex);
use DGTest;
use DGRedis;

my $policy = <<'Y';
classes:
  person.household: {level: 3, mask: hash}
purposes:
  social-assistance: {name: assistance}
consumers:
  - id: civil-affairs.assistance
    cert: {subject: "CN=assistance,O=Civil Affairs,C=CN"}
    clearance: 2
  - id: hrss.portal
    cert: {san: "DNS:hrss.gx.gov.cn"}
    clearance: 2
datasets:
  - id: population.person
    share: conditional
    level: 3
    fields: {household_id: person.household}
  - id: enterprise.registry
    share: unconditional
    level: 1
grants:
  - consumer: civil-affairs.assistance
    dataset: population.person
    purposes: [social-assistance]
  - consumer: hrss.portal
    dataset: population.person
    purposes: [social-assistance]
Y

my $value = '4501030012345678';
my %id = (assistance => 'civil-affairs.assistance', hrss => 'hrss.portal');

sub want {
    my ($secret, $who) = @_;
    my $key = hmac_sha256("pseudonym:$id{$who}", $secret);
    return substr(hmac_sha256_hex($value, $key), 0, 32);
}

sub pseudonym {
    my ($n, $who) = @_;
    my $r = get($n, $who, uri => '/person/pseudo');
    is($r->status, 200, "$who: 200");
    my $j = eval { $r->json } // {};
    return $j->{household_id} // '';
}

my $dir = DGTest::base_dir();

# a text key file, with a line end
{
    my $text = 'correct-horse-battery-staple-0123456789-abcdef';
    DGTest::spew("$dir/text.secret", "$text\n", 0600);

    my $n = gateway(policy => $policy, secret => "$dir/text.secret");
    DGTest::spew($n->dir . '/html/person/pseudo.json',
                 qq({"household_id":"$value","gender":"F"}));

    my $a = pseudonym($n, 'assistance');
    is($a, want($text, 'assistance'),
       'text key: HMAC-SHA-256(HMAC-SHA-256(secret, "pseudonym:" id), '
       . 'value), 16 bytes in hex');
    my $h = pseudonym($n, 'hrss');
    is($h, want($text, 'hrss'), 'text key: the other consumer\'s');
    isnt($a, $h, 'another consumer, another pseudonym');
    $n->stop;
}

# a binary key longer than 64 bytes
{
    my $long = join '', map { chr(($_ * 37 + 11) % 256) } 1 .. 100;
    DGTest::spew("$dir/long.secret", $long, 0600);

    my $n = gateway(policy => $policy, secret => "$dir/long.secret");
    DGTest::spew($n->dir . '/html/person/pseudo.json',
                 qq({"household_id":"$value","gender":"F"}));

    is(pseudonym($n, 'assistance'), want($long, 'assistance'),
       'a 100-byte key: the same as HMAC with the whole key');
    $n->stop;
}

done_testing();
