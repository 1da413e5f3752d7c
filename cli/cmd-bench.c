/*
 * bench: time a run of read or write requests on an image (qemu-img's syntax,
 * messages and output).
 *
 * `count` requests of `buffer_size` bytes go to offset, offset + step, ...
 * (wrapping at the end of the image, as qemu-img does; a request that does
 * not fit in the image fails with "Failed request: Input/output error").
 *
 * Depth: qemu-img keeps `depth` asynchronous requests in flight.  dimg runs
 * min(depth, 16) worker threads, each with one synchronous request at a time,
 * so up to that many requests are in flight; they take offsets from a shared
 * cursor in qemu-img's order.  The raw driver's I/O is positional, so its
 * requests really overlap; for other formats (whose metadata updates are not
 * made for concurrent callers) and for unaligned O_DIRECT writes (which the
 * file layer does as read-modify-write) the library calls are serialized.
 *
 * --flush-interval=N: whenever the number of requests not yet issued reaches
 * a multiple of N, a flush follows: by default no new request is issued until
 * those in flight are done and the flush has completed (qemu-img's drain);
 * with --no-drain the next request to complete flushes while the others go on.
 *
 * Differences from qemu-img 7.2, where it hangs or crashes: -d 0 is refused
 * as an invalid queue depth, and an empty image does not end in a division
 * by zero.
 *
 * Exit codes: 0 the run completed, 1 usage, open or request error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "core/internal.h"

#define BENCH_MAX_THREADS 16
#define BENCH_ALIGN 4096

struct bench {
    dimg_image *img;
    uint64_t image_size;
    size_t bufsize;
    uint64_t step;
    int count, issued, in_flight;
    uint64_t offset;             /* next request's offset */
    bool write;
    uint8_t pattern;
    int flush_interval;
    bool drain;
    bool flush_due;              /* the unissued count reached a multiple of the interval */
    bool flushing;               /* a draining flush is running: issue nothing */
    int depth, burst_left;       /* requests left in qemu's current queue-filling burst */
    int error;                   /* first failure (negative errno) */
    bool serial_io;
    pthread_mutex_t lock, io_lock;
    pthread_cond_t cond;
};

static int
bench_io(struct bench *b, void *buf, uint64_t off)
{
    /* qemu's block layer refuses requests that do not fit with EIO. */
    if (off > b->image_size || b->bufsize > b->image_size - off)
        return -EIO;
    if (b->serial_io)
        pthread_mutex_lock(&b->io_lock);
    int r = b->write ? dimg_pwrite(b->img, buf, b->bufsize, off)
                     : dimg_pread(b->img, buf, b->bufsize, off);
    if (b->serial_io)
        pthread_mutex_unlock(&b->io_lock);
    return r < 0 ? r : 0;
}

static int
bench_flush(struct bench *b)
{
    if (b->serial_io)
        pthread_mutex_lock(&b->io_lock);
    int r = dimg_flush(b->img);
    if (b->serial_io)
        pthread_mutex_unlock(&b->io_lock);
    return r;
}

/* Called with b->lock held; records the first error and wakes everyone. */
static void
bench_fail(struct bench *b, int r)
{
    if (!b->error)
        b->error = r;
    pthread_cond_broadcast(&b->cond);
}

static void *
bench_worker(void *opaque)
{
    struct bench *b = opaque;
    void *buf = NULL;
    if (posix_memalign(&buf, BENCH_ALIGN, b->bufsize ? b->bufsize : 1) != 0) {
        pthread_mutex_lock(&b->lock);
        bench_fail(b, -ENOMEM);
        pthread_mutex_unlock(&b->lock);
        return NULL;
    }
    memset(buf, b->pattern, b->bufsize);

    pthread_mutex_lock(&b->lock);
    for (;;) {
        while (!b->error && b->drain && (b->flush_due || b->flushing))
            pthread_cond_wait(&b->cond, &b->lock);
        if (b->error || b->issued >= b->count)
            break;
        uint64_t off = b->offset;
        b->issued++;
        b->in_flight++;
        b->offset += b->step;
        if (b->image_size)
            b->offset %= b->image_size;
        /* qemu checks the count as each request completes, and each completion
         * issues one request, except in the bursts that fill the queue (at the
         * start and after a drained flush), whose counts it never sees. */
        int unissued = b->count - b->issued;
        if (b->burst_left > 0)
            b->burst_left--;
        if (b->flush_interval && unissued % b->flush_interval == 0 &&
            (b->burst_left == 0 || unissued == 0))
            b->flush_due = true;
        pthread_mutex_unlock(&b->lock);

        int r = bench_io(b, buf, off);

        pthread_mutex_lock(&b->lock);
        b->in_flight--;
        if (r < 0) {
            bench_fail(b, r);
            break;
        }
        /* Draining: the last request to finish flushes; otherwise the next one. */
        if (b->flush_due && (!b->drain || b->in_flight == 0)) {
            b->flush_due = false;
            b->flushing = b->drain;
            pthread_mutex_unlock(&b->lock);
            r = bench_flush(b);
            pthread_mutex_lock(&b->lock);
            b->flushing = false;
            if (b->drain)
                b->burst_left = b->depth;
            pthread_cond_broadcast(&b->cond);
            if (r < 0) {
                bench_fail(b, r);
                break;
            }
        }
    }
    pthread_mutex_unlock(&b->lock);
    free(buf);
    return NULL;
}

/* Run the requests; returns 0 or the first request's negative errno. */
static int
bench_run(struct bench *b)
{
    int nthreads = b->depth < BENCH_MAX_THREADS ? b->depth : BENCH_MAX_THREADS;
    if (nthreads > b->count)
        nthreads = b->count;
    pthread_t th[BENCH_MAX_THREADS];
    int started = 0;
    pthread_mutex_init(&b->lock, NULL);
    pthread_mutex_init(&b->io_lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    for (; started < nthreads; started++) {
        if (pthread_create(&th[started], NULL, bench_worker, b) != 0) {
            if (started == 0) {
                /* No thread at all: do the work on this one. */
                bench_worker(b);
            }
            break;
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->io_lock);
    pthread_mutex_destroy(&b->lock);
    return b->error;
}

/* qemu_strtoul with no end pointer: the whole string, base 0, no overflow. */
static bool
parse_ulong(const char *s, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno || end == s || *end)
        return false;
    *out = v;
    return true;
}

int
cmd_bench(int argc, char **argv)
{
    enum { OPT_FLUSH_INTERVAL = 256, OPT_IMAGE_OPTS, OPT_PATTERN, OPT_NO_DRAIN };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "flush-interval", required_argument, NULL, OPT_FLUSH_INTERVAL },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "pattern", required_argument, NULL, OPT_PATTERN },
        { "no-drain", no_argument, NULL, OPT_NO_DRAIN },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    bool image_opts = false, is_write = false, native_aio = false, drain = true;
    int count = 75000, depth = 64, flush_interval = 0, pattern = 0;
    int64_t offset = 0, bufsize = 4096, step = 0;
    unsigned flags = 0;
    unsigned long ul;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, CLI_OPTSTRING_PREFIX "hc:d:f:ni:o:qs:S:t:wU", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'h': cli_print_help(); return 0;
        case 'c':
            if (!parse_ulong(optarg, &ul) || ul > INT_MAX) {
                cli_error("Invalid request count specified");
                return 1;
            }
            count = (int)ul;
            break;
        case 'd':
            if (!parse_ulong(optarg, &ul) || ul == 0 || ul > INT_MAX) {
                cli_error("Invalid queue depth specified");
                return 1;
            }
            depth = (int)ul;
            break;
        case 'f': fmt = optarg; break;
        case 'n': native_aio = true; break;
        case 'i':
            if (!strcmp(optarg, "native")) {
                native_aio = true;
            } else if (!strcmp(optarg, "threads") || !strcmp(optarg, "io_uring")) {
                native_aio = false;
            } else {
                cli_error("Invalid aio option: %s", optarg);
                return 1;
            }
            break;
        case 'o':
            if (cli_cvtnum("offset", optarg, 0, INT64_MAX, &offset) < 0)
                return 1;
            break;
        case 'q': break; /* bench prints its report regardless */
        case 's':
            if (cli_cvtnum("buffer size", optarg, 0, INT_MAX, &bufsize) < 0)
                return 1;
            break;
        case 'S':
            if (cli_cvtnum("step_size", optarg, 0, INT_MAX, &step) < 0)
                return 1;
            break;
        case 't': {
            int m = dimg_cache_mode_parse(optarg);
            if (m < 0) {
                cli_error("Invalid cache mode");
                return 1;
            }
            flags = (flags & ~DIMG_OPEN_CACHE(0xf)) | DIMG_OPEN_CACHE(m);
            break;
        }
        case 'w':
            flags |= DIMG_OPEN_RDWR;
            is_write = true;
            break;
        case 'U': flags |= DIMG_OPEN_FORCE_SHARE; break;
        case OPT_PATTERN:
            if (!parse_ulong(optarg, &ul) || ul > 0xff) {
                cli_error("Invalid pattern byte specified");
                return 1;
            }
            pattern = (int)ul;
            break;
        case OPT_FLUSH_INTERVAL:
            if (!parse_ulong(optarg, &ul) || ul > INT_MAX) {
                cli_error("Invalid flush interval specified");
                return 1;
            }
            flush_interval = (int)ul;
            break;
        case OPT_NO_DRAIN: drain = false; break;
        case OPT_IMAGE_OPTS: image_opts = true; break;
        default: return cli_bad_option(c, argv);
        }
    }
    if (optind != argc - 1) {
        cli_usage_error("Expecting one image file name");
        return 1;
    }
    const char *filename = argv[argc - 1];
    if (!is_write && flush_interval) {
        cli_error("--flush-interval is only available in write tests");
        return 1;
    }
    if (flush_interval && flush_interval < depth) {
        cli_error("Flush interval can't be smaller than depth");
        return 1;
    }

    if (image_opts && fmt) {
        cli_error("--image-opts and --format are mutually exclusive");
        return 1;
    }
    dimg_image *img = cli_open(filename, fmt, flags, image_opts);
    if (!img)
        return 1;
    enum dimg_cache_mode cache = DIMG_OPEN_CACHE_MODE(img->flags);
    bool direct = cache == DIMG_CACHE_NONE || cache == DIMG_CACHE_DIRECTSYNC;
    if (native_aio && !direct) {
        cli_error("Could not open '%s': aio=native was specified, but it requires "
                  "cache.direct=on, which was not specified.",
                  filename);
        dimg_close(img);
        return 1;
    }
    if (is_write && cli_probed_raw(img, fmt, image_opts, filename))
        cli_warn_probed_raw(dimg_get_filename(img));

    struct bench b = {
        .img = img,
        .image_size = dimg_get_size(img),
        .bufsize = (size_t)bufsize,
        .step = step ? (uint64_t)step : (uint64_t)bufsize,
        .count = count,
        .offset = (uint64_t)offset,
        .write = is_write,
        .pattern = (uint8_t)pattern,
        .flush_interval = flush_interval,
        .drain = drain,
        .depth = depth,
        .burst_left = depth,
    };
    b.serial_io = strcmp(dimg_get_format(img), "raw") != 0 ||
                  (is_write && direct &&
                   ((uint64_t)offset % BENCH_ALIGN || b.step % BENCH_ALIGN ||
                    b.bufsize % BENCH_ALIGN));
    printf("Sending %d %s requests, %d bytes each, %d in parallel "
           "(starting at offset %" PRId64 ", step size %d)\n",
           count, is_write ? "write" : "read", (int)bufsize, depth, offset, (int)b.step);
    if (flush_interval)
        printf("Sending flush every %d requests\n", flush_interval);
    fflush(stdout);

    struct timespec t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int r = bench_run(&b);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    if (r < 0) {
        cli_error("Failed request: %s", strerror(-r));
        dimg_close(img);
        return 1;
    }
    printf("Run completed in %3.3f seconds.\n",
           (double)(t2.tv_sec - t1.tv_sec) + (double)(t2.tv_nsec - t1.tv_nsec) / 1e9);
    if (dimg_close(img) < 0) {
        cli_error_lib("%s", "");
        return 1;
    }
    return 0;
}
