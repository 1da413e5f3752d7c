/*
 * Internal snapshots: parsing the snapshot table (spec: "Snapshots").  Every
 * length in it is untrusted: the table is read in bounded pieces and each
 * entry is checked against what is left of it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "drv/qcow2/qcow2.h"
#include "util/checked.h"
#include "util/endian.h"

/* Limits that bound the allocation a hostile table can cause (qemu uses the same
 * order of magnitude: 64 MiB of table, 1 KiB of extra data per entry). */
#define SNAPSHOT_TABLE_MAX (64u << 20)
#define SNAPSHOT_EXTRA_MAX 1024u
#define SNAPSHOT_FIXED 40u

void
qcow2_snapshots_free(struct qcow2_state *s)
{
    for (uint32_t i = 0; i < s->nsnap; i++) {
        free(s->snaps[i].id);
        free(s->snaps[i].name);
        free(s->snaps[i].extra);
    }
    free(s->snaps);
    s->snaps = NULL;
    s->nsnap = 0;
}

int
qcow2_snapshots_load(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
    s->snapshots_size = 0;
    if (s->nb_snapshots == 0)
        return 0;
    s->snaps = calloc(s->nb_snapshots, sizeof *s->snaps);
    if (!s->snaps)
        return dimg_error(ENOMEM, "out of memory");
    uint64_t off = s->snapshots_offset, used = 0;
    uint8_t fixed[SNAPSHOT_FIXED];
    int r = 0;
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        struct qcow2_snapshot *sn = &s->snaps[i];
        if ((r = io_pread(img->file, fixed, sizeof fixed, off)) < 0)
            break;
        sn->l1_offset = load_be64(fixed);
        sn->l1_size = load_be32(fixed + 8);
        uint16_t id_len = load_be16(fixed + 12), name_len = load_be16(fixed + 14);
        sn->date_sec = load_be32(fixed + 16);
        sn->date_nsec = load_be32(fixed + 20);
        sn->vm_clock_nsec = load_be64(fixed + 24);
        sn->vm_state_size = load_be32(fixed + 32);
        uint32_t extra_len = load_be32(fixed + 36);
        if (extra_len > SNAPSHOT_EXTRA_MAX) {
            r = dimg_error(EFBIG, "Too much extra metadata in snapshot table entry %" PRIu32, i);
            break;
        }
        uint64_t bytes = SNAPSHOT_FIXED + (uint64_t)extra_len + id_len + name_len;
        uint64_t entry = round_up_u64(bytes, 8);
        /* The table ends after the last entry's name, without its padding. */
        s->snapshots_size = used + bytes;
        used += entry;
        if (used > SNAPSHOT_TABLE_MAX) {
            r = dimg_error(EFBIG, "Snapshot table too large");
            break;
        }
        uint8_t *rest = malloc((size_t)extra_len + id_len + name_len + 1);
        if (!rest) {
            r = dimg_error(ENOMEM, "out of memory");
            break;
        }
        r = io_pread(img->file, rest, (size_t)extra_len + id_len + name_len, off + SNAPSHOT_FIXED);
        if (r == 0) {
            /* Without the fields, the snapshot has the image's size and no icount. */
            sn->icount = -1;
            sn->disk_size = img->size;
            if (extra_len >= 8)
                sn->vm_state_size = load_be64(rest);
            if (extra_len >= 16)
                sn->disk_size = load_be64(rest + 8);
            if (extra_len >= 24)
                sn->icount = (int64_t)load_be64(rest + 16);
            sn->id = malloc((size_t)id_len + 1);
            sn->name = malloc((size_t)name_len + 1);
            sn->extra = malloc(extra_len ? extra_len : 1);
            sn->extra_len = extra_len;
            if (!sn->id || !sn->name || !sn->extra) {
                r = dimg_error(ENOMEM, "out of memory");
            } else {
                memcpy(sn->extra, rest, extra_len);
                memcpy(sn->id, rest + extra_len, id_len);
                sn->id[id_len] = '\0';
                memcpy(sn->name, rest + extra_len + id_len, name_len);
                sn->name[name_len] = '\0';
            }
        }
        free(rest);
        s->nsnap = i + 1;
        if (r < 0)
            break;
        off += entry;
    }
    if (r < 0)
        qcow2_snapshots_free(s);
    return r;
}

int
qcow2_snapshot_list(struct dimg_image *img, struct dimg_snapshot **out, size_t *count)
{
    struct qcow2_state *s = dimg_image_state(img);
    *out = NULL;
    *count = 0;
    if (s->nsnap == 0)
        return 0;
    struct dimg_snapshot *v = calloc(s->nsnap, sizeof *v);
    if (!v)
        return dimg_error(ENOMEM, "out of memory");
    for (uint32_t i = 0; i < s->nsnap; i++) {
        const struct qcow2_snapshot *sn = &s->snaps[i];
        v[i].id = strdup(sn->id);
        v[i].name = strdup(sn->name);
        v[i].vm_state_size = sn->vm_state_size;
        v[i].date_sec = sn->date_sec;
        v[i].date_nsec = sn->date_nsec;
        v[i].vm_clock_nsec = sn->vm_clock_nsec;
        v[i].icount = sn->icount;
        if (!v[i].id || !v[i].name) {
            dimg_snapshot_list_free(v, i + 1);
            return dimg_error(ENOMEM, "out of memory");
        }
    }
    *out = v;
    *count = s->nsnap;
    return 0;
}

int
qcow2_snapshot_find(const struct qcow2_state *s, const char *id, const char *name)
{
    if (!id && !name)
        return -1;
    for (uint32_t i = 0; i < s->nsnap; i++) {
        if ((!id || !strcmp(s->snaps[i].id, id)) && (!name || !strcmp(s->snaps[i].name, name)))
            return (int)i;
    }
    return -1;
}

int
qcow2_snapshot_l1_valid(struct dimg_image *img, const struct qcow2_snapshot *sn)
{
    struct qcow2_state *s = dimg_image_state(img);
    if ((uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES)
        return dimg_error(EFBIG, "Snapshot L1 table too large");
    uint64_t end;
    if ((sn->l1_offset & (s->cluster_size - 1)) ||
        ckd_add_u64(&end, sn->l1_offset, (uint64_t)sn->l1_size * 8) || end > INT64_MAX ||
        (sn->l1_size && sn->l1_offset == 0))
        return dimg_error(EINVAL, "Snapshot L1 table offset invalid");
    return 0;
}

int
qcow2_snapshot_read_l1(struct dimg_image *img, const struct qcow2_snapshot *sn, uint64_t **out)
{
    int r = qcow2_snapshot_l1_valid(img, sn);
    if (r < 0)
        return r;
    uint64_t *l1 = malloc(sn->l1_size ? (size_t)sn->l1_size * 8 : 1);
    if (!l1)
        return dimg_error(ENOMEM, "out of memory");
    if (sn->l1_size && (r = io_pread(img->file, l1, (size_t)sn->l1_size * 8, sn->l1_offset)) < 0) {
        free(l1);
        return r;
    }
    for (uint32_t i = 0; i < sn->l1_size; i++)
        l1[i] = load_be64(&l1[i]);
    *out = l1;
    return 0;
}

/*
 * Show a snapshot instead of the active layer (read-only images: convert -l).
 * As qemu, the virtual size stays the image's: only the mapping changes.
 */
int
qcow2_snapshot_load_tmp(struct dimg_image *img, const char *id, const char *name)
{
    struct qcow2_state *s = dimg_image_state(img);
    int i = qcow2_snapshot_find(s, id, name);
    if (i < 0)
        return dimg_error(ENOENT, "Can't find snapshot");
    uint64_t *l1;
    int r = qcow2_snapshot_read_l1(img, &s->snaps[i], &l1);
    if (r < 0)
        return r;
    pthread_mutex_lock(&s->lock);
    free(s->l1);
    s->l1 = l1;
    s->l1_size = s->snaps[i].l1_size;
    s->l1_offset = s->snaps[i].l1_offset;
    pthread_mutex_unlock(&s->lock);
    return 0;
}
