/*
 * amend: change format options of an existing image (qemu-img's syntax and
 * messages).  The library checks the options against the format's table and
 * applies them (dimg_amend); formats without a table answer "Format driver
 * 'raw' does not support option amendment".
 *
 * Exit codes: 0 success (or -o help printed), 1 any error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "progress.h"

/* -o help for a format: qemu-img's print_amend_option_help(). */
static int
print_amend_help(const char *fmt)
{
    char *text;
    if (dimg_amend_options_help(fmt, &text) < 0) {
        cli_error("%s", dimg_get_error());
        return 1;
    }
    fputs(text, stdout);
    free(text);
    return 0;
}

/* qemu-img starts its progress line only once the options were accepted. */
static bool progress_started;

static void
on_progress(double percent, void *opaque)
{
    (void)opaque;
    if (!progress_started) {
        progress_init(true, 1.0);
        progress_started = true;
    }
    progress_set(percent);
}

/* qemu-img's check of one -o argument: not empty, no leading comma, and no
 * unpaired trailing comma (",," is an escaped comma). */
static bool
valid_option_list(const char *s)
{
    size_t len = strlen(s), i = len;
    if (!s[0] || s[0] == ',')
        return false;
    while (i > 0 && s[i - 1] == ',')
        i--;
    return (len - i) % 2 == 0;
}

int
cmd_amend(int argc, char **argv)
{
    enum { OPT_OBJECT = 256, OPT_IMAGE_OPTS, OPT_FORCE };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "force", no_argument, NULL, OPT_FORCE },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *cache = NULL;
    char *options = NULL;
    bool progress = false, quiet = false, image_opts = false, force = false;
    dimg_image *img = NULL;
    int c, ret = 1;

    optind = 0;
    while ((c = getopt_long(argc, argv, CLI_OPTSTRING_PREFIX "ho:f:t:pq", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': cli_print_help(); ret = 0; goto done;
        case 'o':
            if (!valid_option_list(optarg)) {
                cli_error("Invalid option list: %s", optarg);
                goto done;
            }
            if (cli_append_options(&options, optarg) < 0) {
                cli_error("out of memory");
                goto done;
            }
            break;
        case 'f': fmt = optarg; break;
        case 't': cache = optarg; break;
        case 'p': progress = true; break;
        case 'q': quiet = true; break;
        case OPT_OBJECT:
            if (cli_add_object(optarg) < 0)
                goto done;
            break;
        case OPT_IMAGE_OPTS: image_opts = true; break;
        case OPT_FORCE: force = true; break;
        default: ret = cli_bad_option(c, argv); goto done;
        }
    }
    if (!options) {
        cli_usage_error("Must specify options (-o)");
        goto done;
    }
    if (quiet)
        progress = false;

    /* From here on qemu-img ends its (silent) progress output with a newline. */
    if (fmt && cli_options_want_help(options)) {
        ret = print_amend_help(fmt);
        goto out;
    }
    if (optind != argc - 1) {
        cli_error("Expecting one image file name");
        goto out;
    }
    const char *filename = argv[optind];
    unsigned flags = DIMG_OPEN_RDWR;
    if (cli_cache_flags(cache, false, &flags) < 0)
        goto out;
    if (!(img = cli_img_open(filename, fmt, flags, image_opts)))
        goto out;
    if (cli_options_want_help(options)) {
        ret = print_amend_help(dimg_get_format(img));
        goto out;
    }
    progress_started = false;
    if (dimg_amend(img, options, force ? DIMG_AMEND_FORCE : 0, progress ? on_progress : NULL,
                   NULL) < 0)
        cli_error("%s", dimg_get_error());
    else
        ret = 0;
out:
    if (progress && progress_started) {
        progress_end();
    } else if (progress) {
        printf("\n");
        fflush(stdout);
    }
done:
    if (img && dimg_close(img) < 0 && ret == 0) {
        cli_error_lib("%s", "");
        ret = 1;
    }
    free(options);
    return ret;
}
