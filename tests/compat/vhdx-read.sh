#!/bin/bash
# VHDX images made and written by qemu-img/qemu-io, read by dimg: info, map
# and check as qemu-img reports them, and the same guest bytes.
. "$TEST_LIB"
requires qemu-img qemu-io

n=0
for opts in "" "subformat=fixed" "subformat=fixed,block_state_zero=off" \
    "block_state_zero=off" "block_size=1M,log_size=2M"; do
    n=$((n + 1))
    f=r$n.vhdx
    "$QEMU_IMG" create -q -f vhdx ${opts:+-o "$opts"} "$f" 21M
    # Data at the start, across a block boundary, in the short last block.
    "$QEMU_IO" -f vhdx -c "write -P 0x11 4k 8k" -c "write -P 0x22 8388000 200k" \
        -c "write -P 0x33 20M 512k" -c "write -z 1M 4k" "$f" >/dev/null
    for out in human json; do
        both "info$n-$out" info --output=$out "$f"; same "info$n-$out"
        both "map$n-$out" map --output=$out "$f"; same "map$n-$out"
        both "check$n-$out" check --output=$out "$f"; same "check$n-$out"
    done
    both "info$n-probe" info "$f"; same "info$n-probe"
    "$QEMU_IMG" convert -O raw "$f" q.raw
    "$DIMG" convert -O raw "$f" d.raw || fail "$opts: dimg convert failed"
    cmp -s q.raw d.raw || fail "$opts: guest bytes differ"
    both "cmp$n" compare "$f" q.raw; same "cmp$n"
    both "cmpf$n" compare -f vhdx -F raw "$f" d.raw; same "cmpf$n"
done
# Every block size qemu-img offers, and an empty disk.
for bs in 2M 32M 256M; do
    "$QEMU_IMG" create -q -f vhdx -o block_size=$bs b.vhdx 300M
    "$QEMU_IO" -f vhdx -c "write -P 0x44 290M 64k" b.vhdx >/dev/null
    both "bs$bs" info --output=json b.vhdx; same "bs$bs"
    "$QEMU_IMG" convert -O raw b.vhdx q.raw
    "$DIMG" convert -O raw b.vhdx d.raw || fail "block_size=$bs: dimg convert failed"
    cmp -s q.raw d.raw || fail "block_size=$bs: guest bytes differ"
done
"$QEMU_IMG" create -q -f vhdx e.vhdx 0
both empty info --output=json e.vhdx; same empty
both emptymap map --output=json e.vhdx; same emptymap
finish
