/*
 * Content IDs (CIDs) tie a VMDK child to the parent it was made from.
 * What qemu-img 7.2 does with them (observed):
 * - It reads both from a window of descriptor text: byte 0 of a descriptor
 *   file, byte 512 of a sparse file whatever its header says, 10240 bytes,
 *   up to the first NUL.  The first "CID" found gives the CID (so a
 *   "parentCID" coming first answers for it) and the first "parentCID" the
 *   parent CID, as a hex number one character after the key.  An image
 *   where either is missing does not open ("Invalid argument").
 * - A read that reaches the parent, or a write that allocates a grain while
 *   there is a parent, fails with EINVAL unless the parent's CID (read from
 *   its file then) equals the child's parentCID; once it matched, it is
 *   not checked again while the image stays open.
 * - The first write after opening gives the image a new random CID,
 *   rewriting the descriptor text in place: everything from the
 *   first "parentCID" on moves to just after the new value, the bytes past
 *   the new text keep what was there, and the window's last byte becomes
 *   a NUL.  A descriptor file is rewritten whole (dimg: up to 1 MiB),
 *   padded to a multiple of 512 bytes; a sparse file's 10240-byte window
 *   is rewritten where it was read.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "drv/vmdk/vmdk.h"

#define CID_WINDOW 10240u
/* Zeros past a window let a scan step over a key at its very end. */
#define CID_SLACK 32u

uint32_t
vmdk_new_cid(void)
{
    uint32_t v;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
        v = (uint32_t)time(NULL) ^ (uint32_t)clock();
    return v;
}

int
vmdk_scan_cid(const char *text, const char *key, uint32_t *out)
{
    const char *p = strstr(text, key);
    if (!p)
        return -1;
    p += strlen(key) + 1;
    char *end;
    unsigned long long v = strtoull(p, &end, 16);
    if (end == p)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* len bytes of img's descriptor text window (NUL terminated, with slack). */
static int
read_window(struct dimg_image *img, size_t len, char **out)
{
    struct vmdk_state *s = dimg_image_state(img);
    *out = NULL;
    char *t = calloc(1, len + CID_SLACK);
    if (!t)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pread(img->file, t, len, s->cid_offset);
    if (r < 0) {
        free(t);
        return r;
    }
    t[len - 1] = '\0';
    *out = t;
    return 0;
}

int
vmdk_cid_load(struct dimg_image *img)
{
    struct vmdk_state *s = dimg_image_state(img);
    char *t = NULL;
    int r = read_window(img, CID_WINDOW, &t);
    if (r < 0)
        return r;
    if (vmdk_scan_cid(t, "CID", &s->desc.cid) < 0 ||
        vmdk_scan_cid(t, "parentCID", &s->desc.parent_cid) < 0)
        r = dimg_error(EINVAL, "Could not open '%s': Invalid argument", img->filename);
    free(t);
    return r;
}

int
vmdk_cid_check_parent(struct dimg_image *img)
{
    struct vmdk_state *s = dimg_image_state(img);
    struct dimg_image *p = img->backing;
    if (s->cid_checked || !p)
        return 0;
    bool ok = false;
    if (p->drv == &dimg_drv_vmdk) {
        char *t = NULL;
        uint32_t cid;
        if (read_window(p, CID_WINDOW, &t) < 0)
            return -dimg_get_errno();
        ok = vmdk_scan_cid(t, "CID", &cid) == 0 && cid == s->desc.parent_cid;
        free(t);
    }
    if (!ok)
        return dimg_error(EINVAL, "Invalid argument");
    s->cid_checked = true;
    return 0;
}

/* The text of the window with cid as the new CID (buf holds len bytes). */
static int
rewrite_text(char *buf, size_t len, uint32_t cid)
{
    buf[len - 1] = '\0';
    const char *pc = strstr(buf, "parentCID");
    if (!pc)
        return dimg_error(EINVAL, "Invalid argument");
    char *tail = strdup(pc);
    if (!tail)
        return dimg_error(ENOMEM, "out of memory");
    /* "CID" is found: "parentCID" holds one. */
    size_t at = (size_t)(strstr(buf, "CID") - buf) + 4;
    if (at < len)
        snprintf(buf + at, len - at, "%x\n", cid);
    /* Append what followed, cut to the window. */
    size_t used = strlen(buf);
    size_t n = strlen(tail);
    if (n > len - 1 - used)
        n = len - 1 - used;
    memcpy(buf + used, tail, n);
    buf[used + n] = '\0';
    free(tail);
    return 0;
}

int
vmdk_cid_touch(struct dimg_image *img)
{
    struct vmdk_state *s = dimg_image_state(img);
    if (s->cid_updated)
        return 0;
    size_t len = CID_WINDOW;
    if (s->cid_offset == 0) {
        int64_t size = io_get_size(img->file);
        if (size < 0)
            return (int)size;
        len = (size_t)round_up_any((uint64_t)size < VMDK_MAX_DESC_BYTES ? (uint64_t)size
                                                                        : VMDK_MAX_DESC_BYTES,
                                   VMDK_SECTOR);
        if (len == 0)
            len = VMDK_SECTOR;
    }
    char *t = NULL;
    int r = read_window(img, len, &t);
    if (r < 0)
        return r;
    uint32_t cid = vmdk_new_cid();
    r = rewrite_text(t, len, cid);
    if (r == 0)
        r = io_pwrite(img->file, t, len, s->cid_offset);
    free(t);
    if (r < 0)
        return r;
    s->desc.cid = cid;
    s->cid_updated = true;
    return 0;
}
