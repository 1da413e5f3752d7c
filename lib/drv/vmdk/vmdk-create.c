/*
 * vmdk create: the descriptor, hosted sparse extents (grain directories and
 * empty grain tables laid out as qemu-img lays them) and flat extents.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/vmdk/vmdk.h"
#include "util/checked.h"
#include "util/endian.h"

const struct dimg_optdesc vmdk_create_opts[] = {
    { "adapter_type", DIMG_OPT_STRING, "Virtual adapter type, can be one of ide (default), "
      "lsilogic, buslogic or legacyESX", NULL },
    { "backing_file", DIMG_OPT_STRING, "File name of a base image", NULL },
    { "backing_fmt", DIMG_OPT_STRING, "Must be 'vmdk' if present", NULL },
    { "compat6", DIMG_OPT_BOOL, "VMDK version 6 image", NULL },
    { "hwversion", DIMG_OPT_STRING, "VMDK hardware version", NULL },
    { "size", DIMG_OPT_SIZE, "Virtual disk size", NULL },
    { "subformat", DIMG_OPT_STRING, "VMDK flat extent format, can be one of {monolithicSparse "
      "(default) | monolithicFlat | twoGbMaxExtentSparse | twoGbMaxExtentFlat | "
      "streamOptimized} ", NULL },
    { "toolsversion", DIMG_OPT_STRING, "VMware guest tools version", NULL },
    { "zeroed_grain", DIMG_OPT_BOOL, "Enable efficient zero writes using the zeroed-grain GTE "
      "feature", NULL },
    { NULL, 0, NULL, NULL },
};

#define GRAIN_SECTORS 128u
#define NUM_GTES 512u
#define DESC_SECTORS 20u
#define SPLIT_BYTES (2ull << 30) /* twoGbMaxExtent* */

struct vmdk_params {
    const char *subformat, *adapter, *hwversion, *tools;
    bool compat6, zeroed, sparse, split, stream;
};

static int
get_params(const struct dimg_create_args *args, struct vmdk_params *p)
{
    memset(p, 0, sizeof *p);
    const struct dimg_opts *o = args->opts;
    p->subformat = opts_get(o, "subformat");
    p->adapter = opts_get(o, "adapter_type");
    p->hwversion = opts_get(o, "hwversion");
    p->tools = opts_get(o, "toolsversion");
    if (!p->subformat)
        p->subformat = "monolithicSparse";
    if (!p->adapter)
        p->adapter = "ide";
    if (!p->tools)
        p->tools = "2147483647";
    if (opts_get_bool(o, "compat6", false, &p->compat6) < 0 ||
        opts_get_bool(o, "zeroed_grain", false, &p->zeroed) < 0)
        return -EINVAL;
    static const char *const subformats[] = { "monolithicSparse", "monolithicFlat",
                                              "twoGbMaxExtentSparse", "twoGbMaxExtentFlat",
                                              "streamOptimized" };
    size_t i;
    for (i = 0; i < 5 && strcmp(p->subformat, subformats[i]) != 0; i++)
        ;
    if (i == 5)
        return dimg_error(EINVAL, "invalid parameter value: %s", p->subformat);
    p->sparse = i == 0 || i == 2 || i == 4;
    p->split = i == 2 || i == 3;
    p->stream = i == 4;
    if (strcmp(p->adapter, "ide") && strcmp(p->adapter, "lsilogic") &&
        strcmp(p->adapter, "buslogic") && strcmp(p->adapter, "legacyESX"))
        return dimg_error(EINVAL, "invalid parameter value: %s", p->adapter);
    if (p->compat6 && p->hwversion && strcmp(p->hwversion, "undefined") != 0)
        return dimg_error(EINVAL, "compat6 cannot be enabled with hwversion set");
    if (!p->sparse && p->zeroed)
        return dimg_error(EINVAL, "Flat image can't enable zeroed grain");
    return 0;
}

char *
vmdk_describe_create(const struct dimg_create_args *args)
{
    const struct dimg_opts *o = args->opts;
    struct strbuf sb = { 0 };
    sb_append(&sb, "size=%" PRIu64, args->size);
    static const char *const order[] = { "backing_file", "backing_fmt", "adapter_type",
                                         "compat6", "hwversion", "subformat", "toolsversion",
                                         "zeroed_grain", NULL };
    for (size_t i = 0; order[i]; i++) {
        const char *v = opts_get(o, order[i]);
        if (!v && strcmp(order[i], "compat6") == 0)
            v = "off";
        if (!v && strcmp(order[i], "hwversion") == 0)
            v = "undefined";
        if (v)
            sb_append(&sb, " %s=%s", order[i], v);
    }
    return sb.s;
}

/* The parent's CID, or -errno with qemu's message. */
static int
backing_cid(const struct dimg_create_args *args, uint32_t *cid)
{
    const char *bf = opts_get(args->opts, "backing_file");
    const char *bfmt = opts_get(args->opts, "backing_fmt");
    *cid = UINT32_MAX;
    if (!bf)
        return 0;
    if (bfmt && strcmp(bfmt, "vmdk") != 0)
        return dimg_error(EINVAL, "backing_file must be a vmdk image");
    char *path = backing_resolve(args->filename, bf);
    if (!path)
        return dimg_error(ENOMEM, "out of memory");
    struct dimg_image *b = image_open(path, NULL, DIMG_OPEN_INFO_ONLY | DIMG_OPEN_NO_BACKING, 0);
    free(path);
    if (!b)
        return -dimg_get_errno();
    int r = 0;
    if (b->drv != &dimg_drv_vmdk)
        r = dimg_error(EINVAL, "backing_file must be a vmdk image");
    else
        *cid = ((struct vmdk_state *)dimg_image_state(b))->desc.cid;
    dimg_close(b);
    return r;
}

int
vmdk_check_create(const struct dimg_create_args *args)
{
    struct vmdk_params p;
    int r = get_params(args, &p);
    if (r == 0) {
        uint32_t cid;
        r = backing_cid(args, &cid);
    }
    return r;
}

/* Write an empty hosted sparse extent of cap sectors; desc goes at sector 1 if given. */
static int
write_sparse(struct dimg_io *f, uint64_t cap, const struct vmdk_params *p, const char *desc)
{
    uint64_t gt_count = (cap + (uint64_t)GRAIN_SECTORS * NUM_GTES - 1) /
                        ((uint64_t)GRAIN_SECTORS * NUM_GTES);
    uint64_t gd_sectors = (gt_count * 4 + VMDK_SECTOR - 1) / VMDK_SECTOR;
    uint64_t gt_sectors = NUM_GTES * 4 / VMDK_SECTOR;
    uint64_t rgd = 1 + DESC_SECTORS;
    uint64_t gd = rgd + gd_sectors + gt_count * gt_sectors;
    uint64_t overhead = round_up_u64(gd + gd_sectors + gt_count * gt_sectors, GRAIN_SECTORS);
    if (overhead > UINT32_MAX)
        return dimg_error(EFBIG, "Image size too large for VMDK");
    uint8_t h[VMDK_SECTOR] = { 0 };
    store_le32(h, VMDK4_MAGIC);
    store_le32(h + 4, p->stream ? 3 : p->zeroed ? 2 : 1);
    store_le32(h + 8, VMDK4_FLAG_NL_DETECT | VMDK4_FLAG_RGD |
                          (p->zeroed ? VMDK4_FLAG_ZERO_GRAIN : 0) |
                          (p->stream ? VMDK4_FLAG_COMPRESS | VMDK4_FLAG_MARKER : 0));
    store_le64(h + 12, cap);
    store_le64(h + 20, GRAIN_SECTORS);
    store_le64(h + 28, 1);
    store_le64(h + 36, DESC_SECTORS);
    store_le32(h + 44, NUM_GTES);
    store_le64(h + 48, rgd);
    store_le64(h + 56, gd);
    store_le64(h + 64, overhead);
    memcpy(h + 73, "\n \r\n", 4);
    store_le16(h + 77, p->stream ? 1 : 0);
    int r = io_truncate(f, overhead * VMDK_SECTOR, DIMG_PREALLOC_OFF);
    if (r == 0)
        r = io_pwrite(f, h, sizeof h, 0);
    if (r == 0 && desc)
        r = io_pwrite(f, desc, strlen(desc), VMDK_SECTOR);
    size_t dir_bytes = (size_t)gt_count * 4;
    uint8_t *dir = malloc(dir_bytes ? dir_bytes : 1);
    if (!dir)
        return dimg_error(ENOMEM, "out of memory");
    for (int pass = 0; pass < 2 && r == 0; pass++) {
        uint64_t base = pass == 0 ? rgd : gd;
        for (uint64_t i = 0; i < gt_count; i++)
            store_le32(dir + i * 4, (uint32_t)(base + gd_sectors + i * gt_sectors));
        r = io_pwrite(f, dir, dir_bytes, base * VMDK_SECTOR);
    }
    free(dir);
    return r;
}

/* "dir/name.vmdk" -> "name-<tag>NNN.vmdk" (NNN omitted when n is 0). */
static char *
extent_name(const char *filename, const char *tag, unsigned n)
{
    const char *base = strrchr(filename, '/');
    base = base ? base + 1 : filename;
    const char *dot = strrchr(base, '.');
    int stem = dot ? (int)(dot - base) : (int)strlen(base);
    const char *ext = dot ? dot : "";
    if (n)
        return str_printf("%.*s-%s%03u%s", stem, base, tag, n, ext);
    return str_printf("%.*s-%s%s", stem, base, tag, ext);
}

static int
create_extent_file(const char *filename, const char *name, uint64_t cap,
                   const struct vmdk_params *p)
{
    char *path = backing_resolve(filename, name);
    if (!path)
        return dimg_error(ENOMEM, "out of memory");
    struct io_file_params fp = {
        .writable = true, .create = true, .lock = true,
        .perm = IO_PERM_WRITE | IO_PERM_RESIZE, .shared = IO_PERM_ALL & ~IO_PERM_RESIZE,
    };
    struct dimg_io *f;
    int r = io_file_open(path, &fp, &f);
    free(path);
    if (r < 0)
        return r;
    r = io_truncate(f, 0, DIMG_PREALLOC_OFF);
    if (r == 0)
        r = p->sparse ? write_sparse(f, cap, p, NULL)
                      : io_truncate(f, cap * VMDK_SECTOR, DIMG_PREALLOC_OFF);
    if (r == 0)
        r = io_flush(f);
    io_close(f);
    return r;
}

int
vmdk_create(struct dimg_io *file, const struct dimg_create_args *args)
{
    struct vmdk_params p;
    uint32_t parent_cid;
    int r = get_params(args, &p);
    if (r == 0)
        r = backing_cid(args, &parent_cid);
    if (r < 0)
        return r;
    uint64_t cap = (args->size + VMDK_SECTOR - 1) / VMDK_SECTOR;
    const char *bf = opts_get(args->opts, "backing_file");
    const char *base = strrchr(args->filename, '/');
    base = base ? base + 1 : args->filename;
    struct strbuf ext = { 0 };
    bool embedded = p.sparse && !p.split;
    if (embedded) {
        sb_append(&ext, "RW %" PRIu64 " SPARSE \"%s\"\n", cap, base);
    } else {
        uint64_t split = p.split ? SPLIT_BYTES / VMDK_SECTOR : (cap ? cap : 1);
        unsigned n = 0;
        for (uint64_t done = 0; r == 0 && (done < cap || (cap == 0 && n == 0)); done += split) {
            uint64_t c = min_u64(split, cap - done);
            char *name = extent_name(args->filename, p.sparse ? "s" : p.split ? "f" : "flat",
                                     p.split ? ++n : (n++, 0));
            if (!name)
                return dimg_error(ENOMEM, "out of memory");
            if (p.sparse)
                sb_append(&ext, "RW %" PRIu64 " SPARSE \"%s\"\n", c, name);
            else
                sb_append(&ext, "RW %" PRIu64 " FLAT \"%s\" 0\n", c, name);
            r = create_extent_file(args->filename, name, c, &p);
            free(name);
        }
    }
    if (r < 0) {
        sb_free(&ext);
        return r;
    }
    static const char *const types[] = { "monolithicFlat", "monolithicSparse",
                                         "twoGbMaxExtentFlat", "twoGbMaxExtentSparse" };
    const char *type = p.stream ? "streamOptimized" : types[p.split * 2 + p.sparse];
    unsigned heads = strcmp(p.adapter, "ide") == 0 ? 16 : 255;
    const char *hw = p.compat6 ? "6" : (p.hwversion && strcmp(p.hwversion, "undefined"))
                                           ? p.hwversion : "4";
    char *hint = bf ? str_printf("parentFileNameHint=\"%s\"", bf) : NULL;
    char *desc = str_printf(
        "# Disk DescriptorFile\nversion=1\nCID=%" PRIx32 "\nparentCID=%" PRIx32 "\n"
        "createType=\"%s\"\n%s\n# Extent description\n%s\n# The Disk Data Base\n#DDB\n\n"
        "ddb.virtualHWVersion = \"%s\"\nddb.geometry.cylinders = \"%" PRIu64 "\"\n"
        "ddb.geometry.heads = \"%u\"\nddb.geometry.sectors = \"63\"\n"
        "ddb.adapterType = \"%s\"\nddb.toolsVersion = \"%s\"\n",
        vmdk_new_cid(), parent_cid, type, hint ? hint : "", ext.s ? ext.s : "", hw,
        cap / (heads * 63u), heads, p.adapter, p.tools);
    free(hint);
    sb_free(&ext);
    if (!desc)
        return dimg_error(ENOMEM, "out of memory");
    if (embedded && strlen(desc) > DESC_SECTORS * VMDK_SECTOR)
        r = dimg_error(EINVAL, "VMDK descriptor too long");
    else if (embedded)
        r = write_sparse(file, cap, &p, desc);
    else
        r = io_pwrite(file, desc, strlen(desc), 0);
    free(desc);
    return r;
}
