/*
 * The public header must compile on its own as strict C11: nothing but
 * <dimg/dimg.h> is included before it, and it must be idempotent.
 * (The build compiles this with -std=c11 -Wall -Wextra and -Werror.)
 */
#include <dimg/dimg.h>
#include <dimg/dimg.h>

#if !defined(__STDC_VERSION__) || __STDC_VERSION__ < 201112L
#error "test-header-compile must be built as C11"
#endif

/* Types and constants it promises, used without any other header. */
static struct dimg_extent ext;
static struct dimg_info info;
static struct dimg_value val;
static dimg_image *img;
_Static_assert(DIMG_VERSION_MAJOR >= 0, "version macro");
_Static_assert(sizeof(DIMG_VERSION_STRING) > 1, "version string");
_Static_assert(DIMG_OPEN_CACHE_MODE(DIMG_OPEN_CACHE(DIMG_CACHE_UNSAFE) | DIMG_OPEN_RDWR) ==
                   DIMG_CACHE_UNSAFE, "cache mode bits round trip");
_Static_assert((DIMG_OPEN_CACHE(0xf) & (DIMG_OPEN_RDWR | DIMG_OPEN_FORCE_SHARE |
                                        DIMG_OPEN_NO_BACKING | DIMG_OPEN_NO_LOCK |
                                        DIMG_OPEN_INFO_ONLY | DIMG_OPEN_PROBE_WARN_OK |
                                        DIMG_OPEN_RESIZE)) == 0,
               "cache mode bits do not overlap the open flags");

/* Function pointer types check the prototypes are complete. */
static dimg_image *(*const p_open)(const char *, const char *, unsigned) = dimg_open;
static int (*const p_close)(dimg_image *) = dimg_close;
static int (*const p_bs)(dimg_image *, uint64_t, uint64_t, struct dimg_extent *) =
    dimg_block_status;
static int (*const p_size)(const char *, uint64_t *) = dimg_parse_size;
static const char *(*const p_err)(void) = dimg_get_error;

int
main(void)
{
    uint64_t v = 0;
    size_t z = sizeof ext + sizeof info + sizeof val;
    int r = p_size("1k", &v);
    if (r != 0 || v != 1024 || z == 0 || img != NULL)
        return 1;
    (void)p_open;
    (void)p_close;
    (void)p_bs;
    (void)p_err;
    (void)dimg_get_errno;
    return ext.flags == 0 && info.format == NULL && val.key == NULL ? 0 : 1;
}
