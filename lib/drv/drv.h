/*
 * The driver table: one const struct per format.  A NULL callback means
 * "unsupported"; the core reports "<fmt>: <op> not supported".  The core does
 * bounds checks, read-only enforcement and backing-chain fall-through, so
 * drivers only describe their own layer.
 */
#ifndef DIMG_DRV_DRV_H
#define DIMG_DRV_DRV_H

#include "core/internal.h"
#include "io/io.h"

#define DIMG_DRV_BACKING   0x1u  /* the format can have a backing file */
#define DIMG_DRV_SNAPSHOTS 0x2u
#define DIMG_DRV_CREATE    0x4u
#define DIMG_DRV_READONLY  0x8u
#define DIMG_DRV_LINEAR    0x20u  /* guest offset == file offset (raw): copy offloading works */
#define DIMG_DRV_RESIZE_LOCK 0x10u /* a writer also takes the resize lock (formats that grow the file) */

struct dimg_create_args {
    const char *filename;
    uint64_t size;
    const struct dimg_opts *opts; /* validated against the driver's table */
    unsigned flags;              /* DIMG_CREATE_* */
};

struct dimg_measure {
    uint64_t required;
    uint64_t fully_allocated;
    uint64_t bitmaps;            /* only reported when has_bitmaps */
    bool has_bitmaps;
};

struct dimg_driver {
    const char *name;            /* exactly qemu-img's -f value */
    unsigned flags;              /* DIMG_DRV_* */
    size_t state_size;
    const struct dimg_optdesc *create_opts;   /* NULL-name terminated */
    /* Confidence 0..100 that head (the first len bytes) is this format. */
    int (*probe)(const uint8_t *head, size_t len, const char *filename);
    int (*open)(struct dimg_image *img);
    void (*close)(struct dimg_image *img);
    /* Semantic checks of the create options, run after the "Formatting" line
     * and before the file is created (qemu-img creates nothing on these errors). */
    int (*check_create)(const struct dimg_create_args *args);
    /* file is created, locked and empty; size already validated. */
    int (*create)(struct dimg_io *file, const struct dimg_create_args *args);
    /* The "Formatting ..." line's option part after "fmt=NAME ". */
    char *(*describe_create)(const struct dimg_create_args *args);
    int (*pread)(struct dimg_image *img, void *buf, size_t len, uint64_t off);
    int (*pwrite)(struct dimg_image *img, const void *buf, size_t len, uint64_t off);
    /* One whole cluster (or the image's last, shorter one), cluster aligned. */
    int (*pwrite_compressed)(struct dimg_image *img, const void *buf, size_t len, uint64_t off);
    int (*zero)(struct dimg_image *img, uint64_t off, uint64_t len, unsigned flags);
    int (*discard)(struct dimg_image *img, uint64_t off, uint64_t len);
    int (*flush)(struct dimg_image *img);
    /* This layer only: DIMG_EXTENT_ALLOCATED clear means "ask the backing file". */
    int (*block_status)(struct dimg_image *img, uint64_t off, uint64_t len,
                        struct dimg_extent *out);
    int (*info)(struct dimg_image *img, struct dimg_info *out);
    int (*snapshot_list)(struct dimg_image *img, struct dimg_snapshot **out, size_t *count);
    int (*truncate)(struct dimg_image *img, uint64_t size, enum dimg_prealloc prealloc,
                    unsigned flags);
    int (*measure)(const struct dimg_opts *opts, uint64_t size, struct dimg_image *src,
                   struct dimg_measure *out);
    /* qemu-img check: fill *out (zeroed by the caller); fix is DIMG_CHECK_FIX_*
     * (the image is then open read-write).  Returns 0 when the check ran (its
     * findings are in *out) or a negative errno when it could not.  NULL: the
     * format has no checks ("This image format does not support checks", exit 63). */
    int (*check)(struct dimg_image *img, unsigned fix, struct dimg_check *out);
    /* Rewrite the backing file reference (backing NULL: none; backing_fmt may be NULL). */
    int (*change_backing)(struct dimg_image *img, const char *backing, const char *backing_fmt);
    /* Internal snapshots (the image is open read-write; lookups as qemu-img's
     * snapshot -a (id, then name) and -d (name)). */
    int (*snapshot_create)(struct dimg_image *img, const char *name);
    int (*snapshot_goto)(struct dimg_image *img, const char *name_or_id);
    int (*snapshot_delete)(struct dimg_image *img, const char *name_or_id);
    /* Read-only image: show the snapshot matching id and/or name (either NULL). */
    int (*snapshot_load)(struct dimg_image *img, const char *id, const char *name);
    /* Writable image being closed: write back state kept in memory (qcow2
     * bitmaps), before the final flush. */
    int (*inactivate)(struct dimg_image *img);
    /* Persistent dirty bitmaps (lib/core/bitmap.c validates names); NULL: none. */
    int (*bitmap_list)(struct dimg_image *img, struct dimg_bitmap_info **out, size_t *count);
    int (*bitmap_add)(struct dimg_image *img, const char *name, uint32_t granularity,
                      bool enabled);
    int (*bitmap_remove)(struct dimg_image *img, const char *name);
    int (*bitmap_clear)(struct dimg_image *img, const char *name);
    int (*bitmap_set_enabled)(struct dimg_image *img, const char *name, bool enabled);
    /* NULL: every image of the format can store bitmaps. */
    bool (*bitmap_can_store)(const struct dimg_image *img);
    /* src has the same driver. */
    int (*bitmap_merge)(struct dimg_image *img, const char *name, struct dimg_image *src,
                        const char *src_name);
    /* qemu-img amend: the options that can be changed (NULL-name terminated,
     * in -o help order); NULL: the format does not support amendment. */
    const struct dimg_optdesc *amend_opts;
    /* opts are validated against amend_opts (names and typed values); the
     * image is open read-write.  progress (may be NULL) gets 0..100. */
    int (*amend)(struct dimg_image *img, const struct dimg_opts *opts, bool force,
                 void (*progress)(double percent, void *opaque), void *opaque);
    /* commit: drop everything this layer holds so that it reads through to
     * its backing file (the image is open read-write). */
    int (*make_empty)(struct dimg_image *img);
    /* Change the lock permissions of the files the driver opened itself
     * (vmdk extent files; img->file is the core's), as io_set_perm does for
     * one file.  Called only on locked images.  NULL: no such files. */
    int (*set_perm)(struct dimg_image *img, unsigned perm, unsigned shared);
};

/* registry.c */
const struct dimg_driver *driver_find(const char *name);
const struct dimg_driver *const *driver_list(void);
/* The driver with the best probe score for the file's first bytes (raw when none). */
const struct dimg_driver *driver_probe(const uint8_t *head, size_t len, const char *filename);

extern const struct dimg_driver dimg_drv_raw;
extern const struct dimg_driver dimg_drv_qcow2;
extern const struct dimg_driver dimg_drv_vdi;
extern const struct dimg_driver dimg_drv_vpc;
extern const struct dimg_driver dimg_drv_vmdk;
extern const struct dimg_driver dimg_drv_vhdx;

#endif
