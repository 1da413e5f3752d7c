/*
 * What every image-format fuzz target does: open the input as a memory image
 * of one format (no backing chain, no locks), take its info, walk its block
 * status and read what it maps.  Reads are bounded so that one input never
 * runs for long.  Header-only: each target is its own executable.
 */
#ifndef DIMG_FUZZ_IMAGE_H
#define DIMG_FUZZ_IMAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/internal.h"
#include "io/io.h"

#define FUZZ_MAX_READ (8u << 20)

/* The input as an image of format fmt; writable opens work on a private copy. */
static inline struct dimg_image *
fuzz_open(const uint8_t *data, size_t size, const char *fmt, bool writable)
{
    struct dimg_io *io = io_mem_open(fmt, (void *)data, size, writable);
    if (!io)
        return NULL;
    unsigned flags = DIMG_OPEN_NO_BACKING | DIMG_OPEN_NO_LOCK | IMAGE_OPEN_SELF_CONTAINED |
                     (writable ? DIMG_OPEN_RDWR : 0);
    return image_open_io(io, fmt, fmt, flags, 0);
}

/* info, then the block status walk with bounded reads of mapped data. */
static inline void
fuzz_walk(struct dimg_image *img)
{
    struct dimg_info info;
    if (dimg_get_info(img, &info) == 0)
        dimg_info_free(&info);
    uint8_t *buf = malloc(65536);
    uint64_t off = 0, read_total = 0, size_v = dimg_get_size(img);
    int steps = 0;
    while (buf && off < size_v && steps++ < 4096 && read_total < FUZZ_MAX_READ) {
        struct dimg_extent e;
        if (dimg_block_status(img, off, size_v - off, &e) < 0)
            break;
        if (e.flags & DIMG_EXTENT_DATA) {
            uint64_t n = e.length < 65536 ? e.length : 65536;
            if (dimg_pread(img, buf, (size_t)n, off) < 0)
                break;
            read_total += n;
        }
        off += e.length;
    }
    free(buf);
}

#endif
