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

/* A word of letters; returns the end or NULL when empty or too long. */
static const char *
take_word(const char *p, char *out, size_t cap)
{
    size_t n = 0;
    while (isalnum((unsigned char)p[n]) || p[n] == '_') {
        if (n + 1 >= cap)
            return NULL;
        out[n] = p[n];
        n++;
    }
    out[n] = '\0';
    return n ? p + n : NULL;
}

/* A decimal number without sign; returns the end or NULL. */
static const char *
take_number(const char *p, uint64_t *out)
{
    uint64_t v = 0;
    const char *start = p;
    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return NULL;
        v = v * 10 + d;
        p++;
    }
    *out = v;
    return p == start ? NULL : p;
}

static bool
is_extent_line(const char *line)
{
    static const char *const access[] = { "RW ", "RDONLY ", "NOACCESS " };
    for (size_t i = 0; i < 3; i++)
        if (strncmp(line, access[i], strlen(access[i])) == 0)
            return true;
    return false;
}

/* ACCESS SECTORS TYPE "FILENAME" [OFFSET] */
static int
parse_extent(const char *line, struct vmdk_desc *d)
{
    struct vmdk_desc_extent x = { 0 };
    const char *p = take_word(line, x.access, sizeof x.access);
    if (p)
        p = take_number(skip_space(p), &x.sectors);
    if (p)
        p = take_word(skip_space(p), x.type, sizeof x.type);
    /* ZERO extents have no file; a name after them is tolerated. */
    if (p && (strcmp(x.type, "ZERO") != 0 || *skip_space(p) == '"')) {
        p = skip_space(p);
        const char *q = *p == '"' ? strchr(p + 1, '"') : NULL;
        if (!q || q == p + 1)
            p = NULL;
        else {
            x.filename = strndup(p + 1, (size_t)(q - p - 1));
            if (!x.filename)
                return dimg_error(ENOMEM, "out of memory");
            p = skip_space(q + 1);
            if (*p && !(p = take_number(p, &x.offset)))
                p = NULL;
        }
    }
    if (p && *skip_space(p) != '\0')
        p = NULL;
    if (!p || (strcmp(x.type, "FLAT") && strcmp(x.type, "SPARSE") && strcmp(x.type, "ZERO") &&
               strcmp(x.type, "VMFS") && strcmp(x.type, "VMFSSPARSE"))) {
        free(x.filename);
        return dimg_error(EINVAL, "Invalid extent line: %s", line);
    }
    if (d->n_extents >= VMDK_MAX_EXTENTS) {
        free(x.filename);
        return dimg_error(EFBIG, "Too many extents in VMDK descriptor");
    }
    struct vmdk_desc_extent *n = realloc(d->ext, (d->n_extents + 1) * sizeof *n);
    if (!n) {
        free(x.filename);
        return dimg_error(ENOMEM, "out of memory");
    }
    d->ext = n;
    d->ext[d->n_extents++] = x;
    return 0;
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
    if (is_extent_line(line))
        return parse_extent(line, d);
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
    if (strcmp(line, "CID") == 0) {
        d->cid = (uint32_t)strtoul(val, NULL, 16);
    } else if (strcmp(line, "parentCID") == 0) {
        d->parent_cid = (uint32_t)strtoul(val, NULL, 16);
    } else if (strcmp(line, "createType") == 0) {
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
