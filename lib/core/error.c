/* Thread-local error record: set once at the innermost failure, read by callers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define ERROR_MAX 1024

static _Thread_local int last_errno;
static _Thread_local char last_msg[ERROR_MAX];

int
dimg_error(int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    last_errno = errnum > 0 ? errnum : EIO;
    return -last_errno;
}

int
dimg_error_errno(int errnum, const char *fmt, ...)
{
    char ctx[ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    const char *es = strerror(errnum);
    size_t clen = strnlen(ctx, sizeof ctx - 1);
    return dimg_error(errnum, "%.*s: %s", (int)clen, ctx, es);
}

int
dimg_error_prefix(const char *fmt, ...)
{
    char prefix[ERROR_MAX], old[ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_msg, sizeof old);
    size_t plen = strnlen(prefix, sizeof last_msg - 1);
    memcpy(last_msg, prefix, plen);
    size_t olen = strnlen(old, sizeof last_msg - 1 - plen);
    memcpy(last_msg + plen, old, olen);
    last_msg[plen + olen] = '\0';
    if (!last_errno)
        last_errno = EIO;
    return -last_errno;
}

void
dimg_error_clear(void)
{
    last_errno = 0;
    last_msg[0] = '\0';
}

DIMG_EXPORT const char *
dimg_get_error(void)
{
    return last_msg;
}

DIMG_EXPORT int
dimg_get_errno(void)
{
    return last_errno;
}
