/*
 * Image locks as QEMU 7.2 takes them (see specs/locking-notes.md): shared
 * 1-byte OFD read locks at 100+N for each permission held and at 200+N for
 * each permission not shared, then exclusive-type F_OFD_GETLK tests of the
 * opposite bytes.  Falls back to POSIX locks where OFD locks are missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "io/io-lock.h"
#include "io/io.h"

#define LOCK_BASE_PERM 100
#define LOCK_BASE_SHARED 200
#define PERM_COUNT 4

static const char *const perm_names[PERM_COUNT] = {
    "consistent read", "write", "write unchanged", "resize",
};

static bool use_posix;

static int
lock_cmd(int fd, int cmd_ofd, int cmd_posix, struct flock *fl)
{
    if (!use_posix) {
        if (fcntl(fd, cmd_ofd, fl) == 0)
            return 0;
        if (errno != EINVAL)
            return -errno;
        use_posix = true;
    }
    return fcntl(fd, cmd_posix, fl) == 0 ? 0 : -errno;
}

static int
lock_byte(int fd, int byte, short type)
{
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };
    return lock_cmd(fd, F_OFD_SETLK, F_SETLK, &fl);
}

/* true when another opener holds a lock on byte */
static int
byte_taken(int fd, int byte)
{
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1 };
    int r = lock_cmd(fd, F_OFD_GETLK, F_GETLK, &fl);
    if (r < 0)
        return r;
    return fl.l_type != F_UNLCK;
}

void
io_lock_release(int fd, unsigned perm, unsigned shared)
{
    for (int n = 0; n < PERM_COUNT; n++) {
        if (perm & (1u << n))
            lock_byte(fd, LOCK_BASE_PERM + n, F_UNLCK);
        if (!(shared & (1u << n)))
            lock_byte(fd, LOCK_BASE_SHARED + n, F_UNLCK);
    }
}

int
io_lock_acquire(int fd, const char *filename, unsigned perm, unsigned shared)
{
    int r = 0;
    for (int n = 0; n < PERM_COUNT && r == 0; n++)
        if (perm & (1u << n))
            r = lock_byte(fd, LOCK_BASE_PERM + n, F_RDLCK);
    for (int n = 0; n < PERM_COUNT && r == 0; n++)
        if (!(shared & (1u << n)))
            r = lock_byte(fd, LOCK_BASE_SHARED + n, F_RDLCK);
    if (r < 0) {
        io_lock_release(fd, perm, shared);
        return dimg_error(-r, "Failed to lock byte: %s", strerror(-r));
    }
    for (int n = 0; n < PERM_COUNT; n++) {
        if (!(perm & (1u << n)))
            continue;
        r = byte_taken(fd, LOCK_BASE_SHARED + n);
        if (r != 0) {
            io_lock_release(fd, perm, shared);
            if (r < 0)
                return dimg_error(-r, "Failed to get \"%s\" lock", perm_names[n]);
            return dimg_error(EAGAIN,
                              "Failed to get \"%s\" lock\n"
                              "Is another process using the image [%s]?",
                              perm_names[n], filename);
        }
    }
    for (int n = 0; n < PERM_COUNT; n++) {
        if (shared & (1u << n))
            continue;
        r = byte_taken(fd, LOCK_BASE_PERM + n);
        if (r != 0) {
            io_lock_release(fd, perm, shared);
            if (r < 0)
                return dimg_error(-r, "Failed to get shared \"%s\" lock", perm_names[n]);
            return dimg_error(EAGAIN,
                              "Failed to get shared \"%s\" lock\n"
                              "Is another process using the image [%s]?",
                              perm_names[n], filename);
        }
    }
    return 0;
}
