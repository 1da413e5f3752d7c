/*
 * resize: grow or (with --shrink) shrink an image's virtual size, with
 * qemu-img's syntax and messages.  The size is the last argument and is taken
 * out before option parsing, so "-1G" is a size and not an option.
 *
 * Exit codes: 0 resized, 1 any error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>

#include "cmd.h"

/* The largest image size qemu accepts: INT64_MAX rounded down to whole GiB. */
#define RESIZE_MAX_SIZE ((INT64_MAX / (1LL << 30)) * (1LL << 30))

/* Parse "[+|-]size"; returns 0 and sets *value, *sign (-1, 0 absolute, +1). */
static int
parse_resize_size(const char *arg, uint64_t *value, int *sign)
{
    *sign = 0;
    if (arg[0] == '+' || arg[0] == '-') {
        *sign = arg[0] == '+' ? 1 : -1;
        arg++;
    }
    int r = dimg_parse_size(arg, value);
    if (r == -ERANGE) {
        cli_error("Value '%s' is out of range for parameter 'size'", arg);
        return -1;
    }
    if (r < 0) {
        cli_error("Parameter 'size' expects a non-negative number below 2^64\n"
                  "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
                  "and exabytes, respectively.");
        return -1;
    }
    return 0;
}

int
cmd_resize(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, 'J' },
        { "image-opts", no_argument, NULL, 'I' },
        { "preallocation", required_argument, NULL, 'P' },
        { "shrink", no_argument, NULL, 'S' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    bool quiet = false, image_opts = false, shrink = false;
    enum dimg_prealloc prealloc = DIMG_PREALLOC_OFF;
    int c;

    if (argc < 3) {
        cli_usage_error("Not enough arguments");
        return 1;
    }
    const char *size_arg = argv[--argc];

    optind = 0;
    while ((c = getopt_long(argc, argv, ":f:hq", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'q': quiet = true; break;
        case 'h': cli_print_help(); return 0;
        case 'J':
            if (cli_add_object(optarg) < 0)
                return 1;
            break;
        case 'I': image_opts = true; break;
        case 'P': {
            int m = dimg_prealloc_parse(optarg);
            if (m < 0) {
                cli_error("Invalid preallocation mode '%s'", optarg);
                return 1;
            }
            prealloc = (enum dimg_prealloc)m;
            break;
        }
        case 'S': shrink = true; break;
        default: return cli_bad_option(c, argv);
        }
    }
    if (optind != argc - 1) {
        cli_usage_error("Expecting image file name and size");
        return 1;
    }
    const char *filename = argv[optind];

    uint64_t n;
    int sign;
    if (parse_resize_size(size_arg, &n, &sign) < 0)
        return 1;

    /* Prints the probing warning when the format was guessed as raw. */
    dimg_image *img = cli_img_open(filename, fmt, DIMG_OPEN_RDWR | DIMG_OPEN_RESIZE, image_opts);
    if (!img)
        return 1;
    int ret = 1;

    /* qemu computes the new size in signed 64-bit arithmetic; anything that
     * wraps or reaches zero is "not positive". */
    int64_t cur = (int64_t)dimg_get_size(img);
    int64_t total;
    if (sign > 0)
        total = (int64_t)((uint64_t)cur + n);
    else if (sign < 0)
        total = (int64_t)((uint64_t)cur - n);
    else
        total = (int64_t)n;
    if (total <= 0) {
        cli_error("New image size must be positive");
        goto out;
    }
    if (total > RESIZE_MAX_SIZE) {
        cli_error("offset(%" PRId64 ") exceeds maximum(%" PRId64 ")", total,
                  (int64_t)RESIZE_MAX_SIZE);
        goto out;
    }
    if (prealloc != DIMG_PREALLOC_OFF && total <= cur) {
        cli_error("Preallocation can only be used for growing images");
        goto out;
    }
    if (total < cur && !shrink) {
        cli_error("Use the --shrink option to perform a shrink operation.");
        cli_error("warning: Shrinking an image will delete all data beyond the shrunken "
                  "image's end. Before performing such an operation, make sure there is no "
                  "important data there.");
        goto out;
    }
    if (dimg_truncate(img, (uint64_t)total, prealloc, shrink ? DIMG_TRUNCATE_SHRINK : 0) < 0) {
        cli_error("%s", dimg_get_error());
        goto out;
    }
    ret = 0;
    if (!quiet)
        printf("Image resized.\n");
out:
    if (dimg_close(img) < 0 && ret == 0) {
        cli_error("%s", dimg_get_error());
        ret = 1;
    }
    return ret;
}
