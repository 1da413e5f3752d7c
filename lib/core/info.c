/* dimg_get_info: the generic fields plus what the driver adds. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "drv/drv.h"

static void
value_free(struct dimg_value *v)
{
    while (v) {
        struct dimg_value *next = v->next;
        value_free(v->child);
        if (v->type == DIMG_VALUE_STRING)
            free(v->v.s);
        free((char *)v->key);
        free(v);
        v = next;
    }
}

DIMG_EXPORT void
dimg_info_free(struct dimg_info *info)
{
    free(info->filename);
    free(info->format);
    free(info->backing_filename);
    free(info->full_backing_filename);
    free(info->backing_format);
    value_free(info->format_specific);
    memset(info, 0, sizeof *info);
}

DIMG_EXPORT int
dimg_get_info(dimg_image *img, struct dimg_info *out)
{
    memset(out, 0, sizeof *out);
    out->filename = strdup(img->filename);
    out->format = strdup(img->drv->name);
    out->virtual_size = img->size;
    out->actual_size = io_allocated_size(img->file);
    out->dirty_flag = 0;
    out->cluster_size = img->cluster_size;
    out->backing_filename = xstrdup_or_null(img->backing_filename);
    out->backing_format = xstrdup_or_null(img->backing_format);
    if (img->backing_filename && img->backing_filename[0]) {
        out->full_backing_filename = img->full_backing_filename
                                         ? strdup(img->full_backing_filename)
                                         : backing_resolve(img->filename, img->backing_filename);
    }
    if (!out->filename || !out->format) {
        dimg_info_free(out);
        return dimg_error(ENOMEM, "out of memory");
    }
    if (img->drv->info) {
        int r = img->drv->info(img, out);
        if (r < 0) {
            dimg_info_free(out);
            return r;
        }
    }
    return 0;
}

DIMG_EXPORT void
dimg_snapshot_list_free(struct dimg_snapshot *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++) {
        free(list[i].id);
        free(list[i].name);
    }
    free(list);
}

DIMG_EXPORT int
dimg_snapshot_list(dimg_image *img, struct dimg_snapshot **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    if (!img->drv->snapshot_list)
        return 0;
    return img->drv->snapshot_list(img, out, count);
}
