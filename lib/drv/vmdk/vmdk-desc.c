/*
 * VMDK descriptor parsing.  The descriptor is untrusted text: every line is
 * bounded, numbers are parsed with overflow checks, and lines that are
 * neither "key=value" nor extent lines are skipped as comments would be
 * (the Disk Data Base and unknown keys carry nothing needed to read data).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/vmdk/vmdk.h"

void
vmdk_desc_free(struct vmdk_desc *d)
{
    for (size_t i = 0; i < d->n_extents; i++)
        free(d->ext[i].filename);
    free(d->ext);
    free(d->create_type);
    free(d->parent_hint);
    memset(d, 0, sizeof *d);
}

static const char *
skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/*
 * Extent lines, as qemu reads them (observed): starting at a line start, the
 * fields ACCESS SECTORS TYPE "FILENAME" OFFSET are taken with any white space
 * between them, newlines included, so a blank line re-reads the extent line
 * after it.  Words are cut at 10 characters and numbers are signed decimals.
 * Only RW lines with at least a file name count; a FLAT extent needs a
 * non-negative offset and every other type must have none, else the line is
 * invalid; non-positive sizes and unknown types are skipped.
 */
#define EXT_WORD_MAX 10
#define EXT_NAME_MAX 511

struct ext_scan {
    int fields;                      /* how many fields were read, 0..5 */
    char access[EXT_WORD_MAX + 1];
    int64_t sectors;
    char type[EXT_WORD_MAX + 1];
    const char *name;                /* not terminated */
    size_t name_len;
    int64_t offset;
};

static bool
is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static const char *
skip_ws(const char *p)
{
    while (is_ws(*p))
        p++;
    return p;
}

static const char *
scan_word(const char *p, char *out)
{
    size_t n = 0;
    p = skip_ws(p);
    while (*p && !is_ws(*p) && n < EXT_WORD_MAX)
        out[n++] = *p++;
    out[n] = '\0';
    return n ? p : NULL;
}

/* A signed decimal; out of range values saturate as strtoll's do. */
static const char *
scan_int(const char *p, int64_t *out)
{
    p = skip_ws(p);
    bool neg = *p == '-';
    if (*p == '-' || *p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return NULL;
    uint64_t v = 0;
    bool over = false;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            over = true;
        else
            v = v * 10 + d;
    }
    if (over || v > (uint64_t)INT64_MAX + neg)
        *out = neg ? INT64_MIN : INT64_MAX;
    else
        *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return p;
}

static void
scan_extent(const char *p, struct ext_scan *x)
{
    memset(x, 0, sizeof *x);
    if (!(p = scan_word(p, x->access)))
        return;
    x->fields = 1;
    if (!(p = scan_int(p, &x->sectors)))
        return;
    x->fields = 2;
    if (!(p = scan_word(p, x->type)))
        return;
    x->fields = 3;
    p = skip_ws(p);
    if (*p++ != '"')
        return;
    size_t n = 0;
    while (p[n] && p[n] != '\n' && p[n] != '\r' && p[n] != '"' && n < EXT_NAME_MAX)
        n++;
    if (n == 0)
        return;
    x->name = p;
    x->name_len = n;
    x->fields = 4;
    p += n;
    if (*p++ != '"')
        return;
    if (scan_int(p, &x->offset))
        x->fields = 5;
}

static bool
known_extent_type(const char *t)
{
    static const char *const types[] = { "FLAT", "SPARSE", "VMFS", "VMFSSPARSE", "SESPARSE",
                                         NULL };
    for (size_t i = 0; types[i]; i++)
        if (strcmp(t, types[i]) == 0)
            return true;
    return false;
}

/* The extent line at p, if it is one: 1 when consumed (added or skipped), 0 when not. */
static int
parse_extent(const char *p, struct vmdk_desc *d)
{
    struct ext_scan x;
    scan_extent(p, &x);
    if (x.fields < 4 || strcmp(x.access, "RW") != 0)
        return 0;
    bool flat = strcmp(x.type, "FLAT") == 0;
    if ((flat && (x.fields != 5 || x.offset < 0)) || (!flat && x.fields != 4)) {
        int len = (int)strcspn(p, "\n");
        return dimg_error(EINVAL, "Invalid extent line: %.*s", len, p);
    }
    if (x.sectors <= 0 || !known_extent_type(x.type))
        return 1;
    if (d->n_extents >= VMDK_MAX_EXTENTS)
        return dimg_error(EFBIG, "Too many extents in VMDK descriptor");
    struct vmdk_desc_extent e = { 0 };
    memcpy(e.access, x.access, sizeof x.access);
    memcpy(e.type, x.type, sizeof x.type);
    e.sectors = (uint64_t)x.sectors;
    e.offset = flat ? (uint64_t)x.offset : 0;
    e.filename = strndup(x.name, x.name_len);
    struct vmdk_desc_extent *n = e.filename ? realloc(d->ext, (d->n_extents + 1) * sizeof *n)
                                            : NULL;
    if (!n) {
        free(e.filename);
        return dimg_error(ENOMEM, "out of memory");
    }
    d->ext = n;
    d->ext[d->n_extents++] = e;
    return 1;
}

/* The value of key=value, trimmed and unquoted (malloc'd). */
static char *
take_value(const char *v)
{
    v = skip_space(v);
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    return strndup(v, n);
}

static int
parse_line(char *line, struct vmdk_desc *d)
{
    char *eq = strchr(line, '=');
    if (!eq)
        return 0;
    size_t klen = (size_t)(eq - line);
    while (klen && (line[klen - 1] == ' ' || line[klen - 1] == '\t'))
        klen--;
    line[klen] = '\0';
    char *val = take_value(eq + 1);
    if (!val)
        return dimg_error(ENOMEM, "out of memory");
    /* CID and parentCID are not keys for qemu: vmdk_cid_load finds them. */
    if (strcmp(line, "createType") == 0) {
        free(d->create_type);
        d->create_type = val;
        d->has_create_type = true;
        val = NULL;
    } else if (strcmp(line, "parentFileNameHint") == 0) {
        free(d->parent_hint);
        d->parent_hint = val;
        val = NULL;
    }
    free(val);
    return 0;
}

int
vmdk_desc_parse(const char *text, size_t len, struct vmdk_desc *out)
{
    memset(out, 0, sizeof *out);
    out->parent_cid = UINT32_MAX;
    const char *nul = memchr(text, '\0', len);
    if (nul)
        len = (size_t)(nul - text);
    int r = 0;
    size_t pos = 0;
    while (pos < len && r == 0) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        int ext = parse_extent(text + pos, out);
        if (ext != 0) {
            r = ext < 0 ? ext : 0;
            pos = end + 1;
            continue;
        }
        size_t n = end - pos;
        if (n && text[pos + n - 1] == '\r')
            n--;
        char *line = strndup(text + pos, n);
        if (!line) {
            r = dimg_error(ENOMEM, "out of memory");
            break;
        }
        const char *p = skip_space(line);
        if (*p && *p != '#')
            r = parse_line((char *)p, out);
        free(line);
        pos = end + 1;
    }
    if (r == 0 && !out->has_create_type)
        r = dimg_error(EINVAL, "invalid VMDK image descriptor");
    if (r < 0)
        vmdk_desc_free(out);
    return r;
}
