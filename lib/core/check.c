/* dimg_check: the format's consistency check and repair. */
#include <errno.h>
#include <string.h>

#include "core/internal.h"
#include "drv/drv.h"

DIMG_EXPORT int
dimg_check(dimg_image *img, unsigned fix, struct dimg_check *out)
{
    memset(out, 0, sizeof *out);
    if (!img->drv->check)
        return dimg_error(ENOTSUP, "This image format does not support checks");
    if (fix && !img->writable)
        return dimg_error(EROFS, "%s: repairing needs a writable image", img->filename);
    return img->drv->check(img, fix, out);
}
