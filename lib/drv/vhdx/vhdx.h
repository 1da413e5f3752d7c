/*
 * VHDX: shared definitions.  Layout from shared/specs/libyal-vhdx.asciidoc;
 * what qemu-img 7.2 accepts, writes and prints was observed with the real
 * tool.  All multi-byte fields are little-endian; GUIDs are kept as their 16
 * on-disk bytes.
 */
#ifndef DIMG_DRV_VHDX_VHDX_H
#define DIMG_DRV_VHDX_VHDX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "drv/drv.h"

#define VHDX_KiB            1024u
#define VHDX_MiB            (1024u * 1024u)
#define VHDX_SECTOR         4096u          /* metadata and log unit */
#define VHDX_HEADER1        (64u * VHDX_KiB)
#define VHDX_HEADER2        (128u * VHDX_KiB)
#define VHDX_REGION1        (192u * VHDX_KiB)
#define VHDX_REGION2        (256u * VHDX_KiB)
#define VHDX_REGION_SIZE    (64u * VHDX_KiB)
#define VHDX_META_TABLE     (64u * VHDX_KiB) /* the table at the start of the region */
#define VHDX_MAX_ENTRIES    2047u
#define VHDX_MIN_BLOCK      VHDX_MiB
#define VHDX_MAX_BLOCK      (256u * VHDX_MiB)
#define VHDX_MAX_SIZE       (64ull << 40)  /* qemu-img's limit: 64 TiB */

/* Header fields (offsets in the 4 KiB header). */
#define VHDX_H_CRC          4
#define VHDX_H_SEQ          8
#define VHDX_H_FILE_GUID    16
#define VHDX_H_DATA_GUID    32
#define VHDX_H_LOG_GUID     48
#define VHDX_H_LOG_VERSION  64
#define VHDX_H_VERSION      66
#define VHDX_H_LOG_LENGTH   68
#define VHDX_H_LOG_OFFSET   72

/* Payload block states (low 3 bits of a BAT entry). */
#define VHDX_PAYLOAD_NOT_PRESENT  0u
#define VHDX_PAYLOAD_UNDEFINED    1u
#define VHDX_PAYLOAD_ZERO         2u
#define VHDX_PAYLOAD_UNMAPPED     3u
#define VHDX_PAYLOAD_FULL         6u
#define VHDX_PAYLOAD_PARTIAL      7u
#define VHDX_BAT_STATE(e)   ((unsigned)((e) & 7u))
#define VHDX_BAT_OFFSET(e)  ((e) & ~(uint64_t)(VHDX_MiB - 1))

/* File parameter flags. */
#define VHDX_PARAM_LEAVE_ALLOCATED 0x1u
#define VHDX_PARAM_HAS_PARENT      0x2u

extern const uint8_t vhdx_guid_bat[16];
extern const uint8_t vhdx_guid_metadata[16];
extern const uint8_t vhdx_guid_file_params[16];
extern const uint8_t vhdx_guid_disk_size[16];
extern const uint8_t vhdx_guid_disk_id[16];
extern const uint8_t vhdx_guid_logical_sector[16];
extern const uint8_t vhdx_guid_physical_sector[16];
extern const uint8_t vhdx_guid_parent_locator[16];

/* A byte range of the file that payload blocks may not overlap. */
struct vhdx_region {
    uint64_t start, end;
};

/* A BAT sector (4 KiB of the BAT region) waiting to go through the log. */
#define VHDX_MAX_PENDING 64u

struct vhdx_state {
    pthread_mutex_t lock;        /* BAT, allocation, headers and the log */
    bool lock_init;

    /* The current header, in memory (4 KiB as on disk). */
    uint8_t header[VHDX_SECTOR];
    int cur;                     /* slot of the current header: 0 or 1 */
    uint64_t seq;
    uint64_t log_offset;
    uint32_t log_length;

    uint64_t bat_offset;
    uint32_t bat_length;
    uint64_t meta_offset;
    uint32_t meta_length;
    struct vhdx_region regions[3]; /* log, then the regions in table order */
    unsigned nregions;

    uint32_t block_size;
    uint32_t logical_sector;
    uint32_t params;             /* VHDX_PARAM_* */
    uint64_t disk_size;
    uint64_t chunk_ratio;        /* payload blocks per sector-bitmap block */
    uint64_t data_blocks;
    uint64_t bat_entries;

    uint64_t *bat;               /* host order; entries past bat_loaded read as 0 */
    uint64_t bat_loaded;
    int64_t bat_errors;          /* entries found pointing outside the file (check) */

    uint64_t file_end;           /* next block goes here (1 MiB aligned) */
    bool headers_bumped;         /* new write GUIDs recorded since open */
    bool replayed;               /* a dirty log was applied at open */

    uint32_t pending[VHDX_MAX_PENDING]; /* BAT sector indexes not yet logged */
    unsigned npending;
    uint64_t log_seq;
};

/* vhdx.c */
void vhdx_report(const char *fmt, ...) DIMG_PRINTF(1, 2);
int vhdx_write_headers(struct dimg_image *img, struct vhdx_state *s, bool new_write_guids,
                       const uint8_t *log_guid);
void vhdx_make_guid(uint8_t *g);
/* The most recently added region that [start, end) overlaps, or NULL. */
const struct vhdx_region *vhdx_find_overlap(const struct vhdx_state *s, uint64_t start,
                                            uint64_t end);
int vhdx_open_failed(const struct dimg_image *img, int errnum);

/* vhdx-bat.c */
int vhdx_load_bat(struct dimg_image *img, struct vhdx_state *s, int64_t file_size);
int vhdx_pread(struct dimg_image *img, void *buf, size_t len, uint64_t off);
int vhdx_pwrite(struct dimg_image *img, const void *buf, size_t len, uint64_t off);
int vhdx_zero(struct dimg_image *img, uint64_t off, uint64_t len, unsigned flags);
int vhdx_flush(struct dimg_image *img);
/* Write the pending BAT sectors through the log (lock held). */
int vhdx_commit(struct dimg_image *img, struct vhdx_state *s);

/* vhdx-log.c */
/* 1: the log holds entries to replay, 0: nothing to do, <0: error. */
int vhdx_log_replay(struct dimg_image *img, struct vhdx_state *s, bool apply);
/* Log, then apply, n sectors of 4 KiB: data[i] goes to file offset offs[i]. */
int vhdx_log_write(struct dimg_image *img, struct vhdx_state *s, const uint64_t *offs,
                   const uint8_t *data, unsigned n);

/* vhdx-create.c */
extern const struct dimg_optdesc vhdx_create_opts[];
int vhdx_check_create(const struct dimg_create_args *args);
int vhdx_create(struct dimg_io *file, const struct dimg_create_args *args);
char *vhdx_describe_create(const struct dimg_create_args *args);
uint64_t vhdx_bat_entries(uint64_t disk_size, uint32_t block_size, uint32_t logical_sector);

/* vhdx-check.c */
int vhdx_check(struct dimg_image *img, unsigned fix, struct dimg_check *out);

#endif
