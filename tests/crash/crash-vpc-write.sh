#!/bin/bash
# Kill dimg with SIGKILL at many instants while it writes VHD (vpc) images:
# convert to a new dynamic or fixed image, convert -n over a dynamic image
# holding old data in part of it (so blocks are both rewritten and appended),
# and bench -w pattern writes over that image.  qemu-img has no check for vpc:
# instead the image must still open and read, and every sector must hold old
# or new data (zeros or the source's data for a new image).
. "$TEST_LIB"
requires qemu-img qemu-io python3
. "$(dirname "$0")/crash-write-common.inc"

make_crash_source src.raw
convert_new_rounds vpc no subformat=dynamic subformat=fixed
make_old_image vpc
convert_n_rounds vpc no
bench_rounds vpc no
finish
