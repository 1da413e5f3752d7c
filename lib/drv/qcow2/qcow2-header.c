/*
 * qcow2: rewriting the first cluster (header, header extensions, backing file
 * name) after an operation changed what it describes — a new backing file,
 * amended options, bitmaps.  Spec: shared/specs/qemu-qcow2.txt, "Header" and
 * "Header extensions".
 *
 * The extension order is the one qemu-img 7.2 writes (observed): backing
 * format, external data file, full disk encryption header, feature name
 * table, then the extensions dimg keeps verbatim (bitmaps directory, unknown
 * types), the end marker, and the backing file name right after it.  Writing
 * the same order means an image rebased by dimg is byte-identical to one
 * rebased by qemu-img.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2.h"
#include "util/checked.h"
#include "util/endian.h"

size_t
qcow2_put_ext(uint8_t *h, size_t off, uint32_t type, const void *data, size_t len)
{
    store_be32(h + off, type);
    store_be32(h + off + 4, (uint32_t)len);
    memcpy(h + off + 8, data, len);
    return off + 8 + (size_t)round_up_u64(len, 8);
}

/* What each known feature bit means, as qemu writes it. */
#define FEATURE_TABLE_BYTES (8 * 48)

size_t
qcow2_put_feature_table(uint8_t *h, size_t off)
{
    static const struct {
        uint8_t type, bit;
        const char *name;
    } names[] = {
        { 0, 0, "dirty bit" },          { 0, 1, "corrupt bit" },
        { 0, 2, "external data file" }, { 0, 3, "compression type" },
        { 0, 4, "extended L2 entries" }, { 1, 0, "lazy refcounts" },
        { 2, 0, "bitmaps" },            { 2, 1, "raw external data" },
    };
    uint8_t table[FEATURE_TABLE_BYTES] = { 0 };
    for (size_t i = 0; i < 8; i++) {
        table[i * 48] = names[i].type;
        table[i * 48 + 1] = names[i].bit;
        memcpy(table + i * 48 + 2, names[i].name, strlen(names[i].name));
    }
    return qcow2_put_ext(h, off, QCOW2_EXT_FEATURES, table, sizeof table);
}

bool
qcow2_writes_feature_table(uint32_t version, uint32_t cluster_bits)
{
    /* qemu-img writes the feature name table only into clusters of 8 KiB and more. */
    return version >= 3 && cluster_bits >= 13;
}

/* ---- extensions kept verbatim ------------------------------------------ */

const struct qcow2_ext *
qcow2_ext_find(const struct qcow2_state *s, uint32_t type)
{
    for (size_t i = 0; i < s->n_exts; i++)
        if (s->exts[i].type == type)
            return &s->exts[i];
    return NULL;
}

int
qcow2_ext_set(struct qcow2_state *s, uint32_t type, const void *data, uint32_t len)
{
    uint8_t *copy = NULL;
    if (data) {
        copy = malloc(len ? len : 1);
        if (!copy)
            return dimg_error(ENOMEM, "out of memory");
        memcpy(copy, data, len);
    }
    for (size_t i = 0; i < s->n_exts; i++) {
        if (s->exts[i].type != type)
            continue;
        free(s->exts[i].data);
        if (!data) {
            memmove(&s->exts[i], &s->exts[i + 1], (s->n_exts - i - 1) * sizeof *s->exts);
            s->n_exts--;
            return 0;
        }
        s->exts[i].data = copy;
        s->exts[i].len = len;
        return 0;
    }
    if (!data)
        return 0;
    struct qcow2_ext *n = realloc(s->exts, (s->n_exts + 1) * sizeof *n);
    if (!n) {
        free(copy);
        return dimg_error(ENOMEM, "out of memory");
    }
    s->exts = n;
    s->exts[s->n_exts++] = (struct qcow2_ext){ .type = type, .len = len, .data = copy };
    return 0;
}

void
qcow2_exts_free(struct qcow2_state *s)
{
    for (size_t i = 0; i < s->n_exts; i++)
        free(s->exts[i].data);
    free(s->exts);
    s->exts = NULL;
    s->n_exts = 0;
}

/* ---- the whole first cluster ------------------------------------------- */

static size_t
ext_bytes(size_t len)
{
    return 8 + (size_t)round_up_u64(len, 8);
}

/*
 * Lay out the first cluster for the image's current state, with backing file
 * name and format given explicitly (so a caller can try a change before
 * committing it to img).  Returns the bytes used, or 0 when it does not fit.
 */
static size_t
build_header(const struct dimg_image *img, const struct qcow2_state *s, const char *backing,
             const char *backing_fmt, uint8_t *h)
{
    size_t cs = s->cluster_size;
    size_t fixed = s->version >= 3 ? 112 : 72;
    size_t need = fixed + 8;
    if (backing_fmt)
        need += ext_bytes(strlen(backing_fmt));
    if (s->data_file_name)
        need += ext_bytes(strlen(s->data_file_name));
    if (s->crypto_offset)
        need += ext_bytes(16);
    if (qcow2_writes_feature_table(s->version, s->cluster_bits))
        need += ext_bytes(FEATURE_TABLE_BYTES);
    for (size_t i = 0; i < s->n_exts; i++)
        need += ext_bytes(s->exts[i].len);
    size_t name_len = backing ? strlen(backing) : 0;
    if (name_len > QCOW2_MAX_BACKING_NAME || need + name_len > cs)
        return 0;

    memset(h, 0, cs);
    store_be32(h, QCOW2_MAGIC);
    store_be32(h + 4, s->version);
    store_be32(h + 20, s->cluster_bits);
    store_be64(h + 24, img->size);
    store_be32(h + 32, s->crypt_method);
    store_be32(h + 36, s->l1_size);
    store_be64(h + 40, s->l1_offset);
    store_be64(h + 48, s->refcount_table_offset);
    store_be32(h + 56, s->refcount_table_clusters);
    store_be32(h + 60, s->nb_snapshots);
    store_be64(h + 64, s->snapshots_offset);
    size_t off = fixed;
    if (s->version >= 3) {
        store_be64(h + 72, s->incompat);
        store_be64(h + 80, s->compat);
        store_be64(h + 88, s->autoclear);
        store_be32(h + 96, s->refcount_order);
        store_be32(h + 100, 112);
        h[104] = (uint8_t)s->compression;
    }
    if (backing_fmt)
        off = qcow2_put_ext(h, off, QCOW2_EXT_BACKING_FMT, backing_fmt, strlen(backing_fmt));
    if (s->data_file_name)
        off = qcow2_put_ext(h, off, QCOW2_EXT_DATA_FILE, s->data_file_name,
                            strlen(s->data_file_name));
    if (s->crypto_offset) {
        uint8_t c[16];
        store_be64(c, s->crypto_offset);
        store_be64(c + 8, s->crypto_length);
        off = qcow2_put_ext(h, off, QCOW2_EXT_CRYPTO, c, sizeof c);
    }
    if (qcow2_writes_feature_table(s->version, s->cluster_bits))
        off = qcow2_put_feature_table(h, off);
    for (size_t i = 0; i < s->n_exts; i++)
        off = qcow2_put_ext(h, off, s->exts[i].type, s->exts[i].data, s->exts[i].len);
    off += 8; /* end of extensions */
    if (backing) {
        store_be64(h + 8, off);
        store_be32(h + 16, (uint32_t)name_len);
        memcpy(h + off, backing, name_len);
        off += name_len;
    }
    return off;
}

static int
write_header(struct dimg_image *img, const char *backing, const char *backing_fmt)
{
    struct qcow2_state *s = dimg_image_state(img);
    uint8_t *h = malloc(s->cluster_size);
    if (!h)
        return dimg_error(ENOMEM, "out of memory");
    int r;
    if (build_header(img, s, backing, backing_fmt, h) == 0) {
        r = dimg_error(ENOSPC, "%s: header extensions and backing file name do not fit in "
                               "one cluster", img->filename);
    } else {
        /* Everything the header points at must be on disk before it does. */
        r = qcow2_flush(img);
        if (r == 0)
            r = io_pwrite(img->file, h, s->cluster_size, 0);
        if (r == 0)
            r = qcow2_barrier(img);
    }
    free(h);
    return r;
}

int
qcow2_header_write(struct dimg_image *img)
{
    return write_header(img, img->backing_filename, img->backing_format);
}

static int
replace_string(char **slot, const char *val)
{
    char *copy = NULL;
    if (val && !(copy = strdup(val)))
        return dimg_error(ENOMEM, "out of memory");
    free(*slot);
    *slot = copy;
    return 0;
}

/* rebase / commit: point the image at another backing file (NULL: none). */
int
qcow2_change_backing(struct dimg_image *img, const char *backing, const char *backing_fmt)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (backing && !backing[0])
        backing = NULL;
    if (!backing)
        backing_fmt = NULL;
    pthread_mutex_lock(&s->lock);
    int r = write_header(img, backing, backing_fmt);
    if (r == 0)
        r = replace_string(&img->backing_filename, backing);
    if (r == 0)
        r = replace_string(&img->backing_format, backing_fmt);
    pthread_mutex_unlock(&s->lock);
    return r;
}
