/* --image-opts: open from "driver=FMT,file.filename=PATH,file.locking=off,...". */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

DIMG_EXPORT dimg_image *
dimg_open_opts(const char *image_opts, unsigned flags)
{
    struct dimg_opts o = { 0 };
    dimg_image *img = NULL;
    dimg_error_clear();
    /* A plain name is taken as a device or node name by qemu-img; dimg has neither. */
    if (!strchr(image_opts, '=')) {
        dimg_error(ENOENT, "Cannot find device='%s' nor node-name='%s'", image_opts, image_opts);
        goto out;
    }
    if (opts_parse(&o, image_opts) < 0)
        goto out;
    const char *driver = opts_get(&o, "driver");
    const char *filename = opts_get(&o, "file.filename");
    if (!filename)
        filename = opts_get(&o, "file");
    if (!filename) {
        dimg_error(EINVAL, "Cannot find device='%s' nor node-name='%s'", image_opts, image_opts);
        goto out;
    }
    for (size_t i = 0; i < o.n; i++) {
        const char *k = o.v[i].key, *v = o.v[i].value;
        if (!strcmp(k, "driver") || !strcmp(k, "file.filename") || !strcmp(k, "file"))
            continue;
        if (!strcmp(k, "file.driver")) {
            if (strcmp(v, "file") != 0 && strcmp(v, "host_device") != 0) {
                dimg_error(ENOTSUP, "Unknown protocol '%s'", v);
                goto out;
            }
        } else if (!strcmp(k, "file.locking")) {
            if (!strcmp(v, "off"))
                flags |= DIMG_OPEN_NO_LOCK;
            else if (strcmp(v, "on") != 0 && strcmp(v, "auto") != 0) {
                dimg_error(EINVAL, "Parameter 'locking' does not accept value '%s'", v);
                goto out;
            }
        } else if (!strcmp(k, "force-share") || !strcmp(k, "file.force-share")) {
            bool b;
            if (parse_bool(v, &b) < 0) {
                dimg_error(EINVAL, "Parameter '%s' expects 'on' or 'off'", k);
                goto out;
            }
            if (b)
                flags |= DIMG_OPEN_FORCE_SHARE;
        } else if (!strcmp(k, "cache.direct") || !strcmp(k, "file.cache.direct")) {
            bool b;
            if (parse_bool(v, &b) == 0 && b)
                flags = (flags & ~DIMG_OPEN_CACHE(0xf)) | DIMG_OPEN_CACHE(DIMG_CACHE_NONE);
        } else if (!strcmp(k, "read-only") || !strcmp(k, "cache.no-flush") ||
                   !strcmp(k, "file.aio") || !strcmp(k, "detect-zeroes") ||
                   !strcmp(k, "discard")) {
            /* accepted; no effect on dimg's behaviour */
        } else {
            dimg_error(EINVAL, "Block format '%s' does not support the option '%s'",
                       driver ? driver : "raw", k);
            goto out;
        }
    }
    img = image_open(filename, driver, flags, 0);
out:
    opts_free(&o);
    return img;
}
