/*
 * qcow2 consistency check (`check`, `check -r leaks|all`).
 *
 * One pass over every structure that owns host clusters (header, active and
 * snapshot L1/L2 tables, snapshot table, refcount table and blocks, crypto
 * header, bitmaps) counts the references each cluster should have in a
 * compact array sized from the file; a second, sequential pass compares that
 * with the stored refcounts, block by block.  Messages, counters and the
 * order of the repair steps follow what qemu-img 7.2 prints for the same
 * image, since scripts parse them.
 *
 * Repairs go through the refcount helpers of qcow2-refcount.c and end with
 * qcow2_flush, so refcount blocks reach the disk before any table that
 * depends on them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2.h"
#include "util/checked.h"
#include "util/endian.h"

#define REFT_OFFSET_MASK   0xfffffffffffffe00ull
#define REFT_RESERVED_MASK 0x1ffull
#define MAX_SNAPSHOT_EXTRA 1024u
#define MAX_BITMAP_DIR     (64u << 20)
#define MAX_BITMAPS        65535u

struct chk {
    struct dimg_image *img;
    struct qcow2_state *s;
    struct dimg_check *res;
    unsigned fix;
    uint64_t file_size;
    uint64_t nb_clusters;    /* clusters the file covers: the range compared */
    uint64_t refs_len;       /* nb_clusters plus the one a region may overhang */
    uint32_t *refs;          /* references found, per host cluster */
    uint64_t ref_max;        /* largest refcount the image can store */
    uint64_t *reftable;      /* host-endian, as stored (reserved bits kept) */
    uint64_t reftable_entries;
    uint64_t rb_entries;     /* refcounts per refcount block */
    uint8_t *rb;             /* one stored refcount block, read-through */
    uint64_t rb_index;       /* reftable index of rb; UINT64_MAX: none */
    bool corrupt_reported;   /* the unaligned-refblock event is printed once */
    uint64_t *l1;            /* active L1 as read from disk */
    uint8_t *table;          /* one L2 table */
    bool rebuild;            /* refcount structures beyond simple repair */
    uint64_t highest;        /* highest cluster used or counted */
};

/*
 * Count one reference in every cluster [off, off + size) touches.  A region
 * reaching a whole cluster or more past the end of the file is an error, not
 * a reference, so the array never grows past the file.
 */
static void
count_region(struct chk *c, uint64_t off, uint64_t size)
{
    struct qcow2_state *s = c->s;
    if (size == 0)
        return;
    uint64_t end;
    if (ckd_add_u64(&end, off, size) ||
        (end > c->file_size && end - c->file_size >= s->cluster_size)) {
        fprintf(stderr, "ERROR: counting reference for region exceeding the end of the file "
                "by one cluster or more: offset %#" PRIx64 " size %#" PRIx64 "\n", off, size);
        c->res->corruptions++;
        return;
    }
    for (uint64_t k = off >> s->cluster_bits; k <= (end - 1) >> s->cluster_bits; k++) {
        if (k >= c->refs_len)
            break; /* unreachable given the test above; keeps the array access safe */
        if (c->refs[k] >= c->ref_max) {
            fprintf(stderr, "ERROR: overflow cluster offset=%#" PRIx64 "\n",
                    k << s->cluster_bits);
            fprintf(stderr, "Use qemu-img amend to increase the refcount entry width or "
                    "qemu-img convert to create a clean copy if the image cannot be opened "
                    "for writing\n");
            c->res->corruptions++;
            continue;
        }
        c->refs[k]++;
    }
}

/* Stored refcount of a cluster, read from disk one block at a time. */
static int
stored_refcount(struct chk *c, uint64_t cluster, uint64_t *rc)
{
    struct qcow2_state *s = c->s;
    uint64_t ti = cluster / c->rb_entries, i = cluster % c->rb_entries;
    *rc = 0;
    if (ti >= c->reftable_entries)
        return 0;
    uint64_t off = c->reftable[ti] & REFT_OFFSET_MASK;
    if (off == 0)
        return 0;
    if (off & (s->cluster_size - 1)) {
        if (!c->corrupt_reported)
            fprintf(stderr, "qcow2: Image is corrupt: Refblock offset %#" PRIx64 " unaligned "
                    "(reftable index: %#" PRIx64 "); further non-fatal corruption events "
                    "will be suppressed\n", off, ti);
        c->corrupt_reported = true;
        return -EIO;
    }
    if (c->rb_index != ti) {
        c->rb_index = UINT64_MAX;
        int r = io_pread(c->img->file, c->rb, s->cluster_size, off);
        if (r < 0)
            return r;
        c->rb_index = ti;
    }
    const uint8_t *b = c->rb;
    switch (s->refcount_order) {
    case 3: *rc = b[i]; break;
    case 4: *rc = load_be16(b + i * 2); break;
    case 5: *rc = load_be32(b + i * 4); break;
    case 6: *rc = load_be64(b + i * 8); break;
    default: {
        unsigned bits = 1u << s->refcount_order;
        uint64_t bit = i * bits;
        *rc = (b[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
    }
    }
    return 0;
}

/* Forget cached copies of an L2 table the check rewrote on disk. */
static void
l2_cache_drop(struct qcow2_state *s, uint64_t l2_off)
{
    for (unsigned i = 0; i < QCOW2_L2_CACHE_SLOTS; i++)
        if (s->l2_cache[i].table && s->l2_cache[i].offset == l2_off && !s->l2_cache[i].dirty)
            s->l2_cache[i].offset = 0;
}

static uint64_t
l2_get(const struct chk *c, uint32_t i, uint64_t *bitmap)
{
    const uint8_t *p = c->table + (size_t)i * c->s->l2_entry_size;
    *bitmap = c->s->extended_l2 ? load_be64(p + 8) : 0;
    return load_be64(p);
}

/* A preallocated cluster at an unaligned offset: make the entry read as zeros. */
static int
zero_entry(struct chk *c, uint64_t l2_off, uint32_t i)
{
    struct qcow2_state *s = c->s;
    uint8_t e[16];
    size_t n = s->l2_entry_size;
    if (s->extended_l2) {
        store_be64(e, 0);
        store_be64(e + 8, 0xffffffffull << 32); /* every subcluster reads as zeros */
    } else {
        store_be64(e, QCOW2_OFLAG_ZERO);
    }
    int r = io_pwrite(c->img->file, e, n, l2_off + (uint64_t)i * n);
    if (r == 0) {
        memcpy(c->table + (size_t)i * n, e, n);
        l2_cache_drop(s, l2_off);
    }
    return r;
}

static int
check_l2(struct chk *c, uint64_t l2_off, bool frag)
{
    struct qcow2_state *s = c->s;
    struct dimg_check *res = c->res;
    uint32_t csize_shift = 62 - (s->cluster_bits - 8);
    uint64_t coff_mask = (1ull << csize_shift) - 1;
    uint64_t next_contiguous = 0;
    int r = io_pread(c->img->file, c->table, s->cluster_size, l2_off);
    if (r < 0) {
        fprintf(stderr, "ERROR: I/O error in check_refcounts_l2\n");
        res->check_errors++;
        return r;
    }
    for (uint32_t i = 0; i < s->l2_entries; i++) {
        uint64_t bitmap, e = l2_get(c, i, &bitmap);
        uint64_t off = e & QCOW2_OFFSET_MASK;
        if (e & QCOW2_OFLAG_COMPRESSED) {
            if (e & QCOW2_OFLAG_COPIED) {
                fprintf(stderr, "ERROR: coffset=0x%" PRIx64 ": copied flag must never be set "
                        "for compressed clusters\n", e & coff_mask);
                res->corruptions++;
            }
            if (qcow2_has_data_file(s)) {
                fprintf(stderr, "ERROR compressed cluster %" PRIu32 " with data file, "
                        "entry=0x%" PRIx64 "\n", i, (uint64_t)(e & ~QCOW2_OFLAG_COPIED));
                res->corruptions++;
                continue;
            }
            if (bitmap) {
                fprintf(stderr, "ERROR compressed cluster %" PRIu32 " with non-zero subcluster "
                        "allocation bitmap, entry=0x%" PRIx64 "\n", i, (uint64_t)(e & ~QCOW2_OFLAG_COPIED));
                res->corruptions++;
                continue;
            }
            uint64_t coff = e & coff_mask;
            uint64_t sectors = ((e & ~QCOW2_OFLAG_COPIED & ~QCOW2_OFLAG_COMPRESSED)
                                >> csize_shift) + 1;
            count_region(c, coff, sectors * 512 - (coff & 511));
            if (frag) {
                res->allocated_clusters++;
                res->compressed_clusters++;
                res->fragmented_clusters++; /* sub-cluster data is never contiguous */
            }
            continue;
        }
        if (e & QCOW2_L2_RESERVED) {
            fprintf(stderr, "ERROR found l2 entry with reserved bits set: %" PRIx64 "\n", e);
            res->corruptions++;
        }
        bool zero_flag = !s->extended_l2 && (e & QCOW2_OFLAG_ZERO);
        bool raw_at_zero = qcow2_has_data_file(s) && (e & QCOW2_OFLAG_COPIED);
        if (off == 0 && !raw_at_zero) {
            if (!zero_flag && (bitmap & 0xffffffffull)) {
                fprintf(stderr, "ERROR: Unallocated cluster has non-zero subcluster "
                        "allocation map\n");
                res->corruptions++;
            }
            continue;
        }
        if ((bitmap >> 32) & bitmap) {
            res->corruptions++;
            fprintf(stderr, "ERROR offset=%" PRIx64 ": Allocated cluster has corrupted "
                    "subcluster allocation bitmap\n", off);
        }
        if (off & (s->cluster_size - 1)) {
            bool data = s->extended_l2 ? (bitmap & 0xffffffffull) != 0 : !zero_flag;
            res->corruptions++;
            if (data) {
                fprintf(stderr, "ERROR offset=%" PRIx64 ": Data cluster is not properly "
                        "aligned; L2 entry corrupted.\n", off);
            } else {
                bool repair = c->fix & DIMG_CHECK_FIX_ERRORS;
                fprintf(stderr, "%s offset=%" PRIx64 ": Preallocated cluster is not properly "
                        "aligned; L2 entry corrupted.\n", repair ? "Repairing" : "ERROR", off);
                if (repair && zero_entry(c, l2_off, i) == 0) {
                    res->corruptions--;
                    res->corruptions_fixed++;
                    continue;
                }
            }
        }
        if (frag) {
            res->allocated_clusters++;
            if (next_contiguous && off != next_contiguous)
                res->fragmented_clusters++;
            next_contiguous = off + s->cluster_size;
        }
        if (!qcow2_has_data_file(s))
            count_region(c, off, s->cluster_size);
    }
    return 0;
}

/* An L1 table and the L2 tables it points at; the active one also gives fragmentation. */
static int
check_l1(struct chk *c, uint64_t l1_off, uint32_t l1_size, bool active)
{
    struct qcow2_state *s = c->s;
    if (l1_size == 0)
        return 0;
    count_region(c, l1_off, (uint64_t)l1_size * 8);
    uint64_t *l1 = malloc((size_t)l1_size * 8);
    if (!l1) {
        c->res->check_errors++;
        return dimg_error(ENOMEM, "out of memory");
    }
    int r = io_pread(c->img->file, l1, (size_t)l1_size * 8, l1_off);
    if (r < 0) {
        fprintf(stderr, "ERROR: I/O error in check_refcounts_l1\n");
        c->res->check_errors++;
        goto out;
    }
    for (uint32_t i = 0; i < l1_size; i++)
        l1[i] = load_be64(&l1[i]);
    for (uint32_t i = 0; i < l1_size && r == 0; i++) {
        if (l1[i] & QCOW2_L1_RESERVED) {
            fprintf(stderr, "ERROR found L1 entry with reserved bits set: %" PRIx64 "\n", l1[i]);
            c->res->corruptions++;
        }
        uint64_t l2_off = l1[i] & QCOW2_OFFSET_MASK;
        if (!l2_off)
            continue;
        count_region(c, l2_off, s->cluster_size);
        if (l2_off & (s->cluster_size - 1)) {
            fprintf(stderr, "ERROR l2_offset=%" PRIx64 ": Table is not cluster aligned; L1 "
                    "entry corrupted\n", l2_off);
            c->res->corruptions++;
        }
        r = check_l2(c, l2_off, active);
    }
out:
    if (active && r == 0) {
        free(c->l1);
        c->l1 = l1;
    } else {
        free(l1);
    }
    return r;
}

/* Snapshot L1 tables, then the snapshot table itself. */
static int
check_snapshots(struct chk *c)
{
    struct qcow2_state *s = c->s;
    uint64_t pos = s->snapshots_offset;
    char id[65536], name[65536];
    int r = 0;
    for (uint32_t n = 0; n < s->nb_snapshots; n++) {
        uint8_t h[40];
        if ((r = io_pread(c->img->file, h, sizeof h, pos)) < 0)
            goto fail;
        uint64_t l1_off = load_be64(h);
        uint32_t l1_size = load_be32(h + 8);
        uint16_t id_len = load_be16(h + 12), name_len = load_be16(h + 14);
        uint32_t extra = load_be32(h + 36);
        if (extra > MAX_SNAPSHOT_EXTRA) {
            r = dimg_error(EFBIG, "Too much extra metadata in snapshot table entry %" PRIu32, n);
            goto fail;
        }
        pos += sizeof h + extra;
        if ((r = io_pread(c->img->file, id, id_len, pos)) < 0 ||
            (r = io_pread(c->img->file, name, name_len, pos + id_len)) < 0)
            goto fail;
        id[id_len] = '\0';
        name[name_len] = '\0';
        pos = round_up_u64(pos + id_len + name_len, 8);
        if (pos - s->snapshots_offset > (uint64_t)QCOW2_MAX_SNAPSHOTS * 1024) {
            r = dimg_error(EFBIG, "Snapshot table too large");
            goto fail;
        }
        if (l1_off & (s->cluster_size - 1)) {
            fprintf(stderr, "ERROR snapshot %s (%s) l1_offset=%#" PRIx64 ": L1 table is not "
                    "cluster aligned; snapshot table entry corrupted\n", id, name, l1_off);
            c->res->corruptions++;
            continue;
        }
        if ((uint64_t)l1_size * 8 > QCOW2_MAX_L1_BYTES) {
            fprintf(stderr, "ERROR snapshot %s (%s) l1_size=%#" PRIx32 ": L1 table is too "
                    "large; snapshot table entry corrupted\n", id, name, l1_size);
            c->res->corruptions++;
            continue;
        }
        if ((r = check_l1(c, l1_off, l1_size, false)) < 0)
            return r;
    }
    count_region(c, s->snapshots_offset, pos - s->snapshots_offset);
    return 0;
fail:
    c->res->check_errors++;
    return r;
}

/* Header extensions that own clusters: the crypto header and the bitmaps. */
static int
check_extensions(struct chk *c)
{
    struct qcow2_state *s = c->s;
    uint8_t *hdr = NULL, *dir = NULL;
    uint64_t dir_off = 0, dir_size = 0;
    uint32_t nb_bitmaps = 0;
    int r = 0;
    if (s->version < 3)
        return 0;
    if (!(hdr = malloc(s->cluster_size))) {
        r = dimg_error(ENOMEM, "out of memory");
        goto out;
    }
    if ((r = io_pread(c->img->file, hdr, s->cluster_size, 0)) < 0)
        goto out;
    for (size_t off = s->header_length; off + 8 <= s->cluster_size;) {
        uint32_t type = load_be32(hdr + off), len = load_be32(hdr + off + 4);
        off += 8;
        if (type == QCOW2_EXT_END || len > s->cluster_size - off)
            break;
        if (type == QCOW2_EXT_CRYPTO && len >= 16 && s->crypt_method == 2)
            count_region(c, load_be64(hdr + off), load_be64(hdr + off + 8));
        if (type == QCOW2_EXT_BITMAPS && len >= 24 && (s->autoclear & QCOW2_AUTOCLEAR_BITMAPS)) {
            nb_bitmaps = load_be32(hdr + off);
            dir_size = load_be64(hdr + off + 8);
            dir_off = load_be64(hdr + off + 16);
        }
        off += round_up_u64(len, 8);
    }
    if (nb_bitmaps == 0 || nb_bitmaps > MAX_BITMAPS || dir_size > MAX_BITMAP_DIR ||
        !range_within(dir_off, dir_size, c->file_size))
        goto out;
    count_region(c, dir_off, dir_size);
    if (!(dir = malloc(dir_size ? dir_size : 1))) {
        r = dimg_error(ENOMEM, "out of memory");
        goto out;
    }
    if ((r = io_pread(c->img->file, dir, dir_size, dir_off)) < 0)
        goto out;
    uint64_t p = 0;
    for (uint32_t n = 0; n < nb_bitmaps && p + 24 <= dir_size; n++) {
        uint64_t tab_off = load_be64(dir + p);
        uint32_t tab_size = load_be32(dir + p + 8);
        uint64_t len = 24 + (uint64_t)load_be32(dir + p + 20) + load_be16(dir + p + 18);
        p = round_up_u64(p + len, 8);
        if ((uint64_t)tab_size * 8 > QCOW2_MAX_L1_BYTES ||
            !range_within(tab_off, (uint64_t)tab_size * 8, c->file_size))
            continue;
        count_region(c, tab_off, (uint64_t)tab_size * 8);
        for (uint32_t i = 0; i < tab_size; i++) {
            uint8_t e[8];
            if ((r = io_pread(c->img->file, e, 8, tab_off + (uint64_t)i * 8)) < 0)
                goto out;
            uint64_t data = load_be64(e) & QCOW2_OFFSET_MASK;
            if (data)
                count_region(c, data, s->cluster_size);
        }
    }
out:
    if (r < 0)
        c->res->check_errors++;
    free(hdr);
    free(dir);
    return r;
}

/* The refcount blocks: each must be aligned, inside the file and used once. */
static void
check_refblocks(struct chk *c)
{
    struct qcow2_state *s = c->s;
    for (uint64_t i = 0; i < c->reftable_entries; i++) {
        uint64_t off = c->reftable[i] & REFT_OFFSET_MASK, cl = off >> s->cluster_bits;
        if (c->reftable[i] & REFT_RESERVED_MASK) {
            fprintf(stderr, "ERROR refcount table entry %" PRIu64 " has reserved bits set\n", i);
            c->res->corruptions++;
            c->rebuild = true;
            continue;
        }
        if (off & (s->cluster_size - 1)) {
            fprintf(stderr, "ERROR refcount block %" PRIu64 " is not cluster aligned; refcount "
                    "table entry corrupted\n", i);
            c->res->corruptions++;
            c->rebuild = true;
            continue;
        }
        if (cl >= c->nb_clusters) {
            /* qemu grows the file to repair this; dimg reports it and leaves it. */
            fprintf(stderr, "ERROR refcount block %" PRIu64 " is outside image\n", i);
            c->res->corruptions++;
            continue;
        }
        if (off == 0)
            continue;
        count_region(c, off, s->cluster_size);
        if (c->refs[cl] != 1) {
            fprintf(stderr, "ERROR refcount block %" PRIu64 " refcount=%" PRIu32 "\n", i,
                    c->refs[cl]);
            c->res->corruptions++;
            c->rebuild = true;
        }
    }
}

/* Stored against found refcounts, in cluster order; fix: repair what fix allows. */
static int
compare_refcounts(struct chk *c, unsigned fix)
{
    struct dimg_check *res = c->res;
    for (uint64_t i = 0; i < c->nb_clusters; i++) {
        uint64_t stored, found = c->refs[i];
        int r = stored_refcount(c, i, &stored);
        if (r < 0) {
            fprintf(stderr, "Can't get refcount for cluster %" PRIu64 ": %s\n", i, strerror(-r));
            res->check_errors++;
            continue;
        }
        if (stored || found)
            c->highest = i;
        if (stored == found)
            continue;
        int64_t *fixed = NULL;
        if (stored == 0)
            c->rebuild = true; /* the cluster's refcount block may not even exist */
        else if (stored > found && (fix & DIMG_CHECK_FIX_LEAKS))
            fixed = &res->leaks_fixed;
        else if (stored < found && (fix & DIMG_CHECK_FIX_ERRORS))
            fixed = &res->corruptions_fixed;
        fprintf(stderr, "%s cluster %" PRIu64 " refcount=%" PRIu64 " reference=%" PRIu64 "\n",
                fixed ? "Repairing" : stored < found ? "ERROR" : "Leaked", i, stored, found);
        if (fixed) {
            int64_t delta = stored > found ? -(int64_t)(stored - found) : (int64_t)(found - stored);
            if (qcow2_refcount_update(c->img, i, delta, 0) == 0) {
                (*fixed)++;
                continue;
            }
        }
        if (stored < found)
            res->corruptions++;
        else
            res->leaks++;
    }
    return 0;
}

/* Write back one L1 entry whose COPIED flag was wrong. */
static int
fix_l1_entry(struct chk *c, uint32_t i, uint64_t entry)
{
    struct qcow2_state *s = c->s;
    uint8_t e[8];
    store_be64(e, entry);
    int r = io_pwrite(c->img->file, e, 8, s->l1_offset + (uint64_t)i * 8);
    if (r == 0) {
        c->l1[i] = entry;
        if (i < s->l1_size)
            s->l1[i] = entry;
    }
    return r;
}

/*
 * A missing COPIED flag only costs a needless copy on write, so -r leaks
 * already sets it; clearing a wrong one is a repair of a corruption (-r all).
 */
static bool
oflag_fixable(unsigned fix, uint64_t rc)
{
    return (fix & DIMG_CHECK_FIX_ERRORS) || ((fix & DIMG_CHECK_FIX_LEAKS) && rc == 1);
}

/* OFLAG_COPIED must be set exactly where the stored refcount is 1 (active tables only). */
static int
check_oflag_copied(struct chk *c, unsigned fix)
{
    struct qcow2_state *s = c->s;
    struct dimg_check *res = c->res;
    if (!c->l1)
        return 0;
    for (uint32_t i = 0; i < s->l1_size; i++) {
        uint64_t e = c->l1[i], l2_off = e & QCOW2_OFFSET_MASK, rc;
        if (!l2_off || stored_refcount(c, l2_off >> s->cluster_bits, &rc) < 0)
            continue;
        if ((rc == 1) != ((e & QCOW2_OFLAG_COPIED) != 0)) {
            bool repair = oflag_fixable(fix, rc);
            res->corruptions++;
            fprintf(stderr, "%s OFLAG_COPIED L2 cluster: l1_index=%" PRIu32 " l1_entry=%" PRIx64
                    " refcount=%" PRIu64 "\n", repair ? "Repairing" : "ERROR", i, e, rc);
            if (repair) {
                uint64_t ne = rc == 1 ? e | QCOW2_OFLAG_COPIED : e & ~QCOW2_OFLAG_COPIED;
                int r = fix_l1_entry(c, i, ne);
                if (r < 0) {
                    res->check_errors++;
                    return r;
                }
                res->corruptions--;
                res->corruptions_fixed++;
            }
        }
        int r = io_pread(c->img->file, c->table, s->cluster_size, l2_off);
        if (r < 0) {
            fprintf(stderr, "ERROR: Could not read L2 table: %s\n", strerror(-r));
            res->check_errors++;
            return r;
        }
        unsigned changed = 0;
        for (uint32_t j = 0; j < s->l2_entries; j++) {
            uint64_t bitmap, le = l2_get(c, j, &bitmap), data = le & QCOW2_OFFSET_MASK;
            if ((le & QCOW2_OFLAG_COMPRESSED) || (!data && !qcow2_has_data_file(s)))
                continue;
            if (!data && !(le & QCOW2_OFLAG_COPIED))
                continue;
            if (qcow2_has_data_file(s))
                rc = 1;
            else if (stored_refcount(c, data >> s->cluster_bits, &rc) < 0)
                continue;
            if ((rc == 1) == ((le & QCOW2_OFLAG_COPIED) != 0))
                continue;
            bool repair = oflag_fixable(fix, rc);
            res->corruptions++;
            fprintf(stderr, "%s OFLAG_COPIED data cluster: l2_entry=%" PRIx64 " refcount=%"
                    PRIu64 "\n", repair ? "Repairing" : "ERROR", le, rc);
            if (repair) {
                le = rc == 1 ? le | QCOW2_OFLAG_COPIED : le & ~QCOW2_OFLAG_COPIED;
                store_be64(c->table + (size_t)j * s->l2_entry_size, le);
                changed++;
            }
        }
        if (changed) {
            r = io_pwrite(c->img->file, c->table, s->cluster_size, l2_off);
            if (r < 0) {
                fprintf(stderr, "ERROR: Could not write L2 table: %s\n", strerror(-r));
                res->check_errors++;
                return r;
            }
            l2_cache_drop(s, l2_off);
            res->corruptions -= changed;
            res->corruptions_fixed += changed;
        }
    }
    return 0;
}

static int
load_reftable(struct chk *c)
{
    struct qcow2_state *s = c->s;
    c->reftable_entries = (uint64_t)s->refcount_table_clusters * s->cluster_size / 8;
    if (c->reftable_entries == 0)
        return 0;
    c->reftable = malloc(c->reftable_entries * 8);
    if (!c->reftable)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pread(c->img->file, c->reftable, c->reftable_entries * 8,
                     s->refcount_table_offset);
    for (uint64_t i = 0; r == 0 && i < c->reftable_entries; i++)
        c->reftable[i] = load_be64(&c->reftable[i]);
    return r;
}

/* Size the arrays from the file and count every reference anew. */
static int
calculate(struct chk *c)
{
    struct qcow2_state *s = c->s;
    struct dimg_check *res = c->res;
    int64_t fsize = io_get_size(c->img->file);
    if (fsize <= 0) {
        res->check_errors++;
        return fsize < 0 ? (int)fsize : -EIO;
    }
    c->file_size = (uint64_t)fsize;
    c->nb_clusters = (c->file_size + s->cluster_size - 1) >> s->cluster_bits;
    if (c->nb_clusters > INT32_MAX) {
        res->check_errors++;
        return dimg_error(EFBIG, "%s: image file too large to check", c->img->filename);
    }
    res->total_clusters = (int64_t)((c->img->size + s->cluster_size - 1) >> s->cluster_bits);
    c->refs_len = c->nb_clusters + 1;
    c->ref_max = min_u64(qcow2_refcount_max(s), UINT32_MAX);
    c->rb_entries = ((uint64_t)s->cluster_size * 8) >> s->refcount_order;
    c->rb_index = UINT64_MAX;
    c->rebuild = false;
    c->highest = 0;
    free(c->refs);
    free(c->reftable);
    c->reftable = NULL;
    /* calloc: untouched pages of a sparse file's array cost nothing. */
    c->refs = calloc(c->refs_len, sizeof *c->refs);
    if (!c->rb)
        c->rb = malloc(s->cluster_size);
    if (!c->table)
        c->table = malloc(s->cluster_size);
    if (!c->refs || !c->rb || !c->table) {
        res->check_errors++;
        return dimg_error(ENOMEM, "out of memory");
    }
    int r = load_reftable(c);
    if (r < 0) {
        res->check_errors++;
        return r;
    }
    count_region(c, 0, s->cluster_size);
    if ((r = check_l1(c, s->l1_offset, s->l1_size, true)) < 0 ||
        (r = check_snapshots(c)) < 0)
        return r;
    count_region(c, s->refcount_table_offset, (uint64_t)s->refcount_table_clusters *
                 s->cluster_size);
    if ((r = check_extensions(c)) < 0)
        return r;
    check_refblocks(c);
    return 0;
}

/*
 * -r all when refcounts are missing: write a new refcount structure from the
 * references found, then count again (the old structure is now unreferenced)
 * and repair what is left.  As in qemu, the problems found before count as
 * fixed corruptions and the cleanup of the old structure is not counted.
 */
static int
rebuild(struct chk *c)
{
    struct dimg_check *res = c->res, scratch = { 0 };
    fprintf(stderr, "Rebuilding refcount structure\n");
    int r = qcow2_rebuild_refcounts(c->img, c->refs, c->refs_len);
    if (r < 0) {
        fprintf(stderr, "ERROR rebuilding refcount structure: %s\n", strerror(-r));
        res->check_errors++;
        return r;
    }
    res->corruptions_fixed += res->corruptions;
    res->corruptions = 0;
    c->res = &scratch;
    r = calculate(c);
    if (r == 0)
        r = compare_refcounts(c, c->fix);
    c->res = res;
    if (r == 0 && (scratch.corruptions || scratch.check_errors || c->rebuild))
        r = dimg_error(EIO, "%s: the rebuilt refcount structure is inconsistent",
                       c->img->filename);
    if (r < 0)
        res->check_errors++;
    return r;
}

static int
check_run(struct chk *c)
{
    struct qcow2_state *s = c->s;
    struct dimg_check *res = c->res;
    int r = calculate(c);
    if (r < 0)
        return r;
    /* Report without repairing first, so every problem is listed once as found. */
    struct dimg_check before = *res;
    compare_refcounts(c, 0);
    if (c->fix && c->rebuild) {
        if (!(c->fix & DIMG_CHECK_FIX_ERRORS)) {
            fprintf(stderr, "ERROR need to rebuild refcount structures\n");
            res->check_errors++;
            return dimg_error(EIO, "need to rebuild refcount structures");
        }
        if ((r = rebuild(c)) < 0)
            return r;
        if ((r = qcow2_rb_flush(c->img)) < 0)
            return r;
        c->rb_index = UINT64_MAX;
    } else if (c->fix && (res->leaks || res->corruptions)) {
        *res = before;
        compare_refcounts(c, c->fix);
        /* The OFLAG_COPIED pass reads refcounts from disk: write the repairs first. */
        if ((r = qcow2_rb_flush(c->img)) < 0)
            return r;
        c->rb_index = UINT64_MAX;
    }
    if ((r = check_oflag_copied(c, c->fix)) < 0)
        return r;
    res->image_end_offset = (int64_t)((c->highest + 1) << s->cluster_bits);
    if (c->fix)
        r = qcow2_flush(c->img);
    return r;
}

int
qcow2_check(struct dimg_image *img, unsigned fix, struct dimg_check *out)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (fix && !s->write_ready)
        return dimg_error(EROFS, "%s: image is not open for writing", img->filename);
    struct chk c = { .img = img, .s = s, .res = out, .fix = fix };
    pthread_mutex_lock(&s->lock);
    int r = check_run(&c);
    pthread_mutex_unlock(&s->lock);
    /* A repaired image is consistent again: drop the dirty (and, after -r all,
     * the corrupt) flag. */
    if (r == 0 && fix && out->corruptions <= out->corruptions_fixed)
        r = qcow2_clear_incompat(img, QCOW2_INCOMPAT_DIRTY |
                                          ((fix & DIMG_CHECK_FIX_ERRORS) ? QCOW2_INCOMPAT_CORRUPT : 0));
    free(c.refs);
    free(c.rb);
    free(c.table);
    free(c.reftable);
    free(c.l1);
    return r;
}
