/*
 * qcow2 persistent dirty bitmaps: writing them to disk.
 *
 * Crash safety (a SIGKILL at any instant leaves the image at worst leaky):
 *  - a read-write open first flags every usable bitmap in_use by rewriting
 *    only the flags of the directory in place (each flags word lies inside
 *    one sector), before any guest write can make the stored bits stale;
 *  - storing writes the bits, the bitmap tables and a new directory into
 *    newly allocated clusters whose refcounts reach the disk first; only then
 *    does the header point at the new directory (qcow2_header_write flushes
 *    before it writes), and only after that are the old clusters freed.
 *
 * Clusters are placed first-fit from the start of the file, the way qemu
 * places them, so an image changed by dimg is laid out like the same image
 * changed by qemu-img.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2-bitmap.h"
#include "util/checked.h"
#include "util/endian.h"

/* Allocate the clusters covering bytes (at least one), first fit. */
static int
bm_alloc(struct dimg_image *img, uint64_t bytes, uint64_t *out)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_bitmaps *b = s->bitmaps;
    uint64_t n = max_u64(1, (bytes + s->cluster_size - 1) >> s->cluster_bits);
    uint64_t limit = s->alloc_next >> s->cluster_bits;
    uint64_t next = b->free_hint, start = next, run = 0;
    while (run < n) {
        uint64_t rc = 0;
        int r;
        if (next < limit && (r = qcow2_refcount_get(img, next, &rc)) < 0)
            return r;
        next++;
        if (rc) {
            run = 0;
            start = next;
        } else {
            run++;
        }
    }
    b->free_hint = next;
    /* Past the allocation frontier: move it so refcount blocks go after the run. */
    s->alloc_next = max_u64(s->alloc_next, next << s->cluster_bits);
    for (uint64_t c = start; c < next; c++) {
        int r = qcow2_refcount_update(img, c, 1, 0);
        if (r < 0)
            return r;
    }
    *out = start << s->cluster_bits;
    return 0;
}

/*
 * Drop one reference from each cluster of [off, off + bytes) (a bogus
 * pointer frees nothing).  Freed bitmap data is discarded in the file, as
 * qemu does; tables and directories are not.
 */
int
bm_free_clusters(struct dimg_image *img, uint64_t off, uint64_t bytes, bool discard)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (off & (s->cluster_size - 1))
        return 0;
    uint64_t first = off >> s->cluster_bits;
    uint64_t n = max_u64(1, (bytes + s->cluster_size - 1) >> s->cluster_bits);
    for (uint64_t c = first; c < first + n; c++) {
        uint64_t rc;
        int r = qcow2_refcount_get(img, c, &rc);
        if (r == 0 && rc)
            r = qcow2_refcount_update(img, c, -1, 0);
        if (r < 0)
            return r;
        if (rc == 1 && discard)
            io_discard(img->file, c << s->cluster_bits, s->cluster_size); /* advisory */
        if (rc == 1 && c < s->bitmaps->free_hint)
            s->bitmaps->free_hint = c;
    }
    return 0;
}

/* Free a stored bitmap's data clusters and table (nothing for one never stored). */
int
bm_free_bitmap(struct dimg_image *img, const struct qcow2_bitmap *bm)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (!bm->table_offset || !bm->table_size)
        return 0;
    uint64_t *t = malloc((size_t)bm->table_size * 8);
    if (!t)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pread(img->file, t, (size_t)bm->table_size * 8, bm->table_offset);
    for (uint32_t i = 0; r == 0 && i < bm->table_size; i++) {
        uint64_t off = load_be64(&t[i]) & QCOW2_OFFSET_MASK;
        if (off)
            r = bm_free_clusters(img, off, s->cluster_size, true);
    }
    free(t);
    if (r == 0)
        r = bm_free_clusters(img, bm->table_offset, (uint64_t)bm->table_size * 8, false);
    return r;
}

static bool
all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Write bm's bits and a new table for them; bm then describes the new copy. */
static int
store_one(struct dimg_image *img, struct qcow2_bitmap *bm)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t cs = s->cluster_size, bytes = bm_data_bytes(img->size, bm->gran_bits);
    uint32_t entries = bm_table_entries(s, img->size, bm->gran_bits);
    uint8_t *table = calloc(entries ? entries : 1, 8), *buf = malloc(cs);
    int r = table && buf ? bm_fit(img, bm) : dimg_error(ENOMEM, "out of memory");
    for (uint32_t i = 0; r == 0 && i < entries; i++) {
        uint64_t pos = (uint64_t)i * cs, n = min_u64(cs, bytes - pos), off;
        if (all_zero(bm->data + pos, (size_t)n))
            continue;
        memset(buf, 0, cs);
        memcpy(buf, bm->data + pos, (size_t)n);
        if ((r = bm_alloc(img, cs, &off)) == 0 && (r = io_pwrite(img->file, buf, cs, off)) == 0)
            store_be64(table + (size_t)i * 8, off);
    }
    uint64_t toff;
    if (r == 0 && (r = bm_alloc(img, (uint64_t)entries * 8, &toff)) == 0 &&
        (r = io_pwrite(img->file, table, (size_t)entries * 8, toff)) == 0) {
        bm->table_offset = toff;
        bm->table_size = entries;
    }
    free(table);
    free(buf);
    return r;
}

/*
 * The directory for the bitmaps in memory that have a table on disk (one
 * added since the open has none until it is stored); *len its size, *count
 * its entries.
 */
static uint8_t *
build_dir(const struct qcow2_bitmaps *b, uint64_t *len, uint32_t *count)
{
    uint64_t n = 0;
    *count = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->v[i].table_offset)
            n += round_up_u64(BME_ENTRY_FIXED + strlen(b->v[i].name), 8);
    uint8_t *d = calloc(1, n ? (size_t)n : 1);
    if (!d)
        return NULL;
    uint8_t *p = d;
    for (size_t i = 0; i < b->n; i++) {
        const struct qcow2_bitmap *bm = &b->v[i];
        if (!bm->table_offset)
            continue;
        ++*count;
        size_t name_len = strlen(bm->name);
        store_be64(p, bm->table_offset);
        store_be32(p + 8, bm->table_size);
        store_be32(p + 12, bm->flags);
        p[16] = BME_TYPE_DIRTY;
        p[17] = bm->gran_bits;
        store_be16(p + 18, (uint16_t)name_len);
        memcpy(p + BME_ENTRY_FIXED, bm->name, name_len);
        p += round_up_u64(BME_ENTRY_FIXED + name_len, 8);
    }
    *len = n;
    return d;
}

/*
 * Write a new directory for the bitmaps in memory (none: drop the
 * extension), point the header at it, then free the old one.
 */
int
bm_write_dir_and_header(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_bitmaps *b = s->bitmaps;
    uint64_t old_off = b->dir_offset, old_size = b->dir_size, len = 0, off = 0;
    uint32_t count = 0;
    uint8_t *dir = build_dir(b, &len, &count), ext[24];
    if (!dir)
        return dimg_error(ENOMEM, "out of memory");
    int r = 0;
    if (count == 0) {
        free(dir);
        r = qcow2_ext_set(s, QCOW2_EXT_BITMAPS, NULL, 0);
        s->autoclear &= ~QCOW2_AUTOCLEAR_BITMAPS;
    } else {
        r = bm_alloc(img, len, &off);
        if (r == 0)
            r = io_pwrite(img->file, dir, (size_t)len, off);
        free(dir);
        store_be32(ext, count);
        store_be32(ext + 4, 0);
        store_be64(ext + 8, len);
        store_be64(ext + 16, off);
        if (r == 0)
            r = qcow2_ext_set(s, QCOW2_EXT_BITMAPS, ext, sizeof ext);
        s->autoclear |= QCOW2_AUTOCLEAR_BITMAPS;
    }
    if (r == 0)
        r = qcow2_header_write(img);
    if (r < 0)
        return r;
    b->dir_offset = off;
    b->dir_size = len;
    return old_off ? bm_free_clusters(img, old_off, old_size, false) : 0;
}

int
qcow2_bitmaps_store(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_bitmaps *b = s->bitmaps;
    if (!b || !b->active || (b->n == 0 && !b->dir_offset))
        return 0;
    /* A resize can leave a bitmap too big (or too small) to store: then, as
     * qemu does, none is stored and all stay flagged in use on disk. */
    for (size_t i = 0; i < b->n; i++) {
        const struct qcow2_bitmap *bm = &b->v[i];
        const char *why = bm->inconsistent || !bm->data ? NULL
                                                         : bm_size_refusal(s, img->size, bm->gran_bits);
        if (why) {
            fprintf(stderr, "%s: Lost persistent bitmaps during inactivation of node '%s': "
                            "Bitmap '%s' doesn't satisfy the constraints: %s\n",
                    program_invocation_short_name, img->filename, bm->name, why);
            b->active = false;
            return 0;
        }
    }
    struct qcow2_bitmap *old = calloc(b->n ? b->n : 1, sizeof *old);
    if (!old)
        return dimg_error(ENOMEM, "out of memory");
    pthread_mutex_lock(&s->lock);
    int r = 0;
    size_t nold = 0;
    for (size_t i = 0; i < b->n && r == 0; i++) {
        struct qcow2_bitmap *bm = &b->v[i];
        if (bm->inconsistent || !bm->data)
            continue;
        old[nold++] = (struct qcow2_bitmap){ .table_offset = bm->table_offset,
                                             .table_size = bm->table_size };
        r = store_one(img, bm);
        bm->flags &= ~BME_IN_USE;
    }
    /* Only bitmaps found in use: qemu leaves the directory as it is. */
    if (r == 0 && nold)
        r = bm_write_dir_and_header(img);
    for (size_t i = 0; i < nold && r == 0; i++)
        r = bm_free_bitmap(img, &old[i]);
    if (r == 0)
        b->active = false;
    pthread_mutex_unlock(&s->lock);
    free(old);
    return r;
}

/*
 * Read-write open: drop an extension another program left inconsistent, load
 * the usable bitmaps and flag them in use on disk.
 */
int
qcow2_bitmaps_activate(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_bitmaps *b = s->bitmaps;
    int r = 0;
    if (!b)
        return 0;
    if (b->drop_ext) {
        /* Its clusters stay allocated: leaks, as qemu leaves them. */
        if ((r = qcow2_ext_set(s, QCOW2_EXT_BITMAPS, NULL, 0)) < 0)
            return r;
        s->autoclear &= ~QCOW2_AUTOCLEAR_BITMAPS;
        qcow2_bitmaps_free(s);
        return qcow2_header_write(img);
    }
    bool changed = false;
    for (size_t i = 0; i < b->n && r == 0; i++) {
        struct qcow2_bitmap *bm = &b->v[i];
        if (bm->inconsistent)
            continue;
        r = bm_load_data(img, bm);
        changed |= !(bm->flags & BME_IN_USE);
        bm->flags |= BME_IN_USE;
    }
    if (r == 0 && changed) {
        uint64_t len;
        uint32_t count;
        uint8_t *dir = build_dir(b, &len, &count);
        if (!dir)
            return dimg_error(ENOMEM, "out of memory");
        /* Same entries, same sizes: only the flags words differ from what is on disk. */
        if (len != b->dir_size)
            r = dimg_error(EIO, "%s: bitmap directory size changed", img->filename);
        if (r == 0)
            r = io_pwrite(img->file, dir, (size_t)len, b->dir_offset);
        if (r == 0)
            r = qcow2_barrier(img);
        free(dir);
    }
    if (r == 0)
        b->active = true;
    return r;
}
