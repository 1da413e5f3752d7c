#!/bin/bash
# info on raw images: human and JSON output, -U, --image-opts and errors match qemu-img.
. "$TEST_LIB"
requires qemu-img

make_sample_raw s.raw 16M
"$QEMU_IMG" create -q -f raw empty.raw 10M
"$QEMU_IMG" create -q -f raw zero.raw 0
"$QEMU_IMG" create -q -f raw odd.raw 1000
mkdir dir

n=0
for args in "s.raw" "--output=json s.raw" "-f raw s.raw" "-U s.raw" "empty.raw" \
    "--output=json empty.raw" "zero.raw" "odd.raw" "--output=json odd.raw" \
    "--backing-chain s.raw" "--backing-chain --output=json s.raw" \
    "--image-opts driver=raw,file.filename=s.raw" \
    "--image-opts driver=raw,file.filename=s.raw,file.locking=off" \
    "--image-opts driver=raw,file.filename=s.raw,foo=1" \
    "nonexistent.raw" "dir" "" "s.raw extra" "--output=xml s.raw" "-f" "-Z s.raw" \
    "--bogus s.raw" "-f nosuchfmt s.raw"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    both "info$n" info $args
    same "info$n"
done
finish
