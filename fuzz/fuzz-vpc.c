/*
 * Fuzz target: a VHD image held in memory is opened (info, block status
 * walk, reads of every mapped range), then reopened writable for a few
 * writes that allocate blocks, and read back.  Reads and writes are bounded
 * so one input never runs for long or grows the memory file much.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-image.h"
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes only where an allocation costs at most this much memory. */
#define MAX_WRITE_BLOCK (4u << 20)

static void
write_some(const uint8_t *data, size_t size, uint8_t *buf)
{
    struct dimg_image *img = fuzz_open(data, size, "vpc", true);
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
        fuzz_walk(img);
    }
    dimg_close(img);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(65536);
    if (!buf)
        return 0;
    struct dimg_image *img = fuzz_open(data, size, "vpc", false);
    if (img) {
        fuzz_walk(img);
        dimg_close(img);
        write_some(data, size, buf);
    }
    free(buf);
    return 0;
}
