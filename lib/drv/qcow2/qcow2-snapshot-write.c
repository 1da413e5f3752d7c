/*
 * Internal snapshots: create, apply (goto) and delete, as qemu-img 7.2 does
 * them (spec: "Snapshots").  Each operation describes the new state as
 * refcount changes and new roots; qcow2-snapshot-txn.c makes it current with
 * one header write, so a killed process leaves the old or the new image.
 *
 * Refcounts follow qemu's rule: a data cluster counts one reference per L1
 * entry (active or snapshot) that reaches it through an L2 table.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drv/qcow2/qcow2-snapshot-txn.h"
#include "util/checked.h"
#include "util/endian.h"

#define SNAPSHOT_FIXED 40u
#define SNAPSHOT_KNOWN_EXTRA 24u   /* vm state size, disk size, icount */
#define SNAPSHOT_TABLE_MAX (64u << 20)
/* qemu-img keeps names in a 256-byte buffer and ids in a 128-byte one. */
#define SNAPSHOT_NAME_MAX 255u

static uint32_t
entry_extra_len(const struct qcow2_snapshot *sn)
{
    return sn->extra_len > SNAPSHOT_KNOWN_EXTRA ? sn->extra_len : SNAPSHOT_KNOWN_EXTRA;
}

/* Bytes of one serialized entry, without the padding after it. */
static uint64_t
entry_bytes(const struct qcow2_snapshot *sn)
{
    return SNAPSHOT_FIXED + entry_extra_len(sn) + strlen(sn->id) + strlen(sn->name);
}

static void
serialize_entry(const struct qcow2_snapshot *sn, uint8_t *p)
{
    uint32_t extra = entry_extra_len(sn);
    size_t id_len = strlen(sn->id), name_len = strlen(sn->name);
    store_be64(p, sn->l1_offset);
    store_be32(p + 8, sn->l1_size);
    store_be16(p + 12, (uint16_t)id_len);
    store_be16(p + 14, (uint16_t)name_len);
    store_be32(p + 16, sn->date_sec);
    store_be32(p + 20, sn->date_nsec);
    store_be64(p + 24, sn->vm_clock_nsec);
    store_be32(p + 32, sn->vm_state_size > UINT32_MAX ? 0 : (uint32_t)sn->vm_state_size);
    store_be32(p + 36, extra);
    uint8_t *x = p + SNAPSHOT_FIXED;
    memset(x, 0, extra);
    if (sn->extra_len)
        memcpy(x, sn->extra, sn->extra_len); /* fields this version does not know survive */
    store_be64(x, sn->vm_state_size);
    store_be64(x + 8, sn->disk_size);
    store_be64(x + 16, (uint64_t)sn->icount);
    memcpy(x + extra, sn->id, id_len);
    memcpy(x + extra + id_len, sn->name, name_len);
}

/*
 * Write a snapshot table holding list[0..n) to new clusters and make it the
 * new state's; the old table's clusters are released.
 */
static int
write_table(struct qcow2_txn *t, const struct qcow2_snapshot *const *list, uint32_t n)
{
    struct qcow2_state *s = t->s;
    int r;
    if (s->nb_snapshots &&
        (r = qcow2_txn_ref_range(t, s->snapshots_offset, s->snapshots_size, -1)) < 0)
        return r;
    t->nb_snapshots = n;
    t->snapshots_offset = 0;
    if (n == 0)
        return 0;
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (strlen(list[i]->id) > UINT16_MAX || strlen(list[i]->name) > UINT16_MAX)
            return dimg_error(EINVAL, "%s: snapshot name too long", t->img->filename);
        bytes = round_up_u64(bytes, 8) + entry_bytes(list[i]);
    }
    if (bytes > SNAPSHOT_TABLE_MAX)
        return dimg_error(EFBIG, "%s: snapshot table too large", t->img->filename);
    uint8_t *buf = calloc(1, round_up_u64(bytes, 8));
    if (!buf)
        return dimg_error(ENOMEM, "out of memory");
    uint64_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        off = round_up_u64(off, 8);
        serialize_entry(list[i], buf + off);
        off += entry_bytes(list[i]);
    }
    uint64_t clusters = (bytes + s->cluster_size - 1) >> s->cluster_bits;
    r = qcow2_txn_alloc(t, clusters, &t->snapshots_offset);
    /* As qemu-img, the table ends after the last name: the file may end mid-cluster. */
    if (r == 0)
        r = io_pwrite(t->img->file, buf, (size_t)bytes, t->snapshots_offset);
    free(buf);
    return r;
}

/* The new active L1 points at the same L2 tables as the current one. */
static int
keep_active_tables(struct qcow2_txn *t)
{
    const struct qcow2_state *s = t->s;
    t->l1_size = s->l1_size;
    t->l1 = malloc(s->l1_size ? (size_t)s->l1_size * 8 : 1);
    if (!t->l1)
        return dimg_error(ENOMEM, "out of memory");
    if (s->l1_size)
        memcpy(t->l1, s->l1, (size_t)s->l1_size * 8);
    return 0;
}

/* qemu-img's new id: one more than the largest numeric id. */
static void
next_id(const struct qcow2_state *s, char *out, size_t len)
{
    unsigned long max = 0;
    for (uint32_t i = 0; i < s->nsnap; i++) {
        unsigned long v = strtoul(s->snaps[i].id, NULL, 10);
        if (v > max)
            max = v;
    }
    snprintf(out, len, "%lu", max + 1);
}

int
qcow2_snapshot_create(struct dimg_image *img, const char *name)
{
    struct qcow2_state *s = dimg_image_state(img);
    if (qcow2_has_data_file(s))
        return dimg_error(ENOTSUP, "%s: internal snapshots need the data in the image file",
                          img->filename);
    if (s->nsnap >= QCOW2_MAX_SNAPSHOTS)
        return dimg_error(EFBIG, "%s: too many snapshots", img->filename);
    char id[24], short_name[SNAPSHOT_NAME_MAX + 1];
    snprintf(short_name, sizeof short_name, "%s", name);
    next_id(s, id, sizeof id);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    /* The snapshot takes over the current L1 table; the active state gets a copy. */
    struct qcow2_snapshot sn = {
        .l1_offset = s->l1_offset,
        .l1_size = s->l1_size,
        .id = id,
        .name = short_name,
        .date_sec = (uint32_t)now.tv_sec,
        .date_nsec = (uint32_t)(now.tv_nsec / 1000 * 1000), /* qemu's clock has microseconds */
        .disk_size = img->size,
        .icount = 0, /* what qemu-img 7.2 records */
    };
    const struct qcow2_snapshot **list = calloc((size_t)s->nsnap + 1, sizeof *list);
    if (!list)
        return dimg_error(ENOMEM, "out of memory");
    struct qcow2_txn t;
    int r = qcow2_txn_begin(img, &t);
    if (r == 0)
        r = qcow2_txn_tree(&t, s->l1, s->l1_size, 1);
    if (r == 0) {
        for (uint32_t i = 0; i < s->nsnap; i++)
            list[i] = &s->snaps[i];
        list[s->nsnap] = &sn;
        r = write_table(&t, list, s->nsnap + 1);
    }
    if (r == 0) {
        t.l1_old_kept = true;
        r = keep_active_tables(&t);
    }
    if (r == 0)
        r = qcow2_txn_commit(&t);
    qcow2_txn_end(&t);
    free(list);
    return r;
}

/* The L1 size a virtual size needs, or an error when no qcow2 image can have it. */
static int
l1_entries_for(const struct qcow2_state *s, uint64_t size, uint64_t *need)
{
    uint64_t per_l1 = (uint64_t)s->l2_entries << s->cluster_bits;
    if (size > INT64_MAX - per_l1)
        return dimg_error(EFBIG, "Snapshot disk size too large");
    *need = (size + per_l1 - 1) / per_l1;
    if (*need > QCOW2_MAX_L1_BYTES / 8)
        return dimg_error(EFBIG, "Snapshot disk size too large");
    return 0;
}

int
qcow2_snapshot_goto(struct dimg_image *img, const char *name_or_id)
{
    struct qcow2_state *s = dimg_image_state(img);
    /* Bitmaps would not follow the guest data back (qemu refuses the same). */
    if (qcow2_bitmaps_count(s))
        return dimg_error(EBUSY, "Device has active dirty bitmaps");
    if (qcow2_has_data_file(s))
        return dimg_error(ENOTSUP, "Failed to load snapshot: %s", strerror(ENOTSUP));
    /* qemu-img -a: an id match wins over a name match. */
    int i = qcow2_snapshot_find(s, name_or_id, NULL);
    if (i < 0)
        i = qcow2_snapshot_find(s, NULL, name_or_id);
    if (i < 0)
        return dimg_error(ENOENT, "Failed to load snapshot: %s", strerror(ENOENT));
    const struct qcow2_snapshot *sn = &s->snaps[i];
    uint64_t need = 0;
    int r = l1_entries_for(s, sn->disk_size, &need);
    if (r < 0)
        return r;
    uint64_t *snap_l1;
    if ((r = qcow2_snapshot_read_l1(img, sn, &snap_l1)) < 0)
        return r;
    /* As qemu, the active L1 keeps its size unless the snapshot needs more. */
    uint32_t size = (uint32_t)max_u64(max_u64(s->l1_size, sn->l1_size), need);
    uint64_t *l1 = calloc(size ? size : 1, 8);
    uint64_t *old = malloc(s->l1_size ? (size_t)s->l1_size * 8 : 1);
    struct qcow2_txn t;
    if (!l1 || !old) {
        free(snap_l1);
        free(l1);
        free(old);
        return dimg_error(ENOMEM, "out of memory");
    }
    if (sn->l1_size)
        memcpy(l1, snap_l1, (size_t)sn->l1_size * 8);
    if (s->l1_size)
        memcpy(old, s->l1, (size_t)s->l1_size * 8);
    /* An L2 table both trees use keeps its counts: skip it on both sides. */
    for (uint32_t k = 0; k < sn->l1_size && k < s->l1_size; k++) {
        if ((snap_l1[k] & QCOW2_OFFSET_MASK) == (old[k] & QCOW2_OFFSET_MASK))
            snap_l1[k] = old[k] = 0;
    }
    r = qcow2_txn_begin(img, &t);
    if (r == 0)
        r = qcow2_txn_tree(&t, snap_l1, sn->l1_size, 1);
    if (r == 0)
        r = qcow2_txn_tree(&t, old, s->l1_size, -1);
    if (r == 0) {
        t.l1 = l1;
        l1 = NULL;
        t.l1_size = size;
        t.size = sn->disk_size;
        r = qcow2_txn_commit(&t);
    }
    qcow2_txn_end(&t);
    free(l1);
    free(old);
    free(snap_l1);
    return r;
}

int
qcow2_snapshot_delete(struct dimg_image *img, const char *name_or_id)
{
    struct qcow2_state *s = dimg_image_state(img);
    /* qemu-img -d looks the argument up among the names only. */
    int i = qcow2_snapshot_find(s, NULL, name_or_id);
    if (i < 0)
        return dimg_error(ENOENT, "snapshot not found");
    const struct qcow2_snapshot *sn = &s->snaps[i];
    uint64_t *snap_l1;
    int r = qcow2_snapshot_read_l1(img, sn, &snap_l1);
    if (r < 0)
        return r;
    const struct qcow2_snapshot **list = calloc(s->nsnap, sizeof *list);
    if (!list) {
        free(snap_l1);
        return dimg_error(ENOMEM, "out of memory");
    }
    uint32_t n = 0;
    for (uint32_t k = 0; k < s->nsnap; k++)
        if (k != (uint32_t)i)
            list[n++] = &s->snaps[k];
    struct qcow2_txn t;
    r = qcow2_txn_begin(img, &t);
    if (r == 0)
        r = qcow2_txn_tree(&t, snap_l1, sn->l1_size, -1);
    if (r == 0)
        r = qcow2_txn_ref_range(&t, sn->l1_offset, (uint64_t)sn->l1_size * 8, -1);
    if (r == 0)
        r = write_table(&t, list, n);
    /* The active tree keeps its tables; flags of what it now owns alone change. */
    if (r == 0)
        r = keep_active_tables(&t);
    if (r == 0)
        r = qcow2_txn_commit(&t);
    qcow2_txn_end(&t);
    free(list);
    free(snap_l1);
    return r;
}
