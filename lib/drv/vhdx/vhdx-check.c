/*
 * qemu-img check for VHDX, as qemu-img 7.2 does it: the BAT entries that
 * point outside the file or into the log, BAT or metadata regions are
 * corruptions (found while opening); a dirty log replayed when the image was
 * opened for repair counts as one corruption fixed.  Nothing else is checked,
 * and leaked space is not reported.
 */
#include "drv/vhdx/vhdx.h"

int
vhdx_check(struct dimg_image *img, unsigned fix, struct dimg_check *out)
{
    struct vhdx_state *s = dimg_image_state(img);
    out->corruptions = s->bat_errors;
    if (fix && s->replayed) {
        out->corruptions_fixed = 1;
        s->replayed = false;
    }
    return 0;
}
