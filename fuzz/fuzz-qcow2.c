/* Fuzz target: qcow2 open, info, block status walk and reads (fuzz-image.h). */
#include "fuzz-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dimg_image *img = fuzz_open(data, size, "qcow2", false);
    size_t nbitmaps = 0;
    if (img) {
        fuzz_walk(img);
        struct dimg_bitmap_info *bm;
        if (dimg_bitmap_list(img, &bm, &nbitmaps) == 0)
            dimg_bitmap_list_free(bm, nbitmaps);
        dimg_close(img);
    }
    /* Images with bitmaps: also load them for writing and store them back. */
    if (nbitmaps && (img = fuzz_open(data, size, "qcow2", true))) {
        dimg_bitmap_add(img, "fuzz", 0, 1);
        dimg_close(img);
    }
    return 0;
}
