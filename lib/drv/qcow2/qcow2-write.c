/*
 * qcow2 write path: in-place writes to clusters the active L1 owns,
 * allocation (with merging of partially written clusters), zeroing,
 * discard, compressed clusters, and the ordered metadata flush.
 *
 * Ordering that keeps a killed process's image leak-only: guest data is
 * written when it is allocated; the metadata that points at it lives in the
 * caches and is written at flush or eviction in the order refcount blocks →
 * (barrier) → L2 tables → (barrier) → L1 → (barrier) → deferred frees.
 * All of it runs under the state lock, so concurrent callers are serialized.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2.h"
#include "util/checked.h"
#include "util/endian.h"

#define ALLOC_BATCH_CLUSTERS 256u

int
qcow2_barrier(struct dimg_image *img)
{
    if (DIMG_OPEN_CACHE_MODE(img->flags) == DIMG_CACHE_UNSAFE)
        return 0;
    return io_flush(img->file);
}

/* Clear incompatible feature bits in the header (after the state they describe is fixed). */
int
qcow2_clear_incompat(struct dimg_image *img, uint64_t bits)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (!(s->incompat & bits))
        return 0;
    int r = qcow2_flush(img);
    if (r < 0)
        return r;
    uint8_t v[8];
    store_be64(v, s->incompat & ~bits);
    if ((r = io_pwrite(img->file, v, 8, 72)) < 0 || (r = qcow2_barrier(img)) < 0)
        return r;
    s->incompat &= ~bits;
    return 0;
}

/* Refuse what the writer does not handle, load refcounts, clear autoclear bits,
 * repair a dirty image. */
int
qcow2_write_prepare(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (s->write_ready)
        return 0;
    bool repair = img->flags & DIMG_OPEN_REPAIR;
    if ((s->incompat & QCOW2_INCOMPAT_CORRUPT) && !repair)
        return dimg_error(EACCES, "qcow2: Image is corrupt; cannot be opened read/write");
    int r = qcow2_refcount_init(img);
    if (r < 0)
        return r;
    s->reftable_written_offset = s->refcount_table_offset;
    const uint64_t kept = QCOW2_AUTOCLEAR_DATA_RAW | QCOW2_AUTOCLEAR_BITMAPS;
    if (s->version >= 3 && (s->autoclear & ~kept)) {
        /* Auto-clear features dimg does not keep up to date (unknown ones)
         * must be marked inconsistent before the first write; the raw data
         * file bit stays, since every write keeps the data file raw, and so
         * does the bitmaps bit (qcow2-bitmap-store.c keeps them correct). */
        uint8_t v[8];
        s->autoclear &= kept;
        store_be64(v, s->autoclear);
        if ((r = io_pwrite(img->file, v, 8, 88)) < 0 || (r = qcow2_barrier(img)) < 0)
            return r;
    }
    s->write_ready = true;
    if ((s->incompat & QCOW2_INCOMPAT_DIRTY) && !repair) {
        /* Left dirty with lazy refcounts: rebuild the counts before writing, as qemu does. */
        struct dimg_check res;
        memset(&res, 0, sizeof res);
        r = qcow2_check(img, DIMG_CHECK_FIX_LEAKS | DIMG_CHECK_FIX_ERRORS, &res);
        if (r == 0 && res.corruptions > res.corruptions_fixed)
            r = dimg_error(EBADMSG, "%s: the dirty image could not be repaired", img->filename);
        if (r == 0)
            r = qcow2_clear_incompat(img, QCOW2_INCOMPAT_DIRTY);
        if (r < 0) {
            s->write_ready = false;
            return r;
        }
    }
    return qcow2_bitmaps_activate(img);
}

static uint32_t
l2_stride(const struct qcow2_state *s)
{
    return s->l2_entry_size / 8;
}

static void
l1_mark_dirty(struct qcow2_state *s, uint32_t i)
{
    if (s->l1_dirty_lo == s->l1_dirty_hi) {
        s->l1_dirty_lo = i;
        s->l1_dirty_hi = i + 1;
    } else {
        if (i < s->l1_dirty_lo)
            s->l1_dirty_lo = i;
        if (i + 1 > s->l1_dirty_hi)
            s->l1_dirty_hi = i + 1;
    }
}

/*
 * An L2 table shared with an internal snapshot is copied before it changes:
 * the copy keeps every entry (the data clusters stay shared, their counts
 * already include the snapshot), and the old table loses this L1's
 * reference once the L1 no longer points at it (deferred free).
 */
static int
cow_l2(struct dimg_image *img, uint32_t l1i, struct qcow2_l2_slot **out)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t old_off = s->l1[l1i] & QCOW2_OFFSET_MASK, new_off;
    struct qcow2_l2_slot *old;
    int r = qcow2_l2_slot_get(img, old_off, false, &old);
    if (r < 0)
        return r;
    uint64_t *copy = malloc(s->cluster_size);
    if (!copy)
        return dimg_error(ENOMEM, "out of memory");
    memcpy(copy, old->table, s->cluster_size);
    if ((r = qcow2_alloc_clusters(img, 1, &new_off)) == 0 &&
        (r = qcow2_l2_slot_get(img, new_off, true, out)) == 0) {
        memcpy((*out)->table, copy, s->cluster_size);
        (*out)->dirty = true;
        r = qcow2_free_later(img, old_off);
        s->l1[l1i] = new_off | QCOW2_OFLAG_COPIED;
        l1_mark_dirty(s, l1i);
    }
    free(copy);
    return r;
}

/* The L2 table for guest offset off, allocated when missing (lock held). */
static int
l2_for_write(struct dimg_image *img, uint64_t off, struct qcow2_l2_slot **out, uint32_t *index)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t cluster = off >> s->cluster_bits;
    uint64_t l1i = cluster / s->l2_entries;
    *index = (uint32_t)(cluster % s->l2_entries);
    if (l1i >= s->l1_size)
        return dimg_error(EIO, "%s: offset %#" PRIx64 " is beyond the L1 table", img->filename, off);
    uint64_t l2_off = s->l1[l1i] & QCOW2_OFFSET_MASK;
    int r;
    if (l2_off) {
        if (!(s->l1[l1i] & QCOW2_OFLAG_COPIED)) {
            uint64_t rc;
            if ((r = qcow2_refcount_get(img, l2_off >> s->cluster_bits, &rc)) < 0)
                return r;
            if (rc > 1)
                return cow_l2(img, (uint32_t)l1i, out);
            s->l1[l1i] |= QCOW2_OFLAG_COPIED;
            l1_mark_dirty(s, (uint32_t)l1i);
        }
        return qcow2_l2_slot_get(img, l2_off, false, out);
    }
    r = qcow2_alloc_clusters(img, 1, &l2_off);
    if (r < 0)
        return r;
    r = qcow2_l2_slot_get(img, l2_off, true, out);
    if (r < 0)
        return r;
    s->l1[l1i] = l2_off | QCOW2_OFLAG_COPIED;
    l1_mark_dirty(s, (uint32_t)l1i);
    return 0;
}

/* Unreference whatever host storage an L2 entry held (after the next metadata
 * flush).  discard: the guest gave it back, the file drops it too. */
static int
release_entry(struct dimg_image *img, uint64_t entry, bool discard)
{
    unsigned tag = discard ? QCOW2_FREE_DISCARD : 0;
    struct qcow2_state *s = dimg_image_state(img);
    if (entry & QCOW2_OFLAG_COMPRESSED) {
        unsigned x = 62 - (s->cluster_bits - 8);
        uint64_t coff = entry & ((1ull << x) - 1);
        uint64_t sectors = ((entry >> x) & ((1ull << (s->cluster_bits - 8)) - 1)) + 1;
        uint64_t first = round_down_u64(coff, s->cluster_size);
        uint64_t last = round_down_u64((coff & ~511ull) + sectors * 512 - 1, s->cluster_size);
        for (uint64_t c = first; c <= last; c += s->cluster_size) {
            int r = qcow2_free_later(img, c | tag);
            if (r < 0)
                return r;
        }
        return 0;
    }
    uint64_t host = entry & QCOW2_OFFSET_MASK;
    if (host && !qcow2_has_data_file(s))
        return qcow2_free_later(img, host | tag);
    return 0;
}

/*
 * Does the active L1 own a host cluster for this entry that may be written in
 * place?  Only with OFLAG_COPIED (refcount exactly one): a cluster shared with
 * a snapshot is copied on write instead.
 */
static bool
entry_owned(const struct qcow2_state *s, uint64_t entry)
{
    return !(entry & QCOW2_OFLAG_COMPRESSED) && qcow2_entry_has_host(s, entry) &&
           (entry & QCOW2_OFLAG_COPIED);
}

/* Bitmap bits of subclusters first..last (extended L2 entries, bits 0..31). */
static uint32_t
subcluster_mask(unsigned first, unsigned last)
{
    return (uint32_t)(((2ull << last) - 1) & ~((1ull << first) - 1));
}

/* Read the guest view of bytes [lo, hi) of the cluster at guest offset g into
 * buf + lo; beyond the image end reads as zeros (lock held; it is recursive). */
static int
read_span(struct dimg_image *img, uint64_t g, uint64_t lo, uint64_t hi, uint8_t *buf)
{
    uint64_t end = max_u64(lo, min_u64(hi, img->size - g));
    int r = end > lo ? qcow2_pread(img, buf + lo, (size_t)(end - lo), g + lo) : 0;
    if (r == 0 && hi > end)
        memset(buf + end, 0, (size_t)(hi - end));
    return r;
}

/*
 * Does the guest range [a, b) read as zeros by allocation status alone,
 * without reading data?  As qemu judges the parts it copies on write: holes
 * of a raw layer and anything beyond the image end do not count.
 */
static bool
reads_as_zero(struct dimg_image *img, uint64_t a, uint64_t b)
{
    if (a >= b)
        return true;
    if (b > img->size)
        return false;
    while (a < b) {
        struct dimg_extent e;
        if (dimg_block_status(img, a, b - a, &e) < 0)
            return false; /* the copy then reads the data and reports any error */
        if (!(e.flags & DIMG_EXTENT_ZERO) || (e.flags & DIMG_EXTENT_HOLE) ||
            (e.file_owner && e.file_owner->drv == &dimg_drv_raw))
            return false;
        a += e.length;
    }
    return true;
}

/*
 * Write the guest bytes [ws, we) (data) of the cluster at guest offset g,
 * whose host cluster starts at host, as part of the span [g + lo, g + hi)
 * that becomes allocated: the rest of the span is filled with its old guest
 * contents.  When those read as zeros anyway, the span is zeroed in the host
 * file instead of written (it stays sparse), as qemu does.
 */
static int
write_span(struct dimg_image *img, uint64_t g, uint64_t lo, uint64_t hi, uint64_t ws,
           uint64_t we, const uint8_t *data, uint64_t host, uint8_t *tmp)
{
    struct qcow2_state *s = dimg_image_state(img);
    int r;
    if (g + lo == ws && g + hi == we)
        return io_pwrite(s->data_file, data, (size_t)(we - ws), host + (ws - g));
    if (reads_as_zero(img, g + lo, ws) && reads_as_zero(img, we, g + hi)) {
        r = io_zero(s->data_file, host + lo, hi - lo, false);
        if (r == 0)
            return io_pwrite(s->data_file, data, (size_t)(we - ws), host + (ws - g));
        if (r != -ENOTSUP)
            return r;
    }
    if ((r = read_span(img, g, lo, hi, tmp)) < 0)
        return r;
    memcpy(tmp + (ws - g), data, (size_t)(we - ws));
    return io_pwrite(s->data_file, tmp + lo, (size_t)(hi - lo), host + lo);
}

/*
 * Write into a cluster the L1 already owns.  A zero-flagged cluster becomes
 * allocated as a whole; with extended L2 entries the touched subclusters
 * become allocated, those that were not being filled from their old contents.
 */
static int
write_owned(struct dimg_image *img, uint64_t off, const uint8_t *buf, size_t n, uint64_t entry,
            uint8_t *tmp)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t coff = round_down_u64(off, s->cluster_size);
    uint64_t host = qcow2_has_data_file(s) ? coff : (entry & QCOW2_OFFSET_MASK);
    struct qcow2_l2_slot *slot;
    uint32_t idx;
    if (!s->extended_l2 && !(entry & QCOW2_OFLAG_ZERO))
        return io_pwrite(s->data_file, buf, n, host + (off - coff));

    int r = l2_for_write(img, coff, &slot, &idx);
    if (r < 0)
        return r;
    uint64_t ws = off - coff, we = ws + n, lo = 0, hi = s->cluster_size;
    unsigned first = (unsigned)(ws >> s->subcluster_bits);
    unsigned last = (unsigned)((we - 1) >> s->subcluster_bits);
    if (s->extended_l2) {
        /* Partly written subclusters that hold data already need no filling. */
        uint64_t allocated = slot->table[(size_t)idx * l2_stride(s) + 1];
        lo = (allocated >> first & 1) ? ws : (uint64_t)first << s->subcluster_bits;
        hi = (allocated >> last & 1) ? we : (uint64_t)(last + 1) << s->subcluster_bits;
    }
    if ((r = write_span(img, coff, lo, hi, off, off + n, buf, host, tmp)) < 0)
        return r;
    if ((r = l2_for_write(img, coff, &slot, &idx)) < 0)
        return r;
    uint64_t *e = &slot->table[(size_t)idx * l2_stride(s)];
    if (s->extended_l2) {
        uint64_t bits = subcluster_mask(first, last);
        e[1] = (e[1] | bits) & ~(bits << 32);
    } else {
        e[0] &= ~QCOW2_OFLAG_ZERO;
    }
    e[0] |= QCOW2_OFLAG_COPIED;
    slot->dirty = true;
    return 0;
}

/*
 * The bytes [*lo, *hi) of a newly allocated cluster that receive data, given
 * the written part [ws, we) (offsets in the cluster) and the entry being
 * replaced.  With extended L2 entries, as qemu does: only the subclusters the
 * write touches, widened to cover every subcluster the old host cluster had
 * allocated (a copy on write carries them over); the others stay unallocated
 * or zero.  Otherwise, and for compressed clusters, the whole cluster.
 */
static void
alloc_span(const struct qcow2_state *s, uint64_t ws, uint64_t we, const uint64_t *old,
           uint64_t *lo, uint64_t *hi)
{
    *lo = 0;
    *hi = s->cluster_size;
    if (!s->extended_l2 || (old[0] & QCOW2_OFLAG_COMPRESSED))
        return;
    unsigned first = (unsigned)(ws >> s->subcluster_bits);
    unsigned last = (unsigned)((we - 1) >> s->subcluster_bits);
    uint32_t allocated = (uint32_t)old[1];
    if (allocated) {
        unsigned a_first = (unsigned)__builtin_ctz(allocated);
        unsigned a_last = 31u - (unsigned)__builtin_clz(allocated);
        first = first < a_first ? first : a_first;
        last = last > a_last ? last : a_last;
    }
    *lo = (uint64_t)first << s->subcluster_bits;
    *hi = (uint64_t)(last + 1) << s->subcluster_bits;
}

/* The L2 bitmap of a cluster whose span [lo, hi) was just written. */
static uint64_t
alloc_bitmap(const struct qcow2_state *s, uint64_t lo, uint64_t hi, const uint64_t *old)
{
    uint32_t allocated = subcluster_mask((unsigned)(lo >> s->subcluster_bits),
                                         (unsigned)((hi - 1) >> s->subcluster_bits));
    uint32_t zero = (old[0] & QCOW2_OFLAG_COMPRESSED) ? 0 : (uint32_t)(old[1] >> 32);
    return (uint64_t)(zero & ~allocated) << 32 | allocated;
}

/*
 * Allocate new host clusters for a run of not-owned clusters starting at the
 * cluster containing off, write the data (merging partial clusters or
 * subclusters with their old contents) and point the L2 entries at them.
 * Returns bytes consumed.
 */
static int64_t
write_allocating(struct dimg_image *img, uint64_t off, const uint8_t *buf, size_t len,
                 uint8_t *tmp)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t coff = round_down_u64(off, s->cluster_size);
    struct qcow2_l2_slot *slot;
    uint32_t idx;
    int r = l2_for_write(img, coff, &slot, &idx);
    if (r < 0)
        return r;
    /* How many clusters: up to the end of the request, the L2 table and the batch limit. */
    uint64_t end = off + len;
    uint64_t want = (round_up_u64(end, s->cluster_size) - coff) >> s->cluster_bits;
    want = min_u64(want, s->l2_entries - idx);
    want = min_u64(want, ALLOC_BATCH_CLUSTERS);
    /* The entries being replaced decide which subclusters get data. */
    uint64_t old[ALLOC_BATCH_CLUSTERS][2];
    uint64_t k = 0;
    do {
        const uint64_t *e = &slot->table[(size_t)(idx + k) * l2_stride(s)];
        old[k][0] = e[0];
        old[k][1] = s->extended_l2 ? e[1] : 0;
        k++;
    } while (k < want && !entry_owned(s, slot->table[(size_t)(idx + k) * l2_stride(s)]));
    uint64_t run_end = min_u64(end, coff + (k << s->cluster_bits));

    uint64_t host;
    if (qcow2_has_data_file(s)) {
        host = coff;
    } else if ((r = qcow2_alloc_clusters(img, k, &host)) < 0) {
        return r;
    }
    /* Data first: nothing points at these clusters until the metadata flush. */
    uint64_t lo[ALLOC_BATCH_CLUSTERS], hi[ALLOC_BATCH_CLUSTERS];
    for (uint64_t c = 0; c < k; c++) {
        uint64_t g = coff + (c << s->cluster_bits);
        uint64_t ws = max_u64(g, off), we = min_u64(g + s->cluster_size, run_end);
        alloc_span(s, ws - g, we - g, old[c], &lo[c], &hi[c]);
        if (ws == g && we == g + s->cluster_size) {
            /* Whole clusters straight from the caller's buffer, as one write. */
            uint64_t c2 = c;
            while (c2 + 1 < k && coff + ((c2 + 2) << s->cluster_bits) <= run_end) {
                c2++;
                lo[c2] = 0;
                hi[c2] = s->cluster_size;
            }
            uint64_t bytes = (c2 - c + 1) << s->cluster_bits;
            r = io_pwrite(s->data_file, buf + (g - off), (size_t)bytes, host + (g - coff));
            c = c2;
        } else {
            r = write_span(img, g, lo[c], hi[c], ws, we, buf + (ws - off), host + (g - coff), tmp);
        }
        if (r < 0)
            return r;
    }
    /* The reads above may have reused the cache: look the table up again. */
    if ((r = l2_for_write(img, coff, &slot, &idx)) < 0)
        return r;
    for (uint64_t c = 0; c < k; c++) {
        uint64_t *e = &slot->table[(size_t)(idx + c) * l2_stride(s)];
        if ((r = release_entry(img, e[0], false)) < 0)
            return r;
        e[0] = (host + (c << s->cluster_bits)) | QCOW2_OFLAG_COPIED;
        if (s->extended_l2)
            e[1] = alloc_bitmap(s, lo[c], hi[c], old[c]);
    }
    slot->dirty = true;
    return (int64_t)(run_end - off);
}

int
qcow2_pwrite(struct dimg_image *img, const void *buf, size_t len, uint64_t off)
{
    struct qcow2_state *s = dimg_image_state(img);
    qcow2_bitmaps_mark_dirty(img, off, len);
    const uint8_t *p = buf;
    uint8_t *tmp = malloc(s->cluster_size);
    if (!tmp)
        return dimg_error(ENOMEM, "out of memory");
    int r = 0;
    pthread_mutex_lock(&s->lock);
    while (len > 0 && r >= 0) {
        uint64_t coff = round_down_u64(off, s->cluster_size);
        struct qcow2_l2_slot *slot;
        uint32_t idx;
        uint64_t l1i = (off >> s->cluster_bits) / s->l2_entries;
        uint64_t entry = 0;
        if (l1i < s->l1_size && (s->l1[l1i] & QCOW2_OFFSET_MASK)) {
            if ((r = l2_for_write(img, coff, &slot, &idx)) < 0)
                break;
            entry = slot->table[(size_t)idx * l2_stride(s)];
        }
        if (entry_owned(s, entry)) {
            if ((entry & QCOW2_OFFSET_MASK) & (s->cluster_size - 1)) {
                r = dimg_error(EBADMSG, "%s: cluster offset %#" PRIx64 " unaligned", img->filename,
                               (uint64_t)(entry & QCOW2_OFFSET_MASK));
                break;
            }
            size_t n = (size_t)min_u64(len, coff + s->cluster_size - off);
            r = write_owned(img, off, p, n, entry, tmp);
            p += n;
            off += n;
            len -= n;
        } else {
            int64_t n = write_allocating(img, off, p, len, tmp);
            if (n < 0) {
                r = (int)n;
                break;
            }
            p += n;
            off += (uint64_t)n;
            len -= (size_t)n;
        }
    }
    pthread_mutex_unlock(&s->lock);
    free(tmp);
    return r < 0 ? r : 0;
}

/* Set a whole cluster to read as zeros (v3 / extended L2) or deallocate it (discard). */
static int
clear_cluster(struct dimg_image *img, uint64_t coff, bool zero, bool unmap)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_l2_slot *slot;
    uint32_t idx;
    uint64_t l1i = (coff >> s->cluster_bits) / s->l2_entries;
    bool v3 = s->version >= 3;
    bool have_l2 = l1i < s->l1_size && (s->l1[l1i] & QCOW2_OFFSET_MASK);
    if (!have_l2 && !zero)
        return 0; /* already unallocated */
    /* Zeroing marks the cluster even where it reads as zeros already, and
     * so gives it an L2 table, as qemu does. */
    int r = l2_for_write(img, coff, &slot, &idx);
    if (r < 0)
        return r;
    uint64_t *e = &slot->table[(size_t)idx * l2_stride(s)];
    bool owned = entry_owned(s, e[0]);
    bool keep = zero && !unmap && owned;
    if (!keep && (r = release_entry(img, e[0], true)) < 0)
        return r;
    uint64_t host = keep ? (e[0] & (QCOW2_OFFSET_MASK | QCOW2_OFLAG_COPIED)) : 0;
    /* A discarded cluster of an image with a backing file reads as zeros, not as the backing data. */
    bool needs_zero = zero || (img->backing != NULL);
    if (s->extended_l2) {
        e[0] = host;
        e[1] = needs_zero ? 0xffffffff00000000ull : 0;
    } else if (needs_zero && v3) {
        e[0] = host | QCOW2_OFLAG_ZERO;
    } else {
        e[0] = 0;
    }
    slot->dirty = true;
    if (qcow2_has_data_file(s) && (s->autoclear & QCOW2_AUTOCLEAR_DATA_RAW))
        return io_write_zeroes(s->data_file, coff, min_u64(s->cluster_size, img->size - coff));
    return 0;
}

/*
 * Subclusters first..last of the cluster at coff read as zeros from now on
 * (extended L2, lock held): their allocation bits go, their zero bits come;
 * the host cluster stays reserved.  A compressed cluster cannot keep part of
 * its data, so those subclusters are written as zeros instead (*write set).
 */
static int
zero_subclusters(struct dimg_image *img, uint64_t coff, unsigned first, unsigned last,
                 bool *write)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_l2_slot *slot;
    uint32_t idx;
    int r = l2_for_write(img, coff, &slot, &idx);
    if (r < 0)
        return r;
    uint64_t *e = &slot->table[(size_t)idx * 2];
    if (e[0] & QCOW2_OFLAG_COMPRESSED) {
        *write = true;
        return 0;
    }
    uint64_t mask = subcluster_mask(first, last);
    e[1] = (e[1] & ~mask) | (mask << 32);
    slot->dirty = true;
    if (qcow2_has_data_file(s) && (s->autoclear & QCOW2_AUTOCLEAR_DATA_RAW)) {
        uint64_t a = coff + ((uint64_t)first << s->subcluster_bits);
        uint64_t b = min_u64(coff + ((uint64_t)(last + 1) << s->subcluster_bits), img->size);
        return io_write_zeroes(s->data_file, a, b - a);
    }
    return 0;
}

static int
write_zero_bytes(struct dimg_image *img, uint64_t off, uint64_t n)
{
    uint8_t *z = calloc(1, (size_t)n);
    if (!z)
        return dimg_error(ENOMEM, "out of memory");
    int r = qcow2_pwrite(img, z, (size_t)n, off);
    free(z);
    return r;
}

/* Zero the whole units (clusters, or subclusters with extended L2) in [a, b). */
static int
zero_units(struct dimg_image *img, uint64_t a, uint64_t b, unsigned flags)
{
    struct qcow2_state *s = dimg_image_state(img);
    int r = 0;
    while (a < b && r == 0) {
        uint64_t coff = round_down_u64(a, s->cluster_size);
        uint64_t n = min_u64(b - a, coff + s->cluster_size - a);
        bool whole = a == coff && (n == s->cluster_size || a + n == img->size);
        bool write = false;
        pthread_mutex_lock(&s->lock);
        if (whole) {
            r = clear_cluster(img, coff, true, flags & DIMG_ZERO_MAY_UNMAP);
        } else {
            unsigned first = (unsigned)((a - coff) >> s->subcluster_bits);
            unsigned last = (unsigned)((a + n - 1 - coff) >> s->subcluster_bits);
            r = zero_subclusters(img, coff, first, last, &write);
        }
        pthread_mutex_unlock(&s->lock);
        if (r == 0 && write)
            r = write_zero_bytes(img, a, n);
        a += n;
    }
    return r;
}

/*
 * Zeroing works on whole units: clusters, or subclusters with extended L2
 * entries.  A part of a unit is zeroed with the whole unit when that reads
 * as zeros already, else written as zeros, as qemu does.
 */
int
qcow2_zero(struct dimg_image *img, uint64_t off, uint64_t len, unsigned flags)
{
    struct qcow2_state *s = dimg_image_state(img);
    /* v2 has no zero flag: only deallocation without a backing file reads as zeros. */
    if (s->version < 3 && !s->extended_l2 && img->backing)
        return -ENOTSUP;
    qcow2_bitmaps_mark_dirty(img, off, len);
    uint64_t unit = s->extended_l2 ? 1ull << s->subcluster_bits : s->cluster_size;
    uint64_t end = off + len, a = round_down_u64(off, unit), b = round_up_u64(end, unit);
    b = min_u64(b, img->size); /* the image end closes its last unit */
    int r = 0;
    if (a < off) { /* the head is part of a unit */
        uint64_t ue = min_u64(a + unit, img->size);
        if (!reads_as_zero(img, a, ue)) {
            uint64_t n = min_u64(end, ue) - off;
            if ((r = write_zero_bytes(img, off, n)) < 0)
                return r;
            a = ue;
        }
    }
    if (a < b && end < b) { /* the tail is part of a unit */
        uint64_t us = round_down_u64(end, unit);
        if (us >= a && !reads_as_zero(img, us, b)) {
            if ((r = write_zero_bytes(img, max_u64(us, off), end - max_u64(us, off))) < 0)
                return r;
            b = us;
        }
    }
    return a < b ? zero_units(img, a, b, flags) : 0;
}

int
qcow2_discard(struct dimg_image *img, uint64_t off, uint64_t len)
{
    struct qcow2_state *s = dimg_image_state(img);
    qcow2_bitmaps_mark_dirty(img, off, len);
    int r = 0;
    pthread_mutex_lock(&s->lock);
    while (len > 0 && r == 0) {
        uint64_t coff = round_down_u64(off, s->cluster_size);
        uint64_t n = min_u64(len, coff + s->cluster_size - off);
        if (off == coff && (n == s->cluster_size || off + n == img->size))
            r = clear_cluster(img, coff, false, true);
        off += n;
        len -= n;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

/*
 * Place compressed bytes: packed after the previous compressed cluster when
 * that one ended inside the last allocated host cluster, else in a fresh one.
 * Every host cluster a compressed cluster touches counts it once.
 */
static int
alloc_compressed(struct dimg_image *img, size_t clen, uint64_t *where)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t cs = s->cluster_size;
    /* Keep packing into the current cluster if the data fits in its tail, or
     * spills only into clusters that can still be allocated right after it. */
    bool fits = s->cbyte && round_up_u64(s->cbyte, cs) - s->cbyte >= clen;
    bool continue_here = s->cbyte && (fits || round_up_u64(s->cbyte, cs) == s->alloc_next);
    int r;
    if (continue_here && !s->cbyte_counted) {
        /* A narrow refcount (refcount_bits=1) may not count one more user. */
        uint64_t rc;
        if ((r = qcow2_refcount_get(img, s->cbyte >> s->cluster_bits, &rc)) < 0)
            return r;
        if (rc >= qcow2_refcount_max(s))
            continue_here = false;
    }
    if (!continue_here) {
        uint64_t host;
        if ((r = qcow2_alloc_clusters(img, 1, &host)) < 0)
            return r;
        s->cbyte = host;
        s->cbyte_counted = true;
    }
    uint64_t start = s->cbyte, end = start + clen;
    uint64_t first = round_down_u64(start, cs);
    if (s->cbyte_counted)
        s->cbyte_counted = false;
    else if ((r = qcow2_refcount_update(img, first >> s->cluster_bits, 1, 0)) < 0)
        return r;
    uint64_t covered = first + cs;
    if (end > covered) {
        uint64_t more = (round_up_u64(end, cs) - covered) >> s->cluster_bits, host;
        if ((r = qcow2_alloc_clusters(img, more, &host)) < 0)
            return r;
        if (host != covered)
            return dimg_error(EIO, "%s: compressed cluster allocation was not contiguous",
                              img->filename);
    }
    s->cbyte = (end & (cs - 1)) ? end : 0;
    *where = start;
    return 0;
}

int
qcow2_pwrite_compressed(struct dimg_image *img, const void *buf, size_t len, uint64_t off)
{
    struct qcow2_state *s = dimg_image_state(img);
    if ((off & (s->cluster_size - 1)) || (len != s->cluster_size && off + len != img->size))
        return dimg_error(EINVAL, "%s: compressed writes must cover exactly one cluster",
                          img->filename);
    if (qcow2_has_data_file(s))
        return dimg_error(ENOTSUP, "Compression is not supported with an external data file");
    qcow2_bitmaps_mark_dirty(img, off, len);
    uint8_t *in = (uint8_t *)buf, *padded = NULL;
    if (len < s->cluster_size) {
        padded = calloc(1, s->cluster_size);
        if (!padded)
            return dimg_error(ENOMEM, "out of memory");
        memcpy(padded, buf, len);
        in = padded;
    }
    uint8_t *out = malloc(s->cluster_size);
    if (!out) {
        free(padded);
        return dimg_error(ENOMEM, "out of memory");
    }
    /* Compression runs outside the lock so several threads can compress at once. */
    size_t clen = qcow2_compress_cluster(s, in, out);
    int r;
    if (clen == 0) {
        r = qcow2_pwrite(img, buf, len, off);
        goto out;
    }
    pthread_mutex_lock(&s->lock);
    struct qcow2_l2_slot *slot;
    uint32_t idx;
    uint64_t where = 0;
    r = l2_for_write(img, off, &slot, &idx);
    if (r == 0) {
        uint64_t old = slot->table[(size_t)idx * l2_stride(s)];
        if (old & (QCOW2_OFLAG_COMPRESSED | QCOW2_OFFSET_MASK))
            r = dimg_error(EINVAL, "%s: Compression can't overwrite anything", img->filename);
    }
    if (r == 0)
        r = alloc_compressed(img, clen, &where);
    if (r == 0)
        r = io_pwrite(img->file, out, clen, where);
    if (r == 0)
        r = l2_for_write(img, off, &slot, &idx);
    if (r == 0) {
        unsigned x = 62 - (s->cluster_bits - 8);
        uint64_t extra = ((where + clen - 1) >> 9) - (where >> 9);
        if (where >= (1ull << x)) {
            r = dimg_error(EFBIG, "%s: compressed data offset too large", img->filename);
        } else {
            uint64_t *e = &slot->table[(size_t)idx * l2_stride(s)];
            e[0] = QCOW2_OFLAG_COMPRESSED | (extra << x) | where;
            if (s->extended_l2)
                e[1] = 0;
            slot->dirty = true;
        }
    }
    pthread_mutex_unlock(&s->lock);
out:
    free(out);
    free(padded);
    return r;
}

static int
l1_flush(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (s->l1_dirty_lo == s->l1_dirty_hi)
        return 0;
    size_t n = s->l1_dirty_hi - s->l1_dirty_lo;
    uint64_t *buf = malloc(n * 8);
    if (!buf)
        return dimg_error(ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        store_be64(&buf[i], s->l1[s->l1_dirty_lo + i]);
    int r = io_pwrite(img->file, buf, n * 8, s->l1_offset + (uint64_t)s->l1_dirty_lo * 8);
    free(buf);
    if (r == 0)
        s->l1_dirty_lo = s->l1_dirty_hi = 0;
    return r;
}

int
qcow2_flush(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (!s->write_ready)
        return io_flush(img->file);
    pthread_mutex_lock(&s->lock);
    int r = 0;
    if (s->data_file != img->file)
        r = io_flush(s->data_file);
    bool l1_dirty = s->l1_dirty_lo != s->l1_dirty_hi;
    if (r == 0)
        r = qcow2_l2_flush(img); /* writes refcounts first when an L2 table is dirty */
    if (r == 0)
        r = qcow2_reftable_commit(img);
    if (r == 0 && l1_dirty && (r = qcow2_barrier(img)) == 0)
        r = l1_flush(img);
    if (r == 0 && s->pending_free_n) {
        if ((r = qcow2_barrier(img)) == 0 && (r = qcow2_apply_frees(img)) == 0)
            r = qcow2_rb_flush(img);
    }
    if (r == 0)
        r = io_flush(img->file);
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Does this L2 entry give the guest cluster host storage already? */
/*
 * preallocation=metadata/falloc/full (and data_file_raw) for the guest
 * clusters [from, to) (cluster-aligned from): each cluster without host
 * storage gets an L2 entry pointing at its own host cluster, allocated L2
 * table by L2 table as qemu-img lays them out ([L2][its data clusters]...).
 * falloc and full then reserve or zero-fill the data clusters.  A zero flag
 * or zero bits stay: such clusters read as zeros with their space reserved.
 * as_data (falloc/full only): the clusters read what the host holds, zeros,
 * even where a backing file would show through unallocated subclusters.
 */
int
qcow2_preallocate_range(struct dimg_image *img, uint64_t from, uint64_t to, enum dimg_prealloc mode,
                        bool as_data)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t clusters = round_up_u64(to, s->cluster_size) >> s->cluster_bits;
    int r = 0;
    pthread_mutex_lock(&s->lock);
    for (uint64_t c = from >> s->cluster_bits; c < clusters && r == 0;) {
        struct qcow2_l2_slot *slot;
        uint32_t idx;
        if ((r = l2_for_write(img, c << s->cluster_bits, &slot, &idx)) < 0)
            break;
        uint64_t k = 0, room = min_u64(clusters - c, s->l2_entries - idx);
        if (qcow2_entry_has_host(s, slot->table[(size_t)idx * l2_stride(s)])) {
            c++;
            continue;
        }
        while (k < room && !qcow2_entry_has_host(s, slot->table[(size_t)(idx + k) * l2_stride(s)]))
            k++;
        uint64_t host = c << s->cluster_bits;
        if (!qcow2_has_data_file(s) && (r = qcow2_alloc_clusters(img, k, &host)) < 0)
            break;
        if ((r = l2_for_write(img, c << s->cluster_bits, &slot, &idx)) < 0)
            break;
        for (uint64_t i = 0; i < k; i++) {
            uint64_t *e = &slot->table[(size_t)(idx + i) * l2_stride(s)];
            e[0] = (e[0] & QCOW2_OFLAG_ZERO) | (host + (i << s->cluster_bits)) | QCOW2_OFLAG_COPIED;
            /* extended L2: the subclusters stay unallocated (as qemu) unless
             * they must hide a backing file behind zeros the host holds */
            if (s->extended_l2 && as_data)
                e[1] = 0xffffffffull;
        }
        slot->dirty = true;
        if (!qcow2_has_data_file(s) && mode == DIMG_PREALLOC_FULL)
            r = io_write_zeroes(img->file, host, k << s->cluster_bits);
        else if (!qcow2_has_data_file(s) && mode == DIMG_PREALLOC_FALLOC)
            /* Not a truncate: metadata allocated after these clusters may
             * already lie beyond them in the file. */
            r = io_allocate(img->file, host, k << s->cluster_bits);
        c += k;
    }
    /* The file covers every allocated cluster, as qemu-img's does. */
    if (r == 0 && io_get_size(img->file) < (int64_t)s->alloc_next)
        r = io_truncate(img->file, s->alloc_next, DIMG_PREALLOC_OFF);
    pthread_mutex_unlock(&s->lock);
    if (r == 0)
        r = qcow2_flush(img);
    return r;
}

int
qcow2_preallocate(struct dimg_image *img, enum dimg_prealloc mode)
{
    return qcow2_preallocate_range(img, 0, img->size, mode, false);
}
