#!/bin/bash
# map on qcow2 images made by qemu-img: backing chains (depth, present, the
# file column), zero clusters, compressed clusters (no offset; human output
# refuses them), an overlay larger than its backing file.
. "$TEST_LIB"
requires qemu-img qemu-io

make_sample_raw base.raw 8M
"$QEMU_IMG" create -q -f qcow2 -b base.raw -F raw ov.qcow2
"$QEMU_IO" -c 'write -P 0x11 0 64k' -c 'write -z 128k 64k' -c 'write -P 0x22 1M 8k' ov.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -b ov.qcow2 -F qcow2 top.qcow2 12M
"$QEMU_IO" -c 'write -P 0x33 64k 64k' -c 'write -z 2M 1M' top.qcow2 >/dev/null
"$QEMU_IMG" convert -c -O qcow2 base.raw comp.qcow2
"$QEMU_IMG" create -q -f qcow2 empty.qcow2 16M
"$QEMU_IMG" convert -O qcow2 base.raw plain.qcow2
mkdir sub
"$QEMU_IMG" create -q -f qcow2 -b ../base.raw -F raw sub/rel.qcow2

n=0
check() {
    n=$((n + 1))
    both "map$n" map "$@"
    same "map$n"
}

for img in ov.qcow2 top.qcow2 comp.qcow2 empty.qcow2 plain.qcow2 sub/rel.qcow2; do
    check "$img"
    check --output=json "$img"
done
check --output=json --start-offset=100000 --max-length=3M top.qcow2
check --start-offset=9M top.qcow2
check --output=json --start-offset=9M top.qcow2
check -f qcow2 --output=json ov.qcow2
check -f raw --output=json ov.qcow2
finish
