/* Helpers shared by the subcommands: messages, sizes, output formats, opening. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

void
cli_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void
cli_error_lib(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", dimg_get_error());
}

void
cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information\n", progname);
}

int
cli_bad_option(int c, char **argv)
{
    if (c == ':')
        cli_usage_error("missing argument for option '%s'", argv[optind - 1]);
    else
        cli_usage_error("unrecognized option '%s'", argv[optind - 1]);
    return 1;
}

void
cli_human_size(uint64_t v, char *buf, size_t len)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    int i = 0;
    double d = (double)v;
    while (i < 6 && d >= 1000.0) {
        d /= 1024.0;
        i++;
    }
    snprintf(buf, len, "%0.3g %s", d, units[i]);
}

int
cli_parse_image_size(const char *s, int64_t *out)
{
    uint64_t v;
    int r = dimg_parse_size(s, &v);
    if (r == -ERANGE || (r == 0 && v > INT64_MAX)) {
        cli_error("Invalid image size specified. Must be between 0 and 9223372036854775807.");
        return -1;
    }
    if (r < 0) {
        cli_error("Invalid image size specified. You may use k, M, G, T, P or E suffixes for");
        cli_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

int
cli_parse_output(const char *s, enum cli_output *out)
{
    if (strcmp(s, "json") == 0) {
        *out = OUTPUT_JSON;
        return 0;
    }
    if (strcmp(s, "human") == 0) {
        *out = OUTPUT_HUMAN;
        return 0;
    }
    cli_error("--output must be used with human or json as argument.");
    return -1;
}

void
json_print_string(FILE *f, const char *s)
{
    /* As qemu's JSON writer (observed): named escapes for the usual controls,
     * \uXXXX (upper-case hex) for other controls, DEL and every non-ASCII
     * character (UTF-16 surrogate pairs above U+FFFF), and one U+FFFD for
     * each malformed UTF-8 sequence (overlong, surrogate, noncharacter,
     * > U+10FFFF, truncated, stray continuation byte).  C0 80 is U+0000
     * (modified UTF-8), as there. */
    static const uint32_t min_cp[7] = { 0, 0, 0x80, 0x800, 0x10000, 0x200000, 0x4000000 };
    fputc('"', f);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++;
        if (c < 0x80) {
            switch (c) {
            case '"': fputs("\\\"", f); break;
            case '\\': fputs("\\\\", f); break;
            case '\b': fputs("\\b", f); break;
            case '\f': fputs("\\f", f); break;
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            default:
                if (c < 0x20 || c == 0x7f)
                    fprintf(f, "\\u%04X", c);
                else
                    fputc((int)c, f);
            }
            continue;
        }
        int len = c >= 0xfe ? 1 : c >= 0xfc ? 6 : c >= 0xf8 ? 5 : c >= 0xf0 ? 4
                : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
        uint32_t cp = len == 1 ? 0 : c & (0x7fu >> len);
        int got = 1;
        while (got < len && (*p & 0xc0) == 0x80) {
            cp = cp << 6 | (*p++ & 0x3fu);
            got++;
        }
        bool nul = len == 2 && got == 2 && cp == 0;
        if (!nul && (len == 1 || got < len || cp < min_cp[len] || cp > 0x10ffff ||
                     (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0xfdd0 && cp <= 0xfdef) ||
                     (cp & 0xfffe) == 0xfffe)) {
            fputs("\\uFFFD", f);
        } else if (cp >= 0x10000) {
            cp -= 0x10000;
            fprintf(f, "\\u%04X\\u%04X", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
        } else {
            fprintf(f, "\\u%04X", cp);
        }
    }
    fputc('"', f);
}

int
cli_add_object(const char *def)
{
    /* Objects (secrets) matter only to encrypted formats; accept and check the shape. */
    if (!def || !*def) {
        cli_error("Invalid object definition");
        return -1;
    }
    return 0;
}

int
cli_cache_flags(const char *cache, bool source, unsigned *flags)
{
    (void)source;
    if (!cache)
        return 0;
    int m = dimg_cache_mode_parse(cache);
    if (m < 0) {
        cli_error("Invalid %scache option: %s", source ? "source " : "", cache);
        return -1;
    }
    *flags |= DIMG_OPEN_CACHE(m);
    return 0;
}

dimg_image *
cli_open(const char *filename, const char *fmt, unsigned flags, bool image_opts)
{
    dimg_image *img = image_opts ? dimg_open_opts(filename, flags) : dimg_open(filename, fmt, flags);
    if (!img)
        cli_error_lib("Could not open '%s': ", filename);
    return img;
}

/* true when --image-opts names the format ("driver=..." as a top-level key). */
static bool
image_opts_has_driver(const char *opts)
{
    const char *p = opts;
    while (*p) {
        if (!strncmp(p, "driver=", 7))
            return true;
        /* skip to the next unescaped comma (",," is a literal comma) */
        while (*p && !(p[0] == ',' && p[1] != ',')) {
            if (p[0] == ',' && p[1] == ',')
                p++;
            p++;
        }
        if (*p)
            p++;
    }
    return false;
}

void
cli_warn_probed_raw(const char *filename)
{
    fprintf(stderr,
            "WARNING: Image format was not specified for '%s' and probing guessed raw.\n"
            "         Automatically detecting the format is dangerous for raw images, "
            "write operations on block 0 will be restricted.\n"
            "         Specify the 'raw' format explicitly to remove the restrictions.\n",
            filename);
}

bool
cli_probed_raw(const dimg_image *img, const char *fmt, bool image_opts, const char *filename)
{
    if (fmt || (image_opts && image_opts_has_driver(filename)))
        return false;
    return strcmp(dimg_get_format(img), "raw") == 0;
}

dimg_image *
cli_img_open(const char *filename, const char *fmt, unsigned flags, bool image_opts)
{
    if (image_opts && fmt) {
        cli_error("--image-opts and --format are mutually exclusive");
        return NULL;
    }
    dimg_image *img = cli_open(filename, fmt, flags, image_opts);
    if (img && (flags & DIMG_OPEN_RDWR) && cli_probed_raw(img, fmt, image_opts, filename))
        cli_warn_probed_raw(dimg_get_filename(img));
    return img;
}

int
cli_cvtnum(const char *name, const char *value, int64_t min, int64_t max, int64_t *out)
{
    uint64_t v;
    int r = dimg_parse_size(value, &v);
    if (r < 0 && r != -ERANGE) {
        cli_error("Invalid %s specified. You may use k, M, G, T, P or E suffixes for", name);
        cli_error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return -1;
    }
    if (r == -ERANGE || v > (uint64_t)max || (int64_t)v < min) {
        cli_error("Invalid %s specified. Must be between %" PRId64 " and %" PRId64 ".", name, min,
                  max);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}
