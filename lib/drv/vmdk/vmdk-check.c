/*
 * vmdk: qemu-img check.  What qemu-img 7.2 checks on VMDK (observed): every
 * grain a grain table points at must start inside its extent file; the first
 * one that does not ends the check with "ERROR: cluster offset for sector N
 * points after EOF" (N: the guest sector of that grain) and "Check failed:
 * Invalid argument", exit 1.  A grain table beyond the end of the file reads
 * as zeros there, so its grains are unallocated, not errors.  There is no
 * repair: -r gets "This image format does not support checks".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drv/vmdk/vmdk.h"
#include "util/endian.h"

/* Read one grain table; the part beyond the end of the file reads as zeros. */
static int
read_gt(struct vmdk_extent *e, uint64_t off, uint64_t file_size, uint32_t *gt)
{
    size_t bytes = (size_t)e->num_gtes * 4;
    memset(gt, 0, bytes);
    if (off >= file_size)
        return 0;
    size_t have = file_size - off < bytes ? (size_t)(file_size - off) : bytes;
    int r = io_pread(e->file, gt, have, off);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < e->num_gtes; i++)
        gt[i] = load_le32(&gt[i]);
    return 0;
}

static int
check_extent(struct vmdk_extent *e, uint32_t *gt)
{
    int64_t size = io_get_size(e->file);
    if (size < 0)
        return (int)size;
    bool zero_marker = e->flags & VMDK4_FLAG_ZERO_GRAIN;
    for (uint32_t d = 0; d < e->gd_entries; d++) {
        if (e->length == 0 || d > (e->length - 1) / ((uint64_t)e->num_gtes * e->grain_bytes))
            break;  /* tables past the capacity are not looked at */
        if (e->gd[d] == 0)
            continue;
        int r = read_gt(e, (uint64_t)e->gd[d] * VMDK_SECTOR, (uint64_t)size, gt);
        if (r < 0)
            return r;
        for (uint32_t i = 0; i < e->num_gtes; i++) {
            uint32_t sector = gt[i];
            if (sector == 0 || (zero_marker && sector == VMDK_GTE_ZEROED))
                continue;
            uint64_t guest = ((uint64_t)d * e->num_gtes + i) * e->grain_bytes;
            if (guest >= e->length)
                break;
            if ((uint64_t)sector * VMDK_SECTOR >= (uint64_t)size) {
                fprintf(stderr, "ERROR: cluster offset for sector %" PRIu64 " points after EOF\n",
                        (e->start + guest) / VMDK_SECTOR);
                return -EINVAL;
            }
        }
    }
    return e->cowd ? vmdk_cowd_check_reach(e) : 0;
}

int
vmdk_check(struct dimg_image *img, unsigned fix, struct dimg_check *out)
{
    (void)out;
    if (fix)
        return dimg_error(ENOTSUP, "This image format does not support checks");
    struct vmdk_state *s = dimg_image_state(img);
    pthread_mutex_lock(&s->lock);
    int r = 0;
    for (size_t i = 0; r == 0 && i < s->n_extents; i++) {
        struct vmdk_extent *e = &s->ext[i];
        if (e->type != VMDK_EXT_SPARSE || !e->gd)
            continue;
        uint32_t *gt = malloc((size_t)e->num_gtes * 4);
        if (!gt) {
            r = dimg_error(ENOMEM, "out of memory");
            break;
        }
        r = check_extent(e, gt);
        free(gt);
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}
