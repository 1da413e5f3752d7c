/*
 * qcow2 driver internals.  Format: shared/specs/qemu-qcow2.txt (versions 2 and
 * 3, big-endian, two-level L1/L2 mapping, optional extended L2 entries).
 */
#ifndef DIMG_DRV_QCOW2_H
#define DIMG_DRV_QCOW2_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "crypto/luks-header.h"
#include "drv/drv.h"
#include "util/endian.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */

#define QCOW2_INCOMPAT_DIRTY       (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT     (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2       (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN       0x1full
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)
#define QCOW2_AUTOCLEAR_BITMAPS    (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_RAW   (1ull << 1)

#define QCOW2_EXT_END          0x00000000u
#define QCOW2_EXT_BACKING_FMT  0xe2792acau
#define QCOW2_EXT_FEATURES     0x6803f857u
#define QCOW2_EXT_BITMAPS      0x23852875u
#define QCOW2_EXT_CRYPTO       0x0537be77u
#define QCOW2_EXT_DATA_FILE    0x44415441u

/* L1/L2 entry bits */
#define QCOW2_OFLAG_COPIED     (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO       (1ull << 0)
#define QCOW2_OFFSET_MASK      0x00fffffffffffe00ull /* bits 9..55 */
#define QCOW2_L1_RESERVED      0x7f000000000001ffull
#define QCOW2_L2_RESERVED      0x3f000000000001feull

/* Limits qemu enforces, kept so dimg never allocates more than qemu would. */
#define QCOW2_MAX_L1_BYTES     (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_SNAPSHOTS    65536
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21

enum qcow2_compression { QCOW2_COMPRESS_ZLIB = 0, QCOW2_COMPRESS_ZSTD = 1 };

/* What a run of guest bytes maps to. */
enum qcow2_kind {
    QCOW2_UNALLOCATED,    /* ask the backing file */
    QCOW2_ZERO,           /* reads as zeros, no host cluster */
    QCOW2_ZERO_ALLOC,     /* reads as zeros, host cluster preallocated */
    QCOW2_NORMAL,         /* data at host_offset */
    QCOW2_COMPRESSED,     /* one compressed cluster */
};

struct qcow2_run {
    enum qcow2_kind kind;
    uint64_t length;      /* bytes from the requested offset */
    uint64_t host_offset; /* with has_host: host offset of the first byte */
    bool has_host;        /* NORMAL, ZERO_ALLOC, or UNALLOCATED subclusters of an allocated cluster */
    uint64_t descriptor;  /* COMPRESSED: the raw L2 descriptor */
};

struct qcow2_snapshot {
    uint64_t l1_offset;
    uint32_t l1_size;
    char *id, *name;
    uint32_t date_sec, date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t vm_state_size;
    uint64_t disk_size;
    int64_t icount;
    uint8_t *extra;       /* the entry's raw extra data: unknown fields survive a rewrite */
    uint32_t extra_len;
};

/* A header extension kept verbatim across header rewrites (bitmaps, unknown types). */
struct qcow2_ext {
    uint32_t type;
    uint32_t len;
    uint8_t *data;
};

#define QCOW2_L2_CACHE_SLOTS 32

struct qcow2_l2_slot {
    uint64_t offset;      /* host offset of the L2 table; 0 = empty */
    uint64_t last_use;
    uint64_t *table;      /* host-endian entries */
    bool dirty;           /* must be written (after the refcount blocks) */
};

#define QCOW2_RB_CACHE_SLOTS 8

struct qcow2_rb_slot {
    uint64_t offset;
    uint64_t last_use;
    uint8_t *block;       /* on-disk (big-endian) layout */
    bool dirty;
};

struct qcow2_state {
    uint32_t version;
    uint32_t cluster_bits;
    uint32_t cluster_size;
    uint64_t incompat, compat, autoclear;
    uint32_t crypt_method;
    uint32_t refcount_order;
    uint32_t header_length;
    enum qcow2_compression compression;
    bool extended_l2;
    uint32_t l2_entry_size;   /* 8 or 16 bytes */
    uint32_t l2_entries;      /* entries per L2 table */
    uint32_t subcluster_bits; /* log2 of the subcluster size */

    uint32_t l1_size;
    uint64_t l1_offset;
    uint64_t *l1;             /* host-endian */
    uint64_t refcount_table_offset;
    uint32_t refcount_table_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    struct qcow2_snapshot *snaps; /* parsed table (qcow2-snapshot.c) */
    uint32_t nsnap;
    uint64_t snapshots_size;  /* bytes the snapshot table occupies */

    char *data_file_name;
    uint64_t crypto_offset;     /* full disk encryption header extension; 0: none */
    uint64_t crypto_length;
    struct luks_header luks;    /* crypt_method 2, opened for info (qcow2-crypto.c) */
    bool luks_loaded;
    struct qcow2_ext *exts;     /* rewritten unchanged by qcow2_header_write() */
    size_t n_exts;
    struct dimg_io *data_file;  /* where guest data lives (== img->file without a data file) */
    bool owns_data_file;
    int8_t looks_preallocated;  /* metadata preallocation guessed: -1 not yet asked, 0, 1 */

    /* Recursive: the write path reads old cluster contents through the read path. */
    pthread_mutex_t lock;       /* guards all metadata caches and allocation */
    struct qcow2_l2_slot l2_cache[QCOW2_L2_CACHE_SLOTS];
    uint64_t l2_clock;

    /* Write support (qcow2-refcount.c, qcow2-write.c) */
    uint64_t *reftable;         /* host-endian */
    uint64_t reftable_entries;
    bool reftable_dirty;
    uint64_t reftable_written_offset;
    struct qcow2_rb_slot rb_cache[QCOW2_RB_CACHE_SLOTS];
    uint64_t rb_clock;
    uint64_t alloc_next;        /* host offset where the next cluster is allocated */
    uint64_t *pending_free;     /* host clusters to unreference after the next L2/L1 flush */
    size_t pending_free_n, pending_free_cap;
    uint32_t l1_dirty_lo, l1_dirty_hi; /* dirty L1 range [lo, hi); lo == hi: clean */
    uint64_t cbyte;             /* next free byte for compressed data, 0: none */
    bool cbyte_counted;         /* the cluster at cbyte already counts its next user */
    bool write_ready;           /* refcounts loaded, autoclear bits cleared */
    struct qcow2_bitmaps *bitmaps; /* persistent dirty bitmaps (qcow2-bitmap.c); NULL: none */
};

/* qcow2-map.c */
int qcow2_map_locked(struct dimg_image *img, struct qcow2_state *s, uint64_t off, uint64_t len,
                     struct qcow2_run *run);
int qcow2_map_range(struct dimg_image *img, uint64_t off, uint64_t len, struct qcow2_run *run);
void qcow2_l2_cache_free(struct qcow2_state *s);
int qcow2_pread(struct dimg_image *img, void *buf, size_t len, uint64_t off);
int qcow2_block_status(struct dimg_image *img, uint64_t off, uint64_t len, struct dimg_extent *out);

int qcow2_l2_slot_get(struct dimg_image *img, uint64_t l2_off, bool fresh,
                      struct qcow2_l2_slot **out);
int qcow2_l2_flush(struct dimg_image *img);

/* qcow2-snapshot.c */
int qcow2_snapshots_load(struct dimg_image *img);
void qcow2_snapshots_free(struct qcow2_state *s);
int qcow2_snapshot_list(struct dimg_image *img, struct dimg_snapshot **out, size_t *count);
/* Index of the snapshot matching id and/or name (either may be NULL), or -1. */
int qcow2_snapshot_find(const struct qcow2_state *s, const char *id, const char *name);
int qcow2_snapshot_load_tmp(struct dimg_image *img, const char *id, const char *name);
/* Check a snapshot's L1 table location and size against the file. */
int qcow2_snapshot_l1_valid(struct dimg_image *img, const struct qcow2_snapshot *sn);
/* A snapshot's L1 table, host-endian, entries as stored (malloc'd). */
int qcow2_snapshot_read_l1(struct dimg_image *img, const struct qcow2_snapshot *sn, uint64_t **out);

/* qcow2-snapshot-write.c */
int qcow2_snapshot_create(struct dimg_image *img, const char *name);
int qcow2_snapshot_goto(struct dimg_image *img, const char *name_or_id);
int qcow2_snapshot_delete(struct dimg_image *img, const char *name_or_id);

/* qcow2-compress.c */
int qcow2_decompress_cluster(struct dimg_image *img, uint64_t descriptor, uint8_t *out);
/* Compress one cluster; returns the compressed length, or 0 when it does not shrink. */
size_t qcow2_compress_cluster(const struct qcow2_state *s, const uint8_t *in, uint8_t *out);

static inline bool
qcow2_has_data_file(const struct qcow2_state *s)
{
    return (s->incompat & QCOW2_INCOMPAT_DATA_FILE) != 0;
}

/*
 * Does this L2 entry give its cluster host storage?  Compressed clusters have
 * it; otherwise an offset does, and with an external data file offset 0 is a
 * real host cluster when OFLAG_COPIED marks it (the spec's disambiguation).
 */
static inline bool
qcow2_entry_has_host(const struct qcow2_state *s, uint64_t entry)
{
    if (entry & QCOW2_OFLAG_COMPRESSED)
        return true;
    return (entry & QCOW2_OFFSET_MASK) != 0 ||
           (qcow2_has_data_file(s) && (entry & QCOW2_OFLAG_COPIED));
}

/* Entry i of a refcount block in its on-disk layout (2^order bits per entry). */
static inline uint64_t
qcow2_rb_entry_get(unsigned order, const uint8_t *b, uint64_t i)
{
    switch (order) {
    case 3: return b[i];
    case 4: return load_be16(b + i * 2);
    case 5: return load_be32(b + i * 4);
    case 6: return load_be64(b + i * 8);
    default: {
        unsigned bits = 1u << order;
        uint64_t bit = i * bits;
        return (b[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
    }
    }
}

static inline void
qcow2_rb_entry_set(unsigned order, uint8_t *b, uint64_t i, uint64_t v)
{
    switch (order) {
    case 3: b[i] = (uint8_t)v; break;
    case 4: store_be16(b + i * 2, (uint16_t)v); break;
    case 5: store_be32(b + i * 4, (uint32_t)v); break;
    case 6: store_be64(b + i * 8, v); break;
    default: {
        unsigned bits = 1u << order;
        uint64_t bit = i * bits;
        uint8_t mask = (uint8_t)(((1u << bits) - 1) << (bit % 8));
        b[bit / 8] = (uint8_t)((b[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
    }
    }
}

/* qcow2-refcount.c */
int qcow2_refcount_init(struct dimg_image *img);
/* Drop cached refcount state and load the structure the header names. */
int qcow2_refcount_reload(struct dimg_image *img);
void qcow2_refcount_free(struct qcow2_state *s);
int qcow2_rb_get(struct dimg_image *img, uint64_t off, uint8_t **block);
int qcow2_rb_flush(struct dimg_image *img);
bool qcow2_refcounts_dirty(const struct qcow2_state *s);
int qcow2_count_referenced(struct dimg_image *img, uint64_t n, uint64_t limit, uint64_t *count);
int qcow2_refcount_get(struct dimg_image *img, uint64_t cluster, uint64_t *rc);
uint64_t qcow2_refcount_max(const struct qcow2_state *s);
int qcow2_refcount_update(struct dimg_image *img, uint64_t cluster, int64_t delta, int depth);
int qcow2_refcount_update_to(struct dimg_image *img, uint64_t cluster, int64_t delta, int depth,
                             uint64_t *after);
int qcow2_alloc_clusters(struct dimg_image *img, uint64_t n, uint64_t *host);
int qcow2_reftable_commit(struct dimg_image *img);
/* Or'd into a qcow2_free_later() offset: punch the cluster out of the file
 * when its refcount reaches zero (a guest discard or zero write with unmap). */
#define QCOW2_FREE_DISCARD 1u
int qcow2_free_later(struct dimg_image *img, uint64_t host_cluster_offset);
int qcow2_apply_frees(struct dimg_image *img);

/* qcow2-write.c */
int qcow2_barrier(struct dimg_image *img);
int qcow2_write_prepare(struct dimg_image *img);
int qcow2_clear_incompat(struct dimg_image *img, uint64_t bits);

/* qcow2-resize.c */
int qcow2_truncate(struct dimg_image *img, uint64_t size, enum dimg_prealloc prealloc,
                   unsigned flags);
int qcow2_pwrite(struct dimg_image *img, const void *buf, size_t len, uint64_t off);
int qcow2_pwrite_compressed(struct dimg_image *img, const void *buf, size_t len, uint64_t off);
int qcow2_zero(struct dimg_image *img, uint64_t off, uint64_t len, unsigned flags);
int qcow2_discard(struct dimg_image *img, uint64_t off, uint64_t len);
int qcow2_flush(struct dimg_image *img);
int qcow2_preallocate(struct dimg_image *img, enum dimg_prealloc mode);
int qcow2_preallocate_range(struct dimg_image *img, uint64_t from, uint64_t to,
                            enum dimg_prealloc mode, bool as_data);

/* qcow2-bitmap.c, qcow2-bitmap-store.c, qcow2-bitmap-ops.c: persistent dirty bitmaps */
struct qcow2_bitmaps;
/* Parse and validate the bitmaps extension and directory (every open). */
int qcow2_bitmaps_open(struct dimg_image *img);
/* Read-write open: load the bitmaps and flag them in use on disk before any write. */
int qcow2_bitmaps_activate(struct dimg_image *img);
/* Write the bitmaps back (new clusters, then the header, then free the old ones). */
int qcow2_bitmaps_store(struct dimg_image *img);
/* Bitmaps the image carries (in use or not). */
size_t qcow2_bitmaps_count(const struct qcow2_state *s);
void qcow2_bitmaps_free(struct qcow2_state *s);
/* Record a guest write in every enabled bitmap. */
void qcow2_bitmaps_mark_dirty(struct dimg_image *img, uint64_t off, uint64_t len);
/* Bytes the bitmaps of src need in a qcow2 image with this cluster size (measure). */
uint64_t qcow2_bitmaps_measure(struct dimg_image *src, uint32_t cluster_size);
int qcow2_bitmap_list(struct dimg_image *img, struct dimg_bitmap_info **out, size_t *count);
bool qcow2_bitmap_can_store(const struct dimg_image *img);
int qcow2_bitmap_add(struct dimg_image *img, const char *name, uint32_t granularity, bool enabled);
int qcow2_bitmap_remove(struct dimg_image *img, const char *name);
int qcow2_bitmap_clear(struct dimg_image *img, const char *name);
int qcow2_bitmap_set_enabled(struct dimg_image *img, const char *name, bool enabled);
int qcow2_bitmap_merge(struct dimg_image *img, const char *name, struct dimg_image *src,
                       const char *src_name);

/* qcow2-amend.c */
extern const struct dimg_optdesc qcow2_amend_opts[];
int qcow2_amend(struct dimg_image *img, const struct dimg_opts *opts, bool force,
                void (*progress)(double percent, void *opaque), void *opaque);

/* qcow2-check.c */
int qcow2_check(struct dimg_image *img, unsigned fix, struct dimg_check *out);
/* qcow2-rebuild.c: refs[i] = references found for host cluster i */
int qcow2_rebuild_refcounts(struct dimg_image *img, const uint32_t *refs, uint64_t n_refs);

/* qcow2-header.c */
size_t qcow2_put_ext(uint8_t *h, size_t off, uint32_t type, const void *data, size_t len);
size_t qcow2_put_feature_table(uint8_t *h, size_t off);
bool qcow2_writes_feature_table(uint32_t version, uint32_t cluster_bits);
const struct qcow2_ext *qcow2_ext_find(const struct qcow2_state *s, uint32_t type);
/* Replace (data NULL: remove) the kept extension of this type. */
int qcow2_ext_set(struct qcow2_state *s, uint32_t type, const void *data, uint32_t len);
void qcow2_exts_free(struct qcow2_state *s);
/* Rewrite the whole first cluster from the in-memory state (after flushing). */
int qcow2_header_write(struct dimg_image *img);
int qcow2_change_backing(struct dimg_image *img, const char *backing, const char *backing_fmt);

/* qcow2-empty.c: commit's emptying of the active layer */
int qcow2_make_empty(struct dimg_image *img);

/* qcow2-crypto.c: validate the LUKS header (info opens) or refuse a bad extension */
int qcow2_crypto_load(struct dimg_image *img);

/* qcow2-create.c */
extern const struct dimg_optdesc qcow2_create_opts[];
int qcow2_check_create(const struct dimg_create_args *args);
int qcow2_create(struct dimg_io *file, const struct dimg_create_args *args);
char *qcow2_describe_create(const struct dimg_create_args *args);
int qcow2_measure(const struct dimg_opts *opts, uint64_t size, struct dimg_image *src,
                  struct dimg_measure *out);

extern const struct dimg_driver dimg_drv_qcow2;

#endif
