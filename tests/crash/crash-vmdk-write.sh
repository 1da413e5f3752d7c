#!/bin/bash
# Kill dimg with SIGKILL at many instants while it writes VMDK images: convert
# to a new image (monolithicSparse, streamOptimized, twoGbMaxExtentSparse),
# convert -n over an image holding old data in part of it (zeroed grains on,
# so zero runs become zeroed-grain entries), and bench -w pattern writes over
# that image.  qemu-img check must find at worst leaks, and every sector must
# read as old or new data (zeros or the source's data for a new image).
. "$TEST_LIB"
requires qemu-img qemu-io python3
. "$(dirname "$0")/crash-write-common.inc"

make_crash_source src.raw
convert_new_rounds vmdk yes subformat=monolithicSparse subformat=streamOptimized \
    subformat=twoGbMaxExtentSparse
make_old_image vmdk zeroed_grain=on
convert_n_rounds vmdk yes
bench_rounds vmdk yes
finish
