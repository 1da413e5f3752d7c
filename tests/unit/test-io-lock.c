/*
 * Image locks taken through dimg_open() must look to qemu-img and qemu-io
 * exactly like the locks of the equivalent qemu-io opener.
 *
 * For each holder mode (read-write, read-only, force-share) the same probes
 * (qemu-img info, info -U, qemu-io -r, qemu-io rw) are run twice: once while
 * `qemu-io [-r] [-U] -c 'sleep ...'` holds the image (the reference) and once
 * while this process holds it with dimg_open(); stderr and exit codes must be
 * identical.  Then dimg's own open is checked against a qemu-io holder, and
 * locks must be gone after dimg_close().  Skips (77) without qemu-img/qemu-io.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dimg/dimg.h"
#include "test.h"

static char dir[64], img_path[128], out_path[128];
static pid_t holder = -1;

static void
stop_holder(void)
{
    if (holder > 0) {
        kill(holder, SIGTERM);
        waitpid(holder, NULL, 0);
        holder = -1;
    }
}

static void
cleanup(void)
{
    stop_holder();
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* true while some other open file description holds a lock on byte */
static int
byte_locked(int byte)
{
    int fd = open(img_path, O_RDONLY);
    CHECK(fd >= 0);
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };
    CHECK(fcntl(fd, F_OFD_GETLK, &fl) == 0);
    close(fd);
    return fl.l_type != F_UNLCK;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Start qemu-io holding the image open with the given extra options. */
static void
start_holder(const char *opts)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "exec qemu-io -f raw %s -c 'sleep 100000' '%s' </dev/null >/dev/null",
             opts, img_path);
    holder = fork();
    CHECK(holder >= 0);
    if (holder == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* Every qemu-io open holds byte 100 (consistent read). */
    for (int i = 0; i < 500 && !byte_locked(100); i++)
        sleep_ms(10);
    CHECK(byte_locked(100));
}

struct probe {
    const char *name;
    const char *cmd; /* %s = image */
};

static const struct probe probes[] = {
    { "info", "qemu-img info '%s'" },
    { "info-json", "qemu-img info --output=json '%s'" },
    { "info-U", "qemu-img info -U '%s'" },
    { "io-ro", "qemu-io -f raw -r -c flush '%s'" },
    { "io-ro-U", "qemu-io -f raw -r -U -c flush '%s'" },
    { "io-rw", "qemu-io -f raw -c flush '%s'" },
    { "create", "qemu-img create -q -f raw '%s' 1M" },
};
#define NPROBES (sizeof probes / sizeof probes[0])

struct result {
    int rc;
    char text[4096]; /* stdout + stderr */
};

static void
run_probe(const struct probe *p, struct result *res)
{
    char cmd[1024], fmt[512];
    snprintf(fmt, sizeof fmt, "%s >'%%s' 2>&1", p->cmd);
    snprintf(cmd, sizeof cmd, fmt, img_path, out_path);
    int st = system(cmd);
    res->rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    memset(res->text, 0, sizeof res->text);
    FILE *f = fopen(out_path, "r");
    CHECK(f != NULL);
    size_t n = fread(res->text, 1, sizeof res->text - 1, f);
    (void)n;
    fclose(f);
}

static int failures;

/* The reference holder and dimg's holder must look the same to every probe. */
static void
compare_holders(const char *qemu_opts, unsigned dimg_flags)
{
    static struct result ref[NPROBES], got[NPROBES];
    size_t n = NPROBES;
    /* A create onto the image succeeds when the holder shares write: it
     * rewrites the image, harmless here, but keep it last. */
    start_holder(qemu_opts);
    for (size_t i = 0; i < n; i++)
        run_probe(&probes[i], &ref[i]);
    stop_holder();
    CHECK(!byte_locked(100));

    dimg_image *img = dimg_open(img_path, "raw", dimg_flags);
    if (!img) {
        fprintf(stderr, "dimg_open(%s, 0x%x): %s\n", img_path, dimg_flags, dimg_get_error());
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        run_probe(&probes[i], &got[i]);
    CHECK(dimg_close(img) == 0);

    for (size_t i = 0; i < n; i++) {
        if (ref[i].rc != got[i].rc || strcmp(ref[i].text, got[i].text) != 0) {
            fprintf(stderr,
                    "holder qemu-io %s vs dimg_open(0x%x), probe %s:\n"
                    "  qemu-io holder: exit %d\n%s"
                    "  dimg holder:    exit %d\n%s",
                    qemu_opts, dimg_flags, probes[i].name, ref[i].rc, ref[i].text, got[i].rc,
                    got[i].text);
            failures++;
        }
    }
}

int
main(void)
{
    if (system("command -v qemu-img >/dev/null && command -v qemu-io >/dev/null") != 0) {
        puts("SKIP: qemu-img/qemu-io not installed");
        return 77;
    }
    strcpy(dir, "/tmp/dimg-lock.XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(img_path, sizeof img_path, "%s/held.raw", dir);
    snprintf(out_path, sizeof out_path, "%s/probe.out", dir);
    atexit(cleanup);
    signal(SIGPIPE, SIG_IGN);

    CHECK(dimg_create(img_path, "raw", 1 << 20, NULL, DIMG_CREATE_QUIET, NULL, NULL) == 0);

    /* 1. dimg as the holder, compared with the equivalent qemu-io holder. */
    compare_holders("", DIMG_OPEN_RDWR);
    compare_holders("-r", 0);
    compare_holders("-r -U", DIMG_OPEN_FORCE_SHARE);

    /* 2. dimg as the second opener: it must succeed or fail exactly when the
     *    qemu command with the same lock set does, failing with EAGAIN and a
     *    message naming the file. */
    static const struct {
        unsigned flags;
        const char *equiv; /* qemu command with the same lock set, %s = image */
    } openers[] = {
        { DIMG_OPEN_INFO_ONLY, "qemu-img info -f raw '%s'" },
        { 0, "qemu-img map -f raw '%s'" },
        { DIMG_OPEN_FORCE_SHARE, "qemu-img map -U -f raw '%s'" },
        { DIMG_OPEN_NO_LOCK, "qemu-img info --image-opts driver=raw,file.filename=%s,file.locking=off" },
        { DIMG_OPEN_RDWR, "qemu-io -f raw -c flush '%s'" },
    };
    static const char *const holder_opts[] = { "", "-r", "-r -U" };
    for (size_t h = 0; h < sizeof holder_opts / sizeof holder_opts[0]; h++) {
        start_holder(holder_opts[h]);
        for (size_t i = 0; i < sizeof openers / sizeof openers[0]; i++) {
            struct probe p = { "equiv", openers[i].equiv };
            struct result ref;
            run_probe(&p, &ref);
            dimg_image *img = dimg_open(img_path, "raw", openers[i].flags);
            int ok = img != NULL;
            if (!ok && (dimg_get_errno() != EAGAIN || !strstr(dimg_get_error(), img_path))) {
                fprintf(stderr, "holder qemu-io %s, dimg_open(0x%x): errno %d, \"%s\"\n",
                        holder_opts[h], openers[i].flags, dimg_get_errno(), dimg_get_error());
                failures++;
            }
            dimg_close(img);
            if (ok != (ref.rc == 0)) {
                fprintf(stderr, "holder qemu-io %s: dimg_open(0x%x) %s but `%s` exits %d:\n%s",
                        holder_opts[h], openers[i].flags, ok ? "succeeds" : "fails",
                        openers[i].equiv, ref.rc, ref.text);
                failures++;
            }
        }
        stop_holder();
    }

    /* 3. dimg's locks are visible to other open file descriptions (also in the
     *    same process) while held, and all gone after dimg_close(). */
    dimg_image *img = dimg_open(img_path, "raw", DIMG_OPEN_RDWR);
    CHECK(img != NULL);
    CHECK(byte_locked(100) && byte_locked(101));
    dimg_image *r = dimg_open(img_path, "raw", 0);
    CHECK(r != NULL);
    dimg_close(img);
    CHECK(byte_locked(100) && !byte_locked(101));
    dimg_close(r);
    for (int b = 100; b < 105; b++)
        CHECK(!byte_locked(b) && !byte_locked(b + 100));

    if (failures) {
        fprintf(stderr, "%d probe(s) differ\n", failures);
        return 1;
    }
    return 0;
}
