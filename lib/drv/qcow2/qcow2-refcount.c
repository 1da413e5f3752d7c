/*
 * Reference counts: the refcount table, a write-back cache of refcount
 * blocks, cluster allocation at the end of the file, table growth, and the
 * deferred frees that must wait until no L2 entry points at a cluster.
 *
 * Crash safety: refcount blocks are always written before the L2 tables or
 * header fields that make use of the clusters they count (qcow2-write.c
 * flushes in that order), so a process killed at any instant leaves at worst
 * clusters with a refcount but no user: leaks, never corruption.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2.h"
#include "util/checked.h"
#include "util/endian.h"

static uint64_t
rb_entries(const struct qcow2_state *s)
{
    return ((uint64_t)s->cluster_size * 8) >> s->refcount_order;
}

uint64_t
qcow2_refcount_max(const struct qcow2_state *s)
{
    unsigned bits = 1u << s->refcount_order;
    return bits == 64 ? UINT64_MAX : (1ull << bits) - 1;
}

static uint64_t
rb_read(const struct qcow2_state *s, const uint8_t *b, uint64_t i)
{
    switch (s->refcount_order) {
    case 3: return b[i];
    case 4: return load_be16(b + i * 2);
    case 5: return load_be32(b + i * 4);
    case 6: return load_be64(b + i * 8);
    default: {
        unsigned bits = 1u << s->refcount_order;
        uint64_t bit = i * bits;
        return (b[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
    }
    }
}

static void
rb_write(const struct qcow2_state *s, uint8_t *b, uint64_t i, uint64_t v)
{
    switch (s->refcount_order) {
    case 3: b[i] = (uint8_t)v; break;
    case 4: store_be16(b + i * 2, (uint16_t)v); break;
    case 5: store_be32(b + i * 4, (uint32_t)v); break;
    case 6: store_be64(b + i * 8, v); break;
    default: {
        unsigned bits = 1u << s->refcount_order;
        uint64_t bit = i * bits;
        uint8_t mask = (uint8_t)(((1u << bits) - 1) << (bit % 8));
        b[bit / 8] = (uint8_t)((b[bit / 8] & ~mask) | ((v << (bit % 8)) & mask));
    }
    }
}

int
qcow2_refcount_init(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    s->reftable_entries = (uint64_t)s->refcount_table_clusters * s->cluster_size / 8;
    if (s->reftable_entries == 0)
        return dimg_error(EBADMSG, "%s: image has no refcount table", img->filename);
    s->reftable = malloc(s->reftable_entries * 8);
    if (!s->reftable)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pread(img->file, s->reftable, s->reftable_entries * 8, s->refcount_table_offset);
    if (r < 0)
        return r;
    uint64_t last = 0;
    for (uint64_t i = 0; i < s->reftable_entries; i++) {
        s->reftable[i] = load_be64(&s->reftable[i]);
        uint64_t off = s->reftable[i] & QCOW2_OFFSET_MASK;
        if (off & (s->cluster_size - 1))
            return dimg_error(EBADMSG, "%s: refcount block offset %#" PRIx64 " unaligned",
                              img->filename, off);
        if (off)
            last = i;
    }
    /* New clusters go after the end of the file and after every counted cluster. */
    int64_t fsize = io_get_size(img->file);
    if (fsize < 0)
        return (int)fsize;
    s->alloc_next = round_up_u64((uint64_t)fsize, s->cluster_size);
    if (s->reftable[last] & QCOW2_OFFSET_MASK) {
        uint8_t *b = NULL;
        r = qcow2_rb_get(img, s->reftable[last] & QCOW2_OFFSET_MASK, &b);
        if (r < 0)
            return r;
        for (uint64_t i = rb_entries(s); i-- > 0;) {
            if (rb_read(s, b, i)) {
                uint64_t end = ((last * rb_entries(s)) + i + 1) << s->cluster_bits;
                s->alloc_next = max_u64(s->alloc_next, end);
                break;
            }
        }
    }
    return 0;
}

bool
qcow2_refcounts_dirty(const struct qcow2_state *s)
{
    for (unsigned i = 0; i < QCOW2_RB_CACHE_SLOTS; i++)
        if (s->rb_cache[i].dirty)
            return true;
    return s->reftable_dirty || s->refcount_table_offset != s->reftable_written_offset;
}

/* Write one cached refcount block back if dirty. */
static int
rb_writeback(struct dimg_image *img, struct qcow2_rb_slot *sl)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (!sl->dirty)
        return 0;
    int r = io_pwrite(img->file, sl->block, s->cluster_size, sl->offset);
    if (r == 0)
        sl->dirty = false;
    return r;
}

int
qcow2_rb_flush(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    for (unsigned i = 0; i < QCOW2_RB_CACHE_SLOTS; i++) {
        int r = rb_writeback(img, &s->rb_cache[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Cached refcount block at host offset off; fresh: a new block, zeroed without reading. */
static int
rb_slot(struct dimg_image *img, uint64_t off, bool fresh, struct qcow2_rb_slot **out)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_rb_slot *victim = NULL;
    for (unsigned i = 0; i < QCOW2_RB_CACHE_SLOTS; i++) {
        struct qcow2_rb_slot *sl = &s->rb_cache[i];
        if (sl->block && sl->offset == off) {
            sl->last_use = ++s->rb_clock;
            *out = sl;
            return 0;
        }
        if (!victim || !sl->block || (victim->block && sl->last_use < victim->last_use))
            victim = sl;
    }
    int r = rb_writeback(img, victim);
    if (r < 0)
        return r;
    if (!victim->block && !(victim->block = malloc(s->cluster_size)))
        return dimg_error(ENOMEM, "out of memory");
    victim->offset = 0;
    if (fresh)
        memset(victim->block, 0, s->cluster_size);
    else if ((r = io_pread(img->file, victim->block, s->cluster_size, off)) < 0)
        return r;
    victim->offset = off;
    victim->dirty = fresh;
    victim->last_use = ++s->rb_clock;
    *out = victim;
    return 0;
}

int
qcow2_rb_get(struct dimg_image *img, uint64_t off, uint8_t **block)
{
    struct qcow2_rb_slot *sl;
    int r = rb_slot(img, off, false, &sl);
    if (r == 0)
        *block = sl->block;
    return r;
}

int
qcow2_refcount_get(struct dimg_image *img, uint64_t cluster, uint64_t *rc)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t ti = cluster / rb_entries(s);
    *rc = 0;
    if (ti >= s->reftable_entries || !(s->reftable[ti] & QCOW2_OFFSET_MASK))
        return 0;
    uint8_t *b;
    int r = qcow2_rb_get(img, s->reftable[ti] & QCOW2_OFFSET_MASK, &b);
    if (r == 0)
        *rc = rb_read(s, b, cluster % rb_entries(s));
    return r;
}

/*
 * How many of the first n host clusters have a nonzero refcount, counting
 * stops at limit.  Works on read-only opens too, where the table is not
 * loaded: the blocks are then read straight from the file.
 */
int
qcow2_count_referenced(struct dimg_image *img, uint64_t n, uint64_t limit, uint64_t *count)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t per = rb_entries(s), tables = s->refcount_table_clusters * (uint64_t)s->cluster_size / 8;
    uint8_t *blk = malloc(s->cluster_size);
    if (!blk)
        return dimg_error(ENOMEM, "out of memory");
    int r = 0;
    *count = 0;
    for (uint64_t ti = 0; ti * per < n && ti < tables && *count < limit && r == 0; ti++) {
        uint64_t rb;
        if (s->reftable) {
            rb = ti < s->reftable_entries ? s->reftable[ti] : 0;
        } else {
            uint8_t e[8];
            if ((r = io_pread(img->file, e, 8, s->refcount_table_offset + ti * 8)) < 0)
                break;
            rb = load_be64(e);
        }
        rb &= QCOW2_OFFSET_MASK;
        if (!rb)
            continue;
        const uint8_t *b = blk;
        if (s->reftable) {
            uint8_t *cached = NULL;
            if ((r = qcow2_rb_get(img, rb, &cached)) < 0)
                break;
            b = cached;
        } else if ((r = io_pread(img->file, blk, s->cluster_size, rb)) < 0) {
            break;
        }
        uint64_t m = min_u64(per, n - ti * per);
        for (uint64_t i = 0; i < m && *count < limit; i++)
            *count += rb_read(s, b, i) != 0;
    }
    free(blk);
    return r;
}

static int grow_reftable(struct dimg_image *img, uint64_t need_index);

/*
 * Make sure refcount block ti exists.  A new block is placed at the end of
 * the file; when it falls inside its own range it counts itself, otherwise
 * the block that covers it is created first (bounded recursion).
 */
static int
ensure_block(struct dimg_image *img, uint64_t ti, int depth)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (depth > 4)
        return dimg_error(EIO, "%s: refcount block allocation does not converge", img->filename);
    if (ti >= s->reftable_entries) {
        int r = grow_reftable(img, ti);
        if (r < 0)
            return r;
    }
    if (s->reftable[ti] & QCOW2_OFFSET_MASK)
        return 0;
    uint64_t off = s->alloc_next;
    s->alloc_next += s->cluster_size;
    struct qcow2_rb_slot *sl;
    int r = rb_slot(img, off, true, &sl);
    if (r < 0)
        return r;
    s->reftable[ti] = off;
    s->reftable_dirty = true;
    uint64_t self = off >> s->cluster_bits;
    if (self / rb_entries(s) == ti) {
        rb_write(s, sl->block, self % rb_entries(s), 1);
        return 0;
    }
    return qcow2_refcount_update(img, self, 1, depth + 1);
}

/* Add delta to a cluster's refcount; *after (when asked) gets the new count. */
int
qcow2_refcount_update_to(struct dimg_image *img, uint64_t cluster, int64_t delta, int depth,
                         uint64_t *after)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t ti = cluster / rb_entries(s);
    int r = ensure_block(img, ti, depth);
    if (r < 0)
        return r;
    struct qcow2_rb_slot *sl;
    r = rb_slot(img, s->reftable[ti] & QCOW2_OFFSET_MASK, false, &sl);
    if (r < 0)
        return r;
    uint64_t i = cluster % rb_entries(s);
    uint64_t v = rb_read(s, sl->block, i);
    if (delta < 0 && v < (uint64_t)-delta)
        return dimg_error(EBADMSG, "%s: refcount of cluster %#" PRIx64 " would drop below zero",
                          img->filename, cluster << s->cluster_bits);
    if (delta > 0 && qcow2_refcount_max(s) - v < (uint64_t)delta)
        return dimg_error(ERANGE, "%s: refcount of cluster %#" PRIx64 " would overflow",
                          img->filename, cluster << s->cluster_bits);
    rb_write(s, sl->block, i, v + (uint64_t)delta);
    sl->dirty = true;
    if (after)
        *after = v + (uint64_t)delta;
    return 0;
}

int
qcow2_refcount_update(struct dimg_image *img, uint64_t cluster, int64_t delta, int depth)
{
    return qcow2_refcount_update_to(img, cluster, delta, depth, NULL);
}

int
qcow2_alloc_clusters(struct dimg_image *img, uint64_t n, uint64_t *host)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t off = s->alloc_next;
    s->alloc_next += n << s->cluster_bits;
    for (uint64_t i = 0; i < n; i++) {
        int r = qcow2_refcount_update(img, (off >> s->cluster_bits) + i, 1, 0);
        if (r < 0)
            return r;
    }
    *host = off;
    return 0;
}

/*
 * Replace the refcount table with a larger copy placed at the end of the
 * file.  The copy and every block it needs are written before the header
 * switches to it; the old table is freed only afterwards.
 */
static int
grow_reftable(struct dimg_image *img, uint64_t need_index)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t per_cluster = s->cluster_size / 8;
    uint64_t want = max_u64(need_index + 1, s->reftable_entries * 2);
    uint64_t clusters = (want + per_cluster - 1) / per_cluster;
    /* The new table's own clusters, and the blocks counting them, must be covered too. */
    for (;;) {
        uint64_t end_cluster = (s->alloc_next >> s->cluster_bits) + clusters * 2 + 8;
        uint64_t need = end_cluster / rb_entries(s) + 2;
        if (need <= clusters * per_cluster)
            break;
        clusters = (need + per_cluster - 1) / per_cluster;
    }
    if (clusters * s->cluster_size > QCOW2_MAX_REFTABLE_BYTES)
        return dimg_error(EFBIG, "%s: refcount table would exceed %u bytes", img->filename,
                          QCOW2_MAX_REFTABLE_BYTES);
    uint64_t entries = clusters * per_cluster;
    uint64_t *nt = calloc(entries, 8);
    if (!nt)
        return dimg_error(ENOMEM, "out of memory");
    memcpy(nt, s->reftable, s->reftable_entries * 8);
    uint64_t old_off = s->refcount_table_offset, old_clusters = s->refcount_table_clusters;
    uint64_t *old = s->reftable;
    uint64_t old_entries = s->reftable_entries;
    uint64_t new_off = s->alloc_next;
    s->alloc_next += clusters << s->cluster_bits;
    s->reftable = nt;
    s->reftable_entries = entries;
    int r = 0;
    for (uint64_t i = 0; i < clusters && r == 0; i++)
        r = qcow2_refcount_update(img, (new_off >> s->cluster_bits) + i, 1, 1);
    if (r < 0) {
        s->reftable = old;
        s->reftable_entries = old_entries;
        free(nt);
        return r;
    }
    s->refcount_table_offset = new_off;
    s->refcount_table_clusters = (uint32_t)clusters;
    s->reftable_dirty = true;
    r = qcow2_reftable_commit(img);
    for (uint64_t i = 0; i < old_clusters && r == 0; i++)
        r = qcow2_free_later(img, old_off + (i << s->cluster_bits));
    free(old);
    return r;
}

/*
 * Write the dirty blocks, then the table, then (if it moved) the header
 * fields that point at it, each step durable before the next.
 */
int
qcow2_reftable_commit(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    int r = qcow2_rb_flush(img);
    if (r < 0)
        return r;
    if (!s->reftable_dirty && s->refcount_table_offset == s->reftable_written_offset)
        return 0;
    r = qcow2_barrier(img);
    if (r < 0)
        return r;
    size_t bytes = (size_t)s->refcount_table_clusters * s->cluster_size;
    uint8_t *buf = calloc(1, bytes);
    if (!buf)
        return dimg_error(ENOMEM, "out of memory");
    for (uint64_t i = 0; i < s->reftable_entries; i++)
        store_be64(buf + i * 8, s->reftable[i]);
    r = io_pwrite(img->file, buf, bytes, s->refcount_table_offset);
    free(buf);
    if (r < 0)
        return r;
    if (s->refcount_table_offset != s->reftable_written_offset) {
        uint8_t h[12];
        store_be64(h, s->refcount_table_offset);
        store_be32(h + 8, s->refcount_table_clusters);
        if ((r = qcow2_barrier(img)) < 0 || (r = io_pwrite(img->file, h, sizeof h, 48)) < 0)
            return r;
        s->reftable_written_offset = s->refcount_table_offset;
    }
    s->reftable_dirty = false;
    return 0;
}

int
qcow2_free_later(struct dimg_image *img, uint64_t host_cluster_offset)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (s->pending_free_n == s->pending_free_cap) {
        size_t cap = s->pending_free_cap ? s->pending_free_cap * 2 : 64;
        uint64_t *v = realloc(s->pending_free, cap * sizeof *v);
        if (!v)
            return dimg_error(ENOMEM, "out of memory");
        s->pending_free = v;
        s->pending_free_cap = cap;
    }
    s->pending_free[s->pending_free_n++] = host_cluster_offset;
    return 0;
}

/* Called once no metadata on disk refers to the pending clusters any more. */
int
qcow2_apply_frees(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    for (size_t i = 0; i < s->pending_free_n; i++) {
        uint64_t cluster = s->pending_free[i] >> s->cluster_bits, rc = 1;
        int r = qcow2_refcount_update_to(img, cluster, -1, 0, &rc);
        /* Space the guest gave back leaves the file too once nothing uses it
         * (a hole), as qemu passes discard requests down. */
        if (r == 0 && rc == 0 && (s->pending_free[i] & QCOW2_FREE_DISCARD))
            r = io_discard(img->file, cluster << s->cluster_bits, s->cluster_size);
        if (r < 0)
            return r;
    }
    s->pending_free_n = 0;
    return 0;
}

void
qcow2_refcount_free(struct qcow2_state *s)
{
    for (unsigned i = 0; i < QCOW2_RB_CACHE_SLOTS; i++)
        free(s->rb_cache[i].block);
    free(s->reftable);
    free(s->pending_free);
}

/* After a new refcount structure was switched in (rebuild, amend, snapshot
 * transactions): forget every cached block and load the table the header
 * names.  Compressed writes start a fresh cluster. */
int
qcow2_refcount_reload(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    for (unsigned i = 0; i < QCOW2_RB_CACHE_SLOTS; i++) {
        s->rb_cache[i].offset = 0;
        s->rb_cache[i].dirty = false;
    }
    free(s->reftable);
    s->reftable = NULL;
    s->reftable_dirty = false;
    s->reftable_written_offset = s->refcount_table_offset;
    s->cbyte = 0;
    s->cbyte_counted = false;
    return qcow2_refcount_init(img);
}
