/*
 * A bitmap added through the API lives in memory until the image is closed.
 * Removing another bitmap meanwhile rewrites the directory on disk: it must
 * leave the new one out (it has no table yet), so that a process killed before
 * the close leaves an image qemu-img opens and finds clean or leaky.  Closed
 * normally, the new bitmap is stored and the removed one is gone.
 * Needs qemu-img (skips without it).
 */
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dimg/dimg.h"
#include "test.h"

static char dir[64];

static void
cleanup(void)
{
    if (!getenv("KEEP"))
        test_sh("rm -rf '%s'", dir);
}

/* Open, add "new", remove "b0"; then close, or end the process without closing. */
static void
add_then_remove(const char *path, bool close_it)
{
    dimg_image *img = dimg_open(path, "qcow2", DIMG_OPEN_RDWR);
    CHECK(img != NULL);
    CHECK(dimg_bitmap_add(img, "new", 0, 1) == 0);
    CHECK(dimg_bitmap_remove(img, "b0") == 0);
    if (!close_it)
        _exit(0); /* as if killed: nothing stored at close */
    CHECK(dimg_close(img) == 0);
}

int
main(void)
{
    if (test_sh("command -v qemu-img >/dev/null") != 0) {
        printf("SKIP: qemu-img not installed\n");
        return 77;
    }
    strcpy(dir, "/tmp/dimg-bitmap-pending.XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    atexit(cleanup);
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/a.qcow2", dir);
    snprintf(b, sizeof b, "%s/b.qcow2", dir);
    CHECK(test_sh("qemu-img create -q -f qcow2 '%s' 64M && qemu-img bitmap --add '%s' b0 && "
                  "cp '%s' '%s'", a, a, a, b) == 0);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        add_then_remove(a, false);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(test_sh("qemu-img info '%s' >/dev/null", a) == 0);
    st = test_sh("qemu-img check -q '%s' >/dev/null 2>&1", a);
    CHECK(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 3));
    CHECK(test_sh("qemu-img info '%s' | grep -q 'name: new'", a) != 0);

    add_then_remove(b, true);
    CHECK(test_sh("qemu-img check -q '%s'", b) == 0);
    CHECK(test_sh("qemu-img info '%s' | grep -q 'name: new'", b) == 0);
    CHECK(test_sh("qemu-img info '%s' | grep -q 'name: b0'", b) != 0);
    return 0;
}
