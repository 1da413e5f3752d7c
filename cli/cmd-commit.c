/*
 * commit: write an image's data down into a file of its backing chain
 * (qemu-img's syntax and messages).
 *
 * The base is the immediate backing file, or the one named by -b found in
 * the chain (-b implies -d: the images between would no longer match the
 * base, so the top keeps its data).  An image without a backing file (raw)
 * stops there with qemu-img's errors.  The copy and the emptying are the
 * library's dimg_commit().
 *
 * Exit codes: 0 success, 1 any error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "core/internal.h"
#include "progress.h"

/* The image of img's backing chain (below img) that base names, or NULL. */
static dimg_image *
find_backing_image(dimg_image *img, const char *base)
{
    char *want = realpath(base, NULL);
    dimg_image *found = NULL;
    for (dimg_image *b = dimg_get_backing(img); b && !found; b = dimg_get_backing(b)) {
        const char *name = dimg_get_filename(b);
        if (!strcmp(name, base)) {
            found = b;
        } else if (want) {
            char *have = realpath(name, NULL);
            if (have && !strcmp(have, want))
                found = b;
            free(have);
        }
    }
    free(want);
    return found;
}

static void
commit_progress(double percent, void *opaque)
{
    (void)opaque;
    progress_set(percent);
}

/* Copy everything img's chain holds above base into base, then (unless drop) empty img. */
static int
commit_run(dimg_image *img, dimg_image *base, bool drop, int64_t rate_limit)
{
    int r = dimg_commit(img, base, drop ? DIMG_COMMIT_DROP : 0, (uint64_t)rate_limit,
                        commit_progress, NULL);
    if (r < 0)
        cli_error_lib("%s", "");
    return r;
}

int
cmd_commit(int argc, char **argv)
{
    enum { OPT_OBJECT = 256, OPT_IMAGE_OPTS };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *cache = NULL, *base_name = NULL;
    bool progress = false, quiet = false, drop = false, image_opts = false;
    int64_t rate_limit = 0;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, CLI_OPTSTRING_PREFIX "f:ht:b:dpqr:", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'h': cli_print_help(); return 0;
        case 'f': fmt = optarg; break;
        case 't': cache = optarg; break;
        case 'b': base_name = optarg; drop = true; break;
        case 'd': drop = true; break;
        case 'p': progress = true; break;
        case 'q': quiet = true; break;
        case 'r':
            if (cli_cvtnum("rate limit", optarg, 0, INT64_MAX, &rate_limit) < 0)
                return 1;
            break;
        case OPT_OBJECT:
            if (cli_add_object(optarg) < 0)
                return 1;
            break;
        case OPT_IMAGE_OPTS: image_opts = true; break;
        default: return cli_bad_option(c, argv);
        }
    }
    if (quiet)
        progress = false;
    if (optind != argc - 1) {
        cli_usage_error("Expecting one image file name");
        return 1;
    }
    const char *filename = argv[optind];
    unsigned flags = DIMG_OPEN_RDWR;
    if (cli_cache_flags(cache, false, &flags) < 0)
        return 1;
    dimg_image *img = cli_img_open(filename, fmt, flags, image_opts);
    if (!img)
        return 1;

    progress_init(progress, 1.0);
    int ret = 1;
    dimg_image *base;
    if (base_name) {
        base = find_backing_image(img, base_name);
        if (!base) {
            if (progress)
                printf("\n");
            cli_error("Did not find '%s' in the backing chain of '%s'", base_name, filename);
            goto out;
        }
    } else {
        base = dimg_get_backing(img);
        if (!base) {
            if (progress)
                printf("\n");
            cli_error("Image does not have a backing file");
            goto out;
        }
    }
    if (commit_run(img, base, drop, rate_limit) < 0) {
        if (progress)
            printf("\n");
        goto out;
    }
    progress_end();
    if (!quiet)
        printf("Image committed.\n");
    ret = 0;
out:
    fflush(stdout);
    if (dimg_close(img) < 0 && ret == 0) {
        cli_error_lib("%s", "");
        ret = 1;
    }
    return ret;
}
