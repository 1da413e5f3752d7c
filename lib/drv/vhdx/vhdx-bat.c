/*
 * VHDX data path: the BAT (payload entries, with a sector-bitmap entry after
 * every chunk_ratio of them), payload block states, reads and writes.
 *
 * New blocks go at the end of the file, which is grown first so they read
 * as zeros around the data written.  Their BAT entries change in memory at
 * once and reach the file through the log in batches (vhdx_commit): until
 * then a new block is merely unreferenced space, so a writer killed at any
 * instant leaves the old contents or, once logged, the new ones.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/vhdx/vhdx.h"
#include "util/checked.h"
#include "util/endian.h"

#define ENTRIES_PER_SECTOR (VHDX_SECTOR / 8u)

static uint64_t
payload_index(const struct vhdx_state *s, uint64_t block)
{
    return block + block / s->chunk_ratio;
}

static uint64_t
bat_get(const struct vhdx_state *s, uint64_t idx)
{
    return idx < s->bat_loaded ? s->bat[idx] : 0;
}

/* Bytes of block `block` that lie inside the virtual disk. */
static uint64_t
block_len_in_disk(const struct vhdx_state *s, uint64_t block)
{
    uint64_t start = block * s->block_size;
    return min_u64(s->block_size, s->disk_size - start);
}

/*
 * Every present payload block must lie inside the file and clear of the
 * log, BAT and metadata regions.  qemu refuses such images; opened for
 * repair they only count as corruptions.
 */
static int
check_entries(struct dimg_image *img, struct vhdx_state *s, int64_t file_size)
{
    for (uint64_t b = 0; b < s->data_blocks; b++) {
        uint64_t idx = payload_index(s, b), e = bat_get(s, idx);
        if (VHDX_BAT_STATE(e) != VHDX_PAYLOAD_FULL && VHDX_BAT_STATE(e) != VHDX_PAYLOAD_PARTIAL)
            continue;
        uint64_t start = VHDX_BAT_OFFSET(e), end = start + block_len_in_disk(s, b);
        const struct vhdx_region *hit = NULL;
        if (start >= (uint64_t)file_size)
            vhdx_report("VHDX BAT entry %" PRIu64 " start offset %" PRIu64 " points after end "
                        "of file (%" PRId64 "). Image has probably been truncated.", idx, start,
                        file_size);
        else if (end > (uint64_t)file_size)
            vhdx_report("VHDX BAT entry %" PRIu64 " end offset %" PRIu64 " points after end "
                        "of file (%" PRId64 "). Image has probably been truncated.", idx,
                        end - 1, file_size);
        else if ((hit = vhdx_find_overlap(s, start, start + s->block_size)))
            vhdx_report("VHDX region %" PRIu64 "-%" PRIu64 " overlaps with region %" PRIu64
                        "-%" PRIu64, start, start + s->block_size, hit->start, hit->end);
        else
            continue;
        if (!(img->flags & (DIMG_OPEN_REPAIR | DIMG_OPEN_CHECK)))
            return vhdx_open_failed(img, EINVAL);
        s->bat_errors++;
    }
    return 0;
}

/*
 * Load the BAT.  qemu's entry count (whose "data blocks - 1" wraps for an
 * empty disk) must fit the region; only the entries the disk uses and the
 * file holds are read, so a hostile header costs no memory.
 */
int
vhdx_load_bat(struct dimg_image *img, struct vhdx_state *s, int64_t file_size)
{
    s->chunk_ratio = ((uint64_t)1 << 23) * s->logical_sector / s->block_size;
    s->data_blocks = (s->disk_size + s->block_size - 1) / s->block_size;
    uint64_t qemu_entries = vhdx_bat_entries(s->disk_size, s->block_size, s->logical_sector);
    if (qemu_entries * 8 > s->bat_length)
        return vhdx_open_failed(img, EINVAL);
    s->bat_entries = s->data_blocks ? payload_index(s, s->data_blocks - 1) + 1 : 0;
    uint64_t have = 0;
    if ((uint64_t)file_size > s->bat_offset)
        have = ((uint64_t)file_size - s->bat_offset + 7) / 8;
    s->bat_loaded = min_u64(s->bat_entries, have);
    if (s->bat_loaded) {
        s->bat = malloc(s->bat_loaded * 8);
        if (!s->bat)
            return dimg_error(ENOMEM, "Could not allocate the VHDX BAT (%" PRIu64 " entries)",
                              s->bat_loaded);
        int r = io_pread(img->file, s->bat, s->bat_loaded * 8, s->bat_offset);
        if (r < 0)
            return r;
        for (uint64_t i = 0; i < s->bat_loaded; i++)
            s->bat[i] = load_le64(&s->bat[i]);
    }
    return check_entries(img, s, file_size);
}

static int
bad_state(struct dimg_image *img, uint64_t block, uint64_t e)
{
    return dimg_error(EIO, "%s: VHDX block %" PRIu64 " has an invalid state (%u)",
                      img->filename, block, VHDX_BAT_STATE(e));
}

int
vhdx_pread(struct dimg_image *img, void *buf, size_t len, uint64_t off)
{
    struct vhdx_state *s = dimg_image_state(img);
    uint8_t *p = buf;
    while (len > 0) {
        uint64_t block = off / s->block_size, in = off % s->block_size;
        size_t n = (size_t)min_u64(len, s->block_size - in);
        pthread_mutex_lock(&s->lock);
        uint64_t e = bat_get(s, payload_index(s, block));
        pthread_mutex_unlock(&s->lock);
        int r = 0;
        switch (VHDX_BAT_STATE(e)) {
        case VHDX_PAYLOAD_FULL:
            r = io_pread(img->file, p, n, VHDX_BAT_OFFSET(e) + in);
            break;
        case 4:
        case VHDX_PAYLOAD_PARTIAL:
            /* Partially present needs a parent; 4 is undefined.  qemu: EIO. */
            r = bad_state(img, block, e);
            break;
        default:
            memset(p, 0, n);
            break;
        }
        if (r < 0)
            return r;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* Make the whole BAT addressable before an entry past the loaded part changes. */
static int
bat_make_room(struct vhdx_state *s, uint64_t idx)
{
    if (idx < s->bat_loaded)
        return 0;
    uint64_t *nb = realloc(s->bat, s->bat_entries * 8);
    if (!nb)
        return dimg_error(ENOMEM, "out of memory");
    memset(nb + s->bat_loaded, 0, (s->bat_entries - s->bat_loaded) * 8);
    s->bat = nb;
    s->bat_loaded = s->bat_entries;
    return 0;
}

/* Queue the BAT sector holding entry idx for the next log commit (lock held). */
static int
mark_pending(struct dimg_image *img, struct vhdx_state *s, uint64_t idx)
{
    uint32_t sector = (uint32_t)(idx / ENTRIES_PER_SECTOR);
    for (unsigned i = 0; i < s->npending; i++)
        if (s->pending[i] == sector)
            return 0;
    if (s->npending == VHDX_MAX_PENDING) {
        int r = vhdx_commit(img, s);
        if (r < 0)
            return r;
    }
    s->pending[s->npending++] = sector;
    return 0;
}

/*
 * Give block a new home at the end of the file and write data into it.
 * The file grows first (the new space reads as zeros), then the data goes
 * in, and only then does the in-memory BAT point there.  Lock held.
 */
static int
allocate_block(struct dimg_image *img, struct vhdx_state *s, uint64_t block, const uint8_t *data,
               uint64_t in, size_t n)
{
    uint64_t idx = payload_index(s, block), pos = s->file_end, end;
    if (ckd_add_u64(&end, pos, s->block_size) || end > ((uint64_t)1 << 63) - VHDX_MiB)
        return dimg_error(EFBIG, "%s: image file too large", img->filename);
    int r = bat_make_room(s, idx);
    if (r == 0)
        r = io_truncate(img->file, end, DIMG_PREALLOC_OFF);
    if (r == 0)
        r = io_pwrite(img->file, data, n, pos + in);
    if (r < 0)
        return r;
    s->file_end = end;
    s->bat[idx] = pos | VHDX_PAYLOAD_FULL;
    return mark_pending(img, s, idx);
}

/* The first change after open records new write GUIDs, as qemu does. */
static int
bump_headers(struct dimg_image *img, struct vhdx_state *s)
{
    if (s->headers_bumped)
        return 0;
    /* BAT sectors go through the log whole: a log without room for one, or
     * a BAT not laid out in whole 4 KiB sectors (the spec wants 1 MiB units),
     * could not take the BAT update that follows the data. */
    if (s->log_length < 2 * VHDX_SECTOR)
        return dimg_error(EINVAL, "%s: the VHDX log is too small for a write", img->filename);
    if (s->bat_offset % VHDX_SECTOR || s->bat_length % VHDX_SECTOR)
        return dimg_error(ENOTSUP, "%s: the VHDX BAT region is not 4 KiB aligned; "
                                   "the image can only be read", img->filename);
    int r = vhdx_write_headers(img, s, true, NULL);
    if (r == 0)
        s->headers_bumped = true;
    return r;
}

int
vhdx_pwrite(struct dimg_image *img, const void *buf, size_t len, uint64_t off)
{
    struct vhdx_state *s = dimg_image_state(img);
    const uint8_t *p = buf;
    while (len > 0) {
        uint64_t block = off / s->block_size, in = off % s->block_size;
        size_t n = (size_t)min_u64(len, s->block_size - in);
        pthread_mutex_lock(&s->lock);
        int r = bump_headers(img, s);
        uint64_t e = bat_get(s, payload_index(s, block));
        if (r < 0) {
            pthread_mutex_unlock(&s->lock);
        } else if (VHDX_BAT_STATE(e) == 4 || VHDX_BAT_STATE(e) == VHDX_PAYLOAD_PARTIAL) {
            pthread_mutex_unlock(&s->lock);
            r = bad_state(img, block, e); /* as reads: the block's data is unknown */
        } else if (VHDX_BAT_STATE(e) == VHDX_PAYLOAD_FULL) {
            /* A present block never moves: its data needs no lock. */
            pthread_mutex_unlock(&s->lock);
            r = io_pwrite(img->file, p, n, VHDX_BAT_OFFSET(e) + in);
        } else {
            r = allocate_block(img, s, block, p, in, n);
            pthread_mutex_unlock(&s->lock);
        }
        if (r < 0)
            return r;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* Zeros: absent blocks read as zeros already; present ones get their range zeroed. */
int
vhdx_zero(struct dimg_image *img, uint64_t off, uint64_t len, unsigned flags)
{
    struct vhdx_state *s = dimg_image_state(img);
    (void)flags;
    while (len > 0) {
        uint64_t block = off / s->block_size, in = off % s->block_size;
        uint64_t n = min_u64(len, s->block_size - in);
        pthread_mutex_lock(&s->lock);
        uint64_t e = bat_get(s, payload_index(s, block));
        int r = VHDX_BAT_STATE(e) == VHDX_PAYLOAD_FULL ? bump_headers(img, s) : 0;
        pthread_mutex_unlock(&s->lock);
        if (VHDX_BAT_STATE(e) == 4 || VHDX_BAT_STATE(e) == VHDX_PAYLOAD_PARTIAL)
            r = bad_state(img, block, e);
        if (r == 0 && VHDX_BAT_STATE(e) == VHDX_PAYLOAD_FULL)
            r = io_zero_or_write(img->file, VHDX_BAT_OFFSET(e) + in, n, false);
        if (r < 0)
            return r;
        off += n;
        len -= n;
    }
    return 0;
}

/* The pending BAT sectors, as they now stand in memory, through the log. */
int
vhdx_commit(struct dimg_image *img, struct vhdx_state *s)
{
    if (s->npending == 0)
        return 0;
    unsigned n = s->npending;
    uint8_t *data = malloc((size_t)n * VHDX_SECTOR);
    uint64_t offs[VHDX_MAX_PENDING];
    if (!data)
        return dimg_error(ENOMEM, "out of memory");
    for (unsigned i = 0; i < n; i++) {
        uint64_t first = (uint64_t)s->pending[i] * ENTRIES_PER_SECTOR;
        for (unsigned k = 0; k < ENTRIES_PER_SECTOR; k++)
            store_le64(data + (size_t)i * VHDX_SECTOR + k * 8, bat_get(s, first + k));
        offs[i] = s->bat_offset + (uint64_t)s->pending[i] * VHDX_SECTOR;
    }
    /* The blocks' data must be on disk before an entry points at it. */
    int r = io_flush(img->file);
    if (r == 0)
        r = vhdx_log_write(img, s, offs, data, n);
    free(data);
    if (r == 0)
        s->npending = 0;
    return r;
}

int
vhdx_flush(struct dimg_image *img)
{
    struct vhdx_state *s = dimg_image_state(img);
    pthread_mutex_lock(&s->lock);
    int r = vhdx_commit(img, s);
    pthread_mutex_unlock(&s->lock);
    return r < 0 ? r : io_flush(img->file);
}
