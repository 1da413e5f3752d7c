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

#include "fuzz-image.h"
#include "drv/drv.h"
#include "io/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_COPY (4u << 20) /* larger inputs skip the write pass */

static void
try_writes(const uint8_t *data, size_t size)
{
    if (size > MAX_COPY)
        return;
    /* io_mem_open copies the input: writes never touch the fuzzer's buffer. */
    struct dimg_image *img = fuzz_open(data, size, "vdi", true);
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
    struct dimg_image *img = fuzz_open(data, size, "vdi", false);
    if (!img)
        return 0;
    fuzz_walk(img);
    run_check(img);
    dimg_close(img);
    try_writes(data, size);
    return 0;
}
