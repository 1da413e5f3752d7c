#!/bin/bash
# VHD images made by qemu-img/qemu-io read by dimg: guest bytes, info (human
# and JSON), map and probing (fixed images probe as raw).
. "$TEST_LIB"
requires qemu-img qemu-io python3

# Guest bytes, info and map of img (opened with -f vpc) must match qemu-img's.
check_img() {
    local tag=$1 img=$2
    "$QEMU_IMG" convert -f vpc -O raw "$img" q.raw
    "$DIMG" convert -f vpc -O raw "$img" d.raw || fail "$tag: dimg convert failed"
    cmp -s q.raw d.raw || fail "$tag: guest bytes differ"
    both "$tag.info" info -f vpc "$img"; same "$tag.info"
    both "$tag.json" info -f vpc --output=json "$img"; same "$tag.json"
    both "$tag.map" map -f vpc --output=json "$img"; same "$tag.map"
    [ -n "${3:-}" ] || return 0
    both "$tag.probe" info "$img"; same "$tag.probe"
    both "$tag.maph" map -f vpc "$img"; same "$tag.maph"
}

for sub in dynamic fixed; do
    rm -f w.vhd
    "$QEMU_IMG" create -q -f vpc -o subformat=$sub w.vhd 9M
    "$QEMU_IO" -f vpc -c "write -P 0x11 0 4k" -c "write -P 0x22 2047k 2k" \
        -c "write -P 0x33 5000 70000" -c "write -z 6M 8k" -c "write -P 0x44 9000k 16k" \
        w.vhd >/dev/null || fail "qemu-io on $sub"
    check_img "io-$sub" w.vhd full
done

make_sample_raw s.raw 12M
for o in subformat=dynamic subformat=fixed,force_size=on; do
    rm -f c.vhd
    "$QEMU_IMG" convert -f raw -O vpc -o "$o" s.raw c.vhd
    check_img "conv-$o" c.vhd
done

# 4 KiB blocks and a partly clear sector bitmap (the fuzz corpus image):
# qemu reads a block whole whatever its bitmap says.
if [ -n "${SRCDIR:-}" ]; then
    cp "$SRCDIR/fuzz/corpus/vpc/dyn-4k-blocks.vhd" k.vhd
    check_img small k.vhd
fi
finish
