/*
 * Fuzz target: a vdi image held in memory is opened (no backing chain), its
 * info taken, its block status walked, every mapped byte read and the check
 * run (maps of at most 1 GiB: it prints a line per bad entry); then a
 * writable copy gets a few writes, which exercise allocation (at most two
 * 1 MiB blocks get appended).
 */
#include "fuzz-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dimg_image *img = fuzz_open(data, size, "vdi", false);
    if (!img)
        return 0;
    fuzz_walk(img);
    fuzz_check(img, 1ull << 30);
    dimg_close(img);
    fuzz_try_writes(data, size, "vdi");
    return 0;
}
