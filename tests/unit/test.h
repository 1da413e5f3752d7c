/* Minimal assertion helpers for unit tests: exit 1 on the first failure. */
#ifndef DIMG_TEST_H
#define DIMG_TEST_H
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);           \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                                     \
    do {                                                                                       \
        uint64_t a_ = (a), b_ = (b);                                                           \
        if (a_ != b_) {                                                                        \
            fprintf(stderr, "%s:%d: %s == %" PRIu64 ", expected %" PRIu64 "\n", __FILE__,      \
                    __LINE__, #a, a_, b_);                                                     \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

#define CHECK_STR(a, b)                                                                        \
    do {                                                                                       \
        const char *a_ = (a), *b_ = (b);                                                       \
        if (!a_ || strcmp(a_, b_) != 0) {                                                      \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,  \
                    a_ ? a_ : "(null)", b_);                                                   \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

/* Run a shell command built like printf; returns system()'s status. */
static inline int
test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline int
test_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}
#endif
