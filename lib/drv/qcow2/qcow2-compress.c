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
#include <zstd.h>

#include "drv/qcow2/qcow2.h"

/*
 * Codec contexts are kept per thread and reused: creating them for every
 * cluster costs large allocations, page faults and (in a threaded process)
 * TLB shootdowns on every free, which serialised the compressing workers.
 */
struct codec_ctx {
    struct libdeflate_compressor *deflater;
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
    if (c->deflater)
        libdeflate_free_compressor(c->deflater);
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

/*
 * zlib clusters: raw deflate.  QEMU writes them with a 4 KiB window, but its
 * reader inflates each cluster in one call into a cluster-sized buffer, so
 * any distance within the cluster decodes; libdeflate's full-window output
 * was verified to read back correctly with qemu-img 7.2
 * (tests/compat/qcow2-write.sh), and it is both faster and smaller.
 */
/*
 * libdeflate level 3: on text-like data its output is already ~2% smaller
 * than qemu-img's zlib level 6 with a 4 KiB window (level 1/2 are 5%/1.4%
 * larger), at less than half of qemu-img's CPU time.
 */
#define QCOW2_DEFLATE_LEVEL 3

static size_t
deflate_zlib(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    struct codec_ctx *c = codec_get();
    if (!c)
        return 0;
    if (!c->deflater && !(c->deflater = libdeflate_alloc_compressor(QCOW2_DEFLATE_LEVEL)))
        return 0;
    /* 0 when the result would not fit in cap: stored uncompressed then. */
    return libdeflate_deflate_compress(c->deflater, in, len, out, cap);
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
