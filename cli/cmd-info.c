/* info: image metadata as qemu-img prints it (human or JSON, optionally the whole chain). */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cmd.h"

static void
json_indent(FILE *f, int level)
{
    for (int i = 0; i < level; i++)
        fputs("    ", f);
}

static void
json_value(FILE *f, const struct dimg_value *v, int level)
{
    switch (v->type) {
    case DIMG_VALUE_INT: fprintf(f, "%" PRId64, v->v.i); break;
    case DIMG_VALUE_UINT: fprintf(f, "%" PRIu64, v->v.u); break;
    case DIMG_VALUE_BOOL: fputs(v->v.b ? "true" : "false", f); break;
    case DIMG_VALUE_STRING: json_print_string(f, v->v.s); break;
    case DIMG_VALUE_OBJECT:
    case DIMG_VALUE_ARRAY: {
        bool obj = v->type == DIMG_VALUE_OBJECT;
        if (!v->child && obj) {
            fputs("{}", f);
            break;
        }
        if (!v->child) { /* qemu breaks even an empty list: "[", newline, indented "]" */
            fputc('[', f);
            fputc('\n', f);
            json_indent(f, level);
            fputc(']', f);
            break;
        }
        fputs(obj ? "{\n" : "[\n", f);
        for (const struct dimg_value *c = v->child; c; c = c->next) {
            json_indent(f, level + 1);
            if (obj) {
                json_print_string(f, c->key);
                fputs(": ", f);
            }
            json_value(f, c, level + 1);
            fputs(c->next ? ",\n" : "\n", f);
        }
        json_indent(f, level);
        fputc(obj ? '}' : ']', f);
        break;
    }
    }
}

/* qemu's human form of a value tree: "key name: value", nested by 4 spaces. */
static void
human_value(FILE *f, const struct dimg_value *v, int level)
{
    int idx = 0;
    for (const struct dimg_value *c = v->child; c; c = c->next, idx++) {
        char key[256];
        if (c->key) {
            snprintf(key, sizeof key, "%s", c->key);
            for (char *p = key; *p; p++)
                if (*p == '-')
                    *p = ' ';
        } else {
            snprintf(key, sizeof key, "[%d]", idx);
        }
        json_indent(f, level);
        switch (c->type) {
        case DIMG_VALUE_INT: fprintf(f, "%s: %" PRId64 "\n", key, c->v.i); break;
        case DIMG_VALUE_UINT: fprintf(f, "%s: %" PRIu64 "\n", key, c->v.u); break;
        case DIMG_VALUE_BOOL: fprintf(f, "%s: %s\n", key, c->v.b ? "true" : "false"); break;
        case DIMG_VALUE_STRING: fprintf(f, "%s: %s\n", key, c->v.s); break;
        default:
            fprintf(f, "%s:\n", key);
            human_value(f, c, level + 1);
        }
    }
}

void
cli_print_snapshot_table(const struct dimg_snapshot *sn, size_t n)
{
    printf("Snapshot list:\n");
    printf("%-9s %-16s %8s %19s %12s %10s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
    for (size_t i = 0; i < n; i++) {
        char size[32], date[32], clock[48], icount[24] = "";
        cli_human_size(sn[i].vm_state_size, size, sizeof size);
        time_t t = (time_t)sn[i].date_sec;
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
        uint64_t ms = sn[i].vm_clock_nsec / 1000000;
        snprintf(clock, sizeof clock, "%02" PRIu64 ":%02u:%02u.%03u", ms / 3600000,
                 (unsigned)(ms / 60000 % 60), (unsigned)(ms / 1000 % 60), (unsigned)(ms % 1000));
        if (sn[i].icount != -1)
            snprintf(icount, sizeof icount, "%" PRId64, sn[i].icount);
        printf("%-9s %-16s %8s %19s %12s %10s\n", sn[i].id, sn[i].name, size, date, clock, icount);
    }
}

static void
print_snapshots_json(const struct dimg_snapshot *sn, size_t n, int level)
{
    FILE *f = stdout;
    json_indent(f, level + 1);
    fputs("\"snapshots\": [\n", f);
    for (size_t i = 0; i < n; i++) {
        json_indent(f, level + 2);
        fputs("{\n", f);
        /* Key order as qemu-img 7.2 prints it. */
        if (sn[i].icount != -1) {
            json_indent(f, level + 3);
            fprintf(f, "\"icount\": %" PRId64 ",\n", sn[i].icount);
        }
        json_indent(f, level + 3);
        fprintf(f, "\"vm-clock-nsec\": %" PRIu64 ",\n", sn[i].vm_clock_nsec % 1000000000);
        json_indent(f, level + 3);
        fputs("\"name\": ", f);
        json_print_string(f, sn[i].name);
        fputs(",\n", f);
        json_indent(f, level + 3);
        fprintf(f, "\"date-sec\": %" PRIu32 ",\n", sn[i].date_sec);
        json_indent(f, level + 3);
        fprintf(f, "\"date-nsec\": %" PRIu32 ",\n", sn[i].date_nsec);
        json_indent(f, level + 3);
        fprintf(f, "\"vm-clock-sec\": %" PRIu64 ",\n", sn[i].vm_clock_nsec / 1000000000);
        json_indent(f, level + 3);
        fputs("\"id\": ", f);
        json_print_string(f, sn[i].id);
        fputs(",\n", f);
        json_indent(f, level + 3);
        fprintf(f, "\"vm-state-size\": %" PRIu64 "\n", sn[i].vm_state_size);
        json_indent(f, level + 2);
        fputs(i + 1 < n ? "},\n" : "}\n", f);
    }
    json_indent(f, level + 1);
    fputs("],\n", f);
}

static void
print_json(const struct dimg_info *in, const struct dimg_snapshot *sn, size_t nsn, int level)
{
    /* Key order as qemu-img 7.2 prints it. */
    FILE *f = stdout;
    json_indent(f, level);
    fputs("{\n", f);
#define KEY(k) (json_indent(f, level + 1), fputs("\"" k "\": ", f))
    if (in->backing_format) {
        KEY("backing-filename-format");
        json_print_string(f, in->backing_format);
        fputs(",\n", f);
    }
    if (nsn)
        print_snapshots_json(sn, nsn, level);
    KEY("virtual-size");
    fprintf(f, "%" PRIu64 ",\n", in->virtual_size);
    KEY("filename");
    json_print_string(f, in->filename);
    fputs(",\n", f);
    if (in->cluster_size) {
        KEY("cluster-size");
        fprintf(f, "%" PRIu32 ",\n", in->cluster_size);
    }
    KEY("format");
    json_print_string(f, in->format);
    /* Any key from here on may be the last one: each closes the line before it. */
#define NEXT(k) (fputs(",\n", f), KEY(k))
    if (in->actual_size >= 0) {
        NEXT("actual-size");
        fprintf(f, "%" PRId64, in->actual_size);
    }
    if (in->format_specific) {
        NEXT("format-specific");
        json_value(f, in->format_specific, level + 1);
    }
    if (in->encrypted) {
        NEXT("encrypted");
        fputs("true", f);
    }
    if (in->full_backing_filename) {
        NEXT("full-backing-filename");
        json_print_string(f, in->full_backing_filename);
    }
    if (in->backing_filename) {
        NEXT("backing-filename");
        json_print_string(f, in->backing_filename);
    }
    /* Formats without the flag (dirty_flag -1) leave the key out, as qemu-img does. */
    if (in->dirty_flag >= 0) {
        NEXT("dirty-flag");
        fputs(in->dirty_flag > 0 ? "true" : "false", f);
    }
    fputc('\n', f);
#undef NEXT
#undef KEY
    json_indent(f, level);
    fputc('}', f);
}

static void
print_human(const struct dimg_info *in, const struct dimg_snapshot *sn, size_t nsn)
{
    char vs[32], ds[32];
    cli_human_size(in->virtual_size, vs, sizeof vs);
    printf("image: %s\nfile format: %s\nvirtual size: %s (%" PRIu64 " bytes)\n", in->filename,
           in->format, vs, in->virtual_size);
    if (in->actual_size >= 0) {
        cli_human_size((uint64_t)in->actual_size, ds, sizeof ds);
        printf("disk size: %s\n", ds);
    } else {
        printf("disk size: unavailable\n");
    }
    if (in->encrypted)
        printf("encrypted: yes\n");
    if (in->cluster_size)
        printf("cluster_size: %" PRIu32 "\n", in->cluster_size);
    if (in->backing_filename) {
        printf("backing file: %s", in->backing_filename);
        if (in->full_backing_filename && strcmp(in->full_backing_filename, in->backing_filename))
            printf(" (actual path: %s)", in->full_backing_filename);
        printf("\n");
    }
    if (in->backing_format)
        printf("backing file format: %s\n", in->backing_format);
    if (nsn)
        cli_print_snapshot_table(sn, nsn);
    if (in->format_specific) {
        const struct dimg_value *data = NULL;
        for (const struct dimg_value *c = in->format_specific->child; c; c = c->next)
            if (c->key && !strcmp(c->key, "data"))
                data = c;
        if (data && data->child) {
            printf("Format specific information:\n");
            human_value(stdout, data, 1);
        }
    }
}

int
cmd_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, 'O' },
        { "backing-chain", no_argument, NULL, 'B' },
        { "object", required_argument, NULL, 'o' },
        { "image-opts", no_argument, NULL, 'I' },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL;
    enum cli_output output = OUTPUT_HUMAN;
    bool chain = false, image_opts = false;
    unsigned flags = DIMG_OPEN_INFO_ONLY | DIMG_OPEN_NO_BACKING;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, ":f:hU", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': fmt = optarg; break;
        case 'h': cli_print_help(); return 0;
        case 'O':
            if (cli_parse_output(optarg, &output) < 0)
                return 1;
            break;
        case 'B': chain = true; break;
        case 'o':
            if (cli_add_object(optarg) < 0)
                return 1;
            break;
        case 'I': image_opts = true; break;
        case 'U': flags |= DIMG_OPEN_FORCE_SHARE; break;
        default: return cli_bad_option(c, argv);
        }
    }
    if (optind != argc - 1) {
        cli_usage_error("Expecting one image file name");
        return 1;
    }
    const char *filename = argv[optind];

    /* Walk the chain one image at a time, as qemu-img does, so each file is
     * opened (and locked) with the info lock set only.  Like qemu-img, nothing
     * is printed unless the whole chain could be read. */
    struct entry {
        struct dimg_info in;
        struct dimg_snapshot *sn;
        size_t nsn;
    } *list = NULL;
    char *name = strdup(filename);
    char *nfmt = fmt ? strdup(fmt) : NULL;
    bool io = image_opts;
    int n = 0, ret = 0;
    struct stat seen[64];
    int nseen = 0;
    while (name) {
        /* qemu-img's check for chains that come back to one of their files. */
        struct stat st;
        if (chain && !io && stat(name, &st) == 0) {
            bool loop = nseen >= 64;
            for (int i = 0; i < nseen && !loop; i++)
                loop = seen[i].st_dev == st.st_dev && seen[i].st_ino == st.st_ino;
            if (loop) {
                cli_error("Backing file '%s' creates an infinite loop.", name);
                ret = 1;
                break;
            }
            seen[nseen++] = st;
        }
        dimg_image *img = cli_open(name, nfmt, flags, io);
        if (!img) {
            ret = 1;
            break;
        }
        struct entry *nl = realloc(list, (size_t)(n + 1) * sizeof *list);
        if (!nl) {
            dimg_close(img);
            ret = 1;
            break;
        }
        list = nl;
        struct entry *e = &list[n];
        memset(e, 0, sizeof *e);
        if (dimg_get_info(img, &e->in) < 0) {
            cli_error_lib("%s: ", name);
            dimg_close(img);
            ret = 1;
            break;
        }
        dimg_snapshot_list(img, &e->sn, &e->nsn);
        n++;
        free(name);
        free(nfmt);
        name = chain && e->in.full_backing_filename ? strdup(e->in.full_backing_filename) : NULL;
        nfmt = e->in.backing_format ? strdup(e->in.backing_format) : NULL;
        io = false;
        dimg_close(img);
    }
    free(name);
    free(nfmt);
    for (int i = 0; i < n && ret == 0; i++) {
        if (output == OUTPUT_JSON) {
            printf(i == 0 ? (chain ? "[\n" : "") : ",\n");
            print_json(&list[i].in, list[i].sn, list[i].nsn, chain ? 1 : 0);
            printf(chain ? (i + 1 == n ? "\n]\n" : "") : "\n");
        } else {
            if (i > 0)
                printf("\n");
            print_human(&list[i].in, list[i].sn, list[i].nsn);
        }
    }
    for (int i = 0; i < n; i++) {
        dimg_info_free(&list[i].in);
        dimg_snapshot_list_free(list[i].sn, list[i].nsn);
    }
    free(list);
    return ret;
}
