/*
 * Fuzz target: a vhdx image held in memory is opened read-only (headers,
 * region and metadata tables, BAT, the dirty-log check), its info taken,
 * its data read and the check run; then a writable copy is opened, which
 * replays a dirty log, and gets a few writes that allocate blocks and commit
 * BAT updates through the log (the memory file grows only by what is
 * written: a page for each of at most two blocks).  Opens report log replay
 * on stderr, muted throughout.
 */
#include "fuzz-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_mute m = fuzz_mute_stderr();
    struct dimg_image *img = fuzz_open(data, size, "vhdx", false);
    if (img) {
        fuzz_walk(img);
        fuzz_check(img, UINT64_MAX);
        dimg_close(img);
    }
    fuzz_try_writes(data, size, "vhdx");
    fuzz_unmute_stderr(m);
    return 0;
}
