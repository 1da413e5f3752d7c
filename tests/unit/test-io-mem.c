/* io_mem: reads past the end zero-fill, writes grow, size limit, read-only, truncate. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "io/io.h"
#include "test.h"

#define LIMIT (256u << 20) /* io-mem.c's MEM_MAX_SIZE */

static void
check_bytes(const uint8_t *p, size_t len, uint8_t want)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != want) {
            fprintf(stderr, "byte %zu is 0x%02x, expected 0x%02x\n", i, p[i], want);
            exit(1);
        }
}

int
main(void)
{
    uint8_t init[100], buf[300];
    size_t len;
    for (size_t i = 0; i < sizeof init; i++)
        init[i] = (uint8_t)(i + 1);

    /* The buffer is copied: changing the caller's copy changes nothing. */
    struct dimg_io *io = io_mem_open("mem.img", init, sizeof init, true);
    CHECK(io != NULL);
    init[0] = 0xee;
    CHECK_STR(io->filename, "mem.img");
    CHECK_EQ_U64(io_get_size(io), 100);
    const uint8_t *d = io_mem_data(io, &len);
    CHECK_EQ_U64(len, 100);
    CHECK(d[0] == 1 && d[99] == 100);
    init[0] = 1;

    /* Reads inside, straddling the end and entirely past it. */
    memset(buf, 0xaa, sizeof buf);
    CHECK(io_pread(io, buf, 10, 0) == 0);
    CHECK(memcmp(buf, init, 10) == 0);
    CHECK(buf[10] == 0xaa);
    memset(buf, 0xaa, sizeof buf);
    CHECK(io_pread(io, buf, 50, 80) == 0);
    CHECK(memcmp(buf, init + 80, 20) == 0);
    check_bytes(buf + 20, 30, 0);
    CHECK(buf[50] == 0xaa);
    memset(buf, 0xaa, sizeof buf);
    CHECK(io_pread(io, buf, 64, 100) == 0);
    check_bytes(buf, 64, 0);
    memset(buf, 0xaa, sizeof buf);
    CHECK(io_pread(io, buf, 64, 1ull << 40) == 0);
    check_bytes(buf, 64, 0);
    memset(buf, 0xaa, sizeof buf);
    CHECK(io_pread(io, buf, 16, UINT64_MAX - 15) == 0);
    check_bytes(buf, 16, 0);
    CHECK(io_pread(io, buf, 0, 50) == 0);
    CHECK_EQ_U64(io_get_size(io), 100); /* reads never grow */

    /* Writes inside keep the size; past the end grow it with a zero gap. */
    memset(buf, 0x55, sizeof buf);
    CHECK(io_pwrite(io, buf, 10, 5) == 0);
    CHECK_EQ_U64(io_get_size(io), 100);
    CHECK(io_pwrite(io, buf, 20, 190) == 0);
    CHECK_EQ_U64(io_get_size(io), 210);
    d = io_mem_data(io, &len);
    CHECK_EQ_U64(len, 210);
    CHECK(d[4] == 5 && d[5] == 0x55 && d[14] == 0x55 && d[15] == 16);
    check_bytes(d + 100, 90, 0);
    check_bytes(d + 190, 20, 0x55);
    /* Growing many times (realloc path) keeps earlier contents. */
    for (uint64_t off = 1000; off < 1000000; off = off * 3 + 7)
        CHECK(io_pwrite(io, buf, 1, off) == 0);
    d = io_mem_data(io, &len);
    CHECK(d[0] == 1 && d[5] == 0x55 && d[209] == 0x55 && d[210] == 0);
    CHECK(d[1000] == 0x55 && d[1001] == 0);
    CHECK(io_pwrite(io, buf, 0, 5) == 0);

    /* Truncate shrinks and grows; grown bytes read as zeros. */
    CHECK(io_truncate(io, 50, DIMG_PREALLOC_OFF) == 0);
    CHECK_EQ_U64(io_get_size(io), 50);
    CHECK(io_truncate(io, 120, DIMG_PREALLOC_OFF) == 0);
    CHECK_EQ_U64(io_get_size(io), 120);
    memset(buf, 0xaa, sizeof buf);
    CHECK(io_pread(io, buf, 120, 0) == 0);
    CHECK(buf[49] == 50);
    check_bytes(buf + 50, 70, 0);
    CHECK(io_allocated_size(io) == 120);

    /* The size limit: up to it works, past it fails with EFBIG and changes nothing. */
    CHECK(io_pwrite(io, buf, 1, LIMIT - 1) == 0);
    CHECK_EQ_U64(io_get_size(io), LIMIT);
    CHECK(io_pwrite(io, buf, 1, LIMIT) == -EFBIG);
    CHECK(dimg_get_errno() == EFBIG);
    CHECK(strstr(dimg_get_error(), "mem.img") != NULL);
    CHECK(io_pwrite(io, buf, 2, LIMIT - 1) == -EFBIG);
    CHECK(io_truncate(io, (uint64_t)LIMIT + 1, DIMG_PREALLOC_OFF) == -EFBIG);
    CHECK_EQ_U64(io_get_size(io), LIMIT);
    CHECK(io_truncate(io, 10, DIMG_PREALLOC_OFF) == 0);
    /* Offsets whose end does not fit in 64 bits must fail, not wrap around. */
    CHECK(io_pwrite(io, buf, 16, UINT64_MAX - 7) < 0);
    CHECK(io_pwrite(io, buf, 1, UINT64_MAX) < 0);
    CHECK_EQ_U64(io_get_size(io), 10);

    /* Unsupported operations report it rather than crash. */
    CHECK(io_flush(io) == 0);
    uint64_t pnum = 0;
    CHECK(io_block_status(io, 0, 10, &pnum) == IO_STATUS_DATA && pnum == 10);
    CHECK(io_discard(io, 0, 10) == 0);
    CHECK(io_set_perm(io, IO_PERM_ALL, 0) == 0);
    /* io_write_zeroes falls back to writes. */
    CHECK(io_write_zeroes(io, 5, 20) == 0);
    CHECK_EQ_U64(io_get_size(io), 25);
    memset(buf, 0xaa, sizeof buf);
    CHECK(io_pread(io, buf, 25, 0) == 0);
    CHECK(buf[0] == 1 && buf[4] == 5);
    check_bytes(buf + 5, 20, 0);
    io_close(io);

    /* Read-only views refuse writes and resizes with EROFS. */
    io = io_mem_open("ro.img", init, sizeof init, false);
    CHECK(io != NULL);
    CHECK(io_pwrite(io, buf, 1, 0) == -EROFS);
    CHECK(dimg_get_errno() == EROFS);
    CHECK(strstr(dimg_get_error(), "ro.img") != NULL);
    CHECK(io_pwrite(io, buf, 1, 1000) == -EROFS);
    CHECK(io_truncate(io, 10, DIMG_PREALLOC_OFF) == -EROFS);
    CHECK_EQ_U64(io_get_size(io), 100);
    CHECK(io_pread(io, buf, 1, 0) == 0 && buf[0] == 1);
    io_close(io);

    /* Empty buffers (len 0, NULL data) work: the fuzzers pass them. */
    io = io_mem_open("empty", NULL, 0, true);
    CHECK(io != NULL);
    CHECK_EQ_U64(io_get_size(io), 0);
    memset(buf, 0xaa, sizeof buf);
    CHECK(io_pread(io, buf, 8, 0) == 0);
    check_bytes(buf, 8, 0);
    memset(buf, 0x11, 8);
    CHECK(io_pwrite(io, buf, 8, 4096) == 0);
    CHECK_EQ_U64(io_get_size(io), 4104);
    io_close(io);
    io_close(NULL);
    return 0;
}
