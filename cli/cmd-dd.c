/*
 * dd: copy (part of) an image into a new image, with dd(1)-style operands as
 * qemu-img's dd takes them.  Semantics observed from qemu-img 7.2:
 *  - the input length is capped at count*bs when that is smaller (the cap
 *    counts from the start of the input, skipped blocks included);
 *  - the output is created with that length minus skip*bs, or empty when the
 *    skip lies beyond it (then "cannot skip to specified offset" is printed
 *    and the exit code is still 0);
 *  - every byte of the range is written, zeros included, so the output is
 *    fully allocated.
 * bs only sets these sizes: the copy itself runs in larger chunks, which
 * gives the same output.
 *
 * Exit codes: 0 copied (also after a skip past the end), 1 any error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

#define DD_CHUNK (4u << 20)

struct dd_args {
    const char *in, *out;
    uint64_t bs, count, skip;
    bool has_count, has_skip;
};

/* count= and skip=: sizes with suffixes, 0..INT64_MAX. */
static int
parse_blocks(const char *name, const char *v, uint64_t *out)
{
    int r = dimg_parse_size(v, out);
    if (r == -ERANGE || (r == 0 && *out > INT64_MAX)) {
        cli_error("Invalid %s specified. Must be between 0 and 9223372036854775807.", name);
        return -1;
    }
    if (r < 0) {
        cli_error("Invalid %s specified. You may use k, M, G, T, P or E suffixes for", name);
        cli_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return -1;
    }
    return 0;
}

static int
parse_operand(const char *arg, struct dd_args *a)
{
    const char *eq = strchr(arg, '=');
    size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);
    const char *v = eq ? eq + 1 : NULL;
#define IS(k) (klen == strlen(k) && strncmp(arg, k, klen) == 0 && v)
    if (IS("if")) {
        a->in = v;
    } else if (IS("of")) {
        a->out = v;
    } else if (IS("bs")) {
        int r = dimg_parse_size(v, &a->bs);
        if (r == -ERANGE || (r == 0 && (a->bs == 0 || a->bs > INT32_MAX))) {
            cli_error("Invalid bs specified. Must be between 1 and 2147483647.");
            return -1;
        }
        if (r < 0) {
            cli_error("Invalid bs specified. You may use k, M, G, T, P or E suffixes for");
            cli_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
            return -1;
        }
    } else if (IS("count")) {
        if (parse_blocks("count", v, &a->count) < 0)
            return -1;
        a->has_count = true;
    } else if (IS("skip")) {
        if (parse_blocks("skip", v, &a->skip) < 0)
            return -1;
        a->has_skip = true;
    } else {
        cli_error("unrecognized operand %.*s", (int)klen, arg);
        return -1;
    }
#undef IS
    return 0;
}

static int
copy_range(dimg_image *src, dimg_image *dst, uint64_t in_pos, uint64_t end)
{
    size_t cap = (size_t)(end - in_pos < DD_CHUNK ? end - in_pos : DD_CHUNK);
    void *buf = malloc(cap ? cap : 1);
    uint64_t out_pos = 0;
    int ret = -1;
    if (!buf) {
        cli_error("out of memory");
        return -1;
    }
    while (in_pos < end) {
        size_t n = (size_t)(end - in_pos < cap ? end - in_pos : cap);
        if (dimg_pread(src, buf, n, in_pos) < 0) {
            cli_error("error while reading from input image file: %s", dimg_get_error());
            goto out;
        }
        if (dimg_pwrite(dst, buf, n, out_pos) < 0) {
            cli_error("error while writing to output image file: %s", dimg_get_error());
            goto out;
        }
        in_pos += n;
        out_pos += n;
    }
    ret = 0;
out:
    free(buf);
    return ret;
}

/* dimg_create's message starts with "<file>: "; dd puts its own words there. */
static const char *
strip_file_prefix(const char *msg, const char *file)
{
    size_t n = strlen(file);
    if (strncmp(msg, file, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
        return msg + n + 2;
    return msg;
}

int
cmd_dd(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "image-opts", no_argument, NULL, 'I' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *out_fmt = "raw";
    bool image_opts = false;
    unsigned flags = 0;
    struct dd_args a = { .bs = 512 };
    dimg_image *src = NULL, *dst = NULL;
    int c, ret = 1;

    optind = 0;
    while ((c = getopt_long(argc, argv, ":hf:O:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'O': out_fmt = optarg; break;
        case 'U': flags |= DIMG_OPEN_FORCE_SHARE; break;
        case 'I': image_opts = true; break;
        case 'h': cli_print_help(); return 0;
        default: return cli_bad_option(c, argv);
        }
    }
    for (int i = optind; i < argc; i++)
        if (parse_operand(argv[i], &a) < 0)
            return 1;
    if (!a.in || !a.out) {
        cli_error("Must specify both input and output files");
        return 1;
    }
    src = cli_img_open(a.in, fmt, flags, image_opts);
    if (!src)
        goto out;
    bool known = false;
    for (const char *const *f = dimg_format_names(); *f && !known; f++)
        known = strcmp(*f, out_fmt) == 0;
    if (!known) {
        cli_error("Unknown file format");
        goto out;
    }

    uint64_t size = dimg_get_size(src);
    if (a.has_count && a.count <= INT64_MAX / a.bs && a.count * a.bs < size)
        size = a.count * a.bs;
    bool skip_past_end = a.has_skip && (a.skip > INT64_MAX / a.bs || a.skip * a.bs > size);
    uint64_t in_pos = a.has_skip && !skip_past_end ? a.skip * a.bs : 0;
    uint64_t out_size = skip_past_end ? 0 : size - in_pos;

    if (dimg_create(a.out, out_fmt, (int64_t)out_size, NULL, DIMG_CREATE_QUIET, NULL, NULL) < 0) {
        cli_error("%s: error while creating output image: %s", a.out,
                  strip_file_prefix(dimg_get_error(), a.out));
        goto out;
    }
    dst = cli_open(a.out, out_fmt, DIMG_OPEN_RDWR, false);
    if (!dst)
        goto out;
    if (skip_past_end) {
        /* Like dd(1): an empty output and a complaint, but not a failure. */
        cli_error("%s: cannot skip to specified offset", a.in);
        in_pos = size;
    }
    if (copy_range(src, dst, in_pos, size) < 0)
        goto out;
    ret = 0;
out:
    if (dst && dimg_close(dst) < 0 && ret == 0) {
        cli_error("%s", dimg_get_error());
        ret = 1;
    }
    dimg_close(src);
    return ret;
}
