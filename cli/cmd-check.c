/*
 * check: consistency check (and repair with -r) of an image, qemu-img's syntax.
 *
 * The work is the library's dimg_check(); this file parses the command line,
 * opens the image and reports the result the way qemu-img does.
 * A format without the hook gets "This image format does not support checks".
 *
 * Exit codes (qemu-img's): 0 no problems, 1 usage/open error or the check
 * itself failed, 2 corruptions found, 3 only leaks found, 63 the format has no
 * checks.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

static void
print_human(const struct dimg_check *c)
{
    if (!(c->corruptions || c->leaks || c->check_errors)) {
        printf("No errors were found on the image.\n");
    } else {
        if (c->corruptions)
            printf("\n%" PRId64 " errors were found on the image.\n"
                   "Data may be corrupted, or further writes to the image may corrupt it.\n",
                   c->corruptions);
        if (c->leaks)
            printf("\n%" PRId64 " leaked clusters were found on the image.\n"
                   "This means waste of disk space, but no harm to data.\n",
                   c->leaks);
        if (c->check_errors)
            printf("\n%" PRId64 " internal errors have occurred during the check.\n",
                   c->check_errors);
    }
    if (c->total_clusters != 0 && c->allocated_clusters != 0)
        printf("%" PRId64 "/%" PRId64 " = %0.2f%% allocated, %0.2f%% fragmented, "
               "%0.2f%% compressed clusters\n",
               c->allocated_clusters, c->total_clusters,
               (double)c->allocated_clusters * 100.0 / (double)c->total_clusters,
               (double)c->fragmented_clusters * 100.0 / (double)c->allocated_clusters,
               (double)c->compressed_clusters * 100.0 / (double)c->allocated_clusters);
    if (c->image_end_offset)
        printf("Image end offset: %" PRId64 "\n", c->image_end_offset);
}

/*
 * qemu prints the check result from a hash table (QDict): members come out in
 * the order of their hash bucket, later insertions first within a bucket.
 * The members and their insertion order are those of QAPI's ImageCheck.
 */
struct json_member {
    const char *key;
    const char *str;  /* string value, or NULL for num */
    int64_t num;
    unsigned bucket;
    int seq;
};

static unsigned
qdict_bucket(const char *key)
{
    uint32_t v = 0x238F13AFu * (uint32_t)strlen(key);
    for (unsigned i = 0; key[i]; i++)
        v += (uint32_t)(unsigned char)key[i] << (i * 5 % 24);
    return (1103515243u * v + 12345u) % 512u;
}

static int
member_cmp(const void *a, const void *b)
{
    const struct json_member *x = a, *y = b;
    if (x->bucket != y->bucket)
        return x->bucket < y->bucket ? -1 : 1;
    return y->seq - x->seq;
}

static void
print_json(const struct dimg_check *c, const char *filename, const char *format)
{
    struct json_member m[12];
    int n = 0;
#define ADD_STR(k, v) (m[n] = (struct json_member){ k, v, 0, 0, n }, n++)
#define ADD_NUM(k, v) (m[n] = (struct json_member){ k, NULL, v, 0, n }, n++)
#define ADD_OPT(k, v) ((v) != 0 ? ADD_NUM(k, v) : 0)
    ADD_STR("filename", filename);
    ADD_STR("format", format);
    ADD_NUM("check-errors", c->check_errors);
    ADD_OPT("image-end-offset", c->image_end_offset);
    ADD_OPT("corruptions", c->corruptions);
    ADD_OPT("leaks", c->leaks);
    ADD_OPT("corruptions-fixed", c->corruptions_fixed);
    ADD_OPT("leaks-fixed", c->leaks_fixed);
    ADD_OPT("total-clusters", c->total_clusters);
    ADD_OPT("allocated-clusters", c->allocated_clusters);
    ADD_OPT("fragmented-clusters", c->fragmented_clusters);
    ADD_OPT("compressed-clusters", c->compressed_clusters);
#undef ADD_STR
#undef ADD_NUM
#undef ADD_OPT
    for (int i = 0; i < n; i++)
        m[i].bucket = qdict_bucket(m[i].key);
    qsort(m, (size_t)n, sizeof m[0], member_cmp);
    printf("{\n");
    for (int i = 0; i < n; i++) {
        printf("    \"%s\": ", m[i].key);
        if (m[i].str)
            json_print_string(stdout, m[i].str);
        else
            printf("%" PRId64, m[i].num);
        printf(i + 1 < n ? ",\n" : "\n");
    }
    printf("}\n");
}

int
cmd_check(int argc, char **argv)
{
    enum { OPT_OUTPUT = 256, OPT_OBJECT, OPT_IMAGE_OPTS };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "repair", required_argument, NULL, 'r' },
        { "output", required_argument, NULL, OPT_OUTPUT },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *output = NULL, *cache = NULL;
    bool quiet = false, image_opts = false;
    unsigned flags = DIMG_OPEN_CHECK, fix = 0;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, CLI_OPTSTRING_PREFIX "hf:r:T:qU", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': cli_print_help(); return 0;
        case 'f': fmt = optarg; break;
        case 'r':
            flags |= DIMG_OPEN_RDWR | DIMG_OPEN_REPAIR;
            if (!strcmp(optarg, "leaks")) {
                fix = DIMG_CHECK_FIX_LEAKS;
            } else if (!strcmp(optarg, "all")) {
                fix = DIMG_CHECK_FIX_LEAKS | DIMG_CHECK_FIX_ERRORS;
            } else {
                cli_usage_error("Unknown option value for -r (expecting 'leaks' or 'all'): %s",
                                optarg);
                return 1;
            }
            break;
        case OPT_OUTPUT: output = optarg; break;
        case 'T': cache = optarg; break;
        case 'q': quiet = true; break;
        case 'U': flags |= DIMG_OPEN_FORCE_SHARE; break;
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
    enum cli_output ofmt = OUTPUT_HUMAN;
    if (output && cli_parse_output(output, &ofmt) < 0)
        return 1;
    if (cli_cache_flags(cache, true, &flags) < 0)
        return 1;

    dimg_image *img = cli_img_open(filename, fmt, flags, image_opts);
    if (!img)
        return 1;

    struct dimg_check res;
    int ret = dimg_check(img, fix, &res);
    if (ret == -ENOTSUP) {
        cli_error("This image format does not support checks");
        dimg_close(img);
        return 63;
    }
    if (ret == 0 && (res.corruptions_fixed || res.leaks_fixed)) {
        int64_t leaks_fixed = res.leaks_fixed, corruptions_fixed = res.corruptions_fixed;
        if (ofmt == OUTPUT_HUMAN && !quiet)
            printf("The following inconsistencies were found and repaired:\n\n"
                   "    %" PRId64 " leaked clusters\n"
                   "    %" PRId64 " corruptions\n\n"
                   "Double checking the fixed image now...\n",
                   leaks_fixed, corruptions_fixed);
        ret = dimg_check(img, 0, &res);
        res.leaks_fixed = leaks_fixed;
        res.corruptions_fixed = corruptions_fixed;
    }
    if (ret == 0 && !quiet) {
        if (ofmt == OUTPUT_JSON)
            print_json(&res, filename, dimg_get_format(img));
        else
            print_human(&res);
    }
    int rc;
    if (ret < 0 || res.check_errors) {
        if (ret < 0)
            cli_error("Check failed: %s", strerror(-ret));
        else
            cli_error("Check failed");
        rc = 1;
    } else if (res.corruptions) {
        rc = 2;
    } else if (res.leaks) {
        rc = 3;
    } else {
        rc = 0;
    }
    fflush(stdout);
    dimg_close(img);
    return rc;
}
