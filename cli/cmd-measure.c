/*
 * measure: the size a new image would need, for an empty disk (--size) or
 * for a copy of an existing image (filename), in qemu-img's syntax, messages
 * and output.  The numbers come from the output format's driver through
 * lib/engine/measure.c.
 *
 * Exit codes: 0 success (also after an unknown option: qemu-img's measure
 * prints getopt's complaint and the help text, and exits 0), 1 any error.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "engine/measure.h"

/* qemu-img refuses an -o list that is empty, starts with a comma or ends with
 * an unescaped one, before it looks at anything else. */
static bool
option_list_valid(const char *s)
{
    size_t n = strlen(s), trailing = 0;
    if (n == 0 || s[0] == ',')
        return false;
    while (trailing < n && s[n - 1 - trailing] == ',')
        trailing++;
    return trailing % 2 == 0;
}

/*
 * -l: "snapshot.id=ID,snapshot.name=NAME" is checked for unknown keys here;
 * anything else is a snapshot id or name.  Whether it can be loaded is only
 * known once the image is open.
 */
static int
check_snapshot_param(const char *param)
{
    if (strncmp(param, "snapshot.", 9) != 0)
        return 0;
    const char *p = param;
    while (*p) {
        size_t k = strcspn(p, "=,");
        char *key = strndup(p, k);
        if (!key)
            return -1;
        p += k;
        if (*p == '=') {
            /* Skip the value; ",," is an escaped comma inside it. */
            p++;
            while (*p && !(*p == ',' && p[1] != ','))
                p += (*p == ',') ? 2 : 1;
        } else {
            cli_error("warning: short-form boolean option '%s' deprecated", key);
            fprintf(stderr, "Please use %s=on instead\n", key);
        }
        if (*p == ',')
            p++;
        bool ok = !strcmp(key, "snapshot.id") || !strcmp(key, "snapshot.name");
        if (!ok) {
            cli_error("Invalid parameter '%s'", key);
            cli_error("Failed in parsing snapshot param '%s'", param);
        }
        free(key);
        if (!ok)
            return -1;
    }
    return 0;
}

static void
print_result(const struct dimg_measure_info *m, enum cli_output output)
{
    if (output == OUTPUT_JSON) {
        /* JSON carries the numbers as signed 64-bit: 2^63 prints negative, as in qemu-img. */
        printf("{\n");
        /* qemu-img 7.2's key order: bitmaps (when known) first. */
        if (m->has_bitmaps)
            printf("    \"bitmaps\": %" PRId64 ",\n", (int64_t)m->bitmaps);
        printf("    \"required\": %" PRId64 ",\n", (int64_t)m->required);
        printf("    \"fully-allocated\": %" PRId64 "\n", (int64_t)m->fully_allocated);
        printf("}\n");
        return;
    }
    printf("required size: %" PRIu64 "\n", m->required);
    printf("fully allocated size: %" PRIu64 "\n", m->fully_allocated);
    if (m->has_bitmaps)
        printf("bitmaps size: %" PRIu64 "\n", m->bitmaps);
}

int
cmd_measure(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "image-opts", no_argument, NULL, 'I' },
        { "object", required_argument, NULL, 'J' },
        { "output", required_argument, NULL, 'P' },
        { "size", required_argument, NULL, 's' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *out_fmt = "raw", *snapshot = NULL;
    char *options = NULL;
    enum cli_output output = OUTPUT_HUMAN;
    bool image_opts = false;
    unsigned flags = 0;
    int64_t size = -1;
    dimg_image *src = NULL;
    int c, ret = 1;

    optind = 0;
    /* No ':' prefix: getopt itself reports bad options, as qemu-img's measure lets it. */
    while ((c = getopt_long(argc, argv, "hf:o:O:l:U", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'o':
            if (!option_list_valid(optarg)) {
                cli_error("Invalid option list: %s", optarg);
                goto out;
            }
            if (cli_append_options(&options, optarg) < 0)
                goto out;
            break;
        case 'O': out_fmt = optarg; break;
        case 'l':
            if (check_snapshot_param(optarg) < 0)
                goto out;
            snapshot = optarg;
            break;
        case 'U': flags |= DIMG_OPEN_FORCE_SHARE; break;
        case 'I': image_opts = true; break;
        case 'J':
            if (cli_add_object(optarg) < 0)
                goto out;
            break;
        case 'P':
            if (cli_parse_output(optarg, &output) < 0)
                goto out;
            break;
        case 's':
            if (cli_parse_image_size(optarg, &size) < 0)
                goto out;
            break;
        case 'h':
        default:
            cli_print_help();
            ret = 0;
            goto out;
        }
    }

    if (argc - optind > 1) {
        cli_error("At most one filename argument is allowed.");
        goto out;
    }
    const char *filename = optind < argc ? argv[optind] : NULL;
    if (!filename && (image_opts || fmt || snapshot)) {
        cli_error("--image-opts, -f, and -l require a filename argument.");
        goto out;
    }
    if (filename && size >= 0) {
        cli_error("--size N cannot be used together with a filename.");
        goto out;
    }
    if (!filename && size < 0) {
        cli_error("Either --size N or one filename must be specified.");
        goto out;
    }

    if (filename) {
        src = cli_img_open(filename, fmt, flags, image_opts);
        if (!src)
            goto out;
        if (snapshot) {
            /* No format dimg reads can load an internal snapshot temporarily yet. */
            cli_error("Failed to load snapshot: Block format '%s' used by device '' does not "
                      "support temporarily loading internal snapshots",
                      dimg_get_format(src));
            goto out;
        }
    }

    /* An unknown format is reported alone; a bad option also names the format. */
    if (dimg_measure_check_options(out_fmt, NULL) < 0) {
        cli_error("%s", dimg_get_error());
        goto out;
    }
    if (dimg_measure_check_options(out_fmt, options) < 0) {
        cli_error("%s", dimg_get_error());
        cli_error("Invalid options for file format '%s'", out_fmt);
        goto out;
    }
    struct dimg_measure_info m;
    if (dimg_measure(out_fmt, options, size, src, &m) < 0) {
        cli_error("%s", dimg_get_error());
        goto out;
    }
    print_result(&m, output);
    ret = 0;
out:
    dimg_close(src);
    free(options);
    return ret;
}
