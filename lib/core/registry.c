/*
 * The drivers this build knows, in probe order: formats with cheap, certain
 * magic numbers first; raw last, since it accepts anything.
 */
#include <string.h>

#include "drv/drv.h"

static const struct dimg_driver *const drivers[] = {
    &dimg_drv_qcow2,
    &dimg_drv_vmdk,
    &dimg_drv_vpc,
    &dimg_drv_vdi,
    &dimg_drv_vhdx,
    &dimg_drv_raw,
    NULL,
};

const struct dimg_driver *const *
driver_list(void)
{
    return drivers;
}

const struct dimg_driver *
driver_find(const char *name)
{
    for (size_t i = 0; drivers[i]; i++)
        if (strcmp(drivers[i]->name, name) == 0)
            return drivers[i];
    return NULL;
}

const struct dimg_driver *
driver_probe(const uint8_t *head, size_t len, const char *filename)
{
    const struct dimg_driver *best = &dimg_drv_raw;
    int best_score = 0;
    for (size_t i = 0; drivers[i]; i++) {
        if (!drivers[i]->probe || drivers[i] == &dimg_drv_raw)
            continue;
        int score = drivers[i]->probe(head, len, filename);
        if (score > best_score) {
            best = drivers[i];
            best_score = score;
        }
    }
    return best;
}

DIMG_EXPORT const char *const *
dimg_format_names(void)
{
    static const char *names[sizeof drivers / sizeof drivers[0]];
    for (size_t i = 0; drivers[i]; i++)
        names[i] = drivers[i]->name;
    return names;
}
