#!/bin/bash
# Kill dimg with SIGKILL at many instants while it writes VDI images: convert
# to a new dynamic or static image, convert -n over a dynamic image holding
# old data in part of it (so blocks are both rewritten and appended), and
# bench -w pattern writes over that image.  qemu-img check must find no
# corruption (a block map entry without its allocation count would be one),
# and every sector must hold old or new data (zeros or the source's data for
# a new image).  A block whose map entry lies past the first page needs two
# writes (count, then entry): a kill at each of dimg's writes there, then a
# write elsewhere, must never leave two blocks sharing storage.
. "$TEST_LIB"
requires qemu-img qemu-io python3 strace
. "$(dirname "$0")/crash-write-common.inc"

make_crash_source src.raw
convert_new_rounds vdi yes static=off static=on
make_old_image vdi
convert_n_rounds vdi yes
bench_rounds vdi yes
"$QEMU_IMG" create -q -f vdi big.vdi 2G
"$QEMU_IO" -c "write -P 0x11 1000M 1M" big.vdi >/dev/null
for N in 1 2 3 4 5; do
    cp big.vdi k.vdi
    kill_at_write "$N" bench -w -c 1 -s 4096 -o 1001M --pattern=0x22 k.vdi
    "$DIMG" bench -w -c 1 -s 4096 -o 1500M --pattern=0x33 k.vdi >/dev/null ||
        fail "kill at write $N: the next write failed"
    "$QEMU_IMG" check k.vdi >check.out 2>&1
    grep -q "also used by" check.out && fail "kill at write $N: two blocks share storage"
    reads_as k.vdi "kill at write $N" "0x11 1000M 1M" "0x33 1500M 4k"
    old_or_new k.vdi "kill at write $N" 1001M 4k 0 0x22
done
finish
