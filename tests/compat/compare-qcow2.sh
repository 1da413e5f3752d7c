#!/bin/bash
# compare across formats and backing chains made by qemu-img: unallocated vs
# zero vs data runs, strict mode's allocation and block-status checks,
# compressed clusters, and mismatches inside a backing file.
. "$TEST_LIB"
requires qemu-img qemu-io

make_sample_raw base.raw 8M
"$QEMU_IMG" create -q -f qcow2 -b base.raw -F raw ov.qcow2
"$QEMU_IMG" create -q -f qcow2 -b base.raw -F raw ov-same.qcow2
"$QEMU_IO" -c 'write -P 0x11 4096 8k' ov-same.qcow2 >/dev/null
cp base.raw flat.raw
"$QEMU_IO" -f raw -c 'write -P 0x11 4096 8k' flat.raw >/dev/null
"$QEMU_IMG" create -q -f qcow2 -b base.raw -F raw ov-zero.qcow2
"$QEMU_IO" -c 'write -z 1M 64k' ov-zero.qcow2 >/dev/null
"$QEMU_IMG" convert -c -O qcow2 base.raw comp.qcow2
"$QEMU_IMG" convert -O qcow2 base.raw plain.qcow2
"$QEMU_IMG" create -q -f qcow2 empty.qcow2 8M
truncate -s 8M holes.raw
"$QEMU_IMG" create -q -f qcow2 big.qcow2 12M
"$QEMU_IO" -c 'write -P 0x44 9M 4k' big.qcow2 >/dev/null

n=0
check() {
    n=$((n + 1))
    both "cmp$n" compare "$@"
    same "cmp$n"
}

check ov.qcow2 base.raw
check -s ov.qcow2 base.raw
check -p ov-same.qcow2 flat.raw
check -s ov-same.qcow2 flat.raw
check ov-same.qcow2 ov.qcow2
check -p ov-zero.qcow2 base.raw
check -s ov-zero.qcow2 ov.qcow2
check comp.qcow2 base.raw
check -s comp.qcow2 plain.qcow2
check -p plain.qcow2 base.raw
check empty.qcow2 holes.raw
check -s empty.qcow2 holes.raw
check empty.qcow2 base.raw
check base.raw empty.qcow2
check big.qcow2 empty.qcow2
check -p empty.qcow2 big.qcow2
check -f qcow2 -F raw ov.qcow2 base.raw
check -f raw ov.qcow2 base.raw

# A read error (corrupt compressed data) exits 4 with qemu-img's message.  The
# offset is the start of the run being read, which depends on how many
# compressed clusters one block status call covers: compare the shape only.
head -c 4M /dev/urandom >r4.raw
yes hello | head -c 2M | dd of=r4.raw bs=1M seek=1 conv=notrunc status=none
"$QEMU_IMG" convert -c -O qcow2 r4.raw bad.qcow2
head -c 60000 /dev/zero | tr '\0' '\377' | dd of=bad.qcow2 bs=1 seek=1377000 conv=notrunc status=none
for args in "bad.qcow2 r4.raw" "r4.raw bad.qcow2"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    both "cmp$n" compare $args
    same_out "cmp$n"
    for t in q d; do
        sed -E 's/offset [0-9]+ /offset N /' "$t.cmp$n.err" >"$t.cmp$n.shape"
    done
    cmp -s "q.cmp$n.shape" "d.cmp$n.shape" || fail "cmp$n: read error message differs: $(cat "d.cmp$n.err")"
done
finish
