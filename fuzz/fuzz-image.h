/*
 * What every image-format fuzz target does: open the input as a memory image
 * of one format (no backing chain, no locks), take its info, walk its block
 * status and read what it maps.  Reads are bounded so that one input never
 * runs for long.  Header-only: each target is its own executable.
 */
#ifndef DIMG_FUZZ_IMAGE_H
#define DIMG_FUZZ_IMAGE_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/internal.h"
#include "drv/drv.h"
#include "io/io.h"

#define FUZZ_MAX_READ (8u << 20)
#define FUZZ_MAX_COPY (4u << 20) /* larger inputs skip the write pass */

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

/* stderr muted around library diagnostics (check findings, log replay):
 * they would flood the fuzzer's output. */
struct fuzz_mute {
    int saved, nul;
};

static inline struct fuzz_mute
fuzz_mute_stderr(void)
{
    fflush(stderr);
    struct fuzz_mute m = { dup(2), open("/dev/null", O_WRONLY | O_CLOEXEC) };
    if (m.saved >= 0 && m.nul >= 0)
        dup2(m.nul, 2);
    return m;
}

static inline void
fuzz_unmute_stderr(struct fuzz_mute m)
{
    fflush(stderr);
    if (m.saved >= 0) {
        dup2(m.saved, 2);
        close(m.saved);
    }
    if (m.nul >= 0)
        close(m.nul);
}

/* The driver's read-only check, on images of at most max_size bytes. */
static inline void
fuzz_check(struct dimg_image *img, uint64_t max_size)
{
    if (!img->drv->check || dimg_get_size(img) > max_size)
        return;
    struct dimg_check res = { 0 };
    struct fuzz_mute m = fuzz_mute_stderr();
    img->drv->check(img, 0, &res);
    fuzz_unmute_stderr(m);
}

/*
 * A writable copy of a small input (io_mem_open copies it: the fuzzer's
 * buffer is never written) gets a page at its end and a sector in its
 * middle, which allocate; the sector is read back after a flush.
 */
static inline void
fuzz_try_writes(const uint8_t *data, size_t size, const char *fmt)
{
    if (size > FUZZ_MAX_COPY)
        return;
    struct dimg_image *img = fuzz_open(data, size, fmt, true);
    if (!img)
        return;
    uint64_t vsize = dimg_get_size(img);
    static const uint8_t pat[4096] = { 0x5a };
    if (vsize >= sizeof pat) {
        dimg_pwrite(img, pat, sizeof pat, vsize - sizeof pat);
        dimg_pwrite(img, pat, 512, vsize / 2 / 512 * 512);
        dimg_flush(img);
        uint8_t back[512];
        dimg_pread(img, back, sizeof back, vsize / 2 / 512 * 512);
    }
    dimg_close(img);
}

#endif
