/* Generic I/O wrappers: turn missing ops into -ENOTSUP and provide fallbacks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "io/io.h"

int
io_flush(struct dimg_io *io)
{
    return io->ops->flush ? io->ops->flush(io) : 0;
}

int64_t
io_get_size(struct dimg_io *io)
{
    return io->ops->get_size(io);
}

int
io_truncate(struct dimg_io *io, uint64_t size, enum dimg_prealloc prealloc)
{
    if (!io->ops->truncate)
        return dimg_error(ENOTSUP, "%s: resize not supported", io->filename);
    return io->ops->truncate(io, size, prealloc);
}

int
io_allocate(struct dimg_io *io, uint64_t off, uint64_t len)
{
    if (io->ops->allocate)
        return io->ops->allocate(io, off, len);
    int64_t size = io_get_size(io);
    if (size < 0)
        return (int)size;
    return (uint64_t)size < off + len ? io_truncate(io, off + len, DIMG_PREALLOC_OFF) : 0;
}

int
io_zero(struct dimg_io *io, uint64_t off, uint64_t len, bool may_unmap)
{
    if (!io->ops->zero)
        return -ENOTSUP;
    return io->ops->zero(io, off, len, may_unmap);
}

int
io_zero_or_write(struct dimg_io *io, uint64_t off, uint64_t len, bool may_unmap)
{
    if (len == 0)
        return 0;
    int r = io_zero(io, off, len, may_unmap);
    return r == -ENOTSUP ? io_write_zeroes(io, off, len) : r;
}

int
io_discard(struct dimg_io *io, uint64_t off, uint64_t len)
{
    if (!io->ops->discard)
        return 0; /* discard is advisory */
    return io->ops->discard(io, off, len);
}

int
io_block_status(struct dimg_io *io, uint64_t off, uint64_t len, uint64_t *pnum)
{
    if (!io->ops->block_status) {
        *pnum = len;
        return IO_STATUS_DATA;
    }
    return io->ops->block_status(io, off, len, pnum);
}

int64_t
io_allocated_size(struct dimg_io *io)
{
    if (!io->ops->allocated_size)
        return -ENOTSUP;
    return io->ops->allocated_size(io);
}

int
io_set_perm(struct dimg_io *io, unsigned perm, unsigned shared)
{
    return io->ops->set_perm ? io->ops->set_perm(io, perm, shared) : 0;
}

void
io_close(struct dimg_io *io)
{
    if (io)
        io->ops->close(io);
}

void *
io_alloc_buffer(size_t len)
{
    void *p = NULL;
    if (posix_memalign(&p, 4096, len ? len : 1) != 0)
        return NULL;
    return p;
}

int
io_write_zeroes(struct dimg_io *io, uint64_t off, uint64_t len)
{
    size_t chunk = len < (1u << 20) ? (size_t)len : (1u << 20);
    void *zeros = io_alloc_buffer(chunk);
    if (!zeros)
        return dimg_error(ENOMEM, "out of memory");
    memset(zeros, 0, chunk);
    int r = 0;
    while (len > 0 && r >= 0) {
        size_t n = len < chunk ? (size_t)len : chunk;
        r = io_pwrite(io, zeros, n, off);
        off += n;
        len -= n;
    }
    free(zeros);
    return r < 0 ? r : 0;
}
