/*
 * Minimal TAP producer for datagate's C unit tests (run by prove).
 */

#ifndef DG_TAP_H
#define DG_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

static int  tap_n;
static int  tap_failed;


static inline void
tap_vok(int cond, const char *fmt, va_list ap)
{
    tap_n++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    vprintf(fmt, ap);
    printf("\n");
    if (!cond) {
        tap_failed++;
    }
    fflush(stdout);
}


static inline int
ok(int cond, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    tap_vok(cond, fmt, ap);
    va_end(ap);
    return cond;
}


static inline int
is_str(const char *got, const char *want, const char *fmt, ...)
{
    int      cond;
    va_list  ap;

    cond = (got != NULL && want != NULL && strcmp(got, want) == 0)
           || (got == NULL && want == NULL);
    va_start(ap, fmt);
    tap_vok(cond, fmt, ap);
    va_end(ap);
    if (!cond) {
        printf("#   got:      '%s'\n#   expected: '%s'\n",
               got ? got : "(null)", want ? want : "(null)");
    }
    return cond;
}


static inline int
is_int(long long got, long long want, const char *fmt, ...)
{
    int      cond;
    va_list  ap;

    cond = (got == want);
    va_start(ap, fmt);
    tap_vok(cond, fmt, ap);
    va_end(ap);
    if (!cond) {
        printf("#   got:      %lld\n#   expected: %lld\n", got, want);
    }
    return cond;
}


static inline void
diag(const char *fmt, ...)
{
    va_list  ap;

    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}


static inline int
done_testing(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

/*
 * The top of the checkout, ending in '/' ("" when the test runs from it):
 * $DG_TOP, or the part of this header's path, as the compiler was given
 * it, before module/core/t/.  Fixtures are found relative to it.
 */
static inline const char *
tap_top(void)
{
    static char   top[1024];
    const char   *env, *f, *cut;

    if (top[0] != '\0') {
        return top;
    }

    env = getenv("DG_TOP");
    if (env != NULL) {
        snprintf(top, sizeof(top), "%s/", env);
        return top;
    }

    f = __FILE__;
    cut = strstr(f, "module/core/t/");
    if (cut != NULL) {
        snprintf(top, sizeof(top), "%.*s", (int) (cut - f), f);
    }

    return top;
}


#endif /* DG_TAP_H */
