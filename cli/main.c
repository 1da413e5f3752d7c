/* dimg: entry point and subcommand dispatch table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

const char *progname = "dimg";

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
};

/* Sorted by name; qemu-img's subcommand set. */
static const struct command commands[] = {
#define ENTRY(n) { #n, cmd_##n },
    CMD_LIST(ENTRY)
#undef ENTRY
};

static void
print_version(void)
{
    printf("%s version %s (dimg, qemu-img 7.2 compatible)\n", progname, DIMG_VERSION_STRING);
    printf("A disk image tool compatible with qemu-img.\n");
}

void
cli_print_help(void)
{
    printf("usage: %s [standard options] command [command options]\n"
           "Disk image utility (qemu-img 7.2 compatible)\n"
           "\n"
           "    '-h', '--help'       display this help and exit\n"
           "    '-V', '--version'    output version information and exit\n"
           "    '-T', '--trace'      [[enable=]<pattern>][,events=<file>][,file=<file>]\n"
           "                         accepted for compatibility; tracing is not implemented\n"
           "\n"
           "Command syntax:\n", progname);
    static const char *const syntax[] = {
        "amend [--object objectdef] [--image-opts] [-p] [-q] [-f fmt] [-t cache] [--force] -o options filename",
        "bench [-c count] [-d depth] [-f fmt] [--flush-interval=flush_interval] [-i aio] [-n] [--no-drain] [-o offset] [--pattern=pattern] [-q] [-s buffer_size] [-S step_size] [-t cache] [-w] [-U] filename",
        "bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... [-b source_file [-F source_fmt]] [-g granularity] [--object objectdef] [--image-opts | -f fmt] filename bitmap",
        "check [--object objectdef] [--image-opts] [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] [-T src_cache] [-U] filename",
        "commit [--object objectdef] [--image-opts] [-q] [-f fmt] [-t cache] [-b base] [-r rate_limit] [-d] [-p] filename",
        "compare [--object objectdef] [--image-opts] [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] [-U] filename1 filename2",
        "convert [--object objectdef] [--image-opts] [--target-image-opts] [--target-is-zero] [--bitmaps] [-U] [-C] [-c] [-p] [-q] [-n] [-f fmt] [-t cache] [-T src_cache] [-O output_fmt] [-B backing_file [-F backing_fmt]] [-o options] [-l snapshot_param] [-s snapshot_id_or_name] [-S sparse_size] [-r rate_limit] [-m num_coroutines] [-W] [--salvage] filename [filename2 [...]] output_filename",
        "create [--object objectdef] [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]",
        "dd [--image-opts] [-U] [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] [skip=blocks] if=input of=output",
        "info [--object objectdef] [--image-opts] [-f fmt] [--output=ofmt] [--backing-chain] [-U] filename",
        "map [--object objectdef] [--image-opts] [-f fmt] [--start-offset=offset] [--max-length=len] [--output=ofmt] [-U] filename",
        "measure [--output=ofmt] [-O output_fmt] [-o options] [--size N | [--object objectdef] [--image-opts] [-f fmt] [-l snapshot_param] filename]",
        "snapshot [--object objectdef] [--image-opts] [-U] [-q] [-l | -a snapshot | -c snapshot | -d snapshot] filename",
        "rebase [--object objectdef] [--image-opts] [-U] [-q] [-f fmt] [-t cache] [-T src_cache] [-p] [-u] -b backing_file [-F backing_fmt] filename",
        "resize [--object objectdef] [--image-opts] [-f fmt] [--preallocation=prealloc] [-q] [--shrink] filename [+ | -]size",
    };
    for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++)
        printf("  %s\n", syntax[i]);
    printf("\n"
           "Parameters follow qemu-img's: 'fmt' is an image format (probed when omitted),\n"
           "'cache'/'src_cache' one of none, writeback, writethrough, directsync, unsafe,\n"
           "'size' a byte count with an optional k, M, G, T, P or E suffix (powers of 1024),\n"
           "'options' a comma separated name=value list ('-o help' lists them).\n"
           "Exit codes and messages match qemu-img 7.2; see the qemu-img manual.\n"
           "\n"
           "Supported formats:");
    for (const char *const *f = dimg_format_names(); *f; f++)
        printf(" %s", *f);
    printf("\n");
}

int
main(int argc, char **argv)
{
    const char *slash = argv[0] ? strrchr(argv[0], '/') : NULL;
    if (argv[0])
        progname = slash ? slash + 1 : argv[0];

    int i = 1;
    /* Standard options before the command. */
    while (i < argc && argv[i][0] == '-') {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli_print_help();
            return 0;
        }
        if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            print_version();
            return 0;
        }
        if (!strcmp(a, "-T") || !strcmp(a, "--trace")) {
            if (i + 1 >= argc) {
                cli_usage_error("missing argument for option '%s'", a);
                return 1;
            }
            i += 2;
            continue;
        }
        if (!strncmp(a, "--trace=", 8)) {
            i++;
            continue;
        }
        cli_usage_error("unrecognized option '%s'", a);
        return 1;
    }
    if (i >= argc) {
        cli_usage_error("Not enough arguments");
        return 1;
    }
    const char *cmd = argv[i];
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
        if (strcmp(commands[k].name, cmd) == 0)
            return commands[k].fn(argc - i, argv + i);
    }
    cli_usage_error("Command not found: %s", cmd);
    return 1;
}
