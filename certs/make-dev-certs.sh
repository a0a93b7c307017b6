#!/usr/bin/env bash
# Development PKI for datagate: a dev CA, a server certificate for
# 127.0.0.1/localhost and one client certificate per sample consumer, plus
# the "bad" certificates the tests need (foreign CA, expired, revoked + CRL).
#
#   certs/make-dev-certs.sh OUTDIR        (make certs: OUTDIR = build/certs)
#
# OpenSSL command line only.  Idempotent: an OUTDIR that already holds the
# complete set (stamp file .complete) is left alone; a partial one is rebuilt.
# NEVER use these certificates outside development and tests: the keys are
# unencrypted and the CA is created on the developer's machine.
set -euo pipefail

OUT=${1:?usage: make-dev-certs.sh OUTDIR}
STAMP_VERSION=4                 # bump when the set of files changes

if [ -f "$OUT/.complete" ] && [ "$(cat "$OUT/.complete")" = "$STAMP_VERSION" ]
then
    exit 0
fi

command -v openssl >/dev/null || { echo "make-dev-certs: openssl missing" >&2
                                   exit 1; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/.ca
rm -rf "$WORK"
mkdir -p "$WORK/newcerts"
umask 022

# name | subject (-subj form, least specific first so that nginx's RFC 2253
# $ssl_client_s_dn prints it most specific first) | subjectAltName or "-"
CLIENTS=(
    "assistance|/C=CN/O=Civil Affairs/CN=assistance|URI:spiffe://gx.gov.cn/civil-affairs/assistance"
    "hrss|/C=CN/O=Human Resources and Social Security/CN=hrss-portal|DNS:hrss.gx.gov.cn"
    "market|/C=CN/O=Market Supervision/CN=market-supervision|-"
    "housing|/C=CN/O=Housing/CN=housing|-"
    "unknown|/C=CN/O=Nobody/CN=stranger|-"
    "expired|/C=CN/O=Civil Affairs/CN=assistance-expired|-"
    "revoked|/C=CN/O=Civil Affairs/CN=assistance-revoked|-"
)

newkey() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$1" 2>/dev/null
    chmod 644 "$1"      # test nginx workers and clients must read it
}

# --- the dev CA, managed with `openssl ca` so that revocation works --------

cat > "$WORK/ca.cnf" <<EOF
[ ca ]
default_ca = dev_ca

[ dev_ca ]
dir             = $WORK
database        = \$dir/index.txt
new_certs_dir   = \$dir/newcerts
serial          = \$dir/serial
crlnumber       = \$dir/crlnumber
certificate     = $OUT/ca.crt
private_key     = $OUT/ca.key
default_md      = sha256
default_days    = 3650
default_crl_days = 3650
policy          = policy_any
unique_subject  = no
copy_extensions = none
preserve        = yes
email_in_dn     = no

[ policy_any ]
countryName             = optional
organizationName        = optional
commonName              = supplied

[ req ]
distinguished_name = req_dn
prompt             = no
[ req_dn ]
CN = unused

[ v3_ca ]
basicConstraints       = critical, CA:true, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ server ]
basicConstraints       = critical, CA:false
keyUsage               = critical, digitalSignature, keyEncipherment
extendedKeyUsage       = serverAuth
subjectAltName         = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid

[ client ]
basicConstraints       = critical, CA:false
keyUsage               = critical, digitalSignature
extendedKeyUsage       = clientAuth
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid
EOF
: > "$WORK/index.txt"
# random 64-bit start serial: certificates from two runs never share serials
printf '%s\n' "$(openssl rand -hex 8 | sed 's/^./1/')" > "$WORK/serial"
echo 1000 > "$WORK/crlnumber"

CA_CNF=$WORK/ca.cnf

newkey "$OUT/ca.key"
chmod 600 "$OUT/ca.key"
openssl req -config "$CA_CNF" -new -x509 -key "$OUT/ca.key" -sha256 \
    -days 3650 -subj "/C=CN/O=datagate development/CN=datagate dev CA" \
    -extensions v3_ca -out "$OUT/ca.crt"

# sign NAME SUBJ EXTSECTION [SAN] [extra openssl ca options...]
sign() {
    local name=$1 subj=$2 section=$3 san=$4
    shift 4
    local ext=$WORK/$name.ext
    sed -n "/^\[ $section \]/,/^\$/p" "$CA_CNF" > "$ext"
    if [ "$san" != "-" ]; then
        echo "subjectAltName = $san" >> "$ext"
    fi
    newkey "$OUT/$name.key"
    openssl req -config "$CA_CNF" -new -key "$OUT/$name.key" -subj "$subj" \
        -out "$WORK/$name.csr"
    openssl ca -config "$CA_CNF" -batch -notext -in "$WORK/$name.csr" \
        -subj "$subj" -extfile "$ext" -extensions "$section" \
        -out "$OUT/$name.crt" "$@" 2>"$WORK/$name.log" \
        || { cat "$WORK/$name.log" >&2; exit 1; }
}

sign server "/C=CN/O=datagate development/CN=localhost" server \
    "IP:127.0.0.1, DNS:localhost"

for entry in "${CLIENTS[@]}"; do
    IFS='|' read -r name subj san <<< "$entry"
    case $name in
    expired)
        # a real, verifiable-but-expired certificate: valid 2020 to 2021
        sign "$name" "$subj" client "$san" \
            -startdate 20200101000000Z -enddate 20210101000000Z
        ;;
    *)
        sign "$name" "$subj" client "$san"
        ;;
    esac
done

# revoke one and publish the CRL nginx loads with ssl_crl
openssl ca -config "$CA_CNF" -revoke "$OUT/revoked.crt" \
    -crl_reason keyCompromise 2>"$WORK/revoke.log" \
    || { cat "$WORK/revoke.log" >&2; exit 1; }
openssl ca -config "$CA_CNF" -gencrl -out "$OUT/crl.pem" \
    2>"$WORK/crl.log" || { cat "$WORK/crl.log" >&2; exit 1; }

# --- a foreign CA, and a certificate from it that impersonates assistance --
# (same subject as assistance: only the chain tells them apart)

newkey "$OUT/foreign-ca.key"
chmod 600 "$OUT/foreign-ca.key"
openssl req -config "$CA_CNF" -new -x509 -key "$OUT/foreign-ca.key" \
    -sha256 -days 3650 -subj "/C=CN/O=Somebody Else/CN=foreign CA" \
    -extensions v3_ca -out "$OUT/foreign-ca.crt"
newkey "$OUT/foreign.key"
openssl req -config "$CA_CNF" -new -key "$OUT/foreign.key" \
    -subj "/C=CN/O=Civil Affairs/CN=assistance" -out "$WORK/foreign.csr"
sed -n "/^\[ client \]/,/^\$/p" "$CA_CNF" > "$WORK/foreign.ext"
echo "subjectAltName = URI:spiffe://gx.gov.cn/civil-affairs/assistance" \
    >> "$WORK/foreign.ext"
openssl x509 -req -in "$WORK/foreign.csr" -CA "$OUT/foreign-ca.crt" \
    -CAkey "$OUT/foreign-ca.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days 3650 -sha256 -extfile "$WORK/foreign.ext" -extensions client \
    -out "$OUT/foreign.crt" 2>/dev/null

# --- names and serials as they come: a subject in Chinese (UTF8String), a
# multi-valued RDN with an e-mail address, a negative serial --------------

# xsign NAME SUBJ SERIAL: a client certificate from the dev CA, subject
# exactly as given (openssl x509 -req keeps it: no policy, no reordering)
xsign() {
    local name=$1 subj=$2 serial=$3
    newkey "$OUT/$name.key"
    openssl req -config "$CA_CNF" -new -utf8 -multivalue-rdn \
        -key "$OUT/$name.key" -subj "$subj" -out "$WORK/$name.csr"
    sed -n "/^\[ client \]/,/^\$/p" "$CA_CNF" > "$WORK/$name.ext"
    openssl x509 -req -in "$WORK/$name.csr" -CA "$OUT/ca.crt" \
        -CAkey "$OUT/ca.key" -set_serial "$serial" -days 3650 -sha256 \
        -extfile "$WORK/$name.ext" -extensions client \
        -out "$OUT/$name.crt" 2>"$WORK/$name.log" \
        || { cat "$WORK/$name.log" >&2; exit 1; }
}

xsign chinese "/C=CN/O=广西/CN=民政厅" "0x$(openssl rand -hex 8)"
xsign multi "/C=CN/O=Civil Affairs/CN=multi+OU=Assistance/emailAddress=multi@gx.gov.cn" \
    "0x$(openssl rand -hex 8)"
xsign negative "/C=CN/O=Civil Affairs/CN=negative" "-0x5A5A"

# --- bundles and the listing -----------------------------------------------

NAMES=(server foreign chinese multi negative)
for entry in "${CLIENTS[@]}"; do
    NAMES+=("${entry%%|*}")
done

for name in "${NAMES[@]}"; do
    cat "$OUT/$name.crt" "$OUT/$name.key" > "$OUT/$name.pem"
    chmod 644 "$OUT/$name.pem"
done

{
    echo "# name serial_hex sha256_fingerprint subject_rfc2253 [san]"
    echo "# subject as nginx's \$ssl_client_s_dn shows it; fingerprint as"
    echo "# 'openssl x509 -fingerprint -sha256' prints it."
    for name in "${NAMES[@]}"; do
        f=$OUT/$name.crt
        serial=$(openssl x509 -in "$f" -noout -serial | sed 's/^serial=//')
        fp=$(openssl x509 -in "$f" -noout -fingerprint -sha256 \
             | sed 's/^.*Fingerprint=//')
        subj=$(openssl x509 -in "$f" -noout -subject -nameopt RFC2253 \
               | sed 's/^subject=//')
        san=$(openssl x509 -in "$f" -noout -ext subjectAltName 2>/dev/null \
              | sed -n '2p' | sed 's/^ *//; s/, /,/g')
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$serial" "$fp" "$subj" "$san"
    done
} > "$OUT/certs.txt"
cp "$OUT/certs.txt" "$OUT/serials.txt"

# self-check: the chain and the bad ones are what they claim to be
for name in server assistance hrss market housing unknown chinese multi \
            negative; do
    openssl verify -CAfile "$OUT/ca.crt" -crl_check -CRLfile "$OUT/crl.pem" \
        "$OUT/$name.crt" >/dev/null
done
! openssl verify -CAfile "$OUT/ca.crt" "$OUT/expired.crt" >/dev/null 2>&1
! openssl verify -CAfile "$OUT/ca.crt" -crl_check -CRLfile "$OUT/crl.pem" \
    "$OUT/revoked.crt" >/dev/null 2>&1
! openssl verify -CAfile "$OUT/ca.crt" "$OUT/foreign.crt" >/dev/null 2>&1

chmod 755 "$OUT"
echo "$STAMP_VERSION" > "$OUT/.complete"
echo "make-dev-certs: development certificates in $OUT"
