/*
 * The image handle: open (probe, lock, driver open, backing chain), close, and
 * the public I/O calls.  Bounds checks and read-only enforcement live here so
 * drivers can trust their arguments.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/internal.h"
#include "drv/drv.h"
#include "util/checked.h"

#define PROBE_BYTES 2048

/* The lock set qemu-img uses for each kind of opener (specs/locking-notes.md). */
static void
lock_set(const struct dimg_driver *drv, unsigned flags, unsigned *perm, unsigned *shared)
{
    if (flags & DIMG_OPEN_RDWR) {
        *perm = IO_PERM_CONSISTENT_READ | IO_PERM_WRITE;
        *shared = IO_PERM_CONSISTENT_READ | IO_PERM_WRITE_UNCHANGED;
        if ((drv->flags & DIMG_DRV_RESIZE_LOCK) || (flags & DIMG_OPEN_RESIZE))
            *perm |= IO_PERM_RESIZE;
        if (!(drv->flags & DIMG_DRV_RESIZE_LOCK))
            *shared = IO_PERM_ALL; /* a raw writer shares everything, as qemu's does,
                                    * even resize (strace: holds 100, 101, 103 only) */
        return;
    }
    *perm = (flags & DIMG_OPEN_INFO_ONLY) ? 0 : IO_PERM_CONSISTENT_READ;
    if ((flags & DIMG_OPEN_FORCE_SHARE) ||
        (!(drv->flags & DIMG_DRV_RESIZE_LOCK) && !(flags & DIMG_OPEN_DENY_WRITE)))
        /* qemu-img info/map/compare/bench on raw share everything too (strace:
         * info takes no lock, map holds only byte 100); only a convert source
         * additionally denies write and resize (201, 203). */
        *shared = IO_PERM_ALL;
    else
        *shared = IO_PERM_CONSISTENT_READ | IO_PERM_WRITE_UNCHANGED;
}

static void
image_free(struct dimg_image *img)
{
    if (!img)
        return;
    if (img->backing)
        dimg_close(img->backing);
    io_close(img->file);
    free(img->state);
    free(img->filename);
    free(img->backing_filename);
    free(img->backing_format);
    free(img->full_backing_filename);
    free(img);
}

/* The files of the chain being opened on this thread, by depth, to catch loops. */
static _Thread_local struct {
    dev_t dev;
    ino_t ino;
} chain_files[DIMG_MAX_CHAIN_DEPTH];

static int
open_backing(struct dimg_image *img, int depth)
{
    if (!img->backing_filename || !img->backing_filename[0] || (img->flags & DIMG_OPEN_NO_BACKING))
        return 0;
    free(img->full_backing_filename);
    img->full_backing_filename = backing_resolve(img->filename, img->backing_filename);
    if (!img->full_backing_filename)
        return dimg_error(ENOMEM, "out of memory");
    /* A chain that comes back to one of its own files would never end (qemu-img hangs). */
    struct stat st;
    if (depth < DIMG_MAX_CHAIN_DEPTH && stat(img->filename, &st) == 0) {
        chain_files[depth].dev = st.st_dev;
        chain_files[depth].ino = st.st_ino;
    }
    if (stat(img->full_backing_filename, &st) == 0) {
        for (int i = 0; i <= depth && i < DIMG_MAX_CHAIN_DEPTH; i++)
            if (chain_files[i].dev == st.st_dev && chain_files[i].ino == st.st_ino)
                return dimg_error(ELOOP, "Backing file '%s' creates an infinite loop.",
                                  img->backing_filename);
    }
    if (depth + 1 >= DIMG_MAX_CHAIN_DEPTH)
        return dimg_error(ELOOP, "Backing chain of '%s' is longer than %d images",
                          img->filename, DIMG_MAX_CHAIN_DEPTH);
    unsigned bflags = (img->flags & (DIMG_OPEN_NO_LOCK | DIMG_OPEN_FORCE_SHARE)) |
                      (img->flags & DIMG_OPEN_CACHE(0xf));
    struct dimg_image *b = image_open(img->full_backing_filename, img->backing_format, bflags,
                                      depth + 1);
    if (!b) {
        /* One prefix for the whole chain, not one per level. */
        if (dimg_get_errno() == ELOOP || depth > 0)
            return -dimg_get_errno();
        return dimg_error_prefix("Could not open backing file: ");
    }
    img->backing = b;
    return 0;
}

/*
 * Open an image on an io the caller opened (ownership passes to the image,
 * also on failure): probe, lock, driver open, backing chain.  Fuzzers use it
 * with memory-backed ios.
 */
struct dimg_image *
image_open_io(struct dimg_io *io, const char *filename, const char *format, unsigned flags,
              int depth)
{
    const struct dimg_driver *drv = NULL;
    struct dimg_image *img = calloc(1, sizeof *img);
    if (!img || !(img->filename = strdup(filename))) {
        free(img);
        io_close(io);
        dimg_error(ENOMEM, "out of memory");
        return NULL;
    }
    img->file = io;
    img->flags = flags;
    img->writable = flags & DIMG_OPEN_RDWR;
    img->chain_depth = depth;
    if (format) {
        drv = driver_find(format);
        if (!drv) {
            dimg_error(EINVAL, "Unknown driver '%s'", format);
            goto fail;
        }
    } else {
        uint8_t head[PROBE_BYTES];
        int64_t fsize = io_get_size(img->file);
        if (fsize < 0 || io_pread(img->file, head, sizeof head, 0) < 0)
            goto fail;
        size_t n = fsize < (int64_t)sizeof head ? (size_t)fsize : sizeof head;
        drv = driver_probe(head, n, filename);
    }
    img->drv = drv;
    if (img->writable && (drv->flags & DIMG_DRV_READONLY)) {
        dimg_error(EROFS, "Driver '%s' can only be used for read-only devices", drv->name);
        goto fail;
    }

    /* -U for an info-only open takes no locks at all, as qemu-img info -U does. */
    bool no_lock = (flags & DIMG_OPEN_NO_LOCK) ||
                   ((flags & DIMG_OPEN_FORCE_SHARE) && (flags & DIMG_OPEN_INFO_ONLY));
    if (!no_lock) {
        unsigned perm, shared;
        lock_set(drv, flags, &perm, &shared);
        if (io_set_perm(img->file, perm, shared) < 0)
            goto fail;
    }

    if (drv->state_size) {
        img->state = calloc(1, drv->state_size);
        if (!img->state) {
            dimg_error(ENOMEM, "out of memory");
            goto fail;
        }
    }
    if (drv->open(img) < 0) {
        free(img->state);
        img->state = NULL;
        img->drv = NULL;
        goto fail;
    }
    if (open_backing(img, depth) < 0) {
        if (drv->close)
            drv->close(img);
        img->drv = NULL;
        goto fail;
    }
    return img;

fail:
    image_free(img);
    return NULL;
}

struct dimg_image *
image_open(const char *filename, const char *format, unsigned flags, int depth)
{
    if (format && !driver_find(format)) {
        dimg_error(EINVAL, "Unknown driver '%s'", format);
        return NULL;
    }
    if ((flags & DIMG_OPEN_FORCE_SHARE) && (flags & DIMG_OPEN_RDWR)) {
        dimg_error(EINVAL, "force-share=on can only be used with read-only images");
        return NULL;
    }
    struct io_file_params p = {
        .writable = flags & DIMG_OPEN_RDWR,
        .cache = DIMG_OPEN_CACHE_MODE(flags),
    };
    struct dimg_io *io;
    if (io_file_open(filename, &p, &io) < 0)
        return NULL;
    return image_open_io(io, filename, format, flags, depth);
}

DIMG_EXPORT dimg_image *
dimg_open(const char *filename, const char *format, unsigned flags)
{
    dimg_error_clear();
    if (!filename) {
        dimg_error(EINVAL, "no filename given");
        return NULL;
    }
    return image_open(filename, format, flags, 0);
}

DIMG_EXPORT int
dimg_close(dimg_image *img)
{
    if (!img)
        return 0;
    int r = 0;
    if (img->drv) {
        if (img->writable && img->drv->inactivate)
            r = img->drv->inactivate(img);
        if (img->writable) {
            int f = dimg_flush(img);
            r = r < 0 ? r : f;
        }
        if (img->drv->close)
            img->drv->close(img);
    }
    image_free(img);
    return r;
}

DIMG_EXPORT const char *
dimg_get_filename(const dimg_image *img)
{
    return img->filename;
}

DIMG_EXPORT const char *
dimg_get_format(const dimg_image *img)
{
    return img->drv->name;
}

DIMG_EXPORT uint64_t
dimg_get_size(const dimg_image *img)
{
    return img->size;
}

DIMG_EXPORT dimg_image *
dimg_get_backing(const dimg_image *img)
{
    return img->backing;
}

DIMG_EXPORT uint32_t
dimg_get_cluster_size(const dimg_image *img)
{
    return img->cluster_size;
}

DIMG_EXPORT const char *
dimg_get_data_filename(const dimg_image *img)
{
    return img->file->filename;
}

static int
check_request(const struct dimg_image *img, uint64_t off, uint64_t len, bool write)
{
    if (!range_within(off, len, img->size))
        return dimg_error(EINVAL, "%s: request at offset %llu length %llu is beyond the end (%llu)",
                          img->filename, (unsigned long long)off, (unsigned long long)len,
                          (unsigned long long)img->size);
    if (write && !img->writable)
        return dimg_error(EROFS, "%s: image is read-only", img->filename);
    return 0;
}

static int
unsupported(const struct dimg_image *img, const char *op)
{
    return dimg_error(ENOTSUP, "%s: %s not supported", img->drv->name, op);
}

DIMG_EXPORT int
dimg_pread(dimg_image *img, void *buf, size_t len, uint64_t off)
{
    int r = check_request(img, off, len, false);
    if (r < 0 || len == 0)
        return r;
    return img->drv->pread(img, buf, len, off);
}

DIMG_EXPORT int
dimg_pwrite(dimg_image *img, const void *buf, size_t len, uint64_t off)
{
    int r = check_request(img, off, len, true);
    if (r < 0 || len == 0)
        return r;
    if (!img->drv->pwrite)
        return unsupported(img, "write");
    return img->drv->pwrite(img, buf, len, off);
}

DIMG_EXPORT int
dimg_copy_range(dimg_image *src, uint64_t soff, dimg_image *dst, uint64_t doff, uint64_t len)
{
    int r = check_request(src, soff, len, false);
    if (r == 0)
        r = check_request(dst, doff, len, true);
    if (r < 0 || len == 0)
        return r;
    if (!(src->drv->flags & DIMG_DRV_LINEAR) || !(dst->drv->flags & DIMG_DRV_LINEAR) ||
        !src->file->ops->copy_range)
        return -ENOTSUP;
    /* The tail of a raw image past its file's end (sector rounding) reads as zeros. */
    int64_t fsize = io_get_size(src->file);
    if (fsize < 0 || soff + len > (uint64_t)fsize)
        return -ENOTSUP;
    return src->file->ops->copy_range(src->file, soff, dst->file, doff, len);
}

DIMG_EXPORT int
dimg_is_compressed_only(const dimg_image *img)
{
    return img->compressed_only;
}

DIMG_EXPORT int
dimg_write_compressed(dimg_image *img, const void *buf, size_t len, uint64_t off)
{
    int r = check_request(img, off, len, true);
    if (r < 0 || len == 0)
        return r;
    if (!img->drv->pwrite_compressed)
        return dimg_error(ENOTSUP, "Operation not supported for format '%s'", img->drv->name);
    return img->drv->pwrite_compressed(img, buf, len, off);
}

DIMG_EXPORT int
dimg_zero(dimg_image *img, uint64_t off, uint64_t len, unsigned flags)
{
    int r = check_request(img, off, len, true);
    if (r < 0 || len == 0)
        return r;
    if (img->drv->zero) {
        r = img->drv->zero(img, off, len, flags);
        if (r != -ENOTSUP)
            return r;
    }
    if (flags & DIMG_ZERO_NO_FALLBACK)
        return -ENOTSUP;
    /* Fallback: write zero buffers. */
    r = 0;
    size_t chunk = (size_t)min_u64(len, 1u << 20);
    void *zeros = calloc(1, chunk);
    if (!zeros)
        return dimg_error(ENOMEM, "out of memory");
    while (len > 0 && r >= 0) {
        size_t n = (size_t)min_u64(len, chunk);
        r = dimg_pwrite(img, zeros, n, off);
        off += n;
        len -= n;
    }
    free(zeros);
    return r < 0 ? r : 0;
}

DIMG_EXPORT int
dimg_discard(dimg_image *img, uint64_t off, uint64_t len)
{
    int r = check_request(img, off, len, true);
    if (r < 0 || len == 0 || !img->drv->discard)
        return r;
    return img->drv->discard(img, off, len);
}

DIMG_EXPORT int
dimg_flush(dimg_image *img)
{
    if (!img->writable)
        return 0;
    if (img->drv->flush)
        return img->drv->flush(img);
    return io_flush(img->file);
}

DIMG_EXPORT int
dimg_truncate(dimg_image *img, uint64_t size, enum dimg_prealloc prealloc, unsigned flags)
{
    if (!img->writable)
        return dimg_error(EROFS, "%s: image is read-only", img->filename);
    if (!img->drv->truncate)
        return dimg_error(ENOTSUP, "Image format driver does not support resize");
    if (size < img->size && !(flags & DIMG_TRUNCATE_SHRINK))
        return dimg_error(EINVAL,
                          "Use the --shrink option to perform a shrink operation.");
    return img->drv->truncate(img, size, prealloc, flags);
}

/*
 * Status of this image's chain at off.  A range the top layer leaves
 * unallocated is looked up in the backing file (depth + 1); past the end of a
 * shorter backing file, or with no backing file, it reads as zeros.
 */
DIMG_EXPORT int
dimg_block_status(dimg_image *img, uint64_t off, uint64_t len, struct dimg_extent *out)
{
    int r = check_request(img, off, len, false);
    if (r < 0)
        return r;
    if (len == 0)
        return dimg_error(EINVAL, "%s: empty block status request", img->filename);
    memset(out, 0, sizeof *out);
    out->offset = off;
    if (!img->drv->block_status) {
        out->length = len;
        out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_DATA;
        return 0;
    }
    r = img->drv->block_status(img, off, len, out);
    if (r < 0)
        return r;
    out->offset = off;
    if (out->length == 0 || out->length > len)
        return dimg_error(EIO, "%s: driver returned a bad block status length", img->filename);
    if (out->flags & DIMG_EXTENT_ALLOCATED) {
        if ((out->flags & DIMG_EXTENT_OFFSET) && !out->file_owner)
            out->file_owner = img;
        return 0;
    }
    /* Not allocated here, but host space may be reserved for it (an
     * unallocated subcluster of an allocated qcow2 cluster): qemu shows that
     * offset when nothing below covers the run. */
    unsigned reserved = out->flags & DIMG_EXTENT_OFFSET;
    if (reserved && !out->file_owner)
        out->file_owner = img;
    struct dimg_image *b = img->backing;
    if (!b) {
        out->flags = DIMG_EXTENT_ZERO | reserved;
        return 0;
    }
    if (off >= b->size) {
        /* Past the end of the backing file: qemu reports it at this layer
         * (depth 0 here), not at the backing file's. */
        out->flags = DIMG_EXTENT_ZERO | reserved;
        return 0;
    }
    uint64_t sub_len = min_u64(out->length, b->size - off);
    r = dimg_block_status(b, off, sub_len, out);
    if (r < 0)
        return r;
    out->depth++;
    return 0;
}

/* Read from the backing chain for a range the top layer does not have. */
int
image_read_backing(struct dimg_image *img, void *buf, size_t len, uint64_t off)
{
    struct dimg_image *b = img->backing;
    size_t have = 0;
    if (b && off < b->size) {
        have = (size_t)min_u64(len, b->size - off);
        int r = dimg_pread(b, buf, have, off);
        if (r < 0)
            return r;
    }
    memset((uint8_t *)buf + have, 0, len - have);
    return 0;
}

DIMG_EXPORT int
dimg_cache_mode_parse(const char *name)
{
    static const struct {
        const char *name;
        enum dimg_cache_mode mode;
    } modes[] = {
        { "writeback", DIMG_CACHE_WRITEBACK },   { "none", DIMG_CACHE_NONE },
        { "off", DIMG_CACHE_NONE },              { "unsafe", DIMG_CACHE_UNSAFE },
        { "directsync", DIMG_CACHE_DIRECTSYNC }, { "writethrough", DIMG_CACHE_WRITETHROUGH },
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(name, modes[i].name) == 0)
            return (int)modes[i].mode;
    return -EINVAL;
}

DIMG_EXPORT int
dimg_prealloc_parse(const char *name)
{
    static const char *const names[] = { "off", "metadata", "falloc", "full" };
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -EINVAL;
}
