/*
 * Fuzz target: internal snapshot operations on a hostile qcow2 image (a
 * private in-memory copy): apply the first snapshot, delete the last, create
 * one, then list and read what the image maps.
 */
#include <string.h>

#include "fuzz-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dimg_image *img = fuzz_open(data, size, "qcow2", true);
    if (!img)
        return 0;
    struct dimg_snapshot *sn = NULL;
    size_t n = 0;
    if (dimg_snapshot_list(img, &sn, &n) == 0 && n > 0) {
        char *first = strdup(sn[0].id), *last = strdup(sn[n - 1].name);
        if (first)
            dimg_snapshot_apply(img, first);
        if (last)
            dimg_snapshot_delete(img, last);
        free(first);
        free(last);
    }
    dimg_snapshot_list_free(sn, n);
    dimg_snapshot_create(img, "fuzz");
    if (dimg_snapshot_list(img, &sn, &n) == 0)
        dimg_snapshot_list_free(sn, n);
    fuzz_walk(img);
    dimg_close(img);
    return 0;
}
