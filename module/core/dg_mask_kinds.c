/*
 * datagate core: the detect kinds of the safety net: their table
 * (dg_mask_detect_kinds[], the one place a kind's name, class, default
 * method and validator are written), the validators and the shapes their
 * candidates are written in.  Both scanners of the safety net, the one
 * of JSON streams (dg_mask_detect.c) and the one of headers
 * (dg_mask_text.c), validate and mask through these.
 */

#include <stddef.h>
#include <string.h>
#include "dg_mask.h"
#include "dg_mask_int.h"


/*
 * detect validators.  A candidate is validated, not only measured:
 * - resident ID (GB 11643): 17 digits and a check character (MOD 11-2),
 *   a province code of the mainland, Hong Kong, Macao or Taiwan (or 9
 *   and a province digit: the foreigner's permanent residence ID) and a
 *   real birth date from 1900 on;
 * - mobile: 11 digits in a segment the operators use;
 * - bank card: 16 to 19 digits, Luhn, and an issuer the card schemes use
 *   (first digit 3-6 or 9, or 2221-2720);
 * - USCC (GB 32100): 18 characters: a registration authority (1-9, A, N,
 *   Y), an organisation type (1-5, 9), a division code of a province, the
 *   check character.
 * Dates, timestamps, amounts and order numbers mostly fail the province,
 * date, segment or issuer test before the check digit is even computed.
 */

#define DG_ID_YEAR_MIN  1900
#define DG_ID_YEAR_MAX  2099
#define DG_USCC_LEN     18


static unsigned
dg_mask_num(const uint8_t *r, size_t n)
{
    unsigned  v;
    size_t    i;

    v = 0;
    for (i = 0; i < n; i++) {
        v = v * 10 + (unsigned) (r[i] - '0');
    }

    return v;
}


/* the province codes of GB/T 2260 (and 71 Taiwan, 81 Hong Kong, 82 Macao,
 * 83 the Taiwan residence permit), as a bit per second digit */
static const uint16_t  dg_mask_provinces[10] = {
    0,                                  /* 0x */
    0x3e,                               /* 11-15 */
    0x0e,                               /* 21-23 */
    0xfe,                               /* 31-37 */
    0x7e,                               /* 41-46 */
    0x1f,                               /* 50-54 */
    0x3e,                               /* 61-65 */
    0x02,                               /* 71 */
    0x0e,                               /* 81-83 */
    0                                   /* 9x: see below */
};


static int
dg_mask_valid_id(const uint8_t *r, size_t n)
{
    static const int    w[17] = { 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10,
                                  5, 8, 4, 2 };
    static const char   chk[] = "10X98765432";
    static const uint8_t mdays[13] = { 0, 31, 29, 31, 30, 31, 30, 31, 31,
                                       30, 31, 30, 31 };
    unsigned            i, s, y, mo, d;
    uint8_t             c;

    if (n != DG_ID_LEN) {
        return 0;
    }

    s = 0;
    for (i = 0; i < 17; i++) {
        if (r[i] < '0' || r[i] > '9') {
            return 0;
        }
        s += (r[i] - '0') * w[i];
    }

    c = r[17];
    if (c == 'x') {
        c = 'X';
    }

    if (c != (uint8_t) chk[s % 11]) {
        return 0;
    }

    if (r[0] == '9') {
        /* foreigner's permanent residence ID: 9, then a province code */
        if (r[1] < '1' || r[1] > '8') {
            return 0;
        }

    } else if (!(dg_mask_provinces[r[0] - '0'] & (1u << (r[1] - '0')))) {
        return 0;
    }

    y = dg_mask_num(r + 6, 4);
    mo = dg_mask_num(r + 10, 2);
    d = dg_mask_num(r + 12, 2);

    if (y < DG_ID_YEAR_MIN || y > DG_ID_YEAR_MAX || mo < 1 || mo > 12
        || d < 1 || d > mdays[mo])
    {
        return 0;
    }

    /* 29 February only in a leap year */
    return !(mo == 2 && d == 29
             && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
}


/* the mobile segments in use: 13x, 145-149, 150-153, 155-159, 162,
 * 165-167, 170-178, 18x, 190-193, 195-199 (a bit per third digit) */
static const uint16_t  dg_mask_segments[10] = {
    0, 0, 0,
    0x3ff,                              /* 13x */
    0x3e0,                              /* 145-149 */
    0x3ef,                              /* 150-153, 155-159 */
    0x0e4,                              /* 162, 165-167 */
    0x1ff,                              /* 170-178 */
    0x3ff,                              /* 18x */
    0x3ef                               /* 190-193, 195-199 */
};


static int
dg_mask_valid_mobile(const uint8_t *r, size_t n)
{
    size_t  i;

    if (n != DG_MOBILE_LEN) {
        return 0;
    }

    if (r[0] != '1' || !(dg_mask_segments[r[1] - '0'] & (1u << (r[2] - '0'))))
    {
        return 0;
    }

    for (i = 3; i < DG_MOBILE_LEN; i++) {
        if (r[i] < '0' || r[i] > '9') {
            return 0;
        }
    }

    return 1;
}


static int
dg_mask_luhn(const uint8_t *r, size_t n)
{
    unsigned  s, d, dbl;
    size_t    i;

    s = 0;
    dbl = 0;

    for (i = n; i > 0; i--) {
        d = r[i - 1] - '0';
        if (d > 9) {
            return 0;
        }
        if (dbl) {
            d *= 2;
            if (d > 9) {
                d -= 9;
            }
        }
        s += d;
        dbl = !dbl;
    }

    return s % 10 == 0;
}


static int
dg_mask_valid_card(const uint8_t *r, size_t n)
{
    unsigned  bin;

    if (n < DG_CARD_MIN || n > DG_CARD_MAX) {
        return 0;
    }

    switch (r[0]) {
    case '3': case '4': case '5': case '6': case '9':
        break;
    case '2':
        /* Mastercard's 2-series */
        bin = dg_mask_num(r, 4);
        if (bin < 2221 || bin > 2720) {
            return 0;
        }
        break;
    default:
        return 0;
    }

    return dg_mask_luhn(r, n);
}


static int
dg_mask_valid_uscc(const uint8_t *r, size_t n)
{
    static const char   alpha[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    static const int    w[17] = { 1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25,
                                  13, 8, 24, 10, 30, 28 };
    const char         *f;
    unsigned            i, s, v[18];
    int                 c;

    if (n != DG_USCC_LEN) {
        return 0;
    }

    if (!((r[0] >= '1' && r[0] <= '9') || r[0] == 'A' || r[0] == 'N'
          || r[0] == 'Y')
        || !((r[1] >= '1' && r[1] <= '5') || r[1] == '9')
        || r[2] < '0' || r[2] > '9' || r[3] < '0' || r[3] > '9'
        || !(dg_mask_provinces[r[2] - '0'] & (1u << (r[3] - '0'))))
    {
        return 0;
    }

    for (i = 0; i < 18; i++) {
        c = r[i];
        if (c >= 'a' && c <= 'z') {
            c -= 'a' - 'A';
        }
        f = strchr(alpha, c);
        if (f == NULL || c == 0) {
            return 0;
        }
        v[i] = (unsigned) (f - alpha);
    }

    s = 0;
    for (i = 0; i < 17; i++) {
        s += v[i] * w[i];
    }

    return (31 - s % 31) % 31 == v[17];
}


/*
 * The groups a candidate may be written in (digits apart, one separator
 * between two groups): mobile 3-4-4; resident ID 6-8-4, 6-4-4-4 and
 * 4-4-4-4-2; bank card in fours, the last group 1 to 4 long.  One group
 * (no separator) may hold any candidate, and a mobile with 86 or 0086
 * before it.
 */
typedef struct {
    uint8_t                     kinds;      /* bit per DG_DETECT_* */
    uint8_t                     ng;
    uint8_t                     g[DG_DETECT_GROUPS];
} dg_mask_shape_t;

#define DG_KIND(k)  (1u << (k))

static const dg_mask_shape_t  dg_mask_shapes[] = {
    { DG_KIND(DG_DETECT_MOBILE), 3, { 3, 4, 4 } },
    { DG_KIND(DG_DETECT_ID_NUMBER), 3, { 6, 8, 4 } },
    { DG_KIND(DG_DETECT_ID_NUMBER), 4, { 6, 4, 4, 4 } },
    { DG_KIND(DG_DETECT_BANK_CARD), 4, { 4, 4, 4, 4 } },
    { DG_KIND(DG_DETECT_BANK_CARD), 5, { 4, 4, 4, 4, 1 } },
    { DG_KIND(DG_DETECT_ID_NUMBER) | DG_KIND(DG_DETECT_BANK_CARD), 5,
      { 4, 4, 4, 4, 2 } },
    { DG_KIND(DG_DETECT_BANK_CARD), 5, { 4, 4, 4, 4, 3 } }
};

#undef DG_KIND


unsigned
dg_mask_detect_shape(const uint8_t *g, unsigned ng)
{
    const dg_mask_shape_t  *s, *end;
    unsigned                n, i;

    if (ng == 1) {
        n = g[0];
        if (n == DG_MOBILE_LEN || n == DG_MOBILE_LEN + 2
            || n == DG_MOBILE_LEN + 4)
        {
            return 1u << DG_DETECT_MOBILE;
        }
        if (n == DG_ID_LEN) {
            return (1u << DG_DETECT_ID_NUMBER) | (1u << DG_DETECT_BANK_CARD);
        }
        if (n >= DG_CARD_MIN && n <= DG_CARD_MAX) {
            return 1u << DG_DETECT_BANK_CARD;
        }
        return 0;
    }

    end = dg_mask_shapes + sizeof(dg_mask_shapes) / sizeof(dg_mask_shapes[0]);

    for (s = dg_mask_shapes; s < end; s++) {
        if (s->ng != ng) {
            continue;
        }
        for (i = 0; i < ng && s->g[i] == g[i]; i++) { /* void */ }
        if (i == ng) {
            return s->kinds;
        }
    }

    return 0;
}


int
dg_mask_detect_groups(const uint8_t *d, size_t n, const uint8_t *g,
    unsigned ng, unsigned *skip)
{
    unsigned  kinds;

    *skip = 0;
    kinds = dg_mask_detect_shape(g, ng);

    if (kinds == 0) {
        return -1;
    }

    if ((kinds & (1u << DG_DETECT_ID_NUMBER))
        && dg_mask_detect_kinds[DG_DETECT_ID_NUMBER].valid(d, n))
    {
        return DG_DETECT_ID_NUMBER;
    }

    if (d[n - 1] < '0' || d[n - 1] > '9') {
        return -1;
    }

    if (kinds & (1u << DG_DETECT_MOBILE)) {
        if (n == DG_MOBILE_LEN + 2 && d[0] == '8' && d[1] == '6') {
            *skip = 2;

        } else if (n == DG_MOBILE_LEN + 4 && d[0] == '0' && d[1] == '0'
                   && d[2] == '8' && d[3] == '6')
        {
            *skip = 4;

        } else if (n != DG_MOBILE_LEN) {
            return -1;
        }

        if (dg_mask_detect_kinds[DG_DETECT_MOBILE].valid(d + *skip,
                                                         n - *skip))
        {
            return DG_DETECT_MOBILE;
        }

        *skip = 0;
        return -1;
    }

    if ((kinds & (1u << DG_DETECT_BANK_CARD))
        && dg_mask_detect_kinds[DG_DETECT_BANK_CARD].valid(d, n))
    {
        return DG_DETECT_BANK_CARD;
    }

    return -1;
}


int
dg_mask_detect_digits(const uint8_t *r, size_t n)
{
    uint8_t   g;
    unsigned  skip;

    if (n == 0 || n > DG_CARD_MAX) {
        return -1;
    }

    g = (uint8_t) n;

    return dg_mask_detect_groups(r, n, &g, 1, &skip);
}


int
dg_mask_detect_kind(const uint8_t *r, size_t n)
{
    size_t  i, digits;

    digits = 0;
    for (i = 0; i < n; i++) {
        if (r[i] >= '0' && r[i] <= '9') {
            digits++;
        }
    }

    if (dg_mask_detect_kinds[DG_DETECT_ID_NUMBER].valid(r, n)) {
        return DG_DETECT_ID_NUMBER;
    }

    if (digits == n && dg_mask_detect_kinds[DG_DETECT_BANK_CARD].valid(r, n))
    {
        return DG_DETECT_BANK_CARD;
    }

    if (dg_mask_detect_kinds[DG_DETECT_USCC].valid(r, n)) {
        return DG_DETECT_USCC;
    }

    return -1;
}


void
dg_mask_detect_method(unsigned kind, const dg_mask_spec_t *conf,
    const uint8_t *hash_key, size_t hash_key_len, dg_mask_spec_t *spec)
{
    if (conf != NULL && conf->method != DG_MASK_CLEAR
        && conf->method < DG_MASK_METHOD_MAX
        && (conf->method != DG_MASK_HASH
            || (hash_key != NULL && hash_key_len != 0)))
    {
        *spec = *conf;
        return;
    }

    *spec = dg_mask_detect_kinds[kind].mask;
}


/*
 * The detect kinds.  name: in audit records ("detected") and metrics;
 * class_id: the policy class whose mask the kind takes
 * (dg_policy_detect_specs()); mask: the mask when the policy has no
 * such class, or it is clear.
 */
const dg_mask_detect_kind_t  dg_mask_detect_kinds[DG_DETECT_MAX] = {

    [DG_DETECT_ID_NUMBER] = {
        "id_number", "resident ID", "person.id_number",
        { DG_MASK_ID_CARD, 0, 0, 0 }, dg_mask_valid_id },

    [DG_DETECT_MOBILE] = {
        "mobile", "mobile number", "person.phone",
        { DG_MASK_PHONE, 0, 0, 0 }, dg_mask_valid_mobile },

    [DG_DETECT_BANK_CARD] = {
        "bank_card", "bank card", "finance.bank_card",
        { DG_MASK_BANK_CARD, 0, 0, 0 }, dg_mask_valid_card },

    [DG_DETECT_USCC] = {
        "uscc", "unified social credit code", "org.uscc",
        { DG_MASK_KEEP, 6, 4, 0 }, dg_mask_valid_uscc }
};
