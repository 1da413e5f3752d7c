/*
 * Persistent dirty bitmaps: the public calls.  They check what does not
 * depend on the format (names, granularity, read-only handles) and hand the
 * rest to the driver.  Messages are qemu's, since qemu-img prints them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "drv/drv.h"

DIMG_EXPORT int
dimg_bitmap_supported(const dimg_image *img)
{
    const struct dimg_driver *d = img->drv;
    return d->bitmap_add && (!d->bitmap_can_store || d->bitmap_can_store(img));
}

DIMG_EXPORT void
dimg_bitmap_list_free(struct dimg_bitmap_info *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++)
        free(list[i].name);
    free(list);
}

DIMG_EXPORT int
dimg_bitmap_list(dimg_image *img, struct dimg_bitmap_info **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    if (!img->drv->bitmap_list)
        return 0;
    return img->drv->bitmap_list(img, out, count);
}

static int
not_found(const char *name)
{
    return dimg_error(ENOENT, "Dirty bitmap '%s' not found", name);
}

/* Common checks of the modifying calls; 1: the format has no bitmaps. */
static int
check_modify(dimg_image *img, const char *name, bool supported)
{
    if (!name)
        return dimg_error(EINVAL, "no bitmap name given");
    if (!img->writable)
        return dimg_error(EROFS, "%s: image is read-only", img->filename);
    return supported ? 0 : 1;
}

DIMG_EXPORT int
dimg_bitmap_add(dimg_image *img, const char *name, uint64_t granularity, int enabled)
{
    int r = check_modify(img, name, img->drv->bitmap_add != NULL);
    if (r < 0)
        return r;
    if (!name[0])
        return dimg_error(EINVAL, "Bitmap name cannot be empty");
    if (granularity && (granularity < 512 || (granularity & (granularity - 1))))
        return dimg_error(EINVAL, "Granularity must be power of 2 and at least 512");
    if (r == 1)
        return dimg_error(ENOSYS, "Operation not supported");
    if (granularity > UINT32_MAX)
        return dimg_error(EFBIG, "Granularity exceeds maximum (2147483648 bytes)");
    return img->drv->bitmap_add(img, name, (uint32_t)granularity, enabled != 0);
}

DIMG_EXPORT int
dimg_bitmap_remove(dimg_image *img, const char *name)
{
    int r = check_modify(img, name, img->drv->bitmap_remove != NULL);
    return r ? (r < 0 ? r : not_found(name)) : img->drv->bitmap_remove(img, name);
}

DIMG_EXPORT int
dimg_bitmap_clear(dimg_image *img, const char *name)
{
    int r = check_modify(img, name, img->drv->bitmap_clear != NULL);
    return r ? (r < 0 ? r : not_found(name)) : img->drv->bitmap_clear(img, name);
}

DIMG_EXPORT int
dimg_bitmap_set_enabled(dimg_image *img, const char *name, int enabled)
{
    int r = check_modify(img, name, img->drv->bitmap_set_enabled != NULL);
    return r ? (r < 0 ? r : not_found(name))
             : img->drv->bitmap_set_enabled(img, name, enabled != 0);
}

DIMG_EXPORT int
dimg_bitmap_merge(dimg_image *img, const char *name, dimg_image *src, const char *src_name)
{
    int r = check_modify(img, name, img->drv->bitmap_merge != NULL);
    if (r)
        return r < 0 ? r : not_found(name);
    if (!src || !src_name)
        return dimg_error(EINVAL, "no source bitmap given");
    return img->drv->bitmap_merge(img, name, src, src_name);
}
