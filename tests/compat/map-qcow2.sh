#!/bin/bash
# map on qcow2 images made by qemu-img: backing chains (depth, present, the
# file column), zero clusters, compressed clusters (no offset; human output
# refuses them), an overlay larger than its backing file.  Allocated clusters
# over holes in the image file (metadata preallocation) read as zero with
# data, split where the file's holes are; external data files are not looked
# into.  Unallocated subclusters of an allocated cluster show its offset when
# no backing file covers them.
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
"$QEMU_IMG" create -q -f qcow2 -o preallocation=metadata pm.qcow2 2M
"$QEMU_IO" -c 'write -P 0x44 100k 4k' -c 'write -P 0x45 300k 64k' -c 'write -z 1M 64k' pm.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -o preallocation=falloc pf.qcow2 1M
"$QEMU_IMG" create -q -f qcow2 -o data_file=pd.data,preallocation=metadata pd.qcow2 1M
"$QEMU_IO" -c 'write -P 0x46 100k 4k' pd.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -o data_file=pr.data,data_file_raw=on pr.qcow2 1M
"$QEMU_IO" -c 'write -P 0x47 100k 4k' pr.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -o extended_l2=on x.qcow2 1M
"$QEMU_IO" -c 'write -P 0x48 4k 4k' -c 'write -P 0x49 132k 2k' -c 'write -z 200k 8k' x.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 sb.qcow2 64k
"$QEMU_IO" -c 'write -P 0x4a 0 64k' sb.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -o extended_l2=on -b sb.qcow2 -F qcow2 xb.qcow2 256k
"$QEMU_IO" -c 'write -P 0x4b 4k 4k' -c 'write -P 0x4c 132k 4k' xb.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -b ../base.raw -F raw sub/rel.qcow2

n=0
check() {
    n=$((n + 1))
    both "map$n" map "$@"
    same "map$n"
}

for img in ov.qcow2 top.qcow2 comp.qcow2 empty.qcow2 plain.qcow2 sub/rel.qcow2 pm.qcow2 pf.qcow2 \
    pd.qcow2 pr.qcow2 x.qcow2 xb.qcow2; do
    check "$img"
    check --output=json "$img"
done
check --output=json --start-offset=100000 --max-length=3M top.qcow2
check --start-offset=9M top.qcow2
check --output=json --start-offset=9M top.qcow2
check -f qcow2 --output=json ov.qcow2
check -f raw --output=json ov.qcow2
finish
