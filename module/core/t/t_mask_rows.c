/*
 * Unit tests of records in the masker (module/core/dg_mask_rec.c): where
 * the records are and their count, row scoping (records out of scope
 * removed while streaming, one held at a time), the record allowance
 * (record caps, paused and cut).
 *
 * Every case runs whole, split in two at every offset and one byte at a
 * time, into emitted and into lent memory, with the vector code and the
 * scalar code; all runs must agree with the expected output, error and
 * counts, and every output must be valid JSON.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "dg_mask.h"
#include "t_mask_util.h"


#define T_MAXF      16
#define T_MAXR      8
#define T_MAXV      8

#define UD  DG_MASK_UNLISTED_DROP
#define DT  DG_MASK_DETECT

#define T_NONE      -1      /* no allowance: no limit */


typedef struct {
    const char         *name;
    const char         *sel;        /* "sel=method;..." */
    unsigned            flags;
    const char         *records;    /* NULL: auto */
    const char         *rows;       /* "field=v|v;field=v", or NULL */
    long                allow;      /* records allowed, T_NONE: no limit */
    long                chunk;      /* given in chunks of (pauses), 0:
                                       at once */
    const char         *in;
    const char         *out;        /* NULL: error rc */
    int                 rc;
    long                nrec;       /* records sent, -1: not checked */
    long                dropped;    /* rows_dropped */
    long                cut;        /* records_cut */
    size_t              max_value;  /* 0: 256 */
} rcase_t;


/* counting only */
#define REC_(n, rec, in, c)                                                  \
    { n, "x=redact", 0, rec, NULL, T_NONE, 0, in, in, 0, c, 0, 0, 0 }
/* row scoping */
#define ROW_(n, sel, fl, rec, rows, in, out, c, d)                           \
    { n, sel, fl, rec, rows, T_NONE, 0, in, out, 0, c, d, 0, 0 }
#define RERR_(n, rec, rows, in, e)                                           \
    { n, "", 0, rec, rows, T_NONE, 0, in, NULL, e, -1, -1, -1, 0 }
/* allowance */
#define CAP_(n, fl, rec, rows, al, ch, in, out, c, d, k)                     \
    { n, "x=redact", fl, rec, rows, al, ch, in, out, 0, c, d, k, 0 }


static const rcase_t  cases[] = {

    /* where the records are, and their count */
    REC_("auto top array", NULL, "[{\"a\":1},{\"a\":2},3]", 3),
    REC_("auto data", NULL,
         "{\"code\":0,\"data\":[{\"a\":1},{\"a\":2},{\"a\":3}],\"total\":3}",
         3),
    REC_("auto skips scalars", NULL,
         "{\"tags\":[\"x\",\"y\"],\"data\":[{\"a\":1}]}", 1),
    REC_("auto skips empty", NULL,
         "{\"list\":[],\"data\":[{},{}],\"more\":[{},{},{}]}", 2),
    REC_("auto first wins", NULL,
         "{\"a\":[{}],\"b\":[{},{}]}", 1),
    REC_("auto array of arrays", NULL,
         "{\"a\":[[{}]],\"b\":[{},{}]}", 2),
    REC_("auto one object", NULL, "{\"id\":1,\"name\":\"x\"}", 1),
    REC_("auto nested deeper", NULL, "{\"a\":{\"b\":[{},{}]}}", 1),
    REC_("auto scalar", NULL, "42", 0),
    REC_("auto string", NULL, "\"x\"", 0),
    REC_("auto empty array", NULL, "[]", 0),
    REC_("auto plain records", NULL,
         "[{\"a\":1,\"b\":\"x\",\"c\":true},{\"a\":2,\"b\":\"y\",\"c\":null},"
         "{\"a\":3,\"b\":\"z\",\"c\":false},{\"a\":4,\"b\":\"w\",\"c\":1}]",
         4),
    REC_("path data", "data[]", "{\"data\":[1,2,{},[]]}", 4),
    REC_("path data scalars", "data[]", "{\"y\":1,\"data\":[1,2,3]}", 3),
    REC_("path other key", "data[]", "{\"list\":[{},{}]}", 0),
    REC_("path nested", "result.items[]",
         "{\"items\":[{}],\"result\":{\"x\":[{}],\"items\":[{},{}]}}", 2),
    REC_("path dollar", "$.data[]", "{\"data\":[{},{}]}", 2),
    REC_("path top", "[]", "[{},{},{}]", 3),
    REC_("path top dollar", "$[]", "[{},{}]", 2),
    REC_("path top not array", "[]", "{\"data\":[{}]}", 0),
    REC_("root", "$", "{\"a\":[{},{}]}", 1),
    REC_("root array", "$", "[{},{}]", 1),
    REC_("path deep key", "data[]", "{\"x\":{\"data\":[{}]},\"data\":[{}]}",
         1),

    /* row scoping: one condition */
    ROW_("rows basic", "", 0, "data[]", "region_code=4501*|450203",
         "{\"data\":[{\"region_code\":\"450103\",\"n\":1},"
         "{\"region_code\":\"990000\",\"n\":2},"
         "{\"region_code\":\"450203\",\"n\":3}],\"total\":3}",
         "{\"data\":[{\"region_code\":\"450103\",\"n\":1},"
         "{\"region_code\":\"450203\",\"n\":3}],\"total\":3}", 2, 1),
    ROW_("rows first out", "", 0, "data[]", "r=a",
         "{\"data\":[{\"r\":\"b\"},{\"r\":\"a\",\"n\":1},{\"r\":\"a\"}]}",
         "{\"data\":[{\"r\":\"a\",\"n\":1},{\"r\":\"a\"}]}", 2, 1),
    ROW_("rows last out", "", 0, "data[]", "r=a",
         "{\"data\":[{\"r\":\"a\"},{\"r\":\"b\"}]}",
         "{\"data\":[{\"r\":\"a\"}]}", 1, 1),
    ROW_("rows all out", "", 0, "data[]", "r=a",
         "{\"data\":[{\"r\":\"b\"},{\"r\":\"c\"}],\"n\":2}",
         "{\"data\":[],\"n\":2}", 0, 2),
    ROW_("rows none", "", 0, "data[]", "r=a", "{\"data\":[]}",
         "{\"data\":[]}", 0, 0),
    ROW_("rows pretty", "", 0, "data[]", "r=a",
         "{\n  \"data\": [\n    {\"r\": \"b\"},\n    {\"r\": \"a\"} ,\n"
         "    {\"r\" : \"c\"}\n  ]\n}\n",
         "{\n  \"data\": [\n    {\"r\": \"a\"} \n  ]\n}\n", 1, 2),
    ROW_("rows field last", "", 0, "data[]", "r=a",
         "{\"data\":[{\"x\":1,\"y\":\"z\",\"r\":\"a\"},"
         "{\"x\":2,\"y\":\"w\",\"r\":\"b\"}]}",
         "{\"data\":[{\"x\":1,\"y\":\"z\",\"r\":\"a\"}]}", 1, 1),
    ROW_("rows field missing", "", 0, "data[]", "r=a",
         "{\"data\":[{\"x\":1},{\"r\":\"a\"}]}",
         "{\"data\":[{\"r\":\"a\"}]}", 1, 1),
    ROW_("rows nested occurrence", "", 0, "data[]", "r=a",
         "{\"data\":[{\"x\":{\"r\":\"a\"}},{\"r\":\"a\",\"y\":{\"r\":\"b\"}},"
         "{\"z\":[{\"r\":\"a\"}]}]}",
         "{\"data\":[{\"r\":\"a\",\"y\":{\"r\":\"b\"}}]}", 1, 2),
    ROW_("rows nested path", "", 0, "data[]", "addr.region=4501*",
         "{\"data\":[{\"addr\":{\"city\":\"x\",\"region\":\"450102\"}},"
         "{\"addr\":{\"region\":\"990102\"}},{\"region\":\"450102\"},"
         "{\"addr\":\"450102\"},{\"x\":{\"addr\":{\"region\":\"4501\"}}}]}",
         "{\"data\":[{\"addr\":{\"city\":\"x\",\"region\":\"450102\"}}]}",
         1, 4),
    ROW_("rows escaped key", "", 0, "data[]", "region_code=4501*",
         "{\"data\":[{\"region\\u005fcode\":\"450103\"},"
         "{\"\\u0072egion_code\":\"990000\"},"
         "{\"region_cod\\u0065\":\"4501\"}]}",
         "{\"data\":[{\"region\\u005fcode\":\"450103\"},"
         "{\"region_cod\\u0065\":\"4501\"}]}", 2, 1),
    ROW_("rows escaped value", "", 0, "data[]", "r=450103|\xe5\x8d\x97*",
         "{\"data\":[{\"r\":\"45\\u00301\\u00303\"},{\"r\":\"4501\\n3\"},"
         "{\"r\":\"\\u5357\\u5b81\"},{\"r\":\"\\/\"}]}",
         "{\"data\":[{\"r\":\"45\\u00301\\u00303\"},"
         "{\"r\":\"\\u5357\\u5b81\"}]}", 2, 2),
    ROW_("rows duplicate key", "", 0, "data[]", "r=a",
         "{\"data\":[{\"r\":\"a\",\"r\":\"b\"},{\"r\":\"b\",\"r\":\"a\"},"
         "{\"r\":\"a\",\"r\":\"a\"}]}",
         "{\"data\":[{\"r\":\"a\",\"r\":\"a\"}]}", 1, 2),
    ROW_("rows types", "", 0, "data[]", "r=450203|true|4501*",
         "{\"data\":[{\"r\":450203},{\"r\":4.50203e5},{\"r\":true},"
         "{\"r\":false},{\"r\":null},{\"r\":{\"r\":\"450203\"}},"
         "{\"r\":[\"450203\"]},{\"r\":45012},{\"r\":-4501}]}",
         "{\"data\":[{\"r\":450203},{\"r\":true},{\"r\":45012}]}", 3, 6),
    ROW_("rows star any", "", 0, "data[]", "r=*",
         "{\"data\":[{\"r\":\"\"},{\"r\":null},{\"s\":1},{\"r\":0}]}",
         "{\"data\":[{\"r\":\"\"},{\"r\":0}]}", 2, 2),
    ROW_("rows empty value", "", 0, "data[]", "r=",
         "{\"data\":[{\"r\":\"\"},{\"r\":\"a\"}]}",
         "{\"data\":[{\"r\":\"\"}]}", 1, 1),
    ROW_("rows two conditions", "", 0, "data[]",
         "region=4501*;status=active",
         "{\"data\":[{\"region\":\"4501\",\"status\":\"active\"},"
         "{\"status\":\"active\",\"region\":\"9999\"},"
         "{\"region\":\"4501\"},{\"status\":\"gone\",\"region\":\"4501\"},"
         "{\"status\":\"active\",\"region\":\"450102\",\"x\":[1]}]}",
         "{\"data\":[{\"region\":\"4501\",\"status\":\"active\"},"
         "{\"status\":\"active\",\"region\":\"450102\",\"x\":[1]}]}", 2, 3),
    ROW_("rows masked field", "r=keep(2,0)", 0, "data[]", "r=4501*",
         "{\"data\":[{\"r\":\"450102\"},{\"r\":\"990102\"}]}",
         "{\"data\":[{\"r\":\"45****\"}]}", 1, 1),
    ROW_("rows masked path field", "data[].r=redact", 0, "data[]", "r=a",
         "{\"data\":[{\"r\":\"a\"},{\"r\":\"b\"}],\"r\":\"c\"}",
         "{\"data\":[{\"r\":\"***\"}],\"r\":\"c\"}", 1, 1),
    ROW_("rows dropped field", "r=drop", 0, "data[]", "r=a",
         "{\"data\":[{\"n\":1,\"r\":\"a\"},{\"r\":\"b\",\"n\":2},"
         "{\"r\":\"a\",\"n\":3}]}",
         "{\"data\":[{\"n\":1},{\"n\":3}]}", 2, 1),
    ROW_("rows other fields masked", "id=id_card", 0, "data[]", "r=a",
         "{\"data\":[{\"id\":\"450103199003071242\",\"r\":\"b\"},"
         "{\"r\":\"a\",\"id\":\"450103199003071242\"}]}",
         "{\"data\":[{\"r\":\"a\",\"id\":\"450103********1242\"}]}", 1, 1),
    ROW_("rows allow-list", "n=clear", UD, "data[]", "r=a",
         "{\"data\":[{\"n\":1,\"r\":\"a\",\"x\":2},{\"r\":\"b\",\"n\":2},"
         "{\"n\":3,\"r\":\"a\"}],\"total\":3}",
         "{\"data\":[{\"n\":1},{\"n\":3}]}", 2, 1),
    ROW_("rows allow-list first out", "n=clear", UD, "data[]", "r=a",
         "{\"data\":[ {\"r\":\"b\",\"n\":2}, {\"n\":3,\"r\":\"a\"} ,"
         " 7, {\"r\":\"a\",\"n\":4}]}",
         "{\"data\":[ {\"n\":3} , {\"n\":4}]}", 2, 1),
    ROW_("rows allow-list nested", "n=clear", UD, "data[]", "a.r=x",
         "{\"data\":[{\"n\":1,\"a\":{\"r\":\"x\",\"q\":1}},"
         "{\"a\":{\"r\":\"y\"},\"n\":2}]}",
         "{\"data\":[{\"n\":1,\"a\":{}}]}", 1, 1),
    ROW_("rows detect", "", DT, "data[]", "r=4501*",
         "{\"data\":[{\"r\":\"450103199003071242\"},{\"r\":\"13877112345\"}]}",
         "{\"data\":[{\"r\":\"450103********1242\"}]}", 1, 1),
    ROW_("rows root in", "", 0, "$", "r=a", "{\"r\":\"a\",\"n\":1}",
         "{\"r\":\"a\",\"n\":1}", 1, 0),
    ROW_("rows root out", "", 0, "$", "r=a", " {\"r\":\"b\",\"n\":1} ",
         "  ", 0, 1),
    ROW_("rows root array", "", 0, "$", "r=a", "[{\"r\":\"a\"}]", "", 0, 1),
    ROW_("rows top array", "", 0, "[]", "r=a",
         "[{\"r\":\"a\"},{\"r\":\"b\"},{\"r\":\"a\",\"s\":[{\"r\":\"b\"}]}]",
         "[{\"r\":\"a\"},{\"r\":\"a\",\"s\":[{\"r\":\"b\"}]}]", 2, 1),
    ROW_("rows scalar records", "", 0, "data[]", "r=a",
         "{\"data\":[\"a\",{\"r\":\"a\"},1,null,[\"r\"]]}",
         "{\"data\":[{\"r\":\"a\"}]}", 1, 4),
    ROW_("rows deep path", "", 0, "res.list[]", "r=a",
         "{\"res\":{\"n\":2,\"list\":[{\"r\":\"b\"},{\"r\":\"a\"}],\"m\":1},"
         "\"list\":[{\"r\":\"b\"}]}",
         "{\"res\":{\"n\":2,\"list\":[{\"r\":\"a\"}],\"m\":1},"
         "\"list\":[{\"r\":\"b\"}]}", 1, 1),
    { "rows long value", "", 0, "data[]",
         "r=abc*|abcdefghijabcdefghijabcdefghijabcdefghij", T_NONE, 0,
         "{\"data\":[{\"r\":\"abcdefghijabcdefghijabcdefghijabcdefghij"
         "abcdefghij"
         "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdef"
         "ghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijab"
         "cdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefgh"
         "ijabcdefghij\"},{\"r\":\"zbc\"}]}",
         "{\"data\":[{\"r\":\"abcdefghijabcdefghijabcdefghijabcdefghij"
         "abcdefghij"
         "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdef"
         "ghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijab"
         "cdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefgh"
         "ijabcdefghij\"}]}", 0, 1, 1, 0, 1024 },
    { "rows long exact", "", 0, "data[]",
      "r=abcdefghijabcdefghijabcdefghijabcdefghij", T_NONE, 0,
      "{\"data\":[{\"r\":\"abcdefghijabcdefghijabcdefghijabcdefghijX\"},"
      "{\"r\":\"abcdefghijabcdefghijabcdefghijabcdefghij\"}]}",
      "{\"data\":[{\"r\":\"abcdefghijabcdefghijabcdefghijabcdefghij\"}]}",
      0, 1, 1, 0, 0 },
    ROW_("rows envelope kept", "", 0, "data[]", "r=a",
         "{\"r\":\"z\",\"data\":[{\"r\":\"z\"}],\"r2\":{\"r\":\"z\"}}",
         "{\"r\":\"z\",\"data\":[],\"r2\":{\"r\":\"z\"}}", 0, 1),
    ROW_("rows no records", "", 0, "data[]", "r=a",
         "{\"code\":404,\"message\":\"not found\"}",
         "{\"code\":404,\"message\":\"not found\"}", 0, 0),

    /* a record already out of scope is not masked further (its bytes go
     * nowhere): a value that could not be masked there is no error,
     * before the decision it is */
    ROW_("rows out not masked", "name=name", 0, "data[]", "r=a",
         "{\"data\":[{\"r\":\"b\",\"name\":\"\xff\xfe\"},"
         "{\"name\":\"\xe9\x9f\xa6\xe7\xa7\x80\",\"r\":\"a\"}]}",
         "{\"data\":[{\"name\":\"\xe9\x9f\xa6*\",\"r\":\"a\"}]}", 1, 1),
    { "rows masked before decided", "name=name", 0, "data[]", "r=a",
      T_NONE, 0, "{\"data\":[{\"name\":\"\xff\",\"r\":\"b\"}]}", NULL,
      DG_MASK_E_UTF8, -1, -1, -1, 0 },

    /* row scoping refuses what it cannot decide */
    RERR_("rows records not array", "data[]", "r=a",
          "{\"data\":{\"r\":\"b\"}}", DG_MASK_E_RECORDS),
    RERR_("rows records scalar", "data[]", "r=a",
          "{\"data\":\"x\"}", DG_MASK_E_RECORDS),
    RERR_("rows root not object", "data[]", "r=a",
          "[{\"data\":[{\"r\":\"b\"}]}]", DG_MASK_E_RECORDS),
    RERR_("rows step not object", "res.list[]", "r=a",
          "{\"res\":[{\"list\":[{\"r\":\"b\"}]}]}", DG_MASK_E_RECORDS),
    RERR_("rows top not array", "[]", "r=a",
          "{\"r\":\"b\"}", DG_MASK_E_RECORDS),
    RERR_("rows record too big", "data[]", "r=a",
          "{\"data\":[{\"r\":\"a\",\"x\":\"0123456789012345678901234567890123"
          "4567890123456789012345678901234567890123456789\"}]}",
          DG_MASK_E_RECORD),
    RERR_("rows truncated", "data[]", "r=a",
          "{\"data\":[{\"r\":\"a\"}", DG_MASK_E_TRUNCATED),
    RERR_("rows bad json", "data[]", "r=a",
          "{\"data\":[{\"r\":\"a\"},]}", DG_MASK_E_SYNTAX),

    /* the allowance: records past it cut */
    CAP_("cap two", 0, NULL, NULL, 2, 0,
         "[{\"a\":1},{\"a\":2},{\"a\":3},{\"a\":4}]",
         "[{\"a\":1},{\"a\":2}]", 2, 0, 2),
    CAP_("cap zero", 0, "data[]", NULL, 0, 0,
         "{\"data\":[{\"a\":1},{\"a\":2}],\"total\":2}",
         "{\"data\":[],\"total\":2}", 0, 0, 2),
    CAP_("cap more than there are", 0, "data[]", NULL, 10, 0,
         "{\"data\":[{\"a\":1},{\"a\":2}],\"total\":2}",
         "{\"data\":[{\"a\":1},{\"a\":2}],\"total\":2}", 2, 0, 0),
    CAP_("cap pretty", 0, "data[]", NULL, 1, 0,
         "{ \"data\" : [ {\"a\":1} , {\"x\":\"s\"} , 3 ] , \"t\" : 2 }",
         "{ \"data\" : [ {\"a\":1}   ] , \"t\" : 2 }", 1, 0, 2),
    CAP_("cap chunks", 0, NULL, NULL, 5, 2,
         "[{\"a\":1},{\"a\":2},{\"a\":3},{\"a\":4},{\"a\":5},{\"a\":6},"
         "{\"a\":7}]",
         "[{\"a\":1},{\"a\":2},{\"a\":3},{\"a\":4},{\"a\":5}]", 5, 0, 2),
    CAP_("cap chunks all", 0, NULL, NULL, 9, 1,
         "[{\"a\":1},{\"a\":2},{\"a\":3}]",
         "[{\"a\":1},{\"a\":2},{\"a\":3}]", 3, 0, 0),
    CAP_("cap masked records", 0, "data[]", NULL, 1, 0,
         "{\"data\":[{\"x\":\"secret\"},{\"x\":\"secret2\"}]}",
         "{\"data\":[{\"x\":\"***\"}]}", 1, 0, 1),
    CAP_("cap with rows", 0, "data[]", "r=a", 2, 1,
         "{\"data\":[{\"r\":\"b\"},{\"r\":\"a\"},{\"r\":\"c\"},{\"r\":\"a\"},"
         "{\"r\":\"a\"},{\"r\":\"b\"}]}",
         "{\"data\":[{\"r\":\"a\"},{\"r\":\"a\"}]}", 2, 2, 2),
    CAP_("cap allow-list", UD, "data[]", NULL, 1, 0,
         "{\"data\":[{\"x\":1},{\"x\":2},{\"x\":3}]}",
         "{\"data\":[{\"x\":\"***\"}]}", 1, 0, 2),
    CAP_("cap root", 0, "$", NULL, 1, 0, "{\"x\":1}", "{\"x\":\"***\"}",
         1, 0, 0),
    CAP_("cap root none", 0, "$", NULL, 0, 0, "{\"x\":1}", "", 0, 0, 1),
    CAP_("cap auto object", 0, NULL, NULL, 1, 0,
         "{\"data\":[{\"x\":1},{\"x\":2}],\"more\":[{\"x\":3}]}",
         "{\"data\":[{\"x\":\"***\"}],\"more\":[{\"x\":\"***\"}]}", 1, 0, 1),
};


static int
parse_sel(const char *s, dg_mask_field_t *f, dg_mask_spec_t *a,
    char buf[T_MAXF][128])
{
    const char  *e, *eq;
    size_t       n;
    int          k;

    k = 0;

    while (*s) {
        e = strchr(s, ';');
        if (e == NULL) {
            e = s + strlen(s);
        }
        eq = memchr(s, '=', e - s);
        if (eq == NULL || k >= T_MAXF) {
            return -1;
        }
        n = eq - s;
        memcpy(buf[k], s, n);
        buf[k][n] = '\0';
        f[k].selector = buf[k];
        f[k].len = n;
        if (dg_mask_spec_parse(eq + 1, e - eq - 1, &a[k]) != 0) {
            return -1;
        }
        k++;
        s = *e ? e + 1 : e;
    }

    return k;
}


/* "field=v|v;field=v" */
static int
parse_rows(const char *s, dg_mask_row_t *rows,
    dg_mask_field_t vals[T_MAXR][T_MAXV])
{
    const char  *e, *eq, *v, *ve;
    int          k;
    size_t       nv;

    k = 0;

    while (*s) {
        e = strchr(s, ';');
        if (e == NULL) {
            e = s + strlen(s);
        }
        eq = memchr(s, '=', e - s);
        if (eq == NULL || k >= T_MAXR) {
            return -1;
        }
        rows[k].field = s;
        rows[k].len = eq - s;
        nv = 0;
        for (v = eq + 1; ; v = ve + 1) {
            ve = memchr(v, '|', e - v);
            if (ve == NULL) {
                ve = e;
            }
            if (nv >= T_MAXV) {
                return -1;
            }
            vals[k][nv].selector = v;
            vals[k][nv].len = ve - v;
            nv++;
            if (ve == e) {
                break;
            }
        }
        rows[k].values = vals[k];
        rows[k].nvalues = nv;
        k++;
        s = *e ? e + 1 : e;
    }

    return k;
}


/*
 * Feed doc cut at cuts; on DG_MASK_PAUSED the rest of the span is fed
 * again after the next chunk of the allowance (allow in all, chunk at a
 * time; the last chunk says so).  Returns the rc of the last feed.
 */
static int
tr_feed(void *mem, const dg_mask_conf_t *conf, const uint8_t *doc, size_t n,
    const size_t *cuts, size_t ncuts, tm_buf_t *out, dg_mask_stats_t *st,
    long allow, long chunk, int *pauses)
{
    dg_mask_t  *m;
    size_t      i, from, to;
    long        given, c;
    int         rc, last;

    m = dg_mask_init(mem, conf);
    if (m == NULL) {
        return -100;
    }

    given = 0;
    *pauses = 0;

    if (allow >= 0) {
        c = chunk ? chunk : allow;
        if (c > allow) {
            c = allow;
        }
        given = c;
        dg_mask_allow(m, (uint64_t) c, given == allow);
    }

    from = 0;
    rc = DG_MASK_OK;

    for (i = 0; i <= ncuts; i++) {
        to = (i < ncuts) ? cuts[i] : n;
        if (to < from) {
            to = from;
        }
        if (to > n) {
            to = n;
        }

        last = (i == ncuts);

        for ( ;; ) {
            if (out->lend) {
                rc = dg_mask_feed_into(m, doc + from, to - from, last,
                                       tm_lend, out);
                free(out->chunk);
                out->chunk = NULL;
                out->coff = 0;
                out->ccap = 0;

            } else {
                rc = dg_mask_feed(m, doc + from, to - from, last, tm_emit,
                                  out);
            }

            if (rc != DG_MASK_PAUSED) {
                break;
            }

            (*pauses)++;
            from += dg_mask_taken(m);

            if (allow < 0 || given >= allow || *pauses > 1000) {
                /* a pause that no allowance can end: a bug */
                return -102;
            }

            c = chunk ? chunk : allow;
            if (given + c > allow) {
                c = allow - given;
            }
            given += c;
            dg_mask_allow(m, (uint64_t) c, given == allow);
        }

        if (rc != DG_MASK_OK) {
            break;
        }
        from = to;
    }

    if (out->bad && rc == DG_MASK_OK) {
        rc = -101;
    }

    if (st) {
        *st = *dg_mask_stats(m);
    }

    return rc;
}


static void
run_case(const rcase_t *tc)
{
    dg_mask_field_t   f[T_MAXF + T_MAXR * 8];
    dg_mask_spec_t    a[T_MAXF + T_MAXR * 8];
    dg_mask_field_t   vals[T_MAXR][T_MAXV];
    dg_mask_row_t     rows[T_MAXR];
    dg_mask_field_t   extra[T_MAXR * 8];
    uint8_t           rflags[T_MAXF];
    char              buf[T_MAXF][128];
    char              err[256];
    dg_mask_rules_in_t in;
    dg_mask_rules_t  *r;
    dg_mask_rows_t   *rw;
    dg_mask_conf_t    conf;
    dg_mask_stats_t   st;
    tm_buf_t          out;
    void             *mem;
    const uint8_t    *doc;
    size_t            n, i, cut, nx, nf;
    int               k, nr, rc, bad, badrc, pauses;

    k = parse_sel(tc->sel, f, a, buf);
    if (!ok(k >= 0, "%s: selectors parse", tc->name)) {
        return;
    }
    nf = (size_t) k;

    rw = NULL;

    if (tc->rows) {
        nr = parse_rows(tc->rows, rows, vals);
        rw = nr > 0 ? dg_mask_rows_compile(rows, nr, err, sizeof(err))
                    : NULL;
        if (!ok(rw != NULL, "%s: rows compile %s", tc->name, err)) {
            return;
        }

        /* as the policy compiler does: the fields on the rows paths
         * carry DG_MASK_ROW_KEY, keys without one get a field */
        nx = dg_mask_rows_fields(rw, f, nf, rflags, extra,
                                 sizeof(extra) / sizeof(extra[0]));
        for (i = 0; i < nf; i++) {
            a[i].row = rflags[i];
        }
        for (i = 0; i < nx; i++) {
            f[nf] = extra[i];
            memset(&a[nf], 0, sizeof(a[nf]));
            a[nf].method = DG_MASK_CLEAR;
            a[nf].row = DG_MASK_ROW_KEY | DG_MASK_ROW_ONLY;
            nf++;
        }
    }

    memset(&in, 0, sizeof(in));
    in.fields = f;
    in.nfields = nf;
    in.records = tc->records;
    in.records_len = tc->records ? strlen(tc->records) : 0;
    in.flags = tc->flags;

    r = dg_mask_rules_build(&in, err, sizeof(err));
    if (!ok(r != NULL, "%s: rules compile %s", tc->name, err)) {
        dg_mask_rows_free(rw);
        return;
    }

    memset(&conf, 0, sizeof(conf));
    conf.rules = r;
    conf.actions = a;
    conf.max_value = tc->max_value ? tc->max_value : 64;
    conf.max_depth = 16;
    conf.rows = rw;
    conf.one = tc->allow >= 0;

    mem = tm_alloc(dg_mask_size(&conf));
    doc = (const uint8_t *) tc->in;
    n = strlen(tc->in);

    /* whole */
    memset(&out, 0, sizeof(out));
    rc = tr_feed(mem, &conf, doc, n, NULL, 0, &out, &st, tc->allow,
                 tc->chunk, &pauses);

    if (tc->out) {
        is_int(rc, 0, "%s: rc whole", tc->name);
        is_str(out.p ? (char *) out.p : "", tc->out, "%s: output",
               tc->name);
        ok(tc->out[strspn(tc->out, " ")] == '\0'
           || tm_json_valid(out.p ? out.p : (uint8_t *) "", out.len),
           "%s: output is valid JSON", tc->name);
        if (tc->nrec >= 0) {
            is_int(st.records, tc->nrec, "%s: records", tc->name);
        }
        if (tc->dropped >= 0) {
            is_int(st.rows_dropped, tc->dropped, "%s: rows dropped",
                   tc->name);
        }
        if (tc->cut >= 0) {
            is_int(st.records_cut, tc->cut, "%s: records cut", tc->name);
            ok(st.cut == (tc->cut > 0), "%s: cut flag", tc->name);
        }
        is_int(st.bytes_in, n, "%s: bytes_in", tc->name);
        is_int(st.bytes_out, out.len, "%s: bytes_out", tc->name);
        is_int(st.out_of_scope,
               tc->records && strcmp(tc->records, "$") == 0
               && tc->dropped > 0,
               "%s: out of scope (one record)", tc->name);

    } else {
        is_int(rc, tc->rc, "%s: error %s", tc->name, dg_mask_strerror(rc));
    }

    free(out.p);

    /* every two-way split and byte by byte; lent memory every other
     * time, the scalar code every third */
    bad = 0;
    badrc = 0;

    for (cut = 0; cut <= n + 1; cut++) {
        size_t           cuts[4096];
        size_t           ncut;
        dg_mask_stats_t  st2;

        memset(&out, 0, sizeof(out));
        conf.nosimd = (cut % 3 == 2);
        out.lend = (cut & 1) ? 40 : 0;
        out.seed = (uint32_t) cut;
        ncut = 0;

        if (cut <= n) {
            cuts[ncut++] = cut;
        } else {
            for (i = 1; i < n && ncut < 4096; i++) {
                cuts[ncut++] = i;
            }
        }

        rc = tr_feed(mem, &conf, doc, n, cuts, ncut, &out, &st2, tc->allow,
                     tc->chunk, &pauses);

        if (tc->out) {
            if (rc != 0 || out.len != strlen(tc->out)
                || memcmp(out.p ? out.p : (uint8_t *) "", tc->out, out.len)
                   != 0
                || st2.records != st.records
                || st2.rows_dropped != st.rows_dropped
                || st2.records_cut != st.records_cut
                || st2.out_of_scope != st.out_of_scope
                || st2.bytes_out != out.len)
            {
                if (!bad) {
                    diag("%s: split at %zu: rc %d got '%s' records %lu",
                         tc->name, cut, rc, out.p ? (char *) out.p : "",
                         (unsigned long) st2.records);
                }
                bad++;
            }

        } else if (rc != tc->rc) {
            if (!badrc) {
                diag("%s: split at %zu: rc %d", tc->name, cut, rc);
            }
            badrc++;
        }

        free(out.p);
    }

    ok(bad == 0 && badrc == 0, "%s: same result at every split and byte "
       "by byte", tc->name);

    free(mem);
    dg_mask_rules_free(r);
    dg_mask_rows_free(rw);
}


static void
test_compile(void)
{
    dg_mask_field_t     v[2] = { { "4501*", 5 }, { "4*5", 3 } };
    dg_mask_field_t     w[1] = { { "x", 1 } };
    dg_mask_row_t       rows[2];
    dg_mask_rows_t     *rw;
    dg_mask_rules_in_t  in;
    dg_mask_rules_t    *r;
    char                err[256];
    size_t              len;
    int                 last;
    const char         *k;

    rows[0].field = "region";
    rows[0].len = 6;
    rows[0].values = v;
    rows[0].nvalues = 2;

    rw = dg_mask_rows_compile(rows, 1, err, sizeof(err));
    ok(rw == NULL && strstr(err, "'*' may only end a value") != NULL,
       "a '*' inside a value is refused: %s", err);

    rows[0].nvalues = 1;
    rows[0].field = "a..b";
    rows[0].len = 4;
    rw = dg_mask_rows_compile(rows, 1, err, sizeof(err));
    ok(rw == NULL && strstr(err, "empty key") != NULL,
       "an empty key is refused: %s", err);

    rows[0].field = "a.b";
    rows[0].len = 3;
    rows[1].field = "a.b";
    rows[1].len = 3;
    rows[1].values = w;
    rows[1].nvalues = 1;
    rw = dg_mask_rows_compile(rows, 2, err, sizeof(err));
    ok(rw == NULL && strstr(err, "twice") != NULL,
       "a field twice is refused: %s", err);

    rows[1].field = "b";
    rows[1].len = 1;
    rw = dg_mask_rows_compile(rows, 2, err, sizeof(err));
    ok(rw != NULL, "two fields compile");

    k = dg_mask_rows_key(rw, 0, &len, &last);
    ok(k && len == 1 && *k == 'a' && !last, "key a is a step");
    k = dg_mask_rows_key(rw, 1, &len, &last);
    ok(k && len == 1 && *k == 'b' && last, "key b ends a field (once)");
    ok(dg_mask_rows_key(rw, 2, &len, &last) == NULL, "two distinct keys");

    ok(dg_mask_rows_match(rw, 0, (const uint8_t *) "4501", 4)
       && dg_mask_rows_match(rw, 0, (const uint8_t *) "450102", 6)
       && !dg_mask_rows_match(rw, 0, (const uint8_t *) "450", 3)
       && dg_mask_rows_match(rw, 1, (const uint8_t *) "x", 1)
       && !dg_mask_rows_match(rw, 1, (const uint8_t *) "xx", 2),
       "values: prefix and exact");

    /* a rule set without where records are cannot scope */
    memset(&in, 0, sizeof(in));
    r = dg_mask_rules_build(&in, err, sizeof(err));
    {
        dg_mask_conf_t  conf;
        void           *mem;

        memset(&conf, 0, sizeof(conf));
        conf.rules = r;
        conf.rows = rw;
        mem = tm_alloc(dg_mask_size(&conf));
        ok(dg_mask_init(mem, &conf) == NULL, "rows with auto records: "
           "refused");
        free(mem);
    }
    is_int(dg_mask_rules_records(r), DG_MASK_RECORDS_FOUND,
           "auto: records found");
    dg_mask_rules_free(r);
    dg_mask_rows_free(rw);

    {
        static const char  *bad[] = { "data", "data[", "data[].x[]",
            "a..b[]", ".a[]", "a.[]", "a[]b[]", "$.",
            "a.b.c.d.e.f.g.h.i[]", "[][]" };
        static const char  *good[] = { "$", "[]", "$[]", "data[]",
            "$.data[]", "a.b.c.d.e.f.g.h[]" };
        size_t              i;

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            in.records = bad[i];
            in.records_len = strlen(bad[i]);
            r = dg_mask_rules_build(&in, err, sizeof(err));
            ok(r == NULL && strstr(err, "records") != NULL,
               "records \"%s\" refused", bad[i]);
            dg_mask_rules_free(r);
        }

        for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
            in.records = good[i];
            in.records_len = strlen(good[i]);
            r = dg_mask_rules_build(&in, err, sizeof(err));
            ok(r != NULL && dg_mask_rules_records(r)
                            == (i ? DG_MASK_RECORDS_PATH : DG_MASK_RECORDS_ONE),
               "records \"%s\" compiles", good[i]);
            dg_mask_rules_free(r);
        }
    }

    /* the fields a rule set needs */
    {
        dg_mask_field_t  sel[4] = { { "r", 1 }, { "data[].s", 8 },
                                    { "t", 1 }, { "$.x.a", 5 } };
        dg_mask_field_t  ex[4];
        dg_mask_field_t  v1[1] = { { "1", 1 } };
        dg_mask_row_t    rr[3] = { { "r", 1, v1, 1 }, { "s", 1, v1, 1 },
                                   { "a.q", 3, v1, 1 } };
        uint8_t          fl[4];
        size_t           nx;

        rw = dg_mask_rows_compile(rr, 3, err, sizeof(err));
        nx = dg_mask_rows_fields(rw, sel, 4, fl, ex, 4);
        ok(fl[0] == DG_MASK_ROW_KEY && fl[1] == DG_MASK_ROW_KEY
           && fl[2] == 0 && fl[3] == DG_MASK_ROW_KEY,
           "fields ending in a rows key are marked");
        ok(nx == 3 && ex[0].len == 1 && ex[0].selector[0] == 's'
           && ex[1].selector[0] == 'a' && ex[2].selector[0] == 'q',
           "keys no key-anywhere field names get one: %zu", nx);
        dg_mask_rows_free(rw);
    }
}


int
main(void)
{
    size_t  i;

    (void) tm_feed;

    test_compile();

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(&cases[i]);
    }

    done_testing();
}
