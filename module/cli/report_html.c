/*
 * datagate report --format html: one self-contained page (report.h).
 *
 * No script, no font, no image from anywhere: the style is inline, the
 * charts are inline SVG, and a Content-Security-Policy forbids the page
 * every request (default-src 'none'), so that it opens the same on a
 * network without internet and cannot call out even if a name in it
 * tried.  Every name is HTML-escaped (dg_report_put).  Labels are in
 * Chinese and English.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dg_version.h"
#include "report.h"


#define DG_HTML_CHART_W         960     /* the SVG charts' width */
#define DG_HTML_DAYS_H          260
#define DG_HTML_MARGIN_L        64
#define DG_HTML_MARGIN_R        16
#define DG_HTML_MARGIN_T        16
#define DG_HTML_MARGIN_B        44
#define DG_HTML_BAR_ROW         26      /* height of a horizontal bar */
#define DG_HTML_BAR_LABEL       300     /* width of its label */
#define DG_HTML_BAR_W           460
#define DG_HTML_BARS_MAX        20      /* bars; the rest as one */
#define DG_HTML_TICKS           4       /* lines across the day chart */
#define DG_HTML_DAY_LABELS      12      /* dates under it, at most */
#define DG_HTML_NUM             32

#define DG_HTML_ALLOWED         "#2e7d32"
#define DG_HTML_DENIED          "#c62828"
#define DG_HTML_MASKED          "#1565c0"


/* Chinese names of the reason codes, by dg_reason_e; the codes stay
 * beside them (docs/reference.md) */
static const char  *dg_html_reason_zh[DG_R_MAX] = {
    [DG_R_OK]                   = "成功",
    [DG_R_CLIENT_CERT_REQUIRED] = "未提供客户端证书",
    [DG_R_UNKNOWN_CONSUMER]     = "未知调用方",
    [DG_R_CERT_REVOKED]         = "证书已吊销",
    [DG_R_CONSUMER_SUSPENDED]   = "调用方已暂停",
    [DG_R_NETWORK_DENIED]       = "网络地址不允许",
    [DG_R_GEO_DENIED]           = "地域不允许",
    [DG_R_DATASET_NOT_SHARED]   = "数据不予共享",
    [DG_R_DATASET_FROZEN]       = "数据已冻结",
    [DG_R_PURPOSE_REQUIRED]     = "未声明用途",
    [DG_R_PURPOSE_UNKNOWN]      = "未知用途",
    [DG_R_PURPOSE_NOT_GRANTED]  = "用途未授权",
    [DG_R_GRANT_EXPIRED]        = "授权已过期",
    [DG_R_APPROVAL_REQUIRED]    = "缺少审批文号",
    [DG_R_METHOD_NOT_GRANTED]   = "请求方法未授权",
    [DG_R_LEVEL_EXCEEDED]       = "超出安全级别",
    [DG_R_RATE_LIMITED]         = "超出频率或配额",
    [DG_R_POLICY_UNAVAILABLE]   = "策略暂不可用",
    [DG_R_UPSTREAM_UNMASKABLE]  = "应答无法脱敏",
    [DG_R_INTERNAL]             = "内部错误",
    [DG_R_UPSTREAM_UNAVAILABLE] = "提供方不可用",
    [DG_R_REQUEST_REJECTED]     = "请求被拒绝",
    [DG_R_AUDIT_UNAVAILABLE]    = "审计记录无法写入",
    [DG_R_CLIENT_CLOSED]        = "调用方提前断开",
};

static const char  *dg_html_dim_zh[DG_RDIMS] = {
    "部门", "调用方", "数据集", "用途"
};


static const char  dg_html_style[] =
"body{font-family:'Noto Sans CJK SC','WenQuanYi Zen Hei','Microsoft YaHei',"
"'PingFang SC',sans-serif;margin:24px;color:#1a1a1a;background:#fff}"
"h1{font-size:22px;margin:0 0 4px}h1 span{font-weight:normal;color:#555;"
"font-size:16px;margin-left:8px}"
"h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ccc;"
"padding-bottom:4px}h2 span{font-weight:normal;color:#555;font-size:14px;"
"margin-left:6px}"
".meta{color:#444;font-size:13px;margin:2px 0}"
".cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:16px}"
".card{border:1px solid #ccc;border-radius:6px;padding:8px 14px;"
"min-width:120px}.card b{display:block;font-size:22px}"
".card i{font-style:normal;color:#555;font-size:12px}"
".card.bad b{color:" DG_HTML_DENIED "}"
"table{border-collapse:collapse;font-size:13px;margin:6px 0}"
"th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;"
"vertical-align:top;white-space:nowrap}th{background:#f2f2f2}"
"td.n{text-align:right;"
"font-variant-numeric:tabular-nums}"
"svg{max-width:100%;height:auto}svg text{font-size:12px;fill:#333}"
".note{font-size:12px;color:#444;max-width:960px}"
".warn{color:" DG_HTML_DENIED "}"
"@media print{body{margin:8mm}h2{break-after:avoid}}";


typedef struct {
    const char                 *label;
    size_t                      len;
    const char                 *extra;      /* e.g. the Chinese name */
    uint64_t                    count;
} dg_hbar_t;


static void dg_html_text(FILE *out, const char *s);
static void dg_html_name(FILE *out, const char *s, size_t len);
static char *dg_html_num(char *buf, uint64_t v);
static void dg_html_card(FILE *out, const char *zh, const char *en,
    uint64_t v, int bad);
static void dg_html_days(const dg_report_t *rp, FILE *out);
static void dg_html_bars(FILE *out, dg_hbar_t *bars, uint32_t n,
    const char *color);
static int dg_html_cell_chart(const dg_report_t *rp, FILE *out,
    uint32_t kind, const char *color);
static const char *dg_html_reason(const char *code, size_t len);
static int dg_html_groups(const dg_report_t *rp, FILE *out, uint32_t level,
    int ndims);
static int dg_html_cells(const dg_report_t *rp, FILE *out, uint32_t kind,
    const char *zh, const char *en);
static void dg_html_dims_head(const dg_report_t *rp, FILE *out, int ndims);
static void dg_html_dims_row(const dg_report_t *rp, FILE *out,
    const dg_rgroup_t *g, int ndims);
static uint64_t dg_html_step(uint64_t max);
static int64_t dg_html_daynum(const char *date);
static void dg_html_date(int64_t days, char *buf);


int
dg_report_html(const dg_report_t *rp, FILE *out)
{
    int                 i;
    char                now[64], num[DG_HTML_NUM], num2[DG_HTML_NUM];
    const dg_rgroup_t  *t;

    t = dg_report_total(rp);
    dg_report_now(now, sizeof(now));

    fputs("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n"
          "<meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\""
          "default-src 'none'; style-src 'unsafe-inline'\">\n"
          "<meta name=\"viewport\" content=\"width=device-width,"
          " initial-scale=1\">\n"
          "<title>数据共享调用报告 Data-sharing call report", out);

    if (t) {
        fprintf(out, " %.10s – %.10s", t->first, t->last);
    }

    fprintf(out, "</title>\n<style>%s</style>\n</head>\n<body>\n",
            dg_html_style);

    fputs("<h1>数据共享调用报告"
          "<span>Data-sharing call report</span></h1>\n", out);

    if (t) {
        fprintf(out, "<p class=\"meta\">调用时间 Calls: %.10s %.8s –"
                " %.10s %.8s</p>\n", t->first,
                t->first + DG_ASCAN_DATE_LEN + 1, t->last,
                t->last + DG_ASCAN_DATE_LEN + 1);
    }

    if (rp->from || rp->to) {
        fputs("<p class=\"meta\">统计区间 Dates asked: ", out);
        dg_html_text(out, rp->from ? rp->from : "…");
        fputs(" – ", out);
        dg_html_text(out, rp->to ? rp->to : "…");
        fputs(" (本地时间 local time of the records)</p>\n", out);
    }

    fputs("<p class=\"meta\">审计日志 Audit logs: ", out);
    for (i = 0; i < rp->nfiles; i++) {
        if (i) {
            fputs(", ", out);
        }
        dg_html_text(out, rp->files[i]);
    }
    fputs("</p>\n", out);

    if (rp->policy) {
        fputs("<p class=\"meta\">策略 Policy: ", out);
        dg_html_text(out, rp->policy_path);
        fprintf(out, " (版本 version %.16s)</p>\n", rp->policy->version_hex);
    }

    fprintf(out, "<p class=\"meta\">生成 Generated: %s · datagate "
            DG_VERSION "</p>\n", now);

    fputs("<div class=\"cards\">\n", out);
    dg_html_card(out, "调用", "calls", t ? t->calls : 0, 0);
    dg_html_card(out, "允许", "allowed", t ? t->allowed : 0, 0);
    dg_html_card(out, "拒绝", "denied", t ? t->denied : 0, 0);

    if (t && t->with_records) {
        dg_html_card(out, "返回记录", "records returned", t->records, 0);
    }

    dg_html_card(out, "返回字节", "bytes returned", t ? t->bytes : 0, 0);
    dg_html_card(out, "峰值/分钟", "peak calls per minute",
                 t ? t->peak : 0, 0);
    dg_html_card(out, "未写入记录", "records lost", rp->lost,
                 rp->lost > 0);
    dg_html_card(out, "无法读取行", "unreadable lines", rp->unreadable,
                 rp->unreadable > 0);
    fputs("</div>\n", out);

    if (t && t->peak) {
        fputs("<p class=\"meta\">峰值出现于 Busiest minute: ", out);
        dg_html_text(out, t->peak_at);
        fputs("</p>\n", out);
    }

    fputs("<h2>每日调用<span>Calls per day</span></h2>\n", out);
    dg_html_days(rp, out);

    fputs("<h2>拒绝原因<span>Denied calls by reason</span></h2>\n", out);
    if (dg_html_cell_chart(rp, out, DG_RCELL_DENIED, DG_HTML_DENIED) != 0) {
        return -1;
    }

    fputs("<h2>脱敏字段<span>Values masked, by field class</span></h2>\n",
          out);
    if (dg_html_cell_chart(rp, out, DG_RCELL_MASKED, DG_HTML_MASKED) != 0) {
        return -1;
    }

    if (rp->nby > 1) {
        fprintf(out, "<h2>按%s汇总<span>By %s</span></h2>\n",
                dg_html_dim_zh[rp->by[0]], dg_report_dim_name(rp->by[0]));
        if (dg_html_groups(rp, out, DG_RLEVEL_SUB, 1) != 0) {
            return -1;
        }
    }

    if (rp->nby > 0) {
        fputs("<h2>明细<span>By ", out);
        for (i = 0; i < rp->nby; i++) {
            fprintf(out, "%s%s", i ? ", " : "", dg_report_dim_name(rp->by[i]));
        }
        fputs("</span></h2>\n", out);

        if (dg_html_groups(rp, out, DG_RLEVEL_GROUP, rp->nby) != 0) {
            return -1;
        }
    }

    if (dg_html_cells(rp, out, DG_RCELL_DENIED, "拒绝明细",
                      "Denied calls by reason") != 0
        || dg_html_cells(rp, out, DG_RCELL_INCOMPLETE, "未完整应答",
                         "Allowed calls not answered whole") != 0
        || dg_html_cells(rp, out, DG_RCELL_MASKED, "脱敏明细",
                         "Values masked, by field class") != 0)
    {
        return -1;
    }

    fputs("<h2>说明<span>Notes</span></h2>\n<div class=\"note\">\n", out);
    fprintf(out, "<p>本报告统计审计日志中的 %s 条记录"
            "（共 %s 行）。Counted: %" PRIu64 " records of %" PRIu64 " lines.",
            dg_html_num(num, rp->counted), dg_html_num(num2, rp->lines),
            rp->counted, rp->lines);

    if (rp->out_of_range) {
        fprintf(out, " 区间外 Outside the dates: %" PRIu64 ".",
                rp->out_of_range);
    }

    fputs("</p>\n", out);

    if (rp->other) {
        fprintf(out, "<p>另有 %" PRIu64 " 条非调用记录。"
                "%" PRIu64 " records of other kinds than calls.</p>\n",
                rp->other, rp->other);
    }

    if (rp->unreadable) {
        fprintf(out, "<p class=\"warn\">%" PRIu64 " 行不是审计记录，"
                "未计入。%" PRIu64 " lines are not audit records and are not"
                " counted.</p>\n", rp->unreadable, rp->unreadable);
    }

    if (rp->lost) {
        fprintf(out, "<p class=\"warn\">网关有 %" PRIu64 " 条记录"
                "未能写入，其调用不在本报告中。"
                "The gateway could not write %" PRIu64 " records:"
                " their calls are not in this report.</p>\n",
                rp->lost, rp->lost);
    }

    if (rp->folded_names || rp->folded_groups || rp->folded_cells
        || rp->folded_days)
    {
        fputs("<p class=\"warn\">名称过多，部分计入“(other)”。"
              "More distinct names than a report keeps: some are counted"
              " under \"(other)\".</p>\n", out);
    }

    fputs("<p>“允许”指网关放行的调用；"
          "“拒绝”按原因代码统计（见 docs/reference.md）。"
          "返回记录与字节只计允许的调用。"
          "“峰值/分钟”为一分钟内最多的调用数。"
          "“(unknown)” 为网关不认识的用途。"
          "Allowed: calls the gateway let through; denied: by reason code"
          " (docs/reference.md). Records and bytes returned count allowed"
          " calls only. Peak: the most calls in one minute. \"(unknown)\":"
          " a purpose the gateway did not know.</p>\n"
          "<p>本报告按记录内容统计，不校验哈希链；请用 "
          "<code>datagate audit verify</code> 校验日志未被篡改。"
          "This report counts what the records say;"
          " <code>datagate audit verify</code> checks that they were not"
          " changed.</p>\n</div>\n"
          "</body>\n</html>\n", out);

    if (dg_report_oom) {
        errno = ENOMEM;
        return -1;
    }

    return 0;
}


static void
dg_html_text(FILE *out, const char *s)
{
    dg_report_put(out, s, strlen(s), DG_RPUT_HTML);
}


static void
dg_html_name(FILE *out, const char *s, size_t len)
{
    dg_report_put(out, s, len, DG_RPUT_HTML);
}


/* 1234567 -> "1,234,567" (buf: DG_HTML_NUM / 2 bytes at least) */
static char *
dg_html_num(char *buf, uint64_t v)
{
    char    tmp[DG_HTML_NUM];
    size_t  n, i, o;

    n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    o = 0;

    for (i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0) {
            buf[o++] = ',';
        }
        buf[o++] = tmp[i];
    }

    buf[o] = '\0';

    return buf;
}


static void
dg_html_card(FILE *out, const char *zh, const char *en, uint64_t v, int bad)
{
    char  num[DG_HTML_NUM];

    fprintf(out, "<div class=\"card%s\"><b>%s</b>%s<br><i>%s</i></div>\n",
            bad ? " bad" : "", dg_html_num(num, v), zh, en);
}


/* a round step for about DG_HTML_TICKS lines up to max */
static uint64_t
dg_html_step(uint64_t max)
{
    uint64_t  p, raw;

    raw = max / DG_HTML_TICKS;
    if (raw == 0) {
        return 1;
    }

    for (p = 1; p <= raw / 10; p *= 10) { /* void */ }

    if (raw <= p) {
        return p;
    }

    if (raw <= 2 * p) {
        return 2 * p;
    }

    if (raw <= 5 * p) {
        return 5 * p;
    }

    return 10 * p;
}


static int64_t
dg_html_daynum(const char *date)
{
    int64_t  y, m, d, era, yoe, doy, doe;

    y = atoi(date);
    m = atoi(date + 5);
    d = atoi(date + 8);

    y -= (m <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


static void
dg_html_date(int64_t z, char *buf)
{
    int64_t  era, doe, yoe, y, doy, mp, d, m;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = doy - (153 * mp + 2) / 5 + 1;
    m = mp + (mp < 10 ? 3 : -9);
    y += (m <= 2);

    snprintf(buf, DG_ASCAN_DATE_LEN + 1, "%04d-%02d-%02d", (int) y, (int) m,
             (int) d);
}


/* stacked bars, allowed under denied, one per day from the first to the
 * last (days without calls as empty bars) */
static void
dg_html_days(const dg_report_t *rp, FILE *out)
{
    int64_t   first, last, n, i, x0, label_every;
    uint32_t  k;
    uint64_t  max, step, v, a, d;
    double    pw, ph, bw, x, ha, hd;
    char      date[DG_ASCAN_DATE_LEN + 1], num[DG_HTML_NUM];

    if (rp->ndays == 0) {
        fputs("<p>无调用 No calls.</p>\n", out);
        return;
    }

    first = dg_html_daynum(rp->days[0].date);
    last = dg_html_daynum(rp->days[rp->ndays - 1].date);
    n = last - first + 1;

    if (n < 1 || n > DG_REPORT_DAYS_MAX) {
        /* dates too far apart: the days that have calls, side by side */
        n = rp->ndays;
        first = INT64_MIN;
    }

    max = 0;
    for (k = 0; k < rp->ndays; k++) {
        if (rp->days[k].calls > max) {
            max = rp->days[k].calls;
        }
    }

    step = dg_html_step(max);
    max = (max + step - 1) / step * step;

    pw = DG_HTML_CHART_W - DG_HTML_MARGIN_L - DG_HTML_MARGIN_R;
    ph = DG_HTML_DAYS_H - DG_HTML_MARGIN_T - DG_HTML_MARGIN_B;
    bw = pw / n;
    label_every = (n + DG_HTML_DAY_LABELS - 1) / DG_HTML_DAY_LABELS;

    fprintf(out, "<svg width=\"%d\""
            " height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\""
            " aria-label=\"calls per day\">\n", DG_HTML_CHART_W,
            DG_HTML_DAYS_H, DG_HTML_CHART_W, DG_HTML_DAYS_H);

    for (v = 0; v <= max; v += step) {
        double  y = DG_HTML_MARGIN_T + ph - ph * v / max;

        fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\""
                " stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\""
                " text-anchor=\"end\">%s</text>\n", DG_HTML_MARGIN_L, y,
                DG_HTML_CHART_W - DG_HTML_MARGIN_R, y, DG_HTML_MARGIN_L - 6,
                y + 4, dg_html_num(num, v));
    }

    k = 0;

    for (i = 0; i < n; i++) {
        if (first == INT64_MIN) {
            memcpy(date, rp->days[i].date, sizeof(date));
            a = rp->days[i].allowed;
            d = rp->days[i].denied;

        } else {
            dg_html_date(first + i, date);
            a = 0;
            d = 0;

            if (k < rp->ndays && memcmp(rp->days[k].date, date,
                                        DG_ASCAN_DATE_LEN) == 0)
            {
                a = rp->days[k].allowed;
                d = rp->days[k].denied;
                k++;
            }
        }

        x = DG_HTML_MARGIN_L + i * bw;
        ha = ph * a / max;
        hd = ph * d / max;

        fprintf(out, "<g><title>%s: %" PRIu64 " 允许 allowed, %" PRIu64
                " 拒绝 denied</title>", date, a, d);
        fprintf(out, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\""
                " height=\"%.2f\" fill=\"" DG_HTML_ALLOWED "\"/>",
                x + bw * 0.1, DG_HTML_MARGIN_T + ph - ha, bw * 0.8, ha);
        fprintf(out, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\""
                " height=\"%.2f\" fill=\"" DG_HTML_DENIED "\"/></g>\n",
                x + bw * 0.1, DG_HTML_MARGIN_T + ph - ha - hd, bw * 0.8, hd);

        if (i % label_every == 0) {
            x0 = (int64_t) (x + bw / 2);
            fprintf(out, "<text x=\"%" PRId64 "\" y=\"%d\""
                    " text-anchor=\"middle\">%s</text>\n", x0,
                    DG_HTML_DAYS_H - DG_HTML_MARGIN_B + 16,
                    i == 0 ? date : date + 5);     /* the year once */
        }
    }

    fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\""
            " stroke=\"#333\"/>\n", DG_HTML_MARGIN_L, DG_HTML_MARGIN_T + ph,
            DG_HTML_CHART_W - DG_HTML_MARGIN_R, DG_HTML_MARGIN_T + ph);

    /* legend */
    fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\""
            " fill=\"" DG_HTML_ALLOWED "\"/><text x=\"%d\" y=\"%d\">允许"
            " allowed</text><rect x=\"%d\" y=\"%d\" width=\"12\""
            " height=\"12\" fill=\"" DG_HTML_DENIED "\"/><text x=\"%d\""
            " y=\"%d\">拒绝 denied</text>\n", DG_HTML_MARGIN_L,
            DG_HTML_DAYS_H - 16, DG_HTML_MARGIN_L + 18, DG_HTML_DAYS_H - 6,
            DG_HTML_MARGIN_L + 120, DG_HTML_DAYS_H - 16,
            DG_HTML_MARGIN_L + 138, DG_HTML_DAYS_H - 6);

    fputs("</svg>\n", out);
}


/* horizontal bars, most first */
static void
dg_html_bars(FILE *out, dg_hbar_t *bars, uint32_t n, const char *color)
{
    int       h;
    uint32_t  i;
    uint64_t  max;
    double    w, y;
    char      num[DG_HTML_NUM];

    if (n == 0) {
        fputs("<p>无 None.</p>\n", out);
        return;
    }

    max = bars[0].count ? bars[0].count : 1;
    h = n * DG_HTML_BAR_ROW + 8;

    fprintf(out, "<svg width=\"%d\""
            " height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n",
            DG_HTML_BAR_LABEL + DG_HTML_BAR_W + 120, h,
            DG_HTML_BAR_LABEL + DG_HTML_BAR_W + 120, h);

    for (i = 0; i < n; i++) {
        y = 4 + i * DG_HTML_BAR_ROW;
        w = (double) DG_HTML_BAR_W * bars[i].count / max;

        fprintf(out, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">",
                DG_HTML_BAR_LABEL - 8, y + 16);

        if (bars[i].extra) {
            dg_html_text(out, bars[i].extra);
            putc(' ', out);
        }

        dg_html_name(out, bars[i].label, bars[i].len);
        fprintf(out, "</text><rect x=\"%d\" y=\"%.1f\" width=\"%.2f\""
                " height=\"%d\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\">"
                "%s</text>\n", DG_HTML_BAR_LABEL, y + 3, w,
                DG_HTML_BAR_ROW - 8, color, DG_HTML_BAR_LABEL + w + 6,
                y + 16, dg_html_num(num, bars[i].count));
    }

    fputs("</svg>\n", out);
}


static const char *
dg_html_reason(const char *code, size_t len)
{
    int          r;
    const char  *c;

    for (r = 0; r < DG_R_MAX; r++) {
        c = dg_reason_code(r);
        if (c && strlen(c) == len && memcmp(c, code, len) == 0) {
            return dg_html_reason_zh[r];
        }
    }

    return NULL;
}


/* the total's cells of a kind as a bar chart */
static int
dg_html_cell_chart(const dg_report_t *rp, FILE *out, uint32_t kind,
    const char *color)
{
    uint32_t            n, i, k;
    uint64_t            rest;
    dg_hbar_t          *bars;
    dg_rcell_t        **c;
    const dg_rgroup_t  *t;

    t = dg_report_total(rp);
    if (t == NULL) {
        fputs("<p>无 None.</p>\n", out);
        return 0;
    }

    c = dg_report_cells(rp, t, kind, &n);
    bars = malloc((DG_HTML_BARS_MAX + 1) * sizeof(dg_hbar_t));

    if (c == NULL || bars == NULL) {
        free(c);
        free(bars);
        errno = ENOMEM;
        return -1;
    }

    k = 0;
    rest = 0;

    for (i = 0; i < n; i++) {
        if (i >= DG_HTML_BARS_MAX) {
            rest += c[i]->count;
            continue;
        }

        bars[k].label = dg_report_name_str(rp, c[i]->name, &bars[k].len);
        if (c[i]->name == DG_RNAME_NULL) {
            bars[k].label = "(none)";
            bars[k].len = sizeof("(none)") - 1;
        }

        bars[k].extra = (kind == DG_RCELL_MASKED) ? NULL
                        : dg_html_reason(bars[k].label, bars[k].len);
        bars[k].count = c[i]->count;
        k++;
    }

    if (rest) {
        bars[k].label = "其他 others";
        bars[k].len = strlen(bars[k].label);
        bars[k].extra = NULL;
        bars[k].count = rest;
        k++;
    }

    dg_html_bars(out, bars, k, color);

    free(c);
    free(bars);

    return 0;
}


static void
dg_html_dims_head(const dg_report_t *rp, FILE *out, int ndims)
{
    int  i;

    for (i = 0; i < ndims; i++) {
        fprintf(out, "<th>%s<br>%s</th>", dg_html_dim_zh[rp->by[i]],
                dg_report_dim_name(rp->by[i]));
    }
}


static void
dg_html_dims_row(const dg_report_t *rp, FILE *out, const dg_rgroup_t *g,
    int ndims)
{
    int          i;
    size_t       len;
    const char  *s;

    for (i = 0; i < ndims; i++) {
        fputs("<td>", out);
        s = dg_report_key_str(rp, g, i, &len);
        dg_html_name(out, s, len);

        s = dg_report_title(rp, rp->by[i], g->key[i], &len);
        if (s) {
            fputs("<br><small>", out);
            dg_html_name(out, s, len);
            fputs("</small>", out);
        }

        fputs("</td>", out);
    }
}


static int
dg_html_groups(const dg_report_t *rp, FILE *out, uint32_t level, int ndims)
{
    uint32_t       n, k;
    char           num[DG_HTML_NUM];
    dg_rgroup_t  **v;

    v = dg_report_sorted(rp, level, &n);
    if (v == NULL) {
        errno = ENOMEM;
        return -1;
    }

    fputs("<table>\n<tr>", out);
    dg_html_dims_head(rp, out, ndims);
    fputs("<th>调用<br>calls</th><th>允许<br>allowed</th>"
          "<th>拒绝<br>denied</th><th>返回记录<br>records</th>"
          "<th>返回字节<br>bytes</th><th>峰值/分钟<br>peak/min</th>"
          "<th>首次调用<br>first call</th>"
          "<th>末次调用<br>last call</th>"
          "</tr>\n", out);

    for (k = 0; k < n; k++) {
        fputs("<tr>", out);
        dg_html_dims_row(rp, out, v[k], ndims);
        fprintf(out, "<td class=\"n\">%s</td>", dg_html_num(num, v[k]->calls));
        fprintf(out, "<td class=\"n\">%s</td>",
                dg_html_num(num, v[k]->allowed));
        fprintf(out, "<td class=\"n\">%s</td>",
                dg_html_num(num, v[k]->denied));

        if (v[k]->with_records) {
            fprintf(out, "<td class=\"n\">%s</td>",
                    dg_html_num(num, v[k]->records));

        } else {
            fputs("<td class=\"n\">–</td>", out);
        }

        fprintf(out, "<td class=\"n\">%s</td>", dg_html_num(num, v[k]->bytes));
        fprintf(out, "<td class=\"n\">%s</td><td>%.10s %.8s</td>"
                "<td>%.10s %.8s</td></tr>\n", dg_html_num(num, v[k]->peak),
                v[k]->first, v[k]->first + DG_ASCAN_DATE_LEN + 1,
                v[k]->last, v[k]->last + DG_ASCAN_DATE_LEN + 1);
    }

    fputs("</table>\n", out);
    free(v);

    return 0;
}


/* one row per (group, name) of a kind; nothing when there are none */
static int
dg_html_cells(const dg_report_t *rp, FILE *out, uint32_t kind,
    const char *zh, const char *en)
{
    int            head;
    size_t         len;
    uint32_t       n, k, nc, j, level;
    char           num[DG_HTML_NUM];
    const char    *s, *extra;
    dg_rcell_t   **c;
    dg_rgroup_t  **v;

    level = (rp->nby > 0) ? DG_RLEVEL_GROUP : DG_RLEVEL_TOTAL;

    v = dg_report_sorted(rp, level, &n);
    if (v == NULL) {
        errno = ENOMEM;
        return -1;
    }

    head = 0;

    for (k = 0; k < n; k++) {
        c = dg_report_cells(rp, v[k], kind, &nc);
        if (c == NULL) {
            free(v);
            errno = ENOMEM;
            return -1;
        }

        for (j = 0; j < nc; j++) {
            if (!head) {
                fprintf(out, "<h2>%s<span>%s</span></h2>\n<table>\n<tr>",
                        zh, en);
                dg_html_dims_head(rp, out, rp->nby);
                fprintf(out, "<th>%s</th><th>次数<br>count</th></tr>\n",
                        kind == DG_RCELL_MASKED ? "字段分类<br>field class"
                                                : "原因<br>reason");
                head = 1;
            }

            fputs("<tr>", out);
            dg_html_dims_row(rp, out, v[k], rp->nby);
            fputs("<td>", out);

            s = dg_report_name_str(rp, c[j]->name, &len);
            if (c[j]->name == DG_RNAME_NULL) {
                s = "(none)";
                len = sizeof("(none)") - 1;
            }

            dg_html_name(out, s, len);

            extra = (kind == DG_RCELL_MASKED) ? NULL
                    : dg_html_reason(s, len);
            if (extra) {
                fprintf(out, " <small>%s</small>", extra);
            }

            fprintf(out, "</td><td class=\"n\">%s</td></tr>\n",
                    dg_html_num(num, c[j]->count));
        }

        free(c);
    }

    if (head) {
        fputs("</table>\n", out);
    }

    free(v);

    return 0;
}
