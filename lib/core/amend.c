/*
 * amend: changing format options of an existing image (qemu-img amend).
 *
 * The option list is checked item by item in the order given, as qemu-img
 * parses it, so the first unknown name or malformed typed value is the one
 * reported.  The driver then gets the merged list (the last value of a
 * repeated key wins) and decides which changes are possible.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "drv/drv.h"

static const struct dimg_optdesc *
find_desc(const struct dimg_optdesc *table, const char *key)
{
    for (const struct dimg_optdesc *d = table; d && d->name; d++)
        if (strcmp(d->name, key) == 0)
            return d;
    return NULL;
}

struct amend_parse {
    const struct dimg_driver *drv;
    struct dimg_opts *opts;
};

/* The typed accessors of options.c check the value, with qemu's messages. */
static int
check_typed_value(const struct dimg_optdesc *d, const char *value)
{
    struct dimg_opt one = { .key = (char *)d->name, .value = (char *)value };
    const struct dimg_opts single = { .n = 1, .v = &one };
    bool b;
    uint64_t u;
    switch (d->type) {
    case DIMG_OPT_BOOL:
        return opts_get_bool(&single, d->name, false, &b) < 0 ? -EINVAL : 0;
    case DIMG_OPT_SIZE:
        return opts_get_size(&single, d->name, 0, &u) < 0 ? -EINVAL : 0;
    case DIMG_OPT_NUMBER:
        if (parse_number(value, &u) < 0)
            return dimg_error(EINVAL, "Parameter '%s' expects a number", d->name);
        return 0;
    default:
        return 0;
    }
}

static int
amend_item(const char *key, const char *value, void *opaque)
{
    struct amend_parse *ap = opaque;
    if (strcmp(key, "help") == 0 || strcmp(key, "?") == 0)
        return 0; /* the caller prints the help text instead of amending */
    /* A bare name means "name=on", as in qemu's option syntax. */
    if (!value)
        value = "on";
    const struct dimg_optdesc *d = find_desc(ap->drv->amend_opts, key);
    if (!d) {
        if (find_desc(ap->drv->create_opts, key))
            return dimg_error(EINVAL, "Invalid parameter '%s'\n"
                                      "This option is only supported for image creation", key);
        return dimg_error(EINVAL, "Invalid parameter '%s'", key);
    }
    int r = check_typed_value(d, value);
    return r < 0 ? r : opts_set(ap->opts, key, value);
}

DIMG_EXPORT int
dimg_amend(dimg_image *img, const char *options, unsigned flags,
           void (*progress)(double percent, void *opaque), void *opaque)
{
    dimg_error_clear();
    const struct dimg_driver *drv = img->drv;
    if (!drv->amend || !drv->amend_opts)
        return dimg_error(ENOTSUP, "Format driver '%s' does not support option amendment",
                          drv->name);
    if (!img->writable)
        return dimg_error(EROFS, "%s: image is read-only", img->filename);
    struct dimg_opts opts = { 0 };
    struct amend_parse ap = { .drv = drv, .opts = &opts };
    int r = opts_parse_each(options ? options : "", amend_item, &ap);
    if (r == 0 && progress)
        progress(0, opaque); /* qemu-img's progress output starts once the options parsed */
    if (r == 0)
        r = drv->amend(img, &opts, flags & DIMG_AMEND_FORCE, progress, opaque);
    opts_free(&opts);
    return r;
}

DIMG_EXPORT int
dimg_amend_options_help(const char *format, char **text_out)
{
    const struct dimg_driver *drv = driver_find(format);
    *text_out = NULL;
    if (!drv)
        return dimg_error(EINVAL, "Unknown file format '%s'", format);
    if (!drv->amend || !drv->amend_opts)
        return dimg_error(ENOTSUP, "Format driver '%s' does not support option amendment",
                          drv->name);
    struct strbuf sb = { 0 };
    sb_append(&sb, "Amend options for '%s':\n", drv->name);
    for (const struct dimg_optdesc *d = drv->amend_opts; d->name; d++)
        opts_help_line(&sb, d);
    if (!sb.s)
        return dimg_error(ENOMEM, "out of memory");
    *text_out = sb.s;
    return 0;
}
