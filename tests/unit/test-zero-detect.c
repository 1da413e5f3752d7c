/* The convert engine's zero detection: whole buffers and sector runs. */
#include "engine/convert.h"
#include "test.h"

int
main(void)
{
    static uint8_t buf[8192 + 64];

    /* every length and alignment up to a few words */
    for (size_t off = 0; off < 16; off++)
        for (size_t len = 0; len < 200; len++) {
            memset(buf, 0, sizeof buf);
            CHECK(convert_is_zero(buf + off, len));
            for (size_t k = 0; k < len; k++) {
                buf[off + k] = 1;
                CHECK(!convert_is_zero(buf + off, len));
                buf[off + k] = 0;
            }
            /* bytes outside the range do not matter */
            if (off)
                buf[off - 1] = 0xff;
            buf[off + len] = 0xff;
            CHECK(convert_is_zero(buf + off, len));
        }

    /* sector runs */
    memset(buf, 0, sizeof buf);
    CHECK_EQ_U64(convert_sector_run(buf, 8192, true), 8192);
    CHECK_EQ_U64(convert_sector_run(buf, 8192, false), 0);
    buf[1536 + 100] = 7; /* sector 3 holds data */
    CHECK_EQ_U64(convert_sector_run(buf, 8192, true), 1536);
    CHECK_EQ_U64(convert_sector_run(buf + 1536, 8192 - 1536, false), 512);
    CHECK_EQ_U64(convert_sector_run(buf + 2048, 8192 - 2048, true), 8192 - 2048);
    /* a trailing partial sector counts as one */
    CHECK_EQ_U64(convert_sector_run(buf + 2048, 1000, true), 1000);
    buf[2048 + 999] = 1;
    CHECK_EQ_U64(convert_sector_run(buf + 2048, 1000, true), 512);
    CHECK_EQ_U64(convert_sector_run(buf + 2048 + 512, 488, false), 488);
    return 0;
}
