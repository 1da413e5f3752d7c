/* QEMU-compatible image locking: OFD byte locks at 100+N (held) and 200+N (not shared). */
#ifndef DIMG_IO_LOCK_H
#define DIMG_IO_LOCK_H

#include <stdbool.h>

/* Take the locks for perm/shared on fd and test for conflicts.  On conflict
 * releases what it took and returns -EAGAIN with qemu's message naming
 * filename.  Returns 0 or -errno. */
int io_lock_acquire(int fd, const char *filename, unsigned perm, unsigned shared);
void io_lock_release(int fd, unsigned perm, unsigned shared);

#endif
