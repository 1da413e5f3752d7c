/*
 * qcow2 full disk encryption (crypt_method 2): the LUKS1 header that the
 * crypto header extension (u64 offset, u64 length) points at, read and
 * validated when the image is opened so that `info` can describe it and a
 * damaged one fails the open with qemu-img's message.  Guest data stays
 * unreadable without decryption; only the header is looked at.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "drv/qcow2/qcow2.h"

/* Reads ending beyond this fail in qemu-img (its largest image length). */
#define MAX_READ_END 0x7fffffffc0000000ull

int
qcow2_crypto_load(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (s->crypt_method != 2) {
        if (s->crypto_offset)
            return dimg_error(EINVAL, "CRYPTO header extension only expected with LUKS "
                                      "encryption method");
        return 0;
    }
    if (s->crypto_offset & (s->cluster_size - 1))
        return dimg_error(EINVAL, "Encryption header offset '%" PRIu64 "' is not a multiple of "
                          "cluster size '%" PRIu32 "'", s->crypto_offset, s->cluster_size);
    if (!(img->flags & DIMG_OPEN_INFO_ONLY))
        return 0; /* data access is refused earlier; nothing here needs the header */
    /* Also refuses a missing extension (offset and length 0), which crashes qemu-img 7.2. */
    if (s->crypto_length < LUKS_PHDR_SIZE)
        return dimg_error(EINVAL, "Request for data outside of extension header");
    if (s->crypto_offset > MAX_READ_END - LUKS_PHDR_SIZE)
        return dimg_error(EIO, "Could not read encryption header: Input/output error");
    uint8_t phdr[LUKS_PHDR_SIZE];
    int r = io_pread(img->file, phdr, sizeof phdr, s->crypto_offset);
    if (r < 0)
        return r;
    if ((r = luks_header_parse(phdr, sizeof phdr, &s->luks)) < 0)
        return r;
    s->luks_loaded = true;
    return 0;
}
