/*
 * rebase: change an image's backing file (qemu-img's syntax and messages).
 *
 * Safe mode (no -u) first copies into the image every range it leaves to its
 * backing chain whose content differs between the old and the new backing
 * file, so the guest-visible content does not change; then the backing file
 * name is rewritten (dimg_change_backing_file): formats without backing
 * files (raw) fail there with qemu-img's "Could not change the backing file
 * to ..." errors.
 *
 * Exit codes: 0 success, 1 any error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "core/internal.h"
#include "drv/drv.h"
#include "progress.h"

#define REBASE_BUF (2u << 20)
#define REBASE_SECTOR 512u

/*
 * Point img at a new backing file (NULL: none).  The argument checks are
 * qemu's bdrv_change_backing_file(); the format's own operation follows.
 */
static int
change_backing_file(dimg_image *img, const char *backing, const char *backing_fmt, bool require)
{
    if (backing_fmt && !backing)
        return -EINVAL;
    if (require && backing && !backing_fmt)
        return -EINVAL;
    return dimg_change_backing_file(img, backing, backing_fmt);
}

/* Read len bytes at off from a backing image, zeros where it has none. */
static int
read_backing(dimg_image *b, uint8_t *buf, uint64_t len, uint64_t off)
{
    uint64_t have = 0;
    if (b && off < dimg_get_size(b)) {
        uint64_t bsize = dimg_get_size(b);
        have = len < bsize - off ? len : bsize - off;
        int r = dimg_pread(b, buf, (size_t)have, off);
        if (r < 0)
            return r;
    }
    memset(buf + have, 0, (size_t)(len - have));
    return 0;
}

/* Safe mode: keep the content of ranges the image leaves to its backing chain. */
static int
copy_changed_ranges(dimg_image *img, dimg_image *old_b, dimg_image *new_b)
{
    uint64_t size = dimg_get_size(img);
    uint8_t *a = malloc(REBASE_BUF), *b = malloc(REBASE_BUF);
    int r = 0;
    if (!a || !b) {
        cli_error("out of memory");
        r = -ENOMEM;
        goto out;
    }
    for (uint64_t off = 0; off < size;) {
        uint64_t n = size - off < REBASE_BUF ? size - off : REBASE_BUF;
        struct dimg_extent e;
        r = dimg_block_status(img, off, n, &e);
        if (r < 0) {
            cli_error("error while reading image metadata: %s", strerror(-r));
            goto out;
        }
        n = e.length;
        if ((e.flags & DIMG_EXTENT_ALLOCATED) && e.depth == 0) {
            off += n;
            continue;
        }
        if ((r = read_backing(old_b, a, n, off)) < 0) {
            cli_error("error while reading from old backing file");
            goto out;
        }
        if ((r = read_backing(new_b, b, n, off)) < 0) {
            cli_error("error while reading from new backing file");
            goto out;
        }
        /* Write the runs of sectors that differ. */
        for (uint64_t i = 0; i < n;) {
            uint64_t step = n - i < REBASE_SECTOR ? n - i : REBASE_SECTOR;
            if (!memcmp(a + i, b + i, (size_t)step)) {
                i += step;
                continue;
            }
            uint64_t j = i + step;
            while (j < n) {
                uint64_t s = n - j < REBASE_SECTOR ? n - j : REBASE_SECTOR;
                if (!memcmp(a + j, b + j, (size_t)s))
                    break;
                j += s;
            }
            if ((r = dimg_pwrite(img, a + i, (size_t)(j - i), off + i)) < 0) {
                cli_error("Error while writing to COW image: %s", strerror(-r));
                goto out;
            }
            i = j;
        }
        off += n;
        progress_set((double)off * 100.0 / (double)size);
    }
out:
    free(a);
    free(b);
    return r;
}

int
cmd_rebase(int argc, char **argv)
{
    enum { OPT_OBJECT = 256, OPT_IMAGE_OPTS };
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *base = NULL, *base_fmt = NULL, *cache = NULL, *src_cache = NULL;
    bool unsafe = false, progress = false, quiet = false, force_share = false, image_opts = false;
    int c;

    optind = 0;
    while ((c = getopt_long(argc, argv, CLI_OPTSTRING_PREFIX "hf:F:b:upt:T:qU", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'h': cli_print_help(); return 0;
        case 'f': fmt = optarg; break;
        case 'F': base_fmt = optarg; break;
        case 'b': base = optarg; break;
        case 'u': unsafe = true; break;
        case 'p': progress = true; break;
        case 't': cache = optarg; break;
        case 'T': src_cache = optarg; break;
        case 'q': quiet = true; break;
        case 'U': force_share = true; break;
        case OPT_OBJECT:
            if (cli_add_object(optarg) < 0)
                return 1;
            break;
        case OPT_IMAGE_OPTS: image_opts = true; break;
        default: return cli_bad_option(c, argv);
        }
    }
    if (quiet)
        progress = false;
    if (optind != argc - 1) {
        cli_usage_error("Expecting one image file name");
        return 1;
    }
    if (!unsafe && !base) {
        cli_usage_error("Must specify backing file (-b) or use unsafe mode (-u)");
        return 1;
    }
    const char *filename = argv[optind];

    progress_init(progress, 2.0);
    dimg_image *img = NULL, *new_b = NULL;
    int ret = 1;
    unsigned flags = DIMG_OPEN_RDWR | (unsafe ? DIMG_OPEN_NO_BACKING : 0), src_flags = 0;
    if (cli_cache_flags(cache, false, &flags) < 0 || cli_cache_flags(src_cache, true, &src_flags) < 0)
        goto fail;
    if (!(img = cli_img_open(filename, fmt, flags, image_opts)))
        goto fail;
    if (base_fmt && !driver_find(base_fmt)) {
        cli_error("Invalid format name: '%s'", base_fmt);
        goto fail;
    }
    if (!unsafe) {
        if (base[0]) {
            char *path = backing_resolve(dimg_get_filename(img), base);
            if (!path) {
                cli_error("out of memory");
                goto fail;
            }
            new_b = dimg_open(path, base_fmt,
                              src_flags | (force_share ? DIMG_OPEN_FORCE_SHARE : 0));
            free(path);
            if (!new_b) {
                cli_error_lib("Could not open new backing file '%s': ", base);
                goto fail;
            }
        }
        if (copy_changed_ranges(img, dimg_get_backing(img), new_b) < 0)
            goto fail;
    }

    int r = base && base[0] ? change_backing_file(img, base, base_fmt, true)
                            : change_backing_file(img, NULL, NULL, false);
    if (r == -ENOSPC)
        cli_error("Could not change the backing file to '%s': No space left in the file",
                  base ? base : "(null)");
    else if (r == -EINVAL && base && !base_fmt)
        cli_error("Could not change the backing file to '%s': backing format must be specified",
                  base);
    else if (r < 0)
        cli_error("Could not change the backing file to '%s': %s", base ? base : "(null)",
                  strerror(-r));
    ret = r < 0 ? 1 : 0;
    progress_end();
    goto out;

fail:
    if (progress) {
        printf("\n");
        fflush(stdout);
    }
out:
    dimg_close(new_b);
    if (img && dimg_close(img) < 0 && ret == 0) {
        cli_error_lib("%s", "");
        ret = 1;
    }
    return ret;
}
