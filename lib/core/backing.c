/* Backing file name resolution. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

/*
 * A relative backing name is relative to the directory of the image that
 * names it, not to the current directory (qemu-img's rule).  Protocol-style
 * names ("nbd:...", "json:...") are returned unchanged.
 */
char *
backing_resolve(const char *image_filename, const char *backing)
{
    if (backing[0] == '/' || strchr(backing, ':') != NULL)
        return strdup(backing);
    const char *slash = strrchr(image_filename, '/');
    if (!slash)
        return strdup(backing);
    size_t dirlen = (size_t)(slash - image_filename) + 1;
    char *out = malloc(dirlen + strlen(backing) + 1);
    if (!out)
        return NULL;
    memcpy(out, image_filename, dirlen);
    strcpy(out + dirlen, backing);
    return out;
}
