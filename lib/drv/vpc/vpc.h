/*
 * VHD ("vpc" in qemu-img): shared definitions.  Spec: shared/specs/
 * libyal-vhd.asciidoc; qemu-specific behaviour: shared/specs/vpc-notes.md.
 */
#ifndef DIMG_DRV_VPC_VPC_H
#define DIMG_DRV_VPC_VPC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "drv/drv.h"

#define VPC_FOOTER_SIZE   512
#define VPC_HEADER_SIZE   1024
#define VPC_SECTOR        512u
#define VPC_BAT_UNUSED    0xffffffffu
#define VPC_TYPE_FIXED    2
#define VPC_TYPE_DYNAMIC  3
#define VPC_BLOCK_SIZE    (2u << 20)     /* what qemu-img creates */
/* qemu-img refuses anything above 2040 GiB. */
#define VPC_MAX_SIZE      (2040ull << 30)
#define VPC_MAX_CYLS      65535u
#define VPC_MAX_HEADS     16u
#define VPC_MAX_SPT       255u

/* Footer field offsets (big-endian). */
#define VPC_F_DATA_OFFSET 16
#define VPC_F_TIMESTAMP   24
#define VPC_F_CREATOR     28
#define VPC_F_ORIG_SIZE   40
#define VPC_F_CUR_SIZE    48
#define VPC_F_GEOMETRY    56
#define VPC_F_TYPE        60
#define VPC_F_CHECKSUM    64
#define VPC_F_UUID        68

/* Dynamic header field offsets. */
#define VPC_H_TABLE_OFFSET 16
#define VPC_H_MAX_ENTRIES  28
#define VPC_H_BLOCK_SIZE   32
#define VPC_H_CHECKSUM     36

struct vpc_state {
    pthread_mutex_t lock;        /* BAT lookups and block allocation */
    uint8_t footer[VPC_FOOTER_SIZE];
    bool fixed;
    uint32_t *bat;               /* host byte order */
    uint32_t max_entries;
    uint64_t bat_offset;
    uint32_t block_size;
    uint32_t bitmap_size;        /* bytes, a multiple of 512 */
    uint64_t free_offset;        /* where the next block goes; the footer follows it */
};

/* vpc-create.c */
extern const struct dimg_optdesc vpc_create_opts[];
uint32_t vpc_checksum(const uint8_t *buf, size_t len);
/* qemu-img's CHS rounding: geometry and resulting disk size for a request. */
void vpc_geometry(uint64_t size, unsigned *cyls, unsigned *heads, unsigned *spt);
int vpc_check_create(const struct dimg_create_args *args);
int vpc_create(struct dimg_io *file, const struct dimg_create_args *args);
char *vpc_describe_create(const struct dimg_create_args *args);

/* vpc-io.c */
int vpc_pread(struct dimg_image *img, void *buf, size_t len, uint64_t off);
int vpc_pwrite(struct dimg_image *img, const void *buf, size_t len, uint64_t off);
int vpc_block_status(struct dimg_image *img, uint64_t off, uint64_t len, struct dimg_extent *out);
int vpc_flush(struct dimg_image *img);

#endif
