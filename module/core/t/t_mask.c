/*
 * Unit tests of the streaming JSON masker (module/core/dg_mask.c).
 *
 * Every case runs whole, split in two at every offset and one byte at a
 * time; all runs must agree with the expected output (or error), and every
 * output must be valid JSON.
 *
 * Most of the file is one table (cases[]) read as one list, kept whole
 * for that reason; the safety net's tests are in t_mask_detect.c and
 * row scoping's in t_mask_rows.c.
 */

#define _GNU_SOURCE     /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "tap.h"
#include "dg_mask.h"
#include "dg_mask_int.h"
#include "dg_mask_scan.h"
#include "t_mask_util.h"


#define T_MAXF  16
#define T_WALK  0xff    /* "sel=walk": a container, not a field */

#define UD  DG_MASK_UNLISTED_DROP
#define DT  DG_MASK_DETECT


typedef struct {
    const char         *name;
    const char         *sel;        /* "sel=method;sel=method" */
    unsigned            flags;
    const char         *in;
    const char         *out;        /* NULL: error rc expected */
    int                 rc;
    long                unlisted;   /* -1: not checked */
    long                dropped;
    const char         *det;        /* "id,mobile,bank,uscc" or NULL */
    size_t              max_value;  /* 0: 256 */
    unsigned            max_depth;  /* 0: 16 */
} tcase_t;


#define OK_(n, s, f, i, o)            { n, s, f, i, o, 0, -1, -1, NULL, 0, 0 }
#define ERR_(n, s, f, i, e)           { n, s, f, i, NULL, e, -1, -1, NULL, 0, 0 }


static const tcase_t  cases[] = {

    /* pass-through */
    OK_("pass object", "idCard=id_card", 0,
        "{\"a\":1,\"b\":\"x\",\"c\":[true,false,null],\"d\":{}}",
        "{\"a\":1,\"b\":\"x\",\"c\":[true,false,null],\"d\":{}}"),
    OK_("pass pretty", "idCard=id_card", 0,
        "\n{\n  \"a\" : [ 1 , 2 ] ,\r\n\t\"b\" : { \"c\" : \"d\\\"e\" }\n}\n",
        "\n{\n  \"a\" : [ 1 , 2 ] ,\r\n\t\"b\" : { \"c\" : \"d\\\"e\" }\n}\n"),
    OK_("pass numbers", "x=redact", 0,
        "[0,-0,1.5e10,-1E-5,0.0,12345678901234567890,1e+2]",
        "[0,-0,1.5e10,-1E-5,0.0,12345678901234567890,1e+2]"),
    OK_("top string", "x=redact", 0, " \"hello\" ", " \"hello\" "),
    OK_("top number", "x=redact", 0, "42", "42"),
    OK_("top number ws", "x=redact", 0, " -4.5e3\n", " -4.5e3\n"),
    OK_("top true", "x=redact", 0, "true", "true"),
    OK_("top null", "x=redact", 0, "null", "null"),
    OK_("empties", "x=redact", 0, "[{},[],{\"a\":[]},{\"b\":{}}]",
        "[{},[],{\"a\":[]},{\"b\":{}}]"),
    OK_("escapes pass", "x=redact", 0,
        "[\"\\u00e9\\ud83d\\ude00\\n\\t\\/\\\\\\\"\\b\\f\\r\"]",
        "[\"\\u00e9\\ud83d\\ude00\\n\\t\\/\\\\\\\"\\b\\f\\r\"]"),
    OK_("utf8 pass", "x=redact", 0, "{\"名\":\"张三丰\"}",
        "{\"名\":\"张三丰\"}"),
    OK_("no selectors", "", 0, "{\"a\":[1,{\"b\":\"c\"}]}",
        "{\"a\":[1,{\"b\":\"c\"}]}"),

    /* plain members taken by the fast member loop */
    OK_("fast scalars", "x=redact", 0,
        "{\"a\":-0.5e+10,\"b\":1E5,\"c\":0,\"d\":-12,\"e\":true,"
        "\"f\":false,\"g\":null,\"h\":\"x\",\"i\":0.0e-0,\"j\":-0,"
        "\"k\" : 7 , \"l\":{\"m\":[1,{\"n\":2}],\"o\":3},\"x\":1,"
        "\"p\":\"\\n\"}",
        "{\"a\":-0.5e+10,\"b\":1E5,\"c\":0,\"d\":-12,\"e\":true,"
        "\"f\":false,\"g\":null,\"h\":\"x\",\"i\":0.0e-0,\"j\":-0,"
        "\"k\" : 7 , \"l\":{\"m\":[1,{\"n\":2}],\"o\":3},\"x\":\"***\","
        "\"p\":\"\\n\"}"),
    { "fast scalars count", "x=redact", 0,
      "{\"a\":1,\"b\":\"s\",\"c\":{\"d\":true},\"e\":[null]}",
      "{\"a\":1,\"b\":\"s\",\"c\":{\"d\":true},\"e\":[null]}",
      0, 3, 0, NULL, 0, 0 },
    OK_("fast after drop", "x=drop", 0,
        "{\"x\":1,\"a\":2,\"b\":3}", "{\"a\":2,\"b\":3}"),
    ERR_("fast leading zero", "x=redact", 0, "{\"a\":01}", DG_MASK_E_SYNTAX),
    ERR_("fast bad frac", "x=redact", 0, "{\"a\":1.,\"b\":1}",
         DG_MASK_E_SYNTAX),
    ERR_("fast bad exp", "x=redact", 0, "{\"a\":1e+,\"b\":1}",
         DG_MASK_E_SYNTAX),
    ERR_("fast lone minus", "x=redact", 0, "{\"a\":-,\"b\":1}",
         DG_MASK_E_SYNTAX),
    ERR_("fast minus letter", "x=redact", 0, "{\"a\":-a}", DG_MASK_E_SYNTAX),
    ERR_("fast literal tail", "x=redact", 0, "{\"a\":truex}",
         DG_MASK_E_SYNTAX),
    ERR_("fast literal bad", "x=redact", 0, "{\"a\":nul}", DG_MASK_E_SYNTAX),
    ERR_("fast number tail", "x=redact", 0, "{\"a\":12a}", DG_MASK_E_SYNTAX),
    ERR_("fast trailing comma", "x=redact", 0, "{\"a\":1,}",
         DG_MASK_E_SYNTAX),
    ERR_("fast missing comma", "x=redact", 0, "{\"a\":1 \"b\":2}",
         DG_MASK_E_SYNTAX),
    ERR_("fast control", "x=redact", 0, "{\"a\":\"x\ty\"}",
         DG_MASK_E_SYNTAX),
    ERR_("fast truncated", "x=redact", 0, "{\"a\":12", DG_MASK_E_TRUNCATED),

    /* methods on UTF-8 and escaped values */
    OK_("keep utf8 suffix", "k=keep(1,2)", 0, "{\"k\":\"张三丰李四\"}",
        "{\"k\":\"张**李四\"}"),
    OK_("id_card utf8", "id=id_card", 0,
        "{\"id\":\"４５０１０２１９９００３０７１２３４\"}",
        "{\"id\":\"４５０１０２********１２３４\"}"),
    OK_("phone mixed", "p=phone", 0, "{\"p\":\"电话13812345678\"}",
        "{\"p\":\"电话1******5678\"}"),
    OK_("email utf8", "e=email", 0, "{\"e\":\"张三@例子.中国\"}",
        "{\"e\":\"张***@例子.中国\"}"),
    OK_("email utf8 one", "e=email", 0, "{\"e\":\"张@例子.中国\"}",
        "{\"e\":\"***@例子.中国\"}"),
    OK_("email at first", "e=email", 0, "{\"e\":\"@x.cn\"}",
        "{\"e\":\"***@x.cn\"}"),
    OK_("email two at", "e=email", 0, "{\"e\":\"a@b@c.cn\"}",
        "{\"e\":\"a***@c.cn\"}"),
    OK_("email escaped", "e=email", 0, "{\"e\":\"ab\\\"c@x.cn\"}",
        "{\"e\":\"a***@x.cn\"}"),
    OK_("name long", "n=name", 0,
        "{\"n\":\"abcdefghijklmnopqrstuvwxyz0123456789\"}",
        "{\"n\":\"a***********************************\"}"),
    ERR_("bad utf8 phone", "p=phone", 0, "{\"p\":\"1381234\xe4\xb8\"}",
         DG_MASK_E_UTF8),
    ERR_("bad utf8 bank", "c=bank_card", 0, "{\"c\":\"62220212\xed\xa0\x80\"}",
         DG_MASK_E_UTF8),

    /* methods, SPEC.md examples */
    OK_("id_card", "idCard=id_card", 0,
        "{\"idCard\":\"450102199003071234\"}",
        "{\"idCard\":\"450102********1234\"}"),
    OK_("phone", "phone=phone", 0, "{\"phone\":\"13812345678\"}",
        "{\"phone\":\"138****5678\"}"),
    OK_("name", "name=name", 0, "{\"name\":\"张三丰\"}",
        "{\"name\":\"张**\"}"),
    OK_("name 1 char", "name=name", 0, "{\"name\":\"张\"}",
        "{\"name\":\"*\"}"),
    OK_("name empty", "name=name", 0, "{\"name\":\"\"}", "{\"name\":\"\"}"),
    OK_("bank_card", "card=bank_card", 0, "{\"card\":\"6222021234567890123\"}",
        "{\"card\":\"************0123\"}"),
    OK_("bank_card 16", "card=bank_card", 0, "{\"card\":\"4111111111111111\"}",
        "{\"card\":\"************1111\"}"),
    OK_("bank_card 5", "card=bank_card", 0, "{\"card\":\"12345\"}",
        "{\"card\":\"************2345\"}"),
    OK_("bank_card 4", "card=bank_card", 0, "{\"card\":\"1234\"}",
        "{\"card\":\"****\"}"),
    OK_("bank_card empty", "card=bank_card", 0, "{\"card\":\"\"}",
        "{\"card\":\"\"}"),
    OK_("bank_card number", "card=bank_card", 0,
        "{\"card\":6222021234567890123}", "{\"card\":\"************0123\"}"),
    OK_("bank_card escaped utf8", "card=bank_card", 0,
        "{\"card\":\"\\u0036222\\\"尾号一二三四\"}",
        "{\"card\":\"************一二三四\"}"),
    OK_("bank_card escape kept", "card=bank_card", 0,
        "{\"card\":\"62220212345\\\"\\n78\"}",
        "{\"card\":\"************\\\"\\n78\"}"),
    OK_("email", "email=email", 0, "{\"email\":\"zhang.san@gx.gov.cn\"}",
        "{\"email\":\"z***@gx.gov.cn\"}"),
    OK_("email short local", "email=email", 0, "{\"email\":\"z@gx.cn\"}",
        "{\"email\":\"***@gx.cn\"}"),
    OK_("email no at", "email=email", 0, "{\"email\":\"zhang\"}",
        "{\"email\":\"***\"}"),
    OK_("address", "addr=address", 0,
        "{\"addr\":\"广西南宁市青秀区民族大道100号\"}",
        "{\"addr\":\"广西南宁市青****\"}"),
    OK_("address(8)", "addr=address(8)", 0,
        "{\"addr\":\"广西南宁市青秀区民族大道100号\"}",
        "{\"addr\":\"广西南宁市青秀区****\"}"),
    OK_("address short", "addr=address", 0, "{\"addr\":\"南宁市\"}",
        "{\"addr\":\"***\"}"),
    OK_("keep(3,4)", "k=keep(3,4)", 0, "{\"k\":\"abcdefghij\"}",
        "{\"k\":\"abc***ghij\"}"),
    OK_("keep short", "k=keep(3,4)", 0, "{\"k\":\"abcdefg\"}",
        "{\"k\":\"*******\"}"),
    OK_("landline", "tel=landline", 0, "{\"tel\":\"0771-5551234\"}",
        "{\"tel\":\"0771-*****34\"}"),
    OK_("landline no dash", "tel=landline", 0, "{\"tel\":\"07715551234\"}",
        "{\"tel\":\"077******34\"}"),
    OK_("plate", "plate=plate", 0, "{\"plate\":\"桂A12345\"}",
        "{\"plate\":\"桂A1***5\"}"),
    OK_("ipv4", "ip=ipv4", 0, "{\"ip\":\"10.2.3.4\"}",
        "{\"ip\":\"10.*.*.*\"}"),
    OK_("ipv4 not ip", "ip=ipv4", 0, "{\"ip\":\"localhost\"}",
        "{\"ip\":\"***\"}"),
    OK_("date_year", "birth=date_year", 0, "{\"birth\":\"1990-03-07\"}",
        "{\"birth\":\"1990\"}"),
    OK_("date_year number", "birth=date_year", 0, "{\"birth\":19900307}",
        "{\"birth\":\"1990\"}"),
    OK_("redact", "x=redact", 0, "{\"x\":\"secret\"}", "{\"x\":\"***\"}"),
    OK_("null", "x=null", 0, "{\"x\":\"secret\",\"y\":1}",
        "{\"x\":null,\"y\":1}"),
    OK_("clear", "x=clear", 0, "{\"x\":\"secret\"}", "{\"x\":\"secret\"}"),
    OK_("phone too short", "phone=phone", 0, "{\"phone\":\"12345\"}",
        "{\"phone\":\"*****\"}"),
    OK_("id too short", "id=id_card", 0, "{\"id\":\"4501021234\"}",
        "{\"id\":\"**********\"}"),

    /* types under classified keys */
    OK_("phone number", "phone=phone", 0, "{\"phone\":13812345678}",
        "{\"phone\":\"138****5678\"}"),
    OK_("phone number neg", "phone=phone", 0, "{\"phone\":-1.5e3 }",
        "{\"phone\":\"******\" }"),
    OK_("phone bool", "phone=phone", 0, "{\"phone\":true,\"b\":false}",
        "{\"phone\":\"***\",\"b\":false}"),
    OK_("phone null", "phone=phone", 0, "{\"phone\":null}",
        "{\"phone\":null}"),
    OK_("null method bool", "x=null", 0, "{\"x\":true}", "{\"x\":null}"),
    OK_("phone array", "phone=phone", 0,
        "{\"phone\":[\"13812345678\",13912345678,null,false,"
        "{\"x\":\"13700001111\"},[]]}",
        "{\"phone\":[\"138****5678\",\"139****5678\",null,\"***\","
        "{\"x\":\"137****1111\"},[]]}"),
    OK_("object under key", "addr=redact", 0,
        "{\"addr\":{\"city\":\"南宁\",\"zip\":530000,\"geo\":[1.5,2]},"
        "\"ok\":1}",
        "{\"addr\":{\"city\":\"***\",\"zip\":\"***\",\"geo\":[\"***\","
        "\"***\"]},\"ok\":1}"),
    OK_("escaped masked value", "k=keep(2,1)", 0,
        "{\"k\":\"a\\\"b\\\\c\\nd\"}", "{\"k\":\"a\\\"****d\"}"),
    OK_("control kept", "k=keep(1,0)", 0, "{\"k\":\"\\u0001abc\"}",
        "{\"k\":\"\\u0001***\"}"),
    OK_("surrogate pair", "name=name", 0,
        "{\"name\":\"\\ud83d\\ude00ab\"}", "{\"name\":\"\xf0\x9f\x98\x80**\"}"),
    OK_("escaped value", "phone=phone", 0,
        "{\"phone\":\"\\u0031\\u00338123456\\u00378\"}",
        "{\"phone\":\"138****5678\"}"),

    /* key matching */
    OK_("escaped key", "idCard=id_card", 0,
        "{\"\\u0069dCard\":\"450102199003071234\"}",
        "{\"\\u0069dCard\":\"450102********1234\"}"),
    OK_("escaped quote key", "a\"b=redact", 0,
        "{\"a\\\"b\":\"x\",\"ab\":\"y\"}", "{\"a\\\"b\":\"***\",\"ab\":\"y\"}"),
    OK_("utf8 key", "姓名=name", 0, "{\"姓名\":\"张三\",\"\\u59d3\\u540d\":\"李四\"}",
        "{\"姓名\":\"张*\",\"\\u59d3\\u540d\":\"李*\"}"),
    OK_("duplicate keys", "phone=phone", 0,
        "{\"phone\":\"13812345678\",\"phone\":\"13912345678\"}",
        "{\"phone\":\"138****5678\",\"phone\":\"139****5678\"}"),
    OK_("key anywhere deep", "phone=phone", 0,
        "[{\"a\":{\"b\":[{\"phone\":\"13812345678\"}]}}]",
        "[{\"a\":{\"b\":[{\"phone\":\"138****5678\"}]}}]"),
    OK_("key not value", "phone=phone", 0, "{\"x\":\"phone\",\"phones\":1}",
        "{\"x\":\"phone\",\"phones\":1}"),
    OK_("path", "data[].idCard=id_card", 0,
        "{\"idCard\":\"450102199003071234\",\"data\":[{\"idCard\":"
        "\"450102199003071234\"},{\"x\":{\"idCard\":\"1\"}}]}",
        "{\"idCard\":\"450102199003071234\",\"data\":[{\"idCard\":"
        "\"450102********1234\"},{\"x\":{\"idCard\":\"1\"}}]}"),
    OK_("path $.", "$.a.b.c=redact", 0,
        "{\"a\":{\"b\":{\"c\":1,\"d\":2},\"c\":3},\"c\":4}",
        "{\"a\":{\"b\":{\"c\":\"***\",\"d\":2},\"c\":3},\"c\":4}"),
    OK_("path items", "items[].owner.phone=phone", 0,
        "{\"items\":[{\"owner\":{\"phone\":\"13812345678\"},"
        "\"phone\":\"13812345678\"}]}",
        "{\"items\":[{\"owner\":{\"phone\":\"138****5678\"},"
        "\"phone\":\"13812345678\"}]}"),
    OK_("path root array", "[].name=name", 0,
        "[{\"name\":\"张三\"},{\"n\":{\"name\":\"李四\"}}]",
        "[{\"name\":\"张*\"},{\"n\":{\"name\":\"李四\"}}]"),
    OK_("path not array", "data[].idCard=redact", 0,
        "{\"data\":{\"idCard\":\"x\"}}", "{\"data\":{\"idCard\":\"x\"}}"),
    OK_("path nested arrays", "m[][].v=redact", 0,
        "{\"m\":[[{\"v\":1}],[{\"v\":2,\"w\":3}]]}",
        "{\"m\":[[{\"v\":\"***\"}],[{\"v\":\"***\",\"w\":3}]]}"),
    OK_("path beats key", "data[].x=name;x=redact", 0,
        "{\"data\":[{\"x\":\"abc\"}],\"x\":\"abc\"}",
        "{\"data\":[{\"x\":\"a**\"}],\"x\":\"***\"}"),

    /* drop */
    OK_("drop first", "a=drop", 0, "{\"a\":1,\"b\":2,\"c\":3}",
        "{\"b\":2,\"c\":3}"),
    OK_("drop middle", "b=drop", 0, "{\"a\":1,\"b\":2,\"c\":3}",
        "{\"a\":1,\"c\":3}"),
    OK_("drop last", "c=drop", 0, "{\"a\":1,\"b\":2,\"c\":3}",
        "{\"a\":1,\"b\":2}"),
    OK_("drop all", "a=drop;b=drop;c=drop", 0, "{\"a\":1,\"b\":2,\"c\":3}",
        "{}"),
    OK_("drop two first", "a=drop;b=drop", 0, "{\"a\":1,\"b\":2,\"c\":3}",
        "{\"c\":3}"),
    OK_("drop ws first", "a=drop", 0, "{ \"a\" : 1 , \"b\" : 2 }",
        "{  \"b\" : 2 }"),
    OK_("drop pretty first", "a=drop", 0,
        "{\n  \"a\": 1,\n  \"owner\": \"x\",\n  \"b\": 2\n}",
        "{\n  \"owner\": \"x\",\n  \"b\": 2\n}"),
    OK_("drop pretty two first", "a=drop;b=drop", 0,
        "{\n  \"a\": 1,\n  \"b\": [1],\n  \"owner\": \"x\"\n}",
        "{\n  \"owner\": \"x\"\n}"),
    OK_("drop pretty middle", "b=drop", 0,
        "{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": 3\n}",
        "{\n  \"a\": 1,\n  \"c\": 3\n}"),
    OK_("drop pretty last", "c=drop", 0,
        "{\r\n\t\"a\": 1,\r\n\t\"c\": 3\r\n}",
        "{\r\n\t\"a\": 1\r\n}"),
    OK_("drop pretty escaped key", "a=drop", 0,
        "{\n  \"a\": 1,\n  \"\\u0062\": 2\n}",
        "{\n  \"\\u0062\": 2\n}"),
    OK_("drop ws last", "c=drop", 0, "{ \"a\" : 1 , \"c\" : 3 }",
        "{ \"a\" : 1  }"),
    OK_("drop nested", "b=drop", 0,
        "{\"x\":{\"a\":1,\"b\":{\"c\":[1,2]}},\"y\":2}",
        "{\"x\":{\"a\":1},\"y\":2}"),
    OK_("drop container", "x=drop", 0,
        "{\"x\":{\"a\":1,\"b\":{\"c\":[1,\"]}\"]}},\"y\":2}",
        "{\"y\":2}"),
    OK_("drop array value", "a=drop", 0,
        "{\"a\":[1,{\"b\":2}],\"c\":3}", "{\"c\":3}"),
    OK_("drop strings", "a=drop", 0,
        "{\"a\":\"x\\\"y\",\"c\":\"a\",\"a\":true}", "{\"c\":\"a\"}"),
    OK_("drop in array objs", "a=drop", 0,
        "[{\"a\":1},{\"b\":1,\"a\":null},{\"a\":[],\"b\":2}]",
        "[{},{\"b\":1},{\"b\":2}]"),
    { "drop stats", "a=drop", 0, "{\"a\":1,\"b\":2,\"a\":3}",
      "{\"b\":2}", 0, 1, 2, NULL, 0, 0 },

    /* allow-list mode: an unlisted member goes whole, key and value,
     * unless a path goes through its key or the key is a container */
    { "unlisted drop", "name=name", UD,
      "{\"id\":1,\"name\":\"张三\",\"data\":{\"x\":1,\"name\":\"李四\"},"
      "\"list\":[1,2],\"o\":{}}",
      "{\"name\":\"张*\"}",
      0, 0, 4, NULL, 0, 0 },
    { "unlisted drop containers", "name=name;data=walk;list=walk;o=walk", UD,
      "{\"id\":1,\"name\":\"张三\",\"data\":{\"x\":1,\"name\":\"李四\"},"
      "\"list\":[1,2],\"o\":{}}",
      "{\"name\":\"张*\",\"data\":{\"name\":\"李*\"},\"list\":[],\"o\":{}}",
      0, 0, 4, NULL, 0, 0 },
    /* the acceptance payload: nothing outside a listed key survives,
     * array elements included */
    { "unlisted arrays", "name=name;phone=phone", UD,
      "{\"name\":\"张三丰\",\"newcol\":[\"450102199003071238\","
      "\"13812345678\"],\"newobj\":{\"k\":\"leak\"},\"mixed\":[{\"x\":"
      "\"leak4\"},\"leak5\",[\"leak6\"]]}",
      "{\"name\":\"张**\"}",
      0, 0, 3, NULL, 0, 0 },
    { "unlisted arrays containers", "name=name;phone=phone;newcol=walk;"
      "newobj=walk;mixed=walk", UD,
      "{\"name\":\"张三丰\",\"newcol\":[\"450102199003071238\","
      "\"13812345678\"],\"newobj\":{\"k\":\"leak\"},\"mixed\":[{\"x\":"
      "\"leak4\"},\"leak5\",[\"leak6\"]]}",
      "{\"name\":\"张**\",\"newcol\":[],\"newobj\":{},\"mixed\":[{},[]]}",
      0, 0, 6, NULL, 0, 0 },
    /* keys are data too: a map keyed by ID numbers and names */
    { "unlisted keys", "name=name", UD,
      "{\"owners\":{\"450103199003071242\":{},\"韦秀兰 13877112345\":{}},"
      "\"name\":\"韦秀兰\"}",
      "{\"name\":\"韦**\"}", 0, 0, 1, NULL, 0, 0 },
    { "unlisted keys in a container", "name=name;owners=walk", UD | DT,
      "{\"owners\":{\"450103199003071242\":{\"name\":\"韦秀兰\"},"
      "\"韦秀兰 13877112345\":[1],\"\\u0034501\":{}}}",
      "{\"owners\":{}}", 0, 0, 3, "0,0,0,0", 0, 0 },
    /* a key-anywhere field inside a wrapper: listed as a container */
    { "unlisted wrapper container", "id_card=id_card;name=name;data=walk",
      UD,
      "{\"code\":0,\"data\":[{\"id_card\":\"450103199003071242\","
      "\"name\":\"韦秀兰\",\"x\":1,\"o\":{\"name\":\"黄丽\"}}],"
      "\"total\":1}",
      "{\"data\":[{\"id_card\":\"450103********1242\",\"name\":\"韦**\"}]}",
      0, 0, 4, NULL, 0, 0 },
    OK_("unlisted wrapper not listed", "id_card=id_card;name=name", UD,
        "{\"code\":0,\"data\":[{\"id_card\":\"450103199003071242\"}],"
        "\"total\":1}", "{}"),
    OK_("unlisted path container", "name=name;result.list=walk", UD,
        "{\"result\":{\"list\":[{\"name\":\"张三\",\"age\":3}],\"page\":1,"
        "\"more\":[]},\"list\":[{\"name\":\"x\"}]}",
        "{\"result\":{\"list\":[{\"name\":\"张*\"}]}}"),
    OK_("unlisted container scalar", "name=name;data=walk", UD,
        "{\"data\":5,\"name\":\"张三\",\"data\":\"x\"}",
        "{\"name\":\"张*\"}"),
    OK_("unlisted escaped container", "data=walk;q=clear", UD,
        "{\"\\u0064ata\":[{\"q\":1,\"r\":2}],\"\\u0064at\":{}}",
        "{\"\\u0064ata\":[{\"q\":1}]}"),
    OK_("unlisted array of records", "id_card=id_card", UD,
        "[{\"id_card\":\"450103199003071242\",\"a\":{}},[{\"b\":[]}]]",
        "[{\"id_card\":\"450103********1242\"},[{}]]"),
    { "unlisted array scalars", "q=clear", UD,
      "[1,\"a,]\",\"b\\\"\\u005d\",true,false,null,-1.5e3,{},[[0],[]],{\"a\""
      ":[2]},3]",
      "[{},[[],[]],{}]", 0, 0, 10, NULL, 0, 0 },
    OK_("unlisted array first kept", "q=clear", UD, "[{},1,[],2]",
        "[{},[]]"),
    OK_("unlisted array ws", "q=clear", UD,
        "[ 1 , {} , 2 , [ 3 ] ]", "[  {}  , [  ] ]"),
    OK_("unlisted array pretty", "name=name", UD,
        "[\n  \"x\",\n  {\"name\": \"ab\", \"z\": 1},\n  7,\n  []\n]",
        "[\n  {\"name\": \"a*\"},\n  []\n]"),
    OK_("unlisted array all dropped", "q=clear;a=walk;b=walk", UD,
        "{\"a\":[1,2,3],\"b\":[ ]}", "{\"a\":[],\"b\":[ ]}"),
    OK_("unlisted arrays gone", "q=clear", UD,
        "{\"a\":[1,2,3],\"b\":[ ]}", "{}"),
    OK_("unlisted listed array", "tags=clear;phone=phone", UD,
        "{\"tags\":[\"a\",1,{\"z\":[2]}],\"phone\":[\"13812345678\","
        "13912345678,{\"k\":\"13712345678\"},[null]],\"x\":[\"y\"]}",
        "{\"tags\":[\"a\",1,{\"z\":[2]}],\"phone\":[\"138****5678\","
        "\"139****5678\",{\"k\":\"137****5678\"},[null]]}"),
    OK_("unlisted path", "data[].idCard=id_card", UD,
        "{\"data\":[{\"idCard\":\"450102199003071234\",\"x\":1,\"y\":{}},"
        "\"s\",5,{}],\"n\":[1],\"idCard\":\"1\"}",
        "{\"data\":[{\"idCard\":\"450102********1234\"},{}]}"),
    OK_("unlisted array detect", "q=clear", UD | DT,
        "[\"13812345678\",{\"note\":\"13812345678\",\"q\":[\"13812345678\"]}]",
        "[{\"q\":[\"13812345678\"]}]"),
    { "unlisted top string", "q=clear", UD, " \"abc\" ", " null ",
      0, 0, 1, NULL, 0, 0 },
    OK_("unlisted top number", "q=clear", UD, "42", "null"),
    OK_("unlisted top number ws", "q=clear", UD, "-4.5e3\n", "null\n"),
    OK_("unlisted top true", "q=clear", UD, "true", "null"),
    OK_("unlisted top null", "q=clear", UD, "null", "null"),
    OK_("unlisted top escaped", "q=clear", UD, "\"a\\\"\\u0041\"", "null"),
    ERR_("unlisted top bad", "q=clear", UD, "\"a\\x\"", DG_MASK_E_SYNTAX),
    ERR_("unlisted top trailing", "q=clear", UD, "1 2", DG_MASK_E_SYNTAX),
    ERR_("unlisted array bad", "q=clear", UD, "[1,,2]", DG_MASK_E_SYNTAX),
    ERR_("unlisted array trailing", "q=clear", UD, "[1,]",
         DG_MASK_E_SYNTAX),
    ERR_("unlisted array truncated", "q=clear", UD, "[1, ",
         DG_MASK_E_TRUNCATED),

    { "unlisted count", "name=name", 0,
      "{\"id\":1,\"name\":\"张三\",\"data\":{\"x\":1,\"name\":\"李四\"},"
      "\"list\":[1,2]}",
      "{\"id\":1,\"name\":\"张*\",\"data\":{\"x\":1,\"name\":\"李*\"},"
      "\"list\":[1,2]}",
      0, 2, 0, NULL, 0, 0 },
    /* keys under a masked key: scanned, whatever detect says */
    { "masked container keys", "id_card=id_card", 0,
      "{\"id_card\":{\"450103199003071242\":\"x\",\"a\":\"450103199003071242\","
      "\"13877112345\":{\"k\":1},\"\\u0031\\u00338 7711 2345\":[]}}",
      "{\"id_card\":{\"450103********1242\":\"*\",\"a\":\"450103********1242\","
      "\"138****2345\":{\"k\":\"*\"},\"138 **** 2345\":[]}}",
      0, -1, -1, "1,2,0,0", 0, 0 },
    { "unlisted clear container", "addr=clear;tel=phone", UD,
      "{\"addr\":{\"city\":\"x\",\"tel\":\"13812345678\"},\"z\":1}",
      "{\"addr\":{\"city\":\"x\",\"tel\":\"138****5678\"}}",
      0, 0, 1, NULL, 0, 0 },
    OK_("unlisted all dropped", "q=clear", UD, "{\"a\":1,\"b\":\"x\"}", "{}"),

    /* detect */
    { "detect hits", "", DT,
      "{\"note\":\"身份证450102199003071238，电话13812345678，卡"
      "6222021234567890128 代码91350100M000100Y43.\"}",
      "{\"note\":\"身份证450102********1238，电话138****5678，卡"
      "************0128 代码913501********0Y43.\"}",
      0, -1, -1, "1,1,1,1", 0, 0 },
    { "detect non-hits", "", DT,
      "{\"a\":\"450102199003071239 1381234567 6222021234567890123 "
      "91350100M000100Y44 12812345678 1381234567813812345678 "
      "45010219900307124X 138123456789 91350100m000100y43\"}",
      "{\"a\":\"450102199003071239 1381234567 6222021234567890123 "
      "91350100M000100Y44 12812345678 1381234567813812345678 "
      "45010219900307124X 138123456789 91350100m000100y43\"}",
      0, -1, -1, "0,0,0,0", 0, 0 },
    { "detect escapes", "", DT,
      "[\"\\u00313812345678\",\"tel:\\n13812345678\\t\","
      "\"11010519491231002x\"]",
      "[\"138****5678\",\"tel:\\n138****5678\\t\",\"110105********002x\"]",
      0, -1, -1, "1,2,0,0", 0, 0 },
    { "detect 86 and card16", "", DT,
      "{\"t\":\"+8613812345678/4111111111111111\"}",
      "{\"t\":\"+86138****5678/************1111\"}",
      0, -1, -1, "0,1,1,0", 0, 0 },
    { "detect skips listed", "memo=clear;phone=phone", DT,
      "{\"memo\":\"13812345678\",\"phone\":\"13812345678\","
      "\"x\":\"13812345678\",\"memo\":13812345678,"
      "\"memo\":{\"13812345678\":[13812345678]}}",
      "{\"memo\":\"13812345678\",\"phone\":\"138****5678\","
      "\"x\":\"138****5678\",\"memo\":13812345678,"
      "\"memo\":{\"13812345678\":[13812345678]}}",
      0, -1, -1, "0,1,0,0", 0, 0 },
    /* keys are scanned like values */
    { "detect keys", "", DT,
      "{\"13812345678\":\"13812345678\"}",
      "{\"138****5678\":\"138****5678\"}",
      0, -1, -1, "0,2,0,0", 0, 0 },
    { "detect keys of a map", "", DT,
      "{\"owners\":{\"450103199003071242\":{},\"韦秀兰 13877112345\":{}}}",
      "{\"owners\":{\"450103********1242\":{},\"韦秀兰 138****2345\":{}}}",
      0, -1, -1, "1,1,0,0", 0, 0 },
    { "detect keys escaped", "", DT,
      "{\"\\u0034\\u0035\\u0030103199003071242\":1,"
      "\"a\\u0031\\u00338\\u0020\\u0037711 2345\":2,\"\\u0034\\u0035\":3}",
      "{\"450103********1242\":1,\"a138\\u0020**** 2345\":2,"
      "\"\\u0034\\u0035\":3}",
      0, -1, -1, "1,1,0,0", 0, 0 },
    { "detect keys of records", "", DT,
      "[{\"13877112345\":1,\"a\":{\"+86 138-7711-2345\":[]}},"
      "{\"13877112345\":2},{\"１３８７７１１２３４５\":3}]",
      "[{\"138****2345\":1,\"a\":{\"+86 138-****-2345\":[]}},"
      "{\"138****2345\":2},{\"138****2345\":3}]",
      0, -1, -1, "0,4,0,0", 0, 0 },
    { "detect keys pretty", "", DT,
      "{\n  \"a\": 1,\n  \"13877112345\" : 2 ,\n  \"b\": {\"c\": 3}\n}",
      "{\n  \"a\": 1,\n  \"138****2345\" : 2 ,\n  \"b\": {\"c\": 3}\n}",
      0, -1, -1, "0,1,0,0", 0, 0 },
    { "detect keys allow-list", "name=name;a=walk", UD | DT,
      "{\"a\":{\"13877112345\":{\"name\":\"韦秀兰\"}},\"name\":\"x\"}",
      "{\"a\":{},\"name\":\"*\"}",
      0, -1, 1, "0,0,0,0", 0, 0 },

    /* numbers */
    { "detect numbers", "", DT,
      "{\"a\":13877112345,\"b\":450103199003071242,\"c\":-13877112345,"
      "\"d\":13877112345.0,\"e\":1387711234,\"f\":6222022103103456786,"
      "\"g\":8613877112345,\"h\":[13877112345,1],\"i\":1e11,"
      "\"j\":1715391000000000,\"k\":1715391000000,\"l\":13877112345e0,"
      "\"m\":138771123450,\"n\":13877112345.01,\"o\":450103199003071242.00}",
      "{\"a\":\"138****2345\",\"b\":\"450103********1242\",\"c\":-13877112345,"
      "\"d\":\"138****2345\",\"e\":1387711234,\"f\":\"************6786\","
      "\"g\":\"86138****2345\",\"h\":[\"138****2345\",1],\"i\":1e11,"
      "\"j\":1715391000000000,\"k\":1715391000000,\"l\":13877112345e0,"
      "\"m\":138771123450,\"n\":13877112345.01,"
      "\"o\":\"450103********1242\"}",
      0, -1, -1, "2,4,1,0", 0, 0 },
    { "detect number document", "", DT, "13877112345", "\"138****2345\"",
      0, -1, -1, "0,1,0,0", 0, 0 },
    { "detect number document ws", "", DT, " 450103199003071242\n",
      " \"450103********1242\"\n", 0, -1, -1, "1,0,0,0", 0, 0 },
    OK_("detect number long", "", DT, "[12345678901234567890123,1]",
        "[12345678901234567890123,1]"),

    /* separators, country codes, full-width digits */
    { "detect forms", "", DT,
      "{\"a\":\"+86 138 7711 2345\",\"b\":\"138-7711-2345\","
      "\"c\":\"+8613877112345\",\"d\":\"008613877112345\","
      "\"e\":\"0086 138 7711 2345\",\"f\":\"１３８７７１１２３４５\","
      "\"g\":\"１３８－７７１１－２３４５\",\"h\":\"138　7711　2345\","
      "\"i\":\"tel:138 7711 2345.\",\"j\":\"(+86)13877112345\","
      "\"k\":\"138-7711-2345-\",\"l\":\"138-7711-2345-6789\"}",
      "{\"a\":\"+86 138 **** 2345\",\"b\":\"138-****-2345\","
      "\"c\":\"+86138****2345\",\"d\":\"0086138****2345\","
      "\"e\":\"0086 138 **** 2345\",\"f\":\"138****2345\","
      "\"g\":\"138－****－2345\",\"h\":\"138　****　2345\","
      "\"i\":\"tel:138 **** 2345.\",\"j\":\"(+86)138****2345\","
      "\"k\":\"138-****-2345-\",\"l\":\"138-****-2345-6789\"}",
      0, -1, -1, "0,12,0,0", 0, 0 },
    { "detect id groups", "", DT,
      "[\"450103 19900307 1242\",\"450103-1990-0307-1242\","
      "\"4501 0319 9003 0712 42\",\"110105 19491231 002X\","
      "\"11010519491231002x\","
      "\"身份证：４５０１０３１９９００３０７１２４２。\"]",
      "[\"450103 ******** 1242\",\"450103-****-****-1242\","
      "\"4501 03** **** **12 42\",\"110105 ******** 002X\","
      "\"110105********002x\",\"身份证：450103********1242。\"]",
      0, -1, -1, "6,0,0,0", 0, 0 },
    { "detect card groups", "", DT,
      "[\"6222 0221 0310 3456 786\",\"4111 1111 1111 1111\","
      "\"4111-1111-1111-1111\","
      "\"卡号６２２２０２２１０３１０３４５６７８６\"]",
      "[\"************6786\",\"**** **** **** 1111\","
      "\"****-****-****-1111\",\"卡号************6786\"]",
      0, -1, -1, "0,0,4,0", 0, 0 },
    { "detect escaped forms", "", DT,
      "[\"\\uff11\\uff13\\uff18 7711\\u00202345\","
      "\"138\\u30007711\\uff0d2345\"]",
      "[\"138 ****\\u00202345\",\"138\\u3000****\\uff0d2345\"]",
      0, -1, -1, "0,2,0,0", 0, 0 },
    { "detect two in a chain", "", DT,
      "[\"138 7711 2345 139 7710 4001\",\"1 138 7711 2345 6\","
      "\"4111 1111 1111 1111 1111\"]",
      "[\"138 **** 2345 139 **** 4001\",\"1 138 **** 2345 6\","
      "\"**** **** **** 1111 1111\"]",
      0, -1, -1, "0,3,1,0", 0, 0 },
    /* what must stay: dates, times, amounts, order numbers, landlines,
     * timestamps, other groupings, numbers that fail a check */
    { "detect forms non-hits", "", DT,
      "{\"a\":\"2024-05-11 09:30:00\",\"b\":\"2024-05-11T09:30:00+08:00\","
      "\"c\":\"0771-5551231\",\"d\":\"1,283,456.78\","
      "\"e\":\"订单号 2024051109300012\",\"f\":\"202405110930001238\","
      "\"g\":\"ORD-2024-0511-0001\",\"h\":\"13 877 112 345\","
      "\"i\":\"1715391000000\",\"j\":\"1715391000000007\","
      "\"k\":\"138 7711 23456\",\"l\":\"138  7711 2345\","
      "\"m\":\"14012345678\",\"n\":\"450103199002301245\","
      "\"o\":\"450103189903071249\",\"p\":\"450103199013071246\","
      "\"q\":\"450103190002291242\",\"r\":\"100103199003071242\","
      "\"s\":\"2024051109300013\",\"t\":\"1234 5678 9012 3456\","
      "\"u\":\"138-7711-234\",\"v\":\"12345 6789 0123 4567\","
      "\"w\":\"2021-04-15 2021-04-16 2021-04-17\","
      "\"x\":\"8888888888888888883\"}",
      "{\"a\":\"2024-05-11 09:30:00\",\"b\":\"2024-05-11T09:30:00+08:00\","
      "\"c\":\"0771-5551231\",\"d\":\"1,283,456.78\","
      "\"e\":\"订单号 2024051109300012\",\"f\":\"202405110930001238\","
      "\"g\":\"ORD-2024-0511-0001\",\"h\":\"13 877 112 345\","
      "\"i\":\"1715391000000\",\"j\":\"1715391000000007\","
      "\"k\":\"138 7711 23456\",\"l\":\"138  7711 2345\","
      "\"m\":\"14012345678\",\"n\":\"450103199002301245\","
      "\"o\":\"450103189903071249\",\"p\":\"450103199013071246\","
      "\"q\":\"450103190002291242\",\"r\":\"100103199003071242\","
      "\"s\":\"2024051109300013\",\"t\":\"1234 5678 9012 3456\","
      "\"u\":\"138-7711-234\",\"v\":\"12345 6789 0123 4567\","
      "\"w\":\"2021-04-15 2021-04-16 2021-04-17\","
      "\"x\":\"8888888888888888883\"}",
      0, -1, -1, "0,0,0,0", 0, 0 },
    { "detect id province and date", "", DT,
      "[\"915601199003071242\",\"810000199003071245\",\"450103200002291249\","
      "\"710000199003071241\",\"2221000000000009\",\"2720000000000005\","
      "\"2721000000000004\"]",
      "[\"915601********1242\",\"810000********1245\",\"450103********1249\","
      "\"710000********1241\",\"************0009\",\"************0005\","
      "\"2721000000000004\"]",
      0, -1, -1, "4,0,2,0", 0, 0 },
    { "detect long string", "", DT,
      "\"..................................................................."
      "..........13812345678.................................................."
      "............................................................13912345678\"",
      "\"..................................................................."
      "..........138****5678.................................................."
      "............................................................139****5678\"",
      0, -1, -1, "0,2,0,0", 0, 0 },
    { "detect words", "", DT,
      "[\"call me at 13812345678 or 13912345678x, ok\"]",
      "[\"call me at 138****5678 or 139****5678x, ok\"]",
      0, -1, -1, "0,2,0,0", 0, 0 },
    { "detect adjacent letters", "", DT,
      "[\"tel13812345678\",\"13812345678tel\",\"a13812345678b\","
      "\"ABC13812345678DEF\",\"tel8613812345678ok\"]",
      "[\"tel138****5678\",\"138****5678tel\",\"a138****5678b\","
      "\"ABC138****5678DEF\",\"tel86138****5678ok\"]",
      0, -1, -1, "0,5,0,0", 0, 0 },
    { "detect chinese around", "", DT,
      "{\"n\":\"身份证号450102199003071238号，手机13812345678。"
      "卡号6222021234567890128元\"}",
      "{\"n\":\"身份证号450102********1238号，手机138****5678。"
      "卡号************0128元\"}",
      0, -1, -1, "1,1,1,0", 0, 0 },
    { "detect escaped chinese around", "", DT,
      "[\"\\u8eab450102199003071238\\u53f7\\u624b13812345678\\u3002\"]",
      "[\"\\u8eab450102********1238\\u53f7\\u624b138****5678\\u3002\"]",
      0, -1, -1, "1,1,0,0", 0, 0 },
    { "detect string start and end", "", DT,
      "[\"13812345678\",\"450102199003071238\",\"6222021234567890128\","
      "\"91350100M000100Y43\"]",
      "[\"138****5678\",\"450102********1238\",\"************0128\","
      "\"913501********0Y43\"]",
      0, -1, -1, "1,1,1,1", 0, 0 },
    { "detect id x", "", DT,
      "[\"id11010519491231002xyz\",\"号11010519491231002X号\","
      "\"45010219850101002X7\"]",
      "[\"id110105********002xyz\",\"号110105********002X号\","
      "\"450102********002X7\"]",
      0, -1, -1, "3,0,0,0", 0, 0 },
    { "detect uscc bounds", "", DT,
      "[\"no91350100M000100Y43\",\"USCC91350100M000100Y43\","
      "\"代码91450100MA5K123456号\"]",
      "[\"no913501********0Y43\",\"USCC91350100M000100Y43\","
      "\"代码914501********3456号\"]",
      0, -1, -1, "0,0,0,2", 0, 0 },
    { "detect invalid checks", "", DT,
      "[\"号450102199003071239号\",\"卡6222021234567890123\","
      "\"码91350100M000100Y44\",\"ID45010219900307124X\"]",
      "[\"号450102199003071239号\",\"卡6222021234567890123\","
      "\"码91350100M000100Y44\",\"ID45010219900307124X\"]",
      0, -1, -1, "0,0,0,0", 0, 0 },
    { "detect after long runs", "", DT,
      "[\"12345678901234567890123-13812345678 "
      "ABCDEFGHIJKLMNOPQRSTUVWXYZ-91350100M000100Y43 "
      "ABCDEFGHIJKLMNOPQRSTUVWXYZ13812345678\\n13912345678"
      "12345678901234567890123\\u002013712345678\"]",
      "[\"12345678901234567890123-138****5678 "
      "ABCDEFGHIJKLMNOPQRSTUVWXYZ-913501********0Y43 "
      "ABCDEFGHIJKLMNOPQRSTUVWXYZ138****5678\\n13912345678"
      "12345678901234567890123\\u0020137****5678\"]",
      0, -1, -1, "0,3,0,1", 0, 0 },
    { "detect two hits one letter apart", "", DT,
      "[\"13812345678a13912345678X13712345678\"]",
      "[\"138****5678a139****5678X137****5678\"]",
      0, -1, -1, "0,3,0,0", 0, 0 },
    { "detect 18 run with mobile", "", DT,
      "[\"A13812345678BCDEFG\",\"A13812345678BCDEFGH\"]",
      "[\"A138****5678BCDEFG\",\"A138****5678BCDEFGH\"]",
      0, -1, -1, "0,2,0,0", 0, 0 },
    { "detect escape mid run", "", DT, "[\"1381234\\u0035678\"]",
      "[\"138****5678\"]", 0, -1, -1, "0,1,0,0", 0, 0 },
    { "detect long run then escape", "", DT,
      "[\"aaaaaaaaaaaaaaaaaaaaaaaa\\u0031 13812345678\"]",
      "[\"aaaaaaaaaaaaaaaaaaaaaaaa\\u0031 138****5678\"]",
      0, -1, -1, "0,1,0,0", 0, 0 },
    { "detect escape boundaries", "", DT,
      "[\"13812345678\\u4e2d13912345678\\\"\"]",
      "[\"138****5678\\u4e2d139****5678\\\"\"]",
      0, -1, -1, "0,2,0,0", 0, 0 },
    OK_("detect off", "", 0, "{\"a\":\"13812345678\"}",
        "{\"a\":\"13812345678\"}"),

    /* limits and errors */
    { "depth ok", "x=redact", 0, "[[[[{\"a\":[[[1]]]}]]]]",
      "[[[[{\"a\":[[[1]]]}]]]]", 0, -1, -1, NULL, 0, 8 },
    { "depth exceeded", "x=redact", 0, "[[[[{\"a\":[[[[1]]]]}]]]]",
      NULL, DG_MASK_E_DEPTH, -1, -1, NULL, 0, 8 },
    { "masked too big", "x=redact", 0,
      "{\"x\":\"0123456789012345678901234567890123456789\"}",
      NULL, DG_MASK_E_TOOBIG, -1, -1, NULL, 32, 0 },
    { "masked fits", "x=redact", 0,
      "{\"x\":\"01234567890123456789012345678901\"}",
      "{\"x\":\"***\"}", 0, -1, -1, NULL, 32, 0 },
    { "masked number too big", "x=redact", 0,
      "{\"x\":123456789012345678901234567890123}",
      NULL, DG_MASK_E_TOOBIG, -1, -1, NULL, 32, 0 },
    { "unmasked big passes", "x=redact", 0,
      "{\"y\":\"0123456789012345678901234567890123456789012345678901234567"
      "89\",\"x\":\"a\"}",
      "{\"y\":\"0123456789012345678901234567890123456789012345678901234567"
      "89\",\"x\":\"***\"}", 0, -1, -1, NULL, 32, 0 },
    { "key too big", "x=redact", 0,
      "{\"0123456789012345678901234567890123456789\":1}",
      NULL, DG_MASK_E_TOOBIG, -1, -1, NULL, 32, 0 },
    { "key fits", "x=redact", 0,
      "{\"01234567890123456789012345678901\":1}",
      "{\"01234567890123456789012345678901\":1}", 0, -1, -1, NULL, 32, 0 },
    { "key too big in drop", "x=drop", 0,
      "{\"x\":{\"0123456789012345678901234567890123456789\":1},\"y\":1}",
      "{\"y\":1}", 0, -1, -1, NULL, 32, 0 },
    ERR_("bad utf8 masked", "name=name", 0, "{\"name\":\"\xff\xfe\"}",
         DG_MASK_E_UTF8),
    ERR_("overlong utf8 masked", "name=name", 0, "{\"name\":\"\xc0\xaf\"}",
         DG_MASK_E_UTF8),
    ERR_("lone surrogate masked", "name=name", 0,
         "{\"name\":\"\\ud800x\"}", DG_MASK_E_UTF8),
    ERR_("lone low surrogate", "name=name", 0, "{\"name\":\"\\udc00\"}",
         DG_MASK_E_UTF8),
    ERR_("truncated object", "x=redact", 0, "{\"a\":1", DG_MASK_E_TRUNCATED),
    ERR_("truncated string", "x=redact", 0, "{\"a\":\"xx",
         DG_MASK_E_TRUNCATED),
    ERR_("truncated key", "x=redact", 0, "{\"a", DG_MASK_E_TRUNCATED),
    ERR_("truncated masked", "x=redact", 0, "{\"x\":\"ab",
         DG_MASK_E_TRUNCATED),
    ERR_("truncated literal", "x=redact", 0, "[nul", DG_MASK_E_TRUNCATED),
    ERR_("top literal truncated", "x=redact", 0, "tru",
         DG_MASK_E_TRUNCATED),
    ERR_("empty", "x=redact", 0, "", DG_MASK_E_TRUNCATED),
    ERR_("ws only", "x=redact", 0, "  \n", DG_MASK_E_TRUNCATED),
    ERR_("top number minus", "x=redact", 0, "-", DG_MASK_E_TRUNCATED),
    ERR_("trailing garbage", "x=redact", 0, "{} x", DG_MASK_E_SYNTAX),
    ERR_("two values", "x=redact", 0, "{}{}", DG_MASK_E_SYNTAX),
    ERR_("trailing comma arr", "x=redact", 0, "[1,]", DG_MASK_E_SYNTAX),
    ERR_("trailing comma obj", "x=redact", 0, "{\"a\":1,}",
         DG_MASK_E_SYNTAX),
    ERR_("leading zero", "x=redact", 0, "[01]", DG_MASK_E_SYNTAX),
    ERR_("bad frac", "x=redact", 0, "[1.]", DG_MASK_E_SYNTAX),
    ERR_("bad exp", "x=redact", 0, "[1e]", DG_MASK_E_SYNTAX),
    ERR_("lone minus", "x=redact", 0, "[-]", DG_MASK_E_SYNTAX),
    ERR_("bad literal", "x=redact", 0, "[True]", DG_MASK_E_SYNTAX),
    ERR_("bad literal 2", "x=redact", 0, "[nulll]", DG_MASK_E_SYNTAX),
    ERR_("control in string", "x=redact", 0, "[\"a\x01\"]",
         DG_MASK_E_SYNTAX),
    ERR_("control in key", "x=redact", 0, "{\"a\nb\":1}", DG_MASK_E_SYNTAX),
    ERR_("bad escape", "x=redact", 0, "[\"\\q\"]", DG_MASK_E_SYNTAX),
    ERR_("bad hex", "x=redact", 0, "[\"\\u12g4\"]", DG_MASK_E_SYNTAX),
    ERR_("bad escape masked", "x=redact", 0, "{\"x\":\"\\x\"}",
         DG_MASK_E_SYNTAX),
    ERR_("bad escape key", "x=redact", 0, "{\"\\a\":1}", DG_MASK_E_SYNTAX),
    ERR_("mismatched", "x=redact", 0, "[1}", DG_MASK_E_SYNTAX),
    ERR_("mismatched 2", "x=redact", 0, "{\"a\":1]", DG_MASK_E_SYNTAX),
    ERR_("missing colon", "x=redact", 0, "{\"a\" 1}", DG_MASK_E_SYNTAX),
    ERR_("missing value", "x=redact", 0, "{\"a\":}", DG_MASK_E_SYNTAX),
    ERR_("key not string", "x=redact", 0, "{a:1}", DG_MASK_E_SYNTAX),
    ERR_("single quotes", "x=redact", 0, "['a']", DG_MASK_E_SYNTAX),
    ERR_("missing comma", "x=redact", 0, "[1 2]", DG_MASK_E_SYNTAX),
    ERR_("bad in dropped", "x=drop", 0, "{\"x\":[1,,2]}", DG_MASK_E_SYNTAX),
    ERR_("bad in masked", "x=redact", 0, "{\"x\":[1 2]}", DG_MASK_E_SYNTAX),
    ERR_("bad number masked", "x=redact", 0, "{\"x\":-a}", DG_MASK_E_SYNTAX),
    ERR_("bad detect escape", "", DT, "[\"1381\\z\"]", DG_MASK_E_SYNTAX),
    ERR_("bom", "x=redact", 0, "\xef\xbb\xbf{}", DG_MASK_E_SYNTAX),
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
        /* the selector may itself contain '=': use the last one */
        for (const char *x = eq; x && x < e; x = memchr(x + 1, '=', e - x - 1))
        {
            eq = x;
        }
        if (eq == NULL || k >= T_MAXF) {
            return -1;
        }
        n = eq - s;
        memcpy(buf[k], s, n);
        buf[k][n] = '\0';
        f[k].selector = buf[k];
        f[k].len = n;
        if (e - eq - 1 == 4 && memcmp(eq + 1, "walk", 4) == 0) {
            /* a container (dg_mask_rules_compile_ex) */
            a[k].method = T_WALK;

        } else if (dg_mask_spec_parse(eq + 1, e - eq - 1, &a[k]) != 0) {
            return -1;
        }
        k++;
        s = *e ? e + 1 : e;
    }

    return k;
}


static void
run_case(const tcase_t *tc)
{
    dg_mask_field_t   f[T_MAXF], w[T_MAXF];
    dg_mask_spec_t    a[T_MAXF];
    char              buf[T_MAXF][128];
    char              err[256];
    dg_mask_rules_t  *r;
    dg_mask_conf_t    conf;
    dg_mask_stats_t   st, st2;
    tm_buf_t          out, out2;
    void             *mem;
    const uint8_t    *doc;
    size_t            n, i, cut, nw;
    int               nf, k, rc, rc2, bad, badrc, det[4];
    long              want;

    nf = parse_sel(tc->sel, f, a, buf);
    if (!ok(nf >= 0, "%s: selectors parse", tc->name)) {
        return;
    }

    /* containers apart, the fields in their order */
    for (i = 0, nw = 0, k = 0; i < (size_t) nf; i++) {
        if (a[i].method == T_WALK) {
            w[nw++] = f[i];
        } else {
            f[k] = f[i];
            a[k++] = a[i];
        }
    }
    nf = k;

    r = dg_mask_rules_compile_ex(f, nf, w, nw, tc->flags, err, sizeof(err));
    if (!ok(r != NULL, "%s: rules compile %s", tc->name, err)) {
        return;
    }

    setup_conf(&conf, r, a, tc->max_value ? tc->max_value : 256,
               tc->max_depth ? tc->max_depth : 16);
    mem = tm_alloc(dg_mask_size(&conf));

    doc = (const uint8_t *) tc->in;
    n = strlen(tc->in);

    /* whole */
    memset(&out, 0, sizeof(out));
    rc = tm_feed(mem, &conf, doc, n, NULL, 0, &out, &st);

    if (tc->out) {
        is_int(rc, 0, "%s: rc whole", tc->name);
        is_str(out.p ? (char *) out.p : "", tc->out, "%s: output",
               tc->name);
        ok(rc != 0 || tm_json_valid(out.p ? out.p : (uint8_t *) "",
                                    out.len),
           "%s: output is valid JSON", tc->name);

        if (tc->unlisted >= 0) {
            is_int(st.unlisted, tc->unlisted, "%s: unlisted", tc->name);
        }
        if (tc->dropped >= 0) {
            is_int(st.dropped, tc->dropped, "%s: dropped", tc->name);
        }
        if (tc->det) {
            sscanf(tc->det, "%d,%d,%d,%d", &det[0], &det[1], &det[2],
                   &det[3]);
            for (i = 0; i < 4; i++) {
                want = det[i];
                is_int(st.detect[i], want, "%s: detect[%zu]", tc->name, i);
            }
        }
        is_int(st.bytes_in, n, "%s: bytes_in", tc->name);
        is_int(st.bytes_out, out.len, "%s: bytes_out", tc->name);

    } else {
        is_int(rc, tc->rc, "%s: error %s", tc->name, dg_mask_strerror(rc));
    }

    /* the scalar code only (conf.nosimd): the same output and counters */
    memset(&out2, 0, sizeof(out2));
    conf.nosimd = 1;
    rc2 = tm_feed(mem, &conf, doc, n, NULL, 0, &out2, &st2);
    conf.nosimd = 0;
    ok(rc2 == rc && out2.len == out.len
       && (out.len == 0 || memcmp(out2.p, out.p, out.len) == 0)
       && (rc != 0 || (st2.unlisted == st.unlisted
                       && st2.dropped == st.dropped
                       && memcmp(st2.detect, st.detect, sizeof(st.detect))
                          == 0
                       && st2.bytes_out == st.bytes_out)),
       "%s: the same with the scalar code", tc->name);

    free(out.p);
    free(out2.p);

    /* every two-way split and byte at a time; every third with the
     * scalar code */
    bad = 0;
    badrc = 0;
    for (cut = 0; cut <= n + 1; cut++) {
        size_t  cuts[4096];
        size_t  nc;

        memset(&out, 0, sizeof(out));
        conf.nosimd = (cut % 3 == 2);
        /* every other split into memory lent in pieces of 1 to 40
         * bytes (dg_mask_feed_into) */
        out.lend = (cut & 1) ? 40 : 0;
        out.seed = (uint32_t) cut;
        nc = 0;
        if (cut <= n) {
            cuts[nc++] = cut;
        } else {
            for (i = 1; i < n && nc < 4096; i++) {
                cuts[nc++] = i;
            }
        }

        rc = tm_feed(mem, &conf, doc, n, cuts, nc, &out, NULL);

        if (tc->out) {
            if (rc != 0 || out.len != strlen(tc->out)
                || memcmp(out.p ? out.p : (uint8_t *) "", tc->out,
                          out.len) != 0)
            {
                if (!bad) {
                    diag("%s: split at %zu: rc %d got '%s'", tc->name, cut,
                         rc, out.p ? (char *) out.p : "");
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

    conf.nosimd = 0;

    ok(bad == 0 && badrc == 0, "%s: same result at every split and "
       "byte by byte", tc->name);

    free(mem);
    dg_mask_rules_free(r);
}


static void
test_value(void)
{
    dg_mask_spec_t  s;
    uint8_t         out[512], md[64];
    unsigned int    mdlen;
    char            hex[65];
    int             n, i;

    is_int(dg_mask_spec_parse("keep(3,4)", 9, &s), 0, "parse keep(3,4)");
    ok(s.method == DG_MASK_KEEP && s.a == 3 && s.b == 4, "keep args");
    is_int(dg_mask_spec_parse("address(8)", 10, &s), 0, "parse address(8)");
    ok(s.method == DG_MASK_ADDRESS && s.a == 8, "address arg");
    is_int(dg_mask_spec_parse("address", 7, &s), 0, "parse address");
    is_int(dg_mask_spec_parse("keep", 4, &s), -1, "keep needs args");
    is_int(dg_mask_spec_parse("keep(3)", 7, &s), -1, "keep needs two");
    is_int(dg_mask_spec_parse("keep(3,256)", 11, &s), -1, "keep bound");
    is_int(dg_mask_spec_parse("phone(3)", 8, &s), -1, "phone no args");
    is_int(dg_mask_spec_parse("bogus", 5, &s), -1, "unknown method");
    is_int(dg_mask_spec_parse("keep(3,4)x", 10, &s), -1, "trailing junk");

    for (i = 0; i < DG_MASK_METHOD_MAX; i++) {
        const char  *nm = dg_mask_method_name(i);

        if (i == DG_MASK_KEEP) {
            continue;
        }
        ok(nm && dg_mask_spec_parse(nm, strlen(nm), &s) == 0
           && s.method == i, "name round trip %s", nm ? nm : "?");
    }
    ok(dg_mask_method_name(DG_MASK_METHOD_MAX) == NULL, "name out of range");

    /* dg_mask_spec_str() writes what dg_mask_spec_parse() reads back */
    {
        static const char  *specs[] = { "id_card", "phone", "name",
            "bank_card", "email", "address", "address(8)", "keep(0,0)",
            "keep(3,4)", "landline", "plate", "ipv4", "date_year", "hash",
            "redact", "null", "drop", "clear" };
        dg_mask_spec_t      t;
        char                sbuf[32];
        size_t              k;

        for (k = 0; k < sizeof(specs) / sizeof(specs[0]); k++) {
            ok(dg_mask_spec_parse(specs[k], strlen(specs[k]), &s) == 0
               && strcmp(dg_mask_spec_str(&s, sbuf, sizeof(sbuf)), specs[k])
                  == 0
               && dg_mask_spec_parse(sbuf, strlen(sbuf), &t) == 0
               && memcmp(&s, &t, sizeof(s)) == 0,
               "spec %s written back as %s", specs[k], sbuf);
        }

        s.method = DG_MASK_METHOD_MAX;
        is_str(dg_mask_spec_str(&s, sbuf, sizeof(sbuf)), "?",
               "spec of no method");
        s.method = DG_MASK_ADDRESS;
        s.a = 0;
        is_str(dg_mask_spec_str(&s, sbuf, sizeof(sbuf)), "address",
               "address(0) is address");
        is_int(dg_mask_spec_parse("address(0)", 10, &s), 0,
               "address(0) parses");
        is_int(dg_mask_spec_parse("address(3,4)", 12, &s), -1,
               "address takes one");
        is_int(dg_mask_spec_parse("keep(256,1)", 11, &s), -1,
               "keep(256,1): too many");
    }

    {
        char  list[DG_MASK_METHODS_LEN], tiny[8];

        is_str(dg_mask_methods_str(list, sizeof(list)),
               "clear, id_card, phone, name, bank_card, email, address(N), "
               "keep(A,B), landline, plate, ipv4, date_year, hash, redact, "
               "null, drop", "the methods listed from their table");
        is_str(dg_mask_methods_str(tiny, sizeof(tiny)), "clear, ",
               "the list cut to its buffer");
    }

    s.method = DG_MASK_HASH;
    s.a = s.b = 0;
    n = dg_mask_value(&s, (const uint8_t *) "13812345678", 11, hkey,
                      sizeof(hkey) - 1, out, sizeof(out));
    HMAC(EVP_sha256(), hkey, sizeof(hkey) - 1,
         (const uint8_t *) "13812345678", 11, md, &mdlen);
    hex[0] = '"';
    for (i = 0; i < 16; i++) {
        sprintf(hex + 1 + 2 * i, "%02x", md[i]);
    }
    strcat(hex, "\"");
    out[n > 0 ? n : 0] = '\0';
    is_str((char *) out, hex, "hash is HMAC-SHA-256 hex");

    n = dg_mask_value(&s, (const uint8_t *) "x", 1, NULL, 0, out,
                      sizeof(out));
    is_int(n, DG_MASK_E_CONF, "hash without key fails closed");

    s.method = DG_MASK_DROP;
    is_int(dg_mask_value(&s, (const uint8_t *) "x", 1, NULL, 0, out,
                         sizeof(out)), 0, "drop writes nothing");

    s.method = DG_MASK_CLEAR;
    n = dg_mask_value(&s, (const uint8_t *) "a\"b", 3, NULL, 0, out, 4);
    is_int(n, DG_MASK_E_TOOBIG, "small outcap");
}


static void
test_hash_stream(void)
{
    dg_mask_field_t   f[1] = { { "p", 1 } };
    dg_mask_spec_t    a[1] = { { DG_MASK_HASH, 0, 0, 0 } };
    dg_mask_rules_t  *r;
    dg_mask_conf_t    conf;
    tm_buf_t          out;
    void             *mem;
    const char       *doc = "[{\"p\":\"abc\"},{\"p\":\"abc\"},{\"p\":\"abd\"}]";
    char              h1[40], h2[40], h3[40];
    int               rc;

    r = dg_mask_rules_compile(f, 1, 0, NULL, 0);
    setup_conf(&conf, r, a, 256, 16);
    mem = tm_alloc(dg_mask_size(&conf));

    memset(&out, 0, sizeof(out));
    rc = tm_feed(mem, &conf, (const uint8_t *) doc, strlen(doc), NULL, 0,
                 &out, NULL);
    is_int(rc, 0, "hash stream");
    ok(out.p && sscanf((char *) out.p,
                       "[{\"p\":\"%32[0-9a-f]\"},{\"p\":\"%32[0-9a-f]\"},"
                       "{\"p\":\"%32[0-9a-f]\"}]", h1, h2, h3) == 3,
       "hash output shape: %s", out.p ? (char *) out.p : "");
    ok(strcmp(h1, h2) == 0 && strcmp(h1, h3) != 0, "hash joins equal values");
    free(out.p);

    conf.hash_key = NULL;
    ok(dg_mask_init(mem, &conf) == NULL, "init refuses hash without key");

    free(mem);
    dg_mask_rules_free(r);
}


static void
test_compile(void)
{
    static const char  *bad[] = { "", "a..b", "a.", ".a", "a[", "a[x]",
                                  "a[]", "a]", "$.", "data[]" };
    dg_mask_field_t     f;
    dg_mask_rules_t    *r;
    char                err[256];
    size_t              i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f.selector = bad[i];
        f.len = strlen(bad[i]);
        err[0] = '\0';
        r = dg_mask_rules_compile(&f, 1, 0, err, sizeof(err));
        ok(r == NULL && err[0] != '\0', "bad selector '%s': %s", bad[i],
           err);
        dg_mask_rules_free(r);
    }

    r = dg_mask_rules_compile(NULL, 0, 0, err, sizeof(err));
    ok(r != NULL && dg_mask_rules_nfields(r) == 0, "empty rule set");
    dg_mask_rules_free(r);
}


static void
test_state(void)
{
    dg_mask_field_t   f[2] = { { "a", 1 }, { "b", 1 } };
    dg_mask_spec_t    a[2] = { { DG_MASK_REDACT, 0, 0, 0 },
                               { DG_MASK_CLEAR, 0, 0, 0 } };
    dg_mask_rules_t  *r;
    dg_mask_conf_t    conf;
    dg_mask_t        *m;
    tm_buf_t          out;
    void             *mem;
    const dg_mask_stats_t *st;

    r = dg_mask_rules_compile(f, 2, 0, NULL, 0);
    setup_conf(&conf, r, a, 256, 16);
    mem = tm_alloc(dg_mask_size(&conf));

    memset(&out, 0, sizeof(out));
    m = dg_mask_init(mem, &conf);
    is_int(dg_mask_feed(m, (const uint8_t *) "[1,", 3, 0, tm_emit, &out), 0,
           "feed ok");
    is_int(dg_mask_feed(m, (const uint8_t *) "}", 1, 0, tm_emit, &out),
           DG_MASK_E_SYNTAX, "syntax error");
    is_int(dg_mask_feed(m, (const uint8_t *) "2]", 2, 1, tm_emit, &out),
           DG_MASK_E_STATE, "refused after error");
    free(out.p);

    memset(&out, 0, sizeof(out));
    m = dg_mask_init(mem, &conf);
    is_int(dg_mask_feed(m, (const uint8_t *) "{\"a\":1,\"b\":2,\"c\":3}", 19,
                        1, tm_emit, &out), 0, "whole doc");
    is_int(dg_mask_feed(m, (const uint8_t *) " ", 1, 1, tm_emit, &out),
           DG_MASK_E_STATE, "refused after last");
    st = dg_mask_stats(m);
    ok(st->field_hits[0] == 1 && st->field_hits[1] == 1
       && st->unlisted == 1, "field hits and unlisted");
    free(out.p);

    memset(&out, 0, sizeof(out));
    out.fail_after = 1;
    m = dg_mask_init(mem, &conf);
    is_int(dg_mask_feed(m, (const uint8_t *) "{\"a\":1}", 7, 1, tm_emit,
                        &out), DG_MASK_E_EMIT, "emit failure");
    free(out.p);

    /* memory lent: a failing lend fails the stream, a NULL one too */
    memset(&out, 0, sizeof(out));
    out.lend = 16;
    out.fail_after = 1;
    m = dg_mask_init(mem, &conf);
    is_int(dg_mask_feed_into(m, (const uint8_t *) "{\"a\":1}", 7, 1,
                             tm_lend, &out), DG_MASK_E_EMIT, "lend failure");
    is_int(dg_mask_feed_into(m, (const uint8_t *) " ", 1, 1, tm_lend, &out),
           DG_MASK_E_STATE, "refused after a lend failure");
    free(out.chunk);
    free(out.p);

    m = dg_mask_init(mem, &conf);
    is_int(dg_mask_feed_into(m, (const uint8_t *) "{}", 2, 1, NULL, NULL),
           DG_MASK_E_EMIT, "lend NULL refused");

    /* emit and lend in turns on one stream */
    memset(&out, 0, sizeof(out));
    out.lend = 3;
    m = dg_mask_init(mem, &conf);
    is_int(dg_mask_feed(m, (const uint8_t *) "{\"a\":\"xy", 8, 0, tm_emit,
                        &out), 0, "emit, then");
    is_int(dg_mask_feed_into(m, (const uint8_t *) "z\",\"b\":\"q", 9, 0,
                             tm_lend, &out), 0, "lend, then");
    free(out.chunk);
    out.chunk = NULL;
    out.coff = 0;
    out.ccap = 0;
    is_int(dg_mask_feed(m, (const uint8_t *) "\",\"c\":3}", 8, 1, tm_emit,
                        &out), 0, "emit again");
    is_str(out.p ? (char *) out.p : "", "{\"a\":\"***\",\"b\":\"q\",\"c\":3}",
           "emit and lend in turns: one output");
    is_int(dg_mask_stats(m)->bytes_out, out.len,
           "emit and lend in turns: bytes_out");
    is_int(out.bad, 0, "lend contract kept");
    free(out.p);

    free(mem);
    dg_mask_rules_free(r);
}


/* allow-list: the whitespace held after an array comma is bounded like a
 * member prefix (max_value + 4 KiB) */
static void
test_elem_hold_limit(void)
{
    dg_mask_field_t   f[1] = { { "q", 1 } };
    dg_mask_spec_t    a[1] = { { DG_MASK_CLEAR, 0, 0, 0 } };
    dg_mask_rules_t  *r;
    dg_mask_conf_t    conf;
    tm_buf_t          out;
    void             *mem;
    char             *doc;
    size_t            n, cuts[3];
    int               rc;

    r = dg_mask_rules_compile(f, 1, DG_MASK_UNLISTED_DROP, NULL, 0);
    setup_conf(&conf, r, a, 256, 16);
    mem = tm_alloc(dg_mask_size(&conf));
    doc = malloc(8192);

    /* within the limit: "[{},    {}]" keeps both, the spaces stay */
    n = sprintf(doc, "[{},");
    memset(doc + n, ' ', 4000);
    n += 4000;
    n += sprintf(doc + n, "{}]");
    cuts[0] = 2;
    cuts[1] = 100;
    cuts[2] = 3000;
    memset(&out, 0, sizeof(out));
    rc = tm_feed(mem, &conf, (uint8_t *) doc, n, cuts, 3, &out, NULL);
    ok(rc == 0 && out.len == n && memcmp(out.p, doc, n) == 0,
       "element hold within the limit passes");
    free(out.p);

    n = sprintf(doc, "[{},");
    memset(doc + n, ' ', 5000);
    n += 5000;
    n += sprintf(doc + n, "2]");
    memset(&out, 0, sizeof(out));
    rc = tm_feed(mem, &conf, (uint8_t *) doc, n, cuts, 3, &out, NULL);
    is_int(rc, DG_MASK_E_TOOBIG, "element hold over the limit fails");
    free(out.p);

    free(doc);
    free(mem);
    dg_mask_rules_free(r);
}


/* a large document, fed in random spans, masked and unmasked */
static void
test_large(void)
{
    dg_mask_field_t   f[3] = { { "data[].idCard", 13 }, { "phone", 5 },
                               { "secret", 6 } };
    dg_mask_spec_t    a[3] = { { DG_MASK_ID_CARD, 0, 0, 0 },
                               { DG_MASK_PHONE, 0, 0, 0 },
                               { DG_MASK_DROP, 0, 0, 0 } };
    dg_mask_rules_t  *r;
    dg_mask_conf_t    conf;
    tm_buf_t          o1, o2;
    void             *mem;
    char             *doc, *big;
    size_t            n, cap, i, nc, cuts[20000];
    int               rc1, rc2, k;

    cap = 4 << 20;
    doc = malloc(cap);
    big = malloc(300001);
    memset(big, 'x', 300000);
    big[300000] = '\0';

    n = 0;
    n += sprintf(doc + n, "{\"data\":[");
    for (k = 0; k < 2000; k++) {
        n += sprintf(doc + n, "%s{\"id\":%d,\"idCard\":\"4501021990030%05d\","
                     "\"phone\":\"138%08d\",\"secret\":{\"a\":[1,2]},"
                     "\"note\":\"%s\"}", k ? "," : "", k, k, k,
                     k == 1000 ? big : "n");
    }
    n += sprintf(doc + n, "]}");

    r = dg_mask_rules_compile(f, 3, 0, NULL, 0);
    setup_conf(&conf, r, a, 64, 16);
    mem = tm_alloc(dg_mask_size(&conf));

    memset(&o1, 0, sizeof(o1));
    memset(&o2, 0, sizeof(o2));
    rc1 = tm_feed(mem, &conf, (uint8_t *) doc, n, NULL, 0, &o1, NULL);

    srand(7);
    nc = 0;
    for (i = 0; i < n && nc < 20000; i += 1 + rand() % 700) {
        cuts[nc++] = i;
    }
    o2.lend = 20000;
    rc2 = tm_feed(mem, &conf, (uint8_t *) doc, n, cuts, nc, &o2, NULL);

    is_int(rc1, 0, "large doc whole");
    is_int(rc2, 0, "large doc in random spans, into memory lent");
    ok(o1.len == o2.len && memcmp(o1.p, o2.p, o1.len) == 0,
       "large doc: same output");
    ok(tm_json_valid(o1.p, o1.len), "large doc: valid JSON");
    ok(strstr((char *) o1.p, "\"idCard\":\"450102********0999\"") != NULL
       && strstr((char *) o1.p, "\"phone\":\"138****0999\"") != NULL
       && strstr((char *) o1.p, "secret") == NULL
       && strstr((char *) o1.p, big) != NULL,
       "large doc: masked, dropped, big value passed");

    free(o1.p);
    free(o2.p);
    free(mem);
    free(doc);
    free(big);
    dg_mask_rules_free(r);
}


/*
 * dg_mask_reinit(): one masker reused from document to document gives what
 * a fresh one gives (output, error, counters), whether the documents
 * repeat their key order or not, after an error, and when the rules
 * change, even to rules compiled again at the address of freed ones: the
 * key memo must never answer for other rules.
 */
static const char  *reinit_docs[] = {
    "{\"data\":[{\"id\":1,\"id_card\":\"110101199003077777\",\"name\":"
        "\"\xe5\xbc\xa0\xe4\xb8\x89\",\"phone\":\"13800138000\","
        "\"gender\":\"m\"},{\"id\":2,\"id_card\":\"110101199003071234\","
        "\"name\":\"\xe6\x9d\x8e\xe5\x9b\x9b\",\"phone\":\"13900139000\","
        "\"gender\":\"f\"}],\"total\":2}",
    "{\"data\":[{\"gender\":\"m\",\"phone\":\"13800138000\",\"name\":"
        "\"ab\",\"id\":3},{\"gender\":\"f\",\"name\":\"cd\",\"phone\":"
        "\"139\",\"id\":4,\"id_card\":null}]}",
    "[{\"name\":\"x\",\"zzz\":[1,2,{\"name\":\"y\"}]},{\"name\":\"z\","
        "\"zzz\":{\"phone\":\"1\"}}]",
    "{\"data\":[{\"id\":1,\"name\":\"a\\u0062\",\"phone\":\"1\"},"
        "{\"id\":2,\"na\\u006de\":\"cd\",\"phone\":\"2\"}]}",
    "{\"data\":[{\"id\":1,\"name\":\"trunc",
    "{\"data\":[{\"id\":1,\"id_card\":\"1\",\"name\":\"a\",\"phone\":"
        "\"2\",\"gender\":\"m\"},{\"id\":2,\"id_card\":\"3\",\"name\":"
        "\"b\",\"phone\":\"4\",\"gender\":\"f\"}] }",
};


static int
reinit_same(dg_mask_t *m, void *fresh, const dg_mask_conf_t *conf,
    const char *doc, size_t cut)
{
    tm_buf_t                a, b;
    dg_mask_t              *f;
    const dg_mask_stats_t  *sa, *sb;
    size_t                  n, i;
    int                     ra, rb, same;

    n = strlen(doc);
    if (cut > n) {
        cut = n;
    }

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));

    m = dg_mask_reinit(m, conf);
    f = dg_mask_init(fresh, conf);
    if (m == NULL || f == NULL) {
        return 0;
    }

    ra = dg_mask_feed(m, (const uint8_t *) doc, cut, 0, tm_emit, &a);
    if (ra == 0) {
        ra = dg_mask_feed(m, (const uint8_t *) doc + cut, n - cut, 1,
                          tm_emit, &a);
    }
    rb = dg_mask_feed(f, (const uint8_t *) doc, n, 1, tm_emit, &b);

    sa = dg_mask_stats(m);
    sb = dg_mask_stats(f);

    same = ra == rb
           && (ra != 0
               || (a.len == b.len && (a.len == 0
                                      || memcmp(a.p, b.p, a.len) == 0)))
           && sa->unlisted == sb->unlisted
           && sa->dropped == sb->dropped && sa->bytes_in == sb->bytes_in
           && (ra != 0 || sa->bytes_out == sb->bytes_out);

    for (i = 0; same && i < dg_mask_rules_nfields(conf->rules); i++) {
        same = sa->field_hits[i] == sb->field_hits[i];
    }

    free(a.p);
    free(b.p);

    return same;
}


static void
test_reinit(void)
{
    static const char  *sels[] = {
        "id_card=id_card;name=name;phone=phone",
        "gender=redact;id=null;zzz=redact",
        "name=redact;data[].phone=phone",
    };
    dg_mask_field_t   f[T_MAXF];
    dg_mask_spec_t    a[T_MAXF];
    char              buf[T_MAXF][128];
    dg_mask_rules_t  *r;
    dg_mask_conf_t    conf;
    dg_mask_t        *m;
    void             *mem, *fresh;
    size_t            i, d, bad, runs;
    int               nf;
    uint32_t          seed;

    mem = NULL;
    fresh = NULL;
    m = NULL;
    seed = 7;

    for (i = 0; i < 2 * sizeof(sels) / sizeof(sels[0]); i++) {
        nf = parse_sel(sels[i % 3], f, a, buf);
        r = dg_mask_rules_compile(f, nf, 0, NULL, 0);
        if (!ok(r != NULL, "reinit: rules %zu compile", i)) {
            return;
        }

        setup_conf(&conf, r, a, 1024, 16);

        if (mem == NULL) {
            mem = tm_alloc(dg_mask_size(&conf));
            fresh = tm_alloc(dg_mask_size(&conf));
            m = dg_mask_init(mem, &conf);
        }

        bad = 0;
        runs = 0;

        for (d = 0; d < 40; d++) {
            seed = seed * 1103515245 + 12345;
            runs++;
            if (!reinit_same(m, fresh, &conf,
                             reinit_docs[(d + i) % (sizeof(reinit_docs)
                                                   / sizeof(reinit_docs[0]))],
                             (seed >> 16) % 200))
            {
                bad++;
            }
        }

        ok(bad == 0, "reinit: rules %zu (%s): %zu documents on one masker "
           "as on fresh ones", i, sels[i % 3], runs);

        /* freed before the next rules are compiled: they may come back
         * at the same address, with another memo */
        dg_mask_rules_free(r);
    }

    free(mem);
    free(fresh);
}


/*
 * The untouched run before a masked value, of every length from 0 to 200
 * bytes, with bytes after it in the span (the member loop moves short
 * runs in whole 32-byte blocks): the document fed whole must give what
 * it gives fed one byte at a time (the state machine, run by run).
 */
static void
test_run_lengths(void)
{
    dg_mask_field_t   f[T_MAXF];
    dg_mask_spec_t    a[T_MAXF];
    char              buf[T_MAXF][128];
    char              doc[2048];
    dg_mask_rules_t  *r;
    dg_mask_conf_t    conf;
    dg_mask_t        *m;
    tm_buf_t          whole, bytes;
    void             *mem;
    size_t            len, n, i, bad;
    int               nf, rc;

    nf = parse_sel("id_card=id_card;name=name", f, a, buf);
    r = dg_mask_rules_compile(f, nf, 0, NULL, 0);
    if (!ok(r != NULL, "run lengths: rules compile")) {
        return;
    }

    setup_conf(&conf, r, a, 1024, 16);
    mem = tm_alloc(dg_mask_size(&conf));
    bad = 0;

    for (len = 0; len <= 200; len++) {
        /* records whose pad makes the run before id_card len bytes
         * longer, then a value masked right after (a run of 10) */
        n = (size_t) snprintf(doc, sizeof(doc), "{\"data\":[");
        for (i = 0; i < 3; i++) {
            n += (size_t) snprintf(doc + n, sizeof(doc) - n,
                                   "%s{\"pad\":\"%.*s\",\"id_card\":"
                                   "\"11010119900307%04zu\",\"name\":"
                                   "\"\xe5\xbc\xa0\xe4\xb8\x89\","
                                   "\"tail\":\"%s\"}",
                                   i ? "," : "", (int) len,
                                   "0123456789abcdefghijklmnopqrstuvwxyz"
                                   "0123456789abcdefghijklmnopqrstuvwxyz"
                                   "0123456789abcdefghijklmnopqrstuvwxyz"
                                   "0123456789abcdefghijklmnopqrstuvwxyz"
                                   "0123456789abcdefghijklmnopqrstuvwxyz"
                                   "0123456789abcdefghijklmnopqrstuvwxyz",
                                   len + i,
                                   "after the masked value, to be read "
                                   "past the run in whole blocks");
        }
        n += (size_t) snprintf(doc + n, sizeof(doc) - n, "]}");

        memset(&whole, 0, sizeof(whole));
        memset(&bytes, 0, sizeof(bytes));

        m = dg_mask_init(mem, &conf);
        rc = dg_mask_feed(m, (const uint8_t *) doc, n, 1, tm_emit, &whole);

        m = dg_mask_init(mem, &conf);
        for (i = 0; rc == 0 && i < n; i++) {
            rc = dg_mask_feed(m, (const uint8_t *) doc + i, 1, i == n - 1,
                              tm_emit, &bytes);
        }

        if (rc != 0 || whole.len != bytes.len
            || memcmp(whole.p, bytes.p, whole.len) != 0
            || memmem(whole.p, whole.len, "11010119900307", 14) != NULL)
        {
            bad++;
        }

        free(whole.p);
        free(bytes.p);
    }

    ok(bad == 0, "run lengths: runs of 0-200 bytes before a masked value "
       "whole as byte by byte (%zu differ)", bad);

    free(mem);
    dg_mask_rules_free(r);
}


int
main(void)
{
    size_t  i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(&cases[i]);
    }

    test_value();
    test_hash_stream();
    test_compile();
    test_state();
    test_large();
    test_elem_hold_limit();
    test_reinit();
    test_run_lengths();

    return done_testing();
}
