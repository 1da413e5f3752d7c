#!/bin/bash
# Locking on qcow2 images (made by qemu-img): same checks as locking-raw.sh;
# qemu-img takes a different lock set for a qcow2 reader (it refuses to share
# write), so a read-only holder blocks writers here.  Cases whose qemu-img
# result needs a format dimg cannot handle yet are skipped with a note.
. "$TEST_LIB"
requires qemu-img qemu-io md5sum
FMT=qcow2
. "$(dirname "$0")/locking-common.inc"

"$QEMU_IMG" create -q -f qcow2 pristine.qcow2 4M
"$QEMU_IO" -c 'write -P 0x5a 64k 128k' -c 'write -z 1M 64k' pristine.qcow2 >/dev/null
cp pristine.qcow2 held.qcow2
run_locking_cases held.qcow2 pristine.qcow2
finish
