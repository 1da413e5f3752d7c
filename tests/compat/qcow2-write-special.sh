#!/bin/bash
# dimg writes into qcow2 images that need care: internal snapshots (shared
# clusters and L2 tables are copied on write, the snapshot keeps its data) and
# images left dirty by a killed lazy-refcounts writer (repaired on open, as
# qemu does).  qemu-img check must be clean afterwards.
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
finish
