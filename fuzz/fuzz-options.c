/* Fuzz target: the -o option list parser and the size parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    uint64_t v;
    dimg_parse_size(s, &v);
    struct dimg_opts o = { 0 };
    if (opts_parse(&o, s) == 0) {
        for (size_t i = 0; i < o.n; i++) {
            bool b;
            opts_get_size(&o, o.v[i].key, 0, &v);
            opts_get_bool(&o, o.v[i].key, false, &b);
        }
    }
    opts_free(&o);
    free(s);
    return 0;
}
