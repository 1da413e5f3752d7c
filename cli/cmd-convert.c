/*
 * convert: copy one or more images (concatenated) into a new or existing
 * image, with qemu-img's syntax, checks, messages and exit codes (0 success,
 * 1 any error).  The copy itself is lib/engine/convert.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd.h"
#include "engine/convert.h"
#include "progress.h"

enum {
    OPT_OBJECT = 256,
    OPT_IMAGE_OPTS,
    OPT_TARGET_IMAGE_OPTS,
    OPT_SALVAGE,
    OPT_TARGET_IS_ZERO,
    OPT_BITMAPS,
    OPT_SKIP_BROKEN,
};

struct convert_opts {
    const char *fmt, *out_fmt, *backing, *backing_fmt;
    /* -l snapshot.id=ID,snapshot.name=NAME, or -l / -s with an id or name */
    char *snap_id, *snap_name;
    const char *snap_id_or_name;
    const char *cache, *src_cache;
    char *options;
    bool compress, copy_offload, progress, quiet, skip_create, out_of_order, force_share;
    bool image_opts, target_image_opts, target_is_zero, bitmaps, salvage, sparse_given;
    bool skip_broken;            /* --skip-broken-bitmaps */
    uint64_t sparse_size, rate_limit;
    unsigned workers;
};

static void
progress_cb(double percent, void *opaque)
{
    (void)opaque;
    /* qemu-img keeps the percentage as a float. */
    progress_set((double)(float)percent);
}

static int
parse_workers(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > CONVERT_MAX_WORKERS) {
        cli_error("Invalid number of coroutines. Allowed number of coroutines is between 1 and %d",
                  CONVERT_MAX_WORKERS);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int
parse_sparse(const char *s, uint64_t *out)
{
    uint64_t v;
    if (dimg_parse_size(s, &v) < 0) {
        cli_error("Invalid buffer size for sparse output specified. You may use k, M, G, T, P or E "
                  "suffixes for");
        cli_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return -1;
    }
    if (v % 512 || v > CONVERT_MAX_SPARSE_SIZE) {
        cli_error("Invalid buffer size for sparse output specified. Valid sizes are multiples of "
                  "512 up to %u. Select 0 to disable sparse detection (fully allocates output).",
                  CONVERT_MAX_SPARSE_SIZE);
        return -1;
    }
    *out = v;
    return 0;
}

static int
parse_rate(const char *s, uint64_t *out)
{
    if (dimg_parse_size(s, out) < 0) {
        cli_error("Invalid rate limit specified. You may use k, M, G, T, P or E suffixes for");
        cli_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return -1;
    }
    return 0;
}

/*
 * The option names a format accepts at creation, read from its -o help text
 * ("  name=<type> ..." lines); NULL when the format is unknown.
 */
static char *
create_option_names(const char *fmt)
{
    char *text = NULL;
    if (dimg_create_options_help(fmt, 1, &text) < 0)
        return NULL;
    return text;
}

static bool
format_has_option(const char *help, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = help; (p = strstr(p, name)); p += n)
        if (p >= help + 2 && p[-1] == ' ' && p[-2] == ' ' && p[n] == '=')
            return true;
    return false;
}

/* The checks qemu-img makes on the output format before creating anything. */
static int
check_output_format(const struct convert_opts *o)
{
    char *help = create_option_names(o->out_fmt);
    if (!help) {
        cli_error("Unknown file format '%s'", o->out_fmt);
        return -1;
    }
    int ret = -1;
    if (o->options) {
        char *copy = strdup(o->options);
        for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
            char *eq = strchr(tok, '=');
            if (eq)
                *eq = '\0';
            if (*tok && !format_has_option(help, tok)) {
                cli_error("Invalid parameter '%s'", tok);
                free(copy);
                goto out;
            }
        }
        free(copy);
    }
    if (o->backing && !format_has_option(help, "backing_file")) {
        cli_error("Backing file not supported for file format '%s'", o->out_fmt);
        goto out;
    }
    if (o->backing_fmt && !format_has_option(help, "backing_fmt")) {
        cli_error("Backing file format not supported for file format '%s'", o->out_fmt);
        goto out;
    }
    if (o->compress && !format_has_option(help, "compression_type") &&
        strcmp(o->out_fmt, "vmdk") != 0 && strcmp(o->out_fmt, "qcow") != 0) {
        cli_error("Compression not supported for this file format");
        goto out;
    }
    ret = 0;
out:
    free(help);
    return ret;
}

/* -B/-F become options of the new image, commas escaped. */
static int
add_backing_options(struct convert_opts *o)
{
    if (o->backing) {
        char *o2 = malloc(strlen(o->backing) * 2 + 16), *e;
        if (!o2)
            return -1;
        e = o2 + sprintf(o2, "backing_file=");
        for (const char *p = o->backing; *p; p++) {
            if (*p == ',')
                *e++ = ',';
            *e++ = *p;
        }
        *e = '\0';
        int r = cli_append_options(&o->options, o2);
        free(o2);
        if (r < 0)
            return -1;
    }
    if (o->backing_fmt) {
        char *o2 = malloc(strlen(o->backing_fmt) + 16);
        if (!o2)
            return -1;
        sprintf(o2, "backing_fmt=%s", o->backing_fmt);
        int r = cli_append_options(&o->options, o2);
        free(o2);
        if (r < 0)
            return -1;
    }
    return 0;
}

/*
 * Creating the target over one of the sources would destroy it; qemu-img's
 * lock on the source refuses that.  dimg's read-only raw opens share the
 * write permission, so check for the same file here.
 */
static bool
is_a_source(const char *out, char **names, size_t n, bool image_opts)
{
    struct stat so, ss;
    if (image_opts || stat(out, &so) < 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (stat(names[i], &ss) == 0 && ss.st_dev == so.st_dev && ss.st_ino == so.st_ino)
            return true;
    return false;
}

static int
create_target(struct convert_opts *o, const char *out, uint64_t size)
{
    if (add_backing_options(o) < 0)
        return -1;
    if (dimg_create(out, o->out_fmt, (int64_t)size, o->options, DIMG_CREATE_QUIET, NULL,
                    NULL) < 0) {
        const char *msg = dimg_get_error();
        size_t n = strlen(out);
        if (!strncmp(msg, out, n) && !strncmp(msg + n, ": ", 2))
            msg += n + 2;
        cli_error("%s: error while converting %s: %s", out, o->out_fmt, msg);
        return -1;
    }
    return 0;
}

/*
 * -l: "snapshot.id=ID,snapshot.name=NAME" (",," is a comma in a value, a key
 * without a value means "on"); anything else is an id or a name.
 */
static int
parse_snapshot_param(const char *param, struct convert_opts *o)
{
    if (strncmp(param, "snapshot.", 9) != 0) {
        o->snap_id_or_name = param;
        return 0;
    }
    for (const char *p = param; *p;) {
        size_t k = strcspn(p, "=,");
        char *key = strndup(p, k), *val;
        if (!key)
            return -1;
        p += k;
        if (*p == '=') {
            val = malloc(strlen(++p) + 1);
            if (!val) {
                free(key);
                return -1;
            }
            size_t n = 0;
            for (; *p && !(*p == ',' && p[1] != ','); p += (*p == ',') ? 2 : 1)
                val[n++] = *p;
            val[n] = '\0';
        } else {
            cli_error("warning: short-form boolean option '%s' deprecated", key);
            fprintf(stderr, "Please use %s=on instead\n", key);
            val = strdup("on");
        }
        if (*p == ',')
            p++;
        char **slot = !strcmp(key, "snapshot.id") ? &o->snap_id
                      : !strcmp(key, "snapshot.name") ? &o->snap_name : NULL;
        if (!slot) {
            cli_error("Invalid parameter '%s'", key);
            cli_error("Failed in parsing snapshot param '%s'", param);
            free(key);
            free(val);
            return -1;
        }
        free(key);
        free(*slot);
        *slot = val;
    }
    return 0;
}

static int
parse_args(int argc, char **argv, struct convert_opts *o)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "target-image-opts", no_argument, NULL, OPT_TARGET_IMAGE_OPTS },
        { "salvage", no_argument, NULL, OPT_SALVAGE },
        { "target-is-zero", no_argument, NULL, OPT_TARGET_IS_ZERO },
        { "bitmaps", no_argument, NULL, OPT_BITMAPS },
        { "skip-broken-bitmaps", no_argument, NULL, OPT_SKIP_BROKEN },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    optind = 0;
    const char *dash_s = NULL;
    bool dash_l = false;
    while ((c = getopt_long(argc, argv, ":hf:O:B:CcF:o:l:s:S:pt:T:qnm:WUr:", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'h': cli_print_help(); return 0;
        case 'f': o->fmt = optarg; break;
        case 'O': o->out_fmt = optarg; break;
        case 'B': o->backing = optarg; break;
        case 'F': o->backing_fmt = optarg; break;
        case 'C': o->copy_offload = true; break;
        case 'c': o->compress = true; break;
        case 'o':
            if (cli_append_options(&o->options, optarg) < 0)
                return 1;
            break;
        case 'l':
            if (parse_snapshot_param(optarg, o) < 0)
                return 1;
            dash_l = true;
            break;
        case 's': dash_s = optarg; break; /* dimg extension: qemu-img 7.2 dropped -s */
        case 'S':
            if (parse_sparse(optarg, &o->sparse_size) < 0)
                return 1;
            o->sparse_given = true;
            break;
        case 'p': o->progress = true; break;
        case 't': o->cache = optarg; break;
        case 'T': o->src_cache = optarg; break;
        case 'q': o->quiet = true; break;
        case 'n': o->skip_create = true; break;
        case 'm':
            if (parse_workers(optarg, &o->workers) < 0)
                return 1;
            break;
        case 'W': o->out_of_order = true; break;
        case 'U': o->force_share = true; break;
        case 'r':
            if (parse_rate(optarg, &o->rate_limit) < 0)
                return 1;
            break;
        case OPT_OBJECT:
            if (cli_add_object(optarg) < 0)
                return 1;
            break;
        case OPT_IMAGE_OPTS: o->image_opts = true; break;
        case OPT_TARGET_IMAGE_OPTS: o->target_image_opts = true; break;
        case OPT_SALVAGE: o->salvage = true; break;
        case OPT_TARGET_IS_ZERO: o->target_is_zero = true; break;
        case OPT_BITMAPS: o->bitmaps = true; break;
        case OPT_SKIP_BROKEN: o->skip_broken = true; break;
        default: return cli_bad_option(c, argv);
        }
    }
    /* As qemu-img did while it had -s: -l wins. */
    if (dash_s && !dash_l)
        o->snap_id_or_name = dash_s;
    return -1; /* go on */
}

/* Checks made before any image is opened. */
static int
check_combinations(const struct convert_opts *o)
{
    if (o->skip_broken && !o->bitmaps) {
        cli_error("Use of --skip-broken-bitmaps requires --bitmaps");
        return -1;
    }
    if (o->copy_offload && o->compress) {
        cli_error("Cannot enable copy offloading when -c is used");
        return -1;
    }
    if (o->copy_offload && o->sparse_given) {
        cli_error("Cannot enable copy offloading when -S is used");
        return -1;
    }
    if (o->target_image_opts && !o->skip_create) {
        cli_error("--target-image-opts requires use of -n flag");
        return -1;
    }
    if (o->target_is_zero && !o->skip_create) {
        cli_error("--target-is-zero requires use of -n flag");
        return -1;
    }
    if (o->skip_create && o->options) {
        cli_error("-o has no effect when skipping image creation");
        return -1;
    }
    unsigned dummy = 0;
    if (cli_cache_flags(o->src_cache, true, &dummy) < 0)
        return -1;
    return 0;
}

/* Errors qemu-img reports for the opened sources (raw and friends). */
static int
check_sources(const struct convert_opts *o, dimg_image *const *src, size_t n)
{
    int r = 0;
    if (o->snap_id || o->snap_name) {
        /* Only the first source shows the snapshot, as in qemu-img. */
        r = dimg_snapshot_load(src[0], o->snap_id, o->snap_name);
    } else if (o->snap_id_or_name) {
        if (n > 1) {
            cli_error("No support for concatenating multiple snapshot");
            return -1;
        }
        r = dimg_snapshot_load(src[0], o->snap_id_or_name, NULL);
        if (r == -ENOENT)
            r = dimg_snapshot_load(src[0], NULL, o->snap_id_or_name);
    }
    if (r < 0) {
        cli_error("Failed to load snapshot: %s", dimg_get_error());
        return -1;
    }
    if (o->bitmaps && cli_convert_check_bitmaps(src, n, o->skip_broken) < 0)
        return -1;
    return 0;
}

int
cmd_convert(int argc, char **argv)
{
    struct convert_opts o = { .out_fmt = "raw", .sparse_size = 4096, .workers = 8 };
    dimg_image **src = NULL, *dst = NULL;
    size_t nsrc = 0;
    int ret = parse_args(argc, argv, &o);
    if (ret >= 0)
        goto out;
    ret = 1;

    int nfiles = argc - optind;
    const char *out_name = nfiles >= 1 ? argv[argc - 1] : NULL;
    if (cli_options_want_help(o.options)) {
        ret = cli_print_create_help(o.out_fmt, out_name);
        goto out;
    }
    if (nfiles < 2) {
        cli_error("Must specify image file name");
        goto out;
    }
    if (check_combinations(&o) < 0)
        goto out;

    /* Sources. */
    unsigned sflags = DIMG_OPEN_DENY_WRITE;
    if (o.force_share)
        sflags = DIMG_OPEN_FORCE_SHARE;
    cli_cache_flags(o.src_cache, true, &sflags);
    nsrc = (size_t)nfiles - 1;
    src = calloc(nsrc, sizeof *src);
    if (!src)
        goto out;
    for (size_t i = 0; i < nsrc; i++) {
        src[i] = cli_open(argv[optind + (int)i], o.fmt, sflags, o.image_opts);
        if (!src[i])
            goto out;
    }
    if (check_sources(&o, src, nsrc) < 0)
        goto out;
    uint64_t total = convert_total_size(src, nsrc);

    /* Target. */
    if (!o.skip_create) {
        if (check_output_format(&o) < 0)
            goto out;
        if (is_a_source(out_name, argv + optind, nsrc, o.image_opts)) {
            cli_error("%s: error while converting %s: Failed to get \"write\" lock\n"
                      "Is another process using the image [%s]?",
                      out_name, o.out_fmt, out_name);
            goto out;
        }
        if (create_target(&o, out_name, total) < 0)
            goto out;
    }
    unsigned tflags = DIMG_OPEN_RDWR | DIMG_OPEN_PROBE_WARN_OK;
    if (o.cache) {
        if (cli_cache_flags(o.cache, false, &tflags) < 0)
            goto out;
    } else {
        tflags |= DIMG_OPEN_CACHE(DIMG_CACHE_UNSAFE);
    }
    dst = cli_open(out_name, o.target_image_opts ? NULL : o.out_fmt, tflags,
                   o.target_image_opts);
    if (!dst)
        goto out;
    if (o.bitmaps && !dimg_bitmap_supported(dst)) {
        cli_error("Format driver '%s' does not support bitmaps", dimg_get_format(dst));
        goto out;
    }
    if (o.skip_create && dimg_get_size(dst) < total) {
        cli_error("output file is smaller than input file");
        goto out;
    }

    struct convert_params p = {
        .src = src,
        .nsrc = nsrc,
        .dst = dst,
        .sparse_size = o.sparse_size,
        .target_is_zero = (!o.skip_create || o.target_is_zero) && !o.backing,
        .target_has_backing = o.backing != NULL,
        .workers = o.workers,
        .out_of_order = o.out_of_order,
        .rate_limit = o.rate_limit,
        .compress = o.compress,
        .copy_offload = o.copy_offload,
        .progress = (o.progress && !o.quiet) ? progress_cb : NULL,
    };
    progress_init(o.progress && !o.quiet, 1.0);
    int r = engine_convert(&p);
    progress_end();
    if (r < 0) {
        cli_error("%s", dimg_get_error());
        goto out;
    }
    if (o.bitmaps && cli_convert_copy_bitmaps(src[0], dst, o.skip_broken) < 0)
        goto out;
    ret = 0;
out:
    if (dst && dimg_close(dst) < 0 && ret == 0) {
        cli_error("%s", dimg_get_error());
        ret = 1;
    }
    for (size_t i = 0; src && i < nsrc; i++)
        dimg_close(src[i]);
    free(src);
    free(o.options);
    free(o.snap_id);
    free(o.snap_name);
    return ret;
}
