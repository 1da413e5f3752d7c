/* create: make a new image (qemu-img create syntax and messages). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

/* Append one -o argument to the accumulated list, comma separated. */
int
cli_append_options(char **acc, const char *more)
{
    size_t a = *acc ? strlen(*acc) : 0;
    char *n = realloc(*acc, a + strlen(more) + 2);
    if (!n)
        return -1;
    if (a)
        n[a++] = ',';
    strcpy(n + a, more);
    *acc = n;
    return 0;
}

/* true when an option list asks for help ("help" or "?" as a key). */
bool
cli_options_want_help(const char *opts)
{
    if (!opts)
        return false;
    char *copy = strdup(opts);
    bool want = false;
    for (char *tok = strtok(copy, ","); tok && !want; tok = strtok(NULL, ","))
        want = !strcmp(tok, "help") || !strcmp(tok, "?");
    free(copy);
    return want;
}

int
cli_print_create_help(const char *fmt, const char *filename)
{
    char *text = NULL;
    if (dimg_create_options_help(fmt, filename != NULL, &text) < 0) {
        cli_error_lib("%s", "");
        return 1;
    }
    fputs(text, stdout);
    free(text);
    return 0;
}

static void
print_formatting(const char *line, void *opaque)
{
    (void)opaque;
    printf("%s\n", line);
    fflush(stdout);
}

int
cmd_create(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, 'J' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = "raw", *backing = NULL, *backing_fmt = NULL;
    char *options = NULL;
    bool quiet = false, unsafe = false;
    int c, ret = 1;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":F:b:f:ho:qu", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'b': backing = optarg; break;
        case 'F': backing_fmt = optarg; break;
        case 'o':
            if (cli_append_options(&options, optarg) < 0)
                goto out;
            break;
        case 'q': quiet = true; break;
        case 'u': unsafe = true; break;
        case 'h': cli_print_help(); ret = 0; goto out;
        case 'J':
            if (cli_add_object(optarg) < 0)
                goto out;
            break;
        default: ret = cli_bad_option(c, argv); goto out;
        }
    }
    if (cli_options_want_help(options)) {
        ret = cli_print_create_help(fmt, optind < argc ? argv[optind] : NULL);
        goto out;
    }
    if (optind >= argc) {
        cli_usage_error("Expecting image file name");
        goto out;
    }
    const char *filename = argv[optind++];
    int64_t size = -1;
    if (optind < argc) {
        if (cli_parse_image_size(argv[optind++], &size) < 0)
            goto out;
    }
    if (optind != argc) {
        cli_usage_error("Unexpected argument: %s", argv[optind]);
        goto out;
    }
    /* -b/-F become the backing_file/backing_fmt options, as in qemu-img. */
    if (backing) {
        char *o = NULL;
        char *esc = malloc(strlen(backing) * 2 + 1), *e = esc;
        for (const char *p = backing; *p; p++) {
            if (*p == ',')
                *e++ = ',';
            *e++ = *p;
        }
        *e = '\0';
        o = malloc(strlen(esc) + 16);
        sprintf(o, "backing_file=%s", esc);
        free(esc);
        cli_append_options(&options, o);
        free(o);
    }
    if (backing_fmt) {
        char *o = malloc(strlen(backing_fmt) + 16);
        sprintf(o, "backing_fmt=%s", backing_fmt);
        cli_append_options(&options, o);
        free(o);
    }
    if (options && size >= 0) {
        /* A size given twice is refused. */
        char *copy = strdup(options);
        for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ","))
            if (!strncmp(tok, "size=", 5)) {
                free(copy);
                cli_error("%s: The image size must be specified only once", filename);
                goto out;
            }
        free(copy);
    }
    unsigned flags = (unsafe ? DIMG_CREATE_NO_BACKING_CHECK : 0) | (quiet ? DIMG_CREATE_QUIET : 0);
    if (dimg_create(filename, fmt, size, options, flags, quiet ? NULL : print_formatting, NULL) < 0) {
        cli_error_lib("%s", "");
        goto out;
    }
    ret = 0;
out:
    free(options);
    return ret;
}
