/*
 * Zero writes on qcow2 images through the public API (dimg_zero) give the
 * very file that `qemu-io -c "write -z"` gives from the same starting image:
 * whole clusters get the zero flag (or all zero bits with extended L2), whole
 * subclusters their zero bits, and a part of a cluster or subcluster is
 * widened to all of it when it reads as zeros already, else written as
 * zeros.  Version 2 images deallocate.  Compressed clusters are rewritten.
 * Needs qemu-img and qemu-io (skips without them).
 */
#include <stdbool.h>
#include <unistd.h>

#include "dimg/dimg.h"
#include "test.h"

#define K 1024u

struct scenario {
    const char *opts;   /* qemu-img create -o */
    bool backing;       /* over a 1 MiB base full of data */
    const char *setup;  /* qemu-io commands, ';'-separated */
    uint64_t off, len;
    bool unmap;
    const char *size;
};

static const struct scenario scenarios[] = {
    { "extended_l2=on", false, "", 4 * K, 8 * K, false, NULL },
    { "extended_l2=on", false, "write -P 1 0 64k", 4 * K, 8 * K, false, NULL },
    { "extended_l2=on", false, "write -P 1 0 64k", 1 * K, 8 * K, false, NULL },
    { "extended_l2=on", false, "write -P 1 0 64k", 4 * K, 60 * K, false, NULL },
    { "extended_l2=on", false, "write -P 1 0 64k", 0, 64 * K, false, NULL },
    { "extended_l2=on", false, "write -c -P 1 0 64k", 4 * K, 8 * K, false, NULL },
    { "extended_l2=on", false, "write -P 1 8k 4k", 4 * K, 8 * K, false, NULL },
    { "extended_l2=on", true, "", 4 * K, 8 * K, false, NULL },
    { "extended_l2=on", false, "write -P 1 0 64k", 4 * K, 8 * K, true, NULL },
    { "extended_l2=on", true, "write -P 1 0 64k", 4 * K, 8 * K, true, NULL },
    { "extended_l2=on", false, "", 1 * K, 8 * K, false, NULL },
    { "extended_l2=on", true, "", 1 * K, 8 * K, false, NULL },
    { "extended_l2=on", false, "write -P 1 0 2k", 1 * K, 8 * K, false, NULL },
    { "extended_l2=on", false, "write -P 0 0 64k", 1 * K, 8 * K, false, NULL },
    { "extended_l2=on", false, "write -P 1 64k 64k", 1 * K, 1 * K, false, NULL },
    { "extended_l2=on", false, "write -z 0 64k", 1 * K, 1 * K, false, NULL },
    { "extended_l2=on", false, "write -P 1 0 64k", 1 * K, 1 * K, false, NULL },
    { "extended_l2=on", false, "", 1 * K, 1 * K, false, NULL },
    { "extended_l2=on", false, "", 0, 64 * K, false, NULL },
    { "extended_l2=on", false, "write -P 1 0 192k", 30 * K, 100 * K, false, NULL },
    { "extended_l2=on", true, "write -P 1 0 192k", 30 * K, 100 * K, true, NULL },
    { "extended_l2=on", false, "write -P 1 0 1000k", 990 * K, 10 * K, false, "1000k" },
    { "extended_l2=on,cluster_size=16k", false, "write -P 1 0 8k", 100, 1000, false, NULL },
    { "", false, "", 1 * K, 1 * K, false, NULL },
    { "", false, "write -P 1 0 64k", 1 * K, 1 * K, false, NULL },
    { "", false, "", 60 * K, 8 * K, false, NULL },
    { "", true, "", 1 * K, 1 * K, false, NULL },
    { "cluster_size=4k", false, "", 1 * K, 1 * K, false, NULL },
    { "", false, "", 0, 64 * K, false, NULL },
    { "", false, "", 0, 64 * K, true, NULL },
    { "", false, "write -P 1 0 64k", 0, 128 * K, false, NULL },
    { "", false, "write -P 1 0 64k", 0, 128 * K, true, NULL },
    { "", true, "write -P 1 0 300k", 10 * K, 200 * K, false, NULL },
    { "", false, "write -c -P 1 0 64k", 0, 64 * K, false, NULL },
    { "compat=0.10", false, "", 0, 64 * K, false, NULL },
    { "compat=0.10", false, "", 0, 1 * K, false, NULL },
    { "compat=0.10", false, "write -P 1 0 64k", 0, 64 * K, true, NULL },
    { "compat=0.10", false, "write -P 1 0 128k", 1 * K, 100 * K, true, NULL },
};

static char dir[64];

static void
qemu_io_setup(const char *file, const char *setup)
{
    char args[1024] = "";
    char copy[512];
    snprintf(copy, sizeof copy, "%s", setup);
    for (char *save = NULL, *c = strtok_r(copy, ";", &save); c; c = strtok_r(NULL, ";", &save)) {
        size_t n = strlen(args);
        snprintf(args + n, sizeof args - n, " -c '%s'", c);
    }
    if (args[0])
        CHECK(test_sh("qemu-io%s '%s' >/dev/null", args, file) == 0);
}

static bool
run(size_t i, const struct scenario *sc)
{
    char q[128], d[128];
    snprintf(q, sizeof q, "%s/q%zu.qcow2", dir, i);
    snprintf(d, sizeof d, "%s/d%zu.qcow2", dir, i);
    char opts[256];
    snprintf(opts, sizeof opts, "%s%s", sc->opts[0] ? "-o " : "", sc->opts);
    char back[256] = "";
    if (sc->backing)
        snprintf(back, sizeof back, "-b '%s/base.qcow2' -F qcow2", dir);
    CHECK(test_sh("qemu-img create -q -f qcow2 %s %s '%s' %s", opts, back, q,
             sc->size ? sc->size : "1M") == 0);
    qemu_io_setup(q, sc->setup);
    CHECK(test_sh("cp '%s' '%s'", q, d) == 0);
    CHECK(test_sh("qemu-io -c 'write -z %s%" PRIu64 " %" PRIu64 "' '%s' >/dev/null",
             sc->unmap ? "-u " : "", sc->off, sc->len, q) == 0);

    dimg_image *img = dimg_open(d, "qcow2", DIMG_OPEN_RDWR);
    if (!img) {
        fprintf(stderr, "open %s: %s\n", d, dimg_get_error());
        return false;
    }
    int r = dimg_zero(img, sc->off, sc->len, sc->unmap ? DIMG_ZERO_MAY_UNMAP : 0);
    int c = dimg_close(img);
    if (r < 0 || c < 0) {
        fprintf(stderr, "dimg_zero on %s: %s\n", d, dimg_get_error());
        return false;
    }
    if (test_sh("cmp -s '%s' '%s'", q, d) == 0)
        return true;
    fprintf(stderr, "scenario %zu (-o %s%s, setup \"%s\", write -z %s%" PRIu64 " %" PRIu64
            "): files differ\n",
            i, sc->opts, sc->backing ? ", backing" : "", sc->setup, sc->unmap ? "-u " : "",
            sc->off, sc->len);
    test_sh("qemu-img map --output=json '%s' >&2; qemu-img map --output=json '%s' >&2", q, d);
    return false;
}

static void
cleanup(void)
{
    if (!getenv("KEEP")) test_sh("rm -rf '%s'", dir);
}

int
main(void)
{
    if (test_sh("command -v qemu-img >/dev/null && command -v qemu-io >/dev/null") != 0) {
        printf("SKIP: qemu-img/qemu-io not installed\n");
        return 77;
    }
    strcpy(dir, "/tmp/dimg-qcow2-zero.XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    atexit(cleanup);
    CHECK(test_sh("qemu-img create -q -f qcow2 '%s/base.qcow2' 1M && "
             "qemu-io -c 'write -P 0x55 0 1M' '%s/base.qcow2' >/dev/null", dir, dir) == 0);
    int failed = 0;
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        failed += !run(i, &scenarios[i]);
    if (failed)
        fprintf(stderr, "%d scenario(s) failed\n", failed);
    return failed ? 1 : 0;
}
