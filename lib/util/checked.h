/* Overflow-checked arithmetic for offsets and sizes read from untrusted images. */
#ifndef DIMG_UTIL_CHECKED_H
#define DIMG_UTIL_CHECKED_H

#include <stdbool.h>
#include <stdint.h>

/* Each returns true when the result overflowed (and *r is unspecified). */
static inline bool
ckd_add_u64(uint64_t *r, uint64_t a, uint64_t b)
{
    return __builtin_add_overflow(a, b, r);
}

static inline bool
ckd_mul_u64(uint64_t *r, uint64_t a, uint64_t b)
{
    return __builtin_mul_overflow(a, b, r);
}

static inline bool
ckd_add_i64(int64_t *r, int64_t a, int64_t b)
{
    return __builtin_add_overflow(a, b, r);
}

/* true when [off, off+len) lies inside [0, limit) without overflow. */
static inline bool
range_within(uint64_t off, uint64_t len, uint64_t limit)
{
    return off <= limit && len <= limit - off;
}

static inline uint64_t
min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static inline uint64_t
max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static inline uint64_t
round_up_u64(uint64_t v, uint64_t align) /* align must be a power of two */
{
    return (v + align - 1) & ~(align - 1);
}

static inline uint64_t
round_down_u64(uint64_t v, uint64_t align)
{
    return v & ~(align - 1);
}

static inline bool
is_power_of_2(uint64_t v)
{
    return v && !(v & (v - 1));
}

#endif
