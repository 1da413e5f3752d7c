/*
 * Rebuild of the refcount structure (`check -r all` when stored refcounts
 * are missing or the refcount table itself is damaged).
 *
 * The check has counted every reference; new refcount blocks holding those
 * counts, and a new refcount table, are written after the last used cluster,
 * and only then does the header switch to them.  A crash before the switch
 * leaves the old structure in place; after it, the old table and blocks are
 * merely leaked (the check that follows repairs that).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2.h"
#include "util/endian.h"

/* Clusters in use: counted by the check, or taken by the new structure. */
struct space {
    const uint32_t *refs;
    uint64_t n_refs;
    uint8_t *taken;      /* new allocations, one byte per cluster below cap */
    uint64_t cap;
    uint64_t extent;     /* one past the highest cluster in use */
};

static bool
in_use(const struct space *sp, uint64_t i)
{
    return (i < sp->n_refs && sp->refs[i]) || (i < sp->cap && sp->taken[i]);
}

/* First run of n free clusters, lowest first (holes left by freed clusters are reused). */
static int
take_run(struct space *sp, uint64_t n, uint64_t *out)
{
    uint64_t start = 0, len = 0;
    for (uint64_t i = 0; len < n; i++) {
        if (i >= sp->cap)
            return -ENOSPC;
        if (in_use(sp, i)) {
            len = 0;
            start = i + 1;
        } else {
            len++;
        }
    }
    memset(sp->taken + start, 1, n);
    if (start + n > sp->extent)
        sp->extent = start + n;
    *out = start;
    return 0;
}

int
qcow2_rebuild_refcounts(struct dimg_image *img, const uint32_t *refs, uint64_t n_refs)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint64_t per_block = ((uint64_t)s->cluster_size * 8) >> s->refcount_order;
    uint64_t max_tclusters = QCOW2_MAX_REFTABLE_BYTES >> s->cluster_bits;
    struct space sp = { .refs = refs, .n_refs = n_refs };
    uint64_t *boff = NULL, blocks = 0, tclusters = 0, tstart = 0;
    uint8_t *table = NULL, *block = NULL;
    int r = 0;
    while (sp.extent < n_refs && refs[n_refs - 1 - sp.extent] == 0)
        sp.extent++;
    sp.extent = n_refs - sp.extent;
    /* Every new cluster is a block or table cluster, so this bounds where they can land. */
    sp.cap = n_refs + max_tclusters + max_tclusters * (s->cluster_size / 8) / per_block + 2;
    sp.taken = calloc(sp.cap, 1);
    boff = calloc(max_tclusters * (s->cluster_size / 8) + 1, sizeof *boff);
    if (!sp.taken || !boff) {
        r = dimg_error(ENOMEM, "out of memory");
        goto out;
    }
    /* Blocks for everything in use, then the table; repeat while they extend the range. */
    for (;;) {
        uint64_t nb = (sp.extent + per_block - 1) / per_block;
        uint64_t nt = (nb * 8 + s->cluster_size - 1) >> s->cluster_bits;
        if (nt > max_tclusters) {
            r = dimg_error(EFBIG, "%s: refcount table would exceed %u bytes", img->filename,
                           QCOW2_MAX_REFTABLE_BYTES);
            goto out;
        }
        if (nb == blocks && nt == tclusters)
            break;
        for (; blocks < nb; blocks++)
            if ((r = take_run(&sp, 1, &boff[blocks])) < 0)
                goto out;
        if (nt != tclusters) {
            memset(sp.taken + tstart, 0, tclusters);
            tclusters = nt;
            if ((r = take_run(&sp, tclusters, &tstart)) < 0)
                goto out;
        }
    }
    table = calloc(tclusters, s->cluster_size);
    block = malloc(s->cluster_size);
    if (!table || !block) {
        r = dimg_error(ENOMEM, "out of memory");
        goto out;
    }
    for (uint64_t bi = 0; bi < blocks; bi++) {
        memset(block, 0, s->cluster_size);
        for (uint64_t j = 0; j < per_block; j++) {
            uint64_t cl = bi * per_block + j;
            uint64_t v = cl < n_refs && refs[cl] ? refs[cl] : cl < sp.cap && sp.taken[cl];
            if (v)
                qcow2_rb_entry_set(s->refcount_order, block, j, v);
        }
        uint64_t off = boff[bi] << s->cluster_bits;
        if ((r = io_pwrite(img->file, block, s->cluster_size, off)) < 0)
            goto out;
        store_be64(table + bi * 8, off);
    }
    uint64_t toff = tstart << s->cluster_bits;
    if ((r = io_pwrite(img->file, table, tclusters << s->cluster_bits, toff)) < 0 ||
        (r = qcow2_barrier(img)) < 0)
        goto out;
    uint8_t h[12];
    store_be64(h, toff);
    store_be32(h + 8, (uint32_t)tclusters);
    if ((r = io_pwrite(img->file, h, sizeof h, 48)) < 0 || (r = qcow2_barrier(img)) < 0)
        goto out;
    s->refcount_table_offset = toff;
    s->refcount_table_clusters = (uint32_t)tclusters;
    r = qcow2_refcount_reload(img);
out:
    free(table);
    free(block);
    free(sp.taken);
    free(boff);
    return r;
}
