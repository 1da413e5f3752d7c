/*
 * measure engine: validate the -o list the way qemu-img measure reads it and
 * ask the output format's driver how large the image would be.  The numbers
 * are the driver's business (drv->measure); this file only decides which
 * driver, which options and which size.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "drv/drv.h"
#include "engine/engine.h"
#include "engine/measure.h"

/*
 * The file protocol's create options, accepted for every format.  The same
 * list as lib/core/create.c keeps for create; measure needs only the names
 * and types.
 */
static const struct dimg_optdesc measure_file_opts[] = {
    { "extent_size_hint", DIMG_OPT_SIZE, NULL, NULL },
    { "nocow", DIMG_OPT_BOOL, NULL, NULL },
    { "preallocation", DIMG_OPT_STRING, NULL, NULL },
    { "size", DIMG_OPT_SIZE, NULL, NULL },
    { NULL, 0, NULL, NULL },
};

static const struct dimg_optdesc *
find_desc(const struct dimg_driver *drv, const char *key)
{
    const struct dimg_optdesc *const tables[] = { drv->create_opts, measure_file_opts };
    for (size_t t = 0; t < 2; t++)
        for (const struct dimg_optdesc *d = tables[t]; d && d->name; d++)
            if (strcmp(d->name, key) == 0)
                return d;
    return NULL;
}

static int
check_value(const struct dimg_optdesc *d, const char *value)
{
    uint64_t u;
    bool b;
    switch (d->type) {
    case DIMG_OPT_SIZE:
        if (dimg_parse_size(value, &u) < 0)
            return dimg_error(EINVAL,
                              "Parameter '%s' expects a non-negative number below 2^64\n"
                              "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, "
                              "tera-, peta-\nand exabytes, respectively.",
                              d->name);
        return 0;
    case DIMG_OPT_BOOL:
        if (parse_bool(value, &b) < 0)
            return dimg_error(EINVAL, "Parameter '%s' expects 'on' or 'off'", d->name);
        return 0;
    case DIMG_OPT_NUMBER: {
        char *end;
        errno = 0;
        (void)strtoull(value, &end, 0);
        if (!*value || *end || errno)
            return dimg_error(EINVAL, "Parameter '%s' expects a number", d->name);
        return 0;
    }
    case DIMG_OPT_STRING:
        return 0;
    }
    return 0;
}

/*
 * Walk "k=v,k2,nok3,...": a key runs to '=' or ','; a value runs to a single
 * ',' (",," is a literal comma).  A bare key means "on", a bare "no" + key
 * means key=off.  Each entry is checked as it is read, so the first bad one
 * is the one reported; when opts is not NULL the entries are collected.
 */
static int
parse_options(const struct dimg_driver *drv, const char *str, struct dimg_opts *opts)
{
    const char *p = str;
    size_t n = strlen(str);
    char *key = malloc(n + 1), *value = malloc(n + 3);
    int r = 0;
    if (!key || !value) {
        r = dimg_error(ENOMEM, "out of memory");
        goto out;
    }
    while (*p) {
        size_t k = 0, v = 0;
        while (*p && *p != '=' && *p != ',')
            key[k++] = *p++;
        key[k] = '\0';
        if (*p == '=') {
            p++;
            while (*p) {
                if (*p == ',') {
                    if (p[1] != ',')
                        break;
                    p++;
                }
                value[v++] = *p++;
            }
            value[v] = '\0';
        } else if (strncmp(key, "no", 2) == 0) {
            memmove(key, key + 2, k - 1);
            strcpy(value, "off");
        } else {
            strcpy(value, "on");
        }
        if (*p == ',')
            p++;
        const struct dimg_optdesc *d = find_desc(drv, key);
        if (!d) {
            r = dimg_error(EINVAL, "Invalid parameter '%s'", key);
            goto out;
        }
        if ((r = check_value(d, value)) < 0)
            goto out;
        if (opts && (r = opts_set(opts, key, value)) < 0)
            goto out;
    }
out:
    free(key);
    free(value);
    return r;
}

static const struct dimg_driver *
find_format(const char *format)
{
    const struct dimg_driver *drv = driver_find(format ? format : "raw");
    if (!drv)
        dimg_error(EINVAL, "Unknown file format '%s'", format);
    return drv;
}

DIMG_EXPORT int
dimg_measure_check_options(const char *format, const char *options)
{
    dimg_error_clear();
    const struct dimg_driver *drv = find_format(format);
    if (!drv)
        return -EINVAL;
    return options ? parse_options(drv, options, NULL) : 0;
}

DIMG_EXPORT int
dimg_measure(const char *format, const char *options, int64_t size, dimg_image *src,
             struct dimg_measure_info *out)
{
    dimg_error_clear();
    memset(out, 0, sizeof *out);
    const struct dimg_driver *drv = find_format(format);
    if (!drv)
        return -EINVAL;
    if (!src && size < 0)
        return dimg_error(EINVAL, "Either --size N or one filename must be specified.");
    struct dimg_opts opts = { 0 };
    int r = options ? parse_options(drv, options, &opts) : 0;
    if (r < 0)
        goto out;
    if (!drv->measure) {
        r = dimg_error(ENOTSUP, "Block driver '%s' does not support size measurement", drv->name);
        goto out;
    }
    struct dimg_measure m = { 0 };
    r = drv->measure(&opts, src ? dimg_get_size(src) : (uint64_t)size, src, &m);
    if (r < 0)
        goto out;
    out->required = m.required;
    out->fully_allocated = m.fully_allocated;
    out->bitmaps = m.bitmaps;
    out->has_bitmaps = m.has_bitmaps;
out:
    opts_free(&opts);
    return r;
}
