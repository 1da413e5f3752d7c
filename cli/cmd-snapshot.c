/*
 * snapshot: list, create, apply or delete internal snapshots (qemu-img's syntax).
 *
 * Internal snapshots are a format feature (DIMG_DRV_SNAPSHOTS, qcow2); for
 * other formats each action gives qemu-img's answer for a format without
 * them: -l lists nothing, -c/-a/-d fail with qemu-img's messages.
 *
 * Exit codes: 0 success, 1 usage, open or snapshot error.
 */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "cmd.h"
#include "drv/drv.h"

enum snap_action { SNAP_NONE, SNAP_LIST, SNAP_APPLY, SNAP_CREATE, SNAP_DELETE };

static bool
has_snapshots(const dimg_image *img)
{
    return (img->drv->flags & DIMG_DRV_SNAPSHOTS) != 0;
}

/* -l: qemu-img prints nothing when an image has no snapshots. */
static int
snap_list(dimg_image *img)
{
    if (!has_snapshots(img))
        return 0;
    struct dimg_snapshot *sn = NULL;
    size_t n = 0;
    if (dimg_snapshot_list(img, &sn, &n) < 0) {
        cli_error_lib("%s", "");
        return 1;
    }
    if (n)
        cli_print_snapshot_table(sn, n);
    dimg_snapshot_list_free(sn, n);
    return 0;
}

/*
 * qemu-img reports a failed create as "<errno> (<strerror>)"; a damaged image
 * gets dimg's message instead, which names the file and the problem.
 */
static int
snap_create(dimg_image *img, const char *name)
{
    if (dimg_snapshot_create(img, name) == 0)
        return 0;
    int err = dimg_get_errno();
    if (err == EBADMSG)
        cli_error("Could not create snapshot '%s': %s", name, dimg_get_error());
    else
        cli_error("Could not create snapshot '%s': %d (%s)", name, -err, strerror(err));
    return 1;
}

static int
snap_apply(dimg_image *img, const char *name, const char *fmt, bool image_opts,
           const char *filename)
{
    /* qemu's block layer reopens the image while looking for a snapshot
     * driver, so a probed raw image warns a second time. */
    if (!has_snapshots(img) && (img->flags & DIMG_OPEN_RDWR) &&
        cli_probed_raw(img, fmt, image_opts, filename))
        cli_warn_probed_raw(dimg_get_filename(img));
    if (dimg_snapshot_apply(img, name) == 0)
        return 0;
    cli_error("Could not apply snapshot '%s': %s", name, dimg_get_error());
    return 1;
}

static int
snap_delete(dimg_image *img, const char *name)
{
    if (dimg_snapshot_delete(img, name) == 0)
        return 0;
    cli_error("Could not delete snapshot '%s': %s", name, dimg_get_error());
    return 1;
}

int
cmd_snapshot(int argc, char **argv)
{
    enum { OPT_OBJECT = 256, OPT_IMAGE_OPTS };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    enum snap_action action = SNAP_NONE;
    const char *name = NULL;
    bool image_opts = false;
    unsigned flags = DIMG_OPEN_RDWR;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, CLI_OPTSTRING_PREFIX "la:c:d:hqU", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'h': cli_print_help(); return 0;
        case 'l':
        case 'a':
        case 'c':
        case 'd':
            if (action != SNAP_NONE) {
                cli_usage_error("Cannot mix '-l', '-a', '-c', '-d'");
                return 1;
            }
            action = c == 'l' ? SNAP_LIST : c == 'a' ? SNAP_APPLY : c == 'c' ? SNAP_CREATE
                                                                             : SNAP_DELETE;
            name = optarg;
            if (c == 'l')
                flags &= ~DIMG_OPEN_RDWR;
            break;
        case 'q': break; /* only silences messages this command never prints */
        case 'U': flags |= DIMG_OPEN_FORCE_SHARE; break;
        case OPT_OBJECT:
            if (cli_add_object(optarg) < 0)
                return 1;
            break;
        case OPT_IMAGE_OPTS: image_opts = true; break;
        default: return cli_bad_option(c, argv);
        }
    }
    if (optind != argc - 1) {
        cli_usage_error("Expecting one image file name");
        return 1;
    }
    const char *filename = argv[optind];

    dimg_image *img = cli_img_open(filename, NULL, flags, image_opts);
    if (!img)
        return 1;
    int ret = 0;
    switch (action) {
    case SNAP_NONE: break;
    case SNAP_LIST: ret = snap_list(img); break;
    case SNAP_CREATE: ret = snap_create(img, name); break;
    case SNAP_APPLY: ret = snap_apply(img, name, NULL, image_opts, filename); break;
    case SNAP_DELETE: ret = snap_delete(img, name); break;
    }
    if (dimg_close(img) < 0 && ret == 0) {
        cli_error_lib("%s", "");
        ret = 1;
    }
    return ret;
}
