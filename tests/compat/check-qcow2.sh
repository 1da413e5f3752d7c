#!/bin/bash
# check on clean qcow2 images of many layouts (qemu-made and dimg-made,
# compressed, extended L2, small and big clusters, refcount widths,
# snapshots, bitmaps, a backing chain): human and JSON output, messages and
# exit codes as qemu-img's.  Corrupted images: check-qcow2-repair.sh.
here=$(cd "$(dirname "$0")" && pwd)
. "$TEST_LIB"
requires qemu-img qemu-io od dd
. "$here/check-qcow2-common.inc"

# --- clean images of several layouts -----------------------------------
make_sample_raw s.raw 8M
for opts in "" "compat=0.10" "cluster_size=512" "cluster_size=2M" "extended_l2=on" \
    "refcount_bits=1,cluster_size=4096" "refcount_bits=64" "compression_type=zstd" \
    "lazy_refcounts=on"; do
    rm -f q.qcow2 d.qcow2 c.qcow2
    "$QEMU_IMG" convert -O qcow2 ${opts:+-o "$opts"} s.raw q.qcow2
    "$QEMU_IO" -c "write -P 0x5a 300k 10k" -c "write -z 1M 64k" -c "discard 5M 128k" \
        q.qcow2 >/dev/null
    check_both q.qcow2
    "$DIMG" convert -O qcow2 ${opts:+-o "$opts"} s.raw d.qcow2 || fail "[$opts] dimg convert"
    check_human d.qcow2
    "$QEMU_IMG" convert -c -O qcow2 ${opts:+-o "$opts"} s.raw c.qcow2
    check_human c.qcow2
done

# Snapshots (qemu-img snapshot -c), a bitmap, a backing chain, an empty image.
"$QEMU_IMG" convert -O qcow2 s.raw snap.qcow2
"$QEMU_IMG" snapshot -c one snap.qcow2
"$QEMU_IO" -c "write -P 0x11 0 192k" -c "write -c -P 0x12 4M 64k" snap.qcow2 >/dev/null
"$QEMU_IMG" snapshot -c two snap.qcow2
"$QEMU_IO" -c "write -P 0x13 64k 64k" snap.qcow2 >/dev/null
check_both snap.qcow2
"$QEMU_IMG" convert -O qcow2 s.raw bm.qcow2
"$QEMU_IMG" bitmap --add bm.qcow2 b0
"$QEMU_IO" -c "write -P 0x21 0 1M" bm.qcow2 >/dev/null
check_both bm.qcow2
"$QEMU_IMG" create -q -f qcow2 -b bm.qcow2 -F qcow2 ov.qcow2
check_both ov.qcow2
"$QEMU_IMG" create -q -f qcow2 empty.qcow2 0
check_both empty.qcow2
check_both q.qcow2 -q

finish
