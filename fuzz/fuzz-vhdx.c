/*
 * Fuzz target: a vhdx image held in memory is opened read-only (headers,
 * region and metadata tables, BAT, the dirty-log check), its info taken,
 * its data read and the check run; then a writable copy is opened, which
 * replays a dirty log, and gets a few writes that allocate blocks and commit
 * BAT updates through the log.  Inputs are copied, never written.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "drv/drv.h"
#include "fuzz-image.h"
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_COPY (4u << 20) /* larger inputs skip the write pass */

static void
try_writes(const uint8_t *data, size_t size)
{
    if (size > MAX_COPY)
        return;
    /* The open replays a dirty log: diagnostics go to stderr, muted here. */
    struct dimg_image *img = fuzz_open(data, size, "vhdx", true);
    if (!img)
        return;
    uint64_t vsize = dimg_get_size(img);
    static const uint8_t pat[4096] = { 0x5a };
    /* A block is at most 256 MiB, but the memory file only grows by what is
     * written: at most two blocks get a page each. */
    if (vsize >= sizeof pat) {
        dimg_pwrite(img, pat, sizeof pat, vsize - sizeof pat);
        dimg_pwrite(img, pat, 512, vsize / 2 / 512 * 512);
        dimg_flush(img);
        uint8_t back[512];
        dimg_pread(img, back, sizeof back, vsize / 2 / 512 * 512);
    }
    dimg_close(img);
}

static void
run_check(struct dimg_image *img)
{
    struct dimg_check res = { 0 };
    img->drv->check(img, 0, &res);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fflush(stderr);
    int saved = dup(2), nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved >= 0 && nul >= 0)
        dup2(nul, 2);
    struct dimg_image *img = fuzz_open(data, size, "vhdx", false);
    if (img) {
        fuzz_walk(img);
        run_check(img);
        dimg_close(img);
    }
    try_writes(data, size);
    fflush(stderr);
    if (saved >= 0) {
        dup2(saved, 2);
        close(saved);
    }
    if (nul >= 0)
        close(nul);
    return 0;
}
