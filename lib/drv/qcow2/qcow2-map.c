/*
 * Guest-to-host mapping: the L2 table cache, decoding of (extended) L2
 * entries into runs of uniform kind, and the read and block-status paths
 * built on them.  Lookups hold the state lock; data I/O runs outside it, so
 * several threads may read one image at once.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2.h"
#include "util/checked.h"
#include "util/endian.h"

/* Total bytes of L2 tables kept in memory per image. */
#define QCOW2_L2_CACHE_BYTES (4u << 20)

static unsigned
cache_slots(const struct qcow2_state *s)
{
    unsigned n = QCOW2_L2_CACHE_BYTES / s->cluster_size;
    if (n < 2)
        n = 2;
    return n > QCOW2_L2_CACHE_SLOTS ? QCOW2_L2_CACHE_SLOTS : n;
}

void
qcow2_l2_cache_free(struct qcow2_state *s)
{
    for (unsigned i = 0; i < QCOW2_L2_CACHE_SLOTS; i++) {
        free(s->l2_cache[i].table);
        s->l2_cache[i].table = NULL;
        s->l2_cache[i].offset = 0;
    }
}

/* Write a dirty L2 table; the refcount blocks counting what it points at go first. */
static int
l2_writeback(struct dimg_image *img, struct qcow2_l2_slot *sl)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (!sl->dirty)
        return 0;
    int r = 0;
    if (qcow2_refcounts_dirty(s) && ((r = qcow2_reftable_commit(img)) < 0 ||
                                     (r = qcow2_barrier(img)) < 0))
        return r;
    uint8_t *buf = malloc(s->cluster_size);
    if (!buf)
        return dimg_error(ENOMEM, "out of memory");
    for (uint32_t i = 0; i < s->cluster_size / 8; i++)
        store_be64(buf + (size_t)i * 8, sl->table[i]);
    r = io_pwrite(img->file, buf, s->cluster_size, sl->offset);
    free(buf);
    if (r == 0)
        sl->dirty = false;
    return r;
}

int
qcow2_l2_flush(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    for (unsigned i = 0; i < QCOW2_L2_CACHE_SLOTS; i++) {
        int r = l2_writeback(img, &s->l2_cache[i]);
        if (r < 0)
            return r;
    }
    return 0;
}

/*
 * The cached L2 table at host offset l2_off (lock held).  fresh: a newly
 * allocated table, started as all zeros (unallocated) and dirty.
 */
int
qcow2_l2_slot_get(struct dimg_image *img, uint64_t l2_off, bool fresh, struct qcow2_l2_slot **out)
{
    struct qcow2_state *s = dimg_image_state(img);
    unsigned n = cache_slots(s);
    struct qcow2_l2_slot *victim = NULL;
    for (unsigned i = 0; i < n; i++) {
        struct qcow2_l2_slot *sl = &s->l2_cache[i];
        if (sl->table && sl->offset == l2_off) {
            sl->last_use = ++s->l2_clock;
            *out = sl;
            return 0;
        }
        if (!victim || !sl->table || (victim->table && sl->last_use < victim->last_use))
            victim = sl;
    }
    int r = l2_writeback(img, victim);
    if (r < 0)
        return r;
    if (!victim->table && !(victim->table = malloc(s->cluster_size)))
        return dimg_error(ENOMEM, "out of memory");
    victim->offset = 0;
    if (fresh) {
        memset(victim->table, 0, s->cluster_size);
    } else {
        r = io_pread(img->file, victim->table, s->cluster_size, l2_off);
        if (r < 0)
            return r;
        for (uint32_t i = 0; i < s->cluster_size / 8; i++)
            victim->table[i] = load_be64(&victim->table[i]);
    }
    victim->offset = l2_off;
    victim->dirty = fresh;
    victim->last_use = ++s->l2_clock;
    *out = victim;
    return 0;
}

/* Kind and host offset of the unit (subcluster or cluster) holding guest offset off. */
static int
classify(struct dimg_image *img, const struct qcow2_state *s, const uint64_t *l2,
         uint32_t l2_index, uint64_t off, struct qcow2_run *u)
{
    uint64_t entry = l2[(size_t)l2_index * (s->l2_entry_size / 8)];
    uint64_t in_cluster = off & (s->cluster_size - 1);
    bool data_file = qcow2_has_data_file(s);
    if (entry & QCOW2_OFLAG_COMPRESSED) {
        if (data_file)
            return dimg_error(EBADMSG, "%s: compressed cluster in an image with an external data file",
                              img->filename);
        u->kind = QCOW2_COMPRESSED;
        u->descriptor = entry & ~(QCOW2_OFLAG_COPIED | QCOW2_OFLAG_COMPRESSED);
        return 0;
    }
    uint64_t host = entry & QCOW2_OFFSET_MASK;
    bool allocated = qcow2_entry_has_host(s, entry);
    if (allocated && (host & (s->cluster_size - 1)))
        return dimg_error(EBADMSG,
                          "%s: Cluster allocation offset %#" PRIx64 " unaligned (guest offset %#" PRIx64 ")",
                          img->filename, host, off);
    if (s->extended_l2) {
        uint64_t bitmap = l2[(size_t)l2_index * 2 + 1];
        unsigned sc = (unsigned)(in_cluster >> s->subcluster_bits);
        if (bitmap & (1ull << sc)) {
            if (!allocated)
                return dimg_error(EBADMSG, "%s: subcluster allocated without a host cluster",
                                  img->filename);
            u->kind = QCOW2_NORMAL;
        } else if (bitmap & (1ull << (32 + sc))) {
            u->kind = allocated ? QCOW2_ZERO_ALLOC : QCOW2_ZERO;
        } else {
            u->kind = QCOW2_UNALLOCATED;
        }
    } else if (s->version >= 3 && (entry & QCOW2_OFLAG_ZERO)) {
        u->kind = allocated ? QCOW2_ZERO_ALLOC : QCOW2_ZERO;
    } else {
        u->kind = allocated ? QCOW2_NORMAL : QCOW2_UNALLOCATED;
    }
    u->has_host = allocated;
    u->host_offset = allocated ? host + in_cluster : 0;
    return 0;
}

/* Runs that carry a host offset end where the host offsets stop continuing. */
static bool
tracks_host(const struct qcow2_run *u)
{
    return u->has_host && u->kind != QCOW2_COMPRESSED && u->kind != QCOW2_ZERO;
}

/* Lock held.  Fills *run for the longest uniform run at off (at most len bytes). */
int
qcow2_map_locked(struct dimg_image *img, struct qcow2_state *s, uint64_t off, uint64_t len,
           struct qcow2_run *run)
{
    uint64_t cluster = off >> s->cluster_bits;
    uint64_t l1_index = cluster / s->l2_entries;
    uint32_t l2_index = (uint32_t)(cluster % s->l2_entries);
    /* Bytes from off to the end of the range this L2 table covers. */
    uint64_t l2_span_end = (l1_index + 1) * ((uint64_t)s->l2_entries << s->cluster_bits);
    uint64_t max = min_u64(len, l2_span_end - off);

    memset(run, 0, sizeof *run);
    if (l1_index >= s->l1_size || (s->l1[l1_index] & QCOW2_OFFSET_MASK) == 0) {
        run->kind = QCOW2_UNALLOCATED;
        run->length = max;
        return 0;
    }
    uint64_t l2_off = s->l1[l1_index] & QCOW2_OFFSET_MASK;
    if (l2_off & (s->cluster_size - 1))
        return dimg_error(EBADMSG, "%s: L2 table offset %#" PRIx64 " unaligned (L1 index: %#" PRIx64 ")",
                          img->filename, l2_off, l1_index);
    struct qcow2_l2_slot *slot;
    int r = qcow2_l2_slot_get(img, l2_off, false, &slot);
    if (r < 0)
        return r;
    const uint64_t *l2 = slot->table;

    uint64_t unit = 1ull << s->subcluster_bits;
    uint64_t pos = off;
    r = classify(img, s, l2, l2_index, pos, run);
    if (r < 0)
        return r;
    uint64_t next = round_down_u64(pos, unit) + unit;
    run->length = min_u64(next - off, max);
    while (off + run->length < off + max) {
        pos = off + run->length;
        uint32_t idx = (uint32_t)((pos >> s->cluster_bits) % s->l2_entries);
        struct qcow2_run u = { 0 };
        r = classify(img, s, l2, idx, pos, &u);
        if (r < 0)
            return r;
        if (u.kind != run->kind || tracks_host(&u) != tracks_host(run))
            break;
        if (tracks_host(&u) && u.host_offset != run->host_offset + (pos - off))
            break;
        run->length = min_u64(pos + unit - off, max);
    }
    return 0;
}

int
qcow2_map_range(struct dimg_image *img, uint64_t off, uint64_t len, struct qcow2_run *run)
{
    struct qcow2_state *s = dimg_image_state(img);
    pthread_mutex_lock(&s->lock);
    int r = qcow2_map_locked(img, s, off, len, run);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
read_compressed(struct dimg_image *img, struct qcow2_state *s, uint8_t *buf, uint64_t off,
                size_t n, uint64_t descriptor)
{
    uint64_t in_cluster = off & (s->cluster_size - 1);
    if (in_cluster == 0 && n == s->cluster_size)
        return qcow2_decompress_cluster(img, descriptor, buf);
    uint8_t *tmp = malloc(s->cluster_size);
    if (!tmp)
        return dimg_error(ENOMEM, "out of memory");
    int r = qcow2_decompress_cluster(img, descriptor, tmp);
    if (r == 0)
        memcpy(buf, tmp + in_cluster, n);
    free(tmp);
    return r;
}

int
qcow2_pread(struct dimg_image *img, void *buf, size_t len, uint64_t off)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint8_t *p = buf;
    while (len > 0) {
        struct qcow2_run run;
        int r = qcow2_map_range(img, off, len, &run);
        if (r < 0)
            return r;
        size_t n = (size_t)run.length;
        switch (run.kind) {
        case QCOW2_UNALLOCATED:
            r = image_read_backing(img, p, n, off);
            break;
        case QCOW2_ZERO:
        case QCOW2_ZERO_ALLOC:
            memset(p, 0, n);
            break;
        case QCOW2_NORMAL:
            r = io_pread(s->data_file, p, n, run.host_offset);
            break;
        case QCOW2_COMPRESSED: {
            uint64_t cluster_end = round_down_u64(off, s->cluster_size) + s->cluster_size;
            n = (size_t)min_u64(n, cluster_end - off);
            r = read_compressed(img, s, p, off, n, run.descriptor);
            break;
        }
        }
        if (r < 0)
            return r;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

/*
 * qemu's test for an image made with preallocation=metadata: noticeably more
 * clusters have a refcount than the file has storage for (a tenth more, at
 * least two).  Only then does it look for holes in the file under data
 * clusters.  Asked once per open.
 */
static bool
looks_preallocated(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    pthread_mutex_lock(&s->lock);
    if (s->looks_preallocated < 0) {
        int64_t stored = io_allocated_size(img->file), len = io_get_size(img->file);
        s->looks_preallocated = 0;
        if (stored >= 0 && len > 0) {
            uint64_t real = (uint64_t)stored / s->cluster_size;
            uint64_t threshold = max_u64(real * 10 / 9, real + 2);
            uint64_t n = ((uint64_t)len + s->cluster_size - 1) >> s->cluster_bits, counted = 0;
            if (qcow2_count_referenced(img, n, threshold, &counted) < 0)
                dimg_error_clear(); /* a damaged refcount structure: no guess */
            s->looks_preallocated = counted >= threshold;
        }
    }
    bool r = s->looks_preallocated > 0;
    pthread_mutex_unlock(&s->lock);
    return r;
}

int
qcow2_block_status(struct dimg_image *img, uint64_t off, uint64_t len, struct dimg_extent *out)
{
    struct qcow2_run run;
    int r = qcow2_map_range(img, off, len, &run);
    if (r < 0)
        return r;
    out->length = run.length;
    struct qcow2_state *s = dimg_image_state(img);
    if (s->data_file != img->file)
        out->filename = s->data_file->filename; /* where the offsets point */
    switch (run.kind) {
    case QCOW2_UNALLOCATED:
        out->flags = 0;
        if (run.has_host) { /* host space reserved for a subcluster not yet written */
            out->flags = DIMG_EXTENT_OFFSET;
            out->host_offset = run.host_offset;
        }
        break;
    case QCOW2_ZERO:
        out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_ZERO;
        break;
    case QCOW2_ZERO_ALLOC:
        out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_ZERO | DIMG_EXTENT_OFFSET;
        out->host_offset = run.host_offset;
        break;
    case QCOW2_NORMAL: {
        out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_DATA | DIMG_EXTENT_OFFSET;
        out->host_offset = run.host_offset;
        /* A hole in the image file reads as zeros (metadata preallocation
         * leaves them): reported per host run, as qemu does, and like qemu
         * only in images that look preallocated and never in an external
         * data file. */
        if (s->data_file != img->file || s->crypt_method || !looks_preallocated(img))
            break;
        uint64_t pnum;
        int st = io_block_status(img->file, run.host_offset, run.length, &pnum);
        if (st < 0)
            return st;
        if (pnum > 0 && pnum <= run.length) {
            out->length = pnum;
            if (st & IO_STATUS_ZERO)
                out->flags |= DIMG_EXTENT_ZERO | DIMG_EXTENT_HOLE;
        }
        break;
    }
    case QCOW2_COMPRESSED:
        out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_DATA | DIMG_EXTENT_COMPRESSED;
        break;
    }
    return 0;
}
