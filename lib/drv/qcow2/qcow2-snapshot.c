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
    }
    free(s->snaps);
    s->snaps = NULL;
    s->nsnap = 0;
}

int
qcow2_snapshots_load(struct dimg_image *img)
{
    struct qcow2_state *s = dimg_image_state(img);
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
        uint64_t entry = round_up_u64(SNAPSHOT_FIXED + (uint64_t)extra_len + id_len + name_len, 8);
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
            sn->icount = -1;
            if (extra_len >= 8)
                sn->vm_state_size = load_be64(rest);
            if (extra_len >= 16)
                sn->disk_size = load_be64(rest + 8);
            if (extra_len >= 24)
                sn->icount = (int64_t)load_be64(rest + 16);
            sn->id = malloc((size_t)id_len + 1);
            sn->name = malloc((size_t)name_len + 1);
            if (!sn->id || !sn->name) {
                r = dimg_error(ENOMEM, "out of memory");
            } else {
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
