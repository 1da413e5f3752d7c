/*
 * measure: how large a new image of a given format would be, either for an
 * empty disk of a given size or for a copy of an existing image.
 *
 * These calls are exported (dimg_*) but declared here rather than in
 * include/dimg/dimg.h until the API settles.
 */
#ifndef DIMG_ENGINE_MEASURE_H
#define DIMG_ENGINE_MEASURE_H

#include <stdint.h>

#include "dimg/dimg.h"

struct dimg_measure_info {
    uint64_t required;        /* bytes a converted copy needs */
    uint64_t fully_allocated; /* bytes with every cluster allocated */
    uint64_t bitmaps;         /* persistent bitmaps; valid when has_bitmaps */
    int has_bitmaps;
};

/*
 * Check an -o list against the create options of format (and of the file
 * protocol) the way qemu-img measure does: left to right, stopping at the
 * first bad entry, a bare "key" meaning key=on and "nokey" key=off.
 * -EINVAL with "Unknown file format 'x'" or the offending option's message.
 */
int dimg_measure_check_options(const char *format, const char *options);

/*
 * Measure an image of format (NULL: raw) created with options (may be NULL):
 * for src's contents when src is not NULL, else for an empty disk of size
 * bytes.  -ENOTSUP when the format cannot be measured.
 */
int dimg_measure(const char *format, const char *options, int64_t size, dimg_image *src,
                 struct dimg_measure_info *out);

#endif
