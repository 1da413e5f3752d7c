/*
 * bitmap: add, remove, clear, enable, disable or merge persistent dirty
 * bitmaps (qemu-img's syntax and messages).
 *
 * Actions run in command-line order and stop at the first failure; what the
 * earlier ones did is kept (the image is closed normally, as qemu-img does).
 * A format that cannot store bitmaps (raw) fails --add because the bitmap
 * cannot be stored and every other action because the bitmap does not exist.
 *
 * Exit codes: 0 success, 1 any error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"

enum bitmap_op { BM_ADD, BM_REMOVE, BM_CLEAR, BM_ENABLE, BM_DISABLE, BM_MERGE };

static const char *const op_names[] = { "add", "remove", "clear", "enable", "disable", "merge" };

struct bitmap_action {
    enum bitmap_op op;
    const char *src; /* --merge SOURCE */
};

/*
 * qemu names the image's block node "#block1NN" (a counter and two random
 * digits) and prints that name when a bitmap cannot be stored.
 */
static void
node_name(char *buf, size_t len)
{
    snprintf(buf, len, "#block1%02d", (int)(getpid() % 100));
}

/*
 * One action on bitmap name of img (src_img: the --merge source image).
 * Returns 0, or -1 after printing qemu-img's message.
 */
static int
bitmap_apply(dimg_image *img, dimg_image *src_img, const struct bitmap_action *a,
             const char *name, int64_t granularity)
{
    const char *op = op_names[a->op];
    int r = 0;
    switch (a->op) {
    case BM_ADD: {
        uint32_t g = (uint32_t)granularity; /* qemu passes it on as 32 bits */
        if (!name[0]) {
            cli_error("Operation %s on bitmap %s failed: Bitmap name cannot be empty", op, name);
            return -1;
        }
        if (granularity && (g < 512 || (g & (g - 1)))) {
            cli_error("Operation %s on bitmap %s failed: "
                      "Granularity must be power of 2 and at least 512",
                      op, name);
            return -1;
        }
        r = dimg_bitmap_add(img, name, g, 1);
        if (r < 0 && r != -EEXIST && r != -EINVAL) {
            char node[32];
            node_name(node, sizeof node);
            if (r == -ENOSYS)
                cli_error("Operation %s on bitmap %s failed: "
                          "Can't store persistent bitmaps to %s: Operation not supported",
                          op, name, node);
            else
                cli_error("Operation %s on bitmap %s failed: "
                          "Can't make bitmap '%s' persistent in '%s': %s",
                          op, name, name, node, dimg_get_error());
            return -1;
        }
        break;
    }
    case BM_REMOVE: r = dimg_bitmap_remove(img, name); break;
    case BM_CLEAR: r = dimg_bitmap_clear(img, name); break;
    case BM_ENABLE: r = dimg_bitmap_set_enabled(img, name, 1); break;
    case BM_DISABLE: r = dimg_bitmap_set_enabled(img, name, 0); break;
    case BM_MERGE: r = dimg_bitmap_merge(img, name, src_img, a->src); break;
    }
    if (r < 0) {
        cli_error("Operation %s on bitmap %s failed: %s", op, name, dimg_get_error());
        return -1;
    }
    return 0;
}

int
cmd_bitmap(int argc, char **argv)
{
    enum { OPT_OBJECT = 256, OPT_IMAGE_OPTS, OPT_ADD, OPT_REMOVE, OPT_CLEAR, OPT_ENABLE,
           OPT_DISABLE, OPT_MERGE };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "add", no_argument, NULL, OPT_ADD },
        { "remove", no_argument, NULL, OPT_REMOVE },
        { "clear", no_argument, NULL, OPT_CLEAR },
        { "enable", no_argument, NULL, OPT_ENABLE },
        { "disable", no_argument, NULL, OPT_DISABLE },
        { "merge", required_argument, NULL, OPT_MERGE },
        { "granularity", required_argument, NULL, 'g' },
        { "source-file", required_argument, NULL, 'b' },
        { "source-format", required_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *src_file = NULL, *src_fmt = NULL;
    bool image_opts = false, add = false, merge = false;
    int64_t granularity = 0;
    struct bitmap_action *acts = NULL;
    size_t nacts = 0;
    dimg_image *img = NULL, *src = NULL;
    int c, ret = 1;

    optind = 0;
    while ((c = getopt_long(argc, argv, CLI_OPTSTRING_PREFIX "b:f:F:g:h", longopts, NULL)) != -1) {
        struct bitmap_action a = { BM_ADD, NULL };
        switch (c) {
        case 'h': cli_print_help(); ret = 0; goto out;
        case 'b': src_file = optarg; continue;
        case 'f': fmt = optarg; continue;
        case 'F': src_fmt = optarg; continue;
        case 'g':
            if (cli_cvtnum("granularity", optarg, 0, INT64_MAX, &granularity) < 0)
                goto out;
            continue;
        case OPT_OBJECT:
            if (cli_add_object(optarg) < 0)
                goto out;
            continue;
        case OPT_IMAGE_OPTS: image_opts = true; continue;
        case OPT_ADD: a.op = BM_ADD; add = true; break;
        case OPT_REMOVE: a.op = BM_REMOVE; break;
        case OPT_CLEAR: a.op = BM_CLEAR; break;
        case OPT_ENABLE: a.op = BM_ENABLE; break;
        case OPT_DISABLE: a.op = BM_DISABLE; break;
        case OPT_MERGE: a.op = BM_MERGE; a.src = optarg; merge = true; break;
        default: ret = cli_bad_option(c, argv); goto out;
        }
        struct bitmap_action *n = realloc(acts, (nacts + 1) * sizeof *acts);
        if (!n) {
            cli_error("out of memory");
            goto out;
        }
        acts = n;
        acts[nacts++] = a;
    }
    if (!nacts) {
        cli_error("Need at least one of --add, --remove, --clear, --enable, --disable, or --merge");
        goto out;
    }
    if (granularity && !add) {
        cli_error("granularity only supported with --add");
        goto out;
    }
    if (src_fmt && !src_file) {
        cli_error("-F only supported with -b");
        goto out;
    }
    if (src_file && !merge) {
        cli_error("Merge bitmap source file only supported with --merge");
        goto out;
    }
    if (optind != argc - 2) {
        cli_error("Expecting filename and bitmap name");
        goto out;
    }
    const char *filename = argv[optind], *name = argv[optind + 1];

    /* Bitmaps live in the image itself: no backing chain needed. */
    if (!(img = cli_img_open(filename, fmt, DIMG_OPEN_RDWR | DIMG_OPEN_NO_BACKING, image_opts)))
        goto out;
    if (src_file && !(src = cli_img_open(src_file, src_fmt, DIMG_OPEN_NO_BACKING, false)))
        goto out;
    for (size_t i = 0; i < nacts; i++)
        if (bitmap_apply(img, src ? src : img, &acts[i], name, granularity) < 0)
            goto out;
    ret = 0;
out:
    dimg_close(src);
    if (img && dimg_close(img) < 0 && ret == 0) {
        cli_error_lib("%s", "");
        ret = 1;
    }
    free(acts);
    return ret;
}

/* ---- convert --bitmaps ---------------------------------------------------- */

int
cli_convert_check_bitmaps(dimg_image *const *src, size_t n, bool skip_broken)
{
    if (n != 1) {
        cli_error("Copying bitmaps only possible with single source");
        return -1;
    }
    if (!dimg_bitmap_supported(src[0])) {
        cli_error("Source lacks bitmap support");
        return -1;
    }
    struct dimg_bitmap_info *bm;
    size_t count;
    if (dimg_bitmap_list(src[0], &bm, &count) < 0) {
        cli_error_lib("%s", "");
        return -1;
    }
    int ret = 0;
    /* qemu-img walks the bitmaps newest first: last in the directory first. */
    for (size_t i = count; i-- > 0 && ret == 0;) {
        if (!(bm[i].flags & DIMG_BITMAP_IN_USE))
            continue;
        if (skip_broken) {
            fprintf(stderr, "%s: warning: Skipping inconsistent bitmap '%s'\n", progname,
                    bm[i].name);
            continue;
        }
        cli_error("Cannot copy inconsistent bitmap '%s'\n"
                  "Try --skip-broken-bitmaps, or use 'qemu-img bitmap --remove' to delete it",
                  bm[i].name);
        ret = -1;
    }
    dimg_bitmap_list_free(bm, count);
    return ret;
}

int
cli_convert_copy_bitmaps(dimg_image *src, dimg_image *dst, bool skip_broken)
{
    struct dimg_bitmap_info *bm;
    size_t count;
    if (dimg_bitmap_list(src, &bm, &count) < 0) {
        cli_error_lib("%s", "");
        return -1;
    }
    int ret = 0;
    for (size_t i = count; i-- > 0 && ret == 0;) {
        if ((bm[i].flags & DIMG_BITMAP_IN_USE) && skip_broken)
            continue;
        if (dimg_bitmap_add(dst, bm[i].name, bm[i].granularity,
                            (bm[i].flags & DIMG_BITMAP_AUTO) != 0) < 0) {
            cli_error("Failed to create bitmap %s: %s", bm[i].name, dimg_get_error());
            ret = -1;
        } else if (dimg_bitmap_merge(dst, bm[i].name, src, bm[i].name) < 0) {
            cli_error("Failed to populate bitmap %s: %s", bm[i].name, dimg_get_error());
            ret = -1;
        }
    }
    dimg_bitmap_list_free(bm, count);
    return ret;
}
