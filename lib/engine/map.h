/*
 * map engine: walk an image's allocation as `qemu-img map` reports it,
 * merging adjacent runs with identical properties.  Built only on the public
 * image API (dimg_block_status walks the backing chain).  Never prints.
 */
#ifndef DIMG_ENGINE_MAP_H
#define DIMG_ENGINE_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include "dimg/dimg.h"

struct dimg_map_entry {
    uint64_t start;          /* guest offset */
    uint64_t length;         /* 0 only for the single entry of an empty range */
    int depth;               /* backing chain layer that resolved the run */
    bool present;            /* allocated in some layer */
    bool zero;               /* reads as zeros */
    bool data;               /* host storage holds data */
    bool compressed;
    bool has_offset;         /* offset and file are valid */
    uint64_t offset;         /* host offset inside file's data file */
    const dimg_image *file;  /* the image whose data file holds the run */
    const char *filename;    /* the host file holding the run (with has_offset) */
};

/* Human output treats every run that is not "data and not zero" alike, so such
 * runs merge with each other (qemu-img does the same). */
#define DIMG_MAP_HUMAN 0x1u

/*
 * Called once per merged entry, in order.  next is the entry that follows
 * (already started, may still grow) or NULL for the last one.  A negative
 * return stops the walk and is returned by dimg_map_walk().
 */
typedef int (*dimg_map_fn)(const struct dimg_map_entry *e, const struct dimg_map_entry *next,
                           void *opaque);

/*
 * Map [start, min(start + max_length, size)).  max_length UINT64_MAX means
 * "to the end".  A start at or past the end yields one entry of length 0 with
 * every flag false, as qemu-img prints it.  Returns 0, a negative errno from
 * dimg_block_status (error recorded), or the callback's negative value.
 */
int dimg_map_walk(dimg_image *img, uint64_t start, uint64_t max_length, unsigned flags,
                  dimg_map_fn fn, void *opaque);

#endif
