/*
 * datagate core: distinguished names in one canonical form.
 *
 * Plain C, no nginx headers.  A certificate's subject or issuer
 * (X509_NAME) and a name a person wrote in the policy are both turned into
 * the same canonical string, and compared byte for byte:
 *
 *   - RDNs most specific first (RFC 4514 order: the reverse of the
 *     certificate's), joined by ','; the values of a multi-valued RDN
 *     sorted and joined by '+';
 *   - attribute types as OpenSSL's short names ("CN", "O", "C",
 *     "emailAddress", "serialNumber"), or the dotted OID for a type
 *     OpenSSL does not name;
 *   - string values converted to UTF-8 and kept (no \XX escapes for
 *     non-ASCII); RFC 4514 escapes for , + " \ < > ; = and a leading '#'
 *     or space and a trailing space, \XX for control characters; a value
 *     that is not a string is '#' and the upper-case hex of its DER.
 *
 * Values are compared exactly (case and inner spaces count); attribute
 * names are not case-sensitive when written.
 */

#ifndef DG_DN_H
#define DG_DN_H

#include <stddef.h>

#include <openssl/x509.h>


#define DG_DN_MAX               4096    /* canonical form, bytes */
#define DG_DN_MAX_AVAS          64      /* attribute values per name */
#define DG_DN_TYPE_MAX          128     /* attribute type, bytes */


/*
 * A DN as a person writes it: RFC 4514 / RFC 2253 ("CN=民政厅,O=广西,C=CN",
 * "cn=a+ou=b, o=x", with \, and \E6\B0\91 escapes, "quoted" values and
 * #hex values), or OpenSSL's one-line form ("C = CN, O = 广西, CN = 民政厅",
 * least specific first, recognised by the spaces around '='), with or
 * without a leading "subject=" / "issuer=".  Writes the canonical form
 * (NUL-terminated) into out and returns its length; 0 on error with a
 * message in err.
 */
size_t dg_dn_parse(const char *s, size_t len, char *out, size_t cap,
    char *err, size_t errlen);

/* the canonical form of a certificate's name; 0 when it does not fit or
 * cannot be read */
size_t dg_dn_from_x509(const X509_NAME *name, char *out, size_t cap);

#endif /* DG_DN_H */
