/* qemu-img style "-o key=value,..." lists, typed accessors and size parsing. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

void
opts_free(struct dimg_opts *opts)
{
    for (size_t i = 0; i < opts->n; i++) {
        free(opts->v[i].key);
        free(opts->v[i].value);
    }
    free(opts->v);
    opts->v = NULL;
    opts->n = 0;
}

int
opts_set(struct dimg_opts *opts, const char *key, const char *value)
{
    for (size_t i = 0; i < opts->n; i++) {
        if (strcmp(opts->v[i].key, key) == 0) {
            char *v = xstrdup_or_null(value);
            if (value && !v)
                return dimg_error(ENOMEM, "out of memory");
            free(opts->v[i].value);
            opts->v[i].value = v;
            return 0;
        }
    }
    struct dimg_opt *nv = realloc(opts->v, (opts->n + 1) * sizeof *nv);
    if (!nv)
        return dimg_error(ENOMEM, "out of memory");
    opts->v = nv;
    nv[opts->n].key = strdup(key);
    nv[opts->n].value = xstrdup_or_null(value);
    if (!nv[opts->n].key || (value && !nv[opts->n].value)) {
        free(nv[opts->n].key);
        free(nv[opts->n].value);
        return dimg_error(ENOMEM, "out of memory");
    }
    opts->n++;
    return 0;
}

int
opts_del(struct dimg_opts *opts, const char *key)
{
    for (size_t i = 0; i < opts->n; i++) {
        if (strcmp(opts->v[i].key, key) == 0) {
            free(opts->v[i].key);
            free(opts->v[i].value);
            memmove(&opts->v[i], &opts->v[i + 1], (opts->n - i - 1) * sizeof opts->v[0]);
            opts->n--;
            return 0;
        }
    }
    return 1;
}

const char *
opts_get(const struct dimg_opts *opts, const char *key)
{
    for (size_t i = 0; i < opts->n; i++)
        if (strcmp(opts->v[i].key, key) == 0)
            return opts->v[i].value;
    return NULL;
}

/* Copy one token up to an unescaped delimiter; ",," stands for ",". */
static char *
take_token(const char **pp, char delim)
{
    const char *p = *pp;
    size_t n = strlen(p);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    while (*p) {
        if (*p == ',') {
            if (p[1] == ',') {
                *o++ = ',';
                p += 2;
                continue;
            }
            break;
        }
        if (*p == delim)
            break;
        *o++ = *p++;
    }
    *o = '\0';
    *pp = p;
    return out;
}

int
opts_parse(struct dimg_opts *opts, const char *str)
{
    const char *p = str;
    while (*p) {
        char *key = take_token(&p, '=');
        char *value = NULL;
        if (!key)
            return dimg_error(ENOMEM, "out of memory");
        if (*p == '=') {
            p++;
            value = take_token(&p, '\0');
            if (!value) {
                free(key);
                return dimg_error(ENOMEM, "out of memory");
            }
        }
        if (*p == ',')
            p++;
        int r;
        if (!value && (strcmp(key, "help") == 0 || strcmp(key, "?") == 0)) {
            r = opts_set(opts, "help", "on");
        } else if (!value) {
            r = dimg_error(EINVAL, "Invalid parameter '%s'", key);
            if (key[0] == '\0')
                r = dimg_error(EINVAL, "Invalid option list");
        } else {
            r = opts_set(opts, key, value);
        }
        free(key);
        free(value);
        if (r < 0)
            return r;
    }
    return 0;
}

int
opts_parse_each(const char *str, int (*fn)(const char *key, const char *value, void *opaque),
                void *opaque)
{
    const char *p = str;
    int r = 0;
    while (*p && r == 0) {
        char *key = take_token(&p, '='), *value = NULL;
        bool oom = !key;
        if (key && *p == '=') {
            p++;
            value = take_token(&p, '\0');
            oom = !value;
        }
        if (*p == ',')
            p++;
        r = oom ? dimg_error(ENOMEM, "out of memory") : fn(key, value, opaque);
        free(key);
        free(value);
    }
    return r;
}

void
opts_help_line(struct strbuf *sb, const struct dimg_optdesc *d)
{
    static const char *const type_names[] = { "size", "bool (on/off)", "str", "num" };
    char left[64];
    snprintf(left, sizeof left, "%s=<%s>", d->name, type_names[d->type]);
    sb_append(sb, "  %-22s - %s\n", left, d->help);
}

int
opts_validate(const struct dimg_opts *opts, const struct dimg_optdesc *const *tables,
              size_t ntables)
{
    for (size_t i = 0; i < opts->n; i++) {
        const char *key = opts->v[i].key;
        const struct dimg_optdesc *found = NULL;
        if (strcmp(key, "help") == 0)
            continue;
        for (size_t t = 0; t < ntables && !found; t++)
            for (const struct dimg_optdesc *d = tables[t]; d && d->name && !found; d++)
                if (strcmp(d->name, key) == 0)
                    found = d;
        if (!found)
            return dimg_error(EINVAL, "Invalid parameter '%s'", key);
        /* Typed values are checked here, before anything is printed or created. */
        bool b;
        uint64_t u;
        int r = 0;
        if (found->type == DIMG_OPT_BOOL)
            r = opts_get_bool(opts, key, false, &b);
        else if (found->type == DIMG_OPT_SIZE)
            r = opts_get_size(opts, key, 0, &u);
        if (r < 0)
            return r;
    }
    return 0;
}

int
parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "y")) {
        *out = true;
        return 0;
    }
    if (!strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "n")) {
        *out = false;
        return 0;
    }
    return -EINVAL;
}

/* qemu's number options: C integer syntax (decimal, 0x hex, 0 octal) with
 * optional blanks and sign before it ("-8" wraps around) and nothing after. */
int
parse_number(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

int
opts_get_bool(const struct dimg_opts *opts, const char *key, bool def, bool *out)
{
    const char *v = opts_get(opts, key);
    *out = def;
    if (!v)
        return 1;
    if (parse_bool(v, out) < 0)
        return dimg_error(EINVAL, "Parameter '%s' expects 'on' or 'off'", key);
    return 0;
}

int
opts_get_size(const struct dimg_opts *opts, const char *key, uint64_t def, uint64_t *out)
{
    const char *v = opts_get(opts, key);
    *out = def;
    if (!v)
        return 1;
    if (dimg_parse_size(v, out) < 0)
        return dimg_error(EINVAL,
                          "Parameter '%s' expects a non-negative number below 2^64\n"
                          "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, "
                          "peta-\nand exabytes, respectively.",
                          key);
    return 0;
}

/*
 * Sizes as qemu-img reads them: optional leading blanks, decimal digits or a
 * 0x hex integer, an optional decimal fraction (only before a unit other than
 * B), and one optional unit letter B K M G T P E (any case).  The fraction
 * part of the byte count is dropped.
 */
static int
unit_shift(char c)
{
    switch (toupper((unsigned char)c)) {
    case 'B': return 0;
    case 'K': return 10;
    case 'M': return 20;
    case 'G': return 30;
    case 'T': return 40;
    case 'P': return 50;
    case 'E': return 60;
    default: return -1;
    }
}

DIMG_EXPORT int
dimg_parse_size(const char *s, uint64_t *out)
{
    const char *p = s;
    uint64_t ip = 0;
    bool hex = false, any = false, overflow = false;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '+') /* a plus sign is accepted, as strtoull accepts it */
        p++;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && isxdigit((unsigned char)p[2])) {
        hex = true;
        p += 2;
        while (isxdigit((unsigned char)*p)) {
            int d = isdigit((unsigned char)*p) ? *p - '0' : (tolower((unsigned char)*p) - 'a' + 10);
            if (ip > (UINT64_MAX - (uint64_t)d) / 16)
                overflow = true;
            ip = ip * 16 + (uint64_t)d;
            p++;
            any = true;
        }
    } else {
        while (isdigit((unsigned char)*p)) {
            if (ip > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
                overflow = true;
            ip = ip * 10 + (uint64_t)(*p - '0');
            p++;
            any = true;
        }
    }
    if (!any)
        return -EINVAL;
    /* The fraction as a binary fixed-point number, 0.frac * 2^64 (truncated). */
    const char *frac = NULL;
    size_t frac_len = 0;
    if (*p == '.') {
        if (hex)
            return -EINVAL;
        p++;
        frac = p;
        while (isdigit((unsigned char)*p))
            p++;
        frac_len = (size_t)(p - frac);
        if (frac_len == 0)
            return -EINVAL;
    }
    int shift = 0;
    if (*p) {
        shift = unit_shift(*p);
        if (shift < 0)
            return -EINVAL;
        p++;
    }
    if (*p)
        return -EINVAL;
    if (frac && shift == 0)
        return -EINVAL;
    if (overflow || (shift && ip > (UINT64_MAX >> shift)))
        return -ERANGE;
    uint64_t v = ip << shift;
    if (frac) {
        /* floor(0.frac * 2^shift) using long division digit by digit. */
        unsigned __int128 num = 0, den = 1;
        size_t digits = frac_len > 30 ? 30 : frac_len;
        for (size_t i = 0; i < digits; i++) {
            num = num * 10 + (unsigned)(frac[i] - '0');
            den *= 10;
        }
        unsigned __int128 add = (num << shift) / den;
        if (v + (uint64_t)add < v)
            return -ERANGE;
        v += (uint64_t)add;
    }
    *out = v;
    return 0;
}
