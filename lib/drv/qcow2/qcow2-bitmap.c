/*
 * qcow2 persistent dirty bitmaps: the bitmaps extension and directory read
 * and validated at open, bitmap tables and data loaded from disk, the
 * in-memory bits kept up to date by guest writes, and what info and measure
 * report.  Format: shared/specs/qemu-qcow2.txt ("Bitmaps extension",
 * "Bitmaps").  Writing them back is qcow2-bitmap-store.c, the bitmap
 * subcommand's operations qcow2-bitmap-ops.c.
 *
 * Everything on disk is untrusted: the directory size, entry sizes, table
 * sizes and granularity are bounded by qemu's limits before anything is
 * allocated, and dimg caps the tables it reads and the data it holds.
 * Messages are the ones qemu-img 7.2 prints for the same images.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2-bitmap.h"
#include "util/checked.h"
#include "util/endian.h"

uint64_t
bm_data_bytes(uint64_t size, unsigned gran_bits)
{
    uint64_t bits = (size >> gran_bits) + ((size & ((1ull << gran_bits) - 1)) != 0);
    return (bits + 7) / 8;
}

/* Bitmap table entries a bitmap of this size needs (0 when it would be absurdly large). */
uint32_t
bm_table_entries(const struct qcow2_state *s, uint64_t size, unsigned gran_bits)
{
    uint64_t n = (bm_data_bytes(size, gran_bits) + s->cluster_size - 1) >> s->cluster_bits;
    return n > BM_MAX_TABLE_ENTRIES ? 0 : (uint32_t)n;
}

struct qcow2_bitmap *
bm_find(struct qcow2_bitmaps *b, const char *name)
{
    for (size_t i = 0; b && i < b->n; i++)
        if (strcmp(b->v[i].name, name) == 0)
            return &b->v[i];
    return NULL;
}

void
bm_entry_free(struct qcow2_bitmap *bm)
{
    free(bm->name);
    free(bm->data);
    bm->name = NULL;
    bm->data = NULL;
}

size_t
qcow2_bitmaps_count(const struct qcow2_state *s)
{
    return s->bitmaps && !s->bitmaps->drop_ext ? s->bitmaps->n : 0;
}

void
qcow2_bitmaps_free(struct qcow2_state *s)
{
    struct qcow2_bitmaps *b = s->bitmaps;
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        bm_entry_free(&b->v[i]);
    free(b->v);
    free(b);
    s->bitmaps = NULL;
}

/* Whether one directory entry's fields are within what qemu accepts. */
static bool
entry_acceptable(const struct qcow2_state *s, uint64_t tab_off, uint32_t tab_size,
                 uint32_t flags, uint8_t type, uint8_t gran_bits, uint16_t name_size)
{
    return tab_size != 0 && tab_size <= BM_MAX_TABLE_ENTRIES &&
           tab_off != 0 && (tab_off & (s->cluster_size - 1)) == 0 &&
           (uint64_t)tab_size << s->cluster_bits <= BM_MAX_PHYS_BYTES &&
           !(flags & BME_RESERVED) && type == BME_TYPE_DIRTY &&
           gran_bits >= BM_MIN_GRAN_BITS && gran_bits <= BM_MAX_GRAN_BITS &&
           name_size <= BM_MAX_NAME;
}

/* Parse the directory into b->v (entries validated, names unique). */
static int
parse_directory(struct dimg_image *img, struct qcow2_bitmaps *b, uint32_t nb, const uint8_t *dir)
{
    struct qcow2_state *s = dimg_image_state(img);
    b->v = calloc(nb, sizeof *b->v);
    if (!b->v)
        return dimg_error(ENOMEM, "out of memory");
    uint64_t p = 0;
    while (p < b->dir_size) {
        const uint8_t *e = dir + p;
        if (b->dir_size - p < BME_ENTRY_FIXED)
            return dimg_error(EINVAL, "Broken bitmap directory");
        uint16_t name_size = load_be16(e + 18);
        uint32_t extra = load_be32(e + 20);
        uint64_t esize = round_up_u64(BME_ENTRY_FIXED + (uint64_t)extra + name_size, 8);
        if (esize > b->dir_size - p)
            return dimg_error(EINVAL, "Broken bitmap directory");
        if (extra)
            return dimg_error(ENOTSUP, "Bitmap extra data is not supported");
        char *name = malloc((size_t)name_size + 1);
        if (!name)
            return dimg_error(ENOMEM, "out of memory");
        memcpy(name, e + BME_ENTRY_FIXED, name_size);
        name[name_size] = '\0'; /* an embedded NUL ends the name, as in qemu */
        uint64_t tab_off = load_be64(e);
        uint32_t tab_size = load_be32(e + 8), flags = load_be32(e + 12);
        if (b->n == nb) {
            free(name);
            return dimg_error(EINVAL, "More bitmaps found than specified in header extension");
        }
        if (!entry_acceptable(s, tab_off, tab_size, flags, e[16], e[17], name_size)) {
            int r = dimg_error(EINVAL, "Bitmap '%s' doesn't satisfy the constraints", name);
            free(name);
            return r;
        }
        b->v[b->n++] = (struct qcow2_bitmap){
            .name = name, .flags = flags, .gran_bits = e[17], .table_offset = tab_off,
            .table_size = tab_size, .inconsistent = (flags & BME_IN_USE) != 0,
        };
        p += esize;
    }
    if (b->n < nb)
        return dimg_error(EINVAL, "Less bitmaps found than specified in header extension");
    return 0;
}

/* Read a bitmap's table (host-endian), rejecting malformed entries. */
int
bm_read_table(struct dimg_image *img, const struct qcow2_bitmap *bm, uint64_t **out)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t *t = malloc((size_t)bm->table_size * 8);
    if (!t)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pread(img->file, t, (size_t)bm->table_size * 8, bm->table_offset);
    for (uint32_t i = 0; r == 0 && i < bm->table_size; i++) {
        t[i] = load_be64(&t[i]);
        uint64_t off = t[i] & QCOW2_OFFSET_MASK;
        if ((t[i] & BME_TABLE_RESERVED) || (off & (s->cluster_size - 1)) || (off && (t[i] & 1)))
            r = dimg_error(EINVAL, "Could not read bitmap_table table from image for bitmap "
                                   "'%s': Invalid argument", bm->name);
    }
    if (r < 0) {
        free(t);
        return r;
    }
    *out = t;
    return 0;
}

/* What loading a consistent bitmap checks: its table, and that it fits the image. */
static int
validate_bitmap(struct dimg_image *img, const struct qcow2_bitmap *bm)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t *t;
    int r = bm_read_table(img, bm, &t);
    if (r < 0)
        return r;
    free(t);
    if (bm->table_size != bm_table_entries(s, img->size, bm->gran_bits))
        return dimg_error(EINVAL, "Could not read bitmap '%s' from image: Invalid argument",
                          bm->name);
    return 0;
}

int
bm_load_data(struct dimg_image *img, struct qcow2_bitmap *bm)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (bm->data)
        return 0;
    uint64_t bytes = bm_data_bytes(img->size, bm->gran_bits);
    uint64_t held = 0;
    for (size_t i = 0; i < s->bitmaps->n; i++)
        if (s->bitmaps->v[i].data)
            held += bm_data_bytes(img->size, s->bitmaps->v[i].gran_bits);
    if (bytes + held > BM_MAX_LOADED)
        return dimg_error(EFBIG, "%s: bitmap '%s' does not fit in memory", img->filename,
                          bm->name);
    uint64_t *t;
    int r = bm_read_table(img, bm, &t);
    if (r < 0)
        return r;
    uint8_t *d = calloc(1, bytes ? (size_t)bytes : 1);
    if (!d) {
        free(t);
        return dimg_error(ENOMEM, "out of memory");
    }
    uint64_t cs = s->cluster_size;
    for (uint32_t i = 0; i < bm->table_size && (uint64_t)i * cs < bytes && r == 0; i++) {
        uint64_t pos = (uint64_t)i * cs, n = min_u64(cs, bytes - pos);
        uint64_t off = t[i] & QCOW2_OFFSET_MASK;
        if (off)
            r = io_pread(img->file, d + pos, (size_t)n, off);
        else if (t[i] & 1)
            memset(d + pos, 0xff, (size_t)n);
    }
    free(t);
    if (r < 0) {
        free(d);
        return r;
    }
    /* Bits past the end of the image stay clear, whatever the file held. */
    uint64_t bits = (img->size + (1ull << bm->gran_bits) - 1) >> bm->gran_bits;
    if (bits % 8)
        d[bytes - 1] &= (uint8_t)((1u << (bits % 8)) - 1);
    bm->data = d;
    bm->covers = img->size;
    return 0;
}

/* The extension's fixed part; 1: ignored (bitmaps left inconsistent by another program). */
static int
parse_extension(struct dimg_image *img, struct qcow2_bitmaps *b, uint32_t *nb)
{
    struct qcow2_state *s = dimg_image_state(img);
    const struct qcow2_ext *x = qcow2_ext_find(s, QCOW2_EXT_BITMAPS);
    if (s->version < 3 || !(s->autoclear & QCOW2_AUTOCLEAR_BITMAPS))
        return 1;
    if (x->len != 24)
        return dimg_error(EINVAL, "bitmaps_ext: Invalid extension length");
    *nb = load_be32(x->data);
    b->dir_size = load_be64(x->data + 8);
    b->dir_offset = load_be64(x->data + 16);
    if (load_be32(x->data + 4))
        return dimg_error(EINVAL, "bitmaps_ext: Reserved field is not zero");
    if (*nb == 0)
        return dimg_error(EINVAL, "found bitmaps extension with zero bitmaps");
    if (b->dir_size == 0)
        return dimg_error(EINVAL, "Requested bitmap directory size is zero");
    if (*nb > BM_MAX_COUNT)
        return dimg_error(EINVAL, "bitmaps_ext: Image has %" PRIu32 " bitmaps, exceeding the "
                                  "QEMU supported maximum of %u", *nb, BM_MAX_COUNT);
    if (b->dir_size > BM_MAX_DIR_BYTES)
        return dimg_error(EINVAL, "bitmaps_ext: bitmap directory size (%" PRIu64 ") exceeds "
                                  "the maximum supported size (%u)", b->dir_size,
                          BM_MAX_DIR_BYTES);
    if (b->dir_offset & (s->cluster_size - 1))
        return dimg_error(EINVAL, "bitmaps_ext: invalid bitmap directory offset");
    return 0;
}

static int
open_bitmaps(struct dimg_image *img, struct qcow2_bitmaps *b)
{
    uint32_t nb = 0;
    int r = parse_extension(img, b, &nb);
    if (r == 1) {
        /* qemu warns on every open (without a final newline) and ignores the bitmaps. */
        struct qcow2_state *s = dimg_image_state(img);
        fprintf(stderr, "%s: warning: %s\nSome clusters may be leaked, run 'qemu-img check -r' "
                "on the image file to fix.", program_invocation_short_name,
                s->version < 3 ? "This qcow2 v2 image contains bitmaps, but they may have been "
                                 "modified by a program without persistent bitmap support; so "
                                 "now they must all be considered inconsistent"
                               : "a program lacking bitmap support modified this file, so all "
                                 "bitmaps are now considered inconsistent");
        b->drop_ext = true;
        b->dir_offset = b->dir_size = 0;
        return 0;
    }
    if (r < 0)
        return r;
    uint8_t *dir = malloc(b->dir_size ? (size_t)b->dir_size : 1);
    if (!dir)
        return dimg_error(ENOMEM, "out of memory");
    r = io_pread(img->file, dir, (size_t)b->dir_size, b->dir_offset);
    if (r == 0)
        r = parse_directory(img, b, nb, dir);
    free(dir);
    uint64_t table_bytes = 0;
    for (size_t i = 0; r == 0 && i < b->n; i++) {
        struct qcow2_bitmap *bm = &b->v[i];
        for (size_t j = 0; j < i && r == 0; j++)
            if (strcmp(b->v[j].name, bm->name) == 0)
                r = dimg_error(EEXIST, "Bitmap already exists: %s", bm->name);
        if (r < 0 || bm->inconsistent)
            continue;
        table_bytes += (uint64_t)bm->table_size * 8;
        if (table_bytes > BM_MAX_TABLE_READ)
            r = dimg_error(EFBIG, "%s: bitmap tables too large", img->filename);
        else
            r = validate_bitmap(img, bm);
    }
    return r;
}

int
qcow2_bitmaps_open(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (!qcow2_ext_find(s, QCOW2_EXT_BITMAPS))
        return 0;
    s->bitmaps = calloc(1, sizeof *s->bitmaps);
    if (!s->bitmaps)
        return dimg_error(ENOMEM, "out of memory");
    int r = open_bitmaps(img, s->bitmaps);
    if (r < 0)
        qcow2_bitmaps_free(s);
    return r;
}

/* ---- what guest writes, info and measure see --------------------------- */

static void
set_bits(uint8_t *d, uint64_t first, uint64_t end)
{
    while (first < end && (first & 7)) {
        d[first / 8] |= (uint8_t)(1u << (first & 7));
        first++;
    }
    if (end - first >= 8) {
        memset(d + first / 8, 0xff, (size_t)((end - first) / 8));
        first += (end - first) & ~7ull;
    }
    for (; first < end; first++)
        d[first / 8] |= (uint8_t)(1u << (first & 7));
}

/* Set the bits of bm covering guest bytes [off, off + len). */
static void
mark_range(const struct dimg_image *img, struct qcow2_bitmap *bm, uint64_t off, uint64_t len)
{
    if (len == 0 || off >= img->size)
        return;
    uint64_t end = min_u64(img->size, off + len);
    set_bits(bm->data, off >> bm->gran_bits, ((end - 1) >> bm->gran_bits) + 1);
}

void
qcow2_bitmaps_mark_dirty(struct dimg_image *img, uint64_t off, uint64_t len)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_bitmaps *b = s->bitmaps;
    if (!b || !b->active)
        return;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < b->n; i++) {
        struct qcow2_bitmap *bm = &b->v[i];
        if (bm->data && !bm->inconsistent && (bm->flags & BME_AUTO) && bm_fit(img, bm) == 0)
            mark_range(img, bm, off, len);
    }
    pthread_mutex_unlock(&s->lock);
}

/* Every set bit of src (granularity 2^src_bits) marks its guest range in dst. */
void
bm_merge_bits(const struct dimg_image *img, struct qcow2_bitmap *dst, const uint8_t *src,
              unsigned src_bits, uint64_t src_bytes)
{
    if (src_bits == dst->gran_bits) {
        for (uint64_t i = 0; i < src_bytes; i++)
            dst->data[i] |= src[i];
        return;
    }
    for (uint64_t i = 0; i < src_bytes; i++) {
        if (!src[i])
            continue;
        for (unsigned k = 0; k < 8; k++)
            if (src[i] & (1u << k))
                mark_range(img, dst, (i * 8 + k) << src_bits, 1ull << src_bits);
    }
}

/* After a resize: bits past the new end are dropped, new ones start clear. */
int
bm_fit(struct dimg_image *img, struct qcow2_bitmap *bm)
{
    if (!bm->data || bm->covers == img->size)
        return 0;
    uint64_t old = bm_data_bytes(bm->covers, bm->gran_bits);
    uint64_t bytes = bm_data_bytes(img->size, bm->gran_bits);
    uint8_t *d = realloc(bm->data, bytes ? (size_t)bytes : 1);
    if (!d)
        return dimg_error(ENOMEM, "out of memory");
    if (bytes > old)
        memset(d + old, 0, (size_t)(bytes - old));
    uint64_t bits = (img->size + (1ull << bm->gran_bits) - 1) >> bm->gran_bits;
    if (bits % 8)
        d[bytes - 1] &= (uint8_t)((1u << (bits % 8)) - 1);
    bm->data = d;
    bm->covers = img->size;
    return 0;
}

int
qcow2_bitmap_list(struct dimg_image *img, struct dimg_bitmap_info **out, size_t *count)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_bitmaps *b = s->bitmaps;
    *out = NULL;
    *count = 0;
    if (!b || b->n == 0)
        return 0;
    struct dimg_bitmap_info *v = calloc(b->n, sizeof *v);
    if (!v)
        return dimg_error(ENOMEM, "out of memory");
    for (size_t i = 0; i < b->n; i++) {
        v[i].name = strdup(b->v[i].name);
        v[i].granularity = 1ull << b->v[i].gran_bits;
        v[i].flags = ((b->v[i].flags & BME_IN_USE) ? DIMG_BITMAP_IN_USE : 0) |
                     ((b->v[i].flags & BME_AUTO) ? DIMG_BITMAP_AUTO : 0);
        if (!v[i].name) {
            dimg_bitmap_list_free(v, i);
            return dimg_error(ENOMEM, "out of memory");
        }
    }
    *out = v;
    *count = b->n;
    return 0;
}

/* Directory bytes of one entry. */
static uint64_t
entry_bytes(const struct qcow2_bitmap *bm)
{
    return round_up_u64(BME_ENTRY_FIXED + strlen(bm->name), 8);
}

uint64_t
qcow2_bitmaps_measure(struct dimg_image *src, uint32_t cluster_size)
{
    if (src->drv != &dimg_drv_qcow2)
        return 0;
    struct qcow2_state *s = dimg_image_state(src);
    struct qcow2_bitmaps *b = s->bitmaps;
    uint64_t clusters = 0, dir = 0;
    for (size_t i = 0; b && i < b->n; i++) {
        uint64_t data = (bm_data_bytes(src->size, b->v[i].gran_bits) + cluster_size - 1) /
                        cluster_size;
        clusters += data + (data * 8 + cluster_size - 1) / cluster_size;
        dir += entry_bytes(&b->v[i]);
    }
    clusters += (dir + cluster_size - 1) / cluster_size;
    return clusters * cluster_size;
}

/* ---- adding ------------------------------------------------------------- */

const char *
bm_add_refusal(struct dimg_image *img, const char *name, unsigned gran_bits)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_bitmaps *b = s->bitmaps;
    if (s->version < 3)
        return "Cannot store dirty bitmaps in qcow2 v2 files";
    if (strlen(name) > BM_MAX_NAME)
        return "Name length exceeds maximum (1023 characters)";
    if (b && b->n >= BM_MAX_COUNT)
        return "Maximum number of persistent bitmaps is already reached";
    uint64_t dir = round_up_u64(BME_ENTRY_FIXED + strlen(name), 8);
    for (size_t i = 0; b && i < b->n; i++)
        dir += entry_bytes(&b->v[i]);
    if (dir > BM_MAX_DIR_BYTES)
        return "Not enough space in the bitmap directory";
    return bm_size_refusal(s, img->size, gran_bits);
}

const char *
bm_size_refusal(const struct qcow2_state *s, uint64_t size, unsigned gran_bits)
{
    uint32_t entries = bm_table_entries(s, size, gran_bits);
    if (gran_bits > BM_MAX_GRAN_BITS || entries == 0 ||
        (uint64_t)entries << s->cluster_bits > BM_MAX_PHYS_BYTES)
        return "Too much space will be occupied by the bitmap. Use larger granularity";
    return NULL;
}
