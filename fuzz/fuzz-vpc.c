/*
 * Fuzz target: a VHD image held in memory is opened (info, block status
 * walk, reads of every mapped range), then reopened writable for a few
 * writes that allocate blocks, and read back.  Reads and writes are bounded
 * so one input never runs for long or grows the memory file much.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_READ (8u << 20)
/* Writes only where an allocation costs at most this much memory. */
#define MAX_WRITE_BLOCK (4u << 20)

static void
walk(struct dimg_image *img, uint8_t *buf)
{
    uint64_t off = 0, read_total = 0, size_v = dimg_get_size(img);
    int steps = 0;
    while (off < size_v && steps++ < 4096 && read_total < MAX_READ) {
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
}

static void
write_some(const uint8_t *data, size_t size, uint8_t *buf)
{
    struct dimg_io *io = io_mem_open("fuzz.vhd", (void *)data, size, true);
    if (!io)
        return;
    struct dimg_image *img = image_open_io(io, "fuzz.vhd", "vpc",
                                           DIMG_OPEN_RDWR | DIMG_OPEN_NO_BACKING |
                                           DIMG_OPEN_NO_LOCK, 0);
    if (!img)
        return;
    uint64_t size_v = dimg_get_size(img);
    uint32_t bs = dimg_get_cluster_size(img);
    if (bs <= MAX_WRITE_BLOCK && size_v <= (64u << 20)) {
        memset(buf, 0x5a, 65536);
        /* The start, a range straddling a block boundary, and the end. */
        uint64_t offs[3] = { 0, bs ? bs - 512 : 4096, size_v >= 4096 ? size_v - 4096 : 0 };
        for (int i = 0; i < 3; i++) {
            size_t n = (size_t)(size_v - offs[i] < 4096 ? size_v - offs[i] : 4096);
            if (offs[i] < size_v && n > 0)
                dimg_pwrite(img, buf, n, offs[i]);
        }
        walk(img, buf);
    }
    dimg_close(img);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(65536);
    if (!buf)
        return 0;
    struct dimg_io *io = io_mem_open("fuzz.vhd", (void *)data, size, false);
    struct dimg_image *img = NULL;
    if (io)
        img = image_open_io(io, "fuzz.vhd", "vpc", DIMG_OPEN_NO_BACKING | DIMG_OPEN_NO_LOCK, 0);
    if (img) {
        struct dimg_info info;
        if (dimg_get_info(img, &info) == 0)
            dimg_info_free(&info);
        walk(img, buf);
        dimg_close(img);
        write_some(data, size, buf);
    }
    free(buf);
    return 0;
}
