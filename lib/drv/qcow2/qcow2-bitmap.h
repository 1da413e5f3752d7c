/*
 * qcow2 persistent dirty bitmaps, shared by qcow2-bitmap*.c.  Format:
 * shared/specs/qemu-qcow2.txt, "Bitmaps extension" and "Bitmaps".
 */
#ifndef DIMG_DRV_QCOW2_BITMAP_H
#define DIMG_DRV_QCOW2_BITMAP_H

#include "drv/qcow2/qcow2.h"

/* Directory entry flags */
#define BME_IN_USE        0x1u
#define BME_AUTO          0x2u
#define BME_EXTRA_COMPAT  0x4u
#define BME_RESERVED      (~0x7u)
#define BME_TYPE_DIRTY    1

#define BME_ENTRY_FIXED   24u        /* entry bytes before extra data and name */
#define BME_TABLE_RESERVED 0xff000000000001feull

/* The limits qemu enforces (observed): images beyond them are refused. */
#define BM_MIN_GRAN_BITS  9
#define BM_MAX_GRAN_BITS  31
#define BM_MAX_NAME       1023u
#define BM_MAX_COUNT      65535u
#define BM_MAX_DIR_BYTES  (65535u * 1024u)
#define BM_MAX_PHYS_BYTES (512u << 20)   /* one bitmap's data clusters */
#define BM_MAX_TABLE_ENTRIES 0x8000000u
/* dimg's own bounds on what a hostile image can make it read or hold. */
#define BM_MAX_TABLE_READ (256ull << 20) /* tables validated at open, all bitmaps */
#define BM_MAX_LOADED     (1ull << 30)   /* bitmap data held in memory, all bitmaps */

struct qcow2_bitmap {
    char *name;
    uint32_t flags;          /* BME_* as they will be stored */
    uint8_t gran_bits;
    uint64_t table_offset;   /* stored bitmap table; 0: not stored yet */
    uint32_t table_size;
    uint8_t *data;           /* the bits (LSB first), bm_data_bytes(); NULL: not loaded */
    uint64_t covers;         /* guest size data was sized for (the image may be resized) */
    bool inconsistent;       /* found in use: kept as it is, unusable */
};

struct qcow2_bitmaps {
    struct qcow2_bitmap *v;
    size_t n;
    uint64_t dir_offset, dir_size; /* the directory the header points at; 0: none */
    bool active;             /* loaded read-write: stored again on close */
    bool drop_ext;           /* extension left inconsistent by another program */
    uint64_t free_hint;      /* first cluster the first-fit allocator looks at */
};

/* qcow2-bitmap.c */
uint64_t bm_data_bytes(uint64_t size, unsigned gran_bits);
uint32_t bm_table_entries(const struct qcow2_state *s, uint64_t size, unsigned gran_bits);
struct qcow2_bitmap *bm_find(struct qcow2_bitmaps *b, const char *name);
int bm_read_table(struct dimg_image *img, const struct qcow2_bitmap *bm, uint64_t **out);
int bm_load_data(struct dimg_image *img, struct qcow2_bitmap *bm);
void bm_entry_free(struct qcow2_bitmap *bm);
/* Make bm's data match the image's current size; call before using bm->data. */
int bm_fit(struct dimg_image *img, struct qcow2_bitmap *bm);
void bm_merge_bits(const struct dimg_image *img, struct qcow2_bitmap *dst, const uint8_t *src,
                   unsigned src_bits, uint64_t src_bytes);
/* The reason a new bitmap cannot be stored, NULL when it can. */
const char *bm_add_refusal(struct dimg_image *img, const char *name, unsigned gran_bits);
/* Why a bitmap of this granularity cannot be stored for an image of size bytes, or NULL. */
const char *bm_size_refusal(const struct qcow2_state *s, uint64_t size, unsigned gran_bits);

/* qcow2-bitmap-store.c */
int bm_write_dir_and_header(struct dimg_image *img);
int bm_free_clusters(struct dimg_image *img, uint64_t off, uint64_t bytes, bool discard);
int bm_free_bitmap(struct dimg_image *img, const struct qcow2_bitmap *bm);

#endif
