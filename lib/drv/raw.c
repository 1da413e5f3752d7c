/* raw: the image is the file.  Bids lowest when probing, as it accepts anything. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/drv.h"
#include "util/checked.h"

static const struct dimg_optdesc raw_create_opts[] = {
    { "size", DIMG_OPT_SIZE, "Virtual disk size", NULL },
    { NULL, 0, NULL, NULL },
};

static int
raw_probe(const uint8_t *head, size_t len, const char *filename)
{
    (void)head;
    (void)len;
    (void)filename;
    return 1;
}

static int
raw_open(struct dimg_image *img)
{
    int64_t size = io_get_size(img->file);
    if (size < 0)
        return (int)size;
    /* qemu counts sizes in whole 512-byte sectors: a 1000-byte file is a
     * 1024-byte image whose tail past the end of the file reads as zeros. */
    img->size = round_up_u64((uint64_t)size, 512);
    return 0;
}

static int
raw_pread(struct dimg_image *img, void *buf, size_t len, uint64_t off)
{
    return io_pread(img->file, buf, len, off);
}

static int
raw_pwrite(struct dimg_image *img, const void *buf, size_t len, uint64_t off)
{
    return io_pwrite(img->file, buf, len, off);
}

static int
raw_zero(struct dimg_image *img, uint64_t off, uint64_t len, unsigned flags)
{
    return io_zero(img->file, off, len, flags & DIMG_ZERO_MAY_UNMAP);
}

static int
raw_discard(struct dimg_image *img, uint64_t off, uint64_t len)
{
    return io_discard(img->file, off, len);
}

static int
raw_flush(struct dimg_image *img)
{
    return io_flush(img->file);
}

static int
raw_block_status(struct dimg_image *img, uint64_t off, uint64_t len, struct dimg_extent *out)
{
    uint64_t pnum;
    int st = io_block_status(img->file, off, len, &pnum);
    if (st < 0)
        return st;
    out->length = pnum;
    out->host_offset = off;
    out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_OFFSET |
                 ((st & IO_STATUS_ZERO) ? DIMG_EXTENT_ZERO : DIMG_EXTENT_DATA);
    return 0;
}

static int
raw_truncate(struct dimg_image *img, uint64_t size, enum dimg_prealloc prealloc, unsigned flags)
{
    (void)flags;
    if (prealloc == DIMG_PREALLOC_METADATA)
        return dimg_error(ENOTSUP, "Unsupported preallocation mode: metadata");
    int r = io_truncate(img->file, size, prealloc);
    if (r < 0)
        return r;
    img->size = size;
    return 0;
}

/* qemu-img rounds raw images up to whole 512-byte sectors. */
static uint64_t
raw_file_size(uint64_t size)
{
    return round_up_u64(size, 512);
}

static int
raw_create_prealloc(const struct dimg_create_args *args, enum dimg_prealloc *out)
{
    const char *pa = opts_get(args->opts, "preallocation");
    *out = DIMG_PREALLOC_OFF;
    if (!pa)
        return 0;
    int m = dimg_prealloc_parse(pa);
    if (m < 0)
        return dimg_error(EINVAL, "invalid parameter value: %s", pa);
    if (m == DIMG_PREALLOC_METADATA)
        return dimg_error(ENOTSUP, "Unsupported preallocation mode: metadata");
    *out = (enum dimg_prealloc)m;
    return 0;
}

/* An unknown mode is refused before the file exists; "metadata" only once
 * the file has been created, as qemu-img does. */
static int
raw_check_create(const struct dimg_create_args *args)
{
    const char *pa = opts_get(args->opts, "preallocation");
    if (pa && dimg_prealloc_parse(pa) < 0)
        return dimg_error(EINVAL, "invalid parameter value: %s", pa);
    return 0;
}

static int
raw_create(struct dimg_io *file, const struct dimg_create_args *args)
{
    enum dimg_prealloc prealloc;
    int r = raw_create_prealloc(args, &prealloc);
    if (r < 0)
        return r;
    uint64_t size = raw_file_size(args->size);
    if (size > INT64_MAX)
        return dimg_error(EFBIG, "Could not resize file: %s", strerror(EINVAL));
    r = io_truncate(file, size, prealloc);
    if (r < 0)
        return r;
    /* Like qemu, allocate the first block so that later O_DIRECT alignment
     * probing sees real data rather than a hole. */
    if (prealloc == DIMG_PREALLOC_OFF && size > 0)
        r = io_write_zeroes(file, 0, min_u64(size, 4096));
    return r;
}

/* qemu-img's order for raw: size, nocow, preallocation, extent_size_hint. */
static char *
raw_describe_create(const struct dimg_create_args *args)
{
    struct strbuf sb = { 0 };
    const char *v;
    uint64_t hint;
    sb_append(&sb, "size=%" PRIu64, args->size);
    if ((v = opts_get(args->opts, "nocow")))
        sb_append(&sb, " nocow=%s", v);
    if ((v = opts_get(args->opts, "preallocation")))
        sb_append(&sb, " preallocation=%s", v);
    if (opts_get_size(args->opts, "extent_size_hint", 0, &hint) == 0)
        sb_append(&sb, " extent_size_hint=%" PRIu64, hint);
    return sb.s;
}

/* A raw copy is as large as the disk whatever the source holds (holes, zeros
 * or data): qemu-img measure gives the virtual size rounded up to whole
 * sectors as both the required and the fully allocated size. */
static int
raw_measure(const struct dimg_opts *opts, uint64_t size, struct dimg_image *src,
            struct dimg_measure *out)
{
    (void)opts;
    (void)src;
    out->required = raw_file_size(size);
    out->fully_allocated = out->required;
    return 0;
}

const struct dimg_driver dimg_drv_raw = {
    .name = "raw",
    .flags = DIMG_DRV_CREATE | DIMG_DRV_LINEAR,
    .create_opts = raw_create_opts,
    .probe = raw_probe,
    .open = raw_open,
    .check_create = raw_check_create,
    .create = raw_create,
    .describe_create = raw_describe_create,
    .pread = raw_pread,
    .pwrite = raw_pwrite,
    .zero = raw_zero,
    .discard = raw_discard,
    .flush = raw_flush,
    .block_status = raw_block_status,
    .truncate = raw_truncate,
    .measure = raw_measure,
};
