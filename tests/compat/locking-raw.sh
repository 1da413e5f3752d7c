#!/bin/bash
# Locking on raw images: while qemu-io holds an image (read-write, read-only,
# force-share), dimg and qemu-img must give the same output and exit code for
# info, info -U, info --output=json and create onto the held file, and a
# refused create must leave the file byte-identical.  Once implemented, map
# and compare are checked the same way.  (tests/unit/test-io-lock.c covers
# the other direction: qemu-img/qemu-io against locks held by libdimg.)
. "$TEST_LIB"
requires qemu-img qemu-io md5sum
FMT=raw
. "$(dirname "$0")/locking-common.inc"

make_sample_raw held.raw 8M
cp held.raw pristine.raw
run_locking_cases held.raw pristine.raw
finish
