/*
 * Hosted sparse extents: header, grain directory and grain tables, reads,
 * writes that allocate grains at the end of the file, and compressed grains
 * (streamOptimized) with their markers.  The caller holds the image lock
 * except where noted.
 */
#include <errno.h>
#include <libdeflate.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "drv/vmdk/vmdk.h"
#include "util/checked.h"
#include "util/endian.h"

int
vmdk_sparse_header(struct vmdk_extent *e, const uint8_t *h, uint64_t *capacity,
                   uint64_t *desc_off, uint64_t *desc_size)
{
    if (load_le32(h) != VMDK4_MAGIC)
        return dimg_error(EINVAL, "Image not in VMDK format");
    e->version = load_le32(h + 4);
    e->flags = load_le32(h + 8);
    *capacity = load_le64(h + 12);
    uint64_t grain = load_le64(h + 20);
    *desc_off = load_le64(h + 28);
    *desc_size = load_le64(h + 36);
    e->num_gtes = load_le32(h + 44);
    uint64_t rgd = load_le64(h + 48);
    uint64_t gd = load_le64(h + 56);
    e->compress_alg = load_le16(h + 77);
    if (e->version > 3)
        return dimg_error(ENOTSUP, "Unsupported VMDK version %" PRIu32, e->version);
    if (grain == 0 || grain > VMDK_MAX_GRAIN_SECTORS)
        return dimg_error(EINVAL, "Invalid granularity, image may be corrupt");
    if (e->num_gtes == 0 || e->num_gtes > VMDK_MAX_GTES)
        return dimg_error(EINVAL, "L2 table size too big");
    if (*capacity > VMDK_MAX_BYTES / VMDK_SECTOR)
        return dimg_error(EFBIG, "Could not refresh total sector count: File too large");
    e->grain_bytes = (uint32_t)grain * VMDK_SECTOR;
    /* An unknown algorithm matters only where the flag claims compression. */
    if ((e->flags & VMDK4_FLAG_COMPRESS) && e->compress_alg > VMDK_COMPRESS_DEFLATE)
        return dimg_error(ENOTSUP, "Unsupported VMDK compression algorithm %u",
                          (unsigned)e->compress_alg);
    if (gd == VMDK_GD_AT_END) {
        e->gd_offset = gd;
        return 0;
    }
    if (gd > UINT64_MAX / VMDK_SECTOR || rgd > UINT64_MAX / VMDK_SECTOR)
        return dimg_error(EINVAL, "Invalid grain directory offset");
    /* Without the redundant-directory flag the single directory is at rgd's place. */
    e->gd_offset = gd * VMDK_SECTOR;
    e->rgd_offset = (e->flags & VMDK4_FLAG_RGD) ? rgd * VMDK_SECTOR : 0;
    return 0;
}

static int
load_dir(struct vmdk_extent *e, uint64_t off, uint32_t **out)
{
    size_t bytes = (size_t)e->gd_entries * 4;
    uint32_t *d = malloc(bytes ? bytes : 1);
    if (!d)
        return dimg_error(ENOMEM, "Could not allocate grain directory");
    int r = io_pread(e->file, d, bytes, off);
    if (r < 0) {
        free(d);
        return r;
    }
    for (uint32_t i = 0; i < e->gd_entries; i++)
        d[i] = load_le32(&d[i]);
    *out = d;
    return 0;
}

/* hdr: the first 512 bytes of the extent file. */
int
vmdk_sparse_open(struct vmdk_extent *e, const uint8_t *hdr)
{
    uint64_t cap, doff, dsize;
    int r = vmdk_sparse_header(e, hdr, &cap, &doff, &dsize);
    if (r < 0)
        return r;
    int64_t fsize = io_get_size(e->file);
    if (fsize < 0)
        return (int)fsize;
    if (e->gd_offset == VMDK_GD_AT_END) {
        /* streamOptimized written in one pass: the real header is the footer,
         * one sector before the end-of-stream marker. */
        uint8_t foot[VMDK_SECTOR];
        if (fsize < 3 * (int64_t)VMDK_SECTOR)
            return dimg_error(EINVAL, "Invalid footer");
        r = io_pread(e->file, foot, sizeof foot, (uint64_t)fsize - 2 * VMDK_SECTOR);
        if (r < 0)
            return r;
        if (load_le32(foot) != VMDK4_MAGIC)
            return dimg_error(EINVAL, "Invalid footer");
        r = vmdk_sparse_header(e, foot, &cap, &doff, &dsize);
        if (r < 0)
            return r;
        if (e->gd_offset == VMDK_GD_AT_END)
            return dimg_error(EINVAL, "Invalid footer");
    }
    e->length = cap * VMDK_SECTOR;
    uint64_t per_gt = (uint64_t)e->num_gtes * e->grain_bytes;
    uint64_t entries = (e->length + per_gt - 1) / per_gt;
    /* The directory must lie inside the file: bounds what is allocated. */
    uint64_t gd_end;
    if (entries > UINT32_MAX || ckd_add_u64(&gd_end, e->gd_offset, entries * 4) ||
        gd_end > (uint64_t)fsize)
        return dimg_error(EINVAL, "Grain directory lies beyond the end of the file");
    e->gd_entries = (uint32_t)entries;
    if (e->rgd_offset && (ckd_add_u64(&gd_end, e->rgd_offset, entries * 4) ||
                          gd_end > (uint64_t)fsize))
        e->rgd_offset = 0;
    r = load_dir(e, e->gd_offset, &e->gd);
    if (r == 0 && e->rgd_offset)
        r = load_dir(e, e->rgd_offset, &e->rgd);
    if (r < 0)
        return r;
    e->gt = malloc((size_t)e->num_gtes * 4);
    if (!e->gt)
        return dimg_error(ENOMEM, "out of memory");
    e->gt_index = -1;
    /* qemu appends plain grains at the file's end rounded up to a whole
     * grain; compressed grains follow each other sector by sector. */
    e->alloc_end = round_up_any((uint64_t)fsize,
                                vmdk_grains_compressed(e) ? VMDK_SECTOR : e->grain_bytes);
    return 0;
}

void
vmdk_sparse_free(struct vmdk_extent *e)
{
    free(e->gd);
    free(e->rgd);
    free(e->gt);
}

/*
 * The grain table entry for the grain holding extent offset off (0: none).
 * A COWD directory may be shorter than its capacity: there the entry is 0
 * and VMDK_GTE_BEYOND_GD is returned.
 */
static int
gte_get(struct vmdk_extent *e, uint64_t off, uint32_t *entry)
{
    uint64_t grain = off / e->grain_bytes;
    uint64_t gdi = grain / e->num_gtes;
    if (gdi >= e->gd_entries) {
        *entry = 0;
        if (e->cowd) /* held entries end where the file does; the rest read as 0 */
            return gdi < e->gd_slots ? 0 : VMDK_GTE_BEYOND_GD;
        return dimg_error(EINVAL, "Grain directory index out of range");
    }
    uint64_t gt_sector = e->gd[gdi];
    if (gt_sector == 0) {
        *entry = 0;
        return 0;
    }
    if ((int64_t)gdi != e->gt_index) {
        e->gt_index = -1;
        int r = io_pread(e->file, e->gt, (size_t)e->num_gtes * 4, gt_sector * VMDK_SECTOR);
        if (r < 0)
            return r;
        for (uint32_t i = 0; i < e->num_gtes; i++)
            e->gt[i] = load_le32(&e->gt[i]);
        e->gt_index = (int64_t)gdi;
    }
    *entry = e->gt[grain % e->num_gtes];
    return 0;
}

/* Point the grain at off to sector in both grain tables (data is written first). */
static int
gte_set(struct vmdk_extent *e, uint64_t off, uint32_t sector)
{
    uint64_t grain = off / e->grain_bytes;
    uint64_t gdi = grain / e->num_gtes;
    uint32_t idx = (uint32_t)(grain % e->num_gtes);
    uint8_t le[4];
    store_le32(le, sector);
    int r = 0;
    if (e->cowd)
        r = gdi < e->gd_entries && e->gd[gdi] ? vmdk_cowd_before_gte_write(e, gdi)
                                              : vmdk_cowd_new_gt(e, gdi);
    else if (e->gd[gdi] == 0)
        return dimg_error(ENOTSUP, "Could not write to '%s': grain table not allocated",
                          e->path);
    if (r < 0)
        return r;
    r = io_pwrite(e->file, le, 4, (uint64_t)e->gd[gdi] * VMDK_SECTOR + idx * 4u);
    if (r == 0 && e->rgd && e->rgd[gdi])
        r = io_pwrite(e->file, le, 4, (uint64_t)e->rgd[gdi] * VMDK_SECTOR + idx * 4u);
    if (r == 0 && e->gt_index == (int64_t)gdi)
        e->gt[idx] = sector;
    return r;
}

/* Decompress the grain whose data starts at sector into out (grain_bytes). */
static int
read_compressed(struct vmdk_extent *e, uint32_t sector, uint8_t *out)
{
    uint64_t off = (uint64_t)sector * VMDK_SECTOR;
    size_t cap = (size_t)e->grain_bytes * 2 + 1024;
    size_t clen = cap;
    if (e->flags & VMDK4_FLAG_MARKER) {
        uint8_t m[12];
        int r = io_pread(e->file, m, sizeof m, off);
        if (r < 0)
            return r;
        clen = load_le32(m + 8);
        if (clen == 0 || clen > cap)
            return dimg_error(EBADMSG, "Invalid compressed grain size %zu in '%s'", clen,
                              e->path);
        off += 12;
    }
    uint8_t *c = malloc(clen);
    if (!c)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pread(e->file, c, clen, off);
    if (r == 0) {
        uLongf n = e->grain_bytes;
        int z = uncompress(out, &n, c, (uLong)clen);
        if (z != Z_OK && !(z == Z_BUF_ERROR && n == e->grain_bytes) &&
            !((e->flags & VMDK4_FLAG_MARKER) == 0 && z == Z_DATA_ERROR && n > 0))
            r = dimg_error(EBADMSG, "Could not decompress grain at sector %" PRIu32 " of '%s'",
                           sector, e->path);
        else if (n < e->grain_bytes)
            memset(out + n, 0, e->grain_bytes - n);
    }
    free(c);
    return r;
}

int
vmdk_sparse_read(struct dimg_image *img, struct vmdk_extent *e, uint8_t *buf, size_t len,
                 uint64_t off)
{
    uint8_t *grain_buf = NULL;
    int r = 0;
    while (len > 0) {
        uint32_t in = (uint32_t)(off % e->grain_bytes);
        size_t n = (size_t)min_u64(len, e->grain_bytes - in);
        uint32_t gte = 0;
        r = gte_get(e, off, &gte);
        if (r < 0)
            goto out;
        /* beyond a COWD directory: read like an unallocated grain, as qemu does */
        if (gte == 0) {
            r = vmdk_cid_check_parent(img);
            if (r == 0)
                r = image_read_backing(img, buf, n, e->start + off);
        } else if (gte == VMDK_GTE_ZEROED && (e->flags & VMDK4_FLAG_ZERO_GRAIN)) {
            memset(buf, 0, n);
        } else if (vmdk_grains_compressed(e)) {
            if (!grain_buf && !(grain_buf = malloc(e->grain_bytes))) {
                r = dimg_error(ENOMEM, "out of memory");
                goto out;
            }
            r = read_compressed(e, gte, grain_buf);
            if (r == 0)
                memcpy(buf, grain_buf + in, n);
        } else {
            r = io_pread(e->file, buf, n, (uint64_t)gte * VMDK_SECTOR + in);
        }
        if (r < 0)
            goto out;
        buf += n;
        off += n;
        len -= n;
    }
out:
    free(grain_buf);
    return r;
}

int
vmdk_sparse_status(struct vmdk_extent *e, uint64_t off, uint64_t len, struct dimg_extent *out)
{
    uint32_t first;
    int r = gte_get(e, off, &first);
    if (r < 0)
        return r;
    if (r == VMDK_GTE_BEYOND_GD)
        return dimg_error(EIO, "Input/output error");
    bool zero = first == VMDK_GTE_ZEROED && (e->flags & VMDK4_FLAG_ZERO_GRAIN);
    uint64_t in = off % e->grain_bytes;
    uint64_t host = (uint64_t)first * VMDK_SECTOR + in;
    if (first == 0)
        out->flags = 0;
    else if (zero)
        out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_ZERO;
    else if (vmdk_grains_compressed(e))
        out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_DATA | DIMG_EXTENT_COMPRESSED;
    else
        out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_DATA | DIMG_EXTENT_OFFSET;
    out->host_offset = host;
    /* Extend over following grains of the same kind (data only when contiguous). */
    uint64_t run = e->grain_bytes - in;
    while (run < len) {
        uint32_t g = 0;
        r = gte_get(e, off + run, &g);
        if (r < 0)
            return r;
        if (r == VMDK_GTE_BEYOND_GD)
            break;
        bool same;
        if (first == 0 || zero || vmdk_grains_compressed(e))
            same = g == first;
        else
            same = g != 0 && !(g == VMDK_GTE_ZEROED && (e->flags & VMDK4_FLAG_ZERO_GRAIN)) &&
                   (uint64_t)g * VMDK_SECTOR == (uint64_t)first * VMDK_SECTOR + in + run;
        if (vmdk_grains_compressed(e) && first != 0 && !zero)
            same = false;
        if (!same)
            break;
        run += e->grain_bytes;
    }
    out->length = min_u64(run, len);
    return 0;
}

/* Write a whole new grain at the end of the file and point the table at it. */
static int
append_grain(struct vmdk_extent *e, uint64_t off, const uint8_t *data, size_t len)
{
    uint64_t at = e->alloc_end;
    if (at / VMDK_SECTOR > UINT32_MAX)
        return dimg_error(EFBIG, "Could not write to '%s': file too large for VMDK", e->path);
    int r = io_pwrite(e->file, data, len, at);
    if (r < 0)
        return r;
    e->alloc_end = round_up_u64(at + len, VMDK_SECTOR);
    return gte_set(e, off, (uint32_t)(at / VMDK_SECTOR));
}

/* The current content of the whole grain at goff (guest-relative to the extent). */
static int
grain_content(struct dimg_image *img, struct vmdk_extent *e, uint32_t gte, uint64_t goff,
              uint8_t *out)
{
    if (gte == VMDK_GTE_ZEROED && (e->flags & VMDK4_FLAG_ZERO_GRAIN)) {
        memset(out, 0, e->grain_bytes);
        return 0;
    }
    if (gte != 0)
        return vmdk_grains_compressed(e) ? read_compressed(e, gte, out)
                                : io_pread(e->file, out, e->grain_bytes,
                                           (uint64_t)gte * VMDK_SECTOR);
    uint64_t have = min_u64(e->grain_bytes, e->length - goff);
    memset(out + have, 0, e->grain_bytes - have);
    return image_read_backing(img, out, (size_t)have, e->start + goff);
}

/*
 * Grains are zlib streams (RFC 1950).  libdeflate level 6 gives about zlib's
 * size at well over its speed; compressors are kept per thread because
 * allocating one per grain costs more than compressing it.
 */
#define VMDK_DEFLATE_LEVEL 6

static pthread_key_t deflater_key;
static pthread_once_t deflater_once = PTHREAD_ONCE_INIT;

static void
deflater_free(void *p)
{
    libdeflate_free_compressor(p);
}

static void
deflater_key_init(void)
{
    pthread_key_create(&deflater_key, deflater_free);
}

static struct libdeflate_compressor *
thread_deflater(void)
{
    pthread_once(&deflater_once, deflater_key_init);
    struct libdeflate_compressor *c = pthread_getspecific(deflater_key);
    if (!c && (c = libdeflate_alloc_compressor(VMDK_DEFLATE_LEVEL)) &&
        pthread_setspecific(deflater_key, c) != 0) {
        libdeflate_free_compressor(c);
        c = NULL;
    }
    return c;
}

/* Compress a grain into a marker-prefixed record padded to a sector. */
static int
compress_grain(const struct vmdk_extent *e, const uint8_t *data, uint64_t goff, uint8_t **rec,
               size_t *rec_len)
{
    struct libdeflate_compressor *c = thread_deflater();
    if (!c)
        return dimg_error(ENOMEM, "out of memory");
    size_t bound = libdeflate_zlib_compress_bound(c, e->grain_bytes);
    size_t hdr = (e->flags & VMDK4_FLAG_MARKER) ? 12 : 0;
    uint8_t *b = calloc(1, round_up_u64(hdr + bound, VMDK_SECTOR));
    if (!b)
        return dimg_error(ENOMEM, "out of memory");
    size_t clen = libdeflate_zlib_compress(c, data, e->grain_bytes, b + hdr, bound);
    if (clen == 0) {
        free(b);
        return dimg_error(EIO, "Could not compress grain");
    }
    if (hdr) {
        store_le64(b, goff / VMDK_SECTOR);
        store_le32(b + 8, (uint32_t)clen);
    }
    *rec = b;
    *rec_len = round_up_u64(hdr + clen, VMDK_SECTOR);
    return 0;
}

int
vmdk_sparse_write(struct dimg_image *img, struct vmdk_extent *e, const uint8_t *buf, size_t len,
                  uint64_t off)
{
    uint8_t *grain = NULL;
    int r = 0;
    while (len > 0) {
        uint32_t in = (uint32_t)(off % e->grain_bytes);
        size_t n = (size_t)min_u64(len, e->grain_bytes - in);
        uint32_t gte = 0;
        r = gte_get(e, off, &gte);
        if (r == VMDK_GTE_BEYOND_GD)
            r = dimg_error(EINVAL, "Invalid argument");
        if (r < 0)
            goto out;
        bool zeroed = gte == VMDK_GTE_ZEROED && (e->flags & VMDK4_FLAG_ZERO_GRAIN);
        if (gte != 0 && !zeroed && !vmdk_grains_compressed(e)) {
            r = io_pwrite(e->file, buf, n, (uint64_t)gte * VMDK_SECTOR + in);
        } else {
            /* A new grain (or a compressed one, which cannot change in place):
             * merge with what the guest sees there now and append it.  qemu
             * allocates only while the parent is the one the image was made on. */
            if (gte == 0 || zeroed)
                r = vmdk_cid_check_parent(img);
            if (r < 0)
                goto out;
            if (!grain && !(grain = malloc(e->grain_bytes))) {
                r = dimg_error(ENOMEM, "out of memory");
                goto out;
            }
            uint64_t goff = off - in;
            if (n < e->grain_bytes)
                r = grain_content(img, e, gte, goff, grain);
            if (r < 0)
                goto out;
            memcpy(grain + in, buf, n);
            if (vmdk_grains_compressed(e)) {
                uint8_t *rec;
                size_t rec_len;
                r = compress_grain(e, grain, goff, &rec, &rec_len);
                if (r == 0) {
                    r = append_grain(e, goff, rec, rec_len);
                    free(rec);
                }
            } else {
                r = append_grain(e, goff, grain, e->grain_bytes);
            }
        }
        if (r == 0)
            r = vmdk_cid_touch(img);
        if (r < 0)
            goto out;
        buf += n;
        off += n;
        len -= n;
    }
out:
    free(grain);
    return r;
}

/*
 * Make [off, off + len) of the extent read as zeros.  With the zeroed-grain
 * flag a grain covered whole gets the zeroed-grain table entry, as qemu
 * writes it (its old data, if any, is leaked like qemu leaks it).  Other
 * parts get zero data, even where they read as zeros already: qemu writes
 * them too (its fallback for zero writes it cannot do cheaply), so a commit
 * or convert -n allocates the grains qemu-img's would.
 */
int
vmdk_sparse_zero(struct dimg_image *img, struct vmdk_extent *e, uint64_t off, uint64_t len)
{
    bool zero_grains = e->flags & VMDK4_FLAG_ZERO_GRAIN;
    uint8_t *zeros = NULL;
    int r = 0;
    while (len > 0 && r == 0) {
        uint32_t in = (uint32_t)(off % e->grain_bytes);
        uint64_t goff = off - in;
        uint64_t grain_len = min_u64(e->grain_bytes, e->length - goff);
        size_t n = (size_t)min_u64(len, grain_len - in);
        uint32_t gte = 0;
        r = gte_get(e, off, &gte);
        if (r == VMDK_GTE_BEYOND_GD)
            r = dimg_error(EINVAL, "Invalid argument");
        if (r < 0)
            break;
        if (zero_grains && n == grain_len) {
            if (gte != VMDK_GTE_ZEROED)
                r = gte_set(e, goff, VMDK_GTE_ZEROED);
        } else {
            if (!zeros && !(zeros = calloc(1, e->grain_bytes)))
                r = dimg_error(ENOMEM, "out of memory");
            else
                r = vmdk_sparse_write(img, e, zeros, n, off);
        }
        /* qemu writes even what changes nothing: a new CID all the same */
        if (r == 0)
            r = vmdk_cid_touch(img);
        off += n;
        len -= n;
    }
    free(zeros);
    return r;
}

/* Compression runs outside the lock so convert -c scales with threads. */
int
vmdk_pwrite_compressed(struct dimg_image *img, const void *buf, size_t len, uint64_t off)
{
    struct vmdk_state *s = dimg_image_state(img);
    struct vmdk_extent *e = NULL;
    for (size_t i = 0; i < s->n_extents; i++)
        if (off >= s->ext[i].start && off - s->ext[i].start < s->ext[i].length)
            e = &s->ext[i];
    /* qemu-img convert -c to an uncompressed subformat writes plain grains. */
    if (!e || e->type != VMDK_EXT_SPARSE || !vmdk_grains_compressed(e))
        return img->drv->pwrite(img, buf, len, off);
    uint64_t goff = off - e->start;
    if (goff % e->grain_bytes || len > e->grain_bytes)
        return dimg_error(EINVAL, "Compressed write not aligned to a grain");
    uint8_t *grain = calloc(1, e->grain_bytes);
    if (!grain)
        return dimg_error(ENOMEM, "out of memory");
    memcpy(grain, buf, len);
    uint8_t *rec = NULL;
    size_t rec_len;
    int r = compress_grain(e, grain, goff, &rec, &rec_len);
    free(grain);
    if (r < 0)
        return r;
    pthread_mutex_lock(&s->lock);
    uint32_t gte = 0;
    r = gte_get(e, goff, &gte);
    if (r >= 0)
        r = gte == 0 ? vmdk_cid_check_parent(img) : 0;
    if (r == 0)
        r = append_grain(e, goff, rec, rec_len);
    if (r == 0)
        r = vmdk_cid_touch(img);
    pthread_mutex_unlock(&s->lock);
    free(rec);
    return r;
}
