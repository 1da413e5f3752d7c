/*
 * Fuzz target: a vdi image held in memory is opened (no backing chain), its
 * info taken, its block status walked, every mapped byte read and the check
 * run; then a writable copy gets a few writes, which exercise allocation.
 * Reads and the copy are bounded so one input never runs for long.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>

#include "core/internal.h"
#include "drv/drv.h"
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_READ (8u << 20)
#define MAX_COPY (4u << 20) /* larger inputs skip the write pass */

static void
walk(struct dimg_image *img)
{
    uint8_t *buf = malloc(65536);
    uint64_t off = 0, read_total = 0, size_v = dimg_get_size(img);
    int steps = 0;
    while (buf && off < size_v && steps++ < 4096 && read_total < MAX_READ) {
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

static void
try_writes(const uint8_t *data, size_t size)
{
    if (size > MAX_COPY)
        return;
    /* io_mem_open copies the input: writes never touch the fuzzer's buffer. */
    struct dimg_io *io = io_mem_open("fuzz.vdi", (void *)data, size, true);
    struct dimg_image *img = io ? image_open_io(io, "fuzz.vdi", "vdi",
                                                DIMG_OPEN_RDWR | DIMG_OPEN_NO_BACKING |
                                                    DIMG_OPEN_NO_LOCK, 0)
                                : NULL;
    if (!img)
        return;
    uint64_t vsize = dimg_get_size(img);
    static const uint8_t pat[4096] = { 0x5a };
    /* At most two 1 MiB blocks get appended. */
    if (vsize >= sizeof pat) {
        dimg_pwrite(img, pat, sizeof pat, vsize - sizeof pat);
        dimg_pwrite(img, pat, 512, vsize / 2 / 512 * 512);
    }
    dimg_close(img);
}

/* The check prints one line per bad entry: only small maps, stderr muted. */
static void
run_check(struct dimg_image *img)
{
    if (!img->drv->check || dimg_get_size(img) > (1ull << 30))
        return;
    struct dimg_check res = { 0 };
    fflush(stderr);
    int saved = dup(2), nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved >= 0 && nul >= 0 && dup2(nul, 2) >= 0) {
        img->drv->check(img, 0, &res);
        fflush(stderr);
        dup2(saved, 2);
    }
    if (saved >= 0)
        close(saved);
    if (nul >= 0)
        close(nul);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dimg_io *io = io_mem_open("fuzz.vdi", (void *)data, size, false);
    if (!io)
        return 0;
    struct dimg_image *img = image_open_io(io, "fuzz.vdi", "vdi",
                                           DIMG_OPEN_NO_BACKING | DIMG_OPEN_NO_LOCK, 0);
    if (!img)
        return 0;
    struct dimg_info info;
    if (dimg_get_info(img, &info) == 0)
        dimg_info_free(&info);
    walk(img);
    run_check(img);
    dimg_close(img);
    try_writes(data, size);
    return 0;
}
