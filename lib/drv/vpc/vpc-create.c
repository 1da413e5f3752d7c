/*
 * VHD creation: options, qemu-img's CHS rounding of the size, and the layout
 * qemu-img writes (vpc-notes.md), so that fresh images compare equal to
 * qemu's byte for byte apart from the timestamp, the UUID and the checksum
 * that covers them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "drv/vpc/vpc.h"
#include "util/checked.h"
#include "util/endian.h"

/* Help order and texts as qemu-img prints them (the trailing blank too). */
const struct dimg_optdesc vpc_create_opts[] = {
    { "force_size", DIMG_OPT_BOOL, "Force disk size calculation to use the actual size "
      "specified, rather than using the nearest CHS-based calculation", NULL },
    { "size", DIMG_OPT_SIZE, "Virtual disk size", NULL },
    { "subformat", DIMG_OPT_STRING, "Type of virtual hard disk format. Supported formats "
      "are {dynamic (default) | fixed} ", NULL },
    { NULL, 0, NULL, NULL },
};

/* VHD timestamps count seconds from 2000-01-01 00:00:00 UTC. */
#define VPC_EPOCH 946684800

uint32_t
vpc_checksum(const uint8_t *buf, size_t len)
{
    /* The checksum field itself counts as zero: callers pass the footer or
     * header, whose checksum lives at a known place. */
    size_t skip = len == VPC_FOOTER_SIZE ? VPC_F_CHECKSUM : VPC_H_CHECKSUM;
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i++)
        if (i < skip || i >= skip + 4)
            sum += buf[i];
    return ~sum;
}

/* The VHD specification's appendix algorithm for one sector count. */
void
vpc_geometry(uint64_t sectors, unsigned *cyls, unsigned *heads, unsigned *spt)
{
    uint64_t t = min_u64(sectors, (uint64_t)VPC_MAX_CYLS * VPC_MAX_HEADS * VPC_MAX_SPT);
    uint64_t cth, h, st;
    if (t >= (uint64_t)VPC_MAX_CYLS * 16 * 63) {
        st = 255;
        h = 16;
        cth = t / st;
    } else {
        st = 17;
        cth = t / st;
        h = (cth + 1023) / 1024;
        if (h < 4)
            h = 4;
        if (cth >= h * 1024 || h > 16) {
            st = 31;
            h = 16;
            cth = t / st;
        }
        if (cth >= h * 1024) {
            st = 63;
            h = 16;
            cth = t / st;
        }
    }
    *cyls = (unsigned)(cth / h);
    *heads = (unsigned)h;
    *spt = (unsigned)st;
}

static bool
geometry_is_max(unsigned c, unsigned h, unsigned s)
{
    return c == VPC_MAX_CYLS && h == VPC_MAX_HEADS && s == VPC_MAX_SPT;
}

/* qemu-img bumps the sector count until the geometry covers the request;
 * a saturated geometry keeps the requested size. */
static uint64_t
disk_size(uint64_t size, bool force, unsigned *c, unsigned *h, unsigned *s)
{
    uint64_t want = (size + VPC_SECTOR - 1) / VPC_SECTOR;
    if (force) {
        *c = VPC_MAX_CYLS;
        *h = VPC_MAX_HEADS;
        *s = VPC_MAX_SPT;
        return want * VPC_SECTOR;
    }
    for (uint64_t t = want;; t++) {
        vpc_geometry(t, c, h, s);
        if (geometry_is_max(*c, *h, *s))
            return want * VPC_SECTOR;
        if ((uint64_t)*c * *h * *s >= want)
            return (uint64_t)*c * *h * *s * VPC_SECTOR;
    }
}

static void
build_footer(uint8_t *f, uint64_t size, bool fixed, bool force, unsigned c, unsigned h,
             unsigned s)
{
    memset(f, 0, VPC_FOOTER_SIZE);
    memcpy(f, "conectix", 8);
    store_be32(f + 8, 2);                 /* features: reserved bit, always set */
    store_be32(f + 12, 0x00010000);       /* format version 1.0 */
    store_be64(f + VPC_F_DATA_OFFSET, fixed ? UINT64_MAX : VPC_FOOTER_SIZE);
    time_t now = time(NULL);
    store_be32(f + VPC_F_TIMESTAMP, (uint32_t)(now - VPC_EPOCH));
    /* "qem2" tells qemu to trust current size rather than the geometry. */
    memcpy(f + VPC_F_CREATOR, force ? "qem2" : "qemu", 4);
    store_be32(f + 32, 0x00050003);
    memcpy(f + 36, "Wi2k", 4);
    store_be64(f + VPC_F_ORIG_SIZE, size);
    store_be64(f + VPC_F_CUR_SIZE, size);
    store_be16(f + VPC_F_GEOMETRY, (uint16_t)c);
    f[VPC_F_GEOMETRY + 2] = (uint8_t)h;
    f[VPC_F_GEOMETRY + 3] = (uint8_t)s;
    store_be32(f + VPC_F_TYPE, fixed ? VPC_TYPE_FIXED : VPC_TYPE_DYNAMIC);
    uint8_t *uuid = f + VPC_F_UUID;
    if (getrandom(uuid, 16, 0) != 16)
        memset(uuid, 0, 16);
    uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);  /* RFC 4122 version 4 */
    uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
    store_be32(f + VPC_F_CHECKSUM, vpc_checksum(f, VPC_FOOTER_SIZE));
}

/* Footer copy, dynamic header, empty BAT, footer: what qemu-img writes. */
static int
create_dynamic(struct dimg_io *file, const uint8_t *footer, uint64_t size)
{
    uint64_t entries = (size + VPC_BLOCK_SIZE - 1) / VPC_BLOCK_SIZE;
    uint64_t bat_bytes = round_up_u64(entries * 4, VPC_SECTOR);
    uint64_t bat_offset = 3 * VPC_SECTOR;
    uint8_t h[VPC_HEADER_SIZE] = { 0 };
    memcpy(h, "cxsparse", 8);
    store_be64(h + 8, UINT64_MAX);
    store_be64(h + VPC_H_TABLE_OFFSET, bat_offset);
    store_be32(h + 24, 0x00010000);
    store_be32(h + VPC_H_MAX_ENTRIES, (uint32_t)entries);
    store_be32(h + VPC_H_BLOCK_SIZE, VPC_BLOCK_SIZE);
    store_be32(h + VPC_H_CHECKSUM, vpc_checksum(h, sizeof h));

    int r = 0;
    uint8_t *bat = malloc(bat_bytes ? bat_bytes : 1);
    if (!bat)
        return dimg_error(ENOMEM, "out of memory");
    memset(bat, 0xff, bat_bytes);
    if ((r = io_pwrite(file, footer, VPC_FOOTER_SIZE, 0)) < 0)
        goto out;
    if ((r = io_pwrite(file, h, sizeof h, VPC_FOOTER_SIZE)) < 0)
        goto out;
    if (bat_bytes && (r = io_pwrite(file, bat, bat_bytes, bat_offset)) < 0)
        goto out;
    r = io_pwrite(file, footer, VPC_FOOTER_SIZE, bat_offset + bat_bytes);
out:
    free(bat);
    return r;
}

/* qemu-img refuses unknown preallocation modes before creating the file. */
int
vpc_check_create(const struct dimg_create_args *args)
{
    const char *pa = opts_get(args->opts, "preallocation");
    if (pa && dimg_prealloc_parse(pa) < 0)
        return dimg_error(EINVAL, "invalid parameter value: %s", pa);
    return 0;
}

/* These errors come after the (empty) file exists, as with qemu-img. */
int
vpc_create(struct dimg_io *file, const struct dimg_create_args *args)
{
    const char *pa = opts_get(args->opts, "preallocation");
    if (pa && dimg_prealloc_parse(pa) == DIMG_PREALLOC_METADATA)
        return dimg_error(ENOTSUP, "Unsupported preallocation mode: metadata");
    const char *sub = opts_get(args->opts, "subformat");
    bool fixed = false;
    if (sub && strcmp(sub, "fixed") == 0)
        fixed = true;
    else if (sub && strcmp(sub, "dynamic") != 0)
        return dimg_error(EINVAL, "Parameter 'subformat' does not accept value '%s'", sub);
    bool force = false;
    if (opts_get_bool(args->opts, "force_size", false, &force) < 0)
        return -EINVAL;
    if (args->size > VPC_MAX_SIZE)
        return dimg_error(EFBIG, "The image size is too large for file format 'vpc'");
    unsigned c, h, s;
    uint64_t size = disk_size(args->size, force, &c, &h, &s);
    if (size > VPC_MAX_SIZE)
        return dimg_error(EFBIG, "The image size is too large for file format 'vpc'");

    uint8_t footer[VPC_FOOTER_SIZE];
    build_footer(footer, size, fixed, force, c, h, s);
    if (!fixed)
        return create_dynamic(file, footer, size);
    /* The data area stays a hole: qemu-img does not preallocate it either. */
    int r = io_truncate(file, size + VPC_FOOTER_SIZE, DIMG_PREALLOC_OFF);
    if (r == 0)
        r = io_pwrite(file, footer, VPC_FOOTER_SIZE, size);
    return r;
}

/* qemu-img's order: size, subformat, force_size, then the file options. */
char *
vpc_describe_create(const struct dimg_create_args *args)
{
    struct strbuf sb = { 0 };
    const char *v;
    uint64_t hint;
    sb_append(&sb, "size=%" PRIu64, args->size);
    if ((v = opts_get(args->opts, "subformat")))
        sb_append(&sb, " subformat=%s", v);
    if ((v = opts_get(args->opts, "force_size")))
        sb_append(&sb, " force_size=%s", v);
    if ((v = opts_get(args->opts, "nocow")))
        sb_append(&sb, " nocow=%s", v);
    if ((v = opts_get(args->opts, "preallocation")))
        sb_append(&sb, " preallocation=%s", v);
    if (opts_get_size(args->opts, "extent_size_hint", 0, &hint) == 0)
        sb_append(&sb, " extent_size_hint=%" PRIu64, hint);
    return sb.s;
}
