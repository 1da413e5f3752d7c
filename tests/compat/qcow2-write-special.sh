#!/bin/bash
# dimg writes into qcow2 images that need care: internal snapshots (shared
# clusters and L2 tables are copied on write, the snapshot keeps its data) and
# images left dirty by a killed lazy-refcounts writer (repaired on open, as
# qemu does), an external data file whose L2 entry lost OFLAG_COPIED (still
# allocated; a write gives it back, as qemu's does).  qemu-img check must be
# clean afterwards.
. "$TEST_LIB"
requires qemu-img qemu-io

make_sample_raw new.raw 32M

# Snapshots: write new data over a snapshotted image, then go back with qemu-img.
"$QEMU_IMG" create -q -f qcow2 s.qcow2 32M
"$QEMU_IO" -c "write -P 0x11 0 32M" s.qcow2 >/dev/null
"$QEMU_IMG" convert -O raw s.qcow2 old.raw
"$QEMU_IMG" snapshot -c snap1 s.qcow2
"$DIMG" convert -n -O qcow2 new.raw s.qcow2 || fail "convert -n onto a snapshotted image"
"$QEMU_IMG" check -q s.qcow2 || fail "snapshots: check after dimg's writes"
"$QEMU_IMG" compare -q new.raw s.qcow2 || fail "snapshots: active layer differs"
"$QEMU_IMG" snapshot -a snap1 s.qcow2 || fail "snapshots: qemu-img snapshot -a"
"$QEMU_IMG" compare -q old.raw s.qcow2 || fail "snapshots: the snapshot lost its data"
"$QEMU_IMG" check -q s.qcow2 || fail "snapshots: check after applying the snapshot"

# Dirty image: qemu-io killed with SIGKILL in the middle of lazy-refcount writes.
"$QEMU_IMG" create -q -f qcow2 -o lazy_refcounts=on d.qcow2 32M
"$QEMU_IO" -c "write -P 0x22 0 8M" -c "sigraise 9" d.qcow2 >/dev/null 2>&1
"$QEMU_IMG" info --output=json d.qcow2 | grep -q '"dirty-flag": true' || fail "setup: image not dirty"
cp d.qcow2 d2.qcow2
"$DIMG" convert -n -O qcow2 new.raw d.qcow2 2>/dev/null || fail "writing to a dirty image"
"$QEMU_IMG" check -q d.qcow2 || fail "dirty: check after dimg's repair and writes"
"$QEMU_IMG" compare -q new.raw d.qcow2 || fail "dirty: content"
"$QEMU_IMG" info --output=json d.qcow2 | grep -q '"dirty-flag": false' || fail "dirty: flag not cleared"
# check -r all repairs it as well, and clears the flag.
"$DIMG" check -r all d2.qcow2 >/dev/null 2>&1
rc=$?
[ $rc -eq 0 ] || fail "dirty: dimg check -r all exit $rc"
"$QEMU_IMG" check -q d2.qcow2 || fail "dirty: check after dimg check -r all"
"$QEMU_IMG" info --output=json d2.qcow2 | grep -q '"dirty-flag": false' || fail "dirty: flag not cleared by check -r"
# External data file, one preallocated entry without OFLAG_COPIED: reads and
# writes as an allocated cluster; the write leaves the same files as qemu's.
"$QEMU_IMG" create -q -f qcow2 -o data_file=x.data,preallocation=metadata x.qcow2 1M
"$QEMU_IO" -c "write -P 0x46 100k 4k" -c "write -P 0x47 72k 4k" x.qcow2 >/dev/null
l1=$((0x$(od -An -t x8 --endian=big -j40 -N8 x.qcow2 | tr -d ' ')))
l2=$((0x$(od -An -t x8 --endian=big -j$l1 -N8 x.qcow2 | tr -d ' ') & 0xfffffffffffe00))
printf '\000' | dd of=x.qcow2 bs=1 seek=$((l2 + 8)) conv=notrunc status=none
[ "$(od -An -t x8 --endian=big -j$((l2 + 8)) -N8 x.qcow2 | tr -d ' ')" = 0000000000010000 ] ||
    fail "setup: L2 entry 1 not as expected"
"$QEMU_IMG" convert -O raw x.qcow2 xq.raw || fail "qemu-img read"
"$DIMG" convert -O raw x.qcow2 xd.raw || fail "dimg read"
cmp -s xq.raw xd.raw || fail "data file: dimg reads other bytes than qemu-img"
for tool in q d; do
    mkdir "$tool" && cp x.qcow2 x.data "$tool"/
done
(cd q && "$QEMU_IMG" bench -w -c 1 -d 1 -s 4096 -o 69632 --pattern=0x55 x.qcow2 >/dev/null) || fail "qemu-img write"
(cd d && "$DIMG" bench -w -c 1 -d 1 -s 4096 -o 69632 --pattern=0x55 x.qcow2 >/dev/null) || fail "dimg write"
cmp -s q/x.qcow2 d/x.qcow2 || fail "data file: metadata differs from qemu's after the write"
cmp -s q/x.data d/x.data || fail "data file: data differs from qemu's after the write"
finish
