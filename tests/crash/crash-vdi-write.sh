#!/bin/bash
# Kill dimg with SIGKILL at many instants while it writes VDI images: convert
# to a new dynamic or static image, convert -n over a dynamic image holding
# old data in part of it (so blocks are both rewritten and appended), and
# bench -w pattern writes over that image.  qemu-img check must find no
# corruption (a block map entry without its allocation count would be one),
# and every sector must hold old or new data (zeros or the source's data for
# a new image).
. "$TEST_LIB"
requires qemu-img qemu-io python3
. "$(dirname "$0")/crash-write-common.inc"

make_crash_source src.raw
convert_new_rounds vdi yes static=off static=on
make_old_image vdi
convert_n_rounds vdi yes
bench_rounds vdi yes
finish
