/*
 * Fuzz target: a VMDK image held in memory (a sparse file with its embedded
 * descriptor, or a descriptor text) is opened read-only (no backing chain),
 * its info taken, its block status walked and every mapped byte read.
 * Reads are bounded so one input never runs for long.  Extent files that a
 * descriptor names are never opened (fuzz_open sets IMAGE_OPEN_SELF_CONTAINED):
 * hostile text must not reach real files.
 */
#include "fuzz-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dimg_image *img = fuzz_open(data, size, "vmdk", false);
    if (img) {
        fuzz_walk(img);
        dimg_close(img);
    }
    return 0;
}
