/*
 * commit: copy everything an image's backing chain holds above a base image
 * (block status depth below the base's) into the base, then empty the image
 * through its driver's make_empty.
 *
 * What lands in the base is what qemu-img's commit job writes (observed with
 * `qemu-img map` of the base): data ranges as data, ranges that read as
 * zeros in an upper layer as zero writes that may deallocate.  A base
 * smaller than the image first grows to the image's size.
 *
 * Crash safety: the base is flushed before the image is emptied, and the
 * driver empties the image so that every intermediate state reads the same
 * (through the base), so a kill at any instant leaves the image's content
 * unchanged and every base cluster holding its old or its new data.
 *
 * A small pool of threads takes jobs from a planner that walks the block
 * status under a mutex: reading the image and writing the base overlap.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drv/drv.h"
#include "engine/commit.h"
#include "engine/convert.h"
#include "engine/engine.h"
#include "io/io.h"
#include "util/checked.h"

#define COMMIT_THREADS 2

enum job_kind { JOB_NONE, JOB_DATA, JOB_ZERO };

struct job {
    enum job_kind kind;
    uint64_t off, len;
};

struct commit_state {
    dimg_image *top, *base;
    int base_depth;            /* depth of base below top */
    uint64_t size;             /* bytes to walk: top's size */
    uint64_t rate_limit;
    void (*progress)(double percent, void *opaque);
    void *opaque;

    pthread_mutex_t lock;
    uint64_t off;              /* planner position */
    uint64_t ext_end;          /* end of the current extent */
    enum job_kind ext_kind;    /* its kind (JOB_NONE: nothing to copy) */
    uint64_t total, done;      /* progress: bytes to copy, bytes copied */
    struct engine_rate rate;
    int error;
    char *errmsg;
};

/*
 * What commit does with an extent of top's chain.  A range past the end of
 * an image between top and base (its layer above leaves it unallocated, at
 * depth, and the shorter image is at depth + 1) reads as zeros there, which
 * qemu counts as allocated: the base gets zeros.  Past the end of the base
 * itself nothing is written, the grown base reads zeros already.
 */
static enum job_kind
extent_kind(const struct commit_state *s, const struct dimg_extent *e)
{
    if (!(e->flags & DIMG_EXTENT_ALLOCATED))
        return (e->flags & DIMG_EXTENT_ZERO) && e->depth + 1 < s->base_depth ? JOB_ZERO
                                                                              : JOB_NONE;
    if (e->depth >= s->base_depth)
        return JOB_NONE;
    /* Data over a hole in the file is copied as data: qemu's commit asks
     * only what is allocated, not what the host file holds. */
    return (e->flags & DIMG_EXTENT_ZERO) && !(e->flags & DIMG_EXTENT_HOLE) ? JOB_ZERO : JOB_DATA;
}

/* Bytes above the base, for the progress denominator. */
static int
count_total(struct commit_state *s)
{
    for (uint64_t off = 0; off < s->size;) {
        struct dimg_extent e;
        int r = dimg_block_status(s->top, off, s->size - off, &e);
        if (r < 0)
            return r;
        if (extent_kind(s, &e) != JOB_NONE)
            s->total += e.length;
        off += e.length;
    }
    return 0;
}

/* Next job (lock held): a zero extent whole, a data extent in chunks. */
static int
next_job(struct commit_state *s, struct job *j)
{
    while (s->off < s->size) {
        if (s->off >= s->ext_end) {
            struct dimg_extent e;
            int r = dimg_block_status(s->top, s->off, s->size - s->off, &e);
            if (r < 0)
                return r;
            s->ext_end = s->off + e.length;
            s->ext_kind = extent_kind(s, &e);
        }
        uint64_t len = s->ext_end - s->off;
        if (s->ext_kind == JOB_NONE) {
            s->off = s->ext_end;
            continue;
        }
        if (s->ext_kind == JOB_DATA && len > COMMIT_CHUNK)
            len = COMMIT_CHUNK;
        *j = (struct job){ .kind = s->ext_kind, .off = s->off, .len = len };
        s->off += len;
        return 0;
    }
    j->kind = JOB_NONE;
    return 0;
}

static void
record_error(struct commit_state *s, int r)
{
    if (s->error == 0) {
        s->error = r;
        s->errmsg = strdup(dimg_get_error());
    }
}

static int
run_job(struct commit_state *s, const struct job *j, uint8_t *buf)
{
    if (j->kind == JOB_ZERO) {
        int r = dimg_zero(s->base, j->off, j->len, DIMG_ZERO_MAY_UNMAP);
        return r < 0 ? dimg_error_prefix("error while writing zeros: ") : 0;
    }
    int r = dimg_pread(s->top, buf, (size_t)j->len, j->off);
    if (r < 0)
        return dimg_error_prefix("error while reading: ");
    r = dimg_pwrite(s->base, buf, (size_t)j->len, j->off);
    if (r < 0)
        return dimg_error_prefix("error while writing: ");
    engine_rate_wait(&s->rate, j->len);
    return 0;
}

static void *
worker(void *arg)
{
    struct commit_state *s = arg;
    uint8_t *buf = io_alloc_buffer(COMMIT_CHUNK);
    pthread_mutex_lock(&s->lock);
    if (!buf)
        record_error(s, dimg_error(ENOMEM, "out of memory"));
    while (s->error == 0) {
        struct job j;
        int r = next_job(s, &j);
        if (r < 0) {
            record_error(s, r);
            break;
        }
        if (j.kind == JOB_NONE)
            break;
        pthread_mutex_unlock(&s->lock);
        r = run_job(s, &j, buf);
        pthread_mutex_lock(&s->lock);
        if (r < 0) {
            record_error(s, r);
            break;
        }
        s->done += j.len;
        if (s->progress && s->total)
            s->progress((double)s->done * 100.0 / (double)s->total, s->opaque);
    }
    pthread_mutex_unlock(&s->lock);
    free(buf);
    return NULL;
}

/* Depth of base below top, or -1 when it is not in top's backing chain. */
static int
chain_depth_of(const dimg_image *top, const dimg_image *base)
{
    int d = 1;
    for (const dimg_image *b = top->backing; b; b = b->backing, d++)
        if (b == base)
            return d;
    return -1;
}

/* Read-only permissions for b's file and the files its driver opened. */
static int
set_read_perm(struct dimg_image *b, unsigned shared)
{
    int r = io_set_perm(b->file, IO_PERM_CONSISTENT_READ, shared);
    if (r == 0 && b->drv->set_perm)
        r = b->drv->set_perm(b, IO_PERM_CONSISTENT_READ, shared);
    return r;
}

/*
 * Make a read-only image of a chain writable without changing its handle
 * (the parent's backing pointer and the caller's stay valid): open the file
 * again read-write and swap the two handles' contents.  The read-only
 * handle first stops denying writers, on its extent files too, so the new
 * one can take its locks.
 */
static int
reopen_writable(struct dimg_image *b)
{
    if (b->writable)
        return 0;
    bool locked = !(b->flags & (DIMG_OPEN_NO_LOCK | DIMG_OPEN_INFO_ONLY));
    unsigned ro_shared = (b->flags & DIMG_OPEN_FORCE_SHARE) || !(b->drv->flags & DIMG_DRV_RESIZE_LOCK)
                             ? IO_PERM_ALL
                             : IO_PERM_CONSISTENT_READ | IO_PERM_WRITE_UNCHANGED;
    int r;
    if (locked && (r = set_read_perm(b, IO_PERM_ALL)) < 0) {
        set_read_perm(b, ro_shared);
        return r;
    }
    unsigned flags = (b->flags & ~(DIMG_OPEN_FORCE_SHARE | DIMG_OPEN_INFO_ONLY |
                                   DIMG_OPEN_DENY_WRITE)) | DIMG_OPEN_RDWR;
    struct dimg_image *n = image_open(b->filename, b->drv->name, flags, b->chain_depth);
    if (!n) {
        r = -dimg_get_errno();
        if (locked)
            set_read_perm(b, ro_shared);
        return r;
    }
    struct dimg_image tmp = *b;
    *b = *n;
    *n = tmp;
    dimg_close(n);
    return 0;
}

static int
copy_down(struct commit_state *s)
{
    int r = count_total(s);
    if (r < 0)
        return r;
    if (s->progress)
        s->progress(0.0, s->opaque);
    pthread_mutex_init(&s->lock, NULL);
    engine_rate_start(&s->rate, s->rate_limit);
    convert_run_workers(worker, s, COMMIT_THREADS);
    pthread_mutex_destroy(&s->lock);
    if (s->error == 0 && s->progress)
        s->progress(100.0, s->opaque);
    /* The base must hold everything durably before top may lose it. */
    return convert_finish(s->base, s->error, s->errmsg);
}

DIMG_EXPORT int
dimg_commit(dimg_image *top, dimg_image *base, unsigned flags, uint64_t rate_limit,
            void (*progress)(double percent, void *opaque), void *opaque)
{
    dimg_error_clear();
    if (!top || !base)
        return dimg_error(EINVAL, "commit needs an image and a base");
    int depth = chain_depth_of(top, base);
    if (depth < 0)
        return dimg_error(EINVAL, "Did not find '%s' in the backing chain of '%s'",
                          base->filename, top->filename);
    bool drop = flags & DIMG_COMMIT_DROP;
    if (!drop && !top->writable)
        return dimg_error(EROFS, "%s: image is read-only", top->filename);
    int r = reopen_writable(base);
    if (r < 0)
        return r;
    if (base->size < top->size) {
        r = dimg_truncate(base, top->size, DIMG_PREALLOC_OFF, 0);
        if (r < 0)
            return r;
    }
    struct commit_state s = {
        .top = top, .base = base, .base_depth = depth, .size = top->size,
        .rate_limit = rate_limit, .progress = progress, .opaque = opaque,
    };
    r = copy_down(&s);
    /* A format that cannot drop its clusters keeps them, as with qemu-img
     * (vmdk): the top still reads the same. */
    if (r < 0 || drop || !top->drv->make_empty)
        return r;
    r = top->drv->make_empty(top);
    if (r == 0)
        r = dimg_flush(top);
    return r;
}
