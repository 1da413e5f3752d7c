/*
 * qcow2: probing, header and extension parsing with validation, open/close
 * and the format-specific part of `info`.  Spec: shared/specs/qemu-qcow2.txt.
 * Every header field is untrusted: sizes are bounded before anything is
 * allocated, offsets are checked for alignment and overflow.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2.h"
#include "util/checked.h"
#include "util/endian.h"

static int
qcow2_probe(const uint8_t *head, size_t len, const char *filename)
{
    (void)filename;
    if (len >= 8 && load_be32(head) == QCOW2_MAGIC && load_be32(head + 4) >= 2)
        return 100;
    return 0;
}

/* Copy a length-delimited, not NUL-terminated on-disk string. */
static char *
dup_string(const uint8_t *p, size_t len)
{
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

static int
parse_extensions(struct dimg_image *img, struct qcow2_state *s, const uint8_t *hdr,
                 size_t hdr_len)
{
    size_t off = s->header_length;
    while (off + 8 <= hdr_len) {
        uint32_t type = load_be32(hdr + off);
        uint32_t len = load_be32(hdr + off + 4);
        off += 8;
        if (type == QCOW2_EXT_END)
            return 0;
        if (len > hdr_len - off)
            return dimg_error(EBADMSG, "Invalid extension length");
        const uint8_t *data = hdr + off;
        switch (type) {
        case QCOW2_EXT_BACKING_FMT:
            if (len > 1023)
                return dimg_error(EBADMSG, "ERROR: ext_backing_format: len=%" PRIu32
                                  " too large (>=1023)", len);
            free(img->backing_format);
            img->backing_format = dup_string(data, len);
            if (!img->backing_format)
                return dimg_error(ENOMEM, "out of memory");
            break;
        case QCOW2_EXT_DATA_FILE:
            free(s->data_file_name);
            s->data_file_name = dup_string(data, len);
            if (!s->data_file_name)
                return dimg_error(ENOMEM, "out of memory");
            break;
        case QCOW2_EXT_CRYPTO:
            if (len != 16)
                return dimg_error(EINVAL, "CRYPTO header extension size %" PRIu32
                                          ", but expected size 16", len);
            s->crypto_offset = load_be64(data);
            s->crypto_length = load_be64(data + 8);
            break;
        case QCOW2_EXT_FEATURES:
            /* Regenerated on every header rewrite. */
            break;
        default: {
            /* Bitmaps directory and unknown types: kept verbatim for header rewrites.
             * The header is one cluster, so this is bounded. */
            int r = qcow2_ext_set(s, type, data, len);
            if (r < 0)
                return r;
            break;
        }
        }
        off += round_up_u64(len, 8);
    }
    return 0;
}

static int
read_backing_name(struct dimg_image *img, const uint8_t *hdr, size_t hdr_len)
{
    uint64_t off = load_be64(hdr + 8);
    uint32_t len = load_be32(hdr + 16);
    if (off == 0)
        return 0;
    if (len > QCOW2_MAX_BACKING_NAME)
        return dimg_error(EINVAL, "Backing file name too long");
    if (!range_within(off, len, hdr_len))
        return dimg_error(EBADMSG, "Invalid backing file offset");
    img->backing_filename = dup_string(hdr + off, len);
    return img->backing_filename ? 0 : dimg_error(ENOMEM, "out of memory");
}

static int
check_header(struct dimg_image *img, struct qcow2_state *s, const uint8_t *h, int64_t file_size)
{
    (void)file_size;
    if (load_be32(h) != QCOW2_MAGIC)
        return dimg_error(EINVAL, "Image is not in qcow2 format");
    s->version = load_be32(h + 4);
    if (s->version < 2 || s->version > 3)
        return dimg_error(ENOTSUP, "Unsupported qcow2 version %" PRIu32, s->version);
    s->cluster_bits = load_be32(h + 20);
    if (s->cluster_bits < QCOW2_MIN_CLUSTER_BITS || s->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
        return dimg_error(EINVAL, "Unsupported cluster size: 2^%" PRIu32, s->cluster_bits);
    s->cluster_size = 1u << s->cluster_bits;
    img->size = load_be64(h + 24);
    s->crypt_method = load_be32(h + 32);
    s->l1_size = load_be32(h + 36);
    s->l1_offset = load_be64(h + 40);
    s->refcount_table_offset = load_be64(h + 48);
    s->refcount_table_clusters = load_be32(h + 56);
    s->nb_snapshots = load_be32(h + 60);
    s->snapshots_offset = load_be64(h + 64);
    if (s->version == 2) {
        s->header_length = 72;
        s->refcount_order = 4;
    } else {
        s->incompat = load_be64(h + 72);
        s->compat = load_be64(h + 80);
        s->autoclear = load_be64(h + 88);
        s->refcount_order = load_be32(h + 96);
        s->header_length = load_be32(h + 100);
        if (s->header_length < 104)
            return dimg_error(EINVAL, "qcow2 header too short");
        if (s->header_length > s->cluster_size)
            return dimg_error(EINVAL, "qcow2 header exceeds cluster size");
        if (s->header_length > 104 && h[104] != 0) {
            s->compression = (enum qcow2_compression)h[104];
        }
    }
    if (s->refcount_order > 6)
        return dimg_error(EINVAL, "Reference count entry width too large; may not exceed 64 bits");
    if (s->incompat & QCOW2_INCOMPAT_COMPRESSION) {
        if (s->header_length <= 104)
            return dimg_error(EINVAL, "qcow2: Compression type incompatible feature bit must be set");
        if (s->compression != QCOW2_COMPRESS_ZSTD)
            return dimg_error(EINVAL, "qcow2: Unknown compression type %u", (unsigned)s->compression);
    } else if (s->compression != QCOW2_COMPRESS_ZLIB) {
        return dimg_error(EINVAL, "qcow2: Compression type incompatible feature bit must be set");
    }
    if (s->incompat & ~QCOW2_INCOMPAT_KNOWN)
        return dimg_error(ENOTSUP, "Unsupported qcow2 feature(s): Unknown incompatible feature: %" PRIx64,
                          (uint64_t)(s->incompat & ~QCOW2_INCOMPAT_KNOWN));
    s->extended_l2 = s->incompat & QCOW2_INCOMPAT_EXTL2;
    if (s->extended_l2 && s->cluster_bits < 14)
        return dimg_error(EINVAL, "Extended L2 entries are only supported with cluster sizes of at "
                                  "least 16384 bytes");
    s->l2_entry_size = s->extended_l2 ? 16 : 8;
    s->l2_entries = s->cluster_size / s->l2_entry_size;
    s->subcluster_bits = s->extended_l2 ? s->cluster_bits - 5 : s->cluster_bits;

    if (s->refcount_table_offset & (s->cluster_size - 1))
        return dimg_error(EINVAL, "Refcount table offset invalid");
    if ((uint64_t)s->refcount_table_clusters << s->cluster_bits > QCOW2_MAX_REFTABLE_BYTES)
        return dimg_error(EINVAL, "Reference count table too large");
    if (s->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
        return dimg_error(EINVAL, "Too many snapshots");
    if (s->nb_snapshots && (s->snapshots_offset & (s->cluster_size - 1)))
        return dimg_error(EINVAL, "Snapshot table offset invalid");

    /* The L1 table must cover the virtual size; bytes per L1 entry = entries per L2 * cluster. */
    uint64_t per_l1 = (uint64_t)s->l2_entries << s->cluster_bits;
    if (img->size > INT64_MAX - per_l1)
        return dimg_error(EFBIG, "Image is too big");
    uint64_t need = (img->size + per_l1 - 1) / per_l1;
    if (need > QCOW2_MAX_L1_BYTES / 8)
        return dimg_error(EFBIG, "Image is too big");
    if ((uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_BYTES)
        return dimg_error(EFBIG, "Active L1 table too large");
    if (need > s->l1_size)
        return dimg_error(EINVAL, "L1 table is too small");
    if (s->l1_size && (s->l1_offset & (s->cluster_size - 1)))
        return dimg_error(EINVAL, "Active L1 table offset invalid");
    uint64_t l1_end;
    if (ckd_add_u64(&l1_end, s->l1_offset, (uint64_t)s->l1_size * 8) || l1_end > INT64_MAX)
        return dimg_error(EINVAL, "Active L1 table offset invalid");
    if (s->crypt_method > 2)
        return dimg_error(EINVAL, "Unsupported encryption method: %" PRIu32, s->crypt_method);
    return 0;
}

static int
load_l1(struct dimg_image *img, struct qcow2_state *s)
{
    if (s->l1_size == 0)
        return 0;
    size_t bytes = (size_t)s->l1_size * 8;
    s->l1 = malloc(bytes);
    if (!s->l1)
        return dimg_error(ENOMEM, "Could not allocate L1 table");
    int r = io_pread(img->file, s->l1, bytes, s->l1_offset);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < s->l1_size; i++)
        s->l1[i] = load_be64(&s->l1[i]);
    return 0;
}

static int
open_data_file(struct dimg_image *img, struct qcow2_state *s)
{
    if (!qcow2_has_data_file(s)) {
        s->data_file = img->file;
        return 0;
    }
    if (!s->data_file_name)
        return dimg_error(EINVAL, "Missing data_file option");
    char *path = backing_resolve(img->filename, s->data_file_name);
    if (!path)
        return dimg_error(ENOMEM, "out of memory");
    struct io_file_params p = {
        .writable = img->writable,
        .cache = DIMG_OPEN_CACHE_MODE(img->flags),
        .lock = !(img->flags & DIMG_OPEN_NO_LOCK) && !(img->flags & DIMG_OPEN_INFO_ONLY),
        .perm = img->writable ? IO_PERM_CONSISTENT_READ | IO_PERM_WRITE : IO_PERM_CONSISTENT_READ,
        .shared = (img->flags & DIMG_OPEN_FORCE_SHARE)
                      ? IO_PERM_ALL
                      : IO_PERM_CONSISTENT_READ | IO_PERM_WRITE_UNCHANGED,
    };
    int r = io_file_open(path, &p, &s->data_file);
    free(path);
    if (r < 0)
        return r;
    s->owns_data_file = true;
    return 0;
}

static void
qcow2_close(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    qcow2_l2_cache_free(s);
    qcow2_refcount_free(s);
    qcow2_snapshots_free(s);
    qcow2_bitmaps_free(s);
    if (s->owns_data_file)
        io_close(s->data_file);
    free(s->l1);
    free(s->data_file_name);
    qcow2_exts_free(s);
    pthread_mutex_destroy(&s->lock);
}

static int
qcow2_open(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    s->looks_preallocated = -1;
    int64_t file_size = io_get_size(img->file);
    if (file_size < 0)
        return (int)file_size;
    uint8_t first[112];
    int r = io_pread(img->file, first, sizeof first, 0);
    if (r < 0)
        goto fail;
    r = check_header(img, s, first, file_size);
    if (r < 0)
        goto fail;
    /* The whole first cluster holds header, extensions and the backing name. */
    uint8_t *hdr = malloc(s->cluster_size);
    if (!hdr) {
        r = dimg_error(ENOMEM, "out of memory");
        goto fail;
    }
    r = io_pread(img->file, hdr, s->cluster_size, 0);
    if (r == 0) {
        /* Extensions end where the backing file name starts (as qemu reads them). */
        uint64_t name_off = load_be64(hdr + 8);
        size_t ext_end = name_off > s->header_length && name_off < s->cluster_size
                             ? (size_t)name_off : s->cluster_size;
        r = parse_extensions(img, s, hdr, ext_end);
    }
    if (r == 0)
        r = read_backing_name(img, hdr, s->cluster_size);
    if (r == 0)
        r = qcow2_crypto_load(img);
    /* Encrypted images can be described (info) but not read: dimg takes no
     * key, so say what qemu-img says when it is given none. */
    if (r == 0 && s->crypt_method && !(img->flags & DIMG_OPEN_INFO_ONLY))
        r = dimg_error(ENOTSUP, "Parameter 'encrypt.key-secret' is required for cipher");
    free(hdr);
    if (r == 0)
        r = load_l1(img, s);
    if (r == 0)
        r = qcow2_snapshots_load(img);
    if (r == 0)
        r = open_data_file(img, s);
    if (r == 0)
        r = qcow2_bitmaps_open(img);
    if (r == 0 && img->writable)
        r = qcow2_write_prepare(img);
    if (r < 0)
        goto fail;
    img->cluster_size = s->cluster_size;
    return 0;
fail:
    qcow2_close(img);
    return r;
}

static struct dimg_value *
value_new(enum dimg_value_type type, const char *key)
{
    struct dimg_value *v = calloc(1, sizeof *v);
    if (v) {
        v->type = type;
        v->key = key ? strdup(key) : NULL;
    }
    return v;
}

static struct dimg_value *
value_add(struct dimg_value *parent, struct dimg_value *child)
{
    if (!child)
        return NULL;
    struct dimg_value **pp = &parent->child;
    while (*pp)
        pp = &(*pp)->next;
    *pp = child;
    return child;
}

static void
add_string(struct dimg_value *o, const char *key, const char *val)
{
    struct dimg_value *v = value_add(o, value_new(DIMG_VALUE_STRING, key));
    if (v)
        v->v.s = strdup(val);
}

static void
add_bool(struct dimg_value *o, const char *key, bool val)
{
    struct dimg_value *v = value_add(o, value_new(DIMG_VALUE_BOOL, key));
    if (v)
        v->v.b = val;
}

static void
add_uint(struct dimg_value *o, const char *key, uint64_t val)
{
    struct dimg_value *v = value_add(o, value_new(DIMG_VALUE_UINT, key));
    if (v)
        v->v.u = val;
}

/* "bitmaps": [{"flags": [...], "name": ..., "granularity": ...}], when there are any. */
static int
add_bitmaps(struct dimg_value *d, struct dimg_image *img)
{
    struct dimg_bitmap_info *bm;
    size_t n;
    int r = qcow2_bitmap_list(img, &bm, &n);
    if (r < 0 || n == 0)
        return r;
    struct dimg_value *arr = value_add(d, value_new(DIMG_VALUE_ARRAY, "bitmaps"));
    for (size_t i = 0; arr && i < n; i++) {
        struct dimg_value *o = value_add(arr, value_new(DIMG_VALUE_OBJECT, NULL));
        struct dimg_value *f = o ? value_add(o, value_new(DIMG_VALUE_ARRAY, "flags")) : NULL;
        if (f && (bm[i].flags & DIMG_BITMAP_IN_USE))
            add_string(f, NULL, "in-use");
        if (f && (bm[i].flags & DIMG_BITMAP_AUTO))
            add_string(f, NULL, "auto");
        if (o) {
            add_string(o, "name", bm[i].name);
            add_uint(o, "granularity", bm[i].granularity);
        }
    }
    dimg_bitmap_list_free(bm, n);
    return 0;
}

static int
qcow2_info(struct dimg_image *img, struct dimg_info *out)
{
    struct qcow2_state *s = dimg_image_state(img);
    out->dirty_flag = (s->incompat & QCOW2_INCOMPAT_DIRTY) != 0;
    out->encrypted = s->crypt_method != 0;
    struct dimg_value *root = value_new(DIMG_VALUE_OBJECT, NULL);
    if (!root)
        return dimg_error(ENOMEM, "out of memory");
    add_string(root, "type", "qcow2");
    struct dimg_value *d = value_add(root, value_new(DIMG_VALUE_OBJECT, "data"));
    if (d) {
        /* Member order as qemu-img 7.2 prints it. */
        add_string(d, "compat", s->version == 2 ? "0.10" : "1.1");
        add_string(d, "compression-type", s->compression == QCOW2_COMPRESS_ZSTD ? "zstd" : "zlib");
        if (s->version >= 3)
            add_bool(d, "lazy-refcounts", s->compat & QCOW2_COMPAT_LAZY_REFCOUNTS);
        if (add_bitmaps(d, img) < 0) {
            out->format_specific = root; /* freed with *out by the caller */
            return -dimg_get_errno();
        }
        add_uint(d, "refcount-bits", 1ull << s->refcount_order);
        if (s->crypt_method == 1) {
            struct dimg_value *e = value_add(d, value_new(DIMG_VALUE_OBJECT, "encrypt"));
            if (e)
                add_string(e, "format", "aes");
        }
        if (s->luks_loaded)
            value_add(d, luks_header_describe(&s->luks, "encrypt"));
        if (s->version >= 3) {
            if (s->data_file_name)
                add_string(d, "data-file", s->data_file_name);
            if (qcow2_has_data_file(s))
                add_bool(d, "data-file-raw", s->autoclear & QCOW2_AUTOCLEAR_DATA_RAW);
            add_bool(d, "corrupt", s->incompat & QCOW2_INCOMPAT_CORRUPT);
            add_bool(d, "extended-l2", s->extended_l2);
        }
    }
    out->format_specific = root;
    return 0;
}

const struct dimg_driver dimg_drv_qcow2 = {
    .name = "qcow2",
    .flags = DIMG_DRV_BACKING | DIMG_DRV_RESIZE_LOCK | DIMG_DRV_CREATE | DIMG_DRV_SNAPSHOTS,
    .state_size = sizeof(struct qcow2_state),
    .create_opts = qcow2_create_opts,
    .probe = qcow2_probe,
    .open = qcow2_open,
    .close = qcow2_close,
    .check_create = qcow2_check_create,
    .create = qcow2_create,
    .describe_create = qcow2_describe_create,
    .pread = qcow2_pread,
    .pwrite = qcow2_pwrite,
    .pwrite_compressed = qcow2_pwrite_compressed,
    .zero = qcow2_zero,
    .discard = qcow2_discard,
    .flush = qcow2_flush,
    .block_status = qcow2_block_status,
    .info = qcow2_info,
    .truncate = qcow2_truncate,
    .snapshot_list = qcow2_snapshot_list,
    .snapshot_create = qcow2_snapshot_create,
    .snapshot_goto = qcow2_snapshot_goto,
    .snapshot_delete = qcow2_snapshot_delete,
    .snapshot_load = qcow2_snapshot_load_tmp,
    .measure = qcow2_measure,
    .check = qcow2_check,
    .change_backing = qcow2_change_backing,
    .make_empty = qcow2_make_empty,
    .inactivate = qcow2_bitmaps_store,
    .bitmap_list = qcow2_bitmap_list,
    .bitmap_add = qcow2_bitmap_add,
    .bitmap_remove = qcow2_bitmap_remove,
    .bitmap_clear = qcow2_bitmap_clear,
    .bitmap_set_enabled = qcow2_bitmap_set_enabled,
    .bitmap_merge = qcow2_bitmap_merge,
    .bitmap_can_store = qcow2_bitmap_can_store,
    .amend_opts = qcow2_amend_opts,
    .amend = qcow2_amend,
};
