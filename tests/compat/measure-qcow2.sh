#!/bin/bash
# measure -O qcow2: required and fully allocated sizes (human and JSON) equal
# qemu-img's for --size, for raw and qcow2 sources (with chains), and for
# every layout option that changes the metadata.
. "$TEST_LIB"
requires qemu-img qemu-io

make_sample_raw s.raw 24M
"$QEMU_IMG" create -q -f qcow2 b.qcow2 16M
"$QEMU_IO" -c "write -P 1 0 5M" -c "write -z 6M 1M" b.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -b b.qcow2 -F qcow2 o.qcow2 24M
"$QEMU_IO" -c "write -P 2 4M 3M" -c "write -c 20M 64k" o.qcow2 >/dev/null

n=0
while IFS= read -r args; do
    [ -z "$args" ] && continue
    for out in human json; do
        n=$((n + 1))
        # shellcheck disable=SC2086
        both "m$n" measure --output=$out -O qcow2 $args
        same "m$n"
    done
done <<'LIST'
--size 0
--size 1
--size 1G
--size 100G
--size 1T
-o cluster_size=512 --size 10G
-o cluster_size=2M --size 10G
-o refcount_bits=1 --size 10G
-o refcount_bits=64 --size 10G
-o extended_l2=on --size 10G
-o compat=0.10 --size 7G
-o preallocation=metadata --size 1G
-o cluster_size=3k --size 1G
s.raw
-o cluster_size=512 s.raw
-o cluster_size=16k,extended_l2=on s.raw
-f raw s.raw
b.qcow2
o.qcow2
-f qcow2 o.qcow2
LIST
finish
