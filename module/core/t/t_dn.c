/*
 * datagate core: certificate identity tests (TAP): distinguished names in
 * their canonical form (dg_dn.c), from text and from X509_NAME, serials
 * as OpenSSL prints them, key identifiers, issuer pinning.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "tap.h"
#include "dg_dn.h"
#include "dg_policy.h"
#include "dg_util.h"


static const char *
canon(const char *text)
{
    static char  buf[4][DG_DN_MAX];
    static int   n;
    char        *b, err[DG_ERRLEN];

    b = buf[n++ & 3];

    if (dg_dn_parse(text, strlen(text), b, DG_DN_MAX, err, sizeof(err))
        == 0)
    {
        snprintf(b, DG_DN_MAX, "ERROR: %s", err);
    }

    return b;
}


static void
same(const char *a, const char *b)
{
    char  ca[DG_DN_MAX];

    snprintf(ca, sizeof(ca), "%s", canon(a));
    if (!ok(strncmp(ca, "ERROR", 5) != 0 && strcmp(ca, canon(b)) == 0,
            "'%s' == '%s'", a, b))
    {
        diag("%s", ca);
        diag("%s", canon(b));
    }
}


static void
differ(const char *a, const char *b)
{
    char  ca[DG_DN_MAX];

    snprintf(ca, sizeof(ca), "%s", canon(a));
    ok(strncmp(ca, "ERROR", 5) != 0 && strcmp(ca, canon(b)) != 0,
       "'%s' != '%s'", a, b);
}


static void
refused(const char *text, const char *want)
{
    const char  *c;

    c = canon(text);
    if (!ok(strncmp(c, "ERROR: ", 7) == 0 && strstr(c, want) != NULL,
            "refuses '%s'", text))
    {
        diag("want: %s", want);
        diag("got:  %s", c);
    }
}


/* entries as (type, value, set) with set as X509_NAME_add_entry_by_txt */
static X509_NAME *
name_of(const char *const *e)
{
    X509_NAME  *n;

    n = X509_NAME_new();

    for ( /* void */ ; e[0] != NULL; e += 3) {
        if (X509_NAME_add_entry_by_txt(n, e[0], MBSTRING_UTF8,
                                       (const unsigned char *) e[1], -1, -1,
                                       atoi(e[2])) != 1)
        {
            X509_NAME_free(n);
            return NULL;
        }
    }

    return n;
}


static const char *
x509_canon(X509_NAME *n)
{
    static char  buf[DG_DN_MAX];

    if (n == NULL || dg_dn_from_x509(n, buf, sizeof(buf)) == 0) {
        return "(none)";
    }

    return buf;
}


static void
test_text(void)
{
    is_str(canon("CN=民政厅,O=广西,C=CN"), "CN=民政厅,O=广西,C=CN",
           "UTF-8 is kept");
    same("CN=民政厅,O=广西,C=CN",
         "CN=\\E6\\B0\\91\\E6\\94\\BF\\E5\\8E\\85,O=\\E5\\B9\\BF\\E8\\A5\\BF,"
         "C=CN");
    same("CN=民政厅,O=广西,C=CN", "C = CN, O = 广西, CN = 民政厅");
    same("CN=民政厅,O=广西,C=CN",
         "subject=C = CN, O = \\E5\\B9\\BF\\E8\\A5\\BF, CN = 民政厅");
    same("CN=a,O=b,C=CN", "cn=a, o=b, c=CN");
    same("CN=a,O=b,C=CN", "CN=a , O=b , C=CN");
    same("CN=a,O=b,C=CN", "commonName=a;organizationName=b;countryName=CN");
    same("CN=a,O=b,C=CN", "  CN=a ,  O=b  , C=CN  ");
    same("CN=a,O=b,C=CN", "2.5.4.3=a,OID.2.5.4.10=b,C=CN");
    same("CN=a,O=b,C=CN", "CN=\"a\",O=#0C0162,C=#1302434E");
    same("CN=a+OU=b,O=x", "OU=b+CN=a,O=x");
    same("CN=a+OU=b,O=x", "O = x, CN = a + OU = b");
    same("emailAddress=a@b.cn,CN=x", "E=a@b.cn,CN=x");
    same("emailAddress=a@b.cn,CN=x", "EMAIL=a@b.cn,cn=x");
    same("emailAddress=a@b.cn,CN=x", "emailaddress=a@b.cn,CN=x");
    same("ST=Guangxi,C=CN", "S=Guangxi,C=CN");
    same("serialNumber=42,CN=x", "SERIALNUMBER=42,CN=x");
    same("CN=a\\,b,O=x", "CN=\"a,b\",O=x");
    same("CN=a\\,b,O=x", "O = x, CN = \"a,b\"");
    same("CN=a\\2Cb", "CN=a\\,b");
    same("CN=\\ lead", "CN=\\20lead");
    same("CN=trail\\ ", "CN=trail\\20");
    same("CN=\\#x", "CN=\\23x");

    is_str(canon("C = CN, O = x, CN = a"), "CN=a,O=x,C=CN",
           "one-line form: least specific first");
    is_str(canon("O = x, CN = a + OU = b"), "CN=a+OU=b,O=x",
           "one-line multi-valued RDN, values sorted");
    is_str(canon("CN=a\\,b+OU=\\\"q\\\""), "CN=a\\,b+OU=\\\"q\\\"",
           "specials escaped in the canonical form");
    is_str(canon("CN=\\ a \\ "), "CN=\\ a \\ ",
           "leading and trailing spaces that count are escaped");
    is_str(canon("CN=a   "), "CN=a", "unescaped trailing spaces dropped");
    is_str(canon("CN=a\\0Ab"), "CN=a\\0Ab", "control characters as \\XX");
    is_str(canon("1.2.3.4=#0C0178"), "1.2.3.4=x",
           "an unnamed type as an OID, its string value as text");
    is_str(canon("1.2.3.4=#020105"), "1.2.3.4=#020105",
           "a value that is not a string as #DER");

    differ("CN=a,O=b", "O=b,CN=a");
    differ("CN=a,O=b", "CN=A,O=b");
    differ("CN=a b,O=b", "CN=a  b,O=b");
    differ("CN=a+OU=b", "CN=a,OU=b");
    differ("CN=x", "CN=x,C=CN");

    refused("", "empty");
    refused("/C=CN/O=x/CN=y", "old /C=../O=.. form");
    refused("CNN=x", "unknown attribute type 'CNN'");
    refused("x=y", "unknown attribute type 'x'");
    refused("CN", "expected '='");
    refused("CN=a,", "expected an attribute type");
    refused("CN=a,,O=b", "expected an attribute type");
    refused("=a", "expected an attribute type");
    refused("CN=a\\q", "bad escape");
    refused("CN=a\\", "at the end");
    refused("CN=\"a", "unterminated quote");
    refused("CN=\"a\"b", "unexpected text");
    refused("CN=\\E6\\B0", "not UTF-8");
    refused("CN=\\FF", "not UTF-8");
    refused("CN=a,O = b", "mixes");
    refused("C=China", "two capital letters");
    refused("C = CHN, O = x", "two capital letters");
    refused("CN=a,C=cn", "two capital letters");
    refused("CN=#zz", "bad #hex");
    refused("CN=#0C02", "not one DER value");
    refused("CN=#0C0161FF", "not one DER value");
    refused("CN=#0C016", "odd number");
    refused("1.2.x=a", "unknown attribute type");
    refused("CN=a\tb", "control character");
}


static void
test_x509(void)
{
    X509_NAME        *n;
    ASN1_STRING      *bmp;
    X509_NAME_ENTRY  *ne;
    char              buf[8];
    static const unsigned char  ucs2[] = { 0x6c, 0x11, 0x65, 0x3f };

    static const char *const  cn[] = {
        "C", "CN", "0", "O", "广西", "0", "CN", "民政厅", "0", NULL
    };
    static const char *const  multi[] = {
        "C", "CN", "0", "O", "x", "0", "OU", "b", "0", "CN", "a", "-1", NULL
    };
    static const char *const  email[] = {
        "CN", "x", "0", "emailAddress", "a@b.cn", "0", NULL
    };
    static const char *const  spec[] = {
        "CN", " a,b+c\"d\\ ", "0", NULL
    };

    n = name_of(cn);
    is_str(x509_canon(n), canon("CN=民政厅,O=广西,C=CN"),
           "certificate: Chinese subject, RFC 4514 order, UTF-8");
    is_str(x509_canon(n), canon("C = CN, O = 广西, CN = 民政厅"),
           "certificate: equals the one-line form");
    X509_NAME_free(n);

    n = name_of(multi);
    is_str(x509_canon(n), "CN=a+OU=b,O=x,C=CN",
           "certificate: multi-valued RDN");
    is_str(x509_canon(n), canon("CN=a+OU=b,O=x,C=CN"),
           "certificate: multi-valued RDN, written CN first");
    is_str(x509_canon(n), canon("OU=b+CN=a,O=x,C=CN"),
           "certificate: multi-valued RDN, written OU first");
    X509_NAME_free(n);

    n = name_of(email);
    is_str(x509_canon(n), canon("E=a@b.cn,CN=x"),
           "certificate: emailAddress");
    X509_NAME_free(n);

    n = name_of(spec);
    is_str(x509_canon(n), "CN=\\ a\\,b\\+c\\\"d\\\\\\ ",
           "certificate: specials escaped");
    is_str(x509_canon(n), canon("CN=\"\\ a,b+c\\\"d\\\\\\ \""),
           "certificate: equals a quoted value");
    X509_NAME_free(n);

    /* a BMPString and a PrintableString compare as their text */
    n = X509_NAME_new();
    bmp = ASN1_STRING_type_new(V_ASN1_BMPSTRING);
    ASN1_STRING_set(bmp, ucs2, sizeof(ucs2));
    ne = X509_NAME_ENTRY_create_by_NID(NULL, NID_commonName,
                                       V_ASN1_BMPSTRING,
                                       (unsigned char *) ucs2, sizeof(ucs2));
    X509_NAME_add_entry(n, ne, -1, 0);
    X509_NAME_ENTRY_free(ne);
    ASN1_STRING_free(bmp);
    X509_NAME_add_entry_by_txt(n, "C", V_ASN1_PRINTABLESTRING,
                               (const unsigned char *) "CN", 2, -1, 0);
    is_str(x509_canon(n), canon("C=CN,CN=民政"),
           "certificate: BMPString value as UTF-8");
    X509_NAME_free(n);

    n = X509_NAME_new();
    is_str(x509_canon(n), "(none)", "certificate: an empty name");
    ok(dg_dn_from_x509(NULL, buf, sizeof(buf)) == 0, "no name");
    X509_NAME_free(n);

    n = name_of(cn);
    ok(dg_dn_from_x509(n, buf, sizeof(buf)) == 0, "too long for the buffer");
    X509_NAME_free(n);
}


static void
serial_is(const char *in, const char *want)
{
    char    out[64];
    size_t  n;

    n = dg_serial_normalize(in, strlen(in), out, sizeof(out));
    is_str(n ? out : NULL, want, "serial '%s'", in);
}


static void
test_serial(void)
{
    serial_is("1A2B", "1A2B");
    serial_is("00:0A:bc", "ABC");
    serial_is("0x1f", "1F");
    serial_is("0", "0");
    serial_is("00:00", "0");
    serial_is("-5A5A", "-5A5A");
    serial_is("-5a:5a", "-5A5A");
    serial_is("-015A", "-15A");
    serial_is("-0x5a5a", "-5A5A");
    serial_is("(Negative)5a:5a", "-5A5A");
    serial_is("-0", "0");
    serial_is("-", NULL);
    serial_is("--5A", NULL);
    serial_is("5-A", NULL);
    serial_is("+5A", NULL);
    serial_is("", NULL);
    serial_is("0x", NULL);
    serial_is(":5A", NULL);
    serial_is("5A:", NULL);
    serial_is("5A::5B", NULL);
    serial_is("xyz", NULL);
}


static void
test_keyid(void)
{
    uint8_t  out[DG_KEYID_MAX];

    ok(dg_keyid_parse("8A:1F:C3", 8, out, sizeof(out)) == 3
       && out[0] == 0x8a && out[2] == 0xc3, "key id with colons");
    is_int((long long) dg_keyid_parse("keyid:8a1fc3", 12, out, sizeof(out)),
           3, "key id with keyid: and no colons");
    ok(dg_keyid_parse(" 8A:1F ", 7, out, sizeof(out)) == 2,
       "key id with spaces around");
    ok(dg_keyid_parse("8A:1FC3", 7, out, sizeof(out)) == 0,
       "key id with some colons refused");
    ok(dg_keyid_parse("8A1", 3, out, sizeof(out)) == 0,
       "odd hex refused");
    ok(dg_keyid_parse("8A:", 3, out, sizeof(out)) == 0,
       "trailing colon refused");
    ok(dg_keyid_parse("", 0, out, sizeof(out)) == 0, "empty refused");
    ok(dg_keyid_parse("8A1F", 4, out, 1) == 0, "longer than the buffer");
}


static const char  *issuer_yaml =
    "purposes: {p: {}}\n"
    "consumers:\n"
    "  - id: civil-a\n"
    "    cert: {subject: \"CN=civil-app\", issuer: \"CN=CA A,C=CN\"}\n"
    "    clearance: 1\n"
    "  - id: civil-b\n"
    "    cert: {subject: \"cn=civil-app\", issuer: \"C = CN, CN = CA B\"}\n"
    "    clearance: 1\n"
    "  - id: civil-kid\n"
    "    cert: {subject: \"CN=kid\", issuer_key_id: \"keyid:0A:0B\"}\n"
    "    clearance: 1\n"
    "  - id: neg\n"
    "    cert: {serial: \"-5a:5a\"}\n"
    "    clearance: 1\n"
    "  - id: cn-sub\n"
    "    cert: {subject: \"C = CN, O = 广西, CN = 民政厅\"}\n"
    "    clearance: 1\n";


static const char *
who(const dg_policy_t *p, const char *subject, const char *issuer,
    const uint8_t *kid, size_t kidlen, const char *serial)
{
    char                  s[DG_DN_MAX], i[DG_DN_MAX];
    dg_identity_t         id;
    const dg_consumer_t  *c;

    memset(&id, 0, sizeof(id));

    if (subject) {
        snprintf(s, sizeof(s), "%s", canon(subject));
        id.subject.data = s;
        id.subject.len = strlen(s);
    }
    if (issuer) {
        snprintf(i, sizeof(i), "%s", canon(issuer));
        id.issuer.data = i;
        id.issuer.len = strlen(i);
    }
    if (serial) {
        id.serial.data = serial;
        id.serial.len = strlen(serial);
    }
    id.issuer_key_id = kid;
    id.issuer_key_id_len = kidlen;

    c = dg_policy_match_consumer(p, &id);

    return c ? c->id.data : "(none)";
}


static dg_policy_t *
load_text(const char *yaml, char *err)
{
    return dg_policy_load_buffer("t.yaml", yaml, strlen(yaml), err,
                                 DG_ERRLEN);
}


static void
test_policy(void)
{
    char                  err[DG_ERRLEN];
    dg_policy_t          *p;
    static const uint8_t  kid[] = { 0x0a, 0x0b }, other[] = { 0x0a, 0x0c };

    p = dg_policy_load_buffer("t.yaml", issuer_yaml, strlen(issuer_yaml),
                              err, sizeof(err));
    if (!ok(p != NULL, "issuer policy loads")) {
        diag("%s", err);
        return;
    }

    is_str(who(p, "CN=civil-app", "CN=CA A,C=CN", NULL, 0, NULL), "civil-a",
           "same subject, CA A");
    is_str(who(p, "CN=civil-app", "CN=CA B,C=CN", NULL, 0, NULL), "civil-b",
           "same subject, CA B");
    is_str(who(p, "CN=civil-app", "CN=CA C,C=CN", NULL, 0, NULL), "(none)",
           "same subject, another CA");
    is_str(who(p, "CN=civil-app", NULL, NULL, 0, NULL), "(none)",
           "no issuer");
    is_str(who(p, "CN=kid", NULL, kid, sizeof(kid), NULL), "civil-kid",
           "issuer key id");
    is_str(who(p, "CN=kid", NULL, other, sizeof(other), NULL), "(none)",
           "another issuer key id");
    is_str(who(p, "CN=kid", NULL, NULL, 0, NULL), "(none)",
           "no authority key id");
    is_str(who(p, NULL, NULL, NULL, 0, "-5A5A"), "neg",
           "negative serial");
    is_str(who(p, NULL, NULL, NULL, 0, "5A5A"), "(none)",
           "the positive serial is another");
    is_str(who(p, "CN=\\E6\\B0\\91\\E6\\94\\BF\\E5\\8E\\85,"
               "O=\\E5\\B9\\BF\\E8\\A5\\BF,C=CN", NULL, NULL, 0, NULL),
           "cn-sub", "Chinese subject, written in the one-line form");

    dg_policy_free(p);

    p = load_text(
        "consumers:\n  - id: c\n    cert: {issuer: \"CN=CA\"}\n"
        "    clearance: 1\n", err);
    ok(p == NULL && strstr(err, "only say which CA") != NULL,
       "an issuer alone is refused");
    dg_policy_free(p);

    p = load_text(
        "consumers:\n  - id: c\n    cert: {subject: \"C=China\"}\n"
        "    clearance: 1\n", err);
    ok(p == NULL && strstr(err, "t.yaml:3: consumers[0].cert.subject: ")
       != NULL && strstr(err, "two capital letters") != NULL,
       "a subject that can never match: file, line, field");
    dg_policy_free(p);

    p = load_text(
        "consumers:\n  - id: c\n    cert: {subject: \"CN=x\", "
        "issuer_key_id: \"zz\"}\n    clearance: 1\n", err);
    ok(p == NULL && strstr(err, "bad key identifier") != NULL,
       "a bad issuer_key_id is refused");
    dg_policy_free(p);

    p = load_text(
        "consumers:\n  - id: a\n    cert: {subject: \"CN=x,O=y\"}\n"
        "    clearance: 1\n  - id: b\n    cert: {subject: \"O = y, CN = x\"}\n"
        "    clearance: 1\n", err);
    ok(p == NULL && strstr(err, "could never match") != NULL,
       "two spellings of one subject: the second could never match");
    dg_policy_free(p);
}


int
main(void)
{
    test_text();
    test_x509();
    test_serial();
    test_keyid();
    test_policy();

    return done_testing();
}
