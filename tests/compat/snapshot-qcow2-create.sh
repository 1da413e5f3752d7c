#!/bin/bash
# snapshot -c by dimg on images qemu-img made, in several layouts (cluster
# sizes, extended L2, refcount widths, compressed and zero
# clusters, a backing file): after each step qemu-img check finds nothing,
# the snapshot table matches qemu-img's (dates aside) and every snapshot
# holds the same data as on a twin image where qemu-img did the same.
. "$TEST_LIB"
requires qemu-img qemu-io
. "$SRCDIR/tests/compat/snapshot-qcow2-common.inc"

scenario() { # size options
    twin "$1" "$2"
    op -c empty
    io "write -P 1 0 3M"
    io "write -P 2 3500k 100k"
    op -c first
    io "write -P 3 1M 64k"
    io "write -P 4 2047k 2k"
    op -c second
    op -c first          # names need not be unique
    io "write -P 5 0 512"
    op -c "with space"
}

scenario 4M ""
scenario 4M "cluster_size=512"
scenario 6M "cluster_size=2M"
scenario 4M "extended_l2=on,refcount_bits=8"

# Compressed and zero clusters, discards.
twin 4M ""
io "write -c -P 7 0 64k"
io "write -c -P 8 64k 64k"
io "write -P 9 1M 1M"
io "write -z 1536k 64k"
io "write -z -u 1600k 64k"
op -c c1
io "write -c -P 10 128k 64k"
io "discard 1M 128k"
op -c c2
io "write -z 0 64k"
op -c c3

# A backing file: the snapshot covers the overlay only.
"$QEMU_IMG" create -q -f qcow2 base.qcow2 8M
"$QEMU_IO" -c "write -P 0x11 0 8M" base.qcow2 >/dev/null
rm -f q.qcow2 d.qcow2
"$QEMU_IMG" create -q -f qcow2 -b base.qcow2 -F qcow2 q.qcow2
cp q.qcow2 d.qcow2
io "write -P 0x22 4M 1M"
op -c over1
io "write -P 0x33 4M 64k"
op -c over2

# Narrow refcounts: a 2-bit count fits the active image and two snapshots.
twin 4M "refcount_bits=2"
io "write -P 1 0 1M"
op -c a
op -c b
run_as q.full "$QEMU_IMG" snapshot -c c q.qcow2
run_as d.full "$DIMG" snapshot -c c d.qcow2
sed -i 's/^dimg: /qemu-img: /' d.full.err
same full
# qemu-img leaks a cluster here; dimg changes nothing.
verify "refused create"

# Ids: one more than the largest numeric id, as qemu-img.
twin 1M ""
op -c x
op -c 7
op -d x
op -c y
# A 300-byte name is cut to 255 bytes.
op -c "$(printf 'n%.0s' $(seq 300))"

# An image of size zero.
twin 0 ""
op -c z
op -c z2

finish_twin
finish
