/* Backing file names: resolution, and rewriting an image's reference. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "drv/drv.h"

/*
 * A relative backing name is relative to the directory of the image that
 * names it, not to the current directory (qemu-img's rule).  Protocol-style
 * names ("nbd:...", "json:...") are returned unchanged.
 */
char *
backing_resolve(const char *image_filename, const char *backing)
{
    if (backing[0] == '/' || strchr(backing, ':') != NULL)
        return strdup(backing);
    const char *slash = strrchr(image_filename, '/');
    if (!slash)
        return strdup(backing);
    size_t dirlen = (size_t)(slash - image_filename) + 1;
    char *out = malloc(dirlen + strlen(backing) + 1);
    if (!out)
        return NULL;
    memcpy(out, image_filename, dirlen);
    strcpy(out + dirlen, backing);
    return out;
}

DIMG_EXPORT int
dimg_change_backing_file(dimg_image *img, const char *backing, const char *backing_fmt)
{
    if (backing_fmt && !backing)
        return dimg_error(EINVAL, "%s: a backing format needs a backing file", img->filename);
    if (!img->writable)
        return dimg_error(EROFS, "%s: image is read-only", img->filename);
    if (!img->drv->change_backing)
        return dimg_error(ENOTSUP, "%s: Operation not supported", img->filename);
    return img->drv->change_backing(img, backing, backing_fmt);
}
