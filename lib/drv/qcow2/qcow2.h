/*
 * qcow2 driver internals.  Format: shared/specs/qemu-qcow2.txt (versions 2 and
 * 3, big-endian, two-level L1/L2 mapping, optional extended L2 entries).
 */
#ifndef DIMG_DRV_QCOW2_H
#define DIMG_DRV_QCOW2_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "drv/drv.h"

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
    uint64_t host_offset; /* NORMAL / ZERO_ALLOC: host offset of the first byte */
    uint64_t descriptor;  /* COMPRESSED: the raw L2 descriptor */
};

#define QCOW2_L2_CACHE_SLOTS 32

struct qcow2_l2_slot {
    uint64_t offset;      /* host offset of the L2 table; 0 = empty */
    uint64_t last_use;
    uint64_t *table;      /* host-endian entries */
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

    char *data_file_name;
    struct dimg_io *data_file;  /* where guest data lives (== img->file without a data file) */
    bool owns_data_file;

    pthread_mutex_t lock;       /* guards the L2 cache and the decompression cache */
    struct qcow2_l2_slot l2_cache[QCOW2_L2_CACHE_SLOTS];
    uint64_t l2_clock;
    unsigned l2_slots;          /* slots in use, bounded by the cache budget */
};

/* qcow2-map.c */
int qcow2_map_range(struct dimg_image *img, uint64_t off, uint64_t len, struct qcow2_run *run);
void qcow2_l2_cache_free(struct qcow2_state *s);
int qcow2_pread(struct dimg_image *img, void *buf, size_t len, uint64_t off);
int qcow2_block_status(struct dimg_image *img, uint64_t off, uint64_t len, struct dimg_extent *out);

/* qcow2-compress.c */
int qcow2_decompress_cluster(struct dimg_image *img, uint64_t descriptor, uint8_t *out);

extern const struct dimg_driver dimg_drv_qcow2;

#endif
