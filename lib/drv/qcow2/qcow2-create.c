/*
 * qcow2 image creation: option validation (before any file exists), the
 * "Formatting" line in qemu-img's option order, and the initial layout:
 * header cluster, refcount table, refcount blocks, L1 table — the same
 * layout qemu-img writes, so fresh images compare equal byte for byte.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2.h"
#include "util/checked.h"
#include "util/endian.h"

const struct dimg_optdesc qcow2_create_opts[] = {
    { "backing_file", DIMG_OPT_STRING, "File name of a base image", NULL },
    { "backing_fmt", DIMG_OPT_STRING, "Image format of the base image", NULL },
    { "cluster_size", DIMG_OPT_SIZE, "qcow2 cluster size", NULL },
    { "compat", DIMG_OPT_STRING, "Compatibility level (v2 [0.10] or v3 [1.1])", NULL },
    { "compression_type", DIMG_OPT_STRING, "Compression method used for image cluster compression", NULL },
    { "data_file", DIMG_OPT_STRING, "File name of an external data file", NULL },
    { "data_file_raw", DIMG_OPT_BOOL, "The external data file must stay valid as a raw image", NULL },
    { "encrypt.cipher-alg", DIMG_OPT_STRING, "Name of encryption cipher algorithm", NULL },
    { "encrypt.cipher-mode", DIMG_OPT_STRING, "Name of encryption cipher mode", NULL },
    { "encrypt.format", DIMG_OPT_STRING, "Encrypt the image, format choices: 'aes', 'luks'", NULL },
    { "encrypt.hash-alg", DIMG_OPT_STRING, "Name of encryption hash algorithm", NULL },
    { "encrypt.iter-time", DIMG_OPT_NUMBER, "Time to spend in PBKDF in milliseconds", NULL },
    { "encrypt.ivgen-alg", DIMG_OPT_STRING, "Name of IV generator algorithm", NULL },
    { "encrypt.ivgen-hash-alg", DIMG_OPT_STRING, "Name of IV generator hash algorithm", NULL },
    { "encrypt.key-secret", DIMG_OPT_STRING, "ID of secret providing qcow AES key or LUKS passphrase", NULL },
    { "encryption", DIMG_OPT_BOOL, "Encrypt the image with format 'aes'. (Deprecated in favor of encrypt.format=aes)", NULL },
    { "extended_l2", DIMG_OPT_BOOL, "Extended L2 tables", NULL },
    { "lazy_refcounts", DIMG_OPT_BOOL, "Postpone refcount updates", NULL },
    { "preallocation", DIMG_OPT_STRING, "Preallocation mode (allowed values: off, metadata, falloc, full)", NULL },
    { "refcount_bits", DIMG_OPT_NUMBER, "Width of a reference count entry in bits", NULL },
    { "size", DIMG_OPT_SIZE, "Virtual disk size", NULL },
    { NULL, 0, NULL, NULL },
};

struct qcow2_params {
    uint32_t version;
    uint32_t cluster_bits;
    uint32_t refcount_order;
    bool lazy, extl2, zstd, data_raw;
    enum dimg_prealloc prealloc;
    const char *backing, *backing_fmt, *data_file;
};

static int
parse_params(const struct dimg_create_args *a, struct qcow2_params *p)
{
    const struct dimg_opts *o = a->opts;
    const char *v;
    uint64_t cs;
    bool b;
    memset(p, 0, sizeof *p);
    p->version = 3;
    if ((v = opts_get(o, "compat"))) {
        if (!strcmp(v, "0.10") || !strcmp(v, "v2"))
            p->version = 2;
        else if (strcmp(v, "1.1") && strcmp(v, "v3"))
            return dimg_error(EINVAL, "Parameter 'version' does not accept value '%s'", v);
    }
    if (opts_get_size(o, "cluster_size", 65536, &cs) < 0)
        return -EINVAL;
    if (!is_power_of_2(cs) || cs < 512 || cs > (2u << 20))
        return dimg_error(EINVAL, "Cluster size must be a power of two between 512 and 2048k");
    p->cluster_bits = (uint32_t)__builtin_ctzll(cs);
    p->refcount_order = 4;
    if ((v = opts_get(o, "refcount_bits"))) {
        char *end;
        unsigned long long bits = strtoull(v, &end, 10);
        if (*end || !*v)
            return dimg_error(EINVAL, "Parameter 'refcount_bits' expects a number");
        if (!is_power_of_2(bits) || bits > 64)
            return dimg_error(EINVAL, "Refcount width must be a power of two and may not exceed 64 bits");
        p->refcount_order = (uint32_t)__builtin_ctzll(bits);
    }
    if ((v = opts_get(o, "compression_type"))) {
        if (!strcmp(v, "zstd"))
            p->zstd = true;
        else if (strcmp(v, "zlib"))
            return dimg_error(EINVAL, "Parameter 'compression-type' does not accept value '%s'", v);
    }
    if ((v = opts_get(o, "preallocation"))) {
        int m = dimg_prealloc_parse(v);
        if (m < 0)
            return dimg_error(EINVAL, "Parameter 'preallocation' does not accept value '%s'", v);
        p->prealloc = (enum dimg_prealloc)m;
    }
    opts_get_bool(o, "lazy_refcounts", false, &p->lazy);
    opts_get_bool(o, "extended_l2", false, &p->extl2);
    opts_get_bool(o, "data_file_raw", false, &p->data_raw);
    p->backing = opts_get(o, "backing_file");
    p->backing_fmt = opts_get(o, "backing_fmt");
    p->data_file = opts_get(o, "data_file");
    if (opts_get(o, "encrypt.format") || (opts_get_bool(o, "encryption", false, &b) == 0 && b))
        return dimg_error(ENOTSUP, "qcow2 encryption is not supported yet");
    if (p->version == 2) {
        if (p->lazy)
            return dimg_error(EINVAL, "Lazy refcounts only supported with compatibility level 1.1 "
                                      "and above (use version=v3 or greater)");
        if (p->refcount_order != 4)
            return dimg_error(EINVAL, "Different refcount widths than 16 bits require compatibility "
                                      "level 1.1 or above (use version=v3 or greater)");
        if (p->zstd)
            return dimg_error(EINVAL, "Non-zlib compression type is only supported with "
                                      "compatibility level 1.1 and above (use version=v3 or greater)");
        if (p->extl2)
            return dimg_error(EINVAL, "Extended L2 entries are only supported with compatibility "
                                      "level 1.1 and above (use version=v3 or greater)");
        if (p->data_file)
            return dimg_error(EINVAL, "Data file requires compatibility level 1.1 or above (use "
                                      "version=v3 or greater)");
    }
    if (p->extl2 && p->cluster_bits < 14)
        return dimg_error(EINVAL, "Extended L2 entries are only supported with cluster sizes of at "
                                  "least 16384 bytes");
    if (p->data_raw && !p->data_file)
        return dimg_error(EINVAL, "data-file-raw requires data-file");
    if (p->prealloc != DIMG_PREALLOC_OFF && p->backing)
        return dimg_error(EINVAL, "Backing file and preallocation can only be used at the same "
                                  "time if extended_l2 is on");
    if (p->backing && p->data_raw)
        return dimg_error(EINVAL, "Backing file and data-file-raw cannot be used together");
    if (p->backing && strlen(p->backing) > QCOW2_MAX_BACKING_NAME)
        return dimg_error(EINVAL, "Backing file name too long");
    return 0;
}

int
qcow2_check_create(const struct dimg_create_args *args)
{
    struct qcow2_params p;
    int r = parse_params(args, &p);
    if (r < 0)
        return r;
    uint64_t per_l1 = ((uint64_t)1 << p.cluster_bits) / (p.extl2 ? 16 : 8) << p.cluster_bits;
    if (args->size > INT64_MAX - per_l1 || (args->size + per_l1 - 1) / per_l1 > QCOW2_MAX_L1_BYTES / 8)
        return dimg_error(EFBIG, "The image size is too large for file format 'qcow2' (try using a "
                                 "larger cluster size)");
    return 0;
}

/* qemu-img's order: cluster_size extended_l2 [preallocation] compression_type size
 * [compat] [backing_file] [backing_fmt] [data_file] [data_file_raw] lazy_refcounts refcount_bits */
char *
qcow2_describe_create(const struct dimg_create_args *args)
{
    const struct dimg_opts *o = args->opts;
    struct strbuf sb = { 0 };
    const char *v;
    uint64_t cs = 65536;
    bool b;
    for (size_t i = 0; i < o->n; i++)
        if (!strncmp(o->v[i].key, "encrypt.", 8))
            sb_append(&sb, "%s=%s ", o->v[i].key, o->v[i].value);
    if ((v = opts_get(o, "encryption")))
        sb_append(&sb, "encryption=%s ", v);
    opts_get_size(o, "cluster_size", 65536, &cs);
    sb_append(&sb, "cluster_size=%" PRIu64, cs);
    opts_get_bool(o, "extended_l2", false, &b);
    sb_append(&sb, " extended_l2=%s", b ? "on" : "off");
    if ((v = opts_get(o, "preallocation")))
        sb_append(&sb, " preallocation=%s", v);
    v = opts_get(o, "compression_type");
    sb_append(&sb, " compression_type=%s size=%" PRIu64, v ? v : "zlib", args->size);
    static const char *const middle[] = { "compat", "backing_file", "backing_fmt", "data_file" };
    for (size_t i = 0; i < 4; i++)
        if ((v = opts_get(o, middle[i])))
            sb_append(&sb, " %s=%s", middle[i], v);
    if (opts_get(o, "data_file_raw")) {
        opts_get_bool(o, "data_file_raw", false, &b);
        sb_append(&sb, " data_file_raw=%s", b ? "on" : "off");
    }
    opts_get_bool(o, "lazy_refcounts", false, &b);
    v = opts_get(o, "refcount_bits");
    sb_append(&sb, " lazy_refcounts=%s refcount_bits=%s", b ? "on" : "off", v ? v : "16");
    return sb.s;
}

static int
create_data_file(const char *image, const char *name, uint64_t size)
{
    char *path = backing_resolve(image, name);
    if (!path)
        return dimg_error(ENOMEM, "out of memory");
    struct io_file_params p = {
        .writable = true, .create = true, .lock = true,
        .perm = IO_PERM_CONSISTENT_READ | IO_PERM_WRITE | IO_PERM_RESIZE,
        .shared = IO_PERM_CONSISTENT_READ | IO_PERM_WRITE_UNCHANGED,
    };
    struct dimg_io *io;
    int r = io_file_open(path, &p, &io);
    free(path);
    if (r < 0)
        return r;
    r = io_truncate(io, 0, DIMG_PREALLOC_OFF);
    if (r == 0)
        r = io_truncate(io, size, DIMG_PREALLOC_OFF);
    io_close(io);
    return r;
}

/* Reopen the new image (the create path already holds its lock) and map every cluster. */
static int
preallocate(const char *filename, enum dimg_prealloc mode, unsigned flags)
{
    (void)flags;
    struct dimg_image *img = image_open(filename, "qcow2",
                                        DIMG_OPEN_RDWR | DIMG_OPEN_NO_BACKING | DIMG_OPEN_NO_LOCK, 0);
    if (!img)
        return -dimg_get_errno();
    int r = qcow2_preallocate(img, mode);
    int r2 = dimg_close(img);
    return r < 0 ? r : r2;
}

int
qcow2_create(struct dimg_io *file, const struct dimg_create_args *args)
{
    struct qcow2_params p;
    int r = parse_params(args, &p);
    if (r < 0)
        return r;
    uint64_t cs = 1ull << p.cluster_bits;
    uint64_t vsize = round_up_u64(args->size, 512); /* qemu-img stores whole sectors */
    uint64_t l2_entries = cs / (p.extl2 ? 16 : 8);
    uint64_t per_l1 = l2_entries * cs;
    uint64_t l1_size = (vsize + per_l1 - 1) / per_l1;
    uint64_t l1_clusters = (l1_size * 8 + cs - 1) / cs;
    uint64_t rb_entries = (cs * 8) >> p.refcount_order;

    /*
     * Layout, as qemu-img lays it out: header, refcount table, the first
     * refcount block, the L1 table, then any further refcount blocks the L1
     * table needs.  Sized until the counts agree.
     */
    uint64_t rt_clusters = 1, rb_count = 1;
    for (;;) {
        uint64_t clusters = 1 + rt_clusters + rb_count + l1_clusters;
        uint64_t need_rb = (clusters + rb_entries - 1) / rb_entries;
        uint64_t need_rt = (need_rb * 8 + cs - 1) / cs;
        if (need_rb == rb_count && need_rt == rt_clusters)
            break;
        rb_count = need_rb;
        rt_clusters = need_rt;
    }
    uint64_t rt_off = cs, rb_off = rt_off + rt_clusters * cs, l1_off = rb_off + cs;
    uint64_t extra_rb_off = l1_off + l1_clusters * cs;
    uint64_t total = 1 + rt_clusters + rb_count + l1_clusters;

    uint8_t *buf = calloc(1, (size_t)cs);
    if (!buf)
        return dimg_error(ENOMEM, "out of memory");
    store_be32(buf, QCOW2_MAGIC);
    store_be32(buf + 4, p.version);
    store_be32(buf + 20, p.cluster_bits);
    store_be64(buf + 24, vsize);
    store_be32(buf + 36, (uint32_t)l1_size);
    store_be64(buf + 40, l1_size ? l1_off : 0); /* qemu-img leaves an empty L1 at offset 0 */
    store_be64(buf + 48, rt_off);
    store_be32(buf + 56, (uint32_t)rt_clusters);
    size_t off;
    if (p.version >= 3) {
        uint64_t incompat = (p.data_file ? QCOW2_INCOMPAT_DATA_FILE : 0) |
                            (p.zstd ? QCOW2_INCOMPAT_COMPRESSION : 0) |
                            (p.extl2 ? QCOW2_INCOMPAT_EXTL2 : 0);
        store_be64(buf + 72, incompat);
        store_be64(buf + 80, p.lazy ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0);
        store_be64(buf + 88, p.data_raw ? QCOW2_AUTOCLEAR_DATA_RAW : 0);
        store_be32(buf + 96, p.refcount_order);
        store_be32(buf + 100, 112);
        buf[104] = p.zstd ? QCOW2_COMPRESS_ZSTD : QCOW2_COMPRESS_ZLIB;
        off = 112;
    } else {
        off = 72;
    }
    size_t name_len = p.backing ? strlen(p.backing) : 0;
    size_t need = off + 8 + (p.backing_fmt ? 8 + round_up_u64(strlen(p.backing_fmt), 8) : 0) +
                  (p.data_file ? 8 + round_up_u64(strlen(p.data_file), 8) : 0) +
                  (qcow2_writes_feature_table(p.version, p.cluster_bits) ? 8 + 384 : 0) + name_len;
    if (need > cs) {
        free(buf);
        return dimg_error(EINVAL, "Header extensions and backing file name do not fit in one cluster");
    }
    if (p.backing_fmt)
        off = qcow2_put_ext(buf, off, QCOW2_EXT_BACKING_FMT, p.backing_fmt, strlen(p.backing_fmt));
    if (p.data_file)
        off = qcow2_put_ext(buf, off, QCOW2_EXT_DATA_FILE, p.data_file, strlen(p.data_file));
    if (qcow2_writes_feature_table(p.version, p.cluster_bits))
        off = qcow2_put_feature_table(buf, off);
    off += 8; /* end-of-extensions marker: type 0, length 0 */
    if (p.backing) {
        store_be64(buf + 8, off);
        store_be32(buf + 16, (uint32_t)name_len);
        memcpy(buf + off, p.backing, name_len);
    }
    /* The header goes last, so an interrupted create never looks like a qcow2 image. */
    uint8_t *header = buf;
    buf = calloc(1, (size_t)cs);
    if (!buf) {
        free(header);
        return dimg_error(ENOMEM, "out of memory");
    }
    r = io_truncate(file, cs, DIMG_PREALLOC_OFF);

    /* Refcount table entries and blocks counting the metadata clusters. */
    for (uint64_t i = 0; r == 0 && i < rt_clusters; i++) {
        memset(buf, 0, (size_t)cs);
        for (uint64_t e = 0; e < cs / 8; e++) {
            uint64_t bi = i * (cs / 8) + e;
            if (bi < rb_count)
                store_be64(buf + e * 8, bi == 0 ? rb_off : extra_rb_off + (bi - 1) * cs);
        }
        r = io_pwrite(file, buf, (size_t)cs, rt_off + i * cs);
    }
    for (uint64_t b = 0; r == 0 && b < rb_count; b++) {
        memset(buf, 0, (size_t)cs);
        for (uint64_t e = 0; e < rb_entries; e++) {
            uint64_t c = b * rb_entries + e;
            if (c >= total)
                break;
            unsigned bits = 1u << p.refcount_order;
            if (bits >= 8) {
                /* value 1, big-endian, in the entry's last byte */
                buf[(e + 1) * (bits / 8) - 1] = 1;
            } else {
                uint64_t bit = e * bits;
                buf[bit / 8] |= (uint8_t)(1u << (bit % 8));
            }
        }
        r = io_pwrite(file, buf, (size_t)cs, b == 0 ? rb_off : extra_rb_off + (b - 1) * cs);
    }
    free(buf);
    /* The L1 table is all zeros; the file ends right after it (or after the last block). */
    if (r == 0 && rb_count == 1)
        r = io_truncate(file, l1_off + l1_size * 8, DIMG_PREALLOC_OFF);
    if (r == 0)
        r = io_flush(file);
    if (r == 0)
        r = io_pwrite(file, header, (size_t)cs, 0);
    free(header);
    if (r == 0 && p.data_file)
        r = create_data_file(args->filename, p.data_file, vsize);
    if (r == 0 && (p.prealloc != DIMG_PREALLOC_OFF || p.data_raw))
        r = preallocate(args->filename, p.prealloc, args->flags);
    return r;
}

/*
 * Metadata of a fully allocated image of `size` bytes: header, L2 tables,
 * L1 table (whole clusters), and the refcount blocks and table that count
 * all of it, sized until they count themselves.  These are the sizes
 * qemu-img measure reports.
 */
static uint64_t
full_size(uint64_t size, const struct qcow2_params *p)
{
    uint64_t cs = 1ull << p->cluster_bits;
    uint64_t aligned = round_up_u64(size, cs);
    uint64_t per_l2 = cs / (p->extl2 ? 16 : 8);
    uint64_t nl2e = round_up_u64(aligned / cs, per_l2);
    uint64_t meta = cs + nl2e * (p->extl2 ? 16 : 8);
    uint64_t nl1e = round_up_u64(nl2e / per_l2, cs / 8);
    meta += nl1e * 8;
    uint64_t used = (aligned + meta) / cs;
    uint64_t rb_entries = (cs * 8) >> p->refcount_order, blocks = 0, table = 0;
    for (;;) {
        uint64_t total = used + blocks + table;
        uint64_t nb = (total + rb_entries - 1) / rb_entries;
        uint64_t nt = (nb * 8 + cs - 1) / cs;
        if (nb == blocks && nt == table)
            break;
        blocks = nb;
        table = nt;
    }
    return aligned + meta + (blocks + table) * cs;
}

int
qcow2_measure(const struct dimg_opts *opts, uint64_t size, struct dimg_image *src,
              struct dimg_measure *out)
{
    struct dimg_create_args a = { .size = size, .opts = opts };
    struct qcow2_params p;
    int r = parse_params(&a, &p);
    if (r < 0)
        return r;
    uint64_t cs = 1ull << p.cluster_bits;
    uint64_t full = full_size(size, &p);
    uint64_t data = 0; /* --size alone: metadata only, no guest data */
    if (src) {
        /* Clusters holding data anywhere in the source's chain (zeros and holes excluded). */
        uint64_t off = 0, vsize = dimg_get_size(src), next_uncounted = 0;
        data = 0;
        while (off < vsize) {
            struct dimg_extent e;
            if ((r = dimg_block_status(src, off, vsize - off, &e)) < 0)
                return r;
            if ((e.flags & DIMG_EXTENT_DATA) && !(e.flags & DIMG_EXTENT_ZERO)) {
                uint64_t start = max_u64(round_down_u64(off, cs), next_uncounted);
                uint64_t end = round_up_u64(off + e.length, cs);
                if (end > start)
                    data += end - start;
                next_uncounted = max_u64(next_uncounted, end);
            }
            off += e.length;
        }
        /* A v2 target cannot hold bitmaps: qemu-img then leaves the line out. */
        out->has_bitmaps = p.version >= 3 && strcmp(dimg_get_format(src), "qcow2") == 0;
        out->bitmaps = out->has_bitmaps ? qcow2_bitmaps_measure(src, (uint32_t)cs) : 0;
    }
    out->fully_allocated = full;
    out->required = full - round_up_u64(size, cs) + data;
    return 0;
}
