/*
 * vdi: VirtualBox disk images as qemu-img 7.2 reads and writes them.
 * Layout and behaviour: shared/specs/vdi-notes.md (observed, not copied).
 *
 * A header (pre-header text, signature, version, header proper), a block
 * map of one little-endian u32 per 1 MiB guest block, then the data blocks.
 * New blocks are appended in order of first write; the map lives in memory
 * and is written through entry by entry.  Every header field is untrusted.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drv/drv.h"
#include "util/checked.h"
#include "util/endian.h"

#define VDI_SIGNATURE      0xbeda107fu
#define VDI_VERSION_1_1    0x00010001u
#define VDI_TYPE_DYNAMIC   1u
#define VDI_TYPE_STATIC    2u
#define VDI_BLOCK_SIZE     (1u << 20)
#define VDI_SECTOR         512u
#define VDI_UNALLOCATED    0xffffffffu
#define VDI_DISCARDED      0xfffffffeu
/* The largest block count qemu accepts (and so the largest disk). */
#define VDI_MAX_BLOCKS     0x1fffff80u
#define VDI_MAX_SIZE       ((uint64_t)VDI_MAX_BLOCKS * VDI_BLOCK_SIZE)
#define VDI_HEADER_BYTES   512u
#define VDI_TEXT           "<<< QEMU VM Virtual Disk Image >>>\n"

/* Header field offsets (absolute). */
#define H_SIGNATURE   0x040
#define H_VERSION     0x044
#define H_HEADER_SIZE 0x048
#define H_TYPE        0x04c
#define H_OFF_BMAP    0x154
#define H_OFF_DATA    0x158
#define H_SECTOR_SIZE 0x168
#define H_DISK_SIZE   0x170
#define H_BLOCK_SIZE  0x178
#define H_BLOCKS      0x180
#define H_ALLOCATED   0x184
#define H_UUID_IMAGE  0x188
#define H_UUID_SNAP   0x198
#define H_UUID_LINK   0x1a8
#define H_UUID_PARENT 0x1b8

struct vdi_state {
    pthread_mutex_t lock;        /* map and allocation count (writers may run in parallel) */
    bool lock_init;
    uint64_t offset_bmap, offset_data;
    uint32_t blocks;             /* blocks_in_image */
    uint32_t allocated;          /* blocks_allocated as stored */
    uint32_t next_index;         /* past every index the map uses (never handed out twice) */
    uint32_t *map;               /* the first map_loaded entries, host order */
    uint32_t map_loaded;         /* entries present in the file; the rest read as 0 */
};

static bool
entry_allocated(uint32_t e)
{
    return e != VDI_UNALLOCATED && e != VDI_DISCARDED;
}

/* A map entry past the end of a truncated file reads as zero bytes, as the
 * file itself does: physical block 0. */
static uint32_t
map_get(const struct vdi_state *s, uint64_t block)
{
    return block < s->map_loaded ? s->map[block] : 0;
}

static int
vdi_probe(const uint8_t *head, size_t len, const char *filename)
{
    (void)filename;
    if (len >= H_SIGNATURE + 4 && load_le32(head + H_SIGNATURE) == VDI_SIGNATURE)
        return 100;
    return 0;
}

static bool
is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* qemu's acceptance checks, in the order it applies them (observed). */
static int
check_header(const uint8_t *h)
{
    uint64_t disk = load_le64(h + H_DISK_SIZE);
    if (disk > VDI_MAX_SIZE)
        return dimg_error(ENOTSUP, "Unsupported VDI image size (size is 0x%" PRIx64
                          ", max supported is 0x%" PRIx64 ")", disk, VDI_MAX_SIZE);
    uint32_t sig = load_le32(h + H_SIGNATURE);
    if (sig != VDI_SIGNATURE)
        return dimg_error(EINVAL, "Image not in VDI format (bad signature %08" PRIx32 ")", sig);
    uint32_t ver = load_le32(h + H_VERSION);
    if (ver != VDI_VERSION_1_1)
        return dimg_error(ENOTSUP, "unsupported VDI image (version %" PRIu32 ".%" PRIu32 ")",
                          ver >> 16, ver & 0xffff);
    uint32_t bmap = load_le32(h + H_OFF_BMAP), data = load_le32(h + H_OFF_DATA);
    if (bmap % VDI_SECTOR)
        return dimg_error(ENOTSUP, "unsupported VDI image (unaligned block map offset 0x%" PRIx32
                          ")", bmap);
    if (data % VDI_SECTOR)
        return dimg_error(ENOTSUP, "unsupported VDI image (unaligned data offset 0x%" PRIx32 ")",
                          data);
    uint32_t sector = load_le32(h + H_SECTOR_SIZE);
    if (sector != VDI_SECTOR)
        return dimg_error(ENOTSUP, "unsupported VDI image (sector size %" PRIu32 " is not %u)",
                          sector, VDI_SECTOR);
    uint32_t bs = load_le32(h + H_BLOCK_SIZE);
    if (bs != VDI_BLOCK_SIZE)
        return dimg_error(ENOTSUP, "unsupported VDI image (block size %" PRIu32 " is not %u)",
                          bs, VDI_BLOCK_SIZE);
    uint32_t blocks = load_le32(h + H_BLOCKS);
    uint64_t room = (uint64_t)blocks * VDI_BLOCK_SIZE;
    if (disk > room)
        return dimg_error(ENOTSUP, "unsupported VDI image (disk size %" PRIu64 ", image bitmap "
                          "has room for %" PRIu64 ")", disk, room);
    if (!is_zero(h + H_UUID_LINK, 16))
        return dimg_error(ENOTSUP, "unsupported VDI image (non-NULL link UUID)");
    if (!is_zero(h + H_UUID_PARENT, 16))
        return dimg_error(ENOTSUP, "unsupported VDI image (non-NULL parent UUID)");
    if (blocks > VDI_MAX_BLOCKS)
        return dimg_error(ENOTSUP, "unsupported VDI image (too many blocks %" PRIu32
                          ", max is %" PRIu32 ")", blocks, VDI_MAX_BLOCKS);
    return 0;
}

/*
 * Load the map.  Only the part the file actually holds is allocated, so a
 * header claiming millions of blocks in a tiny file costs nothing; the
 * missing entries read as zero bytes would (map_get).
 */
static int
load_map(struct dimg_image *img, struct vdi_state *s)
{
    int64_t fsize = io_get_size(img->file);
    if (fsize < 0)
        return (int)fsize;
    uint64_t want = (uint64_t)s->blocks * 4, have = 0;
    if ((uint64_t)fsize > s->offset_bmap)
        have = round_up_u64((uint64_t)fsize - s->offset_bmap, 4);
    uint64_t bytes = min_u64(want, have);
    s->map_loaded = (uint32_t)(bytes / 4);
    if (bytes == 0)
        return 0;
    s->map = malloc((size_t)bytes);
    if (!s->map)
        return dimg_error(ENOMEM, "Could not allocate the VDI block map (%" PRIu64 " bytes)",
                          bytes);
    int r = io_pread(img->file, s->map, (size_t)bytes, s->offset_bmap);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < s->map_loaded; i++) {
        s->map[i] = load_le32(&s->map[i]);
        if (entry_allocated(s->map[i]) && s->map[i] < s->blocks && s->map[i] >= s->next_index)
            s->next_index = s->map[i] + 1;
    }
    return 0;
}

static void
vdi_close(struct dimg_image *img)
{
    struct vdi_state *s = dimg_image_state(img);
    free(s->map);
    s->map = NULL;
    if (s->lock_init)
        pthread_mutex_destroy(&s->lock);
    s->lock_init = false;
}

static int
vdi_open(struct dimg_image *img)
{
    struct vdi_state *s = dimg_image_state(img);
    uint8_t h[VDI_HEADER_BYTES];
    int r = io_pread(img->file, h, sizeof h, 0);
    if (r < 0)
        return r;
    if ((r = check_header(h)) < 0)
        return r;
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return dimg_error(ENOMEM, "Could not initialize a lock");
    s->lock_init = true;
    s->offset_bmap = load_le32(h + H_OFF_BMAP);
    s->offset_data = load_le32(h + H_OFF_DATA);
    s->blocks = load_le32(h + H_BLOCKS);
    s->allocated = load_le32(h + H_ALLOCATED);
    img->size = round_up_u64(load_le64(h + H_DISK_SIZE), VDI_SECTOR);
    img->cluster_size = VDI_BLOCK_SIZE;
    r = load_map(img, s);
    if (r < 0)
        vdi_close(img);
    return r;
}

static uint64_t
block_host_offset(const struct vdi_state *s, uint32_t entry)
{
    return s->offset_data + (uint64_t)entry * VDI_BLOCK_SIZE;
}

static int
vdi_pread(struct dimg_image *img, void *buf, size_t len, uint64_t off)
{
    struct vdi_state *s = dimg_image_state(img);
    uint8_t *p = buf;
    while (len > 0) {
        uint64_t block = off / VDI_BLOCK_SIZE, in = off % VDI_BLOCK_SIZE;
        size_t n = (size_t)min_u64(len, VDI_BLOCK_SIZE - in);
        pthread_mutex_lock(&s->lock);
        uint32_t e = map_get(s, block);
        pthread_mutex_unlock(&s->lock);
        if (!entry_allocated(e)) {
            memset(p, 0, n);
        } else {
            /* Past the end of the file this reads zeros, as qemu's does. */
            int r = io_pread(img->file, p, n, block_host_offset(s, e) + in);
            if (r < 0)
                return r;
        }
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

/* A write inside one page of the file cannot be split by a SIGKILL. */
#define VDI_ATOMIC_SPAN 4096u

/*
 * Write the map entry of one block and the allocation count (lock held).
 * qemu-img check calls any difference between the two corruption, so when
 * both lie in the file's first page (qemu's layout, blocks below ~900) they
 * go out in one write.  Otherwise the count goes first: a kill between the
 * two writes leaves a count mismatch and an unused block, where the other
 * order would let the next writer hand the same index out twice.
 */
static int
commit_allocation(struct dimg_image *img, struct vdi_state *s, uint64_t block)
{
    uint8_t le[4];
    uint64_t entry_at = s->offset_bmap + block * 4;
    if (entry_at >= H_ALLOCATED + 4 && entry_at + 4 <= VDI_ATOMIC_SPAN) {
        uint8_t span[VDI_ATOMIC_SPAN];
        size_t n = (size_t)(entry_at + 4 - H_ALLOCATED);
        int r = io_pread(img->file, span, n, H_ALLOCATED);
        if (r < 0)
            return r;
        store_le32(span, s->allocated);
        store_le32(span + n - 4, s->map[block]);
        return io_pwrite(img->file, span, n, H_ALLOCATED);
    }
    store_le32(le, s->allocated);
    int r = io_pwrite(img->file, le, 4, H_ALLOCATED);
    if (r < 0)
        return r;
    store_le32(le, s->map[block]);
    return io_pwrite(img->file, le, 4, entry_at);
}

/*
 * Give an unallocated block the next physical index and write it whole
 * (zeros around the new data), then its map entry, then the header: a crash
 * in between leaves at worst an unreferenced block at the end.  Lock held.
 */
static int
allocate_block(struct dimg_image *img, struct vdi_state *s, uint64_t block, const uint8_t *data,
               size_t in, size_t n)
{
    /* An index the map already uses (a count left short by a crash) is
     * skipped: two blocks must never share storage. */
    uint32_t idx = s->allocated > s->next_index ? s->allocated : s->next_index;
    if (idx >= VDI_DISCARDED)
        return dimg_error(ENOSPC, "%s: no free VDI block index", img->filename);
    uint8_t *buf = calloc(1, VDI_BLOCK_SIZE);
    if (!buf)
        return dimg_error(ENOMEM, "out of memory");
    memcpy(buf + in, data, n);
    int r = io_pwrite(img->file, buf, VDI_BLOCK_SIZE, block_host_offset(s, idx));
    free(buf);
    if (r < 0)
        return r;
    s->map[block] = idx;
    s->allocated = s->next_index = idx + 1;
    return commit_allocation(img, s, block);
}

static int
vdi_pwrite(struct dimg_image *img, const void *buf, size_t len, uint64_t off)
{
    struct vdi_state *s = dimg_image_state(img);
    const uint8_t *p = buf;
    int r = 0;
    while (len > 0) {
        uint64_t block = off / VDI_BLOCK_SIZE, in = off % VDI_BLOCK_SIZE;
        size_t n = (size_t)min_u64(len, VDI_BLOCK_SIZE - in);
        pthread_mutex_lock(&s->lock);
        uint32_t e = map_get(s, block);
        if (entry_allocated(e)) {
            pthread_mutex_unlock(&s->lock);
            r = io_pwrite(img->file, p, n, block_host_offset(s, e) + in);
        } else {
            r = allocate_block(img, s, block, p, (size_t)in, n);
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

static int
vdi_flush(struct dimg_image *img)
{
    return io_flush(img->file);
}

/*
 * Runs of unallocated blocks read as zeros at this layer (qemu reports them
 * present); runs of physically contiguous blocks map to the file, whose own
 * holes show as zeros.
 */
static int
vdi_block_status(struct dimg_image *img, uint64_t off, uint64_t len, struct dimg_extent *out)
{
    struct vdi_state *s = dimg_image_state(img);
    uint64_t block = off / VDI_BLOCK_SIZE, in = off % VDI_BLOCK_SIZE;
    uint64_t end = off + len, run = VDI_BLOCK_SIZE - in;
    pthread_mutex_lock(&s->lock);
    uint32_t e = map_get(s, block);
    bool alloc = entry_allocated(e);
    for (uint64_t b = block + 1; off + run < end; b++) {
        uint32_t next = map_get(s, b);
        if (alloc ? next != e + (b - block) || e + (b - block) > UINT32_MAX
                  : entry_allocated(next))
            break;
        run += VDI_BLOCK_SIZE;
    }
    pthread_mutex_unlock(&s->lock);
    run = min_u64(run, len);
    if (!alloc) {
        out->length = run;
        out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_ZERO;
        return 0;
    }
    uint64_t host = block_host_offset(s, e) + in, pnum;
    int64_t fsize = io_get_size(img->file);
    if (fsize < 0)
        return (int)fsize;
    out->host_offset = host;
    if (host >= (uint64_t)fsize) {
        /* A (corrupt) entry past the end of the file: qemu calls it data. */
        out->length = run;
        out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_DATA | DIMG_EXTENT_OFFSET;
        return 0;
    }
    run = min_u64(run, (uint64_t)fsize - host);
    int st = io_block_status(img->file, host, run, &pnum);
    if (st < 0)
        return st;
    out->length = min_u64(pnum, run);
    out->host_offset = host;
    out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_DATA | DIMG_EXTENT_OFFSET |
                 ((st & IO_STATUS_ZERO) ? DIMG_EXTENT_ZERO : 0);
    return 0;
}

/* Record a physical index; true when it was already in use. */
static bool
mark_used(uint8_t *seen, uint32_t e)
{
    bool dup = seen[e / 8] & (1u << (e % 8));
    seen[e / 8] |= (uint8_t)(1u << (e % 8));
    return dup;
}

/* Past this many lines for the entries a truncated file lacks, only count. */
#define VDI_CHECK_TAIL_LINES 1000u

/*
 * qemu-img check: every physical index used once and inside the map, and the
 * stored allocation count right.  Findings go to stderr as qemu prints them.
 * Repairs are not supported (qemu-img says the format has no checks).
 */
static int
vdi_check(struct dimg_image *img, unsigned fix, struct dimg_check *out)
{
    struct vdi_state *s = dimg_image_state(img);
    if (fix)
        return -ENOTSUP;
    /* Only indexes below the block count are recorded: one bit each. */
    uint8_t *seen = calloc(1, (size_t)s->blocks / 8 + 1);
    if (!seen)
        return dimg_error(ENOMEM, "out of memory");
    uint64_t count = 0;
    for (uint32_t b = 0; b < s->map_loaded; b++) {
        uint32_t e = s->map[b];
        if (!entry_allocated(e))
            continue;
        if (e >= s->blocks) {
            fprintf(stderr, "ERROR: block index %" PRIu32 " too large, is %" PRIu32 "\n", b, e);
            out->corruptions++;
            continue;
        }
        count++;
        if (mark_used(seen, e)) {
            fprintf(stderr, "ERROR: block index %" PRIu32 " also used by %" PRIu32 "\n", e, e);
            out->corruptions++;
        }
    }
    /*
     * Entries the file does not hold read as 0: all use physical block 0.
     * qemu prints a line for each; a hostile header can claim half a
     * billion, so past a limit they are only counted.
     */
    uint64_t tail = s->blocks - s->map_loaded;
    if (tail > 0) {
        uint64_t dups = tail - (mark_used(seen, 0) ? 0 : 1);
        for (uint64_t i = 0; i < dups && i < VDI_CHECK_TAIL_LINES; i++)
            fprintf(stderr, "ERROR: block index 0 also used by 0\n");
        if (dups > VDI_CHECK_TAIL_LINES)
            fprintf(stderr, "ERROR: block index 0 also used by 0 (%" PRIu64 " more times)\n",
                    dups - VDI_CHECK_TAIL_LINES);
        count += tail;
        out->corruptions += (int64_t)dups;
    }
    free(seen);
    if (count != s->allocated) {
        fprintf(stderr, "ERROR: allocated blocks mismatch, is %" PRIu64 ", should be %" PRIu32
                "\n", count, s->allocated);
        out->corruptions++;
    }
    return 0;
}

/* ---- create ---------------------------------------------------------- */

static const struct dimg_optdesc vdi_create_opts[] = {
    { "size", DIMG_OPT_SIZE, "Virtual disk size", NULL },
    { "static", DIMG_OPT_BOOL, "VDI static (pre-allocated) image", NULL },
    { NULL, 0, NULL, NULL },
};

/* An unknown preallocation mode is refused before the file exists. */
static int
vdi_check_create(const struct dimg_create_args *args)
{
    const char *pa = opts_get(args->opts, "preallocation");
    if (pa && dimg_prealloc_parse(pa) < 0)
        return dimg_error(EINVAL, "invalid parameter value: %s", pa);
    return 0;
}

/* qemu-img's order: size static [nocow] [preallocation] [extent_size_hint]. */
static char *
vdi_describe_create(const struct dimg_create_args *args)
{
    struct strbuf sb = { 0 };
    const char *v = opts_get(args->opts, "static");
    uint64_t hint;
    sb_append(&sb, "size=%" PRIu64 " static=%s", args->size, v ? v : "off");
    if ((v = opts_get(args->opts, "nocow")))
        sb_append(&sb, " nocow=%s", v);
    if ((v = opts_get(args->opts, "preallocation")))
        sb_append(&sb, " preallocation=%s", v);
    if (opts_get_size(args->opts, "extent_size_hint", 0, &hint) == 0)
        sb_append(&sb, " extent_size_hint=%" PRIu64, hint);
    return sb.s;
}

/* A random version-4 UUID in the mixed-endian GUID layout VDI stores. */
static void
make_uuid(uint8_t *u)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, u, 16) : -1;
    if (fd >= 0)
        close(fd);
    if (got != 16) {
        /* No randomness: still unique enough per process and time. */
        for (int i = 0; i < 16; i++)
            u[i] = (uint8_t)rand();
    }
    u[7] = (uint8_t)((u[7] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
}

/* Write the block map: all unallocated, or identity for a static image. */
static int
write_map(struct dimg_io *file, uint32_t blocks, bool is_static, uint64_t map_bytes)
{
    const size_t chunk_entries = 1u << 18;
    uint8_t *buf = malloc(chunk_entries * 4);
    if (!buf)
        return dimg_error(ENOMEM, "out of memory");
    int r = 0;
    for (uint64_t first = 0; r == 0 && first * 4 < map_bytes; first += chunk_entries) {
        size_t bytes = (size_t)min_u64(chunk_entries * 4, map_bytes - first * 4);
        memset(buf, 0, bytes);
        for (size_t i = 0; i < bytes / 4 && first + i < blocks; i++)
            store_le32(buf + i * 4, is_static ? (uint32_t)(first + i) : VDI_UNALLOCATED);
        r = io_pwrite(file, buf, bytes, 0x200 + first * 4);
    }
    free(buf);
    return r;
}

static int
vdi_create(struct dimg_io *file, const struct dimg_create_args *args)
{
    const char *pa = opts_get(args->opts, "preallocation");
    if (pa && dimg_prealloc_parse(pa) == DIMG_PREALLOC_METADATA)
        return dimg_error(ENOTSUP, "Unsupported preallocation mode: metadata");
    bool is_static = false;
    opts_get_bool(args->opts, "static", false, &is_static);
    uint64_t size = round_up_u64(min_u64(args->size, UINT64_MAX - VDI_SECTOR), VDI_SECTOR);
    if (size > VDI_MAX_SIZE)
        return dimg_error(ENOTSUP, "Unsupported VDI image size (size is 0x%" PRIx64
                          ", max supported is 0x%" PRIx64 ")", size, VDI_MAX_SIZE);
    uint32_t blocks = (uint32_t)((size + VDI_BLOCK_SIZE - 1) / VDI_BLOCK_SIZE);
    uint64_t map_bytes = round_up_u64((uint64_t)blocks * 4, VDI_SECTOR);
    uint64_t data_off = 0x200 + map_bytes;

    uint8_t h[VDI_HEADER_BYTES] = { 0 };
    memcpy(h, VDI_TEXT, sizeof VDI_TEXT - 1);
    store_le32(h + H_SIGNATURE, VDI_SIGNATURE);
    store_le32(h + H_VERSION, VDI_VERSION_1_1);
    store_le32(h + H_HEADER_SIZE, 0x180);
    store_le32(h + H_TYPE, is_static ? VDI_TYPE_STATIC : VDI_TYPE_DYNAMIC);
    store_le32(h + H_OFF_BMAP, 0x200);
    store_le32(h + H_OFF_DATA, (uint32_t)data_off);
    store_le32(h + H_SECTOR_SIZE, VDI_SECTOR);
    store_le64(h + H_DISK_SIZE, size);
    store_le32(h + H_BLOCK_SIZE, VDI_BLOCK_SIZE);
    store_le32(h + H_BLOCKS, blocks);
    store_le32(h + H_ALLOCATED, is_static ? blocks : 0);
    make_uuid(h + H_UUID_IMAGE);
    make_uuid(h + H_UUID_SNAP);

    int r = io_pwrite(file, h, sizeof h, 0);
    if (r == 0)
        r = write_map(file, blocks, is_static, map_bytes);
    if (r == 0 && is_static) {
        /* Sparse, like qemu-img's: the data area is a hole until written. */
        uint64_t end = data_off + (uint64_t)blocks * VDI_BLOCK_SIZE;
        r = io_truncate(file, end, DIMG_PREALLOC_OFF);
        if (r == -EFBIG)
            r = dimg_error(EFBIG, "The image size is too large for file format 'vdi'");
    }
    return r;
}

const struct dimg_driver dimg_drv_vdi = {
    .name = "vdi",
    .flags = DIMG_DRV_CREATE | DIMG_DRV_RESIZE_LOCK,
    .state_size = sizeof(struct vdi_state),
    .create_opts = vdi_create_opts,
    .probe = vdi_probe,
    .open = vdi_open,
    .close = vdi_close,
    .check_create = vdi_check_create,
    .create = vdi_create,
    .describe_create = vdi_describe_create,
    .pread = vdi_pread,
    .pwrite = vdi_pwrite,
    .flush = vdi_flush,
    .block_status = vdi_block_status,
    .check = vdi_check,
};
