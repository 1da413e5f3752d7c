/*
 * Resizing a qcow2 image.
 *
 * Growing: a larger L1 table when the new size needs one (written in full
 * at the end of the file, counted, and only then made current by the
 * header), then the new size in the header.  A kill at any point leaves
 * either the old image or the new one, at worst with the unused table
 * leaked.
 *
 * Shrinking, in qemu-img 7.2's order (observed): the clusters past the new
 * end are discarded, L1 entries past the new end are cleared (the L1 table
 * keeps its size) and their L2 tables freed, refcount blocks that count
 * nothing but themselves are dropped from the refcount table, the file is
 * cut after its last used cluster, and the header gets the new size.  Each
 * reference is removed on disk before the cluster it points at is freed, so
 * a kill leaves leaks at worst.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2.h"
#include "util/checked.h"
#include "util/endian.h"

static int
grow_l1(struct dimg_image *img, uint64_t need)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t cs = s->cluster_size;
    uint64_t clusters = (need * 8 + cs - 1) / cs;
    uint64_t *nl1 = calloc(need, 8);
    uint8_t *buf = calloc(clusters, cs);
    if (!nl1 || !buf) {
        free(nl1);
        free(buf);
        return dimg_error(ENOMEM, "out of memory");
    }
    memcpy(nl1, s->l1, (size_t)s->l1_size * 8);
    for (uint64_t i = 0; i < need; i++)
        store_be64(buf + i * 8, nl1[i]);
    uint64_t off;
    int r;
    pthread_mutex_lock(&s->lock);
    r = qcow2_alloc_clusters(img, clusters, &off);
    if (r == 0)
        r = io_pwrite(img->file, buf, (size_t)(need * 8), off);
    pthread_mutex_unlock(&s->lock);
    free(buf);
    /* The new table's refcounts reach the disk before the header points at it. */
    if (r == 0)
        r = qcow2_flush(img);
    if (r == 0) {
        uint8_t h[12];
        store_be32(h, (uint32_t)need);
        store_be64(h + 4, off);
        r = io_pwrite(img->file, h, sizeof h, 36);
    }
    if (r == 0)
        r = qcow2_barrier(img);
    if (r < 0) {
        free(nl1);
        return r;
    }
    pthread_mutex_lock(&s->lock);
    uint64_t old_off = s->l1_offset, old_clusters = ((uint64_t)s->l1_size * 8 + cs - 1) / cs;
    free(s->l1);
    s->l1 = nl1;
    s->l1_size = (uint32_t)need;
    s->l1_offset = off;
    for (uint64_t i = 0; i < old_clusters && r == 0 && old_off; i++)
        r = qcow2_free_later(img, old_off + i * cs);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Clear the L1 entries from index first on and free the L2 tables they held. */
static int
drop_l2_tables(struct dimg_image *img, uint32_t first)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint32_t n = 0;
    for (uint32_t i = first; i < s->l1_size; i++)
        n += (s->l1[i] & QCOW2_OFFSET_MASK) != 0;
    if (n == 0)
        return 0;
    size_t bytes = (size_t)(s->l1_size - first) * 8;
    uint8_t *zeros = calloc(1, bytes);
    if (!zeros)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pwrite(img->file, zeros, bytes, s->l1_offset + (uint64_t)first * 8);
    free(zeros);
    if (r == 0)
        r = qcow2_barrier(img);
    for (uint32_t i = first; i < s->l1_size && r == 0; i++) {
        uint64_t l2 = s->l1[i] & QCOW2_OFFSET_MASK;
        s->l1[i] = 0;
        if (!l2)
            continue;
        for (unsigned k = 0; k < QCOW2_L2_CACHE_SLOTS; k++)
            if (s->l2_cache[k].table && s->l2_cache[k].offset == l2)
                s->l2_cache[k].offset = 0; /* clean: the caller flushed */
        if (l2 & (s->cluster_size - 1))
            r = dimg_error(EBADMSG, "%s: L2 table offset %#" PRIx64 " unaligned",
                           img->filename, l2);
        else
            r = qcow2_refcount_update(img, l2 >> s->cluster_bits, -1, 0);
    }
    return r;
}

/* Whether the refcount block at off (table index ti) counts no cluster but itself. */
static int
refblock_unused(struct dimg_image *img, uint64_t ti, uint64_t off, bool *unused)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t per = ((uint64_t)s->cluster_size * 8) >> s->refcount_order;
    uint64_t self = off >> s->cluster_bits;
    *unused = true;
    for (uint64_t j = 0; j < per && *unused; j++) {
        uint64_t c = ti * per + j, rc;
        int r = qcow2_refcount_get(img, c, &rc);
        if (r < 0)
            return r;
        *unused = rc == 0 || c == self;
    }
    return 0;
}

/* Take refcount blocks that count nothing out of the table, then free them. */
static int
drop_unused_refblocks(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t per = ((uint64_t)s->cluster_size * 8) >> s->refcount_order;
    uint64_t *freed = NULL;
    size_t nfreed = 0;
    int r = 0;
    for (uint64_t ti = 0; ti < s->reftable_entries && r == 0; ti++) {
        uint64_t off = s->reftable[ti] & QCOW2_OFFSET_MASK;
        bool unused;
        if (!off || (r = refblock_unused(img, ti, off, &unused)) < 0 || !unused)
            continue;
        uint64_t *v = realloc(freed, (nfreed + 1) * sizeof *v);
        if (!v) {
            r = dimg_error(ENOMEM, "out of memory");
            break;
        }
        freed = v;
        freed[nfreed++] = off;
        s->reftable[ti] = 0;
        s->reftable_dirty = true;
        for (unsigned k = 0; k < QCOW2_RB_CACHE_SLOTS; k++)
            if (s->rb_cache[k].block && s->rb_cache[k].offset == off)
                s->rb_cache[k].offset = 0; /* clean: the caller flushed */
    }
    /* qemu-img rewrites the whole table even when no entry changed (the file's
     * allocated size shows it); so does this. */
    s->reftable_dirty = true;
    if (r == 0)
        r = qcow2_reftable_commit(img);
    if (r == 0)
        r = qcow2_barrier(img);
    /* A block counted by another block is freed there; one that counted itself is gone. */
    for (size_t i = 0; i < nfreed && r == 0; i++) {
        uint64_t c = freed[i] >> s->cluster_bits;
        if (c / per < s->reftable_entries && (s->reftable[c / per] & QCOW2_OFFSET_MASK))
            r = qcow2_refcount_update(img, c, -1, 0);
    }
    free(freed);
    return r;
}

/*
 * Cut the file after its last cluster in use; new clusters go there next.
 * qemu-img's discard gives every L1 entry it passes an L2 table, growing
 * the file before these are freed again: when it would have (grown), the
 * file ends right after the last cluster in use even if that is further.
 */
static int
trim_file(struct dimg_image *img, bool grown)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t per = ((uint64_t)s->cluster_size * 8) >> s->refcount_order;
    uint64_t end = 0;
    int r = 0;
    for (uint64_t ti = s->reftable_entries; ti-- > 0 && end == 0 && r == 0;) {
        if (!(s->reftable[ti] & QCOW2_OFFSET_MASK))
            continue;
        for (uint64_t j = per; j-- > 0;) {
            uint64_t rc;
            if ((r = qcow2_refcount_get(img, ti * per + j, &rc)) < 0)
                return r;
            if (rc) {
                end = (ti * per + j + 1) << s->cluster_bits;
                break;
            }
        }
    }
    int64_t fsize = io_get_size(img->file);
    if (fsize < 0)
        return (int)fsize;
    if (end && (end < (uint64_t)fsize || (grown && end > (uint64_t)fsize)) &&
        (r = io_truncate(img->file, end, DIMG_PREALLOC_OFF)) < 0)
        return r;
    if (end) {
        s->alloc_next = end;
        s->cbyte = 0;
    }
    return 0;
}

/*
 * qemu-img's discard gives the L1 entry holding the new end an (empty) L2
 * table when it has none; doing the same keeps the two layouts identical.
 */
static int
ensure_l2(struct dimg_image *img, uint32_t idx)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_l2_slot *slot;
    uint64_t off;
    if (idx >= s->l1_size || (s->l1[idx] & QCOW2_OFFSET_MASK))
        return 0;
    pthread_mutex_lock(&s->lock);
    int r = qcow2_alloc_clusters(img, 1, &off);
    if (r == 0 && (r = qcow2_l2_slot_get(img, off, true, &slot)) == 0)
        slot->dirty = true;
    pthread_mutex_unlock(&s->lock);
    if (r == 0)
        r = qcow2_flush(img); /* refcount, then the table itself */
    if (r == 0) {
        uint8_t e[8];
        store_be64(e, off | QCOW2_OFLAG_COPIED);
        r = io_pwrite(img->file, e, 8, s->l1_offset + (uint64_t)idx * 8);
    }
    if (r == 0)
        s->l1[idx] = off | QCOW2_OFLAG_COPIED;
    return r;
}

/*
 * Discarding marks clusters of an image with a backing file as reading
 * zeros; past the new end qemu-img leaves them plain unallocated instead.
 * Only the L2 table holding the new end keeps such entries (the L2 tables
 * after it are dropped), and the discard made it the active L1's own.
 */
static int
unmark_zero_tail(struct dimg_image *img, uint64_t from, uint64_t old_size)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t first = from >> s->cluster_bits;
    uint64_t end = round_up_u64(old_size, s->cluster_size) >> s->cluster_bits;
    uint64_t idx = first / s->l2_entries;
    if (first % s->l2_entries == 0 || idx >= s->l1_size ||
        !(s->l1[idx] & QCOW2_OFFSET_MASK) || !(s->l1[idx] & QCOW2_OFLAG_COPIED))
        return 0;
    struct qcow2_l2_slot *slot;
    pthread_mutex_lock(&s->lock);
    int r = qcow2_l2_slot_get(img, s->l1[idx] & QCOW2_OFFSET_MASK, false, &slot);
    uint64_t last = min_u64(end, (idx + 1) * s->l2_entries);
    for (uint64_t c = first; c < last && r == 0; c++) {
        uint64_t *e = &slot->table[(c % s->l2_entries) * (s->l2_entry_size / 8)];
        if (s->extended_l2 && e[0] == 0 && e[1] == 0xffffffff00000000ull)
            e[1] = 0;
        else if (!s->extended_l2 && e[0] == QCOW2_OFLAG_ZERO)
            e[0] = 0;
        else
            continue;
        slot->dirty = true;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
shrink(struct dimg_image *img, uint64_t size)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t from = round_up_u64(size, s->cluster_size);
    uint64_t per_l1 = (uint64_t)s->l2_entries << s->cluster_bits;
    bool grown = false;
    for (uint64_t i = from / per_l1; from < img->size && i < s->l1_size && i * per_l1 < img->size;
         i++)
        grown |= !(s->l1[i] & QCOW2_OFFSET_MASK);
    int r = 0;
    if (from < img->size && from % per_l1)
        r = ensure_l2(img, (uint32_t)(from / per_l1));
    if (r == 0 && from < img->size)
        r = qcow2_discard(img, from, img->size - from);
    if (r == 0 && img->backing_filename && from < img->size)
        r = unmark_zero_tail(img, from, img->size);
    if (r == 0)
        r = qcow2_flush(img);
    if (r < 0)
        return r;
    pthread_mutex_lock(&s->lock);
    r = drop_l2_tables(img, (uint32_t)((size + per_l1 - 1) / per_l1));
    if (r == 0)
        r = qcow2_flush(img);
    if (r == 0)
        r = drop_unused_refblocks(img);
    if (r == 0)
        r = qcow2_flush(img);
    if (r == 0)
        r = trim_file(img, grown);
    pthread_mutex_unlock(&s->lock);
    if (r == 0 && s->data_file != img->file)
        r = io_truncate(s->data_file, size, DIMG_PREALLOC_OFF);
    if (r == 0) {
        uint8_t v[8];
        store_be64(v, size);
        r = io_pwrite(img->file, v, 8, 24);
    }
    if (r == 0)
        r = qcow2_barrier(img);
    if (r == 0)
        img->size = size;
    return r;
}

/*
 * A raw external data file stays valid only if every guest cluster maps to
 * the same offset in it: the grown area gets L2 entries too (as qemu-img's
 * metadata preallocation; extended L2 entries keep their subclusters
 * unallocated).
 */
static int
map_raw_range(struct dimg_image *img, uint64_t from, uint64_t to)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t c = round_up_u64(from, s->cluster_size) >> s->cluster_bits;
    uint64_t end = round_up_u64(to, s->cluster_size) >> s->cluster_bits;
    uint32_t stride = s->l2_entry_size / 8;
    int r = 0;
    while (c < end && r == 0) {
        uint64_t idx = c / s->l2_entries, stop = min_u64(end, (idx + 1) * s->l2_entries);
        struct qcow2_l2_slot *slot;
        if ((r = ensure_l2(img, (uint32_t)idx)) < 0)
            break;
        pthread_mutex_lock(&s->lock);
        if (!(s->l1[idx] & QCOW2_OFLAG_COPIED))
            r = dimg_error(ENOTSUP, "%s: L2 table shared with a snapshot", img->filename);
        else
            r = qcow2_l2_slot_get(img, s->l1[idx] & QCOW2_OFFSET_MASK, false, &slot);
        for (; c < stop && r == 0; c++) {
            uint64_t *e = &slot->table[(c % s->l2_entries) * stride];
            if (e[0] || (stride > 1 && e[1]))
                continue;
            e[0] = (c << s->cluster_bits) | QCOW2_OFLAG_COPIED;
            slot->dirty = true;
        }
        pthread_mutex_unlock(&s->lock);
        c = stop;
    }
    return r == 0 ? qcow2_flush(img) : r;
}

/*
 * --preallocation on growth: the new clusters get their storage before the
 * header shows them.  The cluster the old end cuts through counts as new
 * when it has no storage and nothing below can show through it; its old
 * part is then written as zeros (qemu copies it on allocation).  With
 * falloc/full over a backing file the new clusters hold real zeros, so only
 * the range up to *zero_to still needs zeroing.
 */
static int
preallocate_grown(struct dimg_image *img, uint64_t old, enum dimg_prealloc prealloc,
                  bool zero_new, uint64_t *zero_to)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t cstart = round_down_u64(old, s->cluster_size);
    uint64_t from = round_up_u64(old, s->cluster_size);
    bool head = false;
    int r = 0;
    if (!img->backing && cstart < old) {
        struct qcow2_run run;
        if ((r = qcow2_map_range(img, cstart, old - cstart, &run)) < 0)
            return r;
        head = run.kind == QCOW2_UNALLOCATED && !run.has_host;
        if (head)
            from = cstart;
    }
    bool as_data = zero_new && prealloc != DIMG_PREALLOC_METADATA;
    if ((r = qcow2_preallocate_range(img, from, img->size, prealloc, as_data)) < 0)
        return r;
    if (as_data)
        *zero_to = min_u64(from, img->size);
    if (head && s->data_file == img->file) {
        struct qcow2_run run;
        if ((r = qcow2_map_range(img, cstart, old - cstart, &run)) < 0)
            return r;
        if (run.has_host) {
            void *z = calloc(1, (size_t)(old - cstart));
            if (!z)
                return dimg_error(ENOMEM, "out of memory");
            r = io_pwrite(img->file, z, (size_t)(old - cstart), run.host_offset);
            free(z);
        }
    }
    return r;
}

int
qcow2_truncate(struct dimg_image *img, uint64_t size, enum dimg_prealloc prealloc, unsigned flags)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (size % 512)
        return dimg_error(EINVAL, "The new size must be a multiple of 512");
    if (s->version < 3 && s->nb_snapshots)
        return dimg_error(ENOTSUP, "Can't resize a v2 image which has snapshots");
    if (size < img->size) {
        if (!(flags & DIMG_TRUNCATE_SHRINK))
            return dimg_error(EINVAL, "Use the --shrink option to perform a shrink operation.");
        return shrink(img, size);
    }
    uint64_t per_l1 = (uint64_t)s->l2_entries << s->cluster_bits;
    if (size > INT64_MAX - per_l1)
        return dimg_error(EFBIG, "File too large");
    uint64_t need = (size + per_l1 - 1) / per_l1;
    if (need > QCOW2_MAX_L1_BYTES / 8)
        return dimg_error(EFBIG, "File too large");
    /* A backing file reaching past the old end would show through the new
     * area: it must read as zeros instead, which version 2 cannot express. */
    uint64_t old = img->size;
    bool zero_new = img->backing && img->backing->size > old;
    if (zero_new && s->version < 3 && !s->extended_l2)
        return dimg_error(ENOTSUP, "Failed to zero out new clusters: Operation not supported");
    int r = 0;
    if (need > s->l1_size)
        r = grow_l1(img, need);
    if (r == 0 && s->data_file != img->file)
        r = io_truncate(s->data_file, size, prealloc);
    if (r == 0 && s->data_file != img->file && (s->autoclear & QCOW2_AUTOCLEAR_DATA_RAW))
        r = map_raw_range(img, old, size);
    img->size = size; /* preallocation and zeroing work on the grown image */
    uint64_t zero_to = size;
    if (r == 0 && prealloc != DIMG_PREALLOC_OFF)
        r = preallocate_grown(img, old, prealloc, zero_new, &zero_to);
    if (r == 0 && zero_new && zero_to > old)
        r = qcow2_zero(img, old, zero_to - old, 0);
    img->size = old;
    if (r == 0) {
        uint8_t v[8];
        store_be64(v, size);
        r = io_pwrite(img->file, v, 8, 24);
    }
    if (r == 0) {
        img->size = size;
        r = qcow2_flush(img); /* applies the deferred free of the old L1 */
    }
    return r;
}
