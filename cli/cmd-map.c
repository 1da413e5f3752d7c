/*
 * map: the allocation of an image and its backing chain, as qemu-img prints it.
 *
 *   map [--object objectdef] [--image-opts] [-f fmt] [--start-offset=offset]
 *       [--max-length=len] [--output=ofmt] [-U] filename
 *
 * Exit codes: 0 success, 1 any error (bad arguments, open failure, metadata
 * read error, data that human output cannot describe).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "engine/map.h"

/* qemu-img's cvtnum(): a size with optional suffix, 0..INT64_MAX. */
static int
parse_offset(const char *what, const char *s, uint64_t *out)
{
    uint64_t v;
    int r = dimg_parse_size(s, &v);
    if (r == -ERANGE || (r == 0 && v > INT64_MAX)) {
        cli_error("Invalid %s specified. Must be between 0 and %" PRId64 ".", what, INT64_MAX);
        return -1;
    }
    if (r < 0) {
        cli_error("Invalid %s specified. You may use k, M, G, T, P or E suffixes for", what);
        cli_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return -1;
    }
    *out = v;
    return 0;
}

static char *
put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

static char *
put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static const char *
tf(bool b)
{
    return b ? "true" : "false";
}

/* { "start": S, "length": L, "depth": D, "present": B, "zero": B, "data": B[, "offset": O]} */
static int
print_json(const struct dimg_map_entry *e, const struct dimg_map_entry *next, void *opaque)
{
    (void)opaque;
    char line[256], *p = line;
    p = put_str(p, "{ \"start\": ");
    p = put_u64(p, e->start);
    p = put_str(p, ", \"length\": ");
    p = put_u64(p, e->length);
    p = put_str(p, ", \"depth\": ");
    p = put_u64(p, (uint64_t)e->depth);
    p = put_str(p, ", \"present\": ");
    p = put_str(p, tf(e->present));
    p = put_str(p, ", \"zero\": ");
    p = put_str(p, tf(e->zero));
    p = put_str(p, ", \"data\": ");
    p = put_str(p, tf(e->data));
    if (e->has_offset) {
        p = put_str(p, ", \"offset\": ");
        p = put_u64(p, e->offset);
    }
    *p++ = '}';
    if (next) {
        *p++ = ',';
        *p++ = '\n';
    }
    fwrite(line, 1, (size_t)(p - line), stdout);
    return 0;
}

static int
print_human(const struct dimg_map_entry *e, const struct dimg_map_entry *next, void *opaque)
{
    (void)next;
    if (e->data && !e->has_offset) {
        cli_error("File contains external, encrypted or compressed clusters.");
        *(bool *)opaque = true;
        return -EINVAL;
    }
    if (e->data && !e->zero)
        printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", e->start, e->length,
               e->has_offset ? e->offset : 0,
               e->has_offset && e->filename ? e->filename : "");
    return 0;
}

int
cmd_map(int argc, char **argv)
{
    enum { OPT_OUTPUT = 256, OPT_OBJECT, OPT_IMAGE_OPTS, OPT_START, OPT_MAX };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { "start-offset", required_argument, NULL, 's' },
        { "max-length", required_argument, NULL, 'l' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    enum cli_output output = OUTPUT_HUMAN;
    bool image_opts = false;
    unsigned flags = 0;
    uint64_t start = 0, max_length = UINT64_MAX;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, CLI_OPTSTRING_PREFIX "f:s:l:hU", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': cli_print_help(); return 0;
        case 'f': fmt = optarg; break;
        case 'U': flags |= DIMG_OPEN_FORCE_SHARE; break;
        case 's':
            if (parse_offset("start offset", optarg, &start) < 0)
                return 1;
            break;
        case 'l':
            if (parse_offset("max length", optarg, &max_length) < 0)
                return 1;
            break;
        case OPT_OUTPUT:
            if (cli_parse_output(optarg, &output) < 0)
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
    if (optind != argc - 1) {
        cli_usage_error("Expecting one image file name");
        return 1;
    }
    const char *filename = argv[optind];
    if (image_opts && fmt) {
        cli_error("--image-opts and --format are mutually exclusive");
        return 1;
    }
    dimg_image *img = cli_open(filename, fmt, flags, image_opts);
    if (!img)
        return 1;

    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    bool reported = false;
    int r;
    if (output == OUTPUT_JSON) {
        fputc('[', stdout);
        r = dimg_map_walk(img, start, max_length, 0, print_json, NULL);
        if (r >= 0)
            fputs("]\n", stdout);
    } else {
        fputs("Offset          Length          Mapped to       File\n", stdout);
        r = dimg_map_walk(img, start, max_length, DIMG_MAP_HUMAN, print_human, &reported);
    }
    if (r < 0 && !reported)
        cli_error("Could not read file metadata: %s", strerror(-r));
    fflush(stdout);
    dimg_close(img);
    return r < 0 ? 1 : 0;
}
