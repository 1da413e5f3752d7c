/*
 * VHDX creation with qemu-img's options, defaults, rounding and layout
 * (observed): identifier, two headers, two region tables, the log at 1 MiB,
 * the BAT, then a 1 MiB metadata region; blocks start 4 MiB past the
 * metadata.  Fresh images match qemu-img's apart from GUIDs, sequence
 * numbers, the creator string and the checksums covering them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/vhdx/vhdx.h"
#include "util/checked.h"
#include "util/crc32c.h"
#include "util/endian.h"

/* Help order and texts as qemu-img prints them. */
const struct dimg_optdesc vhdx_create_opts[] = {
    { "block_size", DIMG_OPT_SIZE, "Block Size; min 1MB, max 256MB. 0 means auto-calculate "
      "based on image size.", NULL },
    { "block_state_zero", DIMG_OPT_BOOL, "Force use of payload blocks of type 'ZERO'. "
      "Non-standard, but default.  Do not set to 'off' when using 'qemu-img convert' with "
      "subformat=dynamic.", NULL },
    { "log_size", DIMG_OPT_SIZE, "Log size; min 1MB.", NULL },
    { "size", DIMG_OPT_SIZE, "Virtual disk size; max of 64TB.", NULL },
    { "subformat", DIMG_OPT_STRING, "VHDX format type, can be either 'dynamic' or 'fixed'. "
      "Default is 'dynamic'.", NULL },
    { NULL, 0, NULL, NULL },
};

#define DEFAULT_LOG_SIZE   VHDX_MiB
#define LOG_OFFSET         VHDX_MiB
#define META_LENGTH        VHDX_MiB
#define DATA_GAP           (4u * VHDX_MiB)  /* between the metadata region and the data */
#define META_ITEMS         VHDX_META_TABLE

uint64_t
vhdx_bat_entries(uint64_t disk_size, uint32_t block_size, uint32_t logical_sector)
{
    uint64_t chunk = ((uint64_t)1 << 23) * logical_sector / block_size;
    uint32_t blocks = (uint32_t)((disk_size + block_size - 1) / block_size);
    /* qemu computes "blocks - 1" in 32 bits: an empty disk gets a huge BAT. */
    return (uint64_t)blocks + (uint32_t)(blocks - 1u) / chunk;
}

/* qemu-img's automatic block size. */
static uint32_t
auto_block_size(uint64_t size)
{
    if (size > (32ull << 40))
        return 64u * VHDX_MiB;
    if (size > (100ull << 30))
        return 32u * VHDX_MiB;
    if (size > (1ull << 30))
        return 16u * VHDX_MiB;
    return 8u * VHDX_MiB;
}

/* qemu-img refuses unknown preallocation modes before creating the file. */
int
vhdx_check_create(const struct dimg_create_args *args)
{
    const char *pa = opts_get(args->opts, "preallocation");
    if (pa && dimg_prealloc_parse(pa) < 0)
        return dimg_error(EINVAL, "invalid parameter value: %s", pa);
    return 0;
}

struct layout {
    uint64_t size;               /* disk size, 512-byte multiple */
    uint32_t block_size, log_size;
    bool fixed, zero_state;
    uint64_t bat_offset, bat_length, meta_offset, data_start;
};

static int
parse_options(const struct dimg_create_args *args, struct layout *L)
{
    const char *pa = opts_get(args->opts, "preallocation");
    if (pa && dimg_prealloc_parse(pa) == DIMG_PREALLOC_METADATA)
        return dimg_error(ENOTSUP, "Unsupported preallocation mode: metadata");
    uint64_t log_size, block_size;
    if (opts_get_size(args->opts, "log_size", DEFAULT_LOG_SIZE, &log_size) < 0 ||
        opts_get_size(args->opts, "block_size", 0, &block_size) < 0 ||
        opts_get_bool(args->opts, "block_state_zero", true, &L->zero_state) < 0)
        return -EINVAL;
    const char *sub = opts_get(args->opts, "subformat");
    L->fixed = sub && strcmp(sub, "fixed") == 0;
    if (sub && !L->fixed && strcmp(sub, "dynamic") != 0)
        return dimg_error(EINVAL, "Parameter 'subformat' does not accept value '%s'", sub);
    if (args->size > VHDX_MAX_SIZE)
        return dimg_error(EINVAL, "Image size too large; max of 64TB");
    L->size = round_up_u64(args->size, 512);
    log_size = log_size > UINT64_MAX - VHDX_MiB ? UINT64_MAX : round_up_u64(log_size, VHDX_MiB);
    if (log_size == 0)
        return dimg_error(EINVAL, "Log size must be a multiple of 1 MB");
    if (log_size >= (4ull << 30))
        return dimg_error(EINVAL, "Log size must be smaller than 4 GB");
    L->log_size = (uint32_t)log_size;
    if (block_size == 0)
        block_size = auto_block_size(L->size);
    block_size = min_u64(round_up_u64(min_u64(block_size, VHDX_MAX_BLOCK), VHDX_MiB),
                         VHDX_MAX_BLOCK);
    if (block_size < VHDX_MIN_BLOCK)
        block_size = VHDX_MIN_BLOCK;
    if (!is_power_of_2(block_size))
        return dimg_error(EINVAL, "Block size must be a power of two");
    L->block_size = (uint32_t)block_size;
    L->bat_offset = (uint64_t)LOG_OFFSET + L->log_size; /* a 4095M log passes 4 GiB */
    L->bat_length = round_up_u64(vhdx_bat_entries(L->size, L->block_size, 512) * 8, VHDX_MiB);
    L->meta_offset = L->bat_offset + L->bat_length;
    L->data_start = L->meta_offset + META_LENGTH + DATA_GAP;
    return 0;
}

static void
put_meta_entry(uint8_t *t, int i, const uint8_t *guid, uint32_t off, uint32_t len,
               uint32_t flags)
{
    uint8_t *e = t + 32 + i * 32;
    memcpy(e, guid, 16);
    store_le32(e + 16, off);
    store_le32(e + 20, len);
    store_le32(e + 24, flags);
}

/* The metadata table and its five items, as qemu-img lays them out. */
static int
write_metadata(struct dimg_io *file, const struct layout *L)
{
    size_t len = VHDX_META_TABLE + VHDX_SECTOR;
    uint8_t *m = calloc(1, len);
    if (!m)
        return dimg_error(ENOMEM, "out of memory");
    memcpy(m, "metadata", 8);
    store_le16(m + 10, 5);
    put_meta_entry(m, 0, vhdx_guid_file_params, META_ITEMS, 8, 4);
    put_meta_entry(m, 1, vhdx_guid_disk_size, META_ITEMS + 8, 8, 6);
    put_meta_entry(m, 2, vhdx_guid_disk_id, META_ITEMS + 16, 16, 6);
    put_meta_entry(m, 3, vhdx_guid_logical_sector, META_ITEMS + 32, 4, 6);
    put_meta_entry(m, 4, vhdx_guid_physical_sector, META_ITEMS + 36, 4, 6);
    uint8_t *it = m + META_ITEMS;
    store_le32(it, L->block_size);
    store_le32(it + 4, L->fixed ? VHDX_PARAM_LEAVE_ALLOCATED : 0);
    store_le64(it + 8, L->size);
    vhdx_make_guid(it + 16);
    store_le32(it + 32, 512);
    store_le32(it + 36, 512);
    int r = io_pwrite(file, m, len, L->meta_offset);
    free(m);
    return r;
}

/*
 * The BAT: payload entries ZERO (block_state_zero), or present at their
 * place in the data area (fixed without it), or left as zeros (dynamic
 * without it, which qemu-img does not write at all).
 */
static int
write_bat(struct dimg_io *file, const struct layout *L)
{
    if (!L->fixed && !L->zero_state)
        return 0;
    /* qemu-img writes the BAT in one request, which fails past 2 GiB. */
    if (L->bat_length > INT32_MAX)
        return dimg_error(EIO, "Failed to write the BAT: Input/output error");
    uint64_t chunk = ((uint64_t)1 << 32) / L->block_size;
    uint64_t blocks = (L->size + L->block_size - 1) / L->block_size;
    uint8_t *buf = malloc(VHDX_MiB);
    if (!buf)
        return dimg_error(ENOMEM, "out of memory");
    int r = 0;
    for (uint64_t at = 0; at < L->bat_length && r == 0; at += VHDX_MiB) {
        memset(buf, 0, VHDX_MiB);
        for (uint64_t i = at / 8; i < (at + VHDX_MiB) / 8; i++) {
            if (i % (chunk + 1) == chunk)
                continue;  /* a sector bitmap entry: not present */
            uint64_t b = i - i / (chunk + 1);
            if (b >= blocks)
                break;
            uint64_t e = L->zero_state ? VHDX_PAYLOAD_ZERO
                                       : (L->data_start + b * L->block_size) | VHDX_PAYLOAD_FULL;
            store_le64(buf + (i - at / 8) * 8, e);
        }
        r = io_pwrite(file, buf, VHDX_MiB, L->bat_offset + at);
    }
    free(buf);
    return r;
}

static void
put_region(uint8_t *t, int i, const uint8_t *guid, uint64_t off, uint64_t len)
{
    uint8_t *e = t + 16 + i * 32;
    memcpy(e, guid, 16);
    store_le64(e + 16, off);
    store_le32(e + 24, (uint32_t)len);
}

/* Identifier, both region tables, then both headers: until the headers are
 * in place the file is not a VHDX at all. */
static int
write_tables(struct dimg_io *file, const struct layout *L)
{
    uint8_t *buf = calloc(1, VHDX_REGION_SIZE);
    if (!buf)
        return dimg_error(ENOMEM, "out of memory");
    static const char creator[] = "dimg";
    memcpy(buf, "vhdxfile", 8);
    for (size_t i = 0; i < sizeof creator - 1; i++)
        store_le16(buf + 8 + 2 * i, (uint16_t)creator[i]);
    int r = io_pwrite(file, buf, VHDX_SECTOR, 0);

    memset(buf, 0, VHDX_REGION_SIZE);
    memcpy(buf, "regi", 4);
    store_le32(buf + 8, 2);
    put_region(buf, 0, vhdx_guid_bat, L->bat_offset, L->bat_length);
    put_region(buf, 1, vhdx_guid_metadata, L->meta_offset, META_LENGTH);
    store_le32(buf + 4, crc32c(0, buf, VHDX_REGION_SIZE));
    if (r == 0)
        r = io_pwrite(file, buf, VHDX_REGION_SIZE, VHDX_REGION1);
    if (r == 0)
        r = io_pwrite(file, buf, VHDX_REGION_SIZE, VHDX_REGION2);

    memset(buf, 0, VHDX_SECTOR);
    memcpy(buf, "head", 4);
    uint32_t seq0;
    vhdx_make_guid(buf + VHDX_H_FILE_GUID);
    memcpy(&seq0, buf + VHDX_H_FILE_GUID, 4);
    vhdx_make_guid(buf + VHDX_H_FILE_GUID);
    vhdx_make_guid(buf + VHDX_H_DATA_GUID);
    store_le16(buf + VHDX_H_VERSION, 1);
    store_le32(buf + VHDX_H_LOG_LENGTH, L->log_size);
    store_le64(buf + VHDX_H_LOG_OFFSET, LOG_OFFSET);
    for (int i = 0; i < 2 && r == 0; i++) {
        store_le64(buf + VHDX_H_SEQ, (uint64_t)(seq0 >> 1) + (uint64_t)i);
        store_le32(buf + VHDX_H_CRC, 0);
        store_le32(buf + VHDX_H_CRC, crc32c(0, buf, VHDX_SECTOR));
        r = io_pwrite(file, buf, VHDX_SECTOR, i ? VHDX_HEADER2 : VHDX_HEADER1);
    }
    free(buf);
    return r;
}

int
vhdx_create(struct dimg_io *file, const struct dimg_create_args *args)
{
    struct layout L;
    int r = parse_options(args, &L);
    if (r < 0)
        return r;
    uint64_t end = L.data_start + (L.fixed ? L.size : 0);
    r = io_truncate(file, end, DIMG_PREALLOC_OFF);
    if (r == -EFBIG)
        return dimg_error(EFBIG, "The image size is too large for file format 'vhdx'");
    if (r == 0)
        r = write_bat(file, &L);
    if (r == 0)
        r = write_metadata(file, &L);
    if (r == 0)
        r = io_flush(file);
    if (r == 0)
        r = write_tables(file, &L);
    return r;
}

/* qemu-img's order: size, log_size, block_size, subformat, block_state_zero,
 * then the file options. */
char *
vhdx_describe_create(const struct dimg_create_args *args)
{
    struct strbuf sb = { 0 };
    const char *v;
    uint64_t n;
    sb_append(&sb, "size=%" PRIu64, args->size);
    opts_get_size(args->opts, "log_size", DEFAULT_LOG_SIZE, &n);
    sb_append(&sb, " log_size=%" PRIu64, n);
    opts_get_size(args->opts, "block_size", 0, &n);
    sb_append(&sb, " block_size=%" PRIu64, n);
    if ((v = opts_get(args->opts, "subformat")))
        sb_append(&sb, " subformat=%s", v);
    if ((v = opts_get(args->opts, "block_state_zero")))
        sb_append(&sb, " block_state_zero=%s", v);
    if ((v = opts_get(args->opts, "nocow")))
        sb_append(&sb, " nocow=%s", v);
    if ((v = opts_get(args->opts, "preallocation")))
        sb_append(&sb, " preallocation=%s", v);
    if (opts_get_size(args->opts, "extent_size_hint", 0, &n) == 0)
        sb_append(&sb, " extent_size_hint=%" PRIu64, n);
    return sb.s;
}
