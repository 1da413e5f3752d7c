/*
 * The all-or-nothing metadata switch behind snapshot create/apply/delete:
 * see qcow2-snapshot-txn.h for why and how.  Every offset read from the image
 * is checked before it is used; clusters referenced past the old end of the
 * image, unaligned tables or refcounts that would underflow abort the
 * operation before anything the old state uses is touched.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2-snapshot-txn.h"
#include "util/checked.h"
#include "util/endian.h"

int
qcow2_txn_begin(struct dimg_image *img, struct qcow2_txn *t)
{
    struct qcow2_state *s = dimg_image_state(img);
    memset(t, 0, sizeof *t);
    t->img = img;
    t->s = s;
    pthread_mutex_lock(&s->lock);
    /* Everything cached reaches the disk first: the old state is then the on-disk one. */
    int r = qcow2_flush(img);
    if (r < 0)
        return r;
    t->per_block = ((uint64_t)s->cluster_size * 8) >> s->refcount_order;
    t->old_end = round_up_u64(s->alloc_next, s->cluster_size) >> s->cluster_bits;
    t->hole_next = 1;
    t->end_next = t->old_end;
    t->size = img->size;
    t->nb_snapshots = s->nb_snapshots;
    t->snapshots_offset = s->snapshots_offset;
    t->buf = malloc(s->cluster_size);
    if (!t->buf)
        return dimg_error(ENOMEM, "out of memory");
    return 0;
}

void
qcow2_txn_end(struct qcow2_txn *t)
{
    for (uint64_t i = 0; i < t->cap; i++)
        free(t->blk[i]);
    free(t->blk);
    free(t->blk_off);
    free(t->l1);
    free(t->buf);
    free(t->freed);
    pthread_mutex_unlock(&t->s->lock);
}

/* The new state's copy of refcount block ti, made on first use. */
static int
touch_block(struct qcow2_txn *t, uint64_t ti, uint8_t **out)
{
    struct qcow2_state *s = t->s;
    if (ti >= t->cap) {
        uint64_t cap = max_u64(ti + 1, t->cap * 2);
        uint8_t **b = realloc(t->blk, cap * sizeof *b);
        if (!b)
            return dimg_error(ENOMEM, "out of memory");
        t->blk = b;
        uint64_t *o = realloc(t->blk_off, cap * sizeof *o);
        if (!o)
            return dimg_error(ENOMEM, "out of memory");
        t->blk_off = o;
        memset(t->blk + t->cap, 0, (cap - t->cap) * sizeof *b);
        memset(t->blk_off + t->cap, 0, (cap - t->cap) * sizeof *o);
        t->cap = cap;
    }
    if (!t->blk[ti]) {
        uint8_t *b = malloc(s->cluster_size);
        if (!b)
            return dimg_error(ENOMEM, "out of memory");
        uint64_t old = ti < s->reftable_entries ? s->reftable[ti] & QCOW2_OFFSET_MASK : 0;
        if (old) {
            uint8_t *cached;
            int r = qcow2_rb_get(t->img, old, &cached);
            if (r < 0) {
                free(b);
                return r;
            }
            memcpy(b, cached, s->cluster_size);
        } else {
            memset(b, 0, s->cluster_size);
        }
        t->blk[ti] = b;
        if (ti >= t->nblk)
            t->nblk = ti + 1;
    }
    *out = t->blk[ti];
    return 0;
}

int
qcow2_txn_refcount(struct qcow2_txn *t, uint64_t cluster, uint64_t *rc)
{
    uint64_t ti = cluster / t->per_block;
    if (ti < t->cap && t->blk[ti]) {
        *rc = qcow2_rb_entry_get(t->s->refcount_order, t->blk[ti], cluster % t->per_block);
        return 0;
    }
    return qcow2_refcount_get(t->img, cluster, rc);
}

int
qcow2_txn_ref(struct qcow2_txn *t, uint64_t cluster, int64_t delta)
{
    struct qcow2_state *s = t->s;
    if (cluster >= t->end_next)
        return dimg_error(EBADMSG, "%s: cluster %#" PRIx64 " is referenced but lies past the "
                          "end of the image", t->img->filename, cluster << s->cluster_bits);
    uint8_t *b = NULL;
    int r = touch_block(t, cluster / t->per_block, &b);
    if (r < 0)
        return r;
    uint64_t i = cluster % t->per_block;
    uint64_t v = qcow2_rb_entry_get(s->refcount_order, b, i);
    if (delta < 0 && v < (uint64_t)-delta)
        return dimg_error(EBADMSG, "%s: refcount of cluster %#" PRIx64 " would drop below zero",
                          t->img->filename, cluster << s->cluster_bits);
    /* qemu reports a refcount that cannot count one more user as EINVAL. */
    if (delta > 0 && qcow2_refcount_max(s) - v < (uint64_t)delta)
        return dimg_error(EINVAL, "%s: refcount of cluster %#" PRIx64 " would overflow",
                          t->img->filename, cluster << s->cluster_bits);
    qcow2_rb_entry_set(s->refcount_order, b, i, v + (uint64_t)delta);
    if (v + (uint64_t)delta == 0 && cluster < t->old_end) {
        if (t->nfreed == t->freed_cap) {
            size_t cap = t->freed_cap ? t->freed_cap * 2 : 256;
            uint64_t *f = realloc(t->freed, cap * sizeof *f);
            if (!f)
                return dimg_error(ENOMEM, "out of memory");
            t->freed = f;
            t->freed_cap = cap;
        }
        t->freed[t->nfreed++] = cluster;
    }
    return 0;
}

int
qcow2_txn_ref_range(struct qcow2_txn *t, uint64_t off, uint64_t bytes, int64_t delta)
{
    if (bytes == 0)
        return 0;
    uint64_t first = off >> t->s->cluster_bits;
    uint64_t last = (off + bytes - 1) >> t->s->cluster_bits;
    for (uint64_t c = first; c <= last; c++) {
        int r = qcow2_txn_ref(t, c, delta);
        if (r < 0)
            return r;
    }
    return 0;
}

/* First run of n clusters free in the old state (old refcount 0), else past the end. */
static int
find_space(struct qcow2_txn *t, uint64_t n, uint64_t *start)
{
    uint64_t run = 0, st = t->hole_next;
    for (uint64_t c = t->hole_next; c < t->old_end; c++) {
        uint64_t rc;
        int r = qcow2_refcount_get(t->img, c, &rc);
        if (r < 0)
            return r;
        if (rc) {
            run = 0;
            st = c + 1;
            continue;
        }
        if (++run == n) {
            *start = st;
            t->hole_next = st + n;
            return 0;
        }
    }
    if (n == 1)
        t->hole_next = t->old_end; /* no single free cluster left: stop looking */
    *start = t->end_next;
    t->end_next += n;
    return 0;
}

int
qcow2_txn_alloc(struct qcow2_txn *t, uint64_t n, uint64_t *off)
{
    uint64_t start;
    int r = find_space(t, n, &start);
    for (uint64_t i = 0; i < n && r == 0; i++)
        r = qcow2_txn_ref(t, start + i, 1);
    if (r == 0)
        *off = start << t->s->cluster_bits;
    return r;
}

/* Host clusters a compressed cluster's bytes occupy. */
static void
compressed_span(const struct qcow2_state *s, uint64_t entry, uint64_t *first, uint64_t *last)
{
    unsigned x = 62 - (s->cluster_bits - 8);
    uint64_t coff = entry & ((1ull << x) - 1);
    uint64_t sectors = ((entry >> x) & ((1ull << (s->cluster_bits - 8)) - 1)) + 1;
    *first = coff >> s->cluster_bits;
    *last = ((coff & ~511ull) + sectors * 512 - 1) >> s->cluster_bits;
}

static int
read_l2(struct qcow2_txn *t, uint64_t l2_off)
{
    struct qcow2_state *s = t->s;
    if ((l2_off & (s->cluster_size - 1)) || (l2_off >> s->cluster_bits) >= t->old_end)
        return dimg_error(EBADMSG, "%s: L2 table offset %#" PRIx64 " invalid", t->img->filename,
                          l2_off);
    return io_pread(t->img->file, t->buf, s->cluster_size, l2_off);
}

/* Count or uncount the clusters one L2 table's entries use. */
static int
ref_l2_entries(struct qcow2_txn *t, int64_t delta)
{
    struct qcow2_state *s = t->s;
    uint32_t stride = s->l2_entry_size;
    for (uint32_t j = 0; j < s->l2_entries; j++) {
        uint64_t e = load_be64(t->buf + (size_t)j * stride);
        int r = 0;
        if (e & QCOW2_OFLAG_COMPRESSED) {
            uint64_t first, last;
            compressed_span(s, e, &first, &last);
            for (uint64_t c = first; c <= last && r == 0; c++)
                r = qcow2_txn_ref(t, c, delta);
        } else if ((e & QCOW2_OFFSET_MASK) && !qcow2_has_data_file(s)) {
            uint64_t host = e & QCOW2_OFFSET_MASK;
            if (host & (s->cluster_size - 1))
                return dimg_error(EBADMSG, "%s: cluster offset %#" PRIx64 " unaligned",
                                  t->img->filename, host);
            r = qcow2_txn_ref(t, host >> s->cluster_bits, delta);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

int
qcow2_txn_tree(struct qcow2_txn *t, const uint64_t *l1, uint32_t l1_size, int64_t delta)
{
    struct qcow2_state *s = t->s;
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2_off = l1[i] & QCOW2_OFFSET_MASK;
        if (!l2_off)
            continue;
        int r = read_l2(t, l2_off);
        if (r == 0)
            r = qcow2_txn_ref(t, l2_off >> s->cluster_bits, delta);
        if (r == 0)
            r = ref_l2_entries(t, delta);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Set OFLAG_COPIED in t->buf's entries from the new refcounts; true when one changed. */
static int
fix_l2_flags(struct qcow2_txn *t, bool *changed)
{
    struct qcow2_state *s = t->s;
    *changed = false;
    for (uint32_t j = 0; j < s->l2_entries; j++) {
        uint8_t *p = t->buf + (size_t)j * s->l2_entry_size;
        uint64_t e = load_be64(p), want = e;
        if (e & QCOW2_OFLAG_COMPRESSED) {
            want = e & ~QCOW2_OFLAG_COPIED;
        } else if ((e & QCOW2_OFFSET_MASK) && !qcow2_has_data_file(s)) {
            uint64_t rc;
            int r = qcow2_txn_refcount(t, (e & QCOW2_OFFSET_MASK) >> s->cluster_bits, &rc);
            if (r < 0)
                return r;
            want = rc == 1 ? e | QCOW2_OFLAG_COPIED : e & ~QCOW2_OFLAG_COPIED;
        }
        if (want != e) {
            store_be64(p, want);
            *changed = true;
        }
    }
    return 0;
}

/*
 * The active tree must carry exact OFLAG_COPIED flags once the header points
 * at it.  A table whose entries change is copied (the old one may still be
 * in the old active tree or a snapshot's); the copy takes over this L1
 * entry's reference, so data cluster counts do not change.
 */
static int
finalize_active(struct qcow2_txn *t)
{
    struct qcow2_state *s = t->s;
    for (uint32_t i = 0; i < t->l1_size; i++) {
        uint64_t l2_off = t->l1[i] & QCOW2_OFFSET_MASK;
        t->l1[i] = l2_off;
        if (!l2_off)
            continue;
        bool changed;
        int r = read_l2(t, l2_off);
        if (r == 0)
            r = fix_l2_flags(t, &changed);
        if (r == 0 && changed) {
            uint64_t copy;
            if ((r = qcow2_txn_alloc(t, 1, &copy)) == 0 &&
                (r = io_pwrite(t->img->file, t->buf, s->cluster_size, copy)) == 0 &&
                (r = qcow2_txn_ref(t, l2_off >> s->cluster_bits, -1)) == 0)
                t->l1[i] = copy;
        }
        if (r < 0)
            return r;
    }
    for (uint32_t i = 0; i < t->l1_size; i++) {
        uint64_t rc;
        if (!t->l1[i])
            continue;
        int r = qcow2_txn_refcount(t, t->l1[i] >> s->cluster_bits, &rc);
        if (r < 0)
            return r;
        if (rc == 1)
            t->l1[i] |= QCOW2_OFLAG_COPIED;
    }
    return 0;
}

/* Write the new active L1, or keep the old one when nothing in it changed. */
static int
place_l1(struct qcow2_txn *t)
{
    struct qcow2_state *s = t->s;
    if (!t->l1_old_kept && t->l1_size == s->l1_size &&
        (t->l1_size == 0 || !memcmp(t->l1, s->l1, (size_t)t->l1_size * 8))) {
        t->l1_off = s->l1_offset;
        return 0;
    }
    uint64_t bytes = (uint64_t)t->l1_size * 8;
    int r;
    if (!t->l1_old_kept && (r = qcow2_txn_ref_range(t, s->l1_offset, (uint64_t)s->l1_size * 8,
                                                    -1)) < 0)
        return r;
    t->l1_off = 0;
    if (bytes == 0)
        return 0;
    uint64_t clusters = (bytes + s->cluster_size - 1) >> s->cluster_bits;
    if ((r = qcow2_txn_alloc(t, clusters, &t->l1_off)) < 0)
        return r;
    uint8_t *buf = calloc(clusters, s->cluster_size);
    if (!buf)
        return dimg_error(ENOMEM, "out of memory");
    for (uint32_t i = 0; i < t->l1_size; i++)
        store_be64(buf + (size_t)i * 8, t->l1[i]);
    r = io_pwrite(t->img->file, buf, clusters << s->cluster_bits, t->l1_off);
    free(buf);
    return r;
}

/*
 * Give every changed refcount block a new cluster and the table a new home.
 * Placing them changes counts again (their own, the replaced ones'), which
 * may touch more blocks: repeat until nothing moves.
 */
static int
place_refcounts(struct qcow2_txn *t)
{
    struct qcow2_state *s = t->s;
    uint64_t max_clusters = QCOW2_MAX_REFTABLE_BYTES >> s->cluster_bits;
    if (t->nblk == 0) {
        t->rt_off = s->refcount_table_offset;
        t->rt_clusters = s->refcount_table_clusters;
        return 0;
    }
    for (;;) {
        bool moved = false;
        for (uint64_t ti = 0; ti < t->nblk; ti++) {
            if (!t->blk[ti] || t->blk_off[ti])
                continue;
            uint64_t off = 0;
            int r = qcow2_txn_alloc(t, 1, &off);
            if (r < 0)
                return r;
            t->blk_off[ti] = off;
            uint64_t old = ti < s->reftable_entries ? s->reftable[ti] & QCOW2_OFFSET_MASK : 0;
            if (old && (r = qcow2_txn_ref(t, old >> s->cluster_bits, -1)) < 0)
                return r;
            moved = true;
        }
        uint64_t entries = max_u64(t->nblk, s->reftable_entries);
        uint64_t clusters = (entries * 8 + s->cluster_size - 1) >> s->cluster_bits;
        if (clusters > max_clusters)
            return dimg_error(EFBIG, "%s: refcount table would exceed %u bytes", t->img->filename,
                              QCOW2_MAX_REFTABLE_BYTES);
        if (clusters > t->rt_clusters) {
            int r;
            if (t->rt_off &&
                (r = qcow2_txn_ref_range(t, t->rt_off, t->rt_clusters << s->cluster_bits, -1)) < 0)
                return r;
            if ((r = qcow2_txn_alloc(t, clusters, &t->rt_off)) < 0)
                return r;
            t->rt_clusters = clusters;
            if (!t->old_rt_freed) {
                r = qcow2_txn_ref_range(t, s->refcount_table_offset,
                                        (uint64_t)s->refcount_table_clusters << s->cluster_bits,
                                        -1);
                if (r < 0)
                    return r;
                t->old_rt_freed = true;
            }
            moved = true;
        }
        if (!moved)
            return 0;
    }
}

static int
write_refcounts(struct qcow2_txn *t)
{
    struct qcow2_state *s = t->s;
    if (t->rt_off == s->refcount_table_offset)
        return 0;
    for (uint64_t ti = 0; ti < t->nblk; ti++) {
        if (!t->blk[ti])
            continue;
        int r = io_pwrite(t->img->file, t->blk[ti], s->cluster_size, t->blk_off[ti]);
        if (r < 0)
            return r;
    }
    size_t bytes = (size_t)(t->rt_clusters << s->cluster_bits);
    uint8_t *table = calloc(1, bytes);
    if (!table)
        return dimg_error(ENOMEM, "out of memory");
    for (uint64_t ti = 0; ti < bytes / 8; ti++) {
        uint64_t v = ti < t->nblk && t->blk[ti] ? t->blk_off[ti]
                     : ti < s->reftable_entries ? s->reftable[ti] : 0;
        store_be64(table + ti * 8, v);
    }
    int r = io_pwrite(t->img->file, table, bytes, t->rt_off);
    free(table);
    return r;
}

/* The header fields from offset 24 to 71, all in one write. */
static int
switch_header(struct qcow2_txn *t)
{
    struct qcow2_state *s = t->s;
    uint8_t h[48];
    store_be64(h, t->size);
    store_be32(h + 8, s->crypt_method);
    store_be32(h + 12, t->l1_size);
    store_be64(h + 16, t->l1_off);
    store_be64(h + 24, t->rt_off);
    store_be32(h + 32, (uint32_t)t->rt_clusters);
    store_be32(h + 36, t->nb_snapshots);
    store_be64(h + 40, t->snapshots_offset);
    int r = qcow2_barrier(t->img);
    if (r == 0)
        r = io_pwrite(t->img->file, h, sizeof h, 24);
    if (r == 0)
        r = qcow2_barrier(t->img);
    return r;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * Give the clusters the new state no longer uses back to the file system, in
 * runs.  Best effort: a file that cannot discard keeps them as free clusters.
 */
static void
discard_freed(struct qcow2_txn *t)
{
    struct qcow2_state *s = t->s;
    if (t->nfreed == 0)
        return;
    qsort(t->freed, t->nfreed, sizeof *t->freed, cmp_u64);
    uint64_t start = 0, len = 0;
    for (size_t i = 0; i <= t->nfreed; i++) {
        uint64_t c = 0, rc = 1;
        if (i < t->nfreed) {
            c = t->freed[i];
            if (qcow2_txn_refcount(t, c, &rc) < 0)
                rc = 1;
        }
        if (rc == 0 && len && c == start + len)
            len++;
        else if (rc == 0 && len && c < start + len)
            continue; /* listed twice */
        else {
            if (len && io_discard(t->img->file, start << s->cluster_bits,
                                  len << s->cluster_bits) < 0)
                dimg_error_clear();
            start = c;
            len = rc == 0;
        }
    }
}

/* Point the driver's in-memory state at the new roots. */
static int
reload(struct qcow2_txn *t)
{
    struct qcow2_state *s = t->s;
    free(s->l1);
    s->l1 = t->l1;
    t->l1 = NULL;
    s->l1_size = t->l1_size;
    s->l1_offset = t->l1_off;
    s->l1_dirty_lo = s->l1_dirty_hi = 0;
    t->img->size = t->size;
    qcow2_l2_cache_free(s); /* freed tables may have been reused */
    s->refcount_table_offset = t->rt_off;
    s->refcount_table_clusters = (uint32_t)t->rt_clusters;
    int r = qcow2_refcount_reload(t->img);
    qcow2_snapshots_free(s);
    s->nb_snapshots = t->nb_snapshots;
    s->snapshots_offset = t->snapshots_offset;
    if (r == 0)
        r = qcow2_snapshots_load(t->img);
    return r;
}

int
qcow2_txn_commit(struct qcow2_txn *t)
{
    int r = finalize_active(t);
    if (r == 0)
        r = place_l1(t);
    if (r == 0)
        r = place_refcounts(t);
    if (r == 0)
        r = write_refcounts(t);
    if (r == 0)
        r = switch_header(t);
    if (r < 0)
        return r;
    discard_freed(t);
    return reload(t);
}
