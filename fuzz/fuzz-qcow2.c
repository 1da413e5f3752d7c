/* Fuzz target: qcow2 open, info, block status walk and reads (fuzz-image.h). */
#include "fuzz-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dimg_image *img = fuzz_open(data, size, "qcow2", false);
    if (img) {
        fuzz_walk(img);
        dimg_close(img);
    }
    return 0;
}
