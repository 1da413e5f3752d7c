#!/bin/bash
# snapshot -a by dimg: which snapshot an argument selects (an id wins over a
# name), the virtual size and L1 table of the applied snapshot, guest writes
# after applying, snapshots made by qemu-img or by dimg, mixed with
# qemu-img's own apply and delete on dimg's snapshots.  After each step
# qemu-img check is clean and all data equals a twin image handled by qemu-img.
. "$TEST_LIB"
requires qemu-img qemu-io
. "$SRCDIR/tests/compat/snapshot-qcow2-common.inc"

for opts in "cluster_size=512,compat=0.10" "extended_l2=on,refcount_bits=64"; do
    twin 4M "$opts"
    io "write -P 1 0 1M"
    qop -c 2             # id 1, named "2"
    io "write -P 2 64k 64k"
    op -c x              # id 2
    io "write -P 3 0 4k"
    op -c ""             # id 3, empty name
    io "write -c -P 4 2M 64k"
    op -c x              # id 4
    io "write -P 9 3M 1M"
    op -a 2              # id 2 (x), not the snapshot named "2"
    io "write -P 5 128k 64k"
    op -a x              # first named x: id 2
    op -a ""
    io "write -P 6 0 1M"
    op -a 4
    op -a 1
    op -a nope
    op -a 5
    io "write -P 7 1M 64k"
    qop -a x             # qemu-img applies a snapshot dimg made
    op -c after
    qop -d x
    op -a after
    op -d after
done

# Sizes: applying restores the size (and keeps the larger L1), as qemu-img.
twin 4M ""
io "write -P 1 0 64k"
op -c small
"$QEMU_IMG" resize -q q.qcow2 600M
"$QEMU_IMG" resize -q d.qcow2 600M
io "write -P 2 550M 64k"
op -c big
op -a small
io "write -P 3 0 64k"
op -a big
io "write -P 4 590M 64k"
op -c big2
op -a small
op -a big2

finish_twin
finish
