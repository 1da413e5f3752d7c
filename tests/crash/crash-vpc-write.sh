#!/bin/bash
# Kill dimg with SIGKILL at many instants while it writes VHD (vpc) images:
# convert to a new dynamic or fixed image, convert -n over a dynamic image
# holding old data in part of it (so blocks are both rewritten and appended),
# and bench -w pattern writes over that image.  qemu-img has no check for vpc:
# instead the image must still open and read, and every sector must hold old
# or new data (zeros or the source's data for a new image).
# A kill at each of dimg's writes while it adds a block, then a small write
# elsewhere: the new block reuses the space left unreferenced, and what that
# write does not cover must read as zeros, not as the dead write's data.
. "$TEST_LIB"
requires qemu-img qemu-io python3 strace
. "$(dirname "$0")/crash-write-common.inc"

make_crash_source src.raw
convert_new_rounds vpc no subformat=dynamic subformat=fixed
make_old_image vpc
convert_n_rounds vpc no
bench_rounds vpc no
"$QEMU_IMG" create -q -f vpc v.vhd 10M
for N in 1 2 3 4 5; do
    cp v.vhd k.vhd
    kill_at_write "$N" bench -w -c 1 -s 1M -o 0 --pattern=0x22 k.vhd
    "$DIMG" bench -w -c 1 -s 4096 -o 4M --pattern=0x33 k.vhd >/dev/null ||
        fail "kill at write $N: the next write failed"
    reads_as k.vhd "kill at write $N" "0x33 4M 4k" "0 4100k 1020k"
    old_or_new k.vhd "kill at write $N" 0 1M 0 0x22
done
finish
