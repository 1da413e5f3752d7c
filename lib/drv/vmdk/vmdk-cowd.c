/*
 * ESX Server sparse extents ("COWD", the data files of a vmfsSparse VMDK):
 * shared/specs/libyal-vmdk.asciidoc, "The COWD sparse extent data file".
 * A 2048-byte header, a grain directory and grain tables of 32-bit sector
 * numbers, 4096 entries a table.  Grains are looked up, read and written by
 * vmdk-sparse.c; this file decodes and bounds the header, loads the
 * directory, adds grain tables on writes, reads the descriptor text qemu
 * looks for in a COWD file opened on its own, and refuses seSparse extents
 * the way qemu-img 7.2 reports them.
 *
 * qemu-img 7.2 (observed) trusts these headers more than the hosted sparse
 * ones: the capacity in the header wins over the descriptor's, anything past
 * the end of the file reads as zeros (the directory, tables, grains), and
 * the directory may be too short for the capacity, which makes block status
 * there fail with EIO, writes fail with EINVAL and reads return zeros (or the
 * backing file).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drv/vmdk/vmdk.h"
#include "util/checked.h"
#include "util/endian.h"

#define COWD_HEADER_BYTES 2048u
#define COWD_GTES 4096u
/* qemu-img's limits: larger values fail to open with its messages. */
#define COWD_MAX_GRAIN_SECTORS 0x200000u
#define COWD_MAX_GD_ENTRIES (32u << 20)
/* From 2^20 sectors on, a table's reach (4096 grains) overflows 32 bits in
 * qemu, which then divides by zero or misplaces grains: refused here. */
#define COWD_SANE_GRAIN_LIMIT (1u << 20)

/* Where qemu looks for descriptor text in a COWD file opened on its own. */
#define COWD_DESC_OFFSET 512u
#define COWD_DESC_BYTES 10240u
#define COWD_HINT_MAX 4095u

enum {
    COWD_OFF_CAPACITY = 12,
    COWD_OFF_GRAIN = 16,
    COWD_OFF_GD_SECTOR = 20,
    COWD_OFF_GD_ENTRIES = 24,
    COWD_OFF_FREE_SECTOR = 28,
};

/* e->file is open; fills the extent's geometry and loads its directory. */
int
vmdk_cowd_open(struct vmdk_extent *e)
{
    uint8_t h[COWD_HEADER_BYTES];
    int r = io_pread(e->file, h, sizeof h, 0);
    if (r < 0)
        return r;
    int64_t fsize = io_get_size(e->file);
    if (fsize < 0)
        return (int)fsize;
    uint32_t capacity = load_le32(h + COWD_OFF_CAPACITY);
    uint32_t grain = load_le32(h + COWD_OFF_GRAIN);
    uint32_t gd_sector = load_le32(h + COWD_OFF_GD_SECTOR);
    uint32_t slots = load_le32(h + COWD_OFF_GD_ENTRIES);
    if (grain > COWD_MAX_GRAIN_SECTORS)
        return dimg_error(EFBIG, "Invalid granularity, image may be corrupt");
    if (slots > COWD_MAX_GD_ENTRIES)
        return dimg_error(EFBIG, "L1 size too big");
    if (grain == 0 || grain >= COWD_SANE_GRAIN_LIMIT)
        return dimg_error(EINVAL, "Invalid granularity, image may be corrupt");

    e->cowd = true;
    e->flags = 0; /* the COWD flags mean nothing to the VMDK4 code */
    e->version = load_le32(h + 4);
    e->num_gtes = COWD_GTES;
    e->grain_bytes = grain * VMDK_SECTOR;
    e->length = (uint64_t)capacity * VMDK_SECTOR;
    e->gd_offset = (uint64_t)gd_sector * VMDK_SECTOR;
    e->rgd_offset = 0;
    e->gd_slots = slots;
    e->free_sector = load_le32(h + COWD_OFF_FREE_SECTOR);

    /* Only the part of the directory inside the file is held: the rest
     * reads as zeros, so allocation is bounded by the file's size. */
    uint64_t held = 0;
    if (e->gd_offset < (uint64_t)fsize)
        held = min_u64(slots, ((uint64_t)fsize - e->gd_offset + 3) / 4);
    e->gd_entries = (uint32_t)held;
    e->gd = malloc(held ? held * 4 : 1);
    e->gt = malloc((size_t)COWD_GTES * 4);
    if (!e->gd || !e->gt)
        return dimg_error(ENOMEM, "out of memory");
    r = io_pread(e->file, e->gd, held * 4, e->gd_offset);
    if (r < 0)
        return r;
    for (uint64_t i = 0; i < held; i++)
        e->gd[i] = load_le32(&e->gd[i]);
    e->gt_index = -1;
    /* qemu appends grains at the file's end rounded up to a whole grain. */
    e->alloc_end = round_up_any((uint64_t)fsize, e->grain_bytes);
    return 0;
}

/* Keep the header's next-free-sector field past what was allocated, so
 * that ESX, which allocates from it, does not reuse our grains. */
static int
update_free_sector(struct vmdk_extent *e)
{
    uint64_t end = (e->alloc_end + VMDK_SECTOR - 1) / VMDK_SECTOR;
    if (end <= e->free_sector || end > UINT32_MAX)
        return 0;
    uint8_t le[4];
    store_le32(le, (uint32_t)end);
    int r = io_pwrite(e->file, le, sizeof le, COWD_OFF_FREE_SECTOR);
    if (r == 0)
        e->free_sector = (uint32_t)end;
    return r;
}

/*
 * Give directory entry gdi an empty grain table at the end of the file.
 * qemu never adds tables (a write there lands on the header), but files
 * ESX writes add them as grains arrive.  The table is written before the
 * directory points at it, so a crash leaves at worst unused space.
 */
int
vmdk_cowd_new_gt(struct vmdk_extent *e, uint64_t gdi)
{
    if (gdi >= e->gd_entries)
        return dimg_error(ENOTSUP, "Could not write to '%s': grain directory lies beyond the "
                          "end of the file", e->path);
    if (e->gd_offset < COWD_HEADER_BYTES)
        return dimg_error(ENOTSUP, "Could not write to '%s': grain directory overlaps the header",
                          e->path);
    uint64_t at = round_up_any(e->alloc_end, VMDK_SECTOR);
    size_t bytes = (size_t)COWD_GTES * 4;
    if ((at + bytes) / VMDK_SECTOR > UINT32_MAX)
        return dimg_error(EFBIG, "Could not write to '%s': file too large for VMDK", e->path);
    uint8_t *zeros = calloc(1, bytes);
    if (!zeros)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pwrite(e->file, zeros, bytes, at);
    free(zeros);
    if (r < 0)
        return r;
    e->alloc_end = at + bytes;
    uint32_t sector = (uint32_t)(at / VMDK_SECTOR);
    uint8_t le[4];
    store_le32(le, sector);
    r = io_pwrite(e->file, le, sizeof le, e->gd_offset + gdi * 4);
    if (r < 0)
        return r;
    e->gd[gdi] = sector;
    if (e->gt_index == (int64_t)gdi)
        e->gt_index = -1;
    return update_free_sector(e);
}

/* Before a grain table entry is written: the table must lie inside the
 * file (a hostile directory could aim it anywhere), and the header learns
 * about the grain just appended. */
int
vmdk_cowd_before_gte_write(struct vmdk_extent *e, uint64_t gdi)
{
    uint64_t gt_end = ((uint64_t)e->gd[gdi] + COWD_GTES * 4 / VMDK_SECTOR) * VMDK_SECTOR;
    if (e->gd[gdi] * (uint64_t)VMDK_SECTOR < COWD_HEADER_BYTES || gt_end > e->alloc_end)
        return dimg_error(ENOTSUP, "Could not write to '%s': grain table lies outside the file",
                          e->path);
    return update_free_sector(e);
}

/* qemu's check stops at the first grain the directory cannot reach. */
int
vmdk_cowd_check_reach(const struct vmdk_extent *e)
{
    uint64_t per_gt = (uint64_t)e->num_gtes * e->grain_bytes;
    if (e->gd_slots >= (e->length + per_gt - 1) / per_gt)
        return 0;
    uint64_t reach = (uint64_t)e->gd_slots * per_gt;
    fprintf(stderr, "ERROR: could not get cluster_offset for sector %" PRIu64 "\n",
            (e->start + reach) / VMDK_SECTOR);
    /* qemu passes its internal error code (-1) on as an errno. */
    return -EPERM;
}

/*
 * A COWD file opened on its own carries no descriptor, but qemu reads one
 * from byte 512 on (inside the header's parent-name field): the text up to
 * the first NUL may name a parent (the CIDs there are read by vmdk_cid_load).
 */
int
vmdk_cowd_bare_desc(struct dimg_io *file, const char *filename, struct vmdk_desc *out)
{
    /* Zeros past the text let the scans step over a key at the very end. */
    char *t = calloc(1, COWD_DESC_BYTES + 32);
    if (!t)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pread(file, t, COWD_DESC_BYTES, COWD_DESC_OFFSET);
    if (r < 0)
        goto out;
    t[COWD_DESC_BYTES - 1] = '\0';
    out->create_type = strdup("");
    if (!out->create_type) {
        r = dimg_error(ENOMEM, "out of memory");
        goto out;
    }
    const char *hint = strstr(t, "parentFileNameHint");
    if (hint) {
        /* the key, "=" and the opening quote, as qemu skips them */
        hint += strlen("parentFileNameHint") + 2;
        const char *end = strchr(hint, '"');
        if (!end || (size_t)(end - hint) > COWD_HINT_MAX) {
            r = dimg_error(EINVAL, "Could not open '%s': Invalid argument", filename);
            goto out;
        }
        out->parent_hint = strndup(hint, (size_t)(end - hint));
        if (!out->parent_hint) {
            r = dimg_error(ENOMEM, "out of memory");
            goto out;
        }
    }
out:
    free(t);
    return r;
}

/*
 * seSparse extents are not supported (no specification); files that are
 * not seSparse at all get the messages qemu-img gives for them.
 */
int
vmdk_sesparse_refuse(struct vmdk_extent *e)
{
    uint8_t h[16];
    int r = io_pread(e->file, h, sizeof h, 0);
    if (r < 0)
        return r;
    uint64_t magic = load_le64(h);
    uint64_t version = load_le64(h + 8);
    if (magic != 0xcafebabeu)
        return dimg_error(EINVAL, "Bad const header magic: 0x%016" PRIx64, magic);
    if (version != 0x200000001u)
        return dimg_error(EINVAL, "Unsupported version: 0x%016" PRIx64, version);
    return dimg_error(ENOTSUP, "Unsupported extent type 'SESPARSE'");
}
