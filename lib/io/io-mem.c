/* A memory-backed io for fuzzers and unit tests; grows on writes past the end. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "io/io.h"

/* Writes beyond this size fail, so a hostile image cannot make a fuzzer allocate without bound. */
#define MEM_MAX_SIZE (256u << 20)

struct io_mem {
    struct dimg_io base;
    uint8_t *buf;
    size_t len, cap;
};

#define IO_MEM(io) ((struct io_mem *)(io))

static int
mem_pread(struct dimg_io *io, void *buf, size_t len, uint64_t off)
{
    struct io_mem *m = IO_MEM(io);
    size_t avail = off < m->len ? m->len - (size_t)off : 0;
    size_t n = len < avail ? len : avail;
    if (n)
        memcpy(buf, m->buf + off, n);
    memset((uint8_t *)buf + n, 0, len - n);
    return 0;
}

static int
mem_resize(struct io_mem *m, uint64_t size)
{
    if (size > MEM_MAX_SIZE)
        return dimg_error(EFBIG, "%s: memory image larger than %u bytes", m->base.filename,
                          MEM_MAX_SIZE);
    if (size > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < size)
            cap *= 2;
        uint8_t *nb = realloc(m->buf, cap);
        if (!nb)
            return dimg_error(ENOMEM, "out of memory");
        m->buf = nb;
        m->cap = cap;
    }
    if (size > m->len)
        memset(m->buf + m->len, 0, (size_t)size - m->len);
    m->len = (size_t)size;
    return 0;
}

static int
mem_pwrite(struct dimg_io *io, const void *buf, size_t len, uint64_t off)
{
    struct io_mem *m = IO_MEM(io);
    if (!io->writable)
        return dimg_error(EROFS, "%s: read-only", io->filename);
    if (off > MEM_MAX_SIZE || len > MEM_MAX_SIZE - off) /* also keeps off + len from wrapping */
        return dimg_error(EFBIG, "%s: memory image larger than %u bytes", io->filename,
                          MEM_MAX_SIZE);
    if (off + len > m->len) {
        int r = mem_resize(m, off + len);
        if (r < 0)
            return r;
    }
    memcpy(m->buf + off, buf, len);
    return 0;
}

static int64_t
mem_get_size(struct dimg_io *io)
{
    return (int64_t)IO_MEM(io)->len;
}

static int
mem_truncate(struct dimg_io *io, uint64_t size, enum dimg_prealloc prealloc)
{
    (void)prealloc;
    if (!io->writable)
        return dimg_error(EROFS, "%s: read-only", io->filename);
    return mem_resize(IO_MEM(io), size);
}

static int64_t
mem_allocated_size(struct dimg_io *io)
{
    return (int64_t)IO_MEM(io)->len;
}

static void
mem_close(struct dimg_io *io)
{
    struct io_mem *m = IO_MEM(io);
    free(m->buf);
    free(io->filename);
    free(m);
}

static const struct dimg_io_ops mem_ops = {
    .name = "mem",
    .pread = mem_pread,
    .pwrite = mem_pwrite,
    .get_size = mem_get_size,
    .truncate = mem_truncate,
    .allocated_size = mem_allocated_size,
    .close = mem_close,
};

struct dimg_io *
io_mem_open(const char *name, void *buf, size_t len, bool writable)
{
    struct io_mem *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->base.ops = &mem_ops;
    m->base.filename = strdup(name);
    m->base.writable = writable;
    m->base.align = 1;
    m->buf = malloc(len ? len : 1);
    if (!m->base.filename || !m->buf) {
        free(m->base.filename);
        free(m->buf);
        free(m);
        return NULL;
    }
    if (len)
        memcpy(m->buf, buf, len);
    m->len = m->cap = len;
    return &m->base;
}

const uint8_t *
io_mem_data(struct dimg_io *io, size_t *len)
{
    *len = IO_MEM(io)->len;
    return IO_MEM(io)->buf;
}
