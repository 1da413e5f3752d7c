/*
 * convert: copy concatenated sources into a target through the public image
 * API, driven by block status.
 *
 * A planner (serialised by a mutex) walks the sources' block status and
 * hands out jobs: a zero/hole extent as one job, a data extent in pieces of at
 * most CONVERT_CHUNK bytes (with -S 0 zero extents are cut the same way).
 * These are the units qemu-img uses too, so "-p" prints the same values.
 * A small pool of threads takes jobs: each reads its data and scans it for
 * zero sectors in parallel with the others, then waits for its turn (unless
 * out_of_order) and writes.  Buffers are one chunk per thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/convert.h"
#include "engine/engine.h"

#define SECTOR 512u
#define CONVERT_CHUNK (2u << 20)
/* Longest block status request (the largest int that is a multiple of 512). */
#define MAX_STATUS_LEN 2147483136ull
#define MAX_THREADS 4

/* JOB_SKIP: with a backing file on the target, what the source's top layer
 * does not have is left unallocated so the target reads it from there. */
enum job_kind { JOB_DATA, JOB_ZERO, JOB_SKIP };

struct job {
    uint64_t seq;
    enum job_kind kind;
    size_t src;        /* index of the source */
    uint64_t src_off;  /* offset in that source (sector aligned) */
    uint64_t out_off;  /* offset in the target */
    uint64_t len;      /* bytes, a multiple of 512 */
};

/* Walks the concatenated sources extent by extent. */
struct planner {
    const struct convert_params *p;
    size_t cur;        /* current source */
    uint64_t off;      /* offset in it */
    uint64_t base;     /* target offset of its start */
    uint64_t ext_end;  /* end of the current extent (source offset) */
    enum job_kind ext_kind;
    uint64_t seq;
};

/* A piece of a data job after zero detection. */
struct segment {
    uint32_t off, len;
    bool zero;         /* skip (or zero) instead of writing */
};

struct convert_state {
    const struct convert_params *p;
    pthread_mutex_t lock;
    pthread_cond_t turn_cv;
    struct planner plan;
    uint64_t write_seq;      /* next job allowed to write when ordered */
    bool no_offload;         /* copy offloading failed once: stop trying */
    int error;               /* first failure (negative errno) */
    char *errmsg;            /* its message, re-recorded on the caller's thread */
    uint64_t total_sectors;  /* progress denominator */
    uint64_t done_sectors;
    struct engine_rate rate;
};

static uint64_t
pad_size(uint64_t size)
{
    return (size + SECTOR - 1) / SECTOR * SECTOR;
}

uint64_t
convert_total_size(dimg_image *const *src, size_t nsrc)
{
    uint64_t t = 0;
    for (size_t i = 0; i < nsrc; i++)
        t += pad_size(dimg_get_size(src[i]));
    return t;
}

/* ---- zero detection ---- */

bool
convert_is_zero(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    /* Quick reject on the first word: data rarely starts with zeros. */
    while (len > 0 && ((uintptr_t)p & 7)) {
        if (*p)
            return false;
        p++;
        len--;
    }
    while (len >= 64) {
        uint64_t w[8];
        memcpy(w, p, sizeof w);
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7])
            return false;
        p += 64;
        len -= 64;
    }
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (w)
            return false;
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        if (*p)
            return false;
        p++;
        len--;
    }
    return true;
}

size_t
convert_sector_run(const uint8_t *buf, size_t len, bool want_zero)
{
    size_t n = 0;
    while (n < len) {
        size_t s = len - n < SECTOR ? len - n : SECTOR;
        if (convert_is_zero(buf + n, s) != want_zero)
            break;
        n += s;
    }
    return n;
}

/*
 * Split a data buffer into segments.  A zero run is skipped when it is at
 * least sparse_size bytes long or starts the buffer; shorter runs are
 * written with the data around them.
 */
static size_t
make_segments(const uint8_t *buf, uint32_t len, uint64_t sparse_size, struct segment *seg)
{
    size_t n = 0;
    if (sparse_size == 0) {
        seg[0] = (struct segment){ 0, len, false };
        return 1;
    }
    uint32_t pos = 0;
    while (pos < len) {
        uint32_t z = (uint32_t)convert_sector_run(buf + pos, len - pos, true);
        if (z > 0 && (pos == 0 || z >= sparse_size)) {
            seg[n++] = (struct segment){ pos, z, true };
            pos += z;
            continue;
        }
        /* data (including a short zero run) up to the next long zero run */
        uint32_t start = pos;
        pos += z;
        while (pos < len) {
            pos += (uint32_t)convert_sector_run(buf + pos, len - pos, false);
            if (pos >= len)
                break;
            z = (uint32_t)convert_sector_run(buf + pos, len - pos, true);
            if (z >= sparse_size)
                break;
            pos += z;
        }
        seg[n++] = (struct segment){ start, pos - start, false };
    }
    return n;
}

/* ---- planning ---- */

/* Start the extent at pl->off of the current source. */
static int
plan_status(struct planner *pl)
{
    dimg_image *src = pl->p->src[pl->cur];
    uint64_t size = dimg_get_size(src), padded = pad_size(size);
    uint64_t want = size - pl->off;
    if (want > MAX_STATUS_LEN)
        want = MAX_STATUS_LEN;
    struct dimg_extent e;
    int r = dimg_block_status(src, pl->off, want, &e);
    if (r < 0)
        return dimg_error_prefix("error while reading block status at offset %llu: ",
                                 (unsigned long long)pl->off);
    bool zero = (e.flags & DIMG_EXTENT_ZERO) != 0;
    uint64_t end = pl->off + e.length;
    if (end >= size) {
        end = padded;
    } else if (end % SECTOR) {
        /* A partial sector belongs to the data side. */
        if (zero) {
            end = end / SECTOR * SECTOR;
            if (end == pl->off) {
                zero = false;
                end = pl->off + SECTOR;
            }
        } else {
            end = pad_size(end);
        }
    }
    pl->ext_end = end;
    pl->ext_kind = zero ? JOB_ZERO : JOB_DATA;
    /* Not in the source's top layer: from its backing chain, or unallocated
     * where it has a backing file (also past that file's end). */
    if (pl->p->target_has_backing &&
        (e.depth > 0 || (!(e.flags & DIMG_EXTENT_ALLOCATED) && dimg_get_backing(src))))
        pl->ext_kind = JOB_SKIP;
    return 0;
}

/* The next job; returns 1, 0 at the end, or a negative errno. */
static int
plan_next(struct planner *pl, struct job *j)
{
    const struct convert_params *p = pl->p;
    while (pl->cur < p->nsrc) {
        uint64_t padded = pad_size(dimg_get_size(p->src[pl->cur]));
        if (pl->off >= padded) {
            pl->base += padded;
            pl->cur++;
            pl->off = 0;
            pl->ext_end = 0;
            continue;
        }
        if (pl->off >= pl->ext_end) {
            int r = plan_status(pl);
            if (r < 0)
                return r;
        }
        uint64_t len = pl->ext_end - pl->off;
        if ((pl->ext_kind == JOB_DATA || p->sparse_size == 0) && len > CONVERT_CHUNK)
            len = CONVERT_CHUNK;
        *j = (struct job){ .seq = pl->seq++, .kind = pl->ext_kind, .src = pl->cur,
                           .src_off = pl->off, .out_off = pl->base + pl->off, .len = len };
        pl->off += len;
        return 1;
    }
    return 0;
}

/* ---- workers ---- */

static void
set_error(struct convert_state *s, int r)
{
    if (s->error == 0) {
        s->error = r;
        s->errmsg = strdup(dimg_get_error());
    }
    pthread_cond_broadcast(&s->turn_cv);
}

/* Read a job's data; the padding past a source's end reads as zeros. */
static int
read_job(struct convert_state *s, const struct job *j, uint8_t *buf)
{
    dimg_image *src = s->p->src[j->src];
    uint64_t size = dimg_get_size(src);
    uint64_t have = j->len;
    if (j->src_off + have > size)
        have = size - j->src_off;
    int r = dimg_pread(src, buf, (size_t)have, j->src_off);
    if (r < 0)
        return dimg_error_prefix("error while reading at byte %llu: ",
                                 (unsigned long long)j->src_off);
    memset(buf + have, 0, (size_t)(j->len - have));
    return 0;
}

/* Make a range of the target read as zeros, as the mode asks. */
static int
zero_range(struct convert_state *s, uint64_t off, uint64_t len)
{
    const struct convert_params *p = s->p;
    if (p->sparse_size != 0 && p->target_is_zero)
        return 0;
    /* Past the end of the target's backing file the target reads zeros already. */
    dimg_image *tb = p->target_has_backing ? dimg_get_backing(p->dst) : NULL;
    if (tb && p->sparse_size != 0) {
        uint64_t bsize = dimg_get_size(tb);
        if (off >= bsize)
            return 0;
        if (len > bsize - off)
            len = bsize - off;
    }
    int r = dimg_zero(p->dst, off, len, p->sparse_size ? DIMG_ZERO_MAY_UNMAP : 0);
    if (r < 0)
        return dimg_error_prefix("error while writing at byte %llu: ", (unsigned long long)off);
    return 0;
}

static int
write_job(struct convert_state *s, const struct job *j, uint8_t *buf,
          const struct segment *seg, size_t nseg)
{
    if (j->kind == JOB_SKIP)
        return 0;
    if (j->kind == JOB_ZERO && s->p->sparse_size == 0) {
        /* -S 0: fully allocated output, so write real zeros (jobs are <= one chunk). */
        memset((uint8_t *)buf, 0, (size_t)j->len);
        int r = dimg_pwrite(s->p->dst, buf, (size_t)j->len, j->out_off);
        return r < 0 ? dimg_error_prefix("error while writing at byte %llu: ",
                                         (unsigned long long)j->out_off)
                     : 0;
    }
    if (j->kind == JOB_ZERO)
        return zero_range(s, j->out_off, j->len);
    for (size_t i = 0; i < nseg; i++) {
        uint64_t off = j->out_off + seg[i].off;
        int r;
        if (seg[i].zero) {
            r = zero_range(s, off, seg[i].len);
        } else {
            r = dimg_pwrite(s->p->dst, buf + seg[i].off, seg[i].len, off);
            if (r < 0)
                r = dimg_error_prefix("error while writing at byte %llu: ",
                                      (unsigned long long)off);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

static void
report_progress(struct convert_state *s, const struct job *j)
{
    const struct convert_params *p = s->p;
    if (!p->progress || j->kind == JOB_SKIP || (j->kind != JOB_DATA && p->sparse_size != 0))
        return;
    s->done_sectors += j->len / SECTOR;
    if (s->total_sectors)
        p->progress(100.0 * (double)s->done_sectors / (double)s->total_sectors, p->opaque);
}

static void *
worker(void *opaque)
{
    struct convert_state *s = opaque;
    const struct convert_params *p = s->p;
    uint8_t *buf = NULL;
    struct segment *seg = malloc((CONVERT_CHUNK / SECTOR) * sizeof *seg);
    if (!seg || posix_memalign((void **)&buf, 4096, CONVERT_CHUNK) != 0) {
        pthread_mutex_lock(&s->lock);
        set_error(s, dimg_error(ENOMEM, "out of memory"));
        pthread_mutex_unlock(&s->lock);
        free(seg);
        return NULL;
    }
    for (;;) {
        struct job j;
        pthread_mutex_lock(&s->lock);
        int r = s->error ? 0 : plan_next(&s->plan, &j);
        if (r < 0)
            set_error(s, r);
        pthread_mutex_unlock(&s->lock);
        if (r <= 0)
            break;

        r = 0;
        size_t nseg = 0;
        bool offloaded = false;
        if (j.kind == JOB_DATA) {
            engine_rate_wait(&s->rate, j.len);
            if (p->copy_offload && !s->no_offload) {
                /* -C: the kernel copies; data is not read, so zeros in it are copied too. */
                int c = dimg_copy_range(p->src[j.src], j.src_off, p->dst, j.out_off, j.len);
                if (c == 0)
                    offloaded = true;
                else if (c == -ENOTSUP)
                    s->no_offload = true; /* fall back to reading and writing for good */
                else
                    r = c;
            }
            if (!offloaded && r == 0) {
                r = read_job(s, &j, buf);
                if (r == 0)
                    nseg = make_segments(buf, (uint32_t)j.len, p->sparse_size, seg);
            }
        }

        pthread_mutex_lock(&s->lock);
        if (!p->out_of_order)
            while (!s->error && s->write_seq != j.seq)
                pthread_cond_wait(&s->turn_cv, &s->lock);
        if (s->error || r < 0) {
            if (r < 0)
                set_error(s, r);
            pthread_mutex_unlock(&s->lock);
            break;
        }
        pthread_mutex_unlock(&s->lock);

        if (!offloaded)
            r = write_job(s, &j, buf, seg, nseg);

        pthread_mutex_lock(&s->lock);
        if (r < 0) {
            set_error(s, r);
        } else {
            report_progress(s, &j);
            if (!p->out_of_order) {
                s->write_seq++;
                pthread_cond_broadcast(&s->turn_cv);
            }
        }
        pthread_mutex_unlock(&s->lock);
        if (r < 0)
            break;
    }
    free(buf);
    free(seg);
    return NULL;
}

/* The progress denominator: the sectors that will be copied, as qemu-img counts them. */
static int
count_sectors(const struct convert_params *p, uint64_t *out)
{
    struct planner pl = { .p = p };
    struct job j;
    int r;
    *out = 0;
    while ((r = plan_next(&pl, &j)) > 0)
        if (j.kind == JOB_DATA || (p->sparse_size == 0 && j.kind == JOB_ZERO))
            *out += j.len / SECTOR;
    return r;
}

static unsigned
thread_count(const struct convert_params *p)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = p->workers ? p->workers : 1;
    if (cpus < 1)
        cpus = 1;
    if (n > (unsigned)cpus)
        n = (unsigned)cpus;
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    return n;
}

void
convert_run_workers(void *(*fn)(void *), void *arg, unsigned n)
{
    pthread_t tids[CONVERT_MAX_WORKERS];
    unsigned started = 0;
    if (n > CONVERT_MAX_WORKERS)
        n = CONVERT_MAX_WORKERS;
    for (unsigned i = 1; i < n; i++) {
        if (pthread_create(&tids[started], NULL, fn, arg) != 0)
            break; /* fewer workers is fine: the caller's thread works too */
        started++;
    }
    fn(arg);
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
}

int
convert_finish(dimg_image *dst, int error, char *errmsg)
{
    int r = error;
    if (r == 0) {
        r = dimg_flush(dst);
        if (r < 0)
            dimg_error_prefix("error while flushing: ");
    } else {
        /* Re-record the worker's message on this thread. */
        dimg_error(-r, "%s", errmsg ? errmsg : "error while converting");
    }
    free(errmsg);
    return r;
}

int
engine_convert(const struct convert_params *p)
{
    if (!p || !p->dst || (p->nsrc && !p->src) || p->sparse_size % SECTOR ||
        p->sparse_size > CONVERT_MAX_SPARSE_SIZE)
        return dimg_error(EINVAL, "invalid convert parameters");
    uint64_t total = convert_total_size(p->src, p->nsrc);
    if (dimg_get_size(p->dst) < total)
        return dimg_error(EINVAL, "output file is smaller than input file");

    /* -c, or a target that only holds compressed clusters: compress on every core. */
    if (p->compress || dimg_is_compressed_only(p->dst))
        return convert_compressed(p);

    struct convert_state s = { .p = p };
    s.plan.p = p;
    if (p->progress) {
        int r = count_sectors(p, &s.total_sectors);
        if (r < 0)
            return r;
    }
    engine_rate_start(&s.rate, p->rate_limit);
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.turn_cv, NULL);

    convert_run_workers(worker, &s, thread_count(p));
    int r = convert_finish(p->dst, s.error, s.errmsg);
    pthread_cond_destroy(&s.turn_cv);
    pthread_mutex_destroy(&s.lock);
    return r;
}
