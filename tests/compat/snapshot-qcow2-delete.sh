#!/bin/bash
# snapshot -d by dimg: lookup by name only (the first match), deleting
# snapshots qemu-img made and its own, in any order, until none are left;
# clusters only the active image still uses become writable in place again.
# After each step qemu-img check is clean and all data equals a twin image
# handled by qemu-img.
. "$TEST_LIB"
requires qemu-img qemu-io
. "$SRCDIR/tests/compat/snapshot-qcow2-common.inc"

for opts in "" "cluster_size=512" "extended_l2=on,refcount_bits=64"; do
    twin 4M "$opts"
    io "write -P 1 0 2M"
    qop -c s1
    io "write -P 2 64k 64k"
    op -c s2
    io "write -c -P 3 3M 64k"
    qop -c s3
    op -c s2
    io "write -P 4 0 4k"
    op -d 1              # names only: there is no snapshot named "1"
    op -d s2             # the first of two
    io "write -P 5 1M 64k"
    op -d s1
    op -d s3
    op -d s2
    op -d s2
    io "write -P 6 0 2M"
done

# Deleting the snapshot in use after apply, then writing in place.
twin 4M ""
io "write -P 1 0 1M"
op -c a
op -c b
op -a a
op -d a
io "write -P 2 0 1M"
op -d b
qop -c q
op -d q

finish_twin
finish
