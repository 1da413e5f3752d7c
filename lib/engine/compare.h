/*
 * compare engine: do two images read the same, as `qemu-img compare` decides
 * it.  Built only on the public image API; never prints.
 *
 * The walk follows qemu-img's: at each offset both images' block status is
 * taken, runs that are zero in both are skipped, runs allocated in both are
 * read and compared, a run allocated in only one must read as zeros there,
 * and the part of the larger image past the end of the smaller must read as
 * zeros.  A mismatch is reported at the start of the first differing 512-byte
 * sector, counted from the start of the run being examined (qemu-img's rule).
 *
 * Reading is pipelined: the caller's thread reads the first image while a
 * reader thread reads the second ahead of it, through a small ring of
 * buffers (2 MiB in all), so memory stays bounded whatever the image size.
 */
#ifndef DIMG_ENGINE_COMPARE_H
#define DIMG_ENGINE_COMPARE_H

#include <stdbool.h>
#include <stdint.h>

#include "dimg/dimg.h"

enum dimg_compare_result {
    DIMG_COMPARE_IDENTICAL = 0,
    DIMG_COMPARE_CONTENT_MISMATCH, /* offset: the first differing sector */
    DIMG_COMPARE_SIZE_MISMATCH,    /* strict mode: the sizes differ */
    DIMG_COMPARE_STATUS_MISMATCH,  /* strict mode: block status differs at offset */
};

/* What failed when dimg_compare() returns a negative errno. */
enum dimg_compare_failure {
    DIMG_COMPARE_FAIL_NONE = 0,
    DIMG_COMPARE_FAIL_STATUS, /* block status of image `image` failed (qemu-img exit 3) */
    DIMG_COMPARE_FAIL_READ,   /* reading image `image` at `offset` failed (exit 4) */
    DIMG_COMPARE_FAIL_OTHER,  /* out of memory, thread creation (exit 4) */
};

struct dimg_compare_report {
    enum dimg_compare_result result;
    uint64_t offset;
    enum dimg_compare_failure failure;
    int image;                 /* 0 or 1: the image a failure concerns */
};

struct dimg_compare_params {
    bool strict;
    /* Called after each examined run, in order, with the run's length and the
     * size of the larger image (qemu-img's progress base).  Optional. */
    void (*progress)(uint64_t done, uint64_t total, void *opaque);
    /* Called once, when the common part matched and the sizes differ, before
     * the tail of the larger image is examined.  Optional. */
    void (*size_mismatch)(void *opaque);
    void *opaque;
};

/*
 * Compare a with b.  Returns 0 with *out filled (result and offset), or a
 * negative errno with out->failure/image/offset saying what failed (the
 * library error is recorded).
 */
int dimg_compare(dimg_image *a, dimg_image *b, const struct dimg_compare_params *params,
                 struct dimg_compare_report *out);

#endif
