/*
 * Fuzz target: a VMDK image held in memory (a sparse file with its embedded
 * descriptor, or a descriptor text) is opened read-only (no backing chain),
 * its info taken, its block status walked and every mapped byte read.
 * Reads are bounded so one input never runs for long.
 */
#include <stdint.h>
#include <stdlib.h>

#include "core/internal.h"
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_READ (8u << 20)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dimg_io *io = io_mem_open("fuzz.vmdk", (void *)data, size, false);
    if (!io)
        return 0;
    struct dimg_image *img = image_open_io(io, "fuzz.vmdk", "vmdk",
                                           DIMG_OPEN_NO_BACKING | DIMG_OPEN_NO_LOCK, 0);
    if (!img)
        return 0;
    struct dimg_info info;
    if (dimg_get_info(img, &info) == 0)
        dimg_info_free(&info);
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
    dimg_close(img);
    return 0;
}
