/*
 * Compressed clusters: zlib clusters are raw deflate streams (QEMU writes them
 * with a 4 KiB window), zstd clusters are zstd frames.  Decompression uses
 * libdeflate and libzstd; the output must be exactly one cluster.
 */
#include <errno.h>
#include <inttypes.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "drv/qcow2/qcow2.h"

/*
 * Codec contexts are kept per thread and reused: creating them for every
 * cluster costs large allocations, page faults and (in a threaded process)
 * TLB shootdowns on every free, which serialised the compressing workers.
 */
struct codec_ctx {
    z_stream z;
    bool z_ready;
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
    struct libdeflate_decompressor *inflater;
};

static pthread_key_t codec_key;
static pthread_once_t codec_once = PTHREAD_ONCE_INIT;

static void
codec_free(void *p)
{
    struct codec_ctx *c = p;
    if (c->z_ready)
        deflateEnd(&c->z);
    ZSTD_freeCCtx(c->zc);
    ZSTD_freeDCtx(c->zd);
    if (c->inflater)
        libdeflate_free_decompressor(c->inflater);
    free(c);
}

static void
codec_key_init(void)
{
    pthread_key_create(&codec_key, codec_free);
}

static struct codec_ctx *
codec_get(void)
{
    pthread_once(&codec_once, codec_key_init);
    struct codec_ctx *c = pthread_getspecific(codec_key);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (c && pthread_setspecific(codec_key, c) != 0) {
            free(c);
            c = NULL;
        }
    }
    return c;
}

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
    struct codec_ctx *c = codec_get();
    if (!c || (!c->inflater && !(c->inflater = libdeflate_alloc_decompressor())))
        return -ENOMEM;
    size_t in_used = 0, out_got = 0;
    enum libdeflate_result res =
        libdeflate_deflate_decompress_ex(c->inflater, in, in_len, out, out_len, &in_used, &out_got);
    if (res == LIBDEFLATE_SUCCESS && out_got == out_len)
        return 0;
    /* The stream may end early only if its declared output is complete; anything else is bad. */
    return -EBADMSG;
}

static int
inflate_zstd(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
    struct codec_ctx *c = codec_get();
    if (!c || (!c->zd && !(c->zd = ZSTD_createDCtx())))
        return -ENOMEM;
    ZSTD_DCtx_reset(c->zd, ZSTD_reset_session_only);
    ZSTD_inBuffer ib = { in, in_len, 0 };
    ZSTD_outBuffer ob = { out, out_len, 0 };
    while (ob.pos < ob.size) {
        size_t ret = ZSTD_decompressStream(c->zd, &ob, &ib);
        if (ZSTD_isError(ret))
            return -EBADMSG;
        if (ib.pos == ib.size && ob.pos < ob.size)
            return -EBADMSG; /* input exhausted before a whole cluster came out */
    }
    return 0;
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
    struct codec_ctx *c = codec_get();
    if (!c)
        return 0;
    if (!c->z_ready) {
        if (deflateInit2(&c->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) !=
            Z_OK)
            return 0;
        c->z_ready = true;
    } else if (deflateReset(&c->z) != Z_OK) {
        return 0;
    }
    c->z.next_in = (Bytef *)in;
    c->z.avail_in = (uInt)len;
    c->z.next_out = out;
    c->z.avail_out = (uInt)cap;
    int ret = deflate(&c->z, Z_FINISH);
    return ret == Z_STREAM_END ? cap - c->z.avail_out : 0;
}

static size_t
deflate_zstd(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    struct codec_ctx *c = codec_get();
    if (!c || (!c->zc && !(c->zc = ZSTD_createCCtx())))
        return 0;
    size_t n = ZSTD_compressCCtx(c->zc, out, cap, in, len, ZSTD_CLEVEL_DEFAULT);
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
