/*
 * Local files and block devices: pread/pwrite loops, cache modes (O_DIRECT
 * with bounce buffers for unaligned requests), fallocate-based zeroing and
 * discard, SEEK_DATA/SEEK_HOLE block status, and QEMU-compatible locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "io/io-lock.h"
#include "io/io.h"
#include "util/checked.h"

struct io_file {
    struct dimg_io base;
    int fd;
    bool is_blockdev;
    bool locked;
    bool no_punch, no_zero_range; /* learned at run time */
    unsigned perm, shared;
};

#define IO_FILE(io) ((struct io_file *)(io))

static int
file_pread_raw(struct io_file *f, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(f->fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return dimg_error_errno(errno, "Could not read '%s' at offset %llu", f->base.filename,
                                    (unsigned long long)off);
        }
        if (n == 0) { /* end of file: the rest reads as zeros */
            memset(p, 0, len);
            return 0;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static int
file_pwrite_raw(struct io_file *f, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(f->fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return dimg_error_errno(errno, "Could not write to '%s' at offset %llu",
                                    f->base.filename, (unsigned long long)off);
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

static bool
is_aligned(const struct io_file *f, const void *buf, size_t len, uint64_t off)
{
    uint32_t a = f->base.align;
    return a <= 1 || (((uintptr_t)buf | len | off) & (a - 1)) == 0;
}

/* O_DIRECT path for unaligned requests: widen to the alignment through a bounce buffer. */
static int
file_bounce(struct io_file *f, void *rbuf, const void *wbuf, size_t len, uint64_t off)
{
    uint32_t a = f->base.align;
    uint64_t start = round_down_u64(off, a);
    uint64_t end = round_up_u64(off + len, a);
    size_t blen = (size_t)(end - start);
    uint8_t *b = io_alloc_buffer(blen);
    if (!b)
        return dimg_error(ENOMEM, "out of memory");
    int r = file_pread_raw(f, b, blen, start);
    if (r == 0) {
        if (rbuf) {
            memcpy(rbuf, b + (off - start), len);
        } else {
            int64_t size = io_get_size(&f->base);
            memcpy(b + (off - start), wbuf, len);
            r = file_pwrite_raw(f, b, blen, start);
            /* Do not leave the file longer than the caller wrote it. */
            if (r == 0 && size >= 0 && end > (uint64_t)size && off + len > (uint64_t)size &&
                !f->is_blockdev && ftruncate(f->fd, (off_t)(off + len)) < 0)
                r = dimg_error_errno(errno, "Could not resize '%s'", f->base.filename);
        }
    }
    free(b);
    return r;
}

static int
file_pread(struct dimg_io *io, void *buf, size_t len, uint64_t off)
{
    struct io_file *f = IO_FILE(io);
    if (!is_aligned(f, buf, len, off))
        return file_bounce(f, buf, NULL, len, off);
    return file_pread_raw(f, buf, len, off);
}

static int
file_pwrite(struct dimg_io *io, const void *buf, size_t len, uint64_t off)
{
    struct io_file *f = IO_FILE(io);
    if (!is_aligned(f, buf, len, off))
        return file_bounce(f, NULL, buf, len, off);
    return file_pwrite_raw(f, buf, len, off);
}

static int
file_flush(struct dimg_io *io)
{
    struct io_file *f = IO_FILE(io);
    if (!io->writable || io->cache == DIMG_CACHE_UNSAFE)
        return 0;
    if (fdatasync(f->fd) < 0)
        return dimg_error_errno(errno, "Could not flush '%s'", io->filename);
    return 0;
}

static int64_t
file_get_size(struct dimg_io *io)
{
    struct io_file *f = IO_FILE(io);
    if (f->is_blockdev) {
        uint64_t size;
        if (ioctl(f->fd, BLKGETSIZE64, &size) < 0)
            return dimg_error_errno(errno, "Could not get size of '%s'", io->filename);
        return (int64_t)size;
    }
    struct stat st;
    if (fstat(f->fd, &st) < 0)
        return dimg_error_errno(errno, "Could not stat '%s'", io->filename);
    return st.st_size;
}

static int64_t
file_allocated_size(struct dimg_io *io)
{
    struct stat st;
    if (fstat(IO_FILE(io)->fd, &st) < 0)
        return dimg_error_errno(errno, "Could not stat '%s'", io->filename);
    return (int64_t)st.st_blocks * 512;
}

static int
file_truncate(struct dimg_io *io, uint64_t size, enum dimg_prealloc prealloc)
{
    struct io_file *f = IO_FILE(io);
    int64_t old = file_get_size(io);
    if (old < 0)
        return (int)old;
    if (size > INT64_MAX)
        return dimg_error(EFBIG, "Could not resize file: %s", strerror(EFBIG));
    if (f->is_blockdev) {
        if (size > (uint64_t)old)
            return dimg_error(ENOTSUP, "Cannot grow device files");
        return 0;
    }
    if (prealloc == DIMG_PREALLOC_FALLOC && size > (uint64_t)old) {
        int r = posix_fallocate(f->fd, old, (off_t)(size - (uint64_t)old));
        if (r != 0)
            return dimg_error(r, "Could not preallocate new data: %s", strerror(r));
        return 0;
    }
    if (ftruncate(f->fd, (off_t)size) < 0)
        return dimg_error(errno, "Could not resize file: %s", strerror(errno));
    if (prealloc == DIMG_PREALLOC_FULL && size > (uint64_t)old) {
        /* Write real zeros so the blocks are allocated, as "full" promises. */
        return io_write_zeroes(io, (uint64_t)old, size - (uint64_t)old);
    }
    return 0;
}

static int
file_allocate(struct dimg_io *io, uint64_t off, uint64_t len)
{
    struct io_file *f = IO_FILE(io);
    if (f->is_blockdev)
        return 0;
    if (off > INT64_MAX || len > INT64_MAX - off)
        return dimg_error(EFBIG, "Could not preallocate new data: %s", strerror(EFBIG));
    int r = posix_fallocate(f->fd, (off_t)off, (off_t)len);
    if (r != 0)
        return dimg_error(r, "Could not preallocate new data: %s", strerror(r));
    return 0;
}

static int
file_zero(struct dimg_io *io, uint64_t off, uint64_t len, bool may_unmap)
{
    struct io_file *f = IO_FILE(io);
    if (f->is_blockdev) {
        uint64_t range[2] = { off, len };
        if (ioctl(f->fd, BLKZEROOUT, range) == 0)
            return 0;
        return -ENOTSUP;
    }
    if (may_unmap && !f->no_punch) {
        if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0) {
            /* Punching does not extend the file; a zero write past EOF must. */
            int64_t size = file_get_size(io);
            if (size >= 0 && off + len > (uint64_t)size && ftruncate(f->fd, (off_t)(off + len)) < 0)
                return dimg_error_errno(errno, "Could not resize '%s'", io->filename);
            return 0;
        }
        if (errno != EOPNOTSUPP && errno != ENOSYS)
            return dimg_error_errno(errno, "Could not discard '%s'", io->filename);
        f->no_punch = true;
    }
    if (!f->no_zero_range) {
        if (fallocate(f->fd, FALLOC_FL_ZERO_RANGE, (off_t)off, (off_t)len) == 0)
            return 0;
        if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
            return dimg_error_errno(errno, "Could not zero '%s'", io->filename);
        f->no_zero_range = true;
    }
    return -ENOTSUP;
}

static int
file_discard(struct dimg_io *io, uint64_t off, uint64_t len)
{
    struct io_file *f = IO_FILE(io);
    if (f->is_blockdev) {
        uint64_t range[2] = { off, len };
        ioctl(f->fd, BLKDISCARD, range);
        return 0;
    }
    if (!f->no_punch &&
        fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0 &&
        (errno == EOPNOTSUPP || errno == ENOSYS))
        f->no_punch = true;
    return 0;
}

static int
file_block_status(struct dimg_io *io, uint64_t off, uint64_t len, uint64_t *pnum)
{
    struct io_file *f = IO_FILE(io);
    *pnum = len;
    if (f->is_blockdev)
        return IO_STATUS_DATA;
    off_t data = lseek(f->fd, (off_t)off, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) /* no data at or after off */
            return IO_STATUS_ZERO;
        return IO_STATUS_DATA; /* SEEK_DATA unsupported: everything is data */
    }
    if ((uint64_t)data > off) {
        *pnum = min_u64(len, (uint64_t)data - off);
        return IO_STATUS_ZERO;
    }
    off_t hole = lseek(f->fd, (off_t)off, SEEK_HOLE);
    if (hole < 0 || (uint64_t)hole <= off)
        return IO_STATUS_DATA;
    *pnum = min_u64(len, (uint64_t)hole - off);
    return IO_STATUS_DATA;
}

static int
file_copy_range(struct dimg_io *src, uint64_t soff, struct dimg_io *dst, uint64_t doff,
                uint64_t len)
{
    if (src->ops != dst->ops)
        return -ENOTSUP;
    int sfd = IO_FILE(src)->fd, dfd = IO_FILE(dst)->fd;
    while (len > 0) {
        loff_t so = (loff_t)soff, dof = (loff_t)doff;
        ssize_t n = copy_file_range(sfd, &so, dfd, &dof, (size_t)min_u64(len, 1u << 30), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)
                return -ENOTSUP;
            return dimg_error_errno(errno, "Could not copy to '%s'", dst->filename);
        }
        if (n == 0)
            return -ENOTSUP; /* source shorter than expected */
        soff += (uint64_t)n;
        doff += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 0;
}

static int
file_set_perm(struct dimg_io *io, unsigned perm, unsigned shared)
{
    struct io_file *f = IO_FILE(io);
    if (f->locked)
        io_lock_release(f->fd, f->perm, f->shared);
    f->locked = false;
    int r = io_lock_acquire(f->fd, io->filename, perm, shared);
    if (r < 0)
        return r;
    f->locked = true;
    f->perm = perm;
    f->shared = shared;
    return 0;
}

static void
file_close(struct dimg_io *io)
{
    struct io_file *f = IO_FILE(io);
    if (f->locked)
        io_lock_release(f->fd, f->perm, f->shared);
    close(f->fd);
    free(io->filename);
    free(f);
}

static const struct dimg_io_ops file_ops = {
    .name = "file",
    .pread = file_pread,
    .pwrite = file_pwrite,
    .flush = file_flush,
    .get_size = file_get_size,
    .truncate = file_truncate,
    .allocate = file_allocate,
    .zero = file_zero,
    .discard = file_discard,
    .block_status = file_block_status,
    .allocated_size = file_allocated_size,
    .copy_range = file_copy_range,
    .set_perm = file_set_perm,
    .close = file_close,
};

int
io_file_open(const char *filename, const struct io_file_params *p, struct dimg_io **out)
{
    int oflags = (p->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    if (p->create)
        oflags |= O_CREAT;
    if (p->cache == DIMG_CACHE_NONE || p->cache == DIMG_CACHE_DIRECTSYNC)
        oflags |= O_DIRECT;
    if (p->cache == DIMG_CACHE_DIRECTSYNC || p->cache == DIMG_CACHE_WRITETHROUGH)
        oflags |= O_DSYNC;

    int fd = open(filename, oflags, 0644);
    if (fd < 0 && errno == EINVAL && (oflags & O_DIRECT))
        return dimg_error(EINVAL, "Could not open '%s': filesystem does not support O_DIRECT",
                          filename);
    if (fd < 0)
        return dimg_error_errno(errno, p->create ? "Could not create '%s'" : "Could not open '%s'",
                                filename);

    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return dimg_error_errno(e, "Could not stat '%s'", filename);
    }
    /* (create goes on like qemu-img: it fails at the resize, "Could not resize file") */
    if (!p->create && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        close(fd);
        return dimg_error(EINVAL, "'file' driver requires '%s' to be a regular file", filename);
    }

    struct io_file *f = calloc(1, sizeof *f);
    if (!f || !(f->base.filename = strdup(filename))) {
        free(f);
        close(fd);
        return dimg_error(ENOMEM, "out of memory");
    }
    f->base.ops = &file_ops;
    f->base.writable = p->writable;
    f->base.cache = p->cache;
    f->base.align = (oflags & O_DIRECT) ? 4096 : 1;
    f->fd = fd;
    f->is_blockdev = S_ISBLK(st.st_mode);
    if (p->lock) {
        int r = file_set_perm(&f->base, p->perm, p->shared);
        if (r < 0) {
            file_close(&f->base);
            return r;
        }
    }
    *out = &f->base;
    return 0;
}
