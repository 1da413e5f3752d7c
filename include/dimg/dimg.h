/*
 * libdimg — disk image library compatible with qemu-img's formats.
 *
 * Conventions:
 *  - Every call returning int returns 0 (or a non-negative count) on success and
 *    a negative errno on failure.  Calls returning pointers return NULL on failure.
 *  - On failure the innermost layer records an errno and a message naming the
 *    file and the problem; read them back with dimg_get_error()/dimg_get_errno().
 *    The record is thread-local and stays until the next failure on that thread.
 *  - errno vocabulary: EINVAL bad arguments, EBADMSG corrupt metadata, ENOTSUP
 *    valid image using an unimplemented feature, EFBIG a sanity limit exceeded,
 *    EROFS write to a read-only image, EAGAIN image locked by another process,
 *    EIO/ENOSPC/ENOMEM/ENOENT/EACCES passed through from the system.
 */
#ifndef DIMG_DIMG_H
#define DIMG_DIMG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DIMG_VERSION_MAJOR 0
#define DIMG_VERSION_MINOR 1
#define DIMG_VERSION_MICRO 0
#define DIMG_VERSION_STRING "0.1.0"

typedef struct dimg_image dimg_image;

/* ---- errors ---------------------------------------------------------- */

const char *dimg_get_error(void);
int dimg_get_errno(void);

/* ---- opening --------------------------------------------------------- */

/* Open flags.  The cache mode occupies bits 8..11 (DIMG_OPEN_CACHE(mode)). */
#define DIMG_OPEN_RDWR          0x0001u /* read-write; default read-only */
#define DIMG_OPEN_FORCE_SHARE   0x0002u /* -U: take no locks that could block others */
#define DIMG_OPEN_NO_BACKING    0x0004u /* do not open the backing chain */
#define DIMG_OPEN_NO_LOCK       0x0008u /* file.locking=off */
#define DIMG_OPEN_INFO_ONLY     0x0010u /* "info" lock set: no consistent-read lock */
#define DIMG_OPEN_PROBE_WARN_OK 0x0020u /* probing raw on a writable open is fine */
#define DIMG_OPEN_RESIZE        0x0040u /* the caller will resize (take the resize lock) */
#define DIMG_OPEN_REPAIR        0x1000u /* opened by check -r: corrupt images allowed,
                                         * no automatic repair of dirty ones */
#define DIMG_OPEN_DENY_WRITE    0x0080u /* read-only open that others may not write meanwhile
                                         * (convert sources), even for raw */
#define DIMG_OPEN_CHECK         0x2000u /* opened by check: damage a check reports as
                                         * corruption does not fail the open */

enum dimg_cache_mode {
    DIMG_CACHE_WRITEBACK = 0,
    DIMG_CACHE_NONE,         /* O_DIRECT */
    DIMG_CACHE_UNSAFE,       /* never flush */
    DIMG_CACHE_DIRECTSYNC,   /* O_DIRECT | O_DSYNC */
    DIMG_CACHE_WRITETHROUGH, /* O_DSYNC */
};
#define DIMG_OPEN_CACHE(mode)      (((unsigned)(mode) & 0xfu) << 8)
#define DIMG_OPEN_CACHE_MODE(flags) ((enum dimg_cache_mode)(((flags) >> 8) & 0xfu))

/* Parse a qemu-img cache mode name ("writeback", "none", "off", "unsafe",
 * "directsync", "writethrough"); returns the mode or -EINVAL. */
int dimg_cache_mode_parse(const char *name);

/*
 * Open an image.  format NULL means probe.  Image options (--image-opts
 * style "driver=raw,file.filename=x") are accepted by dimg_open_opts().
 */
dimg_image *dimg_open(const char *filename, const char *format, unsigned flags);
dimg_image *dimg_open_opts(const char *image_opts, unsigned flags);

/* Flush (if writable), release locks, free.  Returns the flush result. */
int dimg_close(dimg_image *img);

const char *dimg_get_filename(const dimg_image *img);
const char *dimg_get_format(const dimg_image *img);
uint64_t dimg_get_size(const dimg_image *img);
/* Next image in the backing chain, or NULL. */
dimg_image *dimg_get_backing(const dimg_image *img);
/* Preferred I/O granularity (cluster size, or 0 when the format has none). */
uint32_t dimg_get_cluster_size(const dimg_image *img);

/*
 * Point img (open read-write) at another backing file without copying any
 * data (rebase -u); backing NULL or "" makes it standalone.  backing_fmt may
 * be NULL (the format is then probed on open).  -ENOSPC when the name does
 * not fit in the image's header, -ENOTSUP for formats without backing files.
 */
int dimg_change_backing_file(dimg_image *img, const char *backing, const char *backing_fmt);

/*
 * qemu-img commit: copy everything top's chain holds above base (an image of
 * top's backing chain, e.g. dimg_get_backing(top)) into base, growing base to
 * top's size when it is smaller; then, unless DIMG_COMMIT_DROP, empty top so
 * it reads through to its backing file.  base is reopened read-write in place
 * (the handle stays valid).  rate_limit: bytes per second, 0 = unlimited.
 * progress (may be NULL) gets the percentage done.  Base data is flushed
 * before top is emptied, so an interruption never changes top's content.
 */
#define DIMG_COMMIT_DROP 0x1u /* -d: leave top as it is */
int dimg_commit(dimg_image *top, dimg_image *base, unsigned flags, uint64_t rate_limit,
                void (*progress)(double percent, void *opaque), void *opaque);

/* ---- I/O ------------------------------------------------------------- */

int dimg_pread(dimg_image *img, void *buf, size_t len, uint64_t offset);
int dimg_pwrite(dimg_image *img, const void *buf, size_t len, uint64_t offset);

/*
 * Write one cluster compressed (formats with compression: qcow2).  off must be
 * cluster aligned and len one cluster, or what is left of the image.  Safe to
 * call from several threads at once: compression runs in parallel.  -ENOTSUP
 * when the format has no compressed clusters.
 */
int dimg_write_compressed(dimg_image *img, const void *buf, size_t len, uint64_t offset);
/* true when the image stores everything compressed (vmdk streamOptimized): copy
 * into it cluster by cluster with dimg_write_compressed. */
int dimg_is_compressed_only(const dimg_image *img);

#define DIMG_ZERO_MAY_UNMAP 0x1u /* the range may be deallocated */
#define DIMG_ZERO_NO_FALLBACK 0x2u /* fail with -ENOTSUP rather than write zeros */
int dimg_zero(dimg_image *img, uint64_t offset, uint64_t len, unsigned flags);
int dimg_discard(dimg_image *img, uint64_t offset, uint64_t len);
int dimg_flush(dimg_image *img);

enum dimg_prealloc {
    DIMG_PREALLOC_OFF = 0,
    DIMG_PREALLOC_METADATA,
    DIMG_PREALLOC_FALLOC,
    DIMG_PREALLOC_FULL,
};
/* Parse "off"/"metadata"/"falloc"/"full"; returns the mode or -EINVAL. */
int dimg_prealloc_parse(const char *name);

#define DIMG_TRUNCATE_SHRINK 0x1u /* allow making the image smaller */
int dimg_truncate(dimg_image *img, uint64_t size, enum dimg_prealloc prealloc, unsigned flags);

/*
 * Change format options of an image open read-write (qemu-img amend): options
 * is -o syntax ("compat=0.10,refcount_bits=8").  -ENOTSUP "Format driver 'x'
 * does not support option amendment" for formats that cannot.  Changes are
 * applied one after the other, as qemu-img does: on failure the earlier ones
 * stay applied.  progress (may be NULL) receives 0..100.
 */
#define DIMG_AMEND_FORCE 0x1u /* --force */
int dimg_amend(dimg_image *img, const char *options, unsigned flags,
               void (*progress)(double percent, void *opaque), void *opaque);
/* qemu-img amend's -o help text for format ("Amend options for 'fmt':" ...);
 * -EINVAL for an unknown format, -ENOTSUP when it cannot amend. */
int dimg_amend_options_help(const char *format, char **text_out);

/*
 * Copy len bytes from src to dst without passing them through this process
 * (copy_file_range), when both images store guest bytes linearly in their
 * files (raw).  -ENOTSUP when that is not possible; callers fall back to
 * reading and writing.
 */
int dimg_copy_range(dimg_image *src, uint64_t src_offset, dimg_image *dst, uint64_t dst_offset,
                    uint64_t len);

/* ---- block status ---------------------------------------------------- */

#define DIMG_EXTENT_ALLOCATED  0x01u /* present: allocated in some layer of the chain */
#define DIMG_EXTENT_ZERO       0x02u /* reads as zeros */
#define DIMG_EXTENT_DATA       0x04u /* host storage holds data (may be zeros) */
#define DIMG_EXTENT_OFFSET     0x08u /* host_offset is valid */
#define DIMG_EXTENT_COMPRESSED 0x10u
/* With DIMG_EXTENT_DATA: the host storage is a hole (or past its end), so the
 * run reads as zeros (DIMG_EXTENT_ZERO is set too) although it is allocated. */
#define DIMG_EXTENT_HOLE       0x20u

struct dimg_extent {
    uint64_t offset;      /* guest offset */
    uint64_t length;
    unsigned flags;       /* DIMG_EXTENT_* */
    int depth;            /* 0 = this image, 1 = its backing file, ... */
    uint64_t host_offset; /* valid with DIMG_EXTENT_OFFSET */
    const dimg_image *file_owner; /* the image whose file host_offset refers to */
    /* The host file host_offset refers to when it is not file_owner's data
     * file (a VMDK extent file, say); NULL otherwise. */
    const char *filename;
};

/*
 * Describe the longest run starting at offset (at most len bytes) that has
 * uniform status, walking the backing chain.  Returns 0 and fills *out
 * (out->length > 0), or a negative errno.
 */
int dimg_block_status(dimg_image *img, uint64_t offset, uint64_t len, struct dimg_extent *out);

/* Path of the host file holding an extent's data (for map's "File" column). */
const char *dimg_get_data_filename(const dimg_image *img);

/* ---- info ------------------------------------------------------------ */

/*
 * A small value tree for format-specific information, shaped like
 * qemu-img's JSON ("compat", "lazy-refcounts", ...).
 */
enum dimg_value_type { DIMG_VALUE_INT, DIMG_VALUE_UINT, DIMG_VALUE_BOOL, DIMG_VALUE_STRING,
                       DIMG_VALUE_OBJECT, DIMG_VALUE_ARRAY };
struct dimg_value {
    enum dimg_value_type type;
    const char *key;            /* member name inside an object, else NULL */
    union {
        int64_t i;
        uint64_t u;
        int b;
        char *s;
    } v;
    struct dimg_value *child;   /* first member/element (object, array) */
    struct dimg_value *next;    /* next sibling */
};

struct dimg_info {
    char *filename;
    char *format;
    uint64_t virtual_size;
    int64_t actual_size;        /* host bytes allocated; -1 unknown */
    int dirty_flag;             /* -1 when the format has none */
    uint32_t cluster_size;      /* 0 when the format has none */
    int encrypted;
    char *backing_filename;     /* as stored in the image */
    char *full_backing_filename;
    char *backing_format;
    struct dimg_value *format_specific; /* {"type": "qcow2", "data": {...}} or NULL */
};

int dimg_get_info(dimg_image *img, struct dimg_info *out);
void dimg_info_free(struct dimg_info *info);

/* ---- internal snapshots ------------------------------------------------ */

struct dimg_snapshot {
    char *id;
    char *name;
    uint64_t vm_state_size;
    uint32_t date_sec, date_nsec;  /* when it was taken (seconds since the epoch) */
    uint64_t vm_clock_nsec;        /* guest run time */
    int64_t icount;                /* -1: not recorded */
};

/* The image's internal snapshots (none: *count 0); free with dimg_snapshot_list_free. */
int dimg_snapshot_list(dimg_image *img, struct dimg_snapshot **out, size_t *count);
void dimg_snapshot_list_free(struct dimg_snapshot *list, size_t count);

/* ---- persistent dirty bitmaps (qcow2) ---------------------------------- */

#define DIMG_BITMAP_IN_USE 0x1u /* not saved properly (writer crashed): unusable, removable */
#define DIMG_BITMAP_AUTO   0x2u /* enabled: records every guest write */

struct dimg_bitmap_info {
    char *name;
    uint64_t granularity;  /* guest bytes per bit */
    unsigned flags;        /* DIMG_BITMAP_* */
};

/* Whether the image can store persistent bitmaps (qcow2 v3). */
int dimg_bitmap_supported(const dimg_image *img);
/* The image's bitmaps in directory order (none: *count 0); free with dimg_bitmap_list_free. */
int dimg_bitmap_list(dimg_image *img, struct dimg_bitmap_info **out, size_t *count);
void dimg_bitmap_list_free(struct dimg_bitmap_info *list, size_t count);
/*
 * Changes to an image open read-write; they reach the disk at dimg_close
 * (remove: at once).  granularity 0 picks the format's default.  Errors:
 * -ENOENT no such bitmap, -EEXIST name taken, -EBUSY bitmap in use
 * (inconsistent), -ENOSYS the format has no bitmaps at all; for add, other
 * errors than these and -EINVAL say why this image cannot store the bitmap.
 */
int dimg_bitmap_add(dimg_image *img, const char *name, uint64_t granularity, int enabled);
int dimg_bitmap_remove(dimg_image *img, const char *name);
int dimg_bitmap_clear(dimg_image *img, const char *name);
int dimg_bitmap_set_enabled(dimg_image *img, const char *name, int enabled);
/* Set in bitmap name of img every bit set in src_name of src (src may be img). */
int dimg_bitmap_merge(dimg_image *img, const char *name, dimg_image *src, const char *src_name);
/*
 * Create, apply or delete an internal snapshot (image open read-write), as
 * qemu-img snapshot -c/-a/-d: apply matches an id first, then a name; delete
 * matches names only.  Each is atomic: a process killed meanwhile leaves the
 * image as it was before or after.  Apply also sets the virtual size to the
 * snapshot's.
 */
int dimg_snapshot_create(dimg_image *img, const char *name);
int dimg_snapshot_apply(dimg_image *img, const char *name_or_id);
int dimg_snapshot_delete(dimg_image *img, const char *name_or_id);
/* Make a read-only image read the snapshot matching id and/or name (either
 * may be NULL) instead of its active state; the virtual size stays (as qemu). */
int dimg_snapshot_load(dimg_image *img, const char *id, const char *name);

/* ---- consistency check ------------------------------------------------ */

#define DIMG_CHECK_FIX_LEAKS  0x1u  /* check -r leaks */
#define DIMG_CHECK_FIX_ERRORS 0x2u  /* check -r all (with FIX_LEAKS) */

/* What a check found, as qemu-img check reports it (0 in a count: none/unknown). */
struct dimg_check {
    int64_t corruptions, leaks, check_errors;
    int64_t corruptions_fixed, leaks_fixed;
    int64_t image_end_offset;
    int64_t total_clusters, allocated_clusters, fragmented_clusters, compressed_clusters;
};

/*
 * qemu-img check: fill *out and return 0 when the check ran (its findings are
 * in *out), a negative errno when it could not.  fix is DIMG_CHECK_FIX_* (the
 * image must then be open read-write with DIMG_OPEN_REPAIR).  -ENOTSUP: the
 * format has no checks (or, for fix, no repair).  Findings are also described
 * one per line on stderr, as qemu-img prints them.
 */
int dimg_check(dimg_image *img, unsigned fix, struct dimg_check *out);

/* ---- creating -------------------------------------------------------- */

/*
 * Create an image.  options is qemu-img's -o syntax ("a=b,c=d", ",," escapes a
 * comma) or NULL; size is in bytes (-1: take it from the backing file).
 * When formatting_line is not NULL it receives qemu-img's "Formatting ..."
 * line (malloc'd, without newline) before the image is written.
 */
#define DIMG_CREATE_NO_BACKING_CHECK 0x1u /* -u: do not open the backing file */
#define DIMG_CREATE_QUIET            0x2u
int dimg_create(const char *filename, const char *format, int64_t size, const char *options,
                unsigned flags, void (*formatting)(const char *line, void *opaque), void *opaque);

/* The names of the formats this build supports, NULL-terminated. */
const char *const *dimg_format_names(void);
/* Print the -o help text for format (and, if with_protocol, the file options). */
int dimg_create_options_help(const char *format, int with_protocol, char **text_out);

/* ---- size parsing ---------------------------------------------------- */

/*
 * Parse a qemu-img size: a number with an optional suffix b, k/K, M, G, T, P,
 * E (default_unit applies without suffix, 1 for bytes).  Returns 0 or
 * -EINVAL (malformed) / -ERANGE (too large).
 */
int dimg_parse_size(const char *s, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
