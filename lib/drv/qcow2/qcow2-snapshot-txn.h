/*
 * An all-or-nothing change of a qcow2 image's metadata roots, used by the
 * snapshot operations (qcow2-snapshot-write.c).
 *
 * Why not update refcounts in place: qemu-img check requires OFLAG_COPIED in
 * the active L1/L2 tables to equal "refcount == 1" at every instant, so a
 * refcount going 1 -> 2 (snapshot create) or 2 -> 1 (delete) and the flag of
 * the active entry pointing at it must change together.  They live in
 * different clusters, so no order of in-place writes gets there without a
 * window that check reports as corruption.
 *
 * Instead the new state is built beside the old one: changed refcount
 * blocks, a new refcount table, a new active L1 (and copies of the active L2
 * tables whose flags change) and a new snapshot table are written only to
 * clusters the old state does not use.  One 48-byte header write (offset 24:
 * size, L1, refcount table, snapshot table) then switches from the old state
 * to the new one; a kill before it leaves the old image, after it the new
 * one, both consistent.  What the old state used and the new one does not is
 * simply free (refcount 0) in the new state; as qemu does, those clusters
 * are then discarded from the file.
 */
#ifndef DIMG_DRV_QCOW2_SNAPSHOT_TXN_H
#define DIMG_DRV_QCOW2_SNAPSHOT_TXN_H

#include "drv/qcow2/qcow2.h"

struct qcow2_txn {
    struct dimg_image *img;
    struct qcow2_state *s;
    uint64_t per_block;        /* refcount entries per refcount block */
    uint64_t old_end;          /* clusters at or past this are unused in the old state */
    uint64_t hole_next;        /* next old cluster to consider for reuse */
    uint64_t end_next;         /* next cluster past everything */
    /* The new state's refcounts: copies of the blocks that change. */
    uint8_t **blk;             /* [cap], NULL: the block is unchanged */
    uint64_t *blk_off;         /* where each changed block is written (0: not placed yet) */
    uint64_t nblk, cap;        /* nblk: one past the highest changed block */
    uint64_t rt_off, rt_clusters;
    bool old_rt_freed;
    /* Clusters whose count dropped to zero: discarded once the switch is durable. */
    uint64_t *freed;
    size_t nfreed, freed_cap;
    /* The new state's roots. */
    uint64_t *l1;              /* active L1 (host-endian); OFLAG_COPIED is recomputed */
    uint32_t l1_size;
    bool l1_old_kept;          /* the old active L1 now belongs to a snapshot */
    uint64_t l1_off;
    uint64_t size;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint8_t *buf;              /* one cluster of scratch */
};

/* Flush the image, lock it and start from its current state. */
int qcow2_txn_begin(struct dimg_image *img, struct qcow2_txn *t);
/* Unlock and free; the image keeps whatever state the last commit left. */
void qcow2_txn_end(struct qcow2_txn *t);

/* Change the new state's refcount of one host cluster / every cluster of a range. */
int qcow2_txn_ref(struct qcow2_txn *t, uint64_t cluster, int64_t delta);
int qcow2_txn_ref_range(struct qcow2_txn *t, uint64_t off, uint64_t bytes, int64_t delta);
/* The new state's refcount of a host cluster. */
int qcow2_txn_refcount(struct qcow2_txn *t, uint64_t cluster, uint64_t *rc);
/* n contiguous clusters unused by the old state, counted once in the new one. */
int qcow2_txn_alloc(struct qcow2_txn *t, uint64_t n, uint64_t *off);
/* Count (delta +1) or uncount (-1) every L2 table and data cluster an L1 table reaches. */
int qcow2_txn_tree(struct qcow2_txn *t, const uint64_t *l1, uint32_t l1_size, int64_t delta);

/*
 * Fix OFLAG_COPIED in t->l1 and its L2 tables (copying tables whose entries
 * change), place the L1, the refcount blocks and table, write them, switch
 * the header and reload the driver state from the new roots.
 */
int qcow2_txn_commit(struct qcow2_txn *t);

#endif
