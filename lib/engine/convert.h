/*
 * The convert engine: copy one or more source images, concatenated, into a
 * target image through the public image API only (dimg_pread, dimg_pwrite,
 * dimg_zero, dimg_block_status, dimg_flush), so it works for every format in
 * the driver table.  The library never prints: progress goes to a callback.
 */
#ifndef DIMG_ENGINE_CONVERT_H
#define DIMG_ENGINE_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dimg/dimg.h"

/* Largest -S value qemu-img accepts (bytes). */
#define CONVERT_MAX_SPARSE_SIZE (16u << 20)
/* -m range. */
#define CONVERT_MAX_WORKERS 16

struct convert_params {
    dimg_image *const *src;   /* sources, concatenated in this order */
    size_t nsrc;
    dimg_image *dst;          /* opened read-write, at least convert_total_size() bytes */
    /*
     * -S: zero runs of at least this many bytes in data are not written
     * (left sparse, or zeroed with DIMG_ZERO_MAY_UNMAP when the target is not
     * known to be zero).  0: no zero detection and a fully allocated output.
     * Must be a multiple of 512.
     */
    uint64_t sparse_size;
    bool target_is_zero;      /* the target already reads as zeros (fresh, or --target-is-zero) */
    /* -B: the target has a backing file; only the sources' top layer is copied
     * (qemu-img's rule: the backing file holds what the sources' base holds). */
    bool target_has_backing;
    unsigned workers;         /* -m: parallel requests, 1..CONVERT_MAX_WORKERS */
    bool out_of_order;        /* -W: writes may land out of order */
    uint64_t rate_limit;      /* -r: bytes per second, 0 = unlimited */
    bool compress;            /* -c: write every non-zero cluster compressed */
    bool copy_offload;        /* -C: copy data extents with dimg_copy_range when possible */
    /* Called with the percentage done (0..100), from one thread at a time. */
    void (*progress)(double percent, void *opaque);
    void *opaque;
};

/*
 * Size of the concatenated sources as the target sees them: every source
 * starts on a 512-byte boundary, as with qemu-img.
 */
uint64_t convert_total_size(dimg_image *const *src, size_t nsrc);

/*
 * Copy.  Returns 0, or a negative errno with the error recorded
 * (dimg_get_error()).  The target is flushed at the end (a no-op in cache
 * mode "unsafe").
 */
int engine_convert(const struct convert_params *p);

/*
 * Zero detection helpers (exported for unit tests).
 * convert_is_zero: true when all len bytes of buf are zero.
 * convert_zero_run: length of the run of whole zero (or, with want_zero
 * false, non-zero) 512-byte sectors at the start of buf (len bytes; a
 * trailing partial sector counts as a sector).
 */
bool convert_is_zero(const void *buf, size_t len);

/* Run fn(arg) on n threads, the caller's included, and wait for all of them. */
void convert_run_workers(void *(*fn)(void *), void *arg, unsigned n);
/* After the workers: flush the target on success, else re-record the first
 * worker's message (errmsg, freed here) on the calling thread. */
int convert_finish(dimg_image *dst, int error, char *errmsg);

/* convert-compress.c: the -c path, cluster-aligned and compressing on every worker. */
int convert_compressed(const struct convert_params *p);
size_t convert_sector_run(const uint8_t *buf, size_t len, bool want_zero);

#endif
