/*
 * VHDX: probing, the file identifier, the two headers (CRC-32C, sequence
 * numbers), the region table, the metadata table, open/close and the driver
 * table.  Every on-disk field is untrusted; the checks and their errno values
 * are those qemu-img 7.2 applies (observed), which mostly reports only
 * "Could not open 'FILE': Invalid argument".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "drv/vhdx/vhdx.h"
#include "util/checked.h"
#include "util/crc32c.h"
#include "util/endian.h"

const uint8_t vhdx_guid_bat[16] = { 0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42,
                                    0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08 };
const uint8_t vhdx_guid_metadata[16] = { 0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b,
                                         0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e };
const uint8_t vhdx_guid_file_params[16] = { 0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d,
                                            0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b };
const uint8_t vhdx_guid_disk_size[16] = { 0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48,
                                          0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8 };
const uint8_t vhdx_guid_disk_id[16] = { 0xab, 0x12, 0xca, 0xbe, 0xe6, 0xb2, 0x23, 0x45,
                                        0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46 };
const uint8_t vhdx_guid_logical_sector[16] = { 0x1d, 0xbf, 0x41, 0x81, 0x6f, 0xa9, 0x09, 0x47,
                                               0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f };
const uint8_t vhdx_guid_physical_sector[16] = { 0xc7, 0x48, 0xa3, 0xcd, 0x5d, 0x44, 0x71, 0x44,
                                                0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56 };
const uint8_t vhdx_guid_parent_locator[16] = { 0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45,
                                               0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c };

static const char vhdx_signature[8] = { 'v', 'h', 'd', 'x', 'f', 'i', 'l', 'e' };

/* A diagnostic line before the error proper, as qemu's error_report prints it. */
void
vhdx_report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", program_invocation_short_name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* qemu's generic open failure: "Could not open 'FILE': <strerror>". */
int
vhdx_open_failed(const struct dimg_image *img, int errnum)
{
    return dimg_error_errno(errnum, "Could not open '%s'", img->filename);
}

void
vhdx_make_guid(uint8_t *g)
{
    if (getrandom(g, 16, 0) != 16) {
        /* Uniqueness, not secrecy, is what matters here. */
        static uint64_t counter;
        uint64_t v = (uint64_t)(uintptr_t)g ^ ++counter ^ (uint64_t)time(NULL) << 20;
        memcpy(g, &v, 8);
        memcpy(g + 8, &counter, 8);
    }
    g[6] = (uint8_t)((g[6] & 0x0f) | 0x40);  /* RFC 4122 version 4 */
    g[8] = (uint8_t)((g[8] & 0x3f) | 0x80);
}

static bool
guid_is_zero(const uint8_t *g)
{
    static const uint8_t zero[16];
    return memcmp(g, zero, 16) == 0;
}

static int
vhdx_probe(const uint8_t *head, size_t len, const char *filename)
{
    (void)filename;
    if (len >= sizeof vhdx_signature && memcmp(head, vhdx_signature, sizeof vhdx_signature) == 0)
        return 100;
    return 0;
}

/* A header or table whose CRC-32C field (at crc_at) is computed as zero. */
static bool
crc_ok(const uint8_t *buf, size_t len, size_t crc_at)
{
    uint8_t zero[4] = { 0 };
    uint32_t c = crc32c(0, buf, crc_at);
    c = crc32c(c, zero, 4);
    c = crc32c(c, buf + crc_at + 4, len - crc_at - 4);
    return c == load_le32(buf + crc_at);
}

static void
crc_store(uint8_t *buf, size_t len, size_t crc_at)
{
    store_le32(buf + crc_at, 0);
    store_le32(buf + crc_at, crc32c(0, buf, len));
}

static bool
header_valid(const uint8_t *h)
{
    return memcmp(h, "head", 4) == 0 && crc_ok(h, VHDX_SECTOR, VHDX_H_CRC) &&
           load_le16(h + VHDX_H_VERSION) == 1;
}

/* The valid header with the higher sequence number is the current one. */
static int
read_headers(struct dimg_image *img, struct vhdx_state *s)
{
    uint8_t *h = malloc(2 * VHDX_SECTOR);
    if (!h)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pread(img->file, h, VHDX_SECTOR, VHDX_HEADER1);
    if (r == 0)
        r = io_pread(img->file, h + VHDX_SECTOR, VHDX_SECTOR, VHDX_HEADER2);
    if (r < 0) {
        free(h);
        return r;
    }
    bool v0 = header_valid(h), v1 = header_valid(h + VHDX_SECTOR);
    if (!v0 && !v1) {
        free(h);
        return dimg_error(EINVAL, "No valid VHDX header found");
    }
    uint64_t seq0 = load_le64(h + VHDX_H_SEQ), seq1 = load_le64(h + VHDX_SECTOR + VHDX_H_SEQ);
    if (v0 && v1 && seq0 == seq1 && memcmp(h, h + VHDX_SECTOR, VHDX_SECTOR) != 0) {
        /* Two different "current" headers: neither can be trusted (qemu agrees). */
        free(h);
        return dimg_error(EINVAL, "No valid VHDX header found");
    }
    if (v0 && v1)
        s->cur = seq1 > seq0 ? 1 : 0;
    else
        s->cur = v1 ? 1 : 0;
    memcpy(s->header, h + (size_t)s->cur * VHDX_SECTOR, VHDX_SECTOR);
    free(h);
    s->seq = load_le64(s->header + VHDX_H_SEQ);
    s->log_offset = load_le64(s->header + VHDX_H_LOG_OFFSET);
    s->log_length = load_le32(s->header + VHDX_H_LOG_LENGTH);
    if (load_le16(s->header + VHDX_H_LOG_VERSION) != 0 || s->log_offset < VHDX_MiB ||
        s->log_offset % VHDX_MiB ||
        s->log_offset > (uint64_t)INT64_MAX - s->log_length)
        return vhdx_open_failed(img, EINVAL);
    return 0;
}

/*
 * Record a new header in both slots: the other slot first, then the current
 * one, each flushed, so one valid header with the newest state exists at
 * every instant.  new_write_guids marks the file as modified since open.
 */
int
vhdx_write_headers(struct dimg_image *img, struct vhdx_state *s, bool new_write_guids,
                   const uint8_t *log_guid)
{
    uint8_t *h = calloc(1, VHDX_SECTOR);
    if (!h)
        return dimg_error(ENOMEM, "out of memory");
    memcpy(h, s->header, VHDX_H_LOG_OFFSET + 8);
    if (new_write_guids) {
        vhdx_make_guid(h + VHDX_H_FILE_GUID);
        vhdx_make_guid(h + VHDX_H_DATA_GUID);
    }
    if (log_guid)
        memcpy(h + VHDX_H_LOG_GUID, log_guid, 16);
    else
        memset(h + VHDX_H_LOG_GUID, 0, 16);
    store_le16(h + VHDX_H_LOG_VERSION, 0);
    store_le16(h + VHDX_H_VERSION, 1);
    int r = 0;
    for (int i = 0; i < 2 && r == 0; i++) {
        int slot = i == 0 ? !s->cur : s->cur;
        store_le64(h + VHDX_H_SEQ, s->seq + 1);
        crc_store(h, VHDX_SECTOR, VHDX_H_CRC);
        r = io_pwrite(img->file, h, VHDX_SECTOR, slot ? VHDX_HEADER2 : VHDX_HEADER1);
        if (r == 0)
            r = io_flush(img->file);
        if (r == 0) {
            s->seq++;
            memcpy(s->header, h, VHDX_SECTOR);
        }
    }
    free(h);
    return r;
}

const struct vhdx_region *
vhdx_find_overlap(const struct vhdx_state *s, uint64_t start, uint64_t end)
{
    /* Newest first: qemu names the most recently added region it hits. */
    for (unsigned i = s->nregions; i-- > 0;)
        if (start < s->regions[i].end && s->regions[i].start < end)
            return &s->regions[i];
    return NULL;
}

/* Regions may not overlap each other or the log (qemu's check and message). */
static int
add_region(struct dimg_image *img, struct vhdx_state *s, uint64_t start, uint64_t len)
{
    const struct vhdx_region *hit = vhdx_find_overlap(s, start, start + len);
    if (hit) {
        vhdx_report("VHDX region %" PRIu64 "-%" PRIu64 " overlaps with region %" PRIu64
                    "-%" PRIu64, start, start + len, hit->start, hit->end);
        return vhdx_open_failed(img, EINVAL);
    }
    s->regions[s->nregions++] = (struct vhdx_region){ start, start + len };
    return 0;
}

/* Only the first region table counts, as in qemu. */
static int
read_region_table(struct dimg_image *img, struct vhdx_state *s)
{
    uint8_t *t = malloc(VHDX_REGION_SIZE);
    if (!t)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pread(img->file, t, VHDX_REGION_SIZE, VHDX_REGION1);
    if (r < 0)
        goto out;
    uint32_t n = load_le32(t + 8);
    r = vhdx_open_failed(img, EINVAL);
    if (memcmp(t, "regi", 4) != 0 || !crc_ok(t, VHDX_REGION_SIZE, 4) || n > VHDX_MAX_ENTRIES)
        goto out;
    bool have_bat = false, have_meta = false;
    s->nregions = 0;
    if ((r = add_region(img, s, s->log_offset, s->log_length)) < 0)
        goto out;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = t + 16 + (size_t)i * 32;
        uint64_t off = load_le64(e + 16);
        uint32_t len = load_le32(e + 24);
        bool is_bat = memcmp(e, vhdx_guid_bat, 16) == 0;
        bool is_meta = memcmp(e, vhdx_guid_metadata, 16) == 0;
        if (!is_bat && !is_meta) {
            if (load_le32(e + 28) & 1) {
                r = vhdx_open_failed(img, ENOTSUP);
                goto out;
            }
            continue;
        }
        if ((is_bat && have_bat) || (is_meta && have_meta) || off > (uint64_t)INT64_MAX - len) {
            r = vhdx_open_failed(img, EINVAL);
            goto out;
        }
        if ((r = add_region(img, s, off, len)) < 0)
            goto out;
        if (is_bat) {
            have_bat = true;
            s->bat_offset = off;
            s->bat_length = len;
        } else {
            have_meta = true;
            s->meta_offset = off;
            s->meta_length = len;
        }
    }
    r = have_bat && have_meta ? 0 : vhdx_open_failed(img, EINVAL);
out:
    free(t);
    return r;
}

enum { M_PARAMS, M_SIZE, M_ID, M_LOGICAL, M_PHYSICAL, M_PARENT, M_COUNT };

static int
read_metadata(struct dimg_image *img, struct vhdx_state *s)
{
    static const uint8_t *const ids[M_COUNT] = {
        vhdx_guid_file_params, vhdx_guid_disk_size, vhdx_guid_disk_id,
        vhdx_guid_logical_sector, vhdx_guid_physical_sector, vhdx_guid_parent_locator,
    };
    static const uint32_t min_len[M_COUNT] = { 8, 8, 16, 4, 4, 0 };
    uint8_t *t = malloc(VHDX_META_TABLE);
    if (!t)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pread(img->file, t, VHDX_META_TABLE, s->meta_offset);
    if (r < 0)
        goto out;
    uint16_t n = load_le16(t + 10);
    r = vhdx_open_failed(img, EINVAL);
    if (memcmp(t, "metadata", 8) != 0 || n > VHDX_MAX_ENTRIES)
        goto out;
    uint32_t item_off[M_COUNT] = { 0 };
    bool have[M_COUNT] = { false };
    for (uint16_t i = 0; i < n; i++) {
        const uint8_t *e = t + 32 + (size_t)i * 32;
        uint32_t off = load_le32(e + 16), len = load_le32(e + 20);
        /* Items live after the table, inside the 1 MiB qemu reads the region as. */
        if (off < VHDX_META_TABLE || (uint64_t)off + len > VHDX_MiB) {
            r = vhdx_open_failed(img, EINVAL);
            goto out;
        }
        int k;
        for (k = 0; k < M_COUNT && memcmp(e, ids[k], 16) != 0; k++)
            ;
        if (k == M_COUNT) {
            if (load_le32(e + 24) & 4) {
                r = vhdx_open_failed(img, ENOTSUP);
                goto out;
            }
            continue;
        }
        if (have[k] || len < min_len[k]) {
            r = vhdx_open_failed(img, EINVAL);
            goto out;
        }
        have[k] = true;
        item_off[k] = off;
    }
    for (int k = 0; k < M_PARENT; k++) {
        if (!have[k]) {
            r = vhdx_open_failed(img, ENOTSUP);
            goto out;
        }
    }
    uint8_t v[8];
    if ((r = io_pread(img->file, v, 8, s->meta_offset + item_off[M_PARAMS])) < 0)
        goto out;
    s->block_size = load_le32(v);
    s->params = load_le32(v + 4);
    if ((r = io_pread(img->file, v, 8, s->meta_offset + item_off[M_SIZE])) < 0)
        goto out;
    s->disk_size = load_le64(v);
    if ((r = io_pread(img->file, v, 4, s->meta_offset + item_off[M_LOGICAL])) < 0)
        goto out;
    s->logical_sector = load_le32(v);
    r = vhdx_open_failed(img, EINVAL);
    if (s->block_size < VHDX_MIN_BLOCK || s->block_size > VHDX_MAX_BLOCK ||
        !is_power_of_2(s->block_size))
        goto out;
    if (s->params & VHDX_PARAM_HAS_PARENT) {
        /* Differencing images: qemu-img 7.2 has no parent support. */
        r = vhdx_open_failed(img, have[M_PARENT] ? ENOTSUP : EINVAL);
        goto out;
    }
    if (s->logical_sector != 512) {
        r = vhdx_open_failed(img, ENOTSUP);
        goto out;
    }
    if (s->disk_size > VHDX_MAX_SIZE)
        goto out;
    r = 0;
out:
    free(t);
    return r;
}

static void
vhdx_close(struct dimg_image *img)
{
    struct vhdx_state *s = dimg_image_state(img);
    if (s->lock_init) {
        if (img->writable) {
            /* dimg_close flushed already; leave nothing unlogged behind. */
            pthread_mutex_lock(&s->lock);
            vhdx_commit(img, s);
            pthread_mutex_unlock(&s->lock);
        }
        pthread_mutex_destroy(&s->lock);
        s->lock_init = false;
    }
    free(s->bat);
    s->bat = NULL;
}

/* A dirty log: replayed when writable, refused read-only when it has entries. */
static int
handle_log(struct dimg_image *img, struct vhdx_state *s)
{
    if (guid_is_zero(s->header + VHDX_H_LOG_GUID))
        return 0;
    int r = vhdx_log_replay(img, s, img->writable);
    if (r <= 0)
        return r;
    if (!img->writable)
        return dimg_error(EPERM, "VHDX image file '%s' opened read-only, but contains a log "
                          "that needs to be replayed\nTo replay the log, run:\n"
                          "qemu-img check -r all '%s'", img->filename, img->filename);
    s->replayed = true;
    return 0;
}

static int
vhdx_open(struct dimg_image *img)
{
    struct vhdx_state *s = dimg_image_state(img);
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return dimg_error(ENOMEM, "Could not initialize a lock");
    s->lock_init = true;
    uint8_t sig[8];
    int r = io_pread(img->file, sig, sizeof sig, 0);
    if (r == 0 && memcmp(sig, vhdx_signature, sizeof sig) != 0)
        r = vhdx_open_failed(img, EINVAL);
    if (r == 0)
        r = read_headers(img, s);
    if (r == 0)
        r = handle_log(img, s);
    if (r == 0)
        r = read_region_table(img, s);
    if (r == 0)
        r = read_metadata(img, s);
    int64_t fsize = r == 0 ? io_get_size(img->file) : 0;
    if (fsize < 0)
        r = (int)fsize;
    if (r == 0)
        r = vhdx_load_bat(img, s, fsize);
    if (r < 0) {
        s->npending = 0;  /* nothing to commit on the way out */
        vhdx_close(img);
        return r;
    }
    img->size = s->disk_size / 512 * 512;
    img->cluster_size = s->block_size;
    /* New blocks go past the file and past every region, even one that lies
     * beyond the file's end (qemu would place a block on top of it). */
    uint64_t end = (uint64_t)fsize;
    for (unsigned i = 0; i < s->nregions; i++)
        end = max_u64(end, s->regions[i].end);
    s->file_end = round_up_u64(end, VHDX_MiB);
    return 0;
}

const struct dimg_driver dimg_drv_vhdx = {
    .name = "vhdx",
    .flags = DIMG_DRV_CREATE | DIMG_DRV_RESIZE_LOCK,
    .state_size = sizeof(struct vhdx_state),
    .create_opts = vhdx_create_opts,
    .probe = vhdx_probe,
    .open = vhdx_open,
    .close = vhdx_close,
    .check_create = vhdx_check_create,
    .create = vhdx_create,
    .describe_create = vhdx_describe_create,
    .pread = vhdx_pread,
    .pwrite = vhdx_pwrite,
    .zero = vhdx_zero,
    .flush = vhdx_flush,
    .check = vhdx_check,
};
