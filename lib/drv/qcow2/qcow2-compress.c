/*
 * Compressed clusters: zlib clusters are raw deflate streams (QEMU writes them
 * with a 4 KiB window), zstd clusters are zstd frames.  Decompression uses
 * libdeflate and libzstd; the output must be exactly one cluster.
 */
#include <errno.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "drv/qcow2/qcow2.h"

/* Locate the compressed bytes of a descriptor (spec: "Compressed Clusters Descriptor"). */
static void
descriptor_extent(const struct qcow2_state *s, uint64_t desc, uint64_t *host, size_t *len)
{
    unsigned x = 62 - (s->cluster_bits - 8);
    uint64_t offset = desc & ((1ull << x) - 1);
    uint64_t sectors = ((desc >> x) & ((1ull << (s->cluster_bits - 8)) - 1)) + 1;
    *host = offset;
    *len = (size_t)(sectors * 512 - (offset & 511));
}

static int
inflate_zlib(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    if (!d)
        return -ENOMEM;
    size_t in_used = 0, out_got = 0;
    enum libdeflate_result res =
        libdeflate_deflate_decompress_ex(d, in, in_len, out, out_len, &in_used, &out_got);
    libdeflate_free_decompressor(d);
    if (res == LIBDEFLATE_SUCCESS && out_got == out_len)
        return 0;
    /* The stream may end early only if its declared output is complete; anything else is bad. */
    return -EBADMSG;
}

static int
inflate_zstd(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d)
        return -ENOMEM;
    ZSTD_inBuffer ib = { in, in_len, 0 };
    ZSTD_outBuffer ob = { out, out_len, 0 };
    int r = 0;
    while (ob.pos < ob.size) {
        size_t ret = ZSTD_decompressStream(d, &ob, &ib);
        if (ZSTD_isError(ret)) {
            r = -EBADMSG;
            break;
        }
        if (ib.pos == ib.size && ob.pos < ob.size) {
            r = -EBADMSG; /* input exhausted before a whole cluster came out */
            break;
        }
    }
    ZSTD_freeDCtx(d);
    return r;
}

int
qcow2_decompress_cluster(struct dimg_image *img, uint64_t descriptor, uint8_t *out)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t host;
    size_t len;
    descriptor_extent(s, descriptor, &host, &len);
    /* The sector count field bounds len to about two clusters: no unbounded allocation. */
    uint8_t *in = malloc(len);
    if (!in)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pread(img->file, in, len, host);
    if (r == 0) {
        r = s->compression == QCOW2_COMPRESS_ZSTD ? inflate_zstd(in, len, out, s->cluster_size)
                                                  : inflate_zlib(in, len, out, s->cluster_size);
        if (r == -ENOMEM)
            r = dimg_error(ENOMEM, "out of memory");
        else if (r < 0)
            r = dimg_error(EIO, "%s: could not decompress the compressed cluster at host offset %#"
                           PRIx64, img->filename, host);
    }
    free(in);
    return r;
}

/* zlib: raw deflate with a 4 KiB window, which is what QEMU's reader accepts. */
static size_t
deflate_zlib(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int ret = deflate(&z, Z_FINISH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    return ret == Z_STREAM_END ? n : 0;
}

static size_t
deflate_zstd(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t n = ZSTD_compress(out, cap, in, len, ZSTD_CLEVEL_DEFAULT);
    return ZSTD_isError(n) ? 0 : n;
}

size_t
qcow2_compress_cluster(const struct qcow2_state *s, const uint8_t *in, uint8_t *out)
{
    /* Only worth storing compressed when it saves at least one byte. */
    size_t cap = s->cluster_size - 1;
    return s->compression == QCOW2_COMPRESS_ZSTD ? deflate_zstd(in, s->cluster_size, out, cap)
                                                 : deflate_zlib(in, s->cluster_size, out, cap);
}
