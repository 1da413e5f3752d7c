/*
 * convert -c: the target is written one cluster at a time with
 * dimg_write_compressed, which compresses outside the driver's lock, so the
 * workers here compress in parallel on every core.  Work is handed out in
 * cluster-aligned chunks of the concatenated output; clusters that the
 * sources report as holes/zeros, or that read as all zeros, are skipped
 * (the freshly created target already reads as zeros there).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/convert.h"
#include "engine/engine.h"

#define CHUNK_BYTES (2u << 20)

struct cstate {
    const struct convert_params *p;
    uint64_t total, chunk, next;   /* next chunk start in output space */
    uint32_t cluster;
    pthread_mutex_t lock;
    int error;
    char *errmsg;
    uint64_t done;
};

/* The source and offset holding output offset out; returns false past the end. */
static bool
locate(const struct convert_params *p, uint64_t out, size_t *src, uint64_t *off, uint64_t *avail)
{
    uint64_t base = 0;
    for (size_t i = 0; i < p->nsrc; i++) {
        uint64_t size = dimg_get_size(p->src[i]);
        uint64_t padded = (size + 511) / 512 * 512;
        if (out < base + padded) {
            *src = i;
            *off = out - base;
            *avail = padded - *off;
            return true;
        }
        base += padded;
    }
    return false;
}

/* true when the sources report [out, out+len) as reading zeros (holes or zero extents). */
static int
range_is_zero(const struct convert_params *p, uint64_t out, uint64_t len)
{
    while (len > 0) {
        size_t si;
        uint64_t off, avail;
        if (!locate(p, out, &si, &off, &avail))
            return 1;
        uint64_t size = dimg_get_size(p->src[si]);
        uint64_t n = len < avail ? len : avail;
        if (off >= size) { /* sector padding past the source's end */
            out += n;
            len -= n;
            continue;
        }
        struct dimg_extent e;
        uint64_t q = n < size - off ? n : size - off;
        int r = dimg_block_status(p->src[si], off, q, &e);
        if (r < 0)
            return r;
        if (!(e.flags & DIMG_EXTENT_ZERO))
            return 0;
        out += e.length;
        len -= e.length;
    }
    return 1;
}

static int
read_out(const struct convert_params *p, uint64_t out, uint8_t *buf, uint64_t len)
{
    while (len > 0) {
        size_t si;
        uint64_t off, avail;
        if (!locate(p, out, &si, &off, &avail)) {
            memset(buf, 0, (size_t)len);
            return 0;
        }
        uint64_t size = dimg_get_size(p->src[si]);
        uint64_t n = len < avail ? len : avail;
        uint64_t have = off < size ? (n < size - off ? n : size - off) : 0;
        if (have) {
            int r = dimg_pread(p->src[si], buf, (size_t)have, off);
            if (r < 0)
                return dimg_error_prefix("error while reading at byte %llu: ",
                                         (unsigned long long)off);
        }
        memset(buf + have, 0, (size_t)(n - have));
        buf += n;
        out += n;
        len -= n;
    }
    return 0;
}

static int
do_chunk(struct cstate *s, uint64_t start, uint8_t *buf)
{
    const struct convert_params *p = s->p;
    uint64_t len = s->chunk;
    if (start + len > s->total)
        len = s->total - start;
    int z = range_is_zero(p, start, len);
    if (z < 0)
        return z;
    if (z)
        return 0;
    int r = read_out(p, start, buf, len);
    if (r < 0)
        return r;
    uint64_t dsize = dimg_get_size(p->dst);
    for (uint64_t c = 0; c < len; c += s->cluster) {
        uint64_t n = len - c < s->cluster ? len - c : s->cluster;
        if (start + c + n > dsize)
            n = dsize - (start + c);
        if (convert_is_zero(buf + c, (size_t)n))
            continue;
        r = dimg_write_compressed(p->dst, buf + c, (size_t)n, start + c);
        if (r < 0)
            return dimg_error_prefix("error while compressing sector %llu: ",
                                     (unsigned long long)((start + c) / 512));
    }
    return 0;
}

static void *
worker(void *opaque)
{
    struct cstate *s = opaque;
    uint8_t *buf = malloc(s->chunk);
    if (!buf) {
        pthread_mutex_lock(&s->lock);
        if (!s->error)
            s->error = dimg_error(ENOMEM, "out of memory");
        pthread_mutex_unlock(&s->lock);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&s->lock);
        uint64_t start = s->next;
        bool stop = s->error || start >= s->total;
        if (!stop)
            s->next += s->chunk;
        pthread_mutex_unlock(&s->lock);
        if (stop)
            break;
        int r = do_chunk(s, start, buf);
        pthread_mutex_lock(&s->lock);
        if (r < 0 && !s->error) {
            s->error = r;
            s->errmsg = strdup(dimg_get_error());
        }
        s->done += s->chunk;
        if (r == 0 && s->p->progress)
            s->p->progress(100.0 * (double)(s->done < s->total ? s->done : s->total) /
                           (double)s->total, s->p->opaque);
        pthread_mutex_unlock(&s->lock);
    }
    free(buf);
    return NULL;
}

int
convert_compressed(const struct convert_params *p)
{
    uint32_t cluster = dimg_get_cluster_size(p->dst);
    if (cluster == 0)
        return dimg_error(ENOTSUP, "Compression not supported for this file format");
    struct cstate s = { .p = p, .cluster = cluster };
    s.total = convert_total_size(p->src, p->nsrc);
    s.chunk = cluster >= CHUNK_BYTES ? cluster : CHUNK_BYTES / cluster * cluster;
    pthread_mutex_init(&s.lock, NULL);
    /* Compression is CPU-bound: one worker per core (at least two with -m > 1). */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = cpus > 0 ? (unsigned)cpus : 1;
    if (p->workers > 1 && n < 2)
        n = 2;
    convert_run_workers(worker, &s, n);
    int r = convert_finish(p->dst, s.error, s.errmsg);
    pthread_mutex_destroy(&s.lock);
    return r;
}
