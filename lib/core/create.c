/* Image creation: option validation, the "Formatting" line, locking, driver create. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"
#include "drv/drv.h"

/* Options of the "file" protocol layer, accepted for every format. */
static const struct dimg_optdesc file_create_opts[] = {
    { "extent_size_hint", DIMG_OPT_SIZE, "Extent size hint for the image file, 0 to disable", NULL },
    { "nocow", DIMG_OPT_BOOL, "Turn off copy-on-write (valid only on btrfs)", NULL },
    { "preallocation", DIMG_OPT_STRING, "Preallocation mode (allowed values: off, falloc, full)", NULL },
    { "size", DIMG_OPT_SIZE, "Virtual disk size", NULL },
    { NULL, 0, NULL, NULL },
};

static void
describe_default(struct strbuf *sb, const struct dimg_driver *drv,
                 const struct dimg_create_args *args)
{
    sb_append(sb, " size=%" PRIu64, args->size);
    for (const struct dimg_optdesc *d = drv->create_opts; d && d->name; d++) {
        const char *v = opts_get(args->opts, d->name);
        if (v && strcmp(d->name, "size") != 0)
            sb_append(sb, " %s=%s", d->name, v);
    }
}

static void
help_line(struct strbuf *sb, const struct dimg_optdesc *d)
{
    static const char *const type_names[] = { "size", "bool (on/off)", "str", "num" };
    char left[64];
    snprintf(left, sizeof left, "%s=<%s>", d->name, type_names[d->type]);
    sb_append(sb, "  %-22s - %s\n", left, d->help);
}

static int
cmp_optdesc(const void *a, const void *b)
{
    return strcmp((*(const struct dimg_optdesc *const *)a)->name,
                  (*(const struct dimg_optdesc *const *)b)->name);
}

/*
 * Without a file name qemu-img lists the format's options only; with one it
 * lists the format's and the file protocol's options merged, sorted by name.
 */
static int
print_help(const struct dimg_driver *drv, int with_protocol, struct strbuf *sb)
{
    if (!with_protocol) {
        sb_append(sb, "Supported %s options:\n", drv->name);
        for (const struct dimg_optdesc *d = drv->create_opts; d && d->name; d++)
            help_line(sb, d);
        sb_append(sb, "\nThe protocol level may support further options.\n"
                      "Specify the target filename to include those options.\n");
        return 0;
    }
    const struct dimg_optdesc *all[128];
    size_t n = 0;
    const struct dimg_optdesc *const tables[] = { drv->create_opts, file_create_opts };
    for (size_t t = 0; t < 2; t++) {
        for (const struct dimg_optdesc *d = tables[t]; d && d->name && n < 128; d++) {
            bool dup = false;
            for (size_t i = 0; i < n && !dup; i++)
                dup = strcmp(all[i]->name, d->name) == 0;
            if (!dup)
                all[n++] = d;
        }
    }
    qsort(all, n, sizeof all[0], cmp_optdesc);
    sb_append(sb, "Supported options:\n");
    for (size_t i = 0; i < n; i++)
        help_line(sb, all[i]);
    return 0;
}

DIMG_EXPORT int
dimg_create_options_help(const char *format, int with_protocol, char **text_out)
{
    const struct dimg_driver *drv = driver_find(format ? format : "raw");
    if (!drv)
        return dimg_error(EINVAL, "Unknown file format '%s'", format);
    struct strbuf sb = { 0 };
    print_help(drv, with_protocol, &sb);
    *text_out = sb.s;
    return sb.s ? 0 : -ENOMEM;
}

/*
 * The backing file of a new overlay: qemu-img wants its format named, opens
 * it (unless -u) and takes the overlay's size from it when none is given.
 * Returns 1 with *size set, 0 when the backing file was not opened, or -errno.
 */
static int
check_backing(const char *filename, const struct dimg_opts *opts, unsigned flags, uint64_t *size)
{
    const char *bf = opts_get(opts, "backing_file");
    const char *bfmt = opts_get(opts, "backing_fmt");
    if (strcmp(bf, filename) == 0)
        return dimg_error(EINVAL, "Error: Trying to create an image with the same filename as "
                                  "the backing file");
    char *path = backing_resolve(filename, bf);
    if (!path)
        return dimg_error(ENOMEM, "out of memory");
    int r = 0;
    if (!bfmt || !(flags & DIMG_CREATE_NO_BACKING_CHECK)) {
        dimg_image *b = image_open(path, bfmt, DIMG_OPEN_INFO_ONLY | DIMG_OPEN_NO_BACKING, 0);
        if (!b) {
            r = bfmt ? dimg_error_prefix("%s", "") : -dimg_get_errno();
            if (bfmt) {
                /* qemu-img adds a second line naming what failed. */
                char msg[1024];
                snprintf(msg, sizeof msg, "%s\nCould not open backing image.", dimg_get_error());
                r = dimg_error(dimg_get_errno(), "%s", msg);
            }
        } else if (!bfmt) {
            r = dimg_error(EINVAL, "Backing file specified without backing format\n"
                                   "Detected format of %s.", b->drv->name);
        } else {
            *size = b->size;
            r = 1;
        }
        dimg_close(b);
    }
    free(path);
    return r;
}

static int
create_with(const char *filename, const struct dimg_driver *drv, int64_t size,
            struct dimg_opts *opts, unsigned flags,
            void (*formatting)(const char *line, void *opaque), void *opaque)
{
    if (!drv->create)
        return dimg_error(ENOTSUP, "Format driver '%s' does not support image creation",
                          drv->name);
    if (opts_get(opts, "backing_file") && !(drv->flags & DIMG_DRV_BACKING))
        return dimg_error(ENOTSUP, "Backing file not supported for file format '%s'", drv->name);
    const struct dimg_optdesc *tables[] = { drv->create_opts, file_create_opts };
    int r = opts_validate(opts, tables, 2);
    if (r < 0)
        return r;

    struct dimg_create_args args = { .filename = filename, .opts = opts, .flags = flags };
    uint64_t backing_size = 0;
    bool have_backing_size = false;
    if (opts_get(opts, "backing_file")) {
        r = check_backing(filename, opts, flags, &backing_size);
        if (r < 0)
            return r;
        have_backing_size = r > 0;
    }
    if (size < 0 && !opts_get(opts, "size") && have_backing_size) {
        args.size = backing_size;
    } else if (size >= 0) {
        args.size = (uint64_t)size;
    } else if (opts_get_size(opts, "size", 0, &args.size) != 0) {
        if (dimg_get_errno() == EINVAL && opts_get(opts, "size"))
            return -EINVAL;
        return dimg_error(EINVAL, "Image creation needs a size parameter");
    }

    struct strbuf line = { 0 };
    sb_append(&line, "Formatting '%s', fmt=%s", filename, drv->name);
    if (drv->describe_create) {
        char *d = drv->describe_create(&args);
        if (d)
            sb_append(&line, " %s", d);
        free(d);
    } else {
        describe_default(&line, drv, &args);
    }
    if (formatting && line.s)
        formatting(line.s, opaque);
    sb_free(&line);

    if (drv->check_create && (r = drv->check_create(&args)) < 0)
        return r;

    /* Never O_TRUNC: an image someone else holds must stay untouched, so lock first. */
    struct io_file_params p = {
        .writable = true,
        .create = true,
        .lock = true,
        /* As qemu-img's create of the file (strace): holds 101, 103, denies only
         * resize (203); a raw writer (qemu-io -f raw) does not stop it. */
        .perm = IO_PERM_WRITE | IO_PERM_RESIZE,
        .shared = IO_PERM_ALL & ~IO_PERM_RESIZE,
    };
    struct dimg_io *file;
    r = io_file_open(filename, &p, &file);
    if (r < 0)
        return r;
    r = io_truncate(file, 0, DIMG_PREALLOC_OFF);
    if (r == 0)
        r = drv->create(file, &args);
    if (r == 0)
        r = io_flush(file);
    io_close(file);
    return r;
}

DIMG_EXPORT int
dimg_create(const char *filename, const char *format, int64_t size, const char *options,
            unsigned flags, void (*formatting)(const char *line, void *opaque), void *opaque)
{
    dimg_error_clear();
    const char *fmt = format ? format : "raw";
    const struct dimg_driver *drv = driver_find(fmt);
    struct dimg_opts opts = { 0 };
    int r;
    if (!drv)
        r = dimg_error(EINVAL, "Unknown file format '%s'", fmt);
    else if (options && (r = opts_parse(&opts, options)) < 0)
        ;
    else
        r = create_with(filename, drv, size, &opts, flags, formatting, opaque);
    opts_free(&opts);
    if (r < 0)
        dimg_error_prefix("%s: ", filename);
    return r;
}
