/*
 * qcow2 make_empty (after commit): drop every cluster of the active layer
 * so the image reads through to its backing file.  Two ways, chosen as
 * qemu-img 7.2 chooses them (observed):
 *
 *  - A version 3 image without snapshots, bitmaps or external data file,
 *    whose L1 table fits with header, refcount table and one refcount block
 *    in what one refcount block counts, is rewritten into a minimal one:
 *    header, refcount table (cluster 1), refcount block (cluster 2), zeroed
 *    L1 table (cluster 3 on, same size), and the file is cut after it.
 *  - Otherwise every L2 entry is cleared (unallocated, not zero-flagged), L1
 *    entry by L1 entry: a missing L2 table is allocated (zeroed) and one
 *    shared with a snapshot is replaced by a zeroed copy; clusters that
 *    lose their last reference are freed (first fit, so the next tables
 *    reuse them) and punched out of the file.
 *
 * Crash safety.  The minimal layout overwrites clusters the live metadata
 * may occupy, so it is built twice: first a temporary copy after the end of
 * the file that also counts the final clusters, switched to by one header
 * write (L1 and refcount table offsets share a sector), then the final
 * layout in place, switched to the same way.  Every state in between reads
 * as the backing file (which already holds the committed data) and has at
 * worst leaked clusters.  The discard way writes each zeroed L2 table before
 * it frees what the table pointed at, and the L1 table before the clusters
 * only a replaced (shared) table referenced lose that reference.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2-bitmap.h"
#include "drv/qcow2/qcow2.h"
#include "util/checked.h"
#include "util/endian.h"

static uint64_t
refblock_entries(const struct qcow2_state *s)
{
    return ((uint64_t)s->cluster_size * 8) >> s->refcount_order;
}

static uint64_t
l1_clusters(const struct qcow2_state *s)
{
    return ((uint64_t)s->l1_size * 8 + s->cluster_size - 1) >> s->cluster_bits;
}

static bool
has_bitmaps(const struct qcow2_state *s)
{
    return qcow2_ext_find(s, QCOW2_EXT_BITMAPS) || (s->bitmaps && s->bitmaps->n);
}

/* qemu's test for the rewrite into a minimal image. */
static bool
can_rewrite(const struct qcow2_state *s)
{
    return s->version >= 3 && s->nb_snapshots == 0 && !has_bitmaps(s) &&
           !qcow2_has_data_file(s) && s->crypt_method == 0 &&
           3 + l1_clusters(s) <= refblock_entries(s);
}

static void
set_refcount_one(const struct qcow2_state *s, uint8_t *block, uint64_t i)
{
    unsigned bits = 1u << s->refcount_order;
    if (bits >= 8)
        block[(i + 1) * (bits / 8) - 1] = 1; /* big-endian 1 in the entry's last byte */
    else
        block[i * bits / 8] |= (uint8_t)(1u << (i * bits % 8));
}

/*
 * A metadata set: refcount table, refcount blocks, zeroed L1 table, placed
 * one after the other from cluster `at`, counting clusters [0, front) and
 * the set itself.
 */
struct layout {
    uint64_t at, front;      /* in clusters */
    uint64_t rt_clusters;
    uint64_t nblocks;
    uint64_t first_block;    /* refcount table index of the second block on (the set's own range) */
    bool block0;             /* a separate block for index 0 comes first */
    uint64_t end;            /* first cluster after the set */
};

static uint64_t
layout_l1_off(const struct qcow2_state *s, const struct layout *lo)
{
    return (lo->at + lo->rt_clusters + lo->nblocks) << s->cluster_bits;
}

static int
layout_plan(const struct qcow2_state *s, uint64_t at, uint64_t front, struct layout *lo)
{
    uint64_t rbe = refblock_entries(s), per_rt = s->cluster_size / 8;
    memset(lo, 0, sizeof *lo);
    lo->at = at;
    lo->front = front;
    lo->rt_clusters = 1;
    lo->nblocks = 1;
    for (int iter = 0; iter < 16; iter++) {
        uint64_t end = at + lo->rt_clusters + lo->nblocks + l1_clusters(s);
        uint64_t lo_i = at / rbe, hi_i = (end - 1) / rbe;
        bool block0 = lo_i > 0 && front > 0;
        uint64_t nblocks = (hi_i - lo_i + 1) + (block0 ? 1 : 0);
        uint64_t rt = (hi_i + 1 + per_rt - 1) / per_rt;
        if (nblocks == lo->nblocks && rt == lo->rt_clusters) {
            lo->block0 = block0;
            lo->first_block = lo_i;
            lo->end = end;
            if (rt << s->cluster_bits > QCOW2_MAX_REFTABLE_BYTES)
                return dimg_error(EFBIG, "refcount table would be too large");
            return 0;
        }
        lo->nblocks = nblocks;
        lo->rt_clusters = rt;
    }
    return dimg_error(EIO, "refcount layout does not converge");
}

static bool
layout_counts(const struct layout *lo, uint64_t c)
{
    return c < lo->front || (c >= lo->at && c < lo->end);
}

/*
 * Write the set (not yet referenced by the header) and make it durable.
 * Written as qemu-img writes its minimal image, so the file allocates the
 * same: refcount table and L1 table zeroed in place (not written) with only
 * the sectors holding entries written, refcount blocks whole.
 */
static int
layout_write(struct dimg_image *img, const struct layout *lo)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t cs = s->cluster_size, rbe = refblock_entries(s);
    uint8_t *buf = malloc(cs);
    if (!buf)
        return dimg_error(ENOMEM, "out of memory");
    uint64_t blocks_at = lo->at + lo->rt_clusters;
    int64_t fsize = io_get_size(img->file);
    int r = fsize < 0 ? (int)fsize : 0;
    /* Everything the header will point at lies inside the file. */
    if (r == 0 && (uint64_t)fsize < lo->end << s->cluster_bits)
        r = io_truncate(img->file, lo->end << s->cluster_bits, DIMG_PREALLOC_OFF);
    /* Refcount table: index 0's block (when separate), then the set's range. */
    for (uint64_t c = 0; c < lo->rt_clusters && r == 0; c++) {
        uint64_t at = (lo->at + c) << s->cluster_bits;
        memset(buf, 0, cs);
        for (uint64_t e = 0; e < cs / 8; e++) {
            uint64_t idx = c * (cs / 8) + e, block;
            if (lo->block0 && idx == 0)
                block = blocks_at;
            else if (idx >= lo->first_block && idx < lo->first_block + lo->nblocks - lo->block0)
                block = blocks_at + lo->block0 + (idx - lo->first_block);
            else
                continue;
            store_be64(buf + e * 8, block << s->cluster_bits);
        }
        r = io_zero_or_write(img->file, at, cs, false); /* kept allocated, as qemu-img does */
        for (uint64_t sec = 0; sec < cs && r == 0; sec += 512) {
            static const uint8_t zero_sector[512];
            if (memcmp(buf + sec, zero_sector, 512))
                r = io_pwrite(img->file, buf + sec, 512, at + sec);
        }
    }
    for (uint64_t b = 0; b < lo->nblocks && r == 0; b++) {
        uint64_t idx = (lo->block0 && b == 0) ? 0 : lo->first_block + b - lo->block0;
        memset(buf, 0, cs);
        for (uint64_t e = 0; e < rbe; e++)
            if (layout_counts(lo, idx * rbe + e))
                set_refcount_one(s, buf, e);
        r = io_pwrite(img->file, buf, cs, (blocks_at + b) << s->cluster_bits);
    }
    if (r == 0 && l1_clusters(s))
        r = io_zero_or_write(img->file, layout_l1_off(s, lo), l1_clusters(s) << s->cluster_bits, false);
    free(buf);
    return r == 0 ? qcow2_barrier(img) : r;
}

/*
 * Point the header at a set: L1 offset, refcount table offset and size
 * change in one sector.  The whole first cluster is written (as qemu-img
 * rewrites it), its other bytes unchanged.
 */
static int
layout_switch(struct dimg_image *img, const struct layout *lo)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint8_t *h = malloc(s->cluster_size);
    if (!h)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pread(img->file, h, s->cluster_size, 0);
    if (r == 0) {
        store_be64(h + 40, layout_l1_off(s, lo));
        store_be64(h + 48, lo->at << s->cluster_bits);
        store_be32(h + 56, (uint32_t)lo->rt_clusters);
        r = io_pwrite(img->file, h, s->cluster_size, 0);
    }
    free(h);
    return r == 0 ? qcow2_barrier(img) : r;
}

/* Forget every cached table and reload the refcount state from disk. */
static int
reload_metadata(struct dimg_image *img, uint64_t l1_offset, uint64_t rt_offset,
                uint32_t rt_clusters)
{
    struct qcow2_state *s = dimg_image_state(img);
    qcow2_l2_cache_free(s);
    qcow2_refcount_free(s);
    memset(s->rb_cache, 0, sizeof s->rb_cache);
    s->reftable = NULL;
    s->reftable_dirty = false;
    s->pending_free = NULL;
    s->pending_free_n = s->pending_free_cap = 0;
    s->cbyte = 0;
    s->cbyte_counted = false;
    s->l1_dirty_lo = s->l1_dirty_hi = 0;
    if (s->l1)
        memset(s->l1, 0, (size_t)s->l1_size * 8);
    s->l1_offset = l1_offset;
    s->refcount_table_offset = rt_offset;
    s->refcount_table_clusters = rt_clusters;
    s->reftable_written_offset = rt_offset;
    return qcow2_refcount_init(img);
}

static int
rewrite_minimal(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t front = 3 + l1_clusters(s);
    int64_t fsize = io_get_size(img->file);
    if (fsize < 0)
        return (int)fsize;
    uint64_t at = round_up_u64((uint64_t)fsize, s->cluster_size) >> s->cluster_bits;
    at = max_u64(at, round_up_u64(s->alloc_next, s->cluster_size) >> s->cluster_bits);
    at = max_u64(at, front);
    struct layout tmp, fin;
    int r = layout_plan(s, at, front, &tmp);
    if (r == 0)
        r = layout_plan(s, 1, 1, &fin);
    if (r == 0 && fin.end != front)
        r = dimg_error(EIO, "%s: unexpected minimal layout", img->filename);
    if (r == 0)
        r = layout_write(img, &tmp);
    if (r == 0)
        r = layout_switch(img, &tmp);
    if (r == 0)
        r = layout_write(img, &fin);
    if (r == 0)
        r = layout_switch(img, &fin);
    if (r == 0)
        r = io_truncate(img->file, front << s->cluster_bits, DIMG_PREALLOC_OFF);
    if (r == 0)
        r = reload_metadata(img, layout_l1_off(s, &fin), s->cluster_size, 1);
    return r;
}

/* ---- the discard way ----------------------------------------------------- */

struct discard_ctx {
    uint64_t free_hint;         /* first cluster the first-fit search looks at */
    uint64_t *deferred;         /* clusters to unreference once the L1 table is written */
    size_t ndeferred, cap;
};

static int
defer(struct discard_ctx *c, uint64_t cluster)
{
    if (c->ndeferred == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        uint64_t *v = realloc(c->deferred, cap * sizeof *v);
        if (!v)
            return dimg_error(ENOMEM, "out of memory");
        c->deferred = v;
        c->cap = cap;
    }
    c->deferred[c->ndeferred++] = cluster;
    return 0;
}

/* Drop one reference; a cluster nobody references any more is punched out. */
static int
unref(struct dimg_image *img, struct discard_ctx *c, uint64_t cluster)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t rc;
    int r = qcow2_refcount_update(img, cluster, -1, 0);
    if (r == 0)
        r = qcow2_refcount_get(img, cluster, &rc);
    if (r < 0 || rc)
        return r;
    if (cluster < c->free_hint)
        c->free_hint = cluster;
    io_discard(img->file, cluster << s->cluster_bits, s->cluster_size);
    return 0;
}

/* The host clusters an L2 entry holds a reference to (none for a data file). */
static int
entry_clusters(const struct qcow2_state *s, uint64_t entry, uint64_t *first, uint64_t *n)
{
    *n = 0;
    if (entry & QCOW2_OFLAG_COMPRESSED) {
        unsigned x = 62 - (s->cluster_bits - 8);
        uint64_t coff = entry & ((1ull << x) - 1);
        uint64_t sectors = ((entry >> x) & ((1ull << (s->cluster_bits - 8)) - 1)) + 1;
        uint64_t last = ((coff & ~511ull) + sectors * 512 - 1) >> s->cluster_bits;
        *first = coff >> s->cluster_bits;
        *n = last - *first + 1;
        return 0;
    }
    uint64_t host = entry & QCOW2_OFFSET_MASK;
    if (host && !qcow2_has_data_file(s)) {
        *first = host >> s->cluster_bits;
        *n = 1;
    }
    return 0;
}

/* Release every entry of an L2 table image (now or, when shared, after the L1 write). */
static int
release_table(struct dimg_image *img, struct discard_ctx *c, const uint8_t *l2, bool later)
{
    struct qcow2_state *s = dimg_image_state(img);
    for (uint32_t i = 0; i < s->l2_entries; i++) {
        uint64_t first, n;
        entry_clusters(s, load_be64(l2 + (size_t)i * s->l2_entry_size), &first, &n);
        for (uint64_t k = 0; k < n; k++) {
            int r = later ? defer(c, first + k) : unref(img, c, first + k);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* First free cluster from the hint on, counted and filled with zeros. */
static int
alloc_zeroed(struct dimg_image *img, struct discard_ctx *c, const uint8_t *zeros, uint64_t *out)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t cl = c->free_hint, rc;
    for (;; cl++) {
        if ((cl << s->cluster_bits) >= s->alloc_next)
            break;
        int r = qcow2_refcount_get(img, cl, &rc);
        if (r < 0)
            return r;
        if (rc == 0)
            break;
    }
    uint64_t end = (cl + 1) << s->cluster_bits;
    if (end > s->alloc_next)
        s->alloc_next = end;
    int r = qcow2_refcount_update(img, cl, 1, 0);
    if (r == 0)
        r = io_pwrite(img->file, zeros, s->cluster_size, cl << s->cluster_bits);
    c->free_hint = cl + 1;
    *out = cl << s->cluster_bits;
    return r;
}

static int
discard_all(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct discard_ctx c = { 0 };
    uint8_t *l2 = malloc(s->cluster_size), *zeros = calloc(1, s->cluster_size);
    int r = (l2 && zeros) ? 0 : dimg_error(ENOMEM, "out of memory");
    bool l1_changed = false;
    qcow2_l2_cache_free(s); /* clean after the caller's flush; tables are rewritten below */
    for (uint32_t i = 0; i < s->l1_size && r == 0; i++) {
        uint64_t l2_off = s->l1[i] & QCOW2_OFFSET_MASK, new_off;
        if (l2_off && (s->l1[i] & QCOW2_OFLAG_COPIED)) {
            /* Owned: clear it on disk before anything it pointed at is freed. */
            if ((r = io_pread(img->file, l2, s->cluster_size, l2_off)) == 0 &&
                (r = io_pwrite(img->file, zeros, s->cluster_size, l2_off)) == 0 &&
                (r = qcow2_barrier(img)) == 0)
                r = release_table(img, &c, l2, false);
            continue;
        }
        /* Missing, or shared with a snapshot: a zeroed table of its own. */
        if (l2_off && (r = io_pread(img->file, l2, s->cluster_size, l2_off)) < 0)
            break;
        if ((r = alloc_zeroed(img, &c, zeros, &new_off)) < 0)
            break;
        if (l2_off && ((r = defer(&c, l2_off >> s->cluster_bits)) < 0 ||
                       (r = release_table(img, &c, l2, true)) < 0))
            break;
        s->l1[i] = new_off | QCOW2_OFLAG_COPIED;
        l1_changed = true;
    }
    /* New tables are counted before the L1 table points at them. */
    if (r == 0)
        r = qcow2_reftable_commit(img);
    if (r == 0 && l1_changed && (r = qcow2_barrier(img)) == 0) {
        size_t bytes = (size_t)s->l1_size * 8;
        uint8_t *buf = malloc(bytes);
        if (!buf) {
            r = dimg_error(ENOMEM, "out of memory");
        } else {
            for (uint32_t i = 0; i < s->l1_size; i++)
                store_be64(buf + (size_t)i * 8, s->l1[i]);
            r = io_pwrite(img->file, buf, bytes, s->l1_offset);
            free(buf);
        }
        if (r == 0)
            r = qcow2_barrier(img);
    }
    for (size_t k = 0; k < c.ndeferred && r == 0; k++)
        r = unref(img, &c, c.deferred[k]);
    if (r == 0)
        r = qcow2_reftable_commit(img);
    free(c.deferred);
    free(l2);
    free(zeros);
    return r;
}

int
qcow2_make_empty(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    pthread_mutex_lock(&s->lock);
    int r = qcow2_flush(img);
    if (r == 0)
        r = can_rewrite(s) ? rewrite_minimal(img) : discard_all(img);
    pthread_mutex_unlock(&s->lock);
    return r;
}
