/* Fuzz target: format probing and opening an image held in memory (read-only). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "drv/drv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct dimg_driver *drv = driver_probe(data, size < 2048 ? size : 2048, "fuzz");
    (void)drv;
    return 0;
}
