/* lib/util/checked.h: overflow detection at the edges, range and rounding helpers. */
#include <stdint.h>

#include "test.h"
#include "util/checked.h"

int
main(void)
{
    uint64_t r;
    int64_t s;

    /* ckd_add_u64 */
    CHECK(!ckd_add_u64(&r, 0, 0) && r == 0);
    CHECK(!ckd_add_u64(&r, UINT64_MAX - 1, 1) && r == UINT64_MAX);
    CHECK(!ckd_add_u64(&r, UINT64_MAX, 0) && r == UINT64_MAX);
    CHECK(ckd_add_u64(&r, UINT64_MAX, 1));
    CHECK(ckd_add_u64(&r, 1, UINT64_MAX));
    CHECK(ckd_add_u64(&r, UINT64_MAX, UINT64_MAX));
    CHECK(ckd_add_u64(&r, 1ull << 63, 1ull << 63));
    CHECK(!ckd_add_u64(&r, (1ull << 63) - 1, 1ull << 63) && r == UINT64_MAX);

    /* ckd_mul_u64 */
    CHECK(!ckd_mul_u64(&r, 0, UINT64_MAX) && r == 0);
    CHECK(!ckd_mul_u64(&r, UINT64_MAX, 1) && r == UINT64_MAX);
    CHECK(!ckd_mul_u64(&r, 1ull << 32, (1ull << 32) - 1) && r == UINT64_MAX - (1ull << 32) + 1);
    CHECK(ckd_mul_u64(&r, 1ull << 32, 1ull << 32));
    CHECK(ckd_mul_u64(&r, UINT64_MAX, 2));
    CHECK(!ckd_mul_u64(&r, 1ull << 31, 1ull << 32) && r == 1ull << 63);
    CHECK(ckd_mul_u64(&r, 3, 6148914691236517206ull)); /* 3 * (UINT64_MAX/3 + 1) */
    CHECK(!ckd_mul_u64(&r, 3, 6148914691236517205ull) && r == UINT64_MAX);
    /* 2^16 clusters of 2^48: a classic L1 x cluster size overflow */
    CHECK(ckd_mul_u64(&r, 1ull << 16, 1ull << 48));

    /* ckd_add_i64 */
    CHECK(!ckd_add_i64(&s, INT64_MAX - 1, 1) && s == INT64_MAX);
    CHECK(ckd_add_i64(&s, INT64_MAX, 1));
    CHECK(!ckd_add_i64(&s, INT64_MIN + 1, -1) && s == INT64_MIN);
    CHECK(ckd_add_i64(&s, INT64_MIN, -1));
    CHECK(!ckd_add_i64(&s, INT64_MIN, INT64_MAX) && s == -1);
    CHECK(ckd_add_i64(&s, INT64_MIN, INT64_MIN));

    /* range_within: [off, off+len) inside [0, limit) */
    CHECK(range_within(0, 0, 0));
    CHECK(range_within(0, 10, 10));
    CHECK(range_within(10, 0, 10));
    CHECK(!range_within(11, 0, 10));
    CHECK(!range_within(5, 6, 10));
    CHECK(range_within(5, 5, 10));
    CHECK(!range_within(1, UINT64_MAX, UINT64_MAX));
    CHECK(range_within(1, UINT64_MAX - 1, UINT64_MAX));
    CHECK(!range_within(UINT64_MAX, 1, UINT64_MAX));
    CHECK(range_within(UINT64_MAX, 0, UINT64_MAX));
    CHECK(!range_within(8, UINT64_MAX - 4, 16)); /* off+len would wrap to a small value */
    CHECK(!range_within(UINT64_MAX - 1, 4, 16));

    /* min/max */
    CHECK_EQ_U64(min_u64(0, UINT64_MAX), 0);
    CHECK_EQ_U64(max_u64(0, UINT64_MAX), UINT64_MAX);
    CHECK_EQ_U64(min_u64(7, 7), 7);

    /* rounding */
    CHECK_EQ_U64(round_up_u64(0, 512), 0);
    CHECK_EQ_U64(round_up_u64(1, 512), 512);
    CHECK_EQ_U64(round_up_u64(512, 512), 512);
    CHECK_EQ_U64(round_up_u64(513, 4096), 4096);
    CHECK_EQ_U64(round_up_u64(UINT64_MAX - 4095, 4096), UINT64_MAX - 4095);
    CHECK_EQ_U64(round_up_u64(12345, 1), 12345);
    CHECK_EQ_U64(round_down_u64(0, 512), 0);
    CHECK_EQ_U64(round_down_u64(511, 512), 0);
    CHECK_EQ_U64(round_down_u64(1023, 512), 512);
    CHECK_EQ_U64(round_down_u64(UINT64_MAX, 1ull << 63), 1ull << 63);
    CHECK_EQ_U64(round_down_u64(UINT64_MAX, 65536), UINT64_MAX - 65535);

    /* is_power_of_2 */
    CHECK(!is_power_of_2(0));
    CHECK(is_power_of_2(1));
    CHECK(is_power_of_2(2));
    CHECK(!is_power_of_2(3));
    CHECK(is_power_of_2(1ull << 63));
    CHECK(!is_power_of_2(UINT64_MAX));
    CHECK(!is_power_of_2((1ull << 63) + 1));
    for (int i = 0; i < 64; i++) {
        CHECK(is_power_of_2(1ull << i));
        if (i > 1)
            CHECK(!is_power_of_2((1ull << i) - 1));
    }
    return 0;
}
