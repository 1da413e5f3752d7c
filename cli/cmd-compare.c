/*
 * compare: do two images have the same content, as qemu-img decides it.
 *
 *   compare [--object objectdef] [--image-opts] [-f fmt] [-F fmt] [-T src_cache]
 *           [-p] [-q] [-s] [-U] filename1 filename2
 *
 * Exit codes (qemu-img's): 0 identical, 1 different (or bad usage), 2 an image
 * could not be opened, 3 block status failed, 4 a read failed.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "engine/compare.h"
#include "progress.h"

/* qemu-img's progress arithmetic, in single precision as it does it, so that
 * the same percentages are printed at the same moments. */
struct progress_state {
    bool on;
    float current, last;
};

static void
on_progress(uint64_t done, uint64_t total, void *opaque)
{
    struct progress_state *ps = opaque;
    if (!ps->on)
        return;
    float delta = (float)done / (float)total;
    delta = delta * 100;
    ps->current = ps->current + delta / 100 * 100;
    if (ps->current > ps->last + 2.0f || ps->current >= 100) {
        ps->last = ps->current;
        progress_set(ps->current);
    }
}

static bool quiet;

static void
on_size_mismatch(void *opaque)
{
    (void)opaque;
    if (!quiet)
        printf("Warning: Image size mismatch!\n");
}

static dimg_image *
open_one(const char *filename, const char *fmt, unsigned flags, bool image_opts)
{
    if (image_opts && fmt) {
        cli_error("--image-opts and --format are mutually exclusive");
        return NULL;
    }
    return cli_open(filename, fmt, flags, image_opts);
}

int
cmd_compare(int argc, char **argv)
{
    enum { OPT_OBJECT = 256, OPT_IMAGE_OPTS };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt1 = NULL, *fmt2 = NULL, *cache = NULL;
    bool progress = false, strict = false, image_opts = false;
    unsigned flags = 0;
    int c;

    quiet = false;
    optind = 0;
    while ((c = getopt_long(argc, argv, CLI_OPTSTRING_PREFIX "hf:F:T:pqsU", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'h': cli_print_help(); return 0;
        case 'f': fmt1 = optarg; break;
        case 'F': fmt2 = optarg; break;
        case 'T': cache = optarg; break;
        case 'p': progress = true; break;
        case 'q': quiet = true; break;
        case 's': strict = true; break;
        case 'U': flags |= DIMG_OPEN_FORCE_SHARE; break;
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
    if (optind != argc - 2) {
        cli_usage_error("Expecting two image file names");
        return 1;
    }
    const char *name[2] = { argv[optind], argv[optind + 1] };

    int ret = 2;
    dimg_image *img[2] = { NULL, NULL };
    if (cli_cache_flags(cache, true, &flags) < 0)
        goto out;
    if (!(img[0] = open_one(name[0], fmt1, flags, image_opts)))
        goto out;
    if (!(img[1] = open_one(name[1], fmt2, flags, image_opts)))
        goto out;

    struct progress_state ps = { .on = progress };
    progress_init(progress, 2.0);
    struct dimg_compare_params params = {
        .strict = strict,
        .progress = on_progress,
        .size_mismatch = on_size_mismatch,
        .opaque = &ps,
    };
    struct dimg_compare_report rep;
    int r = dimg_compare(img[0], img[1], &params, &rep);
    if (r < 0) {
        switch (rep.failure) {
        case DIMG_COMPARE_FAIL_STATUS:
            cli_error("Sector allocation test failed for %s", name[rep.image]);
            ret = 3;
            break;
        case DIMG_COMPARE_FAIL_READ:
            cli_error("Error while reading offset %" PRIu64 " of %s: %s", rep.offset,
                      name[rep.image], strerror(-r));
            ret = 4;
            break;
        default:
            cli_error("%s", dimg_get_error());
            ret = 4;
            break;
        }
        goto out;
    }
    ret = 1;
    switch (rep.result) {
    case DIMG_COMPARE_IDENTICAL:
        if (!quiet)
            printf("Images are identical.\n");
        ret = 0;
        break;
    case DIMG_COMPARE_CONTENT_MISMATCH:
        if (!quiet)
            printf("Content mismatch at offset %" PRIu64 "!\n", rep.offset);
        break;
    case DIMG_COMPARE_SIZE_MISMATCH:
        if (!quiet)
            printf("Strict mode: Image size mismatch!\n");
        break;
    case DIMG_COMPARE_STATUS_MISMATCH:
        if (!quiet)
            printf("Strict mode: Offset %" PRIu64 " block status mismatch!\n", rep.offset);
        break;
    }

out:
    for (int i = 0; i < 2; i++)
        if (img[i])
            dimg_close(img[i]);
    if (progress) {
        /* qemu-img ends its progress line with a bare newline, even on errors. */
        printf("\n");
    }
    fflush(stdout);
    return ret;
}
