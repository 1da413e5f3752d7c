/*
 * Public entry points for internal snapshots: argument and permission checks,
 * then the driver.  Formats without snapshots fail with the texts qemu-img
 * prints after "Could not <action> snapshot 'NAME': " for a raw image.
 */
#include <errno.h>

#include "drv/drv.h"

static int
check_writable(const dimg_image *img)
{
    if (!img->writable)
        return dimg_error(EROFS, "%s: image is read-only", img->filename);
    return 0;
}

DIMG_EXPORT int
dimg_snapshot_create(dimg_image *img, const char *name)
{
    if (!name)
        return dimg_error(EINVAL, "missing snapshot name");
    if (!img->drv->snapshot_create)
        return dimg_error(ENOTSUP, "Operation not supported");
    int r = check_writable(img);
    return r < 0 ? r : img->drv->snapshot_create(img, name);
}

DIMG_EXPORT int
dimg_snapshot_apply(dimg_image *img, const char *name_or_id)
{
    if (!name_or_id)
        return dimg_error(EINVAL, "missing snapshot name");
    if (!img->drv->snapshot_goto)
        return dimg_error(ENOTSUP, "Block driver does not support snapshots");
    int r = check_writable(img);
    return r < 0 ? r : img->drv->snapshot_goto(img, name_or_id);
}

DIMG_EXPORT int
dimg_snapshot_delete(dimg_image *img, const char *name_or_id)
{
    if (!name_or_id)
        return dimg_error(EINVAL, "missing snapshot name");
    if (!img->drv->snapshot_delete)
        return dimg_error(ENOENT, "snapshot not found");
    int r = check_writable(img);
    return r < 0 ? r : img->drv->snapshot_delete(img, name_or_id);
}

DIMG_EXPORT int
dimg_snapshot_load(dimg_image *img, const char *id, const char *name)
{
    if (!img->drv->snapshot_load)
        return dimg_error(ENOTSUP, "Block format '%s' used by device '' does not support "
                          "temporarily loading internal snapshots", img->drv->name);
    if (img->writable)
        return dimg_error(EINVAL, "Device is not readonly");
    if (!id && !name)
        return dimg_error(ENOENT, "Can't find snapshot");
    return img->drv->snapshot_load(img, id, name);
}
