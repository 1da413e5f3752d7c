/*
 * VHD ("vpc"): probing, footer and dynamic header validation, open/close and
 * the driver table.  Every on-disk field is untrusted: the BAT is only
 * allocated once it is known to lie inside the file, so its size is bounded
 * by the file's.  Error texts are the ones qemu-img 7.2 prints.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "drv/vpc/vpc.h"
#include "util/checked.h"
#include "util/endian.h"

static const char vpc_cookie[8] = { 'c', 'o', 'n', 'e', 'c', 't', 'i', 'x' };
static const char vpc_sparse_cookie[8] = { 'c', 'x', 's', 'p', 'a', 'r', 's', 'e' };

/* qemu only recognizes the footer copy at offset 0, so fixed images (footer
 * at the end only) probe as raw there, and must here too. */
static int
vpc_probe(const uint8_t *head, size_t len, const char *filename)
{
    (void)filename;
    if (len >= sizeof vpc_cookie && memcmp(head, vpc_cookie, sizeof vpc_cookie) == 0)
        return 100;
    return 0;
}

/* The copy at offset 0 wins; a fixed image has its only footer at the end,
 * and qemu accepts a footer found there only when it says "fixed". */
static int
read_footer(struct dimg_image *img, struct vpc_state *s, int64_t file_size)
{
    if (file_size == 0)
        return dimg_error(EINVAL, "File too small for a VHD header");
    int r = io_pread(img->file, s->footer, VPC_FOOTER_SIZE, 0);
    if (r < 0)
        return r;
    if (memcmp(s->footer, vpc_cookie, sizeof vpc_cookie) != 0) {
        if (file_size < VPC_FOOTER_SIZE)
            return dimg_error(EINVAL, "invalid VPC image");
        r = io_pread(img->file, s->footer, VPC_FOOTER_SIZE,
                     (uint64_t)file_size - VPC_FOOTER_SIZE);
        if (r < 0)
            return r;
        if (memcmp(s->footer, vpc_cookie, sizeof vpc_cookie) != 0 ||
            load_be32(s->footer + VPC_F_TYPE) != VPC_TYPE_FIXED)
            return dimg_error(EINVAL, "invalid VPC image");
    }
    if (vpc_checksum(s->footer, VPC_FOOTER_SIZE) != load_be32(s->footer + VPC_F_CHECKSUM))
        return dimg_error(EINVAL, "Incorrect header checksum");
    return 0;
}

/*
 * The virtual size: qemu trusts the CHS geometry, except for images from
 * tools known to store the exact size in "current size" (and qemu's own
 * force_size images, creator "qem2"), or when the geometry is saturated.
 */
static uint64_t
footer_size(const uint8_t *f)
{
    static const char *const exact_creators[] = { "win ", "qem2", "d2v ", "CTXS", "tap" };
    uint64_t cur = load_be64(f + VPC_F_CUR_SIZE) / VPC_SECTOR * VPC_SECTOR;
    for (size_t i = 0; i < sizeof exact_creators / sizeof exact_creators[0]; i++)
        if (memcmp(f + VPC_F_CREATOR, exact_creators[i], 4) == 0)
            return cur;
    unsigned cyls = load_be16(f + VPC_F_GEOMETRY);
    unsigned heads = f[VPC_F_GEOMETRY + 2], spt = f[VPC_F_GEOMETRY + 3];
    if (cyls == VPC_MAX_CYLS && heads == VPC_MAX_HEADS && spt == VPC_MAX_SPT)
        return cur;
    return (uint64_t)cyls * heads * spt * VPC_SECTOR;
}

static int
open_dynamic(struct dimg_image *img, struct vpc_state *s, int64_t file_size)
{
    uint8_t h[VPC_HEADER_SIZE];
    uint64_t data_offset = load_be64(s->footer + VPC_F_DATA_OFFSET);
    /* Past the end of the file reads as zeros, hence a bad magic, as in qemu;
     * an offset no file can have is a read error there. */
    if (data_offset > INT64_MAX - VPC_HEADER_SIZE)
        return dimg_error(EINVAL, "Error reading dynamic VHD header");
    if (data_offset > (uint64_t)file_size)
        return dimg_error(EINVAL, "Invalid header magic");
    int r = io_pread(img->file, h, sizeof h, data_offset);
    if (r < 0)
        return r;
    if (memcmp(h, vpc_sparse_cookie, sizeof vpc_sparse_cookie) != 0)
        return dimg_error(EINVAL, "Invalid header magic");
    s->block_size = load_be32(h + VPC_H_BLOCK_SIZE);
    if (s->block_size < VPC_SECTOR || (s->block_size & (s->block_size - 1)))
        return dimg_error(EINVAL, "Invalid block size %" PRIu32, s->block_size);
    s->bitmap_size = (uint32_t)round_up_u64(s->block_size / VPC_SECTOR / 8, VPC_SECTOR);
    s->max_entries = load_be32(h + VPC_H_MAX_ENTRIES);
    if (s->max_entries > INT_MAX / 4)
        return dimg_error(EINVAL, "Max Table Entries too large (%" PRIu32 ")", s->max_entries);
    if (img->size > (uint64_t)s->max_entries * s->block_size)
        return dimg_error(EINVAL, "Page table too small");

    /* The table and every block must lie inside the file: checked before the
     * table is allocated, so a hostile entry count costs nothing. */
    s->bat_offset = load_be64(h + VPC_H_TABLE_OFFSET);
    uint64_t bat_bytes = (uint64_t)s->max_entries * 4, end;
    if (ckd_add_u64(&end, s->bat_offset, bat_bytes) || end > INT64_MAX)
        return dimg_error(EINVAL, "Error reading pagetable");
    if (end > (uint64_t)file_size)
        goto truncated;
    s->free_offset = round_up_u64(end, VPC_SECTOR);
    s->bat = malloc(bat_bytes ? bat_bytes : 1);
    if (!s->bat)
        return dimg_error(ENOMEM, "Could not allocate the block allocation table");
    r = io_pread(img->file, s->bat, bat_bytes, s->bat_offset);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < s->max_entries; i++) {
        s->bat[i] = load_be32(&s->bat[i]);
        if (s->bat[i] == VPC_BAT_UNUSED)
            continue;
        end = (uint64_t)s->bat[i] * VPC_SECTOR + s->bitmap_size + s->block_size;
        if (end > s->free_offset)
            s->free_offset = end;
    }
    if (s->free_offset > (uint64_t)file_size)
        goto truncated;
    img->cluster_size = s->block_size;
    return 0;
truncated:
    return dimg_error(EINVAL, "block-vpc: free_data_block_offset points after the end of "
                              "file. The image has been truncated.");
}

static void
vpc_close(struct dimg_image *img)
{
    struct vpc_state *s = dimg_image_state(img);
    free(s->bat);
    s->bat = NULL;
    pthread_mutex_destroy(&s->lock);
}

static int
vpc_open(struct dimg_image *img)
{
    struct vpc_state *s = dimg_image_state(img);
    pthread_mutex_init(&s->lock, NULL);
    int r;
    int64_t file_size = io_get_size(img->file);
    if (file_size < 0) {
        r = (int)file_size;
        goto out;
    }
    /* qemu sees files in whole sectors: a partial last sector counts in full. */
    file_size = (int64_t)round_up_u64((uint64_t)file_size, VPC_SECTOR);
    r = read_footer(img, s, file_size);
    if (r < 0)
        goto out;
    s->fixed = load_be32(s->footer + VPC_F_TYPE) == VPC_TYPE_FIXED;
    img->size = footer_size(s->footer);
    if (img->size > VPC_MAX_SIZE) {
        r = dimg_error(EFBIG, "Could not open '%s': File too large", img->filename);
        goto out;
    }
    if (!s->fixed)
        r = open_dynamic(img, s, file_size);
out:
    if (r < 0)
        vpc_close(img);
    return r;
}

const struct dimg_driver dimg_drv_vpc = {
    .name = "vpc",
    .flags = DIMG_DRV_CREATE | DIMG_DRV_RESIZE_LOCK,
    .state_size = sizeof(struct vpc_state),
    .create_opts = vpc_create_opts,
    .probe = vpc_probe,
    .open = vpc_open,
    .close = vpc_close,
    .check_create = vpc_check_create,
    .create = vpc_create,
    .describe_create = vpc_describe_create,
    .pread = vpc_pread,
    .pwrite = vpc_pwrite,
    .flush = vpc_flush,
    .block_status = vpc_block_status,
};
