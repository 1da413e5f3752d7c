/* lib/util/endian.h: known byte patterns, round trips, unaligned access. */
#include <stdint.h>

#include "test.h"
#include "util/endian.h"

int
main(void)
{
    static const uint8_t pat[9] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xff};
    uint8_t buf[16];

    /* Loads of a known pattern, both byte orders, aligned and unaligned. */
    CHECK_EQ_U64(load_le16(pat), 0x2301);
    CHECK_EQ_U64(load_be16(pat), 0x0123);
    CHECK_EQ_U64(load_le32(pat), 0x67452301u);
    CHECK_EQ_U64(load_be32(pat), 0x01234567u);
    CHECK_EQ_U64(load_le64(pat), 0xefcdab8967452301ull);
    CHECK_EQ_U64(load_be64(pat), 0x0123456789abcdefull);
    CHECK_EQ_U64(load_le16(pat + 1), 0x4523);
    CHECK_EQ_U64(load_be32(pat + 1), 0x23456789u);
    CHECK_EQ_U64(load_le64(pat + 1), 0xffefcdab89674523ull);
    CHECK_EQ_U64(load_be64(pat + 1), 0x23456789abcdefffull);

    /* High bits: no sign extension through int promotion. */
    static const uint8_t ff[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK_EQ_U64(load_le16(ff), 0xffff);
    CHECK_EQ_U64(load_be16(ff), 0xffff);
    CHECK_EQ_U64(load_le32(ff), 0xffffffffu);
    CHECK_EQ_U64(load_be32(ff), 0xffffffffu);
    CHECK_EQ_U64(load_le64(ff), UINT64_MAX);
    CHECK_EQ_U64(load_be64(ff), UINT64_MAX);
    static const uint8_t top[8] = {0x80, 0, 0, 0, 0, 0, 0, 0x80};
    CHECK_EQ_U64(load_be32(top), 0x80000000u);
    CHECK_EQ_U64(load_le32(top + 4), 0x80000000u);
    CHECK_EQ_U64(load_be64(top), 0x8000000000000080ull);
    CHECK_EQ_U64(load_le64(top), 0x8000000000000080ull);

    /* Stores produce the expected bytes and touch nothing else. */
    memset(buf, 0xaa, sizeof buf);
    store_be64(buf + 3, 0x0123456789abcdefull);
    CHECK(memcmp(buf + 3, pat, 8) == 0);
    CHECK(buf[2] == 0xaa && buf[11] == 0xaa);
    memset(buf, 0xaa, sizeof buf);
    store_le64(buf + 1, 0xefcdab8967452301ull);
    CHECK(memcmp(buf + 1, pat, 8) == 0);
    CHECK(buf[0] == 0xaa && buf[9] == 0xaa);
    memset(buf, 0xaa, sizeof buf);
    store_be32(buf + 5, 0x01234567u);
    CHECK(memcmp(buf + 5, pat, 4) == 0 && buf[4] == 0xaa && buf[9] == 0xaa);
    memset(buf, 0xaa, sizeof buf);
    store_le32(buf + 7, 0x67452301u);
    CHECK(memcmp(buf + 7, pat, 4) == 0 && buf[6] == 0xaa && buf[11] == 0xaa);
    memset(buf, 0xaa, sizeof buf);
    store_be16(buf + 1, 0x0123);
    CHECK(buf[1] == 0x01 && buf[2] == 0x23 && buf[0] == 0xaa && buf[3] == 0xaa);
    store_le16(buf + 1, 0x0123);
    CHECK(buf[1] == 0x23 && buf[2] == 0x01 && buf[3] == 0xaa);

    /* Round trips at every alignment with a spread of values. */
    uint64_t v = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 1000; i++) {
        v = v * 6364136223846793005ull + 1442695040888963407ull;
        for (int a = 0; a < 8; a++) {
            store_le64(buf + a, v);
            CHECK_EQ_U64(load_le64(buf + a), v);
            CHECK_EQ_U64(load_be64(buf + a), __builtin_bswap64(v));
            store_be64(buf + a, v);
            CHECK_EQ_U64(load_be64(buf + a), v);
            CHECK_EQ_U64(load_le64(buf + a), __builtin_bswap64(v));
            store_le32(buf + a, (uint32_t)v);
            CHECK_EQ_U64(load_le32(buf + a), (uint32_t)v);
            CHECK_EQ_U64(load_be32(buf + a), __builtin_bswap32((uint32_t)v));
            store_be32(buf + a, (uint32_t)(v >> 32));
            CHECK_EQ_U64(load_be32(buf + a), (uint32_t)(v >> 32));
            store_le16(buf + a, (uint16_t)v);
            CHECK_EQ_U64(load_le16(buf + a), (uint16_t)v);
            CHECK_EQ_U64(load_be16(buf + a), __builtin_bswap16((uint16_t)v));
            store_be16(buf + a, (uint16_t)(v >> 48));
            CHECK_EQ_U64(load_be16(buf + a), (uint16_t)(v >> 48));
        }
    }
    return 0;
}
