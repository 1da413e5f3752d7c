/* CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), as VHDX uses it. */
#ifndef DIMG_UTIL_CRC32C_H
#define DIMG_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Continue a CRC over buf.  Start with crc = 0; the pre- and post-inversion
 * are applied inside, so crc32c(crc32c(0, a), b) == crc32c(0, a ++ b).
 */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
