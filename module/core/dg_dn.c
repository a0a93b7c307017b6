/*
 * datagate core: distinguished names in one canonical form (dg_dn.h).
 *
 * Both sides go through the same two steps: a list of attribute values
 * (type, value, RDN) is collected, from the certificate's X509_NAME or by
 * parsing what a person wrote, and then serialised.  Type names and value
 * conversions come from the same OpenSSL calls on both sides, so a name
 * that parses can be compared with a certificate's byte for byte.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "dg_dn.h"
#include "dg_util.h"


typedef struct {
    char                        type[DG_DN_TYPE_MAX];
    size_t                      vpos;       /* in dg_dn_t.vals */
    size_t                      vlen;
    unsigned                    rdn;        /* consecutive equal: one RDN */
    unsigned                    der:1;      /* DER of a non-string value */
} dg_ava_t;


typedef struct {
    dg_ava_t                    avas[DG_DN_MAX_AVAS];
    size_t                      n;
    unsigned char               vals[DG_DN_MAX];
    size_t                      used;
} dg_dn_t;


/* attribute types written in any case, by short or long name */
static const int  dg_dn_nids[] = {
    NID_commonName, NID_countryName, NID_localityName,
    NID_stateOrProvinceName, NID_streetAddress, NID_organizationName,
    NID_organizationalUnitName, NID_title, NID_description,
    NID_postalCode, NID_postalAddress, NID_name, NID_surname,
    NID_givenName, NID_initials, NID_generationQualifier, NID_dnQualifier,
    NID_pseudonym, NID_serialNumber, NID_pkcs9_emailAddress,
    NID_domainComponent, NID_userId, NID_businessCategory,
    NID_organizationIdentifier, NID_jurisdictionCountryName,
    NID_jurisdictionStateOrProvinceName, NID_jurisdictionLocalityName,
    NID_pkcs9_unstructuredName, NID_uniqueIdentifier
};


/* other names in use for them (Windows, LDAP tools) */
static const struct {
    const char                 *name;
    int                         nid;
} dg_dn_aliases[] = {
    { "E", NID_pkcs9_emailAddress },
    { "EMAIL", NID_pkcs9_emailAddress },
    { "S", NID_stateOrProvinceName },
    { "T", NID_title },
    { "STREETADDRESS", NID_streetAddress }
};


#define DG_DN_SPECIAL(c)                                                    \
    ((c) == ',' || (c) == '+' || (c) == '"' || (c) == '\\' || (c) == '<'    \
     || (c) == '>' || (c) == ';' || (c) == '=')

#define DG_DN_COUNTRY_LEN       2


static int
dg_dn_hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}


static int
dg_dn_string_type(int type)
{
    switch (type) {
    case V_ASN1_UTF8STRING:
    case V_ASN1_PRINTABLESTRING:
    case V_ASN1_IA5STRING:
    case V_ASN1_T61STRING:
    case V_ASN1_BMPSTRING:
    case V_ASN1_UNIVERSALSTRING:
    case V_ASN1_VISIBLESTRING:
    case V_ASN1_NUMERICSTRING:
        return 1;
    default:
        return 0;
    }
}


/* ISO 3166-1 alpha-2, as certificates carry it: "CN" */
static int
dg_dn_country_ok(const unsigned char *v, size_t len)
{
    return len == DG_DN_COUNTRY_LEN
           && v[0] >= 'A' && v[0] <= 'Z' && v[1] >= 'A' && v[1] <= 'Z';
}


/* a short name usable as a type: a letter, then letters, digits, '-' */
static int
dg_dn_name_ok(const char *s)
{
    size_t  i;

    if (s == NULL || !((s[0] >= 'a' && s[0] <= 'z')
                       || (s[0] >= 'A' && s[0] <= 'Z')))
    {
        return 0;
    }

    for (i = 1; s[i] != '\0'; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
        {
            return 0;
        }
    }

    return i < DG_DN_TYPE_MAX;
}


/* the canonical name of an attribute type; -1: does not fit */
static int
dg_dn_type_obj(const ASN1_OBJECT *obj, char *type)
{
    int          nid, n;
    const char  *sn;

    nid = OBJ_obj2nid(obj);

    if (nid != NID_undef) {
        sn = OBJ_nid2sn(nid);
        if (dg_dn_name_ok(sn)) {
            strcpy(type, sn);
            return 0;
        }
    }

    n = OBJ_obj2txt(type, DG_DN_TYPE_MAX, obj, 1);

    return (n > 0 && n < DG_DN_TYPE_MAX) ? 0 : -1;
}


/*
 * the value of an attribute: a string converted to UTF-8, or the DER of
 * anything else (and of a string that does not convert); -1: no room
 */
static int
dg_dn_add_value(dg_dn_t *dn, dg_ava_t *a, const ASN1_TYPE *t)
{
    int             n;
    unsigned char  *u, *p;

    if (dg_dn_string_type(t->type) && t->value.asn1_string != NULL) {
        u = NULL;
        n = ASN1_STRING_to_UTF8(&u, t->value.asn1_string);

        if (n >= 0 && dg_utf8_check(u, (size_t) n) == (size_t) n) {
            if ((size_t) n > sizeof(dn->vals) - dn->used) {
                OPENSSL_free(u);
                return -1;
            }

            memcpy(dn->vals + dn->used, u, (size_t) n);
            a->vpos = dn->used;
            a->vlen = (size_t) n;
            a->der = 0;
            dn->used += (size_t) n;
            OPENSSL_free(u);
            return 0;
        }

        OPENSSL_free(u);
    }

    n = i2d_ASN1_TYPE(t, NULL);

    if (n <= 0 || (size_t) n > sizeof(dn->vals) - dn->used) {
        return -1;
    }

    p = dn->vals + dn->used;

    if (i2d_ASN1_TYPE(t, &p) != n) {
        return -1;
    }

    a->vpos = dn->used;
    a->vlen = (size_t) n;
    a->der = 1;
    dn->used += (size_t) n;

    return 0;
}


static int
dg_dn_ava_cmp(const dg_dn_t *dn, const dg_ava_t *a, const dg_ava_t *b)
{
    int     rc;
    size_t  n;

    rc = strcmp(a->type, b->type);
    if (rc != 0) {
        return rc;
    }

    if (a->der != b->der) {
        return a->der ? 1 : -1;
    }

    n = a->vlen < b->vlen ? a->vlen : b->vlen;
    rc = memcmp(dn->vals + a->vpos, dn->vals + b->vpos, n);
    if (rc != 0) {
        return rc;
    }

    return (a->vlen > b->vlen) - (a->vlen < b->vlen);
}


/* append an escaped value; -1: no room */
static int
dg_dn_put_value(const dg_dn_t *dn, const dg_ava_t *a, char *out, size_t cap,
    size_t *pos)
{
    size_t                i, need;
    unsigned char         c;
    const unsigned char  *v;
    static const char     hex[] = "0123456789ABCDEF";

    v = dn->vals + a->vpos;

    if (a->der) {
        if (*pos + 1 + 2 * a->vlen >= cap) {
            return -1;
        }
        out[(*pos)++] = '#';
        for (i = 0; i < a->vlen; i++) {
            out[(*pos)++] = hex[v[i] >> 4];
            out[(*pos)++] = hex[v[i] & 0x0f];
        }
        return 0;
    }

    for (i = 0; i < a->vlen; i++) {
        c = v[i];

        if (c < 0x20 || c == 0x7f) {
            need = 3;
        } else if (DG_DN_SPECIAL(c)
                   || (i == 0 && (c == ' ' || c == '#'))
                   || (i == a->vlen - 1 && c == ' '))
        {
            need = 2;
        } else {
            need = 1;
        }

        if (*pos + need >= cap) {
            return -1;
        }

        if (need == 3) {
            out[(*pos)++] = '\\';
            out[(*pos)++] = hex[c >> 4];
            out[(*pos)++] = hex[c & 0x0f];

        } else {
            if (need == 2) {
                out[(*pos)++] = '\\';
            }
            out[(*pos)++] = (char) c;
        }
    }

    return 0;
}


/*
 * RDNs are runs of equal rdn numbers; written most specific first, which
 * is from the last AVA (certificate order) or from the first (an RFC 4514
 * text).  Returns the length, 0 when it does not fit.
 */
static size_t
dg_dn_serialize(const dg_dn_t *dn, int from_last, char *out, size_t cap)
{
    size_t          i, j, k, start, end, pos, len;
    unsigned        idx[DG_DN_MAX_AVAS], t;
    const dg_ava_t  *a;

    pos = 0;
    i = 0;

    while (i < dn->n) {

        /* one RDN: [start, end) in certificate or text order */
        if (from_last) {
            end = dn->n - i;
            start = end - 1;
            while (start > 0 && dn->avas[start - 1].rdn
                                == dn->avas[end - 1].rdn)
            {
                start--;
            }

        } else {
            start = i;
            end = i + 1;
            while (end < dn->n && dn->avas[end].rdn == dn->avas[start].rdn) {
                end++;
            }
        }

        /* its values sorted (insertion sort: at most DG_DN_MAX_AVAS) */
        k = 0;
        for (j = start; j < end; j++) {
            idx[k++] = (unsigned) j;
        }

        for (j = 1; j < k; j++) {
            t = idx[j];
            len = j;
            while (len > 0 && dg_dn_ava_cmp(dn, &dn->avas[idx[len - 1]],
                                            &dn->avas[t]) > 0)
            {
                idx[len] = idx[len - 1];
                len--;
            }
            idx[len] = t;
        }

        if (pos > 0) {
            if (pos + 1 >= cap) {
                return 0;
            }
            out[pos++] = ',';
        }

        for (j = 0; j < k; j++) {
            a = &dn->avas[idx[j]];
            len = strlen(a->type);

            if (pos + (j > 0) + len + 1 >= cap) {
                return 0;
            }

            if (j > 0) {
                out[pos++] = '+';
            }

            memcpy(out + pos, a->type, len);
            pos += len;
            out[pos++] = '=';

            if (dg_dn_put_value(dn, a, out, cap, &pos) != 0) {
                return 0;
            }
        }

        i += end - start;
    }

    if (pos >= cap) {
        return 0;
    }

    out[pos] = '\0';

    return pos;
}


size_t
dg_dn_from_x509(const X509_NAME *name, char *out, size_t cap)
{
    int                       i, n;
    ASN1_TYPE                 t;
    dg_ava_t                 *a;
    const ASN1_STRING        *v;
    const X509_NAME_ENTRY    *ne;
    dg_dn_t                   dn;

    if (name == NULL || cap == 0) {
        return 0;
    }

    n = X509_NAME_entry_count(name);

    if (n <= 0 || n > DG_DN_MAX_AVAS) {
        return 0;
    }

    dn.n = 0;
    dn.used = 0;

    for (i = 0; i < n; i++) {
        ne = X509_NAME_get_entry(name, i);
        if (ne == NULL) {
            return 0;
        }

        a = &dn.avas[dn.n];
        a->rdn = (unsigned) X509_NAME_ENTRY_set(ne);

        if (dg_dn_type_obj(X509_NAME_ENTRY_get_object(ne), a->type) != 0) {
            return 0;
        }

        v = X509_NAME_ENTRY_get_data(ne);
        if (v == NULL) {
            return 0;
        }

        memset(&t, 0, sizeof(t));
        t.type = ASN1_STRING_type(v);

        /* as a_strex.c's do_dump(): the sign lives in the string type */
        if (t.type == V_ASN1_NEG_INTEGER) {
            t.type = V_ASN1_INTEGER;
        } else if (t.type == V_ASN1_NEG_ENUMERATED) {
            t.type = V_ASN1_ENUMERATED;
        }

        t.value.asn1_string = (ASN1_STRING *) v;

        if (dg_dn_add_value(&dn, a, &t) != 0) {
            return 0;
        }

        dn.n++;
    }

    return dg_dn_serialize(&dn, 1, out, cap);
}


/* ---- parsing what a person wrote ------------------------------------- */

typedef struct {
    const char                 *p;
    const char                 *end;
    const char                 *start;
    char                       *err;
    size_t                      errlen;
} dg_dn_in_t;


static size_t
dg_dn_fail(dg_dn_in_t *in, const char *fmt, const char *what, size_t wlen)
{
    char  buf[DG_DN_TYPE_MAX];

    if (wlen >= sizeof(buf)) {
        /* cut at a character boundary */
        wlen = sizeof(buf) - 1;
        while (wlen > 0 && ((unsigned char) what[wlen] & 0xc0) == 0x80) {
            wlen--;
        }
    }

    memcpy(buf, what ? what : "", what ? wlen : 0);
    buf[what ? wlen : 0] = '\0';

    if (in->err && in->errlen) {
        snprintf(in->err, in->errlen, fmt, buf);
    }

    return 0;
}


static void
dg_dn_skip_spaces(dg_dn_in_t *in)
{
    while (in->p < in->end && *in->p == ' ') {
        in->p++;
    }
}


/* a type as written -> canonical name and nid (NID_undef for an OID
 * OpenSSL does not name); -1: unknown */
static int
dg_dn_type_text(const char *s, size_t len, char *type, int *nidp)
{
    int           nid;
    size_t        i;
    char          buf[DG_DN_TYPE_MAX];
    const char   *sn, *ln;
    ASN1_OBJECT  *obj;

    if (len > 4 && strncasecmp(s, "oid.", 4) == 0
        && s[4] >= '0' && s[4] <= '9')
    {
        s += 4;
        len -= 4;
    }

    if (len == 0 || len >= sizeof(buf)) {
        return -1;
    }

    memcpy(buf, s, len);
    buf[len] = '\0';

    if (buf[0] >= '0' && buf[0] <= '9') {
        for (i = 0; i < len; i++) {
            if (!((buf[i] >= '0' && buf[i] <= '9') || buf[i] == '.')) {
                return -1;
            }
        }

        obj = OBJ_txt2obj(buf, 1);
        if (obj == NULL) {
            return -1;
        }

        *nidp = OBJ_obj2nid(obj);
        nid = dg_dn_type_obj(obj, type);
        ASN1_OBJECT_free(obj);

        return nid;
    }

    /* a short name as OpenSSL writes it first: canonical names map back
     * to themselves */
    nid = OBJ_sn2nid(buf);

    for (i = 0; nid == NID_undef
                && i < sizeof(dg_dn_nids) / sizeof(dg_dn_nids[0]); i++)
    {
        sn = OBJ_nid2sn(dg_dn_nids[i]);
        ln = OBJ_nid2ln(dg_dn_nids[i]);

        if ((sn && strcasecmp(buf, sn) == 0)
            || (ln && strcasecmp(buf, ln) == 0))
        {
            nid = dg_dn_nids[i];
            break;
        }
    }

    for (i = 0; nid == NID_undef
                && i < sizeof(dg_dn_aliases) / sizeof(dg_dn_aliases[0]); i++)
    {
        if (strcasecmp(buf, dg_dn_aliases[i].name) == 0) {
            nid = dg_dn_aliases[i].nid;
        }
    }

    if (nid == NID_undef) {
        nid = OBJ_ln2nid(buf);
    }

    if (nid == NID_undef) {
        return -1;
    }

    obj = OBJ_nid2obj(nid);
    if (obj == NULL || dg_dn_type_obj(obj, type) != 0) {
        return -1;
    }

    *nidp = nid;

    return 0;
}


/* a #hex value: the DER of the value */
static int
dg_dn_hex_value(dg_dn_in_t *in, dg_dn_t *dn, dg_ava_t *a)
{
    int                   hi, lo;
    size_t                n;
    ASN1_TYPE            *t;
    const char           *s;
    const unsigned char  *q;
    unsigned char         der[DG_DN_MAX];

    s = ++in->p;
    n = 0;

    while (in->p < in->end && *in->p != ',' && *in->p != '+'
           && *in->p != ';' && *in->p != ' ')
    {
        if (in->p + 1 >= in->end) {
            dg_dn_fail(in, "odd number of hex digits in "
                       "'#%s'", s, (size_t) (in->end - s));
            return -1;
        }

        hi = dg_dn_hexval((unsigned char) in->p[0]);
        lo = dg_dn_hexval((unsigned char) in->p[1]);

        if (hi < 0 || lo < 0 || n >= sizeof(der)) {
            dg_dn_fail(in, "bad #hex value '#%s': expected "
                       "the hex digits of a DER value", s,
                       (size_t) (in->end - s));
            return -1;
        }

        der[n++] = (unsigned char) (hi << 4 | lo);
        in->p += 2;
    }

    q = der;
    t = (n > 0) ? d2i_ASN1_TYPE(NULL, &q, (long) n) : NULL;

    if (t == NULL || q != der + n) {
        ASN1_TYPE_free(t);
        dg_dn_fail(in, "bad #hex value '#%s': not one DER "
                   "value", s, (size_t) (in->p - s));
        return -1;
    }

    if (dg_dn_add_value(dn, a, t) != 0) {
        ASN1_TYPE_free(t);
        dg_dn_fail(in, "name too long%s", NULL, 0);
        return -1;
    }

    ASN1_TYPE_free(t);
    dg_dn_skip_spaces(in);

    return 0;
}


/* a text value, quoted or not, with \c and \XX escapes */
static int
dg_dn_text_value(dg_dn_in_t *in, dg_dn_t *dn, dg_ava_t *a)
{
    int             quoted, hi, lo;
    size_t          n, keep;
    unsigned char   c, *v;
    const char     *s;

    s = in->p;
    v = dn->vals + dn->used;
    n = 0;
    keep = 0;
    quoted = 0;

    if (in->p < in->end && *in->p == '"') {
        quoted = 1;
        in->p++;
    }

    while (in->p < in->end) {
        c = (unsigned char) *in->p;

        if (quoted && c == '"') {
            break;
        }

        if (!quoted && (c == ',' || c == '+' || c == ';')) {
            break;
        }

        if (dn->used + n >= sizeof(dn->vals)) {
            dg_dn_fail(in, "name too long%s", NULL, 0);
            return -1;
        }

        if (c == '\\') {
            if (in->p + 1 >= in->end) {
                dg_dn_fail(in, "'\\' at the end of '%s'", s,
                           (size_t) (in->end - s));
                return -1;
            }

            hi = dg_dn_hexval((unsigned char) in->p[1]);
            lo = (in->p + 2 < in->end)
                 ? dg_dn_hexval((unsigned char) in->p[2]) : -1;

            if (hi >= 0 && lo >= 0) {
                v[n++] = (unsigned char) (hi << 4 | lo);
                in->p += 3;

            } else if (DG_DN_SPECIAL(in->p[1]) || in->p[1] == ' '
                       || in->p[1] == '#')
            {
                v[n++] = (unsigned char) in->p[1];
                in->p += 2;

            } else {
                dg_dn_fail(in, "bad escape in '%s': write "
                           "\\ before one of ,+\"\\<>;=# or "
                           "a space, or \\XX (two hex digits)",
                           s, (size_t) (in->end - s));
                return -1;
            }

            keep = n;
            continue;
        }

        if (c < 0x20 || c == 0x7f) {
            dg_dn_fail(in, "a control character in '%s': "
                       "write it as \\XX", s,
                       (size_t) (in->end - s));
            return -1;
        }

        v[n++] = c;
        in->p++;

        if (c != ' ' || quoted) {
            keep = n;
        }
    }

    if (quoted) {
        if (in->p >= in->end) {
            dg_dn_fail(in, "unterminated quote in '%s'", s,
                       (size_t) (in->end - s));
            return -1;
        }
        in->p++;
        keep = n;
        dg_dn_skip_spaces(in);
    }

    n = keep;           /* unescaped trailing spaces are not the value's */

    if (dg_utf8_check(v, n) != n) {
        dg_dn_fail(in, "the value '%s' is not UTF-8 (a "
                   "certificate's value never matches it)", s,
                   (size_t) (in->p - s));
        return -1;
    }

    a->vpos = dn->used;
    a->vlen = n;
    a->der = 0;
    dn->used += n;

    return 0;
}


size_t
dg_dn_parse(const char *s, size_t len, char *out, size_t cap, char *err,
    size_t errlen)
{
    int          spaced, sp, nid;
    size_t       n;
    unsigned     rdn;
    dg_ava_t    *a;
    const char  *t;
    dg_dn_in_t   in;
    dg_dn_t      dn;

    in.p = s;
    in.end = s + len;
    in.start = s;
    in.err = err;
    in.errlen = errlen;

    if (err && errlen) {
        err[0] = '\0';
    }

    dn.n = 0;
    dn.used = 0;

    dg_dn_skip_spaces(&in);

    /* as "openssl x509 -subject" / "-issuer" print it */
    if (in.end - in.p > 8 && strncasecmp(in.p, "subject=", 8) == 0) {
        in.p += 8;
    } else if (in.end - in.p > 7 && strncasecmp(in.p, "issuer=", 7) == 0) {
        in.p += 7;
    }

    dg_dn_skip_spaces(&in);

    if (in.p == in.end) {
        return dg_dn_fail(&in, "an empty name%s", NULL, 0);
    }

    if (*in.p == '/') {
        return dg_dn_fail(&in, "'%s' is in the old /C=../O=.. form; write "
                          "it as \"CN=x,O=y,C=CN\" (RFC 4514, most "
                          "specific first)", s, len);
    }

    spaced = -1;
    rdn = 0;

    for ( ;; ) {
        dg_dn_skip_spaces(&in);

        t = in.p;
        while (in.p < in.end
               && ((*in.p >= 'a' && *in.p <= 'z')
                   || (*in.p >= 'A' && *in.p <= 'Z')
                   || (*in.p >= '0' && *in.p <= '9')
                   || *in.p == '.' || *in.p == '-'))
        {
            in.p++;
        }

        if (in.p == t) {
            return dg_dn_fail(&in, "expected an attribute type such as CN "
                              "at '%s'", t, (size_t) (in.end - t));
        }

        if (dn.n == DG_DN_MAX_AVAS) {
            return dg_dn_fail(&in, "more than 64 attribute values%s",
                              NULL, 0);
        }

        a = &dn.avas[dn.n];
        a->rdn = rdn;
        nid = NID_undef;

        if (dg_dn_type_text(t, (size_t) (in.p - t), a->type, &nid) != 0) {
            return dg_dn_fail(&in, "unknown attribute type '%s' (expected "
                              "CN, O, OU, C, L, ST, emailAddress, ... or an "
                              "OID)", t, (size_t) (in.p - t));
        }

        sp = 0;
        while (in.p < in.end && *in.p == ' ') {
            in.p++;
            sp = 1;
        }

        if (in.p == in.end || *in.p != '=') {
            return dg_dn_fail(&in, "expected '=' after '%s'", t,
                              (size_t) (in.p - t));
        }

        in.p++;

        /* OpenSSL's one-line form writes " = ", RFC 4514 "=" */
        if (spaced == -1) {
            spaced = sp;

        } else if (spaced != sp) {
            return dg_dn_fail(&in, "'%s' mixes \"A=v\" (RFC 4514, most "
                              "specific first) with \"A = v\" (OpenSSL's "
                              "one-line form, least specific first)", s,
                              len);
        }

        dg_dn_skip_spaces(&in);

        if (in.p < in.end && *in.p == '#') {
            if (dg_dn_hex_value(&in, &dn, a) != 0) {
                return 0;
            }

        } else if (dg_dn_text_value(&in, &dn, a) != 0) {
            return 0;
        }

        if (nid == NID_countryName && !a->der
            && !dg_dn_country_ok(dn.vals + a->vpos, a->vlen))
        {
            return dg_dn_fail(&in, "C='%s': a country is two capital "
                              "letters (ISO 3166), such as C=CN",
                              (const char *) dn.vals + a->vpos, a->vlen);
        }

        dn.n++;

        if (in.p == in.end) {
            break;
        }

        if (*in.p == '+') {
            in.p++;
            continue;
        }

        if (*in.p == ',' || *in.p == ';') {
            in.p++;
            rdn++;
            continue;
        }

        return dg_dn_fail(&in, "unexpected text at '%s'", in.p,
                          (size_t) (in.end - in.p));
    }

    n = dg_dn_serialize(&dn, spaced == 1, out, cap);

    if (n == 0) {
        return dg_dn_fail(&in, "name too long%s", NULL, 0);
    }

    return n;
}
