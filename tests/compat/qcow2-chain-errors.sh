#!/bin/bash
# Broken backing chains: a loop (a -> b -> a) and a missing backing file.
# info --backing-chain matches qemu-img; where qemu-img hangs on the loop
# (convert, compare), dimg must stop at once with a clear error.
. "$TEST_LIB"
requires qemu-img timeout

"$QEMU_IMG" create -q -f qcow2 a.qcow2 1M
"$QEMU_IMG" create -q -f qcow2 -b a.qcow2 -F qcow2 b.qcow2
"$QEMU_IMG" rebase -u -b b.qcow2 -F qcow2 a.qcow2
"$QEMU_IMG" create -q -f qcow2 -u -b missing.qcow2 -F qcow2 m.qcow2 1M

n=0
for args in "info --backing-chain b.qcow2" "info --backing-chain --output=json b.qcow2" "info b.qcow2" \
    "info --backing-chain m.qcow2" "info m.qcow2" "convert -O raw m.qcow2 out.raw" "map m.qcow2"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    both "c$n" $args
    same "c$n"
done
for args in "convert -O raw b.qcow2 out.raw" "compare b.qcow2 a.qcow2" "map b.qcow2"; do
    # shellcheck disable=SC2086
    timeout 20 "$DIMG" $args >out.txt 2>err.txt
    rc=$?
    [ $rc -ne 124 ] || fail "$args: dimg hangs on a backing loop"
    [ $rc -ne 0 ] || fail "$args: dimg accepted a backing loop"
    grep -q "creates an infinite loop" err.txt || fail "$args: no loop message: $(head -1 err.txt)"
done
finish
