/*
 * VHD data path.  Fixed images are the file itself.  Dynamic images map
 * each block through the BAT; like qemu, reads ignore the per-block sector
 * bitmaps (qemu sets them all-ones on allocation and never consults them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "drv/vpc/vpc.h"
#include "util/checked.h"
#include "util/endian.h"

static uint32_t
bat_get(struct vpc_state *s, uint64_t idx)
{
    pthread_mutex_lock(&s->lock);
    uint32_t e = s->bat[idx];
    pthread_mutex_unlock(&s->lock);
    return e;
}

static uint64_t
block_data_offset(const struct vpc_state *s, uint32_t entry)
{
    return (uint64_t)entry * VPC_SECTOR + s->bitmap_size;
}

int
vpc_pread(struct dimg_image *img, void *buf, size_t len, uint64_t off)
{
    struct vpc_state *s = dimg_image_state(img);
    if (s->fixed)
        return io_pread(img->file, buf, len, off);
    uint8_t *p = buf;
    while (len > 0) {
        uint64_t idx = off / s->block_size, in = off % s->block_size;
        size_t n = (size_t)min_u64(len, s->block_size - in);
        uint32_t e = bat_get(s, idx);
        int r = 0;
        if (e == VPC_BAT_UNUSED)
            memset(p, 0, n);
        else
            r = io_pread(img->file, p, n, block_data_offset(s, e) + in);
        if (r < 0)
            return r;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

/*
 * Append a block where the footer was, in an order that leaves a readable
 * image if the writer dies part way: the footer moves to the new end first,
 * then the bitmap and the data, and only then does the BAT point at them.
 * Until the BAT write the new space is merely unreferenced.  Such space, left
 * by a writer killed before its BAT write, is where the next block goes: the
 * parts of the block this write does not cover are zeroed there, or they
 * would show the dead write's bytes.
 */
static int
alloc_block(struct dimg_image *img, struct vpc_state *s, uint64_t idx, const void *buf,
            size_t len, uint64_t in)
{
    uint64_t pos = s->free_offset;
    uint64_t end = pos + s->bitmap_size + s->block_size;
    if (pos / VPC_SECTOR >= VPC_BAT_UNUSED || end > INT64_MAX - VPC_FOOTER_SIZE)
        return dimg_error(EFBIG, "%s: image file too large", img->filename);
    int64_t old_size = io_get_size(img->file);
    if (old_size < 0)
        return (int)old_size;
    /* The old footer copy sits at pos: anything past it is unreferenced. */
    uint64_t stale_end = min_u64((uint64_t)old_size, end), data = pos + s->bitmap_size;
    int r = 0;
    if (stale_end > pos + VPC_FOOTER_SIZE) {
        uint64_t head_end = min_u64(stale_end, data + in), tail = data + in + len;
        if (head_end > data)
            r = io_zero_or_write(img->file, data, head_end - data, true);
        if (r == 0 && tail < stale_end)
            r = io_zero_or_write(img->file, tail, stale_end - tail, true);
        if (r < 0)
            return r;
    }
    r = io_pwrite(img->file, s->footer, VPC_FOOTER_SIZE, end);
    if (r < 0)
        return r;
    /* qemu marks every sector of a new block present (all-ones bitmap). */
    uint8_t *bitmap = malloc(s->bitmap_size);
    if (!bitmap)
        return dimg_error(ENOMEM, "out of memory");
    memset(bitmap, 0xff, s->bitmap_size);
    r = io_pwrite(img->file, bitmap, s->bitmap_size, pos);
    free(bitmap);
    if (r < 0)
        return r;
    r = io_pwrite(img->file, buf, len, pos + s->bitmap_size + in);
    if (r < 0)
        return r;
    uint8_t be[4];
    uint32_t e = (uint32_t)(pos / VPC_SECTOR);
    store_be32(be, e);
    r = io_pwrite(img->file, be, sizeof be, s->bat_offset + idx * 4);
    if (r < 0)
        return r;
    s->bat[idx] = e;
    s->free_offset = end;
    return 0;
}

int
vpc_pwrite(struct dimg_image *img, const void *buf, size_t len, uint64_t off)
{
    struct vpc_state *s = dimg_image_state(img);
    if (s->fixed)
        return io_pwrite(img->file, buf, len, off);
    const uint8_t *p = buf;
    while (len > 0) {
        uint64_t idx = off / s->block_size, in = off % s->block_size;
        size_t n = (size_t)min_u64(len, s->block_size - in);
        int r;
        pthread_mutex_lock(&s->lock);
        uint32_t e = s->bat[idx];
        if (e == VPC_BAT_UNUSED) {
            r = alloc_block(img, s, idx, p, n, in);
            pthread_mutex_unlock(&s->lock);
        } else {
            /* An allocated block never moves: its data needs no lock. */
            pthread_mutex_unlock(&s->lock);
            r = io_pwrite(img->file, p, n, block_data_offset(s, e) + in);
        }
        if (r < 0)
            return r;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* Like qemu: a block with a BAT entry is data (whatever its bitmap says), an
 * unallocated one reads as zeros and, with no backing file, counts as present. */
int
vpc_block_status(struct dimg_image *img, uint64_t off, uint64_t len, struct dimg_extent *out)
{
    struct vpc_state *s = dimg_image_state(img);
    if (s->fixed) {
        uint64_t pnum;
        int st = io_block_status(img->file, off, len, &pnum);
        if (st < 0)
            return st;
        out->length = pnum;
        out->host_offset = off;
        out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_OFFSET | DIMG_EXTENT_DATA |
                     ((st & IO_STATUS_ZERO) ? DIMG_EXTENT_ZERO : 0);
        return 0;
    }
    uint64_t idx = off / s->block_size, in = off % s->block_size;
    uint32_t e = bat_get(s, idx);
    uint64_t n = min_u64(len, s->block_size - in);
    if (e != VPC_BAT_UNUSED) {
        out->length = n;
        out->host_offset = block_data_offset(s, e) + in;
        out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_OFFSET | DIMG_EXTENT_DATA;
        return 0;
    }
    /* Merge a run of unallocated blocks. */
    while (n < len && bat_get(s, ++idx) == VPC_BAT_UNUSED)
        n = min_u64(len, n + s->block_size);
    out->length = n;
    out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_ZERO;
    return 0;
}

int
vpc_flush(struct dimg_image *img)
{
    return io_flush(img->file);
}
