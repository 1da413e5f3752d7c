#!/bin/bash
# snapshot -c/-a/-d errors on qcow2 images match qemu-img (message and exit
# code): unknown snapshots, counts that cannot grow (refcount_bits=1),
# external data files, images marked corrupt, -U; and a refused operation
# leaves the image untouched.
. "$TEST_LIB"
requires qemu-img qemu-io

"$QEMU_IMG" create -q -f qcow2 base.qcow2 1M
"$QEMU_IO" -c "write -P 1 0 64k" base.qcow2 >/dev/null
"$QEMU_IMG" snapshot -c s base.qcow2
"$QEMU_IMG" snapshot -c "" base.qcow2
"$QEMU_IMG" create -q -f qcow2 -o refcount_bits=1 r1.qcow2 1M
"$QEMU_IO" -c "write -P 1 0 64k" r1.qcow2 >/dev/null
"$QEMU_IMG" create -q -f qcow2 -o data_file=df.raw df.qcow2 1M
"$QEMU_IO" -c "write -P 1 0 64k" df.qcow2 >/dev/null
cp base.qcow2 corrupt.qcow2
# incompatible feature bit 1: corrupt
printf '\002' | dd of=corrupt.qcow2 bs=1 seek=79 conv=notrunc status=none

n=0
# case IMAGE ARGS...: each tool works on its own copy of IMAGE.
case_() {
    local img=$1; shift
    n=$((n + 1))
    cp "$img" "q$n.qcow2"
    cp "$img" "d$n.qcow2"
    run_as "q.e$n" "$QEMU_IMG" snapshot "$@" "q$n.qcow2"
    run_as "d.e$n" "$DIMG" snapshot "$@" "d$n.qcow2"
    sed -i 's/^dimg: /qemu-img: /; s/d'$n'\.qcow2/q'$n'.qcow2/g' "d.e$n.err"
    same "e$n"
    [ "$(cat "d.e$n.rc")" = 0 ] || cmp -s "$img" "d$n.qcow2" ||
        fail "e$n (snapshot $* $img): dimg changed the image although it failed"
}

case_ base.qcow2 -a nope
case_ base.qcow2 -d nope
case_ base.qcow2 -a 3
case_ base.qcow2 -d 1
case_ base.qcow2 -d ""
case_ base.qcow2 -a ""
case_ base.qcow2 -U -c t
case_ base.qcow2 -U -a s
case_ base.qcow2 -U -d s
case_ r1.qcow2 -c s
case_ df.qcow2 -c s
case_ df.qcow2 -a s
case_ df.qcow2 -d s
case_ corrupt.qcow2 -c s
case_ corrupt.qcow2 -a s
case_ corrupt.qcow2 -d s

# -c on raw, and the usual open errors, stay as before.
"$QEMU_IMG" create -q -f raw r.raw 1M
both raw snapshot -c s r.raw
same raw
finish
