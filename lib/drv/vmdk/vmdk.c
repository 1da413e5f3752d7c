/*
 * vmdk: probing, opening (descriptor file, sparse file with an embedded
 * descriptor, or a COWD file on its own), routing guest I/O to extents,
 * block status and info.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/vmdk/vmdk.h"
#include "util/checked.h"
#include "util/endian.h"

/* A sparse header (hosted or COWD), or a text descriptor whose first real
 * line is "version=". */
static int
vmdk_probe(const uint8_t *head, size_t len, const char *filename)
{
    (void)filename;
    if (len >= 4 && (load_le32(head) == VMDK4_MAGIC || load_le32(head) == VMDK_COWD_MAGIC))
        return 100;
    size_t i = 0;
    while (i < len) {
        while (i < len && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' ||
                           head[i] == '\n'))
            i++;
        if (i < len && head[i] == '#') {
            while (i < len && head[i] != '\n')
                i++;
            continue;
        }
        break;
    }
    if (len - i >= 9 && memcmp(head + i, "version=", 8) == 0 && head[i + 8] >= '1' &&
        head[i + 8] <= '3')
        return 100;
    return 0;
}

static void
vmdk_close(struct dimg_image *img)
{
    struct vmdk_state *s = dimg_image_state(img);
    for (size_t i = 0; i < s->n_extents; i++) {
        struct vmdk_extent *e = &s->ext[i];
        vmdk_sparse_free(e);
        if (e->owns_file)
            io_close(e->file);
        free(e->path);
    }
    free(s->ext);
    s->ext = NULL;
    s->n_extents = 0;
    vmdk_desc_free(&s->desc);
    pthread_mutex_destroy(&s->lock);
}

static int
open_extent_file(struct dimg_image *img, const char *path, struct dimg_io **out)
{
    struct io_file_params p = {
        .writable = img->writable,
        .cache = DIMG_OPEN_CACHE_MODE(img->flags),
        .lock = !(img->flags & DIMG_OPEN_NO_LOCK) && !(img->flags & DIMG_OPEN_INFO_ONLY),
        .perm = img->writable ? IO_PERM_CONSISTENT_READ | IO_PERM_WRITE : IO_PERM_CONSISTENT_READ,
        .shared = (img->flags & DIMG_OPEN_FORCE_SHARE)
                      ? IO_PERM_ALL
                      : IO_PERM_CONSISTENT_READ | IO_PERM_WRITE_UNCHANGED,
    };
    return io_file_open(path, &p, out);
}

/* One extent line of a separate descriptor: open its file and read its header. */
static int
open_desc_extent(struct dimg_image *img, const struct vmdk_desc_extent *d,
                 struct vmdk_extent *e)
{
    if (d->sectors > VMDK_MAX_BYTES / VMDK_SECTOR)
        return dimg_error(EFBIG, "Could not refresh total sector count: File too large");
    e->length = d->sectors * VMDK_SECTOR;
    e->type_name = d->type;
    e->path = backing_resolve(img->filename, d->filename);
    if (!e->path)
        return dimg_error(ENOMEM, "out of memory");
    if (img->flags & IMAGE_OPEN_SELF_CONTAINED)
        return dimg_error(EPERM, "Could not open '%s': extent files may not be opened here",
                          e->path);
    int r = open_extent_file(img, e->path, &e->file);
    if (r < 0)
        return r;
    e->owns_file = true;
    if (strcmp(d->type, "SESPARSE") == 0)
        return vmdk_sesparse_refuse(e);
    if (strcmp(d->type, "SPARSE") != 0 && strcmp(d->type, "VMFSSPARSE") != 0) {
        e->type = VMDK_EXT_FLAT;
        if (d->offset > VMDK_MAX_BYTES / VMDK_SECTOR)
            return dimg_error(EFBIG, "Invalid extent offset in '%s'", img->filename);
        e->flat_offset = d->offset * VMDK_SECTOR;
        return 0;
    }
    /* Either sparse layout may stand behind either type name: the magic decides. */
    e->type = VMDK_EXT_SPARSE;
    uint8_t hdr[VMDK_SECTOR];
    r = io_pread(e->file, hdr, sizeof hdr, 0);
    if (r < 0)
        return r;
    return load_le32(hdr) == VMDK_COWD_MAGIC ? vmdk_cowd_open(e) : vmdk_sparse_open(e, hdr);
}

static int
read_text(struct dimg_io *io, uint64_t off, uint64_t len, struct vmdk_desc *out, bool embedded)
{
    if (len > VMDK_MAX_DESC_BYTES)
        len = VMDK_MAX_DESC_BYTES;
    char *t = malloc(len + 1);
    if (!t)
        return dimg_error(ENOMEM, "out of memory");
    int r = io_pread(io, t, len, off);
    if (r == 0) {
        t[len] = '\0';
        r = vmdk_desc_parse(t, len, out);
        /* An embedded descriptor is informational: the header describes the data. */
        if (r < 0 && embedded) {
            memset(out, 0, sizeof *out);
            dimg_error_clear();
            r = 0;
        }
    }
    free(t);
    return r;
}

static bool
known_create_type(const char *t)
{
    /* The types qemu-img 7.2 opens from a separate descriptor (observed). */
    static const char *const types[] = { "monolithicFlat", "vmfs", "vmfsSparse", "seSparse",
                                         "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", NULL };
    for (size_t i = 0; types[i]; i++)
        if (strcmp(t, types[i]) == 0)
            return true;
    return false;
}

static int
open_descriptor(struct dimg_image *img, struct vmdk_state *s, int64_t fsize)
{
    int r = read_text(img->file, 0, (uint64_t)fsize, &s->desc, false);
    if (r < 0)
        return r;
    if (!known_create_type(s->desc.create_type))
        return dimg_error(ENOTSUP, "Unsupported image type '%s'", s->desc.create_type);
    if (s->desc.n_extents == 0)
        return dimg_error(EINVAL, "invalid VMDK image descriptor: no extents");
    s->ext = calloc(s->desc.n_extents, sizeof *s->ext);
    if (!s->ext)
        return dimg_error(ENOMEM, "out of memory");
    uint64_t start = 0;
    for (size_t i = 0; i < s->desc.n_extents; i++) {
        struct vmdk_extent *e = &s->ext[i];
        s->n_extents++;
        e->gt_index = -1;
        r = open_desc_extent(img, &s->desc.ext[i], e);
        if (r < 0)
            return r;
        e->start = start;
        if (ckd_add_u64(&start, start, e->length) || start > VMDK_MAX_BYTES)
            return dimg_error(EFBIG, "Could not refresh total sector count: File too large");
    }
    img->size = start;
    return 0;
}

/* The one sparse extent of an image file without a separate descriptor. */
static int
single_extent(struct dimg_image *img, struct vmdk_state *s, struct vmdk_extent **out)
{
    *out = NULL; /* gcc -O3 cannot tell that dimg_error() is negative */
    s->ext = calloc(1, sizeof *s->ext);
    if (!s->ext)
        return dimg_error(ENOMEM, "out of memory");
    s->n_extents = 1;
    struct vmdk_extent *e = *out = &s->ext[0];
    e->type = VMDK_EXT_SPARSE;
    e->type_name = "";
    e->file = img->file;
    e->path = strdup(img->filename);
    return e->path ? 0 : dimg_error(ENOMEM, "out of memory");
}

static int
open_embedded(struct dimg_image *img, struct vmdk_state *s, const uint8_t *hdr)
{
    struct vmdk_extent *e;
    int r = single_extent(img, s, &e);
    if (r == 0)
        r = vmdk_sparse_open(e, hdr);
    if (r < 0)
        return r;
    uint64_t cap, doff, dsize;
    struct vmdk_extent tmp = { 0 };
    vmdk_sparse_header(&tmp, hdr, &cap, &doff, &dsize);
    if (doff && dsize && doff < UINT64_MAX / VMDK_SECTOR && dsize < UINT64_MAX / VMDK_SECTOR)
        r = read_text(img->file, doff * VMDK_SECTOR, dsize * VMDK_SECTOR, &s->desc, true);
    img->size = e->length;
    if (r < 0)
        return r;
    /* The file's own header says what it is, whatever its text claims (qemu
     * shows the same). */
    free(s->desc.create_type);
    s->desc.create_type = strdup(vmdk_grains_compressed(e) ? "streamOptimized" : "monolithicSparse");
    return s->desc.create_type ? 0 : dimg_error(ENOMEM, "out of memory");
}

/* A COWD file opened directly: one extent, and the descriptor qemu reads from it. */
static int
open_bare_cowd(struct dimg_image *img, struct vmdk_state *s)
{
    struct vmdk_extent *e;
    int r = single_extent(img, s, &e);
    if (r < 0)
        return r;
    r = vmdk_cowd_open(e);
    if (r == 0)
        r = vmdk_cowd_bare_desc(img->file, img->filename, &s->desc);
    img->size = e->length;
    return r;
}

static int
vmdk_open(struct dimg_image *img)
{
    struct vmdk_state *s = dimg_image_state(img);
    pthread_mutex_init(&s->lock, NULL);
    int64_t fsize = io_get_size(img->file);
    uint8_t hdr[VMDK_SECTOR];
    int r = fsize < 0 ? (int)fsize : io_pread(img->file, hdr, sizeof hdr, 0);
    if (r < 0)
        goto fail;
    /* A sparse file's CIDs are read at byte 512, whatever its header says. */
    s->cid_offset = VMDK_SECTOR;
    if (load_le32(hdr) == VMDK4_MAGIC) {
        r = open_embedded(img, s, hdr);
    } else if (load_le32(hdr) == VMDK_COWD_MAGIC) {
        r = open_bare_cowd(img, s);
    } else {
        s->cid_offset = 0;
        r = open_descriptor(img, s, fsize);
    }
    if (r == 0)
        r = vmdk_cid_load(img);
    if (r < 0)
        goto fail;
    if (s->desc.parent_hint && s->desc.parent_hint[0]) {
        /* A VMDK parent is always a VMDK (qemu reports the format as such). */
        img->backing_filename = strdup(s->desc.parent_hint);
        img->backing_format = strdup("vmdk");
        if (!img->backing_filename || !img->backing_format) {
            r = dimg_error(ENOMEM, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < s->n_extents; i++) {
        if (s->ext[i].type == VMDK_EXT_SPARSE) {
            img->cluster_size = s->ext[i].grain_bytes;
            break;
        }
    }
    /* streamOptimized: every grain is compressed, so writers should hand over whole grains. */
    img->compressed_only = s->n_extents > 0;
    for (size_t i = 0; i < s->n_extents; i++)
        if (!vmdk_grains_compressed(&s->ext[i]))
            img->compressed_only = false;
    return 0;
fail:
    vmdk_close(img);
    return r;
}

static struct vmdk_extent *
find_extent(struct vmdk_state *s, uint64_t off)
{
    for (size_t i = 0; i < s->n_extents; i++)
        if (off >= s->ext[i].start && off - s->ext[i].start < s->ext[i].length)
            return &s->ext[i];
    return NULL;
}

/* One extent's part of a request: rel bytes into extent e, n long, done bytes into it. */
typedef int (*extent_op)(struct dimg_image *img, struct vmdk_extent *e, uint64_t rel,
                         size_t n, size_t done, void *opaque);

/* Split [off, off + len) at extent boundaries and apply op to each part in order. */
static int
for_each_extent(struct dimg_image *img, uint64_t off, uint64_t len, extent_op op, void *opaque)
{
    struct vmdk_state *s = dimg_image_state(img);
    int r = 0;
    pthread_mutex_lock(&s->lock);
    for (uint64_t done = 0; done < len && r == 0;) {
        struct vmdk_extent *e = find_extent(s, off + done);
        if (!e) {
            r = dimg_error(EIO, "Access beyond the extents of '%s'", img->filename);
            break;
        }
        uint64_t rel = off + done - e->start;
        size_t n = (size_t)min_u64(len - done, e->length - rel);
        r = op(img, e, rel, n, (size_t)done, opaque);
        done += n;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int
read_part(struct dimg_image *img, struct vmdk_extent *e, uint64_t rel, size_t n, size_t done,
          void *buf)
{
    uint8_t *p = (uint8_t *)buf + done;
    return e->type == VMDK_EXT_FLAT ? io_pread(e->file, p, n, e->flat_offset + rel)
                                    : vmdk_sparse_read(img, e, p, n, rel);
}

static int
write_part(struct dimg_image *img, struct vmdk_extent *e, uint64_t rel, size_t n, size_t done,
           void *buf)
{
    const uint8_t *p = (const uint8_t *)buf + done;
    if (e->type != VMDK_EXT_FLAT)
        return vmdk_sparse_write(img, e, p, n, rel);
    int r = io_pwrite(e->file, p, n, e->flat_offset + rel);
    return r < 0 ? r : vmdk_cid_touch(img);
}

static int
vmdk_pread(struct dimg_image *img, void *buf, size_t len, uint64_t off)
{
    return for_each_extent(img, off, len, read_part, buf);
}

static int
vmdk_pwrite(struct dimg_image *img, const void *buf, size_t len, uint64_t off)
{
    return for_each_extent(img, off, len, write_part, (void *)buf);
}

static int
vmdk_block_status(struct dimg_image *img, uint64_t off, uint64_t len, struct dimg_extent *out)
{
    struct vmdk_state *s = dimg_image_state(img);
    int r = 0;
    pthread_mutex_lock(&s->lock);
    struct vmdk_extent *e = find_extent(s, off);
    if (!e) {
        r = dimg_error(EIO, "Access beyond the extents of '%s'", img->filename);
        goto out;
    }
    uint64_t rel = off - e->start;
    len = min_u64(len, e->length - rel);
    switch (e->type) {
    case VMDK_EXT_FLAT: {
        /* Holes in a flat extent read as zeros but are still "data" for qemu. */
        uint64_t pnum;
        int st = io_block_status(e->file, e->flat_offset + rel, len, &pnum);
        if (st < 0) {
            r = st;
            goto out;
        }
        out->flags = DIMG_EXTENT_ALLOCATED | DIMG_EXTENT_DATA | DIMG_EXTENT_OFFSET |
                     ((st & IO_STATUS_ZERO) ? DIMG_EXTENT_ZERO : 0);
        out->host_offset = e->flat_offset + rel;
        out->filename = e->path;
        out->length = pnum;
        break;
    }
    case VMDK_EXT_SPARSE:
        r = vmdk_sparse_status(e, rel, len, out);
        /* map names the extent file holding the grain, not the descriptor. */
        out->filename = e->path;
        break;
    }
out:
    pthread_mutex_unlock(&s->lock);
    return r;
}

/*
 * Sparse extents skip what reads as zeros already and use zeroed-grain
 * entries where the flag allows (see vmdk_sparse_zero); flat extents get
 * zero data (qemu counts even their holes as data).
 */
static int
zero_part(struct dimg_image *img, struct vmdk_extent *e, uint64_t rel, size_t n, size_t done,
          void *opaque)
{
    (void)done;
    (void)opaque;
    if (e->type == VMDK_EXT_SPARSE)
        return vmdk_sparse_zero(img, e, rel, n);
    size_t chunk = (size_t)min_u64(n, 1u << 20);
    uint8_t *zeros = calloc(1, chunk);
    if (!zeros)
        return dimg_error(ENOMEM, "out of memory");
    int r = 0;
    for (size_t at = 0; at < n && r == 0; at += chunk)
        r = io_pwrite(e->file, zeros, (size_t)min_u64(chunk, n - at), e->flat_offset + rel + at);
    free(zeros);
    return r < 0 ? r : vmdk_cid_touch(img);
}

static int
vmdk_zero(struct dimg_image *img, uint64_t off, uint64_t len, unsigned flags)
{
    /* Parts may need zero data: never promised cheap. */
    if (flags & DIMG_ZERO_NO_FALLBACK)
        return -ENOTSUP;
    return for_each_extent(img, off, len, zero_part, NULL);
}

static int
vmdk_flush(struct dimg_image *img)
{
    struct vmdk_state *s = dimg_image_state(img);
    int r = io_flush(img->file);
    for (size_t i = 0; i < s->n_extents && r == 0; i++)
        if (s->ext[i].owns_file && s->ext[i].file->writable)
            r = io_flush(s->ext[i].file);
    return r;
}

/* Extent files are opened and locked here, not by the core. */
static int
vmdk_set_perm(struct dimg_image *img, unsigned perm, unsigned shared)
{
    struct vmdk_state *s = dimg_image_state(img);
    for (size_t i = 0; i < s->n_extents; i++) {
        if (!s->ext[i].owns_file)
            continue;
        int r = io_set_perm(s->ext[i].file, perm, shared);
        if (r < 0)
            return r;
    }
    return 0;
}

static struct dimg_value *
value_add(struct dimg_value *parent, enum dimg_value_type type, const char *key)
{
    struct dimg_value *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->type = type;
    v->key = key ? strdup(key) : NULL;
    struct dimg_value **pp = &parent->child;
    while (*pp)
        pp = &(*pp)->next;
    *pp = v;
    return v;
}

static void
add_uint(struct dimg_value *o, const char *key, uint64_t val)
{
    struct dimg_value *v = value_add(o, DIMG_VALUE_UINT, key);
    if (v)
        v->v.u = val;
}

static void
add_string(struct dimg_value *o, const char *key, const char *val)
{
    struct dimg_value *v = value_add(o, DIMG_VALUE_STRING, key);
    if (v)
        v->v.s = strdup(val);
}

static uint32_t
extent_grain(const struct vmdk_extent *e)
{
    return e->type == VMDK_EXT_SPARSE ? e->grain_bytes : 0;
}

static int
vmdk_info(struct dimg_image *img, struct dimg_info *out)
{
    struct vmdk_state *s = dimg_image_state(img);
    /* qemu has no cluster size (and so no dirty flag) for extents whose
     * grains differ, flat extents counting as grains of 0. */
    for (size_t i = 1; i < s->n_extents; i++) {
        if (extent_grain(&s->ext[i]) != extent_grain(&s->ext[0])) {
            out->cluster_size = 0;
            out->dirty_flag = -1;
        }
    }
    /* qemu counts the extent files' allocation too. */
    for (size_t i = 0; i < s->n_extents && out->actual_size >= 0; i++) {
        if (!s->ext[i].owns_file)
            continue;
        int64_t a = io_allocated_size(s->ext[i].file);
        if (a >= 0)
            out->actual_size += a;
    }
    struct dimg_value *root = calloc(1, sizeof *root);
    if (!root)
        return dimg_error(ENOMEM, "out of memory");
    root->type = DIMG_VALUE_OBJECT;
    add_string(root, "type", "vmdk");
    struct dimg_value *d = value_add(root, DIMG_VALUE_OBJECT, "data");
    if (d) {
        add_uint(d, "cid", s->desc.cid);
        add_uint(d, "parent-cid", s->desc.parent_cid);
        if (s->desc.create_type)
            add_string(d, "create-type", s->desc.create_type);
        struct dimg_value *arr = value_add(d, DIMG_VALUE_ARRAY, "extents");
        for (size_t i = 0; arr && i < s->n_extents; i++) {
            const struct vmdk_extent *e = &s->ext[i];
            struct dimg_value *x = value_add(arr, DIMG_VALUE_OBJECT, NULL);
            if (!x)
                break;
            if (vmdk_grains_compressed(e)) {
                struct dimg_value *c = value_add(x, DIMG_VALUE_BOOL, "compressed");
                if (c)
                    c->v.b = 1;
            }
            add_uint(x, "virtual-size", e->length);
            if (e->path)
                add_string(x, "filename", e->path);
            if (e->type == VMDK_EXT_SPARSE)
                add_uint(x, "cluster-size", e->grain_bytes);
            add_string(x, "format", e->type_name);
        }
    }
    out->format_specific = root;
    return 0;
}

const struct dimg_driver dimg_drv_vmdk = {
    .name = "vmdk",
    .flags = DIMG_DRV_BACKING | DIMG_DRV_RESIZE_LOCK | DIMG_DRV_CREATE,
    .state_size = sizeof(struct vmdk_state),
    .create_opts = vmdk_create_opts,
    .probe = vmdk_probe,
    .open = vmdk_open,
    .close = vmdk_close,
    .check_create = vmdk_check_create,
    .create = vmdk_create,
    .describe_create = vmdk_describe_create,
    .pread = vmdk_pread,
    .pwrite = vmdk_pwrite,
    .pwrite_compressed = vmdk_pwrite_compressed,
    .zero = vmdk_zero,
    .flush = vmdk_flush,
    .block_status = vmdk_block_status,
    .info = vmdk_info,
    .check = vmdk_check,
    .set_perm = vmdk_set_perm,
};
