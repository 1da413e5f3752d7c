/*
 * Fuzz target: the LUKS1 header parser (lib/crypto/luks-header.c) on the
 * raw bytes, and the description of every header it accepts.
 */
#include <stdint.h>
#include <string.h>

#include "core/internal.h"
#include "crypto/luks-header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct luks_header h;
    if (luks_header_parse(data, size, &h) < 0)
        return 0;
    /* dimg_info_free releases the value tree it is handed. */
    struct dimg_info info;
    memset(&info, 0, sizeof info);
    info.format_specific = luks_header_describe(&h, "encrypt");
    dimg_info_free(&info);
    return 0;
}
