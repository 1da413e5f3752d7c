/*
 * The I/O layer: a base struct plus an ops table, so that local files,
 * memory buffers (fuzzers, unit tests) and later network backends plug in
 * the same way.  Every call returns 0 / a non-negative value or -errno with
 * the error recorded.
 */
#ifndef DIMG_IO_IO_H
#define DIMG_IO_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dimg/dimg.h"

struct dimg_io;

/* Host-level allocation status of a byte range. */
#define IO_STATUS_DATA 0x1u /* allocated, may hold data */
#define IO_STATUS_ZERO 0x2u /* a hole: reads as zeros */

struct dimg_io_ops {
    const char *name;
    /* Read exactly len bytes; bytes past end of file read as zeros. */
    int (*pread)(struct dimg_io *io, void *buf, size_t len, uint64_t off);
    int (*pwrite)(struct dimg_io *io, const void *buf, size_t len, uint64_t off);
    int (*flush)(struct dimg_io *io);
    int64_t (*get_size)(struct dimg_io *io);
    int (*truncate)(struct dimg_io *io, uint64_t size, enum dimg_prealloc prealloc);
    /* Reserve storage for [off, off + len), growing the file if it ends
     * before; never shrinks it.  NULL: only growth, without reserving. */
    int (*allocate)(struct dimg_io *io, uint64_t off, uint64_t len);
    /* Make a range read as zeros without writing them: -ENOTSUP if impossible. */
    int (*zero)(struct dimg_io *io, uint64_t off, uint64_t len, bool may_unmap);
    int (*discard)(struct dimg_io *io, uint64_t off, uint64_t len);
    /* Status of the run at off: sets *pnum (>0, <= len) and returns IO_STATUS_*. */
    int (*block_status)(struct dimg_io *io, uint64_t off, uint64_t len, uint64_t *pnum);
    /* Bytes allocated on the host (st_blocks * 512), or -errno. */
    int64_t (*allocated_size)(struct dimg_io *io);
    /* Copy from another io of the same type without passing data through
     * userspace; -ENOTSUP when not possible. */
    int (*copy_range)(struct dimg_io *src, uint64_t soff, struct dimg_io *dst, uint64_t doff,
                      uint64_t len);
    /* Take QEMU-compatible locks (see io_file_params); NULL when the
     * backend has no locking. */
    int (*set_perm)(struct dimg_io *io, unsigned perm, unsigned shared);
    void (*close)(struct dimg_io *io);
};

struct dimg_io {
    const struct dimg_io_ops *ops;
    char *filename;
    bool writable;
    enum dimg_cache_mode cache;
    uint32_t align;             /* required buffer/offset alignment (O_DIRECT), else 1 */
};

/* Lock permission bits, numbered as QEMU numbers them (byte 100+N / 200+N). */
#define IO_PERM_CONSISTENT_READ 0x1u
#define IO_PERM_WRITE           0x2u
#define IO_PERM_WRITE_UNCHANGED 0x4u
#define IO_PERM_RESIZE          0x8u
#define IO_PERM_ALL             0xfu

struct io_file_params {
    bool writable;
    bool create;             /* O_CREAT (never O_TRUNC: truncate after locking) */
    enum dimg_cache_mode cache;
    bool lock;               /* take QEMU-compatible locks */
    unsigned perm;           /* IO_PERM_* held */
    unsigned shared;         /* IO_PERM_* others may hold */
};

/* Open a local file or block device. */
int io_file_open(const char *filename, const struct io_file_params *p, struct dimg_io **out);
/* A read-only or writable view of a caller-owned buffer (fuzzers, unit tests). */
struct dimg_io *io_mem_open(const char *name, void *buf, size_t len, bool writable);
/* Its current contents (valid until the next write or close). */
const uint8_t *io_mem_data(struct dimg_io *io, size_t *len);

/* Thin wrappers that keep callers readable. */
static inline int
io_pread(struct dimg_io *io, void *buf, size_t len, uint64_t off)
{
    return io->ops->pread(io, buf, len, off);
}

static inline int
io_pwrite(struct dimg_io *io, const void *buf, size_t len, uint64_t off)
{
    return io->ops->pwrite(io, buf, len, off);
}

int io_flush(struct dimg_io *io);
int64_t io_get_size(struct dimg_io *io);
int io_truncate(struct dimg_io *io, uint64_t size, enum dimg_prealloc prealloc);
int io_allocate(struct dimg_io *io, uint64_t off, uint64_t len);
int io_zero(struct dimg_io *io, uint64_t off, uint64_t len, bool may_unmap);
/* io_zero, or where the file cannot zero ranges, zero bytes written. */
int io_zero_or_write(struct dimg_io *io, uint64_t off, uint64_t len, bool may_unmap);
int io_discard(struct dimg_io *io, uint64_t off, uint64_t len);
int io_block_status(struct dimg_io *io, uint64_t off, uint64_t len, uint64_t *pnum);
int64_t io_allocated_size(struct dimg_io *io);
void io_close(struct dimg_io *io);
int io_set_perm(struct dimg_io *io, unsigned perm, unsigned shared);
/* Write len zero bytes at off (fallback when io_zero is unsupported). */
int io_write_zeroes(struct dimg_io *io, uint64_t off, uint64_t len);

/* Buffers aligned for O_DIRECT (4096 bytes). */
void *io_alloc_buffer(size_t len);

#endif
