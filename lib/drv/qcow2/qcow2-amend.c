/*
 * qcow2 amend (qemu-img amend -o ...): compat 0.10 <-> 1.1, refcount_bits,
 * lazy_refcounts, data_file / data_file_raw and size; backing_file and
 * backing_fmt only when they name what the image already has.  Spec:
 * shared/specs/qemu-qcow2.txt.
 *
 * The changes run in the order qemu-img 7.2 applies them, each one written
 * before the next is even checked (observed: a later step that fails leaves
 * the earlier ones in place): upgrade to v3, refcount width, data file,
 * backing file check, lazy refcounts, size, downgrade to v2.
 *
 * Crash safety: every step either rewrites the header cluster in one write
 * once everything it points at is on disk (qcow2_header_write), or goes
 * through the ordered metadata flush of the write path.  The refcount width
 * change writes a complete new refcount structure (counted as allocated by
 * the old one) before the header switches to it, and frees the old one only
 * afterwards: a kill at any point leaves leaks at worst.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2.h"
#include "util/checked.h"
#include "util/endian.h"

const struct dimg_optdesc qcow2_amend_opts[] = {
    { "backing_file", DIMG_OPT_STRING, "File name of a base image", NULL },
    { "backing_fmt", DIMG_OPT_STRING, "Image format of the base image", NULL },
    { "compat", DIMG_OPT_STRING, "Compatibility level (v2 [0.10] or v3 [1.1])", NULL },
    { "data_file", DIMG_OPT_STRING, "File name of an external data file", NULL },
    { "data_file_raw", DIMG_OPT_BOOL, "The external data file must stay valid as a raw image",
      NULL },
    { "encrypt.iter-time", DIMG_OPT_NUMBER, "Time to spend in PBKDF in milliseconds", NULL },
    { "encrypt.keyslot", DIMG_OPT_NUMBER, "Select a single keyslot to modify explicitly", NULL },
    { "encrypt.new-secret", DIMG_OPT_STRING,
      "New secret to set in the matching keyslots. Empty string to erase", NULL },
    { "encrypt.old-secret", DIMG_OPT_STRING, "Select all keyslots that match this password",
      NULL },
    { "encrypt.state", DIMG_OPT_STRING,
      "Select new state of affected keyslots (active/inactive)", NULL },
    { "lazy_refcounts", DIMG_OPT_BOOL, "Postpone refcount updates", NULL },
    { "refcount_bits", DIMG_OPT_NUMBER, "Width of a reference count entry in bits", NULL },
    { "size", DIMG_OPT_SIZE, "Virtual disk size", NULL },
    { NULL, 0, NULL, NULL },
};

/* What the option list asks for; fields not given keep the image's values. */
struct amend_req {
    uint32_t version;
    uint32_t refcount_order;
    bool lazy;
    bool set_data_file;
    const char *data_file;
    bool data_raw;
    bool backing_given;
    const char *backing_file, *backing_fmt;
    uint64_t size;             /* 0: unchanged */
};

struct progress {
    void (*fn)(double percent, void *opaque);
    void *opaque;
};

static void
report(const struct progress *p, double percent)
{
    if (p->fn)
        p->fn(percent, p->opaque);
}

/* Checks qemu-img makes while reading the options, before changing anything. */
static int
parse_request(struct dimg_image *img, const struct dimg_opts *o, struct amend_req *q)
{
    struct qcow2_state *s = dimg_image_state(img);
    const char *v;
    uint64_t n;
    memset(q, 0, sizeof *q);
    q->version = s->version;
    q->refcount_order = s->refcount_order;
    q->lazy = s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS;
    q->data_raw = s->autoclear & QCOW2_AUTOCLEAR_DATA_RAW;
    for (size_t i = 0; i < o->n; i++) {
        if (strncmp(o->v[i].key, "encrypt.", 8) != 0)
            continue;
        if (!s->crypt_method)
            return dimg_error(EINVAL, "Can't amend encryption options - encryption not present");
        return dimg_error(ENOTSUP, "Changing encryption options is not supported yet");
    }
    if ((v = opts_get(o, "compat"))) {
        if (!strcmp(v, "0.10") || !strcmp(v, "v2"))
            q->version = 2;
        else if (!strcmp(v, "1.1") || !strcmp(v, "v3"))
            q->version = 3;
        else
            return dimg_error(EINVAL, "Unknown compatibility level %s", v);
    }
    q->backing_file = opts_get(o, "backing_file");
    q->backing_fmt = opts_get(o, "backing_fmt");
    q->backing_given = q->backing_file || q->backing_fmt;
    if ((v = opts_get(o, "data_file"))) {
        if (!qcow2_has_data_file(s))
            return dimg_error(EINVAL, "data-file can only be set for images that use an "
                                      "external data file");
        q->set_data_file = true;
        q->data_file = v;
    }
    if (opts_get_bool(o, "data_file_raw", q->data_raw, &q->data_raw) == 0 && q->data_raw &&
        !(s->autoclear & QCOW2_AUTOCLEAR_DATA_RAW))
        return dimg_error(EINVAL, "data-file-raw cannot be set on existing images");
    opts_get_bool(o, "lazy_refcounts", q->lazy, &q->lazy);
    if ((v = opts_get(o, "refcount_bits"))) {
        if (parse_number(v, &n) < 0)
            return dimg_error(EINVAL, "Parameter 'refcount_bits' expects a number");
        if (!is_power_of_2(n) || n > 64)
            return dimg_error(EINVAL, "Refcount width must be a power of two and may not "
                                      "exceed 64 bits");
        q->refcount_order = (uint32_t)__builtin_ctzll(n);
    }
    opts_get_size(o, "size", 0, &q->size);
    return 0;
}

/* ---- first-fit allocation ------------------------------------------------ */

/*
 * Allocate n contiguous clusters in the first free run at or after *cursor
 * (qemu-img fills holes before growing the file; doing the same gives the
 * same layout).  *cursor only ever points at or before the first free cluster.
 */
static int
alloc_first_fit(struct dimg_image *img, uint64_t n, uint64_t *cursor, uint64_t *out)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t end = s->alloc_next >> s->cluster_bits;
    uint64_t start = *cursor, len = 0, first_free = UINT64_MAX;
    int r;
    for (uint64_t c = *cursor; len < n; c++) {
        uint64_t rc = 0;
        if (c < end && (r = qcow2_refcount_get(img, c, &rc)) < 0)
            return r;
        if (rc) {
            start = c + 1;
            len = 0;
        } else {
            if (first_free == UINT64_MAX)
                first_free = c;
            len++;
        }
    }
    /* Past the allocation pointer: move it first, so that a refcount block
     * created for these clusters does not land on them. */
    if (start + n > end)
        s->alloc_next = (start + n) << s->cluster_bits;
    for (uint64_t i = 0; i < n; i++)
        if ((r = qcow2_refcount_update(img, start + i, 1, 0)) < 0)
            return r;
    *cursor = first_free == start ? start + n : first_free;
    *out = start << s->cluster_bits;
    return 0;
}

/* ---- walking every L2 table ---------------------------------------------- */

typedef int (*l2_visitor)(struct dimg_image *img, uint64_t l2_off, void *opaque);

static int
visit_l1(struct dimg_image *img, const uint64_t *l1, uint32_t l1_size, l2_visitor fn,
         void *opaque, const struct progress *p, double from, double span)
{
    struct qcow2_state *s = dimg_image_state(img);
    int64_t fsize = io_get_size(img->file);
    if (fsize < 0)
        return (int)fsize;
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2_off = l1[i] & QCOW2_OFFSET_MASK;
        if (!l2_off)
            continue;
        if ((l2_off & (s->cluster_size - 1)) ||
            !range_within(l2_off, s->cluster_size, (uint64_t)fsize))
            return dimg_error(EBADMSG, "%s: L2 table offset %#" PRIx64 " invalid",
                              img->filename, l2_off);
        int r = fn(img, l2_off, opaque);
        if (r != 0)
            return r; /* an error, or the visitor found what it looked for */
        report(p, from + span * (i + 1) / l1_size);
    }
    return 0;
}

/* fn for the L2 tables of the active L1 and of every snapshot; progress from..from+span. */
static int
visit_all_l2(struct dimg_image *img, l2_visitor fn, void *opaque, const struct progress *p,
             double from, double span)
{
    struct qcow2_state *s = dimg_image_state(img);
    double part = span / (s->nsnap + 1);
    int r = visit_l1(img, s->l1, s->l1_size, fn, opaque, p, from, part);
    for (uint32_t i = 0; i < s->nsnap && r == 0; i++) {
        uint64_t *l1;
        if ((r = qcow2_snapshot_read_l1(img, &s->snaps[i], &l1)) < 0)
            break;
        r = visit_l1(img, l1, s->snaps[i].l1_size, fn, opaque, p, from + part * (i + 1), part);
        free(l1);
    }
    return r;
}

static int
find_compressed(struct dimg_image *img, uint64_t l2_off, void *opaque)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_l2_slot *slot;
    int r = qcow2_l2_slot_get(img, l2_off, false, &slot);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < s->l2_entries; i++) {
        if (slot->table[(size_t)i * (s->l2_entry_size / 8)] & QCOW2_OFLAG_COMPRESSED) {
            *(bool *)opaque = true;
            return 1; /* stop: one is enough */
        }
    }
    return 0;
}

/* ---- compat=0.10: zero clusters ------------------------------------------- */

struct expand {
    uint64_t cursor;      /* first-fit allocation cursor */
    uint64_t file_size;
};

static int
zero_host_cluster(struct dimg_image *img, uint64_t host)
{
    struct qcow2_state *s = dimg_image_state(img);
    return io_zero_or_write(img->file, host, s->cluster_size, false);
}

/*
 * Version 2 has no zero flag.  A zero cluster with host storage keeps it,
 * zero-filled; one without reads as zeros by being unallocated when there
 * is no backing file, and otherwise gets a zero-filled cluster of its own.
 * An L2 table shared by several L1 tables is changed in place, so the new
 * cluster counts every one of them.
 */
static int
expand_zero_clusters(struct dimg_image *img, uint64_t l2_off, void *opaque)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct expand *ex = opaque;
    struct qcow2_l2_slot *slot;
    uint64_t l2_rc;
    bool dirty = false;
    int r = qcow2_refcount_get(img, l2_off >> s->cluster_bits, &l2_rc);
    if (r == 0 && l2_rc == 0)
        r = dimg_error(EBADMSG, "%s: L2 table at %#" PRIx64 " has refcount 0", img->filename,
                       l2_off);
    for (uint32_t i = 0; r == 0 && i < s->l2_entries; i++) {
        /* Reading and allocating may evict the table: look it up each time. */
        if ((r = qcow2_l2_slot_get(img, l2_off, false, &slot)) < 0)
            break;
        uint64_t e = slot->table[i];
        if ((e & QCOW2_OFLAG_COMPRESSED) || !(e & QCOW2_OFLAG_ZERO))
            continue;
        uint64_t host = e & QCOW2_OFFSET_MASK;
        if (host) {
            if ((host & (s->cluster_size - 1)) || host < s->cluster_size ||
                !range_within(host, s->cluster_size, ex->file_size))
                return dimg_error(EBADMSG, "%s: cluster offset %#" PRIx64 " invalid",
                                  img->filename, host);
            e &= ~QCOW2_OFLAG_ZERO;
        } else if (!img->backing_filename) {
            e = 0;
        } else {
            if ((r = alloc_first_fit(img, 1, &ex->cursor, &host)) < 0 ||
                (l2_rc > 1 && (r = qcow2_refcount_update(img, host >> s->cluster_bits,
                                                         (int64_t)l2_rc - 1, 0)) < 0))
                break;
            e = host | (l2_rc == 1 ? QCOW2_OFLAG_COPIED : 0);
        }
        if (host && (r = zero_host_cluster(img, host)) < 0)
            break;
        if ((r = qcow2_l2_slot_get(img, l2_off, false, &slot)) < 0)
            break;
        slot->table[i] = e;
        slot->dirty = true;
        dirty = true;
    }
    /* The zeros must be on disk before an L2 entry without the zero flag is. */
    if (r == 0 && dirty && (r = qcow2_barrier(img)) == 0)
        r = qcow2_flush(img);
    return r;
}

static int
downgrade(struct dimg_image *img, const struct progress *p)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (s->refcount_order != 4)
        return dimg_error(ENOTSUP, "compat=0.10 requires refcount_bits=16");
    if (qcow2_has_data_file(s))
        return dimg_error(ENOTSUP, "Cannot downgrade an image with a data file");
    uint64_t features = s->incompat & ~(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_COMPRESSION);
    if (features)
        return dimg_error(ENOTSUP, "Cannot downgrade an image with incompatible features %#"
                          PRIx64 " set", features);
    int r = 0;
    if (s->compression == QCOW2_COMPRESS_ZSTD) {
        bool found = false;
        r = visit_all_l2(img, find_compressed, &found, &(struct progress){ 0 }, 0, 0);
        if (r < 0)
            return r;
        if (found)
            return dimg_error(ENOTSUP, "Cannot downgrade an image with zstd compression type "
                                       "and existing compressed clusters");
    }
    int64_t fsize = io_get_size(img->file);
    if (fsize < 0)
        return (int)fsize;
    struct expand ex = { .cursor = 0, .file_size = (uint64_t)fsize };
    if ((r = visit_all_l2(img, expand_zero_clusters, &ex, p, 0, 100)) < 0 ||
        (r = qcow2_flush(img)) < 0)
        return r;
    report(p, 100);
    uint64_t incompat = s->incompat, compat = s->compat, autoclear = s->autoclear;
    enum qcow2_compression compression = s->compression;
    s->version = 2;
    s->incompat = s->compat = s->autoclear = 0;
    s->compression = QCOW2_COMPRESS_ZLIB;
    s->header_length = 72;
    if ((r = qcow2_header_write(img)) < 0) {
        s->version = 3;
        s->incompat = incompat;
        s->compat = compat;
        s->autoclear = autoclear;
        s->compression = compression;
        s->header_length = 112;
    }
    return r;
}

/* ---- refcount_bits ---------------------------------------------------------- */

/* The new refcount structure while it is laid out. */
struct new_rc {
    unsigned order;
    uint64_t per_block;         /* refcounts per new block */
    uint64_t n_idx, cap;        /* table entries in use / allocated below */
    uint8_t *used;              /* per entry: some cluster in its range is in use */
    uint64_t *block;            /* per entry: host offset of its new block, 0: none yet */
    uint64_t table_off, table_clusters;
    uint64_t cursor;
};

static int
mark_used(struct new_rc *nr, uint64_t cluster)
{
    uint64_t idx = cluster / nr->per_block;
    if (idx >= nr->cap) {
        uint64_t cap = max_u64(idx + 1, nr->cap * 2);
        if (cap * 8 > QCOW2_MAX_REFTABLE_BYTES)
            return dimg_error(EFBIG, "refcount table would exceed %u bytes",
                              QCOW2_MAX_REFTABLE_BYTES);
        uint8_t *u = realloc(nr->used, cap);
        uint64_t *b = u ? realloc(nr->block, cap * 8) : NULL;
        if (u)
            nr->used = u;
        if (!b)
            return dimg_error(ENOMEM, "out of memory");
        nr->block = b;
        memset(nr->used + nr->cap, 0, cap - nr->cap);
        memset(nr->block + nr->cap, 0, (cap - nr->cap) * 8);
        nr->cap = cap;
    }
    nr->used[idx] = 1;
    nr->n_idx = max_u64(nr->n_idx, idx + 1);
    return 0;
}

/* Mark the clusters in use among [from, to), checking they fit the new width. */
static int
scan_refcounts(struct dimg_image *img, struct new_rc *nr, uint64_t from, uint64_t to)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t old_per_block = ((uint64_t)s->cluster_size * 8) >> s->refcount_order;
    uint64_t max = nr->order == 6 ? UINT64_MAX : (1ull << (1u << nr->order)) - 1;
    for (uint64_t c = from; c < to; c++) {
        uint64_t ti = c / old_per_block, rc;
        if (ti >= s->reftable_entries)
            break;
        if (!(s->reftable[ti] & QCOW2_OFFSET_MASK)) {
            c = (ti + 1) * old_per_block - 1; /* nothing counted in this block's range */
            continue;
        }
        int r = qcow2_refcount_get(img, c, &rc);
        if (r < 0)
            return r;
        if (rc > max)
            return dimg_error(EINVAL, "Cannot decrease refcount entry width to %u bits: "
                              "Cluster at offset %#" PRIx64 " has a refcount of %" PRIu64,
                              1u << nr->order, c << s->cluster_bits, rc);
        if (rc && (r = mark_used(nr, c)) < 0)
            return r;
    }
    return 0;
}

/* Allocate (counted by the old structure) and account for it in the new one. */
static int
alloc_for_new(struct dimg_image *img, struct new_rc *nr, uint64_t n, uint64_t *off)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t before = s->alloc_next;
    int r = alloc_first_fit(img, n, &nr->cursor, off);
    for (uint64_t i = 0; i < n && r == 0; i++)
        r = mark_used(nr, (*off >> s->cluster_bits) + i);
    /* The old structure may have grown a block of its own at the end. */
    uint64_t mine_end = *off + (n << s->cluster_bits);
    if (r == 0 && s->alloc_next > max_u64(before, mine_end))
        r = scan_refcounts(img, nr, max_u64(before, mine_end) >> s->cluster_bits,
                           s->alloc_next >> s->cluster_bits);
    return r;
}

/*
 * Lay out the new blocks and table as qemu-img does: blocks one at a time,
 * first fit, until every range in use has one; then the table in the first
 * free run; a table that turns out too small is freed and placed again.
 */
static int
layout_new_refcounts(struct dimg_image *img, struct new_rc *nr)
{
    struct qcow2_state *s = dimg_image_state(img);
    int r = scan_refcounts(img, nr, 0, s->alloc_next >> s->cluster_bits);
    for (;;) {
        bool added = false;
        for (uint64_t i = 0; i < nr->n_idx && r == 0; i++) {
            if (nr->used[i] && !nr->block[i]) {
                r = alloc_for_new(img, nr, 1, &nr->block[i]);
                added = true;
            }
        }
        if (r < 0)
            return r;
        if (added)
            continue;
        uint64_t need = (nr->n_idx * 8 + s->cluster_size - 1) >> s->cluster_bits;
        if (need << s->cluster_bits > QCOW2_MAX_REFTABLE_BYTES)
            return dimg_error(EFBIG, "%s: refcount table would exceed %u bytes", img->filename,
                              QCOW2_MAX_REFTABLE_BYTES);
        if (need == nr->table_clusters)
            return 0;
        for (uint64_t i = 0; i < nr->table_clusters && r == 0; i++)
            r = qcow2_refcount_update(img, (nr->table_off >> s->cluster_bits) + i, -1, 0);
        if (r < 0)
            return r;
        if (nr->table_clusters)
            nr->cursor = min_u64(nr->cursor, nr->table_off >> s->cluster_bits);
        nr->table_clusters = need;
        if ((r = alloc_for_new(img, nr, need, &nr->table_off)) < 0)
            return r;
    }
    return r;
}

static int
write_new_refcounts(struct dimg_image *img, const struct new_rc *nr, const struct progress *p)
{
    struct qcow2_state *s = dimg_image_state(img);
    size_t cs = s->cluster_size;
    uint8_t *buf = malloc(cs), *table = calloc(nr->table_clusters, cs);
    int r = buf && table ? 0 : dimg_error(ENOMEM, "out of memory");
    for (uint64_t i = 0; i < nr->n_idx && r == 0; i++) {
        if (!nr->block[i])
            continue;
        memset(buf, 0, cs);
        for (uint64_t j = 0; j < nr->per_block && r == 0; j++) {
            uint64_t rc;
            if ((r = qcow2_refcount_get(img, i * nr->per_block + j, &rc)) == 0 && rc)
                qcow2_rb_entry_set(nr->order, buf, j, rc);
        }
        if (r == 0)
            r = io_pwrite(img->file, buf, cs, nr->block[i]);
        store_be64(table + i * 8, nr->block[i]);
        report(p, 100.0 * (i + 1) / nr->n_idx);
    }
    if (r == 0)
        r = io_pwrite(img->file, table, nr->table_clusters * cs, nr->table_off);
    free(buf);
    free(table);
    return r;
}

static int
change_refcount_order(struct dimg_image *img, uint32_t order, const struct progress *p)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct new_rc nr = { .order = order, .per_block = ((uint64_t)s->cluster_size * 8) >> order,
                         .cursor = 0 };
    uint64_t *old_blocks = NULL;
    int r = qcow2_flush(img);
    if (r == 0)
        r = layout_new_refcounts(img, &nr);
    /* The old structure counts the new clusters on disk before they are written. */
    if (r == 0)
        r = qcow2_flush(img);
    if (r == 0)
        r = write_new_refcounts(img, &nr, p);
    if (r == 0)
        r = qcow2_barrier(img);
    if (r < 0)
        goto out;

    uint64_t n_old = s->reftable_entries;
    if (!(old_blocks = malloc(n_old * 8))) {
        r = dimg_error(ENOMEM, "out of memory");
        goto out;
    }
    memcpy(old_blocks, s->reftable, n_old * 8);
    uint32_t old_order = s->refcount_order, old_tclusters = s->refcount_table_clusters;
    uint64_t old_toff = s->refcount_table_offset;
    s->refcount_order = order;
    s->refcount_table_offset = nr.table_off;
    s->refcount_table_clusters = (uint32_t)nr.table_clusters;
    if ((r = qcow2_refcount_reload(img)) == 0 && (r = qcow2_header_write(img)) == 0) {
        /* Switched: the old table and blocks are now merely leaked.  Free them. */
        for (uint64_t i = 0; i < old_tclusters && r == 0; i++)
            r = qcow2_refcount_update(img, (old_toff >> s->cluster_bits) + i, -1, 0);
        for (uint64_t i = 0; i < n_old && r == 0; i++)
            if (old_blocks[i] & QCOW2_OFFSET_MASK)
                r = qcow2_refcount_update(img, (old_blocks[i] & QCOW2_OFFSET_MASK) >>
                                                   s->cluster_bits, -1, 0);
        if (r == 0)
            r = qcow2_flush(img);
        goto out;
    }
    /* The header still names the old structure: go back to it. */
    s->refcount_order = old_order;
    s->refcount_table_offset = old_toff;
    s->refcount_table_clusters = old_tclusters;
    qcow2_refcount_reload(img);
out:
    free(old_blocks);
    free(nr.used);
    free(nr.block);
    return r;
}

/* ---- the amend callback ------------------------------------------------------- */

static bool
same_string(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int
set_header_state(struct dimg_image *img, uint64_t compat, uint64_t autoclear,
                 const char *data_file)
{
    struct qcow2_state *s = dimg_image_state(img);
    char *name = data_file && data_file[0] ? strdup(data_file) : NULL;
    if (data_file && data_file[0] && !name)
        return dimg_error(ENOMEM, "out of memory");
    uint64_t old_compat = s->compat, old_autoclear = s->autoclear;
    char *old_name = s->data_file_name;
    s->compat = compat;
    s->autoclear = autoclear;
    if (data_file)
        s->data_file_name = name;
    int r = qcow2_header_write(img);
    if (r < 0) {
        s->compat = old_compat;
        s->autoclear = old_autoclear;
        s->data_file_name = old_name;
        if (data_file)
            free(name);
    } else if (data_file) {
        free(old_name);
    }
    return r;
}

static int
upgrade(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    /* Version 3 wants the snapshot table's disk size field (16 bytes of extra data). */
    for (uint32_t i = 0; i < s->nsnap; i++)
        if (s->snaps[i].extra_len < 16)
            return dimg_error(ENOTSUP, "%s: upgrading an image whose snapshots lack the "
                                       "v3 extra data is not supported yet", img->filename);
    s->version = 3;
    s->header_length = 112;
    int r = qcow2_header_write(img);
    if (r < 0) {
        s->version = 2;
        s->header_length = 72;
    }
    return r;
}

static int
amend_steps(struct dimg_image *img, const struct amend_req *q, const struct progress *p)
{
    struct qcow2_state *s = dimg_image_state(img);
    int r;
    if (q->version > s->version && (r = upgrade(img)) < 0)
        return r;
    if (q->refcount_order != s->refcount_order) {
        if (q->version < 3 && q->refcount_order != 4)
            return dimg_error(EINVAL, "Refcount widths other than 16 bits require "
                                      "compatibility level 1.1 or above (use compat=1.1 or "
                                      "greater)");
        if ((r = change_refcount_order(img, q->refcount_order, p)) < 0)
            return r;
    }
    /* qemu-img rewrites the header at this point whether or not the data
     * file settings changed (a sparse header cluster comes out allocated). */
    uint64_t autoclear = q->data_raw ? s->autoclear : s->autoclear & ~QCOW2_AUTOCLEAR_DATA_RAW;
    if ((r = set_header_state(img, s->compat, autoclear,
                              q->set_data_file ? q->data_file : NULL)) < 0)
        return r;
    if (q->backing_given && (!same_string(q->backing_file, img->backing_filename) ||
                             !same_string(q->backing_fmt, img->backing_format)))
        return dimg_error(ENOTSUP, "Cannot amend the backing file\n"
                                   "You can use 'qemu-img rebase' instead.");
    if (q->lazy != !!(s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS)) {
        if (q->lazy && q->version < 3)
            return dimg_error(EINVAL, "Lazy refcounts only supported with compatibility level "
                                      "1.1 and above (use compat=1.1 or greater)");
        uint64_t compat = q->lazy ? s->compat | QCOW2_COMPAT_LAZY_REFCOUNTS
                                  : s->compat & ~QCOW2_COMPAT_LAZY_REFCOUNTS;
        if ((r = set_header_state(img, compat, s->autoclear, NULL)) < 0)
            return r;
    }
    if (q->size && q->size != img->size &&
        (r = qcow2_truncate(img, q->size, DIMG_PREALLOC_OFF, DIMG_TRUNCATE_SHRINK)) < 0)
        return r;
    if (q->version < s->version && (r = downgrade(img, p)) < 0)
        return r;
    return 0;
}

int
qcow2_amend(struct dimg_image *img, const struct dimg_opts *opts, bool force,
            void (*progress)(double percent, void *opaque), void *opaque)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct progress p = { .fn = progress, .opaque = opaque };
    struct amend_req q;
    (void)force; /* only matters for encryption key slots */
    int r = parse_request(img, opts, &q);
    if (r < 0)
        return r;
    pthread_mutex_lock(&s->lock);
    r = amend_steps(img, &q, &p);
    pthread_mutex_unlock(&s->lock);
    return r;
}
