/*
 * The public API on raw images, as an application would use it: create,
 * open, write/read/zero/block status, info, and errors that carry an errno
 * and a message naming the file.  Uses only <dimg/dimg.h> plus libc.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dimg/dimg.h"
#include "test.h"

#define MiB (1024u * 1024u)

static char dir[64], path[128], path2[128];

static void
cleanup(void)
{
    unlink(path);
    unlink(path2);
    rmdir(dir);
}

static int lines;
static void
formatting(const char *line, void *opaque)
{
    (void)opaque;
    CHECK(strstr(line, "Formatting '") == line);
    CHECK(strstr(line, "fmt=raw") != NULL);
    lines++;
}

/* The last error names the file and matches the errno. */
static void
check_error(int r, int want_errno, const char *name)
{
    if (r != -want_errno || dimg_get_errno() != want_errno) {
        fprintf(stderr, "got %d / errno %d (%s), expected -%d\n", r, dimg_get_errno(),
                dimg_get_error(), want_errno);
        exit(1);
    }
    const char *msg = dimg_get_error();
    if (!msg || !strstr(msg, name)) {
        fprintf(stderr, "error message \"%s\" does not name \"%s\"\n", msg ? msg : "(null)",
                name);
        exit(1);
    }
}

int
main(void)
{
    strcpy(dir, "/tmp/dimg-api-raw.XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/a.raw", dir);
    snprintf(path2, sizeof path2, "%s/missing/b.raw", dir);
    atexit(cleanup);

    /* Formats list contains raw. */
    const char *const *names = dimg_format_names();
    int have_raw = 0;
    for (; names && *names; names++)
        have_raw |= strcmp(*names, "raw") == 0;
    CHECK(have_raw);

    /* create: the formatting callback runs once, the file has the size and is sparse. */
    CHECK(dimg_create(path, "raw", 4 * MiB, NULL, 0, formatting, NULL) == 0);
    CHECK(lines == 1);
    struct stat st;
    CHECK(stat(path, &st) == 0);
    CHECK_EQ_U64((uint64_t)st.st_size, 4 * MiB);

    /* open read-write, geometry */
    dimg_image *img = dimg_open(path, "raw", DIMG_OPEN_RDWR);
    if (!img) {
        fprintf(stderr, "open: %s\n", dimg_get_error());
        return 1;
    }
    CHECK_STR(dimg_get_format(img), "raw");
    CHECK_STR(dimg_get_filename(img), path);
    CHECK_EQ_U64(dimg_get_size(img), 4 * MiB);
    CHECK(dimg_get_backing(img) == NULL);

    /* A fresh sparse image reads as zeros and reports zero status. */
    static uint8_t buf[256 * 1024], rd[256 * 1024];
    memset(rd, 0xaa, sizeof rd);
    CHECK(dimg_pread(img, rd, sizeof rd, 0) == 0);
    for (size_t i = 0; i < sizeof rd; i++)
        CHECK(rd[i] == 0);
    struct dimg_extent e;
    /* (Like qemu-img, create allocates the first 4 KiB; look past it.) */
    CHECK(dimg_block_status(img, 65536, 4 * MiB - 65536, &e) == 0);
    CHECK_EQ_U64(e.offset, 65536);
    CHECK(e.length > 0 && e.length <= 4 * MiB - 65536);
    CHECK(e.flags & DIMG_EXTENT_ZERO);
    CHECK(!(e.flags & DIMG_EXTENT_DATA));

    /* write, read back, status shows data there */
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    CHECK(dimg_pwrite(img, buf, sizeof buf, MiB) == 0);
    CHECK(dimg_pwrite(img, buf, 512, 4 * MiB - 512) == 0); /* last sector */
    CHECK(dimg_flush(img) == 0);
    memset(rd, 0, sizeof rd);
    CHECK(dimg_pread(img, rd, sizeof rd, MiB) == 0);
    CHECK(memcmp(rd, buf, sizeof buf) == 0);
    CHECK(dimg_pread(img, rd, 1000, MiB - 500) == 0); /* straddles hole/data */
    for (int i = 0; i < 500; i++)
        CHECK(rd[i] == 0);
    CHECK(memcmp(rd + 500, buf, 500) == 0);

    /* Walk the whole image: extents are contiguous, cover it, data where written. */
    uint64_t off = 0, data_bytes = 0;
    int n = 0;
    while (off < 4 * MiB) {
        CHECK(dimg_block_status(img, off, 4 * MiB - off, &e) == 0);
        CHECK_EQ_U64(e.offset, off);
        CHECK(e.length > 0 && e.length <= 4 * MiB - off);
        CHECK(e.depth == 0);
        if (e.flags & DIMG_EXTENT_DATA)
            data_bytes += e.length;
        if (e.flags & DIMG_EXTENT_OFFSET)
            CHECK_EQ_U64(e.host_offset, off); /* raw maps 1:1 */
        off += e.length;
        CHECK(++n < 1000);
    }
    CHECK(data_bytes >= sizeof buf + 512);
    CHECK(dimg_block_status(img, MiB, 4096, &e) == 0);
    CHECK(e.flags & DIMG_EXTENT_DATA);
    CHECK(e.length == 4096);

    /* zero: reads back as zeros, both with and without unmap */
    CHECK(dimg_zero(img, MiB, 65536, 0) == 0);
    CHECK(dimg_zero(img, MiB + 65536, 65536, DIMG_ZERO_MAY_UNMAP) == 0);
    CHECK(dimg_zero(img, MiB + 131072 + 1, 1000, 0) == 0); /* unaligned */
    CHECK(dimg_pread(img, rd, sizeof rd, MiB) == 0);
    for (size_t i = 0; i < 131072; i++)
        CHECK(rd[i] == 0);
    CHECK(rd[131072] == buf[131072]);
    for (size_t i = 131073; i < 131073 + 1000; i++)
        CHECK(rd[i] == 0);
    CHECK(rd[131073 + 1000] == buf[131073 + 1000]);
    CHECK(dimg_discard(img, 2 * MiB, 65536) == 0);

    /* Requests beyond the end fail with EINVAL naming the file; nothing is written. */
    check_error(dimg_pwrite(img, buf, 512, 4 * MiB), EINVAL, path);
    check_error(dimg_pwrite(img, buf, 1024, 4 * MiB - 512), EINVAL, path);
    check_error(dimg_pread(img, rd, 1, 4 * MiB), EINVAL, path);
    check_error(dimg_pread(img, rd, 16, UINT64_MAX - 7), EINVAL, path);
    check_error(dimg_zero(img, 4 * MiB - 1, 2, 0), EINVAL, path);
    check_error(dimg_zero(img, UINT64_MAX, UINT64_MAX, 0), EINVAL, path);
    check_error(dimg_block_status(img, 4 * MiB, 1, &e), EINVAL, path);
    check_error(dimg_block_status(img, 0, 0, &e), EINVAL, path);
    CHECK(stat(path, &st) == 0);
    CHECK_EQ_U64((uint64_t)st.st_size, 4 * MiB);

    /* info */
    struct dimg_info info;
    memset(&info, 0, sizeof info);
    CHECK(dimg_get_info(img, &info) == 0);
    CHECK_STR(info.format, "raw");
    CHECK_EQ_U64(info.virtual_size, 4 * MiB);
    CHECK(info.actual_size > 0);
    CHECK(info.backing_filename == NULL);
    dimg_info_free(&info);

    /* resize: grow is fine, shrink needs the flag */
    CHECK(dimg_truncate(img, 8 * MiB, DIMG_PREALLOC_OFF, 0) == 0);
    CHECK_EQ_U64(dimg_get_size(img), 8 * MiB);
    CHECK(dimg_truncate(img, 4 * MiB, DIMG_PREALLOC_OFF, 0) == -EINVAL);
    CHECK(dimg_truncate(img, 4 * MiB, DIMG_PREALLOC_OFF, DIMG_TRUNCATE_SHRINK) == 0);
    CHECK_EQ_U64(dimg_get_size(img), 4 * MiB);
    CHECK(dimg_close(img) == 0);

    /* Reopen read-only (probed): the data persisted, writes are refused with EROFS. */
    img = dimg_open(path, NULL, 0);
    CHECK(img != NULL);
    CHECK_STR(dimg_get_format(img), "raw");
    CHECK(dimg_pread(img, rd, 512, 4 * MiB - 512) == 0);
    CHECK(memcmp(rd, buf, 512) == 0);
    check_error(dimg_pwrite(img, buf, 512, 0), EROFS, path);
    check_error(dimg_zero(img, 0, 512, 0), EROFS, path);
    check_error(dimg_discard(img, 0, 512), EROFS, path);
    CHECK(dimg_truncate(img, 8 * MiB, DIMG_PREALLOC_OFF, 0) == -EROFS);
    CHECK(dimg_flush(img) == 0);
    CHECK(dimg_close(img) == 0);
    CHECK(dimg_close(NULL) == 0);

    /* Open errors: errno and a message naming the file. */
    CHECK(dimg_open(path2, NULL, 0) == NULL);
    check_error(-dimg_get_errno(), ENOENT, path2);
    CHECK(dimg_open(dir, "raw", 0) == NULL);
    CHECK(dimg_get_errno() != 0);
    CHECK(strstr(dimg_get_error(), dir) != NULL);
    CHECK(dimg_open(path, "nosuchfmt", 0) == NULL);
    CHECK(dimg_get_errno() == EINVAL);
    CHECK(strstr(dimg_get_error(), "nosuchfmt") != NULL);
    CHECK(dimg_open(path, NULL, DIMG_OPEN_RDWR | DIMG_OPEN_FORCE_SHARE) == NULL);
    CHECK(dimg_get_errno() == EINVAL);
    CHECK(dimg_open(NULL, NULL, 0) == NULL);
    CHECK(dimg_get_errno() == EINVAL);

    /* Create errors: missing directory, unknown format, unknown option; nothing created. */
    int r = dimg_create(path2, "raw", MiB, NULL, DIMG_CREATE_QUIET, NULL, NULL);
    check_error(r, ENOENT, path2);
    CHECK(access(path2, F_OK) != 0);
    r = dimg_create(path, "nosuchfmt", MiB, NULL, DIMG_CREATE_QUIET, NULL, NULL);
    CHECK(r < 0 && dimg_get_errno() != 0);
    r = dimg_create(path, "raw", MiB, "nosuchoption=1", DIMG_CREATE_QUIET, NULL, NULL);
    CHECK(r < 0 && dimg_get_errno() != 0);
    CHECK(strstr(dimg_get_error(), "nosuchoption") != NULL);
    CHECK(stat(path, &st) == 0);
    CHECK_EQ_U64((uint64_t)st.st_size, 4 * MiB); /* untouched by the failed creates */

    /* Errors are per thread and stay until the next failure. */
    const char *before = dimg_get_error();
    CHECK(before != NULL && *before != 0);
    uint64_t v;
    CHECK(dimg_parse_size("1k", &v) == 0 && v == 1024);
    CHECK(dimg_get_errno() != 0);
    return 0;
}
