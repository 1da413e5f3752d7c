/*
 * qcow2 persistent dirty bitmaps: the operations of `bitmap` and
 * `convert --bitmaps`.  They change the bitmaps in memory, which
 * qcow2_bitmaps_store() writes when the image is closed, except removal,
 * which rewrites the directory at once (as qemu does, so the clusters are
 * reused the same way).  Messages are qemu-img 7.2's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2-bitmap.h"
#include "util/checked.h"

static int
not_found(const char *name)
{
    return dimg_error(ENOENT, "Dirty bitmap '%s' not found", name);
}

static int
in_use(const char *name)
{
    return dimg_error(EBUSY, "Bitmap '%s' is inconsistent and cannot be used\n"
                             "Try block-dirty-bitmap-remove to delete this bitmap from disk",
                      name);
}

/* The usable bitmap called name of a writable image, or NULL after recording why not. */
static struct qcow2_bitmap *
usable(struct dimg_image *img, const char *name)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_bitmap *bm = bm_find(s->bitmaps, name);
    if (!bm) {
        not_found(name);
        return NULL;
    }
    if (bm->inconsistent) {
        in_use(name);
        return NULL;
    }
    if ((!bm->data && bm_load_data(img, bm) < 0) || bm_fit(img, bm) < 0)
        return NULL;
    return bm;
}

/* qemu's default: the cluster size, kept between 4 KiB and 64 KiB. */
static unsigned
default_gran_bits(const struct qcow2_state *s)
{
    return s->cluster_bits < 12 ? 12 : s->cluster_bits > 16 ? 16 : s->cluster_bits;
}

bool
qcow2_bitmap_can_store(const struct dimg_image *img)
{
    const struct qcow2_state *s = dimg_image_state(img);
    return s->version >= 3;
}

int
qcow2_bitmap_add(struct dimg_image *img, const char *name, uint32_t granularity, bool enabled)
{
    struct qcow2_state *s = dimg_image_state(img);
    unsigned gran_bits = granularity ? (unsigned)__builtin_ctz(granularity) : default_gran_bits(s);
    pthread_mutex_lock(&s->lock);
    int r = 0;
    const char *why;
    if (bm_find(s->bitmaps, name)) {
        r = dimg_error(EEXIST, "Bitmap already exists: %s", name);
    } else if ((why = bm_add_refusal(img, name, gran_bits))) {
        r = dimg_error(s->version < 3 ? ENOTSUP : EFBIG, "%s", why);
    } else if (!s->bitmaps && !(s->bitmaps = calloc(1, sizeof *s->bitmaps))) {
        r = dimg_error(ENOMEM, "out of memory");
    }
    struct qcow2_bitmaps *b = s->bitmaps;
    struct qcow2_bitmap *v = NULL;
    uint64_t bytes = bm_data_bytes(img->size, gran_bits);
    uint8_t *data = NULL;
    if (r == 0) {
        b->active = true;
        v = realloc(b->v, (b->n + 1) * sizeof *v);
        data = calloc(1, bytes ? (size_t)bytes : 1);
        char *copy = strdup(name);
        if (v)
            b->v = v;
        if (!v || !data || !copy) {
            free(data);
            free(copy);
            r = dimg_error(ENOMEM, "out of memory");
        } else {
            /* qemu keeps bitmaps newest first and stores new ones in that
             * order after those already on disk: insert before the other new ones. */
            size_t at = b->n;
            while (at > 0 && !b->v[at - 1].table_offset)
                at--;
            memmove(&b->v[at + 1], &b->v[at], (b->n - at) * sizeof *b->v);
            b->n++;
            b->v[at] = (struct qcow2_bitmap){
                .name = copy, .flags = enabled ? BME_AUTO : 0, .gran_bits = (uint8_t)gran_bits,
                .data = data, .covers = img->size,
            };
        }
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

int
qcow2_bitmap_remove(struct dimg_image *img, const char *name)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_bitmaps *b = s->bitmaps;
    struct qcow2_bitmap *bm = bm_find(b, name);
    if (!bm)
        return not_found(name);
    pthread_mutex_lock(&s->lock);
    struct qcow2_bitmap gone = *bm;
    size_t i = (size_t)(bm - b->v);
    memmove(&b->v[i], &b->v[i + 1], (b->n - i - 1) * sizeof *b->v);
    b->n--;
    int r = 0;
    if (gone.table_offset) {
        /* Stored: the directory loses it now, then its clusters are freed. */
        r = bm_write_dir_and_header(img);
        if (r == 0)
            r = bm_free_bitmap(img, &gone);
    }
    pthread_mutex_unlock(&s->lock);
    bm_entry_free(&gone);
    return r;
}

int
qcow2_bitmap_clear(struct dimg_image *img, const char *name)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_bitmap *bm = usable(img, name);
    if (!bm)
        return -dimg_get_errno();
    pthread_mutex_lock(&s->lock);
    memset(bm->data, 0, (size_t)bm_data_bytes(img->size, bm->gran_bits));
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int
qcow2_bitmap_set_enabled(struct dimg_image *img, const char *name, bool enabled)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_bitmap *bm = usable(img, name);
    if (!bm)
        return -dimg_get_errno();
    pthread_mutex_lock(&s->lock);
    bm->flags = enabled ? bm->flags | BME_AUTO : bm->flags & ~BME_AUTO;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int
qcow2_bitmap_merge(struct dimg_image *img, const char *name, struct dimg_image *src,
                   const char *src_name)
{
    struct qcow2_state *s = dimg_image_state(img);
    struct qcow2_bitmap *dst = usable(img, name), *from = NULL;
    if (!dst)
        return -dimg_get_errno();
    if (src->drv != img->drv)
        return not_found(src_name);
    struct qcow2_state *ss = dimg_image_state(src);
    if (ss != s)
        pthread_mutex_lock(&ss->lock);
    from = usable(src, src_name);
    int r = from ? 0 : -dimg_get_errno();
    if (r == 0 && src->size != img->size)
        r = dimg_error(EINVAL, "Bitmaps are of different sizes (destination size is %" PRIu64
                               ", source size is %" PRIu64 ") and can't be merged",
                       img->size, src->size);
    if (r == 0) {
        pthread_mutex_lock(&s->lock);
        bm_merge_bits(img, dst, from->data, from->gran_bits,
                      bm_data_bytes(src->size, from->gran_bits));
        pthread_mutex_unlock(&s->lock);
    }
    if (ss != s)
        pthread_mutex_unlock(&ss->lock);
    return r;
}
