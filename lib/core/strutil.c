/* Small string helpers shared by the library and the CLI. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

char *
xstrdup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *
str_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static int
sb_reserve(struct strbuf *sb, size_t extra)
{
    if (sb->len + extra + 1 <= sb->cap)
        return 0;
    size_t cap = sb->cap ? sb->cap : 64;
    while (cap < sb->len + extra + 1)
        cap *= 2;
    char *s = realloc(sb->s, cap);
    if (!s)
        return -ENOMEM;
    sb->s = s;
    sb->cap = cap;
    return 0;
}

int
sb_append(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || sb_reserve(sb, (size_t)n) < 0)
        return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(sb->s + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
    return 0;
}

int
sb_putc(struct strbuf *sb, char c)
{
    if (sb_reserve(sb, 1) < 0)
        return -ENOMEM;
    sb->s[sb->len++] = c;
    sb->s[sb->len] = '\0';
    return 0;
}

void
sb_free(struct strbuf *sb)
{
    free(sb->s);
    sb->s = NULL;
    sb->len = sb->cap = 0;
}
