/*
 * Growing a qcow2 image: a larger L1 table when the new size needs one
 * (written in full at the end of the file, counted, and only then made
 * current by the header), then the new size in the header.  A kill at any
 * point leaves either the old image or the new one, at worst with the
 * unused table leaked.
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

int
qcow2_truncate(struct dimg_image *img, uint64_t size, enum dimg_prealloc prealloc, unsigned flags)
{
    struct qcow2_state *s = dimg_image_state(img);
    (void)flags;
    if (size % 512)
        return dimg_error(EINVAL, "The new size must be a multiple of 512");
    if (size < img->size)
        return dimg_error(ENOTSUP, "qcow2: shrinking is not supported yet");
    if (prealloc != DIMG_PREALLOC_OFF)
        return dimg_error(ENOTSUP, "qcow2: preallocation when resizing is not supported yet");
    uint64_t per_l1 = (uint64_t)s->l2_entries << s->cluster_bits;
    if (size > INT64_MAX - per_l1)
        return dimg_error(EFBIG, "File too large");
    uint64_t need = (size + per_l1 - 1) / per_l1;
    if (need > QCOW2_MAX_L1_BYTES / 8)
        return dimg_error(EFBIG, "File too large");
    int r = 0;
    if (need > s->l1_size)
        r = grow_l1(img, need);
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
