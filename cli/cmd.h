/* Shared declarations of the dimg command-line tool. */
#ifndef DIMG_CLI_CMD_H
#define DIMG_CLI_CMD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dimg/dimg.h"

#define CLI_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* The name the program was invoked as ("dimg", or "qemu-img" through a symlink). */
extern const char *progname;

/* Each subcommand: parse qemu-img's syntax, do the work, return the exit code. */
#define CMD_LIST(X)                                                                           \
    X(amend) X(bench) X(bitmap) X(check) X(commit) X(compare) X(convert) X(create) X(dd)       \
    X(info) X(map) X(measure) X(rebase) X(resize) X(snapshot)
#define DECLARE_CMD(name) int cmd_##name(int argc, char **argv);
CMD_LIST(DECLARE_CMD)
#undef DECLARE_CMD

/* qemu-img's "Snapshot list:" table (info, snapshot -l). */
void cli_print_snapshot_table(const struct dimg_snapshot *sn, size_t n);

/* The global --help text. */
void cli_print_help(void);

/* "<progname>: <message>\n" on stderr. */
void cli_error(const char *fmt, ...) CLI_PRINTF(1, 2);
/* "<progname>: <prefix><library error>\n". */
void cli_error_lib(const char *fmt, ...) CLI_PRINTF(1, 2);
/* The getopt-style usage errors, followed by "Try '... --help' ...". */
void cli_usage_error(const char *fmt, ...) CLI_PRINTF(1, 2);
/* Report an unknown option / missing argument found by getopt_long; returns 1. */
int cli_bad_option(int c, char **argv);

/* getopt_long option string prefix that makes getopt quiet and return ':' for
 * a missing argument. */
#define CLI_OPTSTRING_PREFIX ":"

/* qemu-img's size_to_str: "10 MiB", "1.5 KiB", "0 B". */
void cli_human_size(uint64_t v, char *buf, size_t len);

/* Parse a qemu-img size argument; prints qemu-img's errors and returns -1 on failure. */
int cli_parse_image_size(const char *s, int64_t *out);

/* qemu-img's cvtnum_full: a size-style number for option NAME in [min, max];
 * prints "Invalid NAME specified. ..." and returns -1 on failure. */
int cli_cvtnum(const char *name, const char *value, int64_t min, int64_t max, int64_t *out);

/* --output=human|json */
enum cli_output { OUTPUT_HUMAN, OUTPUT_JSON };
int cli_parse_output(const char *s, enum cli_output *out);

/* JSON string escaping as qemu prints it. */
void json_print_string(FILE *f, const char *s);

/* --object accepts definitions; secrets are kept for later lookups by id. */
int cli_add_object(const char *def);

/* Open flags from -U, -T/-t cache and --image-opts parsing; prints errors. */
int cli_cache_flags(const char *cache, bool source, unsigned *flags);

/* Open an image as qemu-img's commands do, printing "Could not open ..." on error. */
dimg_image *cli_open(const char *filename, const char *fmt, unsigned flags, bool image_opts);

/* qemu-img's img_open: refuses --image-opts together with -f, opens like
 * cli_open, and after a read-write open whose format was probed as raw prints
 * the block layer's "WARNING: Image format was not specified ..." lines. */
dimg_image *cli_img_open(const char *filename, const char *fmt, unsigned flags, bool image_opts);
/* Whether img was opened without a format (-f or --image-opts driver=) and probed raw. */
bool cli_probed_raw(const dimg_image *img, const char *fmt, bool image_opts, const char *filename);
/* The three-line probing warning for filename, on stderr. */
void cli_warn_probed_raw(const char *filename);

/* convert --bitmaps (cmd-bitmap.c): check the sources before the target is
 * created, then copy the bitmaps once the data is copied; both print
 * qemu-img's messages and return -1 on failure. */
int cli_convert_check_bitmaps(dimg_image *const *src, size_t n, bool skip_broken);
int cli_convert_copy_bitmaps(dimg_image *src, dimg_image *dst, bool skip_broken);

/* -o handling shared by create, convert, amend, measure (cmd-create.c). */
int cli_append_options(char **acc, const char *more);
bool cli_options_want_help(const char *opts);
int cli_print_create_help(const char *fmt, const char *filename);

#endif
