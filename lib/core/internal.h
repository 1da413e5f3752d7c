/* Internal interfaces of libdimg's core, shared by drivers, engines and the CLI. */
#ifndef DIMG_CORE_INTERNAL_H
#define DIMG_CORE_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dimg/dimg.h"

#define DIMG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define DIMG_EXPORT __attribute__((visibility("default")))

struct dimg_driver;
struct dimg_io;

/* ---- errors (error.c) ---- */

/* Record errnum and a message; returns -errnum so callers can "return dimg_error(...)". */
int dimg_error(int errnum, const char *fmt, ...) DIMG_PRINTF(2, 3);
/* Prepend context ("Could not open 'x': ") to the current message; returns -errno. */
int dimg_error_prefix(const char *fmt, ...) DIMG_PRINTF(1, 2);
/* Record errnum with strerror text: "<context>: <strerror>". */
int dimg_error_errno(int errnum, const char *fmt, ...) DIMG_PRINTF(2, 3);
void dimg_error_clear(void);

/* ---- the image handle (image.c) ---- */

struct dimg_image {
    const struct dimg_driver *drv;
    void *state;                 /* drv->state_size bytes, zeroed, owned by the core */
    struct dimg_io *file;        /* the host file holding the image */
    char *filename;
    unsigned flags;              /* DIMG_OPEN_* */
    bool writable;
    uint64_t size;               /* virtual size, set by the driver's open */
    uint32_t cluster_size;       /* set by the driver when it has one */
    bool compressed_only;        /* the driver stores every cluster compressed (vmdk streamOptimized) */
    struct dimg_image *backing;  /* opened by the core after the driver's open */
    char *backing_filename;      /* as stored; set by the driver */
    char *backing_format;        /* as stored; set by the driver */
    char *full_backing_filename; /* resolved relative to the image's directory */
    int chain_depth;
};

static inline void *
dimg_image_state(const struct dimg_image *img)
{
    return img->state;
}

/* Internal open flag, beside the public DIMG_OPEN_* ones: the image may open
 * no other host file named inside it (VMDK extents, ...).  Fuzz targets set
 * it so that hostile contents cannot make them open real files. */
#define IMAGE_OPEN_SELF_CONTAINED 0x80000000u

/* Open with an explicit driver (NULL: probe), used for the backing chain too. */
struct dimg_image *image_open(const char *filename, const char *format, unsigned flags, int depth);
struct dimg_image *image_open_io(struct dimg_io *io, const char *filename, const char *format,
                                 unsigned flags, int depth);

/* Fill buf from the backing chain (zeros where it has nothing). */
int image_read_backing(struct dimg_image *img, void *buf, size_t len, uint64_t off);

/* Resolve a backing file name relative to the directory of the image that names it. */
char *backing_resolve(const char *image_filename, const char *backing);

/* Maximum backing chain length before it is treated as a loop. */
#define DIMG_MAX_CHAIN_DEPTH 64

/* ---- options (options.c) ---- */

enum dimg_opt_type { DIMG_OPT_SIZE, DIMG_OPT_BOOL, DIMG_OPT_STRING, DIMG_OPT_NUMBER };

struct dimg_optdesc {
    const char *name;
    enum dimg_opt_type type;
    const char *help;
    const char *def;             /* default shown in help, NULL if none */
};

struct dimg_opt {
    char *key;
    char *value;
};

struct dimg_opts {
    size_t n;
    struct dimg_opt *v;
};

/* Parse "a=b,c=d" (",," is a literal comma) appending to opts; "help" and "?"
 * become key "help".  Returns 0 or -EINVAL with a qemu-img style message. */
int opts_parse(struct dimg_opts *opts, const char *str);
/* Call fn for every "key[=value]" of str in order, duplicates included (value
 * NULL when absent); stops at and returns fn's first negative result. */
int opts_parse_each(const char *str, int (*fn)(const char *key, const char *value, void *opaque),
                    void *opaque);
struct strbuf;
/* One "  name=<type>   - help" line of an -o help listing. */
void opts_help_line(struct strbuf *sb, const struct dimg_optdesc *d);
void opts_free(struct dimg_opts *opts);
/* Last value set for key, or NULL. */
const char *opts_get(const struct dimg_opts *opts, const char *key);
int opts_set(struct dimg_opts *opts, const char *key, const char *value);
int opts_del(struct dimg_opts *opts, const char *key);
/* Every key must appear in one of the NULL-name-terminated tables. */
int opts_validate(const struct dimg_opts *opts, const struct dimg_optdesc *const *tables,
                  size_t ntables);
/* Typed accessors: 0 (found, *out set), 1 (absent, *out = def) or -EINVAL. */
int opts_get_bool(const struct dimg_opts *opts, const char *key, bool def, bool *out);
int opts_get_size(const struct dimg_opts *opts, const char *key, uint64_t def, uint64_t *out);
int parse_bool(const char *s, bool *out);
/* A number option ("refcount_bits=8"): 0 or -EINVAL. */
int parse_number(const char *s, uint64_t *out);

/* ---- helpers ---- */

char *xstrdup_or_null(const char *s);
char *str_printf(const char *fmt, ...) DIMG_PRINTF(1, 2);

/* A growable string. */
struct strbuf {
    char *s;
    size_t len, cap;
};
int sb_append(struct strbuf *sb, const char *fmt, ...) DIMG_PRINTF(2, 3);
int sb_putc(struct strbuf *sb, char c);
void sb_free(struct strbuf *sb);

#endif
