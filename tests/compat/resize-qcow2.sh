#!/bin/bash
# resize (grow) on qcow2: same messages and exit codes as qemu-img, and the
# resized image byte-identical to qemu-img's, clean, with its data intact.
. "$TEST_LIB"
requires qemu-img qemu-io

n=0
for opts in "" "cluster_size=512" "cluster_size=4096" "compat=0.10" "extended_l2=on" "refcount_bits=1"; do
    for grow in +1G +64k 3G 100M 1000 -1M; do
        n=$((n + 1))
        rm -f q.qcow2 d.qcow2
        "$QEMU_IMG" create -q -f qcow2 ${opts:+-o "$opts"} q.qcow2 100M
        "$QEMU_IO" -c "write -P 7 0 1M" -c "write -P 8 99M 1M" q.qcow2 >/dev/null
        cp q.qcow2 d.qcow2
        run_as "q.r$n" "$QEMU_IMG" resize q.qcow2 -- "$grow"
        run_as "d.r$n" "$DIMG" resize d.qcow2 -- "$grow"
        sed -i 's/^dimg: /qemu-img: /' "d.r$n.err"
        same "r$n"
        cmp -s q.qcow2 d.qcow2 || fail "[$opts] resize $grow: image differs from qemu-img's"
        "$QEMU_IMG" check -q d.qcow2 || fail "[$opts] resize $grow: check"
    done
done
finish
