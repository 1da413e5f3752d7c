/*
 * A VMDK descriptor held in memory and opened with IMAGE_OPEN_SELF_CONTAINED
 * (as the fuzz targets open their input) must not open the extent files it
 * names, even ones that exist; without the flag the same text opens them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "io/io.h"
#include "test.h"

static struct dimg_image *
open_text(const char *text, unsigned extra_flags)
{
    struct dimg_io *io = io_mem_open("mem.vmdk", (void *)text, strlen(text), false);
    CHECK(io != NULL);
    return image_open_io(io, "mem.vmdk", "vmdk", DIMG_OPEN_NO_BACKING | DIMG_OPEN_NO_LOCK | extra_flags,
                         0);
}

int
main(void)
{
    char path[] = "/tmp/dimg-vmdk-extent-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    static char sector[1 << 20];
    memset(sector, 0x5a, sizeof sector);
    CHECK(write(fd, sector, sizeof sector) == (ssize_t)sizeof sector);
    close(fd);

    char text[512];
    snprintf(text, sizeof text,
             "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\n"
             "createType=\"monolithicFlat\"\n# Extent description\nRW 2048 FLAT \"%s\" 0\n",
             path);

    /* The extent exists and is readable: an ordinary open uses it. */
    struct dimg_image *img = open_text(text, 0);
    CHECK(img != NULL);
    uint8_t b[4];
    CHECK(dimg_pread(img, b, sizeof b, 4096) == 0);
    CHECK(b[0] == 0x5a);
    dimg_close(img);

    /* The fuzz open refuses it, naming the file. */
    img = open_text(text, IMAGE_OPEN_SELF_CONTAINED);
    CHECK(img == NULL);
    CHECK(dimg_get_errno() == EPERM);
    CHECK(strstr(dimg_get_error(), path) != NULL);

    unlink(path);
    return 0;
}
