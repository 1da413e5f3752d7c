/* lib/util/crc32c: known check values, chaining, and hardware == software. */
#include <stdint.h>

#include "test.h"
#include "util/crc32c.h"

uint32_t crc32c_soft_for_test(uint32_t crc, const void *buf, size_t len);

int
main(void)
{
    /* The standard check value of CRC-32C over "123456789". */
    CHECK_EQ_U64(crc32c(0, "123456789", 9), 0xe3069283u);
    CHECK_EQ_U64(crc32c_soft_for_test(0, "123456789", 9), 0xe3069283u);
    CHECK_EQ_U64(crc32c(0, "", 0), 0);
    /* 32 bytes of zeros and of 0xff (RFC 3720 B.4 test vectors). */
    uint8_t buf[4096 + 7];
    memset(buf, 0, 32);
    CHECK_EQ_U64(crc32c(0, buf, 32), 0x8a9136aau);
    memset(buf, 0xff, 32);
    CHECK_EQ_U64(crc32c(0, buf, 32), 0x62a8ab43u);
    /* Chaining, odd lengths and alignments agree with one pass and with software. */
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t start = 0; start < 8; start++) {
        for (size_t len = 0; len < 100; len += 3) {
            uint32_t one = crc32c(0, buf + start, len);
            CHECK_EQ_U64(crc32c_soft_for_test(0, buf + start, len), one);
            for (size_t cut = 0; cut <= len; cut += 5)
                CHECK_EQ_U64(crc32c(crc32c(0, buf + start, cut), buf + start + cut, len - cut),
                             one);
        }
    }
    CHECK_EQ_U64(crc32c(0, buf, 4096), crc32c_soft_for_test(0, buf, 4096));
    return 0;
}
