/*
 * VMDK: a text descriptor naming extents (flat files, hosted sparse files)
 * or a sparse file carrying its descriptor inside.  Spec:
 * shared/specs/libyal-vmdk.asciidoc.  All on-disk integers are little endian
 * and sizes are in 512-byte sectors unless named *_bytes.
 */
#ifndef DIMG_DRV_VMDK_H
#define DIMG_DRV_VMDK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "drv/drv.h"

#define VMDK_SECTOR 512u
#define VMDK4_MAGIC 0x564d444bu /* "KDMV" read as a little-endian u32 */
#define VMDK_COWD_MAGIC 0x44574f43u /* "COWD" read as a little-endian u32 */
#define VMDK_GD_AT_END UINT64_MAX

#define VMDK4_FLAG_NL_DETECT  0x1u
#define VMDK4_FLAG_RGD        0x2u
#define VMDK4_FLAG_ZERO_GRAIN 0x4u
#define VMDK4_FLAG_COMPRESS   0x10000u
#define VMDK4_FLAG_MARKER     0x20000u
#define VMDK_COMPRESS_DEFLATE 1u

#define VMDK_GTE_ZEROED 1u
/* gte_get's answer for a COWD grain its grain directory does not reach. */
#define VMDK_GTE_BEYOND_GD 1

/* Sanity limits on untrusted header fields. */
#define VMDK_MAX_GRAIN_SECTORS 65536u   /* 32 MiB grains */
#define VMDK_MAX_GTES          65536u
#define VMDK_MAX_DESC_BYTES    (1u << 20)
#define VMDK_MAX_EXTENTS       4096u
/* qemu refuses images above this many bytes ("File too large"). */
#define VMDK_MAX_BYTES         (INT64_MAX / 2)

/* v rounded up to a multiple of align (any non-zero value; v is a file size). */
static inline uint64_t
round_up_any(uint64_t v, uint64_t align)
{
    return (v + align - 1) / align * align;
}

enum vmdk_ext_type { VMDK_EXT_FLAT, VMDK_EXT_SPARSE };

/* One extent line of a descriptor. */
struct vmdk_desc_extent {
    char access[16];
    uint64_t sectors;
    char type[16];
    char *filename;
    uint64_t offset;             /* sectors, FLAT only */
};

struct vmdk_desc {
    uint32_t cid, parent_cid;    /* set by vmdk_cid_load, not by the parser */
    bool has_create_type;
    char *create_type;
    char *parent_hint;
    size_t n_extents;
    struct vmdk_desc_extent *ext;
};

struct vmdk_extent {
    enum vmdk_ext_type type;
    const char *type_name;       /* for info: "" when the descriptor is embedded */
    char *path;                  /* resolved file name, for info */
    struct dimg_io *file;
    bool owns_file;
    uint64_t start, length;      /* guest bytes */
    uint64_t flat_offset;        /* bytes into the file (FLAT) */
    /* hosted sparse */
    uint32_t version, flags;
    uint16_t compress_alg;
    uint32_t grain_bytes;
    uint32_t num_gtes;
    uint64_t gd_offset, rgd_offset;   /* bytes; rgd 0 when absent */
    uint32_t gd_entries;
    uint32_t *gd, *rgd;               /* host order */
    uint64_t alloc_end;               /* bytes: where the next grain goes */
    uint32_t *gt;                     /* one cached grain table, host order */
    int64_t gt_index;                 /* its GD index, -1 none */
    /* ESX Server sparse (COWD): 32-bit header, 4096-entry grain tables */
    bool cowd;
    uint32_t gd_slots;                /* directory entries the header declares: gd holds
                                         the first gd_entries, the rest lie past the end
                                         of the file and read as 0 */
    uint32_t free_sector;             /* the header's next-free-sector field */
};

/* Grains are deflated when the header's algorithm says so; the spec leaves the
 * compression flag to name "some" compression, and qemu goes by the algorithm. */
static inline bool
vmdk_grains_compressed(const struct vmdk_extent *e)
{
    return e->type == VMDK_EXT_SPARSE && e->compress_alg == VMDK_COMPRESS_DEFLATE;
}

struct vmdk_state {
    pthread_mutex_t lock;
    struct vmdk_desc desc;       /* cid and parent_cid as vmdk_cid_load reads them */
    uint64_t cid_offset;         /* where the CIDs' text starts: 0 for a descriptor file */
    bool cid_checked;            /* the parent's CID matched once (vmdk-cid.c) */
    bool cid_updated;            /* this open gave the image a new CID */
    size_t n_extents;
    struct vmdk_extent *ext;
};

/* vmdk-desc.c */
/* Parse a descriptor (text of len bytes, NUL bytes end it; text[len] must be NUL). */
int vmdk_desc_parse(const char *text, size_t len, struct vmdk_desc *out);
void vmdk_desc_free(struct vmdk_desc *d);

/* vmdk-sparse.c */
int vmdk_sparse_open(struct vmdk_extent *e, const uint8_t *hdr);
void vmdk_sparse_free(struct vmdk_extent *e);
int vmdk_sparse_read(struct dimg_image *img, struct vmdk_extent *e, uint8_t *buf, size_t len,
                     uint64_t off);
int vmdk_sparse_write(struct dimg_image *img, struct vmdk_extent *e, const uint8_t *buf,
                      size_t len, uint64_t off);
int vmdk_sparse_zero(struct dimg_image *img, struct vmdk_extent *e, uint64_t off, uint64_t len);
int vmdk_sparse_status(struct vmdk_extent *e, uint64_t off, uint64_t len,
                       struct dimg_extent *out);
int vmdk_pwrite_compressed(struct dimg_image *img, const void *buf, size_t len, uint64_t off);
/* Decode a sparse header (512 bytes) into e's fields. */
int vmdk_sparse_header(struct vmdk_extent *e, const uint8_t *h, uint64_t *capacity,
                       uint64_t *desc_off, uint64_t *desc_size);

/* vmdk-cowd.c */
/* Open a COWD extent (e->file set): header, bounds, grain directory. */
int vmdk_cowd_open(struct vmdk_extent *e);
/* A new empty grain table for directory entry gdi, appended to the file. */
int vmdk_cowd_new_gt(struct vmdk_extent *e, uint64_t gdi);
/* Checks and header upkeep before a grain table entry of gdi is written. */
int vmdk_cowd_before_gte_write(struct vmdk_extent *e, uint64_t gdi);
/* check: report the first sector the directory does not reach (-EPERM), else 0. */
int vmdk_cowd_check_reach(const struct vmdk_extent *e);
/* The descriptor qemu finds inside a COWD file opened on its own. */
int vmdk_cowd_bare_desc(struct dimg_io *file, const char *filename, struct vmdk_desc *out);
/* SESPARSE extent (e->file open): always an error, qemu's text where it has one. */
int vmdk_sesparse_refuse(struct vmdk_extent *e);

/* vmdk-cid.c (the lock is held) */
uint32_t vmdk_new_cid(void);
/* The hex number one character after the first key in text; -1 if none. */
int vmdk_scan_cid(const char *text, const char *key, uint32_t *out);
/* Read the CID and parent CID as qemu does; an image without them does not open. */
int vmdk_cid_load(struct dimg_image *img);
/* Before reading from the parent or allocating a grain: -EINVAL unless the
 * parent's CID matches the image's parent CID. */
int vmdk_cid_check_parent(struct dimg_image *img);
/* After data was written: the first time, give the image a new CID. */
int vmdk_cid_touch(struct dimg_image *img);

/* vmdk-check.c */
int vmdk_check(struct dimg_image *img, unsigned fix, struct dimg_check *out);

/* vmdk-create.c */
extern const struct dimg_optdesc vmdk_create_opts[];
int vmdk_check_create(const struct dimg_create_args *args);
int vmdk_create(struct dimg_io *file, const struct dimg_create_args *args);
char *vmdk_describe_create(const struct dimg_create_args *args);

#endif
